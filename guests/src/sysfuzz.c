/* sysfuzz: a seeded, reproducible system-call fuzzer, run by vmjit's tests
 * (crates/vmjit/tests/sysfuzz.rs) under the interpreter and the JIT.
 *
 *   sysfuzz SEED COUNT [trace]
 *
 * issues COUNT raw `ecall`s, each a random system call number (mostly the calls vmjit
 * implements, then any riscv64 number, then garbage numbers) with six arguments from
 * typed generators: small integers, descriptors, pointers (into a scratch area, NULL,
 * unaligned, read-only, running into an unmapped page, end-of-space, wild), flags,
 * sizes, offsets. The random stream depends only on SEED (splitmix64): never on time, pid
 * or a call's result, so a seed replays the same calls. `trace` prints every call and
 * its result on the report descriptor before and after issuing it. The seeds in
 * crates/vmjit/tests/sysfuzz_regressions.txt name call sequences of this program: a
 * change to its random stream (a generator, the order of draws, a shape, the call lists)
 * makes them replay other calls.
 *
 * At the end it runs a hot loop (translated by a JIT; a corrupted code cache changes its
 * checksum), checks that its own memory and descriptors are intact and prints one line
 * on descriptor 1000 (a dup of stdout made before the fuzzing, which no generator ever
 * produces):
 *
 *   sysfuzz: seed S: N calls, K distinct numbers, rng R, checksum C; E errors (X ENOSYS)
 *
 * Everything before the ';' depends only on SEED and COUNT; the error counts depend on
 * the host and the emulator. A failed self-check prints "SELF-CHECK FAILED" and exits 3.
 *
 * Safety. Tests run as root and the guest's calls reach the host kernel (under vmjit as
 * under qemu-user), so whatever emulator runs it, the fuzzer:
 *  - works in a scratch directory it creates in its working directory: every path is one
 *    of a pool of relative names without "..", symlinks it creates point only at relative
 *    names, chdir/fchdir never leave it; the only absolute paths are the read-only escape
 *    probes below, and a path argument is never a pointer into memory the kernel wrote;
 *  - never issues the host-damaging calls of `denied` (clock setting, mount, reboot,
 *    modules, swap, uid changes, namespaces, SysV IPC, keyrings, io_uring, bpf, perf...),
 *    never opens devices, restricts sockets to AF_UNIX/AF_INET/AF_INET6 on loopback
 *    (no module autoloading, no traffic off the machine), ioctls to a read-only list;
 *  - passes a pid only as 0 or its own, and a signal to a kill-style call only as 0;
 *  - caps sizes that would make the kernel allocate or copy much (mmap, mlock, fallocate,
 *    sendfile, splice, readahead, pipe sizes; budgets for inotify and aio contexts);
 *  - keeps away from calls that end or freeze it: exit, execve, clone, rt_sigreturn,
 *    rt_sigsuspend, alarm timers, seccomp, TRACEME; every descriptor it creates is
 *    non-blocking, every wait has a timeout of at most 1 ms, locks never wait;
 *  - keeps its own state out of reach: random pointers point into the scratch data area
 *    or at addresses away from its image, heap, stack and the rest of the scratch area;
 *    memory-management calls never touch those; it does not use malloc or stdio once the
 *    fuzzing starts (brk is fuzzed);
 *  - protects the descriptors open at start (the emulator's or its caller's, such as a
 *    jobserver pipe) but unlinked regular files: no argument ever equals one.
 *    Descriptor 0 is replaced by a scratch file, 1 and 2 by scratch files unless they are
 *    pipes or sockets, so no terminal or host file is reachable through them.
 * The escape probes, kept on purpose because they are what a sandbox must refuse:
 * /proc/self/maps, /proc/self/fd, /proc/self/mem, /proc/self/fd/3, /proc/self/map_files,
 * /dev/fd/3 (/proc/self/fd/3 and /dev/fd/3 become /proc/self/fd when descriptor 3 is
 * protected).
 */

#define _GNU_SOURCE
#include <asm/unistd.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <netinet/in.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>

#if !defined(__riscv) || __riscv_xlen != 64
#error "sysfuzz issues riscv64 system call numbers: RISC-V 64 only"
#endif

typedef uint64_t u64;
typedef int64_t i64;
typedef uint32_t u32;
typedef uint16_t u16;

#define PAGE 4096ul
#define KIB 1024ul
#define MIB (1024ul * 1024ul)

#define REPORT_FD 1000
#define ROOT_FD 1001

/* Highest call number generated as a "real" number: asm-generic up to fchmodat2. */
#define MAX_NR 452

/* ---------------------------------------------------------------- raw system calls */

static long sys6(long n, long a, long b, long c, long d, long e, long f)
{
    register long a7 __asm__("a7") = n;
    register long a0 __asm__("a0") = a;
    register long a1 __asm__("a1") = b;
    register long a2 __asm__("a2") = c;
    register long a3 __asm__("a3") = d;
    register long a4 __asm__("a4") = e;
    register long a5 __asm__("a5") = f;
    __asm__ volatile("ecall"
                     : "+r"(a0)
                     : "r"(a7), "r"(a1), "r"(a2), "r"(a3), "r"(a4), "r"(a5)
                     : "memory");
    return a0;
}

#define sys0(n) sys6(n, 0, 0, 0, 0, 0, 0)
#define sys1(n, a) sys6(n, (long)(a), 0, 0, 0, 0, 0)
#define sys2(n, a, b) sys6(n, (long)(a), (long)(b), 0, 0, 0, 0)
#define sys3(n, a, b, c) sys6(n, (long)(a), (long)(b), (long)(c), 0, 0, 0)
#define sys4(n, a, b, c, d) sys6(n, (long)(a), (long)(b), (long)(c), (long)(d), 0, 0)

static int is_err(long r) { return r < 0 && r >= -4095; }

/* ------------------------------------------------------------------ small helpers */

static size_t slen(const char *s)
{
    size_t n = 0;
    while (s[n])
        n++;
    return n;
}

static void copy(void *dst, const void *src, size_t n)
{
    unsigned char *d = dst;
    const unsigned char *s = src;
    while (n--)
        *d++ = *s++;
}

static void fill(void *dst, int c, size_t n)
{
    unsigned char *d = dst;
    while (n--)
        *d++ = (unsigned char)c;
}

/* Output is assembled in a static buffer and written with raw calls: no stdio. */
static char out[512];
static size_t outn;

static void put_str(const char *s)
{
    while (*s && outn < sizeof out)
        out[outn++] = *s++;
}

