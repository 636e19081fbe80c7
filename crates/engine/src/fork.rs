//! fork, vfork and `clone` without `CLONE_VM`: a new guest process is a host fork of
//! vmjit.
//!
//! The child is a full copy of the VM as the forking thread sees it: guest memory (the
//! host copies it on write), registers, descriptors, dispositions, mask. It is not a
//! copy of the JIT: the code cache's memory is a `MAP_SHARED` mapping of one memfd, so
//! a child writing code there would write into its parent's code. The child starts a
//! code cache, compile threads and signal service of its own, and runs its first
//! blocks in the interpreter, like any new process; the parent's JIT objects are left
//! untouched in the child's memory (never run, never dropped: dropping them would wait
//! for compile threads that do not exist in the child).
//!
//! A vfork (`CLONE_VFORK`, with or without `CLONE_VM`: glibc's posix_spawn) is a fork
//! whose parent waits until the child has exec'd or ended, as qemu-user does it: the
//! child does not share the parent's memory.
//!
//! **Invariants.** Across the host fork the forking thread holds every process lock the
//! child uses (see `syscall::fork`); the child rebuilds its thread group and JIT before
//! it runs guest code, and reports no statistics (they are the first process's).

use std::sync::Arc;

use crate::hostproc;
use crate::memory::GuestMemory;
use crate::syscall::CloneRequest;
use crate::threads::GuestThread;

/// Forks the process `t` belongs to; the guest's result in each process (0 in the
/// child, its pid in the parent, or a negative errno).
pub(crate) fn fork(t: &mut GuestThread, mem: &Arc<GuestMemory>, req: CloneRequest) -> i64 {
    let vfork = req.vfork().then(hostproc::vfork_pipe).flatten();
    let locks = t.sys.fork_locks(mem);
    let pid = match hostproc::fork() {
        Ok(pid) => pid,
        Err(errno) => {
            drop(locks);
            if let Some((r, w)) = vfork {
                crate::host::close(r);
                crate::host::close(w);
            }
            return -i64::from(errno);
        }
    };
    if pid != 0 {
        drop(locks);
        if req.parent_settid() {
            let _ = mem.write_bytes(req.parent_tid, &(pid as u32).to_le_bytes());
        }
        if let Some((r, w)) = vfork {
            crate::host::close(w);
            hostproc::wait_for_eof(r);
        }
        return pid;
    }
    // The child: only this thread exists.
    let sys = t.sys.forked_child(&locks);
    drop(locks);
    if let Some((r, _w)) = vfork {
        // The write end stays open (close-on-exec) until the child execs or ends.
        crate::host::close(r);
    }
    let old_sys = std::mem::replace(&mut t.sys, sys);
    std::mem::forget(old_sys);
    let handle = Arc::clone(t.sys.thread_handle());
    std::mem::forget(std::mem::replace(&mut t.handle, Arc::clone(&handle)));
    std::mem::forget(std::mem::replace(&mut t.interp, rv64::Interpreter::new()));
    if let Some(old) = t.jit.take() {
        let config = old.config().clone();
        std::mem::forget(old);
        match crate::jit::Jit::new(config) {
            Ok(mut j) => {
                j.set_attention(Arc::clone(&handle));
                j.set_tid(handle.tid);
                t.jit = Some(Box::new(j));
            }
            Err(e) => {
                // Not fatal: the child interprets.
                crate::host::write_stderr(
                    format!(
                        "vmjit: warning: forked child {} runs without the JIT: {e}\n",
                        handle.tid
                    )
                    .as_bytes(),
                );
            }
        }
    }
    let pid = handle.tid;
    if req.child_settid() {
        let _ = mem.write_bytes(req.child_tid, &(pid as u32).to_le_bytes());
    }
    if req.child_cleartid() {
        t.sys.thread().clear_child_tid = req.child_tid;
    }
    if req.stack != 0 {
        t.cpu.x[2] = req.stack;
    }
    if req.settls() {
        t.cpu.x[4] = req.tls;
    }
    t.cpu.reservation = rv64::Cpu::NO_RESERVATION;
    if crate::host::forwarding() {
        t.sys.group().poke_service();
    }
    0
}
