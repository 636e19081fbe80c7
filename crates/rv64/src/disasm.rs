//! Disassembly in the GNU objdump style (`addi a0,a0,1`), through `Display for Insn`.
//!
//! Output follows `riscv64-linux-gnu-objdump -d` with its default aliases (`li`, `mv`,
//! `ret`, `beqz`, `csrr`, `fmv.d`…); compressed instructions print as their 32-bit
//! expansion, as objdump does. Branch and jump targets need the instruction's address:
//! [`Insn::display_at`] prints them as an absolute hex address like objdump;
//! `Display for Insn` prints them relative to the instruction (`.+16`, `.-8`).

use std::fmt;

use crate::{Insn, Op};

pub const XREG: [&str; 32] = [
    "zero", "ra", "sp", "gp", "tp", "t0", "t1", "t2", "s0", "s1", "a0", "a1", "a2", "a3", "a4",
    "a5", "a6", "a7", "s2", "s3", "s4", "s5", "s6", "s7", "s8", "s9", "s10", "s11", "t3", "t4",
    "t5", "t6",
];

pub const FREG: [&str; 32] = [
    "ft0", "ft1", "ft2", "ft3", "ft4", "ft5", "ft6", "ft7", "fs0", "fs1", "fa0", "fa1", "fa2",
    "fa3", "fa4", "fa5", "fa6", "fa7", "fs2", "fs3", "fs4", "fs5", "fs6", "fs7", "fs8", "fs9",
    "fs10", "fs11", "ft8", "ft9", "ft10", "ft11",
];

/// An instruction with its address, for objdump-exact output.
#[derive(Clone, Copy, Debug)]
pub struct DisplayAt<'a> {
    insn: &'a Insn,
    pc: Option<u64>,
}

impl Insn {
    /// Displays this instruction as located at `pc` (branch targets become absolute).
    pub fn display_at(&self, pc: u64) -> DisplayAt<'_> {
        DisplayAt {
            insn: self,
            pc: Some(pc),
        }
    }
}

impl fmt::Display for Insn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        DisplayAt {
            insn: self,
            pc: None,
        }
        .fmt(f)
    }
}

fn x(r: u8) -> &'static str {
    XREG[(r & 31) as usize]
}

fn fr(r: u8) -> &'static str {
    FREG[(r & 31) as usize]
}

fn csr_name(n: i64) -> Option<&'static str> {
    Some(match n {
        0x001 => "fflags",
        0x002 => "frm",
        0x003 => "fcsr",
        0xc00 => "cycle",
        0xc01 => "time",
        0xc02 => "instret",
        _ => return None,
    })
}

fn rm_name(rm: u8) -> &'static str {
    match rm {
        0 => "rne",
        1 => "rtz",
        2 => "rdn",
        3 => "rup",
        4 => "rmm",
        _ => "dyn",
    }
}

fn fence_set(bits: i64) -> String {
    let mut s = String::new();
    for (bit, c) in [(8, 'i'), (4, 'o'), (2, 'r'), (1, 'w')] {
        if bits & bit != 0 {
            s.push(c);
        }
    }
    if s.is_empty() { "0".to_string() } else { s }
}

