//! The shared index: a lock-free-to-read open-addressing hash table from key to entry
//! slot, plus the fixed array of entry slots. Safe Rust over atomics only.
//!
//! Readers never lock and never write shared state except approximate access counters.
//! Writers (insert, replace, remove, rebuild) are serialised by the cache's writer lock;
//! the [`WriteToken`] parameter proves the caller holds it.
//!
//! Invariants that make lookups never miss a resident key:
//! - a table word is `EMPTY`, `TOMB` or `tag << 32 | slot`; a key's word stays in the same
//!   table position from insert to removal; replacing a key's entry swaps the slot number
//!   in that position with one atomic store, so a reader sees the old or the new entry;
//! - removal leaves a tombstone, so probe chains never break under a reader;
//! - the only operations that can make a concurrent reader miss (switching to a rebuilt
//!   table, recycling a slot that a reader may still be looking at) first bump `seq`; a
//!   reader that misses re-reads `seq` and retries if it changed;
//! - each slot carries a seqlock `version` (odd while being rewritten); a reader accepts
//!   a slot's key/code/size only if the version was even and unchanged around the reads,
//!   so it never pairs one entry's key with another's code.

use crate::sync::{
    AtomicU32, AtomicU64, AtomicUsize, Ordering, StatU32, StatU64, StatUsize, fence,
};

const EMPTY: u64 = 0;
const TOMB: u64 = u64::MAX;

/// Slot states.
pub(crate) const FREE: u32 = 0;
pub(crate) const LIVE: u32 = 1;
pub(crate) const RETIRED: u32 = 2;

/// Proof that the caller holds the writer lock (only `Writer` owns one).
pub(crate) struct WriteToken(());

impl WriteToken {
    pub(crate) fn new() -> Self {
        Self(())
    }
}

/// One entry slot; one cache line so readers of different entries do not share lines.
#[repr(C, align(64))]
#[derive(Default)]
pub(crate) struct Slot {
    pub(crate) version: AtomicU32,
    pub(crate) state: AtomicU32,
    pub(crate) key: AtomicU64,
    pub(crate) code: AtomicUsize,
    pub(crate) size: AtomicU32,
    /// Set (if clear) by a hit, cleared by the policy when it examines the entry: a
    /// CLOCK reference bit that costs at most one shared write per examination.
    pub(crate) referenced: StatU32,
    /// Approximate hit count (relaxed load + store, sampled above 16: see `record_hit`).
    pub(crate) access_count: StatU64,
    /// Logical time of the last recorded hit.
    pub(crate) last_access: StatU64,
}

/// What a successful probe found.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Found {
    pub(crate) slot: u32,
    pub(crate) version: u32,
    pub(crate) code: usize,
    pub(crate) size: u32,
}

pub(crate) struct Index {
    tables: [Table; 2],
    active: AtomicUsize,
    bits: u32,
    seq: AtomicU64,
    pub(crate) slots: Slots,
    /// Writer-only counts (atomics so the struct stays Sync without unsafe).
    used: StatUsize,
    tombs: StatUsize,
}

