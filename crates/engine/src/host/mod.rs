//! Safe wrappers over the host system calls that guest system calls are forwarded to.
//!
//! Every wrapper returns the host kernel's answer in the kernel's own convention: a
//! non-negative result, or `-errno` (errno values are the same on riscv64 and x86-64).
//! Buffers are either host Rust values or [`HostRange`]s, which [`GuestMemory`] hands
//! out only after checking that the whole guest range is mapped with the needed
//! permission; so the kernel never reads or writes outside the guest's space.
//!
//! This is, with `memory`, the only module of the engine with `unsafe`. Its submodules
//! hold the wrappers of one area each, so that this file does not grow with every new
//! family of calls.
//!
//! [`GuestMemory`]: crate::memory::GuestMemory

use std::ffi::CStr;

use crate::memory::HostRange;

fn errno() -> i64 {
    i64::from(
        std::io::Error::last_os_error()
            .raw_os_error()
            .unwrap_or(libc::EIO),
    )
}

fn ret(r: libc::c_long) -> i64 {
    if r < 0 { -errno() } else { r }
}

/// Raw host syscall with up to six plain-integer arguments.
///
/// # Safety
/// Every argument that the host kernel interprets as a pointer must be valid for the
/// access the kernel makes (or null where allowed).
unsafe fn sys(nr: libc::c_long, a: [u64; 6]) -> i64 {
    // SAFETY: forwarded to the caller's contract.
    ret(unsafe { libc::syscall(nr, a[0], a[1], a[2], a[3], a[4], a[5]) })
}

fn p(r: &HostRange<'_>) -> u64 {
    r.ptr() as u64
}

/// `read(fd, buf, len)` into a writable guest range.
pub fn read(fd: i32, buf: HostRange<'_>) -> i64 {
    // SAFETY: `buf` is a checked writable range of `buf.len()` bytes.
    unsafe {
        sys(
            libc::SYS_read,
            [fd as u64, p(&buf), buf.len() as u64, 0, 0, 0],
        )
    }
}

/// `write(fd, buf, len)` from a readable guest range.
pub fn write(fd: i32, buf: HostRange<'_>) -> i64 {
    // SAFETY: `buf` is a checked readable range of `buf.len()` bytes.
    unsafe {
        sys(
            libc::SYS_write,
            [fd as u64, p(&buf), buf.len() as u64, 0, 0, 0],
        )
    }
}

/// `pread64`.
pub fn pread(fd: i32, buf: HostRange<'_>, off: i64) -> i64 {
    // SAFETY: `buf` is a checked writable range.
    unsafe {
        sys(
            libc::SYS_pread64,
            [fd as u64, p(&buf), buf.len() as u64, off as u64, 0, 0],
        )
    }
}

/// `pwrite64`.
pub fn pwrite(fd: i32, buf: HostRange<'_>, off: i64) -> i64 {
    // SAFETY: `buf` is a checked readable range.
    unsafe {
        sys(
            libc::SYS_pwrite64,
            [fd as u64, p(&buf), buf.len() as u64, off as u64, 0, 0],
        )
    }
}

