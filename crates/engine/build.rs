//! Computes `VMJIT_TRANSLATOR_HASH`: a hash of every source that decides the bytes of
//! translated code (the translator, the decoder, the JIT's dispatch conventions, the
//! code cache's jump-cache layout) and of `Cargo.lock` (the Cranelift version). It is
//! part of the code store's fingerprint, so code stored by one build never runs under
//! another. FNV-1a over the files' relative paths and contents, in sorted order.

use std::path::{Path, PathBuf};

fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() {
            files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

fn main() {
    let manifest =
        PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| ".".into()));
    let root = manifest.join("../..");
    let dirs = [
        root.join("crates/translate/src"),
        root.join("crates/rv64/src"),
        root.join("crates/codecache/src"),
        manifest.join("src/jit"),
        manifest.join("src/memory"),
    ];
    let mut all = Vec::new();
    for d in &dirs {
        println!("cargo:rerun-if-changed={}", d.display());
        files(d, &mut all);
    }
    let lock = root.join("Cargo.lock");
    println!("cargo:rerun-if-changed={}", lock.display());
    all.push(lock);
    all.sort();
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |bytes: &[u8]| {
        for &b in bytes {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    };
    for f in &all {
        let rel = f.strip_prefix(&root).unwrap_or(f);
        eat(rel.to_string_lossy().as_bytes());
        eat(&std::fs::read(f).unwrap_or_default());
    }
    println!("cargo:rustc-env=VMJIT_TRANSLATOR_HASH={h:016x}");
}
