//! Crosscheck (`vmjit run --crosscheck`): the reference interpreter runs as a shadow VM
//! beside the primary VM (the JIT exactly as configured, or the interpreter), and the
//! two are compared as they go. The first divergence ends the run with a report.
//!
//! **Protocol.** The shadow starts as an exact copy of the primary after loading
//! (registers, every mapping with its contents, so the auxv random bytes too). Then, one
//! step at a time: the primary runs one dispatch step (one entry into translated code,
//! which chains at most [`CrosscheckConfig::interval`] transfers before it returns, or
//! one interpreted block); the shadow's interpreter retires exactly as many instructions
//! (`rv64::Interpreter::run_exact`) and must stop the same way (an `ecall`, a fault, ...
//! at the same pc); then pc, `instret`, the x and f registers, `fflags`, `frm` and the
//! LR/SC reservation are compared. At an `ecall` guest memory is compared too (so the
//! call's input buffers are), the primary performs the call, and the shadow takes its
//! effects: every register (the result, pc, `instret`) and every change the call made to
//! guest memory and the address space, from the primary memory's change log
//! ([`GuestMemory::start_change_log`]). Memory is also compared every
//! [`MEMORY_PERIOD`] instructions and when the run ends.
//!
//! **Invariants.**
//! - The shadow never performs a system call or reads host state: its only inputs are
//!   the primary's (system-call effects, and `rdtime` values, which the primary records
//!   and the shadow replays through `rv64::clock`).
//! - Between two steps, both have retired the same number of instructions; a step's
//!   comparison covers everything both did in it.
//! - A divergence is reported once, and the run ends there ([`GuestExit::Diverged`],
//!   exit status [`DIVERGENCE_EXIT_CODE`]).
//!
//! Locating a divergence: registers are compared after every step, so a register
//! divergence lies in the last step (one translated entry and the blocks it chained to).
//! The shadow keeps an undo record of that step's stores, so it can go back to where the
//! step started; the step is then replayed on a copy of that state, the primary's code
//! one block at a time (no chaining) beside the interpreter, which names the first
//! guest block whose translated code computes something else. A difference found only in
//! memory lies somewhere since the last memory comparison; the report lists the last
//! translated entries the primary made.

use std::collections::VecDeque;
use std::fmt;

use rv64::clock::{self, ClockMode};
use rv64::disasm::{FREG, XREG};
use rv64::{Cpu, Exit, Interpreter, MemFault, Memory};

use crate::dispatch::{self, CHUNK, SLACK, TraceBuf};
use crate::jit::{CodeTier, Observer};
use crate::memory::{GuestMemory, MemDifference, MemoryError, PERM_MAPPED, PERM_R, PERM_W};
use crate::vm::{GuestExit, Vm};

/// Default [`CrosscheckConfig::interval`].
pub const DEFAULT_INTERVAL: u64 = 16;

/// Default [`CrosscheckConfig::memory_period`] (a comparison reads every page either
/// VM has in host memory, about a millisecond for a guest with a few MiB in use).
pub const MEMORY_PERIOD: u64 = 1 << 22;

/// vmjit's exit status after a divergence (EX_SOFTWARE of sysexits.h: an internal error
/// of vmjit, not the guest's status).
pub const DIVERGENCE_EXIT_CODE: i32 = 70;

/// Translated entries the report lists.
const RECENT: usize = 16;

/// Guest blocks a localising replay runs at most (a step is one entry and at most
/// `interval` chained blocks; more means the replay went elsewhere).
const REPLAY_BLOCKS: usize = 1 << 12;

/// How a crosscheck runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CrosscheckConfig {
    /// Chained transfers translated code makes before it returns to the dispatcher,
    /// where the two VMs are compared (the JIT's own limit is 16 384). 0 returns after
    /// every translated block: the most precise comparison, but chaining is not
    /// exercised.
    pub interval: u64,
    /// Guest instructions between two memory comparisons besides those at system
    /// calls and at the end; 0 compares after every step, which locates a stray store
    /// as precisely as a register divergence (slow: each comparison reads all the
    /// memory either VM has in host memory).
    pub memory_period: u64,
    /// List every register in the report, not only those that differ.
    pub all_registers: bool,
    /// Corrupts the primary, to test that divergences are found and reported.
    #[doc(hidden)]
    pub inject: Option<Injection>,
}

impl Default for CrosscheckConfig {
    fn default() -> Self {
        CrosscheckConfig {
            interval: DEFAULT_INTERVAL,
            memory_period: MEMORY_PERIOD,
            all_registers: false,
            inject: None,
        }
    }
}

/// A mistranslation injected into the primary, for vmjit's own tests: the first entry
/// into translated code that returns with at least `after` instructions retired picks
/// the broken code, and from then on, whenever translated code entered at that pc
/// returns to the dispatcher, it has done something wrong.
#[doc(hidden)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Injection {
    /// The bits of `mask` in integer register `reg` are flipped.
    Register { after: u64, reg: u8, mask: u64 },
    /// The bits of `mask` are set in the 8 bytes at `addr`, by a guest store (so the
    /// page must be writable).
    Memory { after: u64, addr: u64, mask: u64 },
}

/// The state of an [`Injection`]: the entry pc it breaks, once chosen.
#[derive(Clone, Copy, Debug)]
struct BrokenBlock {
    inject: Injection,
    pc: Option<u64>,
}

/// What the primary ran in one step.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ran {
    /// The interpreter ran the block at `pc`.
    Interpreted { pc: u64 },
    /// Translated code was entered at `pc` (of `tier`, when the JIT knows it); when it
    /// left with a slow-path exit at `slow_path`, the interpreter ran the rest of that
    /// block.
    Translated {
        pc: u64,
        tier: Option<CodeTier>,
        slow_path: Option<u64>,
    },
    /// One instruction at `pc` was executed by itself (near `--max-insns`).
    Stepped { pc: u64 },
    /// Nothing ran (the JIT only tiered up or published code).
    Nothing,
}

