//! The baseline tier against the interpreter: random blocks of the instructions it
//! supports (every compressed form, M edge values, loads and stores at page edges and
//! across the test page map, self-loops, every exit kind), some in the jump cache and
//! some with a tier-up counter, run from the same random state in each layout of the
//! context it supports; registers, pc, instret, exit, memory, the chain budget left,
//! jump-cache hits and the counter must agree with the interpreter's.
//!
//! Default (CI): the regression seeds and a fixed slice. Long mode, 1 000 000 blocks
//! per test on every core with a summary at the end:
//!
//! ```text
//! VMJIT_DIFF_LONG=1 cargo test -p translate --release --test baseline -- --nocapture
//! ```
//!
//! Replay one seed: `VMJIT_DIFF_SEED=<n> cargo test -p translate --release --test
//! baseline <test name> -- --nocapture`. See `common/runner.rs` for `VMJIT_DIFF_COUNT`,
//! `VMJIT_DIFF_FIRST` and `VMJIT_DIFF_THREADS`.

mod common;

use common::coverage::{Expect, exit_kind};
use common::program::{Context, Entry, Run, Setup, compare, listing, reference, run_translated};
use common::regressions;
use common::runner::{Tally, Tier, assert_covers, run};
use common::*;
use rv64::{Cpu, Insn};
use translate::exec_mem::ExecBuf;
use translate::helpers::FLAT_HELPERS;
use translate::{
    Baseline, BaselineConfig, JitContext, JumpCacheShape, OptLevel, TranslateError, Translator,
    status,
};

const SHAPE: JumpCacheShape = common::program::SHAPE;

/// Bytes before guest memory where the layout with the table next to memory keeps it.
const TABLE_BYTES: usize = common::program::TABLE_BYTES;

fn count() -> u64 {
    std::env::var("VMJIT_DIFF_COUNT")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(500)
}

