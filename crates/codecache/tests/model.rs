//! Model-based property test: random operation sequences against a reference model.
//!
//! The model is the set of keys inserted and not invalidated or replaced, with their
//! latest bytes and guest range. The policy may evict; the check is that the cache
//! holds a subset of the model, with exactly the model's bytes, that every key missing
//! from the cache is accounted for by an eviction counter, that a just-inserted key is
//! resident, that invalidated ranges are gone, and that both bounds always hold.

use std::collections::HashMap;

use codecache::{CacheConfig, EvictionPolicy, InsertMeta, UnifiedCodeCache};
use proptest::prelude::*;

#[derive(Clone, Debug)]
enum Op {
    Insert { key: u64, len: usize, fill: u8 },
    Lookup(u64),
    InvalidateRange(u64, u64),
    Invalidate(u64),
    Evict(usize),
    Flush,
    Decay,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0..48u64, 1..400usize, any::<u8>()).prop_map(|(key, len, fill)| Op::Insert { key, len, fill }),
        4 => (0..48u64).prop_map(Op::Lookup),
        1 => (0..48u64 * 8, 1..64u64).prop_map(|(lo, n)| Op::InvalidateRange(lo, lo + n)),
        1 => (0..48u64).prop_map(Op::Invalidate),
        1 => (0..5usize).prop_map(Op::Evict),
        1 => Just(Op::Flush),
        1 => Just(Op::Decay),
    ]
}

fn policy() -> impl Strategy<Value = EvictionPolicy> {
    prop_oneof![
        Just(EvictionPolicy::Hotness),
        Just(EvictionPolicy::Lru),
        Just(EvictionPolicy::Fifo),
        Just(EvictionPolicy::FlushAll),
        Just(EvictionPolicy::Generational),
    ]
}

fn bytes_at(c: &codecache::CodeRef<'_>) -> Vec<u8> {
    // SAFETY: single-threaded: the block `c` refers to is resident and mapped readable in
    // the RX view for `c.size()` bytes; nothing runs concurrently to evict it.
    unsafe { std::slice::from_raw_parts(c.as_ptr(), c.size()) }.to_vec()
}

fn range(key: u64, len: usize) -> (u64, u64) {
    (key * 8, key * 8 + 1 + (len as u64 % 16))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]
    #[test]
    fn cache_agrees_with_model(
        policy in policy(),
        max_entries in 1..40usize,
        max_memory in 400..6000usize,
        ops in proptest::collection::vec(op(), 1..150),
    ) {
        let c = UnifiedCodeCache::new(CacheConfig { max_entries, max_memory_bytes: max_memory, policy, ..CacheConfig::default() }).unwrap();
        let capacity = max_memory / 16 * 16;
        let mut model: HashMap<u64, (Vec<u8>, u64, u64)> = HashMap::new();
        let evicted = |c: &UnifiedCodeCache| {
            let e = c.stats().evictions;
            e.entries_limit + e.memory_limit + e.fragmentation + e.flushed + e.requested
        };
        for op in ops {
            let before = evicted(&c);
            match op {
                Op::Insert { key, len, fill } => {
                    let code = vec![fill; len];
                    let (lo, hi) = range(key, len);
                    let r = c.insert_with(key, &code, InsertMeta { guest_start: lo, guest_end: hi, compile_cost: len as u64 });
                    if len.div_ceil(16) * 16 > capacity {
                        prop_assert!(r.is_err());
                    } else {
                        prop_assert!(r.is_ok(), "{r:?}");
                        model.insert(key, (code.clone(), lo, hi));
                        let f = c.lookup(key);
                        prop_assert!(f.is_some(), "just-inserted key resident");
                        prop_assert_eq!(f.map(|f| bytes_at(&f)), Some(code));
                    }
                }
                Op::Lookup(k) => {
                    if let Some(f) = c.lookup(k) {
                        let m = model.get(&k);
                        prop_assert!(m.is_some(), "found a key the model does not have");
                        prop_assert_eq!(Some(&bytes_at(&f)), m.map(|m| &m.0));
                    }
                }
                Op::InvalidateRange(lo, hi) => {
                    let n = c.invalidate_range(lo, hi);
                    let hit: Vec<u64> = model.iter().filter(|(_, v)| v.1 < hi && v.2 > lo).map(|(k, _)| *k).collect();
                    let resident_hit = hit.iter().filter(|k| c.contains(**k)).count();
                    prop_assert_eq!(resident_hit, 0);
                    prop_assert!(n <= hit.len());
                    for k in hit { model.remove(&k); }
                }
                Op::Invalidate(k) => {
                    let was = c.contains(k);
                    prop_assert_eq!(c.invalidate(k), was);
                    prop_assert!(!c.contains(k));
                    model.remove(&k);
                }
                Op::Evict(n) => {
                    let live = c.len();
                    let done = c.evict(n);
                    prop_assert!(done <= live);
                    prop_assert_eq!(c.len(), live - done);
                }
                Op::Flush => {
                    c.flush();
                    prop_assert!(c.is_empty());
                    model.clear();
                }
                Op::Decay => c.decay_now(),
            }
            // Sync: keys the model has but the cache lost must be explained by evictions.
            let lost: Vec<u64> = model.keys().copied().filter(|k| !c.contains(*k)).collect();
            let evictions = (evicted(&c) - before) as usize;
            prop_assert!(lost.len() <= evictions, "lost {} keys, {} evictions", lost.len(), evictions);
            for k in lost { model.remove(&k); }
            let s = c.stats();
            prop_assert_eq!(s.entries, model.len());
            prop_assert!(s.entries <= max_entries);
            prop_assert!(s.bytes_in_use + s.pending_reclaim_bytes <= capacity);
            prop_assert_eq!(s.bytes_in_use, model.values().map(|v| v.0.len().div_ceil(16) * 16).sum::<usize>());
            prop_assert_eq!(s.bytes_in_use + s.free_bytes, capacity, "no executors: nothing pending");
        }
    }
}
