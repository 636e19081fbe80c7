/*
 * bytecode: a stack-machine interpreter with `switch` dispatch, running programs written
 * in its own bytecode.
 *
 * The opcode switch is dense (0..N-1 with a default), so GCC compiles it to a jump table:
 * one indirect jump per executed bytecode, to many different targets. That is the
 * indirect-branch pattern (and the block-chaining stress) that a binary translator must
 * handle well. The `dispatch` function is marked noinline so the table stays in one place.
 *
 * A tiny assembler with labels builds the programs:
 *   - loop: sum of ((i*i) mod 7) xor i for i < 100000 (tight loop)
 *   - fib:  recursive fib(24) through CALL/RET on the interpreter's own call stack
 *   - sieve: primes below 50000 in the VM's memory
 *   - collatz: the longest Collatz chain below 3000 (nested loops, DIV/MOD)
 *   - gcd: a table of gcds, exercising every comparison and jumps
 * Each prints its result and the number of bytecodes executed.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum op {
    OP_HALT, OP_PUSH, OP_POP, OP_DUP, OP_SWAP, OP_OVER, OP_ROT,
    OP_ADD, OP_SUB, OP_MUL, OP_DIV, OP_MOD, OP_NEG,
    OP_AND, OP_OR, OP_XOR, OP_SHL, OP_SHR,
    OP_EQ, OP_NE, OP_LT, OP_LE, OP_GT, OP_GE,
    OP_JMP, OP_JZ, OP_JNZ,
    OP_CALL, OP_RET,
    OP_LOAD, OP_STORE,     /* global memory: addr on stack */
    OP_LGET, OP_LSET,      /* frame locals: index operand */
    OP_INC, OP_DEC,
    OP_PRINT,
    OP_COUNT
};

static const char *const op_names[OP_COUNT] = {
    "halt", "push", "pop", "dup", "swap", "over", "rot", "add", "sub", "mul", "div", "mod",
    "neg", "and", "or", "xor", "shl", "shr", "eq", "ne", "lt", "le", "gt", "ge", "jmp", "jz",
    "jnz", "call", "ret", "load", "store", "lget", "lset", "inc", "dec", "print",
};

/* ---- assembler: code is int64 words; operands follow their opcode ---- */

#define MAX_CODE 4096
#define MAX_LABELS 64

struct asm_state {
    int64_t code[MAX_CODE];
    int len;
    int label_pos[MAX_LABELS];
    int fixup_at[MAX_LABELS * 8], fixup_label[MAX_LABELS * 8];
    int nfix;
};

static void emit(struct asm_state *a, int64_t w)
{
    if (a->len >= MAX_CODE) {
        printf("assembler: program too long\n");
        exit(2);
    }
    a->code[a->len++] = w;
}

static void op0(struct asm_state *a, enum op o) { emit(a, o); }
static void op1(struct asm_state *a, enum op o, int64_t v)
{
    emit(a, o);
    emit(a, v);
}
static void label(struct asm_state *a, int l) { a->label_pos[l] = a->len; }
static void jump(struct asm_state *a, enum op o, int l)
{
    emit(a, o);
    a->fixup_at[a->nfix] = a->len;
    a->fixup_label[a->nfix++] = l;
    emit(a, 0);
}
static void link_labels(struct asm_state *a)
{
    for (int i = 0; i < a->nfix; i++)
        a->code[a->fixup_at[i]] = a->label_pos[a->fixup_label[i]];
}

/* ---- the interpreter ---- */

#define STACK 4096
#define FRAMES 1024
#define LOCALS 4
#define MEMORY 65536

struct vm {
    int64_t stack[STACK];
    int sp;
    struct {
        int ret;
        int64_t locals[LOCALS];
    } frames[FRAMES];
    int fp;
    int64_t mem[MEMORY];
    uint64_t executed;
    uint64_t op_counts[OP_COUNT];
    int64_t printed[16];
    int nprinted;
};

