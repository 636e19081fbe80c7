//! The directory store: layout, load, merge-on-save, LRU pruning, stats and clear.
//!
//! ```text
//! <root>/key                              generated MAC key (KeySource::DirKeyFile)
//! <root>/v1/<program-hex>/lock            flock target; never holds data
//! <root>/v1/<program-hex>/profile         the program's profile (any fingerprint)
//! <root>/v1/<program-hex>/<fp-hex>.pack   translations for one fingerprint
//! <root>/v1/<program-hex>/.<name>.<pid>.<n>.tmp   a write in progress (or a stray)
//! ```
//!
//! Invariants:
//! - **Writers of one program serialise on its lock**, and a writer merges with the file
//!   it finds under the lock, so concurrent saves of one program lose no record (the
//!   union survives) and never interleave bytes; files are replaced by rename, so a
//!   reader, which takes no lock, sees an old or a new file whole, and so does anyone
//!   after a crash at any point.
//! - **Only a lock holder deletes in a program directory** (temporaries, files, the lock
//!   file itself when the directory goes); at most one program lock is held at a time,
//!   so lockers cannot deadlock; the pruning done inside `save` only try-locks.
//! - **"Last used" is a file's modification time**: a save writes a new file, a load
//!   sets it to now. Pruning removes packs and profiles oldest first — so a program's
//!   packs for fingerprints no longer in use go before its current one — and removes a
//!   program directory once nothing is left in it.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use crate::format::{self, HEADER_LEN, MAX_CODE_BYTES};
use crate::fsx::{self, ReadOutcome};
use crate::key::StoreKey;
use crate::{
    Fingerprint, LoadReport, PackStats, ProfileEntry, ProgramId, ProgramStats, PruneReport,
    RejectCounts, SaveReport, StoreError, StoreStats, Translation,
};

/// Name of the layout directory under the store root.
pub(crate) const LAYOUT_DIR: &str = "v1";
const PROFILE_FILE: &str = "profile";
const PACK_SUFFIX: &str = ".pack";
/// Most profile entries kept per program (the hottest).
pub const MAX_PROFILE_ENTRIES: usize = 65_536;
/// No file is read whole if larger than this (nor written larger).
const MAX_FILE_CAP: u64 = 4 << 30;
const MIN_FILE_CAP: u64 = 1 << 20;
/// Stray temporary files at the store root (a killed key-file writer) older than this go.
const ROOT_STRAY_AGE: std::time::Duration = std::time::Duration::from_secs(600);

pub(crate) fn pack_file_name(fp: &Fingerprint) -> String {
    format!("{}{PACK_SUFFIX}", fp.to_hex())
}

/// The bytes a save wrote, for the Redis tier to forward.
#[derive(Default)]
pub(crate) struct Written {
    pub(crate) pack: Option<Vec<u8>>,
    pub(crate) profile: Option<Vec<u8>>,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum FileKind {
    Pack(Fingerprint),
    Profile,
    Temp,
    Lock,
    Other,
}

#[derive(Debug)]
struct FileScan {
    path: PathBuf,
    kind: FileKind,
    bytes: u64,
    mtime: SystemTime,
}

#[derive(Debug)]
struct ProgramScan {
    program: ProgramId,
    dir: PathBuf,
    files: Vec<FileScan>,
}

fn classify(name: &str) -> FileKind {
    if name == fsx::LOCK_FILE {
        FileKind::Lock
    } else if name == PROFILE_FILE {
        FileKind::Profile
    } else if fsx::is_temp_name(name) {
        FileKind::Temp
    } else if let Some(fp) = name
        .strip_suffix(PACK_SUFFIX)
        .and_then(Fingerprint::from_hex)
    {
        FileKind::Pack(fp)
    } else {
        FileKind::Other
    }
}

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> StoreError + 'a {
    move |e| StoreError::io(op, path, e)
}

