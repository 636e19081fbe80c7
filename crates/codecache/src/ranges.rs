//! Live entries by guest range, for `invalidate_range`: a hash map from the guest page a
//! range starts in (4 KiB pages) to an intrusive doubly linked list of entry slots, plus
//! a histogram of range lengths by bit length. Writer-side only (under the writer lock).
//!
//! Insert and remove are O(1) (one hash probe, a few stores). A query `[lo, hi)` visits
//! only the pages where an intersecting range can start: from `lo - longest` to `hi - 1`,
//! where `longest` is the largest live length rounded up to `2^k - 1` (the top non-empty
//! histogram bucket), so it shrinks again when long ranges leave. Cost: O(pages + entries
//! starting on them), which for a small range and JIT-sized blocks is one or two hash
//! probes plus the hits. If that page span exceeds the number of slots (some live range
//! is enormous), the query scans every slot instead, so it is never worse than O(slots).

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

const NIL: u32 = u32::MAX;
const PAGE_SHIFT: u32 = 12;

/// Multiplicative hash for page numbers (the map's keys are plain integers).
#[derive(Default)]
pub(crate) struct PageHasher(u64);

impl Hasher for PageHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = (n ^ (n >> 29)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

#[derive(Clone, Copy)]
struct Node {
    lo: u64,
    hi: u64,
    prev: u32,
    next: u32,
}

const ABSENT: Node = Node {
    lo: 0,
    hi: 0,
    prev: NIL,
    next: NIL,
};

pub(crate) struct RangeIndex {
    /// Start page -> first slot of its list.
    heads: HashMap<u64, u32, BuildHasherDefault<PageHasher>>,
    /// Per slot: its range (`lo == hi == 0`: not indexed) and list links. Grown as slots
    /// are first indexed (slots are handed out lowest first), up to `slots`.
    nodes: Vec<Node>,
    slots: usize,
    /// Live ranges by bit length of `hi - lo` (1..=64).
    lens: [u32; 65],
    live: usize,
}

fn bits(len: u64) -> usize {
    (64 - len.leading_zeros()) as usize
}

impl RangeIndex {
    pub(crate) fn new(slots: usize) -> Self {
        Self {
            heads: HashMap::default(),
            // Reserved, not written: the allocator maps it and the kernel commits
            // pages as nodes are first used.
            nodes: Vec::with_capacity(slots),
            slots,
            lens: [0; 65],
            live: 0,
        }
    }

    /// Indexes `slot` under `[lo, hi)` (`lo < hi`; the slot must not be indexed).
    pub(crate) fn insert(&mut self, slot: u32, lo: u64, hi: u64) {
        if lo >= hi || slot as usize >= self.slots {
            return;
        }
        if slot as usize >= self.nodes.len() {
            self.nodes.resize(slot as usize + 1, ABSENT);
        }
        if self.nodes[slot as usize].hi != 0 {
            return;
        }
        let head = self.heads.entry(lo >> PAGE_SHIFT).or_insert(NIL);
        let next = *head;
        *head = slot;
        if next != NIL {
            self.nodes[next as usize].prev = slot;
        }
        self.nodes[slot as usize] = Node {
            lo,
            hi,
            prev: NIL,
            next,
        };
        self.lens[bits(hi - lo)] += 1;
        self.live += 1;
    }

    /// Removes `slot` (no-op if not indexed).
    pub(crate) fn remove(&mut self, slot: u32) {
        let Some(&n) = self.nodes.get(slot as usize) else {
            return;
        };
        if n.hi == 0 {
            return;
        }
        if n.prev != NIL {
            self.nodes[n.prev as usize].next = n.next;
        } else if n.next != NIL {
            self.heads.insert(n.lo >> PAGE_SHIFT, n.next);
        } else {
            self.heads.remove(&(n.lo >> PAGE_SHIFT));
        }
        if n.next != NIL {
            self.nodes[n.next as usize].prev = n.prev;
        }
        self.nodes[slot as usize] = ABSENT;
        self.lens[bits(n.hi - n.lo)] -= 1;
        self.live -= 1;
    }

    /// Appends to `out` every indexed slot whose range intersects `[lo, hi)`.
    pub(crate) fn query(&self, lo: u64, hi: u64, out: &mut Vec<u32>) {
        if lo >= hi || self.live == 0 {
            return;
        }
        let top = self.lens.iter().rposition(|&c| c > 0).unwrap_or(0);
        // Every live length is < 2^top.
        let longest = if top >= 64 {
            u64::MAX
        } else {
            (1u64 << top) - 1
        };
        let first = lo.saturating_sub(longest) >> PAGE_SHIFT;
        let last = (hi - 1) >> PAGE_SHIFT;
        let meets = |n: &Node| n.hi != 0 && n.lo < hi && n.hi > lo;
        if last - first >= self.nodes.len() as u64 {
            out.extend((0..self.nodes.len() as u32).filter(|&s| meets(&self.nodes[s as usize])));
            return;
        }
        for page in first..=last {
            let Some(&head) = self.heads.get(&page) else {
                continue;
            };
            let mut s = head;
            while s != NIL {
                let n = &self.nodes[s as usize];
                if meets(n) {
                    out.push(s);
                }
                s = n.next;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(r: &RangeIndex, lo: u64, hi: u64) -> Vec<u32> {
        let mut v = Vec::new();
        r.query(lo, hi, &mut v);
        v.sort_unstable();
        v
    }

    #[test]
    fn finds_exactly_the_intersecting_ranges_and_forgets_removed_ones() {
        let mut r = RangeIndex::new(8);
        r.insert(0, 0x1000, 0x1010);
        r.insert(1, 0x1008, 0x1020);
        r.insert(2, 0x5000, 0x5004);
        r.insert(3, 0x100, 0x9000); // long: starts 3 pages below 0x5000
        assert_eq!(q(&r, 0x100c, 0x100d), vec![0, 1, 3]);
        assert_eq!(q(&r, 0x5003, 0x5010), vec![2, 3]);
        assert_eq!(q(&r, 0x9000, 0xa000), Vec::<u32>::new());
        r.remove(3);
        r.remove(0);
        assert_eq!(q(&r, 0x100c, 0x5001), vec![1, 2]);
        r.remove(1);
        r.remove(1);
        r.remove(2);
        assert_eq!(q(&r, 0, u64::MAX), Vec::<u32>::new());
        assert!(r.heads.is_empty() && r.live == 0);
    }

    #[test]
    fn an_enormous_range_falls_back_to_a_scan() {
        let mut r = RangeIndex::new(4);
        r.insert(0, 1, u64::MAX);
        r.insert(1, u64::MAX - 2, u64::MAX);
        assert_eq!(q(&r, u64::MAX - 1, u64::MAX), vec![0, 1]);
        assert_eq!(q(&r, 0, 1), Vec::<u32>::new());
    }
}
