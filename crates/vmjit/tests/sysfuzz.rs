//! The system-call fuzzer (`guests/src/sysfuzz.c`) under vmjit: random system call
//! numbers with random arguments, seeded and reproducible, under the interpreter, the
//! JIT, and the JIT with a 64 KiB cache compiling on the guest thread (code translated and
//! evicted all the time).
//!
//! **The invariant.** vmjit never dies of a host signal, never panics (no `panicked` or
//! `internal error` on stderr, no exit status 101), and never lets the guest reach
//! outside its own memory and descriptors: the guest checks at its end that its memory
//! and its report descriptor are intact (a failed check prints `SELF-CHECK FAILED`), and
//! when every run of a seed reaches its end, their final lines agree up to the `;` (the
//! error counts after it depend on the host). Guest-level outcomes are fine: an error, a
//! guest signal, the guest's own exit.
//!
//! **Normal run** (`cargo test --release -p vmjit --test sysfuzz`): the seeds of
//! [`CI_SEEDS`] with [`CI_CALLS`] calls each in every configuration, plus the `ci`
//! entries of `tests/sysfuzz_regressions.txt` (seeds that once broke vmjit, in the
//! configurations and with the call counts recorded there): 24 + 186 runs, 7 s on two
//! idle cores (15 s on a busy machine).
//!
//! **Long mode**: `VMJIT_SYSFUZZ_SEEDS=2000` runs seeds 1..=2000 (`=A..B` runs A..=B) in
//! every configuration, and every entry of the regression list unless
//! `VMJIT_SYSFUZZ_REGRESSIONS=0`. `VMJIT_SYSFUZZ_CALLS=N` sets the calls per run (default
//! 3000), `VMJIT_SYSFUZZ_JOBS=N` the runs at once (default: the number of cores),
//! `VMJIT_SYSFUZZ_CONFIGS=interp,jit` a subset of the configurations. It prints the
//! counts (seeds run, syscalls issued, host crashes, panics, self-check failures, hangs,
//! disagreeing seeds, outcomes by kind) and every problem with its replay command, then
//! fails if there was any; about 15 minutes for 2000 seeds on two cores.
//! `VMJIT_SYSFUZZ_FAILURES=FILE` also writes every run that did not reach its end to
//! FILE, as lines for `sysfuzz_regressions.txt`.
//!
//! ```text
//! VMJIT_SYSFUZZ_SEEDS=2000 cargo test --release -p vmjit --test sysfuzz long_mode -- --nocapture
//! ```
//!
//! A problem names the seed, the configuration and a command that replays the run with
//! a trace of every call (`sysfuzz SEED COUNT trace`): the last call traced is where
//! vmjit died, the culprit it or an earlier one. `VMJIT_SYSFUZZ_VMJIT=PATH` runs another
//! vmjit build instead of this one (to confirm that an old build fails where this one
//! does not, say).

mod common;

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::io::{Read, Write};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Seeds of the normal run.
const CI_SEEDS: &[u64] = &[2, 3, 5, 6, 7, 8, 9, 10];
/// Calls per run in the normal run.
const CI_CALLS: u64 = 3000;
/// Calls per run in the long mode unless `VMJIT_SYSFUZZ_CALLS` says otherwise.
const LONG_CALLS: u64 = 3000;

/// The vmjit command lines (after `vmjit run`) each seed runs under.
const CONFIGS: &[(&str, &[&str])] = &[
    ("interp", &["--engine", "interp"]),
    ("jit", &["--engine", "jit"]),
    (
        "jit-64k",
        &[
            "--engine",
            "jit",
            "--cache-size",
            "64K",
            "--compile-threads",
            "0",
        ],
    ),
];

/// Longest one run may take before it is killed and reported as a hang (a guard, not a
/// timing assertion: a run takes well under a second).
const HANG_GUARD: Duration = Duration::from_secs(300);

