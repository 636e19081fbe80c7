//! Decoding of 16- and 32-bit encodings into [`Insn`].
//!
//! Invariants: every encoding RV64GC reserves, or that belongs only to RV32/RV128 or to
//! privileged modes, is rejected with [`DecodeError::Illegal`]; a compressed encoding
//! decodes to exactly the `Insn` of its 32-bit expansion except `len` and `raw`.
//! Static rounding modes 5 and 6 are rejected here; dynamic mode 7 is checked when the
//! instruction executes (it depends on `frm`).

use crate::{Insn, Op};

#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("illegal instruction {raw:#010x}")]
    Illegal { raw: u32 },
}

/// Length in bytes (2 or 4) of the instruction whose first 16-bit parcel is `low`.
pub fn insn_len(low: u16) -> usize {
    if low & 3 == 3 { 4 } else { 2 }
}

/// Decodes one instruction. `raw` holds the 32-bit encoding, or a compressed one in the
/// low 16 bits (the length is taken from the low two bits).
pub fn decode(raw: u32) -> Result<Insn, DecodeError> {
    let r = if raw & 3 == 3 {
        decode32(raw)
    } else {
        decode16(raw & 0xffff)
    };
    r.ok_or(DecodeError::Illegal { raw })
}

const fn insn(op: Op, raw: u32, len: u8) -> Insn {
    Insn::bare(op, raw, len)
}

/// R-type / register-only helper.
fn r(op: Op, raw: u32, rd: u32, rs1: u32, rs2: u32) -> Insn {
    Insn {
        rd: rd as u8,
        rs1: rs1 as u8,
        rs2: rs2 as u8,
        ..insn(op, raw, 4)
    }
}

fn ri(op: Op, raw: u32, rd: u32, rs1: u32, imm: i64) -> Insn {
    Insn {
        rd: rd as u8,
        rs1: rs1 as u8,
        imm,
        ..insn(op, raw, 4)
    }
}

fn rs(op: Op, raw: u32, rs1: u32, rs2: u32, imm: i64) -> Insn {
    Insn {
        rs1: rs1 as u8,
        rs2: rs2 as u8,
        imm,
        ..insn(op, raw, 4)
    }
}

fn imm_i(raw: u32) -> i64 {
    ((raw as i32) >> 20) as i64
}

fn imm_s(raw: u32) -> i64 {
    ((((raw as i32) >> 25) << 5) | ((raw >> 7) & 31) as i32) as i64
}

fn imm_b(raw: u32) -> i64 {
    let v = (((raw as i32) >> 31) << 12) as u32
        | ((raw >> 7) & 1) << 11
        | ((raw >> 25) & 0x3f) << 5
        | ((raw >> 8) & 0xf) << 1;
    v as i32 as i64
}

fn imm_j(raw: u32) -> i64 {
    let v = (((raw as i32) >> 31) << 20) as u32
        | ((raw >> 12) & 0xff) << 12
        | ((raw >> 20) & 1) << 11
        | ((raw >> 21) & 0x3ff) << 1;
    v as i32 as i64
}

fn valid_rm(rm: u32) -> bool {
    rm != 5 && rm != 6
}

