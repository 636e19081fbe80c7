//! Differential test: random blocks (every instruction class, every compressed form, F/D
//! with every rounding mode, A with LR/SC pairs, Zicsr, accesses at page edges and
//! across the page map, self-loops) run as translated code and through `rv64::execute`
//! from the same random state; registers, pc, instret, fflags, frm, reservation, exit,
//! memory, the chain budget left and jump-cache hits must agree. Tier 1 (Quick) and
//! tier 2 (Speed) blocks run in every context layout the engine and the tests use;
//! chained programs put a second block, Cranelift or baseline code, in the jump cache
//! where the first one continues.
//!
//! Default (CI): the regression seeds and a fixed slice of seeds per test. Long mode,
//! 1 000 000 sequences per test on every core, a summary per tier at the end:
//!
//! ```text
//! VMJIT_DIFF_LONG=1 cargo test -p translate --release --test differential -- --nocapture
//! ```
//!
//! Replay one seed (printed by a failure): `VMJIT_DIFF_SEED=<n> cargo test -p translate
//! --release --test differential <test name> -- --nocapture`. `VMJIT_DIFF_COUNT=<n>`
//! sets the number of seeds, `VMJIT_DIFF_FIRST=<n>` where they start (after the test's
//! first), `VMJIT_DIFF_THREADS=<n>` the long mode's threads. See `common/runner.rs`.

mod common;

use common::coverage::{ALL_OPS, Coverage, Expect, exit_kind};
use common::program::{
    self, Context, Entry, Run, Setup, Translators, compare, listing, reference, run_translated,
};
use common::regressions;
use common::runner::{Tally, Tier, assert_covers, run};
use common::*;
use rv64::{Cpu, Op};
use translate::{Baseline, OptLevel, status};

/// A random program with its initial state and how to run it.
struct Sequence {
    blocks: Vec<Entry>,
    cpu: Cpu,
    mem: Vec<u8>,
    perms: Vec<u8>,
    budget: u64,
    setup: Setup,
    /// Per block: translated by the baseline tier, with this tier-up counter index.
    baseline: Vec<Option<Option<u32>>>,
    counters: Vec<u32>,
    no_jump_cache: bool,
}

impl Sequence {
    /// The reference run, recording coverage.
    fn reference(&self, cov: Option<&mut Coverage>) -> (Outcome, program::Flow) {
        let mut cpu = self.cpu.clone();
        cpu.pc = self.blocks[0].start();
        reference(
            &self.blocks,
            self.setup.chained(),
            cpu,
            self.mem.clone(),
            &self.perms,
            self.budget,
            cov,
        )
    }
}

/// One random block, in the setup `seed % 4` names.
fn block_sequence(seed: u64, max_body: u64) -> Sequence {
    let mut rng = Rng::new(seed);
    let block = random_block(&mut rng, max_body);
    let cpu = random_cpu(&mut rng);
    let mem = random_mem(&mut rng);
    let perms = random_perms(&mut rng);
    let budget = rng.pick(&[0, 0, 1, 2, 5, 100]);
    let setup = Setup::ALL[(seed % 4) as usize];
    // A chained block may find itself in the jump cache (a `jalr` back to its start), or
    // find no jump cache at all when the shape is not compiled in.
    let in_jc = setup.chained() && rng.chance(50);
    let no_jump_cache = setup == Setup::Chained && !in_jc && rng.chance(50);
    Sequence {
        blocks: vec![Entry { block, in_jc }],
        cpu,
        mem,
        perms,
        budget,
        setup,
        baseline: vec![None],
        counters: vec![],
        no_jump_cache,
    }
}

/// Block A and, where A continues, block B in the jump cache (when it does not overlap
/// A), each Cranelift or, when it can be, baseline code; chained in one of the two
/// chained setups.
fn chained_sequence(seed: u64) -> Sequence {
    let mut rng = Rng::new(seed);
    let a = random_block(&mut rng, 16);
    let cpu = random_cpu(&mut rng);
    let mem = random_mem(&mut rng);
    let perms = random_perms(&mut rng);
    let budget = rng.pick(&[0, 1, 1, 2, 3, 8, 100]);
    let setup = if seed.is_multiple_of(2) {
        Setup::Chained
    } else {
        Setup::ChainedKnown
    };
    let mut blocks = vec![Entry {
        block: a,
        in_jc: rng.chance(50),
    }];
    let mut start = cpu.clone();
    start.pc = blocks[0].start();
    let (alone, _) = reference(&blocks, true, start, mem.clone(), &perms, 0, None);
    let (a_start, a_end) = (blocks[0].start(), blocks[0].end());
    let landing = match alone.exit {
        None if alone.cpu.pc != a_start => Some(alone.cpu.pc),
        // A loops: B where the loop falls out.
        None => Some(a_end),
        Some(_) => None,
    };
    if let Some(at) = landing.filter(|&p| p < u64::MAX - 0x1000) {
        let b = random_block_at(&mut rng, at, 16, &|_| true);
        let e = Entry {
            block: b,
            in_jc: true,
        };
        let overlaps = e.start() < a_end && a_start < e.end();
        if !overlaps {
            if blocks[0].in_jc && blocks[0].jc_index() == e.jc_index() {
                blocks[0].in_jc = false;
            }
            blocks.push(e);
        }
    }
    let mut counters = vec![1000u32; 4];
    let baseline = blocks
        .iter()
        .enumerate()
        .map(|(k, e)| {
            let supported = e.block.iter().all(|(_, i)| Baseline::supports(i.op));
            (supported && rng.chance(40)).then(|| {
                let index = k as u32 + 1;
                if rng.chance(25) {
                    counters[index as usize] = 1 + rng.below(3) as u32;
                }
                rng.chance(50).then_some(index)
            })
        })
        .collect();
    Sequence {
        blocks,
        cpu,
        mem,
        perms,
        budget,
        setup,
        baseline,
        counters,
        no_jump_cache: false,
    }
}