/// Removes `path`; absence is success (someone else removed it).
fn remove_if_present(path: &Path) -> io::Result<bool> {
    match fs::remove_file(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

/// The directory store (see the module docs).
#[derive(Debug)]
pub(crate) struct DirStore {
    root: PathBuf,
    layout: PathBuf,
    key: StoreKey,
    max_bytes: u64,
}

impl DirStore {
    /// Creates `<root>/v1` (mode 0700) and checks it; `root` was checked by the caller.
    pub(crate) fn open(root: &Path, key: StoreKey, max_bytes: u64) -> Result<Self, StoreError> {
        let layout = root.join(LAYOUT_DIR);
        fsx::ensure_private_dir(&layout)?;
        Ok(DirStore {
            root: root.to_owned(),
            layout,
            key,
            max_bytes,
        })
    }

    pub(crate) fn root(&self) -> &Path {
        &self.root
    }

    pub(crate) fn key(&self) -> &StoreKey {
        &self.key
    }

    pub(crate) fn program_dir(&self, p: &ProgramId) -> PathBuf {
        self.layout.join(p.to_hex())
    }

    /// Largest file read or written.
    pub(crate) fn file_cap(&self) -> u64 {
        self.max_bytes.clamp(MIN_FILE_CAP, MAX_FILE_CAP)
    }

    /// Reads a file for `load`: `None` if absent (or unreadable: counted with a
    /// warning); `Some(None)` if present but refused (counted).
    fn read_for_load(&self, path: &Path, report: &mut LoadReport) -> Option<Option<Vec<u8>>> {
        match fsx::read_bounded(path, self.file_cap()) {
            Ok(ReadOutcome::Bytes(b)) => {
                report.bytes_read += b.len() as u64;
                // Best effort: a failed touch only makes the file look older to pruning.
                let _ = fsx::touch(path);
                Some(Some(b))
            }
            Ok(ReadOutcome::Missing) => None,
            Ok(ReadOutcome::Refused) => {
                report.rejected.corrupt += 1;
                Some(None)
            }
            Err(e) => {
                report.io_errors += 1;
                report
                    .warnings
                    .push(format!("code store: cannot read {}: {e}", path.display()));
                None
            }
        }
    }

    /// The pack for (program, fingerprint): `None` if there is no file.
    pub(crate) fn load_pack(
        &self,
        p: &ProgramId,
        fp: &Fingerprint,
        report: &mut LoadReport,
    ) -> Option<Vec<Translation>> {
        let path = self.program_dir(p).join(pack_file_name(fp));
        Some(match self.read_for_load(&path, report)? {
            Some(bytes) => format::decode_pack(&bytes, &self.key, p, fp, &mut report.rejected),
            None => Vec::new(),
        })
    }

    /// The program's profile: `None` if there is no file.
    pub(crate) fn load_profile(
        &self,
        p: &ProgramId,
        report: &mut LoadReport,
    ) -> Option<Vec<ProfileEntry>> {
        let path = self.program_dir(p).join(PROFILE_FILE);
        Some(match self.read_for_load(&path, report)? {
            Some(bytes) => format::decode_profile(&bytes, &self.key, p, &mut report.rejected),
            None => Vec::new(),
        })
    }

    /// Reads a file for merging under the lock: `Ok(None)` if absent, `Ok(Some(None))`
    /// if refused (counted).
    fn read_for_merge(
        &self,
        path: &Path,
        rejects: &mut RejectCounts,
    ) -> Result<Option<Option<Vec<u8>>>, StoreError> {
        match fsx::read_bounded(path, self.file_cap()).map_err(io_err("read", path))? {
            ReadOutcome::Bytes(b) => Ok(Some(Some(b))),
            ReadOutcome::Missing => Ok(None),
            ReadOutcome::Refused => {
                rejects.corrupt += 1;
                Ok(Some(None))
            }
        }
    }

    /// Merges `translations` and `profile` into the stored files of (program,
    /// fingerprint) under the program lock; see [`crate::Store::save`]. Does not prune.
    pub(crate) fn save(
        &self,
        p: &ProgramId,
        fp: &Fingerprint,
        translations: &[Translation],
        profile: &[ProfileEntry],
        report: &mut SaveReport,
    ) -> Result<Written, StoreError> {
        let dir = self.program_dir(p);
        let _lock = fsx::lock_program(&dir, true)
            .map_err(io_err("lock", &dir))?
            .ok_or_else(|| StoreError::io("lock", &dir, io::Error::other("lock unavailable")))?;
        self.remove_strays(&dir);
        let mut written = Written::default();

        // Pack: union by key, the new record wins.
        let pack_path = dir.join(pack_file_name(fp));
        let mut rejects = RejectCounts::default();
        let found = self.read_for_merge(&pack_path, &mut rejects)?;
        let pack_existed = found.is_some();
        let existing = match found {
            Some(Some(b)) => format::decode_pack(&b, &self.key, p, fp, &mut rejects),
            _ => Vec::new(),
        };
        let mut merged: BTreeMap<u64, &Translation> = existing.iter().map(|t| (t.key, t)).collect();
        for t in translations {
            if t.code.len() > MAX_CODE_BYTES {
                report.translations_dropped += 1;
                continue;
            }
            match merged.insert(t.key, t) {
                Some(old) if old == t => {}
                _ => report.translations_changed += 1,
            }
        }
        let pack_dirty = report.translations_changed > 0 || rejects.total() > 0;
        let mut kept: Vec<&Translation> = merged.into_values().collect();
        if pack_dirty && (pack_existed || !kept.is_empty()) {
            report.translations_dropped += self.trim_to_budget(&mut kept);
            let bytes = format::encode_pack(&self.key, p, fp, kept.iter().copied());
            fsx::write_atomic(&dir, &pack_file_name(fp), &bytes)
                .map_err(io_err("write", &pack_path))?;
            report.pack_written = true;
            report.bytes_written += bytes.len() as u64;
            written.pack = Some(bytes);
        }
        report.translations_stored = kept.len() as u64;
        report.rejected_existing.add(&rejects);

        // Profile: maximum heat per key, the hottest MAX_PROFILE_ENTRIES kept.
        let profile_path = dir.join(PROFILE_FILE);
        let mut rejects = RejectCounts::default();
        let found = self.read_for_merge(&profile_path, &mut rejects)?;
        let profile_existed = found.is_some();
        let existing = match found {
            Some(Some(b)) => format::decode_profile(&b, &self.key, p, &mut rejects),
            _ => Vec::new(),
        };
        let mut heats: HashMap<u64, u64> = HashMap::with_capacity(existing.len() + profile.len());
        for e in &existing {
            let h = heats.entry(e.key).or_insert(0);
            *h = (*h).max(e.heat);
        }
        let mut profile_dirty = rejects.total() > 0;
        for e in profile {
            match heats.get_mut(&e.key) {
                Some(h) if *h >= e.heat => {}
                Some(h) => {
                    *h = e.heat;
                    profile_dirty = true;
                }
                None => {
                    heats.insert(e.key, e.heat);
                    profile_dirty = true;
                }
            }
        }
        let entries = hottest(heats);
        if profile_dirty && (profile_existed || !entries.is_empty()) {
            let bytes = format::encode_profile(&self.key, p, &entries);
            fsx::write_atomic(&dir, PROFILE_FILE, &bytes)
                .map_err(io_err("write", &profile_path))?;
            report.profile_written = true;
            report.bytes_written += bytes.len() as u64;
            written.profile = Some(bytes);
        }
        report.profile_entries_stored = entries.len() as u64;
        report.rejected_existing.add(&rejects);
        Ok(written)
    }

    /// Drops the coldest translations until the pack fits the budget; returns how many.
    fn trim_to_budget(&self, kept: &mut Vec<&Translation>) -> u64 {
        let budget = self.max_bytes.min(self.file_cap());
        let size = |ts: &[&Translation]| -> u64 {
            HEADER_LEN as u64
                + ts.iter()
                    .map(|t| format::translation_record_len(t) as u64)
                    .sum::<u64>()
        };
        if size(kept) <= budget {
            return 0;
        }
        let before = kept.len();
        kept.sort_by(|a, b| b.heat.cmp(&a.heat).then(a.key.cmp(&b.key)));
        let mut used = HEADER_LEN as u64;
        kept.retain(|t| {
            let len = format::translation_record_len(t) as u64;
            let fits = used + len <= budget;
            if fits {
                used += len;
            }
            fits
        });
        kept.sort_by_key(|t| t.key);
        (before - kept.len()) as u64
    }

    /// Removes temporary files in a program directory; the caller holds its lock, so no
    /// write is in progress there.
    fn remove_strays(&self, dir: &Path) -> (u64, u64) {
        let (mut files, mut bytes) = (0, 0);
        let Ok(entries) = fs::read_dir(dir) else {
            return (0, 0);
        };
        for entry in entries.flatten() {
            if entry.file_name().to_str().is_some_and(fsx::is_temp_name) {
                let len = entry.metadata().map(|m| m.len()).unwrap_or(0);
                if matches!(remove_if_present(&entry.path()), Ok(true)) {
                    files += 1;
                    bytes += len;
                }
            }
        }
        (files, bytes)
    }

    fn scan(&self) -> Result<Vec<ProgramScan>, StoreError> {
        let mut out = Vec::new();
        let entries = match fs::read_dir(&self.layout) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(StoreError::io("list", &self.layout, e)),
        };
        for entry in entries {
            let entry = entry.map_err(io_err("list", &self.layout))?;
            let Some(program) = entry.file_name().to_str().and_then(ProgramId::from_hex) else {
                continue; // not ours
            };
            if !entry.file_type().is_ok_and(|t| t.is_dir()) {
                continue;
            }
            let dir = entry.path();
            let files = match fs::read_dir(&dir) {
                Ok(files) => files,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue, // just pruned
                Err(e) => return Err(StoreError::io("list", &dir, e)),
            };
            let mut scan = ProgramScan {
                program,
                dir: dir.clone(),
                files: Vec::new(),
            };
            for f in files.flatten() {
                let Ok(meta) = f.metadata() else { continue };
                if meta.is_dir() {
                    continue;
                }
                let name = f.file_name();
                let kind = name.to_str().map_or(FileKind::Other, classify);
                let mtime = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
                scan.files.push(FileScan {
                    path: f.path(),
                    kind,
                    bytes: meta.len(),
                    mtime,
                });
            }
            out.push(scan);
        }
        Ok(out)
    }

    /// Total bytes of the layout directory.
    pub(crate) fn total_bytes(&self) -> Result<u64, StoreError> {
        Ok(self
            .scan()?
            .iter()
            .flat_map(|s| &s.files)
            .map(|f| f.bytes)
            .sum())
    }

    /// Removes least recently used packs, profiles and unknown files until the layout
    /// directory holds at most `max_bytes`, stray temporaries first; then removes
    /// program directories left empty. With `wait` false, a program whose lock is busy
    /// is skipped (it is in use, so recent anyway).
    pub(crate) fn prune(&self, max_bytes: u64, wait: bool) -> Result<PruneReport, StoreError> {
        let mut report = PruneReport::default();
        self.remove_root_strays(&mut report);
        let scans = self.scan()?;
        let mut total: u64 = scans.iter().flat_map(|s| &s.files).map(|f| f.bytes).sum();
        let lock = |dir: &Path| fsx::lock_program(dir, wait).map_err(io_err("lock", dir));

        for s in scans
            .iter()
            .filter(|s| s.files.iter().any(|f| f.kind == FileKind::Temp))
        {
            if let Some(_lock) = lock(&s.dir)? {
                let (files, bytes) = self.remove_strays(&s.dir);
                report.files_removed += files;
                report.bytes_removed += bytes;
                total = total.saturating_sub(bytes);
            }
        }

        let mut units: Vec<(&ProgramScan, &FileScan)> = scans
            .iter()
            .flat_map(|s| s.files.iter().map(move |f| (s, f)))
            .filter(|(_, f)| {
                matches!(
                    f.kind,
                    FileKind::Pack(_) | FileKind::Profile | FileKind::Other
                )
            })
            .collect();
        units.sort_by(|a, b| {
            a.1.mtime
                .cmp(&b.1.mtime)
                .then_with(|| a.1.path.cmp(&b.1.path))
        });
        let mut touched = Vec::new();
        for (s, f) in units {
            if total <= max_bytes {
                break;
            }
            let Some(_lock) = lock(&s.dir)? else { continue };
            // Re-check under the lock: a writer may have replaced the file since the scan.
            let now = match fs::symlink_metadata(&f.path) {
                Ok(m) => m,
                Err(_) => continue,
            };
            if now.modified().ok() != Some(f.mtime) {
                continue;
            }
            if remove_if_present(&f.path).map_err(io_err("remove", &f.path))? {
                report.files_removed += 1;
                report.bytes_removed += f.bytes;
                total = total.saturating_sub(f.bytes);
            }
            touched.push(s);
        }

        for s in scans.iter() {
            let emptied = touched.iter().any(|t| std::ptr::eq(*t, s));
            let had_data = s
                .files
                .iter()
                .any(|f| !matches!(f.kind, FileKind::Lock | FileKind::Temp));
            if emptied || !had_data {
                report.programs_removed += u64::from(self.remove_if_empty(&s.dir, wait)?);
            }
        }
        report.bytes_after = total;
        Ok(report)
    }

    /// Removes a program directory holding nothing but its lock file (checked under the
    /// lock). Returns whether it went.
    fn remove_if_empty(&self, dir: &Path, wait: bool) -> Result<bool, StoreError> {
        let Some(_lock) = fsx::lock_program(dir, wait).map_err(io_err("lock", dir))? else {
            return Ok(false);
        };
        let names: Vec<_> = match fs::read_dir(dir) {
            Ok(e) => e.flatten().map(|e| e.file_name()).collect(),
            Err(_) => return Ok(false),
        };
        if names.iter().any(|n| n != fsx::LOCK_FILE) {
            return Ok(false);
        }
        // Unlink the lock file while holding it: a process waiting on the old file will
        // notice (see `fsx::lock_program`) and start over in a fresh directory.
        remove_if_present(&dir.join(fsx::LOCK_FILE)).map_err(io_err("remove", dir))?;
        Ok(fs::remove_dir(dir).is_ok())
    }

    fn remove_root_strays(&self, report: &mut PruneReport) {
        let Ok(entries) = fs::read_dir(&self.root) else {
            return;
        };
        for entry in entries.flatten() {
            if !entry.file_name().to_str().is_some_and(fsx::is_temp_name) {
                continue;
            }
            let Ok(meta) = entry.metadata() else { continue };
            let old = meta
                .modified()
                .ok()
                .and_then(|m| m.elapsed().ok())
                .is_some_and(|age| age > ROOT_STRAY_AGE);
            if old && matches!(remove_if_present(&entry.path()), Ok(true)) {
                report.files_removed += 1;
                report.bytes_removed += meta.len();
            }
        }
    }

    /// Removes every program directory (waiting for each program's writers). The key
    /// file stays.
    pub(crate) fn clear(&self) -> Result<PruneReport, StoreError> {
        let mut report = PruneReport::default();
        for s in self.scan()? {
            let Some(_lock) = fsx::lock_program(&s.dir, true).map_err(io_err("lock", &s.dir))?
            else {
                continue;
            };
            let entries = match fs::read_dir(&s.dir) {
                Ok(e) => e,
                Err(_) => continue,
            };
            for entry in entries.flatten() {
                if entry.file_name() == fsx::LOCK_FILE
                    || entry.file_type().is_ok_and(|t| t.is_dir())
                {
                    continue;
                }
                let len = entry.metadata().map(|m| m.len()).unwrap_or(0);
                if remove_if_present(&entry.path()).map_err(io_err("remove", &entry.path()))? {
                    report.files_removed += 1;
                    report.bytes_removed += len;
                }
            }
            remove_if_present(&s.dir.join(fsx::LOCK_FILE)).map_err(io_err("remove", &s.dir))?;
            if fs::remove_dir(&s.dir).is_ok() {
                report.programs_removed += 1;
            }
        }
        report.bytes_after = self.total_bytes()?;
        Ok(report)
    }

    pub(crate) fn stats(&self) -> Result<StoreStats, StoreError> {
        let mut stats = StoreStats::default();
        for s in self.scan()? {
            let mut ps = ProgramStats {
                program: s.program,
                bytes: 0,
                packs: Vec::new(),
                has_profile: false,
                last_used: SystemTime::UNIX_EPOCH,
            };
            for f in &s.files {
                ps.bytes += f.bytes;
                match f.kind {
                    FileKind::Pack(fingerprint) => {
                        let records = read_header_count(&f.path).unwrap_or(0);
                        stats.records += records;
                        ps.packs.push(PackStats {
                            fingerprint,
                            bytes: f.bytes,
                            records,
                            last_used: f.mtime,
                        });
                        ps.last_used = ps.last_used.max(f.mtime);
                    }
                    FileKind::Profile => {
                        ps.has_profile = true;
                        stats.profiles += 1;
                        ps.last_used = ps.last_used.max(f.mtime);
                    }
                    FileKind::Temp => stats.temp_files += 1,
                    FileKind::Lock | FileKind::Other => {}
                }
            }
            ps.packs.sort_by_key(|p| p.last_used);
            stats.packs += ps.packs.len() as u64;
            stats.bytes += ps.bytes;
            stats.per_program.push(ps);
        }
        stats.programs = stats.per_program.len() as u64;
        stats.per_program.sort_by_key(|p| p.last_used);
        Ok(stats)
    }
}

/// The header's record count of a pack file.
fn read_header_count(path: &Path) -> Option<u64> {
    let mut head = Vec::with_capacity(HEADER_LEN);
    fs::File::open(path)
        .ok()?
        .take(HEADER_LEN as u64)
        .read_to_end(&mut head)
        .ok()?;
    format::header_record_count(&head).map(u64::from)
}

/// The hottest [`MAX_PROFILE_ENTRIES`] entries, hottest first, ties by key.
fn hottest(heats: HashMap<u64, u64>) -> Vec<ProfileEntry> {
    let mut entries: Vec<ProfileEntry> = heats
        .into_iter()
        .map(|(key, heat)| ProfileEntry { key, heat })
        .collect();
    entries.sort_unstable_by(|a, b| b.heat.cmp(&a.heat).then(a.key.cmp(&b.key)));
    entries.truncate(MAX_PROFILE_ENTRIES);
    entries
}

/// Normalises a profile as loaded: unique keys (maximum heat), hottest first.
pub(crate) fn normalise_profile(entries: Vec<ProfileEntry>) -> Vec<ProfileEntry> {
    let mut heats: HashMap<u64, u64> = HashMap::with_capacity(entries.len());
    for e in entries {
        let h = heats.entry(e.key).or_insert(0);
        *h = (*h).max(e.heat);
    }
    hottest(heats)
}

/// Normalises translations as loaded: unique keys (the later record wins), by key.
pub(crate) fn normalise_translations(ts: Vec<Translation>) -> Vec<Translation> {
    let mut by_key: BTreeMap<u64, Translation> = BTreeMap::new();
    for t in ts {
        by_key.insert(t.key, t);
    }
    by_key.into_values().collect()
}
