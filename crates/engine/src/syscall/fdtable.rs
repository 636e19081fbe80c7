//! The guest's descriptor table: guest descriptor numbers to host descriptors.
//!
//! A guest names descriptors only through this table, so vmjit's own (the code cache's
//! memory, the perf map, the stats file, later a persistent store) are out of its
//! reach whatever number it tries: an fd that is not in the table is `EBADF`.
//!
//! **Invariants.**
//! - Guest numbers are Linux's: each new descriptor gets the lowest free number (at or
//!   above a minimum for `F_DUPFD`), below the guest's `RLIMIT_NOFILE` soft limit, or
//!   `EMFILE`.
//! - Each guest number has its own host descriptor (a guest `dup` is a host `dup`), so
//!   host semantics that depend on descriptor identity (epoll registrations, record
//!   locks) carry over. The host descriptor is placed at the guest's number when that
//!   host number is free, which is the normal case: vmjit keeps its own descriptors at
//!   or above [`crate::sandbox::internal_floor`]. Paths that the host resolves through
//!   `/proc/self/fd` (a guest's own symlink to it, say) then name the guest's file.
//! - Close-on-exec is a property of the guest number, kept here. Every host descriptor
//!   made for the guest is close-on-exec on the host.
//! - Descriptors the guest inherited (stdio, whatever vmjit was started with) are
//!   closed when the guest closes them, never when the table is dropped (a library
//!   embedder's own stdio stays open).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::host;

/// `EBADF` as a negative errno.
pub(crate) const EBADF: i64 = -(libc::EBADF as i64);

/// One host descriptor held by the guest.
#[derive(Debug)]
pub(crate) struct HostFd {
    raw: i32,
    /// Closed when the last reference goes: always for descriptors made for the guest,
    /// for inherited ones only once the guest closed them.
    close_on_drop: AtomicBool,
}

impl HostFd {
    /// The host descriptor number.
    pub(crate) fn raw(&self) -> i32 {
        self.raw
    }
}

impl Drop for HostFd {
    fn drop(&mut self) {
        if self.close_on_drop.load(Ordering::Relaxed) {
            host::close(self.raw);
        }
    }
}

/// What a guest descriptor refers to, when vmjit has to know more than the host does.
#[derive(Debug, Clone, Default)]
pub(crate) enum Kind {
    /// An ordinary host descriptor.
    #[default]
    Plain,
    /// A directory under vmjit's own `/proc/<pid>` (normalised guest path, e.g.
    /// `/proc/self/task/12`): paths relative to it are resolved by `procfs`.
    ProcDir(Box<[u8]>),
    /// The guest's view of `/proc/self/fd` (or `fdinfo`): listed from this table.
    /// `pos` is the next entry to return.
    FdDir { info: bool, pos: u64 },
}

/// One slot of the table.
#[derive(Debug, Clone)]
pub(crate) struct Slot {
    pub(crate) host: Arc<HostFd>,
    pub(crate) cloexec: bool,
    pub(crate) kind: Kind,
}

/// The guest's descriptor table (per process; threads will share it).
#[derive(Debug)]
pub(crate) struct FdTable {
    slots: Vec<Option<Slot>>,
    /// The guest's `RLIMIT_NOFILE`: new numbers are below `soft`.
    soft: u64,
    hard: u64,
}

impl FdTable {
    /// An empty table with the guest's initial limits.
    pub(crate) fn new() -> Self {
        crate::sandbox::init();
        let (soft, hard) = crate::sandbox::guest_nofile();
        FdTable {
            slots: Vec::new(),
            soft,
            hard,
        }
    }

