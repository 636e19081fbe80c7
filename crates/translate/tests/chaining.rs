//! Chained blocks: a block that continues probes the jump cache in `ctx` and tail-calls
//! the next block while the chain budget lasts; the result equals the interpreter's.
//!
//! These are hand-written programs. Random chained programs (a second block, Cranelift
//! or baseline code, in the jump cache where the first continues) are
//! `random_programs_compiled_for_chaining_match_interpreter` in `differential.rs`; its
//! long mode and seed replay are described there:
//! `VMJIT_DIFF_LONG=1 cargo test -p translate --release --test differential
//! random_programs -- --nocapture`.

mod common;

use std::collections::HashMap;

use common::*;
use rv64::{Cpu, Exit, Interpreter};
use translate::context::{JC_CODE_OFFSET, JC_ENTRY_SHIFT, JC_HITS_OFFSET, JC_KEY_OFFSET};
use translate::exec_mem::ExecBuf;
use translate::helpers::{FLAT_HELPERS, GuestView};
use translate::{
    Baseline, BaselineConfig, JitContext, JumpCacheShape, OptLevel, Translator, TranslatorConfig,
    status,
};

/// Same layout as `codecache::JumpCacheEntry`.
#[repr(C, align(32))]
#[derive(Clone, Copy, Debug)]
struct Entry {
    key: u64,
    code: u64,
    size: u32,
    hits: u32,
    slot: u32,
    pad: u32,
}

const EMPTY: Entry = Entry {
    key: u64::MAX,
    code: 0,
    size: 0,
    hits: 0,
    slot: 0,
    pad: 0,
};
const JC_LEN: usize = 64;
const JC_SHIFT: u64 = 2;

#[test]
fn jump_cache_entry_layout_matches_the_constants() {
    assert_eq!(std::mem::size_of::<Entry>(), 1 << JC_ENTRY_SHIFT);
    assert_eq!(std::mem::offset_of!(Entry, key) as i32, JC_KEY_OFFSET);
    assert_eq!(std::mem::offset_of!(Entry, code) as i32, JC_CODE_OFFSET);
    assert_eq!(std::mem::offset_of!(Entry, hits) as i32, JC_HITS_OFFSET);
}

const A: u64 = 0xe000;
const B: u64 = 0xe00c;
const C: u64 = 0xe020;

/// A: x5 -= 1; x6 += x5; bne x5, x0, A.  B: x7 = 42; j C.  C: ebreak.
fn program() -> Vec<(u64, Vec<u32>)> {
    vec![
        (
            A,
            vec![i(-1, 5, 0, 5, 0x13), r(0, 5, 6, 0, 6, 0x33), b(-8, 0, 5, 1)],
        ),
        (B, vec![i(42, 0, 0, 7, 0x13), j((C - B - 4) as i32, 0)]),
        (C, vec![EBREAK]),
    ]
}

fn guest_memory() -> Vec<u8> {
    let mut mem = vec![0u8; GUEST_SIZE];
    for (pc, words) in program() {
        for (k, w) in words.iter().enumerate() {
            mem[pc as usize + 4 * k..][..4].copy_from_slice(&w.to_le_bytes());
        }
    }
    mem
}

fn start_cpu() -> Cpu {
    let mut cpu = Cpu::new();
    cpu.pc = A;
    cpu.x[5] = 100;
    cpu
}

fn interpreted() -> Cpu {
    let mut mem = guest_memory();
    let perms = test_perms();
    let mut cpu = start_cpu();
    let mut view = GuestView::new(&mut mem, &perms);
    assert_eq!(
        Interpreter::new().run(&mut cpu, &mut view, u64::MAX),
        Exit::Ebreak
    );
    cpu
}

struct Run {
    cpu: Cpu,
    dispatches: u64,
    budget_left: u64,
    hits: HashMap<u64, u32>,
}

/// A minimal dispatcher: enters blocks through the trampoline; `cached` blocks are in
/// the jump cache; each entry refills the budget.
/// The shape of the test's jump cache, for translators told it in advance.
const SHAPE: JumpCacheShape = JumpCacheShape {
    shift: JC_SHIFT as u32,
    len: JC_LEN,
};

fn run_chained(
    opt: OptLevel,
    shape: Option<JumpCacheShape>,
    cached: &[u64],
    budget: u64,
    with_cache: bool,
) -> Run {
    run_mixed(opt, shape, cached, budget, with_cache, &[])
}

