//! Integer semantics (RV64IM, Zicsr counters) executed one instruction at a time.

mod common;
use common::*;
use rv64::{AccessKind, Exit, MemFault, Memory};

const MIN: u64 = i64::MIN as u64;
const NEG1: u64 = u64::MAX;

fn div(a: u64, b: u64) -> u64 {
    rr(op(1, 4, 3, 1, 2), a, b)
}
fn divu(a: u64, b: u64) -> u64 {
    rr(op(1, 5, 3, 1, 2), a, b)
}
fn rem(a: u64, b: u64) -> u64 {
    rr(op(1, 6, 3, 1, 2), a, b)
}
fn remu(a: u64, b: u64) -> u64 {
    rr(op(1, 7, 3, 1, 2), a, b)
}
fn divw(a: u64, b: u64) -> u64 {
    rr(op32(1, 4, 3, 1, 2), a, b)
}
fn divuw(a: u64, b: u64) -> u64 {
    rr(op32(1, 5, 3, 1, 2), a, b)
}
fn remw(a: u64, b: u64) -> u64 {
    rr(op32(1, 6, 3, 1, 2), a, b)
}
fn remuw(a: u64, b: u64) -> u64 {
    rr(op32(1, 7, 3, 1, 2), a, b)
}

#[test]
fn division_by_zero_gives_all_ones_and_remainder_gives_dividend() {
    assert_eq!(div(42, 0), NEG1);
    assert_eq!(divu(42, 0), NEG1);
    assert_eq!(rem(42, 0), 42);
    assert_eq!(rem(-42i64 as u64, 0), -42i64 as u64);
    assert_eq!(remu(42, 0), 42);
    assert_eq!(divw(42, 0), NEG1);
    assert_eq!(divuw(42, 0), NEG1);
    // remw/remuw return the 32-bit dividend, sign-extended.
    assert_eq!(remw(0x1_8000_0000, 0), 0xffff_ffff_8000_0000);
    assert_eq!(remuw(0x1_8000_0000, 0), 0xffff_ffff_8000_0000);
    assert_eq!(remuw(0x1_0000_0005, 0), 5);
}

#[test]
fn signed_division_overflow_gives_dividend_and_zero_remainder() {
    assert_eq!(div(MIN, NEG1), MIN);
    assert_eq!(rem(MIN, NEG1), 0);
    assert_eq!(divw(0x8000_0000, NEG1), 0xffff_ffff_8000_0000);
    assert_eq!(remw(0x8000_0000, NEG1), 0);
}

#[test]
fn division_rounds_toward_zero_and_remainder_takes_dividend_sign() {
    assert_eq!(div(-7i64 as u64, 2), -3i64 as u64);
    assert_eq!(rem(-7i64 as u64, 2), -1i64 as u64);
    assert_eq!(rem(7, -2i64 as u64), 1);
    assert_eq!(divu(-7i64 as u64, 2), (u64::MAX - 6) / 2);
    assert_eq!(divw(-7i64 as u64, 2), -3i64 as u64);
    assert_eq!(divuw(0xffff_fff9, 2), 0x7fff_fffc);
    assert_eq!(remw(0xffff_fff9, 2), NEG1);
}

#[test]
fn high_multiplies_use_the_right_signedness() {
    let mulh = |a, b| rr(op(1, 1, 3, 1, 2), a, b);
    let mulhsu = |a, b| rr(op(1, 2, 3, 1, 2), a, b);
    let mulhu = |a, b| rr(op(1, 3, 3, 1, 2), a, b);
    assert_eq!(mulh(NEG1, NEG1), 0);
    assert_eq!(mulhu(NEG1, NEG1), NEG1 - 1);
    assert_eq!(mulhsu(NEG1, NEG1), NEG1);
    assert_eq!(mulh(MIN, MIN), 1 << 62);
    assert_eq!(
        mulhsu(MIN, NEG1),
        (((i64::MIN as i128) * (u64::MAX as i128)) >> 64) as u64
    );
    assert_eq!(
        rr(op(1, 0, 3, 1, 2), 0x1_0000_0001, 0x1_0000_0001),
        0x2_0000_0001
    );
    // mulw: low 32 bits, sign-extended.
    assert_eq!(
        rr(op32(1, 0, 3, 1, 2), 0x10000, 0x8000),
        0xffff_ffff_8000_0000
    );
}

