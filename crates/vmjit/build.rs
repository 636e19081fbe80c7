//! Generates one golden test and one qemu differential test per guest program: every
//! `guests/expected/<name>.stdout` becomes a `case!(<name>)` line in
//! `$OUT_DIR/guest_cases.rs`, which `tests/golden.rs` and `tests/qemu_diff.rs` include.
//! With no guests at all it emits `no_guests!()`, which expands to a failing test, so
//! an empty or missing `guests/` can never pass silently.

use std::path::Path;

fn main() {
    let manifest = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| ".".into());
    let expected = Path::new(&manifest).join("../../guests/expected");
    println!("cargo:rerun-if-changed={}", expected.display());
    let mut names: Vec<String> = std::fs::read_dir(&expected)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter_map(|e| {
                    let name = e.file_name().into_string().ok()?;
                    let stem = name.strip_suffix(".stdout")?;
                    let ok = !stem.is_empty()
                        && stem.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                        && !stem.starts_with(|c: char| c.is_ascii_digit());
                    ok.then(|| stem.to_string())
                })
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    let mut out = String::new();
    if names.is_empty() {
        out.push_str("no_guests!();\n");
    }
    for n in &names {
        out.push_str(&format!("case!({n});\n"));
    }
    let out_dir = std::env::var("OUT_DIR").unwrap_or_else(|_| ".".into());
    if let Err(e) = std::fs::write(Path::new(&out_dir).join("guest_cases.rs"), out) {
        println!("cargo:warning=cannot write guest_cases.rs: {e}");
    }
}
