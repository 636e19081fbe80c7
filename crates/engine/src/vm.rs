//! [`Vm`]: one guest process — load an executable, run it, report how it ended.
//!
//! **Invariants.** `Vm::load` either returns a ready process (segments mapped, the
//! ELF interpreter too when the program names one, stack built, pc at the entry point:
//! the interpreter's when there is one) or a typed [`LoadError`]; it never panics on
//! any file.
//! `Vm::run` always returns a [`RunOutcome`]; guest misbehaviour is a [`GuestExit`].

use std::ffi::OsString;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rv64::{Cpu, Interpreter};

use crate::crosscheck::{Crosscheck, CrosscheckConfig, Divergence};
use crate::jit::{Jit, JitConfig, JitError, JitReport};
use crate::layout;
use crate::loader::{self, ElfError};
use crate::memory::{GuestMemory, MemoryError, PERM_R, PERM_W};
use crate::stack::{self, AuxInfo, StackError};
use crate::syscall::Syscalls;
use crate::sysroot::Sysroot;
use crate::threads::GuestThread;

/// Largest executable vmjit reads (a guard against feeding it huge files).
const MAX_FILE: u64 = 1 << 30;

/// Why a program could not be loaded. Messages read after the program's name
/// (`vmjit: prog: <message>`).
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("no such file or directory")]
    NotFound,
    #[error("is a directory")]
    IsDirectory,
    #[error("is not a regular file")]
    NotRegularFile,
    #[error("permission denied")]
    PermissionDenied,
    #[error("is too large to be a guest executable ({0} bytes)")]
    TooLarge(u64),
    #[error("cannot be read: {0}")]
    Io(std::io::Error),
    #[error(transparent)]
    Elf(#[from] ElfError),
    /// The program's `PT_INTERP` names a file that exists neither in the sysroot nor
    /// on the host.
    #[error("{}", interp_not_found(interp, sysroot.as_deref()))]
    InterpreterNotFound {
        interp: String,
        sysroot: Option<PathBuf>,
    },
    /// The program's ELF interpreter (found at `host`) cannot be loaded.
    #[error("{}", interp_unusable(interp, host, reason))]
    Interpreter {
        interp: String,
        host: PathBuf,
        reason: Box<LoadError>,
    },
    #[error(transparent)]
    Stack(#[from] StackError),
    #[error(transparent)]
    Memory(#[from] MemoryError),
}

fn interp_not_found(interp: &str, sysroot: Option<&Path>) -> String {
    match sysroot {
        Some(dir) => format!(
            "its ELF interpreter {interp} was not found in the sysroot {} (set it with -L DIR \
             or VMJIT_LD_PREFIX)",
            dir.display()
        ),
        None => format!(
            "its ELF interpreter {interp} was not found, and there is no sysroot to look in \
             (set one with -L DIR or VMJIT_LD_PREFIX)"
        ),
    }
}

fn interp_unusable(interp: &str, host: &Path, reason: &LoadError) -> String {
    if host.as_os_str().as_bytes() == interp.as_bytes() {
        format!("its ELF interpreter {interp}: {reason}")
    } else {
        format!(
            "its ELF interpreter {interp} (at {}): {reason}",
            host.display()
        )
    }
}

impl LoadError {
    fn from_io(e: std::io::Error) -> Self {
        match e.kind() {
            std::io::ErrorKind::NotFound => LoadError::NotFound,
            std::io::ErrorKind::PermissionDenied => LoadError::PermissionDenied,
            std::io::ErrorKind::IsADirectory => LoadError::IsDirectory,
            _ => LoadError::Io(e),
        }
    }
}

/// How a guest run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GuestExit {
    /// exit / exit_group with this status (0..=255).
    Exited(i32),
    /// Killed by a signal: the default action of one sent to it (abort, raise, kill,
    /// a forwarded host signal, a timer), or a synchronous one without a handler
    /// (SIGTRAP for `ebreak`, SIGBUS for a misaligned atomic).
    Signal { signo: i32 },
    /// An access to unmapped memory or without permission (SIGSEGV under Linux).
    Fault { pc: u64, addr: u64 },
    /// An illegal or unsupported instruction (SIGILL under Linux).
    Illegal { pc: u64, raw: u32 },
    /// The `--max-insns` limit was reached.
    InsnLimit { pc: u64 },
    /// A futex wait that no thread could ever end (vmjit runs one thread).
    Deadlock { pc: u64, uaddr: u64 },
    /// `--crosscheck`: the primary VM and the interpreter diverged ([`Vm::divergence`]
    /// has the report); `pc` and `instret` are the primary's where it was found.
    Diverged { pc: u64, instret: u64 },
}

impl GuestExit {
    /// The process exit status vmjit should end with: the guest's own status, `128+N`
    /// for a signal (139 for a fault, 132 for an illegal instruction, like a shell
    /// reports), 124 for the instruction limit (as `timeout(1)`), 1 for a deadlock, 70
    /// for a crosscheck divergence ([`crate::DIVERGENCE_EXIT_CODE`]).
    pub fn exit_code(&self) -> i32 {
        match *self {
            GuestExit::Exited(c) => c,
            GuestExit::Signal { signo } => 128 + signo,
            GuestExit::Fault { .. } => 128 + libc::SIGSEGV,
            GuestExit::Illegal { .. } => 128 + libc::SIGILL,
            GuestExit::InsnLimit { .. } => 124,
            GuestExit::Deadlock { .. } => 1,
            GuestExit::Diverged { .. } => crate::crosscheck::DIVERGENCE_EXIT_CODE,
        }
    }

    /// The signal the guest died of, if it did (vmjit then ends by the same signal).
    pub fn fatal_signal(&self) -> Option<i32> {
        match *self {
            GuestExit::Signal { signo } => Some(signo),
            GuestExit::Fault { .. } => Some(libc::SIGSEGV),
            GuestExit::Illegal { .. } => Some(libc::SIGILL),
            _ => None,
        }
    }

    /// The one-line message (without newline) vmjit prints on stderr, if any.
    pub fn message(&self) -> Option<String> {
        match *self {
            GuestExit::Exited(_) => None,
            // As qemu-user, quiet for signals that just terminate (the shell reports
            // those itself); one line for those whose default is a core dump.
            GuestExit::Signal { signo } => matches!(
                crate::signals::default_action(signo),
                crate::signals::Default::Core
            )
            .then(|| {
                format!(
                    "vmjit: guest terminated by signal {signo} ({})",
                    signal_name(signo)
                )
            }),
            GuestExit::Fault { pc, addr } => Some(format!(
                "vmjit: guest segmentation fault at {addr:#x} (pc {pc:#x})"
            )),
            GuestExit::Illegal { pc, raw } => {
                let bits = if raw & 3 == 3 {
                    format!("{raw:#010x}")
                } else {
                    format!("{raw:#06x}")
                };
                let dis = match rv64::decode(raw) {
                    Ok(insn) => format!(" ({})", crate::dispatch::disasm(&insn, pc)),
                    Err(_) => String::new(),
                };
                Some(format!(
                    "vmjit: illegal instruction {bits} at pc {pc:#x}{dis}"
                ))
            }
            GuestExit::InsnLimit { pc } => Some(format!(
                "vmjit: instruction limit reached (--max-insns) at pc {pc:#x}"
            )),
            GuestExit::Deadlock { pc, uaddr } => Some(format!(
                "vmjit: guest deadlocked: futex wait on {uaddr:#x} (pc {pc:#x}) can never be \
                 woken in a single-threaded guest"
            )),
            GuestExit::Diverged { pc, instret } => Some(format!(
                "vmjit: crosscheck: divergence after {instret} instructions (pc {pc:#x})"
            )),
        }
    }
}

pub(crate) fn signal_name(sig: i32) -> &'static str {
    const NAMES: [&str; 32] = [
        "0",
        "SIGHUP",
        "SIGINT",
        "SIGQUIT",
        "SIGILL",
        "SIGTRAP",
        "SIGABRT",
        "SIGBUS",
        "SIGFPE",
        "SIGKILL",
        "SIGUSR1",
        "SIGSEGV",
        "SIGUSR2",
        "SIGPIPE",
        "SIGALRM",
        "SIGTERM",
        "SIGSTKFLT",
        "SIGCHLD",
        "SIGCONT",
        "SIGSTOP",
        "SIGTSTP",
        "SIGTTIN",
        "SIGTTOU",
        "SIGURG",
        "SIGXCPU",
        "SIGXFSZ",
        "SIGVTALRM",
        "SIGPROF",
        "SIGWINCH",
        "SIGIO",
        "SIGPWR",
        "SIGSYS",
    ];
    usize::try_from(sig)
        .ok()
        .and_then(|i| NAMES.get(i))
        .copied()
        .unwrap_or("real-time signal")
}

