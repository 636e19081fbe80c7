/*
 * smc: self-modifying code. Writes hand-encoded RISC-V machine code into memory, runs it,
 * rewrites it, synchronises the instruction stream, and runs it again. A translator that
 * caches code must notice every rewrite (or be told by the fence.i / riscv_flush_icache
 * that follows it) and never run a stale translation.
 *
 *   1. RWX mapping: `li a0, 42; ret`, called; rewritten to `li a0, 1234` (lui + addi),
 *      __builtin___clear_cache (glibc's __riscv_flush_icache -> riscv_flush_icache
 *      syscall when there is no vDSO), called again
 *   2. W^X style: RW mapping, write, mprotect to RX, call; mprotect back to RW, patch,
 *      mprotect RX, fence.i, call
 *   3. a hot loop function (a1 * K by repeated addition) called until any JIT would have
 *      compiled it, then its loop count K is patched 200 times, alternating the syscall and
 *      a bare fence.i
 *   4. compressed instructions: a function of 16-bit instructions, patched in place
 *   5. an instruction that straddles a page boundary, patched in its second half
 *   6. code generated into fresh memory in a loop: 300 different functions at different
 *      addresses, each called once (and an old address reused with new code)
 *
 * RISC-V only: the machine code is RV64 and the cache flush semantics are RISC-V's.
 */
#if !defined(__riscv) || __riscv_xlen != 64
#error "smc writes RV64 machine code and builds only for riscv64"
#endif

#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

typedef long (*fn0)(void);
typedef long (*fn1)(long, long);

static int failures;

static void check(long got, long want, const char *what)
{
    if (got != want) {
        failures++;
        printf("FAIL: %s: got %ld want %ld\n", what, got, want);
    }
}

/* ---- encoders for the few instructions used (RV64I base, 32-bit forms) ---- */

enum { ZERO = 0, RA = 1, T0 = 5, A0 = 10, A1 = 11 };

static uint32_t enc_i(uint32_t opcode, uint32_t funct3, int rd, int rs1, int32_t imm)
{
    return ((uint32_t)imm & 0xFFF) << 20 | (uint32_t)rs1 << 15 | funct3 << 12 |
           (uint32_t)rd << 7 | opcode;
}

static uint32_t addi(int rd, int rs1, int32_t imm) { return enc_i(0x13, 0, rd, rs1, imm); }

static uint32_t lui(int rd, int32_t imm20)
{
    return ((uint32_t)imm20 & 0xFFFFF) << 12 | (uint32_t)rd << 7 | 0x37;
}

static uint32_t add(int rd, int rs1, int rs2)
{
    return (uint32_t)rs2 << 20 | (uint32_t)rs1 << 15 | (uint32_t)rd << 7 | 0x33;
}

static uint32_t ret(void) { return enc_i(0x67, 0, ZERO, RA, 0); } /* jalr x0, 0(ra) */

/* bne rs1, rs2, offset (offset in bytes, even, +-4 KiB) */
static uint32_t bne(int rs1, int rs2, int32_t off)
{
    uint32_t o = (uint32_t)off;
    return ((o >> 12) & 1) << 31 | ((o >> 5) & 0x3F) << 25 | (uint32_t)rs2 << 20 |
           (uint32_t)rs1 << 15 | 1u << 12 | ((o >> 1) & 0xF) << 8 | ((o >> 11) & 1) << 7 | 0x63;
}

/* Loads any 32-bit signed constant: lui + addi, with the usual +0x800 rounding. */
static int li32(uint32_t *out, int rd, int32_t value)
{
    int32_t lo = (int32_t)((uint32_t)value << 20) >> 20;
    int32_t hi = (int32_t)(((uint32_t)value - (uint32_t)lo) >> 12);
    if (hi == 0) {
        out[0] = addi(rd, ZERO, lo);
        return 1;
    }
    out[0] = lui(rd, hi);
    out[1] = enc_i(0x1B, 0, rd, rd, lo); /* addiw: stays sign-extended 32-bit */
    return 2;
}

/* compressed: c.li rd, imm6 and c.jr ra (ret) and c.addi rd, imm6 */
static uint16_t c_li(int rd, int imm)
{
    return (uint16_t)(0x4001 | ((imm >> 5) & 1) << 12 | rd << 7 | (imm & 0x1F) << 2);
}

static uint16_t c_addi(int rd, int imm)
{
    return (uint16_t)(0x0001 | ((imm >> 5) & 1) << 12 | rd << 7 | (imm & 0x1F) << 2);
}

static const uint16_t C_RET = 0x8082;

static void sync_icache(void *start, size_t len, int use_fence)
{
    if (use_fence)
        __asm__ volatile("fence.i" ::: "memory");
    else
        __builtin___clear_cache((char *)start, (char *)start + len);
}