/// Bytes kept of each output stream's start and end: the random writes to stdout and
/// stderr can be large, and what matters is the end (the report line, a panic message).
const KEEP: usize = 1 << 20;

fn sysfuzz_bin() -> PathBuf {
    let bin = common::guests_dir().join("bin/sysfuzz");
    assert!(
        bin.is_file(),
        "guest binary {} is missing (run `make -C guests`)",
        bin.display()
    );
    bin
}

fn config_args(name: &str) -> &'static [&'static str] {
    CONFIGS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, a)| *a)
        .unwrap_or_else(|| panic!("unknown configuration {name:?}"))
}

/// How one run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Outcome {
    /// The guest printed its report; the part before `;` and its call count.
    Completed { line: String, calls: u64 },
    /// The guest was killed by signal N (vmjit died of it after writing its statistics,
    /// or exited with 128+N).
    GuestSignal(i32),
    /// vmjit exited with another status (a guest-level end such as a deadlock report).
    GuestExit(i32),
    /// vmjit itself was killed by this signal.
    HostSignal(i32),
    /// vmjit panicked or reported an internal error.
    Panic,
    /// The guest found its own memory or descriptors changed.
    SelfCheckFailed(String),
    /// The run did not end within the hang guard.
    Hang,
}

impl Outcome {
    fn is_failure(&self) -> bool {
        matches!(
            self,
            Outcome::HostSignal(_) | Outcome::Panic | Outcome::SelfCheckFailed(_) | Outcome::Hang
        )
    }

    /// The key outcomes are counted under.
    fn kind(&self) -> String {
        match self {
            Outcome::Completed { .. } => "completed".into(),
            Outcome::GuestSignal(n) => format!("guest signal {n}"),
            Outcome::GuestExit(n) => format!("exit {n}"),
            Outcome::HostSignal(n) => format!("HOST SIGNAL {n}"),
            Outcome::Panic => "PANIC".into(),
            Outcome::SelfCheckFailed(_) => "SELF-CHECK FAILED".into(),
            Outcome::Hang => "HANG".into(),
        }
    }
}

/// One run of the fuzzer.
struct Run {
    seed: u64,
    calls: u64,
    config: &'static str,
    outcome: Outcome,
    stderr_tail: String,
}

impl Run {
    fn replay(&self) -> String {
        replay_command(self.seed, self.calls, self.config)
    }

    fn describe(&self) -> String {
        format!(
            "seed {} ({} calls) under {}: {:?}\n  replay: {}\n  vmjit stderr (end): {}",
            self.seed,
            self.calls,
            self.config,
            self.outcome,
            self.replay(),
            self.stderr_tail.trim_end().replace('\n', "\n    ")
        )
    }
}

/// The vmjit binary under test.
fn vmjit_bin() -> OsString {
    std::env::var_os("VMJIT_SYSFUZZ_VMJIT").unwrap_or_else(|| env!("CARGO_BIN_EXE_vmjit").into())
}

fn replay_command(seed: u64, calls: u64, config: &str) -> String {
    format!(
        "cd \"$(mktemp -d)\" && {} run {} {} {seed} {calls} trace 2>&1 | tail -20",
        vmjit_bin().to_string_lossy(),
        config_args(config).join(" "),
        sysfuzz_bin().display()
    )
}

/// Reads a stream to its end, keeping its first and last [`KEEP`] bytes.
fn drain(mut r: impl Read) -> Vec<u8> {
    let mut head = Vec::new();
    let mut tail: Vec<u8> = Vec::new();
    let mut buf = vec![0u8; 64 << 10];
    loop {
        match r.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                let mut chunk = &buf[..n];
                if head.len() < KEEP {
                    let take = chunk.len().min(KEEP - head.len());
                    head.extend_from_slice(&chunk[..take]);
                    chunk = &chunk[take..];
                }
                tail.extend_from_slice(chunk);
                if tail.len() > 2 * KEEP {
                    tail.drain(..tail.len() - KEEP);
                }
            }
        }
    }
    if tail.len() > KEEP {
        tail.drain(..tail.len() - KEEP);
    }
    head.extend_from_slice(&tail);
    head
}

