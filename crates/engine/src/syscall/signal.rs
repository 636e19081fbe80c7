//! Signal system calls: dispositions (`rt_sigaction`), masks (`rt_sigprocmask`), the
//! alternate stack, sending (`kill`, `tkill`, `tgkill`, `rt_sigqueueinfo`,
//! `rt_tgsigqueueinfo`), waiting (`rt_sigsuspend`, `rt_sigtimedwait`), `rt_sigpending`,
//! `rt_sigreturn`, interval timers (`setitimer`, `getitimer`) and POSIX timers
//! (`timer_create` and its family).
//!
//! Queues, dispositions and timers live in the process's [`crate::threads::ThreadGroup`];
//! the delivery itself (choosing a signal, writing the frame, restarting an interrupted
//! call) is `crate::deliver`'s, at the thread's dispatch points.
//!
//! **Invariants.**
//! - A signal to the guest's own process or threads never goes through the host: it
//!   is queued in the group. Only a signal to another process (a child after `fork`, the
//!   parent, a process group) is a host `kill`; a vmjit process receiving one forwards
//!   it to its guest (see `crate::host::forwarded_signals`).
//! - SIGKILL and SIGSTOP are never blocked, caught or ignored.
//! - The mask a handler's frame saves is the one the thread had before the signal
//!   (before `rt_sigsuspend` swapped in its temporary mask).

use std::time::{Duration, Instant};

use rv64::{Cpu, Memory};

use super::{EFAULT, EINVAL, SyscallExit, Syscalls, e};
use crate::host;
use crate::memory::GuestMemory;
use crate::signals::{self, AltStack, SigAction, SigInfo};
use crate::timers::Notify;

/// `SS_AUTODISARM`: accepted in `ss_flags` (the stack is disarmed while a handler runs
/// on it; vmjit records the flag and reports it back).
const SS_AUTODISARM: u32 = 1 << 31;

fn valid_signal(sig: u64) -> Option<i32> {
    (1..=signals::NSIG as u64)
        .contains(&sig)
        .then_some(sig as i32)
}

/// Reads a `struct timespec` (two 64-bit words); `Err` is the call's result.
fn read_ts(mem: &GuestMemory, addr: u64) -> Result<Duration, i64> {
    let (Ok(s), Ok(ns)) = (mem.load64(addr), mem.load64(addr.wrapping_add(8))) else {
        return Err(EFAULT);
    };
    if (s as i64) < 0 || ns >= 1_000_000_000 {
        return Err(EINVAL);
    }
    Ok(Duration::new(s, ns as u32))
}

/// A `struct timeval` (seconds, microseconds).
fn read_tv(mem: &GuestMemory, addr: u64) -> Result<Duration, i64> {
    let (Ok(s), Ok(us)) = (mem.load64(addr), mem.load64(addr.wrapping_add(8))) else {
        return Err(EFAULT);
    };
    if (s as i64) < 0 || us >= 1_000_000 {
        return Err(EINVAL);
    }
    Ok(Duration::new(s, us as u32 * 1000))
}

fn ts_bytes(d: Duration) -> [u8; 16] {
    let mut b = [0u8; 16];
    b[..8].copy_from_slice(&d.as_secs().to_le_bytes());
    b[8..].copy_from_slice(&u64::from(d.subsec_nanos()).to_le_bytes());
    b
}

/// A timeval, rounded up to the microsecond (a timer with time left never reads 0).
fn tv_bytes(d: Duration) -> [u8; 16] {
    let us = d.as_nanos().div_ceil(1000);
    let mut b = [0u8; 16];
    b[..8].copy_from_slice(&((us / 1_000_000) as u64).to_le_bytes());
    b[8..].copy_from_slice(&((us % 1_000_000) as u64).to_le_bytes());
    b
}

impl Syscalls {
    /// `rt_sigaction(sig, act, oact, sigsetsize)`.
    pub(super) fn rt_sigaction(
        &mut self,
        sig: u64,
        act: u64,
        oact: u64,
        size: u64,
        mem: &GuestMemory,
    ) -> i64 {
        let Some(sig) = valid_signal(sig).filter(|_| size == 8) else {
            return EINVAL;
        };
        let new = if act != 0 {
            let mut b = [0u8; 24];
            if mem.read_bytes(act, &mut b).is_err() {
                return EFAULT;
            }
            Some(SigAction::from_bytes(&b))
        } else {
            None
        };
        if new.is_some() && (sig == signals::SIGKILL || sig == signals::SIGSTOP) {
            return EINVAL;
        }
        let group = self.group();
        let old = group.action(sig);
        if let Some(mut n) = new {
            n.mask &= !signals::UNBLOCKABLE;
            group.set_action(sig, n);
        }
        if oact != 0 && mem.write_bytes(oact, &old.to_bytes()).is_err() {
            return EFAULT;
        }
        0
    }

