/*
 * threadmm: the address space changes under running threads. All seven threads start
 * together at a barrier:
 *
 *   - 2 mappers, 3 000 rounds each: mmap 1..8 anonymous pages (must read as zero), fill
 *     them, every 16th round mremap them 4 pages bigger (contents kept, new pages zero),
 *     mprotect read-only and checksum them, mprotect one page writable again and change
 *     it, munmap a page in the middle (a hole), map a page MAP_FIXED into the hole (zero
 *     again), munmap everything
 *   - a producer and a consumer: the producer maps and fills 1 000 regions and hands each
 *     over through a mutex and condition variable; the consumer checksums and unmaps it
 *     (memory mapped by one thread, read and unmapped by another)
 *   - 3 workers on their own memory, all the while: one on a malloc'd 1 MiB buffer, one on
 *     an mmap'd 1 MiB region, one on a 64 KiB array on its stack; each repeats a fixed unit
 *     of work until the others are done (at least twice), and every repetition must give
 *     the same checksum (how many ran depends on the timing and is not printed)
 *
 * Every checksum belongs to one role and depends only on that role's fixed work, so the
 * printed values do not depend on the scheduling. A failed check prints "FAIL" and makes
 * the exit code 1.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define MAPPERS 2
#define MAP_ROUNDS 3000
#define REGIONS 1000
#define WORKERS 3
#define NTHREADS (MAPPERS + 2 + WORKERS)

static long page;
static pthread_barrier_t start;

static uint64_t mix(uint64_t x)
{
    x ^= x >> 31;
    x *= 0xBF58476D1CE4E5B9ull;
    x ^= x >> 29;
    return x;
}

struct result {
    uint64_t sum;
    long bad; /* nonzero words in fresh pages, failed calls, wrong contents */
};

static void *map_or_die(void *addr, size_t len, int prot, int flags)
{
    void *p = mmap(addr, len, prot, flags | MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
        printf("FATAL: mmap failed\n");
        fflush(stdout);
        exit(2);
    }
    return p;
}

/* counts nonzero words in n pages, looking at every 64th word */
static long nonzero(const uint64_t *p, size_t words)
{
    long n = 0;
    for (size_t i = 0; i < words; i += 64)
        n += p[i] != 0;
    return n + (p[words - 1] != 0);
}

/* ---- mappers ---- */

static int mm_done; /* atomic: mappers, producer and consumer that have finished */

static void *mapper(void *arg)
{
    long m = (long)arg;
    struct result *r = calloc(1, sizeof *r);
    const size_t wpp = (size_t)page / 8; /* words per page */
    pthread_barrier_wait(&start);
    for (long round = 0; round < MAP_ROUNDS; round++) {
        uint64_t seed = mix((uint64_t)(m * 1000003 + round));
        size_t n = 1 + seed % 8, len = n * (size_t)page;
        uint64_t *p = map_or_die(NULL, len, PROT_READ | PROT_WRITE, 0);
        r->bad += nonzero(p, n * wpp);
        for (size_t i = 0; i < n * wpp; i++)
            p[i] = seed + i;
        if (round % 16 == 0) {
            /* bigger by 4 pages (it may move): contents kept, the new pages zero */
            uint64_t *q = mremap(p, len, len + 4 * (size_t)page, MREMAP_MAYMOVE);
            if (q == MAP_FAILED) {
                r->bad++;
            } else {
                p = q;
                r->bad += p[0] != seed || p[n * wpp - 1] != seed + n * wpp - 1;
                r->bad += nonzero(p + n * wpp, 4 * wpp);
                for (size_t i = n * wpp; i < (n + 4) * wpp; i++)
                    p[i] = seed + i;
                n += 4;
                len = n * (size_t)page;
            }
        }
        r->bad += mprotect(p, len, PROT_READ) != 0;
        uint64_t s = 0;
        for (size_t i = 0; i < n * wpp; i += 8)
            s += p[i] ^ (i * 31);
        r->sum += s;
        /* page 0 writable again, changed */
        r->bad += mprotect(p, (size_t)page, PROT_READ | PROT_WRITE) != 0;
        p[1] = ~p[1];
        r->sum += p[1] + p[wpp - 1];
        if (n >= 3) {
            /* a hole in the middle, then a fresh page mapped into it */
            size_t mid = n / 2;
            uint64_t *hole = p + mid * wpp;
            r->bad += munmap(hole, (size_t)page) != 0;
            uint64_t *fresh = map_or_die(hole, (size_t)page, PROT_READ | PROT_WRITE, MAP_FIXED);
            r->bad += fresh != hole;
            r->bad += nonzero(fresh, wpp);
            fresh[0] = seed;
            r->sum += p[(mid - 1) * wpp] + fresh[0] + p[(mid + 1) * wpp + 5];
        }
        r->bad += munmap(p, len) != 0;
    }
    __atomic_fetch_add(&mm_done, 1, __ATOMIC_RELEASE);
    return r;
}

/* ---- producer and consumer of mapped regions ---- */

static struct {
    pthread_mutex_t m;
    pthread_cond_t cv;
    uint64_t *region;
    size_t len;
    int full;
} slot = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, NULL, 0, 0};