enum vm_status { VM_OK, VM_STACK, VM_DIV0, VM_BADOP, VM_MEM, VM_FRAMES };

#define NEED(n)                                                                                \
    do {                                                                                       \
        if (vm->sp < (n))                                                                      \
            return VM_STACK;                                                                   \
    } while (0)

__attribute__((noinline)) static enum vm_status dispatch(struct vm *vm, const int64_t *code,
                                                         int len)
{
    int pc = 0;
    int64_t a, b;
    for (;;) {
        if (pc < 0 || pc >= len)
            return VM_BADOP;
        int64_t op = code[pc++];
        vm->executed++;
        if (op >= 0 && op < OP_COUNT)
            vm->op_counts[op]++;
        switch (op) {
        case OP_HALT:
            return VM_OK;
        case OP_PUSH:
            if (vm->sp >= STACK)
                return VM_STACK;
            vm->stack[vm->sp++] = code[pc++];
            break;
        case OP_POP:
            NEED(1);
            vm->sp--;
            break;
        case OP_DUP:
            NEED(1);
            if (vm->sp >= STACK)
                return VM_STACK;
            vm->stack[vm->sp] = vm->stack[vm->sp - 1];
            vm->sp++;
            break;
        case OP_SWAP:
            NEED(2);
            a = vm->stack[vm->sp - 1];
            vm->stack[vm->sp - 1] = vm->stack[vm->sp - 2];
            vm->stack[vm->sp - 2] = a;
            break;
        case OP_OVER:
            NEED(2);
            if (vm->sp >= STACK)
                return VM_STACK;
            vm->stack[vm->sp] = vm->stack[vm->sp - 2];
            vm->sp++;
            break;
        case OP_ROT: /* a b c -> b c a */
            NEED(3);
            a = vm->stack[vm->sp - 3];
            vm->stack[vm->sp - 3] = vm->stack[vm->sp - 2];
            vm->stack[vm->sp - 2] = vm->stack[vm->sp - 1];
            vm->stack[vm->sp - 1] = a;
            break;
#define BINOP(name, expr)                                                                      \
    case name:                                                                                 \
        NEED(2);                                                                               \
        b = vm->stack[--vm->sp];                                                               \
        a = vm->stack[vm->sp - 1];                                                             \
        vm->stack[vm->sp - 1] = (expr);                                                        \
        break;
            BINOP(OP_ADD, (int64_t)((uint64_t)a + (uint64_t)b))
            BINOP(OP_SUB, (int64_t)((uint64_t)a - (uint64_t)b))
            BINOP(OP_MUL, (int64_t)((uint64_t)a * (uint64_t)b))
            BINOP(OP_AND, a & b)
            BINOP(OP_OR, a | b)
            BINOP(OP_XOR, a ^ b)
            BINOP(OP_SHL, (int64_t)((uint64_t)a << (b & 63)))
            BINOP(OP_SHR, a >> (b & 63))
            BINOP(OP_EQ, a == b)
            BINOP(OP_NE, a != b)
            BINOP(OP_LT, a < b)
            BINOP(OP_LE, a <= b)
            BINOP(OP_GT, a > b)
            BINOP(OP_GE, a >= b)
        case OP_DIV:
        case OP_MOD:
            NEED(2);
            b = vm->stack[--vm->sp];
            a = vm->stack[vm->sp - 1];
            if (b == 0 || (a == INT64_MIN && b == -1))
                return VM_DIV0;
            vm->stack[vm->sp - 1] = op == OP_DIV ? a / b : a % b;
            break;
        case OP_NEG:
            NEED(1);
            vm->stack[vm->sp - 1] = (int64_t)(0 - (uint64_t)vm->stack[vm->sp - 1]);
            break;
        case OP_JMP:
            pc = (int)code[pc];
            break;
        case OP_JZ:
            NEED(1);
            pc = vm->stack[--vm->sp] == 0 ? (int)code[pc] : pc + 1;
            break;
        case OP_JNZ:
            NEED(1);
            pc = vm->stack[--vm->sp] != 0 ? (int)code[pc] : pc + 1;
            break;
        case OP_CALL: /* callee finds its argument on the stack */
            if (vm->fp + 1 >= FRAMES)
                return VM_FRAMES;
            vm->fp++;
            vm->frames[vm->fp].ret = pc + 1;
            memset(vm->frames[vm->fp].locals, 0, sizeof vm->frames[vm->fp].locals);
            pc = (int)code[pc];
            break;
        case OP_RET:
            if (vm->fp == 0)
                return VM_FRAMES;
            pc = vm->frames[vm->fp--].ret;
            break;
        case OP_LOAD:
            NEED(1);
            a = vm->stack[vm->sp - 1];
            if (a < 0 || a >= MEMORY)
                return VM_MEM;
            vm->stack[vm->sp - 1] = vm->mem[a];
            break;
        case OP_STORE: /* value addr -> */
            NEED(2);
            a = vm->stack[--vm->sp];
            b = vm->stack[--vm->sp];
            if (a < 0 || a >= MEMORY)
                return VM_MEM;
            vm->mem[a] = b;
            break;
        case OP_LGET:
            if (vm->sp >= STACK)
                return VM_STACK;
            vm->stack[vm->sp++] = vm->frames[vm->fp].locals[code[pc++] & (LOCALS - 1)];
            break;
        case OP_LSET:
            NEED(1);
            vm->frames[vm->fp].locals[code[pc++] & (LOCALS - 1)] = vm->stack[--vm->sp];
            break;
        case OP_INC:
            NEED(1);
            vm->stack[vm->sp - 1]++;
            break;
        case OP_DEC:
            NEED(1);
            vm->stack[vm->sp - 1]--;
            break;
        case OP_PRINT:
            NEED(1);
            a = vm->stack[--vm->sp];
            if (vm->nprinted < 16)
                vm->printed[vm->nprinted++] = a;
            break;
        default:
            return VM_BADOP;
        }
    }
}

