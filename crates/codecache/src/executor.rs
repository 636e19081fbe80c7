//! Executors: one per guest thread. Each owns a direct-mapped L1 jump cache in front of
//! the shared index and takes part in quiescent-state-based reclamation (QSBR, as QEMU's
//! RCU).
//!
//! Reclamation contract: a [`CodeRef`] returned by [`Executor::lookup`] borrows the
//! executor, and [`Executor::quiescent`] takes `&mut self`, so the borrow checker proves
//! no reference survives a quiescent point. Memory retired at global epoch `e` is reused
//! only once every online executor has announced an epoch `>= e`, i.e. passed a quiescent
//! point after the retirement. Offline (parked) and dropped executors do not hold
//! reclamation back.
//!
//! Jump-cache coherence: the owner thread fills an entry, then (after a SeqCst fence)
//! re-checks that the shared slot is still live; a writer marks the slot retired, fences,
//! then clears every executor's jump-cache entry for that key. One of the two always sees
//! the other, so no jump cache keeps a retired block past the retiring call.

use std::cell::Cell;
use std::marker::PhantomData;
use std::ptr::NonNull;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering, fence};

use crate::index::LIVE;
use crate::{CodeRef, Shared};

/// Key value that marks an empty jump-cache entry (and so cannot be inserted).
pub const EMPTY_KEY: u64 = u64::MAX;

/// One entry of an executor's L1 jump cache. Stable `#[repr(C)]` layout, 32 bytes, so
/// generated code can probe it inline:
///
/// | offset | field  | meaning                                                   |
/// |--------|--------|-----------------------------------------------------------|
/// | 0      | `key`  | guest key, [`EMPTY_KEY`] when empty                       |
/// | 8      | `code` | executable address of the block                           |
/// | 16     | `size` | code size in bytes                                        |
/// | 20     | `hits` | hits since last flushed to the shared entry (may be bumped by JIT code with a plain add) |
/// | 24     | `slot` | shared slot number (internal)                             |
/// | 28     | pad    |                                                           |
///
/// Probe: `e = base + (((key >> shift) & (len - 1)) << 5)`; hit iff `[e] == key`, then
/// jump to `[e + 8]`. See [`JumpCacheLayout`]. Never probe with [`EMPTY_KEY`] itself: a
/// cleared entry has `key == EMPTY_KEY` but keeps the retired block's `code`.
#[repr(C, align(32))]
#[derive(Debug)]
pub struct JumpCacheEntry {
    /// Guest key, or [`EMPTY_KEY`].
    pub key: AtomicU64,
    /// Executable address of the block's code.
    pub code: AtomicUsize,
    /// Code size in bytes.
    pub size: AtomicU32,
    /// Hits not yet flushed into the shared entry's access count.
    pub hits: AtomicU32,
    slot: AtomicU32,
    _pad: u32,
}

const _: () = assert!(std::mem::size_of::<JumpCacheEntry>() == 32);

impl Default for JumpCacheEntry {
    fn default() -> Self {
        Self {
            key: AtomicU64::new(EMPTY_KEY),
            code: AtomicUsize::new(0),
            size: AtomicU32::new(0),
            hits: AtomicU32::new(0),
            slot: AtomicU32::new(0),
            _pad: 0,
        }
    }
}

/// Where an executor's jump cache lives and how to index it, for inline probes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct JumpCacheLayout {
    /// Address of entry 0 (stable for the executor's life).
    pub base: usize,
    /// Number of entries (a power of two).
    pub len: usize,
    /// Right shift applied to the key before masking.
    pub key_shift: u32,
    /// log2 of the entry size (5: 32-byte entries).
    pub entry_shift: u32,
    /// Byte offset of `key` in an entry.
    pub key_offset: usize,
    /// Byte offset of `code` in an entry.
    pub code_offset: usize,
    /// Byte offset of `hits` in an entry.
    pub hits_offset: usize,
}

impl JumpCacheLayout {
    /// The index function: `(key >> key_shift) & (len - 1)`.
    #[inline]
    pub fn index(&self, key: u64) -> usize {
        ((key >> self.key_shift) as usize) & (self.len - 1)
    }
}

/// Per-executor state visible to writers (registered in the cache).
pub(crate) struct ExecutorSlot {
    /// Last announced global epoch; 0 while offline.
    pub(crate) epoch: AtomicU64,
    pub(crate) l1: Arc<[JumpCacheEntry]>,
    /// Jump-cache hits already flushed out of the entries' `hits` fields (the total is
    /// this plus every entry's pending `hits`), so the hit path bumps no shared counter.
    pub(crate) l1_hits: AtomicU64,
    pub(crate) index_hits: AtomicU64,
    pub(crate) misses: AtomicU64,
}

