//! Behaviour of the cache through its public API: the original design's unit tests
//! (creation, insert/lookup, miss, eviction under max_entries, hot-entry ordering), the
//! same under max_memory_bytes pressure, replacement, invalidation, bad input, stats.

use codecache::{CacheConfig, CacheError, EvictionPolicy, InsertMeta, UnifiedCodeCache};

const POLICIES: [EvictionPolicy; 5] = [
    EvictionPolicy::Hotness,
    EvictionPolicy::Lru,
    EvictionPolicy::Fifo,
    EvictionPolicy::FlushAll,
    EvictionPolicy::Generational,
];

fn cache(max_entries: usize, max_memory_bytes: usize, policy: EvictionPolicy) -> UnifiedCodeCache {
    UnifiedCodeCache::new(CacheConfig {
        max_entries,
        max_memory_bytes,
        policy,
        ..CacheConfig::default()
    })
    .expect("valid config")
}

fn code(key: u64, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (key as usize).wrapping_add(i) as u8)
        .collect()
}

fn read(c: &codecache::CodeRef<'_>) -> Vec<u8> {
    // The RX view is readable; compare the bytes that were copied in.
    (0..c.size())
        .map(|i| {
            // SAFETY: `c` points at `c.size()` mapped, readable bytes of the cache's RX view and
            // nothing evicts in these single-threaded tests while we read.
            unsafe { *c.as_ptr().add(i) }
        })
        .collect()
}

#[test]
fn creation_with_default_config_is_empty() {
    let c = UnifiedCodeCache::new(CacheConfig::default()).unwrap();
    assert!(c.is_empty());
    let s = c.stats();
    assert_eq!(s.entries, 0);
    assert_eq!(s.max_entries, 10_000);
    assert_eq!(s.capacity_bytes, 100 * 1024 * 1024);
    assert_eq!(c.config().hotness_decay_factor, 0.99);
    assert_eq!(c.config().warmup_size, 1000);
}

#[test]
fn inserted_code_is_found_with_its_bytes() {
    let c = cache(100, 1 << 20, EvictionPolicy::Generational);
    let r = c.insert(0x1000, &code(1, 37)).unwrap();
    assert_eq!(r.size(), 37);
    let f = c.lookup(0x1000).unwrap();
    assert_eq!(f.as_ptr(), r.as_ptr());
    assert_eq!(read(&f), code(1, 37));
    assert_eq!(f.as_ptr() as usize % 16, 0, "code is 16-byte aligned");
}

#[test]
fn absent_key_misses_and_is_counted() {
    let c = cache(100, 1 << 20, EvictionPolicy::Lru);
    c.insert(1, &[0xc3]).unwrap();
    assert!(c.lookup(2).is_none());
    assert!(c.lookup(1).is_some());
    let s = c.stats();
    assert_eq!((s.index_hits, s.misses), (1, 1));
    assert!((s.hit_rate - 0.5).abs() < 1e-9);
}

#[test]
fn max_entries_is_never_exceeded_under_any_policy() {
    for p in POLICIES {
        let c = cache(50, 1 << 20, p);
        for k in 0..500u64 {
            c.insert(k, &code(k, 100)).unwrap();
            assert!(c.len() <= 50, "{p:?}");
            assert!(c.lookup(k).is_some(), "{p:?}: just-inserted key resident");
        }
        let s = c.stats();
        assert!(
            s.evictions.entries_limit + s.evictions.flushed >= 450,
            "{p:?}: {s:?}"
        );
    }
}

#[test]
fn max_memory_is_never_exceeded_under_any_policy() {
    for p in POLICIES {
        let c = cache(10_000, 64 * 1024, p);
        for k in 0..2000u64 {
            let len = 16 + (k as usize * 37) % 700;
            c.insert(k, &code(k, len)).unwrap();
            let s = c.stats();
            assert!(
                s.bytes_in_use + s.pending_reclaim_bytes <= 64 * 1024,
                "{p:?}"
            );
            assert!(c.lookup(k).is_some(), "{p:?}");
        }
        let s = c.stats();
        assert!(
            s.evictions.memory_limit + s.evictions.flushed + s.evictions.fragmentation > 0,
            "{p:?}"
        );
        assert!(s.peak_bytes_in_use <= 64 * 1024);
    }
}

#[test]
fn lru_evicts_least_recently_used_first() {
    let c = cache(3, 1 << 20, EvictionPolicy::Lru);
    c.insert(1, &[1]).unwrap();
    c.insert(2, &[2]).unwrap();
    c.insert(3, &[3]).unwrap();
    assert!(c.lookup(1).is_some());
    c.insert(4, &[4]).unwrap();
    assert!(c.contains(1) && c.contains(3) && c.contains(4));
    assert!(!c.contains(2), "2 was least recently used");
}