#[test]
fn word_operations_sign_extend_their_32_bit_result() {
    assert_eq!(
        rr(op32(0, 0, 3, 1, 2), 0x7fff_ffff, 1),
        0xffff_ffff_8000_0000
    ); // addw
    assert_eq!(rr(op32(0x20, 0, 3, 1, 2), 0, 1), NEG1); // subw
    assert_eq!(rr(op32(0, 1, 3, 1, 2), 1, 31), 0xffff_ffff_8000_0000); // sllw
    assert_eq!(
        rr(op32(0, 5, 3, 1, 2), 0xffff_ffff_8000_0000, 0),
        0xffff_ffff_8000_0000
    ); // srlw by 0
    assert_eq!(
        rr(op32(0, 5, 3, 1, 2), 0xffff_ffff_8000_0000, 1),
        0x4000_0000
    ); // srlw
    assert_eq!(
        rr(op32(0x20, 5, 3, 1, 2), 0x8000_0000, 4),
        0xffff_ffff_f800_0000
    ); // sraw
    assert_eq!(
        rr(i(1, 1, 0, 3, 0x1b), 0x7fff_ffff, 0),
        0xffff_ffff_8000_0000
    ); // addiw
    assert_eq!(
        rr(i(0, 1, 0, 3, 0x1b), 0x1_2345_6789_abcd, 0),
        0x6789_abcd_u32 as i32 as i64 as u64
    ); // sext.w
    assert_eq!(rr(i(31, 1, 1, 3, 0x1b), 1, 0), 0xffff_ffff_8000_0000); // slliw
    assert_eq!(rr(i(1, 1, 5, 3, 0x1b), 0x8000_0000, 0), 0x4000_0000); // srliw
    assert_eq!(
        rr(i(0x400 | 1, 1, 5, 3, 0x1b), 0x8000_0000, 0),
        0xffff_ffff_c000_0000
    ); // sraiw
}

#[test]
fn shift_amounts_are_masked_to_the_operand_width() {
    assert_eq!(rr(op(0, 1, 3, 1, 2), 1, 65), 2); // sll by 65 = by 1
    assert_eq!(rr(op(0, 5, 3, 1, 2), MIN, 127), 1); // srl by 127 = by 63
    assert_eq!(rr(op(0x20, 5, 3, 1, 2), MIN, 64 + 62), NEG1 - 1); // sra by 62
    assert_eq!(rr(op32(0, 1, 3, 1, 2), 1, 33), 2); // sllw by 33 = by 1
    assert_eq!(rr(op32(0x20, 5, 3, 1, 2), 0x8000_0000, 63), NEG1); // sraw by 31
    assert_eq!(rr(i(63, 1, 1, 3, 0x13), 1, 0), MIN); // slli 63
    assert_eq!(rr(i(0x400 | 63, 1, 5, 3, 0x13), MIN, 0), NEG1); // srai 63
}

#[test]
fn comparisons_distinguish_signed_and_unsigned() {
    assert_eq!(rr(op(0, 2, 3, 1, 2), NEG1, 1), 1); // slt
    assert_eq!(rr(op(0, 3, 3, 1, 2), NEG1, 1), 0); // sltu
    assert_eq!(rr(i(-1, 1, 3, 3, 0x13), 5, 0), 1); // sltiu x, -1: compares with all ones
    assert_eq!(rr(i(-1, 1, 2, 3, 0x13), 5, 0), 0); // slti
    assert_eq!(rr(i(-1, 1, 4, 3, 0x13), 5, 0), !5); // xori -1 = not
}

#[test]
fn lui_and_auipc_sign_extend_and_auipc_adds_pc() {
    let (mut cpu, mut mem) = setup();
    exec(&mut cpu, &mut mem, 0x8000_01b7).unwrap(); // lui x3, 0x80000
    assert_eq!(cpu.x[3], 0xffff_ffff_8000_0000);
    exec(&mut cpu, &mut mem, 0x0000_1217).unwrap(); // auipc x4, 1 at CODE + 4
    assert_eq!(cpu.x[4], CODE + 4 + 0x1000);
    assert_eq!(cpu.pc, CODE + 8);
    assert_eq!(cpu.instret, 2);
}

#[test]
fn writes_to_x0_are_discarded() {
    let (mut cpu, mut mem) = setup();
    exec(&mut cpu, &mut mem, i(5, 0, 0, 0, 0x13)).unwrap(); // addi x0, x0, 5
    assert_eq!(cpu.x[0], 0);
    mem.store64(DATA, 77).unwrap();
    cpu.x[1] = DATA;
    exec(&mut cpu, &mut mem, i(0, 1, 3, 0, 0x03)).unwrap(); // ld x0, 0(x1)
    assert_eq!(cpu.x[0], 0);
    exec(&mut cpu, &mut mem, j(8, 0)).unwrap(); // jal x0
    assert_eq!(cpu.x[0], 0);
}

