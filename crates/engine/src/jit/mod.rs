//! The JIT tier: hot guest blocks are translated by `translate` (Cranelift) into the
//! unified code cache (`codecache`) and run from there.
//!
//! Dispatch (QEMU's `cpu_exec` loop): announce a quiescent point, insert finished
//! background translations, look the pc up in this executor's L1 jump cache and then
//! the shared index; on a hit enter the translated code (which chains to further
//! translated blocks through the jump cache while `chain_budget` lasts); on a miss
//! interpret one block with `rv64`'s interpreter and count it. A block interpreted
//! `baseline_threshold` times is translated by the baseline (template) translator on the
//! guest thread and inserted at once, with a tier-up counter; when its code has run
//! `baseline_runs` times it leaves with `HOT`, and the block is decoded (the
//! interpreter's block boundaries) and translated by Cranelift at tier 1, which replaces
//! it. A block without baseline code (refused by the baseline tier, or whose baseline
//! code was evicted) goes to Cranelift after `hot_threshold` interpreted runs, doubled
//! for each earlier translation. Entries that the cache reports much hotter are recompiled as a region
//! (tier 2, optimised, several blocks with the loops inside) that replaces the tier-1
//! entry. A queued block that keeps running interpreted moves to the front of the
//! compile queue. Translated code that meets a memory access its inline check does not cover
//! (a fault, say) leaves at that instruction with `SLOW_PATH`, and the interpreter runs
//! the rest of that block.
//!
//! **Invariants.**
//! - Semantics are the interpreter's: translated code leaves `pc` and `instret` exactly
//!   as the interpreter would, faults are reported at the same pc and address, and any
//!   translation or insertion failure only means the block keeps being interpreted
//!   (with one warning per kind of failure).
//! - A call of [`Jit::run`] overshoots its instruction budget by less than
//!   [`UNIT_INSNS`] (`--max-insns` stops the JIT well before the limit and steps the
//!   rest): the chain budget given to translated code shrinks with the instructions
//!   left, one unit per `UNIT_INSNS`, the most that can run between two units (a chained
//!   block, or a pass through a region's blocks between two back edges).
//! - A translation is published only if no code invalidation happened since its guest
//!   bytes were decoded (generation check), so stale code never becomes visible.
//! - The executor's quiescent point is announced only in the dispatch loop, never while
//!   translated code runs or a `CodeRef` is held.

mod enter;
mod persist;
mod worker;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use codecache::{CacheConfig, CacheError, CacheStats, Executor, InsertMeta, UnifiedCodeCache};
use rv64::{Cpu, Exit, Insn, Interpreter, Op};
use serde::Serialize;
use translate::context::{JC_CODE_OFFSET, JC_ENTRY_SHIFT, JC_HITS_OFFSET, JC_KEY_OFFSET};
use translate::helpers::FLAT_HELPERS;
use translate::{JitContext, JumpCacheShape, TranslateError, status};

use crate::memory::{GUEST_SPACE, GuestMemory};
pub use enter::TrampolineError;
pub use persist::{StoreReport, StoreSettings, program_id};
use worker::{Done, Job, Pool, Tier, Translators};

/// Longest guest block, in instructions: the interpreter's, so both tiers agree on block
/// boundaries and the instruction-limit argument holds.
const MAX_BLOCK: usize = rv64::interp::MAX_BLOCK_INSNS;

/// Chained transfers translated code may make before it returns to the dispatcher (the
/// period of quiescent points and result polling while guest code runs).
const CHAIN_BUDGET: u64 = 1 << 14;

/// Most blocks in a tier-2 region.
const REGION_BLOCKS: usize = 16;

/// Most guest instructions in a tier-2 region (bounds compile time on a compile thread).
const REGION_INSNS: usize = 512;

/// Most guest instructions translated code runs per unit of chain budget: a chained
/// block, or one pass through a region (forward edges are free, back edges cost a unit).
pub const UNIT_INSNS: usize = if REGION_INSNS > MAX_BLOCK {
    REGION_INSNS
} else {
    MAX_BLOCK
};

// `--max-insns` stops the JIT `SLACK` instructions early; the overshoot must fit.
const _: () = assert!(UNIT_INSNS < crate::dispatch::SLACK as usize);

/// A block is translated only if fewer than one in `HELPER_SHARE` of its instructions
/// run through the translator's `exec_one` helper: helper-run instructions (F/D
/// arithmetic, A, Zicsr) are slower in translated code than in the interpreter
/// (measured: the float guest ran 3x slower with its FP blocks translated).
const HELPER_SHARE: usize = 4;

/// Smallest code cache in which tier 2 runs: regions are several blocks' worth of code,
/// and in a small cache they evict the tier-1 blocks they would speed up (single runs
/// of coremark with a 64 KiB cache on a loaded 2-core host: 8.3 s with tier 2, 3.5 s
/// without; such runs vary by up to 2x, so this is a guard, not a tuned figure).
const TIER2_MIN_CACHE: usize = 1 << 20;

/// Default `JitConfig::baseline_threshold` (100 against 50: largecode 0.164 -> 0.150 s,
/// the other short guests within noise; see ARCHITECTURE.md).
pub const BASELINE_THRESHOLD: u32 = 100;

/// Default `JitConfig::baseline_runs`.
pub const BASELINE_RUNS: u32 = 1500;

/// Tier-up counters for baseline blocks, handed out round robin.
const BASELINE_COUNTERS: usize = 1 << 16;

/// Bit of an interpreter block's mark (`rv64::Interpreter::cached_mark`): the code cache
/// is known not to hold the block. The other bits count its interpreted runs not yet
/// added to its heat.
const MARK_ABSENT: u32 = 1 << 31;

/// Guest instructions between two looks at the cache's hottest entries for tier 2 (a
/// look ranks every entry, tens of microseconds: once per few ms of guest time).
/// A look that queues nothing doubles the period, up to `TIER2_PERIOD_MAX`; one that
/// queues a region brings it back: a program in its steady state (every hot block
/// already optimised) stops paying for looks, about 2 % of coremark's time otherwise.
const TIER2_PERIOD: u64 = 1 << 22;
const TIER2_PERIOD_MAX: u64 = 1 << 26;

/// How the JIT tier is set up.
#[derive(Clone, Debug, PartialEq)]
pub struct JitConfig {
    /// The code cache's configuration (size, entries, policy, jump-cache shape).
    pub cache: CacheConfig,
    /// Interpreted executions of a block without baseline code (the baseline tier
    /// is off, refused it, or its baseline code was evicted) before Cranelift translates
    /// it (tier 1). At least 1.
    pub hot_threshold: u32,
    /// Compile threads; 0 compiles on the guest thread (the guest waits for it).
    pub compile_threads: usize,
    /// Cache hits (approximate access count) after which a tier-1 entry is recompiled as
    /// an optimised region (tier 2); 0 disables tier 2.
    pub tier2_threshold: u64,
    /// Append every published translation to `/tmp/perf-<pid>.map` (the symbol map
    /// format `perf report` reads for JIT code), named by tier and guest pc.
    pub perf_map: bool,
    /// Interpreted executions of a block before the baseline (template) translator
    /// translates it on the guest thread, in microseconds; 0 disables the baseline tier
    /// (as does a host other than x86-64). Only a block's first translation is a
    /// baseline one.
    pub baseline_threshold: u32,
    /// Runs of a block's baseline code before it asks for its Cranelift tier-1
    /// translation (baseline code counts its own runs). At least 1.
    pub baseline_runs: u32,
}

