//! Regions (tier 2): several blocks compiled as one function, with direct transfers
//! between them kept inside it under the chain budget. Checked against a reference that
//! runs the same blocks with `rv64::execute` and the same budget rule: hand-written
//! regions, and random ones (the differential generator's instructions and snippets,
//! counted back edges, self-loops, gaps between blocks) at Speed, and at Quick for even
//! seeds, in every context layout of `common::program::Setup`.
//!
//! Default (CI): the regression seeds and a fixed slice. Long mode, 1 000 000 regions on
//! every core with a summary at the end:
//!
//! ```text
//! VMJIT_DIFF_LONG=1 cargo test -p translate --release --test regions -- --nocapture
//! ```
//!
//! Replay one seed: `VMJIT_DIFF_SEED=<n> cargo test -p translate --release --test
//! regions random_regions_match_the_reference_at_both_tiers -- --nocapture`. See
//! `common/runner.rs` for `VMJIT_DIFF_COUNT`, `VMJIT_DIFF_FIRST`, `VMJIT_DIFF_THREADS`.

mod common;

use std::collections::HashMap;

use common::arena::{self, Code, with_arena};
use common::coverage::{Coverage, Expect, exit_kind};
use common::program::{
    Entry, SHAPE, Setup, TABLE_BYTES, Translators, listing, reference, with_trampoline,
};
use common::regressions;
use common::runner::{Tally, Tier, assert_covers, run};
use common::*;
use rv64::{Cpu, Insn, Op};
use translate::exec_mem::ExecBuf;
use translate::helpers::{FLAT_HELPERS, GuestView};
use translate::{
    JitContext, JumpCacheShape, OptLevel, TranslateError, Translator, TranslatorConfig, status,
};

/// Reference: runs block by block; a direct transfer (branch, jal, fall-through) to a
/// later block of the region continues there; one to the same or an earlier block (a
/// back edge) only while the budget lasts, one unit each.
fn run_region_interp(
    blocks: &[Vec<(u64, Insn)>],
    cpu: &Cpu,
    mem: &[u8],
    perms: &[u8],
    budget: u64,
) -> (Outcome, u64) {
    let mut cpu = cpu.clone();
    cpu.pc = blocks[0][0].0;
    run_region_from(blocks, cpu, mem.to_vec(), perms, budget)
}

/// The reference from `cpu.pc`, any instruction of the region (where a
/// [`translate::status::SLOW_PATH`] exit leaves the embedder to go on).
fn run_region_from(
    blocks: &[Vec<(u64, Insn)>],
    cpu: Cpu,
    mem: Vec<u8>,
    perms: &[u8],
    budget: u64,
) -> (Outcome, u64) {
    let (out, left, _) = run_region_counting(blocks, cpu, mem, perms, budget, None);
    (out, left)
}

/// [`run_region_from`], also returning how many internal transfers (forward edges and
/// back edges) it made, and recording what it executes in `cov`.
fn run_region_counting(
    blocks: &[Vec<(u64, Insn)>],
    mut cpu: Cpu,
    mut mem: Vec<u8>,
    perms: &[u8],
    budget: u64,
    mut cov: Option<&mut Coverage>,
) -> (Outcome, u64, u64) {
    let starts: HashMap<u64, usize> = blocks
        .iter()
        .enumerate()
        .map(|(k, b)| (b[0].0, k))
        .collect();
    let (mut cur, mut from) = blocks
        .iter()
        .enumerate()
        .find_map(|(k, b)| b.iter().position(|&(pc, _)| pc == cpu.pc).map(|i| (k, i)))
        .unwrap_or_else(|| panic!("{:#x} is not in the region", cpu.pc));
    let mut budget = budget;
    let mut transfers = 0;
    let mut exit = None;
    let mut view = GuestView::new(&mut mem, perms);
    'run: loop {
        for (_, insn) in &blocks[cur][from..] {
            let seen = cov.as_deref_mut().map(|c| c.before(&cpu, insn, perms));
            let r = rv64::execute(&mut cpu, &mut view, insn);
            if let (Some(c), Some(p)) = (cov.as_deref_mut(), seen) {
                c.after(p, insn, &r);
            }
            if let Err(e) = r {
                exit = Some(e);
                break 'run;
            }
        }
        let last = blocks[cur][blocks[cur].len() - 1].1.op;
        let direct = last != Op::Jalr;
        match starts.get(&cpu.pc) {
            Some(&next) if direct && next > cur => {
                transfers += 1;
                cur = next;
                from = 0;
            }
            Some(&next) if direct && budget > 0 => {
                transfers += 1;
                budget -= 1;
                cur = next;
                from = 0;
            }
            _ => break,
        }
    }
    (Outcome { cpu, exit, mem }, budget, transfers)
}

