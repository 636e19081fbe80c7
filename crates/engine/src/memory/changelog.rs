//! What a crosscheck needs of guest memory: a log of the changes made outside guest
//! code ([`GuestMemory::start_change_log`]) to replay them on a copy, the copy itself
//! ([`GuestMemory::duplicate`]) and the first difference between two memories. Used by
//! one guest thread at a time (a crosscheck runs single-threaded guests).

use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::Relaxed;

use super::*;

/// A change to guest memory made outside guest code (by the loader, the system-call
/// layer, or the host kernel through a [`HostRange`]), recorded while a change log is
/// on ([`GuestMemory::start_change_log`]). Applied in order to an identical copy of the
/// memory ([`GuestMemory::apply_changes`]), the changes make it identical again.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MemChange {
    /// [`GuestMemory::map`].
    Map { addr: u64, len: u64, perm: u8 },
    /// [`GuestMemory::map_union`].
    MapUnion { addr: u64, len: u64, perm: u8 },
    /// [`GuestMemory::unmap`].
    Unmap { addr: u64, len: u64 },
    /// [`GuestMemory::protect`].
    Protect { addr: u64, len: u64, perm: u8 },
    /// [`GuestMemory::move_pages`].
    MovePages { from: u64, to: u64, len: u64 },
    /// [`GuestMemory::discard`].
    Discard { addr: u64, len: u64 },
    /// [`GuestMemory::copy_within`].
    CopyWithin { from: u64, to: u64, len: u64 },
    /// Bytes written: [`GuestMemory::write_bytes`] and its privileged form, or what the
    /// host kernel wrote into a range that a later change moved or dropped.
    Bytes { addr: u64, data: Vec<u8> },
    /// The host kernel was handed `[addr, addr+len)` to write (a [`HostRange`] taken
    /// with [`PERM_W`]); what it wrote is read from the logging memory when the change
    /// is applied.
    HostWrite { addr: u64, len: u64 },
}

/// The change log of a [`GuestMemory`].
#[derive(Debug, Default)]
pub(super) struct ChangeLog {
    changes: Vec<MemChange>,
    /// Index of the first `HostWrite` in `changes` whose contents have not been frozen
    /// into `Bytes`.
    unfrozen: usize,
}

/// The first difference between two guest memories ([`GuestMemory::first_difference`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MemDifference {
    /// The page at `addr` has different permissions (`PERM_*` bits, 0 when unmapped).
    Permission { addr: u64, ours: u8, theirs: u8 },
    /// The byte at `addr` differs; `word` is the address of the aligned 8-byte word
    /// holding it, and `ours`/`theirs` that word's values (little endian).
    Contents {
        addr: u64,
        word: u64,
        ours: u64,
        theirs: u64,
    },
}

impl MemDifference {
    /// The guest address where the memories first differ.
    pub fn addr(&self) -> u64 {
        match *self {
            MemDifference::Permission { addr, .. } | MemDifference::Contents { addr, .. } => addr,
        }
    }
}

/// Permission bits that describe a mapping (the rest of a table entry is derived).
const PERM_BITS: u8 = PERM_R | PERM_W | PERM_X | PERM_MAPPED;

/// The first page at or after `page` that either table has an entry for (`NUM_PAGES`
/// when none), skipping empty parts 64 entries (8 words) at a time (most of the table).
fn next_mapped(a: &GuestMemory, b: &GuestMemory, mut page: usize) -> usize {
    const SPAN: usize = 64;
    let (wa, wb) = (a.perm_words(), b.perm_words());
    let empty = |w: &[AtomicU64], i: usize| {
        w[i / 8..i / 8 + SPAN / 8]
            .iter()
            .fold(0, |acc, x| acc | x.load(Relaxed))
            == 0
    };
    while page < NUM_PAGES {
        if page.is_multiple_of(SPAN)
            && page + SPAN <= NUM_PAGES
            && empty(wa, page)
            && empty(wb, page)
        {
            page += SPAN;
            continue;
        }
        if a.perm_at(page) | b.perm_at(page) != 0 {
            return page;
        }
        page += 1;
    }
    NUM_PAGES
}

impl GuestMemory {
    /// Starts recording every change made outside guest code ([`MemChange`]): what
    /// [`GuestMemory::apply_changes`] needs to keep a copy of this memory identical.
    /// Loads and stores through [`Memory`] (guest code, in any tier) are never
    /// recorded, and with the log off each recording point costs one branch.
    pub fn start_change_log(&self) {
        self.lock().log.get_or_insert_with(Box::default);
        self.logging.store(true, Relaxed);
    }

