//! The clock behind `rdtime`: the host's monotonic clock in 10 MHz ticks, or, for an
//! embedder that runs two executions of one program side by side (a crosscheck), a
//! record of the values one execution read that the other one reads back.
//!
//! `rdtime` is the only instruction whose result does not follow from the architectural
//! state, so it is the only one that needs this. The mode and the record are per host
//! thread: an embedder runs both executions on one thread, and other threads (other VMs,
//! tests running in parallel) keep the host clock.
//!
//! **Invariants.** In [`ClockMode::Record`] every read returns the host clock and appends
//! the value to the record; in [`ClockMode::Replay`] every read takes the oldest recorded
//! value (0 when the record is empty, so a replaying execution that reads the clock more
//! often than the recording one stays deterministic); [`ClockMode::Host`] neither reads nor
//! writes the record.

use std::cell::RefCell;
use std::collections::VecDeque;

/// Where `rdtime` takes its value on this thread.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum ClockMode {
    /// The host's monotonic clock (the default).
    #[default]
    Host,
    /// The host's clock, and each value read is recorded.
    Record,
    /// The recorded values, oldest first.
    Replay,
}

struct Clock {
    mode: ClockMode,
    record: VecDeque<u64>,
}

thread_local! {
    static CLOCK: RefCell<Clock> = const {
        RefCell::new(Clock {
            mode: ClockMode::Host,
            record: VecDeque::new(),
        })
    };
}

/// Sets this thread's clock mode (the record is kept).
pub fn set_mode(mode: ClockMode) {
    CLOCK.with_borrow_mut(|c| c.mode = mode);
}

/// This thread's clock mode.
pub fn mode() -> ClockMode {
    CLOCK.with_borrow(|c| c.mode)
}

/// Recorded values not replayed yet.
pub fn pending() -> usize {
    CLOCK.with_borrow(|c| c.record.len())
}

/// Drops the values not replayed yet.
pub fn clear() {
    CLOCK.with_borrow_mut(|c| c.record.clear());
}

/// The value of the `time` CSR for a read now.
pub(crate) fn time_ticks() -> u64 {
    CLOCK.with_borrow_mut(|c| match c.mode {
        ClockMode::Host => host_ticks(),
        ClockMode::Record => {
            let t = host_ticks();
            c.record.push_back(t);
            t
        }
        ClockMode::Replay => c.record.pop_front().unwrap_or(0),
    })
}

/// 10 MHz ticks of the host's monotonic clock since the first read in this process.
fn host_ticks() -> u64 {
    use std::sync::OnceLock;
    use std::time::Instant;
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    let e = *EPOCH.get_or_init(Instant::now);
    (e.elapsed().as_nanos() / 100) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_replay_reads_what_the_record_read_in_order_then_zero() {
        set_mode(ClockMode::Record);
        let a = time_ticks();
        let b = time_ticks();
        assert!(b >= a);
        assert_eq!(pending(), 2);
        set_mode(ClockMode::Replay);
        assert_eq!(time_ticks(), a);
        assert_eq!(time_ticks(), b);
        assert_eq!(time_ticks(), 0);
        assert_eq!(pending(), 0);
        set_mode(ClockMode::Host);
        assert_eq!(mode(), ClockMode::Host);
        time_ticks();
        assert_eq!(pending(), 0, "host reads are not recorded");
    }
}
