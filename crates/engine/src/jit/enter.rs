//! Entering translated code: the one place of the engine that jumps into host code
//! produced by `translate` and held by the code cache.
//!
//! **Invariants.**
//! - Translated blocks are compiled with chaining (Cranelift `tail` convention), so they
//!   are only ever entered through the [`Trampoline`], never called directly.
//! - The caller passes a code address obtained from its [`codecache::Executor`] since its
//!   last quiescent point, and announces no quiescent point while the call runs (the
//!   borrow of the `CodeRef` in the dispatch loop spans the call). Chained jumps only
//!   follow that executor's jump cache, whose code addresses the cache reclaims only
//!   after the executor's next quiescent point.
//!
//! This is one of the three modules of the engine with `unsafe` (with `memory` and
//! `host`).

use translate::exec_mem::ExecBuf;
use translate::{JitContext, TranslateError, Translator};

/// The host code that enters a chained block (`extern "C" fn(ctx, block) -> status`),
/// in its own read+execute mapping.
#[derive(Debug)]
pub struct Trampoline {
    buf: ExecBuf,
}

// SAFETY: the mapping is immutable read+execute memory owned by `buf`; nothing in it
// depends on the thread that created it, so moving the owner to another thread is sound.
unsafe impl Send for Trampoline {}

// SAFETY: the mapping is never written after `new`, so any number of threads may run
// the code in it at once (each with its own context).
unsafe impl Sync for Trampoline {}

/// Why the trampoline could not be built.
#[derive(Debug, thiserror::Error)]
pub enum TrampolineError {
    #[error("cannot compile the JIT trampoline: {0}")]
    Translate(#[from] TranslateError),
    #[error("cannot map the JIT trampoline executable: {0}")]
    Map(#[from] std::io::Error),
}

impl Trampoline {
    /// Compiles the trampoline with `translator` (which must have chaining on, as every
    /// block it will enter) and maps it.
    pub fn new(translator: &mut Translator) -> Result<Self, TrampolineError> {
        let code = translator.trampoline()?;
        Ok(Trampoline {
            buf: ExecBuf::new(&code.code)?,
        })
    }

    /// Runs the translated block at `block` (and whatever it chains to) on `ctx`;
    /// returns the block's status (`translate::status`).
    ///
    /// # Safety
    /// `block` must be the entry of a block translated with chaining for this host by
    /// the translator configuration this trampoline came from, still resident for the
    /// caller's executor (looked up since its last quiescent point); `ctx` must be built
    /// from the guest memory's base pointer, permission table and `GUEST_SPACE`, with
    /// `translate::helpers::FLAT_HELPERS`, and its jump cache fields must describe the
    /// same executor's jump cache. No Rust reference to guest memory or the permission
    /// table may be used while the call runs.
    pub unsafe fn call(&self, ctx: &mut JitContext, block: *const u8) -> u64 {
        // SAFETY: forwarded from the caller's contract above, which is the contract of
        // `ExecBuf::call_trampoline` (trampoline code in `buf`, a chained block at
        // `block`, a valid context, jump-cache code kept mapped by QSBR).
        unsafe { self.buf.call_trampoline(ctx, block) }
    }
}
