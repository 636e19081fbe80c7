/* Processes: fork and wait4/waitpid exit statuses (normal exit and killed by a
 * signal), a child's copy of memory, pipes between parent and child, WNOHANG,
 * waitid, SIGCHLD with CLD_EXITED, vfork with _exit, ECHILD, and execution of host
 * programs by posix_spawn, system() and popen().
 *
 * With no arguments every line is deterministic; the expected output is recorded with
 * qemu-riscv64 (which runs host programs directly, as vmjit does). With argument
 * `exec` it also re-executes itself (a riscv64 program, which qemu can only run with a
 * binfmt_misc entry, so it is not part of the recording) and prints what the new image
 * received; crates/vmjit/tests/processes.rs checks that mode.
 *
 * Every fork is bounded: no child forks again, and every child is waited for. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

static volatile sig_atomic_t chld, chld_code, chld_status;
static volatile pid_t chld_pid;
static int shared_value = 1;

static void on_chld(int sig, siginfo_t *si, void *uc)
{
    (void)sig;
    (void)uc;
    chld++;
    chld_code = si->si_code;
    chld_status = si->si_status;
    chld_pid = si->si_pid;
}

static pid_t must_fork(void)
{
    fflush(stdout);
    pid_t p = fork();
    if (p < 0) {
        perror("fork");
        exit(1);
    }
    return p;
}

static void describe(const char *what, int status)
{
    if (WIFEXITED(status))
        printf("%s: exited %d\n", what, WEXITSTATUS(status));
    else if (WIFSIGNALED(status))
        printf("%s: killed by signal %d\n", what, WTERMSIG(status));
    else
        printf("%s: status %#x\n", what, status);
}

/* The re-executed image: prints what it received and exits 9. */
static int exec_image(int argc, char **argv)
{
    printf("new image: argc=%d argv[1]=%s argv[2]=%s env VMJIT_PROCS=%s\n", argc, argv[1],
           argc > 2 ? argv[2] : "-", getenv("VMJIT_PROCS") ? getenv("VMJIT_PROCS") : "unset");
    /* fd 5 was left open across exec, fd 6 was close-on-exec. */
    printf("new image: fd 5 %s, fd 6 %s\n", fcntl(5, F_GETFD) >= 0 ? "open" : "closed",
           fcntl(6, F_GETFD) >= 0 ? "open" : "closed");
    char buf[16] = {0};
    ssize_t n = read(5, buf, sizeof buf - 1);
    printf("new image: read %zd '%s' from the inherited pipe\n", n, n > 0 ? buf : "");
    return 9;
}

