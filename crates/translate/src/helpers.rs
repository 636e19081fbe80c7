//! The reference helper table: `exec_one` implemented with `rv64::execute` over a
//! [`GuestView`] built from the context's memory base, permission table and size. So
//! every instruction the translator does not inline has the interpreter's semantics by
//! construction. Usable by tests and by any embedder whose memory has the layout of
//! [`crate::context`] (the engine's `GuestMemory` does).
//!
//! This is one of the two modules of the crate with `unsafe` (the other is `exec_mem`):
//! guest memory reached through the context's raw pointers, with host atomics, because
//! other guest threads (other host threads, or translated code on them) may access the
//! same memory at the same time.

use core::marker::PhantomData;
use core::sync::atomic::{
    AtomicI32, AtomicI64, AtomicU8, AtomicU16, AtomicU32, AtomicU64, Ordering,
};

use rv64::{AccessKind, AmoOp, Exit, MemFault, Memory};

use crate::context::{HelperTable, JitContext, PAGE_SHIFT, PERM_R, PERM_W, PERM_X, status};

// Guest memory is little-endian and the atomic read-modify-writes below operate on
// native integers: only a little-endian host gets the guest's values.
const _: () = assert!(cfg!(target_endian = "little"));

/// A flat guest space seen from one host thread: guest byte `a` is at host address
/// `mem + a` for `a < size`, and `perms[a >> PAGE_SHIFT]` is its page's permission
/// byte. Checks exactly as the engine's `GuestMemory` does: bounds first, then every page
/// an access touches; the fault address is the access address, or the start of the
/// first failing page when that lies above it.
///
/// It holds raw pointers, not slices: other threads may read and write the same guest
/// memory while a view exists, which a `&mut [u8]` would forbid. Every access is a host
/// atomic operation, so none of them is a data race in Rust's memory model:
/// - a naturally aligned load or store (the host address aligned to the access size) is
///   one relaxed atomic load or store: single-copy atomic, as RVWMO requires of aligned
///   accesses, and compiled to a plain `mov` on x86-64;
/// - a misaligned load or store is done byte by byte (relaxed `AtomicU8`): RVWMO gives
///   misaligned accesses no single-copy atomicity (they may be split into accesses of
///   any size, which is what Linux's misaligned-access emulation does), so this is an
///   allowed behaviour, and misaligned accesses are rare enough for its cost;
/// - AMOs and `cas*` are sequentially consistent atomic read-modify-writes (`lock`
///   instructions, full barriers on x86-64; see `rv64::exec`'s notes on ordering).
///
/// One thing stays outside Rust's memory model: a guest may race accesses of different
/// sizes to overlapping bytes (a byte store against a word AMO), and Rust, like C++,
/// does not define racing mixed-size atomics. x86-64 hardware keeps them coherent, and
/// the guest pointer is opaque to the compiler (it comes through the context), so this
/// is the same bargain every emulator and translated code itself make.
#[derive(Debug)]
pub struct GuestView<'a> {
    /// Host address of guest address 0.
    mem: *mut u8,
    /// Guest bytes `[0, size)` exist.
    size: u64,
    /// The permission table (read with plain reads: see [`GuestView::from_raw`]).
    perms: *const u8,
    /// Entries of `perms` that may be read; pages past them read as 0 (no permission).
    pages: usize,
    _borrow: PhantomData<&'a mut [u8]>,
}

impl<'a> GuestView<'a> {
    /// A view of memory this thread alone uses while the view lives (`mem[a]` is guest
    /// byte `a`, `perms[p]` the permission byte of page `p`).
    pub fn new(mem: &'a mut [u8], perms: &'a [u8]) -> Self {
        GuestView {
            mem: mem.as_mut_ptr(),
            size: mem.len() as u64,
            perms: perms.as_ptr(),
            pages: perms.len(),
            _borrow: PhantomData,
        }
    }

    /// A view of `size` guest bytes at host address `mem` with the permission table
    /// `perms` (`size >> PAGE_SHIFT` entries are read; the sentinel is not), for `'a`.
    /// `mem` should be 8-byte aligned (the engine's guest space is page-aligned): with a
    /// misaligned base, AMOs on it fall back to a plain read-modify-write, correct only
    /// while no other thread uses the memory.
    ///
    /// # Safety
    /// For all of `'a`:
    /// - `[mem, mem + size)` is valid for reads and writes and no Rust reference to any
    ///   of it is alive, except to atomic types; other threads access it only with
    ///   atomic operations (another `GuestView`, host atomics) or from machine code
    ///   (translated code). Racing accesses of different sizes are the caveat described
    ///   on [`GuestView`].
    /// - `[perms, perms + (size >> PAGE_SHIFT))` is valid for reads; other threads may
    ///   change entries, but only with atomic byte stores (the view reads them with
    ///   atomic loads).
    pub unsafe fn from_raw(mem: *mut u8, size: u64, perms: *const u8) -> Self {
        GuestView {
            mem,
            size,
            perms,
            pages: usize::try_from(size >> PAGE_SHIFT).unwrap_or(usize::MAX),
            _borrow: PhantomData,
        }
    }

