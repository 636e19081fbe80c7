//! The process's timers: the three interval timers (`setitimer`: ITIMER_REAL on wall
//! time, ITIMER_VIRTUAL and ITIMER_PROF on the process's CPU time) and POSIX timers
//! (`timer_create`). They run in vmjit, not as host timers, so that no host signal
//! arrives anywhere in the host process (the engine may be a library in a bigger
//! program): the group's service thread (`crate::threads`) fires them and queues the
//! guest signal.
//!
//! **Invariant.** An expired timer queues its signal once; a periodic one is re-armed
//! from its old deadline (not from when it fired), and expirations missed meanwhile
//! are counted as overruns (`timer_getoverrun`), as Linux does.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::signals::{self, SigInfo};
use crate::threads::ThreadGroup;

/// When a timer expires next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Deadline {
    /// A moment of wall (monotonic) time.
    At(Instant),
    /// A total of process CPU time.
    Cpu(Duration),
}

/// Which signal an expiry queues, and where.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Notify {
    /// `signo` to the process, with `value` (`sigev_value`).
    Process { signo: i32, value: u64 },
    /// `signo` to thread `tid` (SIGEV_THREAD_ID).
    Thread { tid: i64, signo: i32, value: u64 },
    /// Nothing (SIGEV_NONE: the timer is only read).
    None,
}

#[derive(Clone, Copy, Debug)]
struct Timer {
    deadline: Option<Deadline>,
    interval: Duration,
    /// Measures CPU time (ITIMER_VIRTUAL/PROF, CPU clocks) rather than wall time.
    cpu: bool,
    notify: Notify,
    /// The id reported in the signal (POSIX timers) or 0.
    id: i32,
    /// Expirations missed before the last signal was taken.
    overrun: i32,
    /// `si_code` of its signal.
    code: i32,
    /// The clock it was created on (absolute times are read on it).
    clock: i32,
}

impl Timer {
    fn new(cpu: bool, notify: Notify, id: i32, code: i32) -> Self {
        Timer {
            deadline: None,
            interval: Duration::ZERO,
            cpu,
            notify,
            id,
            overrun: 0,
            code,
            clock: libc::CLOCK_REALTIME,
        }
    }
}

/// The timers of one process.
#[derive(Debug)]
pub(crate) struct Timers {
    /// ITIMER_REAL, ITIMER_VIRTUAL, ITIMER_PROF.
    itimers: [Timer; 3],
    /// POSIX timers by id (a freed slot is reused).
    posix: Vec<Option<Timer>>,
}

impl Default for Timers {
    fn default() -> Self {
        let it = |signo| {
            Timer::new(
                false,
                Notify::Process { signo, value: 0 },
                0,
                signals::SI_KERNEL,
            )
        };
        let mut virt = it(26); // SIGVTALRM
        virt.cpu = true;
        let mut prof = it(27); // SIGPROF
        prof.cpu = true;
        Timers {
            itimers: [it(signals::SIGALRM), virt, prof],
            posix: Vec::new(),
        }
    }
}

/// Most POSIX timers one process may have (EAGAIN past it).
const MAX_POSIX_TIMERS: usize = 4096;

/// The process's CPU time so far.
fn cpu_now() -> Duration {
    match crate::host::clock(false, libc::CLOCK_PROCESS_CPUTIME_ID) {
        Ok((s, ns)) => Duration::new(s.max(0) as u64, ns.clamp(0, 999_999_999) as u32),
        Err(_) => Duration::ZERO,
    }
}

impl Timer {
    /// Time left and interval.
    fn get(&self, now: Instant) -> (Duration, Duration) {
        let left = match self.deadline {
            None => Duration::ZERO,
            Some(Deadline::At(t)) => t
                .saturating_duration_since(now)
                .max(Duration::from_nanos(1)),
            Some(Deadline::Cpu(c)) => c.saturating_sub(cpu_now()).max(Duration::from_nanos(1)),
        };
        (left, self.interval)
    }

    /// Arms for `value` from now (zero disarms), re-arming with `interval`.
    fn set(&mut self, value: Duration, interval: Duration, now: Instant) {
        self.interval = interval;
        self.overrun = 0;
        self.deadline = if value.is_zero() {
            None
        } else if self.cpu {
            Some(Deadline::Cpu(cpu_now() + value))
        } else {
            Some(Deadline::At(now + value))
        };
    }
}

impl Timers {
    /// `getitimer(which)`: (time left, interval); `None` for a bad `which`.
    pub(crate) fn get_itimer(&self, which: usize) -> Option<(Duration, Duration)> {
        self.itimers.get(which).map(|t| t.get(Instant::now()))
    }

    /// `setitimer(which)`; returns the old (time left, interval).
    pub(crate) fn set_itimer(
        &mut self,
        which: usize,
        value: Duration,
        interval: Duration,
    ) -> Option<(Duration, Duration)> {
        let now = Instant::now();
        let t = self.itimers.get_mut(which)?;
        let old = t.get(now);
        t.set(value, interval, now);
        Some(old)
    }