/// The result of [`Vm::run`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunOutcome {
    pub exit: GuestExit,
    /// Guest instructions retired.
    pub instructions: u64,
    /// Basic blocks executed.
    pub blocks: u64,
    /// Threads created and the most alive at once.
    pub threads: crate::threads::ThreadStats,
    /// Wall-clock time of the run (loading excluded).
    pub wall: Duration,
}

/// The host's environment as `KEY=VALUE` strings (what a guest gets by default, as
/// with qemu-user).
pub fn host_environment() -> Vec<OsString> {
    std::env::vars_os()
        // The code store's key is vmjit's secret: a guest that knew it could forge
        // stored code that vmjit would run.
        .filter(|(k, _)| k.as_os_str() != codestore::KEY_ENV)
        .map(|(k, v)| {
            let mut s = k;
            s.push("=");
            s.push(v);
            s
        })
        .collect()
}

/// One guest process: its first thread (which [`Vm::run`] runs on the calling host
/// thread; the threads it starts run on host threads of their own) and its memory.
pub struct Vm {
    pub(crate) main: GuestThread,
    pub(crate) mem: Arc<GuestMemory>,
    /// The shadow VM of `--crosscheck`, when enabled ([`Vm::enable_crosscheck`]).
    pub(crate) crosscheck: Option<Box<Crosscheck>>,
    /// The report of the divergence that ended a crosscheck run.
    pub(crate) divergence: Option<Box<Divergence>>,
}

