//! The MAC key: deriving it from key material, and finding the material (environment,
//! key file, or a freshly generated key file). Invariant: the key never appears in a
//! `Debug` output, an error or a warning.

use std::ffi::OsString;
use std::fs;
use std::io::{Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

use sha2::{Digest, Sha256};

use crate::{KEY_ENV, KeySource, StoreError, fsx, ids};

/// Shortest key material accepted, in bytes (after hex decoding).
pub const MIN_KEY_BYTES: usize = 16;
/// Largest key file read.
const MAX_KEY_FILE: u64 = 4096;
const KEY_DOMAIN: &[u8] = b"vmjit-codestore key v1\0";
/// Name of the generated key file in the store directory.
pub(crate) const KEY_FILE: &str = "key";

/// The 32-byte HMAC key.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct StoreKey([u8; 32]);

impl std::fmt::Debug for StoreKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StoreKey(..)")
    }
}

impl StoreKey {
    /// Derives the key from material as [`KeySource`] documents; `what` names the source
    /// in the error.
    pub(crate) fn derive(material: &[u8], what: &str) -> Result<StoreKey, StoreError> {
        let trimmed = material.trim_ascii();
        let decoded = (trimmed.len() >= 2 * MIN_KEY_BYTES)
            .then(|| ids::from_hex(trimmed))
            .flatten();
        let bytes = decoded.as_deref().unwrap_or(material);
        if bytes.len() < MIN_KEY_BYTES {
            return Err(StoreError::KeyTooShort {
                source_name: what.to_owned(),
                min: MIN_KEY_BYTES,
            });
        }
        let mut h = Sha256::new();
        h.update(KEY_DOMAIN);
        h.update(bytes);
        Ok(StoreKey(h.finalize().into()))
    }

