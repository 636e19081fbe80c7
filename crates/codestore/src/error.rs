//! Typed errors of the store. Only opening, saving and management calls return them,
//! and only for setup and I/O failures of the local directory: damaged or foreign
//! store *contents* are never an error (they are counted in reports), and neither is an
//! unreachable Redis (a warning).

use std::path::{Path, PathBuf};

use thiserror::Error;

/// Why a store operation failed.
#[derive(Debug, Error)]
pub enum StoreError {
    /// A file-system call failed.
    #[error("{op} {}: {source}", path.display())]
    Io {
        /// What was being done.
        op: &'static str,
        /// On which path.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The store path exists but is not a directory.
    #[error("{} is not a directory", .0.display())]
    NotADirectory(PathBuf),
    /// The directory (or key file, or a symbolic link to it) belongs to another user.
    #[error("{} is owned by uid {owner}, not by this user", path.display())]
    ForeignOwner {
        /// The path.
        path: PathBuf,
        /// Its owner.
        owner: u32,
    },
    /// Group or others may write the directory.
    #[error("{} has mode {mode:o}: group or others can write it (chmod 700 it)", path.display())]
    WritableByOthers {
        /// The path.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// Group or others have permissions on a key file.
    #[error("key file {} has mode {mode:o}: group or others can access it (chmod 600 it)", path.display())]
    KeyFileMode {
        /// The path.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// Key material shorter than the minimum.
    #[error("key from {source_name} is too short: at least {min} bytes (or {} hex digits) are required", min * 2)]
    KeyTooShort {
        /// Where the material came from (never the material).
        source_name: String,
        /// The minimum length in bytes.
        min: usize,
    },
    /// A Redis location was configured without a shared key.
    #[error(
        "a Redis store needs a shared key: set VMJIT_STORE_KEY (64 hex digits, or a passphrase of 16+ characters) or configure a key file"
    )]
    SharedKeyRequired,
    /// The location string or Redis URL cannot be used.
    #[error("invalid store location: {0}")]
    InvalidLocation(String),
    /// Neither `XDG_CACHE_HOME` nor `HOME` is an absolute path.
    #[error(
        "no default store directory: neither XDG_CACHE_HOME nor HOME is set to an absolute path"
    )]
    NoDefaultDir,
}

impl StoreError {
    pub(crate) fn io(op: &'static str, path: &Path, source: std::io::Error) -> Self {
        StoreError::Io {
            op,
            path: path.to_owned(),
            source,
        }
    }
}
