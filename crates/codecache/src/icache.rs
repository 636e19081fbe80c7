//! Instruction-cache maintenance after writing code, in one tiny function per host.
//!
//! x86-64 keeps instruction fetch coherent with data writes (and our writes go through a
//! different virtual mapping of the same physical pages, which x86 also handles), so the
//! function is empty there. AArch64 needs the architected sequence: clean the data cache
//! to the point of unification, invalidate the instruction cache, then barriers. Other
//! hosts fail to compile rather than run stale code.

/// Makes `len` bytes at executable address `addr` safe to execute on this thread and,
/// with the barriers, on others that fetch after synchronising with the publisher.
#[cfg(target_arch = "x86_64")]
#[inline]
pub(crate) fn publish(_addr: usize, _len: usize) {}

/// Makes `len` bytes at executable address `addr` safe to execute on every core.
#[cfg(target_arch = "aarch64")]
pub(crate) fn publish(addr: usize, len: usize) {
    use std::arch::asm;
    if len == 0 {
        return;
    }
    let ctr: u64;
    // SAFETY: reading CTR_EL0 is allowed at EL0 on Linux and has no side effects.
    unsafe { asm!("mrs {0}, ctr_el0", out(reg) ctr, options(nomem, nostack)) };
    let dline = 4usize << ((ctr >> 16) & 0xf);
    let iline = 4usize << (ctr & 0xf);
    let end = addr + len;
    let mut p = addr & !(dline - 1);
    while p < end {
        // SAFETY: cache maintenance by virtual address on mapped memory of this arena;
        // it does not change memory contents.
        unsafe { asm!("dc cvau, {0}", in(reg) p, options(nostack)) };
        p += dline;
    }
    // SAFETY: barrier instruction, no memory-safety effect.
    unsafe { asm!("dsb ish", options(nostack)) };
    let mut p = addr & !(iline - 1);
    while p < end {
        // SAFETY: as above, instruction-cache invalidation by address.
        unsafe { asm!("ic ivau, {0}", in(reg) p, options(nostack)) };
        p += iline;
    }
    // SAFETY: barrier instructions, no memory-safety effect.
    unsafe { asm!("dsb ish", "isb", options(nostack)) };
}

#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
compile_error!(
    "codecache: instruction-cache maintenance is implemented for x86_64 and aarch64 only"
);
