//! Calls on descriptors: reads and writes (plain and vectored), the descriptor table's
//! own calls (close, dup, dup3, close_range, pipe2, F_DUPFD, F_GETFD/F_SETFD,
//! FIOCLEX), lseek, ppoll, fcntl, ioctl.
//!
//! **Invariant.** A guest descriptor number reaches the host only translated through
//! the guest's table ([`super::fdtable::FdTable`]); one that is not open is EBADF
//! before anything else is looked at, as in Linux.

use rv64::Memory;

use super::abi::{open_flags_to_guest, open_flags_to_host, read_timespec, timespec};
use std::sync::Arc;

use super::fdtable::{HostFd, Kind};
use super::{EFAULT, EINVAL, Syscalls, e};
use crate::host;
use crate::memory::{GuestMemory, PERM_R, PERM_W};

/// Guest O_CLOEXEC (the only flag dup3 accepts).
const O_CLOEXEC: u64 = 0o2000000;
/// The flags pipe2 accepts: O_CLOEXEC, O_NONBLOCK, O_DIRECT, O_NOTIFICATION_PIPE.
const PIPE2_FLAGS: u64 = O_CLOEXEC | 0o4000 | 0o40000 | 0o200;
/// `ioctl` requests that set and clear close-on-exec (asm-generic values).
const FIONCLEX: u64 = 0x5450;
const FIOCLEX: u64 = 0x5451;

/// The `fcntl` commands vmjit answers from the guest's table.
const F_DUPFD: i32 = 0;
const F_GETFD: i32 = 1;
const F_SETFD: i32 = 2;
const F_DUPFD_CLOEXEC: i32 = 1030;

impl Syscalls {
    /// read, write, pread64, pwrite64. The whole buffer must be accessible (EFAULT
    /// otherwise), as qemu-user checks it; the guest's view of a partially mapped
    /// buffer is then the same under both.
    pub(super) fn read_write(&self, n: u64, a: [u64; 6], mem: &GuestMemory) -> i64 {
        use super::nr;
        let h = self.proc.fds().host(a[0] as i32);
        let h = match h {
            Ok(h) => h,
            Err(r) => return r,
        };
        let fd = h.raw();
        let write = matches!(n, nr::WRITE | nr::PWRITE64);
        let need = if write { PERM_R } else { PERM_W };
        match mem.host_range(a[1], a[2], need) {
            Ok(b) => match n {
                nr::READ => host::read(fd, b),
                nr::WRITE => host::write(fd, b),
                nr::PREAD64 => host::pread(fd, b, a[3] as i64),
                _ => host::pwrite(fd, b, a[3] as i64),
            },
            Err(_) => EFAULT,
        }
    }

    /// readv/writev/preadv/pwritev.
    pub(super) fn rw_vec(
        &self,
        write: bool,
        fd: i32,
        iov: u64,
        cnt: u64,
        off: Option<i64>,
        mem: &GuestMemory,
    ) -> i64 {
        let h = self.proc.fds().host(fd);
        match h {
            Ok(h) => rw_vec(write, h.raw(), iov, cnt, off, mem),
            Err(r) => r,
        }
    }

    /// A call whose only descriptor argument is `a[0]` and whose other arguments are
    /// plain integers (ftruncate, fsync, fchmod, flock...).
    pub(super) fn fd_int_call(&self, nr: libc::c_long, a: [u64; 6]) -> i64 {
        let h = self.proc.fds().host(a[0] as i32);
        match h {
            Ok(h) => {
                let mut a = a;
                a[0] = h.raw() as u64;
                host::int_call(nr, a)
            }
            Err(r) => r,
        }
    }

    /// `fstat`, `fstatfs` and the like: the host descriptor of `fd` (the reference
    /// keeps it open while the call uses it, whatever other threads do).
    pub(super) fn host_fd(&self, fd: i32) -> Result<Arc<HostFd>, i64> {
        self.proc.fds().host(fd)
    }

    pub(super) fn close(&mut self, fd: i32) -> i64 {
        self.proc.fds().close(fd)
    }

    pub(super) fn dup(&mut self, fd: i32) -> i64 {
        self.proc.fds().dup(fd, 0, false)
    }

    pub(super) fn dup3(&mut self, old: i32, new: i32, flags: u64) -> i64 {
        // Linux refuses unknown flags here (unlike open, which ignores them).
        if flags & !O_CLOEXEC != 0 {
            return EINVAL;
        }
        self.proc.fds().dup3(old, new, flags & O_CLOEXEC != 0)
    }

    pub(super) fn close_range(&mut self, first: u64, last: u64, flags: u64) -> i64 {
        // Linux takes unsigned ints.
        self.proc
            .fds()
            .close_range(u64::from(first as u32), u64::from(last as u32), flags)
    }

