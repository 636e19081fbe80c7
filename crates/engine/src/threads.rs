//! Guest threads: one host thread per guest thread, all sharing the process's guest
//! memory, system-call state, code cache and compile threads.
//!
//! A [`GuestThread`] is what one thread owns: its registers, its system-call handle
//! (tid, signal mask, clear-child-tid...), its interpreter (decoded blocks) and its JIT
//! handle (an executor of the shared code cache, with its own jump cache). The
//! [`ThreadGroup`] is what the threads of a process share about each other: who is
//! alive, how the process ends, and the mailboxes through which one thread's code
//! invalidation reaches the others.
//!
//! **Invariants.**
//! - *Invalidation reaches every thread before the call returns.* A thread that
//!   changes code memory (munmap, mprotect, riscv_flush_icache, fence.i) applies the
//!   change to the shared code cache, posts it to every other thread's mailbox, and
//!   waits until each of them that is running guest code has taken it at a dispatch
//!   point ([`ThreadGroup::broadcast`]); threads blocked in a host call are not waited
//!   for, and take their mail before they run guest code again (an `online` store and
//!   `attention` load on their side, an `attention` store and `online` load on the
//!   poster's: a Dekker pair, all SeqCst).
//! - *A thread in a host call is offline*, for this protocol and for the code cache's
//!   reclamation, so neither ever waits for a blocked thread.
//! - *The process ends once.* The first of exit_group, a fatal signal, a guest fault, or
//!   the last thread's exit sets the outcome ([`ThreadGroup::set_exit`]); every other
//!   thread stops at its next dispatch point or host call (threads blocked in one are
//!   interrupted by a signal that has a no-op handler and no `SA_RESTART`, sent again
//!   until they are all gone), and the thread that started the run returns only when
//!   no other guest thread is left.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use rv64::{Cpu, Interpreter};

use crate::host;
use crate::jit::Jit;
use crate::signals::{self, SigAction, SigInfo, SigQueue};
use crate::syscall::{Invalidation, Syscalls, lock};
use crate::vm::GuestExit;

/// What one guest thread owns.
pub(crate) struct GuestThread {
    pub(crate) cpu: Cpu,
    pub(crate) sys: Syscalls,
    pub(crate) interp: Interpreter,
    /// The thread's JIT handle, when the JIT is enabled.
    pub(crate) jit: Option<Box<Jit>>,
    /// Blocks single-stepped (`--trace`, the end of a `--max-insns` run).
    pub(crate) stepped_blocks: u64,
    /// `--max-insns`: this thread's instruction limit.
    pub(crate) max_insns: Option<u64>,
    /// `--trace`.
    pub(crate) trace: bool,
    /// Run by a crosscheck (which compares one thread: `clone` is refused).
    pub(crate) crosscheck: bool,
    pub(crate) handle: Arc<ThreadHandle>,
}

/// What the other threads may see of a thread.
#[derive(Debug)]
pub(crate) struct ThreadHandle {
    pub(crate) tid: i64,
    /// The host thread running it (for the interrupting signal), 0 until it starts.
    pthread: AtomicU64,
    /// Running guest code (not blocked in a host call).
    online: AtomicBool,
    /// Mail is waiting, or the process is ending: look at the next dispatch point.
    attention: AtomicBool,
    inbox: Mutex<Vec<Invalidation>>,
    /// The group's epoch when this thread last took its mail.
    ack: AtomicU64,
    /// Signals pending for this thread.
    sigq: Mutex<SigQueue>,
    /// Blocked signals (senders read it to choose the thread that takes a
    /// process-directed signal).
    mask: AtomicU64,
    /// Bumped and futex-woken whenever a signal is queued for this thread or its
    /// process: what `sigsuspend` and `sigtimedwait` wait on.
    wake: AtomicU32,
}

