/*
 * illegal: prints a line, then executes the all-zero instruction word, which the RISC-V
 * spec defines as illegal (0x0000 is a reserved compressed encoding, so it is illegal
 * whether or not C is enabled). The runner must end the run as the kernel would for
 * SIGILL: exit code 132, with the line already printed.
 */
#include <stdio.h>

int main(void)
{
    printf("illegal: about to execute the instruction word 0x00000000\n");
    fflush(stdout);
#if defined(__riscv)
    __asm__ volatile(".4byte 0x00000000");
#else
    __builtin_trap();
#endif
    printf("illegal: still running, the instruction did not trap\n");
    return 1;
}
