//! [`Store`]: the public face, composing the directory store (`local`) and, for a Redis
//! location, the Redis tier (`remote`) in front of which the directory acts as a
//! read-through cache. Invariant: `load` never fails and never panics on store
//! contents; `save` fails only for local I/O.

use std::path::Path;
use std::time::Instant;

use crate::local::{self, DirStore};
use crate::remote::{self, Remote};
use crate::{
    Fingerprint, LoadReport, Location, Profile, ProfileEntry, ProgramId, PruneReport, SaveReport,
    StoreConfig, StoreError, StoreStats, Translation, format, fsx, key,
};

/// What [`Store::load`] found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LoadResult {
    /// Valid translations for (program, fingerprint), unique by key, sorted by key.
    pub translations: Vec<Translation>,
    /// The program's profile if one with at least one valid entry is stored (entries
    /// unique by key, hottest first).
    pub profile: Option<Profile>,
    /// Counters and warnings.
    pub report: LoadReport,
}

#[derive(Debug)]
struct Inner {
    local: DirStore,
    remote: Option<Remote>,
    max_bytes: u64,
}

/// A persistent store of translated code. `Send + Sync`: one value may serve every
/// thread; separate values (in one or many processes) on one directory are safe too.
#[derive(Debug)]
pub struct Store {
    inner: Option<Inner>,
}

const _: () = {
    const fn send_sync<T: Send + Sync>() {}
    send_sync::<Store>();
};