impl ThreadHandle {
    pub(crate) fn new(tid: i64) -> Arc<Self> {
        Arc::new(ThreadHandle {
            tid,
            pthread: AtomicU64::new(0),
            online: AtomicBool::new(true),
            attention: AtomicBool::new(false),
            inbox: Mutex::new(Vec::new()),
            ack: AtomicU64::new(0),
            sigq: Mutex::new(SigQueue::default()),
            mask: AtomicU64::new(0),
            wake: AtomicU32::new(0),
        })
    }

    /// The blocked signals.
    pub(crate) fn mask(&self) -> u64 {
        self.mask.load(Ordering::SeqCst)
    }

    /// The value of the wake word, to wait on with [`ThreadHandle::wait_wake`].
    pub(crate) fn wake_seq(&self) -> u32 {
        self.wake.load(Ordering::SeqCst)
    }

    /// Blocks until a signal is queued for this thread or its process after the
    /// wake word had the value `seq` (or `timeout` passes, or a kick interrupts).
    pub(crate) fn wait_wake(&self, seq: u32, timeout: Option<Duration>) {
        host::futex_wait_private(&self.wake, seq, timeout);
    }

    fn wake(&self) {
        self.wake.fetch_add(1, Ordering::SeqCst);
        host::futex_wake_private(&self.wake);
    }

    /// Records the host thread that runs this guest thread (call on that thread).
    pub(crate) fn bind_host_thread(&self) {
        self.pthread.store(host::pthread_self(), Ordering::SeqCst);
    }

    /// True when this thread should stop at its dispatch point to look at its mail or
    /// at the process's end (one relaxed load: the dispatch loop's check).
    #[inline]
    pub(crate) fn attention(&self) -> bool {
        self.attention.load(Ordering::Relaxed)
    }

    /// Before a host call that may block: other threads stop waiting for this one.
    pub(crate) fn go_offline(&self) {
        self.online.store(false, Ordering::SeqCst);
    }

    /// Back from a host call: true when mail or the process's end is waiting (so the
    /// caller looks before it runs guest code).
    pub(crate) fn go_online(&self) -> bool {
        self.online.store(true, Ordering::SeqCst);
        self.attention.load(Ordering::SeqCst)
    }

    /// Takes this thread's mail and acknowledges the group's epoch.
    pub(crate) fn take_mail(&self, group: &ThreadGroup) -> Vec<Invalidation> {
        self.attention.store(false, Ordering::SeqCst);
        let mail = std::mem::take(&mut *lock(&self.inbox));
        self.ack
            .store(group.epoch.load(Ordering::SeqCst), Ordering::SeqCst);
        mail
    }
}

/// The threads of one process.
#[derive(Debug)]
pub struct ThreadGroup {
    state: Mutex<GroupState>,
    changed: Condvar,
    exiting: AtomicBool,
    /// Bumped by every broadcast.
    epoch: AtomicU64,
    /// Instructions retired and blocks run by the threads that ended.
    retired: AtomicU64,
    blocks: AtomicU64,
    /// Signals pending for the process (any thread that does not block them).
    sigq: Mutex<SigQueue>,
    /// Dispositions, 1..=64 (index 0 unused).
    actions: Mutex<[SigAction; 65]>,
    /// The helper thread that re-interrupts threads with undelivered signals, runs
    /// timers and takes forwarded host signals (started on first need).
    service: Mutex<Option<Service>>,
    /// Timers: the interval timers and POSIX timers of the process.
    timers: Mutex<crate::timers::Timers>,
    /// Set when the run is over: the service thread ends.
    service_stop: AtomicBool,
}

#[derive(Debug, Default)]
struct GroupState {
    threads: Vec<Arc<ThreadHandle>>,
    exit: Option<GuestExit>,
    created: u64,
    peak: usize,
}

/// Threads created and the most alive at once, for `--stats`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct ThreadStats {
    /// Guest threads created over the run, the first one included.
    pub created: u64,
    /// The most guest threads alive at the same time.
    pub peak_live: u64,
}