/// As `run_chained`, with the blocks at `baseline` translated by the baseline tier.
fn run_mixed(
    opt: OptLevel,
    shape: Option<JumpCacheShape>,
    cached: &[u64],
    budget: u64,
    with_cache: bool,
    baseline: &[u64],
) -> Run {
    let mut base = Baseline::new(BaselineConfig {
        jump_cache: SHAPE,
        guest_size: None,
        perms_offset: None,
    })
    .expect("x86-64 host");
    let mut tr = Translator::with_config(TranslatorConfig {
        opt,
        chain: true,
        jump_cache: shape,
        guest_size: None,
        perms_offset: None,
    })
    .expect("host");
    let tramp = ExecBuf::new(&tr.trampoline().expect("trampoline").code).expect("map");
    let mut code = HashMap::new();
    for (pc, words) in program() {
        let insns: Vec<_> = words.iter().map(|&w| dec(w)).collect();
        let block: Vec<_> = insns
            .iter()
            .scan(pc, |at, i| {
                let here = *at;
                *at += i.len as u64;
                Some((here, *i))
            })
            .collect();
        let compiled = if baseline.contains(&pc) {
            base.translate(&block, None).expect("baseline")
        } else {
            tr.translate(&block).expect("translate")
        };
        code.insert(pc, ExecBuf::new(&compiled.code).expect("map"));
    }
    let mut jc = vec![EMPTY; JC_LEN];
    for &pc in cached {
        let e = &mut jc[((pc >> JC_SHIFT) as usize) & (JC_LEN - 1)];
        assert_eq!(e.key, u64::MAX, "test bug: jump cache collision");
        *e = Entry {
            key: pc,
            code: code[&pc].ptr() as u64,
            ..EMPTY
        };
    }
    let mut mem = guest_memory();
    let perms = test_perms();
    let mut ctx = JitContext::new(
        start_cpu(),
        mem.as_mut_ptr(),
        perms.as_ptr(),
        GUEST_SIZE as u64,
        &FLAT_HELPERS,
    );
    if with_cache {
        ctx.jump_cache = jc.as_ptr().cast();
    }
    ctx.jc_mask = JC_LEN as u64 - 1;
    ctx.jc_shift = JC_SHIFT;
    let mut dispatches = 0;
    let st = loop {
        dispatches += 1;
        ctx.chain_budget = budget;
        let target = code[&ctx.cpu.pc].ptr();
        // SAFETY: `tramp` is the trampoline and every block (in `code` and in `jc`) was
        // translated with chaining by the same translator and stays mapped; ctx points at
        // `mem`, `perms` and `jc`, all alive for the call.
        let st = unsafe { tramp.call_trampoline(&mut ctx, target) };
        if st != status::CONTINUE {
            break st;
        }
    };
    assert_eq!(ctx.exit_for(st), Some(Exit::Ebreak));
    let hits = cached
        .iter()
        .map(|&pc| (pc, jc[((pc >> JC_SHIFT) as usize) & (JC_LEN - 1)].hits))
        .collect();
    Run {
        cpu: ctx.cpu,
        dispatches,
        budget_left: ctx.chain_budget,
        hits,
    }
}

#[test]
fn chained_blocks_run_a_whole_loop_without_returning_to_the_dispatcher() {
    let want = interpreted();
    for (opt, shape) in [
        (OptLevel::Quick, None),
        (OptLevel::Quick, Some(SHAPE)),
        (OptLevel::Speed, None),
        (OptLevel::Speed, Some(SHAPE)),
    ] {
        let run = run_chained(opt, shape, &[A, B, C], 1000, true);
        assert_eq!(run.cpu, want, "{opt:?} {shape:?}");
        assert_eq!(run.dispatches, 1, "every transfer was chained");
        // A->A 99 times (inside A's own function: a block that branches to its own
        // start loops without a jump-cache probe, one budget unit per iteration),
        // A->B once, B->C once (chained through the jump cache).
        assert_eq!(run.budget_left, 1000 - 101);
        assert_eq!(run.hits[&A], 0);
        assert_eq!((run.hits[&B], run.hits[&C]), (1, 1));
    }
}

#[test]
fn an_exhausted_budget_returns_to_the_dispatcher_with_exact_state() {
    let want = interpreted();
    let run = run_chained(OptLevel::Quick, None, &[A, B, C], 7, true);
    assert_eq!(run.cpu, want);
    // 101 transfers, 7 chained per entry: the dispatcher enters ceil(102 / 8) times.
    assert_eq!(run.dispatches, 102u64.div_ceil(8));
    let run = run_chained(OptLevel::Quick, Some(SHAPE), &[A, B, C], 0, true);
    assert_eq!(run.cpu, want);
    assert_eq!(run.dispatches, 102);
}

#[test]
fn a_jump_cache_miss_or_no_cache_returns_to_the_dispatcher() {
    let want = interpreted();
    let run = run_chained(OptLevel::Speed, Some(SHAPE), &[A, B], 1000, true);
    assert_eq!(run.cpu, want);
    assert_eq!(run.dispatches, 2, "B misses C in the jump cache");
    let run = run_chained(OptLevel::Speed, None, &[A, B, C], 1000, false);
    assert_eq!(run.cpu, want);
    assert_eq!(
        run.dispatches, 3,
        "without a jump cache only A's loop stays inside its function"
    );
    assert_eq!(run.budget_left, 1000);
}

#[test]
fn baseline_and_cranelift_blocks_chain_into_each_other() {
    let want = interpreted();
    for (opt, baseline) in [
        (OptLevel::Quick, &[A, B, C][..]),
        (OptLevel::Quick, &[A, C][..]),
        (OptLevel::Speed, &[B][..]),
    ] {
        let run = run_mixed(opt, Some(SHAPE), &[A, B, C], 1000, true, baseline);
        assert_eq!(run.cpu, want, "baseline blocks {baseline:x?}");
        assert_eq!(run.dispatches, 1, "every transfer was chained");
        // A's branch to its own start loops inside its code in both tiers (one budget
        // unit per iteration, no jump-cache probe).
        assert_eq!(run.hits[&A], 0);
        assert_eq!((run.hits[&B], run.hits[&C]), (1, 1));
        assert_eq!(run.budget_left, 1000 - 101);
    }
}

#[test]
fn baseline_blocks_return_when_the_budget_runs_out_or_the_cache_misses() {
    let want = interpreted();
    let all = [A, B, C];
    let run = run_mixed(OptLevel::Quick, Some(SHAPE), &all, 7, true, &all);
    assert_eq!(run.cpu, want);
    assert_eq!(run.dispatches, 102u64.div_ceil(8));
    let run = run_mixed(OptLevel::Quick, Some(SHAPE), &[A, B], 1000, true, &all);
    assert_eq!(run.cpu, want);
    assert_eq!(run.dispatches, 2, "B misses C in the jump cache");
}
