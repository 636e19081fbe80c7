//! RV64 instructions -> Cranelift IR for one block or a region. Produces a function
//! `fn(ctx: *mut JitContext) -> u64` (C convention, or `tail` when chaining) that
//! follows the contract of [`crate::context`].
//!
//! Invariants of the generated code:
//! - Integer registers live in Cranelift variables. A single block (straight-line
//!   code) loads each at its first use and stores, at each exit, exactly the registers
//!   written before that exit. A region loads every register it names on entry and
//!   stores every register it may write on every exit. Around a helper call the
//!   registers the helper can read or write are flushed first (if stale in `ctx`) and
//!   its destination reloaded after. `x0` is never cached: it reads as 0, writes
//!   vanish.
//! - `instret` is counted at translation time within a guest block (plus, in a region,
//!   a runtime count of the instructions of earlier blocks in this call): an exit after
//!   `n` retired instructions adds exactly `n`; helper calls receive the count so far
//!   (see [`crate::context::ExecOneFn`]).
//! - In a region, a direct transfer to a later block of the region is a jump inside the
//!   function; one to the same or an earlier block (a back edge, the only way to close
//!   a loop) only while `ctx.chain_budget` is non-zero, and it decrements it, so a
//!   guest loop always returns to the dispatcher eventually.
//! - Every memory access is checked inline with one byte test: the address clamped to
//!   `guest_size` selects a permission entry (the sentinel past the last page when out
//!   of range) whose fast-path bit covers the page and the next one, so bounds, page
//!   crossing and permission are one test (plus an in-page test on a cold path for the
//!   last page of a mapping). Anything else leaves the function with
//!   [`status::SLOW_PATH`] at that instruction: no call on the slow path, so the
//!   register allocator need not keep values around a call. Within a guest block,
//!   accesses of one kind through the same base register value whose bytes fit in a
//!   page-sized span share the first one's check, made for the whole span (see
//!   `plan_checks`); its failure leaves before the first of them.
//! - Division never traps: the divisor is replaced by 1 in the cases RISC-V defines
//!   (zero, `MIN / -1`) and the result fixed up with selects.
//! - Float registers are never cached: inline float code (loads/stores, moves, sign
//!   injection, the arithmetic fast paths) reads and writes `ctx.cpu.f` directly, like
//!   the helpers do. Inline float arithmetic and compares never change `fflags` except
//!   `fadd.d`/`fsub.d` setting NX exactly; whatever could raise another flag leaves with
//!   `SLOW_PATH` before the instruction.
//! - Guest memory accesses keep program order across every guest `fence`: one that
//!   orders stores before loads is a Cranelift `fence` (`mfence`), any other a
//!   `sequence_point` (no code; alias analysis and code motion stop at it). A helper call
//!   (A instructions among others) is a call, which they stop at as well.
//! - No symbol, libcall or absolute address is referenced.

use std::collections::HashMap;

use cranelift_codegen::ir::condcodes::{FloatCC, IntCC};
use cranelift_codegen::ir::{
    AbiParam, Block, BlockArg, Endianness, InstBuilder, MemFlagsData, SigRef, Signature, Type,
    Value, types,
};
use cranelift_codegen::isa::CallConv;
use cranelift_frontend::{FunctionBuilder, Variable};
use rv64::{Insn, Op};

use crate::context::{
    JC_CODE_OFFSET, JC_ENTRY_SHIFT, JC_HITS_OFFSET, JC_KEY_OFFSET, PERM_FAST_R, PERM_FAST_W,
    PERM_R, PERM_W, offsets, status,
};

const I64: Type = types::I64;
const I32: Type = types::I32;

fn ctx_flags() -> MemFlagsData {
    MemFlagsData::trusted()
}

/// Context fields that never change while translated code runs (`mem_base`, `perms`,
/// `guest_size`): the optimiser may merge and hoist their loads.
fn ctx_invariant() -> MemFlagsData {
    MemFlagsData::trusted().with_readonly().with_can_move()
}

fn guest_flags() -> MemFlagsData {
    MemFlagsData::new()
        .with_notrap()
        .with_endianness(Endianness::Little)
}

/// Signature of [`crate::context::ExecOneFn`].
pub(crate) fn exec_one_signature(cc: CallConv) -> Signature {
    let mut sig = Signature::new(cc);
    sig.params.push(AbiParam::new(I64));
    sig.params.push(AbiParam::new(I64));
    sig.params.push(AbiParam::new(I32));
    sig.params.push(AbiParam::new(I64));
    sig.returns.push(AbiParam::new(I64));
    sig
}

#[derive(Clone, Copy)]
pub(crate) enum Width {
    B = 1,
    H = 2,
    W = 4,
    D = 8,
}

pub(crate) struct MemOp {
    pub(crate) width: Width,
    pub(crate) store: bool,
    pub(crate) signed: bool,
    /// The data register is a float register (`flw`/`fld`/`fsw`/`fsd`).
    pub(crate) float: bool,
}

/// How an inline access is checked; see [`plan_checks`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Check {
    /// This access checks `[rs1 + lo, rs1 + lo + span)`, which holds its own bytes and
    /// those of the later accesses of its group.
    Lead { lo: i64, span: u64 },
    /// An earlier access of the block checked this one's bytes.
    Covered,
}

/// A group of accesses: the base register, its version, and whether they store.
type GroupKey = (u8, u32, bool);
/// An open group: its leading access's pc and the byte range `[lo, hi)` off the base.
type Group = (u64, i64, i64);

/// The permission checks of a guest block's inline accesses. Accesses of one kind (load
/// or store) through the same value of the same base register whose bytes all lie within
/// one page-sized span form a group, and only the first of them checks, for the whole
/// span: the fast bit of the span's first page promises that page and the next, and
/// permissions cannot change inside a block (only system calls change them, and those
/// end blocks). If the check fails, the first access leaves with `SLOW_PATH` before it
/// retires and the interpreter runs the rest exactly. (Function prologues and epilogues
/// save and restore several registers through `sp`: one check instead of one each.)
pub(crate) fn plan_checks(block: &[(u64, Insn)]) -> Checks {
    let page = crate::context::PAGE_SIZE as i64;
    // A register's value changes whenever an instruction names it as destination (an
    // over-approximation for float destinations, which only splits groups).
    let mut version = [0u32; 32];
    // Open groups: (base, its version, store) -> (leading pc, lo, hi). Blocks have a
    // handful of groups, so a vector beats hashing (this runs for every baseline block).
    let mut open: Vec<(GroupKey, Group)> = Vec::new();
    let mut plan = Vec::new();
    let lead = |plan: &mut Vec<(u64, Check)>, (pc, lo, hi): Group| {
        plan.push((
            pc,
            Check::Lead {
                lo,
                span: (hi - lo) as u64,
            },
        ));
    };
    for &(pc, insn) in block {
        if let Some(m) = mem_op(insn.op) {
            let base = insn.rs1 & 31;
            let key = (base, version[base as usize], m.store);
            let (lo, hi) = (insn.imm, insn.imm + m.width as i64);
            match open.iter_mut().find(|(k, _)| *k == key) {
                Some((_, g)) if hi.max(g.2) - lo.min(g.1) <= page => {
                    g.1 = g.1.min(lo);
                    g.2 = g.2.max(hi);
                    plan.push((pc, Check::Covered));
                }
                Some((_, g)) => {
                    let done = std::mem::replace(g, (pc, lo, hi));
                    lead(&mut plan, done);
                }
                None => open.push((key, (pc, lo, hi))),
            }
        }
        let rd = (insn.rd & 31) as usize;
        if rd != 0 {
            version[rd] += 1;
        }
    }
    for (_, g) in open {
        lead(&mut plan, g);
    }
    plan.sort_unstable_by_key(|&(pc, _)| pc);
    Checks(plan)
}

/// The plan of [`plan_checks`]: each inline access's check, by pc.
#[derive(Debug, Default)]
pub(crate) struct Checks(Vec<(u64, Check)>);

impl Checks {
    pub(crate) fn get(&self, pc: &u64) -> Option<&Check> {
        self.0
            .binary_search_by_key(pc, |&(p, _)| p)
            .ok()
            .map(|i| &self.0[i].1)
    }
}

