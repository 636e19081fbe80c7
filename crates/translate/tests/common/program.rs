//! Running a random program both ways. A program is one or two blocks; each is
//! translated (by Cranelift in one of the [`Setup`]s the engine and the tests use, or by
//! the baseline tier) and entered directly or through the chained trampoline, with some
//! of the blocks in the jump cache. The reference executes the same blocks with
//! `rv64::execute` under the rules translated code follows for the chain budget:
//!
//! - a block whose last instruction is a direct branch or `jal` to its own start loops
//!   inside its code: one unit of budget per iteration, while there is one;
//! - any other continuation at the start of a block in the jump cache chains to it
//!   (chained code only): one unit of budget and one hit on the entry;
//! - anything else returns to the dispatcher.
//!
//! A `SLOW_PATH` or `HOT` exit is finished as an embedder would: the reference runs on
//! from the pc it left with the budget it left.

use std::cell::OnceCell;

use rv64::{Cpu, Insn, Op};
use translate::exec_mem::ExecBuf;
use translate::helpers::{FLAT_HELPERS, GuestView};
use translate::{
    Baseline, BaselineConfig, JitContext, JumpCacheShape, OptLevel, Translator, TranslatorConfig,
    status,
};

use super::arena::{self, Code, with_arena};
use super::coverage::Coverage;
use super::{GUEST_SIZE, Outcome};

/// The jump cache of every chained run (64 entries of 32 bytes).
pub const SHAPE: JumpCacheShape = JumpCacheShape { shift: 1, len: 64 };
/// Bytes before guest memory where every run keeps the permission table (code compiled
/// with `perms_offset` finds it there; other code reads `ctx.perms`, which points there).
pub const TABLE_BYTES: usize = 4096;

/// How Cranelift code is compiled and what its context looks like.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Setup {
    /// Unchained; guest size and permission table read from `ctx`.
    Plain,
    /// Unchained; guest size and the table's offset from memory compiled in.
    Known,
    /// Chained with the jump cache's shape read from `ctx` (which may hold no jump
    /// cache); guest size compiled in.
    Chained,
    /// The engine's: chained with the shape, guest size and table offset compiled in.
    ChainedKnown,
}

impl Setup {
    pub const ALL: [Setup; 4] = [
        Setup::Plain,
        Setup::Known,
        Setup::Chained,
        Setup::ChainedKnown,
    ];

    pub fn chained(self) -> bool {
        matches!(self, Setup::Chained | Setup::ChainedKnown)
    }

    pub fn config(self, opt: OptLevel) -> TranslatorConfig {
        TranslatorConfig {
            opt,
            chain: self.chained(),
            jump_cache: (self == Setup::ChainedKnown).then_some(SHAPE),
            guest_size: (self != Setup::Plain).then_some(GUEST_SIZE as u64),
            perms_offset: matches!(self, Setup::Known | Setup::ChainedKnown)
                .then_some(-(TABLE_BYTES as i32)),
        }
    }

    /// The baseline configuration with the same layout (baseline code always chains
    /// through a jump cache of [`SHAPE`]).
    pub fn baseline(self) -> BaselineConfig {
        let c = self.config(OptLevel::Quick);
        BaselineConfig {
            jump_cache: SHAPE,
            guest_size: c.guest_size,
            perms_offset: c.perms_offset,
        }
    }
}

/// One translator per setup, made when first needed (a thread's translators).
pub struct Translators {
    opt: OptLevel,
    cranelift: [Option<Translator>; 4],
    baseline: [Option<Baseline>; 4],
}

impl Translators {
    pub fn new(opt: OptLevel) -> Self {
        Translators {
            opt,
            cranelift: [None, None, None, None],
            baseline: [None, None, None, None],
        }
    }

    pub fn get(&mut self, setup: Setup) -> &mut Translator {
        let k = setup as usize;
        let opt = self.opt;
        self.cranelift[k]
            .get_or_insert_with(|| Translator::with_config(setup.config(opt)).expect("host ISA"))
    }

    pub fn baseline(&mut self, setup: Setup) -> &mut Baseline {
        self.baseline[setup as usize]
            .get_or_insert_with(|| Baseline::new(setup.baseline()).expect("x86-64 host"))
    }
}

thread_local! {
    static TRAMPOLINE: OnceCell<ExecBuf> = const { OnceCell::new() };
}

