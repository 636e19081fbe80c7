//! Accesses the permission table allows run inline; the others leave translated code
//! with `SLOW_PATH` at the access, before it retires, and never call a helper. Likewise
//! `fadd.d`/`fsub.d` run inline when the host's result and flags are provably exact, and
//! `fmul.d`, `fdiv.d`, the `fmadd.d` family, the compares and `fcvt.d.w[u]` when they
//! cannot change `fflags`. (A slow
//! path taken by mistake gives the right results, only slowly, so the differential
//! tests cannot see it: this checks the exit status and counts helper calls.)

mod common;

use std::sync::atomic::{AtomicU64, Ordering};

use common::*;
use rv64::Cpu;
use translate::exec_mem::ExecBuf;
use translate::helpers::flat_exec_one;
use translate::{HelperTable, JitContext, OptLevel, Translator, TranslatorConfig, status};

static CALLS: AtomicU64 = AtomicU64::new(0);

/// `flat_exec_one`, counted.
unsafe extern "C" fn counting_exec_one(
    ctx: *mut JitContext,
    pc: u64,
    raw: u32,
    retired: u64,
) -> u64 {
    CALLS.fetch_add(1, Ordering::Relaxed);
    // SAFETY: forwarded unchanged from translated code, which upholds the contract.
    unsafe { flat_exec_one(ctx, pc, raw, retired) }
}

static COUNTING: HelperTable = HelperTable {
    exec_one: counting_exec_one,
};

/// What a translated block left: its status, pc, instret and helper calls, and the
/// final state once the interpreter finished a slow-path exit.
struct Left {
    st: u64,
    pc: u64,
    instret: u64,
    calls: u64,
    cpu: Cpu,
}

/// Bytes before guest memory where the layout with the table next to memory keeps it.
const TABLE_BYTES: usize = 4096;

/// Translates `block` at `opt`, runs it once from `cpu` with the counting helpers,
/// finishes a slow-path exit with the interpreter, and checks registers, memory and
/// exit against the interpreter's run of the same block. Runs it twice: with the
/// permission table read through `ctx.perms`, and laid out right below guest memory with
/// the offset compiled in; both must leave the same way.
fn run_checked(
    block: &[(u64, rv64::Insn)],
    cpu: Cpu,
    opt: OptLevel,
    guest_size: Option<u64>,
    what: &str,
) -> Left {
    let perms = test_perms();
    assert!(perms.len() <= TABLE_BYTES);
    let want = run_interp(block, &cpu, &vec![0x5au8; GUEST_SIZE], &perms);
    let mut left: Option<Left> = None;
    for table_below in [false, true] {
        let what = format!("{what} (table below memory: {table_below})");
        // [table | guest memory], one buffer: the table is used from here in both runs.
        let mut buf = vec![0u8; TABLE_BYTES + GUEST_SIZE];
        buf[..perms.len()].copy_from_slice(&perms);
        buf[TABLE_BYTES..].fill(0x5a);
        let mut tr = Translator::with_config(TranslatorConfig {
            opt,
            chain: false,
            jump_cache: None,
            guest_size,
            perms_offset: table_below.then_some(-(TABLE_BYTES as i32)),
        })
        .expect("host");
        let compiled = tr.translate(block).expect("translates");
        let code = ExecBuf::new(&compiled.code).expect("map code");
        let mut c = cpu.clone();
        c.pc = block[0].0;
        let (table, mem) = buf.split_at_mut(TABLE_BYTES);
        let mut ctx = JitContext::new(
            c,
            mem.as_mut_ptr(),
            table.as_ptr(),
            GUEST_SIZE as u64,
            &COUNTING,
        );
        let before = CALLS.load(Ordering::Relaxed);
        // SAFETY: `ctx` points at `mem` (GUEST_SIZE bytes) and `table` (one byte per page
        // and the sentinel), which are the two halves of `buf`, adjacent as the compiled-in
        // offset says when there is one; both alive and not otherwise borrowed during the
        // call; the code is an unchained block for this host.
        let st = unsafe { code.call(&mut ctx) };
        let calls = CALLS.load(Ordering::Relaxed) - before;
        let (pc, instret) = (ctx.cpu.pc, ctx.cpu.instret);
        let mut mem = mem.to_vec();
        let (cpu, exit) = if st == status::SLOW_PATH {
            finish_block(block, ctx.cpu.clone(), &mut mem, &perms)
        } else {
            (ctx.cpu.clone(), ctx.exit_for(st))
        };
        assert_eq!(exit, want.exit, "{what}");
        assert_eq!(cpu, want.cpu, "{what}");
        assert_eq!(mem, want.mem, "{what}");
        let run = Left {
            st,
            pc,
            instret,
            calls,
            cpu,
        };
        if let Some(first) = &left {
            let key = |l: &Left| (l.st, l.pc, l.instret, l.calls);
            assert_eq!(
                key(first),
                key(&run),
                "{what}: the two layouts left differently"
            );
        }
        left.get_or_insert(run);
    }
    left.expect("ran")
}

