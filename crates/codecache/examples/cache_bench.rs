//! Benchmarks of the unified code cache (speed lives here, not in tests).
//!
//! `cargo run --release -p codecache --example cache_bench` prints tables;
//! `-- --json` prints one JSON object instead.
//!
//! (a) The original design's workload, exactly: fill 10 000 entries of 100-byte code;
//!     100 000 lookups where lookup i hashes i with std's DefaultHasher and goes to a
//!     resident key (hash % 10 000) when i % 5 != 0 (80 %) and to an absent key
//!     (10 000 + hash % 1 000) otherwise (20 %); hotspot run: 1 000 entries, 50 000
//!     lookups, 80 % on the first 200 keys. Key streams are generated before the clock
//!     starts; only the cache calls are timed; a std HashMap does the same in the same run.
//!     Also timed: `Executor::quiescent` alone, and an L1-hit lookup followed by
//!     `quiescent` (the cache work of one dispatch-loop iteration).
//! (b) Capacity pressure: Zipf (s = 0.8, 1.1) and hot-loop-plus-scan streams over 20 000
//!     keys, cache = 10 / 25 / 50 % of the keys: miss ratio of every policy, of moka and
//!     quick_cache, and of Belady's MIN.
//! (c) Concurrent lookup throughput at 1 and 2 threads (shared index and jump cache).
//!
//! Timings are medians of REPS repetitions. The fill's cache is created outside its
//! clock (creation commits the arena's first MiB: reported as `create_us`). The benchmark configures the jump cache with
//! 2^14 entries and key shift 0 because its keys are consecutive integers, not 2-byte
//! aligned guest addresses.

use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeSet, HashMap};
use std::hash::{Hash, Hasher};
use std::hint::black_box;
use std::sync::Barrier;
use std::time::Instant;

use codecache::{CacheConfig, EvictionPolicy, UnifiedCodeCache};

const REPS: usize = 7;

