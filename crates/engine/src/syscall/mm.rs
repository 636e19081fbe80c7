//! The guest address space: brk, mmap, munmap, mprotect, mremap, madvise, and the
//! bound on guest memory (`--max-memory`).
//!
//! **Invariant.** Guest memory mapped with some access (what
//! [`GuestMemory::accessible_bytes`] counts; `PROT_NONE` reservations are free, as under
//! Linux's overcommit accounting) never grows past the bound: a call that would pass it
//! fails as Linux fails when memory runs out (ENOMEM; brk keeps the old break), before
//! it changes anything. So a guest's memory use is bounded by vmjit, never ended by the
//! host's OOM killer.

use rv64::Memory;

use super::{EFAULT, EINVAL, ENOMEM, MmState, PROT_VALID, Syscalls, e};
use crate::host;
use crate::layout;
use crate::memory::{
    GUEST_SPACE, GuestMemory, PAGE_SIZE, PERM_MAPPED, PERM_R, PERM_W, USER_LIMIT, page_ceil,
    perm_from_prot,
};

/// Any of PROT_READ, PROT_WRITE, PROT_EXEC.
const PROT_ACCESS: u64 = 7;

impl MmState {
    /// True when the guest's accessible memory, less `freed` bytes and plus `need`,
    /// stays within the bound.
    fn fits(&self, mem: &GuestMemory, freed: u64, need: u64) -> bool {
        mem.accessible_bytes()
            .saturating_sub(freed)
            .saturating_add(need)
            <= self.mem_limit
    }

    pub(super) fn place(&mut self, len: u64, hint: u64, mem: &GuestMemory) -> Option<u64> {
        if hint != 0
            && hint.is_multiple_of(PAGE_SIZE)
            && hint >= self.brk_cur
            && hint
                .checked_add(len)
                .is_some_and(|end| end <= layout::MMAP_TOP)
            && mem.is_free(hint, len)
        {
            return Some(hint);
        }
        let lo = page_ceil(self.brk_cur)?.saturating_add(layout::BRK_RESERVE);
        // Search below the last placement first (cheap: usually the first pages
        // scanned are free); when that part is full, search again from the top, where
        // earlier munmaps may have left room.
        let at = match mem.find_free_top_down(len, lo, self.mmap_cursor) {
            Some(at) => at,
            None => {
                self.mmap_cursor = layout::MMAP_TOP;
                mem.find_free_top_down(len, lo, layout::MMAP_TOP)?
            }
        };
        self.mmap_cursor = self.mmap_cursor.min(at);
        Some(at)
    }
}

impl Syscalls {
    pub(super) fn sys_brk(&mut self, want: u64, mem: &GuestMemory) -> i64 {
        let (proc, thread) = (&self.proc, &mut self.thread);
        let mut mm = proc.mm();
        if want < mm.brk_start {
            return mm.brk_cur as i64;
        }
        let (Some(new_top), Some(old_top)) = (page_ceil(want), page_ceil(mm.brk_cur)) else {
            return mm.brk_cur as i64;
        };
        if new_top > layout::MMAP_TOP {
            return mm.brk_cur as i64;
        }
        if new_top > old_top {
            if !mem.is_free(old_top, new_top - old_top) || !mm.fits(mem, 0, new_top - old_top) {
                return mm.brk_cur as i64;
            }
            if mem
                .map(old_top, new_top - old_top, PERM_R | PERM_W)
                .is_err()
            {
                return mm.brk_cur as i64;
            }
        } else if new_top < old_top {
            thread.invalidate(mem, new_top, old_top - new_top);
            let _ = mem.unmap(new_top, old_top - new_top);
        }
        mm.brk_cur = want;
        want as i64
    }

