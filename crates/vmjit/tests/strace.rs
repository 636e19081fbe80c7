//! `vmjit run --strace`: the guest's output is unchanged, stderr has one whole line per
//! system call in qemu's `-strace` format (thread id, call, decoded arguments, result),
//! threads show their own ids, a blocked call is visible before it returns, and the
//! lines of pointer-free calls are the ones `qemu-riscv64 -strace` prints (when qemu is
//! installed).

mod common;

use std::collections::HashSet;
use std::ffi::OsString;
use std::io::{BufRead, Write};
use std::process::{Command, Stdio};
use std::time::Duration;

fn vmjit_run(extra: &[&str]) -> Vec<OsString> {
    let mut v: Vec<OsString> = vec![env!("CARGO_BIN_EXE_vmjit").into(), "run".into()];
    v.extend(extra.iter().map(OsString::from));
    v
}

/// One trace line: the thread id and the rest.
fn split(line: &str) -> Option<(u32, &str)> {
    let (tid, text) = line.split_once(' ')?;
    Some((tid.parse().ok()?, text))
}

/// A line is whole when it is exactly one of `name(args) = result`, `name(args)` (an
/// exit), `name(args) <unfinished ...>` or `<... name resumed> = result`.
fn is_whole(text: &str) -> bool {
    let is_name = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    };
    if let Some(rest) = text.strip_prefix("<... ") {
        return rest
            .split_once(" resumed> = ")
            .is_some_and(|(name, res)| is_name(name) && !res.is_empty());
    }
    let Some((name, _)) = text.split_once('(') else {
        return false;
    };
    is_name(name)
        && (text.ends_with(')') || text.contains(") = ") || text.ends_with(") <unfinished ...>"))
}

/// The trace lines of `stderr` as `(tid, text)`, checking that each is whole and that
/// no other thread's line starts inside it.
fn trace(stderr: &str) -> Vec<(u32, String)> {
    let lines: Vec<(u32, String)> = stderr
        .lines()
        .map(|l| {
            let (tid, text) = split(l).unwrap_or_else(|| panic!("not a trace line: {l:?}"));
            assert!(is_whole(text), "not a whole trace line: {l:?}");
            (tid, text.to_string())
        })
        .collect();
    let tids: HashSet<u32> = lines.iter().map(|l| l.0).collect();
    for (_, text) in &lines {
        if let Some(t) = embedded_line(text, &tids) {
            panic!("thread {t}'s line inside {text:?}");
        }
    }
    lines
}

/// A thread id of `tids` followed by a space and a call (`4242 read(` or
/// `4242 <... read`) inside `text`: another line written into this one.
fn embedded_line(text: &str, tids: &HashSet<u32>) -> Option<u32> {
    let b = text.as_bytes();
    (1..b.len()).find_map(|i| {
        if b[i - 1] != b' ' || !(b[i].is_ascii_lowercase() || b[i] == b'<') {
            return None;
        }
        let end = i - 1;
        let start = (0..end)
            .rev()
            .take_while(|&j| b[j].is_ascii_digit())
            .last()?;
        text[start..end].parse().ok().filter(|t| tids.contains(t))
    })
}

fn has(lines: &[(u32, String)], want: &str) -> bool {
    lines.iter().any(|l| l.1 == want)
}

/// The first line that starts with `prefix` and ends with `suffix`.
fn find<'a>(lines: &'a [(u32, String)], prefix: &str, suffix: &str) -> Option<&'a str> {
    lines
        .iter()
        .map(|l| l.1.as_str())
        .find(|t| t.starts_with(prefix) && t.ends_with(suffix))
}

