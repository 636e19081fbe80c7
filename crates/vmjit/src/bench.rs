//! `vmjit bench`: runs each benchmark guest under the interpreter, the JIT,
//! `qemu-riscv64` (when on PATH) and the native x86-64 build of the same C source (when
//! `guests/build/native/<name>` exists), alternating the engines within each
//! repetition, and prints median wall times, ratios and geometric means (or JSON).
//!
//! Every run is a child process (this binary with `run`, qemu, or the native program),
//! timed from spawn to exit, with stdout discarded and the guest's recorded arguments
//! and stdin. Compile-time share and hit rate come from the JIT run's `--stats-json`.
//! Numbers are measurements of this host at that moment; nothing is estimated.

use std::ffi::OsString;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use serde::Serialize;

/// The benchmark guests, in report order.
pub const GUESTS: [&str; 7] = [
    "coremark",
    "bytecode",
    "intalg",
    "recursion",
    "strmalloc",
    "float",
    "largecode",
];

/// What to run.
#[derive(Debug)]
pub struct Options {
    pub guests_dir: PathBuf,
    pub reps: usize,
    pub only: Vec<String>,
    pub json: bool,
    /// Thread counts of the scaling benchmark (empty: none).
    pub threads: Vec<usize>,
    /// Extra options for the JIT runs (e.g. `--cache-size 64K`).
    pub jit_args: Vec<OsString>,
}

/// The thread-scaling guest: `parallel N` does the same work over N guest threads.
pub const SCALING_GUEST: &str = "parallel";

#[derive(Debug, Serialize)]
struct ScalingRow {
    threads: usize,
    jit_s: Option<f64>,
    qemu_s: Option<f64>,
    native_s: Option<f64>,
    /// Guest instructions per second of the median JIT run (all threads).
    jit_instructions_per_s: Option<f64>,
    jit_over_qemu: Option<f64>,
    jit_over_native: Option<f64>,
    /// Work per second relative to the 1-thread row of the same engine.
    jit_speedup: Option<f64>,
    qemu_speedup: Option<f64>,
    native_speedup: Option<f64>,
    wrong_exit: Vec<String>,
}

#[derive(Debug, Serialize)]
struct GuestResult {
    guest: String,
    interp_s: Option<f64>,
    jit_s: Option<f64>,
    qemu_s: Option<f64>,
    native_s: Option<f64>,
    jit_over_qemu: Option<f64>,
    jit_over_native: Option<f64>,
    jit_over_interp: Option<f64>,
    /// Translation time (all threads) / JIT wall time, median run.
    compile_share: Option<f64>,
    /// Code-cache hit rate (L1 + shared index) of the median JIT run.
    cache_hit_rate: Option<f64>,
    /// Runs whose exit status differed from guests/expected/<name>.exit.
    wrong_exit: Vec<String>,
}

#[derive(Debug, Serialize)]
struct Report {
    reps: usize,
    jit_args: Vec<String>,
    guests: Vec<GuestResult>,
    geomean_jit_over_qemu: Option<f64>,
    geomean_jit_over_native: Option<f64>,
    geomean_jit_over_interp: Option<f64>,
    /// `parallel` over each thread count (JIT, qemu-riscv64, native).
    scaling: Vec<ScalingRow>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Engine {
    Interp,
    Jit,
    Qemu,
    Native,
}

fn median(v: &mut [f64]) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    Some(v[v.len() / 2])
}

fn geomean(v: impl Iterator<Item = Option<f64>>) -> Option<f64> {
    let logs: Vec<f64> = v.flatten().filter(|x| *x > 0.0).map(f64::ln).collect();
    if logs.is_empty() {
        None
    } else {
        Some((logs.iter().sum::<f64>() / logs.len() as f64).exp())
    }
}

fn find_on_path(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(name))
            .find(|p| p.is_file())
    })
}

/// Runs one benchmark; returns (seconds, exit code, stats json text if any).
fn time_run(cmd: &[OsString], args: &[OsString], stdin: &Path) -> Result<(f64, i32), String> {
    let stdin = std::fs::File::open(stdin).map_err(|e| format!("{}: {e}", stdin.display()))?;
    let start = Instant::now();
    let status = Command::new(&cmd[0])
        .args(&cmd[1..])
        .args(args)
        .stdin(Stdio::from(stdin))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map_err(|e| format!("cannot start {:?}: {e}", cmd[0]))?;
    let secs = start.elapsed().as_secs_f64();
    use std::os::unix::process::ExitStatusExt;
    let code = status
        .code()
        .unwrap_or_else(|| 128 + status.signal().unwrap_or(0));
    Ok((secs, code))
}

