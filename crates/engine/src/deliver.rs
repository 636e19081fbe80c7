//! Signal delivery: what a thread does with the signals it can take, at its dispatch
//! points (see `crate::dispatch`): run the default action (terminate the process,
//! stop it, nothing), or enter the guest's handler on a frame (`crate::signals`).
//! Synchronous signals (a fault, an illegal instruction, `ebreak`) are delivered here
//! too, on the instruction that raised them.
//!
//! **Invariants.**
//! - Signals are taken only where the guest's state is exact: between blocks (the
//!   dispatch loop), after a system call, or at a faulting instruction (whose effects
//!   never happened), so the frame saves the state the guest would see under Linux.
//! - Every signal a thread can take is taken at once, as Linux does on a return to user
//!   mode: each handler's frame goes on top of the previous one, so the last signal
//!   taken runs first, and each handler's `sa_mask` holds back what it blocks.
//! - An interrupted system call (EINTR from the host: vmjit's interrupting signal) is
//!   restarted transparently unless a handler runs; with a handler, it is restarted
//!   only when it is restartable and the handler has `SA_RESTART`, as Linux's
//!   `-ERESTARTSYS` rules say, and otherwise returns EINTR.
//! - A synchronous signal that is blocked, ignored or has no handler kills the
//!   process (Linux forces it).

use std::sync::Arc;

use rv64::{AccessKind, MemFault};

use crate::memory::{GuestMemory, PERM_R, PERM_W, PERM_X};
use crate::signals::{self, Default, SigAction, SigInfo};
use crate::syscall::nr;
use crate::threads::GuestThread;
use crate::vm::GuestExit;

/// A system call that returned EINTR, to restart or not.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Interrupted {
    pub(crate) nr: u64,
    /// The ecall's address.
    pub(crate) pc: u64,
    /// `a0` before the call (its result overwrote it).
    pub(crate) a0: u64,
}

/// Linux's restart rule for a call interrupted by a signal.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Restart {
    /// `-ERESTARTSYS`: restarted when no handler runs or the handler has SA_RESTART.
    Sys,
    /// `-ERESTARTNOHAND` / `-ERESTART_RESTARTBLOCK`: restarted only when no handler
    /// runs (sleeps, waits with a timeout, poll, select).
    NoHandler,
    /// EINTR is the call's own answer (sigsuspend, sigtimedwait): never restarted.
    Never,
}

fn restart_rule(nr: u64) -> Restart {
    match nr {
        nr::RT_SIGSUSPEND | nr::RT_SIGTIMEDWAIT | nr::RT_SIGRETURN => Restart::Never,
        // Calls signal(7) lists as never restarted after a handler.
        nr::NANOSLEEP | nr::CLOCK_NANOSLEEP | nr::PPOLL | 72 /* pselect6 */
        | 22 /* epoll_pwait */ | 441 /* epoll_pwait2 */ | 4 /* io_getevents */
        | 188 /* msgrcv */ | 189 /* msgsnd */ | 193 /* semtimedop */ => Restart::NoHandler,
        _ => Restart::Sys,
    }
}

/// What came of a synchronous signal.
pub(crate) enum Sync {
    /// Its handler will run (the frame is built).
    Handled,
    /// No handler can take it: the process dies of it.
    Fatal,
}

/// The signal a memory fault raises: SIGSEGV (`SEGV_MAPERR` on an unmapped page,
/// `SEGV_ACCERR` without the permission) or SIGBUS (`BUS_ADRERR` on a page of a file
/// mapping past the file's end; `BUS_ADRALN`: the page allows the access, so it was a
/// misaligned atomic or fetch).
pub(crate) fn fault_signal(mem: &GuestMemory, fault: &MemFault) -> SigInfo {
    let need = match fault.kind {
        AccessKind::Read => PERM_R,
        AccessKind::Write => PERM_W,
        AccessKind::Fetch => PERM_X,
    };
    let perm = mem.page_perm(fault.addr);
    let (sig, code) = if mem.past_eof(fault.addr) {
        (signals::SIGBUS, signals::BUS_ADRERR)
    } else if perm & need != 0 {
        (signals::SIGBUS, signals::BUS_ADRALN)
    } else if perm == 0 {
        (signals::SIGSEGV, signals::SEGV_MAPERR)
    } else {
        (signals::SIGSEGV, signals::SEGV_ACCERR)
    };
    SigInfo::fault(sig, code, fault.addr)
}

