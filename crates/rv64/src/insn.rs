//! The decoded instruction: one compact, `Copy` form for both 32-bit and compressed
//! encodings (a compressed instruction decodes to the `Op` of its 32-bit expansion, with
//! `len == 2`).
//!
//! Invariants: `rd`, `rs1`, `rs2`, `rs3` are always `< 32`; fields an `Op` does not use
//! are zero, so two encodings of the same operation compare equal except `len`/`raw`.

/// A decoded instruction. Operand fields not used by an `Op` are zero.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Insn {
    pub op: Op,
    pub rd: u8,
    pub rs1: u8,
    pub rs2: u8,
    pub rs3: u8,
    /// Rounding-mode field of F/D instructions (7 = dynamic), or aq/rl bits of A
    /// instructions (bit 1 = aq, bit 0 = rl), or 0.
    pub rm: u8,
    /// Encoded length in bytes: 2 (compressed) or 4.
    pub len: u8,
    /// Sign-extended immediate (branch/jump offsets in bytes; CSR number for Zicsr;
    /// shift amount for shifts; zimm for CSR*I in `rs1`).
    pub imm: i64,
    /// The raw encoding (16 or 32 bits), for messages and the disassembler.
    pub raw: u32,
}

impl Insn {
    /// An instruction of operation `op` with every operand field zero.
    pub const fn bare(op: Op, raw: u32, len: u8) -> Insn {
        Insn {
            op,
            rd: 0,
            rs1: 0,
            rs2: 0,
            rs3: 0,
            rm: 0,
            len,
            imm: 0,
            raw,
        }
    }

    /// For a [`Op::Fence`]: whether it orders earlier stores before later loads, that is
    /// its predecessor set holds W or O and its successor set R or I (device input and
    /// output are ordered like memory reads and writes: a user-mode guest has no device
    /// memory, so that is only conservative). `fence.tso` (fm = 1000, rw,rw) is the
    /// exception by definition: it orders everything but store -> load. Other fm values
    /// are reserved and, as the ISA requires, treated as fm = 0000. False for every
    /// other operation.
    ///
    /// This is the one ordering an x86-64 host (TSO: loads are not reordered with older
    /// loads, stores not with older loads or stores) does not keep by itself; see
    /// `exec`'s module notes for what every tier emits.
    pub const fn fence_orders_store_to_load(&self) -> bool {
        if !matches!(self.op, Op::Fence) {
            return false;
        }
        let (fm, pred, succ) = ((self.imm >> 8) & 0xf, (self.imm >> 4) & 0xf, self.imm & 0xf);
        const I: i64 = 8;
        const O: i64 = 4;
        const R: i64 = 2;
        const W: i64 = 1;
        if fm == 0b1000 && pred == R | W && succ == R | W {
            return false;
        }
        pred & (W | O) != 0 && succ & (R | I) != 0
    }

    /// The placeholder for bits that do not decode ([`Op::Illegal`]), with the length
    /// their low bits announce, so that the interpreter can keep it in a block and
    /// report it only if it is reached.
    pub const fn illegal(raw: u32) -> Insn {
        Insn::bare(Op::Illegal, raw, if raw & 3 == 3 { 4 } else { 2 })
    }
}

