/* Signals and threads: masks are per thread, a process-directed signal goes to a
 * thread that does not block it, pthread_kill reaches one thread (also one spinning in
 * a hot translated loop), sigwait in a dedicated thread, and a fatal signal ends every
 * thread with the right status (exit 138 = 128 + SIGUSR1).
 *
 * Every line is deterministic; the expected output is recorded with qemu-riscv64. */
#define _GNU_SOURCE
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

static volatile pid_t handled_on;
static volatile sig_atomic_t handled;
static volatile int stop_spin;
static sem_t ready, go, done;
static pid_t worker_tid;

/* Fails the program when a thread cannot be started (vmjit's --crosscheck refuses
 * clone), instead of waiting for it for ever. */
static void start(pthread_t *t, void *(*fn)(void *), void *arg)
{
    int r = pthread_create(t, NULL, fn, arg);
    if (r != 0) {
        fprintf(stderr, "pthread_create: %s\n", strerror(r));
        exit(1);
    }
}

static pid_t tid(void)
{
    return (pid_t)syscall(SYS_gettid);
}

static void handler(int sig)
{
    (void)sig;
    handled_on = tid();
    handled++;
}

static void spin_handler(int sig)
{
    (void)sig;
    stop_spin = 1;
}

static void install(int sig, void (*h)(int))
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = h;
    sigemptyset(&sa.sa_mask);
    if (sigaction(sig, &sa, NULL) != 0) {
        perror("sigaction");
        exit(1);
    }
}

static void block(int sig, int how)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, sig);
    pthread_sigmask(how, &set, NULL);
}

/* Unblocks SIGUSR1 (blocked in main before it was created) and waits for it. */
static void *worker(void *arg)
{
    (void)arg;
    worker_tid = tid();
    block(SIGUSR1, SIG_UNBLOCK);
    sem_post(&ready);
    while (sem_wait(&done) != 0)
        ;
    return NULL;
}

static void *spinner(void *arg)
{
    (void)arg;
    unsigned long n = 0;
    sem_post(&ready);
    while (!stop_spin)
        n = n * 3 + 1;
    return (void *)(n & 0);
}

static void *waiter(void *arg)
{
    sigset_t *set = arg;
    int sig = 0;
    sem_post(&ready);
    sigwait(set, &sig);
    return (void *)(long)sig;
}

int main(void)
{
    sem_init(&ready, 0, 0);
    sem_init(&go, 0, 0);
    sem_init(&done, 0, 0);

    /* A process-directed signal, blocked in main, goes to the worker. */
    install(SIGUSR1, handler);
    block(SIGUSR1, SIG_BLOCK);
    pthread_t w;
    start(&w, worker, NULL);
    sem_wait(&ready);
    kill(getpid(), SIGUSR1);
    while (!handled)
        sched_yield();
    printf("kill(getpid()): handled on %s\n", handled_on == worker_tid ? "worker" : "other");
    sigset_t mine;
    pthread_sigmask(SIG_BLOCK, NULL, &mine);
    printf("main still blocks SIGUSR1: %d\n", sigismember(&mine, SIGUSR1));

    /* pthread_kill names the thread. */
    install(SIGUSR2, handler);
    handled = 0;
    pthread_kill(w, SIGUSR2);
    while (!handled)
        sched_yield();
    printf("pthread_kill(worker): handled on %s\n", handled_on == worker_tid ? "worker" : "other");
    handled = 0;
    pthread_kill(pthread_self(), SIGUSR2);
    printf("pthread_kill(self): handled on %s\n", handled_on == tid() ? "main" : "other");
    sem_post(&done);
    pthread_join(w, NULL);

    /* A thread spinning in a hot loop gets its signal. */
    install(SIGUSR2, spin_handler);
    pthread_t s;
    start(&s, spinner, NULL);
    sem_wait(&ready);
    usleep(20000);
    pthread_kill(s, SIGUSR2);
    pthread_join(s, NULL);
    printf("spinner stopped: %d\n", stop_spin);

    /* sigwait in a dedicated thread, with the signal blocked everywhere. */
    static sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGUSR1);
    handled = 0;
    pthread_t q;
    start(&q, waiter, &set);
    sem_wait(&ready);
    kill(getpid(), SIGUSR1);
    void *got;
    pthread_join(q, &got);
    printf("sigwait got %ld, handler ran %d\n", (long)got, (int)handled);

    /* A fatal signal ends the whole process, whichever thread takes it. */
    fflush(stdout);
    signal(SIGUSR1, SIG_DFL);
    start(&w, worker, NULL);
    sem_wait(&ready);
    kill(getpid(), SIGUSR1);
    pthread_join(w, NULL);
    printf("not reached\n");
    return 0;
}
