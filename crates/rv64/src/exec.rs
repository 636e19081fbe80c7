//! Execution of one decoded instruction: the reference semantics.
//!
//! `step` is the single definition of every operation's effect; [`execute`] and the
//! interpreter's block loop both call it, so they cannot disagree. `step` leaves `pc`
//! and `instret` to its caller (it returns the next pc), which lets the block loop keep
//! them in registers and count retired instructions once per block.

use crate::fpu::{self, Arith, Cmp, box32, unbox32};
use crate::{Cpu, Insn, MemFault, Memory, Op};
use rustc_apfloat::ieee::{Double, Single};

/// Why execution stopped and handed control back to the engine. `cpu.pc` always says
/// where to resume, as documented per variant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    /// `ecall`: `cpu.pc` points at the ecall; the engine performs the system call and
    /// advances pc by 4.
    Ecall,
    /// `ebreak`: `cpu.pc` points at it.
    Ebreak,
    /// `fence.i` was executed; `cpu.pc` already points past it. The engine must drop any
    /// translated or pre-decoded code before continuing.
    FenceI,
    /// An illegal or reserved instruction at `pc` (raw bits as fetched).
    Illegal { pc: u64, raw: u32 },
    /// A memory access at `pc` faulted; `cpu.pc == pc`.
    Fault { pc: u64, fault: MemFault },
    /// The instruction budget given to the interpreter ran out (`cpu.pc` is the next
    /// instruction).
    Budget,
}

impl Exit {
    /// Whether the instruction that produced this exit retired (only `fence.i` does).
    pub const fn retired(self) -> bool {
        matches!(self, Exit::FenceI)
    }
}

/// Executes `insn` located at `cpu.pc`, updating `cpu` (including pc and instret) and
/// `mem`. Returns `Err(exit)` for the cases in [`Exit`].
pub fn execute<M: Memory>(cpu: &mut Cpu, mem: &mut M, insn: &Insn) -> Result<(), Exit> {
    let pc = cpu.pc;
    if pc & 1 != 0 {
        return Err(misaligned_fetch(pc));
    }
    let mut exit = Exit::Budget;
    let next = step(cpu, mem, insn, pc, 0, &mut exit);
    if next != EXITED {
        cpu.pc = next;
        cpu.instret += 1;
        return Ok(());
    }
    if exit.retired() {
        cpu.pc = pc.wrapping_add(insn.len as u64);
        cpu.instret += 1;
    } else {
        cpu.pc = pc;
    }
    Err(exit)
}

/// What [`step`] returns when the instruction exits: odd, so never a real next pc
/// (instructions start at even addresses, and the callers refuse an odd pc).
pub(crate) const EXITED: u64 = 1;

/// An odd pc cannot hold an instruction (jumps clear bit 0; only a corrupt entry point
/// gets here); it is reported as a fetch fault at that address.
pub(crate) fn misaligned_fetch(pc: u64) -> Exit {
    Exit::Fault {
        pc,
        fault: MemFault {
            addr: pc,
            kind: crate::AccessKind::Fetch,
        },
    }
}

const CSR_FFLAGS: i64 = 0x001;
const CSR_FRM: i64 = 0x002;
const CSR_FCSR: i64 = 0x003;
const CSR_CYCLE: i64 = 0xc00;
const CSR_TIME: i64 = 0xc01;
const CSR_INSTRET: i64 = 0xc02;

