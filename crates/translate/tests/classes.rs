//! Per-class tests: hand-written blocks whose results are asserted by value and
//! cross-checked against the interpreter, at both optimization levels.

mod common;

use common::*;
use rv64::{Cpu, Exit, Insn};
use translate::{OptLevel, TranslateError, Translator};

/// Runs `words` as one block from `cpu` at both tiers; asserts the JIT equals the
/// interpreter and returns the JIT's outcome.
fn run(words: &[u32], cpu: &Cpu) -> Outcome {
    let insns: Vec<Insn> = words.iter().map(|&w| dec(w)).collect();
    let block = layout(&insns);
    let mut mem = vec![0u8; GUEST_SIZE];
    for (k, b) in mem.iter_mut().enumerate() {
        *b = (k as u8).wrapping_mul(37).wrapping_add(11);
    }
    let perms = test_perms();
    let mut out = None;
    for opt in [OptLevel::Quick, OptLevel::Speed] {
        let mut tr = translator(opt);
        out = Some(check(
            &mut tr,
            &block,
            cpu,
            &mem,
            &perms,
            &format!("{opt:?}"),
        ));
    }
    out.expect("ran")
}

fn cpu_with(regs: &[(usize, u64)]) -> Cpu {
    let mut cpu = Cpu::new();
    for &(r, v) in regs {
        cpu.x[r] = v;
    }
    cpu
}

const ADD: fn(u32, u32, u32) -> u32 = |rd, a, b| r(0, b, a, 0, rd, 0x33);

#[test]
fn division_by_zero_and_overflow_follow_riscv() {
    let min = i64::MIN as u64;
    let m = |f3, rd| r(1, 2, 1, f3, rd, 0x33);
    let mw = |f3, rd| r(1, 2, 1, f3, rd, 0x3b);
    // x1 / 0
    let out = run(
        &[
            m(4, 10),
            m(5, 11),
            m(6, 12),
            m(7, 13),
            mw(4, 14),
            mw(5, 15),
            mw(6, 16),
            mw(7, 17),
            EBREAK,
        ],
        &cpu_with(&[(1, 1234), (2, 0)]),
    );
    assert_eq!(
        &out.cpu.x[10..18],
        &[
            u64::MAX,
            u64::MAX,
            1234,
            1234,
            u64::MAX,
            u64::MAX,
            1234,
            1234
        ]
    );
    // MIN / -1
    let out = run(
        &[m(4, 10), m(6, 11), EBREAK],
        &cpu_with(&[(1, min), (2, u64::MAX)]),
    );
    assert_eq!(&out.cpu.x[10..12], &[min, 0]);
    let out = run(
        &[mw(4, 10), mw(6, 11), EBREAK],
        &cpu_with(&[(1, i32::MIN as i64 as u64), (2, u64::MAX)]),
    );
    assert_eq!(&out.cpu.x[10..12], &[i32::MIN as i64 as u64, 0]);
    // Ordinary signed and unsigned results, and 32-bit results sign-extended.
    let out = run(
        &[m(4, 10), m(5, 11), m(6, 12), m(7, 13), mw(5, 14), EBREAK],
        &cpu_with(&[(1, -7i64 as u64), (2, 2)]),
    );
    assert_eq!(out.cpu.x[10], -3i64 as u64);
    assert_eq!(out.cpu.x[11], (-7i64 as u64) / 2);
    assert_eq!(out.cpu.x[12], -1i64 as u64);
    assert_eq!(out.cpu.x[13], 1);
    assert_eq!(out.cpu.x[14], ((-7i32 as u32) / 2) as i32 as i64 as u64);
}

#[test]
fn high_multiplies_match_128_bit_products() {
    let m = |f3, rd| r(1, 2, 1, f3, rd, 0x33);
    for (a, b) in [
        (u64::MAX, 3u64),
        (i64::MIN as u64, u64::MAX),
        (0x1234_5678_9abc_def0, 0xfedc_ba98_7654_3210),
        (5, u64::MAX),
    ] {
        let out = run(
            &[
                m(0, 10),
                m(1, 11),
                m(2, 12),
                m(3, 13),
                r(1, 2, 1, 0, 14, 0x3b),
                EBREAK,
            ],
            &cpu_with(&[(1, a), (2, b)]),
        );
        assert_eq!(out.cpu.x[10], a.wrapping_mul(b));
        assert_eq!(
            out.cpu.x[11],
            ((a as i64 as i128 * b as i64 as i128) >> 64) as u64
        );
        assert_eq!(
            out.cpu.x[12],
            ((a as i64 as i128 * b as i128) >> 64) as u64,
            "mulhsu {a:#x} {b:#x}"
        );
        assert_eq!(out.cpu.x[13], ((a as u128 * b as u128) >> 64) as u64);
        assert_eq!(
            out.cpu.x[14],
            (a as u32).wrapping_mul(b as u32) as i32 as i64 as u64
        );
    }
}

