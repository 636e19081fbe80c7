//! File-system calls: guest paths made ready for the host, open, the stat family,
//! links, directories, and the guest's view of its own `/proc` entries (see `procfs`).
//!
//! **Invariants.**
//! - Every guest path goes through [`Syscalls::resolve`]: a relative path is resolved
//!   against the *guest's* directory descriptor (translated through its table, EBADF
//!   when it is not open), an absolute one ignores the descriptor as Linux does and is
//!   looked up in the sysroot first (`crate::sysroot`), and paths into vmjit's own
//!   `/proc/<pid>` are mapped to the guest's view.
//! - Every descriptor the guest gets from a path is checked by
//!   [`crate::sandbox::check_opened`] before it enters the table.

use std::ffi::{CStr, CString};
use std::sync::Arc;

use rv64::Memory;

use super::abi::open_flags_to_host;
use super::fdtable::{HostFd, Kind};
use super::procfs::{self, ProcPath, Synthetic};
use super::{EFAULT, EINVAL, PATH_MAX, Syscalls, e};
use crate::host;
use crate::layout;
use crate::memory::{GuestMemory, PERM_W};

/// `AT_FDCWD` (the same on both ABIs).
pub(super) const AT_FDCWD: i32 = -100;
/// Guest `O_CLOEXEC`.
const O_CLOEXEC: u32 = 0o2000000;
/// Guest `O_ACCMODE`, `O_CREAT`, `O_TRUNC`.
const O_ACCMODE: u32 = 3;
const O_CREAT: u32 = 0o100;
const O_TRUNC: u32 = 0o1000;

/// A guest path made ready for a host call.
pub(super) struct HostPath {
    /// The host directory descriptor a relative `path` starts from (or `AT_FDCWD`).
    pub dirfd: i32,
    /// Keeps `dirfd` open for the duration of the call.
    _dir: Option<Arc<HostFd>>,
    pub path: CString,
    /// What the path names among vmjit's own `/proc` entries.
    pub proc: ProcPath,
    /// The normalised absolute guest path when it lies under `/proc` or `/dev` (kept
    /// on descriptors and as the working directory, so relative paths from there are
    /// classified too).
    pub virt: Option<Vec<u8>>,
}

fn cstring(bytes: Vec<u8>) -> Result<CString, i64> {
    // No source holds a NUL (`read_cstr` stops at the first; the rest are built here
    // or come from the OS), so this cannot fail; map it anyway.
    CString::new(bytes).map_err(|_| EINVAL)
}

impl Syscalls {
    /// Resolves the guest path at `addr`, relative to guest directory descriptor
    /// `dirfd` (or `AT_FDCWD`): `Err(-errno)` for EFAULT, ENAMETOOLONG, EBADF (a relative
    /// path from a descriptor that is not open) and ENOENT (a `/proc/self/fd/N` whose N
    /// is not open).
    pub(super) fn resolve(
        &self,
        mem: &GuestMemory,
        dirfd: i32,
        addr: u64,
    ) -> Result<HostPath, i64> {
        let bytes = match mem.read_cstr(addr, PATH_MAX) {
            Ok(b) => b,
            Err(Some(_)) => return Err(EFAULT),
            Err(None) => return Err(e(libc::ENAMETOOLONG)),
        };
        self.resolve_bytes(dirfd, bytes)
    }

