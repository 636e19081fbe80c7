//! Guest memory: the sandbox that holds the guest's whole address space.
//!
//! **Layout.** One contiguous host reservation covers guest addresses `[0, GUEST_SPACE)`
//! (mmap `PROT_READ|PROT_WRITE`, `MAP_PRIVATE|MAP_ANONYMOUS|MAP_NORESERVE`, so untouched
//! pages cost nothing). Guest address `a` lives at host address `base + a`. Right below it,
//! in the same reservation (at `base + PERMS_OFFSET`, so translated code reaches both
//! through one register), a software page table holds one permission byte per 4 KiB guest page ([`PERM_R`],
//! [`PERM_W`], [`PERM_X`], plus [`PERM_MAPPED`] so that a `PROT_NONE` mapping is still
//! "in use"); 0 means unmapped. On hosts with strict overcommit accounting, where the
//! writable reservation is refused, the reservation starts `PROT_NONE` and ranges are
//! opened on the host as the guest maps them ([`GuestMemory::new_commit_on_map`]).
//!
//! **Invariants.**
//! - Every access checks `addr + size <= GUEST_SPACE` (without overflow) and the
//!   permission of every page it touches (both pages when it crosses a boundary) before
//!   touching `base + addr`. So the guest can never reach host memory outside its space,
//!   faults are precise, and nothing depends on host signals.
//! - Host pages of an unmapped guest page read as zero the next time they are mapped
//!   (`madvise(MADV_DONTNEED)` on unmap).
//! - Translated code inlines a cheaper form of the same check: the table also carries
//!   `translate`'s fast-path bits (page *and next page* readable / writable) and a
//!   sentinel entry past the last page, refreshed on every permission change, so one
//!   byte test covers bounds, page crossing and permission. [`GuestMemory::base_ptr`],
//!   [`GuestMemory::perm_table_ptr`], [`PAGE_SHIFT`] and the `PERM_*` bits are the layout
//!   it relies on.
//!
//! This is one of the two modules of the engine with `unsafe` (the other is `host`).

use std::ptr::NonNull;

use rv64::{AccessKind, MemFault, Memory};

/// Size of the guest address space in bytes: guest addresses are `[0, GUEST_SPACE)`.
pub const GUEST_SPACE: u64 = 1 << 34;
/// One past the highest user address a riscv64 Linux process may name (Sv48). Ranges
/// between [`GUEST_SPACE`] and this limit are valid arguments (munmap of them succeeds,
/// an empty buffer there is fine) but are never mapped.
pub const USER_LIMIT: u64 = 1 << 47;
/// log2 of the guest page size.
pub const PAGE_SHIFT: u32 = 12;
/// Guest page size (also the host page size the reservation is managed in).
pub const PAGE_SIZE: u64 = 1 << PAGE_SHIFT;
/// Number of guest pages, i.e. entries in the permission table.
pub const NUM_PAGES: usize = (GUEST_SPACE >> PAGE_SHIFT) as usize;
/// Bytes reserved for the permission table (its `NUM_PAGES + 1` entries, page aligned),
/// right below guest address 0.
const PERMS_BYTES: usize = (NUM_PAGES + 1).next_multiple_of(PAGE_SIZE as usize);
/// Where the permission table starts relative to [`GuestMemory::base_ptr`] (a constant
/// the translator builds into its code).
pub const PERMS_OFFSET: i32 = -(PERMS_BYTES as i32);
/// The whole host reservation: table, then guest space.
const RESERVATION: usize = PERMS_BYTES + GUEST_SPACE as usize;
/// Permission bit: readable.
pub const PERM_R: u8 = 1;
/// Permission bit: writable.
pub const PERM_W: u8 = 2;
/// Permission bit: executable (instruction fetch).
pub const PERM_X: u8 = 4;
/// The page belongs to a mapping (set even for `PROT_NONE` mappings).
pub const PERM_MAPPED: u8 = 8;
/// Any access at all: a page with one of these counts as guest memory in use.
const ACCESS: u8 = PERM_R | PERM_W | PERM_X;

/// Rounds `x` down to a page boundary.
pub const fn page_floor(x: u64) -> u64 {
    x & !(PAGE_SIZE - 1)
}

/// Rounds `x` up to a page boundary (`None` on overflow).
pub const fn page_ceil(x: u64) -> Option<u64> {
    match x.checked_add(PAGE_SIZE - 1) {
        Some(v) => Some(v & !(PAGE_SIZE - 1)),
        None => None,
    }
}

/// Converts Linux `PROT_*` bits (`PROT_READ=1, PROT_WRITE=2, PROT_EXEC=4`, as on
/// riscv64) to the permission byte of a mapped page.
pub const fn perm_from_prot(prot: u64) -> u8 {
    PERM_MAPPED | (prot & 7) as u8
}

