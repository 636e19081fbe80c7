//! `--strace`: every system call of every guest thread on vmjit's stderr, one line per
//! call, in the format of qemu-user's `-strace`:
//!
//! ```text
//! 12345 openat(AT_FDCWD,"data.bin",O_RDWR|O_CREAT|O_EXCL|O_TRUNC,0644) = 3
//! 12345 write(3,0x4000800bc0,16) = 16
//! 12345 openat(AT_FDCWD,"no-such-file",O_RDONLY) = -1 errno=2 (No such file or directory)
//! 12345 exit_group(0)
//! ```
//!
//! The guest thread id comes first; then the call, its arguments decoded (descriptors
//! and numbers in decimal, `AT_FDCWD`, strings from guest memory quoted and escaped,
//! flags and commands by name, structures as pointers) and its result (pointers for
//! `brk`, `mmap`, `mremap`; `-1 errno=N (message)` for an error). `exit` and
//! `exit_group` have no result, as in qemu. A call the engine does not know is
//! `name(0x..,0x..,0x..,0x..,0x..,0x..)`.
//!
//! **Design.**
//! - *Where.* [`Syscalls::handle`] calls [`Syscalls::dispatch_traced`] instead of
//!   `dispatch` when the process traces: one flag, one branch per call when off. So
//!   every call is traced the same way, the ones the engine answers itself (refused,
//!   unimplemented) too. A `clone` that starts a thread is finished by the dispatch
//!   loop, which reports its result through [`Syscalls::strace_clone_result`].
//! - *One line after the call.* The call is described before it runs (strings as the
//!   kernel reads them) and its line written once it returns, with the result: qemu
//!   writes the call first and the result after, so a guest's own output (or another
//!   thread's line) lands inside the line (`write(1,0x7dfa0,226)hello` ... ` = 226`).
//!   Here the guest's output comes before the line of the write that produced it and
//!   lines stay whole.
//! - *Blocking calls.* A call that may block for long (a futex wait, a sleep, ppoll
//!   with a timeout, `flock` without `LOCK_NB`, a lock wait, a read or write on a
//!   pipe, socket or terminal that is not ready) is written when it starts, as
//!   `name(args) <unfinished ...>`, and again when it returns, as
//!   `<... name resumed> = result` (strace's notation), so a hung program shows what
//!   it waits in. Whether a descriptor is ready is asked with a zero-timeout `poll`, so
//!   reads of files and of pipes holding data stay on one line.
//! - *Whole lines without a lock.* Each line is built first and written with one
//!   `write(2)` of at most `PIPE_BUF` bytes (strings are cut at [`STR_MAX`] characters
//!   and a longer line at `PIPE_BUF`), which Linux performs atomically on a pipe, a
//!   terminal or a file, also against the guest's own writes to the same stderr (which
//!   no lock in vmjit could order). No lock is held while a guest call blocks, or at
//!   all: a thread stuck writing to a full stderr pipe delays only itself.
//! - *Never faults.* Guest memory is read only through [`GuestMemory`]'s checked
//!   accessors; a string or structure that cannot be read is printed as its pointer
//!   (as qemu does), so garbage arguments give a garbage line, never a host fault.
//! - *vmjit's stderr.* Lines go through [`host::write_stderr`], vmjit's own duplicate
//!   of the stderr it started with, so the trace goes on after the guest closes its
//!   fd 2.
//!
//! Where the format departs from qemu 7.2 (for correctness, or where qemu is wrong):
//! pointers printed through a `%#x` format are not cut to 32 bits (`write(1,0x4000800bc0,
//! 5)`, qemu prints `0x800bc0`); calls qemu prints as six raw decimal registers
//! (`set_tid_address`, `pipe2`, `dup3`, `prlimit64`, `renameat2`, `mremap`, ...) are
//! decoded with their real arguments; `faccessat` and `fchmodat` show their three
//! arguments, not a fourth register; `AT_EMPTY_PATH`, `MAP_STACK`,
//! `MAP_FIXED_NOREPLACE` and `GRND_*` are named; `futex` shows `val3` (qemu repeats
//! `uaddr2`); strings are escaped (`\"`, `\\`, octal for other bytes) and cut at
//! [`STR_MAX`] characters; the thread id is the calling thread's (qemu 7.2 prints the
//! process id on every line; later versions the thread id, like vmjit).

use std::borrow::Cow;
use std::cell::RefCell;
use std::fmt::Write as _;
use std::sync::atomic::Ordering::Relaxed;

use rv64::Memory;

use super::{SyscallExit, Syscalls, nr};
use crate::host;
use crate::memory::GuestMemory;
use crate::sysnames;

/// Longest line written (`PIPE_BUF`, the most bytes a write to a pipe makes at once).
const LINE_MAX: usize = 4096;
/// Most characters of a string shown (escapes included), before `...`. Two strings and
/// the other arguments of any call fit in [`LINE_MAX`].
pub(super) const STR_MAX: usize = 1024;

thread_local! {
    /// The described `clone` of this thread whose result the dispatch loop has yet to
    /// give (a guest thread is one host thread, so this is per guest thread).
    static PENDING_CLONE: RefCell<Option<String>> = const { RefCell::new(None) };
}

impl Syscalls {
    /// Prints every system call of the process, with its result, on vmjit's stderr
    /// (see [`self`] for the format). Threads started later trace too.
    pub fn set_strace(&mut self, on: bool) {
        self.proc.strace.store(on, Relaxed);
    }

    /// [`Syscalls::dispatch`] with the call and its result printed.
    pub(super) fn dispatch_traced(
        &mut self,
        n: u64,
        a: [u64; 6],
        mem: &GuestMemory,
    ) -> Result<i64, SyscallExit> {
        // Described before the call runs: a path is shown as the kernel reads it, even
        // if the call (or another thread) changes that memory.
        let call = describe(n, a, mem);
        let tid = self.thread.tid;
        let blocks = self.may_block(n, a, mem);
        if blocks {
            emit(tid, &format!("{call} <unfinished ...>"));
        }
        let r = self.dispatch(n, a, mem);
        let resumed = |res: &str| format!("<... {} resumed> = {res}", name(n));
        match &r {
            Ok(v) => {
                let res = result(n, a, *v, mem);
                if blocks {
                    emit(tid, &resumed(&res));
                } else {
                    emit(tid, &format!("{call} = {res}"));
                }
            }
            // The thread starts in the dispatch loop, which then gives the result.
            Err(SyscallExit::Clone(_)) => {
                let _ = PENDING_CLONE.try_with(|p| *p.borrow_mut() = Some(call));
            }
            // exit, exit_group, a fatal signal, a deadlock: the call never returns
            // (qemu prints exits without a result; strace's `= ?` for a call that was
            // already shown as unfinished).
            Err(_) => {
                if blocks {
                    emit(tid, &resumed("?"));
                } else {
                    emit(tid, &call);
                }
            }
        }
        r
    }

    /// The result `r` of the `clone` this thread's last call asked for (a new thread's
    /// tid, or `-errno`), once the dispatch loop has started the thread. Nothing when
    /// the process does not trace.
    /// rt_sigreturn, which returns the a0 of the code it goes back to.
    pub(super) fn strace_sigreturn(&self, a0: i64) {
        emit(
            self.thread.tid,
            &format!("rt_sigreturn() = {}", result_text(a0)),
        );
    }

    /// A signal about to be delivered to a handler or to kill the process, as
    /// qemu-user's -strace shows it.
    pub(crate) fn strace_signal(&self, info: &crate::signals::SigInfo) {
        if self.proc.strace.load(std::sync::atomic::Ordering::Relaxed) {
            emit(
                self.thread.tid,
                &format!(
                    "--- {} {{si_signo={}, si_code={}}} ---",
                    crate::vm::signal_name(info.signo()),
                    info.signo(),
                    info.code()
                ),
            );
        }
    }

    pub(crate) fn strace_clone_result(&self, r: i64) {
        if !self.proc.strace.load(Relaxed) {
            return;
        }
        let call = PENDING_CLONE
            .try_with(|p| p.borrow_mut().take())
            .ok()
            .flatten();
        if let Some(call) = call {
            emit(self.thread.tid, &format!("{call} = {}", result_text(r)));
        }
    }

