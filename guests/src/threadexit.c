/*
 * threadexit: exit(3) from one thread while every other thread is busy for ever:
 *
 *   - two threads spin in hot loops with no system calls (only volatile stores)
 *   - one is blocked in read() on a pipe that nobody writes
 *   - one is blocked in sem_wait() on a semaphore that nobody posts
 *   - one sleeps for an hour in nanosleep()
 *   - main is blocked in pthread_join() of a spinning thread
 *
 * The exiting thread waits until both spinners have run a million iterations each and the
 * blocking threads have started, prints, and calls exit(3): the atexit handler runs in the
 * exiting thread, stdio is flushed, and exit_group ends every thread at once. Expected: exit
 * status 3, and stdout holds exactly the lines printed before (nothing after; no thread
 * prints once exit has begun). stdout keeps its default buffering, so the lines reach it
 * only through the flushes: fflush for the first ones, exit() for the rest.
 *
 * threadlast is the other way a threaded process ends: the last thread's pthread_exit.
 */
#include <pthread.h>
#include <semaphore.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#define SPINNERS 2
#define BLOCKERS 3
#define WARM (1ul << 20)

static volatile unsigned long spin_count[SPINNERS];
static volatile unsigned long spin_state[SPINNERS];
static int blockers_started; /* atomic */
static int pipe_fds[2];
static sem_t never;

static void *spinner(void *arg)
{
    long k = (long)arg;
    unsigned long x = (unsigned long)k + 1;
    for (;;) { /* a hot loop: no calls, no system calls */
        x = x * 6364136223846793005ul + 1442695040888963407ul;
        spin_state[k] = x;
        spin_count[k] = spin_count[k] + 1;
    }
    return NULL;
}

static void *blocked_reader(void *arg)
{
    (void)arg;
    char c;
    __atomic_fetch_add(&blockers_started, 1, __ATOMIC_RELEASE);
    ssize_t n = read(pipe_fds[0], &c, 1); /* nobody writes: blocks until the process ends */
    printf("reader: read returned %zd (must not happen)\n", n);
    return NULL;
}

static void *blocked_waiter(void *arg)
{
    (void)arg;
    __atomic_fetch_add(&blockers_started, 1, __ATOMIC_RELEASE);
    sem_wait(&never);
    printf("waiter: sem_wait returned (must not happen)\n");
    return NULL;
}

static void *sleeper(void *arg)
{
    (void)arg;
    struct timespec hour = {3600, 0};
    __atomic_fetch_add(&blockers_started, 1, __ATOMIC_RELEASE);
    nanosleep(&hour, NULL);
    printf("sleeper: woke up (must not happen)\n");
    return NULL;
}

static void at_exit_handler(void)
{
    printf("atexit handler: runs in the exiting thread, before stdout is flushed\n");
}

static void *exiter(void *arg)
{
    (void)arg;
    for (int k = 0; k < SPINNERS; k++)
        while (spin_count[k] < WARM)
            sched_yield();
    while (__atomic_load_n(&blockers_started, __ATOMIC_ACQUIRE) < BLOCKERS)
        sched_yield();
    printf("exiter: %d spinners past %lu iterations, %d threads blocked, main in "
           "pthread_join\n",
           SPINNERS, WARM, BLOCKERS);
    fflush(stdout);
    printf("exiter: calling exit(3); this line is flushed by exit\n");
    exit(3);
}

int main(void)
{
    pthread_t spin[SPINNERS], t;
    atexit(at_exit_handler);
    if (pipe(pipe_fds) != 0 || sem_init(&never, 0, 0) != 0) {
        printf("setup failed\n");
        return 1;
    }
    printf("threadexit: main starts %d spinners, %d blocked threads and the exiter\n", SPINNERS,
           BLOCKERS);
    fflush(stdout);
    for (long k = 0; k < SPINNERS; k++)
        pthread_create(&spin[k], NULL, spinner, (void *)k);
    pthread_create(&t, NULL, blocked_reader, NULL);
    pthread_create(&t, NULL, blocked_waiter, NULL);
    pthread_create(&t, NULL, sleeper, NULL);
    pthread_create(&t, NULL, exiter, NULL);
    pthread_join(spin[0], NULL); /* for ever */
    printf("main: pthread_join returned (must not happen)\n");
    return 0;
}
