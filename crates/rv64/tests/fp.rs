//! F and D: every instruction against reference results recorded from qemu-riscv64
//! (tests/data/fp_vectors_qemu.txt, generator in tests/data/fpgen), plus the corner cases
//! the spec singles out, stated by hand.

mod common;
use common::*;
use rv64::disasm::op_name;
use rv64::{Cpu, Exit, decode};

const CANON32: u64 = 0xffff_ffff_7fc0_0000;
const CANON64: u64 = 0x7ff8_0000_0000_0000;
const NV: u32 = 0x10;
const DZ: u32 = 0x08;
const OF: u32 = 0x04;
const UF: u32 = 0x02;
const NX: u32 = 0x01;

/// Float registers used: sources f0, f1, f2; destination f3. Integer: source x6,
/// destination x5.
#[derive(Clone, Copy)]
enum Shape {
    /// Float result, float sources.
    F,
    /// Integer result, float sources.
    X,
    /// Float result, integer source.
    FromX,
}

/// Encodes a named F/D instruction with rounding-mode field `rm`.
fn encode(name: &str, rm: u32) -> (u32, Shape) {
    let fma = match name {
        "fmadd.s" | "fmadd.d" => Some(0x43),
        "fmsub.s" | "fmsub.d" => Some(0x47),
        "fnmsub.s" | "fnmsub.d" => Some(0x4b),
        "fnmadd.s" | "fnmadd.d" => Some(0x4f),
        _ => None,
    };
    let dbl = u32::from(name.ends_with(".d"));
    if let Some(opc) = fma {
        return (r(2 << 2 | dbl, 1, 0, rm, 3, opc), Shape::F);
    }
    let (base, rs2, f3, shape): (u32, Option<u32>, Option<u32>, Shape) = match &name
        [..name.len() - 2]
    {
        "fadd" => (0x00, None, None, Shape::F),
        "fsub" => (0x04, None, None, Shape::F),
        "fmul" => (0x08, None, None, Shape::F),
        "fdiv" => (0x0c, None, None, Shape::F),
        "fsqrt" => (0x2c, Some(0), None, Shape::F),
        "fsgnj" => (0x10, None, Some(0), Shape::F),
        "fsgnjn" => (0x10, None, Some(1), Shape::F),
        "fsgnjx" => (0x10, None, Some(2), Shape::F),
        "fmin" => (0x14, None, Some(0), Shape::F),
        "fmax" => (0x14, None, Some(1), Shape::F),
        "feq" => (0x50, None, Some(2), Shape::X),
        "flt" => (0x50, None, Some(1), Shape::X),
        "fle" => (0x50, None, Some(0), Shape::X),
        "fclass" => (0x70, Some(0), Some(1), Shape::X),
        "fmv.x" => return (r(0x70, 0, 0, 0, 5, 0x53), Shape::X),
        "fcvt.s" if name == "fcvt.s.d" => return (r(0x20, 1, 0, rm, 3, 0x53), Shape::F),
        "fcvt.d" if name == "fcvt.d.s" => return (r(0x21, 0, 0, rm, 3, 0x53), Shape::F),
        _ => {
            // fcvt.<int>.<fmt> and fcvt.<fmt>.<int>
            let parts: Vec<&str> = name.split('.').collect();
            let sel = |s: &str| ["w", "wu", "l", "lu"].iter().position(|&x| x == s).unwrap() as u32;
            if parts[1] == "s" || parts[1] == "d" {
                let d = u32::from(parts[1] == "d");
                return (r(0x68 | d, sel(parts[2]), 6, rm, 3, 0x53), Shape::FromX);
            }
            let d = u32::from(parts[2] == "d");
            return (r(0x60 | d, sel(parts[1]), 0, rm, 5, 0x53), Shape::X);
        }
    };
    let rd = if matches!(shape, Shape::X) { 5 } else { 3 };
    let f7 = base | dbl;
    (
        r(f7, rs2.unwrap_or(1), 0, f3.unwrap_or(rm), rd, 0x53),
        shape,
    )
}

/// Runs `raw` with the given sources; returns (result register, fflags) or the exit.
fn run(raw: u32, shape: Shape, frm: u32, a: u64, b: u64, c: u64) -> Result<(u64, u32), Exit> {
    let (mut cpu, mut mem) = setup();
    cpu.frm = frm;
    cpu.f[0] = a;
    cpu.f[1] = b;
    cpu.f[2] = c;
    cpu.x[6] = a;
    exec(&mut cpu, &mut mem, raw)?;
    let v = match shape {
        Shape::X => cpu.x[5],
        _ => cpu.f[3],
    };
    Ok((v, cpu.fflags))
}

