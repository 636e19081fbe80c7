//! # codecache — a unified code cache for JITs
//!
//! An engine-agnostic store of executable code, found by a 64-bit key (a guest address) in
//! nanoseconds from many threads, bounded in entries and bytes, evicting by policy, and
//! reclaiming memory only when no executor can still be running it. It knows nothing
//! about any guest ISA or code generator: code goes in as position-independent bytes.
//!
//! ```
//! use codecache::{CacheConfig, InsertMeta, UnifiedCodeCache};
//! let cache = UnifiedCodeCache::new(CacheConfig::default())?;
//! cache.insert_with(0x1000, &[0xc3], InsertMeta { guest_start: 0x1000, guest_end: 0x1010, compile_cost: 5 })?;
//! let mut exec = cache.register_executor(); // one per guest thread
//! let code = exec.lookup(0x1000).expect("resident");
//! assert_eq!(code.size(), 1);
//! // ... call code.as_ptr() ...
//! exec.quiescent(); // from the dispatch loop: no reference to cached code is held here
//! assert_eq!(cache.invalidate_range(0x1000, 0x1004), 1);
//! assert!(exec.lookup(0x1000).is_none());
//! # Ok::<(), codecache::CacheError>(())
//! ```
//!
//! ## Design and invariants
//! - **Executable memory it owns** (`exec_mem`): one memfd mapped twice, RW to copy code
//!   in, RX to run it. No mapping is ever writable and executable (W^X). The first
//!   256 KiB are committed at creation, the rest as the arena fills. Blocks come from a
//!   segregated-fit allocator with coalescing (`alloc`; space freed by any block is
//!   reused for blocks of any size) or, under `Fifo`, from a circular buffer (`ring`:
//!   code goes at a cursor that wraps round the arena, evicting the oldest blocks in its
//!   way, as DynamoRIO). Fragmentation is reported.
//! - **Lookups never lock and never miss a resident key** (`index`): an open-addressing
//!   table of atomic words read without locks; tombstones keep probe chains intact,
//!   replacement is one atomic store, and the rare writer operations that could make a
//!   reader miss (table rebuild, slot recycling) bump a sequence number the reader
//!   re-checks before reporting a miss. Writers serialise on one mutex; readers never
//!   wait for it.
//! - **Per-executor L1 jump cache** ([`Executor`]): direct-mapped, `#[repr(C)]`
//!   ([`JumpCacheEntry`], [`JumpCacheLayout`]) so JIT code can probe it inline; kept
//!   coherent by writers clearing the key in every executor's table when they retire an
//!   entry (fence-paired with the owner's fill check). The hit path checks no online
//!   flag: going offline parks the table so that every lookup misses it until the slow
//!   path has come back online (the argument is in the `executor` module doc).
//! - **Safe reclamation** (QSBR, as QEMU's RCU): retiring an entry stamps it with a new
//!   global epoch; its memory and slot are reused only when every online executor has
//!   announced a later epoch with [`Executor::quiescent`]. Offline or dropped executors do
//!   not block reclamation. Inserting never waits for executors: if the only space left is
//!   retired-but-not-reclaimable, it returns [`CacheError::ReclaimPending`].
//! - **Grace periods** ([`UnifiedCodeCache::synchronize`], [`Executor::synchronize`]):
//!   wait until every executor that was online when the call began has passed a
//!   quiescent point since, gone offline, or been dropped (RCU's `synchronize_rcu`), on
//!   the same epochs; see "Invalidation across threads" below.
//! - **Bounds**: resident entries ≤ `max_entries`; resident + pending bytes ≤
//!   `max_memory_bytes` (the arena is exactly that big).
//! - **Invalidation** by guest range (`ranges`): live entries are indexed by the 4 KiB
//!   guest page their range starts in, plus a histogram of range lengths, so
//!   `invalidate_range` of a small range costs a few hash probes plus the hits, not a
//!   scan of every entry.
//! - **Model-checked**: the protocol atomics and mutexes go through `sync`, which is loom
//!   under `--cfg loom`; `tests/loom.rs` checks jump-cache coherence, the QSBR handshake
//!   and index replacement / slot recycling exhaustively on small scenarios.
//! - **Hotness** on a logical clock (one tick per insert; no system clock per lookup):
//!   0.4·frequency + 0.3·recency + 0.3·age, with frequency decayed by
//!   `hotness_decay_factor` every `cleanup_interval` (checked in [`UnifiedCodeCache::maintain`]
//!   and every 256 inserts).
//! - **Eviction** by [`EvictionPolicy`]; the default, `Generational`, had the lowest miss
//!   ratio of the policies on the crate's pressure benchmark (see README.md).
//!
//! ## Invalidation across threads
//!
//! `invalidate_range` guarantees that no *lookup* returns the removed blocks once it has
//! returned, but another executor may at that moment be running one of them (looked up
//! earlier; chained code returns to its dispatcher only every so often), and may go on
//! running it until its next quiescent point. Linux promises more to a guest that calls
//! `riscv_flush_icache`, `munmap` or `mprotect` (or runs `fence.i`): once the call
//! returns, no thread runs code from the old bytes. The engine gets that by waiting for
//! a grace period after invalidating:
//!
//! ```
//! # use codecache::{CacheConfig, InsertMeta, UnifiedCodeCache};
//! # let cache = UnifiedCodeCache::new(CacheConfig::default())?;
//! # cache.insert_with(0x1000, &[0xc3], InsertMeta { guest_start: 0x1000, guest_end: 0x1010, compile_cost: 5 })?;
//! let mut exec = cache.register_executor(); // this guest thread's executor
//! // ... the guest calls munmap(0x1000, 0x1000) ...
//! cache.invalidate_range(0x1000, 0x2000);
//! exec.synchronize(); // every other online executor has passed a quiescent point
//! // no executor runs a block translated from [0x1000, 0x2000) any more
//! # Ok::<(), codecache::CacheError>(())
//! ```
//!
//! **Invariant.** After `invalidate_range(lo, hi)` returns and then `synchronize()`
//! returns (called by the same thread, or ordered after it), no executor runs a block
//! translated from `[lo, hi)`: neither one it was already running nor one it looks up
//! later. The same holds for whatever `invalidate`, `flush`, `evict` or a replacing
//! insert removed before the `synchronize` call. It holds when the embedder:
//!
//! 1. announces [`Executor::quiescent`] only at points where its thread runs no
//!    translated code of this cache and holds no code reference: from the dispatch loop,
//!    never from a helper that translated code called (the borrow checker enforces the
//!    second half for [`CodeRef`]s, not for raw pointers taken from them);
//! 2. calls [`Executor::offline`] before blocking (a system call that may block, a futex
//!    wait, a sleep) and likewise only with no translated code on its stack; an online
//!    executor that stops announcing holds every `synchronize` back (an offline one
//!    never does);
//! 3. runs cached code only through an [`Executor`] (code from
//!    [`UnifiedCodeCache::lookup`] is not covered), and lets translated code reach other
//!    blocks only through its executor's jump cache or a lookup, never through a direct
//!    jump patched into another block (the cache does not unlink such jumps);
//! 4. does not insert translations of the old bytes after invalidating: a translation
//!    whose bytes were read before the invalidation must be dropped, not inserted (the
//!    cache cannot know which bytes a block came from).
//!
//! **Who may call it.** [`UnifiedCodeCache::synchronize`] waits for every online
//! executor, the calling thread's own included: call it from a thread without an online
//! executor (a compile thread, or after [`Executor::offline`]). A thread that owns an
//! online executor calls [`Executor::synchronize`], which takes that executor out of the
//! grace period for the duration of the call (it holds no code: `&mut self`) and brings
//! it back online, through a quiescent point, before returning; so executors
//! synchronizing at the same time never wait for each other.
//! [`UnifiedCodeCache::synchronize_timeout`] and [`Executor::synchronize_timeout`] give
//! up after a timeout (a watchdog for an executor stuck online).
//!
//! **Cost.** One epoch bump (an atomic RMW on a shared line), a snapshot of the
//! registered executors under their lock (the lookup and quiescent paths never take
//! it), then one load per executor still waited for per round: spinning briefly, then
//! yielding, then sleeping with exponential backoff from 16 µs to 1 ms. Nothing is added
//! to `lookup` or `quiescent`; each executor's next `quiescent` reads the bumped epoch
//! (one cache miss).
//!
//! ## Costs
//! | feature | cost |
//! |---|---|
//! | L1 hit | shift + mask (the power-of-two table proves the bound), key load + compare (and a register compare rejecting `EMPTY_KEY`), code/size loads, one plain increment of the entry's own `hits`; no online check, no atomic RMW, no shared write; the miss path returns in registers |
//! | shared-index hit | seq + table-selector + table-word loads, then the entry's slot line with a seqlock re-check; plain stores to a per-thread counter, to the reference bit (only when clear), to the hit count (exact below 16, Morris-sampled above) and to `last_access` (only when the logical clock moved) |
//! | per configured entry | 2 entry slots (64 B each, room for retired entries) + 2 writer metadata records (≤ 128 B each, asserted by a unit test) + 2 range-index nodes (24 B each) + 2 tables × 2–4 words × 8 B + up to 4 allocator block records (32 B each); code is rounded up to 16 B |
//! | per executor | 32 B × 2^`jump_cache_bits` (128 KiB by default) |
//! | stats | per-thread counters; access counts are approximate (Morris-sampled above 16; concurrent hits may drop increments) |
//! | insert | writer mutex; hash-table probe and publish, allocator or ring placement, code copy, O(1) range-index insert; page population only past the first MiB |
//! | `invalidate_range(lo, hi)` | one hash probe per 4 KiB page from `lo - longest live range` to `hi`, plus the hits; falls back to a scan of the slots when that span is larger |
//! | `synchronize()` | one atomic RMW, the executors lock once, one load per executor per round until each has quiesced; sleeps (16 µs doubling to 1 ms) after 64 spinning and 16 yielding rounds; nothing on the lookup or quiescent paths |

