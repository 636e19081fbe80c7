//! The Linux system-call layer for riscv64 guests (asm-generic numbering).
//!
//! A guest `ecall` arrives here with the number in `a7` and arguments in `a0..a5`; the
//! result (a value or `-errno`) goes to `a0`. Most calls are forwarded to the host
//! kernel through [`crate::host`], with guest buffers checked first (EFAULT when any
//! byte of a buffer is not mapped with the needed permission), descriptors translated
//! through the guest's own table, paths into vmjit's `/proc` entries mapped to the
//! guest's view, and structures converted where the riscv64 layout differs from the
//! host's (`struct stat`).
//!
//! Modules, by concern: `fdtable` (the guest's descriptors), `io` (calls on
//! descriptors), `fs` and `procfs` (paths), `mm` (the address space), `signal`
//! (dispositions, masks, sending, waiting, timers), `thread` (clone, futex),
//! `process` (clocks, sleeps, limits), `abi` (structure and flag conversions), `nr`,
//! `strace` (`--strace`: each call and its result on vmjit's stderr).
//!
//! **Invariants.**
//! - No guest pointer reaches the host kernel unchecked: buffers become
//!   [`crate::memory::HostRange`]s, strings are copied into host `CString`s.
//! - The guest reaches only its own descriptors: every descriptor number it passes is
//!   translated through its table (EBADF when not there), and every file it opens is
//!   checked by [`crate::sandbox::check_opened`]. vmjit's own descriptors are never in
//!   the table.
//! - Changes to executable memory (munmap, mprotect, mremap, MAP_FIXED over code,
//!   riscv_flush_icache) are recorded in [`Syscalls::take_invalidations`] so the
//!   dispatch loop can drop stale decoded or translated code before the next block.
//! - An unknown call returns `-ENOSYS` and warns once per number on stderr.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard};

use rv64::Cpu;

use crate::host;
use crate::layout;
use crate::memory::{GuestMemory, PERM_W};
use crate::signals::{self, AltStack, SigInfo};
use crate::sysnames;
use crate::threads::{ThreadGroup, ThreadHandle};

mod abi;
mod exec;
mod fdtable;
mod fork;
mod fs;
mod io;
mod mm;
pub mod nr;
mod process;
mod procfs;
mod signal;
mod strace;
mod thread;

use abi::timespec;
pub use abi::{open_flags_to_guest, open_flags_to_host, stat_to_guest};
pub use exec::ExecConfig;
use fdtable::FdTable;
pub use thread::CloneRequest;

/// The default bound on guest memory: half the host's RAM, at least 1 GiB, at most the
/// guest address space (16 GiB). On a 24 GiB host, 12 GiB: a guest can use most of the
/// machine, and a runaway one fails with ENOMEM long before the host's OOM killer would
/// pick a process.
pub fn default_max_memory() -> u64 {
    let half = host::total_ram().map_or(4 << 30, |r| r / 2);
    half.clamp(1 << 30, crate::memory::GUEST_SPACE)
}

/// How a system call ended the run (everything else continues the guest).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyscallExit {
    /// exit / exit_group with this status (already masked to 0..=255).
    Exited(i32),
    /// The process is killed by this signal at once (a signal frame that cannot be
    /// read back by `rt_sigreturn`).
    Signal(i32),
    /// A futex wait that no other thread could ever end.
    Deadlock { uaddr: u64 },
    /// `exit`: this thread ends with this status; the process goes on if other
    /// threads are alive.
    ThreadExit(i32),
    /// A new thread to start (the engine answers the call with its tid).
    Clone(CloneRequest),
    /// A new process: fork, vfork, or clone without `CLONE_VM` (the engine forks and
    /// answers with the child's pid, 0 in the child).
    Fork(CloneRequest),
}

/// Code-memory changes the dispatch loop must apply before running more guest code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Invalidation {
    /// Drop code translated from bytes in `[lo, hi)`.
    Range { lo: u64, hi: u64 },
    /// Drop everything.
    All,
}

