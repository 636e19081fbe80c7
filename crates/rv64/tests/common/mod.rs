//! Shared helpers for rv64's integration tests: a tiny encoder for the instruction
//! formats (so tests state operands, not hex), and one-instruction execution on a flat
//! memory.

#![allow(dead_code)]

use rv64::testmem::FlatMemory;
use rv64::{Cpu, Exit, Insn, decode, execute};

pub const CODE: u64 = 0x1000;
pub const DATA: u64 = 0x8000;
pub const MEM_SIZE: usize = 0x10000;

pub fn r(f7: u32, rs2: u32, rs1: u32, f3: u32, rd: u32, opcode: u32) -> u32 {
    f7 << 25 | rs2 << 20 | rs1 << 15 | f3 << 12 | rd << 7 | opcode
}

pub fn i(imm: i32, rs1: u32, f3: u32, rd: u32, opcode: u32) -> u32 {
    ((imm as u32) & 0xfff) << 20 | rs1 << 15 | f3 << 12 | rd << 7 | opcode
}

pub fn s(imm: i32, rs2: u32, rs1: u32, f3: u32, opcode: u32) -> u32 {
    let imm = imm as u32;
    ((imm >> 5) & 0x7f) << 25 | rs2 << 20 | rs1 << 15 | f3 << 12 | (imm & 31) << 7 | opcode
}

pub fn b(imm: i32, rs2: u32, rs1: u32, f3: u32) -> u32 {
    let imm = imm as u32;
    ((imm >> 12) & 1) << 31
        | ((imm >> 5) & 0x3f) << 25
        | rs2 << 20
        | rs1 << 15
        | f3 << 12
        | ((imm >> 1) & 0xf) << 8
        | ((imm >> 11) & 1) << 7
        | 0x63
}

pub fn j(imm: i32, rd: u32) -> u32 {
    let imm = imm as u32;
    ((imm >> 20) & 1) << 31
        | ((imm >> 1) & 0x3ff) << 21
        | ((imm >> 11) & 1) << 20
        | ((imm >> 12) & 0xff) << 12
        | rd << 7
        | 0x6f
}

/// OP (0x33) with funct7 / funct3.
pub fn op(f7: u32, f3: u32, rd: u32, rs1: u32, rs2: u32) -> u32 {
    r(f7, rs2, rs1, f3, rd, 0x33)
}

/// OP-32 (0x3b).
pub fn op32(f7: u32, f3: u32, rd: u32, rs1: u32, rs2: u32) -> u32 {
    r(f7, rs2, rs1, f3, rd, 0x3b)
}

/// AMO (0x2f): funct5, width funct3 (2 = .w, 3 = .d), aq/rl bits.
pub fn amo(f5: u32, f3: u32, aqrl: u32, rd: u32, rs1: u32, rs2: u32) -> u32 {
    r(f5 << 2 | aqrl, rs2, rs1, f3, rd, 0x2f)
}

pub const ECALL: u32 = 0x0000_0073;
pub const NOP: u32 = 0x0000_0013;

pub fn setup() -> (Cpu, FlatMemory) {
    let mut cpu = Cpu::new();
    cpu.pc = CODE;
    (cpu, FlatMemory::new(0, MEM_SIZE))
}

pub fn dec(raw: u32) -> Insn {
    match decode(raw) {
        Ok(i) => i,
        Err(e) => panic!("{raw:#010x} should decode: {e}"),
    }
}

/// Decodes and executes one instruction at `cpu.pc`.
pub fn exec(cpu: &mut Cpu, mem: &mut FlatMemory, raw: u32) -> Result<(), Exit> {
    execute(cpu, mem, &dec(raw))
}

/// Runs a single register-register instruction with x1 = `a`, x2 = `b`, result in x3.
pub fn rr(raw: u32, a: u64, b: u64) -> u64 {
    let (mut cpu, mut mem) = setup();
    cpu.x[1] = a;
    cpu.x[2] = b;
    if let Err(e) = exec(&mut cpu, &mut mem, raw) {
        panic!("{raw:#010x} exited: {e:?}");
    }
    cpu.x[3]
}