static struct vm machine;

static void run(const char *name, struct asm_state *a)
{
    link_labels(a);
    memset(&machine, 0, sizeof machine);
    enum vm_status st = dispatch(&machine, a->code, a->len);
    static const char *const status[] = {"ok", "stack error", "division by zero", "bad opcode",
                                         "bad address", "call depth"};
    printf("%-8s %-16s %zu bytecode words, %llu executed, result", name, status[st],
           (size_t)a->len, (unsigned long long)machine.executed);
    for (int i = 0; i < machine.nprinted; i++)
        printf(" %lld", (long long)machine.printed[i]);
    printf("\n");
    /* the three most executed opcodes, ties broken by opcode number */
    int best[3] = {-1, -1, -1};
    for (int k = 0; k < 3; k++)
        for (int o = 0; o < OP_COUNT; o++) {
            if (o == best[0] || o == best[1])
                continue;
            if (best[k] < 0 || machine.op_counts[o] > machine.op_counts[best[k]])
                best[k] = o;
        }
    printf("         hottest: %s %llu, %s %llu, %s %llu\n", op_names[best[0]],
           (unsigned long long)machine.op_counts[best[0]], op_names[best[1]],
           (unsigned long long)machine.op_counts[best[1]], op_names[best[2]],
           (unsigned long long)machine.op_counts[best[2]]);
}