#[test]
fn shifts_use_only_the_low_amount_bits_and_w_ops_sign_extend() {
    let out = run(
        &[
            r(0, 2, 1, 1, 10, 0x33),    // sll x10, x1, x2   (amount 65 -> 1)
            r(0x20, 2, 1, 5, 11, 0x33), // sra x11
            r(0, 2, 1, 1, 12, 0x3b),    // sllw x12 (amount 65 -> 1)
            r(0x20, 2, 1, 5, 13, 0x3b), // sraw
            r(0, 2, 1, 5, 14, 0x3b),    // srlw
            i(1, 1, 0, 15, 0x1b),       // addiw x15, x1, 1
            r(0, 1, 1, 0, 16, 0x3b),    // addw x16, x1, x1
            EBREAK,
        ],
        &cpu_with(&[(1, 0x8000_0000_c000_0001), (2, 65)]),
    );
    assert_eq!(out.cpu.x[10], 0x0000_0001_8000_0002);
    assert_eq!(out.cpu.x[11], 0xc000_0000_6000_0000);
    assert_eq!(out.cpu.x[12], 0xffff_ffff_8000_0002);
    assert_eq!(out.cpu.x[13], 0xffff_ffff_e000_0000);
    assert_eq!(out.cpu.x[14], 0x6000_0000);
    assert_eq!(out.cpu.x[15], 0xffff_ffff_c000_0002);
    assert_eq!(out.cpu.x[16], 0xffff_ffff_8000_0002);
}

#[test]
fn writes_to_x0_vanish_and_lui_auipc_use_the_block_pc() {
    let out = run(
        &[
            i(5, 0, 0, 0, 0x13),
            u(0x12345, 10, 0x37),
            u(0xfffff, 11, 0x17),
            ADD(12, 0, 0),
            EBREAK,
        ],
        &Cpu::new(),
    );
    assert_eq!(out.cpu.x[0], 0);
    assert_eq!(out.cpu.x[10], 0x1234_5000);
    assert_eq!(out.cpu.x[11], (CODE_BASE + 8).wrapping_sub(0x1000));
    assert_eq!(out.cpu.x[12], 0);
}

/// `c.lui x0, imm` is an RVC HINT (it used to decode as illegal): a no-op that retires.
#[test]
fn a_compressed_lui_hint_retires_and_writes_nothing() {
    let cpu = cpu_with(&[(1, 7)]);
    let out = run(&[0x6005, 0x707d, EBREAK], &cpu);
    assert_eq!(out.exit, Some(Exit::Ebreak));
    assert_eq!((out.cpu.pc, out.cpu.instret), (CODE_BASE + 4, 2));
    assert_eq!(out.cpu.x, cpu.x);
}

#[test]
fn loads_extend_and_stores_truncate_including_misaligned_and_page_crossing() {
    // x1 = 0x1ffd: an 8-byte access there crosses from page 1 into page 2 (both RW).
    let sd = s(0, 2, 1, 3, 0x23);
    let out = run(
        &[
            sd,
            i(0, 1, 3, 10, 0x03), // ld
            i(0, 1, 0, 11, 0x03), // lb
            i(0, 1, 4, 12, 0x03), // lbu
            i(1, 1, 1, 13, 0x03), // lh (misaligned)
            i(1, 1, 5, 14, 0x03), // lhu
            i(1, 1, 2, 15, 0x03), // lw crossing
            i(1, 1, 6, 16, 0x03), // lwu crossing
            s(8, 2, 1, 0, 0x23),  // sb
            s(10, 2, 1, 1, 0x23), // sh
            s(12, 2, 1, 2, 0x23), // sw
            i(8, 1, 3, 17, 0x03), // ld of what the narrow stores wrote
            EBREAK,
        ],
        &cpu_with(&[(1, 0x1ffd), (2, 0x8899_aabb_ccdd_eeff)]),
    );
    assert_eq!(out.exit, Some(Exit::Ebreak));
    assert_eq!(out.cpu.x[10], 0x8899_aabb_ccdd_eeff);
    assert_eq!(out.cpu.x[11], 0xffff_ffff_ffff_ffff);
    assert_eq!(out.cpu.x[12], 0xff);
    assert_eq!(out.cpu.x[13], 0xffff_ffff_ffff_ddee);
    assert_eq!(out.cpu.x[14], 0xddee);
    assert_eq!(out.cpu.x[15], 0xffff_ffff_bbcc_ddee);
    assert_eq!(out.cpu.x[16], 0xbbcc_ddee);
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&out.mem[0x2005..0x200d]);
    assert_eq!(&bytes[..1], &[0xff]);
    assert_eq!(&bytes[2..], &[0xff, 0xee, 0xff, 0xee, 0xdd, 0xcc]);
    assert_eq!(out.cpu.x[17], u64::from_le_bytes(bytes));
}

