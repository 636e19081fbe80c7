//! execve and execveat: a new program in this guest process.
//!
//! What runs depends on the file, as under qemu-user with its binfmt_misc entry (the
//! way a guest under qemu sees the system):
//! - a riscv64 ELF runs under vmjit again: this process becomes
//!   `vmjit run <the same options> -- PROGRAM ARGS` (argv[0] passed as the guest gave
//!   it), so the pid, the descriptors the guest keeps, its signal mask and ignored
//!   signals carry over, as across a Linux exec;
//! - a host executable (an x86-64 or i386 ELF) is executed by the host as it is;
//! - a `#!` script whose interpreter is a riscv64 ELF runs that interpreter under
//!   vmjit with the script's path, as the kernel would; one whose interpreter is a host
//!   program is executed by the host;
//! - anything else is `ENOEXEC` (a shell then runs it as a script itself).
//!
//! **Invariants.**
//! - Every check that can fail (the path, permissions, the file's kind, the argument
//!   and environment strings) is done before anything changes, so a failed execve
//!   leaves the process as it was and returns the errno Linux gives.
//! - The new program gets exactly the guest's descriptors that are not close-on-exec,
//!   at their guest numbers; vmjit's own descriptors are all close-on-exec.
//! - It inherits the calling thread's guest signal mask and the signals the guest
//!   ignores; every other disposition is the default.

use std::ffi::{CString, OsString};
use std::os::unix::ffi::OsStringExt;
use std::path::PathBuf;

use rv64::Memory;

use super::fs::HostPath;
use super::procfs::ProcPath;
use super::{EFAULT, SyscallExit, Syscalls, e};
use crate::hostproc;
use crate::memory::GuestMemory;
use crate::signals;

/// How a riscv64 program the guest executes is run: the vmjit binary and the options
/// of this run (everything between `run` and the program).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecConfig {
    pub vmjit: PathBuf,
    pub options: Vec<OsString>,
}

/// Most bytes of argument and environment strings (Linux's limit for a stack of
/// 8 MiB is a quarter of it).
const ARG_MAX: usize = 2 << 20;
/// Most `#!` line bytes Linux reads (BINPRM_BUF_SIZE).
const SHEBANG_MAX: usize = 256;
const EM_RISCV: u16 = 243;
const EM_X86_64: u16 = 62;
const EM_386: u16 = 3;
const AT_EMPTY_PATH: u64 = 0x1000;
const AT_SYMLINK_NOFOLLOW: u64 = 0x100;

/// What a file is to execve.
#[derive(Debug, PartialEq, Eq)]
enum Kind {
    Guest,
    Host,
    /// `#!interp [arg]`.
    Script {
        interp: Vec<u8>,
        arg: Option<Vec<u8>>,
    },
}

fn classify(head: &[u8]) -> Option<Kind> {
    if head.len() >= 20 && head.starts_with(b"\x7fELF") {
        let machine = u16::from_le_bytes([head[18], head[19]]);
        return match (head[4], head[5], machine) {
            (2, 1, EM_RISCV) => Some(Kind::Guest),
            (2, 1, EM_X86_64) | (1, 1, EM_386) => Some(Kind::Host),
            _ => None,
        };
    }
    let line = head.strip_prefix(b"#!")?;
    let end = line.iter().position(|&b| b == b'\n').unwrap_or(line.len());
    let line = &line[..end];
    let blank = |b: &u8| *b == b' ' || *b == b'\t';
    let start = line.iter().position(|b| !blank(b))?;
    let line = &line[start..];
    let split = line.iter().position(blank).unwrap_or(line.len());
    let interp = line[..split].to_vec();
    let rest = &line[split..];
    let arg = rest
        .iter()
        .position(|b| !blank(b))
        .map(|s| {
            let r = &rest[s..];
            let e = r.iter().rposition(|b| !blank(b)).map_or(0, |e| e + 1);
            r[..e].to_vec()
        })
        .filter(|a| !a.is_empty());
    Some(Kind::Script { interp, arg })
}

impl Syscalls {
    /// `execve(path, argv, envp)`.
    pub(super) fn execve(&mut self, a: [u64; 6], mem: &GuestMemory) -> Result<i64, SyscallExit> {
        Ok(self.exec_common(super::fs::AT_FDCWD, a[0], a[1], a[2], 0, mem))
    }