    /// The table of a forked child: the same host numbers (the child inherited them),
    /// each under a new [`HostFd`] the child owns, so that the child's close really
    /// closes its copy (the parent's table, left behind in the child's memory, is never
    /// dropped). Slots that shared one host descriptor still do.
    pub(crate) fn fork_copy(&self) -> Self {
        let mut made: Vec<(*const HostFd, Arc<HostFd>)> = Vec::new();
        let slots = self
            .slots
            .iter()
            .map(|s| {
                s.as_ref().map(|s| {
                    let key = Arc::as_ptr(&s.host);
                    let host = match made.iter().find(|(k, _)| *k == key) {
                        Some((_, h)) => Arc::clone(h),
                        None => {
                            let h = Arc::new(HostFd {
                                raw: s.host.raw,
                                close_on_drop: AtomicBool::new(
                                    s.host.close_on_drop.load(Ordering::Relaxed),
                                ),
                            });
                            made.push((key, Arc::clone(&h)));
                            h
                        }
                    };
                    Slot {
                        host,
                        cloexec: s.cloexec,
                        kind: s.kind.clone(),
                    }
                })
            })
            .collect();
        FdTable {
            slots,
            soft: self.soft,
            hard: self.hard,
        }
    }

    /// The guest descriptors an exec keeps (not close-on-exec): guest number and host
    /// descriptor.
    pub(crate) fn kept_across_exec(&self) -> Vec<(i32, i32)> {
        self.slots
            .iter()
            .enumerate()
            .filter_map(|(g, s)| {
                let s = s.as_ref()?;
                (!s.cloexec).then_some((g as i32, s.host.raw))
            })
            .collect()
    }

    /// A table holding the host's stdio descriptors that are open, at their numbers.
    pub(crate) fn with_stdio() -> Self {
        let mut t = Self::new();
        for fd in 0..3 {
            t.inherit(fd);
        }
        t
    }

    /// Gives the guest host descriptor `fd` (open in vmjit, not owned by anything
    /// else in vmjit) under the same number; nothing happens when it is not open or
    /// the number is taken or beyond the guest's limit.
    pub(crate) fn inherit(&mut self, fd: i32) {
        if fd < 0 || fd as u64 >= self.hard || self.get(fd).is_ok() {
            return;
        }
        if host::fcntl_int(fd, libc::F_GETFD, 0) < 0 {
            return;
        }
        let host = Arc::new(HostFd {
            raw: fd,
            close_on_drop: AtomicBool::new(false),
        });
        self.set(
            fd,
            Slot {
                host,
                cloexec: false,
                kind: Kind::Plain,
            },
        );
    }

    /// The guest's `RLIMIT_NOFILE` (soft, hard).
    pub(crate) fn limits(&self) -> (u64, u64) {
        (self.soft, self.hard)
    }

    /// Sets the guest's `RLIMIT_NOFILE`; `-EINVAL` when soft > hard, `-EPERM` above
    /// the most vmjit can give (its descriptors sit above that).
    pub(crate) fn set_limits(&mut self, soft: u64, hard: u64) -> i64 {
        if soft > hard {
            return -i64::from(libc::EINVAL);
        }
        if hard > crate::sandbox::guest_nofile().1 {
            return -i64::from(libc::EPERM);
        }
        self.soft = soft;
        self.hard = hard;
        0
    }

    fn slot(&self, fd: i32) -> Option<&Slot> {
        usize::try_from(fd)
            .ok()
            .and_then(|i| self.slots.get(i)?.as_ref())
    }

    /// The slot of guest descriptor `fd`, or `-EBADF`.
    pub(crate) fn get(&self, fd: i32) -> Result<&Slot, i64> {
        self.slot(fd).ok_or(EBADF)
    }

    /// Mutable access to the slot of `fd`, or `-EBADF`.
    pub(crate) fn get_mut(&mut self, fd: i32) -> Result<&mut Slot, i64> {
        usize::try_from(fd)
            .ok()
            .and_then(|i| self.slots.get_mut(i)?.as_mut())
            .ok_or(EBADF)
    }