impl ThreadGroup {
    /// A group holding the process's first thread.
    pub(crate) fn new(first: Arc<ThreadHandle>) -> Arc<Self> {
        host::install_kick_handler();
        Arc::new(ThreadGroup {
            state: Mutex::new(GroupState {
                threads: vec![first],
                exit: None,
                created: 1,
                peak: 1,
            }),
            changed: Condvar::new(),
            exiting: AtomicBool::new(false),
            epoch: AtomicU64::new(0),
            retired: AtomicU64::new(0),
            blocks: AtomicU64::new(0),
            sigq: Mutex::new(SigQueue::default()),
            actions: Mutex::new([SigAction::default(); 65]),
            service: Mutex::new(None),
            timers: Mutex::new(crate::timers::Timers::default()),
            service_stop: AtomicBool::new(false),
        })
    }

    /// The disposition of `sig` (1..=64).
    pub(crate) fn action(&self, sig: i32) -> SigAction {
        usize::try_from(sig)
            .ok()
            .and_then(|i| lock(&self.actions).get(i).copied())
            .unwrap_or_default()
    }

    /// Sets the disposition of `sig`; returns the old one. A signal that becomes
    /// ignored is dropped from every queue, as in Linux.
    pub(crate) fn set_action(&self, sig: i32, act: SigAction) -> SigAction {
        let old = {
            let mut a = lock(&self.actions);
            let Some(slot) = usize::try_from(sig).ok().and_then(|i| a.get_mut(i)) else {
                return SigAction::default();
            };
            std::mem::replace(slot, act)
        };
        if signals::ignored(sig, &act) {
            lock(&self.sigq).discard(sig);
            for t in lock(&self.state).threads.iter() {
                lock(&t.sigq).discard(sig);
            }
        }
        old
    }

    /// Every disposition (index 0 unused), for a forked child.
    pub(crate) fn actions_snapshot(&self) -> [SigAction; 65] {
        *lock(&self.actions)
    }

    /// Sets every disposition (a forked child's, from its parent).
    pub(crate) fn set_actions(&self, actions: &[SigAction; 65]) {
        *lock(&self.actions) = *actions;
    }

    /// True when some signal has a guest handler (a lone thread's endless wait may
    /// then still end).
    pub(crate) fn any_handler(&self) -> bool {
        lock(&self.actions)
            .iter()
            .any(|a| a.handler != signals::SIG_DFL && a.handler != signals::SIG_IGN)
    }

    /// Signals pending for thread `t`: its own and its process's.
    pub(crate) fn pending_for(&self, t: &ThreadHandle) -> u64 {
        lock(&t.sigq).pending() | lock(&self.sigq).pending()
    }

    /// Sets `t`'s blocked signals (SIGKILL and SIGSTOP never are). A pending signal it
    /// unblocks asks `t` for attention; a process signal it blocks goes to another
    /// thread that takes it, as Linux retargets.
    pub(crate) fn set_mask(&self, t: &ThreadHandle, mask: u64) {
        let mask = mask & !signals::UNBLOCKABLE;
        let old = t.mask.swap(mask, Ordering::SeqCst);
        if old & !mask & self.pending_for(t) != 0 {
            t.attention.store(true, Ordering::SeqCst);
        }
        if mask & !old & lock(&self.sigq).pending() != 0 {
            self.retarget(&lock(&self.state));
        }
    }

    /// Tells every thread that does not block some pending process signal to look.
    fn retarget(&self, st: &GroupState) {
        let pending = lock(&self.sigq).pending();
        if pending == 0 {
            return;
        }
        for t in &st.threads {
            if pending & !t.mask() != 0 {
                self.notify(t);
            }
        }
    }

    /// Takes the next signal thread `t` can take now (not in `mask`): its own first,
    /// then its process's; lowest number first.
    pub(crate) fn take_signal(&self, t: &ThreadHandle, mask: u64) -> Option<SigInfo> {
        let allowed = !mask | signals::UNBLOCKABLE;
        if let Some(i) = lock(&t.sigq).take(allowed) {
            return Some(i);
        }
        lock(&self.sigq).take(allowed)
    }

