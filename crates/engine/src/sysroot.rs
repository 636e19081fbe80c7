//! The sysroot: the directory that holds a riscv64 system's files (the ELF interpreter,
//! shared libraries), and the first place absolute paths the guest names are looked up,
//! as qemu-user's `-L` prefix does.
//!
//! Where it comes from ([`Sysroot::choose`]): `-L DIR`, else `VMJIT_LD_PREFIX`, else
//! `QEMU_LD_PREFIX`, else [`DEFAULT_SYSROOT`] when that directory exists. `""` or `/` at
//! any of these steps means "no sysroot" and ends the search (qemu treats both so too).
//!
//! How a guest path is looked up ([`Sysroot::lookup`]): an absolute path `/p` becomes
//! `<sysroot>/p` when that exists (following symlinks, as qemu's `access(F_OK)` test
//! does); otherwise the path is used as given. Checked on every call, not cached:
//! files appear in the sysroot and disappear while a guest runs, and one `faccessat`
//! per absolute path is cheap next to the call it prepares.
//!
//! **Invariants.**
//! - Paths whose first component (after lexical folding of `.`, `..` and repeated `/`,
//!   as `procfs` classifies them) is `proc` or `dev`, and `/` itself, are never
//!   redirected: `/proc/self/...` must stay the guest's view of itself, `/dev` the
//!   host's devices, and `/` the host's root (a guest that lists or changes to `/` sees
//!   the host, not the sysroot).
//! - The lookup only chooses a host path; it grants nothing. Every file the guest opens
//!   by either path is still checked by [`crate::sandbox::check_opened`].

use std::ffi::{CString, OsString};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use crate::host;

/// The sysroot used when none is given and this directory exists: where Debian's
/// `libc6-riscv64-cross` installs the riscv64 C library and its interpreter.
pub const DEFAULT_SYSROOT: &str = "/usr/riscv64-linux-gnu";

/// Environment variables that name a sysroot, in order of precedence (after `-L`).
pub const SYSROOT_ENV: [&str; 2] = ["VMJIT_LD_PREFIX", "QEMU_LD_PREFIX"];

/// Longest host path the lookup builds (Linux's `PATH_MAX`, with its NUL).
const PATH_MAX: usize = 4096;

/// A sysroot given by the user that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum SysrootError {
    #[error("sysroot {dir} (from {source_name}) is not a directory")]
    NotADirectory { dir: PathBuf, source_name: String },
    #[error("sysroot {dir} (from {source_name}) cannot be used: {err}")]
    Unusable {
        dir: PathBuf,
        source_name: String,
        err: std::io::Error,
    },
}

/// A sysroot directory (canonical absolute path, never `/`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sysroot {
    root: PathBuf,
}

impl Sysroot {
    /// The sysroot at `dir` (made absolute and canonical); `source_name` says where the
    /// name came from, for the error message (`-L`, `VMJIT_LD_PREFIX`...). `Ok(None)`
    /// for `""` and `/`: no sysroot.
    pub fn new(dir: &Path, source_name: &str) -> Result<Option<Sysroot>, SysrootError> {
        if dir.as_os_str().is_empty() {
            return Ok(None);
        }
        let root = std::fs::canonicalize(dir).map_err(|err| SysrootError::Unusable {
            dir: dir.to_path_buf(),
            source_name: source_name.to_string(),
            err,
        })?;
        if !root.is_dir() {
            return Err(SysrootError::NotADirectory {
                dir: dir.to_path_buf(),
                source_name: source_name.to_string(),
            });
        }
        if root == Path::new("/") {
            return Ok(None);
        }
        Ok(Some(Sysroot { root }))
    }

    /// The sysroot to use: `explicit` (`-L DIR`) when given, else the first of
    /// [`SYSROOT_ENV`] that `env` has, else [`DEFAULT_SYSROOT`] when it is a directory,
    /// else none.
    pub fn choose(
        explicit: Option<&Path>,
        env: impl Fn(&str) -> Option<OsString>,
    ) -> Result<Option<Sysroot>, SysrootError> {
        if let Some(dir) = explicit {
            return Sysroot::new(dir, "-L");
        }
        for var in SYSROOT_ENV {
            if let Some(v) = env(var) {
                return Sysroot::new(Path::new(&v), var);
            }
        }
        if Path::new(DEFAULT_SYSROOT).is_dir() {
            return Sysroot::new(Path::new(DEFAULT_SYSROOT), "the default");
        }
        Ok(None)
    }

    /// [`Sysroot::choose`] with vmjit's own environment.
    pub fn from_environment(explicit: Option<&Path>) -> Result<Option<Sysroot>, SysrootError> {
        Sysroot::choose(explicit, |k| std::env::var_os(k))
    }

    /// The sysroot directory (canonical).
    pub fn path(&self) -> &Path {
        &self.root
    }

    /// The host path for the guest's absolute path `guest` when it exists under the
    /// sysroot (see the module's rules), else `None` (use `guest` as it is).
    pub fn lookup(&self, guest: &[u8]) -> Option<Vec<u8>> {
        if guest.first() != Some(&b'/') || !redirectable(guest) {
            return None;
        }
        let root = self.root.as_os_str().as_bytes();
        if root.len() + guest.len() >= PATH_MAX {
            return None;
        }
        let mut full = Vec::with_capacity(root.len() + guest.len());
        full.extend_from_slice(root);
        full.extend_from_slice(guest);
        let c = CString::new(full).ok()?;
        (host::faccessat(libc::AT_FDCWD, &c, libc::F_OK, 0) == 0).then(|| c.into_bytes())
    }