/// Failure to set up or change the guest address space.
#[derive(Debug, thiserror::Error)]
pub enum MemoryError {
    #[error("cannot reserve {GUEST_SPACE} bytes of address space for the guest: {0}")]
    Reserve(std::io::Error),
    #[error("guest range {addr:#x}+{len:#x} is not page aligned or lies outside the guest space")]
    BadRange { addr: u64, len: u64 },
    #[error("guest range {addr:#x}+{len:#x} is not mapped")]
    NotMapped { addr: u64, len: u64 },
    #[error("cannot commit host memory for guest range {addr:#x}+{len:#x}: {err}")]
    Commit {
        addr: u64,
        len: u64,
        err: std::io::Error,
    },
}

/// A checked host view of a guest range, valid while the borrow of the memory it came
/// from lasts. Built only by [`GuestMemory`] after the permission check.
#[derive(Clone, Copy)]
pub struct HostRange<'a> {
    ptr: *mut u8,
    len: usize,
    _mem: std::marker::PhantomData<&'a mut GuestMemory>,
}

impl HostRange<'_> {
    /// Host address of the first byte.
    pub fn ptr(&self) -> *mut u8 {
        self.ptr
    }
    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }
    /// True when the range is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// The guest's address space. See the module documentation for the layout.
pub struct GuestMemory {
    /// Guest address 0; the reservation starts `PERMS_BYTES` lower, with the table.
    base: NonNull<u8>,
    /// Host pages start `PROT_NONE` and are opened as they are mapped (see
    /// [`GuestMemory::new_commit_on_map`]).
    commit_on_map: bool,
    /// Pages mapped with some access (not `PROT_NONE`): the guest memory that counts
    /// against its bound, kept exact by `set_perms`.
    accessible_pages: u64,
}

impl std::fmt::Debug for GuestMemory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mapped = self.perms().iter().filter(|&&p| p != 0).count();
        f.debug_struct("GuestMemory")
            .field("base", &self.base)
            .field("mapped_pages", &mapped)
            .finish()
    }
}

// SAFETY: `GuestMemory` exclusively owns its reservation (nothing else holds `base`),
// and all access goes through `&self`/`&mut self`, so moving it to another thread is as
// safe as moving a `Vec<u8>`. It is deliberately not `Sync`: loads through `&self` and
// host-kernel writes into `HostRange`s must not race.
unsafe impl Send for GuestMemory {}

impl Drop for GuestMemory {
    fn drop(&mut self) {
        // SAFETY: `base - PERMS_BYTES` is the start of the `RESERVATION`-byte mapping
        // created in `reserve`, owned by this value; nothing borrowed from it outlives
        // `self`.
        unsafe {
            libc::munmap(self.base.as_ptr().sub(PERMS_BYTES).cast(), RESERVATION);
        }
    }
}

impl GuestMemory {
    /// Reserves the guest address space (nothing mapped yet).
    pub fn new() -> Result<Self, MemoryError> {
        match Self::reserve(libc::PROT_READ | libc::PROT_WRITE) {
            Ok(base) => Ok(Self::with_base(base, false)),
            // Hosts with strict overcommit accounting (vm.overcommit_memory=2) refuse a
            // writable reservation this large even with MAP_NORESERVE; an inaccessible
            // one costs nothing there, and pages become writable as they are mapped.
            Err(_) => Self::new_commit_on_map(),
        }
    }

    /// Like [`GuestMemory::new`], but the host reservation starts inaccessible and each
    /// range is made readable and writable on the host when the guest maps it (and
    /// inaccessible again when unmapped). Used automatically when the eager reservation
    /// fails; guest-visible behaviour is identical.
    pub fn new_commit_on_map() -> Result<Self, MemoryError> {
        Ok(Self::with_base(Self::reserve(libc::PROT_NONE)?, true))
    }

    fn with_base(base: NonNull<u8>, commit_on_map: bool) -> Self {
        GuestMemory {
            base,
            commit_on_map,
            accessible_pages: 0,
        }
    }

