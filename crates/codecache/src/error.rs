//! Typed errors of the code cache. Every fallible public call returns [`CacheError`];
//! no input reachable through the public API panics.

use thiserror::Error;

/// Why a cache operation failed.
#[derive(Debug, Error)]
pub enum CacheError {
    /// A [`crate::CacheConfig`] field is out of range; the message names it.
    #[error("invalid cache configuration: {0}")]
    InvalidConfig(String),
    /// `insert` was given zero bytes of code.
    #[error("cannot insert empty code")]
    EmptyCode,
    /// The code can never fit: it is larger than the whole executable arena.
    #[error("code of {size} bytes is larger than the cache's {capacity} bytes")]
    CodeTooLarge {
        /// Bytes the block needs (rounded up to the allocation granule).
        size: usize,
        /// Usable bytes of the arena.
        capacity: usize,
    },
    /// `u64::MAX` marks an empty jump-cache slot and cannot be used as a key.
    #[error("key {0:#x} is reserved")]
    ReservedKey(u64),
    /// The guest range is empty or reversed.
    #[error("invalid guest range [{lo:#x}, {hi:#x})")]
    InvalidRange {
        /// Lower bound (inclusive).
        lo: u64,
        /// Upper bound (exclusive).
        hi: u64,
    },
    /// Everything evictable was evicted, but the space (or entry slots) it freed is still
    /// waiting for an executor to pass a quiescent point. Announce quiescence (or take
    /// parked executors offline) and retry.
    #[error(
        "no space for {needed} bytes: {pending_bytes} bytes in {pending_entries} retired blocks wait for executors to pass a quiescent point"
    )]
    ReclaimPending {
        /// Bytes the block needs.
        needed: usize,
        /// Bytes retired but not yet reclaimable.
        pending_bytes: usize,
        /// Entries retired but not yet reclaimable.
        pending_entries: usize,
    },
    /// Creating or mapping the executable memory failed (memfd_create, ftruncate, mmap).
    #[error("executable memory: {0}")]
    ExecMemory(#[from] std::io::Error),
}
