//! The JIT's side of the persistent code store (`codestore`): what identifies this
//! build's code (the fingerprint), which stored translations may run (validation), warm
//! loading and precompilation, and what is written back at the end of a run.
//!
//! **Model.** At start the program's pack (its Cranelift translations for this
//! fingerprint) and profile are loaded, and the `warmup_size` hottest entries are kept
//! as *pending*. The first time the dispatcher misses in the cache for a pending pc, the
//! stored code is validated and inserted through the same `publish` path as a fresh
//! translation (tier state, heat, perf map), so hot code runs translated from its
//! first execution, and code the program maps later (shared libraries) is loaded when
//! it first runs. A stored region is used when the run asks for a region at its entry,
//! in place of compiling one. The profile's other hot pcs (the `warmup_size` hottest in all) — all
//! of them when the store has no code for this fingerprint (a new vmjit, other CPU
//! features) — are *precompiled*: at their first run they get baseline code at once
//! (or, without a baseline tier, go to the compile threads), instead of waiting for
//! the hotness thresholds; tier 1 follows as their runs add up. At the end of the run every tier-1 and tier-2 translation
//! published (with its guest-bytes hash) and the cache's hottest entries as the profile
//! are merged into the store. Baseline code is not stored: it is made in microseconds,
//! and its tier-up counters are per run.
//!
//! **Invariants.**
//! - Stored code runs only if the hash of the guest bytes now mapped executable over
//!   its whole range `[guest_start, guest_end)` equals the hash taken when it was
//!   translated: a rebuilt binary, another program at the same path, or code changed
//!   since never runs stale code. The hash is taken on the guest thread right after
//!   decoding, and only kept if every decoded instruction equals the bytes hashed.
//! - The check and the insert happen under the JIT state lock with the generation
//!   read there, like any translation's publication, so an invalidation cannot slip in
//!   between.
//! - The fingerprint covers everything that changes the bytes of translated code; the
//!   store never returns code stored under another fingerprint.
//! - Nothing the store holds can fail a run: load problems are counted and reported
//!   once.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use codestore::{Fingerprint, Profile, ProfileEntry, ProgramId, Store, Translation};
use rv64::Insn;
use serde::Serialize;

use super::worker::{Done, Tier};
use super::{CHAIN_BUDGET, JitShared, JitState, REGION_BLOCKS, REGION_INSNS};
use crate::memory::GuestMemory;

/// Most bytes of guest code one stored translation may cover (its hash is taken over
/// the whole range).
const MAX_SPAN: u64 = 64 << 10;

/// Most bytes of translated code kept in memory for the save at the end of a run.
const MAX_MADE_BYTES: usize = 64 << 20;

/// Profile entries written per run (the cache's hottest).
const PROFILE_ENTRIES: usize = 4096;

/// Where translations are stored, and for which program.
#[derive(Debug)]
pub struct StoreSettings {
    pub store: Store,
    pub program: ProgramId,
}

/// What the store did in this run (`--stats`, `--stats-json`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct StoreReport {
    /// Where it is (`none` when off).
    pub location: String,
    /// Translations and profile entries read from the store.
    pub loaded: u64,
    pub profile_entries: u64,
    /// Records the store rejected while loading (bad MAC, corrupt, truncated, unknown
    /// format, wrong header).
    pub rejected_records: u64,
    /// Loaded translations inserted after their guest bytes matched.
    pub validated: u64,
    /// Loaded translations whose guest bytes differ now (or are not mapped): dropped.
    pub stale: u64,
    /// Profile pcs sent to the compile threads at their first run.
    pub precompiled: u64,
    /// Translations written at the end of the run (new or changed ones).
    pub written: u64,
    pub load_ns: u64,
    pub validate_ns: u64,
    pub save_ns: u64,
}

/// The run's store state, shared by every guest thread of the process.
#[derive(Debug)]
pub(crate) struct Persist {
    settings: StoreSettings,
    fingerprint: Fingerprint,
    /// Stored translations not yet looked at, by pc.
    pending: Mutex<HashMap<u64, Translation>>,
    /// Profile pcs to compile at their first run (no stored code for them).
    precompile: Mutex<HashMap<u64, u64>>,
    /// Stored regions, by entry pc, used when this run asks for a region there.
    regions: Mutex<HashMap<u64, Translation>>,
    /// True while `pending` or `precompile` holds anything (read on every cache miss
    /// of a first run, without the locks).
    any_pending: AtomicBool,
    /// Translations published in this run, to be stored, and their code bytes.
    made: Mutex<HashMap<u64, Translation>>,
    made_bytes: std::sync::atomic::AtomicUsize,
    report: Mutex<StoreReport>,
    /// One warning per run.
    warned: AtomicBool,
}

