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
//! **What it changes about the primary.** The JIT runs as configured, with two
//! differences: translated code returns to the dispatcher after at most `interval`
//! chained transfers (16 by default, instead of 16 384), so the dispatcher, its
//! quiescent points and its polls for finished translations run that much more often;
//! and the guest thread, slowed to the interpreter's pace, sees compile threads finish
//! sooner in guest instructions, so blocks reach tier 1 and tier 2 earlier in the run
//! than without a crosscheck. Memory comparisons only read guest memory. With the
//! interpreter as the primary, `interval + 1` blocks run between comparisons.
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

mod report;

use std::collections::VecDeque;

use rv64::clock::{self, ClockMode};
use rv64::disasm::{FREG, XREG};
use rv64::{Cpu, Exit, Interpreter, MemFault, Memory};

use crate::dispatch::{self, CHUNK, SLACK, TraceBuf};
use crate::jit::{CodeTier, Observer};
use crate::memory::{GuestMemory, MemoryError};
use crate::vm::{GuestExit, Vm};
pub use report::{CheckPoint, Divergence, Entry, Localised, Ran, RegisterDiff};
use report::{disassemble_at, disassemble_block};

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

    fn returned(&mut self, pc: u64, cpu: &mut Cpu, mut mem: &GuestMemory) {
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
                cpu: vm.main.cpu.clone(),
                mem: vm.mem.duplicate()?,
                interp: Interpreter::new(),
                undo: Vec::new(),
            },
            recent: VecDeque::with_capacity(RECENT),
            memory_agreed_at: vm.main.cpu.instret,
            broken: config.inject.map(|inject| BrokenBlock { inject, pc: None }),
            config,
        })
    }
}

