//! Architectural state of one hart as a user program sees it.

/// One hart's user-visible state. `#[repr(C)]`: translated code reaches the fields by
/// fixed offsets (`core::mem::offset_of!`).
#[repr(C)]
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cpu {
    /// Integer registers; `x[0]` is always 0 after every instruction.
    pub x: [u64; 32],
    /// Floating-point registers, raw bits. Single-precision values are NaN-boxed
    /// (upper 32 bits all ones).
    pub f: [u64; 32],
    /// Address of the next instruction to execute.
    pub pc: u64,
    /// Accrued exception flags (fcsr bits 4..0: NV DZ OF UF NX).
    pub fflags: u32,
    /// Dynamic rounding mode (fcsr bits 7..5).
    pub frm: u32,
    /// LR/SC reservation: the reserved address, or `u64::MAX` when none is held.
    pub reservation: u64,
    /// Instructions retired (rdinstret; also rdcycle, which has no better meaning here).
    pub instret: u64,
    /// The value the last `lr` wrote to `rd` (sign-extended for `lr.w`): what an `sc` to
    /// the reserved address compares memory with (its own width's low bits) before it
    /// stores; see `exec`'s LR/SC notes. Meaningful only while `reservation` is held,
    /// left as it is otherwise. Last field, so that adding it moved no offset that
    /// translated code uses.
    pub reserved_value: u64,
}

impl Default for Cpu {
    fn default() -> Self {
        Self::new()
    }
}

impl Cpu {
    /// No reservation held.
    pub const NO_RESERVATION: u64 = u64::MAX;

    /// All registers zero, pc zero, no reservation.
    pub const fn new() -> Self {
        Cpu {
            x: [0; 32],
            f: [0; 32],
            pc: 0,
            fflags: 0,
            frm: 0,
            reservation: Self::NO_RESERVATION,
            instret: 0,
            reserved_value: 0,
        }
    }
}
