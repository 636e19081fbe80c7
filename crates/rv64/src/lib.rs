//! RV64GC (RV64IMAFDC + Zicsr + Zifencei) for a Linux user-mode VM: decoding into a
//! compact [`Insn`], disassembly, and an interpreter that is the reference semantics the
//! JIT is checked against.
//!
//! **Architecture invariants**
//! - This crate has no `unsafe` and no I/O. Guest memory is reached only through the
//!   [`Memory`] trait, which the engine implements (with its sandbox checks).
//! - It knows nothing of Linux: `ecall` is reported as [`Exit::Ecall`] and the engine
//!   performs the system call.
//! - [`Cpu`] is `#[repr(C)]` so translated code can address its fields at fixed offsets.

pub mod cpu;
pub mod decode;
pub mod disasm;
pub mod exec;
pub mod fpu;
pub mod insn;
pub mod interp;
pub mod memory;

pub use cpu::Cpu;
pub use decode::{DecodeError, decode, insn_len};
pub use exec::{Exit, execute};
pub use insn::{Insn, Op};
pub use interp::Interpreter;
pub use memory::{AccessKind, MemFault, Memory};
