//! The escape suite: `guests/bin/escape CASE` tries one route out of the sandbox (see
//! `guests/src/escape.c`); each case must end with the guest-visible outcome Linux
//! gives (or vmjit's documented refusal) under the interpreter, the JIT, and the JIT
//! with a tiny cache on the guest thread (constant translation and eviction), and
//! vmjit must end normally: no host signal, no panic.

mod common;

use std::ffi::OsString;
use std::path::Path;

fn configs() -> Vec<(&'static str, Vec<&'static str>)> {
    vec![
        ("interp", vec!["--engine", "interp"]),
        ("jit", vec![]),
        (
            "jit-64K",
            vec!["--cache-size", "64K", "--compile-threads", "0"],
        ),
    ]
}

/// The guest must start with stdio only, as its expected output assumes: the test
/// process may hold inheritable descriptors (cargo's jobserver pipes, say), which vmjit
/// would rightly pass on. They are made close-on-exec here.
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

/// Runs `escape CASE` with extra vmjit options; checks that vmjit itself ended well.
fn run(case: &str, opts: &[&str]) -> common::Run {
    only_stdio_is_inherited();
    let bin = common::guests_dir().join("bin/escape");
    assert!(
        bin.is_file(),
        "{} is missing (make -C guests)",
        bin.display()
    );
    let mut cmd: Vec<OsString> = vec![env!("CARGO_BIN_EXE_vmjit").into(), "run".into()];
    cmd.extend(opts.iter().map(OsString::from));
    cmd.push(bin.into_os_string());
    cmd.push(case.into());
    let r = common::run_in(&cmd, Path::new("/dev/null"), &common::fresh_dir(case));
    let err = r.stderr_text();
    assert!(
        !err.contains("panicked") && !err.contains("internal error"),
        "vmjit failed on escape {case} {opts:?}:\n{err}"
    );
    r
}

fn check(case: &str, want_out: &str, want_code: i32) {
    for (name, opts) in configs() {
        let r = run(case, &opts);
        let out = String::from_utf8_lossy(&r.stdout);
        assert_eq!(
            out,
            want_out,
            "escape {case} ({name}): stdout differs\nstderr:\n{}",
            r.stderr_text()
        );
        assert_eq!(
            r.code,
            want_code,
            "escape {case} ({name}): exit status\nstderr:\n{}",
            r.stderr_text()
        );
    }
}

#[test]
fn descriptors_the_guest_did_not_open_are_out_of_reach() {
    check(
        "fds",
        "first open: 3\n\
         descriptors the guest did not open that answered: 0\n\
         translated code intact: yes\n\
         /proc/self/fd: 0 not the guest's\n\
         readlink /proc/self/fd/3: /dev/null\n\
         code cache opened through a symlink: 0\n\
         after the attacks: same result\n",
        0,
    );
}

#[test]
fn host_memory_and_mappings_through_proc_are_refused() {
    check(
        "proc",
        "open /proc/self/mem: Permission denied (refused)\n\
         open /proc/thread-self/mem: Permission denied (refused)\n\
         open /proc/%d/mem: Permission denied (refused)\n\
         open /proc/%d/task/%d/mem: Permission denied (refused)\n\
         open /proc/self/pagemap: Permission denied (refused)\n\
         open /proc/self/map_files: Permission denied (refused)\n\
         open /proc/self/map_files/: Permission denied (refused)\n\
         open /proc/self/root/proc/self/mem: Permission denied (refused)\n\
         open /proc/self/../self/./mem: Permission denied (refused)\n\
         open /proc/self/smaps: Permission denied (refused)\n\
         openat(/proc/self, mem): Permission denied (refused)\n\
         openat(/proc/self, map_files): Permission denied (refused)\n\
         /proc/self/maps: lists mappings, all below 1<<34: yes\n\
         readlink /proc/self/exe: .../escape\n",
        0,
    );
}

#[test]
fn other_processes_and_debugging_are_refused() {
    check(
        "procs",
        "process_vm_readv(self): 5 guest\n\
         process_vm_readv(self, outside the guest): Bad address\n\
         process_vm_writev(init): Operation not permitted (refused)\n\
         ptrace(TRACEME): Operation not permitted (refused)\n\
         pidfd_getfd: Operation not permitted (refused)\n",
        0,
    );
}

#[test]
fn closing_every_descriptor_leaves_vmjit_running() {
    check(
        "closefrom",
        "close(3..65535) closed exactly the guest's descriptors: yes\n\
         close_range(3, ~0): ok\n\
         translated code after closing: same result\n\
         next open: 3\n",
        0,
    );
}

#[test]
fn code_rewritten_without_a_fence_runs_old_or_new_and_fence_i_publishes_it() {
    check(
        "smc",
        "before: 200000\n\
         without a fence: old or new code (either is allowed)\n\
         after fence.i: 2\n",
        0,
    );
}

#[test]
fn the_stack_made_executable_runs_code() {
    check(
        "stackexec",
        "mprotect(stack, rwx): ok\ncode on the stack returned 42\n",
        0,
    );
}

#[test]
fn jumping_into_data_is_a_guest_segmentation_fault() {
    check("jumpdata", "jumping into .data\n", 139);
}

#[test]
fn huge_requests_fail_and_memory_is_bounded() {
    let want = "brk(1<<62): unchanged\n\
                mmap(1<<47 bytes): Cannot allocate memory\n\
                mmap(~0 bytes): Cannot allocate memory\n\
                mmap(MAP_FIXED across the end of user space): Cannot allocate memory\n\
                mremap(to 1<<47 bytes): Cannot allocate memory\n\
                64 MiB chunks until ENOMEM: stopped with Cannot allocate memory\n";
    for (name, mut opts) in configs() {
        opts.extend(["--max-memory", "512M"]);
        let r = run("huge", &opts);
        let out = String::from_utf8_lossy(&r.stdout);
        assert!(out.starts_with(want), "huge ({name}):\n{out}");
        // 512 MiB, less what the program and its stack already use, in 64 MiB steps.
        assert!(
            out.contains("chunks: 7\n"),
            "huge ({name}): expected 7 chunks of 64 MiB under 512M:\n{out}"
        );
        assert!(out.ends_with("malloc(1 GiB) after that: NULL\n"), "{out}");
        assert_eq!(r.code, 0, "huge ({name})");
    }
}

#[test]
fn writing_to_a_pipe_without_readers_ends_the_guest_with_sigpipe() {
    check("sigpipe", "writing to a pipe with no reader\n", 141);
}
