/*
 * segfault: prints a line, then stores to address 0x10, which is never mapped in a Linux
 * process (the first pages are reserved). The runner must end the run as the kernel
 * would for SIGSEGV: exit code 139, with the line already printed.
 */
#include <stdint.h>
#include <stdio.h>

int main(void)
{
    printf("segfault: about to store to address 0x10\n");
    fflush(stdout);
    /* volatile: the compiler must neither drop the store nor reason about the address. */
    volatile uintptr_t addr = 0x10;
    *(volatile int *)addr = 42;
    printf("segfault: still running, the store did not fault\n");
    return 1;
}