/// The fingerprint of this build's code with `parts` (the JIT's configuration) added:
/// vmjit's version, the hash of the translator's sources (build.rs), the host CPU
/// features the translators use, and the engine constants compiled into code.
pub(crate) fn fingerprint(parts: &[&[u8]]) -> Fingerprint {
    let features = host_features();
    let constants = format!(
        "space={:#x} perms={} page_shift={}",
        crate::memory::GUEST_SPACE,
        crate::memory::PERMS_OFFSET,
        crate::memory::PAGE_SHIFT,
    );
    let mut all: Vec<&[u8]> = vec![
        env!("CARGO_PKG_VERSION").as_bytes(),
        env!("VMJIT_TRANSLATOR_HASH").as_bytes(),
        features.as_bytes(),
        constants.as_bytes(),
    ];
    all.extend_from_slice(parts);
    Fingerprint::from_parts(&all)
}

/// The host CPU features Cranelift's native ISA detection looks at.
fn host_features() -> String {
    #[cfg(target_arch = "x86_64")]
    {
        let mut s = String::from("x86_64");
        macro_rules! feature {
            ($($f:tt),*) => {
                $(if std::arch::is_x86_feature_detected!($f) {
                    s.push(' ');
                    s.push_str($f);
                })*
            };
        }
        feature!(
            "sse3",
            "ssse3",
            "sse4.1",
            "sse4.2",
            "popcnt",
            "avx",
            "avx2",
            "fma",
            "bmi1",
            "bmi2",
            "lzcnt",
            "avx512f",
            "avx512vl",
            "avx512dq",
            "avx512bitalg",
            "avx512vbmi"
        );
        s
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        std::env::consts::ARCH.to_string()
    }
}

/// The hash a stored translation of `blocks` carries: SHA-256 of the guest bytes of
/// their whole span, read now. `None` when the span is too large or not all executable,
/// or when a decoded instruction differs from the bytes read (the guest changed them
/// meanwhile).
pub(crate) fn span_hash(blocks: &[Vec<(u64, Insn)>], mem: &GuestMemory) -> Option<[u8; 32]> {
    let mut lo = u64::MAX;
    let mut hi = 0u64;
    for &(pc, insn) in blocks.iter().flatten() {
        lo = lo.min(pc);
        hi = hi.max(pc.checked_add(u64::from(insn.len))?);
    }
    let bytes = read_span(lo, hi, mem)?;
    for &(pc, insn) in blocks.iter().flatten() {
        let at = (pc - lo) as usize;
        let raw = insn.raw.to_le_bytes();
        let n = usize::from(insn.len);
        if bytes.get(at..at + n)? != raw.get(..n)? {
            return None;
        }
    }
    Some(codestore::hash_bytes(&bytes))
}

/// The hash of the executable guest bytes in `[start, end)` now, if all are mapped.
fn range_hash(start: u64, end: u64, mem: &GuestMemory) -> Option<[u8; 32]> {
    read_span(start, end, mem).map(|b| codestore::hash_bytes(&b))
}

/// The executable guest bytes in `[start, end)`, if that is a span a stored
/// translation may cover and all of it is executable.
fn read_span(start: u64, end: u64, mem: &GuestMemory) -> Option<Vec<u8>> {
    if start >= end || end - start > MAX_SPAN {
        return None;
    }
    let mut bytes = vec![0u8; (end - start) as usize];
    mem.read_code(start, &mut bytes).ok()?;
    Some(bytes)
}