    /// `timer_create`: a new POSIX timer on a wall clock (`cpu` false) or a CPU clock;
    /// its id, or `None` when there are too many.
    pub(crate) fn create(&mut self, clock: i32, cpu: bool, notify: Notify) -> Option<i32> {
        let slot = match self.posix.iter().position(Option::is_none) {
            Some(i) => i,
            None if self.posix.len() < MAX_POSIX_TIMERS => {
                self.posix.push(None);
                self.posix.len() - 1
            }
            None => return None,
        };
        let id = slot as i32;
        let notify = match notify {
            // Without a sigevent the value is the timer's id.
            Notify::Process {
                signo,
                value: u64::MAX,
            } => Notify::Process {
                signo,
                value: id as u64,
            },
            n => n,
        };
        let mut t = Timer::new(cpu, notify, id, signals::SI_TIMER);
        t.clock = clock;
        self.posix[slot] = Some(t);
        Some(id)
    }

    /// The clock POSIX timer `id` runs on, `None` when it does not exist.
    pub(crate) fn clock_of(&mut self, id: i32) -> Option<i32> {
        self.posix(id).map(|t| t.clock)
    }

    /// True when some timer is armed (a lone thread's endless wait may still end).
    pub(crate) fn any_armed(&self) -> bool {
        self.itimers
            .iter()
            .chain(self.posix.iter().flatten())
            .any(|t| t.deadline.is_some())
    }

    fn posix(&mut self, id: i32) -> Option<&mut Timer> {
        usize::try_from(id)
            .ok()
            .and_then(|i| self.posix.get_mut(i)?.as_mut())
    }

    /// `timer_settime` (relative value); returns the old (left, interval), `None` for
    /// a timer that does not exist.
    pub(crate) fn settime(
        &mut self,
        id: i32,
        value: Duration,
        interval: Duration,
    ) -> Option<(Duration, Duration)> {
        let now = Instant::now();
        let t = self.posix(id)?;
        let old = t.get(now);
        t.set(value, interval, now);
        Some(old)
    }

    /// `timer_gettime`.
    pub(crate) fn gettime(&mut self, id: i32) -> Option<(Duration, Duration)> {
        let now = Instant::now();
        self.posix(id).map(|t| t.get(now))
    }

    /// `timer_getoverrun`.
    pub(crate) fn overrun(&mut self, id: i32) -> Option<i32> {
        self.posix(id).map(|t| t.overrun)
    }

    /// `timer_delete`; false when it does not exist.
    pub(crate) fn delete(&mut self, id: i32) -> bool {
        match usize::try_from(id).ok().and_then(|i| self.posix.get_mut(i)) {
            Some(s @ Some(_)) => {
                *s = None;
                true
            }
            _ => false,
        }
    }

    /// Fires every timer due at `now`: returns the signals to queue (the caller sends
    /// them once the timers are unlocked) and when the next timer is due (a CPU timer
    /// is looked at every millisecond while armed).
    pub(crate) fn fire_due(&mut self, now: Instant) -> (Vec<(Notify, SigInfo)>, Option<Instant>) {
        let cpu = cpu_now();
        let mut next: Option<Instant> = None;
        let mut fired: Vec<(Notify, SigInfo)> = Vec::new();
        for t in self
            .itimers
            .iter_mut()
            .chain(self.posix.iter_mut().flatten())
        {
            let Some(d) = t.deadline else {
                continue;
            };
            let due = match d {
                Deadline::At(at) => at <= now,
                Deadline::Cpu(c) => c <= cpu,
            };
            if due {
                if t.interval.is_zero() {
                    t.deadline = None;
                    t.overrun = 0;
                } else {
                    // Re-armed from the old deadline; the periods missed meanwhile are
                    // this expiry's overruns.
                    let mut missed = 0i32;
                    t.deadline = Some(match d {
                        Deadline::At(at) => {
                            let mut n = at + t.interval;
                            while n <= now && missed < i32::MAX {
                                n += t.interval;
                                missed += 1;
                            }
                            Deadline::At(n)
                        }
                        Deadline::Cpu(c) => {
                            let mut n = c + t.interval;
                            while n <= cpu && missed < i32::MAX {
                                n += t.interval;
                                missed += 1;
                            }
                            Deadline::Cpu(n)
                        }
                    });
                    t.overrun = missed;
                }
                match t.notify {
                    Notify::Process { signo, value } | Notify::Thread { signo, value, .. } => {
                        let info = SigInfo::timer(signo, t.code, t.id, t.overrun, value);
                        fired.push((t.notify, info));
                    }
                    Notify::None => {}
                }
            }
            match t.deadline {
                Some(Deadline::At(at)) => next = Some(next.map_or(at, |n| n.min(at))),
                Some(Deadline::Cpu(_)) => {
                    let soon = now + Duration::from_millis(1);
                    next = Some(next.map_or(soon, |n| n.min(soon)));
                }
                None => {}
            }
        }
        (fired, next)
    }
}

/// Queues the signals of fired timers.
pub(crate) fn send_fired(group: &Arc<ThreadGroup>, fired: Vec<(Notify, SigInfo)>) {
    for (notify, info) in fired {
        match notify {
            Notify::Process { .. } => group.send_process(info, None),
            Notify::Thread { tid, .. } => {
                group.send_thread(tid, info);
            }
            Notify::None => {}
        }
    }
}
