//! The interpreter tier: runs guest code by basic blocks, decoding each block once and
//! keeping the decoded form until it is invalidated.

use crate::{Cpu, Exit, Memory};

/// Pre-decoded basic blocks plus the run loop. One per executor (hart).
#[derive(Default)]
pub struct Interpreter {
    _private: (),
}

impl Interpreter {
    pub fn new() -> Self {
        Self::default()
    }

    /// Runs from `cpu.pc` until an [`Exit`] or until at least `budget` instructions were
    /// retired (then [`Exit::Budget`], stopping at a block boundary or earlier).
    pub fn run<M: Memory>(&mut self, cpu: &mut Cpu, mem: &mut M, budget: u64) -> Exit {
        let _ = (cpu, mem, budget);
        todo!("rv64 helper")
    }

    /// Executes exactly one basic block starting at `cpu.pc` (ending after its first
    /// control-transfer instruction, or earlier on an exit). `Ok(())` means the block ran
    /// to its end and `cpu.pc` is the next block's address.
    pub fn run_block<M: Memory>(&mut self, cpu: &mut Cpu, mem: &mut M) -> Result<(), Exit> {
        let _ = (cpu, mem);
        todo!("rv64 helper")
    }

    /// Forgets decoded blocks that contain any byte in `[lo, hi)`.
    pub fn invalidate_range(&mut self, lo: u64, hi: u64) {
        let _ = (lo, hi);
    }

    /// Forgets every decoded block (fence.i).
    pub fn flush(&mut self) {}

    /// Basic blocks executed so far.
    pub fn blocks_executed(&self) -> u64 {
        0
    }
}