impl Persist {
    /// Loads what the store has for the program under `fingerprint`; keeps the
    /// `warmup` hottest entries pending.
    pub(crate) fn open(settings: StoreSettings, fingerprint: Fingerprint, warmup: usize) -> Self {
        let start = Instant::now();
        let loaded = settings.store.load(&settings.program, &fingerprint);
        let r = &loaded.report;
        let rejected = r.rejected.bad_mac
            + r.rejected.corrupt
            + r.rejected.truncated
            + r.rejected.unknown_format
            + r.rejected.wrong_header;
        let mut report = StoreReport {
            location: settings
                .store
                .dir()
                .map_or_else(|| "none".to_string(), |d| d.display().to_string()),
            loaded: r.translations_loaded,
            profile_entries: r.profile_entries_loaded,
            rejected_records: rejected,
            ..StoreReport::default()
        };
        // Heat order: the profile's, else each translation's own.
        let heat: HashMap<u64, u64> = loaded
            .profile
            .as_ref()
            .map(|p| p.entries.iter().map(|e| (e.key, e.heat)).collect())
            .unwrap_or_default();
        // Tier-1 code is loaded at a block's first run; a region only when this run
        // asks for a region at its entry (loaded earlier it would displace the tier-1
        // code later regions are formed from, and the regions this run forms come from
        // its own heat).
        let (regions, mut code): (Vec<Translation>, Vec<Translation>) =
            loaded.translations.into_iter().partition(|t| t.tier == 2);
        let regions: HashMap<u64, Translation> = regions.into_iter().map(|t| (t.key, t)).collect();
        code.sort_by_key(|t| std::cmp::Reverse(heat.get(&t.key).copied().unwrap_or(t.heat)));
        code.truncate(warmup);
        let pending: HashMap<u64, Translation> = code.into_iter().map(|t| (t.key, t)).collect();
        // The rest of the `warmup` hottest profile pcs are compiled at their first run.
        let mut precompile = HashMap::new();
        if let Some(p) = &loaded.profile {
            for e in p.entries.iter().take(warmup) {
                if !pending.contains_key(&e.key) {
                    precompile.insert(e.key, e.heat);
                }
            }
        }
        report.load_ns = u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX);
        let any = !pending.is_empty() || !precompile.is_empty();
        let p = Persist {
            settings,
            fingerprint,
            pending: Mutex::new(pending),
            regions: Mutex::new(regions),
            precompile: Mutex::new(precompile),
            any_pending: AtomicBool::new(any),
            made: Mutex::new(HashMap::new()),
            made_bytes: std::sync::atomic::AtomicUsize::new(0),
            report: Mutex::new(report),
            warned: AtomicBool::new(false),
        };
        let mut warnings = loaded.report.warnings.clone();
        if rejected > 0 {
            warnings.push(format!(
                "{rejected} stored record(s) rejected (bad MAC, corrupt, truncated or unknown format)"
            ));
        }
        if let Some(w) = warnings.first() {
            p.warn(w);
        }
        p
    }

    fn warn(&self, what: &str) {
        if !self.warned.swap(true, Ordering::Relaxed) {
            // The store's own warnings name it already.
            let what = what.strip_prefix("code store: ").unwrap_or(what);
            crate::host::write_stderr(format!("vmjit: warning: code store: {what}\n").as_bytes());
        }
    }

    /// True while a first run may find stored code or a precompile request.
    pub(crate) fn any_pending(&self) -> bool {
        self.any_pending.load(Ordering::Relaxed)
    }

    fn update_pending(&self, pending: usize, precompile: usize) {
        if pending == 0 && precompile == 0 {
            self.any_pending.store(false, Ordering::Relaxed);
        }
    }

    /// The stored translation for `pc` if its guest bytes are the ones mapped now
    /// (taken out of the pending set either way).
    pub(crate) fn take_valid(&self, pc: u64, mem: &GuestMemory) -> Option<Translation> {
        let start = Instant::now();
        let (t, left) = {
            let mut p = crate::syscall::lock(&self.pending);
            (p.remove(&pc), p.len())
        };
        let pre = crate::syscall::lock(&self.precompile).len();
        self.update_pending(left, pre);
        self.validate(t?, mem, start)
    }

    /// The stored region entered at `pc`, if its guest bytes are the ones mapped now.
    pub(crate) fn take_region(&self, pc: u64, mem: &GuestMemory) -> Option<Translation> {
        let start = Instant::now();
        let t = crate::syscall::lock(&self.regions).remove(&pc)?;
        self.validate(t, mem, start)
    }

    fn validate(&self, t: Translation, mem: &GuestMemory, start: Instant) -> Option<Translation> {
        let ok = range_hash(t.guest_start, t.guest_end, mem) == Some(t.guest_hash)
            && t.key >= t.guest_start
            && t.key < t.guest_end
            && matches!(t.tier, 1 | 2);
        let mut r = crate::syscall::lock(&self.report);
        r.validate_ns += u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX);
        if ok {
            r.validated += 1;
            Some(t)
        } else {
            r.stale += 1;
            None
        }
    }

    /// True (once) when `pc` is a profile pc to compile now.
    pub(crate) fn take_precompile(&self, pc: u64) -> bool {
        let (hit, left) = {
            let mut p = crate::syscall::lock(&self.precompile);
            (p.remove(&pc).is_some(), p.len())
        };
        let pend = crate::syscall::lock(&self.pending).len();
        self.update_pending(pend, left);
        if hit {
            crate::syscall::lock(&self.report).precompiled += 1;
        }
        hit
    }

    /// Records a published Cranelift translation for the store (up to `MAX_MADE_BYTES`
    /// of code kept for the save: a program that keeps translating new code must not
    /// grow vmjit without bound).
    pub(crate) fn record(&self, t: Translation) {
        let mut made = crate::syscall::lock(&self.made);
        let mut bytes = self.made_bytes.load(Ordering::Relaxed);
        if let Some(old) = made.get(&t.key) {
            bytes = bytes.saturating_sub(old.code.len());
        } else if bytes + t.code.len() > MAX_MADE_BYTES {
            return;
        }
        self.made_bytes
            .store(bytes + t.code.len(), Ordering::Relaxed);
        made.insert(t.key, t);
    }

    /// Writes this run's translations and the cache's hottest entries (`hot`: key,
    /// access count) into the store.
    pub(crate) fn save(&self, hot: &[(u64, u64)]) {
        let start = Instant::now();
        let made: Vec<Translation> = crate::syscall::lock(&self.made).values().cloned().collect();
        let mut made = made;
        let heat: HashMap<u64, u64> = hot.iter().copied().collect();
        for t in &mut made {
            t.heat = heat.get(&t.key).copied().unwrap_or(t.heat);
        }
        let profile = Profile {
            entries: hot
                .iter()
                .take(PROFILE_ENTRIES)
                .map(|&(key, heat)| ProfileEntry { key, heat })
                .collect(),
        };
        if made.is_empty() && profile.entries.is_empty() {
            return;
        }
        let result =
            self.settings
                .store
                .save(&self.settings.program, &self.fingerprint, &made, &profile);
        let mut r = crate::syscall::lock(&self.report);
        r.save_ns += u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX);
        match result {
            Ok(s) => {
                r.written += s.translations_changed;
                drop(r);
                if let Some(w) = s.warnings.first() {
                    self.warn(w);
                }
            }
            Err(e) => {
                drop(r);
                self.warn(&format!("cannot save: {e}"));
            }
        }
    }

    pub(crate) fn report(&self) -> StoreReport {
        crate::syscall::lock(&self.report).clone()
    }
}

