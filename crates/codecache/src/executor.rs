//! Executors: one per guest thread. Each owns a direct-mapped L1 jump cache in front of
//! the shared index and takes part in quiescent-state-based reclamation (QSBR, as QEMU's
//! RCU).
//!
//! Reclamation contract: a [`CodeRef`] returned by [`Executor::lookup`] borrows the
//! executor, and [`Executor::quiescent`] takes `&mut self`, so the borrow checker proves
//! no reference survives a quiescent point. Memory retired at global epoch `e` is reused
//! only once every online executor has announced an epoch `>= e`, i.e. passed a quiescent
//! point after the retirement. Offline and dropped executors do not hold reclamation
//! back.
//!
//! Jump-cache coherence: the owner thread fills an entry, then (after a SeqCst fence)
//! re-checks that the shared slot is still live; a writer marks the slot retired, fences,
//! then clears every executor's jump-cache entry for that key (online or not). One of the
//! two always sees the other, so no jump cache keeps a retired block past the retiring
//! call.
//!
//! The hit path checks nothing else, in particular not whether the executor is online:
//! - An **online** executor's hit is protected by its announced epoch: whatever a writer
//!   retires after that announcement stays allocated until the next `quiescent`, which
//!   the borrow above orders after every use of the hit.
//! - An **offline** executor is not protected (writers reclaim without waiting for it),
//!   so it must not be handed a hit before it is back online. `offline` therefore
//!   *parks* the jump cache: it empties entries 0 and 1 and sets the executor's hit-path
//!   shift to 63, so every key indexes one of those two empty entries. Only the owner
//!   fills entries, and only in the slow path, which comes back online first (and then
//!   restores the shift); writers only ever empty entries. So while parked every lookup
//!   misses the jump cache and reaches the slow path. Coming back online is a Dekker
//!   pair with the writer's reclaim: the executor stores its epoch, fences (SeqCst) and
//!   re-reads the global epoch; the writer bumps the global epoch (after clearing jump
//!   caches and the index), fences, and reads every executor's epoch. Either the writer
//!   sees the executor online (and keeps what it retires), or the executor sees the
//!   bumped epoch, which synchronises with the bump, so its later reads of the jump
//!   cache and the index see the clears: no reclaimed block can be returned.
//! - Inline probes by generated code use the configured shift ([`JumpCacheLayout`]), not
//!   the parked one: such code runs only between a `lookup` that returned it and the
//!   next `quiescent`/`offline` (`offline` takes `&mut self`), i.e. while online.
//!
//! Grace periods (`grace.rs`, [`Executor::synchronize`]) use the same announcements: a
//! waiter bumps the global epoch and waits until every executor it found online has
//! announced that epoch or later, or 0. Nothing on this side changes for them.
//!
//! The hits counter stays: a plain (non-atomic-RMW) increment of the entry's own `hits`,
//! on the cache line the key was just read from, flushed to the shared count on
//! replacement, every 16 384 quiescent points, or `flush_hits`.

use std::cell::Cell;
use std::marker::PhantomData;
use std::ptr::NonNull;
use std::sync::Arc;

use crate::index::LIVE;
use crate::sync::{AtomicU32, AtomicU64, AtomicUsize, Ordering, StatU64, fence};
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

// (Under loom the atomics are loom's, larger: the layout contract is for real builds.)
#[cfg(not(loom))]
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

/// An executor's jump cache: a direct-mapped table whose length is a power of two, at
/// least 2 (checked once, at construction), so masking an index with `len - 1` proves
/// the bound and the hit path needs no separate bounds check. Shared by the owner (fills,
/// hits) and writers (clear keys); the allocation never moves.
#[derive(Clone)]
pub(crate) struct JumpTable(Arc<[JumpCacheEntry]>);

impl JumpTable {
    /// `2^bits` empty entries; `bits` is clamped to `1..=20` (the config's range).
    fn new(bits: u32) -> Self {
        let len = 1usize << bits.clamp(1, 20);
        Self((0..len).map(|_| JumpCacheEntry::default()).collect())
    }

