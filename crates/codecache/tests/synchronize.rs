//! Grace periods (`UnifiedCodeCache::synchronize`, `Executor::synchronize`): whom they
//! wait for and whom they do not. No timing assertions: ordering is checked with atomics
//! (a waiter that returned too early is caught by what it reads), and "returns at once"
//! by `synchronize_timeout(Duration::ZERO)`, which completes only if nobody is waited for.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use codecache::{CacheConfig, UnifiedCodeCache};

fn cache() -> UnifiedCodeCache {
    let c = UnifiedCodeCache::new(CacheConfig {
        max_entries: 16,
        max_memory_bytes: 4096,
        ..CacheConfig::default()
    })
    .expect("valid config");
    c.insert(0x1000, &[0xc3]).expect("insert");
    c
}

#[test]
fn synchronize_returns_at_once_without_executors() {
    let c = cache();
    c.synchronize();
    assert!(c.synchronize_timeout(Duration::ZERO));
}

#[test]
fn synchronize_does_not_wait_for_offline_executors() {
    let c = cache();
    let mut a = c.register_executor();
    let mut b = c.register_executor();
    assert!(a.lookup(0x1000).is_some() && b.lookup(0x1000).is_some());
    a.offline();
    b.offline();
    c.synchronize();
    assert!(c.synchronize_timeout(Duration::ZERO));
    assert!(
        !a.is_online() && !b.is_online(),
        "nothing brought them online"
    );
}

#[test]
fn synchronize_does_not_wait_for_dropped_executors() {
    let c = cache();
    let a = c.register_executor();
    let b = c.register_executor();
    assert!(a.lookup(0x1000).is_some() && b.lookup(0x1000).is_some());
    drop(a);
    drop(b);
    c.synchronize();
    assert!(c.synchronize_timeout(Duration::ZERO));
}

#[test]
fn only_a_quiescent_point_after_the_call_began_counts() {
    let c = cache();
    let mut ex = c.register_executor();
    assert!(ex.lookup(0x1000).is_some());
    // Online and silent: a bounded wait gives up.
    assert!(!c.synchronize_timeout(Duration::ZERO));
    assert!(!c.synchronize_timeout(Duration::from_millis(1)));
    // A quiescent point before the call does not end the next grace period.
    ex.quiescent();
    assert!(!c.synchronize_timeout(Duration::ZERO));
    ex.offline();
    assert!(c.synchronize_timeout(Duration::ZERO));
    // Back online (a lookup) and silent again: waited for again.
    assert!(ex.lookup(0x1000).is_some());
    assert!(!c.synchronize_timeout(Duration::ZERO));
}

/// How the executor ends the synchronizer's wait.
#[derive(Clone, Copy, Debug)]
enum Release {
    Quiescent,
    Offline,
    Drop,
}

/// A synchronizer thread waits for an online executor that holds code. The executor
/// checks that the waiter has not returned, marks `released`, then releases it; the
/// waiter checks, once returned, that it read `released`. A waiter that returned before
/// the release would fail one of the two checks, whatever the timing.
fn synchronize_waits_for_an_online_executor(release: Release) {
    let c = cache();
    let mut ex = c.register_executor();
    let started = AtomicBool::new(false);
    let released = AtomicBool::new(false);
    let returned = AtomicBool::new(false);
    let early = AtomicBool::new(false);
    std::thread::scope(|s| {
        s.spawn(|| {
            started.store(true, Ordering::SeqCst);
            c.synchronize();
            if !released.load(Ordering::SeqCst) {
                early.store(true, Ordering::SeqCst);
            }
            returned.store(true, Ordering::SeqCst);
        });
        s.spawn(|| {
            let code = ex.lookup(0x1000).expect("resident");
            while !started.load(Ordering::SeqCst) {
                std::thread::yield_now();
            }
            // Time for the waiter to get into its wait (the checks hold without it).
            std::thread::sleep(Duration::from_millis(20));
            if returned.load(Ordering::SeqCst) {
                early.store(true, Ordering::SeqCst);
            }
            assert_eq!(code.size(), 1, "still holding the code");
            released.store(true, Ordering::SeqCst);
            match release {
                // Until the waiter returns: a quiescent point announced before its epoch
                // bump would not count, and it would wait for the next one.
                Release::Quiescent => {
                    while !returned.load(Ordering::SeqCst) {
                        ex.quiescent();
                        std::thread::yield_now();
                    }
                }
                Release::Offline => ex.offline(),
                Release::Drop => drop(ex),
            }
        });
    });
    assert!(returned.load(Ordering::SeqCst));
    assert!(
        !early.load(Ordering::SeqCst),
        "{release:?}: synchronize returned before the executor released it"
    );
}

#[test]
fn synchronize_waits_for_an_online_executor_until_it_quiesces() {
    synchronize_waits_for_an_online_executor(Release::Quiescent);
}

#[test]
fn synchronize_waits_for_an_online_executor_until_it_goes_offline() {
    synchronize_waits_for_an_online_executor(Release::Offline);
}

#[test]
fn synchronize_waits_for_an_online_executor_until_it_is_dropped() {
    synchronize_waits_for_an_online_executor(Release::Drop);
}

#[test]
fn executor_synchronize_does_not_wait_for_itself() {
    let c = cache();
    let mut ex = c.register_executor();
    assert!(ex.lookup(0x1000).is_some());
    assert!(ex.synchronize_timeout(Duration::ZERO));
    ex.synchronize();
    assert!(ex.is_online(), "an online caller comes back online");
    assert!(
        !c.synchronize_timeout(Duration::ZERO),
        "and is waited for again by others"
    );
    ex.offline();
    ex.synchronize();
    assert!(!ex.is_online(), "an offline caller stays offline");
    assert!(
        ex.lookup(0x1000).is_some(),
        "and comes back online as usual"
    );
}

#[test]
fn executor_synchronize_waits_for_the_other_executors() {
    let c = cache();
    let mut me = c.register_executor();
    let mut other = c.register_executor();
    assert!(other.lookup(0x1000).is_some());
    assert!(!me.synchronize_timeout(Duration::ZERO), "other is online");
    assert!(me.is_online());
    other.quiescent();
    assert!(
        !me.synchronize_timeout(Duration::ZERO),
        "quiesced before the call"
    );
    other.offline();
    assert!(me.synchronize_timeout(Duration::ZERO));
}

#[test]
fn executors_synchronizing_at_once_do_not_wait_for_each_other() {
    // Neither executor announces anything but its own `synchronize` calls: each must be
    // out of the grace period while it waits, or the two would wait for each other.
    let c = cache();
    let rounds = AtomicU64::new(0);
    std::thread::scope(|s| {
        for _ in 0..2 {
            let mut ex = c.register_executor();
            let rounds = &rounds;
            s.spawn(move || {
                for _ in 0..2_000 {
                    assert!(ex.lookup(0x1000).is_some());
                    ex.synchronize();
                    rounds.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
    });
    assert_eq!(rounds.load(Ordering::Relaxed), 4_000);
}

#[test]
fn after_invalidate_and_synchronize_no_executor_finds_the_block() {
    let c = cache();
    let mut a = c.register_executor();
    let mut b = c.register_executor();
    assert!(a.lookup(0x1000).is_some() && b.lookup(0x1000).is_some());
    assert_eq!(c.invalidate_range(0x1000, 0x1001), 1);
    b.offline();
    a.synchronize(); // b is offline: returns at once
    assert!(a.lookup(0x1000).is_none() && b.lookup(0x1000).is_none());
}
