//! Seeds that once made a differential test fail, per test. Each runs first in every
//! mode, so a fixed bug stays fixed while the generator is unchanged; because a change
//! to the generator gives every seed another sequence (see `random.rs`), every bug here
//! also has a focused test of its own, named next to its seed.

/// `differential`: tier-1 blocks.
pub const TIER1_BLOCKS: &[u64] = &[];
/// `differential`: long blocks at tier 2.
pub const TIER2_BLOCKS: &[u64] = &[];
/// `differential`: chained programs.
pub const CHAINED: &[u64] = &[];
/// `regions`: random regions.
pub const REGIONS: &[u64] = &[];
/// `baseline`: short blocks.
pub const BASELINE_SHORT: &[u64] = &[];
/// `baseline`: long blocks.
pub const BASELINE_LONG: &[u64] = &[];