/// Runs `addi x7, x0, 1; access; ebreak` with x1 = `addr`, translated with the guest
/// size read at run time and known at translation time: returns the status, the pc
/// and instret it left, and the helper calls made (the same for both).
fn run(access: u32, addr: u64, opt: OptLevel) -> (u64, u64, u64, u64) {
    let block = layout(&[dec(i(1, 0, 0, 7, 0x13)), dec(access), dec(EBREAK)]);
    let mut cpu = Cpu::new();
    cpu.x[1] = addr;
    cpu.x[6] = 0x0102_0304_0506_0708;
    let what = format!("{access:#x} at {addr:#x}");
    let left = run_checked(&block, cpu.clone(), opt, None, &what);
    let known = run_checked(&block, cpu, opt, Some(GUEST_SIZE as u64), &what);
    let summary = |l: &Left| (l.st, l.pc, l.instret, l.calls);
    assert_eq!(
        summary(&left),
        summary(&known),
        "{what}: guest size known or not"
    );
    summary(&left)
}

const LD_X5: u32 = 0x0000_b283; // ld x5, 0(x1)
const SD_X6: u32 = 0x0060_b023; // sd x6, 0(x1)
const LW_X5: u32 = 0x0000_a283; // lw x5, 0(x1)

#[test]
fn accesses_inside_permitted_pages_run_inline() {
    for opt in [OptLevel::Quick, OptLevel::Speed] {
        for (access, addr, why) in [
            (LD_X5, 0x1000, "start of a read-write page"),
            (
                LD_X5,
                0x8ffc,
                "crossing from read-write page 8 into read-only page 9",
            ),
            (LD_X5, 0x9ff8, "end of read-only page 9, next page unmapped"),
            (
                SD_X6,
                0xcffc,
                "crossing from read-write page 12 into write-only page 13",
            ),
            (SD_X6, 0xeff8, "end of page 14, next page unmapped"),
            (LW_X5, 0x2002, "misaligned but inside a page"),
        ] {
            let (st, pc, instret, calls) = run(access, addr, opt);
            assert_eq!(st, status::EBREAK, "{opt:?}: {why}");
            assert_eq!((pc, instret), (CODE_BASE + 8, 2), "{opt:?}: {why}");
            assert_eq!(calls, 0, "{opt:?}: {why}");
        }
    }
}

#[test]
fn accesses_the_table_forbids_leave_at_the_access_without_a_call() {
    for opt in [OptLevel::Quick, OptLevel::Speed] {
        for (access, addr, why) in [
            (
                LD_X5,
                0x9ffc,
                "crossing from read-only page 9 into unmapped page 10",
            ),
            (SD_X6, 0x9000, "store into read-only page 9"),
            (LD_X5, 0xd000, "load from write-only page 13"),
            (LD_X5, 0x0, "unmapped page 0"),
            (
                LD_X5,
                GUEST_SIZE as u64 - 4,
                "crossing the end of the guest space",
            ),
            (LD_X5, u64::MAX - 3, "far outside the guest space"),
        ] {
            let (st, pc, instret, calls) = run(access, addr, opt);
            assert_eq!(st, status::SLOW_PATH, "{opt:?}: {why}");
            assert_eq!(
                (pc, instret),
                (CODE_BASE + 4, 1),
                "{opt:?}: {why}: only the instruction before the access retired"
            );
            assert_eq!(calls, 0, "{opt:?}: {why}");
        }
    }
}

