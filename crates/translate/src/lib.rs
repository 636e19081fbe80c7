//! Translation of RV64GC guest code into position-independent host code with Cranelift.
//!
//! A [`Translator`] turns a decoded basic block (`&[(pc, rv64::Insn)]`), or a region of
//! several, into a [`Compiled`] function `extern "C" fn(ctx: *mut JitContext) -> u64`.
//! The function runs the guest code against the state in [`JitContext`] and returns a status from
//! [`context::status`]: `CONTINUE` (go on at `ctx.cpu.pc`) or an exit reason. Before it
//! returns, `cpu.pc` and `cpu.instret` are exactly what `rv64`'s interpreter would leave
//! (on a fault, pc is the faulting instruction and only the instructions before it
//! count).
//!
//! **Architecture invariants**
//! - Translated bytes contain no absolute address and need no relocation: guest
//!   registers, memory base, permission table and helpers are all reached through `ctx`
//!   (helpers by `call_indirect` through [`HelperTable`]). Checked after every compile.
//! - RV64I and M, loads/stores (with the sandbox check inline), branches and jumps,
//!   float moves and sign injection, and `fadd.d`/`fsub.d` when rounding to nearest
//!   (with `rv64::fpu`'s exactness test) are inline; everything else (A, the rest of
//!   F/D, Zicsr) runs through the embedder's `exec_one`
//!   helper, which uses `rv64::execute`, so its semantics are the interpreter's by
//!   construction; `helpers::GuestView` makes AMOs and `sc` host atomic
//!   read-modify-writes, so they hold across host threads. `fence` is inline: an
//!   `mfence` only for one that orders stores before loads (the one order x86-TSO does
//!   not keep), otherwise nothing but a barrier to Cranelift's optimiser (see
//!   `rv64::exec`'s notes on ordering). A memory access that fails the inline check (a fault, or the rare
//!   access the permission table's fast bits do not cover) leaves the function with
//!   [`status::SLOW_PATH`]: the embedder executes that instruction with its
//!   interpreter and goes on.
//! - [`Baseline`] translates a block without Cranelift, by templates (microseconds
//!   instead of ~100 µs; plainer code), for the embedder to run while the Cranelift
//!   translation is made. Same contract, same chaining convention; blocks with
//!   instructions it does not handle are refused.
//! - [`Translator::translate_region`] compiles several blocks as one unit (tier 2):
//!   direct transfers between them stay inside the function, bounded by
//!   `ctx.chain_budget`.
//! - Optional chaining ([`TranslatorConfig::chain`]): a block that continues probes the
//!   executor's jump cache through `ctx` and tail-calls (`return_call_indirect`, Cranelift
//!   `tail` convention) the next block while `ctx.chain_budget` lasts; otherwise it
//!   returns. Chained blocks are entered through [`Translator::trampoline`].
//! - `unsafe` lives only in [`helpers`] (guest memory through the context's raw
//!   pointers, with host atomics, as other threads may share it) and
//!   [`exec_mem`] (test-support executable mappings). Only code that owns executable
//!   memory (the engine, tests) jumps into translated code.
//!
//! **Embedding** (the engine): build one [`JitContext`] per executor from the guest
//! memory's layout (`JitContext::new(cpu, mem.base_ptr(), mem.perm_table_ptr(),
//! GUEST_SPACE, &helpers::FLAT_HELPERS)`; `engine::memory::GuestMemory` has exactly the
//! layout and checks of [`helpers::GuestView`]), or supply an own `exec_one` built on
//! [`helpers::exec_one_with`] (with `ctx.embedder` pointing at the embedder's state).
//! After a call, `ctx.exit_for(status)` gives the `rv64::Exit` to handle, if any.
//!
//! ```
//! use translate::{JitContext, Translator, exec_mem::ExecBuf, helpers::FLAT_HELPERS};
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let insn = rv64::decode(0x0010_0093)?; // addi x1, x0, 1
//! let ebreak = rv64::decode(0x0010_0073)?;
//! let compiled = Translator::new()?.translate(&[(0x1000, insn), (0x1004, ebreak)])?;
//! let code = ExecBuf::new(&compiled.code)?;
//! let mut mem = vec![0u8; 1 << 16];
//! let perms = vec![0u8; 17]; // 16 pages (all unmapped) and the sentinel
//! let mut ctx = JitContext::new(rv64::Cpu::new(), mem.as_mut_ptr(), perms.as_ptr(),
//!     mem.len() as u64, &FLAT_HELPERS);
//! // SAFETY: the context's pointers cover the memory and table declared.
//! let status = unsafe { code.call(&mut ctx) };
//! assert_eq!(ctx.exit_for(status), Some(rv64::Exit::Ebreak));
//! assert_eq!(ctx.cpu.x[1], 1);
//! # Ok(()) }
//! ```

pub mod baseline;
pub mod context;
mod emit;
pub mod exec_mem;
pub mod helpers;
mod translator;

pub use baseline::{Baseline, BaselineConfig};
pub use context::{HelperTable, JitContext, JumpCacheShape, status};
pub use emit::runs_in_helper;
pub use translator::{
    Compiled, MAX_BLOCK_INSNS, OptLevel, TranslateError, Translator, TranslatorConfig,
};
