//! Executors: jump-cache hits, coherence on eviction / invalidation / replacement / flush,
//! and quiescent-state reclamation (memory is not reused while an executor may run it).

use codecache::{CacheConfig, CacheError, EvictionPolicy, InsertMeta, UnifiedCodeCache};

fn cache(max_entries: usize, max_memory_bytes: usize, policy: EvictionPolicy) -> UnifiedCodeCache {
    UnifiedCodeCache::new(CacheConfig {
        max_entries,
        max_memory_bytes,
        policy,
        ..CacheConfig::default()
    })
    .expect("valid config")
}

#[test]
fn second_lookup_hits_the_jump_cache() {
    let c = cache(10, 4096, EvictionPolicy::Lru);
    c.insert(0x1000, &[0xc3]).unwrap();
    let ex = c.register_executor();
    let a = ex.lookup(0x1000).unwrap().as_ptr();
    let b = ex.lookup(0x1000).unwrap().as_ptr();
    assert_eq!(a, b);
    let s = c.stats();
    assert_eq!((s.index_hits, s.l1_hits, s.misses), (1, 1, 0));
    assert_eq!(s.executors, 1);
}

#[test]
fn jump_cache_layout_matches_the_probe_contract() {
    let c = cache(10, 4096, EvictionPolicy::Lru);
    let r = c.insert(0x1002, &[0xc3]).unwrap().as_ptr() as usize;
    let ex = c.register_executor();
    ex.lookup(0x1002).unwrap();
    let l = ex.jump_cache_layout();
    assert_eq!(
        (
            l.len,
            l.key_shift,
            l.entry_shift,
            l.key_offset,
            l.code_offset
        ),
        (4096, 1, 5, 0, 8)
    );
    assert_eq!(l.index(0x1002), (0x1002 >> 1) & 4095);
    let e = l.base + (l.index(0x1002) << l.entry_shift);
    // Read the entry the way generated code would.
    // SAFETY: `e` is inside the executor's live jump-cache array (index < len); the
    // fields are 8-byte aligned u64/usize atomics that we only read.
    let (key, code) = unsafe {
        (
            *((e + l.key_offset) as *const u64),
            *((e + l.code_offset) as *const usize),
        )
    };
    assert_eq!((key, code), (0x1002, r));
}

#[test]
fn eviction_invalidation_replacement_and_flush_clear_every_jump_cache() {
    let c = cache(2, 4096, EvictionPolicy::Fifo);
    let e1 = c.register_executor();
    let e2 = c.register_executor();
    c.insert(2, &[1]).unwrap();
    c.insert(4, &[2]).unwrap();
    for e in [&e1, &e2] {
        assert!(e.lookup(2).is_some());
        assert!(e.lookup(4).is_some());
    }
    c.insert(6, &[3]).unwrap(); // FIFO evicts 2
    assert!(e1.lookup(2).is_none() && e2.lookup(2).is_none());
    assert!(c.invalidate(4));
    assert!(e1.lookup(4).is_none() && e2.lookup(4).is_none());
    let old = e1.lookup(6).unwrap().as_ptr();
    c.insert(6, &[9, 9]).unwrap();
    let new = e1.lookup(6).unwrap();
    assert_ne!(new.as_ptr(), old);
    assert_eq!(new.size(), 2);
    c.flush();
    assert!(e1.lookup(6).is_none() && e2.lookup(6).is_none());
}

#[test]
fn retired_memory_is_not_reused_until_every_online_executor_is_quiescent() {
    let c = cache(100, 64, EvictionPolicy::Fifo);
    let mut ex = c.register_executor();
    let mut other = c.register_executor();
    c.insert(1, &[0xaa; 64]).unwrap();
    let held = ex.lookup(1).unwrap().as_ptr();
    // Needs the whole arena: key 1 is evicted but `ex` may still run it.
    let e = c.insert(2, &[0xbb; 64]).unwrap_err();
    assert!(
        matches!(
            e,
            CacheError::ReclaimPending {
                pending_bytes: 64,
                ..
            }
        ),
        "{e:?}"
    );
    assert!(!c.contains(1), "evicted from the index at once");
    // SAFETY: `held` points at 64 readable bytes of the RX view that were not reused.
    assert_eq!(unsafe { *held }, 0xaa);
    ex.quiescent();
    assert!(
        matches!(
            c.insert(2, &[0xbb; 64]),
            Err(CacheError::ReclaimPending { .. })
        ),
        "other not yet quiescent"
    );
    other.offline();
    let r = c.insert(2, &[0xbb; 64]).unwrap();
    assert_eq!(
        r.as_ptr(),
        held,
        "space reused once no executor can run the old block"
    );
    assert_eq!(c.stats().reclaimed_entries, 1);
}

#[test]
fn dropped_executors_do_not_block_reclamation() {
    let c = cache(100, 64, EvictionPolicy::Lru);
    let ex = c.register_executor();
    c.insert(1, &[1; 64]).unwrap();
    ex.lookup(1).unwrap();
    drop(ex);
    c.insert(2, &[2; 64]).unwrap();
    let s = c.stats();
    assert_eq!(
        (s.executors, s.index_hits),
        (0, 1),
        "counters of departed executors are kept"
    );
}

