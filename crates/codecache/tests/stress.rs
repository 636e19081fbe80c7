//! Multi-thread stress with real host code (x86-64 only: each block is
//! `mov rax, imm64; ret` = 48 B8 imm64 C3, padded to varying sizes, returning its key).
//!
//! - `calls_always_return_their_key_under_churn`: executors call whatever they find while
//!   writers insert, replace, evict, invalidate and flush under memory and entry pressure;
//!   every call must return its key (a reused or torn block would return something else
//!   or crash).
//! - `resident_keys_never_miss_while_others_churn`: a set of keys stays resident (they are
//!   only ever replaced, atomically); writers churn other keys (inserts, invalidations,
//!   table rebuilds, slot recycling); no lookup of a resident key may miss.
//! - `racing_inserts_of_one_key_leave_one_valid_entry`: two threads replace one key
//!   10 000 times (last writer wins); it is never missing and always runs correctly.
//! - `no_jump_cache_returns_a_block_after_its_invalidation_or_replacement_returned`: a
//!   writer replaces and invalidates keys while two executors refill their jump caches
//!   from the shared index; once a retiring call has returned (and the executor has seen
//!   that), no lookup returns the retired block.
//! - `no_executor_runs_an_invalidated_block_after_synchronize_returned`: executors keep
//!   running blocks they looked up (no quiescent point between calls) while another
//!   thread invalidates them and calls `synchronize`; no call of an invalidated block
//!   begins after `synchronize` returned.
#![cfg(target_arch = "x86_64")]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use codecache::{CacheConfig, CacheError, EvictionPolicy, Executor, InsertMeta, UnifiedCodeCache};

fn block(key: u64, pad: usize) -> Vec<u8> {
    let mut v = vec![0x48, 0xB8];
    v.extend_from_slice(&key.to_le_bytes());
    v.push(0xC3);
    v.resize(11 + pad, 0xCC);
    v
}

fn call(ptr: *const u8) -> u64 {
    // SAFETY: `ptr` came from an executor lookup whose borrow is still live (the caller
    // has not announced quiescence), so it points at a published `mov rax, imm64; ret`
    // block in the RX view: a valid `extern "C" fn() -> u64`.
    let f: extern "C" fn() -> u64 = unsafe { std::mem::transmute(ptr) };
    f()
}

fn meta(k: u64) -> InsertMeta {
    InsertMeta {
        guest_start: k * 16,
        guest_end: k * 16 + 16,
        compile_cost: k % 7,
    }
}

/// Insert, retrying while executors still hold retired memory.
fn insert(c: &UnifiedCodeCache, k: u64, code: &[u8]) {
    loop {
        match c.insert_with(k, code, meta(k)) {
            Ok(_) => return,
            Err(CacheError::ReclaimPending { .. }) => std::thread::yield_now(),
            Err(e) => panic!("insert {k}: {e}"),
        }
    }
}

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// Runs at least `iters` lookups and keeps going until the writers are done, so the
/// executors overlap all of the churn (bounded: the writers do a fixed amount of work).
fn executor_loop(
    mut ex: Executor,
    keys: u64,
    iters: u64,
    seed: u64,
    calls: &AtomicU64,
    done: &AtomicBool,
) {
    let mut rng = Rng(seed);
    let mut i = 0u64;
    while i < iters || !done.load(Ordering::Relaxed) {
        i += 1;
        let k = rng.next() % keys;
        if let Some(c) = ex.lookup(k) {
            assert_eq!(
                call(c.as_ptr()),
                k,
                "block for key {k} returned another key"
            );
            calls.fetch_add(1, Ordering::Relaxed);
        }
        if i.is_multiple_of(16) {
            ex.quiescent();
        }
        if i.is_multiple_of(4096) {
            ex.offline();
            std::thread::yield_now();
        }
    }
}

