//! Guest signals: what is pending where, what a disposition says, and the riscv64 Linux
//! signal frame (`rt_sigframe`) that a handler runs on and `rt_sigreturn` restores.
//!
//! **Model.** A signal is pending either for one thread (tgkill, a fault, a timer aimed
//! at a thread) or for the process (kill, a host signal forwarded to the guest, a
//! process timer). Each thread has its own mask. A thread takes its pending signals at
//! its dispatch points: before it runs guest code again after a system call, and when
//! its `attention` flag is set (see `crate::threads`), which every sender sets after
//! queueing and which translated code reaches within `CHAIN_BUDGET` transfers. A thread
//! blocked in a host call is interrupted (see `crate::threads::ThreadGroup::kick`).
//!
//! **Queues.** A standard signal (1..=31) is pending at most once per queue, as in
//! Linux (a second one while pending is merged); a real-time signal (32..=64) queues
//! every instance, in order. Signals are taken lowest number first, thread queue before
//! process queue.
//!
//! **The frame** (riscv64 `struct rt_sigframe`, what glibc's `ucontext_t` describes):
//! `siginfo` (128 bytes), then `ucontext`: `uc_flags`, `uc_link`, `uc_stack` (24 bytes),
//! `uc_sigmask` (8 bytes, padded to 128), then at offset 176 `uc_mcontext`: 32
//! general registers (pc first, then x1..x31), the 32 FP registers as 64-bit values,
//! `fcsr`, padded to the 528-byte FP union. 1 088 bytes in all, 16-byte aligned, below
//! the stack pointer (or at the top of the alternate stack). The handler is entered with
//! `a0 = signo`, `a1 = &info`, `a2 = &uc`, `sp = frame`, and `ra` = a two-instruction
//! trampoline (`li a7, 139; ecall`) that vmjit maps at [`TRAMPOLINE`], as qemu-user does
//! (Linux uses its vDSO).

use std::collections::VecDeque;

use rv64::Cpu;

use crate::memory::GuestMemory;

/// Highest signal number.
pub const NSIG: i32 = 64;

pub const SIGHUP: i32 = 1;
pub const SIGINT: i32 = 2;
pub const SIGQUIT: i32 = 3;
pub const SIGILL: i32 = 4;
pub const SIGTRAP: i32 = 5;
pub const SIGABRT: i32 = 6;
pub const SIGBUS: i32 = 7;
pub const SIGFPE: i32 = 8;
pub const SIGKILL: i32 = 9;
pub const SIGUSR1: i32 = 10;
pub const SIGSEGV: i32 = 11;
pub const SIGUSR2: i32 = 12;
pub const SIGPIPE: i32 = 13;
pub const SIGALRM: i32 = 14;
pub const SIGTERM: i32 = 15;
pub const SIGCHLD: i32 = 17;
pub const SIGCONT: i32 = 18;
pub const SIGSTOP: i32 = 19;
pub const SIGTSTP: i32 = 20;
pub const SIGTTIN: i32 = 21;
pub const SIGTTOU: i32 = 22;
pub const SIGURG: i32 = 23;
pub const SIGWINCH: i32 = 28;

/// `si_code` values.
pub const SI_USER: i32 = 0;
pub const SI_KERNEL: i32 = 0x80;
pub const SI_QUEUE: i32 = -1;
pub const SI_TIMER: i32 = -2;
pub const SI_TKILL: i32 = -6;
pub const SEGV_MAPERR: i32 = 1;
pub const SEGV_ACCERR: i32 = 2;
pub const BUS_ADRALN: i32 = 1;
/// `si_code` of SIGBUS: the address has no backing (a file mapping past its end).
pub const BUS_ADRERR: i32 = 2;
pub const ILL_ILLOPC: i32 = 1;
pub const TRAP_BRKPT: i32 = 1;

/// `sa_flags` bits (riscv64 uses the generic values).
pub const SA_NOCLDSTOP: u64 = 1;
pub const SA_NOCLDWAIT: u64 = 2;
pub const SA_SIGINFO: u64 = 4;
pub const SA_ONSTACK: u64 = 0x0800_0000;
pub const SA_RESTART: u64 = 0x1000_0000;
pub const SA_NODEFER: u64 = 0x4000_0000;
pub const SA_RESETHAND: u64 = 0x8000_0000;

/// Signals that can be neither blocked, caught nor ignored.
pub const UNBLOCKABLE: u64 = bit(SIGKILL) | bit(SIGSTOP);