    /// The entry for an already-shifted key: `h & (len - 1)`.
    #[inline(always)]
    pub(crate) fn entry(&self, h: u64) -> &JumpCacheEntry {
        &self.0[(h as usize) & (self.0.len() - 1)]
    }

    pub(crate) fn len(&self) -> usize {
        self.0.len()
    }

    pub(crate) fn iter(&self) -> std::slice::Iter<'_, JumpCacheEntry> {
        self.0.iter()
    }

    fn base(&self) -> usize {
        self.0.as_ptr() as usize
    }
}

/// Per-executor state visible to writers (registered in the cache).
pub(crate) struct ExecutorSlot {
    /// Last announced global epoch; 0 while offline.
    pub(crate) epoch: AtomicU64,
    pub(crate) l1: JumpTable,
    /// Jump-cache hits already flushed out of the entries' `hits` fields (the total is
    /// this plus every entry's pending `hits`), so the hit path bumps no shared counter.
    pub(crate) l1_hits: StatU64,
    pub(crate) index_hits: StatU64,
    pub(crate) misses: StatU64,
}

#[inline]
fn bump(c: &StatU64) {
    // Single writer (the owner thread): a plain load + store, no locked instruction.
    c.store(c.load(Ordering::Relaxed).wrapping_add(1), Ordering::Relaxed);
}

/// Quiescent announcements between two flushes of jump-cache hit counts (a flush visits
/// every entry: at 1024, an interpreter-bound guest spent 2.4 % of its time in it).
const FLUSH_PERIOD: u32 = 1 << 14;

/// Key shift in force while the executor is offline ("parked"): every key then indexes
/// entry 0 or 1, which `offline` empties and only the owner could refill, so every lookup
/// misses the jump cache and takes the slow path, which comes back online first.
const PARKED_SHIFT: u32 = 63;

