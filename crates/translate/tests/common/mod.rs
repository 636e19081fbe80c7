//! Shared test support: a small guest space with a fixed page map, running a block
//! through the JIT and through `rv64::execute` from the same state, and instruction
//! encoders; in submodules, a thread's reusable executable memory (`arena`), the seeded random generator (`random`), the coverage it
//! must reach (`coverage`), programs of one or two blocks run both ways (`program`),
//! the seed runner with its long mode (`runner`) and the regression seeds.

#![allow(dead_code)]

pub mod arena;
pub mod coverage;
pub mod program;
pub mod random;
pub mod regressions;
pub mod runner;

#[allow(unused_imports)]
pub use random::*;

use rv64::{Cpu, Exit, Insn};
use translate::context::{PAGE_SHIFT, PERM_R, PERM_W, PERM_X, update_fast_bits};
use translate::exec_mem::ExecBuf;
use translate::helpers::{FLAT_HELPERS, GuestView};
use translate::{JitContext, OptLevel, Translator};

/// Guest space of the tests: 16 pages.
pub const GUEST_SIZE: usize = 0x10000;
/// Where test code pretends to live (its bytes are not in memory: blocks are handed
/// over decoded).
pub const CODE_BASE: u64 = 0x8000_0000;

/// Page map: 0 unmapped, 1..=8 read+write, 9 read-only, 10 unmapped, 11..=12
/// read+write, 13 write-only, 14 read+write+exec, 15 unmapped.
pub fn test_perms() -> Vec<u8> {
    // One entry per page plus the sentinel (always 0) that out-of-range addresses hit.
    let pages = GUEST_SIZE >> PAGE_SHIFT;
    let mut p = vec![0u8; pages + 1];
    for (i, perm) in p.iter_mut().enumerate() {
        *perm = match i {
            1..=8 | 11 | 12 => PERM_R | PERM_W,
            9 => PERM_R,
            13 => PERM_W,
            14 => PERM_R | PERM_W | PERM_X,
            _ => 0,
        };
    }
    update_fast_bits(&mut p, 0..pages + 1);
    p
}

/// Final state of one run.
#[derive(Debug, PartialEq)]
pub struct Outcome {
    pub cpu: Cpu,
    pub exit: Option<Exit>,
    pub mem: Vec<u8>,
}

/// Reference: `rv64::execute` instruction by instruction until the first exit.
pub fn run_interp(block: &[(u64, Insn)], cpu: &Cpu, mem: &[u8], perms: &[u8]) -> Outcome {
    let mut cpu = cpu.clone();
    cpu.pc = block[0].0;
    let mut mem = mem.to_vec();
    let mut exit = None;
    {
        let mut view = GuestView::new(&mut mem, perms);
        for (pc, insn) in block {
            assert_eq!(cpu.pc, *pc, "test bug: control left the block early");
            if let Err(e) = rv64::execute(&mut cpu, &mut view, insn) {
                exit = Some(e);
                break;
            }
        }
    }
    Outcome { cpu, exit, mem }
}

/// Translates `block` with `tr` and runs it once from the same state.
pub fn run_jit(
    tr: &mut Translator,
    block: &[(u64, Insn)],
    cpu: &Cpu,
    mem: &[u8],
    perms: &[u8],
) -> Outcome {
    let compiled = tr
        .translate(block)
        .unwrap_or_else(|e| panic!("translation failed: {e}"));
    assert_eq!(compiled.guest_start, block[0].0);
    assert_eq!(compiled.insns, block.len());
    let code = ExecBuf::new(&compiled.code).expect("map code");
    let mut mem = mem.to_vec();
    let perms = perms.to_vec();
    let mut c = cpu.clone();
    c.pc = block[0].0;
    let mut ctx = JitContext::new(
        c,
        mem.as_mut_ptr(),
        perms.as_ptr(),
        mem.len() as u64,
        &FLAT_HELPERS,
    );
    let st = if tr.config().chain {
        // Chained blocks are entered through the trampoline; without a jump cache in
        // `ctx` they return at their end like unchained ones.
        let tramp = ExecBuf::new(&tr.trampoline().expect("trampoline").code).expect("map");
        // SAFETY: as below, and `tramp` is the trampoline of the translator that made
        // `code` with chaining on.
        unsafe { tramp.call_trampoline(&mut ctx, code.ptr()) }
    } else {
        // SAFETY: `ctx` points at `mem` (GUEST_SIZE bytes) and `perms` (one byte per
        // page), both alive and not otherwise borrowed during the call; the code is an
        // unchained translated block for this host.
        unsafe { code.call(&mut ctx) }
    };
    if st == translate::status::SLOW_PATH {
        // What an embedder does: the interpreter executes the instruction at pc, and
        // here, as the reference does, the rest of the block.
        let (cpu, exit) = finish_block(block, ctx.cpu.clone(), &mut mem, &perms);
        return Outcome { cpu, exit, mem };
    }
    let exit = ctx.exit_for(st);
    assert!(
        exit.is_some() || st == translate::status::CONTINUE,
        "unknown status {st}"
    );
    Outcome {
        cpu: ctx.cpu,
        exit,
        mem,
    }
}