/// The guest page holding the signal-return trampoline: the top page of the guest
/// space (right above the stack's guard page), mapped read+execute by the loader.
pub const TRAMPOLINE: u64 = crate::memory::GUEST_SPACE - crate::memory::PAGE_SIZE;
/// `li a7, 139` (rt_sigreturn); `ecall`.
pub const TRAMPOLINE_CODE: [u32; 2] = [0x08b0_0893, 0x0000_0073];

/// Maps the trampoline page (read+execute) into `mem` (a fresh process's address
/// space).
pub fn map_trampoline(mem: &GuestMemory) -> Result<(), crate::memory::MemoryError> {
    use crate::memory::{PAGE_SIZE, PERM_R, PERM_X};
    mem.map(TRAMPOLINE, PAGE_SIZE, PERM_R | PERM_X)?;
    let code: Vec<u8> = TRAMPOLINE_CODE
        .iter()
        .flat_map(|w| w.to_le_bytes())
        .collect();
    // The page was just mapped, so the write cannot fail.
    let _ = mem.write_bytes_privileged(TRAMPOLINE, &code);
    Ok(())
}

/// The mask bit of signal `sig` (1..=64).
pub const fn bit(sig: i32) -> u64 {
    1u64 << ((sig - 1) & 63)
}

/// One signal instance: a riscv64 `siginfo_t` (128 bytes, the generic layout).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct SigInfo {
    pub bytes: [u8; 128],
}

impl std::fmt::Debug for SigInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigInfo")
            .field("signo", &self.signo())
            .field("code", &self.code())
            .finish()
    }
}

impl SigInfo {
    fn new(signo: i32, code: i32) -> Self {
        let mut bytes = [0u8; 128];
        bytes[0..4].copy_from_slice(&signo.to_le_bytes());
        bytes[8..12].copy_from_slice(&code.to_le_bytes());
        SigInfo { bytes }
    }

    fn put32(&mut self, off: usize, v: u32) {
        self.bytes[off..off + 4].copy_from_slice(&v.to_le_bytes());
    }

    fn put64(&mut self, off: usize, v: u64) {
        self.bytes[off..off + 8].copy_from_slice(&v.to_le_bytes());
    }

    /// A signal sent by a process (kill, tgkill: `code` SI_USER or SI_TKILL).
    pub fn user(signo: i32, code: i32, pid: i64, uid: u32) -> Self {
        let mut s = Self::new(signo, code);
        s.put32(16, pid as u32);
        s.put32(20, uid);
        s
    }

    /// A fault at `addr` (SIGSEGV, SIGBUS, SIGILL, SIGTRAP).
    pub fn fault(signo: i32, code: i32, addr: u64) -> Self {
        let mut s = Self::new(signo, code);
        s.put64(16, addr);
        s
    }

    /// A timer's signal (`SI_TIMER`, or `SI_KERNEL` for an itimer's SIGALRM, as Linux).
    pub fn timer(signo: i32, code: i32, id: i32, overrun: i32, value: u64) -> Self {
        let mut s = Self::new(signo, code);
        s.put32(16, id as u32);
        s.put32(20, overrun as u32);
        s.put64(24, value);
        s
    }

    /// A guest-supplied `siginfo` (rt_sigqueueinfo), with its signal number forced.
    pub fn from_guest(signo: i32, raw: [u8; 128]) -> Self {
        let mut s = SigInfo { bytes: raw };
        s.put32(0, signo as u32);
        s
    }

    pub fn signo(&self) -> i32 {
        i32::from_le_bytes([self.bytes[0], self.bytes[1], self.bytes[2], self.bytes[3]])
    }

    pub fn code(&self) -> i32 {
        i32::from_le_bytes([self.bytes[8], self.bytes[9], self.bytes[10], self.bytes[11]])
    }
}

/// Pending signals of one queue (a thread's or the process's).
#[derive(Debug, Default)]
pub struct SigQueue {
    entries: VecDeque<SigInfo>,
    /// Bits of the signals in `entries`.
    pending: u64,
}

impl SigQueue {
    /// Queues a signal; a standard signal already pending is merged (false: nothing
    /// new is pending).
    pub fn push(&mut self, info: SigInfo) -> bool {
        let sig = info.signo();
        if !(1..=NSIG).contains(&sig) {
            return false;
        }
        if sig < 32 && self.pending & bit(sig) != 0 {
            return false;
        }
        self.pending |= bit(sig);
        self.entries.push_back(info);
        true
    }

    /// The pending set.
    pub fn pending(&self) -> u64 {
        self.pending
    }

