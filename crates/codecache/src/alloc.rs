//! Block allocator for the executable arena: segregated free lists with boundary
//! coalescing (a small TLSF-like design), all bookkeeping outside the arena.
//!
//! Units are 16-byte granules (the code alignment). Every byte of the arena belongs to
//! exactly one block, free or used; blocks are kept in an address-ordered doubly linked
//! list, so freeing merges with free neighbours in O(1) and two free blocks are never
//! adjacent. Free blocks sit in one of 90 bins: exact sizes for 1..=64 granules, then
//! powers of two; a bitmap finds the smallest non-empty bin that fits in O(1).
//! Space freed by any block is reused for blocks of any size.
//!
//! [`Arena`] is what the cache holds: this allocator for every policy but `Fifo`, the
//! circular buffer of `ring` for `Fifo`.

use crate::ring::Ring;

/// Allocation granule and code alignment, in bytes.
pub(crate) const GRANULE: usize = 16;
const NIL: u32 = u32::MAX;
const EXACT_BINS: u32 = 64;
const NBINS: usize = 64 + 26;

#[derive(Clone, Copy)]
struct Block {
    offset: u32,
    size: u32,
    free: bool,
    addr_prev: u32,
    addr_next: u32,
    bin_prev: u32,
    bin_next: u32,
    /// Caller's tag for a used block (the entry slot), so the cache can find who owns a
    /// neighbour of a free hole.
    owner: u32,
}

/// Handle of a used block (index into the block table).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct BlockId(pub(crate) u32);

pub(crate) struct Allocator {
    blocks: Vec<Block>,
    spare: Vec<u32>,
    bins: [u32; NBINS],
    bitmap: u128,
    capacity: u32,
    free: u64,
}

fn bin_of(size: u32) -> usize {
    if size <= EXACT_BINS {
        (size - 1) as usize
    } else {
        (EXACT_BINS + (31 - size.leading_zeros()) - 6) as usize
    }
}

/// Granules needed for `bytes` bytes, or `None` if that does not fit a u32.
pub(crate) fn granules(bytes: usize) -> Option<u32> {
    u32::try_from(bytes.div_ceil(GRANULE)).ok()
}

impl Allocator {
    /// An allocator over `capacity_bytes` rounded down to whole granules, with room
    /// reserved for the block records of `max_used` used blocks (each used block adds at
    /// most one free block), so filling the cache never reallocates the table.
    pub(crate) fn new(capacity_bytes: usize, max_used: usize) -> Self {
        let capacity = u32::try_from(capacity_bytes / GRANULE).unwrap_or(u32::MAX);
        let mut a = Self {
            blocks: Vec::with_capacity(max_used.saturating_mul(2).saturating_add(1)),
            spare: Vec::new(),
            bins: [NIL; NBINS],
            bitmap: 0,
            capacity,
            free: 0,
        };
        if capacity > 0 {
            let id = a.new_block(Block {
                offset: 0,
                size: capacity,
                free: true,
                addr_prev: NIL,
                addr_next: NIL,
                bin_prev: NIL,
                bin_next: NIL,
                owner: NIL,
            });
            a.bin_insert(id);
            a.free = u64::from(capacity);
        }
        a
    }

    pub(crate) fn capacity_bytes(&self) -> usize {
        self.capacity as usize * GRANULE
    }

    pub(crate) fn free_bytes(&self) -> usize {
        self.free as usize * GRANULE
    }

    /// Byte offset of a used block.
    pub(crate) fn offset_bytes(&self, id: BlockId) -> usize {
        self.blocks[id.0 as usize].offset as usize * GRANULE
    }

    /// Size in bytes of a used block.
    pub(crate) fn size_bytes(&self, id: BlockId) -> usize {
        self.blocks[id.0 as usize].size as usize * GRANULE
    }

    /// The owner tag given to `alloc` for a used block.
    pub(crate) fn owner(&self, id: BlockId) -> u32 {
        self.blocks[id.0 as usize].owner
    }

    /// Largest free block, in bytes.
    pub(crate) fn largest_free_bytes(&self) -> usize {
        if self.bitmap == 0 {
            return 0;
        }
        let top = 127 - self.bitmap.leading_zeros() as usize;
        let mut best = 0u32;
        let mut b = self.bins[top];
        while b != NIL {
            best = best.max(self.blocks[b as usize].size);
            b = self.blocks[b as usize].bin_next;
        }
        best as usize * GRANULE
    }

    /// External fragmentation: 1 - largest free block / all free space (0 when nothing is
    /// free or the free space is one block).
    pub(crate) fn fragmentation(&self) -> f64 {
        if self.free == 0 {
            return 0.0;
        }
        1.0 - self.largest_free_bytes() as f64 / self.free_bytes() as f64
    }

