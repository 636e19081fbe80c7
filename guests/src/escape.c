/* escape: a guest that tries, one route at a time, to reach what is not its own:
 * vmjit's descriptors (the code cache's memory among them), the host's memory and
 * mappings through /proc, other processes, its own translated code without a fence,
 * and more memory than it is allowed. `escape CASE` runs one case and prints what the
 * guest saw; crates/vmjit/tests/escape.rs runs every case under the interpreter and the
 * JIT and checks the output and the exit status. Each line is what Linux gives a
 * riscv64 process, except where vmjit refuses on purpose (marked "refused"; see the
 * sandbox section of ARCHITECTURE.md).
 *
 * Cases: fds, proc, procs, closefrom, smc, stackexec, jumpdata, huge, sigpipe.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

static const char *err(long r) { return r < 0 ? strerror(errno) : "ok"; }

/* A loop hot enough to be translated (baseline, then Cranelift, then a region). */
static uint64_t __attribute__((noipa)) hot(uint64_t n) {
    uint64_t x = 0x9e3779b97f4a7c15ull;
    for (uint64_t i = 0; i < n; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x += i;
    }
    return x;
}

/* Descriptors open when the guest started (stdio, and whatever its parent left open):
 * its own by inheritance. */
static char inherited[1024];

static void note_inherited(void) {
    DIR *d = opendir("/proc/self/fd");
    int self = d ? dirfd(d) : -1;
    struct dirent *e;
    while (d && (e = readdir(d))) {
        int n = atoi(e->d_name);
        if (e->d_name[0] != '.' && n != self && n < 1024) inherited[n] = 1;
    }
    if (d) closedir(d);
}

/* Descriptors the guest did not open are not there, whatever it does to them. The test
 * runs it with only stdio open, so every other descriptor below 64 is fair game: run by
 * hand from a shell that leaks descriptors, the counts include those. */