#[test]
fn fileio_trace_shows_its_calls_decoded_and_leaves_its_output_unchanged() {
    let plain = common::run_guest(&vmjit_run(&[]), "fileio");
    let traced = common::run_guest(&vmjit_run(&["--strace"]), "fileio");
    let (want, code) = common::expected("fileio");
    assert_eq!(plain.stdout, want);
    assert_eq!(traced.code, code, "{}", traced.stderr_text());
    if let Some(d) = common::describe_diff("stdout with --strace", &plain.stdout, &traced.stdout) {
        panic!("{d}");
    }
    let lines = trace(&traced.stderr_text());
    for want in [
        "openat(AT_FDCWD,\"data.bin\",O_RDWR|O_CREAT|O_EXCL|O_TRUNC,0644) = 3",
        "openat(AT_FDCWD,\"data.bin\",O_WRONLY|O_CREAT|O_EXCL,0644) = -1 errno=17 (File exists)",
        "openat(AT_FDCWD,\"no-such-file\",O_RDONLY) = -1 errno=2 (No such file or directory)",
        "openat(AT_FDCWD,\".\",O_RDONLY|O_DIRECTORY|O_NONBLOCK|O_CLOEXEC) = 3",
        "lseek(3,0,SEEK_END) = 100000",
        "ftruncate(3,4096) = 0",
        "fcntl(3,F_SETFL,O_RDWR|O_APPEND) = 0",
        "fcntl(3,F_DUPFD,50) = 50",
        "close(50) = -1 errno=9 (Bad file descriptor)",
        "mkdirat(AT_FDCWD,\"sub\",0755) = 0",
        "unlinkat(AT_FDCWD,\"sub\",AT_REMOVEDIR) = -1 errno=39 (Directory not empty)",
        "unlinkat(AT_FDCWD,\"sub/inner\",AT_REMOVEDIR) = 0",
        "renameat2(AT_FDCWD,\"sub/alpha.txt\",AT_FDCWD,\"moved.txt\",0) = 0",
        "dup3(3,41,O_CLOEXEC) = 41",
        "brk(NULL) = 0x00000000000c0000",
    ] {
        assert!(
            has(&lines, want),
            "no line {want:?} in\n{}",
            traced.stderr_text()
        );
    }
    assert!(
        find(&lines, "write(3,0x", ",100000) = 100000").is_some(),
        "write with its fd and count"
    );
    assert!(
        find(
            &lines,
            "read(12345,0x",
            ",1) = -1 errno=9 (Bad file descriptor)"
        )
        .is_some(),
        "a failing read"
    );
    assert!(
        find(&lines, "newfstatat(3,\"\",0x", ",AT_EMPTY_PATH) = 0").is_some(),
        "fstat through newfstatat"
    );
    // The guest's last call has no result; one thread, the process.
    assert_eq!(lines.last().map(|l| l.1.as_str()), Some("exit_group(0)"));
    let tids: HashSet<u32> = lines.iter().map(|l| l.0).collect();
    assert_eq!(tids.len(), 1, "fileio has one thread");
}

#[test]
fn hello_trace_shows_reads_of_stdin_and_the_write_of_its_output() {
    let traced = common::run_guest(&vmjit_run(&["--strace", "--engine", "interp"]), "hello");
    let (want, code) = common::expected("hello");
    assert_eq!(traced.code, code);
    assert_eq!(traced.stdout, want, "--strace changed the guest's output");
    let lines = trace(&traced.stderr_text());
    let stdin = std::fs::read(common::guests_dir().join("expected/hello.stdin")).unwrap();
    assert!(
        find(&lines, "read(0,0x", &format!(",4096) = {}", stdin.len())).is_some(),
        "{}",
        traced.stderr_text()
    );
    assert!(
        find(&lines, "read(0,0x", ",4096) = 0").is_some(),
        "end of stdin"
    );
    let n = want.len();
    assert!(
        find(&lines, "write(1,0x", &format!(",{n}) = {n}")).is_some(),
        "{}",
        traced.stderr_text()
    );
    assert!(has(&lines, "exit_group(0)"));
}

#[test]
fn threads_trace_every_thread_under_its_own_id_in_whole_lines() {
    let traced = common::run_guest(&vmjit_run(&["--strace"]), "threads");
    let (want, code) = common::expected("threads");
    assert_eq!(traced.code, code, "{}", traced.stderr_text());
    assert_eq!(traced.stdout, want, "--strace changed the guest's output");
    let lines = trace(&traced.stderr_text());
    let main = lines[0].0;
    let tids: HashSet<u32> = lines.iter().map(|l| l.0).collect();
    // Every clone the main thread makes answers a new thread's id, and that thread's
    // own calls are traced under it.
    let clones: Vec<u32> = lines
        .iter()
        .filter(|l| {
            l.1.starts_with("clone(CLONE_VM|CLONE_FS|CLONE_FILES|CLONE_SIGHAND|CLONE_THREAD|")
        })
        .filter_map(|l| l.1.rsplit_once(" = ").and_then(|(_, r)| r.parse().ok()))
        .collect();
    assert!(clones.len() >= 1000, "{} clones traced", clones.len());
    for c in &clones {
        assert_ne!(*c, main);
        assert!(tids.contains(c), "no line from thread {c}");
    }
    // Threads end with exit, the process with exit_group from the first thread.
    assert!(lines.iter().any(|l| l.0 != main && l.1 == "exit(0)"));
    assert_eq!(
        lines.last().map(|l| (l.0, l.1.as_str())),
        Some((main, "exit_group(0)"))
    );
    // Futex waits block: shown when they start, and when they return.
    assert!(
        lines
            .iter()
            .any(|l| l.1.starts_with("futex(0x") && l.1.ends_with(" <unfinished ...>")),
        "no futex wait shown as unfinished"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.1.starts_with("<... futex resumed> = "))
    );
}