    /// The host descriptor of guest descriptor `fd` (a reference that keeps it open
    /// for the duration of a call), or `-EBADF`.
    pub(crate) fn host(&self, fd: i32) -> Result<Arc<HostFd>, i64> {
        self.get(fd).map(|s| s.host.clone())
    }

    /// Open guest descriptor numbers, ascending.
    pub(crate) fn numbers(&self) -> Vec<i32> {
        (0..self.slots.len())
            .filter(|&i| self.slots[i].is_some())
            .map(|i| i as i32)
            .collect()
    }

    /// The lowest free guest number at or above `min`, or `-EMFILE`.
    fn lowest_free(&self, min: i32) -> Result<i32, i64> {
        let start = min.max(0) as usize;
        let n = (start..)
            .find(|&i| self.slots.get(i).is_none_or(Option::is_none))
            .unwrap_or(usize::MAX);
        if n as u64 >= self.soft {
            Err(-i64::from(libc::EMFILE))
        } else {
            Ok(n as i32)
        }
    }

    fn set(&mut self, fd: i32, slot: Slot) -> Option<Slot> {
        let i = fd as usize;
        if self.slots.len() <= i {
            self.slots.resize(i + 1, None);
        }
        self.slots[i].replace(slot)
    }

    /// True when host descriptor number `h` may be taken for a guest descriptor: no
    /// guest slot uses it and it is not open.
    fn host_number_free(&self, h: i32) -> bool {
        !self.slots.iter().flatten().any(|s| s.host.raw == h)
            && host::fcntl_int(h, libc::F_GETFD, 0) == EBADF
    }

    /// Puts host descriptor `h` (made for the guest, close-on-exec on the host) at guest
    /// number `g`, moving it to host number `g` when that is free.
    fn placed(&self, g: i32, h: i32) -> HostFd {
        let mut raw = h;
        if h != g && self.host_number_free(g) {
            let r = host::fcntl_int(h, libc::F_DUPFD_CLOEXEC, g as u64);
            if r == i64::from(g) {
                host::close(h);
                raw = g;
            } else if r >= 0 {
                host::close(r as i32);
            }
        }
        HostFd {
            raw,
            close_on_drop: AtomicBool::new(true),
        }
    }

    /// Gives the guest host descriptor `h` (made for it, close-on-exec on the host)
    /// under the lowest free number at or above `min`. Consumes `h`: on `-EMFILE` it
    /// is closed.
    pub(crate) fn insert(&mut self, h: i32, cloexec: bool, min: i32, kind: Kind) -> i64 {
        let g = match self.lowest_free(min) {
            Ok(g) => g,
            Err(e) => {
                host::close(h);
                return e;
            }
        };
        let host = Arc::new(self.placed(g, h));
        self.set(
            g,
            Slot {
                host,
                cloexec,
                kind,
            },
        );
        i64::from(g)
    }

    /// Closes guest descriptor `fd`: `-EBADF` when it is not open, else the host
    /// close's result (as in Linux, the descriptor is gone whatever that is).
    pub(crate) fn close(&mut self, fd: i32) -> i64 {
        let Some(slot) = usize::try_from(fd)
            .ok()
            .and_then(|i| self.slots.get_mut(i)?.take())
        else {
            return EBADF;
        };
        match Arc::try_unwrap(slot.host) {
            Ok(hf) => {
                hf.close_on_drop.store(false, Ordering::Relaxed);
                host::close(hf.raw)
            }
            // Another call still uses it: the last reference closes it.
            Err(shared) => {
                shared.close_on_drop.store(true, Ordering::Relaxed);
                0
            }
        }
    }