#[test]
fn calls_always_return_their_key_under_churn() {
    for policy in [
        EvictionPolicy::Generational,
        EvictionPolicy::Lru,
        EvictionPolicy::FlushAll,
        EvictionPolicy::Hotness,
        EvictionPolicy::Fifo,
    ] {
        let c = UnifiedCodeCache::new(CacheConfig {
            max_entries: 200,
            max_memory_bytes: 8 * 1024,
            policy,
            jump_cache_bits: 6,
            jump_cache_key_shift: 0,
            ..CacheConfig::default()
        })
        .unwrap();
        const KEYS: u64 = 600;
        let calls = Arc::new(AtomicU64::new(0));
        let done = Arc::new(AtomicBool::new(false));
        let writers_done = Arc::new(AtomicU64::new(0));
        std::thread::scope(|s| {
            let (d, wd) = (Arc::clone(&done), Arc::clone(&writers_done));
            s.spawn(move || {
                while wd.load(Ordering::Relaxed) < 2 {
                    std::thread::yield_now();
                }
                d.store(true, Ordering::Relaxed);
            });
            for t in 0..2u64 {
                let ex = c.register_executor();
                let calls = Arc::clone(&calls);
                let done = Arc::clone(&done);
                s.spawn(move || executor_loop(ex, KEYS, 50_000, 0x9E37 + t, &calls, &done));
            }
            let c2 = c.clone();
            let done2 = Arc::clone(&writers_done);
            s.spawn(move || {
                let mut rng = Rng(77);
                for i in 0..20_000u64 {
                    let k = rng.next() % KEYS;
                    match i % 50 {
                        0 => {
                            c2.invalidate_range(k * 16, k * 16 + 64);
                            assert!(!c2.contains(k), "invalidated key {k} still found");
                        }
                        1 => {
                            c2.evict(3);
                        }
                        2 if i % 1000 == 2 => c2.flush(),
                        _ => insert(&c2, k, &block(k, (k as usize * 7 + i as usize) % 90)),
                    }
                }
                done2.fetch_add(1, Ordering::Relaxed);
            });
            let c3 = c.clone();
            let done3 = Arc::clone(&writers_done);
            s.spawn(move || {
                let mut rng = Rng(1234);
                for _ in 0..10_000u64 {
                    let k = rng.next() % KEYS;
                    insert(&c3, k, &block(k, (k as usize) % 40));
                }
                done3.fetch_add(1, Ordering::Relaxed);
            });
        });
        let st = c.stats();
        eprintln!(
            "{policy:?}: {} calls; {st:?}",
            calls.load(Ordering::Relaxed)
        );
        assert!(
            calls.load(Ordering::Relaxed) > 0,
            "{policy:?}: executors ran some code"
        );
        assert!(
            st.entries <= 200 && st.bytes_in_use + st.pending_reclaim_bytes <= 8 * 1024,
            "{policy:?}: {st:?}"
        );
        assert!(
            st.reclaimed_entries > 0,
            "{policy:?}: memory was recycled under the executors"
        );
    }
}

