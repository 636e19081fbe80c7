//! A flat, `Vec`-backed [`Memory`] for tests, examples and benchmarks: one contiguous
//! region `[base, base + len)`, every byte readable, writable and executable; anything
//! outside faults.

use crate::{AccessKind, MemFault, Memory};

/// Flat test memory.
#[derive(Clone, Debug)]
pub struct FlatMemory {
    pub base: u64,
    pub bytes: Vec<u8>,
}

impl FlatMemory {
    pub fn new(base: u64, size: usize) -> Self {
        FlatMemory {
            base,
            bytes: vec![0; size],
        }
    }

    /// Copies `data` to `addr`. Panics if it does not fit (test set-up only).
    pub fn write_bytes(&mut self, addr: u64, data: &[u8]) {
        let off = (addr - self.base) as usize;
        self.bytes[off..off + data.len()].copy_from_slice(data);
    }

    /// Writes a sequence of 32-bit instruction words at `addr`.
    pub fn write_words(&mut self, addr: u64, words: &[u32]) {
        for (i, w) in words.iter().enumerate() {
            self.write_bytes(addr + 4 * i as u64, &w.to_le_bytes());
        }
    }

    #[inline(always)]
    fn range<const N: usize>(&self, addr: u64, kind: AccessKind) -> Result<usize, MemFault> {
        let off = addr.wrapping_sub(self.base);
        if off < self.bytes.len() as u64 && (self.bytes.len() as u64 - off) >= N as u64 {
            Ok(off as usize)
        } else {
            Err(MemFault { addr, kind })
        }
    }

    #[inline(always)]
    fn load<const N: usize>(&self, addr: u64, kind: AccessKind) -> Result<[u8; N], MemFault> {
        let off = self.range::<N>(addr, kind)?;
        let mut b = [0u8; N];
        b.copy_from_slice(&self.bytes[off..off + N]);
        Ok(b)
    }

    #[inline(always)]
    fn store<const N: usize>(&mut self, addr: u64, v: [u8; N]) -> Result<(), MemFault> {
        let off = self.range::<N>(addr, AccessKind::Write)?;
        self.bytes[off..off + N].copy_from_slice(&v);
        Ok(())
    }
}

impl Memory for FlatMemory {
    #[inline]
    fn load8(&self, addr: u64) -> Result<u8, MemFault> {
        Ok(self.load::<1>(addr, AccessKind::Read)?[0])
    }
    #[inline]
    fn load16(&self, addr: u64) -> Result<u16, MemFault> {
        Ok(u16::from_le_bytes(self.load(addr, AccessKind::Read)?))
    }
    #[inline]
    fn load32(&self, addr: u64) -> Result<u32, MemFault> {
        Ok(u32::from_le_bytes(self.load(addr, AccessKind::Read)?))
    }
    #[inline]
    fn load64(&self, addr: u64) -> Result<u64, MemFault> {
        Ok(u64::from_le_bytes(self.load(addr, AccessKind::Read)?))
    }
    #[inline]
    fn store8(&mut self, addr: u64, value: u8) -> Result<(), MemFault> {
        self.store(addr, [value])
    }
    #[inline]
    fn store16(&mut self, addr: u64, value: u16) -> Result<(), MemFault> {
        self.store(addr, value.to_le_bytes())
    }
    #[inline]
    fn store32(&mut self, addr: u64, value: u32) -> Result<(), MemFault> {
        self.store(addr, value.to_le_bytes())
    }
    #[inline]
    fn store64(&mut self, addr: u64, value: u64) -> Result<(), MemFault> {
        self.store(addr, value.to_le_bytes())
    }
    #[inline]
    fn fetch16(&self, addr: u64) -> Result<u16, MemFault> {
        Ok(u16::from_le_bytes(self.load(addr, AccessKind::Fetch)?))
    }
}