    /// `dup(fd)` / `fcntl(fd, F_DUPFD[_CLOEXEC], min)`.
    pub(crate) fn dup(&mut self, fd: i32, min: i32, cloexec: bool) -> i64 {
        let (h, kind) = match self.get(fd) {
            Ok(s) => (s.host.raw, s.kind.clone()),
            Err(e) => return e,
        };
        if min < 0 || min as u64 >= self.soft {
            return -i64::from(libc::EINVAL);
        }
        let g = match self.lowest_free(min) {
            Ok(g) => g,
            Err(e) => return e,
        };
        let target = if self.host_number_free(g) { g } else { 0 };
        let nh = host::fcntl_int(h, libc::F_DUPFD_CLOEXEC, target as u64);
        if nh < 0 {
            return nh;
        }
        self.insert(nh as i32, cloexec, g, kind)
    }

    /// `dup3(old, new, flags)` (`dup2` when `old != new`): `new` is replaced atomically
    /// when its host number allows.
    pub(crate) fn dup3(&mut self, old: i32, new: i32, cloexec: bool) -> i64 {
        let (h, kind) = match self.get(old) {
            Ok(s) => (s.host.raw, s.kind.clone()),
            Err(e) => return e,
        };
        if new < 0 || new as u64 >= self.soft {
            return EBADF;
        }
        if old == new {
            return -i64::from(libc::EINVAL);
        }
        let identity = self.slot(new).is_some_and(|s| s.host.raw == new);
        let raw = if identity || self.host_number_free(new) {
            // The host replaces the old descriptor at `new` atomically, as Linux does
            // for the guest.
            let r = host::int_call(
                libc::SYS_dup3,
                [h as u64, new as u64, libc::O_CLOEXEC as u64, 0, 0, 0],
            );
            if r < 0 {
                return r;
            }
            if let Some(old_slot) = usize::try_from(new)
                .ok()
                .and_then(|i| self.slots.get_mut(i)?.take())
            {
                // Its host descriptor number now holds the new file: never close it.
                old_slot.host.close_on_drop.store(false, Ordering::Relaxed);
            }
            new
        } else {
            let r = host::fcntl_int(h, libc::F_DUPFD_CLOEXEC, 0);
            if r < 0 {
                return r;
            }
            self.close(new);
            r as i32
        };
        self.set(
            new,
            Slot {
                host: Arc::new(HostFd {
                    raw,
                    close_on_drop: AtomicBool::new(true),
                }),
                cloexec,
                kind,
            },
        );
        i64::from(new)
    }