#[test]
fn branches_pick_target_or_fallthrough_and_jumps_link() {
    for (x1, x2, taken) in [(1u64, 1u64, true), (1, 2, false)] {
        let out = run(
            &[i(1, 0, 0, 5, 0x13), b(64, 2, 1, 0)],
            &cpu_with(&[(1, x1), (2, x2)]),
        );
        let br = CODE_BASE + 4;
        assert_eq!(out.cpu.pc, if taken { br + 64 } else { br + 4 });
        assert_eq!(out.cpu.instret, 2);
        assert_eq!(out.exit, None);
    }
    // blt/bgeu with signed vs unsigned disagreement.
    let out = run(&[b(-16, 2, 1, 4)], &cpu_with(&[(1, u64::MAX), (2, 1)]));
    assert_eq!(out.cpu.pc, CODE_BASE - 16);
    let out = run(&[b(-16, 2, 1, 7)], &cpu_with(&[(1, u64::MAX), (2, 1)]));
    assert_eq!(out.cpu.pc, CODE_BASE - 16);
    // jal links; jalr with rd == rs1 uses the old value and clears bit 0.
    let out = run(&[j(-2048, 1)], &Cpu::new());
    assert_eq!(
        (out.cpu.pc, out.cpu.x[1]),
        (CODE_BASE - 2048, CODE_BASE + 4)
    );
    let out = run(&[i(3, 5, 0, 5, 0x67)], &cpu_with(&[(5, 0x4000)]));
    assert_eq!((out.cpu.pc, out.cpu.x[5]), (0x4002, CODE_BASE + 4));
}

#[test]
fn block_without_terminator_falls_through_with_every_instruction_counted() {
    let insns = [
        dec(i(1, 1, 0, 1, 0x13)),
        dec(0x0505),
        dec(i(1, 1, 0, 1, 0x13)),
    ]; // c.addi a0, 1
    let block = layout(&insns);
    let mut tr = translator(OptLevel::Quick);
    let out = check(
        &mut tr,
        &block,
        &cpu_with(&[(1, 5), (10, 7)]),
        &vec![0; GUEST_SIZE],
        &test_perms(),
        "fallthrough",
    );
    assert_eq!(out.cpu.pc, CODE_BASE + 10);
    assert_eq!(out.cpu.instret, 3);
    assert_eq!((out.cpu.x[1], out.cpu.x[10]), (7, 8));
}

#[test]
fn system_exits_report_pc_and_retired_count_like_the_interpreter() {
    let out = run(&[i(1, 0, 0, 5, 0x13), ECALL], &Cpu::new());
    assert_eq!(
        (out.exit, out.cpu.pc, out.cpu.instret, out.cpu.x[5]),
        (Some(Exit::Ecall), CODE_BASE + 4, 1, 1)
    );
    let out = run(&[i(1, 0, 0, 5, 0x13), FENCE_I], &Cpu::new());
    assert_eq!(
        (out.exit, out.cpu.pc, out.cpu.instret),
        (Some(Exit::FenceI), CODE_BASE + 8, 2)
    );
    let out = run(&[0x0ff0_000f, EBREAK], &Cpu::new()); // fence; ebreak
    assert_eq!(
        (out.exit, out.cpu.pc, out.cpu.instret),
        (Some(Exit::Ebreak), CODE_BASE + 4, 1)
    );
}

#[test]
fn helper_instructions_see_cached_registers_and_their_results_are_reloaded() {
    let out = run(
        &[
            i(21, 0, 0, 5, 0x13),      // addi x5, x0, 21 (cached, dirty)
            r(0x69, 2, 5, 7, 1, 0x53), // fcvt.d.l f1, x5 (helper reads x5)
            r(0x01, 1, 1, 7, 1, 0x53), // fadd.d f1, f1, f1
            r(0x71, 0, 1, 0, 6, 0x53), // fmv.x.d x6, f1 (helper writes x6)
            ADD(7, 6, 5),              // add x7, x6, x5 (uses the reloaded x6)
            r(0x61, 2, 1, 1, 8, 0x53), // fcvt.l.d x8, f1, rtz
            EBREAK,
        ],
        &Cpu::new(),
    );
    assert_eq!(out.cpu.f[1], 42.0f64.to_bits());
    assert_eq!(out.cpu.x[6], 42.0f64.to_bits());
    assert_eq!(out.cpu.x[7], 42.0f64.to_bits() + 21);
    assert_eq!(out.cpu.x[8], 42);
}