mod alloc;
mod config;
mod error;
mod exec_mem;
mod executor;
mod grace;
mod icache;
mod index;
mod policy;
mod ranges;
mod ring;
mod stats;
mod sync;
#[cfg(not(loom))]
mod zeroed;

use std::cell::Cell;
use std::collections::VecDeque;
use std::marker::PhantomData;
use std::ptr::NonNull;
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::time::{Duration, Instant};

pub use config::{CacheConfig, EvictionPolicy, MAX_ENTRIES_LIMIT, MAX_MEMORY_LIMIT};
pub use error::CacheError;
pub use executor::{EMPTY_KEY, Executor, JumpCacheEntry, JumpCacheLayout};
pub use stats::{CacheEntry, CacheStats, EvictionCounts};

use alloc::{Allocator, Arena, BlockId, GRANULE};
use exec_mem::ExecMemory;
use executor::ExecutorSlot;
use index::{Index, RETIRED, Slot, WriteToken};
use policy::{Ctx, Meta, PolicyState};
use ranges::RangeIndex;
use ring::{Place, Ring};
use sync::{AtomicU64, Mutex, MutexGuard, Ordering, StatU64, fence};

/// A reference to cached executable code.
///
/// From [`Executor::lookup`] it may be called until that executor's next quiescent point
/// (the borrow enforces it). From [`UnifiedCodeCache::lookup`] / `insert` (no executor)
/// the address is only guaranteed to stay executable while no other thread evicts,
/// invalidates or replaces the key: use an [`Executor`] to run code concurrently with
/// writers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CodeRef<'a> {
    /// Never null: lets `Option<CodeRef>` use the niche (24 bytes, fewer stores).
    ptr: NonNull<u8>,
    size: u32,
    key: u64,
    _life: PhantomData<&'a ()>,
}

impl CodeRef<'_> {
    /// Executable address of the first byte of the code.
    pub fn as_ptr(&self) -> *const u8 {
        self.ptr.as_ptr()
    }
    /// Code length in bytes (as inserted).
    pub fn size(&self) -> usize {
        self.size as usize
    }
    /// The key it was found or inserted under.
    pub fn key(&self) -> u64 {
        self.key
    }
}