/// The store's name for the program at `path`: a hash of its canonical path, device,
/// inode, size and modification time (cheap; a program rebuilt or replaced at the
/// same path gets a new id, and the guest-bytes check catches anything else).
pub fn program_id(path: &std::path::Path) -> Option<ProgramId> {
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::fs::MetadataExt;
    let canon = std::fs::canonicalize(path).ok()?;
    let m = std::fs::metadata(&canon).ok()?;
    let facts = format!(
        "{} {} {} {} {}",
        m.dev(),
        m.ino(),
        m.len(),
        m.mtime(),
        m.mtime_nsec()
    );
    Some(ProgramId(codestore::hash_bytes(
        &[canon.as_os_str().as_bytes(), b"\0", facts.as_bytes()].concat(),
    )))
}

/// The JIT's store operations (here rather than in `jit`, which owns dispatch).
impl super::Jit {
    /// Attaches the persistent code store: loads what it has for the program under
    /// this build's fingerprint (see `persist`). A second call does nothing.
    pub fn attach_store(&mut self, settings: StoreSettings) {
        let shape = self.shared.shape;
        let parts = format!(
            "jump_cache={}x{} chain_budget={CHAIN_BUDGET} region={REGION_BLOCKS}/{REGION_INSNS}",
            shape.len, shape.shift
        );
        let fp = fingerprint(&[parts.as_bytes()]);
        let warmup = self.shared.config.cache.warmup_size;
        let _ = self.shared.persist.set(Persist::open(settings, fp, warmup));
    }