    /// Stops recording and drops what was recorded.
    pub fn stop_change_log(&self) {
        self.logging.store(false, Relaxed);
        self.lock().log = None;
    }

    /// The changes recorded since the log was started or last taken, oldest first.
    /// `HostWrite` entries refer to this memory's current contents: apply them before
    /// it changes again.
    pub fn take_changes(&self) -> Vec<MemChange> {
        match &mut self.lock().log {
            Some(log) => {
                log.unfrozen = 0;
                std::mem::take(&mut log.changes)
            }
            None => Vec::new(),
        }
    }

    /// Applies `changes` (taken from `source` with [`GuestMemory::take_changes`]) to
    /// this memory, in order; `HostWrite` contents are copied from `source`. When this
    /// memory was identical to `source` before the changes were made there, it is
    /// identical again afterwards.
    pub fn apply_changes(
        &self,
        changes: &[MemChange],
        source: &GuestMemory,
    ) -> Result<(), MemoryError> {
        for c in changes {
            match *c {
                MemChange::Map { addr, len, perm } => self.map(addr, len, perm)?,
                MemChange::MapUnion { addr, len, perm } => self.map_union(addr, len, perm)?,
                MemChange::Unmap { addr, len } => self.unmap(addr, len)?,
                MemChange::Protect { addr, len, perm } => self.protect(addr, len, perm)?,
                MemChange::MovePages { from, to, len } => self.move_pages(from, to, len)?,
                MemChange::Discard { addr, len } => self.discard(addr, len),
                MemChange::CopyWithin { from, to, len } => self
                    .copy_within(from, to, len)
                    .map_err(|_| MemoryError::NotMapped { addr: from, len })?,
                MemChange::Bytes { addr, ref data } => self
                    .write_bytes_privileged(addr, data)
                    .map_err(|_| MemoryError::NotMapped {
                        addr,
                        len: data.len() as u64,
                    })?,
                MemChange::HostWrite { addr, len } => {
                    let not_mapped = MemoryError::NotMapped { addr, len };
                    source
                        .check_range(addr, len, PERM_MAPPED)
                        .map_err(|_| MemoryError::NotMapped { addr, len })?;
                    if len > 0 {
                        self.write_bytes_privileged(addr, &source.mapped_bytes(addr, len))
                            .map_err(|_| not_mapped)?;
                    }
                }
            }
        }
        Ok(())
    }

    /// A new guest memory with the same mappings, permissions and contents (pages that
    /// read as zero are not copied, so they stay uncommitted in the copy).
    pub fn duplicate(&self) -> Result<GuestMemory, MemoryError> {
        let copy = GuestMemory::new()?;
        for (first, end, perm) in self.mapped_page_runs() {
            let (addr, len) = (
                (first as u64) << PAGE_SHIFT,
                ((end - first) as u64) << PAGE_SHIFT,
            );
            copy.map(addr, len, perm & !PERM_MAPPED)?;
            for page in first..end {
                let at = (page as u64) << PAGE_SHIFT;
                let bytes = self.mapped_bytes(at, PAGE_SIZE);
                if bytes.iter().any(|&b| b != 0) {
                    copy.copy_in(at, &bytes);
                }
            }
        }
        Ok(copy)
    }

    /// The first difference between this memory and `other`, scanning up from address
    /// 0: a page mapped with different permissions, or a byte that differs in a page
    /// both map. `None` when the two are identical.
    ///
    /// Pages that the host holds in memory in neither reservation (`mincore`) are taken
    /// to be equal without being read: an untouched anonymous page reads as zero in
    /// both. That is exact unless the host swapped both copies out, which only delays
    /// the report of a difference there until a later comparison.
    pub fn first_difference(&self, other: &GuestMemory) -> Option<MemDifference> {
        let ours = |p: usize| self.perm_at(p) & PERM_BITS;
        let theirs = |p: usize| other.perm_at(p) & PERM_BITS;
        // Runs of consecutive pages with the same, non-zero permission on both sides.
        let mut page = 0usize;
        while page < NUM_PAGES {
            page = next_mapped(self, other, page);
            if page >= NUM_PAGES {
                break;
            }
            let (pa, pb) = (ours(page), theirs(page));
            if pa != pb {
                return Some(MemDifference::Permission {
                    addr: (page as u64) << PAGE_SHIFT,
                    ours: pa,
                    theirs: pb,
                });
            }
            if pa == 0 {
                page += 1;
                continue;
            }
            let mut end = page + 1;
            while end < NUM_PAGES && ours(end) == pa && theirs(end) == pa {
                end += 1;
            }
            if let Some(d) = self.first_content_difference(other, page, end) {
                return Some(d);
            }
            page = end;
        }
        None
    }