    /// [`Syscalls::resolve`] for a path already read from guest memory.
    pub(super) fn resolve_bytes(&self, dirfd: i32, bytes: Vec<u8>) -> Result<HostPath, i64> {
        let absolute = bytes.first() == Some(&b'/');
        // The host directory a relative path starts from, and its guest path when vmjit
        // must classify what lies below it.
        let (host_dir, base): (Option<Arc<HostFd>>, Option<Vec<u8>>) = if absolute {
            (None, Some(Vec::new()))
        } else if dirfd == AT_FDCWD {
            (None, self.proc.cwd_virt().clone())
        } else {
            let fds = self.proc.fds();
            let slot = fds.get(dirfd)?;
            let base = match &slot.kind {
                Kind::ProcDir(p) => Some(p.to_vec()),
                Kind::FdDir { info, .. } => Some(
                    if *info {
                        &b"/proc/self/fdinfo"[..]
                    } else {
                        b"/proc/self/fd"
                    }
                    .to_vec(),
                ),
                Kind::Plain => None,
            };
            (Some(slot.host.clone()), base)
        };
        let virt = base.filter(|_| !bytes.is_empty()).map(|mut b| {
            if !absolute {
                b.push(b'/');
            }
            b.extend_from_slice(&bytes);
            procfs_join(&b)
        });
        let proc = match &virt {
            Some(v) => self.classify(v),
            None => ProcPath::Plain,
        };
        let keep = virt.filter(|v| v.starts_with(b"/proc") || v.starts_with(b"/dev"));
        let host_abs = |path: Vec<u8>| -> Result<HostPath, i64> {
            Ok(HostPath {
                dirfd: AT_FDCWD,
                _dir: None,
                path: cstring(path)?,
                proc: proc.clone(),
                virt: keep.clone(),
            })
        };
        match &proc {
            ProcPath::Plain => {
                let dirfd = match &host_dir {
                    Some(h) => h.raw(),
                    None => AT_FDCWD,
                };
                // An absolute path is looked up in the sysroot first (never one under
                // /proc or /dev: see `crate::sysroot`).
                let bytes = match &self.proc.sysroot {
                    Some(s) if absolute => s.lookup(&bytes).unwrap_or(bytes),
                    _ => bytes,
                };
                Ok(HostPath {
                    dirfd,
                    _dir: host_dir,
                    path: cstring(bytes)?,
                    proc,
                    virt: keep,
                })
            }
            ProcPath::NoSuchFd => Err(e(libc::ENOENT)),
            ProcPath::Exe => host_abs(self.proc.exe_path.clone()),
            ProcPath::Host { path, .. }
            | ProcPath::FdDir { path, .. }
            | ProcPath::Synthetic { path, .. }
            | ProcPath::Refused { path, .. } => host_abs(path.clone()),
        }
    }

    fn classify(&self, abs: &[u8]) -> ProcPath {
        let pid = self.proc.pid;
        let is_own_thread = |t: &[u8]| {
            let p = [b"/proc/self/task/", t].concat();
            std::str::from_utf8(&p).is_ok_and(|p| std::path::Path::new(p).exists())
        };
        let fds = self.proc.fds();
        let host_fd = |g: i32| fds.host(g).ok().map(|h| h.raw());
        procfs::classify(
            abs,
            &procfs::ProcessView {
                pid,
                is_own_thread: &is_own_thread,
                host_fd: &host_fd,
            },
        )
    }

    /// Runs `f` on the resolved guest path at `addr`, or returns why it cannot be
    /// resolved.
    pub(super) fn with_path(
        &self,
        mem: &GuestMemory,
        dirfd: i32,
        addr: u64,
        f: impl FnOnce(i32, &CStr, &GuestMemory) -> i64,
    ) -> i64 {
        match self.resolve(mem, dirfd, addr) {
            Ok(p) => f(p.dirfd, &p.path, mem),
            Err(r) => r,
        }
    }

    /// Two-path calls (rename, link); the first bad path's error wins, as in Linux,
    /// which reads them in order.
    pub(super) fn with_paths(
        &self,
        mem: &GuestMemory,
        (d1, a): (i32, u64),
        (d2, b): (i32, u64),
        f: impl FnOnce(i32, &CStr, i32, &CStr) -> i64,
    ) -> i64 {
        match (self.resolve(mem, d1, a), self.resolve(mem, d2, b)) {
            (Ok(p), Ok(q)) => f(p.dirfd, &p.path, q.dirfd, &q.path),
            (Err(r), _) | (_, Err(r)) => r,
        }
    }

    /// `openat(dirfd, path, flags, mode)`.
    pub(super) fn openat(
        &mut self,
        dirfd: i32,
        addr: u64,
        flags: u32,
        mode: u32,
        mem: &GuestMemory,
    ) -> i64 {
        let p = match self.resolve(mem, dirfd, addr) {
            Ok(p) => p,
            Err(r) => return r,
        };
        let cloexec = flags & O_CLOEXEC != 0;
        // Every host descriptor made for the guest is close-on-exec on the host; the
        // guest's flag lives in its table.
        let host_flags = open_flags_to_host(flags) | libc::O_CLOEXEC;
        let kind = match &p.proc {
            ProcPath::Refused { errno, .. } => return e(*errno),
            ProcPath::Synthetic { what, .. } => {
                if flags & (O_ACCMODE | O_CREAT | O_TRUNC) != 0 {
                    return e(libc::EACCES);
                }
                let contents = self.synthesize(*what, mem);
                let fd = host::memory_file(c"vmjit-proc", &contents);
                if fd < 0 {
                    return fd;
                }
                return self.proc.fds().insert(fd as i32, cloexec, 0, Kind::Plain);
            }
            ProcPath::FdDir { info, .. } => Kind::FdDir {
                info: *info,
                pos: 0,
            },
            _ => match &p.virt {
                Some(v) => Kind::ProcDir(v.clone().into_boxed_slice()),
                None => Kind::Plain,
            },
        };
        let fd = host::openat(p.dirfd, &p.path, host_flags, mode);
        if fd < 0 {
            return fd;
        }
        if let Err(r) = crate::sandbox::check_opened(fd as i32) {
            return r;
        }
        self.proc.fds().insert(fd as i32, cloexec, 0, kind)
    }