/// The system-call layer of one guest thread: a handle on the process's state, shared
/// by every thread of the process, and the thread's own.
#[derive(Debug)]
pub struct Syscalls {
    proc: Arc<ProcessState>,
    thread: ThreadState,
}

/// What a thread's parent hands it to build its [`Syscalls`].
#[derive(Debug)]
pub(crate) struct ThreadSeed {
    proc: Arc<ProcessState>,
    sigmask: u64,
}

/// Per-process state (one per guest process, shared by its threads). Each part has its
/// own lock, held only for the bookkeeping of one call and never across a host call
/// that can block.
#[derive(Debug)]
pub(crate) struct ProcessState {
    mm: Mutex<MmState>,
    /// Unknown syscall numbers already warned about.
    warned: Mutex<HashSet<u64>>,
    exe_path: Vec<u8>,
    /// `/proc/self/cmdline` and `environ` of the guest (NUL-terminated strings).
    cmdline: Vec<u8>,
    environ: Vec<u8>,
    pid: i64,
    /// The guest's descriptors.
    fds: Mutex<FdTable>,
    /// Resource limits the guest set on itself (other than RLIMIT_NOFILE, which its
    /// table keeps).
    rlimits: Mutex<[Option<(u64, u64)>; 16]>,
    /// The normalised working directory when it lies under `/proc` or `/dev` (where
    /// relative paths must be classified by `procfs`), else `None`.
    cwd_virt: Mutex<Option<Vec<u8>>>,
    /// The process's threads.
    group: Arc<ThreadGroup>,
    /// Where absolute guest paths are looked up first (`fs`, `crate::sysroot`).
    sysroot: Option<crate::sysroot::Sysroot>,
    /// `--strace`: every call is printed (see `strace`).
    strace: AtomicBool,
    /// How execve runs a riscv64 program (none: it is ENOEXEC).
    exec: Option<Arc<ExecConfig>>,
    /// A process vmjit forked for its guest (or a program such a process exec'd).
    forked: AtomicBool,
}

/// The address space's bookkeeping (the mappings themselves are in `GuestMemory`).
#[derive(Debug, Clone)]
pub(crate) struct MmState {
    brk_start: u64,
    brk_cur: u64,
    mmap_cursor: u64,
    /// Most bytes of guest memory mapped with some access (`--max-memory`).
    mem_limit: u64,
}

/// Per-thread state.
#[derive(Debug, Clone)]
pub(crate) struct ThreadState {
    /// The thread's id (the process id for the first thread, as in Linux).
    pub(crate) tid: i64,
    /// The alternate signal stack (`sigaltstack`).
    pub(crate) altstack: AltStack,
    /// The mask `rt_sigsuspend` replaced, which the next handler's frame saves.
    pub(crate) saved_mask: Option<u64>,
    /// The stack pointer at the current system call.
    sp: u64,
    /// Code changes made by this thread's last call, applied by its dispatch loop.
    invalidations: Vec<Invalidation>,
    /// `set_tid_address` / `CLONE_CHILD_CLEARTID`: cleared and woken at thread exit.
    pub(crate) clear_child_tid: u64,
    /// `set_robust_list`: head and length, walked at thread exit.
    pub(crate) robust_list: (u64, u64),
    /// What the other threads see of this one.
    pub(crate) handle: Arc<ThreadHandle>,
}

impl ThreadState {
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
}

/// Locks `m`, recovering from poisoning (a panic elsewhere is reported as such; the
/// state a panicking holder left is still the best there is).
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl ProcessState {
    pub(super) fn mm(&self) -> MutexGuard<'_, MmState> {
        lock(&self.mm)
    }
    pub(super) fn fds(&self) -> MutexGuard<'_, FdTable> {
        lock(&self.fds)
    }
    pub(super) fn rlimits(&self) -> MutexGuard<'_, [Option<(u64, u64)>; 16]> {
        lock(&self.rlimits)
    }
    pub(super) fn cwd_virt(&self) -> MutexGuard<'_, Option<Vec<u8>>> {
        lock(&self.cwd_virt)
    }
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

