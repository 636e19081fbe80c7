//! The dispatch loop of one guest thread: runs guest code until something needs the
//! engine (a system call, fence.i, a fault, the instruction limit, mail from another
//! thread) and handles it; and [`run`], which runs a process's first thread and waits
//! for the others.
//!
//! Without the JIT every block runs in `rv64`'s interpreter (tier 0), which counts the
//! blocks it executes; with it, `run_guest_code` hands over to [`crate::jit::Jit::run`],
//! which looks the pc up in the code cache, runs translated code and interprets misses.
//!
//! **Invariants.**
//! - Before any guest code runs after a system call or a fence.i, pending code
//!   invalidations (munmap, mprotect, riscv_flush_icache, fence.i) have been applied to
//!   every tier of every thread: the calling thread applies them to its interpreter's
//!   decoded blocks and to the shared code cache, and posts them to the other threads,
//!   waiting until each one running guest code has taken them (`ThreadGroup::broadcast`).
//! - A thread is offline (for the code cache's reclamation and for other threads'
//!   broadcasts) exactly while it is in a system call, and looks at its mail and at the
//!   process's end before it runs guest code again.
//! - With `--max-insns N`, no more than N instructions retire in a thread: the
//!   interpreter runs in budgets that stop [`SLACK`] instructions early (its blocks are
//!   shorter than that), and the last instructions are single-stepped.
//! - With `--trace`, every instruction is single-stepped and printed before it runs;
//!   the trace buffer is flushed before every system call so it interleaves correctly
//!   with the guest's own stderr output.

use std::sync::Arc;

use rv64::{Exit, Insn, Memory, insn_len};

use crate::deliver;
use crate::host;
use crate::memory::GuestMemory;
use crate::signals::{self, SigInfo};
use crate::syscall::{CloneRequest, Invalidation, SyscallExit, Syscalls};
use crate::threads::{GuestThread, ThreadGroup};
use crate::vm::{GuestExit, Vm};

/// How far before the instruction limit the interpreter's budget stops, so that the
/// block it is in when the budget runs out cannot overshoot the limit.
pub const SLACK: u64 = 4096;

// The exactness argument above needs every interpreter block to be shorter than SLACK.
const _: () = assert!(rv64::interp::MAX_BLOCK_INSNS as u64 <= SLACK);

/// Largest budget given to guest code at once: between budgets the loop looks at the
/// thread's mail and at the process's end (the JIT also looks at every dispatch).
pub(crate) const CHUNK: u64 = 1 << 20;

/// Host stack of a guest thread's host thread (guest code does not run on it: the
/// engine's own frames, a Cranelift compile when there are no compile threads).
const THREAD_STACK: usize = 8 << 20;

/// Text of the instruction at `pc` for messages and `--trace` (objdump style, branch
/// targets as absolute addresses).
pub fn disasm(insn: &Insn, pc: u64) -> String {
    insn.display_at(pc).to_string()
}

/// How a thread's guest code ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ThreadEnd {
    /// `exit`: this thread is done, with this status.
    Thread(i32),
    /// The process ends (this thread set the outcome, or saw another thread set it).
    Process,
}

/// Runs `vm` to completion: its first thread on this host thread, then waits for the
/// others. Returns how the process ended.
pub fn run(vm: &mut Vm) -> GuestExit {
    vm.main.handle.bind_host_thread();
    let end = run_thread(&mut vm.main, &vm.mem);
    // A forked child comes back with a group (and tid) of its own.
    let group = Arc::clone(vm.main.sys.group());
    let me = vm.main.handle.tid;
    if let ThreadEnd::Thread(code) = end {
        vm.main.sys.thread_exit_cleanup(&vm.mem);
        group.end_thread(me, code);
    }
    group.add_counts(
        vm.main.cpu.instret,
        vm.main.interp.blocks_executed() + vm.main.stepped_blocks,
    );
    let exit = group.wait_for_the_rest(me);
    group.stop_service();
    exit
}