impl fmt::Display for DisplayAt<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let i = self.insn;
        let target = |f: &mut fmt::Formatter<'_>| -> fmt::Result {
            match self.pc {
                Some(pc) => write!(f, "{:x}", pc.wrapping_add(i.imm as u64)),
                None if i.imm < 0 => write!(f, ".-{}", i.imm.unsigned_abs()),
                None => write!(f, ".+{}", i.imm),
            }
        };
        let (rd, rs1, rs2, imm) = (i.rd, i.rs1, i.rs2, i.imm);
        let name = op_name(i.op);
        match i.op {
            // objdump's spelling for bytes that are no instruction.
            Op::Illegal if i.len == 2 => write!(f, ".2byte {:#x}", i.raw),
            Op::Illegal => write!(f, ".4byte {:#x}", i.raw),
            Op::Lui | Op::Auipc => write!(f, "{name} {},{:#x}", x(rd), (imm >> 12) & 0xfffff),
            Op::Jal => {
                match rd {
                    0 => write!(f, "j ")?,
                    1 => write!(f, "jal ")?,
                    _ => write!(f, "jal {},", x(rd))?,
                }
                target(f)
            }
            Op::Jalr => match (rd, rs1, imm) {
                (0, 1, 0) => write!(f, "ret"),
                (0, _, 0) => write!(f, "jr {}", x(rs1)),
                (0, _, _) => write!(f, "jr {imm}({})", x(rs1)),
                (1, _, 0) => write!(f, "jalr {}", x(rs1)),
                (1, _, _) => write!(f, "jalr {imm}({})", x(rs1)),
                _ => write!(f, "jalr {},{imm}({})", x(rd), x(rs1)),
            },
            Op::Beq | Op::Bne | Op::Blt | Op::Bge | Op::Bltu | Op::Bgeu => {
                match (i.op, rs1, rs2) {
                    (Op::Beq, _, 0) => write!(f, "beqz {},", x(rs1))?,
                    (Op::Bne, _, 0) => write!(f, "bnez {},", x(rs1))?,
                    (Op::Bge, 0, _) => write!(f, "blez {},", x(rs2))?,
                    (Op::Bge, _, 0) => write!(f, "bgez {},", x(rs1))?,
                    (Op::Blt, _, 0) => write!(f, "bltz {},", x(rs1))?,
                    (Op::Blt, 0, _) => write!(f, "bgtz {},", x(rs2))?,
                    _ => write!(f, "{name} {},{},", x(rs1), x(rs2))?,
                }
                target(f)
            }
            Op::Lb | Op::Lh | Op::Lw | Op::Ld | Op::Lbu | Op::Lhu | Op::Lwu => {
                write!(f, "{name} {},{imm}({})", x(rd), x(rs1))
            }
            Op::Sb | Op::Sh | Op::Sw | Op::Sd => write!(f, "{name} {},{imm}({})", x(rs2), x(rs1)),
            Op::Flw | Op::Fld => write!(f, "{name} {},{imm}({})", fr(rd), x(rs1)),
            Op::Fsw | Op::Fsd => write!(f, "{name} {},{imm}({})", fr(rs2), x(rs1)),
            Op::Addi => match (rd, rs1, imm) {
                (0, 0, 0) => write!(f, "nop"),
                (_, 0, _) => write!(f, "li {},{imm}", x(rd)),
                (_, _, 0) => write!(f, "mv {},{}", x(rd), x(rs1)),
                _ => write!(f, "addi {},{},{imm}", x(rd), x(rs1)),
            },
            Op::Addiw if imm == 0 => write!(f, "sext.w {},{}", x(rd), x(rs1)),
            Op::Andi if imm == 255 => write!(f, "zext.b {},{}", x(rd), x(rs1)),
            Op::Xori if imm == -1 => write!(f, "not {},{}", x(rd), x(rs1)),
            Op::Sltiu if imm == 1 => write!(f, "seqz {},{}", x(rd), x(rs1)),
            Op::Slli | Op::Srli | Op::Srai | Op::Slliw | Op::Srliw | Op::Sraiw => {
                write!(f, "{name} {},{},{:#x}", x(rd), x(rs1), imm)
            }
            Op::Slti | Op::Sltiu | Op::Xori | Op::Ori | Op::Andi | Op::Addiw => {
                write!(f, "{name} {},{},{imm}", x(rd), x(rs1))
            }
            Op::Add if rs1 == 0 => write!(f, "mv {},{}", x(rd), x(rs2)),
            Op::Sub if rs1 == 0 => write!(f, "neg {},{}", x(rd), x(rs2)),
            Op::Subw if rs1 == 0 => write!(f, "negw {},{}", x(rd), x(rs2)),
            Op::Sltu if rs1 == 0 => write!(f, "snez {},{}", x(rd), x(rs2)),
            Op::Slt if rs2 == 0 => write!(f, "sltz {},{}", x(rd), x(rs1)),
            Op::Slt if rs1 == 0 => write!(f, "sgtz {},{}", x(rd), x(rs2)),
            Op::Fence => {
                let (fm, pred, succ) = ((imm >> 8) & 0xf, (imm >> 4) & 0xf, imm & 0xf);
                match (fm, pred, succ) {
                    (8, 3, 3) => write!(f, "fence.tso"),
                    (0, 1, 0) => write!(f, "pause"),
                    (_, 0xf, 0xf) => write!(f, "fence"),
                    _ => write!(f, "fence {},{}", fence_set(pred), fence_set(succ)),
                }
            }
            Op::Ecall | Op::Ebreak | Op::FenceI => write!(f, "{name}"),
            Op::LrW | Op::LrD => write!(f, "{name}{} {},({})", aqrl(i.rm), x(rd), x(rs1)),
            op if op.is_amo() || matches!(op, Op::ScW | Op::ScD) => {
                write!(f, "{name}{} {},{},({})", aqrl(i.rm), x(rd), x(rs2), x(rs1))
            }
            Op::Csrrw | Op::Csrrs | Op::Csrrc | Op::Csrrwi | Op::Csrrsi | Op::Csrrci => {
                fmt_csr(f, i)
            }
            Op::FmaddS
            | Op::FmsubS
            | Op::FnmsubS
            | Op::FnmaddS
            | Op::FmaddD
            | Op::FmsubD
            | Op::FnmsubD
            | Op::FnmaddD => {
                write!(
                    f,
                    "{name} {},{},{},{}{}",
                    fr(rd),
                    fr(rs1),
                    fr(rs2),
                    fr(i.rs3),
                    rm_suffix(i.rm)
                )
            }
            Op::FaddS
            | Op::FsubS
            | Op::FmulS
            | Op::FdivS
            | Op::FaddD
            | Op::FsubD
            | Op::FmulD
            | Op::FdivD => write!(
                f,
                "{name} {},{},{}{}",
                fr(rd),
                fr(rs1),
                fr(rs2),
                rm_suffix(i.rm)
            ),
            Op::FsqrtS | Op::FsqrtD | Op::FcvtSD => {
                write!(f, "{name} {},{}{}", fr(rd), fr(rs1), rm_suffix(i.rm))
            }
            Op::FsgnjS | Op::FsgnjnS | Op::FsgnjxS | Op::FsgnjD | Op::FsgnjnD | Op::FsgnjxD
                if rs1 == rs2 =>
            {
                let alias = match i.op {
                    Op::FsgnjS => "fmv.s",
                    Op::FsgnjnS => "fneg.s",
                    Op::FsgnjxS => "fabs.s",
                    Op::FsgnjD => "fmv.d",
                    Op::FsgnjnD => "fneg.d",
                    _ => "fabs.d",
                };
                write!(f, "{alias} {},{}", fr(rd), fr(rs1))
            }
            Op::FsgnjS
            | Op::FsgnjnS
            | Op::FsgnjxS
            | Op::FsgnjD
            | Op::FsgnjnD
            | Op::FsgnjxD
            | Op::FminS
            | Op::FmaxS
            | Op::FminD
            | Op::FmaxD => write!(f, "{name} {},{},{}", fr(rd), fr(rs1), fr(rs2)),
            Op::FcvtWS
            | Op::FcvtWuS
            | Op::FcvtLS
            | Op::FcvtLuS
            | Op::FcvtWD
            | Op::FcvtWuD
            | Op::FcvtLD
            | Op::FcvtLuD => write!(f, "{name} {},{}{}", x(rd), fr(rs1), rm_suffix(i.rm)),
            // Exact conversions: objdump omits their default mode, rne.
            Op::FcvtDW | Op::FcvtDWu if i.rm == 0 => write!(f, "{name} {},{}", fr(rd), x(rs1)),
            Op::FcvtDS if i.rm == 0 => write!(f, "{name} {},{}", fr(rd), fr(rs1)),
            Op::FcvtSW
            | Op::FcvtSWu
            | Op::FcvtSL
            | Op::FcvtSLu
            | Op::FcvtDW
            | Op::FcvtDWu
            | Op::FcvtDL
            | Op::FcvtDLu => {
                write!(f, "{name} {},{}{}", fr(rd), x(rs1), rm_suffix(i.rm))
            }
            Op::FmvXW | Op::FmvXD | Op::FclassS | Op::FclassD => {
                write!(f, "{name} {},{}", x(rd), fr(rs1))
            }
            Op::FmvWX | Op::FmvDX => write!(f, "{name} {},{}", fr(rd), x(rs1)),
            Op::FeqS | Op::FltS | Op::FleS | Op::FeqD | Op::FltD | Op::FleD => {
                write!(f, "{name} {},{},{}", x(rd), fr(rs1), fr(rs2))
            }
            _ => write!(f, "{name} {},{},{}", x(rd), x(rs1), x(rs2)),
        }
    }
}