#[test]
fn fifo_evicts_oldest_insert_regardless_of_use() {
    let c = cache(3, 1 << 20, EvictionPolicy::Fifo);
    for k in 1..=3 {
        c.insert(k, &[k as u8]).unwrap();
    }
    for _ in 0..10 {
        c.lookup(1);
    }
    c.insert(4, &[4]).unwrap();
    assert!(!c.contains(1));
    assert!(c.contains(2) && c.contains(3) && c.contains(4));
}

#[test]
fn fifo_places_code_round_a_circular_buffer_and_evicts_in_insertion_order() {
    const CAP: usize = 4096;
    let c = cache(10_000, CAP, EvictionPolicy::Fifo);
    let mut order: Vec<u64> = Vec::new();
    let mut evicted = 0usize;
    let mut base = 0usize;
    let mut next = 0usize;
    let mut wraps = 0;
    for k in 0..400u64 {
        let len = 16 + (k as usize * 53) % 600;
        let at = c.insert(k, &code(k, len)).unwrap().as_ptr() as usize;
        if k == 0 {
            base = at;
        } else if at != next {
            // Only ever at the cursor, or wrapped to the start of the arena.
            assert_eq!(at, base, "key {k}: not at the cursor nor wrapped");
            assert!(
                next - base + len.div_ceil(16) * 16 > CAP,
                "wrapped but it fitted"
            );
            wraps += 1;
        }
        next = at + len.div_ceil(16) * 16;
        order.push(k);
        // Resident keys are exactly a suffix of insertion order: oldest evicted first.
        while !c.contains(order[evicted]) {
            evicted += 1;
        }
        assert!(
            order[evicted..].iter().all(|&k| c.contains(k)),
            "key {k}: a younger block left before an older one"
        );
        let s = c.stats();
        assert_eq!(s.entries, order.len() - evicted);
        assert_eq!(s.evictions.memory_limit as usize, evicted);
        assert!(s.bytes_in_use <= CAP && s.peak_bytes_in_use <= CAP);
        assert_eq!(s.bytes_in_use + s.free_bytes, CAP);
    }
    assert!(wraps >= 10, "the cursor went round {wraps} times");
}

#[test]
fn fifo_cursor_reuses_holes_and_evicts_only_what_is_in_its_way() {
    let c = cache(1000, 1024, EvictionPolicy::Fifo);
    let a: Vec<usize> = (0..8u64)
        .map(|k| c.insert(k, &code(k, 128)).unwrap().as_ptr() as usize)
        .collect();
    assert!(c.invalidate(1) && c.invalidate(2));
    assert_eq!(c.stats().free_bytes, 256);
    // The cursor is at the end: wrap, evict key 0 (in the way), use it and the holes.
    let p = c.insert(100, &code(100, 384)).unwrap().as_ptr() as usize;
    assert_eq!(p, a[0]);
    assert!(!c.contains(0) && (3..8).all(|k| c.contains(k)));
    // Next at the cursor: key 3 is in the way.
    let p = c.insert(101, &code(101, 64)).unwrap().as_ptr() as usize;
    assert_eq!(p, a[3]);
    assert!(!c.contains(3) && c.contains(4));
    let s = c.stats();
    assert_eq!((s.evictions.memory_limit, s.invalidations), (2, 2));
    // Free: the rest of key 3's block, in one piece.
    assert_eq!((s.free_bytes, s.largest_free_block), (64, 64));
}

#[test]
fn flush_all_empties_the_cache_when_full() {
    let c = cache(3, 1 << 20, EvictionPolicy::FlushAll);
    for k in 1..=4 {
        c.insert(k, &[k as u8]).unwrap();
    }
    assert_eq!(c.len(), 1);
    assert!(c.contains(4));
    assert_eq!(c.stats().flushes, 1);
}

#[test]
fn generational_keeps_reused_blocks_over_one_shot_blocks() {
    let c = cache(20, 1 << 20, EvictionPolicy::Generational);
    for k in 0..20 {
        c.insert(k, &[1]).unwrap();
    }
    for k in 0..5 {
        c.lookup(k);
    }
    for k in 100..140 {
        c.insert(k, &[1]).unwrap();
    }
    for k in 0..5 {
        assert!(c.contains(k), "reused block {k} was promoted and kept");
    }
}