    /// Where the guest's absolute path `guest` is on the host: under the sysroot when
    /// it exists there, else the path itself.
    pub fn host_path(&self, guest: &[u8]) -> PathBuf {
        let bytes = self.lookup(guest).unwrap_or_else(|| guest.to_vec());
        PathBuf::from(std::ffi::OsStr::from_bytes(&bytes))
    }
}

/// False for the paths that are never looked up in the sysroot: `/` itself and
/// everything under `/proc` and `/dev`, judged on the lexically folded path.
fn redirectable(abs: &[u8]) -> bool {
    let mut parts: Vec<&[u8]> = Vec::new();
    for c in abs.split(|&b| b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => {
                parts.pop();
            }
            c => parts.push(c),
        }
    }
    match parts.first() {
        None => false,
        Some(&first) => first != b"proc" && first != b"dev",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A sysroot in a fresh temporary directory with `lib/libx.so` and `etc/`.
    fn temp_sysroot(tag: &str) -> (PathBuf, Sysroot) {
        let d = std::env::temp_dir().join(format!("vmjit-sysroot-{}-{tag}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(d.join("lib")).unwrap();
        std::fs::create_dir_all(d.join("proc/self")).unwrap();
        std::fs::create_dir_all(d.join("dev")).unwrap();
        std::fs::write(d.join("lib/libx.so"), b"x").unwrap();
        std::fs::write(d.join("proc/self/maps"), b"x").unwrap();
        std::fs::write(d.join("dev/null"), b"x").unwrap();
        let s = Sysroot::new(&d, "-L").unwrap().unwrap();
        (d, s)
    }

    #[test]
    fn absolute_paths_that_exist_in_the_sysroot_are_redirected() {
        let (d, s) = temp_sysroot("redirect");
        let want = [s.path().as_os_str().as_bytes(), b"/lib/libx.so"].concat();
        assert_eq!(s.lookup(b"/lib/libx.so"), Some(want.clone()));
        assert_eq!(
            s.lookup(b"//lib/./libx.so").map(|p| p.len()),
            Some(want.len() + 3)
        );
        assert_eq!(
            s.lookup(b"/lib"),
            Some([s.path().as_os_str().as_bytes(), b"/lib"].concat())
        );
        // Missing there: the path as given.
        assert_eq!(s.lookup(b"/lib/liby.so"), None);
        assert_eq!(s.host_path(b"/lib/liby.so"), PathBuf::from("/lib/liby.so"));
        // Relative paths are never redirected.
        assert_eq!(s.lookup(b"lib/libx.so"), None);
        assert_eq!(s.lookup(b""), None);
        let _ = std::fs::remove_dir_all(d);
    }

    #[test]
    fn proc_dev_and_the_root_are_never_redirected() {
        let (d, s) = temp_sysroot("exclude");
        for p in [
            &b"/proc/self/maps"[..],
            b"//proc/self/maps",
            b"/./proc/self/maps",
            b"/lib/../proc/self/maps",
            b"/../proc/self/maps",
            b"/dev/null",
            b"/",
            b"//",
            b"/.",
            b"/lib/..",
        ] {
            assert_eq!(s.lookup(p), None, "{}", String::from_utf8_lossy(p));
        }
        let _ = std::fs::remove_dir_all(d);
    }

    #[test]
    fn overlong_paths_are_used_as_given() {
        let (d, s) = temp_sysroot("long");
        let mut p = b"/lib".to_vec();
        while p.len() < PATH_MAX {
            p.extend_from_slice(b"/.");
        }
        assert_eq!(s.lookup(&p), None);
        let _ = std::fs::remove_dir_all(d);
    }

    #[test]
    fn the_option_wins_over_the_environment_and_the_environment_over_the_default() {
        let (d, s) = temp_sysroot("choose");
        let none = |_: &str| None;
        let other = std::env::temp_dir();
        let env = |k: &str| (k == "QEMU_LD_PREFIX").then(|| d.clone().into_os_string());
        assert_eq!(Sysroot::choose(Some(&d), none).unwrap(), Some(s.clone()));
        assert_eq!(Sysroot::choose(None, env).unwrap(), Some(s.clone()));
        let both = |k: &str| match k {
            "VMJIT_LD_PREFIX" => Some(d.clone().into_os_string()),
            _ => Some(other.clone().into_os_string()),
        };
        assert_eq!(Sysroot::choose(None, both).unwrap(), Some(s.clone()));
        // "" and "/" switch the sysroot off, also the default one.
        assert_eq!(Sysroot::choose(Some(Path::new("/")), none).unwrap(), None);
        let empty = |k: &str| (k == "VMJIT_LD_PREFIX").then(OsString::new);
        assert_eq!(Sysroot::choose(None, empty).unwrap(), None);
        let want_default = Path::new(DEFAULT_SYSROOT)
            .is_dir()
            .then(|| Sysroot::new(Path::new(DEFAULT_SYSROOT), "").unwrap())
            .flatten();
        assert_eq!(Sysroot::choose(None, none).unwrap(), want_default);
        let _ = std::fs::remove_dir_all(d);
    }

    #[test]
    fn a_sysroot_that_is_missing_or_a_file_is_an_error_naming_its_source() {
        let missing = Path::new("/nonexistent/vmjit-sysroot");
        let e = Sysroot::choose(Some(missing), |_| None).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("sysroot /nonexistent/vmjit-sysroot (from -L)")
        );
        let (d, _) = temp_sysroot("file");
        let file = d.join("lib/libx.so");
        let env = |k: &str| (k == "VMJIT_LD_PREFIX").then(|| file.clone().into_os_string());
        assert_eq!(
            Sysroot::choose(None, env).unwrap_err().to_string(),
            format!(
                "sysroot {} (from VMJIT_LD_PREFIX) is not a directory",
                file.display()
            )
        );
        let _ = std::fs::remove_dir_all(d);
    }
}
