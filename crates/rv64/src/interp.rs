//! The interpreter tier: runs guest code by basic blocks, decoding each block once and
//! keeping the decoded form until it is invalidated.
//!
//! Invariants:
//! - A block is a run of instructions decoded from consecutive addresses, ending after
//!   the first instruction for which [`Op::ends_block`](crate::Op::ends_block) holds, before an instruction that
//!   could not be fetched, or at [`MAX_BLOCK_INSNS`]. Only its last instruction can
//!   change control flow, so the loop needs no per-instruction pc bookkeeping.
//! - An undecodable instruction is kept as [`Op::Illegal`](crate::Op::Illegal) and reported only if reached.
//! - `instret` is added once per block; when an exit happens inside a block it is exact
//!   (instructions before the exiting one retired, the exiting one did not, except
//!   `fence.i`), and rdinstret inside a block sees the exact count too.
//! - Blocks are found through a direct-mapped jump cache in front of a `HashMap`; both
//!   forget a block as soon as it is invalidated.
//! - Each decoded block carries a `mark`, a word the embedder owns (the JIT counts the
//!   block's interpreted runs there and notes that the code cache lacks it), 0 when the
//!   block is decoded and gone with the block.

use std::collections::HashMap;

use crate::exec::{EXITED, misaligned_fetch, step};
use crate::{Cpu, Exit, Insn, Memory, decode};

/// Longest block the interpreter decodes, in instructions.
pub const MAX_BLOCK_INSNS: usize = 128;

/// log2 of the jump cache's entries: 32 768 (512 KiB), so a program whose hot code is a
/// few thousand blocks spread over a megabyte (largecode's phases) does not keep
/// evicting its own blocks into the hash map (largecode interpreted 0.128 -> 0.115 s
/// against 4096 entries).
const JC_BITS: u32 = 15;
const JC_SIZE: usize = 1 << JC_BITS;

/// Entries of the interpreter's direct-mapped jump cache: blocks whose start pcs differ
/// by a multiple of `2 * JUMP_CACHE_ENTRIES` share an entry.
pub const JUMP_CACHE_ENTRIES: usize = JC_SIZE;

/// Direct-mapped pc -> block index, two words per entry: the pc (`JC_EMPTY` for none)
/// and the index. Written in full at creation: a zero-initialised table committed as
/// used had each page read first (a miss maps the shared zero page) and written next,
/// and that copy-on-write fault flushes the TLB of every CPU the process runs on (1.4 %
/// of intalg's time went to those flushes).
struct JumpCache {
    words: Box<[u64]>,
}

/// A tag no block can have: pcs are even (branch and jump targets are, and `jalr`
/// clears bit 0), so `run_block` never looks this tag up.
const JC_EMPTY: u64 = u64::MAX;

impl JumpCache {
    fn new() -> Self {
        JumpCache {
            words: vec![JC_EMPTY; 2 * JC_SIZE].into_boxed_slice(),
        }
    }

    #[inline]
    fn slot(pc: u64) -> usize {
        ((pc >> 1) as usize) & (JC_SIZE - 1)
    }

    /// The block index cached for `pc`.
    #[inline]
    fn get(&self, pc: u64) -> Option<u32> {
        let s = 2 * Self::slot(pc);
        (self.words[s] == pc).then(|| self.words[s + 1] as u32)
    }

    #[inline]
    fn set(&mut self, pc: u64, idx: u32) {
        let s = 2 * Self::slot(pc);
        self.words[s] = pc;
        self.words[s + 1] = u64::from(idx);
    }

    fn clear(&mut self) {
        self.words.fill(JC_EMPTY);
    }
}

struct Block {
    start: u64,
    /// One past the last byte of the last instruction.
    end: u64,
    insns: Box<[Insn]>,
    /// The embedder's word (see the module docs).
    mark: u32,
}

/// Pre-decoded basic blocks plus the run loop. One per executor (hart).
pub struct Interpreter {
    blocks: Vec<Block>,
    index: HashMap<u64, u32>,
    jump_cache: JumpCache,
    blocks_executed: u64,
}

impl Default for Interpreter {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for Interpreter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Interpreter")
            .field("blocks", &self.blocks.len())
            .field("blocks_executed", &self.blocks_executed)
            .finish()
    }
}

impl Interpreter {
    pub fn new() -> Self {
        Interpreter {
            blocks: Vec::new(),
            index: HashMap::new(),
            jump_cache: JumpCache::new(),
            blocks_executed: 0,
        }
    }

