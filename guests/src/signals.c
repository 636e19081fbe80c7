/* Synchronous and self-sent signals, as Linux delivers them to a riscv64 process:
 * handlers with and without SA_SIGINFO, masks and pending sets, SA_NODEFER,
 * SA_RESETHAND, sigaltstack with SA_ONSTACK, sigqueue values, sigtimedwait,
 * sigsuspend, handlers that edit the interrupted context (pc, a register, an FP
 * register), siglongjmp out of SIGSEGV and SIGBUS, SIGILL and SIGTRAP with si_code and si_addr,
 * and the default action of an ignored and of a blocked signal.
 *
 * Every line is deterministic; the expected output is recorded with qemu-riscv64. */
#if !defined(__riscv) || __riscv_xlen != 64
#error "signals.c edits riscv64 contexts (REG_PC, REG_A0, fa0) and uses riscv64 instructions"
#endif
#define _GNU_SOURCE
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <ucontext.h>
#include <unistd.h>

static volatile sig_atomic_t count;
static volatile int last_sig, last_code, last_errno_val;
static volatile intptr_t last_value;
static volatile uintptr_t last_addr;
static volatile int depth, max_depth, raises, runs;
static volatile uintptr_t handler_sp;
static sigjmp_buf jump;

static void plain(int sig)
{
    count++;
    last_sig = sig;
}

static void info(int sig, siginfo_t *si, void *uc)
{
    (void)uc;
    count++;
    last_sig = sig;
    last_code = si->si_code;
    last_value = (intptr_t)si->si_value.sival_ptr;
}

static void nested(int sig)
{
    runs++;
    depth++;
    if (depth > max_depth)
        max_depth = depth;
    if (raises < 2) {
        raises++;
        raise(sig);
    }
    depth--;
}

static void on_alt(int sig)
{
    volatile char here;
    (void)sig;
    handler_sp = (uintptr_t)&here;
}

static void segv(int sig, siginfo_t *si, void *uc)
{
    (void)uc;
    last_sig = sig;
    last_code = si->si_code;
    last_addr = (uintptr_t)si->si_addr;
    siglongjmp(jump, 1);
}

/* Skips the faulting 4-byte instruction and sets a0 to 42. */
static void skip(int sig, siginfo_t *si, void *ucv)
{
    ucontext_t *uc = ucv;
    last_sig = sig;
    last_code = si->si_code;
    last_addr = (uintptr_t)si->si_addr;
    uc->uc_mcontext.__gregs[REG_PC] += 4;
    uc->uc_mcontext.__gregs[REG_A0] = 42;
}

/* Changes fa0 in the interrupted context: the FP state is restored from the frame. */
static void fpedit(int sig, siginfo_t *si, void *ucv)
{
    ucontext_t *uc = ucv;
    (void)sig;
    (void)si;
    uc->uc_mcontext.__fpregs.__d.__f[10] = 0x4045000000000000ull; /* 42.0 */
    uc->uc_mcontext.__gregs[REG_PC] += 4;
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

static void install_info(int sig, void (*h)(int, siginfo_t *, void *), int flags)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = h;
    sa.sa_flags = flags | SA_SIGINFO;
    sigemptyset(&sa.sa_mask);
    if (sigaction(sig, &sa, NULL) != 0) {
        perror("sigaction");
        exit(1);
    }
}