impl std::fmt::Debug for Vm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vm")
            .field("pc", &self.main.cpu.pc)
            .field("mem", &self.mem)
            .finish()
    }
}

fn read_program(path: &Path) -> Result<Vec<u8>, LoadError> {
    let meta = std::fs::metadata(path).map_err(LoadError::from_io)?;
    if meta.is_dir() {
        return Err(LoadError::IsDirectory);
    }
    if !meta.is_file() {
        return Err(LoadError::NotRegularFile);
    }
    if meta.len() > MAX_FILE {
        return Err(LoadError::TooLarge(meta.len()));
    }
    std::fs::read(path).map_err(LoadError::from_io)
}

/// Finds the ELF interpreter `name` (in the sysroot first, as the guest's own absolute
/// paths are), reads and maps it.
fn load_interpreter(
    name: &[u8],
    sysroot: Option<&Sysroot>,
    mem: &mut GuestMemory,
) -> Result<loader::LoadedInterp, LoadError> {
    let shown = String::from_utf8_lossy(name).into_owned();
    let host = match sysroot {
        Some(s) => s.host_path(name),
        None => PathBuf::from(std::ffi::OsStr::from_bytes(name)),
    };
    let unusable = |reason: LoadError| LoadError::Interpreter {
        interp: shown.clone(),
        host: host.clone(),
        reason: Box::new(reason),
    };
    let data = match read_program(&host) {
        Ok(d) => d,
        Err(LoadError::NotFound) => {
            return Err(LoadError::InterpreterNotFound {
                interp: shown,
                sysroot: sysroot.map(|s| s.path().to_path_buf()),
            });
        }
        Err(e) => return Err(unusable(e)),
    };
    loader::load_interpreter(&data, mem).map_err(|e| unusable(LoadError::Elf(e)))
}