    /// True when call `n` may wait for long for something outside the thread (another
    /// thread, the clock, a peer at the other end of a descriptor).
    fn may_block(&self, n: u64, a: [u64; 6], mem: &GuestMemory) -> bool {
        match n {
            nr::FUTEX => matches!(
                a[1] & FUTEX_CMD_MASK,
                FUTEX_WAIT
                    | FUTEX_WAIT_BITSET
                    | FUTEX_LOCK_PI
                    | FUTEX_LOCK_PI2
                    | FUTEX_WAIT_REQUEUE_PI
            ),
            nr::NANOSLEEP | nr::CLOCK_NANOSLEEP => true,
            // No timeout waits for ever; a zero one returns at once.
            nr::PPOLL => a[2] == 0 || read_pair(mem, a[2]).is_some_and(|t| t != (0, 0)),
            nr::READ | nr::READV | nr::PREAD64 | nr::PREADV => {
                self.fd_may_block(a[0] as i32, POLLIN)
            }
            nr::WRITE | nr::WRITEV | nr::PWRITE64 | nr::PWRITEV => {
                self.fd_may_block(a[0] as i32, POLLOUT)
            }
            nr::FLOCK => a[1] & LOCK_NB == 0,
            nr::FCNTL => matches!(a[1], F_SETLKW | F_OFD_SETLKW),
            // Not implemented yet (ENOSYS at once), but waits once they are.
            WAIT4 | WAITID | RT_SIGSUSPEND | RT_SIGTIMEDWAIT => true,
            _ => false,
        }
    }

    /// True when I/O (`events`: POLLIN or POLLOUT) on guest descriptor `fd` would wait
    /// now: a blocking descriptor that is not ready. Files are always ready; a
    /// descriptor that is not open fails at once.
    fn fd_may_block(&self, fd: i32, events: u16) -> bool {
        let Ok(h) = self.host_fd(fd) else {
            return false;
        };
        let raw = h.raw();
        let fl = host::fcntl_int(raw, libc::F_GETFL, 0);
        if fl < 0 || fl & i64::from(libc::O_NONBLOCK) != 0 {
            return false;
        }
        // struct pollfd { int fd; short events; short revents; }
        let mut pfd = [0u8; 8];
        pfd[..4].copy_from_slice(&raw.to_ne_bytes());
        pfd[4..6].copy_from_slice(&events.to_ne_bytes());
        host::ppoll_host(&mut pfd, 1, Some(&mut (0, 0))) == 0
    }
}

/// Writes `TID body` and a newline to vmjit's stderr in one write.
fn emit(tid: i64, body: &str) {
    host::write_stderr(line(tid, body).as_bytes());
}

/// `TID body\n`, at most [`LINE_MAX`] bytes (a longer one is cut and ends in `...`).
fn line(tid: i64, body: &str) -> String {
    let mut s = String::with_capacity(body.len() + 24);
    let _ = write!(s, "{tid} {body}");
    if s.len() >= LINE_MAX {
        let mut cut = LINE_MAX - 4;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
        s.push_str("...");
    }
    s.push('\n');
    s
}

/// The name of call `n` (`syscall_N` for a number Linux does not have).
fn name(n: u64) -> Cow<'static, str> {
    match sysnames::name(n) {
        Some(s) => Cow::Borrowed(s),
        None => Cow::Owned(format!("syscall_{n}")),
    }
}

/// The result as printed after ` = `.
fn result(n: u64, a: [u64; 6], r: i64, mem: &GuestMemory) -> String {
    if errno_of(r).is_some() {
        return result_text(r);
    }
    match n {
        nr::BRK | nr::MMAP | nr::MREMAP => ptr_text(r as u64, false),
        // The time read (qemu does the same; clock_getres may pass NULL).
        nr::CLOCK_GETTIME | nr::CLOCK_GETRES => format!("{r} ({})", timespec_text(mem, a[1])),
        _ => r.to_string(),
    }
}

/// A plain result: the number, or `-1 errno=N (message)`.
pub(super) fn result_text(r: i64) -> String {
    match errno_of(r) {
        Some(e) => format!("-1 errno={e} ({})", strerror(e)),
        None => r.to_string(),
    }
}

/// The errno of a result in Linux's error range (-4095..=-1).
fn errno_of(r: i64) -> Option<i32> {
    (-4095..=-1).contains(&r).then(|| -r as i32)
}

/// The C library's message for `errno` (riscv64 and x86-64 share the numbers).
pub(super) fn strerror(errno: i32) -> String {
    let s = std::io::Error::from_raw_os_error(errno).to_string();
    // std appends " (os error N)" to the C library's text.
    match s.rfind(" (os error ") {
        Some(i) => s[..i].to_string(),
        None => s,
    }
}

// ---------------------------------------------------------------------------------
// Describing a call.