impl Default for JitConfig {
    fn default() -> Self {
        JitConfig {
            cache: CacheConfig {
                // Most runs use a few hundred KiB of code: committing the cache's
                // default 1 MiB at creation cost a trivial guest 0.4 ms of its 5.
                commit_at_creation: 256 << 10,
                ..CacheConfig::default()
            },
            hot_threshold: 50,
            compile_threads: 1,
            tier2_threshold: 20_000,
            perf_map: false,
            baseline_threshold: BASELINE_THRESHOLD,
            baseline_runs: BASELINE_RUNS,
        }
    }
}

/// Why the JIT could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum JitError {
    #[error("code cache: {0}")]
    Cache(#[from] CacheError),
    #[error("translator: {0}")]
    Translate(#[from] TranslateError),
    #[error(transparent)]
    Trampoline(#[from] TrampolineError),
    #[error(
        "the code cache's jump-cache layout does not match what translated code expects \
         (entry shift {0}); the codecache and translate crates disagree"
    )]
    JumpCacheLayout(u32),
    #[error("--hot-threshold must be at least 1")]
    HotThreshold,
}

/// The JIT's own counters (the cache keeps its own in [`CacheStats`]).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct JitStats {
    /// Times the dispatcher entered translated code.
    pub entries: u64,
    /// Blocks run by the interpreter (misses and cold code).
    pub interpreted_blocks: u64,
    /// Memory accesses translated code handed back to the interpreter (faults, and
    /// accesses the permission table's fast bits do not cover); the rest of each such
    /// block ran interpreted.
    pub slow_paths: u64,
    /// Baseline translations published (each is replaced by its tier-1 translation
    /// when that arrives).
    pub baseline_translations: u64,
    /// Hot blocks the baseline translator does not handle (they wait interpreted).
    pub baseline_unsupported: u64,
    /// Nanoseconds spent in the baseline translator (on the guest thread; not part of
    /// `compile_ns`).
    pub baseline_compile_ns: u64,
    /// Tier-1 translations published.
    pub tier1_translations: u64,
    /// Tier-2 regions published.
    pub tier2_translations: u64,
    /// Blocks in published tier-2 regions.
    pub tier2_blocks: u64,
    /// Hot blocks kept interpreted because most of their instructions would run
    /// through the translator's helper anyway.
    pub helper_heavy_blocks: u64,
    /// Translations that failed (the block stays interpreted).
    pub translate_failures: u64,
    /// Inserts the cache refused (the block stays interpreted or is retried).
    pub insert_failures: u64,
    /// Background results dropped because guest code was invalidated meanwhile.
    pub stale_results: u64,
    /// Nanoseconds spent translating (on any thread).
    pub compile_ns: u64,
    /// Nanoseconds the guest thread spent translating (compile threads excluded).
    pub guest_thread_compile_ns: u64,
    /// Of `compile_ns`: nanoseconds spent on tier-2 regions (the rest is tier 1).
    pub tier2_compile_ns: u64,
    /// Code invalidation requests applied (ranges and flushes).
    pub invalidations: u64,
    /// Translated entries those requests removed (flushes not counted).
    pub invalidated_entries: u64,
}

/// One of the hottest cache entries, for `--stats`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct HotBlock {
    /// Guest address (the cache key).
    pub pc: u64,
    /// Approximate executions through the cache.
    pub hits: u64,
    /// Hotness score (the cache's formula).
    pub hotness: f64,
    /// Host code bytes.
    pub code_bytes: usize,
    /// Guest range translated.
    pub guest_start: u64,
    pub guest_end: u64,
    /// Disassembly of the first instruction.
    pub first_insn: String,
}

/// Everything `--stats` / `--stats-json` report about the JIT.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct JitReport {
    pub jit: JitStats,
    pub cache: CacheStats,
    pub hottest: Vec<HotBlock>,
    /// Each guest thread's lookups and dispatches (the cache's figures sum them).
    pub threads: Vec<ThreadReport>,
    /// The persistent code store's work, when one is attached.
    pub store: Option<StoreReport>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum State {
    /// Interpreted; translated when hot.
    #[default]
    Cold,
    /// A translation is queued on a compile thread.
    Queued,
    /// Translation or insertion failed for good: always interpret.
    Failed,
}

#[derive(Clone, Copy, Debug, Default)]
struct Heat {
    runs: u32,
    state: State,
    /// A tier-2 region was requested or published for this entry.
    tier2: bool,
    /// The baseline translator does not handle this block, or the cache refused its
    /// baseline code.
    baseline_refused: bool,
    /// Tier-1 translations of this block published so far. Each one doubles the
    /// interpreted runs needed for the next (HotSpot raises thresholds as the cache
    /// fills): a block the cache keeps evicting is recompiled O(log runs) times, not on
    /// every miss.
    translations: u8,
    /// The tier-up counter of the block's baseline code (`ctx.counters` index).
    counter: u32,
    /// The tier of the block's last published translation.
    tier: Option<CodeTier>,
}

/// Which translator produced a code-cache entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CodeTier {
    /// The baseline (template) translator.
    Baseline,
    /// Cranelift, one block (`opt_level=none`).
    Tier1,
    /// Cranelift, a region of blocks (`opt_level=speed`).
    Tier2,
}

impl std::fmt::Display for CodeTier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            CodeTier::Baseline => "baseline",
            CodeTier::Tier1 => "tier 1",
            CodeTier::Tier2 => "tier 2",
        })
    }
}

/// What [`Jit::run_observed`] tells its observer, for a crosscheck; the plain
/// [`Jit::run`] observes nothing, at no cost (the calls compile away).
pub(crate) trait Observer {
    /// Return [`Exit::Budget`] after every dispatch step (one entry into translated
    /// code, or one interpreted block) instead of running on to the budget.
    const STEP: bool;
    /// Translated code at `pc`, of `tier` when known, is entered with `instret`
    /// instructions retired.
    fn entered(&mut self, pc: u64, tier: Option<CodeTier>, instret: u64);
    /// Translated code entered at `pc` returned to the dispatcher with `cpu` (a test
    /// hook may change it or `mem`, as mistranslated code would).
    fn returned(&mut self, pc: u64, cpu: &mut Cpu, mem: &GuestMemory);
    /// Translated code left with `SLOW_PATH` at `pc`; the interpreter runs the rest of
    /// the block.
    fn slow_path(&mut self, pc: u64);
    /// The interpreter runs the block at `pc`.
    fn interpreted(&mut self, pc: u64);
    /// False to run only the code the cache holds now: no translation is made or
    /// published (a crosscheck replaying a step runs the code the step ran).
    fn may_translate(&self) -> bool;
}

/// The observer of [`Jit::run`].
struct Unobserved;

impl Observer for Unobserved {
    const STEP: bool = false;
    #[inline(always)]
    fn entered(&mut self, _: u64, _: Option<CodeTier>, _: u64) {}
    #[inline(always)]
    fn returned(&mut self, _: u64, _: &mut Cpu, _: &GuestMemory) {}
    #[inline(always)]
    fn slow_path(&mut self, _: u64) {}
    #[inline(always)]
    fn interpreted(&mut self, _: u64) {}
    #[inline(always)]
    fn may_translate(&self) -> bool {
        true
    }
}

impl Heat {
    fn is_hot(&self, threshold: u32) -> bool {
        let shift = u32::from(self.translations.min(16));
        self.runs >= threshold.saturating_mul(1 << shift)
    }
}

/// A multiplicative hasher for guest pcs (the `heat` map is probed on every
/// interpreted block; SipHash would double the cost of a miss).
#[derive(Clone, Copy, Default)]
struct PcHasher(u64);