impl Vm {
    /// Loads the riscv64 executable at `path` without a sysroot: a dynamically linked
    /// program's interpreter must then be at the path it names on the host. See
    /// [`Vm::load_with_sysroot`].
    pub fn load(path: &Path, args: &[OsString], env: &[OsString]) -> Result<Vm, LoadError> {
        Vm::load_with_sysroot(path, args, env, None)
    }

    /// Loads the riscv64 executable at `path` (static, static-pie, or dynamically
    /// linked: then its ELF interpreter is loaded too, found in `sysroot` first, and the
    /// process starts there). The guest's `argv` is the path as given followed by
    /// `args`; its environment is `env` (`KEY=VALUE` strings; pass [`host_environment`]
    /// for qemu-user's behaviour). Absolute paths the guest names are looked up in
    /// `sysroot` first (see [`crate::sysroot`]).
    pub fn load_with_sysroot(
        path: &Path,
        args: &[OsString],
        env: &[OsString],
        sysroot: Option<Sysroot>,
    ) -> Result<Vm, LoadError> {
        Vm::load_full(path, None, args, env, sysroot)
    }

    /// [`Vm::load_with_sysroot`] with `argv0` as the guest's `argv[0]` instead of the
    /// path (what execve passes on, and qemu-user's `-0`).
    pub fn load_full(
        path: &Path,
        argv0: Option<&std::ffi::OsStr>,
        args: &[OsString],
        env: &[OsString],
        sysroot: Option<Sysroot>,
    ) -> Result<Vm, LoadError> {
        let data = read_program(path)?;
        let mut mem = GuestMemory::new()?;
        let img = loader::load(&data, &mut mem)?;
        let interp = match &img.interp {
            Some(name) => Some(load_interpreter(name, sysroot.as_ref(), &mut mem)?),
            None => None,
        };
        mem.map(
            layout::STACK_TOP - layout::STACK_SIZE,
            layout::STACK_SIZE,
            PERM_R | PERM_W,
        )?;
        crate::signals::map_trampoline(&mem)?;
        let mut random = [0u8; 16];
        crate::host::random_bytes(&mut random);
        let id = |nr| crate::host::int_call(nr, [0; 6]) as u64;
        let aux = AuxInfo {
            phdr: img.phdr,
            phdr_bytes: img.phdr_bytes.clone(),
            phent: img.phent,
            phnum: img.phnum,
            entry: img.entry,
            base: interp.map_or(0, |i| i.bias),
            uid: id(libc::SYS_getuid),
            euid: id(libc::SYS_geteuid),
            gid: id(libc::SYS_getgid),
            egid: id(libc::SYS_getegid),
            random,
        };
        let name = path.as_os_str().as_bytes();
        let mut argv: Vec<&[u8]> = vec![argv0.map_or(name, |a| a.as_bytes())];
        argv.extend(args.iter().map(|a| a.as_bytes()));
        let envp: Vec<&[u8]> = env.iter().map(|e| e.as_bytes()).collect();
        let st = stack::build(&mut mem, layout::STACK_TOP, &argv, &envp, name, &aux)?;
        let exe = std::fs::canonicalize(path)
            .map(|p| p.into_os_string().into_vec())
            .unwrap_or_else(|_| name.to_vec());
        let mut cpu = Cpu::new();
        cpu.pc = interp.map_or(img.entry, |i| i.entry);
        cpu.x[2] = st.sp;
        let mut sys = Syscalls::new(img.brk, exe);
        sys.set_process_strings(&argv, &envp);
        sys.set_sysroot(sysroot);
        let handle = Arc::clone(sys.thread_handle());
        Ok(Vm {
            main: GuestThread {
                cpu,
                sys,
                interp: Interpreter::new(),
                jit: None,
                stepped_blocks: 0,
                max_insns: None,
                trace: false,
                crosscheck: false,
                handle,
            },
            mem: Arc::new(mem),
            crosscheck: None,
            divergence: None,
        })
    }

