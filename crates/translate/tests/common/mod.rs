//! Shared test support: a small guest space with a fixed page map, running a block
//! through the JIT and through `rv64::execute` from the same state, instruction
//! encoders and a seeded random block generator.

#![allow(dead_code)]

use rv64::{Cpu, Exit, Insn, Op};
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
    if let Some(at) = (0..jit.mem.len()).find(|&a| jit.mem[a] != int.mem[a]) {
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

// ---- random generation ------------------------------------------------------------

/// splitmix64: small, seedable, good enough for test generation.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
    pub fn pick<T: Copy>(&mut self, xs: &[T]) -> T {
        xs[self.below(xs.len() as u64) as usize]
    }
}

/// Registers that usually hold guest addresses (covers the compressed x8..x15 and sp).
pub const PTR_REGS: [u32; 9] = [2, 8, 9, 10, 11, 12, 13, 14, 15];

const EDGE: [u64; 12] = [
    0,
    1,
    u64::MAX,
    i64::MIN as u64,
    i64::MAX as u64,
    i32::MIN as i64 as u64,
    i32::MAX as u64,
    0x8000_0000,
    0xffff_ffff,
    0xffff_ffff_0000_0000,
    2,
    0x1f,
];

fn random_addr(rng: &mut Rng) -> u64 {
    match rng.below(20) {
        // Mostly well inside the big read+write region, usually aligned.
        0..=14 => {
            let a = 0x1100 + rng.below(0x7e00);
            if rng.chance(75) { a & !7 } else { a }
        }
        // Near a page boundary (crossing accesses, permission changes).
        15..=17 => {
            let page = rng.below(16) << PAGE_SHIFT;
            page.wrapping_add(rng.below(16)).wrapping_sub(8)
        }
        // The read-only, unmapped, write-only and executable pages.
        18 => 0x9000 + rng.below(0x6000),
        // Anywhere, including outside the guest space.
        _ => {
            let any = rng.below(GUEST_SIZE as u64 + 0x100);
            rng.pick(&[any, GUEST_SIZE as u64 - 4, u64::MAX - 3])
        }
    }
}

/// Random initial state: edge and random integer values, pointer registers into the
/// test memory, assorted float bit patterns, a random rounding mode.
pub fn random_cpu(rng: &mut Rng) -> Cpu {
    let mut cpu = Cpu::new();
    for r in 1..32 {
        cpu.x[r] = if PTR_REGS.contains(&(r as u32)) && rng.chance(97) {
            random_addr(rng)
        } else if rng.chance(40) {
            rng.pick(&EDGE)
        } else if rng.chance(50) {
            rng.below(64)
        } else {
            rng.next()
        };
    }
    for f in cpu.f.iter_mut() {
        *f = match rng.below(6) {
            0 => 0xffff_ffff_0000_0000 | (rng.next() & 0xffff_ffff),
            1 => (rng.below(2000) as f64 - 1000.0).to_bits(),
            2 => 0xffff_ffff_0000_0000 | (rng.below(2000) as f32 / 7.0).to_bits() as u64,
            3 => rng.pick(&[
                f64::NAN.to_bits(),
                f64::INFINITY.to_bits(),
                0x8000_0000_0000_0000,
                1,
                0x7ff4_0000_0000_0000,
            ]),
            _ => rng.next(),
        };
    }
    cpu.fflags = rng.below(32) as u32;
    cpu.frm = if rng.chance(95) {
        rng.below(5) as u32
    } else {
        5 + rng.below(3) as u32
    };
    cpu.reservation = if rng.chance(30) {
        random_addr(rng) & !7
    } else {
        Cpu::NO_RESERVATION
    };
    cpu.instret = rng.next() >> 8;
    cpu
}

pub fn random_mem(rng: &mut Rng) -> Vec<u8> {
    let mut m = vec![0u8; GUEST_SIZE];
    for chunk in m.chunks_mut(8) {
        chunk.copy_from_slice(&rng.next().to_le_bytes()[..chunk.len()]);
    }
    m
}

fn reg(rng: &mut Rng) -> u32 {
    rng.below(32) as u32
}

/// A destination that rarely clobbers a pointer register.
fn rd(rng: &mut Rng) -> u32 {
    loop {
        let r = reg(rng);
        if !PTR_REGS.contains(&r) || rng.chance(10) {
            return r;
        }
    }
}

