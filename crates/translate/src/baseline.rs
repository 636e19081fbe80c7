//! The baseline tier: RV64 blocks -> x86-64 machine code by templates, without
//! Cranelift, in microseconds instead of Cranelift's ~100 µs per block.
//!
//! A Cranelift compile costs about 55 µs per block plus 18 µs per guest instruction
//! (`examples/compile_cost`). In short programs the one compile thread cannot keep up,
//! and blocks waiting for it run interpreted, ten times slower than translated code.
//! Baseline code is made on the guest thread the moment a block turns warm and runs
//! until the Cranelift translation replaces it (the role of V8's Sparkplug or of a
//! QEMU-style template translator).
//!
//! Invariants of the generated code (the contract of [`crate::context`] and the same
//! calling convention as chained Cranelift blocks, so the two chain into each other):
//! - Guest registers live in `ctx`, except the (at most three) most used integer
//!   registers of the block, which are loaded into `r8`-`r10` on entry and stored back
//!   at every exit if written before it (in a one-block loop: if written anywhere in
//!   it). Every other instruction operand is loaded from `ctx.cpu` and every result
//!   stored there, except that an instruction's first operand comes from the host
//!   register the previous instruction stored it from. `x0` is never read from memory
//!   (it is 0) nor written.
//! - Host registers used: `rdi` (the context, never changed), `rax`, `rcx`, `rdx`,
//!   `rsi`, `r8`-`r11` (all caller-saved in every x86-64 convention Cranelift uses).
//!   No stack use, no calls, no frame: a block is entered and left with the stack as
//!   the trampoline's call left it, ends with `ret` or a tail jump to the next block.
//! - Every memory access is checked inline exactly as in Cranelift code (bounds,
//!   permission-table fast bit, the in-page test for the last page of a mapping); a
//!   failed check leaves with [`status::SLOW_PATH`] at the access, with `instret`
//!   counting the instructions before it.
//! - Block ends probe the jump cache of the compiled-in shape and jump to the next
//!   block while `ctx.chain_budget` lasts, as `Emitter::chain_to` does. A block that
//!   branches to its own start loops inside its code instead (one budget unit and, with
//!   a tier-up counter, one count per iteration), as Cranelift's tier 1 does.
//! - The code is position-independent: branches are relative, constants immediate, and
//!   everything else is reached through `rdi`.
//! - Only the instructions [`Baseline::supports`] lists are translated: RV64I and M,
//!   loads and stores (integer and float), float moves and double sign injection. A
//!   block with anything else is refused ([`TranslateError::Unsupported`]) and waits
//!   for Cranelift.

use dynasmrt::x64::{Rq, X64Relocation};
use dynasmrt::{DynamicLabel, DynasmApi, DynasmLabelApi, VecAssembler, dynasm};
use rv64::{Insn, Op};

use crate::context::{
    JC_CODE_OFFSET, JC_ENTRY_SHIFT, JC_HITS_OFFSET, JC_KEY_OFFSET, JumpCacheShape, PAGE_SHIFT,
    PAGE_SIZE, PERM_FAST_R, PERM_FAST_W, PERM_R, PERM_W, offsets, status,
};
use crate::emit::{Check, Checks, MemOp, Width, inline_integer_op, mem_op, plan_checks};
use crate::translator::{Compiled, TranslateError, validate};

macro_rules! x64 {
    ($ops:expr; $($t:tt)*) => {
        dynasm!($ops ; .arch x64 ; $($t)*)
    };
}

const RAX: Rq = Rq::RAX;
const RCX: Rq = Rq::RCX;
const RDX: Rq = Rq::RDX;
const RSI: Rq = Rq::RSI;
const R10: Rq = Rq::R10;
const R11: Rq = Rq::R11;

/// What the baseline translator must know about the contexts its code runs with (the
/// engine's layout; see [`crate::TranslatorConfig`] for the same fields).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BaselineConfig {
    /// Shape of every context's jump cache (baseline code always chains, so every
    /// context it runs with must have a jump cache of this shape).
    pub jump_cache: JumpCacheShape,
    /// `ctx.guest_size`, when the same for every context (bounds test against an
    /// immediate instead of a load).
    pub guest_size: Option<u64>,
    /// The permission table's offset from `ctx.mem_base`, when it sits at a constant one
    /// (otherwise code reads `ctx.perms`).
    pub perms_offset: Option<i32>,
}

/// The baseline (template) translator. Cheap to create; `Send`.
#[derive(Debug)]
pub struct Baseline {
    config: BaselineConfig,
    /// Kept between translations (its label and relocation tables are reused; each
    /// block's bytes are taken out).
    asm: Option<VecAssembler<X64Relocation>>,
    stubs: Vec<Stub>,
}

