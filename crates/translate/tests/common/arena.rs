//! A thread's reusable executable memory for the differential tests. A fresh mapping per
//! translation (`ExecBuf`) costs an `mprotect` and a `munmap`, each a TLB shoot-down of
//! every other core running the process: with two test threads, most of the time went
//! there. One memfd mapped twice instead (written through a read+write view, run from
//! a read+execute view, never remapped) is reused for every sequence of the thread.
//!
//! x86-64 keeps instruction fetch coherent with writes through another mapping of the
//! same pages; other hosts fall back to one `ExecBuf` per translation.

use std::cell::{Cell, RefCell};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use translate::exec_mem::ExecBuf;

/// Bytes of a thread's arena: the largest test program (two blocks, or a region of a
/// few dozen instructions) needs a few KiB.
const ARENA_BYTES: usize = 1 << 20;

/// Translated code placed in the arena, callable until the arena is reset.
#[derive(Clone, Copy, Debug)]
pub struct Code<'a> {
    ptr: *const u8,
    _arena: std::marker::PhantomData<&'a Arena>,
}

impl Code<'_> {
    pub fn ptr(&self) -> *const u8 {
        self.ptr
    }
}

pub struct Arena {
    rw: *mut u8,
    rx: *const u8,
    used: Cell<usize>,
    /// Hosts other than x86-64: one mapping per translation.
    bufs: RefCell<Vec<ExecBuf>>,
    _fd: Option<OwnedFd>,
}

impl Arena {
    fn new() -> io::Result<Arena> {
        if !cfg!(target_arch = "x86_64") {
            return Ok(Arena {
                rw: std::ptr::null_mut(),
                rx: std::ptr::null(),
                used: Cell::new(0),
                bufs: RefCell::new(Vec::new()),
                _fd: None,
            });
        }
        // SAFETY: a NUL-terminated static name and valid flags.
        let raw = unsafe { libc::memfd_create(c"vmjit-test-code".as_ptr(), libc::MFD_CLOEXEC) };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `raw` is a fresh fd nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        // SAFETY: a plain system call on a valid fd.
        if unsafe { libc::ftruncate(fd.as_raw_fd(), ARENA_BYTES as libc::off_t) } != 0 {
            return Err(io::Error::last_os_error());
        }
        let map = |prot| {
            // SAFETY: a new shared mapping of the memfd at a kernel-chosen address; it
            // overlaps nothing and is checked below.
            let p = unsafe {
                libc::mmap(
                    std::ptr::null_mut(),
                    ARENA_BYTES,
                    prot,
                    libc::MAP_SHARED,
                    fd.as_raw_fd(),
                    0,
                )
            };
            if p == libc::MAP_FAILED {
                Err(io::Error::last_os_error())
            } else {
                Ok(p.cast::<u8>())
            }
        };
        let rw = map(libc::PROT_READ | libc::PROT_WRITE)?;
        let rx = map(libc::PROT_READ | libc::PROT_EXEC)?;
        Ok(Arena {
            rw,
            rx,
            used: Cell::new(0),
            bufs: RefCell::new(Vec::new()),
            _fd: Some(fd),
        })
    }

    /// Copies `code` into the arena and returns where it runs.
    pub fn add(&self, code: &[u8]) -> Code<'_> {
        if self.rw.is_null() {
            let buf = ExecBuf::new(code).expect("map code");
            let ptr = buf.ptr();
            self.bufs.borrow_mut().push(buf);
            return Code {
                ptr,
                _arena: std::marker::PhantomData,
            };
        }
        let at = self.used.get().next_multiple_of(64);
        assert!(
            at + code.len() <= ARENA_BYTES,
            "test code arena full ({} bytes)",
            at + code.len()
        );
        // SAFETY: `[at, at + len)` lies inside the RW view (checked above) and no code in
        // it is running or callable: `reset` took `&mut self`, so no `Code` handed out
        // before it lives, and later ones lie below `at`.
        unsafe { std::ptr::copy_nonoverlapping(code.as_ptr(), self.rw.add(at), code.len()) };
        self.used.set(at + code.len());
        Code {
            // SAFETY: the same offset in the RX view, which has the same length.
            ptr: unsafe { self.rx.add(at) },
            _arena: std::marker::PhantomData,
        }
    }

    /// Forgets every code placed so far (none can be borrowed any more).
    pub fn reset(&mut self) {
        self.used.set(0);
        self.bufs.get_mut().clear();
    }
}

impl Drop for Arena {
    fn drop(&mut self) {
        if !self.rw.is_null() {
            // SAFETY: unmaps exactly the two views made in `new`; no `Code` outlives the
            // arena, so nothing can run from them any more.
            unsafe {
                libc::munmap(self.rw.cast(), ARENA_BYTES);
                libc::munmap(self.rx.cast_mut().cast(), ARENA_BYTES);
            }
        }
    }
}

thread_local! {
    static ARENA: RefCell<Option<Arena>> = const { RefCell::new(None) };
}

/// Calls `f` with this thread's arena, emptied first.
pub fn with_arena<R>(f: impl FnOnce(&Arena) -> R) -> R {
    ARENA.with(|a| {
        let mut a = a.borrow_mut();
        let arena = a.get_or_insert_with(|| Arena::new().expect("test code arena"));
        arena.reset();
        f(arena)
    })
}

/// Code of a calling convention `extern "C" fn(*mut JitContext) -> u64`, run directly.
///
/// # Safety
/// `code` must be an unchained translated block or region for this host, and `ctx`
/// must satisfy the contract of `translate::context` for the call.
pub unsafe fn call(code: Code<'_>, ctx: *mut translate::JitContext) -> u64 {
    // SAFETY: the caller guarantees the bytes at `code` are such a function, mapped
    // executable for as long as the arena is not reset (it is borrowed by `code`).
    unsafe {
        let f: unsafe extern "C" fn(*mut translate::JitContext) -> u64 =
            std::mem::transmute(code.ptr);
        f(ctx)
    }
}

/// Stops glibc from returning freed heap memory to the kernel after every large free
/// (each return is an `madvise` and a TLB shoot-down when threads share the process):
/// the long mode frees tens of KiB per sequence.
pub fn keep_freed_memory() {
    // SAFETY: mallopt only changes allocator tuning parameters.
    unsafe {
        libc::mallopt(libc::M_TRIM_THRESHOLD, 1 << 30);
        libc::mallopt(libc::M_MMAP_THRESHOLD, 16 << 20);
    }
}
