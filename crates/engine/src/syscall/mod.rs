//! The Linux system-call layer for riscv64 guests (asm-generic numbering).
//!
//! A guest `ecall` arrives here with the number in `a7` and arguments in `a0..a5`; the
//! result (a value or `-errno`) goes to `a0`. Most calls are forwarded to the host
//! kernel through [`crate::host`], with guest buffers checked first (EFAULT when any
//! byte of a buffer is not mapped with the needed permission) and structures converted
//! where the riscv64 layout differs from the host's (`struct stat`).
//!
//! **Invariants.**
//! - No guest pointer reaches the host kernel unchecked: buffers become
//!   [`crate::memory::HostRange`]s, strings are copied into host `CString`s.
//! - File descriptors are the host's (as in qemu-user): guest fd n is host fd n. The one
//!   file the guest may not open is a `/proc/<pid>/mem`, which would reach host memory
//!   outside its reservation.
//! - Changes to executable memory (munmap, mprotect, mremap, MAP_FIXED over code,
//!   riscv_flush_icache) are recorded in [`Syscalls::take_invalidations`] so the
//!   dispatch loop can drop stale decoded or translated code before the next block.
//! - An unknown call returns `-ENOSYS` and warns once per number on stderr.

use std::collections::HashSet;

use rv64::Cpu;

use crate::host;
use crate::layout;
use crate::memory::{GuestMemory, PERM_R, PERM_W};
use crate::sysnames;
use abi::timespec;
use fs::refuse_process_memory_file;
use io::{ppoll, rw_vec};

mod abi;
mod fs;
mod io;
mod mm;
pub mod nr;
mod process;

pub use abi::{open_flags_to_guest, open_flags_to_host, stat_to_guest};

/// How a system call ended the run (everything else continues the guest).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyscallExit {
    /// exit / exit_group with this status (already masked to 0..=255).
    Exited(i32),
    /// The guest sent itself a fatal signal.
    Signal(i32),
    /// A futex wait that no other thread could ever end.
    Deadlock { uaddr: u64 },
}

/// Code-memory changes the dispatch loop must apply before running more guest code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Invalidation {
    /// Drop code translated from bytes in `[lo, hi)`.
    Range { lo: u64, hi: u64 },
    /// Drop everything.
    All,
}

/// Per-process state of the system-call layer.
#[derive(Debug)]
pub struct Syscalls {
    brk_start: u64,
    brk_cur: u64,
    mmap_cursor: u64,
    sigactions: Vec<[u8; 24]>,
    sigmask: u64,
    altstack: [u8; 24],
    warned: HashSet<u64>,
    exe_path: Vec<u8>,
    pid: i64,
    invalidations: Vec<Invalidation>,
}

pub(super) fn e(errno: i32) -> i64 {
    -i64::from(errno)
}

pub(super) const EFAULT: i64 = -(libc::EFAULT as i64);
pub(super) const EINVAL: i64 = -(libc::EINVAL as i64);
pub(super) const ENOMEM: i64 = -(libc::ENOMEM as i64);
pub(super) const PATH_MAX: usize = 4096;
/// PROT_READ | PROT_WRITE | PROT_EXEC | PROT_SEM: the bits mmap and mprotect accept
/// (PROT_SEM is a no-op on riscv64, as on most architectures).
pub(super) const PROT_VALID: u64 = 0xf;

/// Guest O_CLOEXEC (the only flag dup3 accepts).
const O_CLOEXEC: u64 = 0o2000000;
/// The flags pipe2 accepts: O_CLOEXEC, O_NONBLOCK, O_DIRECT, O_NOTIFICATION_PIPE.
const PIPE2_FLAGS: u64 = O_CLOEXEC | 0o4000 | 0o40000 | 0o200;

