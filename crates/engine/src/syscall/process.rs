//! Process state: signals (recorded, not delivered), futex, clocks and sleeps, uname,
//! resource limits.

use rv64::Memory;

use super::abi::{read_timespec, timespec};
use super::{EFAULT, EINVAL, SyscallExit, Syscalls, e};
use crate::host;
use crate::layout;
use crate::memory::GuestMemory;

/// Signals whose default action is to ignore (or stop, which a lone VM treats alike).
pub(super) fn default_ignored(sig: i32) -> bool {
    matches!(sig, 17 | 18 | 19 | 20 | 21 | 22 | 23 | 28)
}

impl Syscalls {
    /// nanosleep (`clk` CLOCK_MONOTONIC, `flags` 0, as Linux measures it) and
    /// clock_nanosleep. The host kernel validates the clock, flags and timespec.
    pub(super) fn sleep(clk: i32, flags: u64, req: u64, rem: u64, mem: &GuestMemory) -> i64 {
        const TIMER_ABSTIME: u64 = 1;
        let Some((s, ns)) = read_timespec(mem, req) else {
            return EFAULT;
        };
        match host::clock_nanosleep(clk, flags as i32, s, ns) {
            Ok(()) => 0,
            Err((r, (rs, rns))) => {
                // Only an interrupted relative sleep reports the time left.
                if r == e(libc::EINTR) && rem != 0 && flags & TIMER_ABSTIME == 0 {
                    let _ = Self::put(mem, rem, &timespec(rs, rns));
                }
                r
            }
        }
    }

    pub(super) fn uname(&self, buf: u64, mem: &GuestMemory) -> i64 {
        let u = match host::uname() {
            Ok(u) => u,
            Err(r) => return r,
        };
        let mut out = [0u8; 6 * 65];
        let fields: [&[libc::c_char]; 6] = [
            &u.sysname,
            &u.nodename,
            &u.release,
            &u.version,
            &u.machine,
            &u.domainname,
        ];
        for (i, f) in fields.iter().enumerate() {
            let bytes: Vec<u8> = f
                .iter()
                .take(64)
                .map(|&c| c as u8)
                .take_while(|&c| c != 0)
                .collect();
            let bytes: &[u8] = if i == 4 { b"riscv64" } else { &bytes };
            out[i * 65..i * 65 + bytes.len()].copy_from_slice(bytes);
        }
        Self::put(mem, buf, &out)
    }

    /// prlimit64 on the guest itself (also getrlimit, `new == 0`, and setrlimit,
    /// `old == 0`). `RLIMIT_NOFILE` is the guest's descriptor table's; `RLIMIT_STACK` is
    /// the stack vmjit gave it; the others read the host's until the guest sets them,
    /// and then what it set. Nothing is forwarded to the host: a limit the guest sets
    /// on itself must not limit vmjit (RLIMIT_AS would refuse its reservations,
    /// RLIMIT_CPU would kill it with a host signal).
    pub(super) fn prlimit(&mut self, resource: u64, new: u64, old: u64, mem: &GuestMemory) -> i64 {
        const RLIM_NLIMITS: u64 = 16;
        if resource >= RLIM_NLIMITS {
            return EINVAL;
        }
        let want = if new != 0 {
            match (mem.load64(new), mem.load64(new.wrapping_add(8))) {
                (Ok(cur), Ok(max)) => Some((cur, max)),
                _ => return EFAULT,
            }
        } else {
            None
        };
        let set = self.proc.rlimits()[resource as usize];
        let (cur, max) = if resource == libc::RLIMIT_NOFILE as u64 {
            self.proc.fds().limits()
        } else if let Some(l) = set {
            l
        } else if resource == libc::RLIMIT_STACK as u64 {
            (layout::STACK_SIZE, layout::STACK_SIZE)
        } else {
            match host::getrlimit(resource as u32) {
                Ok(l) => l,
                Err(r) => return r,
            }
        };
        if let Some((c, m)) = want {
            if c > m {
                return EINVAL;
            }
            if resource == libc::RLIMIT_NOFILE as u64 {
                let r = self.proc.fds().set_limits(c, m);
                if r < 0 {
                    return r;
                }
            } else {
                self.proc.rlimits()[resource as usize] = Some((c, m));
            }
        }
        if old == 0 {
            return 0;
        }
        let mut b = [0u8; 16];
        b[..8].copy_from_slice(&cur.to_le_bytes());
        b[8..].copy_from_slice(&max.to_le_bytes());
        Self::put(mem, old, &b)
    }