int main(void)
{
    sigset_t set, old, pend;

    /* A plain handler, by raise, kill and tgkill. */
    install(SIGUSR1, plain, 0);
    raise(SIGUSR1);
    kill(getpid(), SIGUSR1);
    syscall(SYS_tgkill, getpid(), (pid_t)syscall(SYS_gettid), SIGUSR1);
    printf("plain: count=%d sig=%d\n", (int)count, (int)last_sig);

    /* SA_SIGINFO: si_code tells who sent it. */
    install_info(SIGUSR2, info, 0);
    raise(SIGUSR2);
    printf("raise: si_code=%s\n", last_code == SI_TKILL ? "SI_TKILL" : "other");
    kill(getpid(), SIGUSR2);
    printf("kill: si_code=%s\n", last_code == SI_USER ? "SI_USER" : "other");
    union sigval v = {.sival_ptr = (void *)0x1234};
    sigqueue(getpid(), SIGUSR2, v);
    printf("sigqueue: si_code=%s value=%#lx\n", last_code == SI_QUEUE ? "SI_QUEUE" : "other",
           (long)last_value);

    /* Blocked signals stay pending and arrive once when unblocked; standard signals
     * do not queue, real-time ones do. */
    count = 0;
    sigemptyset(&set);
    sigaddset(&set, SIGUSR1);
    sigaddset(&set, SIGRTMIN);
    install(SIGRTMIN, plain, 0);
    sigprocmask(SIG_BLOCK, &set, &old);
    raise(SIGUSR1);
    raise(SIGUSR1);
    raise(SIGRTMIN);
    raise(SIGRTMIN);
    raise(SIGRTMIN);
    sigpending(&pend);
    printf("blocked: count=%d pending usr1=%d rtmin=%d usr2=%d\n", (int)count,
           sigismember(&pend, SIGUSR1), sigismember(&pend, SIGRTMIN),
           sigismember(&pend, SIGUSR2));
    sigprocmask(SIG_SETMASK, &old, NULL);
    printf("unblocked: count=%d (1 usr1 + 3 rtmin)\n", (int)count);

    /* SIGKILL and SIGSTOP cannot be caught or blocked. */
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = plain;
    printf("catch SIGKILL: %s\n", sigaction(SIGKILL, &sa, NULL) == -1 ? "refused" : "allowed");
    sigemptyset(&set);
    sigaddset(&set, SIGKILL);
    sigprocmask(SIG_BLOCK, &set, NULL);
    sigprocmask(SIG_BLOCK, NULL, &old);
    printf("block SIGKILL: %s\n", sigismember(&old, SIGKILL) ? "blocked" : "ignored");

    /* The handler runs with its signal blocked, unless SA_NODEFER. */
    install(SIGUSR1, nested, 0);
    depth = max_depth = raises = runs = 0;
    raise(SIGUSR1);
    printf("deferred: max depth %d, ran %d times\n", (int)max_depth, (int)runs);
    install(SIGUSR1, nested, SA_NODEFER);
    depth = max_depth = raises = runs = 0;
    raise(SIGUSR1);
    printf("nodefer: max depth %d, ran %d times\n", (int)max_depth, (int)runs);

    /* SA_RESETHAND: the second raise finds SIG_DFL again (we ignore it then). */
    install(SIGUSR1, plain, SA_RESETHAND);
    count = 0;
    raise(SIGUSR1);
    sigaction(SIGUSR1, NULL, &sa);
    printf("resethand: count=%d now %s\n", (int)count,
           sa.sa_handler == SIG_DFL ? "SIG_DFL" : "handler");

    /* An ignored signal does nothing. */
    signal(SIGUSR1, SIG_IGN);
    raise(SIGUSR1);
    printf("ignored: still here\n");

    /* sigaltstack and SA_ONSTACK. */
    static char alt[65536];
    stack_t ss = {.ss_sp = alt, .ss_size = sizeof alt, .ss_flags = 0};
    if (sigaltstack(&ss, NULL) != 0)
        perror("sigaltstack");
    install(SIGUSR2, on_alt, SA_ONSTACK);
    raise(SIGUSR2);
    printf("onstack: %s\n",
           handler_sp >= (uintptr_t)alt && handler_sp < (uintptr_t)alt + sizeof alt ? "on alt stack"
                                                                                   : "elsewhere");
    install(SIGUSR2, on_alt, 0);
    raise(SIGUSR2);
    printf("without SA_ONSTACK: %s\n",
           handler_sp >= (uintptr_t)alt && handler_sp < (uintptr_t)alt + sizeof alt ? "on alt stack"
                                                                                   : "elsewhere");
    stack_t cur;
    sigaltstack(NULL, &cur);
    printf("altstack flags=%d size=%zu\n", cur.ss_flags, cur.ss_size);

    /* sigtimedwait takes a blocked pending signal without running its handler. */
    install(SIGUSR1, plain, 0);
    sigemptyset(&set);
    sigaddset(&set, SIGUSR1);
    sigprocmask(SIG_BLOCK, &set, NULL);
    count = 0;
    sigqueue(getpid(), SIGUSR1, (union sigval){.sival_int = 7});
    siginfo_t si;
    struct timespec ts = {0, 0};
    int got = sigtimedwait(&set, &si, &ts);
    printf("sigtimedwait: got=%d code=%s value=%d handler ran %d\n", got,
           si.si_code == SI_QUEUE ? "SI_QUEUE" : "other", si.si_value.sival_int, (int)count);
    got = sigtimedwait(&set, &si, &ts);
    printf("sigtimedwait again: %d %s\n", got, got == -1 && errno == EAGAIN ? "EAGAIN" : "other");

    /* sigsuspend swaps in a mask that lets the pending signal through. */
    raise(SIGUSR1);
    sigset_t none;
    sigemptyset(&none);
    int r = sigsuspend(&none);
    printf("sigsuspend: %d count=%d\n", r, (int)count);
    sigprocmask(SIG_BLOCK, NULL, &old);
    printf("mask restored: %d\n", sigismember(&old, SIGUSR1));
    sigprocmask(SIG_UNBLOCK, &set, NULL);

    /* SIGSEGV with siglongjmp: unmapped address, and a write to read-only memory. */
    install_info(SIGSEGV, segv, SA_NODEFER);
    volatile int *volatile low = (volatile int *)16;
    if (sigsetjmp(jump, 1) == 0)
        *low = 1;
    printf("segv: sig=%d code=%s addr=%#lx\n", (int)last_sig,
           last_code == SEGV_MAPERR ? "SEGV_MAPERR" : "other", (unsigned long)last_addr);
    char *ro = mmap(NULL, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (sigsetjmp(jump, 1) == 0)
        *(volatile char *)(ro + 8) = 1;
    printf("segv: code=%s at page+%ld\n", last_code == SEGV_ACCERR ? "SEGV_ACCERR" : "other",
           (long)(last_addr - (uintptr_t)ro));
    /* siglongjmp restored the mask saved by sigsetjmp. */
    sigprocmask(SIG_BLOCK, NULL, &old);
    printf("segv twice, mask has SIGSEGV: %d\n", sigismember(&old, SIGSEGV));

    /* SIGBUS: a misaligned atomic (BUS_ADRALN), and a file mapping read past the
     * file's end (BUS_ADRERR; the rest of the file's last page reads as zeros). */
    install_info(SIGBUS, segv, SA_NODEFER);
    static long words[4];
    int *mis = (int *)((char *)words + 2);
    if (sigsetjmp(jump, 1) == 0) {
        int prev;
        __asm__ volatile("amoadd.w %0, %2, (%1)" : "=r"(prev) : "r"(mis), "r"(1) : "memory");
        printf("misaligned amoadd.w did not fault\n");
    }
    printf("sigbus: sig=%d code=%s at the word %d\n", (int)last_sig,
           last_code == BUS_ADRALN ? "BUS_ADRALN" : "other", last_addr == (uintptr_t)mis);
    FILE *tmp = tmpfile();
    if (!tmp || fputs("one byte of file and more", tmp) < 0 || fflush(tmp) != 0)
        return 1;
    char *fm = mmap(NULL, 3 * 4096, PROT_READ, MAP_PRIVATE, fileno(tmp), 0);
    if (fm == MAP_FAILED)
        return 1;
    printf("file mapping: '%.8s' then %d\n", fm, fm[4095]);
    last_sig = 0;
    if (sigsetjmp(jump, 1) == 0)
        printf("past the end: %d (no fault)\n", *(volatile char *)(fm + 4096 + 100));
    printf("sigbus: sig=%d code=%s at page+%ld\n", (int)last_sig,
           last_code == BUS_ADRERR ? "BUS_ADRERR" : "other", (long)(last_addr - (uintptr_t)fm));
    mprotect(fm, 3 * 4096, PROT_READ | PROT_WRITE);
    last_sig = 0;
    if (sigsetjmp(jump, 1) == 0)
        fm[2 * 4096] = 1;
    printf("after mprotect, a write past the end: sig=%d\n", (int)last_sig);
    munmap(fm, 3 * 4096);
    fclose(tmp);

    /* SIGILL and SIGTRAP: the handler skips the instruction and sets a0. */
    install_info(SIGILL, skip, 0);
    long a0;
    uintptr_t at;
    __asm__ volatile("la %1, 1f\n\tli a0, 0\n1:\t.word 0\n\tmv %0, a0"
                     : "=r"(a0), "=&r"(at)
                     :
                     : "a0");
    printf("sigill: code=%s at insn=%d a0=%ld\n", last_code == ILL_ILLOPC ? "ILL_ILLOPC" : "other",
           last_addr == at, a0);
    install_info(SIGTRAP, skip, 0);
    __asm__ volatile("la %1, 1f\n\tli a0, 0\n1:\t.option push\n\t.option norvc\n\tebreak\n\t"
                     ".option pop\n\tmv %0, a0"
                     : "=r"(a0), "=&r"(at)
                     :
                     : "a0");
    printf("sigtrap: code=%s at insn=%d a0=%ld\n", last_code == TRAP_BRKPT ? "TRAP_BRKPT" : "other",
           last_addr == at, a0);

    /* The FP registers come back from the frame too. */
    install_info(SIGILL, fpedit, 0);
    double f;
    __asm__ volatile("fmv.d.x fa0, zero\n\t.word 0\n\tfmv.d %0, fa0" : "=f"(f) : : "fa0");
    printf("fp context: fa0=%g\n", f);

    /* A blocked synchronous fault is fatal anyway: the last test, by default action. */
    fflush(stdout);
    signal(SIGSEGV, SIG_DFL);
    sigemptyset(&set);
    sigaddset(&set, SIGABRT);
    sigprocmask(SIG_BLOCK, &set, NULL);
    signal(SIGABRT, SIG_IGN);
    raise(SIGABRT);
    printf("ignored SIGABRT: still here\n");
    fflush(stdout);
    signal(SIGTERM, SIG_DFL);
    raise(SIGTERM);
    printf("not reached\n");
    return 0;
}
