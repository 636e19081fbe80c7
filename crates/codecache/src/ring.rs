//! The circular code buffer of the `Fifo` policy (DynamoRIO's FIFO replacement): code
//! is placed at a cursor that moves round the arena; a block that does not fit before
//! the end wraps to offset 0; blocks in the way of the cursor are evicted. No free lists.
//!
//! Units are 16-byte granules, as in `alloc`. The blocks that still hold space (live, or
//! retired and waiting for reclamation) are kept in placement order, which is address
//! order from the oldest one round to the cursor (the sequence wraps at most once), so
//! the block in the way of the cursor is always the oldest: eviction order is insertion
//! order by construction. A block freed in the middle (invalidated, replaced) leaves a
//! hole that the cursor reuses when it gets there.
//!
//! Invariants: held blocks never overlap; the free space in front of the cursor is
//! `[head, tail)` when the oldest held block starts at `tail >= head`, or `[head, end)`
//! then `[0, tail)` when `tail < head`; a block's space is handed out again only after
//! [`Ring::free`] (called by the cache when the block is reclaimed, i.e. no executor can
//! be running it), so a retired block in the way of the cursor stops it: the cache then
//! reports `ReclaimPending`.

use std::collections::VecDeque;

use crate::alloc::{BlockId, granules};

#[derive(Clone, Copy)]
struct Block {
    offset: u32,
    size: u32,
    owner: u32,
    held: bool,
}

/// What [`Ring::place`] did.
pub(crate) enum Place {
    /// Placed at the cursor.
    Placed(BlockId),
    /// This held block (the oldest) is in the way: evict it (and reclaim it) first.
    Blocked(BlockId),
    /// Larger than the whole arena.
    TooLarge,
}

pub(crate) struct Ring {
    blocks: Vec<Block>,
    spare: Vec<u32>,
    /// Block ids in placement order; the front is the oldest.
    order: VecDeque<u32>,
    /// Next placement offset.
    head: u32,
    capacity: u32,
    held: u64,
}

impl Ring {
    /// A ring over `capacity_bytes` rounded down to whole granules, with room reserved
    /// for `max_blocks` block records.
    pub(crate) fn new(capacity_bytes: usize, max_blocks: usize) -> Self {
        Self {
            blocks: Vec::with_capacity(max_blocks),
            spare: Vec::new(),
            order: VecDeque::with_capacity(max_blocks),
            head: 0,
            capacity: u32::try_from(capacity_bytes / crate::alloc::GRANULE).unwrap_or(u32::MAX),
            held: 0,
        }
    }

    pub(crate) fn capacity_granules(&self) -> u32 {
        self.capacity
    }

    pub(crate) fn free_granules(&self) -> u64 {
        u64::from(self.capacity) - self.held
    }

    pub(crate) fn offset(&self, id: BlockId) -> u32 {
        self.blocks[id.0 as usize].offset
    }

    pub(crate) fn size(&self, id: BlockId) -> u32 {
        self.blocks[id.0 as usize].size
    }

    pub(crate) fn owner(&self, id: BlockId) -> u32 {
        self.blocks[id.0 as usize].owner
    }

    /// Whether a block still holds its space (not yet freed).
    pub(crate) fn is_held(&self, id: BlockId) -> bool {
        self.blocks.get(id.0 as usize).is_some_and(|b| b.held)
    }

    /// Places `bytes` at the cursor, wrapping if it does not fit before the end.
    pub(crate) fn place(&mut self, bytes: usize, owner: u32) -> Place {
        let Some(need) = granules(bytes).map(|g| g.max(1)) else {
            return Place::TooLarge;
        };
        if need > self.capacity {
            return Place::TooLarge;
        }
        // Freed blocks at the front no longer stop the cursor.
        while let Some(&f) = self.order.front()
            && !self.blocks[f as usize].held
        {
            self.order.pop_front();
            self.spare.push(f);
        }
        let start = self.head;
        let mut wrapped = false;
        loop {
            let Some(&front) = self.order.front() else {
                // Nothing held: the whole arena is free; start over at 0.
                self.head = 0;
                return Place::Placed(self.push(0, need, owner));
            };
            let tail = self.blocks[front as usize].offset;
            if tail >= self.head {
                // Held data wraps (or fills the ring): free space is [head, tail).
                if tail - self.head >= need {
                    return Place::Placed(self.push(self.head, need, owner));
                }
                // The oldest block is in the way. The cursor stays where it was: if that
                // block cannot be reclaimed yet, a smaller block may still fit before
                // the end later.
                self.head = start;
                return Place::Blocked(BlockId(front));
            }
            // Held data is [tail, head): free space is [head, end), then [0, tail).
            if self.capacity - self.head >= need {
                return Place::Placed(self.push(self.head, need, owner));
            }
            if wrapped {
                // Unreachable: after wrapping, head == 0 <= tail.
                self.head = start;
                return Place::Blocked(BlockId(front));
            }
            // Wrap: nothing is held in [head, end) (all held data is below head).
            self.head = 0;
            wrapped = true;
        }
    }