/// Out-of-line code after the block body.
#[derive(Debug)]
enum Stub {
    /// Leave with `status` (`SLOW_PATH`, or `HOT` at the block's start) at `pc`,
    /// `retired` instructions done, the cached registers in `dirty` written.
    Slow {
        at: DynamicLabel,
        pc: u64,
        retired: u64,
        dirty: u32,
        status: u64,
    },
    /// The page's fast bit was clear: the access may still be fine if it is the last
    /// page of a mapping and the access stays inside it.
    NearEnd {
        at: DynamicLabel,
        back: DynamicLabel,
        slow: DynamicLabel,
        own: u8,
        span: u32,
    },
}

struct Emit {
    a: VecAssembler<X64Relocation>,
    config: BaselineConfig,
    stubs: Vec<Stub>,
    /// The permission table's base register and displacement.
    table: (Rq, i32),
    /// Which accesses check, for how many bytes, and which an earlier check covers
    /// (the Cranelift tiers' plan: one check per group of accesses through one base).
    checks: Checks,
    /// `(host, r)`: the instruction just emitted ended by storing host register `host`
    /// to `x[r]`, so at the start of the next one `host` still holds `x[r]`.
    stored: Option<(Rq, u8)>,
    /// That fact, for the first operand load of the current instruction only (later
    /// loads come after template code that may clobber the register).
    first_load: Option<(Rq, u8)>,
    /// Guest registers kept in host registers for the whole block (the most used
    /// ones), loaded on entry and stored back at every exit if written.
    cached: [Option<Rq>; 32],
    /// Cached registers written so far (bit `r`): what an exit emitted here stores.
    dirty: u32,
    /// A one-block loop's start, its tier-up counter offset in `ctx.counters`, and the
    /// label after the entry code where each iteration goes on.
    self_loop: Option<(u64, Option<i32>, DynamicLabel)>,
}

/// Host registers free for caching guest registers: not `rdi` (ctx), not the template
/// temporaries (`rax`, `rcx`, `rdx`, `rsi`), not `r11` (memory base) and not `r10` when
/// it holds the permission table. All caller-saved in Cranelift's conventions.
const CACHE_REGS: [Rq; 3] = [Rq::R8, Rq::R9, Rq::R10];

/// The registers worth caching in `block`: the most used (as source or destination, at
/// least twice), at most `slots`.
fn pick_cached(block: &[(u64, Insn)], slots: usize) -> Vec<u8> {
    let mut uses = [0u32; 32];
    for (_, i) in block {
        for r in [i.rs1, i.rs2, i.rd] {
            uses[(r & 31) as usize] += 1;
        }
    }
    uses[0] = 0;
    let mut regs: Vec<u8> = (1..32u8).filter(|&r| uses[r as usize] >= 2).collect();
    // Most used first; ties by register number, so the choice is deterministic.
    regs.sort_by_key(|&r| (std::cmp::Reverse(uses[r as usize]), r));
    regs.truncate(slots);
    regs
}

fn fits_i32(v: u64) -> bool {
    v <= i32::MAX as u64
}

const fn xoff(r: u8) -> i32 {
    offsets::X + 8 * (r as i32 & 31)
}

const fn foff(r: u8) -> i32 {
    offsets::F + 8 * (r as i32 & 31)
}

impl Baseline {
    /// A baseline translator for contexts laid out as `config` says. Refused on hosts
    /// other than x86-64.
    pub fn new(config: BaselineConfig) -> Result<Self, TranslateError> {
        if !cfg!(target_arch = "x86_64") {
            return Err(TranslateError::HostIsa(
                "the baseline tier generates x86-64 code only".into(),
            ));
        }
        if !config.jump_cache.len.is_power_of_two() {
            return Err(TranslateError::Settings(format!(
                "jump cache of {} entries: not a power of two",
                config.jump_cache.len
            )));
        }
        Ok(Baseline {
            config,
            asm: None,
            stubs: Vec::new(),
        })
    }

    /// Whether baseline code handles `op` (a block is translated only if all its
    /// instructions are).
    pub fn supports(op: Op) -> bool {
        use Op::*;
        inline_integer_op(op)
            || matches!(
                op,
                FsgnjD | FsgnjnD | FsgnjxD | Ecall | Ebreak | FenceI | Illegal
            )
    }

