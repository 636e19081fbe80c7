//! Faulting accesses return the fault status with the faulting instruction's pc, the
//! count of instructions before it, the fault address and kind, and registers written
//! before the fault visible, exactly as the interpreter reports them.

mod common;

use common::*;
use rv64::{AccessKind, Cpu, Exit, Insn, MemFault};
use translate::OptLevel;

/// `addi x20, x0, 7; addi x21, x0, 8; <access>; addi x22, x0, 9; ebreak`: the access is
/// the third instruction.
fn fault_block(access: u32) -> Vec<(u64, Insn)> {
    layout(&[
        dec(i(7, 0, 0, 20, 0x13)),
        dec(i(8, 0, 0, 21, 0x13)),
        dec(access),
        dec(i(9, 0, 0, 22, 0x13)),
        dec(EBREAK),
    ])
}

fn expect_fault(access: u32, base: u64, addr: u64, kind: AccessKind) {
    let block = fault_block(access);
    let mut cpu = Cpu::new();
    cpu.x[1] = base;
    cpu.x[2] = 0x1122_3344_5566_7788;
    cpu.x[22] = 0xabc;
    cpu.instret = 50;
    let mem = vec![0x5au8; GUEST_SIZE];
    for opt in [OptLevel::Quick, OptLevel::Speed] {
        let mut tr = translator(opt);
        let out = check(
            &mut tr,
            &block,
            &cpu,
            &mem,
            &test_perms(),
            &format!("{opt:?} access {access:#x} at {base:#x}"),
        );
        let pc = CODE_BASE + 8;
        assert_eq!(
            out.exit,
            Some(Exit::Fault {
                pc,
                fault: MemFault { addr, kind }
            })
        );
        assert_eq!(out.cpu.pc, pc);
        assert_eq!(
            out.cpu.instret, 52,
            "only the two instructions before the fault retire"
        );
        assert_eq!(
            (out.cpu.x[20], out.cpu.x[21]),
            (7, 8),
            "registers written before the fault are stored"
        );
        assert_eq!(
            out.cpu.x[22], 0xabc,
            "the instruction after the fault did not run"
        );
        assert_eq!(out.mem, mem, "a faulting store writes nothing");
    }
}

const LD: fn(i32) -> u32 = |imm| i(imm, 1, 3, 10, 0x03);
const LW: fn(i32) -> u32 = |imm| i(imm, 1, 2, 10, 0x03);
const SD: fn(i32) -> u32 = |imm| s(imm, 2, 1, 3, 0x23);
const SB: fn(i32) -> u32 = |imm| s(imm, 2, 1, 0, 0x23);

#[test]
fn load_from_unmapped_page_faults_at_the_access() {
    expect_fault(LD(0), 0x0100, 0x0100, AccessKind::Read);
    expect_fault(LW(4), 0xa000, 0xa004, AccessKind::Read);
}

#[test]
fn store_to_read_only_page_faults_and_writes_nothing() {
    expect_fault(SD(0), 0x9000, 0x9000, AccessKind::Write);
    expect_fault(SB(-1), 0x9800, 0x97ff, AccessKind::Write);
}

#[test]
fn load_from_write_only_page_faults() {
    expect_fault(LD(0), 0xd008, 0xd008, AccessKind::Read);
}

#[test]
fn access_crossing_into_a_forbidden_page_faults_at_that_page() {
    // From read+write page 8 into read-only page 9: the store faults at 0x9000 and does
    // not write the bytes that were allowed.
    expect_fault(SD(0), 0x8ffc, 0x9000, AccessKind::Write);
    // From read-only page 9 into unmapped page 10.
    expect_fault(LD(-2), 0xa000, 0xa000, AccessKind::Read);
}

#[test]
fn access_outside_the_guest_space_faults_without_touching_host_memory() {
    expect_fault(
        LD(0),
        GUEST_SIZE as u64 - 4,
        GUEST_SIZE as u64 - 4,
        AccessKind::Read,
    );
    expect_fault(SD(0), u64::MAX - 3, u64::MAX - 3, AccessKind::Write);
    expect_fault(LW(0), 1 << 40, 1 << 40, AccessKind::Read);
}

#[test]
fn helper_faults_report_the_same_way() {
    // Misaligned amoadd.d and a flw from an unmapped page go through exec_one.
    expect_fault(r(0, 2, 1, 3, 10, 0x2f), 0x2004, 0x2004, AccessKind::Write);
    expect_fault(i(0, 1, 2, 3, 0x07), 0xf000, 0xf000, AccessKind::Read);
}

#[test]
fn compressed_access_faults_like_a_full_one() {
    // c.ld a0, 0(a1) with a1 in the unmapped page 0.
    let block = layout(&[dec(i(1, 0, 0, 20, 0x13)), dec(0x6188), dec(EBREAK)]);
    let mut cpu = Cpu::new();
    cpu.x[11] = 0x40;
    let mut tr = translator(OptLevel::Quick);
    let out = check(
        &mut tr,
        &block,
        &cpu,
        &vec![0; GUEST_SIZE],
        &test_perms(),
        "c.ld",
    );
    assert_eq!(
        out.exit,
        Some(Exit::Fault {
            pc: CODE_BASE + 4,
            fault: MemFault {
                addr: 0x40,
                kind: AccessKind::Read
            }
        })
    );
    assert_eq!(out.cpu.instret, 1);
}