    /// Gives the guest the host descriptors in `fds` under the same numbers, as a
    /// process inherits them across exec (stdio, when open, is always given). They
    /// must be descriptors vmjit was started with, never one it uses itself: vmjit's
    /// command line passes those open when it started ([`crate::host::open_fds`]).
    pub fn inherit_fds(&mut self, fds: &[i32]) {
        for &fd in fds {
            self.main.sys.inherit_fd(fd);
        }
    }

    /// Lets the guest's execve run riscv64 programs under vmjit with `config`.
    pub fn set_exec_config(&mut self, config: crate::syscall::ExecConfig) {
        self.main.sys.set_exec_config(config);
    }

    /// Marks this process as one vmjit forked (or a program such a process exec'd):
    /// see [`Vm::is_forked_child`].
    pub fn set_forked_child(&mut self) {
        self.main.sys.set_forked_child();
    }

    /// True in a process vmjit forked for its guest, or in what such a process
    /// exec'd: statistics are then not reported (they are the first process's).
    pub fn is_forked_child(&self) -> bool {
        self.main.sys.is_forked_child()
    }

    /// The signal state the guest starts with, as a process inherits it across exec:
    /// `mask` blocked, the signals in `ignored` ignored (bit `n-1` is signal `n`).
    pub fn set_initial_signals(&mut self, mask: u64, ignored: u64) {
        let group = std::sync::Arc::clone(self.main.sys.group());
        group.set_mask(&self.main.handle, mask);
        for sig in 1..=64 {
            if ignored & (1 << (sig - 1)) != 0
                && sig != crate::signals::SIGKILL
                && sig != crate::signals::SIGSTOP
            {
                group.set_action(
                    sig,
                    crate::signals::SigAction {
                        handler: crate::signals::SIG_IGN,
                        ..Default::default()
                    },
                );
            }
        }
    }

    /// Bounds the guest's memory (see [`Syscalls::set_memory_limit`]; the default is
    /// [`crate::syscall::default_max_memory`]).
    pub fn set_max_memory(&mut self, bytes: u64) {
        self.main.sys.set_memory_limit(bytes);
    }

    /// Stop after this many guest instructions ([`GuestExit::InsnLimit`]).
    pub fn set_max_insns(&mut self, limit: Option<u64>) {
        self.main.max_insns = limit;
    }

    /// Print every executed instruction (pc, encoding, disassembly) to stderr.
    pub fn set_trace(&mut self, on: bool) {
        self.main.trace = on;
    }

    /// Print every system call of every thread, with its arguments and result, to
    /// vmjit's stderr in qemu's `-strace` format (see `syscall::strace`).
    pub fn set_strace(&mut self, on: bool) {
        self.main.sys.set_strace(on);
    }

    /// Runs hot guest code through the JIT (code cache + Cranelift) from now on.
    pub fn enable_jit(&mut self, config: JitConfig) -> Result<(), JitError> {
        let mut jit = Jit::new(config)?;
        jit.set_attention(Arc::clone(&self.main.handle));
        jit.set_tid(self.main.handle.tid);
        self.main.jit = Some(Box::new(jit));
        Ok(())
    }