impl std::hash::Hasher for PcHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = (v ^ (v >> 29)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

type PcMap<V> = HashMap<u64, V, std::hash::BuildHasherDefault<PcHasher>>;

/// The JIT of one guest process, shared by all its threads: the code cache, the compile
/// threads, the trampoline, the tier-up counters, and the heat and tier state behind one
/// lock.
pub struct JitShared {
    config: JitConfig,
    cache: UnifiedCodeCache,
    trampoline: enter::Trampoline,
    pool: Option<Pool>,
    /// Tier-up countdowns of baseline blocks (`ctx.counters`): translated code in every
    /// thread decrements them (a lost decrement when two threads race only delays a
    /// tier-up by one run); Rust code stores them atomically.
    counters: Box<[AtomicU32]>,
    /// Jobs submitted to the pool and not received back: the result channel is polled
    /// only while this is non-zero (polling costs more than a dispatch otherwise).
    in_flight: AtomicUsize,
    /// Translations published so far (the length of `JitState::published`, read
    /// without the lock by threads checking for news).
    published_count: AtomicU64,
    state: Mutex<JitState>,
    /// The counters of threads that ended.
    ended: Mutex<ThreadCounters>,
    /// Per-thread figures of threads that ended, for the report.
    thread_reports: Mutex<Vec<ThreadReport>>,
    /// The persistent code store, when attached ([`Jit::attach_store`]).
    persist: std::sync::OnceLock<persist::Persist>,
    /// The jump-cache shape built into translated code (part of the store's
    /// fingerprint).
    shape: JumpCacheShape,
}

/// One guest thread's share of the JIT's work (`--stats-json`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ThreadReport {
    pub tid: i64,
    /// Code-cache lookups of this thread's executor.
    pub l1_hits: u64,
    pub index_hits: u64,
    pub misses: u64,
    /// Entries into translated code, interpreted blocks.
    pub entries: u64,
    pub interpreted_blocks: u64,
}

/// What the JIT's threads decide together, behind `JitShared::state`.
struct JitState {
    heat: PcMap<Heat>,
    /// Bumped by every code invalidation.
    generation: u64,
    stats: JitStats,
    /// Translators for compiles on a guest thread (with 0 compile threads, or when the
    /// pool cannot take a job).
    translators: Translators,
    /// The next tier-up counter to hand out (round robin).
    next_counter: u32,
    /// Results received from the compile threads so far.
    received: usize,
    /// The last `PUBLISHED_LOG` pcs inserted into the code cache, by any thread, in
    /// order: entry `n % PUBLISHED_LOG` is the `n`th. Each thread clears its
    /// interpreter blocks' `MARK_ABSENT` for the pcs it has not seen yet before it next
    /// reads a mark: a block marked absent skips the cache probe (its runs are counted
    /// in its mark, next to the decoded block the interpreter reads anyway), and
    /// evictions and invalidations only remove entries, so a mark is never wrong when
    /// it is read. A thread that fell further behind clears every mark.
    published: Vec<u64>,
    warned_translate: bool,
    warned_insert: bool,
    /// `/tmp/perf-<pid>.map` when `perf_map` is on (dropped after a write error).
    perf_map: Option<std::io::BufWriter<std::fs::File>>,
}

/// Entries kept in `JitState::published`.
const PUBLISHED_LOG: usize = 1 << 14;

/// Counters a guest thread keeps for itself (they change on every dispatch) and adds
/// to the process's report when it ends or reports.
#[derive(Clone, Copy, Debug, Default)]
struct ThreadCounters {
    entries: u64,
    interpreted_blocks: u64,
    slow_paths: u64,
}

impl ThreadCounters {
    fn add(&mut self, o: &ThreadCounters) {
        self.entries += o.entries;
        self.interpreted_blocks += o.interpreted_blocks;
        self.slow_paths += o.slow_paths;
    }
}

/// The JIT tier of one guest thread: its executor (L1 jump cache, quiescent points),
/// its baseline translator, and a handle on the process's [`JitShared`].
pub struct Jit {
    shared: Arc<JitShared>,
    exec: Executor,
    /// The baseline translator (with a baseline threshold): it runs on the guest thread.
    baseline: Option<translate::Baseline>,
    /// How many of `JitState::published` this thread has applied to its interpreter.
    seen: u64,
    /// `instret` at the last look for tier-2 candidates.
    last_tier2_check: u64,
    /// Instructions from `last_tier2_check` to the next look.
    tier2_period: u64,
    /// Most chained transfers per entry into translated code (`CHAIN_BUDGET` unless a
    /// crosscheck lowers it).
    chain_limit: u64,
    counters: ThreadCounters,
    /// The guest thread's handle: dispatch returns to the engine when it asks for
    /// attention (mail from another thread, the process's end).
    attention: Option<Arc<crate::threads::ThreadHandle>>,
    /// The guest thread's id, for the report.
    tid: i64,
}

impl std::fmt::Debug for Jit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Jit")
            .field("config", &self.shared.config)
            .finish_non_exhaustive()
    }
}

impl Drop for Jit {
    fn drop(&mut self) {
        crate::syscall::lock(&self.shared.ended).add(&self.counters);
        let r = self.thread_report();
        crate::syscall::lock(&self.shared.thread_reports).push(r);
    }
}

/// What `consider` decided for a block, done after the state lock is released.
enum Action {
    None,
    Baseline,
    Request,
}

impl JitShared {
    fn state(&self) -> MutexGuard<'_, JitState> {
        crate::syscall::lock(&self.state)
    }

    /// Appends one line to the perf map, if one is being written.
    fn write_perf_map(st: &mut JitState, addr: usize, size: usize, pc: u64, tier: u32) {
        if let Some(map) = &mut st.perf_map {
            use std::io::Write;
            let line = writeln!(map, "{addr:x} {size:x} guest_{pc:x}_t{tier}");
            if line.and_then(|()| map.flush()).is_err() {
                st.perf_map = None;
            }
        }
    }

    /// Records that `pc` was inserted into the code cache (see `JitState::published`).
    fn note_published(&self, st: &mut JitState, pc: u64) {
        let n = self.published_count.load(Ordering::Relaxed);
        let i = (n as usize) % PUBLISHED_LOG;
        if i < st.published.len() {
            st.published[i] = pc;
        } else {
            st.published.push(pc);
        }
        self.published_count.store(n + 1, Ordering::Release);
    }

    /// Publishes a finished translation (or records why not); true if inserted.
    fn publish(&self, st: &mut JitState, exec: &mut Executor, done: Done) -> bool {
        st.stats.compile_ns += done.cost_ns;
        if done.tier == Tier::Region {
            st.stats.tier2_compile_ns += done.cost_ns;
        }
        let generation = st.generation;
        let heat = st.heat.entry(done.key).or_default();
        if done.tier == Tier::Quick && heat.state == State::Queued {
            heat.state = State::Cold;
        }
        if done.generation != generation {
            st.stats.stale_results += 1;
            if done.tier == Tier::Region {
                heat.tier2 = false;
            }
            return false;
        }
        let compiled = match done.result {
            Ok(c) => c,
            Err(e) => {
                st.stats.translate_failures += 1;
                if done.tier == Tier::Quick {
                    heat.state = State::Failed;
                }
                if !st.warned_translate {
                    st.warned_translate = true;
                    crate::host::write_stderr(
                        format!(
                            "vmjit: warning: cannot translate guest code at {:#x} ({e}); \
                             interpreting it instead\n",
                            done.key
                        )
                        .as_bytes(),
                    );
                }
                return false;
            }
        };
        let meta = InsertMeta {
            guest_start: compiled.guest_start,
            guest_end: compiled.guest_end,
            compile_cost: done.cost_ns.max(1),
        };
        self.note_published(st, done.key);
        match exec.insert_with(done.key, &compiled.code, meta) {
            Ok(code) => {
                if let (Some(p), Some(guest_hash)) = (self.persist.get(), done.guest_hash) {
                    p.record(codestore::Translation {
                        key: done.key,
                        guest_start: compiled.guest_start,
                        guest_end: compiled.guest_end,
                        guest_hash,
                        tier: match done.tier {
                            Tier::Quick => 1,
                            Tier::Region => 2,
                        },
                        compile_cost_ns: done.cost_ns,
                        heat: 0,
                        code: compiled.code.clone(),
                    });
                }
                let tier = match done.tier {
                    Tier::Quick => 1,
                    Tier::Region => 2,
                };
                let (addr, size) = (code.as_ptr() as usize, code.size());
                Self::write_perf_map(st, addr, size, done.key, tier);
                let heat = st.heat.entry(done.key).or_default();
                match done.tier {
                    Tier::Quick => {
                        heat.tier = Some(CodeTier::Tier1);
                        heat.tier2 = false;
                        heat.translations = heat.translations.saturating_add(1);
                        heat.runs = 0;
                        st.stats.tier1_translations += 1;
                    }
                    Tier::Region => {
                        heat.tier = Some(CodeTier::Tier2);
                        st.stats.tier2_translations += 1;
                        st.stats.tier2_blocks += compiled.ranges.len() as u64;
                    }
                }
                true
            }
            Err(e) => {
                st.stats.insert_failures += 1;
                let permanent = !matches!(e, CacheError::ReclaimPending { .. });
                let heat = st.heat.entry(done.key).or_default();
                if permanent && done.tier == Tier::Quick {
                    heat.state = State::Failed;
                } else {
                    // Retry once it is hot again, when space may have been reclaimed.
                    heat.runs = 0;
                }
                if permanent && !st.warned_insert {
                    st.warned_insert = true;
                    crate::host::write_stderr(
                        format!(
                            "vmjit: warning: the code cache cannot hold the translation of \
                             {:#x} ({e}); interpreting it instead\n",
                            done.key
                        )
                        .as_bytes(),
                    );
                }
                false
            }
        }
    }
}

