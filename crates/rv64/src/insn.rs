//! The decoded instruction: one compact, `Copy` form for both 32-bit and compressed
//! encodings (a compressed instruction decodes to the `Op` of its 32-bit expansion, with
//! `len == 2`).

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

/// Every operation of RV64GC. Filled in by the decoder's author; see `decode.rs`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Op {
    Illegal,
}