    /// Reserves the table and the guest space; returns guest address 0. The table part
    /// is always readable and writable (fresh anonymous memory: all entries 0,
    /// unmapped, including the sentinel); the guest part gets `prot`.
    fn reserve(prot: libc::c_int) -> Result<NonNull<u8>, MemoryError> {
        // SAFETY: an anonymous mapping at a kernel-chosen address touches no existing
        // memory; the result is checked below.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                RESERVATION,
                prot,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(MemoryError::Reserve(std::io::Error::last_os_error()));
        }
        let Some(start) = NonNull::new(p.cast::<u8>()) else {
            return Err(MemoryError::Reserve(std::io::Error::other(
                "mmap returned null",
            )));
        };
        let table_rw = prot == libc::PROT_READ | libc::PROT_WRITE
            // SAFETY: the first PERMS_BYTES of the reservation just made, which nothing
            // else references.
            || unsafe {
                libc::mprotect(
                    start.as_ptr().cast(),
                    PERMS_BYTES,
                    libc::PROT_READ | libc::PROT_WRITE,
                )
            } == 0;
        if !table_rw {
            let err = std::io::Error::last_os_error();
            // SAFETY: unmaps the reservation just made; nothing references it.
            unsafe {
                libc::munmap(start.as_ptr().cast(), RESERVATION);
            }
            return Err(MemoryError::Reserve(err));
        }
        // SAFETY: PERMS_BYTES < RESERVATION, so the result stays inside the reservation.
        Ok(unsafe { start.add(PERMS_BYTES) })
    }

    /// The permission table (see [`GuestMemory::perm_table_ptr`]).
    fn perms(&self) -> &[u8] {
        // SAFETY: the `NUM_PAGES + 1 <= PERMS_BYTES` bytes below `base` are the table
        // part of the reservation this value owns, readable and writable for its whole
        // life; borrowing `self` keeps any mutable borrow out.
        unsafe { std::slice::from_raw_parts(self.perm_table_ptr(), NUM_PAGES + 1) }
    }

    fn perms_mut(&mut self) -> &mut [u8] {
        // SAFETY: as in `perms`, with `&mut self` making the borrow exclusive.
        unsafe {
            std::slice::from_raw_parts_mut(self.base.as_ptr().sub(PERMS_BYTES), NUM_PAGES + 1)
        }
    }

    /// In commit-on-map mode, sets the host protection of a validated page range.
    fn host_protect(&mut self, addr: u64, len: u64, accessible: bool) -> Result<(), MemoryError> {
        if !self.commit_on_map || len == 0 {
            return Ok(());
        }
        let prot = if accessible {
            libc::PROT_READ | libc::PROT_WRITE
        } else {
            libc::PROT_NONE
        };
        // SAFETY: `[addr, addr+len)` was validated by `page_range` (page aligned, inside
        // the reservation this value owns); changing its protection affects no other
        // memory, and no Rust reference into it is alive (we hold `&mut self`).
        let r = unsafe {
            libc::mprotect(
                self.base.as_ptr().add(addr as usize).cast(),
                len as usize,
                prot,
            )
        };
        if r != 0 {
            return Err(MemoryError::Commit {
                addr,
                len,
                err: std::io::Error::last_os_error(),
            });
        }
        Ok(())
    }

    /// Host address of guest address 0. For the JIT: guest `a` is at `base_ptr() + a`
    /// once the checks of the module documentation passed.
    pub fn base_ptr(&self) -> *mut u8 {
        self.base.as_ptr()
    }

    /// The permission table: `NUM_PAGES + 1` bytes, entry `addr >> PAGE_SHIFT`, the last
    /// one a sentinel that is always 0. Entries carry `translate`'s fast-path bits
    /// (`PERM_FAST_R`/`PERM_FAST_W`: "this page and the next have the permission"), kept
    /// current on every change, which is the layout `translate::JitContext` documents.
    pub fn perm_table_ptr(&self) -> *const u8 {
        // SAFETY: stays inside the reservation (see `reserve`).
        unsafe { self.base.as_ptr().sub(PERMS_BYTES) }
    }

    /// Bytes of guest memory mapped with some access (`PROT_NONE` mappings excluded):
    /// what `--max-memory` bounds.
    pub fn accessible_bytes(&self) -> u64 {
        self.accessible_pages << PAGE_SHIFT
    }

    /// Bytes of the pages in the page-aligned range that are mapped with some access
    /// (0 for a range outside the space).
    pub fn accessible_in(&self, addr: u64, len: u64) -> u64 {
        match Self::page_range(addr, len.min(GUEST_SPACE.saturating_sub(addr))) {
            Ok(r) => {
                (self.perms()[r].iter().filter(|&&p| p & ACCESS != 0).count() as u64) << PAGE_SHIFT
            }
            Err(_) => 0,
        }
    }

    /// The mapped ranges, ascending: `(start, end, perm)` for each run of consecutive
    /// pages with the same `PERM_*` bits (what `/proc/self/maps` shows of the guest).
    pub fn mapped_runs(&self) -> Vec<(u64, u64, u8)> {
        const BITS: u8 = PERM_R | PERM_W | PERM_X | PERM_MAPPED;
        let table = &self.perms()[..NUM_PAGES];
        let mut out = Vec::new();
        let mut i = 0;
        while i < table.len() {
            let Some(start) = table[i..].iter().position(|&p| p & BITS != 0) else {
                break;
            };
            let start = i + start;
            let perm = table[start] & BITS;
            let len = table[start..]
                .iter()
                .position(|&p| p & BITS != perm)
                .unwrap_or(table.len() - start);
            out.push((
                (start as u64) << PAGE_SHIFT,
                ((start + len) as u64) << PAGE_SHIFT,
                perm,
            ));
            i = start + len;
        }
        out
    }

    /// Permission byte of the page holding `addr` (`PERM_*` bits; 0 when outside the
    /// space).
    pub fn page_perm(&self, addr: u64) -> u8 {
        self.perms()
            .get((addr >> PAGE_SHIFT) as usize)
            .copied()
            .unwrap_or(0)
            & (PERM_R | PERM_W | PERM_X | PERM_MAPPED)
    }

    /// Sets the permission bytes of the pages `r` with `f` and refreshes the fast-path
    /// bits of those pages and of the page before them (whose "next page" changed).
    fn set_perms(&mut self, r: std::ops::Range<usize>, f: impl Fn(u8) -> u8) {
        let mut before = 0u64;
        let mut after = 0u64;
        for p in &mut self.perms_mut()[r.clone()] {
            before += u64::from(*p & ACCESS != 0);
            *p = f(*p);
            after += u64::from(*p & ACCESS != 0);
        }
        self.accessible_pages = self.accessible_pages + after - before;
        translate::context::update_fast_bits(self.perms_mut(), r.start.saturating_sub(1)..r.end);
    }

    fn page_range(addr: u64, len: u64) -> Result<std::ops::Range<usize>, MemoryError> {
        let bad = MemoryError::BadRange { addr, len };
        if !addr.is_multiple_of(PAGE_SIZE) || !len.is_multiple_of(PAGE_SIZE) {
            return Err(bad);
        }
        let end = addr.checked_add(len).ok_or(bad)?;
        if end > GUEST_SPACE {
            return Err(MemoryError::BadRange { addr, len });
        }
        Ok((addr >> PAGE_SHIFT) as usize..(end >> PAGE_SHIFT) as usize)
    }

    /// True when no page of the page-aligned range `[addr, addr+len)` is mapped and the
    /// range lies inside the guest space.
    pub fn is_free(&self, addr: u64, len: u64) -> bool {
        match Self::page_range(addr, len) {
            Ok(r) => self.perms()[r].iter().all(|&p| p == 0),
            Err(_) => false,
        }
    }

    /// True when every page of the page-aligned range is mapped.
    pub fn is_mapped(&self, addr: u64, len: u64) -> bool {
        match Self::page_range(addr, len) {
            Ok(r) => self.perms()[r].iter().all(|&p| p & PERM_MAPPED != 0),
            Err(_) => false,
        }
    }

    /// True when any page of the page-aligned range is executable (so code translated
    /// from it may exist and must be invalidated when it changes).
    pub fn any_exec(&self, addr: u64, len: u64) -> bool {
        match Self::page_range(addr, len) {
            Ok(r) => self.perms()[r].iter().any(|&p| p & PERM_X != 0),
            Err(_) => false,
        }
    }

    /// Maps the page-aligned range with permission byte `perm` (`PERM_MAPPED` is added).
    /// Pages that were unmapped read as zero.
    pub fn map(&mut self, addr: u64, len: u64, perm: u8) -> Result<(), MemoryError> {
        let r = Self::page_range(addr, len)?;
        self.host_protect(addr, len, true)?;
        self.set_perms(r, |_| perm | PERM_MAPPED);
        Ok(())
    }

    /// Maps the page-aligned range adding `perm` to whatever permissions its pages
    /// already have (the loader, where two segments share a page).
    pub fn map_union(&mut self, addr: u64, len: u64, perm: u8) -> Result<(), MemoryError> {
        let r = Self::page_range(addr, len)?;
        self.host_protect(addr, len, true)?;
        self.set_perms(r, |p| p | perm | PERM_MAPPED);
        Ok(())
    }

    /// Unmaps the page-aligned range and drops its contents, so that a later mapping
    /// reads zeros. Unmapped pages in the range are fine (as with Linux `munmap`).
    pub fn unmap(&mut self, addr: u64, len: u64) -> Result<(), MemoryError> {
        let r = Self::page_range(addr, len)?;
        self.set_perms(r, |_| 0);
        self.discard(addr, len);
        // Giving the commit charge back cannot meaningfully fail; the guest-visible
        // state (unmapped) is already right.
        let _ = self.host_protect(addr, len, false);
        Ok(())
    }

    /// Zeroes the contents of a page-aligned, already validated range without changing
    /// its permissions (`madvise(MADV_DONTNEED)` of a private anonymous mapping).
    pub fn discard(&mut self, addr: u64, len: u64) {
        if len == 0 || Self::page_range(addr, len).is_err() {
            return;
        }
        // SAFETY: `[addr, addr+len)` is page aligned and inside the reservation (checked
        // by `page_range`); MADV_DONTNEED on a private anonymous mapping only replaces the
        // pages with zero-fill-on-demand ones. No Rust reference into guest memory is
        // alive (we hold `&mut self`).
        unsafe {
            libc::madvise(
                self.base.as_ptr().add(addr as usize).cast(),
                len as usize,
                libc::MADV_DONTNEED,
            );
        }
    }

    /// Changes the permissions of a page-aligned range; every page must be mapped.
    pub fn protect(&mut self, addr: u64, len: u64, perm: u8) -> Result<(), MemoryError> {
        let r = Self::page_range(addr, len)?;
        if !self.perms()[r.clone()]
            .iter()
            .all(|&p| p & PERM_MAPPED != 0)
        {
            return Err(MemoryError::NotMapped { addr, len });
        }
        self.set_perms(r, |_| perm | PERM_MAPPED);
        Ok(())
    }

    /// Finds the highest page-aligned free range of `len` bytes lying inside
    /// `[lo, hi)`, scanning down from `hi`.
    pub fn find_free_top_down(&self, len: u64, lo: u64, hi: u64) -> Option<u64> {
        let len = page_ceil(len)?;
        if len == 0 {
            return None;
        }
        let hi = page_floor(hi.min(GUEST_SPACE));
        let lo = page_ceil(lo)?;
        let need = (len >> PAGE_SHIFT) as usize;
        let lo_page = (lo >> PAGE_SHIFT) as usize;
        let mut run = 0usize;
        let mut p = (hi >> PAGE_SHIFT) as usize;
        while p > lo_page {
            p -= 1;
            if self.perms()[p] == 0 {
                run += 1;
                if run == need {
                    return Some((p as u64) << PAGE_SHIFT);
                }
            } else {
                run = 0;
            }
        }
        None
    }

    /// Checks that the guest range `[addr, addr+len)` lies in the guest space and every
    /// page it touches has all permission bits in `need`; returns the first faulting
    /// guest address otherwise. An empty range touches nothing and only needs a
    /// plausible user address (below [`USER_LIMIT`]), as in Linux.
    #[inline]
    pub fn check_range(&self, addr: u64, len: u64, need: u8) -> Result<(), u64> {
        if len == 0 {
            return if addr <= USER_LIMIT {
                Ok(())
            } else {
                Err(addr)
            };
        }
        let end = match addr.checked_add(len) {
            Some(e) if e <= GUEST_SPACE => e,
            _ => return Err(addr),
        };
        let first = (addr >> PAGE_SHIFT) as usize;
        let last = ((end - 1) >> PAGE_SHIFT) as usize;
        for (i, &p) in self.perms()[first..=last].iter().enumerate() {
            if p & need != need {
                let page = ((first + i) as u64) << PAGE_SHIFT;
                return Err(page.max(addr));
            }
        }
        Ok(())
    }

    /// The host view of a range `check_range` accepted. An empty range gets the base
    /// address, so that the pointer handed to the host kernel always lies inside the
    /// reservation (the kernel touches no byte of it either way).
    fn view(&self, addr: u64, len: u64) -> HostRange<'_> {
        let ptr = if len == 0 {
            self.base.as_ptr()
        } else {
            self.base.as_ptr().wrapping_add(addr as usize)
        };
        HostRange {
            ptr,
            len: len as usize,
            _mem: std::marker::PhantomData,
        }
    }

    /// A checked host view of a guest range for the host kernel (EFAULT when the check
    /// fails). `need` is the permission the guest would need (`PERM_W` when the kernel
    /// writes into the buffer).
    pub fn host_range(&mut self, addr: u64, len: u64, need: u8) -> Result<HostRange<'_>, u64> {
        self.check_range(addr, len, need)?;
        Ok(self.view(addr, len))
    }

    /// Several checked host views at once (for readv/writev). Fails with the first bad
    /// guest address.
    pub fn host_ranges(
        &mut self,
        ranges: &[(u64, u64)],
        need: u8,
    ) -> Result<Vec<HostRange<'_>>, u64> {
        for &(addr, len) in ranges {
            self.check_range(addr, len, need)?;
        }
        Ok(ranges
            .iter()
            .map(|&(addr, len)| self.view(addr, len))
            .collect())
    }

    /// Copies guest bytes out; requires read permission.
    pub fn read_bytes(&self, addr: u64, buf: &mut [u8]) -> Result<(), u64> {
        self.check_range(addr, buf.len() as u64, PERM_R)?;
        if buf.is_empty() {
            return Ok(());
        }
        // SAFETY: the range was checked to lie inside the reservation; `buf` is host
        // memory outside it, so the two cannot overlap.
        unsafe {
            std::ptr::copy_nonoverlapping(
                self.base.as_ptr().add(addr as usize),
                buf.as_mut_ptr(),
                buf.len(),
            );
        }
        Ok(())
    }

    /// Copies bytes into guest memory; requires write permission.
    pub fn write_bytes(&mut self, addr: u64, data: &[u8]) -> Result<(), u64> {
        self.check_range(addr, data.len() as u64, PERM_W)?;
        self.copy_in(addr, data);
        Ok(())
    }

    /// Copies bytes into mapped guest pages whatever their permissions (the loader
    /// filling a read-only segment, the kernel building the stack).
    pub fn write_bytes_privileged(&mut self, addr: u64, data: &[u8]) -> Result<(), u64> {
        self.check_range(addr, data.len() as u64, PERM_MAPPED)?;
        self.copy_in(addr, data);
        Ok(())
    }

    fn copy_in(&mut self, addr: u64, data: &[u8]) {
        if data.is_empty() {
            return;
        }
        // SAFETY: callers checked `[addr, addr+len)` lies inside the reservation; `data`
        // is host memory outside it.
        unsafe {
            std::ptr::copy_nonoverlapping(
                data.as_ptr(),
                self.base.as_ptr().add(addr as usize),
                data.len(),
            );
        }
    }

    /// Copies `len` bytes inside guest memory (for mremap); both ranges must be mapped.
    pub fn copy_within(&mut self, from: u64, to: u64, len: u64) -> Result<(), u64> {
        self.check_range(from, len, PERM_MAPPED)?;
        self.check_range(to, len, PERM_MAPPED)?;
        if len == 0 {
            return Ok(());
        }
        // SAFETY: both ranges were checked to lie inside the reservation; `copy` allows
        // overlap.
        unsafe {
            std::ptr::copy(
                self.base.as_ptr().add(from as usize),
                self.base.as_ptr().add(to as usize),
                len as usize,
            );
        }
        Ok(())
    }

    /// Moves the contents of the mapped page-aligned range at `from` to the mapped,
    /// non-overlapping range at `to` (for mremap): afterwards `to` holds what `from`
    /// held and `from` reads as zeros. The host kernel moves the pages themselves, so
    /// pages the guest never touched stay unpopulated (a copy would commit every one of
    /// them: growing a 256 MiB realloc'd block would cost 256 MiB of host memory).
    pub fn move_pages(&mut self, from: u64, to: u64, len: u64) -> Result<(), MemoryError> {
        let src = Self::page_range(from, len)?;
        let dst = Self::page_range(to, len)?;
        if src.start < dst.end && dst.start < src.end {
            return Err(MemoryError::BadRange { addr: to, len });
        }
        let mapped =
            |r: std::ops::Range<usize>| self.perms()[r].iter().all(|&p| p & PERM_MAPPED != 0);
        if !mapped(src) || !mapped(dst) {
            return Err(MemoryError::NotMapped { addr: from, len });
        }
        if len == 0 {
            return Ok(());
        }
        // SAFETY: both ranges were validated above: page aligned, inside the
        // reservation this value owns, disjoint. MREMAP_FIXED replaces the host pages
        // of the target range (part of our private anonymous reservation) with the
        // source's; MREMAP_DONTUNMAP leaves the source range mapped with the same
        // protection, its pages now empty (zero on next touch), so the reservation
        // keeps no hole another mapping could fall into. No Rust reference into guest
        // memory is alive (we hold `&mut self`).
        let r = unsafe {
            libc::mremap(
                self.base.as_ptr().add(from as usize).cast(),
                len as usize,
                len as usize,
                libc::MREMAP_MAYMOVE | libc::MREMAP_FIXED | libc::MREMAP_DONTUNMAP,
                self.base.as_ptr().add(to as usize).cast::<libc::c_void>(),
            )
        };
        if r == libc::MAP_FAILED {
            // Kernels before 5.7 lack MREMAP_DONTUNMAP (and a host may run out of
            // mappings): copy instead, which is correct, only costlier.
            self.copy_within(from, to, len)
                .map_err(|_| MemoryError::NotMapped { addr: from, len })?;
            self.discard(from, len);
        }
        Ok(())
    }

    /// Reads a NUL-terminated string of at most `max` bytes (without the NUL). `Err`
    /// carries the faulting address, or `None` when no NUL came within `max` bytes.
    pub fn read_cstr(&self, addr: u64, max: usize) -> Result<Vec<u8>, Option<u64>> {
        let mut out = Vec::new();
        let mut a = addr;
        while out.len() < max {
            let b = self.load8(a).map_err(|f| Some(f.addr))?;
            if b == 0 {
                return Ok(out);
            }
            out.push(b);
            a = a.wrapping_add(1);
        }
        Err(None)
    }

    #[inline(always)]
    fn check_access(
        &self,
        addr: u64,
        size: u64,
        need: u8,
        kind: AccessKind,
    ) -> Result<*mut u8, MemFault> {
        let fault = |addr| MemFault { addr, kind };
        let end = addr.wrapping_add(size);
        if end > GUEST_SPACE || end < addr {
            return Err(fault(addr));
        }
        let first = (addr >> PAGE_SHIFT) as usize;
        let Some(&p) = self.perms().get(first) else {
            return Err(fault(addr));
        };
        if p & need == 0 {
            return Err(fault(addr));
        }
        let last = ((end - 1) >> PAGE_SHIFT) as usize;
        if last != first {
            match self.perms().get(last) {
                Some(&q) if q & need != 0 => {}
                _ => return Err(fault((last as u64) << PAGE_SHIFT)),
            }
        }
        Ok(self.base.as_ptr().wrapping_add(addr as usize))
    }
}