fn iovecs(bufs: &[HostRange<'_>]) -> Vec<libc::iovec> {
    bufs.iter()
        .map(|b| libc::iovec {
            iov_base: b.ptr().cast(),
            iov_len: b.len(),
        })
        .collect()
}

/// `readv`/`writev` (`off == None`) or `preadv`/`pwritev` (`Some(offset)`): `write`
/// selects the direction. Every range is checked (writable for a read, readable for a
/// write).
pub fn rw_vectored(write: bool, fd: i32, bufs: &[HostRange<'_>], off: Option<i64>) -> i64 {
    let iov = iovecs(bufs);
    let nr = match (write, off) {
        (false, None) => libc::SYS_readv,
        (true, None) => libc::SYS_writev,
        (false, Some(_)) => libc::SYS_preadv,
        (true, Some(_)) => libc::SYS_pwritev,
    };
    // On a 64-bit host the whole offset travels in `pos_l`; `pos_h` is ignored.
    let pos = off.unwrap_or(0) as u64;
    // SAFETY: `iov` lives across the call and each entry is a checked range with the
    // permission the direction needs.
    unsafe {
        sys(
            nr,
            [fd as u64, iov.as_ptr() as u64, iov.len() as u64, pos, 0, 0],
        )
    }
}

/// `readv` into checked writable ranges.
pub fn readv(fd: i32, bufs: &[HostRange<'_>]) -> i64 {
    rw_vectored(false, fd, bufs, None)
}

/// `writev` from checked readable ranges.
pub fn writev(fd: i32, bufs: &[HostRange<'_>]) -> i64 {
    rw_vectored(true, fd, bufs, None)
}

/// `ppoll(fds, nfds, timeout, NULL)` on `nfds` `struct pollfd`s in a host buffer (8
/// bytes each); `timeout` is updated with the time left, as Linux does.
pub fn ppoll_host(fds: &mut [u8], nfds: u64, timeout: Option<&mut (i64, i64)>) -> i64 {
    if nfds.checked_mul(8).is_none_or(|n| n > fds.len() as u64) {
        return -i64::from(libc::EFAULT);
    }
    let mut ts = timeout.as_ref().map(|t| libc::timespec {
        tv_sec: t.0,
        tv_nsec: t.1,
    });
    let tp = ts.as_mut().map_or(0, |t| t as *mut libc::timespec as u64);
    // SAFETY: `fds` is a host buffer holding `nfds` pollfds, readable and writable;
    // `tp` is null or a host timespec alive across the call; the signal mask is null.
    let r = unsafe {
        sys(
            libc::SYS_ppoll,
            [fds.as_mut_ptr() as u64, nfds, tp, 0, 8, 0],
        )
    };
    if let (Some(t), Some(ts)) = (timeout, ts) {
        *t = (ts.tv_sec, ts.tv_nsec);
    }
    r
}

/// `openat(dirfd, path, flags, mode)` (flags already in host encoding).
pub fn openat(dirfd: i32, path: &CStr, flags: i32, mode: u32) -> i64 {
    // SAFETY: `path` is a NUL-terminated host string.
    unsafe {
        sys(
            libc::SYS_openat,
            [
                dirfd as u64,
                path.as_ptr() as u64,
                flags as u64,
                u64::from(mode),
                0,
                0,
            ],
        )
    }
}

/// System calls whose arguments are all plain integers (no pointers): close, lseek,
/// dup, dup3, fcntl with an integer argument, ftruncate, fsync, fchmod, fchdir, umask,
/// getpid and friends. `nr` must be one of [`INT_ONLY`].
pub fn int_call(nr: libc::c_long, a: [u64; 6]) -> i64 {
    if !INT_ONLY.contains(&nr) {
        return -i64::from(libc::ENOSYS);
    }
    // SAFETY: every syscall in `INT_ONLY` takes only integer arguments, so no pointer
    // is passed to the kernel.
    unsafe { sys(nr, a) }
}

/// Host syscalls allowed through [`int_call`].
pub const INT_ONLY: &[libc::c_long] = &[
    libc::SYS_close,
    libc::SYS_lseek,
    libc::SYS_dup,
    libc::SYS_dup3,
    libc::SYS_ftruncate,
    libc::SYS_fsync,
    libc::SYS_fdatasync,
    libc::SYS_fchmod,
    libc::SYS_fchdir,
    libc::SYS_umask,
    libc::SYS_getpid,
    libc::SYS_getppid,
    libc::SYS_getuid,
    libc::SYS_geteuid,
    libc::SYS_getgid,
    libc::SYS_getegid,
    libc::SYS_getpgid,
    libc::SYS_getsid,
    libc::SYS_sched_yield,
    libc::SYS_flock,
];

/// `fcntl` with an integer argument. Any other command is refused with EINVAL: with a
/// pointer argument the kernel would access memory nobody checked.
pub fn fcntl_int(fd: i32, cmd: i32, arg: u64) -> i64 {
    // The integer-argument commands (F_SETSIG/F_GETSIG are 10/11; `libc` lacks them).
    const INT_CMDS: &[i32] = &[
        libc::F_DUPFD,
        libc::F_DUPFD_CLOEXEC,
        libc::F_GETFD,
        libc::F_SETFD,
        libc::F_GETFL,
        libc::F_SETFL,
        libc::F_GETOWN,
        libc::F_SETOWN,
        10,
        11,
        libc::F_GETLEASE,
        libc::F_SETLEASE,
        libc::F_NOTIFY,
        libc::F_GETPIPE_SZ,
        libc::F_SETPIPE_SZ,
        libc::F_GET_SEALS,
        libc::F_ADD_SEALS,
    ];
    if !INT_CMDS.contains(&cmd) {
        return -i64::from(libc::EINVAL);
    }
    // SAFETY: every command in `INT_CMDS` takes an integer argument, so the kernel
    // dereferences no pointer.
    unsafe { sys(libc::SYS_fcntl, [fd as u64, cmd as u64, arg, 0, 0, 0]) }
}

/// The `fcntl` commands whose argument points at a `struct flock`.
pub const FCNTL_LOCK_CMDS: &[i32] = &[
    libc::F_GETLK,
    libc::F_SETLK,
    libc::F_SETLKW,
    libc::F_OFD_GETLK,
    libc::F_OFD_SETLK,
    libc::F_OFD_SETLKW,
];

/// `fcntl` whose argument points at a `struct flock` (same layout on both ABIs); EINVAL
/// for a command not in [`FCNTL_LOCK_CMDS`].
pub fn fcntl_lock(fd: i32, cmd: i32, flock: HostRange<'_>) -> i64 {
    if !FCNTL_LOCK_CMDS.contains(&cmd) {
        return -i64::from(libc::EINVAL);
    }
    if flock.len() < size_of::<libc::flock>() {
        return -i64::from(libc::EFAULT);
    }
    // SAFETY: the lock commands read and write one `struct flock` at the argument, and
    // `flock` is a checked readable and writable range large enough for it.
    unsafe { sys(libc::SYS_fcntl, [fd as u64, cmd as u64, p(&flock), 0, 0, 0]) }
}

/// `pipe2`; returns the two fds or `-errno`.
pub fn pipe2(flags: i32) -> Result<[i32; 2], i64> {
    let mut fds = [0i32; 2];
    // SAFETY: `fds` is a writable `int[2]`.
    let r = unsafe {
        sys(
            libc::SYS_pipe2,
            [fds.as_mut_ptr() as u64, flags as u64, 0, 0, 0, 0],
        )
    };
    if r < 0 { Err(r) } else { Ok(fds) }
}

/// `fstat`.
pub fn fstat(fd: i32) -> Result<libc::stat, i64> {
    // SAFETY: `stat` is plain old data; all-zero is a valid value.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: `st` is a writable `struct stat` of the host ABI.
    let r = unsafe { sys(libc::SYS_fstat, [fd as u64, &raw mut st as u64, 0, 0, 0, 0]) };
    if r < 0 { Err(r) } else { Ok(st) }
}

/// `newfstatat` (flags: AT_* values, identical on both ABIs).
pub fn fstatat(dirfd: i32, path: &CStr, flags: i32) -> Result<libc::stat, i64> {
    // SAFETY: `stat` is plain old data; all-zero is a valid value.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: `path` is NUL-terminated and `st` is a writable host `struct stat`.
    let r = unsafe {
        sys(
            libc::SYS_newfstatat,
            [
                dirfd as u64,
                path.as_ptr() as u64,
                &raw mut st as u64,
                flags as u64,
                0,
                0,
            ],
        )
    };
    if r < 0 { Err(r) } else { Ok(st) }
}

/// `statx` straight into the guest buffer (`struct statx` is arch-independent).
pub fn statx(dirfd: i32, path: &CStr, flags: i32, mask: u32, buf: HostRange<'_>) -> i64 {
    if buf.len() < 256 {
        return -i64::from(libc::EFAULT);
    }
    // SAFETY: `path` is NUL-terminated, `buf` a checked writable 256-byte range.
    unsafe {
        sys(
            libc::SYS_statx,
            [
                dirfd as u64,
                path.as_ptr() as u64,
                flags as u64,
                u64::from(mask),
                p(&buf),
                0,
            ],
        )
    }
}

/// `faccessat2(dirfd, path, mode, flags)`, falling back to `faccessat` when flags are 0.
pub fn faccessat(dirfd: i32, path: &CStr, mode: i32, flags: i32) -> i64 {
    // SAFETY: `path` is NUL-terminated.
    unsafe {
        if flags == 0 {
            sys(
                libc::SYS_faccessat,
                [dirfd as u64, path.as_ptr() as u64, mode as u64, 0, 0, 0],
            )
        } else {
            sys(
                libc::SYS_faccessat2,
                [
                    dirfd as u64,
                    path.as_ptr() as u64,
                    mode as u64,
                    flags as u64,
                    0,
                    0,
                ],
            )
        }
    }
}

/// `getcwd` into a writable guest range; returns the length including the NUL.
pub fn getcwd(buf: HostRange<'_>) -> i64 {
    // SAFETY: `buf` is a checked writable range.
    unsafe { sys(libc::SYS_getcwd, [p(&buf), buf.len() as u64, 0, 0, 0, 0]) }
}

/// `unlinkat`.
pub fn unlinkat(dirfd: i32, path: &CStr, flags: i32) -> i64 {
    // SAFETY: `path` is NUL-terminated.
    unsafe {
        sys(
            libc::SYS_unlinkat,
            [dirfd as u64, path.as_ptr() as u64, flags as u64, 0, 0, 0],
        )
    }
}

/// `mkdirat`.
pub fn mkdirat(dirfd: i32, path: &CStr, mode: u32) -> i64 {
    // SAFETY: `path` is NUL-terminated.
    unsafe {
        sys(
            libc::SYS_mkdirat,
            [dirfd as u64, path.as_ptr() as u64, u64::from(mode), 0, 0, 0],
        )
    }
}

/// `renameat2`.
pub fn renameat2(olddir: i32, old: &CStr, newdir: i32, new: &CStr, flags: u32) -> i64 {
    // SAFETY: both paths are NUL-terminated.
    unsafe {
        sys(
            libc::SYS_renameat2,
            [
                olddir as u64,
                old.as_ptr() as u64,
                newdir as u64,
                new.as_ptr() as u64,
                u64::from(flags),
                0,
            ],
        )
    }
}

/// `readlinkat` into a writable guest range.
pub fn readlinkat(dirfd: i32, path: &CStr, buf: HostRange<'_>) -> i64 {
    // SAFETY: `path` is NUL-terminated, `buf` a checked writable range.
    unsafe {
        sys(
            libc::SYS_readlinkat,
            [
                dirfd as u64,
                path.as_ptr() as u64,
                p(&buf),
                buf.len() as u64,
                0,
                0,
            ],
        )
    }
}

/// `symlinkat(target, newdirfd, linkpath)`.
pub fn symlinkat(target: &CStr, dirfd: i32, link: &CStr) -> i64 {
    // SAFETY: both strings are NUL-terminated.
    unsafe {
        sys(
            libc::SYS_symlinkat,
            [
                target.as_ptr() as u64,
                dirfd as u64,
                link.as_ptr() as u64,
                0,
                0,
                0,
            ],
        )
    }
}

/// `linkat`.
pub fn linkat(olddir: i32, old: &CStr, newdir: i32, new: &CStr, flags: i32) -> i64 {
    // SAFETY: both paths are NUL-terminated.
    unsafe {
        sys(
            libc::SYS_linkat,
            [
                olddir as u64,
                old.as_ptr() as u64,
                newdir as u64,
                new.as_ptr() as u64,
                flags as u64,
                0,
            ],
        )
    }
}

/// `fchownat`.
pub fn fchownat(dirfd: i32, path: &CStr, uid: u32, gid: u32, flags: i32) -> i64 {
    // SAFETY: `path` is NUL-terminated.
    unsafe {
        sys(
            libc::SYS_fchownat,
            [
                dirfd as u64,
                path.as_ptr() as u64,
                u64::from(uid),
                u64::from(gid),
                flags as u64,
                0,
            ],
        )
    }
}

/// `utimensat`; `path` may be absent (then it applies to `dirfd`), `times` is two
/// `(sec, nsec)` pairs or absent (now).
pub fn utimensat(dirfd: i32, path: Option<&CStr>, times: Option<[i64; 4]>, flags: i32) -> i64 {
    let ts = times.map(|t| {
        [
            libc::timespec {
                tv_sec: t[0],
                tv_nsec: t[1],
            },
            libc::timespec {
                tv_sec: t[2],
                tv_nsec: t[3],
            },
        ]
    });
    let tp = ts.as_ref().map_or(0, |t| t.as_ptr() as u64);
    let pp = path.map_or(0, |p| p.as_ptr() as u64);
    // SAFETY: `pp` is null or a NUL-terminated string, `tp` null or two host timespecs,
    // both alive across the call.
    unsafe {
        sys(
            libc::SYS_utimensat,
            [dirfd as u64, pp, tp, flags as u64, 0, 0],
        )
    }
}

/// `truncate`.
pub fn truncate(path: &CStr, len: u64) -> i64 {
    // SAFETY: `path` is NUL-terminated.
    unsafe { sys(libc::SYS_truncate, [path.as_ptr() as u64, len, 0, 0, 0, 0]) }
}

/// `statfs` (by path) or `fstatfs` (by fd) into a writable guest range (`struct statfs`
/// has the same 120-byte layout on both ABIs).
pub fn statfs(target: Result<&CStr, i32>, buf: HostRange<'_>) -> i64 {
    if buf.len() < size_of::<libc::statfs>() {
        return -i64::from(libc::EFAULT);
    }
    // SAFETY: the path is NUL-terminated; `buf` is a checked writable range large
    // enough for `struct statfs`.
    unsafe {
        match target {
            Ok(path) => sys(
                libc::SYS_statfs,
                [path.as_ptr() as u64, p(&buf), 0, 0, 0, 0],
            ),
            Err(fd) => sys(libc::SYS_fstatfs, [fd as u64, p(&buf), 0, 0, 0, 0]),
        }
    }
}

/// `chdir`.
pub fn chdir(path: &CStr) -> i64 {
    // SAFETY: `path` is NUL-terminated.
    unsafe { sys(libc::SYS_chdir, [path.as_ptr() as u64, 0, 0, 0, 0, 0]) }
}

/// `fchmodat`.
pub fn fchmodat(dirfd: i32, path: &CStr, mode: u32) -> i64 {
    // SAFETY: `path` is NUL-terminated.
    unsafe {
        sys(
            libc::SYS_fchmodat,
            [dirfd as u64, path.as_ptr() as u64, u64::from(mode), 0, 0, 0],
        )
    }
}

/// `getdents64` into a writable guest range (`struct linux_dirent64` is
/// arch-independent).
pub fn getdents64(fd: i32, buf: HostRange<'_>) -> i64 {
    // SAFETY: `buf` is a checked writable range.
    unsafe {
        sys(
            libc::SYS_getdents64,
            [fd as u64, p(&buf), buf.len() as u64, 0, 0, 0],
        )
    }
}

/// Size of the structure the kernel writes for the `ioctl` requests vmjit forwards
/// (asm-generic numbers, equal to x86-64's, with the same layouts: kernel
/// `struct termios` is 36 bytes, `struct winsize` 8, FIONREAD's `int` 4); `None` for
/// any other request.
pub const fn ioctl_out_size(req: u64) -> Option<u64> {
    match req {
        0x5401 => Some(36), // TCGETS
        0x5413 => Some(8),  // TIOCGWINSZ
        0x541b => Some(4),  // FIONREAD
        _ => None,
    }
}

/// `ioctl` for a request of [`ioctl_out_size`] writing into `buf`; ENOTTY for any other
/// request, EFAULT when `buf` is too small for the request's structure.
pub fn ioctl_buf(fd: i32, req: u64, buf: HostRange<'_>) -> i64 {
    let Some(size) = ioctl_out_size(req) else {
        return -i64::from(libc::ENOTTY);
    };
    if (buf.len() as u64) < size {
        return -i64::from(libc::EFAULT);
    }
    // SAFETY: the request writes exactly `size` bytes at its argument, and `buf` is a
    // checked writable range at least that long.
    unsafe { sys(libc::SYS_ioctl, [fd as u64, req, p(&buf), 0, 0, 0]) }
}

/// `clock_gettime` / `clock_getres`: `(seconds, nanoseconds)`.
pub fn clock(res: bool, clk: i32) -> Result<(i64, i64), i64> {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    let nr = if res {
        libc::SYS_clock_getres
    } else {
        libc::SYS_clock_gettime
    };
    // SAFETY: `ts` is a writable host timespec.
    let r = unsafe { sys(nr, [clk as u64, &raw mut ts as u64, 0, 0, 0, 0]) };
    if r < 0 {
        Err(r)
    } else {
        Ok((ts.tv_sec, ts.tv_nsec))
    }
}

/// `clock_nanosleep(clk, flags, req, rem)`; on EINTR of a relative sleep also returns
/// the remaining time. The host kernel validates the clock (EINVAL, EOPNOTSUPP).
pub fn clock_nanosleep(clk: i32, flags: i32, sec: i64, nsec: i64) -> Result<(), (i64, (i64, i64))> {
    let req = libc::timespec {
        tv_sec: sec,
        tv_nsec: nsec,
    };
    let mut rem = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `req` is a readable and `rem` a writable host timespec.
    let r = unsafe {
        sys(
            libc::SYS_clock_nanosleep,
            [
                clk as u64,
                flags as u64,
                &raw const req as u64,
                &raw mut rem as u64,
                0,
                0,
            ],
        )
    };
    if r < 0 {
        Err((r, (rem.tv_sec, rem.tv_nsec)))
    } else {
        Ok(())
    }
}

/// `nanosleep` (a relative CLOCK_MONOTONIC sleep); on EINTR returns the remaining time.
pub fn nanosleep(sec: i64, nsec: i64) -> Result<(), (i64, (i64, i64))> {
    clock_nanosleep(libc::CLOCK_MONOTONIC, 0, sec, nsec)
}

/// `uname`.
pub fn uname() -> Result<libc::utsname, i64> {
    // SAFETY: `utsname` is plain old data; all-zero is a valid value.
    let mut u: libc::utsname = unsafe { std::mem::zeroed() };
    // SAFETY: `u` is a writable host utsname.
    let r = unsafe { sys(libc::SYS_uname, [&raw mut u as u64, 0, 0, 0, 0, 0]) };
    if r < 0 { Err(r) } else { Ok(u) }
}

/// `getrandom` into a writable guest range.
pub fn getrandom(buf: HostRange<'_>, flags: u32) -> i64 {
    // SAFETY: `buf` is a checked writable range.
    unsafe {
        sys(
            libc::SYS_getrandom,
            [p(&buf), buf.len() as u64, u64::from(flags), 0, 0, 0],
        )
    }
}

/// Fills a host buffer with random bytes (AT_RANDOM); zeros if the kernel refuses.
pub fn random_bytes(out: &mut [u8]) {
    // SAFETY: `out` is a writable host buffer of `out.len()` bytes.
    let _ = unsafe {
        sys(
            libc::SYS_getrandom,
            [out.as_mut_ptr() as u64, out.len() as u64, 0, 0, 0, 0],
        )
    };
}

/// `prlimit64(0, resource, NULL, &old)`: the current limit of this process.
pub fn getrlimit(resource: u32) -> Result<(u64, u64), i64> {
    let mut lim = libc::rlimit64 {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is a writable host rlimit64; the new-limit pointer is null.
    let r = unsafe {
        sys(
            libc::SYS_prlimit64,
            [0, u64::from(resource), 0, &raw mut lim as u64, 0, 0],
        )
    };
    if r < 0 {
        Err(r)
    } else {
        Ok((lim.rlim_cur, lim.rlim_max))
    }
}

/// `getrusage` into a host struct (same layout as riscv64's).
pub fn getrusage(who: i32, buf: HostRange<'_>) -> i64 {
    if buf.len() < size_of::<libc::rusage>() {
        return -i64::from(libc::EFAULT);
    }
    // SAFETY: `buf` is a checked writable range large enough for `struct rusage`.
    unsafe { sys(libc::SYS_getrusage, [who as u64, p(&buf), 0, 0, 0, 0]) }
}

/// `sysinfo` into a writable guest range (same layout on both ABIs: 112 bytes).
pub fn sysinfo(buf: HostRange<'_>) -> i64 {
    if buf.len() < size_of::<libc::sysinfo>() {
        return -i64::from(libc::EFAULT);
    }
    // SAFETY: `buf` is a checked writable range large enough for `struct sysinfo`.
    unsafe { sys(libc::SYS_sysinfo, [p(&buf), 0, 0, 0, 0, 0]) }
}

/// Writes all of `bytes` to vmjit's own standard error unbuffered (warnings, trace,
/// messages); gives up on errors. That is a private duplicate of the stderr vmjit
/// started with ([`crate::sandbox::diag_fd`]), so the guest closing or reusing its fd 2
/// neither silences vmjit nor puts vmjit's messages into the guest's files.
pub fn write_stderr(mut bytes: &[u8]) {
    let fd = crate::sandbox::diag_fd();
    if fd < 0 {
        return;
    }
    while !bytes.is_empty() {
        // SAFETY: `bytes` is a readable host buffer.
        let r = unsafe {
            sys(
                libc::SYS_write,
                [
                    fd as u64,
                    bytes.as_ptr() as u64,
                    bytes.len() as u64,
                    0,
                    0,
                    0,
                ],
            )
        };
        if r == -i64::from(libc::EINTR) {
            continue;
        }
        if r <= 0 {
            return;
        }
        bytes = &bytes[(r as usize).min(bytes.len())..];
    }
}

/// This process's id.
pub fn getpid() -> i64 {
    int_call(libc::SYS_getpid, [0; 6])
}

/// Moves a file vmjit owns to host descriptor `min` or above (closing the original
/// descriptor); on failure returns it where it was.
pub fn move_file(f: std::fs::File, min: i32) -> std::fs::File {
    use std::os::fd::{AsRawFd, FromRawFd};
    let r = fcntl_int(f.as_raw_fd(), libc::F_DUPFD_CLOEXEC, min.max(0) as u64);
    if r < 0 {
        return f;
    }
    drop(f);
    // SAFETY: `r` is a descriptor F_DUPFD_CLOEXEC just created; nothing else owns it.
    unsafe { std::fs::File::from_raw_fd(r as i32) }
}

/// The descriptors open in this process now, ascending (from `/proc/self/fd`, without
/// the one the listing itself uses). `vmjit` takes this list first thing, before it
/// opens anything, as the descriptors the guest inherits.
pub fn open_fds() -> Vec<i32> {
    let Ok(dir) = std::fs::read_dir("/proc/self/fd") else {
        return vec![0, 1, 2];
    };
    let mut fds: Vec<i32> = dir
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    fds.sort_unstable();
    // The directory's own descriptor is closed by now: keep only what is still open.
    fds.retain(|&fd| fcntl_int(fd, libc::F_GETFD, 0) >= 0);
    fds
}

/// The host's total RAM in bytes (`sysinfo`).
pub fn total_ram() -> Option<u64> {
    // SAFETY: `sysinfo` is plain old data; all-zero is a valid value.
    let mut si: libc::sysinfo = unsafe { std::mem::zeroed() };
    // SAFETY: `si` is a writable host `struct sysinfo`.
    let r = unsafe { sys(libc::SYS_sysinfo, [&raw mut si as u64, 0, 0, 0, 0, 0]) };
    if r < 0 {
        return None;
    }
    (si.totalram as u64).checked_mul(u64::from(si.mem_unit.max(1)))
}

/// The signal that interrupts a guest thread's blocking host call when the process
/// ends (a no-op handler without `SA_RESTART`, so the call returns EINTR). glibc
/// reserves the first real-time signals; this is one below the last.
fn kick_signal() -> i32 {
    libc::SIGRTMAX() - 1
}

extern "C" fn ignore_kick(_: libc::c_int) {}

/// Installs the handler of the kick signal (once per process).
pub fn install_kick_handler() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // SAFETY: `sigaction` is plain old data (all-zero is valid: empty mask, no
        // flags); the handler is an `extern "C"` function that does nothing, which is
        // async-signal-safe; SA_RESTART is deliberately not set.
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = ignore_kick as *const () as usize;
            libc::sigemptyset(&mut sa.sa_mask);
            libc::sigaction(kick_signal(), &sa, std::ptr::null_mut());
        }
    });
}

/// The calling host thread's `pthread_t`.
pub fn pthread_self() -> u64 {
    // SAFETY: no preconditions.
    unsafe { libc::pthread_self() as u64 }
}

/// Sends the kick signal to host thread `t` (a `pthread_t` from [`pthread_self`] of a
/// thread that has not ended: the caller guarantees it).
pub fn kick_thread(t: u64) {
    // SAFETY: by the caller's contract `t` names a live thread of this process; the
    // kick signal's handler is installed before any guest thread starts.
    unsafe {
        libc::pthread_kill(t as libc::pthread_t, kick_signal());
    }
}

/// `futex(uaddr, op, val, arg4, uaddr2, val3)` on host addresses inside the guest
/// reservation. The caller guarantees: `uaddr` and, when the operation uses it,
/// `uaddr2` are aligned words of mapped guest memory; `arg4` is, for the operations
/// that take a timeout, 0 or the address of a live host `timespec`, and otherwise the
/// integer `val2`. Returns the kernel's answer.
pub fn futex(uaddr: *mut u32, op: i32, val: u32, arg4: u64, uaddr2: *mut u32, val3: u32) -> i64 {
    let tp = arg4;
    // SAFETY: by the caller's contract both addresses are aligned words inside the
    // guest reservation, which stays mapped for the process's life (the kernel reads,
    // compares and writes only them, or wakes waiters); `tp` is null, a live timespec,
    // or an integer the operation does not dereference.
    unsafe {
        sys(
            libc::SYS_futex,
            [
                uaddr as u64,
                op as u64,
                u64::from(val),
                tp,
                uaddr2 as u64,
                u64::from(val3),
            ],
        )
    }
}

/// `futex(FUTEX_WAIT_PRIVATE)` on a host word: sleeps while `word` holds `val`, until
/// woken, `timeout` passes or a signal (the kick) interrupts.
pub fn futex_wait_private(
    word: &std::sync::atomic::AtomicU32,
    val: u32,
    timeout: Option<std::time::Duration>,
) {
    let ts = timeout.map(|d| libc::timespec {
        tv_sec: d.as_secs().min(i64::MAX as u64) as i64,
        tv_nsec: i64::from(d.subsec_nanos()),
    });
    let tp = ts.as_ref().map_or(0, |t| t as *const libc::timespec as u64);
    // SAFETY: `word` is a live host u32 for the call; `tp` is null or a live timespec.
    unsafe {
        sys(
            libc::SYS_futex,
            [
                word.as_ptr() as u64,
                (libc::FUTEX_WAIT | libc::FUTEX_PRIVATE_FLAG) as u64,
                u64::from(val),
                tp,
                0,
                0,
            ],
        );
    }
}

/// `futex(FUTEX_WAKE_PRIVATE)` of every waiter on a host word.
pub fn futex_wake_private(word: &std::sync::atomic::AtomicU32) {
    // SAFETY: `word` is a live host u32; FUTEX_WAKE only wakes waiters.
    unsafe {
        sys(
            libc::SYS_futex,
            [
                word.as_ptr() as u64,
                (libc::FUTEX_WAKE | libc::FUTEX_PRIVATE_FLAG) as u64,
                i32::MAX as u64,
                0,
                0,
                0,
            ],
        );
    }
}

/// The signal that wakes a process's signal service thread.
fn wake_signal() -> i32 {
    libc::SIGRTMAX()
}

/// Host signals forwarded to the guest when enabled ([`forward_host_signals`]): every
/// signal another process or a terminal can send, but those vmjit keeps for itself:
/// the synchronous ones (SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGTRAP, SIGSYS: a host fault
/// must stay a host fault), SIGABRT (a vmjit abort), SIGPIPE and SIGXFSZ (vmjit's own
/// writes raise them; it answers the guest with EPIPE/EFBIG and the guest's own
/// signal), SIGKILL and SIGSTOP (which nothing can catch), glibc's two internal
/// real-time signals, and vmjit's interrupting and wake-up signals (the top two).
pub fn forwarded_signals() -> Vec<i32> {
    let mut v = vec![
        libc::SIGHUP,
        libc::SIGINT,
        libc::SIGQUIT,
        libc::SIGUSR1,
        libc::SIGUSR2,
        libc::SIGALRM,
        libc::SIGTERM,
        libc::SIGSTKFLT,
        libc::SIGCHLD,
        libc::SIGCONT,
        libc::SIGTSTP,
        libc::SIGTTIN,
        libc::SIGTTOU,
        libc::SIGURG,
        libc::SIGXCPU,
        libc::SIGVTALRM,
        libc::SIGPROF,
        libc::SIGWINCH,
        libc::SIGIO,
        libc::SIGPWR,
    ];
    v.extend(libc::SIGRTMIN()..=libc::SIGRTMAX() - 2);
    v
}

static FORWARDING: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

fn sigset(signals: &[i32]) -> libc::sigset_t {
    // SAFETY: sigset_t is plain old data; sigemptyset/sigaddset initialise it.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for &s in signals {
            libc::sigaddset(&mut set, s);
        }
        set
    }
}

