//! Loom models of the cache's lock-free protocols, run against the crate's real code:
//! under `--cfg loom` every protocol atomic and both mutexes are loom's (`src/sync.rs`),
//! so loom explores the interleavings (and, for relaxed / acquire / release accesses,
//! the weak-memory outcomes) of these small scenarios.
//!
//! ```sh
//! RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom \
//!     cargo test -p codecache --release --test loom
//! ```
//!
//! Models (i)–(iii) run exhaustively (no preemption bound; 5 500 to 183 000 executions,
//! about 25 s for the three on this machine); the two grace-period models (iv) and (v)
//! have three threads and a waiting loop, too many schedules to explore exhaustively
//! ((v): 467 562 executions in 95 s; (iv) did not finish in 20 minutes), so they run with
//! at most 2 and 4 preemptions per execution (about 1 s and 5 s). Each one fails if the
//! protocol step it is about is removed: the owner's fill re-check or its fence (i), the
//! go-online fence (ii), the index's `seq` re-check or the slot version check (iii), the
//! wait of `synchronize` (iv, v) and its fence between the epoch bump and the reads of
//! executor epochs (v; as loom models `SeqCst` loads as acquire loads, this shows the
//! fence is needed for loom's model, while the C++ model would already order the
//! `SeqCst` bump and loads it separates). One step is beyond what loom can show: the
//! writer's fence between its epoch bump and its scan of executor epochs pairs with the
//! go-online fence, but all four accesses there are `SeqCst`, which the C++ model
//! already orders (the fence is kept for a weakened variant and for clarity).
//!
//! Limits (loom's): `SeqCst` loads and stores are modelled as acquire / release (the
//! protocols' store-load pairs therefore use `fence(SeqCst)`, which loom does model),
//! and some load-buffering outcomes are not explored. Code bytes are plain memory, read
//! right after a scheduling point, so a writer that reused them too early is seen in
//! the same schedule. Only the atomics in `src/sync.rs` are modelled: statistics and
//! hints (hit counts, the logical clock) stay std atomics.
#![cfg(loom)]

use std::sync::Arc;

use codecache::{CacheConfig, EvictionPolicy, UnifiedCodeCache};
use loom::sync::atomic::{AtomicBool, Ordering};
use loom::thread;

/// Runs a model exhaustively (no preemption bound unless `LOOM_MAX_PREEMPTIONS` is set)
/// and reports how many executions loom explored.
fn check(name: &str, f: impl Fn() + Send + Sync + 'static) {
    check_bounded(name, None, f);
}

/// Runs a model with at most `bound` preemptions per execution (`LOOM_MAX_PREEMPTIONS`,
/// when set, takes precedence), for models too large to explore exhaustively.
fn check_bounded(name: &str, bound: Option<usize>, f: impl Fn() + Send + Sync + 'static) {
    let runs = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let r = Arc::clone(&runs);
    let mut builder = loom::model::Builder::new();
    if builder.preemption_bound.is_none() {
        builder.preemption_bound = bound;
    }
    let used = builder.preemption_bound;
    builder.check(move || {
        r.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        f();
    });
    let n = runs.load(std::sync::atomic::Ordering::Relaxed);
    match used {
        None => eprintln!("loom model `{name}`: {n} executions explored"),
        Some(b) => eprintln!("loom model `{name}`: {n} executions explored (≤ {b} preemptions)"),
    }
}

fn cache(max_memory_bytes: usize) -> UnifiedCodeCache {
    UnifiedCodeCache::new(CacheConfig {
        max_entries: 4,
        max_memory_bytes,
        policy: EvictionPolicy::Lru,
        jump_cache_bits: 1,
        jump_cache_key_shift: 0,
        ..CacheConfig::default()
    })
    .expect("valid config")
}

/// Reads the first byte of a block.
fn first_byte(p: *const u8) -> u8 {
    // SAFETY: `p` is a code address returned by the cache and still protected (looked up
    // through an executor that has not passed a quiescent point since), so it points at
    // mapped, readable bytes of the RX view.
    unsafe { *p }
}

