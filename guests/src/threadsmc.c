/*
 * threadsmc: code written by one thread and run by another. Two threads take turns over
 * 12 generations; in generation g thread g % 2 writes and the other calls:
 *
 *   1. the caller calls the current function 3 000 times (any JIT has compiled it by
 *      then); all must return the previous generation's value; it then tells the writer
 *   2. the writer changes the code, calls __builtin___clear_cache (riscv_flush_icache for
 *      all harts), and then raises a flag. Generations 2, 3, 6, 7, 10, 11 rewrite one
 *      instruction word in place (the loop count of a function that returns it by
 *      counting: one aligned 32-bit store, so a caller sees the old or the new word, never
 *      a mixture); the others write a fresh copy at a new address, never run before, and
 *      publish its pointer. So each thread rewrites in place and publishes copies, and
 *      calls code written by itself and by the other thread
 *   3. the caller keeps calling until it gets the new value. A call that starts after it
 *      saw the flag must return the new value (the flush is done by then); any value but
 *      the old and the new one is an error; and once it has the new value it calls 1 000
 *      more times, all of which must return it
 *
 * The handshakes fix what each generation sees (the old value, then the new one), so the
 * output does not depend on the timing; how many calls returned the old value does, and is
 * not printed. RISC-V only: the code is hand-encoded RV64 (as in smc.c).
 */
#if !defined(__riscv) || __riscv_xlen != 64
#error "threadsmc writes RV64 machine code and builds only for riscv64"
#endif

#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#define GENERATIONS 12
#define WARM_CALLS 3000
#define AFTER_CALLS 1000
#define SLOT_WORDS 16

typedef long (*fn0)(void);

/* ---- encoders (RV64I) ---- */

enum { ZERO = 0, RA = 1, T0 = 5, A0 = 10 };

static uint32_t enc_i(uint32_t opcode, uint32_t funct3, int rd, int rs1, int32_t imm)
{
    return ((uint32_t)imm & 0xFFF) << 20 | (uint32_t)rs1 << 15 | funct3 << 12 |
           (uint32_t)rd << 7 | opcode;
}

static uint32_t addi(int rd, int rs1, int32_t imm) { return enc_i(0x13, 0, rd, rs1, imm); }

static uint32_t ret(void) { return enc_i(0x67, 0, ZERO, RA, 0); }

static uint32_t bne(int rs1, int rs2, int32_t off)
{
    uint32_t o = (uint32_t)off;
    return ((o >> 12) & 1) << 31 | ((o >> 5) & 0x3F) << 25 | (uint32_t)rs2 << 20 |
           (uint32_t)rs1 << 15 | 1u << 12 | ((o >> 1) & 0xF) << 8 | ((o >> 11) & 1) << 7 | 0x63;
}

/* f() = n, by counting: t0 = n; a0 = 0; do { a0 += 1; t0 -= 1 } while (t0 != 0); ret.
   Word 0 holds n: rewriting it is one aligned store. */
static void write_counter(uint32_t *code, int n)
{
    code[1] = addi(A0, ZERO, 0);
    code[2] = addi(A0, A0, 1);
    code[3] = addi(T0, T0, -1);
    code[4] = bne(T0, ZERO, -8);
    code[5] = ret();
    __atomic_store_n(&code[0], addi(T0, ZERO, n), __ATOMIC_RELAXED);
}

static int gen_value(int g) { return 100 + 37 * g; } /* < 2048: fits addi */

/* ---- shared state ---- */

static uint32_t *arena;         /* RWX: slot k at arena + k * SLOT_WORDS */
static fn0 current;             /* atomic: the function to call */
static int warmed, written, got; /* atomic: last generation at each handshake step */

struct gen_report {
    int writer, caller, in_place;
    long warm_wrong, after_flag_stale, other_values, after_wrong;
    long first, last;
};
static struct gen_report report[GENERATIONS + 1];

static void wait_for(int *flag, int g)
{
    int spins = 0;
    while (__atomic_load_n(flag, __ATOMIC_ACQUIRE) < g)
        if (++spins % 32 == 0)
            sched_yield();
}

