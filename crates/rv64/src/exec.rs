//! Execution of one decoded instruction: the reference semantics.

use crate::{Cpu, Insn, MemFault, Memory};

/// Why execution stopped and handed control back to the engine. `cpu.pc` always says
/// where to resume, as documented per variant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    /// `ecall`: `cpu.pc` points at the ecall; the engine performs the system call and
    /// advances pc by 4.
    Ecall,
    /// `ebreak`: `cpu.pc` points at it.
    Ebreak,
    /// `fence.i` was executed; `cpu.pc` already points past it. The engine must drop any
    /// translated or pre-decoded code before continuing.
    FenceI,
    /// An illegal or reserved instruction at `pc` (raw bits as fetched).
    Illegal { pc: u64, raw: u32 },
    /// A memory access at `pc` faulted; `cpu.pc == pc`.
    Fault { pc: u64, fault: MemFault },
    /// The instruction budget given to the interpreter ran out (`cpu.pc` is the next
    /// instruction).
    Budget,
}

/// Executes `insn` located at `cpu.pc`, updating `cpu` (including pc and instret) and
/// `mem`. Returns `Err(exit)` for the cases in [`Exit`].
pub fn execute<M: Memory>(cpu: &mut Cpu, mem: &mut M, insn: &Insn) -> Result<(), Exit> {
    let _ = (cpu, mem, insn);
    todo!("rv64 helper")
}
