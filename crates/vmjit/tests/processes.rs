//! Processes and host signals beyond the golden files: a guest that executes itself
//! (a riscv64 program, which the recordings cannot cover because qemu-riscv64 runs one
//! only through a binfmt_misc entry), statically and dynamically linked, under the JIT
//! and the interpreter; and signals sent to the vmjit process from outside (SIGINT
//! caught by a guest handler, SIGTERM's default action ending it with status 143).

mod common;

use std::ffi::OsString;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

/// What `procs exec` prints after the recorded lines.
const EXEC_LINES: &str = "new image: argc=3 argv[1]=image argv[2]=two env VMJIT_PROCS=yes\n\
new image: fd 5 open, fd 6 closed\n\
new image: read 7 'through' from the inherited pipe\n\
exec'd self: exited 9\n\
execve of a missing file: -1 ENOENT\n";

fn self_exec(name: &str, engine: &[&str]) {
    if common::skip_without_sysroot(name) {
        return;
    }
    let bin = common::guests_dir().join("bin").join(name);
    let mut full: Vec<OsString> = vec![env!("CARGO_BIN_EXE_vmjit").into(), "run".into()];
    full.extend(engine.iter().map(OsString::from));
    full.push(bin.into_os_string());
    full.push("exec".into());
    let run = common::run_in(
        &full,
        std::path::Path::new("/dev/null"),
        &common::fresh_dir(name),
    );
    let (recorded, code) = common::expected(name);
    let mut want = recorded;
    want.extend_from_slice(EXEC_LINES.as_bytes());
    if let Some(diff) = common::describe_diff(name, &want, &run.stdout) {
        panic!(
            "{name} exec {engine:?}: {diff}\nstderr:\n{}",
            run.stderr_text()
        );
    }
    assert_eq!(
        run.code,
        code,
        "{name} exec {engine:?}: {}",
        run.stderr_text()
    );
    assert!(
        !run.stderr_text().contains("panicked"),
        "{}",
        run.stderr_text()
    );
}

#[test]
fn static_guest_executes_itself_under_the_jit() {
    self_exec("procs", &[]);
}

#[test]
fn static_guest_executes_itself_under_the_interpreter() {
    self_exec("procs", &["--engine", "interp"]);
}

#[test]
fn dynamic_guest_executes_itself() {
    self_exec("procs_dyn", &[]);
}

/// Sends `sig` to `pid`.
fn send(pid: u32, sig: i32) {
    let pid = i32::try_from(pid).expect("pid fits in pid_t");
    // SAFETY: kill has no memory effects; the pid is our own child's.
    let r = unsafe { libc::kill(pid, sig) };
    assert_eq!(r, 0, "kill({pid}, {sig})");
}

fn host_signals(engine: &[&str]) {
    let bin = common::guests_dir().join("bin").join("sigalrm");
    let mut child = Command::new(env!("CARGO_BIN_EXE_vmjit"))
        .arg("run")
        .args(engine)
        .arg(&bin)
        .arg("host")
        .env_clear()
        .env("VMJIT_GUEST", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start vmjit");
    let pid = child.id();
    let mut out = BufReader::new(child.stdout.take().expect("piped stdout"));
    let mut line = String::new();
    out.read_line(&mut line).expect("read ready");
    assert_eq!(line, "ready\n");
    send(pid, libc::SIGINT);
    line.clear();
    out.read_line(&mut line).expect("read the handler's line");
    assert_eq!(line, "caught signal 2 from outside\n");
    send(pid, libc::SIGTERM);
    let status = child.wait().expect("wait for vmjit");
    use std::os::unix::process::ExitStatusExt;
    let code = status
        .code()
        .unwrap_or_else(|| 128 + status.signal().unwrap_or(0));
    let mut err = String::new();
    if let Some(mut e) = child.stderr.take() {
        use std::io::Read;
        let _ = e.read_to_string(&mut err);
    }
    assert_eq!(code, 143, "SIGTERM's default action; stderr:\n{err}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn host_signals_reach_the_guest_under_the_jit() {
    host_signals(&[]);
}

#[test]
fn host_signals_reach_the_guest_under_the_interpreter() {
    host_signals(&["--engine", "interp"]);
}
