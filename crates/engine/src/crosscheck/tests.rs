//! Crosscheck runs of small hand-made programs: no divergence through every tier, system
//! calls and rdtime; injected mistranslations found, reported and located.

use super::*;
use crate::jit::JitConfig;
use crate::loader::build;
use crate::memory::MemDifference;

// Encoders for the few instructions the test programs use.
fn i_type(op: u32, rd: u32, f3: u32, rs1: u32, imm: i32) -> u32 {
    ((imm as u32 & 0xfff) << 20) | (rs1 << 15) | (f3 << 12) | (rd << 7) | op
}
fn addi(rd: u32, rs1: u32, imm: i32) -> u32 {
    i_type(0x13, rd, 0, rs1, imm)
}
fn ld(rd: u32, rs1: u32, imm: i32) -> u32 {
    i_type(0x03, rd, 3, rs1, imm)
}
fn sd(rs2: u32, rs1: u32, imm: i32) -> u32 {
    let i = imm as u32;
    ((i >> 5 & 0x7f) << 25) | (rs2 << 20) | (rs1 << 15) | (3 << 12) | ((i & 0x1f) << 7) | 0x23
}
fn r_type(f7: u32, rd: u32, rs1: u32, rs2: u32) -> u32 {
    (f7 << 25) | (rs2 << 20) | (rs1 << 15) | (rd << 7) | 0x33
}
fn add(rd: u32, rs1: u32, rs2: u32) -> u32 {
    r_type(0, rd, rs1, rs2)
}
fn mul(rd: u32, rs1: u32, rs2: u32) -> u32 {
    r_type(1, rd, rs1, rs2)
}
fn lui(rd: u32, imm20: u32) -> u32 {
    (imm20 << 12) | (rd << 7) | 0x37
}
/// `bne rs1, rs2, off`.
fn bne(rs1: u32, rs2: u32, off: i32) -> u32 {
    let o = off as u32;
    ((o >> 12 & 1) << 31)
        | ((o >> 5 & 0x3f) << 25)
        | (rs2 << 20)
        | (rs1 << 15)
        | (1 << 12)
        | ((o >> 1 & 0xf) << 8)
        | ((o >> 11 & 1) << 7)
        | 0x63
}
fn rdtime(rd: u32) -> u32 {
    i_type(0x73, rd, 2, 0, 0xc01)
}
const ECALL: u32 = 0x73;
const SP: u32 = 2;
const T0: u32 = 5;
const T1: u32 = 6;
const S0: u32 = 8;
const S1: u32 = 9;
const A0: u32 = 10;
const A1: u32 = 11;
const A2: u32 = 12;
const A3: u32 = 13;
const A4: u32 = 14;
const A5: u32 = 15;
const A7: u32 = 17;

/// `ecall` of system call `nr` (a7 set first).
fn syscall(nr: i32) -> [u32; 2] {
    [addi(A7, 0, nr), ECALL]
}

