//! The synchronisation primitives the lock-free protocols use, in one place so that
//! `--cfg loom` can swap them for loom's model-checked versions (`tests/loom.rs`).
//!
//! Under `cfg(loom)` the protocol atomics (index words, slot seqlocks and states, epochs,
//! jump-cache entries), the two mutexes and the grace-period wait's `yield_now` (so that
//! loom schedules the threads it waits for) are loom's; statistics and hints that no
//! protocol decision depends on ([`StatU64`]: hit/miss counters, access counts, the
//! logical clock) stay std atomics even then, which keeps the models small. `Arc` stays
//! std's: its reference count is not one of our protocols.

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, fence};
#[cfg(loom)]
pub(crate) use loom::sync::{Mutex, MutexGuard};
#[cfg(loom)]
pub(crate) use loom::thread::yield_now;

#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, fence};
#[cfg(not(loom))]
pub(crate) use std::sync::{Mutex, MutexGuard};
#[cfg(not(loom))]
pub(crate) use std::thread::yield_now;

pub(crate) use std::sync::atomic::Ordering;

/// A counter or hint outside every protocol (always a std atomic, even under loom).
pub(crate) type StatU64 = std::sync::atomic::AtomicU64;
/// A 32-bit hint outside every protocol (always a std atomic).
pub(crate) type StatU32 = std::sync::atomic::AtomicU32;
/// A writer-only count (always a std atomic).
pub(crate) type StatUsize = std::sync::atomic::AtomicUsize;