/// Makes every directory under `dir` writable and searchable again (the guest may have
/// chmod-ed them to 0) and removes it.
fn remove_scratch(dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    fn open_up(d: &Path) {
        let _ = std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o700));
        if let Ok(rd) = std::fs::read_dir(d) {
            for e in rd.flatten() {
                if e.file_type().is_ok_and(|t| t.is_dir()) {
                    open_up(&e.path());
                }
            }
        }
    }
    open_up(dir);
    let _ = std::fs::remove_dir_all(dir);
}

/// The guest must start with stdio only: the test process may hold inheritable
/// descriptors (cargo's jobserver pipes), which vmjit would pass on and the fuzzer would
/// write random bytes to. They are made close-on-exec here.
fn only_stdio_is_inherited() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let fds: Vec<i32> = std::fs::read_dir("/proc/self/fd")
            .map(|d| {
                d.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
                    .collect()
            })
            .unwrap_or_default();
        for fd in fds.into_iter().filter(|&fd| fd > 2) {
            // SAFETY: F_SETFD with an integer argument only changes the descriptor's
            // flags; a number that is no longer open just fails with EBADF.
            unsafe {
                libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC);
            }
        }
    });
}

/// Runs `sysfuzz seed calls` under configuration `config` in a fresh scratch directory,
/// with a scratch file as stdin and pipes as stdout and stderr.
fn run_one(seed: u64, calls: u64, config: &'static str) -> Run {
    only_stdio_is_inherited();
    let cwd = common::fresh_dir(&format!("sysfuzz-{seed}-{config}"));
    let stdin_path = cwd.with_extension("stdin");
    std::fs::write(&stdin_path, b"sysfuzz standard input\n").expect("write stdin file");
    let stdin = std::fs::File::open(&stdin_path).expect("open stdin file");
    // Written by vmjit once the guest has ended, before vmjit dies of the guest's
    // fatal signal: its presence tells a guest's death from a crash of vmjit itself.
    let stats_path = cwd.with_extension("json");
    let _ = std::fs::remove_file(&stats_path);
    let mut cmd: Vec<OsString> = vec!["run".into()];
    cmd.extend(config_args(config).iter().map(OsString::from));
    cmd.push("--stats-json".into());
    cmd.push(stats_path.clone().into_os_string());
    cmd.push(sysfuzz_bin().into_os_string());
    cmd.push(seed.to_string().into());
    cmd.push(calls.to_string().into());
    let mut child = Command::new(vmjit_bin())
        .args(&cmd)
        .env_clear()
        .env("VMJIT_GUEST", "1")
        .current_dir(&cwd)
        .stdin(Stdio::from(stdin))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start vmjit");
    let out = child.stdout.take().expect("stdout pipe");
    let err = child.stderr.take().expect("stderr pipe");
    let out = std::thread::spawn(move || drain(out));
    let err = std::thread::spawn(move || drain(err));
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait for vmjit") {
            break Some(s);
        }
        if start.elapsed() > HANG_GUARD {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let stdout = out.join().expect("stdout reader");
    let stderr = err.join().expect("stderr reader");
    remove_scratch(&cwd);
    let _ = std::fs::remove_file(&stdin_path);

    let stderr_text = String::from_utf8_lossy(&stderr).into_owned();
    let guest_ended =
        std::fs::read_to_string(&stats_path).is_ok_and(|j| j.contains("\"exit_code\""));
    let _ = std::fs::remove_file(&stats_path);
    let outcome = classify(status, guest_ended, &stdout, &stderr_text);
    let tail: Vec<&str> = stderr_text
        .lines()
        .filter(|l| !l.contains("unimplemented syscall"))
        .collect();
    let stderr_tail = tail[tail.len().saturating_sub(6)..].join("\n");
    Run {
        seed,
        calls,
        config,
        outcome,
        stderr_tail,
    }
}