    /// Takes the first instance of the lowest-numbered pending signal in `set`.
    pub fn take(&mut self, set: u64) -> Option<SigInfo> {
        let avail = self.pending & set;
        if avail == 0 {
            return None;
        }
        let sig = avail.trailing_zeros() as i32 + 1;
        let i = self.entries.iter().position(|e| e.signo() == sig)?;
        let info = self.entries.remove(i)?;
        if !self.entries.iter().any(|e| e.signo() == sig) {
            self.pending &= !bit(sig);
        }
        Some(info)
    }

    /// Drops every pending instance of `sig` (it became ignored).
    pub fn discard(&mut self, sig: i32) {
        self.entries.retain(|e| e.signo() != sig);
        self.pending &= !bit(sig);
    }
}

/// What the guest asked for a signal (`struct sigaction` of riscv64's rt_sigaction:
/// handler, flags, mask; 24 bytes).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SigAction {
    pub handler: u64,
    pub flags: u64,
    pub mask: u64,
}

/// `SIG_DFL` and `SIG_IGN`.
pub const SIG_DFL: u64 = 0;
pub const SIG_IGN: u64 = 1;

impl SigAction {
    pub fn from_bytes(b: &[u8; 24]) -> Self {
        let w = |i: usize| {
            let mut x = [0u8; 8];
            x.copy_from_slice(&b[i * 8..i * 8 + 8]);
            u64::from_le_bytes(x)
        };
        SigAction {
            handler: w(0),
            flags: w(1),
            mask: w(2),
        }
    }

    pub fn to_bytes(self) -> [u8; 24] {
        let mut b = [0u8; 24];
        b[0..8].copy_from_slice(&self.handler.to_le_bytes());
        b[8..16].copy_from_slice(&self.flags.to_le_bytes());
        b[16..24].copy_from_slice(&self.mask.to_le_bytes());
        b
    }
}

/// A signal's default action.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Default {
    Ignore,
    Terminate,
    /// Terminate with a core dump (vmjit writes none; the status says so as 128+N).
    Core,
    Stop,
    Continue,
}

/// The default action of `sig` (Linux's table).
pub fn default_action(sig: i32) -> Default {
    match sig {
        SIGCHLD | SIGURG | SIGWINCH => Default::Ignore,
        SIGCONT => Default::Continue,
        SIGSTOP | SIGTSTP | SIGTTIN | SIGTTOU => Default::Stop,
        SIGQUIT | SIGILL | SIGTRAP | SIGABRT | SIGBUS | SIGFPE | SIGSEGV | 24 | 25 | 31 => {
            Default::Core
        }
        _ => Default::Terminate,
    }
}

/// True when a signal with this action and disposition would do nothing at all if
/// delivered (it is dropped at once when sent, as Linux does).
pub fn ignored(sig: i32, act: &SigAction) -> bool {
    if sig == SIGKILL || sig == SIGSTOP {
        return false;
    }
    act.handler == SIG_IGN || (act.handler == SIG_DFL && default_action(sig) == Default::Ignore)
}

/// `stack_t` of sigaltstack: base, flags, size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AltStack {
    pub sp: u64,
    pub flags: u32,
    pub size: u64,
}

pub const SS_ONSTACK: u32 = 1;
pub const SS_DISABLE: u32 = 2;
/// Minimum size of an alternate stack (riscv64's MINSIGSTKSZ).
pub const MINSIGSTKSZ: u64 = 2048;

impl AltStack {
    pub const DISABLED: AltStack = AltStack {
        sp: 0,
        flags: SS_DISABLE,
        size: 0,
    };

    pub fn from_bytes(b: &[u8; 24]) -> Self {
        let w = |i: usize| {
            let mut x = [0u8; 8];
            x.copy_from_slice(&b[i..i + 8]);
            u64::from_le_bytes(x)
        };
        AltStack {
            sp: w(0),
            flags: u32::from_le_bytes([b[8], b[9], b[10], b[11]]),
            size: w(16),
        }
    }

    pub fn to_bytes(self) -> [u8; 24] {
        let mut b = [0u8; 24];
        b[0..8].copy_from_slice(&self.sp.to_le_bytes());
        b[8..12].copy_from_slice(&self.flags.to_le_bytes());
        b[16..24].copy_from_slice(&self.size.to_le_bytes());
        b
    }

    /// True when `sp` lies on this (enabled) alternate stack.
    pub fn contains(&self, sp: u64) -> bool {
        self.flags & SS_DISABLE == 0 && sp > self.sp && sp - self.sp <= self.size
    }

