//! Cache configuration: the original design's knobs (max_entries, max_memory_bytes,
//! cleanup_interval, hotness_decay_factor, warmup_size, policy) plus the jump-cache shape.
//! Invariant: a config accepted by [`CacheConfig::validate`] can be built without panicking.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::CacheError;

/// Which blocks leave the cache when it is full.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum EvictionPolicy {
    /// The original design: take a sample of five times as many candidates as must go from
    /// the cold (least recently used) end, score each by value = hotness × (1 + compile
    /// cost) / size, evict the worst fifth of the sample.
    Hotness,
    /// Least recently used, on the logical clock (one tick per insert); lazy: hits only
    /// store a timestamp, the ordering is repaired when a victim is chosen.
    Lru,
    /// First in, first out (DynamoRIO's default replacement), as a literal circular
    /// buffer: code is placed at a cursor that moves round the arena and wraps at its
    /// end; the blocks in the cursor's way are evicted, which are the oldest by
    /// construction. No free lists; a hole left by an invalidated block is reused when
    /// the cursor reaches it.
    Fifo,
    /// When full, evict everything (QEMU's `tb_flush`).
    FlushAll,
    /// Two regions (Hazelwood & Smith, S3-FIFO): new blocks enter a FIFO nursery (10 % of
    /// the entries); a block referenced while in the nursery is promoted into the hot
    /// region, a CLOCK (FIFO with second chance); blocks evicted unused from the nursery
    /// are remembered in a ghost list (`max_entries / 2` keys) and go straight to the hot
    /// region when re-inserted.
    Generational,
}

/// Configuration of a [`crate::UnifiedCodeCache`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CacheConfig {
    /// Most resident entries at once (default 10 000).
    pub max_entries: usize,
    /// Most bytes of executable memory, headers and padding included (default 100 MiB).
    pub max_memory_bytes: usize,
    /// How often [`crate::UnifiedCodeCache::maintain`] decays hotness (default 60 s). The
    /// system clock is read only by `maintain`, never per lookup.
    pub cleanup_interval: Duration,
    /// Multiplier applied to every entry's decayed access frequency each interval (0.99).
    pub hotness_decay_factor: f64,
    /// Logical ticks (inserts) over which a new entry's age term grows from 0 to ½ in the
    /// hotness score: young blocks are not trusted to be hot yet (default 1 000).
    pub warmup_size: usize,
    /// Eviction policy (default: [`EvictionPolicy::Generational`], see README for the
    /// measurements behind that choice).
    pub policy: EvictionPolicy,
    /// log2 of the number of entries of each executor's jump cache (default 12: 4096).
    pub jump_cache_bits: u32,
    /// Right shift applied to a key before masking it into the jump cache (default 1:
    /// guest instructions are at least 2-byte aligned, as RISC-V with the C extension).
    pub jump_cache_key_shift: u32,
    /// Bytes of executable memory committed when the cache is created (default 1 MiB),
    /// with entry slots for as many 128-byte blocks; the rest is committed as it is
    /// first used, 64 KiB of code or 1024 slots at a time. Committing ahead is cheaper
    /// per page than committing during inserts, but is paid even by a run that never
    /// uses the pages (vmjit, whose short runs use a few hundred KiB, sets 256 KiB).
    #[serde(default = "default_commit_at_creation")]
    pub commit_at_creation: usize,
}

fn default_commit_at_creation() -> usize {
    1 << 20
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self {
            max_entries: 10_000,
            max_memory_bytes: 100 * 1024 * 1024,
            cleanup_interval: Duration::from_secs(60),
            hotness_decay_factor: 0.99,
            warmup_size: 1000,
            policy: EvictionPolicy::Generational,
            jump_cache_bits: 12,
            jump_cache_key_shift: 1,
            commit_at_creation: default_commit_at_creation(),
        }
    }
}

/// Largest accepted `max_entries` (entry indices are 32-bit and the slot array is
/// allocated up front).
pub const MAX_ENTRIES_LIMIT: usize = 1 << 24;
/// Largest accepted `max_memory_bytes` (block offsets are 32-bit counts of 16-byte
/// granules).
pub const MAX_MEMORY_LIMIT: usize = 1 << 36;

impl CacheConfig {
    /// Checks every field; returns the first violation as [`CacheError::InvalidConfig`].
    pub fn validate(&self) -> Result<(), CacheError> {
        let bad = |m: &str| Err(CacheError::InvalidConfig(m.to_owned()));
        if self.max_entries == 0 {
            return bad("max_entries must be at least 1");
        }
        if self.max_entries > MAX_ENTRIES_LIMIT {
            return bad("max_entries must be at most 2^24");
        }
        if self.max_memory_bytes < crate::alloc::GRANULE {
            return bad("max_memory_bytes must be at least 16");
        }
        if self.max_memory_bytes > MAX_MEMORY_LIMIT {
            return bad("max_memory_bytes must be at most 64 GiB");
        }
        if !(self.hotness_decay_factor > 0.0 && self.hotness_decay_factor <= 1.0) {
            return bad("hotness_decay_factor must be in (0, 1]");
        }
        if self.cleanup_interval.is_zero() {
            return bad("cleanup_interval must be non-zero");
        }
        if self.jump_cache_bits == 0 || self.jump_cache_bits > 20 {
            return bad("jump_cache_bits must be in 1..=20");
        }
        if self.jump_cache_key_shift > 32 {
            return bad("jump_cache_key_shift must be at most 32");
        }
        Ok(())
    }
}
