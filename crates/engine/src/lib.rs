//! The vmjit engine: runs riscv64 Linux executables (static, or dynamically linked with
//! a riscv64 sysroot) in user mode.
//!
//! It owns everything between the ELF file and the instruction semantics of `rv64`:
//! the guest memory sandbox ([`memory`]), the ELF loader ([`loader`]: programs and
//! their ELF interpreters), the sysroot that interpreter and the guest's absolute paths
//! are looked up in ([`sysroot`]), the initial stack ([`stack`]), the Linux system-call layer ([`syscall`]) and the dispatch loop
//! ([`dispatch`]) that runs guest code through `rv64`'s interpreter or, when enabled,
//! the JIT tier ([`jit`]: Cranelift translations kept in the unified code cache), and
//! [`crosscheck`], which runs the interpreter beside either as a shadow VM and compares
//! the two. [`Vm`] ties them together.
//!
//! ```no_run
//! use std::path::Path;
//! let env = engine::host_environment();
//! let mut vm = engine::Vm::load(Path::new("guests/bin/hello"), &[], &env)?;
//! let outcome = vm.run();
//! std::process::exit(outcome.exit.exit_code());
//! # Ok::<(), engine::LoadError>(())
//! ```
//!
//! A dynamically linked program, with the sysroot `vmjit run` would choose (`-L`,
//! `VMJIT_LD_PREFIX`, `QEMU_LD_PREFIX`, `/usr/riscv64-linux-gnu`):
//!
//! ```no_run
//! use std::path::Path;
//! let sysroot = engine::sysroot::Sysroot::from_environment(None)?;
//! let env = engine::host_environment();
//! let mut vm =
//!     engine::Vm::load_with_sysroot(Path::new("guests/bin/hello_dyn"), &[], &env, sysroot)?;
//! std::process::exit(vm.run().exit.exit_code());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! **Architecture invariants**
//! - The guest can never read or write host memory outside its own reservation: every
//!   access and every buffer handed to the host kernel is checked against the page table
//!   of [`memory::GuestMemory`]. A bad access ends the run as [`GuestExit::Fault`]; the
//!   host process never takes a signal for it.
//! - `unsafe` lives only in [`memory`], [`host`] and the JIT's `enter` module (the only
//!   place that jumps into translated code).
//! - Bad input (any file) is a typed [`LoadError`], never a panic.

pub mod crosscheck;
pub mod deliver;
pub mod dispatch;
mod fork;
pub mod host;
pub mod hostproc;
pub mod jit;
pub mod layout;
pub mod loader;
pub mod memory;
pub mod sandbox;
pub mod signals;
pub mod stack;
pub mod syscall;
pub mod sysnames;
pub mod sysroot;
pub mod threads;
pub mod timers;
pub mod vm;

pub use codecache::{CacheConfig, EvictionPolicy};
pub use crosscheck::{CrosscheckConfig, DIVERGENCE_EXIT_CODE, Divergence};
pub use jit::{
    BASELINE_RUNS, BASELINE_THRESHOLD, CodeTier, JitConfig, JitError, JitReport, JitStats,
    StoreReport, StoreSettings, program_id,
};
pub use loader::ElfError;
pub use memory::{GuestMemory, MemoryError};
pub use stack::StackError;
pub use syscall::ExecConfig;
pub use vm::{GuestExit, LoadError, RunOutcome, Vm, host_environment};
