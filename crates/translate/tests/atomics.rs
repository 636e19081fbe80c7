//! The A extension and `fence` across host threads in translated code: several host
//! threads run translated blocks (tier 1 and tier 2) and the interpreter over one
//! shared guest memory through `FLAT_HELPERS`/[`GuestView`], with exact totals; the
//! atomic methods of [`GuestView`] against the trait's single-threaded defaults, faults
//! included; and what each tier emits for each `fence`.

mod common;

use std::collections::HashMap;
use std::sync::Barrier;
use std::sync::atomic::AtomicU64;

use common::*;
use rv64::{AccessKind, AmoOp, Cpu, Insn, MemFault, Memory};
use translate::context::PAGE_SHIFT;
use translate::exec_mem::ExecBuf;
use translate::helpers::{FLAT_HELPERS, GuestView};
use translate::{
    Baseline, BaselineConfig, JitContext, JumpCacheShape, OptLevel, TranslateError, status,
};

/// AMO (0x2f): funct5, width funct3 (2 = .w, 3 = .d), aq/rl bits.
fn amo(f5: u32, f3: u32, aqrl: u32, rd: u32, rs1: u32, rs2: u32) -> u32 {
    r(f5 << 2 | aqrl, rs2, rs1, f3, rd, 0x2f)
}

fn addi(rd: u32, rs1: u32, imm: i32) -> u32 {
    i(imm, rs1, 0, rd, 0x13)
}

fn bnez(rs1: u32, off: i32) -> u32 {
    b(off, 0, rs1, 1)
}

const THREADS: usize = 4;
const ITERS: u64 = 200_000;
/// The counters, in read-write page 2: a word and a doubleword.
const W: u64 = 0x2000;
const D: u64 = 0x2008;

/// A guest space shared by all threads: `AtomicU64`s, so it is 8-aligned and every
/// thread may access it through a raw pointer (an atomic type's bytes may be written
/// through a shared reference).
fn shared_memory() -> Vec<AtomicU64> {
    (0..GUEST_SIZE / 8).map(|_| AtomicU64::new(0)).collect()
}

fn base_of(mem: &[AtomicU64]) -> *mut u8 {
    mem.as_ptr().cast_mut().cast()
}

/// A view of the shared memory for the calling thread.
fn view<'a>(mem: &'a [AtomicU64], perms: &'a [u8]) -> GuestView<'a> {
    assert!(perms.len() > GUEST_SIZE >> PAGE_SHIFT);
    // SAFETY: the memory is `GUEST_SIZE` bytes of atomics (valid for reads and writes
    // through the shared reference, and every thread accesses it through views or
    // translated code); `perms` is borrowed, so it is not written while the view lives.
    unsafe { GuestView::from_raw(base_of(mem), GUEST_SIZE as u64, perms.as_ptr()) }
}

/// Guest code laid out from CODE_BASE, split into basic blocks at the given instruction
/// indices (each a block start).
fn blocks(words: &[u32], starts: &[usize]) -> Vec<Vec<(u64, Insn)>> {
    let all = layout(&words.iter().map(|&w| dec(w)).collect::<Vec<_>>());
    let mut cuts = starts.to_vec();
    cuts.push(all.len());
    cuts.windows(2).map(|w| all[w[0]..w[1]].to_vec()).collect()
}

/// How one thread runs the guest program.
#[derive(Clone, Copy, Debug)]
enum Tier {
    /// Every block translated alone by Cranelift at `opt`.
    Blocks(OptLevel),
    /// All blocks as one tier-2 region entered at the first (other blocks alone).
    Region,
    /// `rv64`'s interpreter over a `GuestView` of the shared memory.
    Interpreter,
}