/// Calls `f` with this thread's chained trampoline (the same code for every chained
/// translator and for baseline code).
pub fn with_trampoline<R>(f: impl FnOnce(&ExecBuf) -> R) -> R {
    TRAMPOLINE.with(|t| {
        let tramp = t.get_or_init(|| {
            let mut tr =
                Translator::with_config(Setup::Chained.config(OptLevel::Quick)).expect("host ISA");
            ExecBuf::new(&tr.trampoline().expect("trampoline").code).expect("map")
        });
        f(tramp)
    })
}

/// A block of a program and whether the jump cache holds it.
#[derive(Clone, Debug)]
pub struct Entry {
    pub block: Vec<(u64, Insn)>,
    pub in_jc: bool,
}

impl Entry {
    pub fn start(&self) -> u64 {
        self.block[0].0
    }

    /// One past its last byte.
    pub fn end(&self) -> u64 {
        let (pc, last) = self.block[self.block.len() - 1];
        pc.wrapping_add(u64::from(last.len))
    }

    /// Its last instruction is a direct transfer to its own start.
    pub fn loops(&self) -> bool {
        let (pc, last) = self.block[self.block.len() - 1];
        (last.op.is_conditional_branch() || last.op == Op::Jal)
            && pc.wrapping_add(last.imm as u64) == self.start()
    }

    /// The jump-cache index of its start.
    pub fn jc_index(&self) -> usize {
        ((self.start() >> SHAPE.shift) as usize) & (SHAPE.len - 1)
    }
}

/// How a program's run used the chain budget: what is left and, per block, how many
/// transfers came to it through the jump cache.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Flow {
    pub budget: u64,
    pub hits: Vec<u64>,
}

/// The reference: runs `blocks` from `cpu.pc` (any of their instructions) under the
/// rules of the module documentation, recording what it executes in `cov`.
pub fn reference(
    blocks: &[Entry],
    chained: bool,
    mut cpu: Cpu,
    mut mem: Vec<u8>,
    perms: &[u8],
    mut budget: u64,
    mut cov: Option<&mut Coverage>,
) -> (Outcome, Flow) {
    let mut hits = vec![0; blocks.len()];
    let (mut cur, mut from) = blocks
        .iter()
        .enumerate()
        .find_map(|(k, e)| {
            e.block
                .iter()
                .position(|&(pc, _)| pc == cpu.pc)
                .map(|i| (k, i))
        })
        .unwrap_or_else(|| panic!("test bug: {:#x} is in no block", cpu.pc));
    let mut exit = None;
    let mut view = GuestView::new(&mut mem, perms);
    'run: loop {
        for (_, insn) in &blocks[cur].block[from..] {
            let seen = cov.as_deref_mut().map(|c| c.before(&cpu, insn, perms));
            let r = rv64::execute(&mut cpu, &mut view, insn);
            if let (Some(c), Some(p)) = (cov.as_deref_mut(), seen) {
                c.after(p, insn, &r);
            }
            if let Err(e) = r {
                exit = Some(e);
                break 'run;
            }
        }
        let self_loop = blocks[cur].loops() && cpu.pc == blocks[cur].start();
        let next = if self_loop {
            Some(cur)
        } else if chained {
            blocks.iter().position(|e| e.in_jc && e.start() == cpu.pc)
        } else {
            None
        };
        match next {
            Some(n) if budget > 0 => {
                budget -= 1;
                if !self_loop {
                    hits[n] += 1;
                }
                cur = n;
                from = 0;
            }
            _ => break,
        }
    }
    (Outcome { cpu, exit, mem }, Flow { budget, hits })
}

/// What translated code did, finished by the reference after a `SLOW_PATH` or `HOT`
/// exit.
pub struct Run {
    pub out: Outcome,
    pub flow: Flow,
    /// The status translated code returned.
    pub status: u64,
}

/// How translated code is entered and what its context holds.
pub struct Context {
    /// Through the chained trampoline (chained Cranelift code, baseline code).
    pub chained: bool,
    /// No jump cache in `ctx` (only for code that does not need one).
    pub no_jump_cache: bool,
    pub budget: u64,
    /// `ctx.counters` (baseline tier-up countdowns).
    pub counters: Vec<u32>,
}

/// Runs `codes[entry]` (the translation of `blocks[entry]`) from `cpu` with `blocks`
/// marked `in_jc` in the jump cache.
pub fn run_translated(
    blocks: &[Entry],
    codes: &[Vec<u8>],
    entry: usize,
    how: &mut Context,
    cpu: &Cpu,
    mem: &[u8],
    perms: &[u8],
) -> Run {
    with_arena(|arena| {
        let codes: Vec<Code<'_>> = codes.iter().map(|c| arena.add(c)).collect();
        run_placed(blocks, &codes, entry, how, cpu, mem, perms)
    })
}

