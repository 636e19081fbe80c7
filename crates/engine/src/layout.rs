//! The guest address-space layout (all addresses inside `[0, GUEST_SPACE)`).
//!
//! ```text
//! 0x10000 ..            executable segments (ET_DYN programs at loader::PIE_BASE)
//!   brk ..              heap, growing up (at most up to the mmap area)
//!   .. MMAP_TOP         mmap area, allocated top-down over free pages; the ELF
//!                       interpreter at loader::INTERP_BASE (8 GiB) inside it
//!   [1 MiB gap]
//! STACK_TOP-STACK_SIZE .. STACK_TOP   the stack (8 MiB, as qemu-user's default)
//! TRAMPOLINE (= STACK_TOP) .. GUEST_SPACE   the signal-return trampoline (one page, r-x)
//! ```

use crate::memory::{GUEST_SPACE, PAGE_SIZE};

/// One past the highest stack byte.
pub const STACK_TOP: u64 = GUEST_SPACE - PAGE_SIZE;
/// Size of the initial stack mapping (also reported as RLIMIT_STACK).
pub const STACK_SIZE: u64 = 8 << 20;
/// One past the highest address the mmap allocator hands out.
pub const MMAP_TOP: u64 = STACK_TOP - STACK_SIZE - (1 << 20);
/// Room kept free above the program break when placing mmaps, so the heap can grow.
pub const BRK_RESERVE: u64 = 1 << 30;
