//! RV64GC (RV64IMAFDC + Zicsr + Zifencei) for a Linux user-mode VM: decoding into a
//! compact [`Insn`], disassembly, and an interpreter that is the reference semantics the
//! JIT is checked against.
//!
//! # Using it
//!
//! ```
//! use rv64::{Cpu, Exit, Interpreter, testmem::FlatMemory};
//!
//! let mut mem = FlatMemory::new(0x1000, 0x1000);
//! // li a0,5; addi a0,a0,1; ecall
//! mem.write_words(0x1000, &[0x0050_0513, 0x0015_0513, 0x0000_0073]);
//! let mut cpu = Cpu::new();
//! cpu.pc = 0x1000;
//! let mut interp = Interpreter::new();
//! assert_eq!(interp.run(&mut cpu, &mut mem, u64::MAX), Exit::Ecall);
//! assert_eq!((cpu.x[10], cpu.pc, cpu.instret), (6, 0x1008, 2));
//!
//! let insn = rv64::decode(0x0015_0513).unwrap();
//! assert_eq!(insn.to_string(), "addi a0,a0,1");
//! ```
//!
//! - [`decode()`] turns 16- or 32-bit encodings into an [`Insn`] (one [`Op`] per 32-bit
//!   instruction; compressed forms decode to their expansion with `len == 2`) and
//!   rejects reserved encodings. `Display for Insn` and [`Insn::display_at`] print
//!   objdump-style assembly.
//! - [`execute`] runs one instruction; [`Interpreter`] runs decoded basic blocks kept in
//!   a cache (direct-mapped jump cache in front of a `HashMap`) and is the fast path.
//!   Both stop with an [`Exit`] whose documented `pc` convention tells the engine where
//!   to resume.
//! - [`fpu`] holds the F/D semantics: exact in all rounding modes with RISC-V NaN and
//!   flag rules, through `rustc_apfloat`, with host-float fast paths for
//!   round-to-nearest-even that are proven (and tested) to give the same bits and flags.
//!
//! **Architecture invariants**
//! - This crate has no `unsafe` and no I/O (except reading the monotonic clock for
//!   `rdtime`, which [`clock`] can also record and replay). Guest memory is reached
//!   only through the [`Memory`] trait, which the engine implements (with its sandbox
//!   checks).
//! - It knows nothing of Linux: `ecall` is reported as [`Exit::Ecall`] and the engine
//!   performs the system call.
//! - [`Cpu`] is `#[repr(C)]` so translated code can address its fields at fixed offsets.
//! - Bad guest input never panics: undecodable bits become [`Exit::Illegal`], bad
//!   addresses [`Exit::Fault`].

pub mod clock;
pub mod cpu;
pub mod decode;
pub mod disasm;
pub mod exec;
pub mod fpu;
pub mod insn;
pub mod interp;
pub mod memory;
#[doc(hidden)]
pub mod testmem;

pub use cpu::Cpu;
pub use decode::{DecodeError, decode, insn_len};
pub use disasm::DisplayAt;
pub use exec::{Exit, execute};
pub use insn::{Insn, Op};
pub use interp::{Interpreter, JUMP_CACHE_ENTRIES, decode_block, fetch};
pub use memory::{AccessKind, AmoOp, MemFault, Memory};