/// A published block's address as a `NonNull` (the arena is never at address 0).
pub(crate) fn nonnull(addr: usize) -> Result<NonNull<u8>, CacheError> {
    NonNull::new(addr as *mut u8)
        .ok_or_else(|| CacheError::ExecMemory(std::io::Error::other("null code address")))
}

/// Metadata given with an insert.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct InsertMeta {
    /// Start of the guest range the code was translated from (inclusive).
    pub guest_start: u64,
    /// End of the guest range (exclusive); must be greater than `guest_start`.
    pub guest_end: u64,
    /// What it cost to compile (any unit; nanoseconds suggested). Weighs in `Hotness`.
    pub compile_cost: u64,
}

#[repr(align(64))]
#[derive(Default)]
struct Stripe {
    hits: StatU64,
    misses: StatU64,
}

const STRIPES: usize = 16;
static NEXT_STRIPE: AtomicUsize = AtomicUsize::new(0);
thread_local! {
    static STRIPE: Cell<usize> = const { Cell::new(usize::MAX) };
}

#[inline]
fn stripe() -> usize {
    STRIPE.with(|s| {
        let v = s.get();
        if v != usize::MAX {
            return v;
        }
        let n = NEXT_STRIPE.fetch_add(1, Ordering::Relaxed) % STRIPES;
        s.set(n);
        n
    })
}

#[derive(Default)]
pub(crate) struct Departed {
    pub(crate) l1_hits: StatU64,
    pub(crate) index_hits: StatU64,
    pub(crate) misses: StatU64,
}

/// State shared by the cache handle and its executors.
pub(crate) struct Shared {
    pub(crate) config: CacheConfig,
    pub(crate) index: Index,
    /// Logical clock: one tick per insert (a hint: no protocol depends on it).
    pub(crate) clock: StatU64,
    /// Global reclamation epoch (starts at 1; 0 means "offline" in executor slots).
    pub(crate) epoch: AtomicU64,
    executors: Mutex<Vec<Arc<ExecutorSlot>>>,
    writer: Mutex<Writer>,
    stripes: Box<[Stripe]>,
    pub(crate) departed: Departed,
    /// Device and inode of the file behind the executable memory.
    code_file: (u64, u64),
}

/// The entry slots not in use: freed ones (reused first, last freed first) and the
/// never-used tail, handed out lowest first. The tail is a counter, not a list, so a
/// cache sized for many entries touches no memory for the slots a run never uses.
struct FreeSlots {
    recycled: Vec<u32>,
    fresh: u32,
    total: u32,
    /// Slots below this were committed at creation.
    committed: u32,
}

impl FreeSlots {
    fn new(total: usize, committed: usize) -> Self {
        FreeSlots {
            recycled: Vec::new(),
            fresh: 0,
            total: u32::try_from(total).unwrap_or(u32::MAX),
            committed: u32::try_from(committed).unwrap_or(u32::MAX),
        }
    }

    fn is_empty(&self) -> bool {
        self.recycled.is_empty() && self.fresh == self.total
    }

    /// The slot `pop` takes next.
    fn last(&self) -> Option<u32> {
        match self.recycled.last() {
            Some(&s) => Some(s),
            None => (self.fresh < self.total).then_some(self.fresh),
        }
    }

    /// Takes the slot `last` names; returns the first slot of a chunk of never-used
    /// slots to commit when this one starts a new chunk.
    fn pop(&mut self) -> Option<u32> {
        if self.recycled.pop().is_none() && self.fresh < self.total {
            let started = self.fresh;
            self.fresh += 1;
            return (started >= self.committed && started.is_multiple_of(index::SLOT_CHUNK))
                .then_some(started);
        }
        None
    }

    fn push(&mut self, slot: u32) {
        self.recycled.push(slot);
    }
}

/// Writer-side state, behind the writer mutex.
struct Writer {
    token: WriteToken,
    mem: ExecMemory,
    alloc: Arena,
    meta: Vec<Meta>,
    free_slots: FreeSlots,
    /// (epoch, slot) in epoch order.
    retired: VecDeque<(u64, u32)>,
    /// Retired in the current operation, not yet stamped.
    batch: Vec<u32>,
    policy: PolicyState,
    live: usize,
    bytes_in_use: usize,
    peak_bytes: usize,
    pending_bytes: usize,
    inserts: u64,
    replacements: u64,
    evictions: EvictionCounts,
    invalidations: u64,
    flushes: u64,
    reclaimed: u64,
    total_cost: u64,
    resident_cost: u64,
    decays: u64,
    last_decay: Instant,
    /// Live entries by guest range (`invalidate_range` visits only candidates).
    ranges: RangeIndex,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Cause {
    Entries,
    Memory,
    Fragmentation,
    Flush,
    Requested,
    Invalidated,
    Replaced,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding a lock would be a bug; recover the data rather than spread it.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Shared {
    /// Takes the slot `w.free_slots.last()` names, committing the next chunk of slot
    /// memory when the never-used tail reaches it.
    fn take_slot(&self, w: &mut Writer) {
        if let Some(first) = w.free_slots.pop() {
            self.index.commit_slots(first as usize);
        }
    }

    pub(crate) fn lock_executors(&self) -> MutexGuard<'_, Vec<Arc<ExecutorSlot>>> {
        lock(&self.executors)
    }

    /// Records a shared-index hit without serialising readers: plain relaxed stores, and
    /// ever fewer of them as an entry gets hotter, so a hot entry's cache line stays
    /// shared between cores. The reference bit is written only when clear. Counts below
    /// 16 are exact; above, a hit is sampled with probability `1/step` (chosen by hashing
    /// the caller's per-thread counter `rnd`) and then adds `step = 2^floor(log2(count))`
    /// (a Morris counter): the expected count stays exact and an entry's line is written
    /// about 16 + log2(count) times in total. The first test passes one lookup in 16, so
    /// the branch is cheap to predict. `last_access` is written only when the logical
    /// clock has moved.
    #[inline(always)]
    pub(crate) fn record_hit(&self, slot: &Slot, rnd: u64) {
        if slot.referenced.load(Ordering::Relaxed) == 0 {
            slot.referenced.store(1, Ordering::Relaxed);
        }
        let c = slot.access_count.load(Ordering::Relaxed);
        if c < 16 {
            slot.access_count.store(c + 1, Ordering::Relaxed);
        } else {
            let h = rnd.wrapping_mul(0x9E37_79B9_7F4A_7C15);
            if h >> 60 == 0 {
                let step = 1u64 << (63 - c.leading_zeros());
                if (h >> 20) & (step / 16 - 1) == 0 {
                    slot.access_count
                        .store(c.wrapping_add(step), Ordering::Relaxed);
                }
            }
        }
        let now = self.clock.load(Ordering::Relaxed);
        if slot.last_access.load(Ordering::Relaxed) != now {
            slot.last_access.store(now, Ordering::Relaxed);
        }
    }

    fn ctx<'a>(&'a self, w: &'a mut Writer) -> (Ctx<'a>, &'a mut PolicyState) {
        let now = self.clock.load(Ordering::Relaxed);
        let live = w.live;
        (
            Ctx {
                meta: &mut w.meta,
                slots: &self.index.slots,
                now,
                live,
                warmup: self.config.warmup_size as f64,
            },
            &mut w.policy,
        )
    }

