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
    /// Changes made outside guest code, while a log is on
    /// ([`GuestMemory::start_change_log`]).
    log: Option<Box<ChangeLog>>,
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
            log: None,
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
        self.mapped_page_runs()
            .into_iter()
            .map(|(first, end, perm)| {
                (
                    (first as u64) << PAGE_SHIFT,
                    (end as u64) << PAGE_SHIFT,
                    perm,
                )
            })
            .collect()
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
        self.log_change(|| MemChange::Map { addr, len, perm });
        Ok(())
    }

    /// Maps the page-aligned range adding `perm` to whatever permissions its pages
    /// already have (the loader, where two segments share a page).
    pub fn map_union(&mut self, addr: u64, len: u64, perm: u8) -> Result<(), MemoryError> {
        let r = Self::page_range(addr, len)?;
        self.host_protect(addr, len, true)?;
        self.set_perms(r, |p| p | perm | PERM_MAPPED);
        self.log_change(|| MemChange::MapUnion { addr, len, perm });
        Ok(())
    }

    /// Unmaps the page-aligned range and drops its contents, so that a later mapping
    /// reads zeros. Unmapped pages in the range are fine (as with Linux `munmap`).
    pub fn unmap(&mut self, addr: u64, len: u64) -> Result<(), MemoryError> {
        let r = Self::page_range(addr, len)?;
        self.freeze_host_writes();
        self.set_perms(r, |_| 0);
        self.discard_raw(addr, len);
        // Giving the commit charge back cannot meaningfully fail; the guest-visible
        // state (unmapped) is already right.
        let _ = self.host_protect(addr, len, false);
        self.log_change(|| MemChange::Unmap { addr, len });
        Ok(())
    }

    /// Zeroes the contents of a page-aligned, already validated range without changing
    /// its permissions (`madvise(MADV_DONTNEED)` of a private anonymous mapping).
    pub fn discard(&mut self, addr: u64, len: u64) {
        if len == 0 || Self::page_range(addr, len).is_err() {
            return;
        }
        self.freeze_host_writes();
        self.discard_raw(addr, len);
        self.log_change(|| MemChange::Discard { addr, len });
    }

    /// [`GuestMemory::discard`] of a validated, non-empty range, not logged.
    fn discard_raw(&mut self, addr: u64, len: u64) {
        // SAFETY: callers checked with `page_range` that `[addr, addr+len)` is page
        // aligned and inside the reservation; MADV_DONTNEED on a private anonymous
        // mapping only replaces the pages with zero-fill-on-demand ones. No Rust
        // reference into guest memory is alive (we hold `&mut self`).
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
        self.log_change(|| MemChange::Protect { addr, len, perm });
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
        if need & PERM_W != 0 {
            self.log_host_write(addr, len);
        }
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
        if need & PERM_W != 0 {
            for &(addr, len) in ranges {
                self.log_host_write(addr, len);
            }
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

    /// Copies guest bytes out of mapped pages whatever their permissions (what a store
    /// is about to overwrite, for a crosscheck's undo record).
    pub fn read_bytes_mapped(&self, addr: u64, buf: &mut [u8]) -> Result<(), u64> {
        self.check_range(addr, buf.len() as u64, PERM_MAPPED)?;
        buf.copy_from_slice(self.mapped_bytes(addr, buf.len() as u64));
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
        self.freeze_host_writes();
        self.log_change(|| MemChange::Bytes {
            addr,
            data: data.to_vec(),
        });
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
        self.freeze_host_writes();
        self.copy_within_raw(from, to, len);
        self.log_change(|| MemChange::CopyWithin { from, to, len });
        Ok(())
    }

    /// [`GuestMemory::copy_within`] of checked, non-empty ranges, not logged.
    fn copy_within_raw(&mut self, from: u64, to: u64, len: u64) {
        // SAFETY: callers checked that both ranges lie inside the reservation (and are
        // mapped, so host-accessible in commit-on-map mode); `copy` allows overlap.
        unsafe {
            std::ptr::copy(
                self.base.as_ptr().add(from as usize),
                self.base.as_ptr().add(to as usize),
                len as usize,
            );
        }
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
        self.freeze_host_writes();
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
            self.copy_within_raw(from, to, len);
            self.discard_raw(from, len);
        }
        self.log_change(|| MemChange::MovePages { from, to, len });
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

/// A change to guest memory made outside guest code (by the loader, the system-call
/// layer, or the host kernel through a [`HostRange`]), recorded while a change log is
/// on ([`GuestMemory::start_change_log`]). Applied in order to an identical copy of the
/// memory ([`GuestMemory::apply_changes`]), the changes make it identical again.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MemChange {
    /// [`GuestMemory::map`].
    Map { addr: u64, len: u64, perm: u8 },
    /// [`GuestMemory::map_union`].
    MapUnion { addr: u64, len: u64, perm: u8 },
    /// [`GuestMemory::unmap`].
    Unmap { addr: u64, len: u64 },
    /// [`GuestMemory::protect`].
    Protect { addr: u64, len: u64, perm: u8 },
    /// [`GuestMemory::move_pages`].
    MovePages { from: u64, to: u64, len: u64 },
    /// [`GuestMemory::discard`].
    Discard { addr: u64, len: u64 },
    /// [`GuestMemory::copy_within`].
    CopyWithin { from: u64, to: u64, len: u64 },
    /// Bytes written: [`GuestMemory::write_bytes`] and its privileged form, or what the
    /// host kernel wrote into a range that a later change moved or dropped.
    Bytes { addr: u64, data: Vec<u8> },
    /// The host kernel was handed `[addr, addr+len)` to write (a [`HostRange`] taken
    /// with [`PERM_W`]); what it wrote is read from the logging memory when the change
    /// is applied.
    HostWrite { addr: u64, len: u64 },
}

/// The change log of a [`GuestMemory`].
#[derive(Debug, Default)]
struct ChangeLog {
    changes: Vec<MemChange>,
    /// Index of the first `HostWrite` in `changes` whose contents have not been frozen
    /// into `Bytes`.
    unfrozen: usize,
}

/// The first difference between two guest memories ([`GuestMemory::first_difference`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MemDifference {
    /// The page at `addr` has different permissions (`PERM_*` bits, 0 when unmapped).
    Permission { addr: u64, ours: u8, theirs: u8 },
    /// The byte at `addr` differs; `word` is the address of the aligned 8-byte word
    /// holding it, and `ours`/`theirs` that word's values (little endian).
    Contents {
        addr: u64,
        word: u64,
        ours: u64,
        theirs: u64,
    },
}