macro_rules! load_impl {
    ($name:ident, $t:ty, $kind:expr, $perm:expr) => {
        #[inline]
        fn $name(&self, addr: u64) -> Result<$t, MemFault> {
            let p = self.check_access(addr, size_of::<$t>() as u64, $perm, $kind)?;
            // SAFETY: `check_access` proved `[addr, addr+size)` lies inside the
            // reservation and is readable; unaligned reads are allowed.
            Ok(<$t>::from_le(unsafe { p.cast::<$t>().read_unaligned() }))
        }
    };
}

macro_rules! store_impl {
    ($name:ident, $t:ty) => {
        #[inline]
        fn $name(&mut self, addr: u64, value: $t) -> Result<(), MemFault> {
            let p = self.check_access(addr, size_of::<$t>() as u64, PERM_W, AccessKind::Write)?;
            // SAFETY: `check_access` proved `[addr, addr+size)` lies inside the
            // reservation and is writable; unaligned writes are allowed.
            unsafe { p.cast::<$t>().write_unaligned(value.to_le()) };
            Ok(())
        }
    };
}

impl Memory for GuestMemory {
    load_impl!(load8, u8, AccessKind::Read, PERM_R);
    load_impl!(load16, u16, AccessKind::Read, PERM_R);
    load_impl!(load32, u32, AccessKind::Read, PERM_R);
    load_impl!(load64, u64, AccessKind::Read, PERM_R);
    store_impl!(store8, u8);
    store_impl!(store16, u16);
    store_impl!(store32, u32);
    store_impl!(store64, u64);
    load_impl!(fetch16, u16, AccessKind::Fetch, PERM_X);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mem() -> GuestMemory {
        GuestMemory::new().expect("reserve guest space")
    }