/// Runs the benchmark and prints the table (or JSON); `Err` for unusable options.
pub fn run(opts: &Options) -> Result<(), String> {
    let me = std::env::current_exe().map_err(|e| format!("cannot find vmjit itself: {e}"))?;
    let bin_dir = opts.guests_dir.join("bin");
    if !bin_dir.is_dir() {
        return Err(format!(
            "{} has no bin/ directory (use --guests DIR to point at vmjit's guests/)",
            opts.guests_dir.display()
        ));
    }
    let qemu = find_on_path("qemu-riscv64");
    let stats_file = std::env::temp_dir().join(format!("vmjit-bench-{}.json", std::process::id()));
    let names: Vec<&str> = if opts.only.is_empty() {
        GUESTS.to_vec()
    } else {
        opts.only
            .iter()
            .map(String::as_str)
            .filter(|n| *n != SCALING_GUEST)
            .collect()
    };
    let scaling_wanted = opts.only.is_empty() || opts.only.iter().any(|n| n == SCALING_GUEST);
    let mut results = Vec::new();
    for name in names {
        let bin = bin_dir.join(name);
        if !bin.is_file() {
            return Err(format!("no guest binary {}", bin.display()));
        }
        let expected = opts.guests_dir.join("expected");
        let args: Vec<OsString> = std::fs::read_to_string(expected.join(format!("{name}.args")))
            .map(|t| t.lines().map(OsString::from).collect())
            .unwrap_or_default();
        let want_code: Option<i32> = std::fs::read_to_string(expected.join(format!("{name}.exit")))
            .ok()
            .and_then(|t| t.trim().parse().ok());
        let stdin_file = expected.join(format!("{name}.stdin"));
        let stdin = if stdin_file.is_file() {
            stdin_file
        } else {
            PathBuf::from("/dev/null")
        };
        let native = opts.guests_dir.join("build/native").join(name);
        let mut engines: Vec<(Engine, Vec<OsString>)> = vec![
            (
                Engine::Interp,
                vec![
                    me.clone().into(),
                    "run".into(),
                    "--engine".into(),
                    "interp".into(),
                    bin.clone().into(),
                ],
            ),
            (Engine::Jit, {
                let mut v: Vec<OsString> = vec![
                    me.clone().into(),
                    "run".into(),
                    "--engine".into(),
                    "jit".into(),
                ];
                v.extend(opts.jit_args.iter().cloned());
                v.push("--stats-json".into());
                v.push(stats_file.clone().into());
                v.push(bin.clone().into());
                v
            }),
        ];
        if let Some(q) = &qemu {
            engines.push((Engine::Qemu, vec![q.clone().into(), bin.clone().into()]));
        }
        if native.is_file() {
            engines.push((Engine::Native, vec![native.clone().into()]));
        }
        let mut times: Vec<(Engine, Vec<f64>)> =
            engines.iter().map(|(e, _)| (*e, Vec::new())).collect();
        let mut jit_runs: Vec<(f64, Option<f64>, Option<f64>)> = Vec::new();
        let mut wrong_exit = Vec::new();
        // Progress goes to a terminal only: redirected stderr gets no carriage returns.
        let progress = !opts.json && std::io::stderr().is_terminal();
        for rep in 0..opts.reps {
            for (k, (engine, cmd)) in engines.iter().enumerate() {
                if progress {
                    eprint!(
                        "\r{name}: repetition {}/{} {engine:?}        ",
                        rep + 1,
                        opts.reps
                    );
                }
                let (secs, code) = time_run(cmd, &args, &stdin)?;
                if want_code.is_some_and(|w| w != code) {
                    wrong_exit.push(format!("{engine:?} exited {code}"));
                }
                times[k].1.push(secs);
                if *engine == Engine::Jit {
                    let (share, hit) = jit_figures(&stats_file, secs);
                    jit_runs.push((secs, share, hit));
                }
            }
        }
        let _ = std::fs::remove_file(&stats_file);
        if progress {
            eprint!("\r{:60}\r", "");
        }
        let mut med = |e: Engine| {
            times
                .iter_mut()
                .find(|(x, _)| *x == e)
                .and_then(|(_, v)| median(v))
        };
        let (interp_s, jit_s, qemu_s, native_s) = (
            med(Engine::Interp),
            med(Engine::Jit),
            med(Engine::Qemu),
            med(Engine::Native),
        );
        jit_runs.sort_by(|a, b| a.0.total_cmp(&b.0));
        let mid = jit_runs.get(jit_runs.len() / 2).copied();
        let ratio = |a: Option<f64>, b: Option<f64>| match (a, b) {
            (Some(a), Some(b)) if b > 0.0 => Some(a / b),
            _ => None,
        };
        results.push(GuestResult {
            guest: name.to_string(),
            interp_s,
            jit_s,
            qemu_s,
            native_s,
            jit_over_qemu: ratio(jit_s, qemu_s),
            jit_over_native: ratio(jit_s, native_s),
            jit_over_interp: ratio(jit_s, interp_s),
            compile_share: mid.and_then(|m| m.1),
            cache_hit_rate: mid.and_then(|m| m.2),
            wrong_exit,
        });
    }
    let scaling = if scaling_wanted && !opts.threads.is_empty() {
        scaling(opts, &me, qemu.as_deref(), &stats_file)?
    } else {
        Vec::new()
    };
    let report = Report {
        reps: opts.reps,
        jit_args: opts
            .jit_args
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect(),
        geomean_jit_over_qemu: geomean(results.iter().map(|r| r.jit_over_qemu)),
        geomean_jit_over_native: geomean(results.iter().map(|r| r.jit_over_native)),
        geomean_jit_over_interp: geomean(results.iter().map(|r| r.jit_over_interp)),
        guests: results,
        scaling,
    };
    if opts.json {
        let text = serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?;
        println!("{text}");
    } else {
        print!("{}", table(&report, qemu.is_some()));
    }
    Ok(())
}