impl MemDifference {
    /// The guest address where the memories first differ.
    pub fn addr(&self) -> u64 {
        match *self {
            MemDifference::Permission { addr, .. } | MemDifference::Contents { addr, .. } => addr,
        }
    }
}

/// Permission bits that describe a mapping (the rest of a table entry is derived).
const PERM_BITS: u8 = PERM_R | PERM_W | PERM_X | PERM_MAPPED;

/// The first page at or after `page` that either table has an entry for (`NUM_PAGES`
/// when none), skipping empty parts 64 entries at a time (most of the table).
fn next_mapped(a: &[u8], b: &[u8], mut page: usize) -> usize {
    const SPAN: usize = 64;
    let empty = |t: &[u8], i: usize| t[i..i + SPAN].iter().fold(0, |acc, &p| acc | p) == 0;
    while page < NUM_PAGES {
        if page.is_multiple_of(SPAN) && page + SPAN <= NUM_PAGES && empty(a, page) && empty(b, page)
        {
            page += SPAN;
            continue;
        }
        if a[page] | b[page] != 0 {
            return page;
        }
        page += 1;
    }
    NUM_PAGES
}

impl GuestMemory {
    /// Starts recording every change made outside guest code ([`MemChange`]): what
    /// [`GuestMemory::apply_changes`] needs to keep a copy of this memory identical.
    /// Loads and stores through [`Memory`] (guest code, in any tier) are never
    /// recorded, and with the log off each recording point costs one branch.
    pub fn start_change_log(&mut self) {
        self.log.get_or_insert_with(Box::default);
    }

    /// Stops recording and drops what was recorded.
    pub fn stop_change_log(&mut self) {
        self.log = None;
    }

    /// The changes recorded since the log was started or last taken, oldest first.
    /// `HostWrite` entries refer to this memory's current contents: apply them before
    /// it changes again.
    pub fn take_changes(&mut self) -> Vec<MemChange> {
        match &mut self.log {
            Some(log) => {
                log.unfrozen = 0;
                std::mem::take(&mut log.changes)
            }
            None => Vec::new(),
        }
    }