pub(crate) fn mem_op(op: Op) -> Option<MemOp> {
    use Width::*;
    let (width, store, signed) = match op {
        Op::Lb => (B, false, true),
        Op::Lh => (H, false, true),
        Op::Lw => (W, false, true),
        Op::Ld => (D, false, true),
        Op::Lbu => (B, false, false),
        Op::Lhu => (H, false, false),
        Op::Lwu => (W, false, false),
        Op::Sb => (B, true, false),
        Op::Sh => (H, true, false),
        Op::Sw => (W, true, false),
        Op::Sd => (D, true, false),
        Op::Flw | Op::Fsw | Op::Fld | Op::Fsd => {
            let width = if matches!(op, Op::Flw | Op::Fsw) {
                W
            } else {
                D
            };
            let store = matches!(op, Op::Fsw | Op::Fsd);
            return Some(MemOp {
                width,
                store,
                signed: false,
                float: true,
            });
        }
        _ => return None,
    };
    Some(MemOp {
        width,
        store,
        signed,
        float: false,
    })
}

/// What the translator knows about the contexts the code runs with and the host.
#[derive(Clone, Copy, Debug)]
pub(crate) struct HostOptions {
    pub jump_cache: Option<crate::context::JumpCacheShape>,
    pub guest_size: Option<u64>,
    pub perms_offset: Option<i32>,
    /// The host has fused multiply-add (else the `fmadd` family stays in the helper:
    /// Cranelift would lower it to a libcall, which needs a relocation).
    pub fma: bool,
}

pub(crate) struct Emitter<'a, 'b> {
    b: &'a mut FunctionBuilder<'b>,
    ctx: Value,
    vars: [Option<Variable>; 32],
    /// Registers written anywhere in the function (region mode: stored at every exit).
    dirty: [bool; 32],
    /// Region mode: registers the region reads but never writes. They get no variable
    /// and are read from `ctx` at each use (a load the consumer can often fold), so they
    /// take no host register across the region's loops, where a value live through the
    /// whole region but used in one block was spilled and reloaded, and moved through
    /// the loop headers, on every iteration (coremark 1.018 -> 0.946 s; loading them
    /// once per guest block instead measured 0.979 s).
    from_ctx: [bool; 32],
    /// Single-block mode: registers are loaded at their first use and an exit stores
    /// only the registers written before it, both known at translation time because
    /// the block is straight-line code. Shorter live ranges, fewer loads and stores.
    lazy: bool,
    /// Lazy mode: the variable holds a value at the current emission point.
    defined: [bool; 32],
    /// Lazy mode: written since entry (and not reloaded from `ctx` since).
    written: [bool; 32],
    exec_sig: SigRef,
    helper_exit: Block,
    /// Signature of the next block, when blocks chain.
    chain: Option<SigRef>,
    /// `ctx.mem_base` and `ctx.perms`, loaded once in the entry block when the function
    /// accesses guest memory inline (they do not change while it runs). Tier 1 has no
    /// optimiser to merge the per-access loads.
    mem_base: Option<Value>,
    perms: Option<Value>,
    /// See [`HostOptions::fma`].
    host_fma: bool,
    /// `perms - mem_base`, when every context has the table at that offset.
    perms_offset: Option<i32>,
    /// The checks of the current guest block's inline accesses, by pc.
    checks: Checks,
    /// The jump cache's shape, when known at translation time: `(shift, len - 1)`.
    jc_shape: Option<(u32, u64)>,
    /// Guest pages (`guest_size >> PAGE_SHIFT`), when known at translation time.
    guest_pages: Option<u64>,
    /// Guest addresses held by `iconst` values this function made, so an exit to a
    /// constant address can probe its jump-cache entry at a constant offset.
    pc_consts: HashMap<Value, u64>,
    /// Region translation: instructions retired before the current guest block (a
    /// runtime value, since regions loop). `None` for a single block, whose counts are
    /// translation-time constants.
    base: Option<Variable>,
    /// Region translation: `ctx.chain_budget`, kept in a register while the function
    /// runs (a loop's back edge then costs no load and store through memory) and
    /// stored back on every exit.
    budget: Option<Variable>,
    /// Region translation: guest block starts and their Cranelift blocks. A transfer to
    /// one of them stays inside the function.
    targets: HashMap<u64, Block>,
    /// Region translation: each block start's position in the region, and the position
    /// of the block being emitted. Only a jump to the same or an earlier position (a
    /// back edge) can close a loop, so only those spend chain budget.
    order: HashMap<u64, usize>,
    current: usize,
}

impl<'a, 'b> Emitter<'a, 'b> {
    /// Emits the whole function for `blocks` (each already validated: non-empty,
    /// contiguous, only the last instruction may end it). `helper_cc` is the calling
    /// convention of helpers; `chain` the convention of blocks when they chain (`None`:
    /// every block end returns). With `region` false, `blocks` holds exactly one block and every block end leaves
    /// the function; with `region` true, transfers to any block start in `blocks` jump
    /// inside the function (bounded by `ctx.chain_budget`), and `blocks[0]` is the entry.
    pub(crate) fn emit(
        b: &'a mut FunctionBuilder<'b>,
        blocks: &[&[(u64, Insn)]],
        region: bool,
        helper_cc: CallConv,
        chain: Option<CallConv>,
        host: HostOptions,
    ) {
        let HostOptions {
            jump_cache: shape,
            guest_size,
            perms_offset,
            fma,
        } = host;
        let entry = b.create_block();
        b.append_block_params_for_function_params(entry);
        b.switch_to_block(entry);
        let ctx = b.block_params(entry)[0];
        let exec_sig = b.import_signature(exec_one_signature(helper_cc));
        let chain = chain.map(|cc| {
            let mut sig = Signature::new(cc);
            sig.params.push(AbiParam::new(I64));
            sig.returns.push(AbiParam::new(I64));
            b.import_signature(sig)
        });
        let helper_exit = b.create_block();
        b.append_block_param(helper_exit, I64);
        b.set_cold_block(helper_exit);

        let mut e = Emitter {
            b,
            ctx,
            vars: [None; 32],
            dirty: [false; 32],
            from_ctx: [false; 32],
            lazy: !region,
            defined: [false; 32],
            written: [false; 32],
            exec_sig,
            helper_exit,
            chain,
            mem_base: None,
            perms: None,
            host_fma: fma,
            perms_offset,
            checks: Checks::default(),
            jc_shape: shape.map(|s| (s.shift, s.len as u64 - 1)),
            guest_pages: guest_size
                .map(|s| s >> crate::context::PAGE_SHIFT)
                .filter(|&p| p > 0 && p <= i32::MAX as u64),
            pc_consts: HashMap::new(),
            base: None,
            budget: None,
            targets: HashMap::new(),
            order: HashMap::new(),
            current: 0,
        };
        if region {
            // `rd` as decoded (for stores and branches, immediate bits) can only mark
            // extra registers written, which keeps them in variables: safe.
            for (_, i) in blocks.iter().flat_map(|b| b.iter()) {
                let rd = (i.rd & 31) as usize;
                if rd != 0 {
                    e.dirty[rd] = true;
                }
            }
            for (_, i) in blocks.iter().flat_map(|b| b.iter()) {
                for r in [i.rs1, i.rs2] {
                    let r = (r & 31) as usize;
                    e.from_ctx[r] = r != 0 && !e.dirty[r];
                }
            }
        }
        for block in blocks {
            e.prologue(block);
        }
        if blocks
            .iter()
            .flat_map(|b| b.iter())
            .any(|(_, i)| mem_op(i.op).is_some())
        {
            let ins = e.b.ins();
            e.mem_base = Some(ins.load(I64, ctx_invariant(), ctx, offsets::MEM_BASE));
            if perms_offset.is_none() {
                let ins = e.b.ins();
                e.perms = Some(ins.load(I64, ctx_invariant(), ctx, offsets::PERMS));
            }
        }
        if region {
            let base = e.b.declare_var(I64);
            let zero = e.b.ins().iconst(I64, 0);
            e.b.def_var(base, zero);
            e.base = Some(base);
            let budget = e.b.declare_var(I64);
            let left =
                e.b.ins()
                    .load(I64, ctx_flags(), e.ctx, offsets::CHAIN_BUDGET);
            e.b.def_var(budget, left);
            e.budget = Some(budget);
            for (n, block) in blocks.iter().enumerate() {
                if let Some(&(pc, _)) = block.first() {
                    let cb = e.b.create_block();
                    e.targets.insert(pc, cb);
                    e.order.insert(pc, n);
                }
            }
            if let Some(&(pc, _)) = blocks.first().and_then(|b| b.first()) {
                let first = e.targets[&pc];
                e.b.ins().jump(first, &[]);
            }
        }
        for block in blocks {
            let Some(&(start, _)) = block.first() else {
                continue;
            };
            if let Some(&cb) = e.targets.get(&start) {
                e.b.switch_to_block(cb);
            }
            e.current = e.order.get(&start).copied().unwrap_or(0);
            e.checks = plan_checks(block);
            let mut ended = false;
            for (k, &(pc, insn)) in block.iter().enumerate() {
                if e.insn(pc, &insn, k as u64) {
                    ended = true;
                    break;
                }
            }
            if !ended {
                // The block stopped before a control transfer (length limit or an
                // unfetchable next instruction): fall through.
                let (pc, last) = block[block.len() - 1];
                e.goto(pc.wrapping_add(last.len as u64), block.len() as u64);
            }
        }

        // Region mode's shared exit after a failing helper (lazy mode gives each helper
        // call an exit of its own and never jumps here).
        e.b.switch_to_block(helper_exit);
        let st = e.b.block_params(helper_exit)[0];
        if !e.lazy {
            e.write_back();
            e.store_budget();
        }
        e.b.ins().return_(&[st]);
        e.b.seal_all_blocks();
    }