fn run_region_jit(
    tr: &mut Translator,
    blocks: &[Vec<(u64, Insn)>],
    cpu: &Cpu,
    mem: &[u8],
    perms: &[u8],
    budget: u64,
) -> (Outcome, u64) {
    let r = run_region_translated(tr, blocks, None, cpu, mem, perms, budget, false);
    (r.out, r.budget)
}

/// The reference from `cpu.pc`, in the region or in `landing` (a block in the jump
/// cache, with chained code): the region's rules inside it; when the region leaves at
/// the landing block's start with budget left, one unit and a jump-cache hit, and the
/// landing block runs as a program of its own (`common::program::reference`). Returns
/// the outcome, the budget left, the region's internal transfers and the hits.
fn run_region_and_landing(
    blocks: &[Vec<(u64, Insn)>],
    landing: Option<&Entry>,
    cpu: Cpu,
    mem: Vec<u8>,
    perms: &[u8],
    budget: u64,
    mut cov: Option<&mut Coverage>,
) -> (Outcome, u64, u64, u64) {
    if let Some(b) = landing
        && b.block.iter().any(|&(pc, _)| pc == cpu.pc)
    {
        let (out, flow) = reference(std::slice::from_ref(b), true, cpu, mem, perms, budget, cov);
        return (out, flow.budget, 0, flow.hits[0]);
    }
    let (out, left, moved) =
        run_region_counting(blocks, cpu, mem, perms, budget, cov.as_deref_mut());
    match landing {
        Some(b) if out.exit.is_none() && out.cpu.pc == b.start() && left > 0 => {
            let (out, flow) = reference(
                std::slice::from_ref(b),
                true,
                out.cpu,
                out.mem,
                perms,
                left - 1,
                cov,
            );
            (out, flow.budget, moved, 1 + flow.hits[0])
        }
        _ => (out, left, moved, 0),
    }
}

/// What a translated region did (finished by the reference after a slow-path exit).
struct RegionRun {
    out: Outcome,
    budget: u64,
    status: u64,
    /// Jump-cache hits on the landing block.
    hits: u64,
}

/// Translates and runs the region in the layout of `common::program` (the table right
/// below memory), chained code through the trampoline with a jump cache holding only
/// `landing` (translated by `tr` too), or none with `no_jump_cache` when the shape is
/// not compiled in; a slow-path exit is finished by the reference.
#[expect(clippy::too_many_arguments, reason = "the pieces of one test run")]
fn run_region_translated(
    tr: &mut Translator,
    blocks: &[Vec<(u64, Insn)>],
    landing: Option<&Entry>,
    cpu: &Cpu,
    mem: &[u8],
    perms: &[u8],
    budget: u64,
    no_jump_cache: bool,
) -> RegionRun {
    let refs: Vec<&[(u64, Insn)]> = blocks.iter().map(|b| b.as_slice()).collect();
    let compiled = tr
        .translate_region(&refs)
        .unwrap_or_else(|e| panic!("translation failed: {e}"));
    assert_eq!(compiled.entry, blocks[0][0].0);
    assert_eq!(compiled.ranges.len(), blocks.len());
    let landed = landing.map(|b| {
        tr.translate(&b.block)
            .unwrap_or_else(|e| panic!("translation of the landing block failed: {e}"))
    });
    let config = tr.config();
    with_arena(|arena| {
        let code = arena.add(&compiled.code);
        let landing = landing.zip(landed.as_ref().map(|c| arena.add(&c.code)));
        let run = Run {
            config,
            blocks,
            landing,
            perms,
            no_jump_cache,
        };
        run.go(code, cpu, mem, budget)
    })
}