    #[test]
    fn unmapped_memory_faults_on_every_access_kind() {
        let mut m = mem();
        assert_eq!(
            m.load8(0x1000),
            Err(MemFault {
                addr: 0x1000,
                kind: AccessKind::Read
            })
        );
        assert_eq!(
            m.store32(0x2000, 1),
            Err(MemFault {
                addr: 0x2000,
                kind: AccessKind::Write
            })
        );
        assert_eq!(
            m.fetch16(0x3000),
            Err(MemFault {
                addr: 0x3000,
                kind: AccessKind::Fetch
            })
        );
    }

    #[test]
    fn mapped_memory_reads_back_little_endian_values() {
        let mut m = mem();
        m.map(0x10000, 0x1000, PERM_R | PERM_W).unwrap();
        m.store64(0x10008, 0x1122_3344_5566_7788).unwrap();
        assert_eq!(m.load64(0x10008), Ok(0x1122_3344_5566_7788));
        assert_eq!(m.load8(0x10008), Ok(0x88));
        assert_eq!(m.load16(0x1000e), Ok(0x1122));
        assert_eq!(m.load32(0x10009), Ok(0x2233_4455_6677_u64 as u32));
    }

    #[test]
    fn access_crossing_into_unmapped_page_faults_at_that_page() {
        let mut m = mem();
        m.map(0x10000, 0x1000, PERM_R | PERM_W).unwrap();
        assert_eq!(
            m.load64(0x10ffc),
            Err(MemFault {
                addr: 0x11000,
                kind: AccessKind::Read
            })
        );
        assert_eq!(
            m.store32(0x10ffe, 7),
            Err(MemFault {
                addr: 0x11000,
                kind: AccessKind::Write
            })
        );
        // A crossing access between two mapped pages works.
        m.map(0x11000, 0x1000, PERM_R | PERM_W).unwrap();
        m.store64(0x10ffc, 0xaabb_ccdd_eeff_0011).unwrap();
        assert_eq!(m.load64(0x10ffc), Ok(0xaabb_ccdd_eeff_0011));
        assert_eq!(m.load32(0x11000), Ok(0xaabb_ccdd));
    }