    /// `rt_sigprocmask(how, set, oset, sigsetsize)`.
    pub(super) fn rt_sigprocmask(
        &mut self,
        how: u64,
        set: u64,
        oset: u64,
        size: u64,
        mem: &GuestMemory,
    ) -> i64 {
        const SIG_BLOCK: u64 = 0;
        const SIG_UNBLOCK: u64 = 1;
        const SIG_SETMASK: u64 = 2;
        if size != 8 {
            return EINVAL;
        }
        let old = self.thread.handle.mask();
        if set != 0 {
            let Ok(v) = mem.load64(set) else {
                return EFAULT;
            };
            let new = match how {
                SIG_BLOCK => old | v,
                SIG_UNBLOCK => old & !v,
                SIG_SETMASK => v,
                _ => return EINVAL,
            };
            self.group().set_mask(&self.thread.handle, new);
        }
        if oset != 0 && mem.write_bytes(oset, &old.to_le_bytes()).is_err() {
            return EFAULT;
        }
        0
    }

    /// `sigaltstack(ss, old_ss)`; `sp` is the thread's stack pointer at the call.
    pub(super) fn sigaltstack(&mut self, new: u64, old: u64, mem: &GuestMemory) -> i64 {
        let sp = self.thread.sp;
        let cur = self.thread.altstack;
        if new != 0 {
            let mut b = [0u8; 24];
            if mem.read_bytes(new, &mut b).is_err() {
                return EFAULT;
            }
            let mut ss = AltStack::from_bytes(&b);
            if cur.contains(sp) {
                return e(libc::EPERM);
            }
            let mode = ss.flags & !SS_AUTODISARM;
            if mode != 0 && mode != signals::SS_ONSTACK && mode != signals::SS_DISABLE {
                return EINVAL;
            }
            if mode == signals::SS_DISABLE {
                ss = AltStack::DISABLED;
            } else {
                if ss.size < signals::MINSIGSTKSZ {
                    return e(libc::ENOMEM);
                }
                ss.flags &= SS_AUTODISARM;
            }
            if old != 0 && mem.write_bytes(old, &cur.reported(sp).to_bytes()).is_err() {
                return EFAULT;
            }
            self.thread.altstack = ss;
            return 0;
        }
        if old != 0 && mem.write_bytes(old, &cur.reported(sp).to_bytes()).is_err() {
            return EFAULT;
        }
        0
    }

    /// `rt_sigpending(set, sigsetsize)`: the pending signals that are blocked.
    pub(super) fn rt_sigpending(&mut self, set: u64, size: u64, mem: &GuestMemory) -> i64 {
        if size > 8 {
            return EINVAL;
        }
        let h = &self.thread.handle;
        let pending = self.group().pending_for(h) & h.mask();
        let b = pending.to_le_bytes();
        Self::put(mem, set, &b[..size as usize])
    }

    /// True when this thread has a signal to take now (or the process is ending): what
    /// ends a wait, and what tells an interrupted host call from a spurious interrupt.
    pub(crate) fn signal_pending(&self) -> bool {
        let h = &self.thread.handle;
        let g = self.group();
        g.exiting() || g.pending_for(h) & !h.mask() != 0
    }

    /// Runs a blocking call under the temporary signal mask at guest address `mask`
    /// (none when 0), as ppoll and pselect6 do: a signal the mask lets in interrupts the
    /// call (one already pending gives EINTR at once), and its handler's frame saves
    /// the mask from before the call; otherwise the old mask is back on return.
    pub(super) fn with_temp_mask(
        &mut self,
        mask: u64,
        size: u64,
        mem: &GuestMemory,
        call: impl FnOnce(&mut Self) -> i64,
    ) -> i64 {
        if mask == 0 {
            return call(self);
        }
        if size != 8 {
            return EINVAL;
        }
        let Ok(tmp) = mem.load64(mask) else {
            return EFAULT;
        };
        let h = std::sync::Arc::clone(&self.thread.handle);
        let old = h.mask();
        self.group().set_mask(&h, tmp);
        let r = if self.signal_pending() {
            e(libc::EINTR)
        } else {
            call(self)
        };
        if r == e(libc::EINTR) && self.signal_pending() {
            self.thread.saved_mask = Some(old);
        } else {
            self.group().set_mask(&h, old);
        }
        r
    }