#[test]
fn resident_keys_never_miss_while_others_churn() {
    let c = UnifiedCodeCache::new(CacheConfig {
        max_entries: 4000,
        max_memory_bytes: 4 << 20,
        jump_cache_bits: 8,
        jump_cache_key_shift: 0,
        ..CacheConfig::default()
    })
    .unwrap();
    const RESIDENT: u64 = 64;
    for k in 0..RESIDENT {
        insert(&c, k, &block(k, 0));
    }
    let misses = AtomicU64::new(0);
    let lookups = AtomicU64::new(0);
    std::thread::scope(|s| {
        for t in 0..2u64 {
            let mut ex = c.register_executor();
            let (misses, lookups, c) = (&misses, &lookups, &c);
            s.spawn(move || {
                let mut rng = Rng(99 + t);
                for i in 0..200_000u64 {
                    let k = rng.next() % RESIDENT;
                    let found = if i.is_multiple_of(2) {
                        ex.lookup(k).map(|r| call(r.as_ptr()))
                    } else {
                        c.lookup(k).map(|r| r.key())
                    };
                    match found {
                        Some(v) => assert_eq!(v, k),
                        None => {
                            misses.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    lookups.fetch_add(1, Ordering::Relaxed);
                    if i.is_multiple_of(8) {
                        ex.quiescent();
                    }
                }
            });
        }
        s.spawn(|| {
            let mut rng = Rng(5);
            for i in 0..30_000u64 {
                let k = RESIDENT + rng.next() % 3000;
                if i.is_multiple_of(3) {
                    c.invalidate(k);
                } else {
                    insert(&c, k, &block(k, (i % 64) as usize));
                }
                if i.is_multiple_of(10) {
                    // Tier-2 style replacement of a resident key: stays resident throughout.
                    let r = rng.next() % RESIDENT;
                    insert(&c, r, &block(r, (i % 32) as usize));
                }
            }
        });
    });
    assert_eq!(
        misses.load(Ordering::Relaxed),
        0,
        "of {} lookups",
        lookups.load(Ordering::Relaxed)
    );
    let st = c.stats();
    assert!(
        st.replacements > 0 && st.invalidations > 0 && st.reclaimed_entries > 0,
        "{st:?}"
    );
}

#[test]
fn racing_inserts_of_one_key_leave_one_valid_entry() {
    let c = UnifiedCodeCache::new(CacheConfig {
        max_entries: 16,
        max_memory_bytes: 64 * 1024,
        ..CacheConfig::default()
    })
    .unwrap();
    const KEY: u64 = 0x4242;
    insert(&c, KEY, &block(KEY, 0));
    let mut ex = c.register_executor();
    let writers_done = AtomicU64::new(0);
    let mut bad = Vec::new();
    std::thread::scope(|s| {
        for t in 0..2usize {
            let (c, writers_done) = (&c, &writers_done);
            s.spawn(move || {
                for i in 0..5_000usize {
                    insert(c, KEY, &block(KEY, (i * 3 + t * 17) % 100));
                }
                writers_done.fetch_add(1, Ordering::Relaxed);
            });
        }
        // Meanwhile the key never disappears: replacement is atomic. The executor keeps
        // announcing quiescence until the writers are done (an online executor that
        // stopped announcing would hold every retired block back).
        // Failures are recorded, not asserted here: a panic would leave the executor
        // online and the writers waiting for it forever.
        while writers_done.load(Ordering::Relaxed) < 2 {
            let r = ex.lookup(KEY).map(|r| call(r.as_ptr()));
            if r != Some(KEY) {
                bad.push(r);
            }
            ex.quiescent();
        }
    });
    assert!(
        bad.is_empty(),
        "{} lookups returned {:?}; {:?}",
        bad.len(),
        &bad[..bad.len().min(3)],
        c.stats()
    );
    assert_eq!(c.len(), 1);
    let st = c.stats();
    assert_eq!((st.inserts, st.replacements), (10_001, 10_000));
    assert_eq!(ex.lookup(KEY).map(|r| call(r.as_ptr())), Some(KEY));
}

#[test]
fn no_jump_cache_returns_a_block_after_its_invalidation_or_replacement_returned() {
    // Blocks return a generation number, not their key: generation g of key k is
    // `k << 32 | g`. The writer publishes "every generation <= g of key k is retired"
    // only after the retiring call returned; an executor that has read that (Acquire)
    // must never get an older generation back, from its jump cache or the index.
    const KEYS: u64 = 4;
    const ROUNDS: u64 = 20_000;
    let c = UnifiedCodeCache::new(CacheConfig {
        max_entries: 64,
        max_memory_bytes: 64 * 1024,
        jump_cache_bits: 1,
        jump_cache_key_shift: 0,
        ..CacheConfig::default()
    })
    .unwrap();
    let retired: Vec<AtomicU64> = (0..KEYS).map(|_| AtomicU64::new(0)).collect();
    let done = AtomicBool::new(false);
    let bad = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for t in 0..2u64 {
            let mut ex = c.register_executor();
            let (retired, done, bad) = (&retired, &done, &bad);
            s.spawn(move || {
                let mut rng = Rng(17 + t);
                let mut n = 0u64;
                while !done.load(Ordering::Relaxed) || n < 10_000 {
                    n += 1;
                    let k = rng.next() % KEYS;
                    let floor = retired[k as usize].load(Ordering::Acquire);
                    if let Some(r) = ex.lookup(k) {
                        let v = call(r.as_ptr());
                        if v >> 32 != k || v & 0xffff_ffff <= floor {
                            // Recorded, not asserted: a panic here would leave the
                            // executor online and the writer waiting for it.
                            bad.lock().unwrap().push((k, floor, v));
                        }
                    }
                    // Mostly quiescent points; sometimes offline (parked: the next
                    // lookup must come back online before it returns anything).
                    if n.is_multiple_of(64) {
                        ex.offline();
                    } else {
                        ex.quiescent();
                    }
                }
            });
        }
        let mut rng = Rng(3);
        for g in 1..=ROUNDS {
            let k = rng.next() % KEYS;
            let kr = &retired[k as usize];
            // Whatever generation of k is resident is older than g.
            insert(&c, k, &block(k << 32 | g, (g % 48) as usize));
            kr.store(g - 1, Ordering::Release);
            if g % 3 == 0 {
                c.invalidate(k);
                kr.store(g, Ordering::Release);
            }
        }
        done.store(true, Ordering::Relaxed);
    });
    let bad = bad.into_inner().unwrap();
    assert!(
        bad.is_empty(),
        "{} stale results (key, retired up to, got): {:?}",
        bad.len(),
        &bad[..bad.len().min(5)]
    );
    let st = c.stats();
    assert!(
        st.replacements > 0 && st.invalidations > 0 && st.l1_hits > 0,
        "{st:?}"
    );
}

