//! The `vmjit` command line: a thin layer over `engine` that parses options, loads the
//! program, runs it and turns the outcome into messages and an exit status.
//!
//! **Invariants.** Guest stdout/stderr go straight to fds 1/2 (the engine writes them);
//! vmjit's own output is only on stderr: one-line errors (`vmjit: ...`), the guest's end
//! when it is not a normal exit, a `--crosscheck` divergence report, and `--stats`. The
//! exit status is the guest's; a guest killed by a signal kills vmjit with the same
//! signal (70 after a crosscheck divergence).
//! Bad input ends with exit status 1 and one line; nothing panics.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};

/// Run riscv64 Linux programs (RV64GC; static, or dynamically linked with a riscv64
/// sysroot) on this host, as qemu-riscv64 does, with a JIT backed by a unified code cache.
#[derive(Parser, Debug)]
#[command(
    name = "vmjit",
    version,
    propagate_version = true,
    after_help = "Examples:\n  \
        vmjit run guests/bin/hello a b c         run a guest with three arguments\n  \
        vmjit run -L /usr/riscv64-linux-gnu prog run a dynamically linked program\n  \
        vmjit run --stats guests/bin/coremark    ... and report instructions, blocks, speed\n  \
        vmjit run --trace --max-insns 50 prog    show the first 50 instructions executed\n  \
        vmjit run --strace guests/bin/fileio     show its system calls, as qemu -strace\n  \
        vmjit run --crosscheck guests/bin/intalg check the JIT against the interpreter\n\n\
        See `vmjit run --help` for every option."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run a riscv64 Linux executable.
    ///
    /// The guest gets PROGRAM and ARGS as its argv, vmjit's environment, and vmjit's
    /// standard input, output and error. vmjit exits with the guest's exit status; when
    /// a signal kills the guest, vmjit dies of the same signal, as under qemu-user (a
    /// shell shows 128+N: 139 for a segmentation fault, 132 for an illegal instruction).
    /// Terminal and kill(1) signals sent to vmjit go to the guest. 70 when --crosscheck
    /// found a divergence.
    ///
    /// PROGRAM may be static, static-pie or dynamically linked (gcc's default). A
    /// dynamically linked program's ELF interpreter and shared libraries come from the
    /// riscv64 sysroot: -L DIR, else $VMJIT_LD_PREFIX, else $QEMU_LD_PREFIX, else
    /// /usr/riscv64-linux-gnu when it exists (so with Debian's libc6-riscv64-cross
    /// installed no option is needed).
    #[command(arg_required_else_help = true)]
    Run(RunArgs),

    /// Benchmark: run each benchmark guest under the interpreter, the JIT,
    /// qemu-riscv64 (when installed) and its native x86-64 build (when
    /// guests/build/native/<name> exists; `make -C guests native`), alternating the
    /// engines, and print median times, ratios and geometric means.
    Bench(BenchArgs),

    /// Manage the code store (`vmjit run --code-store`): `stats` lists what it holds,
    /// `clear` empties it, `prune` shrinks it to `--max` bytes (least recently used
    /// entries first).
    Cache(CacheArgs),
}

#[derive(clap::Args, Debug)]
struct CacheArgs {
    #[arg(value_enum)]
    action: CacheAction,

    /// The store's directory (default: $XDG_CACHE_HOME/vmjit or ~/.cache/vmjit).
    #[arg(long, value_name = "DIR")]
    code_store: Option<PathBuf>,