/// Executes `i` at `pc` (even) and returns the next pc, or [`EXITED`] after storing the
/// reason in `exit`. Does not touch `cpu.pc` or `cpu.instret`; `retired` is how many
/// instructions retired since `cpu.instret` was last brought up to date (so rdinstret
/// is exact in the middle of a block). On an exit nothing architectural has changed
/// except by `fence.i`, which retires.
#[inline(always)]
pub(crate) fn step<M: Memory>(
    cpu: &mut Cpu,
    mem: &mut M,
    i: &Insn,
    pc: u64,
    retired: u64,
    exit: &mut Exit,
) -> u64 {
    let rd = (i.rd & 31) as usize;
    let rs1 = (i.rs1 & 31) as usize;
    let rs2 = (i.rs2 & 31) as usize;
    let a = cpu.x[rs1];
    let b = cpu.x[rs2];
    let imm = i.imm;
    let next = pc.wrapping_add(i.len as u64);
    let addr = a.wrapping_add(imm as u64);
    let fault = |fault: MemFault| Exit::Fault { pc, fault };
    let illegal = Exit::Illegal { pc, raw: i.raw };

    // Exits are written to `exit` and signalled by the impossible next pc `EXITED`, so
    // the common path returns one register instead of a large `Result`.
    macro_rules! bail {
        ($e:expr) => {{
            *exit = $e;
            return EXITED;
        }};
    }
    macro_rules! tri {
        ($e:expr) => {
            match $e {
                Ok(v) => v,
                Err(f) => bail!(fault(f)),
            }
        };
    }

    macro_rules! wr {
        ($v:expr) => {{
            let v: u64 = $v;
            cpu.x[rd] = v;
        }};
    }
    macro_rules! wrw {
        ($v:expr) => {{
            let v: u32 = $v;
            cpu.x[rd] = v as i32 as i64 as u64;
        }};
    }
    macro_rules! branch {
        ($c:expr) => {{
            if $c {
                return pc.wrapping_add(imm as u64);
            }
        }};
    }
    macro_rules! rm {
        () => {
            match fpu::round_mode(i.rm, cpu.frm) {
                Some(r) => r,
                None => bail!(illegal),
            }
        };
    }
    // Single-precision operands (unboxed) and a boxed single result with flags.
    macro_rules! fs {
        ($r:expr) => {
            unbox32(cpu.f[($r & 31) as usize]) as u64
        };
    }
    macro_rules! fd {
        ($r:expr) => {
            cpu.f[($r & 31) as usize]
        };
    }
    macro_rules! set_fs {
        ($res:expr) => {{
            let (v, fl): fpu::FRes = $res;
            cpu.f[rd] = box32(v as u32);
            cpu.fflags |= fl;
        }};
    }
    macro_rules! set_fd {
        ($res:expr) => {{
            let (v, fl): fpu::FRes = $res;
            cpu.f[rd] = v;
            cpu.fflags |= fl;
        }};
    }
    macro_rules! set_x_fl {
        ($res:expr) => {{
            let (v, fl): (u64, u32) = $res;
            cpu.x[rd] = v;
            cpu.fflags |= fl;
        }};
    }
    macro_rules! cmp {
        ($f:ty, $x:expr, $y:expr, $c:expr) => {{
            let (r, fl) = fpu::compare::<$f>($x, $y, $c);
            cpu.x[rd] = r as u64;
            cpu.fflags |= fl;
        }};
    }
    macro_rules! amo_w {
        ($f:expr) => {{
            if misaligned(a, 4) {
                bail!(fault(MemFault {
                    addr: a,
                    kind: crate::AccessKind::Write,
                }));
            }
            let old = tri!(mem.load32(a));
            let f: fn(u32, u32) -> u32 = $f;
            tri!(mem.store32(a, f(old, b as u32)));
            wrw!(old);
        }};
    }
    macro_rules! amo_d {
        ($f:expr) => {{
            if misaligned(a, 8) {
                bail!(fault(MemFault {
                    addr: a,
                    kind: crate::AccessKind::Write,
                }));
            }
            let old = tri!(mem.load64(a));
            let f: fn(u64, u64) -> u64 = $f;
            tri!(mem.store64(a, f(old, b)));
            wr!(old);
        }};
    }

    match i.op {
        Op::Illegal => bail!(illegal),
        Op::Lui => wr!(imm as u64),
        Op::Auipc => wr!(pc.wrapping_add(imm as u64)),
        Op::Jal => {
            wr!(next);
            cpu.x[0] = 0;
            return pc.wrapping_add(imm as u64);
        }
        Op::Jalr => {
            wr!(next);
            cpu.x[0] = 0;
            return addr & !1;
        }
        Op::Beq => branch!(a == b),
        Op::Bne => branch!(a != b),
        Op::Blt => branch!((a as i64) < (b as i64)),
        Op::Bge => branch!((a as i64) >= (b as i64)),
        Op::Bltu => branch!(a < b),
        Op::Bgeu => branch!(a >= b),
        Op::Lb => wr!(tri!(mem.load8(addr)) as i8 as i64 as u64),
        Op::Lh => wr!(tri!(mem.load16(addr)) as i16 as i64 as u64),
        Op::Lw => wr!(tri!(mem.load32(addr)) as i32 as i64 as u64),
        Op::Ld => wr!(tri!(mem.load64(addr))),
        Op::Lbu => wr!(tri!(mem.load8(addr)) as u64),
        Op::Lhu => wr!(tri!(mem.load16(addr)) as u64),
        Op::Lwu => wr!(tri!(mem.load32(addr)) as u64),
        Op::Sb => tri!(mem.store8(addr, b as u8)),
        Op::Sh => tri!(mem.store16(addr, b as u16)),
        Op::Sw => tri!(mem.store32(addr, b as u32)),
        Op::Sd => tri!(mem.store64(addr, b)),
        Op::Addi => wr!(addr),
        Op::Slti => wr!(((a as i64) < imm) as u64),
        Op::Sltiu => wr!((a < imm as u64) as u64),
        Op::Xori => wr!(a ^ imm as u64),
        Op::Ori => wr!(a | imm as u64),
        Op::Andi => wr!(a & imm as u64),
        Op::Slli => wr!(a << (imm & 63)),
        Op::Srli => wr!(a >> (imm & 63)),
        Op::Srai => wr!(((a as i64) >> (imm & 63)) as u64),
        Op::Add => wr!(a.wrapping_add(b)),
        Op::Sub => wr!(a.wrapping_sub(b)),
        Op::Sll => wr!(a << (b & 63)),
        Op::Slt => wr!(((a as i64) < (b as i64)) as u64),
        Op::Sltu => wr!((a < b) as u64),
        Op::Xor => wr!(a ^ b),
        Op::Srl => wr!(a >> (b & 63)),
        Op::Sra => wr!(((a as i64) >> (b & 63)) as u64),
        Op::Or => wr!(a | b),
        Op::And => wr!(a & b),
        Op::Addiw => wrw!(addr as u32),
        Op::Slliw => wrw!((a as u32) << (imm & 31)),
        Op::Srliw => wrw!((a as u32) >> (imm & 31)),
        Op::Sraiw => wrw!(((a as i32) >> (imm & 31)) as u32),
        Op::Addw => wrw!((a as u32).wrapping_add(b as u32)),
        Op::Subw => wrw!((a as u32).wrapping_sub(b as u32)),
        Op::Sllw => wrw!((a as u32) << (b & 31)),
        Op::Srlw => wrw!((a as u32) >> (b & 31)),
        Op::Sraw => wrw!(((a as i32) >> (b & 31)) as u32),
        // A single hart with a coherent memory model needs no ordering work.
        Op::Fence => {}
        Op::Ecall => bail!(Exit::Ecall),
        Op::Ebreak => bail!(Exit::Ebreak),
        Op::FenceI => bail!(Exit::FenceI),
        Op::Mul => wr!(a.wrapping_mul(b)),
        Op::Mulh => wr!(((a as i64 as i128 * b as i64 as i128) >> 64) as u64),
        Op::Mulhsu => wr!(((a as i64 as i128 * b as i128) >> 64) as u64),
        Op::Mulhu => wr!(((a as u128 * b as u128) >> 64) as u64),
        Op::Div => wr!(if b == 0 {
            u64::MAX
        } else {
            (a as i64).wrapping_div(b as i64) as u64
        }),
        Op::Divu => wr!(a.checked_div(b).unwrap_or(u64::MAX)),
        Op::Rem => wr!(if b == 0 {
            a
        } else {
            (a as i64).wrapping_rem(b as i64) as u64
        }),
        Op::Remu => wr!(if b == 0 { a } else { a % b }),
        Op::Mulw => wrw!((a as u32).wrapping_mul(b as u32)),
        Op::Divw => {
            let (x, y) = (a as i32, b as i32);
            wrw!(if y == 0 {
                u32::MAX
            } else {
                x.wrapping_div(y) as u32
            })
        }
        Op::Divuw => {
            let (x, y) = (a as u32, b as u32);
            wrw!(x.checked_div(y).unwrap_or(u32::MAX))
        }
        Op::Remw => {
            let (x, y) = (a as i32, b as i32);
            wrw!(if y == 0 {
                x as u32
            } else {
                x.wrapping_rem(y) as u32
            })
        }
        Op::Remuw => {
            let (x, y) = (a as u32, b as u32);
            wrw!(if y == 0 { x } else { x % y })
        }
        Op::LrW | Op::LrD => {
            let size = if i.op == Op::LrW { 4 } else { 8 };
            if misaligned(a, size) {
                bail!(fault(MemFault {
                    addr: a,
                    kind: crate::AccessKind::Read,
                }));
            }
            let v = if size == 4 {
                tri!(mem.load32(a)) as i32 as i64 as u64
            } else {
                tri!(mem.load64(a))
            };
            cpu.reservation = a;
            wr!(v);
        }
        Op::ScW | Op::ScD => {
            let size = if i.op == Op::ScW { 4 } else { 8 };
            if misaligned(a, size) {
                bail!(fault(MemFault {
                    addr: a,
                    kind: crate::AccessKind::Write,
                }));
            }
            if cpu.reservation == a {
                if size == 4 {
                    tri!(mem.store32(a, b as u32));
                } else {
                    tri!(mem.store64(a, b));
                }
                cpu.reservation = Cpu::NO_RESERVATION;
                wr!(0);
            } else {
                cpu.reservation = Cpu::NO_RESERVATION;
                wr!(1);
            }
        }
        Op::AmoswapW => amo_w!(|_, y| y),
        Op::AmoaddW => amo_w!(|x, y| x.wrapping_add(y)),
        Op::AmoxorW => amo_w!(|x, y| x ^ y),
        Op::AmoandW => amo_w!(|x, y| x & y),
        Op::AmoorW => amo_w!(|x, y| x | y),
        Op::AmominW => amo_w!(|x, y| (x as i32).min(y as i32) as u32),
        Op::AmomaxW => amo_w!(|x, y| (x as i32).max(y as i32) as u32),
        Op::AmominuW => amo_w!(|x, y| x.min(y)),
        Op::AmomaxuW => amo_w!(|x, y| x.max(y)),
        Op::AmoswapD => amo_d!(|_, y| y),
        Op::AmoaddD => amo_d!(|x, y| x.wrapping_add(y)),
        Op::AmoxorD => amo_d!(|x, y| x ^ y),
        Op::AmoandD => amo_d!(|x, y| x & y),
        Op::AmoorD => amo_d!(|x, y| x | y),
        Op::AmominD => amo_d!(|x, y| (x as i64).min(y as i64) as u64),
        Op::AmomaxD => amo_d!(|x, y| (x as i64).max(y as i64) as u64),
        Op::AmominuD => amo_d!(|x, y| x.min(y)),
        Op::AmomaxuD => amo_d!(|x, y| x.max(y)),
        Op::Csrrw | Op::Csrrs | Op::Csrrc | Op::Csrrwi | Op::Csrrsi | Op::Csrrci => {
            let src = match i.op {
                Op::Csrrw | Op::Csrrs | Op::Csrrc => a,
                _ => i.rs1 as u64,
            };
            // csrrs/csrrc with x0 or zimm 0 only read; csrrw always writes.
            let writes = matches!(i.op, Op::Csrrw | Op::Csrrwi) || i.rs1 != 0;
            let old = match imm {
                CSR_FFLAGS => cpu.fflags as u64,
                CSR_FRM => cpu.frm as u64,
                CSR_FCSR => (cpu.frm << 5 | cpu.fflags) as u64,
                CSR_CYCLE | CSR_INSTRET | CSR_TIME if writes => bail!(illegal),
                CSR_CYCLE | CSR_INSTRET => cpu.instret + retired,
                CSR_TIME => crate::clock::time_ticks(),
                _ => bail!(illegal),
            };
            if writes {
                let new = match i.op {
                    Op::Csrrw | Op::Csrrwi => src,
                    Op::Csrrs | Op::Csrrsi => old | src,
                    _ => old & !src,
                };
                match imm {
                    CSR_FFLAGS => cpu.fflags = (new & 0x1f) as u32,
                    CSR_FRM => cpu.frm = (new & 7) as u32,
                    _ => {
                        cpu.fflags = (new & 0x1f) as u32;
                        cpu.frm = ((new >> 5) & 7) as u32;
                    }
                }
            }
            wr!(old);
        }
        Op::Flw => cpu.f[rd] = box32(tri!(mem.load32(addr))),
        Op::Fld => cpu.f[rd] = tri!(mem.load64(addr)),
        Op::Fsw => tri!(mem.store32(addr, cpu.f[rs2] as u32)),
        Op::Fsd => tri!(mem.store64(addr, cpu.f[rs2])),
        Op::FmaddS | Op::FmsubS | Op::FnmsubS | Op::FnmaddS => {
            let rm = rm!();
            let (np, na) = fma_signs(i.op);
            set_fs!(fpu::fma::<Single>(
                fs!(i.rs1),
                fs!(i.rs2),
                fs!(i.rs3),
                np,
                na,
                rm
            ))
        }
        Op::FmaddD | Op::FmsubD | Op::FnmsubD | Op::FnmaddD => {
            let rm = rm!();
            let (np, na) = fma_signs(i.op);
            set_fd!(fpu::fma::<Double>(
                fd!(i.rs1),
                fd!(i.rs2),
                fd!(i.rs3),
                np,
                na,
                rm
            ))
        }
        Op::FaddS => set_fs!(fpu::arith::<Single>(
            Arith::Add,
            fs!(i.rs1),
            fs!(i.rs2),
            rm!()
        )),
        Op::FsubS => set_fs!(fpu::arith::<Single>(
            Arith::Sub,
            fs!(i.rs1),
            fs!(i.rs2),
            rm!()
        )),
        Op::FmulS => set_fs!(fpu::arith::<Single>(
            Arith::Mul,
            fs!(i.rs1),
            fs!(i.rs2),
            rm!()
        )),
        Op::FdivS => set_fs!(fpu::arith::<Single>(
            Arith::Div,
            fs!(i.rs1),
            fs!(i.rs2),
            rm!()
        )),
        Op::FaddD => set_fd!(fpu::arith::<Double>(
            Arith::Add,
            fd!(i.rs1),
            fd!(i.rs2),
            rm!()
        )),
        Op::FsubD => set_fd!(fpu::arith::<Double>(
            Arith::Sub,
            fd!(i.rs1),
            fd!(i.rs2),
            rm!()
        )),
        Op::FmulD => set_fd!(fpu::arith::<Double>(
            Arith::Mul,
            fd!(i.rs1),
            fd!(i.rs2),
            rm!()
        )),
        Op::FdivD => set_fd!(fpu::arith::<Double>(
            Arith::Div,
            fd!(i.rs1),
            fd!(i.rs2),
            rm!()
        )),
        Op::FsqrtS => set_fs!(fpu::sqrt::<Single>(fs!(i.rs1), rm!())),
        Op::FsqrtD => set_fd!(fpu::sqrt::<Double>(fd!(i.rs1), rm!())),
        Op::FsgnjS => set_fs!((fpu::sgnj::<Single>(fs!(i.rs1), fs!(i.rs2), 0), 0)),
        Op::FsgnjnS => set_fs!((fpu::sgnj::<Single>(fs!(i.rs1), fs!(i.rs2), 1), 0)),
        Op::FsgnjxS => set_fs!((fpu::sgnj::<Single>(fs!(i.rs1), fs!(i.rs2), 2), 0)),
        Op::FsgnjD => set_fd!((fpu::sgnj::<Double>(fd!(i.rs1), fd!(i.rs2), 0), 0)),
        Op::FsgnjnD => set_fd!((fpu::sgnj::<Double>(fd!(i.rs1), fd!(i.rs2), 1), 0)),
        Op::FsgnjxD => set_fd!((fpu::sgnj::<Double>(fd!(i.rs1), fd!(i.rs2), 2), 0)),
        Op::FminS => set_fs!(fpu::minmax::<Single>(fs!(i.rs1), fs!(i.rs2), false)),
        Op::FmaxS => set_fs!(fpu::minmax::<Single>(fs!(i.rs1), fs!(i.rs2), true)),
        Op::FminD => set_fd!(fpu::minmax::<Double>(fd!(i.rs1), fd!(i.rs2), false)),
        Op::FmaxD => set_fd!(fpu::minmax::<Double>(fd!(i.rs1), fd!(i.rs2), true)),
        Op::FcvtWS => set_x_fl!(fpu::to_int::<Single>(fs!(i.rs1), 32, true, rm!())),
        Op::FcvtWuS => set_x_fl!(fpu::to_int::<Single>(fs!(i.rs1), 32, false, rm!())),
        Op::FcvtLS => set_x_fl!(fpu::to_int::<Single>(fs!(i.rs1), 64, true, rm!())),
        Op::FcvtLuS => set_x_fl!(fpu::to_int::<Single>(fs!(i.rs1), 64, false, rm!())),
        Op::FcvtWD => set_x_fl!(fpu::to_int::<Double>(fd!(i.rs1), 32, true, rm!())),
        Op::FcvtWuD => set_x_fl!(fpu::to_int::<Double>(fd!(i.rs1), 32, false, rm!())),
        Op::FcvtLD => set_x_fl!(fpu::to_int::<Double>(fd!(i.rs1), 64, true, rm!())),
        Op::FcvtLuD => set_x_fl!(fpu::to_int::<Double>(fd!(i.rs1), 64, false, rm!())),
        Op::FcvtSW => set_fs!(fpu::from_int::<Single>(a, 32, true, rm!())),
        Op::FcvtSWu => set_fs!(fpu::from_int::<Single>(a, 32, false, rm!())),
        Op::FcvtSL => set_fs!(fpu::from_int::<Single>(a, 64, true, rm!())),
        Op::FcvtSLu => set_fs!(fpu::from_int::<Single>(a, 64, false, rm!())),
        Op::FcvtDW => set_fd!(fpu::from_int::<Double>(a, 32, true, rm!())),
        Op::FcvtDWu => set_fd!(fpu::from_int::<Double>(a, 32, false, rm!())),
        Op::FcvtDL => set_fd!(fpu::from_int::<Double>(a, 64, true, rm!())),
        Op::FcvtDLu => set_fd!(fpu::from_int::<Double>(a, 64, false, rm!())),
        Op::FcvtSD => set_fs!(fpu::d_to_s(fd!(i.rs1), rm!())),
        Op::FcvtDS => set_fd!(fpu::s_to_d(fs!(i.rs1), rm!())),
        // fmv.x.w copies the low 32 bits whether or not they are properly boxed.
        Op::FmvXW => wr!(cpu.f[rs1] as u32 as i32 as i64 as u64),
        Op::FmvXD => wr!(cpu.f[rs1]),
        Op::FmvWX => cpu.f[rd] = box32(a as u32),
        Op::FmvDX => cpu.f[rd] = a,
        Op::FeqS => cmp!(Single, fs!(i.rs1), fs!(i.rs2), Cmp::Eq),
        Op::FltS => cmp!(Single, fs!(i.rs1), fs!(i.rs2), Cmp::Lt),
        Op::FleS => cmp!(Single, fs!(i.rs1), fs!(i.rs2), Cmp::Le),
        Op::FeqD => cmp!(Double, fd!(i.rs1), fd!(i.rs2), Cmp::Eq),
        Op::FltD => cmp!(Double, fd!(i.rs1), fd!(i.rs2), Cmp::Lt),
        Op::FleD => cmp!(Double, fd!(i.rs1), fd!(i.rs2), Cmp::Le),
        Op::FclassS => wr!(fpu::classify::<Single>(fs!(i.rs1))),
        Op::FclassD => wr!(fpu::classify::<Double>(fd!(i.rs1))),
    }
    // Writing then clearing x0 is cheaper than testing rd on every write.
    cpu.x[0] = 0;
    next
}

/// True when an atomic access of `size` bytes at `addr` is misaligned: AMOs and LR/SC
/// are not emulated when misaligned (Linux delivers SIGBUS), so they fault.
#[inline]
fn misaligned(addr: u64, size: u64) -> bool {
    addr & (size - 1) != 0
}

fn fma_signs(op: Op) -> (bool, bool) {
    match op {
        Op::FmaddS | Op::FmaddD => (false, false),
        Op::FmsubS | Op::FmsubD => (false, true),
        Op::FnmsubS | Op::FnmsubD => (true, false),
        _ => (true, true),
    }
}