/// Runs `vm` with its crosscheck to the end or to the first divergence (then
/// [`GuestExit::Diverged`], with the report left in `vm`).
pub(crate) fn run(vm: &mut Vm, cc: &mut Crosscheck) -> GuestExit {
    // Signals meant for the guest interrupt this host thread's blocking calls.
    vm.main.handle.bind_host_thread();
    vm.mem.start_change_log();
    if let Some(jit) = vm.main.jit.as_deref_mut() {
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
        let left = vm
            .main
            .max_insns
            .map(|max| max.saturating_sub(vm.main.cpu.instret));
        if left == Some(0) {
            cc.check_memory(vm, CheckPoint::End, Ran::Nothing, vm.main.cpu.instret)?;
            return Ok(GuestExit::InsnLimit { pc: vm.main.cpu.pc });
        }
        let start = vm.main.cpu.instret;
        let start_cpu = cc.shadow.cpu.clone();
        clock::set_mode(ClockMode::Record);
        let interval = cc.config.interval;
        let (exit, ran) = primary_step(vm, &mut cc.recent, cc.broken.as_mut(), left, interval);
        clock::set_mode(ClockMode::Replay);
        let shadow_exit = cc.shadow.catch_up(vm.main.cpu.instret, exit);
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
                // An asynchronous signal is taken here, as the dispatch loop takes it:
                // the shadow enters the handler with the primary.
                if vm.main.handle.attention() {
                    if let Some(end) = dispatch::deliver_pending(vm) {
                        return Ok(end);
                    }
                    let changes = vm.mem.take_changes();
                    if let Err(e) = cc.shadow.mem.apply_changes(&changes, &vm.mem) {
                        return Err(cc.replay_failed(vm, start, ran, &e));
                    }
                    cc.shadow.cpu = vm.main.cpu.clone();
                }
                if vm.main.cpu.instret - cc.memory_agreed_at >= cc.config.memory_period {
                    cc.check_memory(vm, CheckPoint::Periodic, ran, start)
                        .map_err(|d| cc.localise(vm, d, start_cpu))?;
                }
            }
            Exit::Ecall => {
                let nr = vm.main.cpu.x[17];
                cc.check_memory(vm, CheckPoint::Syscall { nr }, ran, start)
                    .map_err(|d| cc.localise(vm, d, start_cpu))?;
                let r = dispatch::handle_with(vm, exit, trace, Some(&mut cc.shadow.interp));
                let changes = vm.mem.take_changes();
                if let Err(e) = cc.shadow.mem.apply_changes(&changes, &vm.mem) {
                    return Err(cc.replay_failed(vm, start, ran, &e));
                }
                cc.shadow.cpu = vm.main.cpu.clone();
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
                // A guest handler takes the fault: the shadow enters it too.
                let changes = vm.mem.take_changes();
                if let Err(e) = cc.shadow.mem.apply_changes(&changes, &vm.mem) {
                    return Err(cc.replay_failed(vm, start, ran, &e));
                }
                cc.shadow.cpu = vm.main.cpu.clone();
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
    let pc = vm.main.cpu.pc;
    if left.is_some_and(|l| l <= SLACK) {
        return (dispatch::step_vm(vm, None), Ran::Stepped { pc });
    }
    let budget = left.map_or(CHUNK, |l| l - SLACK);
    match vm.main.jit.as_deref_mut() {
        Some(jit) => {
            let mut rec = Recorder {
                recent,
                ran: Ran::Nothing,
                broken,
                frozen: false,
            };
            let exit = jit.run_observed(
                &mut vm.main.cpu,
                &vm.mem,
                &mut vm.main.interp,
                budget,
                &mut rec,
            );
            (exit, rec.ran)
        }
        None => {
            // As many blocks as translated code would chain, within the budget (which
            // a block overshoots by less than SLACK, as in the dispatch loop).
            let start = vm.main.cpu.instret;
            let mut exit = Exit::Budget;
            for _ in 0..=interval {
                if let Err(e) = vm.main.interp.run_block(&mut vm.main.cpu, &mut &*vm.mem) {
                    exit = e;
                    break;
                }
                if vm.main.cpu.instret - start >= budget {
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
    cmp("reserved", a.reserved_value, b.reserved_value);
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
        if vm.main.cpu == self.shadow.cpu && exit == shadow_exit && clock_reads_left == 0 {
            return None;
        }
        clock::clear();
        let registers = register_diffs(&vm.main.cpu, &self.shadow.cpu);
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
                self.memory_agreed_at = vm.main.cpu.instret;
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
            instret: vm.main.cpu.instret,
            step_start: start,
            primary_pc: vm.main.cpu.pc,
            shadow_pc: self.shadow.cpu.pc,
            ran,
            exits: None,
            registers: Vec::new(),
            memory: None,
            memory_agreed_at: self.memory_agreed_at,
            clock_reads_left: 0,
            recent: self.recent.iter().copied().collect(),
            code,
            at_pc: disassemble_at(&vm.mem, vm.main.cpu.pc, 4),
            replay_error: None,
            localised: None,
            localise_note: None,
            all: self
                .config
                .all_registers
                .then(|| Box::new((vm.main.cpu.clone(), self.shadow.cpu.clone()))),
            engine: if vm.main.jit.is_some() {
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
        if vm.main.jit.is_none() || !matches!(d.ran, Ran::Translated { .. }) || !in_step {
            return d;
        }
        self.shadow.undo_step();
        self.shadow.cpu = start_cpu;
        // The replay's primary works on a copy, so the shadow's memory stays as it was
        // when the step began.
        let mem = match self.shadow.mem.duplicate() {
            Ok(m) => m,
            Err(e) => {
                d.localise_note = Some(format!("cannot copy guest memory to replay it ({e})"));
                return d;
            }
        };
        let mut cpu = self.shadow.cpu.clone();
        let target = d.instret;
        let Some(jit) = vm.main.jit.as_deref_mut() else {
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
            let exit = jit.run_observed(&mut cpu, &mem, &mut vm.main.interp, CHUNK, &mut rec);
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

#[cfg(test)]
mod tests;
