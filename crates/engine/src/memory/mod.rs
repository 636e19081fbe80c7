//! Guest memory: the sandbox that holds the guest's whole address space.
//!
//! **Layout.** One contiguous host reservation covers guest addresses `[0, GUEST_SPACE)`
//! (mmap `PROT_READ|PROT_WRITE`, `MAP_PRIVATE|MAP_ANONYMOUS|MAP_NORESERVE`, so untouched
//! pages cost nothing). Guest address `a` lives at host address `base + a`. Right below
//! it, in the same reservation (at `base + PERMS_OFFSET`, so translated code reaches both
//! through one register), a software page table holds one permission byte per 4 KiB
//! guest page ([`PERM_R`], [`PERM_W`], [`PERM_X`], plus [`PERM_MAPPED`] so that a
//! `PROT_NONE` mapping is still "in use"); 0 means unmapped. On hosts with strict
//! overcommit accounting, where the writable reservation is refused, the reservation
//! starts `PROT_NONE` and ranges are opened on the host as the guest maps them
//! ([`GuestMemory::new_commit_on_map`]).
//!
//! **Threads.** One `GuestMemory` is shared by every guest thread (it is `Sync`): guest
//! code in any tier and any thread reads and writes it while other threads map, unmap
//! and protect. Every access Rust code makes to the table or to guest bytes is atomic
//! (relaxed; an aligned access is one atomic operation, a misaligned one is done byte by
//! byte, which RISC-V allows: misaligned accesses are not atomic), so a guest data race
//! is a race among the guest's own values and never undefined behaviour in vmjit.
//! Changes to the mappings are serialised by one lock. The host reservation is never
//! made inaccessible once a range was opened (see `host_protect`), so an access that
//! passed its check an instant before another thread unmapped the page lands in host
//! memory of the reservation (reading zero) instead of faulting the host.
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
//! - [`GuestMemory::accessible_bytes`] is exact: every permission change goes through
//!   `set_perms`, under the mapping lock.
//!
//! This is one of the modules of the engine with `unsafe` (with `host` and the JIT's
//! `enter`).

use std::ptr::NonNull;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU16, AtomicU32, AtomicU64};
use std::sync::{Mutex, MutexGuard};

use rv64::{AccessKind, AmoOp, MemFault, Memory};
use translate::context::{PERM_FAST_R, PERM_FAST_W};

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
/// The page lies wholly past the end of the file it maps: any access raises SIGBUS
/// (`BUS_ADRERR`), as in Linux. Such a page has no access bits, whatever `mprotect`
/// asks, until it is unmapped or mapped again.
pub const PERM_PAST_EOF: u8 = 64;
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
/// riscv64) to the permission byte of a mapped page. Write implies read, as in
/// Linux on riscv64: its page tables cannot express a writable page that is not
/// readable, so `PROT_WRITE` alone maps read-write.
pub const fn perm_from_prot(prot: u64) -> u8 {
    let p = (prot & 7) as u8;
    let p = if p & 2 != 0 { p | 1 } else { p };
    PERM_MAPPED | p
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

/// A checked host view of a guest range for the host kernel, valid while the borrow of
/// the memory it came from lasts. Built only by [`GuestMemory`] after the permission
/// check. Rust code never reads or writes through it (only the kernel does), so another
/// guest thread touching the same bytes is the guest's race, as on Linux.
#[derive(Clone, Copy)]
pub struct HostRange<'a> {
    ptr: *mut u8,
    len: usize,
    _mem: std::marker::PhantomData<&'a GuestMemory>,
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

/// What the mapping lock guards.
#[derive(Debug, Default)]
pub(crate) struct MapState {
    /// Changes made outside guest code, while a log is on
    /// ([`GuestMemory::start_change_log`]).
    log: Option<Box<ChangeLog>>,
}

/// The guest's address space. See the module documentation for the layout.
pub struct GuestMemory {
    /// Guest address 0; the reservation starts `PERMS_BYTES` lower, with the table.
    base: NonNull<u8>,
    /// Host pages start `PROT_NONE` and are opened as they are mapped (see
    /// [`GuestMemory::new_commit_on_map`]).
    commit_on_map: bool,
    /// Serialises changes to the mappings (and the change log).
    state: Mutex<MapState>,
    /// A change log is on: checked before taking the lock to record.
    logging: AtomicBool,
    /// Pages mapped with some access (not `PROT_NONE`): the guest memory that counts
    /// against its bound, kept exact by `set_perms`.
    accessible_pages: AtomicU64,
}

impl std::fmt::Debug for GuestMemory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GuestMemory")
            .field("base", &self.base)
            .field("accessible_bytes", &self.accessible_bytes())
            .finish()
    }
}

