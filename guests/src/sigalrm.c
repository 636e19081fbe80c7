/* Asynchronous signals: alarm and pause, an interval timer firing into a hot loop
 * (translated code must reach a signal check), a POSIX timer with SIGEV_SIGNAL,
 * blocking calls interrupted with EINTR or restarted under SA_RESTART, SIGPIPE
 * caught, and the default action of SIGALRM ending the program (exit 142).
 *
 * With argument `host` it waits instead for signals sent from outside (the test
 * crates/vmjit/tests/processes.rs sends them to the vmjit process): it prints "ready",
 * catches one SIGINT, prints again, and is then ended by SIGTERM's default action.
 *
 * Every line is deterministic; the expected output is recorded with qemu-riscv64. */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t fired, last_sig, last_code, last_value;
static int wake_fd = -1;

static void on_alarm(int sig)
{
    fired++;
    last_sig = sig;
}

static void on_timer(int sig, siginfo_t *si, void *uc)
{
    (void)uc;
    fired++;
    last_sig = sig;
    last_code = si->si_code;
    last_value = si->si_value.sival_int;
}

/* Writes one byte to the pipe a restarted read() waits on. */
static void on_alarm_wake(int sig)
{
    fired++;
    last_sig = sig;
    if (wake_fd >= 0 && write(wake_fd, "w", 1) != 1)
        _exit(3);
}

static void install(int sig, void (*h)(int), int flags)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = h;
    sa.sa_flags = flags;
    sigemptyset(&sa.sa_mask);
    if (sigaction(sig, &sa, NULL) != 0) {
        perror("sigaction");
        exit(1);
    }
}

static void arm_ms(long ms)
{
    struct itimerval it = {{0, 0}, {ms / 1000, (ms % 1000) * 1000}};
    if (setitimer(ITIMER_REAL, &it, NULL) != 0) {
        perror("setitimer");
        exit(1);
    }
}

/* A loop the JIT translates and chains: it only ends when the handler runs. */
static __attribute__((noinline)) unsigned long spin(void)
{
    unsigned long n = 0, x = 1;
    while (!fired) {
        x = x * 6364136223846793005ul + 1442695040888963407ul;
        n++;
    }
    return n + (x & 0);
}

static __attribute__((noreturn)) void host_signals(void)
{
    /* SIGINT stays blocked except inside sigsuspend, so it cannot slip in between the
     * test of `fired` and the wait. */
    sigset_t set, old;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigprocmask(SIG_BLOCK, &set, &old);
    install(SIGINT, on_alarm, 0);
    printf("ready\n");
    fflush(stdout);
    while (!fired)
        sigsuspend(&old);
    printf("caught signal %d from outside\n", (int)last_sig);
    fflush(stdout);
    for (;;)
        pause();
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "host") == 0)
        host_signals();

    /* alarm(1) then pause(): pause returns -1/EINTR after the handler ran. */
    install(SIGALRM, on_alarm, 0);
    printf("alarm(0) with none pending: %u\n", alarm(0));
    alarm(1);
    int r = pause();
    printf("pause: %d %s fired=%d sig=%d\n", r, errno == EINTR ? "EINTR" : "other", (int)fired,
           (int)last_sig);

    /* A 20 ms interval timer, three times into a hot loop. */
    struct itimerval it = {{0, 20000}, {0, 20000}};
    setitimer(ITIMER_REAL, &it, NULL);
    int loops = 0;
    for (int i = 0; i < 3; i++) {
        fired = 0;
        loops += spin() > 0;
    }
    memset(&it, 0, sizeof it);
    setitimer(ITIMER_REAL, &it, NULL);
    getitimer(ITIMER_REAL, &it);
    printf("interval timer: loops ended %d, disarmed %d\n", loops,
           it.it_value.tv_sec == 0 && it.it_value.tv_usec == 0);

    /* A POSIX timer delivering SIGRTMIN+1 with a value, into the same loop. */
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_timer;
    sa.sa_flags = SA_SIGINFO;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGRTMIN + 1, &sa, NULL);
    struct sigevent sev;
    memset(&sev, 0, sizeof sev);
    sev.sigev_notify = SIGEV_SIGNAL;
    sev.sigev_signo = SIGRTMIN + 1;
    sev.sigev_value.sival_int = 99;
    timer_t t;
    if (timer_create(CLOCK_MONOTONIC, &sev, &t) != 0) {
        perror("timer_create");
        return 1;
    }
    struct itimerspec its = {{0, 0}, {0, 10 * 1000 * 1000}};
    fired = 0;
    timer_settime(t, 0, &its, NULL);
    spin();
    printf("posix timer: sig=RTMIN+%d code=%s value=%d\n", (int)last_sig - SIGRTMIN,
           last_code == SI_TIMER ? "SI_TIMER" : "other", (int)last_value);
    timer_delete(t);

    /* A read that blocks is interrupted: without SA_RESTART it fails with EINTR. */
    int p[2];
    if (pipe(p) != 0)
        return 1;
    char c;
    install(SIGALRM, on_alarm, 0);
    fired = 0;
    arm_ms(20);
    ssize_t n = read(p[0], &c, 1);
    printf("read, no SA_RESTART: %zd %s fired=%d\n", n, n < 0 && errno == EINTR ? "EINTR" : "other",
           (int)fired);

    /* With SA_RESTART the read is restarted and gets the byte the handler wrote. */
    wake_fd = p[1];
    install(SIGALRM, on_alarm_wake, SA_RESTART);
    fired = 0;
    arm_ms(20);
    n = read(p[0], &c, 1);
    printf("read, SA_RESTART: %zd '%c' fired=%d\n", n, n == 1 ? c : '?', (int)fired);

    /* nanosleep is never restarted: EINTR. */
    install(SIGALRM, on_alarm, SA_RESTART);
    fired = 0;
    arm_ms(20);
    struct timespec ten = {10, 0};
    r = nanosleep(&ten, NULL);
    printf("nanosleep, SA_RESTART: %d %s\n", r, r < 0 && errno == EINTR ? "EINTR" : "other");

    /* A blocked SIGALRM stays pending across the timer's expiry. */
    sigset_t set, pend;
    sigemptyset(&set);
    sigaddset(&set, SIGALRM);
    sigprocmask(SIG_BLOCK, &set, NULL);
    fired = 0;
    arm_ms(10);
    struct timespec fifty = {0, 50 * 1000 * 1000};
    nanosleep(&fifty, NULL);
    sigpending(&pend);
    printf("blocked alarm: pending=%d fired=%d\n", sigismember(&pend, SIGALRM), (int)fired);
    sigprocmask(SIG_UNBLOCK, &set, NULL);
    printf("unblocked alarm: fired=%d\n", (int)fired);

    /* SIGPIPE with a handler: write() fails with EPIPE after the handler ran. */
    install(SIGPIPE, on_alarm, 0);
    close(p[0]);
    fired = 0;
    n = write(p[1], "x", 1);
    printf("write to closed pipe: %zd %s sig=%d fired=%d\n", n,
           n < 0 && errno == EPIPE ? "EPIPE" : "other", (int)last_sig, (int)fired);

    /* Finally the default action of SIGALRM, from a timer, in the hot loop. */
    fflush(stdout);
    signal(SIGALRM, SIG_DFL);
    fired = 0;
    arm_ms(10);
    spin();
    printf("not reached\n");
    return 0;
}
