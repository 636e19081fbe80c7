//! Running a differential test's seeds, in one of three modes chosen by the environment:
//!
//! - default (what `cargo test` and CI run): the tier's regression seeds, then a short
//!   fixed slice of seeds, on the test's thread; the first divergence fails the test
//!   with its seed and replay command.
//! - `VMJIT_DIFF_LONG=1`: the regression seeds and 1 000 000 seeds per tier, on
//!   `VMJIT_DIFF_THREADS` threads (default: every core), each with its own translators.
//!   Progress goes to stderr; every divergence (or panic) is printed with its seed when
//!   it happens and the run carries on; at the end a summary line per tier (sequences,
//!   guest instructions, exits by kind, events, divergences, coverage, wall time), and
//!   the test fails listing every failing seed with its replay command, or if the run
//!   missed anything its tier's [`Expect`] asks for. Long tiers of one test binary run
//!   one at a time.
//! - `VMJIT_DIFF_SEED=<n>`: that seed only, as in the default mode (replay).
//!
//! `VMJIT_DIFF_COUNT=<n>` sets the number of seeds in either mode, and
//! `VMJIT_DIFF_FIRST=<n>` starts the seeds `n` after the tier's first (to go on past an
//! earlier long run).
//!
//! If translated code crashes the process (in either mode), a signal handler first
//! prints the seed each test thread was running, with its replay command.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::coverage::{Coverage, Expect};

/// Sequences per tier in the long mode.
pub const LONG_COUNT: u64 = 1_000_000;

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|s| s.trim().parse().ok())
}

/// The mode and sizes the environment asks for.
#[derive(Clone, Copy, Debug)]
pub struct Settings {
    pub long: bool,
    pub count: Option<u64>,
    pub first: u64,
    pub seed: Option<u64>,
    pub threads: usize,
}

impl Settings {
    pub fn from_env() -> Settings {
        let long = std::env::var("VMJIT_DIFF_LONG")
            .map(|v| !matches!(v.trim(), "" | "0"))
            .unwrap_or(false);
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        Settings {
            long,
            count: env_u64("VMJIT_DIFF_COUNT"),
            first: env_u64("VMJIT_DIFF_FIRST").unwrap_or(0),
            seed: env_u64("VMJIT_DIFF_SEED"),
            threads: env_u64("VMJIT_DIFF_THREADS").map_or(cores, |n| n.max(1) as usize),
        }
    }

    /// Whether a test runs its sequences in the long mode (not when replaying a seed).
    pub fn is_long(&self) -> bool {
        self.long && self.seed.is_none()
    }
}

/// A differential test over seeds.
pub struct Tier {
    /// Name in summaries.
    pub name: &'static str,
    /// The test binary (`--test <test>`) and function, for replay commands.
    pub test: &'static str,
    pub function: &'static str,
    /// The first seed and the number of seeds of the default slice.
    pub first: u64,
    pub count: u64,
    /// Seeds that once failed: run first, in every mode.
    pub regressions: &'static [u64],
}

impl Tier {
    pub fn replay(&self, seed: u64) -> String {
        format!(
            "VMJIT_DIFF_SEED={seed} cargo test -p translate --release --test {} {} -- --nocapture",
            self.test, self.function
        )
    }
}

/// What a run of seeds did.
#[derive(Clone, Debug, Default)]
pub struct Tally {
    pub sequences: u64,
    /// Guest instructions the reference retired.
    pub insns: u64,
    /// Sequences by how their reference run ended.
    pub exits: BTreeMap<&'static str, u64>,
    /// Tier-specific counts (slow-path exits, chained transfers, ...).
    pub events: BTreeMap<&'static str, u64>,
    pub cov: Coverage,
    /// Failing seeds and what failed.
    pub failures: Vec<(u64, String)>,
}

impl Tally {
    pub fn exit(&mut self, kind: &'static str) {
        *self.exits.entry(kind).or_default() += 1;
    }

    pub fn event(&mut self, name: &'static str, n: u64) {
        if n > 0 {
            *self.events.entry(name).or_default() += n;
        }
    }

