//! Data transfer on descriptors: vectored reads and writes, ppoll, fcntl, ioctl.

use rv64::Memory;

use super::abi::{open_flags_to_guest, open_flags_to_host, read_timespec, timespec};
use super::{EFAULT, EINVAL, Syscalls, e};
use crate::host;
use crate::memory::{GuestMemory, PERM_R, PERM_W};

impl Syscalls {
    pub(super) fn fcntl(&self, fd: i32, cmd: i32, arg: u64, mem: &mut GuestMemory) -> i64 {
        // The command numbers are asm-generic's, which x86-64 shares.
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

    pub(super) fn ioctl(&self, fd: i32, req: u64, arg: u64, mem: &mut GuestMemory) -> i64 {
        let Some(size) = host::ioctl_out_size(req) else {
            return e(libc::ENOTTY);
        };
        match mem.host_range(arg, size, PERM_W) {
            Ok(b) => host::ioctl_buf(fd, req, b),
            Err(_) => EFAULT,
        }
    }
}

/// ppoll. The signal mask argument is ignored: vmjit delivers no signals, so there is
/// nothing for it to unblock during the wait.
pub(super) fn ppoll(fds: u64, nfds: u64, tmo: u64, mem: &mut GuestMemory) -> i64 {
    // Linux refuses more entries than RLIMIT_NOFILE; this bound keeps the buffer sane.
    if nfds > 1 << 20 {
        return EINVAL;
    }
    let mut timeout = None;
    if tmo != 0 {
        match read_timespec(mem, tmo) {
            Some(t) => timeout = Some(t),
            None => return EFAULT,
        }
    }
    let r = match mem.host_range(fds, nfds * 8, PERM_R | PERM_W) {
        Ok(b) => host::ppoll(b, nfds, timeout.as_mut()),
        Err(_) => return EFAULT,
    };
    // Like Linux, report the time left, and like Linux ignore a read-only timeout:
    // the poll itself has already succeeded.
    if let Some((s, ns)) = timeout
        && r >= 0
    {
        let _ = mem.write_bytes(tmo, &timespec(s, ns));
    }
    r
}

/// readv/writev/preadv/pwritev. As qemu-user does, a bad first buffer is EFAULT, while
/// a bad later one ends the transfer there (a short count, as Linux gives when it
/// faults part way through).
pub(super) fn rw_vec(
    write: bool,
    fd: i32,
    iov: u64,
    cnt: u64,
    off: Option<i64>,
    mem: &mut GuestMemory,
) -> i64 {
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