    fn prologue(&mut self, block: &[(u64, Insn)]) {
        for (_, i) in block {
            for r in [i.rd, i.rs1, i.rs2] {
                let r = (r & 31) as usize;
                if r != 0 && self.vars[r].is_none() && !self.from_ctx[r] {
                    let v = self.b.declare_var(I64);
                    if !self.lazy {
                        let val = self.b.ins().load(
                            I64,
                            ctx_flags(),
                            self.ctx,
                            offsets::X + 8 * r as i32,
                        );
                        self.b.def_var(v, val);
                    }
                    self.vars[r] = Some(v);
                }
            }
            let rd = (i.rd & 31) as usize;
            if rd != 0 {
                self.dirty[rd] = true;
            }
        }
    }

    fn get(&mut self, r: u8) -> Value {
        let i = (r & 31) as usize;
        if self.from_ctx[i] {
            return self
                .b
                .ins()
                .load(I64, ctx_flags(), self.ctx, offsets::X + 8 * i as i32);
        }
        match self.vars[i] {
            Some(v) if i != 0 => {
                if self.lazy && !self.defined[i] {
                    // First use in straight-line code: this point dominates every
                    // later use.
                    let val =
                        self.b
                            .ins()
                            .load(I64, ctx_flags(), self.ctx, offsets::X + 8 * i as i32);
                    self.b.def_var(v, val);
                    self.defined[i] = true;
                }
                self.b.use_var(v)
            }
            _ => self.b.ins().iconst(I64, 0),
        }
    }

    fn set(&mut self, r: u8, val: Value) {
        let i = (r & 31) as usize;
        if let Some(v) = self.vars[i]
            && i != 0
        {
            self.b.def_var(v, val);
            self.defined[i] = true;
            self.written[i] = true;
        }
    }

    fn set_w(&mut self, r: u8, val32: Value) {
        let v = self.b.ins().sextend(I64, val32);
        self.set(r, v);
    }

    fn flush(&mut self, r: u8) {
        let r = (r & 31) as usize;
        if r == 0 || (self.lazy && !self.written[r]) {
            // Lazy mode: `ctx` already holds every register not written yet.
            return;
        }
        if let Some(v) = self.vars[r] {
            let val = self.b.use_var(v);
            self.b
                .ins()
                .store(ctx_flags(), val, self.ctx, offsets::X + 8 * r as i32);
        }
    }

    fn reload(&mut self, r: u8) {
        let r = (r & 31) as usize;
        if r == 0 {
            return;
        }
        if let Some(v) = self.vars[r] {
            let val = self
                .b
                .ins()
                .load(I64, ctx_flags(), self.ctx, offsets::X + 8 * r as i32);
            self.b.def_var(v, val);
            self.defined[r] = true;
            self.written[r] = false;
        }
    }

    /// Float registers live in `ctx` (helpers own most float work): read at each use.
    fn fget(&mut self, r: u8) -> Value {
        let off = offsets::F + 8 * (r & 31) as i32;
        self.b.ins().load(I64, ctx_flags(), self.ctx, off)
    }

    fn fset(&mut self, r: u8, v: Value) {
        let off = offsets::F + 8 * (r & 31) as i32;
        self.b.ins().store(ctx_flags(), v, self.ctx, off);
    }

    /// NaN-boxes the low 32 bits of `v` (`rv64::fpu::box32`).
    fn box32(&mut self, v: Value) -> Value {
        let lo = self.b.ins().band_imm_u(v, 0xffff_ffff);
        self.b.ins().bor_imm_s(lo, 0xffff_ffff_0000_0000_u64 as i64)
    }

    /// A single-precision operand as `rv64::fpu::unbox32` reads it (zero-extended): an
    /// improperly boxed value reads as the canonical NaN.
    fn unbox32(&mut self, v: Value) -> Value {
        let hi = self.b.ins().ushr_imm_s(v, 32);
        let boxed = self.b.ins().icmp_imm_s(IntCC::Equal, hi, 0xffff_ffff);
        let lo = self.b.ins().band_imm_u(v, 0xffff_ffff);
        let nan = self.b.ins().iconst(I64, rv64::fpu::CANON_NAN32 as i64);
        self.b.ins().select(boxed, lo, nan)
    }

    /// fsgnj/fsgnjn/fsgnjx on raw operands with sign bit `sign` (`rv64::fpu::sgnj`).
    fn sgnj(&mut self, a: Value, b: Value, kind: Op, sign: i64) -> Value {
        let s = match kind {
            Op::FsgnjS | Op::FsgnjD => self.b.ins().band_imm_s(b, sign),
            Op::FsgnjnS | Op::FsgnjnD => {
                let nb = self.b.ins().bnot(b);
                self.b.ins().band_imm_s(nb, sign)
            }
            _ => {
                let x = self.b.ins().bxor(a, b);
                self.b.ins().band_imm_s(x, sign)
            }
        };
        let mag = self.b.ins().band_imm_s(a, !sign);
        self.b.ins().bor(mag, s)
    }

    /// Stores the region's chain budget back into `ctx` (before any exit).
    fn store_budget(&mut self) {
        if let Some(v) = self.budget {
            let left = self.b.use_var(v);
            self.b
                .ins()
                .store(ctx_flags(), left, self.ctx, offsets::CHAIN_BUDGET);
        }
    }

    fn write_back(&mut self) {
        for r in 1..32u8 {
            let stale = if self.lazy {
                self.written[r as usize]
            } else {
                self.dirty[r as usize]
            };
            if stale {
                self.flush(r);
            }
        }
    }

    /// Instructions retired since entry, `k` being the count within the current guest
    /// block.
    fn retired(&mut self, k: u64) -> Value {
        match self.base {
            Some(base) => {
                let b = self.b.use_var(base);
                self.b.ins().iadd_imm_s(b, k as i64)
            }
            None => self.b.ins().iconst(I64, k as i64),
        }
    }

