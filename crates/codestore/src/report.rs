//! What the store tells its caller about each operation: [`LoadReport`], [`SaveReport`],
//! [`PruneReport`], [`StoreStats`]. Reports are plain counters; the store never prints.
//! Invariant: a warning string is produced at most once per [`crate::Store`] value for
//! one cause (an unreachable Redis is reported once, not per call).

use std::time::SystemTime;

use crate::{Fingerprint, ProgramId};

/// Records or files rejected while reading, by reason. A rejected *record* is skipped
/// and the others in its file still load; a rejected *file header* discards the whole
/// file and counts once.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RejectCounts {
    /// A record whose framing checksum is right but whose HMAC is not: written with
    /// another key, tampered with, or moved from another program's or fingerprint's pack.
    pub bad_mac: u64,
    /// Damaged bytes: a record failing its checksum (each damaged stretch counts once),
    /// a header failing its checksum, an authenticated body that does not decode, a file
    /// larger than the store's budget, or something that is not a regular file.
    pub corrupt: u64,
    /// The file ends inside a record, or holds fewer records than its header says.
    pub truncated: u64,
    /// Not this store's magic, or a format version or flag this build does not know.
    pub unknown_format: u64,
    /// A valid header naming another program or fingerprint, or the wrong file kind.
    pub wrong_header: u64,
}

impl RejectCounts {
    /// Sum over all reasons.
    pub fn total(&self) -> u64 {
        self.bad_mac + self.corrupt + self.truncated + self.unknown_format + self.wrong_header
    }

    pub(crate) fn add(&mut self, other: &RejectCounts) {
        self.bad_mac += other.bad_mac;
        self.corrupt += other.corrupt;
        self.truncated += other.truncated;
        self.unknown_format += other.unknown_format;
        self.wrong_header += other.wrong_header;
    }
}

/// Requests to the Redis tier.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RemoteCounts {
    /// GETs that returned a value.
    pub hits: u64,
    /// GETs of an absent key.
    pub misses: u64,
    /// SETs that succeeded.
    pub writes: u64,
    /// Requests that failed (connect, timeout, protocol, server error).
    pub errors: u64,
    /// Requests not attempted because Redis failed recently (retried after a back-off).
    pub skipped: u64,
}

/// What one [`crate::Store::load`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LoadReport {
    /// Translations returned.
    pub translations_loaded: u64,
    /// Profile entries returned.
    pub profile_entries_loaded: u64,
    /// Whether a pack for (program, fingerprint) existed locally or remotely. `false`
    /// with zero rejections is a plain miss (e.g. another fingerprint), not an error.
    pub pack_found: bool,
    /// Whether a profile for the program existed.
    pub profile_found: bool,
    /// Rejections by reason.
    pub rejected: RejectCounts,
    /// Bytes read from files and from Redis.
    pub bytes_read: u64,
    /// Wall time of the call, in nanoseconds.
    pub elapsed_ns: u64,
    /// Files that could not be read for an I/O reason other than absence.
    pub io_errors: u64,
    /// The Redis tier's requests (all zero without Redis).
    pub remote: RemoteCounts,
    /// Human-readable warnings for the engine to print (each cause once per `Store`).
    pub warnings: Vec<String>,
}

/// What one [`crate::Store::save`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SaveReport {
    /// Translations in the pack after merging.
    pub translations_stored: u64,
    /// Translations given to `save` that were new or differed from the stored ones.
    pub translations_changed: u64,
    /// Translations not stored: code larger than [`crate::MAX_CODE_BYTES`], or the
    /// coldest ones when the pack had to shrink to fit `max_bytes`.
    pub translations_dropped: u64,
    /// Profile entries stored after merging and bounding.
    pub profile_entries_stored: u64,
    /// Whether the pack file was rewritten (skipped when nothing changed).
    pub pack_written: bool,
    /// Whether the profile file was rewritten.
    pub profile_written: bool,
    /// Bytes written to files.
    pub bytes_written: u64,
    /// Records of the previously stored files that were rejected while merging (they are
    /// dropped from the rewritten file).
    pub rejected_existing: RejectCounts,
    /// What enforcing `max_bytes` removed.
    pub pruned: PruneReport,
    /// Wall time of the call, in nanoseconds.
    pub elapsed_ns: u64,
    /// The Redis tier's requests.
    pub remote: RemoteCounts,
    /// Human-readable warnings for the engine to print (each cause once per `Store`).
    pub warnings: Vec<String>,
}

/// What a prune or clear removed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PruneReport {
    /// Files removed (packs, profiles, stray temporary and unknown files).
    pub files_removed: u64,
    /// Their bytes.
    pub bytes_removed: u64,
    /// Program directories removed because nothing was left in them.
    pub programs_removed: u64,
    /// Bytes in the store afterwards.
    pub bytes_after: u64,
}

/// One pack file in [`ProgramStats`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PackStats {
    /// Its fingerprint (from the file name).
    pub fingerprint: Fingerprint,
    /// File size.
    pub bytes: u64,
    /// Record count from its header (checksummed, not authenticated; 0 if the header is
    /// unreadable).
    pub records: u64,
    /// Last saved or loaded (the file's modification time, which the store sets).
    pub last_used: SystemTime,
}

/// One program's share of the store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProgramStats {
    /// The program.
    pub program: ProgramId,
    /// All bytes under its directory.
    pub bytes: u64,
    /// Its packs, oldest first.
    pub packs: Vec<PackStats>,
    /// Whether it has a profile file.
    pub has_profile: bool,
    /// The latest use of any of its files.
    pub last_used: SystemTime,
}

/// The whole local store, for `vmjit cache stats`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StoreStats {
    /// Program directories.
    pub programs: u64,
    /// Pack files.
    pub packs: u64,
    /// Profile files.
    pub profiles: u64,
    /// Sum of the packs' header record counts.
    pub records: u64,
    /// All bytes under the layout directory (packs, profiles, temporaries, others).
    pub bytes: u64,
    /// Stray temporary files (left by a killed writer; removed by later saves).
    pub temp_files: u64,
    /// Per program, least recently used first.
    pub per_program: Vec<ProgramStats>,
}