#[inline]
fn hash(key: u64) -> u64 {
    key.wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

/// A table of `n` EMPTY words, in fresh pages (EMPTY is 0): the kernel maps them only
/// when first touched, so a cache sized for many entries costs nothing at creation for
/// the part a short run never uses (filling them cost about 1 ms of a 7 ms run).
#[cfg(not(loom))]
type Table = crate::zeroed::ZeroedSlice<AtomicU64>;
#[cfg(not(loom))]
fn empty_table(n: usize) -> Table {
    const _: () = assert!(EMPTY == 0);
    Table::new(n)
}

#[cfg(loom)]
type Table = Box<[AtomicU64]>;
#[cfg(loom)]
fn empty_table(n: usize) -> Table {
    (0..n).map(|_| AtomicU64::new(EMPTY)).collect()
}

/// Entry slots are committed in chunks of this many (64 KiB) as the writer first hands
/// them out (lowest first; see `commit_slots`).
pub(crate) const SLOT_CHUNK: u32 = 1024;

/// `n` default slots, in fresh pages (see `empty_table`; the all-zero `Slot` is its
/// default).
#[cfg(not(loom))]
type Slots = crate::zeroed::ZeroedSlice<Slot>;
#[cfg(not(loom))]
fn default_slots(n: usize) -> Slots {
    Slots::new(n)
}

#[cfg(loom)]
type Slots = Box<[Slot]>;
#[cfg(loom)]
fn default_slots(n: usize) -> Slots {
    (0..n).map(|_| Slot::default()).collect()
}

impl Index {
    /// `max_entries` resident keys at most; `slots` entry slots (room for retired ones).
    pub(crate) fn new(max_entries: usize, slots: usize, eager_slots: usize) -> Self {
        let want = (max_entries * 2).max(16).next_power_of_two();
        let bits = want.trailing_zeros();
        let tables = [empty_table(want), empty_table(want)];
        let slots = default_slots(slots);
        // Keys hash all over the active table, so a few hundred entries touch all of
        // its pages: commit them now. The spare table is only used by a rebuild.
        #[cfg(not(loom))]
        {
            tables[0].populate(0, want);
            slots.populate(0, eager_slots);
        }
        #[cfg(loom)]
        let _ = eager_slots;
        Self {
            tables,
            active: AtomicUsize::new(0),
            bits,
            seq: AtomicU64::new(0),
            slots,
            used: StatUsize::new(0),
            tombs: StatUsize::new(0),
        }
    }

    /// Commits the memory of the chunk of slots starting at `first` (called when the
    /// writer takes a chunk's first never-used slot), so filling a chunk takes one
    /// system call instead of two page faults per page.
    pub(crate) fn commit_slots(&self, first: usize) {
        #[cfg(not(loom))]
        self.slots.populate(first, SLOT_CHUNK as usize);
        #[cfg(loom)]
        let _ = first;
    }

    #[inline]
    fn start(&self, h: u64) -> usize {
        (h >> (64 - self.bits)) as usize
    }

    #[inline]
    fn mask(&self) -> usize {
        (1usize << self.bits) - 1
    }

    /// Finds `key`. Never blocks; never misses a key resident for the whole call.
    #[inline(always)]
    pub(crate) fn probe(&self, key: u64) -> Option<Found> {
        let h = hash(key);
        let tag = (h as u32) | 1;
        let mask = self.mask();
        loop {
            let s1 = self.seq.load(Ordering::Acquire);
            let table = &self.tables[self.active.load(Ordering::Acquire) & 1];
            let mut i = self.start(h);
            for _ in 0..=mask {
                let w = table[i].load(Ordering::Acquire);
                if w == EMPTY {
                    break;
                }
                if w != TOMB
                    && (w >> 32) as u32 == tag
                    && let Some(slot) = self.slots.get(w as u32 as usize)
                {
                    let v1 = slot.version.load(Ordering::Acquire);
                    if v1 & 1 == 0 {
                        let k = slot.key.load(Ordering::Relaxed);
                        let code = slot.code.load(Ordering::Relaxed);
                        let size = slot.size.load(Ordering::Relaxed);
                        fence(Ordering::Acquire);
                        if slot.version.load(Ordering::Relaxed) == v1 && k == key {
                            return Some(Found {
                                slot: w as u32,
                                version: v1,
                                code,
                                size,
                            });
                        }
                    }
                }
                i = (i + 1) & mask;
            }
            fence(Ordering::Acquire);
            if self.seq.load(Ordering::Relaxed) == s1 {
                return None;
            }
        }
    }

    /// Position of `key`'s word in the active table and its slot (writer side).
    pub(crate) fn find(&self, _t: &WriteToken, key: u64) -> Option<(usize, u32)> {
        let h = hash(key);
        let tag = (h as u32) | 1;
        let mask = self.mask();
        let table = &self.tables[self.active.load(Ordering::Relaxed) & 1];
        let mut i = self.start(h);
        for _ in 0..=mask {
            let w = table[i].load(Ordering::Relaxed);
            if w == EMPTY {
                return None;
            }
            if w != TOMB
                && (w >> 32) as u32 == tag
                && self.slots[w as u32 as usize].key.load(Ordering::Relaxed) == key
            {
                return Some((i, w as u32));
            }
            i = (i + 1) & mask;
        }
        None
    }

    /// Rewrites a free slot for a new entry (seqlock-protected against stale readers).
    pub(crate) fn fill_slot(
        &self,
        _t: &WriteToken,
        slot: u32,
        key: u64,
        code: usize,
        size: u32,
        now: u64,
    ) {
        let s = &self.slots[slot as usize];
        // A reader holding an old word for this slot may be mid-read: make it retry if it
        // misses. Writers are serialised (the token), so a plain load + store suffices.
        // Release: a reader whose `s1` already includes this bump (so it will not retry)
        // must also see every earlier table store, e.g. the replacement that moved the
        // key off this slot; with Relaxed a weakly ordered host (AArch64) could show it
        // the new `seq` with the old word, and the reader would then miss a resident key.
        self.seq.store(
            self.seq.load(Ordering::Relaxed).wrapping_add(1),
            Ordering::Release,
        );
        let v = s.version.load(Ordering::Relaxed);
        // Release: a reader that sees the odd version also sees the seq bump above.
        s.version.store(v.wrapping_add(1) | 1, Ordering::Release);
        fence(Ordering::Release);
        s.key.store(key, Ordering::Relaxed);
        s.code.store(code, Ordering::Relaxed);
        s.size.store(size, Ordering::Relaxed);
        s.access_count.store(0, Ordering::Relaxed);
        s.referenced.store(0, Ordering::Relaxed);
        s.last_access.store(now, Ordering::Relaxed);
        s.state.store(LIVE, Ordering::Relaxed);
        s.version.store((v | 1).wrapping_add(1), Ordering::Release);
    }

    /// Publishes a new key (not present) pointing at `slot`.
    pub(crate) fn publish(&self, t: &WriteToken, key: u64, slot: u32) {
        if self.used.load(Ordering::Relaxed) + 1 > self.mask() / 4 * 3 {
            self.rebuild(t);
        }
        let h = hash(key);
        let tag = (h as u32) | 1;
        let mask = self.mask();
        let table = &self.tables[self.active.load(Ordering::Relaxed) & 1];
        let mut i = self.start(h);
        for _ in 0..=mask {
            let w = table[i].load(Ordering::Relaxed);
            if w == EMPTY || w == TOMB {
                if w == TOMB {
                    self.tombs
                        .store(self.tombs.load(Ordering::Relaxed) - 1, Ordering::Relaxed);
                } else {
                    self.used
                        .store(self.used.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
                }
                table[i].store(u64::from(tag) << 32 | u64::from(slot), Ordering::Release);
                return;
            }
            i = (i + 1) & mask;
        }
    }

    /// Points an existing key's word (at `pos`) at a new slot in one atomic store.
    pub(crate) fn replace(&self, _t: &WriteToken, pos: usize, key: u64, slot: u32) {
        let tag = (hash(key) as u32) | 1;
        let table = &self.tables[self.active.load(Ordering::Relaxed) & 1];
        table[pos].store(u64::from(tag) << 32 | u64::from(slot), Ordering::Release);
    }

    /// Removes the word at `pos` (leaves a tombstone).
    pub(crate) fn remove(&self, _t: &WriteToken, pos: usize) {
        let table = &self.tables[self.active.load(Ordering::Relaxed) & 1];
        table[pos].store(TOMB, Ordering::Release);
        self.tombs
            .store(self.tombs.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
    }

    /// Marks every word of the active table removed (flush).
    pub(crate) fn clear(&self, t: &WriteToken) {
        let spare = (self.active.load(Ordering::Relaxed) & 1) ^ 1;
        Self::before_reusing_spare();
        for w in self.tables[spare].iter() {
            w.store(EMPTY, Ordering::Relaxed);
        }
        self.switch(t, spare, 0);
    }

    /// Copies the live words into the spare table and switches to it (purges tombstones).
    fn rebuild(&self, t: &WriteToken) {
        let cur = self.active.load(Ordering::Relaxed) & 1;
        let spare = cur ^ 1;
        let mask = self.mask();
        Self::before_reusing_spare();
        for w in self.tables[spare].iter() {
            w.store(EMPTY, Ordering::Relaxed);
        }
        let mut live = 0;
        for w in self.tables[cur].iter() {
            let w = w.load(Ordering::Relaxed);
            if w == EMPTY || w == TOMB {
                continue;
            }
            let key = self.slots[w as u32 as usize].key.load(Ordering::Relaxed);
            let mut i = self.start(hash(key));
            while self.tables[spare][i].load(Ordering::Relaxed) != EMPTY {
                i = (i + 1) & mask;
            }
            self.tables[spare][i].store(w, Ordering::Relaxed);
            live += 1;
        }
        self.switch(t, spare, live);
    }

    /// The spare table may still be scanned by a reader that loaded `active` before the
    /// last switch. The wipe and refill below are Relaxed stores; this fence orders the
    /// earlier `seq` bumps before them, so a reader that sees a wiped or rewritten word
    /// (Acquire load) also sees the bump and retries instead of reporting a miss. (On
    /// x86-64 stores are never reordered; AArch64 needs it.)
    #[inline]
    fn before_reusing_spare() {
        fence(Ordering::Release);
    }

    fn switch(&self, _t: &WriteToken, to: usize, live: usize) {
        // The new table is fully written before readers can reach it (Release), and the
        // seq bump makes readers that missed on the old one retry.
        self.seq.fetch_add(1, Ordering::Release);
        self.active.store(to, Ordering::Release);
        self.seq.fetch_add(1, Ordering::Release);
        self.used.store(live, Ordering::Relaxed);
        self.tombs.store(0, Ordering::Relaxed);
    }
}