fn aqrl(bits: u8) -> &'static str {
    match bits & 3 {
        0 => "",
        1 => ".rl",
        2 => ".aq",
        _ => ".aqrl",
    }
}

/// objdump omits the rounding mode when it is dynamic.
fn rm_suffix(rm: u8) -> String {
    if rm == 7 {
        String::new()
    } else {
        format!(",{}", rm_name(rm))
    }
}

fn fmt_csr(f: &mut fmt::Formatter<'_>, i: &Insn) -> fmt::Result {
    let csr = match csr_name(i.imm) {
        Some(n) => n.to_string(),
        None => format!("{:#x}", i.imm),
    };
    let (rd, rs1) = (i.rd, i.rs1);
    let imm_form = matches!(i.op, Op::Csrrwi | Op::Csrrsi | Op::Csrrci);
    let src = if imm_form {
        i.rs1.to_string()
    } else {
        x(rs1).to_string()
    };
    // Dedicated pseudo-instructions for the user CSRs, as objdump prints them.
    let special = match (i.op, i.imm, rd, rs1) {
        (Op::Csrrs, 0xc00, _, 0) => Some(format!("rdcycle {}", x(rd))),
        (Op::Csrrs, 0xc01, _, 0) => Some(format!("rdtime {}", x(rd))),
        (Op::Csrrs, 0xc02, _, 0) => Some(format!("rdinstret {}", x(rd))),
        (Op::Csrrs, 0x001, _, 0) => Some(format!("frflags {}", x(rd))),
        (Op::Csrrs, 0x002, _, 0) => Some(format!("frrm {}", x(rd))),
        (Op::Csrrs, 0x003, _, 0) => Some(format!("frcsr {}", x(rd))),
        (Op::Csrrw | Op::Csrrwi, 1..=3, _, _) => {
            let n = ["", "fsflags", "fsrm", "fscsr"][i.imm as usize];
            let n = if imm_form {
                format!("{n}i")
            } else {
                n.to_string()
            };
            Some(if rd == 0 {
                format!("{n} {src}")
            } else {
                format!("{n} {},{src}", x(rd))
            })
        }
        _ => None,
    };
    if let Some(s) = special {
        return f.write_str(&s);
    }
    match (i.op, rd, rs1) {
        (Op::Csrrs, _, 0) => write!(f, "csrr {},{csr}", x(rd)),
        (Op::Csrrw | Op::Csrrs | Op::Csrrc | Op::Csrrwi | Op::Csrrsi | Op::Csrrci, 0, _) => {
            // objdump prints the immediate forms under the same names (`csrs fflags,16`).
            let short = match i.op {
                Op::Csrrw | Op::Csrrwi => "csrw",
                Op::Csrrs | Op::Csrrsi => "csrs",
                _ => "csrc",
            };
            write!(f, "{short} {csr},{src}")
        }
        _ => write!(f, "{} {},{csr},{src}", op_name(i.op), x(rd)),
    }
}