    /// `execveat(dirfd, path, argv, envp, flags)`.
    pub(super) fn execveat(&mut self, a: [u64; 6], mem: &GuestMemory) -> Result<i64, SyscallExit> {
        Ok(self.exec_common(a[0] as i32, a[1], a[2], a[3], a[4], mem))
    }

    fn exec_common(
        &mut self,
        dirfd: i32,
        path: u64,
        argv: u64,
        envp: u64,
        flags: u64,
        mem: &GuestMemory,
    ) -> i64 {
        if flags & !(AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) != 0 {
            return super::EINVAL;
        }
        let given = match mem.read_cstr(path, super::PATH_MAX) {
            Ok(b) => b,
            Err(Some(_)) => return EFAULT,
            Err(None) => return e(libc::ENAMETOOLONG),
        };
        let (argv, envp) = match (read_strings(mem, argv), read_strings(mem, envp)) {
            (Ok(a), Ok(v)) => (a, v),
            (Err(r), _) | (_, Err(r)) => return r,
        };
        if argv.iter().chain(&envp).map(|s| s.len() + 1).sum::<usize>() > ARG_MAX {
            return e(libc::E2BIG);
        }
        // The file: by path, or the descriptor itself (fexecve).
        let target = if given.is_empty() {
            if flags & AT_EMPTY_PATH == 0 {
                return e(libc::ENOENT);
            }
            match self.host_fd(dirfd) {
                Ok(h) => HostFile::Fd(h.raw()),
                Err(r) => return r,
            }
        } else {
            match self.resolve_bytes(dirfd, given.clone()) {
                Ok(p) => match &p.proc {
                    ProcPath::Refused { errno, .. } => return e(*errno),
                    ProcPath::Synthetic { .. } | ProcPath::FdDir { .. } => {
                        return e(libc::EACCES);
                    }
                    ProcPath::NoSuchFd => return e(libc::ENOENT),
                    _ => HostFile::Path(p),
                },
                Err(r) => return r,
            }
        };
        let (kind, host_path) = match target.inspect() {
            Ok(k) => k,
            Err(r) => return r,
        };
        let plan = match kind {
            Kind::Guest => Plan::Vmjit {
                program: host_path,
                argv0: argv.first().cloned().unwrap_or_default(),
                args: argv.iter().skip(1).cloned().collect(),
            },
            Kind::Host => Plan::Host { path: host_path },
            Kind::Script { interp, arg } => {
                let ip = match self.resolve_bytes(super::fs::AT_FDCWD, interp.clone()) {
                    Ok(p) => HostFile::Path(p),
                    Err(r) => return r,
                };
                match ip.inspect() {
                    Ok((Kind::Guest, interp_host)) => {
                        let mut args: Vec<Vec<u8>> = arg.into_iter().collect();
                        args.push(given.clone());
                        args.extend(argv.iter().skip(1).cloned());
                        Plan::Vmjit {
                            program: interp_host,
                            argv0: interp,
                            args,
                        }
                    }
                    Ok((Kind::Host, _)) => Plan::Host { path: host_path },
                    // The kernel allows an interpreter that is a script itself only
                    // for binfmt_misc handlers; a nested #! is ENOEXEC here.
                    Ok((Kind::Script { .. }, _)) => return e(libc::ENOEXEC),
                    Err(r) if r == e(libc::ENOENT) => return e(libc::ENOENT),
                    Err(r) => return r,
                }
            }
        };
        let (path, argv_host) = match plan {
            Plan::Host { path } => (path, argv),
            Plan::Vmjit {
                program,
                argv0,
                args,
            } => {
                let Some(cfg) = self.proc.exec.as_ref() else {
                    // An embedder that gave no vmjit binary to run guests with.
                    return e(libc::ENOEXEC);
                };
                let mut v: Vec<Vec<u8>> = vec![
                    cfg.vmjit.clone().into_os_string().into_vec(),
                    b"run".to_vec(),
                ];
                v.extend(cfg.options.iter().map(|o| o.clone().into_vec()));
                if self.proc.forked.load(std::sync::atomic::Ordering::Relaxed) {
                    v.push(b"--forked-child".to_vec());
                }
                v.push(b"--argv0".to_vec());
                v.push(argv0);
                v.push(b"--".to_vec());
                v.push(program);
                v.extend(args);
                (cfg.vmjit.clone().into_os_string().into_vec(), v)
            }
        };
        let to_c = |v: Vec<u8>| CString::new(v).map_err(|_| e(libc::EINVAL));
        let Ok(path) = to_c(path) else {
            return e(libc::EINVAL);
        };
        let argv_c: Result<Vec<CString>, i64> = argv_host.into_iter().map(to_c).collect();
        let envp_c: Result<Vec<CString>, i64> = envp.into_iter().map(to_c).collect();
        let (Ok(argv_c), Ok(envp_c)) = (argv_c, envp_c) else {
            return e(libc::EINVAL);
        };
        self.exec_now(&path, &argv_c, &envp_c)
    }