    /// What `sigaltstack` reports for a thread at `sp`.
    pub fn reported(&self, sp: u64) -> AltStack {
        let mut s = *self;
        if self.contains(sp) {
            s.flags |= SS_ONSTACK;
        }
        s
    }
}

// Frame layout (see the module documentation).
const INFO_SIZE: u64 = 128;
const UC_FLAGS: u64 = 0;
const UC_LINK: u64 = 8;
const UC_STACK: u64 = 16;
const UC_SIGMASK: u64 = 40;
const UC_MCONTEXT: u64 = 176;
const MC_GREGS: u64 = 0;
const MC_FPREGS: u64 = 256;
const MC_FCSR: u64 = 256 + 256;
const UC_SIZE: u64 = UC_MCONTEXT + 256 + 528;
/// Bytes of a whole `rt_sigframe`.
pub const FRAME_SIZE: u64 = INFO_SIZE + UC_SIZE;

/// Where a handler's frame goes, given the thread's `sp` and alternate stack.
pub fn frame_address(sp: u64, alt: &AltStack, act: &SigAction) -> u64 {
    let base = if act.flags & SA_ONSTACK != 0 && alt.flags & SS_DISABLE == 0 && !alt.contains(sp) {
        alt.sp.wrapping_add(alt.size)
    } else {
        sp
    };
    base.wrapping_sub(FRAME_SIZE) & !15
}

/// Writes the frame for `info` at `frame` (from [`frame_address`]) saving `cpu` and
/// `mask`, and points `cpu` at the handler. `Err` when the frame cannot be written
/// (the guest's stack is bad: Linux then kills it with SIGSEGV).
pub fn enter_handler(
    cpu: &mut Cpu,
    mem: &GuestMemory,
    frame: u64,
    info: &SigInfo,
    act: &SigAction,
    mask: u64,
    alt: &AltStack,
) -> Result<(), u64> {
    let mut f = vec![0u8; FRAME_SIZE as usize];
    f[..128].copy_from_slice(&info.bytes);
    let uc = INFO_SIZE as usize;
    let put = |f: &mut Vec<u8>, off: u64, v: &[u8]| {
        let o = uc + off as usize;
        f[o..o + v.len()].copy_from_slice(v);
    };
    put(&mut f, UC_FLAGS, &0u64.to_le_bytes());
    put(&mut f, UC_LINK, &0u64.to_le_bytes());
    put(&mut f, UC_STACK, &alt.reported(cpu.x[2]).to_bytes());
    put(&mut f, UC_SIGMASK, &mask.to_le_bytes());
    put(&mut f, UC_MCONTEXT + MC_GREGS, &cpu.pc.to_le_bytes());
    for r in 1..32u64 {
        put(
            &mut f,
            UC_MCONTEXT + MC_GREGS + 8 * r,
            &cpu.x[r as usize].to_le_bytes(),
        );
    }
    for r in 0..32u64 {
        put(
            &mut f,
            UC_MCONTEXT + MC_FPREGS + 8 * r,
            &cpu.f[r as usize].to_le_bytes(),
        );
    }
    let fcsr = (cpu.frm << 5) | cpu.fflags;
    put(&mut f, UC_MCONTEXT + MC_FCSR, &fcsr.to_le_bytes());
    mem.write_bytes(frame, &f)?;
    cpu.x[10] = info.signo() as u64;
    cpu.x[11] = frame;
    cpu.x[12] = frame + INFO_SIZE;
    cpu.x[2] = frame;
    cpu.x[1] = TRAMPOLINE;
    cpu.pc = act.handler & !1;
    cpu.reservation = Cpu::NO_RESERVATION;
    Ok(())
}

