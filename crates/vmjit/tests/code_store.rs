//! `vmjit run --code-store DIR`: a second run of a guest with one store loads stored
//! translations and prints exactly what the first did; a tampered record, a store whose
//! key changed, and a different program at the same path all leave the output correct;
//! `vmjit cache stats|prune|clear` report on and shrink the store.

mod common;

use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// A fresh directory, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let d = common::fresh_dir(tag);
        std::fs::create_dir_all(&d).expect("create temp dir");
        TempDir(d)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// What one run produced, with the store's part of `--stats-json`.
struct StoreRun {
    run: common::Run,
    store: serde_json::Value,
}

fn run_with_store(program: &Path, store: &Path, json: &Path) -> StoreRun {
    let full: Vec<OsString> = vec![
        env!("CARGO_BIN_EXE_vmjit").into(),
        "run".into(),
        "--code-store".into(),
        store.into(),
        "--stats-json".into(),
        json.into(),
        program.into(),
    ];
    let run = common::run_in(&full, Path::new("/dev/null"), &common::fresh_dir("cs-run"));
    let text = std::fs::read_to_string(json).expect("stats json written");
    let v: serde_json::Value = serde_json::from_str(&text).expect("stats json parses");
    StoreRun {
        run,
        store: v["jit"]["store"].clone(),
    }
}

fn n(v: &serde_json::Value, key: &str) -> u64 {
    v[key]
        .as_u64()
        .unwrap_or_else(|| panic!("{key} missing in {v}"))
}

fn assert_output(name: &str, r: &StoreRun) {
    let (out, code) = common::expected(name);
    if let Some(d) = common::describe_diff(name, &out, &r.run.stdout) {
        panic!("{d}\nstderr:\n{}", r.run.stderr_text());
    }
    assert_eq!(r.run.code, code, "{}", r.run.stderr_text());
    assert!(!r.run.stderr_text().contains("panicked"));
}

fn guest(name: &str) -> PathBuf {
    common::guests_dir().join("bin").join(name)
}

#[test]
fn a_second_run_loads_stored_translations_and_prints_the_same() {
    let t = TempDir::new("cs-warm");
    let store = t.0.join("store");
    let json = t.0.join("stats.json");
    let first = run_with_store(&guest("coremark"), &store, &json);
    assert_output("coremark", &first);
    assert_eq!(n(&first.store, "loaded"), 0);
    assert!(n(&first.store, "written") > 0, "{}", first.store);
    let second = run_with_store(&guest("coremark"), &store, &json);
    assert_output("coremark", &second);
    assert!(n(&second.store, "loaded") > 0, "{}", second.store);
    assert!(n(&second.store, "validated") > 0, "{}", second.store);
    assert_eq!(n(&second.store, "rejected_records"), 0);
    assert!(!second.run.stderr_text().contains("warning"));
}

/// Every `.pack` file under `dir`.
fn packs(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "pack") {
                out.push(p);
            }
        }
    }
    out
}

#[test]
fn tampered_records_and_a_changed_key_are_rejected_and_the_run_stays_correct() {
    let t = TempDir::new("cs-tamper");
    let store = t.0.join("store");
    let json = t.0.join("stats.json");
    assert_output("intalg", &run_with_store(&guest("intalg"), &store, &json));
    let files = packs(&store);
    assert_eq!(files.len(), 1, "one pack: {files:?}");
    // Flip one byte of every record's code region (past the 88-byte header).
    let mut bytes = std::fs::read(&files[0]).expect("read pack");
    for i in (200..bytes.len()).step_by(97) {
        bytes[i] ^= 0x40;
    }
    std::fs::write(&files[0], &bytes).expect("write pack");
    let r = run_with_store(&guest("intalg"), &store, &json);
    assert_output("intalg", &r);
    assert!(n(&r.store, "rejected_records") > 0, "{}", r.store);
    assert!(r.run.stderr_text().contains("code store"), "one warning");

    // A new key: every record of the old one fails its MAC.
    assert_output("intalg", &run_with_store(&guest("intalg"), &store, &json));
    std::fs::remove_file(store.join("key")).expect("remove key");
    let r = run_with_store(&guest("intalg"), &store, &json);
    assert_output("intalg", &r);
    assert_eq!(n(&r.store, "validated"), 0, "{}", r.store);
    assert!(n(&r.store, "rejected_records") > 0, "{}", r.store);
}