    pub(super) fn pipe2(&mut self, addr: u64, flags: u64, mem: &GuestMemory) -> i64 {
        if flags & !PIPE2_FLAGS != 0 {
            return EINVAL;
        }
        // Linux checks the array before it allocates descriptors (EFAULT, no fds).
        if mem.check_range(addr, 8, PERM_W).is_err() {
            return EFAULT;
        }
        let host_flags = open_flags_to_host(flags as u32) | libc::O_CLOEXEC;
        let [r0, w0] = match host::pipe2(host_flags) {
            Ok(p) => p,
            Err(r) => return r,
        };
        let cloexec = flags & O_CLOEXEC != 0;
        let mut fds = self.proc.fds();
        let r = fds.insert(r0, cloexec, 0, Kind::Plain);
        if r < 0 {
            host::close(w0);
            return r;
        }
        let w = fds.insert(w0, cloexec, 0, Kind::Plain);
        if w < 0 {
            fds.close(r as i32);
            return w;
        }
        let mut b = [0u8; 8];
        b[..4].copy_from_slice(&(r as i32).to_le_bytes());
        b[4..].copy_from_slice(&(w as i32).to_le_bytes());
        if mem.write_bytes(addr, &b).is_ok() {
            0
        } else {
            fds.close(r as i32);
            fds.close(w as i32);
            EFAULT
        }
    }

    pub(super) fn lseek(&mut self, fd: i32, off: u64, whence: u64) -> i64 {
        let mut fds = self.proc.fds();
        let slot = match fds.get_mut(fd) {
            Ok(s) => s,
            Err(r) => return r,
        };
        if let Kind::FdDir { pos, .. } = &mut slot.kind {
            // A listing is positioned by entry index (what getdents64 puts in d_off).
            return match whence {
                0 if (off as i64) >= 0 => {
                    *pos = off;
                    off as i64
                }
                1 if off == 0 => *pos as i64,
                _ => EINVAL,
            };
        }
        let h = slot.host.clone();
        drop(fds);
        host::int_call(libc::SYS_lseek, [h.raw() as u64, off, whence, 0, 0, 0])
    }

    pub(super) fn getdents64(&mut self, fd: i32, buf: u64, len: u64, mem: &GuestMemory) -> i64 {
        let h = match self.proc.fds().get(fd) {
            Ok(s) if matches!(s.kind, Kind::FdDir { .. }) => None,
            Ok(s) => Some(s.host.clone()),
            Err(r) => return r,
        };
        let Some(h) = h else {
            return self.getdents_fd_dir(fd, buf, len, mem);
        };
        match mem.host_range(buf, len, PERM_W) {
            Ok(b) => host::getdents64(h.raw(), b),
            Err(_) => EFAULT,
        }
    }

    pub(super) fn fcntl(&mut self, fd: i32, cmd: i32, arg: u64, mem: &GuestMemory) -> i64 {
        // The command numbers are asm-generic's, which x86-64 shares.
        match cmd {
            F_DUPFD | F_DUPFD_CLOEXEC => {
                let min = i32::try_from(arg as i64).unwrap_or(i32::MAX);
                return self.proc.fds().dup(fd, min, cmd == F_DUPFD_CLOEXEC);
            }
            F_GETFD => {
                return match self.proc.fds().get(fd) {
                    Ok(s) => i64::from(s.cloexec),
                    Err(r) => r,
                };
            }
            F_SETFD => {
                return match self.proc.fds().get_mut(fd) {
                    Ok(s) => {
                        s.cloexec = arg & 1 != 0;
                        0
                    }
                    Err(r) => r,
                };
            }
            _ => {}
        }
        let h = match self.host_fd(fd) {
            Ok(h) => h,
            Err(r) => return r,
        };
        let fd = h.raw();
        match cmd {
            libc::F_GETFL => {
                let r = host::fcntl_int(fd, cmd, 0);
                if r < 0 {
                    r
                } else {
                    i64::from(open_flags_to_guest(r as i32))
                }
            }
            libc::F_SETFL => host::fcntl_int(fd, cmd, open_flags_to_host(arg as u32) as u64),
            _ if host::FCNTL_LOCK_CMDS.contains(&cmd) => {
                match mem.host_range(arg, size_of::<libc::flock>() as u64, PERM_R | PERM_W) {
                    Ok(b) => host::fcntl_lock(fd, cmd, b),
                    Err(_) => EFAULT,
                }
            }
            // Integer-argument commands pass as they are; `fcntl_int` refuses the rest
            // with EINVAL.
            _ => host::fcntl_int(fd, cmd, arg),
        }
    }

