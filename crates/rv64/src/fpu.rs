//! F and D semantics: exact IEEE 754 arithmetic with RISC-V NaN rules, all rounding modes
//! and fflags.
//!
//! Arithmetic is done by `rustc_apfloat` (a port of LLVM's APFloat: correctly rounded in
//! all five IEEE rounding modes, reports status flags), with every RISC-V-specific rule
//! applied here, before or after it: any NaN result is the canonical NaN, NaN inputs are
//! detected first (so APFloat's payload propagation never shows), conversions to integers
//! saturate with the RISC-V values, `fmin`/`fmax` follow IEEE 754-2019 minimumNumber /
//! maximumNumber, and square root is done exactly with integer arithmetic (APFloat has
//! none).
//!
//! Single-precision values live NaN-boxed in 64-bit registers; [`unbox32`] turns a
//! badly boxed value into the canonical NaN as the spec requires.
//!
//! Two APFloat flag behaviours differ from IEEE 754 as RISC-V applies it, and are
//! corrected here: an overflow that rounds to the largest finite number (directed
//! rounding) raises no OVERFLOW in APFloat (`missed_overflow`); and APFloat decides
//! tininess after rounding to the subnormal grid where RISC-V rounds with an unbounded
//! exponent, so a result that rounds up to exactly the smallest normal number may be
//! tiny for RISC-V (UF) but not for APFloat (`missed_underflow`). Both are re-decided by
//! recomputing with exactly scaled operands.

pub use rustc_apfloat::ieee::{Double, Single};
use rustc_apfloat::{Float, FloatConvert, Round, Status, StatusAnd};

/// fflags bits.
pub const NV: u32 = 0x10;
pub const DZ: u32 = 0x08;
pub const OF: u32 = 0x04;
pub const UF: u32 = 0x02;
pub const NX: u32 = 0x01;

/// Canonical quiet NaNs.
pub const CANON_NAN32: u32 = 0x7fc0_0000;
pub const CANON_NAN64: u64 = 0x7ff8_0000_0000_0000;

/// NaN-boxes a single-precision value.
#[inline]
pub fn box32(v: u32) -> u64 {
    0xffff_ffff_0000_0000 | v as u64
}

/// Reads a single-precision value from a 64-bit register: an improperly boxed value reads
/// as the canonical NaN.
#[inline]
pub fn unbox32(v: u64) -> u32 {
    if v >> 32 == 0xffff_ffff {
        v as u32
    } else {
        CANON_NAN32
    }
}

/// Resolves an instruction's rounding-mode field against `frm`. `None` means the
/// combination is reserved (the instruction is illegal).
#[inline]
pub fn round_mode(rm: u8, frm: u32) -> Option<Round> {
    let m = if rm == 7 { frm } else { rm as u32 };
    Some(match m {
        0 => Round::NearestTiesToEven,
        1 => Round::TowardZero,
        2 => Round::TowardNegative,
        3 => Round::TowardPositive,
        4 => Round::NearestTiesToAway,
        _ => return None,
    })
}

fn flags(s: Status) -> u32 {
    let mut f = 0;
    if s.contains(Status::INVALID_OP) {
        f |= NV;
    }
    if s.contains(Status::DIV_BY_ZERO) {
        f |= DZ;
    }
    if s.contains(Status::OVERFLOW) {
        f |= OF;
    }
    if s.contains(Status::UNDERFLOW) {
        f |= UF;
    }
    if s.contains(Status::INEXACT) {
        f |= NX;
    }
    f
}

/// One IEEE binary format as RISC-V uses it, so each operation is written once.
pub trait Fmt: Float + FloatConvert<Single> + FloatConvert<Double> + Copy {
    const W: u32;
    const CANON: u64;
    const SIGN: u64;
    const EXP_BITS: u32;
    const MANT_BITS: u32;
    fn of(bits: u64) -> Self;
    fn bits(self) -> u64;
    /// Round-to-nearest-even result computed by the host, when it is certain to equal
    /// the exact IEEE result and flags; `None` sends the operation to APFloat.
    fn fast_arith(op: Arith, a: u64, b: u64) -> Option<FRes>;
    fn fast_sqrt(a: u64) -> Option<FRes>;
    fn fast_fma(a: u64, b: u64, c: u64) -> Option<FRes>;
    /// The value as a host double (exact for both formats).
    fn host(bits: u64) -> f64;
    /// Bits of the integer `v`, which the caller guarantees is exactly representable.
    fn from_exact_int(v: i128) -> u64;
}

