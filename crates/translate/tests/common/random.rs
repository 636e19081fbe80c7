//! The seeded generator of the differential tests: instructions of every class (RV64I,
//! M, A, F, D, Zicsr, every compressed form), snippets for the cases random words almost
//! never hit (LR/SC pairs, accesses at page edges, dynamic rounding after an `frm`
//! write, `fflags` cleared before an operation the JIT may inline, a store read back,
//! accesses through a pointer register before and after it moves, F/D operations on
//! related values), block terminators (self-loops included) and the random initial
//! state.
//!
//! A seed names a sequence only for one version of this file: anything that changes what
//! is drawn, or in which order, gives every seed another sequence. That is why a bug's
//! seed goes into `regressions.rs` *and* the bug gets a focused test of its own.

use rv64::{Cpu, Insn, Op};
use translate::context::{PAGE_SHIFT, PERM_R, PERM_W, update_fast_bits};

use super::{GUEST_SIZE, b, dec, i, j, r, s, test_perms, u};

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

/// The page map of a random sequence: [`test_perms`], or one time in four the same map
/// with the last page of the guest space (page 15) read+write, so that accesses reach
/// the end of the space from a mapped page (its next "page" is the table's sentinel).
pub fn random_perms(rng: &mut Rng) -> Vec<u8> {
    let mut p = test_perms();
    if rng.chance(25) {
        let last = (GUEST_SIZE >> PAGE_SHIFT) - 1;
        p[last] = PERM_R | PERM_W;
        update_fast_bits(&mut p, last - 1..last + 1);
    }
    p
}

fn random_addr(rng: &mut Rng) -> u64 {
    match rng.below(20) {
        // Mostly well inside the big read+write region, usually aligned.
        0..=14 => {
            let a = 0x1100 + rng.below(0x7e00);
            if rng.chance(75) { a & !7 } else { a }
        }
        // Near a page boundary, the end of the guest space included.
        15..=17 => {
            let page = rng.below(17) << PAGE_SHIFT;
            page.wrapping_add(rng.below(16)).wrapping_sub(8)
        }
        // The read-only, unmapped, write-only, executable and last pages.
        18 => 0x9000 + rng.below(0x7000),
        // Anywhere, including outside the guest space.
        _ => {
            let any = rng.below(GUEST_SIZE as u64 + 0x100);
            rng.pick(&[any, GUEST_SIZE as u64 - 4, u64::MAX - 3])
        }
    }
}

/// NaN-boxed single-precision bits.
fn single(v: f32) -> u64 {
    0xffff_ffff_0000_0000 | u64::from(v.to_bits())
}

/// A float register value: random bits, small integers and fractions, halves (ties in
/// every rounding mode), values at the limits of the integer conversions, subnormals,
/// extremes, infinities, signalling and quiet NaNs, and singles boxed wrongly.
fn random_float(rng: &mut Rng) -> u64 {
    match rng.below(11) {
        10 => {
            // Near overflow, near and below the smallest normal, or near 1: random
            // mantissa and sign, where sums, products and conversions overflow, underflow
            // or round.
            let sign = rng.below(2);
            if rng.chance(50) {
                let e = rng.pick(&[0x7fe_u64, 0x7fd, 0x7c0, 0x001, 0x000, 0x3ff, 0x43e]);
                sign << 63 | e << 52 | (rng.next() & ((1 << 52) - 1))
            } else {
                let e = rng.pick(&[0xfe_u64, 0xfd, 0x01, 0x00, 0x7f, 0x9e]);
                0xffff_ffff_0000_0000 | sign << 31 | e << 23 | (rng.next() & ((1 << 23) - 1))
            }
        }
        0 => 0xffff_ffff_0000_0000 | (rng.next() & 0xffff_ffff),
        1 => (rng.below(2000) as f64 - 1000.0).to_bits(),
        2 => single(rng.below(2000) as f32 / 7.0),
        3 => {
            // k + 1/2 and k + 1/4 or 3/4: where RNE, RMM, RTZ, RDN and RUP differ.
            let k = rng.below(64) as f64 - 32.0;
            let v = k + rng.pick(&[0.5, 0.25, 0.75]);
            if rng.chance(50) {
                v.to_bits()
            } else {
                single(v as f32)
            }
        }
        4 => rng.pick(&[
            2147483647.5f64.to_bits(),
            2147483648f64.to_bits(),
            (-2147483648.5f64).to_bits(),
            (-2147483649f64).to_bits(),
            4294967295.5f64.to_bits(),
            4294967296f64.to_bits(),
            9.223372036854775e18f64.to_bits(),
            9.223372036854776e18f64.to_bits(),
            (-9.223372036854776e18f64).to_bits(),
            1.8446744073709552e19f64.to_bits(),
            (-0.5f64).to_bits(),
            (-1.0f64).to_bits(),
            single(2147483648.0),
            single(-2147483648.0),
            single(4294967296.0),
            single(9.223372e18),
            single(-0.75),
        ]),
        5 => rng.pick(&[
            1,
            0x000f_ffff_ffff_ffff,
            f64::MIN_POSITIVE.to_bits(),
            f64::MAX.to_bits(),
            f64::MIN.to_bits(),
            2f64.powi(1000).to_bits(),
            2f64.powi(-1000).to_bits(),
            single(f32::MIN_POSITIVE),
            0xffff_ffff_0000_0001,
            single(f32::MAX),
            single(1e30),
            single(1e-30),
        ]),
        6 => rng.pick(&[
            f64::NAN.to_bits(),
            0x7ff0_0000_0000_0001,
            0xfff8_0000_0000_0000,
            f64::INFINITY.to_bits(),
            f64::NEG_INFINITY.to_bits(),
            0x8000_0000_0000_0000,
            0,
            0x7ff4_0000_0000_0000,
            single(f32::NAN),
            0xffff_ffff_7f80_0001,
            single(f32::INFINITY),
            single(f32::NEG_INFINITY),
            single(-0.0),
            // Not properly boxed: reads as the canonical NaN in single operations.
            0x0000_0000_3f80_0000,
            0x7fff_ffff_3f80_0000,
        ]),
        _ => rng.next(),
    }
}

