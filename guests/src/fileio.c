/*
 * fileio: file-system system calls through the C library, run in a fresh empty directory.
 *
 * Creates files and a directory in the current directory, then exercises write/read,
 * pread/pwrite, lseek (SET/CUR/END, holes), fstat/stat/lstat sizes and types, access,
 * getcwd, opendir/readdir (names sorted before printing, since directory order is
 * file-system dependent), rename, unlink, rmdir, writev/readv, dup/dup2/dup3, pipe,
 * fcntl (F_GETFL/F_SETFL/F_GETFD/F_SETFD/F_DUPFD), ftruncate, stdio FILE streams and the
 * expected errno values of failing calls. Everything it creates is removed again; the
 * directory is empty at exit.
 *
 * Only relative paths are used and nothing host-specific is printed (no inode numbers,
 * times, absolute paths or uids).
 */
#define _GNU_SOURCE /* dup3 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

static int failures;

#define CHECK(cond)                                                                            \
    do {                                                                                       \
        if (!(cond)) {                                                                         \
            failures++;                                                                        \
            printf("FAIL line %d: %s (errno %s)\n", __LINE__, #cond, errno_name(errno));        \
        }                                                                                      \
    } while (0)

static const char *errno_name(int e)
{
    switch (e) {
    case 0: return "0";
    case ENOENT: return "ENOENT";
    case EEXIST: return "EEXIST";
    case EBADF: return "EBADF";
    case ENOTDIR: return "ENOTDIR";
    case EISDIR: return "EISDIR";
    case ENOTEMPTY: return "ENOTEMPTY";
    case EINVAL: return "EINVAL";
    case ESPIPE: return "ESPIPE";
    case EACCES: return "EACCES";
    case ENOTTY: return "ENOTTY";
    case EAGAIN: return "EAGAIN";
    default: return "other";
    }
}

static uint32_t checksum(const unsigned char *p, size_t n)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 16777619u;
    return h;
}

static int write_all(int fd, const void *buf, size_t n)
{
    const char *p = buf;
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Lists a directory sorted by name, with each entry's type and size from stat. */
static void list_dir(const char *path)
{
    DIR *d = opendir(path);
    if (!d) {
        printf("opendir(%s) failed: %s\n", path, errno_name(errno));
        failures++;
        return;
    }
    char *names[64];
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL && n < 64)
        names[n++] = strdup(e->d_name);
    closedir(d);
    qsort(names, (size_t)n, sizeof names[0], cmp_names);
    printf("listing of %s (%d entries incl. . and ..):\n", path, n);
    for (int i = 0; i < n; i++) {
        char full[512];
        snprintf(full, sizeof full, "%s/%s", path, names[i]);
        struct stat st;
        if (strcmp(names[i], ".") == 0 || strcmp(names[i], "..") == 0)
            printf("  %s\n", names[i]);
        else if (lstat(full, &st) == 0)
            printf("  %-14s %s %lld bytes\n", names[i],
                   S_ISDIR(st.st_mode) ? "dir " : S_ISREG(st.st_mode) ? "file" : "other",
                   S_ISDIR(st.st_mode) ? 0LL : (long long)st.st_size);
        else
            printf("  %-14s lstat failed %s\n", names[i], errno_name(errno));
        free(names[i]);
    }
}

