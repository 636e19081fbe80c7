//! Dynamically linked programs beyond the golden files: how the sysroot is chosen (`-L`,
//! `VMJIT_LD_PREFIX`, `QEMU_LD_PREFIX`, the default), the one-line errors for an
//! interpreter that is missing or unusable (these need no sysroot: they use the committed
//! binaries and sysroots made here), the interpreter run as the program itself, and
//! mutated dynamic executables. Tests that run guest code need the riscv64 sysroot and
//! say that they were skipped without it.

mod common;

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};

const INTERP: &str = "/lib/ld-linux-riscv64-lp64d.so.1";

fn guest(name: &str) -> PathBuf {
    common::guests_dir().join("bin").join(name)
}

/// A fresh directory, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        TempDir(common::fresh_dir(tag))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A sysroot whose `lib/ld-linux-riscv64-lp64d.so.1` holds `interp` (absent: `None`).
fn sysroot_with(tag: &str, interp: Option<&[u8]>) -> TempDir {
    let d = TempDir::new(tag);
    std::fs::create_dir_all(d.0.join("lib")).expect("create lib");
    if let Some(bytes) = interp {
        std::fs::write(d.0.join("lib/ld-linux-riscv64-lp64d.so.1"), bytes).expect("write");
    }
    d
}

/// `vmjit run ARGS...` with `env` added to the guest conventions' environment.
fn vmjit_env(args: &[&OsStr], env: &[(&str, &OsStr)]) -> common::Run {
    let mut full: Vec<OsString> = vec![env!("CARGO_BIN_EXE_vmjit").into(), "run".into()];
    full.extend(args.iter().map(|a| a.to_os_string()));
    common::run_in_env(
        &full,
        Path::new("/dev/null"),
        &common::fresh_dir("dyn"),
        env,
    )
}

/// Asserts the one-line error contract (exit 1, one stderr line, no stdout) and that
/// the line is `want`.
fn assert_one_line(run: &common::Run, want: &str) {
    let err = run.stderr_text();
    assert!(!err.contains("panicked"), "vmjit panicked: {err}");
    assert_eq!(run.code, 1, "exit status; stderr: {err}");
    assert_eq!(err.lines().count(), 1, "one stderr line expected: {err:?}");
    assert_eq!(err.trim_end(), want);
    assert!(run.stdout.is_empty(), "no stdout expected");
}

fn canonical(p: &Path) -> String {
    p.canonicalize()
        .expect("canonicalize")
        .display()
        .to_string()
}

#[test]
fn a_missing_interpreter_is_one_line_naming_the_sysroot_and_how_to_set_it() {
    let root = sysroot_with("nointerp", None);
    let prog = guest("hello_dyn");
    let run = vmjit_env(&["-L".as_ref(), root.0.as_os_str(), prog.as_os_str()], &[]);
    assert_one_line(
        &run,
        &format!(
            "vmjit: {}: its ELF interpreter {INTERP} was not found in the sysroot {} (set it \
             with -L DIR or VMJIT_LD_PREFIX)",
            prog.display(),
            canonical(&root.0)
        ),
    );
}

#[test]
fn without_a_sysroot_the_interpreter_is_looked_for_on_the_host() {
    if Path::new(INTERP).exists() {
        // This host has a riscv64 interpreter of its own (a binfmt setup, say).
        return;
    }
    let prog = guest("hello_dyn");
    let run = vmjit_env(&["-L".as_ref(), "/".as_ref(), prog.as_os_str()], &[]);
    assert_one_line(
        &run,
        &format!(
            "vmjit: {}: its ELF interpreter {INTERP} was not found, and there is no sysroot \
             to look in (set one with -L DIR or VMJIT_LD_PREFIX)",
            prog.display()
        ),
    );
}

#[test]
fn the_sysroot_comes_from_l_then_vmjit_ld_prefix_then_qemu_ld_prefix() {
    let (a, b) = (sysroot_with("env-a", None), sysroot_with("env-b", None));
    let prog = guest("hello_dyn");
    let not_found = |root: &TempDir| {
        format!(
            "vmjit: {}: its ELF interpreter {INTERP} was not found in the sysroot {} (set it \
             with -L DIR or VMJIT_LD_PREFIX)",
            prog.display(),
            canonical(&root.0)
        )
    };
    let (a_dir, b_dir) = (a.0.as_os_str(), b.0.as_os_str());
    let run = vmjit_env(&[prog.as_os_str()], &[("QEMU_LD_PREFIX", a_dir)]);
    assert_one_line(&run, &not_found(&a));
    let run = vmjit_env(&[prog.as_os_str()], &[("VMJIT_LD_PREFIX", a_dir)]);
    assert_one_line(&run, &not_found(&a));
    let both = [("VMJIT_LD_PREFIX", b_dir), ("QEMU_LD_PREFIX", a_dir)];
    let run = vmjit_env(&[prog.as_os_str()], &both);
    assert_one_line(&run, &not_found(&b));
    let run = vmjit_env(&["-L".as_ref(), a_dir, prog.as_os_str()], &both);
    assert_one_line(&run, &not_found(&a));
}

#[test]
fn a_sysroot_that_is_not_a_directory_is_one_line() {
    let prog = guest("hello_dyn");
    let run = vmjit_env(&["-L".as_ref(), prog.as_os_str(), prog.as_os_str()], &[]);
    assert_one_line(
        &run,
        &format!(
            "vmjit: sysroot {} (from -L) is not a directory",
            prog.display()
        ),
    );
    let run = vmjit_env(
        &[prog.as_os_str()],
        &[("VMJIT_LD_PREFIX", "/nonexistent/vmjit-sysroot".as_ref())],
    );
    assert!(
        run.stderr_text().starts_with(
            "vmjit: sysroot /nonexistent/vmjit-sysroot (from VMJIT_LD_PREFIX) cannot be used: "
        ),
        "{}",
        run.stderr_text()
    );
    assert_eq!(run.code, 1);
}

