//! Threads and futexes: clone and clone3 for threads (the engine starts the host thread,
//! see `crate::threads`), exit of one thread, futex on guest words, the robust list and
//! clear-child-tid at a thread's end.
//!
//! **Invariants.**
//! - Only the flag sets a thread library uses are accepted (`CLONE_VM`, `CLONE_FS`,
//!   `CLONE_FILES`, `CLONE_SIGHAND`, `CLONE_THREAD` together, with any of
//!   `CLONE_SYSVSEM`, `CLONE_SETTLS`, `CLONE_PARENT_SETTID`, `CLONE_CHILD_SETTID`,
//!   `CLONE_CHILD_CLEARTID`, `CLONE_DETACHED`); every other combination is EINVAL
//!   (what Linux says of inconsistent sets) or ENOSYS (a new process: fork, vfork,
//!   posix_spawn), with one warning, never a silently different behaviour.
//! - A futex is the host futex on the guest word itself (guest memory is host memory),
//!   so waiters and wakers in any thread, tier or host call meet on one kernel queue;
//!   the word must be aligned and mapped, as Linux requires, or the call is EINVAL or
//!   EFAULT before the host sees it.

use rv64::Memory;

use super::{EFAULT, EINVAL, SyscallExit, Syscalls, e};
use crate::host;
use crate::memory::{GuestMemory, PERM_R, PERM_W};

const CLONE_VM: u64 = 0x100;
const CLONE_FS: u64 = 0x200;
const CLONE_FILES: u64 = 0x400;
const CLONE_SIGHAND: u64 = 0x800;
const CLONE_PIDFD: u64 = 0x1000;
const CLONE_VFORK: u64 = 0x4000;
const CLONE_THREAD: u64 = 0x10000;
const CLONE_SYSVSEM: u64 = 0x40000;
const CLONE_SETTLS: u64 = 0x80000;
const CLONE_PARENT_SETTID: u64 = 0x100000;
const CLONE_CHILD_CLEARTID: u64 = 0x200000;
const CLONE_DETACHED: u64 = 0x400000;
const CLONE_CHILD_SETTID: u64 = 0x1000000;

/// The flags every thread clone has.
const THREAD_FLAGS: u64 = CLONE_VM | CLONE_FS | CLONE_FILES | CLONE_SIGHAND | CLONE_THREAD;
/// The flags a thread clone may add.
const THREAD_OPTIONAL: u64 = CLONE_SYSVSEM
    | CLONE_SETTLS
    | CLONE_PARENT_SETTID
    | CLONE_CHILD_CLEARTID
    | CLONE_CHILD_SETTID
    | CLONE_DETACHED;

/// A new thread to start, as `clone`/`clone3` asked (the engine starts it and answers
/// the call with its tid).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CloneRequest {
    pub flags: u64,
    /// The new thread's stack pointer (0: the parent's).
    pub stack: u64,
    /// Where `CLONE_PARENT_SETTID` stores the tid.
    pub parent_tid: u64,
    /// The new thread's `tp` with `CLONE_SETTLS`.
    pub tls: u64,
    /// `CLONE_CHILD_SETTID` / `CLONE_CHILD_CLEARTID` address.
    pub child_tid: u64,
}

impl CloneRequest {
    pub fn settls(&self) -> bool {
        self.flags & CLONE_SETTLS != 0
    }
    pub fn parent_settid(&self) -> bool {
        self.flags & CLONE_PARENT_SETTID != 0
    }
    pub fn child_settid(&self) -> bool {
        self.flags & CLONE_CHILD_SETTID != 0
    }
    pub fn child_cleartid(&self) -> bool {
        self.flags & CLONE_CHILD_CLEARTID != 0
    }
}

