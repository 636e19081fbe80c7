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
use std::ffi::CString;

use rv64::{Cpu, Memory};

use crate::host;
use crate::layout;
use crate::memory::{
    GUEST_SPACE, GuestMemory, PAGE_SIZE, PERM_MAPPED, PERM_R, PERM_W, USER_LIMIT, page_ceil,
    perm_from_prot,
};
use crate::sysnames;

/// riscv64 system call numbers used here.
#[allow(missing_docs)]
pub mod nr {
    pub const GETCWD: u64 = 17;
    pub const DUP: u64 = 23;
    pub const DUP3: u64 = 24;
    pub const FCNTL: u64 = 25;
    pub const IOCTL: u64 = 29;
    pub const FLOCK: u64 = 32;
    pub const MKDIRAT: u64 = 34;
    pub const UNLINKAT: u64 = 35;
    pub const SYMLINKAT: u64 = 36;
    pub const LINKAT: u64 = 37;
    pub const RENAMEAT: u64 = 38;
    pub const STATFS: u64 = 43;
    pub const FSTATFS: u64 = 44;
    pub const TRUNCATE: u64 = 45;
    pub const FTRUNCATE: u64 = 46;
    pub const FACCESSAT: u64 = 48;
    pub const CHDIR: u64 = 49;
    pub const FCHDIR: u64 = 50;
    pub const FCHMOD: u64 = 52;
    pub const FCHMODAT: u64 = 53;
    pub const FCHOWNAT: u64 = 54;
    pub const OPENAT: u64 = 56;
    pub const CLOSE: u64 = 57;
    pub const PIPE2: u64 = 59;
    pub const GETDENTS64: u64 = 61;
    pub const LSEEK: u64 = 62;
    pub const READ: u64 = 63;
    pub const WRITE: u64 = 64;
    pub const READV: u64 = 65;
    pub const WRITEV: u64 = 66;
    pub const PREAD64: u64 = 67;
    pub const PWRITE64: u64 = 68;
    pub const PREADV: u64 = 69;
    pub const PWRITEV: u64 = 70;
    pub const PPOLL: u64 = 73;
    pub const READLINKAT: u64 = 78;
    pub const NEWFSTATAT: u64 = 79;
    pub const FSTAT: u64 = 80;
    pub const FSYNC: u64 = 82;
    pub const FDATASYNC: u64 = 83;
    pub const UTIMENSAT: u64 = 88;
    pub const EXIT: u64 = 93;
    pub const EXIT_GROUP: u64 = 94;
    pub const SET_TID_ADDRESS: u64 = 96;
    pub const FUTEX: u64 = 98;
    pub const SET_ROBUST_LIST: u64 = 99;
    pub const NANOSLEEP: u64 = 101;
    pub const CLOCK_GETTIME: u64 = 113;
    pub const CLOCK_GETRES: u64 = 114;
    pub const CLOCK_NANOSLEEP: u64 = 115;
    pub const SCHED_GETAFFINITY: u64 = 123;
    pub const SCHED_YIELD: u64 = 124;
    pub const KILL: u64 = 129;
    pub const TKILL: u64 = 130;
    pub const TGKILL: u64 = 131;
    pub const SIGALTSTACK: u64 = 132;
    pub const RT_SIGACTION: u64 = 134;
    pub const RT_SIGPROCMASK: u64 = 135;
    pub const UNAME: u64 = 160;
    pub const GETRLIMIT: u64 = 163;
    pub const SETRLIMIT: u64 = 164;
    pub const GETRUSAGE: u64 = 165;
    pub const UMASK: u64 = 166;
    pub const GETTIMEOFDAY: u64 = 169;
    pub const GETPID: u64 = 172;
    pub const GETPPID: u64 = 173;
    pub const GETUID: u64 = 174;
    pub const GETEUID: u64 = 175;
    pub const GETGID: u64 = 176;
    pub const GETEGID: u64 = 177;
    pub const GETTID: u64 = 178;
    pub const SYSINFO: u64 = 179;
    pub const BRK: u64 = 214;
    pub const MUNMAP: u64 = 215;
    pub const MREMAP: u64 = 216;
    pub const MMAP: u64 = 222;
    pub const FADVISE64: u64 = 223;
    pub const MPROTECT: u64 = 226;
    pub const MADVISE: u64 = 233;
    pub const RISCV_HWPROBE: u64 = 258;
    pub const RISCV_FLUSH_ICACHE: u64 = 259;
    pub const PRLIMIT64: u64 = 261;
    pub const RENAMEAT2: u64 = 276;
    pub const GETRANDOM: u64 = 278;
    pub const STATX: u64 = 291;
    pub const RSEQ: u64 = 293;
    pub const FACCESSAT2: u64 = 439;
}

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

fn e(errno: i32) -> i64 {
    -i64::from(errno)
}

const EFAULT: i64 = -(libc::EFAULT as i64);
const EINVAL: i64 = -(libc::EINVAL as i64);
const ENOMEM: i64 = -(libc::ENOMEM as i64);
const PATH_MAX: usize = 4096;
/// PROT_READ | PROT_WRITE | PROT_EXEC | PROT_SEM: the bits mmap and mprotect accept
/// (PROT_SEM is a no-op on riscv64, as on most architectures).
const PROT_VALID: u64 = 0xf;

/// Guest O_CLOEXEC (the only flag dup3 accepts).
const O_CLOEXEC: u64 = 0o2000000;
/// The flags pipe2 accepts: O_CLOEXEC, O_NONBLOCK, O_DIRECT, O_NOTIFICATION_PIPE.
const PIPE2_FLAGS: u64 = O_CLOEXEC | 0o4000 | 0o40000 | 0o200;

/// Guest (asm-generic) open flags and their host equivalents. The two ABIs agree on
/// every bit today (x86-64 also uses the generic values), but translating through a
/// table keeps the engine correct on hosts that do not (arm64 has different
/// O_DIRECTORY/O_NOFOLLOW/O_DIRECT/O_LARGEFILE).
const OPEN_FLAGS: &[(u32, i32)] = &[
    (0o100, libc::O_CREAT),
    (0o200, libc::O_EXCL),
    (0o400, libc::O_NOCTTY),
    (0o1000, libc::O_TRUNC),
    (0o2000, libc::O_APPEND),
    (0o4000, libc::O_NONBLOCK),
    (0o10000, libc::O_DSYNC),
    (0o20000, libc::O_ASYNC),
    (0o40000, libc::O_DIRECT),
    (0o100000, libc::O_LARGEFILE),
    (0o200000, libc::O_DIRECTORY),
    (0o400000, libc::O_NOFOLLOW),
    (0o1000000, libc::O_NOATIME),
    (0o2000000, libc::O_CLOEXEC),
    (0o4000000, libc::O_SYNC & !libc::O_DSYNC),
    (0o10000000, libc::O_PATH),
    (0o20000000, libc::O_TMPFILE & !libc::O_DIRECTORY),
];

/// Translates riscv64 open flags to the host's (unknown bits are dropped, as Linux
/// ignores them for open).
pub fn open_flags_to_host(guest: u32) -> i32 {
    let mut host = (guest & 3) as i32;
    for &(g, h) in OPEN_FLAGS {
        if guest & g != 0 {
            host |= h;
        }
    }
    host
}

/// Translates host file status flags back to riscv64 ones (F_GETFL).
pub fn open_flags_to_guest(host: i32) -> u32 {
    let mut guest = (host & 3) as u32;
    for &(g, h) in OPEN_FLAGS {
        if h != 0 && host & h == h {
            guest |= g;
        }
    }
    guest
}

/// Converts a host `struct stat` to the 128-byte asm-generic layout riscv64 uses.
pub fn stat_to_guest(st: &libc::stat) -> [u8; 128] {
    let mut b = [0u8; 128];
    let mut put = |off: usize, bytes: &[u8]| b[off..off + bytes.len()].copy_from_slice(bytes);
    put(0, &st.st_dev.to_le_bytes());
    put(8, &st.st_ino.to_le_bytes());
    put(16, &st.st_mode.to_le_bytes());
    put(20, &(st.st_nlink as u32).to_le_bytes());
    put(24, &st.st_uid.to_le_bytes());
    put(28, &st.st_gid.to_le_bytes());
    put(32, &st.st_rdev.to_le_bytes());
    put(48, &st.st_size.to_le_bytes());
    put(56, &(st.st_blksize as i32).to_le_bytes());
    put(64, &st.st_blocks.to_le_bytes());
    put(72, &st.st_atime.to_le_bytes());
    put(80, &st.st_atime_nsec.to_le_bytes());
    put(88, &st.st_mtime.to_le_bytes());
    put(96, &st.st_mtime_nsec.to_le_bytes());
    put(104, &st.st_ctime.to_le_bytes());
    put(112, &st.st_ctime_nsec.to_le_bytes());
    b
}