static void test_basic_rw(void)
{
    printf("-- write, read, lseek, pread, pwrite\n");
    int fd = open("data.bin", O_CREAT | O_EXCL | O_RDWR | O_TRUNC, 0644);
    CHECK(fd >= 0);
    static unsigned char buf[100000];
    for (size_t i = 0; i < sizeof buf; i++)
        buf[i] = (unsigned char)(i * 31 + (i >> 8));
    CHECK(write_all(fd, buf, sizeof buf) == 0);
    off_t pos = lseek(fd, 0, SEEK_CUR);
    off_t end = lseek(fd, 0, SEEK_END);
    printf("wrote %zu bytes, position %lld, end %lld, checksum %08x\n", sizeof buf,
           (long long)pos, (long long)end, checksum(buf, sizeof buf));

    /* read back in odd-sized chunks */
    static unsigned char back[100000];
    CHECK(lseek(fd, 0, SEEK_SET) == 0);
    size_t got = 0;
    for (;;) {
        ssize_t r = read(fd, back + got, 7777);
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    printf("read back %zu bytes in 7777-byte chunks, checksum %08x, equal %d\n", got,
           checksum(back, got), got == sizeof buf && memcmp(back, buf, got) == 0);

    /* pread does not move the file position */
    unsigned char p[16];
    CHECK(lseek(fd, 123, SEEK_SET) == 123);
    ssize_t pr = pread(fd, p, sizeof p, 50000);
    off_t after = lseek(fd, 0, SEEK_CUR);
    printf("pread 16 @50000 -> %zd, bytes %02x %02x .. %02x, position still %lld\n", pr, p[0],
           p[1], p[15], (long long)after);
    CHECK(pr == 16 && memcmp(p, buf + 50000, 16) == 0 && after == 123);

    /* pwrite in the middle, SEEK_CUR and negative SEEK_END */
    CHECK(pwrite(fd, "PATCH", 5, 1000) == 5);
    CHECK(lseek(fd, -10, SEEK_END) == 100000 - 10);
    char tail[16] = {0};
    ssize_t tr = read(fd, tail, sizeof tail);
    printf("read at end-10 -> %zd bytes; read at EOF -> %zd\n", tr, read(fd, tail, 1));
    CHECK(lseek(fd, 998, SEEK_SET) == 998);
    CHECK(lseek(fd, 2, SEEK_CUR) == 1000);
    char patch[6] = {0};
    CHECK(read(fd, patch, 5) == 5);
    printf("after pwrite: \"%s\"\n", patch);

    /* a hole: seek past the end and write; the gap reads as zeros */
    CHECK(lseek(fd, 200000, SEEK_SET) == 200000);
    CHECK(write(fd, "END", 3) == 3);
    struct stat st;
    CHECK(fstat(fd, &st) == 0);
    unsigned char hole[8];
    CHECK(pread(fd, hole, sizeof hole, 150000) == 8);
    int zeros = 0;
    for (int i = 0; i < 8; i++)
        zeros += hole[i] == 0;
    printf("after hole: fstat size %lld, regular %d, %d of 8 hole bytes are zero\n",
           (long long)st.st_size, S_ISREG(st.st_mode), zeros);

    /* ftruncate down and up */
    CHECK(ftruncate(fd, 4096) == 0);
    CHECK(fstat(fd, &st) == 0);
    printf("ftruncate 4096: size %lld\n", (long long)st.st_size);
    CHECK(close(fd) == 0);
    CHECK(stat("data.bin", &st) == 0);
    /* only the owner bits: group/other bits depend on the runner's umask */
    printf("stat data.bin: size %lld, regular %d, owner rw- %d\n", (long long)st.st_size,
           S_ISREG(st.st_mode), (st.st_mode & 0700) == 0600);

    /* error cases */
    errno = 0;
    int r1 = open("data.bin", O_CREAT | O_EXCL | O_WRONLY, 0644);
    int e1 = errno;
    errno = 0;
    int r2 = open("no-such-file", O_RDONLY);
    int e2 = errno;
    errno = 0;
    ssize_t r3 = read(12345, p, 1);
    int e3 = errno;
    printf("errors: O_EXCL on existing %d %s; missing file %d %s; bad fd %zd %s\n", r1,
           errno_name(e1), r2, errno_name(e2), r3, errno_name(e3));
}

static void test_dirs(void)
{
    printf("-- mkdir, readdir, rename, unlink, rmdir\n");
    CHECK(mkdir("sub", 0755) == 0);
    errno = 0;
    int again = mkdir("sub", 0755);
    printf("mkdir sub again: %d %s\n", again, errno_name(errno));
    static const char *const names[] = {"sub/zeta.txt", "sub/alpha.txt", "sub/Mid", "sub/beta"};
    for (int i = 0; i < 4; i++) {
        FILE *f = fopen(names[i], "w");
        CHECK(f != NULL);
        if (!f)
            continue;
        for (int k = 0; k <= i; k++)
            fprintf(f, "line %d of %s\n", k, names[i]);
        CHECK(fclose(f) == 0);
    }
    CHECK(mkdir("sub/inner", 0700) == 0);
    list_dir(".");
    list_dir("sub");

    CHECK(rename("sub/zeta.txt", "sub/omega.txt") == 0);
    CHECK(rename("sub/alpha.txt", "moved.txt") == 0);
    struct stat st;
    errno = 0;
    int gone = stat("sub/zeta.txt", &st);
    int gone_errno = errno;
    int readable = access("moved.txt", R_OK);
    printf("after rename: old name stat %d %s; access(moved.txt, R_OK) %d\n", gone,
           errno_name(gone_errno), readable);
    list_dir("sub");

    /* read a renamed file back through stdio */
    FILE *f = fopen("moved.txt", "r");
    CHECK(f != NULL);
    char line[128];
    int lines = 0;
    while (f && fgets(line, sizeof line, f))
        lines++;
    if (f)
        fclose(f);
    printf("moved.txt has %d line(s)\n", lines);

    errno = 0;
    int notempty = rmdir("sub");
    printf("rmdir non-empty: %d %s\n", notempty, errno_name(errno));
    errno = 0;
    int isdir = unlink("sub/inner");
    printf("unlink a directory: %d %s\n", isdir, errno_name(errno));
    errno = 0;
    int notdir = open("moved.txt/x", O_RDONLY);
    printf("path through a file: %d %s\n", notdir, errno_name(errno));

    CHECK(unlink("sub/omega.txt") == 0);
    CHECK(unlink("sub/Mid") == 0);
    CHECK(unlink("sub/beta") == 0);
    CHECK(rmdir("sub/inner") == 0);
    CHECK(rmdir("sub") == 0);
    CHECK(unlink("moved.txt") == 0);

    char cwd[4096];
    CHECK(getcwd(cwd, sizeof cwd) != NULL);
    printf("getcwd is absolute: %d\n", cwd[0] == '/');
}

static void test_vectors_and_fds(void)
{
    printf("-- writev, readv, dup, dup2, dup3, fcntl, pipe\n");
    int fd = open("vec.txt", O_CREAT | O_RDWR | O_TRUNC, 0600);
    CHECK(fd >= 0);
    char a[] = "first part, ", b[] = "second part, ", c[] = "third part\n";
    struct iovec wv[3] = {{a, strlen(a)}, {b, strlen(b)}, {c, strlen(c)}};
    ssize_t w = writev(fd, wv, 3);
    printf("writev 3 buffers -> %zd bytes\n", w);
    CHECK(lseek(fd, 0, SEEK_SET) == 0);
    char r1[5] = {0}, r2[20] = {0}, r3[40] = {0};
    struct iovec rv[3] = {{r1, 4}, {r2, 19}, {r3, 39}};
    ssize_t r = readv(fd, rv, 3);
    printf("readv into 4+19+39 -> %zd: \"%s\" \"%s\" \"%.*s\"\n", r, r1, r2,
           (int)strcspn(r3, "\n"), r3);

    /* dup shares the file offset */
    int d = dup(fd);
    CHECK(d > fd);
    CHECK(lseek(fd, 6, SEEK_SET) == 6);
    char x[5] = {0};
    CHECK(read(d, x, 4) == 4);
    printf("dup reads at the shared offset: \"%s\", offset now %lld\n", x,
           (long long)lseek(fd, 0, SEEK_CUR));
    int d2 = dup2(fd, 40);
    printf("dup2(fd, 40) -> %d\n", d2);
    int d3 = dup3(fd, 41, O_CLOEXEC);
    printf("dup3(fd, 41, O_CLOEXEC) -> %d, FD_CLOEXEC set %d, on original %d\n", d3,
           (fcntl(41, F_GETFD) & FD_CLOEXEC) != 0, (fcntl(fd, F_GETFD) & FD_CLOEXEC) != 0);
    int d4 = fcntl(fd, F_DUPFD, 50);
    printf("fcntl F_DUPFD >= 50 -> %d\n", d4);
    int fl = fcntl(fd, F_GETFL);
    printf("F_GETFL access mode O_RDWR %d, O_APPEND %d\n", (fl & O_ACCMODE) == O_RDWR,
           (fl & O_APPEND) != 0);
    CHECK(fcntl(fd, F_SETFL, fl | O_APPEND) == 0);
    CHECK(lseek(fd, 0, SEEK_SET) == 0);
    CHECK(write(fd, "APPENDED\n", 9) == 9);
    printf("O_APPEND after F_SETFL: %d, write lands at end, size %lld\n",
           (fcntl(fd, F_GETFL) & O_APPEND) != 0, (long long)lseek(fd, 0, SEEK_END));
    CHECK(fcntl(fd, F_SETFD, FD_CLOEXEC) == 0);
    printf("F_SETFD FD_CLOEXEC -> %d\n", (fcntl(fd, F_GETFD) & FD_CLOEXEC) != 0);
    close(d);
    close(d2);
    close(d3);
    close(d4);
    errno = 0;
    int twice = close(d4);
    printf("close twice: %d %s\n", twice, errno_name(errno));
    /* runners give stdout as a file or a pipe, never a terminal: TCGETS fails */
    errno = 0;
    int tty = isatty(1);
    printf("isatty(stdout) %d %s\n", tty, errno_name(errno));
    CHECK(close(fd) == 0);
    CHECK(unlink("vec.txt") == 0);

    /* a pipe carries data in order; reading the empty, closed pipe gives EOF */
    int p[2];
    CHECK(pipe(p) == 0);
    errno = 0;
    off_t sp = lseek(p[0], 0, SEEK_CUR);
    printf("lseek on a pipe: %lld %s\n", (long long)sp, errno_name(errno));
    uint32_t sent = 0, recv = 0;
    size_t total = 0;
    for (int round = 0; round < 20; round++) {
        unsigned char chunk[1000];
        for (int i = 0; i < 1000; i++)
            chunk[i] = (unsigned char)(round * 7 + i);
        CHECK(write(p[1], chunk, sizeof chunk) == (ssize_t)sizeof chunk);
        sent = sent * 31 + checksum(chunk, sizeof chunk);
        unsigned char in[1000];
        size_t have = 0;
        while (have < sizeof in) {
            ssize_t n = read(p[0], in + have, sizeof in - have);
            if (n <= 0)
                break;
            have += (size_t)n;
        }
        total += have;
        recv = recv * 31 + checksum(in, have);
    }
    CHECK(close(p[1]) == 0);
    char eof;
    ssize_t last = read(p[0], &eof, 1);
    CHECK(close(p[0]) == 0);
    printf("pipe: %zu bytes through, checksums equal %d, read after close -> %zd\n", total,
           sent == recv, last);

    /* O_NONBLOCK pipe: an empty read fails with EAGAIN */
    CHECK(pipe(p) == 0);
    CHECK(fcntl(p[0], F_SETFL, fcntl(p[0], F_GETFL) | O_NONBLOCK) == 0);
    errno = 0;
    ssize_t nb = read(p[0], &eof, 1);
    printf("non-blocking empty pipe read: %zd %s\n", nb, errno_name(errno));
    close(p[0]);
    close(p[1]);
}

static void test_stdio(void)
{
    printf("-- stdio streams\n");
    FILE *f = fopen("numbers.txt", "w+");
    CHECK(f != NULL);
    if (!f)
        return;
    for (int i = 1; i <= 1000; i++)
        fprintf(f, "%d%c", i * i, i % 10 == 0 ? '\n' : ' ');
    long size = ftell(f);
    rewind(f);
    long sum = 0, count = 0, v;
    while (fscanf(f, "%ld", &v) == 1) {
        sum += v;
        count++;
    }
    printf("fprintf/fscanf: %ld numbers, sum %ld, file size %ld\n", count, sum, size);
    CHECK(fseek(f, -4, SEEK_END) == 0);
    char tail[8] = {0};
    size_t n = fread(tail, 1, sizeof tail - 1, f);
    printf("last %zu bytes: \"%.*s\"\n", n, (int)strcspn(tail, "\n"), tail);
    fclose(f);
    CHECK(unlink("numbers.txt") == 0);
}

int main(void)
{
    test_basic_rw();
    test_dirs();
    test_vectors_and_fds();
    test_stdio();
    CHECK(unlink("data.bin") == 0);
    list_dir(".");
    printf("fileio: %s (%d failures)\n", failures ? "FAILED" : "all checks passed", failures);
    return failures ? 1 : 0;
}