// Futex commands and flags (the same on every Linux architecture).
const FUTEX_WAIT: u64 = 0;
const FUTEX_WAKE: u64 = 1;
const FUTEX_REQUEUE: u64 = 3;
const FUTEX_CMP_REQUEUE: u64 = 4;
const FUTEX_WAKE_OP: u64 = 5;
const FUTEX_LOCK_PI: u64 = 6;
const FUTEX_UNLOCK_PI: u64 = 7;
const FUTEX_TRYLOCK_PI: u64 = 8;
const FUTEX_WAIT_BITSET: u64 = 9;
const FUTEX_WAKE_BITSET: u64 = 10;
const FUTEX_WAIT_REQUEUE_PI: u64 = 11;
const FUTEX_CMP_REQUEUE_PI: u64 = 12;
const FUTEX_LOCK_PI2: u64 = 13;
const FUTEX_PRIVATE_FLAG: u64 = 128;
const FUTEX_CLOCK_REALTIME: u64 = 256;

// Robust-futex word bits.
const FUTEX_WAITERS: u32 = 0x8000_0000;
const FUTEX_OWNER_DIED: u32 = 0x4000_0000;
const FUTEX_TID_MASK: u32 = 0x3fff_ffff;
/// Most robust-list entries walked at a thread's end (Linux's `ROBUST_LIST_LIMIT`).
const ROBUST_LIST_LIMIT: usize = 2048;

impl Syscalls {
    /// `clone(flags, stack, parent_tid, tls, child_tid)` (riscv64 argument order).
    pub(super) fn clone_thread(&mut self, a: [u64; 6]) -> Result<i64, SyscallExit> {
        let req = CloneRequest {
            flags: a[0],
            stack: a[1],
            parent_tid: a[2],
            tls: a[3],
            child_tid: a[4],
        };
        match self.check_clone(req) {
            Ok(()) => Err(SyscallExit::Clone(req)),
            Err(r) => Ok(r),
        }
    }

    /// `clone3(args, size)`.
    pub(super) fn clone3(
        &mut self,
        args: u64,
        size: u64,
        mem: &GuestMemory,
    ) -> Result<i64, SyscallExit> {
        // struct clone_args: flags, pidfd, child_tid, parent_tid, exit_signal, stack,
        // stack_size, tls, set_tid, set_tid_size, cgroup (u64 each); version 0 is the
        // first eight.
        const VER0: u64 = 64;
        if !(VER0..=4096).contains(&size) {
            return Ok(EINVAL);
        }
        let mut w = [0u64; 11];
        for (i, v) in w.iter_mut().enumerate().take((size / 8).min(11) as usize) {
            match mem.load64(args.wrapping_add(8 * i as u64)) {
                Ok(x) => *v = x,
                Err(_) => return Ok(EFAULT),
            }
        }
        let [
            flags,
            _pidfd,
            child_tid,
            parent_tid,
            exit_signal,
            stack,
            stack_size,
            tls,
            set_tid,
            set_tid_size,
            cgroup,
        ] = w;
        if exit_signal != 0 || set_tid != 0 || set_tid_size != 0 || cgroup != 0 {
            return Ok(self.unsupported_clone("clone3 with an exit signal, set_tid or a cgroup"));
        }
        if (stack == 0) != (stack_size == 0) {
            return Ok(EINVAL);
        }
        let req = CloneRequest {
            flags,
            stack: stack.wrapping_add(stack_size),
            parent_tid,
            tls,
            child_tid,
        };
        match self.check_clone(req) {
            Ok(()) => Err(SyscallExit::Clone(req)),
            Err(r) => Ok(r),
        }
    }

    /// Refuses what is not a thread clone: EINVAL for sets Linux rejects, ENOSYS
    /// (one warning) for new processes and options vmjit does not implement.
    fn check_clone(&mut self, req: CloneRequest) -> Result<(), i64> {
        let f = req.flags;
        // Linux's own consistency rules.
        if f & CLONE_THREAD != 0 && f & CLONE_SIGHAND == 0
            || f & CLONE_SIGHAND != 0 && f & CLONE_VM == 0
        {
            return Err(EINVAL);
        }
        if f & CLONE_VM == 0 || f & CLONE_VFORK != 0 || f & CLONE_THREAD == 0 {
            // A new process (fork, vfork, posix_spawn): not yet.
            return Err(self.unsupported_clone(
                "a new process (fork, vfork or posix_spawn); vmjit runs threads only",
            ));
        }
        if f & THREAD_FLAGS != THREAD_FLAGS
            || f & !(THREAD_FLAGS | THREAD_OPTIONAL) != 0
            || f & CLONE_PIDFD != 0
        {
            self.warn_once(
                0x1_0000_0000 | f,
                &format!("vmjit: warning: clone flags {f:#x} are not supported; EINVAL\n"),
            );
            return Err(EINVAL);
        }
        Ok(())
    }