/// Loads a VM whose code (at the entry point) is `code`.
fn load(tag: &str, code: &[u32]) -> Vm {
    let body: Vec<u8> = code.iter().flat_map(|w| w.to_le_bytes()).collect();
    let len = 64 + 56 + body.len() as u64;
    let elf = build::elf(243, 2, &[build::text(len)], &body);
    let dir = std::env::temp_dir().join(format!("vmjit-xc-{}-{tag}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join("prog");
    std::fs::write(&path, elf).expect("write program");
    let vm = Vm::load(&path, &[], &[]).expect("load");
    let _ = std::fs::remove_dir_all(&dir);
    vm
}

/// Thresholds low enough that the loop below reaches every tier, compiling on the
/// guest thread (so the test does not depend on timing).
fn eager_jit() -> JitConfig {
    JitConfig {
        compile_threads: 0,
        baseline_threshold: 10,
        baseline_runs: 200,
        hot_threshold: 10,
        tier2_threshold: 100,
        ..JitConfig::default()
    }
}

const ITERATIONS: u32 = 1 << 20;

/// A loop of `ITERATIONS` with arithmetic and a store and load on the stack; exits
/// with a checksum (`loop_checksum`).
fn counting_loop() -> Vec<u32> {
    let mut code = vec![
        lui(T0, ITERATIONS >> 12),
        addi(T1, 0, 3),
        addi(A0, 0, 0),
        addi(A1, 0, 1),
        addi(SP, SP, -64),
        // loop:
        add(A0, A0, A1),
        mul(A1, A1, T1),
        addi(A1, A1, 1),
        sd(A0, SP, 8),
        ld(A2, SP, 8),
        add(A1, A1, A2),
        addi(T0, T0, -1),
        bne(T0, 0, -28),
        i_type(0x13, A0, 7, A0, 0x7f), // andi a0,a0,127
    ];
    code.extend(syscall(93));
    code
}

fn loop_checksum() -> i32 {
    let (mut a0, mut a1) = (0u64, 1u64);
    for _ in 0..ITERATIONS {
        a0 = a0.wrapping_add(a1);
        a1 = a1.wrapping_mul(3).wrapping_add(1).wrapping_add(a0);
    }
    (a0 & 0x7f) as i32
}

fn crosscheck(vm: &mut Vm, inject: Option<Injection>) {
    vm.enable_crosscheck(CrosscheckConfig {
        inject,
        ..CrosscheckConfig::default()
    })
    .expect("crosscheck");
}

#[test]
fn a_loop_through_every_tier_crosschecks_without_divergence() {
    let mut vm = load("tiers", &counting_loop());
    vm.enable_jit(eager_jit()).expect("jit");
    crosscheck(&mut vm, None);
    let out = vm.run();
    assert_eq!(
        out.exit,
        GuestExit::Exited(loop_checksum()),
        "{:?}",
        vm.divergence()
    );
    assert_eq!(out.instructions, 5 + 8 * u64::from(ITERATIONS) + 3);
    let stats = vm.jit().expect("jit").stats();
    assert!(stats.baseline_translations > 0, "{stats:?}");
    assert!(stats.tier1_translations > 0, "{stats:?}");
    assert!(stats.tier2_translations > 0, "{stats:?}");
}

#[test]
fn a_mistranslated_block_is_reported_with_its_pc_tier_and_register() {
    let mut vm = load("reg", &counting_loop());
    vm.enable_jit(eager_jit()).expect("jit");
    let inject = Injection::Register {
        after: 100_000,
        reg: A1 as u8,
        mask: 0x40,
    };
    crosscheck(&mut vm, Some(inject));
    let out = vm.run();
    let d = vm.divergence().expect("a divergence").clone();
    assert_eq!(
        out.exit,
        GuestExit::Diverged {
            pc: d.primary_pc,
            instret: d.instret
        }
    );
    assert_eq!(out.exit.exit_code(), DIVERGENCE_EXIT_CODE);
    assert_eq!(d.point, CheckPoint::Step);
    assert!(d.instret >= 100_000 && d.step_start < d.instret, "{d:?}");
    let Ran::Translated { pc, tier, .. } = d.ran else {
        panic!("the step ran translated code: {d:?}");
    };
    assert!(tier.is_some());
    // Only a1 differs, by the injected bit.
    assert_eq!(d.registers.len(), 1, "{d:?}");
    assert_eq!(d.registers[0].name, "a1");
    assert_eq!(d.registers[0].primary ^ d.registers[0].shadow, 0x40);
    assert_eq!(d.memory, None);
    // The replay finds the block the corruption comes from: the entry's own block.
    let l = d.localised.as_ref().expect("located");
    assert_eq!(l.ran.pc(), Some(pc), "{d:?}");
    assert_eq!(l.registers.len(), 1);
    assert_eq!(l.registers[0].name, "a1");
    assert_eq!(l.registers[0].primary ^ l.registers[0].shadow, 0x40);
    let text = d.to_string();
    for want in [
        "vmjit: crosscheck: the JIT and the interpreter diverged after".to_string(),
        format!("code entered at {pc:#x}"),
        "a1".to_string(),
        format!(
            "{:#018x} / {:#018x}",
            d.registers[0].primary, d.registers[0].shadow
        ),
        "located:    replaying the step block by block".to_string(),
        format!("{pc:#x}:  "),
    ] {
        assert!(text.contains(&want), "{want:?} missing from:\n{text}");
    }
}

#[test]
fn a_stray_store_is_reported_with_its_address_and_both_values() {
    // A stack word far below anything the program touches.
    let addr = crate::layout::STACK_TOP - crate::layout::STACK_SIZE + 0x1008;
    let inject = Injection::Memory {
        after: 100_000,
        addr,
        mask: 0xff00,
    };
    let want = MemDifference::Contents {
        addr: addr + 1,
        word: addr,
        ours: 0xff00,
        theirs: 0,
    };
    // Memory compared every 4 Mi instructions: found later, not located.
    let mut vm = load("mem", &counting_loop());
    vm.enable_jit(eager_jit()).expect("jit");
    crosscheck(&mut vm, Some(inject));
    let out = vm.run();
    let d = vm.divergence().expect("a divergence");
    assert_eq!(out.exit.exit_code(), DIVERGENCE_EXIT_CODE);
    assert!(
        matches!(
            d.point,
            CheckPoint::Periodic | CheckPoint::Syscall { nr: 93 }
        ),
        "{d:?}"
    );
    assert!(d.registers.is_empty());
    assert_eq!(d.memory, Some(want));
    assert!(d.memory_agreed_at < 100_000);
    assert_eq!(d.localised, None);
    let text = d.to_string();
    let line = format!(
        "the 8 bytes at {addr:#x} are 0x000000000000ff00 on the primary, \
         0x0000000000000000 on the interpreter"
    );
    assert!(text.contains(&line), "{line:?} missing from:\n{text}");

    // Memory compared after every step: found in the step that stored, and the
    // replay names the block.
    let mut vm = load("mem0", &counting_loop());
    vm.enable_jit(eager_jit()).expect("jit");
    vm.enable_crosscheck(CrosscheckConfig {
        memory_period: 0,
        inject: Some(inject),
        ..CrosscheckConfig::default()
    })
    .expect("crosscheck");
    vm.run();
    let d = vm.divergence().expect("a divergence");
    assert_eq!(d.point, CheckPoint::Periodic);
    assert_eq!(d.memory, Some(want));
    assert_eq!(d.memory_agreed_at, d.step_start);
    let l = d.localised.as_ref().expect("located");
    assert_eq!(l.ran.pc(), d.ran.pc());
    assert!(l.registers.is_empty());
    assert_eq!(l.memory, Some(want));
}

#[test]
fn system_call_results_written_to_memory_are_replayed_to_the_shadow() {
    // getrandom into the stack (host data the shadow cannot compute), loaded into a
    // register; mmap, a store there, brk up, munmap; exit.
    let mut code = vec![
        addi(SP, SP, -64),
        addi(A0, SP, 0),
        addi(A1, 0, 16),
        addi(A2, 0, 0),
    ];
    code.extend(syscall(278));
    code.extend([ld(S0, SP, 0), ld(S1, SP, 8)]);
    code.extend([
        addi(A0, 0, 0),
        lui(A1, 2),
        addi(A2, 0, 3),
        addi(A3, 0, 0x22),
        addi(A4, 0, -1),
        addi(A5, 0, 0),
    ]);
    code.extend(syscall(222));
    code.extend([sd(S0, A0, 8), addi(S1, A0, 0)]);
    code.extend([addi(A0, 0, 0)]);
    code.extend(syscall(214));
    code.extend([lui(A1, 1), add(A0, A0, A1)]);
    code.extend(syscall(214));
    code.extend([addi(A0, S1, 0), lui(A1, 2)]);
    code.extend(syscall(215));
    code.extend([addi(A0, 0, 0)]);
    code.extend(syscall(93));
    for jit in [false, true] {
        let mut vm = load("sys", &code);
        if jit {
            vm.enable_jit(eager_jit()).expect("jit");
        }
        crosscheck(&mut vm, None);
        let out = vm.run();
        assert_eq!(out.exit, GuestExit::Exited(0), "{:?}", vm.divergence());
        assert!(vm.cpu().x[S0 as usize] | vm.cpu().x[S1 as usize] != 0);
    }
}

#[test]
fn rdtime_in_translated_code_reads_the_same_values_on_both_sides() {
    let code = [
        lui(T0, 0x10),
        rdtime(A1),
        add(A0, A0, A1),
        addi(A2, A2, 1),
        addi(A3, A3, 1),
        addi(A4, A4, 1),
        addi(T0, T0, -1),
        bne(T0, 0, -24),
        addi(A0, 0, 0),
        addi(A7, 0, 93),
        ECALL,
    ];
    let mut vm = load("time", &code);
    vm.enable_jit(eager_jit()).expect("jit");
    crosscheck(&mut vm, None);
    let out = vm.run();
    assert_eq!(out.exit, GuestExit::Exited(0), "{:?}", vm.divergence());
    assert!(vm.jit().expect("jit").stats().tier1_translations > 0);
    assert_eq!(
        clock::mode(),
        ClockMode::Host,
        "the thread's clock is left as it was"
    );
}