    /// `prune`: the size to shrink the store to (K, M, G suffixes).
    #[arg(long, value_name = "BYTES", value_parser = parse_size, default_value = "256M")]
    max: usize,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum CacheAction {
    Stats,
    Clear,
    Prune,
}

/// `vmjit cache ACTION`: one report line (or a few for `stats`) on stdout.
fn cache_command(args: &CacheArgs) -> anyhow::Result<()> {
    let dir = match &args.code_store {
        Some(d) => d.clone(),
        None => codestore::default_dir().context("no code store directory")?,
    };
    let store = codestore::Store::open(codestore::StoreConfig::new(codestore::Location::Dir(
        dir.clone(),
    )))
    .with_context(|| dir.display().to_string())?;
    match args.action {
        CacheAction::Stats => {
            let s = store.stats().context("cannot read the store")?;
            println!(
                "{}: {} programs, {} packs, {} profiles, {} records, {} bytes",
                dir.display(),
                s.programs,
                s.packs,
                s.profiles,
                s.records,
                s.bytes
            );
            for p in &s.per_program {
                let age = p.last_used.elapsed().map_or(0, |d| d.as_secs());
                println!(
                    "  {}  {} bytes, {} packs{}, last used {age} s ago",
                    p.program,
                    p.bytes,
                    p.packs.len(),
                    if p.has_profile { ", profile" } else { "" }
                );
            }
        }
        CacheAction::Clear => {
            let r = store.clear().context("cannot clear the store")?;
            println!(
                "{}: removed {} files ({} bytes)",
                dir.display(),
                r.files_removed,
                r.bytes_removed
            );
        }
        CacheAction::Prune => {
            let r = store
                .prune(args.max as u64)
                .context("cannot prune the store")?;
            println!(
                "{}: removed {} files ({} bytes), {} bytes left",
                dir.display(),
                r.files_removed,
                r.bytes_removed,
                r.bytes_after
            );
        }
    }
    Ok(())
}

#[derive(clap::Args, Debug)]
struct BenchArgs {
    /// Repetitions per engine (the median is reported).
    #[arg(long, value_name = "N", default_value_t = 3,
          value_parser = clap::value_parser!(u32).range(1..))]
    reps: u32,

    /// Print one JSON document instead of the table.
    #[arg(long)]
    json: bool,

    /// vmjit's guests/ directory (with bin/, expected/ and build/native/).
    #[arg(long, value_name = "DIR", default_value = "guests")]
    guests: PathBuf,

    /// Only these guests (comma separated; default: coremark, bytecode, intalg,
    /// recursion, strmalloc, float, largecode).
    #[arg(long, value_name = "NAMES", value_delimiter = ',')]
    only: Vec<String>,

    /// Thread counts for the thread-scaling benchmark (`parallel`, the same work split
    /// over N guest threads; run when its binary exists and `--only` does not leave it
    /// out). Comma separated; `--threads=` (empty) skips it.
    #[arg(long, value_name = "N,...", default_value = "1,2,4", value_parser = parse_thread_counts)]
    threads: ThreadCounts,

    /// Extra options for the JIT runs, e.g. `--jit-args=--cache-size=64K`
    /// (comma separated).
    #[arg(
        long,
        value_name = "OPTS",
        value_delimiter = ',',
        allow_hyphen_values = true
    )]
    jit_args: Vec<OsString>,
}

#[derive(clap::Args, Debug)]
struct RunArgs {
    /// Execution engine: `jit` translates hot code to native code kept in the unified
    /// code cache (cold code is interpreted); `interp` interprets every instruction.
    #[arg(long, value_enum, default_value_t = Engine::Jit)]
    engine: Engine,

    /// After the run, print instructions retired, basic blocks executed, wall time and
    /// millions of instructions per second to stderr; with the JIT also the code cache's
    /// report (hit rates, translations per tier, evictions, invalidations, compile time,
    /// memory, the 10 hottest blocks with their first instruction). Under the JIT,
    /// "basic blocks executed" counts the blocks the interpreter ran (translated blocks
    /// chain without being counted).
    #[arg(long)]
    stats: bool,

    /// Write the run's figures and the code cache's statistics as JSON to FILE.
    #[arg(long, value_name = "FILE")]
    stats_json: Option<PathBuf>,

