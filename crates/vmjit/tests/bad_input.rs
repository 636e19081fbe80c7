//! Bad input and faulting guests: every malformed program gets exit status 1 and exactly
//! one `vmjit: <program>: <reason>` line on stderr (never a panic); guests that fault end
//! like Linux would kill them (139 for SIGSEGV, 132 for SIGILL) with a clear message.

mod common;

use std::path::{Path, PathBuf};

fn run_program(path: &Path) -> common::Run {
    common::vmjit(&[
        "run".as_ref(),
        "--max-insns".as_ref(),
        "1000000".as_ref(),
        path.as_os_str(),
    ])
}

fn hello() -> Vec<u8> {
    std::fs::read(common::guests_dir().join("bin/hello")).expect("guests/bin/hello")
}

/// A file in a fresh directory, removed (with the directory) when dropped.
struct TempFile(PathBuf);

impl std::ops::Deref for TempFile {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if let Some(dir) = self.0.parent() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// Writes `bytes` to a file in a fresh directory.
fn file_with(name: &str, bytes: &[u8]) -> TempFile {
    let d = common::fresh_dir(name);
    let p = d.join(name);
    std::fs::write(&p, bytes).expect("write test file");
    TempFile(p)
}

fn u16_at(d: &[u8], off: usize) -> u16 {
    u16::from_le_bytes([d[off], d[off + 1]])
}

fn u64_at(d: &[u8], off: usize) -> u64 {
    u64::from_le_bytes(d[off..off + 8].try_into().expect("8 bytes"))
}

/// File offsets of the program headers of an ELF64 image.
fn phdr_offsets(d: &[u8]) -> Vec<usize> {
    let phoff = u64_at(d, 32) as usize;
    let phnum = usize::from(u16_at(d, 56));
    (0..phnum).map(|i| phoff + i * 56).collect()
}

/// Asserts the one-line error contract and returns the line.
fn assert_load_error(path: &Path, run: &common::Run, reason: &str) {
    let err = run.stderr_text();
    assert!(
        !err.contains("panicked"),
        "vmjit panicked on {}: {err}",
        path.display()
    );
    assert_eq!(
        run.code,
        1,
        "exit status for {}; stderr: {err}",
        path.display()
    );
    assert_eq!(
        err.lines().count(),
        1,
        "exactly one stderr line expected, got: {err:?}"
    );
    let want = format!("vmjit: {}: {reason}", path.display());
    assert!(
        err.starts_with(&want),
        "stderr {err:?} should start with {want:?}"
    );
    assert!(run.stdout.is_empty(), "no stdout expected");
}

#[test]
fn empty_file_is_not_an_elf() {
    let p = file_with("empty", b"");
    assert_load_error(&p, &run_program(&p), "is not an ELF file");
}

#[test]
fn text_file_is_not_an_elf() {
    let p = file_with("script.sh", b"#!/bin/sh\necho hello\n");
    assert_load_error(&p, &run_program(&p), "is not an ELF file");
}

#[test]
fn truncated_elf_header_is_reported_as_truncated() {
    let p = file_with("trunc40", &hello()[..40]);
    assert_load_error(&p, &run_program(&p), "is truncated");
    let p = file_with("trunc10", &hello()[..10]);
    assert_load_error(&p, &run_program(&p), "is truncated");
}

#[test]
fn truncated_program_headers_are_reported_as_truncated() {
    let p = file_with("trunc100", &hello()[..100]);
    assert_load_error(&p, &run_program(&p), "is truncated");
}

#[test]
fn elf32_is_rejected_as_32_bit() {
    let mut d = hello();
    d[4] = 1; // ELFCLASS32
    let p = file_with("elf32", &d);
    assert_load_error(&p, &run_program(&p), "is a 32-bit ELF file");
}

#[test]
fn big_endian_elf_is_rejected() {
    let mut d = hello();
    d[5] = 2; // ELFDATA2MSB
    let p = file_with("bigendian", &d);
    assert_load_error(&p, &run_program(&p), "is a big-endian ELF file");
}

#[test]
fn x86_64_elf_is_rejected_as_wrong_machine() {
    let mut d = hello();
    d[18..20].copy_from_slice(&62u16.to_le_bytes()); // EM_X86_64
    let p = file_with("x86", &d);
    assert_load_error(
        &p,
        &run_program(&p),
        "is an ELF file for x86-64, not riscv64",
    );
}

#[test]
fn corrupt_program_header_size_is_rejected() {
    let mut d = hello();
    d[54..56].copy_from_slice(&32u16.to_le_bytes()); // e_phentsize
    let p = file_with("phentsize", &d);
    assert_load_error(&p, &run_program(&p), "has corrupt ELF headers");
}

#[test]
fn segment_beyond_end_of_file_is_rejected() {
    let mut d = hello();
    let load = phdr_offsets(&d)
        .into_iter()
        .find(|&o| u32::from_le_bytes(d[o..o + 4].try_into().unwrap()) == 1)
        .expect("a PT_LOAD");
    let beyond = (d.len() as u64 + 0x10000).to_le_bytes();
    d[load + 8..load + 16].copy_from_slice(&beyond); // p_offset
    let p = file_with("beyond", &d);
    assert_load_error(&p, &run_program(&p), "has program segment");
    assert!(run_program(&p).stderr_text().contains("outside the file"));
}

#[test]
fn a_malformed_interpreter_name_is_rejected() {
    // The first program header turned into PT_INTERP: its bytes (the RISC-V attributes)
    // do not end with the NUL a PT_INTERP name must end with.
    let mut d = hello();
    let first = phdr_offsets(&d)[0];
    d[first..first + 4].copy_from_slice(&3u32.to_le_bytes());
    let p = file_with("badinterp", &d);
    assert_load_error(
        &p,
        &run_program(&p),
        "has a malformed ELF interpreter name (PT_INTERP): it does not end with a NUL byte",
    );
}

#[test]
fn missing_file_is_reported() {
    let p = TempFile(common::fresh_dir("missing").join("does-not-exist"));
    assert_load_error(&p, &run_program(&p), "no such file or directory");
}

#[test]
fn directory_is_reported() {
    let p = TempFile(common::fresh_dir("adir").join("sub"));
    std::fs::create_dir(&*p).expect("create directory");
    assert_load_error(&p, &run_program(&p), "is a directory");
}

#[test]
fn mutated_executables_never_panic_vmjit() {
    // Deterministic xorshift mutations of header bytes; each either fails to load (exit
    // 1, one line) or runs and ends some way, bounded by --max-insns.
    let base = hello();
    let mut s = 0x2545_f491_4f6c_dd1du64;
    let mut next = || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        s
    };
    for i in 0..40 {
        let mut d = base.clone();
        for _ in 0..1 + next() % 4 {
            let pos = (next() % 0x180) as usize;
            d[pos] = next() as u8;
        }
        let p = file_with(&format!("mut{i}"), &d);
        let run = common::vmjit(&[
            "run".as_ref(),
            "--max-insns".as_ref(),
            "200000".as_ref(),
            p.as_os_str(),
        ]);
        let err = run.stderr_text();
        assert!(
            !err.contains("panicked"),
            "mutation {i} panicked vmjit: {err}"
        );
        assert!(
            run.code >= 0 && run.code < 256,
            "mutation {i}: status {}",
            run.code
        );
        if run.code == 1 && err.starts_with(&format!("vmjit: {}:", p.display())) {
            assert_eq!(err.lines().count(), 1, "mutation {i}: {err}");
        }
    }
}

#[test]
fn segfaulting_guest_exits_139_with_the_fault_message() {
    let run = common::run_guest(&common::vmjit_interp(), "segfault");
    assert_eq!(run.code, 139, "stderr: {}", run.stderr_text());
    let err = run.stderr_text();
    let line = err
        .lines()
        .find(|l| l.starts_with("vmjit: guest segmentation fault at 0x"))
        .unwrap_or_else(|| panic!("no fault message in {err:?}"));
    assert!(line.contains(" (pc 0x") && line.ends_with(')'), "{line}");
}

#[test]
fn illegal_instruction_exits_132_with_pc_and_bits() {
    let run = common::run_guest(&common::vmjit_interp(), "illegal");
    assert_eq!(run.code, 132, "stderr: {}", run.stderr_text());
    let err = run.stderr_text();
    assert!(
        err.lines()
            .any(|l| l.starts_with("vmjit: illegal instruction 0x") && l.contains(" at pc 0x")),
        "no illegal-instruction message in {err:?}"
    );
}