#[test]
fn every_fp_instruction_matches_qemu_in_every_rounding_mode() {
    let data = include_str!("data/fp_vectors_qemu.txt");
    let mut checked = 0;
    for line in data.lines().filter(|l| !l.starts_with('#')) {
        let f: Vec<&str> = line.split(' ').collect();
        let name = f[0];
        let hex = |s: &str| u64::from_str_radix(s, 16).unwrap();
        let rm: u32 = f[1].parse().unwrap();
        let (a, b, c, want, want_flags) =
            (hex(f[2]), hex(f[3]), hex(f[4]), hex(f[5]), hex(f[6]) as u32);
        // Dynamic rounding: rm field 7, frm selects.
        let (raw, shape) = encode(name, 7);
        let insn = decode(raw).unwrap();
        let uses_rm = insn.rm == 7;
        assert_eq!(op_name(insn.op), name, "encoding table for {name}");
        let frm = if rm == 7 { 0 } else { rm };
        let got = run(raw, shape, frm, a, b, c).unwrap();
        assert_eq!(got, (want, want_flags), "{line} (dynamic rm)");
        if uses_rm && rm != 7 {
            // Static rounding: the same result whatever frm holds (even a reserved one).
            let (raw, shape) = encode(name, rm);
            let got = run(raw, shape, 6, a, b, c).unwrap();
            assert_eq!(got, (want, want_flags), "{line} (static rm)");
        }
        checked += 1;
    }
    assert!(checked > 2000, "vector file read ({checked} lines)");
}

fn f32b(v: f32) -> u64 {
    0xffff_ffff_0000_0000 | v.to_bits() as u64
}

fn d(v: f64) -> u64 {
    v.to_bits()
}

#[test]
fn improperly_boxed_singles_read_as_the_canonical_nan() {
    let (raw, shape) = encode("fadd.s", 0);
    // Upper half not all ones: the operand is NaN, so the result is the canonical NaN
    // (quiet: no NV).
    assert_eq!(
        run(raw, shape, 0, 0x0000_0000_3f80_0000, f32b(1.0), 0).unwrap(),
        (CANON32, 0)
    );
    assert_eq!(
        run(raw, shape, 0, f32b(1.0), f32b(2.0), 0).unwrap(),
        (f32b(3.0), 0)
    );
    let (raw, shape) = encode("fclass.s", 0);
    assert_eq!(
        run(raw, shape, 0, 0x1234_5678_0000_0000, 0, 0).unwrap(),
        (1 << 9, 0)
    );
    // fsgnj.s also reads its operands unboxed.
    let (raw, shape) = encode("fsgnj.s", 0);
    assert_eq!(
        run(raw, shape, 0, 0x0000_0000_3f80_0000, f32b(-1.0), 0).unwrap(),
        (0xffff_ffff_ffc0_0000, 0)
    );
}

#[test]
fn single_loads_box_and_moves_copy_raw_bits() {
    let (mut cpu, mut mem) = setup();
    cpu.x[1] = DATA;
    rv64::Memory::store64(&mut mem, DATA, 0x1111_2222_bf80_0000).unwrap();
    exec(&mut cpu, &mut mem, i(0, 1, 2, 3, 0x07)).unwrap(); // flw f3, 0(x1)
    assert_eq!(cpu.f[3], 0xffff_ffff_bf80_0000);
    cpu.f[4] = 0x0000_0001_8000_0001; // not boxed
    exec(&mut cpu, &mut mem, s(8, 4, 1, 2, 0x27)).unwrap(); // fsw f4, 8(x1): low bits as they are
    assert_eq!(rv64::Memory::load32(&mem, DATA + 8).unwrap(), 0x8000_0001);
    exec(&mut cpu, &mut mem, r(0x70, 0, 4, 0, 5, 0x53)).unwrap(); // fmv.x.w x5, f4
    assert_eq!(
        cpu.x[5], 0xffff_ffff_8000_0001,
        "fmv.x.w sign-extends the low word"
    );
    cpu.x[6] = 0xdead_beef_4000_0000;
    exec(&mut cpu, &mut mem, r(0x78, 0, 6, 0, 7, 0x53)).unwrap(); // fmv.w.x f7, x6
    assert_eq!(cpu.f[7], 0xffff_ffff_4000_0000);
    exec(&mut cpu, &mut mem, r(0x79, 0, 6, 0, 8, 0x53)).unwrap(); // fmv.d.x f8, x6
    assert_eq!(cpu.f[8], 0xdead_beef_4000_0000);
}