    /// The contents of a synthesised `/proc/self` file.
    fn synthesize(&self, what: Synthetic, mem: &GuestMemory) -> Vec<u8> {
        match what {
            Synthetic::Cmdline => self.proc.cmdline.clone(),
            Synthetic::Environ => self.proc.environ.clone(),
            Synthetic::Maps => self.maps(mem),
        }
    }

    /// `/proc/self/maps` of the guest: its mappings as the permission table has them,
    /// with the names vmjit knows (the executable, heap, stack).
    fn maps(&self, mem: &GuestMemory) -> Vec<u8> {
        use std::io::Write;
        let stack_lo = layout::STACK_TOP - layout::STACK_SIZE;
        let exe = String::from_utf8_lossy(&self.proc.exe_path).into_owned();
        let (brk_start, brk_cur) = {
            let mm = self.proc.mm();
            (mm.brk_start, mm.brk_cur)
        };
        let mut out = Vec::new();
        for (lo, hi, perm) in mem.mapped_runs() {
            let name = if lo >= stack_lo && hi <= layout::STACK_TOP {
                "[stack]"
            } else if lo == crate::signals::TRAMPOLINE {
                // Where Linux has the vDSO's sigreturn trampoline.
                "[vdso]"
            } else if lo >= brk_start && hi <= brk_cur.next_multiple_of(4096) {
                "[heap]"
            } else if hi <= brk_start {
                exe.as_str()
            } else {
                ""
            };
            let flag = |bit: u8, c: char| if perm & bit != 0 { c } else { '-' };
            let _ = writeln!(
                out,
                "{lo:08x}-{hi:08x} {}{}{}p 00000000 00:00 0{}{name}",
                flag(crate::memory::PERM_R, 'r'),
                flag(crate::memory::PERM_W, 'w'),
                flag(crate::memory::PERM_X, 'x'),
                if name.is_empty() { "" } else { "    " },
            );
        }
        out
    }

    /// `symlinkat(target, dirfd, linkpath)`: the target is stored as it is, only the
    /// link's own path is resolved.
    pub(super) fn symlinkat(&self, target: u64, dirfd: i32, link: u64, mem: &GuestMemory) -> i64 {
        let target = match mem.read_cstr(target, PATH_MAX) {
            Ok(t) => t,
            Err(Some(_)) => return EFAULT,
            Err(None) => return e(libc::ENAMETOOLONG),
        };
        let Ok(target) = cstring(target) else {
            return EINVAL;
        };
        match self.resolve(mem, dirfd, link) {
            Ok(p) => host::symlinkat(&target, p.dirfd, &p.path),
            Err(r) => r,
        }
    }

    /// `chdir(path)`.
    pub(super) fn chdir(&mut self, addr: u64, mem: &GuestMemory) -> i64 {
        let p = match self.resolve(mem, AT_FDCWD, addr) {
            Ok(p) => p,
            Err(r) => return r,
        };
        let r = host::chdir(&p.path);
        if r == 0 {
            *self.proc.cwd_virt() = match &p.proc {
                ProcPath::Plain => p.virt,
                ProcPath::Host { dir, .. } => Some(dir.clone()),
                ProcPath::FdDir { info, .. } => Some(fd_dir_path(*info)),
                _ => None,
            };
        }
        r
    }