static void self_exec(const char *self)
{
    int p[2], q[2];
    if (pipe(p) != 0 || pipe2(q, O_CLOEXEC) != 0)
        exit(1);
    if (dup2(p[0], 5) < 0 || dup3(q[0], 6, O_CLOEXEC) < 0)
        exit(1);
    if (write(p[1], "through", 7) != 7)
        exit(1);
    pid_t pid = must_fork();
    if (pid == 0) {
        char *args[] = {(char *)self, "image", "two", NULL};
        char *env[] = {"VMJIT_PROCS=yes", NULL};
        execve(self, args, env);
        perror("execve");
        _exit(127);
    }
    int status;
    waitpid(pid, &status, 0);
    describe("exec'd self", status);
    char *bad[] = {"/nonexistent/program", NULL};
    int r = execve(bad[0], bad, environ);
    printf("execve of a missing file: %d %s\n", r, errno == ENOENT ? "ENOENT" : "other");
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "image") == 0)
        return exec_image(argc, argv);

    /* fork and an exit status; the child's writes stay in the child. */
    pid_t pid = must_fork();
    if (pid == 0) {
        shared_value = 2;
        _exit(getppid() > 1 ? 7 : 8);
    }
    int status;
    pid_t got = waitpid(pid, &status, 0);
    describe("child", status);
    printf("waitpid returned the child: %d, parent's value still %d\n", got == pid,
           shared_value);

    /* A child killed by a signal. */
    pid = must_fork();
    if (pid == 0) {
        kill(getpid(), SIGTERM);
        _exit(0);
    }
    waitpid(pid, &status, 0);
    describe("signalled child", status);

    /* A pipe from child to parent, and WNOHANG while the child waits on another. */
    int up[2], down[2];
    if (pipe(up) != 0 || pipe(down) != 0)
        return 1;
    pid = must_fork();
    if (pid == 0) {
        close(up[0]);
        close(down[1]);
        char c;
        if (read(down[0], &c, 1) != 1)
            _exit(2);
        const char msg[] = "hello from the child";
        if (write(up[1], msg, sizeof msg) != (ssize_t)sizeof msg)
            _exit(3);
        _exit(0);
    }
    close(up[1]);
    close(down[0]);
    printf("WNOHANG while the child runs: %d\n", (int)waitpid(pid, &status, WNOHANG));
    if (write(down[1], "g", 1) != 1)
        return 1;
    char buf[64] = {0};
    ssize_t n = read(up[0], buf, sizeof buf);
    printf("parent read %zd bytes: %s\n", n, buf);
    n = read(up[0], buf, sizeof buf);
    printf("then end of file: %zd\n", n);
    waitpid(pid, &status, 0);
    describe("piped child", status);
    close(up[0]);
    close(down[1]);

    /* waitid reports CLD_EXITED with the status. */
    pid = must_fork();
    if (pid == 0)
        _exit(42);
    siginfo_t si;
    memset(&si, 0, sizeof si);
    waitid(P_PID, pid, &si, WEXITED);
    printf("waitid: code=%s status=%d pid matches %d\n",
           si.si_code == CLD_EXITED ? "CLD_EXITED" : "other", si.si_status, si.si_pid == pid);

    /* SIGCHLD, caught while it is blocked and then let through by sigsuspend. */
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_chld;
    sa.sa_flags = SA_SIGINFO | SA_RESTART;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGCHLD, &sa, NULL);
    sigset_t set, old;
    sigemptyset(&set);
    sigaddset(&set, SIGCHLD);
    sigprocmask(SIG_BLOCK, &set, &old);
    pid = must_fork();
    if (pid == 0)
        _exit(3);
    while (!chld)
        sigsuspend(&old);
    sigprocmask(SIG_SETMASK, &old, NULL);
    printf("SIGCHLD: %d code=%s status=%d from the child %d\n", (int)chld,
           chld_code == CLD_EXITED ? "CLD_EXITED" : "other", (int)chld_status, chld_pid == pid);
    waitpid(pid, &status, 0);
    describe("reaped after SIGCHLD", status);
    signal(SIGCHLD, SIG_DFL);

    /* vfork: the parent resumes once the child has ended. */
    fflush(stdout);
    pid = vfork();
    if (pid == 0)
        _exit(5);
    waitpid(pid, &status, 0);
    describe("vfork child", status);

    /* No children left. */
    got = waitpid(-1, &status, 0);
    printf("wait with no children: %d %s\n", (int)got, errno == ECHILD ? "ECHILD" : "other");

    /* Host programs: posix_spawn (CLONE_VM|CLONE_VFORK), system() and popen(). */
    fflush(stdout);
    char *echo_args[] = {"echo", "spawned by posix_spawn", NULL};
    if (posix_spawn(&pid, "/bin/echo", NULL, NULL, echo_args, environ) != 0)
        return 1;
    waitpid(pid, &status, 0);
    describe("posix_spawn", status);
    fflush(stdout);
    status = system("echo run by system; exit 4");
    describe("system", status);
    fflush(stdout);
    status = system("echo a shell pipeline | tr a-z A-Z");
    describe("pipeline", status);
    FILE *f = popen("echo read through popen", "r");
    if (!f)
        return 1;
    if (!fgets(buf, sizeof buf, f))
        buf[0] = 0;
    status = pclose(f);
    printf("popen: %s", buf);
    describe("pclose", status);

    if (argc > 1 && strcmp(argv[1], "exec") == 0)
        self_exec(argv[0]);
    return 0;
}