#[test]
fn reserved_rounding_modes_are_illegal_static_at_decode_dynamic_at_execute() {
    for rm in [5, 6] {
        assert!(decode(encode("fadd.d", rm).0).is_err(), "static rm {rm}");
        assert!(
            decode(encode("fmadd.s", rm).0).is_err(),
            "static rm {rm} fma"
        );
        assert!(
            decode(encode("fcvt.w.d", rm).0).is_err(),
            "static rm {rm} fcvt"
        );
    }
    let (raw, shape) = encode("fadd.d", 7);
    for frm in [5, 6, 7] {
        let (mut cpu, mut mem) = setup();
        cpu.frm = frm;
        cpu.f[3] = 77;
        assert_eq!(
            exec(&mut cpu, &mut mem, raw),
            Err(Exit::Illegal { pc: CODE, raw })
        );
        assert_eq!((cpu.f[3], cpu.pc, cpu.fflags), (77, CODE, 0));
    }
    // Instructions without a rounding mode do not care about frm.
    let (raw, _) = encode("fmin.d", 0);
    let (mut cpu, mut mem) = setup();
    cpu.frm = 7;
    assert!(exec(&mut cpu, &mut mem, raw).is_ok());
    let _ = shape;
}

#[test]
fn each_rounding_mode_rounds_ties_and_inexact_values_its_own_way() {
    // 1 + 2^-24 is halfway between two singles: 1.0 and 1 + 2^-23.
    let tie = d(1.0 + f64::powi(2.0, -24));
    let up = f32b(1.0 + f32::powi(2.0, -23));
    let one = f32b(1.0);
    let want = [one, one, one, up, up]; // rne rtz rdn rup rmm
    for (rm, w) in want.into_iter().enumerate() {
        let (raw, shape) = encode("fcvt.s.d", rm as u32);
        assert_eq!(run(raw, shape, 0, tie, 0, 0).unwrap(), (w, NX), "rm {rm}");
    }
    // The negative tie.
    let ntie = d(-(1.0 + f64::powi(2.0, -24)));
    let nup = f32b(-(1.0 + f32::powi(2.0, -23)));
    let none = f32b(-1.0);
    for (rm, w) in [none, none, nup, none, nup].into_iter().enumerate() {
        let (raw, shape) = encode("fcvt.s.d", rm as u32);
        assert_eq!(run(raw, shape, 0, ntie, 0, 0).unwrap(), (w, NX), "rm {rm}");
    }
    // -2.5 and 2.5 to integers.
    for (rm, (wn, wp)) in [(-2, 2), (-2, 2), (-3, 2), (-2, 3), (-3, 3)]
        .into_iter()
        .enumerate()
    {
        let (raw, shape) = encode("fcvt.w.d", rm as u32);
        assert_eq!(
            run(raw, shape, 0, d(-2.5), 0, 0).unwrap(),
            (wn as i64 as u64, NX),
            "rm {rm}"
        );
        assert_eq!(
            run(raw, shape, 0, d(2.5), 0, 0).unwrap(),
            (wp as u64, NX),
            "rm {rm}"
        );
    }
    // 1/3 in double: rdn and rtz agree below, rup above, rne/rmm pick the nearer (below).
    let third = |rm: u32| {
        let (raw, shape) = encode("fdiv.d", rm);
        run(raw, shape, 0, d(1.0), d(3.0), 0).unwrap()
    };
    let below = (1.0f64 / 3.0).to_bits();
    assert_eq!(third(0), (below, NX));
    assert_eq!(third(1), (below, NX));
    assert_eq!(third(2), (below, NX));
    assert_eq!(third(3), (below + 1, NX));
    assert_eq!(third(4), (below, NX));
    // Overflow: to infinity in rne/rup, to the largest finite value toward zero/down.
    for (rm, w) in [
        (0, f64::INFINITY),
        (1, f64::MAX),
        (2, f64::MAX),
        (3, f64::INFINITY),
        (4, f64::INFINITY),
    ] {
        let (raw, shape) = encode("fmul.d", rm);
        assert_eq!(
            run(raw, shape, 0, d(f64::MAX), d(2.0), 0).unwrap(),
            (d(w), OF | NX),
            "rm {rm}"
        );
    }
}