#[inline]
fn bump(c: &AtomicU64) {
    // Single writer (the owner thread): a plain load + store, no locked instruction.
    c.store(c.load(Ordering::Relaxed).wrapping_add(1), Ordering::Relaxed);
}

/// Quiescent announcements between two flushes of jump-cache hit counts.
const FLUSH_PERIOD: u32 = 1024;

/// A guest thread's handle on the cache: L1 jump cache + reclamation membership.
/// `Send` (move it into its thread) but not `Sync`.
pub struct Executor {
    pub(crate) shared: Arc<Shared>,
    pub(crate) me: Arc<ExecutorSlot>,
    /// The jump cache, held directly so a hit is one dependent load from `self`.
    l1: Arc<[JumpCacheEntry]>,
    mask: usize,
    shift: u32,
    online: Cell<bool>,
    announcements: u32,
}

impl std::fmt::Debug for Executor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Executor")
            .field("online", &self.online.get())
            .field("epoch", &self.me.epoch.load(Ordering::Relaxed))
            .finish()
    }
}

impl Executor {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        let bits = shared.config.jump_cache_bits;
        let shift = shared.config.jump_cache_key_shift;
        let l1: Arc<[JumpCacheEntry]> = (0..1usize << bits)
            .map(|_| JumpCacheEntry::default())
            .collect();
        let me = Arc::new(ExecutorSlot {
            epoch: AtomicU64::new(0),
            l1: Arc::clone(&l1),
            l1_hits: AtomicU64::new(0),
            index_hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        });
        {
            let mut list = shared.lock_executors();
            me.epoch
                .store(shared.epoch.load(Ordering::SeqCst), Ordering::SeqCst);
            list.push(Arc::clone(&me));
        }
        Self {
            shared,
            me,
            l1,
            mask: (1usize << bits) - 1,
            shift,
            online: Cell::new(true),
            announcements: 0,
        }
    }

    /// Looks `key` up: jump cache first, then the shared index (filling the jump cache).
    /// The returned code stays valid to call until this executor's next
    /// [`quiescent`](Self::quiescent) (enforced by the borrow).
    #[inline(always)]
    pub fn lookup(&self, key: u64) -> Option<CodeRef<'_>> {
        if !self.online.get() {
            self.go_online();
        }
        let e = &self.l1[((key >> self.shift) as usize) & self.mask];
        // A writer clears an entry by storing EMPTY_KEY into `key` only (the owner's
        // `code` must stay intact under its concurrent reads), so a cleared entry still
        // holds a retired block's address: the reserved key must never count as a match.
        if e.key.load(Ordering::Relaxed) == key && key != EMPTY_KEY {
            let code = e.code.load(Ordering::Relaxed);
            let size = e.size.load(Ordering::Relaxed);
            e.hits.store(
                e.hits.load(Ordering::Relaxed).wrapping_add(1),
                Ordering::Relaxed,
            );
            return Some(CodeRef {
                ptr: NonNull::new(code as *mut u8)?,
                size,
                key,
                _life: PhantomData,
            });
        }
        self.lookup_slow(key, e)
    }

    #[cold]
    fn lookup_slow(&self, key: u64, e: &JumpCacheEntry) -> Option<CodeRef<'_>> {
        if key == EMPTY_KEY {
            bump(&self.me.misses);
            return None;
        }
        self.flush_entry(e);
        let Some(f) = self.shared.index.probe(key) else {
            bump(&self.me.misses);
            return None;
        };
        bump(&self.me.index_hits);
        let slot = &self.shared.index.slots[f.slot as usize];
        self.shared
            .record_hit(slot, self.me.index_hits.load(Ordering::Relaxed));
        e.key.store(EMPTY_KEY, Ordering::Relaxed);
        e.code.store(f.code, Ordering::Relaxed);
        e.size.store(f.size, Ordering::Relaxed);
        e.slot.store(f.slot, Ordering::Relaxed);
        e.hits.store(0, Ordering::Relaxed);
        e.key.store(key, Ordering::Relaxed);
        fence(Ordering::SeqCst);
        if slot.state.load(Ordering::SeqCst) != LIVE
            || slot.version.load(Ordering::SeqCst) != f.version
        {
            // Retired while we filled: do not keep it (the writer may have scanned before
            // our store). The code itself stays valid until our next quiescent point.
            e.key.store(EMPTY_KEY, Ordering::Relaxed);
        }
        Some(CodeRef {
            ptr: NonNull::new(f.code as *mut u8)?,
            size: f.size,
            key,
            _life: PhantomData,
        })
    }

    /// Adds an entry's pending jump-cache hits to its shared access count.
    fn flush_entry(&self, e: &JumpCacheEntry) {
        let hits = e.hits.load(Ordering::Relaxed);
        if hits == 0 {
            return;
        }
        e.hits.store(0, Ordering::Relaxed);
        let total = self.me.l1_hits.load(Ordering::Relaxed) + u64::from(hits);
        self.me.l1_hits.store(total, Ordering::Relaxed);
        let key = e.key.load(Ordering::Relaxed);
        if key == EMPTY_KEY {
            return;
        }
        if let Some(slot) = self
            .shared
            .index
            .slots
            .get(e.slot.load(Ordering::Relaxed) as usize)
            && slot.key.load(Ordering::Relaxed) == key
        {
            slot.access_count
                .fetch_add(u64::from(hits), Ordering::Relaxed);
            slot.referenced.store(1, Ordering::Relaxed);
            slot.last_access
                .store(self.shared.clock.load(Ordering::Relaxed), Ordering::Relaxed);
        }
    }

    /// Announces a quiescent point: this thread holds no code reference from this cache.
    /// Cheap (one load of the global epoch, one store); call it from the dispatch loop.
    /// Every 1024th call also flushes jump-cache hit counts into the shared entries.
    #[inline]
    pub fn quiescent(&mut self) {
        if !self.online.get() {
            self.go_online();
        }
        let g = self.shared.epoch.load(Ordering::SeqCst);
        self.me.epoch.store(g, Ordering::Release);
        self.online.set(true);
        self.announcements = self.announcements.wrapping_add(1);
        if self.announcements.is_multiple_of(FLUSH_PERIOD) {
            self.flush_hits();
        }
    }

    /// Flushes every jump-cache entry's pending hit count into the shared entries.
    pub fn flush_hits(&mut self) {
        for e in self.l1.iter() {
            self.flush_entry(e);
        }
    }

    /// Goes offline (e.g. before blocking in a syscall or parking): reclamation stops
    /// waiting for this executor. The next `lookup` or `quiescent` brings it back online.
    pub fn offline(&mut self) {
        self.me.epoch.store(0, Ordering::SeqCst);
        self.online.set(false);
    }

    fn go_online(&self) {
        // SeqCst store then load (a Dekker pair with the writer's bump-then-scan): either
        // the writer sees us online, or we see its newer epoch.
        let g = self.shared.epoch.load(Ordering::SeqCst);
        self.me.epoch.store(g, Ordering::SeqCst);
        let g2 = self.shared.epoch.load(Ordering::SeqCst);
        if g2 != g {
            self.me.epoch.store(g2, Ordering::SeqCst);
        }
        self.online.set(true);
    }

    /// Whether the executor currently holds reclamation back.
    pub fn is_online(&self) -> bool {
        self.online.get()
    }

    /// The jump cache's address and indexing, for code that probes it inline.
    pub fn jump_cache_layout(&self) -> JumpCacheLayout {
        JumpCacheLayout {
            base: self.l1.as_ptr() as usize,
            len: self.l1.len(),
            key_shift: self.shift,
            entry_shift: 5,
            key_offset: std::mem::offset_of!(JumpCacheEntry, key),
            code_offset: std::mem::offset_of!(JumpCacheEntry, code),
            hits_offset: std::mem::offset_of!(JumpCacheEntry, hits),
        }
    }

    /// Inserts code (as [`crate::UnifiedCodeCache::insert_with`]) and returns a reference
    /// protected like a lookup result. Takes `&mut self`: no reference of this executor is
    /// outstanding, so the executor steps offline during the insert and its own pending
    /// retirements can be reclaimed to make room.
    pub fn insert_with(
        &mut self,
        key: u64,
        code: &[u8],
        meta: crate::InsertMeta,
    ) -> Result<CodeRef<'_>, crate::CacheError> {
        self.offline();
        // Back online under the writer lock, before anyone can retire the new block.
        let r = self.shared.insert_impl(key, code, meta, Some(&self.me));
        self.online.set(true);
        let (ptr, size) = r?;
        Ok(CodeRef {
            ptr: crate::nonnull(ptr)?,
            size,
            key,
            _life: PhantomData,
        })
    }

    /// The cache this executor belongs to.
    pub fn cache(&self) -> crate::UnifiedCodeCache {
        crate::UnifiedCodeCache {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl Drop for Executor {
    fn drop(&mut self) {
        self.me.epoch.store(0, Ordering::SeqCst);
        self.flush_hits();
        let mut list = self.shared.lock_executors();
        list.retain(|s| !Arc::ptr_eq(s, &self.me));
        self.shared
            .departed
            .l1_hits
            .fetch_add(self.me.l1_hits.load(Ordering::Relaxed), Ordering::Relaxed);
        self.shared.departed.index_hits.fetch_add(
            self.me.index_hits.load(Ordering::Relaxed),
            Ordering::Relaxed,
        );
        self.shared
            .departed
            .misses
            .fetch_add(self.me.misses.load(Ordering::Relaxed), Ordering::Relaxed);
    }
}
