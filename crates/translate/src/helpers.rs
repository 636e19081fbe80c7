//! The reference helper table: `exec_one` implemented with `rv64::execute` over a
//! [`GuestView`] built from the context's memory base, permission table and size. So
//! every instruction the translator does not inline has the interpreter's semantics by
//! construction. Usable by tests and by any embedder whose memory has the layout of
//! [`crate::context`] (the engine's `GuestMemory` does).
//!
//! This is one of the two modules of the crate with `unsafe` (the other is `exec_mem`):
//! turning the context's raw pointers into slices.

use rv64::{AccessKind, Exit, MemFault, Memory};

use crate::context::{HelperTable, JitContext, PAGE_SHIFT, PERM_R, PERM_W, PERM_X, status};

/// Safe view of a flat guest space: `mem[a]` is guest byte `a`, `perms[a >> PAGE_SHIFT]`
/// its page's permission byte. Checks exactly as the engine's `GuestMemory` does: bounds
/// first, then every page an access touches; the fault address is the access address,
/// or the start of the first failing page when that lies above it.
#[derive(Debug)]
pub struct GuestView<'a> {
    pub mem: &'a mut [u8],
    pub perms: &'a [u8],
}

impl GuestView<'_> {
    #[inline]
    fn check(&self, addr: u64, len: u64, need: u8, kind: AccessKind) -> Result<usize, MemFault> {
        let fault = |addr| MemFault { addr, kind };
        let end = match addr.checked_add(len) {
            Some(e) if e <= self.mem.len() as u64 => e,
            _ => return Err(fault(addr)),
        };
        let first = (addr >> PAGE_SHIFT) as usize;
        let last = ((end - 1) >> PAGE_SHIFT) as usize;
        for page in first..=last {
            let p = self.perms.get(page).copied().unwrap_or(0);
            if p & need != need {
                return Err(fault(((page as u64) << PAGE_SHIFT).max(addr)));
            }
        }
        Ok(addr as usize)
    }

    #[inline]
    fn load<const N: usize>(
        &self,
        addr: u64,
        need: u8,
        kind: AccessKind,
    ) -> Result<[u8; N], MemFault> {
        let off = self.check(addr, N as u64, need, kind)?;
        let mut b = [0u8; N];
        b.copy_from_slice(&self.mem[off..off + N]);
        Ok(b)
    }

    #[inline]
    fn store<const N: usize>(&mut self, addr: u64, v: [u8; N]) -> Result<(), MemFault> {
        let off = self.check(addr, N as u64, PERM_W, AccessKind::Write)?;
        self.mem[off..off + N].copy_from_slice(&v);
        Ok(())
    }
}

impl Memory for GuestView<'_> {
    fn load8(&self, addr: u64) -> Result<u8, MemFault> {
        Ok(self.load::<1>(addr, PERM_R, AccessKind::Read)?[0])
    }
    fn load16(&self, addr: u64) -> Result<u16, MemFault> {
        Ok(u16::from_le_bytes(self.load(
            addr,
            PERM_R,
            AccessKind::Read,
        )?))
    }
    fn load32(&self, addr: u64) -> Result<u32, MemFault> {
        Ok(u32::from_le_bytes(self.load(
            addr,
            PERM_R,
            AccessKind::Read,
        )?))
    }
    fn load64(&self, addr: u64) -> Result<u64, MemFault> {
        Ok(u64::from_le_bytes(self.load(
            addr,
            PERM_R,
            AccessKind::Read,
        )?))
    }
    fn store8(&mut self, addr: u64, value: u8) -> Result<(), MemFault> {
        self.store(addr, [value])
    }
    fn store16(&mut self, addr: u64, value: u16) -> Result<(), MemFault> {
        self.store(addr, value.to_le_bytes())
    }
    fn store32(&mut self, addr: u64, value: u32) -> Result<(), MemFault> {
        self.store(addr, value.to_le_bytes())
    }
    fn store64(&mut self, addr: u64, value: u64) -> Result<(), MemFault> {
        self.store(addr, value.to_le_bytes())
    }
    fn fetch16(&self, addr: u64) -> Result<u16, MemFault> {
        Ok(u16::from_le_bytes(self.load(
            addr,
            PERM_X,
            AccessKind::Fetch,
        )?))
    }
}

/// The body of an `exec_one` helper for any memory: decodes `raw`, executes it at `pc`
/// with `retired` instructions added to `instret` while it runs, and implements the
/// [`crate::context::ExecOneFn`] contract. Embedders call this from their own
/// `extern "C"` helper with their memory.
pub fn exec_one_with<M: Memory>(
    ctx: &mut JitContext,
    mem: &mut M,
    pc: u64,
    raw: u32,
    retired: u64,
) -> u64 {
    let insn = match rv64::decode(raw) {
        Ok(insn) => insn,
        Err(_) => {
            ctx.cpu.pc = pc;
            ctx.cpu.instret = ctx.cpu.instret.wrapping_add(retired);
            return ctx.record_exit(Exit::Illegal { pc, raw });
        }
    };
    let entry_instret = ctx.cpu.instret;
    ctx.cpu.pc = pc;
    ctx.cpu.instret = entry_instret.wrapping_add(retired);
    match rv64::execute(&mut ctx.cpu, mem, &insn) {
        Ok(()) => {
            ctx.cpu.instret = entry_instret;
            status::CONTINUE
        }
        Err(exit) => {
            let st = ctx.record_exit(exit);
            if st == status::CONTINUE {
                // Only `Exit::Budget` maps to CONTINUE, and a single instruction never
                // produces it; keep the contract anyway.
                ctx.cpu.instret = entry_instret;
            }
            st
        }
    }
}

/// `exec_one` over the flat layout of [`crate::context`].
///
/// # Safety
/// `ctx` must point to a valid, exclusively accessible [`JitContext`] whose `mem_base`
/// covers `guest_size` readable and writable bytes and whose `perms` covers
/// `guest_size >> PAGE_SHIFT` bytes, none of them aliased by a Rust reference during
/// the call.
pub unsafe extern "C" fn flat_exec_one(
    ctx: *mut JitContext,
    pc: u64,
    raw: u32,
    retired: u64,
) -> u64 {
    // SAFETY: the caller guarantees `ctx` is valid and not otherwise borrowed.
    let ctx = unsafe { &mut *ctx };
    let size = ctx.guest_size as usize;
    // SAFETY: by the caller's contract `mem_base` points to `guest_size` writable bytes
    // and `perms` to `guest_size >> PAGE_SHIFT` bytes, neither aliased during the call
    // (translated code is suspended in this call and touches neither).
    let mut view = unsafe {
        GuestView {
            mem: core::slice::from_raw_parts_mut(ctx.mem_base, size),
            perms: core::slice::from_raw_parts(ctx.perms, size >> PAGE_SHIFT),
        }
    };
    exec_one_with(ctx, &mut view, pc, raw, retired)
}

/// A helper table whose `exec_one` is [`flat_exec_one`].
pub static FLAT_HELPERS: HelperTable = HelperTable {
    exec_one: flat_exec_one,
};