    /// Continues at the constant guest address `target` after `k` instructions of the
    /// current guest block: inside the region when it starts one of its blocks (a back
    /// edge only while the chain budget allows, one unit each, so loops reach the
    /// dispatcher again), otherwise through a block exit.
    fn goto(&mut self, target: u64, k: u64) {
        let Some(&dest) = self.targets.get(&target) else {
            let t = self.pc_const(target);
            self.exit(t, k, status::CONTINUE);
            return;
        };
        if self.order.get(&target).is_some_and(|&n| n > self.current) {
            // A forward edge: cannot close a loop, costs no budget.
            let now = self.retired(k);
            if let Some(base) = self.base {
                self.b.def_var(base, now);
            }
            self.b.ins().jump(dest, &[]);
            return;
        }
        let leave = self.b.create_block();
        self.b.set_cold_block(leave);
        let stay = self.b.create_block();
        let var = self.budget;
        let budget = match var {
            Some(v) => self.b.use_var(v),
            None => self
                .b
                .ins()
                .load(I64, ctx_flags(), self.ctx, offsets::CHAIN_BUDGET),
        };
        let empty = self.b.ins().icmp_imm_s(IntCC::Equal, budget, 0);
        self.b.ins().brif(empty, leave, &[], stay, &[]);

        self.b.switch_to_block(stay);
        let budget = self.b.ins().iadd_imm_s(budget, -1);
        match var {
            Some(v) => self.b.def_var(v, budget),
            None => {
                self.b
                    .ins()
                    .store(ctx_flags(), budget, self.ctx, offsets::CHAIN_BUDGET);
            }
        }
        let now = self.retired(k);
        if let Some(base) = self.base {
            self.b.def_var(base, now);
        }
        self.b.ins().jump(dest, &[]);

        self.b.switch_to_block(leave);
        let t = self.pc_const(target);
        self.exit(t, k, status::CONTINUE);
    }

    /// Ends the block: registers back, `pc = next`, `instret += retired`, return `st`.
    fn exit(&mut self, next: Value, retired: u64, st: u64) {
        self.write_back();
        self.store_budget();
        let chains = st == status::CONTINUE && self.chain.is_some();
        if !chains {
            // A chained exit stores pc only when it returns (the next block knows its
            // own address).
            self.b.ins().store(ctx_flags(), next, self.ctx, offsets::PC);
        }
        if retired != 0 || self.base.is_some() {
            let r = self.retired(retired);
            let n = self
                .b
                .ins()
                .load(I64, ctx_flags(), self.ctx, offsets::INSTRET);
            let n = self.b.ins().iadd(n, r);
            self.b
                .ins()
                .store(ctx_flags(), n, self.ctx, offsets::INSTRET);
        }
        if st == status::CONTINUE
            && let Some(sig) = self.chain
        {
            self.chain_to(next, sig);
            return;
        }
        let st = self.b.ins().iconst(I64, st as i64);
        self.b.ins().return_(&[st]);
    }

    /// An `iconst` of the guest address `pc`, remembered as such (see `pc_consts`).
    fn pc_const(&mut self, pc: u64) -> Value {
        let v = self.b.ins().iconst(I64, pc as i64);
        self.pc_consts.insert(v, pc);
        v
    }

    /// Block end with "continue at `next`" when blocks chain: while the chain budget
    /// lasts, probe the jump cache and tail-call the next block on a hit; otherwise
    /// store `pc` and return to the dispatcher. Registers are already written back, so
    /// the next block (or the dispatcher) starts from memory. With the jump cache's
    /// shape known, the entry of a constant `next` is at a constant offset.
    fn chain_to(&mut self, next: Value, sig: SigRef) {
        let ret = self.b.create_block();
        self.b.set_cold_block(ret);
        let has_budget = self.b.create_block();
        let probe = self.b.create_block();
        let hit = self.b.create_block();
        // Two tests, each a compare-and-branch (one `bor` of both costs flag juggling).
        // With the shape compiled in, every context has a jump cache (see
        // `TranslatorConfig::jump_cache`): no null test.
        let budget = self
            .b
            .ins()
            .load(I64, ctx_flags(), self.ctx, offsets::CHAIN_BUDGET);
        self.b.ins().brif(budget, has_budget, &[], ret, &[]);
        self.b.switch_to_block(has_budget);
        let base = self
            .b
            .ins()
            .load(I64, ctx_flags(), self.ctx, offsets::JUMP_CACHE);
        if self.jc_shape.is_some() {
            self.b.ins().jump(probe, &[]);
        } else {
            self.b.ins().brif(base, probe, &[], ret, &[]);
        }

        self.b.switch_to_block(probe);
        let known = self.pc_consts.get(&next).copied();
        let (entry, off) = match (self.jc_shape, known) {
            (Some((shift, mask)), Some(pc)) if mask < (i32::MAX as u64 >> JC_ENTRY_SHIFT) => {
                let off = ((pc >> shift) & mask) << JC_ENTRY_SHIFT;
                (base, off as i32)
            }
            (shape, _) => {
                let idx = match shape {
                    Some((shift, mask)) => {
                        let idx = self.b.ins().ushr_imm_s(next, i64::from(shift));
                        self.b.ins().band_imm_s(idx, mask as i64)
                    }
                    None => {
                        let shift =
                            self.b
                                .ins()
                                .load(I64, ctx_flags(), self.ctx, offsets::JC_SHIFT);
                        let mask = self
                            .b
                            .ins()
                            .load(I64, ctx_flags(), self.ctx, offsets::JC_MASK);
                        let idx = self.b.ins().ushr(next, shift);
                        self.b.ins().band(idx, mask)
                    }
                };
                let off = self.b.ins().ishl_imm_s(idx, JC_ENTRY_SHIFT as i64);
                (self.b.ins().iadd(base, off), 0)
            }
        };
        // Writers only clear keys (never the code address), and retired code is not
        // reused before this executor's next quiescent point, which cannot happen while
        // it runs translated code: a matching key's code address is safe to enter.
        let key = self
            .b
            .ins()
            .load(I64, ctx_flags(), entry, off + JC_KEY_OFFSET);
        let matches = self.b.ins().icmp(IntCC::Equal, key, next);
        self.b.ins().brif(matches, hit, &[], ret, &[]);

        self.b.switch_to_block(hit);
        let budget = self.b.ins().iadd_imm_s(budget, -1);
        self.b
            .ins()
            .store(ctx_flags(), budget, self.ctx, offsets::CHAIN_BUDGET);
        let hits = self
            .b
            .ins()
            .load(I32, ctx_flags(), entry, off + JC_HITS_OFFSET);
        let hits = self.b.ins().iadd_imm_s(hits, 1);
        self.b
            .ins()
            .store(ctx_flags(), hits, entry, off + JC_HITS_OFFSET);
        let code = self
            .b
            .ins()
            .load(I64, ctx_flags(), entry, off + JC_CODE_OFFSET);
        self.b.ins().return_call_indirect(sig, code, &[self.ctx]);

        self.b.switch_to_block(ret);
        self.b.ins().store(ctx_flags(), next, self.ctx, offsets::PC);
        let st = self.b.ins().iconst(I64, status::CONTINUE as i64);
        self.b.ins().return_(&[st]);
    }

    /// Calls `exec_one` for `insn`; on a non-continue status leaves through the helper
    /// exit. Afterwards the builder is in a fresh block on the continue path.
    fn helper(&mut self, pc: u64, insn: &Insn, retired: u64) {
        debug_assert!(
            runs_in_helper(insn.op) || mem_op(insn.op).is_some(),
            "{:?} is emitted through the helper but runs_in_helper says inline",
            insn.op
        );
        self.flush(insn.rs1);
        self.flush(insn.rs2);
        self.flush(insn.rd);
        let table = self
            .b
            .ins()
            .load(I64, ctx_flags(), self.ctx, offsets::HELPERS);
        let f = self
            .b
            .ins()
            .load(I64, ctx_flags(), table, offsets::HELPER_EXEC_ONE);
        let pcv = self.b.ins().iconst(I64, pc as i64);
        let raw = self.b.ins().iconst(I32, insn.raw as i32 as i64);
        let ret = self.retired(retired);
        let call = self
            .b
            .ins()
            .call_indirect(self.exec_sig, f, &[self.ctx, pcv, raw, ret]);
        let st = self.b.inst_results(call)[0];
        self.reload(insn.rd);
        let cont = self.b.create_block();
        if self.lazy {
            // The registers to store depend on the point of exit: an exit of its own.
            let out = self.b.create_block();
            self.b.set_cold_block(out);
            self.b.ins().brif(st, out, &[], cont, &[]);
            self.b.switch_to_block(out);
            self.write_back();
            self.store_budget();
            self.b.ins().return_(&[st]);
        } else {
            self.b
                .ins()
                .brif(st, self.helper_exit, &[BlockArg::Value(st)], cont, &[]);
        }
        self.b.switch_to_block(cont);
    }