    /// Attaches the persistent code store to the JIT (enable the JIT first): stored
    /// translations of this program are validated and loaded as they are first run.
    /// Its key file, if it has one, is out of the guest's reach from now on.
    pub fn attach_code_store(&mut self, settings: crate::jit::StoreSettings) {
        if let Some(dir) = settings.store.dir()
            && let Ok(m) = std::fs::metadata(dir.join("key"))
        {
            use std::os::unix::fs::MetadataExt;
            crate::sandbox::register_internal_file(m.dev(), m.ino());
        }
        if let Some(jit) = self.main.jit.as_mut() {
            jit.attach_store(settings);
        }
    }

    /// Writes the JIT's translations and profile into the attached code store.
    pub fn save_code_store(&mut self) {
        if let Some(jit) = self.main.jit.as_mut() {
            jit.save_store();
        }
    }

    /// Runs the reference interpreter beside this VM from now on, as a shadow VM that
    /// starts as an exact copy of it (registers and memory) and is compared with it as
    /// both run (see [`crate::crosscheck`]). Call after loading, before [`Vm::run`];
    /// a crosscheck run does not trace (`set_trace` is ignored).
    pub fn enable_crosscheck(&mut self, config: CrosscheckConfig) -> Result<(), MemoryError> {
        self.crosscheck = Some(Box::new(Crosscheck::new(self, config)?));
        self.main.crosscheck = true;
        Ok(())
    }

    /// The report of the divergence that ended the last run ([`GuestExit::Diverged`]).
    pub fn divergence(&self) -> Option<&Divergence> {
        self.divergence.as_deref()
    }

    /// The JIT's report (counters, code-cache statistics, hottest blocks), if the JIT
    /// is enabled.
    pub fn jit_report(&mut self) -> Option<JitReport> {
        let mem = &self.mem;
        self.main.jit.as_deref_mut().map(|j| j.report(mem))
    }

    /// The JIT tier, if enabled (for tests and tools).
    pub fn jit(&self) -> Option<&Jit> {
        self.main.jit.as_deref()
    }

    /// The guest's registers (for tests and tools).
    pub fn cpu(&self) -> &Cpu {
        &self.main.cpu
    }

    /// The guest's memory (for tests and tools).
    pub fn memory(&self) -> &GuestMemory {
        &self.mem
    }