impl Ran {
    /// Where the step began, if anything ran.
    pub fn pc(&self) -> Option<u64> {
        match *self {
            Ran::Interpreted { pc } | Ran::Translated { pc, .. } | Ran::Stepped { pc } => Some(pc),
            Ran::Nothing => None,
        }
    }
}

/// One entry of the primary into translated code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Entry {
    pub pc: u64,
    pub tier: Option<CodeTier>,
    /// Instructions retired when it was entered.
    pub instret: u64,
}

/// The comparison that found a divergence.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CheckPoint {
    /// After a dispatch step.
    Step,
    /// Before system call `nr`.
    Syscall { nr: u64 },
    /// The periodic memory comparison.
    Periodic,
    /// When the run ended (a fault, an illegal instruction, `--max-insns`).
    End,
    /// Applying a system call's memory changes to the shadow failed.
    Replay,
}

/// A register (or other architectural value) whose values differ.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegisterDiff {
    pub name: &'static str,
    pub primary: u64,
    pub shadow: u64,
}

/// The guest block a localising replay found first computing something else.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Localised {
    /// What ran: the entry (translated code and its tier, or the interpreter).
    pub ran: Ran,
    /// Instructions retired before that block.
    pub instret: u64,
    /// pc after the block on the primary and on the interpreter.
    pub primary_pc: u64,
    pub shadow_pc: u64,
    /// The registers that differ after that block.
    pub registers: Vec<RegisterDiff>,
    /// The first memory difference after that block.
    pub memory: Option<MemDifference>,
    /// Disassembly of the block.
    pub code: Vec<String>,
}

/// Everything the report of a divergence says (`Display` prints it).
#[derive(Clone, Debug, PartialEq)]
pub struct Divergence {
    pub point: CheckPoint,
    /// Instructions the primary had retired at the comparison.
    pub instret: u64,
    /// Instructions retired when the last step began.
    pub step_start: u64,
    pub primary_pc: u64,
    pub shadow_pc: u64,
    /// What the primary ran in the last step.
    pub ran: Ran,
    /// How the two stopped, when that differs.
    pub exits: Option<(Exit, Exit)>,
    pub registers: Vec<RegisterDiff>,
    /// The first memory difference, when memory was compared.
    pub memory: Option<MemDifference>,
    /// `instret` at the last memory comparison that found none.
    pub memory_agreed_at: u64,
    /// `rdtime` values the primary read and the shadow did not.
    pub clock_reads_left: usize,
    /// The last translated entries, oldest first.
    pub recent: Vec<Entry>,
    /// Disassembly of the block the last step started at, and of the code at pc.
    pub code: Vec<String>,
    pub at_pc: Vec<String>,
    /// Why the shadow could not take a system call's effects.
    pub replay_error: Option<String>,
    /// The block a replay of the last step found first diverging; `None` when there
    /// was nothing to replay, and a note when the replay did not diverge.
    pub localised: Option<Localised>,
    pub localise_note: Option<String>,
    /// Both register files, when all registers were asked for.
    pub all: Option<Box<(Cpu, Cpu)>>,
    /// The primary's engine ("the JIT" or "the interpreter").
    pub engine: &'static str,
}

/// The shadow VM: registers, memory and the reference interpreter.
struct Shadow {
    cpu: Cpu,
    mem: GuestMemory,
    interp: Interpreter,
    /// The old contents of every store of the current step, oldest first: address,
    /// value (little endian), size in bytes.
    undo: Vec<(u64, u64, u8)>,
}

/// The shadow's memory as its interpreter sees it: stores note the bytes they overwrite.
struct Recording<'a> {
    mem: &'a mut GuestMemory,
    undo: &'a mut Vec<(u64, u64, u8)>,
}

impl Recording<'_> {
    /// Notes the `size` bytes at `addr` of a page the guest cannot read (a store's
    /// old contents are usually read with an ordinary load).
    #[cold]
    fn note_unreadable(&mut self, addr: u64, size: u8) {
        let mut old = [0u8; 8];
        if self
            .mem
            .read_bytes_mapped(addr, &mut old[..usize::from(size)])
            .is_ok()
        {
            self.undo.push((addr, u64::from_le_bytes(old), size));
        }
    }
}

macro_rules! recorded_store {
    ($name:ident, $load:ident, $t:ty) => {
        #[inline]
        fn $name(&mut self, addr: u64, value: $t) -> Result<(), MemFault> {
            let size = size_of::<$t>() as u8;
            match self.mem.$load(addr) {
                Ok(old) => self.undo.push((addr, u64::from(old), size)),
                Err(_) => self.note_unreadable(addr, size),
            }
            self.mem.$name(addr, value)
        }
    };
}

impl Memory for Recording<'_> {
    fn load8(&self, addr: u64) -> Result<u8, MemFault> {
        self.mem.load8(addr)
    }
    fn load16(&self, addr: u64) -> Result<u16, MemFault> {
        self.mem.load16(addr)
    }
    fn load32(&self, addr: u64) -> Result<u32, MemFault> {
        self.mem.load32(addr)
    }
    fn load64(&self, addr: u64) -> Result<u64, MemFault> {
        self.mem.load64(addr)
    }
    fn fetch16(&self, addr: u64) -> Result<u16, MemFault> {
        self.mem.fetch16(addr)
    }
    recorded_store!(store8, load8, u8);
    recorded_store!(store16, load16, u16);
    recorded_store!(store32, load32, u32);
    recorded_store!(store64, load64, u64);
}

impl Shadow {
    /// Retires instructions until `target` and, when the primary stopped at an
    /// instruction without retiring it (an `ecall`, a fault, ...), runs that one too,
    /// which must stop the same way.
    fn catch_up(&mut self, target: u64, primary: Exit) -> Exit {
        self.undo.clear();
        let Some(n) = target.checked_sub(self.cpu.instret) else {
            // Only a corrupted primary `instret` goes backwards; the comparison says so.
            return Exit::Budget;
        };
        let mut mem = Recording {
            mem: &mut self.mem,
            undo: &mut self.undo,
        };
        let e = self.interp.run_exact(&mut self.cpu, &mut mem, n);
        if e != Exit::Budget || primary == Exit::Budget || primary.retired() {
            return e;
        }
        self.interp.run_exact(&mut self.cpu, &mut mem, 1)
    }