    /// JIT: executable memory of the code cache in bytes; K, M and G suffixes
    /// (powers of 1024) are accepted, e.g. 64K or 100M.
    #[arg(long, value_name = "BYTES", value_parser = parse_size, default_value = "100M")]
    cache_size: usize,

    /// JIT: most translated blocks resident in the code cache at once.
    #[arg(long, value_name = "N", default_value_t = 10_000)]
    cache_entries: usize,

    /// JIT: which blocks leave the code cache when it is full.
    #[arg(long, value_enum, value_name = "POLICY", default_value_t = Policy::Generational)]
    cache_policy: Policy,

    /// JIT: interpreted executions of a block that has no baseline code (baseline tier
    /// off, the block has instructions it does not handle, or its baseline code was
    /// evicted) before Cranelift translates it (tier 1).
    #[arg(long, value_name = "N", default_value_t = 50,
          value_parser = clap::value_parser!(u32).range(1..))]
    hot_threshold: u32,

    /// JIT: compile threads (tier 1 and tier 2 compile in the background while the guest
    /// keeps running); 0 compiles on the guest thread.
    #[arg(long, value_name = "N", default_value_t = 1)]
    compile_threads: usize,

    /// JIT: code-cache hits after which a translated block is recompiled, with the hot
    /// blocks it branches to, as one optimised region (tier 2); 0 disables tier 2. Tier 2
    /// also stays off with a cache smaller than 1 MiB or more than half full (regions
    /// would evict the blocks they speed up).
    #[arg(long, value_name = "N", default_value_t = 20_000)]
    tier2_threshold: u64,

    /// JIT: interpreted executions of a block before the baseline tier translates it:
    /// a template translator on the guest thread (microseconds per block, plainer code
    /// than Cranelift's). Only a block's first translation is a baseline one. 0
    /// disables the baseline tier (blocks stay interpreted until tier 1). x86-64 hosts
    /// only.
    #[arg(long, value_name = "N", default_value_t = engine::BASELINE_THRESHOLD)]
    baseline_threshold: u32,

    /// JIT: runs of a block's baseline code before Cranelift translates it (tier 1),
    /// replacing the baseline code.
    #[arg(long, value_name = "N", default_value_t = engine::BASELINE_RUNS,
          value_parser = clap::value_parser!(u32).range(1..))]
    baseline_runs: u32,

    /// JIT: write /tmp/perf-<pid>.map naming every translated block `guest_<pc>_t<tier>`
    /// (t0 baseline, t1 and t2 Cranelift), so `perf record` + `perf report` attribute
    /// host time to guest code.
    #[arg(long)]
    perf_map: bool,

    /// Print every executed instruction (address, encoding, disassembly) to stderr
    /// before it runs. Slow: every instruction is decoded and executed one at a time.
    #[arg(long)]
    trace: bool,

    /// Print every system call of every guest thread to stderr, one line each, as
    /// qemu-riscv64 -strace does: thread id, name, decoded arguments (descriptors,
    /// AT_FDCWD, quoted strings, flags by name, pointers in hex) and result (`-1 errno=N
    /// (message)` for an error), e.g.
    /// `4242 openat(AT_FDCWD,"out",O_WRONLY|O_CREAT|O_TRUNC,0644) = 3`. A line is
    /// written when the call returns; a call that may block (futex wait, sleep, a read
    /// of an empty pipe) also when it starts (`<unfinished ...>`, then
    /// `<... read resumed> = 5`). The guest's output is unchanged.
    #[arg(long)]
    strace: bool,

    /// JIT: where translated code is kept between runs, so that a program's next run
    /// starts warm (its hot code runs translated from its first execution): a
    /// directory, `none` (the default), or `redis://HOST:PORT[/DB]` (a Redis server
    /// shared by a fleet, with the local default directory in front; it needs the key
    /// in VMJIT_STORE_KEY). Stored code runs only if the guest bytes it came from are the
    /// ones mapped now, and only from this build of vmjit on this CPU; records are
    /// MAC'd with VMJIT_STORE_KEY or the store's own key file (mode 0600). Written when
    /// the program ends. `vmjit cache` manages it. `default` is $XDG_CACHE_HOME/vmjit or
    /// ~/.cache/vmjit. Off unless given: warm runs are not yet faster than cold ones.
    #[arg(long, value_name = "DIR|default|none|redis://...")]
    code_store: Option<String>,

    /// JIT: most bytes the code store keeps (K, M, G suffixes); the least recently used
    /// entries go first.
    #[arg(long, value_name = "BYTES", value_parser = parse_size, default_value = "256M")]
    code_store_size: usize,

    /// Stop the guest after N instructions (exit status 124, like timeout(1)).
    #[arg(long, value_name = "N")]
    max_insns: Option<u64>,

    /// Most guest memory in bytes (K, M, G suffixes): the total of its mappings that
    /// are not PROT_NONE. Past it, mmap, mremap and mprotect fail with ENOMEM and brk
    /// keeps the old break, as when Linux runs out of memory; the host's OOM killer
    /// never has to step in. Default: half the host's RAM, at least 1G, at most 16G
    /// (the guest address space).
    #[arg(long, value_name = "BYTES", value_parser = parse_size)]
    max_memory: Option<usize>,

    /// Run the reference interpreter beside the engine as a shadow VM and compare the
    /// two as they go: pc, instret, x and f registers, fcsr and the LR/SC reservation at
    /// every return to the dispatcher; guest memory at every system call (the shadow
    /// takes the call's results from the engine), every 4 Mi instructions
    /// (--crosscheck-memory) and at the end. The first divergence ends the run with a
    /// report on stderr (pc, the code and tier that ran, the registers and memory that
    /// differ) and exit status 70. Slow (the interpreter runs everything once more);
    /// every other option applies as usual.
    #[arg(long, conflicts_with = "trace")]
    crosscheck: bool,

    /// --crosscheck: chained transfers translated code makes before it returns to the
    /// dispatcher to be compared (without --crosscheck, 16384); 0 compares after every
    /// translated block, with chaining off. With --engine interp, N+1 blocks run between
    /// comparisons.
    #[arg(long, value_name = "N", requires = "crosscheck",
          default_value_t = engine::crosscheck::DEFAULT_INTERVAL)]
    crosscheck_interval: u64,

    /// --crosscheck: guest instructions between memory comparisons besides those at
    /// system calls and at the end; 0 compares memory after every step, which locates
    /// a stray store like a register divergence (slow).
    #[arg(long, value_name = "N", requires = "crosscheck",
          default_value_t = engine::crosscheck::MEMORY_PERIOD)]
    crosscheck_memory: u64,

    /// --crosscheck: list every register in the report, not only those that differ.
    #[arg(long, requires = "crosscheck")]
    crosscheck_all_regs: bool,

    /// --crosscheck, for vmjit's own tests: break the primary's translated code entered
    /// at the pc of the first entry that returns at or after instret AFTER; each time
    /// it returns, `reg:N:MASK:AFTER` flips MASK in xN, `mem:ADDR:MASK:AFTER` sets MASK
    /// in the 8 bytes at ADDR (a guest store).
    #[arg(long, hide = true, value_name = "SPEC", requires = "crosscheck",
          value_parser = parse_injection)]
    crosscheck_inject: Option<engine::crosscheck::Injection>,

    /// The sysroot of a riscv64 system (as qemu-riscv64's -L): a dynamically linked
    /// program's ELF interpreter (e.g. /lib/ld-linux-riscv64-lp64d.so.1) and shared
    /// libraries are loaded from it, and every absolute path the guest names is looked
    /// up under DIR first (used when it exists there; never for /proc and /dev).
    /// Default: $VMJIT_LD_PREFIX, else $QEMU_LD_PREFIX, else /usr/riscv64-linux-gnu
    /// when it exists (Debian's libc6-riscv64-cross). `-L /` turns the sysroot off.
    #[arg(short = 'L', long = "sysroot", value_name = "DIR")]
    sysroot: Option<PathBuf>,

    /// The guest's argv[0] instead of PROGRAM as given (qemu-user's -0). A guest's
    /// execve of a riscv64 program runs vmjit again with the same options and this.
    #[arg(long, value_name = "NAME")]
    argv0: Option<OsString>,

    /// Internal: this vmjit runs what a forked guest process exec'd, so it reports no
    /// statistics (--stats and --stats-json are the first process's).
    #[arg(long, hide = true)]
    forked_child: bool,

    /// The riscv64 executable to run (static, static-pie or dynamically linked).
    #[arg(value_name = "PROGRAM")]
    program: PathBuf,

    /// Arguments passed to the guest verbatim (also ones starting with `-`).
    #[arg(
        value_name = "ARGS",
        trailing_var_arg = true,
        allow_hyphen_values = true
    )]
    args: Vec<OsString>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Engine {
    /// The interpreter (reference semantics).
    Interp,
    /// The JIT compiler (Cranelift, unified code cache).
    Jit,
}