/// Runs one thread's guest code until the thread or the process ends.
pub(crate) fn run_thread(t: &mut GuestThread, mem: &Arc<GuestMemory>) -> ThreadEnd {
    let mut group = Arc::clone(t.sys.group());
    let mut trace = TraceBuf::default();
    let end = loop {
        if t.handle.attention() {
            take_mail(t, &group);
            if deliver::deliver(t, mem, None).is_some() {
                break ThreadEnd::Process;
            }
        }
        if group.exiting() {
            break ThreadEnd::Process;
        }
        let left = t.max_insns.map(|max| max.saturating_sub(t.cpu.instret));
        if left == Some(0) {
            group.set_exit(GuestExit::InsnLimit { pc: t.cpu.pc });
            break ThreadEnd::Process;
        }
        let exit = if t.trace {
            step(t, mem, Some(&mut trace))
        } else if let Some(left) = left {
            if left > SLACK {
                run_guest_code(t, mem, (left - SLACK).min(CHUNK))
            } else {
                step(t, mem, None)
            }
        } else {
            run_guest_code(t, mem, CHUNK)
        };
        if let Some(end) = handle_thread(t, mem, exit, &mut trace, None) {
            break end;
        }
        if !Arc::ptr_eq(&group, t.sys.group()) {
            // A fork's child: its own process from here on.
            group = Arc::clone(t.sys.group());
        }
    };
    trace.flush();
    // No more guest code: broadcasts stop waiting for this thread.
    t.handle.go_offline();
    end
}

/// Applies the invalidations other threads posted to this thread's interpreter (the
/// shared code cache already has them).
fn take_mail(t: &mut GuestThread, group: &ThreadGroup) {
    for inv in t.handle.take_mail(group) {
        match inv {
            Invalidation::Range { lo, hi } => t.interp.invalidate_range(lo, hi),
            Invalidation::All => t.interp.flush(),
        }
    }
}

/// Tier selection point: the JIT when enabled (which interprets cold blocks itself),
/// otherwise the interpreter.
fn run_guest_code(t: &mut GuestThread, mem: &GuestMemory, budget: u64) -> Exit {
    match t.jit.as_deref_mut() {
        Some(jit) => jit.run(&mut t.cpu, mem, &mut t.interp, budget),
        None => {
            let mut m = mem;
            t.interp.run(&mut t.cpu, &mut m, budget)
        }
    }
}

/// Takes the mail and signals of the VM's first thread when it is asked to look (a
/// crosscheck's loop, between steps); `Some` ends the run.
pub(crate) fn deliver_pending(vm: &mut Vm) -> Option<GuestExit> {
    if !vm.main.handle.attention() {
        return None;
    }
    let group = Arc::clone(vm.main.sys.group());
    take_mail(&mut vm.main, &group);
    if deliver::deliver(&mut vm.main, &vm.mem, None).is_some() {
        return Some(group.exit().unwrap_or(GuestExit::Exited(0)));
    }
    None
}

/// Handles an exit from guest code of the VM's first thread; `Some` ends the run
/// (a crosscheck's loop).
pub(crate) fn handle_with(
    vm: &mut Vm,
    exit: Exit,
    trace: &mut TraceBuf,
    shadow: Option<&mut rv64::Interpreter>,
) -> Option<GuestExit> {
    handle_thread(&mut vm.main, &vm.mem, exit, trace, shadow).map(|end| {
        let group = Arc::clone(vm.main.sys.group());
        match end {
            ThreadEnd::Thread(code) => GuestExit::Exited(code),
            ThreadEnd::Process => group.exit().unwrap_or(GuestExit::Exited(0)),
        }
    })
}