    /// Takes a pending signal in `set` for `t`, blocked or not (sigtimedwait).
    pub(crate) fn take_signal_in(&self, t: &ThreadHandle, set: u64) -> Option<SigInfo> {
        if let Some(i) = lock(&t.sigq).take(set) {
            return Some(i);
        }
        lock(&self.sigq).take(set)
    }

    /// Queues `info` for thread `tid`; false when there is no such thread. An ignored
    /// signal is dropped (true: sending it worked).
    pub(crate) fn send_thread(self: &Arc<Self>, tid: i64, info: SigInfo) -> bool {
        let sig = info.signo();
        let st = lock(&self.state);
        let Some(t) = st.threads.iter().find(|t| t.tid == tid).cloned() else {
            return false;
        };
        if signals::ignored(sig, &self.action(sig)) {
            return true;
        }
        lock(&t.sigq).push(info);
        self.notify(&t);
        drop(st);
        self.poke_service();
        true
    }

    /// Queues `info` for the process: it goes to `prefer` when that thread does not
    /// block it, else to the first thread that does not. An ignored signal is dropped.
    pub(crate) fn send_process(self: &Arc<Self>, info: SigInfo, prefer: Option<i64>) {
        let sig = info.signo();
        if signals::ignored(sig, &self.action(sig)) {
            return;
        }
        lock(&self.sigq).push(info);
        let st = lock(&self.state);
        let takes = |t: &Arc<ThreadHandle>| t.mask() & signals::bit(sig) == 0;
        let target = st
            .threads
            .iter()
            .find(|t| Some(t.tid) == prefer && takes(t))
            .or_else(|| st.threads.iter().find(|t| takes(t)))
            .cloned();
        for t in &st.threads {
            // Every thread's sigsuspend/sigtimedwait may be waiting for it.
            t.wake();
        }
        if let Some(t) = target {
            self.notify(&t);
        }
        drop(st);
        self.poke_service();
    }

    /// Tells `t` (in the group's list: its host thread is alive) to look at its
    /// signals: attention, its wake word, and a kick out of a blocking host call.
    fn notify(&self, t: &ThreadHandle) {
        t.attention.store(true, Ordering::SeqCst);
        t.wake();
        kick(t);
    }

    /// Makes sure the service thread runs and looks at the group now.
    pub(crate) fn poke_service(self: &Arc<Self>) {
        let mut s = lock(&self.service);
        match &*s {
            Some(svc) => svc.poke(),
            None => *s = Service::start(Arc::downgrade(self)),
        }
    }

    /// Re-interrupts every thread that has been told to look but is still blocked in a
    /// host call (the interrupting signal may have come just before it blocked); true
    /// when there was one (the service then looks again soon).
    pub(crate) fn rekick(&self) -> bool {
        let st = lock(&self.state);
        let mut any = false;
        for t in &st.threads {
            if t.attention.load(Ordering::SeqCst) && !t.online.load(Ordering::SeqCst) {
                kick(t);
                any = true;
            }
        }
        any
    }

    /// Ends the service thread (the run is over).
    pub(crate) fn stop_service(&self) {
        self.service_stop.store(true, Ordering::SeqCst);
        if let Some(svc) = lock(&self.service).as_ref() {
            svc.poke();
        }
    }

