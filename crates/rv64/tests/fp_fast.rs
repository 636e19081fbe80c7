//! The host-float fast paths of round-to-nearest-even arithmetic must give exactly the
//! bits and flags of the APFloat path. Operands are drawn (deterministically) where the
//! fast paths' guards sit: subnormals, the smallest normal, huge values, exact and
//! inexact results, cancellations in fused multiply-adds, ties in single precision.

use rv64::fpu::{self, Arith, Double, Single};

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// A double with an exponent from an interesting band and a mantissa that is random,
    /// short (few significant bits, so results are often exact) or all ones.
    fn f64(&mut self) -> u64 {
        let r = self.next();
        let exp: u64 = match r % 8 {
            0 => 0,                              // zero / subnormal
            1 => 1 + (r >> 8) % 3,               // smallest normals
            2 => 1023 - 960 + (r >> 8) % 8 - 4,  // around the fast-path floor
            3 => 2046 - (r >> 8) % 4,            // huge
            4 => 1023 + 1000 + (r >> 8) % 8 - 4, // around the fast-path ceiling
            5 => 2047,                           // inf / NaN
            _ => 1023 + (r >> 8) % 64 - 32,      // ordinary
        };
        let m = match (r >> 20) % 4 {
            0 => self.next() & ((1 << 52) - 1),
            1 => (self.next() & 0xff) << 44,
            2 => (1 << 52) - 1,
            _ => 0,
        };
        let sign = (r >> 30) & 1;
        sign << 63 | exp << 52 | m
    }

    fn f32(&mut self) -> u64 {
        let r = self.next();
        let exp: u64 = match r % 6 {
            0 => 0,
            1 => 1 + (r >> 8) % 3,
            2 => 254 - (r >> 8) % 4,
            3 => 255,
            _ => 127 + (r >> 8) % 40 - 20,
        };
        let m = match (r >> 20) % 4 {
            0 => self.next() & ((1 << 23) - 1),
            1 => (self.next() & 0xf) << 19,
            2 => (1 << 23) - 1,
            _ => 0,
        };
        let sign = (r >> 30) & 1;
        sign << 31 | exp << 23 | m
    }
}

const OPS: [Arith; 4] = [Arith::Add, Arith::Sub, Arith::Mul, Arith::Div];

#[test]
fn double_fast_paths_match_apfloat() {
    let rne = fpu::round_mode(0, 0).unwrap();
    let mut g = Rng(0x9e37_79b9_7f4a_7c15);
    for _ in 0..200_000 {
        let (a, b) = (g.f64(), g.f64());
        // An addend that nearly cancels a*b exercises the exactness test of fma.
        let c = match g.next() % 3 {
            0 => g.f64(),
            1 => (-(f64::from_bits(a) * f64::from_bits(b))).to_bits(),
            _ => (-(f64::from_bits(a) * f64::from_bits(b))).to_bits() ^ (g.next() & 3),
        };
        for op in OPS {
            let fast = fpu::arith::<Double>(op, a, b, rne);
            let soft = fpu::arith_soft::<Double>(op, a, b, rne);
            assert_eq!(fast, soft, "{op:?} {a:#x} {b:#x}");
        }
        assert_eq!(
            fpu::sqrt::<Double>(a, rne),
            fpu::sqrt_soft::<Double>(a, rne),
            "sqrt {a:#x}"
        );
        for (np, na) in [(false, false), (false, true), (true, false), (true, true)] {
            let fast = fpu::fma::<Double>(a, b, c, np, na, rne);
            let soft = fpu::fma_soft::<Double>(a, b, c, np, na, rne);
            assert_eq!(fast, soft, "fma {a:#x} {b:#x} {c:#x} {np} {na}");
        }
    }
}