    fn memory(&mut self, pc: u64, insn: &Insn, m: MemOp, retired: u64) {
        let a = self.get(insn.rs1);
        let addr = if insn.imm == 0 {
            a
        } else {
            self.b.ins().iadd_imm_s(a, insn.imm)
        };
        // An integer store's value, read where it dominates both copies of the access.
        let value = (m.store && !m.float).then(|| self.get(insn.rs2));
        let (lo, span) = match self.checks.get(&pc) {
            Some(&Check::Covered) => {
                self.access(insn, &m, addr, value);
                return;
            }
            Some(&Check::Lead { lo, span }) => (lo, span),
            None => (insn.imm, m.width as u64),
        };
        // The first byte checked (below this access's own when the group reaches lower).
        let at = if lo == insn.imm {
            addr
        } else {
            self.b.ins().iadd_imm_s(a, lo)
        };
        // The slow path leaves before this instruction retires: its exit stores the
        // registers written before it, not what the fast path (emitted first) writes.
        let before = self.written;
        let fast = self.b.create_block();
        let near_end = self.b.create_block();
        let slow = self.b.create_block();
        let join = self.b.create_block();
        self.b.set_cold_block(near_end);
        self.b.set_cold_block(slow);
        // One test covers bounds, page crossing and permission: an address at or past
        // `guest_size` is clamped to the sentinel page (always 0), and the fast bit of
        // the page an access starts in promises that page and the next (an access is
        // at most 8 bytes) have the permission. Anything else takes the slow path,
        // which checks exactly and reports precise faults. With the guest size known
        // at translation time, the bounds part is a compare with an immediate instead.
        let page = match self.guest_pages {
            Some(pages) => {
                let page = self
                    .b
                    .ins()
                    .ushr_imm_s(at, crate::context::PAGE_SHIFT as i64);
                let inside = self.b.create_block();
                let out =
                    self.b
                        .ins()
                        .icmp_imm_s(IntCC::UnsignedGreaterThanOrEqual, page, pages as i64);
                self.b.ins().brif(out, slow, &[], inside, &[]);
                self.b.switch_to_block(inside);
                page
            }
            None => {
                let size = self
                    .b
                    .ins()
                    .load(I64, ctx_invariant(), self.ctx, offsets::GUEST_SIZE);
                let clamped = self.b.ins().umin(at, size);
                self.b
                    .ins()
                    .ushr_imm_s(clamped, crate::context::PAGE_SHIFT as i64)
            }
        };
        let (table, disp) = match (self.perms_offset, self.perms, self.mem_base) {
            (Some(off), _, Some(base)) => (base, off),
            (_, Some(p), _) => (p, 0),
            _ => {
                let p = self
                    .b
                    .ins()
                    .load(I64, ctx_invariant(), self.ctx, offsets::PERMS);
                (p, 0)
            }
        };
        let pa = self.b.ins().iadd(table, page);
        let perm = self.b.ins().uload8(I32, ctx_flags(), pa, disp);
        let need = if m.store { PERM_FAST_W } else { PERM_FAST_R } as i64;
        let ok = self.b.ins().band_imm_s(perm, need);
        self.b.ins().brif(ok, fast, &[], near_end, &[]);

        // The last page of a mapping (a stack top, the end of .bss) has no fast bit, as
        // its next page lacks the permission; an access there that stays inside the
        // page is still fine: check the page's own bit and the offset.
        self.b.switch_to_block(near_end);
        let own = if m.store { PERM_W } else { PERM_R } as i64;
        let has = self.b.ins().band_imm_s(perm, own);
        let has = self.b.ins().icmp_imm_s(IntCC::NotEqual, has, 0);
        let off = self
            .b
            .ins()
            .band_imm_s(at, (crate::context::PAGE_SIZE - 1) as i64);
        let inside = self.b.ins().icmp_imm_s(
            IntCC::UnsignedLessThanOrEqual,
            off,
            (crate::context::PAGE_SIZE - span) as i64,
        );
        let both = self.b.ins().band(has, inside);
        // A copy of the access of its own, so the hot block has one predecessor (a
        // shared one costs a jump and register moves on the hot path).
        let near_ok = self.b.create_block();
        self.b.set_cold_block(near_ok);
        self.b.ins().brif(both, near_ok, &[], slow, &[]);
        self.b.switch_to_block(near_ok);
        self.access(insn, &m, addr, value);
        self.b.ins().jump(join, &[]);

        self.b.switch_to_block(fast);
        self.access(insn, &m, addr, value);
        self.b.ins().jump(join, &[]);

        self.b.switch_to_block(slow);
        let after = std::mem::replace(&mut self.written, before);
        let p = self.b.ins().iconst(I64, pc as i64);
        self.exit(p, retired, status::SLOW_PATH);
        self.written = after;

        self.b.switch_to_block(join);
    }

    /// The load or store of `insn` at guest address `addr`, already checked; `value` is
    /// an integer store's value.
    fn access(&mut self, insn: &Insn, m: &MemOp, addr: Value, value: Option<Value>) {
        let base = match self.mem_base {
            Some(b) => b,
            None => self
                .b
                .ins()
                .load(I64, ctx_invariant(), self.ctx, offsets::MEM_BASE),
        };
        let host = self.b.ins().iadd(base, addr);
        let fl = guest_flags();
        if m.store {
            let v = match value {
                Some(v) => v,
                None => self.fget(insn.rs2),
            };
            match m.width {
                Width::B => self.b.ins().istore8(fl, v, host, 0),
                Width::H => self.b.ins().istore16(fl, v, host, 0),
                Width::W => self.b.ins().istore32(fl, v, host, 0),
                Width::D => self.b.ins().store(fl, v, host, 0),
            };
        } else {
            let ins = self.b.ins();
            let v = match (m.width, m.signed) {
                (Width::B, true) => ins.sload8(I64, fl, host, 0),
                (Width::B, false) => ins.uload8(I64, fl, host, 0),
                (Width::H, true) => ins.sload16(I64, fl, host, 0),
                (Width::H, false) => ins.uload16(I64, fl, host, 0),
                (Width::W, true) => ins.sload32(fl, host, 0),
                (Width::W, false) => ins.uload32(fl, host, 0),
                (Width::D, _) => ins.load(I64, fl, host, 0),
            };
            match (m.float, m.width) {
                (true, Width::W) => {
                    let boxed = self.box32(v);
                    self.fset(insn.rd, boxed);
                }
                (true, _) => self.fset(insn.rd, v),
                (false, _) => self.set(insn.rd, v),
            }
        }
    }