static void *map_code(size_t len, int prot)
{
    void *p = mmap(NULL, len, prot, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
        printf("mmap failed\n");
        return NULL;
    }
    return p;
}

/* ---- the tests ---- */

static void test_rwx(void)
{
    const long page = sysconf(_SC_PAGESIZE);
    uint32_t *code = map_code((size_t)page, PROT_READ | PROT_WRITE | PROT_EXEC);
    if (!code)
        return;
    code[0] = addi(A0, ZERO, 42);
    code[1] = ret();
    sync_icache(code, 8, 0);
    long r1 = ((fn0)(uintptr_t)code)();
    int n = li32(code, A0, 1234);
    code[n] = ret();
    sync_icache(code, 12, 0);
    long r2 = ((fn0)(uintptr_t)code)();
    n = li32(code, A0, -100000);
    code[n] = ret();
    sync_icache(code, 12, 0);
    long r3 = ((fn0)(uintptr_t)code)();
    printf("1. rwx: li a0,42 -> %ld; rewritten li a0,1234 -> %ld; li a0,-100000 -> %ld\n", r1,
           r2, r3);
    check(r1, 42, "rwx first");
    check(r2, 1234, "rwx rewritten");
    check(r3, -100000, "rwx rewritten negative");
    munmap(code, (size_t)page);
}

static void test_wxorx(void)
{
    const long page = sysconf(_SC_PAGESIZE);
    uint32_t *code = map_code((size_t)page, PROT_READ | PROT_WRITE);
    if (!code)
        return;
    /* f(a0, a1) = a0 + a1 + 7 */
    code[0] = add(A0, A0, A1);
    code[1] = addi(A0, A0, 7);
    code[2] = ret();
    int p1 = mprotect(code, (size_t)page, PROT_READ | PROT_EXEC);
    sync_icache(code, 12, 1);
    long r1 = ((fn1)(uintptr_t)code)(30, 5);
    int p2 = mprotect(code, (size_t)page, PROT_READ | PROT_WRITE);
    code[1] = addi(A0, A0, -7);
    int p3 = mprotect(code, (size_t)page, PROT_READ | PROT_EXEC);
    sync_icache(code, 12, 1);
    long r2 = ((fn1)(uintptr_t)code)(30, 5);
    printf("2. w^x: mprotect %d %d %d; a0+a1+7 -> %ld; patched a0+a1-7 -> %ld\n", p1, p2, p3, r1,
           r2);
    check(r1, 42, "w^x first");
    check(r2, 28, "w^x patched");
    munmap(code, (size_t)page);
}

static void test_hot_loop(void)
{
    const long page = sysconf(_SC_PAGESIZE);
    uint32_t *code = map_code((size_t)page, PROT_READ | PROT_WRITE | PROT_EXEC);
    if (!code)
        return;
    /*   0: addi t0, zero, K
     *   4: addi a0, zero, 0
     *   8: add  a0, a0, a1      <- loop
     *  12: addi t0, t0, -1
     *  16: bne  t0, zero, -8
     *  20: ret                     returns a1 * K */
    code[0] = addi(T0, ZERO, 10);
    code[1] = addi(A0, ZERO, 0);
    code[2] = add(A0, A0, A1);
    code[3] = addi(T0, T0, -1);
    code[4] = bne(T0, ZERO, -8);
    code[5] = ret();
    sync_icache(code, 24, 0);
    fn1 f = (fn1)(uintptr_t)code;
    long warm = 0;
    for (int i = 0; i < 20000; i++)
        warm += f(0, i & 15);
    printf("3. hot loop: 20000 warm-up calls of a1*10, sum %ld\n", warm);
    check(warm, 1500000, "warm-up sum");

    long sum = 0;
    int wrong = 0;
    for (int k = 1; k <= 200; k++) {
        code[0] = addi(T0, ZERO, k);
        sync_icache(code, 4, k % 2);
        long r = 0;
        for (int rep = 0; rep < 5; rep++)
            r = f(0, 3);
        wrong += r != 3L * k;
        sum += r;
    }
    printf("   patched K = 1..200 (syscall and fence.i alternating): sum %ld, wrong results %d\n",
           sum, wrong);
    check(sum, 3L * 200 * 201 / 2, "patched loop sum");

    /* patch the loop body itself: add becomes add twice (a1 * 2K) via a rewritten branch */
    code[3] = add(A0, A0, A1);
    code[4] = addi(T0, T0, -1);
    code[5] = bne(T0, ZERO, -12);
    code[6] = ret();
    code[0] = addi(T0, ZERO, 50);
    sync_icache(code, 28, 0);
    long r = f(0, 4);
    printf("   loop body rewritten (two adds per iteration): 4 * 2 * 50 -> %ld\n", r);
    check(r, 400, "rewritten body");
    munmap(code, (size_t)page);
}

