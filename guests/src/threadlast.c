/*
 * threadlast: a threaded process ends when its last thread calls pthread_exit, with exit
 * status 0, even though main never returns:
 *
 *   - main starts thread A, prints, and calls pthread_exit((void *)42): the main thread
 *     ends (SYS_exit, not exit_group) and the process lives on
 *   - A joins the main thread (its tid word is cleared and woken by the kernel, as for any
 *     thread: glibc registered it with set_tid_address) and gets 42; A starts C and joins
 *     it (C returns 7), starts the detached thread B, and returns 100 (an implicit
 *     pthread_exit)
 *   - B joins A (gets 100), works, and calls pthread_exit(NULL) as the last thread: glibc
 *     then calls exit(0), so the atexit handler runs and stdout is flushed
 *
 * The order of every line is fixed by the joins. stdout keeps its default buffering and is
 * never flushed explicitly: everything reaches it through the final exit(0).
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

static pthread_t main_thread, thread_a;
static int failures;

static uint64_t work(uint64_t x, int n)
{
    for (int i = 0; i < n; i++)
        x = (x ^ (x >> 29)) * 0xBF58476D1CE4E5B9ull + (uint64_t)i;
    return x;
}

static void at_exit_handler(void)
{
    printf("atexit handler: ran in the last thread's exit(0), %d failures\n", failures);
}

static void *thread_c(void *arg)
{
    (void)arg;
    return (void *)7;
}

static void *thread_b(void *arg)
{
    (void)arg;
    void *ret;
    int e = pthread_join(thread_a, &ret);
    printf("B: joined A: error %d, value %ld\n", e, (long)ret);
    failures += e != 0 || ret != (void *)100;
    uint64_t w = work(1, 200000);
    printf("B: work done, checksum %llu; B is the last thread and calls pthread_exit\n",
           (unsigned long long)w);
    pthread_exit(NULL);
}

static void *thread_a_fn(void *arg)
{
    (void)arg;
    void *ret;
    int e = pthread_join(main_thread, &ret);
    printf("A: joined the main thread: error %d, value %ld\n", e, (long)ret);
    failures += e != 0 || ret != (void *)42;
    pthread_t c, b;
    pthread_create(&c, NULL, thread_c, NULL);
    e = pthread_join(c, &ret);
    printf("A: joined C: error %d, value %ld\n", e, (long)ret);
    failures += e != 0 || ret != (void *)7;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_create(&b, &attr, thread_b, NULL);
    pthread_attr_destroy(&attr);
    printf("A: started detached B, returning 100\n");
    return (void *)100;
}

int main(void)
{
    main_thread = pthread_self();
    atexit(at_exit_handler);
    printf("threadlast: main starts A, then calls pthread_exit(42)\n");
    pthread_create(&thread_a, NULL, thread_a_fn, NULL);
    pthread_exit((void *)42);
}
