/*
 * intalg: integer algorithms on deterministic pseudo-random data.
 *
 *   - quicksort and merge sort of the same PRNG data; both results must be sorted and equal
 *   - FNV-1a (32 and 64 bit) with the published test vectors, and an open-addressing hash
 *     table (insert, lookup, delete with backward-shift, re-insert)
 *   - sieve of Eratosthenes (pi(10^6) = 78498)
 *   - CRC-32 (table and bitwise, check value 0xCBF43926)
 *   - 64- and 32-bit multiply, divide and remainder, including negative operands, division
 *     by zero and INT_MIN / -1 (whose RISC-V results are defined by the ISA; in C they are
 *     undefined, so on RISC-V they are issued as instructions through inline assembly, and
 *     on other hosts computed by a C model of the RISC-V rules)
 *   - bit tricks: clz/ctz/popcount/parity via __builtin, bswap, rotates, bit reversal
 *
 * Every check prints its result; a failed self-check prints "FAIL" and makes the exit code 1.
 */
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int failures;

static void check(int ok, const char *what)
{
    if (!ok) {
        failures++;
        printf("FAIL: %s\n", what);
    }
}

/* ---- PRNG: splitmix64, fixed seed ---- */

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;

static uint64_t rng_next(void)
{
    uint64_t z = (rng_state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* ---- sorting ---- */

#define NSORT 20000

static void quicksort(int64_t *a, long lo, long hi)
{
    while (lo < hi) {
        /* median of three, then Hoare partition */
        long mid = lo + (hi - lo) / 2;
        int64_t x = a[lo], y = a[mid], z = a[hi];
        int64_t pivot = (x < y) ? ((y < z) ? y : (x < z ? z : x)) : ((x < z) ? x : (y < z ? z : y));
        long i = lo - 1, j = hi + 1;
        for (;;) {
            do i++; while (a[i] < pivot);
            do j--; while (a[j] > pivot);
            if (i >= j)
                break;
            int64_t t = a[i];
            a[i] = a[j];
            a[j] = t;
        }
        /* recurse into the smaller half, loop on the larger: O(log n) stack */
        if (j - lo < hi - j) {
            quicksort(a, lo, j);
            lo = j + 1;
        } else {
            quicksort(a, j + 1, hi);
            hi = j;
        }
    }
}

static void merge_sort(int64_t *a, int64_t *tmp, long n)
{
    /* bottom-up: runs of width 1, 2, 4, ... merged from a into tmp, then swapped */
    int64_t *src = a, *dst = tmp;
    for (long width = 1; width < n; width *= 2) {
        for (long lo = 0; lo < n; lo += 2 * width) {
            long mid = lo + width < n ? lo + width : n;
            long hi = lo + 2 * width < n ? lo + 2 * width : n;
            long i = lo, j = mid, k = lo;
            while (i < mid && j < hi)
                dst[k++] = (src[j] < src[i]) ? src[j++] : src[i++];
            while (i < mid)
                dst[k++] = src[i++];
            while (j < hi)
                dst[k++] = src[j++];
        }
        int64_t *t = src;
        src = dst;
        dst = t;
    }
    if (src != a)
        memcpy(a, src, (size_t)n * sizeof *a);
}

static uint64_t mix_checksum(const int64_t *a, long n)
{
    uint64_t h = 0;
    for (long i = 0; i < n; i++)
        h = (h ^ (uint64_t)a[i]) * 0x100000001B3ull + (uint64_t)i;
    return h;
}

static void test_sorting(void)
{
    static int64_t a[NSORT], b[NSORT], tmp[NSORT];
    for (long i = 0; i < NSORT; i++) {
        /* a mix of full-range values, small values (many duplicates) and negatives */
        uint64_t r = rng_next();
        if (i % 3 == 0)
            a[i] = (int64_t)r;
        else if (i % 3 == 1)
            a[i] = (int64_t)(r % 100) - 50;
        else
            a[i] = -(int64_t)(r >> 20);
    }
    memcpy(b, a, sizeof a);
    printf("sort: n=%d input checksum %016" PRIx64 "\n", NSORT, mix_checksum(a, NSORT));

    quicksort(a, 0, NSORT - 1);
    merge_sort(b, tmp, NSORT);

    int sorted_a = 1, sorted_b = 1;
    for (long i = 1; i < NSORT; i++) {
        sorted_a &= a[i - 1] <= a[i];
        sorted_b &= b[i - 1] <= b[i];
    }
    check(sorted_a, "quicksort output sorted");
    check(sorted_b, "merge sort output sorted");
    check(memcmp(a, b, sizeof a) == 0, "quicksort == merge sort");
    printf("sort: quicksort sorted=%d, merge sort sorted=%d, equal=%d\n", sorted_a, sorted_b,
           memcmp(a, b, sizeof a) == 0);
    printf("sort: min %" PRId64 " median %" PRId64 " max %" PRId64 "\n", a[0], a[NSORT / 2],
           a[NSORT - 1]);
    printf("sort: output checksum %016" PRIx64 "\n", mix_checksum(a, NSORT));
}

/* ---- hashing ---- */

static uint32_t fnv1a32(const void *data, size_t len)
{
    const unsigned char *p = data;
    uint32_t h = 0x811C9DC5u;
    for (size_t i = 0; i < len; i++) {
        h ^= p[i];
        h *= 0x01000193u;
    }
    return h;
}

static uint64_t fnv1a64(const void *data, size_t len)
{
    const unsigned char *p = data;
    uint64_t h = 0xCBF29CE484222325ull;
    for (size_t i = 0; i < len; i++) {
        h ^= p[i];
        h *= 0x100000001B3ull;
    }
    return h;
}

/* Open addressing with linear probing; key 0 marks an empty slot. */
#define HT_BITS 14
#define HT_SIZE (1u << HT_BITS)

struct slot {
    uint64_t key;
    uint64_t value;
};

static struct slot table[HT_SIZE];
static long ht_count;

static uint32_t ht_index(uint64_t key)
{
    return (uint32_t)(fnv1a64(&key, sizeof key) >> (64 - HT_BITS));
}

static void ht_put(uint64_t key, uint64_t value)
{
    uint32_t i = ht_index(key);
    while (table[i].key != 0 && table[i].key != key)
        i = (i + 1) & (HT_SIZE - 1);
    if (table[i].key == 0)
        ht_count++;
    table[i].key = key;
    table[i].value = value;
}

static struct slot *ht_get(uint64_t key)
{
    uint32_t i = ht_index(key);
    while (table[i].key != 0) {
        if (table[i].key == key)
            return &table[i];
        i = (i + 1) & (HT_SIZE - 1);
    }
    return NULL;
}

static int ht_delete(uint64_t key)
{
    struct slot *s = ht_get(key);
    if (!s)
        return 0;
    uint32_t i = (uint32_t)(s - table);
    /* backward-shift deletion keeps every probe chain unbroken without tombstones */
    uint32_t j = i;
    for (;;) {
        j = (j + 1) & (HT_SIZE - 1);
        if (table[j].key == 0)
            break;
        uint32_t home = ht_index(table[j].key);
        /* can the entry at j move to the hole at i? only if home is not in (i, j] */
        int between = (i <= j) ? (home > i && home <= j) : (home > i || home <= j);
        if (!between) {
            table[i] = table[j];
            i = j;
        }
    }
    table[i].key = 0;
    table[i].value = 0;
    ht_count--;
    return 1;
}

static void test_hashing(void)
{
    /* published FNV-1a test vectors */
    uint32_t e32 = fnv1a32("", 0), a32 = fnv1a32("a", 1), f32 = fnv1a32("foobar", 6);
    uint64_t e64 = fnv1a64("", 0), a64 = fnv1a64("a", 1), f64 = fnv1a64("foobar", 6);
    printf("fnv1a32: \"\" %08" PRIx32 " \"a\" %08" PRIx32 " \"foobar\" %08" PRIx32 "\n", e32,
           a32, f32);
    printf("fnv1a64: \"\" %016" PRIx64 " \"a\" %016" PRIx64 " \"foobar\" %016" PRIx64 "\n", e64,
           a64, f64);
    check(e32 == 0x811C9DC5u && a32 == 0xE40C292Cu && f32 == 0xBF9CF968u, "fnv1a32 vectors");
    check(e64 == 0xCBF29CE484222325ull && a64 == 0xAF63DC4C8601EC8Cull &&
              f64 == 0x85944171F73967E8ull,
          "fnv1a64 vectors");

    /* hash table: 10000 keys (some repeated), then look up, delete half, look up again */
    enum { NKEYS = 10000 };
    static uint64_t keys[NKEYS];
    uint64_t saved = rng_state;
    rng_state = 12345;
    for (int i = 0; i < NKEYS; i++) {
        /* every 10th key repeats an earlier one, so puts also overwrite */
        keys[i] = (i % 10 == 9) ? keys[i / 2] : (rng_next() | 1);
        ht_put(keys[i], (uint64_t)i * 7 + 1);
    }
    rng_state = saved;
    long found = 0;
    uint64_t vsum = 0;
    for (int i = 0; i < NKEYS; i++) {
        struct slot *s = ht_get(keys[i]);
        if (s) {
            found++;
            vsum += s->value;
        }
    }
    printf("hashtable: %ld distinct keys, %ld of %d lookups found, value sum %" PRIu64 "\n",
           ht_count, found, NKEYS, vsum);
    check(found == NKEYS, "every inserted key found");

    long deleted = 0;
    for (int i = 0; i < NKEYS; i += 2)
        deleted += ht_delete(keys[i]);
    long still = 0, gone = 0;
    for (int i = 0; i < NKEYS; i++) {
        if (ht_get(keys[i]))
            still++;
        else
            gone++;
    }
    printf("hashtable: deleted %ld, now %ld entries; lookups: %ld present, %ld absent\n", deleted,
           ht_count, still, gone);
    /* a full scan must agree with the count */
    long scanned = 0;
    for (uint32_t i = 0; i < HT_SIZE; i++)
        scanned += table[i].key != 0;
    check(scanned == ht_count, "table scan agrees with count");
    for (int i = 0; i < NKEYS; i += 2)
        ht_put(keys[i], 1);
    printf("hashtable: after re-insert %ld entries\n", ht_count);
}

/* ---- sieve ---- */

#define SIEVE_N 1000000

static void test_sieve(void)
{
    static unsigned char composite[SIEVE_N + 1];
    for (long i = 2; i * i <= SIEVE_N; i++)
        if (!composite[i])
            for (long j = i * i; j <= SIEVE_N; j += i)
                composite[j] = 1;
    long count = 0, last = 0;
    uint64_t sum = 0;
    for (long i = 2; i <= SIEVE_N; i++)
        if (!composite[i]) {
            count++;
            sum += (uint64_t)i;
            last = i;
        }
    printf("sieve: %ld primes <= %d, sum %" PRIu64 ", largest %ld\n", count, SIEVE_N, sum, last);
    check(count == 78498, "pi(10^6) == 78498");
    check(last == 999983, "largest prime below 10^6");
}

/* ---- CRC-32 (IEEE 802.3, reflected, polynomial 0xEDB88320) ---- */

static uint32_t crc_table[256];

static void crc32_init(void)
{
    for (uint32_t n = 0; n < 256; n++) {
        uint32_t c = n;
        for (int k = 0; k < 8; k++)
            c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
        crc_table[n] = c;
    }
}

static uint32_t crc32_table(const unsigned char *p, size_t len)
{
    uint32_t c = 0xFFFFFFFFu;
    for (size_t i = 0; i < len; i++)
        c = crc_table[(c ^ p[i]) & 0xFF] ^ (c >> 8);
    return c ^ 0xFFFFFFFFu;
}

static uint32_t crc32_bitwise(const unsigned char *p, size_t len)
{
    uint32_t c = 0xFFFFFFFFu;
    for (size_t i = 0; i < len; i++) {
        c ^= p[i];
        for (int k = 0; k < 8; k++)
            c = (c >> 1) ^ (0xEDB88320u & -(c & 1));
    }
    return ~c;
}

static void test_crc32(void)
{
    crc32_init();
    uint32_t check_value = crc32_table((const unsigned char *)"123456789", 9);
    printf("crc32: \"123456789\" %08" PRIx32 "\n", check_value);
    check(check_value == 0xCBF43926u, "crc32 check value");

    static unsigned char buf[65536];
    for (size_t i = 0; i < sizeof buf; i++)
        buf[i] = (unsigned char)(rng_next() >> 56);
    uint32_t t = crc32_table(buf, sizeof buf), b = crc32_bitwise(buf, sizeof buf);
    printf("crc32: 64 KiB random buffer table %08" PRIx32 " bitwise %08" PRIx32 "\n", t, b);
    check(t == b, "crc32 table == bitwise");
}

/* ---- multiply / divide / remainder ---- */

#if defined(__riscv)
#define RV_BINOP(name, insn, type)                                                             \
    static type name(type a, type b)                                                           \
    {                                                                                          \
        type r;                                                                                \
        __asm__ volatile(insn " %0, %1, %2" : "=r"(r) : "r"(a), "r"(b));                       \
        return r;                                                                              \
    }
RV_BINOP(rv_div, "div", int64_t)
RV_BINOP(rv_divu, "divu", uint64_t)
RV_BINOP(rv_rem, "rem", int64_t)
RV_BINOP(rv_remu, "remu", uint64_t)
RV_BINOP(rv_mulh, "mulh", int64_t)
RV_BINOP(rv_mulhu, "mulhu", uint64_t)
RV_BINOP(rv_mulhsu, "mulhsu", int64_t)
RV_BINOP(rv_divw, "divw", int64_t)
RV_BINOP(rv_divuw, "divuw", int64_t)
RV_BINOP(rv_remw, "remw", int64_t)
RV_BINOP(rv_remuw, "remuw", int64_t)
RV_BINOP(rv_mulw, "mulw", int64_t)
#else
/* C model of the RISC-V M extension, for host builds. */
static int64_t rv_div(int64_t a, int64_t b)
{
    return b == 0 ? -1 : (a == INT64_MIN && b == -1) ? INT64_MIN : a / b;
}
static uint64_t rv_divu(uint64_t a, uint64_t b) { return b == 0 ? UINT64_MAX : a / b; }
static int64_t rv_rem(int64_t a, int64_t b)
{
    return b == 0 ? a : (a == INT64_MIN && b == -1) ? 0 : a % b;
}
static uint64_t rv_remu(uint64_t a, uint64_t b) { return b == 0 ? a : a % b; }
static int64_t rv_mulh(int64_t a, int64_t b) { return (int64_t)(((__int128)a * b) >> 64); }
static uint64_t rv_mulhu(uint64_t a, uint64_t b)
{
    return (uint64_t)(((unsigned __int128)a * b) >> 64);
}
static int64_t rv_mulhsu(int64_t a, int64_t b)
{
    return (int64_t)(((__int128)a * (__int128)(uint64_t)b) >> 64);
}
static int64_t rv_divw(int64_t a, int64_t b)
{
    int32_t x = (int32_t)a, y = (int32_t)b;
    return y == 0 ? -1 : (x == INT32_MIN && y == -1) ? INT32_MIN : x / y;
}
static int64_t rv_divuw(int64_t a, int64_t b)
{
    uint32_t x = (uint32_t)a, y = (uint32_t)b;
    return (int32_t)(y == 0 ? UINT32_MAX : x / y);
}
static int64_t rv_remw(int64_t a, int64_t b)
{
    int32_t x = (int32_t)a, y = (int32_t)b;
    return y == 0 ? x : (x == INT32_MIN && y == -1) ? 0 : x % y;
}
static int64_t rv_remuw(int64_t a, int64_t b)
{
    uint32_t x = (uint32_t)a, y = (uint32_t)b;
    return (int32_t)(y == 0 ? x : x % y);
}
static int64_t rv_mulw(int64_t a, int64_t b) { return (int32_t)((uint32_t)a * (uint32_t)b); }
#endif

static void test_muldiv(void)
{
    static const int64_t vals[] = {
        0, 1, -1, 2, -2, 3, -7, 7, 10, -10, 0x7FFFFFFF, (int64_t)0xFFFFFFFF80000000ull,
        0x80000000ll, 0xFFFFFFFFll, INT64_MAX, INT64_MIN, INT64_MIN + 1, 0x123456789ABCDEFll,
        (int64_t)0xFEDCBA9876543210ull,
    };
    const int n = (int)(sizeof vals / sizeof vals[0]);
    uint64_t h[12] = {0};
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) {
            int64_t a = vals[i], b = vals[j];
            uint64_t r[12] = {
                (uint64_t)rv_div(a, b),    rv_divu((uint64_t)a, (uint64_t)b),
                (uint64_t)rv_rem(a, b),    rv_remu((uint64_t)a, (uint64_t)b),
                (uint64_t)rv_mulh(a, b),   rv_mulhu((uint64_t)a, (uint64_t)b),
                (uint64_t)rv_mulhsu(a, b), (uint64_t)rv_divw(a, b),
                (uint64_t)rv_divuw(a, b),  (uint64_t)rv_remw(a, b),
                (uint64_t)rv_remuw(a, b),  (uint64_t)rv_mulw(a, b),
            };
            for (int k = 0; k < 12; k++)
                h[k] = (h[k] ^ r[k]) * 0x100000001B3ull;
            /* the division identity holds for every pair, including the edge cases */
            check((uint64_t)rv_div(a, b) * (uint64_t)b + (uint64_t)rv_rem(a, b) == (uint64_t)a ||
                      b == 0,
                  "a == div*b + rem");
            check(rv_divu((uint64_t)a, (uint64_t)b) * (uint64_t)b +
                          rv_remu((uint64_t)a, (uint64_t)b) ==
                      (uint64_t)a,
                  "a == divu*b + remu");
        }
    static const char *names[12] = {"div",    "divu", "rem",   "remu", "mulh",  "mulhu",
                                     "mulhsu", "divw", "divuw", "remw", "remuw", "mulw"};
    for (int k = 0; k < 12; k++)
        printf("muldiv: %-6s over %dx%d operand pairs: %016" PRIx64 "\n", names[k], n, n, h[k]);

    /* the edge cases spelled out */
    printf("edge: div(7, 0) = %" PRId64 ", rem(7, 0) = %" PRId64 "\n", rv_div(7, 0), rv_rem(7, 0));
    printf("edge: divu(7, 0) = %016" PRIx64 ", remu(7, 0) = %" PRIu64 "\n", rv_divu(7, 0),
           rv_remu(7, 0));
    printf("edge: div(INT64_MIN, -1) = %" PRId64 ", rem(INT64_MIN, -1) = %" PRId64 "\n",
           rv_div(INT64_MIN, -1), rv_rem(INT64_MIN, -1));
    printf("edge: divw(INT32_MIN, -1) = %" PRId64 ", remw(INT32_MIN, -1) = %" PRId64 "\n",
           rv_divw(INT32_MIN, -1), rv_remw(INT32_MIN, -1));
    printf("edge: divw(5, 0) = %" PRId64 ", divuw(5, 0) = %" PRId64 ", remuw(-5, 0) = %" PRId64
           "\n",
           rv_divw(5, 0), rv_divuw(5, 0), rv_remuw(-5, 0));
    printf("edge: div(-7, 2) = %" PRId64 ", rem(-7, 2) = %" PRId64 ", div(7, -2) = %" PRId64
           ", rem(7, -2) = %" PRId64 "\n",
           rv_div(-7, 2), rv_rem(-7, 2), rv_div(7, -2), rv_rem(7, -2));
    printf("edge: mulh(INT64_MIN, INT64_MIN) = %016" PRIx64 ", mulhu(-1, -1) = %016" PRIx64
           ", mulhsu(-1, -1) = %016" PRIx64 "\n",
           (uint64_t)rv_mulh(INT64_MIN, INT64_MIN), rv_mulhu(UINT64_MAX, UINT64_MAX),
           (uint64_t)rv_mulhsu(-1, -1));
    printf("edge: mulw(0x7fffffff, 2) = %" PRId64 ", divuw(0x80000000, 1) = %" PRId64 "\n",
           rv_mulw(0x7FFFFFFF, 2), rv_divuw(0x80000000ll, 1));
    check(rv_div(7, 0) == -1 && rv_rem(7, 0) == 7, "div by zero");
    check(rv_div(INT64_MIN, -1) == INT64_MIN && rv_rem(INT64_MIN, -1) == 0, "div overflow");
    check(rv_divw(INT32_MIN, -1) == INT32_MIN && rv_remw(INT32_MIN, -1) == 0, "divw overflow");

    /* ordinary C arithmetic the compiler emits itself (mul, div by constants, W ops) */
    uint64_t acc = 1;
    int32_t acc32 = 1;
    for (int i = 1; i <= 1000; i++) {
        uint64_t r = rng_next();
        acc = acc * (r | 1) + r / 10 + r % 1000003 + (uint64_t)((int64_t)r / -37);
        acc32 = (int32_t)((uint32_t)acc32 * 2654435761u) + (int32_t)r / 3 - (int32_t)(r >> 40) % 17;
    }
    printf("arith: 64-bit accumulator %016" PRIx64 ", 32-bit accumulator %" PRId32 "\n", acc,
           acc32);
}

/* ---- bit tricks ---- */

static uint64_t reverse_bits(uint64_t x)
{
    x = ((x >> 1) & 0x5555555555555555ull) | ((x & 0x5555555555555555ull) << 1);
    x = ((x >> 2) & 0x3333333333333333ull) | ((x & 0x3333333333333333ull) << 2);
    x = ((x >> 4) & 0x0F0F0F0F0F0F0F0Full) | ((x & 0x0F0F0F0F0F0F0F0Full) << 4);
    return __builtin_bswap64(x);
}

static uint64_t rotl(uint64_t x, unsigned k) { return (x << (k & 63)) | (x >> ((64 - k) & 63)); }

static int popcount_naive(uint64_t x)
{
    int c = 0;
    for (; x; x &= x - 1)
        c++;
    return c;
}

static void test_bits(void)
{
    static const uint64_t samples[] = {1, 2, 3, 0x80, 0xFF00, 0x80000000ull, 0x100000000ull,
                                       0x8000000000000000ull, 0xFFFFFFFFFFFFFFFFull,
                                       0x0123456789ABCDEFull};
    for (size_t i = 0; i < sizeof samples / sizeof samples[0]; i++) {
        uint64_t x = samples[i];
        printf("bits: %016" PRIx64 " clz %2d ctz %2d popcount %2d parity %d clz32 %2d bswap "
               "%016" PRIx64 " rev %016" PRIx64 " rotl13 %016" PRIx64 "\n",
               x, __builtin_clzll(x), __builtin_ctzll(x), __builtin_popcountll(x),
               __builtin_parityll(x), (uint32_t)x ? __builtin_clz((uint32_t)x) : 32,
               __builtin_bswap64(x), reverse_bits(x), rotl(x, 13));
        check(__builtin_popcountll(x) == popcount_naive(x), "popcount");
    }
    /* aggregate over many random values */
    uint64_t agg = 0;
    int ok = 1;
    for (int i = 0; i < 100000; i++) {
        uint64_t x = rng_next() >> (i % 64);
        if (x == 0)
            continue;
        int clz = __builtin_clzll(x), ctz = __builtin_ctzll(x), pc = __builtin_popcountll(x);
        ok &= (x >> (63 - clz)) == 1 && ((x >> ctz) & 1) && pc == popcount_naive(x);
        ok &= reverse_bits(reverse_bits(x)) == x && rotl(rotl(x, 17), 47) == x;
        /* isolate the lowest set bit; round up to a power of two (0 if that overflows) */
        uint64_t low = x & -x;
        uint64_t pow2 = x == 1 ? 1 : (x - 1) >> 63 ? 0 : 1ull << (64 - __builtin_clzll(x - 1));
        agg = agg * 31 + (uint64_t)clz * 1000000 + (uint64_t)ctz * 1000 + (uint64_t)pc + low + pow2;
    }
    printf("bits: 100000 random values, aggregate %016" PRIx64 ", identities hold: %d\n", agg, ok);
    check(ok, "bit identities");
}

int main(void)
{
    test_sorting();
    test_hashing();
    test_sieve();
    test_crc32();
    test_muldiv();
    test_bits();
    printf("intalg: %s (%d failures)\n", failures ? "FAILED" : "all checks passed", failures);
    return failures ? 1 : 0;
}
