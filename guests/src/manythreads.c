/* manythreads: 400 guest threads alive at once (all wait at one barrier before any
 * finishes), each with a small stack, each computing a value from its index; then the
 * same again twice, so 1 200 threads are created over the run. Prints the sums. */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#define N 400
#define ROUNDS 3

static pthread_barrier_t barrier;
static uint64_t results[N];

static void *work(void *arg)
{
    uintptr_t i = (uintptr_t)arg;
    pthread_barrier_wait(&barrier); /* every thread of the round is alive here */
    uint64_t x = i * 0x9E3779B97F4A7C15ull + 1;
    for (int k = 0; k < 2000; k++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
    }
    results[i] = x;
    return NULL;
}

int main(void)
{
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 64 * 1024);
    uint64_t total = 0;
    for (int round = 0; round < ROUNDS; round++) {
        pthread_t th[N];
        pthread_barrier_init(&barrier, NULL, N + 1);
        int started = 0;
        for (uintptr_t i = 0; i < N; i++) {
            if (pthread_create(&th[i], &attr, work, (void *)i) != 0)
                break;
            started++;
        }
        if (started != N) {
            printf("round %d: only %d threads started\n", round, started);
            return 1;
        }
        pthread_barrier_wait(&barrier);
        uint64_t sum = 0;
        for (int i = 0; i < N; i++) {
            pthread_join(th[i], NULL);
            sum += results[i];
        }
        pthread_barrier_destroy(&barrier);
        printf("round %d: %d threads alive at once, sum %016llx\n", round, N,
               (unsigned long long)sum);
        total += sum;
    }
    printf("manythreads: %d threads in all, total %016llx\n", N * ROUNDS,
           (unsigned long long)total);
    return 0;
}