#[test]
fn hotness_evicts_cold_blocks_and_keeps_hot_ones() {
    let c = cache(10, 1 << 20, EvictionPolicy::Hotness);
    for k in 0..10 {
        c.insert(k, &[1]).unwrap();
    }
    for _ in 0..50 {
        c.lookup(0);
    }
    for k in 10..15 {
        c.insert(k, &[1]).unwrap();
    }
    assert!(c.contains(0));
    assert_eq!(c.len(), 10);
}

#[test]
fn hot_entries_are_ordered_by_hotness() {
    let c = cache(100, 1 << 20, EvictionPolicy::Hotness);
    for k in 0..10 {
        c.insert_with(
            k,
            &[1],
            InsertMeta {
                guest_start: k * 4,
                guest_end: k * 4 + 4,
                compile_cost: 10,
            },
        )
        .unwrap();
    }
    // Key k is hit k times (all below 16, where counts are exact).
    for k in 0..10u64 {
        for _ in 0..k {
            c.lookup(k);
        }
    }
    let top = c.hottest(3);
    assert_eq!(top.iter().map(|e| e.key).collect::<Vec<_>>(), vec![9, 8, 7]);
    assert!(top[0].hotness_score >= top[1].hotness_score);
    assert_eq!(top[0].access_count, 9);
    assert_eq!(c.stats().hottest.len(), 10);
}

#[test]
fn sampled_hit_counts_are_unbiased_on_average() {
    // Above 16 hits a count is a Morris-style estimate (few shared writes); its mean over
    // many entries stays close to the true number of hits.
    let c = cache(100, 1 << 20, EvictionPolicy::Lru);
    for k in 0..64 {
        c.insert(k, &[1]).unwrap();
    }
    for _ in 0..1000 {
        for k in 0..64 {
            c.lookup(k);
        }
    }
    let mean = (0..64)
        .map(|k| c.entry(k).unwrap().access_count)
        .sum::<u64>() as f64
        / 64.0;
    assert!(
        (750.0..1250.0).contains(&mean),
        "mean recorded count {mean} for 1000 hits"
    );
}

#[test]
fn decay_lowers_hotness_of_idle_entries() {
    let c = cache(100, 1 << 20, EvictionPolicy::Hotness);
    c.insert(1, &[1]).unwrap();
    for _ in 0..100 {
        c.lookup(1);
    }
    let before = c.entry(1).unwrap().hotness_score;
    for _ in 0..500 {
        c.decay_now();
    }
    let after = c.entry(1).unwrap().hotness_score;
    assert!(after < before, "{after} < {before}");
    assert_eq!(c.stats().decays, 500);
}

#[test]
fn reinserting_a_key_replaces_its_code() {
    let c = cache(10, 1 << 20, EvictionPolicy::Lru);
    c.insert(7, &code(1, 20)).unwrap();
    c.insert(7, &code(2, 40)).unwrap();
    assert_eq!(c.len(), 1);
    let f = c.lookup(7).unwrap();
    assert_eq!(read(&f), code(2, 40));
    assert_eq!(c.stats().replacements, 1);
}

#[test]
fn invalidate_range_removes_exactly_the_intersecting_entries() {
    let c = cache(100, 1 << 20, EvictionPolicy::Generational);
    for k in 0..10u64 {
        c.insert_with(
            k * 0x100,
            &[1],
            InsertMeta {
                guest_start: k * 0x100,
                guest_end: k * 0x100 + 0x40,
                compile_cost: 1,
            },
        )
        .unwrap();
    }
    // [0x230, 0x310) intersects block 2 ([0x200,0x240)) and block 3 ([0x300,0x340)).
    assert_eq!(c.invalidate_range(0x230, 0x310), 2);
    assert!(!c.contains(0x200) && !c.contains(0x300));
    assert!(c.contains(0x100) && c.contains(0x400));
    assert_eq!(
        c.invalidate_range(0x240, 0x300),
        0,
        "touching ends do not intersect"
    );
    assert_eq!(c.invalidate_range(5, 5), 0);
    assert_eq!(c.stats().invalidations, 2);
}