    pub fn merge(&mut self, o: Tally) {
        self.sequences += o.sequences;
        self.insns += o.insns;
        for (k, v) in o.exits {
            *self.exits.entry(k).or_default() += v;
        }
        for (k, v) in o.events {
            *self.events.entry(k).or_default() += v;
        }
        self.cov.merge(&o.cov);
        self.failures.extend(o.failures);
    }

    /// One line: sequences, instructions, exits, events, divergences.
    pub fn line(&self, name: &str) -> String {
        let join = |m: &BTreeMap<&str, u64>| {
            m.iter()
                .map(|(k, v)| format!("{k} {v}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        format!(
            "[diff] {name}: {} sequences, {} guest instructions; exits: {}; events: {}; \
             divergences {}",
            self.sequences,
            self.insns,
            join(&self.exits),
            join(&self.events),
            self.failures.len()
        )
    }
}

/// Long runs of one test binary take turns: each uses every core.
static LONG: Mutex<()> = Mutex::new(());

/// A bug in translated code may take the whole process down (a wild access outside
/// guest memory, a bad jump) before any check runs: then a fatal-signal handler names
/// the seeds the threads were running, so both modes report those too.
mod crash {
    use std::sync::OnceLock;
    use std::sync::atomic::{AtomicPtr, AtomicU64, AtomicUsize, Ordering};

    /// What a report line says around the seed: `before`, seed, `middle`, seed, `after`.
    pub struct Report {
        pub before: String,
        pub middle: String,
        pub after: String,
    }

    /// Threads whose seeds are reported.
    const SLOTS: usize = 64;
    /// Per slot: the seed its thread is running (`u64::MAX`: none) and how to report it
    /// (leaked, so valid in the handler).
    static SEEDS: [AtomicU64; SLOTS] = [const { AtomicU64::new(u64::MAX) }; SLOTS];
    static REPORTS: [AtomicPtr<Report>; SLOTS] =
        [const { AtomicPtr::new(std::ptr::null_mut()) }; SLOTS];
    static NEXT: AtomicUsize = AtomicUsize::new(0);

    const SIGNALS: [libc::c_int; 4] = [libc::SIGSEGV, libc::SIGBUS, libc::SIGILL, libc::SIGFPE];
    /// The handlers before ours, put back by ours once it has reported.
    static OLD: OnceLock<[libc::sigaction; 4]> = OnceLock::new();

    fn write(bytes: &[u8]) {
        // SAFETY: write(2) on stderr from a valid buffer; async-signal-safe.
        unsafe { libc::write(2, bytes.as_ptr().cast(), bytes.len()) };
    }

    extern "C" fn on_fatal(_sig: libc::c_int) {
        for (seed, report) in SEEDS.iter().zip(&REPORTS) {
            let (seed, report) = (seed.load(Ordering::Relaxed), report.load(Ordering::Relaxed));
            if seed == u64::MAX || report.is_null() {
                continue;
            }
            // SAFETY: non-null reports are leaked boxes, never freed.
            let report = unsafe { &*report };
            let mut digits = [0u8; 20];
            let mut at = digits.len();
            let mut v = seed;
            loop {
                at -= 1;
                digits[at] = b'0' + (v % 10) as u8;
                v /= 10;
                if v == 0 {
                    break;
                }
            }
            write(report.before.as_bytes());
            write(&digits[at..]);
            write(report.middle.as_bytes());
            write(&digits[at..]);
            write(report.after.as_bytes());
        }
        // The faulting instruction runs again under the previous handler (Rust's stack
        // overflow report, or the default action).
        if let Some(old) = OLD.get() {
            for (sig, old) in SIGNALS.iter().zip(old) {
                // SAFETY: sigaction is async-signal-safe; `old` was saved by `install`.
                unsafe { libc::sigaction(*sig, old, std::ptr::null_mut()) };
            }
        }
    }

    fn install() {
        OLD.get_or_init(|| {
            // SAFETY: `sigaction` is plain data for which all zeroes is a valid value.
            let mut old: [libc::sigaction; 4] = unsafe { std::mem::zeroed() };
            for (sig, old) in SIGNALS.iter().zip(old.iter_mut()) {
                // SAFETY: as above.
                let mut sa: libc::sigaction = unsafe { std::mem::zeroed() };
                sa.sa_sigaction = on_fatal as *const () as usize;
                // SAFETY: `sa` is initialised and its mask emptied here; the handler only
                // does atomic loads, write(2) and sigaction(2).
                unsafe {
                    libc::sigemptyset(&mut sa.sa_mask);
                    libc::sigaction(*sig, &sa, old);
                }
            }
            old
        });
    }

    /// A thread's entry in the report; cleared when dropped.
    pub struct Slot(usize);

    impl Slot {
        pub fn claim(report: Report) -> Slot {
            install();
            let k = NEXT.fetch_add(1, Ordering::Relaxed) % SLOTS;
            REPORTS[k].store(Box::into_raw(Box::new(report)), Ordering::Relaxed);
            Slot(k)
        }

        pub fn running(&self, seed: u64) {
            SEEDS[self.0].store(seed, Ordering::Relaxed);
        }
    }

    impl Drop for Slot {
        fn drop(&mut self) {
            SEEDS[self.0].store(u64::MAX, Ordering::Relaxed);
        }
    }
}

impl Tier {
    fn crash_slot(&self) -> crash::Slot {
        crash::Slot::claim(crash::Report {
            before: format!(
                "[diff] {}: FATAL SIGNAL; a thread was running seed ",
                self.name
            ),
            middle: " (replay: VMJIT_DIFF_SEED=".to_string(),
            after: format!(
                " cargo test -p translate --release --test {} {} -- --nocapture)\n",
                self.test, self.function
            ),
        })
    }
}

/// Failures printed in full; later ones are listed by seed only.
const PRINTED: usize = 20;

fn panic_text(p: Box<dyn std::any::Any + Send>) -> String {
    p.downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "panic".to_string())
}

/// The seeds a run takes, in order: the regression seeds, then the slice (the default
/// one, or the long mode's); only the given seed when replaying.
pub fn seeds(tier: &Tier, set: &Settings) -> Vec<u64> {
    if let Some(seed) = set.seed {
        return vec![seed];
    }
    let first = tier.first + set.first;
    let default = if set.long { LONG_COUNT } else { tier.count };
    let n = set.count.unwrap_or(default);
    tier.regressions
        .iter()
        .copied()
        .chain(first..first + n)
        .collect()
}

/// Runs `one(state, seed, tally)` for the tier's seeds as the environment says (see the
/// module documentation); `init` makes one state (translators) per thread. `one`
/// returns the differences it found, if any. Returns the tally (the default mode has
/// already failed on the first divergence).
pub fn run<S>(
    tier: &Tier,
    want: &Expect,
    init: impl Fn() -> S + Sync,
    one: impl Fn(&mut S, u64, &mut Tally) -> Result<(), String> + Sync,
) -> Tally {
    let set = Settings::from_env();
    let seeds = seeds(tier, &set);
    if !set.is_long() {
        let slot = tier.crash_slot();
        let mut state = init();
        let mut tally = Tally::default();
        for seed in seeds {
            slot.running(seed);
            if let Err(d) = one(&mut state, seed, &mut tally) {
                panic!(
                    "{}: seed {seed} (replay: {}): {d}",
                    tier.name,
                    tier.replay(seed)
                );
            }
            tally.sequences += 1;
        }
        eprintln!("{}", tally.line(tier.name));
        return tally;
    }

    let _turn = LONG.lock().unwrap_or_else(|p| p.into_inner());
    super::arena::keep_freed_memory();
    let first = tier.first + set.first;
    let total = seeds.len() as u64;
    let next = AtomicU64::new(0);
    let done = AtomicU64::new(0);
    let failed = AtomicU64::new(0);
    let print = Mutex::new(());
    let start = Instant::now();
    eprintln!(
        "[diff] {}: long mode, {total} seeds ({} regressions, then {first}..{}) on {} threads",
        tier.name,
        tier.regressions.len(),
        first + total - tier.regressions.len() as u64,
        set.threads
    );
    let work = || {
        let slot = tier.crash_slot();
        let mut state = init();
        let mut tally = Tally::default();
        loop {
            const CHUNK: u64 = 64;
            let at = next.fetch_add(CHUNK, Ordering::Relaxed);
            if at >= total {
                break;
            }
            for &seed in &seeds[at as usize..(at + CHUNK).min(total) as usize] {
                slot.running(seed);
                let r = catch_unwind(AssertUnwindSafe(|| one(&mut state, seed, &mut tally)));
                let failure = match r {
                    Ok(Ok(())) => None,
                    Ok(Err(d)) => Some(d),
                    Err(p) => {
                        // The state may be half-updated: start afresh.
                        state = init();
                        Some(format!("panicked: {}", panic_text(p)))
                    }
                };
                tally.sequences += 1;
                if let Some(d) = failure {
                    let n = failed.fetch_add(1, Ordering::Relaxed) as usize;
                    let _g = print.lock().unwrap_or_else(|p| p.into_inner());
                    if n < PRINTED {
                        eprintln!(
                            "[diff] {}: DIVERGENCE seed {seed} (replay: {})\n{d}",
                            tier.name,
                            tier.replay(seed)
                        );
                    } else {
                        eprintln!("[diff] {}: DIVERGENCE seed {seed}", tier.name);
                    }
                    tally.failures.push((seed, d));
                }
                done.fetch_add(1, Ordering::Relaxed);
            }
        }
        tally
    };
    let mut tally = Tally::default();
    std::thread::scope(|sc| {
        let handles: Vec<_> = (0..set.threads).map(|_| sc.spawn(work)).collect();
        let mut last = Instant::now();
        while !handles.iter().all(|h| h.is_finished()) {
            std::thread::sleep(Duration::from_millis(200));
            if last.elapsed() >= Duration::from_secs(30) {
                last = Instant::now();
                let d = done.load(Ordering::Relaxed);
                eprintln!(
                    "[diff] {}: {d}/{total} ({:.1} %), {} divergences, {:.0} s",
                    tier.name,
                    100.0 * d as f64 / total as f64,
                    failed.load(Ordering::Relaxed),
                    start.elapsed().as_secs_f64()
                );
            }
        }
        for h in handles {
            match h.join() {
                Ok(t) => tally.merge(t),
                Err(p) => std::panic::resume_unwind(p),
            }
        }
    });
    let secs = start.elapsed().as_secs_f64();
    let missing = tally.cov.missing(want);
    eprintln!(
        "{} in {secs:.1} s on {} threads\n[diff] {}: coverage: {}",
        tally.line(tier.name),
        set.threads,
        tier.name,
        tally.cov.summary(want)
    );
    let mut report = String::new();
    if !tally.failures.is_empty() {
        tally.failures.sort_by_key(|f| f.0);
        let _ = writeln!(
            report,
            "{}: {} failing seeds:",
            tier.name,
            tally.failures.len()
        );
        for (seed, _) in &tally.failures {
            let _ = writeln!(report, "  {seed}: {}", tier.replay(*seed));
        }
    }
    for kind in want.exits {
        if !tally.exits.contains_key(kind) {
            let _ = writeln!(report, "no sequence ended with {kind}");
        }
    }
    if !missing.is_empty() {
        let _ = writeln!(report, "{}: not covered: {}", tier.name, missing.join("; "));
    }
    assert!(report.is_empty(), "{report}");
    tally
}

/// Fails with every item of `want` the tally's coverage lacks (for the coverage tests of
/// the default mode).
pub fn assert_covers(tally: &Tally, want: &Expect, what: &str) {
    let mut missing = tally.cov.missing(want);
    for kind in want.exits {
        if !tally.exits.contains_key(kind) {
            missing.push(format!("no sequence ended with {kind}"));
        }
    }
    eprintln!("[diff] {what}: coverage: {}", tally.cov.summary(want));
    assert!(
        missing.is_empty(),
        "{what}: the generator never produced: {}",
        missing.join("; ")
    );
}
