/*
 * exitcode: writes to stdout and stderr, then exits with 42 through exit(), so stdio
 * buffers are flushed by the C library's exit path. Only stdout is recorded.
 */
#include <stdio.h>
#include <stdlib.h>

int main(void)
{
    printf("exitcode: this line goes to stdout\n");
    fprintf(stderr, "exitcode: this line goes to stderr\n");
    printf("exitcode: exiting with 42\n");
    exit(42);
}