    /// Undoes the stores of the current step (not its registers).
    fn undo_step(&mut self) {
        while let Some((addr, old, size)) = self.undo.pop() {
            let _ = self
                .mem
                .write_bytes_privileged(addr, &old.to_le_bytes()[..usize::from(size)]);
        }
    }
}

/// The observer of the primary's JIT: notes what each step ran.
struct Recorder<'a> {
    recent: &'a mut VecDeque<Entry>,
    ran: Ran,
    broken: Option<&'a mut BrokenBlock>,
    /// Run the code the cache holds, translating nothing (a localising replay).
    frozen: bool,
}

impl Observer for Recorder<'_> {
    const STEP: bool = true;

    fn entered(&mut self, pc: u64, tier: Option<CodeTier>, instret: u64) {
        if self.recent.len() == RECENT {
            self.recent.pop_front();
        }
        self.recent.push_back(Entry { pc, tier, instret });
        self.ran = Ran::Translated {
            pc,
            tier,
            slow_path: None,
        };
    }

    fn returned(&mut self, pc: u64, cpu: &mut Cpu, mem: &mut GuestMemory) {
        let Some(b) = self.broken.as_deref_mut() else {
            return;
        };
        let after = match b.inject {
            Injection::Register { after, .. } | Injection::Memory { after, .. } => after,
        };
        if b.pc.is_none() && cpu.instret >= after {
            b.pc = Some(pc);
        }
        if b.pc != Some(pc) {
            return;
        }
        match b.inject {
            Injection::Register { reg, mask, .. } => {
                if let Some(r) = cpu.x.get_mut(usize::from(reg))
                    && reg != 0
                {
                    *r ^= mask;
                }
            }
            Injection::Memory { addr, mask, .. } => {
                if let Ok(v) = mem.load64(addr) {
                    let _ = mem.store64(addr, v | mask);
                }
            }
        }
    }

    fn slow_path(&mut self, at: u64) {
        if let Ran::Translated { slow_path, .. } = &mut self.ran {
            *slow_path = Some(at);
        }
    }

    fn interpreted(&mut self, pc: u64) {
        self.ran = Ran::Interpreted { pc };
    }

    fn may_translate(&self) -> bool {
        !self.frozen
    }
}

/// The crosscheck state of a [`Vm`].
pub(crate) struct Crosscheck {
    config: CrosscheckConfig,
    shadow: Shadow,
    recent: VecDeque<Entry>,
    memory_agreed_at: u64,
    broken: Option<BrokenBlock>,
}

impl Crosscheck {
    /// A shadow of `vm` as it is now (after loading, before it ran).
    pub(crate) fn new(vm: &Vm, config: CrosscheckConfig) -> Result<Self, MemoryError> {
        Ok(Crosscheck {
            shadow: Shadow {
                cpu: vm.cpu.clone(),
                mem: vm.mem.duplicate()?,
                interp: Interpreter::new(),
                undo: Vec::new(),
            },
            recent: VecDeque::with_capacity(RECENT),
            memory_agreed_at: vm.cpu.instret,
            broken: config.inject.map(|inject| BrokenBlock { inject, pc: None }),
            config,
        })
    }
}

/// Runs `vm` with its crosscheck to the end or to the first divergence (then
/// [`GuestExit::Diverged`], with the report left in `vm`).
pub(crate) fn run(vm: &mut Vm, cc: &mut Crosscheck) -> GuestExit {
    vm.mem.start_change_log();
    if let Some(jit) = vm.jit.as_deref_mut() {
        jit.set_chain_limit(cc.config.interval);
    }
    clock::clear();
    let mut trace = TraceBuf::default();
    let end = run_steps(vm, cc, &mut trace);
    trace.flush();
    vm.mem.stop_change_log();
    clock::set_mode(ClockMode::Host);
    clock::clear();
    match end {
        Ok(exit) => exit,
        Err(d) => {
            let exit = GuestExit::Diverged {
                pc: d.primary_pc,
                instret: d.instret,
            };
            vm.divergence = Some(d);
            exit
        }
    }
}

fn run_steps(
    vm: &mut Vm,
    cc: &mut Crosscheck,
    trace: &mut TraceBuf,
) -> Result<GuestExit, Box<Divergence>> {
    loop {
        let left = vm.max_insns.map(|max| max.saturating_sub(vm.cpu.instret));
        if left == Some(0) {
            cc.check_memory(vm, CheckPoint::End, Ran::Nothing, vm.cpu.instret)?;
            return Ok(GuestExit::InsnLimit { pc: vm.cpu.pc });
        }
        let start = vm.cpu.instret;
        let start_cpu = cc.shadow.cpu.clone();
        clock::set_mode(ClockMode::Record);
        let interval = cc.config.interval;
        let (exit, ran) = primary_step(vm, &mut cc.recent, cc.broken.as_mut(), left, interval);
        clock::set_mode(ClockMode::Replay);
        let shadow_exit = cc.shadow.catch_up(vm.cpu.instret, exit);
        clock::set_mode(ClockMode::Host);
        // Changes made outside guest code other than by a system call (none today)
        // are the shadow's too.
        let changes = vm.mem.take_changes();
        if !changes.is_empty()
            && let Err(e) = cc.shadow.mem.apply_changes(&changes, &vm.mem)
        {
            return Err(cc.replay_failed(vm, start, ran, &e));
        }
        if let Some(d) = cc.compare_step(vm, start, exit, shadow_exit, ran) {
            return Err(cc.localise(vm, d, start_cpu));
        }
        match exit {
            Exit::Budget => {
                if vm.cpu.instret - cc.memory_agreed_at >= cc.config.memory_period {
                    cc.check_memory(vm, CheckPoint::Periodic, ran, start)
                        .map_err(|d| cc.localise(vm, d, start_cpu))?;
                }
            }
            Exit::Ecall => {
                let nr = vm.cpu.x[17];
                cc.check_memory(vm, CheckPoint::Syscall { nr }, ran, start)
                    .map_err(|d| cc.localise(vm, d, start_cpu))?;
                let r = dispatch::handle_with(vm, exit, trace, Some(&mut cc.shadow.interp));
                let changes = vm.mem.take_changes();
                if let Err(e) = cc.shadow.mem.apply_changes(&changes, &vm.mem) {
                    return Err(cc.replay_failed(vm, start, ran, &e));
                }
                cc.shadow.cpu = vm.cpu.clone();
                if let Some(end) = r {
                    return Ok(end);
                }
            }
            Exit::FenceI => {
                // The shadow's interpreter flushed its decoded blocks itself.
                dispatch::handle_with(vm, exit, trace, None);
            }
            _ => {
                cc.check_memory(vm, CheckPoint::End, ran, start)
                    .map_err(|d| cc.localise(vm, d, start_cpu))?;
                if let Some(end) = dispatch::handle_with(vm, exit, trace, None) {
                    return Ok(end);
                }
            }
        }
    }
}