fn service_set() -> libc::sigset_t {
    let mut v = vec![wake_signal()];
    if FORWARDING.load(std::sync::atomic::Ordering::SeqCst) {
        v.extend(forwarded_signals());
    }
    sigset(&v)
}

/// Forwards the host signals of [`forwarded_signals`] to the guest from now on: they are
/// blocked in the calling thread, which every thread created later inherits (call it
/// first thing, before any thread exists: vmjit's `main` does), and the signal service
/// takes them with `sigtimedwait`.
pub fn forward_host_signals() {
    let set = sigset(&forwarded_signals());
    // SAFETY: `set` is an initialised sigset; blocking signals in this thread has no
    // memory-safety preconditions.
    unsafe {
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
    }
    FORWARDING.store(true, std::sync::atomic::Ordering::SeqCst);
}

/// The calling thread's signal mask as it was, restored on drop.
pub struct MaskGuard(libc::sigset_t);

impl Drop for MaskGuard {
    fn drop(&mut self) {
        // SAFETY: restores a mask read by `block_service_signals`.
        unsafe {
            libc::pthread_sigmask(libc::SIG_SETMASK, &self.0, std::ptr::null_mut());
        }
    }
}

/// True once [`forward_host_signals`] was called.
pub fn forwarding() -> bool {
    FORWARDING.load(std::sync::atomic::Ordering::SeqCst)
}