/// A read that waits is on stderr before it returns: the test only writes the guest's
/// input after it has seen the `<unfinished ...>` line.
#[test]
fn a_blocked_read_is_visible_before_it_returns() {
    let hello = common::guests_dir().join("bin/hello");
    let mut child = Command::new(env!("CARGO_BIN_EXE_vmjit"))
        .args(["run", "--strace", "--engine", "interp"])
        .arg(&hello)
        .env_clear()
        .env("VMJIT_GUEST", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start vmjit");
    let stderr = child.stderr.take().expect("stderr");
    let (tx, rx) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut seen = Vec::new();
    let blocked = loop {
        match rx.recv_timeout(Duration::from_secs(120)) {
            Ok(l) => {
                let hit = split(&l).is_some_and(|(_, t)| {
                    t.starts_with("read(0,0x") && t.ends_with(",4096) <unfinished ...>")
                });
                seen.push(l);
                if hit {
                    break true;
                }
            }
            Err(_) => break false,
        }
    };
    if !blocked {
        let _ = child.kill();
        let _ = child.wait();
        panic!("no unfinished read of stdin; saw:\n{}", seen.join("\n"));
    }
    let mut stdin = child.stdin.take().expect("stdin");
    stdin.write_all(b"two\nlines\n").expect("write guest stdin");
    drop(stdin);
    let out = child.wait_with_output().expect("wait for vmjit");
    assert!(out.status.success());
    let _ = reader.join();
    seen.extend(rx.try_iter());
    let text = seen.join("\n");
    let lines = trace(&text);
    assert!(has(&lines, "<... read resumed> = 10"), "{text}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("stdin: 2 lines, 10 bytes"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn the_whole_line_check_finds_a_line_written_into_another() {
    let tids: HashSet<u32> = [41, 42].into();
    // What qemu's two-part lines look like when threads interleave.
    let found = |t: &str| embedded_line(t, &tids);
    assert_eq!(found("write(1,0x2,3)42 read(3,0x1,2) = 2"), Some(42));
    assert_eq!(
        found("futex(0x1,FUTEX_WAIT,2,NULL)41 <... futex resumed> = 0"),
        Some(41)
    );
    assert_eq!(found("write(1,0x2,3) = 3 42 close(3) = 0"), Some(42));
    assert_eq!(found("gettid() = 42"), None);
    assert_eq!(found("futex(0x1,FUTEX_WAIT,42,NULL,NULL,0) = 0"), None);
    assert_eq!(
        found("openat(AT_FDCWD,\"x\",O_RDONLY) = -1 errno=2 (No such file or directory)"),
        None
    );
    assert!(!is_whole("write(1,0x2,3"));
    assert!(is_whole("exit_group(0)"));
    assert!(is_whole("<... read resumed> = 5"));
}

#[test]
fn run_help_documents_strace() {
    let r = common::vmjit(&["run".as_ref(), "--help".as_ref()]);
    let help = String::from_utf8_lossy(&r.stdout);
    assert!(help.contains("--strace"), "{help}");
    assert!(help.contains("qemu-riscv64 -strace"), "{help}");
}

fn qemu() -> Option<OsString> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join("qemu-riscv64"))
        .find(|p| p.is_file())
        .map(|p| p.into_os_string())
}

/// The calls whose lines carry no address (which differ between the two: stacks are
/// placed differently) and whose arguments qemu decodes as vmjit does.
const SAME_AS_QEMU: &[&str] = &[
    "openat(",
    "close(",
    "lseek(",
    "unlinkat(",
    "mkdirat(",
    "fcntl(",
    "dup(",
    "ftruncate(",
    "exit_group(",
];

#[test]
fn common_lines_are_byte_identical_to_qemu_strace() {
    let Some(q) = qemu() else {
        let _ =
            std::io::stderr().write_all(b"qemu-riscv64 not installed: strace comparison skipped\n");
        return;
    };
    let pick = |stderr: &[u8]| -> Vec<String> {
        String::from_utf8_lossy(stderr)
            .lines()
            .filter_map(|l| split(l).map(|(_, t)| t.to_string()))
            .filter(|t| SAME_AS_QEMU.iter().any(|p| t.starts_with(p)))
            .collect()
    };
    let theirs = common::run_guest(&[q, "-strace".into()], "fileio");
    let ours = common::run_guest(&vmjit_run(&["--strace"]), "fileio");
    let (theirs, ours) = (pick(&theirs.stderr), pick(&ours.stderr));
    assert!(ours.len() > 80, "{} lines compared", ours.len());
    if let Some(d) = common::describe_diff(
        "qemu -strace vs vmjit --strace",
        theirs.join("\n").as_bytes(),
        ours.join("\n").as_bytes(),
    ) {
        panic!("{d}");
    }
}