/// A translated region and what it runs with.
struct Run<'a> {
    config: TranslatorConfig,
    blocks: &'a [Vec<(u64, Insn)>],
    landing: Option<(&'a Entry, Code<'a>)>,
    perms: &'a [u8],
    no_jump_cache: bool,
}

impl Run<'_> {
    fn go(&self, code: Code<'_>, cpu: &Cpu, mem: &[u8], budget: u64) -> RegionRun {
        let perms = self.perms;
        let mut buf = vec![0u8; TABLE_BYTES + mem.len()];
        buf[..perms.len()].copy_from_slice(perms);
        buf[TABLE_BYTES..].copy_from_slice(mem);
        let mut jc: Vec<[u64; 4]> = vec![[u64::MAX, 0, 0, 0]; SHAPE.len];
        if let Some((b, code)) = self.landing {
            jc[b.jc_index()] = [b.start(), code.ptr() as u64, 0, 0];
        }
        let (table, guest) = buf.split_at_mut(TABLE_BYTES);
        let mut c = cpu.clone();
        c.pc = self.blocks[0][0].0;
        let mut ctx = JitContext::new(
            c,
            guest.as_mut_ptr(),
            table.as_ptr(),
            guest.len() as u64,
            &FLAT_HELPERS,
        );
        if self.config.jump_cache.is_some() || !self.no_jump_cache {
            ctx.jump_cache = jc.as_ptr().cast();
        }
        ctx.jc_mask = SHAPE.len as u64 - 1;
        ctx.jc_shift = u64::from(SHAPE.shift);
        ctx.chain_budget = budget;
        let st = if self.config.chain {
            // SAFETY: a chained trampoline, and a region and landing block chained by the
            // same translator (for `SHAPE` when the shape is compiled in), both in the
            // arena, which `code` borrows; ctx points at `guest`, `table` (right below
            // it, as a compiled-in offset says) and `jc`, alive and not otherwise
            // borrowed for the call.
            with_trampoline(|t| unsafe { t.call_trampoline(&mut ctx, code.ptr()) })
        } else {
            // SAFETY: as above; the region is unchained and reads no jump cache.
            unsafe { arena::call(code, &mut ctx) }
        };
        let landing = self.landing.map(|(b, _)| b);
        let hits = landing.map_or(0, |b| jc[b.jc_index()][2] >> 32);
        let mem = guest.to_vec();
        if st == status::SLOW_PATH {
            let cpu = ctx.cpu.clone();
            let (out, left, _, more) = run_region_and_landing(
                self.blocks,
                landing,
                cpu,
                mem,
                perms,
                ctx.chain_budget,
                None,
            );
            return RegionRun {
                out,
                budget: left,
                status: st,
                hits: hits + more,
            };
        }
        let exit = ctx.exit_for(st);
        assert!(
            exit.is_some() || st == status::CONTINUE,
            "unknown status {st}"
        );
        RegionRun {
            out: Outcome {
                cpu: ctx.cpu,
                exit,
                mem,
            },
            budget: ctx.chain_budget,
            status: st,
            hits,
        }
    }
}

fn check_region(
    tr: &mut Translator,
    blocks: &[Vec<(u64, Insn)>],
    cpu: &Cpu,
    mem: &[u8],
    budget: u64,
    what: &str,
) -> Outcome {
    let perms = test_perms();
    let (int, int_budget) = run_region_interp(blocks, cpu, mem, &perms, budget);
    let (jit, jit_budget) = run_region_jit(tr, blocks, cpu, mem, &perms, budget);
    let code: String = blocks.iter().map(|b| disasm(b) + "  --\n").collect();
    let d = diff(&jit, &int);
    assert!(d.is_empty(), "{what}: JIT and reference differ\n{code}{d}");
    assert_eq!(
        jit_budget, int_budget,
        "{what}: budget left differs\n{code}"
    );
    jit
}

fn lay(at: u64, words: &[u32]) -> Vec<(u64, Insn)> {
    let mut pc = at;
    words
        .iter()
        .map(|&w| {
            let i = dec(w);
            let here = pc;
            pc += i.len as u64;
            (here, i)
        })
        .collect()
}