/// Blocks the service's signals in the calling thread until the guard drops (a thread
/// created meanwhile starts with them blocked).
pub fn block_service_signals() -> MaskGuard {
    let set = service_set();
    // SAFETY: sigset_t is plain old data; pthread_sigmask fills `old`.
    unsafe {
        let mut old: libc::sigset_t = std::mem::zeroed();
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, &mut old);
        MaskGuard(old)
    }
}

/// Wakes the service thread `t` (a `pthread_t` of a live service thread).
pub fn wake_service(t: u64) {
    // SAFETY: by the caller's contract `t` names a live thread of this process, which
    // blocks the wake signal (it only takes it with sigtimedwait).
    unsafe {
        libc::pthread_kill(t as libc::pthread_t, wake_signal());
    }
}

/// Waits up to `timeout` for the service's signals; a forwarded host signal comes back
/// as the guest `siginfo` to queue (the wake signal and timeouts give `None`).
pub fn wait_service_signal(timeout: std::time::Duration) -> Option<crate::signals::SigInfo> {
    match take_signal(&service_set(), timeout) {
        Some((sig, _)) if sig == wake_signal() => None,
        Some((_, info)) => Some(info),
        None => None,
    }
}

/// `sigtimedwait` on `set` for up to `timeout`: the signal taken and its `siginfo` as
/// the guest's (x86-64 and riscv64 agree on the 128-byte siginfo of user-sent
/// signals); `None` on a timeout or an error.
fn take_signal(
    set: &libc::sigset_t,
    timeout: std::time::Duration,
) -> Option<(i32, crate::signals::SigInfo)> {
    let ts = libc::timespec {
        tv_sec: timeout.as_secs().min(i64::MAX as u64) as i64,
        tv_nsec: i64::from(timeout.subsec_nanos()),
    };
    // SAFETY: `set` and `ts` are initialised; `info` is plain old data the kernel fills.
    let (r, info) = unsafe {
        let mut info: libc::siginfo_t = std::mem::zeroed();
        let r = libc::sigtimedwait(set, &mut info, &ts);
        (r, info)
    };
    if r <= 0 {
        return None;
    }
    // SAFETY: siginfo_t is 128 bytes of plain old data.
    let bytes: [u8; 128] = unsafe { std::mem::transmute(info) };
    Some((r, crate::signals::SigInfo::from_guest(r, bytes)))
}