static void test_compressed(void)
{
    const long page = sysconf(_SC_PAGESIZE);
    uint16_t *code = map_code((size_t)page, PROT_READ | PROT_WRITE | PROT_EXEC);
    if (!code)
        return;
    code[0] = c_li(A0, 5);
    code[1] = c_addi(A0, 7);
    code[2] = c_addi(A0, -3);
    code[3] = C_RET;
    sync_icache(code, 8, 0);
    long r1 = ((fn0)(uintptr_t)code)();
    code[1] = c_addi(A0, 31);
    code[0] = c_li(A0, -32);
    sync_icache(code, 8, 1);
    long r2 = ((fn0)(uintptr_t)code)();
    /* replace two 16-bit instructions by one 32-bit one at the same place */
    uint32_t wide = addi(A0, A0, 1000);
    memcpy(&code[1], &wide, 4);
    sync_icache(code, 8, 0);
    long r3 = ((fn0)(uintptr_t)code)();
    printf("4. compressed: c.li 5, c.addi 7, c.addi -3 -> %ld; patched c.li -32, c.addi 31 -> "
           "%ld; 32-bit addi over both c.addi -> %ld\n",
           r1, r2, r3);
    check(r1, 9, "compressed");
    check(r2, -4, "compressed patched");
    check(r3, -32 + 1000, "mixed widths");
    munmap(code, (size_t)page);
}

static void test_page_straddle(void)
{
    const long page = sysconf(_SC_PAGESIZE);
    unsigned char *mem = map_code(2 * (size_t)page, PROT_READ | PROT_WRITE | PROT_EXEC);
    if (!mem)
        return;
    /* c.li a0, 0 at page-4; a 32-bit addi at page-2 (two bytes in each page); c.jr ra */
    unsigned char *start = mem + page - 4;
    uint16_t cli = c_li(A0, 0);
    memcpy(start, &cli, 2);
    uint32_t ins = addi(A0, A0, 0x123);
    memcpy(start + 2, &ins, 4);
    memcpy(start + 6, &C_RET, 2);
    sync_icache(start, 8, 0);
    long r1 = ((fn0)(uintptr_t)start)();
    /* the immediate's high bits live in the second page: patch only those bytes */
    uint32_t ins2 = addi(A0, A0, 0x456);
    memcpy(start + 4, (unsigned char *)&ins2 + 2, 2);
    sync_icache(start + 4, 2, 1);
    long r2 = ((fn0)(uintptr_t)start)();
    printf("5. straddling instruction: addi 0x123 -> 0x%lx; second half patched -> 0x%lx\n", r1,
           r2);
    check(r1, 0x123, "straddle");
    check(r2, 0x456, "straddle patched");
    munmap(mem, 2 * (size_t)page);
}

static void test_generated_functions(void)
{
    const size_t len = 64 * 1024;
    uint32_t *arena = map_code(len, PROT_READ | PROT_WRITE | PROT_EXEC);
    if (!arena)
        return;
    long sum = 0;
    int wrong = 0;
    for (int i = 0; i < 300; i++) {
        /* function i at a different offset each time, wrapping around to reuse space */
        size_t slot = ((size_t)i * 37) % (len / 4 - 8);
        uint32_t *f = arena + slot;
        int n = li32(f, A0, i * 1000 - 7);
        f[n++] = add(A0, A0, A1);
        f[n++] = ret();
        sync_icache(f, (size_t)n * 4, i % 3 == 0);
        long r = ((fn1)(uintptr_t)f)(0, i);
        wrong += r != (long)i * 1001 - 7;
        sum += r;
    }
    /* the same address holding different code in turn */
    uint32_t *f = arena + 100;
    long same = 0;
    for (int v = 0; v < 100; v++) {
        f[0] = addi(A0, ZERO, v);
        f[1] = ret();
        sync_icache(f, 8, v % 2);
        same += ((fn0)(uintptr_t)f)();
    }
    printf("6. generated: 300 functions, sum %ld, wrong %d; one address rewritten 100 times, sum "
           "%ld\n",
           sum, wrong, same);
    check(wrong, 0, "generated functions");
    check(same, 4950, "same address rewritten");
    munmap(arena, len);
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    test_rwx();
    test_wxorx();
    test_hot_loop();
    test_compressed();
    test_page_straddle();
    test_generated_functions();
    printf("smc: %s (%d failures)\n", failures ? "FAILED" : "all checks passed", failures);
    return failures ? 1 : 0;
}