    /// Translates one basic block (shaped as for [`crate::Translator::translate`]) into
    /// chained baseline code. With `counter`, the code first decrements
    /// `ctx.counters[counter]` and, when that reaches zero, leaves at once with
    /// [`status::HOT`] (the embedder's signal to make a better translation; it sets the
    /// count).
    pub fn translate(
        &mut self,
        block: &[(u64, Insn)],
        counter: Option<u32>,
    ) -> Result<Compiled, TranslateError> {
        let (start, end) = validate(block)?;
        if let Some(&(pc, insn)) = block.iter().find(|(_, i)| !Self::supports(i.op)) {
            return Err(TranslateError::Unsupported {
                pc,
                what: format!("{:?}", insn.op),
            });
        }
        let table = match self.config.perms_offset {
            Some(off) => (R11, off),
            None => (R10, 0),
        };
        let mut a = self.asm.take().unwrap_or_else(|| VecAssembler::new(0));
        // Typical blocks come to about 50 host bytes per guest instruction: one
        // allocation instead of growing by doubling.
        a.reserve_ops(64 * block.len() + 256);
        let mut stubs = std::mem::take(&mut self.stubs);
        stubs.clear();
        let mut e = Emit {
            a,
            config: self.config,
            stubs,
            table,
            checks: plan_checks(block),
            stored: None,
            first_load: None,
            cached: [None; 32],
            dirty: 0,
            self_loop: None,
        };
        let free = if self.config.perms_offset.is_some() {
            &CACHE_REGS[..]
        } else {
            &CACHE_REGS[..2]
        };
        for (&r, &host) in pick_cached(block, free.len()).iter().zip(free) {
            e.cached[r as usize] = Some(host);
        }
        if let Some(index) = counter {
            let hot = e.a.new_dynamic_label();
            let at = i32::try_from(u64::from(index) * 4).map_err(|_| {
                TranslateError::Settings(format!("counter index {index} out of range"))
            })?;
            x64!(e.a
                ; mov rax, QWORD [rdi + offsets::COUNTERS]
                ; sub DWORD [rax + at], 1
                ; jz =>hot
            );
            e.stubs.push(Stub::Slow {
                at: hot,
                pc: start,
                retired: 0,
                dirty: 0,
                status: status::HOT,
            });
        }
        // After the tier-up test, whose exit has nothing to store back.
        for r in 1..32u8 {
            if let Some(host) = e.cached[r as usize] {
                x64!(e.a; mov Rq(host), QWORD [rdi + xoff(r)]);
            }
        }
        if block.iter().any(|(_, i)| mem_op(i.op).is_some()) {
            x64!(e.a; mov r11, QWORD [rdi + offsets::MEM_BASE]);
            if self.config.perms_offset.is_none() {
                x64!(e.a; mov r10, QWORD [rdi + offsets::PERMS]);
            }
        }
        let loops = match block.last() {
            Some(&(pc, last)) => {
                matches!(
                    last.op,
                    Op::Beq | Op::Bne | Op::Blt | Op::Bge | Op::Bltu | Op::Bgeu | Op::Jal
                ) && pc.wrapping_add(last.imm as u64) == start
            }
            None => false,
        };
        if loops {
            let head = e.a.new_dynamic_label();
            x64!(e.a; =>head);
            let at = counter.map(|c| (c * 4) as i32);
            e.self_loop = Some((start, at, head));
            // From the second iteration on, every cached register the block writes may
            // differ from ctx at any exit.
            for (_, i) in block {
                let r = (i.rd & 31) as usize;
                if r != 0 && e.cached[r].is_some() {
                    e.dirty |= 1 << r;
                }
            }
        }
        let mut ended = false;
        for (k, &(pc, insn)) in block.iter().enumerate() {
            if e.insn(pc, &insn, k as u64) {
                ended = true;
                break;
            }
        }
        if !ended {
            // A block cut at the length limit falls through.
            e.exit_const(end, block.len() as u64);
        }
        e.stubs();
        let code = e.a.take().map_err(|err| TranslateError::Codegen {
            pc: start,
            msg: format!("baseline assembler: {err:?}"),
        });
        // A failed assembly leaves state behind: start the next one afresh.
        if code.is_ok() {
            self.asm = Some(e.a);
        }
        self.stubs = e.stubs;
        let code = code?;
        Ok(Compiled {
            code,
            entry: start,
            guest_start: start,
            guest_end: end,
            ranges: vec![(start, end)],
            insns: block.len(),
        })
    }
}

impl Emit {
    /// `dst = x[r]`, from a register when the previous instruction left `x[r]` in one
    /// and this is the current instruction's first load.
    fn load_x(&mut self, dst: Rq, r: u8) {
        let held = self.first_load.take();
        if r & 31 == 0 {
            x64!(self.a; xor Rd(dst), Rd(dst));
        } else if let Some(host) = self.cached[(r & 31) as usize] {
            x64!(self.a; mov Rq(dst), Rq(host));
        } else if let Some((host, _)) = held.filter(|&(_, held_r)| held_r == r & 31) {
            if host != dst {
                x64!(self.a; mov Rq(dst), Rq(host));
            }
        } else {
            x64!(self.a; mov Rq(dst), QWORD [rdi + xoff(r)]);
        }
    }