impl Syscalls {
    /// State for a fresh process whose program break starts at `brk` (page aligned)
    /// and whose executable is `exe_path` (for `/proc/self/exe`). Its descriptor table
    /// holds the host's stdio descriptors that are open (see [`Syscalls::inherit_fd`]
    /// for more).
    pub fn new(brk: u64, exe_path: Vec<u8>) -> Self {
        let pid = host::getpid();
        let handle = ThreadHandle::new(pid);
        let group = ThreadGroup::new(Arc::clone(&handle));
        Syscalls {
            proc: Arc::new(ProcessState {
                mm: Mutex::new(MmState {
                    brk_start: brk,
                    brk_cur: brk,
                    mmap_cursor: layout::MMAP_TOP,
                    mem_limit: default_max_memory(),
                }),
                warned: Mutex::new(HashSet::new()),
                exe_path,
                cmdline: Vec::new(),
                environ: Vec::new(),
                pid,
                fds: Mutex::new(FdTable::with_stdio()),
                rlimits: Mutex::new([None; 16]),
                cwd_virt: Mutex::new(None),
                group,
                sysroot: None,
                strace: AtomicBool::new(false),
                exec: None,
                forked: AtomicBool::new(false),
            }),
            thread: ThreadState {
                tid: pid,
                altstack: AltStack::DISABLED,
                saved_mask: None,
                sp: 0,
                invalidations: Vec::new(),
                clear_child_tid: 0,
                robust_list: (0, 0),
                handle,
            },
        }
    }

    /// This thread's state (for the thread machinery: tid, clear-child-tid, robust
    /// list).
    pub(crate) fn thread(&mut self) -> &mut ThreadState {
        &mut self.thread
    }

    /// The process id.
    pub fn pid(&self) -> i64 {
        self.proc.pid
    }

    /// This thread's id.
    pub fn tid(&self) -> i64 {
        self.thread.tid
    }

    /// The process's threads.
    pub(crate) fn group(&self) -> &Arc<ThreadGroup> {
        &self.proc.group
    }

    /// What the other threads see of this one.
    pub(crate) fn thread_handle(&self) -> &Arc<ThreadHandle> {
        &self.thread.handle
    }

    /// What a new thread of this process needs to build its handle once it knows its
    /// tid (on its own host thread): see [`Syscalls::from_seed`].
    pub(crate) fn seed(&self) -> ThreadSeed {
        ThreadSeed {
            proc: Arc::clone(&self.proc),
            sigmask: self.thread.handle.mask(),
        }
    }

    /// The handle of a new thread with id `tid`, from its parent's [`ThreadSeed`].
    pub(crate) fn from_seed(seed: ThreadSeed, tid: i64) -> Syscalls {
        // A new thread inherits its creator's mask but not its alternate stack (Linux
        // clears it for CLONE_VM without CLONE_VFORK).
        let handle = ThreadHandle::new(tid);
        seed.proc.group.set_mask(&handle, seed.sigmask);
        Syscalls {
            proc: seed.proc,
            thread: ThreadState {
                tid,
                altstack: AltStack::DISABLED,
                saved_mask: None,
                sp: 0,
                invalidations: Vec::new(),
                clear_child_tid: 0,
                robust_list: (0, 0),
                handle,
            },
        }
    }

    /// Bounds the guest's memory: mappings with some access (not `PROT_NONE`) may
    /// total at most `bytes`; past that, mmap, mremap and mprotect fail with ENOMEM and
    /// brk keeps the old break.
    pub fn set_memory_limit(&mut self, bytes: u64) {
        self.proc.mm().mem_limit = bytes;
    }

    /// The bound on guest memory.
    pub fn memory_limit(&self) -> u64 {
        self.proc.mm().mem_limit
    }

    /// Gives the guest host descriptor `fd` under the same number (a descriptor vmjit
    /// was started with, as the guest would have inherited it). It must not be one
    /// vmjit uses itself; nothing happens when it is not open.
    pub fn inherit_fd(&mut self, fd: i32) {
        self.proc.fds().inherit(fd);
    }