    #[inline]
    fn perm(&self, page: usize) -> u8 {
        if page < self.pages {
            // SAFETY: `page < pages`, and the constructors guarantee `pages` entries are
            // readable while the view lives; another thread may change an entry (with an
            // atomic store: the constructors' contract), so it is read atomically.
            // `AtomicU8` has the layout of `u8`.
            unsafe {
                (*self.perms.add(page).cast::<core::sync::atomic::AtomicU8>())
                    .load(core::sync::atomic::Ordering::Relaxed)
            }
        } else {
            0
        }
    }

    /// The host address of `[addr, addr + len)` once bounds and the permission `need` of
    /// every page touched are checked.
    #[inline]
    fn check(&self, addr: u64, len: u64, need: u8, kind: AccessKind) -> Result<*mut u8, MemFault> {
        let fault = |addr| MemFault { addr, kind };
        let end = match addr.checked_add(len) {
            Some(e) if e <= self.size => e,
            _ => return Err(fault(addr)),
        };
        let first = (addr >> PAGE_SHIFT) as usize;
        let last = ((end - 1) >> PAGE_SHIFT) as usize;
        for page in first..=last {
            if self.perm(page) & need != need {
                return Err(fault(((page as u64) << PAGE_SHIFT).max(addr)));
            }
        }
        // SAFETY: `addr + len <= size`, so the result stays inside the guest space the
        // constructor vouched for (and `size` fits the address space, so no overflow).
        Ok(unsafe { self.mem.add(addr as usize) })
    }

    #[inline]
    fn load(&self, addr: u64, len: u64, need: u8, kind: AccessKind) -> Result<u64, MemFault> {
        let p = self.check(addr, len, need, kind)?;
        // SAFETY: `check` proved `[p, p + len)` inside the guest space, which is valid
        // for reads and writes and accessed by others only atomically.
        Ok(unsafe { read_host(p, len as usize) })
    }

    #[inline]
    fn store(&mut self, addr: u64, len: u64, value: u64) -> Result<(), MemFault> {
        let p = self.check(addr, len, PERM_W, AccessKind::Write)?;
        // SAFETY: as in `load`.
        unsafe { write_host(p, len as usize, value) };
        Ok(())
    }

    /// The host address of the AMO target `[addr, addr + len)`: a misaligned address is
    /// a Write fault at it (before any check, as `rv64::execute` reports it); then read
    /// permission (Read fault) and write permission (Write fault), the faults of the
    /// load and the store an AMO stands for.
    #[inline]
    fn amo_target(&self, addr: u64, len: u64) -> Result<*mut u8, MemFault> {
        misaligned_is_a_write_fault(addr, len)?;
        self.check(addr, len, PERM_R, AccessKind::Read)?;
        self.check(addr, len, PERM_W, AccessKind::Write)
    }

    /// The host address of a compare-and-swap target: the checks of a store (Write
    /// fault), after the same alignment rule as an AMO.
    #[inline]
    fn cas_target(&self, addr: u64, len: u64) -> Result<*mut u8, MemFault> {
        misaligned_is_a_write_fault(addr, len)?;
        self.check(addr, len, PERM_W, AccessKind::Write)
    }
}

fn misaligned_is_a_write_fault(addr: u64, len: u64) -> Result<(), MemFault> {
    if addr & (len - 1) != 0 {
        return Err(MemFault {
            addr,
            kind: AccessKind::Write,
        });
    }
    Ok(())
}

/// Whether host address `p` is aligned for an access of `len` (a power of two) bytes.
#[inline]
fn aligned(p: *mut u8, len: usize) -> bool {
    p.addr() & (len - 1) == 0
}