    /// `x[r] = src` (nothing for `x0`). Must be the last code of an instruction's
    /// template, or followed only by code that leaves `src` as it is (see `stored`).
    fn store_x(&mut self, r: u8, src: Rq) {
        if let Some(host) = self.cached[(r & 31) as usize] {
            x64!(self.a; mov Rq(host), Rq(src));
            self.dirty |= 1 << (r & 31);
            self.stored = Some((src, r & 31));
        } else if r & 31 != 0 {
            x64!(self.a; mov QWORD [rdi + xoff(r)], Rq(src));
            self.stored = Some((src, r & 31));
        }
    }

    /// `x[r] = v` for a constant.
    fn store_const(&mut self, r: u8, v: u64) {
        if r & 31 == 0 {
            return;
        }
        if let Some(host) = self.cached[(r & 31) as usize] {
            x64!(self.a; mov Rq(host), QWORD v as i64);
            self.dirty |= 1 << (r & 31);
            return;
        }
        if (v as i64) >= i64::from(i32::MIN) && (v as i64) <= i64::from(i32::MAX) {
            x64!(self.a; mov QWORD [rdi + xoff(r)], (v as i64) as i32);
        } else {
            x64!(self.a; mov rax, QWORD v as i64; mov QWORD [rdi + xoff(r)], rax);
        }
    }

    /// Stores the cached registers written so far back to `ctx` (before any exit).
    fn write_back(&mut self) {
        for r in 1..32u8 {
            if self.dirty & (1 << r) != 0
                && let Some(host) = self.cached[r as usize]
            {
                x64!(self.a; mov QWORD [rdi + xoff(r)], Rq(host));
            }
        }
    }

    fn add_instret(&mut self, n: u64) {
        if n != 0 {
            x64!(self.a; add QWORD [rdi + offsets::INSTRET], n as i32);
        }
    }

    /// `ctx.cpu.pc = pc`.
    fn store_pc(&mut self, pc: u64) {
        if fits_i32(pc) {
            x64!(self.a; mov QWORD [rdi + offsets::PC], pc as i32);
        } else {
            x64!(self.a; mov rdx, QWORD pc as i64; mov QWORD [rdi + offsets::PC], rdx);
        }
    }

    /// Leaves with status `st` at `pc` after `retired` instructions.
    fn exit_status(&mut self, pc: u64, retired: u64, st: u64) {
        self.write_back();
        self.add_instret(retired);
        self.store_pc(pc);
        x64!(self.a; mov eax, st as i32; ret);
    }

    /// Block end continuing at the constant `target` after `retired` instructions:
    /// chain through the jump cache while the budget lasts, else return to the
    /// dispatcher.
    fn exit_const(&mut self, target: u64, retired: u64) {
        if let Some((start, at, head)) = self.self_loop
            && target == start
        {
            // A one-block loop stays in its code with its registers: one unit of chain
            // budget and one tier-up count per iteration.
            self.add_instret(retired);
            let out = self.a.new_dynamic_label();
            x64!(self.a
                ; mov rax, QWORD [rdi + offsets::CHAIN_BUDGET]
                ; test rax, rax
                ; jz =>out
                ; sub rax, 1
                ; mov QWORD [rdi + offsets::CHAIN_BUDGET], rax
            );
            if let Some(at) = at {
                let hot = self.a.new_dynamic_label();
                x64!(self.a
                    ; mov rax, QWORD [rdi + offsets::COUNTERS]
                    ; sub DWORD [rax + at], 1
                    ; jz =>hot
                );
                self.stubs.push(Stub::Slow {
                    at: hot,
                    pc: start,
                    retired: 0,
                    dirty: self.dirty,
                    status: status::HOT,
                });
            }
            x64!(self.a; jmp =>head; =>out);
            self.write_back();
            self.store_pc(target);
            x64!(self.a; xor eax, eax; ret);
            return;
        }
        self.write_back();
        self.add_instret(retired);
        let shape = self.config.jump_cache;
        let mask = (shape.len - 1) as u64;
        let entry = ((target >> shape.shift) & mask) << JC_ENTRY_SHIFT;
        if entry > (i32::MAX - 64) as u64 {
            // A jump cache too large for constant displacements: index at run time.
            x64!(self.a; mov rsi, QWORD target as i64);
            self.chain_dynamic();
            return;
        }
        let entry = entry as i32;
        let ret = self.a.new_dynamic_label();
        let key = entry + JC_KEY_OFFSET;
        let hits = entry + JC_HITS_OFFSET;
        let code = entry + JC_CODE_OFFSET;
        x64!(self.a
            ; mov rax, QWORD [rdi + offsets::CHAIN_BUDGET]
            ; test rax, rax
            ; jz =>ret
            ; mov rcx, QWORD [rdi + offsets::JUMP_CACHE]
        );
        if fits_i32(target) {
            x64!(self.a; cmp QWORD [rcx + key], target as i32);
        } else {
            x64!(self.a; mov rdx, QWORD target as i64; cmp QWORD [rcx + key], rdx);
        }
        // Writers only clear keys (never the code address), and retired code is not
        // reused before this executor's next quiescent point: a matching key's code
        // address is safe to enter (as in `Emitter::chain_to`).
        x64!(self.a
            ; jne =>ret
            ; sub rax, 1
            ; mov QWORD [rdi + offsets::CHAIN_BUDGET], rax
            ; add DWORD [rcx + hits], 1
            ; jmp QWORD [rcx + code]
            ; =>ret
        );
        self.store_pc(target);
        x64!(self.a; xor eax, eax; ret);
    }