/// `name(args)` for call `n` with arguments `a`.
pub(super) fn describe(n: u64, a: [u64; 6], mem: &GuestMemory) -> String {
    let mut o = Args::new(&name(n), mem);
    match n {
        // qemu's formats: `%d,%#x,%d` and `%d,%p,%#x`.
        nr::READ | nr::WRITE => o.int(a[0]).addr(a[1]).int(a[2]),
        nr::READV | nr::WRITEV => o.int(a[0]).addr(a[1]).hex(a[2]),
        nr::PREAD64 | nr::PWRITE64 => o.int(a[0]).ptr(a[1]).int(a[2]).ulong(a[3]),
        nr::PREADV | nr::PWRITEV => o.int(a[0]).ptr(a[1]).int(a[2]).long(a[3]),
        nr::OPENAT => {
            o.dirfd(a[0]).string(a[1]).open_flags(a[2]);
            if a[2] & (O_CREAT | O_TMPFILE_BIT) != 0 {
                o.mode(a[3]);
            }
            &mut o
        }
        nr::CLOSE | nr::FSYNC | nr::FDATASYNC | nr::FCHDIR | nr::DUP => o.int(a[0]),
        nr::CLOSE_RANGE => o.uint(a[0]).uint(a[1]).flags(CLOSE_RANGE_FLAGS, a[2]),
        nr::LSEEK => o.int(a[0]).long(a[1]).choice(WHENCE, a[2], Other::Hex),
        nr::DUP3 => o.int(a[0]).int(a[1]).flags(OPEN_FLAGS, a[2]),
        nr::FTRUNCATE => o.int(a[0]).long(a[1]),
        nr::FCHMOD => o.int(a[0]).octal(a[1]),
        nr::FLOCK => o.int(a[0]).flags(FLOCK_OPS, a[1]),
        nr::UMASK => o.octal(a[0]),
        nr::FCNTL => fcntl(&mut o, a),
        nr::PIPE2 => o.ptr(a[0]).flags(OPEN_FLAGS, a[1]),
        nr::FSTAT => o.int(a[0]).ptr(a[1]),
        nr::NEWFSTATAT => o.dirfd(a[0]).string(a[1]).ptr(a[2]).flags(AT_STAT, a[3]),
        nr::STATX => o
            .dirfd(a[0])
            .string(a[1])
            .flags(STATX_FLAGS, a[2])
            .flags(STATX_MASK, a[3])
            .ptr(a[4]),
        nr::FACCESSAT => o.dirfd(a[0]).string(a[1]).flags(ACCESS_MODES, a[2]),
        nr::FACCESSAT2 => o
            .dirfd(a[0])
            .string(a[1])
            .flags(ACCESS_MODES, a[2])
            .flags(AT_ACCESS, a[3]),
        nr::GETCWD => o.addr(a[0]).int(a[1]),
        nr::CHDIR => o.string(a[0]),
        nr::FCHMODAT | nr::MKDIRAT => o.dirfd(a[0]).string(a[1]).mode(a[2]),
        nr::UNLINKAT => o.dirfd(a[0]).string(a[1]).flags(AT_UNLINK, a[2]),
        nr::RENAMEAT => o.dirfd(a[0]).string(a[1]).dirfd(a[2]).string(a[3]),
        nr::RENAMEAT2 => o
            .dirfd(a[0])
            .string(a[1])
            .dirfd(a[2])
            .string(a[3])
            .flags(RENAME_FLAGS, a[4]),
        nr::SYMLINKAT => o.string(a[0]).dirfd(a[1]).string(a[2]),
        nr::LINKAT => o
            .dirfd(a[0])
            .string(a[1])
            .dirfd(a[2])
            .string(a[3])
            .flags(AT_LINK, a[4]),
        nr::FCHOWNAT => o
            .dirfd(a[0])
            .string(a[1])
            .int(a[2])
            .int(a[3])
            .flags(AT_STAT, a[4]),
        nr::TRUNCATE => o.string(a[0]).long(a[1]),
        nr::UTIMENSAT => o.dirfd(a[0]).string(a[1]).ptr(a[2]).flags(AT_STAT, a[3]),
        nr::STATFS => o.string(a[0]).ptr(a[1]),
        nr::FSTATFS => o.int(a[0]).addr(a[1]),
        nr::READLINKAT => o.dirfd(a[0]).string(a[1]).ptr(a[2]).uint(a[3]),
        nr::GETDENTS64 => o.int(a[0]).addr(a[1]).int(a[2]),
        nr::IOCTL => ioctl(&mut o, a),
        nr::PPOLL => o.ptr(a[0]).uint(a[1]).timespec(a[2]).ptr(a[3]).ulong(a[4]),
        nr::BRK => o.ptr(a[0]),
        nr::MMAP => o
            .ptr(a[0])
            .ulong(a[1])
            .flags(PROT_FLAGS, a[2])
            .flags(MAP_FLAGS, a[3])
            .int(a[4])
            .hex(a[5]),
        nr::MUNMAP => o.ptr(a[0]).ulong(a[1]),
        nr::MPROTECT => o.ptr(a[0]).ulong(a[1]).flags(PROT_FLAGS, a[2]),
        nr::MREMAP => o
            .ptr(a[0])
            .ulong(a[1])
            .ulong(a[2])
            .flags(MREMAP_FLAGS, a[3])
            .ptr(a[4]),
        nr::MADVISE => o.ptr(a[0]).ulong(a[1]).choice(MADVICE, a[2], Other::Int),
        nr::FADVISE64 => o
            .int(a[0])
            .long(a[1])
            .long(a[2])
            .choice(FADVICE, a[3], Other::Int),
        nr::EXIT | nr::EXIT_GROUP => o.int(a[0]),
        nr::CLONE => o
            .text(&clone_flags_text(a[0]))
            .text(&format!("child_stack=0x{:016x}", a[1]))
            .text(&format!("parent_tidptr=0x{:016x}", a[2]))
            .text(&format!("tls=0x{:016x}", a[3]))
            .text(&format!("child_tidptr=0x{:016x}", a[4])),
        nr::CLONE3 => o.ptr(a[0]).ulong(a[1]),
        nr::CLOCK_GETTIME | nr::CLOCK_GETRES => o.choice(CLOCKS, a[0], Other::Hex).ptr(a[1]),
        nr::GETTIMEOFDAY => o.ptr(a[0]).ptr(a[1]),
        nr::NANOSLEEP => o.timespec(a[0]).ptr(a[1]),
        nr::CLOCK_NANOSLEEP => o
            .choice(CLOCKS, a[0], Other::Hex)
            .flags(TIMER_FLAGS, a[1])
            .timespec(a[2])
            .ptr(a[3]),
        nr::UNAME => o.addr(a[0]),
        nr::GETRANDOM => o.addr(a[0]).uint(a[1]).flags(GRND_FLAGS, a[2]),
        nr::SET_TID_ADDRESS => o.ptr(a[0]),
        nr::SET_ROBUST_LIST => o.ptr(a[0]).ulong(a[1]),
        nr::RSEQ => o.ptr(a[0]).uint(a[1]).int(a[2]).hex(a[3]),
        nr::RISCV_HWPROBE => o.ptr(a[0]).ulong(a[1]).ulong(a[2]).ptr(a[3]).uint(a[4]),
        nr::PRLIMIT64 => o
            .int(a[0])
            .choice(RLIMITS, a[1], Other::Int)
            .rlimit(a[2])
            .ptr(a[3]),
        nr::GETRLIMIT => o.choice(RLIMITS, a[0], Other::Int).ptr(a[1]),
        nr::SETRLIMIT => o.choice(RLIMITS, a[0], Other::Int).rlimit(a[1]),
        nr::GETRUSAGE => o.choice(RUSAGE_WHO, a[0], Other::Int).ptr(a[1]),
        // qemu shows three arguments (the sigset size is always 8).
        nr::RT_SIGACTION => o.signal(a[0]).ptr(a[1]).ptr(a[2]),
        nr::RT_SIGPROCMASK => o.choice(SIG_HOW, a[0], Other::Int).ptr(a[1]).ptr(a[2]),
        nr::SIGALTSTACK => o.addr(a[0]).addr(a[1]),
        nr::GETPID
        | nr::GETTID
        | nr::GETPPID
        | nr::GETUID
        | nr::GETEUID
        | nr::GETGID
        | nr::GETEGID
        | nr::SCHED_YIELD => &mut o,
        nr::SYSINFO => o.ptr(a[0]),
        nr::SCHED_GETAFFINITY => o.int(a[0]).uint(a[1]).ptr(a[2]),
        nr::FUTEX => futex(&mut o, a),
        nr::KILL | nr::TKILL => o.int(a[0]).signal(a[1]),
        nr::TGKILL => o.int(a[0]).int(a[1]).signal(a[2]),
        nr::RISCV_FLUSH_ICACHE => o.ptr(a[0]).ptr(a[1]).ulong(a[2]),
        nr::PTRACE => o.long(a[0]).int(a[1]).ptr(a[2]).ptr(a[3]),
        nr::PIDFD_GETFD => o.int(a[0]).int(a[1]).uint(a[2]),
        nr::PROCESS_VM_READV | nr::PROCESS_VM_WRITEV => o
            .int(a[0])
            .ptr(a[1])
            .ulong(a[2])
            .ptr(a[3])
            .ulong(a[4])
            .ulong(a[5]),
        // Not one the engine knows: every argument register, as it is.
        _ => {
            for v in a {
                o.text(&format!("0x{v:x}"));
            }
            &mut o
        }
    };
    o.finish()
}

/// qemu's `print_fcntl`: the command by name and the argument as that command reads it.
fn fcntl<'a, 'm>(o: &'a mut Args<'m>, a: [u64; 6]) -> &'a mut Args<'m> {
    o.int(a[0]);
    match FCNTL_CMDS.iter().find(|c| c.0 == a[1]) {
        Some(&(_, cmd, arg)) => {
            o.text(cmd);
            match arg {
                FcntlArg::None => o,
                FcntlArg::Long => o.long(a[2]),
                FcntlArg::Ptr => o.ptr(a[2]),
                FcntlArg::OpenFlags => o.open_flags(a[2]),
                FcntlArg::Seals => o.flags(SEALS, a[2]),
            }
        }
        None => o.long(a[1]).ptr(a[2]),
    }
}

/// qemu's `print_ioctl`: a known request by name (with its argument as a pointer or a
/// number, or none), an unknown one as two hex numbers.
fn ioctl<'a, 'm>(o: &'a mut Args<'m>, a: [u64; 6]) -> &'a mut Args<'m> {
    o.int(a[0]);
    // The kernel takes the request as an unsigned int.
    let req = u64::from(a[1] as u32);
    match IOCTLS.iter().find(|i| i.0 == req) {
        Some(&(_, name, arg)) => {
            o.text(name);
            match arg {
                IoctlArg::None => o,
                IoctlArg::Int => o.int(a[2]),
                IoctlArg::Ptr => o.ptr(a[2]),
            }
        }
        None => o.hex(a[1]).hex(a[2]),
    }
}

/// qemu's `print_futex`: the word, the operation, the value, the timeout (a timespec
/// for the waits) or second value, the second word and the third value.
fn futex<'a, 'm>(o: &'a mut Args<'m>, a: [u64; 6]) -> &'a mut Args<'m> {
    o.ptr(a[0]).text(&futex_op_text(a[1])).int(a[2]);
    match a[1] & FUTEX_CMD_MASK {
        FUTEX_WAIT | FUTEX_WAIT_BITSET | FUTEX_LOCK_PI | FUTEX_LOCK_PI2 | FUTEX_WAIT_REQUEUE_PI => {
            o.timespec(a[3])
        }
        _ => o.ptr(a[3]),
    };
    o.ptr(a[4]).int(a[5])
}

/// A futex operation: `[FUTEX_PRIVATE_FLAG|][FUTEX_CLOCK_REALTIME|]FUTEX_<CMD>`.
fn futex_op_text(op: u64) -> String {
    let op = op as u32;
    let Some(cmd) = FUTEX_OPS.get((op & FUTEX_CMD_MASK as u32) as usize) else {
        return format!("0x{op:x}");
    };
    let mut s = String::new();
    if u64::from(op) & FUTEX_PRIVATE_FLAG != 0 {
        s.push_str("FUTEX_PRIVATE_FLAG|");
    }
    if u64::from(op) & FUTEX_CLOCK_REALTIME != 0 {
        s.push_str("FUTEX_CLOCK_REALTIME|");
    }
    s.push_str(cmd);
    s
}

/// clone flags by name, the exit signal in the low byte by its name (`SIGCHLD`).
fn clone_flags_text(v: u64) -> String {
    let sig = v & 0xff;
    let rest = v & !0xff;
    let mut s = if rest != 0 || sig == 0 {
        flags_text(CLONE_FLAGS, rest)
    } else {
        String::new()
    };
    if sig != 0 {
        if !s.is_empty() {
            s.push('|');
        }
        s.push_str(&signal_text(sig));
    }
    s
}

