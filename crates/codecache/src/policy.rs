//! Eviction policies. Writer-side only (called under the writer lock), so plain data.
//!
//! Every queue holds `(slot, incarnation)` pairs and is lazy: an entry removed by
//! invalidation or replacement stays in the queues until it reaches the front, where the
//! incarnation check drops it. Hits never touch these structures; they only store
//! `access_count` / `last_access` in the slot, which the policies read when they decide.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};

use crate::EvictionPolicy;
use crate::index::Slot;
use crate::sync::Ordering;

/// Writer-side metadata of one entry slot.
#[derive(Clone, Debug, Default)]
pub(crate) struct Meta {
    pub(crate) key: u64,
    pub(crate) live: bool,
    pub(crate) inc: u32,
    pub(crate) block: Option<crate::alloc::BlockId>,
    pub(crate) size_bytes: usize,
    pub(crate) code_len: usize,
    pub(crate) guest_lo: u64,
    pub(crate) guest_hi: u64,
    pub(crate) compile_cost: u64,
    pub(crate) created: u64,
    /// Frequency decayed at the last decay, and the access count at that moment.
    pub(crate) decayed: f64,
    pub(crate) count_at_decay: u64,
    /// Generational: access count when last examined, and second-chance credit.
    pub(crate) seen: u64,
    pub(crate) credit: u8,
    pub(crate) hot_region: bool,
}

/// Everything a policy may read to score an entry.
pub(crate) struct Ctx<'a> {
    pub(crate) meta: &'a mut [Meta],
    pub(crate) slots: &'a [Slot],
    pub(crate) now: u64,
    pub(crate) live: usize,
    pub(crate) warmup: f64,
}

/// The 0.4·frequency + 0.3·recency + 0.3·age score of the original design, each term in
/// [0, 1]: frequency saturates as f/(f+4) of the decayed hit count; recency is
/// 1/(1 + Δ/(live/4)) with Δ the logical time since the last hit (one tick per insert, so
/// Δ is measured in cache turnover); age is a/(a + warmup) of the logical age.
pub(crate) fn hotness(m: &Meta, s: &Slot, now: u64, live: usize, warmup: f64) -> f64 {
    let count = s.access_count.load(Ordering::Relaxed);
    let freq = m.decayed + count.saturating_sub(m.count_at_decay) as f64;
    let f = freq / (freq + 4.0);
    let dt = now.saturating_sub(s.last_access.load(Ordering::Relaxed)) as f64;
    let r = 1.0 / (1.0 + dt / (live as f64 / 4.0).max(1.0));
    let age = now.saturating_sub(m.created) as f64;
    let a = age / (age + warmup.max(1.0));
    0.4 * f + 0.3 * r + 0.3 * a
}

/// Value of keeping an entry: hotness × (1 + ln(1 + compile cost)) / (1 + ln(1 + size/64)).
pub(crate) fn value(m: &Meta, s: &Slot, now: u64, live: usize, warmup: f64) -> f64 {
    hotness(m, s, now, live, warmup) * (1.0 + (m.compile_cost as f64).ln_1p())
        / (1.0 + (m.size_bytes as f64 / 64.0).ln_1p())
}

type Stamp = Reverse<(u64, u32, u32)>;

pub(crate) enum PolicyState {
    Fifo(VecDeque<(u32, u32)>),
    FlushAll,
    Lru(BinaryHeap<Stamp>),
    Hotness(BinaryHeap<Stamp>),
    Generational(Gen),
}

pub(crate) struct Gen {
    nursery: VecDeque<(u32, u32)>,
    hot: VecDeque<(u32, u32)>,
    nursery_len: usize,
    ghost: VecDeque<u64>,
    ghost_set: HashMap<u64, u32>,
    ghost_cap: usize,
}

fn valid(meta: &[Meta], (slot, inc): (u32, u32)) -> bool {
    meta.get(slot as usize)
        .is_some_and(|m| m.live && m.inc == inc)
}