/// One dispatch step of the primary: one entry into translated code or one interpreted
/// block (one instruction near the `--max-insns` limit, as the dispatch loop does).
fn primary_step(
    vm: &mut Vm,
    recent: &mut VecDeque<Entry>,
    broken: Option<&mut BrokenBlock>,
    left: Option<u64>,
    interval: u64,
) -> (Exit, Ran) {
    let pc = vm.cpu.pc;
    if left.is_some_and(|l| l <= SLACK) {
        return (dispatch::step(vm, None), Ran::Stepped { pc });
    }
    let budget = left.map_or(CHUNK, |l| l - SLACK);
    match vm.jit.as_deref_mut() {
        Some(jit) => {
            let mut rec = Recorder {
                recent,
                ran: Ran::Nothing,
                broken,
                frozen: false,
            };
            let exit = jit.run_observed(&mut vm.cpu, &mut vm.mem, &mut vm.interp, budget, &mut rec);
            (exit, rec.ran)
        }
        None => {
            // As many blocks as translated code would chain, within the budget (which
            // a block overshoots by less than SLACK, as in the dispatch loop).
            let start = vm.cpu.instret;
            let mut exit = Exit::Budget;
            for _ in 0..=interval {
                if let Err(e) = vm.interp.run_block(&mut vm.cpu, &mut vm.mem) {
                    exit = e;
                    break;
                }
                if vm.cpu.instret - start >= budget {
                    break;
                }
            }
            (exit, Ran::Interpreted { pc })
        }
    }
}

/// The architectural values of `a` and `b` that differ.
fn register_diffs(a: &Cpu, b: &Cpu) -> Vec<RegisterDiff> {
    let mut out = Vec::new();
    let mut cmp = |name: &'static str, x: u64, y: u64| {
        if x != y {
            out.push(RegisterDiff {
                name,
                primary: x,
                shadow: y,
            });
        }
    };
    cmp("pc", a.pc, b.pc);
    cmp("instret", a.instret, b.instret);
    for (i, name) in XREG.iter().enumerate() {
        cmp(name, a.x[i], b.x[i]);
    }
    for (i, name) in FREG.iter().enumerate() {
        cmp(name, a.f[i], b.f[i]);
    }
    cmp("fflags", a.fflags.into(), b.fflags.into());
    cmp("frm", a.frm.into(), b.frm.into());
    cmp("reservation", a.reservation, b.reservation);
    out
}

impl Crosscheck {
    /// Compares the state after a step; `Some` describes a divergence.
    fn compare_step(
        &mut self,
        vm: &Vm,
        start: u64,
        exit: Exit,
        shadow_exit: Exit,
        ran: Ran,
    ) -> Option<Box<Divergence>> {
        let clock_reads_left = clock::pending();
        if vm.cpu == self.shadow.cpu && exit == shadow_exit && clock_reads_left == 0 {
            return None;
        }
        clock::clear();
        let registers = register_diffs(&vm.cpu, &self.shadow.cpu);
        let mut d = self.divergence(vm, CheckPoint::Step, start, ran);
        d.registers = registers;
        d.exits = (exit != shadow_exit).then_some((exit, shadow_exit));
        d.clock_reads_left = clock_reads_left;
        d.memory = vm.mem.first_difference(&self.shadow.mem);
        Some(d)
    }

    /// Compares the two memories; `Err` describes a divergence.
    fn check_memory(
        &mut self,
        vm: &Vm,
        point: CheckPoint,
        ran: Ran,
        start: u64,
    ) -> Result<(), Box<Divergence>> {
        match vm.mem.first_difference(&self.shadow.mem) {
            None => {
                self.memory_agreed_at = vm.cpu.instret;
                Ok(())
            }
            Some(diff) => {
                let mut d = self.divergence(vm, point, start, ran);
                d.memory = Some(diff);
                Err(d)
            }
        }
    }

    fn replay_failed(&self, vm: &Vm, start: u64, ran: Ran, e: &MemoryError) -> Box<Divergence> {
        let mut d = self.divergence(vm, CheckPoint::Replay, start, ran);
        d.replay_error = Some(e.to_string());
        d.memory = vm.mem.first_difference(&self.shadow.mem);
        d
    }

    /// A report of the state now, without the comparison's findings.
    fn divergence(&self, vm: &Vm, point: CheckPoint, start: u64, ran: Ran) -> Box<Divergence> {
        let code = ran
            .pc()
            .map(|pc| disassemble_block(&vm.mem, pc))
            .unwrap_or_default();
        Box::new(Divergence {
            point,
            instret: vm.cpu.instret,
            step_start: start,
            primary_pc: vm.cpu.pc,
            shadow_pc: self.shadow.cpu.pc,
            ran,
            exits: None,
            registers: Vec::new(),
            memory: None,
            memory_agreed_at: self.memory_agreed_at,
            clock_reads_left: 0,
            recent: self.recent.iter().copied().collect(),
            code,
            at_pc: disassemble_at(&vm.mem, vm.cpu.pc, 4),
            replay_error: None,
            localised: None,
            localise_note: None,
            all: self
                .config
                .all_registers
                .then(|| Box::new((vm.cpu.clone(), self.shadow.cpu.clone()))),
            engine: if vm.jit.is_some() {
                "the JIT"
            } else {
                "the interpreter"
            },
        })
    }