    /// The point of no return but for the host execve itself: descriptors and signal
    /// state as the new program must inherit them, then the exec. On failure the
    /// signal state is put back (descriptors moved to their guest numbers stay).
    fn exec_now(&mut self, path: &CString, argv: &[CString], envp: &[CString]) -> i64 {
        let kept = self.proc.fds().kept_across_exec();
        let restore = match place_descriptors(&kept) {
            Ok(r) => r,
            Err(r) => return r,
        };
        let group = std::sync::Arc::clone(self.group());
        let mut ignore = 0u64;
        for sig in 1..=64 {
            if group.action(sig).handler == signals::SIG_IGN {
                ignore |= signals::bit(sig);
            }
        }
        hostproc::dispositions_for_exec(ignore);
        let vmjit_mask = hostproc::thread_mask();
        hostproc::set_thread_mask(self.thread.handle.mask());
        let r = hostproc::execve(path, argv, envp);
        hostproc::set_thread_mask(vmjit_mask);
        for fd in restore {
            hostproc::set_cloexec(fd, true);
        }
        r
    }
}

/// What the guest asked to execute, before it is looked at.
enum HostFile {
    Path(HostPath),
    Fd(i32),
}

impl HostFile {
    /// Opens it, checks that it may be executed and says what it is, with the host path
    /// to execute it by.
    fn inspect(&self) -> Result<(Kind, Vec<u8>), i64> {
        let (fd, path) = match self {
            HostFile::Path(p) => {
                let fd = crate::host::openat(p.dirfd, &p.path, libc::O_RDONLY | libc::O_CLOEXEC, 0);
                if fd < 0 {
                    return Err(fd);
                }
                let path =
                    if p.dirfd == super::fs::AT_FDCWD || p.path.as_bytes().first() == Some(&b'/') {
                        p.path.as_bytes().to_vec()
                    } else {
                        let mut d = fd_path(p.dirfd)?;
                        d.push(b'/');
                        d.extend_from_slice(p.path.as_bytes());
                        d
                    };
                (fd as i32, path)
            }
            HostFile::Fd(h) => {
                let fd = crate::host::fcntl_int(*h, libc::F_DUPFD_CLOEXEC, 0);
                if fd < 0 {
                    return Err(fd);
                }
                (fd as i32, fd_path(*h)?)
            }
        };
        let r = inspect_fd(fd);
        crate::host::close(fd);
        r.map(|k| (k, path))
    }
}

fn inspect_fd(fd: i32) -> Result<Kind, i64> {
    // SAFETY: stat is plain old data; fstat fills it.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: `st` is a live host value.
    if unsafe { libc::fstat(fd, &mut st) } != 0 {
        return Err(e(libc::EACCES));
    }
    if st.st_mode & libc::S_IFMT != libc::S_IFREG {
        return Err(e(libc::EACCES));
    }
    let path = CString::new(format!("/proc/self/fd/{fd}")).map_err(|_| e(libc::EACCES))?;
    if crate::host::faccessat(libc::AT_FDCWD, &path, libc::X_OK, 0) < 0 {
        return Err(e(libc::EACCES));
    }
    let mut head = [0u8; SHEBANG_MAX];
    let n = hostproc::pread(fd, &mut head);
    if n < 0 {
        return Err(n);
    }
    classify(&head[..n as usize]).ok_or(e(libc::ENOEXEC))
}

