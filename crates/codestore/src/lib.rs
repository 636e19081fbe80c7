//! # codestore — a persistent store for translated code
//!
//! Keeps a JIT's translations across runs (warm starts) and, optionally, across a fleet
//! through Redis. Engine-agnostic: it knows nothing of any guest ISA. The engine hands
//! it opaque [`ProgramId`]s, [`Fingerprint`]s and code bytes; the store keeps them
//! safe from corruption, crashes, concurrent writers and other users.
//!
//! ```
//! use codestore::{Fingerprint, KeySource, Location, Profile, ProfileEntry, ProgramId, Store, StoreConfig, Translation, hash_bytes};
//! # let tmp = tempfile::tempdir()?;
//! let mut config = StoreConfig::new(Location::Dir(tmp.path().join("store")));
//! config.key = KeySource::DirKeyFile; // or KeySource::Env (VMJIT_STORE_KEY, else the key file)
//! let store = Store::open(config)?;
//!
//! let program = ProgramId(hash_bytes(b"the executable"));
//! let fp = Fingerprint::from_parts(&[b"translator 1.0", b"avx2", b"constants"]);
//! let t = Translation { key: 0x1000, guest_start: 0x1000, guest_end: 0x1010,
//!     guest_hash: hash_bytes(b"guest bytes"), tier: 1, compile_cost_ns: 5_000, heat: 42, code: vec![0xc3] };
//! let profile = Profile { entries: vec![ProfileEntry { key: 0x1000, heat: 42 }] };
//! store.save(&program, &fp, &[t.clone()], &profile)?;
//!
//! let loaded = store.load(&program, &fp);
//! assert_eq!(loaded.translations, vec![t]);
//! assert_eq!(loaded.profile, Some(profile));
//! assert_eq!(loaded.report.rejected.total(), 0);
//! // Another translator build sees no code, but still the profile.
//! let other = store.load(&program, &Fingerprint::from_parts(&[b"translator 2.0"]));
//! assert!(other.translations.is_empty() && other.profile.is_some());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! ## Design and invariants
//! - **Code is never returned for another fingerprint or program.** A pack holds one
//!   (program, fingerprint); every record carries an HMAC-SHA256 that binds the program
//!   and fingerprint *asked for*, the file kind and the format version, so a record
//!   copied elsewhere fails. The key comes from [`KeySource`]; a shared (Redis) store
//!   requires a shared key, an unkeyed shared store being a way in.
//! - **The store does not vouch for the guest.** [`Translation::guest_hash`] is only
//!   carried: the engine compares it with current guest memory before using the code.
//! - **Store contents never fail a run** (`format`): [`Store::load`] returns what is
//!   valid and counts the rest by reason in [`LoadReport`]; a damaged record costs only
//!   itself, a bad header only its file. Decoding never panics and never allocates more
//!   than the input holds; lengths are bounded ([`MAX_CODE_BYTES`]; files by the budget).
//! - **Crash- and race-safe files** (`fsx`, `local`): every write is temp file + fsync +
//!   rename + directory fsync, so `kill -9` at any point leaves the old or the new file;
//!   writers of one program serialise on an `flock` and merge with what they find, so
//!   concurrent saves keep the union. Stray temporaries are removed by later saves.
//! - **Private** (`fsx`): directories are created 0700 and a directory another user
//!   owns or can write is refused; the generated key file is 0600 and a key file others
//!   can access is refused.
//! - **Bounded** (`local`): after each save, least recently used packs and profiles go
//!   until the directory holds at most [`StoreConfig::max_bytes`].
//! - **Redis never hangs a run** (`remote`): 200 ms connect, 500 ms per socket
//!   operation; on failure the store goes on locally with one warning.
//!
//! The on-disk format and layout are specified in the `format` and `local` module docs
//! and in the crate's README.md.

mod config;
mod error;
mod format;
mod fsx;
mod ids;
mod key;
mod local;
mod remote;
mod report;
mod store;

pub use config::{DEFAULT_MAX_BYTES, KEY_ENV, KeySource, Location, StoreConfig, default_dir};
pub use error::StoreError;
pub use format::{MAX_BODY_BYTES, MAX_CODE_BYTES};
pub use ids::{Fingerprint, Profile, ProfileEntry, ProgramId, Translation, hash_bytes};
pub use key::MIN_KEY_BYTES;
pub use local::MAX_PROFILE_ENTRIES;
pub use remote::{CONNECT_TIMEOUT, IO_TIMEOUT, REMOTE_TTL_SECS, RETRY_AFTER};
pub use report::{
    LoadReport, PackStats, ProgramStats, PruneReport, RejectCounts, RemoteCounts, SaveReport,
    StoreStats,
};
pub use store::{LoadResult, Store};