impl Fmt for Single {
    const W: u32 = 32;
    const CANON: u64 = CANON_NAN32 as u64;
    const SIGN: u64 = 1 << 31;
    const EXP_BITS: u32 = 8;
    const MANT_BITS: u32 = 23;
    fn of(bits: u64) -> Self {
        Single::from_bits(bits as u32 as u128)
    }
    fn bits(self) -> u64 {
        self.to_bits() as u64
    }
    #[inline]
    fn fast_arith(op: Arith, a: u64, b: u64) -> Option<FRes> {
        fast::arith32(op, f32::from_bits(a as u32), f32::from_bits(b as u32))
    }
    #[inline]
    fn fast_sqrt(a: u64) -> Option<FRes> {
        fast::sqrt32(f32::from_bits(a as u32))
    }
    #[inline]
    fn host(bits: u64) -> f64 {
        f32::from_bits(bits as u32) as f64
    }
    #[inline]
    fn from_exact_int(v: i128) -> u64 {
        (v as f32).to_bits() as u64
    }
    #[inline]
    fn fast_fma(a: u64, b: u64, c: u64) -> Option<FRes> {
        fast::fma32(
            f32::from_bits(a as u32),
            f32::from_bits(b as u32),
            f32::from_bits(c as u32),
        )
    }
}

impl Fmt for Double {
    const W: u32 = 64;
    const CANON: u64 = CANON_NAN64;
    const SIGN: u64 = 1 << 63;
    const EXP_BITS: u32 = 11;
    const MANT_BITS: u32 = 52;
    fn of(bits: u64) -> Self {
        Double::from_bits(bits as u128)
    }
    fn bits(self) -> u64 {
        self.to_bits() as u64
    }
    #[inline]
    fn fast_arith(op: Arith, a: u64, b: u64) -> Option<FRes> {
        fast::arith64(op, f64::from_bits(a), f64::from_bits(b))
    }
    #[inline]
    fn fast_sqrt(a: u64) -> Option<FRes> {
        fast::sqrt64(f64::from_bits(a))
    }
    #[inline]
    fn host(bits: u64) -> f64 {
        f64::from_bits(bits)
    }
    #[inline]
    fn from_exact_int(v: i128) -> u64 {
        (v as f64).to_bits()
    }
    #[inline]
    fn fast_fma(a: u64, b: u64, c: u64) -> Option<FRes> {
        fast::fma64(f64::from_bits(a), f64::from_bits(b), f64::from_bits(c))
    }
}

/// A result: raw bits of the value (not boxed) and the flags it raised.
pub type FRes = (u64, u32);

fn is_nan<F: Fmt>(b: u64) -> bool {
    let exp_mask = ((1u64 << F::EXP_BITS) - 1) << F::MANT_BITS;
    b & exp_mask == exp_mask && b & ((1u64 << F::MANT_BITS) - 1) != 0
}

fn is_snan<F: Fmt>(b: u64) -> bool {
    is_nan::<F>(b) && b & (1u64 << (F::MANT_BITS - 1)) == 0
}

fn finish<F: Fmt>(r: StatusAnd<F>) -> FRes {
    let v = if r.value.is_nan() {
        F::CANON
    } else {
        r.value.bits()
    };
    (v, flags(r.status))
}