/// The arguments of one call, comma separated, as they are added.
struct Args<'m> {
    out: String,
    any: bool,
    mem: &'m GuestMemory,
}

/// What [`Args::choice`] prints for a value not in its table.
#[derive(Clone, Copy)]
enum Other {
    /// C's `%#x` (`0` for zero).
    Hex,
    /// Decimal, as an `int`.
    Int,
}

impl<'m> Args<'m> {
    fn new(name: &str, mem: &'m GuestMemory) -> Self {
        let mut out = String::with_capacity(96);
        out.push_str(name);
        out.push('(');
        Args {
            out,
            any: false,
            mem,
        }
    }

    fn finish(mut self) -> String {
        self.out.push(')');
        self.out
    }

    /// Appends one argument's text.
    fn text(&mut self, s: &str) -> &mut Self {
        if self.any {
            self.out.push(',');
        }
        self.any = true;
        self.out.push_str(s);
        self
    }

    /// An `int` (descriptors, counts, ids), as the kernel truncates it.
    fn int(&mut self, v: u64) -> &mut Self {
        self.text(&(v as i32).to_string())
    }

    fn uint(&mut self, v: u64) -> &mut Self {
        self.text(&(v as u32).to_string())
    }

    fn long(&mut self, v: u64) -> &mut Self {
        self.text(&(v as i64).to_string())
    }

    fn ulong(&mut self, v: u64) -> &mut Self {
        self.text(&v.to_string())
    }

    /// A pointer as qemu's `print_pointer` shows it: `NULL` or 16 hex digits.
    fn ptr(&mut self, v: u64) -> &mut Self {
        self.text(&ptr_text(v, true))
    }

    /// A pointer qemu prints through `%#x`/`%p`: no padding (and all 64 bits).
    fn addr(&mut self, v: u64) -> &mut Self {
        let s = if v == 0 {
            "NULL".to_string()
        } else {
            format!("0x{v:x}")
        };
        self.text(&s)
    }

    /// C's `%#x`.
    fn hex(&mut self, v: u64) -> &mut Self {
        self.text(&c_hex(v))
    }

    /// C's `%#o` (modes, umask).
    fn octal(&mut self, v: u64) -> &mut Self {
        let v = v as u32;
        let s = if v == 0 {
            "0".to_string()
        } else {
            format!("0{v:o}")
        };
        self.text(&s)
    }

    /// A directory descriptor: `AT_FDCWD` or the number.
    fn dirfd(&mut self, v: u64) -> &mut Self {
        match v as i32 {
            AT_FDCWD => self.text("AT_FDCWD"),
            fd => self.text(&fd.to_string()),
        }
    }

    /// A NUL-terminated string in guest memory, quoted (its pointer if unreadable).
    fn string(&mut self, addr: u64) -> &mut Self {
        let s = guest_string(self.mem, addr);
        self.text(&s)
    }

    fn flags(&mut self, table: &[Flag], v: u64) -> &mut Self {
        self.text(&flags_text(table, v))
    }

    fn open_flags(&mut self, v: u64) -> &mut Self {
        self.text(&open_flags_text(v))
    }

    fn mode(&mut self, v: u64) -> &mut Self {
        self.text(&mode_text(v))
    }

    fn signal(&mut self, v: u64) -> &mut Self {
        self.text(&signal_text(v))
    }

    /// One of the values of `table` by name, else the number as `other` says.
    fn choice(&mut self, table: &[(u64, &str)], v: u64, other: Other) -> &mut Self {
        let s = match table.iter().find(|c| c.0 == v) {
            Some(c) => c.1.to_string(),
            None => match other {
                Other::Hex => c_hex(v),
                Other::Int => (v as i32).to_string(),
            },
        };
        self.text(&s)
    }

    /// A `struct timespec` read from guest memory.
    fn timespec(&mut self, addr: u64) -> &mut Self {
        let s = timespec_text(self.mem, addr);
        self.text(&s)
    }

    /// A `struct rlimit` read from guest memory (qemu's `print_rlimit64`).
    fn rlimit(&mut self, addr: u64) -> &mut Self {
        let s = match (addr, read_pair(self.mem, addr)) {
            (0, _) => "NULL".to_string(),
            (_, Some((cur, max))) => format!("{{rlim_cur={cur},rlim_max={max}}}"),
            (_, None) => ptr_text(addr, true),
        };
        self.text(&s)
    }
}

/// `NULL` for 0 when `null`, else 16 hex digits (qemu's `0x%016lx`).
fn ptr_text(v: u64, null: bool) -> String {
    if v == 0 && null {
        "NULL".to_string()
    } else {
        format!("0x{v:016x}")
    }
}

/// C's `%#x`: `0` for zero, `0x...` otherwise.
fn c_hex(v: u64) -> String {
    if v == 0 {
        "0".to_string()
    } else {
        format!("0x{v:x}")
    }
}

/// Two consecutive 64-bit words of guest memory (timespec, rlimit), if readable.
fn read_pair(mem: &GuestMemory, addr: u64) -> Option<(i64, i64)> {
    let a = mem.load64(addr).ok()?;
    let b = mem.load64(addr.wrapping_add(8)).ok()?;
    Some((a as i64, b as i64))
}

/// qemu's `print_timespec`: `{tv_sec = S,tv_nsec = N}`, `NULL`, or the pointer.
fn timespec_text(mem: &GuestMemory, addr: u64) -> String {
    if addr == 0 {
        return "NULL".to_string();
    }
    match read_pair(mem, addr) {
        Some((s, ns)) => format!("{{tv_sec = {s},tv_nsec = {ns}}}"),
        None => ptr_text(addr, true),
    }
}

/// A NUL-terminated guest string, quoted; its pointer when a byte before the NUL
/// cannot be read (as qemu), cut with `...` after [`STR_MAX`] bytes.
pub(super) fn guest_string(mem: &GuestMemory, addr: u64) -> String {
    let mut bytes = Vec::new();
    let mut cut = false;
    loop {
        if bytes.len() == STR_MAX {
            cut = true;
            break;
        }
        match mem.load8(addr.wrapping_add(bytes.len() as u64)) {
            Ok(0) => break,
            Ok(b) => bytes.push(b),
            Err(_) => return ptr_text(addr, true),
        }
    }
    quote(&bytes, cut)
}

/// `bytes` in double quotes: printable ASCII as it is, `"` and `\` escaped with `\`,
/// any other byte in octal (`\12`; three digits when a digit follows, so the escape
/// cannot run on), as qemu's `print_buf` shows unprintable bytes. At most [`STR_MAX`]
/// characters inside the quotes; `...` follows when bytes were left out (or `cut`:
/// the string went on).
pub(super) fn quote(bytes: &[u8], cut: bool) -> String {
    let mut s = String::with_capacity(bytes.len().min(STR_MAX) + 5);
    s.push('"');
    let mut cut = cut;
    for (i, &b) in bytes.iter().enumerate() {
        // 1 for the opening quote.
        if s.len() > STR_MAX {
            cut = true;
            break;
        }
        match b {
            b'"' | b'\\' => {
                s.push('\\');
                s.push(char::from(b));
            }
            0x20..=0x7e => s.push(char::from(b)),
            _ => {
                let digit_follows = bytes.get(i + 1).is_some_and(|c| (b'0'..=b'7').contains(c));
                let _ = if digit_follows {
                    write!(s, "\\{b:03o}")
                } else {
                    write!(s, "\\{b:o}")
                };
            }
        }
    }
    s.push('"');
    if cut {
        s.push_str("...");
    }
    s
}