    /// `fadd.d` / `fsub.d` rounding to nearest, inline where the result and its flags
    /// are provably the host's (`rv64::fpu`'s fast path, the same test): both operands
    /// finite with magnitude at most 2^1000, so nothing overflows, and a tiny sum is
    /// exact; inexact exactly when the error-free transformation (TwoSum) leaves a
    /// non-zero error. Anything else (NaN, infinity, huge operands, a dynamic rounding
    /// mode other than RNE) leaves with `SLOW_PATH` for the interpreter.
    fn fadd_d(&mut self, pc: u64, insn: &Insn, retired: u64) {
        const HI64: f64 = f64::from_bits((1023 + 1000) << 52);
        let fa = offsets::F + 8 * (insn.rs1 & 31) as i32;
        let fb = offsets::F + 8 * (insn.rs2 & 31) as i32;
        let a = self.b.ins().load(types::F64, ctx_flags(), self.ctx, fa);
        let b = self.b.ins().load(types::F64, ctx_flags(), self.ctx, fb);
        let b = if insn.op == Op::FsubD {
            self.b.ins().fneg(b)
        } else {
            b
        };
        let hi = self.b.ins().f64const(HI64);
        let abs_a = self.b.ins().fabs(a);
        let abs_b = self.b.ins().fabs(b);
        let ok_a = self.b.ins().fcmp(FloatCC::LessThanOrEqual, abs_a, hi);
        let ok_b = self.b.ins().fcmp(FloatCC::LessThanOrEqual, abs_b, hi);
        let ok = self.b.ins().band(ok_a, ok_b);
        let ok = self.and_rounds_to_nearest(ok, insn);
        self.fast_or_slow(ok, pc, retired);
        let s = self.b.ins().fadd(a, b);
        let bb = self.b.ins().fsub(s, a);
        let t = self.b.ins().fsub(s, bb);
        let e1 = self.b.ins().fsub(a, t);
        let e2 = self.b.ins().fsub(b, bb);
        let err = self.b.ins().fadd(e1, e2);
        let zero = self.b.ins().f64const(0.0);
        let inexact = self.b.ins().fcmp(FloatCC::NotEqual, err, zero);
        let nx = self.b.ins().uextend(I32, inexact);
        let flags = self
            .b
            .ins()
            .load(I32, ctx_flags(), self.ctx, offsets::FFLAGS);
        // NX is bit 0 of fflags.
        const _: () = assert!(rv64::fpu::NX == 1);
        let flags = self.b.ins().bor(flags, nx);
        self.b
            .ins()
            .store(ctx_flags(), flags, self.ctx, offsets::FFLAGS);
        let fd = offsets::F + 8 * (insn.rd & 31) as i32;
        self.b.ins().store(ctx_flags(), s, self.ctx, fd);
    }

    /// `ok` and "the instruction rounds to nearest, ties to even" (its static rounding
    /// field, or `frm` when dynamic; any other mode, valid or not, is the interpreter's).
    fn and_rounds_to_nearest(&mut self, ok: Value, insn: &Insn) -> Value {
        match insn.rm {
            0 => ok,
            7 => {
                let frm = self.b.ins().load(I32, ctx_flags(), self.ctx, offsets::FRM);
                let rne = self.b.ins().icmp_imm_s(IntCC::Equal, frm, 0);
                self.b.ins().band(ok, rne)
            }
            _ => self.b.ins().iconst(types::I8, 0),
        }
    }

    /// Continues in a fresh block when `ok`, else leaves with `SLOW_PATH` at `pc` (before
    /// the instruction retires) for the interpreter.
    fn fast_or_slow(&mut self, ok: Value, pc: u64, retired: u64) {
        let fast = self.b.create_block();
        let slow = self.b.create_block();
        self.b.set_cold_block(slow);
        self.b.ins().brif(ok, fast, &[], slow, &[]);
        self.b.switch_to_block(slow);
        let p = self.b.ins().iconst(I64, pc as i64);
        self.exit(p, retired, status::SLOW_PATH);
        self.b.switch_to_block(fast);
    }

    /// Whether `x` is zero or has a magnitude in `[2^-e, 2^e]` (so not NaN or infinite);
    /// with `nonzero`, zero is excluded.
    fn in_range(&mut self, x: Value, e: i32, nonzero: bool) -> Value {
        let hi = self.b.ins().f64const(2f64.powi(e));
        let lo = self.b.ins().f64const(2f64.powi(-e));
        let abs = self.b.ins().fabs(x);
        let below = self.b.ins().fcmp(FloatCC::LessThanOrEqual, abs, hi);
        let above = self.b.ins().fcmp(FloatCC::GreaterThanOrEqual, abs, lo);
        let above = if nonzero {
            above
        } else {
            let zero = self.b.ins().f64const(0.0);
            let is_zero = self.b.ins().fcmp(FloatCC::Equal, abs, zero);
            self.b.ins().bor(above, is_zero)
        };
        self.b.ins().band(below, above)
    }

    /// `fmul.d`, `fdiv.d` and the `fmadd.d` family inline when they cannot change
    /// `fflags`: NX is already set (flags are sticky, so an inexact result adds nothing),
    /// rounding is to nearest-even (the host's), and the operands' magnitudes keep the
    /// exact result far from overflow and from the subnormal range (so no OF, UF, NV or
    /// DZ): each factor zero or within `2^±500` for a product or quotient (a divisor not
    /// zero), `2^±400` for a fused product and `2^±800` for its addend (a non-zero exact
    /// result is then at least `2^-904`). Both the host and `rv64::fpu` round correctly,
    /// so the values agree. Anything else leaves with `SLOW_PATH`.
    fn fmul_div_fma_d(&mut self, pc: u64, insn: &Insn, retired: u64) {
        let f = |r: u8| offsets::F + 8 * (r & 31) as i32;
        let a = self
            .b
            .ins()
            .load(types::F64, ctx_flags(), self.ctx, f(insn.rs1));
        let b = self
            .b
            .ins()
            .load(types::F64, ctx_flags(), self.ctx, f(insn.rs2));
        let fused = !matches!(insn.op, Op::FmulD | Op::FdivD);
        let c = fused.then(|| {
            self.b
                .ins()
                .load(types::F64, ctx_flags(), self.ctx, f(insn.rs3))
        });
        let factor = if fused { 400 } else { 500 };
        let ok_a = self.in_range(a, factor, false);
        let ok_b = self.in_range(b, factor, insn.op == Op::FdivD);
        let mut ok = self.b.ins().band(ok_a, ok_b);
        if let Some(c) = c {
            let ok_c = self.in_range(c, 800, false);
            ok = self.b.ins().band(ok, ok_c);
        }
        let flags = self
            .b
            .ins()
            .load(I32, ctx_flags(), self.ctx, offsets::FFLAGS);
        const _: () = assert!(rv64::fpu::NX == 1);
        let nx = self.b.ins().band_imm_s(flags, 1);
        let nx = self.b.ins().icmp_imm_s(IntCC::NotEqual, nx, 0);
        ok = self.b.ins().band(ok, nx);
        let ok = self.and_rounds_to_nearest(ok, insn);
        self.fast_or_slow(ok, pc, retired);
        let r = match (insn.op, c) {
            (Op::FmulD, _) => self.b.ins().fmul(a, b),
            (Op::FdivD, _) => self.b.ins().fdiv(a, b),
            (op, Some(c)) => {
                // Negating an operand is exact: -(a*b) = (-a)*b.
                let a = if matches!(op, Op::FnmsubD | Op::FnmaddD) {
                    self.b.ins().fneg(a)
                } else {
                    a
                };
                let c = if matches!(op, Op::FmsubD | Op::FnmaddD) {
                    self.b.ins().fneg(c)
                } else {
                    c
                };
                self.b.ins().fma(a, b, c)
            }
            _ => unreachable!("fused operations load their addend"),
        };
        self.b.ins().store(ctx_flags(), r, self.ctx, f(insn.rd));
    }

    /// `feq.d`, `flt.d`, `fle.d` inline when neither operand is a NaN (then no flag can
    /// be raised); a NaN (NV rules differ by compare and NaN kind) leaves with
    /// `SLOW_PATH`.
    fn fcmp_d(&mut self, pc: u64, insn: &Insn, retired: u64) {
        let f = |r: u8| offsets::F + 8 * (r & 31) as i32;
        let a = self
            .b
            .ins()
            .load(types::F64, ctx_flags(), self.ctx, f(insn.rs1));
        let b = self
            .b
            .ins()
            .load(types::F64, ctx_flags(), self.ctx, f(insn.rs2));
        let ordered = self.b.ins().fcmp(FloatCC::Ordered, a, b);
        self.fast_or_slow(ordered, pc, retired);
        let cc = match insn.op {
            Op::FeqD => FloatCC::Equal,
            Op::FltD => FloatCC::LessThan,
            _ => FloatCC::LessThanOrEqual,
        };
        let c = self.b.ins().fcmp(cc, a, b);
        let v = self.bool64(c);
        self.set(insn.rd, v);
    }

