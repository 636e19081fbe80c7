/* The auxiliary vector the process starts with: every entry in order, each checked
 * against what the program can find out by itself (its own ELF header, _start, the
 * interpreter's link map, getuid...). Addresses and random bytes are never printed, only
 * whether they agree. Built statically (auxv) and dynamically (auxv_dyn). */
#define _GNU_SOURCE
#include <elf.h>
#include <link.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

extern char **environ;
extern void _start(void);
extern const ElfW(Ehdr) __ehdr_start;

static const char *basename_of(const char *p) {
    const char *s = strrchr(p, '/');
    return s ? s + 1 : p;
}

/* The load address of the ELF interpreter, from its link map (0 when there is none). */
static int find_interp(struct dl_phdr_info *info, size_t size, void *data) {
    (void)size;
    if (info->dlpi_name && strstr(info->dlpi_name, "ld-linux")) {
        *(uintptr_t *)data = info->dlpi_addr;
        return 1;
    }
    return 0;
}

static const char *yes(int c) { return c ? "yes" : "NO"; }

int main(int argc, char **argv) {
    (void)argc;
    char **e = environ;
    while (*e) e++;
    const ElfW(auxv_t) *av = (const ElfW(auxv_t) *)(e + 1);
    const char *phdrs = (const char *)&__ehdr_start + __ehdr_start.e_phoff;
    uintptr_t interp = 0;
    dl_iterate_phdr(find_interp, &interp);
    int n = 0;
    for (; av->a_type != AT_NULL; av++, n++) {
        uintptr_t v = av->a_un.a_val;
        switch (av->a_type) {
        case AT_PHDR: printf("AT_PHDR: the program's headers: %s\n", yes(v == (uintptr_t)phdrs)); break;
        case AT_PHENT: printf("AT_PHENT: %lu\n", (unsigned long)v); break;
        case AT_PHNUM: printf("AT_PHNUM: the header's count: %s\n", yes(v == __ehdr_start.e_phnum)); break;
        case AT_PAGESZ: printf("AT_PAGESZ: %lu\n", (unsigned long)v); break;
        case AT_BASE:
            if (interp)
                printf("AT_BASE: the interpreter's load address: %s, page aligned: %s\n",
                       yes(v == interp), yes(v % 4096 == 0));
            else
                printf("AT_BASE: %lu (no interpreter)\n", (unsigned long)v);
            break;
        case AT_FLAGS: printf("AT_FLAGS: %lu\n", (unsigned long)v); break;
        case AT_ENTRY: printf("AT_ENTRY: _start: %s\n", yes(v == (uintptr_t)&_start)); break;
        case AT_UID: printf("AT_UID: getuid(): %s\n", yes(v == getuid())); break;
        case AT_EUID: printf("AT_EUID: geteuid(): %s\n", yes(v == geteuid())); break;
        case AT_GID: printf("AT_GID: getgid(): %s\n", yes(v == getgid())); break;
        case AT_EGID: printf("AT_EGID: getegid(): %s\n", yes(v == getegid())); break;
        case AT_HWCAP: {
            printf("AT_HWCAP: %#lx (", (unsigned long)v);
            for (int b = 0; b < 26; b++)
                if (v & (1ul << b)) putchar('a' + b);
            printf(")\n");
            break;
        }
        case AT_CLKTCK: printf("AT_CLKTCK: %lu\n", (unsigned long)v); break;
        case AT_RANDOM: printf("AT_RANDOM: present, nonzero: %s\n", yes(v != 0)); break;
        case AT_SECURE: printf("AT_SECURE: %lu\n", (unsigned long)v); break;
        case AT_EXECFN:
            printf("AT_EXECFN: argv[0]: %s\n", yes(strcmp((const char *)v, argv[0]) == 0));
            break;
        default: printf("entry %lu\n", (unsigned long)av->a_type); break;
        }
    }
    printf("%d entries; program %s\n", n, basename_of(argv[0]));
    return 0;
}