/// The thread-scaling benchmark: `parallel N` for each N of `opts.threads`, under the
/// JIT, qemu-riscv64 and the native build, alternating within each repetition.
fn scaling(
    opts: &Options,
    me: &Path,
    qemu: Option<&Path>,
    stats_file: &Path,
) -> Result<Vec<ScalingRow>, String> {
    let bin = opts.guests_dir.join("bin").join(SCALING_GUEST);
    if !bin.is_file() {
        return Ok(Vec::new());
    }
    let native = opts.guests_dir.join("build/native").join(SCALING_GUEST);
    let jit: Vec<OsString> = {
        let mut v: Vec<OsString> = vec![me.into(), "run".into()];
        v.extend(opts.jit_args.iter().cloned());
        v.push("--stats-json".into());
        v.push(stats_file.into());
        v.push(bin.clone().into());
        v
    };
    let mut engines: Vec<(Engine, Vec<OsString>)> = vec![(Engine::Jit, jit)];
    if let Some(q) = qemu {
        engines.push((Engine::Qemu, vec![q.into(), bin.clone().into()]));
    }
    if native.is_file() {
        engines.push((Engine::Native, vec![native.into()]));
    }
    let counts = &opts.threads;
    // times[count][engine], and (seconds, instructions) of each JIT run.
    let mut times = vec![vec![Vec::new(); engines.len()]; counts.len()];
    let mut jit_runs: Vec<Vec<(f64, Option<f64>)>> = vec![Vec::new(); counts.len()];
    let mut wrong: Vec<Vec<String>> = vec![Vec::new(); counts.len()];
    let progress = !opts.json && std::io::stderr().is_terminal();
    for rep in 0..opts.reps {
        for (c, &n) in counts.iter().enumerate() {
            for (k, (engine, cmd)) in engines.iter().enumerate() {
                if progress {
                    eprint!(
                        "\r{SCALING_GUEST} x{n}: repetition {}/{} {engine:?}        ",
                        rep + 1,
                        opts.reps
                    );
                }
                let (secs, code) = time_run(cmd, &[n.to_string().into()], Path::new("/dev/null"))?;
                if code != 0 {
                    wrong[c].push(format!("{engine:?} exited {code}"));
                }
                times[c][k].push(secs);
                if *engine == Engine::Jit {
                    let insns = std::fs::read_to_string(stats_file)
                        .ok()
                        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
                        .and_then(|v| v["instructions"].as_f64());
                    jit_runs[c].push((secs, insns));
                }
            }
        }
    }
    let _ = std::fs::remove_file(stats_file);
    if progress {
        eprint!("\r{:60}\r", "");
    }
    let med = |c: usize, e: Engine| {
        engines
            .iter()
            .position(|(x, _)| *x == e)
            .and_then(|k| median(&mut times[c][k].clone()))
    };
    let ratio = |a: Option<f64>, b: Option<f64>| match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => Some(a / b),
        _ => None,
    };
    let base = |e: Engine| counts.iter().position(|&n| n == 1).and_then(|c| med(c, e));
    let rows = counts
        .iter()
        .enumerate()
        .map(|(c, &n)| {
            let (jit_s, qemu_s, native_s) = (
                med(c, Engine::Jit),
                med(c, Engine::Qemu),
                med(c, Engine::Native),
            );
            let mut runs = jit_runs[c].clone();
            runs.sort_by(|a, b| a.0.total_cmp(&b.0));
            let ips = runs
                .get(runs.len() / 2)
                .and_then(|&(s, i)| i.map(|i| i / s.max(1e-9)));
            ScalingRow {
                threads: n,
                jit_s,
                qemu_s,
                native_s,
                jit_instructions_per_s: ips,
                jit_over_qemu: ratio(jit_s, qemu_s),
                jit_over_native: ratio(jit_s, native_s),
                jit_speedup: ratio(base(Engine::Jit), jit_s),
                qemu_speedup: ratio(base(Engine::Qemu), qemu_s),
                native_speedup: ratio(base(Engine::Native), native_s),
                wrong_exit: std::mem::take(&mut wrong[c]),
            }
        })
        .collect();
    Ok(rows)
}

