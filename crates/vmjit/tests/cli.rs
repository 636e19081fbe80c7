//! Command-line behaviours that need no golden file: engine selection, `--max-insns`,
//! `--stats`, `--trace`, argument passing and help.

mod common;

use common::vmjit;

fn hello() -> Vec<u8> {
    std::fs::read(common::guests_dir().join("bin/hello")).expect("guests/bin/hello")
}

fn u64_at(d: &[u8], off: usize) -> u64 {
    u64::from_le_bytes(d[off..off + 8].try_into().expect("8 bytes"))
}

/// `(instructions, blocks)` from `--stats` output.
fn stats(stderr: &str) -> (u64, u64) {
    let get = |key: &str| -> u64 {
        stderr
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {key:?} in {stderr:?}"))
    };
    (
        get("vmjit: instructions retired: "),
        get("vmjit: basic blocks executed: "),
    )
}

fn run_args(args: &[&str], path: &std::path::Path) -> common::Run {
    let mut v: Vec<&std::ffi::OsStr> = vec!["run".as_ref()];
    v.extend(args.iter().map(|a| std::ffi::OsStr::new(*a)));
    v.push(path.as_os_str());
    vmjit(&v)
}

#[test]
fn jit_retires_exactly_the_interpreters_instruction_count() {
    let recursion = common::guests_dir().join("bin/recursion");
    let interp = run_args(&["--engine", "interp", "--stats"], &recursion);
    let jit = run_args(
        &[
            "--engine",
            "jit",
            "--stats",
            "--hot-threshold",
            "2",
            "--compile-threads",
            "0",
        ],
        &recursion,
    );
    assert_eq!(interp.code, 0);
    assert_eq!(jit.code, 0, "{}", jit.stderr_text());
    assert_eq!(interp.stdout, jit.stdout);
    assert_eq!(stats(&interp.stderr_text()).0, stats(&jit.stderr_text()).0);
    assert!(
        jit.stderr_text().contains("vmjit: translations: baseline "),
        "{}",
        jit.stderr_text()
    );
}

#[test]
fn max_insns_is_exact_while_translated_code_runs() {
    // coremark spends its time in a few hot loops: with threshold 2 and compiling on
    // the guest thread, the limit is reached inside chained translated code, and with
    // a low tier-2 threshold the later limits inside tier-2 regions (whose forward
    // edges spend no chain budget).
    let coremark = common::guests_dir().join("bin/coremark");
    for limit in ["1000003", "7654321", "30000001"] {
        let run = run_args(
            &[
                "--engine",
                "jit",
                "--stats",
                "--hot-threshold",
                "2",
                "--tier2-threshold",
                "100",
                "--compile-threads",
                "0",
                "--max-insns",
                limit,
            ],
            &coremark,
        );
        assert_eq!(run.code, 124, "{}", run.stderr_text());
        let want = format!("vmjit: instructions retired: {limit}\n");
        assert!(run.stderr_text().contains(&want), "{}", run.stderr_text());
    }
}

#[test]
fn jit_stats_report_the_code_cache() {
    let coremark = common::guests_dir().join("bin/coremark");
    let run = run_args(
        &[
            "--stats",
            "--compile-threads",
            "0",
            "--max-insns",
            "50000000",
        ],
        &coremark,
    );
    assert_eq!(run.code, 124);
    let err = run.stderr_text();
    for key in [
        "vmjit: code cache lookups: ",
        "% L1 jump cache",
        "vmjit: translations: baseline ",
        ", tier 1 ",
        "vmjit: compile time: ",
        "vmjit: evictions: ",
        "bytes in use, peak ",
        "vmjit: hottest blocks:",
    ] {
        assert!(err.contains(key), "missing {key:?} in {err}");
    }
}