fn run_placed(
    blocks: &[Entry],
    codes: &[Code<'_>],
    entry: usize,
    how: &mut Context,
    cpu: &Cpu,
    mem: &[u8],
    perms: &[u8],
) -> Run {
    assert!(perms.len() <= TABLE_BYTES);
    let mut buf = vec![0u8; TABLE_BYTES + mem.len()];
    buf[..perms.len()].copy_from_slice(perms);
    buf[TABLE_BYTES..].copy_from_slice(mem);
    // Every key empty (u64::MAX); four u64 words per 32-byte entry.
    let mut jc: Vec<[u64; 4]> = vec![[u64::MAX, 0, 0, 0]; SHAPE.len];
    for (e, code) in blocks.iter().zip(codes) {
        if e.in_jc {
            let slot = &mut jc[e.jc_index()];
            assert_eq!(slot[0], u64::MAX, "test bug: jump-cache collision");
            *slot = [e.start(), code.ptr() as u64, 0, 0];
        }
    }
    let (table, guest) = buf.split_at_mut(TABLE_BYTES);
    let mut c = cpu.clone();
    c.pc = blocks[entry].start();
    let mut ctx = JitContext::new(
        c,
        guest.as_mut_ptr(),
        table.as_ptr(),
        guest.len() as u64,
        &FLAT_HELPERS,
    );
    if !how.no_jump_cache {
        ctx.jump_cache = jc.as_ptr().cast();
    }
    ctx.jc_mask = SHAPE.len as u64 - 1;
    ctx.jc_shift = u64::from(SHAPE.shift);
    ctx.chain_budget = how.budget;
    ctx.counters = how.counters.as_mut_ptr();
    let code = codes[entry];
    let st = if how.chained {
        // SAFETY: the trampoline is a chained one; every block in `codes` (the ones in
        // `jc` among them) was translated with chaining by a translator or baseline
        // tier for `SHAPE` and this context's layout (the table right below memory, as
        // `ctx.perms` says) and stays mapped; `ctx` points at `guest`, `table`, `jc` and
        // `counters` (one per counter index the blocks use), alive and not otherwise
        // borrowed during the call.
        with_trampoline(|t| unsafe { t.call_trampoline(&mut ctx, code.ptr()) })
    } else {
        // SAFETY: as above for an unchained block, entered directly; it reads no jump
        // cache.
        unsafe { arena::call(code, &mut ctx) }
    };
    let mut hits: Vec<u64> = blocks
        .iter()
        .map(|e| {
            if e.in_jc {
                jc[e.jc_index()][2] >> 32
            } else {
                0
            }
        })
        .collect();
    let mem = guest.to_vec();
    if st == status::SLOW_PATH || st == status::HOT {
        let (out, flow) = reference(
            blocks,
            how.chained,
            ctx.cpu.clone(),
            mem,
            perms,
            ctx.chain_budget,
            None,
        );
        for (h, more) in hits.iter_mut().zip(&flow.hits) {
            *h += more;
        }
        return Run {
            out,
            flow: Flow {
                budget: flow.budget,
                hits,
            },
            status: st,
        };
    }
    let exit = ctx.exit_for(st);
    assert!(
        exit.is_some() || st == status::CONTINUE,
        "unknown status {st}"
    );
    Run {
        out: Outcome {
            cpu: ctx.cpu,
            exit,
            mem,
        },
        flow: Flow {
            budget: ctx.chain_budget,
            hits,
        },
        status: st,
    }
}

/// The disassembly of a program's blocks, with their jump-cache marks.
pub fn listing(blocks: &[Entry]) -> String {
    blocks
        .iter()
        .map(|e| {
            let jc = if e.in_jc { " (in the jump cache)" } else { "" };
            format!("  block {:#x}{jc}:\n{}", e.start(), super::disasm(&e.block))
        })
        .collect()
}

/// The differences between a translated run and the reference (empty when none).
pub fn compare(got: &Run, want: &(Outcome, Flow)) -> String {
    let mut d = super::diff(&got.out, &want.0);
    if got.flow.budget != want.1.budget {
        d += &format!(
            "budget left: jit {} reference {}\n",
            got.flow.budget, want.1.budget
        );
    }
    if got.flow.hits != want.1.hits {
        d += &format!(
            "jump-cache hits: jit {:?} reference {:?}\n",
            got.flow.hits, want.1.hits
        );
    }
    d
}