    /// Block end continuing at the address in `rsi` (registers stored back and instret
    /// counted).
    fn chain_dynamic(&mut self) {
        let shape = self.config.jump_cache;
        let mask = (shape.len - 1) as u64;
        let ret = self.a.new_dynamic_label();
        x64!(self.a
            ; mov rax, QWORD [rdi + offsets::CHAIN_BUDGET]
            ; test rax, rax
            ; jz =>ret
            ; mov rdx, rsi
            ; shr rdx, shape.shift as i8
        );
        if fits_i32(mask) {
            x64!(self.a; and rdx, mask as i32);
        } else {
            x64!(self.a; mov rcx, QWORD mask as i64; and rdx, rcx);
        }
        x64!(self.a
            ; shl rdx, JC_ENTRY_SHIFT as i8
            ; add rdx, QWORD [rdi + offsets::JUMP_CACHE]
            ; cmp QWORD [rdx + JC_KEY_OFFSET], rsi
            ; jne =>ret
            ; sub rax, 1
            ; mov QWORD [rdi + offsets::CHAIN_BUDGET], rax
            ; add DWORD [rdx + JC_HITS_OFFSET], 1
            ; jmp QWORD [rdx + JC_CODE_OFFSET]
            ; =>ret
            ; mov QWORD [rdi + offsets::PC], rsi
            ; xor eax, eax
            ; ret
        );
    }

    /// Emits the out-of-line stubs.
    fn stubs(&mut self) {
        let (tbl, disp) = self.table;
        for stub in std::mem::take(&mut self.stubs) {
            match stub {
                Stub::Slow {
                    at,
                    pc,
                    retired,
                    dirty,
                    status,
                } => {
                    x64!(self.a; =>at);
                    self.dirty = dirty;
                    self.exit_status(pc, retired, status);
                }
                Stub::NearEnd {
                    at,
                    back,
                    slow,
                    own,
                    span,
                } => {
                    let limit = (PAGE_SIZE as u32 - span) as i32;
                    let in_page = (PAGE_SIZE - 1) as i32;
                    x64!(self.a
                        ; =>at
                        ; test BYTE [Rq(tbl) + rcx + disp], own as i8
                        ; jz =>slow
                        ; mov edx, eax
                        ; and edx, in_page
                        ; cmp edx, limit
                        ; ja =>slow
                        ; jmp =>back
                    );
                }
            }
        }
    }