/// Compile share and hit rate from a JIT run's `--stats-json` file.
fn jit_figures(file: &Path, wall: f64) -> (Option<f64>, Option<f64>) {
    let Ok(text) = std::fs::read_to_string(file) else {
        return (None, None);
    };
    let Ok(v) = serde_json::from_str::<serde_json::Value>(&text) else {
        return (None, None);
    };
    let jit = &v["jit"];
    let share = jit["jit"]["compile_ns"]
        .as_f64()
        .map(|ns| ns / 1e9 / wall.max(1e-9));
    let hit = jit["cache"]["hit_rate"].as_f64();
    (share, hit)
}

fn table(r: &Report, have_qemu: bool) -> String {
    use std::fmt::Write as _;
    let f = |x: Option<f64>, w: usize, p: usize| match x {
        Some(v) => format!("{v:>w$.p$}"),
        None => format!("{:>w$}", "-"),
    };
    let pct = |x: Option<f64>| match x {
        Some(v) => format!("{:>8.2}%", v * 100.0),
        None => format!("{:>9}", "-"),
    };
    let mut s = String::new();
    let _ = writeln!(
        s,
        "median wall time of {} alternating runs per engine (seconds){}{}",
        r.reps,
        if have_qemu {
            ""
        } else {
            "; qemu-riscv64 not found"
        },
        if r.jit_args.is_empty() {
            String::new()
        } else {
            format!("; JIT options: {}", r.jit_args.join(" "))
        }
    );
    let _ = writeln!(
        s,
        "{:<10} {:>8} {:>8} {:>8} {:>8} {:>9} {:>10} {:>10} {:>9} {:>9}",
        "guest",
        "interp",
        "jit",
        "qemu",
        "native",
        "jit/qemu",
        "jit/native",
        "jit/interp",
        "compile",
        "hit rate"
    );
    for g in &r.guests {
        let _ = writeln!(
            s,
            "{:<10} {} {} {} {} {} {} {} {} {}{}",
            g.guest,
            f(g.interp_s, 8, 3),
            f(g.jit_s, 8, 3),
            f(g.qemu_s, 8, 3),
            f(g.native_s, 8, 3),
            f(g.jit_over_qemu, 9, 2),
            f(g.jit_over_native, 10, 2),
            f(g.jit_over_interp, 10, 3),
            pct(g.compile_share),
            pct(g.cache_hit_rate),
            if g.wrong_exit.is_empty() {
                String::new()
            } else {
                format!("  WRONG EXIT: {}", g.wrong_exit.join(", "))
            }
        );
    }
    let _ = writeln!(
        s,
        "{:<10} {:>8} {:>8} {:>8} {:>8} {} {} {}",
        "geomean",
        "",
        "",
        "",
        "",
        f(r.geomean_jit_over_qemu, 9, 2),
        f(r.geomean_jit_over_native, 10, 2),
        f(r.geomean_jit_over_interp, 10, 3)
    );
    if !r.scaling.is_empty() {
        let _ = writeln!(
            s,
            "\nthread scaling: {SCALING_GUEST} (the same work over N guest threads), median of {} alternating runs (seconds)",
            r.reps
        );
        let _ = writeln!(
            s,
            "{:<8} {:>8} {:>8} {:>8} {:>9} {:>10} {:>12} {:>12} {:>14} {:>12}",
            "threads",
            "jit",
            "qemu",
            "native",
            "jit/qemu",
            "jit/native",
            "jit speedup",
            "qemu speedup",
            "native speedup",
            "jit Minsn/s"
        );
        for row in &r.scaling {
            let _ = writeln!(
                s,
                "{:<8} {} {} {} {} {} {} {} {} {}{}",
                row.threads,
                f(row.jit_s, 8, 3),
                f(row.qemu_s, 8, 3),
                f(row.native_s, 8, 3),
                f(row.jit_over_qemu, 9, 2),
                f(row.jit_over_native, 10, 2),
                f(row.jit_speedup, 12, 2),
                f(row.qemu_speedup, 12, 2),
                f(row.native_speedup, 14, 2),
                f(row.jit_instructions_per_s.map(|v| v / 1e6), 12, 1),
                if row.wrong_exit.is_empty() {
                    String::new()
                } else {
                    format!("  WRONG EXIT: {}", row.wrong_exit.join(", "))
                }
            );
        }
    }
    s
}