/// Reads `len` (1, 2, 4 or 8) bytes at `p`, little-endian: one relaxed atomic load when
/// `p` is aligned, else byte by byte (see [`GuestView`] for why that is allowed).
///
/// # Safety
/// `[p, p + len)` is valid for reads and writes, and other threads access it only
/// atomically.
#[inline]
unsafe fn read_host(p: *mut u8, len: usize) -> u64 {
    if aligned(p, len) {
        // SAFETY: `p` is aligned for the type, valid for reads and writes, and every
        // concurrent access is atomic (the caller's contract).
        unsafe {
            match len {
                1 => AtomicU8::from_ptr(p).load(Ordering::Relaxed).into(),
                2 => AtomicU16::from_ptr(p.cast()).load(Ordering::Relaxed).into(),
                4 => AtomicU32::from_ptr(p.cast()).load(Ordering::Relaxed).into(),
                _ => AtomicU64::from_ptr(p.cast()).load(Ordering::Relaxed),
            }
        }
    } else {
        let mut v = 0u64;
        for k in 0..len {
            // SAFETY: byte `k < len` of the range the caller vouched for; `AtomicU8`
            // needs no alignment.
            let b = unsafe { AtomicU8::from_ptr(p.add(k)) }.load(Ordering::Relaxed);
            v |= u64::from(b) << (8 * k);
        }
        v
    }
}

/// Writes the low `len` (1, 2, 4 or 8) bytes of `value` at `p`, little-endian, as
/// [`read_host`] reads.
///
/// # Safety
/// As [`read_host`].
#[inline]
unsafe fn write_host(p: *mut u8, len: usize, value: u64) {
    if aligned(p, len) {
        // SAFETY: as in `read_host`.
        unsafe {
            match len {
                1 => AtomicU8::from_ptr(p).store(value as u8, Ordering::Relaxed),
                2 => AtomicU16::from_ptr(p.cast()).store(value as u16, Ordering::Relaxed),
                4 => AtomicU32::from_ptr(p.cast()).store(value as u32, Ordering::Relaxed),
                _ => AtomicU64::from_ptr(p.cast()).store(value, Ordering::Relaxed),
            }
        }
    } else {
        for k in 0..len {
            // SAFETY: as in `read_host`.
            unsafe { AtomicU8::from_ptr(p.add(k)) }
                .store((value >> (8 * k)) as u8, Ordering::Relaxed);
        }
    }
}

const SC: Ordering = Ordering::SeqCst;

impl Memory for GuestView<'_> {
    fn load8(&self, addr: u64) -> Result<u8, MemFault> {
        Ok(self.load(addr, 1, PERM_R, AccessKind::Read)? as u8)
    }
    fn load16(&self, addr: u64) -> Result<u16, MemFault> {
        Ok(self.load(addr, 2, PERM_R, AccessKind::Read)? as u16)
    }
    fn load32(&self, addr: u64) -> Result<u32, MemFault> {
        Ok(self.load(addr, 4, PERM_R, AccessKind::Read)? as u32)
    }
    fn load64(&self, addr: u64) -> Result<u64, MemFault> {
        self.load(addr, 8, PERM_R, AccessKind::Read)
    }
    fn store8(&mut self, addr: u64, value: u8) -> Result<(), MemFault> {
        self.store(addr, 1, value.into())
    }
    fn store16(&mut self, addr: u64, value: u16) -> Result<(), MemFault> {
        self.store(addr, 2, value.into())
    }
    fn store32(&mut self, addr: u64, value: u32) -> Result<(), MemFault> {
        self.store(addr, 4, value.into())
    }
    fn store64(&mut self, addr: u64, value: u64) -> Result<(), MemFault> {
        self.store(addr, 8, value)
    }
    fn fetch16(&self, addr: u64) -> Result<u16, MemFault> {
        Ok(self.load(addr, 2, PERM_X, AccessKind::Fetch)? as u16)
    }

    fn amo32(&mut self, addr: u64, op: AmoOp, src: u32) -> Result<u32, MemFault> {
        let p = self.amo_target(addr, 4)?;
        if !aligned(p, 4) {
            return Ok(self.rmw_unaligned(p, 4, |old| op.apply32(old as u32, src).into())? as u32);
        }
        // SAFETY: `p` is aligned and inside the guest space (`amo_target`), valid for
        // reads and writes, accessed by others only atomically (the constructors'
        // contract). The signed and unsigned views are the same size.
        let old = unsafe {
            let u = AtomicU32::from_ptr(p.cast());
            let s = AtomicI32::from_ptr(p.cast());
            match op {
                AmoOp::Swap => u.swap(src, SC),
                AmoOp::Add => u.fetch_add(src, SC),
                AmoOp::Xor => u.fetch_xor(src, SC),
                AmoOp::And => u.fetch_and(src, SC),
                AmoOp::Or => u.fetch_or(src, SC),
                AmoOp::Min => s.fetch_min(src as i32, SC) as u32,
                AmoOp::Max => s.fetch_max(src as i32, SC) as u32,
                AmoOp::Minu => u.fetch_min(src, SC),
                AmoOp::Maxu => u.fetch_max(src, SC),
            }
        };
        Ok(old)
    }

    fn amo64(&mut self, addr: u64, op: AmoOp, src: u64) -> Result<u64, MemFault> {
        let p = self.amo_target(addr, 8)?;
        if !aligned(p, 8) {
            return self.rmw_unaligned(p, 8, |old| op.apply64(old, src));
        }
        // SAFETY: as in `amo32`.
        let old = unsafe {
            let u = AtomicU64::from_ptr(p.cast());
            let s = AtomicI64::from_ptr(p.cast());
            match op {
                AmoOp::Swap => u.swap(src, SC),
                AmoOp::Add => u.fetch_add(src, SC),
                AmoOp::Xor => u.fetch_xor(src, SC),
                AmoOp::And => u.fetch_and(src, SC),
                AmoOp::Or => u.fetch_or(src, SC),
                AmoOp::Min => s.fetch_min(src as i64, SC) as u64,
                AmoOp::Max => s.fetch_max(src as i64, SC) as u64,
                AmoOp::Minu => u.fetch_min(src, SC),
                AmoOp::Maxu => u.fetch_max(src, SC),
            }
        };
        Ok(old)
    }

    fn cas32(&mut self, addr: u64, expected: u32, new: u32) -> Result<bool, MemFault> {
        let p = self.cas_target(addr, 4)?;
        if !aligned(p, 4) {
            return self.cas_unaligned(p, 4, expected.into(), new.into());
        }
        // SAFETY: as in `amo32`. The word is read without a read-permission check, as
        // `Memory::cas32` specifies: host memory behind a writable page is readable.
        let a = unsafe { AtomicU32::from_ptr(p.cast()) };
        Ok(a.compare_exchange(expected, new, SC, SC).is_ok())
    }

    fn cas64(&mut self, addr: u64, expected: u64, new: u64) -> Result<bool, MemFault> {
        let p = self.cas_target(addr, 8)?;
        if !aligned(p, 8) {
            return self.cas_unaligned(p, 8, expected, new);
        }
        // SAFETY: as in `cas32`.
        let a = unsafe { AtomicU64::from_ptr(p.cast()) };
        Ok(a.compare_exchange(expected, new, SC, SC).is_ok())
    }
}