    fn unsupported_clone(&mut self, what: &str) -> i64 {
        self.warn_once(
            0x2_0000_0000,
            &format!("vmjit: warning: clone of {what}: ENOSYS\n"),
        );
        e(libc::ENOSYS)
    }

    /// `futex(uaddr, op, val, timeout/val2, uaddr2, val3)`, on the host futex of the
    /// guest word.
    pub(super) fn futex(&mut self, a: [u64; 6], mem: &GuestMemory) -> Result<i64, SyscallExit> {
        let [uaddr, op, val, arg4, uaddr2, val3] = a;
        let cmd = op & !(FUTEX_PRIVATE_FLAG | FUTEX_CLOCK_REALTIME);
        if op & FUTEX_CLOCK_REALTIME != 0
            && !matches!(
                cmd,
                FUTEX_WAIT | FUTEX_WAIT_BITSET | FUTEX_WAIT_REQUEUE_PI | FUTEX_LOCK_PI2
            )
        {
            return Ok(e(libc::ENOSYS));
        }
        let (timed, second) = match cmd {
            FUTEX_WAIT | FUTEX_WAIT_BITSET | FUTEX_LOCK_PI | FUTEX_LOCK_PI2 => (true, None),
            FUTEX_WAIT_REQUEUE_PI => (true, Some(PERM_R)),
            FUTEX_WAKE | FUTEX_WAKE_BITSET | FUTEX_UNLOCK_PI | FUTEX_TRYLOCK_PI => (false, None),
            FUTEX_REQUEUE | FUTEX_CMP_REQUEUE | FUTEX_CMP_REQUEUE_PI => (false, Some(PERM_R)),
            FUTEX_WAKE_OP => (false, Some(PERM_R | PERM_W)),
            _ => {
                self.warn_unimplemented_op(98, cmd);
                return Ok(e(libc::ENOSYS));
            }
        };
        let pi = matches!(
            cmd,
            FUTEX_LOCK_PI
                | FUTEX_LOCK_PI2
                | FUTEX_UNLOCK_PI
                | FUTEX_TRYLOCK_PI
                | FUTEX_WAIT_REQUEUE_PI
                | FUTEX_CMP_REQUEUE_PI
        );
        // A PI futex word holds the owner's tid, which the kernel compares with its
        // own: only right when this thread's guest tid is its host tid (always, except
        // for the first thread of a VM run off the host's main thread).
        if pi && self.thread.tid != host::gettid() {
            self.warn_unimplemented_op(98, cmd);
            return Ok(e(libc::ENOSYS));
        }
        let word = |addr: u64, need: u8| -> Result<*mut u32, i64> {
            if !addr.is_multiple_of(4) {
                return Err(EINVAL);
            }
            mem.host_range(addr, 4, need)
                .map(|r| r.ptr().cast::<u32>())
                .map_err(|_| EFAULT)
        };
        let p1 = match word(uaddr, PERM_R) {
            Ok(p) => p,
            Err(r) => return Ok(r),
        };
        let p2 = match second {
            Some(need) => match word(uaddr2, need) {
                Ok(p) => p,
                Err(r) => return Ok(r),
            },
            None => std::ptr::null_mut(),
        };
        let ts;
        let arg4 = if timed && arg4 != 0 {
            match (mem.load64(arg4), mem.load64(arg4.wrapping_add(8))) {
                (Ok(s), Ok(ns)) => {
                    ts = libc::timespec {
                        tv_sec: s as i64,
                        tv_nsec: ns as i64,
                    };
                    &ts as *const libc::timespec as u64
                }
                _ => return Ok(EFAULT),
            }
        } else if timed {
            0
        } else {
            // val2 for the requeue and wake-op commands: an integer.
            arg4
        };
        if matches!(cmd, FUTEX_WAIT | FUTEX_WAIT_BITSET)
            && arg4 == 0
            && self.proc.group.live() == 1
            && !self.proc.group.any_handler()
            && !self.proc.group.timers().any_armed()
            && mem.load32(uaddr).is_ok_and(|v| v == val as u32)
        {
            // The only thread, waiting with no timeout for a word only it could change,
            // and no handler or timer that could run code to change it: it would hang
            // until killed.
            return Err(SyscallExit::Deadlock { uaddr });
        }
        Ok(host::futex(
            p1,
            op as i32,
            val as u32,
            arg4,
            p2,
            val3 as u32,
        ))
    }