/// A guest thread's handle on the cache: L1 jump cache + reclamation membership.
/// `Send` (move it into its thread) but not `Sync`.
pub struct Executor {
    pub(crate) shared: Arc<Shared>,
    pub(crate) me: Arc<ExecutorSlot>,
    /// The jump cache, held directly (a fat pointer) so a hit is one dependent load.
    l1: JumpTable,
    /// Shift the hit path applies: `key_shift` while online, [`PARKED_SHIFT`] while
    /// offline. This is the only executor state the hit path reads besides `l1`.
    shift: Cell<u32>,
    /// The configured shift (what inline probes use; see [`JumpCacheLayout`]).
    key_shift: u32,
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
        let l1 = JumpTable::new(shared.config.jump_cache_bits);
        let key_shift = shared.config.jump_cache_key_shift;
        let me = Arc::new(ExecutorSlot {
            epoch: AtomicU64::new(0),
            l1: l1.clone(),
            l1_hits: StatU64::new(0),
            index_hits: StatU64::new(0),
            misses: StatU64::new(0),
        });
        {
            // Under the executors lock, which every reclaim scan also takes: a writer
            // either sees us registered at the current epoch or scanned before we joined
            // (and we then see everything it retired as gone).
            let mut list = shared.lock_executors();
            me.epoch
                .store(shared.epoch.load(Ordering::SeqCst), Ordering::SeqCst);
            list.push(Arc::clone(&me));
        }
        Self {
            shared,
            me,
            l1,
            shift: Cell::new(key_shift),
            key_shift,
            online: Cell::new(true),
            announcements: 0,
        }
    }

    /// Looks `key` up: jump cache first, then the shared index (filling the jump cache).
    /// The returned code stays valid to call until this executor's next
    /// [`quiescent`](Self::quiescent) (enforced by the borrow). An offline executor comes
    /// back online here, before anything is returned.
    ///
    /// The hit path is: one shift and mask, the key compare (plus a register compare
    /// rejecting [`EMPTY_KEY`]), two loads and a plain increment of the entry's `hits`;
    /// no online check (offline executors are parked, see the module doc), no bounds
    /// check beyond the table's non-emptiness, and the slow path returns in registers.
    #[inline(always)]
    pub fn lookup(&self, key: u64) -> Option<CodeRef<'_>> {
        let e = self.l1.entry(key >> self.shift.get());
        // A writer clears an entry by storing EMPTY_KEY into `key` only (the owner's
        // `code` must stay intact under its concurrent reads), so a cleared entry still
        // holds a retired block's address: the reserved key must never count as a match.
        if e.key.load(Ordering::Relaxed) == key && key != EMPTY_KEY {
            e.hits.store(
                e.hits.load(Ordering::Relaxed).wrapping_add(1),
                Ordering::Relaxed,
            );
            return Some(CodeRef {
                ptr: NonNull::new(e.code.load(Ordering::Relaxed) as *mut u8)?,
                size: e.size.load(Ordering::Relaxed),
                key,
                _life: PhantomData,
            });
        }
        let (code, size) = self.lookup_slow(key);
        Some(CodeRef {
            ptr: NonNull::new(code as *mut u8)?,
            size,
            key,
            _life: PhantomData,
        })
    }

    /// Counts a miss for a key the caller knows is absent without probing (an embedder
    /// that remembers its own misses until it inserts the key), so the statistics
    /// still count every lookup.
    pub fn count_miss(&self) {
        bump(&self.me.misses);
    }

    /// Jump-cache miss (or parked executor): returns `(code, size)`, `code == 0` for a
    /// miss, so the result comes back in two registers.
    #[cold]
    #[inline(never)]
    fn lookup_slow(&self, key: u64) -> (usize, u32) {
        if !self.online.get() {
            self.go_online();
        }
        if key == EMPTY_KEY {
            bump(&self.me.misses);
            return (0, 0);
        }
        let e = self.l1.entry(key >> self.key_shift);
        if e.key.load(Ordering::Relaxed) == key {
            // Was parked: the real entry hits.
            e.hits.store(
                e.hits.load(Ordering::Relaxed).wrapping_add(1),
                Ordering::Relaxed,
            );
            return (
                e.code.load(Ordering::Relaxed),
                e.size.load(Ordering::Relaxed),
            );
        }
        self.flush_entry(e);
        let Some(f) = self.shared.index.probe(key) else {
            bump(&self.me.misses);
            return (0, 0);
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
        // Dekker pair with `Shared::retire` + `commit_and_reclaim` (state store; SeqCst
        // fence; key clear): either the writer sees our key and clears it, or we see
        // the slot retired (or recycled: version changed) here and clear it ourselves.
        fence(Ordering::SeqCst);
        if slot.state.load(Ordering::Relaxed) != LIVE
            || slot.version.load(Ordering::Relaxed) != f.version
        {
            // Retired while we filled: do not keep it (the writer may have scanned before
            // our store). The code itself stays valid until our next quiescent point.
            e.key.store(EMPTY_KEY, Ordering::Relaxed);
        }
        (f.code, f.size)
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
    /// Every 16 384th call also flushes jump-cache hit counts into the shared entries.
    #[inline]
    pub fn quiescent(&mut self) {
        if !self.online.get() {
            self.go_online();
        }
        let g = self.shared.epoch.load(Ordering::SeqCst);
        self.me.epoch.store(g, Ordering::Release);
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
    /// Costs two jump-cache entries' contents (entries 0 and 1 are emptied to park it).
    pub fn offline(&mut self) {
        if !self.online.get() {
            return;
        }
        self.me.epoch.store(0, Ordering::SeqCst);
        self.online.set(false);
        // Park: from now on the hit path indexes only entries 0 and 1, and they are
        // empty. Writers only ever store EMPTY_KEY into entries and only the owner fills
        // them (in `lookup_slow`, after coming back online), so until then every lookup
        // misses the jump cache.
        for i in 0..2 {
            let e = self.l1.entry(i);
            self.flush_entry(e);
            e.key.store(EMPTY_KEY, Ordering::Relaxed);
        }
        self.shift.set(PARKED_SHIFT);
    }

    /// [`UnifiedCodeCache::synchronize`](crate::UnifiedCodeCache::synchronize) for a
    /// thread that owns this executor: waits until every *other* executor that was
    /// online when the call began has passed a quiescent point after it began, gone
    /// offline, or been dropped.
    ///
    /// The caller's own executor is not waited for: it holds no code reference
    /// (`&mut self`), so it is taken offline for the duration of the call (without
    /// parking: no lookup can run meanwhile), which also means that executors
    /// synchronizing at the same time never wait for each other. If it was online it
    /// comes back online before returning, through the same store / fence / load as
    /// any return from offline; that counts as a quiescent point. If it was offline it
    /// stays offline. Call it from the dispatch loop, never from code that translated
    /// code called.
    pub fn synchronize(&mut self) {
        self.synchronize_until(None);
    }

    /// [`synchronize`](Self::synchronize), giving up after `timeout`: `true` if the grace
    /// period completed (see
    /// [`UnifiedCodeCache::synchronize_timeout`](crate::UnifiedCodeCache::synchronize_timeout)).
    pub fn synchronize_timeout(&mut self, timeout: std::time::Duration) -> bool {
        self.synchronize_until(std::time::Instant::now().checked_add(timeout))
    }

    fn synchronize_until(&mut self, deadline: Option<std::time::Instant>) -> bool {
        let online = self.online.get();
        if online {
            // Out of reclamation and of the grace period while we wait, as in
            // `insert_with`; the jump cache stays unparked because `&mut self` keeps
            // every lookup out until `go_online` below.
            self.me.epoch.store(0, Ordering::SeqCst);
        }
        let done = self.shared.synchronize(deadline);
        if online {
            self.go_online();
        }
        done
    }

    fn go_online(&self) {
        // Store, SeqCst fence, load: a Dekker pair with the writer's epoch bump, SeqCst
        // fence, scan of executor epochs (`commit_and_reclaim`). Either the writer sees
        // us online (and keeps what it retires until we quiesce), or we see its newer
        // epoch, which it published after clearing the jump caches and the index, so
        // nothing we read from now on is what it reclaims. The same pair with a
        // grace-period waiter's bump, fence, read (`grace.rs`): either it waits for us,
        // or we see its bump and so whatever it invalidated before.
        let g = self.shared.epoch.load(Ordering::SeqCst);
        self.me.epoch.store(g, Ordering::SeqCst);
        fence(Ordering::SeqCst);
        let g2 = self.shared.epoch.load(Ordering::SeqCst);
        if g2 != g {
            self.me.epoch.store(g2, Ordering::SeqCst);
        }
        self.unpark();
    }

    /// Back to the configured shift (online again).
    fn unpark(&self) {
        self.shift.set(self.key_shift);
        self.online.set(true);
    }

    /// Whether the executor currently holds reclamation back.
    pub fn is_online(&self) -> bool {
        self.online.get()
    }

    /// The jump cache's address and indexing, for code that probes it inline.
    pub fn jump_cache_layout(&self) -> JumpCacheLayout {
        JumpCacheLayout {
            base: self.l1.base(),
            len: self.l1.len(),
            key_shift: self.key_shift,
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
        // Step out of reclamation for the insert (no reference is held: `&mut self`), so
        // the writer may reuse what only we were holding back; back online under the
        // writer lock, before anyone can retire the new block. No parking needed: no
        // lookup can run meanwhile.
        self.me.epoch.store(0, Ordering::SeqCst);
        let r = self.shared.insert_impl(key, code, meta, Some(&self.me));
        self.unpark();
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