#[test]
fn invalidate_range_finds_ranges_that_start_far_below_it() {
    let c = cache(10_000, 1 << 22, EvictionPolicy::Lru);
    let meta = |lo: u64, hi: u64| InsertMeta {
        guest_start: lo,
        guest_end: hi,
        compile_cost: 1,
    };
    // Many small blocks on many pages, one region spanning 1 MiB of guest code (a tier-2
    // region, or a block table), and one ending exactly where the query starts.
    for k in 0..4000u64 {
        let lo = 0x10_0000 + k * 0x100;
        c.insert_with(lo, &[1], meta(lo, lo + 0x20)).unwrap();
    }
    c.insert_with(1, &[2], meta(0x1000, 0x10_1000)).unwrap();
    c.insert_with(2, &[3], meta(0x8_0000, 0x10_0804)).unwrap();
    c.insert_with(3, &[4], meta(0xF_F000, 0x10_0800)).unwrap();
    // [0x10_0800, 0x10_0804): meets block 0x10_0800 and key 2 (starts 0.5 MiB below) and
    // key 1 (starts 1 MiB below); key 3 ends at 0x10_0800 exactly.
    assert_eq!(c.invalidate_range(0x10_0800, 0x10_0804), 3);
    assert!(!c.contains(1) && !c.contains(2) && !c.contains(0x10_0800));
    assert!(c.contains(3) && c.contains(0x10_0700) && c.contains(0x10_0900));
    // Once the long ranges are gone the short one is still found below the query.
    assert_eq!(c.invalidate_range(0x10_07FF, 0x10_0800), 1);
    assert!(!c.contains(3));
    assert_eq!(c.invalidate_range(0, 0x10_0000), 0);
    assert_eq!(c.invalidate_range(0x10_0000, 0x10_0001), 1);
    assert_eq!(c.len(), 4000 - 2);
    // A range as large as the address space is found from anywhere.
    c.insert_with(4, &[5], meta(1, u64::MAX)).unwrap();
    assert_eq!(c.invalidate_range(u64::MAX - 1, u64::MAX), 1);
    assert!(!c.contains(4));
}

#[test]
fn freed_memory_is_reused_for_blocks_of_other_sizes() {
    // The segregated-fit allocator (every policy but Fifo, whose circular buffer reuses
    // holes only when its cursor gets there: see the fifo_* tests).
    let c = cache(1000, 4096, EvictionPolicy::Lru);
    for k in 0..64 {
        c.insert(k, &code(k, 64)).unwrap();
    }
    assert_eq!(c.stats().free_bytes, 0);
    for k in (0..64).step_by(2) {
        c.invalidate(k);
    }
    let s = c.stats();
    assert_eq!(s.free_bytes, 2048);
    assert!(
        s.fragmentation > 0.9,
        "32 separate holes: {}",
        s.fragmentation
    );
    // 32-byte blocks fit the 64-byte holes without evicting anything.
    for k in 100..164 {
        c.insert(k, &code(k, 32)).unwrap();
    }
    let s = c.stats();
    assert_eq!(s.entries, 32 + 64);
    assert_eq!(s.evictions.memory_limit + s.evictions.fragmentation, 0);
}

#[test]
fn a_block_smaller_than_free_plus_evictable_space_always_fits() {
    for p in POLICIES {
        let c = cache(1000, 4096, p);
        for k in 0..64 {
            c.insert(k, &code(k, 64)).unwrap();
        }
        for k in (0..64).step_by(2) {
            c.invalidate(k);
        }
        // 2 KiB free but in 64-byte holes: a 3 KiB block must still be placed.
        c.insert(1000, &code(1, 3072)).unwrap();
        assert!(c.contains(1000), "{p:?}");
        // And one as large as the whole arena.
        c.insert(1001, &code(2, 4096)).unwrap();
        assert_eq!(c.len(), 1, "{p:?}");
    }
}

#[test]
fn bad_input_returns_typed_errors() {
    let c = cache(10, 4096, EvictionPolicy::Lru);
    assert!(matches!(c.insert(1, &[]), Err(CacheError::EmptyCode)));
    assert!(matches!(
        c.insert(1, &vec![0; 4097]),
        Err(CacheError::CodeTooLarge { .. })
    ));
    assert!(matches!(
        c.insert(u64::MAX, &[1]),
        Err(CacheError::ReservedKey(_))
    ));
    assert!(matches!(
        c.insert_with(
            1,
            &[1],
            InsertMeta {
                guest_start: 5,
                guest_end: 5,
                compile_cost: 0
            }
        ),
        Err(CacheError::InvalidRange { .. })
    ));
    assert!(c.is_empty());
    for bad in [
        CacheConfig {
            max_entries: 0,
            ..CacheConfig::default()
        },
        CacheConfig {
            max_memory_bytes: 0,
            ..CacheConfig::default()
        },
        CacheConfig {
            hotness_decay_factor: 0.0,
            ..CacheConfig::default()
        },
        CacheConfig {
            hotness_decay_factor: f64::NAN,
            ..CacheConfig::default()
        },
        CacheConfig {
            jump_cache_bits: 0,
            ..CacheConfig::default()
        },
        CacheConfig {
            cleanup_interval: std::time::Duration::ZERO,
            ..CacheConfig::default()
        },
        CacheConfig {
            max_entries: usize::MAX,
            ..CacheConfig::default()
        },
        CacheConfig {
            max_memory_bytes: usize::MAX,
            ..CacheConfig::default()
        },
    ] {
        assert!(matches!(
            UnifiedCodeCache::new(bad),
            Err(CacheError::InvalidConfig(_))
        ));
    }
}