/// Random initial state: edge and random integer values, pointer registers into the
/// test memory, assorted float bit patterns, a random rounding mode and reservation.
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
        *f = random_float(rng);
    }
    if rng.chance(60) {
        // f0..f7 related to one value (see `fp_related`): equal, negated, one unit in
        // the last place apart, so that sums cancel, overflow or round to a tie.
        let v = random_float(rng);
        let boxed = v >> 32 == 0xffff_ffff;
        let sign = if boxed { 1 << 31 } else { 1 << 63 };
        let ulp = |v: u64, up: bool| {
            let m = if boxed { 0xffff_ffff } else { u64::MAX };
            let bits = v & m;
            let bits = if up {
                bits.wrapping_add(1)
            } else {
                bits.wrapping_sub(1)
            } & m;
            (v & !m) | bits
        };
        cpu.f[0] = v;
        cpu.f[1] = v;
        cpu.f[2] = v ^ sign;
        cpu.f[3] = ulp(v, true);
        cpu.f[4] = ulp(v, false);
        cpu.f[5] = ulp(v, true) ^ sign;
    }
    cpu.fflags = rng.below(32) as u32;
    cpu.frm = if rng.chance(95) {
        rng.below(5) as u32
    } else {
        5 + rng.below(3) as u32
    };
    cpu.reservation = match rng.below(10) {
        0..=2 => random_addr(rng) & !7,
        // Where a pointer register points: an SC through it succeeds without an LR.
        3 => cpu.x[rng.pick(&PTR_REGS) as usize],
        _ => Cpu::NO_RESERVATION,
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

/// A destination that is never a pointer register (nor x0).
fn scratch(rng: &mut Rng) -> u32 {
    loop {
        let r = 1 + rng.below(31) as u32;
        if !PTR_REGS.contains(&r) {
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

// ---- F and D ----------------------------------------------------------------------

/// Fields of an F/D encoding the generator fills in (the others are fixed in the word).
pub const RM: u8 = 1;
pub const RS2: u8 = 2;
pub const RS3: u8 = 4;
/// `rd` names an integer register.
const XD: u8 = 8;
/// `rs1` names an integer register.
const XS: u8 = 16;

/// Every F and D operation except loads and stores: its op, its fixed bits and the
/// fields left free.
pub const FP_FORMS: [(Op, u32, u8); 60] = {
    const fn op_fp(f7: u32, rs2: u32, f3: u32) -> u32 {
        f7 << 25 | rs2 << 20 | f3 << 12 | 0x53
    }
    const fn r4(opc: u32, fmt: u32) -> u32 {
        fmt << 25 | opc
    }
    [
        (Op::FaddS, op_fp(0x00, 0, 0), RM | RS2),
        (Op::FsubS, op_fp(0x04, 0, 0), RM | RS2),
        (Op::FmulS, op_fp(0x08, 0, 0), RM | RS2),
        (Op::FdivS, op_fp(0x0c, 0, 0), RM | RS2),
        (Op::FsqrtS, op_fp(0x2c, 0, 0), RM),
        (Op::FaddD, op_fp(0x01, 0, 0), RM | RS2),
        (Op::FsubD, op_fp(0x05, 0, 0), RM | RS2),
        (Op::FmulD, op_fp(0x09, 0, 0), RM | RS2),
        (Op::FdivD, op_fp(0x0d, 0, 0), RM | RS2),
        (Op::FsqrtD, op_fp(0x2d, 0, 0), RM),
        (Op::FsgnjS, op_fp(0x10, 0, 0), RS2),
        (Op::FsgnjnS, op_fp(0x10, 0, 1), RS2),
        (Op::FsgnjxS, op_fp(0x10, 0, 2), RS2),
        (Op::FsgnjD, op_fp(0x11, 0, 0), RS2),
        (Op::FsgnjnD, op_fp(0x11, 0, 1), RS2),
        (Op::FsgnjxD, op_fp(0x11, 0, 2), RS2),
        (Op::FminS, op_fp(0x14, 0, 0), RS2),
        (Op::FmaxS, op_fp(0x14, 0, 1), RS2),
        (Op::FminD, op_fp(0x15, 0, 0), RS2),
        (Op::FmaxD, op_fp(0x15, 0, 1), RS2),
        (Op::FcvtSD, op_fp(0x20, 1, 0), RM),
        (Op::FcvtDS, op_fp(0x21, 0, 0), RM),
        (Op::FcvtWS, op_fp(0x60, 0, 0), RM | XD),
        (Op::FcvtWuS, op_fp(0x60, 1, 0), RM | XD),
        (Op::FcvtLS, op_fp(0x60, 2, 0), RM | XD),
        (Op::FcvtLuS, op_fp(0x60, 3, 0), RM | XD),
        (Op::FcvtWD, op_fp(0x61, 0, 0), RM | XD),
        (Op::FcvtWuD, op_fp(0x61, 1, 0), RM | XD),
        (Op::FcvtLD, op_fp(0x61, 2, 0), RM | XD),
        (Op::FcvtLuD, op_fp(0x61, 3, 0), RM | XD),
        (Op::FcvtSW, op_fp(0x68, 0, 0), RM | XS),
        (Op::FcvtSWu, op_fp(0x68, 1, 0), RM | XS),
        (Op::FcvtSL, op_fp(0x68, 2, 0), RM | XS),
        (Op::FcvtSLu, op_fp(0x68, 3, 0), RM | XS),
        (Op::FcvtDW, op_fp(0x69, 0, 0), RM | XS),
        (Op::FcvtDWu, op_fp(0x69, 1, 0), RM | XS),
        (Op::FcvtDL, op_fp(0x69, 2, 0), RM | XS),
        (Op::FcvtDLu, op_fp(0x69, 3, 0), RM | XS),
        (Op::FleS, op_fp(0x50, 0, 0), RS2 | XD),
        (Op::FltS, op_fp(0x50, 0, 1), RS2 | XD),
        (Op::FeqS, op_fp(0x50, 0, 2), RS2 | XD),
        (Op::FleD, op_fp(0x51, 0, 0), RS2 | XD),
        (Op::FltD, op_fp(0x51, 0, 1), RS2 | XD),
        (Op::FeqD, op_fp(0x51, 0, 2), RS2 | XD),
        (Op::FmvXW, op_fp(0x70, 0, 0), XD),
        (Op::FclassS, op_fp(0x70, 0, 1), XD),
        (Op::FmvXD, op_fp(0x71, 0, 0), XD),
        (Op::FclassD, op_fp(0x71, 0, 1), XD),
        (Op::FmvWX, op_fp(0x78, 0, 0), XS),
        (Op::FmvDX, op_fp(0x79, 0, 0), XS),
        (Op::FmaddS, r4(0x43, 0), RM | RS2 | RS3),
        (Op::FmsubS, r4(0x47, 0), RM | RS2 | RS3),
        (Op::FnmsubS, r4(0x4b, 0), RM | RS2 | RS3),
        (Op::FnmaddS, r4(0x4f, 0), RM | RS2 | RS3),
        (Op::FmaddD, r4(0x43, 1), RM | RS2 | RS3),
        (Op::FmsubD, r4(0x47, 1), RM | RS2 | RS3),
        (Op::FnmsubD, r4(0x4b, 1), RM | RS2 | RS3),
        (Op::FnmaddD, r4(0x4f, 1), RM | RS2 | RS3),
        // The double operations the JIT inlines, drawn twice as often.
        (Op::FmulD, op_fp(0x09, 0, 0), RM | RS2),
        (Op::FaddD, op_fp(0x01, 0, 0), RM | RS2),
    ]
};

/// Whether `op` takes a rounding mode (static in its `rm` field, or `frm` when 7).
pub fn rounds(op: Op) -> bool {
    FP_FORMS.iter().any(|&(o, _, f)| o == op && f & RM != 0)
}

/// One F/D operation from `FP_FORMS[k]` with random registers and, if it rounds, the
/// rounding field `rm` (0..=4 static, 7 dynamic).
fn fp_insn(rng: &mut Rng, k: usize, rm: u32) -> Insn {
    fp_insn_from(rng, k, rm, 32)
}

/// [`fp_insn`] with float sources among `f0..f(sources - 1)`.
fn fp_insn_from(rng: &mut Rng, k: usize, rm: u32, sources: u64) -> Insn {
    let (op, word, free) = FP_FORMS[k];
    let mut w = word;
    w |= if free & XD != 0 { rd(rng) } else { reg(rng) } << 7;
    let src = |rng: &mut Rng| rng.below(sources) as u32;
    w |= if free & XS != 0 { reg(rng) } else { src(rng) } << 15;
    if free & RS2 != 0 {
        w |= src(rng) << 20;
    }
    if free & RS3 != 0 {
        w |= src(rng) << 27;
    }
    if free & RM != 0 {
        w |= rm << 12;
    }
    let insn = dec(w);
    debug_assert_eq!(insn.op, op, "FP_FORMS entry {k} encodes {w:#x}");
    insn
}

fn random_rm(rng: &mut Rng) -> u32 {
    rng.pick(&[0u32, 1, 2, 3, 4, 7])
}

/// A random F/D operation (not a load or store), every rounding field equally likely.
fn random_fp(rng: &mut Rng) -> Insn {
    let k = rng.below(FP_FORMS.len() as u64) as usize;
    let rm = random_rm(rng);
    fp_insn(rng, k, rm)
}

/// A random F/D operation that rounds, with the rounding field `rm`.
fn random_rounding_fp(rng: &mut Rng, rm: u32) -> Insn {
    loop {
        let k = rng.below(FP_FORMS.len() as u64) as usize;
        if FP_FORMS[k].2 & RM != 0 {
            return fp_insn(rng, k, rm);
        }
    }
}

// ---- compressed -------------------------------------------------------------------

/// Every compressed form rv64 decodes, as (name, mask, match): a word is of the first
/// form whose fixed bits it has (so the more specific forms come first).
pub const CFORMS: [(&str, u16, u16); 37] = [
    ("c.addi4spn", 0xe003, 0x0000),
    ("c.fld", 0xe003, 0x2000),
    ("c.lw", 0xe003, 0x4000),
    ("c.ld", 0xe003, 0x6000),
    ("c.fsd", 0xe003, 0xa000),
    ("c.sw", 0xe003, 0xc000),
    ("c.sd", 0xe003, 0xe000),
    // c.addi with rd = x0: c.nop and its hints.
    ("c.nop", 0xef83, 0x0001),
    ("c.addi", 0xe003, 0x0001),
    ("c.addiw", 0xe003, 0x2001),
    ("c.li", 0xe003, 0x4001),
    ("c.addi16sp", 0xef83, 0x6101),
    ("c.lui", 0xe003, 0x6001),
    ("c.srli", 0xec03, 0x8001),
    ("c.srai", 0xec03, 0x8401),
    ("c.andi", 0xec03, 0x8801),
    ("c.sub", 0xfc63, 0x8c01),
    ("c.xor", 0xfc63, 0x8c21),
    ("c.or", 0xfc63, 0x8c41),
    ("c.and", 0xfc63, 0x8c61),
    ("c.subw", 0xfc63, 0x9c01),
    ("c.addw", 0xfc63, 0x9c21),
    ("c.j", 0xe003, 0xa001),
    ("c.beqz", 0xe003, 0xc001),
    ("c.bnez", 0xe003, 0xe001),
    ("c.slli", 0xe003, 0x0002),
    ("c.fldsp", 0xe003, 0x2002),
    ("c.lwsp", 0xe003, 0x4002),
    ("c.ldsp", 0xe003, 0x6002),
    ("c.jr", 0xf07f, 0x8002),
    ("c.mv", 0xf003, 0x8002),
    ("c.ebreak", 0xffff, 0x9002),
    ("c.jalr", 0xf07f, 0x9002),
    ("c.add", 0xf003, 0x9002),
    ("c.fsdsp", 0xe003, 0xa002),
    ("c.swsp", 0xe003, 0xc002),
    ("c.sdsp", 0xe003, 0xe002),
];

/// The compressed form (index into [`CFORMS`]) of a 16-bit word, if any.
pub fn cform(raw: u32) -> Option<usize> {
    let w = raw as u16;
    CFORMS.iter().position(|&(_, mask, m)| w & mask == m)
}

/// A compressed instruction of a random form: one that ends a block or one that does
/// not, as asked.
fn random_compressed(rng: &mut Rng, ends_block: bool) -> Insn {
    loop {
        let k = rng.below(CFORMS.len() as u64) as usize;
        let (_, mask, m) = CFORMS[k];
        for _ in 0..64 {
            let w = (rng.next() as u16 & !mask) | m;
            if cform(u32::from(w)) != Some(k) {
                continue;
            }
            match rv64::decode(u32::from(w)) {
                Ok(i) if i.op.ends_block() == ends_block => return i,
                Ok(_) => break,
                Err(_) => continue,
            }
        }
    }
}

/// `c.j imm`.
pub fn c_j(imm: i32) -> u32 {
    let o = imm as u32;
    let bit = |n: u32| (o >> n) & 1;
    0xa001
        | bit(11) << 12
        | bit(4) << 11
        | ((o >> 8) & 3) << 9
        | bit(10) << 8
        | bit(6) << 7
        | bit(7) << 6
        | ((o >> 1) & 7) << 3
        | bit(5) << 2
}

/// `c.beqz rs1, imm` (or `c.bnez`), `rs1` in x8..=x15.
pub fn c_beqz(rs1: u32, imm: i32, bnez: bool) -> u32 {
    let o = imm as u32;
    let bit = |n: u32| (o >> n) & 1;
    (if bnez { 0xe001 } else { 0xc001 })
        | bit(8) << 12
        | ((o >> 3) & 3) << 10
        | (rs1 - 8) << 7
        | ((o >> 6) & 3) << 5
        | ((o >> 1) & 3) << 3
        | bit(5) << 2
}

// ---- bodies -----------------------------------------------------------------------

/// Tries a random word until it decodes to an instruction that does not end a block.
fn body_word(rng: &mut Rng) -> u32 {
    match rng.below(22) {
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
            // A: every AMO, LR and SC, both widths, any aq/rl; base usually a pointer.
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
        13..=15 => random_fp(rng).raw,
        16 => {
            // Zicsr on the CSRs a user program has (not `time`: not reproducible), a
            // counter's RV32 high half and a machine CSR (both illegal).
            let csr = rng.pick(&[1i32, 2, 3, 1, 2, 3, 0xc00, 0xc02, 0xc80, 0x7c0]);
            let f3 = rng.pick(&[1u32, 2, 3, 5, 6, 7]);
            let src = if rng.chance(30) { 0 } else { reg(rng) };
            i(csr, src, f3, rd(rng), 0x73)
        }
        17 => {
            // fence with any predecessor/successor sets (fence.tso and pause among them).
            i(rng.below(4096) as i32, 0, 0, 0, 0x0f)
        }
        _ => random_compressed(rng, false).raw,
    }
}

/// One random instruction that does not end a block.
pub fn random_body_insn(rng: &mut Rng) -> Insn {
    loop {
        let w = body_word(rng);
        if let Ok(i) = rv64::decode(w)
            && !i.op.ends_block()
            && !(PTR_REGS.contains(&(i.rd as u32)) && writes_x(i.op) && rng.chance(85))
        {
            return i;
        }
    }
}

/// Whether `op` writes its `rd` as an integer register.
fn writes_x(op: Op) -> bool {
    match op {
        Op::Sb | Op::Sh | Op::Sw | Op::Sd | Op::Fsw | Op::Fsd | Op::Fence | Op::Flw | Op::Fld => {
            false
        }
        _ => match FP_FORMS.iter().find(|&&(o, _, _)| o == op) {
            Some(&(_, _, free)) => free & XD != 0,
            None => true,
        },
    }
}

/// `rd = value` for a value below 2^31 (`lui` and `addiw`, or one `addi`).
fn li(rd: u32, value: u64) -> Vec<Insn> {
    let v = value as i64;
    if (-2048..2048).contains(&v) {
        return vec![dec(i(v as i32, 0, 0, rd, 0x13))];
    }
    let lo = ((v << 52) >> 52) as i32;
    let hi = ((v - i64::from(lo)) >> 12) as u32;
    vec![dec(u(hi, rd, 0x37)), dec(i(lo, rd, 0, rd, 0x1b))]
}

/// LR then SC, with a few unrelated instructions between: through the same base (the
/// reservation matches), another pointer register, or the same one moved (it does not).
fn lr_sc(rng: &mut Rng) -> Vec<Insn> {
    let wide = rng.chance(50);
    let f3 = if wide { 3 } else { 2 };
    let base = rng.pick(&PTR_REGS);
    let aqrl = |rng: &mut Rng| rng.below(4) as u32;
    let mut v = vec![dec(r(
        0x02 << 2 | aqrl(rng),
        0,
        base,
        f3,
        scratch(rng),
        0x2f,
    ))];
    for _ in 0..rng.below(3) {
        let d = scratch(rng);
        v.push(dec(i(imm12(rng), reg(rng), 0, d, 0x13)));
    }
    let sc_base = match rng.below(5) {
        0..=2 => base,
        3 => rng.pick(&PTR_REGS),
        _ => {
            v.push(dec(i(rng.pick(&[4, 8, -8]), base, 0, base, 0x13)));
            base
        }
    };
    let sc_f3 = if rng.chance(85) { f3 } else { 5 - f3 };
    v.push(dec(r(
        0x03 << 2 | aqrl(rng),
        reg(rng),
        sc_base,
        sc_f3,
        scratch(rng),
        0x2f,
    )));
    v
}

/// Points a pointer register at the last bytes before a page boundary (the end of the
/// guest space included) and accesses there: accesses that stay in the page, cross into
/// the next one (mapped, unmapped, read-only, write-only) or leave the space.
fn edge_access(rng: &mut Rng) -> Vec<Insn> {
    let boundary = (1 + rng.below(16)) << PAGE_SHIFT;
    let at = boundary - 1 - rng.below(8);
    let base = rng.pick(&PTR_REGS);
    let mut v = li(base, at);
    for _ in 0..1 + rng.below(3) {
        let imm = rng.below(9) as i32 - 4;
        let w = match rng.below(7) {
            0 | 1 => i(
                imm,
                base,
                rng.pick(&[0u32, 1, 2, 3, 4, 5, 6]),
                scratch(rng),
                0x03,
            ),
            2 | 3 => s(imm, reg(rng), base, rng.below(4) as u32, 0x23),
            4 => {
                let store = rng.chance(50);
                let f3 = rng.pick(&[2u32, 3]);
                if store {
                    s(imm, reg(rng), base, f3, 0x27)
                } else {
                    i(imm, base, f3, reg(rng), 0x07)
                }
            }
            5 if base != 2 => {
                // c.ld / c.sd / c.lw / c.sw / c.fld / c.fsd, offset 0.
                let rdp = 8 + rng.below(8) as u32;
                let f3 = rng.pick(&[1u32, 2, 3, 5, 6, 7]);
                f3 << 13 | (base - 8) << 7 | (rdp - 8) << 2
            }
            _ => {
                // An AMO or LR at the aligned word or doubleword below.
                let f5 = rng.pick(&[0x00u32, 0x01, 0x02, 0x0c, 0x1c]);
                let rs2 = if f5 == 0x02 { 0 } else { reg(rng) };
                v.push(dec(i(-8, base, 7, base, 0x13)));
                r(f5 << 2, rs2, base, rng.pick(&[2u32, 3]), scratch(rng), 0x2f)
            }
        };
        v.push(dec(w));
    }
    v
}

/// An `frm` write (mostly a valid mode, RMM included; sometimes 5..=7, which makes the
/// dynamic operations after it illegal), then operations that round dynamically.
fn dynamic_rounding(rng: &mut Rng) -> Vec<Insn> {
    let mode = if rng.chance(90) {
        rng.below(5) as u32
    } else {
        5 + rng.below(3) as u32
    };
    let mut v = Vec::new();
    match rng.below(3) {
        0 => v.push(dec(i(2, mode, 5, rd(rng), 0x73))),
        1 => {
            let t = scratch(rng);
            v.push(dec(i(mode as i32, 0, 0, t, 0x13)));
            v.push(dec(i(2, t, 1, 0, 0x73)));
        }
        _ => {
            // All of fcsr: the mode and fresh flags.
            let t = scratch(rng);
            let flags = rng.below(32) as i32;
            v.push(dec(i((mode as i32) << 5 | flags, 0, 0, t, 0x13)));
            v.push(dec(i(3, t, 1, rd(rng), 0x73)));
        }
    }
    for _ in 0..1 + rng.below(3) {
        v.push(random_rounding_fp(rng, 7));
    }
    v
}

/// `fflags` cleared (all, or only NX), then double operations the JIT inlines only while
/// NX is set, rounding to nearest statically or through `frm`.
fn fflags_reset(rng: &mut Rng) -> Vec<Insn> {
    let mut v = vec![if rng.chance(50) {
        dec(i(1, 0, 5, 0, 0x73))
    } else {
        dec(i(1, 1, 7, rd(rng), 0x73))
    }];
    let inlined = [
        Op::FmulD,
        Op::FdivD,
        Op::FaddD,
        Op::FsubD,
        Op::FmaddD,
        Op::FnmsubD,
        Op::FeqD,
        Op::FltD,
        Op::FcvtDW,
    ];
    for _ in 0..1 + rng.below(3) {
        let op = rng.pick(&inlined);
        let k = FP_FORMS.iter().position(|&(o, _, _)| o == op).unwrap_or(0);
        let rm = rng.pick(&[0u32, 0, 7]);
        v.push(fp_insn(rng, k, rm));
    }
    v
}

/// F/D operations on `f0..f5`, which `random_cpu` often makes related values (equal,
/// negated, one ulp apart): cancellation, overflow of `v + v`, exact ties, equal and
/// unordered compares. Rounding mostly to nearest (where the JIT has inline paths).
fn fp_related(rng: &mut Rng) -> Vec<Insn> {
    let mut v = Vec::new();
    for _ in 0..1 + rng.below(3) {
        let k = rng.below(FP_FORMS.len() as u64) as usize;
        let rm = if rng.chance(60) { 0 } else { random_rm(rng) };
        v.push(fp_insn_from(rng, k, rm, 6));
    }
    v
}

/// A store, then a load of the same or overlapping bytes through the same base.
fn store_then_load(rng: &mut Rng) -> Vec<Insn> {
    let base = rng.pick(&PTR_REGS);
    let imm = mem_imm(rng).clamp(-2040, 2040);
    let store = s(imm, reg(rng), base, rng.below(4) as u32, 0x23);
    let load = i(
        imm + rng.below(9) as i32 - 4,
        base,
        rng.pick(&[0u32, 1, 2, 3, 4, 5, 6]),
        scratch(rng),
        0x03,
    );
    vec![dec(store), dec(load)]
}

/// A load or store (integer or float) through `base` near where it points.
fn access_through(rng: &mut Rng, base: u32) -> Insn {
    let imm = if rng.chance(70) {
        rng.below(64) as i32 - 32
    } else {
        mem_imm(rng)
    };
    dec(match rng.below(5) {
        0 | 1 => i(
            imm,
            base,
            rng.pick(&[0u32, 1, 2, 3, 4, 5, 6]),
            scratch(rng),
            0x03,
        ),
        2 | 3 => s(imm, reg(rng), base, rng.below(4) as u32, 0x23),
        _ if rng.chance(50) => s(imm, reg(rng), base, rng.pick(&[2u32, 3]), 0x27),
        _ => i(imm, base, rng.pick(&[2u32, 3]), reg(rng), 0x07),
    })
}

/// Accesses through a base register, the base moved (a small or a page-sized step, or
/// another register added) or replaced (a pointer loaded through itself), then accesses
/// through it again: what a loop walking an array or a list does. The accesses after the
/// move are checked apart from those before it.
fn pointer_walk(rng: &mut Rng) -> Vec<Insn> {
    let base = rng.pick(&PTR_REGS);
    let mut v = vec![access_through(rng, base)];
    if rng.chance(50) {
        v.push(access_through(rng, base));
    }
    match rng.below(5) {
        0 | 1 => {
            let step = rng.pick(&[8, -8, 16, 64, -64, 2047, -2048]);
            v.push(dec(i(step, base, 0, base, 0x13)));
        }
        2 => {
            // One page forward or back: into the next page of the map.
            let t = scratch(rng);
            v.push(dec(u(if rng.chance(50) { 1 } else { 0xfffff }, t, 0x37)));
            v.push(dec(r(0, t, base, 0, base, 0x33)));
        }
        3 => v.push(dec(r(0, reg(rng), base, 0, base, 0x33))),
        _ => v.push(dec(i(rng.below(8) as i32 * 8, base, 3, base, 0x03))),
    }
    for _ in 0..1 + rng.below(2) {
        v.push(access_through(rng, base));
    }
    v
}

/// A snippet of related instructions (none ends a block).
fn random_snippet(rng: &mut Rng) -> Vec<Insn> {
    match rng.below(7) {
        0 => lr_sc(rng),
        1 => edge_access(rng),
        2 => dynamic_rounding(rng),
        3 => fflags_reset(rng),
        4 => pointer_walk(rng),
        5 => fp_related(rng),
        _ => store_then_load(rng),
    }
}

/// One body instruction, or one time in five a snippet.
pub fn random_body(rng: &mut Rng) -> Vec<Insn> {
    if rng.chance(20) {
        random_snippet(rng)
    } else {
        vec![random_body_insn(rng)]
    }
}

// ---- terminators and blocks ---------------------------------------------------------

/// An illegal instruction: undecodable 32-bit or 16-bit bits, or all ones.
fn random_illegal(rng: &mut Rng) -> Insn {
    loop {
        let raw = match rng.below(3) {
            0 => 0xffff_ffff,
            1 => rng.next() as u32 | 3,
            _ => {
                let w = rng.next() as u32 & 0xffff;
                if w & 3 == 3 {
                    continue;
                }
                w
            }
        };
        if rv64::decode(raw).is_err() {
            return Insn::illegal(raw);
        }
    }
}

/// A random block terminator, or `None` for a block that falls through. `back` is the
/// offset from the terminator to the block's start (zero or negative), for self-loops.
pub fn random_terminator(rng: &mut Rng, back: i64) -> Option<Insn> {
    let w = match rng.below(14) {
        0..=3 => b(
            (rng.below(512) as i32 - 256) * 2,
            reg(rng),
            reg(rng),
            rng.pick(&[0u32, 1, 4, 5, 6, 7]),
        ),
        4 => j((rng.below(4096) as i32 - 2048) * 2, reg(rng)),
        5 => i(imm12(rng), reg(rng), 0, reg(rng), 0x67),
        6 => super::ECALL,
        7 => super::EBREAK,
        8 => super::FENCE_I,
        9 => return Some(random_compressed(rng, true)),
        10 => return Some(random_illegal(rng)),
        11 | 12 => {
            // Back to the block's start: a loop while the chain budget lasts.
            let back = back as i32;
            match rng.below(4) {
                0 => j(back, reg(rng)),
                1 if back >= -256 => c_beqz(8 + rng.below(8) as u32, back, rng.chance(50)),
                2 if back >= -2048 => c_j(back),
                _ => b(back, reg(rng), reg(rng), rng.pick(&[0u32, 1, 4, 5, 6, 7])),
            }
        }
        _ => return None,
    };
    Some(dec(w))
}

/// A random block at `at` of `1..=max_body` body instructions (or a few more when a
/// snippet ends it) plus a terminator (or none), made only of instructions `keep`
/// accepts (the others are drawn again).
pub fn random_block_at(
    rng: &mut Rng,
    at: u64,
    max_body: u64,
    keep: &dyn Fn(&Insn) -> bool,
) -> Vec<(u64, Insn)> {
    let n = 1 + rng.below(max_body) as usize;
    let mut insns: Vec<Insn> = Vec::new();
    while insns.len() < n {
        let more = random_body(rng);
        if more.iter().all(keep) {
            insns.extend(more);
        }
    }
    let back = -(insns.iter().map(|i| i64::from(i.len)).sum::<i64>());
    loop {
        match random_terminator(rng, back) {
            Some(t) if !keep(&t) => continue,
            t => {
                insns.extend(t);
                break;
            }
        }
    }
    let mut pc = at;
    insns
        .into_iter()
        .map(|i| {
            let here = pc;
            pc = pc.wrapping_add(u64::from(i.len));
            (here, i)
        })
        .collect()
}

/// A random block at [`super::CODE_BASE`] of any instructions.
pub fn random_block(rng: &mut Rng, max_body: u64) -> Vec<(u64, Insn)> {
    random_block_at(rng, super::CODE_BASE, max_body, &|_| true)
}
