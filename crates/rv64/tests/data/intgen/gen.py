import random, sys
random.seed(int(sys.argv[1]))
regs=[r for r in range(1,32) if r not in (2,)]
R=['add','sub','sll','slt','sltu','xor','srl','sra','or','and','addw','subw','sllw','srlw','sraw','mul','mulh','mulhsu','mulhu','div','divu','rem','remu','mulw','divw','divuw','remw','remuw']
I=['addi','slti','sltiu','xori','ori','andi','addiw']
S=['slli','srli','srai']
SW=['slliw','srliw','sraiw']
specials=[0,1,-1,0x7fffffffffffffff,-0x8000000000000000,0x80000000,0x7fffffff,-0x80000000,0xffffffff,2,-2,63,64,31,32]
out=['.option rvc','.globl _start','_start:','la x2,buf']
n=0
for r in regs:
    v=random.choice(specials) if random.random()<0.4 else random.getrandbits(64)-(1<<63)
    out.append(f'li x{r},{v}')
for _ in range(int(sys.argv[2]) if len(sys.argv) > 2 else 3000):
    k=random.random(); d=random.choice(regs); a=random.choice(regs+[0]); b=random.choice(regs+[0])
    if k<0.55: out.append(f'{random.choice(R)} x{d},x{a},x{b}')
    elif k<0.75: out.append(f'{random.choice(I)} x{d},x{a},{random.randint(-2048,2047)}')
    elif k<0.85: out.append(f'{random.choice(S)} x{d},x{a},{random.randint(0,63)}')
    elif k<0.92: out.append(f'{random.choice(SW)} x{d},x{a},{random.randint(0,31)}')
    elif k<0.96: out.append(f'lui x{d},{random.randint(0,0xfffff)}')
    else:
        # occasionally re-seed a register with a special value
        out.append(f'li x{d},{random.choice(specials)}')
    out.append(f'sd x{d},0(x2)'); out.append('addi x2,x2,8'); n+=1
out.append('la x2,buf')
for r in range(1,32):
    if r!=2: out.append(f'sd x{r},{8*r}(x2)')
out += ['li a0,1','la a1,buf','li a2,%d' % (256+8*n),'li a7,64','ecall','li a0,0','li a7,93','ecall','.bss','.align 3','buf: .space %d' % (256+8*n+256) + '']
print('\n'.join(out))
