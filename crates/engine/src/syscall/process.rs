//! Process state: clocks and sleeps, uname, resource limits.

use rv64::Memory;

use super::abi::{read_timespec, timespec};
use super::{EFAULT, EINVAL, Syscalls, e};
use crate::host;
use crate::layout;
use crate::memory::GuestMemory;

impl Syscalls {
    /// nanosleep (`clk` CLOCK_MONOTONIC, `flags` 0, as Linux measures it) and
    /// clock_nanosleep. The host kernel validates the clock, flags and timespec. An
    /// interrupt that brings no signal for this thread (another thread's, a spurious
    /// kick) goes on sleeping for the time left, as Linux's restart does.
    pub(super) fn sleep(&self, clk: i32, flags: u64, req: u64, rem: u64, mem: &GuestMemory) -> i64 {
        const TIMER_ABSTIME: u64 = 1;
        let Some((mut s, mut ns)) = read_timespec(mem, req) else {
            return EFAULT;
        };
        loop {
            match host::clock_nanosleep(clk, flags as i32, s, ns) {
                Ok(()) => return 0,
                Err((r, (rs, rns))) => {
                    let relative = flags & TIMER_ABSTIME == 0;
                    if r == e(libc::EINTR) && !self.signal_pending() {
                        if relative {
                            (s, ns) = (rs, rns);
                        }
                        continue;
                    }
                    // Only an interrupted relative sleep reports the time left.
                    if r == e(libc::EINTR) && rem != 0 && relative {
                        let _ = Self::put(mem, rem, &timespec(rs, rns));
                    }
                    return r;
                }
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
}