impl Jit {
    /// Creates the cache, the translators, the trampoline and the compile threads: the
    /// JIT of a process, with this handle for its first thread.
    pub fn new(config: JitConfig) -> Result<Self, JitError> {
        if config.hot_threshold == 0 {
            return Err(JitError::HotThreshold);
        }
        let cache = UnifiedCodeCache::new(config.cache.clone())?;
        // Writing that file writes the host code vmjit runs: no guest may open it.
        let (dev, ino) = cache.code_memory_file();
        crate::sandbox::register_internal_file(dev, ino);
        let exec = cache.register_executor();
        let layout = exec.jump_cache_layout();
        if layout.entry_shift != JC_ENTRY_SHIFT
            || layout.key_offset as i32 != JC_KEY_OFFSET
            || layout.code_offset as i32 != JC_CODE_OFFSET
            || layout.hits_offset as i32 != JC_HITS_OFFSET
            || !layout.len.is_power_of_two()
        {
            return Err(JitError::JumpCacheLayout(layout.entry_shift));
        }
        let shape = JumpCacheShape {
            shift: layout.key_shift,
            len: layout.len,
        };
        let mut translators = Translators::new(shape)?;
        let trampoline = enter::Trampoline::new(translators.quick())?;
        let pool = match config.compile_threads {
            0 => None,
            n => Some(Pool::new(n, shape)?),
        };
        let perf_map = if config.perf_map {
            let path = format!("/tmp/perf-{}.map", std::process::id());
            match std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
            {
                Ok(f) => {
                    // vmjit's own file: out of the guest's descriptor range, and never
                    // openable by the guest (it is read by perf, not by vmjit, but a
                    // guest should not forge what a profiler shows).
                    let f = crate::host::move_file(f, crate::sandbox::internal_floor());
                    crate::sandbox::register_internal_fd(std::os::fd::AsRawFd::as_raw_fd(&f));
                    Some(std::io::BufWriter::new(f))
                }
                Err(e) => {
                    crate::host::write_stderr(
                        format!("vmjit: warning: cannot write the perf map {path}: {e}\n")
                            .as_bytes(),
                    );
                    None
                }
            }
        } else {
            None
        };
        let shared = Arc::new(JitShared {
            config,
            cache,
            trampoline,
            pool,
            counters: (0..BASELINE_COUNTERS).map(|_| AtomicU32::new(0)).collect(),
            in_flight: AtomicUsize::new(0),
            published_count: AtomicU64::new(0),
            state: Mutex::new(JitState {
                heat: PcMap::default(),
                generation: 0,
                stats: JitStats::default(),
                translators,
                next_counter: 0,
                received: 0,
                published: Vec::new(),
                warned_translate: false,
                warned_insert: false,
                perf_map,
            }),
            ended: Mutex::new(ThreadCounters::default()),
            thread_reports: Mutex::new(Vec::new()),
            persist: std::sync::OnceLock::new(),
            shape,
        });
        Ok(Self::for_thread(shared, exec))
    }

    fn for_thread(shared: Arc<JitShared>, exec: Executor) -> Jit {
        let layout = exec.jump_cache_layout();
        let baseline = if shared.config.baseline_threshold > 0 {
            translate::Baseline::new(translate::BaselineConfig {
                jump_cache: JumpCacheShape {
                    shift: layout.key_shift,
                    len: layout.len,
                },
                guest_size: Some(GUEST_SPACE),
                perms_offset: Some(crate::memory::PERMS_OFFSET),
            })
            .ok()
        } else {
            None
        };
        let seen = shared.published_count.load(Ordering::Acquire);
        Jit {
            shared,
            exec,
            baseline,
            seen,
            last_tier2_check: 0,
            tier2_period: TIER2_PERIOD,
            chain_limit: CHAIN_BUDGET,
            counters: ThreadCounters::default(),
            attention: None,
            tid: 0,
        }
    }

    /// Makes dispatch return (`Exit::Budget`) whenever `handle` asks for attention.
    pub(crate) fn set_attention(&mut self, handle: Arc<crate::threads::ThreadHandle>) {
        self.attention = Some(handle);
    }

    /// The JIT handle of a new thread of the same process: its own executor (jump
    /// cache, quiescent points) and baseline translator, everything else shared. Its
    /// interpreter starts empty, so it owes no marks for what was published before.
    pub fn new_thread(&self) -> Jit {
        let exec = self.shared.cache.register_executor();
        let mut j = Self::for_thread(Arc::clone(&self.shared), exec);
        j.chain_limit = self.chain_limit;
        j
    }

    /// The code cache (shared handle).
    pub fn cache(&self) -> &UnifiedCodeCache {
        &self.shared.cache
    }

    /// The JIT's counters so far, summed over every thread that ended and this one.
    pub fn stats(&self) -> JitStats {
        let mut s = self.shared.state().stats.clone();
        let mut c = *crate::syscall::lock(&self.shared.ended);
        c.add(&self.counters);
        s.entries += c.entries;
        s.interpreted_blocks += c.interpreted_blocks;
        s.slow_paths += c.slow_paths;
        s
    }

    /// The id this handle's figures are reported under.
    pub(crate) fn set_tid(&mut self, tid: i64) {
        self.tid = tid;
    }

    fn thread_report(&mut self) -> ThreadReport {
        self.exec.flush_hits();
        let (l1_hits, index_hits, misses) = self.exec.lookup_counts();
        ThreadReport {
            tid: self.tid,
            l1_hits,
            index_hits,
            misses,
            entries: self.counters.entries,
            interpreted_blocks: self.counters.interpreted_blocks,
        }
    }

    /// Lowers the chained transfers translated code makes before it returns to the
    /// dispatcher, from 16 384 (0: every translated block returns).
    pub fn set_chain_limit(&mut self, transfers: u64) {
        self.chain_limit = transfers.min(CHAIN_BUDGET);
    }

    /// Goes offline for reclamation: this thread holds no code reference and will not
    /// run translated code until its next `run` (call it before blocking).
    pub fn offline(&mut self) {
        self.exec.offline();
    }