    fn push(&mut self, offset: u32, size: u32, owner: u32) -> BlockId {
        let b = Block {
            offset,
            size,
            owner,
            held: true,
        };
        let id = if let Some(i) = self.spare.pop() {
            self.blocks[i as usize] = b;
            i
        } else {
            self.blocks.push(b);
            (self.blocks.len() - 1) as u32
        };
        self.order.push_back(id);
        self.head = offset + size;
        self.held += u64::from(size);
        BlockId(id)
    }

    /// Gives a block's space back (the cursor reuses it when it gets there). Freeing the
    /// newest blocks moves the cursor back over them at once.
    pub(crate) fn free(&mut self, id: BlockId) {
        let Some(b) = self.blocks.get_mut(id.0 as usize) else {
            return;
        };
        if !b.held {
            return;
        }
        b.held = false;
        self.held -= u64::from(b.size);
        while let Some(&last) = self.order.back()
            && !self.blocks[last as usize].held
        {
            self.order.pop_back();
            self.spare.push(last);
            self.head = self.blocks[last as usize].offset;
        }
        if self.order.is_empty() {
            self.head = 0;
        }
    }

    /// Largest contiguous free space, in granules (stats only: O(n log n)).
    pub(crate) fn largest_free_granules(&self) -> u32 {
        let mut held: Vec<(u32, u32)> = self
            .order
            .iter()
            .map(|&i| self.blocks[i as usize])
            .filter(|b| b.held)
            .map(|b| (b.offset, b.offset + b.size))
            .collect();
        held.sort_unstable();
        let mut best = 0;
        let mut at = 0;
        for (lo, hi) in held {
            best = best.max(lo.saturating_sub(at));
            at = at.max(hi);
        }
        best.max(self.capacity - at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn placed(p: Place) -> BlockId {
        match p {
            Place::Placed(b) => b,
            _ => panic!("not placed"),
        }
    }

    #[test]
    fn cursor_wraps_and_is_stopped_by_the_oldest_held_block() {
        let mut r = Ring::new(16 * 10, 8);
        let a = placed(r.place(16 * 4, 0));
        let b = placed(r.place(16 * 4, 1));
        assert_eq!((r.offset(a), r.offset(b)), (0, 4));
        // 3 granules do not fit before the end (2 left): wrap, and `a` is in the way.
        assert!(matches!(r.place(16 * 3, 2), Place::Blocked(x) if x == a));
        r.free(a);
        let c = placed(r.place(16 * 3, 2));
        assert_eq!(r.offset(c), 0, "wrapped into a's space");
        // 2 granules: [3, 4) is free, then `b` is in the way.
        assert!(matches!(r.place(16 * 2, 3), Place::Blocked(x) if x == b));
        r.free(b);
        let d = placed(r.place(16 * 2, 3));
        assert_eq!(r.offset(d), 3);
        assert_eq!(r.free_granules(), 5);
        assert_eq!(r.largest_free_granules(), 5, "[5, 10)");
    }

    #[test]
    fn freeing_the_newest_block_moves_the_cursor_back() {
        let mut r = Ring::new(16 * 8, 8);
        let a = placed(r.place(16 * 2, 0));
        let b = placed(r.place(16 * 2, 1));
        r.free(b);
        let c = placed(r.place(16, 2));
        assert_eq!(r.offset(c), 2);
        r.free(a);
        r.free(c);
        assert_eq!((r.free_granules(), r.largest_free_granules()), (8, 8));
        let d = placed(r.place(16 * 8, 3));
        assert_eq!(r.offset(d), 0);
        assert!(matches!(r.place(16 * 9, 4), Place::TooLarge));
    }
}