    /// Lets execve run riscv64 programs with `config` (only before the process has a
    /// second thread; ignored otherwise).
    pub fn set_exec_config(&mut self, config: ExecConfig) {
        if let Some(p) = Arc::get_mut(&mut self.proc) {
            p.exec = Some(Arc::new(config));
        }
    }

    /// Sets what the guest's `/proc/self/cmdline` and `/proc/self/environ` show.
    /// Only before the process has a second thread (ignored otherwise).
    pub fn set_process_strings(&mut self, argv: &[&[u8]], envp: &[&[u8]]) {
        let join = |v: &[&[u8]]| {
            v.iter()
                .flat_map(|s| s.iter().copied().chain(std::iter::once(0)))
                .collect()
        };
        if let Some(p) = Arc::get_mut(&mut self.proc) {
            p.cmdline = join(argv);
            p.environ = join(envp);
        }
    }

    /// Looks the guest's absolute paths up in `sysroot` first (see [`crate::sysroot`]).
    /// Only before the process has a second thread (ignored otherwise).
    pub fn set_sysroot(&mut self, sysroot: Option<crate::sysroot::Sysroot>) {
        if let Some(p) = Arc::get_mut(&mut self.proc) {
            p.sysroot = sysroot;
        }
    }

    /// Code-memory changes since the last call (see [`Invalidation`]).
    pub fn take_invalidations(&mut self) -> Vec<Invalidation> {
        std::mem::take(&mut self.thread.invalidations)
    }

    /// Queues a code invalidation for this thread's dispatch loop to apply (fence.i).
    pub(crate) fn push_invalidation(&mut self, inv: Invalidation) {
        self.thread.invalidations.push(inv);
    }

    /// True when some invalidation is pending.
    pub fn has_invalidations(&self) -> bool {
        !self.thread.invalidations.is_empty()
    }

    /// The current program break.
    pub fn brk(&self) -> u64 {
        self.proc.mm().brk_cur
    }

    /// Performs the system call `cpu` is stopped at (`ecall` at `cpu.pc`): reads
    /// `a7`/`a0..a5`, writes the result to `a0` and advances pc past the ecall, unless
    /// the call ends the run.
    pub fn handle(&mut self, cpu: &mut Cpu, mem: &GuestMemory) -> Option<SyscallExit> {
        let n = cpu.x[17];
        let a = [
            cpu.x[10], cpu.x[11], cpu.x[12], cpu.x[13], cpu.x[14], cpu.x[15],
        ];
        if n == nr::RT_SIGRETURN {
            // Restores every register, pc and a0 included.
            let r = self.rt_sigreturn(cpu, mem);
            if self.proc.strace.load(Relaxed) {
                self.strace_sigreturn(cpu.x[10] as i64);
            }
            return r;
        }
        self.thread.sp = cpu.x[2];
        let r = if self.proc.strace.load(Relaxed) {
            self.dispatch_traced(n, a, mem)
        } else {
            self.dispatch(n, a, mem)
        };
        match r {
            Ok(v) => {
                cpu.x[10] = v as u64;
                cpu.pc = cpu.pc.wrapping_add(4);
                None
            }
            Err(exit) => Some(exit),
        }
    }