impl PolicyState {
    pub(crate) fn new(p: EvictionPolicy, max_entries: usize) -> Self {
        match p {
            EvictionPolicy::Fifo => Self::Fifo(VecDeque::with_capacity(max_entries)),
            EvictionPolicy::FlushAll => Self::FlushAll,
            EvictionPolicy::Lru => Self::Lru(BinaryHeap::with_capacity(max_entries)),
            EvictionPolicy::Hotness => Self::Hotness(BinaryHeap::with_capacity(max_entries)),
            EvictionPolicy::Generational => Self::Generational(Gen {
                nursery: VecDeque::with_capacity(max_entries),
                hot: VecDeque::new(),
                nursery_len: 0,
                ghost: VecDeque::new(),
                ghost_set: HashMap::new(),
                ghost_cap: (max_entries / 2).max(1),
            }),
        }
    }

    pub(crate) fn is_flush_all(&self) -> bool {
        matches!(self, Self::FlushAll)
    }

    /// Records a newly inserted entry.
    pub(crate) fn on_insert(&mut self, ctx: &mut Ctx<'_>, slot: u32) {
        let m = &mut ctx.meta[slot as usize];
        let id = (slot, m.inc);
        match self {
            Self::Fifo(q) => q.push_back(id),
            Self::FlushAll => {}
            Self::Lru(h) | Self::Hotness(h) => {
                h.push(Reverse((ctx.now, slot, m.inc)));
                if h.len() > 4 * ctx.live + 1024 {
                    compact_heap(h, ctx.meta);
                }
            }
            Self::Generational(g) => {
                m.seen = 0;
                m.credit = 0;
                let ghost_hit = !g.ghost.is_empty() && g.ghost_set.contains_key(&m.key);
                if ghost_hit {
                    m.hot_region = true;
                    g.hot.push_back(id);
                } else {
                    m.hot_region = false;
                    g.nursery.push_back(id);
                    g.nursery_len += 1;
                }
                if g.nursery.len() + g.hot.len() > 4 * ctx.live + 1024 {
                    let meta = &*ctx.meta;
                    g.nursery.retain(|&e| valid(meta, e));
                    g.hot.retain(|&e| valid(meta, e));
                }
            }
        }
    }

    /// Records that a live entry left the cache for another reason (invalidation,
    /// replacement, eviction chosen elsewhere). Queues are cleaned lazily.
    pub(crate) fn on_remove(&mut self, m: &Meta) {
        if let Self::Generational(g) = self
            && !m.hot_region
        {
            g.nursery_len = g.nursery_len.saturating_sub(1);
        }
    }

    /// Chooses the next victim among live entries, or `None` if none is left.
    /// (`FlushAll` is handled by the caller, which evicts everything.)
    pub(crate) fn victim(&mut self, ctx: &mut Ctx<'_>) -> Option<u32> {
        match self {
            Self::FlushAll => None,
            Self::Fifo(q) => {
                while let Some(e) = q.pop_front() {
                    if valid(ctx.meta, e) {
                        return Some(e.0);
                    }
                }
                None
            }
            Self::Lru(h) => pop_lru(h, ctx),
            Self::Hotness(h) => {
                // Sample 5 cold candidates, evict the one of least value (the worst 20 %),
                // put the others back at their old place at the cold end.
                let mut sample: Vec<u32> = Vec::with_capacity(5);
                let mut stamps: Vec<u64> = Vec::with_capacity(5);
                while sample.len() < 5 {
                    let Some(s) = pop_lru(h, ctx) else { break };
                    stamps.push(ctx.slots[s as usize].last_access.load(Ordering::Relaxed));
                    sample.push(s);
                }
                let (mut worst, mut worst_v) = (None, f64::INFINITY);
                for (i, &s) in sample.iter().enumerate() {
                    let v = value(
                        &ctx.meta[s as usize],
                        &ctx.slots[s as usize],
                        ctx.now,
                        ctx.live,
                        ctx.warmup,
                    );
                    if v < worst_v {
                        worst_v = v;
                        worst = Some(i);
                    }
                }
                // Values are finite by construction; should one ever be NaN, still evict
                // (the first candidate) rather than drop the popped sample from the heap.
                let w = worst.or((!sample.is_empty()).then_some(0))?;
                for (i, &s) in sample.iter().enumerate() {
                    if i != w {
                        h.push(Reverse((stamps[i], s, ctx.meta[s as usize].inc)));
                    }
                }
                Some(sample[w])
            }
            Self::Generational(g) => g.victim(ctx),
        }
    }
}