    /// `rt_sigsuspend(mask, sigsetsize)`: waits with `mask` until a signal is taken;
    /// always EINTR (the handler's frame saves the mask from before the call).
    pub(super) fn rt_sigsuspend(&mut self, mask: u64, size: u64, mem: &GuestMemory) -> i64 {
        if size != 8 {
            return EINVAL;
        }
        let Ok(tmp) = mem.load64(mask) else {
            return EFAULT;
        };
        let h = std::sync::Arc::clone(&self.thread.handle);
        let old = h.mask();
        self.group().set_mask(&h, tmp);
        loop {
            let seq = h.wake_seq();
            if self.signal_pending() {
                break;
            }
            h.wait_wake(seq, None);
        }
        self.thread.saved_mask = Some(old);
        e(libc::EINTR)
    }

    /// `rt_sigtimedwait(set, info, timeout, sigsetsize)`.
    pub(super) fn rt_sigtimedwait(
        &mut self,
        set: u64,
        info: u64,
        timeout: u64,
        size: u64,
        mem: &GuestMemory,
    ) -> i64 {
        if size != 8 {
            return EINVAL;
        }
        let Ok(set) = mem.load64(set) else {
            return EFAULT;
        };
        let set = set & !signals::UNBLOCKABLE;
        let deadline = if timeout != 0 {
            match read_ts(mem, timeout) {
                Ok(d) => Some(Instant::now() + d),
                Err(r) => return r,
            }
        } else {
            None
        };
        let h = std::sync::Arc::clone(&self.thread.handle);
        let group = std::sync::Arc::clone(self.group());
        loop {
            let seq = h.wake_seq();
            if let Some(si) = group.take_signal_in(&h, set) {
                if info != 0 && mem.write_bytes(info, &si.bytes).is_err() {
                    return EFAULT;
                }
                return i64::from(si.signo());
            }
            // Another signal that is not blocked interrupts the wait (and is delivered).
            if self.signal_pending() {
                return e(libc::EINTR);
            }
            let left = match deadline {
                Some(d) => {
                    let now = Instant::now();
                    if now >= d {
                        return e(libc::EAGAIN);
                    }
                    Some(d - now)
                }
                None => None,
            };
            h.wait_wake(seq, left);
        }
    }

    /// `rt_sigreturn`: restores the registers, mask and alternate stack a handler's
    /// frame saved. A frame that cannot be read kills the process with SIGSEGV, as in
    /// Linux.
    pub(super) fn rt_sigreturn(&mut self, cpu: &mut Cpu, mem: &GuestMemory) -> Option<SyscallExit> {
        match signals::leave_handler(cpu, mem) {
            Ok((mask, alt)) => {
                self.group().set_mask(&self.thread.handle, mask);
                // As Linux's restore_altstack: a frame's stack that is not valid now
                // (the thread is on it) is left alone.
                if !self.thread.altstack.contains(cpu.x[2]) {
                    let mode = alt.flags & !(SS_AUTODISARM | signals::SS_ONSTACK);
                    if mode == signals::SS_DISABLE {
                        self.thread.altstack = AltStack::DISABLED;
                    } else if mode == 0 && alt.size >= signals::MINSIGSTKSZ {
                        self.thread.altstack = AltStack {
                            flags: alt.flags & SS_AUTODISARM,
                            ..alt
                        };
                    }
                }
                None
            }
            Err(_) => Some(SyscallExit::Signal(signals::SIGSEGV)),
        }
    }

    fn uid() -> u32 {
        host::int_call(libc::SYS_getuid, [0; 6]) as u32
    }

    /// `kill(pid, sig)`.
    pub(super) fn kill(&mut self, pid: u64, sig: u64) -> i64 {
        let pid = pid as i32;
        if sig > signals::NSIG as u64 {
            return EINVAL;
        }
        let sig = sig as i32;
        let me = self.proc.pid;
        if i64::from(pid) == me {
            if sig != 0 {
                let info = SigInfo::user(sig, signals::SI_USER, me, Self::uid());
                self.group().send_process(info, Some(me));
            }
            return 0;
        }
        // Another process, a process group, or every process (-1): the host's kill. A
        // group that includes vmjit itself reaches the guest through forwarding.
        host::int_call(libc::SYS_kill, [pid as i64 as u64, sig as u64, 0, 0, 0, 0])
    }