    /// Applies `changes` (taken from `source` with [`GuestMemory::take_changes`]) to
    /// this memory, in order; `HostWrite` contents are copied from `source`. When this
    /// memory was identical to `source` before the changes were made there, it is
    /// identical again afterwards.
    pub fn apply_changes(
        &mut self,
        changes: &[MemChange],
        source: &GuestMemory,
    ) -> Result<(), MemoryError> {
        for c in changes {
            match *c {
                MemChange::Map { addr, len, perm } => self.map(addr, len, perm)?,
                MemChange::MapUnion { addr, len, perm } => self.map_union(addr, len, perm)?,
                MemChange::Unmap { addr, len } => self.unmap(addr, len)?,
                MemChange::Protect { addr, len, perm } => self.protect(addr, len, perm)?,
                MemChange::MovePages { from, to, len } => self.move_pages(from, to, len)?,
                MemChange::Discard { addr, len } => self.discard(addr, len),
                MemChange::CopyWithin { from, to, len } => self
                    .copy_within(from, to, len)
                    .map_err(|_| MemoryError::NotMapped { addr: from, len })?,
                MemChange::Bytes { addr, ref data } => self
                    .write_bytes_privileged(addr, data)
                    .map_err(|_| MemoryError::NotMapped {
                        addr,
                        len: data.len() as u64,
                    })?,
                MemChange::HostWrite { addr, len } => {
                    let not_mapped = MemoryError::NotMapped { addr, len };
                    source
                        .check_range(addr, len, PERM_MAPPED)
                        .map_err(|_| MemoryError::NotMapped { addr, len })?;
                    if len > 0 {
                        // Read as a slice of `source` and written into this memory: two
                        // reservations, so the ranges cannot overlap.
                        self.write_bytes_privileged(addr, source.mapped_bytes(addr, len))
                            .map_err(|_| not_mapped)?;
                    }
                }
            }
        }
        Ok(())
    }

    /// A new guest memory with the same mappings, permissions and contents (pages that
    /// read as zero are not copied, so they stay uncommitted in the copy).
    pub fn duplicate(&self) -> Result<GuestMemory, MemoryError> {
        let mut copy = GuestMemory::new()?;
        for (first, end, perm) in self.mapped_page_runs() {
            let (addr, len) = (
                (first as u64) << PAGE_SHIFT,
                ((end - first) as u64) << PAGE_SHIFT,
            );
            copy.map(addr, len, perm & !PERM_MAPPED)?;
            for page in first..end {
                let at = (page as u64) << PAGE_SHIFT;
                let bytes = self.mapped_bytes(at, PAGE_SIZE);
                if bytes.iter().any(|&b| b != 0) {
                    copy.copy_in(at, bytes);
                }
            }
        }
        Ok(copy)
    }

    /// The first difference between this memory and `other`, scanning up from address
    /// 0: a page mapped with different permissions, or a byte that differs in a page
    /// both map. `None` when the two are identical.
    ///
    /// Pages that the host holds in memory in neither reservation (`mincore`) are taken
    /// to be equal without being read: an untouched anonymous page reads as zero in
    /// both. That is exact unless the host swapped both copies out, which only delays
    /// the report of a difference there until a later comparison.
    pub fn first_difference(&self, other: &GuestMemory) -> Option<MemDifference> {
        let (ours, theirs) = (self.perms(), other.perms());
        // Runs of consecutive pages with the same, non-zero permission on both sides.
        let mut page = 0usize;
        while page < NUM_PAGES {
            page = next_mapped(ours, theirs, page);
            if page >= NUM_PAGES {
                break;
            }
            let (pa, pb) = (ours[page] & PERM_BITS, theirs[page] & PERM_BITS);
            if pa != pb {
                return Some(MemDifference::Permission {
                    addr: (page as u64) << PAGE_SHIFT,
                    ours: pa,
                    theirs: pb,
                });
            }
            if pa == 0 {
                page += 1;
                continue;
            }
            let mut end = page + 1;
            while end < NUM_PAGES && ours[end] & PERM_BITS == pa && theirs[end] & PERM_BITS == pa {
                end += 1;
            }
            if let Some(d) = self.first_content_difference(other, page, end) {
                return Some(d);
            }
            page = end;
        }
        None
    }