    pub(super) fn sigaltstack(&mut self, new: u64, old: u64, mem: &GuestMemory) -> i64 {
        if old != 0 && mem.write_bytes(old, &self.thread.altstack).is_err() {
            return EFAULT;
        }
        if new != 0 {
            let mut b = [0u8; 24];
            if mem.read_bytes(new, &mut b).is_err() {
                return EFAULT;
            }
            self.thread.altstack = b;
        }
        0
    }

    pub(super) fn rt_sigaction(
        &mut self,
        sig: u64,
        act: u64,
        oact: u64,
        size: u64,
        mem: &GuestMemory,
    ) -> i64 {
        if size != 8 || sig == 0 || sig > 64 {
            return EINVAL;
        }
        if act != 0 && (sig == 9 || sig == 19) {
            return EINVAL;
        }
        let mut new = [0u8; 24];
        if act != 0 && mem.read_bytes(act, &mut new).is_err() {
            return EFAULT;
        }
        if oact != 0
            && mem
                .write_bytes(oact, &self.proc.sigactions()[sig as usize])
                .is_err()
        {
            return EFAULT;
        }
        if act != 0 {
            self.proc.sigactions()[sig as usize] = new;
        }
        0
    }

    pub(super) fn rt_sigprocmask(
        &mut self,
        how: u64,
        set: u64,
        oset: u64,
        size: u64,
        mem: &GuestMemory,
    ) -> i64 {
        if size != 8 {
            return EINVAL;
        }
        let new = if set != 0 {
            match mem.load64(set) {
                Ok(v) => Some(v),
                Err(_) => return EFAULT,
            }
        } else {
            None
        };
        if new.is_some() && how > 2 {
            return EINVAL;
        }
        if oset != 0
            && mem
                .write_bytes(oset, &self.thread.sigmask.to_le_bytes())
                .is_err()
        {
            return EFAULT;
        }
        if let Some(v) = new {
            self.thread.sigmask = match how {
                0 => self.thread.sigmask | v,
                1 => self.thread.sigmask & !v,
                _ => v,
            };
            // SIGKILL and SIGSTOP cannot be blocked.
            self.thread.sigmask &= !((1 << 8) | (1 << 18));
        }
        0
    }

    pub(super) fn signal_self(&mut self, sig: i32) -> Result<i64, SyscallExit> {
        if !(0..=64).contains(&sig) {
            return Ok(EINVAL);
        }
        if sig == 0 {
            return Ok(0);
        }
        let handler = u64::from_le_bytes(
            self.proc.sigactions()[sig as usize][..8]
                .try_into()
                .unwrap_or([0; 8]),
        );
        let blocked = self.thread.sigmask & (1 << (sig - 1)) != 0;
        if sig != 9 && (handler == 1 || blocked || (handler == 0 && default_ignored(sig))) {
            // Ignored or blocked: a blocked signal would stay pending forever, since
            // vmjit delivers no signals.
            return Ok(0);
        }
        if handler > 1 {
            host::write_stderr(
                format!(
                    "vmjit: warning: signal {sig} has a guest handler, but vmjit does not \
                     deliver signals; terminating as the default action would\n"
                )
                .as_bytes(),
            );
        }
        Err(SyscallExit::Signal(sig))
    }
}
