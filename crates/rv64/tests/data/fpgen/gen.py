# Writes fpgen.c: runs each F/D instruction on sampled operands in each rounding mode and
# prints "name rm a b c result fflags" (hex).
ops = []  # (name, kind) kind: 'fff' (3 src float), 'ff','f','x' (int src), result 'f' or 'x'
D = ['d','s']
for t in D:
    for n in ['fadd','fsub','fmul','fdiv']: ops.append((f'{n}.{t}','ff>f',True))
    ops.append((f'fsqrt.{t}','f>f',True))
    for n in ['fmadd','fmsub','fnmadd','fnmsub']: ops.append((f'{n}.{t}','fff>f',True))
    for n in ['fmin','fmax','fsgnj','fsgnjn','fsgnjx']: ops.append((f'{n}.{t}','ff>f',False))
    for n in ['feq','flt','fle']: ops.append((f'{n}.{t}','ff>x',False))
    ops.append((f'fclass.{t}','f>x',False))
    for i in ['w','wu','l','lu']:
        ops.append((f'fcvt.{i}.{t}','f>x',True))
        ops.append((f'fcvt.{t}.{i}','x>f',not (t=='d' and i in ('w','wu'))))
ops.append(('fcvt.s.d','f>f',True))
ops.append(('fcvt.d.s','f>f',False))
ops.append(('fmv.x.w','f>x',False))
c = ['#include <stdio.h>','#include <stdint.h>','typedef uint64_t u;']
for i,(name,kind,rm) in enumerate(ops):
    srcs, res = kind.split('>')
    sfx = ',dyn' if rm else ''
    lines = []
    regs = []
    for k,s in enumerate(srcs):
        if s == 'f': lines.append(f'fmv.d.x ft{k},%{k+1}'); regs.append(f'ft{k}')
        else: regs.append('%1')
    dst = 'ft3' if res == 'f' else '%0'
    lines.append(f'{name} {dst},{",".join(regs)}{sfx}')
    if res == 'f': lines.append('fmv.x.d %0,ft3')
    asm = '\\n'.join(lines)
    ins = ','.join(f'"r"({v})' for v in 'abc'[:len(srcs)])
    c.append(f'static u op{i}(u a,u b,u c){{u r; (void)b;(void)c; asm volatile("{asm}" : "=&r"(r) : {ins} : "ft0","ft1","ft2","ft3"); return r;}}')
c.append('typedef u (*fn)(u,u,u);')
c.append('static fn fns[] = {' + ','.join(f'op{i}' for i in range(len(ops))) + '};')
c.append('static const char *names[] = {' + ','.join(f'"{n}"' for n,_,_ in ops) + '};')
c.append('static const char *kinds[] = {' + ','.join(f'"{k}"' for _,k,_ in ops) + '};')
c.append('static const int rms[] = {' + ','.join('1' if r else '0' for _,_,r in ops) + '};')
c.append(f'#define NOPS {len(ops)}')
c.append(open('main.c').read())
open('fpgen.c','w').write('\n'.join(c))