/* sum over i < n of (i*i) % 7 ^ i */
static void prog_loop(struct asm_state *a, int64_t n)
{
    enum { L_TOP, L_END };
    op1(a, OP_PUSH, 0);
    op1(a, OP_LSET, 0); /* i */
    op1(a, OP_PUSH, 0);
    op1(a, OP_LSET, 1); /* sum */
    label(a, L_TOP);
    op1(a, OP_LGET, 0);
    op1(a, OP_PUSH, n);
    op0(a, OP_LT);
    jump(a, OP_JZ, L_END);
    op1(a, OP_LGET, 0);
    op0(a, OP_DUP);
    op0(a, OP_MUL);
    op1(a, OP_PUSH, 7);
    op0(a, OP_MOD);
    op1(a, OP_LGET, 0);
    op0(a, OP_XOR);
    op1(a, OP_LGET, 1);
    op0(a, OP_ADD);
    op1(a, OP_LSET, 1);
    op1(a, OP_LGET, 0);
    op0(a, OP_INC);
    op1(a, OP_LSET, 0);
    jump(a, OP_JMP, L_TOP);
    label(a, L_END);
    op1(a, OP_LGET, 1);
    op0(a, OP_PRINT);
    op0(a, OP_HALT);
}

/* recursive fib(n) with the argument passed on the stack */
static void prog_fib(struct asm_state *a, int64_t n)
{
    enum { L_FIB, L_BASE };
    op1(a, OP_PUSH, n);
    jump(a, OP_CALL, L_FIB);
    op0(a, OP_PRINT);
    op0(a, OP_HALT);
    label(a, L_FIB); /* n -> fib(n) */
    op0(a, OP_DUP);
    op1(a, OP_PUSH, 2);
    op0(a, OP_LT);
    jump(a, OP_JNZ, L_BASE);
    op0(a, OP_DUP);
    op1(a, OP_LSET, 0);
    op0(a, OP_DEC);
    jump(a, OP_CALL, L_FIB);
    op1(a, OP_LGET, 0);
    op1(a, OP_PUSH, 2);
    op0(a, OP_SUB);
    jump(a, OP_CALL, L_FIB);
    op0(a, OP_ADD);
    op0(a, OP_RET);
    label(a, L_BASE);
    op0(a, OP_RET);
}

/* sieve of Eratosthenes in VM memory; prints the count and the largest prime */
static void prog_sieve(struct asm_state *a, int64_t n)
{
    enum { L_OUTER, L_INNER, L_NEXT, L_DONE, L_COUNT, L_SKIP, L_END };
    op1(a, OP_PUSH, 2);
    op1(a, OP_LSET, 0); /* i */
    label(a, L_OUTER);
    op1(a, OP_LGET, 0);
    op0(a, OP_DUP);
    op0(a, OP_MUL);
    op1(a, OP_PUSH, n);
    op0(a, OP_GE);
    jump(a, OP_JNZ, L_DONE);
    op1(a, OP_LGET, 0);
    op0(a, OP_LOAD);
    jump(a, OP_JNZ, L_NEXT); /* composite: skip */
    op1(a, OP_LGET, 0);
    op0(a, OP_DUP);
    op0(a, OP_MUL);
    op1(a, OP_LSET, 1); /* j = i*i */
    label(a, L_INNER);
    op1(a, OP_LGET, 1);
    op1(a, OP_PUSH, n);
    op0(a, OP_GE);
    jump(a, OP_JNZ, L_NEXT);
    op1(a, OP_PUSH, 1);
    op1(a, OP_LGET, 1);
    op0(a, OP_STORE); /* mem[j] = 1 */
    op1(a, OP_LGET, 1);
    op1(a, OP_LGET, 0);
    op0(a, OP_ADD);
    op1(a, OP_LSET, 1);
    jump(a, OP_JMP, L_INNER);
    label(a, L_NEXT);
    op1(a, OP_LGET, 0);
    op0(a, OP_INC);
    op1(a, OP_LSET, 0);
    jump(a, OP_JMP, L_OUTER);
    label(a, L_DONE);
    /* count: k from 2 to n-1 */
    op1(a, OP_PUSH, 2);
    op1(a, OP_LSET, 0);
    op1(a, OP_PUSH, 0);
    op1(a, OP_LSET, 2); /* count */
    label(a, L_COUNT);
    op1(a, OP_LGET, 0);
    op1(a, OP_PUSH, n);
    op0(a, OP_LT);
    jump(a, OP_JZ, L_END);
    op1(a, OP_LGET, 0);
    op0(a, OP_LOAD);
    jump(a, OP_JNZ, L_SKIP);
    op1(a, OP_LGET, 2);
    op0(a, OP_INC);
    op1(a, OP_LSET, 2);
    op1(a, OP_LGET, 0);
    op1(a, OP_LSET, 3); /* last prime */
    label(a, L_SKIP);
    op1(a, OP_LGET, 0);
    op0(a, OP_INC);
    op1(a, OP_LSET, 0);
    jump(a, OP_JMP, L_COUNT);
    label(a, L_END);
    op1(a, OP_LGET, 2);
    op0(a, OP_PRINT);
    op1(a, OP_LGET, 3);
    op0(a, OP_PRINT);
    op0(a, OP_HALT);
}

