//! The dispatch loop: runs guest code until something needs the engine (a system
//! call, fence.i, a fault, the instruction limit) and handles it.
//!
//! Without the JIT every block runs in `rv64`'s interpreter (tier 0), which counts the
//! blocks it executes; with it, `run_guest_code` hands over to [`crate::jit::Jit::run`],
//! which looks the pc up in the code cache, runs translated code and interprets misses.
//!
//! **Invariants.**
//! - Before any guest code runs after a system call or a fence.i, pending code
//!   invalidations (munmap, mprotect, riscv_flush_icache, fence.i) have been applied to
//!   every tier: the interpreter's decoded blocks and the JIT's code cache.
//! - With `--max-insns N`, no more than N instructions retire: the interpreter runs
//!   in budgets that stop [`SLACK`] instructions early (its blocks are shorter than
//!   that), and the last instructions are single-stepped.
//! - With `--trace`, every instruction is single-stepped and printed before it runs;
//!   the trace buffer is flushed before every system call so it interleaves correctly
//!   with the guest's own stderr output.

use rv64::{Exit, Insn, Memory, insn_len};

use crate::host;
use crate::syscall::{Invalidation, SyscallExit};
use crate::vm::{GuestExit, Vm};

/// How far before the instruction limit the interpreter's budget stops, so that the
/// block it is in when the budget runs out cannot overshoot the limit.
pub const SLACK: u64 = 4096;

// The exactness argument above needs every interpreter block to be shorter than SLACK.
const _: () = assert!(rv64::interp::MAX_BLOCK_INSNS as u64 <= SLACK);

/// Largest budget given to the interpreter at once; between budgets the loop could
/// poll for work (interrupt checks, tier-up) later.
pub(crate) const CHUNK: u64 = 1 << 40;

/// Text of the instruction at `pc` for messages and `--trace` (objdump style, branch
/// targets as absolute addresses).
pub fn disasm(insn: &Insn, pc: u64) -> String {
    insn.display_at(pc).to_string()
}

/// Runs `vm` to completion.
pub fn run(vm: &mut Vm) -> GuestExit {
    let mut trace = TraceBuf::default();
    let exit = loop {
        let left = vm.max_insns.map(|max| max.saturating_sub(vm.cpu.instret));
        if left == Some(0) {
            break GuestExit::InsnLimit { pc: vm.cpu.pc };
        }
        let exit = if vm.trace {
            step(vm, Some(&mut trace))
        } else if let Some(left) = left {
            if left > SLACK {
                run_guest_code(vm, left - SLACK)
            } else {
                step(vm, None)
            }
        } else {
            run_guest_code(vm, CHUNK)
        };
        if let Some(done) = handle(vm, exit, &mut trace) {
            break done;
        }
    };
    trace.flush();
    exit
}

/// Tier selection point: the JIT when enabled (which interprets cold blocks itself),
/// otherwise the interpreter.
fn run_guest_code(vm: &mut Vm, budget: u64) -> Exit {
    match vm.jit.as_deref_mut() {
        Some(jit) => jit.run(&mut vm.cpu, &vm.mem, &mut vm.interp, budget),
        None => vm.interp.run(&mut vm.cpu, &mut vm.mem, budget),
    }
}

/// Handles an exit from guest code; `Some` ends the run.
fn handle(vm: &mut Vm, exit: Exit, trace: &mut TraceBuf) -> Option<GuestExit> {
    handle_with(vm, exit, trace, None)
}