/// `--cache-policy` values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Policy {
    /// Value = hotness x compile cost / size, sampled from the cold end.
    Hotness,
    /// Least recently used.
    Lru,
    /// First in, first out.
    Fifo,
    /// Evict everything when full (QEMU's tb_flush).
    Flush,
    /// FIFO nursery + CLOCK hot region (the default).
    Generational,
}

impl From<Policy> for engine::EvictionPolicy {
    fn from(p: Policy) -> Self {
        match p {
            Policy::Hotness => engine::EvictionPolicy::Hotness,
            Policy::Lru => engine::EvictionPolicy::Lru,
            Policy::Fifo => engine::EvictionPolicy::Fifo,
            Policy::Flush => engine::EvictionPolicy::FlushAll,
            Policy::Generational => engine::EvictionPolicy::Generational,
        }
    }
}

/// Parses a byte count with an optional K, M or G suffix (powers of 1024).
fn parse_size(s: &str) -> Result<usize, String> {
    let t = s.trim();
    let (digits, mult) = match t.char_indices().last() {
        Some((i, c)) if c.eq_ignore_ascii_case(&'k') => (&t[..i], 1usize << 10),
        Some((i, c)) if c.eq_ignore_ascii_case(&'m') => (&t[..i], 1 << 20),
        Some((i, c)) if c.eq_ignore_ascii_case(&'g') => (&t[..i], 1 << 30),
        _ => (t, 1),
    };
    let n: usize = digits.parse().map_err(|_| {
        format!("`{s}` is not a size: expected a number of bytes with an optional K, M or G suffix (e.g. 65536, 64K, 100M)")
    })?;
    let bytes = n
        .checked_mul(mult)
        .ok_or_else(|| format!("`{s}` is too large"))?;
    if bytes == 0 {
        return Err("the size must be greater than 0".to_string());
    }
    Ok(bytes)
}