/// Handles an exit from a thread's guest code; `Some` ends the thread's guest code.
/// `shadow` is a crosscheck's interpreter, which gets the same invalidations (and
/// means the process may not start threads).
fn handle_thread(
    t: &mut GuestThread,
    mem: &Arc<GuestMemory>,
    exit: Exit,
    trace: &mut TraceBuf,
    shadow: Option<&mut rv64::Interpreter>,
) -> Option<ThreadEnd> {
    let group = Arc::clone(t.sys.group());
    let end = |e: GuestExit| {
        group.set_exit(e);
        Some(ThreadEnd::Process)
    };
    match exit {
        Exit::Budget => None,
        Exit::Ecall => {
            trace.flush();
            let pc = t.cpu.pc;
            let (nr, a0) = (t.cpu.x[17], t.cpu.x[10]);
            // The interpreter leaves the ecall unretired (the engine completes it), as
            // Linux counts it once the kernel returns.
            t.cpu.instret += 1;
            t.handle.go_offline();
            if let Some(jit) = t.jit.as_deref_mut() {
                jit.offline();
            }
            let r = t.sys.handle(&mut t.cpu, mem);
            // A trap return clears the LR/SC reservation, as Linux's does.
            t.cpu.reservation = rv64::Cpu::NO_RESERVATION;
            t.handle.go_online();
            apply_invalidations(t, shadow.is_some(), shadow);
            match r {
                None => {
                    // Signals are taken before the guest runs on (a signal the call
                    // sent itself is delivered before it returns, as POSIX asks).
                    // rt_sigreturn puts back the interrupted code's a0, which may be
                    // an EINTR of its own: not this call's result.
                    let intr = (nr != crate::syscall::nr::RT_SIGRETURN
                        && t.cpu.x[10] as i64 == -i64::from(libc::EINTR))
                    .then_some(deliver::Interrupted { nr, pc, a0 });
                    if intr.is_some() || t.handle.attention() {
                        take_mail(t, &group);
                        if deliver::deliver(t, mem, intr).is_some() {
                            return Some(ThreadEnd::Process);
                        }
                    }
                    None
                }
                Some(SyscallExit::Exited(code)) => end(GuestExit::Exited(code)),
                Some(SyscallExit::Signal(signo)) => end(GuestExit::Signal { signo }),
                Some(SyscallExit::Deadlock { uaddr }) => end(GuestExit::Deadlock { pc, uaddr }),
                Some(SyscallExit::ThreadExit(code)) => Some(ThreadEnd::Thread(code)),
                Some(SyscallExit::Fork(req)) => {
                    let r = crate::fork::fork(t, mem, req);
                    t.sys.strace_clone_result(r);
                    t.cpu.x[10] = r as u64;
                    t.cpu.pc = t.cpu.pc.wrapping_add(4);
                    None
                }
                Some(SyscallExit::Clone(req)) => {
                    let r = if group_refuses_threads(t, trace) {
                        -i64::from(libc::ENOSYS)
                    } else {
                        spawn(t, mem, req)
                    };
                    t.sys.strace_clone_result(r);
                    t.cpu.x[10] = r as u64;
                    t.cpu.pc = t.cpu.pc.wrapping_add(4);
                    None
                }
            }
        }
        Exit::Ebreak => {
            let info = SigInfo::fault(signals::SIGTRAP, signals::TRAP_BRKPT, t.cpu.pc);
            match deliver::deliver_sync(t, mem, info) {
                deliver::Sync::Handled => None,
                deliver::Sync::Fatal => end(GuestExit::Signal {
                    signo: signals::SIGTRAP,
                }),
            }
        }
        Exit::FenceI => {
            // fence.i is local to a hart in the ISA; it is treated as global here, which
            // the ISA allows (and what code that forgot a remote fence needs).
            t.sys.push_invalidation(Invalidation::All);
            apply_invalidations(t, shadow.is_some(), shadow);
            None
        }
        Exit::Illegal { pc, raw } => {
            t.cpu.pc = pc;
            let info = SigInfo::fault(signals::SIGILL, signals::ILL_ILLOPC, pc);
            match deliver::deliver_sync(t, mem, info) {
                deliver::Sync::Handled => None,
                deliver::Sync::Fatal => end(GuestExit::Illegal { pc, raw }),
            }
        }
        Exit::Fault { pc, fault } => {
            t.cpu.pc = pc;
            let info = deliver::fault_signal(mem, &fault);
            let sig = info.signo();
            match deliver::deliver_sync(t, mem, info) {
                deliver::Sync::Handled => None,
                deliver::Sync::Fatal if sig == signals::SIGBUS => {
                    end(GuestExit::Signal { signo: sig })
                }
                deliver::Sync::Fatal => end(GuestExit::Fault {
                    pc,
                    addr: fault.addr,
                }),
            }
        }
    }
}

