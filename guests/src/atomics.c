/*
 * atomics: RV64A across 4 threads. Every test starts its threads together at a barrier
 * and ends with totals that are fixed whatever the interleaving; old values returned by
 * the atomic operations are checked where they are fixed too (bits a thread owns).
 *
 *   1. __atomic_fetch_add / fetch_sub on int and long (amoadd.w / amoadd.d), relaxed,
 *      acquire, release and seq_cst (plain, .aq, .rl, .aqrl)
 *   2. __atomic_fetch_or / fetch_and / fetch_xor, and amoor / amoand / amoxor .w and .d in
 *      inline asm (plain, .aq, .rl, .aqrl): each thread owns a bit field of a shared word;
 *      the old values it gets back must show its own bits as it left them, and the final
 *      word is known
 *   3. __atomic_compare_exchange_n loops (lr/sc sequences), strong and weak, int and long:
 *      a packed (count, sum) pair updated as one
 *   4. amomin / amomax / amominu / amomaxu, .w and .d, with .aq/.rl/.aqrl variants (inline
 *      asm): final extremes, and the old values each thread sees move one way only
 *   5. amoswap .w and .d: values swapped in and out are conserved (sum and xor)
 *   6. hand-written lr.w/sc.w and lr.d/sc.d increment loops (plain, .aq/.rl, .aqrl), and a
 *      word updated by lr/sc in two threads and by amoadd in the other two at once
 *   7. an amoswap.w.aq spinlock (released by amoswap.w.rl or by fence rw,w + sw) protecting
 *      a plain counter and a two-word invariant
 *   8. fence rw,rw message passing: data words, fence, flag; the reader waits for the
 *      flag, fences, and must see the data; an acknowledgement flag the other way
 *
 * RISC-V only (inline assembly). A failed check prints "FAIL" and makes the exit code 1.
 */
#if !defined(__riscv) || __riscv_xlen != 64 || !defined(__riscv_atomic)
#error "atomics uses RV64A inline assembly and builds only for riscv64"
#endif

#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NT 4
#define ITERS 200000

static int failures;

static void check(int ok, const char *what)
{
    if (!ok) {
        failures++;
        printf("FAIL: %s\n", what);
    }
}