/// Parses `--crosscheck-inject` (`reg:N:MASK:AFTER` or `mem:ADDR:MASK:AFTER`; numbers
/// decimal or 0x hexadecimal).
fn parse_injection(s: &str) -> Result<engine::crosscheck::Injection, String> {
    use engine::crosscheck::Injection;
    let num = |t: &str| match t.strip_prefix("0x") {
        Some(h) => u64::from_str_radix(h, 16),
        None => t.parse(),
    };
    let bad = || format!("`{s}` is not reg:N:MASK:AFTER or mem:ADDR:MASK:AFTER");
    let parts: Vec<&str> = s.split(':').collect();
    let [kind, a, mask, after] = parts[..] else {
        return Err(bad());
    };
    let (a, mask, after) = match (num(a), num(mask), num(after)) {
        (Ok(a), Ok(m), Ok(t)) => (a, m, t),
        _ => return Err(bad()),
    };
    match kind {
        "reg" if (1..32).contains(&a) => Ok(Injection::Register {
            after,
            reg: a as u8,
            mask,
        }),
        "mem" => Ok(Injection::Memory {
            after,
            addr: a,
            mask,
        }),
        _ => Err(bad()),
    }
}

mod bench;
mod stats;

/// `--threads`: thread counts, comma separated; empty for none.
#[derive(Clone, Debug, PartialEq, Eq)]
struct ThreadCounts(Vec<usize>);