/// Delivers the synchronous signal `info`, raised by the instruction at `t.cpu.pc`.
pub(crate) fn deliver_sync(t: &mut GuestThread, mem: &GuestMemory, info: SigInfo) -> Sync {
    let group = Arc::clone(t.sys.group());
    let sig = info.signo();
    let act = group.action(sig);
    let mask = t.handle.mask();
    t.sys.strace_signal(&info);
    if act.handler == signals::SIG_DFL
        || act.handler == signals::SIG_IGN
        || mask & signals::bit(sig) != 0
    {
        return Sync::Fatal;
    }
    if enter(t, mem, &info, &act, mask) {
        Sync::Handled
    } else {
        Sync::Fatal
    }
}

/// Takes every signal thread `t` can take now and acts on it; `intr` is the system
/// call that just returned EINTR, if any. `Some(())` when the process ends (its
/// outcome is set).
pub(crate) fn deliver(
    t: &mut GuestThread,
    mem: &GuestMemory,
    mut intr: Option<Interrupted>,
) -> Option<()> {
    let group = Arc::clone(t.sys.group());
    loop {
        if group.exiting() {
            return Some(());
        }
        let mask = t.handle.mask();
        let Some(info) = group.take_signal(&t.handle, mask) else {
            break;
        };
        let sig = info.signo();
        let act = group.action(sig);
        if act.handler == signals::SIG_IGN && sig != signals::SIGKILL && sig != signals::SIGSTOP {
            continue;
        }
        if act.handler == signals::SIG_DFL || sig == signals::SIGKILL || sig == signals::SIGSTOP {
            let action = signals::default_action(sig);
            if matches!(action, Default::Terminate | Default::Core) {
                t.sys.strace_signal(&info);
            }
            match action {
                Default::Ignore | Default::Continue => continue,
                Default::Stop => {
                    crate::host::stop_self();
                    continue;
                }
                Default::Terminate | Default::Core => {
                    group.set_exit(GuestExit::Signal { signo: sig });
                    return Some(());
                }
            }
        }
        if let Some(i) = intr.take() {
            let restart =
                restart_rule(i.nr) == Restart::Sys && act.flags & signals::SA_RESTART != 0;
            if restart {
                t.cpu.pc = i.pc;
                t.cpu.x[10] = i.a0;
            }
        }
        t.sys.strace_signal(&info);
        // The frame saves the mask from before the signal (and before sigsuspend).
        let saved = t.sys.thread().saved_mask.take().unwrap_or(mask);
        if !enter(t, mem, &info, &act, saved) {
            group.set_exit(GuestExit::Signal {
                signo: signals::SIGSEGV,
            });
            return Some(());
        }
    }
    if let Some(i) = intr
        && restart_rule(i.nr) != Restart::Never
    {
        // No handler ran: the call goes on as if never interrupted.
        t.cpu.pc = i.pc;
        t.cpu.x[10] = i.a0;
    }
    if let Some(m) = t.sys.thread().saved_mask.take() {
        // sigsuspend ended without a handler: its temporary mask goes.
        group.set_mask(&t.handle, m);
    }
    None
}

/// Enters `act`'s handler for `info`: writes the frame (saving `saved` as the mask to
/// restore), switches to the alternate stack when asked, and blocks the handler's
/// mask. False when the frame cannot be written (Linux then kills with SIGSEGV).
fn enter(
    t: &mut GuestThread,
    mem: &GuestMemory,
    info: &SigInfo,
    act: &SigAction,
    saved: u64,
) -> bool {
    let group = Arc::clone(t.sys.group());
    let alt = t.sys.thread().altstack;
    let frame = signals::frame_address(t.cpu.x[2], &alt, act);
    if signals::enter_handler(&mut t.cpu, mem, frame, info, act, saved, &alt).is_err() {
        return false;
    }
    if alt.contains(frame + signals::FRAME_SIZE) && alt.flags & (1 << 31) != 0 {
        // SS_AUTODISARM: the stack is off until the handler's sigreturn restores it.
        t.sys.thread().altstack = signals::AltStack::DISABLED;
    }
    let sig = info.signo();
    let mut mask = t.handle.mask() | act.mask;
    if act.flags & signals::SA_NODEFER == 0 {
        mask |= signals::bit(sig);
    }
    group.set_mask(&t.handle, mask);
    if act.flags & signals::SA_RESETHAND != 0 {
        group.set_action(sig, SigAction::default());
    }
    true
}