/// `fadd.d`/`fsub.d` `f3, f1, f2` with rounding field `rm` and `frm`: the status it
/// leaves with and the final state (checked against the interpreter).
fn run_fadd(sub: bool, a: f64, b: f64, rm: u32, frm: u32) -> (u64, Cpu) {
    let f7 = if sub { 0x05 } else { 0x01 };
    let block = layout(&[dec(r(f7, 2, 1, rm, 3, 0x53)), dec(EBREAK)]);
    let mut cpu = Cpu::new();
    cpu.f[1] = a.to_bits();
    cpu.f[2] = b.to_bits();
    cpu.frm = frm;
    cpu.fflags = 0x4; // an earlier OF stays set
    let what = format!("{a:e} {b:e} rm {rm} frm {frm}");
    let left = run_checked(&block, cpu, OptLevel::Quick, None, &what);
    if left.st == status::SLOW_PATH {
        assert_eq!(left.pc, CODE_BASE, "{what}: slow path at the instruction");
    }
    assert_eq!(left.calls, 0, "{what}");
    (left.st, left.cpu)
}

#[test]
fn double_add_and_sub_run_inline_with_exact_flags_or_leave_for_the_interpreter() {
    let tiny = f64::from_bits(1); // the smallest subnormal
    for sub in [false, true] {
        // (a, b, whether a + b is inexact, whether a - b is)
        for (a, b, nx_add, nx_sub) in [
            (1.0, 2.0, false, false),
            (0.1, 0.2, true, false), // 0.2 is exactly 2 * 0.1 in binary
            (0.1, 0.7, true, true),
            (1e300, 1e-300, true, true),
            (0.0, -0.0, false, false),
            (-0.0, 0.0, false, false),
            (tiny, tiny, false, false),
            (2.0f64.powi(1000), -(2.0f64.powi(999)), false, false),
        ] {
            let nx = if sub { nx_sub } else { nx_add };
            for rm in [0, 7] {
                let (st, cpu) = run_fadd(sub, a, b, rm, 0);
                assert_eq!(st, status::EBREAK, "{a:e} {b:e} inline");
                assert_eq!(cpu.fflags & 1 == 1, nx, "{a:e} {b:e} NX");
                assert_eq!(cpu.fflags & 0x4, 0x4, "earlier flags kept");
            }
        }
        for (a, b) in [
            (f64::NAN, 1.0),
            (1.0, f64::INFINITY),
            (2.0f64.powi(1001), 1.0),
            (f64::MAX, f64::MAX),
        ] {
            let (st, _) = run_fadd(sub, a, b, 0, 0);
            assert_eq!(
                st,
                status::SLOW_PATH,
                "{a:e} {b:e}: out of the fast path's range"
            );
        }
        // Rounding other than to nearest-even goes to the interpreter, as does an
        // invalid dynamic mode (an illegal instruction there).
        for (rm, frm) in [(7, 1), (7, 3), (3, 0), (1, 0), (7, 5)] {
            let (st, _) = run_fadd(sub, 0.1, 0.2, rm, frm);
            assert_eq!(st, status::SLOW_PATH, "rm {rm} frm {frm}");
        }
    }
}

/// Runs one F/D instruction `word` then `ebreak` with f1, f2, f3 = `a`, `b`, `c`, x5 =
/// `x`, `fflags` and `frm`, checked against the interpreter: the status it leaves with and
/// the final state.
fn run_fp(word: u32, (a, b, c): (f64, f64, f64), x: u64, fflags: u32, frm: u32) -> (u64, Cpu) {
    let block = layout(&[dec(word), dec(EBREAK)]);
    let mut cpu = Cpu::new();
    cpu.f[1] = a.to_bits();
    cpu.f[2] = b.to_bits();
    cpu.f[3] = c.to_bits();
    cpu.x[5] = x;
    cpu.fflags = fflags;
    cpu.frm = frm;
    let what = format!("{word:#010x} {a:e} {b:e} {c:e} x5 {x:#x} fflags {fflags} frm {frm}");
    let left = run_checked(&block, cpu, OptLevel::Quick, None, &what);
    if left.st == status::SLOW_PATH {
        assert_eq!(left.pc, CODE_BASE, "{what}: slow path at the instruction");
    }
    assert_eq!(left.calls, 0, "{what}: no helper call");
    (left.st, left.cpu)
}

/// R4-type `op f4, f1, f2, f3` (double) with rounding field `rm`.
fn r4(opcode: u32, rm: u32) -> u32 {
    3 << 27 | 1 << 25 | 2 << 20 | 1 << 15 | rm << 12 | 4 << 7 | opcode
}