fn decode32(raw: u32) -> Option<Insn> {
    let rd = (raw >> 7) & 31;
    let f3 = (raw >> 12) & 7;
    let rs1 = (raw >> 15) & 31;
    let rs2 = (raw >> 20) & 31;
    let f7 = raw >> 25;
    let i = match raw & 0x7f {
        0x37 => ri(Op::Lui, raw, rd, 0, (raw & 0xffff_f000) as i32 as i64),
        0x17 => ri(Op::Auipc, raw, rd, 0, (raw & 0xffff_f000) as i32 as i64),
        0x6f => ri(Op::Jal, raw, rd, 0, imm_j(raw)),
        0x67 if f3 == 0 => ri(Op::Jalr, raw, rd, rs1, imm_i(raw)),
        0x63 => {
            let op = match f3 {
                0 => Op::Beq,
                1 => Op::Bne,
                4 => Op::Blt,
                5 => Op::Bge,
                6 => Op::Bltu,
                7 => Op::Bgeu,
                _ => return None,
            };
            rs(op, raw, rs1, rs2, imm_b(raw))
        }
        0x03 => {
            let op = match f3 {
                0 => Op::Lb,
                1 => Op::Lh,
                2 => Op::Lw,
                3 => Op::Ld,
                4 => Op::Lbu,
                5 => Op::Lhu,
                6 => Op::Lwu,
                _ => return None,
            };
            ri(op, raw, rd, rs1, imm_i(raw))
        }
        0x23 => {
            let op = match f3 {
                0 => Op::Sb,
                1 => Op::Sh,
                2 => Op::Sw,
                3 => Op::Sd,
                _ => return None,
            };
            rs(op, raw, rs1, rs2, imm_s(raw))
        }
        0x13 => {
            let shamt = ((raw >> 20) & 63) as i64;
            match f3 {
                0 => ri(Op::Addi, raw, rd, rs1, imm_i(raw)),
                2 => ri(Op::Slti, raw, rd, rs1, imm_i(raw)),
                3 => ri(Op::Sltiu, raw, rd, rs1, imm_i(raw)),
                4 => ri(Op::Xori, raw, rd, rs1, imm_i(raw)),
                6 => ri(Op::Ori, raw, rd, rs1, imm_i(raw)),
                7 => ri(Op::Andi, raw, rd, rs1, imm_i(raw)),
                1 if raw >> 26 == 0 => ri(Op::Slli, raw, rd, rs1, shamt),
                5 if raw >> 26 == 0 => ri(Op::Srli, raw, rd, rs1, shamt),
                5 if raw >> 26 == 0x10 => ri(Op::Srai, raw, rd, rs1, shamt),
                _ => return None,
            }
        }
        0x1b => {
            let shamt = ((raw >> 20) & 31) as i64;
            match (f3, f7) {
                (0, _) => ri(Op::Addiw, raw, rd, rs1, imm_i(raw)),
                (1, 0) => ri(Op::Slliw, raw, rd, rs1, shamt),
                (5, 0) => ri(Op::Srliw, raw, rd, rs1, shamt),
                (5, 0x20) => ri(Op::Sraiw, raw, rd, rs1, shamt),
                _ => return None,
            }
        }
        0x33 => {
            let op = match (f7, f3) {
                (0, 0) => Op::Add,
                (0x20, 0) => Op::Sub,
                (0, 1) => Op::Sll,
                (0, 2) => Op::Slt,
                (0, 3) => Op::Sltu,
                (0, 4) => Op::Xor,
                (0, 5) => Op::Srl,
                (0x20, 5) => Op::Sra,
                (0, 6) => Op::Or,
                (0, 7) => Op::And,
                (1, 0) => Op::Mul,
                (1, 1) => Op::Mulh,
                (1, 2) => Op::Mulhsu,
                (1, 3) => Op::Mulhu,
                (1, 4) => Op::Div,
                (1, 5) => Op::Divu,
                (1, 6) => Op::Rem,
                (1, 7) => Op::Remu,
                _ => return None,
            };
            r(op, raw, rd, rs1, rs2)
        }
        0x3b => {
            let op = match (f7, f3) {
                (0, 0) => Op::Addw,
                (0x20, 0) => Op::Subw,
                (0, 1) => Op::Sllw,
                (0, 5) => Op::Srlw,
                (0x20, 5) => Op::Sraw,
                (1, 0) => Op::Mulw,
                (1, 4) => Op::Divw,
                (1, 5) => Op::Divuw,
                (1, 6) => Op::Remw,
                (1, 7) => Op::Remuw,
                _ => return None,
            };
            r(op, raw, rd, rs1, rs2)
        }
        // Reserved fields of FENCE/FENCE.I (rd, rs1, imm) must be ignored by
        // implementations, so they are dropped rather than rejected.
        0x0f => match f3 {
            0 => Insn {
                imm: ((raw >> 20) & 0xfff) as i64,
                ..insn(Op::Fence, raw, 4)
            },
            1 => insn(Op::FenceI, raw, 4),
            _ => return None,
        },
        0x73 => match f3 {
            0 => match raw {
                0x0000_0073 => insn(Op::Ecall, raw, 4),
                0x0010_0073 => insn(Op::Ebreak, raw, 4),
                _ => return None,
            },
            4 => return None,
            _ => {
                let op = match f3 {
                    1 => Op::Csrrw,
                    2 => Op::Csrrs,
                    3 => Op::Csrrc,
                    5 => Op::Csrrwi,
                    6 => Op::Csrrsi,
                    _ => Op::Csrrci,
                };
                ri(op, raw, rd, rs1, (raw >> 20) as i64)
            }
        },
        0x2f => {
            let d = match f3 {
                2 => false,
                3 => true,
                _ => return None,
            };
            let aqrl = ((raw >> 25) & 3) as u8;
            let op = match (raw >> 27, d) {
                (0x02, false) if rs2 == 0 => Op::LrW,
                (0x02, true) if rs2 == 0 => Op::LrD,
                (0x03, false) => Op::ScW,
                (0x03, true) => Op::ScD,
                (0x01, false) => Op::AmoswapW,
                (0x01, true) => Op::AmoswapD,
                (0x00, false) => Op::AmoaddW,
                (0x00, true) => Op::AmoaddD,
                (0x04, false) => Op::AmoxorW,
                (0x04, true) => Op::AmoxorD,
                (0x0c, false) => Op::AmoandW,
                (0x0c, true) => Op::AmoandD,
                (0x08, false) => Op::AmoorW,
                (0x08, true) => Op::AmoorD,
                (0x10, false) => Op::AmominW,
                (0x10, true) => Op::AmominD,
                (0x14, false) => Op::AmomaxW,
                (0x14, true) => Op::AmomaxD,
                (0x18, false) => Op::AmominuW,
                (0x18, true) => Op::AmominuD,
                (0x1c, false) => Op::AmomaxuW,
                (0x1c, true) => Op::AmomaxuD,
                _ => return None,
            };
            Insn {
                rm: aqrl,
                ..r(op, raw, rd, rs1, rs2)
            }
        }
        0x07 => match f3 {
            2 => ri(Op::Flw, raw, rd, rs1, imm_i(raw)),
            3 => ri(Op::Fld, raw, rd, rs1, imm_i(raw)),
            _ => return None,
        },
        0x27 => match f3 {
            2 => rs(Op::Fsw, raw, rs1, rs2, imm_s(raw)),
            3 => rs(Op::Fsd, raw, rs1, rs2, imm_s(raw)),
            _ => return None,
        },
        opc @ (0x43 | 0x47 | 0x4b | 0x4f) => {
            if !valid_rm(f3) {
                return None;
            }
            let dbl = match f7 & 3 {
                0 => false,
                1 => true,
                _ => return None,
            };
            let op = match (opc, dbl) {
                (0x43, false) => Op::FmaddS,
                (0x47, false) => Op::FmsubS,
                (0x4b, false) => Op::FnmsubS,
                (0x4f, false) => Op::FnmaddS,
                (0x43, true) => Op::FmaddD,
                (0x47, true) => Op::FmsubD,
                (0x4b, true) => Op::FnmsubD,
                _ => Op::FnmaddD,
            };
            Insn {
                rs3: (raw >> 27) as u8,
                rm: f3 as u8,
                ..r(op, raw, rd, rs1, rs2)
            }
        }
        0x53 => return decode_opfp(raw, rd, f3, rs1, rs2, f7),
        _ => return None,
    };
    Some(i)
}

