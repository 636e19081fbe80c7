/*
 * parallel: the thread-scaling benchmark. One integer kernel over ITEMS independent items,
 * split into N contiguous blocks for N threads (N = argv[1], default 1, at most 64;
 * argv[2] sets the number of items, default ITEMS: the tests run a sixteenth of the
 * benchmark's work). The
 * total work is the same whatever N, and the printed checksum (a wrapping sum and a xor of
 * the items' results) does not depend on N either, so stdout is the same for every N; N
 * itself goes to stderr only.
 *
 * Each item: 16 words of state seeded from the item number, ROUNDS rounds of multiply /
 * rotate / xor mixing with a data-dependent branch and loads from a 32 KiB table that each
 * thread builds for itself (the same contents in every thread), then folded to one word.
 * Plain C, no assembly: `make native` builds it for the host too.
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#ifndef ITEMS
#define ITEMS 16384
#endif
#ifndef ROUNDS
#define ROUNDS 4000
#endif
#define TABLE 4096
#define MAX_THREADS 64

static uint64_t splitmix(uint64_t z)
{
    z += 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static uint64_t rotl(uint64_t x, int r) { return x << r | x >> (64 - r); }

static uint64_t item(uint64_t id, const uint64_t *table)
{
    uint64_t s[16];
    for (int j = 0; j < 16; j++)
        s[j] = splitmix(id * 16 + (uint64_t)j);
    for (int r = 0; r < ROUNDS; r++) {
        for (int j = 0; j < 16; j++) {
            uint64_t a = s[j], b = s[(j + 5) & 15], c = s[(j + 11) & 15];
            a = (a ^ (b >> 7)) * 0x9E3779B97F4A7C15ull + rotl(c, 23);
            if ((a >> 60) == 0) /* 1 in 16: mostly predictable */
                a ^= c << 3;
            else
                a += table[b >> 52];
            s[j] = a;
        }
    }
    uint64_t h = id;
    for (int j = 0; j < 16; j++)
        h = rotl(h ^ s[j], 17) * 0xBF58476D1CE4E5B9ull;
    return h;
}

struct block {
    uint64_t first, end; /* item numbers [first, end) */
    uint64_t sum, xor;
};

static void *run_block(void *arg)
{
    struct block *b = arg;
    uint64_t *table = malloc(TABLE * sizeof *table); /* this thread's own */
    if (!table) {
        printf("malloc failed\n");
        exit(2);
    }
    for (int i = 0; i < TABLE; i++)
        table[i] = splitmix((uint64_t)i ^ 0xABCDEF);
    for (uint64_t id = b->first; id < b->end; id++) {
        uint64_t h = item(id, table);
        b->sum += h;
        b->xor ^= h;
    }
    free(table);
    return NULL;
}

int main(int argc, char **argv)
{
    int n = 1;
    if (argc > 1) {
        n = atoi(argv[1]);
        if (n < 1 || n > MAX_THREADS) {
            fprintf(stderr, "parallel: thread count must be 1..%d\n", MAX_THREADS);
            return 2;
        }
    }
    uint64_t items = ITEMS;
    if (argc > 2) {
        long v = atol(argv[2]);
        if (v < 1 || v > (1L << 24)) {
            fprintf(stderr, "parallel: item count must be 1..16777216\n");
            return 2;
        }
        items = (uint64_t)v;
    }
    fprintf(stderr, "parallel: %d thread(s)\n", n);
    struct block blocks[MAX_THREADS] = {{0, 0, 0, 0}};
    pthread_t th[MAX_THREADS];
    for (int k = 0; k < n; k++) {
        blocks[k].first = items * (uint64_t)k / (uint64_t)n;
        blocks[k].end = items * (uint64_t)(k + 1) / (uint64_t)n;
    }
    /* threads 1..n-1 are created; the main thread runs block 0 itself */
    for (int k = 1; k < n; k++)
        if (pthread_create(&th[k], NULL, run_block, &blocks[k])) {
            printf("pthread_create failed\n");
            return 2;
        }
    run_block(&blocks[0]);
    uint64_t sum = blocks[0].sum, xor = blocks[0].xor;
    for (int k = 1; k < n; k++) {
        pthread_join(th[k], NULL);
        sum += blocks[k].sum;
        xor ^= blocks[k].xor;
    }
    printf("parallel: %llu items x %d rounds, checksum %016llx %016llx\n",
           (unsigned long long)items, ROUNDS,
           (unsigned long long)sum, (unsigned long long)xor);
    return 0;
}