fn h(i: u64) -> u64 {
    let mut s = DefaultHasher::new();
    i.hash(&mut s);
    s.finish()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn cfg(max_entries: usize, policy: EvictionPolicy) -> CacheConfig {
    CacheConfig {
        max_entries,
        policy,
        jump_cache_bits: 14,
        jump_cache_key_shift: 0,
        ..CacheConfig::default()
    }
}

fn stream_a() -> Vec<u64> {
    (0..100_000u64)
        .map(|i| {
            if i % 5 != 0 {
                h(i) % 10_000
            } else {
                10_000 + h(i) % 1_000
            }
        })
        .collect()
}

fn stream_hot() -> Vec<u64> {
    (0..50_000u64)
        .map(|i| if i % 5 != 0 { h(i) % 200 } else { h(i) % 1_000 })
        .collect()
}

struct A {
    /// Creating the cache the fill goes into (outside the fill's clock), microseconds.
    create_us: f64,
    fill_per_sec: f64,
    fill_warm_per_sec: f64,
    lookup_mean_ns: f64,
    l1_lookup_mean_ns: f64,
    executor_lookup_mean_ns: f64,
    /// `Executor::quiescent` alone, one executor, no other thread.
    quiescent_mean_ns: f64,
    /// One dispatch-loop iteration's cache work: an L1-hit lookup, then `quiescent`.
    dispatch_mean_ns: f64,
    hashmap_lookup_mean_ns: f64,
    /// Loop floor: the same resident-key loop reading a plain array of (key, code) pairs.
    array_floor_ns: f64,
    hit_rate: f64,
    hot_hit_rate: f64,
    hot_l1_hit_rate: f64,
    hot_lookup_mean_ns: f64,
    hot_executor_lookup_mean_ns: f64,
    hot_hashmap_lookup_mean_ns: f64,
}

fn time_ns(n: usize, f: impl FnOnce()) -> f64 {
    let t = Instant::now();
    f();
    t.elapsed().as_nanos() as f64 / n as f64
}

fn workload_a() -> A {
    let code = vec![0xC3u8; 100];
    let keys = stream_a();
    let hot = stream_hot();
    let resident: Vec<u64> = keys.iter().copied().filter(|&k| k < 10_000).collect();
    let (mut fill, mut fill_warm, mut lk, mut l1, mut ex_all, mut hm) =
        (vec![], vec![], vec![], vec![], vec![], vec![]);
    let (mut qs, mut disp) = (vec![], vec![]);
    let mut create = vec![];
    let (mut hot_lk, mut hot_ex, mut hot_hm) = (vec![], vec![], vec![]);
    let mut floor = vec![];
    let array: Vec<(u64, usize)> = (0..16_384u64).map(|k| (k, k as usize * 128)).collect();
    let mut hit_rate = 0.0;
    let mut hot_hit_rate = 0.0;
    let mut hot_l1_hit_rate = 0.0;
    for _ in 0..REPS {
        let t = Instant::now();
        let c = UnifiedCodeCache::new(cfg(10_000, EvictionPolicy::Generational)).expect("cache");
        create.push(t.elapsed().as_secs_f64() * 1e6);
        let ns = time_ns(10_000, || {
            for k in 0..10_000u64 {
                black_box(c.insert(k, &code).expect("insert"));
            }
        });
        fill.push(1e9 / ns);
        c.flush();
        let ns = time_ns(10_000, || {
            for k in 0..10_000u64 {
                black_box(c.insert(k, &code).expect("insert"));
            }
        });
        fill_warm.push(1e9 / ns);
        let before = c.stats();
        lk.push(time_ns(keys.len(), || {
            for &k in &keys {
                black_box(c.lookup(k));
            }
        }));
        let after = c.stats();
        let hits = (after.index_hits - before.index_hits) as f64;
        let all = hits + (after.misses - before.misses) as f64;
        hit_rate = hits / all;
        let mut ex = c.register_executor();
        for &k in &keys {
            black_box(ex.lookup(k));
        }
        l1.push(time_ns(resident.len(), || {
            for &k in &resident {
                black_box(ex.lookup(k));
            }
        }));
        ex_all.push(time_ns(keys.len(), || {
            for &k in &keys {
                black_box(ex.lookup(k));
            }
        }));
        qs.push(time_ns(resident.len(), || {
            for _ in &resident {
                ex.quiescent();
            }
        }));
        disp.push(time_ns(resident.len(), || {
            for &k in &resident {
                black_box(ex.lookup(k));
                ex.quiescent();
            }
        }));
        drop(ex);
        floor.push(time_ns(resident.len(), || {
            for &k in &resident {
                black_box(array[k as usize & 16_383]);
            }
        }));
        let mut map: HashMap<u64, (usize, u32)> = HashMap::new();
        for k in 0..10_000u64 {
            map.insert(k, (k as usize, 100));
        }
        hm.push(time_ns(keys.len(), || {
            for &k in &keys {
                black_box(map.get(&k));
            }
        }));
        // Hotspot run.
        let c = UnifiedCodeCache::new(cfg(1_000, EvictionPolicy::Generational)).expect("cache");
        for k in 0..1_000u64 {
            c.insert(k, &code).expect("insert");
        }
        hot_lk.push(time_ns(hot.len(), || {
            for &k in &hot {
                black_box(c.lookup(k));
            }
        }));
        let s = c.stats();
        hot_hit_rate = s.index_hits as f64 / (s.index_hits + s.misses) as f64;
        let ex = c.register_executor();
        hot_ex.push(time_ns(hot.len(), || {
            for &k in &hot {
                black_box(ex.lookup(k));
            }
        }));
        drop(ex);
        let s2 = c.stats();
        hot_l1_hit_rate = (s2.l1_hits - s.l1_hits) as f64 / hot.len() as f64;
        let mut map: HashMap<u64, (usize, u32)> = HashMap::new();
        for k in 0..1_000u64 {
            map.insert(k, (k as usize, 100));
        }
        hot_hm.push(time_ns(hot.len(), || {
            for &k in &hot {
                black_box(map.get(&k));
            }
        }));
    }
    A {
        create_us: median(create),
        fill_per_sec: median(fill),
        fill_warm_per_sec: median(fill_warm),
        lookup_mean_ns: median(lk),
        l1_lookup_mean_ns: median(l1),
        executor_lookup_mean_ns: median(ex_all),
        quiescent_mean_ns: median(qs),
        dispatch_mean_ns: median(disp),
        hashmap_lookup_mean_ns: median(hm),
        array_floor_ns: median(floor),
        hit_rate,
        hot_hit_rate,
        hot_l1_hit_rate,
        hot_lookup_mean_ns: median(hot_lk),
        hot_executor_lookup_mean_ns: median(hot_ex),
        hot_hashmap_lookup_mean_ns: median(hot_hm),
    }
}

// ---------------------------------------------------------------- (b) pressure

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

const KEYS: usize = 20_000;
const ACCESSES: usize = 400_000;

fn zipf(s: f64, seed: u64) -> Vec<u64> {
    let mut cdf = Vec::with_capacity(KEYS);
    let mut acc = 0.0;
    for r in 1..=KEYS {
        acc += 1.0 / (r as f64).powf(s);
        cdf.push(acc);
    }
    let mut rng = Rng(seed);
    // Popularity rank -> key: a fixed permutation, so hot keys are spread out.
    let mut perm: Vec<u64> = (0..KEYS as u64).collect();
    for i in (1..perm.len()).rev() {
        perm.swap(i, (rng.next() % (i as u64 + 1)) as usize);
    }
    (0..ACCESSES)
        .map(|_| {
            let u = rng.unit() * acc;
            perm[cdf.partition_point(|&c| c < u).min(KEYS - 1)]
        })
        .collect()
}

/// A hot loop (1 000 keys, 70 % of accesses) interleaved with a cyclic scan over all the
/// other keys (30 %): the scan is longer than any cache size and never reused soon.
fn loop_scan(seed: u64) -> Vec<u64> {
    let mut rng = Rng(seed);
    let mut scan = 1_000u64;
    (0..ACCESSES)
        .map(|_| {
            if rng.next() % 10 < 7 {
                rng.next() % 1_000
            } else {
                scan += 1;
                if scan >= KEYS as u64 {
                    scan = 1_000;
                }
                scan
            }
        })
        .collect()
}

fn miss_ratio_cache(stream: &[u64], cap: usize, policy: EvictionPolicy) -> f64 {
    let c = UnifiedCodeCache::new(CacheConfig {
        max_entries: cap,
        policy,
        ..CacheConfig::default()
    })
    .expect("cache");
    let code = [0xC3u8; 100];
    let mut misses = 0usize;
    for &k in stream {
        if c.lookup(k).is_none() {
            misses += 1;
            c.insert(k, &code).expect("insert");
        }
    }
    misses as f64 / stream.len() as f64
}

fn miss_ratio_moka(stream: &[u64], cap: usize) -> f64 {
    let c: moka::sync::Cache<u64, ()> = moka::sync::Cache::new(cap as u64);
    let mut misses = 0usize;
    for &k in stream {
        if c.get(&k).is_none() {
            misses += 1;
            c.insert(k, ());
        }
    }
    misses as f64 / stream.len() as f64
}

fn miss_ratio_quick(stream: &[u64], cap: usize) -> f64 {
    let mut c: quick_cache::unsync::Cache<u64, ()> = quick_cache::unsync::Cache::new(cap);
    let mut misses = 0usize;
    for &k in stream {
        if c.get(&k).is_none() {
            misses += 1;
            c.insert(k, ());
        }
    }
    misses as f64 / stream.len() as f64
}

fn miss_ratio_belady(stream: &[u64], cap: usize) -> f64 {
    let n = stream.len();
    let mut next = vec![u64::MAX; n];
    let mut last: HashMap<u64, usize> = HashMap::new();
    for i in (0..n).rev() {
        if let Some(&j) = last.get(&stream[i]) {
            next[i] = j as u64;
        }
        last.insert(stream[i], i);
    }
    let mut set: BTreeSet<(u64, u64)> = BTreeSet::new();
    let mut cur: HashMap<u64, u64> = HashMap::new();
    let mut misses = 0;
    for (i, &k) in stream.iter().enumerate() {
        if let Some(nx) = cur.get(&k).copied() {
            set.remove(&(nx, k));
        } else {
            misses += 1;
            if cur.len() >= cap
                && let Some((_, victim)) = set.pop_last()
            {
                cur.remove(&victim);
            }
        }
        set.insert((next[i], k));
        cur.insert(k, next[i]);
    }
    misses as f64 / n as f64
}

const POLICIES: [(EvictionPolicy, &str); 5] = [
    (EvictionPolicy::Hotness, "hotness"),
    (EvictionPolicy::Lru, "lru"),
    (EvictionPolicy::Fifo, "fifo"),
    (EvictionPolicy::FlushAll, "flush_all"),
    (EvictionPolicy::Generational, "generational"),
];

struct PressureRow {
    stream: String,
    cache_pct: usize,
    results: Vec<(String, f64)>,
}

fn pressure() -> Vec<PressureRow> {
    let streams: Vec<(String, Vec<u64>)> = vec![
        ("zipf_0.8".into(), zipf(0.8, 11)),
        ("zipf_1.1".into(), zipf(1.1, 12)),
        ("loop_scan".into(), loop_scan(13)),
    ];
    let mut rows = Vec::new();
    for (name, s) in &streams {
        for pct in [10usize, 25, 50] {
            let cap = KEYS * pct / 100;
            let mut results = Vec::new();
            for (p, pname) in POLICIES {
                results.push((pname.to_string(), miss_ratio_cache(s, cap, p)));
            }
            results.push(("moka".into(), miss_ratio_moka(s, cap)));
            results.push(("quick_cache".into(), miss_ratio_quick(s, cap)));
            results.push(("belady_min".into(), miss_ratio_belady(s, cap)));
            rows.push(PressureRow {
                stream: name.clone(),
                cache_pct: pct,
                results,
            });
        }
    }
    rows
}

// ---------------------------------------------------------------- (c) threads

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    /// `UnifiedCodeCache::lookup` (shared index).
    Index,
    /// `Executor::lookup` (jump cache, shared index behind it).
    Executor,
    /// Control: each thread looks up its own private std HashMap; shows how much
    /// parallelism the machine offered during the run (other processes share it).
    PrivateHashMap,
}