    /// What a thread's end does to guest memory: the robust list's futexes this thread
    /// held are marked `FUTEX_OWNER_DIED` (and a waiter woken), then the
    /// clear-child-tid word is zeroed and woken (what `pthread_join` waits on).
    pub(crate) fn thread_exit_cleanup(&mut self, mem: &GuestMemory) {
        let tid = self.thread.tid as u32;
        let (head, len) = self.thread.robust_list;
        if head != 0 && len == 24 {
            walk_robust_list(mem, head, tid);
        }
        let ctid = self.thread.clear_child_tid;
        if ctid != 0
            && ctid.is_multiple_of(4)
            && mem.write_bytes(ctid, &0u32.to_le_bytes()).is_ok()
            && let Ok(r) = mem.host_range(ctid, 4, PERM_W)
        {
            host::futex(
                r.ptr().cast(),
                FUTEX_WAKE as i32,
                1,
                0,
                std::ptr::null_mut(),
                0,
            );
        }
    }

    fn warn_unimplemented_op(&mut self, n: u64, op: u64) {
        self.warn_once(
            (n << 32) | op,
            &format!("vmjit: warning: unimplemented futex operation {op}\n"),
        );
    }
}

/// Marks every robust futex `tid` holds (the list at `head`, a `struct
/// robust_list_head`: next, futex_offset, list_op_pending) as its owner having died,
/// as Linux's `exit_robust_list` does.
fn walk_robust_list(mem: &GuestMemory, head: u64, tid: u32) {
    let (Ok(first), Ok(offset), Ok(pending)) = (
        mem.load64(head),
        mem.load64(head.wrapping_add(8)),
        mem.load64(head.wrapping_add(16)),
    ) else {
        return;
    };
    let handle = |entry: u64| {
        // Bit 0 of an entry marks a PI futex; the word is at entry + futex_offset.
        let word = (entry & !1).wrapping_add(offset);
        for _ in 0..8 {
            let Ok(v) = mem.load32(word) else {
                return;
            };
            if v & FUTEX_TID_MASK != tid {
                return;
            }
            let new = (v & FUTEX_WAITERS) | FUTEX_OWNER_DIED;
            match mem.cas32(word, v, new) {
                Ok(true) => {
                    if v & FUTEX_WAITERS != 0
                        && let Ok(r) = mem.host_range(word, 4, PERM_W)
                    {
                        host::futex(
                            r.ptr().cast(),
                            FUTEX_WAKE as i32,
                            1,
                            0,
                            std::ptr::null_mut(),
                            0,
                        );
                    }
                    return;
                }
                Ok(false) => continue,
                Err(_) => return,
            }
        }
    };
    let mut entry = first;
    let mut n = 0;
    while entry != head && entry != 0 && n < ROBUST_LIST_LIMIT {
        let next = mem.load64(entry & !1).unwrap_or(head);
        if entry != pending {
            handle(entry);
        }
        entry = next;
        n += 1;
    }
    if pending != 0 {
        handle(pending);
    }
}