/// What `rt_sigreturn` restores from the frame at `sp`: the registers into `cpu`, and
/// the mask and alternate stack it returns. `Err` when the frame cannot be read (Linux
/// kills the process with SIGSEGV).
pub fn leave_handler(cpu: &mut Cpu, mem: &GuestMemory) -> Result<(u64, AltStack), u64> {
    let frame = cpu.x[2];
    let mut f = vec![0u8; FRAME_SIZE as usize];
    mem.read_bytes(frame, &mut f)?;
    let uc = INFO_SIZE as usize;
    let word = |off: u64| {
        let o = uc + off as usize;
        let mut x = [0u8; 8];
        x.copy_from_slice(&f[o..o + 8]);
        u64::from_le_bytes(x)
    };
    cpu.pc = word(UC_MCONTEXT + MC_GREGS);
    for r in 1..32u64 {
        cpu.x[r as usize] = word(UC_MCONTEXT + MC_GREGS + 8 * r);
    }
    for r in 0..32u64 {
        cpu.f[r as usize] = word(UC_MCONTEXT + MC_FPREGS + 8 * r);
    }
    let fcsr = word(UC_MCONTEXT + MC_FCSR) as u32;
    cpu.fflags = fcsr & 0x1f;
    cpu.frm = (fcsr >> 5) & 7;
    cpu.x[0] = 0;
    cpu.reservation = Cpu::NO_RESERVATION;
    let mask = word(UC_SIGMASK) & !UNBLOCKABLE;
    let o = uc + UC_STACK as usize;
    let mut st = [0u8; 24];
    st.copy_from_slice(&f[o..o + 24]);
    Ok((mask, AltStack::from_bytes(&st)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::{PERM_R, PERM_W};

    #[test]
    fn frame_offsets_are_riscv64_linuxs() {
        // glibc's ucontext_t on riscv64: mcontext at 176, its FP state at 176 + 256,
        // fcsr after 32 doubles; the kernel's rt_sigframe is siginfo + ucontext.
        assert_eq!(UC_MCONTEXT, 176);
        assert_eq!(UC_SIZE, 960);
        assert_eq!(FRAME_SIZE, 1088);
        assert_eq!(FRAME_SIZE % 16, 0);
    }

    #[test]
    fn a_handler_round_trip_restores_every_register() {
        let mem = GuestMemory::new().unwrap();
        mem.map(0x10000, 0x10000, PERM_R | PERM_W).unwrap();
        let mut cpu = Cpu::new();
        for r in 1..32 {
            cpu.x[r] = 0x1000 + r as u64;
            cpu.f[r] = 0xabcd_0000 + r as u64;
        }
        cpu.x[2] = 0x1f000;
        cpu.pc = 0x4444;
        cpu.fflags = 0x15;
        cpu.frm = 3;
        let before = cpu.clone();
        let act = SigAction {
            handler: 0x8888,
            flags: SA_SIGINFO,
            mask: 0,
        };
        let frame = frame_address(cpu.x[2], &AltStack::DISABLED, &act);
        assert!(frame < 0x1f000 - FRAME_SIZE + 16 && frame.is_multiple_of(16));
        let info = SigInfo::user(SIGUSR1, SI_TKILL, 7, 0);
        enter_handler(
            &mut cpu,
            &mem,
            frame,
            &info,
            &act,
            0x55,
            &AltStack::DISABLED,
        )
        .unwrap();
        assert_eq!(cpu.pc, 0x8888);
        assert_eq!(cpu.x[10], SIGUSR1 as u64);
        assert_eq!(cpu.x[1], TRAMPOLINE);
        // The handler clobbers registers; sigreturn brings back the interrupted state.
        for r in 3..32 {
            cpu.x[r] = 0;
        }
        cpu.x[2] = frame;
        let (mask, _) = leave_handler(&mut cpu, &mem).unwrap();
        assert_eq!(mask, 0x55);
        assert_eq!(cpu.x, before.x);
        assert_eq!(cpu.f, before.f);
        assert_eq!((cpu.pc, cpu.fflags, cpu.frm), (0x4444, 0x15, 3));
    }

    #[test]
    fn standard_signals_merge_and_real_time_ones_queue() {
        let mut q = SigQueue::default();
        assert!(q.push(SigInfo::user(SIGUSR1, SI_USER, 1, 0)));
        assert!(!q.push(SigInfo::user(SIGUSR1, SI_USER, 2, 0)));
        assert!(q.push(SigInfo::user(40, SI_QUEUE, 1, 0)));
        assert!(q.push(SigInfo::user(40, SI_QUEUE, 2, 0)));
        assert!(q.push(SigInfo::user(SIGINT, SI_USER, 3, 0)));
        let order: Vec<i32> = std::iter::from_fn(|| q.take(!0).map(|i| i.signo())).collect();
        assert_eq!(order, vec![SIGINT, SIGUSR1, 40, 40]);
        assert_eq!(q.pending(), 0);
    }

    #[test]
    fn the_alternate_stack_is_used_once() {
        let alt = AltStack {
            sp: 0x50000,
            flags: 0,
            size: 0x4000,
        };
        let act = SigAction {
            handler: 0x1000,
            flags: SA_ONSTACK,
            mask: 0,
        };
        let f = frame_address(0x1f000, &alt, &act);
        assert!(alt.contains(f + FRAME_SIZE));
        // Already on it: nested frames go below the current sp.
        let g = frame_address(f, &alt, &act);
        assert!(g < f);
    }
}
