//! Declares the `loom` cfg (`RUSTFLAGS="--cfg loom"` runs `tests/loom.rs` against loom's
//! model-checked atomics; see `src/sync.rs`), so normal builds do not warn about it.
fn main() {
    println!("cargo::rustc-check-cfg=cfg(loom)");
}
