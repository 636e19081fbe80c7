//! The interface through which the interpreter reaches guest memory.

/// What kind of access faulted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AccessKind {
    Read,
    Write,
    Fetch,
}

/// An access the guest was not allowed to make (unmapped, or without permission).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{kind:?} fault at {addr:#x}")]
pub struct MemFault {
    pub addr: u64,
    pub kind: AccessKind,
}

/// The read-modify-write of an AMO instruction: `new = op(old, src)`, where `old` is the
/// memory word and `src` the value of `rs2` (its low 32 bits for `.w`). Min/Max compare
/// as signed integers of the operation's width, Minu/Maxu as unsigned.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AmoOp {
    Swap,
    Add,
    Xor,
    And,
    Or,
    Min,
    Max,
    Minu,
    Maxu,
}

impl AmoOp {
    /// The value a 32-bit AMO stores, given the old word and the source.
    #[inline]
    pub const fn apply32(self, old: u32, src: u32) -> u32 {
        match self {
            AmoOp::Swap => src,
            AmoOp::Add => old.wrapping_add(src),
            AmoOp::Xor => old ^ src,
            AmoOp::And => old & src,
            AmoOp::Or => old | src,
            AmoOp::Min => {
                if (old as i32) < (src as i32) {
                    old
                } else {
                    src
                }
            }
            AmoOp::Max => {
                if (old as i32) > (src as i32) {
                    old
                } else {
                    src
                }
            }
            AmoOp::Minu => {
                if old < src {
                    old
                } else {
                    src
                }
            }
            AmoOp::Maxu => {
                if old > src {
                    old
                } else {
                    src
                }
            }
        }
    }

    /// The value a 64-bit AMO stores, given the old doubleword and the source.
    #[inline]
    pub const fn apply64(self, old: u64, src: u64) -> u64 {
        match self {
            AmoOp::Swap => src,
            AmoOp::Add => old.wrapping_add(src),
            AmoOp::Xor => old ^ src,
            AmoOp::And => old & src,
            AmoOp::Or => old | src,
            AmoOp::Min => {
                if (old as i64) < (src as i64) {
                    old
                } else {
                    src
                }
            }
            AmoOp::Max => {
                if (old as i64) > (src as i64) {
                    old
                } else {
                    src
                }
            }
            AmoOp::Minu => {
                if old < src {
                    old
                } else {
                    src
                }
            }
            AmoOp::Maxu => {
                if old > src {
                    old
                } else {
                    src
                }
            }
        }
    }
}

/// Guest memory as the interpreter sees it. Little-endian; misaligned accesses are
/// allowed (Linux user mode emulates them), an implementation must handle accesses that
/// cross a page boundary. Implementations decide permissions and report violations as
/// [`MemFault`]; they must never touch host memory outside the guest's space.
///
/// # Atomic operations
///
/// [`Memory::amo32`], [`Memory::amo64`], [`Memory::cas32`] and [`Memory::cas64`] are what
/// the A extension is built on ([`crate::execute`] makes every AMO one `amo*` call and
/// every succeeding-by-address `sc` one `cas*` call). Their default methods are made of
/// the plain loads and stores above: exactly right for a memory only one thread uses
/// (every test memory), and *not atomic* with respect to other threads. A memory that
/// guest threads on several host threads share must override all four with host
/// atomic read-modify-write instructions on the word itself (on x86-64 they are
/// `lock`-prefixed, hence full barriers; use `Ordering::SeqCst`, which costs nothing
/// more there and keeps the Rust compiler from moving other accesses across them).
///
/// Callers pass only naturally aligned addresses (`execute` reports a misaligned AMO or
/// `sc` as a Write fault at its address before calling). An implementation must still be
/// memory-safe for a misaligned one; it should return that same fault.
///
/// Faults are those of the plain accesses the defaults use, so overriding changes no
/// fault: see each method.
pub trait Memory {
    fn load8(&self, addr: u64) -> Result<u8, MemFault>;
    fn load16(&self, addr: u64) -> Result<u16, MemFault>;
    fn load32(&self, addr: u64) -> Result<u32, MemFault>;
    fn load64(&self, addr: u64) -> Result<u64, MemFault>;
    fn store8(&mut self, addr: u64, value: u8) -> Result<(), MemFault>;
    fn store16(&mut self, addr: u64, value: u16) -> Result<(), MemFault>;
    fn store32(&mut self, addr: u64, value: u32) -> Result<(), MemFault>;
    fn store64(&mut self, addr: u64, value: u64) -> Result<(), MemFault>;
    /// Instruction fetch of 16 bits (needs execute permission; faults are `Fetch`).
    fn fetch16(&self, addr: u64) -> Result<u16, MemFault>;

    /// Atomically replaces the 32-bit word at `addr` (4-aligned) with
    /// `op.apply32(old, src)` and returns `old`.
    ///
    /// Needs read and write permission. Faults as `load32(addr)` and then
    /// `store32(addr, _)` would: a Read fault if the word is not readable (or outside the
    /// guest), else a Write fault if it is not writable; memory is unchanged on a fault.
    fn amo32(&mut self, addr: u64, op: AmoOp, src: u32) -> Result<u32, MemFault> {
        let old = self.load32(addr)?;
        self.store32(addr, op.apply32(old, src))?;
        Ok(old)
    }

    /// [`Memory::amo32`] for the 64-bit doubleword at `addr` (8-aligned).
    fn amo64(&mut self, addr: u64, op: AmoOp, src: u64) -> Result<u64, MemFault> {
        let old = self.load64(addr)?;
        self.store64(addr, op.apply64(old, src))?;
        Ok(old)
    }

    /// Atomically: if the 32-bit word at `addr` (4-aligned) equals `expected`, writes
    /// `new` and returns `Ok(true)`; otherwise leaves memory alone and returns
    /// `Ok(false)`.
    ///
    /// Permission and faults are exactly those of `store32(addr, new)` (an `sc` is a
    /// store, and this is what `sc` did before it compared): a Write fault when the word
    /// is not writable or outside the guest, whatever the comparison would have said.
    /// The comparison itself needs no read permission: `sc` only calls this after an
    /// `lr` read the same word, and host memory behind a writable guest page is
    /// readable. (The default, having no other way to check write permission, writes
    /// the old value back when the comparison fails. It cannot read a write-only word
    /// through `load32`; there it stores without comparing, which is what `sc` did
    /// before and is right for a single thread unless the thread itself changed the
    /// word. Only a page made write-only after the `lr` read it gets there.)
    fn cas32(&mut self, addr: u64, expected: u32, new: u32) -> Result<bool, MemFault> {
        match self.load32(addr) {
            // Writing the old value back changes nothing (one thread) but faults exactly
            // where the store would.
            Ok(old) if old != expected => self.store32(addr, old).map(|()| false),
            _ => self.store32(addr, new).map(|()| true),
        }
    }

    /// [`Memory::cas32`] for the 64-bit doubleword at `addr` (8-aligned); faults as
    /// `store64(addr, new)`.
    fn cas64(&mut self, addr: u64, expected: u64, new: u64) -> Result<bool, MemFault> {
        match self.load64(addr) {
            Ok(old) if old != expected => self.store64(addr, old).map(|()| false),
            _ => self.store64(addr, new).map(|()| true),
        }
    }
}
