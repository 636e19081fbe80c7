//! The report of a divergence: what the comparison found ([`Divergence`]) and how it
//! reads on stderr (`Display`: one block of text, the headline first).

use std::fmt;

use rv64::disasm::{FREG, XREG};
use rv64::{Cpu, Exit};

use crate::dispatch;
use crate::jit::CodeTier;
use crate::memory::{GuestMemory, MemDifference, PERM_MAPPED, PERM_R, PERM_W, PERM_X};

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
    /// A memory comparison between system calls (every
    /// [`super::CrosscheckConfig::memory_period`] instructions).
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

/// Disassembly of the guest block at `pc` (the interpreter's boundaries).
pub(super) fn disassemble_block(mem: &GuestMemory, pc: u64) -> Vec<String> {
    match rv64::decode_block(mem, pc) {
        Ok(block) => block
            .iter()
            .map(|(at, insn)| format!("{at:#x}:  {}", dispatch::disasm(insn, *at)))
            .collect(),
        Err(_) => vec![format!("{pc:#x}:  (not readable)")],
    }
}

/// Disassembly of up to `n` instructions from `pc`.
pub(super) fn disassemble_at(mem: &GuestMemory, pc: u64, n: usize) -> Vec<String> {
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
    [bit(PERM_R, 'r'), bit(PERM_W, 'w'), bit(PERM_X, 'x')]
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
            writeln!(
                f,
                "    {:<12}{:#x} / {:#x}",
                "reserved", a.reserved_value, b.reserved_value
            )?;
        }
        Ok(())
    }
}
