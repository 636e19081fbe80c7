//! Helpers shared by the integration tests: stores in temporary directories and
//! deterministic translations.
#![allow(dead_code, reason = "each test binary uses a different subset")]

use std::path::Path;

use codestore::{
    Fingerprint, KeySource, Location, Profile, ProfileEntry, ProgramId, Store, StoreConfig,
    Translation, hash_bytes,
};

pub const SECRET: &[u8] = b"integration-test secret key";

pub fn config(dir: &Path) -> StoreConfig {
    let mut c = StoreConfig::new(Location::Dir(dir.to_owned()));
    c.key = KeySource::Secret(SECRET.to_vec());
    c
}

pub fn open(dir: &Path) -> Store {
    Store::open(config(dir)).unwrap()
}

pub fn program(n: u8) -> ProgramId {
    ProgramId(hash_bytes(&[b'p', n]))
}

pub fn fp(n: u8) -> Fingerprint {
    Fingerprint::from_parts(&[b"translator", &[n]])
}

/// A translation whose every field depends on `key` and `version`.
pub fn tr(key: u64, version: u64, code_len: usize) -> Translation {
    Translation {
        key,
        guest_start: key,
        guest_end: key + 4 * (code_len as u64 + 1),
        guest_hash: hash_bytes(&key.to_le_bytes()),
        tier: (version % 3) as u8,
        compile_cost_ns: 1000 + version,
        heat: key ^ version,
        code: (0..code_len)
            .map(|i| (i as u64 * 31 + key + version) as u8)
            .collect(),
    }
}

pub fn trs(keys: impl IntoIterator<Item = u64>, version: u64, code_len: usize) -> Vec<Translation> {
    keys.into_iter().map(|k| tr(k, version, code_len)).collect()
}

pub fn profile(keys: impl IntoIterator<Item = u64>) -> Profile {
    Profile {
        entries: keys
            .into_iter()
            .map(|k| ProfileEntry {
                key: k,
                heat: k * 10 + 1,
            })
            .collect(),
    }
}

/// A profile as `load` returns it: hottest first, ties by key.
pub fn normalised(mut p: Profile) -> Profile {
    p.entries
        .sort_by(|a, b| b.heat.cmp(&a.heat).then(a.key.cmp(&b.key)));
    p
}

pub fn pack_path(dir: &Path, p: &ProgramId, f: &Fingerprint) -> std::path::PathBuf {
    dir.join("v1")
        .join(p.to_hex())
        .join(format!("{}.pack", f.to_hex()))
}

pub fn profile_path(dir: &Path, p: &ProgramId) -> std::path::PathBuf {
    dir.join("v1").join(p.to_hex()).join("profile")
}