static void *producer(void *arg)
{
    (void)arg;
    pthread_barrier_wait(&start);
    for (long k = 0; k < REGIONS; k++) {
        size_t n = 1 + (size_t)(mix((uint64_t)k + 77) % 4), len = n * (size_t)page;
        uint64_t *p = map_or_die(NULL, len, PROT_READ | PROT_WRITE, 0);
        for (size_t i = 0; i < len / 8; i++)
            p[i] = mix((uint64_t)(k << 20) + i);
        pthread_mutex_lock(&slot.m);
        while (slot.full)
            pthread_cond_wait(&slot.cv, &slot.m);
        slot.region = p;
        slot.len = len;
        slot.full = 1;
        pthread_cond_broadcast(&slot.cv);
        pthread_mutex_unlock(&slot.m);
    }
    __atomic_fetch_add(&mm_done, 1, __ATOMIC_RELEASE);
    return calloc(1, sizeof(struct result));
}

static void *consumer(void *arg)
{
    (void)arg;
    struct result *r = calloc(1, sizeof *r);
    pthread_barrier_wait(&start);
    for (long k = 0; k < REGIONS; k++) {
        pthread_mutex_lock(&slot.m);
        while (!slot.full)
            pthread_cond_wait(&slot.cv, &slot.m);
        uint64_t *p = slot.region;
        size_t len = slot.len;
        slot.full = 0;
        pthread_cond_broadcast(&slot.cv);
        pthread_mutex_unlock(&slot.m);
        for (size_t i = 0; i < len / 8; i++) {
            r->sum += p[i] * (i | 1);
            r->bad += p[i] != mix((uint64_t)(k << 20) + i);
        }
        r->bad += munmap(p, len) != 0;
    }
    __atomic_fetch_add(&mm_done, 1, __ATOMIC_RELEASE);
    return r;
}

/* ---- workers on their own memory ---- */

static uint64_t churn(uint64_t *buf, size_t n, int passes, uint64_t seed)
{
    for (size_t i = 0; i < n; i++)
        buf[i] = mix(seed + i);
    for (int p = 0; p < passes; p++)
        for (size_t i = 0; i < n; i++) {
            size_t j = (i * 7 + (size_t)p) % n;
            buf[i] = (buf[i] ^ (buf[j] >> 3)) + (uint64_t)p;
        }
    uint64_t s = 0;
    for (size_t i = 0; i < n; i++)
        s = s * 31 + buf[i];
    return s;
}

#define WORK_WORDS (1 << 17) /* 1 MiB */
#define STACK_WORDS (1 << 13) /* 64 KiB */

static uint64_t work_unit(long w, uint64_t *buf)
{
    if (w < 2)
        return churn(buf, WORK_WORDS, 4, (uint64_t)w + 1);
    uint64_t stack_buf[STACK_WORDS], s = 0;
    for (int rep = 0; rep < 4; rep++)
        s += churn(stack_buf, STACK_WORDS, 4, 3 + (uint64_t)rep);
    return s;
}

/* Repeats one unit of work until the memory-map churn is over (at least twice); every unit
   must give the same checksum. How many units ran depends on the timing: not printed. */
static void *worker(void *arg)
{
    long w = (long)arg;
    struct result *r = calloc(1, sizeof *r);
    uint64_t *buf = NULL;
    if (w == 0)
        buf = malloc(WORK_WORDS * 8);
    else if (w == 1)
        buf = map_or_die(NULL, WORK_WORDS * 8, PROT_READ | PROT_WRITE, 0);
    pthread_barrier_wait(&start);
    r->sum = work_unit(w, buf);
    long units = 1;
    while (units < 2 || __atomic_load_n(&mm_done, __ATOMIC_ACQUIRE) < MAPPERS + 2) {
        r->bad += work_unit(w, buf) != r->sum;
        units++;
    }
    if (w == 0)
        free(buf);
    else if (w == 1)
        r->bad += munmap(buf, WORK_WORDS * 8) != 0;
    return r;
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    page = sysconf(_SC_PAGESIZE);
    pthread_barrier_init(&start, NULL, NTHREADS);
    pthread_t th[NTHREADS];
    int k = 0;
    for (long m = 0; m < MAPPERS; m++)
        pthread_create(&th[k++], NULL, mapper, (void *)m);
    pthread_create(&th[k++], NULL, producer, NULL);
    pthread_create(&th[k++], NULL, consumer, NULL);
    for (long w = 0; w < WORKERS; w++)
        pthread_create(&th[k++], NULL, worker, (void *)w);
    struct result *res[NTHREADS];
    long bad = 0;
    for (int i = 0; i < NTHREADS; i++) {
        pthread_join(th[i], (void **)&res[i]);
        bad += res[i]->bad;
    }
    pthread_barrier_destroy(&start);
    printf("threadmm: page size %ld\n", page);
    for (int m = 0; m < MAPPERS; m++)
        printf("mapper %d: %d rounds of mmap/fill/mprotect/hole/MAP_FIXED/mremap/munmap, "
               "checksum %llu, errors %ld\n",
               m, MAP_ROUNDS, (unsigned long long)res[m]->sum, res[m]->bad);
    printf("producer/consumer: %d regions mapped by one thread, unmapped by the other, "
           "checksum %llu, errors %ld\n",
           REGIONS, (unsigned long long)res[MAPPERS + 1]->sum, res[MAPPERS + 1]->bad);
    static const char *what[WORKERS] = {"malloc'd 1 MiB", "mmap'd 1 MiB", "stack 64 KiB"};
    for (int w = 0; w < WORKERS; w++)
        printf("worker %d (%s): unit checksum %llu, every repetition equal: %s\n", w, what[w],
               (unsigned long long)res[MAPPERS + 2 + w]->sum,
               res[MAPPERS + 2 + w]->bad ? "no" : "yes");
    if (bad)
        printf("FAIL: %ld errors\n", bad);
    printf("threadmm: %s\n", bad ? "FAILED" : "all checks passed");
    for (int i = 0; i < NTHREADS; i++)
        free(res[i]);
    return bad ? 1 : 0;
}
