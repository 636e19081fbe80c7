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

/// Guest memory as the interpreter sees it. Little-endian; misaligned accesses are
/// allowed (Linux user mode emulates them), an implementation must handle accesses that
/// cross a page boundary. Implementations decide permissions and report violations as
/// [`MemFault`]; they must never touch host memory outside the guest's space.
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
}