/// Runs the program (`blocks`, entered at the first) on this thread in `tier` from
/// `cpu`, with the shared memory, until it leaves the code (pc past its end).
fn run_program(
    tier: Tier,
    blocks: &[Vec<(u64, Insn)>],
    mut cpu: Cpu,
    mem: &[AtomicU64],
    perms: &[u8],
    start: &Barrier,
) -> Cpu {
    let end = blocks
        .last()
        .and_then(|b| b.last())
        .map(|&(pc, i)| pc + i.len as u64);
    let end = end.expect("a program");
    cpu.pc = blocks[0][0].0;
    if let Tier::Interpreter = tier {
        // The code is handed over decoded (it is not in guest memory).
        let insns: HashMap<u64, Insn> = blocks.iter().flatten().copied().collect();
        let mut v = view(mem, perms);
        start.wait();
        while cpu.pc != end {
            let insn = insns.get(&cpu.pc).expect("pc in the program");
            rv64::execute(&mut cpu, &mut v, insn).expect("no exit");
        }
        return cpu;
    }
    let mut code: HashMap<u64, ExecBuf> = HashMap::new();
    let opt = match tier {
        Tier::Blocks(opt) => opt,
        _ => OptLevel::Speed,
    };
    let mut tr = translator(opt);
    for b in blocks {
        let c = tr.translate(b).expect("translate");
        code.insert(b[0].0, ExecBuf::new(&c.code).expect("map"));
    }
    if let Tier::Region = tier {
        let refs: Vec<&[(u64, Insn)]> = blocks.iter().map(|b| b.as_slice()).collect();
        let c = tr.translate_region(&refs).expect("translate region");
        code.insert(blocks[0][0].0, ExecBuf::new(&c.code).expect("map"));
    }
    let mut ctx = JitContext::new(
        cpu,
        base_of(mem),
        perms.as_ptr(),
        GUEST_SIZE as u64,
        &FLAT_HELPERS,
    );
    start.wait();
    while ctx.cpu.pc != end {
        let f = code.get(&ctx.cpu.pc).expect("pc at a block start");
        // Loops run inside translated code as long as the budget lasts.
        ctx.chain_budget = 1 << 20;
        // SAFETY: `ctx` points at the shared memory (GUEST_SIZE bytes, accessed by the
        // other threads only through views and translated code) and at `perms` (one
        // byte per page and the sentinel, not written); the code is an unchained
        // translated block for this host.
        let st = unsafe { f.call(&mut ctx) };
        assert_eq!(st, status::CONTINUE, "{:?}", ctx.exit_for(st));
    }
    ctx.cpu
}

/// Runs the program on THREADS threads, thread `t` in `tiers[t % tiers.len()]`, each
/// with x1 = W, x2 = 1, x3 = D, x4 = ITERS and x7 = t % 2, started together.
fn run_threads(words: &[u32], starts: &[usize], tiers: &[Tier]) -> Vec<AtomicU64> {
    let mem = shared_memory();
    let perms = test_perms();
    let program = blocks(words, starts);
    let start = Barrier::new(THREADS);
    std::thread::scope(|s| {
        for t in 0..THREADS {
            let (mem, perms, program, start) = (&mem, &perms, &program, &start);
            s.spawn(move || {
                let mut cpu = Cpu::new();
                cpu.x[1] = W;
                cpu.x[2] = 1;
                cpu.x[3] = D;
                cpu.x[4] = ITERS;
                cpu.x[7] = (t % 2) as u64;
                let tier = tiers[t % tiers.len()];
                let out = run_program(tier, program, cpu, mem, perms, start);
                assert_eq!(out.x[4], 0, "{tier:?} ran every iteration");
            });
        }
    });
    mem
}

fn counters(mem: &[AtomicU64]) -> (u64, u64) {
    let perms = test_perms();
    let v = view(mem, &perms);
    (v.load32(W).unwrap().into(), v.load64(D).unwrap())
}

const TOTAL: u64 = THREADS as u64 * ITERS;

fn amo_loop() -> Vec<u32> {
    vec![
        amo(0x00, 2, 0, 0, 1, 2), // loop: amoadd.w x0, x2, (x1)
        amo(0x00, 3, 3, 5, 3, 2), // amoadd.d.aqrl x5, x2, (x3)
        addi(4, 4, -1),
        bnez(4, -12), // bnez x4, loop
    ]
}