    #[test]
    fn write_to_read_only_page_faults_but_read_succeeds() {
        let mut m = mem();
        m.map(0x20000, 0x2000, PERM_R).unwrap();
        assert_eq!(m.load32(0x20000), Ok(0));
        assert_eq!(
            m.store8(0x20001, 1),
            Err(MemFault {
                addr: 0x20001,
                kind: AccessKind::Write
            })
        );
    }

    #[test]
    fn fetch_needs_execute_permission() {
        let mut m = mem();
        m.map(0x20000, 0x1000, PERM_R | PERM_W).unwrap();
        assert!(m.fetch16(0x20000).is_err());
        m.protect(0x20000, 0x1000, PERM_R | PERM_X).unwrap();
        assert_eq!(m.fetch16(0x20000), Ok(0));
        assert!(m.store8(0x20000, 0).is_err());
    }

    #[test]
    fn accesses_at_or_past_the_end_of_the_space_fault_without_wrapping() {
        let mut m = mem();
        m.map(GUEST_SPACE - PAGE_SIZE, PAGE_SIZE, PERM_R | PERM_W)
            .unwrap();
        assert_eq!(m.load64(GUEST_SPACE - 8), Ok(0));
        assert!(m.load64(GUEST_SPACE - 4).is_err());
        assert!(m.load8(GUEST_SPACE).is_err());
        assert!(m.load64(u64::MAX - 3).is_err());
        assert!(m.store64(u64::MAX, 0).is_err());
        assert!(m.check_range(u64::MAX, 2, PERM_R).is_err());
    }