// SAFETY: `GuestMemory` exclusively owns its reservation (nothing else holds `base`), so
// moving it to another thread is as safe as moving a `Vec<u8>`.
unsafe impl Send for GuestMemory {}

// SAFETY: sharing it between threads is sound because every access Rust code makes to
// the reservation through `&self` is atomic (the table through `AtomicU8`/`AtomicU64`,
// guest bytes through atomics of their size, or byte by byte), changes to the mappings
// are serialised by `state`, and the only other accessors are the host kernel (through
// `HostRange`s) and translated machine code, which are outside Rust's memory model. A
// data race among guest threads is therefore only a race among guest values.
unsafe impl Sync for GuestMemory {}

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

/// Recomputes the fast-path bits of the pages in `pages` (see
/// `translate::context::update_fast_bits`, the reference this mirrors: a test compares
/// them) on the shared, atomically accessed table.
fn update_fast_bits(perms: &[AtomicU8], pages: std::ops::Range<usize>) {
    let fast = PERM_FAST_R | PERM_FAST_W;
    let end = pages.end.min(perms.len());
    for p in pages.start..end {
        let cur = perms[p].load(Relaxed);
        let bits = match perms.get(p + 1) {
            Some(next) => {
                let both = cur & next.load(Relaxed) & (PERM_R | PERM_W);
                let r = if both & PERM_R != 0 { PERM_FAST_R } else { 0 };
                let w = if both & PERM_W != 0 { PERM_FAST_W } else { 0 };
                r | w
            }
            None => 0,
        };
        perms[p].store((cur & !fast) | bits, Relaxed);
    }
}

/// Atomic views of guest bytes at a host address. Private to this module, and every
/// caller passes an address inside the reservation that it checked, aligned for the
/// type (`load_raw`, `store_raw` and the AMOs check alignment themselves).
macro_rules! atomic_view {
    ($name:ident, $t:ty) => {
        #[inline(always)]
        fn $name<'a>(p: *mut u8) -> &'a $t {
            // SAFETY: by this module's contract (above) `p` lies inside the reservation,
            // which stays mapped, readable and writable for the life of the
            // `GuestMemory` the caller borrows, and is aligned for the type; Rust only
            // ever accesses guest bytes atomically, so no non-atomic access races.
            unsafe { <$t>::from_ptr(p.cast()) }
        }
    };
}
atomic_view!(at8, AtomicU8);
atomic_view!(at16, AtomicU16);
atomic_view!(at32, AtomicU32);
atomic_view!(at64, AtomicU64);

macro_rules! atomic_at {
    (AtomicU8, $p:expr) => {
        at8($p)
    };
    (AtomicU16, $p:expr) => {
        at16($p)
    };
    (AtomicU32, $p:expr) => {
        at32($p)
    };
    (AtomicU64, $p:expr) => {
        at64($p)
    };
}

/// Loads `N` little-endian bytes at host address `p` inside the reservation: one atomic
/// load when aligned, byte by byte otherwise.
#[inline(always)]
fn load_raw<const N: usize>(p: *mut u8) -> u64 {
    if (p as usize).is_multiple_of(N) {
        match N {
            1 => u64::from(atomic_at!(AtomicU8, p).load(Relaxed)),
            2 => u64::from(u16::from_le(atomic_at!(AtomicU16, p).load(Relaxed))),
            4 => u64::from(u32::from_le(atomic_at!(AtomicU32, p).load(Relaxed))),
            _ => u64::from_le(atomic_at!(AtomicU64, p).load(Relaxed)),
        }
    } else {
        let mut v = 0u64;
        for i in 0..N {
            let b = atomic_at!(AtomicU8, p.wrapping_add(i)).load(Relaxed);
            v |= u64::from(b) << (8 * i);
        }
        v
    }
}

