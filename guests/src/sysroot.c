/* Absolute paths under a sysroot (qemu-riscv64 -L DIR, vmjit -L DIR): a path that
 * exists in the sysroot is used from there (/lib/libc.so.6 is riscv64's, not the
 * host's), others as given; /proc and /dev are never redirected (/proc/self/exe names
 * this program). Built dynamically (sysroot_dyn) and run with the riscv64 sysroot. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *basename_of(const char *p) {
    const char *s = strrchr(p, '/');
    return s ? s + 1 : p;
}

/* What the file at `path` (relative to `dirfd`) is: its ELF machine number, if ELF. */
static void elf_machine(int dirfd, const char *path) {
    int fd = openat(dirfd, path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        printf("%s: %s\n", path, strerror(errno));
        return;
    }
    unsigned char h[20];
    ssize_t n = read(fd, h, sizeof h);
    close(fd);
    if (n == (ssize_t)sizeof h && memcmp(h, "\177ELF", 4) == 0)
        printf("%s: ELF, machine %d%s\n", path, h[18] | h[19] << 8,
               (h[18] | h[19] << 8) == 243 ? " (riscv)" : "");
    else
        printf("%s: not an ELF file\n", path);
}

int main(int argc, char **argv) {
    (void)argc;
    elf_machine(AT_FDCWD, "/lib/libc.so.6");
    elf_machine(AT_FDCWD, "/lib/ld-linux-riscv64-lp64d.so.1");
    elf_machine(AT_FDCWD, "//lib/../lib/./libm.so.6");

    struct stat st;
    printf("stat /lib/libc.so.6: %s\n",
           stat("/lib/libc.so.6", &st) == 0 && S_ISREG(st.st_mode) ? "a regular file" : strerror(errno));
    printf("access /lib/no-such-library.so.1: %s\n",
           access("/lib/no-such-library.so.1", F_OK) == 0 ? "exists" : strerror(errno));

    /* A directory opened in the sysroot: paths relative to it stay there. */
    int lib = open("/lib", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (lib < 0) {
        printf("open /lib: %s\n", strerror(errno));
    } else {
        elf_machine(lib, "libc.so.6");
        close(lib);
    }

    char buf[4096];
    ssize_t n = readlink("/proc/self/exe", buf, sizeof buf - 1);
    if (n >= 0) buf[n] = 0;
    printf("/proc/self/exe names this program: %s\n",
           n > 0 && strcmp(basename_of(buf), basename_of(argv[0])) == 0 ? "yes" : "no");
    int fd = open("/proc/self/cmdline", O_RDONLY);
    n = fd >= 0 ? read(fd, buf, sizeof buf - 1) : -1;
    if (fd >= 0) close(fd);
    if (n >= 0) buf[n] = 0;
    printf("/proc/self/cmdline starts with argv[0]: %s\n",
           n > 0 && strcmp(buf, argv[0]) == 0 ? "yes" : "no");
    fd = open("/dev/null", O_WRONLY);
    printf("/dev/null takes a write: %s\n", fd >= 0 && write(fd, "x", 1) == 1 ? "yes" : "no");
    if (fd >= 0) close(fd);

    /* A file of the working directory, by its absolute name: not in the sysroot. */
    fd = open("here.txt", O_WRONLY | O_CREAT | O_EXCL, 0644);
    if (fd >= 0) {
        if (write(fd, "here\n", 5) != 5) printf("write failed\n");
        close(fd);
    }
    char cwd[4096], abs[4200];
    if (getcwd(cwd, sizeof cwd)) {
        snprintf(abs, sizeof abs, "%s/here.txt", cwd);
        fd = open(abs, O_RDONLY);
        n = fd >= 0 ? read(fd, buf, sizeof buf - 1) : -1;
        if (fd >= 0) close(fd);
        printf("the working directory's file by its absolute path: %s\n",
               n == 5 && memcmp(buf, "here\n", 5) == 0 ? "read back" : "not found");
    }
    unlink("here.txt");
    return 0;
}