    /// Removes a live entry from the index (unless `unpublished`) and retires it.
    fn retire(&self, w: &mut Writer, slot: u32, cause: Cause, unpublished: bool) {
        let Some(m) = w.meta.get_mut(slot as usize) else {
            return;
        };
        if !m.live {
            return;
        }
        if !unpublished
            && let Some((pos, s)) = self.index.find(&w.token, m.key)
            && s == slot
        {
            self.index.remove(&w.token, pos);
        }
        m.live = false;
        w.policy.on_remove(m);
        w.ranges.remove(slot);
        w.live -= 1;
        w.bytes_in_use -= m.size_bytes;
        w.pending_bytes += m.size_bytes;
        w.resident_cost = w.resident_cost.saturating_sub(m.compile_cost);
        self.index.slots[slot as usize]
            .state
            .store(RETIRED, Ordering::SeqCst);
        w.batch.push(slot);
        let e = &mut w.evictions;
        match cause {
            Cause::Entries => e.entries_limit += 1,
            Cause::Memory => e.memory_limit += 1,
            Cause::Fragmentation => e.fragmentation += 1,
            Cause::Flush => e.flushed += 1,
            Cause::Requested => e.requested += 1,
            Cause::Invalidated => w.invalidations += 1,
            Cause::Replaced => {}
        }
    }

    /// Clears retired keys from every jump cache, stamps the batch with a new epoch, and
    /// reclaims whatever every online executor has moved past.
    fn commit_and_reclaim(&self, w: &mut Writer) {
        let execs = self.lock_executors();
        if !w.batch.is_empty() {
            fence(Ordering::SeqCst);
            let clear_all = execs
                .first()
                .is_some_and(|x| w.batch.len() > x.l1.len() / 4);
            for x in execs.iter() {
                if clear_all {
                    for e in x.l1.iter() {
                        e.key.store(EMPTY_KEY, Ordering::Relaxed);
                    }
                } else {
                    let shift = self.config.jump_cache_key_shift;
                    for &s in &w.batch {
                        let key = w.meta[s as usize].key;
                        let e = x.l1.entry(key >> shift);
                        if e.key.load(Ordering::Relaxed) == key {
                            e.key.store(EMPTY_KEY, Ordering::Relaxed);
                        }
                    }
                }
            }
            let epoch = self.epoch.fetch_add(1, Ordering::SeqCst) + 1;
            for s in w.batch.drain(..) {
                w.retired.push_back((epoch, s));
            }
        }
        if w.retired.is_empty() {
            return;
        }
        // Dekker pair with `Executor::go_online` (own epoch store; SeqCst fence; global
        // epoch load): either we see it online here, or it sees the epoch bumped above
        // (after the jump-cache clears and index removals) once it is back online.
        fence(Ordering::SeqCst);
        let min = execs
            .iter()
            .map(|x| x.epoch.load(Ordering::SeqCst))
            .filter(|&e| e != 0)
            .min()
            .unwrap_or(u64::MAX);
        drop(execs);
        while let Some(&(e, s)) = w.retired.front() {
            if e > min {
                break;
            }
            w.retired.pop_front();
            let m = &mut w.meta[s as usize];
            if let Some(b) = m.block.take() {
                w.alloc.free(b);
            }
            w.pending_bytes -= m.size_bytes;
            self.index.slots[s as usize]
                .state
                .store(index::FREE, Ordering::Relaxed);
            w.free_slots.push(s);
            w.reclaimed += 1;
        }
    }

    fn flush_all(&self, w: &mut Writer, cause: Cause) {
        self.index.clear(&w.token);
        for s in 0..w.meta.len() as u32 {
            if w.meta[s as usize].live {
                self.retire(w, s, cause, true);
            }
        }
        w.flushes += 1;
        self.commit_and_reclaim(w);
    }

    /// Evicts one policy victim; false if nothing is left to evict.
    fn evict_one(&self, w: &mut Writer, cause: Cause) -> bool {
        if w.policy.is_flush_all() {
            if w.live == 0 {
                return false;
            }
            self.flush_all(w, Cause::Flush);
            return true;
        }
        let (mut ctx, policy) = self.ctx(w);
        let victim = policy.victim(&mut ctx);
        match victim {
            Some(v) => {
                self.retire(w, v, cause, false);
                true
            }
            None => false,
        }
    }