/// Stores the low `N` bytes of `v`, little endian, at host address `p` inside the
/// reservation (as [`load_raw`]).
#[inline(always)]
fn store_raw<const N: usize>(p: *mut u8, v: u64) {
    if (p as usize).is_multiple_of(N) {
        match N {
            1 => atomic_at!(AtomicU8, p).store(v as u8, Relaxed),
            2 => atomic_at!(AtomicU16, p).store((v as u16).to_le(), Relaxed),
            4 => atomic_at!(AtomicU32, p).store((v as u32).to_le(), Relaxed),
            _ => atomic_at!(AtomicU64, p).store(v.to_le(), Relaxed),
        }
    } else {
        for i in 0..N {
            atomic_at!(AtomicU8, p.wrapping_add(i)).store((v >> (8 * i)) as u8, Relaxed);
        }
    }
}

/// Copies `out.len()` guest bytes from host address `p` (inside the reservation):
/// 8-byte atomic loads where aligned, single bytes at the edges.
fn copy_out(p: *mut u8, out: &mut [u8]) {
    let mut i = 0;
    while i < out.len() {
        let at = p.wrapping_add(i);
        if (at as usize).is_multiple_of(8) && out.len() - i >= 8 {
            out[i..i + 8].copy_from_slice(&load_raw::<8>(at).to_le_bytes());
            i += 8;
        } else {
            out[i] = load_raw::<1>(at) as u8;
            i += 1;
        }
    }
}