    /// The process's timers.
    pub(crate) fn timers(&self) -> std::sync::MutexGuard<'_, crate::timers::Timers> {
        lock(&self.timers)
    }

    /// Adds a thread that is about to start; false when the process is ending (the
    /// thread must not start).
    pub(crate) fn register(&self, t: Arc<ThreadHandle>) -> bool {
        let mut st = lock(&self.state);
        if st.exit.is_some() {
            return false;
        }
        st.threads.push(t);
        st.created += 1;
        st.peak = st.peak.max(st.threads.len());
        true
    }

    /// Guest threads alive now.
    pub(crate) fn live(&self) -> usize {
        lock(&self.state).threads.len()
    }

    /// True when `tid` is one of the process's live threads.
    pub(crate) fn has_thread(&self, tid: i64) -> bool {
        lock(&self.state).threads.iter().any(|t| t.tid == tid)
    }

    /// Threads created and peak alive.
    pub fn stats(&self) -> ThreadStats {
        let st = lock(&self.state);
        ThreadStats {
            created: st.created,
            peak_live: st.peak as u64,
        }
    }

    /// Adds an ended thread's instructions and blocks to the process's totals.
    pub(crate) fn add_counts(&self, instructions: u64, blocks: u64) {
        self.retired.fetch_add(instructions, Ordering::Relaxed);
        self.blocks.fetch_add(blocks, Ordering::Relaxed);
    }

    /// Instructions retired and blocks run by every thread that ended.
    pub(crate) fn counts(&self) -> (u64, u64) {
        (
            self.retired.load(Ordering::Relaxed),
            self.blocks.load(Ordering::Relaxed),
        )
    }

    /// True once the process is ending: every thread stops.
    #[inline]
    pub(crate) fn exiting(&self) -> bool {
        self.exiting.load(Ordering::Relaxed)
    }

    /// How the process ended, once it has.
    pub(crate) fn exit(&self) -> Option<GuestExit> {
        lock(&self.state).exit
    }

    /// Ends the process with `exit` unless it already ended; tells every thread.
    ///
    /// One kick can come an instant before a thread blocks, and only the first thread
    /// waits for the others (re-kicking them, `wait_for_the_rest`): when another thread
    /// ends the process while the first one is blocked, the service thread is what
    /// kicks it again, so it is started here if it is not running.
    pub(crate) fn set_exit(self: &Arc<Self>, exit: GuestExit) {
        let mut st = lock(&self.state);
        if st.exit.is_none() {
            st.exit = Some(exit);
        }
        self.exiting.store(true, Ordering::SeqCst);
        // Under the lock: a thread leaves the list (`end_thread`) before its host
        // thread ends, so every thread signalled here is still there to take it.
        for t in &st.threads {
            t.attention.store(true, Ordering::SeqCst);
            kick(t);
        }
        let others = st.threads.len() > 1;
        drop(st);
        self.changed.notify_all();
        if others {
            self.poke_service();
        }
    }

    /// Removes thread `tid`, which has ended. When it was the last one and the process
    /// has no outcome yet, the process exits with `code` (Linux's status for a process
    /// whose last thread called `exit`).
    pub(crate) fn end_thread(&self, tid: i64, code: i32) {
        let mut st = lock(&self.state);
        st.threads.retain(|t| t.tid != tid);
        if st.threads.is_empty() && st.exit.is_none() {
            st.exit = Some(GuestExit::Exited(code));
        }
        // A process signal this thread was told to take goes to another one.
        self.retarget(&st);
        drop(st);
        self.changed.notify_all();
    }

    /// Waits until no thread is left but the caller's own (`me`, which has ended its
    /// guest code), interrupting blocked threads while the process is ending; returns
    /// the outcome.
    pub(crate) fn wait_for_the_rest(&self, me: i64) -> GuestExit {
        let mut st = lock(&self.state);
        loop {
            let others: Vec<Arc<ThreadHandle>> =
                st.threads.iter().filter(|t| t.tid != me).cloned().collect();
            if others.is_empty() {
                st.threads.retain(|t| t.tid != me);
                return st.exit.unwrap_or(GuestExit::Exited(0));
            }
            let ending = st.exit.is_some();
            if ending {
                // A thread may have been about to block when it was told: tell again.
                for t in &others {
                    kick(t);
                }
            }
            let wait = if ending {
                Duration::from_millis(2)
            } else {
                Duration::from_millis(200)
            };
            st = match self.changed.wait_timeout(st, wait) {
                Ok((g, _)) => g,
                Err(p) => p.into_inner().0,
            };
        }
    }

    /// Posts code invalidations made by thread `from` to every other thread and waits
    /// until each one running guest code has taken them (so that when the caller's
    /// system call returns, no thread runs code translated from the old bytes).
    pub(crate) fn broadcast(&self, from: i64, invs: &[Invalidation]) {
        if invs.is_empty() {
            return;
        }
        let others: Vec<Arc<ThreadHandle>> = lock(&self.state)
            .threads
            .iter()
            .filter(|t| t.tid != from)
            .cloned()
            .collect();
        if others.is_empty() {
            return;
        }
        let target = self.epoch.fetch_add(1, Ordering::SeqCst) + 1;
        for t in &others {
            lock(&t.inbox).extend_from_slice(invs);
            t.attention.store(true, Ordering::SeqCst);
        }
        let mut spins = 0u32;
        for t in &others {
            while t.online.load(Ordering::SeqCst)
                && t.ack.load(Ordering::SeqCst) < target
                && !self.exiting()
            {
                spins += 1;
                if spins < 64 {
                    std::hint::spin_loop();
                } else if spins < 256 {
                    std::thread::yield_now();
                } else {
                    std::thread::sleep(Duration::from_micros(50));
                }
            }
        }
    }
}

