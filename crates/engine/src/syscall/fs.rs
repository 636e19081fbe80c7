//! File-system calls: paths read from guest memory, the stat family, links, directories.

use std::ffi::CString;

use rv64::Memory;

use super::{EFAULT, EINVAL, PATH_MAX, Syscalls, e};
use crate::host;
use crate::memory::{GuestMemory, PERM_W};

impl Syscalls {
    /// Reads a guest path (`/proc/self/exe` names the guest program, not vmjit);
    /// `Err(-errno)`: EFAULT, or ENAMETOOLONG when no NUL comes within PATH_MAX bytes.
    pub(super) fn guest_path(&self, mem: &GuestMemory, addr: u64) -> Result<CString, i64> {
        let bytes = match mem.read_cstr(addr, PATH_MAX) {
            Ok(b) if b == b"/proc/self/exe" => self.exe_path.clone(),
            Ok(b) => b,
            Err(Some(_)) => return Err(EFAULT),
            Err(None) => return Err(e(libc::ENAMETOOLONG)),
        };
        // Neither source holds a NUL (`read_cstr` stops at the first, the executable's
        // path comes from the OS), so this cannot fail; map it anyway.
        CString::new(bytes).map_err(|_| EINVAL)
    }

    /// Runs `f` on the guest path at `addr`, or returns why it cannot be read.
    pub(super) fn with_path(
        &self,
        mem: &mut GuestMemory,
        addr: u64,
        f: impl FnOnce(&std::ffi::CStr, &mut GuestMemory) -> i64,
    ) -> i64 {
        match self.guest_path(mem, addr) {
            Ok(p) => f(&p, mem),
            Err(r) => r,
        }
    }

    /// Two-path calls (rename, link, symlink); the first bad path's error wins, as in
    /// Linux, which reads them in order.
    pub(super) fn with_paths(
        &self,
        mem: &GuestMemory,
        a: u64,
        b: u64,
        f: impl FnOnce(&std::ffi::CStr, &std::ffi::CStr) -> i64,
    ) -> i64 {
        match (self.guest_path(mem, a), self.guest_path(mem, b)) {
            (Ok(p), Ok(q)) => f(&p, &q),
            (Err(r), _) | (_, Err(r)) => r,
        }
    }

    pub(super) fn utimensat(
        &self,
        fd: i32,
        path: u64,
        times: u64,
        flags: i32,
        mem: &mut GuestMemory,
    ) -> i64 {
        let t = if times == 0 {
            None
        } else {
            let mut v = [0i64; 4];
            for (i, x) in v.iter_mut().enumerate() {
                match mem.load64(times.wrapping_add(8 * i as u64)) {
                    Ok(w) => *x = w as i64,
                    Err(_) => return EFAULT,
                }
            }
            Some(v)
        };
        if path == 0 {
            return host::utimensat(fd, None, t, flags);
        }
        self.with_path(mem, path, |p, _| host::utimensat(fd, Some(p), t, flags))
    }

    pub(super) fn readlinkat(
        &self,
        fd: i32,
        path: u64,
        buf: u64,
        size: u64,
        mem: &mut GuestMemory,
    ) -> i64 {
        // `bufsiz` is an `int` in Linux: only the low 32 bits count.
        let size = size as i32;
        if size <= 0 {
            return EINVAL;
        }
        let size = size as u64;
        let p = match mem.read_cstr(path, PATH_MAX) {
            Ok(p) => p,
            Err(Some(_)) => return EFAULT,
            Err(None) => return e(libc::ENAMETOOLONG),
        };
        if p == b"/proc/self/exe" {
            let n = self.exe_path.len().min(size as usize);
            return match mem.write_bytes(buf, &self.exe_path[..n]) {
                Ok(()) => n as i64,
                Err(_) => EFAULT,
            };
        }
        let Ok(c) = CString::new(p) else {
            return EINVAL;
        };
        match mem.host_range(buf, size, PERM_W) {
            Ok(b) => host::readlinkat(fd, &c, b),
            Err(_) => EFAULT,
        }
    }
}

/// Closes `fd` and answers EACCES when it is a `/proc/<pid>/mem` file (however the
/// guest named it: `/proc/self/mem`, `/proc/thread-self/mem`, a symlink, a path relative
/// to a /proc directory fd). Through vmjit's own mem file the guest could read and
/// write host memory outside its reservation, which the sandbox promises it cannot.
/// Other results pass through.
pub(super) fn refuse_process_memory_file(fd: i64) -> i64 {
    if fd < 0 {
        return fd;
    }
    let Ok(target) = std::fs::read_link(format!("/proc/self/fd/{fd}")) else {
        return fd;
    };
    let digits = |c: Option<std::path::Component<'_>>| {
        c.and_then(|c| c.as_os_str().to_str())
            .is_some_and(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
    };
    let parts: Vec<_> = target.components().collect();
    let is_mem = match parts.as_slice() {
        [root, proc, pid, mem] => {
            root.as_os_str() == "/"
                && proc.as_os_str() == "proc"
                && digits(Some(*pid))
                && mem.as_os_str() == "mem"
        }
        [root, proc, pid, task, tid, mem] => {
            root.as_os_str() == "/"
                && proc.as_os_str() == "proc"
                && digits(Some(*pid))
                && task.as_os_str() == "task"
                && digits(Some(*tid))
                && mem.as_os_str() == "mem"
        }
        _ => false,
    };
    if is_mem {
        host::int_call(libc::SYS_close, [fd as u64, 0, 0, 0, 0, 0]);
        return e(libc::EACCES);
    }
    fd
}