static uint64_t hash(uint64_t t, uint64_t i)
{
    uint64_t z = (t << 32 | i) + 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* One AMO instruction, spelled out: returns the old value. */
#define AMO(insn, p, v)                                                                       \
    ({                                                                                        \
        __typeof__(*(p)) _old;                                                                \
        __asm__ volatile(insn " %0, %2, %1" : "=r"(_old), "+A"(*(p)) : "r"(v) : "memory");    \
        _old;                                                                                 \
    })

static pthread_barrier_t start;

/* Runs fn(t) in NT threads started together; returns the sum of their results. */
static long run_threads(void *(*fn)(void *))
{
    pthread_t th[NT];
    pthread_barrier_init(&start, NULL, NT);
    for (long t = 0; t < NT; t++)
        if (pthread_create(&th[t], NULL, fn, (void *)t)) {
            printf("FATAL: pthread_create\n");
            exit(2);
        }
    long sum = 0;
    for (int t = 0; t < NT; t++) {
        void *r;
        pthread_join(th[t], &r);
        sum += (long)r;
    }
    pthread_barrier_destroy(&start);
    return sum;
}

/* ---- 1. fetch_add / fetch_sub ---- */

static unsigned add_w, sub_w;
static unsigned long add_d, sub_d;

static void *add_worker(void *arg)
{
    unsigned long t = (unsigned long)arg;
    pthread_barrier_wait(&start);
    for (unsigned long i = 1; i <= ITERS; i++) {
        unsigned long v = i * (t + 1);
        switch (i & 3) { /* every memory order on each word */
        case 0:
            __atomic_fetch_add(&add_w, (unsigned)v, __ATOMIC_RELAXED);
            __atomic_fetch_add(&add_d, v << 20, __ATOMIC_SEQ_CST);
            __atomic_fetch_sub(&sub_w, (unsigned)v, __ATOMIC_ACQUIRE);
            __atomic_fetch_sub(&sub_d, v * 0x10001, __ATOMIC_RELEASE);
            break;
        case 1:
            __atomic_fetch_add(&add_w, (unsigned)v, __ATOMIC_ACQUIRE);
            __atomic_fetch_add(&add_d, v << 20, __ATOMIC_RELAXED);
            __atomic_fetch_sub(&sub_w, (unsigned)v, __ATOMIC_RELEASE);
            __atomic_fetch_sub(&sub_d, v * 0x10001, __ATOMIC_SEQ_CST);
            break;
        case 2:
            __atomic_fetch_add(&add_w, (unsigned)v, __ATOMIC_RELEASE);
            __atomic_fetch_add(&add_d, v << 20, __ATOMIC_ACQUIRE);
            __atomic_fetch_sub(&sub_w, (unsigned)v, __ATOMIC_SEQ_CST);
            __atomic_fetch_sub(&sub_d, v * 0x10001, __ATOMIC_RELAXED);
            break;
        default:
            __atomic_fetch_add(&add_w, (unsigned)v, __ATOMIC_SEQ_CST);
            __atomic_fetch_add(&add_d, v << 20, __ATOMIC_RELEASE);
            __atomic_fetch_sub(&sub_w, (unsigned)v, __ATOMIC_RELAXED);
            __atomic_fetch_sub(&sub_d, v * 0x10001, __ATOMIC_ACQUIRE);
            break;
        }
    }
    return NULL;
}

static void test_add(void)
{
    sub_w = 0xFFFFFFFFu;
    sub_d = ~0ul;
    run_threads(add_worker);
    unsigned long tri = (unsigned long)ITERS * (ITERS + 1) / 2, k = 0;
    for (unsigned long t = 0; t < NT; t++)
        k += (t + 1) * tri;
    printf("1. fetch_add/sub: add.w %u, add.d %lu, sub.w %u, sub.d %lu\n", add_w, add_d, sub_w,
           sub_d);
    check(add_w == (unsigned)k && add_d == k << 20 && sub_w == 0xFFFFFFFFu - (unsigned)k &&
              sub_d == ~0ul - k * 0x10001,
          "fetch_add/sub totals");
}

/* ---- 2. fetch_or / fetch_and / fetch_xor on owned bit fields ---- */

static unsigned bits_w;      /* thread t owns bits 8t .. 8t+7 */
static unsigned long bits_d; /* thread t owns bits 16t .. 16t+15 */

struct owned { unsigned w; unsigned long d; };

/* One step on both words: or, and-not, xor; each old value must show this thread's bits as
   it left them. The step is spelled four ways: builtins with each memory order (constant
   orders: a variable one is treated as seq_cst), and inline asm with .aq/.rl/.aqrl. */
#define OWNED_STEP(OR_W, OR_D, AND_W, AND_D, XOR_W, XOR_D)                                   \
    do {                                                                                      \
        *bad += (OR_W(&bits_w, a) & mw) != w;                                                 \
        *bad += (OR_D(&bits_d, e) & md) != d;                                                 \
        w |= a;                                                                               \
        d |= e;                                                                               \
        *bad += (AND_W(&bits_w, ~b) & mw) != w;                                               \
        *bad += (AND_D(&bits_d, ~f) & md) != d;                                               \
        w &= ~b;                                                                              \
        d &= ~f;                                                                              \
        *bad += (XOR_W(&bits_w, c) & mw) != w;                                                \
        *bad += (XOR_D(&bits_d, g) & md) != d;                                                \
        w ^= c;                                                                               \
        d ^= g;                                                                               \
    } while (0)

#define OR_RLX(p, v) __atomic_fetch_or(p, v, __ATOMIC_RELAXED)
#define OR_ACQ(p, v) __atomic_fetch_or(p, v, __ATOMIC_ACQUIRE)
#define OR_REL(p, v) __atomic_fetch_or(p, v, __ATOMIC_RELEASE)
#define OR_SC(p, v) __atomic_fetch_or(p, v, __ATOMIC_SEQ_CST)
#define AND_RLX(p, v) __atomic_fetch_and(p, v, __ATOMIC_RELAXED)
#define AND_ACQ(p, v) __atomic_fetch_and(p, v, __ATOMIC_ACQUIRE)
#define AND_REL(p, v) __atomic_fetch_and(p, v, __ATOMIC_RELEASE)
#define AND_AR(p, v) __atomic_fetch_and(p, v, __ATOMIC_ACQ_REL)
#define XOR_RLX(p, v) __atomic_fetch_xor(p, v, __ATOMIC_RELAXED)
#define XOR_ACQ(p, v) __atomic_fetch_xor(p, v, __ATOMIC_ACQUIRE)
#define XOR_REL(p, v) __atomic_fetch_xor(p, v, __ATOMIC_RELEASE)
#define XOR_SC(p, v) __atomic_fetch_xor(p, v, __ATOMIC_SEQ_CST)
#define A_OR_W(p, v) AMO("amoor.w", p, v)
#define A_OR_D(p, v) AMO("amoor.d.aq", p, v)
#define A_AND_W(p, v) AMO("amoand.w.rl", p, v)
#define A_AND_D(p, v) AMO("amoand.d.aqrl", p, v)
#define A_XOR_W(p, v) AMO("amoxor.w.aq", p, v)
#define A_XOR_D(p, v) AMO("amoxor.d", p, v)
#define A2_OR_W(p, v) AMO("amoor.w.aqrl", p, v)
#define A2_OR_D(p, v) AMO("amoor.d.rl", p, v)
#define A2_AND_W(p, v) AMO("amoand.w", p, v)
#define A2_AND_D(p, v) AMO("amoand.d.aq", p, v)
#define A2_XOR_W(p, v) AMO("amoxor.w.rl", p, v)
#define A2_XOR_D(p, v) AMO("amoxor.d.aqrl", p, v)

static struct owned owned_run(unsigned long t, int *bad)
{
    unsigned w = 0;
    unsigned long d = 0;
    const unsigned mw = 0xFFu << (8 * t);
    const unsigned long md = 0xFFFFul << (16 * t);
    for (unsigned long i = 0; i < ITERS; i++) {
        unsigned long h = hash(t, i);
        unsigned a = (unsigned)h & mw, b = (unsigned)(h >> 8) & mw, c = (unsigned)(h >> 16) & mw;
        unsigned long e = h & md, f = (h >> 3) & md, g = (h >> 7) & md;
        if (!bad) { /* the serial model */
            w = ((w | a) & ~b) ^ c;
            d = ((d | e) & ~f) ^ g;
            continue;
        }
        switch (i & 3) {
        case 0:
            OWNED_STEP(OR_RLX, OR_ACQ, AND_REL, AND_AR, XOR_SC, XOR_RLX);
            break;
        case 1:
            OWNED_STEP(OR_SC, OR_REL, AND_ACQ, AND_RLX, XOR_REL, XOR_ACQ);
            break;
        case 2:
            OWNED_STEP(A_OR_W, A_OR_D, A_AND_W, A_AND_D, A_XOR_W, A_XOR_D);
            break;
        default:
            OWNED_STEP(A2_OR_W, A2_OR_D, A2_AND_W, A2_AND_D, A2_XOR_W, A2_XOR_D);
            break;
        }
    }
    return (struct owned){w, d};
}

static void *bits_worker(void *arg)
{
    int bad = 0;
    pthread_barrier_wait(&start);
    owned_run((unsigned long)arg, &bad);
    return (void *)(long)bad;
}

static void test_bits(void)
{
    long bad = run_threads(bits_worker);
    unsigned want_w = 0;
    unsigned long want_d = 0;
    for (unsigned long t = 0; t < NT; t++) {
        struct owned o = owned_run(t, NULL);
        want_w |= o.w;
        want_d |= o.d;
    }
    printf("2. fetch_or/and/xor on owned bits: final .w 0x%08x, .d 0x%016lx, wrong old values "
           "%ld\n",
           bits_w, bits_d, bad);
    check(bits_w == want_w && bits_d == want_d && bad == 0, "owned bits");
}

/* ---- 3. compare-exchange loops ---- */

static unsigned long pair_d; /* count in the high 32 bits, sum of values in the low 32 */
static unsigned cas_w;

static void *cas_worker(void *arg)
{
    unsigned long t = (unsigned long)arg;
    pthread_barrier_wait(&start);
    for (unsigned long i = 0; i < ITERS / 2; i++) {
        unsigned v = (unsigned)(hash(t, i) & 0xFFF);
        unsigned long old = __atomic_load_n(&pair_d, __ATOMIC_RELAXED), nw;
        do {
            nw = ((old >> 32) + 1) << 32 | (unsigned)((unsigned)old + v);
        } while (!__atomic_compare_exchange_n(&pair_d, &old, nw, i & 1, __ATOMIC_ACQ_REL,
                                              __ATOMIC_RELAXED));
        unsigned ow = __atomic_load_n(&cas_w, __ATOMIC_RELAXED);
        while (!__atomic_compare_exchange_n(&cas_w, &ow, ow + v + 1, !(i & 1),
                                            __ATOMIC_SEQ_CST, __ATOMIC_ACQUIRE))
            ;
    }
    return NULL;
}

static void test_cas(void)
{
    run_threads(cas_worker);
    unsigned long count = 0;
    unsigned sum = 0, sum_w = 0;
    for (unsigned long t = 0; t < NT; t++)
        for (unsigned long i = 0; i < ITERS / 2; i++) {
            unsigned v = (unsigned)(hash(t, i) & 0xFFF);
            count++;
            sum += v;
            sum_w += v + 1;
        }
    printf("3. compare_exchange: pair count %lu sum %u; .w %u\n", pair_d >> 32,
           (unsigned)pair_d, cas_w);
    check(pair_d >> 32 == count && (unsigned)pair_d == sum && cas_w == sum_w, "cas loops");
}

/* ---- 4. amomin / amomax ---- */

static int min_w = INT32_MAX, max_w = INT32_MIN;
static unsigned minu_w = UINT32_MAX, maxu_w = 0;
static long min_d = INT64_MAX, max_d = INT64_MIN;
static unsigned long minu_d = UINT64_MAX, maxu_d = 0;

static void *minmax_worker(void *arg)
{
    unsigned long t = (unsigned long)arg;
    long bad = 0;
    int last_min_w = INT32_MAX, last_max_w = INT32_MIN;
    unsigned last_minu_w = UINT32_MAX, last_maxu_w = 0;
    long last_min_d = INT64_MAX, last_max_d = INT64_MIN;
    unsigned long last_minu_d = UINT64_MAX, last_maxu_d = 0;
    pthread_barrier_wait(&start);
    for (unsigned long i = 0; i < ITERS; i++) {
        unsigned long h = hash(t + 100, i);
        /* shifted so that the extremes keep moving for a while */
        unsigned long hv = h >> (i < 64 ? 63 - i : 0);
        int sw = (int)(unsigned)hv, o1, o2;
        /* unsigned minima from values that fall over time, maxima from ones that rise */
        unsigned uw = (unsigned)(hv >> 3), nuw = ~uw, o3, o4;
        long sd = (long)hv;
        unsigned long ud = hv * 3, nud = ~ud, o7, o8;
        long o5, o6;
        switch (i % 3) {
        case 0:
            o1 = AMO("amomin.w", &min_w, sw);
            o2 = AMO("amomax.w.aq", &max_w, sw);
            o3 = AMO("amominu.w.rl", &minu_w, nuw);
            o4 = AMO("amomaxu.w.aqrl", &maxu_w, uw);
            o5 = AMO("amomin.d.aq", &min_d, sd);
            o6 = AMO("amomax.d.rl", &max_d, sd);
            o7 = AMO("amominu.d.aqrl", &minu_d, nud);
            o8 = AMO("amomaxu.d", &maxu_d, ud);
            break;
        case 1:
            o1 = AMO("amomin.w.aq", &min_w, sw);
            o2 = AMO("amomax.w.rl", &max_w, sw);
            o3 = AMO("amominu.w.aqrl", &minu_w, nuw);
            o4 = AMO("amomaxu.w", &maxu_w, uw);
            o5 = AMO("amomin.d.rl", &min_d, sd);
            o6 = AMO("amomax.d.aqrl", &max_d, sd);
            o7 = AMO("amominu.d", &minu_d, nud);
            o8 = AMO("amomaxu.d.aq", &maxu_d, ud);
            break;
        default:
            o1 = AMO("amomin.w.aqrl", &min_w, sw);
            o2 = AMO("amomax.w", &max_w, sw);
            o3 = AMO("amominu.w.aq", &minu_w, nuw);
            o4 = AMO("amomaxu.w.rl", &maxu_w, uw);
            o5 = AMO("amomin.d.aqrl", &min_d, sd);
            o6 = AMO("amomax.d", &max_d, sd);
            o7 = AMO("amominu.d.aq", &minu_d, nud);
            o8 = AMO("amomaxu.d.rl", &maxu_d, ud);
            break;
        }
        /* the words only move one way, so each thread's successive old values do too, and
           an old value is never beyond what this thread itself already stored */
        bad += o1 > last_min_w || o2 < last_max_w || o3 > last_minu_w || o4 < last_maxu_w;
        bad += o5 > last_min_d || o6 < last_max_d || o7 > last_minu_d || o8 < last_maxu_d;
        last_min_w = o1 < sw ? o1 : sw;
        last_max_w = o2 > sw ? o2 : sw;
        last_minu_w = o3 < nuw ? o3 : nuw;
        last_maxu_w = o4 > uw ? o4 : uw;
        last_min_d = o5 < sd ? o5 : sd;
        last_max_d = o6 > sd ? o6 : sd;
        last_minu_d = o7 < nud ? o7 : nud;
        last_maxu_d = o8 > ud ? o8 : ud;
    }
    return (void *)bad;
}

static void test_minmax(void)
{
    long bad = run_threads(minmax_worker);
    int wmin_w = INT32_MAX, wmax_w = INT32_MIN;
    unsigned wminu_w = UINT32_MAX, wmaxu_w = 0;
    long wmin_d = INT64_MAX, wmax_d = INT64_MIN;
    unsigned long wminu_d = UINT64_MAX, wmaxu_d = 0;
    for (unsigned long t = 0; t < NT; t++)
        for (unsigned long i = 0; i < ITERS; i++) {
            unsigned long hv = hash(t + 100, i) >> (i < 64 ? 63 - i : 0);
            int sw = (int)(unsigned)hv;
            unsigned uw = (unsigned)(hv >> 3);
            long sd = (long)hv;
            unsigned long ud = hv * 3;
            wmin_w = sw < wmin_w ? sw : wmin_w;
            wmax_w = sw > wmax_w ? sw : wmax_w;
            wminu_w = ~uw < wminu_w ? ~uw : wminu_w;
            wmaxu_w = uw > wmaxu_w ? uw : wmaxu_w;
            wmin_d = sd < wmin_d ? sd : wmin_d;
            wmax_d = sd > wmax_d ? sd : wmax_d;
            wminu_d = ~ud < wminu_d ? ~ud : wminu_d;
            wmaxu_d = ud > wmaxu_d ? ud : wmaxu_d;
        }
    printf("4. amomin/amomax: .w min %d max %d minu %u maxu %u; .d min %ld max %ld minu %lu "
           "maxu %lu; old values out of order %ld\n",
           min_w, max_w, minu_w, maxu_w, min_d, max_d, minu_d, maxu_d, bad);
    check(min_w == wmin_w && max_w == wmax_w && minu_w == wminu_w && maxu_w == wmaxu_w &&
              min_d == wmin_d && max_d == wmax_d && minu_d == wminu_d && maxu_d == wmaxu_d &&
              bad == 0,
          "amomin/amomax");
}

/* ---- 5. amoswap conservation ---- */

static unsigned swap_w;
static unsigned long swap_d;

struct swap_result { unsigned long sum_d, xor_d; unsigned sum_w, xor_w; };
static struct swap_result swap_res[NT];

static void *swap_worker(void *arg)
{
    unsigned long t = (unsigned long)arg;
    struct swap_result r = {0, 0, 0, 0};
    pthread_barrier_wait(&start);
    for (unsigned long i = 0; i < ITERS; i++) {
        unsigned long v = hash(t + 200, i);
        unsigned long od;
        unsigned ow;
        switch (i & 3) {
        case 0:
            od = AMO("amoswap.d", &swap_d, v);
            ow = AMO("amoswap.w.aqrl", &swap_w, (unsigned)v);
            break;
        case 1:
            od = AMO("amoswap.d.aq", &swap_d, v);
            ow = AMO("amoswap.w", &swap_w, (unsigned)v);
            break;
        case 2:
            od = AMO("amoswap.d.rl", &swap_d, v);
            ow = AMO("amoswap.w.aq", &swap_w, (unsigned)v);
            break;
        default:
            od = AMO("amoswap.d.aqrl", &swap_d, v);
            ow = AMO("amoswap.w.rl", &swap_w, (unsigned)v);
            break;
        }
        r.sum_d += od;
        r.xor_d ^= od;
        r.sum_w += ow;
        r.xor_w ^= ow;
    }
    swap_res[t] = r;
    return NULL;
}

static void test_swap(void)
{
    swap_d = 12345;
    swap_w = 678;
    run_threads(swap_worker);
    /* everything swapped in was either swapped out by someone or is the final value */
    unsigned long in_sum = 12345, in_xor = 12345, out_sum = swap_d, out_xor = swap_d;
    unsigned in_sum_w = 678, in_xor_w = 678, out_sum_w = swap_w, out_xor_w = swap_w;
    for (unsigned long t = 0; t < NT; t++) {
        for (unsigned long i = 0; i < ITERS; i++) {
            unsigned long v = hash(t + 200, i);
            in_sum += v;
            in_xor ^= v;
            in_sum_w += (unsigned)v;
            in_xor_w ^= (unsigned)v;
        }
        out_sum += swap_res[t].sum_d;
        out_xor ^= swap_res[t].xor_d;
        out_sum_w += swap_res[t].sum_w;
        out_xor_w ^= swap_res[t].xor_w;
    }
    printf("5. amoswap: %d x %d swaps per width; .d sum %lu xor %lu conserved: %s; .w sum %u "
           "xor %u conserved: %s\n",
           NT, ITERS, in_sum, in_xor, in_sum == out_sum && in_xor == out_xor ? "yes" : "no",
           in_sum_w, in_xor_w, in_sum_w == out_sum_w && in_xor_w == out_xor_w ? "yes" : "no");
    check(in_sum == out_sum && in_xor == out_xor && in_sum_w == out_sum_w &&
              in_xor_w == out_xor_w,
          "amoswap conservation");
}

/* ---- 6. hand-written LR/SC loops ---- */

#define LRSC_ADD(lr, sc, op, p, v)                                                            \
    do {                                                                                      \
        __typeof__(*(p)) _tmp;                                                                \
        long _fail;                                                                           \
        __asm__ volatile("1: " lr " %0, %2\n\t" op " %0, %0, %3\n\t" sc " %1, %0, %2\n\t"    \
                         "bnez %1, 1b"                                                        \
                         : "=&r"(_tmp), "=&r"(_fail), "+A"(*(p))                              \
                         : "r"(v)                                                             \
                         : "memory");                                                         \
    } while (0)

static int lrsc_w;
static long lrsc_d;
static long mixed_d; /* lr/sc in threads 0 and 1, amoadd in threads 2 and 3 */
static int mixed_w;

static void *lrsc_worker(void *arg)
{
    long t = (long)arg;
    pthread_barrier_wait(&start);
    for (long i = 0; i < ITERS; i++) {
        long v = (i & 7) + 1;
        switch (i % 3) {
        case 0:
            LRSC_ADD("lr.w", "sc.w", "addw", &lrsc_w, v);
            LRSC_ADD("lr.d", "sc.d", "add", &lrsc_d, v << 32);
            break;
        case 1:
            LRSC_ADD("lr.w.aq", "sc.w.rl", "addw", &lrsc_w, v);
            LRSC_ADD("lr.d.aq", "sc.d.rl", "add", &lrsc_d, v << 32);
            break;
        default:
            LRSC_ADD("lr.w.aqrl", "sc.w.aqrl", "addw", &lrsc_w, v);
            LRSC_ADD("lr.d.aqrl", "sc.d.aqrl", "add", &lrsc_d, v << 32);
            break;
        }
        if (t < 2) {
            LRSC_ADD("lr.d.aq", "sc.d.rl", "add", &mixed_d, v);
            LRSC_ADD("lr.w", "sc.w", "addw", &mixed_w, -v);
        } else {
            AMO("amoadd.d.aqrl", &mixed_d, v);
            AMO("amoadd.w", &mixed_w, (int)-v);
        }
    }
    return NULL;
}

static void test_lrsc(void)
{
    run_threads(lrsc_worker);
    long per = 0;
    for (long i = 0; i < ITERS; i++)
        per += (i & 7) + 1;
    printf("6. lr/sc: .w counter %d, .d counter %ld (= %ld << 32); lr/sc and amoadd on one "
           "word: .d %ld, .w %d\n",
           lrsc_w, lrsc_d, lrsc_d >> 32, mixed_d, mixed_w);
    check(lrsc_w == (int)(NT * per) && lrsc_d == (NT * per) << 32 && mixed_d == NT * per &&
              mixed_w == (int)(-NT * per),
          "lr/sc counters");
}

/* ---- 7. amoswap spinlock ---- */

static int lock_word;
static long plain_counter;
static long pair_a, pair_b = 1000000; /* pair_a + pair_b stays 1000000 */

static void spin_lock(int *l)
{
    int spins = 0;
    for (;;) {
        int old = AMO("amoswap.w.aq", l, 1);
        if (old == 0)
            return;
        while (__atomic_load_n(l, __ATOMIC_RELAXED) != 0)
            if (++spins % 64 == 0)
                sched_yield(); /* the holder may be descheduled: more threads than cores */
    }
}

static void spin_unlock(int *l, int how)
{
    if (how) {
        AMO("amoswap.w.rl", l, 0);
    } else {
        __asm__ volatile("fence rw, w\n\tsw zero, %0" : "=m"(*l) : : "memory");
    }
}

static void *lock_worker(void *arg)
{
    long t = (long)arg;
    long broken = 0;
    pthread_barrier_wait(&start);
    for (long i = 0; i < ITERS / 2; i++) {
        spin_lock(&lock_word);
        plain_counter++;
        long amount = (i + t) % 13;
        pair_a += amount;
        __asm__ volatile("" ::: "memory");
        pair_b -= amount;
        broken += pair_a + pair_b != 1000000;
        spin_unlock(&lock_word, (int)(i & 1));
    }
    return (void *)broken;
}

static void test_spinlock(void)
{
    long broken = run_threads(lock_worker);
    long want_a = 0;
    for (long t = 0; t < NT; t++)
        for (long i = 0; i < ITERS / 2; i++)
            want_a += (i + t) % 13;
    printf("7. amoswap spinlock: plain counter %ld, pair %ld + %ld, invariant broken %ld, lock "
           "word %d\n",
           plain_counter, pair_a, pair_b, broken, lock_word);
    check(plain_counter == (long)NT * (ITERS / 2) && pair_a == want_a &&
              pair_a + pair_b == 1000000 && broken == 0 && lock_word == 0,
          "spinlock");
}

/* ---- 8. fence message passing ---- */

#define MP_ROUNDS 4000
#define MP_WORDS 8

struct channel {
    unsigned long data[MP_WORDS];
    long flag, ack;
    char pad[64];
};
static struct channel chan[NT / 2];

static unsigned long mp_value(long c, long k, int j) { return hash((unsigned long)c + 300, (unsigned long)(k * MP_WORDS + j)); }

static long load_plain(const long *p)
{
    long v;
    __asm__ volatile("ld %0, %1" : "=r"(v) : "m"(*p));
    return v;
}

static void store_plain(long *p, long v) { __asm__ volatile("sd %1, %0" : "=m"(*p) : "r"(v)); }

static void wait_for(const long *p, long want)
{
    int spins = 0;
    while (load_plain(p) != want)
        if (++spins % 64 == 0)
            sched_yield();
}

static void *mp_worker(void *arg)
{
    long t = (long)arg, c = t / 2;
    struct channel *ch = &chan[c];
    long bad = 0;
    unsigned long seen = 0;
    pthread_barrier_wait(&start);
    for (long k = 1; k <= MP_ROUNDS; k++) {
        if (t % 2 == 0) { /* writer */
            for (int j = 0; j < MP_WORDS; j++)
                __asm__ volatile("sd %1, %0" : "=m"(ch->data[j]) : "r"(mp_value(c, k, j)));
            __asm__ volatile("fence rw, rw" ::: "memory");
            store_plain(&ch->flag, k);
            wait_for(&ch->ack, k);
            __asm__ volatile("fence rw, rw" ::: "memory");
        } else { /* reader */
            wait_for(&ch->flag, k);
            __asm__ volatile("fence rw, rw" ::: "memory");
            for (int j = 0; j < MP_WORDS; j++) {
                unsigned long v;
                __asm__ volatile("ld %0, %1" : "=r"(v) : "m"(ch->data[j]));
                bad += v != mp_value(c, k, j);
                seen += v;
            }
            __asm__ volatile("fence rw, rw" ::: "memory");
            store_plain(&ch->ack, k);
        }
    }
    return (void *)(t % 2 ? (long)(seen & 0xFFFFFFFF) + (bad << 40) : 0);
}

static void test_message_passing(void)
{
    long r = run_threads(mp_worker);
    long bad = r >> 40, seen = r & ((1L << 40) - 1);
    long want = 0;
    for (long c = 0; c < NT / 2; c++) {
        unsigned long s = 0;
        for (long k = 1; k <= MP_ROUNDS; k++)
            for (int j = 0; j < MP_WORDS; j++)
                s += mp_value(c, k, j);
        want += (long)(s & 0xFFFFFFFF);
    }
    printf("8. fence message passing: %d channels x %d rounds of %d words, stale words %ld, "
           "checksum %ld\n",
           NT / 2, MP_ROUNDS, MP_WORDS, bad, seen);
    check(bad == 0 && seen == want, "message passing");
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    test_add();
    test_bits();
    test_cas();
    test_minmax();
    test_swap();
    test_lrsc();
    test_spinlock();
    test_message_passing();
    printf("atomics: %s (%d failures)\n", failures ? "FAILED" : "all checks passed", failures);
    return failures ? 1 : 0;
}