    pub(super) fn mmap(&mut self, a: [u64; 6], mem: &GuestMemory) -> i64 {
        let (proc, thread) = (&self.proc, &mut self.thread);
        let mut mm = proc.mm();
        const MAP_SHARED: u64 = 1;
        const MAP_PRIVATE: u64 = 2;
        const MAP_SHARED_VALIDATE: u64 = 3;
        const MAP_FIXED: u64 = 0x10;
        const MAP_ANONYMOUS: u64 = 0x20;
        const MAP_FIXED_NOREPLACE: u64 = 0x10_0000;
        let [addr, len, prot, flags, fd, off] = a;
        if len == 0 || off % PAGE_SIZE != 0 || prot & !PROT_VALID != 0 {
            return EINVAL;
        }
        let Some(len) = page_ceil(len) else {
            return ENOMEM;
        };
        // Linux's test: the offset and length in pages must not wrap. A length larger
        // than the address space is then ENOMEM (no room), not EOVERFLOW.
        if (off >> 12).checked_add(len >> 12).is_none() {
            return e(libc::EOVERFLOW);
        }
        if len > GUEST_SPACE {
            return ENOMEM;
        }
        let kind = flags & 0xf;
        if !matches!(kind, MAP_SHARED | MAP_PRIVATE | MAP_SHARED_VALIDATE) {
            return EINVAL;
        }
        let mut anon = flags & MAP_ANONYMOUS != 0;
        // The descriptor is the guest's; keep its host descriptor open across the copy.
        let host = if anon {
            None
        } else {
            match proc.fds().host(fd as i32) {
                Ok(h) => Some(h),
                Err(r) => return r,
            }
        };
        let fd = host.as_ref().map_or(-1, |h| h.raw());
        // The pages of a regular file's mapping from here on lie past its end.
        let mut data_len = len;
        if !anon {
            let st = match host::fstat(fd) {
                Ok(st) => st,
                Err(r) => return r,
            };
            let ft = st.st_mode & libc::S_IFMT;
            if ft == libc::S_IFREG {
                let rest = (st.st_size.max(0) as u64).saturating_sub(off);
                data_len = page_ceil(rest).unwrap_or(len).min(len);
            }
            // /dev/zero maps as anonymous memory (a lone process cannot tell shared
            // anonymous memory from private).
            anon = ft == libc::S_IFCHR && st.st_rdev == libc::makedev(1, 5);
            if !anon {
                if kind != MAP_PRIVATE && prot & 2 != 0 {
                    // Writes to a shared file mapping would have to reach the file;
                    // vmjit copies file contents into guest memory instead, so refuse.
                    return e(libc::ENODEV);
                }
                // Only files (and block devices) have contents to map; directories,
                // pipes, sockets and other character devices have no mmap in Linux.
                if ft != libc::S_IFREG && ft != libc::S_IFBLK {
                    return e(libc::ENODEV);
                }
                // Linux needs read access to map a file, whatever `prot` asks for.
                let fl = host::fcntl_int(fd, libc::F_GETFL, 0);
                if fl >= 0 && fl as i32 & libc::O_ACCMODE == libc::O_WRONLY {
                    return e(libc::EACCES);
                }
            }
        }
        let fixed = flags & (MAP_FIXED | MAP_FIXED_NOREPLACE) != 0;
        let need = if prot & PROT_ACCESS != 0 { len } else { 0 };
        let freed = if fixed && addr % PAGE_SIZE == 0 {
            mem.accessible_in(addr, len)
        } else {
            0
        };
        if !mm.fits(mem, freed, need) {
            return ENOMEM;
        }
        let at = if fixed {
            if addr % PAGE_SIZE != 0 {
                return EINVAL;
            }
            if addr
                .checked_add(len)
                .is_none_or(|end| end > layout::STACK_TOP)
            {
                return ENOMEM;
            }
            if flags & MAP_FIXED_NOREPLACE != 0 && !mem.is_free(addr, len) {
                return e(libc::EEXIST);
            }
            thread.invalidate(mem, addr, len);
            if mem.unmap(addr, len).is_err() {
                return EINVAL;
            }
            addr
        } else {
            match mm.place(len, addr, mem) {
                Some(at) => at,
                None => return ENOMEM,
            }
        };
        if mem.map(at, len, PERM_R | PERM_W).is_err() {
            return ENOMEM;
        }
        if !anon {
            let mut done = 0u64;
            while done < len {
                let r = match mem.host_range(at + done, len - done, PERM_W) {
                    Ok(b) => host::pread(fd, b, off.wrapping_add(done) as i64),
                    Err(_) => EFAULT,
                };
                if r == -(libc::EINTR as i64) {
                    continue;
                }
                if r < 0 {
                    let _ = mem.unmap(at, len);
                    return r;
                }
                if r == 0 {
                    break;
                }
                done += r as u64;
            }
        }
        let _ = mem.protect(at, len, perm_from_prot(prot));
        if data_len < len {
            let _ = mem.mark_past_eof(at + data_len, len - data_len);
        }
        at as i64
    }