    /// `fcvt.d.w` / `fcvt.d.wu`: every 32-bit integer is a double exactly, so no flags
    /// and no rounding; only an invalid rounding field (an illegal instruction, static
    /// or through `frm`) leaves with `SLOW_PATH`.
    fn fcvt_d_w(&mut self, pc: u64, insn: &Insn, retired: u64) {
        match insn.rm {
            0..=4 => {}
            7 => {
                let frm = self.b.ins().load(I32, ctx_flags(), self.ctx, offsets::FRM);
                let valid = self
                    .b
                    .ins()
                    .icmp_imm_s(IntCC::UnsignedLessThanOrEqual, frm, 4);
                self.fast_or_slow(valid, pc, retired);
            }
            _ => {
                let never = self.b.ins().iconst(types::I8, 0);
                self.fast_or_slow(never, pc, retired);
            }
        }
        let x = self.get(insn.rs1);
        let w = self.b.ins().ireduce(I32, x);
        let d = if insn.op == Op::FcvtDW {
            self.b.ins().fcvt_from_sint(types::F64, w)
        } else {
            self.b.ins().fcvt_from_uint(types::F64, w)
        };
        let fd = offsets::F + 8 * (insn.rd & 31) as i32;
        self.b.ins().store(ctx_flags(), d, self.ctx, fd);
    }

    /// Division and remainder with RISC-V's results for a zero divisor and for signed
    /// overflow, without ever executing a trapping host division.
    fn divrem(&mut self, a: Value, b: Value, ty: Type, signed: bool, rem: bool) -> Value {
        let ins = self.b.ins();
        let zero = ins.icmp_imm_s(IntCC::Equal, b, 0);
        let bad = if signed {
            let min = if ty == I32 { i32::MIN as i64 } else { i64::MIN };
            let amin = self.b.ins().icmp_imm_s(IntCC::Equal, a, min);
            let bneg = self.b.ins().icmp_imm_s(IntCC::Equal, b, -1);
            let ovf = self.b.ins().band(amin, bneg);
            self.b.ins().bor(zero, ovf)
        } else {
            zero
        };
        let one = self.b.ins().iconst(ty, 1);
        let d = self.b.ins().select(bad, one, b);
        // With d = 1 on overflow, MIN / 1 = MIN and MIN % 1 = 0: what RISC-V wants.
        let ins = self.b.ins();
        let r = match (signed, rem) {
            (true, false) => ins.sdiv(a, d),
            (false, false) => ins.udiv(a, d),
            (true, true) => ins.srem(a, d),
            (false, true) => ins.urem(a, d),
        };
        let on_zero = if rem { a } else { self.b.ins().iconst(ty, -1) };
        self.b.ins().select(zero, on_zero, r)
    }

    fn bool64(&mut self, c: Value) -> Value {
        self.b.ins().uextend(I64, c)
    }