    /// Runs the guest until it exits, faults, or hits the instruction limit.
    pub fn run(&mut self) -> RunOutcome {
        let start = std::time::Instant::now();
        if crate::host::forwarding() {
            // Host signals forwarded to the guest are taken by the service thread.
            self.main.sys.group().poke_service();
        }
        let exit = match self.crosscheck.take() {
            Some(mut cc) => {
                let exit = crate::crosscheck::run(self, &mut cc);
                self.crosscheck = Some(cc);
                let group = self.main.sys.group();
                group.add_counts(
                    self.main.cpu.instret,
                    self.main.interp.blocks_executed() + self.main.stepped_blocks,
                );
                exit
            }
            None => crate::dispatch::run(self),
        };
        let (instructions, blocks) = self.main.sys.group().counts();
        RunOutcome {
            exit,
            instructions,
            blocks,
            threads: self.main.sys.group().stats(),
            wall: start.elapsed(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::loader::build;

    #[test]
    fn a_vm_can_move_to_another_thread() {
        fn assert_send<T: Send>() {}
        assert_send::<Vm>();
    }

    /// Writes a minimal executable whose code (at the entry point) is `code`.
    fn program(tag: &str, code: &[u32]) -> std::path::PathBuf {
        let body: Vec<u8> = code.iter().flat_map(|w| w.to_le_bytes()).collect();
        let len = 64 + 56 + body.len() as u64;
        let elf = build::elf(243, 2, &[build::text(len)], &body);
        let dir = std::env::temp_dir().join(format!("vmjit-vm-{}-{tag}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("prog");
        std::fs::write(&p, elf).unwrap();
        p
    }

    const LI_A0_7: u32 = 0x0070_0513; // addi a0,zero,7
    const LI_A7_EXIT: u32 = 0x05d0_0893; // addi a7,zero,93
    const ECALL: u32 = 0x0000_0073;

    fn run(code: &[u32], tag: &str, max: Option<u64>) -> RunOutcome {
        let p = program(tag, code);
        let mut vm = Vm::load(&p, &["x".into(), "y".into()], &["A=B".into()]).unwrap();
        if let Some(dir) = p.parent() {
            let _ = std::fs::remove_dir_all(dir);
        }
        vm.set_max_insns(max);
        vm.run()
    }

    #[test]
    fn exit_syscall_ends_the_run_with_its_status_and_counts_the_ecall() {
        let out = run(&[LI_A0_7, LI_A7_EXIT, ECALL], "exit", None);
        assert_eq!(out.exit, GuestExit::Exited(7));
        assert_eq!(out.instructions, 3);
        assert_eq!(out.exit.exit_code(), 7);
    }

    #[test]
    fn argc_is_at_the_initial_stack_pointer() {
        // ld a0,0(sp); exit(a0): argc = program + 2 arguments.
        let out = run(&[0x0001_3503, LI_A7_EXIT, ECALL], "argc", None);
        assert_eq!(out.exit, GuestExit::Exited(3));
    }

    #[test]
    fn load_from_unmapped_address_is_a_precise_fault() {
        // ld a0,0(zero)
        let out = run(&[0x0000_3503], "fault", None);
        assert_eq!(
            out.exit,
            GuestExit::Fault {
                pc: 0x10078,
                addr: 0
            }
        );
        assert_eq!(out.exit.exit_code(), 139);
        assert_eq!(
            out.exit.message().unwrap(),
            "vmjit: guest segmentation fault at 0x0 (pc 0x10078)"
        );
    }

    #[test]
    fn store_to_the_code_segment_faults() {
        // sd zero,0(gp) after auipc gp,0 (gp = pc): text is read+execute only.
        let out = run(&[0x0000_0197, 0x0001_b023], "rofault", None);
        assert_eq!(
            out.exit,
            GuestExit::Fault {
                pc: 0x1007c,
                addr: 0x10078
            }
        );
    }

    #[test]
    fn illegal_instruction_reports_pc_and_bits() {
        let out = run(&[0xffff_ffff], "illegal", None);
        assert_eq!(
            out.exit,
            GuestExit::Illegal {
                pc: 0x10078,
                raw: 0xffff_ffff
            }
        );
        assert_eq!(out.exit.exit_code(), 132);
        assert!(
            out.exit
                .message()
                .unwrap()
                .starts_with("vmjit: illegal instruction 0xffffffff at pc 0x10078")
        );
    }

    #[test]
    fn ebreak_ends_as_sigtrap() {
        let out = run(&[0x0010_0073], "ebreak", None);
        assert_eq!(
            out.exit,
            GuestExit::Signal {
                signo: libc::SIGTRAP
            }
        );
        assert_eq!(out.exit.exit_code(), 133);
    }

    #[test]
    fn max_insns_stops_an_endless_loop_exactly() {
        // j . (an endless loop)
        for max in [0, 1, 999, 5000, 100_003] {
            let out = run(&[0x0000_006f], &format!("loop{max}"), Some(max));
            assert_eq!(out.exit, GuestExit::InsnLimit { pc: 0x10078 });
            assert_eq!(out.instructions, max);
            assert_eq!(out.exit.exit_code(), 124);
        }
    }

    #[test]
    fn loading_a_missing_file_or_directory_is_a_typed_error() {
        let dir = std::env::temp_dir();
        assert!(matches!(
            Vm::load(&dir, &[], &[]),
            Err(LoadError::IsDirectory)
        ));
        let missing = dir.join("vmjit-definitely-missing-file");
        assert!(matches!(
            Vm::load(&missing, &[], &[]),
            Err(LoadError::NotFound)
        ));
        assert_eq!(LoadError::NotFound.to_string(), "no such file or directory");
    }
}