#[test]
fn square_root_is_correctly_rounded_in_every_mode() {
    let sq = |rm: u32, v: f64| {
        let (raw, shape) = encode("fsqrt.d", rm);
        run(raw, shape, 0, d(v), 0, 0).unwrap()
    };
    let host = 2f64.sqrt().to_bits();
    let (dn, up) = (sq(2, 2.0).0, sq(3, 2.0).0);
    assert_eq!(up, dn + 1, "rdn and rup bracket sqrt(2)");
    assert_eq!(sq(0, 2.0), (host, NX));
    assert_eq!(sq(1, 2.0).0, dn);
    assert!(host == dn || host == up);
    assert_eq!(sq(0, 16.0), (d(4.0), 0), "exact roots raise nothing");
    assert_eq!(sq(0, -0.0), (d(-0.0), 0));
    assert_eq!(sq(0, -1.0), (CANON64, NV));
    assert_eq!(
        sq(0, f64::from_bits(1)).0,
        d(f64::from_bits(1).sqrt()),
        "subnormal input"
    );
}

#[test]
fn fused_multiply_add_rounds_once() {
    let x = 1.0 + f64::powi(2.0, -27);
    let (raw, shape) = encode("fmadd.d", 0);
    let exact = f64::powi(2.0, -26) + f64::powi(2.0, -54);
    assert_eq!(
        run(raw, shape, 0, d(x), d(x), d(-1.0)).unwrap(),
        (d(exact), 0)
    );
    let (raw, shape) = encode("fnmsub.d", 0); // -(a*b) + c
    assert_eq!(
        run(raw, shape, 0, d(x), d(x), d(1.0)).unwrap(),
        (d(-exact), 0)
    );
    let (raw, shape) = encode("fmsub.d", 0); // a*b - c
    assert_eq!(
        run(raw, shape, 0, d(x), d(x), d(1.0)).unwrap(),
        (d(exact), 0)
    );
    let (raw, shape) = encode("fnmadd.d", 0); // -(a*b) - c
    assert_eq!(
        run(raw, shape, 0, d(x), d(x), d(-1.0)).unwrap(),
        (d(-exact), 0)
    );
    // inf * 0 + qNaN is invalid (the spec requires NV even with a quiet NaN addend).
    let (raw, shape) = encode("fmadd.d", 0);
    assert_eq!(
        run(raw, shape, 0, d(f64::INFINITY), d(0.0), CANON64).unwrap(),
        (CANON64, NV)
    );
}

#[test]
fn conversions_to_integers_saturate_and_nan_converts_to_the_maximum() {
    let cvt = |name: &str, v: u64| {
        let (raw, shape) = encode(name, 1);
        run(raw, shape, 0, v, 0, 0).unwrap()
    };
    let nan = CANON64;
    assert_eq!(cvt("fcvt.w.d", nan), (i32::MAX as u64, NV));
    assert_eq!(cvt("fcvt.w.d", d(f64::INFINITY)), (i32::MAX as u64, NV));
    assert_eq!(
        cvt("fcvt.w.d", d(f64::NEG_INFINITY)),
        (i32::MIN as i64 as u64, NV)
    );
    assert_eq!(
        cvt("fcvt.w.d", d(-2147483648.9)),
        (i32::MIN as i64 as u64, NX)
    );
    assert_eq!(cvt("fcvt.w.d", d(2147483648.0)), (i32::MAX as u64, NV));
    assert_eq!(
        cvt("fcvt.wu.d", nan),
        (u64::MAX, NV),
        "u32 max, sign-extended"
    );
    assert_eq!(cvt("fcvt.wu.d", d(4294967295.0)), (u64::MAX, 0));
    assert_eq!(cvt("fcvt.wu.d", d(-1.0)), (0, NV));
    assert_eq!(
        cvt("fcvt.wu.d", d(-0.5)),
        (0, NX),
        "rounds to zero: inexact, not invalid"
    );
    assert_eq!(cvt("fcvt.wu.d", d(-0.0)), (0, 0));
    assert_eq!(cvt("fcvt.l.d", nan), (i64::MAX as u64, NV));
    assert_eq!(cvt("fcvt.l.d", d(1e19)), (i64::MAX as u64, NV));
    assert_eq!(cvt("fcvt.l.d", d(-1e19)), (i64::MIN as u64, NV));
    assert_eq!(
        cvt("fcvt.l.d", d(-9223372036854775808.0)),
        (i64::MIN as u64, 0)
    );
    assert_eq!(cvt("fcvt.lu.d", d(1e20)), (u64::MAX, NV));
    assert_eq!(cvt("fcvt.lu.d", nan), (u64::MAX, NV));
    assert_eq!(cvt("fcvt.lu.d", d(f64::NEG_INFINITY)), (0, NV));
    assert_eq!(cvt("fcvt.l.s", f32b(f32::NAN)), (i64::MAX as u64, NV));
    assert_eq!(cvt("fcvt.w.s", f32b(-3.7)), (-3i64 as u64, NX));
}