#[test]
fn a_loop_region_runs_every_iteration_inside_one_call() {
    // A: x6 += x5; x5 -= 1; bne x5, x0, A.   B: x7 = x6; ebreak.
    let a = lay(
        CODE_BASE,
        &[r(0, 5, 6, 0, 6, 0x33), i(-1, 5, 0, 5, 0x13), b(-8, 0, 5, 1)],
    );
    let bb = lay(CODE_BASE + 12, &[r(0, 0, 6, 0, 7, 0x33), EBREAK]);
    let mut cpu = Cpu::new();
    cpu.x[5] = 10;
    cpu.instret = 7;
    for opt in [OptLevel::Quick, OptLevel::Speed] {
        let mut tr = translator(opt);
        let out = check_region(
            &mut tr,
            &[a.clone(), bb.clone()],
            &cpu,
            &vec![0; GUEST_SIZE],
            100,
            "loop",
        );
        assert_eq!(out.cpu.x[7], 55);
        assert_eq!(out.exit, Some(rv64::Exit::Ebreak));
        assert_eq!(out.cpu.instret, 7 + 30 + 1);
        assert_eq!(out.cpu.pc, CODE_BASE + 16);
    }
}

#[test]
fn an_exhausted_budget_leaves_the_region_at_the_next_internal_jump() {
    let a = lay(
        CODE_BASE,
        &[r(0, 5, 6, 0, 6, 0x33), i(-1, 5, 0, 5, 0x13), b(-8, 0, 5, 1)],
    );
    let mut cpu = Cpu::new();
    cpu.x[5] = 10;
    let mut tr = translator(OptLevel::Quick);
    let (out, left) = run_region_jit(&mut tr, &[a], &cpu, &vec![0; GUEST_SIZE], &test_perms(), 3);
    assert_eq!(out.exit, None);
    assert_eq!(left, 0);
    assert_eq!(out.cpu.pc, CODE_BASE, "stopped at the back edge");
    assert_eq!(
        out.cpu.x[5], 6,
        "four iterations: one entry plus three internal jumps"
    );
    assert_eq!(out.cpu.instret, 12);
}

#[test]
fn malformed_regions_are_typed_errors() {
    let mut tr = translator(OptLevel::Quick);
    assert!(matches!(
        tr.translate_region(&[]),
        Err(TranslateError::EmptyBlock)
    ));
    let a = lay(CODE_BASE, &[0x13]);
    assert!(matches!(
        tr.translate_region(&[&a, &a]),
        Err(TranslateError::DuplicateBlock { pc: CODE_BASE })
    ));
}

/// A random region: up to four consecutive blocks whose bodies never write x5; a block
/// ends with a counted back edge to an earlier (or its own) start, a random terminator
/// (a self-loop among them), or nothing (falling into the next block).
fn random_region(rng: &mut Rng) -> Vec<Vec<(u64, Insn)>> {
    let n = 1 + rng.below(4) as usize;
    let mut blocks: Vec<Vec<(u64, Insn)>> = Vec::new();
    let mut pc = CODE_BASE;
    let keep = |i: &Insn| i.rd != 5;
    for k in 0..n {
        let mut block = Vec::new();
        let body = 1 + rng.below(6) as usize;
        while block.len() < body {
            let more = random_body(rng);
            if more.iter().all(keep) {
                for insn in more {
                    block.push((pc, insn));
                    pc += u64::from(insn.len);
                }
            }
        }
        let term = match rng.below(3) {
            0 => {
                let dec5 = dec(i(-1, 5, 0, 5, 0x13));
                block.push((pc, dec5));
                pc += 4;
                let target = if k > 0 && rng.chance(50) {
                    blocks[rng.below(k as u64) as usize][0].0
                } else {
                    block[0].0
                };
                let cond = rng.pick(&[1u32, 0]); // bne or beq against x0
                Some(dec(b(target.wrapping_sub(pc) as i32, 0, 5, cond)))
            }
            1 => loop {
                let back = block[0].0 as i64 - pc as i64;
                match random_terminator(rng, back) {
                    Some(t) if !keep(&t) => continue,
                    t => break t,
                }
            },
            _ => None,
        };
        if let Some(t) = term {
            block.push((pc, t));
            pc += u64::from(t.len);
        }
        let ends = block[block.len() - 1].1.op.ends_block();
        blocks.push(block);
        if ends && rng.chance(30) {
            // Leave a gap: the next block is reachable only by a branch.
            pc += 4;
        }
    }
    blocks
}