    /// Runs from `cpu.pc` until an [`Exit`] or until at least `budget` instructions were
    /// retired (then [`Exit::Budget`], stopping at a block boundary or earlier).
    pub fn run<M: Memory>(&mut self, cpu: &mut Cpu, mem: &mut M, budget: u64) -> Exit {
        let start = cpu.instret;
        loop {
            if cpu.instret.wrapping_sub(start) >= budget {
                return Exit::Budget;
            }
            if let Err(e) = self.run_block(cpu, mem) {
                return e;
            }
        }
    }

    /// Executes exactly one basic block starting at `cpu.pc` (ending after its first
    /// control-transfer instruction, or earlier on an exit). `Ok(())` means the block ran
    /// to its end and `cpu.pc` is the next block's address.
    #[inline]
    pub fn run_block<M: Memory>(&mut self, cpu: &mut Cpu, mem: &mut M) -> Result<(), Exit> {
        let pc0 = cpu.pc;
        let idx = match self.jump_cache.get(pc0) {
            Some(idx) => idx,
            None if pc0 & 1 != 0 => return Err(misaligned_fetch(pc0)),
            None => {
                let idx = self.find_or_build(pc0, mem)?;
                self.jump_cache.set(pc0, idx);
                idx
            }
        };
        self.blocks_executed += 1;
        let block = &self.blocks[idx as usize];
        let mut pc = pc0;
        let mut exit = Exit::Budget;
        for (k, insn) in block.insns.iter().enumerate() {
            let next = step(cpu, mem, insn, pc, k as u64, &mut exit);
            if next == EXITED {
                let e = exit_in_block(cpu, pc, insn.len, k, exit);
                if e == Exit::FenceI {
                    self.flush();
                }
                return Err(e);
            }
            pc = next;
        }
        cpu.pc = pc;
        cpu.instret += block.insns.len() as u64;
        Ok(())
    }

    /// Retires exactly `count` instructions from `cpu.pc` ([`Exit::Budget`]) unless an
    /// exit comes first; the last block may be left part way, with `cpu.pc` at the
    /// first instruction not run. For an embedder that must stop where another
    /// execution stopped (a crosscheck); [`Interpreter::run`] is the fast path.
    pub fn run_exact<M: Memory>(&mut self, cpu: &mut Cpu, mem: &mut M, count: u64) -> Exit {
        let end = cpu.instret.wrapping_add(count);
        loop {
            let left = end.wrapping_sub(cpu.instret);
            if left == 0 {
                return Exit::Budget;
            }
            let pc0 = cpu.pc;
            let idx = match self.jump_cache.get(pc0) {
                Some(idx) => idx,
                None if pc0 & 1 != 0 => return misaligned_fetch(pc0),
                None => match self.find_or_build(pc0, mem) {
                    Ok(idx) => {
                        self.jump_cache.set(pc0, idx);
                        idx
                    }
                    Err(e) => return e,
                },
            };
            self.blocks_executed += 1;
            let block = &self.blocks[idx as usize];
            let take = block
                .insns
                .len()
                .min(usize::try_from(left).unwrap_or(usize::MAX));
            let mut pc = pc0;
            let mut exit = Exit::Budget;
            for (k, insn) in block.insns[..take].iter().enumerate() {
                let next = step(cpu, mem, insn, pc, k as u64, &mut exit);
                if next == EXITED {
                    let e = exit_in_block(cpu, pc, insn.len, k, exit);
                    if e == Exit::FenceI {
                        self.flush();
                    }
                    return e;
                }
                pc = next;
            }
            cpu.pc = pc;
            cpu.instret += take as u64;
        }
    }

    #[cold]
    fn find_or_build<M: Memory>(&mut self, pc: u64, mem: &M) -> Result<u32, Exit> {
        if let Some(&idx) = self.index.get(&pc) {
            return Ok(idx);
        }
        let block = build_block(pc, mem)?;
        let idx = self.blocks.len() as u32;
        self.blocks.push(block);
        self.index.insert(pc, idx);
        Ok(idx)
    }

    /// Forgets decoded blocks that contain any byte in `[lo, hi)`.
    pub fn invalidate_range(&mut self, lo: u64, hi: u64) {
        let before = self.blocks.len();
        self.blocks.retain(|b| b.end <= lo || b.start >= hi);
        if self.blocks.len() != before {
            self.reindex();
        }
    }

    /// Forgets every decoded block (fence.i).
    pub fn flush(&mut self) {
        self.blocks.clear();
        self.reindex();
    }

    fn reindex(&mut self) {
        self.index.clear();
        for (i, b) in self.blocks.iter().enumerate() {
            self.index.insert(b.start, i as u32);
        }
        self.jump_cache.clear();
    }

