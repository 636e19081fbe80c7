//! W^X: while a cache with code exists, no mapping of this process is both writable and
//! executable (read from /proc/self/maps).

use codecache::{CacheConfig, UnifiedCodeCache};

#[test]
fn no_mapping_is_writable_and_executable() {
    let c = UnifiedCodeCache::new(CacheConfig {
        max_memory_bytes: 1 << 20,
        ..CacheConfig::default()
    })
    .unwrap();
    for k in 0..100 {
        c.insert(k, &[0xc3; 100]).unwrap();
    }
    let maps = std::fs::read_to_string("/proc/self/maps").expect("Linux /proc");
    let mut exec_shared = 0;
    for line in maps.lines() {
        let perms = line.split_whitespace().nth(1).unwrap_or("");
        assert!(
            !(perms.contains('w') && perms.contains('x')),
            "W+X mapping: {line}"
        );
        if perms == "r-xs" && line.contains("codecache") {
            exec_shared += 1;
        }
    }
    assert!(
        exec_shared >= 1,
        "the cache's RX view is a shared mapping of the memfd:\n{maps}"
    );
}