impl Syscalls {
    /// State for a fresh process whose program break starts at `brk` (page aligned)
    /// and whose executable is `exe_path` (for `/proc/self/exe`).
    pub fn new(brk: u64, exe_path: Vec<u8>) -> Self {
        let mut altstack = [0u8; 24];
        altstack[8..12].copy_from_slice(&2u32.to_le_bytes()); // SS_DISABLE
        Syscalls {
            brk_start: brk,
            brk_cur: brk,
            mmap_cursor: layout::MMAP_TOP,
            sigactions: vec![[0u8; 24]; 65],
            sigmask: 0,
            altstack,
            warned: HashSet::new(),
            exe_path,
            pid: host::getpid(),
            invalidations: Vec::new(),
        }
    }

    /// Code-memory changes since the last call (see [`Invalidation`]).
    pub fn take_invalidations(&mut self) -> Vec<Invalidation> {
        std::mem::take(&mut self.invalidations)
    }

    /// True when some invalidation is pending.
    pub fn has_invalidations(&self) -> bool {
        !self.invalidations.is_empty()
    }

    /// The current program break.
    pub fn brk(&self) -> u64 {
        self.brk_cur
    }

    /// Performs the system call `cpu` is stopped at (`ecall` at `cpu.pc`): reads
    /// `a7`/`a0..a5`, writes the result to `a0` and advances pc past the ecall, unless
    /// the call ends the run.
    pub fn handle(&mut self, cpu: &mut Cpu, mem: &mut GuestMemory) -> Option<SyscallExit> {
        let n = cpu.x[17];
        let a = [
            cpu.x[10], cpu.x[11], cpu.x[12], cpu.x[13], cpu.x[14], cpu.x[15],
        ];
        match self.dispatch(n, a, mem) {
            Ok(v) => {
                cpu.x[10] = v as u64;
                cpu.pc = cpu.pc.wrapping_add(4);
                None
            }
            Err(exit) => Some(exit),
        }
    }

    /// Records that `[lo, lo+len)` changed; call before changing it. Only ranges
    /// holding executable pages can have decoded or translated code.
    pub(super) fn invalidate(&mut self, mem: &GuestMemory, lo: u64, len: u64) {
        if mem.any_exec(lo, len) {
            self.invalidations.push(Invalidation::Range {
                lo,
                hi: lo.saturating_add(len),
            });
        }
    }

