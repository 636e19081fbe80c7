//! Shared helpers for the integration tests: running a guest program under the agreed
//! conventions (environment cleared except `VMJIT_GUEST=1`, a fresh empty working
//! directory, arguments from `<name>.args`, stdin from `<name>.stdin` or /dev/null) and
//! comparing output in a diff-friendly way; telling dynamically linked guests, which
//! need the riscv64 sysroot, from static ones, and skipping them (saying so) when the
//! sysroot is not installed.

#![allow(dead_code)]

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// The repository's `guests/` directory.
pub fn guests_dir() -> PathBuf {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../guests");
    p.canonicalize().unwrap_or(p)
}

/// The riscv64 sysroot the dynamically linked guests run with (Debian's
/// `libc6-riscv64-cross`; vmjit's default sysroot, qemu-riscv64's `-L` in record.sh).
pub const SYSROOT: &str = "/usr/riscv64-linux-gnu";

/// The ELF interpreter the dynamic guests name, inside [`SYSROOT`].
pub const SYSROOT_INTERP: &str = "/usr/riscv64-linux-gnu/lib/ld-linux-riscv64-lp64d.so.1";

/// Set (to anything) to test as if the riscv64 sysroot were missing: the dynamically
/// linked guests are then skipped, saying so, as on a host without
/// `libc6-riscv64-cross` (vmjit itself still finds its default sysroot).
pub const NO_SYSROOT_ENV: &str = "VMJIT_TEST_NO_SYSROOT";

/// True when the riscv64 sysroot is installed (and [`NO_SYSROOT_ENV`] is not set).
pub fn have_sysroot() -> bool {
    std::env::var_os(NO_SYSROOT_ENV).is_none() && Path::new(SYSROOT_INTERP).is_file()
}

/// True when the ELF file `bin` names an interpreter (has a `PT_INTERP` header).
pub fn is_dynamic_elf(bin: &Path) -> bool {
    let Ok(d) = std::fs::read(bin) else {
        return false;
    };
    let at = |off: usize, n: usize| d.get(off..off + n);
    let u = |off: usize, n: usize| {
        at(off, n).map(|b| b.iter().rev().fold(0u64, |acc, &x| acc << 8 | u64::from(x)))
    };
    let (Some(phoff), Some(phnum)) = (u(32, 8), u(56, 2)) else {
        return false;
    };
    (0..phnum).any(|i| u(phoff as usize + 56 * i as usize, 4) == Some(3))
}

/// True when guest `name` is dynamically linked.
pub fn is_dynamic(name: &str) -> bool {
    is_dynamic_elf(&guests_dir().join("bin").join(name))
}

/// True, after saying so on stderr (once per guest and test binary), when guest `name`
/// is dynamically linked and the riscv64 sysroot is missing: the caller then skips it,
/// as the qemu differential test skips without qemu. Written straight to stderr (not
/// `eprintln!`) so the test harness's capture does not hide it.
pub fn skip_without_sysroot(name: &str) -> bool {
    if !is_dynamic(name) || have_sysroot() {
        return false;
    }
    static SAID: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());
    let mut said = SAID
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if !said.iter().any(|n| n == name) {
        said.push(name.to_string());
        use std::io::Write;
        let why = if std::env::var_os(NO_SYSROOT_ENV).is_some() {
            format!("{NO_SYSROOT_ENV} is set")
        } else {
            format!("{SYSROOT_INTERP} missing (install libc6-riscv64-cross)")
        };
        let _ = std::io::stderr()
            .write_all(format!("{why}: dynamically linked guest {name} skipped\n").as_bytes());
    }
    true
}

