//! The system-call side of a new process: what a forked child keeps of its parent's
//! process state, and the locks held across the host `fork`.
//!
//! **Invariants.**
//! - Every lock of the process state a child uses is held by the forking thread across
//!   the host `fork` ([`ForkLocks`]), taken without waiting (so no lock order can
//!   deadlock with another thread) and released on both sides after: the other threads
//!   do not exist in the child, and a lock one of them held would never be released.
//! - The child's state is a copy made from the held locks: same descriptors (under
//!   handles the child owns), limits, working directory, address-space bookkeeping,
//!   dispositions, mask and alternate stack; a new thread group with one thread, no
//!   pending signals and no timers (Linux does not pass those on to a child).

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard};

use super::fdtable::FdTable;
use super::{MmState, ProcessState, Syscalls, ThreadState};
use crate::memory::{GuestMemory, MapState, try_lock};
use crate::signals::SigAction;
use crate::threads::{ThreadGroup, ThreadHandle};

/// The locks a forked child needs free, held across the host fork.
pub(crate) struct ForkLocks<'a> {
    mm: MutexGuard<'a, MmState>,
    warned: MutexGuard<'a, HashSet<u64>>,
    fds: MutexGuard<'a, FdTable>,
    rlimits: MutexGuard<'a, [Option<(u64, u64)>; 16]>,
    cwd_virt: MutexGuard<'a, Option<Vec<u8>>>,
    _map: MutexGuard<'a, MapState>,
    _internal: MutexGuard<'static, Vec<(u64, u64)>>,
    /// The dispositions when the locks were taken.
    actions: [SigAction; 65],
}

impl Syscalls {
    /// Takes the locks of [`ForkLocks`]: all of them when all are free, else none and
    /// again after a moment (each is held only for the bookkeeping of one call).
    pub(crate) fn fork_locks<'a>(&'a self, mem: &'a GuestMemory) -> ForkLocks<'a> {
        loop {
            if let Some(l) = self.try_fork_locks(mem) {
                return l;
            }
            std::thread::yield_now();
        }
    }

    fn try_fork_locks<'a>(&'a self, mem: &'a GuestMemory) -> Option<ForkLocks<'a>> {
        let p = &*self.proc;
        Some(ForkLocks {
            mm: try_lock(&p.mm)?,
            warned: try_lock(&p.warned)?,
            fds: try_lock(&p.fds)?,
            rlimits: try_lock(&p.rlimits)?,
            cwd_virt: try_lock(&p.cwd_virt)?,
            _map: mem.try_lock_for_fork()?,
            _internal: crate::sandbox::try_lock_for_fork()?,
            actions: p.group.actions_snapshot(),
        })
    }

    /// The system-call state of the forked child (call in the child, on the thread that
    /// forked, with the locks still held; it becomes the child's first thread).
    pub(crate) fn forked_child(&self, locks: &ForkLocks<'_>) -> Syscalls {
        let pid = crate::host::getpid();
        let handle = ThreadHandle::new(pid);
        handle.bind_host_thread();
        let group = ThreadGroup::new(Arc::clone(&handle));
        group.set_actions(&locks.actions);
        group.set_mask(&handle, self.thread.handle.mask());
        let p = &*self.proc;
        let proc = ProcessState {
            mm: Mutex::new(locks.mm.clone()),
            warned: Mutex::new(locks.warned.clone()),
            exe_path: p.exe_path.clone(),
            cmdline: p.cmdline.clone(),
            environ: p.environ.clone(),
            pid,
            fds: Mutex::new(locks.fds.fork_copy()),
            rlimits: Mutex::new(*locks.rlimits),
            cwd_virt: Mutex::new(locks.cwd_virt.clone()),
            group,
            strace: AtomicBool::new(p.strace.load(Relaxed)),
            exec: p.exec.clone(),
            sysroot: p.sysroot.clone(),
            forked: AtomicBool::new(true),
        };
        Syscalls {
            proc: Arc::new(proc),
            thread: ThreadState {
                tid: pid,
                altstack: self.thread.altstack,
                saved_mask: None,
                sp: self.thread.sp,
                invalidations: Vec::new(),
                clear_child_tid: 0,
                robust_list: (0, 0),
                handle,
            },
        }
    }

    /// True in a process vmjit forked for its guest (its statistics are not reported:
    /// they belong to the first process).
    pub fn is_forked_child(&self) -> bool {
        self.proc.forked.load(Relaxed)
    }

    /// Marks the process as forked (a program a forked process exec'd).
    pub fn set_forked_child(&mut self) {
        self.proc.forked.store(true, Relaxed);
    }
}

/// `wait4` options Linux accepts (WNOHANG, WUNTRACED, WCONTINUED, __WNOTHREAD,
/// __WALL, __WCLONE: the same values on x86-64 and riscv64).
const WAIT4_OPTIONS: u64 = 1 | 2 | 8 | 0x2000_0000 | 0x4000_0000 | 0x8000_0000;
/// waitid's options add WEXITED, WSTOPPED's alias and WNOWAIT.
const WAITID_OPTIONS: u64 = WAIT4_OPTIONS | 4 | 0x0100_0000;
const WNOHANG: i32 = 1;

impl Syscalls {
    /// `wait4(pid, status, options, rusage)`: guest children are host children.
    pub(super) fn wait4(&mut self, a: [u64; 6], mem: &GuestMemory) -> i64 {
        let [pid, status, options, rusage, ..] = a;
        if options & !WAIT4_OPTIONS != 0 {
            return super::EINVAL;
        }
        let options = options as u32 as i32;
        let (mut r, mut st, mut ru) = crate::hostproc::wait4(pid as i32, options);
        if r == super::e(libc::EINTR) && options & WNOHANG == 0 {
            // Interrupted to take a signal: a child that ended meanwhile is still this
            // call's result, as in Linux, where the wait completes first.
            let again = crate::hostproc::wait4(pid as i32, options | WNOHANG);
            if again.0 > 0 {
                (r, st, ru) = again;
            }
        }
        if r > 0 {
            self.take_sigchld();
            if status != 0 && mem.write_bytes(status, &st.to_le_bytes()).is_err() {
                return super::EFAULT;
            }
            if rusage != 0 && mem.write_bytes(rusage, &ru).is_err() {
                return super::EFAULT;
            }
        }
        r
    }

    /// Sends the guest the SIGCHLD the host has pending for a child that ended (see
    /// `host::take_pending_sigchld`), before the wait returns.
    fn take_sigchld(&self) {
        while let Some(info) = crate::host::take_pending_sigchld() {
            self.group().send_process(info, None);
        }
    }

    /// `waitid(idtype, id, infop, options, rusage)`.
    pub(super) fn waitid(&mut self, a: [u64; 6], mem: &GuestMemory) -> i64 {
        let [idtype, id, infop, options, rusage, _] = a;
        if options & !WAITID_OPTIONS != 0 || idtype > 3 {
            return super::EINVAL;
        }
        let (r, info, ru) =
            crate::hostproc::waitid(idtype as u32, id as u32, options as u32 as i32);
        if r >= 0 {
            self.take_sigchld();
            if infop != 0 && mem.write_bytes(infop, &info).is_err() {
                return super::EFAULT;
            }
            if rusage != 0 && mem.write_bytes(rusage, &ru).is_err() {
                return super::EFAULT;
            }
        }
        r
    }
}