struct RegionSequence {
    blocks: Vec<Vec<(u64, Insn)>>,
    /// With chained code, often a block in the jump cache where the region leaves.
    landing: Option<Entry>,
    cpu: Cpu,
    mem: Vec<u8>,
    perms: Vec<u8>,
    budget: u64,
    setup: Setup,
    no_jump_cache: bool,
}

fn region_sequence(seed: u64) -> RegionSequence {
    let mut rng = Rng::new(seed);
    let blocks = random_region(&mut rng);
    let mut cpu = random_cpu(&mut rng);
    cpu.x[5] = 1 + rng.below(6);
    cpu.pc = blocks[0][0].0;
    let mem = random_mem(&mut rng);
    let perms = random_perms(&mut rng);
    let budget = rng.pick(&[0, 1, 2, 5, 20, 200]);
    let setup = Setup::ALL[((seed / 2) % 4) as usize];
    let no_jump_cache = setup == Setup::Chained && rng.chance(50);
    let mut landing = None;
    if setup.chained() && !no_jump_cache && rng.chance(70) {
        let (out, _, _) =
            run_region_counting(&blocks, cpu.clone(), mem.clone(), &perms, budget, None);
        if out.exit.is_none() && out.cpu.pc < u64::MAX - 0x1000 {
            let b = Entry {
                block: random_block_at(&mut rng, out.cpu.pc, 8, &|_| true),
                in_jc: true,
            };
            let overlaps = blocks.iter().any(|r| {
                let end = r[r.len() - 1].0 + u64::from(r[r.len() - 1].1.len);
                r[0].0 < b.end() && b.start() < end
            });
            if !overlaps {
                landing = Some(b);
            }
        }
    }
    RegionSequence {
        blocks,
        landing,
        cpu,
        mem,
        perms,
        budget,
        setup,
        no_jump_cache,
    }
}

const REGIONS: Tier = Tier {
    name: "tier 2 regions (Speed; Quick too for even seeds)",
    test: "regions",
    function: "random_regions_match_the_reference_at_both_tiers",
    first: 3_000_000,
    count: 250,
    regressions: regressions::REGIONS,
};

/// The reference of `q`, recording coverage and the region's internal transfers.
/// Returns the outcome, the budget left and the landing block's jump-cache hits.
fn region_reference(q: &RegionSequence, tally: &mut Tally) -> (Outcome, u64, u64) {
    let (out, left, moved, hits) = run_region_and_landing(
        &q.blocks,
        q.landing.as_ref(),
        q.cpu.clone(),
        q.mem.clone(),
        &q.perms,
        q.budget,
        Some(&mut tally.cov),
    );
    tally.insns += out.cpu.instret.wrapping_sub(q.cpu.instret);
    tally.exit(exit_kind(out.exit));
    tally.event("internal transfers", moved);
    tally.event("back edges", q.budget - left - hits);
    tally.event("budget ran out", u64::from(q.budget > 0 && left == 0));
    tally.event("landing blocks", u64::from(q.landing.is_some()));
    tally.event("chained to the landing block", hits);
    (out, left, hits)
}