/// (i) Jump-cache coherence: the owner fills its jump cache from the index (then fences
/// and re-checks the slot) while a writer retires the entry (marks it retired, fences,
/// clears the key in every jump cache). Once the retiring call has returned, no lookup
/// of that executor may hit the retired block. (Without the owner's re-check, loom finds
/// the schedule where the fill lands after the writer's clear.)
#[test]
fn jump_cache_never_hits_a_block_after_its_retiring_call_returned() {
    check("jump cache", || {
        let c = cache(4096);
        c.insert(1, &[1]).expect("insert");
        let ex = c.register_executor();
        let retired = Arc::new(AtomicBool::new(false));
        let w = {
            let (c, retired) = (c.clone(), Arc::clone(&retired));
            thread::spawn(move || {
                assert!(c.invalidate(1));
                retired.store(true, Ordering::Release);
            })
        };
        let _ = ex.lookup(1).map(|r| r.as_ptr()); // fills the jump cache, or misses
        let seen = retired.load(Ordering::Acquire);
        let again = ex.lookup(1).map(|r| r.as_ptr());
        if seen {
            assert_eq!(again, None, "stale jump-cache hit after the retiring call");
        }
        w.join().expect("writer");
        assert_eq!(
            ex.lookup(1).map(|r| r.as_ptr()),
            None,
            "stale hit after join"
        );
    });
}

/// (ii) QSBR handshake: a writer invalidates the block an executor looked up and then
/// needs its memory (the arena holds one block). The memory must not be handed out
/// while the executor may still run the block, i.e. before its next quiescent point;
/// here the executor also goes offline and comes back online through a lookup (the
/// parked jump cache: the go-online store / fence / load pairs with the writer's epoch
/// bump / fence / scan).
#[test]
fn retired_memory_is_not_reused_before_the_executor_is_quiescent() {
    check("qsbr", || {
        let c = cache(16);
        c.insert(1, &[0xaa]).expect("insert");
        let mut ex = c.register_executor();
        assert!(ex.lookup(1).is_some());
        ex.offline();
        let w = {
            let c = c.clone();
            thread::spawn(move || {
                c.invalidate(1);
                // Succeeds only once key 1's memory was reclaimed.
                if let Ok(r) = c.insert(2, &[0xbb]) {
                    assert_eq!(first_byte(r.as_ptr()), 0xbb);
                }
            })
        };
        // Back online inside this lookup (or a miss, if already invalidated).
        if let Some(r) = ex.lookup(1) {
            thread::yield_now(); // let the writer try to reuse the block here
            assert_eq!(
                first_byte(r.as_ptr()),
                0xaa,
                "memory reused under a running executor"
            );
        }
        ex.quiescent();
        w.join().expect("writer");
    });
}

/// (iii) Index replacement and slot recycling: a reader looks key 7 up while a writer
/// replaces it and then inserts key 8, which recycles key 7's first entry slot (no
/// executor holds it back). The reader sees the old or the new entry of key 7, never a
/// miss (the `seq` re-check), and never key 8's code under key 7 (the slot seqlock).
#[test]
fn a_reader_racing_replacement_and_recycling_sees_old_or_new_never_a_miss() {
    check("index replace", || {
        let c = cache(4096);
        c.insert(7, &[1]).expect("insert");
        let w = {
            let c = c.clone();
            thread::spawn(move || {
                c.insert(7, &[2, 2]).expect("replace");
                c.insert(8, &[5; 5]).expect("insert into the recycled slot");
            })
        };
        for _ in 0..2 {
            let got = c.lookup(7).map(|r| r.size());
            assert!(
                matches!(got, Some(1 | 2)),
                "lookup of key 7 gave size {got:?}"
            );
        }
        w.join().expect("writer");
        assert_eq!(c.lookup(7).map(|r| r.size()), Some(2));
        assert_eq!(c.lookup(8).map(|r| r.size()), Some(5));
    });
}