#[test]
fn double_mul_div_and_fused_ops_run_inline_only_where_fflags_cannot_change() {
    let fmul = |rm| r(0x09, 2, 1, rm, 4, 0x53);
    let fdiv = |rm| r(0x0d, 2, 1, rm, 4, 0x53);
    let fused = [0x43, 0x47, 0x4b, 0x4f]; // fmadd, fmsub, fnmsub, fnmadd
    let mut words: Vec<u32> = vec![fmul(0), fmul(7), fdiv(0), fdiv(7)];
    words.extend(fused.iter().flat_map(|&op| [r4(op, 0), r4(op, 7)]));
    let tiny = f64::from_bits(1);
    let big = 2f64.powi(600);
    const NX: u32 = 1;
    const OF: u32 = 4;
    for &word in &words {
        // In range with NX already set: inline, flags kept as they were.
        for ops in [
            (0.1, 3.0, 0.7),
            (-0.0, -2.5, -0.0),
            (1e100, -1e-100, 1e200),
            (0.0, 7.0, 1.0),
        ] {
            let (st, cpu) = run_fp(word, ops, 0, NX | OF, 0);
            assert_eq!(st, status::EBREAK, "{word:#x} {ops:?}: inline");
            assert_eq!(cpu.fflags, NX | OF, "{word:#x} {ops:?}: flags unchanged");
        }
        // NX clear (the result may set it), a NaN, infinity, a huge or subnormal operand,
        // or a rounding mode other than nearest-even: the interpreter decides.
        for ops in [
            (f64::NAN, 1.0, 1.0),
            (1.0, f64::INFINITY, 1.0),
            (big, 1.0, 1.0),
            (tiny, 1.0, 1.0),
            (1.0, tiny, 1.0),
        ] {
            let (st, _) = run_fp(word, ops, 0, NX, 0);
            assert_eq!(st, status::SLOW_PATH, "{word:#x} {ops:?}");
        }
        let (st, cpu) = run_fp(word, (0.1, 3.0, 0.7), 0, 0, 0);
        assert_eq!(st, status::SLOW_PATH, "{word:#x}: NX clear");
        assert_eq!(cpu.fflags & NX, NX, "{word:#x}: the interpreter sets NX");
        if word & (7 << 12) == 7 << 12 {
            for frm in [1, 3, 5] {
                let (st, _) = run_fp(word, (0.1, 3.0, 0.7), 0, NX, frm);
                assert_eq!(st, status::SLOW_PATH, "{word:#x}: frm {frm}");
            }
        }
    }
    // A zero divisor raises DZ: the interpreter's.
    let (st, cpu) = run_fp(fdiv(0), (1.0, 0.0, 0.0), 0, NX, 0);
    assert_eq!(st, status::SLOW_PATH);
    assert_eq!(cpu.fflags & 8, 8, "DZ");
    // Fused ops with a huge addend go to the interpreter.
    let (st, _) = run_fp(r4(0x43, 0), (1.0, 1.0, 2f64.powi(900)), 0, NX, 0);
    assert_eq!(st, status::SLOW_PATH);
}

#[test]
fn double_compares_and_int_to_double_run_inline() {
    for (f3, name) in [(2, "feq"), (1, "flt"), (0, "fle")] {
        let word = r(0x51, 2, 1, f3, 6, 0x53); // fX.d x6, f1, f2
        for (a, b) in [
            (1.0, 2.0),
            (2.0, 1.0),
            (0.0, -0.0),
            (-1e300, 1e300),
            (3.5, 3.5),
        ] {
            let (st, _) = run_fp(word, (a, b, 0.0), 0, 0, 0);
            assert_eq!(st, status::EBREAK, "{name} {a} {b}: inline");
        }
        // A NaN operand: NV depends on the compare and the NaN; the interpreter's.
        for (a, b) in [(f64::NAN, 1.0), (1.0, f64::NAN)] {
            let (st, _) = run_fp(word, (a, b, 0.0), 0, 0, 0);
            assert_eq!(st, status::SLOW_PATH, "{name} with a NaN");
        }
    }
    for (rs2, signed) in [(0, true), (1, false)] {
        for rm in [0, 1, 4, 7] {
            let word = r(0x69, rs2, 5, rm, 4, 0x53); // fcvt.d.w[u] f4, x5
            for x in [
                0u64,
                1,
                0x7fff_ffff,
                0xffff_ffff,
                0x8000_0000,
                0x1234_5678_9abc_def0,
            ] {
                let (st, cpu) = run_fp(word, (0.0, 0.0, 0.0), x, 0, 0);
                assert_eq!(
                    st,
                    status::EBREAK,
                    "fcvt.d.w signed {signed} rm {rm} {x:#x}"
                );
                assert_eq!(cpu.fflags, 0);
            }
        }
        // An invalid dynamic rounding mode is an illegal instruction: the interpreter's.
        let word = r(0x69, rs2, 5, 7, 4, 0x53);
        let (st, _) = run_fp(word, (0.0, 0.0, 0.0), 5, 0, 5);
        assert_eq!(st, status::SLOW_PATH);
    }
}