    pub(super) fn munmap(&mut self, addr: u64, len: u64, mem: &GuestMemory) -> i64 {
        let (proc, thread) = (&self.proc, &mut self.thread);
        // Held for the call: placement and MAP_FIXED see a stable address space.
        let _mm = proc.mm();
        if !addr.is_multiple_of(PAGE_SIZE) || len == 0 {
            return EINVAL;
        }
        let Some(len) = page_ceil(len) else {
            return EINVAL;
        };
        if addr.checked_add(len).is_none_or(|end| end > USER_LIMIT) {
            return EINVAL;
        }
        // Nothing can be mapped beyond the guest space, so that part is already done.
        let len = len.min(GUEST_SPACE.saturating_sub(addr));
        if len == 0 {
            return 0;
        }
        thread.invalidate(mem, addr, len);
        if mem.unmap(addr, len).is_err() {
            return EINVAL;
        }
        0
    }

    pub(super) fn mprotect(&mut self, addr: u64, len: u64, prot: u64, mem: &GuestMemory) -> i64 {
        let (proc, thread) = (&self.proc, &mut self.thread);
        let mm = proc.mm();
        if !addr.is_multiple_of(PAGE_SIZE) || prot & !PROT_VALID != 0 {
            return EINVAL;
        }
        let Some(len) = page_ceil(len) else {
            return ENOMEM;
        };
        if len == 0 {
            return 0;
        }
        if !mem.is_mapped(addr, len) {
            return ENOMEM;
        }
        let need = if prot & PROT_ACCESS != 0 { len } else { 0 };
        if !mm.fits(mem, mem.accessible_in(addr, len), need) {
            return ENOMEM;
        }
        // Hook for the JIT: code translated from these pages may be stale (W^X
        // toggling is how JIT-ing guests publish new code).
        thread.invalidate(mem, addr, len);
        if mem.protect(addr, len, perm_from_prot(prot)).is_err() {
            return ENOMEM;
        }
        0
    }

    pub(super) fn mremap(&mut self, a: [u64; 6], mem: &GuestMemory) -> i64 {
        let (proc, thread) = (&self.proc, &mut self.thread);
        let mut mm = proc.mm();
        const MREMAP_MAYMOVE: u64 = 1;
        const MREMAP_FIXED: u64 = 2;
        let [old, old_len, new_len, flags, new_addr, _] = a;
        if old % PAGE_SIZE != 0 || new_len == 0 || flags & !3 != 0 {
            return EINVAL;
        }
        if flags & MREMAP_FIXED != 0 && flags & MREMAP_MAYMOVE == 0 {
            return EINVAL;
        }
        let (Some(old_len), Some(new_len)) = (page_ceil(old_len), page_ceil(new_len)) else {
            return EINVAL;
        };
        // Linux allows old_len 0 only to duplicate a shared mapping, which vmjit has not.
        if old_len == 0 {
            return EINVAL;
        }
        if !mem.is_mapped(old, old_len) {
            return EFAULT;
        }
        let perm = mem.page_perm(old) & !PERM_MAPPED;
        let accessible = perm & (PERM_R | PERM_W | crate::memory::PERM_X) != 0;
        // A move frees the old pages (and whatever a fixed target replaces) and maps
        // the new ones; growing in place maps the difference.
        let moves = flags & MREMAP_FIXED != 0 || new_len > old_len;
        if moves && accessible {
            let (freed, need) = if flags & MREMAP_FIXED != 0 {
                (
                    mem.accessible_in(old, old_len) + mem.accessible_in(new_addr, new_len),
                    new_len,
                )
            } else {
                // In place or moved: either way `new_len - old_len` more, at most.
                (0, new_len - old_len)
            };
            if !mm.fits(mem, freed, need) {
                return ENOMEM;
            }
        }
        let target = if flags & MREMAP_FIXED != 0 {
            if new_addr % PAGE_SIZE != 0
                || new_addr
                    .checked_add(new_len)
                    .is_none_or(|end| end > layout::STACK_TOP)
            {
                return EINVAL;
            }
            // The old range must survive until it is copied: Linux refuses overlap.
            if new_addr < old + old_len && old < new_addr + new_len {
                return EINVAL;
            }
            thread.invalidate(mem, new_addr, new_len);
            if mem.unmap(new_addr, new_len).is_err() {
                return EINVAL;
            }
            Some(new_addr)
        } else if new_len <= old_len {
            if new_len < old_len {
                thread.invalidate(mem, old + new_len, old_len - new_len);
                let _ = mem.unmap(old + new_len, old_len - new_len);
            }
            return old as i64;
        } else if old
            .checked_add(new_len)
            .is_some_and(|end| end <= layout::MMAP_TOP)
            && mem.is_free(old + old_len, new_len - old_len)
        {
            let _ = mem.map(old + old_len, new_len - old_len, perm);
            return old as i64;
        } else if flags & MREMAP_MAYMOVE != 0 {
            mm.place(new_len, 0, mem)
        } else {
            None
        };
        let Some(to) = target else { return ENOMEM };
        if mem.map(to, new_len, PERM_R | PERM_W).is_err() {
            return ENOMEM;
        }
        let _ = mem.move_pages(old, to, old_len.min(new_len));
        let _ = mem.protect(to, new_len, perm);
        thread.invalidate(mem, old, old_len);
        let _ = mem.unmap(old, old_len);
        to as i64
    }