/// Copies `data` to guest bytes at host address `p` (inside the reservation), as
/// [`copy_out`].
fn copy_into(p: *mut u8, data: &[u8]) {
    let mut i = 0;
    while i < data.len() {
        let at = p.wrapping_add(i);
        if (at as usize).is_multiple_of(8) && data.len() - i >= 8 {
            let mut w = [0u8; 8];
            w.copy_from_slice(&data[i..i + 8]);
            store_raw::<8>(at, u64::from_le_bytes(w));
            i += 8;
        } else {
            store_raw::<1>(at, u64::from(data[i]));
            i += 1;
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
    /// range is made readable and writable on the host when the guest first maps it.
    /// Used automatically when the eager reservation fails; guest-visible behaviour is
    /// identical.
    pub fn new_commit_on_map() -> Result<Self, MemoryError> {
        Ok(Self::with_base(Self::reserve(libc::PROT_NONE)?, true))
    }

    fn with_base(base: NonNull<u8>, commit_on_map: bool) -> Self {
        GuestMemory {
            base,
            commit_on_map,
            state: Mutex::new(MapState::default()),
            logging: AtomicBool::new(false),
            accessible_pages: AtomicU64::new(0),
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

    /// The permission table (see [`GuestMemory::perm_table_ptr`]), as atomics.
    fn perms(&self) -> &[AtomicU8] {
        // SAFETY: the `NUM_PAGES + 1 <= PERMS_BYTES` bytes below `base` are the table
        // part of the reservation this value owns, readable and writable for its whole
        // life; `AtomicU8` has the layout of `u8`, and Rust accesses the table only
        // through this view (translated code reads it as plain bytes, outside Rust).
        unsafe {
            std::slice::from_raw_parts(self.perm_table_ptr().cast::<AtomicU8>(), NUM_PAGES + 1)
        }
    }

    /// The table as 8-entry words, for scans that skip empty parts quickly.
    fn perm_words(&self) -> &[AtomicU64] {
        // SAFETY: the table part of the reservation (PERMS_BYTES, a multiple of the page
        // size, from a page-aligned start) holds PERMS_BYTES / 8 aligned words; as in
        // `perms`, Rust only accesses it atomically.
        unsafe {
            std::slice::from_raw_parts(self.perm_table_ptr().cast::<AtomicU64>(), PERMS_BYTES / 8)
        }
    }

    #[inline]
    fn perm_at(&self, page: usize) -> u8 {
        self.perms().get(page).map_or(0, |p| p.load(Relaxed))
    }

    /// The mapping lock if it is free now (`fork` takes it with the other locks a
    /// child uses, without waiting, to avoid lock-order deadlocks).
    pub(crate) fn try_lock_for_fork(&self) -> Option<MutexGuard<'_, MapState>> {
        try_lock(&self.state)
    }

    fn lock(&self) -> MutexGuard<'_, MapState> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// In commit-on-map mode, opens a validated page range on the host. Ranges are never
    /// closed again: another guest thread may be in the middle of an access that passed
    /// its check before the range was unmapped, and a host fault there would take vmjit
    /// down (the price is that unmapped pages keep their commit charge).
    fn host_protect(&self, addr: u64, len: u64) -> Result<(), MemoryError> {
        if !self.commit_on_map || len == 0 {
            return Ok(());
        }
        // SAFETY: `[addr, addr+len)` was validated by `page_range` (page aligned, inside
        // the reservation this value owns); making it readable and writable affects no
        // other memory and invalidates no access in progress.
        let r = unsafe {
            libc::mprotect(
                self.base.as_ptr().add(addr as usize).cast(),
                len as usize,
                libc::PROT_READ | libc::PROT_WRITE,
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
        self.accessible_pages.load(Relaxed) << PAGE_SHIFT
    }

    /// Bytes of the pages in the page-aligned range that are mapped with some access
    /// (0 for a range outside the space).
    pub fn accessible_in(&self, addr: u64, len: u64) -> u64 {
        match Self::page_range(addr, len.min(GUEST_SPACE.saturating_sub(addr))) {
            Ok(r) => {
                (self.perms()[r]
                    .iter()
                    .filter(|p| p.load(Relaxed) & ACCESS != 0)
                    .count() as u64)
                    << PAGE_SHIFT
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
        self.perm_at((addr >> PAGE_SHIFT) as usize) & (PERM_R | PERM_W | PERM_X | PERM_MAPPED)
    }

    /// True when the page holding `addr` maps a part of a file past its end
    /// ([`PERM_PAST_EOF`]).
    pub fn past_eof(&self, addr: u64) -> bool {
        self.perm_at((addr >> PAGE_SHIFT) as usize) & PERM_PAST_EOF != 0
    }

    /// Marks the mapped page-aligned range as lying past the end of its file: its
    /// pages lose all access and any access to them raises SIGBUS.
    pub fn mark_past_eof(&self, addr: u64, len: u64) -> Result<(), MemoryError> {
        self.map(addr, len, PERM_PAST_EOF)
    }

    /// Sets the permission bytes of the pages `r` with `f` and refreshes the fast-path
    /// bits of those pages and of the page before them (whose "next page" changed).
    /// Callers hold the mapping lock.
    fn set_perms(&self, _lock: &MapState, r: std::ops::Range<usize>, f: impl Fn(u8) -> u8) {
        let mut before = 0u64;
        let mut after = 0u64;
        for p in &self.perms()[r.clone()] {
            let old = p.load(Relaxed);
            let new = f(old);
            before += u64::from(old & ACCESS != 0);
            after += u64::from(new & ACCESS != 0);
            p.store(new, Relaxed);
        }
        let pages = self.accessible_pages.load(Relaxed);
        self.accessible_pages.store(pages + after - before, Relaxed);
        update_fast_bits(self.perms(), r.start.saturating_sub(1)..r.end);
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

    fn all_pages(&self, addr: u64, len: u64, f: impl Fn(u8) -> bool) -> Option<bool> {
        Self::page_range(addr, len)
            .ok()
            .map(|r| self.perms()[r].iter().all(|p| f(p.load(Relaxed))))
    }

    /// True when no page of the page-aligned range `[addr, addr+len)` is mapped and the
    /// range lies inside the guest space.
    pub fn is_free(&self, addr: u64, len: u64) -> bool {
        self.all_pages(addr, len, |p| p == 0).unwrap_or(false)
    }

    /// True when every page of the page-aligned range is mapped.
    pub fn is_mapped(&self, addr: u64, len: u64) -> bool {
        self.all_pages(addr, len, |p| p & PERM_MAPPED != 0)
            .unwrap_or(false)
    }

    /// True when any page of the page-aligned range is executable (so code translated
    /// from it may exist and must be invalidated when it changes).
    pub fn any_exec(&self, addr: u64, len: u64) -> bool {
        self.all_pages(addr, len, |p| p & PERM_X == 0)
            .is_some_and(|none| !none)
    }

    /// Maps the page-aligned range with permission byte `perm` (`PERM_MAPPED` is added).
    /// Pages that were unmapped read as zero.
    pub fn map(&self, addr: u64, len: u64, perm: u8) -> Result<(), MemoryError> {
        let r = Self::page_range(addr, len)?;
        let mut st = self.lock();
        self.host_protect(addr, len)?;
        self.set_perms(&st, r, |_| perm | PERM_MAPPED);
        Self::log_change(&mut st, || MemChange::Map { addr, len, perm });
        Ok(())
    }

    /// Maps the page-aligned range adding `perm` to whatever permissions its pages
    /// already have (the loader, where two segments share a page).
    pub fn map_union(&self, addr: u64, len: u64, perm: u8) -> Result<(), MemoryError> {
        let r = Self::page_range(addr, len)?;
        let mut st = self.lock();
        self.host_protect(addr, len)?;
        self.set_perms(&st, r, |p| p | perm | PERM_MAPPED);
        Self::log_change(&mut st, || MemChange::MapUnion { addr, len, perm });
        Ok(())
    }

    /// Unmaps the page-aligned range and drops its contents, so that a later mapping
    /// reads zeros. Unmapped pages in the range are fine (as with Linux `munmap`).
    pub fn unmap(&self, addr: u64, len: u64) -> Result<(), MemoryError> {
        let r = Self::page_range(addr, len)?;
        let mut st = self.lock();
        self.freeze_host_writes(&mut st);
        self.set_perms(&st, r, |_| 0);
        self.discard_raw(addr, len);
        Self::log_change(&mut st, || MemChange::Unmap { addr, len });
        Ok(())
    }

    /// Zeroes the contents of a page-aligned, already validated range without changing
    /// its permissions (`madvise(MADV_DONTNEED)` of a private anonymous mapping).
    pub fn discard(&self, addr: u64, len: u64) {
        if len == 0 || Self::page_range(addr, len).is_err() {
            return;
        }
        let mut st = self.lock();
        self.freeze_host_writes(&mut st);
        self.discard_raw(addr, len);
        Self::log_change(&mut st, || MemChange::Discard { addr, len });
    }

    /// [`GuestMemory::discard`] of a validated, non-empty range, not logged.
    fn discard_raw(&self, addr: u64, len: u64) {
        // SAFETY: callers checked with `page_range` that `[addr, addr+len)` is page
        // aligned and inside the reservation; MADV_DONTNEED on a private anonymous
        // mapping only replaces the pages with zero-fill-on-demand ones, which any
        // concurrent access (another guest thread's race) reads or writes as it would
        // the old pages.
        unsafe {
            libc::madvise(
                self.base.as_ptr().add(addr as usize).cast(),
                len as usize,
                libc::MADV_DONTNEED,
            );
        }
    }

    /// Changes the permissions of a page-aligned range; every page must be mapped.
    pub fn protect(&self, addr: u64, len: u64, perm: u8) -> Result<(), MemoryError> {
        let r = Self::page_range(addr, len)?;
        let mut st = self.lock();
        if !self.perms()[r.clone()]
            .iter()
            .all(|p| p.load(Relaxed) & PERM_MAPPED != 0)
        {
            return Err(MemoryError::NotMapped { addr, len });
        }
        // A page past the end of its file stays inaccessible (Linux: SIGBUS).
        self.set_perms(&st, r, |p| {
            if p & PERM_PAST_EOF != 0 {
                PERM_PAST_EOF | PERM_MAPPED
            } else {
                perm | PERM_MAPPED
            }
        });
        Self::log_change(&mut st, || MemChange::Protect { addr, len, perm });
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
            if self.perm_at(p) == 0 {
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
        for (i, p) in self.perms()[first..=last].iter().enumerate() {
            if p.load(Relaxed) & need != need {
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
    pub fn host_range(&self, addr: u64, len: u64, need: u8) -> Result<HostRange<'_>, u64> {
        self.check_range(addr, len, need)?;
        if need & PERM_W != 0 {
            self.log_host_write(addr, len);
        }
        Ok(self.view(addr, len))
    }

    /// Several checked host views at once (for readv/writev). Fails with the first bad
    /// guest address.
    pub fn host_ranges(&self, ranges: &[(u64, u64)], need: u8) -> Result<Vec<HostRange<'_>>, u64> {
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
        copy_out(self.base.as_ptr().wrapping_add(addr as usize), buf);
        Ok(())
    }

    /// Copies guest code bytes out; requires execute permission (what the decoder
    /// fetches).
    pub fn read_code(&self, addr: u64, buf: &mut [u8]) -> Result<(), u64> {
        self.check_range(addr, buf.len() as u64, PERM_X)?;
        copy_out(self.base.as_ptr().wrapping_add(addr as usize), buf);
        Ok(())
    }

    /// Copies guest bytes out of mapped pages whatever their permissions (what a store
    /// is about to overwrite, for a crosscheck's undo record).
    pub fn read_bytes_mapped(&self, addr: u64, buf: &mut [u8]) -> Result<(), u64> {
        self.check_range(addr, buf.len() as u64, PERM_MAPPED)?;
        copy_out(self.base.as_ptr().wrapping_add(addr as usize), buf);
        Ok(())
    }

    /// Copies bytes into guest memory; requires write permission.
    pub fn write_bytes(&self, addr: u64, data: &[u8]) -> Result<(), u64> {
        self.check_range(addr, data.len() as u64, PERM_W)?;
        self.copy_in(addr, data);
        Ok(())
    }

    /// Copies bytes into mapped guest pages whatever their permissions (the loader
    /// filling a read-only segment, the kernel building the stack).
    pub fn write_bytes_privileged(&self, addr: u64, data: &[u8]) -> Result<(), u64> {
        self.check_range(addr, data.len() as u64, PERM_MAPPED)?;
        self.copy_in(addr, data);
        Ok(())
    }

    fn copy_in(&self, addr: u64, data: &[u8]) {
        if data.is_empty() {
            return;
        }
        if self.logging.load(Relaxed) {
            let mut st = self.lock();
            self.freeze_host_writes(&mut st);
            Self::log_change(&mut st, || MemChange::Bytes {
                addr,
                data: data.to_vec(),
            });
        }
        copy_into(self.base.as_ptr().wrapping_add(addr as usize), data);
    }

    /// Copies `len` bytes inside guest memory (for mremap); both ranges must be mapped.
    pub fn copy_within(&self, from: u64, to: u64, len: u64) -> Result<(), u64> {
        self.check_range(from, len, PERM_MAPPED)?;
        self.check_range(to, len, PERM_MAPPED)?;
        if len == 0 {
            return Ok(());
        }
        let mut st = self.lock();
        self.freeze_host_writes(&mut st);
        self.copy_within_raw(from, to, len);
        Self::log_change(&mut st, || MemChange::CopyWithin { from, to, len });
        Ok(())
    }

    /// [`GuestMemory::copy_within`] of checked, non-empty ranges, not logged: in chunks,
    /// in the direction that never overwrites a source byte before it is read.
    fn copy_within_raw(&self, from: u64, to: u64, len: u64) {
        const CHUNK: u64 = 64 << 10;
        let mut buf = vec![0u8; CHUNK.min(len) as usize];
        let base = self.base.as_ptr();
        let mut step = |off: u64| {
            let n = CHUNK.min(len - off) as usize;
            copy_out(base.wrapping_add((from + off) as usize), &mut buf[..n]);
            copy_into(base.wrapping_add((to + off) as usize), &buf[..n]);
        };
        if to <= from {
            let mut off = 0;
            while off < len {
                step(off);
                off += CHUNK;
            }
        } else {
            let mut off = (len - 1) / CHUNK * CHUNK;
            loop {
                step(off);
                if off == 0 {
                    break;
                }
                off -= CHUNK;
            }
        }
    }

    /// Moves the contents of the mapped page-aligned range at `from` to the mapped,
    /// non-overlapping range at `to` (for mremap): afterwards `to` holds what `from`
    /// held and `from` reads as zeros. The host kernel moves the pages themselves, so
    /// pages the guest never touched stay unpopulated (a copy would commit every one of
    /// them: growing a 256 MiB realloc'd block would cost 256 MiB of host memory).
    pub fn move_pages(&self, from: u64, to: u64, len: u64) -> Result<(), MemoryError> {
        let src = Self::page_range(from, len)?;
        let dst = Self::page_range(to, len)?;
        if src.start < dst.end && dst.start < src.end {
            return Err(MemoryError::BadRange { addr: to, len });
        }
        let mut st = self.lock();
        let mapped = |r: std::ops::Range<usize>| {
            self.perms()[r]
                .iter()
                .all(|p| p.load(Relaxed) & PERM_MAPPED != 0)
        };
        if !mapped(src) || !mapped(dst) {
            return Err(MemoryError::NotMapped { addr: from, len });
        }
        if len == 0 {
            return Ok(());
        }
        self.freeze_host_writes(&mut st);
        // SAFETY: both ranges were validated above: page aligned, inside the
        // reservation this value owns, disjoint. MREMAP_FIXED replaces the host pages
        // of the target range (part of our private anonymous reservation) with the
        // source's; MREMAP_DONTUNMAP leaves the source range mapped with the same
        // protection, its pages now empty (zero on next touch), so the reservation
        // keeps no hole another mapping could fall into, and an access another guest
        // thread makes meanwhile lands in mapped host memory either way.
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
        Self::log_change(&mut st, || MemChange::MovePages { from, to, len });
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
        if self.perm_at(first) & need == 0 {
            return Err(fault(addr));
        }
        let last = ((end - 1) >> PAGE_SHIFT) as usize;
        if last != first && self.perm_at(last) & need == 0 {
            return Err(fault((last as u64) << PAGE_SHIFT));
        }
        Ok(self.base.as_ptr().wrapping_add(addr as usize))
    }

    /// A load of `N` bytes with permission `need` (guest code's path).
    #[inline(always)]
    fn load_n<const N: usize>(
        &self,
        addr: u64,
        need: u8,
        kind: AccessKind,
    ) -> Result<u64, MemFault> {
        let p = self.check_access(addr, N as u64, need, kind)?;
        Ok(load_raw::<N>(p))
    }

    /// A store of `N` bytes (guest code's path).
    #[inline(always)]
    fn store_n<const N: usize>(&self, addr: u64, value: u64) -> Result<(), MemFault> {
        let p = self.check_access(addr, N as u64, PERM_W, AccessKind::Write)?;
        store_raw::<N>(p, value);
        Ok(())
    }

    /// The naturally aligned word of `N` (4 or 8) bytes at `addr` for an atomic
    /// operation, checked as `rv64::Memory` documents for AMOs (`read` set) and
    /// compare-and-swap (`read` clear): a misaligned address is a write fault, then an
    /// AMO needs read permission (a read fault), then both need write permission.
    fn atomic_target<const N: usize>(&self, addr: u64, read: bool) -> Result<*mut u8, MemFault> {
        if !addr.is_multiple_of(N as u64) {
            return Err(MemFault {
                addr,
                kind: AccessKind::Write,
            });
        }
        if read {
            self.check_access(addr, N as u64, PERM_R, AccessKind::Read)?;
        }
        self.check_access(addr, N as u64, PERM_W, AccessKind::Write)
    }

    /// An AMO on the naturally aligned 32-bit word at `addr`: atomically replaces it
    /// with `op(old, value)` and returns `old` (one `lock`-prefixed host instruction or
    /// a `lock cmpxchg` loop: a full barrier, which covers `.aq`/`.rl`).
    pub fn amo32(&self, addr: u64, op: AmoOp, value: u32) -> Result<u32, MemFault> {
        let a = at32(self.atomic_target::<4>(addr, true)?);
        let sc = std::sync::atomic::Ordering::SeqCst;
        let old = match op {
            AmoOp::Swap => a.swap(value.to_le(), sc),
            AmoOp::Add => a.fetch_add(value.to_le(), sc),
            AmoOp::Xor => a.fetch_xor(value.to_le(), sc),
            AmoOp::And => a.fetch_and(value.to_le(), sc),
            AmoOp::Or => a.fetch_or(value.to_le(), sc),
            _ => match a.fetch_update(sc, sc, |x| Some(op.apply32(u32::from_le(x), value).to_le()))
            {
                Ok(x) | Err(x) => x,
            },
        };
        Ok(u32::from_le(old))
    }

    /// An AMO on the naturally aligned 64-bit word at `addr` (see [`GuestMemory::amo32`]).
    pub fn amo64(&self, addr: u64, op: AmoOp, value: u64) -> Result<u64, MemFault> {
        let a = at64(self.atomic_target::<8>(addr, true)?);
        let sc = std::sync::atomic::Ordering::SeqCst;
        let old = match op {
            AmoOp::Swap => a.swap(value.to_le(), sc),
            AmoOp::Add => a.fetch_add(value.to_le(), sc),
            AmoOp::Xor => a.fetch_xor(value.to_le(), sc),
            AmoOp::And => a.fetch_and(value.to_le(), sc),
            AmoOp::Or => a.fetch_or(value.to_le(), sc),
            _ => match a.fetch_update(sc, sc, |x| Some(op.apply64(u64::from_le(x), value).to_le()))
            {
                Ok(x) | Err(x) => x,
            },
        };
        Ok(u64::from_le(old))
    }

    /// Compare-and-swap of the naturally aligned 32-bit word at `addr`: stores `new`
    /// if it holds `expected`; returns whether it did (`sc.w`).
    pub fn cas32(&self, addr: u64, expected: u32, new: u32) -> Result<bool, MemFault> {
        let sc = std::sync::atomic::Ordering::SeqCst;
        Ok(at32(self.atomic_target::<4>(addr, false)?)
            .compare_exchange(expected.to_le(), new.to_le(), sc, sc)
            .is_ok())
    }

    /// Compare-and-swap of the naturally aligned 64-bit word at `addr` (`sc.d`).
    pub fn cas64(&self, addr: u64, expected: u64, new: u64) -> Result<bool, MemFault> {
        let sc = std::sync::atomic::Ordering::SeqCst;
        Ok(at64(self.atomic_target::<8>(addr, false)?)
            .compare_exchange(expected.to_le(), new.to_le(), sc, sc)
            .is_ok())
    }
}
macro_rules! memory_impl {
    () => {
        #[inline]
        fn load8(&self, addr: u64) -> Result<u8, MemFault> {
            Ok(self.load_n::<1>(addr, PERM_R, AccessKind::Read)? as u8)
        }
        #[inline]
        fn load16(&self, addr: u64) -> Result<u16, MemFault> {
            Ok(self.load_n::<2>(addr, PERM_R, AccessKind::Read)? as u16)
        }
        #[inline]
        fn load32(&self, addr: u64) -> Result<u32, MemFault> {
            Ok(self.load_n::<4>(addr, PERM_R, AccessKind::Read)? as u32)
        }
        #[inline]
        fn load64(&self, addr: u64) -> Result<u64, MemFault> {
            self.load_n::<8>(addr, PERM_R, AccessKind::Read)
        }
        #[inline]
        fn store8(&mut self, addr: u64, value: u8) -> Result<(), MemFault> {
            self.store_n::<1>(addr, u64::from(value))
        }
        #[inline]
        fn store16(&mut self, addr: u64, value: u16) -> Result<(), MemFault> {
            self.store_n::<2>(addr, u64::from(value))
        }
        #[inline]
        fn store32(&mut self, addr: u64, value: u32) -> Result<(), MemFault> {
            self.store_n::<4>(addr, u64::from(value))
        }
        #[inline]
        fn store64(&mut self, addr: u64, value: u64) -> Result<(), MemFault> {
            self.store_n::<8>(addr, value)
        }
        #[inline]
        fn fetch16(&self, addr: u64) -> Result<u16, MemFault> {
            Ok(self.load_n::<2>(addr, PERM_X, AccessKind::Fetch)? as u16)
        }
        fn amo32(&mut self, addr: u64, op: AmoOp, src: u32) -> Result<u32, MemFault> {
            GuestMemory::amo32(self, addr, op, src)
        }
        fn amo64(&mut self, addr: u64, op: AmoOp, src: u64) -> Result<u64, MemFault> {
            GuestMemory::amo64(self, addr, op, src)
        }
        fn cas32(&mut self, addr: u64, expected: u32, new: u32) -> Result<bool, MemFault> {
            GuestMemory::cas32(self, addr, expected, new)
        }
        fn cas64(&mut self, addr: u64, expected: u64, new: u64) -> Result<bool, MemFault> {
            GuestMemory::cas64(self, addr, expected, new)
        }
    };
}

impl Memory for GuestMemory {
    memory_impl!();
}

/// Guest threads share one `GuestMemory`: each runs guest code through a shared
/// reference (stores are atomic, so they need no exclusive borrow).
impl Memory for &GuestMemory {
    memory_impl!();
}

mod changelog;
use changelog::ChangeLog;
pub use changelog::{MemChange, MemDifference};

#[cfg(test)]
mod tests;

/// Locks `m` if it is free (a poisoned lock counts as free: its state is still the
/// best there is).
pub(crate) fn try_lock<T>(m: &Mutex<T>) -> Option<MutexGuard<'_, T>> {
    match m.try_lock() {
        Ok(g) => Some(g),
        Err(std::sync::TryLockError::Poisoned(p)) => Some(p.into_inner()),
        Err(std::sync::TryLockError::WouldBlock) => None,
    }
}