#[test]
fn random_regions_match_the_reference_at_both_tiers() {
    let tally = run(
        &REGIONS,
        &Expect::everything(),
        || {
            (
                Translators::new(OptLevel::Speed),
                Translators::new(OptLevel::Quick),
            )
        },
        |(speed, quick), seed, tally| {
            let q = region_sequence(seed);
            let (want, want_budget, want_hits) = region_reference(&q, tally);
            let mut trs = vec![(speed, "Speed")];
            if seed.is_multiple_of(2) {
                trs.push((quick, "Quick"));
            }
            for (tr, opt) in trs {
                let tr = tr.get(q.setup);
                let got = run_region_translated(
                    tr,
                    &q.blocks,
                    q.landing.as_ref(),
                    &q.cpu,
                    &q.mem,
                    &q.perms,
                    q.budget,
                    q.no_jump_cache,
                );
                tally.event(
                    if opt == "Quick" {
                        "Quick regions"
                    } else {
                        "Speed regions"
                    },
                    1,
                );
                tally.event("slow path", u64::from(got.status == status::SLOW_PATH));
                let mut d = diff(&got.out, &want);
                if got.budget != want_budget {
                    d += &format!("budget left: jit {} reference {want_budget}\n", got.budget);
                }
                if got.hits != want_hits {
                    d += &format!(
                        "landing block hits: jit {} reference {want_hits}\n",
                        got.hits
                    );
                }
                if !d.is_empty() {
                    let mut code: String = q.blocks.iter().map(|b| disasm(b) + "  --\n").collect();
                    if let Some(b) = &q.landing {
                        code += &listing(std::slice::from_ref(b));
                    }
                    return Err(format!(
                        "{opt}, setup {:?}, budget {}: region and reference differ\n{code}{d}",
                        q.setup, q.budget
                    ));
                }
            }
            Ok(())
        },
    );
    // The generator must really loop and really run out of budget.
    if common::runner::Settings::from_env().seed.is_none() {
        let n = tally.sequences;
        let ev = |k: &str| tally.events.get(k).copied().unwrap_or(0);
        assert!(ev("internal transfers") > n / 2, "{:?}", tally.events);
        assert!(ev("back edges") > n / 4, "{:?}", tally.events);
        assert!(ev("budget ran out") > n / 20, "{:?}", tally.events);
    }
}

/// The region generator covers what the block generators do (see `differential.rs`).
#[test]
fn random_regions_cover_every_instruction_class_rounding_mode_and_page_edge() {
    let mut tally = Tally::default();
    for seed in REGIONS.first..REGIONS.first + 20_000 {
        let q = region_sequence(seed);
        region_reference(&q, &mut tally);
        tally.sequences += 1;
    }
    assert_covers(&tally, &Expect::everything(), "regions");
}

#[test]
fn chained_region_exits_probe_the_jump_cache_like_blocks() {
    // A region compiled with chaining whose exit continues at a block in the jump cache
    // (of one entry, its shape known at translation time: constant-offset probes).
    let mut tr = Translator::with_config(TranslatorConfig {
        opt: OptLevel::Speed,
        chain: true,
        jump_cache: Some(JumpCacheShape { shift: 0, len: 1 }),
        guest_size: None,
        perms_offset: None,
    })
    .expect("host");
    let tramp = ExecBuf::new(&tr.trampoline().expect("trampoline").code).expect("map");
    let a = lay(CODE_BASE, &[i(-1, 5, 0, 5, 0x13), b(-4, 0, 5, 1)]);
    let region = ExecBuf::new(&tr.translate_region(&[&a]).expect("region").code).expect("map");
    let exit_block = lay(CODE_BASE + 8, &[i(9, 0, 0, 7, 0x13), EBREAK]);
    let next = ExecBuf::new(&tr.translate(&exit_block).expect("block").code).expect("map");
    // One jump-cache entry (codecache layout): key, code, size|hits.
    let mut jc = [0u64; 4];
    jc[0] = CODE_BASE + 8;
    jc[1] = next.ptr() as u64;
    let mut mem = vec![0u8; GUEST_SIZE];
    let perms = test_perms();
    let mut cpu = Cpu::new();
    cpu.x[5] = 4;
    let mut ctx = JitContext::new(
        cpu,
        mem.as_mut_ptr(),
        perms.as_ptr(),
        GUEST_SIZE as u64,
        &FLAT_HELPERS,
    );
    ctx.jump_cache = jc.as_ptr().cast();
    ctx.chain_budget = 100;
    // SAFETY: `tramp` is `tr`'s trampoline; `region` and the jump cache's entry are chained
    // code of `tr`, all mapped; ctx points at `mem`, `perms` and `jc`, alive for the call.
    let st = unsafe { tramp.call_trampoline(&mut ctx, region.ptr()) };
    assert_eq!(ctx.exit_for(st), Some(rv64::Exit::Ebreak));
    assert_eq!((ctx.cpu.x[5], ctx.cpu.x[7]), (0, 9));
    assert_eq!(ctx.cpu.instret, 8 + 1);
    assert_eq!(
        ctx.chain_budget,
        100 - 3 - 1,
        "three back edges and one chained exit"
    );
}
