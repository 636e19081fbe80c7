//! Developer tool: translates the guest code at a given address of a RISC-V ELF file and
//! writes the host code to a file, for reading with
//! `objdump -D -b binary -m i386:x86-64 FILE`.
//!
//! `cargo run --release -p translate --example dump_block -- ELF tier1|tier2|baseline|region OUT PC [PC...]`
//! (tier1: chained quick block, tier2: chained optimised block, baseline: the template
//! tier's code with a tier-up counter, region: an optimised
//! region of the blocks starting at the listed pcs, the first being the entry).

use std::error::Error;

use object::{Object, ObjectSegment};
use rv64::testmem::FlatMemory;
use translate::{OptLevel, Translator, TranslatorConfig};

fn parse(s: &str) -> Result<u64, Box<dyn Error>> {
    Ok(u64::from_str_radix(s.trim_start_matches("0x"), 16)?)
}

fn main() -> Result<(), Box<dyn Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 4 {
        return Err("usage: dump_block ELF tier1|tier2|baseline|region OUT PC [PC...]".into());
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
    let pcs = args[3..]
        .iter()
        .map(|s| parse(s))
        .collect::<Result<Vec<_>, _>>()?;
    let blocks = pcs
        .iter()
        .map(|&pc| rv64::decode_block(&mem, pc).map_err(|e| format!("{e:?}")))
        .collect::<Result<Vec<_>, _>>()?;
    let opt = if args[1] == "tier1" {
        OptLevel::Quick
    } else {
        OptLevel::Speed
    };
    let mut t = Translator::with_config(TranslatorConfig {
        opt,
        chain: true,
        // The engine's default jump cache (4096 entries, key shift 1).
        jump_cache: Some(translate::JumpCacheShape {
            shift: 1,
            len: 4096,
        }),
        // The engine's guest space (16 GiB).
        guest_size: Some(1 << 34),
        // The engine's permission table, right below guest memory.
        perms_offset: Some(-(4 << 20) - 4096),
    })?;
    let compiled = if args[1] == "baseline" {
        translate::Baseline::new(translate::BaselineConfig {
            jump_cache: translate::JumpCacheShape {
                shift: 1,
                len: 4096,
            },
            guest_size: Some(1 << 34),
            perms_offset: Some(-(4 << 20) - 4096),
        })?
        .translate(&blocks[0], Some(0))?
    } else if args[1] == "region" {
        let refs: Vec<&[(u64, rv64::Insn)]> = blocks.iter().map(|b| b.as_slice()).collect();
        t.translate_region(&refs)?
    } else {
        t.translate(&blocks[0])?
    };
    std::fs::write(&args[2], &compiled.code)?;
    for b in &blocks {
        for (pc, i) in b {
            println!("{pc:#x}: {}", i.display_at(*pc));
        }
    }
    println!(
        "{} guest instructions -> {} host bytes",
        compiled.insns,
        compiled.code.len()
    );
    Ok(())
}