/// NaN check for the arithmetic operations: `Some` result when an input is a NaN.
fn nan_in<F: Fmt>(ins: &[u64]) -> Option<FRes> {
    if ins.iter().any(|&b| is_nan::<F>(b)) {
        let nv = if ins.iter().any(|&b| is_snan::<F>(b)) {
            NV
        } else {
            0
        };
        Some((F::CANON, nv))
    } else {
        None
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arith {
    Add,
    Sub,
    Mul,
    Div,
}

/// add/sub/mul/div: the host's IEEE arithmetic when it provably gives the same bits
/// and flags (see the `fast` module), else [`arith_soft`].
#[inline]
pub fn arith<F: Fmt>(op: Arith, a: u64, b: u64, rm: Round) -> FRes {
    if rm == Round::NearestTiesToEven
        && let Some(r) = F::fast_arith(op, a, b)
    {
        return r;
    }
    arith_soft::<F>(op, a, b, rm)
}

/// add/sub/mul/div through APFloat, every case.
pub fn arith_soft<F: Fmt>(op: Arith, a: u64, b: u64, rm: Round) -> FRes {
    if let Some(r) = nan_in::<F>(&[a, b]) {
        return r;
    }
    let (x, y) = (F::of(a), F::of(b));
    let run = |x: F, y: F, rm: Round| match op {
        Arith::Add => x.add_r(y, rm),
        Arith::Sub => x.sub_r(y, rm),
        Arith::Mul => x.mul_r(y, rm),
        Arith::Div => x.div_r(y, rm),
    };
    let r = run(x, y, rm);
    if missed_underflow(&r) {
        let scaled = match op {
            // A tiny sum is always exact, so add/sub never get here.
            Arith::Add | Arith::Sub => r,
            Arith::Mul if x.abs() <= y.abs() => run(x.scalbn(TINY_SCALE), y, rm),
            Arith::Mul => run(x, y.scalbn(TINY_SCALE), rm),
            // |x| <= 1 scales up exactly; otherwise y is huge and scales down exactly.
            Arith::Div if x.abs() <= F::of(one_bits::<F>()) => run(x.scalbn(TINY_SCALE), y, rm),
            Arith::Div => run(x, y.scalbn(-TINY_SCALE), rm),
        };
        return finish(underflowed(r, &scaled));
    }
    if missed_overflow(&r) {
        // Halving x (and y for sums) halves the exact result; both stay exact here
        // because an overflowing result needs large operands.
        let y2 = if matches!(op, Arith::Add | Arith::Sub) {
            y.scalbn(-1)
        } else {
            y
        };
        let half = run(x.scalbn(-1), y2, Round::TowardZero);
        return finish(overflowed(r, &half));
    }
    finish(r)
}

/// Scale (a power of two) that lifts a result near the smallest normal number well into
/// the normal range, for re-deciding tininess.
const TINY_SCALE: rustc_apfloat::ExpInt = 64;

fn one_bits<F: Fmt>() -> u64 {
    let bias = (1u64 << (F::EXP_BITS - 1)) - 1;
    bias << F::MANT_BITS
}

/// The suspicious case for tininess: an inexact result of exactly the smallest normal
/// magnitude, which APFloat reports without UNDERFLOW.
fn missed_underflow<F: Fmt>(r: &StatusAnd<F>) -> bool {
    r.status == Status::INEXACT && r.value.is_smallest_normalized()
}

/// Adds UNDERFLOW to `r` when `scaled` (the same operation on operands scaled so the
/// exact result is multiplied by 2^TINY_SCALE, rounded in the same mode, so rounded as
/// if the exponent range were unbounded) is below the scaled smallest normal number.
fn underflowed<F: Fmt>(r: StatusAnd<F>, scaled: &StatusAnd<F>) -> StatusAnd<F> {
    if scaled.value.is_finite_non_zero() && scaled.value.ilogb() < F::MIN_EXP + TINY_SCALE {
        (r.status | Status::UNDERFLOW).and(r.value)
    } else {
        r
    }
}

/// APFloat rounds an overflow to the largest finite number (toward zero, or away from
/// the sign in the directed modes) without raising OVERFLOW; IEEE 754 raises it. The
/// suspicious case is an inexact largest-magnitude result.
fn missed_overflow<F: Fmt>(r: &StatusAnd<F>) -> bool {
    r.status == Status::INEXACT && r.value.is_largest()
}

/// Adds OVERFLOW to `r` when `half`, the exact result halved and rounded toward zero,
/// is at least 2^emax (so the exact result is at least 2^(emax+1), beyond the range).
fn overflowed<F: Fmt>(r: StatusAnd<F>, half: &StatusAnd<F>) -> StatusAnd<F> {
    if half.value.is_finite_non_zero() && half.value.ilogb() >= F::MAX_EXP {
        (r.status | Status::OVERFLOW).and(r.value)
    } else {
        r
    }
}

/// `negate_product` and `negate_addend` select fmadd/fmsub/fnmsub/fnmadd.
#[inline]
pub fn fma<F: Fmt>(
    a: u64,
    b: u64,
    c: u64,
    negate_product: bool,
    negate_addend: bool,
    rm: Round,
) -> FRes {
    if rm == Round::NearestTiesToEven {
        // Flipping sign bits is exact; NaN operands never take the fast path.
        let a2 = if negate_product { a ^ F::SIGN } else { a };
        let c2 = if negate_addend { c ^ F::SIGN } else { c };
        if let Some(r) = F::fast_fma(a2, b, c2) {
            return r;
        }
    }
    fma_soft::<F>(a, b, c, negate_product, negate_addend, rm)
}

/// Fused multiply-add without the host fast path.
pub fn fma_soft<F: Fmt>(
    a: u64,
    b: u64,
    c: u64,
    negate_product: bool,
    negate_addend: bool,
    rm: Round,
) -> FRes {
    let (x, y, z) = (F::of(a), F::of(b), F::of(c));
    // RISC-V raises NV for inf * 0 even when the addend is a quiet NaN.
    if (x.is_infinite() && y.is_zero()) || (x.is_zero() && y.is_infinite()) {
        return (F::CANON, NV);
    }
    if let Some(r) = nan_in::<F>(&[a, b, c]) {
        return r;
    }
    let x = if negate_product { -x } else { x };
    let z = if negate_addend { -z } else { z };
    let r = x.mul_add_r(y, z, rm);
    if missed_underflow(&r) {
        // Scale the addend and the smaller factor: both stay exact (see `arith`).
        let scaled = if x.abs() <= y.abs() {
            x.scalbn(TINY_SCALE).mul_add_r(y, z.scalbn(TINY_SCALE), rm)
        } else {
            x.mul_add_r(y.scalbn(TINY_SCALE), z.scalbn(TINY_SCALE), rm)
        };
        return finish(underflowed(r, &scaled));
    }
    if missed_overflow(&r) {
        let half = x.scalbn(-1).mul_add_r(y, z.scalbn(-1), Round::TowardZero);
        return finish(overflowed(r, &half));
    }
    finish(r)
}

/// Square root, exact in every rounding mode: the significand's integer square root
/// with a sticky bit, rounded once by APFloat.
#[inline]
pub fn sqrt<F: Fmt>(a: u64, rm: Round) -> FRes {
    if rm == Round::NearestTiesToEven
        && let Some(r) = F::fast_sqrt(a)
    {
        return r;
    }
    sqrt_soft::<F>(a, rm)
}

/// Square root without the host fast path.
pub fn sqrt_soft<F: Fmt>(a: u64, rm: Round) -> FRes {
    if let Some(r) = nan_in::<F>(&[a]) {
        return r;
    }
    let x = F::of(a);
    if x.is_zero() || (x.is_infinite() && !x.is_negative()) {
        return (a, 0);
    }
    if x.is_negative() {
        return (F::CANON, NV);
    }
    // x = m * 2^e with integer m.
    let bias = (1i32 << (F::EXP_BITS - 1)) - 1;
    let biased = ((a >> F::MANT_BITS) & ((1 << F::EXP_BITS) - 1)) as i32;
    let frac = a & ((1u64 << F::MANT_BITS) - 1);
    let (mut m, mut e) = if biased == 0 {
        (frac as u128, 1 - bias - F::MANT_BITS as i32)
    } else {
        (
            (frac | 1u64 << F::MANT_BITS) as u128,
            biased - bias - F::MANT_BITS as i32,
        )
    };
    if e & 1 != 0 {
        m <<= 1;
        e -= 1;
    }
    // Scale so the root has well over precision + 2 bits: m < 2^54, shifted left by
    // 2*s stays below 2^128.
    let s = (126 - (128 - m.leading_zeros() as i32)) / 2;
    let scaled = m << (2 * s);
    let q = scaled.isqrt();
    let sticky = u128::from(q * q != scaled);
    let big = (q << 1) | sticky;
    // sqrt(x) = (big / 2) * 2^(e/2 - s), with the sticky bit standing for the rest.
    let r = F::from_u128_r(big, rm);
    let exp = e / 2 - s - 1;
    let v = r.value.scalbn(exp as rustc_apfloat::ExpInt);
    (
        v.bits(),
        if sticky != 0 || r.status.contains(Status::INEXACT) {
            NX
        } else {
            0
        },
    )
}

/// fsgnj, fsgnjn, fsgnjx on raw bits (no NaN rules apply: bits are copied).
pub fn sgnj<F: Fmt>(a: u64, b: u64, kind: u8) -> u64 {
    let sign = match kind {
        0 => b & F::SIGN,
        1 => !b & F::SIGN,
        _ => (a ^ b) & F::SIGN,
    };
    (a & !F::SIGN) | sign
}

/// fmin (`max == false`) / fmax: -0 < +0; one NaN yields the other operand; sNaN sets NV.
pub fn minmax<F: Fmt>(a: u64, b: u64, max: bool) -> FRes {
    let nv = if is_snan::<F>(a) || is_snan::<F>(b) {
        NV
    } else {
        0
    };
    let (an, bn) = (is_nan::<F>(a), is_nan::<F>(b));
    let v = match (an, bn) {
        (true, true) => F::CANON,
        (true, false) => b,
        (false, true) => a,
        _ => {
            let (x, y) = (F::host(a), F::host(b));
            if x == 0.0 && y == 0.0 {
                let neg = if max {
                    a & b & F::SIGN
                } else {
                    (a | b) & F::SIGN
                };
                if neg != 0 { F::SIGN } else { 0 }
            } else {
                let less = x < y;
                if less != max { a } else { b }
            }
        }
    };
    (v, nv)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cmp {
    Eq,
    Lt,
    Le,
}

/// feq (quiet: NV only for sNaN), flt/fle (signaling: NV for any NaN).
pub fn compare<F: Fmt>(a: u64, b: u64, cmp: Cmp) -> (bool, u32) {
    if is_nan::<F>(a) || is_nan::<F>(b) {
        let nv = match cmp {
            Cmp::Eq => is_snan::<F>(a) || is_snan::<F>(b),
            _ => true,
        };
        return (false, if nv { NV } else { 0 });
    }
    // No NaN here: the host's IEEE comparison is the answer.
    let (x, y) = (F::host(a), F::host(b));
    let r = match cmp {
        Cmp::Eq => x == y,
        Cmp::Lt => x < y,
        Cmp::Le => x <= y,
    };
    (r, 0)
}

pub fn classify<F: Fmt>(a: u64) -> u64 {
    let neg = a & F::SIGN != 0;
    let exp = (a >> F::MANT_BITS) & ((1 << F::EXP_BITS) - 1);
    let frac = a & ((1u64 << F::MANT_BITS) - 1);
    let max_exp = (1 << F::EXP_BITS) - 1;
    let bit = if exp == max_exp {
        if frac == 0 {
            if neg { 0 } else { 7 }
        } else if is_snan::<F>(a) {
            8
        } else {
            9
        }
    } else if exp == 0 {
        match (frac == 0, neg) {
            (true, true) => 3,
            (true, false) => 4,
            (false, true) => 2,
            (false, false) => 5,
        }
    } else if neg {
        1
    } else {
        6
    };
    1 << bit
}

/// Float to integer (`width` 32 or 64, signed or not), saturating as RISC-V does. The
/// result is sign-extended to 64 bits (also for unsigned 32-bit results).
pub fn to_int<F: Fmt>(a: u64, width: usize, signed: bool, rm: Round) -> (u64, u32) {
    // In range, the host's exact rounding-to-integer functions give the result; NaN,
    // infinities and saturation (NV) take the general path.
    let h = F::host(a);
    if h.is_finite() {
        let t = match rm {
            Round::NearestTiesToEven => h.round_ties_even(),
            Round::TowardZero => h.trunc(),
            Round::TowardNegative => h.floor(),
            Round::TowardPositive => h.ceil(),
            Round::NearestTiesToAway => h.round(),
        };
        let lim = if signed {
            (1u64 << (width - 1)) as f64
        } else {
            (1u128 << width) as f64
        };
        let fits = if signed {
            t >= -lim && t < lim
        } else {
            t >= 0.0 && t < lim
        };
        if fits {
            let v = if signed { t as i64 as u64 } else { t as u64 };
            let v = if width == 32 {
                v as u32 as i32 as i64 as u64
            } else {
                v
            };
            return (v, if t != h { NX } else { 0 });
        }
    }
    to_int_soft::<F>(a, width, signed, rm)
}

/// [`to_int`] through APFloat, every case.
pub fn to_int_soft<F: Fmt>(a: u64, width: usize, signed: bool, rm: Round) -> (u64, u32) {
    let smax = (1u128 << (width - 1)) - 1;
    let umax = if width == 64 {
        u64::MAX as u128
    } else {
        u32::MAX as u128
    };
    let ext = |v: u128| -> u64 {
        if width == 32 {
            v as u32 as i32 as i64 as u64
        } else {
            v as u64
        }
    };
    if is_nan::<F>(a) {
        return (ext(if signed { smax } else { umax }), NV);
    }
    let x = F::of(a);
    let mut exact = false;
    if signed {
        let r = x.to_i128_r(width, rm, &mut exact);
        (ext(r.value as u128), flags(r.status))
    } else if x.is_negative() {
        if x.is_zero() {
            return (0, 0);
        }
        let r = x.round_to_integral(rm);
        if r.value.is_zero() {
            (0, flags(r.status))
        } else {
            (0, NV)
        }
    } else {
        let r = x.to_u128_r(width, rm, &mut exact);
        (ext(r.value), flags(r.status))
    }
}

/// Integer to float; `v` is the source register, `width` the integer width.
pub fn from_int<F: Fmt>(v: u64, width: usize, signed: bool, rm: Round) -> FRes {
    let val: i128 = match (width, signed) {
        (32, true) => v as i32 as i128,
        (32, false) => v as u32 as i128,
        (_, true) => v as i64 as i128,
        (_, false) => v as i128,
    };
    // Integers that fit the significand convert exactly, in every rounding mode.
    if val.unsigned_abs() <= 1u128 << (F::MANT_BITS + 1) {
        return (F::from_exact_int(val), 0);
    }
    from_int_soft::<F>(v, width, signed, rm)
}

/// [`from_int`] through APFloat, every case.
pub fn from_int_soft<F: Fmt>(v: u64, width: usize, signed: bool, rm: Round) -> FRes {
    let r = match (width, signed) {
        (32, true) => F::from_i128_r(v as i32 as i128, rm),
        (32, false) => F::from_u128_r(v as u32 as u128, rm),
        (_, true) => F::from_i128_r(v as i64 as i128, rm),
        (_, false) => F::from_u128_r(v as u128, rm),
    };
    finish(r)
}

/// fcvt.s.d: double to single.
pub fn d_to_s(a: u64, rm: Round) -> FRes {
    if rm == Round::NearestTiesToEven {
        // The host conversion rounds to nearest even; take it when no flag but NX can
        // arise (finite, and zero or strictly above the smallest normal single).
        let x = f64::from_bits(a);
        let r = x as f32;
        if (r == 0.0 && x == 0.0) || (r.is_finite() && r.abs() > f32::MIN_POSITIVE) {
            return (r.to_bits() as u64, if r as f64 != x { NX } else { 0 });
        }
    }
    d_to_s_soft(a, rm)
}

/// [`d_to_s`] through APFloat, every case.
pub fn d_to_s_soft(a: u64, rm: Round) -> FRes {
    if let Some(r) = nan_in::<Double>(&[a]) {
        return (CANON_NAN32 as u64, r.1);
    }
    let mut loses = false;
    let x = Double::of(a);
    let mut r: StatusAnd<Single> = x.convert_r(rm, &mut loses);
    // As in `missed_overflow`: |x| >= 2^128 overflows single precision in every mode.
    if missed_overflow(&r) && x.is_finite_non_zero() && x.ilogb() >= 128 {
        r = (r.status | Status::OVERFLOW).and(r.value);
    }
    if missed_underflow(&r) {
        let mut l = false;
        let scaled: StatusAnd<Single> = x.scalbn(TINY_SCALE).convert_r(rm, &mut l);
        r = underflowed(r, &scaled);
    }
    finish(r)
}

/// fcvt.d.s: single to double (exact except for NaNs).
pub fn s_to_d(a: u64, rm: Round) -> FRes {
    if !is_nan::<Single>(a) {
        // Widening is exact.
        return ((f32::from_bits(a as u32) as f64).to_bits(), 0);
    }
    if let Some(r) = nan_in::<Single>(&[a]) {
        return (CANON_NAN64, r.1);
    }
    let mut loses = false;
    let r: StatusAnd<Double> = Single::of(a).convert_r(rm, &mut loses);
    finish(r)
}

/// Host-float fast paths for round-to-nearest-even, the mode programs run in.
///
/// The host (Rust's `f32`/`f64`, IEEE 754 binary32/64 with RNE, and `mul_add`, a
/// correctly rounded fused multiply-add) computes the same correctly rounded value; what
/// it does not report is the flags. Each path therefore only accepts operands and
/// results where the flags can be derived exactly: no NaN or infinity in or out (NV, DZ,
/// OF excluded), results that are zero only when exact and otherwise strictly above the
/// smallest normal magnitude (UF excluded, including the tininess-after-rounding edge at
/// the smallest normal), and inexactness decided by an exact error term (TwoSum for
/// sums, an FMA residual for products, quotients and roots) whose own computation is
/// exact within the accepted ranges. Anything else returns `None` and goes to APFloat.
/// Single precision is computed in double, which is exact (products) or correctly
/// rounded without double-rounding error (53 >= 2*24 + 2 for + - * / sqrt).
mod fast {
    use super::{Arith, FRes, NX};

    /// 2^-960 and 2^1000: inside these magnitudes every error term below is exact.
    const LO64: f64 = f64::from_bits((1023 - 960) << 52);
    const HI64: f64 = f64::from_bits((1023 + 1000) << 52);

    #[inline]
    fn in_range(v: f64) -> bool {
        let m = v.abs();
        (LO64..=HI64).contains(&m)
    }

    #[inline]
    fn res64(r: f64, inexact: bool) -> Option<FRes> {
        Some((r.to_bits(), if inexact { NX } else { 0 }))
    }

    #[inline]
    pub fn arith64(op: Arith, a: f64, b: f64) -> Option<FRes> {
        match op {
            Arith::Add | Arith::Sub => {
                let b = if op == Arith::Sub { -b } else { b };
                // Bounded operands cannot overflow, and a tiny sum is always exact.
                if !(a.abs() <= HI64 && b.abs() <= HI64) {
                    return None;
                }
                let s = a + b;
                let bb = s - a;
                let err = (a - (s - bb)) + (b - bb);
                res64(s, err != 0.0)
            }
            Arith::Mul => {
                if a == 0.0 || b == 0.0 {
                    // Exact zero with the right sign, unless the other is inf/NaN.
                    return (a.is_finite() && b.is_finite())
                        .then(|| (a * b).to_bits())
                        .map(|r| (r, 0));
                }
                let p = a * b;
                if !in_range(p) {
                    return None;
                }
                res64(p, a.mul_add(b, -p) != 0.0)
            }
            Arith::Div => {
                if a == 0.0 && b != 0.0 && b.is_finite() {
                    return Some(((a / b).to_bits(), 0));
                }
                if !(in_range(a) && in_range(b)) {
                    return None;
                }
                let q = a / b;
                if !in_range(q) {
                    return None;
                }
                res64(q, (-q).mul_add(b, a) != 0.0)
            }
        }
    }

    #[inline]
    pub fn sqrt64(a: f64) -> Option<FRes> {
        if a == 0.0 {
            return Some((a.to_bits(), 0));
        }
        if !(a > 0.0 && in_range(a)) {
            return None;
        }
        let r = a.sqrt();
        res64(r, (-r).mul_add(r, a) != 0.0)
    }

    /// Error-free sum: `a + b == s + e` exactly (barring overflow).
    #[inline]
    fn two_sum(a: f64, b: f64) -> (f64, f64) {
        let s = a + b;
        let bb = s - a;
        (s, (a - (s - bb)) + (b - bb))
    }

    /// a*b + c. Exactness: a*b = ph + pl exactly, so the exact result minus r is
    /// (ph - r) + c + pl. Error-free sums turn that into a non-overlapping expansion
    /// (Shewchuk's grow-expansion: [f, d], then grow by c, then by pl), whose value is
    /// zero only if every component is zero.
    #[inline]
    pub fn fma64(a: f64, b: f64, c: f64) -> Option<FRes> {
        if !(a.is_finite() && b.is_finite() && c.abs() <= HI64) {
            return None;
        }
        let ph = a * b;
        if !(ph == 0.0 && (a == 0.0 || b == 0.0)) && !in_range(ph) {
            return None;
        }
        let pl = a.mul_add(b, -ph);
        let r = a.mul_add(b, c);
        if !(r == 0.0 || in_range(r)) {
            return None;
        }
        let (d, f) = two_sum(ph, -r);
        let exact = expansion_is_zero([f, d], c, pl);
        if r == 0.0 && !exact {
            return None; // underflow to zero
        }
        res64(r, !exact)
    }

    /// Whether the expansion `e` (non-overlapping, increasing magnitude) plus `b` plus
    /// `c` is exactly zero.
    #[inline]
    fn expansion_is_zero(e: [f64; 2], b: f64, c: f64) -> bool {
        // grow-expansion(e, b) -> [g0, g1, g2]
        let (q, g0) = two_sum(b, e[0]);
        let (q, g1) = two_sum(q, e[1]);
        let g2 = q;
        // grow-expansion(g, c) -> [k0..k3]
        let (q, k0) = two_sum(c, g0);
        let (q, k1) = two_sum(q, g1);
        let (k3, k2) = two_sum(q, g2);
        k0 == 0.0 && k1 == 0.0 && k2 == 0.0 && k3 == 0.0
    }

    /// a*b + c in single precision via double: the product is exact, the sum is exact
    /// as `s + err`; rounding `s` to single equals rounding the exact sum unless `s`
    /// sits exactly halfway between two singles (then APFloat decides).
    #[inline]
    pub fn fma32(a: f32, b: f32, c: f32) -> Option<FRes> {
        if !(a.is_finite() && b.is_finite() && c.is_finite()) {
            return None;
        }
        let p = a as f64 * b as f64;
        let (s, err) = two_sum(p, c as f64);
        let r = s as f32;
        if !ok32(r) || (r == 0.0 && (s != 0.0 || err != 0.0)) {
            return None;
        }
        if err != 0.0 && s.to_bits() & 0x1fff_ffff == 0x1000_0000 {
            return None;
        }
        res32(r, err != 0.0 || r as f64 != s)
    }

    /// Accepts a single result: finite, and zero or strictly above the smallest normal.
    #[inline]
    fn ok32(r: f32) -> bool {
        r == 0.0 || (r.is_finite() && r.abs() > f32::MIN_POSITIVE)
    }

    #[inline]
    fn res32(r: f32, inexact: bool) -> Option<FRes> {
        Some((r.to_bits() as u64, if inexact { NX } else { 0 }))
    }

    #[inline]
    pub fn arith32(op: Arith, a: f32, b: f32) -> Option<FRes> {
        if !(a.is_finite() && b.is_finite()) {
            return None;
        }
        let (x, y) = (a as f64, b as f64);
        match op {
            Arith::Add | Arith::Sub => {
                let y = if op == Arith::Sub { -y } else { y };
                let s = x + y;
                let bb = s - x;
                let err = (x - (s - bb)) + (y - bb);
                let r = s as f32;
                // A tiny sum is exact, so only overflow needs excluding.
                if !r.is_finite() {
                    return None;
                }
                res32(r, err != 0.0 || r as f64 != s)
            }
            Arith::Mul => {
                let p = x * y; // exact: 48 bits
                let r = p as f32;
                if !ok32(r) || (r == 0.0 && p != 0.0) {
                    return None;
                }
                res32(r, r as f64 != p)
            }
            Arith::Div => {
                if b == 0.0 {
                    return None;
                }
                let r = (x / y) as f32;
                if !ok32(r) || (r == 0.0 && a != 0.0) {
                    return None;
                }
                // r * b is exact in double, so equality with a decides exactness.
                res32(r, r as f64 * y != x)
            }
        }
    }

    #[inline]
    pub fn sqrt32(a: f32) -> Option<FRes> {
        if a == 0.0 {
            return Some((a.to_bits() as u64, 0));
        }
        if !(a > 0.0 && a.is_finite()) {
            return None;
        }
        let x = a as f64;
        let r = x.sqrt() as f32;
        let rr = r as f64;
        res32(r, rr * rr != x)
    }
}