    /// Runs guest code from `cpu.pc` until an exit or until at least `budget`
    /// instructions retired (then `Exit::Budget`, overshooting by less than one block).
    pub fn run(
        &mut self,
        cpu: &mut Cpu,
        mem: &GuestMemory,
        interp: &mut Interpreter,
        budget: u64,
    ) -> Exit {
        self.run_observed(cpu, mem, interp, budget, &mut Unobserved)
    }

    /// Clears `MARK_ABSENT` in `interp` for every pc some thread published since this
    /// thread last looked.
    #[inline]
    fn apply_published(&mut self, interp: &mut Interpreter) {
        let n = self.shared.published_count.load(Ordering::Acquire);
        if n == self.seen {
            return;
        }
        let st = self.shared.state();
        let n = self.shared.published_count.load(Ordering::Acquire);
        if n - self.seen > PUBLISHED_LOG as u64 {
            interp.clear_marks();
        } else {
            for k in self.seen..n {
                interp.set_mark(st.published[(k as usize) % PUBLISHED_LOG], 0);
            }
        }
        self.seen = n;
    }

    /// [`Jit::run`], telling `obs` what runs (and, with `O::STEP`, returning after
    /// each dispatch step).
    pub(crate) fn run_observed<O: Observer>(
        &mut self,
        cpu: &mut Cpu,
        mem: &GuestMemory,
        interp: &mut Interpreter,
        budget: u64,
        obs: &mut O,
    ) -> Exit {
        let layout = self.exec.jump_cache_layout();
        let mut ctx = JitContext::new(
            cpu.clone(),
            mem.base_ptr(),
            mem.perm_table_ptr(),
            GUEST_SPACE,
            &FLAT_HELPERS,
        );
        ctx.jump_cache = layout.base as *const core::ffi::c_void;
        ctx.jc_mask = (layout.len - 1) as u64;
        ctx.jc_shift = u64::from(layout.key_shift);
        // Translated code writes the counters through this pointer (plain u32
        // decrements: `AtomicU32` has the layout of `u32`); Rust code only ever uses
        // the atomics.
        ctx.counters = self.shared.counters.as_ptr().cast::<u32>().cast_mut();
        let mut m = mem;
        let start = ctx.cpu.instret;
        let mut stepped = false;
        let exit = loop {
            self.exec.quiescent();
            if obs.may_translate() {
                self.poll_background();
            }
            let done = ctx.cpu.instret.wrapping_sub(start);
            if done >= budget
                || (O::STEP && stepped)
                || self.attention.as_ref().is_some_and(|h| h.attention())
            {
                break Exit::Budget;
            }
            stepped = true;
            self.apply_published(interp);
            let pc = ctx.cpu.pc;
            let mark = interp.cached_mark(pc).filter(|m| m & MARK_ABSENT != 0);
            if mark.is_some() {
                self.exec.count_miss();
            } else if let Some(code) = self.exec.lookup(pc) {
                ctx.chain_budget = self.chain_limit.min((budget - done) / UNIT_INSNS as u64);
                self.counters.entries += 1;
                if O::STEP {
                    let tier = self.shared.state().heat.get(&pc).and_then(|h| h.tier);
                    obs.entered(pc, tier, ctx.cpu.instret);
                }
                // SAFETY: `code` was looked up from this executor after its last
                // quiescent point and its borrow spans the call; the block was
                // translated with chaining by `Translators` (the trampoline's
                // configuration); `ctx` holds the guest memory's base, permission table
                // and GUEST_SPACE with FLAT_HELPERS (the layout `GuestMemory`
                // documents) and this executor's jump cache; Rust code of this thread
                // does not touch guest memory until the call returns (other threads'
                // accesses are atomic on the Rust side).
                let st = unsafe { self.shared.trampoline.call(&mut ctx, code.as_ptr()) };
                if O::STEP {
                    obs.returned(pc, &mut ctx.cpu, mem);
                }
                if st == status::SLOW_PATH {
                    // The access at pc failed the inline check: the interpreter runs
                    // it (a precise fault, or an access the fast bits do not cover)
                    // and the rest of its block.
                    self.counters.slow_paths += 1;
                    obs.slow_path(ctx.cpu.pc);
                    if let Err(e) = interp.run_block(&mut ctx.cpu, &mut m) {
                        break e;
                    }
                    continue;
                }
                if st == status::HOT {
                    self.hot(ctx.cpu.pc, mem, obs.may_translate());
                    continue;
                }
                if st != status::CONTINUE {
                    break match ctx.exit_for(st) {
                        Some(e) => e,
                        // Unknown status: a translator bug; stop rather than guess.
                        None => Exit::Illegal {
                            pc: ctx.cpu.pc,
                            raw: 0,
                        },
                    };
                }
                // Chained code returns here only every CHAIN_BUDGET blocks, so the
                // look for tier-2 candidates is paced by instructions, not entries.
                if ctx.cpu.instret.wrapping_sub(self.last_tier2_check) >= self.tier2_period
                    && obs.may_translate()
                {
                    self.last_tier2_check = ctx.cpu.instret;
                    self.tier2_period = if self.consider_tier2(mem) {
                        TIER2_PERIOD
                    } else {
                        (self.tier2_period * 2).min(TIER2_PERIOD_MAX)
                    };
                }
                continue;
            }
            // A first run may find its code in the persistent store, or be a profile
            // pc to compile at once.
            if mark.is_none()
                && obs.may_translate()
                && self.shared.persist.get().is_some_and(|p| p.any_pending())
                && self.load_stored(pc, mem)
            {
                continue;
            }
            // Count the run in the block's mark; the heat map (a hash lookup) is
            // consulted once per period. A block not yet marked (first run, or its
            // jump-cache entry was taken) is marked after it runs.
            if let Some(mk) = mark
                && obs.may_translate()
                && self.count_run(interp, pc, mk, mem)
            {
                continue;
            }
            self.counters.interpreted_blocks += 1;
            obs.interpreted(pc);
            if let Err(e) = interp.run_block(&mut ctx.cpu, &mut m) {
                break e;
            }
            if mark.is_none() && obs.may_translate() {
                // The cache was probed for `pc` above and missed. The block may have
                // been marked before it lost its jump-cache entry: its count goes on.
                let before = interp.cached_mark(pc).unwrap_or(0);
                self.count_run(interp, pc, before, mem);
            }
        };
        *cpu = ctx.cpu.clone();
        exit
    }

    /// A baseline block at `pc` has run `baseline_runs` times: tier 1 next. Its counter
    /// starts again, so a block still running baseline code `baseline_runs` later, while
    /// its job waits behind others, moves to the front of the queue (the queue is in
    /// the order blocks got hot, and a program's early blocks are often done with by
    /// then).
    fn hot(&mut self, pc: u64, mem: &GuestMemory, may_translate: bool) {
        let (counter, request) = {
            let mut st = self.shared.state();
            let heat = st.heat.entry(pc).or_default();
            let counter = heat.counter as usize;
            let request = match heat.state {
                // `translations` is 1 until tier 1 is published: baseline code still
                // looping inside itself after that asks for nothing.
                State::Cold if heat.translations <= 1 && may_translate => true,
                State::Queued => {
                    if let Some(pool) = &self.shared.pool {
                        pool.promote(pc);
                    }
                    false
                }
                _ => false,
            };
            (counter, request)
        };
        if request {
            self.request(pc, Tier::Quick, mem);
        }
        if let Some(c) = self.shared.counters.get(counter) {
            c.store(self.shared.config.baseline_runs.max(1), Ordering::Relaxed);
        }
    }