#[test]
fn single_fast_paths_match_apfloat() {
    let rne = fpu::round_mode(0, 0).unwrap();
    let mut g = Rng(0x2545_f491_4f6c_dd1d);
    for _ in 0..200_000 {
        let (a, b) = (g.f32(), g.f32());
        let c = match g.next() % 3 {
            0 => g.f32(),
            1 => (-(f32::from_bits(a as u32) * f32::from_bits(b as u32))).to_bits() as u64,
            _ => {
                ((-(f32::from_bits(a as u32) * f32::from_bits(b as u32))).to_bits()
                    ^ (g.next() as u32 & 3)) as u64
            }
        };
        for op in OPS {
            let fast = fpu::arith::<Single>(op, a, b, rne);
            let soft = fpu::arith_soft::<Single>(op, a, b, rne);
            assert_eq!(fast, soft, "{op:?} {a:#x} {b:#x}");
        }
        assert_eq!(
            fpu::sqrt::<Single>(a, rne),
            fpu::sqrt_soft::<Single>(a, rne),
            "sqrt {a:#x}"
        );
        for (np, na) in [(false, false), (false, true), (true, false), (true, true)] {
            let fast = fpu::fma::<Single>(a, b, c, np, na, rne);
            let soft = fpu::fma_soft::<Single>(a, b, c, np, na, rne);
            assert_eq!(fast, soft, "fma {a:#x} {b:#x} {c:#x} {np} {na}");
        }
    }
}

#[test]
fn single_fma_whose_double_sum_lands_on_a_midpoint_rounds_the_exact_value() {
    // (1 + 2^-12)^2 = 1 + 2^-11 + 2^-24 is halfway between two singles; adding 2^-80
    // makes the exact result round up, though the double sum rounds back onto the
    // midpoint (whose tie would round down to even).
    let rne = fpu::round_mode(0, 0).unwrap();
    let x = (1.0f32 + f32::powi(2.0, -12)).to_bits() as u64;
    let c = f32::powi(2.0, -80).to_bits() as u64;
    let want = (1.0f32 + f32::powi(2.0, -11) + f32::powi(2.0, -23)).to_bits() as u64;
    assert_eq!(
        fpu::fma::<Single>(x, x, c, false, false, rne),
        (want, fpu::NX)
    );
    assert_eq!(
        fpu::fma_soft::<Single>(x, x, c, false, false, rne),
        (want, fpu::NX)
    );
}

#[test]
fn conversion_fast_paths_match_apfloat_in_every_mode() {
    let mut g = Rng(0x1234_5678_9abc_def1);
    for k in 0..100_000u32 {
        let rm = fpu::round_mode((k % 5) as u8, 0).unwrap();
        let (d, s) = (g.f64(), g.f32());
        // Values near the integer limits and halfway points as well as the bands above.
        let d = match g.next() % 5 {
            0 => ((g.next() as i64 >> (g.next() % 64)) as f64 + 0.5 * (g.next() % 3) as f64)
                .to_bits(),
            // Around the smallest normal and the largest single.
            1 => {
                ((1023 - 126 - 2 + g.next() % 4) << 52)
                    | (g.next() & ((1 << 52) - 1))
                    | (g.next() & 1) << 63
            }
            2 => ((1023 + 127 - 1 + g.next() % 3) << 52) | (g.next() & ((1 << 52) - 1)),
            _ => d,
        };
        for (width, signed) in [(32, true), (32, false), (64, true), (64, false)] {
            assert_eq!(
                fpu::to_int::<Double>(d, width, signed, rm),
                fpu::to_int_soft::<Double>(d, width, signed, rm),
                "to_int {d:#x} {width} {signed} {rm:?}"
            );
            assert_eq!(
                fpu::to_int::<Single>(s, width, signed, rm),
                fpu::to_int_soft::<Single>(s, width, signed, rm),
                "to_int {s:#x} {width} {signed} {rm:?}"
            );
            let v = g.next() >> (g.next() % 64);
            assert_eq!(
                fpu::from_int::<Double>(v, width, signed, rm),
                fpu::from_int_soft::<Double>(v, width, signed, rm),
                "from_int {v:#x} {width} {signed} {rm:?}"
            );
            assert_eq!(
                fpu::from_int::<Single>(v, width, signed, rm),
                fpu::from_int_soft::<Single>(v, width, signed, rm),
                "from_int {v:#x} {width} {signed} {rm:?}"
            );
        }
        assert_eq!(
            fpu::d_to_s(d, rm),
            fpu::d_to_s_soft(d, rm),
            "d_to_s {d:#x} {rm:?}"
        );
    }
}