#[test]
fn random_mul_div_and_fused_operands_agree_with_the_interpreter() {
    // Operands around the fast path's bounds, half of them inside: the value and the
    // flags must be the interpreter's either way (`run_checked` compares everything).
    let mut rng = Rng::new(0x5eed_f10a7);
    let double = |rng: &mut Rng, e: i64| -> f64 {
        if rng.chance(10) {
            return if rng.chance(50) { 0.0 } else { -0.0 };
        }
        let exp = (1023 + rng.below(2 * e as u64 + 1) as i64 - e) as u64;
        let bits = (rng.next() & (1 << 63)) | (exp << 52) | (rng.next() & ((1 << 52) - 1));
        f64::from_bits(bits)
    };
    let words = [
        r(0x09, 2, 1, 0, 4, 0x53),
        r(0x0d, 2, 1, 7, 4, 0x53),
        r4(0x43, 0),
        r4(0x47, 7),
        r4(0x4b, 0),
        r4(0x4f, 0),
    ];
    let mut inline = 0;
    for &word in &words {
        for _ in 0..150 {
            let ops = (
                double(&mut rng, 520),
                double(&mut rng, 520),
                double(&mut rng, 850),
            );
            let (st, _) = run_fp(word, ops, 0, 1, 0);
            inline += usize::from(st == status::EBREAK);
        }
    }
    assert!(inline > 200, "the fast path ran {inline} times of 900");
}

/// Runs `block` from x1 = `addr`, x6 = a pattern, checked against the interpreter, at
/// both tiers: the status, pc and instret it left with (the same at both).
fn run_block_at(words: &[u32], addr: u64) -> (u64, u64, u64) {
    let block = layout(&words.iter().map(|&w| dec(w)).collect::<Vec<_>>());
    let mut cpu = Cpu::new();
    cpu.x[1] = addr;
    cpu.x[6] = 0x0102_0304_0506_0708;
    let mut seen = None;
    for opt in [OptLevel::Quick, OptLevel::Speed] {
        let what = format!("{opt:?} at {addr:#x}");
        let left = run_checked(&block, cpu.clone(), opt, Some(GUEST_SIZE as u64), &what);
        assert_eq!(left.calls, 0, "{what}");
        let got = (left.st, left.pc, left.instret);
        assert!(seen.is_none_or(|s| s == got), "{what}: tiers differ");
        seen = Some(got);
    }
    seen.unwrap_or_default()
}

#[test]
fn accesses_through_one_base_share_one_check_that_leaves_before_the_first() {
    // sd x6, 0(x1); sd x6, 8(x1); sd x6, 16(x1); ebreak
    let stores = [
        s(0, 6, 1, 3, 0x23),
        s(8, 6, 1, 3, 0x23),
        s(16, 6, 1, 3, 0x23),
        EBREAK,
    ];
    assert_eq!(
        run_block_at(&stores, 0x2000),
        (status::EBREAK, CODE_BASE + 12, 3),
        "all three inside a read-write page"
    );
    // The third store reaches read-only page 9: the group's one check fails, so the
    // block leaves before the first store, and the interpreter faults at the third.
    assert_eq!(
        run_block_at(&stores, 0x8ff0),
        (status::SLOW_PATH, CODE_BASE, 0),
        "a group member out of bounds"
    );
}

#[test]
fn a_base_register_written_between_accesses_is_checked_again() {
    // sd x6, 0(x1); addi x1, x1, 8; sd x6, 0(x1); ebreak: the same offset through a new
    // value of x1 is a new check.
    let words = [
        s(0, 6, 1, 3, 0x23),
        i(8, 1, 0, 1, 0x13),
        s(0, 6, 1, 3, 0x23),
        EBREAK,
    ];
    assert_eq!(
        run_block_at(&words, 0x8ff8),
        (status::SLOW_PATH, CODE_BASE + 8, 2),
        "the second store (into read-only page 9) leaves at itself"
    );
    assert_eq!(
        run_block_at(&words, 0x2000),
        (status::EBREAK, CODE_BASE + 12, 3)
    );
}
