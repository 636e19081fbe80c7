//! The baseline tier against the interpreter: random blocks of the instructions it
//! supports (compressed encodings, M edge values, loads and stores across the test page
//! map, every exit kind) run from the same random state must leave the same registers,
//! pc, instret, exit and memory, with each layout of the context it supports.
//!
//! `VMJIT_DIFF_SEED=<n>` replays one seed (printed by a failure); `VMJIT_DIFF_COUNT=<n>`
//! changes how many seeds run.

mod common;

use common::*;
use rv64::{Cpu, Insn, Op};
use translate::exec_mem::ExecBuf;
use translate::helpers::FLAT_HELPERS;
use translate::{
    Baseline, BaselineConfig, JitContext, JumpCacheShape, OptLevel, TranslateError, Translator,
    TranslatorConfig, status,
};

const SHAPE: JumpCacheShape = JumpCacheShape { shift: 1, len: 64 };

/// Bytes before guest memory where the layout with the table next to memory keeps it.
const TABLE_BYTES: usize = 4096;

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
    let mut tr = Translator::with_config(TranslatorConfig {
        opt: OptLevel::Quick,
        chain: true,
        jump_cache: Some(SHAPE),
        guest_size: None,
        perms_offset: None,
    })
    .expect("host");
    ExecBuf::new(&tr.trampoline().expect("trampoline").code).expect("map")
}

/// A random block of instructions the baseline tier supports (the differential
/// generator's, with the others drawn again).
fn random_baseline_block(rng: &mut Rng, max_body: u64) -> Vec<(u64, Insn)> {
    let n = 1 + rng.below(max_body);
    let mut insns = Vec::new();
    while insns.len() < n as usize {
        let i = random_body_insn(rng);
        if Baseline::supports(i.op) {
            insns.push(i);
        }
    }
    if let Some(t) = random_terminator(rng) {
        insns.push(t);
    }
    layout(&insns)
}

/// Runs `block` as baseline code through a chained trampoline with an empty jump cache
/// (so every block end returns), finishing a slow-path exit with the interpreter.
fn run_baseline(
    block: &[(u64, Insn)],
    cpu: &Cpu,
    mem: &[u8],
    perms: &[u8],
    guest_size: Option<u64>,
    table_below: bool,
) -> Outcome {
    let mut bl = baseline(guest_size, table_below.then_some(-(TABLE_BYTES as i32)));
    // With the table below memory, also with a tier-up counter far from zero (its
    // entry code must change nothing else).
    let counter = table_below.then_some(5);
    let compiled = bl
        .translate(block, counter)
        .unwrap_or_else(|e| panic!("baseline translation failed: {e}"));
    assert_eq!(compiled.guest_start, block[0].0);
    assert_eq!(compiled.insns, block.len());
    let code = ExecBuf::new(&compiled.code).expect("map code");
    let tramp = chained_trampoline();
    // [table | guest memory]; with `table_below` the code finds the table by offset.
    let mut buf = vec![0u8; TABLE_BYTES + mem.len()];
    buf[..perms.len()].copy_from_slice(perms);
    buf[TABLE_BYTES..].copy_from_slice(mem);
    // Every key empty (u64::MAX): four u64 words per 32-byte entry.
    let jc: Vec<[u64; 4]> = vec![[u64::MAX, 0, 0, 0]; SHAPE.len];
    let (table, guest) = buf.split_at_mut(TABLE_BYTES);
    let mut c = cpu.clone();
    c.pc = block[0].0;
    let mut ctx = JitContext::new(
        c,
        guest.as_mut_ptr(),
        table.as_ptr(),
        guest.len() as u64,
        &FLAT_HELPERS,
    );
    ctx.jump_cache = jc.as_ptr().cast();
    ctx.jc_mask = SHAPE.len as u64 - 1;
    ctx.jc_shift = u64::from(SHAPE.shift);
    // A block that branches to its own start loops while the budget lasts; the
    // reference runs one pass, so such blocks get none (the chaining tests cover loops).
    let (last_pc, last) = block[block.len() - 1];
    let loops = matches!(
        last.op,
        Op::Beq | Op::Bne | Op::Blt | Op::Bge | Op::Bltu | Op::Bgeu | Op::Jal
    ) && last_pc.wrapping_add(last.imm as u64) == block[0].0;
    let budget = if loops { 0 } else { 100 };
    ctx.chain_budget = budget;
    let mut counters = [1000u32; 8];
    ctx.counters = counters.as_mut_ptr();
    // SAFETY: `ctx` points at `guest` and `table` (adjacent halves of `buf`, as the
    // compiled-in offset says when there is one) and at `jc` (a jump cache of SHAPE, all
    // empty), all alive and not otherwise borrowed during the call; `tramp` is a chained
    // trampoline and the block is baseline code, which uses the same convention.
    let st = unsafe { tramp.call_trampoline(&mut ctx, code.ptr()) };
    if counter.is_some() {
        assert_eq!(counters[5], 999, "the counter counts one entry");
    }
    let mut mem = guest.to_vec();
    if st == status::SLOW_PATH {
        let (cpu, exit) = finish_block(block, ctx.cpu.clone(), &mut mem, perms);
        return Outcome { cpu, exit, mem };
    }
    assert_eq!(ctx.chain_budget, budget, "an empty jump cache never chains");
    let exit = ctx.exit_for(st);
    assert!(
        exit.is_some() || st == status::CONTINUE,
        "unknown status {st}"
    );
    Outcome {
        cpu: ctx.cpu,
        exit,
        mem,
    }
}