static void put_u64(u64 v)
{
    char b[24];
    int n = 0;
    do {
        b[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    while (n && outn < sizeof out)
        out[outn++] = b[--n];
}

static void put_hex(u64 v)
{
    static const char hex[] = "0123456789abcdef";
    char b[16];
    int n = 0;
    do {
        b[n++] = hex[v & 15];
        v >>= 4;
    } while (v);
    put_str("0x");
    while (n && outn < sizeof out)
        out[outn++] = b[--n];
}

/* Writes the buffer to the report descriptor, retrying short writes and EAGAIN (the
 * fuzzing may have set O_NONBLOCK on the pipe it shares with stdout). */
static void flush_out(void)
{
    static const struct timespec ms = {0, 1000000};
    size_t done = 0;
    int tries = 0;
    while (done < outn && tries < 100000) {
        long r = sys3(__NR_write, REPORT_FD, out + done, outn - done);
        if (r > 0) {
            done += (size_t)r;
        } else if (r == -11 || r == -4) {
            tries++;
            sys2(__NR_nanosleep, &ms, 0);
        } else {
            break;
        }
    }
    outn = 0;
}

static size_t fmt_u64(char *dst, u64 v)
{
    char b[24];
    size_t n = 0, m = 0;
    do {
        b[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    while (n)
        dst[m++] = b[--n];
    return m;
}

static u64 parse_u64(const char *s, int *ok)
{
    u64 v = 0;
    *ok = *s != 0;
    for (; *s; s++) {
        if (*s < '0' || *s > '9' || v > (~0ul - 9) / 10) {
            *ok = 0;
            return 0;
        }
        v = v * 10 + (u64)(*s - '0');
    }
    return v;
}

/* --------------------------------------------------------------------- the PRNG */

static u64 rng;

static u64 rnd(void)
{
    u64 z = (rng += 0x9E3779B97F4A7C15ul);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ul;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBul;
    return z ^ (z >> 31);
}

static u64 below(u64 n) { return rnd() % n; }

#define PICK(arr) ((arr)[below(sizeof(arr) / sizeof((arr)[0]))])

/* ------------------------------------------------------------ the scratch region
 *
 *   G0 | DATA | HOLE1 | G1 | ARG | G2 | RO | HOLE2 | G3
 *
 * DATA is what random pointers point into and what memory-management calls may change.
 * ARG holds the structures built for one call (paths, iovecs, timeouts...); only the
 * fuzzer writes it, apart from outputs through pointers it placed there. RO is a
 * read-only page with known contents. Gn are PROT_NONE and HOLEn unmapped: buffers that
 * run past DATA, ARG or RO end there. Housekeeping restores DATA and the holes. */

#define GUARD (16 * PAGE)
#define DATA_SIZE (64 * PAGE)
#define ARG_SIZE (16 * PAGE)
#define OFF_DATA GUARD
#define OFF_HOLE1 (OFF_DATA + DATA_SIZE)
#define OFF_G1 (OFF_HOLE1 + PAGE)
#define OFF_ARG (OFF_G1 + GUARD)
#define OFF_G2 (OFF_ARG + ARG_SIZE)
#define OFF_RO (OFF_G2 + GUARD)
#define OFF_HOLE2 (OFF_RO + PAGE)
#define OFF_G3 (OFF_HOLE2 + PAGE)
#define REGION_SIZE (OFF_G3 + GUARD)

static u64 region, data, data_end, arg, arg_end, ro;
static size_t arg_used;

/* Ranges no memory-management call may touch and no wild pointer may come near:
 * image + initial heap (with its TLS block), stack, the scratch region except DATA, and
 * two windows kept unmapped so that pointers into them are bad for good (NULL and the
 * small addresses after it; the end of vmjit's guest space, 1 << 34). */
struct range {
    u64 lo, hi;
};
static struct range protected_mem[6];
#define N_NEVER_MAPPED 2 /* the last two entries */
static int n_protected_mem;
static u64 brk0;

/* The RO page: a valid path, a zero timespec, then a pattern checked at the end. */
#define RO_PATH_OFF 0
#define RO_TS_OFF 64
#define RO_PATTERN_OFF 128

static unsigned char ro_pattern(u64 i) { return (unsigned char)(i * 131 + 7); }

/* ------------------------------------------------------- descriptors and counters */

static int protected_fd[64];
static int n_protected_fd;
static int fd3_protected;
static long self_pid;

static int fd_ring[16];
static unsigned fd_ring_n, fd_ring_pos;
static u64 map_ring[8];
static unsigned map_ring_n, map_ring_pos;

static int inotify_budget = 6, aio_budget = 4;
static int trace;

static u64 n_calls, n_errors, n_enosys;
static unsigned char seen[1024];

/* ------------------------------------------------------------------- the guards */

static unsigned char canary_data[64] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};
static unsigned char canary_bss[64];

static unsigned char canary_byte(int i) { return (unsigned char)(i * 37 + 11); }

/* ---------------------------------------------------------------- the path pool */

#define LONG255 \
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa" \
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa" \
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"

/* Relative names inside the scratch directory; none starts with '/' or holds "..". */
static const char *const relpaths[] = {
    "f0", "f1", "f2", "d0", "d1", "d0/f0", "d0/d1", "d0/d1/f1", "l0", "l1", "l2",
    "l1/f0", "s0", "new", "d1/new", ".", "", "f0/", "d0/", "./f1", "d0//f0", "stdin",
    LONG255, LONG255 "b", "\xc3\xbc",
};

static const char *const probes[] = {
    "/proc/self/maps", "/proc/self/fd", "/proc/self/mem",
    "/proc/self/fd/3", "/proc/self/map_files", "/dev/fd/3",
};

static const char *const xattr_names[] = {
    "user.a", "user.sysfuzz", "trusted.t", "security.s", "system.posix_acl_access",
    "", "nonamespace", "user." LONG255,
};

/* ------------------------------------------------------------- protected checks */

static int fd_is_protected(u64 v)
{
    int fd = (int)(u32)v;
    for (int i = 0; i < n_protected_fd; i++)
        if (protected_fd[i] == fd)
            return 1;
    return 0;
}

static void protect_fd(int fd)
{
    if (n_protected_fd < (int)(sizeof protected_fd / sizeof protected_fd[0]))
        protected_fd[n_protected_fd++] = fd;
}

/* True when [addr, addr+len), rounded out to pages (len 0 counts as one page), meets
 * one of `n` ranges; a range that wraps runs to the end of the address space. */
static int overlaps(const struct range *ranges, int n, u64 addr, u64 len)
{
    u64 lo = addr & ~(PAGE - 1);
    u64 l = len ? len : 1;
    u64 hi = addr + l;
    if (hi < addr || hi > ~0ul - PAGE)
        hi = ~0ul;
    else
        hi = (hi + PAGE - 1) & ~(PAGE - 1);
    for (int i = 0; i < n; i++)
        if (lo < ranges[i].hi && ranges[i].lo < hi)
            return 1;
    return 0;
}

static int overlaps_protected(u64 addr, u64 len)
{
    return overlaps(protected_mem, n_protected_mem, addr, len);
}

static int overlaps_never_mapped(u64 addr, u64 len)
{
    return overlaps(protected_mem + n_protected_mem - N_NEVER_MAPPED, N_NEVER_MAPPED, addr, len);
}

/* An address no memory-management call can use: above any user address space. */
static u64 far_away(u64 addr) { return addr | (1ul << 63); }

/* ----------------------------------------------------------- ARG area allocation */

static void *arg_alloc(size_t n, size_t align)
{
    size_t at = (arg_used + align - 1) & ~(align - 1);
    if (at + n > ARG_SIZE)
        at = 0; /* The area is rebuilt for every call; wrapping only loses variety. */
    arg_used = at + n;
    return (void *)(arg + at);
}

/* A copy of `n` bytes of `src` in ARG; `cross` > 0 places it so that its last `cross`
 * bytes would lie in G2 (they are not written): the kernel faults part way through. */
static u64 arg_put(const void *src, size_t n, size_t cross)
{
    if (cross && cross <= n && n <= ARG_SIZE) {
        u64 at = arg_end - (n - cross);
        copy((void *)at, src, n - cross);
        return at;
    }
    void *p = arg_alloc(n, 8);
    copy(p, src, n);
    return (u64)p;
}

/* ----------------------------------------------------------- scalar generators */

static u64 g_small(void) { return (u64)((i64)below(73) - 2); }

static const u64 huge_sizes[] = {
    0x7fffffff, 0x80000000, 0xffffffff, 1ul << 32, (1ul << 32) + 16, 1ul << 34,
    1ul << 40, 1ul << 47, 1ul << 62, 1ul << 63, ~0ul, ~0ul - 4095, (u64)-16,
};

static u64 g_size(void)
{
    u64 r = below(100);
    if (r < 20) return below(65);
    if (r < 28) return 0;
    if (r < 40) return PICK(((const u64[]){4095, 4096, 4097, 8192, 2 * PAGE + 1}));
    if (r < 58) return below(DATA_SIZE);
    if (r < 64) return PICK(((const u64[]){DATA_SIZE, DATA_SIZE + 1, DATA_SIZE - 1}));
    if (r < 80) return PICK(huge_sizes);
    if (r < 92) return below(1 << 16);
    return rnd();
}

static u64 g_off(void)
{
    static const u64 offs[] = {
        0, 1, 4096, 8192, 1ul << 31, 1ul << 32, 1ul << 40, 1ul << 62, (u64)-1, (u64)-4096,
        0x7fffffffffffffff, 0x7ffffffffffff000,
    };
    u64 r = below(100);
    if (r < 30) return 0;
    if (r < 55) return below(8192);
    if (r < 75) return PICK(offs);
    if (r < 90) return below(64) * PAGE;
    return rnd();
}

static u64 g_flags(void)
{
    u64 r = below(100);
    if (r < 15) return 0;
    if (r < 40) return (u32)rnd();
    if (r < 70) return (1ul << below(32)) | (1ul << below(32));
    if (r < 85) return g_small();
    if (r < 90) return (u64)-1;
    return rnd();
}

static u64 g_mode(void)
{
    u64 r = below(100);
    if (r < 60) return below(07777 + 1);
    if (r < 80) return PICK(((const u64[]){0, 0600, 0644, 0755, 0777, 04755}));
    return rnd();
}

/* A value whose low 32 bits name a protected descriptor becomes -1. */
static u64 fd_filter(u64 v) { return fd_is_protected(v) ? (u64)-1 : v; }

static u64 g_fd(void)
{
    u64 r = below(100);
    u64 pick = rnd(); /* Drawn always, so the stream does not depend on the ring. */
    u64 v;
    if (r < 40) v = below(41);
    else if (r < 65) v = fd_ring_n ? (u64)fd_ring[pick % fd_ring_n] : 3 + pick % 8;
    else if (r < 75) v = below(3);
    else if (r < 80) v = (u64)-1;
    else if (r < 85) v = (u64)-100; /* AT_FDCWD */
    else if (r < 92)
        v = PICK(((const u64[]){1 << 20, 0x7fffffff, 0x80000000, 1023, 1024, 65535,
                                (1ul << 32) + 1, (1ul << 32) + 3, (u64)-2}));
    else v = (u32)rnd();
    return fd_filter(v);
}

static u64 g_dirfd(void) { return below(100) < 60 ? (u64)-100 : g_fd(); }

static u64 g_pid(void) { return below(2) ? (u64)self_pid : 0; }

/* ----------------------------------------------------------- pointer generators */

/* A random address kept away from the fuzzer's own memory. */
static u64 g_wild(void)
{
    u64 v = below(2) ? rnd() : rnd() & ((1ul << 34) - 1);
    for (int i = 0; i < n_protected_mem; i++) {
        u64 lo = protected_mem[i].lo > MIB ? protected_mem[i].lo - MIB : 0;
        u64 hi = protected_mem[i].hi + MIB;
        if (v >= lo && v < hi)
            return far_away(v);
    }
    return v;
}

static const u64 end_of_space[] = {
    (1ul << 34) - 1, (1ul << 34) - 8, (1ul << 34) - 4096, 1ul << 34,
    (1ul << 38) - 8, 1ul << 38, (1ul << 47) - 1, (1ul << 47) - 16, 1ul << 47,
    ~0ul, ~0ul - 7, ~0ul - 4095, 1ul << 63,
};

static u64 g_ptr(void)
{
    u64 r = below(100);
    if (r < 35) return data + (below(DATA_SIZE) & ~7ul);
    if (r < 45) return data + below(DATA_SIZE);
    if (r < 52) return data_end - 1 - below(64);
    if (r < 57) return ro + below(PAGE);
    if (r < 65) return 0;
    if (r < 69) return 1 + below(PAGE);
    if (r < 79) return PICK(end_of_space);
    if (r < 89) return g_wild();
    if (r < 94) return region + OFF_G1 + below(GUARD);
    return data + below(DATA_SIZE / PAGE) * PAGE;
}

/* Pointers the kernel can never read, for structured arguments: no call can ever map
 * memory there (not the holes, which a later mmap may fill; not (1 << 38), where
 * qemu-user places guest mappings). */
static u64 g_bad(void)
{
    u64 r = below(6);
    if (r == 0) return 0;
    if (r == 1) return region + OFF_G1 + below(GUARD);
    if (r == 2) return (1ul << 34) - 1 - below(8);
    if (r == 3) return ~0ul - below(16);
    if (r == 4) return 1ul << 63;
    return region + OFF_G2 + below(PAGE);
}

static u64 g_any(void)
{
    switch (below(8)) {
    case 0: return g_small();
    case 1: return g_fd();
    case 2: case 3: return g_ptr();
    case 4: return g_size();
    case 5: return g_flags();
    case 6: return g_off();
    default: return rnd();
    }
}

/* ------------------------------------------------------ structured generators */

static u64 put_string(const char *s, int allow_cross)
{
    size_t n = slen(s) + 1;
    u64 r = below(100);
    if (allow_cross && r < 6 && n > 1)
        return arg_put(s, n, 1 + below(n - 1 > 1 ? n - 1 : 1));
    u64 p = arg_put(s, n, 0);
    if (r < 12) {
        /* Unaligned copy: move it one byte on. */
        char *q = arg_alloc(n + 1, 1);
        copy(q + 1, s, n);
        p = (u64)(q + 1);
    }
    return p;
}

/* A path longer than PATH_MAX made of relative components. */
static u64 put_overlong_path(void)
{
    size_t n = 4200;
    char *p = arg_alloc(n + 1, 8);
    for (size_t i = 0; i < n; i += 2) {
        p[i] = 'a';
        p[i + 1] = '/';
    }
    p[n] = 0;
    return (u64)p;
}

/* A path argument: a pool name (relative), an escape probe, or a bad pointer; never a
 * pointer into memory whose contents the kernel wrote. */
static u64 g_path_any(int probes_ok)
{
    u64 r = below(100);
    if (r < 72) return put_string(PICK(relpaths), 1);
    if (r < 84 && probes_ok) {
        u64 i = below(sizeof probes / sizeof probes[0]);
        if (fd3_protected && (i == 3 || i == 5))
            i = 1;
        return put_string(probes[i], 0);
    }
    if (r < 87) return put_overlong_path();
    if (r < 91) return ro + RO_PATH_OFF;
    return g_bad();
}

static u64 g_path(void) { return g_path_any(1); }
static u64 g_relpath(void) { return g_path_any(0); }

static u64 g_name(void)
{
    if (below(100) < 80) return put_string(PICK(xattr_names), 1);
    return below(2) ? g_bad() : data + below(DATA_SIZE);
}

/* A timeout of at most 1 ms (or one the kernel rejects); never NULL, which waits forever. */
static u64 g_timeout(void)
{
    u64 r = below(100);
    i64 ts[2] = {0, 0};
    if (r < 12) return ro + RO_TS_OFF;
    if (r < 20) return g_bad() | 1; /* never NULL, which waits forever */
    if (r < 60) ts[1] = (i64)below(1000001);
    else if (r < 65) ts[1] = 1000000000;
    else if (r < 70) ts[0] = -1;
    else if (r < 73) ts[1] = -1;
    u64 how = below(100);
    if (how < 5) return arg_put(ts, sizeof ts, 1 + below(15));
    if (how < 12) {
        /* An unaligned copy. */
        unsigned char *p = arg_alloc(sizeof ts + 1, 8);
        copy(p + 1, ts, sizeof ts);
        return (u64)(p + 1);
    }
    return arg_put(ts, sizeof ts, 0);
}

static u64 g_iov_base(void)
{
    u64 r = below(100);
    if (r < 70) return data + below(DATA_SIZE);
    if (r < 78) return 0;
    if (r < 84) return ro + below(PAGE);
    if (r < 92) return g_wild();
    return PICK(end_of_space);
}

static u64 g_iov_len(void)
{
    u64 r = below(100);
    if (r < 60) return below(4097);
    if (r < 70) return 0;
    if (r < 85) return below(DATA_SIZE + 1);
    return PICK(huge_sizes);
}

/* An iovec array built in ARG (or a bad pointer): the kernel follows its bases, so they
 * come from the same safe choices as g_ptr. */
static u64 g_iov(void)
{
    u64 r = below(100);
    if (r < 8) return g_bad();
    u64 n = below(100) < 85 ? below(5) : 5 + below(12);
    u64 *v = arg_alloc(n * 16 + 16, 8);
    for (u64 i = 0; i < n; i++) {
        v[2 * i] = g_iov_base();
        v[2 * i + 1] = g_iov_len();
    }
    if (r < 12 && n) {
        /* The last entry runs into G2. */
        u64 at = arg_end - (n * 16 - 8);
        copy((void *)at, v, n * 16 - 8);
        return at;
    }
    return (u64)v;
}

static u64 g_iovcnt(void)
{
    u64 r = below(100);
    if (r < 65) return below(5);
    if (r < 80) return below(17);
    return PICK(((const u64[]){1024, 1025, (u64)-1, 0x7fffffff, 1ul << 32, 1ul << 32 | 2}));
}

/* An address and a length for a memory-management call (sanitized afterwards). */
static u64 g_mm_addr(void)
{
    u64 r = below(100);
    u64 pick = rnd();
    if (r < 45) return data + below(DATA_SIZE / PAGE) * PAGE;
    if (r < 52) return data + below(DATA_SIZE);
    if (r < 65) return map_ring_n ? map_ring[pick % map_ring_n] : data;
    if (r < 75) return g_wild() & ~(PAGE - 1);
    if (r < 80) return 0;
    if (r < 90) return PICK(end_of_space);
    if (r < 95) return region + below(REGION_SIZE / PAGE) * PAGE;
    return rnd();
}

static u64 g_mm_len(void)
{
    u64 r = below(100);
    if (r < 50) return (1 + below(16)) * PAGE;
    if (r < 55) return 0;
    if (r < 60) return 1 + below(PAGE);
    if (r < 70) return below(DATA_SIZE + 1);
    if (r < 85) return PICK(huge_sizes);
    return rnd();
}

/* An iovec of address ranges (process_madvise), each kept out of protected memory. */
static u64 g_mm_iov(void)
{
    if (below(100) < 8) return g_bad();
    u64 n = below(5);
    u64 *v = arg_alloc(n * 16 + 16, 8);
    for (u64 i = 0; i < n; i++) {
        u64 a = g_mm_addr(), l = g_mm_len();
        v[2 * i] = overlaps_protected(a, l) ? far_away(a) : a;
        v[2 * i + 1] = l;
    }
    return (u64)v;
}

/* Socket addresses: loopback only (ports 0 and 1), AF_UNIX names in the scratch
 * directory or abstract names carrying the pid. */
static size_t last_sockaddr_len;

static u64 g_sockaddr(void)
{
    u64 r = below(100);
    if (r < 8) {
        last_sockaddr_len = 16;
        return g_bad();
    }
    unsigned char *b = arg_alloc(128, 8);
    fill(b, 0, 128);
    if (r < 40) {
        struct sockaddr_in *s = (void *)b;
        s->sin_family = AF_INET;
        s->sin_port = htons((uint16_t)below(2));
        s->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        last_sockaddr_len = sizeof *s;
    } else if (r < 55) {
        struct sockaddr_in6 *s = (void *)b;
        s->sin6_family = AF_INET6;
        s->sin6_port = htons((uint16_t)below(2));
        s->sin6_addr.s6_addr[15] = 1;
        last_sockaddr_len = sizeof *s;
    } else if (r < 80) {
        struct sockaddr_un *s = (void *)b;
        s->sun_family = AF_UNIX;
        const char *name = PICK(relpaths);
        size_t n = slen(name);
        if (n > sizeof s->sun_path - 1)
            n = sizeof s->sun_path - 1;
        copy(s->sun_path, name, n);
        last_sockaddr_len = offsetof(struct sockaddr_un, sun_path) + n + 1;
    } else if (r < 92) {
        struct sockaddr_un *s = (void *)b;
        s->sun_family = AF_UNIX;
        char name[40];
        size_t n = 0;
        copy(name, "sysfuzz.", 8);
        n = 8;
        n += fmt_u64(name + n, (u64)self_pid);
        name[n++] = '.';
        name[n++] = (char)('0' + below(4));
        copy(s->sun_path + 1, name, n);
        last_sockaddr_len = offsetof(struct sockaddr_un, sun_path) + 1 + n;
    } else if (r < 96) {
        b[0] = AF_UNSPEC;
        last_sockaddr_len = 16;
    } else {
        b[0] = 0xff;
        b[1] = 0xff;
        last_sockaddr_len = 16;
    }
    return (u64)b;
}

static u64 g_socklen(void)
{
    u64 r = below(100);
    if (r < 55) return last_sockaddr_len;
    return PICK(((const u64[]){0, 1, 2, 3, 16, 28, 110, 128, 129, (u64)-1, 1ul << 32 | 16}));
}

/* A struct msghdr; `send` gives it inputs (address, SCM_RIGHTS control), otherwise
 * output buffers in DATA. */
static u64 g_msghdr_at(int send, u64 *hdr)
{
    u64 name, namelen, control = 0, controllen = 0;
    if (send) {
        name = below(2) ? g_sockaddr() : 0;
        namelen = name ? g_socklen() : 0;
    } else {
        name = below(4) ? data + (below(DATA_SIZE) & ~7ul) : g_bad();
        namelen = PICK(((const u64[]){0, 16, 28, 110, 128, 4096}));
    }
    u64 iov = g_iov(), iovlen = g_iovcnt();
    u64 r = below(100);
    if (send && r < 35) {
        u64 nfd = 1 + below(3);
        unsigned char *c = arg_alloc(64, 8);
        fill(c, 0, 64);
        u64 len = 16 + 4 * nfd;
        copy(c, &len, 8);
        int level = SOL_SOCKET, type = SCM_RIGHTS;
        copy(c + 8, &level, 4);
        copy(c + 12, &type, 4);
        for (u64 i = 0; i < nfd; i++) {
            int fd = (int)g_fd();
            copy(c + 16 + 4 * i, &fd, 4);
        }
        control = (u64)c;
        controllen = below(4) ? (len + 7) & ~7ul : below(64);
    } else if (!send && r < 60) {
        control = data + (below(DATA_SIZE) & ~7ul);
        controllen = below(512);
    } else if (r < 70) {
        control = g_bad();
        controllen = below(64);
    }
    hdr[0] = name;
    hdr[1] = namelen;
    hdr[2] = iov;
    hdr[3] = iovlen;
    hdr[4] = control;
    hdr[5] = controllen;
    hdr[6] = below(4) ? 0 : g_flags();
    return (u64)hdr;
}

static u64 g_msghdr(int send)
{
    if (below(100) < 8) return g_bad();
    u64 *h = arg_alloc(56, 8);
    return g_msghdr_at(send, h);
}

/* An array of struct mmsghdr (msghdr + msg_len, 64 bytes each). */
static u64 g_mmsg(int send)
{
    if (below(100) < 8) return g_bad();
    u64 n = 1 + below(4);
    u64 *v = arg_alloc(64 * n, 8);
    for (u64 i = 0; i < n; i++) {
        g_msghdr_at(send, v + 8 * i);
        v[8 * i + 7] = 0;
    }
    return (u64)v;
}

/* A struct kernel_sigaction for riscv64 {handler, flags, mask}: SIG_DFL or SIG_IGN only
 * (a handler the fuzzer does not have would run garbage), SIG_IGN for SIGPIPE. */
static u64 g_sigaction(u64 sig)
{
    u64 r = below(100);
    if (r < 15) return 0;
    if (r < 25) return g_bad();
    u64 *a = arg_alloc(24, 8);
    a[0] = below(2);
    if ((u32)sig == SIGPIPE)
        a[0] = 1;
    a[1] = below(2) ? 0 : g_flags();
    a[2] = rnd();
    return (u64)a;
}

static u64 g_sigset(void)
{
    u64 r = below(100);
    if (r < 30) return 0;
    if (r < 70) {
        u64 *s = arg_alloc(16, 8);
        s[0] = rnd();
        s[1] = rnd();
        return (u64)s;
    }
    if (r < 90) return data + (below(DATA_SIZE) & ~7ul);
    return g_bad();
}

static u64 g_sigsetsize(void) { return below(100) < 80 ? 8 : PICK(((const u64[]){0, 4, 16, 128, (u64)-1})); }

/* A new resource limit; the sanitizer makes it unlimited for the limits that deliver
 * signals (CPU, FSIZE, RTTIME). */
static u64 g_rlimit(void)
{
    u64 r = below(100);
    if (r < 30) return 0;
    if (r < 40) return g_bad();
    u64 *l = arg_alloc(16, 8);
    u64 choice = below(4);
    l[0] = l[1] = ~0ul;
    if (choice == 1) l[0] = 4096;
    else if (choice == 2) l[0] = l[1] = 0;
    else if (choice == 3) { l[0] = rnd(); l[1] = rnd(); }
    return (u64)l;
}

/* A struct open_how for openat2: O_NONBLOCK always. */
static u64 g_open_how(void)
{
    if (below(100) < 10) return g_bad();
    u64 *h = arg_alloc(24, 8);
    h[0] = (g_flags() & 0xffffffff) | O_NONBLOCK;
    h[1] = g_mode();
    h[2] = below(2) ? 0 : (1ul << below(6));
    return (u64)h;
}

static u64 g_pollfds(void)
{
    u64 r = below(100);
    if (r < 10) return g_bad();
    if (r < 25) return data + (below(DATA_SIZE) & ~7ul);
    u64 n = below(9);
    int *p = arg_alloc(8 * n + 8, 8);
    for (u64 i = 0; i < n; i++) {
        p[2 * i] = (int)g_fd();
        p[2 * i + 1] = (int)(rnd() & 0xffff);
    }
    return (u64)p;
}

static u64 g_nfds(void)
{
    return below(100) < 80 ? below(9) : PICK(((const u64[]){64, 1024, 1025, 1ul << 20, ~0ul, 1ul << 32}));
}

static u64 g_fdset(void)
{
    u64 r = below(100);
    if (r < 30) return 0;
    if (r < 60) {
        u64 *s = arg_alloc(128, 8);
        for (int i = 0; i < 16; i++)
            s[i] = below(4) ? 0 : rnd();
        return (u64)s;
    }
    if (r < 85) return data + (below(DATA_SIZE) & ~7ul);
    return g_bad();
}

/* pselect6's sixth argument: {const sigset_t *ss, size_t ss_len}. */
static u64 g_pselect_mask(void)
{
    u64 r = below(100);
    if (r < 40) return 0;
    if (r < 50) return g_bad();
    u64 *m = arg_alloc(16, 8);
    m[0] = g_sigset();
    m[1] = g_sigsetsize();
    return (u64)m;
}

/* Requests that read state or set only per-descriptor flags (and FIONBIO only to on):
 * ioctls such as FIFREEZE, FS_IOC_SETFLAGS, TIOCSTI or SIOCSIF* change the host. */
static const u64 ioctls[] = {
    0x5401 /* TCGETS */, 0x5413 /* TIOCGWINSZ */, 0x541b /* FIONREAD */,
    0x5421 /* FIONBIO */, 0x5450 /* FIONCLEX */, 0x5451 /* FIOCLEX */,
    0x5460 /* FIOQSIZE */, 0x5411 /* TIOCOUTQ */, 0x540f /* TIOCGPGRP */,
    0x5429 /* TIOCGSID */, 0x8905 /* SIOCATMARK */, 0x80086601 /* FS_IOC_GETFLAGS */,
    0x80087601 /* FS_IOC_GETVERSION */, 2 /* FIGETBSZ */, 0xc020660b /* FS_IOC_FIEMAP */,
};

static int ioctl_allowed(u64 req)
{
    u32 r = (u32)req;
    if (r <= 70 && r != 0x21) /* Small numbers mean nothing to our descriptor types. */
        return 1;
    for (unsigned i = 0; i < sizeof ioctls / sizeof ioctls[0]; i++)
        if (r == (u32)ioctls[i])
            return 1;
    return 0;
}

static u64 g_ioctl(void)
{
    u64 r = below(100);
    if (r < 75) return PICK(ioctls);
    if (r < 85) return below(71);
    if (r < 92) return PICK(ioctls) | (rnd() << 32); /* Only the low 32 bits count. */
    return rnd();
}

static u64 g_prctl(void)
{
    u64 r = below(100);
    if (r < 85) return below(71);
    if (r < 90) return PICK(((const u64[]){0x53564d41 /* PR_SET_VMA */, 0x41555856 /* PR_GET_AUXV */}));
    return rnd();
}

static u64 g_fcntl_cmd(void)
{
    u64 r = below(100);
    if (r < 60) return below(17);
    if (r < 70) return 36 + below(3);
    if (r < 90) return 1024 + below(17);
    return rnd();
}

static u64 g_futex_op(void)
{
    u64 r = below(100);
    u64 flags = (below(2) ? FUTEX_PRIVATE_FLAG : 0) | (below(4) ? 0 : FUTEX_CLOCK_REALTIME);
    if (r < 85) return PICK(((const u64[]){0, 1, 3, 4, 5, 9, 10})) | flags;
    if (r < 95) return below(16) | flags;
    return rnd();
}

static u64 g_clock(void)
{
    u64 r = below(100);
    if (r < 85) return below(12);
    if (r < 95) return PICK(((const u64[]){12, 16, 100, (u64)-1, (u64)-6}));
    return rnd();
}

static u64 g_resource(void) { return below(100) < 85 ? below(16) : PICK(((const u64[]){16, 100, (u64)-1, 1ul << 32})); }

static u64 g_whence(void) { return below(100) < 85 ? below(5) : PICK(((const u64[]){5, 7, (u64)-1, 1ul << 32})); }

static u64 g_domain(void)
{
    u64 r = below(100);
    if (r < 40) return AF_UNIX;
    if (r < 70) return AF_INET;
    if (r < 90) return AF_INET6;
    return rnd();
}

static u64 g_socktype(void)
{
    u64 r = below(100);
    u64 t = r < 45 ? SOCK_STREAM : r < 85 ? SOCK_DGRAM : r < 95 ? SOCK_SEQPACKET : rnd();
    return t | (below(2) ? SOCK_CLOEXEC : 0);
}

static u64 g_madvise(void) { return below(100) < 85 ? below(27) : PICK(((const u64[]){100, 101, 102, 103, (u64)-1})); }

static u64 g_prot(void) { return below(100) < 90 ? below(16) : (below(2) ? 0x01000000 : rnd()); }

static u64 g_mmap_flags(void)
{
    u64 r = below(100);
    u64 kind = r < 70 ? MAP_PRIVATE : r < 85 ? MAP_SHARED : r < 92 ? 3 /* SHARED_VALIDATE */ : below(16);
    u64 f = kind;
    if (below(100) < 70) f |= MAP_ANONYMOUS;
    u64 fx = below(100);
    if (fx < 15) f |= MAP_FIXED;
    else if (fx < 20) f |= MAP_FIXED_NOREPLACE;
    if (below(100) < 10) f |= MAP_NORESERVE;
    if (below(100) < 5) f |= MAP_POPULATE;
    if (below(100) < 3) f |= MAP_GROWSDOWN;
    if (below(100) < 8) f |= (u32)rnd();
    return f;
}

static u64 g_brk(void)
{
    u64 r = below(100);
    if (r < 20) return 0;
    if (r < 60) return brk0 + below(1024) * PAGE;
    if (r < 70) return brk0 + below(64 * MIB);
    if (r < 80) return brk0 - below(8) * PAGE;
    return g_any();
}

/* fchdir may only go back to the scratch root; everything else is a bad descriptor. */
static u64 g_fchdir_fd(void) { return PICK(((const u64[]){ROOT_FD, (u64)-1, (u64)-100, 1 << 20, 0x7fffffff})); }

/* ---------------------------------------------------------- the call shapes
 *
 * One letter per argument. Upper-case letters and a few others are "safety" kinds:
 * generated by their own generator even in fully random calls, because the kernel
 * follows them (paths, iovecs, socket addresses, message headers), they decide whether
 * the call waits (timeouts) or whom it reaches (pids, signals). Free kinds become any
 * value in a fully random call.
 *
 *   f fd  d dirfd  p pointer  s size  o offset  w whence  i small int  F flags
 *   m mode  x anything  G attribute/name string  A mm address  L mm length
 *   R prot  Y mmap flags  W madvise advice  n iovec count  q pollfd array
 *   N nfds  y fd_set  j pselect mask  k sigset  e sigset size  g signal number
 *   I ioctl request  X prctl option  C clock  b futex op  # fcntl cmd  u resource
 *   D socket domain  t socket type  l socklen  2 output for a descriptor pair
 * safety kinds:
 *   P path  Q relative path  v iovec array  V mm iovec array  T timeout  E epoll ms
 *   z zero  S sockaddr  M msghdr (send)  O msghdr (receive)  J mmsghdr (send)
 *   K mmsghdr (receive)  c pid  0 zero signal  a sigaction  r rlimit  h open_how
 *   H fchdir fd  Z brk address
 */

static const char *const shapes[MAX_NR + 1] = {
    [__NR_io_setup] = "ip",
    [__NR_io_destroy] = "x",
    [__NR_io_cancel] = "xpp",
    [__NR_io_getevents] = "xzipT",
    [__NR_setxattr] = "PGpsF",
    [__NR_lsetxattr] = "PGpsF",
    [__NR_fsetxattr] = "fGpsF",
    [__NR_getxattr] = "PGps",
    [__NR_lgetxattr] = "PGps",
    [__NR_fgetxattr] = "fGps",
    [__NR_listxattr] = "Pps",
    [__NR_llistxattr] = "Pps",
    [__NR_flistxattr] = "fps",
    [__NR_removexattr] = "PG",
    [__NR_lremovexattr] = "PG",
    [__NR_fremovexattr] = "fG",
    [__NR_getcwd] = "ps",
    [__NR_lookup_dcookie] = "xps",
    [__NR_eventfd2] = "iF",
    [__NR_epoll_create1] = "F",
    [__NR_epoll_ctl] = "fifp",
    [__NR_epoll_pwait] = "fpiEke",
    [__NR_dup] = "f",
    [__NR_dup3] = "ffF",
    [__NR_fcntl] = "f#x",
    [__NR_inotify_init1] = "F",
    [__NR_inotify_add_watch] = "fPF",
    [__NR_inotify_rm_watch] = "fi",
    [__NR_ioctl] = "fIp",
    [__NR_ioprio_get] = "ic",
    [__NR_flock] = "fi",
    [__NR_mkdirat] = "dPm",
    [__NR_unlinkat] = "dPF",
    [__NR_symlinkat] = "QdP",
    [__NR_linkat] = "dPdPF",
    [38 /* renameat: not in riscv64 Linux, in vmjit */] = "dPdP",
    [__NR_statfs] = "Pp",
    [__NR_fstatfs] = "fp",
    [__NR_truncate] = "Po",
    [__NR_ftruncate] = "fo",
    [__NR_fallocate] = "fioo",
    [__NR_faccessat] = "dPi",
    [__NR_chdir] = "Q",
    [__NR_fchdir] = "H",
    [__NR_fchmod] = "fm",
    [__NR_fchmodat] = "dPm",
    [__NR_fchownat] = "dPxxF",
    [__NR_fchown] = "fxx",
    [__NR_openat] = "dPFm",
    [__NR_close] = "f",
    [__NR_pipe2] = "2F",
    [__NR_getdents64] = "fps",
    [__NR_lseek] = "fow",
    [__NR_read] = "fps",
    [__NR_write] = "fps",
    [__NR_readv] = "fvn",
    [__NR_writev] = "fvn",
    [__NR_pread64] = "fpso",
    [__NR_pwrite64] = "fpso",
    [__NR_preadv] = "fvnoo",
    [__NR_pwritev] = "fvnoo",
    [__NR_sendfile] = "ffps",
    [__NR_pselect6] = "NyyyTj",
    [__NR_ppoll] = "qNTke",
    [__NR_signalfd4] = "fkeF",
    [__NR_vmsplice] = "fvnF",
    [__NR_splice] = "fpfpsF",
    [__NR_tee] = "ffsF",
    [__NR_readlinkat] = "dPps",
    [__NR_newfstatat] = "dPpF",
    [__NR_fstat] = "fp",
    [__NR_fsync] = "f",
    [__NR_fdatasync] = "f",
    [__NR_sync_file_range] = "fooF",
    [__NR_timerfd_create] = "CF",
    [__NR_timerfd_settime] = "fFpp",
    [__NR_timerfd_gettime] = "fp",
    [__NR_utimensat] = "dPpF",
    [__NR_capget] = "pp",
    [__NR_capset] = "pp",
    [__NR_personality] = "x",
    [__NR_waitid] = "icpFp",
    [__NR_set_tid_address] = "p",
    [__NR_futex] = "pbxTpx",
    [__NR_set_robust_list] = "ps",
    [__NR_get_robust_list] = "cpp",
    [__NR_nanosleep] = "Tp",
    [__NR_getitimer] = "ip",
    [__NR_timer_gettime] = "xp",
    [__NR_timer_getoverrun] = "x",
    [__NR_timer_settime] = "xFpp",
    [__NR_timer_delete] = "x",
    [__NR_clock_gettime] = "Cp",
    [__NR_clock_getres] = "Cp",
    [__NR_clock_nanosleep] = "CFTp",
    [__NR_ptrace] = "xcpp",
    [__NR_sched_getscheduler] = "c",
    [__NR_sched_getparam] = "cp",
    [__NR_sched_setaffinity] = "csp",
    [__NR_sched_getaffinity] = "csp",
    [__NR_sched_yield] = "",
    [__NR_sched_get_priority_max] = "i",
    [__NR_sched_get_priority_min] = "i",
    [__NR_sched_rr_get_interval] = "cp",
    [__NR_kill] = "c0",
    [__NR_tkill] = "c0",
    [__NR_tgkill] = "cc0",
    [__NR_sigaltstack] = "pp",
    [__NR_rt_sigaction] = "gapi",
    [__NR_rt_sigprocmask] = "ikpe",
    [__NR_rt_sigpending] = "pe",
    [__NR_rt_sigtimedwait] = "kpTe",
    [__NR_rt_sigqueueinfo] = "c0p",
    [__NR_getpriority] = "ic",
    [__NR_getresuid] = "ppp",
    [__NR_getresgid] = "ppp",
    [__NR_times] = "p",
    [__NR_setpgid] = "cc",
    [__NR_getpgid] = "c",
    [__NR_getsid] = "c",
    [__NR_setsid] = "",
    [__NR_getgroups] = "ip",
    [__NR_uname] = "p",
    [__NR_getrlimit] = "up",
    [__NR_setrlimit] = "ur",
    [__NR_getrusage] = "ip",
    [__NR_umask] = "m",
    [__NR_prctl] = "Xxxxx",
    [__NR_getcpu] = "ppp",
    [__NR_gettimeofday] = "pp",
    [__NR_getpid] = "",
    [__NR_getppid] = "",
    [__NR_getuid] = "",
    [__NR_geteuid] = "",
    [__NR_getgid] = "",
    [__NR_getegid] = "",
    [__NR_gettid] = "",
    [__NR_sysinfo] = "p",
    [__NR_mq_timedsend] = "fpsiT",
    [__NR_mq_timedreceive] = "fpspT",
    [__NR_mq_notify] = "fp",
    [__NR_mq_getsetattr] = "fpp",
    [__NR_socket] = "Dtz",
    [__NR_socketpair] = "Dtz2",
    [__NR_bind] = "fSl",
    [__NR_listen] = "fi",
    [__NR_accept] = "fpp",
    [__NR_connect] = "fSl",
    [__NR_getsockname] = "fpp",
    [__NR_getpeername] = "fpp",
    [__NR_sendto] = "fpsFSl",
    [__NR_recvfrom] = "fpsFpp",
    [__NR_setsockopt] = "fiipl",
    [__NR_getsockopt] = "fiipp",
    [__NR_shutdown] = "fi",
    [__NR_sendmsg] = "fMF",
    [__NR_recvmsg] = "fOF",
    [__NR_readahead] = "fos",
    [__NR_brk] = "Z",
    [__NR_munmap] = "AL",
    [__NR_mremap] = "ALLFA",
    [__NR_mmap] = "ALRYfo",
    [__NR_fadvise64] = "fooi",
    [__NR_mprotect] = "ALR",
    [__NR_msync] = "ALF",
    [__NR_mlock] = "AL",
    [__NR_munlock] = "AL",
    [__NR_munlockall] = "",
    [__NR_mincore] = "ALp",
    [__NR_madvise] = "ALW",
    [__NR_remap_file_pages] = "ALRoF",
    [__NR_mbind] = "ALipiF",
    [__NR_get_mempolicy] = "ppiAF",
    [__NR_set_mempolicy] = "ipi",
    [__NR_migrate_pages] = "cipp",
    [__NR_move_pages] = "cippF",
    [__NR_rt_tgsigqueueinfo] = "cc0p",
    [__NR_accept4] = "fppF",
    [__NR_recvmmsg] = "fKnFT",
    [258 /* riscv_hwprobe */] = "psspF",
    [259 /* riscv_flush_icache */] = "AAF",
    [__NR_wait4] = "cpFp",
    [__NR_prlimit64] = "curp",
    [__NR_name_to_handle_at] = "dPppF",
    [__NR_sendmmsg] = "fJnF",
    [__NR_process_vm_readv] = "cvnvnF",
    [__NR_process_vm_writev] = "cvnvnF",
    [__NR_kcmp] = "ccixx",
    [__NR_sched_getattr] = "cpsF",
    [__NR_renameat2] = "dPdPF",
    [__NR_getrandom] = "psF",
    [__NR_memfd_create] = "GF",
    [__NR_membarrier] = "FFi",
    [__NR_mlock2] = "ALF",
    [__NR_copy_file_range] = "fpfpsF",
    [__NR_preadv2] = "fvnooF",
    [__NR_pwritev2] = "fvnooF",
    [__NR_pkey_mprotect] = "ALRi",
    [__NR_pkey_alloc] = "FF",
    [__NR_pkey_free] = "i",
    [__NR_statx] = "dPFFp",
    [__NR_io_pgetevents] = "xzipTp",
    [__NR_rseq] = "psFx",
    [__NR_pidfd_send_signal] = "f0pF",
    [__NR_pidfd_open] = "cF",
    [__NR_close_range] = "ffF",
    [__NR_openat2] = "dPhs",
    [__NR_pidfd_getfd] = "ffF",
    [__NR_faccessat2] = "dPiF",
    [__NR_process_madvise] = "fVnWF",
    [__NR_epoll_pwait2] = "fpiTke",
    [__NR_landlock_create_ruleset] = "psF",
    [__NR_landlock_add_rule] = "fipF",
    [__NR_landlock_restrict_self] = "fF",
    [__NR_memfd_secret] = "F",
    [__NR_process_mrelease] = "fF",
    [__NR_futex_waitv] = "pnFTC",
    [__NR_set_mempolicy_home_node] = "ALiF",
    [451 /* cachestat */] = "fppF",
    [452 /* fchmodat2 */] = "dPmF",
};

static const char safety_kinds[] = "PQvVTEzSMOJKc0arhHZ";

static int is_safety_kind(char k)
{
    for (const char *s = safety_kinds; *s; s++)
        if (*s == k)
            return 1;
    return 0;
}

static u64 gen(char k, const u64 *a)
{
    switch (k) {
    case 'f': return g_fd();
    case 'd': return g_dirfd();
    case 'p': return g_ptr();
    case 's': return g_size();
    case 'o': return g_off();
    case 'w': return g_whence();
    case 'i': return g_small();
    case 'F': return g_flags();
    case 'm': return g_mode();
    case 'G': return g_name();
    case 'A': return g_mm_addr();
    case 'L': return g_mm_len();
    case 'R': return g_prot();
    case 'Y': return g_mmap_flags();
    case 'W': return g_madvise();
    case 'n': return g_iovcnt();
    case 'q': return g_pollfds();
    case 'N': return g_nfds();
    case 'y': return g_fdset();
    case 'j': return g_pselect_mask();
    case 'k': return g_sigset();
    case 'e': return g_sigsetsize();
    case 'g': return below(100) < 90 ? 1 + below(64) : PICK(((const u64[]){0, 65, (u64)-1, 1ul << 32 | 13}));
    case 'I': return g_ioctl();
    case 'X': return g_prctl();
    case 'C': return g_clock();
    case 'b': return g_futex_op();
    case '#': return g_fcntl_cmd();
    case 'u': return g_resource();
    case 'D': return g_domain();
    case 't': return g_socktype();
    case 'l': return g_socklen();
    case '2': return below(100) < 70 ? (u64)arg_alloc(8, 8) : g_ptr();
    case 'P': return g_path();
    case 'Q': return g_relpath();
    case 'v': return g_iov();
    case 'V': return g_mm_iov();
    case 'T': return g_timeout();
    case 'E': return below(2);
    case 'z': return 0;
    case 'S': return g_sockaddr();
    case 'M': return g_msghdr(1);
    case 'O': return g_msghdr(0);
    case 'J': return g_mmsg(1);
    case 'K': return g_mmsg(0);
    case 'c': return g_pid();
    case '0': return 0;
    case 'a': return g_sigaction(a[0]);
    case 'r': return g_rlimit();
    case 'h': return g_open_how();
    case 'H': return g_fchdir_fd();
    case 'Z': return g_brk();
    default: return g_any();
    }
}

/* ------------------------------------------------------------- call selection */

/* Calls the fuzzer never issues: they change the host (clock, mounts, modules, swap,
 * reboot, hostname, credentials, namespaces, accounting, SysV IPC and POSIX message
 * queues, which outlive the process, keyrings, io_uring, bpf, perf, scheduling policy
 * and priority, mlockall, fanotify, the new mount API, whole-disk syncs), end or freeze
 * the process (exit, execve, clone, rt_sigreturn, rt_sigsuspend, alarm timers, seccomp,
 * userfaultfd), or follow kernel pointers read from memory it cannot vet (io_submit). */
static int denied(u64 nr)
{
    switch (nr) {
    case __NR_io_submit: case __NR_ioprio_set: case __NR_mknodat: case __NR_umount2:
    case __NR_mount: case __NR_pivot_root: case __NR_nfsservctl: case __NR_chroot:
    case __NR_vhangup: case __NR_quotactl: case __NR_sync: case __NR_acct: case __NR_exit:
    case __NR_exit_group: case __NR_unshare: case __NR_setitimer: case __NR_kexec_load:
    case __NR_init_module: case __NR_delete_module: case __NR_timer_create:
    case __NR_clock_settime: case __NR_syslog: case __NR_sched_setparam:
    case __NR_sched_setscheduler: case __NR_rt_sigsuspend: case __NR_rt_sigreturn:
    case __NR_setpriority: case __NR_reboot: case __NR_setregid: case __NR_setgid:
    case __NR_setreuid: case __NR_setuid: case __NR_setresuid: case __NR_setresgid:
    case __NR_setfsuid: case __NR_setfsgid: case __NR_setgroups: case __NR_sethostname:
    case __NR_setdomainname: case __NR_settimeofday: case __NR_adjtimex: case __NR_mq_open:
    case __NR_mq_unlink: case __NR_add_key: case __NR_request_key: case __NR_keyctl:
    case __NR_clone: case __NR_execve: case __NR_swapon: case __NR_swapoff:
    case __NR_mlockall: case __NR_perf_event_open: case __NR_fanotify_init:
    case __NR_fanotify_mark: case __NR_open_by_handle_at: case __NR_clock_adjtime:
    case __NR_syncfs: case __NR_setns: case __NR_finit_module: case __NR_sched_setattr:
    case __NR_seccomp: case __NR_bpf: case __NR_execveat: case __NR_userfaultfd:
    case __NR_kexec_file_load: case 404 /* clock_settime64 */: case 405 /* clock_adjtime64 */:
    case 420 /* semtimedop_time64 */: case __NR_io_uring_setup: case __NR_io_uring_enter:
    case __NR_io_uring_register: case __NR_open_tree: case __NR_move_mount: case __NR_fsopen:
    case __NR_fsconfig: case __NR_fsmount: case __NR_fspick: case __NR_clone3:
    case __NR_mount_setattr: case __NR_quotactl_fd:
        return 1;
    }
    /* SysV IPC: objects outlive the process, and ids name other processes' objects. */
    if (nr >= __NR_msgget && nr <= __NR_shmdt)
        return 1;
    return nr > MAX_NR && nr < 1024;
}

/* The 32-bit ABIs' time64 calls (ENOSYS on riscv64) follow their base call's rules. */
static u64 base_nr(u64 nr)
{
    switch (nr) {
    case 403: return __NR_clock_gettime;
    case 406: return __NR_clock_getres;
    case 407: return __NR_clock_nanosleep;
    case 408: return __NR_timer_gettime;
    case 409: return __NR_timer_settime;
    case 410: return __NR_timerfd_gettime;
    case 411: return __NR_timerfd_settime;
    case 412: return __NR_utimensat;
    case 413: return __NR_pselect6;
    case 414: return __NR_ppoll;
    case 416: return __NR_io_pgetevents;
    case 417: return __NR_recvmmsg;
    case 418: return __NR_mq_timedsend;
    case 419: return __NR_mq_timedreceive;
    case 421: return __NR_rt_sigtimedwait;
    case 422: return __NR_futex;
    case 423: return __NR_sched_rr_get_interval;
    }
    return nr;
}

/* The calls vmjit implements (crates/engine/src/syscall.rs, `nr`), minus exit and
 * exit_group; the most used ones twice. */
static const u16 implemented[] = {
    17, 23, 24, 24, 25, 25, 29, 29, 32, 34, 35, 36, 37, 38, 43, 44, 45, 46, 48, 49, 50,
    52, 53, 54, 56, 56, 56, 57, 57, 59, 61, 62, 62, 63, 63, 63, 64, 64, 64, 65, 66, 67,
    68, 69, 70, 73, 73, 78, 79, 80, 82, 83, 88, 96, 98, 98, 99, 101, 113, 114, 115, 123,
    117, 124, 129, 130, 131, 132, 134, 134, 135, 160, 163, 164, 165, 166, 169, 172, 173,
    174, 175, 176, 177, 178, 179, 214, 214, 215, 215, 216, 216, 222, 222, 222, 223, 226,
    226, 233, 233, 258, 259, 261, 270, 271, 276, 278, 291, 293, 436, 438, 439,
};

static u64 choose_nr(void)
{
    u64 r = below(100);
    if (r < 60)
        return PICK(implemented);
    if (r < 92) {
        for (int t = 0; t < 32; t++) {
            u64 n = below(MAX_NR + 1);
            if (!denied(n))
                return n;
        }
        return __NR_getpid;
    }
    /* Garbage numbers. qemu-user takes the number as an int, so the low 32 bits must not
     * name a real call either. */
    u64 g = below(4) ? rnd() : 1024 + below(1 << 16);
    if ((u32)g < 1024)
        g += 1024;
    return g;
}

/* ------------------------------------------------------------------ sanitizers
 *
 * Rules that hold whatever generated the arguments (shaped or fully random). They are
 * pure functions of the arguments: a sanitizer never draws from the PRNG, because an
 * argument may hold a value that came from an earlier call's result (a descriptor or a
 * mapping), and the random stream must not depend on results. */

static u64 *last_rlimit;

static u64 cap(u64 v, u64 max) { return v > max ? v & (max - 1) : v; }

static u64 cap_mm_len(u64 len) { return len > MIB && len < (1ul << 47) ? MIB : len; }

static void keep_mm_range(u64 *addr, u64 len)
{
    if (overlaps_protected(*addr, len))
        *addr = far_away(*addr);
}

static void sanitize(u64 nr, u64 *a)
{
    for (int i = 0; i < 6; i++)
        a[i] = fd_filter(a[i]);

    switch (base_nr(nr)) {
    case __NR_io_setup:
        if (aio_budget-- <= 0)
            a[0] = 0;
        else if ((u32)a[0] > 256 && (u32)a[0] < 0x80000000u)
            a[0] = 256;
        break;
    case __NR_io_getevents:
    case __NR_io_pgetevents:
        a[1] = 0; /* min_nr: never wait for events that cannot come */
        break;
    case __NR_eventfd2:
    case __NR_timerfd_create:
    case __NR_pipe2:
        a[1] |= O_NONBLOCK;
        break;
    case __NR_inotify_init1:
        /* Instances count against a per-user limit the whole host shares. */
        a[0] = inotify_budget-- > 0 ? a[0] | O_NONBLOCK : ~0ul;
        break;
    case __NR_signalfd4:
        a[3] |= O_NONBLOCK;
        break;
    case __NR_openat:
        a[2] |= O_NONBLOCK;
        break;
    case __NR_flock:
        a[1] |= LOCK_NB;
        break;
    case __NR_fcntl:
        switch ((int)a[1]) {
        case F_SETFL:
            a[2] = (a[2] | O_NONBLOCK) & ~(u64)O_ASYNC;
            break;
        case F_SETLKW:
            a[1] = F_SETLK;
            break;
        case F_OFD_SETLKW:
            a[1] = F_OFD_SETLK;
            break;
        case F_SETOWN:
            a[2] = a[2] & 1 ? (u64)self_pid : 0;
            break;
        case F_SETOWN_EX: {
            int *o = arg_alloc(8, 8);
            o[0] = (int)(a[2] & 1); /* F_OWNER_TID or F_OWNER_PID, never a group */
            o[1] = (int)self_pid;
            a[2] = (u64)o;
            break;
        }
        case F_SETLEASE: /* lease breaks and dnotify deliver SIGIO, which kills */
        case F_NOTIFY:
            a[1] = F_GETLEASE;
            break;
        case F_SETPIPE_SZ:
            a[2] = cap((u32)a[2], MIB);
            break;
        }
        break;
    case __NR_ioctl:
        if (!ioctl_allowed(a[1]))
            a[1] = ioctls[(u32)a[1] % (sizeof ioctls / sizeof ioctls[0])];
        if ((u32)a[1] == 0x5421) { /* FIONBIO: only ever switch non-blocking on */
            int *on = arg_alloc(4, 4);
            *on = 1 + (int)(a[2] & 7);
            a[2] = (u64)on;
        }
        break;
    case __NR_sendfile:
        a[3] = cap(a[3], 256 * KIB);
        break;
    case __NR_splice:
        a[4] = cap(a[4], 256 * KIB);
        a[5] |= 2; /* SPLICE_F_NONBLOCK */
        break;
    case __NR_tee:
        a[2] = cap(a[2], 256 * KIB);
        a[3] |= 2;
        break;
    case __NR_vmsplice:
        a[3] |= 2;
        break;
    case __NR_copy_file_range:
        a[4] = cap(a[4], 256 * KIB);
        break;
    case __NR_readahead:
        a[2] = cap(a[2], 256 * KIB);
        break;
    case __NR_fallocate:
        a[3] = cap(a[3], 256 * KIB);
        break;
    case __NR_fadvise64:
        /* WILLNEED reads the range in; a length of 0 means to the end of the file. */
        if ((int)a[3] == 3 && (a[2] == 0 || a[2] > 256 * KIB))
            a[2] = PAGE;
        break;
    case __NR_waitid:
        a[3] |= WNOHANG;
        break;
    case __NR_wait4:
        a[2] |= WNOHANG;
        break;
    case __NR_futex: {
        u64 flags = a[1] & (FUTEX_PRIVATE_FLAG | FUTEX_CLOCK_REALTIME);
        u32 cmd = (u32)a[1] & ~(u32)(FUTEX_PRIVATE_FLAG | FUTEX_CLOCK_REALTIME);
        /* Priority-inheritance operations look owners up by tid in the whole system. */
        if (cmd == 6 || cmd == 7 || cmd == 8 || cmd == 11 || cmd == 12 || cmd == 13)
            a[1] = FUTEX_WAKE | flags;
        break;
    }
    case __NR_clock_nanosleep:
        /* The process's own CPU clock (2) does not advance while it sleeps; negative ids
         * are other processes' CPU clocks. */
        if ((int)a[0] == 2 || (int)a[0] < 0)
            a[0] = CLOCK_MONOTONIC;
        break;
    case __NR_ptrace:
        if (a[0] == 0) /* PTRACE_TRACEME: the test harness would become the tracer */
            a[0] = 1;
        break;
    case __NR_prctl: {
        int o = (int)a[0];
        /* seccomp, mm fields, syscall user dispatch, core scheduling (pids), MDWE, and
         * the newer per-arch controls (shadow stacks, landing pads) that can kill it. */
        if (o == 22 || o == 35 || o == 59 || o == 62 || o == 65 || (o >= 71 && o <= 100) ||
            (u32)o == 0x59616d61)
            a[0] = 3; /* PR_GET_DUMPABLE */
        break;
    }
    case __NR_setrlimit:
    case __NR_prlimit64: {
        u32 res = (u32)(base_nr(nr) == __NR_setrlimit ? a[0] : a[1]);
        u64 lim = base_nr(nr) == __NR_setrlimit ? a[1] : a[2];
        /* CPU, FSIZE and RTTIME limits end a process with a signal. */
        if (last_rlimit && lim == (u64)last_rlimit && (res == 0 || res == 1 || res >= 15))
            last_rlimit[0] = last_rlimit[1] = ~0ul;
        break;
    }
    case __NR_socket:
    case __NR_socketpair: {
        int d = (int)a[0];
        if (d != AF_UNIX && d != AF_INET && d != AF_INET6)
            a[0] = a[0] & 1 ? 9999 : (u64)-1; /* refused before any module is loaded */
        u32 t = (u32)a[1] & 0xf;
        if (t != SOCK_STREAM && t != SOCK_DGRAM && t != SOCK_SEQPACKET)
            t = a[1] & 0x10 ? 11 : 15; /* >= SOCK_MAX: refused before module loading */
        a[1] = t | SOCK_NONBLOCK | (a[1] & SOCK_CLOEXEC);
        a[2] = 0;
        break;
    }
    case __NR_accept4:
        a[3] |= SOCK_NONBLOCK;
        break;
    case __NR_sendto:
    case __NR_recvfrom:
    case __NR_recvmmsg:
    case __NR_sendmmsg:
        a[3] |= MSG_DONTWAIT;
        break;
    case __NR_sendmsg:
    case __NR_recvmsg:
        a[2] |= MSG_DONTWAIT;
        break;
    case __NR_setsockopt: {
        int level = (int)a[1], name = (int)a[2], to = name;
        /* Multicast membership (network traffic), IPsec policies, and TCP options
         * that load modules by name (congestion control, ULP, MD5/AO crypto). */
        if (level == IPPROTO_IP && ((name >= 32 && name <= 48) || name == 16 || name == 17))
            to = 1;
        if (level == IPPROTO_IPV6 &&
            ((name >= 20 && name <= 21) || (name >= 42 && name <= 48) || name == 34 || name == 35))
            to = 16;
        if (level == IPPROTO_TCP &&
            (name == 13 || name == 14 || name == 31 || name == 32 || name >= 38))
            to = 1;
        /* A lingering close waits as long as the guest asks, whatever O_NONBLOCK says. */
        if (level == SOL_SOCKET && name == SO_LINGER)
            to = SO_KEEPALIVE;
        a[2] = (a[2] & ~0xfffffffful) | (u32)to;
        break;
    }
    case __NR_brk:
        if (a[0] >= protected_mem[0].lo && a[0] < brk0)
            a[0] = brk0;
        else if (a[0] > brk0 + 64 * MIB && a[0] < (1ul << 47))
            a[0] = brk0 + (a[0] & (64 * MIB - 1));
        break;
    case __NR_mlock:
    case __NR_mlock2:
        a[1] = cap_mm_len(a[1]);
        keep_mm_range(&a[0], a[1]);
        break;
    case __NR_munmap:
    case __NR_mprotect:
    case __NR_pkey_mprotect:
    case __NR_remap_file_pages:
    case __NR_munlock:
        keep_mm_range(&a[0], a[1]);
        break;
    case __NR_madvise:
        keep_mm_range(&a[0], a[1]);
        /* MADV_HWPOISON and MADV_SOFT_OFFLINE take physical pages out of the host. */
        if ((int)a[2] == 100 || (int)a[2] == 101)
            a[2] = 0;
        break;
    case __NR_process_madvise:
        if ((int)a[3] == 100 || (int)a[3] == 101)
            a[3] = 0;
        break;
    case __NR_mremap:
        keep_mm_range(&a[0], a[1]);
        a[2] = cap_mm_len(a[2]);
        if (a[3] & 2 /* MREMAP_FIXED */)
            keep_mm_range(&a[4], a[2]);
        break;
    case __NR_mmap:
        a[3] &= ~((u64)MAP_HUGETLB | (0x3ful << 26)); /* the host's huge page pool */
        a[1] = cap_mm_len(a[1]);
        /* MAP_FIXED_NOREPLACE may aim at the fuzzer's memory (vmjit must refuse to
         * replace it), but must not map the never-mapped windows. */
        if ((a[3] & MAP_FIXED) && !(a[3] & MAP_FIXED_NOREPLACE))
            keep_mm_range(&a[0], a[1]);
        else if ((a[3] & MAP_FIXED_NOREPLACE) && overlaps_never_mapped(a[0], a[1]))
            a[0] = far_away(a[0]);
        break;
    case __NR_memfd_create:
        a[1] &= ~(4ul /* MFD_HUGETLB */ | (0x3ful << 26));
        break;
    case __NR_close_range: {
        u32 first = (u32)a[0], last = (u32)a[1];
        u32 lowest = 0xffffffffu;
        for (int i = 0; i < n_protected_fd; i++)
            if ((u32)protected_fd[i] >= first && (u32)protected_fd[i] < lowest)
                lowest = (u32)protected_fd[i];
        if (first <= last && lowest <= last) {
            if (lowest > first) {
                a[1] = lowest - 1;
            } else {
                a[0] = 5;
                a[1] = 4; /* first > last: EINVAL */
            }
        }
        break;
    }
    }
}

/* --------------------------------------------------------------- bookkeeping */

static void ring_push(long fd)
{
    if (fd < 0 || fd >= (1 << 20) || fd_is_protected((u64)fd))
        return;
    fd_ring[fd_ring_pos] = (int)fd;
    fd_ring_pos = (fd_ring_pos + 1) % 16;
    if (fd_ring_n < 16)
        fd_ring_n++;
}

static void set_nonblock(long fd)
{
    long fl = sys2(__NR_fcntl, fd, F_GETFL);
    if (!is_err(fl))
        sys3(__NR_fcntl, fd, F_SETFL, fl | O_NONBLOCK);
}

/* An INET socket is bound to loopback at once: listen() or connect() on an unbound one
 * would bind it to every interface. */
static void bind_loopback(long fd, int domain)
{
    if (domain == AF_INET) {
        struct sockaddr_in s = {0};
        s.sin_family = AF_INET;
        s.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        sys3(__NR_bind, fd, &s, sizeof s);
    } else if (domain == AF_INET6) {
        struct sockaddr_in6 s = {0};
        s.sin6_family = AF_INET6;
        s.sin6_addr.s6_addr[15] = 1;
        sys3(__NR_bind, fd, &s, sizeof s);
    }
}

static void after(u64 nr, const u64 *a, long r)
{
    if (is_err(r)) {
        n_errors++;
        if (r == -38)
            n_enosys++;
        return;
    }
    switch (base_nr(nr)) {
    case __NR_fcntl:
        if ((int)a[1] == F_DUPFD || (int)a[1] == F_DUPFD_CLOEXEC)
            ring_push(r);
        break;
    case __NR_openat: case __NR_openat2: case __NR_dup: case __NR_dup3:
    case __NR_eventfd2: case __NR_epoll_create1: case __NR_inotify_init1:
    case __NR_signalfd4: case __NR_timerfd_create: case __NR_memfd_create:
    case __NR_memfd_secret: case __NR_pidfd_open: case __NR_pidfd_getfd:
    case __NR_landlock_create_ruleset:
        ring_push(r);
        break;
    case __NR_accept:
    case __NR_accept4:
        set_nonblock(r);
        ring_push(r);
        break;
    case __NR_socket:
        bind_loopback(r, (int)a[0]);
        ring_push(r);
        break;
    case __NR_pipe2:
    case __NR_socketpair: {
        /* Only ARG is sure to be readable: elsewhere the pair may have gone to memory a
         * call made write-only. */
        u64 at = base_nr(nr) == __NR_pipe2 ? a[0] : a[3];
        if (at >= arg && at + 8 <= arg_end) {
            int pair[2];
            copy(pair, (const void *)at, sizeof pair);
            ring_push(pair[0]);
            ring_push(pair[1]);
        }
        break;
    }
    case __NR_mmap:
    case __NR_mremap:
        map_ring[map_ring_pos] = (u64)r;
        map_ring_pos = (map_ring_pos + 1) % 8;
        if (map_ring_n < 8)
            map_ring_n++;
        break;
    }
}

static void ignore_sigpipe(void)
{
    u64 act[3] = {1 /* SIG_IGN */, 0, 0};
    sys4(__NR_rt_sigaction, SIGPIPE, act, 0, 8);
}

/* Undo what calls did to the fuzzer's surroundings (never to its own state, which no
 * call can reach): back to the scratch root, DATA mapped read-write, holes unmapped. */
static void housekeeping(void)
{
    sys1(__NR_fchdir, ROOT_FD);
    sys6(__NR_mmap, (long)data, DATA_SIZE, PROT_READ | PROT_WRITE,
         MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
    sys2(__NR_munmap, region + OFF_HOLE1, PAGE);
    sys2(__NR_munmap, region + OFF_HOLE2, PAGE);
    ignore_sigpipe();
}

/* ------------------------------------------------------------------- tracing */

/* A string argument the fuzzer built (in ARG or RO, both always readable), quoted. */
static void put_arg_string(u64 p)
{
    if (!((p >= arg && p < arg_end) || (p >= ro && p < ro + PAGE)))
        return;
    u64 end = p >= arg && p < arg_end ? arg_end : ro + PAGE;
    put_str(" \"");
    for (int n = 0; p < end && n < 48; p++, n++) {
        char c = *(const char *)p;
        if (!c)
            break;
        char s[2] = {c >= 32 && c < 127 ? c : '?', 0};
        put_str(s);
    }
    put_str("\"");
}

static void trace_call(u64 i, u64 nr, const u64 *a, int shaped, const char *kinds)
{
    put_str("#");
    put_u64(i);
    put_str(shaped ? " shaped " : " random ");
    put_u64(nr);
    put_str("(");
    for (int j = 0; j < 6; j++) {
        if (j)
            put_str(", ");
        put_hex(a[j]);
        if (kinds[j] == 'P' || kinds[j] == 'Q' || kinds[j] == 'G')
            put_arg_string(a[j]);
    }
    put_str(")\n");
    flush_out();
}

static void trace_ret(long r)
{
    put_str("  = ");
    if (r < 0) {
        put_str("-");
        put_u64((u64)-r);
    } else {
        put_hex((u64)r);
    }
    put_str("\n");
    flush_out();
}

/* ------------------------------------------------------------------ one call */

static void one_call(u64 i)
{
    arg_used = 0;
    last_rlimit = 0;
    u64 nr = choose_nr();
    u64 bn = base_nr(nr);
    const char *shape = bn <= MAX_NR ? shapes[bn] : 0;
    size_t nk = shape ? slen(shape) : 0;
    int shaped = below(100) < 75;
    u64 a[6] = {0};
    char kinds[6] = {0};
    for (int j = 0; j < 6; j++) {
        char k = (size_t)j < nk ? shape[j] : 0;
        if (k && (shaped || is_safety_kind(k))) {
            kinds[j] = k;
            a[j] = gen(k, a);
            if (k == 'r' && a[j] >= arg && a[j] < arg_end)
                last_rlimit = (u64 *)a[j];
        } else {
            a[j] = g_any();
        }
    }
    sanitize(nr, a);

    n_calls++;
    if (nr < 1024)
        seen[nr] = 1;
    if (trace)
        trace_call(i, nr, a, shaped, kinds);
    long r = sys6((long)nr, (long)a[0], (long)a[1], (long)a[2], (long)a[3], (long)a[4],
                  (long)a[5]);
    if (trace)
        trace_ret(r);
    after(nr, a, r);
}

/* ------------------------------------------------------------------ the end */

/* Hot enough that every JIT tier translates it; its value changes if the translated
 * code is corrupted. */
static u64 __attribute__((noinline)) hot_loop(u64 seed, u64 n)
{
    u64 x = seed * 0x9E3779B97F4A7C15ul + 1, acc = 0;
    for (u64 i = 0; i < n; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        if (x & 1)
            acc += x >> 3;
        else
            acc ^= x * 5;
        acc = (acc << 1) | (acc >> 63);
    }
    return acc;
}

static u64 pool_hash(void)
{
    u64 h = 0xcbf29ce484222325ul;
    for (unsigned i = 0; i < sizeof relpaths / sizeof relpaths[0]; i++)
        for (const char *s = relpaths[i]; *s; s++)
            h = (h ^ (unsigned char)*s) * 0x100000001b3ul;
    for (unsigned i = 0; i < sizeof probes / sizeof probes[0]; i++)
        for (const char *s = probes[i]; *s; s++)
            h = (h ^ (unsigned char)*s) * 0x100000001b3ul;
    for (unsigned i = 0; i < sizeof shapes / sizeof shapes[0]; i++)
        h = (h ^ (u64)shapes[i]) * 0x100000001b3ul;
    return h;
}

static void die(const char *msg, int code)
{
    long fd = sys2(__NR_fcntl, REPORT_FD, F_GETFD) >= 0 ? REPORT_FD : 2;
    sys3(__NR_write, fd, msg, slen(msg));
    sys1(__NR_exit_group, code);
    for (;;) {
    }
}

static void write_file(const char *name, const char *text)
{
    long fd = sys4(__NR_openat, AT_FDCWD, name, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (!is_err(fd)) {
        sys3(__NR_write, fd, text, slen(text));
        sys1(__NR_close, fd);
    }
}

static int same_file(int fd, const struct stat *want)
{
    struct stat st;
    return !is_err(sys2(__NR_fstat, fd, &st)) && st.st_dev == want->st_dev &&
           st.st_ino == want->st_ino;
}

extern char __executable_start[], _end[];

int main(int argc, char **argv)
{
    volatile unsigned char stack_canary[64];
    for (int i = 0; i < 64; i++)
        stack_canary[i] = canary_byte(i + 100);

    int ok1 = 0, ok2 = 0;
    u64 seed = argc >= 3 ? parse_u64(argv[1], &ok1) : 0;
    u64 count = argc >= 3 ? parse_u64(argv[2], &ok2) : 0;
    trace = argc == 4 && argv[3][0] == 't' && argv[3][1] == 'r';
    if (!ok1 || !ok2 || argc > 4 || (argc == 4 && !trace)) {
        static const char usage[] = "usage: sysfuzz SEED COUNT [trace]\n";
        sys3(__NR_write, 2, usage, sizeof usage - 1);
        return 2;
    }
    rng = seed;
    self_pid = sys0(__NR_getpid);
    brk0 = (u64)sys1(__NR_brk, 0);
    ignore_sigpipe();

    /* The report goes to a descriptor no generator produces. */
    if (is_err(sys3(__NR_dup3, 1, REPORT_FD, 0)))
        die("sysfuzz: no standard output\n", 2);
    struct stat report_st, root_st;
    sys2(__NR_fstat, REPORT_FD, &report_st);

    /* The scratch directory and what the path pool names in it. */
    sys3(__NR_mkdirat, AT_FDCWD, "sysfuzz.d", 0700);
    long d = sys4(__NR_openat, AT_FDCWD, "sysfuzz.d", O_RDONLY | O_DIRECTORY, 0);
    if (is_err(d) || is_err(sys3(__NR_dup3, d, ROOT_FD, 0)) || is_err(sys1(__NR_fchdir, ROOT_FD)))
        die("sysfuzz: cannot make the scratch directory\n", 2);
    sys1(__NR_close, d);
    sys2(__NR_fstat, ROOT_FD, &root_st);
    write_file("f0", "zero\n");
    write_file("f1", "the first file, a little longer than the others\n");
    write_file("f2", "");
    write_file("stdin", "standard input of sysfuzz\nsecond line\n");
    sys3(__NR_mkdirat, AT_FDCWD, "d0", 0755);
    sys3(__NR_mkdirat, AT_FDCWD, "d1", 0755);
    sys3(__NR_mkdirat, AT_FDCWD, "d0/d1", 0755);
    write_file("d0/f0", "in d0\n");
    sys3(__NR_symlinkat, "f0", AT_FDCWD, "l0");
    sys3(__NR_symlinkat, "d0", AT_FDCWD, "l1");
    sys3(__NR_symlinkat, "d1/new", AT_FDCWD, "l2");

    /* Standard input becomes a scratch file, and so do standard output and error unless
     * they are pipes or sockets: no terminal or host file is reachable through them. */
    long in = sys4(__NR_openat, AT_FDCWD, "stdin", O_RDWR, 0);
    if (!is_err(in)) {
        sys3(__NR_dup3, in, 0, 0);
        sys1(__NR_close, in);
    }
    for (int fd = 1; fd <= 2; fd++) {
        struct stat st;
        if (is_err(sys2(__NR_fstat, fd, &st)) || !(S_ISFIFO(st.st_mode) || S_ISSOCK(st.st_mode))) {
            long f = sys4(__NR_openat, AT_FDCWD, fd == 1 ? "stdout" : "stderr",
                          O_WRONLY | O_CREAT | O_TRUNC, 0644);
            if (!is_err(f)) {
                sys3(__NR_dup3, f, fd, 0);
                sys1(__NR_close, f);
            }
        }
    }

    /* Descriptors open before the fuzzing belong to the emulator or to whoever started
     * it (a pipe of cargo's jobserver, say) and are out of bounds, except unlinked
     * regular files: an emulator's private memory (vmjit's code cache was a memfd the
     * guest saw as descriptor 3), which a sandbox must keep from the guest. */
    protect_fd(REPORT_FD);
    protect_fd(ROOT_FD);
    for (int fd = 3; fd < 1024; fd++) {
        struct stat st;
        if (fd == REPORT_FD || fd == ROOT_FD || is_err(sys2(__NR_fstat, fd, &st)))
            continue;
        int host_file = !(S_ISREG(st.st_mode) && st.st_nlink == 0);
        if (host_file) {
            protect_fd(fd);
            if (fd == 3)
                fd3_protected = 1;
        }
        if (trace) {
            put_str("inherited fd ");
            put_u64((u64)fd);
            put_str(host_file ? ": protected (mode " : ": not protected (mode ");
            put_hex(st.st_mode);
            put_str(", links ");
            put_u64(st.st_nlink);
            put_str(")\n");
            flush_out();
        }
    }

    /* The scratch region, placed away from the heap and the stack where it can be. */
    long r = sys6(__NR_mmap, 0x200000000l, REGION_SIZE, PROT_READ | PROT_WRITE,
                  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (is_err(r))
        die("sysfuzz: cannot map the scratch region\n", 2);
    region = (u64)r;
    data = region + OFF_DATA;
    data_end = data + DATA_SIZE;
    arg = region + OFF_ARG;
    arg_end = arg + ARG_SIZE;
    ro = region + OFF_RO;
    for (u64 i = 0; i < DATA_SIZE; i++)
        ((unsigned char *)data)[i] = (unsigned char)(i * 7);
    unsigned char *rop = (unsigned char *)ro;
    fill(rop, 0, PAGE);
    copy(rop + RO_PATH_OFF, "f0", 3);
    for (u64 i = RO_PATTERN_OFF; i < PAGE; i++)
        rop[i] = ro_pattern(i);
    sys3(__NR_mprotect, ro, PAGE, PROT_READ);
    sys3(__NR_mprotect, region, GUARD, PROT_NONE);
    sys3(__NR_mprotect, region + OFF_G1, GUARD, PROT_NONE);
    sys3(__NR_mprotect, region + OFF_G2, GUARD, PROT_NONE);
    sys3(__NR_mprotect, region + OFF_G3, GUARD, PROT_NONE);
    sys2(__NR_munmap, region + OFF_HOLE1, PAGE);
    sys2(__NR_munmap, region + OFF_HOLE2, PAGE);

    u64 sp = (u64)stack_canary;
    u64 top = (u64)_end > brk0 ? (u64)_end : brk0;
    protected_mem[0] = (struct range){(u64)__executable_start & ~(PAGE - 1),
                                      ((top + PAGE - 1) & ~(PAGE - 1)) + MIB};
    protected_mem[1] = (struct range){sp > 9 * MIB ? sp - 9 * MIB : 0, sp + MIB};
    protected_mem[2] = (struct range){region, data};
    protected_mem[3] = (struct range){data_end, region + REGION_SIZE};
    protected_mem[4] = (struct range){0, 64 * KIB};
    protected_mem[5] = (struct range){(1ul << 34) - MIB, (1ul << 34) + MIB};
    n_protected_mem = 6;

    for (int i = 0; i < 64; i++)
        canary_bss[i] = canary_byte(i);
    for (unsigned i = 0; i < sizeof relpaths / sizeof relpaths[0]; i++) {
        const char *s = relpaths[i];
        if (s[0] == '/')
            die("sysfuzz: an absolute name in the relative pool\n", 2);
        for (; *s; s++)
            if (s[0] == '.' && s[1] == '.')
                die("sysfuzz: '..' in the relative pool\n", 2);
    }
    u64 hash0 = pool_hash();

    for (u64 i = 0; i < count; i++) {
        if (i && i % 128 == 0)
            housekeeping();
        one_call(i);
    }
    housekeeping();
    u64 final_rng = rng;

    u64 checksum = hot_loop(seed, 2000000);

    const char *broken = 0;
    for (int i = 0; i < 64 && !broken; i++) {
        if (canary_data[i] != (i < 16 ? i + 1 : 0))
            broken = "data canary";
        else if (canary_bss[i] != canary_byte(i))
            broken = "bss canary";
        else if (stack_canary[i] != canary_byte(i + 100))
            broken = "stack canary";
    }
    for (u64 i = 0; i < PAGE && !broken; i++) {
        unsigned char want = i >= RO_PATTERN_OFF ? ro_pattern(i) : i < 3 ? (unsigned char)"f0"[i] : 0;
        if (rop[i] != want)
            broken = "read-only page";
    }
    if (!broken && pool_hash() != hash0)
        broken = "path pool";
    if (!broken && !same_file(REPORT_FD, &report_st))
        broken = "report descriptor";
    if (!broken && !same_file(ROOT_FD, &root_st))
        broken = "scratch root descriptor";

    long fl = sys2(__NR_fcntl, REPORT_FD, F_GETFL);
    if (!is_err(fl))
        sys3(__NR_fcntl, REPORT_FD, F_SETFL, fl & ~O_NONBLOCK);
    u64 distinct = 0;
    for (int i = 0; i < 1024; i++)
        distinct += seen[i];
    put_str("\nsysfuzz: seed ");
    put_u64(seed);
    if (broken) {
        put_str(": SELF-CHECK FAILED: ");
        put_str(broken);
        put_str("\n");
        flush_out();
        sys1(__NR_exit_group, 3);
    }
    put_str(": ");
    put_u64(n_calls);
    put_str(" calls, ");
    put_u64(distinct);
    put_str(" distinct numbers, rng ");
    put_hex(final_rng);
    put_str(", checksum ");
    put_hex(checksum);
    put_str("; ");
    put_u64(n_errors);
    put_str(" errors (");
    put_u64(n_enosys);
    put_str(" ENOSYS)\n");
    flush_out();
    sys1(__NR_exit_group, 0);
    return 0;
}