fn classify(
    status: Option<std::process::ExitStatus>,
    guest_ended: bool,
    stdout: &[u8],
    stderr: &str,
) -> Outcome {
    let Some(status) = status else {
        return Outcome::Hang;
    };
    if let Some(sig) = status.signal() {
        // vmjit dies of the signal its guest died of, after writing its statistics; a
        // signal without them is vmjit's own crash.
        return if guest_ended {
            Outcome::GuestSignal(sig)
        } else {
            Outcome::HostSignal(sig)
        };
    }
    let code = status.code().unwrap_or(-1);
    // 101 is a Rust panic's exit status; the guest never exits with it. The message may
    // be lost when the guest has closed or redirected vmjit's stderr.
    if code == 101 || stderr.contains("panicked") || stderr.contains("internal error") {
        return Outcome::Panic;
    }
    let text = String::from_utf8_lossy(stdout);
    let report = text
        .rfind("\nsysfuzz: seed ")
        .map(|at| text[at + 1..].lines().next().unwrap_or(""));
    if let Some(line) = report {
        if let Some((_, what)) = line.split_once("SELF-CHECK FAILED: ") {
            return Outcome::SelfCheckFailed(what.to_string());
        }
        if code == 0 {
            let det = line.split(';').next().unwrap_or(line).to_string();
            // "sysfuzz: seed S: N calls, ..."
            let calls = det
                .split(": ")
                .nth(2)
                .and_then(|s| s.split(' ').next())
                .and_then(|n| n.parse().ok())
                .unwrap_or(0);
            return Outcome::Completed { line: det, calls };
        }
    }
    if (129..=192).contains(&code) {
        Outcome::GuestSignal(code - 128)
    } else {
        Outcome::GuestExit(code)
    }
}

/// Runs `seed` in each of `configs`; the runs of one seed whose guests all reached the
/// end must agree. Returns the runs and the problems found.
fn run_seed(seed: u64, calls: u64, configs: &[&'static str]) -> (Vec<Run>, Vec<String>) {
    let runs: Vec<Run> = configs.iter().map(|c| run_one(seed, calls, c)).collect();
    let mut problems: Vec<String> = runs
        .iter()
        .filter(|r| r.outcome.is_failure())
        .map(|r| r.describe())
        .collect();
    let lines: Vec<(&str, &str)> = runs
        .iter()
        .filter_map(|r| match &r.outcome {
            Outcome::Completed { line, .. } => Some((r.config, line.as_str())),
            _ => None,
        })
        .collect();
    if let Some((first_cfg, first)) = lines.first()
        && let Some((cfg, line)) = lines.iter().find(|(_, l)| l != first)
    {
        problems.push(format!(
            "seed {seed} ({calls} calls): the runs disagree\n  {first_cfg}: {first}\n  {cfg}: {line}\n  \
             replay: {}\n  replay: {}",
            replay_command(seed, calls, first_cfg),
            replay_command(seed, calls, cfg)
        ));
    }
    (runs, problems)
}

/// Runs `jobs` (seed, calls, configurations) on `threads` threads, in order of the list.
fn run_all(jobs: &[(u64, u64, Vec<&'static str>)], threads: usize) -> (Vec<Run>, Vec<String>) {
    let next = AtomicUsize::new(0);
    let results = Mutex::new((Vec::new(), Vec::new()));
    std::thread::scope(|s| {
        for _ in 0..threads.max(1) {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some((seed, calls, configs)) = jobs.get(i) else {
                        break;
                    };
                    let (runs, problems) = run_seed(*seed, *calls, configs);
                    let mut r = results.lock().expect("results lock");
                    r.0.extend(runs);
                    r.1.extend(problems);
                }
            });
        }
    });
    results.into_inner().expect("results lock")
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get())
}