fn lr_sc_loop() -> Vec<u32> {
    vec![
        amo(0x02, 2, 2, 5, 1, 0), // 0: lr.w.aq x5, (x1)
        addi(5, 5, 1),
        amo(0x03, 2, 1, 6, 1, 5), // sc.w.rl x6, x5, (x1)
        bnez(6, -12),             // retry at 0
        amo(0x02, 3, 3, 5, 3, 0), // 16: lr.d.aqrl x5, (x3)
        addi(5, 5, 1),
        amo(0x03, 3, 1, 6, 3, 5), // sc.d.rl x6, x5, (x3)
        bnez(6, -12),             // retry at 16
        addi(4, 4, -1),           // 32
        bnez(4, -36),             // loop at 0
    ]
}

#[test]
fn amo_increments_in_translated_code_on_several_threads_add_up_exactly() {
    for opt in [OptLevel::Quick, OptLevel::Speed] {
        let mem = run_threads(&amo_loop(), &[0], &[Tier::Blocks(opt)]);
        assert_eq!(counters(&mem), (TOTAL, TOTAL), "{opt:?}");
    }
}

#[test]
fn lr_sc_increments_in_translated_code_on_several_threads_add_up_exactly() {
    for tiers in [
        &[Tier::Blocks(OptLevel::Quick)][..],
        &[Tier::Region],
        // Every tier at once on the same words.
        &[
            Tier::Region,
            Tier::Blocks(OptLevel::Quick),
            Tier::Interpreter,
        ],
    ] {
        let mem = run_threads(&lr_sc_loop(), &[0, 4, 8], tiers);
        assert_eq!(counters(&mem), (TOTAL, TOTAL), "{tiers:?}");
    }
}

#[test]
fn amos_and_lr_sc_on_neighbouring_words_mix_across_tiers() {
    // Odd threads AMO-increment the word next to W; even ones LR/SC-increment W itself:
    // a word operation that wrote the whole doubleword would lose the neighbour's
    // updates.
    let words = [
        bnez(7, 24),              // 0: top: bnez x7, amo_side
        amo(0x02, 2, 0, 5, 1, 0), // 4: lr.w x5, (x1)
        addi(5, 5, 1),
        amo(0x03, 2, 0, 6, 1, 5), // sc.w x6, x5, (x1)
        bnez(6, -12),             // 16: retry at 4
        b(12, 0, 0, 0),           // 20: j next
        amo(0x00, 2, 0, 0, 8, 2), // 24: amo_side: amoadd.w x0, x2, (x8)
        addi(0, 0, 0),            // nop
        addi(4, 4, -1),           // 32: next
        bnez(4, -36),             // 36: loop at 0
    ];
    let words: Vec<u32> = std::iter::once(addi(8, 1, 4)).chain(words).collect();
    // x8 = W + 4 set by the first instruction; block starts after it.
    let starts = [0, 1, 2, 6, 7, 9];
    let mem = run_threads(
        &words,
        &starts,
        &[
            Tier::Region,
            Tier::Interpreter,
            Tier::Blocks(OptLevel::Speed),
            Tier::Region,
        ],
    );
    let perms = test_perms();
    let v = view(&mem, &perms);
    let half = (THREADS as u64 / 2) * ITERS;
    assert_eq!(v.load32(W).unwrap() as u64, half);
    assert_eq!(v.load32(W + 4).unwrap() as u64, half);
}

#[test]
fn the_baseline_tier_leaves_blocks_with_atomics_to_the_other_tiers() {
    let mut bl = Baseline::new(BaselineConfig {
        jump_cache: JumpCacheShape { shift: 1, len: 64 },
        guest_size: None,
        perms_offset: None,
    })
    .expect("x86-64 host");
    for raw in [
        amo(0x00, 2, 0, 0, 1, 2),
        amo(0x02, 3, 0, 5, 1, 0),
        amo(0x03, 2, 0, 6, 1, 5),
    ] {
        let block = layout(&[dec(raw), dec(EBREAK)]);
        assert!(matches!(
            bl.translate(&block, None),
            Err(TranslateError::Unsupported { .. })
        ));
    }
}

// ---- GuestView's atomics against the trait's defaults ----------------------------

/// The trait's default `amo*`/`cas*` over a view's loads and stores: the
/// single-threaded reference the atomic overrides must agree with.
struct Defaults<'a>(GuestView<'a>);