fn parse_thread_counts(s: &str) -> Result<ThreadCounts, String> {
    if s.trim().is_empty() {
        return Ok(ThreadCounts(Vec::new()));
    }
    s.split(',')
        .map(|n| match n.trim().parse::<usize>() {
            Ok(v @ 1..=64) => Ok(v),
            _ => Err(format!("{n:?} is not a thread count from 1 to 64")),
        })
        .collect::<Result<Vec<_>, _>>()
        .map(ThreadCounts)
}

fn engine_name(e: Engine) -> &'static str {
    match e {
        Engine::Interp => "interp",
        Engine::Jit => "jit",
    }
}

/// mimalloc instead of glibc malloc: the compile thread allocates the code it returns and
/// frees the decoded blocks it was sent, and glibc took the other thread's arena lock for
/// each such free (1 700 futex calls in a strmalloc run, 50 with mimalloc, which frees
/// into the owner's list without a lock); Cranelift, which allocates a lot, compiled
/// strmalloc's tier-1 blocks in 50 ms instead of 59-63. Transparent huge pages are off
/// (`no_thp`): zeroing 2 MiB pages doubled a trivial run's time.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    // Before anything opens a descriptor: what vmjit was started with is the guest's
    // to inherit, and vmjit's own descriptors go above the guest's range from here on.
    let inherited = engine::host::open_fds();
    // Also inherited, as across an exec: the blocked signals and the ignored ones
    // (but SIGPIPE, which the Rust runtime ignores before `main`).
    let signals = (
        engine::hostproc::thread_mask(),
        engine::hostproc::ignored_signals() & !(1 << (engine::signals::SIGPIPE - 1)),
    );
    engine::sandbox::init();
    let cli = Cli::parse();
    if matches!(cli.command, Command::Run(_)) {
        // Before any thread exists, so that every thread blocks them: the signals a
        // terminal or another process sends vmjit go to the guest.
        engine::host::forward_host_signals();
    }
    let result = match cli.command {
        Command::Run(args) => run(args, &inherited, signals),
        Command::Cache(c) => cache_command(&c).map(|()| ExitCode::SUCCESS),
        Command::Bench(b) => {
            let opts = bench::Options {
                guests_dir: b.guests,
                reps: b.reps as usize,
                only: b.only,
                threads: b.threads.0,
                json: b.json,
                jit_args: b.jit_args,
            };
            bench::run(&opts)
                .map(|()| ExitCode::SUCCESS)
                .map_err(anyhow::Error::msg)
        }
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            // `{:#}` prints the context chain on one line: `<program>: <reason>`.
            say(format_args!("vmjit: {e:#}"));
            ExitCode::from(1)
        }
    }
}

/// Writes one line to vmjit's stderr: the one it started with, whatever the guest did
/// with its own fd 2 (see `engine::host::write_stderr`). A broken stderr (a closed pipe)
/// is ignored: the exit status still tells how the guest ended.
fn say(line: std::fmt::Arguments<'_>) {
    engine::host::write_stderr(format!("{line}\n").as_bytes());
}

