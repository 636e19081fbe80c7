//! `vmjit run --crosscheck`: every guest in `guests/expected/` runs with the interpreter
//! as a shadow VM beside the JIT and must produce its recorded stdout and exit code with
//! no divergence, with the default JIT, a 64 KiB cache (constant eviction) and tier 2
//! made aggressive (`--tier2-threshold 100`); coremark, the one long guest (about 9 s
//! of CPU time crosschecked), only with the default JIT. A fault injected into the
//! primary must end the run with one report and exit status 70. One module per guest
//! (generated from build.rs's guest list).

mod common;

use std::ffi::OsString;

/// Guests that start threads: a crosscheck compares one thread with one shadow, so for
/// them `clone` fails with ENOSYS and a warning (checked below), never a divergence.
const THREADED: &[&str] = &[
    "threads",
    "atomics",
    "threadexit",
    "threadlast",
    "threadmm",
    "threadsmc",
    "parallel",
    "manythreads",
    "threads_dyn",
    "sigthreads",
    "sigthreads_dyn",
];

/// Runs guest `name` under `vmjit run --crosscheck` with `opts`; checks stdout, exit
/// code and that no divergence was reported.
fn check(name: &str, opts: &[&str]) {
    if common::skip_without_sysroot(name) {
        return;
    }
    let mut cmd: Vec<OsString> = vec![
        env!("CARGO_BIN_EXE_vmjit").into(),
        "run".into(),
        "--crosscheck".into(),
    ];
    cmd.extend(opts.iter().map(OsString::from));
    let (want_out, want_code) = common::expected(name);
    let run = common::run_guest(&cmd, name);
    let stderr = run.stderr_text();
    if THREADED.contains(&name) {
        assert!(
            stderr.contains("--crosscheck runs single-threaded guests; clone refused"),
            "guest {name} crosschecked with {opts:?}: no warning that threads are refused\n{stderr}"
        );
        assert!(
            !stderr.contains("vmjit: crosscheck:") && !stderr.contains("panicked"),
            "guest {name} crosschecked with {opts:?}:\n{stderr}"
        );
        return;
    }
    let mut problems = Vec::new();
    if stderr.contains("vmjit: crosscheck:") {
        problems.push("a divergence was reported".to_string());
    }
    if let Some(d) = common::describe_diff("stdout", &want_out, &run.stdout) {
        problems.push(d);
    }
    if run.code != want_code {
        problems.push(format!("exit code {} (expected {want_code})", run.code));
    }
    assert!(
        problems.is_empty(),
        "guest {name} crosschecked with {opts:?}:\n{}\nvmjit stderr:\n{stderr}",
        problems.join("\n")
    );
    assert!(!stderr.contains("panicked"), "vmjit panicked on {name}");
}