    /// A load or store at `pc` (the `k`-th instruction of the block).
    fn memory(&mut self, pc: u64, i: &Insn, m: &MemOp, k: u64) {
        let (lo, span) = match self.checks.get(&pc).copied() {
            Some(Check::Covered) => {
                self.load_x(RAX, i.rs1);
                if i.imm != 0 {
                    x64!(self.a; add rax, i.imm as i32);
                }
                self.access(i, m);
                return;
            }
            Some(Check::Lead { lo, span }) => (lo, span as u32),
            None => (i.imm, m.width as u32),
        };
        let slow = self.a.new_dynamic_label();
        let near = self.a.new_dynamic_label();
        let access = self.a.new_dynamic_label();
        self.stubs.push(Stub::Slow {
            at: slow,
            pc,
            retired: k,
            dirty: self.dirty,
            status: status::SLOW_PATH,
        });
        let (own, fast) = if m.store {
            (PERM_W, PERM_FAST_W)
        } else {
            (PERM_R, PERM_FAST_R)
        };
        self.stubs.push(Stub::NearEnd {
            at: near,
            back: access,
            slow,
            own,
            span,
        });
        // rax: the first guest address checked (this access's own, or lower when its
        // check covers a group); rcx: its page.
        self.load_x(RAX, i.rs1);
        if lo != 0 {
            x64!(self.a; add rax, lo as i32);
        }
        match self.config.guest_size {
            Some(size) if fits_i32(size >> PAGE_SHIFT) => {
                x64!(self.a
                    ; mov rcx, rax
                    ; shr rcx, PAGE_SHIFT as i8
                    ; cmp rcx, (size >> PAGE_SHIFT) as i32
                    ; jae =>slow
                );
            }
            _ => {
                x64!(self.a
                    ; cmp rax, QWORD [rdi + offsets::GUEST_SIZE]
                    ; jae =>slow
                    ; mov rcx, rax
                    ; shr rcx, PAGE_SHIFT as i8
                );
            }
        }
        let (tbl, disp) = self.table;
        x64!(self.a
            ; test BYTE [Rq(tbl) + rcx + disp], fast as i8
            ; jz =>near
            ; =>access
        );
        if i.imm != lo {
            x64!(self.a; add rax, (i.imm - lo) as i32);
        }
        self.access(i, m);
    }

    /// The load or store of `i` at the guest address in `rax`, already checked.
    fn access(&mut self, i: &Insn, m: &MemOp) {
        if m.store {
            if m.float {
                x64!(self.a; mov rdx, QWORD [rdi + foff(i.rs2)]);
            } else {
                self.load_x(RDX, i.rs2);
            }
            match m.width {
                Width::B => x64!(self.a; mov BYTE [r11 + rax], dl),
                Width::H => x64!(self.a; mov WORD [r11 + rax], dx),
                Width::W => x64!(self.a; mov DWORD [r11 + rax], edx),
                Width::D => x64!(self.a; mov QWORD [r11 + rax], rdx),
            }
            return;
        }
        match (m.width, m.signed) {
            (Width::B, true) => x64!(self.a; movsx rdx, BYTE [r11 + rax]),
            (Width::B, false) => x64!(self.a; movzx edx, BYTE [r11 + rax]),
            (Width::H, true) => x64!(self.a; movsx rdx, WORD [r11 + rax]),
            (Width::H, false) => x64!(self.a; movzx edx, WORD [r11 + rax]),
            (Width::W, true) => x64!(self.a; movsxd rdx, DWORD [r11 + rax]),
            (Width::W, false) => x64!(self.a; mov edx, DWORD [r11 + rax]),
            (Width::D, _) => x64!(self.a; mov rdx, QWORD [r11 + rax]),
        }
        match (m.float, m.width) {
            (true, Width::W) => {
                // NaN-boxed single.
                x64!(self.a
                    ; mov rcx, QWORD 0xffff_ffff_0000_0000u64 as i64
                    ; or rdx, rcx
                    ; mov QWORD [rdi + foff(i.rd)], rdx
                );
            }
            (true, _) => x64!(self.a; mov QWORD [rdi + foff(i.rd)], rdx),
            (false, _) => self.store_x(i.rd, RDX),
        }
    }

    /// RISC-V division and remainder (no traps: x/0 and MIN/-1 as the ISA defines) of
    /// `rax` by `rcx`, 64- or 32-bit; the result (sign-extended for 32-bit) in `rax`.
    fn divrem(&mut self, signed: bool, rem: bool, word: bool) {
        let zero = self.a.new_dynamic_label();
        let minus_one = self.a.new_dynamic_label();
        let done = self.a.new_dynamic_label();
        if word {
            x64!(self.a; test ecx, ecx; jz =>zero);
        } else {
            x64!(self.a; test rcx, rcx; jz =>zero);
        }
        if signed {
            // x / -1 = -x (wrapping: MIN / -1 = MIN), x % -1 = 0: no idiv, no trap.
            if word {
                x64!(self.a; cmp ecx, -1; je =>minus_one; cdq; idiv ecx);
            } else {
                x64!(self.a; cmp rcx, -1; je =>minus_one; cqo; idiv rcx);
            }
        } else if word {
            x64!(self.a; xor edx, edx; div ecx);
        } else {
            x64!(self.a; xor edx, edx; div rcx);
        }
        if rem {
            x64!(self.a; mov rax, rdx);
        }
        x64!(self.a; jmp =>done; =>minus_one);
        if rem {
            x64!(self.a; xor eax, eax);
        } else if word {
            x64!(self.a; neg eax);
        } else {
            x64!(self.a; neg rax);
        }
        x64!(self.a; jmp =>done; =>zero);
        // x / 0 = all ones, x % 0 = x.
        if !rem {
            x64!(self.a; mov rax, -1);
        }
        x64!(self.a; =>done);
        if word {
            x64!(self.a; movsxd rax, eax);
        }
    }