    /// Finds an entry slot and a block of `bytes`, evicting as needed.
    fn make_room(
        &self,
        w: &mut Writer,
        bytes: usize,
        new_entry: bool,
    ) -> Result<(u32, BlockId), CacheError> {
        if matches!(w.alloc, Arena::Ring(_)) {
            return self.make_room_ring(w, bytes, new_entry);
        }
        let max_entries = self.config.max_entries;
        loop {
            let entries_ok = !new_entry || w.live < max_entries;
            if w.free_slots.is_empty() || !entries_ok {
                self.commit_and_reclaim(w);
            }
            if entries_ok && let Some(slot) = w.free_slots.last() {
                if let Some(b) = w.alloc.fit_alloc(bytes, slot) {
                    self.take_slot(w);
                    return Ok((slot, b));
                }
                // Reclaiming pushes slots: take the (possibly new) last one as the owner.
                self.commit_and_reclaim(w);
                if let Some(slot) = w.free_slots.last()
                    && let Some(b) = w.alloc.fit_alloc(bytes, slot)
                {
                    self.take_slot(w);
                    return Ok((slot, b));
                }
            }
            let pending = |w: &Writer| CacheError::ReclaimPending {
                needed: bytes,
                pending_bytes: w.pending_bytes,
                pending_entries: w.retired.len() + w.batch.len(),
            };
            if !entries_ok {
                if !self.evict_one(w, Cause::Entries) {
                    return Err(pending(w));
                }
                continue;
            }
            if w.free_slots.is_empty() {
                // Every spare slot is retired and waits for executors.
                return Err(pending(w));
            }
            if w.alloc.free_bytes() + w.pending_bytes < bytes {
                if !self.evict_one(w, Cause::Memory) {
                    return Err(if w.pending_bytes > 0 {
                        pending(w)
                    } else {
                        CacheError::CodeTooLarge {
                            size: bytes,
                            capacity: w.alloc.capacity_bytes(),
                        }
                    });
                }
                continue;
            }
            if w.pending_bytes > 0 {
                return Err(pending(w));
            }
            // Enough free bytes, but split: evict the neighbour of the largest hole.
            match w.alloc.fit_neighbour_of_largest_hole() {
                Some((_, owner)) if w.meta.get(owner as usize).is_some_and(|m| m.live) => {
                    self.retire(w, owner, Cause::Fragmentation, false);
                }
                Some(_) => {
                    // Unreachable by construction (no pending blocks here, so every used
                    // block is live); refuse rather than loop.
                    return Err(pending(w));
                }
                None => {
                    return Err(CacheError::CodeTooLarge {
                        size: bytes,
                        capacity: w.alloc.capacity_bytes(),
                    });
                }
            }
        }
    }

    /// `make_room` for the `Fifo` circular buffer: the block goes at the cursor; the
    /// oldest blocks in its way are evicted (and must be reclaimable: otherwise
    /// `ReclaimPending`).
    fn make_room_ring(
        &self,
        w: &mut Writer,
        bytes: usize,
        new_entry: bool,
    ) -> Result<(u32, BlockId), CacheError> {
        let pending = |w: &Writer| CacheError::ReclaimPending {
            needed: bytes,
            pending_bytes: w.pending_bytes,
            pending_entries: w.retired.len() + w.batch.len(),
        };
        while new_entry && w.live >= self.config.max_entries {
            if !self.evict_one(w, Cause::Entries) {
                return Err(pending(w));
            }
        }
        if w.free_slots.is_empty() {
            self.commit_and_reclaim(w);
        }
        loop {
            // Re-read each round: reclaiming pushes slots, and the owner must be the one
            // we pop.
            let Some(slot) = w.free_slots.last() else {
                return Err(pending(w));
            };
            let Arena::Ring(ring) = &mut w.alloc else {
                return Err(pending(w));
            };
            match ring.place(bytes, slot) {
                Place::Placed(b) => {
                    self.take_slot(w);
                    return Ok((slot, b));
                }
                Place::TooLarge => {
                    return Err(CacheError::CodeTooLarge {
                        size: bytes,
                        capacity: w.alloc.capacity_bytes(),
                    });
                }
                Place::Blocked(b) => {
                    let owner = ring.owner(b);
                    if w.meta.get(owner as usize).is_some_and(|m| m.live) {
                        self.retire(w, owner, Cause::Memory, false);
                    }
                    self.commit_and_reclaim(w);
                    if matches!(&w.alloc, Arena::Ring(r) if r.is_held(b)) {
                        // Retired, but an executor may still be running it.
                        return Err(pending(w));
                    }
                }
            }
        }
    }

    pub(crate) fn insert_impl(
        &self,
        key: u64,
        code: &[u8],
        meta: InsertMeta,
        rejoin: Option<&ExecutorSlot>,
    ) -> Result<(usize, u32), CacheError> {
        let mut w = lock(&self.writer);
        let r = self.insert_locked(&mut w, key, code, meta);
        if let Some(x) = rejoin {
            // Still under the writer lock: nothing can be retired before we are online.
            x.epoch
                .store(self.epoch.load(Ordering::SeqCst), Ordering::SeqCst);
        }
        r
    }