#[allow(
    unused_macros,
    reason = "used once per guest; none when guests/ is empty"
)]
macro_rules! case {
    (coremark) => {
        mod coremark {
            #[test]
            fn default_jit() {
                super::check("coremark", &[]);
            }
        }
    };
    ($name:ident) => {
        mod $name {
            fn check(opts: &[&str]) {
                super::check(stringify!($name), opts);
            }
            #[test]
            fn default_jit() {
                check(&[]);
            }
            #[test]
            fn cache_64k() {
                check(&["--cache-size", "64K"]);
            }
            #[test]
            fn aggressive_tier2() {
                check(&["--tier2-threshold", "100"]);
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

/// Runs intalg crosschecked with `opts` and returns stderr after checking that the run
/// ended with exactly one report and status 70.
fn diverging(opts: &[&str]) -> String {
    let mut args: Vec<&std::ffi::OsStr> = vec!["run".as_ref(), "--crosscheck".as_ref()];
    args.extend(opts.iter().map(std::ffi::OsStr::new));
    let intalg = common::guests_dir().join("bin/intalg");
    args.push(intalg.as_os_str());
    let run = common::vmjit(&args);
    let stderr = run.stderr_text();
    assert_eq!(run.code, 70, "{stderr}");
    assert!(
        stderr.starts_with("vmjit: crosscheck: the JIT and the interpreter diverged after "),
        "{stderr}"
    );
    assert_eq!(stderr.matches("diverged after").count(), 1, "{stderr}");
    stderr
}

/// The pc in the report's "last step:" line, checking that it names a tier.
fn step_pc(report: &str) -> String {
    let step = field(report, "last step:");
    assert!(
        ["baseline", "tier 1", "tier 2"]
            .iter()
            .any(|t| step.starts_with(t)),
        "{step:?}"
    );
    step.split(" code entered at ")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .unwrap_or_else(|| panic!("no entry pc in {step:?}"))
        .to_string()
}

/// The value after `key` on the report line starting with `key` (trimmed).
fn field<'a>(report: &'a str, key: &str) -> &'a str {
    report
        .lines()
        .find_map(|l| l.trim_start().strip_prefix(key))
        .map(str::trim)
        .unwrap_or_else(|| panic!("no {key:?} line in:\n{report}"))
}

#[test]
fn a_mistranslated_block_is_reported_with_its_pc_tier_and_register() {
    // From the first translated entry past 100 000 instructions on, code entered at
    // that entry's pc leaves a0 with bit 2 flipped.
    let report = diverging(&["--crosscheck-inject", "reg:10:0x4:100000"]);
    let pc = step_pc(&report);
    let a0 = field(&report, "a0");
    let (p, s) = a0.split_once(" / ").expect("primary / interpreter");
    let value = |v: &str| u64::from_str_radix(v.trim_start_matches("0x"), 16).expect("hex");
    assert_eq!(value(p) ^ value(s), 4, "{report}");
    // The replay names the block the corruption comes from: the one at that pc.
    let located = field(&report, "located:");
    assert!(
        located.contains(&format!("code entered at {pc} ")),
        "{located:?} vs {pc}"
    );
    assert!(report.contains(&format!("\n    {pc}:  ")), "{report}");
}

#[test]
fn a_stray_store_is_reported_with_its_address_and_both_values() {
    // A word 4 KiB above the bottom of the 8 MiB stack: intalg never gets there.
    let line = "memory:     first difference at 0x3ff801001: the 8 bytes at 0x3ff801000 are \
                0x000000000000ff00 on the primary, 0x0000000000000000 on the interpreter";
    let inject = ["--crosscheck-inject", "mem:0x3ff801000:0xff00:100000"];
    let report = diverging(&inject);
    assert!(report.contains(line), "{report}");
    assert!(!report.contains("located:"), "{report}");
    // Comparing memory after every step finds the store in the step that made it, and
    // the replay names the block.
    let report = diverging(&[&inject[..], &["--crosscheck-memory", "0"]].concat());
    assert!(report.contains(line), "{report}");
    let pc = step_pc(&report);
    let located = field(&report, "located:");
    assert!(
        located.contains(&format!("code entered at {pc} ")),
        "{located:?} vs {pc}"
    );
}

#[test]
fn crosscheck_options_need_crosscheck_and_exclude_trace() {
    let hello = common::guests_dir().join("bin/hello");
    for args in [
        vec!["run", "--crosscheck-interval", "3"],
        vec!["run", "--crosscheck-all-regs"],
        vec!["run", "--crosscheck-memory", "0"],
        vec!["run", "--crosscheck", "--trace"],
    ] {
        let mut v: Vec<&std::ffi::OsStr> = args.iter().map(std::ffi::OsStr::new).collect();
        v.push(hello.as_os_str());
        let run = common::vmjit(&v);
        assert_eq!(run.code, 2, "{args:?}: {}", run.stderr_text());
        assert!(run.stdout.is_empty());
    }
}

#[test]
fn all_registers_are_listed_on_request() {
    let stderr = diverging(&[
        "--crosscheck-all-regs",
        "--crosscheck-inject",
        "reg:10:0x4:100000",
    ]);
    let all = stderr
        .split("all registers (primary / interpreter):")
        .nth(1)
        .unwrap_or_else(|| panic!("no register list in {stderr}"));
    for name in [
        "zero",
        "ra",
        "sp",
        "t6",
        "ft0",
        "ft11",
        "fcsr",
        "reservation",
        "reserved",
    ] {
        assert!(
            all.lines()
                .any(|l| l.trim_start().starts_with(&format!("{name} "))),
            "{name} missing from {all}"
        );
    }
}