#[test]
fn an_unusable_interpreter_is_one_line_saying_why() {
    let prog = guest("hello_dyn");
    let check = |tag: &str, interp: Option<&[u8]>, reason: &str| {
        let root = sysroot_with(tag, interp);
        if interp.is_none() {
            std::fs::create_dir(root.0.join("lib/ld-linux-riscv64-lp64d.so.1")).expect("mkdir");
        }
        let run = vmjit_env(&["-L".as_ref(), root.0.as_os_str(), prog.as_os_str()], &[]);
        assert_one_line(
            &run,
            &format!(
                "vmjit: {}: its ELF interpreter {INTERP} (at {}{INTERP}): {reason}",
                prog.display(),
                canonical(&root.0)
            ),
        );
    };
    // vmjit itself: an x86-64 ELF file.
    let x86 = std::fs::read(env!("CARGO_BIN_EXE_vmjit")).expect("read vmjit");
    check("x86", Some(&x86), "is an ELF file for x86-64, not riscv64");
    check("script", Some(b"#!/bin/sh\n"), "is not an ELF file");
    check("dir", None, "is a directory");
    // A dynamically linked program as the interpreter: it names an interpreter itself.
    let dyn_prog = std::fs::read(&prog).expect("read hello_dyn");
    check(
        "nested",
        Some(&dyn_prog),
        &format!(
            "names an ELF interpreter of its own ({INTERP}); an interpreter must not need one"
        ),
    );
    // A static program is an ET_EXEC at the program's own addresses.
    let hello = std::fs::read(guest("hello")).expect("read hello");
    let dlopen = guest("dlopen");
    let root = sysroot_with("overlap", Some(&hello));
    let run = vmjit_env(
        &["-L".as_ref(), root.0.as_os_str(), dlopen.as_os_str()],
        &[],
    );
    assert_one_line(
        &run,
        &format!(
            "vmjit: {}: its ELF interpreter {INTERP} (at {}{INTERP}): has program segment 1 \
             overlapping the program it is to run",
            dlopen.display(),
            canonical(&root.0)
        ),
    );
}

#[test]
fn a_sysroot_given_with_l_is_used_for_the_interpreter_and_the_libraries() {
    if common::skip_without_sysroot("hello_dyn") {
        return;
    }
    // A sysroot of our own whose lib/ is the installed one's.
    let root = TempDir::new("ownroot");
    std::os::unix::fs::symlink(Path::new(common::SYSROOT).join("lib"), root.0.join("lib"))
        .expect("symlink");
    for engine in ["interp", "jit"] {
        let cmd: Vec<OsString> = vec![
            env!("CARGO_BIN_EXE_vmjit").into(),
            "run".into(),
            "--engine".into(),
            engine.into(),
            "-L".into(),
            root.0.clone().into_os_string(),
        ];
        common::assert_matches_expected(&cmd, "hello_dyn", &format!("-L own sysroot, {engine}"));
    }
}

#[test]
fn the_interpreter_runs_as_the_program_and_loads_one() {
    if common::skip_without_sysroot("intalg_dyn") {
        return;
    }
    // ld.so as the program: an ET_DYN without PT_INTERP (loaded at the PIE base, like a
    // static-pie), which maps intalg_dyn itself with mmap.
    let (want, code) = common::expected("intalg_dyn");
    for engine in ["interp", "jit"] {
        let run = common::vmjit(&[
            "run".as_ref(),
            "--engine".as_ref(),
            engine.as_ref(),
            common::SYSROOT_INTERP.as_ref(),
            guest("intalg_dyn").as_os_str(),
        ]);
        assert_eq!(run.code, code, "{engine}: {}", run.stderr_text());
        assert!(
            common::describe_diff("stdout", &want, &run.stdout).is_none(),
            "{engine}: {:?}",
            common::describe_diff("stdout", &want, &run.stdout)
        );
    }
}

#[test]
fn mutated_dynamic_executables_never_panic_vmjit() {
    // Header and program-header bytes of hello_dyn (PT_INTERP and its name among them)
    // mutated: each run loads or fails with one line, never a panic. Without the
    // sysroot most fail to find their interpreter, which is fine too.
    let base = std::fs::read(guest("hello_dyn")).expect("read hello_dyn");
    let mut s = 0x6a09_e667_f3bc_c908u64;
    let mut next = || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        s
    };
    for i in 0..30 {
        let mut d = base.clone();
        for _ in 0..1 + next() % 4 {
            // The ELF header, the program headers and the interpreter name after them.
            let pos = (next() % 0x2a0) as usize;
            d[pos] = next() as u8;
        }
        let dir = TempDir::new(&format!("dynmut{i}"));
        let p = dir.0.join("prog");
        std::fs::write(&p, &d).expect("write");
        let run = common::vmjit(&[
            "run".as_ref(),
            "--max-insns".as_ref(),
            "2000000".as_ref(),
            p.as_os_str(),
        ]);
        let err = run.stderr_text();
        assert!(
            !err.contains("panicked"),
            "mutation {i} panicked vmjit: {err}"
        );
        assert!(
            (0..256).contains(&run.code),
            "mutation {i}: status {}",
            run.code
        );
        if run.code == 1 && err.starts_with(&format!("vmjit: {}:", p.display())) {
            assert_eq!(err.lines().count(), 1, "mutation {i}: {err}");
        }
    }
}