#[test]
fn no_executor_runs_an_invalidated_block_after_synchronize_returned() {
    // Block version g of key k returns `k << 32 | g`. Round g: insert version g of one
    // key, wait until an executor is inside it, invalidate the key's range, synchronize,
    // then publish `dead[k] = g` (Release). Executors run each block they look up several
    // times without a quiescent point in between (as chained code does between two
    // returns to the dispatcher), reading `dead[k]` (Acquire) before each call. A call
    // of version g that began after reading `dead[k] >= g` began after `synchronize`
    // returned, which is exactly what `synchronize` must rule out: the executor was
    // online, holding the block, when the call began, and cannot have passed a quiescent
    // point since it looked the block up (no false positives). The invalidator owns an
    // executor too: it alternates `Executor::synchronize` and, offline,
    // `UnifiedCodeCache::synchronize`.
    const KEYS: u64 = 4;
    const EXECUTORS: usize = 4;
    const ROUNDS: u64 = 1_000;
    const VERSION: u64 = 0xffff_ffff;
    let c = UnifiedCodeCache::new(CacheConfig {
        max_entries: 64,
        max_memory_bytes: 64 * 1024,
        jump_cache_bits: 4,
        jump_cache_key_shift: 0,
        ..CacheConfig::default()
    })
    .unwrap();
    let dead: Vec<AtomicU64> = (0..KEYS).map(|_| AtomicU64::new(0)).collect();
    // The block each executor is inside (its return value), 0 between blocks.
    let inside: Vec<AtomicU64> = (0..EXECUTORS).map(|_| AtomicU64::new(0)).collect();
    // Calls of a version whose invalidation had already begun (legitimate: these are the
    // calls `synchronize` has to wait for); counted to show the test reaches the race.
    let invalidating: Vec<AtomicU64> = (0..KEYS).map(|_| AtomicU64::new(0)).collect();
    let late_calls = AtomicU64::new(0);
    let calls = AtomicU64::new(0);
    let done = AtomicBool::new(false);
    let bad = std::sync::Mutex::new(Vec::new());
    let mut waited = std::time::Duration::ZERO;
    std::thread::scope(|s| {
        for (t, inside) in inside.iter().enumerate() {
            let mut ex = c.register_executor();
            let (dead, invalidating) = (&dead, &invalidating);
            let (late_calls, calls, done, bad) = (&late_calls, &calls, &done, &bad);
            s.spawn(move || {
                let mut rng = Rng(0x5eed + t as u64);
                let mut n = 0u64;
                while !done.load(Ordering::Relaxed) {
                    n += 1;
                    let k = rng.next() % KEYS;
                    if let Some(r) = ex.lookup(k) {
                        for i in 0..4 + rng.next() % 13 {
                            let floor = dead[k as usize].load(Ordering::Acquire);
                            let begun = invalidating[k as usize].load(Ordering::Relaxed);
                            let v = call(r.as_ptr());
                            let g = v & VERSION;
                            if v >> 32 != k || g <= floor {
                                // Recorded, not asserted: a panic here would leave the
                                // executor online and the invalidator waiting for it.
                                bad.lock().unwrap().push((k, floor, v));
                            }
                            if g <= begun {
                                late_calls.fetch_add(1, Ordering::Relaxed);
                            }
                            if i == 0 {
                                inside.store(v, Ordering::Relaxed);
                            }
                            calls.fetch_add(1, Ordering::Relaxed);
                            for _ in 0..128 {
                                std::hint::spin_loop();
                            }
                        }
                        inside.store(0, Ordering::Relaxed);
                    }
                    if n.is_multiple_of(8) {
                        ex.offline();
                        if n.is_multiple_of(64) {
                            std::thread::yield_now();
                        }
                    } else {
                        ex.quiescent();
                    }
                }
            });
        }
        let mut mine = c.register_executor();
        for g in 1..=ROUNDS {
            let k = g % KEYS;
            let ks = k as usize;
            let v = k << 32 | g;
            insert(&c, k, &block(v, (g % 48) as usize));
            // Until an executor is inside version g (bounded), so that it may still be
            // running it when it is invalidated.
            for _ in 0..1_000 {
                if inside.iter().any(|x| x.load(Ordering::Relaxed) == v) {
                    break;
                }
                std::thread::yield_now();
            }
            invalidating[ks].store(g, Ordering::Relaxed);
            assert_eq!(c.invalidate_range(k * 16, k * 16 + 16), 1);
            let t0 = std::time::Instant::now();
            if g.is_multiple_of(2) {
                mine.synchronize();
                assert!(mine.is_online());
            } else {
                mine.offline();
                c.synchronize();
            }
            waited += t0.elapsed();
            dead[ks].store(g, Ordering::Release);
            // The invalidator's executor runs code too (and comes back online).
            let other = (k + 1) % KEYS;
            if let Some(r) = mine.lookup(other) {
                assert_eq!(call(r.as_ptr()) >> 32, other);
            }
            mine.quiescent();
        }
        done.store(true, Ordering::Relaxed);
    });
    let bad = bad.into_inner().unwrap();
    eprintln!(
        "{} calls, {} of a block whose invalidation had begun; synchronize took {:?} on average",
        calls.load(Ordering::Relaxed),
        late_calls.load(Ordering::Relaxed),
        waited / ROUNDS as u32
    );
    assert!(
        bad.is_empty(),
        "{} calls of an invalidated block after synchronize returned (key, dead up to, got): {:?}",
        bad.len(),
        &bad[..bad.len().min(5)]
    );
    assert!(
        late_calls.load(Ordering::Relaxed) > 0,
        "the race was reached"
    );
}