/// One named flag: it is shown when `v & mask == value` (and the mask's bits are then
/// taken out of `v`), as qemu's `FLAG_*_MASK` tables.
type Flag = (u64, u64, &'static str);

/// A single-bit flag.
const fn bit(v: u64, name: &'static str) -> Flag {
    (v, v, name)
}

/// qemu's `print_flags`: the names that match, in table order, joined with `|`, then
/// any bits left as hex; only hex (`0` for zero) when no name matches.
pub(super) fn flags_text(table: &[Flag], v: u64) -> String {
    let mut rest = v;
    let mut s = String::new();
    for &(value, mask, name) in table {
        if rest & mask == value {
            if !s.is_empty() {
                s.push('|');
            }
            s.push_str(name);
            rest &= !mask;
        }
    }
    if s.is_empty() {
        return c_hex(rest);
    }
    if rest != 0 {
        let _ = write!(s, "|0x{rest:x}");
    }
    s
}

/// qemu's `print_open_flags`: the access mode, then the other flags.
pub(super) fn open_flags_text(v: u64) -> String {
    let v = u64::from(v as u32);
    let mut s = flags_text(OPEN_ACCESS, v & 3);
    let rest = v & !3;
    if rest != 0 {
        s.push('|');
        s.push_str(&flags_text(OPEN_FLAGS, rest));
    }
    s
}

/// qemu's `print_file_mode`: `000` for zero, the file type by name if any, the
/// permission bits in octal.
pub(super) fn mode_text(v: u64) -> String {
    let mode = v as u32;
    if mode == 0 {
        return "000".to_string();
    }
    let mut s = String::new();
    let kind = mode & S_IFMT;
    if let Some(&(_, name)) = FILE_TYPES.iter().find(|t| t.0 == kind) {
        s.push_str(name);
    }
    let perm = mode & !S_IFMT;
    if perm != 0 {
        if !s.is_empty() {
            s.push('|');
        }
        let _ = write!(s, "0{perm:o}");
    }
    s
}

/// A signal number: its name for the standard ones, else the number.
pub(super) fn signal_text(v: u64) -> String {
    match SIGNALS.get(v.wrapping_sub(1) as usize) {
        Some(name) if v != 0 => (*name).to_string(),
        _ => (v as i32).to_string(),
    }
}

// ---------------------------------------------------------------------------------
// The guest's constants (asm-generic, as riscv64 Linux defines them).

const AT_FDCWD: i32 = -100;
const O_CREAT: u64 = 0o100;
/// `__O_TMPFILE`: `O_TMPFILE` without `O_DIRECTORY` (the mode is used with it too).
const O_TMPFILE_BIT: u64 = 0o20000000;
const S_IFMT: u32 = 0o170000;
const POLLIN: u16 = 1;
const POLLOUT: u16 = 4;
const LOCK_NB: u64 = 4;
const F_SETLKW: u64 = 7;
const F_OFD_SETLKW: u64 = 38;

const WAITID: u64 = 95;
const RT_SIGSUSPEND: u64 = 133;
const RT_SIGTIMEDWAIT: u64 = 137;
const WAIT4: u64 = 260;

const FUTEX_WAIT: u64 = 0;
const FUTEX_LOCK_PI: u64 = 6;
const FUTEX_WAIT_BITSET: u64 = 9;
const FUTEX_WAIT_REQUEUE_PI: u64 = 11;
const FUTEX_LOCK_PI2: u64 = 13;
const FUTEX_PRIVATE_FLAG: u64 = 128;
const FUTEX_CLOCK_REALTIME: u64 = 256;
const FUTEX_CMD_MASK: u64 = !(FUTEX_PRIVATE_FLAG | FUTEX_CLOCK_REALTIME);

/// Futex commands by number.
const FUTEX_OPS: &[&str] = &[
    "FUTEX_WAIT",
    "FUTEX_WAKE",
    "FUTEX_FD",
    "FUTEX_REQUEUE",
    "FUTEX_CMP_REQUEUE",
    "FUTEX_WAKE_OP",
    "FUTEX_LOCK_PI",
    "FUTEX_UNLOCK_PI",
    "FUTEX_TRYLOCK_PI",
    "FUTEX_WAIT_BITSET",
    "FUTEX_WAKE_BITSET",
    "FUTEX_WAIT_REQUEUE_PI",
    "FUTEX_CMP_REQUEUE_PI",
    "FUTEX_LOCK_PI2",
];

/// Signals 1..=31 by number.
const SIGNALS: &[&str] = &[
    "SIGHUP",
    "SIGINT",
    "SIGQUIT",
    "SIGILL",
    "SIGTRAP",
    "SIGABRT",
    "SIGBUS",
    "SIGFPE",
    "SIGKILL",
    "SIGUSR1",
    "SIGSEGV",
    "SIGUSR2",
    "SIGPIPE",
    "SIGALRM",
    "SIGTERM",
    "SIGSTKFLT",
    "SIGCHLD",
    "SIGCONT",
    "SIGSTOP",
    "SIGTSTP",
    "SIGTTIN",
    "SIGTTOU",
    "SIGURG",
    "SIGXCPU",
    "SIGXFSZ",
    "SIGVTALRM",
    "SIGPROF",
    "SIGWINCH",
    "SIGIO",
    "SIGPWR",
    "SIGSYS",
];

const OPEN_ACCESS: &[Flag] = &[(0, 3, "O_RDONLY"), (1, 3, "O_WRONLY"), (2, 3, "O_RDWR")];

/// In qemu's order (so `O_SYNC` is `O_DSYNC|__O_SYNC` and `O_TMPFILE`
/// `O_DIRECTORY|__O_TMPFILE`, as qemu prints them); `O_ASYNC` is vmjit's addition.
const OPEN_FLAGS: &[Flag] = &[
    bit(0o2000, "O_APPEND"),
    bit(0o100, "O_CREAT"),
    bit(0o200000, "O_DIRECTORY"),
    bit(0o200, "O_EXCL"),
    bit(0o100000, "O_LARGEFILE"),
    bit(0o400, "O_NOCTTY"),
    bit(0o400000, "O_NOFOLLOW"),
    bit(0o4000, "O_NONBLOCK"),
    bit(0o10000, "O_DSYNC"),
    bit(0o4000000, "__O_SYNC"),
    bit(0o1000, "O_TRUNC"),
    bit(0o40000, "O_DIRECT"),
    bit(0o1000000, "O_NOATIME"),
    bit(0o2000000, "O_CLOEXEC"),
    bit(0o10000000, "O_PATH"),
    bit(0o20200000, "O_TMPFILE"),
    bit(0o20000000, "__O_TMPFILE"),
    bit(0o20000, "O_ASYNC"),
];

const FILE_TYPES: &[(u32, &str)] = &[
    (0o140000, "S_IFSOCK"),
    (0o120000, "S_IFLNK"),
    (0o100000, "S_IFREG"),
    (0o060000, "S_IFBLK"),
    (0o040000, "S_IFDIR"),
    (0o020000, "S_IFCHR"),
    (0o010000, "S_IFIFO"),
];

const ACCESS_MODES: &[Flag] = &[
    (0, 7, "F_OK"),
    bit(4, "R_OK"),
    bit(2, "W_OK"),
    bit(1, "X_OK"),
];

const AT_SYMLINK_NOFOLLOW: Flag = bit(0x100, "AT_SYMLINK_NOFOLLOW");
const AT_NO_AUTOMOUNT: Flag = bit(0x800, "AT_NO_AUTOMOUNT");
const AT_EMPTY_PATH: Flag = bit(0x1000, "AT_EMPTY_PATH");
/// newfstatat, fchownat, utimensat.
const AT_STAT: &[Flag] = &[AT_SYMLINK_NOFOLLOW, AT_NO_AUTOMOUNT, AT_EMPTY_PATH];
const AT_ACCESS: &[Flag] = &[bit(0x200, "AT_EACCESS"), AT_SYMLINK_NOFOLLOW, AT_EMPTY_PATH];
const AT_UNLINK: &[Flag] = &[bit(0x200, "AT_REMOVEDIR")];
const AT_LINK: &[Flag] = &[bit(0x400, "AT_SYMLINK_FOLLOW"), AT_EMPTY_PATH];
/// `AT_STATX_SYNC_AS_STAT` is zero (the default) and left out, as qemu 7.2 does.
const STATX_FLAGS: &[Flag] = &[
    AT_EMPTY_PATH,
    AT_NO_AUTOMOUNT,
    AT_SYMLINK_NOFOLLOW,
    (0x2000, 0x6000, "AT_STATX_FORCE_SYNC"),
    (0x4000, 0x6000, "AT_STATX_DONT_SYNC"),
];
/// `STATX_ALL` and `STATX_BASIC_STATS` first: they cover the bits after them.
const STATX_MASK: &[Flag] = &[
    bit(0xfff, "STATX_ALL"),
    bit(0x7ff, "STATX_BASIC_STATS"),
    bit(0x1, "STATX_TYPE"),
    bit(0x2, "STATX_MODE"),
    bit(0x4, "STATX_NLINK"),
    bit(0x8, "STATX_UID"),
    bit(0x10, "STATX_GID"),
    bit(0x20, "STATX_ATIME"),
    bit(0x40, "STATX_MTIME"),
    bit(0x80, "STATX_CTIME"),
    bit(0x100, "STATX_INO"),
    bit(0x200, "STATX_SIZE"),
    bit(0x400, "STATX_BLOCKS"),
    bit(0x800, "STATX_BTIME"),
    bit(0x1000, "STATX_MNT_ID"),
    bit(0x2000, "STATX_DIOALIGN"),
];
const RENAME_FLAGS: &[Flag] = &[
    bit(1, "RENAME_NOREPLACE"),
    bit(2, "RENAME_EXCHANGE"),
    bit(4, "RENAME_WHITEOUT"),
];
const CLOSE_RANGE_FLAGS: &[Flag] = &[bit(2, "CLOSE_RANGE_UNSHARE"), bit(4, "CLOSE_RANGE_CLOEXEC")];
const FLOCK_OPS: &[Flag] = &[
    bit(1, "LOCK_SH"),
    bit(2, "LOCK_EX"),
    bit(4, "LOCK_NB"),
    bit(8, "LOCK_UN"),
];
const SEALS: &[Flag] = &[
    bit(1, "F_SEAL_SEAL"),
    bit(2, "F_SEAL_SHRINK"),
    bit(4, "F_SEAL_GROW"),
    bit(8, "F_SEAL_WRITE"),
    bit(0x10, "F_SEAL_FUTURE_WRITE"),
];
const WHENCE: &[(u64, &str)] = &[
    (0, "SEEK_SET"),
    (1, "SEEK_CUR"),
    (2, "SEEK_END"),
    (3, "SEEK_DATA"),
    (4, "SEEK_HOLE"),
];

const PROT_FLAGS: &[Flag] = &[
    (0, 7, "PROT_NONE"),
    bit(4, "PROT_EXEC"),
    bit(1, "PROT_READ"),
    bit(2, "PROT_WRITE"),
    bit(8, "PROT_SEM"),
    bit(0x0100_0000, "PROT_GROWSDOWN"),
    bit(0x0200_0000, "PROT_GROWSUP"),
];
const MAP_FLAGS: &[Flag] = &[
    (1, 0xf, "MAP_SHARED"),
    (2, 0xf, "MAP_PRIVATE"),
    (3, 0xf, "MAP_SHARED_VALIDATE"),
    bit(0x20, "MAP_ANONYMOUS"),
    bit(0x800, "MAP_DENYWRITE"),
    bit(0x1000, "MAP_EXECUTABLE"),
    bit(0x10, "MAP_FIXED"),
    bit(0x10_0000, "MAP_FIXED_NOREPLACE"),
    bit(0x100, "MAP_GROWSDOWN"),
    bit(0x4_0000, "MAP_HUGETLB"),
    bit(0x2000, "MAP_LOCKED"),
    bit(0x1_0000, "MAP_NONBLOCK"),
    bit(0x4000, "MAP_NORESERVE"),
    bit(0x8000, "MAP_POPULATE"),
    bit(0x2_0000, "MAP_STACK"),
    bit(0x8_0000, "MAP_SYNC"),
];
const MREMAP_FLAGS: &[Flag] = &[
    bit(1, "MREMAP_MAYMOVE"),
    bit(2, "MREMAP_FIXED"),
    bit(4, "MREMAP_DONTUNMAP"),
];
const MADVICE: &[(u64, &str)] = &[
    (0, "MADV_NORMAL"),
    (1, "MADV_RANDOM"),
    (2, "MADV_SEQUENTIAL"),
    (3, "MADV_WILLNEED"),
    (4, "MADV_DONTNEED"),
    (8, "MADV_FREE"),
    (9, "MADV_REMOVE"),
    (10, "MADV_DONTFORK"),
    (11, "MADV_DOFORK"),
    (12, "MADV_MERGEABLE"),
    (13, "MADV_UNMERGEABLE"),
    (14, "MADV_HUGEPAGE"),
    (15, "MADV_NOHUGEPAGE"),
    (16, "MADV_DONTDUMP"),
    (17, "MADV_DODUMP"),
    (18, "MADV_WIPEONFORK"),
    (19, "MADV_KEEPONFORK"),
    (20, "MADV_COLD"),
    (21, "MADV_PAGEOUT"),
    (22, "MADV_POPULATE_READ"),
    (23, "MADV_POPULATE_WRITE"),
    (24, "MADV_DONTNEED_LOCKED"),
    (25, "MADV_COLLAPSE"),
];
const FADVICE: &[(u64, &str)] = &[
    (0, "POSIX_FADV_NORMAL"),
    (1, "POSIX_FADV_RANDOM"),
    (2, "POSIX_FADV_SEQUENTIAL"),
    (3, "POSIX_FADV_WILLNEED"),
    (4, "POSIX_FADV_DONTNEED"),
    (5, "POSIX_FADV_NOREUSE"),
];

/// In qemu's order.
const CLONE_FLAGS: &[Flag] = &[
    bit(0x100, "CLONE_VM"),
    bit(0x200, "CLONE_FS"),
    bit(0x400, "CLONE_FILES"),
    bit(0x800, "CLONE_SIGHAND"),
    bit(0x1000, "CLONE_PIDFD"),
    bit(0x2000, "CLONE_PTRACE"),
    bit(0x4000, "CLONE_VFORK"),
    bit(0x8000, "CLONE_PARENT"),
    bit(0x1_0000, "CLONE_THREAD"),
    bit(0x2_0000, "CLONE_NEWNS"),
    bit(0x4_0000, "CLONE_SYSVSEM"),
    bit(0x8_0000, "CLONE_SETTLS"),
    bit(0x10_0000, "CLONE_PARENT_SETTID"),
    bit(0x20_0000, "CLONE_CHILD_CLEARTID"),
    bit(0x40_0000, "CLONE_DETACHED"),
    bit(0x80_0000, "CLONE_UNTRACED"),
    bit(0x100_0000, "CLONE_CHILD_SETTID"),
    bit(0x400_0000, "CLONE_NEWUTS"),
    bit(0x800_0000, "CLONE_NEWIPC"),
    bit(0x1000_0000, "CLONE_NEWUSER"),
    bit(0x2000_0000, "CLONE_NEWPID"),
    bit(0x4000_0000, "CLONE_NEWNET"),
    bit(0x200_0000, "CLONE_NEWCGROUP"),
    bit(0x8000_0000, "CLONE_IO"),
];

const CLOCKS: &[(u64, &str)] = &[
    (0, "CLOCK_REALTIME"),
    (1, "CLOCK_MONOTONIC"),
    (2, "CLOCK_PROCESS_CPUTIME_ID"),
    (3, "CLOCK_THREAD_CPUTIME_ID"),
    (4, "CLOCK_MONOTONIC_RAW"),
    (5, "CLOCK_REALTIME_COARSE"),
    (6, "CLOCK_MONOTONIC_COARSE"),
    (7, "CLOCK_BOOTTIME"),
    (8, "CLOCK_REALTIME_ALARM"),
    (9, "CLOCK_BOOTTIME_ALARM"),
    (10, "CLOCK_SGI_CYCLE"),
    (11, "CLOCK_TAI"),
];
const TIMER_FLAGS: &[Flag] = &[bit(1, "TIMER_ABSTIME")];
const GRND_FLAGS: &[Flag] = &[
    bit(1, "GRND_NONBLOCK"),
    bit(2, "GRND_RANDOM"),
    bit(4, "GRND_INSECURE"),
];
const RLIMITS: &[(u64, &str)] = &[
    (0, "RLIMIT_CPU"),
    (1, "RLIMIT_FSIZE"),
    (2, "RLIMIT_DATA"),
    (3, "RLIMIT_STACK"),
    (4, "RLIMIT_CORE"),
    (5, "RLIMIT_RSS"),
    (6, "RLIMIT_NPROC"),
    (7, "RLIMIT_NOFILE"),
    (8, "RLIMIT_MEMLOCK"),
    (9, "RLIMIT_AS"),
    (10, "RLIMIT_LOCKS"),
    (11, "RLIMIT_SIGPENDING"),
    (12, "RLIMIT_MSGQUEUE"),
    (13, "RLIMIT_NICE"),
    (14, "RLIMIT_RTPRIO"),
    (15, "RLIMIT_RTTIME"),
];
const RUSAGE_WHO: &[(u64, &str)] = &[
    (0, "RUSAGE_SELF"),
    (u64::MAX, "RUSAGE_CHILDREN"),
    (1, "RUSAGE_THREAD"),
];
const SIG_HOW: &[(u64, &str)] = &[(0, "SIG_BLOCK"), (1, "SIG_UNBLOCK"), (2, "SIG_SETMASK")];

/// How an fcntl command's argument is shown.
#[derive(Clone, Copy)]
enum FcntlArg {
    None,
    Long,
    Ptr,
    OpenFlags,
    Seals,
}

const FCNTL_CMDS: &[(u64, &str, FcntlArg)] = &[
    (0, "F_DUPFD", FcntlArg::Long),
    (1, "F_GETFD", FcntlArg::None),
    (2, "F_SETFD", FcntlArg::Long),
    (3, "F_GETFL", FcntlArg::None),
    (4, "F_SETFL", FcntlArg::OpenFlags),
    (5, "F_GETLK", FcntlArg::Ptr),
    (6, "F_SETLK", FcntlArg::Ptr),
    (7, "F_SETLKW", FcntlArg::Ptr),
    (8, "F_SETOWN", FcntlArg::Long),
    (9, "F_GETOWN", FcntlArg::None),
    (10, "F_SETSIG", FcntlArg::Long),
    (11, "F_GETSIG", FcntlArg::None),
    (15, "F_SETOWN_EX", FcntlArg::Ptr),
    (16, "F_GETOWN_EX", FcntlArg::Ptr),
    (36, "F_OFD_GETLK", FcntlArg::Ptr),
    (37, "F_OFD_SETLK", FcntlArg::Ptr),
    (38, "F_OFD_SETLKW", FcntlArg::Ptr),
    (1024, "F_SETLEASE", FcntlArg::Long),
    (1025, "F_GETLEASE", FcntlArg::None),
    (1026, "F_NOTIFY", FcntlArg::Long),
    (1030, "F_DUPFD_CLOEXEC", FcntlArg::Long),
    (1031, "F_SETPIPE_SZ", FcntlArg::Long),
    (1032, "F_GETPIPE_SZ", FcntlArg::None),
    (1033, "F_ADD_SEALS", FcntlArg::Seals),
    (1034, "F_GET_SEALS", FcntlArg::None),
];

/// How an ioctl request's argument is shown.
#[derive(Clone, Copy)]
enum IoctlArg {
    None,
    Int,
    Ptr,
}

/// Terminal and descriptor requests (asm-generic numbers).
const IOCTLS: &[(u64, &str, IoctlArg)] = &[
    (0x5401, "TCGETS", IoctlArg::Ptr),
    (0x5402, "TCSETS", IoctlArg::Ptr),
    (0x5403, "TCSETSW", IoctlArg::Ptr),
    (0x5404, "TCSETSF", IoctlArg::Ptr),
    (0x5409, "TCSBRK", IoctlArg::Int),
    (0x540a, "TCXONC", IoctlArg::Int),
    (0x540b, "TCFLSH", IoctlArg::Int),
    (0x540e, "TIOCSCTTY", IoctlArg::Int),
    (0x540f, "TIOCGPGRP", IoctlArg::Ptr),
    (0x5410, "TIOCSPGRP", IoctlArg::Ptr),
    (0x5411, "TIOCOUTQ", IoctlArg::Ptr),
    (0x5413, "TIOCGWINSZ", IoctlArg::Ptr),
    (0x5414, "TIOCSWINSZ", IoctlArg::Ptr),
    (0x541b, "FIONREAD", IoctlArg::Ptr),
    (0x5421, "FIONBIO", IoctlArg::Ptr),
    (0x5422, "TIOCNOTTY", IoctlArg::None),
    (0x5429, "TIOCGSID", IoctlArg::Ptr),
    (0x5450, "FIONCLEX", IoctlArg::None),
    (0x5451, "FIOCLEX", IoctlArg::None),
    (0x5452, "FIOASYNC", IoctlArg::Ptr),
    (0x8004_5430, "TIOCGPTN", IoctlArg::Ptr),
    (0x4004_5431, "TIOCSPTLCK", IoctlArg::Ptr),
];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::{PERM_R, PERM_W};

    /// Guest memory with one read-write page at 0x10000.
    fn mem() -> GuestMemory {
        let m = GuestMemory::new().unwrap();
        m.map(0x10000, 0x1000, PERM_R | PERM_W).unwrap();
        m
    }

    fn args(a: &[u64]) -> [u64; 6] {
        let mut r = [0u64; 6];
        r[..a.len()].copy_from_slice(a);
        r
    }

    #[test]
    fn flags_print_names_in_table_order_then_unknown_bits_as_hex() {
        assert_eq!(
            open_flags_text(0o1302),
            "O_RDWR|O_CREAT|O_EXCL|O_TRUNC",
            "fileio's openat"
        );
        assert_eq!(open_flags_text(0), "O_RDONLY");
        assert_eq!(
            open_flags_text(0o2204000),
            "O_RDONLY|O_DIRECTORY|O_NONBLOCK|O_CLOEXEC"
        );
        assert_eq!(open_flags_text(3), "0x3", "no access mode has the value 3");
        assert_eq!(
            open_flags_text(1 | 0o100 | 0x4000_0000),
            "O_WRONLY|O_CREAT|0x40000000"
        );
        assert_eq!(flags_text(PROT_FLAGS, 0), "PROT_NONE");
        assert_eq!(flags_text(PROT_FLAGS, 5), "PROT_EXEC|PROT_READ");
        assert_eq!(
            flags_text(MAP_FLAGS, 0x22 | 0x2_0000),
            "MAP_PRIVATE|MAP_ANONYMOUS|MAP_STACK"
        );
        assert_eq!(flags_text(AT_UNLINK, 0), "0", "C's %#x of zero");
        assert_eq!(flags_text(AT_UNLINK, 0x40), "0x40", "no name: hex");
        assert_eq!(flags_text(ACCESS_MODES, 0), "F_OK");
        assert_eq!(flags_text(ACCESS_MODES, 6), "R_OK|W_OK");
        assert_eq!(
            clone_flags_text(0x3d0f00),
            "CLONE_VM|CLONE_FS|CLONE_FILES|CLONE_SIGHAND|CLONE_THREAD|CLONE_SYSVSEM|\
             CLONE_SETTLS|CLONE_PARENT_SETTID|CLONE_CHILD_CLEARTID"
        );
        assert_eq!(clone_flags_text(17), "SIGCHLD");
        assert_eq!(clone_flags_text(0x4111), "CLONE_VM|CLONE_VFORK|SIGCHLD");
        assert_eq!(clone_flags_text(0), "0");
        assert_eq!(futex_op_text(0x80), "FUTEX_PRIVATE_FLAG|FUTEX_WAIT");
        assert_eq!(
            futex_op_text(0x109),
            "FUTEX_CLOCK_REALTIME|FUTEX_WAIT_BITSET"
        );
        assert_eq!(futex_op_text(0x8f), "0x8f", "unknown command");
    }

    #[test]
    fn modes_and_signals_print_as_qemu_does() {
        assert_eq!(mode_text(0), "000");
        assert_eq!(mode_text(0o644), "0644");
        assert_eq!(mode_text(0o100755), "S_IFREG|0755");
        assert_eq!(mode_text(0o010000), "S_IFIFO");
        assert_eq!(signal_text(9), "SIGKILL");
        assert_eq!(signal_text(31), "SIGSYS");
        assert_eq!(signal_text(0), "0");
        assert_eq!(signal_text(33), "33");
        assert_eq!(signal_text(u64::MAX), "-1");
    }

    #[test]
    fn strings_are_quoted_escaped_and_cut() {
        assert_eq!(quote(b"data.bin", false), "\"data.bin\"");
        assert_eq!(
            quote(b"we\"ird\n\tname\\x", false),
            "\"we\\\"ird\\12\\11name\\\\x\""
        );
        // An octal escape followed by a digit takes three digits, so it cannot run on.
        assert_eq!(quote(b"\x017\x01x", false), "\"\\0017\\1x\"");
        assert_eq!(quote(&[0xff], false), "\"\\377\"");
        assert_eq!(quote(b"abc", true), "\"abc\"...");
        let long = vec![b'a'; 5000];
        let q = quote(&long, false);
        assert_eq!(
            q.len(),
            STR_MAX + 2 + 3,
            "STR_MAX characters, quotes, `...`"
        );
        assert!(q.ends_with("a\"..."));
        // Escapes count towards the limit.
        let q = quote(&[0xffu8; 5000], false);
        assert!(q.len() <= STR_MAX + 4 + 2 + 3, "{}", q.len());
        assert!(q.ends_with("\"..."));
    }

    #[test]
    fn guest_strings_never_fault_and_unreadable_ones_print_as_pointers() {
        let m = mem();
        m.write_bytes(0x10000, b"/etc/passwd\0").unwrap();
        assert_eq!(guest_string(&m, 0x10000), "\"/etc/passwd\"");
        assert_eq!(guest_string(&m, 0), "NULL");
        assert_eq!(guest_string(&m, 0x5000), "0x0000000000005000");
        assert_eq!(guest_string(&m, u64::MAX), "0xffffffffffffffff");
        // Running off the end of the mapping before a NUL: unreadable, as for the kernel.
        m.write_bytes(0x10ff0, &[b'x'; 16]).unwrap();
        assert_eq!(guest_string(&m, 0x10ff0), "0x0000000000010ff0");
        // No NUL within STR_MAX bytes: cut.
        m.write_bytes(0x10000, &[b'y'; 0x1000]).unwrap();
        let s = guest_string(&m, 0x10000);
        assert!(s.starts_with("\"yyy") && s.ends_with("y\"..."), "{s}");
    }

    #[test]
    fn errors_print_errno_and_message() {
        assert_eq!(result_text(-2), "-1 errno=2 (No such file or directory)");
        assert_eq!(result_text(-9), "-1 errno=9 (Bad file descriptor)");
        assert_eq!(result_text(-38), "-1 errno=38 (Function not implemented)");
        assert_eq!(result_text(-4095), "-1 errno=4095 (Unknown error 4095)");
        assert_eq!(result_text(-4096), "-4096", "outside the error range");
        assert_eq!(result_text(3), "3");
        let m = mem();
        assert_eq!(
            result(nr::MMAP, [0; 6], 0x40_0080_2000, &m),
            "0x0000004000802000"
        );
        assert_eq!(result(nr::BRK, [0; 6], 0xc0000, &m), "0x00000000000c0000");
        assert_eq!(
            result(nr::MMAP, [0; 6], -12, &m),
            "-1 errno=12 (Cannot allocate memory)"
        );
        m.write_bytes(0x10000, &[1, 0, 0, 0, 0, 0, 0, 0, 5, 0, 0, 0, 0, 0, 0, 0])
            .unwrap();
        assert_eq!(
            result(nr::CLOCK_GETTIME, args(&[1, 0x10000]), 0, &m),
            "0 ({tv_sec = 1,tv_nsec = 5})"
        );
    }

    #[test]
    fn calls_are_described_as_qemu_prints_them() {
        let m = mem();
        m.write_bytes(0x10000, b"data.bin\0").unwrap();
        let d = |n, a: &[u64]| describe(n, args(a), &m);
        let fdcwd = -100i64 as u64;
        assert_eq!(
            d(nr::OPENAT, &[fdcwd, 0x10000, 0o1302, 0o644]),
            "openat(AT_FDCWD,\"data.bin\",O_RDWR|O_CREAT|O_EXCL|O_TRUNC,0644)"
        );
        assert_eq!(
            d(nr::OPENAT, &[fdcwd, 0x10000, 0o2000000, 0o644]),
            "openat(AT_FDCWD,\"data.bin\",O_RDONLY|O_CLOEXEC)",
            "no mode without O_CREAT"
        );
        assert_eq!(
            d(nr::WRITE, &[1, 0x40_0080_1234, 5]),
            "write(1,0x4000801234,5)"
        );
        assert_eq!(d(nr::LSEEK, &[3, 0, 2]), "lseek(3,0,SEEK_END)");
        assert_eq!(d(nr::LSEEK, &[0, 5, 77]), "lseek(0,5,0x4d)");
        assert_eq!(d(nr::CLOSE, &[u64::MAX]), "close(-1)");
        assert_eq!(
            d(nr::MMAP, &[0, 8192, 3, 0x22, u64::MAX, 0]),
            "mmap(NULL,8192,PROT_READ|PROT_WRITE,MAP_PRIVATE|MAP_ANONYMOUS,-1,0)"
        );
        assert_eq!(
            d(nr::MPROTECT, &[0x83000, 16384, 1]),
            "mprotect(0x0000000000083000,16384,PROT_READ)"
        );
        assert_eq!(d(nr::BRK, &[0]), "brk(NULL)");
        assert_eq!(
            d(nr::NEWFSTATAT, &[1, 0x10008, 0x40_0080_0a48, 0x1000]),
            "newfstatat(1,\"\",0x0000004000800a48,AT_EMPTY_PATH)"
        );
        assert_eq!(
            d(nr::FCNTL, &[3, 4, 0o2002]),
            "fcntl(3,F_SETFL,O_RDWR|O_APPEND)"
        );
        assert_eq!(d(nr::FCNTL, &[3, 1]), "fcntl(3,F_GETFD)");
        assert_eq!(
            d(nr::FCNTL, &[3, 1234, 5]),
            "fcntl(3,1234,0x0000000000000005)"
        );
        assert_eq!(
            d(nr::IOCTL, &[1, 0x5401, 0x40_0080_01a0]),
            "ioctl(1,TCGETS,0x00000040008001a0)"
        );
        assert_eq!(d(nr::IOCTL, &[3, 0x5451]), "ioctl(3,FIOCLEX)");
        assert_eq!(
            d(nr::IOCTL, &[3, 0x1234_5678, 9]),
            "ioctl(3,0x12345678,0x9)"
        );
        assert_eq!(
            d(
                nr::CLONE,
                &[
                    0x3d0f00,
                    0x40_0100_1c90,
                    0x40_0100_24b0,
                    0x40_0100_2b40,
                    0x40_0100_24b0
                ]
            ),
            "clone(CLONE_VM|CLONE_FS|CLONE_FILES|CLONE_SIGHAND|CLONE_THREAD|CLONE_SYSVSEM|\
             CLONE_SETTLS|CLONE_PARENT_SETTID|CLONE_CHILD_CLEARTID,\
             child_stack=0x0000004001001c90,parent_tidptr=0x00000040010024b0,\
             tls=0x0000004001002b40,child_tidptr=0x00000040010024b0)"
        );
        assert_eq!(
            d(nr::FUTEX, &[0x83450, 0x80, 2, 0, 1, 1]),
            "futex(0x0000000000083450,FUTEX_PRIVATE_FLAG|FUTEX_WAIT,2,NULL,0x0000000000000001,1)"
        );
        m.write_bytes(0x10100, &[0u8; 8]).unwrap();
        m.write_bytes(0x10108, &1000u64.to_le_bytes()).unwrap();
        assert_eq!(
            d(nr::FUTEX, &[0x10000, 0x109, 0, 0x10100, 0, u64::MAX]),
            "futex(0x0000000000010000,FUTEX_CLOCK_REALTIME|FUTEX_WAIT_BITSET,0,\
             {tv_sec = 0,tv_nsec = 1000},NULL,-1)"
        );
        assert_eq!(
            d(nr::RT_SIGACTION, &[10, 0x10000, 0]),
            "rt_sigaction(SIGUSR1,0x0000000000010000,NULL)"
        );
        assert_eq!(d(nr::TGKILL, &[7, 8, 6]), "tgkill(7,8,SIGABRT)");
        assert_eq!(d(nr::EXIT_GROUP, &[0]), "exit_group(0)");
        assert_eq!(d(nr::GETPID, &[5, 6]), "getpid()");
        assert_eq!(d(nr::UMASK, &[0o22]), "umask(022)");
        assert_eq!(
            d(nr::PRLIMIT64, &[0, 3, 0, 0x40_0080_0a40]),
            "prlimit64(0,RLIMIT_STACK,NULL,0x0000004000800a40)"
        );
        // Not a call the engine knows: every register, in hex.
        assert_eq!(d(500, &[1, 2, 3]), "syscall_500(0x1,0x2,0x3,0x0,0x0,0x0)");
        assert_eq!(
            d(nr::FCHMODAT, &[fdcwd, 0x5000, 0o755]),
            "fchmodat(AT_FDCWD,0x0000000000005000,0755)",
            "an unreadable path is its pointer"
        );
    }

    #[test]
    fn garbage_arguments_never_panic() {
        let m = mem();
        let garbage = [u64::MAX, 0x8000_0000_0000_0000, 0x10ffe, 1, 0, 0xdead_beef];
        for n in 0..512 {
            for rot in 0..garbage.len() {
                let mut a = garbage;
                a.rotate_left(rot);
                let s = describe(n, a, &m);
                assert!(s.ends_with(')') && !s.contains('\n'), "{s}");
                let _ = result(n, a, a[0] as i64, &m);
            }
        }
    }

    #[test]
    fn lines_fit_in_one_atomic_write() {
        let l = line(42, "write(1,0x1,2) = 2");
        assert_eq!(l, "42 write(1,0x1,2) = 2\n");
        let long = "x".repeat(10_000);
        let l = line(42, &long);
        assert_eq!(l.len(), LINE_MAX);
        assert!(l.ends_with("...\n"));
        // The worst call with two strings stays below the limit unaided.
        let m = GuestMemory::new().unwrap();
        m.map(0x10000, 0x2000, PERM_R | PERM_W).unwrap();
        m.write_bytes(0x10000, &[0xffu8; 0x2000]).unwrap();
        let d = describe(
            nr::LINKAT,
            args(&[(-100i64) as u64, 0x10000, (-100i64) as u64, 0x10000, 0x1400]),
            &m,
        );
        assert!(line(i64::MAX, &d).len() < LINE_MAX, "{}", d.len());
    }
}
