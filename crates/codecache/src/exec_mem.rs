//! Executable memory: the only module (with `icache`) that contains `unsafe`.
//!
//! One memfd is mapped twice: a read+write view the cache copies code into, and a
//! read+execute view code runs from. No mapping is ever writable and executable at once
//! (W^X), and nothing is ever remapped, so a code pointer stays mapped for the life of the
//! arena. The memfd is closed as soon as both views exist (the mappings keep its memory):
//! a descriptor to writable memory that is also executable is one an embedder's guest
//! could reach (by number, or through `/proc/self/fd`), and nothing needs it later. The
//! file's identity ([`ExecMemory::file_id`]) is kept so that an embedder can refuse the
//! file however it is named (`/proc/self/map_files/...`).
//!
//! State machine, per arena: `memfd_create` -> `ftruncate` -> mapped RW + RX -> fd closed
//! ("Mapped") -> dropped (both views unmapped). Per block: bytes are *staged*
//! through the RW view by [`ExecMemory::write`], which then *publishes* them with the
//! instruction-cache maintenance the host needs before any pointer to them is handed out.
//!
//! Invariants: `write` takes `&mut self`, so only the single owner (the cache's writer,
//! under its lock) writes; it is given only ranges the allocator has reclaimed, i.e. that
//! no executor can be running (see `reclaim` in lib.rs). Readers never touch this struct:
//! they only receive addresses inside the RX view.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::ptr::NonNull;

use crate::icache;

/// A dual-mapped W^X arena of executable memory.
pub(crate) struct ExecMemory {
    rw: NonNull<u8>,
    rx: NonNull<u8>,
    /// Mapped length in bytes (a multiple of the page size).
    len: usize,
    /// Bytes from offset 0 already populated in the RW view (see `populate_to`).
    populated: usize,
    /// Cleared when the kernel lacks MADV_POPULATE_* (before Linux 5.14).
    can_populate: bool,
    /// Device and inode of the memfd behind both views.
    file_id: (u64, u64),
}

// SAFETY (Send/Sync): the raw pointers are two mappings (MAP_SHARED views of a memfd
// nobody else holds) owned exclusively by this struct;
// writing needs `&mut self` and reading the RX view is only done through addresses handed
// out to callers, so sharing the struct between threads introduces no data race.
// SAFETY: see the comment above.
unsafe impl Send for ExecMemory {}
// SAFETY: see the comment above.
unsafe impl Sync for ExecMemory {}

const _: () = {
    const fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<ExecMemory>();
};

fn page_size() -> usize {
    // SAFETY: sysconf has no memory-safety preconditions.
    let p = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    usize::try_from(p)
        .ok()
        .filter(|p| p.is_power_of_two())
        .unwrap_or(4096)
}