    #[test]
    fn commit_on_map_memory_behaves_like_eager_memory() {
        let mut m = GuestMemory::new_commit_on_map().unwrap();
        assert!(m.load8(0x10000).is_err());
        m.map(0x10000, 0x2000, PERM_R | PERM_W).unwrap();
        m.store64(0x10ffc, 0x0102_0304_0506_0708).unwrap();
        assert_eq!(m.load64(0x10ffc), Ok(0x0102_0304_0506_0708));
        m.unmap(0x10000, 0x2000).unwrap();
        m.map_union(0x10000, 0x1000, PERM_R).unwrap();
        assert_eq!(m.load64(0x10000), Ok(0));
    }

    #[test]
    fn unmap_then_map_reads_zeros() {
        let mut m = mem();
        m.map(0x30000, 0x1000, PERM_R | PERM_W).unwrap();
        m.store64(0x30000, 42).unwrap();
        m.unmap(0x30000, 0x1000).unwrap();
        assert!(m.load64(0x30000).is_err());
        m.map(0x30000, 0x1000, PERM_R | PERM_W).unwrap();
        assert_eq!(m.load64(0x30000), Ok(0));
    }

    #[test]
    fn prot_none_mapping_is_in_use_but_inaccessible() {
        let mut m = mem();
        m.map(0x40000, 0x1000, 0).unwrap();
        assert!(!m.is_free(0x40000, 0x1000));
        assert!(m.is_mapped(0x40000, 0x1000));
        assert!(m.load8(0x40000).is_err());
    }