/// Takes a forwarded `SIGCHLD` already pending on the host process, without waiting
/// (`None` when there is none, or when host signals are not forwarded). A guest's wait
/// calls it after reaping a child: Linux generates the child's SIGCHLD before the
/// child can be reaped, so the guest must see it under the disposition it has now, not
/// whenever the service thread would have taken it.
pub fn take_pending_sigchld() -> Option<crate::signals::SigInfo> {
    if !forwarding() {
        return None;
    }
    take_signal(&sigset(&[libc::SIGCHLD]), std::time::Duration::ZERO).map(|(_, info)| info)
}

/// Ends the vmjit process by signal `sig`, as the guest died of it, so that whoever
/// waits for vmjit (a shell, a guest parent) sees the same status as under Linux. No
/// core file is written (it would be vmjit's, not the guest's). Returns only if `sig`
/// does not terminate.
pub fn die_by_signal(sig: i32) {
    let none = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    let set = sigset(&[sig]);
    // SAFETY: plain libc calls on initialised values; the process is ending.
    unsafe {
        libc::setrlimit(libc::RLIMIT_CORE, &none);
        libc::signal(sig, libc::SIG_DFL);
        libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut());
        libc::raise(sig);
    }
}

/// Stops the whole vmjit process (a guest stop signal's default action), until a
/// SIGCONT.
pub fn stop_self() {
    // SAFETY: no preconditions.
    unsafe {
        libc::kill(libc::getpid(), libc::SIGSTOP);
    }
}

