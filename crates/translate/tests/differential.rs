//! Differential test: random blocks (every instruction class, compressed encodings, M
//! edge values, loads/stores across the test page map, F/D, A and Zicsr through the
//! helper) run through the JIT and through `rv64::execute` from the same random state;
//! registers, pc, instret, fflags, reservation, exit and memory must agree.
//!
//! `VMJIT_DIFF_SEED=<n>` replays one seed (printed by a failure); `VMJIT_DIFF_COUNT=<n>`
//! changes how many seeds each test runs.

mod common;

use common::*;
use translate::OptLevel;

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

fn run_seed(tr: &mut translate::Translator, seed: u64, max_body: u64) {
    let mut rng = Rng::new(seed);
    let block = random_block(&mut rng, max_body);
    let cpu = random_cpu(&mut rng);
    let mem = random_mem(&mut rng);
    let perms = test_perms();
    let what = format!(
        "seed {seed} (replay: VMJIT_DIFF_SEED={seed} cargo test -p translate --test differential)"
    );
    check(tr, &block, &cpu, &mem, &perms, &what);
}

#[test]
fn random_short_blocks_match_interpreter_at_tier1() {
    let mut tr = translator(OptLevel::Quick);
    for seed in seeds(0) {
        run_seed(&mut tr, seed, 8);
    }
}

#[test]
fn random_long_blocks_match_interpreter_at_tier2() {
    let mut tr = translator(OptLevel::Speed);
    for seed in seeds(1_000_000) {
        run_seed(&mut tr, seed, 40);
    }
}

#[test]
fn random_blocks_compiled_for_chaining_match_interpreter() {
    let mut tr = translate::Translator::with_config(translate::TranslatorConfig {
        opt: OptLevel::Quick,
        chain: true,
        jump_cache: None,
        // The bounds test with an immediate (the other tests load guest_size).
        guest_size: Some(GUEST_SIZE as u64),
        perms_offset: None,
    })
    .expect("host");
    for seed in seeds(2_000_000) {
        run_seed(&mut tr, seed, 16);
    }
}

/// The generator is only as good as what it produces: every inline operation must occur,
/// along with helper classes and every kind of exit, in the seeds a normal run uses.
#[test]
fn random_blocks_cover_every_inline_operation_and_exit_kind() {
    use rv64::{Exit, Op};
    use std::collections::{HashMap, HashSet};
    let mut ops: HashMap<Op, u64> = HashMap::new();
    let mut exits: HashMap<&'static str, u64> = HashMap::new();
    let mut compressed = 0u64;
    let mut mem_ok = 0u64;
    for seed in 0..count() {
        let mut rng = Rng::new(seed);
        let block = random_block(&mut rng, 8);
        let cpu = random_cpu(&mut rng);
        let mem = random_mem(&mut rng);
        let out = run_interp(&block, &cpu, &mem, &test_perms());
        let executed = (out.cpu.instret.wrapping_sub(cpu.instret)) as usize;
        for (k, (_, i)) in block.iter().enumerate() {
            *ops.entry(i.op).or_default() += 1;
            compressed += (i.len == 2) as u64;
            let is_mem = matches!(
                i.op,
                Op::Lb
                    | Op::Lh
                    | Op::Lw
                    | Op::Ld
                    | Op::Lbu
                    | Op::Lhu
                    | Op::Lwu
                    | Op::Sb
                    | Op::Sh
                    | Op::Sw
                    | Op::Sd
            );
            mem_ok += (is_mem && k < executed) as u64;
        }
        let kind = match out.exit {
            None => "continue",
            Some(Exit::Ecall) => "ecall",
            Some(Exit::Ebreak) => "ebreak",
            Some(Exit::FenceI) => "fence.i",
            Some(Exit::Illegal { .. }) => "illegal",
            Some(Exit::Fault { .. }) => "fault",
            Some(_) => "other",
        };
        *exits.entry(kind).or_default() += 1;
    }
    let inline = [
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
        Op::Ecall,
        Op::Ebreak,
        Op::FenceI,
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
        Op::Illegal,
        Op::Flw,
        Op::Fld,
        Op::Fsw,
        Op::Fsd,
        Op::FmvXW,
        Op::FmvXD,
        Op::FmvWX,
        Op::FmvDX,
        Op::FsgnjS,
        Op::FsgnjnS,
        Op::FsgnjxS,
        Op::FsgnjD,
        Op::FsgnjnD,
        Op::FsgnjxD,
    ];
    eprintln!(
        "ops: {} distinct; exits {exits:?}; compressed {compressed}; completed loads/stores {mem_ok}",
        ops.len()
    );
    let missing: Vec<_> = inline.iter().filter(|op| !ops.contains_key(op)).collect();
    assert!(missing.is_empty(), "generator never produced {missing:?}");
    let helper_classes: HashSet<&str> = ops
        .keys()
        .filter_map(|op| {
            let name = format!("{op:?}");
            if name.starts_with("Amo") || name.starts_with("Lr") || name.starts_with("Sc") {
                Some("A")
            } else if name.starts_with("Csr") {
                Some("Zicsr")
            } else if name.starts_with('F') && name.ends_with('S') && !name.starts_with("Fence") {
                Some("F")
            } else if name.starts_with('F') && name.ends_with('D') {
                Some("D")
            } else {
                None
            }
        })
        .collect();
    assert_eq!(
        helper_classes.len(),
        4,
        "helper classes produced: {helper_classes:?}"
    );
    for kind in ["continue", "ecall", "ebreak", "fence.i", "illegal", "fault"] {
        assert!(
            exits.get(kind).copied().unwrap_or(0) > 0,
            "no block ended with {kind}: {exits:?}"
        );
    }
    assert!(
        compressed > count() / 4,
        "only {compressed} compressed instructions"
    );
    assert!(mem_ok > count() / 2, "only {mem_ok} loads/stores completed");
}
