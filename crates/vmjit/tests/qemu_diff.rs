//! Differential test: every golden guest under `qemu-riscv64` and under vmjit, side by
//! side, must give the same stdout and exit code. Skipped (with a clear message, and
//! passing) when qemu-riscv64 is not on PATH, and dynamically linked guests when the
//! riscv64 sysroot is missing; CI installs both. Dynamic guests run under qemu with
//! `-L` the sysroot (as record.sh runs them), under vmjit with its default sysroot.

mod common;

use std::ffi::OsString;

fn qemu() -> Option<OsString> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join("qemu-riscv64"))
        .find(|p| p.is_file())
        .map(|p| p.into_os_string())
}

/// Says once per test binary that the comparison was skipped. Written straight to
/// stderr (not `eprintln!`) so the test harness's capture does not hide it.
fn skipped() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        use std::io::Write;
        let _ =
            std::io::stderr().write_all(b"qemu-riscv64 not installed: differential test skipped\n");
    });
}

#[allow(
    unused_macros,
    reason = "used once per guest; none when guests/ is empty"
)]
macro_rules! case {
    ($name:ident) => {
        #[test]
        fn $name() {
            let name = stringify!($name);
            let Some(q) = qemu() else {
                skipped();
                return;
            };
            if common::skip_without_sysroot(name) {
                return;
            }
            let mut qemu_cmd = vec![q];
            if common::is_dynamic(name) {
                qemu_cmd.extend(["-L".into(), common::SYSROOT.into()]);
            }
            let theirs = common::run_guest(&qemu_cmd, name);
            let ours = common::run_guest(&common::vmjit_interp(), name);
            let mut problems = Vec::new();
            if let Some(d) =
                common::describe_diff("stdout (qemu vs vmjit)", &theirs.stdout, &ours.stdout)
            {
                problems.push(d);
            }
            if theirs.code != ours.code {
                problems.push(format!(
                    "exit code: qemu {} vmjit {}",
                    theirs.code, ours.code
                ));
            }
            assert!(
                problems.is_empty(),
                "guest {name}:\n{}\nvmjit stderr:\n{}",
                problems.join("\n"),
                ours.stderr_text()
            );
        }
    };
}

#[allow(unused_macros, reason = "used only when guests/ is empty")]
macro_rules! no_guests {
    () => {
        #[test]
        fn guests_exist() {
            panic!("no guest programs found in guests/expected: nothing to compare with qemu");
        }
    };
}

include!(concat!(env!("OUT_DIR"), "/guest_cases.rs"));