/* longest Collatz chain for a start below n: prints the start and its length */
static void prog_collatz(struct asm_state *a, int64_t n)
{
    enum { L_OUTER, L_CHAIN, L_EVEN, L_STEP, L_CHAIN_END, L_NOT_BEST, L_END };
    op1(a, OP_PUSH, 1);
    op1(a, OP_LSET, 0); /* start */
    op1(a, OP_PUSH, 0);
    op1(a, OP_LSET, 2); /* best length */
    label(a, L_OUTER);
    op1(a, OP_LGET, 0);
    op1(a, OP_PUSH, n);
    op0(a, OP_LT);
    jump(a, OP_JZ, L_END);
    op1(a, OP_LGET, 0); /* x on stack */
    op1(a, OP_PUSH, 1);
    op1(a, OP_LSET, 1); /* length */
    label(a, L_CHAIN);
    op0(a, OP_DUP);
    op1(a, OP_PUSH, 1);
    op0(a, OP_EQ);
    jump(a, OP_JNZ, L_CHAIN_END);
    op0(a, OP_DUP);
    op1(a, OP_PUSH, 2);
    op0(a, OP_MOD);
    jump(a, OP_JZ, L_EVEN);
    op1(a, OP_PUSH, 3);
    op0(a, OP_MUL);
    op0(a, OP_INC);
    jump(a, OP_JMP, L_STEP);
    label(a, L_EVEN);
    op1(a, OP_PUSH, 2);
    op0(a, OP_DIV);
    label(a, L_STEP);
    op1(a, OP_LGET, 1);
    op0(a, OP_INC);
    op1(a, OP_LSET, 1);
    jump(a, OP_JMP, L_CHAIN);
    label(a, L_CHAIN_END);
    op0(a, OP_POP);
    op1(a, OP_LGET, 1);
    op1(a, OP_LGET, 2);
    op0(a, OP_GT);
    jump(a, OP_JZ, L_NOT_BEST);
    op1(a, OP_LGET, 1);
    op1(a, OP_LSET, 2);
    op1(a, OP_LGET, 0);
    op1(a, OP_LSET, 3);
    label(a, L_NOT_BEST);
    op1(a, OP_LGET, 0);
    op0(a, OP_INC);
    op1(a, OP_LSET, 0);
    jump(a, OP_JMP, L_OUTER);
    label(a, L_END);
    op1(a, OP_LGET, 3);
    op0(a, OP_PRINT);
    op1(a, OP_LGET, 2);
    op0(a, OP_PRINT);
    op0(a, OP_HALT);
}