    /// Counts one interpreted run of the block at `pc` (jump-cached in `interp`) whose
    /// mark was `before`, marking it absent from the code cache; once per period, adds
    /// the runs to its heat (`consider`). True when a translation was published now.
    fn count_run(
        &mut self,
        interp: &mut Interpreter,
        pc: u64,
        before: u32,
        mem: &GuestMemory,
    ) -> bool {
        let runs = if before & MARK_ABSENT != 0 {
            (before & !MARK_ABSENT) + 1
        } else {
            1
        };
        if runs < self.count_period() {
            interp.set_cached_mark(pc, MARK_ABSENT | runs);
            return false;
        }
        interp.set_cached_mark(pc, MARK_ABSENT);
        self.consider(pc, runs, mem)
    }

    /// Adds `runs` interpreted runs to the heat of the block at `pc` and translates it
    /// if that makes it hot. True when a translation was published now (so the
    /// dispatcher should look again).
    fn consider(&mut self, pc: u64, runs: u32, mem: &GuestMemory) -> bool {
        let config = &self.shared.config;
        let action = {
            let mut st = self.shared.state();
            let heat = st.heat.entry(pc).or_default();
            heat.runs = heat.runs.saturating_add(runs);
            if heat.state == State::Queued {
                // Still running interpreted while it waits: compile it next.
                if let Some(pool) = &self.shared.pool {
                    pool.promote(pc);
                }
                Action::None
            } else if heat.state == State::Cold {
                // Only a block's first translation is a baseline one: a block seen
                // again after an eviction has proven it recurs (and in a small cache
                // baseline code would rarely live long enough to tier up).
                let first = heat.translations == 0 && !heat.baseline_refused;
                if first && self.baseline.is_some() {
                    if heat.runs >= config.baseline_threshold {
                        Action::Baseline
                    } else {
                        Action::None
                    }
                } else if heat.is_hot(config.hot_threshold) {
                    Action::Request
                } else {
                    Action::None
                }
            } else {
                Action::None
            }
        };
        match action {
            Action::None => false,
            Action::Baseline => self.publish_baseline(pc, mem),
            Action::Request => self.request(pc, Tier::Quick, mem),
        }
    }

    /// Interpreted runs of a block between two looks at its heat: the lowest threshold
    /// in use.
    fn count_period(&self) -> u32 {
        let config = &self.shared.config;
        if self.baseline.is_some() {
            config.baseline_threshold.min(config.hot_threshold)
        } else {
            config.hot_threshold
        }
    }

    /// Decodes and translates the code at `pc` for `tier`, on the guest thread or a
    /// compile thread. True when a translation was published now (so the dispatcher
    /// should look again).
    fn request(&mut self, pc: u64, tier: Tier, mem: &GuestMemory) -> bool {
        // The generation before the bytes are read: an invalidation by any thread after
        // this point makes the result stale.
        let generation = self.shared.state().generation;
        let blocks = match tier {
            Tier::Quick => match decode_block(pc, mem) {
                Some(b) => {
                    let helpers = b
                        .iter()
                        .filter(|(_, i)| translate::runs_in_helper(i.op))
                        .count();
                    if helpers * HELPER_SHARE >= b.len() {
                        let mut st = self.shared.state();
                        st.stats.helper_heavy_blocks += 1;
                        st.heat.entry(pc).or_default().state = State::Failed;
                        return false;
                    }
                    vec![b]
                }
                None => return false,
            },
            Tier::Region => {
                if self.region_from_store(pc, mem) {
                    return true;
                }
                self.form_region(pc, mem)
            }
        };
        if blocks.is_empty() {
            return false;
        }
        let guest_hash = self
            .shared
            .persist
            .get()
            .and_then(|_| persist::span_hash(&blocks, mem));
        let job = Job {
            key: pc,
            tier,
            blocks,
            generation,
            guest_hash,
        };
        let job = match &self.shared.pool {
            Some(pool) => {
                // Queued state first: the result may come back (and be published by
                // any thread) before `submit` returns.
                let mut st = self.shared.state();
                match pool.submit(job) {
                    Ok(()) => {
                        self.shared.in_flight.fetch_add(1, Ordering::AcqRel);
                        if tier == Tier::Quick {
                            st.heat.entry(pc).or_default().state = State::Queued;
                        }
                        return false;
                    }
                    Err(job) => job,
                }
            }
            None => job,
        };
        let shared = Arc::clone(&self.shared);
        let mut st = shared.state();
        let done = st.translators.compile(job);
        st.stats.guest_thread_compile_ns += done.cost_ns;
        shared.publish(&mut st, &mut self.exec, done)
    }