    pub(super) fn madvise(&mut self, addr: u64, len: u64, advice: u64, mem: &GuestMemory) -> i64 {
        let (proc, thread) = (&self.proc, &mut self.thread);
        // Held for the call: placement and MAP_FIXED see a stable address space.
        let _mm = proc.mm();
        const MADV_DONTNEED: u64 = 4;
        if !addr.is_multiple_of(PAGE_SIZE) {
            return EINVAL;
        }
        let Some(len) = page_ceil(len) else {
            return EINVAL;
        };
        if len == 0 {
            return 0;
        }
        if addr.checked_add(len).is_none_or(|end| end > USER_LIMIT) {
            return EINVAL;
        }
        // Linux applies the advice to the mapped parts and then reports a hole as
        // ENOMEM; discarding an unmapped page changes nothing (it reads as zero when
        // mapped again anyway).
        if advice == MADV_DONTNEED {
            let len = len.min(GUEST_SPACE.saturating_sub(addr));
            thread.invalidate(mem, addr, len);
            mem.discard(addr, len);
        }
        if !mem.is_mapped(addr, len) {
            return ENOMEM;
        }
        0
    }

    /// process_vm_readv/writev with the guest itself as the other process: a copy
    /// between its own iovecs (`a`: pid, local iov, count, remote iov, count, flags).
    /// Any other process is EPERM: vmjit shows the guest no other process's memory.
    pub(super) fn process_vm(&mut self, write: bool, a: [u64; 6], mem: &GuestMemory) -> i64 {
        let [pid, liov, lcnt, riov, rcnt, flags] = a;
        if flags != 0 {
            return EINVAL;
        }
        if pid as i64 != self.proc.pid {
            return e(libc::EPERM);
        }
        if lcnt > 1024 || rcnt > 1024 {
            return EINVAL;
        }
        let read_iov = |at: u64, n: u64| -> Option<Vec<(u64, u64)>> {
            (0..n)
                .map(|i| {
                    let p = at.wrapping_add(16 * i);
                    Some((mem.load64(p).ok()?, mem.load64(p.wrapping_add(8)).ok()?))
                })
                .collect()
        };
        let (Some(local), Some(remote)) = (read_iov(liov, lcnt), read_iov(riov, rcnt)) else {
            return EFAULT;
        };
        // Reading copies remote -> local, writing local -> remote.
        let (src, dst) = if write {
            (local, remote)
        } else {
            (remote, local)
        };
        let flatten = |v: &[(u64, u64)]| -> Vec<(u64, u64)> {
            v.iter().copied().filter(|&(_, len)| len != 0).collect()
        };
        let (src, dst) = (flatten(&src), flatten(&dst));
        let (mut si, mut so, mut di, mut doff) = (0usize, 0u64, 0usize, 0u64);
        let mut done: u64 = 0;
        let mut chunk = vec![0u8; 4096];
        while si < src.len() && di < dst.len() {
            let (sa, sl) = src[si];
            let (da, dl) = dst[di];
            let n = (sl - so).min(dl - doff).min(chunk.len() as u64);
            let buf = &mut chunk[..n as usize];
            if mem.read_bytes(sa.wrapping_add(so), buf).is_err()
                || mem.write_bytes(da.wrapping_add(doff), buf).is_err()
            {
                break;
            }
            done += n;
            so += n;
            doff += n;
            if so == sl {
                si += 1;
                so = 0;
            }
            if doff == dl {
                di += 1;
                doff = 0;
            }
        }
        if done == 0 && !src.is_empty() && !dst.is_empty() {
            return EFAULT;
        }
        done as i64
    }
}