    #[test]
    fn protect_of_unmapped_range_is_rejected() {
        let mut m = mem();
        m.map(0x40000, 0x1000, PERM_R).unwrap();
        assert!(m.protect(0x40000, 0x2000, PERM_R | PERM_W).is_err());
        assert_eq!(m.page_perm(0x40000), PERM_R | PERM_MAPPED);
    }

    #[test]
    fn find_free_top_down_skips_mapped_pages() {
        let mut m = mem();
        m.map(0x9000, 0x1000, PERM_R).unwrap();
        assert_eq!(m.find_free_top_down(0x1000, 0x1000, 0xa000), Some(0x8000));
        assert_eq!(m.find_free_top_down(0x2000, 0x1000, 0xb000), Some(0x7000));
        assert_eq!(m.find_free_top_down(0x3000, 0x8000, 0xb000), None);
    }

    #[test]
    fn move_pages_moves_contents_and_leaves_zeros_behind() {
        for mut m in [mem(), GuestMemory::new_commit_on_map().unwrap()] {
            m.map(0x10000, 0x3000, PERM_R | PERM_W).unwrap();
            m.map(0x40000, 0x3000, PERM_R | PERM_W).unwrap();
            m.store64(0x10008, 0x1234).unwrap();
            m.store64(0x12ff8, 0x5678).unwrap();
            m.store64(0x40000, 0x9999).unwrap();
            m.move_pages(0x10000, 0x40000, 0x3000).unwrap();
            assert_eq!(m.load64(0x40008), Ok(0x1234));
            assert_eq!(m.load64(0x42ff8), Ok(0x5678));
            assert_eq!(
                m.load64(0x40000),
                Ok(0),
                "the target's old contents are gone"
            );
            assert_eq!(m.load64(0x10008), Ok(0), "the source reads as zeros");
            // Overlapping or unmapped ranges are refused.
            assert!(m.move_pages(0x40000, 0x41000, 0x2000).is_err());
            assert!(m.move_pages(0x40000, 0x80000, 0x1000).is_err());
        }
    }

    #[test]
    fn check_range_reports_first_bad_address() {
        let mut m = mem();
        m.map(0x10000, 0x1000, PERM_R | PERM_W).unwrap();
        assert_eq!(m.check_range(0x10f00, 0x100, PERM_W), Ok(()));
        assert_eq!(m.check_range(0x10f00, 0x101, PERM_W), Err(0x11000));
        assert_eq!(m.check_range(0xff00, 0x200, PERM_R), Err(0xff00));
        assert_eq!(m.read_cstr(0x10000, 16), Ok(Vec::new()));
        m.write_bytes(0x10ffd, b"abc").unwrap();
        assert_eq!(m.read_cstr(0x10ffd, 16), Err(Some(0x11000)));
    }
}