/// A crosscheck compares one thread with one shadow: a guest that starts a thread gets
/// ENOSYS there (one warning).
fn group_refuses_threads(t: &mut GuestThread, _trace: &mut TraceBuf) -> bool {
    if !t.crosscheck {
        return false;
    }
    t.sys.warn_once(
        0x3_0000_0000,
        "vmjit: warning: --crosscheck runs single-threaded guests; clone refused (ENOSYS)\n",
    );
    true
}

/// Applies this thread's pending code invalidations to its interpreter, the shared
/// code cache and a crosscheck's `shadow`, and posts them to the other threads.
fn apply_invalidations(
    t: &mut GuestThread,
    _has_shadow: bool,
    mut shadow: Option<&mut rv64::Interpreter>,
) {
    if !t.sys.has_invalidations() {
        return;
    }
    let invs = t.sys.take_invalidations();
    for &inv in &invs {
        match inv {
            Invalidation::Range { lo, hi } => {
                t.interp.invalidate_range(lo, hi);
                if let Some(jit) = t.jit.as_deref_mut() {
                    jit.invalidate_range(lo, hi);
                }
                if let Some(s) = shadow.as_deref_mut() {
                    s.invalidate_range(lo, hi);
                }
            }
            Invalidation::All => {
                t.interp.flush();
                if let Some(jit) = t.jit.as_deref_mut() {
                    jit.flush();
                }
                if let Some(s) = shadow.as_deref_mut() {
                    s.flush();
                }
            }
        }
    }
    let group = Arc::clone(t.sys.group());
    group.broadcast(t.handle.tid, &invs);
}