fn seeds(first: u64) -> Vec<u64> {
    match std::env::var("VMJIT_DIFF_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
    {
        Some(seed) => vec![seed],
        None => (first..first + count()).collect(),
    }
}

/// A baseline translator for a jump cache of `SHAPE`.
fn baseline(guest_size: Option<u64>, perms_offset: Option<i32>) -> Baseline {
    Baseline::new(BaselineConfig {
        jump_cache: SHAPE,
        guest_size,
        perms_offset,
    })
    .expect("x86-64 host")
}

/// The trampoline of a chained translator for `SHAPE`, through which baseline code is
/// entered (it uses the chained blocks' convention).
fn chained_trampoline() -> ExecBuf {
    let mut tr =
        Translator::with_config(Setup::ChainedKnown.config(OptLevel::Quick)).expect("host");
    ExecBuf::new(&tr.trampoline().expect("trampoline").code).expect("map")
}

/// The four layouts baseline code is compiled for: the guest size read from `ctx` or
/// compiled in, the permission table read through `ctx.perms` or found at its offset
/// below memory.
const LAYOUTS: [(Option<u64>, bool); 4] = [
    (None, false),
    (None, true),
    (Some(GUEST_SIZE as u64), false),
    (Some(GUEST_SIZE as u64), true),
];

/// A random block of instructions the baseline tier supports (the differential
/// generator's, with the others drawn again).
fn random_baseline_block(rng: &mut Rng, max_body: u64) -> Vec<(u64, Insn)> {
    random_block_at(rng, CODE_BASE, max_body, &|i| Baseline::supports(i.op))
}

/// A random baseline block and state: in the jump cache one time in two (a `jalr` back
/// to its start chains), with a tier-up counter one time in two (sometimes about to run
/// out).
struct Sequence {
    blocks: Vec<Entry>,
    cpu: Cpu,
    mem: Vec<u8>,
    perms: Vec<u8>,
    budget: u64,
    counter: Option<u32>,
    counters: Vec<u32>,
}

const COUNTER: u32 = 3;

fn sequence(seed: u64, max_body: u64) -> Sequence {
    let mut rng = Rng::new(seed);
    let block = random_baseline_block(&mut rng, max_body);
    let cpu = random_cpu(&mut rng);
    let mem = random_mem(&mut rng);
    let perms = random_perms(&mut rng);
    let budget = rng.pick(&[0, 0, 1, 2, 5, 100]);
    let in_jc = rng.chance(50);
    let counter = rng.chance(50).then_some(COUNTER);
    let mut counters = vec![1000u32; 8];
    if rng.chance(25) {
        counters[COUNTER as usize] = 1 + rng.below(3) as u32;
    }
    Sequence {
        blocks: vec![Entry { block, in_jc }],
        cpu,
        mem,
        perms,
        budget,
        counter,
        counters,
    }
}

impl Sequence {
    fn reference(&self, tally: &mut Tally) -> (Outcome, common::program::Flow) {
        let mut cpu = self.cpu.clone();
        cpu.pc = self.blocks[0].start();
        let want = reference(
            &self.blocks,
            true,
            cpu,
            self.mem.clone(),
            &self.perms,
            self.budget,
            Some(&mut tally.cov),
        );
        tally.insns += want.0.cpu.instret.wrapping_sub(self.cpu.instret);
        tally.exit(exit_kind(want.0.exit));
        want
    }
}

/// One baseline translator per layout (reused across seeds, as the engine does).
fn translators() -> Vec<Baseline> {
    LAYOUTS
        .iter()
        .map(|&(size, below)| baseline(size, below.then_some(-(TABLE_BYTES as i32))))
        .collect()
}

fn check_seed(
    bls: &mut [Baseline],
    seed: u64,
    max_body: u64,
    tally: &mut Tally,
) -> Result<(), String> {
    let q = sequence(seed, max_body);
    let want = q.reference(tally);
    for (bl, layout) in bls.iter_mut().zip(LAYOUTS) {
        let compiled = bl
            .translate(&q.blocks[0].block, q.counter)
            .map_err(|e| format!("baseline translation failed: {e}"))?;
        assert_eq!(compiled.guest_start, q.blocks[0].start());
        assert_eq!(compiled.insns, q.blocks[0].block.len());
        let mut how = Context {
            chained: true,
            no_jump_cache: false,
            budget: q.budget,
            counters: q.counters.clone(),
        };
        let got: Run = run_translated(
            &q.blocks,
            std::slice::from_ref(&compiled.code),
            0,
            &mut how,
            &q.cpu,
            &q.mem,
            &q.perms,
        );
        tally.event("slow path", u64::from(got.status == status::SLOW_PATH));
        tally.event("hot", u64::from(got.status == status::HOT));
        tally.event("runs", 1);
        let mut d = compare(&got, &want);
        // Without an early exit the counter counted every entry: the first and one per
        // transfer back to the block (it is the program's only block).
        if let Some(c) = q.counter
            && got.status != status::SLOW_PATH
            && got.status != status::HOT
        {
            let entries = 1 + (q.budget - want.1.budget);
            let left = how.counters[c as usize];
            let expect = q.counters[c as usize].wrapping_sub(entries as u32);
            if left != expect {
                d += &format!("counter: {left}, expected {expect} after {entries} entries\n");
            }
        }
        if !d.is_empty() {
            return Err(format!(
                "guest size {:?}, table below memory {}, budget {}, counter {:?} from {:?}: \
                 baseline and interpreter differ\n{}{d}",
                layout.0,
                layout.1,
                q.budget,
                q.counter,
                q.counters,
                listing(&q.blocks)
            ));
        }
    }
    Ok(())
}

const SHORT: Tier = Tier {
    name: "baseline blocks (short)",
    test: "baseline",
    function: "random_short_blocks_match_the_interpreter",
    first: 5_000_000,
    count: 500,
    regressions: regressions::BASELINE_SHORT,
};

const LONG: Tier = Tier {
    name: "baseline blocks (long)",
    test: "baseline",
    function: "random_long_blocks_match_the_interpreter",
    first: 6_000_000,
    count: 500,
    regressions: regressions::BASELINE_LONG,
};

#[test]
fn random_short_blocks_match_the_interpreter() {
    run(
        &SHORT,
        &Expect::baseline(),
        translators,
        |bls, seed, tally| check_seed(bls, seed, 8, tally),
    );
}

#[test]
fn random_long_blocks_match_the_interpreter() {
    run(
        &LONG,
        &Expect::baseline(),
        translators,
        |bls, seed, tally| check_seed(bls, seed, 40, tally),
    );
}

/// The generator must reach every instruction the tier supports, every compressed
/// form, accesses at every kind of page edge and every exit kind, or the tests above
/// prove little.
#[test]
fn random_baseline_blocks_cover_every_supported_operation_and_page_edge() {
    for (tier, max_body) in [(&SHORT, 8), (&LONG, 40)] {
        let mut tally = Tally::default();
        for seed in tier.first..tier.first + 20_000 {
            sequence(seed, max_body).reference(&mut tally);
            tally.sequences += 1;
        }
        assert_covers(&tally, &Expect::baseline(), tier.name);
    }
}

#[test]
fn a_block_with_an_unsupported_instruction_is_refused() {
    // fadd.d f3, f1, f2; ebreak
    let block = layout(&[dec(r(1, 2, 1, 0, 3, 0x53)), dec(EBREAK)]);
    let mut bl = baseline(None, None);
    match bl.translate(&block, None) {
        Err(TranslateError::Unsupported { pc, .. }) => assert_eq!(pc, CODE_BASE),
        other => panic!("expected Unsupported, got {other:?}"),
    }
}

/// `addi x5, x5, 1; ebreak` with a counter of 2: runs, leaves with HOT before anything
/// retires, then runs again (the counter wrapped).
#[test]
fn the_tier_up_counter_leaves_once_when_it_reaches_zero() {
    let block = layout(&[dec(i(1, 5, 0, 5, 0x13)), dec(EBREAK)]);
    let mut bl = baseline(None, None);
    let code = ExecBuf::new(&bl.translate(&block, Some(3)).expect("translate").code).expect("map");
    let tramp = chained_trampoline();
    let mut mem = vec![0u8; GUEST_SIZE];
    let perms = test_perms();
    let jc: Vec<[u64; 4]> = vec![[u64::MAX, 0, 0, 0]; SHAPE.len];
    let mut counters = [0u32, 0, 0, 2];
    let mut ctx = JitContext::new(
        Cpu::new(),
        mem.as_mut_ptr(),
        perms.as_ptr(),
        GUEST_SIZE as u64,
        &FLAT_HELPERS,
    );
    ctx.jump_cache = jc.as_ptr().cast();
    ctx.jc_mask = SHAPE.len as u64 - 1;
    ctx.jc_shift = u64::from(SHAPE.shift);
    ctx.counters = counters.as_mut_ptr();
    let run = |ctx: &mut JitContext| {
        ctx.cpu.pc = CODE_BASE;
        // SAFETY: `ctx` points at `mem`, `perms`, `jc` and `counters` (four entries; the
        // block uses index 3), all alive; `tramp` is a chained trampoline.
        let st = unsafe { tramp.call_trampoline(ctx, code.ptr()) };
        (st, ctx.cpu.pc, ctx.cpu.instret, ctx.cpu.x[5])
    };
    assert_eq!(run(&mut ctx), (status::EBREAK, CODE_BASE + 4, 1, 1));
    assert_eq!(run(&mut ctx), (status::HOT, CODE_BASE, 1, 1));
    assert_eq!(run(&mut ctx), (status::EBREAK, CODE_BASE + 4, 2, 2));
    assert_eq!(counters, [0, 0, 0, u32::MAX]);
}

/// A one-block loop walking a pointer from a readable page into an unmapped one: the
/// access that fails its check leaves in the middle of an iteration, and the pointer
/// (kept in a host register across iterations) must reach `ctx` with the value the
/// previous iteration gave it, as the interpreter leaves it.
#[test]
fn a_loop_leaving_mid_iteration_stores_registers_written_in_earlier_iterations() {
    // lw t0, 0(a0); addi a0, a0, 4; bne a0, a1, start
    let block = layout(&[
        dec(i(0, 10, 2, 5, 0x03)),
        dec(i(4, 10, 0, 10, 0x13)),
        dec(b(-8, 11, 10, 1)),
    ]);
    let mut cpu = Cpu::new();
    cpu.x[10] = 0xa000 - 16; // four words before the unmapped page 10
    cpu.x[11] = 0xb000;
    let mem = vec![0x5au8; GUEST_SIZE];
    let perms = test_perms();
    // The reference: the interpreter, iteration after iteration, until the fault.
    let mut want = cpu.clone();
    want.pc = CODE_BASE;
    let mut want_mem = mem.clone();
    let want_exit = {
        let mut view = translate::helpers::GuestView::new(&mut want_mem, &perms);
        loop {
            let &(_, insn) = block
                .iter()
                .find(|(pc, _)| *pc == want.pc)
                .expect("stays in the loop");
            if let Err(e) = rv64::execute(&mut want, &mut view, &insn) {
                break e;
            }
        }
    };
    let mut bl = baseline(None, None);
    let code = ExecBuf::new(&bl.translate(&block, None).expect("translate").code).expect("map");
    let tramp = chained_trampoline();
    let mut guest = mem.clone();
    let jc: Vec<[u64; 4]> = vec![[u64::MAX, 0, 0, 0]; SHAPE.len];
    let mut c = cpu.clone();
    c.pc = CODE_BASE;
    let mut ctx = JitContext::new(
        c,
        guest.as_mut_ptr(),
        perms.as_ptr(),
        GUEST_SIZE as u64,
        &FLAT_HELPERS,
    );
    ctx.jump_cache = jc.as_ptr().cast();
    ctx.jc_mask = SHAPE.len as u64 - 1;
    ctx.jc_shift = u64::from(SHAPE.shift);
    ctx.chain_budget = 100;
    // SAFETY: `ctx` points at `guest`, `perms` and `jc` (an empty jump cache of SHAPE),
    // all alive and not otherwise borrowed during the call; `tramp` is a chained
    // trampoline.
    let st = unsafe { tramp.call_trampoline(&mut ctx, code.ptr()) };
    assert_eq!(st, status::SLOW_PATH);
    assert_eq!(ctx.chain_budget, 96, "four iterations looped inside");
    let (got, exit) = finish_block(&block, ctx.cpu.clone(), &mut guest, &perms);
    assert_eq!(exit, Some(want_exit));
    assert_eq!(got, want);
    assert_eq!(got.x[10], 0xa000);
}

#[test]
fn a_translator_reused_for_many_blocks_emits_what_a_fresh_one_does() {
    // The baseline translator keeps its assembler and stub list between blocks: no
    // label, relocation or stub of one block may leak into the next.
    let config = BaselineConfig {
        jump_cache: SHAPE,
        guest_size: Some(1 << 20),
        perms_offset: Some(-(TABLE_BYTES as i32)),
    };
    let mut shared = Baseline::new(config).expect("x86-64 host");
    for seed in seeds(9_000_000) {
        let mut rng = Rng::new(seed);
        let block = random_baseline_block(&mut rng, 40);
        let counter = (seed % 3 != 0).then_some(seed as u32 % 100);
        let fresh = Baseline::new(config)
            .expect("x86-64 host")
            .translate(&block, counter)
            .unwrap_or_else(|e| panic!("seed {seed}: {e}"));
        let reused = shared
            .translate(&block, counter)
            .unwrap_or_else(|e| panic!("seed {seed}: {e}"));
        assert_eq!(reused.code, fresh.code, "seed {seed}: code differs");
    }
}