    /// `tgkill(tgid, tid, sig)`; `tkill(tid, sig)` is `tgid` `None`.
    pub(super) fn tgkill(&mut self, tgid: Option<u64>, tid: u64, sig: u64) -> i64 {
        let (tid, tgid) = (tid as i64, tgid.map(|g| g as i64));
        if tid <= 0 || tgid.is_some_and(|g| g <= 0) || sig > signals::NSIG as u64 {
            return EINVAL;
        }
        let sig = sig as i32;
        let me = self.proc.pid;
        let group = std::sync::Arc::clone(self.group());
        if tgid.is_none_or(|g| g == me) && group.has_thread(tid) {
            if sig != 0 {
                let info = SigInfo::user(sig, signals::SI_TKILL, me, Self::uid());
                group.send_thread(tid, info);
            }
            return 0;
        }
        match tgid {
            // A thread of another process: the host delivers it to that process (its
            // vmjit forwards process-directed signals only).
            Some(g) if g != me => {
                let r = host::int_call(libc::SYS_tgkill, [g as u64, tid as u64, 0, 0, 0, 0]);
                if r < 0 || sig == 0 {
                    return r;
                }
                host::int_call(libc::SYS_kill, [g as u64, sig as u64, 0, 0, 0, 0])
            }
            _ => e(libc::ESRCH),
        }
    }

    /// `rt_sigqueueinfo(tgid, sig, info)` (`tid` `None`) and `rt_tgsigqueueinfo`.
    pub(super) fn sigqueueinfo(
        &mut self,
        tgid: u64,
        tid: Option<u64>,
        sig: u64,
        uinfo: u64,
        mem: &GuestMemory,
    ) -> i64 {
        if sig > signals::NSIG as u64 {
            return EINVAL;
        }
        let sig = sig as i32;
        let mut raw = [0u8; 128];
        if mem.read_bytes(uinfo, &mut raw).is_err() {
            return EFAULT;
        }
        let (tgid, me) = (tgid as i64, self.proc.pid);
        let info = SigInfo::from_guest(sig, raw);
        // Linux: a process may not forge kernel or kill() codes for another one.
        if (info.code() >= 0 || info.code() == signals::SI_TKILL) && tgid != me {
            return e(libc::EPERM);
        }
        let group = std::sync::Arc::clone(self.group());
        if tgid == me {
            match tid {
                Some(t) if !group.has_thread(t as i64) => return e(libc::ESRCH),
                Some(t) if sig != 0 => {
                    group.send_thread(t as i64, info);
                }
                None if sig != 0 => group.send_process(info, Some(me)),
                _ => {}
            }
            return 0;
        }
        // Another process: the host's call, with the same 128-byte siginfo.
        let Ok(h) = mem.host_range(uinfo, 128, crate::memory::PERM_R) else {
            return EFAULT;
        };
        host::int_call(
            libc::SYS_rt_sigqueueinfo,
            [tgid as u64, sig as u64, h.ptr() as u64, 0, 0, 0],
        )
    }

    /// `getitimer(which, curr)`.
    pub(super) fn getitimer(&mut self, which: u64, curr: u64, mem: &GuestMemory) -> i64 {
        let Some((left, interval)) = self.group().timers().get_itimer(which as usize) else {
            return EINVAL;
        };
        let mut b = [0u8; 32];
        b[..16].copy_from_slice(&tv_bytes(interval));
        b[16..].copy_from_slice(&tv_bytes(left));
        Self::put(mem, curr, &b)
    }

    /// `setitimer(which, new, old)` (`struct itimerval`: interval, then value).
    pub(super) fn setitimer(&mut self, which: u64, new: u64, old: u64, mem: &GuestMemory) -> i64 {
        if which > 2 {
            return EINVAL;
        }
        let (interval, value) = if new != 0 {
            match (read_tv(mem, new), read_tv(mem, new.wrapping_add(16))) {
                (Ok(i), Ok(v)) => (i, v),
                (Err(r), _) | (_, Err(r)) => return r,
            }
        } else {
            (Duration::ZERO, Duration::ZERO)
        };
        let group = std::sync::Arc::clone(self.group());
        let Some((oleft, ointerval)) = group.timers().set_itimer(which as usize, value, interval)
        else {
            return EINVAL;
        };
        group.poke_service();
        if old != 0 {
            let mut b = [0u8; 32];
            b[..16].copy_from_slice(&tv_bytes(ointerval));
            b[16..].copy_from_slice(&tv_bytes(oleft));
            return Self::put(mem, old, &b);
        }
        0
    }

