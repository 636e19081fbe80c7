//! Measures the translator: compile time per block and code size per guest
//! instruction at both tiers over random blocks, and the speed of one hot integer
//! block run through the JIT against `rv64::Interpreter`.
//!
//! Run: `cargo run --release -p translate --example jit_speed`

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::Instant;

use common::*;
use rv64::{Cpu, Insn, Interpreter};
use translate::exec_mem::ExecBuf;
use translate::helpers::{FLAT_HELPERS, GuestView};
use translate::{JitContext, OptLevel, Translator, TranslatorConfig};

fn main() {
    let blocks: Vec<Vec<(u64, Insn)>> = (0..2000)
        .map(|s| random_block(&mut Rng::new(s), 20))
        .collect();
    let guest_insns: usize = blocks.iter().map(|b| b.len()).sum();
    for opt in [OptLevel::Quick, OptLevel::Speed] {
        let mut tr = translator(opt);
        let t = Instant::now();
        let mut bytes = 0usize;
        for b in &blocks {
            bytes += tr.translate(b).expect("translate").code.len();
        }
        let dt = t.elapsed();
        println!(
            "{opt:?}: {} blocks ({guest_insns} guest insns) in {:.1} ms: {:.1} us/block, {:.2} us/insn, {:.1} host bytes/guest insn",
            blocks.len(),
            dt.as_secs_f64() * 1e3,
            dt.as_secs_f64() * 1e6 / blocks.len() as f64,
            dt.as_secs_f64() * 1e6 / guest_insns as f64,
            bytes as f64 / guest_insns as f64
        );
    }

    // A hot loop body: integer arithmetic, a load and a store, a backward branch to
    // itself (x5 counts down).
    let code_at = 0xe000u64; // the read+write+execute test page
    let words = [
        i(8, 10, 3, 11, 0x03),        // ld x11, 8(x10)
        r(0, 11, 12, 0, 12, 0x33),    // add x12, x12, x11
        r(1, 12, 13, 0, 13, 0x33),    // mul x13, x13, x12
        i(3, 12, 1, 14, 0x13),        // slli x14, x12, 3
        r(0, 14, 13, 4, 13, 0x33),    // xor x13, x13, x14
        r(0x20, 11, 13, 0, 15, 0x3b), // subw x15, x13, x11
        s(16, 15, 10, 3, 0x23),       // sd x15, 16(x10)
        i(1, 16, 0, 16, 0x13),        // addi x16, x16, 1
        r(0, 16, 15, 5, 17, 0x33),    // srl x17, x15, x16
        i(-1, 5, 0, 5, 0x13),         // addi x5, x5, -1
        b(-40, 0, 5, 1),              // bne x5, x0, -40
    ];
    let mut mem = vec![0u8; GUEST_SIZE];
    for (k, w) in words.iter().enumerate() {
        mem[code_at as usize + 4 * k..][..4].copy_from_slice(&w.to_le_bytes());
    }
    let perms = test_perms();
    let iters = 2_000_000u64;
    let mut cpu = Cpu::new();
    cpu.x[5] = iters;
    cpu.x[10] = 0x2000;
    cpu.pc = code_at;

    let mut icpu = cpu.clone();
    let mut imem = mem.clone();
    let t = Instant::now();
    {
        let mut view = GuestView::new(&mut imem, &perms);
        let mut interp = Interpreter::new();
        while icpu.pc == code_at {
            interp
                .run_block(&mut icpu, &mut view)
                .expect("interpreter block");
        }
    }
    let t_int = t.elapsed();

    let block = layout_at(code_at, &words);
    for opt in [OptLevel::Quick, OptLevel::Speed] {
        let mut tr = translator(opt);
        let t = Instant::now();
        for _ in 0..1000 {
            tr.translate(&block).expect("translate");
        }
        println!(
            "hot block ({} insns), {opt:?}: {:.1} us per translation",
            block.len(),
            t.elapsed().as_secs_f64() * 1e3
        );
    }
    for opt in [OptLevel::Quick, OptLevel::Speed] {
        let compiled = translator(opt).translate(&block).expect("translate");
        let buf = ExecBuf::new(&compiled.code).expect("map");
        let mut jmem = mem.clone();
        let mut ctx = JitContext::new(
            cpu.clone(),
            jmem.as_mut_ptr(),
            perms.as_ptr(),
            GUEST_SIZE as u64,
            &FLAT_HELPERS,
        );
        let t = Instant::now();
        while ctx.cpu.pc == code_at {
            // SAFETY: ctx points at `jmem` and `perms`, alive and unborrowed for the call.
            let st = unsafe { buf.call(&mut ctx) };
            assert_eq!(st, translate::status::CONTINUE);
        }
        let t_jit = t.elapsed();
        assert_eq!(ctx.cpu, icpu, "JIT and interpreter disagree");
        assert_eq!(jmem, imem);
        let n = icpu.instret as f64;
        println!(
            "hot block, {opt:?}: {} guest insns: interpreter {:.1} ms ({:.0} M insn/s), JIT {:.1} ms ({:.0} M insn/s), {:.1}x; block code {} bytes",
            icpu.instret,
            t_int.as_secs_f64() * 1e3,
            n / t_int.as_secs_f64() / 1e6,
            t_jit.as_secs_f64() * 1e3,
            n / t_jit.as_secs_f64() / 1e6,
            t_int.as_secs_f64() / t_jit.as_secs_f64(),
            compiled.code.len()
        );
    }

    // The same block chained to itself through a jump cache: the dispatcher is entered
    // once per `BUDGET` iterations instead of once per iteration.
    const BUDGET: u64 = 1 << 16;
    for opt in [OptLevel::Quick, OptLevel::Speed] {
        let mut tr = Translator::with_config(TranslatorConfig {
            opt,
            chain: true,
            jump_cache: None,
            guest_size: None,
            perms_offset: None,
        })
        .expect("host");
        let tramp = ExecBuf::new(&tr.trampoline().expect("trampoline").code).expect("map");
        let buf = ExecBuf::new(&tr.translate(&block).expect("translate").code).expect("map");
        // One 32-byte entry (codecache::JumpCacheEntry layout): key, code, size, hits.
        let mut jc = [0u64; 4];
        jc[0] = code_at;
        jc[1] = buf.ptr() as u64;
        let mut jmem = mem.clone();
        let mut ctx = JitContext::new(
            cpu.clone(),
            jmem.as_mut_ptr(),
            perms.as_ptr(),
            GUEST_SIZE as u64,
            &FLAT_HELPERS,
        );
        ctx.jump_cache = jc.as_ptr().cast();
        let mut entries = 0u64;
        let t = Instant::now();
        while ctx.cpu.pc == code_at {
            ctx.chain_budget = BUDGET;
            entries += 1;
            // SAFETY: `tramp` is the trampoline of `tr`, `buf` and the jump cache's only
            // entry a chained block of `tr`; ctx points at `jmem`, `perms` and `jc`.
            let st = unsafe { tramp.call_trampoline(&mut ctx, buf.ptr()) };
            assert_eq!(st, translate::status::CONTINUE);
        }
        let t_jit = t.elapsed();
        assert_eq!(ctx.cpu, icpu, "chained JIT and interpreter disagree");
        assert_eq!(jmem, imem);
        let n = icpu.instret as f64;
        println!(
            "hot block chained, {opt:?}: JIT {:.1} ms ({:.0} M insn/s), {:.1}x the interpreter; {entries} dispatcher entries",
            t_jit.as_secs_f64() * 1e3,
            n / t_jit.as_secs_f64() / 1e6,
            t_int.as_secs_f64() / t_jit.as_secs_f64(),
        );
    }

    // The same block as a one-block region: the back edge is a jump inside the function.
    for opt in [OptLevel::Quick, OptLevel::Speed] {
        let mut tr = translator(opt);
        let buf = ExecBuf::new(&tr.translate_region(&[&block]).expect("region").code).expect("map");
        let mut jmem = mem.clone();
        let mut ctx = JitContext::new(
            cpu.clone(),
            jmem.as_mut_ptr(),
            perms.as_ptr(),
            GUEST_SIZE as u64,
            &FLAT_HELPERS,
        );
        let mut entries = 0u64;
        let t = Instant::now();
        while ctx.cpu.pc == code_at {
            ctx.chain_budget = BUDGET;
            entries += 1;
            // SAFETY: ctx points at `jmem` and `perms`, alive and unborrowed for the call.
            let st = unsafe { buf.call(&mut ctx) };
            assert_eq!(st, translate::status::CONTINUE);
        }
        let t_jit = t.elapsed();
        assert_eq!(ctx.cpu, icpu, "region JIT and interpreter disagree");
        assert_eq!(jmem, imem);
        let n = icpu.instret as f64;
        println!(
            "hot block as region, {opt:?}: JIT {:.1} ms ({:.0} M insn/s), {:.1}x the interpreter; {entries} dispatcher entries",
            t_jit.as_secs_f64() * 1e3,
            n / t_jit.as_secs_f64() / 1e6,
            t_int.as_secs_f64() / t_jit.as_secs_f64(),
        );
    }
}

fn layout_at(pc: u64, words: &[u32]) -> Vec<(u64, Insn)> {
    words
        .iter()
        .enumerate()
        .map(|(k, &w)| (pc + 4 * k as u64, dec(w)))
        .collect()
}