#[test]
fn rdinstret_in_the_middle_of_a_block_is_exact() {
    let mut cpu = Cpu::new();
    cpu.instret = 1000;
    let rdinstret = i(0xc02, 0, 2, 10, 0x73);
    let out = run(
        &[0x13, 0x13, rdinstret, 0x13, rdinstret | 1 << 7, EBREAK],
        &cpu,
    );
    assert_eq!(out.cpu.x[10], 1002);
    assert_eq!(out.cpu.x[11], 1004);
    assert_eq!(out.cpu.instret, 1005);
}

#[test]
fn atomics_and_reservations_go_through_the_helper() {
    let lr_d = r(0x02 << 2, 0, 1, 3, 10, 0x2f);
    let sc_d = r(0x03 << 2, 2, 1, 3, 11, 0x2f);
    let amoadd_w = r(0, 2, 1, 2, 12, 0x2f);
    let out = run(
        &[lr_d, sc_d, amoadd_w, i(0, 1, 2, 13, 0x03), EBREAK],
        &cpu_with(&[(1, 0x3000), (2, 5)]),
    );
    assert_eq!(out.cpu.x[11], 0, "sc.d succeeds after lr.d");
    assert_eq!(out.cpu.x[12], 5, "amoadd returns the stored 5 (low word)");
    assert_eq!(out.cpu.x[13], 10);
    assert_eq!(out.cpu.reservation, Cpu::NO_RESERVATION);
}

#[test]
fn illegal_instructions_exit_with_their_bits() {
    let block = layout(&[
        dec(0x13),
        Insn {
            op: rv64::Op::Illegal,
            rd: 0,
            rs1: 0,
            rs2: 0,
            rs3: 0,
            rm: 0,
            len: 4,
            imm: 0,
            raw: 0xdead_beef,
        },
    ]);
    let mut tr = translator(OptLevel::Quick);
    let out = check(
        &mut tr,
        &block,
        &Cpu::new(),
        &vec![0; GUEST_SIZE],
        &test_perms(),
        "illegal",
    );
    assert_eq!(
        out.exit,
        Some(Exit::Illegal {
            pc: CODE_BASE + 4,
            raw: 0xdead_beef
        })
    );
    assert_eq!(out.cpu.instret, 1);
    // Writing the read-only cycle CSR decodes but is illegal at run time (helper).
    let out = run(&[0x13, i(0xc00, 1, 1, 5, 0x73)], &Cpu::new());
    assert!(matches!(out.exit, Some(Exit::Illegal { pc, .. }) if pc == CODE_BASE + 4));
    assert_eq!(out.cpu.instret, 1);
}

#[test]
fn translated_code_runs_unchanged_from_any_address() {
    let block = layout(&[
        dec(u(0x12345, 10, 0x17)),
        dec(i(8, 1, 3, 11, 0x03)),
        dec(r(1, 2, 1, 0, 12, 0x33)),
        dec(j(100, 1)),
    ]);
    let mut tr = translator(OptLevel::Speed);
    let compiled = tr.translate(&block).expect("translate");
    let cpu = cpu_with(&[(1, 0x2000), (2, 3)]);
    let mut results = Vec::new();
    // Two separate mappings of the same bytes (different addresses) behave the same.
    let bufs: Vec<_> = (0..2)
        .map(|_| translate::exec_mem::ExecBuf::new(&compiled.code).expect("map"))
        .collect();
    for buf in &bufs {
        let mut mem = vec![7u8; GUEST_SIZE];
        let perms = test_perms();
        let mut ctx = translate::JitContext::new(
            cpu.clone(),
            mem.as_mut_ptr(),
            perms.as_ptr(),
            GUEST_SIZE as u64,
            &translate::helpers::FLAT_HELPERS,
        );
        // SAFETY: the context points at `mem` and `perms`, alive for the call.
        let st = unsafe { buf.call(&mut ctx) };
        results.push((st, ctx.cpu.clone()));
    }
    assert_eq!(results[0], results[1]);
    assert_eq!(results[0].1.x[11], 0x0707_0707_0707_0707);
    let int = run_interp(&block, &cpu, &vec![7u8; GUEST_SIZE], &test_perms());
    assert_eq!(results[0].1, int.cpu);
}