    /// Adds to a divergence that arose in the last step (registers, or memory that
    /// was identical when the step began) the guest block where it starts: the shadow
    /// goes back to where the step began, and the step is replayed from there with the
    /// primary's code one block at a time beside the interpreter.
    fn localise(&mut self, vm: &mut Vm, mut d: Box<Divergence>, start_cpu: Cpu) -> Box<Divergence> {
        let in_step = d.point == CheckPoint::Step || d.memory_agreed_at == d.step_start;
        if vm.jit.is_none() || !matches!(d.ran, Ran::Translated { .. }) || !in_step {
            return d;
        }
        self.shadow.undo_step();
        self.shadow.cpu = start_cpu;
        // The replay's primary works on a copy, so the shadow's memory stays as it was
        // when the step began.
        let mut mem = match self.shadow.mem.duplicate() {
            Ok(m) => m,
            Err(e) => {
                d.localise_note = Some(format!("cannot copy guest memory to replay it ({e})"));
                return d;
            }
        };
        let mut cpu = self.shadow.cpu.clone();
        let target = d.instret;
        let Some(jit) = vm.jit.as_deref_mut() else {
            return d;
        };
        jit.set_chain_limit(0);
        let mut recent = VecDeque::new();
        for _ in 0..REPLAY_BLOCKS {
            if cpu.instret >= target {
                break;
            }
            let before = cpu.instret;
            let pc = cpu.pc;
            let mut rec = Recorder {
                recent: &mut recent,
                ran: Ran::Nothing,
                broken: self.broken.as_mut(),
                frozen: true,
            };
            clock::set_mode(ClockMode::Record);
            let exit = jit.run_observed(&mut cpu, &mut mem, &mut vm.interp, CHUNK, &mut rec);
            clock::set_mode(ClockMode::Replay);
            let ran = rec.ran;
            let shadow_exit = self.shadow.catch_up(cpu.instret, exit);
            clock::set_mode(ClockMode::Host);
            let clock_left = clock::pending();
            clock::clear();
            let registers = register_diffs(&cpu, &self.shadow.cpu);
            let memory = mem.first_difference(&self.shadow.mem);
            if !registers.is_empty() || memory.is_some() || exit != shadow_exit || clock_left > 0 {
                d.localised = Some(Localised {
                    ran,
                    instret: before,
                    primary_pc: cpu.pc,
                    shadow_pc: self.shadow.cpu.pc,
                    registers,
                    memory,
                    code: disassemble_block(&mem, pc),
                });
                return d;
            }
            if exit != Exit::Budget {
                break;
            }
        }
        d.localise_note = Some(format!(
            "replaying the step one block at a time, without chaining, did not diverge \
             (up to instret {}): the difference needs chained transfers, or does not \
             come from the code this step ran",
            cpu.instret
        ));
        d
    }
}

/// Disassembly of the guest block at `pc` (the interpreter's boundaries).
fn disassemble_block(mem: &GuestMemory, pc: u64) -> Vec<String> {
    match rv64::decode_block(mem, pc) {
        Ok(block) => block
            .iter()
            .map(|(at, insn)| format!("{at:#x}:  {}", dispatch::disasm(insn, *at)))
            .collect(),
        Err(_) => vec![format!("{pc:#x}:  (not readable)")],
    }
}

/// Disassembly of up to `n` instructions from `pc`.
fn disassemble_at(mem: &GuestMemory, pc: u64, n: usize) -> Vec<String> {
    let mut out = Vec::new();
    let mut at = pc;
    for _ in 0..n {
        let Ok(raw) = rv64::fetch(mem, at) else {
            if out.is_empty() {
                out.push(format!("{at:#x}:  (not readable)"));
            }
            break;
        };
        match rv64::decode(raw) {
            Ok(insn) => {
                out.push(format!("{at:#x}:  {}", dispatch::disasm(&insn, at)));
                at = at.wrapping_add(u64::from(insn.len));
            }
            Err(_) => {
                out.push(format!("{at:#x}:  (illegal {raw:#x})"));
                break;
            }
        }
    }
    out
}

fn tier_name(ran: &Ran, engine: &str) -> String {
    match *ran {
        Ran::Interpreted { pc } => format!("the interpreter ran the block at {pc:#x}"),
        Ran::Translated {
            pc,
            tier,
            slow_path,
        } => {
            let tier = tier.map_or("translated".to_string(), |t| t.to_string());
            let mut s = format!("{tier} code entered at {pc:#x}");
            if let Some(at) = slow_path {
                s.push_str(&format!(
                    " (left at {at:#x} for the interpreter, which ran the rest of that block)"
                ));
            }
            s
        }
        Ran::Stepped { pc } => format!("{engine} executed the instruction at {pc:#x} alone"),
        Ran::Nothing => "nothing (the JIT only published code)".to_string(),
    }
}

fn perm_text(p: u8) -> String {
    if p & PERM_MAPPED == 0 {
        return "unmapped".to_string();
    }
    let bit = |b, c| if p & b != 0 { c } else { '-' };
    [
        bit(PERM_R, 'r'),
        bit(PERM_W, 'w'),
        bit(crate::memory::PERM_X, 'x'),
    ]
    .iter()
    .collect()
}

fn memory_text(m: &MemDifference) -> String {
    match *m {
        MemDifference::Permission { addr, ours, theirs } => format!(
            "the page at {addr:#x} is {} on the primary, {} on the interpreter",
            perm_text(ours),
            perm_text(theirs)
        ),
        MemDifference::Contents {
            addr,
            word,
            ours,
            theirs,
        } => format!(
            "first difference at {addr:#x}: the 8 bytes at {word:#x} are {ours:#018x} on the \
             primary, {theirs:#018x} on the interpreter"
        ),
    }
}