    /// The used neighbour block right after the largest free hole (or before it, if the
    /// hole ends the arena): evicting it grows the largest hole. `None` if no block is used.
    pub(crate) fn neighbour_of_largest_hole(&self) -> Option<BlockId> {
        let mut best: Option<u32> = None;
        for (i, blk) in self.blocks.iter().enumerate() {
            if blk.free
                && blk.size > 0
                && best.is_none_or(|b| self.blocks[b as usize].size < blk.size)
            {
                best = Some(i as u32);
            }
        }
        let Some(h) = best else {
            // Nothing free: any used block will do; take the first in address order.
            return self
                .blocks
                .iter()
                .position(|b| !b.free && b.size > 0)
                .map(|i| BlockId(i as u32));
        };
        let hole = self.blocks[h as usize];
        for n in [hole.addr_next, hole.addr_prev] {
            if n != NIL && !self.blocks[n as usize].free {
                return Some(BlockId(n));
            }
        }
        None
    }

    /// Allocates `bytes` (rounded up to granules). `None` if no free block is large enough.
    pub(crate) fn alloc(&mut self, bytes: usize, owner: u32) -> Option<BlockId> {
        let need = granules(bytes)?.max(1);
        if need > self.capacity {
            return None;
        }
        let bin = bin_of(need);
        let mut found = NIL;
        if need > EXACT_BINS {
            let mut b = self.bins[bin];
            while b != NIL {
                if self.blocks[b as usize].size >= need {
                    found = b;
                    break;
                }
                b = self.blocks[b as usize].bin_next;
            }
        } else if self.bins[bin] != NIL {
            found = self.bins[bin];
        }
        if found == NIL {
            let above = if bin + 1 >= 128 {
                0
            } else {
                self.bitmap & !((1u128 << (bin + 1)) - 1)
            };
            if above == 0 {
                return None;
            }
            found = self.bins[above.trailing_zeros() as usize];
        }
        self.bin_remove(found);
        let blk = self.blocks[found as usize];
        if blk.size > need {
            let rest = self.new_block(Block {
                offset: blk.offset + need,
                size: blk.size - need,
                free: true,
                addr_prev: found,
                addr_next: blk.addr_next,
                bin_prev: NIL,
                bin_next: NIL,
                owner: NIL,
            });
            if blk.addr_next != NIL {
                self.blocks[blk.addr_next as usize].addr_prev = rest;
            }
            let b = &mut self.blocks[found as usize];
            b.addr_next = rest;
            b.size = need;
            self.bin_insert(rest);
        }
        self.blocks[found as usize].free = false;
        self.blocks[found as usize].owner = owner;
        self.free -= u64::from(need);
        Some(BlockId(found))
    }

    /// Returns a used block to the free space, merging it with free neighbours.
    pub(crate) fn free(&mut self, id: BlockId) {
        let mut cur = id.0;
        let Some(b) = self.blocks.get(cur as usize).copied() else {
            return;
        };
        if b.free {
            return;
        }
        self.free += u64::from(b.size);
        self.blocks[cur as usize].free = true;
        let next = b.addr_next;
        if next != NIL && self.blocks[next as usize].free {
            self.bin_remove(next);
            self.absorb_next(cur);
        }
        let prev = self.blocks[cur as usize].addr_prev;
        if prev != NIL && self.blocks[prev as usize].free {
            self.bin_remove(prev);
            self.absorb_next(prev);
            cur = prev;
        }
        self.bin_insert(cur);
    }

    /// Merges the address-next block of `a` into `a` and recycles its record.
    fn absorb_next(&mut self, a: u32) {
        let n = self.blocks[a as usize].addr_next;
        let nb = self.blocks[n as usize];
        let ab = &mut self.blocks[a as usize];
        ab.size += nb.size;
        ab.addr_next = nb.addr_next;
        if nb.addr_next != NIL {
            self.blocks[nb.addr_next as usize].addr_prev = a;
        }
        self.blocks[n as usize].size = 0;
        self.spare.push(n);
    }

    fn new_block(&mut self, b: Block) -> u32 {
        if let Some(i) = self.spare.pop() {
            self.blocks[i as usize] = b;
            i
        } else {
            self.blocks.push(b);
            (self.blocks.len() - 1) as u32
        }
    }

    fn bin_insert(&mut self, id: u32) {
        let bin = bin_of(self.blocks[id as usize].size);
        let head = self.bins[bin];
        {
            let b = &mut self.blocks[id as usize];
            b.bin_prev = NIL;
            b.bin_next = head;
        }
        if head != NIL {
            self.blocks[head as usize].bin_prev = id;
        }
        self.bins[bin] = id;
        self.bitmap |= 1u128 << bin;
    }