    /// Emits instruction `i` at `pc`, the `k`-th of its block. True if it ended the
    /// block.
    fn insn(&mut self, pc: u64, i: &Insn, k: u64) -> bool {
        // Straight-line code with one entry: the previous template's last store is
        // what ran just before (stubs only jump back inside their own instruction).
        self.first_load = self.stored.take();
        let next = pc.wrapping_add(u64::from(i.len));
        let imm = i.imm;
        let imm32 = imm as i32;
        let sh = (imm & 63) as i8;
        let shw = (imm & 31) as i8;
        // rax = rs1, rcx = rs2, op, x[rd] = rax.
        macro_rules! rr {
            ($($t:tt)*) => {{
                self.load_x(RAX, i.rs1);
                self.load_x(RCX, i.rs2);
                x64!(self.a; $($t)*);
                self.store_x(i.rd, RAX);
            }};
        }
        // rax = rs1, op, x[rd] = rax.
        macro_rules! ri {
            ($($t:tt)*) => {{
                self.load_x(RAX, i.rs1);
                x64!(self.a; $($t)*);
                self.store_x(i.rd, RAX);
            }};
        }
        macro_rules! branch {
            ($($jcc:tt)*) => {{
                let taken = self.a.new_dynamic_label();
                self.load_x(RAX, i.rs1);
                self.load_x(RCX, i.rs2);
                x64!(self.a; cmp rax, rcx; $($jcc)* =>taken);
                self.exit_const(next, k + 1);
                x64!(self.a; =>taken);
                self.exit_const(pc.wrapping_add(imm as u64), k + 1);
                return true;
            }};
        }
        // x[rd] = (rs1 <cc> rs2) as 0/1, with `b` loaded into rcx or an immediate.
        macro_rules! set_cc {
            ($set:ident, $rhs:expr) => {{
                self.load_x(RAX, i.rs1);
                x64!(self.a; xor edx, edx);
                match $rhs {
                    Some(v) => x64!(self.a; cmp rax, v),
                    None => {
                        self.load_x(RCX, i.rs2);
                        x64!(self.a; cmp rax, rcx);
                    }
                }
                x64!(self.a; $set dl);
                self.store_x(i.rd, RDX);
            }};
        }
        match i.op {
            Op::Lui => self.store_const(i.rd, imm as u64),
            Op::Auipc => self.store_const(i.rd, pc.wrapping_add(imm as u64)),
            Op::Jal => {
                self.store_const(i.rd, next);
                self.exit_const(pc.wrapping_add(imm as u64), k + 1);
                return true;
            }
            Op::Jalr => {
                // The target is computed before rd is written (rd may equal rs1).
                self.load_x(RSI, i.rs1);
                x64!(self.a; add rsi, imm32; and rsi, -2);
                self.store_const(i.rd, next);
                self.write_back();
                self.add_instret(k + 1);
                self.chain_dynamic();
                return true;
            }
            Op::Beq => branch!(je),
            Op::Bne => branch!(jne),
            Op::Blt => branch!(jl),
            Op::Bge => branch!(jge),
            Op::Bltu => branch!(jb),
            Op::Bgeu => branch!(jae),
            Op::Addi => ri!(add rax, imm32),
            Op::Slti => set_cc!(setl, Some(imm32)),
            Op::Sltiu => set_cc!(setb, Some(imm32)),
            Op::Xori => ri!(xor rax, imm32),
            Op::Ori => ri!(or rax, imm32),
            Op::Andi => ri!(and rax, imm32),
            Op::Slli => ri!(shl rax, sh),
            Op::Srli => ri!(shr rax, sh),
            Op::Srai => ri!(sar rax, sh),
            Op::Add => rr!(add rax, rcx),
            Op::Sub => rr!(sub rax, rcx),
            // x86 masks 64-bit shift counts to 6 bits and 32-bit ones to 5, as RISC-V.
            Op::Sll => rr!(shl rax, cl),
            Op::Srl => rr!(shr rax, cl),
            Op::Sra => rr!(sar rax, cl),
            Op::Slt => set_cc!(setl, None::<i32>),
            Op::Sltu => set_cc!(setb, None::<i32>),
            Op::Xor => rr!(xor rax, rcx),
            Op::Or => rr!(or rax, rcx),
            Op::And => rr!(and rax, rcx),
            Op::Addiw => ri!(add eax, imm32; movsxd rax, eax),
            Op::Slliw => ri!(shl eax, shw; movsxd rax, eax),
            Op::Srliw => ri!(shr eax, shw; movsxd rax, eax),
            Op::Sraiw => ri!(sar eax, shw; movsxd rax, eax),
            Op::Addw => rr!(add eax, ecx; movsxd rax, eax),
            Op::Subw => rr!(sub eax, ecx; movsxd rax, eax),
            Op::Sllw => rr!(shl eax, cl; movsxd rax, eax),
            Op::Srlw => rr!(shr eax, cl; movsxd rax, eax),
            Op::Sraw => rr!(sar eax, cl; movsxd rax, eax),
            Op::Mul => rr!(imul rax, rcx),
            Op::Mulw => rr!(imul eax, ecx; movsxd rax, eax),
            Op::Mulh => rr!(imul rcx; mov rax, rdx),
            Op::Mulhu => rr!(mul rcx; mov rax, rdx),
            // signed(a) = a - 2^64·[a<0], so hi(a·b) = umulhi(a, b) - [a<0]·b.
            Op::Mulhsu => {
                rr!(mov rsi, rax; mul rcx; sar rsi, 63; and rsi, rcx; sub rdx, rsi; mov rax, rdx)
            }
            Op::Div
            | Op::Divu
            | Op::Rem
            | Op::Remu
            | Op::Divw
            | Op::Divuw
            | Op::Remw
            | Op::Remuw => {
                let signed = matches!(i.op, Op::Div | Op::Rem | Op::Divw | Op::Remw);
                let rem = matches!(i.op, Op::Rem | Op::Remu | Op::Remw | Op::Remuw);
                let word = matches!(i.op, Op::Divw | Op::Divuw | Op::Remw | Op::Remuw);
                self.load_x(RAX, i.rs1);
                self.load_x(RCX, i.rs2);
                self.divrem(signed, rem, word);
                self.store_x(i.rd, RAX);
            }
            // x86-TSO lacks only store -> load order: `mfence` for a fence that asks for
            // it, nothing for any other (templates are emitted in program order, and no
            // compiler reorders them; see `rv64::exec`'s notes on ordering).
            Op::Fence => {
                if i.fence_orders_store_to_load() {
                    x64!(self.a; mfence);
                }
            }
            Op::FmvXW => {
                x64!(self.a; movsxd rax, DWORD [rdi + foff(i.rs1)]);
                self.store_x(i.rd, RAX);
            }
            Op::FmvXD => {
                x64!(self.a; mov rax, QWORD [rdi + foff(i.rs1)]);
                self.store_x(i.rd, RAX);
            }
            Op::FmvWX => {
                self.load_x(RAX, i.rs1);
                x64!(self.a
                    ; mov eax, eax
                    ; mov rcx, QWORD 0xffff_ffff_0000_0000u64 as i64
                    ; or rax, rcx
                    ; mov QWORD [rdi + foff(i.rd)], rax
                );
            }
            Op::FmvDX => {
                self.load_x(RAX, i.rs1);
                x64!(self.a; mov QWORD [rdi + foff(i.rd)], rax);
            }
            Op::FsgnjD | Op::FsgnjnD | Op::FsgnjxD => {
                x64!(self.a
                    ; mov rax, QWORD [rdi + foff(i.rs1)]
                    ; mov rcx, QWORD [rdi + foff(i.rs2)]
                );
                match i.op {
                    Op::FsgnjD => x64!(self.a
                        ; shr rcx, 63; shl rcx, 63; btr rax, 63; or rax, rcx),
                    Op::FsgnjnD => x64!(self.a
                        ; not rcx; shr rcx, 63; shl rcx, 63; btr rax, 63; or rax, rcx),
                    _ => x64!(self.a; shr rcx, 63; shl rcx, 63; xor rax, rcx),
                }
                x64!(self.a; mov QWORD [rdi + foff(i.rd)], rax);
            }
            Op::Ecall => {
                self.exit_status(pc, k, status::ECALL);
                return true;
            }
            Op::Ebreak => {
                self.exit_status(pc, k, status::EBREAK);
                return true;
            }
            Op::FenceI => {
                self.exit_status(next, k + 1, status::FENCE_I);
                return true;
            }
            Op::Illegal => {
                x64!(self.a; mov DWORD [rdi + offsets::EXIT_RAW], i.raw as i32);
                self.exit_status(pc, k, status::ILLEGAL);
                return true;
            }
            op => match mem_op(op) {
                Some(m) => self.memory(pc, i, &m, k),
                // `Baseline::translate` refused the block before emitting anything.
                None => unreachable!("{op:?} is not supported by the baseline tier"),
            },
        }
        false
    }
}