    /// The first differing byte in the pages `first..end`, mapped in both memories.
    fn first_content_difference(
        &self,
        other: &GuestMemory,
        first: usize,
        end: usize,
    ) -> Option<MemDifference> {
        let ra = self.resident(first, end);
        let rb = other.resident(first, end);
        for page in first..end {
            let i = page - first;
            let resident = |r: &Option<Vec<u8>>| r.as_ref().is_none_or(|v| v[i] & 1 != 0);
            if !resident(&ra) && !resident(&rb) {
                continue;
            }
            let at = (page as u64) << PAGE_SHIFT;
            let a = self.mapped_bytes(at, PAGE_SIZE);
            let b = other.mapped_bytes(at, PAGE_SIZE);
            if a == b {
                continue;
            }
            let k = a.iter().zip(b).position(|(x, y)| x != y).unwrap_or(0);
            let addr = at + k as u64;
            let word = addr & !7;
            let off = (word - at) as usize;
            let value = |s: &[u8]| u64::from_le_bytes(s[off..off + 8].try_into().unwrap_or([0; 8]));
            return Some(MemDifference::Contents {
                addr,
                word,
                ours: value(a),
                theirs: value(b),
            });
        }
        None
    }

    /// `mincore` of the pages `first..end`: one byte per page, bit 0 set when the host
    /// holds the page in memory. `None` when the host cannot tell (every page is then
    /// treated as resident).
    fn resident(&self, first: usize, end: usize) -> Option<Vec<u8>> {
        let mut v = vec![0u8; end - first];
        // SAFETY: pages `first..end` lie inside the reservation this value owns (they
        // are entries of its page table); mincore only reads the host page tables and
        // writes one byte per page into `v`, which has exactly that many.
        let r = unsafe {
            libc::mincore(
                self.base.as_ptr().add(first << PAGE_SHIFT).cast(),
                (end - first) << PAGE_SHIFT,
                v.as_mut_ptr(),
            )
        };
        (r == 0).then_some(v)
    }

    /// Maximal runs of mapped pages with equal permissions: `(first, end, perm)`.
    fn mapped_page_runs(&self) -> Vec<(usize, usize, u8)> {
        let perms = self.perms();
        let mut runs = Vec::new();
        let mut page = 0usize;
        while page < NUM_PAGES {
            page = next_mapped(perms, perms, page);
            if page >= NUM_PAGES {
                break;
            }
            let p = perms[page] & PERM_BITS;
            if p == 0 {
                page += 1;
                continue;
            }
            let mut end = page + 1;
            while end < NUM_PAGES && perms[end] & PERM_BITS == p {
                end += 1;
            }
            runs.push((page, end, p));
            page = end;
        }
        runs
    }

    /// The bytes of a range whose pages are all mapped, whatever their permissions.
    fn mapped_bytes(&self, addr: u64, len: u64) -> &[u8] {
        debug_assert!(self.check_range(addr, len, PERM_MAPPED).is_ok());
        if len == 0 || self.check_range(addr, len, PERM_MAPPED).is_err() {
            return &[];
        }
        // SAFETY: the range lies inside the reservation and its pages are mapped, so
        // host-accessible in both reservation modes; the shared borrow of `self` keeps
        // writers (guest code, the host kernel through a `HostRange`) out while the
        // slice lives.
        unsafe { std::slice::from_raw_parts(self.base.as_ptr().add(addr as usize), len as usize) }
    }

    /// Records a host-kernel write into `[addr, addr+len)` (checked), if logging.
    fn log_host_write(&mut self, addr: u64, len: u64) {
        if len > 0
            && let Some(log) = &mut self.log
        {
            log.changes.push(MemChange::HostWrite { addr, len });
        }
    }

    /// Records a change that was just made, if logging.
    #[inline]
    fn log_change(&mut self, change: impl FnOnce() -> MemChange) {
        if let Some(log) = &mut self.log {
            log.changes.push(change());
        }
    }