    fn insert_locked(
        &self,
        w: &mut Writer,
        key: u64,
        code: &[u8],
        meta: InsertMeta,
    ) -> Result<(usize, u32), CacheError> {
        if key == EMPTY_KEY {
            return Err(CacheError::ReservedKey(key));
        }
        if code.is_empty() {
            return Err(CacheError::EmptyCode);
        }
        if meta.guest_start >= meta.guest_end {
            return Err(CacheError::InvalidRange {
                lo: meta.guest_start,
                hi: meta.guest_end,
            });
        }
        let len32 = u32::try_from(code.len()).map_err(|_| CacheError::CodeTooLarge {
            size: code.len(),
            capacity: w.alloc.capacity_bytes(),
        })?;
        let bytes = code.len().div_ceil(GRANULE) * GRANULE;
        if bytes > w.alloc.capacity_bytes() {
            return Err(CacheError::CodeTooLarge {
                size: bytes,
                capacity: w.alloc.capacity_bytes(),
            });
        }
        let exists = self.index.find(&w.token, key).is_some();
        let (slot, block) = self.make_room(w, bytes, !exists)?;
        let offset = w.alloc.offset_bytes(block);
        let Some(rx) = w.mem.write(offset, code) else {
            w.alloc.free(block);
            w.free_slots.push(slot);
            return Err(CacheError::ExecMemory(std::io::Error::other(
                "block outside the arena",
            )));
        };
        let now = self.clock.load(Ordering::Relaxed) + 1;
        self.clock.store(now, Ordering::Relaxed);
        self.index.fill_slot(&w.token, slot, key, rx, len32, now);
        if slot as usize >= w.meta.len() {
            w.meta.resize_with(slot as usize + 1, Meta::default);
        }
        let m = &mut w.meta[slot as usize];
        *m = Meta {
            key,
            live: true,
            inc: m.inc.wrapping_add(1),
            block: Some(block),
            size_bytes: w.alloc.size_bytes(block),
            code_len: code.len(),
            guest_lo: meta.guest_start,
            guest_hi: meta.guest_end,
            compile_cost: meta.compile_cost,
            created: now,
            ..Meta::default()
        };
        let size_bytes = m.size_bytes;
        // Re-find when replacing: make_room may have evicted the old version of this key.
        // (An absent key cannot appear meanwhile: we hold the writer lock.)
        let old = if exists {
            self.index.find(&w.token, key)
        } else {
            None
        };
        match old {
            Some((pos, old)) => {
                self.index.replace(&w.token, pos, key, slot);
                self.retire(w, old, Cause::Replaced, true);
                w.replacements += 1;
            }
            None => self.index.publish(&w.token, key, slot),
        }
        w.live += 1;
        w.bytes_in_use += size_bytes;
        w.peak_bytes = w.peak_bytes.max(w.bytes_in_use + w.pending_bytes);
        w.inserts += 1;
        w.total_cost = w.total_cost.saturating_add(meta.compile_cost);
        w.resident_cost = w.resident_cost.saturating_add(meta.compile_cost);
        w.ranges.insert(slot, meta.guest_start, meta.guest_end);
        {
            let (mut ctx, policy) = self.ctx(w);
            policy.on_insert(&mut ctx, slot);
        }
        if !w.batch.is_empty() {
            self.commit_and_reclaim(w);
        }
        if w.inserts.is_multiple_of(256) && w.last_decay.elapsed() >= self.config.cleanup_interval {
            self.decay(w);
        }
        Ok((rx, len32))
    }

    fn decay(&self, w: &mut Writer) {
        let f = self.config.hotness_decay_factor;
        for (i, m) in w.meta.iter_mut().enumerate() {
            if m.live {
                let c = self.index.slots[i].access_count.load(Ordering::Relaxed);
                m.decayed = (m.decayed + c.saturating_sub(m.count_at_decay) as f64) * f;
                m.count_at_decay = c;
            }
        }
        w.decays += 1;
        w.last_decay = Instant::now();
    }

    fn entry_of(&self, w: &Writer, slot: usize) -> CacheEntry {
        let m = &w.meta[slot];
        let s = &self.index.slots[slot];
        let now = self.clock.load(Ordering::Relaxed);
        let h = policy::hotness(m, s, now, w.live, self.config.warmup_size as f64);
        CacheEntry {
            key: m.key,
            code_ptr: s.code.load(Ordering::Relaxed),
            code_size: m.code_len,
            access_count: s.access_count.load(Ordering::Relaxed),
            compilation_cost: m.compile_cost,
            created_at: m.created,
            last_access: s.last_access.load(Ordering::Relaxed),
            hotness_score: h,
            execution_benefit: h * m.compile_cost as f64,
            guest_start: m.guest_lo,
            guest_end: m.guest_hi,
        }
    }
}

/// The unified code cache. Cheap to clone (a shared handle); `Send + Sync`.
#[derive(Clone)]
pub struct UnifiedCodeCache {
    pub(crate) shared: Arc<Shared>,
}

impl std::fmt::Debug for UnifiedCodeCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UnifiedCodeCache")
            .field("config", &self.shared.config)
            .finish_non_exhaustive()
    }
}

const _: () = {
    const fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<UnifiedCodeCache>();
    const fn assert_send<T: Send>() {}
    assert_send::<Executor>();
};

impl UnifiedCodeCache {
    /// Creates a cache, mapping `max_memory_bytes` of executable memory up front.
    pub fn new(config: CacheConfig) -> Result<Self, CacheError> {
        config.validate()?;
        let mem = ExecMemory::new(config.max_memory_bytes, config.commit_at_creation)?;
        let code_file = mem.file_id();
        let nslots = config.max_entries + config.max_entries.max(64);
        let arena_bytes = config.max_memory_bytes.min(mem.len());
        let alloc = if config.policy == EvictionPolicy::Fifo {
            Arena::Ring(Ring::new(arena_bytes, nslots))
        } else {
            Arena::Fit(Allocator::new(arena_bytes, nslots))
        };
        // Slots for as many 128-byte blocks as the committed code memory holds, in whole
        // chunks (the writer commits the next chunk when it first takes a slot there).
        let eager_slots = (config.commit_at_creation / 128)
            .next_multiple_of(index::SLOT_CHUNK as usize)
            .min(nslots);
        let index = Index::new(config.max_entries, nslots, eager_slots);
        let writer = Writer {
            token: WriteToken::new(),
            mem,
            alloc,
            // Grown as slots are first used (they are handed out lowest first), into
            // reserved memory the kernel commits only as it is written.
            meta: Vec::with_capacity(nslots),
            free_slots: FreeSlots::new(nslots, eager_slots),
            retired: VecDeque::new(),
            batch: Vec::new(),
            policy: PolicyState::new(config.policy, config.max_entries),
            live: 0,
            bytes_in_use: 0,
            peak_bytes: 0,
            pending_bytes: 0,
            inserts: 0,
            replacements: 0,
            evictions: EvictionCounts::default(),
            invalidations: 0,
            flushes: 0,
            reclaimed: 0,
            total_cost: 0,
            resident_cost: 0,
            decays: 0,
            last_decay: Instant::now(),
            ranges: RangeIndex::new(nslots),
        };
        Ok(Self {
            shared: Arc::new(Shared {
                config,
                index,
                clock: StatU64::new(0),
                epoch: AtomicU64::new(1),
                executors: Mutex::new(Vec::new()),
                writer: Mutex::new(writer),
                stripes: (0..STRIPES).map(|_| Stripe::default()).collect(),
                departed: Departed::default(),
                code_file,
            }),
        })
    }