/// Signals whose default action is to ignore (or stop, which a lone VM treats alike).
fn default_ignored(sig: i32) -> bool {
    matches!(sig, 17 | 18 | 19 | 20 | 21 | 22 | 23 | 28)
}

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
    fn invalidate(&mut self, mem: &GuestMemory, lo: u64, len: u64) {
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

    fn put(mem: &mut GuestMemory, addr: u64, bytes: &[u8]) -> i64 {
        if mem.write_bytes(addr, bytes).is_ok() {
            0
        } else {
            EFAULT
        }
    }

    /// Reads a guest path (`/proc/self/exe` names the guest program, not vmjit);
    /// `Err(-errno)`: EFAULT, or ENAMETOOLONG when no NUL comes within PATH_MAX bytes.
    fn guest_path(&self, mem: &GuestMemory, addr: u64) -> Result<CString, i64> {
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
    fn with_path(
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
    fn with_paths(
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

    fn fcntl(&self, fd: i32, cmd: i32, arg: u64, mem: &mut GuestMemory) -> i64 {
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

    fn ioctl(&self, fd: i32, req: u64, arg: u64, mem: &mut GuestMemory) -> i64 {
        let Some(size) = host::ioctl_out_size(req) else {
            return e(libc::ENOTTY);
        };
        match mem.host_range(arg, size, PERM_W) {
            Ok(b) => host::ioctl_buf(fd, req, b),
            Err(_) => EFAULT,
        }
    }

    fn utimensat(&self, fd: i32, path: u64, times: u64, flags: i32, mem: &mut GuestMemory) -> i64 {
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

    fn readlinkat(&self, fd: i32, path: u64, buf: u64, size: u64, mem: &mut GuestMemory) -> i64 {
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

    fn sys_brk(&mut self, want: u64, mem: &mut GuestMemory) -> i64 {
        if want < self.brk_start {
            return self.brk_cur as i64;
        }
        let (Some(new_top), Some(old_top)) = (page_ceil(want), page_ceil(self.brk_cur)) else {
            return self.brk_cur as i64;
        };
        if new_top > layout::MMAP_TOP {
            return self.brk_cur as i64;
        }
        if new_top > old_top {
            if !mem.is_free(old_top, new_top - old_top) {
                return self.brk_cur as i64;
            }
            if mem
                .map(old_top, new_top - old_top, PERM_R | PERM_W)
                .is_err()
            {
                return self.brk_cur as i64;
            }
        } else if new_top < old_top {
            self.invalidate(mem, new_top, old_top - new_top);
            let _ = mem.unmap(new_top, old_top - new_top);
        }
        self.brk_cur = want;
        want as i64
    }

    fn place(&mut self, len: u64, hint: u64, mem: &GuestMemory) -> Option<u64> {
        if hint != 0
            && hint.is_multiple_of(PAGE_SIZE)
            && hint >= self.brk_cur
            && hint
                .checked_add(len)
                .is_some_and(|end| end <= layout::MMAP_TOP)
            && mem.is_free(hint, len)
        {
            return Some(hint);
        }
        let lo = page_ceil(self.brk_cur)?.saturating_add(layout::BRK_RESERVE);
        // Search below the last placement first (cheap: usually the first pages
        // scanned are free); when that part is full, search again from the top, where
        // earlier munmaps may have left room.
        let at = match mem.find_free_top_down(len, lo, self.mmap_cursor) {
            Some(at) => at,
            None => {
                self.mmap_cursor = layout::MMAP_TOP;
                mem.find_free_top_down(len, lo, layout::MMAP_TOP)?
            }
        };
        self.mmap_cursor = self.mmap_cursor.min(at);
        Some(at)
    }

    fn mmap(&mut self, a: [u64; 6], mem: &mut GuestMemory) -> i64 {
        const MAP_SHARED: u64 = 1;
        const MAP_PRIVATE: u64 = 2;
        const MAP_SHARED_VALIDATE: u64 = 3;
        const MAP_FIXED: u64 = 0x10;
        const MAP_ANONYMOUS: u64 = 0x20;
        const MAP_FIXED_NOREPLACE: u64 = 0x10_0000;
        let [addr, len, prot, flags, fd, off] = a;
        let fd = fd as i32;
        if len == 0 || off % PAGE_SIZE != 0 || prot & !PROT_VALID != 0 {
            return EINVAL;
        }
        let Some(len) = page_ceil(len) else {
            return ENOMEM;
        };
        if off.checked_add(len).is_none_or(|end| end > i64::MAX as u64) {
            return e(libc::EOVERFLOW);
        }
        let kind = flags & 0xf;
        if !matches!(kind, MAP_SHARED | MAP_PRIVATE | MAP_SHARED_VALIDATE) {
            return EINVAL;
        }
        let mut anon = flags & MAP_ANONYMOUS != 0;
        if !anon {
            let st = match host::fstat(fd) {
                Ok(st) => st,
                Err(r) => return r,
            };
            let ft = st.st_mode & libc::S_IFMT;
            // /dev/zero maps as anonymous memory (a lone process cannot tell shared
            // anonymous memory from private).
            anon = ft == libc::S_IFCHR && st.st_rdev == libc::makedev(1, 5);
            if !anon {
                if kind != MAP_PRIVATE && prot & 2 != 0 {
                    // Writes to a shared file mapping would have to reach the file;
                    // vmjit copies file contents into guest memory instead, so refuse.
                    return e(libc::ENODEV);
                }
                // Only files (and block devices) have contents to map; directories,
                // pipes, sockets and other character devices have no mmap in Linux.
                if ft != libc::S_IFREG && ft != libc::S_IFBLK {
                    return e(libc::ENODEV);
                }
                // Linux needs read access to map a file, whatever `prot` asks for.
                let fl = host::fcntl_int(fd, libc::F_GETFL, 0);
                if fl >= 0 && fl as i32 & libc::O_ACCMODE == libc::O_WRONLY {
                    return e(libc::EACCES);
                }
            }
        }
        let fixed = flags & (MAP_FIXED | MAP_FIXED_NOREPLACE) != 0;
        let at = if fixed {
            if addr % PAGE_SIZE != 0 {
                return EINVAL;
            }
            if addr
                .checked_add(len)
                .is_none_or(|end| end > layout::STACK_TOP)
            {
                return ENOMEM;
            }
            if flags & MAP_FIXED_NOREPLACE != 0 && !mem.is_free(addr, len) {
                return e(libc::EEXIST);
            }
            self.invalidate(mem, addr, len);
            if mem.unmap(addr, len).is_err() {
                return EINVAL;
            }
            addr
        } else {
            match self.place(len, addr, mem) {
                Some(at) => at,
                None => return ENOMEM,
            }
        };
        if mem.map(at, len, PERM_R | PERM_W).is_err() {
            return ENOMEM;
        }
        if !anon {
            let mut done = 0u64;
            while done < len {
                let r = match mem.host_range(at + done, len - done, PERM_W) {
                    Ok(b) => host::pread(fd, b, off.wrapping_add(done) as i64),
                    Err(_) => EFAULT,
                };
                if r == -(libc::EINTR as i64) {
                    continue;
                }
                if r < 0 {
                    let _ = mem.unmap(at, len);
                    return r;
                }
                if r == 0 {
                    break;
                }
                done += r as u64;
            }
        }
        let _ = mem.protect(at, len, perm_from_prot(prot));
        at as i64
    }

    fn munmap(&mut self, addr: u64, len: u64, mem: &mut GuestMemory) -> i64 {
        if !addr.is_multiple_of(PAGE_SIZE) || len == 0 {
            return EINVAL;
        }
        let Some(len) = page_ceil(len) else {
            return EINVAL;
        };
        if addr.checked_add(len).is_none_or(|end| end > USER_LIMIT) {
            return EINVAL;
        }
        // Nothing can be mapped beyond the guest space, so that part is already done.
        let len = len.min(GUEST_SPACE.saturating_sub(addr));
        if len == 0 {
            return 0;
        }
        self.invalidate(mem, addr, len);
        if mem.unmap(addr, len).is_err() {
            return EINVAL;
        }
        0
    }

    fn mprotect(&mut self, addr: u64, len: u64, prot: u64, mem: &mut GuestMemory) -> i64 {
        if !addr.is_multiple_of(PAGE_SIZE) || prot & !PROT_VALID != 0 {
            return EINVAL;
        }
        let Some(len) = page_ceil(len) else {
            return ENOMEM;
        };
        if len == 0 {
            return 0;
        }
        if !mem.is_mapped(addr, len) {
            return ENOMEM;
        }
        // Hook for the JIT: code translated from these pages may be stale (W^X
        // toggling is how JIT-ing guests publish new code).
        self.invalidate(mem, addr, len);
        if mem.protect(addr, len, perm_from_prot(prot)).is_err() {
            return ENOMEM;
        }
        0
    }

    fn mremap(&mut self, a: [u64; 6], mem: &mut GuestMemory) -> i64 {
        const MREMAP_MAYMOVE: u64 = 1;
        const MREMAP_FIXED: u64 = 2;
        let [old, old_len, new_len, flags, new_addr, _] = a;
        if old % PAGE_SIZE != 0 || new_len == 0 || flags & !3 != 0 {
            return EINVAL;
        }
        if flags & MREMAP_FIXED != 0 && flags & MREMAP_MAYMOVE == 0 {
            return EINVAL;
        }
        let (Some(old_len), Some(new_len)) = (page_ceil(old_len), page_ceil(new_len)) else {
            return EINVAL;
        };
        // Linux allows old_len 0 only to duplicate a shared mapping, which vmjit has not.
        if old_len == 0 {
            return EINVAL;
        }
        if !mem.is_mapped(old, old_len) {
            return EFAULT;
        }
        let perm = mem.page_perm(old) & !PERM_MAPPED;
        let target = if flags & MREMAP_FIXED != 0 {
            if new_addr % PAGE_SIZE != 0
                || new_addr
                    .checked_add(new_len)
                    .is_none_or(|end| end > layout::STACK_TOP)
            {
                return EINVAL;
            }
            // The old range must survive until it is copied: Linux refuses overlap.
            if new_addr < old + old_len && old < new_addr + new_len {
                return EINVAL;
            }
            self.invalidate(mem, new_addr, new_len);
            if mem.unmap(new_addr, new_len).is_err() {
                return EINVAL;
            }
            Some(new_addr)
        } else if new_len <= old_len {
            if new_len < old_len {
                self.invalidate(mem, old + new_len, old_len - new_len);
                let _ = mem.unmap(old + new_len, old_len - new_len);
            }
            return old as i64;
        } else if old
            .checked_add(new_len)
            .is_some_and(|end| end <= layout::MMAP_TOP)
            && mem.is_free(old + old_len, new_len - old_len)
        {
            let _ = mem.map(old + old_len, new_len - old_len, perm);
            return old as i64;
        } else if flags & MREMAP_MAYMOVE != 0 {
            self.place(new_len, 0, mem)
        } else {
            None
        };
        let Some(to) = target else { return ENOMEM };
        if mem.map(to, new_len, PERM_R | PERM_W).is_err() {
            return ENOMEM;
        }
        let _ = mem.move_pages(old, to, old_len.min(new_len));
        let _ = mem.protect(to, new_len, perm);
        self.invalidate(mem, old, old_len);
        let _ = mem.unmap(old, old_len);
        to as i64
    }

    fn madvise(&mut self, addr: u64, len: u64, advice: u64, mem: &mut GuestMemory) -> i64 {
        const MADV_DONTNEED: u64 = 4;
        if !addr.is_multiple_of(PAGE_SIZE) {
            return EINVAL;
        }
        let Some(len) = page_ceil(len) else {
            return EINVAL;
        };
        if len == 0 {
            return 0;
        }
        if addr.checked_add(len).is_none_or(|end| end > USER_LIMIT) {
            return EINVAL;
        }
        // Linux applies the advice to the mapped parts and then reports a hole as
        // ENOMEM; discarding an unmapped page changes nothing (it reads as zero when
        // mapped again anyway).
        if advice == MADV_DONTNEED {
            let len = len.min(GUEST_SPACE.saturating_sub(addr));
            self.invalidate(mem, addr, len);
            mem.discard(addr, len);
        }
        if !mem.is_mapped(addr, len) {
            return ENOMEM;
        }
        0
    }

    /// nanosleep (`clk` CLOCK_MONOTONIC, `flags` 0, as Linux measures it) and
    /// clock_nanosleep. The host kernel validates the clock, flags and timespec.
    fn sleep(clk: i32, flags: u64, req: u64, rem: u64, mem: &mut GuestMemory) -> i64 {
        const TIMER_ABSTIME: u64 = 1;
        let Some((s, ns)) = read_timespec(mem, req) else {
            return EFAULT;
        };
        match host::clock_nanosleep(clk, flags as i32, s, ns) {
            Ok(()) => 0,
            Err((r, (rs, rns))) => {
                // Only an interrupted relative sleep reports the time left.
                if r == e(libc::EINTR) && rem != 0 && flags & TIMER_ABSTIME == 0 {
                    let _ = Self::put(mem, rem, &timespec(rs, rns));
                }
                r
            }
        }
    }

    fn uname(&self, buf: u64, mem: &mut GuestMemory) -> i64 {
        let u = match host::uname() {
            Ok(u) => u,
            Err(r) => return r,
        };
        let mut out = [0u8; 6 * 65];
        let fields: [&[libc::c_char]; 6] = [
            &u.sysname,
            &u.nodename,
            &u.release,
            &u.version,
            &u.machine,
            &u.domainname,
        ];
        for (i, f) in fields.iter().enumerate() {
            let bytes: Vec<u8> = f
                .iter()
                .take(64)
                .map(|&c| c as u8)
                .take_while(|&c| c != 0)
                .collect();
            let bytes: &[u8] = if i == 4 { b"riscv64" } else { &bytes };
            out[i * 65..i * 65 + bytes.len()].copy_from_slice(bytes);
        }
        Self::put(mem, buf, &out)
    }

    fn getrlimit(&self, resource: u64, old: u64, mem: &mut GuestMemory) -> i64 {
        if resource > 15 {
            return EINVAL;
        }
        if old == 0 {
            return 0;
        }
        let (cur, max) = if resource == libc::RLIMIT_STACK as u64 {
            (layout::STACK_SIZE, layout::STACK_SIZE)
        } else {
            match host::getrlimit(resource as u32) {
                Ok(l) => l,
                Err(r) => return r,
            }
        };
        let mut b = [0u8; 16];
        b[..8].copy_from_slice(&cur.to_le_bytes());
        b[8..].copy_from_slice(&max.to_le_bytes());
        Self::put(mem, old, &b)
    }

    fn rt_sigaction(
        &mut self,
        sig: u64,
        act: u64,
        oact: u64,
        size: u64,
        mem: &mut GuestMemory,
    ) -> i64 {
        if size != 8 || sig == 0 || sig > 64 {
            return EINVAL;
        }
        if act != 0 && (sig == 9 || sig == 19) {
            return EINVAL;
        }
        let mut new = [0u8; 24];
        if act != 0 && mem.read_bytes(act, &mut new).is_err() {
            return EFAULT;
        }
        if oact != 0
            && mem
                .write_bytes(oact, &self.sigactions[sig as usize])
                .is_err()
        {
            return EFAULT;
        }
        if act != 0 {
            self.sigactions[sig as usize] = new;
        }
        0
    }

    fn rt_sigprocmask(
        &mut self,
        how: u64,
        set: u64,
        oset: u64,
        size: u64,
        mem: &mut GuestMemory,
    ) -> i64 {
        if size != 8 {
            return EINVAL;
        }
        let new = if set != 0 {
            match mem.load64(set) {
                Ok(v) => Some(v),
                Err(_) => return EFAULT,
            }
        } else {
            None
        };
        if new.is_some() && how > 2 {
            return EINVAL;
        }
        if oset != 0 && mem.write_bytes(oset, &self.sigmask.to_le_bytes()).is_err() {
            return EFAULT;
        }
        if let Some(v) = new {
            self.sigmask = match how {
                0 => self.sigmask | v,
                1 => self.sigmask & !v,
                _ => v,
            };
            // SIGKILL and SIGSTOP cannot be blocked.
            self.sigmask &= !((1 << 8) | (1 << 18));
        }
        0
    }

    fn signal_self(&mut self, sig: i32) -> Result<i64, SyscallExit> {
        if !(0..=64).contains(&sig) {
            return Ok(EINVAL);
        }
        if sig == 0 {
            return Ok(0);
        }
        let handler = u64::from_le_bytes(
            self.sigactions[sig as usize][..8]
                .try_into()
                .unwrap_or([0; 8]),
        );
        let blocked = self.sigmask & (1 << (sig - 1)) != 0;
        if sig != 9 && (handler == 1 || blocked || (handler == 0 && default_ignored(sig))) {
            // Ignored or blocked: a blocked signal would stay pending forever, since
            // vmjit delivers no signals.
            return Ok(0);
        }
        if handler > 1 {
            host::write_stderr(
                format!(
                    "vmjit: warning: signal {sig} has a guest handler, but vmjit does not \
                     deliver signals; terminating as the default action would\n"
                )
                .as_bytes(),
            );
        }
        Err(SyscallExit::Signal(sig))
    }

    fn futex(&mut self, a: [u64; 6], mem: &mut GuestMemory) -> Result<i64, SyscallExit> {
        const WAIT: u64 = 0;
        const WAKE: u64 = 1;
        const REQUEUE: u64 = 3;
        const CMP_REQUEUE: u64 = 4;
        const WAKE_OP: u64 = 5;
        const WAIT_BITSET: u64 = 9;
        const WAKE_BITSET: u64 = 10;
        let [uaddr, op, val, timeout, _, _] = a;
        let cmd = op & !(128 | 256);
        Ok(match cmd {
            WAIT | WAIT_BITSET => {
                if uaddr % 4 != 0 {
                    return Ok(EINVAL);
                }
                match mem.load32(uaddr) {
                    Err(_) => EFAULT,
                    Ok(v) if v != val as u32 => e(libc::EAGAIN),
                    // One thread: nobody can ever wake it. With a timeout the wait
                    // would end in ETIMEDOUT, so answer that at once; without one the
                    // guest would hang forever, so end the run instead.
                    Ok(_) if timeout != 0 => e(libc::ETIMEDOUT),
                    Ok(_) => return Err(SyscallExit::Deadlock { uaddr }),
                }
            }
            WAKE | WAKE_BITSET | REQUEUE | CMP_REQUEUE | WAKE_OP => 0,
            _ => e(libc::ENOSYS),
        })
    }
}

/// Closes `fd` and answers EACCES when it is a `/proc/<pid>/mem` file (however the
/// guest named it: `/proc/self/mem`, `/proc/thread-self/mem`, a symlink, a path relative
/// to a /proc directory fd). Through vmjit's own mem file the guest could read and
/// write host memory outside its reservation, which the sandbox promises it cannot.
/// Other results pass through.
fn refuse_process_memory_file(fd: i64) -> i64 {
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

/// ppoll. The signal mask argument is ignored: vmjit delivers no signals, so there is
/// nothing for it to unblock during the wait.
fn ppoll(fds: u64, nfds: u64, tmo: u64, mem: &mut GuestMemory) -> i64 {
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
fn rw_vec(
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

fn timespec(s: i64, ns: i64) -> [u8; 16] {
    let mut b = [0u8; 16];
    b[..8].copy_from_slice(&s.to_le_bytes());
    b[8..].copy_from_slice(&ns.to_le_bytes());
    b
}

fn read_timespec(mem: &GuestMemory, addr: u64) -> Option<(i64, i64)> {
    Some((
        mem.load64(addr).ok()? as i64,
        mem.load64(addr.wrapping_add(8)).ok()? as i64,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::PERM_X;

    const HEAP: u64 = 0x100_0000;

    fn setup() -> (Syscalls, GuestMemory) {
        let mut m = GuestMemory::new().unwrap();
        m.map(0x10000, 0x10000, PERM_R | PERM_W).unwrap();
        (Syscalls::new(HEAP, b"/bin/guest".to_vec()), m)
    }

    fn call(s: &mut Syscalls, m: &mut GuestMemory, n: u64, a: &[u64]) -> i64 {
        let mut args = [0u64; 6];
        args[..a.len()].copy_from_slice(a);
        s.dispatch(n, args, m).expect("call continues the guest")
    }

    fn host_pipe() -> [i32; 2] {
        host::pipe2(libc::O_CLOEXEC).expect("pipe")
    }

    fn close(fd: i32) {
        host::int_call(libc::SYS_close, [fd as u64, 0, 0, 0, 0, 0]);
    }

    #[test]
    fn write_and_read_move_guest_bytes_through_host_fds() {
        let (mut s, mut m) = setup();
        let [r, w] = host_pipe();
        m.write_bytes(0x10000, b"hello pipe").unwrap();
        assert_eq!(
            call(&mut s, &mut m, nr::WRITE, &[w as u64, 0x10000, 10]),
            10
        );
        assert_eq!(call(&mut s, &mut m, nr::READ, &[r as u64, 0x10100, 64]), 10);
        let mut buf = [0u8; 10];
        m.read_bytes(0x10100, &mut buf).unwrap();
        assert_eq!(&buf, b"hello pipe");
        close(r);
        close(w);
    }

    #[test]
    fn buffers_outside_mapped_memory_give_efault_not_a_crash() {
        let (mut s, mut m) = setup();
        let [r, w] = host_pipe();
        assert_eq!(
            call(&mut s, &mut m, nr::WRITE, &[w as u64, 0x20000, 0x10]),
            EFAULT
        );
        // A buffer running into unmapped memory is refused whole (as qemu-user does).
        assert_eq!(
            call(&mut s, &mut m, nr::WRITE, &[w as u64, 0x1f000, 0x2000]),
            EFAULT
        );
        assert_eq!(
            call(&mut s, &mut m, nr::WRITE, &[w as u64, u64::MAX - 4, 16]),
            EFAULT
        );
        assert_eq!(
            call(&mut s, &mut m, nr::READ, &[r as u64, 0x5000, 16]),
            EFAULT
        );
        // Read-only memory cannot receive data.
        m.protect(0x18000, 0x1000, PERM_R).unwrap();
        assert_eq!(
            call(&mut s, &mut m, nr::READ, &[r as u64, 0x18000, 16]),
            EFAULT
        );
        close(r);
        close(w);
    }

    #[test]
    fn writev_gathers_every_iovec() {
        let (mut s, mut m) = setup();
        let [r, w] = host_pipe();
        m.write_bytes(0x10000, b"abc").unwrap();
        m.write_bytes(0x10010, b"defg").unwrap();
        let iov: Vec<u8> = [0x10000u64, 3, 0x10010, 4]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        m.write_bytes(0x10100, &iov).unwrap();
        assert_eq!(call(&mut s, &mut m, nr::WRITEV, &[w as u64, 0x10100, 2]), 7);
        assert_eq!(call(&mut s, &mut m, nr::READ, &[r as u64, 0x10200, 64]), 7);
        let mut buf = [0u8; 7];
        m.read_bytes(0x10200, &mut buf).unwrap();
        assert_eq!(&buf, b"abcdefg");
        close(r);
        close(w);
    }

    #[test]
    fn write_to_a_closed_pipe_kills_the_guest_with_sigpipe() {
        let (mut s, mut m) = setup();
        let [r, w] = host_pipe();
        close(r);
        let args = [w as u64, 0x10000, 1, 0, 0, 0];
        assert_eq!(
            s.dispatch(nr::WRITE, args, &mut m),
            Err(SyscallExit::Signal(libc::SIGPIPE))
        );
        close(w);
    }

    #[test]
    fn brk_grows_and_shrinks_the_heap() {
        let (mut s, mut m) = setup();
        assert_eq!(call(&mut s, &mut m, nr::BRK, &[0]), HEAP as i64);
        assert_eq!(
            call(&mut s, &mut m, nr::BRK, &[HEAP + 0x2100]),
            (HEAP + 0x2100) as i64
        );
        m.write_bytes(HEAP + 0x20ff, &[1]).unwrap();
        assert_eq!(
            call(&mut s, &mut m, nr::BRK, &[HEAP + 0x1000]),
            (HEAP + 0x1000) as i64
        );
        assert!(m.load8(HEAP + 0x1000).is_err());
        // Below the start: refused, the break stays.
        assert_eq!(
            call(&mut s, &mut m, nr::BRK, &[0x1000]),
            (HEAP + 0x1000) as i64
        );
    }

    #[test]
    fn anonymous_mmap_is_zeroed_page_aligned_and_unmappable() {
        let (mut s, mut m) = setup();
        let a = call(&mut s, &mut m, nr::MMAP, &[0, 10000, 3, 0x22, u64::MAX, 0]);
        assert!(a > 0 && (a as u64).is_multiple_of(PAGE_SIZE), "{a:#x}");
        let a = a as u64;
        assert!(a + 12288 <= layout::MMAP_TOP && a > HEAP);
        assert_eq!(m.load64(a + 8192), Ok(0));
        m.write_bytes(a, b"x").unwrap();
        let b = call(&mut s, &mut m, nr::MMAP, &[0, 4096, 1, 0x22, u64::MAX, 0]) as u64;
        assert!(b + 4096 <= a || b >= a + 12288, "mappings must not overlap");
        assert!(m.store8(b, 1).is_err(), "PROT_READ mapping is read-only");
        assert_eq!(call(&mut s, &mut m, nr::MUNMAP, &[a, 12288]), 0);
        assert!(m.load8(a).is_err());
        assert_eq!(call(&mut s, &mut m, nr::MUNMAP, &[a + 1, 4096]), EINVAL);
    }

    #[test]
    fn fixed_mmap_replaces_and_noreplace_refuses() {
        let (mut s, mut m) = setup();
        m.write_bytes(0x10000, b"old").unwrap();
        assert_eq!(
            call(
                &mut s,
                &mut m,
                nr::MMAP,
                &[0x10000, 4096, 3, 0x32, u64::MAX, 0]
            ),
            0x10000
        );
        assert_eq!(m.load8(0x10000), Ok(0), "MAP_FIXED gives fresh zero pages");
        let r = call(
            &mut s,
            &mut m,
            nr::MMAP,
            &[0x10000, 4096, 3, 0x10_0022, u64::MAX, 0],
        );
        assert_eq!(r, e(libc::EEXIST));
        assert_eq!(
            call(
                &mut s,
                &mut m,
                nr::MMAP,
                &[0x10001, 4096, 3, 0x32, u64::MAX, 0]
            ),
            EINVAL
        );
    }

    #[test]
    fn file_backed_mmap_copies_the_file_and_zero_fills_the_tail() {
        let (mut s, mut m) = setup();
        let path = std::env::temp_dir().join(format!("vmjit-mmap-{}", std::process::id()));
        std::fs::write(&path, b"file contents").unwrap();
        let c = CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
        let fd = host::openat(-100, &c, libc::O_RDONLY | libc::O_CLOEXEC, 0);
        assert!(fd >= 0);
        let a = call(&mut s, &mut m, nr::MMAP, &[0, 8192, 1, 2, fd as u64, 0]) as u64;
        let mut buf = [0u8; 13];
        m.read_bytes(a, &mut buf).unwrap();
        assert_eq!(&buf, b"file contents");
        assert_eq!(m.load8(a + 13), Ok(0));
        assert_eq!(m.load8(a + 8191), Ok(0));
        // Writable shared file mappings cannot be honoured by copying: refused.
        assert_eq!(
            call(&mut s, &mut m, nr::MMAP, &[0, 4096, 3, 1, fd as u64, 0]),
            e(libc::ENODEV)
        );
        close(fd as i32);
        let _ = std::fs::remove_file(&path);
    }

    #[test]
    fn mprotect_changes_permissions_and_invalidates_code() {
        let (mut s, mut m) = setup();
        m.protect(0x10000, 0x1000, PERM_R | PERM_X).unwrap();
        assert_eq!(call(&mut s, &mut m, nr::MPROTECT, &[0x10000, 0x1000, 3]), 0);
        assert!(m.store8(0x10000, 1).is_ok());
        assert_eq!(
            s.take_invalidations(),
            vec![Invalidation::Range {
                lo: 0x10000,
                hi: 0x11000
            }]
        );
        // Non-executable pages have no code to invalidate.
        assert_eq!(call(&mut s, &mut m, nr::MPROTECT, &[0x11000, 0x1000, 1]), 0);
        assert!(s.take_invalidations().is_empty());
        assert_eq!(
            call(&mut s, &mut m, nr::MPROTECT, &[0x30000, 0x1000, 1]),
            ENOMEM
        );
    }

    #[test]
    fn munmap_of_code_and_flush_icache_request_invalidation() {
        let (mut s, mut m) = setup();
        m.protect(0x12000, 0x1000, PERM_R | PERM_X).unwrap();
        assert_eq!(call(&mut s, &mut m, nr::MUNMAP, &[0x12000, 0x1000]), 0);
        assert_eq!(
            s.take_invalidations(),
            vec![Invalidation::Range {
                lo: 0x12000,
                hi: 0x13000
            }]
        );
        assert_eq!(
            call(
                &mut s,
                &mut m,
                nr::RISCV_FLUSH_ICACHE,
                &[0x10000, 0x11000, 0]
            ),
            0
        );
        assert_eq!(s.take_invalidations(), vec![Invalidation::All]);
    }

    #[test]
    fn mremap_grows_in_place_or_moves_with_contents() {
        let (mut s, mut m) = setup();
        let a = call(&mut s, &mut m, nr::MMAP, &[0, 4096, 3, 0x22, u64::MAX, 0]) as u64;
        m.write_bytes(a, b"keep").unwrap();
        // Block growth in place with another mapping right after it.
        m.map(a + 4096, 4096, PERM_R).unwrap();
        assert_eq!(
            call(&mut s, &mut m, nr::MREMAP, &[a, 4096, 16384, 0]),
            ENOMEM
        );
        let b = call(&mut s, &mut m, nr::MREMAP, &[a, 4096, 16384, 1]) as u64;
        assert_ne!(b, a);
        let mut buf = [0u8; 4];
        m.read_bytes(b, &mut buf).unwrap();
        assert_eq!(&buf, b"keep");
        m.store8(b + 16383, 1).unwrap();
        assert!(m.load8(a).is_err(), "old mapping is gone");
        assert_eq!(
            call(&mut s, &mut m, nr::MREMAP, &[b, 16384, 4096, 0]),
            b as i64
        );
        assert!(m.load8(b + 4096).is_err());
    }

    #[test]
    fn mremap_to_a_fixed_range_overlapping_the_old_one_is_refused_and_keeps_the_data() {
        let (mut s, mut m) = setup();
        let a = call(&mut s, &mut m, nr::MMAP, &[0, 16384, 3, 0x22, u64::MAX, 0]) as u64;
        m.write_bytes(a, b"keep").unwrap();
        // MREMAP_MAYMOVE | MREMAP_FIXED onto a range overlapping the source.
        assert_eq!(
            call(&mut s, &mut m, nr::MREMAP, &[a, 8192, 8192, 3, a + 4096]),
            EINVAL
        );
        assert_eq!(
            call(&mut s, &mut m, nr::MREMAP, &[a, 8192, 8192, 3, a]),
            EINVAL
        );
        let mut buf = [0u8; 4];
        m.read_bytes(a, &mut buf).unwrap();
        assert_eq!(&buf, b"keep");
        // A zero old length (duplicating a shared mapping in Linux) is refused too.
        assert_eq!(call(&mut s, &mut m, nr::MREMAP, &[a, 0, 8192, 1]), EINVAL);
        // A disjoint fixed target works and moves the bytes.
        let to = a + 8192;
        assert_eq!(
            call(&mut s, &mut m, nr::MREMAP, &[a, 4096, 8192, 3, to]),
            to as i64
        );
        m.read_bytes(to, &mut buf).unwrap();
        assert_eq!(&buf, b"keep");
        assert!(m.load8(a).is_err());
    }

    #[test]
    fn readv_with_a_bad_later_buffer_transfers_up_to_it() {
        let (mut s, mut m) = setup();
        let [r, w] = host_pipe();
        m.write_bytes(0x10000, b"0123456789abcdef").unwrap();
        assert_eq!(
            call(&mut s, &mut m, nr::WRITE, &[w as u64, 0x10000, 16]),
            16
        );
        // Second buffer runs from writable into read-only memory.
        m.protect(0x1f000, 0x1000, PERM_R).unwrap();
        let iov: Vec<u8> = [0x10100u64, 4, 0x1eff8, 16]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        m.write_bytes(0x10200, &iov).unwrap();
        assert_eq!(call(&mut s, &mut m, nr::READV, &[r as u64, 0x10200, 2]), 4);
        assert_eq!(m.load32(0x10100), Ok(u32::from_le_bytes(*b"0123")));
        // A bad first buffer is EFAULT and consumes nothing.
        let iov: Vec<u8> = [0x1eff8u64, 16]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        m.write_bytes(0x10200, &iov).unwrap();
        assert_eq!(
            call(&mut s, &mut m, nr::READV, &[r as u64, 0x10200, 1]),
            EFAULT
        );
        assert_eq!(call(&mut s, &mut m, nr::READ, &[r as u64, 0x10300, 64]), 12);
        close(r);
        close(w);
    }

    #[test]
    fn preadv_and_pwritev_use_the_offset_and_leave_the_file_position() {
        let (mut s, mut m) = setup();
        let path = std::env::temp_dir().join(format!("vmjit-preadv-{}", std::process::id()));
        std::fs::write(&path, b"hello world").unwrap();
        let c = CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
        let fd = host::openat(-100, &c, libc::O_RDWR | libc::O_CLOEXEC, 0) as u64;
        let iov: Vec<u8> = [0x10000u64, 2, 0x10010, 3]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        m.write_bytes(0x10100, &iov).unwrap();
        assert_eq!(call(&mut s, &mut m, nr::PREADV, &[fd, 0x10100, 2, 6]), 5);
        assert_eq!(m.load16(0x10000), Ok(u16::from_le_bytes(*b"wo")));
        m.write_bytes(0x10000, b"HE").unwrap();
        m.write_bytes(0x10010, b"LLO").unwrap();
        assert_eq!(call(&mut s, &mut m, nr::PWRITEV, &[fd, 0x10100, 2, 0]), 5);
        assert_eq!(call(&mut s, &mut m, nr::LSEEK, &[fd, 0, 1]), 0);
        assert_eq!(std::fs::read(&path).unwrap(), b"HELLO world");
        close(fd as i32);
        let _ = std::fs::remove_file(&path);
    }

    #[test]
    fn empty_buffers_at_unmapped_user_addresses_are_fine() {
        let (mut s, mut m) = setup();
        let [r, w] = host_pipe();
        assert_eq!(
            call(&mut s, &mut m, nr::WRITE, &[w as u64, 0x0dea_dbee_f000, 0]),
            0
        );
        assert_eq!(
            call(&mut s, &mut m, nr::READ, &[r as u64, 0x0dea_dbee_f000, 0]),
            0
        );
        // Not a user address at all: EFAULT, as Linux.
        assert_eq!(
            call(&mut s, &mut m, nr::WRITE, &[w as u64, u64::MAX, 0]),
            EFAULT
        );
        close(r);
        close(w);
    }

    #[test]
    fn munmap_beyond_the_guest_space_but_in_user_space_succeeds() {
        let (mut s, mut m) = setup();
        assert_eq!(call(&mut s, &mut m, nr::MUNMAP, &[1 << 40, 4096]), 0);
        assert_eq!(
            call(&mut s, &mut m, nr::MUNMAP, &[GUEST_SPACE - 4096, 8192]),
            0
        );
        assert_eq!(
            call(&mut s, &mut m, nr::MUNMAP, &[u64::MAX - 4095, 4096]),
            EINVAL
        );
    }

    #[test]
    fn prot_sem_is_accepted_and_unknown_prot_bits_refused() {
        let (mut s, mut m) = setup();
        let a = call(
            &mut s,
            &mut m,
            nr::MMAP,
            &[0, 4096, 0x8 | 3, 0x22, u64::MAX, 0],
        );
        assert!(a > 0, "{a}");
        assert_eq!(
            call(&mut s, &mut m, nr::MPROTECT, &[a as u64, 4096, 0x8 | 1]),
            0
        );
        assert_eq!(
            call(&mut s, &mut m, nr::MPROTECT, &[a as u64, 4096, 0x10]),
            EINVAL
        );
    }

    #[test]
    fn mmap_of_a_directory_or_pipe_is_enodev_and_of_a_write_only_file_eacces() {
        let (mut s, mut m) = setup();
        let [r, w] = host_pipe();
        assert_eq!(
            call(&mut s, &mut m, nr::MMAP, &[0, 4096, 1, 2, r as u64, 0]),
            e(libc::ENODEV)
        );
        let dir = CString::new(std::env::temp_dir().as_os_str().as_encoded_bytes()).unwrap();
        let dfd = host::openat(-100, &dir, libc::O_RDONLY | libc::O_CLOEXEC, 0);
        assert_eq!(
            call(&mut s, &mut m, nr::MMAP, &[0, 4096, 1, 2, dfd as u64, 0]),
            e(libc::ENODEV)
        );
        let path = std::env::temp_dir().join(format!("vmjit-wronly-{}", std::process::id()));
        std::fs::write(&path, b"data").unwrap();
        let c = CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
        let wfd = host::openat(-100, &c, libc::O_WRONLY | libc::O_CLOEXEC, 0);
        assert_eq!(
            call(&mut s, &mut m, nr::MMAP, &[0, 4096, 1, 2, wfd as u64, 0]),
            e(libc::EACCES)
        );
        for fd in [r, w, dfd as i32, wfd as i32] {
            close(fd);
        }
        let _ = std::fs::remove_file(&path);
    }

    #[test]
    fn mmap_of_dev_zero_gives_zeroed_writable_memory() {
        let (mut s, mut m) = setup();
        let fd = host::openat(-100, c"/dev/zero", libc::O_RDONLY | libc::O_CLOEXEC, 0);
        assert!(fd >= 0);
        let a = call(&mut s, &mut m, nr::MMAP, &[0, 8192, 3, 2, fd as u64, 0]);
        assert!(a > 0, "{a}");
        m.store8(a as u64 + 5, 1).unwrap();
        assert_eq!(m.load8(a as u64 + 4096), Ok(0));
        close(fd as i32);
    }

    #[test]
    fn pipe2_and_dup3_refuse_unknown_flags() {
        let (mut s, mut m) = setup();
        assert_eq!(
            call(&mut s, &mut m, nr::PIPE2, &[0x10000, 0x8000_0000]),
            EINVAL
        );
        assert_eq!(call(&mut s, &mut m, nr::PIPE2, &[0x10000, 1]), EINVAL);
        assert_eq!(call(&mut s, &mut m, nr::DUP3, &[1, 50, 1]), EINVAL);
        assert_eq!(call(&mut s, &mut m, nr::PIPE2, &[0x10000, 0o2004000]), 0);
        let (r, w) = (m.load32(0x10000).unwrap(), m.load32(0x10004).unwrap());
        let fl = call(
            &mut s,
            &mut m,
            nr::FCNTL,
            &[u64::from(r), libc::F_GETFL as u64],
        );
        assert_eq!(fl & 0o4000, 0o4000, "O_NONBLOCK reached the host");
        close(r as i32);
        close(w as i32);
    }

    #[test]
    fn madvise_dontneed_over_a_hole_zeroes_the_mapped_parts_and_reports_enomem() {
        let (mut s, mut m) = setup();
        m.write_bytes(0x10000, b"x").unwrap();
        m.write_bytes(0x1f000, b"y").unwrap();
        // [0x10000, 0x20000) is mapped, [0x20000, 0x21000) is not.
        assert_eq!(
            call(&mut s, &mut m, nr::MADVISE, &[0x10000, 0x11000, 4]),
            ENOMEM
        );
        assert_eq!(m.load8(0x10000), Ok(0));
        assert_eq!(m.load8(0x1f000), Ok(0));
        assert_eq!(call(&mut s, &mut m, nr::MADVISE, &[0x10000, 0x10000, 4]), 0);
        assert_eq!(
            call(&mut s, &mut m, nr::MADVISE, &[u64::MAX - 0xfff, 0x1000, 4]),
            EINVAL
        );
    }

    #[test]
    fn opening_vmjits_own_memory_file_is_refused() {
        let (mut s, mut m) = setup();
        let cwd = (-100i64) as u64;
        for path in [
            &b"/proc/self/mem\0"[..],
            b"/proc/thread-self/mem\0",
            b"/proc/self/../self/./mem\0",
        ] {
            m.write_bytes(0x10000, path).unwrap();
            assert_eq!(
                call(&mut s, &mut m, nr::OPENAT, &[cwd, 0x10000, 2]),
                e(libc::EACCES),
                "{}",
                String::from_utf8_lossy(path)
            );
        }
        // Relative to a directory fd on /proc/self.
        m.write_bytes(0x10000, b"/proc/self\0").unwrap();
        let dir = call(&mut s, &mut m, nr::OPENAT, &[cwd, 0x10000, 0o200000]);
        assert!(dir >= 0, "{dir}");
        m.write_bytes(0x10000, b"mem\0").unwrap();
        assert_eq!(
            call(&mut s, &mut m, nr::OPENAT, &[dir as u64, 0x10000, 0]),
            e(libc::EACCES)
        );
        // Its neighbours stay readable.
        m.write_bytes(0x10000, b"maps\0").unwrap();
        let maps = call(&mut s, &mut m, nr::OPENAT, &[dir as u64, 0x10000, 0]);
        assert!(maps >= 0, "{maps}");
        close(maps as i32);
        close(dir as i32);
    }

    #[test]
    fn ppoll_reports_a_readable_pipe_and_times_out_on_an_empty_one() {
        let (mut s, mut m) = setup();
        let [r, w] = host_pipe();
        // struct pollfd { int fd; short events = POLLIN; short revents; }
        let pfd = |fd: i32| {
            let mut b = fd.to_le_bytes().to_vec();
            b.extend_from_slice(&1u16.to_le_bytes());
            b.extend_from_slice(&0u16.to_le_bytes());
            b
        };
        m.write_bytes(0x10000, &pfd(r)).unwrap();
        m.write_bytes(0x10100, &timespec(0, 0)).unwrap();
        assert_eq!(call(&mut s, &mut m, nr::PPOLL, &[0x10000, 1, 0x10100]), 0);
        m.write_bytes(0x10200, b"x").unwrap();
        assert_eq!(call(&mut s, &mut m, nr::WRITE, &[w as u64, 0x10200, 1]), 1);
        assert_eq!(call(&mut s, &mut m, nr::PPOLL, &[0x10000, 1, 0]), 1);
        assert_eq!(m.load16(0x10006), Ok(1), "revents = POLLIN");
        // The array must be mapped and writable (revents is written back).
        assert_eq!(call(&mut s, &mut m, nr::PPOLL, &[0x1fffc, 1, 0]), EFAULT);
        assert_eq!(
            call(&mut s, &mut m, nr::PPOLL, &[0x10000, 1 << 40, 0]),
            EINVAL
        );
        close(r);
        close(w);
    }

    #[test]
    fn fcntl_owner_and_signal_commands_are_forwarded() {
        let (mut s, mut m) = setup();
        let [r, w] = host_pipe();
        assert_eq!(call(&mut s, &mut m, nr::FCNTL, &[r as u64, 9]), 0); // F_GETOWN
        assert_eq!(call(&mut s, &mut m, nr::FCNTL, &[r as u64, 11]), 0); // F_GETSIG
        assert_eq!(call(&mut s, &mut m, nr::FCNTL, &[r as u64, 12345]), EINVAL);
        close(r);
        close(w);
    }

    #[test]
    fn clock_nanosleep_lets_the_host_validate_the_clock() {
        let (mut s, mut m) = setup();
        m.write_bytes(0x10000, &timespec(0, 1000)).unwrap();
        assert_eq!(
            call(&mut s, &mut m, nr::CLOCK_NANOSLEEP, &[12345, 0, 0x10000, 0]),
            EINVAL
        );
        assert_eq!(
            call(
                &mut s,
                &mut m,
                nr::CLOCK_NANOSLEEP,
                &[libc::CLOCK_THREAD_CPUTIME_ID as u64, 0, 0x10000, 0]
            ),
            e(libc::EOPNOTSUPP)
        );
        assert_eq!(
            call(&mut s, &mut m, nr::CLOCK_NANOSLEEP, &[1, 0, 0x10000, 0]),
            0
        );
        // An absolute time in the past returns at once.
        assert_eq!(
            call(&mut s, &mut m, nr::CLOCK_NANOSLEEP, &[1, 1, 0x10000, 0]),
            0
        );
        assert_eq!(call(&mut s, &mut m, nr::NANOSLEEP, &[0x10000, 0]), 0);
        m.write_bytes(0x10000, &timespec(-1, 0)).unwrap();
        assert_eq!(call(&mut s, &mut m, nr::NANOSLEEP, &[0x10000, 0]), EINVAL);
        assert_eq!(call(&mut s, &mut m, nr::NANOSLEEP, &[0, 0]), EFAULT);
    }

    #[test]
    fn fstat_uses_the_riscv64_struct_layout() {
        let (mut s, mut m) = setup();
        let path = std::env::temp_dir().join(format!("vmjit-stat-{}", std::process::id()));
        std::fs::write(&path, vec![7u8; 12345]).unwrap();
        let c = CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
        m.write_bytes(0x10000, c.as_bytes_with_nul()).unwrap();
        let fd = call(
            &mut s,
            &mut m,
            nr::OPENAT,
            &[(-100i64) as u64, 0x10000, 0, 0],
        );
        assert!(fd >= 0, "{fd}");
        assert_eq!(call(&mut s, &mut m, nr::FSTAT, &[fd as u64, 0x11000]), 0);
        let mode = m.load32(0x11000 + 16).unwrap();
        assert_eq!(mode & libc::S_IFMT, libc::S_IFREG);
        assert_eq!(m.load64(0x11000 + 48), Ok(12345), "st_size at offset 48");
        assert_eq!(
            m.load32(0x11000 + 20),
            Ok(1),
            "st_nlink is 32-bit at offset 20"
        );
        assert_eq!(
            call(
                &mut s,
                &mut m,
                nr::NEWFSTATAT,
                &[(-100i64) as u64, 0x10000, 0x12000, 0]
            ),
            0
        );
        assert_eq!(m.load64(0x12000 + 48), Ok(12345));
        assert_eq!(call(&mut s, &mut m, nr::CLOSE, &[fd as u64]), 0);
        let _ = std::fs::remove_file(&path);
    }

    #[test]
    fn open_flags_translate_both_ways() {
        // O_WRONLY|O_CREAT|O_TRUNC|O_CLOEXEC|O_DIRECTORY|O_NOFOLLOW in asm-generic values.
        let guest = 0o1 | 0o100 | 0o1000 | 0o2000000 | 0o200000 | 0o400000;
        let host = open_flags_to_host(guest);
        assert_eq!(
            host,
            libc::O_WRONLY
                | libc::O_CREAT
                | libc::O_TRUNC
                | libc::O_CLOEXEC
                | libc::O_DIRECTORY
                | libc::O_NOFOLLOW
        );
        assert_eq!(
            open_flags_to_guest(libc::O_RDWR | libc::O_APPEND | libc::O_NONBLOCK),
            0o2 | 0o2000 | 0o4000
        );
    }

    #[test]
    fn missing_path_gives_enoent_and_unmapped_path_efault() {
        let (mut s, mut m) = setup();
        m.write_bytes(0x10000, b"/nonexistent/vmjit/path\0")
            .unwrap();
        assert_eq!(
            call(
                &mut s,
                &mut m,
                nr::OPENAT,
                &[(-100i64) as u64, 0x10000, 0, 0]
            ),
            e(libc::ENOENT)
        );
        assert_eq!(
            call(
                &mut s,
                &mut m,
                nr::OPENAT,
                &[(-100i64) as u64, 0x9000, 0, 0]
            ),
            EFAULT
        );
    }

    #[test]
    fn readlink_of_proc_self_exe_names_the_guest_program() {
        let (mut s, mut m) = setup();
        m.write_bytes(0x10000, b"/proc/self/exe\0").unwrap();
        // Linux's `bufsiz` is an int: 2^32 is 0 and refused, 2^32 + 4 is 4.
        let at = (-100i64) as u64;
        assert_eq!(
            call(
                &mut s,
                &mut m,
                nr::READLINKAT,
                &[at, 0x10000, 0x11000, 1 << 32]
            ),
            EINVAL
        );
        assert_eq!(
            call(
                &mut s,
                &mut m,
                nr::READLINKAT,
                &[at, 0x10000, 0x11000, (1 << 32) + 4]
            ),
            4
        );
        let n = call(
            &mut s,
            &mut m,
            nr::READLINKAT,
            &[(-100i64) as u64, 0x10000, 0x11000, 256],
        );
        assert_eq!(n, 10);
        let mut buf = [0u8; 10];
        m.read_bytes(0x11000, &mut buf).unwrap();
        assert_eq!(&buf, b"/bin/guest");
    }

    #[test]
    fn sigaction_is_recorded_and_returned() {
        let (mut s, mut m) = setup();
        let act: Vec<u8> = [0x1234u64, 0x4000000, 0]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        m.write_bytes(0x10000, &act).unwrap();
        assert_eq!(
            call(&mut s, &mut m, nr::RT_SIGACTION, &[10, 0x10000, 0, 8]),
            0
        );
        assert_eq!(
            call(&mut s, &mut m, nr::RT_SIGACTION, &[10, 0, 0x11000, 8]),
            0
        );
        assert_eq!(m.load64(0x11000), Ok(0x1234));
        assert_eq!(
            call(&mut s, &mut m, nr::RT_SIGACTION, &[9, 0x10000, 0, 8]),
            EINVAL
        );
        assert_eq!(
            call(&mut s, &mut m, nr::RT_SIGACTION, &[10, 0x10000, 0, 16]),
            EINVAL
        );
    }

    #[test]
    fn sigprocmask_blocks_and_reports_the_old_mask() {
        let (mut s, mut m) = setup();
        m.write_bytes(0x10000, &(1u64 << 5).to_le_bytes()).unwrap();
        assert_eq!(
            call(
                &mut s,
                &mut m,
                nr::RT_SIGPROCMASK,
                &[0, 0x10000, 0x10008, 8]
            ),
            0
        );
        assert_eq!(m.load64(0x10008), Ok(0));
        assert_eq!(
            call(&mut s, &mut m, nr::RT_SIGPROCMASK, &[2, 0, 0x10008, 8]),
            0
        );
        assert_eq!(m.load64(0x10008), Ok(1 << 5));
    }

    #[test]
    fn tgkill_of_self_with_sigabrt_ends_the_run_as_that_signal() {
        let (mut s, mut m) = setup();
        let pid = s.pid as u64;
        assert_eq!(
            s.dispatch(nr::TGKILL, [pid, pid, 6, 0, 0, 0], &mut m),
            Err(SyscallExit::Signal(6))
        );
        // Signal 0 only checks, SIGCHLD is ignored by default, other processes are off limits.
        assert_eq!(call(&mut s, &mut m, nr::TGKILL, &[pid, pid, 0]), 0);
        assert_eq!(call(&mut s, &mut m, nr::KILL, &[pid, 17]), 0);
        assert_eq!(call(&mut s, &mut m, nr::KILL, &[1, 9]), e(libc::EPERM));
    }

    #[test]
    fn futex_wait_single_threaded_never_blocks() {
        let (mut s, mut m) = setup();
        m.write_bytes(0x10000, &5u32.to_le_bytes()).unwrap();
        assert_eq!(
            call(&mut s, &mut m, nr::FUTEX, &[0x10000, 128, 4]),
            e(libc::EAGAIN)
        );
        assert_eq!(call(&mut s, &mut m, nr::FUTEX, &[0x10000, 129, 1]), 0);
        assert_eq!(
            call(&mut s, &mut m, nr::FUTEX, &[0x10000, 128, 5, 0x10008]),
            e(libc::ETIMEDOUT)
        );
        assert_eq!(
            s.dispatch(nr::FUTEX, [0x10000, 128, 5, 0, 0, 0], &mut m),
            Err(SyscallExit::Deadlock { uaddr: 0x10000 })
        );
    }

    #[test]
    fn exit_group_ends_the_run_with_the_low_byte_of_the_status() {
        let (mut s, mut m) = setup();
        assert_eq!(
            s.dispatch(nr::EXIT_GROUP, [0x1_2a, 0, 0, 0, 0, 0], &mut m),
            Err(SyscallExit::Exited(42))
        );
    }

    #[test]
    fn random_arguments_to_memory_and_process_calls_never_panic() {
        // Calls without lasting host side effects, fed edge-case arguments; every result
        // must be a value or a clean run end, and memory must stay consistent.
        let calls = [
            nr::BRK,
            nr::MMAP,
            nr::MUNMAP,
            nr::MPROTECT,
            nr::MREMAP,
            nr::MADVISE,
            nr::RT_SIGACTION,
            nr::RT_SIGPROCMASK,
            nr::SIGALTSTACK,
            nr::FUTEX,
            nr::UNAME,
            nr::GETRANDOM,
            nr::CLOCK_GETTIME,
            nr::CLOCK_GETRES,
            nr::GETTIMEOFDAY,
            nr::SCHED_GETAFFINITY,
            nr::PRLIMIT64,
            nr::GETRLIMIT,
            nr::GETCWD,
            nr::READLINKAT,
            nr::NEWFSTATAT,
            nr::STATX,
            nr::FACCESSAT,
            nr::SYSINFO,
            nr::GETRUSAGE,
            nr::RISCV_FLUSH_ICACHE,
            nr::SET_TID_ADDRESS,
            nr::TGKILL,
            // Buffer-taking calls on a descriptor that is never open: every guest
            // pointer check runs, the host then answers EBADF.
            nr::READ,
            nr::WRITE,
            nr::PREAD64,
            nr::PWRITE64,
            nr::READV,
            nr::WRITEV,
            nr::PREADV,
            nr::PWRITEV,
            nr::GETDENTS64,
            nr::FSTAT,
            nr::FSTATFS,
            nr::FCNTL,
            nr::IOCTL,
            nr::PIPE2,
            9999,
        ];
        let values = [
            0,
            1,
            8,
            0x1000,
            0x10000,
            0x10ff8,
            0x1_0000_0000,
            layout::MMAP_TOP - 0x1000,
            crate::memory::GUEST_SPACE - 8,
            crate::memory::GUEST_SPACE,
            i64::MAX as u64,
            u64::MAX - 0xfff,
            u64::MAX,
        ];
        let (mut s, mut m) = setup();
        let mut x = 0x853c_49e6_748f_ea9bu64;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for _ in 0..20_000 {
            let n = calls[(next() % calls.len() as u64) as usize];
            let mut a = [0u64; 6];
            for v in &mut a {
                *v = if next() % 4 == 0 {
                    next()
                } else {
                    values[(next() % values.len() as u64) as usize]
                };
            }
            if n == nr::MMAP {
                a[4] = u64::MAX; // anonymous: never a real host fd
            }
            if n == nr::TGKILL {
                a[2] = 0; // signal 0 only probes
            }
            if matches!(
                n,
                nr::READ
                    | nr::WRITE
                    | nr::PREAD64
                    | nr::PWRITE64
                    | nr::READV
                    | nr::WRITEV
                    | nr::PREADV
                    | nr::PWRITEV
                    | nr::GETDENTS64
                    | nr::FSTAT
                    | nr::FSTATFS
                    | nr::FCNTL
                    | nr::IOCTL
            ) {
                a[0] = u64::MAX; // fd -1
            }
            if n == nr::PIPE2 {
                a[1] = 0x8000_0000; // an invalid flag: the host refuses, no fds leak
            }
            let _ = s.dispatch(n, a, &mut m);
            let _ = s.take_invalidations();
        }
        assert!(s.brk() >= HEAP);
    }

    #[test]
    fn unknown_syscall_returns_enosys() {
        let (mut s, mut m) = setup();
        assert_eq!(call(&mut s, &mut m, 4242, &[]), e(libc::ENOSYS));
        assert_eq!(call(&mut s, &mut m, 4242, &[]), e(libc::ENOSYS));
        assert_eq!(s.warned.len(), 1, "warned once per number");
    }

    #[test]
    fn uname_reports_a_riscv64_machine() {
        let (mut s, mut m) = setup();
        assert_eq!(call(&mut s, &mut m, nr::UNAME, &[0x10000]), 0);
        assert_eq!(m.read_cstr(0x10000, 65).unwrap(), b"Linux");
        assert_eq!(m.read_cstr(0x10000 + 4 * 65, 65).unwrap(), b"riscv64");
    }

    #[test]
    fn clock_gettime_writes_a_timespec() {
        let (mut s, mut m) = setup();
        assert_eq!(call(&mut s, &mut m, nr::CLOCK_GETTIME, &[1, 0x10000]), 0);
        let ns = m.load64(0x10008).unwrap();
        assert!(ns < 1_000_000_000);
        assert_eq!(
            call(&mut s, &mut m, nr::CLOCK_GETTIME, &[1, 0x5000]),
            EFAULT
        );
    }

    #[test]
    fn handle_advances_pc_and_sets_a0() {
        let (mut s, mut m) = setup();
        let mut cpu = Cpu::new();
        cpu.pc = 0x10000;
        cpu.x[17] = nr::GETPID;
        assert_eq!(s.handle(&mut cpu, &mut m), None);
        assert_eq!(cpu.pc, 0x10004);
        assert_eq!(cpu.x[10] as i64, s.pid);
    }
}