impl Memory for Defaults<'_> {
    fn load8(&self, addr: u64) -> Result<u8, MemFault> {
        self.0.load8(addr)
    }
    fn load16(&self, addr: u64) -> Result<u16, MemFault> {
        self.0.load16(addr)
    }
    fn load32(&self, addr: u64) -> Result<u32, MemFault> {
        self.0.load32(addr)
    }
    fn load64(&self, addr: u64) -> Result<u64, MemFault> {
        self.0.load64(addr)
    }
    fn store8(&mut self, addr: u64, value: u8) -> Result<(), MemFault> {
        self.0.store8(addr, value)
    }
    fn store16(&mut self, addr: u64, value: u16) -> Result<(), MemFault> {
        self.0.store16(addr, value)
    }
    fn store32(&mut self, addr: u64, value: u32) -> Result<(), MemFault> {
        self.0.store32(addr, value)
    }
    fn store64(&mut self, addr: u64, value: u64) -> Result<(), MemFault> {
        self.0.store64(addr, value)
    }
    fn fetch16(&self, addr: u64) -> Result<u16, MemFault> {
        self.0.fetch16(addr)
    }
}

const OPS: [AmoOp; 9] = [
    AmoOp::Swap,
    AmoOp::Add,
    AmoOp::Xor,
    AmoOp::And,
    AmoOp::Or,
    AmoOp::Min,
    AmoOp::Max,
    AmoOp::Minu,
    AmoOp::Maxu,
];

/// Addresses on every page of the test map: aligned ones at the start, middle and end
/// of the page, and misaligned ones; plus the end of the guest space.
fn addresses() -> Vec<u64> {
    let mut v = Vec::new();
    for page in 0..(GUEST_SIZE as u64 >> PAGE_SHIFT) {
        for off in [0u64, 4, 0x800, 0xff8, 0xffc, 2, 6, 0xffe] {
            v.push(page << PAGE_SHIFT | off);
        }
    }
    v.extend([GUEST_SIZE as u64 - 8, GUEST_SIZE as u64, u64::MAX - 3]);
    v
}

