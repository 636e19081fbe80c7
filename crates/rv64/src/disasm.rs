//! Disassembly in the GNU objdump style (`addi a0,a0,1`), through `Display for Insn`.