/// The options of this `vmjit run` (what lies between `run` and the program, without
/// those that describe one program: `--argv0`, `--forked-child`; and without the
/// sysroot, which the caller adds as resolved), for the runs of the
/// riscv64 programs the guest executes. `guest_args` is how many arguments follow the
/// program.
fn exec_options(guest_args: usize) -> Vec<OsString> {
    let raw: Vec<OsString> = std::env::args_os().collect();
    let Some(run) = raw.iter().position(|a| a == "run") else {
        return Vec::new();
    };
    let end = raw.len().saturating_sub(guest_args + 1).max(run + 1);
    let mut out = Vec::new();
    let mut it = raw[run + 1..end].iter();
    while let Some(a) = it.next() {
        let text = a.to_string_lossy();
        if a == "--argv0" || a == "-L" || a == "--sysroot" {
            it.next();
        } else if a == "--forked-child"
            || a == "--"
            || text.starts_with("--argv0=")
            || text.starts_with("--sysroot=")
            || text.starts_with("-L")
        {
        } else {
            out.push(a.clone());
        }
    }
    out
}

/// The code store `spec` names (`--code-store`; none when absent),
/// for the program at `program`. A store that cannot be opened is a warning and no
/// store; a spec that is not one at all is an error.
fn code_store(
    spec: Option<&str>,
    max_bytes: usize,
    program: &std::path::Path,
) -> anyhow::Result<Option<engine::StoreSettings>> {
    let location = match spec {
        None => return Ok(None),
        Some("default") => {
            codestore::Location::Dir(codestore::default_dir().context("--code-store default")?)
        }
        Some(s) => codestore::Location::parse(s).context("--code-store")?,
    };
    if matches!(location, codestore::Location::None) {
        return Ok(None);
    }
    let Some(id) = engine::program_id(program) else {
        return Ok(None);
    };
    let mut config = codestore::StoreConfig::new(location);
    config.max_bytes = max_bytes as u64;
    let (store, warning) = codestore::Store::open_or_disabled(config);
    if let Some(w) = warning {
        say(format_args!("vmjit: warning: {w}"));
        return Ok(None);
    }
    Ok(Some(engine::StoreSettings { store, program: id }))
}