static void fds(void) {
    int own = open("/dev/null", O_RDONLY);
    printf("first open: %d\n", own);
    uint64_t before = hot(3000000);
    static char junk[4096];
    memset(junk, 0xcc, sizeof junk);
    int reached = 0;
    /* The attack of the issue: pwrite over every descriptor, 4 MiB each. */
    for (int fd = 3; fd < 64; fd++) {
        if (fd == own) continue;
        for (off_t off = 0; off < (4 << 20); off += sizeof junk) {
            if (pwrite(fd, junk, sizeof junk, off) >= 0) { reached++; break; }
            if (errno != EBADF) { reached++; break; }
        }
        if (ftruncate(fd, 0) == 0 || errno != EBADF) reached++;
        if (mmap(0, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0) != MAP_FAILED
            || errno != EBADF) reached++;
    }
    printf("descriptors the guest did not open that answered: %d\n", reached);
    uint64_t after = hot(3000000);
    printf("translated code intact: %s\n", before == after ? "yes" : "NO");
    /* Its own descriptor directory lists what it opened, and nothing else. */
    DIR *d = opendir("/proc/self/fd");
    int dfd = d ? dirfd(d) : -1;
    int foreign = 0, seen = 0;
    struct dirent *e;
    while (d && (e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        int n = atoi(e->d_name);
        seen++;
        if (n > 2 && n != own && n != dfd) foreign++;
    }
    if (d) closedir(d);
    printf("/proc/self/fd: %d not the guest's\n", foreign);
    (void)seen;
    char path[64], buf[256];
    snprintf(path, sizeof path, "/proc/self/fd/%d", own);
    ssize_t n = readlink(path, buf, sizeof buf - 1);
    buf[n > 0 ? n : 0] = 0;
    printf("readlink %s: %s\n", path, buf);
    /* A host descriptor reached by a symlink of its own: the host resolves it, so the
     * guest can name vmjit's descriptors this way; the code cache is still refused. */
    int codecache = 0, opened = 0;
    for (int fd = 3; fd < 70000; fd++) {
        snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
        unlink("link");
        if (symlink(path, "link") != 0) break;
        int f = open("link", O_RDWR);
        if (f < 0) f = open("link", O_RDONLY);
        if (f < 0) continue;
        opened++;
        snprintf(path, sizeof path, "/proc/self/fd/%d", f);
        n = readlink(path, buf, sizeof buf - 1);
        buf[n > 0 ? n : 0] = 0;
        if (strstr(buf, "codecache")) codecache++;
        close(f);
    }
    unlink("link");
    printf("code cache opened through a symlink: %d\n", codecache);
    printf("after the attacks: %s\n", hot(3000000) == before ? "same result" : "DIFFERENT");
}

/* The host's memory and mappings through /proc. */
static void proc(void) {
    char path[96];
    int pid = getpid();
    const char *fmt[] = {
        "/proc/self/mem", "/proc/thread-self/mem", "/proc/%d/mem", "/proc/%d/task/%d/mem",
        "/proc/self/pagemap", "/proc/self/map_files", "/proc/self/map_files/",
        "/proc/self/root/proc/self/mem", "/proc/self/../self/./mem", "/proc/self/smaps",
    };
    for (unsigned i = 0; i < sizeof fmt / sizeof *fmt; i++) {
        snprintf(path, sizeof path, fmt[i], pid, pid);
        int fd = open(path, O_RDWR);
        if (fd < 0) fd = open(path, O_RDONLY);
        printf("open %s: %s (refused)\n", fmt[i], err(fd));
        if (fd >= 0) close(fd);
    }
    /* Relative to a directory on /proc/self. */
    int dir = open("/proc/self", O_RDONLY | O_DIRECTORY);
    int fd = openat(dir, "mem", O_RDONLY);
    printf("openat(/proc/self, mem): %s (refused)\n", err(fd));
    fd = openat(dir, "map_files", O_RDONLY);
    printf("openat(/proc/self, map_files): %s (refused)\n", err(fd));
    /* Its own maps show guest addresses only (below 16 GiB). */
    FILE *m = fopen("/proc/self/maps", "r");
    unsigned long lo, hi, max = 0;
    int lines = 0;
    char line[512];
    while (m && fgets(line, sizeof line, m)) {
        if (sscanf(line, "%lx-%lx", &lo, &hi) == 2) {
            lines++;
            if (hi > max) max = hi;
        }
    }
    if (m) fclose(m);
    printf("/proc/self/maps: %s, all below 1<<34: %s\n", lines > 2 ? "lists mappings" : "EMPTY",
           max <= (1ul << 34) ? "yes" : "NO");
    char buf[256];
    ssize_t n = readlink("/proc/self/exe", buf, sizeof buf - 1);
    buf[n > 0 ? n : 0] = 0;
    const char *base = strrchr(buf, '/');
    printf("readlink /proc/self/exe: .../%s\n", base ? base + 1 : buf);
}

/* Other processes' memory, and debugging ourselves. */
static void procs(void) {
    char src[8] = "guest", dst[8] = {0};
    struct iovec local = {dst, 5}, remote = {src, 5};
    long r = syscall(SYS_process_vm_readv, getpid(), &local, 1, &remote, 1, 0);
    printf("process_vm_readv(self): %ld %s\n", r, dst);
    remote.iov_base = (void *)(1ul << 40);
    r = syscall(SYS_process_vm_readv, getpid(), &local, 1, &remote, 1, 0);
    printf("process_vm_readv(self, outside the guest): %s\n", err(r));
    r = syscall(SYS_process_vm_writev, 1, &local, 1, &remote, 1, 0);
    printf("process_vm_writev(init): %s (refused)\n", err(r));
    r = syscall(SYS_ptrace, 0 /* PTRACE_TRACEME */, 0, 0, 0);
    printf("ptrace(TRACEME): %s (refused)\n", err(r));
    r = syscall(438 /* pidfd_getfd */, 0, 3, 0);
    printf("pidfd_getfd: %s (refused)\n", err(r));
}

/* Closing every descriptor a daemon-style closefrom reaches leaves vmjit running. */
static void closefrom_case(void) {
    note_inherited();
    int mine = open("/dev/null", O_RDONLY);
    uint64_t before = hot(3000000);
    int closed = 0, expected = mine >= 0;
    for (int fd = 3; fd < 1024; fd++) expected += inherited[fd];
    for (int fd = 3; fd < 65536; fd++)
        if (close(fd) == 0) closed++;
    printf("close(3..65535) closed exactly the guest's descriptors: %s\n",
           closed == expected ? "yes" : "NO");
    long r = syscall(SYS_close_range, 3, ~0u, 0);
    printf("close_range(3, ~0): %s\n", err(r));
    printf("translated code after closing: %s\n", hot(3000000) == before ? "same result" : "DIFFERENT");
    int fd = open("/dev/null", O_RDONLY);
    printf("next open: %d\n", fd);
}

typedef long (*fn_t)(void);

/* Rewriting code the JIT has translated, without and then with a fence. */
static void smc(void) {
    uint32_t *p = mmap(0, 4096, PROT_READ | PROT_WRITE | PROT_EXEC,
                       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    p[0] = 0x00100513; /* li a0, 1 */
    p[1] = 0x00008067; /* ret */
    __builtin___clear_cache((char *)p, (char *)(p + 2));
    long sum = 0;
    for (int i = 0; i < 200000; i++) sum += ((fn_t)p)();
    printf("before: %ld\n", sum);
    p[0] = 0x00200513; /* li a0, 2, without fence.i */
    long r = ((fn_t)p)();
    printf("without a fence: %s\n", r == 1 || r == 2 ? "old or new code (either is allowed)" : "WRONG");
    __asm__ volatile("fence.i" ::: "memory");
    printf("after fence.i: %ld\n", ((fn_t)p)());
}

/* Code on the stack, made executable with mprotect. */
static void stackexec(void) {
    uint32_t area[3 * 1024];
    uint32_t *page = (uint32_t *)(((uintptr_t)area + 4095) & ~4095ul);
    page[0] = 0x02a00513; /* li a0, 42 */
    page[1] = 0x00008067; /* ret */
    int r = mprotect(page, 4096, PROT_READ | PROT_WRITE | PROT_EXEC);
    printf("mprotect(stack, rwx): %s\n", err(r));
    __builtin___clear_cache((char *)page, (char *)(page + 2));
    printf("code on the stack returned %ld\n", ((fn_t)page)());
}

static uint32_t data_code[2] = {0x02a00513, 0x00008067};

/* Jumping into data that is not executable: SIGSEGV. */
static void jumpdata(void) {
    printf("jumping into .data\n");
    fflush(stdout);
    printf("returned %ld\n", ((fn_t)data_code)());
}

/* Huge requests fail as Linux fails them; memory is bounded by --max-memory. */
static void huge(void) {
    void *cur = sbrk(0);
    printf("brk(1<<62): %s\n", (void *)syscall(SYS_brk, 1ul << 62) == cur ? "unchanged" : "MOVED");
    void *m = mmap(0, 1ul << 47, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    printf("mmap(1<<47 bytes): %s\n", m == MAP_FAILED ? strerror(errno) : "mapped");
    m = mmap(0, ~0ul - 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    printf("mmap(~0 bytes): %s\n", m == MAP_FAILED ? strerror(errno) : "mapped");
    m = mmap((void *)((1ul << 47) - 4096), 8192, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
    printf("mmap(MAP_FIXED across the end of user space): %s\n", m == MAP_FAILED ? strerror(errno) : "mapped");
    void *a = mmap(0, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    m = mremap(a, 4096, 1ul << 47, MREMAP_MAYMOVE);
    printf("mremap(to 1<<47 bytes): %s\n", m == MAP_FAILED ? strerror(errno) : "mapped");
    /* Allocate 64 MiB at a time, touching every page, until memory runs out. */
    long chunks = 0;
    for (;;) {
        char *p = mmap(0, 64 << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED) { printf("64 MiB chunks until ENOMEM: stopped with %s\n", strerror(errno)); break; }
        for (long i = 0; i < (64 << 20); i += 4096) p[i] = 1;
        if (++chunks > 1000) { printf("NOT BOUNDED\n"); break; }
    }
    printf("chunks: %ld\n", chunks);
    printf("malloc(1 GiB) after that: %s\n", malloc(1ul << 30) ? "got it" : "NULL");
}

/* Output to a pipe nobody reads ends the guest as SIGPIPE would. */
static void sigpipe(void) {
    int p[2];
    if (pipe(p) != 0) return;
    close(p[0]);
    printf("writing to a pipe with no reader\n");
    fflush(stdout);
    ssize_t r = write(p[1], "x", 1);
    printf("write returned %zd (%s): SIGPIPE was not raised\n", r, err(r));
}

int main(int argc, char **argv) {
    setvbuf(stdout, 0, _IOLBF, 0);
    const char *c = argc > 1 ? argv[1] : "";
    if (!strcmp(c, "fds")) fds();
    else if (!strcmp(c, "proc")) proc();
    else if (!strcmp(c, "procs")) procs();
    else if (!strcmp(c, "closefrom")) closefrom_case();
    else if (!strcmp(c, "smc")) smc();
    else if (!strcmp(c, "stackexec")) stackexec();
    else if (!strcmp(c, "jumpdata")) jumpdata();
    else if (!strcmp(c, "huge")) huge();
    else if (!strcmp(c, "sigpipe")) sigpipe();
    else { fprintf(stderr, "usage: escape fds|proc|procs|closefrom|smc|stackexec|jumpdata|huge|sigpipe\n"); return 2; }
    return 0;
}
