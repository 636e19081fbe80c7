//! Developer tool: the compile cost of real guest blocks. Translates the blocks starting
//! at the given pcs of a RISC-V ELF file at tier 1 (quick, chained, the engine's
//! configuration), several rounds, and prints the median time per block and the code size.
//!
//! The pcs of the blocks a run translated can be taken from `vmjit run --perf-map`:
//! `grep -o 'guest_[0-9a-f]*_t1' /tmp/perf-PID.map | cut -d_ -f2 > pcs`, then
//! `cargo run --release -p translate --example compile_cost -- ELF pcs [ROUNDS] [--by-length] [--baseline]`
//! (`--baseline`: the baseline translator instead of Cranelift tier 1; blocks it does
//! not support are skipped).

use std::error::Error;
use std::time::Instant;

use object::{Object, ObjectSegment};
use rv64::testmem::FlatMemory;
use translate::{OptLevel, Translator, TranslatorConfig};

fn main() -> Result<(), Box<dyn Error>> {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let by_length = args.iter().any(|a| a == "--by-length");
    let baseline = args.iter().any(|a| a == "--baseline");
    args.retain(|a| a != "--by-length" && a != "--baseline");
    if args.len() < 2 {
        return Err("usage: compile_cost ELF PCS_FILE [ROUNDS] [--by-length]".into());
    }
    let bytes = std::fs::read(&args[0])?;
    let elf = object::File::parse(&*bytes)?;
    let lo = elf
        .segments()
        .map(|s| s.address())
        .min()
        .ok_or("no segments")?;
    let hi = elf
        .segments()
        .map(|s| s.address() + s.size())
        .max()
        .ok_or("no segments")?;
    let mut mem = FlatMemory::new(lo, (hi - lo) as usize);
    for s in elf.segments() {
        mem.write_bytes(s.address(), s.data()?);
    }
    let mut blocks = Vec::new();
    for line in std::fs::read_to_string(&args[1])?.lines() {
        let pc = u64::from_str_radix(line.trim().trim_start_matches("0x"), 16)?;
        blocks.push(rv64::decode_block(&mem, pc).map_err(|e| format!("{pc:#x}: {e:?}"))?);
    }
    let rounds: usize = args.get(2).map(|s| s.parse()).transpose()?.unwrap_or(5);
    let mut t = Translator::with_config(TranslatorConfig {
        opt: OptLevel::Quick,
        chain: true,
        jump_cache: Some(translate::JumpCacheShape {
            shift: 1,
            len: 4096,
        }),
        guest_size: Some(1 << 34),
        // The engine's permission table, right below guest memory.
        perms_offset: Some(-(4 << 20) - 4096),
    })?;
    let mut bl = translate::Baseline::new(translate::BaselineConfig {
        jump_cache: translate::JumpCacheShape {
            shift: 1,
            len: 4096,
        },
        guest_size: Some(1 << 34),
        perms_offset: Some(-(4 << 20) - 4096),
    })?;
    if baseline {
        blocks.retain(|b| b.iter().all(|(_, i)| translate::Baseline::supports(i.op)));
    }
    let mut translate = |b: &[(u64, rv64::Insn)]| -> Result<usize, translate::TranslateError> {
        Ok(if baseline {
            bl.translate(b, Some(7))?.code.len()
        } else {
            t.translate(b)?.code.len()
        })
    };
    let insns: usize = blocks.iter().map(|b| b.len()).sum();
    let mut times = Vec::new();
    let mut bytes = 0;
    for _ in 0..rounds {
        let start = Instant::now();
        bytes = 0;
        for b in &blocks {
            bytes += translate(b)?;
        }
        times.push(start.elapsed().as_secs_f64());
    }
    times.sort_by(f64::total_cmp);
    let median = times[times.len() / 2];
    println!(
        "{} blocks, {insns} guest insns: median of {rounds} rounds {:.1} ms, {:.1} us/block, {:.2} us/insn; {bytes} host bytes ({:.1}/guest insn)",
        blocks.len(),
        median * 1e3,
        median * 1e6 / blocks.len() as f64,
        median * 1e6 / insns as f64,
        bytes as f64 / insns as f64
    );
    if by_length {
        // Mean time per block by block length (12 = 12 or more): the fixed cost of a
        // translation against its cost per instruction.
        let mut by_len: std::collections::BTreeMap<usize, (usize, f64, usize)> = Default::default();
        for b in &blocks {
            let start = Instant::now();
            let mut size = 0;
            for _ in 0..rounds {
                size = translate(b)?;
            }
            let e = by_len.entry(b.len().min(12)).or_default();
            e.0 += 1;
            e.1 += start.elapsed().as_secs_f64() / rounds as f64;
            e.2 += size;
        }
        for (len, (n, secs, size)) in by_len {
            println!(
                "length {len:2}: {n:4} blocks, {:.1} us/block, {} host bytes/block",
                secs * 1e6 / n as f64,
                size / n
            );
        }
    }
    Ok(())
}