/// Translates and runs `q` and compares with the reference, counting into `tally`.
fn run_sequence(trs: &mut Translators, q: &Sequence, tally: &mut Tally) -> Result<(), String> {
    let want = q.reference(Some(&mut tally.cov));
    let mut codes = Vec::new();
    for (e, how) in q.blocks.iter().zip(&q.baseline) {
        let compiled = match how {
            Some(counter) => trs.baseline(q.setup).translate(&e.block, *counter),
            None => trs.get(q.setup).translate(&e.block),
        }
        .map_err(|err| format!("translation of {:#x} failed: {err}", e.start()))?;
        codes.push(compiled.code);
    }
    let mut how = Context {
        chained: q.setup.chained(),
        no_jump_cache: q.no_jump_cache,
        budget: q.budget,
        counters: q.counters.clone(),
    };
    let got: Run = run_translated(&q.blocks, &codes, 0, &mut how, &q.cpu, &q.mem, &q.perms);
    tally.insns += want.0.cpu.instret.wrapping_sub(q.cpu.instret);
    tally.exit(exit_kind(want.0.exit));
    tally.event("slow path", u64::from(got.status == status::SLOW_PATH));
    tally.event("hot", u64::from(got.status == status::HOT));
    let chained: u64 = want.1.hits.iter().sum();
    tally.event("chained", chained);
    tally.event("loop iterations", q.budget - want.1.budget - chained);
    tally.event(
        "baseline blocks",
        q.baseline.iter().filter(|b| b.is_some()).count() as u64,
    );
    let d = compare(&got, &want);
    if d.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "setup {:?}, budget {}, baseline {:?}, counters {:?}: translated code and \
             reference differ\n{}{d}",
            q.setup,
            q.budget,
            q.baseline,
            q.counters,
            listing(&q.blocks)
        ))
    }
}

const TIER1: Tier = Tier {
    name: "tier 1 blocks (Quick)",
    test: "differential",
    function: "random_short_blocks_match_interpreter_at_tier1",
    first: 0,
    count: 500,
    regressions: regressions::TIER1_BLOCKS,
};

const TIER2: Tier = Tier {
    name: "tier 2 blocks (Speed)",
    test: "differential",
    function: "random_long_blocks_match_interpreter_at_tier2",
    first: 1_000_000,
    count: 300,
    regressions: regressions::TIER2_BLOCKS,
};

const CHAINED: Tier = Tier {
    name: "chained programs (Quick and baseline)",
    test: "differential",
    function: "random_programs_compiled_for_chaining_match_interpreter",
    first: 2_000_000,
    count: 500,
    regressions: regressions::CHAINED,
};

#[test]
fn random_short_blocks_match_interpreter_at_tier1() {
    run(
        &TIER1,
        &Expect::everything(),
        || Translators::new(OptLevel::Quick),
        |trs, seed, tally| run_sequence(trs, &block_sequence(seed, 8), tally),
    );
}

#[test]
fn random_long_blocks_match_interpreter_at_tier2() {
    run(
        &TIER2,
        &Expect::everything(),
        || Translators::new(OptLevel::Speed),
        |trs, seed, tally| run_sequence(trs, &block_sequence(seed, 40), tally),
    );
}

#[test]
fn random_programs_compiled_for_chaining_match_interpreter() {
    let tally = run(
        &CHAINED,
        &Expect::everything(),
        || Translators::new(OptLevel::Quick),
        |trs, seed, tally| run_sequence(trs, &chained_sequence(seed), tally),
    );
    if common::runner::Settings::from_env().seed.is_none() {
        for e in ["chained", "loop iterations", "baseline blocks", "hot"] {
            assert!(tally.events.contains_key(e), "no {e}: {:?}", tally.events);
        }
    }
}

/// Seeds of the coverage tests: more than the default slice runs (generating and
/// interpreting costs little next to compiling), all of them within the long mode's.
const COVERAGE_SEEDS: u64 = 20_000;