/// Every operation of RV64GC, one variant per 32-bit instruction. `Illegal` is never
/// produced by [`crate::decode()`]; the interpreter uses it to keep an undecodable
/// instruction in a block so that reaching it reports [`crate::Exit::Illegal`].
///
/// Operand conventions: integer ops use `rd`/`rs1`/`rs2`/`imm`; loads `rd, imm(rs1)`;
/// stores `rs2, imm(rs1)`; branches compare `rs1`, `rs2` and jump to `pc + imm`; F/D ops
/// name float registers in the same fields (`fcvt`/`fmv`/compares name an integer
/// register where the instruction does); fused multiply-adds also use `rs3`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Op {
    Illegal,
    // RV64I
    Lui,
    Auipc,
    Jal,
    Jalr,
    Beq,
    Bne,
    Blt,
    Bge,
    Bltu,
    Bgeu,
    Lb,
    Lh,
    Lw,
    Ld,
    Lbu,
    Lhu,
    Lwu,
    Sb,
    Sh,
    Sw,
    Sd,
    Addi,
    Slti,
    Sltiu,
    Xori,
    Ori,
    Andi,
    Slli,
    Srli,
    Srai,
    Add,
    Sub,
    Sll,
    Slt,
    Sltu,
    Xor,
    Srl,
    Sra,
    Or,
    And,
    Addiw,
    Slliw,
    Srliw,
    Sraiw,
    Addw,
    Subw,
    Sllw,
    Srlw,
    Sraw,
    /// `imm` holds bits 31..20 (fm, pred, succ).
    Fence,
    Ecall,
    Ebreak,
    // Zifencei
    FenceI,
    // M
    Mul,
    Mulh,
    Mulhsu,
    Mulhu,
    Div,
    Divu,
    Rem,
    Remu,
    Mulw,
    Divw,
    Divuw,
    Remw,
    Remuw,
    // A
    LrW,
    ScW,
    AmoswapW,
    AmoaddW,
    AmoxorW,
    AmoandW,
    AmoorW,
    AmominW,
    AmomaxW,
    AmominuW,
    AmomaxuW,
    LrD,
    ScD,
    AmoswapD,
    AmoaddD,
    AmoxorD,
    AmoandD,
    AmoorD,
    AmominD,
    AmomaxD,
    AmominuD,
    AmomaxuD,
    // Zicsr
    Csrrw,
    Csrrs,
    Csrrc,
    Csrrwi,
    Csrrsi,
    Csrrci,
    // F
    Flw,
    Fsw,
    FmaddS,
    FmsubS,
    FnmsubS,
    FnmaddS,
    FaddS,
    FsubS,
    FmulS,
    FdivS,
    FsqrtS,
    FsgnjS,
    FsgnjnS,
    FsgnjxS,
    FminS,
    FmaxS,
    FcvtWS,
    FcvtWuS,
    FcvtLS,
    FcvtLuS,
    FmvXW,
    FeqS,
    FltS,
    FleS,
    FclassS,
    FcvtSW,
    FcvtSWu,
    FcvtSL,
    FcvtSLu,
    FmvWX,
    // D
    Fld,
    Fsd,
    FmaddD,
    FmsubD,
    FnmsubD,
    FnmaddD,
    FaddD,
    FsubD,
    FmulD,
    FdivD,
    FsqrtD,
    FsgnjD,
    FsgnjnD,
    FsgnjxD,
    FminD,
    FmaxD,
    FcvtSD,
    FcvtDS,
    FeqD,
    FltD,
    FleD,
    FclassD,
    FcvtWD,
    FcvtWuD,
    FcvtLD,
    FcvtLuD,
    FmvXD,
    FcvtDW,
    FcvtDWu,
    FcvtDL,
    FcvtDLu,
    FmvDX,
}

impl Insn {
    /// Where a taken branch or `jal` at `pc` goes (`None` for everything else, including
    /// `jalr`, whose target is in a register).
    pub fn static_target(&self, pc: u64) -> Option<u64> {
        (self.op.is_conditional_branch() || self.op == Op::Jal)
            .then(|| pc.wrapping_add(self.imm as u64))
    }
}

impl Op {
    /// `beq`, `bne`, `blt`, `bge`, `bltu`, `bgeu`.
    pub const fn is_conditional_branch(self) -> bool {
        matches!(
            self,
            Op::Beq | Op::Bne | Op::Blt | Op::Bge | Op::Bltu | Op::Bgeu
        )
    }

    /// Operations that may read guest memory (loads, LR, AMOs, FP loads).
    pub const fn reads_memory(self) -> bool {
        matches!(
            self,
            Op::Lb
                | Op::Lh
                | Op::Lw
                | Op::Ld
                | Op::Lbu
                | Op::Lhu
                | Op::Lwu
                | Op::Flw
                | Op::Fld
                | Op::LrW
                | Op::LrD
        ) || self.is_amo()
    }

    /// Operations that may write guest memory (stores, SC, AMOs, FP stores).
    pub const fn writes_memory(self) -> bool {
        matches!(
            self,
            Op::Sb | Op::Sh | Op::Sw | Op::Sd | Op::Fsw | Op::Fsd | Op::ScW | Op::ScD
        ) || self.is_amo()
    }

    /// The read-modify-write AMOs (not LR/SC).
    pub const fn is_amo(self) -> bool {
        matches!(
            self,
            Op::AmoswapW
                | Op::AmoaddW
                | Op::AmoxorW
                | Op::AmoandW
                | Op::AmoorW
                | Op::AmominW
                | Op::AmomaxW
                | Op::AmominuW
                | Op::AmomaxuW
                | Op::AmoswapD
                | Op::AmoaddD
                | Op::AmoxorD
                | Op::AmoandD
                | Op::AmoorD
                | Op::AmominD
                | Op::AmomaxD
                | Op::AmominuD
                | Op::AmomaxuD
        )
    }

    /// True for operations after which a basic block ends: control transfers and the
    /// instructions that hand control to the engine.
    pub const fn ends_block(self) -> bool {
        matches!(
            self,
            Op::Jal
                | Op::Jalr
                | Op::Beq
                | Op::Bne
                | Op::Blt
                | Op::Bge
                | Op::Bltu
                | Op::Bgeu
                | Op::Ecall
                | Op::Ebreak
                | Op::FenceI
                | Op::Illegal
        )
    }
}