    pub(crate) fn bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

/// Resolves `source` for a store at `dir`; `shared` is true for a Redis location.
pub(crate) fn resolve(
    source: &KeySource,
    dir: &Path,
    shared: bool,
) -> Result<StoreKey, StoreError> {
    resolve_with_env(source, dir, shared, std::env::var_os(KEY_ENV))
}

/// [`resolve`] with the environment variable's value passed in (tests cannot set
/// variables safely while other tests run).
pub(crate) fn resolve_with_env(
    source: &KeySource,
    dir: &Path,
    shared: bool,
    env: Option<OsString>,
) -> Result<StoreKey, StoreError> {
    match source {
        KeySource::Secret(material) => StoreKey::derive(material, "the configured secret"),
        KeySource::File(path) => read_key_file(path, false),
        KeySource::Env => match env.filter(|v| !v.is_empty()) {
            Some(v) => StoreKey::derive(v.as_bytes(), KEY_ENV),
            None if shared => Err(StoreError::SharedKeyRequired),
            None => dir_key_file(dir),
        },
        KeySource::DirKeyFile if shared => Err(StoreError::SharedKeyRequired),
        KeySource::DirKeyFile => dir_key_file(dir),
    }
}

/// Reads a key file, refusing one that group or others may access (and, for the
/// store's own file, one another user owns).
fn read_key_file(path: &Path, must_own: bool) -> Result<StoreKey, StoreError> {
    let io = |e| StoreError::io("read key file", path, e);
    let file = fs::File::open(path).map_err(io)?;
    let meta = file.metadata().map_err(io)?;
    let mode = meta.permissions().mode();
    if mode & 0o077 != 0 {
        return Err(StoreError::KeyFileMode {
            path: path.to_owned(),
            mode: mode & 0o7777,
        });
    }
    if must_own && meta.uid() != fsx::uid() {
        return Err(StoreError::ForeignOwner {
            path: path.to_owned(),
            owner: meta.uid(),
        });
    }
    let mut material = Vec::new();
    file.take(MAX_KEY_FILE)
        .read_to_end(&mut material)
        .map_err(io)?;
    StoreKey::derive(&material, &path.display().to_string())
}

/// The store's own key file, generated if absent. Generation is race-free: the file is
/// written whole under a temporary name and hard-linked into place, which fails if
/// another process got there first; then everyone reads the winner's key.
fn dir_key_file(dir: &Path) -> Result<StoreKey, StoreError> {
    let path = dir.join(KEY_FILE);
    match fs::symlink_metadata(&path) {
        Ok(_) => return read_key_file(&path, true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(StoreError::io("stat key file", &path, e)),
    }
    let mut random = [0u8; 32];
    fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut random))
        .map_err(|e| StoreError::io("read", Path::new("/dev/urandom"), e))?;
    let tmp = fsx::temp_path(dir, KEY_FILE);
    let write = || -> std::io::Result<()> {
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(format!("{}\n", ids::to_hex(&random)).as_bytes())?;
        f.sync_all()?;
        match fs::hard_link(&tmp, &path) {
            Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => Err(e),
            _ => fsx::sync_dir(dir),
        }
    };
    let written = write();
    let _ = fs::remove_file(&tmp);
    written.map_err(|e| StoreError::io("create key file", &path, e))?;
    read_key_file(&path, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_and_passphrases_derive_and_short_material_is_refused() {
        let hex = "00112233445566778899aabbccddeeff";
        let raw = [
            0x00u8, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd,
            0xee, 0xff,
        ];
        assert_eq!(
            StoreKey::derive(hex.as_bytes(), "t").unwrap(),
            StoreKey::derive(&raw, "t").unwrap()
        );
        assert_eq!(
            StoreKey::derive(format!("{hex}\n").as_bytes(), "t").unwrap(),
            StoreKey::derive(hex.to_uppercase().as_bytes(), "t").unwrap()
        );
        assert!(StoreKey::derive(b"a passphrase of 16+", "t").is_ok());
        assert!(matches!(
            StoreKey::derive(b"short", "t"),
            Err(StoreError::KeyTooShort { .. })
        ));
        // 16 hex digits are 16 raw characters, not 8 bytes: accepted as a passphrase.
        assert!(StoreKey::derive(b"0011223344556677", "t").is_ok());
    }

    #[test]
    fn redis_needs_a_shared_key() {
        let dir = tempfile::tempdir().unwrap();
        let r = resolve_with_env(&KeySource::Env, dir.path(), true, None);
        assert!(matches!(r, Err(StoreError::SharedKeyRequired)));
        let r = resolve_with_env(&KeySource::DirKeyFile, dir.path(), true, None);
        assert!(matches!(r, Err(StoreError::SharedKeyRequired)));
        let env = Some(OsString::from("a shared fleet passphrase"));
        assert!(resolve_with_env(&KeySource::Env, dir.path(), true, env).is_ok());
        assert!(!dir.path().join(KEY_FILE).exists());
    }

    #[test]
    fn env_wins_over_the_key_file_and_empty_env_is_unset() {
        let dir = tempfile::tempdir().unwrap();
        let from_env = resolve_with_env(
            &KeySource::Env,
            dir.path(),
            false,
            Some("x".repeat(20).into()),
        )
        .unwrap();
        assert!(!dir.path().join(KEY_FILE).exists());
        let from_file =
            resolve_with_env(&KeySource::Env, dir.path(), false, Some(OsString::new())).unwrap();
        assert!(dir.path().join(KEY_FILE).exists());
        assert_ne!(from_env, from_file);
    }

    #[test]
    fn generated_key_file_is_0600_stable_and_usable_as_env() {
        let dir = tempfile::tempdir().unwrap();
        let a = resolve_with_env(&KeySource::DirKeyFile, dir.path(), false, None).unwrap();
        let b = resolve_with_env(&KeySource::DirKeyFile, dir.path(), false, None).unwrap();
        assert_eq!(a, b);
        let path = dir.path().join(KEY_FILE);
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let text = fs::read(&path).unwrap();
        assert_eq!(text.len(), 65);
        let env = resolve_with_env(
            &KeySource::Env,
            dir.path(),
            true,
            Some(OsString::from_vec(text)),
        )
        .unwrap();
        assert_eq!(env, a);
    }

    #[test]
    fn key_file_readable_by_others_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("fleet-key");
        fs::write(&path, "k".repeat(32)).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        let r = resolve_with_env(&KeySource::File(path.clone()), dir.path(), true, None);
        assert!(
            matches!(r, Err(StoreError::KeyFileMode { mode: 0o644, .. })),
            "{r:?}"
        );
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
        assert!(resolve_with_env(&KeySource::File(path), dir.path(), true, None).is_ok());
    }

    use std::os::unix::ffi::OsStringExt;
}