fn throughput(threads: usize, mode: Mode) -> f64 {
    let c = UnifiedCodeCache::new(cfg(10_000, EvictionPolicy::Generational)).expect("cache");
    let code = [0xC3u8; 100];
    for k in 0..10_000u64 {
        c.insert(k, &code).expect("insert");
    }
    let keys = stream_a();
    const ROUNDS: usize = 20;
    let mut v = Vec::new();
    for _ in 0..REPS {
        let barrier = Barrier::new(threads + 1);
        let t = std::thread::scope(|s| {
            for t in 0..threads {
                let (c, keys, barrier) = (&c, &keys, &barrier);
                s.spawn(move || {
                    let ex = c.register_executor();
                    let map: HashMap<u64, (usize, u32)> =
                        (0..10_000u64).map(|k| (k, (k as usize, 100))).collect();
                    let off = t * 7919;
                    for &k in keys {
                        black_box(ex.lookup(k));
                    }
                    barrier.wait();
                    for r in 0..ROUNDS {
                        for i in 0..keys.len() {
                            let k = keys[(i + off + r) % keys.len()];
                            match mode {
                                Mode::Executor => {
                                    black_box(ex.lookup(k));
                                }
                                Mode::Index => {
                                    black_box(c.lookup(k));
                                }
                                Mode::PrivateHashMap => {
                                    black_box(map.get(&k));
                                }
                            }
                        }
                    }
                });
            }
            barrier.wait();
            Instant::now()
        });
        let secs = t.elapsed().as_secs_f64();
        v.push((threads * ROUNDS * keys.len()) as f64 / secs);
    }
    median(v)
}