fn exit_text(e: &Exit) -> String {
    match *e {
        Exit::Ecall => "at an ecall".to_string(),
        Exit::Ebreak => "at an ebreak".to_string(),
        Exit::FenceI => "after a fence.i".to_string(),
        Exit::Illegal { pc, raw } => format!("at an illegal instruction {raw:#x} at {pc:#x}"),
        Exit::Fault { pc, fault } => format!(
            "at a {:?} fault at {:#x} (pc {pc:#x})",
            fault.kind, fault.addr
        ),
        Exit::Budget => "after the instructions it was to run".to_string(),
    }
}

fn write_registers(f: &mut fmt::Formatter<'_>, indent: &str, regs: &[RegisterDiff]) -> fmt::Result {
    for r in regs {
        writeln!(
            f,
            "{indent}{:<12}{:#018x} / {:#018x}",
            r.name, r.primary, r.shadow
        )?;
    }
    Ok(())
}

impl fmt::Display for Divergence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "vmjit: crosscheck: {} and the interpreter diverged after {} instructions",
            self.engine, self.instret
        )?;
        let when = match self.point {
            CheckPoint::Step => "after a step (registers compared)".to_string(),
            CheckPoint::Syscall { nr } => format!(
                "before system call {nr} ({}) (memory compared)",
                crate::sysnames::name(nr).unwrap_or("unknown")
            ),
            CheckPoint::Periodic => "at a memory comparison between system calls".to_string(),
            CheckPoint::End => "when the run ended (memory compared)".to_string(),
            CheckPoint::Replay => "while the interpreter took a system call's effects".to_string(),
        };
        writeln!(f, "  found:      {when}")?;
        writeln!(
            f,
            "  last step:  {} (instret {}..{})",
            tier_name(&self.ran, self.engine),
            self.step_start,
            self.instret
        )?;
        writeln!(
            f,
            "  pc:         {:#x} on the primary, {:#x} on the interpreter",
            self.primary_pc, self.shadow_pc
        )?;
        if let Some((a, b)) = &self.exits {
            writeln!(
                f,
                "  stopped:    the primary {}, the interpreter {}",
                exit_text(a),
                exit_text(b)
            )?;
        }
        if let Some(e) = &self.replay_error {
            writeln!(f, "  replay:     {e}")?;
        }
        if self.clock_reads_left > 0 {
            writeln!(
                f,
                "  clock:      the primary read the time CSR {} more times than the interpreter",
                self.clock_reads_left
            )?;
        }
        if !self.registers.is_empty() {
            writeln!(f, "  registers that differ (primary / interpreter):")?;
            write_registers(f, "    ", &self.registers)?;
        }
        match &self.memory {
            Some(m) => writeln!(f, "  memory:     {}", memory_text(m))?,
            None => writeln!(f, "  memory:     identical")?,
        }
        if self.point != CheckPoint::Step && self.memory.is_some() {
            writeln!(
                f,
                "              (it was identical at instret {}; the difference was made since)",
                self.memory_agreed_at
            )?;
        }
        if let Some(l) = &self.localised {
            writeln!(
                f,
                "  located:    replaying the step block by block, {} (instret {}) diverges first",
                tier_name(&l.ran, self.engine),
                l.instret
            )?;
            writeln!(
                f,
                "              after it, pc {:#x} on the primary, {:#x} on the interpreter",
                l.primary_pc, l.shadow_pc
            )?;
            if !l.registers.is_empty() {
                writeln!(
                    f,
                    "              registers that differ (primary / interpreter):"
                )?;
                write_registers(f, "                ", &l.registers)?;
            }
            if let Some(m) = &l.memory {
                writeln!(f, "              memory: {}", memory_text(m))?;
            }
            writeln!(f, "              the block:")?;
            for line in &l.code {
                writeln!(f, "                {line}")?;
            }
        }
        if let Some(note) = &self.localise_note {
            writeln!(f, "  located:    {note}")?;
        }
        if !self.code.is_empty() {
            writeln!(f, "  code where the last step started:")?;
            for line in &self.code {
                writeln!(f, "    {line}")?;
            }
        }
        if !self.at_pc.is_empty() {
            writeln!(f, "  code at the primary's pc:")?;
            for line in &self.at_pc {
                writeln!(f, "    {line}")?;
            }
        }
        if !self.recent.is_empty() {
            writeln!(
                f,
                "  last entries into translated code (instret, pc, tier; newest last):"
            )?;
            for e in &self.recent {
                let tier = e.tier.map_or("translated".to_string(), |t| t.to_string());
                writeln!(f, "    {:>14}  {:#x}  {tier}", e.instret, e.pc)?;
            }
        }
        if let Some(all) = &self.all {
            writeln!(f, "  all registers (primary / interpreter):")?;
            let (a, b) = &**all;
            let x = XREG.iter().zip(a.x.iter().zip(&b.x));
            let fr = FREG.iter().zip(a.f.iter().zip(&b.f));
            for (name, (p, s)) in x.chain(fr) {
                writeln!(f, "    {name:<12}{p:#018x} / {s:#018x}")?;
            }
            writeln!(
                f,
                "    {:<12}{:#x} / {:#x}",
                "fcsr",
                a.frm << 5 | a.fflags,
                b.frm << 5 | b.fflags
            )?;
            writeln!(
                f,
                "    {:<12}{:#x} / {:#x}",
                "reservation", a.reservation, b.reservation
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jit::JitConfig;
    use crate::loader::build;

    // Encoders for the few instructions the test programs use.
    fn i_type(op: u32, rd: u32, f3: u32, rs1: u32, imm: i32) -> u32 {
        ((imm as u32 & 0xfff) << 20) | (rs1 << 15) | (f3 << 12) | (rd << 7) | op
    }
    fn addi(rd: u32, rs1: u32, imm: i32) -> u32 {
        i_type(0x13, rd, 0, rs1, imm)
    }
    fn ld(rd: u32, rs1: u32, imm: i32) -> u32 {
        i_type(0x03, rd, 3, rs1, imm)
    }
    fn sd(rs2: u32, rs1: u32, imm: i32) -> u32 {
        let i = imm as u32;
        ((i >> 5 & 0x7f) << 25) | (rs2 << 20) | (rs1 << 15) | (3 << 12) | ((i & 0x1f) << 7) | 0x23
    }
    fn r_type(f7: u32, rd: u32, rs1: u32, rs2: u32) -> u32 {
        (f7 << 25) | (rs2 << 20) | (rs1 << 15) | (rd << 7) | 0x33
    }
    fn add(rd: u32, rs1: u32, rs2: u32) -> u32 {
        r_type(0, rd, rs1, rs2)
    }
    fn mul(rd: u32, rs1: u32, rs2: u32) -> u32 {
        r_type(1, rd, rs1, rs2)
    }
    fn lui(rd: u32, imm20: u32) -> u32 {
        (imm20 << 12) | (rd << 7) | 0x37
    }
    /// `bne rs1, rs2, off`.
    fn bne(rs1: u32, rs2: u32, off: i32) -> u32 {
        let o = off as u32;
        ((o >> 12 & 1) << 31)
            | ((o >> 5 & 0x3f) << 25)
            | (rs2 << 20)
            | (rs1 << 15)
            | (1 << 12)
            | ((o >> 1 & 0xf) << 8)
            | ((o >> 11 & 1) << 7)
            | 0x63
    }
    fn rdtime(rd: u32) -> u32 {
        i_type(0x73, rd, 2, 0, 0xc01)
    }
    const ECALL: u32 = 0x73;
    const SP: u32 = 2;
    const T0: u32 = 5;
    const T1: u32 = 6;
    const S0: u32 = 8;
    const S1: u32 = 9;
    const A0: u32 = 10;
    const A1: u32 = 11;
    const A2: u32 = 12;
    const A3: u32 = 13;
    const A4: u32 = 14;
    const A5: u32 = 15;
    const A7: u32 = 17;

    /// `ecall` of system call `nr` (a7 set first).
    fn syscall(nr: i32) -> [u32; 2] {
        [addi(A7, 0, nr), ECALL]
    }

    /// Loads a VM whose code (at the entry point) is `code`.
    fn load(tag: &str, code: &[u32]) -> Vm {
        let body: Vec<u8> = code.iter().flat_map(|w| w.to_le_bytes()).collect();
        let len = 64 + 56 + body.len() as u64;
        let elf = build::elf(243, 2, &[build::text(len)], &body);
        let dir = std::env::temp_dir().join(format!("vmjit-xc-{}-{tag}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join("prog");
        std::fs::write(&path, elf).expect("write program");
        let vm = Vm::load(&path, &[], &[]).expect("load");
        let _ = std::fs::remove_dir_all(&dir);
        vm
    }

    /// Thresholds low enough that the loop below reaches every tier, compiling on the
    /// guest thread (so the test does not depend on timing).
    fn eager_jit() -> JitConfig {
        JitConfig {
            compile_threads: 0,
            baseline_threshold: 10,
            baseline_runs: 200,
            hot_threshold: 10,
            tier2_threshold: 100,
            ..JitConfig::default()
        }
    }

    const ITERATIONS: u32 = 1 << 20;

    /// A loop of `ITERATIONS` with arithmetic and a store and load on the stack; exits
    /// with a checksum (`loop_checksum`).
    fn counting_loop() -> Vec<u32> {
        let mut code = vec![
            lui(T0, ITERATIONS >> 12),
            addi(T1, 0, 3),
            addi(A0, 0, 0),
            addi(A1, 0, 1),
            addi(SP, SP, -64),
            // loop:
            add(A0, A0, A1),
            mul(A1, A1, T1),
            addi(A1, A1, 1),
            sd(A0, SP, 8),
            ld(A2, SP, 8),
            add(A1, A1, A2),
            addi(T0, T0, -1),
            bne(T0, 0, -28),
            i_type(0x13, A0, 7, A0, 0x7f), // andi a0,a0,127
        ];
        code.extend(syscall(93));
        code
    }

    fn loop_checksum() -> i32 {
        let (mut a0, mut a1) = (0u64, 1u64);
        for _ in 0..ITERATIONS {
            a0 = a0.wrapping_add(a1);
            a1 = a1.wrapping_mul(3).wrapping_add(1).wrapping_add(a0);
        }
        (a0 & 0x7f) as i32
    }

    fn crosscheck(vm: &mut Vm, inject: Option<Injection>) {
        vm.enable_crosscheck(CrosscheckConfig {
            inject,
            ..CrosscheckConfig::default()
        })
        .expect("crosscheck");
    }

    #[test]
    fn a_loop_through_every_tier_crosschecks_without_divergence() {
        let mut vm = load("tiers", &counting_loop());
        vm.enable_jit(eager_jit()).expect("jit");
        crosscheck(&mut vm, None);
        let out = vm.run();
        assert_eq!(
            out.exit,
            GuestExit::Exited(loop_checksum()),
            "{:?}",
            vm.divergence()
        );
        assert_eq!(out.instructions, 5 + 8 * u64::from(ITERATIONS) + 3);
        let stats = vm.jit().expect("jit").stats();
        assert!(stats.baseline_translations > 0, "{stats:?}");
        assert!(stats.tier1_translations > 0, "{stats:?}");
        assert!(stats.tier2_translations > 0, "{stats:?}");
    }

    #[test]
    fn a_mistranslated_block_is_reported_with_its_pc_tier_and_register() {
        let mut vm = load("reg", &counting_loop());
        vm.enable_jit(eager_jit()).expect("jit");
        let inject = Injection::Register {
            after: 100_000,
            reg: A1 as u8,
            mask: 0x40,
        };
        crosscheck(&mut vm, Some(inject));
        let out = vm.run();
        let d = vm.divergence().expect("a divergence").clone();
        assert_eq!(
            out.exit,
            GuestExit::Diverged {
                pc: d.primary_pc,
                instret: d.instret
            }
        );
        assert_eq!(out.exit.exit_code(), DIVERGENCE_EXIT_CODE);
        assert_eq!(d.point, CheckPoint::Step);
        assert!(d.instret >= 100_000 && d.step_start < d.instret, "{d:?}");
        let Ran::Translated { pc, tier, .. } = d.ran else {
            panic!("the step ran translated code: {d:?}");
        };
        assert!(tier.is_some());
        // Only a1 differs, by the injected bit.
        assert_eq!(d.registers.len(), 1, "{d:?}");
        assert_eq!(d.registers[0].name, "a1");
        assert_eq!(d.registers[0].primary ^ d.registers[0].shadow, 0x40);
        assert_eq!(d.memory, None);
        // The replay finds the block the corruption comes from: the entry's own block.
        let l = d.localised.as_ref().expect("located");
        assert_eq!(l.ran.pc(), Some(pc), "{d:?}");
        assert_eq!(l.registers.len(), 1);
        assert_eq!(l.registers[0].name, "a1");
        assert_eq!(l.registers[0].primary ^ l.registers[0].shadow, 0x40);
        let text = d.to_string();
        for want in [
            "vmjit: crosscheck: the JIT and the interpreter diverged after".to_string(),
            format!("code entered at {pc:#x}"),
            "a1".to_string(),
            format!(
                "{:#018x} / {:#018x}",
                d.registers[0].primary, d.registers[0].shadow
            ),
            "located:    replaying the step block by block".to_string(),
            format!("{pc:#x}:  "),
        ] {
            assert!(text.contains(&want), "{want:?} missing from:\n{text}");
        }
    }

    #[test]
    fn a_stray_store_is_reported_with_its_address_and_both_values() {
        // A stack word far below anything the program touches.
        let addr = crate::layout::STACK_TOP - crate::layout::STACK_SIZE + 0x1008;
        let inject = Injection::Memory {
            after: 100_000,
            addr,
            mask: 0xff00,
        };
        let want = MemDifference::Contents {
            addr: addr + 1,
            word: addr,
            ours: 0xff00,
            theirs: 0,
        };
        // Memory compared every 4 Mi instructions: found later, not located.
        let mut vm = load("mem", &counting_loop());
        vm.enable_jit(eager_jit()).expect("jit");
        crosscheck(&mut vm, Some(inject));
        let out = vm.run();
        let d = vm.divergence().expect("a divergence");
        assert_eq!(out.exit.exit_code(), DIVERGENCE_EXIT_CODE);
        assert!(
            matches!(
                d.point,
                CheckPoint::Periodic | CheckPoint::Syscall { nr: 93 }
            ),
            "{d:?}"
        );
        assert!(d.registers.is_empty());
        assert_eq!(d.memory, Some(want));
        assert!(d.memory_agreed_at < 100_000);
        assert_eq!(d.localised, None);
        let text = d.to_string();
        let line = format!(
            "the 8 bytes at {addr:#x} are 0x000000000000ff00 on the primary, \
             0x0000000000000000 on the interpreter"
        );
        assert!(text.contains(&line), "{line:?} missing from:\n{text}");

        // Memory compared after every step: found in the step that stored, and the
        // replay names the block.
        let mut vm = load("mem0", &counting_loop());
        vm.enable_jit(eager_jit()).expect("jit");
        vm.enable_crosscheck(CrosscheckConfig {
            memory_period: 0,
            inject: Some(inject),
            ..CrosscheckConfig::default()
        })
        .expect("crosscheck");
        vm.run();
        let d = vm.divergence().expect("a divergence");
        assert_eq!(d.point, CheckPoint::Periodic);
        assert_eq!(d.memory, Some(want));
        assert_eq!(d.memory_agreed_at, d.step_start);
        let l = d.localised.as_ref().expect("located");
        assert_eq!(l.ran.pc(), d.ran.pc());
        assert!(l.registers.is_empty());
        assert_eq!(l.memory, Some(want));
    }

    #[test]
    fn system_call_results_written_to_memory_are_replayed_to_the_shadow() {
        // getrandom into the stack (host data the shadow cannot compute), loaded into a
        // register; mmap, a store there, brk up, munmap; exit.
        let mut code = vec![
            addi(SP, SP, -64),
            addi(A0, SP, 0),
            addi(A1, 0, 16),
            addi(A2, 0, 0),
        ];
        code.extend(syscall(278));
        code.extend([ld(S0, SP, 0), ld(S1, SP, 8)]);
        code.extend([
            addi(A0, 0, 0),
            lui(A1, 2),
            addi(A2, 0, 3),
            addi(A3, 0, 0x22),
            addi(A4, 0, -1),
            addi(A5, 0, 0),
        ]);
        code.extend(syscall(222));
        code.extend([sd(S0, A0, 8), addi(S1, A0, 0)]);
        code.extend([addi(A0, 0, 0)]);
        code.extend(syscall(214));
        code.extend([lui(A1, 1), add(A0, A0, A1)]);
        code.extend(syscall(214));
        code.extend([addi(A0, S1, 0), lui(A1, 2)]);
        code.extend(syscall(215));
        code.extend([addi(A0, 0, 0)]);
        code.extend(syscall(93));
        for jit in [false, true] {
            let mut vm = load("sys", &code);
            if jit {
                vm.enable_jit(eager_jit()).expect("jit");
            }
            crosscheck(&mut vm, None);
            let out = vm.run();
            assert_eq!(out.exit, GuestExit::Exited(0), "{:?}", vm.divergence());
            assert!(vm.cpu().x[S0 as usize] | vm.cpu().x[S1 as usize] != 0);
        }
    }

    #[test]
    fn rdtime_in_translated_code_reads_the_same_values_on_both_sides() {
        let code = [
            lui(T0, 0x10),
            rdtime(A1),
            add(A0, A0, A1),
            addi(A2, A2, 1),
            addi(A3, A3, 1),
            addi(A4, A4, 1),
            addi(T0, T0, -1),
            bne(T0, 0, -24),
            addi(A0, 0, 0),
            addi(A7, 0, 93),
            ECALL,
        ];
        let mut vm = load("time", &code);
        vm.enable_jit(eager_jit()).expect("jit");
        crosscheck(&mut vm, None);
        let out = vm.run();
        assert_eq!(out.exit, GuestExit::Exited(0), "{:?}", vm.divergence());
        assert!(vm.jit().expect("jit").stats().tier1_translations > 0);
        assert_eq!(
            clock::mode(),
            ClockMode::Host,
            "the thread's clock is left as it was"
        );
    }
}