    /// `close_range(first, last, flags)`: closes (or, with `CLOSE_RANGE_CLOEXEC`, marks
    /// close-on-exec) every guest descriptor in the range.
    pub(crate) fn close_range(&mut self, first: u64, last: u64, flags: u64) -> i64 {
        const UNSHARE: u64 = 2;
        const CLOEXEC: u64 = 4;
        if flags & !(UNSHARE | CLOEXEC) != 0 || first > last {
            return -i64::from(libc::EINVAL);
        }
        let hi = last.min(self.slots.len() as u64);
        for fd in first..hi {
            let fd = fd as i32;
            if flags & CLOEXEC != 0 {
                if let Ok(s) = self.get_mut(fd) {
                    s.cloexec = true;
                }
            } else {
                self.close(fd);
            }
        }
        if last >= hi && (hi as usize) < self.slots.len() {
            // `last` itself (the loop's range is half open) when it lies inside.
            let fd = hi as i32;
            if flags & CLOEXEC != 0 {
                if let Ok(s) = self.get_mut(fd) {
                    s.cloexec = true;
                }
            } else {
                self.close(fd);
            }
        }
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pipe() -> [i32; 2] {
        host::pipe2(libc::O_CLOEXEC).expect("pipe")
    }

    #[test]
    fn numbers_are_the_lowest_free_ones_from_three() {
        let mut t = FdTable::new();
        for fd in 0..3 {
            let [r, w] = pipe();
            host::close(w);
            assert_eq!(t.insert(r, false, 0, Kind::Plain), i64::from(fd));
        }
        let [r, w] = pipe();
        assert_eq!(t.insert(r, false, 0, Kind::Plain), 3);
        assert_eq!(t.insert(w, false, 0, Kind::Plain), 4);
        assert_eq!(t.close(3), 0);
        assert_eq!(t.close(3), EBADF);
        let d = t.dup(4, 0, false);
        assert_eq!(d, 3, "the freed number is reused first");
        assert_eq!(t.dup(4, 10, true), 10);
        assert!(t.get(10).unwrap().cloexec);
        assert_eq!(t.numbers(), vec![0, 1, 2, 3, 4, 10]);
    }

    #[test]
    fn a_descriptor_not_in_the_table_is_ebadf_even_if_the_host_has_it() {
        let t = FdTable::new();
        let [r, w] = pipe();
        assert_eq!(t.host(r).err(), Some(EBADF));
        assert_eq!(t.host(w).err(), Some(EBADF));
        host::close(r);
        host::close(w);
    }

    #[test]
    fn dup3_replaces_the_target_and_respects_the_limit() {
        let mut t = FdTable::new();
        let [r, w] = pipe();
        let r = t.insert(r, false, 0, Kind::Plain) as i32;
        let w = t.insert(w, false, 0, Kind::Plain) as i32;
        assert_eq!(t.dup3(r, 40, false), 40);
        assert_eq!(t.dup3(w, 40, true), 40, "replaces the open 40");
        assert!(t.get(40).unwrap().cloexec);
        assert_eq!(t.dup3(w, w, false), -i64::from(libc::EINVAL));
        let soft = t.limits().0 as i32;
        assert_eq!(t.dup3(w, soft, false), EBADF);
        assert_eq!(t.dup(w, soft, false), -i64::from(libc::EINVAL));
        assert_eq!(t.dup3(99, 41, false), EBADF);
    }

    #[test]
    fn emfile_past_the_soft_limit() {
        let mut t = FdTable::new();
        assert_eq!(t.set_limits(2, 2), 0);
        let [r, w] = pipe();
        assert_eq!(t.insert(r, false, 0, Kind::Plain), 0);
        assert_eq!(t.insert(w, false, 0, Kind::Plain), 1);
        let [r2, w2] = pipe();
        assert_eq!(
            t.insert(r2, false, 0, Kind::Plain),
            -i64::from(libc::EMFILE)
        );
        host::close(w2);
        assert_eq!(t.set_limits(3, 2), -i64::from(libc::EINVAL));
        assert_eq!(t.set_limits(1, u64::MAX), -i64::from(libc::EPERM));
    }

    #[test]
    fn close_range_closes_or_marks_the_range() {
        let mut t = FdTable::new();
        let mut fds = Vec::new();
        for _ in 0..3 {
            let [r, w] = pipe();
            fds.push(t.insert(r, false, 0, Kind::Plain));
            fds.push(t.insert(w, false, 0, Kind::Plain));
        }
        assert_eq!(fds, vec![0, 1, 2, 3, 4, 5]);
        assert_eq!(t.close_range(1, 2, 4), 0);
        assert!(t.get(1).unwrap().cloexec && t.get(2).unwrap().cloexec);
        assert!(!t.get(3).unwrap().cloexec);
        assert_eq!(t.close_range(3, u64::from(u32::MAX), 0), 0);
        assert_eq!(t.numbers(), vec![0, 1, 2]);
        assert_eq!(t.close_range(2, 1, 0), -i64::from(libc::EINVAL));
        assert_eq!(t.close_range(0, 1, 8), -i64::from(libc::EINVAL));
    }

    #[test]
    fn inherited_descriptors_survive_the_table() {
        let [r, w] = pipe();
        {
            let mut t = FdTable::new();
            t.inherit(r);
            assert!(t.get(r).is_ok());
        }
        assert_eq!(
            host::fcntl_int(r, libc::F_GETFD, 0),
            i64::from(libc::FD_CLOEXEC)
        );
        host::close(r);
        host::close(w);
    }
}