/// The instruction's mnemonic (without aliases).
pub fn op_name(op: Op) -> &'static str {
    use Op::*;
    match op {
        Illegal => "illegal",
        Lui => "lui",
        Auipc => "auipc",
        Jal => "jal",
        Jalr => "jalr",
        Beq => "beq",
        Bne => "bne",
        Blt => "blt",
        Bge => "bge",
        Bltu => "bltu",
        Bgeu => "bgeu",
        Lb => "lb",
        Lh => "lh",
        Lw => "lw",
        Ld => "ld",
        Lbu => "lbu",
        Lhu => "lhu",
        Lwu => "lwu",
        Sb => "sb",
        Sh => "sh",
        Sw => "sw",
        Sd => "sd",
        Addi => "addi",
        Slti => "slti",
        Sltiu => "sltiu",
        Xori => "xori",
        Ori => "ori",
        Andi => "andi",
        Slli => "slli",
        Srli => "srli",
        Srai => "srai",
        Add => "add",
        Sub => "sub",
        Sll => "sll",
        Slt => "slt",
        Sltu => "sltu",
        Xor => "xor",
        Srl => "srl",
        Sra => "sra",
        Or => "or",
        And => "and",
        Addiw => "addiw",
        Slliw => "slliw",
        Srliw => "srliw",
        Sraiw => "sraiw",
        Addw => "addw",
        Subw => "subw",
        Sllw => "sllw",
        Srlw => "srlw",
        Sraw => "sraw",
        Fence => "fence",
        Ecall => "ecall",
        Ebreak => "ebreak",
        FenceI => "fence.i",
        Mul => "mul",
        Mulh => "mulh",
        Mulhsu => "mulhsu",
        Mulhu => "mulhu",
        Div => "div",
        Divu => "divu",
        Rem => "rem",
        Remu => "remu",
        Mulw => "mulw",
        Divw => "divw",
        Divuw => "divuw",
        Remw => "remw",
        Remuw => "remuw",
        LrW => "lr.w",
        ScW => "sc.w",
        AmoswapW => "amoswap.w",
        AmoaddW => "amoadd.w",
        AmoxorW => "amoxor.w",
        AmoandW => "amoand.w",
        AmoorW => "amoor.w",
        AmominW => "amomin.w",
        AmomaxW => "amomax.w",
        AmominuW => "amominu.w",
        AmomaxuW => "amomaxu.w",
        LrD => "lr.d",
        ScD => "sc.d",
        AmoswapD => "amoswap.d",
        AmoaddD => "amoadd.d",
        AmoxorD => "amoxor.d",
        AmoandD => "amoand.d",
        AmoorD => "amoor.d",
        AmominD => "amomin.d",
        AmomaxD => "amomax.d",
        AmominuD => "amominu.d",
        AmomaxuD => "amomaxu.d",
        Csrrw => "csrrw",
        Csrrs => "csrrs",
        Csrrc => "csrrc",
        Csrrwi => "csrrwi",
        Csrrsi => "csrrsi",
        Csrrci => "csrrci",
        Flw => "flw",
        Fsw => "fsw",
        FmaddS => "fmadd.s",
        FmsubS => "fmsub.s",
        FnmsubS => "fnmsub.s",
        FnmaddS => "fnmadd.s",
        FaddS => "fadd.s",
        FsubS => "fsub.s",
        FmulS => "fmul.s",
        FdivS => "fdiv.s",
        FsqrtS => "fsqrt.s",
        FsgnjS => "fsgnj.s",
        FsgnjnS => "fsgnjn.s",
        FsgnjxS => "fsgnjx.s",
        FminS => "fmin.s",
        FmaxS => "fmax.s",
        FcvtWS => "fcvt.w.s",
        FcvtWuS => "fcvt.wu.s",
        FcvtLS => "fcvt.l.s",
        FcvtLuS => "fcvt.lu.s",
        FmvXW => "fmv.x.w",
        FeqS => "feq.s",
        FltS => "flt.s",
        FleS => "fle.s",
        FclassS => "fclass.s",
        FcvtSW => "fcvt.s.w",
        FcvtSWu => "fcvt.s.wu",
        FcvtSL => "fcvt.s.l",
        FcvtSLu => "fcvt.s.lu",
        FmvWX => "fmv.w.x",
        Fld => "fld",
        Fsd => "fsd",
        FmaddD => "fmadd.d",
        FmsubD => "fmsub.d",
        FnmsubD => "fnmsub.d",
        FnmaddD => "fnmadd.d",
        FaddD => "fadd.d",
        FsubD => "fsub.d",
        FmulD => "fmul.d",
        FdivD => "fdiv.d",
        FsqrtD => "fsqrt.d",
        FsgnjD => "fsgnj.d",
        FsgnjnD => "fsgnjn.d",
        FsgnjxD => "fsgnjx.d",
        FminD => "fmin.d",
        FmaxD => "fmax.d",
        FcvtSD => "fcvt.s.d",
        FcvtDS => "fcvt.d.s",
        FeqD => "feq.d",
        FltD => "flt.d",
        FleD => "fle.d",
        FclassD => "fclass.d",
        FcvtWD => "fcvt.w.d",
        FcvtWuD => "fcvt.wu.d",
        FcvtLD => "fcvt.l.d",
        FcvtLuD => "fcvt.lu.d",
        FmvXD => "fmv.x.d",
        FcvtDW => "fcvt.d.w",
        FcvtDWu => "fcvt.d.wu",
        FcvtDL => "fcvt.d.l",
        FcvtDLu => "fcvt.d.lu",
        FmvDX => "fmv.d.x",
    }
}