#[test]
fn executor_insert_reclaims_its_own_retirements() {
    let c = cache(100, 64, EvictionPolicy::FlushAll);
    let mut ex = c.register_executor();
    let meta = |k| InsertMeta {
        guest_start: k,
        guest_end: k + 4,
        compile_cost: 1,
    };
    let a = ex.insert_with(1, &[1; 64], meta(1)).unwrap().as_ptr();
    ex.lookup(1).unwrap();
    // A full flush to make room: as the only executor, it holds no reference (`&mut`), so
    // the flushed block's memory is reusable at once.
    let b = ex.insert_with(2, &[2; 64], meta(2)).unwrap().as_ptr();
    assert_eq!(a, b);
    assert!(ex.lookup(2).is_some() && ex.lookup(1).is_none());
}

#[test]
fn offline_executor_comes_back_online_on_lookup() {
    let c = cache(10, 4096, EvictionPolicy::Lru);
    c.insert(1, &[1]).unwrap();
    let mut ex = c.register_executor();
    ex.offline();
    assert!(!ex.is_online());
    assert!(ex.lookup(1).is_some());
    assert!(ex.is_online());
}

#[test]
fn jump_cache_hits_reach_the_shared_access_count_after_flush() {
    let c = cache(10, 4096, EvictionPolicy::Lru);
    c.insert(8, &[1]).unwrap();
    let mut ex = c.register_executor();
    for _ in 0..10 {
        ex.lookup(8).unwrap();
    }
    ex.flush_hits();
    assert_eq!(c.entry(8).unwrap().access_count, 10);
}

#[test]
fn reserved_key_never_hits_a_cleared_jump_cache_entry() {
    // A cleared jump-cache entry keeps key == EMPTY_KEY (u64::MAX) next to the retired
    // block's code address; u64::MAX always indexes the last entry, so a lookup of it
    // must not be taken for a hit there.
    let c = UnifiedCodeCache::new(CacheConfig {
        jump_cache_bits: 1,
        jump_cache_key_shift: 0,
        ..CacheConfig::default()
    })
    .unwrap();
    let ex = c.register_executor();
    c.insert(1, &[0xc3]).unwrap();
    assert!(ex.lookup(1).is_some());
    assert!(c.invalidate(1));
    assert!(ex.lookup(codecache::EMPTY_KEY).is_none());
    assert!(ex.lookup(1).is_none());
}

#[test]
fn offline_executor_is_back_online_before_a_jump_cache_hit_is_returned() {
    // Keys 0 and 2 index entries 0 and 1, the ones a parked executor uses; 0x1000 does
    // not. The arena holds one 64-byte block, so reusing it needs every online executor
    // to have passed a quiescent point.
    for key in [0x1000u64, 0, 2] {
        let c = cache(100, 64, EvictionPolicy::Fifo);
        let mut ex = c.register_executor();
        c.insert(key, &[0xaa; 64]).unwrap();
        assert!(ex.lookup(key).is_some(), "fills the jump cache");
        ex.offline();
        assert!(!ex.is_online());
        let held = ex.lookup(key).expect("still resident").as_ptr();
        assert!(ex.is_online(), "code is returned only once online again");
        // The block is protected again: evicting it cannot hand its memory out.
        assert!(
            matches!(
                c.insert(key + 1, &[0xbb; 64]),
                Err(CacheError::ReclaimPending { .. })
            ),
            "key {key:#x}"
        );
        // SAFETY: `held` points at 64 readable bytes of the RX view, not reused (above).
        assert_eq!(unsafe { *held }, 0xaa);
        let s = c.stats();
        assert_eq!(
            (s.index_hits, s.misses),
            (if key == 0x1000 { 1 } else { 2 }, 0)
        );
    }
}

#[test]
fn offline_executor_never_returns_code_retired_while_it_was_offline() {
    let c = cache(100, 64, EvictionPolicy::Fifo);
    let mut ex = c.register_executor();
    for key in [0u64, 2, 0x1000] {
        c.insert(key, &[0xaa; 64]).unwrap();
        assert!(ex.lookup(key).is_some());
        ex.offline();
        // Offline: nothing waits for `ex`, so the block's memory is reused at once.
        let new = c.insert(key + 1, &[0xbb; 64]).unwrap().as_ptr();
        assert!(ex.lookup(key).is_none(), "key {key:#x}");
        let got = ex.lookup(key + 1).expect("resident").as_ptr();
        assert_eq!(got, new);
        assert!(ex.is_online());
        assert!(c.invalidate(key + 1));
        ex.quiescent();
    }
}

#[test]
fn fifo_cursor_stops_at_space_an_executor_may_still_run() {
    let c = cache(100, 512, EvictionPolicy::Fifo);
    let mut ex = c.register_executor();
    let first = c.insert(0, &[0xaa; 128]).unwrap().as_ptr();
    assert!(ex.lookup(0).is_some());
    for k in 1..4 {
        c.insert(k, &[k as u8; 128]).unwrap();
    }
    // The cursor wraps to key 0's block: it is evicted, but `ex` may be running it.
    let e = c.insert(4, &[4; 128]).unwrap_err();
    assert!(
        matches!(
            e,
            CacheError::ReclaimPending {
                pending_bytes: 128,
                ..
            }
        ),
        "{e:?}"
    );
    assert!(!c.contains(0) && c.contains(1));
    // SAFETY: `first` points at 128 readable bytes of the RX view, not reused.
    assert_eq!(unsafe { *first }, 0xaa);
    ex.quiescent();
    assert_eq!(c.insert(4, &[4; 128]).unwrap().as_ptr(), first);
    assert!((1..5).all(|k| c.contains(k)));
}
