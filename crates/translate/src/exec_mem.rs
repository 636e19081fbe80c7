//! Minimal executable memory for tests and examples, until the code cache owns it:
//! map anonymous memory read+write, copy the bytes, flip it to read+execute (never
//! writable and executable at once), call it, unmap on drop.
//!
//! One of the two modules of the crate with `unsafe` (the other is `helpers`).

use crate::context::JitContext;

/// A block of host code in its own read+execute mapping.
#[derive(Debug)]
pub struct ExecBuf {
    ptr: *mut u8,
    map_len: usize,
}

impl ExecBuf {
    /// Maps `code` read+execute. Fails on empty code or when the host refuses.
    pub fn new(code: &[u8]) -> std::io::Result<Self> {
        if code.is_empty() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "empty code",
            ));
        }
        // SAFETY: sysconf has no preconditions.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
        let page = if page > 0 { page as usize } else { 4096 };
        let map_len = code.len().div_ceil(page) * page;
        // SAFETY: an anonymous private mapping at a kernel-chosen address touches no
        // existing memory; the result is checked below.
        let p = unsafe {
            libc::mmap(
                core::ptr::null_mut(),
                map_len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(std::io::Error::last_os_error());
        }
        let buf = ExecBuf {
            ptr: p.cast(),
            map_len,
        };
        // SAFETY: the mapping is `map_len >= code.len()` bytes, writable, and fresh, so
        // it overlaps nothing `code` borrows.
        unsafe { core::ptr::copy_nonoverlapping(code.as_ptr(), buf.ptr, code.len()) };
        // SAFETY: changes the protection of exactly the mapping created above.
        let r = unsafe { libc::mprotect(p, map_len, libc::PROT_READ | libc::PROT_EXEC) };
        if r != 0 {
            return Err(std::io::Error::last_os_error());
        }
        // x86-64 keeps instruction fetch coherent with stores; other hosts would need an
        // instruction-cache flush here (the code cache owns that later).
        Ok(buf)
    }

    /// Runs the translated (unchained) block with `ctx`.
    ///
    /// # Safety
    /// The bytes must be a function produced by [`crate::Translator::translate`] for this
    /// host with chaining off (chained blocks are entered through
    /// [`ExecBuf::call_trampoline`]), and `ctx` must satisfy the contract of [`crate::context`] (valid memory,
    /// permission table and helper table) for the duration of the call.
    pub unsafe fn call(&self, ctx: *mut JitContext) -> u64 {
        // SAFETY: the caller guarantees the mapping holds a translated block, whose
        // signature is `extern "C" fn(*mut JitContext) -> u64`; the mapping is RX and
        // lives as long as `self`.
        unsafe {
            let f: unsafe extern "C" fn(*mut JitContext) -> u64 = core::mem::transmute(self.ptr);
            f(ctx)
        }
    }
}

impl ExecBuf {
    /// Host address of the code (what a jump cache entry holds).
    pub fn ptr(&self) -> *const u8 {
        self.ptr
    }

    /// Runs the chained block at `block` through this trampoline.
    ///
    /// # Safety
    /// `self` must hold [`crate::Translator::trampoline`] code and `block` point to a
    /// block translated with chaining by a translator of the same configuration and
    /// still mapped; `ctx` as for [`ExecBuf::call`], and every code address in the jump
    /// cache it names must stay mapped for the duration of the call.
    pub unsafe fn call_trampoline(&self, ctx: *mut JitContext, block: *const u8) -> u64 {
        // SAFETY: the caller guarantees the mapping holds the trampoline, whose signature
        // is `extern "C" fn(*mut JitContext, *const u8) -> u64`, and that `block` and
        // `ctx` are valid for it.
        unsafe {
            let f: unsafe extern "C" fn(*mut JitContext, *const u8) -> u64 =
                core::mem::transmute(self.ptr);
            f(ctx, block)
        }
    }
}

impl Drop for ExecBuf {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the mapping created in `new`, owned by `self`; no call
        // into it can be running since `call` borrows `self`.
        unsafe {
            libc::munmap(self.ptr.cast(), self.map_len);
        }
    }
}