fn elapsed_ns(start: Instant) -> u64 {
    u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

impl Store {
    /// Opens (creating if needed) the store. For a directory or Redis location:
    /// creates the directory and its `v1` layout directory with mode 0700; refuses a
    /// directory another user owns or group or others can write
    /// ([`StoreError::ForeignOwner`], [`StoreError::WritableByOthers`]); resolves the
    /// key ([`crate::KeySource`]; a Redis location without a shared key is
    /// [`StoreError::SharedKeyRequired`]). Does not contact Redis (the first load or
    /// save does). [`Location::None`] gives a disabled store.
    pub fn open(config: StoreConfig) -> Result<Store, StoreError> {
        let (dir, url) = match &config.location {
            Location::None => return Ok(Store::disabled()),
            Location::Dir(d) => (d, None),
            Location::Redis { url, local } => (local, Some(url.as_str())),
        };
        let remote = url.map(Remote::new).transpose()?;
        let shared = remote.is_some();
        // A shared key never depends on the directory: refuse a bad one before creating
        // anything.
        let key = if shared {
            let key = key::resolve(&config.key, dir, true)?;
            fsx::ensure_private_dir(dir)?;
            key
        } else {
            fsx::ensure_private_dir(dir)?;
            key::resolve(&config.key, dir, false)?
        };
        let local = DirStore::open(dir, key, config.max_bytes)?;
        Ok(Store {
            inner: Some(Inner {
                local,
                remote,
                max_bytes: config.max_bytes,
            }),
        })
    }

    /// [`Store::open`], or on failure a disabled store and the error as one warning
    /// line: for an engine that must run on whether or not its store works.
    pub fn open_or_disabled(config: StoreConfig) -> (Store, Option<String>) {
        match Store::open(config) {
            Ok(s) => (s, None),
            Err(e) => (Store::disabled(), Some(format!("code store disabled: {e}"))),
        }
    }

    /// A store that keeps nothing.
    pub fn disabled() -> Store {
        Store { inner: None }
    }

    /// Whether the store keeps anything.
    pub fn is_enabled(&self) -> bool {
        self.inner.is_some()
    }

    /// The local directory, if enabled.
    pub fn dir(&self) -> Option<&Path> {
        self.inner.as_ref().map(|i| i.local.root())
    }

    /// Loads what is stored for (program, fingerprint): its valid translations and the
    /// program's profile (whatever fingerprint wrote it). Never fails: bad records are
    /// skipped and counted, bad files discarded and counted, unreadable files counted
    /// with a warning. Marks the files it read as used now (for LRU).
    ///
    /// With Redis: a local pack with no valid record (or none at all) and a missing
    /// local profile are fetched from Redis, checked the same way, and written through
    /// to the local directory, so the next load on this machine is local.
    pub fn load(&self, program: &ProgramId, fingerprint: &Fingerprint) -> LoadResult {
        let start = Instant::now();
        let mut report = LoadReport::default();
        let Some(inner) = &self.inner else {
            return LoadResult {
                report,
                ..Default::default()
            };
        };
        let local = &inner.local;
        let mut pack = local.load_pack(program, fingerprint, &mut report);
        let mut profile = local.load_profile(program, &mut report);

        if let Some(remote) = &inner.remote {
            let cap = local.file_cap();
            let mut fetched_pack = Vec::new();
            let mut fetched_profile = Vec::new();
            if pack.as_ref().is_none_or(Vec::is_empty)
                && let Some(bytes) = remote.get(
                    &remote::pack_key(program, fingerprint),
                    cap,
                    &mut report.remote,
                    &mut report.warnings,
                )
            {
                report.bytes_read += bytes.len() as u64;
                if bytes.len() as u64 > cap {
                    report.rejected.corrupt += 1;
                } else {
                    fetched_pack = format::decode_pack(
                        &bytes,
                        local.key(),
                        program,
                        fingerprint,
                        &mut report.rejected,
                    );
                }
                pack.get_or_insert_default();
            }
            if profile.as_ref().is_none_or(Vec::is_empty)
                && let Some(bytes) = remote.get(
                    &remote::profile_key(program),
                    cap,
                    &mut report.remote,
                    &mut report.warnings,
                )
            {
                report.bytes_read += bytes.len() as u64;
                if bytes.len() as u64 > cap {
                    report.rejected.corrupt += 1;
                } else {
                    fetched_profile =
                        format::decode_profile(&bytes, local.key(), program, &mut report.rejected);
                }
                profile.get_or_insert_default();
            }
            if !fetched_pack.is_empty() || !fetched_profile.is_empty() {
                let mut sr = SaveReport::default();
                if let Err(e) = local.save(
                    program,
                    fingerprint,
                    &fetched_pack,
                    &fetched_profile,
                    &mut sr,
                ) {
                    report.warnings.push(format!(
                        "code store: cannot write Redis data through to {}: {e}",
                        local.root().display()
                    ));
                }
                if let Err(e) = local.prune(inner.max_bytes, false) {
                    report
                        .warnings
                        .push(format!("code store: prune failed: {e}"));
                }
                if !fetched_pack.is_empty() {
                    pack = Some(fetched_pack);
                }
                if !fetched_profile.is_empty() {
                    profile = Some(fetched_profile);
                }
            }
        }

        report.pack_found = pack.is_some();
        report.profile_found = profile.is_some();
        let translations = local::normalise_translations(pack.unwrap_or_default());
        let profile = profile
            .filter(|entries| !entries.is_empty())
            .map(|entries| Profile {
                entries: local::normalise_profile(entries),
            });
        report.translations_loaded = translations.len() as u64;
        report.profile_entries_loaded = profile.as_ref().map_or(0, |p| p.entries.len() as u64);
        report.elapsed_ns = elapsed_ns(start);
        LoadResult {
            translations,
            profile,
            report,
        }
    }

    /// Merges `translations` and `profile` into what is stored for (program,
    /// fingerprint), then enforces `max_bytes`.
    ///
    /// - **Merge**: translations are united by key, a new record replacing a stored one
    ///   with the same key; translations whose code exceeds [`crate::MAX_CODE_BYTES`]
    ///   are dropped, and if the pack would exceed `max_bytes` the coldest (lowest
    ///   `heat`) are dropped until it fits (both counted). Profile heats merge by
    ///   **maximum** per key, so the engine may pass its cumulative heats every time
    ///   without double counting; the hottest [`crate::MAX_PROFILE_ENTRIES`] are kept.
    ///   Records of the stored file that fail their checks are dropped (counted).
    /// - **Atomicity**: under an exclusive `flock` of the program's lock file, each
    ///   changed file is written to a temporary file in the same directory, fsynced,
    ///   renamed over the old one, and the directory fsynced. A crash or `kill -9` at any
    ///   point leaves the old or the new file, and concurrent savers of one program
    ///   (threads or processes) serialise, each merging with its predecessor's file.
    /// - **Pruning**: least recently used packs and profiles (oldest modification time,
    ///   which loads refresh) are removed until the directory holds at most `max_bytes`;
    ///   programs whose lock is busy are skipped.
    /// - **Redis**: each file this call rewrote is then `SET` (with a 30-day expiry) —
    ///   last writer wins for the remote copy; the local file it sends was merged with
    ///   the local store, which the last load filled from Redis.
    ///
    /// **Cost**: a file that did not change is not rewritten (nor sent), so a save that
    /// adds nothing costs reading, MAC-checking and merging the stored pack and profile
    /// plus a scan (one `stat` per file in the store). A save that changes something adds
    /// encoding and MAC-ing the whole pack (one HMAC-SHA256 pass over its bytes), one
    /// write, two fsyncs per changed file, and for Redis one SET of the file. Calling it
    /// every few seconds is fine for packs of a few MiB.
    pub fn save(
        &self,
        program: &ProgramId,
        fingerprint: &Fingerprint,
        translations: &[Translation],
        profile: &Profile,
    ) -> Result<SaveReport, StoreError> {
        let start = Instant::now();
        let mut report = SaveReport::default();
        let Some(inner) = &self.inner else {
            return Ok(report);
        };
        let entries: &[ProfileEntry] = &profile.entries;
        let written = inner
            .local
            .save(program, fingerprint, translations, entries, &mut report)?;
        if let Some(remote) = &inner.remote {
            if let Some(bytes) = &written.pack {
                remote.set(
                    &remote::pack_key(program, fingerprint),
                    bytes,
                    &mut report.remote,
                    &mut report.warnings,
                );
            }
            if let Some(bytes) = &written.profile {
                remote.set(
                    &remote::profile_key(program),
                    bytes,
                    &mut report.remote,
                    &mut report.warnings,
                );
            }
        }
        match inner.local.prune(inner.max_bytes, false) {
            Ok(p) => report.pruned = p,
            Err(e) => report
                .warnings
                .push(format!("code store: prune failed: {e}")),
        }
        report.elapsed_ns = elapsed_ns(start);
        Ok(report)
    }

    /// What the local directory holds (Redis is not inspected). Empty when disabled.
    pub fn stats(&self) -> Result<StoreStats, StoreError> {
        match &self.inner {
            Some(inner) => inner.local.stats(),
            None => Ok(StoreStats::default()),
        }
    }

    /// Removes every program's files from the local directory, waiting for writers in
    /// progress. The key file stays; Redis is not touched (its values expire).
    pub fn clear(&self) -> Result<PruneReport, StoreError> {
        match &self.inner {
            Some(inner) => inner.local.clear(),
            None => Ok(PruneReport::default()),
        }
    }

    /// Removes stray temporary files, then least recently used packs and profiles until
    /// the local directory holds at most `max_bytes`, waiting for writers in progress.
    pub fn prune(&self, max_bytes: u64) -> Result<PruneReport, StoreError> {
        match &self.inner {
            Some(inner) => inner.local.prune(max_bytes, true),
            None => Ok(PruneReport::default()),
        }
    }
}
