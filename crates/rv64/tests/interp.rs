//! The block interpreter: pc and instret bookkeeping, exits in the middle of blocks,
//! budgets, caching and invalidation of decoded blocks.

mod common;
use common::*;
use rv64::testmem::FlatMemory;
use rv64::{AccessKind, Cpu, Exit, Interpreter, Memory, execute, fetch};

const ADDI_A0_1: u32 = 0x0015_0513; // addi a0,a0,1
const ILLEGAL: u32 = 0xffff_ffff;

fn load(words: &[u32]) -> (Cpu, FlatMemory) {
    let (cpu, mut mem) = setup();
    mem.write_words(CODE, words);
    (cpu, mem)
}

/// sum = 0; for (i = 10; i != 0; i--) sum += i; ecall
fn sum_loop() -> Vec<u32> {
    vec![
        i(10, 0, 0, 5, 0x13), // li t0,10
        i(0, 0, 0, 10, 0x13), // li a0,0
        op(0, 0, 10, 10, 5),  // loop: add a0,a0,t0
        i(-1, 5, 0, 5, 0x13), // addi t0,t0,-1
        b(-8, 0, 5, 1),       // bnez t0,loop
        ECALL,
    ]
}

#[test]
fn run_executes_until_ecall_with_exact_instret_and_pc_at_the_ecall() {
    let (mut cpu, mut mem) = load(&sum_loop());
    let mut it = Interpreter::new();
    assert_eq!(it.run(&mut cpu, &mut mem, u64::MAX), Exit::Ecall);
    assert_eq!(cpu.x[10], 55);
    assert_eq!(cpu.pc, CODE + 20);
    assert_eq!(cpu.instret, 2 + 3 * 10);
    // Blocks: [li, li, add, addi, bnez], then [add, addi, bnez] x 9, then [ecall].
    assert_eq!(it.blocks_executed(), 11);
}

#[test]
fn interpreter_and_single_step_execute_agree() {
    let words = sum_loop();
    let (mut a, mut ma) = load(&words);
    let (mut b_, mut mb) = load(&words);
    let mut it = Interpreter::new();
    let ea = it.run(&mut a, &mut ma, u64::MAX);
    let eb = loop {
        let raw = fetch(&mb, b_.pc).unwrap();
        if let Err(e) = execute(&mut b_, &mut mb, &dec(raw)) {
            break e;
        }
    };
    assert_eq!(ea, eb);
    assert_eq!(a, b_);
}

#[test]
fn a_fault_inside_a_block_retires_exactly_the_instructions_before_it() {
    let (mut cpu, mut mem) = load(&[ADDI_A0_1, i(0, 0, 3, 6, 0x03), ADDI_A0_1, ECALL]); // ld t1,0(zero)
    mem = FlatMemory {
        base: CODE,
        bytes: mem.bytes[CODE as usize..].to_vec(),
    }; // address 0 unmapped
    let mut it = Interpreter::new();
    let e = it.run(&mut cpu, &mut mem, u64::MAX);
    assert_eq!(
        e,
        Exit::Fault {
            pc: CODE + 4,
            fault: rv64::MemFault {
                addr: 0,
                kind: AccessKind::Read
            }
        }
    );
    assert_eq!((cpu.pc, cpu.instret, cpu.x[10]), (CODE + 4, 1, 1));
}

#[test]
fn rdinstret_inside_a_block_sees_the_exact_count() {
    let (mut cpu, mut mem) = load(&[ADDI_A0_1, ADDI_A0_1, 0xc020_22f3, ECALL]); // rdinstret t0
    cpu.instret = 100;
    let mut it = Interpreter::new();
    assert_eq!(it.run(&mut cpu, &mut mem, u64::MAX), Exit::Ecall);
    assert_eq!(cpu.x[5], 102);
    assert_eq!(cpu.instret, 103);
}