#[test]
fn conversions_between_widths_and_from_integers_round_and_canonicalize() {
    let one = |name: &str, rm: u32, v: u64| {
        let (raw, shape) = encode(name, rm);
        run(raw, shape, 0, v, 0, 0).unwrap()
    };
    // A signalling NaN converts to the canonical NaN with NV.
    assert_eq!(one("fcvt.s.d", 0, 0x7ff0_0000_0000_0001), (CANON32, NV));
    assert_eq!(one("fcvt.d.s", 0, 0xffff_ffff_7f80_0001), (CANON64, NV));
    assert_eq!(one("fcvt.d.s", 0, f32b(0.1)), (d(0.1f32 as f64), 0));
    assert_eq!(one("fcvt.s.d", 0, d(1e300)), (f32b(f32::INFINITY), OF | NX));
    assert_eq!(one("fcvt.s.d", 1, d(1e300)), (f32b(f32::MAX), OF | NX));
    assert_eq!(one("fcvt.s.l", 0, (1 << 24) + 1), (f32b(16777216.0), NX));
    assert_eq!(one("fcvt.s.l", 3, (1 << 24) + 1), (f32b(16777218.0), NX));
    assert_eq!(
        one("fcvt.d.lu", 0, u64::MAX),
        (d(18446744073709551616.0), NX)
    );
    assert_eq!(
        one("fcvt.d.w", 0, 0xffff_ffff_8000_0000),
        (d(-2147483648.0), 0)
    );
    assert_eq!(
        one("fcvt.d.wu", 0, 0xffff_ffff_8000_0000),
        (d(2147483648.0), 0),
        "uses the low word"
    );
}

#[test]
fn min_max_order_signed_zeros_and_prefer_numbers_over_nans() {
    let mm = |name: &str, a: u64, b: u64| {
        let (raw, shape) = encode(name, 0);
        run(raw, shape, 0, a, b, 0).unwrap()
    };
    assert_eq!(mm("fmin.d", d(0.0), d(-0.0)), (d(-0.0), 0));
    assert_eq!(mm("fmin.d", d(-0.0), d(0.0)), (d(-0.0), 0));
    assert_eq!(mm("fmax.d", d(-0.0), d(0.0)), (d(0.0), 0));
    assert_eq!(mm("fmax.d", CANON64, d(3.0)), (d(3.0), 0));
    assert_eq!(
        mm("fmin.d", d(3.0), 0x7ff0_0000_0000_0001),
        (d(3.0), NV),
        "sNaN: other operand, NV"
    );
    assert_eq!(
        mm("fmin.d", CANON64, 0xfff8_0000_0000_0001),
        (CANON64, 0),
        "two NaNs: canonical"
    );
    assert_eq!(mm("fmax.s", f32b(-0.0), f32b(0.0)), (f32b(0.0), 0));
    assert_eq!(mm("fmin.s", f32b(1.0), f32b(-5.0)), (f32b(-5.0), 0));
}

#[test]
fn feq_is_quiet_and_flt_fle_signal_on_any_nan() {
    let c = |name: &str, a: u64, b: u64| {
        let (raw, shape) = encode(name, 0);
        run(raw, shape, 0, a, b, 0).unwrap()
    };
    let snan = 0x7ff0_0000_0000_0001;
    assert_eq!(c("feq.d", CANON64, d(1.0)), (0, 0));
    assert_eq!(c("feq.d", snan, d(1.0)), (0, NV));
    assert_eq!(c("flt.d", CANON64, d(1.0)), (0, NV));
    assert_eq!(c("fle.d", d(1.0), CANON64), (0, NV));
    assert_eq!(c("feq.d", d(0.0), d(-0.0)), (1, 0));
    assert_eq!(c("fle.d", d(-0.0), d(0.0)), (1, 0));
    assert_eq!(c("flt.d", d(-0.0), d(0.0)), (0, 0));
    assert_eq!(c("flt.s", f32b(1.0), f32b(2.0)), (1, 0));
}