static long call_current(void) { return __atomic_load_n(&current, __ATOMIC_ACQUIRE)(); }

static void be_caller(int self, int g)
{
    struct gen_report *r = &report[g];
    const long old = gen_value(g - 1), new = gen_value(g);
    r->caller = self;
    for (int i = 0; i < WARM_CALLS; i++)
        r->warm_wrong += call_current() != old;
    r->first = call_current();
    __atomic_store_n(&warmed, g, __ATOMIC_RELEASE);
    for (;;) {
        int flag = __atomic_load_n(&written, __ATOMIC_ACQUIRE) >= g;
        long v = call_current();
        if (v == new)
            break;
        if (v != old)
            r->other_values++;
        else if (flag)
            r->after_flag_stale++;
        if (r->after_flag_stale + r->other_values > 1000) /* give up: report it */
            break;
    }
    for (int i = 0; i < AFTER_CALLS; i++)
        r->after_wrong += call_current() != new;
    r->last = call_current();
    __atomic_store_n(&got, g, __ATOMIC_RELEASE);
}

static void be_writer(int self, int g)
{
    struct gen_report *r = &report[g];
    r->writer = self;
    r->in_place = g % 4 >= 2; /* each thread does both kinds */
    wait_for(&warmed, g);
    if (r->in_place) {
        uint32_t *code = (uint32_t *)(uintptr_t)__atomic_load_n(&current, __ATOMIC_RELAXED);
        __atomic_store_n(&code[0], addi(T0, ZERO, gen_value(g)), __ATOMIC_RELAXED);
        __builtin___clear_cache((char *)code, (char *)(code + 1));
    } else {
        uint32_t *code = arena + g * SLOT_WORDS; /* never run before */
        write_counter(code, gen_value(g));
        __builtin___clear_cache((char *)code, (char *)(code + SLOT_WORDS));
        __atomic_store_n(&current, (fn0)(uintptr_t)code, __ATOMIC_RELEASE);
    }
    __atomic_store_n(&written, g, __ATOMIC_RELEASE);
    wait_for(&got, g);
}

static void *player(void *arg)
{
    int self = (int)(intptr_t)arg;
    for (int g = 1; g <= GENERATIONS; g++) {
        if (g % 2 == self)
            be_writer(self, g);
        else
            be_caller(self, g);
    }
    return NULL;
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    const size_t len = (size_t)(GENERATIONS + 1) * SLOT_WORDS * 4;
    arena = mmap(NULL, len, PROT_READ | PROT_WRITE | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1,
                 0);
    if (arena == MAP_FAILED) {
        printf("mmap failed\n");
        return 1;
    }
    write_counter(arena, gen_value(0));
    __builtin___clear_cache((char *)arena, (char *)(arena + SLOT_WORDS));
    current = (fn0)(uintptr_t)arena;
    long first = call_current();
    printf("threadsmc: generation 0 written by main, returns %ld\n", first);

    pthread_t th[2];
    for (long t = 0; t < 2; t++)
        if (pthread_create(&th[t], NULL, player, (void *)t)) {
            printf("pthread_create failed\n");
            return 1;
        }
    for (int t = 0; t < 2; t++)
        pthread_join(th[t], NULL);

    int failures = first != gen_value(0);
    for (int g = 1; g <= GENERATIONS; g++) {
        const struct gen_report *r = &report[g];
        printf("generation %d: thread %d %s, thread %d saw %ld then %ld", g, r->writer,
               r->in_place ? "rewrote the loop count in place" : "published a new copy",
               r->caller, r->first, r->last);
        int bad = r->warm_wrong || r->after_flag_stale || r->other_values || r->after_wrong ||
                  r->first != gen_value(g - 1) || r->last != gen_value(g);
        if (bad)
            printf(" FAIL: warm-up wrong %ld, stale after the flag %ld, other values %ld, "
                   "wrong after %ld",
                   r->warm_wrong, r->after_flag_stale, r->other_values, r->after_wrong);
        printf("\n");
        failures += bad;
    }
    printf("threadsmc: %s (%d failures)\n", failures ? "FAILED" : "all checks passed", failures);
    munmap(arena, len);
    return failures ? 1 : 0;
}