    /// `fchdir(fd)`.
    pub(super) fn fchdir(&mut self, fd: i32) -> i64 {
        let slot = self.proc.fds().get(fd).cloned();
        let (h, virt) = match slot.as_ref() {
            Ok(s) => (
                s.host.clone(),
                match &s.kind {
                    Kind::ProcDir(p) => Some(p.to_vec()),
                    Kind::FdDir { info, .. } => Some(fd_dir_path(*info)),
                    Kind::Plain => None,
                },
            ),
            Err(r) => return *r,
        };
        let r = host::int_call(libc::SYS_fchdir, [h.raw() as u64, 0, 0, 0, 0, 0]);
        if r == 0 {
            *self.proc.cwd_virt() = virt;
        }
        r
    }

    pub(super) fn utimensat(
        &self,
        fd: i32,
        path: u64,
        times: u64,
        flags: i32,
        mem: &GuestMemory,
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
            // The descriptor itself is the file.
            let h = self.proc.fds().host(fd);
            return match h {
                Ok(h) => host::utimensat(h.raw(), None, t, flags),
                Err(r) => r,
            };
        }
        self.with_path(mem, fd, path, |d, p, _| {
            host::utimensat(d, Some(p), t, flags)
        })
    }

    pub(super) fn readlinkat(
        &self,
        fd: i32,
        path: u64,
        buf: u64,
        size: u64,
        mem: &GuestMemory,
    ) -> i64 {
        // `bufsiz` is an `int` in Linux: only the low 32 bits count.
        let size = size as i32;
        if size <= 0 {
            return EINVAL;
        }
        let size = size as u64;
        let p = match self.resolve(mem, fd, path) {
            Ok(p) => p,
            Err(r) => return r,
        };
        if p.proc == ProcPath::Exe {
            let exe = &self.proc.exe_path;
            let n = exe.len().min(size as usize);
            return match mem.write_bytes(buf, &exe[..n]) {
                Ok(()) => n as i64,
                Err(_) => EFAULT,
            };
        }
        match mem.host_range(buf, size, PERM_W) {
            Ok(b) => host::readlinkat(p.dirfd, &p.path, b),
            Err(_) => EFAULT,
        }
    }

    /// `getdents64` on the guest's `/proc/self/fd` (or `fdinfo`): the guest's own
    /// descriptors, numbered as it knows them.
    pub(super) fn getdents_fd_dir(
        &mut self,
        fd: i32,
        buf: u64,
        len: u64,
        mem: &GuestMemory,
    ) -> i64 {
        let mut fds = self.proc.fds();
        let numbers = fds.numbers();
        let Ok(slot) = fds.get_mut(fd) else {
            return super::fdtable::EBADF;
        };
        let Kind::FdDir { info, pos } = &mut slot.kind else {
            return EINVAL;
        };
        let mut names: Vec<(Vec<u8>, u8)> = vec![
            (b".".to_vec(), libc::DT_DIR),
            (b"..".to_vec(), libc::DT_DIR),
        ];
        let leaf = if *info { libc::DT_REG } else { libc::DT_LNK };
        names.extend(numbers.iter().map(|n| (n.to_string().into_bytes(), leaf)));
        let mut out = Vec::new();
        let mut at = *pos as usize;
        while let Some((name, ty)) = names.get(at) {
            let reclen = (19 + name.len() + 1).next_multiple_of(8);
            if (out.len() + reclen) as u64 > len {
                break;
            }
            out.extend_from_slice(&(at as u64 + 1).to_le_bytes()); // d_ino
            out.extend_from_slice(&(at as i64 + 1).to_le_bytes()); // d_off
            out.extend_from_slice(&(reclen as u16).to_le_bytes());
            out.push(*ty);
            out.extend_from_slice(name);
            out.resize(out.len() + reclen - 19 - name.len(), 0);
            at += 1;
        }
        if out.is_empty() && at < names.len() {
            return EINVAL;
        }
        if mem.write_bytes(buf, &out).is_err() {
            return EFAULT;
        }
        *pos = at as u64;
        out.len() as i64
    }
}

fn fd_dir_path(info: bool) -> Vec<u8> {
    if info {
        b"/proc/self/fdinfo".to_vec()
    } else {
        b"/proc/self/fd".to_vec()
    }
}

/// The normalised form of an absolute path.
fn procfs_join(abs: &[u8]) -> Vec<u8> {
    let parts = procfs::normalize(abs);
    let mut p = Vec::with_capacity(abs.len());
    for c in parts {
        p.push(b'/');
        p.extend_from_slice(c);
    }
    if p.is_empty() {
        p.push(b'/');
    }
    p
}