#[test]
fn jumps_link_the_next_pc_and_jalr_clears_bit_zero() {
    let (mut cpu, mut mem) = setup();
    exec(&mut cpu, &mut mem, j(-16, 1)).unwrap();
    assert_eq!((cpu.pc, cpu.x[1]), (CODE - 16, CODE + 4));
    cpu.x[5] = 0x2001;
    exec(&mut cpu, &mut mem, i(4, 5, 0, 5, 0x67)).unwrap(); // jalr x5, 4(x5): rd == rs1
    assert_eq!((cpu.pc, cpu.x[5]), (0x2004, CODE - 12));
}

#[test]
fn branches_compare_signed_and_unsigned_and_fall_through() {
    let cases = [
        (0, 1, 1, true),     // beq
        (1, 1, 1, false),    // bne
        (4, NEG1, 0, true),  // blt -1 < 0
        (5, NEG1, 0, false), // bge
        (6, NEG1, 0, false), // bltu
        (7, NEG1, 0, true),  // bgeu
    ];
    for (f3, a, bb, taken) in cases {
        let (mut cpu, mut mem) = setup();
        cpu.x[1] = a;
        cpu.x[2] = bb;
        exec(&mut cpu, &mut mem, b(-64, 2, 1, f3)).unwrap();
        let want = if taken { CODE - 64 } else { CODE + 4 };
        assert_eq!(cpu.pc, want, "funct3 {f3}");
    }
}

#[test]
fn loads_sign_or_zero_extend_and_stores_write_little_endian() {
    let (mut cpu, mut mem) = setup();
    cpu.x[1] = DATA;
    cpu.x[2] = 0x8081_8283_8485_8687;
    exec(&mut cpu, &mut mem, s(8, 2, 1, 3, 0x23)).unwrap(); // sd x2, 8(x1)
    assert_eq!(mem.load8(DATA + 8).unwrap(), 0x87);
    let load = |cpu: &mut rv64::Cpu, mem: &mut rv64::testmem::FlatMemory, f3| {
        exec(cpu, mem, i(8, 1, f3, 3, 0x03)).unwrap();
        cpu.x[3]
    };
    assert_eq!(load(&mut cpu, &mut mem, 0), 0xffff_ffff_ffff_ff87); // lb
    assert_eq!(load(&mut cpu, &mut mem, 4), 0x87); // lbu
    assert_eq!(load(&mut cpu, &mut mem, 1), 0xffff_ffff_ffff_8687); // lh
    assert_eq!(load(&mut cpu, &mut mem, 5), 0x8687); // lhu
    assert_eq!(load(&mut cpu, &mut mem, 2), 0xffff_ffff_8485_8687); // lw
    assert_eq!(load(&mut cpu, &mut mem, 6), 0x8485_8687); // lwu
    assert_eq!(load(&mut cpu, &mut mem, 3), 0x8081_8283_8485_8687); // ld
    exec(&mut cpu, &mut mem, s(-1, 2, 1, 0, 0x23)).unwrap(); // sb x2, -1(x1)
    exec(&mut cpu, &mut mem, s(1, 2, 1, 1, 0x23)).unwrap(); // sh x2, 1(x1): misaligned is fine
    exec(&mut cpu, &mut mem, s(16, 2, 1, 2, 0x23)).unwrap(); // sw
    assert_eq!(mem.load8(DATA - 1).unwrap(), 0x87);
    assert_eq!(mem.load16(DATA + 1).unwrap(), 0x8687);
    assert_eq!(mem.load64(DATA + 16).unwrap(), 0x8485_8687);
}

#[test]
fn a_faulting_load_leaves_pc_registers_and_instret_unchanged() {
    let (mut cpu, mut mem) = setup();
    cpu.x[1] = 0x10_0000; // outside the flat memory
    cpu.x[3] = 99;
    let e = exec(&mut cpu, &mut mem, i(-8, 1, 3, 3, 0x03)).unwrap_err();
    assert_eq!(
        e,
        Exit::Fault {
            pc: CODE,
            fault: MemFault {
                addr: 0x10_0000 - 8,
                kind: AccessKind::Read
            }
        }
    );
    assert_eq!((cpu.pc, cpu.x[3], cpu.instret), (CODE, 99, 0));
    let e = exec(&mut cpu, &mut mem, s(0, 3, 1, 3, 0x23)).unwrap_err();
    assert!(matches!(
        e,
        Exit::Fault {
            pc: CODE,
            fault: MemFault {
                kind: AccessKind::Write,
                ..
            }
        }
    ));
}

#[test]
fn ecall_and_ebreak_exit_with_pc_at_the_instruction() {
    let (mut cpu, mut mem) = setup();
    assert_eq!(exec(&mut cpu, &mut mem, ECALL), Err(Exit::Ecall));
    assert_eq!((cpu.pc, cpu.instret), (CODE, 0));
    assert_eq!(exec(&mut cpu, &mut mem, 0x0010_0073), Err(Exit::Ebreak));
    assert_eq!(cpu.pc, CODE);
}

