//! Grace periods: waiting until every executor that was online when the wait began has
//! passed a quiescent point, gone offline or been dropped (RCU's `synchronize_rcu`), for
//! [`crate::UnifiedCodeCache::synchronize`] and [`crate::Executor::synchronize`].
//!
//! It adds nothing to the executor side: it uses the global epoch and the per-executor
//! announcements that reclamation already uses (`executor.rs`), so `lookup` and
//! `quiescent` cost what they did. The waiter:
//!
//! 1. bumps the global epoch to `target` (a SeqCst RMW) and issues a SeqCst fence;
//! 2. takes a snapshot of the registered executors (under the executors lock, released
//!    at once: the wait holds no lock);
//! 3. waits until each executor in the snapshot has announced 0 (offline, dropped, or
//!    stepped out for an `Executor::insert_with` / `Executor::synchronize`) or an epoch
//!    `>= target`. Once one condition has been seen for an executor it is not re-read.
//!
//! Why that is enough, for an invalidation I that happens before the call (the same
//! thread called it earlier, or ordered it before): every executor X in the snapshot is
//! in one of three cases when the waiter reads its announcement.
//! - **`>= target`.** Only X stores its announcement, and it stores a value it has just
//!   loaded from the global epoch, so X loaded our bump or a later one: the announcement
//!   comes after the call began. Every write of the global epoch is an RMW, so that load
//!   synchronises with our bump (release sequence), which comes after I: X's later
//!   lookups and jump-cache probes see I's index removals and jump-cache clears. Our
//!   Acquire read of X's Release announcement orders everything X ran before it (the old
//!   code) before our return. X's announcement can also be a registration, a go-online
//!   or an `insert_with` / `synchronize` rejoin: each holds no code reference.
//! - **`0`.** X holds no code reference (`offline`, `insert_with` and `synchronize` take
//!   `&mut self`; a dropped executor runs nothing). When it comes back online it stores
//!   its epoch, fences (SeqCst) and re-reads the global epoch (`go_online`): a Dekker pair
//!   with our bump, fence, read. We did not see its store, so it sees our bump or later,
//!   and what it looks up from then on comes after I. (An `insert_with` rejoins under
//!   the writer lock, which I also held: either X's insert comes after I, or its rejoin
//!   store came before I and we would have read it, not 0.)
//! - **Registered after the snapshot.** `Executor::new` takes the executors lock after we
//!   released it, so it is ordered after our bump and starts with no code.
//!
//! The bump does not disturb reclamation: retired blocks keep the epoch they were
//! stamped with, and a later bump only makes announcements larger.

use std::sync::Arc;
#[cfg(not(loom))]
use std::time::Duration;
use std::time::Instant;

use crate::Shared;
use crate::executor::ExecutorSlot;
use crate::sync::{Ordering, fence};

/// Whether `x` no longer holds a grace period that started at `target` back.
fn passed(x: &ExecutorSlot, target: u64) -> bool {
    let e = x.epoch.load(Ordering::SeqCst);
    e == 0 || e >= target
}

impl Shared {
    /// Waits for a grace period (see the module doc); `false` if `deadline` passed first.
    pub(crate) fn synchronize(&self, deadline: Option<Instant>) -> bool {
        let target = self.epoch.fetch_add(1, Ordering::SeqCst) + 1;
        // Dekker pair with `Executor::go_online` (own epoch store; SeqCst fence; global
        // epoch load): either we read an executor's announcement as online, or it reads
        // our bump once it is back online.
        fence(Ordering::SeqCst);
        let mut pending: Vec<Arc<ExecutorSlot>> = self
            .lock_executors()
            .iter()
            .filter(|x| !passed(x, target))
            .cloned()
            .collect();
        let mut backoff = Backoff::default();
        loop {
            if pending.is_empty() {
                return true;
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return false;
            }
            backoff.wait();
            pending.retain(|x| !passed(x, target));
        }
    }
}

/// Rounds of [`Backoff::wait`] spent spinning, then yielding, before it sleeps.
#[cfg(not(loom))]
const SPIN_ROUNDS: u32 = 64;
#[cfg(not(loom))]
const YIELD_ROUNDS: u32 = 16;
/// First and longest sleep: the wait costs at most about 1 000 wake-ups a second.
#[cfg(not(loom))]
const SLEEP_MIN: Duration = Duration::from_micros(16);
#[cfg(not(loom))]
const SLEEP_MAX: Duration = Duration::from_millis(1);

/// Spin briefly (an executor between two dispatch iterations quiesces within
/// microseconds), then yield (it may be waiting for this core), then sleep with
/// exponential backoff up to [`SLEEP_MAX`] (it may be descheduled or running a long
/// chain of blocks).
#[derive(Default)]
struct Backoff {
    round: u32,
}

impl Backoff {
    #[cfg(not(loom))]
    fn wait(&mut self) {
        self.round = self.round.saturating_add(1);
        if self.round <= SPIN_ROUNDS {
            for _ in 0..32 {
                std::hint::spin_loop();
            }
        } else if self.round <= SPIN_ROUNDS + YIELD_ROUNDS {
            crate::sync::yield_now();
        } else {
            let doublings = (self.round - SPIN_ROUNDS - YIELD_ROUNDS - 1).min(16);
            std::thread::sleep((SLEEP_MIN * (1 << doublings)).min(SLEEP_MAX));
        }
    }

    /// Under loom every round yields, so that loom runs the executors we wait for.
    #[cfg(loom)]
    fn wait(&mut self) {
        self.round = self.round.saturating_add(1);
        crate::sync::yield_now();
    }
}