/// The host path of host descriptor `fd` (what `/proc/self/fd/N` links to).
fn fd_path(fd: i32) -> Result<Vec<u8>, i64> {
    std::fs::read_link(format!("/proc/self/fd/{fd}"))
        .map(|p| p.into_os_string().into_vec())
        .map_err(|_| e(libc::ENOENT))
}

/// The plan for the host execve.
enum Plan {
    Host {
        path: Vec<u8>,
    },
    Vmjit {
        program: Vec<u8>,
        argv0: Vec<u8>,
        args: Vec<Vec<u8>>,
    },
}

/// Puts every kept guest descriptor at its guest number without close-on-exec and
/// makes every other descriptor close-on-exec. Returns the descriptors whose flag it
/// cleared (to set again if the exec fails).
fn place_descriptors(kept: &[(i32, i32)]) -> Result<Vec<i32>, i64> {
    let top = kept.iter().map(|&(g, _)| g).max().unwrap_or(2);
    // Descriptors that must move go through numbers above every guest number first, so
    // that no move overwrites a descriptor another one still has to come from.
    let mut moves = Vec::new();
    for &(g, h) in kept {
        if g != h {
            let t = crate::host::fcntl_int(h, libc::F_DUPFD_CLOEXEC, (top + 1) as u64);
            if t < 0 {
                for (_, t) in moves {
                    crate::host::close(t);
                }
                return Err(t);
            }
            moves.push((g, t as i32));
        }
    }
    let mut cleared = Vec::new();
    for &(g, h) in kept {
        if g == h {
            hostproc::set_cloexec(g, false);
            cleared.push(g);
        }
    }
    for (g, t) in moves {
        hostproc::dup2(t, g);
        crate::host::close(t);
        cleared.push(g);
    }
    let keep: std::collections::HashSet<i32> = kept.iter().map(|&(g, _)| g).collect();
    for fd in crate::host::open_fds() {
        if !keep.contains(&fd) {
            hostproc::set_cloexec(fd, true);
        }
    }
    Ok(cleared)
}

/// A NULL-terminated array of guest string pointers (a null array is empty, as
/// Linux takes it).
fn read_strings(mem: &GuestMemory, mut at: u64) -> Result<Vec<Vec<u8>>, i64> {
    let mut out = Vec::new();
    if at == 0 {
        return Ok(out);
    }
    let mut total = 0usize;
    loop {
        let p = mem.load64(at).map_err(|_| EFAULT)?;
        if p == 0 {
            return Ok(out);
        }
        let s = match mem.read_cstr(p, ARG_MAX) {
            Ok(s) => s,
            Err(Some(_)) => return Err(EFAULT),
            Err(None) => return Err(e(libc::E2BIG)),
        };
        total += s.len() + 1;
        if total > ARG_MAX {
            return Err(e(libc::E2BIG));
        }
        out.push(s);
        at = at.wrapping_add(8);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_are_classified_as_the_kernel_and_binfmt_would() {
        let mut elf = b"\x7fELF\x02\x01\x01\0\0\0\0\0\0\0\0\0\x02\0".to_vec();
        elf.extend_from_slice(&EM_RISCV.to_le_bytes());
        assert_eq!(classify(&elf), Some(Kind::Guest));
        elf[18..20].copy_from_slice(&EM_X86_64.to_le_bytes());
        assert_eq!(classify(&elf), Some(Kind::Host));
        elf[18..20].copy_from_slice(&183u16.to_le_bytes()); // aarch64
        assert_eq!(classify(&elf), None);
        assert_eq!(
            classify(b"#! /bin/sh  -e \nrest"),
            Some(Kind::Script {
                interp: b"/bin/sh".to_vec(),
                arg: Some(b"-e".to_vec())
            })
        );
        assert_eq!(
            classify(b"#!/usr/bin/env python3 -u x\n"),
            Some(Kind::Script {
                interp: b"/usr/bin/env".to_vec(),
                arg: Some(b"python3 -u x".to_vec())
            })
        );
        assert_eq!(
            classify(b"#!/bin/true"),
            Some(Kind::Script {
                interp: b"/bin/true".to_vec(),
                arg: None
            })
        );
        assert_eq!(classify(b"#!   \n"), None);
        assert_eq!(classify(b"echo hi\n"), None);
    }
}