    /// Translates the block at `pc` (just warm) with the baseline translator and
    /// inserts it, with a tier-up counter set to the runs left before tier 1; true if
    /// inserted. Blocks the baseline tier does not handle, and inserts the cache
    /// refuses, stay interpreted (tier 1 reports real failures).
    fn publish_baseline(&mut self, pc: u64, mem: &GuestMemory) -> bool {
        let shared = Arc::clone(&self.shared);
        let (generation, counter) = {
            let mut st = shared.state();
            let counter = st.next_counter;
            st.next_counter = (counter + 1) % BASELINE_COUNTERS as u32;
            (st.generation, counter)
        };
        let Some(baseline) = &mut self.baseline else {
            return false;
        };
        let Some(block) = decode_block(pc, mem) else {
            return false;
        };
        let start = std::time::Instant::now();
        let result = baseline.translate(&block, Some(counter));
        let cost_ns = u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX);
        let mut st = shared.state();
        st.stats.baseline_compile_ns += cost_ns;
        let compiled = match result {
            Ok(c) => c,
            Err(_) => {
                st.stats.baseline_unsupported += 1;
                st.heat.entry(pc).or_default().baseline_refused = true;
                return false;
            }
        };
        if st.generation != generation {
            // Another thread invalidated code while this one translated.
            st.stats.stale_results += 1;
            return false;
        }
        let meta = InsertMeta {
            guest_start: compiled.guest_start,
            guest_end: compiled.guest_end,
            compile_cost: cost_ns.max(1),
        };
        shared.note_published(&mut st, pc);
        match self.exec.insert_with(pc, &compiled.code, meta) {
            Ok(code) => {
                let (addr, size) = (code.as_ptr() as usize, code.size());
                let heat = st.heat.entry(pc).or_default();
                heat.runs = 0;
                // Later translations of this block (after an eviction) double their
                // threshold, as after a tier-1 one.
                heat.translations = heat.translations.saturating_add(1);
                heat.counter = counter;
                heat.tier = Some(CodeTier::Baseline);
                // Handed out round robin: an index shared with an older block only
                // moves when one of the two asks for tier 1.
                if let Some(c) = shared.counters.get(counter as usize) {
                    c.store(shared.config.baseline_runs.max(1), Ordering::Relaxed);
                }
                st.stats.baseline_translations += 1;
                JitShared::write_perf_map(&mut st, addr, size, pc, 0);
                true
            }
            Err(_) => {
                // Tier 1 tries next, and reports a cache that cannot hold it.
                st.heat.entry(pc).or_default().baseline_refused = true;
                false
            }
        }
    }

    /// Inserts every finished background translation.
    fn poll_background(&mut self) {
        if self.shared.in_flight.load(Ordering::Acquire) == 0 {
            return;
        }
        let Some(pool) = &self.shared.pool else {
            return;
        };
        let shared = Arc::clone(&self.shared);
        let mut st = shared.state();
        while shared.in_flight.load(Ordering::Acquire) > 0
            && let Some(done) = pool.try_done(st.received)
        {
            shared.in_flight.fetch_sub(1, Ordering::AcqRel);
            st.received += 1;
            shared.publish(&mut st, &mut self.exec, done);
        }
    }

    /// Publishes a finished translation (or records why not); true if inserted.
    #[cfg(test)]
    fn publish(&mut self, done: Done) -> bool {
        let shared = Arc::clone(&self.shared);
        let mut st = shared.state();
        shared.publish(&mut st, &mut self.exec, done)
    }

    /// Queues tier-2 regions for the hottest tier-1 entries; true if it queued any.
    fn consider_tier2(&mut self, mem: &GuestMemory) -> bool {
        let config = &self.shared.config;
        if config.tier2_threshold == 0 || config.cache.max_memory_bytes < TIER2_MIN_CACHE {
            return false;
        }
        // For the same reason as TIER2_MIN_CACHE, no regions once the cache is half full.
        let (in_use, pending) = self.shared.cache.memory_use();
        if in_use.saturating_add(pending) * 2 > config.cache.max_memory_bytes {
            return false;
        }
        self.exec.flush_hits();
        let threshold = config.tier2_threshold;
        let wanted: Vec<u64> = {
            let hottest = self.shared.cache.hottest(4);
            let mut st = self.shared.state();
            hottest
                .into_iter()
                .filter(|e| e.access_count >= threshold)
                .filter_map(|e| {
                    let heat = st.heat.entry(e.key).or_default();
                    (!heat.tier2).then(|| {
                        heat.tier2 = true;
                        e.key
                    })
                })
                .collect()
        };
        for &key in &wanted {
            self.request(key, Tier::Region, mem);
        }
        !wanted.is_empty()
    }

    /// The blocks of a tier-2 region entered at `pc`: the block there and the blocks
    /// reachable from it by direct branches, jumps and fall-through that are hot
    /// themselves (already past the tier-1 threshold), breadth first.
    fn form_region(&self, pc: u64, mem: &GuestMemory) -> Vec<Vec<(u64, Insn)>> {
        let hot_threshold = self.shared.config.hot_threshold;
        let mut blocks: Vec<Vec<(u64, Insn)>> = Vec::new();
        let mut queue = std::collections::VecDeque::from([pc]);
        let mut insns = 0usize;
        while let Some(at) = queue.pop_front() {
            if blocks.len() >= REGION_BLOCKS || blocks.iter().any(|b| b[0].0 == at) {
                continue;
            }
            let hot = at == pc
                || self
                    .shared
                    .state()
                    .heat
                    .get(&at)
                    .is_some_and(|h| h.translations > 0 || h.runs >= hot_threshold);
            if !hot {
                continue;
            }
            let Some(block) = decode_block(at, mem) else {
                continue;
            };
            if insns + block.len() > REGION_INSNS.min(translate::MAX_BLOCK_INSNS) {
                break;
            }
            insns += block.len();
            let &(last_pc, last) = block.last().unwrap_or(&(at, block[0].1));
            let next = last_pc.wrapping_add(u64::from(last.len));
            match last.op {
                Op::Beq | Op::Bne | Op::Blt | Op::Bge | Op::Bltu | Op::Bgeu => {
                    queue.push_back(last_pc.wrapping_add(last.imm as u64));
                    queue.push_back(next);
                }
                Op::Jal if last.rd == 0 => queue.push_back(last_pc.wrapping_add(last.imm as u64)),
                op if !op.ends_block() => queue.push_back(next),
                _ => {}
            }
            blocks.push(block);
        }
        blocks
    }

    /// Drops translations of guest bytes in `[lo, hi)` (munmap, mprotect,
    /// riscv_flush_icache), for every thread.
    pub fn invalidate_range(&mut self, lo: u64, hi: u64) {
        let mut st = self.shared.state();
        st.generation += 1;
        st.stats.invalidations += 1;
        st.stats.invalidated_entries += self.shared.cache.invalidate_range(lo, hi) as u64;
    }

    /// Drops every translation (fence.i), for every thread.
    pub fn flush(&mut self) {
        let mut st = self.shared.state();
        st.generation += 1;
        st.stats.invalidations += 1;
        self.shared.cache.flush();
    }

    /// The invalidation generation (for tests).
    #[cfg(test)]
    fn generation(&self) -> u64 {
        self.shared.state().generation
    }

    /// A report for `--stats`: the JIT's counters, the cache's, and the hottest
    /// entries with the disassembly of their first instruction.
    /// The configuration this JIT was made with.
    pub fn config(&self) -> &JitConfig {
        &self.shared.config
    }

    pub fn report(&mut self, mem: &GuestMemory) -> JitReport {
        self.exec.flush_hits();
        let cache = self.shared.cache.stats();
        let hottest = cache
            .hottest
            .iter()
            .map(|e| HotBlock {
                pc: e.key,
                hits: e.access_count,
                hotness: e.hotness_score,
                code_bytes: e.code_size,
                guest_start: e.guest_start,
                guest_end: e.guest_end,
                first_insn: match rv64::fetch(mem, e.key).map(rv64::decode) {
                    Ok(Ok(insn)) => crate::dispatch::disasm(&insn, e.key),
                    _ => "(not readable)".to_string(),
                },
            })
            .collect();
        let mut threads = crate::syscall::lock(&self.shared.thread_reports).clone();
        threads.push(self.thread_report());
        threads.sort_by_key(|t| t.tid);
        JitReport {
            jit: self.stats(),
            cache,
            hottest,
            threads,
            store: self.shared.persist.get().map(persist::Persist::report),
        }
    }
}