    /// The mark of the decoded block starting at `pc`, if the jump cache holds it (one
    /// probe of the table `run_block` probes next: for use on every dispatch).
    #[inline]
    pub fn cached_mark(&self, pc: u64) -> Option<u32> {
        let idx = self.jump_cache.get(pc)?;
        self.blocks.get(idx as usize).map(|b| b.mark)
    }

    /// Sets the mark of the decoded block at `pc` if the jump cache holds it; false
    /// otherwise.
    #[inline]
    pub fn set_cached_mark(&mut self, pc: u64, mark: u32) -> bool {
        let Some(idx) = self.jump_cache.get(pc) else {
            return false;
        };
        match self.blocks.get_mut(idx as usize) {
            Some(b) => {
                b.mark = mark;
                true
            }
            None => false,
        }
    }

    /// Sets the mark of every decoded block to 0 (an embedder that lost track of which
    /// marks are stale).
    pub fn clear_marks(&mut self) {
        for b in &mut self.blocks {
            b.mark = 0;
        }
    }

    /// Sets the mark of the decoded block at `pc`, wherever it is cached; false if no
    /// block starting at `pc` is decoded.
    pub fn set_mark(&mut self, pc: u64, mark: u32) -> bool {
        if self.set_cached_mark(pc, mark) {
            return true;
        }
        match self
            .index
            .get(&pc)
            .and_then(|&i| self.blocks.get_mut(i as usize))
        {
            Some(b) => {
                b.mark = mark;
                true
            }
            None => false,
        }
    }

    /// Basic blocks executed so far.
    pub fn blocks_executed(&self) -> u64 {
        self.blocks_executed
    }

    /// Decoded blocks currently kept.
    pub fn blocks_cached(&self) -> usize {
        self.blocks.len()
    }
}

/// Brings `cpu` up to date after instruction `k` of a block (at `pc`, `len` bytes long)
/// exited.
#[cold]
fn exit_in_block(cpu: &mut Cpu, pc: u64, len: u8, k: usize, e: Exit) -> Exit {
    if e.retired() {
        cpu.pc = pc.wrapping_add(len as u64);
        cpu.instret += k as u64 + 1;
    } else {
        cpu.pc = pc;
        cpu.instret += k as u64;
    }
    e
}

/// Fetches one instruction's raw bits at `pc` (two 16-bit parcels for a 32-bit one).
pub fn fetch<M: Memory>(mem: &M, pc: u64) -> Result<u32, crate::MemFault> {
    let lo = mem.fetch16(pc)?;
    if crate::insn_len(lo) == 2 {
        Ok(lo as u32)
    } else {
        let hi = mem.fetch16(pc.wrapping_add(2))?;
        Ok(lo as u32 | (hi as u32) << 16)
    }
}

/// Decodes the basic block at `start` with the interpreter's boundaries: up to and
/// including the first instruction that ends a block, at most [`MAX_BLOCK_INSNS`]
/// instructions, stopping before an instruction that cannot be fetched (the next block
/// starts there and reports the fault). An undecodable instruction is kept as
/// [`Op::Illegal`](crate::Op::Illegal) so reaching it reports [`Exit::Illegal`]. The JIT
/// translates exactly these blocks, so both tiers agree on boundaries.
///
/// Each instruction comes with its address. Fails only if `start` is misaligned or its
/// first instruction cannot be fetched.
pub fn decode_block<M: Memory>(mem: &M, start: u64) -> Result<Vec<(u64, Insn)>, Exit> {
    if start & 1 != 0 {
        return Err(misaligned_fetch(start));
    }
    let mut block = Vec::new();
    let mut pc = start;
    loop {
        let raw = match fetch(mem, pc) {
            Ok(raw) => raw,
            Err(fault) if block.is_empty() => return Err(Exit::Fault { pc, fault }),
            Err(_) => break,
        };
        let insn = decode(raw).unwrap_or(Insn::illegal(raw));
        block.push((pc, insn));
        pc = pc.wrapping_add(insn.len as u64);
        if insn.op.ends_block() || block.len() >= MAX_BLOCK_INSNS {
            break;
        }
    }
    Ok(block)
}

fn build_block<M: Memory>(start: u64, mem: &M) -> Result<Block, Exit> {
    let decoded = decode_block(mem, start)?;
    let end = decoded
        .last()
        .map_or(start, |(pc, insn)| pc.wrapping_add(insn.len as u64));
    Ok(Block {
        start,
        end,
        insns: decoded.into_iter().map(|(_, insn)| insn).collect(),
        mark: 0,
    })
}