/* sum of gcd(i, j) over 1 <= i, j < n with Euclid by subtraction; uses LE/NE/SUB/ROT/OVER */
static void prog_gcd(struct asm_state *a, int64_t n)
{
    enum { L_I, L_J, L_EUCLID, L_SWAPPED, L_DONE_GCD, L_NEXT_I, L_END };
    op1(a, OP_PUSH, 0);
    op1(a, OP_LSET, 2); /* sum */
    op1(a, OP_PUSH, 1);
    op1(a, OP_LSET, 0); /* i */
    label(a, L_I);
    op1(a, OP_LGET, 0);
    op1(a, OP_PUSH, n);
    op0(a, OP_GE);
    jump(a, OP_JNZ, L_END);
    op1(a, OP_PUSH, 1);
    op1(a, OP_LSET, 1); /* j */
    label(a, L_J);
    op1(a, OP_LGET, 1);
    op1(a, OP_PUSH, n);
    op0(a, OP_GE);
    jump(a, OP_JNZ, L_NEXT_I);
    op1(a, OP_LGET, 0);
    op1(a, OP_LGET, 1); /* a b */
    label(a, L_EUCLID);
    op0(a, OP_OVER);
    op0(a, OP_OVER);
    op0(a, OP_NE);
    jump(a, OP_JZ, L_DONE_GCD);
    op0(a, OP_OVER);
    op0(a, OP_OVER);
    op0(a, OP_LE); /* a <= b ? */
    jump(a, OP_JNZ, L_SWAPPED);
    op0(a, OP_SWAP); /* now a < b is false: make it b a */
    label(a, L_SWAPPED);
    /* stack: small big -> small (big - small) */
    op0(a, OP_OVER);
    op0(a, OP_SUB);
    jump(a, OP_JMP, L_EUCLID);
    label(a, L_DONE_GCD);
    op0(a, OP_POP);
    op1(a, OP_LGET, 2);
    op0(a, OP_ADD);
    op1(a, OP_LSET, 2);
    op1(a, OP_PUSH, 5);
    op1(a, OP_PUSH, 6);
    op1(a, OP_PUSH, 7);
    op0(a, OP_ROT); /* 6 7 5 */
    op0(a, OP_SHL); /* 6 (7<<5) */
    op0(a, OP_OR);  /* 6 | 224 = 230 */
    op1(a, OP_PUSH, 230);
    op0(a, OP_XOR); /* 0 */
    op1(a, OP_LGET, 2);
    op0(a, OP_ADD);
    op1(a, OP_LSET, 2);
    op1(a, OP_LGET, 1);
    op0(a, OP_INC);
    op1(a, OP_LSET, 1);
    jump(a, OP_JMP, L_J);
    label(a, L_NEXT_I);
    op1(a, OP_LGET, 0);
    op0(a, OP_INC);
    op1(a, OP_LSET, 0);
    jump(a, OP_JMP, L_I);
    label(a, L_END);
    op1(a, OP_LGET, 2);
    op0(a, OP_PRINT);
    op1(a, OP_PUSH, -1000);
    op1(a, OP_PUSH, 3);
    op0(a, OP_SHR);
    op0(a, OP_NEG);
    op0(a, OP_PRINT); /* 125 */
    op0(a, OP_HALT);
}

static struct asm_state prog;

int main(void)
{
    memset(&prog, 0, sizeof prog);
    prog_loop(&prog, 100000);
    run("loop", &prog);
    memset(&prog, 0, sizeof prog);
    prog_fib(&prog, 24);
    run("fib", &prog);
    memset(&prog, 0, sizeof prog);
    prog_sieve(&prog, 50000);
    run("sieve", &prog);
    memset(&prog, 0, sizeof prog);
    prog_collatz(&prog, 3000);
    run("collatz", &prog);
    memset(&prog, 0, sizeof prog);
    prog_gcd(&prog, 120);
    run("gcd", &prog);

    /* error paths: each must stop cleanly with its status */
    memset(&prog, 0, sizeof prog);
    op1(&prog, OP_PUSH, 1);
    op1(&prog, OP_PUSH, 0);
    op0(&prog, OP_DIV);
    op0(&prog, OP_HALT);
    run("div0", &prog);
    memset(&prog, 0, sizeof prog);
    op0(&prog, OP_ADD);
    run("underflow", &prog);
    memset(&prog, 0, sizeof prog);
    op1(&prog, OP_PUSH, 99);
    emit(&prog, 77);
    run("badop", &prog);
    return 0;
}