fn all_configs() -> Vec<&'static str> {
    CONFIGS.iter().map(|(n, _)| *n).collect()
}

/// One entry of `sysfuzz_regressions.txt`.
struct Regression {
    seed: u64,
    calls: u64,
    configs: Vec<&'static str>,
    /// Run by the normal run (`ci`), not only by the long mode (`long`).
    ci: bool,
}

/// Parses `tests/sysfuzz_regressions.txt`: `SEED CALLS CONFIG[,CONFIG...] TIER  # note`.
fn regressions() -> Vec<Regression> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sysfuzz_regressions.txt");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let f: Vec<&str> = line.split_whitespace().collect();
        let bad = || {
            panic!(
                "{}:{}: expected `SEED CALLS CONFIGS ci|long`",
                path.display(),
                i + 1
            )
        };
        if f.len() != 4 || !matches!(f[3], "ci" | "long") {
            bad();
        }
        let (Ok(seed), Ok(calls)) = (f[0].parse(), f[1].parse()) else {
            bad()
        };
        let configs = if f[2] == "all" {
            all_configs()
        } else {
            f[2].split(',')
                .map(|c| {
                    CONFIGS
                        .iter()
                        .find(|(n, _)| *n == c)
                        .map(|(n, _)| *n)
                        .unwrap_or_else(|| {
                            panic!("{}:{}: unknown configuration {c:?}", path.display(), i + 1)
                        })
                })
                .collect()
        };
        out.push(Regression {
            seed,
            calls,
            configs,
            ci: f[3] == "ci",
        });
    }
    out
}

fn assert_no_problems(what: &str, problems: &[String]) {
    assert!(
        problems.is_empty(),
        "{what}: {} problem(s)\n\n{}",
        problems.len(),
        problems.join("\n\n")
    );
}

#[test]
fn ci_seeds_keep_the_invariant_under_every_engine() {
    let jobs: Vec<_> = CI_SEEDS
        .iter()
        .map(|&s| (s, CI_CALLS, all_configs()))
        .collect();
    let (runs, problems) = run_all(&jobs, cores());
    assert_no_problems("sysfuzz CI seeds", &problems);
    // A fuzzer whose guest never reaches its end would compare nothing.
    let completed = runs
        .iter()
        .filter(|r| matches!(r.outcome, Outcome::Completed { .. }))
        .count();
    assert!(
        completed * 2 >= runs.len(),
        "only {completed} of {} runs reached the end",
        runs.len()
    );
}

#[test]
fn regression_seeds_keep_the_invariant() {
    let jobs: Vec<_> = regressions()
        .into_iter()
        .filter(|r| r.ci)
        .map(|r| (r.seed, r.calls, r.configs))
        .collect();
    let (_, problems) = run_all(&jobs, cores());
    assert_no_problems("sysfuzz regression seeds", &problems);
}

/// Seeds from `VMJIT_SYSFUZZ_SEEDS`: `N` is 1..=N, `A..B` (or `A-B`) is A..=B.
fn long_seeds(spec: &str) -> Vec<u64> {
    let spec = spec.trim();
    let parse = |s: &str| -> u64 {
        s.trim()
            .parse()
            .unwrap_or_else(|_| panic!("VMJIT_SYSFUZZ_SEEDS: {spec:?} is not N or A..B"))
    };
    if let Some((a, b)) = spec.split_once("..").or_else(|| spec.split_once('-')) {
        (parse(a)..=parse(b)).collect()
    } else {
        (1..=parse(spec)).collect()
    }
}

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name).map_or(default, |v| {
        v.trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name}: {v:?} is not a number"))
    })
}

