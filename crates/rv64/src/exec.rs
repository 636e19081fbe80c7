//! Execution of one decoded instruction: the reference semantics.
//!
//! `step` is the single definition of every operation's effect; [`execute`] and the
//! interpreter's block loop both call it, so they cannot disagree. `step` leaves `pc`
//! and `instret` to its caller (it returns the next pc), which lets the block loop keep
//! them in registers and count retired instructions once per block.
//!
//! # Atomics and memory ordering
//!
//! Guest threads run on host threads and share guest memory, so the A extension and
//! `fence` must hold across host threads. The host is x86-64 (TSO).
//!
//! **AMOs.** Each AMO is one [`Memory::amo32`]/[`Memory::amo64`] call, which a shared
//! memory implements with one host atomic read-modify-write (`lock xadd`, `xchg`,
//! `lock cmpxchg` loops, ...). A `lock`-prefixed instruction is a full barrier on x86-64:
//! no earlier load or store passes it and it passes no later one. That is at least what
//! `.aq` (nothing later is performed before the AMO), `.rl` (nothing earlier after it)
//! and `.aqrl` (both, sequentially consistent) ask, so all orderings get the same code.
//!
//! **LR/SC: a value-based reservation**, as QEMU, FEX and Box64 do. `lr` loads the word
//! with a plain load and records its address in `Cpu::reservation` and the value it
//! read in `Cpu::reserved_value`. `sc` succeeds only if the reservation is for its
//! address *and* a compare-and-swap ([`Memory::cas32`]/[`Memory::cas64`], `lock
//! cmpxchg`) from the recorded value to the new value succeeds. Either way the
//! reservation is gone afterwards (unless the `sc` faults: a fault changes no state).
//! What that guarantees:
//! - An `sc` never succeeds when the word holds a value other than the one `lr` read:
//!   the comparison and the store are one atomic instruction, so no store of another
//!   thread can come between them. Two threads racing `lr`/`sc` on one word cannot both
//!   succeed from the same value.
//! - An `sc` may fail spuriously, as the ISA allows: whenever the word changed since the
//!   `lr`, even if this thread changed it, and whenever the reservation was dropped.
//! - The one case it cannot detect is ABA: another thread stores a different value and
//!   then the original value back between the `lr` and the `sc`; the `sc` succeeds as
//!   if nothing had happened. Detecting that strictly needs every store of every thread
//!   to the reserved word to break the reservation: every guest store, the inline ones
//!   in translated code included, would have to be instrumented (or guest memory be
//!   written by one thread at a time, through page protection or a global lock), a
//!   large cost on every store for a pattern real code does not use. Compiled code
//!   (gcc's and LLVM's `__atomic` builtins, which glibc uses, and musl's `a_cas`) uses
//!   LR/SC only in compare-and-swap shape, `lr; bne; sc; bnez`, with no memory access
//!   between `lr` and `sc` (the ISA only promises progress for such constrained
//!   sequences, which may not contain loads or stores); a compare-and-swap has value
//!   semantics by definition and cannot see ABA either. An algorithm that relies on "an
//!   `sc` fails if anything at all was stored in between" (a true LL/SC, for example a
//!   lock-free stack popped without a counter) is not safe here.
//! - An `sc` pairs with the most recent `lr` by address only, not width: after `lr.d`,
//!   `sc.w` compares the low word; after `lr.w`, `sc.d` compares the doubleword with the
//!   sign-extended word (so it usually fails). Neither pairing is a constrained LR/SC
//!   sequence, and software does not use them.
//! - `lr` is a plain load: x86 does not reorder a load with older loads or with later
//!   loads and stores, which is all `.aq` needs (a compiler `Acquire` fence keeps the
//!   Rust compiler from moving later accesses above it). `lr.rl`/`lr.aqrl` (the
//!   sequentially consistent compare-and-swap of gcc and LLVM) also orders *earlier
//!   stores* before the load, the one thing TSO does not do: it is preceded by a full
//!   fence (`mfence`). `sc` is `lock cmpxchg`, a full barrier, whatever its bits; an
//!   `sc` that fails for want of a reservation performs no access and orders nothing.
//!
//! **Fences.** x86-TSO keeps load -> load, load -> store and store -> store order; it
//! only lets a later load pass an earlier store (to another address; the store buffer
//! forwards to a load of the same address). So a `fence` whose predecessor set has W
//! (or O) and whose successor set has R (or I) needs a full barrier (`mfence`), and every
//! other `fence`, `fence.tso` included, needs no instruction, only that no compiler
//! moves a memory access across it ([`Insn::fence_orders_store_to_load`] decides):
//! - here, `fence(SeqCst)` (an `mfence`) or `fence(AcqRel)`, which emits nothing on x86
//!   and forbids exactly the compiler reorderings TSO forbids to the hardware (an
//!   acquire-release fence lets only an earlier store and a later load trade places);
//! - in Cranelift code, `fence` (lowered to `mfence`) or `sequence_point`, which emits
//!   nothing but is a barrier to Cranelift's alias analysis (no load merged or store
//!   forwarded across it) and to code motion;
//! - in baseline code, `mfence` or nothing (templates are emitted in program order; no
//!   compiler reorders them).
//!
//! Plain guest loads and stores need nothing more: translated code uses ordinary `mov`s
//! (single-copy atomic when aligned, which is what RVWMO asks), and a shared memory's
//! loads and stores are relaxed host atomics.