fn decode_opfp(raw: u32, rd: u32, f3: u32, rs1: u32, rs2: u32, f7: u32) -> Option<Insn> {
    // Operations with a rounding mode.
    let rounded = |op: Op, rs2: u32| -> Option<Insn> {
        valid_rm(f3).then(|| Insn {
            rm: f3 as u8,
            ..r(op, raw, rd, rs1, rs2)
        })
    };
    // Operations whose funct3 selects the operation.
    let plain = |op: Op, rs2: u32| Some(r(op, raw, rd, rs1, rs2));
    match f7 {
        0x00 => rounded(Op::FaddS, rs2),
        0x01 => rounded(Op::FaddD, rs2),
        0x04 => rounded(Op::FsubS, rs2),
        0x05 => rounded(Op::FsubD, rs2),
        0x08 => rounded(Op::FmulS, rs2),
        0x09 => rounded(Op::FmulD, rs2),
        0x0c => rounded(Op::FdivS, rs2),
        0x0d => rounded(Op::FdivD, rs2),
        0x2c if rs2 == 0 => rounded(Op::FsqrtS, 0),
        0x2d if rs2 == 0 => rounded(Op::FsqrtD, 0),
        0x10 => match f3 {
            0 => plain(Op::FsgnjS, rs2),
            1 => plain(Op::FsgnjnS, rs2),
            2 => plain(Op::FsgnjxS, rs2),
            _ => None,
        },
        0x11 => match f3 {
            0 => plain(Op::FsgnjD, rs2),
            1 => plain(Op::FsgnjnD, rs2),
            2 => plain(Op::FsgnjxD, rs2),
            _ => None,
        },
        0x14 => match f3 {
            0 => plain(Op::FminS, rs2),
            1 => plain(Op::FmaxS, rs2),
            _ => None,
        },
        0x15 => match f3 {
            0 => plain(Op::FminD, rs2),
            1 => plain(Op::FmaxD, rs2),
            _ => None,
        },
        0x20 if rs2 == 1 => rounded(Op::FcvtSD, 0),
        0x21 if rs2 == 0 => rounded(Op::FcvtDS, 0),
        0x60 => rounded(
            [Op::FcvtWS, Op::FcvtWuS, Op::FcvtLS, Op::FcvtLuS][rs2_sel(rs2)?],
            0,
        ),
        0x61 => rounded(
            [Op::FcvtWD, Op::FcvtWuD, Op::FcvtLD, Op::FcvtLuD][rs2_sel(rs2)?],
            0,
        ),
        0x68 => rounded(
            [Op::FcvtSW, Op::FcvtSWu, Op::FcvtSL, Op::FcvtSLu][rs2_sel(rs2)?],
            0,
        ),
        0x69 => rounded(
            [Op::FcvtDW, Op::FcvtDWu, Op::FcvtDL, Op::FcvtDLu][rs2_sel(rs2)?],
            0,
        ),
        0x50 => match f3 {
            0 => plain(Op::FleS, rs2),
            1 => plain(Op::FltS, rs2),
            2 => plain(Op::FeqS, rs2),
            _ => None,
        },
        0x51 => match f3 {
            0 => plain(Op::FleD, rs2),
            1 => plain(Op::FltD, rs2),
            2 => plain(Op::FeqD, rs2),
            _ => None,
        },
        0x70 if rs2 == 0 && f3 == 0 => plain(Op::FmvXW, 0),
        0x70 if rs2 == 0 && f3 == 1 => plain(Op::FclassS, 0),
        0x71 if rs2 == 0 && f3 == 0 => plain(Op::FmvXD, 0),
        0x71 if rs2 == 0 && f3 == 1 => plain(Op::FclassD, 0),
        0x78 if rs2 == 0 && f3 == 0 => plain(Op::FmvWX, 0),
        0x79 if rs2 == 0 && f3 == 0 => plain(Op::FmvDX, 0),
        _ => None,
    }
}