    pub(super) fn ioctl(&mut self, fd: i32, req: u64, arg: u64, mem: &GuestMemory) -> i64 {
        // Only the low 32 bits are the request (an `unsigned int` in the kernel).
        let req = u64::from(req as u32);
        if req == FIOCLEX || req == FIONCLEX {
            return match self.proc.fds().get_mut(fd) {
                Ok(s) => {
                    s.cloexec = req == FIOCLEX;
                    0
                }
                Err(r) => r,
            };
        }
        let h = match self.host_fd(fd) {
            Ok(h) => h,
            Err(r) => return r,
        };
        let fd = h.raw();
        let Some(size) = host::ioctl_out_size(req) else {
            return e(libc::ENOTTY);
        };
        match mem.host_range(arg, size, PERM_W) {
            Ok(b) => host::ioctl_buf(fd, req, b),
            Err(_) => EFAULT,
        }
    }

    /// ppoll. The guest's `struct pollfd` array is copied, its descriptors translated
    /// (one that is not open gets POLLNVAL, as in Linux; a negative one is ignored),
    /// and the results copied back. (The signal mask argument is applied around this
    /// by `with_temp_mask`.)
    pub(super) fn ppoll(&self, fds: u64, nfds: u64, tmo: u64, mem: &GuestMemory) -> i64 {
        const POLLNVAL: u16 = 0x20;
        if nfds > self.proc.fds().limits().0.max(1 << 16) {
            return EINVAL;
        }
        let mut timeout = None;
        if tmo != 0 {
            match read_timespec(mem, tmo) {
                Some(t) => timeout = Some(t),
                None => return EFAULT,
            }
        }
        let len = nfds * 8;
        let mut raw = vec![0u8; len as usize];
        if mem.check_range(fds, len, PERM_R | PERM_W).is_err()
            || mem.read_bytes(fds, &mut raw).is_err()
        {
            return EFAULT;
        }
        let mut keep = Vec::with_capacity(nfds as usize);
        // Entries that get POLLNVAL: decided once, as the guest's table was then.
        let mut nval = Vec::with_capacity(nfds as usize);
        let mut invalid = 0i64;
        let table = self.proc.fds();
        for entry in raw.chunks_exact_mut(8) {
            let g = i32::from_le_bytes([entry[0], entry[1], entry[2], entry[3]]);
            let h = if g < 0 {
                nval.push(false);
                -1
            } else {
                match table.host(g) {
                    Ok(h) => {
                        let raw = h.raw();
                        keep.push(h);
                        nval.push(false);
                        raw
                    }
                    Err(_) => {
                        invalid += 1;
                        nval.push(true);
                        -1
                    }
                }
            };
            entry[..4].copy_from_slice(&h.to_le_bytes());
            entry[6..8].copy_from_slice(&0u16.to_le_bytes());
        }
        drop(table);
        if invalid > 0 {
            // Linux returns at once when an entry is invalid.
            timeout = Some((0, 0));
        }
        let mut r = host::ppoll_host(&mut raw, nfds, timeout.as_mut());
        if r >= 0 {
            // Back to guest numbers, with POLLNVAL for the descriptors that are not
            // open.
            let mut src = vec![0u8; len as usize];
            let _ = mem.read_bytes(fds, &mut src);
            for (k, (out, orig)) in raw.chunks_exact_mut(8).zip(src.chunks_exact(8)).enumerate() {
                out[..4].copy_from_slice(&orig[..4]);
                if nval[k] {
                    out[6..8].copy_from_slice(&POLLNVAL.to_le_bytes());
                }
            }
            r += invalid;
            if mem.write_bytes(fds, &raw).is_err() {
                return EFAULT;
            }
        }
        // Like Linux, report the time left, and like Linux ignore a read-only timeout:
        // the poll itself has already succeeded.
        if tmo != 0
            && let Some((s, ns)) = timeout
            && r >= 0
            && invalid == 0
        {
            let _ = mem.write_bytes(tmo, &timespec(s, ns));
        }
        r
    }
}

/// readv/writev/preadv/pwritev on host descriptor `fd`. As qemu-user does, a bad first
/// buffer is EFAULT, while a bad later one ends the transfer there (a short count, as
/// Linux gives when it faults part way through).
fn rw_vec(write: bool, fd: i32, iov: u64, cnt: u64, off: Option<i64>, mem: &GuestMemory) -> i64 {
    if cnt > 1024 {
        return EINVAL;
    }
    let mut ranges = Vec::with_capacity(cnt as usize);
    for i in 0..cnt {
        let at = iov.wrapping_add(i * 16);
        match (mem.load64(at), mem.load64(at.wrapping_add(8))) {
            (Ok(base), Ok(len)) => {
                if len > i64::MAX as u64 {
                    return EINVAL;
                }
                ranges.push((base, len));
            }
            _ => return EFAULT,
        }
    }
    let need = if write { PERM_R } else { PERM_W };
    if let Some(bad) = ranges
        .iter()
        .position(|&(addr, len)| mem.check_range(addr, len, need).is_err())
    {
        if bad == 0 {
            return EFAULT;
        }
        ranges.truncate(bad);
    }
    match mem.host_ranges(&ranges, need) {
        Ok(bufs) => host::rw_vectored(write, fd, &bufs, off),
        Err(_) => EFAULT,
    }
}