#[test]
fn an_illegal_instruction_is_reported_only_when_reached() {
    // j +8 skips the illegal word; the second run reaches one.
    let (mut cpu, mut mem) = load(&[j(8, 0), ILLEGAL, ADDI_A0_1, ILLEGAL]);
    let mut it = Interpreter::new();
    let e = it.run(&mut cpu, &mut mem, u64::MAX);
    assert_eq!(
        e,
        Exit::Illegal {
            pc: CODE + 12,
            raw: ILLEGAL
        }
    );
    assert_eq!((cpu.pc, cpu.instret, cpu.x[10]), (CODE + 12, 2, 1));
}

#[test]
fn the_budget_stops_at_a_block_boundary_after_enough_instructions() {
    let (mut cpu, mut mem) = load(&[ADDI_A0_1, ADDI_A0_1, j(-8, 0)]); // endless loop of 3
    let mut it = Interpreter::new();
    assert_eq!(it.run(&mut cpu, &mut mem, 100), Exit::Budget);
    assert_eq!(cpu.instret, 102, "34 blocks of 3");
    assert_eq!(cpu.pc, CODE);
    assert_eq!(it.run(&mut cpu, &mut mem, 0), Exit::Budget);
    assert_eq!(cpu.instret, 102, "a zero budget runs nothing");
}

#[test]
fn decoded_blocks_are_kept_until_invalidated() {
    let (mut cpu, mut mem) = load(&[i(1, 0, 0, 10, 0x13), ECALL]); // li a0,1
    let mut it = Interpreter::new();
    assert_eq!(it.run(&mut cpu, &mut mem, u64::MAX), Exit::Ecall);
    assert_eq!(cpu.x[10], 1);
    mem.write_words(CODE, &[i(2, 0, 0, 10, 0x13)]); // li a0,2
    cpu.pc = CODE;
    it.run(&mut cpu, &mut mem, u64::MAX);
    assert_eq!(
        cpu.x[10], 1,
        "stale block: code changes need fence.i or invalidation"
    );
    it.invalidate_range(CODE + 100, CODE + 200);
    cpu.pc = CODE;
    it.run(&mut cpu, &mut mem, u64::MAX);
    assert_eq!(
        cpu.x[10], 1,
        "a range that does not overlap keeps the block"
    );
    it.invalidate_range(CODE + 2, CODE + 3);
    cpu.pc = CODE;
    it.run(&mut cpu, &mut mem, u64::MAX);
    assert_eq!(cpu.x[10], 2, "an overlapping range drops it");
    mem.write_words(CODE, &[i(3, 0, 0, 10, 0x13)]);
    it.flush();
    assert_eq!(it.blocks_cached(), 0);
    cpu.pc = CODE;
    it.run(&mut cpu, &mut mem, u64::MAX);
    assert_eq!(cpu.x[10], 3);
}

#[test]
fn fence_i_exits_past_itself_and_drops_decoded_code() {
    // li a0,1; fence.i; ecall — then the first instruction is rewritten.
    let (mut cpu, mut mem) = load(&[i(1, 0, 0, 10, 0x13), 0x0000_100f, ECALL]);
    let mut it = Interpreter::new();
    assert_eq!(it.run(&mut cpu, &mut mem, u64::MAX), Exit::FenceI);
    assert_eq!((cpu.pc, cpu.instret), (CODE + 8, 2));
    assert_eq!(it.blocks_cached(), 0);
    assert_eq!(it.run(&mut cpu, &mut mem, u64::MAX), Exit::Ecall);
    // The block holding `li a0,1` was dropped by fence.i, so rewritten code is seen.
    mem.write_words(CODE, &[i(7, 0, 0, 10, 0x13)]);
    cpu.pc = CODE;
    it.run(&mut cpu, &mut mem, u64::MAX);
    assert_eq!(cpu.x[10], 7);
}

#[test]
fn fetching_outside_memory_is_a_fetch_fault() {
    let (mut cpu, mut mem) = setup();
    cpu.pc = 0x100_0000;
    let mut it = Interpreter::new();
    assert_eq!(
        it.run(&mut cpu, &mut mem, u64::MAX),
        Exit::Fault {
            pc: 0x100_0000,
            fault: rv64::MemFault {
                addr: 0x100_0000,
                kind: AccessKind::Fetch
            }
        }
    );
    assert_eq!(cpu.instret, 0);
}