fn rs2_sel(rs2: u32) -> Option<usize> {
    (rs2 < 4).then_some(rs2 as usize)
}

/// Bits `hi..=lo` of `v`, placed at bit `at` of the result.
fn bits(v: u32, hi: u32, lo: u32, at: u32) -> u32 {
    ((v >> lo) & ((1 << (hi - lo + 1)) - 1)) << at
}

fn sext(v: u32, width: u32) -> i64 {
    (((v << (32 - width)) as i32) >> (32 - width)) as i64
}

fn decode16(raw: u32) -> Option<Insn> {
    let f3 = raw >> 13;
    let rd = (raw >> 7) & 31;
    let rs2 = (raw >> 2) & 31;
    let rdp = 8 + ((raw >> 2) & 7);
    let rs1p = 8 + ((raw >> 7) & 7);
    // 6-bit signed immediate of CI format: imm[5] = bit 12, imm[4:0] = bits 6..2.
    let ci_imm = sext(bits(raw, 12, 12, 5) | bits(raw, 6, 2, 0), 6);
    let ci_shamt = (bits(raw, 12, 12, 5) | bits(raw, 6, 2, 0)) as i64;
    let i = match (raw & 3, f3) {
        (0, 0) => {
            let imm = bits(raw, 12, 11, 4)
                | bits(raw, 10, 7, 6)
                | bits(raw, 6, 6, 2)
                | bits(raw, 5, 5, 3);
            if imm == 0 {
                return None;
            }
            ri(Op::Addi, raw, rdp, 2, imm as i64)
        }
        (0, 1 | 3 | 5 | 7) => {
            let imm = (bits(raw, 12, 10, 3) | bits(raw, 6, 5, 6)) as i64;
            match f3 {
                1 => ri(Op::Fld, raw, rdp, rs1p, imm),
                3 => ri(Op::Ld, raw, rdp, rs1p, imm),
                5 => rs(Op::Fsd, raw, rs1p, rdp, imm),
                _ => rs(Op::Sd, raw, rs1p, rdp, imm),
            }
        }
        (0, 2 | 6) => {
            let imm = (bits(raw, 12, 10, 3) | bits(raw, 6, 6, 2) | bits(raw, 5, 5, 6)) as i64;
            if f3 == 2 {
                ri(Op::Lw, raw, rdp, rs1p, imm)
            } else {
                rs(Op::Sw, raw, rs1p, rdp, imm)
            }
        }
        (0, _) => return None,
        (1, 0) => ri(Op::Addi, raw, rd, rd, ci_imm),
        (1, 1) => {
            if rd == 0 {
                return None;
            }
            ri(Op::Addiw, raw, rd, rd, ci_imm)
        }
        (1, 2) => ri(Op::Addi, raw, rd, 0, ci_imm),
        (1, 3) => {
            if rd == 2 {
                let imm = sext(
                    bits(raw, 12, 12, 9)
                        | bits(raw, 6, 6, 4)
                        | bits(raw, 5, 5, 6)
                        | bits(raw, 4, 3, 7)
                        | bits(raw, 2, 2, 5),
                    10,
                );
                if imm == 0 {
                    return None;
                }
                ri(Op::Addi, raw, 2, 2, imm)
            } else {
                // nzimm = 0 is reserved; rd = x0 with nzimm != 0 is a HINT (the RVC HINT
                // table), which must execute as a no-op: `lui x0` writes nothing.
                if ci_imm == 0 {
                    return None;
                }
                ri(Op::Lui, raw, rd, 0, ci_imm << 12)
            }
        }
        (1, 4) => match (raw >> 10) & 3 {
            0 => ri(Op::Srli, raw, rs1p, rs1p, ci_shamt),
            1 => ri(Op::Srai, raw, rs1p, rs1p, ci_shamt),
            2 => ri(Op::Andi, raw, rs1p, rs1p, ci_imm),
            _ => {
                let rs2p = rdp;
                let op = match (bits(raw, 12, 12, 2) | bits(raw, 6, 5, 0)) as u8 {
                    0 => Op::Sub,
                    1 => Op::Xor,
                    2 => Op::Or,
                    3 => Op::And,
                    4 => Op::Subw,
                    5 => Op::Addw,
                    _ => return None,
                };
                r(op, raw, rs1p, rs1p, rs2p)
            }
        },
        (1, 5) => {
            let imm = sext(
                bits(raw, 12, 12, 11)
                    | bits(raw, 11, 11, 4)
                    | bits(raw, 10, 9, 8)
                    | bits(raw, 8, 8, 10)
                    | bits(raw, 7, 7, 6)
                    | bits(raw, 6, 6, 7)
                    | bits(raw, 5, 3, 1)
                    | bits(raw, 2, 2, 5),
                12,
            );
            ri(Op::Jal, raw, 0, 0, imm)
        }
        (1, _) => {
            let imm = sext(
                bits(raw, 12, 12, 8)
                    | bits(raw, 11, 10, 3)
                    | bits(raw, 6, 5, 6)
                    | bits(raw, 4, 3, 1)
                    | bits(raw, 2, 2, 5),
                9,
            );
            let op = if f3 == 6 { Op::Beq } else { Op::Bne };
            rs(op, raw, rs1p, 0, imm)
        }
        (2, 0) => ri(Op::Slli, raw, rd, rd, ci_shamt),
        (2, 1 | 3) => {
            let imm = (bits(raw, 12, 12, 5) | bits(raw, 6, 5, 3) | bits(raw, 4, 2, 6)) as i64;
            if f3 == 1 {
                ri(Op::Fld, raw, rd, 2, imm)
            } else {
                if rd == 0 {
                    return None;
                }
                ri(Op::Ld, raw, rd, 2, imm)
            }
        }
        (2, 2) => {
            if rd == 0 {
                return None;
            }
            let imm = (bits(raw, 12, 12, 5) | bits(raw, 6, 4, 2) | bits(raw, 3, 2, 6)) as i64;
            ri(Op::Lw, raw, rd, 2, imm)
        }
        (2, 4) => {
            let hi = (raw >> 12) & 1;
            match (hi, rd, rs2) {
                (0, 0, 0) => return None,
                (0, _, 0) => ri(Op::Jalr, raw, 0, rd, 0),
                (0, _, _) => r(Op::Add, raw, rd, 0, rs2),
                (_, 0, 0) => insn(Op::Ebreak, raw, 4),
                (_, _, 0) => ri(Op::Jalr, raw, 1, rd, 0),
                _ => r(Op::Add, raw, rd, rd, rs2),
            }
        }
        (2, 5 | 7) => {
            let imm = (bits(raw, 12, 10, 3) | bits(raw, 9, 7, 6)) as i64;
            let op = if f3 == 5 { Op::Fsd } else { Op::Sd };
            rs(op, raw, 2, rs2, imm)
        }
        (2, _) => {
            let imm = (bits(raw, 12, 9, 2) | bits(raw, 8, 7, 6)) as i64;
            rs(Op::Sw, raw, 2, rs2, imm)
        }
        _ => return None,
    };
    Some(Insn { len: 2, raw, ..i })
}
