//! Large zero-initialised arrays in fresh anonymous pages.
//!
//! The shared index's tables and entry slots are sized for the configured maximum entry
//! count (the engine's default needs about 1.8 MB), while a short run uses a small part of
//! them. Anonymous pages read as zero and cost nothing until first touched. The global
//! allocator gives no such promise: it zeroes over-aligned allocations (the 64-byte
//! aligned slots) with a memset, and `calloc` clears reused heap memory too, which
//! faulted in every page at cache creation (300 page faults, a tenth of a short run's
//! start-up).
//!
//! **Invariant.** A `ZeroedSlice<T>` owns a private anonymous mapping of exactly
//! `len * size_of::<T>()` bytes (rounded up to pages), page aligned, unmapped on drop;
//! `T` is only instantiated for types whose all-zero bytes are a valid value
//! ([`ZeroValid`]).

use std::ptr::NonNull;

/// Types for which all-zero bytes are a valid value and `align_of` is at most a page.
///
/// # Safety
/// Implementors must guarantee both properties.
pub(crate) unsafe trait ZeroValid: Sync {}

// SAFETY: `AtomicU64` has the size, alignment and bit validity of `u64`; 0 is valid.
unsafe impl ZeroValid for crate::sync::AtomicU64 {}

// SAFETY: every field of `Slot` is a std integer atomic (the bit validity of its
// integer), so all-zero bytes are a valid `Slot`: `Slot::default()`, a free slot with
// every counter 0. Its alignment is 64.
unsafe impl ZeroValid for crate::index::Slot {}

/// A fixed-length slice of `T` in its own anonymous mapping; see the module docs.
pub(crate) struct ZeroedSlice<T: ZeroValid> {
    ptr: NonNull<T>,
    len: usize,
    bytes: usize,
}

// SAFETY: a `ZeroedSlice` owns its mapping exclusively (like a `Box<[T]>`), and `T: Sync`
// (required by `ZeroValid`), so sharing or sending it only shares or sends `&[T]`.
unsafe impl<T: ZeroValid + Send> Send for ZeroedSlice<T> {}
// SAFETY: as above; only `&[T]` is reachable through `&ZeroedSlice<T>`.
unsafe impl<T: ZeroValid> Sync for ZeroedSlice<T> {}

impl<T: ZeroValid> ZeroedSlice<T> {
    /// `len` zero values of `T`. Like `Box`, reports an allocation failure (and
    /// aborts) if the system cannot map the memory.
    pub(crate) fn new(len: usize) -> Self {
        // An overflowing size saturates, and the mapping of it fails below.
        let bytes = len.saturating_mul(size_of::<T>()).max(1);
        // SAFETY: a fresh private anonymous mapping; no existing memory is affected.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                bytes,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            std::alloc::handle_alloc_error(
                std::alloc::Layout::from_size_align(bytes, 4096)
                    .unwrap_or(std::alloc::Layout::new::<u8>()),
            );
        }
        let ptr = NonNull::new(p.cast::<T>()).unwrap_or_else(|| {
            std::alloc::handle_alloc_error(std::alloc::Layout::new::<T>());
        });
        ZeroedSlice { ptr, len, bytes }
    }
}

impl<T: ZeroValid> ZeroedSlice<T> {
    /// Commits the pages of elements `from..from + count` now, in one system call: for
    /// the part a cache fills first, one `madvise` is cheaper than a read fault (the
    /// shared zero page) followed by a write fault (a fresh page and a TLB flush) per
    /// page. Best effort: on failure (kernels before 5.14) the pages fault in as used.
    pub(crate) fn populate(&self, from: usize, count: usize) {
        const PAGE: usize = 4096;
        let start = (from.saturating_mul(size_of::<T>()) / PAGE * PAGE).min(self.bytes);
        let end = from
            .saturating_add(count)
            .saturating_mul(size_of::<T>())
            .min(self.bytes);
        if end <= start {
            return;
        }
        // SAFETY: `start..end` lies inside this slice's mapping and `start` is page
        // aligned (the mapping is); populating does not change its contents (the pages
        // read as zero or keep what was written).
        unsafe {
            libc::madvise(
                self.ptr.as_ptr().cast::<u8>().add(start).cast(),
                end - start,
                libc::MADV_POPULATE_WRITE,
            );
        }
    }
}

impl<T: ZeroValid> std::ops::Deref for ZeroedSlice<T> {
    type Target = [T];

    fn deref(&self) -> &[T] {
        // SAFETY: the mapping holds `len` values of `T` (page aligned, so aligned for `T`
        // by `ZeroValid`), all zero bytes at creation, which `ZeroValid` makes valid;
        // it lives as long as `self`, and only shared references are ever handed out
        // (`T` mutates through its own interior mutability).
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
}

impl<T: ZeroValid> Drop for ZeroedSlice<T> {
    fn drop(&mut self) {
        // SAFETY: the mapping was created in `new` with this address and length, and no
        // reference into it outlives `self` (the `Deref` borrow ends before drop).
        unsafe {
            libc::munmap(self.ptr.as_ptr().cast(), self.bytes);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sync::{AtomicU64, Ordering};

    #[test]
    fn starts_zeroed_and_holds_writes() {
        let s = ZeroedSlice::<AtomicU64>::new(100_000);
        assert_eq!(s.len(), 100_000);
        assert!(s.iter().all(|w| w.load(Ordering::Relaxed) == 0));
        s[99_999].store(7, Ordering::Relaxed);
        s[0].store(3, Ordering::Relaxed);
        assert_eq!(s[99_999].load(Ordering::Relaxed), 7);
        assert_eq!(s[0].load(Ordering::Relaxed), 3);
        assert_eq!(s.as_ptr() as usize % 4096, 0);
        // Committing keeps contents and ignores the part past the end.
        s.populate(0, 200_000);
        s.populate(99_000, 5_000);
        assert_eq!(s[99_999].load(Ordering::Relaxed), 7);
        assert_eq!(s[1].load(Ordering::Relaxed), 0);
    }

    #[test]
    fn empty_slice_is_fine() {
        let s = ZeroedSlice::<AtomicU64>::new(0);
        assert!(s.is_empty());
    }
}
