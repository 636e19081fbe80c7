//! The A extension: LR/SC reservations and every AMO, in both widths.

mod common;
use common::*;
use rv64::{Exit, Memory};

/// Runs one AMO with x1 = address of a cell holding `old`, x2 = `src`; returns
/// (rd, new memory value).
fn amo_run(f5: u32, width: u32, old: u64, src: u64) -> (u64, u64) {
    let (mut cpu, mut mem) = setup();
    mem.store64(DATA, old).unwrap();
    cpu.x[1] = DATA;
    cpu.x[2] = src;
    exec(&mut cpu, &mut mem, amo(f5, width, 3, 3, 1, 2)).unwrap();
    (cpu.x[3], mem.load64(DATA).unwrap())
}

#[test]
fn every_doubleword_amo_returns_the_old_value_and_stores_the_result() {
    let (a, b) = (0xffff_0000_0000_0005u64, 7u64);
    let cases: [(u32, u64); 9] = [
        (0x01, b),                 // swap
        (0x00, a.wrapping_add(b)), // add
        (0x04, a ^ b),             // xor
        (0x0c, a & b),             // and
        (0x08, a | b),             // or
        (0x10, a),                 // min (a is negative)
        (0x14, b),                 // max
        (0x18, b),                 // minu
        (0x1c, a),                 // maxu
    ];
    for (f5, want) in cases {
        assert_eq!(amo_run(f5, 3, a, b), (a, want), "funct5 {f5:#x}");
    }
}

#[test]
fn every_word_amo_sign_extends_the_old_value_and_leaves_the_upper_word() {
    // Memory word 0x8000_0005 (negative as i32); upper word of the cell must survive.
    let cell = 0x1234_5678_8000_0005u64;
    let old_sext = 0xffff_ffff_8000_0005u64;
    let src = 0xdead_beef_0000_0007u64; // only the low word takes part
    let lo = |v: u32| (cell & !0xffff_ffff) | v as u64;
    let cases: [(u32, u64); 9] = [
        (0x01, lo(7)),
        (0x00, lo(0x8000_000c)),
        (0x04, lo(0x8000_0002)),
        (0x0c, lo(5)),
        (0x08, lo(0x8000_0007)),
        (0x10, lo(0x8000_0005)), // min: i32 negative wins
        (0x14, lo(7)),           // max
        (0x18, lo(7)),           // minu
        (0x1c, lo(0x8000_0005)), // maxu
    ];
    for (f5, want) in cases {
        assert_eq!(
            amo_run(f5, 2, cell, src),
            (old_sext, want),
            "funct5 {f5:#x}"
        );
    }
}

#[test]
fn sc_succeeds_once_after_lr_to_the_same_address() {
    let (mut cpu, mut mem) = setup();
    mem.store64(DATA, 0xffff_ffff_8000_0000).unwrap();
    cpu.x[1] = DATA;
    cpu.x[2] = 42;
    exec(&mut cpu, &mut mem, amo(0x02, 2, 2, 3, 1, 0)).unwrap(); // lr.w.aq x3, (x1)
    assert_eq!(cpu.x[3], 0xffff_ffff_8000_0000, "lr.w sign-extends");
    assert_eq!(cpu.reservation, DATA);
    exec(&mut cpu, &mut mem, amo(0x03, 2, 1, 4, 1, 2)).unwrap(); // sc.w.rl x4, x2, (x1)
    assert_eq!(cpu.x[4], 0, "sc succeeds");
    assert_eq!(mem.load32(DATA).unwrap(), 42);
    assert_eq!(cpu.reservation, rv64::Cpu::NO_RESERVATION);
    cpu.x[2] = 43;
    exec(&mut cpu, &mut mem, amo(0x03, 2, 0, 4, 1, 2)).unwrap();
    assert_eq!(cpu.x[4], 1, "a second sc fails: the reservation is gone");
    assert_eq!(mem.load32(DATA).unwrap(), 42);
}

#[test]
fn sc_fails_without_a_reservation_or_at_another_address() {
    let (mut cpu, mut mem) = setup();
    cpu.x[1] = DATA;
    cpu.x[2] = 9;
    exec(&mut cpu, &mut mem, amo(0x03, 3, 0, 4, 1, 2)).unwrap(); // sc.d without lr
    assert_eq!(cpu.x[4], 1);
    exec(&mut cpu, &mut mem, amo(0x02, 3, 0, 3, 1, 0)).unwrap(); // lr.d
    cpu.x[1] = DATA + 8;
    exec(&mut cpu, &mut mem, amo(0x03, 3, 0, 4, 1, 2)).unwrap(); // sc.d elsewhere
    assert_eq!(cpu.x[4], 1);
    assert_eq!(mem.load64(DATA + 8).unwrap(), 0);
}

#[test]
fn lr_d_and_sc_d_move_doublewords() {
    let (mut cpu, mut mem) = setup();
    mem.store64(DATA, 0x8000_0000_0000_0001).unwrap();
    cpu.x[1] = DATA;
    cpu.x[2] = 0x0123_4567_89ab_cdef;
    exec(&mut cpu, &mut mem, amo(0x02, 3, 0, 3, 1, 0)).unwrap();
    assert_eq!(cpu.x[3], 0x8000_0000_0000_0001);
    exec(&mut cpu, &mut mem, amo(0x03, 3, 0, 4, 1, 2)).unwrap();
    assert_eq!(
        (cpu.x[4], mem.load64(DATA).unwrap()),
        (0, 0x0123_4567_89ab_cdef)
    );
}

#[test]
fn misaligned_atomics_fault_without_side_effects() {
    let (mut cpu, mut mem) = setup();
    cpu.x[1] = DATA + 4;
    cpu.x[3] = 5;
    let e = exec(&mut cpu, &mut mem, amo(0x00, 3, 0, 3, 1, 2)).unwrap_err(); // amoadd.d at +4
    assert!(matches!(e, Exit::Fault { pc: CODE, .. }));
    assert_eq!(cpu.x[3], 5);
    cpu.x[1] = DATA + 2;
    assert!(exec(&mut cpu, &mut mem, amo(0x02, 2, 0, 3, 1, 0)).is_err()); // lr.w at +2
}

#[test]
fn amo_with_rd_equal_to_rs2_uses_the_source_before_writing() {
    let (mut cpu, mut mem) = setup();
    mem.store64(DATA, 10).unwrap();
    cpu.x[1] = DATA;
    cpu.x[2] = 3;
    exec(&mut cpu, &mut mem, amo(0x00, 3, 0, 2, 1, 2)).unwrap(); // amoadd.d x2, x2, (x1)
    assert_eq!((cpu.x[2], mem.load64(DATA).unwrap()), (10, 13));
}