    /// Runs system call `n` with arguments `a`; `Ok(result)` continues the guest.
    pub fn dispatch(&mut self, n: u64, a: [u64; 6], mem: &GuestMemory) -> Result<i64, SyscallExit> {
        let fd = a[0] as i32;
        // The host descriptor of guest descriptor `$g`, or the call's result is EBADF.
        macro_rules! host_fd {
            ($g:expr) => {
                match self.host_fd($g) {
                    Ok(h) => h,
                    Err(r) => return Ok(r),
                }
            };
        }
        let r = match n {
            nr::READ | nr::WRITE | nr::PREAD64 | nr::PWRITE64 => self.read_write(n, a, mem),
            nr::READV | nr::WRITEV => self.rw_vec(n == nr::WRITEV, fd, a[1], a[2], None, mem),
            nr::PREADV | nr::PWRITEV => {
                self.rw_vec(n == nr::PWRITEV, fd, a[1], a[2], Some(a[3] as i64), mem)
            }
            nr::OPENAT => self.openat(fd, a[1], a[2] as u32, a[3] as u32, mem),
            nr::CLOSE => self.close(fd),
            nr::CLOSE_RANGE => self.close_range(a[0], a[1], a[2]),
            nr::LSEEK => self.lseek(fd, a[1], a[2]),
            nr::DUP => self.dup(fd),
            nr::DUP3 => self.dup3(fd, a[1] as i32, a[2]),
            nr::FTRUNCATE => self.fd_int_call(libc::SYS_ftruncate, [a[0], a[1], 0, 0, 0, 0]),
            nr::FSYNC => self.fd_int_call(libc::SYS_fsync, [a[0], 0, 0, 0, 0, 0]),
            nr::FDATASYNC => self.fd_int_call(libc::SYS_fdatasync, [a[0], 0, 0, 0, 0, 0]),
            nr::FCHMOD => self.fd_int_call(libc::SYS_fchmod, [a[0], a[1], 0, 0, 0, 0]),
            nr::FLOCK => self.fd_int_call(libc::SYS_flock, [a[0], a[1], 0, 0, 0, 0]),
            nr::FCHDIR => self.fchdir(fd),
            nr::UMASK => host::int_call(libc::SYS_umask, [a[0], 0, 0, 0, 0, 0]),
            nr::FCNTL => self.fcntl(fd, a[1] as i32, a[2], mem),
            nr::PIPE2 => self.pipe2(a[0], a[1], mem),
            nr::FSTAT => match host::fstat(host_fd!(fd).raw()) {
                Ok(st) => Self::put(mem, a[1], &stat_to_guest(&st)),
                Err(r) => r,
            },
            nr::NEWFSTATAT => self.with_path(mem, fd, a[1], |d, p, mem| {
                match host::fstatat(d, p, a[3] as i32) {
                    Ok(st) => Self::put(mem, a[2], &stat_to_guest(&st)),
                    Err(r) => r,
                }
            }),
            nr::STATX => self.with_path(mem, fd, a[1], |d, p, mem| {
                match mem.host_range(a[4], 256, PERM_W) {
                    Ok(b) => host::statx(d, p, a[2] as i32, a[3] as u32, b),
                    Err(_) => EFAULT,
                }
            }),
            nr::FACCESSAT => self.with_path(mem, fd, a[1], |d, p, _| {
                host::faccessat(d, p, a[2] as i32, 0)
            }),
            nr::FACCESSAT2 => self.with_path(mem, fd, a[1], |d, p, _| {
                host::faccessat(d, p, a[2] as i32, a[3] as i32)
            }),
            nr::GETCWD => match mem.host_range(a[0], a[1], PERM_W) {
                Ok(b) => host::getcwd(b),
                Err(_) => EFAULT,
            },
            nr::CHDIR => self.chdir(a[0], mem),
            nr::FCHMODAT => {
                self.with_path(mem, fd, a[1], |d, p, _| host::fchmodat(d, p, a[2] as u32))
            }
            nr::UNLINKAT => {
                self.with_path(mem, fd, a[1], |d, p, _| host::unlinkat(d, p, a[2] as i32))
            }
            nr::MKDIRAT => {
                self.with_path(mem, fd, a[1], |d, p, _| host::mkdirat(d, p, a[2] as u32))
            }
            nr::RENAMEAT | nr::RENAMEAT2 => {
                let flags = if n == nr::RENAMEAT2 { a[4] as u32 } else { 0 };
                self.with_paths(mem, (fd, a[1]), (a[2] as i32, a[3]), |d1, old, d2, new| {
                    host::renameat2(d1, old, d2, new, flags)
                })
            }
            nr::SYMLINKAT => self.symlinkat(a[0], a[1] as i32, a[2], mem),
            nr::LINKAT => {
                self.with_paths(mem, (fd, a[1]), (a[2] as i32, a[3]), |d1, old, d2, new| {
                    host::linkat(d1, old, d2, new, a[4] as i32)
                })
            }
            nr::FCHOWNAT => self.with_path(mem, fd, a[1], |d, p, _| {
                host::fchownat(d, p, a[2] as u32, a[3] as u32, a[4] as i32)
            }),
            nr::TRUNCATE => {
                self.with_path(mem, fs::AT_FDCWD, a[0], |_, p, _| host::truncate(p, a[1]))
            }
            nr::UTIMENSAT => self.utimensat(fd, a[1], a[2], a[3] as i32, mem),
            nr::STATFS => self.with_path(mem, fs::AT_FDCWD, a[0], |_, p, mem| {
                match mem.host_range(a[1], size_of::<libc::statfs>() as u64, PERM_W) {
                    Ok(b) => host::statfs(Ok(p), b),
                    Err(_) => EFAULT,
                }
            }),
            nr::FSTATFS => {
                let h = host_fd!(fd);
                match mem.host_range(a[1], size_of::<libc::statfs>() as u64, PERM_W) {
                    Ok(b) => host::statfs(Err(h.raw()), b),
                    Err(_) => EFAULT,
                }
            }
            nr::READLINKAT => self.readlinkat(fd, a[1], a[2], a[3], mem),
            nr::GETDENTS64 => self.getdents64(fd, a[1], a[2], mem),
            nr::IOCTL => self.ioctl(fd, a[1], a[2], mem),
            nr::PPOLL => self.with_temp_mask(a[3], a[4], mem, |s| s.ppoll(a[0], a[1], a[2], mem)),
            nr::BRK => self.sys_brk(a[0], mem),
            nr::MMAP => self.mmap(a, mem),
            nr::MUNMAP => self.munmap(a[0], a[1], mem),
            nr::MPROTECT => self.mprotect(a[0], a[1], a[2], mem),
            nr::MREMAP => self.mremap(a, mem),
            nr::MADVISE => self.madvise(a[0], a[1], a[2], mem),
            nr::FADVISE64 => {
                let _ = host_fd!(fd);
                0
            }
            nr::EXIT => return Err(SyscallExit::ThreadExit((a[0] & 0xff) as i32)),
            nr::EXIT_GROUP => return Err(SyscallExit::Exited((a[0] & 0xff) as i32)),
            nr::EXECVE => return self.execve(a, mem),
            nr::EXECVEAT => return self.execveat(a, mem),
            nr::WAIT4 => self.wait4(a, mem),
            nr::WAITID => self.waitid(a, mem),
            nr::CLONE => return self.clone_thread(a),
            nr::CLONE3 => return self.clone3(a[0], a[1], mem),
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
            nr::NANOSLEEP => self.sleep(libc::CLOCK_MONOTONIC, 0, a[0], a[1], mem),
            nr::CLOCK_NANOSLEEP => self.sleep(a[0] as i32, a[1], a[2], a[3], mem),
            nr::UNAME => self.uname(a[0], mem),
            nr::GETRANDOM => match mem.host_range(a[0], a[1], PERM_W) {
                Ok(b) => host::getrandom(b, a[2] as u32),
                Err(_) => EFAULT,
            },
            nr::SET_TID_ADDRESS => {
                self.thread.clear_child_tid = a[0];
                self.thread.tid
            }
            nr::SET_ROBUST_LIST => {
                // struct robust_list_head: three words.
                if a[1] != 24 {
                    EINVAL
                } else {
                    self.thread.robust_list = (a[0], a[1]);
                    0
                }
            }
            nr::RSEQ | nr::RISCV_HWPROBE => e(libc::ENOSYS),
            nr::PRLIMIT64 => {
                // The guest is the only process it can see.
                if a[0] != 0 && a[0] as i64 != self.proc.pid {
                    e(libc::ESRCH)
                } else {
                    self.prlimit(a[1], a[2], a[3], mem)
                }
            }
            nr::GETRLIMIT => self.prlimit(a[0], 0, a[1], mem),
            nr::SETRLIMIT => self.prlimit(a[0], a[1], 0, mem),
            nr::GETRUSAGE => match mem.host_range(a[1], size_of::<libc::rusage>() as u64, PERM_W) {
                Ok(b) => host::getrusage(a[0] as i32, b),
                Err(_) => EFAULT,
            },
            nr::RT_SIGACTION => self.rt_sigaction(a[0], a[1], a[2], a[3], mem),
            nr::RT_SIGPROCMASK => self.rt_sigprocmask(a[0], a[1], a[2], a[3], mem),
            nr::SIGALTSTACK => self.sigaltstack(a[0], a[1], mem),
            nr::RT_SIGPENDING => self.rt_sigpending(a[0], a[1], mem),
            nr::RT_SIGSUSPEND => self.rt_sigsuspend(a[0], a[1], mem),
            nr::RT_SIGTIMEDWAIT => self.rt_sigtimedwait(a[0], a[1], a[2], a[3], mem),
            nr::RT_SIGQUEUEINFO => self.sigqueueinfo(a[0], None, a[1], a[2], mem),
            nr::RT_TGSIGQUEUEINFO => self.sigqueueinfo(a[0], Some(a[1]), a[2], a[3], mem),
            nr::GETITIMER => self.getitimer(a[0], a[1], mem),
            nr::SETITIMER => self.setitimer(a[0], a[1], a[2], mem),
            nr::TIMER_CREATE => self.timer_create(a[0], a[1], a[2], mem),
            nr::TIMER_SETTIME => self.timer_settime(a[0], a[1], a[2], a[3], mem),
            nr::TIMER_GETTIME => self.timer_gettime(a[0], a[1], mem),
            nr::TIMER_GETOVERRUN => self.timer_getoverrun(a[0]),
            nr::TIMER_DELETE => self.timer_delete(a[0]),
            nr::GETPID => self.proc.pid,
            nr::GETTID => self.thread.tid,
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
                } else if a[0] != 0 && a[0] as i64 != self.proc.pid {
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
            nr::KILL => self.kill(a[0], a[1]),
            nr::TKILL => self.tgkill(None, a[0], a[1]),
            nr::TGKILL => self.tgkill(Some(a[0]), a[1], a[2]),
            nr::RISCV_FLUSH_ICACHE => {
                self.thread.invalidations.push(Invalidation::All);
                0
            }
            // Ways into another process's memory or descriptors, or vmjit's own:
            // refused as Linux refuses an unprivileged process (see ARCHITECTURE.md,
            // "the sandbox"). process_vm_readv/writev on the guest itself copy within
            // its own memory.
            nr::PTRACE | nr::PIDFD_GETFD => e(libc::EPERM),
            nr::PROCESS_VM_READV | nr::PROCESS_VM_WRITEV => {
                self.process_vm(n == nr::PROCESS_VM_WRITEV, a, mem)
            }
            _ => {
                self.warn_unimplemented(n);
                e(libc::ENOSYS)
            }
        };
        // vmjit itself ignores SIGPIPE (as every Rust program does), so the host kernel
        // answers EPIPE; a Linux guest also gets SIGPIPE, whose default action kills it
        // (`vmjit run prog | head` must end the guest).
        if r == e(libc::EPIPE) && matches!(n, nr::WRITE | nr::WRITEV | nr::PWRITE64 | nr::PWRITEV) {
            let info = SigInfo::user(signals::SIGPIPE, signals::SI_USER, self.proc.pid, 0);
            let group = Arc::clone(&self.proc.group);
            group.send_thread(self.thread.tid, info);
        }
        Ok(r)
    }

    /// Prints `msg` the first time `key` comes up.
    pub(crate) fn warn_once(&mut self, key: u64, msg: &str) {
        if lock(&self.proc.warned).insert(key) {
            host::write_stderr(msg.as_bytes());
        }
    }

    fn warn_unimplemented(&mut self, n: u64) {
        if lock(&self.proc.warned).insert(n) {
            let name = sysnames::name(n).unwrap_or("unknown");
            host::write_stderr(
                format!("vmjit: warning: unimplemented syscall {n} ({name})\n").as_bytes(),
            );
        }
    }

    pub(super) fn put(mem: &GuestMemory, addr: u64, bytes: &[u8]) -> i64 {
        if mem.write_bytes(addr, bytes).is_ok() {
            0
        } else {
            EFAULT
        }
    }
}

#[cfg(test)]
mod tests;