#[test]
fn a_block_running_off_the_end_of_memory_faults_at_the_next_fetch() {
    let mut mem = FlatMemory::new(CODE, 8);
    mem.write_words(CODE, &[ADDI_A0_1, ADDI_A0_1]);
    let mut cpu = Cpu::new();
    cpu.pc = CODE;
    let mut it = Interpreter::new();
    assert_eq!(it.run_block(&mut cpu, &mut mem), Ok(()));
    assert_eq!((cpu.pc, cpu.instret), (CODE + 8, 2));
    let e = it.run_block(&mut cpu, &mut mem).unwrap_err();
    assert!(
        matches!(e, Exit::Fault { pc, fault } if pc == CODE + 8 && fault.kind == AccessKind::Fetch)
    );
}

#[test]
fn compressed_code_runs_with_two_byte_steps() {
    let (mut cpu, mut mem) = setup();
    // c.li a0,5; c.addi a0,1; c.mv a1,a0; c.add a1,a0; ecall
    let halves: [u16; 4] = [0x4515, 0x0505, 0x85aa, 0x95aa];
    for (k, h) in halves.iter().enumerate() {
        mem.write_bytes(CODE + 2 * k as u64, &h.to_le_bytes());
    }
    mem.write_words(CODE + 8, &[ECALL]);
    let mut it = Interpreter::new();
    assert_eq!(it.run(&mut cpu, &mut mem, u64::MAX), Exit::Ecall);
    assert_eq!((cpu.x[10], cpu.x[11]), (6, 12));
    assert_eq!((cpu.pc, cpu.instret), (CODE + 8, 4));
}

#[test]
fn a_32_bit_instruction_straddling_a_fetch_boundary_is_fetched_in_two_parcels() {
    let mut mem = FlatMemory::new(CODE, 16);
    mem.write_bytes(CODE, &0x4515u16.to_le_bytes()); // c.li a0,5
    mem.write_words(CODE + 2, &[ADDI_A0_1, ECALL]);
    let mut cpu = Cpu::new();
    cpu.pc = CODE;
    let mut it = Interpreter::new();
    assert_eq!(it.run(&mut cpu, &mut mem, u64::MAX), Exit::Ecall);
    assert_eq!((cpu.x[10], cpu.pc), (6, CODE + 6));
    assert_eq!(mem.load8(CODE).unwrap(), 0x15);
}

#[test]
fn interpreter_and_cpu_can_move_between_threads() {
    fn assert_send<T: Send + 'static>() {}
    assert_send::<Interpreter>();
    assert_send::<Cpu>();
}

#[test]
fn run_exact_stops_after_exactly_the_count_even_inside_a_block() {
    let words = sum_loop();
    let (mut whole, mut mw) = load(&words);
    let mut it = Interpreter::new();
    assert_eq!(it.run(&mut whole, &mut mw, u64::MAX), Exit::Ecall);
    // Every prefix of the run, in uneven steps that split blocks, reaches the same state.
    for step in [1, 2, 3, 7] {
        let (mut cpu, mut mem) = load(&words);
        let mut it = Interpreter::new();
        let mut last = Exit::Budget;
        while last == Exit::Budget {
            let before = cpu.instret;
            last = it.run_exact(&mut cpu, &mut mem, step);
            if last == Exit::Budget {
                assert_eq!(cpu.instret, before + step, "step {step}");
            }
        }
        assert_eq!(last, Exit::Ecall, "step {step}");
        assert_eq!(cpu, whole, "step {step}");
    }
    // A count of 0 runs nothing; one more than the run stops at the ecall, unretired.
    let (mut cpu, mut mem) = load(&words);
    let mut it = Interpreter::new();
    assert_eq!(it.run_exact(&mut cpu, &mut mem, 0), Exit::Budget);
    assert_eq!((cpu.pc, cpu.instret), (CODE, 0));
    assert_eq!(it.run_exact(&mut cpu, &mut mem, 33), Exit::Ecall);
    assert_eq!(cpu, whole);
}