fn base(rng: &mut Rng) -> u32 {
    if rng.chance(95) {
        rng.pick(&PTR_REGS)
    } else {
        reg(rng)
    }
}

fn mem_imm(rng: &mut Rng) -> i32 {
    if rng.chance(80) {
        rng.below(128) as i32 - 64
    } else {
        rng.below(4096) as i32 - 2048
    }
}

fn imm12(rng: &mut Rng) -> i32 {
    match rng.below(4) {
        0 => rng.pick(&[0, 1, -1, 2047, -2048, 31, 32, 63]),
        _ => rng.below(4096) as i32 - 2048,
    }
}

/// Tries a random word with the given major opcode until it decodes.
fn random_with_opcode(rng: &mut Rng, opcodes: &[u32]) -> Option<Insn> {
    for _ in 0..200 {
        let opc = rng.pick(opcodes);
        let mut w = (rng.next() as u32 & !0x7f) | opc;
        // Keep the rounding mode mostly legal so the arithmetic itself is exercised.
        if opc != 0x07 && opc != 0x27 && rng.chance(90) {
            let rm = rng.pick(&[0u32, 1, 2, 3, 4, 7]);
            w = (w & !(7 << 12)) | rm << 12;
        }
        if let Ok(i) = rv64::decode(w)
            && !i.op.ends_block()
        {
            return Some(i);
        }
    }
    None
}

/// One random instruction that does not end a block.
pub fn random_body_insn(rng: &mut Rng) -> Insn {
    loop {
        let w = match rng.below(16) {
            0 | 1 => {
                let f3 = rng.pick(&[0u32, 2, 3, 4, 6, 7]);
                i(imm12(rng), reg(rng), f3, rd(rng), 0x13)
            }
            2 => {
                let (f3, hi) = rng.pick(&[(1u32, 0u32), (5, 0), (5, 0x10)]);
                (hi << 26)
                    | (rng.below(64) as u32) << 20
                    | reg(rng) << 15
                    | f3 << 12
                    | rd(rng) << 7
                    | 0x13
            }
            3 => match rng.below(4) {
                0 => i(imm12(rng), reg(rng), 0, rd(rng), 0x1b),
                1 => r(0, rng.below(32) as u32, reg(rng), 1, rd(rng), 0x1b),
                _ => r(
                    rng.pick(&[0u32, 0x20]),
                    rng.below(32) as u32,
                    reg(rng),
                    5,
                    rd(rng),
                    0x1b,
                ),
            },
            4 | 5 => {
                let (f7, f3) = rng.pick(&[
                    (0u32, 0u32),
                    (0, 1),
                    (0, 2),
                    (0, 3),
                    (0, 4),
                    (0, 5),
                    (0, 6),
                    (0, 7),
                    (0x20, 0),
                    (0x20, 5),
                ]);
                r(f7, reg(rng), reg(rng), f3, rd(rng), 0x33)
            }
            6 => {
                let (f7, f3) = rng.pick(&[(0u32, 0u32), (0, 1), (0, 5), (0x20, 0), (0x20, 5)]);
                r(f7, reg(rng), reg(rng), f3, rd(rng), 0x3b)
            }
            7 => {
                // M, 64- and 32-bit.
                if rng.chance(60) {
                    r(1, reg(rng), reg(rng), rng.below(8) as u32, rd(rng), 0x33)
                } else {
                    r(
                        1,
                        reg(rng),
                        reg(rng),
                        rng.pick(&[0u32, 4, 5, 6, 7]),
                        rd(rng),
                        0x3b,
                    )
                }
            }
            8 => u(rng.next() as u32, rd(rng), rng.pick(&[0x37u32, 0x17])),
            9 | 10 => {
                if rng.chance(55) {
                    i(
                        mem_imm(rng),
                        base(rng),
                        rng.pick(&[0u32, 1, 2, 3, 4, 5, 6]),
                        rd(rng),
                        0x03,
                    )
                } else {
                    s(mem_imm(rng), reg(rng), base(rng), rng.below(4) as u32, 0x23)
                }
            }
            11 => {
                // F/D loads and stores.
                if rng.chance(50) {
                    i(
                        mem_imm(rng),
                        base(rng),
                        rng.pick(&[2u32, 3]),
                        reg(rng),
                        0x07,
                    )
                } else {
                    s(
                        mem_imm(rng),
                        reg(rng),
                        base(rng),
                        rng.pick(&[2u32, 3]),
                        0x27,
                    )
                }
            }
            12 => {
                // A: LR/SC and AMOs, base usually a pointer register.
                let f5 = rng.pick(&[
                    0x00u32, 0x01, 0x02, 0x03, 0x04, 0x08, 0x0c, 0x10, 0x14, 0x18, 0x1c,
                ]);
                let rs2 = if f5 == 0x02 { 0 } else { reg(rng) };
                let aqrl = rng.below(4) as u32;
                r(
                    f5 << 2 | aqrl,
                    rs2,
                    base(rng),
                    rng.pick(&[2u32, 3]),
                    rd(rng),
                    0x2f,
                )
            }
            13 => {
                if rng.chance(35) {
                    // Float moves and sign injection (inline in the JIT).
                    let (f7, f3) = rng.pick(&[
                        (0x10u32, 0u32),
                        (0x10, 1),
                        (0x10, 2),
                        (0x11, 0),
                        (0x11, 1),
                        (0x11, 2),
                        (0x70, 0),
                        (0x71, 0),
                        (0x78, 0),
                        (0x79, 0),
                    ]);
                    let rs2 = if f7 >= 0x70 { 0 } else { reg(rng) };
                    r(f7, rs2, reg(rng), f3, rd(rng), 0x53)
                } else if rng.chance(55) {
                    match random_with_opcode(rng, &[0x53, 0x53, 0x53, 0x43, 0x47, 0x4b, 0x4f]) {
                        Some(i) if !(PTR_REGS.contains(&(i.rd as u32)) && rng.chance(85)) => {
                            return i;
                        }
                        _ => continue,
                    }
                } else {
                    // Zicsr on the CSRs a user program has (not `time`: not reproducible).
                    let csr = rng.pick(&[1i32, 2, 3, 0xc00, 0xc02, 0x7c0]);
                    let f3 = rng.pick(&[1u32, 2, 3, 5, 6, 7]);
                    let src = if rng.chance(30) { 0 } else { reg(rng) };
                    i(csr, src, f3, rd(rng), 0x73)
                }
            }
            _ => {
                // Compressed: any 16-bit encoding that decodes and does not end a block.
                let w = rng.next() as u32 & 0xffff;
                if w & 3 == 3 {
                    continue;
                }
                w
            }
        };
        if let Ok(i) = rv64::decode(w)
            && !i.op.ends_block()
            && !(PTR_REGS.contains(&(i.rd as u32)) && rng.chance(85))
        {
            return i;
        }
    }
}

