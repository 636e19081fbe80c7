//! Store configuration: where the store lives ([`Location`]), how big it may grow, and
//! where its MAC key comes from ([`KeySource`]). Parsing only; nothing here touches the
//! file system except [`default_dir`] reading the environment.

use std::path::PathBuf;

use crate::StoreError;

/// Default budget of the local store: 256 MiB.
pub const DEFAULT_MAX_BYTES: u64 = 256 << 20;

/// The environment variable holding a shared MAC key (see [`KeySource::Env`]).
pub const KEY_ENV: &str = "VMJIT_STORE_KEY";

/// Where the store lives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Location {
    /// Disabled: loads return nothing, saves store nothing.
    None,
    /// A private directory on this machine.
    Dir(PathBuf),
    /// A shared Redis server (`redis://HOST:PORT[/DB]`) behind a local read-through
    /// directory store at `local`.
    Redis {
        /// The server URL, as the `redis` crate parses it (a password may be given as
        /// `redis://:PASSWORD@HOST:PORT`; warnings never print it).
        url: String,
        /// The local directory store in front of it.
        local: PathBuf,
    },
}

impl Location {
    /// Parses `none` (any case), `redis://HOST:PORT[/DB]` (local tier at
    /// [`default_dir`]), or anything else as a directory path. `rediss://` (TLS) and
    /// Unix-socket URLs are refused: the crate is built without them.
    pub fn parse(s: &str) -> Result<Location, StoreError> {
        let s = s.trim();
        if s.is_empty() {
            return Err(StoreError::InvalidLocation("empty location".into()));
        }
        if s.eq_ignore_ascii_case("none") {
            return Ok(Location::None);
        }
        if let Some(rest) = s.strip_prefix("redis://") {
            if rest.is_empty() {
                return Err(StoreError::InvalidLocation(
                    "redis:// needs HOST:PORT".into(),
                ));
            }
            return Ok(Location::Redis {
                url: s.to_owned(),
                local: default_dir()?,
            });
        }
        if s.contains("://") {
            return Err(StoreError::InvalidLocation(format!(
                "unsupported URL scheme in {:?} (only redis:// is built in)",
                crate::remote::redact(s)
            )));
        }
        Ok(Location::Dir(PathBuf::from(s)))
    }

    /// The local directory, if the store is enabled.
    pub fn local_dir(&self) -> Option<&std::path::Path> {
        match self {
            Location::None => None,
            Location::Dir(d) | Location::Redis { local: d, .. } => Some(d),
        }
    }
}

/// `$XDG_CACHE_HOME/vmjit` if that variable holds an absolute path, else
/// `$HOME/.cache/vmjit`.
pub fn default_dir() -> Result<PathBuf, StoreError> {
    let abs = |v: Option<std::ffi::OsString>| v.map(PathBuf::from).filter(|p| p.is_absolute());
    if let Some(xdg) = abs(std::env::var_os("XDG_CACHE_HOME")) {
        return Ok(xdg.join("vmjit"));
    }
    match abs(std::env::var_os("HOME")) {
        Some(home) => Ok(home.join(".cache").join("vmjit")),
        None => Err(StoreError::NoDefaultDir),
    }
}

/// Where the MAC key comes from.
///
/// Key material of any source becomes the 32-byte HMAC key as
/// `SHA-256("vmjit-codestore key v1\0" || material)`, where `material` is the
/// hex-decoded bytes if the value (ASCII whitespace trimmed) is an even number, at least
/// 32, of hex digits, and otherwise the raw bytes, which must be at least 16. So a
/// `VMJIT_STORE_KEY` of 64 hex digits is a 32-byte key, and any passphrase of 16 or more
/// characters works too (its strength is the passphrase's).
#[derive(Clone, PartialEq, Eq)]
pub enum KeySource {
    /// `VMJIT_STORE_KEY` if set and non-empty; otherwise, for a directory store only,
    /// [`KeySource::DirKeyFile`]. For a Redis location an unset variable is an error
    /// ([`StoreError::SharedKeyRequired`]): a per-machine random key would make sharing
    /// useless, and an unkeyed shared store would let anyone who can reach Redis inject
    /// code.
    Env,
    /// `<dir>/key`, created on first use with 32 random bytes from `/dev/urandom`
    /// written as 64 hex digits (so it can be copied into `VMJIT_STORE_KEY` on other
    /// machines), mode 0600. Refused if group or others have any permission on it, or
    /// another user owns it. Not allowed for a Redis location.
    DirKeyFile,
    /// An existing key file (e.g. deployed to a fleet): same content rules and the same
    /// mode check. Allowed for Redis.
    File(PathBuf),
    /// Key material given directly (embedders, tests). Allowed for Redis.
    Secret(Vec<u8>),
}

impl std::fmt::Debug for KeySource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KeySource::Env => f.write_str("Env"),
            KeySource::DirKeyFile => f.write_str("DirKeyFile"),
            KeySource::File(p) => f.debug_tuple("File").field(p).finish(),
            KeySource::Secret(_) => f.write_str("Secret(..)"),
        }
    }
}

/// Configuration of a [`crate::Store`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoreConfig {
    /// Where the store lives.
    pub location: Location,
    /// Budget of the local directory in bytes (default [`DEFAULT_MAX_BYTES`]); enforced
    /// after every save by removing least recently used files. A single pack is also
    /// capped at this size (the coldest translations are dropped to fit).
    pub max_bytes: u64,
    /// Where the MAC key comes from (default [`KeySource::Env`]).
    pub key: KeySource,
}

impl StoreConfig {
    /// A configuration for `location` with the default budget and key source.
    pub fn new(location: Location) -> Self {
        StoreConfig {
            location,
            max_bytes: DEFAULT_MAX_BYTES,
            key: KeySource::Env,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_three_forms() {
        assert_eq!(Location::parse("none").unwrap(), Location::None);
        assert_eq!(Location::parse(" NONE ").unwrap(), Location::None);
        assert_eq!(
            Location::parse("/tmp/x").unwrap(),
            Location::Dir("/tmp/x".into())
        );
        // The Redis form needs a default local directory; HOME is set wherever tests run.
        if default_dir().is_ok() {
            match Location::parse("redis://127.0.0.1:6379/2").unwrap() {
                Location::Redis { url, .. } => assert_eq!(url, "redis://127.0.0.1:6379/2"),
                other => panic!("{other:?}"),
            }
        }
        assert!(Location::parse("").is_err());
        assert!(Location::parse("redis://").is_err());
        assert!(Location::parse("rediss://h:1").is_err());
    }
}