impl GuestView<'_> {
    /// An AMO on a guest-aligned word whose *host* address is misaligned. Only a view
    /// from [`GuestView::new`] over a misaligned buffer can get here (the engine's guest
    /// space is page-aligned), and that memory belongs to this thread alone, so a plain
    /// read-modify-write is atomic enough.
    #[cold]
    fn rmw_unaligned(
        &mut self,
        p: *mut u8,
        len: usize,
        f: impl FnOnce(u64) -> u64,
    ) -> Result<u64, MemFault> {
        // SAFETY: `p` came from `amo_target` for `len` bytes: inside the guest space.
        let old = unsafe { read_host(p, len) };
        // SAFETY: as above.
        unsafe { write_host(p, len, f(old)) };
        Ok(old)
    }

    /// [`Memory::cas32`]/[`Memory::cas64`] on a misaligned host address (see
    /// [`GuestView::rmw_unaligned`]).
    #[cold]
    fn cas_unaligned(
        &mut self,
        p: *mut u8,
        len: usize,
        expected: u64,
        new: u64,
    ) -> Result<bool, MemFault> {
        // SAFETY: `p` came from `cas_target` for `len` bytes: inside the guest space.
        let old = unsafe { read_host(p, len) };
        if old != expected {
            return Ok(false);
        }
        // SAFETY: as above.
        unsafe { write_host(p, len, new) };
        Ok(true)
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
/// `ctx` must point to a valid [`JitContext`] that nothing else accesses during the
/// call, whose `mem_base`, `guest_size` and `perms` satisfy the contract of
/// [`GuestView::from_raw`] for the duration of the call (other threads may run guest
/// code on the same memory, atomically or from translated code).
pub unsafe extern "C" fn flat_exec_one(
    ctx: *mut JitContext,
    pc: u64,
    raw: u32,
    retired: u64,
) -> u64 {
    // SAFETY: the caller guarantees `ctx` is valid and not otherwise accessed.
    let ctx = unsafe { &mut *ctx };
    // SAFETY: the caller guarantees the memory and the table satisfy `from_raw`'s
    // contract while this call runs (translated code on this thread is suspended in it).
    let mut view = unsafe { GuestView::from_raw(ctx.mem_base, ctx.guest_size, ctx.perms) };
    exec_one_with(ctx, &mut view, pc, raw, retired)
}

/// A helper table whose `exec_one` is [`flat_exec_one`].
pub static FLAT_HELPERS: HelperTable = HelperTable {
    exec_one: flat_exec_one,
};