    /// Before a change that moves or drops contents: turns the `HostWrite`s recorded so
    /// far into the bytes they hold now, so that applying the log in order reproduces
    /// them before the change.
    fn freeze_host_writes(&mut self) {
        if self.log.is_none() {
            return;
        }
        let Some(mut log) = self.log.take() else {
            return;
        };
        for i in log.unfrozen..log.changes.len() {
            if let MemChange::HostWrite { addr, len } = log.changes[i] {
                log.changes[i] = MemChange::Bytes {
                    addr,
                    data: self.mapped_bytes(addr, len).to_vec(),
                };
            }
        }
        log.unfrozen = log.changes.len();
        self.log = Some(log);
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

    /// Writes `data` through a `HostRange`, as the host kernel would.
    fn kernel_write(m: &mut GuestMemory, addr: u64, data: &[u8]) {
        let r = m.host_range(addr, data.len() as u64, PERM_W).unwrap();
        // SAFETY: `r` is a checked, writable view of `data.len()` bytes of the
        // reservation, and no other reference into it is alive.
        unsafe { std::ptr::copy_nonoverlapping(data.as_ptr(), r.ptr(), data.len()) };
    }

    #[test]
    fn first_difference_names_the_first_permission_or_byte_that_differs() {
        let mut a = mem();
        a.map(0x10000, 0x3000, PERM_R | PERM_W).unwrap();
        a.store64(0x11ff8, 0x1111).unwrap();
        let mut b = a.duplicate().unwrap();
        assert_eq!(a.first_difference(&b), None);
        assert_eq!(b.load64(0x11ff8), Ok(0x1111));
        b.store8(0x12003, 0x80).unwrap();
        b.store8(0x11ffa, 0x22).unwrap();
        assert_eq!(
            a.first_difference(&b),
            Some(MemDifference::Contents {
                addr: 0x11ffa,
                word: 0x11ff8,
                ours: 0x1111,
                theirs: 0x22_1111,
            })
        );
        b.store8(0x11ffa, 0).unwrap();
        assert_eq!(a.first_difference(&b).map(|d| d.addr()), Some(0x12003));
        b.protect(0x11000, 0x1000, PERM_R).unwrap();
        assert_eq!(
            a.first_difference(&b),
            Some(MemDifference::Permission {
                addr: 0x11000,
                ours: PERM_R | PERM_W | PERM_MAPPED,
                theirs: PERM_R | PERM_MAPPED,
            })
        );
        b.unmap(0x10000, 0x3000).unwrap();
        b.map(GUEST_SPACE - PAGE_SIZE, PAGE_SIZE, PERM_R).unwrap();
        assert_eq!(
            b.first_difference(&a),
            Some(MemDifference::Permission {
                addr: 0x10000,
                ours: 0,
                theirs: PERM_R | PERM_W | PERM_MAPPED,
            })
        );
    }

    #[test]
    fn applying_the_change_log_makes_a_copy_identical_again() {
        let mut a = mem();
        a.map(0x10000, 0x4000, PERM_R | PERM_W).unwrap();
        a.store64(0x10000, 7).unwrap();
        let mut b = a.duplicate().unwrap();
        a.start_change_log();
        a.store64(0x10008, 9).unwrap(); // guest code: not logged, done on both sides
        b.store64(0x10008, 9).unwrap();
        // What a system call does: the kernel writes, then the layer moves pages away
        // from what it wrote, maps, protects, copies, writes, discards, unmaps.
        kernel_write(&mut a, 0x10100, b"kernel");
        a.map(0x40000, 0x2000, PERM_R | PERM_W).unwrap();
        a.move_pages(0x10000, 0x40000, 0x2000).unwrap();
        kernel_write(&mut a, 0x12000, b"read(2) into a buffer");
        a.protect(0x12000, 0x1000, PERM_R).unwrap();
        a.write_bytes(0x13000, b"struct stat").unwrap();
        a.copy_within(0x13000, 0x13800, 11).unwrap();
        a.map_union(0x60000, 0x1000, PERM_R | PERM_X).unwrap();
        a.write_bytes_privileged(0x60000, b"code").unwrap();
        a.discard(0x13000, 0x1000);
        a.unmap(0x11000, 0x1000).unwrap();
        kernel_write(&mut a, 0x40200, b"last");
        a.protect(0x40000, 0x1000, PERM_R).unwrap();
        assert!(a.first_difference(&b).is_some());
        let changes = a.take_changes();
        // Nothing moved or dropped the last kernel write: it is read at application.
        assert!(changes.contains(&MemChange::HostWrite {
            addr: 0x40200,
            len: 4
        }));
        // The first kernel write was moved away: it was frozen into bytes before that.
        assert!(changes.contains(&MemChange::Bytes {
            addr: 0x10100,
            data: b"kernel".to_vec()
        }));
        b.apply_changes(&changes, &a).unwrap();
        assert_eq!(a.first_difference(&b), None);
        assert_eq!(b.load64(0x40000), Ok(7));
        assert_eq!(b.read_cstr(0x40100, 16), Ok(b"kernel".to_vec()));
        assert!(a.take_changes().is_empty(), "taking empties the log");
        a.stop_change_log();
        a.write_bytes(0x12800, b"x").unwrap_err(); // read-only now
        a.write_bytes(0x41000, b"x").unwrap();
        assert!(a.take_changes().is_empty(), "nothing is logged when off");
    }
}