    /// Writes this run's translations and profile into the attached store, if any.
    pub fn save_store(&mut self) {
        if let Some(p) = self.shared.persist.get() {
            self.exec.flush_hits();
            let hot: Vec<(u64, u64)> = self
                .shared
                .cache
                .hottest(4096)
                .iter()
                .map(|e| (e.key, e.access_count))
                .collect();
            p.save(&hot);
        }
    }

    /// Inserts the stored translation of `pc` if its guest bytes still match, or
    /// requests a precompile of a profile pc; true when code for `pc` was published.
    pub(super) fn load_stored(&mut self, pc: u64, mem: &GuestMemory) -> bool {
        let Some(p) = self.shared.persist.get() else {
            return false;
        };
        if p.take_precompile(pc) {
            // Code of an earlier run's profile: baseline code now (microseconds),
            // tier 1 follows as its runs add up; without a baseline tier, tier 1 now.
            if self.baseline.is_some() && self.publish_baseline(pc, mem) {
                return true;
            }
            return self.request(pc, Tier::Quick, mem);
        }
        let shared = Arc::clone(&self.shared);
        // Under the state lock: no invalidation between the check and the insert.
        let mut st = shared.state();
        let Some(t) = p.take_valid(pc, mem) else {
            return false;
        };
        self.publish_stored(&shared, &mut st, t)
    }

    /// Publishes the stored region entered at `pc` if its guest bytes still match.
    pub(super) fn region_from_store(&mut self, pc: u64, mem: &GuestMemory) -> bool {
        let Some(p) = self.shared.persist.get() else {
            return false;
        };
        let shared = Arc::clone(&self.shared);
        let mut st = shared.state();
        let Some(t) = p.take_region(pc, mem) else {
            return false;
        };
        self.publish_stored(&shared, &mut st, t)
    }

    /// Publishes a validated stored translation as if it had just been compiled.
    fn publish_stored(
        &mut self,
        shared: &JitShared,
        st: &mut JitState,
        t: codestore::Translation,
    ) -> bool {
        let done = Done {
            key: t.key,
            tier: if t.tier == 2 {
                Tier::Region
            } else {
                Tier::Quick
            },
            generation: st.generation,
            result: Ok(translate::Compiled {
                code: t.code,
                entry: t.key,
                guest_start: t.guest_start,
                guest_end: t.guest_end,
                ranges: vec![(t.guest_start, t.guest_end)],
                insns: 0,
            }),
            cost_ns: t.compile_cost_ns,
            guest_hash: Some(t.guest_hash),
        };
        shared.publish(st, &mut self.exec, done)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::{PERM_R, PERM_W, PERM_X};

    const CODE: u64 = 0x10000;

    fn code_memory() -> GuestMemory {
        let mem = GuestMemory::new().expect("guest memory");
        mem.map(CODE, 0x1000, PERM_R | PERM_W | PERM_X)
            .expect("map");
        // addi a0, a0, 1; addi a0, a0, 2; ret
        let words: [u32; 3] = [0x0015_0513, 0x0025_0513, 0x0000_8067];
        let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
        mem.write_bytes(CODE, &bytes).expect("write");
        mem
    }

    #[test]
    fn a_span_hash_matches_the_bytes_now_and_only_them() {
        let mem = code_memory();
        let block = rv64::decode_block(&mem, CODE).expect("decodes");
        let h = span_hash(std::slice::from_ref(&block), &mem).expect("hashable");
        assert_eq!(range_hash(CODE, CODE + 12, &mem), Some(h));
        // The guest changes one byte: the stored hash no longer matches.
        mem.write_bytes(CODE + 4, &[0x93]).expect("write");
        assert_ne!(range_hash(CODE, CODE + 12, &mem), Some(h));
        // Decoded before the change: the bytes read now differ, so nothing is stored.
        assert_eq!(span_hash(&[block], &mem), None);
        // Not executable: never hashed, never validated.
        mem.protect(CODE, 0x1000, PERM_R).expect("protect");
        assert_eq!(range_hash(CODE, CODE + 12, &mem), None);
    }

    #[test]
    fn fingerprints_differ_with_the_configuration() {
        assert_eq!(fingerprint(&[b"a"]), fingerprint(&[b"a"]));
        assert_ne!(fingerprint(&[b"a"]), fingerprint(&[b"b"]));
    }
}