#[test]
fn fclass_reports_each_of_the_ten_classes() {
    let class = |v: u64| {
        let (raw, shape) = encode("fclass.d", 0);
        run(raw, shape, 0, v, 0, 0).unwrap().0
    };
    let cases = [
        (d(f64::NEG_INFINITY), 0),
        (d(-1.0), 1),
        (d(-f64::from_bits(1)), 2),
        (d(-0.0), 3),
        (d(0.0), 4),
        (d(f64::from_bits(1)), 5),
        (d(1.0), 6),
        (d(f64::INFINITY), 7),
        (0x7ff0_0000_0000_0001, 8),
        (CANON64, 9),
    ];
    for (v, bit) in cases {
        assert_eq!(class(v), 1 << bit, "{v:#x}");
    }
}

#[test]
fn sign_injection_copies_bits_even_for_nans() {
    let sg = |name: &str, a: u64, b: u64| {
        let (raw, shape) = encode(name, 0);
        run(raw, shape, 0, a, b, 0).unwrap()
    };
    let snan = 0x7ff0_0000_0000_0001;
    assert_eq!(sg("fsgnj.d", snan, d(-1.0)), (snan | 1 << 63, 0));
    assert_eq!(sg("fsgnjn.d", d(2.0), d(-1.0)), (d(2.0), 0));
    assert_eq!(sg("fsgnjx.d", d(-2.0), d(-1.0)), (d(2.0), 0));
}

#[test]
fn division_by_zero_and_invalid_operations_raise_their_flags() {
    let (raw, shape) = encode("fdiv.d", 0);
    assert_eq!(
        run(raw, shape, 0, d(1.0), d(-0.0), 0).unwrap(),
        (d(f64::NEG_INFINITY), DZ)
    );
    assert_eq!(
        run(raw, shape, 0, d(0.0), d(0.0), 0).unwrap(),
        (CANON64, NV)
    );
    let (raw, shape) = encode("fsub.d", 0);
    assert_eq!(
        run(raw, shape, 0, d(f64::INFINITY), d(f64::INFINITY), 0).unwrap(),
        (CANON64, NV)
    );
    // x - x is +0 except when rounding down.
    assert_eq!(run(raw, shape, 0, d(1.5), d(1.5), 0).unwrap(), (d(0.0), 0));
    let (raw, shape) = encode("fsub.d", 2);
    assert_eq!(run(raw, shape, 0, d(1.5), d(1.5), 0).unwrap(), (d(-0.0), 0));
}

#[test]
fn fflags_accumulate_across_instructions() {
    let mut cpu = Cpu::new();
    let mut mem = rv64::testmem::FlatMemory::new(0, 0x100);
    cpu.f[0] = d(1.0);
    cpu.f[1] = d(3.0);
    cpu.f[2] = d(0.0);
    rv64::execute(&mut cpu, &mut mem, &decode(encode("fdiv.d", 0).0).unwrap()).unwrap(); // 1/3: NX
    cpu.f[1] = d(0.0);
    rv64::execute(&mut cpu, &mut mem, &decode(encode("fdiv.d", 0).0).unwrap()).unwrap(); // 1/0: DZ
    assert_eq!(cpu.fflags, NX | DZ);
}

#[test]
fn tininess_is_decided_after_rounding_with_an_unbounded_exponent() {
    let (raw, shape) = encode("fmul.d", 0);
    // (1 - 2^-53) * 2^-1022 is exact with 53 bits but below 2^-1022: tiny, so UF even
    // though it rounds up to the smallest normal number on the subnormal grid.
    let got = run(
        raw,
        shape,
        0,
        0x3fef_ffff_ffff_ffff,
        0x0010_0000_0000_0000,
        0,
    )
    .unwrap();
    assert_eq!(got, (0x0010_0000_0000_0000, UF | NX));
    // (1 + 2^-52) * (2^-1022 - 2^-1074) rounds to 2^-1022 even with unbounded exponent:
    // not tiny, only inexact.
    let got = run(
        raw,
        shape,
        0,
        0x3ff0_0000_0000_0001,
        0x000f_ffff_ffff_ffff,
        0,
    )
    .unwrap();
    assert_eq!(got, (0x0010_0000_0000_0000, NX));
}