    /// Emits one instruction; returns true when it ended the block.
    fn insn(&mut self, pc: u64, i: &Insn, k: u64) -> bool {
        let next = pc.wrapping_add(i.len as u64);
        let imm = i.imm;
        macro_rules! rr {
            (|$x:ident, $y:ident| $e:expr) => {{
                let $x = self.get(i.rs1);
                let $y = self.get(i.rs2);
                let v = $e;
                self.set(i.rd, v);
            }};
        }
        macro_rules! ri {
            (|$x:ident| $e:expr) => {{
                let $x = self.get(i.rs1);
                let v = $e;
                self.set(i.rd, v);
            }};
        }
        macro_rules! rrw {
            (|$x:ident, $y:ident| $e:expr) => {{
                let a = self.get(i.rs1);
                let b = self.get(i.rs2);
                let $x = self.b.ins().ireduce(I32, a);
                let $y = self.b.ins().ireduce(I32, b);
                let v = $e;
                self.set_w(i.rd, v);
            }};
        }
        macro_rules! riw {
            (|$x:ident| $e:expr) => {{
                let a = self.get(i.rs1);
                let $x = self.b.ins().ireduce(I32, a);
                let v = $e;
                self.set_w(i.rd, v);
            }};
        }
        macro_rules! branch {
            ($cc:expr) => {{
                let a = self.get(i.rs1);
                let b = self.get(i.rs2);
                let c = self.b.ins().icmp($cc, a, b);
                let taken = pc.wrapping_add(imm as u64);
                // Inside a region, or when blocks chain (each side then probes the
                // jump-cache entry of a constant address), the two sides exit apart.
                if self.targets.contains_key(&taken)
                    || self.targets.contains_key(&next)
                    || self.chain.is_some()
                {
                    let (tb, fb) = (self.b.create_block(), self.b.create_block());
                    self.b.ins().brif(c, tb, &[], fb, &[]);
                    self.b.switch_to_block(tb);
                    self.goto(taken, k + 1);
                    self.b.switch_to_block(fb);
                    self.goto(next, k + 1);
                    return true;
                }
                let t = self.b.ins().iconst(I64, taken as i64);
                let f = self.b.ins().iconst(I64, next as i64);
                let target = self.b.ins().select(c, t, f);
                self.exit(target, k + 1, status::CONTINUE);
                return true;
            }};
        }
        let sh = imm & 63;
        let shw = imm & 31;
        match i.op {
            Op::Lui => {
                let v = self.b.ins().iconst(I64, imm);
                self.set(i.rd, v);
            }
            Op::Auipc => {
                let v = self.b.ins().iconst(I64, pc.wrapping_add(imm as u64) as i64);
                self.set(i.rd, v);
            }
            Op::Jal => {
                let link = self.b.ins().iconst(I64, next as i64);
                self.set(i.rd, link);
                self.goto(pc.wrapping_add(imm as u64), k + 1);
                return true;
            }
            Op::Jalr => {
                // The target is computed before rd is written (rd may equal rs1).
                let a = self.get(i.rs1);
                let t = self.b.ins().iadd_imm_s(a, imm);
                let t = self.b.ins().band_imm_s(t, !1);
                let link = self.b.ins().iconst(I64, next as i64);
                self.set(i.rd, link);
                self.exit(t, k + 1, status::CONTINUE);
                return true;
            }
            Op::Beq => branch!(IntCC::Equal),
            Op::Bne => branch!(IntCC::NotEqual),
            Op::Blt => branch!(IntCC::SignedLessThan),
            Op::Bge => branch!(IntCC::SignedGreaterThanOrEqual),
            Op::Bltu => branch!(IntCC::UnsignedLessThan),
            Op::Bgeu => branch!(IntCC::UnsignedGreaterThanOrEqual),
            Op::Addi => ri!(|a| self.b.ins().iadd_imm_s(a, imm)),
            Op::Slti => ri!(|a| {
                let c = self.b.ins().icmp_imm_s(IntCC::SignedLessThan, a, imm);
                self.bool64(c)
            }),
            Op::Sltiu => ri!(|a| {
                let c = self.b.ins().icmp_imm_s(IntCC::UnsignedLessThan, a, imm);
                self.bool64(c)
            }),
            Op::Xori => ri!(|a| self.b.ins().bxor_imm_s(a, imm)),
            Op::Ori => ri!(|a| self.b.ins().bor_imm_s(a, imm)),
            Op::Andi => ri!(|a| self.b.ins().band_imm_s(a, imm)),
            Op::Slli => ri!(|a| self.b.ins().ishl_imm_s(a, sh)),
            Op::Srli => ri!(|a| self.b.ins().ushr_imm_s(a, sh)),
            Op::Srai => ri!(|a| self.b.ins().sshr_imm_s(a, sh)),
            Op::Add => rr!(|a, b| self.b.ins().iadd(a, b)),
            Op::Sub => rr!(|a, b| self.b.ins().isub(a, b)),
            Op::Sll => rr!(|a, b| {
                let s = self.b.ins().band_imm_s(b, 63);
                self.b.ins().ishl(a, s)
            }),
            Op::Srl => rr!(|a, b| {
                let s = self.b.ins().band_imm_s(b, 63);
                self.b.ins().ushr(a, s)
            }),
            Op::Sra => rr!(|a, b| {
                let s = self.b.ins().band_imm_s(b, 63);
                self.b.ins().sshr(a, s)
            }),
            Op::Slt => rr!(|a, b| {
                let c = self.b.ins().icmp(IntCC::SignedLessThan, a, b);
                self.bool64(c)
            }),
            Op::Sltu => rr!(|a, b| {
                let c = self.b.ins().icmp(IntCC::UnsignedLessThan, a, b);
                self.bool64(c)
            }),
            Op::Xor => rr!(|a, b| self.b.ins().bxor(a, b)),
            Op::Or => rr!(|a, b| self.b.ins().bor(a, b)),
            Op::And => rr!(|a, b| self.b.ins().band(a, b)),
            Op::Addiw => riw!(|a| self.b.ins().iadd_imm_s(a, imm)),
            Op::Slliw => riw!(|a| self.b.ins().ishl_imm_s(a, shw)),
            Op::Srliw => riw!(|a| self.b.ins().ushr_imm_s(a, shw)),
            Op::Sraiw => riw!(|a| self.b.ins().sshr_imm_s(a, shw)),
            Op::Addw => rrw!(|a, b| self.b.ins().iadd(a, b)),
            Op::Subw => rrw!(|a, b| self.b.ins().isub(a, b)),
            Op::Sllw => rrw!(|a, b| {
                let s = self.b.ins().band_imm_s(b, 31);
                self.b.ins().ishl(a, s)
            }),
            Op::Srlw => rrw!(|a, b| {
                let s = self.b.ins().band_imm_s(b, 31);
                self.b.ins().ushr(a, s)
            }),
            Op::Sraw => rrw!(|a, b| {
                let s = self.b.ins().band_imm_s(b, 31);
                self.b.ins().sshr(a, s)
            }),
            Op::Mul => rr!(|a, b| self.b.ins().imul(a, b)),
            Op::Mulh => rr!(|a, b| self.b.ins().smulhi(a, b)),
            Op::Mulhu => rr!(|a, b| self.b.ins().umulhi(a, b)),
            Op::Mulhsu => rr!(|a, b| {
                // signed(a) = a - 2^64·[a<0], so hi(a·b) = umulhi(a, b) - [a<0]·b.
                let hi = self.b.ins().umulhi(a, b);
                let sign = self.b.ins().sshr_imm_s(a, 63);
                let corr = self.b.ins().band(sign, b);
                self.b.ins().isub(hi, corr)
            }),
            Op::Div => rr!(|a, b| self.divrem(a, b, I64, true, false)),
            Op::Divu => rr!(|a, b| self.divrem(a, b, I64, false, false)),
            Op::Rem => rr!(|a, b| self.divrem(a, b, I64, true, true)),
            Op::Remu => rr!(|a, b| self.divrem(a, b, I64, false, true)),
            Op::Mulw => rrw!(|a, b| self.b.ins().imul(a, b)),
            Op::Divw => rrw!(|a, b| self.divrem(a, b, I32, true, false)),
            Op::Divuw => rrw!(|a, b| self.divrem(a, b, I32, false, false)),
            Op::Remw => rrw!(|a, b| self.divrem(a, b, I32, true, true)),
            Op::Remuw => rrw!(|a, b| self.divrem(a, b, I32, false, true)),
            // x86-TSO lacks only store -> load order: `fence` (an `mfence`) for a fence
            // that asks for it; for any other a `sequence_point`, which emits nothing
            // but keeps Cranelift from merging, forwarding or moving memory accesses
            // across it (see `rv64::exec`'s notes on ordering).
            Op::Fence => {
                if i.fence_orders_store_to_load() {
                    self.b.ins().fence();
                } else {
                    self.b.ins().sequence_point();
                }
            }
            // Float moves and sign injection: bit operations, no flags, no rounding.
            Op::FmvXW => {
                let f = self.fget(i.rs1);
                let lo = self.b.ins().ireduce(I32, f);
                self.set_w(i.rd, lo);
            }
            Op::FmvXD => {
                let f = self.fget(i.rs1);
                self.set(i.rd, f);
            }
            Op::FmvWX => {
                let x = self.get(i.rs1);
                let boxed = self.box32(x);
                self.fset(i.rd, boxed);
            }
            Op::FmvDX => {
                let x = self.get(i.rs1);
                self.fset(i.rd, x);
            }
            Op::FsgnjS | Op::FsgnjnS | Op::FsgnjxS => {
                let a = self.fget(i.rs1);
                let a = self.unbox32(a);
                let b = self.fget(i.rs2);
                let b = self.unbox32(b);
                let v = self.sgnj(a, b, i.op, 1 << 31);
                let boxed = self.box32(v);
                self.fset(i.rd, boxed);
            }
            Op::FsgnjD | Op::FsgnjnD | Op::FsgnjxD => {
                let a = self.fget(i.rs1);
                let b = self.fget(i.rs2);
                let v = self.sgnj(a, b, i.op, i64::MIN);
                self.fset(i.rd, v);
            }
            Op::Ecall | Op::Ebreak => {
                let st = if i.op == Op::Ecall {
                    status::ECALL
                } else {
                    status::EBREAK
                };
                let p = self.b.ins().iconst(I64, pc as i64);
                self.exit(p, k, st);
                return true;
            }
            Op::FenceI => {
                let p = self.b.ins().iconst(I64, next as i64);
                self.exit(p, k + 1, status::FENCE_I);
                return true;
            }
            Op::Illegal => {
                let raw = self.b.ins().iconst(I32, i.raw as i32 as i64);
                self.b
                    .ins()
                    .store(ctx_flags(), raw, self.ctx, offsets::EXIT_RAW);
                let p = self.b.ins().iconst(I64, pc as i64);
                self.exit(p, k, status::ILLEGAL);
                return true;
            }
            Op::FaddD | Op::FsubD => self.fadd_d(pc, i, k),
            Op::FmulD | Op::FdivD => self.fmul_div_fma_d(pc, i, k),
            Op::FmaddD | Op::FmsubD | Op::FnmsubD | Op::FnmaddD if self.host_fma => {
                self.fmul_div_fma_d(pc, i, k)
            }
            Op::FeqD | Op::FltD | Op::FleD => self.fcmp_d(pc, i, k),
            Op::FcvtDW | Op::FcvtDWu => self.fcvt_d_w(pc, i, k),
            op => match mem_op(op) {
                Some(m) => self.memory(pc, i, m, k),
                None => self.helper(pc, i, k),
            },
        }
        false
    }
}

/// Whether translated code runs `op` through the embedder's `exec_one` helper instead of
/// inline code (A, most of F/D, Zicsr). Such instructions cost more in translated code
/// than in the interpreter (register write-back, re-decoding, an indirect call), so an
/// engine may keep blocks made mostly of them interpreted. Agrees with
/// `Emitter`'s instruction match (checked by a test).
pub fn runs_in_helper(op: Op) -> bool {
    use Op::*;
    let inline = inline_integer_op(op)
        || matches!(
            op,
            FsgnjS
                | FsgnjnS
                | FsgnjxS
                | FsgnjD
                | FsgnjnD
                | FsgnjxD
                | FaddD
                | FsubD
                | FmulD
                | FdivD
                | FmaddD
                | FmsubD
                | FnmsubD
                | FnmaddD
                | FeqD
                | FltD
                | FleD
                | FcvtDW
                | FcvtDWu
                | Ecall
                | Ebreak
                | FenceI
                | Illegal
        );
    !inline
}

/// Operations both code generators (Cranelift and the baseline templates) translate
/// inline: loads and stores (integer and float), RV64I and M, `fence`, and the moves
/// between integer and float registers.
pub(crate) fn inline_integer_op(op: Op) -> bool {
    use Op::*;
    mem_op(op).is_some()
        || matches!(
            op,
            Lui | Auipc
                | Jal
                | Jalr
                | Beq
                | Bne
                | Blt
                | Bge
                | Bltu
                | Bgeu
                | Addi
                | Slti
                | Sltiu
                | Xori
                | Ori
                | Andi
                | Slli
                | Srli
                | Srai
                | Add
                | Sub
                | Sll
                | Srl
                | Sra
                | Slt
                | Sltu
                | Xor
                | Or
                | And
                | Addiw
                | Slliw
                | Srliw
                | Sraiw
                | Addw
                | Subw
                | Sllw
                | Srlw
                | Sraw
                | Mul
                | Mulh
                | Mulhu
                | Mulhsu
                | Div
                | Divu
                | Rem
                | Remu
                | Mulw
                | Divw
                | Divuw
                | Remw
                | Remuw
                | Fence
                | FmvXW
                | FmvXD
                | FmvWX
                | FmvDX
        )
}