/// A fresh, empty, uniquely named directory under the system temp dir.
pub fn fresh_dir(tag: &str) -> PathBuf {
    static N: AtomicU32 = AtomicU32::new(0);
    let d = std::env::temp_dir().join(format!(
        "vmjit-test-{}-{}-{tag}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("create temp dir");
    d
}

/// What a run produced.
#[derive(Debug)]
pub struct Run {
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    /// Exit status; a process killed by signal N is reported as 128+N.
    pub code: i32,
}

impl Run {
    pub fn stderr_text(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }
}

/// Longest a single guest run may take before the test kills it (a hang guard, not a
/// timing assertion).
const HANG_GUARD: Duration = Duration::from_secs(900);

/// Runs `cmd` (program + leading arguments) on guest `name` under the conventions.
pub fn run_guest(cmd: &[OsString], name: &str) -> Run {
    let g = guests_dir();
    let bin = g.join("bin").join(name);
    assert!(
        bin.is_file(),
        "guest binary {} is missing (run `make -C guests`)",
        bin.display()
    );
    let mut args: Vec<OsString> = Vec::new();
    let args_file = g.join("expected").join(format!("{name}.args"));
    if let Ok(text) = std::fs::read_to_string(&args_file) {
        args.extend(text.lines().map(OsString::from));
    }
    let stdin_file = g.join("expected").join(format!("{name}.stdin"));
    let stdin = if stdin_file.is_file() {
        stdin_file
    } else {
        PathBuf::from("/dev/null")
    };
    let mut full: Vec<OsString> = cmd.to_vec();
    full.push(bin.into_os_string());
    full.extend(args);
    run_in(&full, &stdin, &fresh_dir(name))
}

/// Runs a command line with the guest conventions (cleared environment plus
/// `VMJIT_GUEST=1`, working directory `cwd`, stdin from `stdin`).
pub fn run_in(full: &[OsString], stdin: &Path, cwd: &Path) -> Run {
    run_in_env(full, stdin, cwd, &[])
}

/// [`run_in`] with `env` added to the environment.
pub fn run_in_env(full: &[OsString], stdin: &Path, cwd: &Path, env: &[(&str, &OsStr)]) -> Run {
    let stdin = std::fs::File::open(stdin).expect("open stdin file");
    let out_path = cwd.with_extension("stdout");
    let err_path = cwd.with_extension("stderr");
    let out = std::fs::File::create(&out_path).expect("create stdout file");
    let err = std::fs::File::create(&err_path).expect("create stderr file");
    let mut child = Command::new(&full[0])
        .args(&full[1..])
        .env_clear()
        .env("VMJIT_GUEST", "1")
        .envs(env.iter().copied())
        .current_dir(cwd)
        .stdin(Stdio::from(stdin))
        .stdout(Stdio::from(out))
        .stderr(Stdio::from(err))
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {:?}: {e}", full[0]));
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait for child") {
            break s;
        }
        if start.elapsed() > HANG_GUARD {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{full:?} did not finish within {HANG_GUARD:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    use std::os::unix::process::ExitStatusExt;
    let code = status
        .code()
        .unwrap_or_else(|| 128 + status.signal().unwrap_or(0));
    let run = Run {
        stdout: std::fs::read(&out_path).unwrap_or_default(),
        stderr: std::fs::read(&err_path).unwrap_or_default(),
        code,
    };
    let _ = std::fs::remove_file(&out_path);
    let _ = std::fs::remove_file(&err_path);
    let _ = std::fs::remove_dir_all(cwd);
    run
}

/// Runs the vmjit binary with `args` (stdin /dev/null, conventions otherwise).
pub fn vmjit(args: &[&std::ffi::OsStr]) -> Run {
    let mut full: Vec<OsString> = vec![env!("CARGO_BIN_EXE_vmjit").into()];
    full.extend(args.iter().map(|a| a.to_os_string()));
    run_in(&full, Path::new("/dev/null"), &fresh_dir("cli"))
}

/// The vmjit binary under test with `run --engine interp`.
pub fn vmjit_interp() -> Vec<OsString> {
    vec![
        env!("CARGO_BIN_EXE_vmjit").into(),
        "run".into(),
        "--engine".into(),
        "interp".into(),
    ]
}

/// Runs guest `name` with `cmd` (the vmjit command line up to the program) and asserts
/// that its stdout and exit code equal the recorded ones and that vmjit did not panic;
/// `config` names the configuration in failure messages. A dynamically linked guest is
/// skipped (with a message) when the sysroot is missing.
pub fn assert_matches_expected(cmd: &[OsString], name: &str, config: &str) {
    if skip_without_sysroot(name) {
        return;
    }
    let (want_out, want_code) = expected(name);
    let run = run_guest(cmd, name);
    let mut problems = Vec::new();
    if let Some(d) = describe_diff("stdout", &want_out, &run.stdout) {
        problems.push(d);
    }
    if run.code != want_code {
        problems.push(format!("exit code {} (expected {want_code})", run.code));
    }
    assert!(
        problems.is_empty(),
        "guest {name} {config}:\n{}\nvmjit stderr:\n{}",
        problems.join("\n"),
        run.stderr_text()
    );
    assert!(
        !run.stderr_text().contains("panicked"),
        "vmjit panicked on {name} {config}"
    );
}

/// Expected stdout and exit code of guest `name`.
pub fn expected(name: &str) -> (Vec<u8>, i32) {
    let e = guests_dir().join("expected");
    let stdout = std::fs::read(e.join(format!("{name}.stdout")))
        .unwrap_or_else(|err| panic!("missing expected/{name}.stdout: {err}"));
    let exit_text = std::fs::read_to_string(e.join(format!("{name}.exit")))
        .unwrap_or_else(|err| panic!("missing expected/{name}.exit: {err}"));
    let code = exit_text
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("expected/{name}.exit is not a number: {exit_text:?}"));
    (stdout, code)
}

/// Describes the first difference between two outputs, or `None` when equal.
pub fn describe_diff(what: &str, want: &[u8], got: &[u8]) -> Option<String> {
    if want == got {
        return None;
    }
    let w = String::from_utf8_lossy(want);
    let g = String::from_utf8_lossy(got);
    let wl: Vec<&str> = w.split_inclusive('\n').collect();
    let gl: Vec<&str> = g.split_inclusive('\n').collect();
    let i = wl
        .iter()
        .zip(&gl)
        .position(|(a, b)| a != b)
        .unwrap_or(wl.len().min(gl.len()));
    Some(format!(
        "{what} differs at line {} ({} expected lines / {} bytes, {} actual lines / {} bytes)\n  \
         expected: {:?}\n  actual:   {:?}",
        i + 1,
        wl.len(),
        want.len(),
        gl.len(),
        got.len(),
        wl.get(i).copied().unwrap_or("<end of output>"),
        gl.get(i).copied().unwrap_or("<end of output>"),
    ))
}