/// A random block terminator, or `None` for a block that falls through.
pub fn random_terminator(rng: &mut Rng) -> Option<Insn> {
    let w = match rng.below(12) {
        0..=3 => b(
            (rng.below(512) as i32 - 256) * 2,
            reg(rng),
            reg(rng),
            rng.pick(&[0u32, 1, 4, 5, 6, 7]),
        ),
        4 => j((rng.below(4096) as i32 - 2048) * 2, reg(rng)),
        5 => i(imm12(rng), reg(rng), 0, reg(rng), 0x67),
        6 => ECALL,
        7 => EBREAK,
        8 => FENCE_I,
        9 => {
            // Compressed control transfer: c.j, c.beqz, c.bnez, c.jr, c.jalr.
            loop {
                let w = rng.next() as u32 & 0xffff;
                if w & 3 != 3
                    && let Ok(i) = rv64::decode(w)
                    && i.op.ends_block()
                {
                    return Some(i);
                }
            }
        }
        10 => {
            return Some(Insn {
                op: Op::Illegal,
                rd: 0,
                rs1: 0,
                rs2: 0,
                rs3: 0,
                rm: 0,
                len: 4,
                imm: 0,
                raw: 0xffff_ffff,
            });
        }
        _ => return None,
    };
    Some(dec(w))
}

/// A random block of 1..=max_body body instructions plus a terminator (or none).
pub fn random_block(rng: &mut Rng, max_body: u64) -> Vec<(u64, Insn)> {
    let n = 1 + rng.below(max_body);
    let mut insns: Vec<Insn> = (0..n).map(|_| random_body_insn(rng)).collect();
    if let Some(t) = random_terminator(rng) {
        insns.push(t);
    }
    layout(&insns)
}