/// (iv) Grace period: executor 1 is online and holds block 1 (looked up before the
/// synchronizer starts); executor 2 is offline and comes back online through a lookup
/// while the synchronizer invalidates block 1 and then calls `synchronize`. Once
/// `synchronize` has returned (published with Release, read with Acquire), no executor
/// may still run block 1: executor 1 must not see it returned while it holds the block,
/// and neither may find the block again. Fails when `synchronize` returns at once. (Not
/// without `synchronize`'s fence: here the invalidation's own epoch bump, fence and scan
/// already pair with executor 2's coming back online; model (v) has no invalidation.)
#[test]
fn no_executor_runs_an_invalidated_block_after_synchronize_returned() {
    check_bounded("synchronize", Some(2), || {
        let c = cache(4096);
        c.insert(1, &[0xaa]).expect("insert");
        let mut ex1 = c.register_executor();
        let mut ex2 = c.register_executor();
        ex2.offline();
        let held = ex1.lookup(1).map(|r| r.as_ptr()).expect("resident");
        let synced = Arc::new(AtomicBool::new(false));
        let s = {
            let (c, synced) = (c.clone(), Arc::clone(&synced));
            thread::spawn(move || {
                assert!(c.invalidate(1));
                c.synchronize();
                synced.store(true, Ordering::Release);
            })
        };
        let e2 = {
            let synced = Arc::clone(&synced);
            thread::spawn(move || {
                // Back online inside this lookup (a miss if already invalidated).
                if let Some(r) = ex2.lookup(1) {
                    assert_eq!(first_byte(r.as_ptr()), 0xaa);
                    assert!(
                        !synced.load(Ordering::Acquire),
                        "executor 2 runs the block after synchronize returned"
                    );
                }
                ex2.quiescent();
                // Dropped here: the waiter stops waiting for it.
            })
        };
        // Still running the block looked up before the synchronizer started.
        assert_eq!(first_byte(held), 0xaa);
        assert!(
            !synced.load(Ordering::Acquire),
            "executor 1 runs the block after synchronize returned"
        );
        ex1.quiescent();
        if synced.load(Ordering::Acquire) {
            assert!(ex1.lookup(1).is_none(), "found again after synchronize");
        }
        drop(ex1);
        s.join().expect("synchronizer");
        e2.join().expect("executor 2");
    });
}

/// (v) The grace-period guarantee itself, as RCU's litmus test: the synchronizer writes
/// `x`, calls `synchronize`, writes `y` (both relaxed: only the grace period orders
/// them). Executor 1 is online from the start, so its read-side section began before the
/// grace period and `synchronize` must wait for it to end (it is dropped): it can never
/// see `y == 1`. Executor 2 starts offline and comes back online (`quiescent`) at some
/// point: if its section sees `y == 1` it began after the grace period did, so it must
/// see `x == 1`. Fails when `synchronize` returns at once, or without its fence (loom
/// then finds executor 2 reading the epoch from before the bump while the waiter reads
/// executor 2's epoch as 0).
#[test]
fn a_grace_period_orders_the_writes_around_it_for_every_reader() {
    check_bounded("grace period", Some(4), || {
        let c = cache(4096);
        let ex1 = c.register_executor();
        let mut ex2 = c.register_executor();
        ex2.offline();
        let x = Arc::new(AtomicBool::new(false));
        let y = Arc::new(AtomicBool::new(false));
        let s = {
            let (x, y) = (Arc::clone(&x), Arc::clone(&y));
            thread::spawn(move || {
                x.store(true, Ordering::Relaxed);
                c.synchronize();
                y.store(true, Ordering::Relaxed);
            })
        };
        let e2 = {
            let (x, y) = (Arc::clone(&x), Arc::clone(&y));
            thread::spawn(move || {
                ex2.quiescent(); // back online: a read-side section begins
                let (r1, r2) = (y.load(Ordering::Relaxed), x.load(Ordering::Relaxed));
                assert!(!r1 || r2, "executor 2 saw y but not x");
                drop(ex2); // the section ends
            })
        };
        assert!(
            !y.load(Ordering::Relaxed),
            "executor 1 saw a write made after the grace period"
        );
        drop(ex1);
        s.join().expect("synchronizer");
        e2.join().expect("executor 2");
    });
}