    fn bin_remove(&mut self, id: u32) {
        let b = self.blocks[id as usize];
        let bin = bin_of(b.size);
        if b.bin_prev != NIL {
            self.blocks[b.bin_prev as usize].bin_next = b.bin_next;
        } else {
            self.bins[bin] = b.bin_next;
            if b.bin_next == NIL {
                self.bitmap &= !(1u128 << bin);
            }
        }
        if b.bin_next != NIL {
            self.blocks[b.bin_next as usize].bin_prev = b.bin_prev;
        }
    }
}

/// The arena's space manager: segregated fit with coalescing ([`Allocator`]) for every
/// policy but `Fifo`, which places code in a circular buffer ([`Ring`]).
#[expect(
    clippy::large_enum_variant,
    reason = "one per cache, inside the writer state: boxing would only add an indirection"
)]
pub(crate) enum Arena {
    Fit(Allocator),
    Ring(Ring),
}

impl Arena {
    pub(crate) fn capacity_bytes(&self) -> usize {
        match self {
            Self::Fit(a) => a.capacity_bytes(),
            Self::Ring(r) => r.capacity_granules() as usize * GRANULE,
        }
    }

    pub(crate) fn free_bytes(&self) -> usize {
        match self {
            Self::Fit(a) => a.free_bytes(),
            Self::Ring(r) => r.free_granules() as usize * GRANULE,
        }
    }

    pub(crate) fn largest_free_bytes(&self) -> usize {
        match self {
            Self::Fit(a) => a.largest_free_bytes(),
            Self::Ring(r) => r.largest_free_granules() as usize * GRANULE,
        }
    }

    /// 1 - largest free block / all free space (0 when nothing is free).
    pub(crate) fn fragmentation(&self) -> f64 {
        match self {
            Self::Fit(a) => a.fragmentation(),
            Self::Ring(_) => {
                let free = self.free_bytes();
                if free == 0 {
                    return 0.0;
                }
                1.0 - self.largest_free_bytes() as f64 / free as f64
            }
        }
    }

    pub(crate) fn offset_bytes(&self, id: BlockId) -> usize {
        match self {
            Self::Fit(a) => a.offset_bytes(id),
            Self::Ring(r) => r.offset(id) as usize * GRANULE,
        }
    }

    pub(crate) fn size_bytes(&self, id: BlockId) -> usize {
        match self {
            Self::Fit(a) => a.size_bytes(id),
            Self::Ring(r) => r.size(id) as usize * GRANULE,
        }
    }

    pub(crate) fn free(&mut self, id: BlockId) {
        match self {
            Self::Fit(a) => a.free(id),
            Self::Ring(r) => r.free(id),
        }
    }

    /// [`Allocator::alloc`] (`None` for the ring, which places with [`Ring::place`]).
    pub(crate) fn fit_alloc(&mut self, bytes: usize, owner: u32) -> Option<BlockId> {
        match self {
            Self::Fit(a) => a.alloc(bytes, owner),
            Self::Ring(_) => None,
        }
    }

    /// [`Allocator::neighbour_of_largest_hole`] and its owner (`None` for the ring).
    pub(crate) fn fit_neighbour_of_largest_hole(&self) -> Option<(BlockId, u32)> {
        match self {
            Self::Fit(a) => a.neighbour_of_largest_hole().map(|b| (b, a.owner(b))),
            Self::Ring(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn freed_space_is_reused_for_other_sizes_and_coalesces() {
        let mut a = Allocator::new(16 * 100, 4);
        let x = a.alloc(16 * 30, 0).unwrap();
        let y = a.alloc(16 * 30, 0).unwrap();
        let z = a.alloc(16 * 40, 0).unwrap();
        assert!(a.alloc(16, 0).is_none());
        a.free(x);
        a.free(y);
        // Two adjacent 30-granule holes merged into one of 60.
        assert_eq!(a.largest_free_bytes(), 16 * 60);
        let w = a.alloc(16 * 55, 0).unwrap();
        assert_eq!(a.offset_bytes(w), 0);
        a.free(z);
        a.free(w);
        assert_eq!(a.free_bytes(), 16 * 100);
        assert_eq!(a.largest_free_bytes(), 16 * 100);
        assert_eq!(a.fragmentation(), 0.0);
    }

    #[test]
    fn fragmentation_reports_split_free_space() {
        let mut a = Allocator::new(16 * 4, 4);
        let b: Vec<_> = (0..4).map(|_| a.alloc(16, 0).unwrap()).collect();
        a.free(b[0]);
        a.free(b[2]);
        assert!((a.fragmentation() - 0.5).abs() < 1e-9);
        assert_eq!(
            a.neighbour_of_largest_hole().map(|n| a.offset_bytes(n)),
            Some(16)
        );
    }
}