    /// The first differing byte in the pages `first..end`, mapped in both memories.
    fn first_content_difference(
        &self,
        other: &GuestMemory,
        first: usize,
        end: usize,
    ) -> Option<MemDifference> {
        let ra = self.resident(first, end);
        let rb = other.resident(first, end);
        for page in first..end {
            let i = page - first;
            let resident = |r: &Option<Vec<u8>>| r.as_ref().is_none_or(|v| v[i] & 1 != 0);
            if !resident(&ra) && !resident(&rb) {
                continue;
            }
            let at = (page as u64) << PAGE_SHIFT;
            let a = self.mapped_bytes(at, PAGE_SIZE);
            let b = other.mapped_bytes(at, PAGE_SIZE);
            if a == b {
                continue;
            }
            let k = a.iter().zip(&b).position(|(x, y)| x != y).unwrap_or(0);
            let addr = at + k as u64;
            let word = addr & !7;
            let off = (word - at) as usize;
            let value = |s: &[u8]| u64::from_le_bytes(s[off..off + 8].try_into().unwrap_or([0; 8]));
            return Some(MemDifference::Contents {
                addr,
                word,
                ours: value(&a),
                theirs: value(&b),
            });
        }
        None
    }

    /// `mincore` of the pages `first..end`: one byte per page, bit 0 set when the host
    /// holds the page in memory. `None` when the host cannot tell (every page is then
    /// treated as resident).
    fn resident(&self, first: usize, end: usize) -> Option<Vec<u8>> {
        let mut v = vec![0u8; end - first];
        // SAFETY: pages `first..end` lie inside the reservation this value owns (they
        // are entries of its page table); mincore only reads the host page tables and
        // writes one byte per page into `v`, which has exactly that many.
        let r = unsafe {
            libc::mincore(
                self.base.as_ptr().add(first << PAGE_SHIFT).cast(),
                (end - first) << PAGE_SHIFT,
                v.as_mut_ptr(),
            )
        };
        (r == 0).then_some(v)
    }

    /// Maximal runs of mapped pages with equal permissions: `(first, end, perm)`.
    pub(super) fn mapped_page_runs(&self) -> Vec<(usize, usize, u8)> {
        let mut runs = Vec::new();
        let mut page = 0usize;
        while page < NUM_PAGES {
            page = next_mapped(self, self, page);
            if page >= NUM_PAGES {
                break;
            }
            let p = self.perm_at(page) & PERM_BITS;
            if p == 0 {
                page += 1;
                continue;
            }
            let mut end = page + 1;
            while end < NUM_PAGES && self.perm_at(end) & PERM_BITS == p {
                end += 1;
            }
            runs.push((page, end, p));
            page = end;
        }
        runs
    }

    /// A copy of the bytes of a range whose pages are all mapped, whatever their
    /// permissions (empty when they are not).
    pub(super) fn mapped_bytes(&self, addr: u64, len: u64) -> Vec<u8> {
        if len == 0 || self.check_range(addr, len, PERM_MAPPED).is_err() {
            return Vec::new();
        }
        let mut v = vec![0u8; len as usize];
        copy_out(self.base.as_ptr().wrapping_add(addr as usize), &mut v);
        v
    }

    /// Records a host-kernel write into `[addr, addr+len)` (checked), if logging.
    pub(super) fn log_host_write(&self, addr: u64, len: u64) {
        if len > 0
            && self.logging.load(Relaxed)
            && let Some(log) = &mut self.lock().log
        {
            log.changes.push(MemChange::HostWrite { addr, len });
        }
    }

    /// Records a change that was just made, if logging (the caller holds the lock).
    #[inline]
    pub(super) fn log_change(st: &mut MapState, change: impl FnOnce() -> MemChange) {
        if let Some(log) = &mut st.log {
            log.changes.push(change());
        }
    }

    /// Before a change that moves or drops contents: turns the `HostWrite`s recorded so
    /// far into the bytes they hold now, so that applying the log in order reproduces
    /// them before the change (the caller holds the lock).
    pub(super) fn freeze_host_writes(&self, st: &mut MapState) {
        let Some(log) = &mut st.log else {
            return;
        };
        for i in log.unfrozen..log.changes.len() {
            if let MemChange::HostWrite { addr, len } = log.changes[i] {
                log.changes[i] = MemChange::Bytes {
                    addr,
                    data: self.mapped_bytes(addr, len),
                };
            }
        }
        log.unfrozen = log.changes.len();
    }
}
