/*
 * hello: the smallest useful guest. Checks what the loader and the initial stack give a
 * program: argc/argv (including an argument with a space and one starting with '-'),
 * the environment (runners clear it except VMJIT_GUEST=1), auxv's page size, and stdin.
 *
 * Only the basename of argv[0] is printed: runners may pass the program as a relative
 * or absolute path, and the output must not depend on that.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <unistd.h>

extern char **environ;

static const char *base_name(const char *path)
{
    const char *slash = strrchr(path, '/');
    return slash ? slash + 1 : path;
}

int main(int argc, char **argv)
{
    printf("hello, world\n");
    printf("argc = %d\n", argc);
    printf("argv[0] basename = \"%s\"\n", argc > 0 ? base_name(argv[0]) : "(none)");
    for (int i = 1; i < argc; i++)
        printf("argv[%d] = \"%s\" (%zu bytes)\n", i, argv[i], strlen(argv[i]));
    printf("argv[argc] is %s\n", argv[argc] == NULL ? "NULL" : "not NULL");

    const char *guest = getenv("VMJIT_GUEST");
    printf("VMJIT_GUEST = %s\n", guest ? guest : "(unset)");
    int nenv = 0;
    for (char **e = environ; *e; e++)
        nenv++;
    printf("environment entries = %d\n", nenv);

    printf("AT_PAGESZ = %lu\n", getauxval(AT_PAGESZ));
    printf("sysconf(_SC_PAGESIZE) = %ld\n", sysconf(_SC_PAGESIZE));

    /* Echo stdin with line numbers, so a runner's stdin redirection is verified too. */
    char line[256];
    unsigned long lines = 0, bytes = 0;
    while (fgets(line, sizeof line, stdin)) {
        size_t len = strlen(line);
        bytes += len;
        lines++;
        printf("stdin %lu: %s%s", lines, line, (len && line[len - 1] == '\n') ? "" : "\n");
    }
    printf("stdin: %lu lines, %lu bytes\n", lines, bytes);
    return 0;
}
