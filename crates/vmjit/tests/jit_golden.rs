//! Golden tests under the JIT: every guest in `guests/expected/` must produce exactly its
//! recorded stdout and exit code under `vmjit run --engine jit` in every configuration
//! the issue names: the default cache; a 64 KiB cache (constant eviction) under each
//! eviction policy; compiling on the guest thread (`--compile-threads 0`) and on two
//! compile threads. One module per guest, one test per configuration (generated from
//! build.rs's guest list).

mod common;

use std::ffi::OsString;

/// Runs guest `name` under the JIT with `opts` and checks stdout and exit code.
fn check(name: &str, opts: &[&str]) {
    let mut cmd: Vec<OsString> = vec![
        env!("CARGO_BIN_EXE_vmjit").into(),
        "run".into(),
        "--engine".into(),
        "jit".into(),
    ];
    cmd.extend(opts.iter().map(OsString::from));
    common::assert_matches_expected(&cmd, name, &format!("with {opts:?}"));
}

#[allow(
    unused_macros,
    reason = "used once per guest; none when guests/ is empty"
)]
macro_rules! case {
    ($name:ident) => {
        mod $name {
            fn check(opts: &[&str]) {
                super::check(stringify!($name), opts);
            }
            #[test]
            fn default_cache() {
                check(&[]);
            }
            #[test]
            fn cache_64k_hotness() {
                check(&["--cache-size", "64K", "--cache-policy", "hotness"]);
            }
            #[test]
            fn cache_64k_lru() {
                check(&["--cache-size", "64K", "--cache-policy", "lru"]);
            }
            #[test]
            fn cache_64k_fifo() {
                check(&["--cache-size", "64K", "--cache-policy", "fifo"]);
            }
            #[test]
            fn cache_64k_flush() {
                check(&["--cache-size", "64K", "--cache-policy", "flush"]);
            }
            #[test]
            fn cache_64k_generational() {
                check(&["--cache-size", "64K", "--cache-policy", "generational"]);
            }
            #[test]
            fn compile_on_the_guest_thread() {
                check(&["--compile-threads", "0"]);
            }
            #[test]
            fn two_compile_threads() {
                check(&["--compile-threads", "2"]);
            }
        }
    };
}

#[allow(unused_macros, reason = "used only when guests/ is empty")]
macro_rules! no_guests {
    () => {
        #[test]
        fn guests_exist() {
            panic!(
                "no guest programs found: guests/expected/*.stdout is empty or missing \
                 (build and record them with `make -C guests && make -C guests expected`)"
            );
        }
    };
}

include!(concat!(env!("OUT_DIR"), "/guest_cases.rs"));