/// `gettid()` of the calling host thread.
pub fn gettid() -> i64 {
    // SAFETY: no arguments.
    unsafe { sys(libc::SYS_gettid, [0; 6]) }
}

/// `close(fd)`.
pub fn close(fd: i32) -> i64 {
    int_call(libc::SYS_close, [fd as u64, 0, 0, 0, 0, 0])
}

/// `prlimit64(0, resource, &new, NULL)`: sets this process's limit.
pub fn setrlimit(resource: u32, cur: u64, max: u64) -> i64 {
    let lim = libc::rlimit64 {
        rlim_cur: cur,
        rlim_max: max,
    };
    // SAFETY: `lim` is a readable host rlimit64; the old-limit pointer is null.
    unsafe {
        sys(
            libc::SYS_prlimit64,
            [0, u64::from(resource), &raw const lim as u64, 0, 0, 0],
        )
    }
}

/// A read-only descriptor of an anonymous in-memory file holding `contents` (what the
/// guest gets for the `/proc` files vmjit synthesises), positioned at 0; `-errno` on
/// failure.
pub fn memory_file(name: &CStr, contents: &[u8]) -> i64 {
    // SAFETY: `name` is NUL-terminated; the flags are valid constants.
    let fd = unsafe {
        sys(
            libc::SYS_memfd_create,
            [name.as_ptr() as u64, libc::MFD_CLOEXEC as u64, 0, 0, 0, 0],
        )
    };
    if fd < 0 {
        return fd;
    }
    let fd = fd as i32;
    let mut rest = contents;
    while !rest.is_empty() {
        // SAFETY: `rest` is a readable host buffer.
        let r = unsafe {
            sys(
                libc::SYS_write,
                [fd as u64, rest.as_ptr() as u64, rest.len() as u64, 0, 0, 0],
            )
        };
        if r == -i64::from(libc::EINTR) {
            continue;
        }
        if r <= 0 {
            close(fd);
            return if r < 0 { r } else { -i64::from(libc::EIO) };
        }
        rest = &rest[(r as usize).min(rest.len())..];
    }
    // Reopened read-only through /proc, as the file it stands for is read-only; the
    // writable descriptor is closed.
    let path = format!("/proc/self/fd/{fd}\0");
    let ro = match CStr::from_bytes_with_nul(path.as_bytes()) {
        Ok(p) => openat(libc::AT_FDCWD, p, libc::O_RDONLY | libc::O_CLOEXEC, 0),
        Err(_) => -i64::from(libc::EINVAL),
    };
    close(fd);
    ro
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::{GuestMemory, PERM_R, PERM_W};

    #[test]
    fn safe_wrappers_refuse_commands_whose_argument_they_did_not_size() {
        let m = GuestMemory::new().unwrap();
        m.map(0x10000, 0x1000, PERM_R | PERM_W).unwrap();
        let einval = -i64::from(libc::EINVAL);
        // A pointer-taking command through the integer path would let the kernel
        // write at an unchecked address.
        assert_eq!(fcntl_int(0, libc::F_GETLK, 0x1234), einval);
        assert_eq!(fcntl_int(0, 16 /* F_GETOWN_EX */, 0x1234), einval);
        let b = m.host_range(0x10000, 64, PERM_R | PERM_W).unwrap();
        assert_eq!(fcntl_lock(0, libc::F_GETFD, b), einval);
        // TCGETS writes 36 bytes: a 4-byte buffer is refused before the call.
        let small = m.host_range(0x10000, 4, PERM_W).unwrap();
        assert_eq!(ioctl_buf(0, 0x5401, small), -i64::from(libc::EFAULT));
        let any = m.host_range(0x10000, 64, PERM_W).unwrap();
        assert_eq!(ioctl_buf(0, 0x1234, any), -i64::from(libc::ENOTTY));
    }

    #[test]
    fn fionread_reports_the_bytes_waiting_in_a_pipe() {
        let m = GuestMemory::new().unwrap();
        m.map(0x10000, 0x1000, PERM_R | PERM_W).unwrap();
        let [r, w] = pipe2(libc::O_CLOEXEC).unwrap();
        m.write_bytes(0x10000, b"12345").unwrap();
        assert_eq!(write(w, m.host_range(0x10000, 5, PERM_R).unwrap()), 5);
        assert_eq!(
            ioctl_buf(r, 0x541b, m.host_range(0x10100, 4, PERM_W).unwrap()),
            0
        );
        let mut n = [0u8; 4];
        m.read_bytes(0x10100, &mut n).unwrap();
        assert_eq!(u32::from_le_bytes(n), 5);
        for fd in [r, w] {
            int_call(libc::SYS_close, [fd as u64, 0, 0, 0, 0, 0]);
        }
    }
}