    /// Runs system call `n` with arguments `a`; `Ok(result)` continues the guest.
    pub fn dispatch(
        &mut self,
        n: u64,
        a: [u64; 6],
        mem: &mut GuestMemory,
    ) -> Result<i64, SyscallExit> {
        let fd = a[0] as i32;
        let r = match n {
            // The whole buffer must be accessible (EFAULT otherwise), as qemu-user
            // checks it; the guest's view of a partially mapped buffer is then the same
            // under both.
            nr::READ | nr::WRITE | nr::PREAD64 | nr::PWRITE64 => {
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
            nr::READV | nr::WRITEV => rw_vec(n == nr::WRITEV, fd, a[1], a[2], None, mem),
            nr::PREADV | nr::PWRITEV => {
                rw_vec(n == nr::PWRITEV, fd, a[1], a[2], Some(a[3] as i64), mem)
            }
            nr::OPENAT => self.with_path(mem, a[1], |p, _| {
                let fd = host::openat(a[0] as i32, p, open_flags_to_host(a[2] as u32), a[3] as u32);
                refuse_process_memory_file(fd)
            }),
            nr::CLOSE => host::int_call(libc::SYS_close, [a[0], 0, 0, 0, 0, 0]),
            nr::LSEEK => host::int_call(libc::SYS_lseek, [a[0], a[1], a[2], 0, 0, 0]),
            nr::DUP => host::int_call(libc::SYS_dup, [a[0], 0, 0, 0, 0, 0]),
            // Linux refuses unknown flags here (unlike open, which ignores them);
            // translating would silently drop them, so check first.
            nr::DUP3 if a[2] & !O_CLOEXEC != 0 => EINVAL,
            nr::DUP3 => {
                let flags = open_flags_to_host(a[2] as u32) as u64;
                host::int_call(libc::SYS_dup3, [a[0], a[1], flags, 0, 0, 0])
            }
            nr::FTRUNCATE => host::int_call(libc::SYS_ftruncate, [a[0], a[1], 0, 0, 0, 0]),
            nr::FSYNC => host::int_call(libc::SYS_fsync, [a[0], 0, 0, 0, 0, 0]),
            nr::FDATASYNC => host::int_call(libc::SYS_fdatasync, [a[0], 0, 0, 0, 0, 0]),
            nr::FCHMOD => host::int_call(libc::SYS_fchmod, [a[0], a[1], 0, 0, 0, 0]),
            nr::FCHDIR => host::int_call(libc::SYS_fchdir, [a[0], 0, 0, 0, 0, 0]),
            nr::FLOCK => host::int_call(libc::SYS_flock, [a[0], a[1], 0, 0, 0, 0]),
            nr::UMASK => host::int_call(libc::SYS_umask, [a[0], 0, 0, 0, 0, 0]),
            nr::FCNTL => self.fcntl(fd, a[1] as i32, a[2], mem),
            nr::PIPE2 if a[1] & !PIPE2_FLAGS != 0 => EINVAL,
            nr::PIPE2 => match host::pipe2(open_flags_to_host(a[1] as u32)) {
                Ok([r0, w0]) => {
                    let mut b = [0u8; 8];
                    b[..4].copy_from_slice(&r0.to_le_bytes());
                    b[4..].copy_from_slice(&w0.to_le_bytes());
                    if mem.write_bytes(a[0], &b).is_ok() {
                        0
                    } else {
                        host::int_call(libc::SYS_close, [r0 as u64, 0, 0, 0, 0, 0]);
                        host::int_call(libc::SYS_close, [w0 as u64, 0, 0, 0, 0, 0]);
                        EFAULT
                    }
                }
                Err(r) => r,
            },
            nr::FSTAT => match host::fstat(fd) {
                Ok(st) => Self::put(mem, a[1], &stat_to_guest(&st)),
                Err(r) => r,
            },
            nr::NEWFSTATAT => self.with_path(mem, a[1], |p, mem| {
                match host::fstatat(fd, p, a[3] as i32) {
                    Ok(st) => Self::put(mem, a[2], &stat_to_guest(&st)),
                    Err(r) => r,
                }
            }),
            nr::STATX => self.with_path(mem, a[1], |p, mem| {
                match mem.host_range(a[4], 256, PERM_W) {
                    Ok(b) => host::statx(fd, p, a[2] as i32, a[3] as u32, b),
                    Err(_) => EFAULT,
                }
            }),
            nr::FACCESSAT => {
                self.with_path(mem, a[1], |p, _| host::faccessat(fd, p, a[2] as i32, 0))
            }
            nr::FACCESSAT2 => self.with_path(mem, a[1], |p, _| {
                host::faccessat(fd, p, a[2] as i32, a[3] as i32)
            }),
            nr::GETCWD => match mem.host_range(a[0], a[1], PERM_W) {
                Ok(b) => host::getcwd(b),
                Err(_) => EFAULT,
            },
            nr::CHDIR => self.with_path(mem, a[0], |p, _| host::chdir(p)),
            nr::FCHMODAT => self.with_path(mem, a[1], |p, _| host::fchmodat(fd, p, a[2] as u32)),
            nr::UNLINKAT => self.with_path(mem, a[1], |p, _| host::unlinkat(fd, p, a[2] as i32)),
            nr::MKDIRAT => self.with_path(mem, a[1], |p, _| host::mkdirat(fd, p, a[2] as u32)),
            nr::RENAMEAT | nr::RENAMEAT2 => {
                let flags = if n == nr::RENAMEAT2 { a[4] as u32 } else { 0 };
                self.with_paths(mem, a[1], a[3], |old, new| {
                    host::renameat2(fd, old, a[2] as i32, new, flags)
                })
            }
            nr::SYMLINKAT => self.with_paths(mem, a[0], a[2], |target, link| {
                host::symlinkat(target, a[1] as i32, link)
            }),
            nr::LINKAT => self.with_paths(mem, a[1], a[3], |old, new| {
                host::linkat(fd, old, a[2] as i32, new, a[4] as i32)
            }),
            nr::FCHOWNAT => self.with_path(mem, a[1], |p, _| {
                host::fchownat(fd, p, a[2] as u32, a[3] as u32, a[4] as i32)
            }),
            nr::TRUNCATE => self.with_path(mem, a[0], |p, _| host::truncate(p, a[1])),
            nr::UTIMENSAT => self.utimensat(fd, a[1], a[2], a[3] as i32, mem),
            nr::STATFS => self.with_path(mem, a[0], |p, mem| {
                match mem.host_range(a[1], size_of::<libc::statfs>() as u64, PERM_W) {
                    Ok(b) => host::statfs(Ok(p), b),
                    Err(_) => EFAULT,
                }
            }),
            nr::FSTATFS => match mem.host_range(a[1], size_of::<libc::statfs>() as u64, PERM_W) {
                Ok(b) => host::statfs(Err(fd), b),
                Err(_) => EFAULT,
            },
            nr::READLINKAT => self.readlinkat(fd, a[1], a[2], a[3], mem),
            nr::GETDENTS64 => match mem.host_range(a[1], a[2], PERM_W) {
                Ok(b) => host::getdents64(fd, b),
                Err(_) => EFAULT,
            },
            nr::IOCTL => self.ioctl(fd, a[1], a[2], mem),
            nr::PPOLL => ppoll(a[0], a[1], a[2], mem),
            nr::BRK => self.sys_brk(a[0], mem),
            nr::MMAP => self.mmap(a, mem),
            nr::MUNMAP => self.munmap(a[0], a[1], mem),
            nr::MPROTECT => self.mprotect(a[0], a[1], a[2], mem),
            nr::MREMAP => self.mremap(a, mem),
            nr::MADVISE => self.madvise(a[0], a[1], a[2], mem),
            nr::FADVISE64 => 0,
            nr::EXIT | nr::EXIT_GROUP => return Err(SyscallExit::Exited((a[0] & 0xff) as i32)),
            nr::CLOCK_GETTIME | nr::CLOCK_GETRES => {
                match host::clock(n == nr::CLOCK_GETRES, a[0] as i32) {
                    // clock_getres may pass NULL just to validate the clock.
                    Ok(_) if n == nr::CLOCK_GETRES && a[1] == 0 => 0,
                    Ok((s, ns)) => Self::put(mem, a[1], &timespec(s, ns)),
                    Err(r) => r,
                }
            }
            nr::GETTIMEOFDAY => {
                let mut r = 0;
                if a[0] != 0 {
                    r = match host::clock(false, libc::CLOCK_REALTIME) {
                        Ok((s, ns)) => Self::put(mem, a[0], &timespec(s, ns / 1000)),
                        Err(r) => r,
                    };
                }
                if r == 0 && a[1] != 0 {
                    r = Self::put(mem, a[1], &[0u8; 8]);
                }
                r
            }
            nr::NANOSLEEP => Self::sleep(libc::CLOCK_MONOTONIC, 0, a[0], a[1], mem),
            nr::CLOCK_NANOSLEEP => Self::sleep(a[0] as i32, a[1], a[2], a[3], mem),
            nr::UNAME => self.uname(a[0], mem),
            nr::GETRANDOM => match mem.host_range(a[0], a[1], PERM_W) {
                Ok(b) => host::getrandom(b, a[2] as u32),
                Err(_) => EFAULT,
            },
            nr::SET_TID_ADDRESS => self.pid,
            nr::SET_ROBUST_LIST => 0,
            nr::RSEQ | nr::RISCV_HWPROBE => e(libc::ENOSYS),
            nr::PRLIMIT64 => {
                // The guest is the only process it can see.
                if a[0] != 0 && a[0] as i64 != self.pid {
                    e(libc::ESRCH)
                } else {
                    self.getrlimit(a[1], a[3], mem)
                }
            }
            nr::GETRLIMIT => self.getrlimit(a[0], a[1], mem),
            nr::SETRLIMIT => 0,
            nr::GETRUSAGE => match mem.host_range(a[1], size_of::<libc::rusage>() as u64, PERM_W) {
                Ok(b) => host::getrusage(a[0] as i32, b),
                Err(_) => EFAULT,
            },
            nr::RT_SIGACTION => self.rt_sigaction(a[0], a[1], a[2], a[3], mem),
            nr::RT_SIGPROCMASK => self.rt_sigprocmask(a[0], a[1], a[2], a[3], mem),
            nr::SIGALTSTACK => {
                if a[1] != 0 && mem.write_bytes(a[1], &self.altstack).is_err() {
                    EFAULT
                } else if a[0] != 0 {
                    let mut b = [0u8; 24];
                    if mem.read_bytes(a[0], &mut b).is_err() {
                        EFAULT
                    } else {
                        self.altstack = b;
                        0
                    }
                } else {
                    0
                }
            }
            nr::GETPID | nr::GETTID => self.pid,
            nr::GETPPID => host::int_call(libc::SYS_getppid, [0; 6]),
            nr::GETUID => host::int_call(libc::SYS_getuid, [0; 6]),
            nr::GETEUID => host::int_call(libc::SYS_geteuid, [0; 6]),
            nr::GETGID => host::int_call(libc::SYS_getgid, [0; 6]),
            nr::GETEGID => host::int_call(libc::SYS_getegid, [0; 6]),
            nr::SCHED_YIELD => 0,
            nr::SYSINFO => match mem.host_range(a[0], size_of::<libc::sysinfo>() as u64, PERM_W) {
                Ok(b) => host::sysinfo(b),
                Err(_) => EFAULT,
            },
            nr::SCHED_GETAFFINITY => {
                let len = a[1];
                if len < 8 || !len.is_multiple_of(8) {
                    EINVAL
                } else if a[0] != 0 && a[0] as i64 != self.pid {
                    e(libc::ESRCH)
                } else {
                    // One hart: the guest runs on one CPU.
                    match Self::put(mem, a[2], &1u64.to_le_bytes()) {
                        0 => 8,
                        r => r,
                    }
                }
            }
            nr::FUTEX => return self.futex(a, mem),
            nr::KILL => {
                let pid = a[0] as i64;
                if pid == self.pid || pid == 0 {
                    return self.signal_self(a[1] as i32);
                }
                e(libc::EPERM)
            }
            nr::TKILL => {
                if a[0] as i64 == self.pid {
                    return self.signal_self(a[1] as i32);
                }
                e(libc::ESRCH)
            }
            nr::TGKILL => {
                if a[0] as i64 == self.pid && a[1] as i64 == self.pid {
                    return self.signal_self(a[2] as i32);
                }
                e(libc::ESRCH)
            }
            nr::RISCV_FLUSH_ICACHE => {
                self.invalidations.push(Invalidation::All);
                0
            }
            _ => {
                self.warn_unimplemented(n);
                e(libc::ENOSYS)
            }
        };
        // vmjit itself ignores SIGPIPE (as every Rust program does), so the host kernel
        // answers EPIPE; a Linux guest would instead get SIGPIPE, whose default action
        // kills it (`vmjit run prog | head` must end the guest).
        if r == e(libc::EPIPE) && matches!(n, nr::WRITE | nr::WRITEV | nr::PWRITE64 | nr::PWRITEV) {
            return self.signal_self(libc::SIGPIPE).map(|_| r);
        }
        Ok(r)
    }

    fn warn_unimplemented(&mut self, n: u64) {
        if self.warned.insert(n) {
            let name = sysnames::name(n).unwrap_or("unknown");
            host::write_stderr(
                format!("vmjit: warning: unimplemented syscall {n} ({name})\n").as_bytes(),
            );
        }
    }

    pub(super) fn put(mem: &mut GuestMemory, addr: u64, bytes: &[u8]) -> i64 {
        if mem.write_bytes(addr, bytes).is_ok() {
            0
        } else {
            EFAULT
        }
    }
}

#[cfg(test)]
mod tests;