#[test]
fn stats_serialize_to_json_and_report_as_text() {
    let c = cache(10, 4096, EvictionPolicy::Lru);
    c.insert_with(
        1,
        &[1; 10],
        InsertMeta {
            guest_start: 1,
            guest_end: 9,
            compile_cost: 42,
        },
    )
    .unwrap();
    c.lookup(1);
    let s = c.stats();
    assert_eq!(s.total_compilation_cost, 42);
    assert_eq!(s.bytes_in_use, 16);
    let j = serde_json::to_string(&s).unwrap();
    let back: codecache::CacheStats = serde_json::from_str(&j).unwrap();
    assert_eq!(back, s);
    let r = c.diagnostic_report();
    assert!(r.contains("1 index hits"), "{r}");
    assert!(r.contains("entries     1 / 10"), "{r}");
}

#[test]
fn extreme_keys_sizes_and_ranges_never_panic() {
    // Smallest arena: one 16-byte block; one entry.
    let c = UnifiedCodeCache::new(CacheConfig {
        max_entries: 1,
        max_memory_bytes: 16,
        jump_cache_bits: 1,
        jump_cache_key_shift: 32,
        ..CacheConfig::default()
    })
    .unwrap();
    let mut ex = c.register_executor();
    for key in [0, 1, u64::MAX - 1, 1 << 63] {
        // Parked while this thread inserts: the previous key's block can be reused.
        ex.offline();
        let end = key.saturating_add(16);
        let meta = InsertMeta {
            guest_start: key,
            guest_end: end,
            compile_cost: u64::MAX,
        };
        assert_eq!(c.insert_with(key, &[0xc3; 16], meta).unwrap().size(), 16);
        assert!(matches!(
            c.insert_with(key, &[0xc3; 17], meta),
            Err(CacheError::CodeTooLarge { .. })
        ));
        assert_eq!(ex.lookup(key).map(|r| r.key()), Some(key));
        assert_eq!(c.len(), 1);
        assert!(c.stats().bytes_in_use <= 16);
    }
    assert!(ex.lookup(u64::MAX).is_none());
    assert!(c.lookup(u64::MAX).is_none());
    assert_eq!(c.invalidate_range(10, 5), 0);
    assert_eq!(c.invalidate_range(7, 7), 0);
    assert_eq!(c.invalidate_range(0, u64::MAX), 1);
    assert!(c.is_empty());
    assert_eq!(c.evict(usize::MAX), 0);
    assert!(!c.invalidate(u64::MAX));
    assert!(c.entry(u64::MAX).is_none());
    assert!(c.hottest(usize::MAX).is_empty());
    c.flush();
    c.maintain();
    c.decay_now();
    ex.offline();
    assert!(c.insert(u64::MAX - 1, &[0xc3]).is_ok());
}

#[test]
fn entries_past_the_memory_committed_at_creation_work_like_the_first() {
    // Nothing committed up front: every slot chunk and code page is committed as the
    // writer first reaches it, across several chunks of 1024 slots.
    for commit_at_creation in [0, 4096, 1 << 20] {
        let c = UnifiedCodeCache::new(CacheConfig {
            max_entries: 5000,
            commit_at_creation,
            ..CacheConfig::default()
        })
        .expect("valid config");
        for k in 0..5000u64 {
            c.insert(k * 2, &code(k, 40 + (k as usize % 90)))
                .expect("room for every entry");
        }
        for k in (0..5000u64).step_by(7) {
            let got = c.lookup(k * 2).expect("resident");
            assert_eq!(read(&got), code(k, 40 + (k as usize % 90)));
        }
        // Freed slots are reused, and the range index still finds the rest.
        assert_eq!(c.invalidate_range(0, 2000), 1000);
        for k in 0..1000u64 {
            c.insert(k * 2, &code(k + 1, 64)).expect("reinserted");
        }
        assert_eq!(c.len(), 5000);
        assert_eq!(read(&c.lookup(10).expect("resident")), code(6, 64));
        assert_eq!(
            read(&c.lookup(9998).expect("resident")),
            code(4999, 40 + 4999 % 90)
        );
    }
}
