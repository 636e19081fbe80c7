//! Statistics types (serde-serialisable) and the text diagnostic report.
//! Counters are snapshots: taken under the writer lock for writer-side numbers and by
//! relaxed reads of per-thread counters for hits and misses, so they may lag by a few
//! in-flight lookups.

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use crate::EvictionPolicy;

/// Evictions, by cause.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct EvictionCounts {
    /// To stay within `max_entries`.
    pub entries_limit: u64,
    /// To free bytes for a new block (`max_memory_bytes`).
    pub memory_limit: u64,
    /// Neighbours of the largest free hole evicted because free space was fragmented.
    pub fragmentation: u64,
    /// Entries removed by `FlushAll` flushes (policy or explicit `flush`).
    pub flushed: u64,
    /// Explicitly requested through `evict`.
    pub requested: u64,
}

/// Metadata of one resident entry (the original design's `CacheEntry`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CacheEntry {
    /// Key (guest address).
    pub key: u64,
    /// Executable address of the code.
    pub code_ptr: usize,
    /// Code length in bytes as inserted.
    pub code_size: usize,
    /// Approximate number of hits (shared index + flushed jump-cache hits).
    pub access_count: u64,
    /// Compilation cost given at insert (caller's unit, e.g. nanoseconds).
    pub compilation_cost: u64,
    /// Logical time (inserts so far) when inserted.
    pub created_at: u64,
    /// Logical time of the last recorded hit.
    pub last_access: u64,
    /// 0.4·frequency + 0.3·recency + 0.3·age, in [0, 1].
    pub hotness_score: f64,
    /// Estimated benefit of keeping it: hotness × compilation cost.
    pub execution_benefit: f64,
    /// Guest range the code was translated from, `[guest_start, guest_end)`.
    pub guest_start: u64,
    /// End of the guest range (exclusive).
    pub guest_end: u64,
}

/// A snapshot of the cache's counters.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CacheStats {
    /// Policy in force.
    pub policy: Option<EvictionPolicy>,
    /// Hits in executors' jump caches.
    pub l1_hits: u64,
    /// Hits in the shared index (lookups through executors after an L1 miss, plus direct
    /// `UnifiedCodeCache::lookup` calls).
    pub index_hits: u64,
    /// Lookups that found nothing.
    pub misses: u64,
    /// (l1_hits + index_hits) / all lookups; 0 when there were none.
    pub hit_rate: f64,
    /// Successful inserts (including replacements).
    pub inserts: u64,
    /// Inserts that replaced an existing key.
    pub replacements: u64,
    /// Evictions by cause.
    pub evictions: EvictionCounts,
    /// Entries removed by `invalidate_range` / `invalidate`.
    pub invalidations: u64,
    /// Whole-cache flushes.
    pub flushes: u64,
    /// Resident entries.
    pub entries: usize,
    /// Configured entry limit.
    pub max_entries: usize,
    /// Bytes allocated to resident blocks (rounded to 16-byte granules).
    pub bytes_in_use: usize,
    /// Highest `bytes_in_use + pending_reclaim_bytes` seen.
    pub peak_bytes_in_use: usize,
    /// Usable arena bytes (`max_memory_bytes` rounded down to 16).
    pub capacity_bytes: usize,
    /// Bytes free right now (not counting pending reclamation).
    pub free_bytes: usize,
    /// Largest free block.
    pub largest_free_block: usize,
    /// 1 − largest free block / free bytes.
    pub fragmentation: f64,
    /// Bytes retired but still possibly running in an executor.
    pub pending_reclaim_bytes: usize,
    /// Entries retired but not yet reclaimed.
    pub pending_reclaim_entries: usize,
    /// Entries whose memory has been reclaimed and can be reused.
    pub reclaimed_entries: u64,
    /// Sum of compilation costs of every insert.
    pub total_compilation_cost: u64,
    /// Sum of compilation costs of resident entries.
    pub resident_compilation_cost: u64,
    /// Registered executors.
    pub executors: usize,
    /// Global reclamation epoch.
    pub epoch: u64,
    /// Logical clock (one tick per insert).
    pub logical_clock: u64,
    /// Hotness decays applied.
    pub decays: u64,
    /// Hottest resident entries, hottest first (up to 10).
    pub hottest: Vec<CacheEntry>,
}

impl CacheStats {
    /// Human-readable multi-line report.
    pub fn report(&self) -> String {
        let mut s = String::new();
        let lookups = self.l1_hits + self.index_hits + self.misses;
        let mib = |b: usize| b as f64 / (1024.0 * 1024.0);
        let _ = writeln!(
            s,
            "code cache ({:?})",
            self.policy.unwrap_or(EvictionPolicy::Generational)
        );
        let _ = writeln!(
            s,
            "  lookups     {lookups}: {} L1 hits, {} index hits, {} misses (hit rate {:.2} %)",
            self.l1_hits,
            self.index_hits,
            self.misses,
            self.hit_rate * 100.0
        );
        let _ = writeln!(
            s,
            "  entries     {} / {} ; inserts {} (replacements {})",
            self.entries, self.max_entries, self.inserts, self.replacements
        );
        let _ = writeln!(
            s,
            "  memory      {:.2} MiB in use, peak {:.2} MiB, of {:.2} MiB; free {:.2} MiB, largest free block {:.2} MiB, fragmentation {:.1} %",
            mib(self.bytes_in_use),
            mib(self.peak_bytes_in_use),
            mib(self.capacity_bytes),
            mib(self.free_bytes),
            mib(self.largest_free_block),
            self.fragmentation * 100.0
        );
        let e = &self.evictions;
        let _ = writeln!(
            s,
            "  evictions   {} entry limit, {} memory limit, {} fragmentation, {} flushed, {} requested",
            e.entries_limit, e.memory_limit, e.fragmentation, e.flushed, e.requested
        );
        let _ = writeln!(
            s,
            "  removals    {} invalidated, {} flushes; reclaim: {} entries / {} bytes pending, {} reclaimed",
            self.invalidations,
            self.flushes,
            self.pending_reclaim_entries,
            self.pending_reclaim_bytes,
            self.reclaimed_entries
        );
        let _ = writeln!(
            s,
            "  compile     total cost {} (resident {}); executors {}; epoch {}; clock {}; decays {}",
            self.total_compilation_cost,
            self.resident_compilation_cost,
            self.executors,
            self.epoch,
            self.logical_clock,
            self.decays
        );
        if !self.hottest.is_empty() {
            let _ = writeln!(
                s,
                "  hottest     key                 hits      hotness  size  guest range"
            );
            for h in &self.hottest {
                let _ = writeln!(
                    s,
                    "              {:#018x} {:>9} {:>8.3} {:>5}  [{:#x}, {:#x})",
                    h.key, h.access_count, h.hotness_score, h.code_size, h.guest_start, h.guest_end
                );
            }
        }
        s
    }
}