fn main() {
    let json = std::env::args().any(|a| a == "--json");
    if std::env::args().any(|a| a == "--only-c") {
        let (t1, t2) = (throughput(1, Mode::Index), throughput(2, Mode::Index));
        let (e1, e2) = (throughput(1, Mode::Executor), throughput(2, Mode::Executor));
        let (h1, h2) = (
            throughput(1, Mode::PrivateHashMap),
            throughput(2, Mode::PrivateHashMap),
        );
        println!(
            "index {:.1} -> {:.1} M/s ({:.2}x); executor {:.1} -> {:.1} M/s ({:.2}x); control {:.2}x",
            t1 / 1e6,
            t2 / 1e6,
            t2 / t1,
            e1 / 1e6,
            e2 / 1e6,
            e2 / e1,
            h2 / h1
        );
        return;
    }
    let a = workload_a();
    if std::env::args().any(|a| a == "--only-a") {
        println!(
            "create {:.0} us fill {:.0}/s warm {:.0}/s lookup {:.2} ns l1 {:.2} ns exec {:.2} ns quiescent {:.2} ns dispatch {:.2} ns hashmap {:.2} ns hot {:.2}/{:.2}/{:.2}",
            a.create_us,
            a.fill_per_sec,
            a.fill_warm_per_sec,
            a.lookup_mean_ns,
            a.l1_lookup_mean_ns,
            a.executor_lookup_mean_ns,
            a.quiescent_mean_ns,
            a.dispatch_mean_ns,
            a.hashmap_lookup_mean_ns,
            a.hot_lookup_mean_ns,
            a.hot_executor_lookup_mean_ns,
            a.hot_hashmap_lookup_mean_ns
        );
        return;
    }
    let t1 = throughput(1, Mode::Index);
    let t2 = throughput(2, Mode::Index);
    let e1 = throughput(1, Mode::Executor);
    let e2 = throughput(2, Mode::Executor);
    let h1 = throughput(1, Mode::PrivateHashMap);
    let h2 = throughput(2, Mode::PrivateHashMap);
    let p = pressure();
    if json {
        let mut pressure = serde_json::Map::new();
        for r in &p {
            let mut m = serde_json::Map::new();
            for (k, v) in &r.results {
                m.insert(k.clone(), serde_json::json!(v));
            }
            pressure.insert(
                format!("{}_cache{}pct", r.stream, r.cache_pct),
                serde_json::Value::Object(m),
            );
        }
        let out = serde_json::json!({
            "create_us": a.create_us,
            "fill_per_sec": a.fill_per_sec,
            "fill_warm_per_sec": a.fill_warm_per_sec,
            "lookup_per_sec": 1e9 / a.lookup_mean_ns,
            "lookup_mean_ns": a.lookup_mean_ns,
            "l1_lookup_mean_ns": a.l1_lookup_mean_ns,
            "executor_lookup_mean_ns": a.executor_lookup_mean_ns,
            "quiescent_mean_ns": a.quiescent_mean_ns,
            "dispatch_mean_ns": a.dispatch_mean_ns,
            "hashmap_lookup_mean_ns": a.hashmap_lookup_mean_ns,
            "array_loop_floor_ns": a.array_floor_ns,
            "hit_rate": a.hit_rate,
            "hot_hit_rate": a.hot_hit_rate,
            "hot_l1_hit_rate": a.hot_l1_hit_rate,
            "hot_lookup_mean_ns": a.hot_lookup_mean_ns,
            "hot_executor_lookup_mean_ns": a.hot_executor_lookup_mean_ns,
            "hot_hashmap_lookup_mean_ns": a.hot_hashmap_lookup_mean_ns,
            "threads1_lookup_per_sec": t1,
            "threads2_lookup_per_sec": t2,
            "threads2_speedup": t2 / t1,
            "threads1_executor_lookup_per_sec": e1,
            "threads2_executor_lookup_per_sec": e2,
            "threads2_executor_speedup": e2 / e1,
            "threads2_control_private_hashmap_speedup": h2 / h1,
            "pressure": pressure,
        });
        println!("{out}");
        return;
    }
    println!("(a) original workload (median of {REPS})");
    println!(
        "  create the cache (outside the clock) {:>12.0} us",
        a.create_us
    );
    println!(
        "  fill 10 000 x 100 B, fresh arena     {:>12.0} inserts/s",
        a.fill_per_sec
    );
    println!(
        "  fill again after flush (warm pages)  {:>12.0} inserts/s",
        a.fill_warm_per_sec
    );
    println!(
        "  {:<38}{:>10} {:>10}",
        "lookup mean (ns)", "cache", "HashMap"
    );
    println!(
        "  {:<38}{:>10.2} {:>10.2}",
        "shared index, 100k mixed (80/20)", a.lookup_mean_ns, a.hashmap_lookup_mean_ns
    );
    println!(
        "  {:<38}{:>10.2}",
        "executor, L1 hits (resident keys)", a.l1_lookup_mean_ns
    );
    println!(
        "  {:<38}{:>10.2}",
        "executor, 100k mixed (L1 + misses)", a.executor_lookup_mean_ns
    );
    println!(
        "  {:<38}{:>10.2}",
        "executor, quiescent() alone", a.quiescent_mean_ns
    );
    println!(
        "  {:<38}{:>10.2}",
        "executor, L1 hit + quiescent()", a.dispatch_mean_ns
    );
    println!(
        "  {:<38}{:>10.2} {:>10.2}",
        "hotspot 50k, shared index", a.hot_lookup_mean_ns, a.hot_hashmap_lookup_mean_ns
    );
    println!(
        "  {:<38}{:>10.2}",
        "hotspot 50k, executor", a.hot_executor_lookup_mean_ns
    );
    println!(
        "  {:<38}{:>10.2}",
        "loop floor: plain array, same keys", a.array_floor_ns
    );
    println!(
        "  hit rate {:.3}, hotspot hit rate {:.3} (L1 {:.3})",
        a.hit_rate, a.hot_hit_rate, a.hot_l1_hit_rate
    );
    println!("(c) concurrent lookups (stream (a), Mlookups/s)");
    println!(
        "  shared index: 1 thread {:.1}, 2 threads {:.1}, speedup {:.2}x",
        t1 / 1e6,
        t2 / 1e6,
        t2 / t1
    );
    println!(
        "  executor L1 : 1 thread {:.1}, 2 threads {:.1}, speedup {:.2}x",
        e1 / 1e6,
        e2 / 1e6,
        e2 / e1
    );
    println!(
        "  control (private HashMap per thread): speedup {:.2}x",
        h2 / h1
    );
    println!("(b) miss ratio under pressure ({KEYS} keys, {ACCESSES} accesses)");
    if let Some(r) = p.first() {
        print!("  {:<12}{:>6}", "stream", "cache");
        for (k, _) in &r.results {
            print!("{:>13}", k);
        }
        println!();
    }
    for r in &p {
        print!("  {:<12}{:>5}%", r.stream, r.cache_pct);
        for (_, v) in &r.results {
            print!("{:>13.4}", v);
        }
        println!();
    }
}