/// Starts the thread `req` asks for; returns its tid (the parent's `clone` result) or
/// `-errno`.
fn spawn(parent: &mut GuestThread, mem: &Arc<GuestMemory>, req: CloneRequest) -> i64 {
    let group = Arc::clone(parent.sys.group());
    let mut cpu = parent.cpu.clone();
    // The child returns from the same ecall with 0.
    cpu.pc = cpu.pc.wrapping_add(4);
    cpu.x[10] = 0;
    if req.stack != 0 {
        cpu.x[2] = req.stack;
    }
    if req.settls() {
        cpu.x[4] = req.tls;
    }
    cpu.reservation = rv64::Cpu::NO_RESERVATION;
    cpu.instret = 0;
    let seed = parent.sys.seed();
    let jit = parent.jit.as_deref().map(|j| Box::new(j.new_thread()));
    let (max_insns, trace) = (parent.max_insns, parent.trace);
    let (tid_tx, tid_rx) = std::sync::mpsc::channel();
    let (go_tx, go_rx) = std::sync::mpsc::channel::<bool>();
    let mem2 = Arc::clone(mem);
    let spawned = std::thread::Builder::new()
        .name("vmjit-guest".into())
        .stack_size(THREAD_STACK)
        .spawn(move || {
            let tid = host::gettid();
            let sys = Syscalls::from_seed(seed, tid);
            let handle = Arc::clone(sys.thread_handle());
            handle.bind_host_thread();
            let mut t = GuestThread {
                cpu,
                sys,
                interp: rv64::Interpreter::new(),
                jit,
                stepped_blocks: 0,
                max_insns,
                trace,
                crosscheck: false,
                handle: Arc::clone(&handle),
            };
            if let Some(j) = t.jit.as_deref_mut() {
                j.set_attention(Arc::clone(&handle));
                j.set_tid(tid);
            }
            if tid_tx.send((tid, Arc::clone(&handle))).is_err() {
                return;
            }
            // The parent stores the tid where CLONE_PARENT_SETTID asks before the child
            // runs, as Linux does.
            if !go_rx.recv().unwrap_or(false) {
                return;
            }
            if req.child_settid() {
                let _ = mem2.write_bytes(req.child_tid, &(tid as u32).to_le_bytes());
            }
            if req.child_cleartid() {
                t.sys.thread().clear_child_tid = req.child_tid;
            }
            let group = Arc::clone(t.sys.group());
            let end = run_thread(&mut t, &mem2);
            let code = match end {
                ThreadEnd::Thread(code) => {
                    t.sys.thread_exit_cleanup(&mem2);
                    code
                }
                ThreadEnd::Process => 0,
            };
            group.add_counts(t.cpu.instret, t.interp.blocks_executed() + t.stepped_blocks);
            // The JIT handle's counters go to the process before the thread leaves.
            drop(t);
            group.end_thread(tid, code);
        });
    if spawned.is_err() {
        return -i64::from(libc::EAGAIN);
    }
    let Ok((tid, handle)) = tid_rx.recv() else {
        return -i64::from(libc::EAGAIN);
    };
    if !group.register(handle) {
        let _ = go_tx.send(false);
        return -i64::from(libc::EAGAIN);
    }
    if req.parent_settid()
        && mem
            .write_bytes(req.parent_tid, &(tid as u32).to_le_bytes())
            .is_err()
    {
        // Linux checks the pointer before the child exists; here the child is stopped
        // before it runs and ends quietly.
        let _ = go_tx.send(false);
        group.end_thread(tid, 0);
        return -i64::from(libc::EFAULT);
    }
    let _ = go_tx.send(true);
    tid
}

/// Executes exactly one instruction (the slow path for `--trace` and the end of a
/// `--max-insns` run).
pub(crate) fn step(t: &mut GuestThread, mem: &GuestMemory, trace: Option<&mut TraceBuf>) -> Exit {
    let pc = t.cpu.pc;
    let lo = match mem.fetch16(pc) {
        Ok(v) => v,
        Err(fault) => return Exit::Fault { pc, fault },
    };
    let raw = if insn_len(lo) == 4 {
        match mem.fetch16(pc.wrapping_add(2)) {
            Ok(hi) => u32::from(lo) | (u32::from(hi) << 16),
            Err(fault) => return Exit::Fault { pc, fault },
        }
    } else {
        u32::from(lo)
    };
    let insn = match rv64::decode(raw) {
        Ok(i) => i,
        Err(_) => {
            if let Some(tr) = trace {
                tr.line(pc, raw, "(illegal)");
            }
            return Exit::Illegal { pc, raw };
        }
    };
    if let Some(tr) = trace {
        tr.line(pc, raw, &disasm(&insn, pc));
    }
    let mut m = mem;
    let r = rv64::execute(&mut t.cpu, &mut m, &insn);
    // Count blocks where the interpreter's would end, so `--stats` agrees between modes
    // (up to blocks the interpreter splits at its length limit).
    if insn.op.ends_block() {
        t.stepped_blocks += 1;
    }
    match r {
        Ok(()) => Exit::Budget,
        Err(e) => e,
    }
}

/// [`step`] on the VM's first thread (a crosscheck's loop).
pub(crate) fn step_vm(vm: &mut Vm, trace: Option<&mut TraceBuf>) -> Exit {
    step(&mut vm.main, &vm.mem, trace)
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