fn check_seed(seed: u64, max_body: u64) {
    let mut rng = Rng::new(seed);
    let block = random_baseline_block(&mut rng, max_body);
    let cpu = random_cpu(&mut rng);
    let mem = random_mem(&mut rng);
    let perms = test_perms();
    let want = run_interp(&block, &cpu, &mem, &perms);
    for guest_size in [None, Some(GUEST_SIZE as u64)] {
        for table_below in [false, true] {
            let got = run_baseline(&block, &cpu, &mem, &perms, guest_size, table_below);
            let d = diff(&got, &want);
            assert!(
                d.is_empty(),
                "seed {seed} (replay: VMJIT_DIFF_SEED={seed} cargo test -p translate --test \
                 baseline), guest size {guest_size:?}, table below memory {table_below}: \
                 baseline and interpreter differ\n{}{d}",
                disasm(&block)
            );
        }
    }
}

#[test]
fn random_short_blocks_match_the_interpreter() {
    for seed in seeds(5_000_000) {
        check_seed(seed, 8);
    }
}

#[test]
fn random_long_blocks_match_the_interpreter() {
    for seed in seeds(6_000_000) {
        check_seed(seed, 40);
    }
}

/// The generator must reach every instruction the tier supports, and completed
/// accesses, or the tests above prove little.
#[test]
fn random_baseline_blocks_cover_every_supported_operation() {
    let mut seen = std::collections::HashSet::new();
    let mut completed_mem = 0u64;
    for seed in 5_000_000..5_000_000 + count().max(500) {
        let mut rng = Rng::new(seed);
        let block = random_baseline_block(&mut rng, 8);
        let cpu = random_cpu(&mut rng);
        let mem = random_mem(&mut rng);
        let out = run_interp(&block, &cpu, &mem, &test_perms());
        let executed = out.cpu.instret.wrapping_sub(cpu.instret) as usize;
        for (k, (_, i)) in block.iter().enumerate() {
            seen.insert(i.op);
            let is_mem = format!("{:?}", i.op).starts_with(['L', 'S'])
                && !matches!(
                    i.op,
                    Op::Lui | Op::Slti | Op::Sltiu | Op::Slli | Op::Srli | Op::Srai
                );
            completed_mem += u64::from(is_mem && k < executed);
        }
    }
    let all = [
        Op::Lui,
        Op::Auipc,
        Op::Jal,
        Op::Jalr,
        Op::Beq,
        Op::Bne,
        Op::Blt,
        Op::Bge,
        Op::Bltu,
        Op::Bgeu,
        Op::Lb,
        Op::Lh,
        Op::Lw,
        Op::Ld,
        Op::Lbu,
        Op::Lhu,
        Op::Lwu,
        Op::Sb,
        Op::Sh,
        Op::Sw,
        Op::Sd,
        Op::Flw,
        Op::Fld,
        Op::Fsw,
        Op::Fsd,
        Op::Addi,
        Op::Slti,
        Op::Sltiu,
        Op::Xori,
        Op::Ori,
        Op::Andi,
        Op::Slli,
        Op::Srli,
        Op::Srai,
        Op::Add,
        Op::Sub,
        Op::Sll,
        Op::Slt,
        Op::Sltu,
        Op::Xor,
        Op::Srl,
        Op::Sra,
        Op::Or,
        Op::And,
        Op::Addiw,
        Op::Slliw,
        Op::Srliw,
        Op::Sraiw,
        Op::Addw,
        Op::Subw,
        Op::Sllw,
        Op::Srlw,
        Op::Sraw,
        Op::Mul,
        Op::Mulh,
        Op::Mulhsu,
        Op::Mulhu,
        Op::Div,
        Op::Divu,
        Op::Rem,
        Op::Remu,
        Op::Mulw,
        Op::Divw,
        Op::Divuw,
        Op::Remw,
        Op::Remuw,
        Op::FmvXW,
        Op::FmvXD,
        Op::FmvWX,
        Op::FmvDX,
        Op::FsgnjD,
        Op::FsgnjnD,
        Op::FsgnjxD,
        Op::Ecall,
        Op::Ebreak,
        Op::FenceI,
        Op::Illegal,
    ];
    let missing: Vec<_> = all.iter().filter(|op| !seen.contains(op)).collect();
    assert!(missing.is_empty(), "generator never produced {missing:?}");
    assert!(
        completed_mem > 500,
        "only {completed_mem} loads/stores completed"
    );
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
