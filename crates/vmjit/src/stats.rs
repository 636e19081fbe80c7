//! `--stats` text and `--stats-json` output: the run's figures plus, with the JIT, the
//! engine's [`engine::JitReport`] (JIT counters, code-cache statistics, hottest blocks).

use std::fmt::Write as _;

use engine::{JitReport, RunOutcome};

/// The JIT part of `--stats` (lines start with `vmjit: ` like the rest).
pub fn text(r: &JitReport) -> String {
    let mut s = String::new();
    let c = &r.cache;
    let j = &r.jit;
    let lookups = c.l1_hits + c.index_hits + c.misses;
    let pct = |n: u64| {
        if lookups == 0 {
            0.0
        } else {
            n as f64 * 100.0 / lookups as f64
        }
    };
    let _ = writeln!(
        s,
        "vmjit: code cache lookups: {lookups} ({:.2} % L1 jump cache, {:.2} % shared index, {:.2} % miss)",
        pct(c.l1_hits),
        pct(c.index_hits),
        pct(c.misses)
    );
    let _ = writeln!(
        s,
        "vmjit: translated-code entries from the dispatcher: {}; interpreted blocks: {}; memory slow paths: {}",
        j.entries, j.interpreted_blocks, j.slow_paths
    );
    let _ = writeln!(
        s,
        "vmjit: translations: baseline {} (not supported {}), tier 1 {}, tier 2 {} regions ({} blocks); kept interpreted (helper-heavy) {}, failed {}, refused by the cache {}, stale {}",
        j.baseline_translations,
        j.baseline_unsupported,
        j.tier1_translations,
        j.tier2_translations,
        j.tier2_blocks,
        j.helper_heavy_blocks,
        j.translate_failures,
        j.insert_failures,
        j.stale_results
    );
    let _ = writeln!(
        s,
        "vmjit: compile time: {:.3} s total (tier 1 {:.3} s, tier 2 {:.3} s), {:.3} s on the guest thread; baseline {:.4} s",
        j.compile_ns as f64 / 1e9,
        j.compile_ns.saturating_sub(j.tier2_compile_ns) as f64 / 1e9,
        j.tier2_compile_ns as f64 / 1e9,
        j.guest_thread_compile_ns as f64 / 1e9,
        j.baseline_compile_ns as f64 / 1e9
    );
    if let Some(st) = &r.store {
        let _ = writeln!(
            s,
            "vmjit: code store {}: {} translations loaded ({} ran after their guest bytes matched, {} stale), {} records rejected, {} profile pcs precompiled, {} translations written; load {:.4} s, validation {:.4} s, save {:.4} s",
            st.location,
            st.loaded,
            st.validated,
            st.stale,
            st.rejected_records,
            st.precompiled,
            st.written,
            st.load_ns as f64 / 1e9,
            st.validate_ns as f64 / 1e9,
            st.save_ns as f64 / 1e9
        );
    }
    let e = &c.evictions;
    let _ = writeln!(
        s,
        "vmjit: evictions: {} entry limit, {} memory limit, {} fragmentation, {} flushed; invalidations: {} requests, {} entries",
        e.entries_limit,
        e.memory_limit,
        e.fragmentation,
        e.flushed,
        j.invalidations,
        c.invalidations
    );
    let _ = writeln!(
        s,
        "vmjit: code memory: {} bytes in use, peak {}, capacity {}; {} entries",
        c.bytes_in_use, c.peak_bytes_in_use, c.capacity_bytes, c.entries
    );
    if !r.hottest.is_empty() {
        let _ = writeln!(s, "vmjit: hottest blocks:");
        for h in &r.hottest {
            let _ = writeln!(
                s,
                "vmjit:   {:#10x} {:>12} hits  {:>6} bytes  [{:#x}, {:#x})  {}",
                h.pc, h.hits, h.code_bytes, h.guest_start, h.guest_end, h.first_insn
            );
        }
    }
    s.push_str(
        &c.report()
            .lines()
            .map(|l| format!("vmjit: {l}\n"))
            .collect::<String>(),
    );
    s
}

#[derive(serde::Serialize)]
struct Json<'a> {
    engine: &'a str,
    exit_code: i32,
    instructions: u64,
    blocks: u64,
    wall_seconds: f64,
    threads: engine::threads::ThreadStats,
    jit: Option<&'a JitReport>,
}

/// The `--stats-json` document.
pub fn json(out: &RunOutcome, report: Option<&JitReport>, engine: &str) -> String {
    let doc = Json {
        engine,
        exit_code: out.exit.exit_code(),
        instructions: out.instructions,
        blocks: out.blocks,
        wall_seconds: out.wall.as_secs_f64(),
        threads: out.threads,
        jit: report,
    };
    serde_json::to_string_pretty(&doc).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
}