/// Runs `f` on a fresh copy of `mem` through `GuestView::new` at `shift` bytes into a
/// buffer (so the host base is misaligned when `shift` is not a multiple of 8), and
/// returns its result and the memory afterwards.
fn on_copy<T>(mem: &[u8], shift: usize, f: impl FnOnce(GuestView<'_>) -> T) -> (T, Vec<u8>) {
    let mut buf = vec![0u8; shift + mem.len()];
    buf[shift..].copy_from_slice(mem);
    let perms = test_perms();
    let out = f(GuestView::new(&mut buf[shift..], &perms));
    (out, buf[shift..].to_vec())
}

#[test]
fn guest_view_amos_match_the_default_methods_on_every_page_op_and_width() {
    let mut rng = Rng::new(7);
    let mem = random_mem(&mut rng);
    for shift in [0usize, 1, 4] {
        for addr in addresses() {
            for op in OPS {
                let src = rng.next();
                let want32 = on_copy(&mem, 0, |v| Defaults(v).amo32(addr, op, src as u32));
                let got32 = on_copy(&mem, shift, |mut v| v.amo32(addr, op, src as u32));
                let want64 = on_copy(&mem, 0, |v| Defaults(v).amo64(addr, op, src));
                let got64 = on_copy(&mem, shift, |mut v| v.amo64(addr, op, src));
                // The defaults do misaligned AMOs (rv64::execute never asks for one);
                // the view faults, as execute reports them.
                let fault = MemFault {
                    addr,
                    kind: AccessKind::Write,
                };
                let w32 = if addr % 4 != 0 {
                    (Err(fault), mem.clone())
                } else {
                    want32
                };
                let w64 = if addr % 8 != 0 {
                    (Err(fault), mem.clone())
                } else {
                    want64
                };
                let ctx = format!("{op:?} at {addr:#x}, base +{shift}");
                assert_eq!(got32.0, w32.0, "amo32 {ctx}");
                assert!(got32.1 == w32.1, "amo32 {ctx}: memory differs");
                assert_eq!(got64.0, w64.0, "amo64 {ctx}");
                assert!(got64.1 == w64.1, "amo64 {ctx}: memory differs");
            }
        }
    }
}

#[test]
fn guest_view_amo_faults_are_the_load_then_the_store_fault() {
    let mem = vec![0u8; GUEST_SIZE];
    let fault = |addr, kind| Err(MemFault { addr, kind });
    let amo = |addr| on_copy(&mem, 0, |mut v| v.amo32(addr, AmoOp::Add, 1)).0;
    assert_eq!(
        amo(0x9000),
        fault(0x9000, AccessKind::Write),
        "read-only page"
    );
    assert_eq!(
        amo(0xd000),
        fault(0xd000, AccessKind::Read),
        "write-only page"
    );
    assert_eq!(
        amo(0x0000),
        fault(0x0000, AccessKind::Read),
        "unmapped page"
    );
    assert_eq!(
        amo(0x10000),
        fault(0x10000, AccessKind::Read),
        "past the end"
    );
    assert_eq!(amo(0x2002), fault(0x2002, AccessKind::Write), "misaligned");
    assert_eq!(amo(0x2004), Ok(0));
}

#[test]
fn guest_view_compare_and_swap_matches_the_defaults_and_faults_as_a_store() {
    let mut rng = Rng::new(9);
    let mem = random_mem(&mut rng);
    for shift in [0usize, 1] {
        for addr in addresses() {
            // The bytes there, whatever the permissions.
            let raw = |n: usize| {
                let a = usize::try_from(addr)
                    .ok()
                    .filter(|&a| a.checked_add(n).is_some_and(|e| e <= mem.len()))?;
                let mut b = [0u8; 8];
                b[..n].copy_from_slice(&mem[a..a + n]);
                Some(u64::from_le_bytes(b))
            };
            let cur = (raw(4).map(|v| v as u32), raw(8));
            for equal in [true, false] {
                let e32 = match (equal, cur.0) {
                    (true, Some(c)) => c,
                    _ => rng.next() as u32,
                };
                let e64 = match (equal, cur.1) {
                    (true, Some(c)) => c,
                    _ => rng.next(),
                };
                let new = rng.next();
                let ctx = format!("at {addr:#x} equal {equal} base +{shift}");
                let got32 = on_copy(&mem, shift, |mut v| v.cas32(addr, e32, new as u32));
                let got64 = on_copy(&mem, shift, |mut v| v.cas64(addr, e64, new));
                let mut want32 = on_copy(&mem, 0, |v| Defaults(v).cas32(addr, e32, new as u32));
                let mut want64 = on_copy(&mem, 0, |v| Defaults(v).cas64(addr, e64, new));
                let page = addr >> PAGE_SHIFT;
                if page == 13 && addr < GUEST_SIZE as u64 && !equal {
                    // Write-only page: the default cannot read the word and stores (as
                    // sc did before); the view compares, as documented.
                    want32 = (Ok(false), mem.clone());
                    want64 = (Ok(false), mem.clone());
                }
                let misaligned = || {
                    (
                        Err(MemFault {
                            addr,
                            kind: AccessKind::Write,
                        }),
                        mem.clone(),
                    )
                };
                if addr % 4 != 0 {
                    want32 = misaligned();
                }
                if addr % 8 != 0 {
                    want64 = misaligned();
                }
                assert_eq!(got32.0, want32.0, "cas32 {ctx}");
                assert!(got32.1 == want32.1, "cas32 {ctx}: memory differs");
                assert_eq!(got64.0, want64.0, "cas64 {ctx}");
                assert!(got64.1 == want64.1, "cas64 {ctx}: memory differs");
            }
        }
    }
    // Faults: a store's, whatever the comparison.
    let zero = vec![0u8; GUEST_SIZE];
    let cas = |addr| on_copy(&zero, 0, |mut v| v.cas32(addr, 0, 1)).0;
    let write = |addr| {
        Err(MemFault {
            addr,
            kind: AccessKind::Write,
        })
    };
    assert_eq!(cas(0x9000), write(0x9000), "read-only page");
    assert_eq!(cas(0xa000), write(0xa000), "unmapped page");
    assert_eq!(cas(0x10000), write(0x10000), "past the end");
    assert_eq!(cas(0xd000), Ok(true), "write-only page: compared, swapped");
}

#[test]
fn guest_view_plain_accesses_do_not_depend_on_the_host_alignment() {
    // Aligned host addresses take one atomic access, misaligned ones byte by byte: the
    // results and faults must be the same.
    let mut rng = Rng::new(11);
    let mem = random_mem(&mut rng);
    for addr in addresses()
        .into_iter()
        .chain([0x2001, 0x2ffd, 0x8ffb, 0xbfff])
    {
        let v = rng.next();
        let run = |shift| {
            on_copy(&mem, shift, |mut g| {
                (
                    g.load8(addr),
                    g.load16(addr),
                    g.load32(addr),
                    g.load64(addr),
                    g.fetch16(addr),
                    g.store8(addr, v as u8),
                    g.store16(addr.wrapping_add(1), v as u16),
                    g.store32(addr.wrapping_add(2), v as u32),
                    g.store64(addr.wrapping_add(3), v),
                )
            })
        };
        let want = run(0);
        for shift in [1, 2, 4, 7] {
            let got = run(shift);
            assert_eq!(got.0, want.0, "at {addr:#x}, base +{shift}");
            assert!(
                got.1 == want.1,
                "at {addr:#x}, base +{shift}: memory differs"
            );
        }
    }
}

// ---- fences ------------------------------------------------------------------------

/// `fence` with fm, pred and succ (I=8 O=4 R=2 W=1).
fn fence(fm: u32, pred: u32, succ: u32) -> u32 {
    fm << 28 | pred << 24 | succ << 20 | 0x0f
}

/// Fences that order earlier stores before later loads, and fences that do not.
fn fences() -> (Vec<u32>, Vec<u32>) {
    let full = vec![
        fence(0, 0b0011, 0b0011),
        fence(0, 0b1111, 0b1111),
        fence(0, 0b0001, 0b0010),
        fence(0, 0b0100, 0b1000),
    ];
    let free = vec![
        fence(0, 0b0010, 0b0010),
        fence(0, 0b0001, 0b0001),
        fence(0, 0b0011, 0b0001),
        fence(0, 0b0010, 0b0011),
        fence(8, 0b0011, 0b0011), // fence.tso
        fence(0, 0b0001, 0b0000), // pause
    ];
    (full, free)
}

const MFENCE: [u8; 3] = [0x0f, 0xae, 0xf0];

fn mfences(code: &[u8]) -> usize {
    code.windows(3).filter(|w| *w == MFENCE).count()
}

/// Checks a tier's code for `ld x5, 0(x1); <fence>; ld x6, 0(x1); ebreak` (a load on
/// each side, so the code around the fence is real): every fence that does not order
/// stores before loads gives the same code, without `mfence`, and every one that does
/// that code with one `mfence` more (3 bytes; branch displacements around it change).
fn check_fence_code(tier: &str, mut compile: impl FnMut(&[(u64, Insn)]) -> Vec<u8>) {
    let mut code = |f: u32| {
        compile(&layout(&[
            dec(i(0, 1, 3, 5, 0x03)),
            dec(f),
            dec(i(0, 1, 3, 6, 0x03)),
            dec(EBREAK),
        ]))
    };
    let (full, free) = fences();
    let plain = code(free[0]);
    assert_eq!(
        mfences(&plain),
        0,
        "{tier}: {} emits an mfence",
        dec(free[0])
    );
    for f in free {
        assert!(code(f) == plain, "{tier}: {} emits code", dec(f));
    }
    for f in full {
        let with = code(f);
        assert_eq!(
            (mfences(&with), with.len()),
            (mfences(&plain) + 1, plain.len() + 3),
            "{tier}: {} is not the plain code plus one mfence",
            dec(f)
        );
    }
}

#[test]
fn only_store_to_load_fences_emit_an_mfence_in_every_tier() {
    for opt in [OptLevel::Quick, OptLevel::Speed] {
        let mut tr = translator(opt);
        check_fence_code(&format!("{opt:?}"), |b| {
            tr.translate(b).expect("translate").code
        });
    }
    let mut bl = Baseline::new(BaselineConfig {
        jump_cache: JumpCacheShape { shift: 1, len: 64 },
        guest_size: None,
        perms_offset: None,
    })
    .expect("x86-64 host");
    check_fence_code("baseline", |b| {
        bl.translate(b, None).expect("translate").code
    });
}