#[test]
fn long_mode() {
    let Ok(spec) = std::env::var("VMJIT_SYSFUZZ_SEEDS") else {
        let _ = std::io::stderr()
            .write_all(b"sysfuzz long mode: set VMJIT_SYSFUZZ_SEEDS=2000 to run it\n");
        return;
    };
    let seeds = long_seeds(&spec);
    let calls = env_number("VMJIT_SYSFUZZ_CALLS", LONG_CALLS);
    let threads = env_number("VMJIT_SYSFUZZ_JOBS", cores() as u64) as usize;
    let configs: Vec<&'static str> = match std::env::var("VMJIT_SYSFUZZ_CONFIGS") {
        Ok(list) => list
            .split(',')
            .map(|c| {
                CONFIGS
                    .iter()
                    .find(|(n, _)| *n == c.trim())
                    .map(|(n, _)| *n)
                    .unwrap_or_else(|| panic!("VMJIT_SYSFUZZ_CONFIGS: unknown {c:?}"))
            })
            .collect(),
        Err(_) => all_configs(),
    };
    let start = Instant::now();
    let mut jobs: Vec<_> = seeds.iter().map(|&s| (s, calls, configs.clone())).collect();
    let regressions = if std::env::var("VMJIT_SYSFUZZ_REGRESSIONS").is_ok_and(|v| v == "0") {
        Vec::new()
    } else {
        regressions()
    };
    jobs.extend(
        regressions
            .iter()
            .map(|r| (r.seed, r.calls, r.configs.clone())),
    );
    let (runs, problems) = run_all(&jobs, threads);

    let mut kinds: BTreeMap<String, usize> = BTreeMap::new();
    let mut issued = 0u64;
    let mut ended_early = 0u64;
    for r in &runs {
        *kinds.entry(r.outcome.kind()).or_default() += 1;
        match r.outcome {
            Outcome::Completed { calls, .. } => issued += calls,
            _ => ended_early += 1,
        }
    }
    let count = |k: fn(&Outcome) -> bool| runs.iter().filter(|r| k(&r.outcome)).count();
    let mut report = format!(
        "sysfuzz long mode: seeds {}..={} ({} seeds), {calls} calls per run, configurations {}, \
         {:.0} s\n  seeds run: {} (+ {} regression entries)\n  runs: {}\n  syscalls issued: {issued} in completed runs \
         (+ at most {} in {ended_early} runs that ended early)\n  host crashes: {}\n  panics: {}\n  \
         self-check failures: {}\n  hangs: {}\n  runs that disagree: {}\n  outcomes:",
        seeds.first().copied().unwrap_or(0),
        seeds.last().copied().unwrap_or(0),
        seeds.len(),
        configs.join(", "),
        start.elapsed().as_secs_f64(),
        seeds.len(),
        regressions.len(),
        runs.len(),
        ended_early * calls,
        count(|o| matches!(o, Outcome::HostSignal(_))),
        count(|o| matches!(o, Outcome::Panic)),
        count(|o| matches!(o, Outcome::SelfCheckFailed(_))),
        count(|o| matches!(o, Outcome::Hang)),
        problems.iter().filter(|p| p.contains("disagree")).count(),
    );
    for (k, n) in &kinds {
        report.push_str(&format!(" {k}: {n};"));
    }
    report.push('\n');
    for p in problems.iter().take(200) {
        report.push_str(&format!("\n{p}\n"));
    }
    let _ = std::io::stderr().write_all(report.as_bytes());
    if let Ok(path) = std::env::var("VMJIT_SYSFUZZ_FAILURES") {
        let mut failed: Vec<&Run> = runs
            .iter()
            .filter(|r| !matches!(r.outcome, Outcome::Completed { .. }))
            .collect();
        failed.sort_by_key(|r| (r.seed, r.config));
        let lines: String = failed
            .iter()
            .map(|r| format!("{} {} {}  # {:?}\n", r.seed, r.calls, r.config, r.outcome))
            .collect();
        std::fs::write(&path, lines).unwrap_or_else(|e| panic!("cannot write {path}: {e}"));
    }
    assert!(
        problems.is_empty(),
        "{} problem(s), see above",
        problems.len()
    );
}
