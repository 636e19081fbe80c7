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

#[test]
fn jit_engine_is_refused_until_it_exists() {
    let hello = common::guests_dir().join("bin/hello");
    let run = vmjit(&[
        "run".as_ref(),
        "--engine".as_ref(),
        "jit".as_ref(),
        hello.as_os_str(),
    ]);
    assert_eq!(run.code, 1);
    assert_eq!(
        run.stderr_text(),
        "vmjit: the JIT engine is not available yet; use --engine interp\n"
    );
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
    let fast = vmjit(&["run".as_ref(), "--stats".as_ref(), hello_path.as_os_str()]);
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
