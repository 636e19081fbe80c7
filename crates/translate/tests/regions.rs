//! Regions (tier 2): several blocks compiled as one function, with direct transfers
//! between them kept inside it under the chain budget. Checked against a reference that
//! runs the same blocks with `rv64::execute` and the same budget rule.

mod common;

use std::collections::HashMap;

use common::*;
use rv64::{Cpu, Insn, Op};
use translate::exec_mem::ExecBuf;
use translate::helpers::{FLAT_HELPERS, GuestView};
use translate::{
    JitContext, JumpCacheShape, OptLevel, TranslateError, Translator, TranslatorConfig,
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
    let (out, left, _) = run_region_counting(blocks, cpu, mem, perms, budget);
    (out, left)
}

/// [`run_region_from`], also returning how many internal transfers (forward edges and
/// back edges) it made.
fn run_region_counting(
    blocks: &[Vec<(u64, Insn)>],
    mut cpu: Cpu,
    mut mem: Vec<u8>,
    perms: &[u8],
    budget: u64,
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
            if let Err(e) = rv64::execute(&mut cpu, &mut view, insn) {
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
    let refs: Vec<&[(u64, Insn)]> = blocks.iter().map(|b| b.as_slice()).collect();
    let compiled = tr
        .translate_region(&refs)
        .unwrap_or_else(|e| panic!("translation failed: {e}"));
    assert_eq!(compiled.entry, blocks[0][0].0);
    assert_eq!(compiled.ranges.len(), blocks.len());
    let code = ExecBuf::new(&compiled.code).expect("map");
    let mut mem = mem.to_vec();
    let mut c = cpu.clone();
    c.pc = blocks[0][0].0;
    let mut ctx = JitContext::new(
        c,
        mem.as_mut_ptr(),
        perms.as_ptr(),
        mem.len() as u64,
        &FLAT_HELPERS,
    );
    ctx.chain_budget = budget;
    // SAFETY: ctx points at `mem` and `perms`, alive and unborrowed for the call; the code
    // is an unchained region for this host.
    let st = unsafe { code.call(&mut ctx) };
    if st == translate::status::SLOW_PATH {
        let cpu = ctx.cpu.clone();
        let budget = ctx.chain_budget;
        return run_region_from(blocks, cpu, mem, perms, budget);
    }
    let exit = ctx.exit_for(st);
    (
        Outcome {
            cpu: ctx.cpu,
            exit,
            mem,
        },
        ctx.chain_budget,
    )
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
/// ends with a counted back edge to an earlier (or its own) start, a random terminator,
/// or nothing (falling into the next block).
fn random_region(rng: &mut Rng) -> Vec<Vec<(u64, Insn)>> {
    let n = 1 + rng.below(4) as usize;
    let mut blocks: Vec<Vec<(u64, Insn)>> = Vec::new();
    let mut pc = CODE_BASE;
    for k in 0..n {
        let mut block = Vec::new();
        for _ in 0..1 + rng.below(6) {
            let insn = loop {
                let i = random_body_insn(rng);
                if i.rd != 5 {
                    break i;
                }
            };
            block.push((pc, insn));
            pc += insn.len as u64;
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
            1 => random_terminator(rng),
            _ => None,
        };
        if let Some(t) = term {
            block.push((pc, t));
            pc += t.len as u64;
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

#[test]
fn random_regions_match_the_reference_at_both_tiers() {
    let count: u64 = std::env::var("VMJIT_DIFF_COUNT")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(300);
    let seeds: Vec<u64> = match std::env::var("VMJIT_DIFF_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
    {
        Some(seed) => vec![seed],
        None => (3_000_000..3_000_000 + count).collect(),
    };
    let mut trs = [translator(OptLevel::Quick), translator(OptLevel::Speed)];
    let (mut transfers, mut back_edges, mut exhausted) = (0u64, 0u64, 0u64);
    for seed in seeds {
        let mut rng = Rng::new(seed);
        let blocks = random_region(&mut rng);
        let mut cpu = random_cpu(&mut rng);
        cpu.x[5] = 1 + rng.below(6);
        let mem = random_mem(&mut rng);
        let budget = rng.pick(&[0, 1, 2, 5, 20, 200]);
        let tr = &mut trs[(seed % 2) as usize];
        let what = format!(
            "seed {seed} budget {budget} (replay: VMJIT_DIFF_SEED={seed} cargo test -p translate --test regions)"
        );
        let perms = test_perms();
        let mut start = cpu.clone();
        start.pc = blocks[0][0].0;
        let (_, left, moved) = run_region_counting(&blocks, start, mem.clone(), &perms, budget);
        transfers += moved;
        back_edges += budget - left;
        exhausted += (budget > 0 && left == 0) as u64;
        check_region(tr, &blocks, &cpu, &mem, budget, &what);
    }
    // The generator must really loop and really run out of budget.
    if std::env::var("VMJIT_DIFF_SEED").is_err() {
        assert!(transfers > count / 2, "only {transfers} internal transfers");
        assert!(back_edges > count / 4, "only {back_edges} back edges");
        assert!(
            exhausted > count / 20,
            "budget ran out only {exhausted} times"
        );
    }
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
