//! Host process primitives for guest processes: fork, exec, wait, and the signal state
//! a new program image inherits.
//!
//! Guest processes are host processes (one vmjit per guest process), so guest pids are
//! host pids and a guest's `wait4` is the host's. This module owns the raw calls; the
//! policy (what the child keeps, how a riscv64 program is run again under vmjit) lives
//! in `crate::fork` and `crate::syscall::exec`.
//!
//! **Invariants.** Every function here either passes only host buffers it owns to the
//! kernel or documents what the caller guarantees. Nothing here allocates between a
//! `fork` and the return to the caller in the child (the child may be a copy of a
//! multi-threaded process).

use std::ffi::CString;

use crate::host::int_call;

/// The first word of a kernel signal set: bit `n-1` is signal `n` (1..=64), the same
/// numbering on x86-64 and riscv64.
pub type SigBits = u64;

/// `fork()` of the calling thread: `Ok(0)` in the child, `Ok(pid)` in the parent.
///
/// The caller must hold, across the call, every lock the child will take (the other
/// threads do not exist in the child, so a lock one of them held would never be
/// released there).
pub fn fork() -> Result<i64, i32> {
    // SAFETY: fork has no memory-safety preconditions; the child only has this thread,
    // and the caller has made sure the state it uses is consistent (see above).
    let r = unsafe { libc::fork() };
    if r < 0 {
        Err(std::io::Error::last_os_error()
            .raw_os_error()
            .unwrap_or(libc::EAGAIN))
    } else {
        Ok(i64::from(r))
    }
}

/// `wait4(pid, &status, options, &rusage)`; the status and the 144-byte rusage (the
/// same layout on x86-64 and riscv64) come back as bytes for the guest.
pub fn wait4(pid: i32, options: i32) -> (i64, i32, [u8; 144]) {
    let mut status: libc::c_int = 0;
    // SAFETY: rusage is plain old data; all-zero is a valid value.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `status` and `ru` are live host values the kernel writes.
    let r = unsafe { libc::wait4(pid, &mut status, options, &mut ru) };
    let r = if r < 0 {
        -i64::from(
            std::io::Error::last_os_error()
                .raw_os_error()
                .unwrap_or(libc::EINVAL),
        )
    } else {
        i64::from(r)
    };
    (r, status, rusage_bytes(&ru))
}

fn rusage_bytes(ru: &libc::rusage) -> [u8; 144] {
    const _: () = assert!(std::mem::size_of::<libc::rusage>() == 144);
    // SAFETY: rusage is 144 bytes of plain old data (asserted above).
    unsafe { std::mem::transmute_copy(ru) }
}

/// `waitid(idtype, id, &info, options, &rusage)`: the 128-byte siginfo (the generic
/// layout both architectures use for SIGCHLD) and the rusage as bytes.
pub fn waitid(idtype: u32, id: u32, options: i32) -> (i64, [u8; 128], [u8; 144]) {
    let mut info = [0u8; 128];
    // SAFETY: rusage is plain old data; all-zero is a valid value.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `info` (128 bytes, a siginfo's size) and `ru` are live host buffers the
    // kernel writes.
    let r = unsafe {
        libc::syscall(
            libc::SYS_waitid,
            idtype,
            id,
            info.as_mut_ptr(),
            options,
            &mut ru as *mut libc::rusage,
        )
    };
    let r = if r < 0 {
        -i64::from(
            std::io::Error::last_os_error()
                .raw_os_error()
                .unwrap_or(libc::EINVAL),
        )
    } else {
        r
    };
    (r, info, rusage_bytes(&ru))
}

/// The calling thread's blocked signals.
pub fn thread_mask() -> SigBits {
    let mut old: u64 = 0;
    // SAFETY: `old` is a live 8-byte host buffer; the new set is null (query only).
    unsafe {
        libc::syscall(
            libc::SYS_rt_sigprocmask,
            libc::SIG_BLOCK,
            std::ptr::null::<u64>(),
            &mut old as *mut u64,
            8usize,
        );
    }
    old
}

/// The signals whose host disposition is `SIG_IGN` now (1..=64).
pub fn ignored_signals() -> SigBits {
    let mut bits = 0;
    for sig in 1..=64 {
        // SAFETY: sigaction is plain old data; all-zero is valid; only the old action
        // is read.
        let ignored = unsafe {
            let mut old: libc::sigaction = std::mem::zeroed();
            libc::sigaction(sig, std::ptr::null(), &mut old) == 0
                && old.sa_sigaction == libc::SIG_IGN
        };
        if ignored {
            bits |= 1 << (sig - 1);
        }
    }
    bits
}

extern "C" fn until_exec(_: libc::c_int) {}