/// Decodes the basic block at `pc` exactly as the interpreter delimits it; `None` if
/// its first instruction cannot be fetched (the interpreter reports that fault).
fn decode_block(pc: u64, mem: &GuestMemory) -> Option<Vec<(u64, Insn)>> {
    rv64::decode_block(mem, pc).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::{PERM_R, PERM_X};

    const CODE: u64 = 0x10000;
    /// addi a0,a0,1 ; j -4 (an endless counting loop).
    const LOOP: [u32; 2] = [0x0015_0513, 0xffdf_f06f];

    fn setup(config: JitConfig) -> (Jit, GuestMemory, Interpreter, Cpu) {
        let mem = GuestMemory::new().expect("guest memory");
        mem.map(CODE, 0x1000, PERM_R | PERM_X).expect("map code");
        let bytes: Vec<u8> = LOOP.iter().flat_map(|w| w.to_le_bytes()).collect();
        mem.write_bytes_privileged(CODE, &bytes)
            .expect("write code");
        let mut cpu = Cpu::new();
        cpu.pc = CODE;
        (Jit::new(config).expect("jit"), mem, Interpreter::new(), cpu)
    }

    fn on_guest_thread() -> JitConfig {
        JitConfig {
            hot_threshold: 3,
            compile_threads: 0,
            ..JitConfig::default()
        }
    }

    #[test]
    fn a_hot_loop_is_translated_and_runs_with_exact_instret() {
        let (mut jit, mem, mut interp, mut cpu) = setup(on_guest_thread());
        let exit = jit.run(&mut cpu, &mem, &mut interp, 100_000);
        assert_eq!(exit, Exit::Budget);
        assert_eq!(jit.stats().tier1_translations, 1);
        assert!(jit.stats().entries > 0);
        // Every iteration retires two instructions and adds one to a0.
        assert_eq!(cpu.instret, 2 * cpu.x[10]);
        assert!(cpu.instret >= 100_000 && cpu.instret < 100_000 + 2 * MAX_BLOCK as u64);
    }

    #[test]
    fn invalidating_the_guest_range_drops_the_translated_entry() {
        let (mut jit, mem, mut interp, mut cpu) = setup(on_guest_thread());
        jit.run(&mut cpu, &mem, &mut interp, 10_000);
        let before = jit.cache().stats();
        assert_eq!(before.entries, 1);
        assert!(jit.cache().contains(CODE));
        // A range next to the code drops nothing.
        jit.invalidate_range(CODE + 0x100, CODE + 0x200);
        assert_eq!(jit.cache().stats().entries, 1);
        jit.invalidate_range(CODE + 4, CODE + 6);
        let after = jit.cache().stats();
        assert_eq!(after.entries, 0);
        assert_eq!(after.invalidations, before.invalidations + 1);
        assert!(!jit.cache().contains(CODE));
        assert_eq!(jit.stats().invalidated_entries, 1);
        // Still correct afterwards: the loop is interpreted, then translated again.
        let x = cpu.x[10];
        jit.run(&mut cpu, &mem, &mut interp, 10_000);
        assert!(cpu.x[10] > x);
        assert_eq!(cpu.instret, 2 * cpu.x[10]);
        assert_eq!(jit.stats().tier1_translations, 2);
    }

    #[test]
    fn flush_drops_every_entry_and_background_results_decoded_before_it() {
        let (mut jit, mem, mut interp, mut cpu) = setup(on_guest_thread());
        jit.run(&mut cpu, &mem, &mut interp, 10_000);
        assert_eq!(jit.cache().len(), 1);
        jit.flush();
        assert_eq!(jit.cache().len(), 0);
        // A result decoded before an invalidation is never published.
        let generation = jit.generation() - 1;
        let stale = jit.shared.state().translators.compile(Job {
            key: CODE,
            tier: Tier::Quick,
            blocks: vec![decode_block(CODE, &mem).expect("decodes")],
            generation,
            guest_hash: None,
        });
        assert!(!jit.publish(stale));
        assert_eq!(jit.stats().stale_results, 1);
        assert_eq!(jit.cache().len(), 0);
    }

    #[test]
    fn a_cache_too_small_for_any_block_leaves_the_loop_interpreted() {
        let mut config = on_guest_thread();
        config.cache.max_memory_bytes = 64;
        let (mut jit, mem, mut interp, mut cpu) = setup(config);
        assert_eq!(jit.run(&mut cpu, &mem, &mut interp, 10_000), Exit::Budget);
        assert_eq!(jit.stats().tier1_translations, 0);
        assert_eq!(jit.stats().insert_failures, 1);
        assert_eq!(cpu.instret, 2 * cpu.x[10]);
    }

    /// `jal x0, off`.
    fn jump(off: i32) -> u32 {
        let o = off as u32;
        ((o >> 20 & 1) << 31)
            | ((o >> 1 & 0x3ff) << 21)
            | ((o >> 11 & 1) << 20)
            | (o & 0xff000)
            | 0x6f
    }

    #[test]
    fn two_blocks_sharing_an_interpreter_jump_cache_entry_both_get_hot() {
        // Block A at CODE and block B one table's span of pcs above it jump to each
        // other, so they take the same interpreter jump-cache entry (where a block's
        // mark is found) over in turn.
        let b = CODE + 2 * rv64::JUMP_CACHE_ENTRIES as u64;
        let mem = GuestMemory::new().expect("guest memory");
        mem.map(CODE, b + 0x1000 - CODE, PERM_R | PERM_X)
            .expect("map code");
        let a_code = [0x0015_0513, jump((b - CODE - 4) as i32)]; // addi a0,a0,1
        let b_code = [0x0015_8593, jump(-((b + 4 - CODE) as i32))]; // addi a1,a1,1
        for (at, code) in [(CODE, a_code), (b, b_code)] {
            let bytes: Vec<u8> = code.iter().flat_map(|w| w.to_le_bytes()).collect();
            mem.write_bytes_privileged(at, &bytes).expect("write code");
        }
        let mut cpu = Cpu::new();
        cpu.pc = CODE;
        let config = JitConfig {
            baseline_threshold: 0,
            hot_threshold: 10,
            compile_threads: 0,
            ..JitConfig::default()
        };
        let mut jit = Jit::new(config).expect("jit");
        let mut interp = Interpreter::new();
        assert_eq!(jit.run(&mut cpu, &mem, &mut interp, 4000), Exit::Budget);
        assert_eq!(jit.stats().tier1_translations, 2);
        // About ten interpreted runs each before their translation (never, when the
        // two reset each other's count, as a separate direct-mapped counter table
        // once did).
        assert!(jit.stats().interpreted_blocks <= 40, "{:?}", jit.stats());
        assert_eq!(cpu.x[10] + cpu.x[11], cpu.instret / 2);
    }

    #[test]
    fn a_warm_block_runs_as_baseline_code_until_tier_1_replaces_it() {
        let config = JitConfig {
            baseline_threshold: 4,
            baseline_runs: 36,
            compile_threads: 0,
            ..JitConfig::default()
        };
        let (mut jit, mem, mut interp, mut cpu) = setup(config);
        // 3 interpreted runs, the 4th is translated; the loop is one block that jumps
        // to itself, so baseline code chains to itself through the jump cache and
        // leaves for tier 1 after 36 runs of its own.
        assert_eq!(jit.run(&mut cpu, &mem, &mut interp, 60), Exit::Budget);
        assert_eq!(jit.stats().baseline_translations, 1);
        assert_eq!(jit.stats().tier1_translations, 0);
        assert_eq!(jit.stats().interpreted_blocks, 3);
        assert_eq!(cpu.instret, 2 * cpu.x[10]);
        assert_eq!(jit.run(&mut cpu, &mem, &mut interp, 100), Exit::Budget);
        assert_eq!(jit.stats().tier1_translations, 1, "tier 1 after 40 runs");
        assert_eq!(jit.stats().interpreted_blocks, 3);
        assert_eq!(cpu.instret, 2 * cpu.x[10]);
        assert!(cpu.x[10] >= 80);
    }

    #[test]
    fn a_block_whose_baseline_code_was_dropped_goes_to_cranelift_next() {
        let config = JitConfig {
            baseline_threshold: 4,
            baseline_runs: 1000,
            hot_threshold: 10,
            compile_threads: 0,
            ..JitConfig::default()
        };
        let (mut jit, mem, mut interp, mut cpu) = setup(config);
        jit.run(&mut cpu, &mem, &mut interp, 60);
        assert_eq!(jit.stats().baseline_translations, 1);
        jit.invalidate_range(CODE, CODE + 8);
        let before = jit.stats().interpreted_blocks;
        jit.run(&mut cpu, &mem, &mut interp, 200);
        assert_eq!(jit.stats().baseline_translations, 1, "no second baseline");
        assert_eq!(jit.stats().tier1_translations, 1);
        // Threshold 10, doubled for the one earlier translation.
        assert_eq!(jit.stats().interpreted_blocks - before, 19);
        assert_eq!(cpu.instret, 2 * cpu.x[10]);
    }

    #[test]
    fn without_the_baseline_tier_a_block_waits_interpreted_for_tier_1() {
        let config = JitConfig {
            baseline_threshold: 0,
            hot_threshold: 40,
            compile_threads: 0,
            ..JitConfig::default()
        };
        let (mut jit, mem, mut interp, mut cpu) = setup(config);
        assert_eq!(jit.run(&mut cpu, &mem, &mut interp, 200), Exit::Budget);
        assert_eq!(jit.stats().baseline_translations, 0);
        assert_eq!(jit.stats().tier1_translations, 1);
        assert_eq!(jit.stats().interpreted_blocks, 39);
        assert_eq!(cpu.instret, 2 * cpu.x[10]);
    }

    #[test]
    fn background_compilation_publishes_the_loop() {
        let config = JitConfig {
            hot_threshold: 3,
            compile_threads: 2,
            ..JitConfig::default()
        };
        let (mut jit, mem, mut interp, mut cpu) = setup(config);
        let mut rounds = 0;
        while jit.stats().tier1_translations == 0 {
            jit.run(&mut cpu, &mem, &mut interp, 1000);
            std::thread::yield_now();
            rounds += 1;
            assert!(rounds < 10_000_000, "never published");
        }
        jit.run(&mut cpu, &mem, &mut interp, 10_000);
        assert!(jit.stats().entries > 0);
        assert_eq!(cpu.instret, 2 * cpu.x[10]);
    }
}