#[test]
fn malformed_blocks_are_typed_errors() {
    let mut tr = Translator::new().expect("host");
    assert!(matches!(tr.translate(&[]), Err(TranslateError::EmptyBlock)));
    let nop = dec(0x13);
    assert!(matches!(
        tr.translate(&[(0x100, nop), (0x108, nop)]),
        Err(TranslateError::NotContiguous {
            pc: 0x108,
            expected: 0x104
        })
    ));
    assert!(matches!(
        tr.translate(&[(0x100, dec(ECALL)), (0x104, nop)]),
        Err(TranslateError::EarlyEnd { pc: 0x100 })
    ));
    let mut forged = nop;
    forged.rd = 5;
    assert!(matches!(
        tr.translate(&[(0x100, forged)]),
        Err(TranslateError::Inconsistent {
            pc: 0x100,
            raw: 0x13
        })
    ));
    let mut bad = nop;
    bad.len = 3;
    assert!(matches!(
        tr.translate(&[(0x100, bad)]),
        Err(TranslateError::BadLength { pc: 0x100, len: 3 })
    ));
    let long: Vec<_> = (0..=translate::MAX_BLOCK_INSNS as u64)
        .map(|k| (4 * k, nop))
        .collect();
    assert!(matches!(
        tr.translate(&long),
        Err(TranslateError::TooLong(_))
    ));
    // The translator is still usable after errors.
    assert!(tr.translate(&[(0x100, nop)]).is_ok());
}

#[test]
fn float_loads_stores_moves_and_sign_injection_keep_nan_boxing() {
    let mut cpu = cpu_with(&[(1, 0x3000), (2, 0x1234_5678_9abc_def0)]);
    cpu.f[1] = 0xffff_ffff_3f80_0000; // 1.0f, properly boxed
    cpu.f[2] = 0x0000_0000_bf80_0000; // -1.0f, NOT boxed: reads as the canonical NaN
    cpu.f[3] = (-2.5f64).to_bits();
    cpu.f[4] = 1.5f64.to_bits();
    let out = run(
        &[
            s(0, 3, 1, 3, 0x27),        // fsd f3, 0(x1)
            i(0, 1, 2, 5, 0x07),        // flw f5, 0(x1): low word, boxed
            i(0, 1, 3, 6, 0x07),        // fld f6, 0(x1)
            s(8, 1, 1, 2, 0x27),        // fsw f1, 8(x1)
            r(0x10, 1, 2, 0, 7, 0x53),  // fsgnj.s f7, f2, f1 (f2 unboxed -> NaN)
            r(0x10, 2, 1, 1, 8, 0x53),  // fsgnjn.s f8, f1, f2
            r(0x11, 3, 4, 2, 9, 0x53),  // fsgnjx.d f9, f4, f3
            r(0x11, 4, 3, 0, 10, 0x53), // fsgnj.d f10, f3, f4
            r(0x70, 0, 2, 0, 10, 0x53), // fmv.x.w x10, f2 (low bits, sign-extended)
            r(0x71, 0, 3, 0, 11, 0x53), // fmv.x.d x11, f3
            r(0x78, 0, 2, 0, 11, 0x53), // fmv.w.x f11, x2
            r(0x79, 0, 2, 0, 12, 0x53), // fmv.d.x f12, x2
            i(8, 1, 2, 12, 0x03),       // lw x12, 8(x1)
            EBREAK,
        ],
        &cpu,
    );
    let bits = (-2.5f64).to_bits();
    assert_eq!(out.cpu.f[5], 0xffff_ffff_0000_0000 | (bits & 0xffff_ffff));
    assert_eq!(out.cpu.f[6], bits);
    assert_eq!(out.cpu.x[12], 0x3f80_0000);
    assert_eq!(
        out.cpu.f[7], 0xffff_ffff_7fc0_0000,
        "canonical NaN with f1's positive sign"
    );
    assert_eq!(
        out.cpu.f[8], 0xffff_ffff_bf80_0000,
        "sign of the canonical NaN is +, inverted"
    );
    assert_eq!(out.cpu.f[9], (-1.5f64).to_bits());
    assert_eq!(out.cpu.f[10], 2.5f64.to_bits());
    assert_eq!(out.cpu.x[10], 0xffff_ffff_bf80_0000);
    assert_eq!(out.cpu.x[11], bits);
    assert_eq!(out.cpu.f[11], 0xffff_ffff_9abc_def0);
    assert_eq!(out.cpu.f[12], 0x1234_5678_9abc_def0);
}
