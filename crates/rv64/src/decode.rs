//! Decoding of 16- and 32-bit encodings into [`Insn`].

use crate::Insn;

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
    Err(DecodeError::Illegal { raw })
}