/// Runs the instructions of `block` from `cpu.pc` (which must be one of them) to its end
/// with `rv64::execute`, as after a [`translate::status::SLOW_PATH`] exit.
pub fn finish_block(
    block: &[(u64, Insn)],
    mut cpu: Cpu,
    mem: &mut [u8],
    perms: &[u8],
) -> (Cpu, Option<Exit>) {
    let from = block
        .iter()
        .position(|&(pc, _)| pc == cpu.pc)
        .unwrap_or_else(|| panic!("slow path at {:#x}, not in the block", cpu.pc));
    let mut view = GuestView::new(mem, perms);
    for (_, insn) in &block[from..] {
        if let Err(e) = rv64::execute(&mut cpu, &mut view, insn) {
            return (cpu, Some(e));
        }
    }
    (cpu, None)
}

pub fn translator(opt: OptLevel) -> Translator {
    Translator::with_opt_level(opt).expect("host ISA")
}

/// Lays out decoded instructions at consecutive addresses from `CODE_BASE`.
pub fn layout(insns: &[Insn]) -> Vec<(u64, Insn)> {
    let mut pc = CODE_BASE;
    insns
        .iter()
        .map(|i| {
            let at = pc;
            pc += i.len as u64;
            (at, *i)
        })
        .collect()
}

pub fn dec(raw: u32) -> Insn {
    rv64::decode(raw).unwrap_or_else(|e| panic!("test encodes a bad instruction {raw:#x}: {e:?}"))
}

pub fn disasm(block: &[(u64, Insn)]) -> String {
    block
        .iter()
        .map(|(pc, i)| format!("  {pc:#x}: {:08x}  {}\n", i.raw, i.display_at(*pc)))
        .collect()
}

/// Differences between two outcomes, field by field (empty when equal).
pub fn diff(jit: &Outcome, int: &Outcome) -> String {
    let mut s = String::new();
    if jit.exit != int.exit {
        s += &format!("exit: jit {:?} interp {:?}\n", jit.exit, int.exit);
    }
    for r in 0..32 {
        if jit.cpu.x[r] != int.cpu.x[r] {
            s += &format!("x{r}: jit {:#x} interp {:#x}\n", jit.cpu.x[r], int.cpu.x[r]);
        }
        if jit.cpu.f[r] != int.cpu.f[r] {
            s += &format!("f{r}: jit {:#x} interp {:#x}\n", jit.cpu.f[r], int.cpu.f[r]);
        }
    }
    macro_rules! field {
        ($f:ident) => {
            if jit.cpu.$f != int.cpu.$f {
                s += &format!(
                    "{}: jit {:#x} interp {:#x}\n",
                    stringify!($f),
                    jit.cpu.$f,
                    int.cpu.$f
                );
            }
        };
    }
    field!(pc);
    field!(instret);
    field!(fflags);
    field!(frm);
    field!(reservation);
    field!(reserved_value);
    if jit.mem != int.mem
        && let Some(at) = (0..jit.mem.len()).find(|&a| jit.mem[a] != int.mem[a])
    {
        s += &format!(
            "memory differs first at {at:#x}: jit {:#x} interp {:#x}\n",
            jit.mem[at], int.mem[at]
        );
    }
    s
}

/// Runs `block` both ways from `cpu` and panics with `context` and the differences.
pub fn check(
    tr: &mut Translator,
    block: &[(u64, Insn)],
    cpu: &Cpu,
    mem: &[u8],
    perms: &[u8],
    context: &str,
) -> Outcome {
    let int = run_interp(block, cpu, mem, perms);
    let jit = run_jit(tr, block, cpu, mem, perms);
    let d = diff(&jit, &int);
    assert!(
        d.is_empty(),
        "{context}: JIT and interpreter differ\n{}{d}",
        disasm(block)
    );
    jit
}

// ---- encoders -------------------------------------------------------------------

pub fn r(f7: u32, rs2: u32, rs1: u32, f3: u32, rd: u32, opc: u32) -> u32 {
    f7 << 25 | rs2 << 20 | rs1 << 15 | f3 << 12 | rd << 7 | opc
}
pub fn i(imm: i32, rs1: u32, f3: u32, rd: u32, opc: u32) -> u32 {
    ((imm as u32) & 0xfff) << 20 | rs1 << 15 | f3 << 12 | rd << 7 | opc
}
pub fn s(imm: i32, rs2: u32, rs1: u32, f3: u32, opc: u32) -> u32 {
    let imm = imm as u32;
    ((imm >> 5) & 0x7f) << 25 | rs2 << 20 | rs1 << 15 | f3 << 12 | (imm & 0x1f) << 7 | opc
}
pub fn b(imm: i32, rs2: u32, rs1: u32, f3: u32) -> u32 {
    let imm = imm as u32;
    ((imm >> 12) & 1) << 31
        | ((imm >> 5) & 0x3f) << 25
        | rs2 << 20
        | rs1 << 15
        | f3 << 12
        | ((imm >> 1) & 0xf) << 8
        | ((imm >> 11) & 1) << 7
        | 0x63
}
pub fn u(imm20: u32, rd: u32, opc: u32) -> u32 {
    (imm20 & 0xfffff) << 12 | rd << 7 | opc
}
pub fn j(imm: i32, rd: u32) -> u32 {
    let imm = imm as u32;
    ((imm >> 20) & 1) << 31
        | ((imm >> 1) & 0x3ff) << 21
        | ((imm >> 11) & 1) << 20
        | ((imm >> 12) & 0xff) << 12
        | rd << 7
        | 0x6f
}

pub const ECALL: u32 = 0x0000_0073;
pub const EBREAK: u32 = 0x0010_0073;
pub const FENCE_I: u32 = 0x0000_100f;