fn pop_lru(h: &mut BinaryHeap<Stamp>, ctx: &mut Ctx<'_>) -> Option<u32> {
    while let Some(Reverse((stamp, slot, inc))) = h.pop() {
        if !valid(ctx.meta, (slot, inc)) {
            continue;
        }
        let la = ctx.slots[slot as usize].last_access.load(Ordering::Relaxed);
        if la > stamp {
            h.push(Reverse((la, slot, inc)));
            continue;
        }
        return Some(slot);
    }
    None
}

fn compact_heap(h: &mut BinaryHeap<Stamp>, meta: &[Meta]) {
    let v: Vec<Stamp> = std::mem::take(h)
        .into_vec()
        .into_iter()
        .filter(|Reverse((_, s, i))| valid(meta, (*s, *i)))
        .collect();
    *h = BinaryHeap::from(v);
}

impl Gen {
    fn victim(&mut self, ctx: &mut Ctx<'_>) -> Option<u32> {
        loop {
            let from_nursery = self.nursery_len > ctx.live / 10 || self.hot_is_empty(ctx.meta);
            if from_nursery {
                let Some(e) = self.nursery.pop_front() else {
                    self.nursery_len = 0;
                    if self.hot_is_empty(ctx.meta) {
                        return None;
                    }
                    continue;
                };
                if !valid(ctx.meta, e) {
                    continue;
                }
                let m = &mut ctx.meta[e.0 as usize];
                let slot = &ctx.slots[e.0 as usize];
                if slot.referenced.load(Ordering::Relaxed) != 0 {
                    // Used again while in the nursery: promote.
                    self.nursery_len = self.nursery_len.saturating_sub(1);
                    slot.referenced.store(0, Ordering::Relaxed);
                    m.hot_region = true;
                    m.seen = slot.access_count.load(Ordering::Relaxed);
                    m.credit = 1;
                    self.hot.push_back(e);
                    continue;
                }
                // Evicted unused; the caller's `on_remove` updates the nursery count.
                self.remember(m.key);
                return Some(e.0);
            }
            let e = self.hot.pop_front()?;
            if !valid(ctx.meta, e) {
                continue;
            }
            let m = &mut ctx.meta[e.0 as usize];
            let slot = &ctx.slots[e.0 as usize];
            let count = slot.access_count.load(Ordering::Relaxed);
            // Referenced since the last pass: one credit, plus one per 16 recorded hits
            // (hit counts are sampled, the reference bit is exact), at most 3.
            let used = if slot.referenced.load(Ordering::Relaxed) != 0 {
                slot.referenced.store(0, Ordering::Relaxed);
                (1 + count.saturating_sub(m.seen) / 16).min(3) as u8
            } else {
                0
            };
            m.seen = count;
            m.credit = (m.credit + used).min(3);
            if m.credit > 0 {
                m.credit -= 1;
                self.hot.push_back(e);
                continue;
            }
            return Some(e.0);
        }
    }

    fn hot_is_empty(&mut self, meta: &[Meta]) -> bool {
        while let Some(&e) = self.hot.front() {
            if valid(meta, e) {
                return false;
            }
            self.hot.pop_front();
        }
        true
    }

    fn remember(&mut self, key: u64) {
        self.ghost.push_back(key);
        *self.ghost_set.entry(key).or_insert(0) += 1;
        while self.ghost.len() > self.ghost_cap {
            if let Some(k) = self.ghost.pop_front()
                && let Some(c) = self.ghost_set.get_mut(&k)
            {
                *c -= 1;
                if *c == 0 {
                    self.ghost_set.remove(&k);
                }
            }
        }
    }
}