    /// Device and inode numbers of the (unlinked, in-memory) file that holds the
    /// cache's executable memory. The cache keeps no descriptor to it, but the host
    /// still lets a process open it through `/proc/self/map_files/`; an embedder that
    /// runs untrusted code able to open files should refuse this one, since writing it
    /// writes the code the host executes.
    pub fn code_memory_file(&self) -> (u64, u64) {
        self.shared.code_file
    }

    /// The configuration in force.
    pub fn config(&self) -> &CacheConfig {
        &self.shared.config
    }

    /// Registers an executor (one per guest thread). It starts online.
    pub fn register_executor(&self) -> Executor {
        Executor::new(Arc::clone(&self.shared))
    }

    /// Inserts `code` under `key` with guest range `[key, key + 1)` and cost 0.
    pub fn insert(&self, key: u64, code: &[u8]) -> Result<CodeRef<'_>, CacheError> {
        let end = key.checked_add(1).ok_or(CacheError::ReservedKey(key))?;
        self.insert_with(
            key,
            code,
            InsertMeta {
                guest_start: key,
                guest_end: end,
                compile_cost: 0,
            },
        )
    }

    /// Copies `code` (position-independent) into executable memory and publishes it under
    /// `key`, evicting by policy as needed.
    ///
    /// Inserting a key that is already resident **replaces** it atomically: lookups see
    /// the old or the new code, never a miss; the old block is retired and reclaimed after
    /// every executor's next quiescent point. Concurrent inserts of one key are serialised:
    /// the last one wins and every intermediate entry is retired safely, so the key always
    /// maps to a complete, valid block (tested in `tests/stress.rs`).
    ///
    /// Errors: empty code, code larger than the arena, `key == u64::MAX`, an empty guest
    /// range, or (only while executors hold retired memory) [`CacheError::ReclaimPending`].
    /// A block no larger than free + evictable space is otherwise always placed.
    pub fn insert_with(
        &self,
        key: u64,
        code: &[u8],
        meta: InsertMeta,
    ) -> Result<CodeRef<'_>, CacheError> {
        let (ptr, size) = self.shared.insert_impl(key, code, meta, None)?;
        Ok(CodeRef {
            ptr: nonnull(ptr)?,
            size,
            key,
            _life: PhantomData,
        })
    }

    /// Finds `key` in the shared index (no jump cache). Never blocks, never misses a key
    /// resident for the whole call. See [`CodeRef`] for how long the code stays valid.
    #[inline(always)]
    pub fn lookup(&self, key: u64) -> Option<CodeRef<'_>> {
        let st = &self.shared.stripes[stripe()];
        match self.shared.index.probe(key) {
            Some(f) => {
                let c = st.hits.load(Ordering::Relaxed);
                st.hits.store(c.wrapping_add(1), Ordering::Relaxed);
                self.shared
                    .record_hit(&self.shared.index.slots[f.slot as usize], c);
                Some(CodeRef {
                    ptr: NonNull::new(f.code as *mut u8)?,
                    size: f.size,
                    key,
                    _life: PhantomData,
                })
            }
            None => {
                let c = st.misses.load(Ordering::Relaxed);
                st.misses.store(c.wrapping_add(1), Ordering::Relaxed);
                None
            }
        }
    }

    /// Whether `key` is resident (does not count as an access).
    pub fn contains(&self, key: u64) -> bool {
        self.shared.index.probe(key).is_some()
    }

    /// Removes every entry whose guest range intersects `[lo, hi)`; returns how many.
    /// When it returns, no lookup (shared index or any jump cache) returns them.
    pub fn invalidate_range(&self, lo: u64, hi: u64) -> usize {
        if lo >= hi {
            return 0;
        }
        let mut w = lock(&self.shared.writer);
        let mut hit = Vec::new();
        w.ranges.query(lo, hi, &mut hit);
        for &s in &hit {
            self.shared.retire(&mut w, s, Cause::Invalidated, false);
        }
        self.shared.commit_and_reclaim(&mut w);
        hit.len()
    }

    /// Removes one key; returns whether it was resident.
    pub fn invalidate(&self, key: u64) -> bool {
        let mut w = lock(&self.shared.writer);
        let Some((_, slot)) = self.shared.index.find(&w.token, key) else {
            return false;
        };
        self.shared.retire(&mut w, slot, Cause::Invalidated, false);
        self.shared.commit_and_reclaim(&mut w);
        true
    }

    /// Waits for a grace period: returns once every executor that was online when the
    /// call began has announced a quiescent point after it began, gone offline, or been
    /// dropped (RCU's `synchronize_rcu`). Never waits for an offline executor; executors
    /// registered during the call are not waited for either (they start with no code).
    ///
    /// After [`invalidate_range(lo, hi)`](Self::invalidate_range) returns and then this
    /// returns, no executor runs a block translated from `[lo, hi)`, under the
    /// conditions in the crate doc ("Invalidation across threads"); the same holds for
    /// whatever `invalidate`, `flush`, `evict` or a replacing insert retired before the
    /// call.
    ///
    /// It waits for *every* online executor, the calling thread's own included: a thread
    /// that owns an online executor must call [`Executor::synchronize`] instead (or take
    /// its executor [`offline`](Executor::offline) first), or it waits for itself
    /// forever. It takes no lock while waiting (it spins briefly, then yields, then
    /// sleeps with backoff up to 1 ms) and adds nothing to `lookup` or `quiescent`.
    pub fn synchronize(&self) {
        self.shared.synchronize(None);
    }

    /// [`synchronize`](Self::synchronize), giving up after `timeout`: `true` if the grace
    /// period completed, `false` if some executor that was online when the call began
    /// had still not passed a quiescent point (the guarantee then does not hold). For a
    /// watchdog that reports an executor stuck online.
    pub fn synchronize_timeout(&self, timeout: Duration) -> bool {
        self.shared.synchronize(Instant::now().checked_add(timeout))
    }

    /// Removes everything (QEMU's `tb_flush`); memory is reclaimed as executors pass
    /// quiescent points.
    pub fn flush(&self) {
        let mut w = lock(&self.shared.writer);
        self.shared.flush_all(&mut w, Cause::Flush);
    }

    /// Evicts up to `n` entries chosen by the policy; returns how many were evicted.
    pub fn evict(&self, n: usize) -> usize {
        let mut w = lock(&self.shared.writer);
        let mut done = 0;
        while done < n && w.live > 0 {
            let before = w.live;
            if !self.shared.evict_one(&mut w, Cause::Requested) {
                break;
            }
            done += before - w.live;
        }
        self.shared.commit_and_reclaim(&mut w);
        done
    }

    /// Periodic upkeep: reclaims what executors have moved past and decays hotness if
    /// `cleanup_interval` has elapsed. Call it from a compile or timer thread.
    pub fn maintain(&self) {
        let mut w = lock(&self.shared.writer);
        self.shared.commit_and_reclaim(&mut w);
        if w.last_decay.elapsed() >= self.shared.config.cleanup_interval {
            self.shared.decay(&mut w);
        }
    }

    /// Applies one hotness decay now (deterministic alternative to waiting for
    /// `cleanup_interval`).
    pub fn decay_now(&self) {
        let mut w = lock(&self.shared.writer);
        self.shared.decay(&mut w);
    }

    /// Number of resident entries.
    pub fn len(&self) -> usize {
        lock(&self.shared.writer).live
    }

    /// Whether no entry is resident.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Metadata of a resident key.
    pub fn entry(&self, key: u64) -> Option<CacheEntry> {
        let w = lock(&self.shared.writer);
        let (_, slot) = self.shared.index.find(&w.token, key)?;
        Some(self.shared.entry_of(&w, slot as usize))
    }

    /// The `n` hottest resident entries, hottest first.
    pub fn hottest(&self, n: usize) -> Vec<CacheEntry> {
        let w = lock(&self.shared.writer);
        let mut v: Vec<CacheEntry> = (0..w.meta.len())
            .filter(|&s| w.meta[s].live)
            .map(|s| self.shared.entry_of(&w, s))
            .collect();
        let hotter = |a: &CacheEntry, b: &CacheEntry| {
            b.hotness_score
                .total_cmp(&a.hotness_score)
                .then(b.access_count.cmp(&a.access_count))
                .then(a.key.cmp(&b.key))
        };
        // Select the top n in O(len), then order only those.
        if n > 0 && n < v.len() {
            v.select_nth_unstable_by(n - 1, hotter);
        }
        v.truncate(n);
        v.sort_by(hotter);
        v
    }

    /// Code bytes resident and bytes retired but not yet reclaimed (the two memory
    /// figures of [`CacheStats`], without building the rest of it).
    pub fn memory_use(&self) -> (usize, usize) {
        let w = lock(&self.shared.writer);
        (w.bytes_in_use, w.pending_bytes)
    }

    /// A snapshot of every counter, with the 10 hottest entries.
    pub fn stats(&self) -> CacheStats {
        let hottest = self.hottest(10);
        let sh = &self.shared;
        let (mut l1, mut ih, mut miss) = (
            sh.departed.l1_hits.load(Ordering::Relaxed),
            sh.departed.index_hits.load(Ordering::Relaxed),
            sh.departed.misses.load(Ordering::Relaxed),
        );
        for s in sh.stripes.iter() {
            ih += s.hits.load(Ordering::Relaxed);
            miss += s.misses.load(Ordering::Relaxed);
        }
        let executors = {
            let execs = sh.lock_executors();
            for x in execs.iter() {
                l1 += x.l1_hits.load(Ordering::Relaxed);
                l1 +=
                    x.l1.iter()
                        .map(|e| u64::from(e.hits.load(Ordering::Relaxed)))
                        .sum::<u64>();
                ih += x.index_hits.load(Ordering::Relaxed);
                miss += x.misses.load(Ordering::Relaxed);
            }
            execs.len()
        };
        let w = lock(&sh.writer);
        let total = l1 + ih + miss;
        CacheStats {
            policy: Some(sh.config.policy),
            l1_hits: l1,
            index_hits: ih,
            misses: miss,
            hit_rate: if total == 0 {
                0.0
            } else {
                (l1 + ih) as f64 / total as f64
            },
            inserts: w.inserts,
            replacements: w.replacements,
            evictions: w.evictions.clone(),
            invalidations: w.invalidations,
            flushes: w.flushes,
            entries: w.live,
            max_entries: sh.config.max_entries,
            bytes_in_use: w.bytes_in_use,
            peak_bytes_in_use: w.peak_bytes,
            capacity_bytes: w.alloc.capacity_bytes(),
            free_bytes: w.alloc.free_bytes(),
            largest_free_block: w.alloc.largest_free_bytes(),
            fragmentation: w.alloc.fragmentation(),
            pending_reclaim_bytes: w.pending_bytes,
            pending_reclaim_entries: w.retired.len() + w.batch.len(),
            reclaimed_entries: w.reclaimed,
            total_compilation_cost: w.total_cost,
            resident_compilation_cost: w.resident_cost,
            executors,
            epoch: sh.epoch.load(Ordering::Relaxed),
            logical_clock: sh.clock.load(Ordering::Relaxed),
            decays: w.decays,
            hottest,
        }
    }

    /// [`stats`](Self::stats) as a human-readable report (for `--stats`).
    pub fn diagnostic_report(&self) -> String {
        self.stats().report()
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn writer_metadata_record_stays_within_128_bytes() {
        assert!(
            std::mem::size_of::<super::Meta>() <= 128,
            "{}",
            std::mem::size_of::<super::Meta>()
        );
        assert_eq!(std::mem::size_of::<super::Slot>(), 64);
    }
}