/// Runs the guest; `Err` is a problem before the guest started (one line, status 1).
fn run(args: RunArgs, inherited: &[i32], signals: (u64, u64)) -> anyhow::Result<ExitCode> {
    let env = engine::host_environment();
    let sysroot = engine::sysroot::Sysroot::from_environment(args.sysroot.as_deref())?;
    // The programs the guest executes get this same sysroot, whatever their
    // environment says.
    let sysroot_option = sysroot
        .as_ref()
        .map_or_else(|| OsString::from("/"), |s| s.path().as_os_str().to_owned());
    let mut vm = engine::Vm::load_full(
        &args.program,
        args.argv0.as_deref(),
        &args.args,
        &env,
        sysroot,
    )
    .with_context(|| args.program.display().to_string())?;
    vm.inherit_fds(inherited);
    vm.set_initial_signals(signals.0, signals.1);
    if args.forked_child {
        vm.set_forked_child();
    }
    if let Ok(vmjit) = std::env::current_exe() {
        vm.set_exec_config(engine::ExecConfig {
            vmjit,
            options: {
                let mut o = exec_options(args.args.len());
                o.push("-L".into());
                o.push(sysroot_option);
                o
            },
        });
    }
    if let Some(bytes) = args.max_memory {
        vm.set_max_memory(bytes as u64);
    }
    vm.set_max_insns(args.max_insns);
    vm.set_trace(args.trace);
    vm.set_strace(args.strace);
    if args.engine == Engine::Jit {
        let config = engine::JitConfig {
            cache: engine::CacheConfig {
                max_memory_bytes: args.cache_size,
                max_entries: args.cache_entries,
                policy: args.cache_policy.into(),
                ..engine::JitConfig::default().cache
            },
            hot_threshold: args.hot_threshold,
            compile_threads: args.compile_threads,
            tier2_threshold: args.tier2_threshold,
            perf_map: args.perf_map,
            baseline_threshold: args.baseline_threshold,
            baseline_runs: args.baseline_runs,
        };
        vm.enable_jit(config).context("cannot start the JIT")?;
        if !args.crosscheck
            && let Some(settings) = code_store(
                args.code_store.as_deref(),
                args.code_store_size,
                &args.program,
            )?
        {
            vm.attach_code_store(settings);
        }
    }
    if args.crosscheck {
        let config = engine::CrosscheckConfig {
            interval: args.crosscheck_interval,
            memory_period: args.crosscheck_memory,
            all_registers: args.crosscheck_all_regs,
            inject: args.crosscheck_inject,
        };
        vm.enable_crosscheck(config)
            .context("cannot start the crosscheck")?;
    }
    let out = vm.run();
    if let Some(d) = vm.divergence() {
        say(format_args!("{}", d.to_string().trim_end()));
    } else if let Some(msg) = out.exit.message() {
        say(format_args!("{msg}"));
    }
    let report_stats = !vm.is_forked_child();
    if report_stats {
        vm.save_code_store();
    }
    let report = vm.jit_report();
    if let Some(path) = args.stats_json.as_ref().filter(|_| report_stats) {
        let json = stats::json(&out, report.as_ref(), engine_name(args.engine));
        if let Err(e) = std::fs::write(path, json) {
            say(format_args!("vmjit: cannot write {}: {e}", path.display()));
        }
    }
    if args.stats && report_stats {
        let secs = out.wall.as_secs_f64();
        let mips = if secs > 0.0 {
            out.instructions as f64 / secs / 1e6
        } else {
            0.0
        };
        say(format_args!(
            "vmjit: instructions retired: {}",
            out.instructions
        ));
        say(format_args!("vmjit: basic blocks executed: {}", out.blocks));
        say(format_args!(
            "vmjit: threads: {} created, at most {} at once",
            out.threads.created, out.threads.peak_live
        ));
        say(format_args!("vmjit: wall time: {secs:.3} s"));
        say(format_args!("vmjit: speed: {mips:.1} M instructions/s"));
        if let Some(r) = &report {
            say(format_args!("{}", stats::text(r).trim_end()));
        }
    }
    if let Some(sig) = out.exit.fatal_signal() {
        // As qemu-user: the guest's death by a signal is vmjit's, for whoever waits.
        engine::host::die_by_signal(sig);
    }
    Ok(ExitCode::from(out.exit.exit_code().clamp(0, 255) as u8))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn bench_thread_counts_parse_and_an_empty_list_skips_the_scaling_run() {
        let threads = |args: &[&str]| {
            let mut v = vec!["vmjit", "bench"];
            v.extend_from_slice(args);
            match Cli::try_parse_from(v).map(|c| c.command) {
                Ok(Command::Bench(b)) => Ok(b.threads.0),
                Ok(_) => panic!("parsed as bench"),
                Err(e) => Err(e.kind()),
            }
        };
        assert_eq!(threads(&[]), Ok(vec![1, 2, 4]));
        assert_eq!(threads(&["--threads="]), Ok(vec![]));
        assert_eq!(threads(&["--threads", "2,8"]), Ok(vec![2, 8]));
        assert!(threads(&["--threads", "0"]).is_err());
        assert!(threads(&["--threads", "1,x"]).is_err());
    }

    #[test]
    fn guest_arguments_starting_with_dashes_are_passed_verbatim() {
        let cli =
            Cli::try_parse_from(["vmjit", "run", "--stats", "prog", "-x", "--trace", "y"]).unwrap();
        let Command::Run(r) = cli.command else {
            panic!("parsed as run");
        };
        assert!(r.stats);
        assert!(!r.trace);
        assert_eq!(r.program, PathBuf::from("prog"));
        assert_eq!(
            r.args,
            vec![OsString::from("-x"), "--trace".into(), "y".into()]
        );
    }
}