/// Interrupts `t`'s blocking host call, if it is in one.
fn kick(t: &ThreadHandle) {
    let p = t.pthread.load(Ordering::SeqCst);
    if p != 0 {
        host::kick_thread(p);
    }
}

/// The group's helper thread: it interrupts again threads that were told to look at a
/// signal but are still blocked in a host call (the interrupting signal can come an
/// instant before the call blocks), fires timers, and takes the host signals forwarded
/// to the guest. It waits in `sigtimedwait` on its wake signal (and the forwarded
/// signals), so a poke is a signal to it.
#[derive(Debug)]
struct Service {
    pthread: u64,
}

impl Service {
    fn start(group: std::sync::Weak<ThreadGroup>) -> Option<Service> {
        let (tx, rx) = std::sync::mpsc::channel();
        // The service must never take its wake signal through a handler: it is blocked
        // in the thread that starts it, and the service inherits that mask.
        let guard = host::block_service_signals();
        let spawned = std::thread::Builder::new()
            .name("vmjit-signals".into())
            .spawn(move || {
                let _ = tx.send(host::pthread_self());
                service_loop(&group);
            });
        drop(guard);
        spawned.ok()?;
        rx.recv().ok().map(|pthread| Service { pthread })
    }

    fn poke(&self) {
        host::wake_service(self.pthread);
    }
}

fn service_loop(group: &std::sync::Weak<ThreadGroup>) {
    loop {
        let Some(g) = group.upgrade() else {
            return;
        };
        // While the process ends, it stays to re-kick threads still blocked in a host
        // call until every thread has left.
        if g.service_stop.load(Ordering::SeqCst) || (g.exiting() && g.live() == 0) {
            // Gone from the group before the thread ends: no poke reaches a dead thread.
            *lock(&g.service) = None;
            return;
        }
        if g.exiting() {
            g.rekick();
            drop(g);
            let _ = host::wait_service_signal(Duration::from_millis(2));
            continue;
        }
        let now = std::time::Instant::now();
        let (fired, next_timer) = g.timers().fire_due(now);
        crate::timers::send_fired(&g, fired);
        let mut wait = if g.rekick() {
            Duration::from_millis(2)
        } else {
            Duration::from_secs(1)
        };
        if let Some(t) = next_timer {
            wait = wait.min(t.saturating_duration_since(now));
        }
        // Not holding the group while asleep: a dropped group ends the service.
        drop(g);
        if let Some(info) = host::wait_service_signal(wait) {
            // A host signal forwarded to the guest: its process receives it.
            if let Some(g) = group.upgrade() {
                g.send_process(info, None);
            }
        }
    }
}