#[test]
fn fence_i_exits_after_retiring() {
    let (mut cpu, mut mem) = setup();
    assert_eq!(exec(&mut cpu, &mut mem, 0x0000_100f), Err(Exit::FenceI));
    assert_eq!((cpu.pc, cpu.instret), (CODE + 4, 1));
    exec(&mut cpu, &mut mem, 0x0ff0_000f).unwrap(); // fence: no effect
    assert_eq!(cpu.pc, CODE + 8);
}

#[test]
fn counters_are_readable_but_not_writable() {
    let (mut cpu, mut mem) = setup();
    cpu.instret = 1234;
    exec(&mut cpu, &mut mem, i(0xc02, 0, 2, 3, 0x73)).unwrap(); // rdinstret x3
    assert_eq!(cpu.x[3], 1234);
    exec(&mut cpu, &mut mem, i(0xc00, 0, 2, 3, 0x73)).unwrap(); // rdcycle x3
    assert_eq!(cpu.x[3], 1235);
    exec(&mut cpu, &mut mem, i(0xc01, 0, 2, 3, 0x73)).unwrap(); // rdtime
    let t0 = cpu.x[3];
    exec(&mut cpu, &mut mem, i(0xc01, 0, 2, 3, 0x73)).unwrap();
    assert!(cpu.x[3] >= t0, "time is monotonic");
    cpu.x[1] = 5;
    let csrrw_cycle = i(0xc00, 1, 1, 3, 0x73);
    assert_eq!(
        exec(&mut cpu, &mut mem, csrrw_cycle),
        Err(Exit::Illegal {
            pc: cpu.pc,
            raw: csrrw_cycle
        })
    );
    let csrrs_cycle_x1 = i(0xc00, 1, 2, 3, 0x73);
    assert!(matches!(
        exec(&mut cpu, &mut mem, csrrs_cycle_x1),
        Err(Exit::Illegal { .. })
    ));
    let unknown = i(0x300, 0, 2, 3, 0x73); // mstatus: not accessible in user mode
    assert!(matches!(
        exec(&mut cpu, &mut mem, unknown),
        Err(Exit::Illegal { .. })
    ));
}

#[test]
fn fcsr_is_frm_and_fflags_combined() {
    let (mut cpu, mut mem) = setup();
    cpu.x[1] = 0xff;
    exec(&mut cpu, &mut mem, i(3, 1, 1, 3, 0x73)).unwrap(); // csrrw x3, fcsr, x1
    assert_eq!((cpu.x[3], cpu.frm, cpu.fflags), (0, 7, 0x1f));
    exec(&mut cpu, &mut mem, i(2, 0, 2, 4, 0x73)).unwrap(); // frrm x4
    assert_eq!(cpu.x[4], 7);
    exec(&mut cpu, &mut mem, i(1, 0b00101, 7, 5, 0x73)).unwrap(); // csrrci x5, fflags, 5
    assert_eq!((cpu.x[5], cpu.fflags), (0x1f, 0x1a));
    exec(&mut cpu, &mut mem, i(2, 1, 5, 6, 0x73)).unwrap(); // csrrwi x6, frm, 1
    assert_eq!((cpu.x[6], cpu.frm), (7, 1));
    exec(&mut cpu, &mut mem, i(3, 0, 2, 7, 0x73)).unwrap(); // frcsr x7
    assert_eq!(cpu.x[7], (1 << 5) | 0x1a);
}

#[test]
fn random_integer_programs_match_qemu() {
    // See tests/data/intgen: 1500 random RV64IM(C) instructions, each result logged to
    // memory; the log qemu-riscv64 produced is the expectation.
    // The image holds .note, .text (entry 0x10144) and .got (where `la` finds the log's
    // address) from 0x10120; the log is .bss at 0x142f0.
    const IMAGE: u64 = 0x10120;
    const ENTRY: u64 = 0x10144;
    const LOG: u64 = 0x142f0;
    let image = include_bytes!("data/int_random_image.bin");
    let want = include_bytes!("data/int_random_qemu.bin");
    let mut mem = rv64::testmem::FlatMemory::new(0x10000, 0x10000);
    mem.write_bytes(IMAGE, image);
    let mut cpu = rv64::Cpu::new();
    cpu.pc = ENTRY;
    let mut it = rv64::Interpreter::new();
    assert_eq!(it.run(&mut cpu, &mut mem, u64::MAX), Exit::Ecall);
    assert_eq!(cpu.x[17], 64, "stops at the write system call");
    let off = (LOG - mem.base) as usize;
    let got = &mem.bytes[off..off + want.len()];
    for (k, (g, w)) in got.chunks(8).zip(want.chunks(8)).enumerate() {
        assert_eq!(g, w, "log entry {k}");
    }
}