/// Runs the reference of `COVERAGE_SEEDS` sequences from `first`.
fn reference_coverage(first: u64, make: impl Fn(u64) -> Sequence) -> Tally {
    let mut tally = Tally::default();
    for seed in first..first + COVERAGE_SEEDS {
        let q = make(seed);
        let (out, _) = q.reference(Some(&mut tally.cov));
        tally.exit(exit_kind(out.exit));
        tally.sequences += 1;
    }
    tally
}

/// The generator is only as good as what it produces: every operation (reached and
/// retired), every rounding mode of every rounding operation (static and through
/// `frm`), every compressed form, every CSR operation on every CSR, SC with and
/// without a matching reservation, accesses at every kind of page edge, and every exit
/// kind, in what the reference executes for the tests' seeds.
#[test]
fn random_blocks_cover_every_instruction_class_rounding_mode_and_page_edge() {
    let want = Expect::everything();
    let t = reference_coverage(TIER1.first, |s| block_sequence(s, 8));
    assert_covers(&t, &want, "tier-1 blocks");
    let t = reference_coverage(TIER2.first, |s| block_sequence(s, 40));
    assert_covers(&t, &want, "tier-2 blocks");
}

#[test]
fn chained_programs_cover_every_instruction_class_rounding_mode_and_page_edge() {
    let t = reference_coverage(CHAINED.first, chained_sequence);
    assert_covers(&t, &Expect::everything(), "chained programs");
}

/// Regression seeds run before the slice in both modes, and a replay runs its seed only.
#[test]
fn regression_seeds_run_first_in_every_mode() {
    use common::runner::{LONG_COUNT, Settings, seeds};
    let tier = Tier {
        regressions: &[42, 7],
        ..TIER1
    };
    let set = Settings {
        long: false,
        count: None,
        first: 0,
        seed: None,
        threads: 1,
    };
    let default = seeds(&tier, &set);
    assert_eq!(default[..3], [42, 7, TIER1.first]);
    assert_eq!(default.len() as u64, 2 + TIER1.count);
    let long = seeds(&tier, &Settings { long: true, ..set });
    assert_eq!(long[..3], [42, 7, TIER1.first]);
    assert_eq!(long.len() as u64, 2 + LONG_COUNT);
    let more = seeds(
        &tier,
        &Settings {
            count: Some(5),
            first: 100,
            ..set
        },
    );
    assert_eq!(more, [42, 7, 100, 101, 102, 103, 104]);
    assert_eq!(
        seeds(
            &tier,
            &Settings {
                seed: Some(9),
                ..set
            }
        ),
        [9]
    );
}

/// The generator's tables agree with the decoder: each F/D form decodes to its op with
/// every rounding field, each compressed form's words classify as it, the compressed
/// branch encoders round-trip, and `ALL_OPS` lists every operation in order.
#[test]
fn generator_tables_match_the_decoder() {
    for (k, &(op, word, free)) in FP_FORMS.iter().enumerate() {
        for rm in [0u32, 1, 2, 3, 4, 7] {
            let mut w = word | 3 << 7 | 4 << 15 | rm << 12;
            if free & RS2 != 0 {
                w |= 5 << 20;
            }
            if free & RS3 != 0 {
                w |= 6 << 27;
            }
            let i = rv64::decode(w).unwrap_or_else(|e| panic!("FP_FORMS[{k}] {op:?}: {e}"));
            assert_eq!(i.op, op, "FP_FORMS[{k}]");
            if !rounds(op) {
                break;
            }
        }
    }
    let mut seen = vec![0u32; CFORMS.len()];
    for w in 0..=0xffffu32 {
        if w & 3 == 3 {
            continue;
        }
        if let Ok(i) = rv64::decode(w) {
            let f = cform(w).unwrap_or_else(|| panic!("{w:#06x} ({}) has no form", i));
            seen[f] += 1;
        }
    }
    for (f, n) in seen.iter().enumerate() {
        assert!(*n > 0, "{} never decodes", CFORMS[f].0);
    }
    for imm in (-2048..2048).step_by(2) {
        assert_eq!(dec(c_j(imm)).imm, i64::from(imm), "c.j {imm}");
        assert_eq!(dec(c_j(imm)).op, Op::Jal);
    }
    for imm in (-256..256).step_by(2) {
        for bnez in [false, true] {
            let i = dec(c_beqz(9, imm, bnez));
            assert_eq!((i.imm, i.rs1), (i64::from(imm), 9), "c.beqz/bnez {imm}");
            assert_eq!(i.op, if bnez { Op::Bne } else { Op::Beq });
        }
    }
    for (k, &op) in ALL_OPS.iter().enumerate() {
        assert_eq!(op as usize, k, "ALL_OPS[{k}] is {op:?}");
    }
    assert_eq!(
        ALL_OPS.len(),
        Op::FmvDX as usize + 1,
        "ALL_OPS misses operations"
    );
}