impl ExecMemory {
    /// Maps at least `min_len` bytes (rounded up to whole pages).
    /// An arena of at least `min_len` bytes, the first `commit` of them committed now.
    pub(crate) fn new(min_len: usize, commit: usize) -> io::Result<Self> {
        let page = page_size();
        let len = min_len
            .max(1)
            .checked_next_multiple_of(page)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "arena too large"))?;
        let off_len = libc::off_t::try_from(len)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "arena too large"))?;
        // SAFETY: the name is a NUL-terminated static string; flags are valid constants.
        let raw = unsafe { libc::memfd_create(c"codecache".as_ptr(), libc::MFD_CLOEXEC) };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `raw` is a fresh, valid fd that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        // SAFETY: plain syscall on a valid fd.
        if unsafe { libc::ftruncate(fd.as_raw_fd(), off_len) } != 0 {
            return Err(io::Error::last_os_error());
        }
        let rw = map(&fd, len, libc::PROT_READ | libc::PROT_WRITE)?;
        let rx = match map(&fd, len, libc::PROT_READ | libc::PROT_EXEC) {
            Ok(rx) => rx,
            Err(e) => {
                // SAFETY: `rw` was mapped above with exactly `len` bytes and is not shared.
                unsafe { libc::munmap(rw.as_ptr().cast(), len) };
                return Err(e);
            }
        };
        // SAFETY: `st` is plain old data for fstat to fill; `fd` is valid.
        let file_id = unsafe {
            let mut st: libc::stat = std::mem::zeroed();
            if libc::fstat(fd.as_raw_fd(), &mut st) == 0 {
                (st.st_dev, st.st_ino)
            } else {
                (0, 0)
            }
        };
        drop(fd);
        let mut m = Self {
            rw,
            rx,
            len,
            populated: 0,
            can_populate: true,
            file_id,
        };
        m.populate_to(commit.min(len));
        Ok(m)
    }

    /// Device and inode of the file behind the executable memory.
    pub(crate) fn file_id(&self) -> (u64, u64) {
        self.file_id
    }

    /// Mapped length in bytes.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Address of byte `offset` in the executable view.
    pub(crate) fn rx_addr(&self, offset: usize) -> usize {
        self.rx.as_ptr() as usize + offset
    }

    /// Copies `bytes` to `offset` through the writable view and publishes them for
    /// execution (instruction-cache maintenance). Returns the executable address, or `None`
    /// if the range is outside the arena (never the case for allocator-provided ranges).
    pub(crate) fn write(&mut self, offset: usize, bytes: &[u8]) -> Option<usize> {
        let end = offset.checked_add(bytes.len())?;
        if end > self.len {
            return None;
        }
        // SAFETY: `offset..end` is inside the RW mapping (checked above); `&mut self`
        // makes this the only writer; the source slice cannot overlap the RW view, whose
        // address never leaves this struct (callers only ever see RX addresses).
        unsafe {
            std::ptr::copy_nonoverlapping(
                bytes.as_ptr(),
                self.rw.as_ptr().add(offset),
                bytes.len(),
            );
        }
        if end > self.populated {
            self.populate_to(end);
        }
        let rx = self.rx_addr(offset);
        icache::publish(rx, bytes.len());
        Some(rx)
    }
}

/// Memory is committed ahead of use in chunks of this size.
const POPULATE_CHUNK: usize = 1 << 16;

impl ExecMemory {
    /// Pre-faults the arena up to at least `end` (in 64 KiB steps, never past `len`) with
    /// one `madvise` instead of one page fault per 4 KiB page: at creation for the bytes
    /// the configuration asks for (`commit_at_creation`), then as blocks are first
    /// written further on. A fresh shmem page costs about 1 µs to allocate, zero and map
    /// (measured: a fill of 10 000 100-byte blocks ran at 10.2 M/s into a fresh arena and
    /// 14.6 M/s after a flush; the difference is the 274 pages). Best
    /// effort: on failure the pages simply fault in on first touch.
    fn populate_to(&mut self, end: usize) {
        if !self.can_populate {
            return;
        }
        let to = end.next_multiple_of(POPULATE_CHUNK).min(self.len);
        let from = self.populated;
        if to <= from {
            return;
        }
        // Only the RW view: the copy touches it now; the RX view faults in on first
        // execution (populating it too measured slower for small fills).
        // SAFETY: `from..to` lies inside the RW mapping (`from` is 0 or a previous `to`,
        // a multiple of the chunk, or `len`); populating does not change contents.
        let r = unsafe {
            libc::madvise(
                self.rw.as_ptr().add(from).cast(),
                to - from,
                libc::MADV_POPULATE_WRITE,
            )
        };
        if r != 0 {
            self.can_populate = false;
            return;
        }
        self.populated = to;
    }
}

fn map(fd: &OwnedFd, len: usize, prot: libc::c_int) -> io::Result<NonNull<u8>> {
    // SAFETY: a fresh shared mapping of `len` bytes of a file that is `len` bytes long;
    // the kernel picks the address, so no existing mapping is replaced.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            prot,
            libc::MAP_SHARED,
            fd.as_raw_fd(),
            0,
        )
    };
    if p == libc::MAP_FAILED {
        return Err(io::Error::last_os_error());
    }
    NonNull::new(p.cast::<u8>()).ok_or_else(|| io::Error::other("mmap returned null"))
}

impl Drop for ExecMemory {
    fn drop(&mut self) {
        // The cache drops
        // its ExecMemory only when no executor handle remains (executors hold the cache's
        // shared state alive), so no code can be running from the RX view here.
        // SAFETY: both mappings were created in `new` with `self.len` bytes and are
        // unmapped exactly once.
        unsafe {
            libc::munmap(self.rw.as_ptr().cast(), self.len);
            libc::munmap(self.rx.as_ptr().cast(), self.len);
        }
    }
}