#[test]
fn another_program_at_the_same_path_never_runs_stale_code() {
    let t = TempDir::new("cs-replace");
    let store = t.0.join("store");
    let json = t.0.join("stats.json");
    let prog = t.0.join("prog");
    std::fs::copy(guest("intalg"), &prog).expect("copy");
    assert_output("intalg", &run_with_store(&prog, &store, &json));
    assert_output("intalg", &run_with_store(&prog, &store, &json));
    std::fs::copy(guest("strmalloc"), &prog).expect("copy");
    let r = run_with_store(&prog, &store, &json);
    assert_output("strmalloc", &r);
    assert_eq!(n(&r.store, "validated"), 0, "{}", r.store);
}

#[test]
fn cache_command_reports_prunes_and_clears() {
    let t = TempDir::new("cs-cmd");
    let store = t.0.join("store");
    let json = t.0.join("stats.json");
    assert_output("intalg", &run_with_store(&guest("intalg"), &store, &json));
    let cmd = |args: &[&str]| {
        let mut v: Vec<&std::ffi::OsStr> = args.iter().map(std::ffi::OsStr::new).collect();
        v.push("--code-store".as_ref());
        v.push(store.as_os_str());
        common::vmjit(&v)
    };
    let stats = cmd(&["cache", "stats"]);
    assert_eq!(stats.code, 0, "{}", stats.stderr_text());
    let text = String::from_utf8_lossy(&stats.stdout).into_owned();
    assert!(text.contains("1 programs, 1 packs, 1 profiles"), "{text}");
    let pruned = cmd(&["cache", "prune", "--max", "1"]);
    assert_eq!(pruned.code, 0, "{}", pruned.stderr_text());
    let text = String::from_utf8_lossy(&pruned.stdout).into_owned();
    assert!(
        text.contains(" 0 bytes left") || text.contains(" 1 bytes left"),
        "{text}"
    );
    let cleared = cmd(&["cache", "clear"]);
    assert_eq!(cleared.code, 0, "{}", cleared.stderr_text());
    let stats = cmd(&["cache", "stats"]);
    assert!(String::from_utf8_lossy(&stats.stdout).contains("0 programs"));
}

#[test]
fn a_code_store_that_is_not_one_is_a_clear_error() {
    let r = common::vmjit(&[
        "run".as_ref(),
        "--code-store".as_ref(),
        "redis://".as_ref(),
        common::guests_dir().join("bin/hello").as_os_str(),
    ]);
    assert_eq!(r.code, 1);
    let err = r.stderr_text();
    assert!(err.starts_with("vmjit: --code-store"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
}

/// A redis-server on a free loopback port, shut down when dropped.
struct Redis {
    child: std::process::Child,
    port: u16,
    _dir: TempDir,
}

impl Redis {
    fn start() -> Option<Redis> {
        let dir = TempDir::new("cs-redis");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .ok()?
            .local_addr()
            .ok()?
            .port();
        let child = std::process::Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .current_dir(&dir.0)
            .stdout(std::process::Stdio::null())
            .spawn()
            .ok()?;
        // Up when it accepts a connection (a hang guard, not a timing assertion).
        for _ in 0..500 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Some(Redis {
                    child,
                    port,
                    _dir: dir,
                });
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        None
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn a_redis_store_fills_an_empty_local_store() {
    let Some(redis) = Redis::start() else {
        eprintln!("redis-server is not installed: Redis code store test skipped");
        return;
    };
    let t = TempDir::new("cs-fleet");
    let home = t.0.join("home");
    std::fs::create_dir_all(&home).expect("home");
    let json = t.0.join("stats.json");
    let url = format!("redis://127.0.0.1:{}", redis.port);
    let run = || {
        let full: Vec<OsString> = vec![
            env!("CARGO_BIN_EXE_vmjit").into(),
            "run".into(),
            "--code-store".into(),
            url.clone().into(),
            "--stats-json".into(),
            json.clone().into(),
            guest("intalg").into(),
        ];
        let env = [
            ("HOME", home.as_os_str()),
            (
                "VMJIT_STORE_KEY",
                "0123456789abcdef0123456789abcdef".as_ref(),
            ),
        ];
        let run = common::run_in_env(
            &full,
            Path::new("/dev/null"),
            &common::fresh_dir("cs-fleet-run"),
            &env,
        );
        let v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&json).expect("json")).expect("parses");
        StoreRun {
            run,
            store: v["jit"]["store"].clone(),
        }
    };
    let first = run();
    assert_output("intalg", &first);
    assert!(n(&first.store, "written") > 0, "{}", first.store);
    // Another machine: an empty local store, the same Redis.
    std::fs::remove_dir_all(home.join(".cache")).expect("local store exists");
    let second = run();
    assert_output("intalg", &second);
    assert!(n(&second.store, "validated") > 0, "{}", second.store);
    assert!(
        !second.run.stderr_text().contains("warning"),
        "{}",
        second.run.stderr_text()
    );
}