/// Sets the host dispositions a program vmjit is about to exec should inherit: the
/// signals in `ignore` ignored, every other catchable one back to its default. A
/// signal vmjit ignores but the new program must not gets a no-op handler instead of
/// `SIG_DFL` (exec turns handled signals into `SIG_DFL`), so vmjit's other threads keep
/// its behaviour until the exec happens.
pub fn dispositions_for_exec(ignore: SigBits) {
    let vmjit_ignores = ignored_signals();
    for sig in 1..=64i32 {
        if sig == libc::SIGKILL || sig == libc::SIGSTOP {
            continue;
        }
        let bit = 1u64 << (sig - 1);
        let handler = if ignore & bit != 0 {
            libc::SIG_IGN
        } else if vmjit_ignores & bit != 0 {
            until_exec as *const () as usize
        } else {
            continue;
        };
        // SAFETY: sigaction is plain old data (all-zero is valid); the handler is
        // SIG_IGN or an extern "C" function that does nothing (async-signal-safe).
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = handler;
            sa.sa_flags = libc::SA_RESTART;
            libc::sigemptyset(&mut sa.sa_mask);
            libc::sigaction(sig, &sa, std::ptr::null_mut());
        }
    }
}

/// Sets the host disposition of SIGCHLD as the guest's asks: ignoring it (or
/// `SA_NOCLDWAIT`) makes the kernel reap children at once, which only the host can
/// do. Otherwise the default (vmjit takes the signal with `sigtimedwait`).
pub fn set_sigchld(ignore: bool, nocldwait: bool) {
    // SAFETY: sigaction is plain old data (all-zero is valid); SIG_IGN/SIG_DFL have no
    // handler to run.
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = if ignore { libc::SIG_IGN } else { libc::SIG_DFL };
        sa.sa_flags = if nocldwait { libc::SA_NOCLDWAIT } else { 0 };
        libc::sigemptyset(&mut sa.sa_mask);
        libc::sigaction(libc::SIGCHLD, &sa, std::ptr::null_mut());
    }
}

/// Sets the calling thread's blocked signals (just before an exec: the new program
/// inherits them).
pub fn set_thread_mask(mask: SigBits) {
    // SAFETY: `mask` is a live 8-byte host value; the old set is not asked for.
    unsafe {
        libc::syscall(
            libc::SYS_rt_sigprocmask,
            libc::SIG_SETMASK,
            &mask as *const u64,
            std::ptr::null_mut::<u64>(),
            8usize,
        );
    }
}

/// `dup3(from, to, 0)`: `to` becomes a copy of `from`, without close-on-exec
/// (`from` and `to` differ).
pub fn dup2(from: i32, to: i32) -> i64 {
    int_call(libc::SYS_dup3, [from as u64, to as u64, 0, 0, 0, 0])
}

/// Reads the start of file `fd` into `buf`; the byte count or a negative errno.
pub fn pread(fd: i32, buf: &mut [u8]) -> i64 {
    // SAFETY: `buf` is a live host buffer of its length.
    let r = unsafe { libc::pread(fd, buf.as_mut_ptr().cast(), buf.len(), 0) };
    if r < 0 {
        -i64::from(
            std::io::Error::last_os_error()
                .raw_os_error()
                .unwrap_or(libc::EIO),
        )
    } else {
        r as i64
    }
}

/// Marks `fd` close-on-exec (or not).
pub fn set_cloexec(fd: i32, on: bool) -> i64 {
    let flag = if on { libc::FD_CLOEXEC } else { 0 };
    crate::host::fcntl_int(fd, libc::F_SETFD, flag as u64)
}

/// `execve(path, argv, envp)` of host strings; returns only on failure (a negative
/// errno).
pub fn execve(path: &CString, argv: &[CString], envp: &[CString]) -> i64 {
    let mut av: Vec<*const libc::c_char> = argv.iter().map(|a| a.as_ptr()).collect();
    av.push(std::ptr::null());
    let mut ev: Vec<*const libc::c_char> = envp.iter().map(|e| e.as_ptr()).collect();
    ev.push(std::ptr::null());
    // SAFETY: `path` and every string are NUL-terminated and alive across the call;
    // both arrays end in a null pointer.
    unsafe { libc::execve(path.as_ptr(), av.as_ptr(), ev.as_ptr()) };
    -i64::from(
        std::io::Error::last_os_error()
            .raw_os_error()
            .unwrap_or(libc::ENOEXEC),
    )
}

/// A pipe whose read end waits for a vforked child to exec or exit: both ends are
/// close-on-exec, so the child's exec (or end) closes its write end.
pub fn vfork_pipe() -> Option<(i32, i32)> {
    let mut fds = [0i32; 2];
    // SAFETY: `fds` is a live two-int host buffer.
    let r = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) };
    (r == 0).then_some((fds[0], fds[1]))
}

/// Reads `fd` until end of file (or an error other than EINTR), then closes it.
pub fn wait_for_eof(fd: i32) {
    let mut b = [0u8; 16];
    loop {
        // SAFETY: `b` is a live host buffer of its length.
        let r = unsafe { libc::read(fd, b.as_mut_ptr().cast(), b.len()) };
        if r == 0
            || r < 0 && std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted
        {
            break;
        }
    }
    crate::host::close(fd);
}