#[test]
fn stats_json_holds_run_figures_and_cache_statistics() {
    let dir = common::fresh_dir("json");
    let file = dir.join("stats.json");
    let recursion = common::guests_dir().join("bin/recursion");
    let f = file.to_str().expect("utf-8 temp path");
    let run = run_args(&["--stats-json", f], &recursion);
    assert_eq!(run.code, 0, "{}", run.stderr_text());
    let text = std::fs::read_to_string(&file).expect("stats file written");
    for key in [
        "\"engine\": \"jit\"",
        "\"instructions\"",
        "\"l1_hits\"",
        "\"tier1_translations\"",
        "\"hottest\"",
        "\"first_insn\"",
    ] {
        assert!(text.contains(key), "missing {key} in {text}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn cache_size_accepts_suffixes_and_rejects_junk() {
    let hello = common::guests_dir().join("bin/hello");
    for ok in ["64K", "1m", "1G", "70000"] {
        let run = run_args(&["--cache-size", ok], &hello);
        assert_eq!(run.code, 0, "{ok}: {}", run.stderr_text());
    }
    for bad in ["12X", "K", "-5", "0", "99999999999999999999G"] {
        let run = run_args(&[&format!("--cache-size={bad}")], &hello);
        assert_eq!(run.code, 2, "{bad} accepted: {}", run.stderr_text());
        assert!(
            run.stderr_text().contains("--cache-size"),
            "{bad}: {}",
            run.stderr_text()
        );
    }
}

#[test]
fn a_cache_too_small_for_any_block_falls_back_to_the_interpreter_with_one_warning() {
    let recursion = common::guests_dir().join("bin/recursion");
    let want = run_args(&["--engine", "interp"], &recursion);
    let run = run_args(
        &["--cache-size", "64", "--compile-threads", "0"],
        &recursion,
    );
    assert_eq!(run.code, 0, "{}", run.stderr_text());
    assert_eq!(run.stdout, want.stdout);
    let err = run.stderr_text();
    assert_eq!(err.matches("warning").count(), 1, "{err}");
    assert!(err.contains("cannot hold the translation"), "{err}");
}

#[test]
fn unknown_policy_is_rejected_with_the_list_of_policies() {
    let hello = common::guests_dir().join("bin/hello");
    let run = run_args(&["--cache-policy", "random"], &hello);
    assert_eq!(run.code, 2);
    let err = run.stderr_text();
    for p in ["hotness", "lru", "fifo", "flush", "generational"] {
        assert!(err.contains(p), "{err}");
    }
}

#[test]
fn max_insns_stops_the_guest_with_status_124() {
    let hello = common::guests_dir().join("bin/hello");
    let run = vmjit(&[
        "run".as_ref(),
        "--max-insns".as_ref(),
        "1000".as_ref(),
        hello.as_os_str(),
    ]);
    assert_eq!(run.code, 124, "stderr: {}", run.stderr_text());
    assert!(
        run.stderr_text()
            .starts_with("vmjit: instruction limit reached (--max-insns)")
    );
}

#[test]
fn max_insns_with_stats_retires_exactly_the_limit() {
    let hello = common::guests_dir().join("bin/hello");
    for limit in ["1", "777", "5000", "12345"] {
        let run = vmjit(&[
            "run".as_ref(),
            "--stats".as_ref(),
            "--max-insns".as_ref(),
            limit.as_ref(),
            hello.as_os_str(),
        ]);
        assert_eq!(run.code, 124);
        let want = format!("vmjit: instructions retired: {limit}\n");
        assert!(
            run.stderr_text().contains(&want),
            "{limit}: {}",
            run.stderr_text()
        );
    }
}

#[test]
fn stats_report_instructions_blocks_time_and_speed() {
    let run = common::run_guest(
        &[
            env!("CARGO_BIN_EXE_vmjit").into(),
            "run".into(),
            "--stats".into(),
        ],
        "hello",
    );
    assert_eq!(run.code, 0);
    let err = run.stderr_text();
    for key in [
        "vmjit: instructions retired: ",
        "vmjit: basic blocks executed: ",
        "vmjit: wall time: ",
        "vmjit: speed: ",
    ] {
        assert!(err.contains(key), "missing {key:?} in {err:?}");
    }
    let insns: u64 = err
        .lines()
        .find_map(|l| l.strip_prefix("vmjit: instructions retired: "))
        .and_then(|v| v.parse().ok())
        .expect("instruction count");
    assert!(
        insns > 1000,
        "hello retires thousands of instructions, got {insns}"
    );
}

#[test]
fn trace_prints_one_disassembled_line_per_instruction() {
    let hello_path = common::guests_dir().join("bin/hello");
    let run = vmjit(&[
        "run".as_ref(),
        "--trace".as_ref(),
        "--max-insns".as_ref(),
        "20".as_ref(),
        hello_path.as_os_str(),
    ]);
    assert_eq!(run.code, 124);
    let err = run.stderr_text();
    let lines: Vec<&str> = err.lines().filter(|l| !l.starts_with("vmjit:")).collect();
    assert_eq!(lines.len(), 20, "{err}");
    // The first instruction is at the ELF entry point.
    let d = hello();
    let entry = u64_at(&d, 24);
    assert!(
        lines[0].trim_start().starts_with(&format!("{entry:x}:")),
        "{}",
        lines[0]
    );
}

#[test]
fn guest_arguments_reach_the_guest_verbatim() {
    // The hello guest prints its arguments (see guests/expected/hello.args).
    let run = common::run_guest(&common::vmjit_interp(), "hello");
    let out = String::from_utf8_lossy(&run.stdout);
    assert!(out.contains("\"-dash\""), "{out}");
    assert!(out.contains("\"--long=value\""), "{out}");
}

#[test]
fn help_explains_every_option() {
    let run = vmjit(&["run".as_ref(), "--help".as_ref()]);
    assert_eq!(run.code, 0);
    let out = String::from_utf8_lossy(&run.stdout);
    for opt in [
        "--engine",
        "--stats",
        "--trace",
        "--max-insns",
        "--cache-size",
        "--cache-entries",
        "--cache-policy",
        "--hot-threshold",
        "--compile-threads",
        "--stats-json",
        "-L, --sysroot",
        "VMJIT_LD_PREFIX",
        "QEMU_LD_PREFIX",
        "PROGRAM",
        "ARGS",
    ] {
        assert!(out.contains(opt), "run --help lacks {opt}: {out}");
    }
    let run = vmjit(&["--help".as_ref()]);
    assert_eq!(run.code, 0);
    assert!(String::from_utf8_lossy(&run.stdout).contains("run"));
}

#[test]
fn trace_and_interpreter_agree_on_instruction_and_block_counts() {
    let hello_path = common::guests_dir().join("bin/hello");
    let fast = vmjit(&[
        "run".as_ref(),
        "--engine".as_ref(),
        "interp".as_ref(),
        "--stats".as_ref(),
        hello_path.as_os_str(),
    ]);
    let traced = vmjit(&[
        "run".as_ref(),
        "--stats".as_ref(),
        "--trace".as_ref(),
        hello_path.as_os_str(),
    ]);
    assert_eq!(fast.code, 0);
    assert_eq!(traced.code, 0);
    assert_eq!(fast.stdout, traced.stdout);
    let (insns, blocks) = stats(&fast.stderr_text());
    assert_eq!(stats(&traced.stderr_text()), (insns, blocks));
    let trace_lines = traced
        .stderr_text()
        .lines()
        .filter(|l| !l.starts_with("vmjit:"))
        .count();
    assert_eq!(
        trace_lines as u64, insns,
        "one trace line per retired instruction"
    );
}