/// [`handle`], also applying code invalidations to `shadow` (a crosscheck's
/// interpreter).
pub(crate) fn handle_with(
    vm: &mut Vm,
    exit: Exit,
    trace: &mut TraceBuf,
    shadow: Option<&mut rv64::Interpreter>,
) -> Option<GuestExit> {
    match exit {
        Exit::Budget => None,
        Exit::Ecall => {
            trace.flush();
            let pc = vm.cpu.pc;
            // The interpreter leaves the ecall unretired (the engine completes it), as
            // Linux counts it once the kernel returns.
            vm.cpu.instret += 1;
            let r = vm.sys.handle(&mut vm.cpu, &vm.mem);
            apply_invalidations(vm, shadow);
            match r {
                None => None,
                Some(SyscallExit::Exited(code)) => Some(GuestExit::Exited(code)),
                Some(SyscallExit::Signal(signo)) => Some(GuestExit::Signal { signo }),
                Some(SyscallExit::Deadlock { uaddr }) => Some(GuestExit::Deadlock { pc, uaddr }),
            }
        }
        Exit::Ebreak => Some(GuestExit::Signal {
            signo: libc::SIGTRAP,
        }),
        Exit::FenceI => {
            vm.interp.flush();
            if let Some(jit) = vm.jit.as_deref_mut() {
                jit.flush();
            }
            None
        }
        Exit::Illegal { pc, raw } => Some(GuestExit::Illegal { pc, raw }),
        Exit::Fault { pc, fault } => Some(GuestExit::Fault {
            pc,
            addr: fault.addr,
        }),
    }
}

/// Applies the system-call layer's code invalidations to every tier: the interpreter's
/// decoded blocks, with the JIT the code cache, and a crosscheck's `shadow`
/// interpreter.
fn apply_invalidations(vm: &mut Vm, mut shadow: Option<&mut rv64::Interpreter>) {
    if !vm.sys.has_invalidations() {
        return;
    }
    for inv in vm.sys.take_invalidations() {
        match inv {
            Invalidation::Range { lo, hi } => {
                vm.interp.invalidate_range(lo, hi);
                if let Some(jit) = vm.jit.as_deref_mut() {
                    jit.invalidate_range(lo, hi);
                }
                if let Some(s) = shadow.as_deref_mut() {
                    s.invalidate_range(lo, hi);
                }
            }
            Invalidation::All => {
                vm.interp.flush();
                if let Some(jit) = vm.jit.as_deref_mut() {
                    jit.flush();
                }
                if let Some(s) = shadow.as_deref_mut() {
                    s.flush();
                }
            }
        }
    }
}

/// Executes exactly one instruction (the slow path for `--trace` and the end of a
/// `--max-insns` run).
pub(crate) fn step(vm: &mut Vm, trace: Option<&mut TraceBuf>) -> Exit {
    let pc = vm.cpu.pc;
    let lo = match vm.mem.fetch16(pc) {
        Ok(v) => v,
        Err(fault) => return Exit::Fault { pc, fault },
    };
    let raw = if insn_len(lo) == 4 {
        match vm.mem.fetch16(pc.wrapping_add(2)) {
            Ok(hi) => u32::from(lo) | (u32::from(hi) << 16),
            Err(fault) => return Exit::Fault { pc, fault },
        }
    } else {
        u32::from(lo)
    };
    let insn = match rv64::decode(raw) {
        Ok(i) => i,
        Err(_) => {
            if let Some(t) = trace {
                t.line(pc, raw, "(illegal)");
            }
            return Exit::Illegal { pc, raw };
        }
    };
    if let Some(t) = trace {
        t.line(pc, raw, &disasm(&insn, pc));
    }
    let r = rv64::execute(&mut vm.cpu, &mut vm.mem, &insn);
    // Count blocks where the interpreter's would end, so `--stats` agrees between modes
    // (up to blocks the interpreter splits at its length limit).
    if insn.op.ends_block() {
        vm.stepped_blocks += 1;
    }
    match r {
        Ok(()) => Exit::Budget,
        Err(e) => e,
    }
}

/// Buffered `--trace` output, written straight to fd 2 (where guest stderr also goes).
#[derive(Default)]
pub(crate) struct TraceBuf {
    buf: Vec<u8>,
}

impl TraceBuf {
    fn line(&mut self, pc: u64, raw: u32, text: &str) {
        use std::io::Write;
        let _ = if raw & 3 == 3 {
            writeln!(self.buf, "{pc:>10x}:  {raw:08x}   {text}")
        } else {
            writeln!(self.buf, "{pc:>10x}:  {raw:04x}       {text}")
        };
        if self.buf.len() > 1 << 16 {
            self.flush();
        }
    }

    pub(crate) fn flush(&mut self) {
        if !self.buf.is_empty() {
            host::write_stderr(&self.buf);
            self.buf.clear();
        }
    }
}