    /// `timer_create(clockid, sevp, timerid)`.
    pub(super) fn timer_create(
        &mut self,
        clock: u64,
        sevp: u64,
        idp: u64,
        mem: &GuestMemory,
    ) -> i64 {
        const SIGEV_SIGNAL: u32 = 0;
        const SIGEV_NONE: u32 = 1;
        const SIGEV_THREAD_ID: u32 = 4;
        let clock = clock as i32;
        let cpu = match clock {
            libc::CLOCK_PROCESS_CPUTIME_ID | libc::CLOCK_THREAD_CPUTIME_ID => true,
            libc::CLOCK_REALTIME
            | libc::CLOCK_MONOTONIC
            | libc::CLOCK_BOOTTIME
            | libc::CLOCK_REALTIME_ALARM
            | libc::CLOCK_BOOTTIME_ALARM
            | libc::CLOCK_TAI => false,
            _ => return EINVAL,
        };
        let notify = if sevp == 0 {
            Notify::Process {
                signo: signals::SIGALRM,
                value: u64::MAX,
            }
        } else {
            // struct sigevent: sigev_value, sigev_signo, sigev_notify, then the union
            // whose first int is the target thread's id.
            let mut b = [0u8; 20];
            if mem.read_bytes(sevp, &mut b).is_err() {
                return EFAULT;
            }
            let value = u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]);
            let signo = i32::from_le_bytes([b[8], b[9], b[10], b[11]]);
            let how = u32::from_le_bytes([b[12], b[13], b[14], b[15]]);
            let tid = i32::from_le_bytes([b[16], b[17], b[18], b[19]]);
            let sig_ok = (1..=signals::NSIG).contains(&signo);
            match how {
                SIGEV_NONE => Notify::None,
                SIGEV_SIGNAL if sig_ok => Notify::Process { signo, value },
                SIGEV_THREAD_ID if sig_ok && self.group().has_thread(i64::from(tid)) => {
                    Notify::Thread {
                        tid: i64::from(tid),
                        signo,
                        value,
                    }
                }
                _ => return EINVAL,
            }
        };
        let group = std::sync::Arc::clone(self.group());
        let Some(id) = group.timers().create(clock, cpu, notify) else {
            return e(libc::EAGAIN);
        };
        if mem.write_bytes(idp, &id.to_le_bytes()).is_err() {
            group.timers().delete(id);
            return EFAULT;
        }
        0
    }

    /// `timer_settime(id, flags, new, old)` (`struct itimerspec`: interval, value).
    pub(super) fn timer_settime(
        &mut self,
        id: u64,
        flags: u64,
        new: u64,
        old: u64,
        mem: &GuestMemory,
    ) -> i64 {
        const TIMER_ABSTIME: u64 = 1;
        let (interval, mut value) = match (read_ts(mem, new), read_ts(mem, new.wrapping_add(16))) {
            (Ok(i), Ok(v)) => (i, v),
            (Err(r), _) | (_, Err(r)) => return r,
        };
        let group = std::sync::Arc::clone(self.group());
        let id = id as i32;
        let Some(clock) = group.timers().clock_of(id) else {
            return EINVAL;
        };
        if flags & TIMER_ABSTIME != 0 && !value.is_zero() {
            // Absolute: the time left on the timer's own clock (a moment already past
            // expires at once).
            let now = match host::clock(false, clock) {
                Ok((s, ns)) => Duration::new(s.max(0) as u64, ns.clamp(0, 999_999_999) as u32),
                Err(r) => return r,
            };
            value = value.saturating_sub(now).max(Duration::from_nanos(1));
        }
        let Some((oleft, ointerval)) = group.timers().settime(id, value, interval) else {
            return EINVAL;
        };
        group.poke_service();
        if old != 0 {
            let mut b = [0u8; 32];
            b[..16].copy_from_slice(&ts_bytes(ointerval));
            b[16..].copy_from_slice(&ts_bytes(oleft));
            return Self::put(mem, old, &b);
        }
        0
    }

    /// `timer_gettime(id, curr)`.
    pub(super) fn timer_gettime(&mut self, id: u64, curr: u64, mem: &GuestMemory) -> i64 {
        let Some((left, interval)) = self.group().timers().gettime(id as i32) else {
            return EINVAL;
        };
        let mut b = [0u8; 32];
        b[..16].copy_from_slice(&ts_bytes(interval));
        b[16..].copy_from_slice(&ts_bytes(left));
        Self::put(mem, curr, &b)
    }

    /// `timer_getoverrun(id)`.
    pub(super) fn timer_getoverrun(&mut self, id: u64) -> i64 {
        self.group()
            .timers()
            .overrun(id as i32)
            .map_or(EINVAL, i64::from)
    }

    /// `timer_delete(id)`.
    pub(super) fn timer_delete(&mut self, id: u64) -> i64 {
        if self.group().timers().delete(id as i32) {
            0
        } else {
            EINVAL
        }
    }
}