use std::sync::atomic::{Ordering, fence};

use crate::fpu::{self, Arith, Cmp, box32, unbox32};
use crate::{AmoOp, Cpu, Insn, MemFault, Memory, Op};
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
    // One `Memory::amo*` call: atomic when the memory is shared (see the module notes).
    // A misaligned AMO faults (Write, at its address) before any access, as Linux
    // delivers SIGBUS for it rather than emulating it.
    macro_rules! amo_w {
        ($op:expr) => {{
            if misaligned(a, 4) {
                bail!(fault(MemFault {
                    addr: a,
                    kind: crate::AccessKind::Write,
                }));
            }
            let old = tri!(mem.amo32(a, $op, b as u32));
            wrw!(old);
        }};
    }
    macro_rules! amo_d {
        ($op:expr) => {{
            if misaligned(a, 8) {
                bail!(fault(MemFault {
                    addr: a,
                    kind: crate::AccessKind::Write,
                }));
            }
            let old = tri!(mem.amo64(a, $op, b));
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
        // See the module notes: only a store -> load fence costs an instruction on x86.
        Op::Fence => {
            if i.fence_orders_store_to_load() {
                fence(Ordering::SeqCst);
            } else {
                fence(Ordering::AcqRel);
            }
        }
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
            if i.rm & AQRL_RL != 0 {
                // `.rl` orders earlier stores before this load: the one ordering TSO
                // does not give.
                fence(Ordering::SeqCst);
            }
            let v = if size == 4 {
                tri!(mem.load32(a)) as i32 as i64 as u64
            } else {
                tri!(mem.load64(a))
            };
            // `.aq`: no later access before the load; the hardware keeps that order, this
            // keeps the Rust compiler from breaking it (no instruction).
            fence(Ordering::Acquire);
            cpu.reservation = a;
            cpu.reserved_value = v;
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
            // Value-based reservation (module notes): succeed only if the word still
            // holds what `lr` read, compared and replaced in one atomic step. A fault
            // leaves the reservation, as every exit leaves the state.
            let stored = cpu.reservation == a
                && if size == 4 {
                    tri!(mem.cas32(a, cpu.reserved_value as u32, b as u32))
                } else {
                    tri!(mem.cas64(a, cpu.reserved_value, b))
                };
            cpu.reservation = Cpu::NO_RESERVATION;
            wr!(if stored { 0 } else { 1 });
        }
        Op::AmoswapW => amo_w!(AmoOp::Swap),
        Op::AmoaddW => amo_w!(AmoOp::Add),
        Op::AmoxorW => amo_w!(AmoOp::Xor),
        Op::AmoandW => amo_w!(AmoOp::And),
        Op::AmoorW => amo_w!(AmoOp::Or),
        Op::AmominW => amo_w!(AmoOp::Min),
        Op::AmomaxW => amo_w!(AmoOp::Max),
        Op::AmominuW => amo_w!(AmoOp::Minu),
        Op::AmomaxuW => amo_w!(AmoOp::Maxu),
        Op::AmoswapD => amo_d!(AmoOp::Swap),
        Op::AmoaddD => amo_d!(AmoOp::Add),
        Op::AmoxorD => amo_d!(AmoOp::Xor),
        Op::AmoandD => amo_d!(AmoOp::And),
        Op::AmoorD => amo_d!(AmoOp::Or),
        Op::AmominD => amo_d!(AmoOp::Min),
        Op::AmomaxD => amo_d!(AmoOp::Max),
        Op::AmominuD => amo_d!(AmoOp::Minu),
        Op::AmomaxuD => amo_d!(AmoOp::Maxu),
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

/// The `rl` bit of an A instruction's `Insn::rm` (`aq` is bit 1).
const AQRL_RL: u8 = 1;

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
