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
//! Each model runs exhaustively (no preemption bound; 5 500 to 183 000 executions, about
//! 25 s for the three on this machine). Each one fails if the protocol step it is about
//! is removed: the owner's fill re-check or its fence (i), the go-online fence (ii), the
//! index's `seq` re-check or the slot version check (iii). One step is beyond what loom
//! can show: the writer's fence between its epoch bump and its scan of executor epochs
//! pairs with the go-online fence, but all four accesses there are `SeqCst`, which the
//! C++ model already orders (the fence is kept for a weakened variant and for clarity).
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
    let runs = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let r = Arc::clone(&runs);
    loom::model::Builder::new().check(move || {
        r.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        f();
    });
    let n = runs.load(std::sync::atomic::Ordering::Relaxed);
    eprintln!("loom model `{name}`: {n} executions explored");
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
