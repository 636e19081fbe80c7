//! The contract between translated code and whoever runs it: [`JitContext`] (the only
//! pointer translated code receives), the [`HelperTable`] it calls through, and the
//! status codes it returns.
//!
//! Invariants:
//! - Translated code reaches *everything* through the `ctx` pointer at the fixed offsets
//!   named in [`offsets`]; it contains no absolute address, so its bytes can be moved.
//! - `mem_base`, `perms`, `guest_size` and `helpers` do not change while translated code
//!   runs (the code may load them once per block). The permission *bytes* may change
//!   between blocks (mmap/mprotect happen in system calls, which exit the block).
//! - `guest_size` is a non-zero multiple of [`PAGE_SIZE`]; `perms` has
//!   `(guest_size >> PAGE_SHIFT) + 1` entries, the last always 0; guest address
//!   `a < guest_size` lives at host address `mem_base + a`. This is the layout of
//!   `engine::memory::GuestMemory`.
//! - The fast-path bits of the permission table ([`PERM_FAST_R`], [`PERM_FAST_W`]) are
//!   never set on a page unless it and the next page have the permission; they may be
//!   missing (that only sends accesses to the slow path).
//! - Only chained blocks read `jump_cache`, `jc_mask`, `jc_shift` and `chain_budget`;
//!   they read jump-cache entries with plain aligned loads (atomic on every supported
//!   host) and write only the entry's `hits` counter and `chain_budget`.

use core::ffi::c_void;
use core::mem::offset_of;

use rv64::{AccessKind, Cpu, Exit, MemFault};

/// log2 of the guest page size the permission table is kept in.
pub const PAGE_SHIFT: u32 = 12;
/// Guest page size.
pub const PAGE_SIZE: u64 = 1 << PAGE_SHIFT;
/// Permission bit: readable (same bits as the engine's page table).
pub const PERM_R: u8 = 1;
/// Permission bit: writable.
pub const PERM_W: u8 = 2;
/// Permission bit: executable.
pub const PERM_X: u8 = 4;
/// Fast-path hint: this page *and the next one* are readable, so an access of at most
/// [`PAGE_SIZE`] bytes that starts in this page is readable wherever it ends. Translated
/// code checks only this bit of the page an access starts in; without it the access
/// takes the slow path ([`status::SLOW_PATH`]), which checks exactly. Maintained by
/// [`update_fast_bits`].
pub const PERM_FAST_R: u8 = PERM_R << FAST_SHIFT;
/// Fast-path hint: this page and the next one are writable (see [`PERM_FAST_R`]).
pub const PERM_FAST_W: u8 = PERM_W << FAST_SHIFT;
const FAST_SHIFT: u32 = 4;

/// Recomputes the fast-path bits ([`PERM_FAST_R`], [`PERM_FAST_W`]) of the pages in
/// `pages` from the permission bits of each page and of the page after it. Call it with
/// the changed pages *and the page before them* after any permission change. The last
/// entry of the table is the sentinel (see [`JitContext::perms`]) and never gets fast
/// bits; indices past the table are ignored.
pub fn update_fast_bits(perms: &mut [u8], pages: core::ops::Range<usize>) {
    let fast = PERM_FAST_R | PERM_FAST_W;
    let end = pages.end.min(perms.len());
    for p in pages.start..end {
        let next = perms.get(p + 1).copied().unwrap_or(0);
        let both = perms[p] & next & (PERM_R | PERM_W);
        let bits = if p + 1 < perms.len() {
            both << FAST_SHIFT
        } else {
            0
        };
        perms[p] = (perms[p] & !fast) | bits;
    }
}

/// log2 of the size of one jump-cache entry (32 bytes, as `codecache::JumpCacheEntry`;
/// the embedder checks its cache's `JumpCacheLayout` against these constants).
pub const JC_ENTRY_SHIFT: u32 = 5;
/// Offset of the guest key (pc) in a jump-cache entry; `u64::MAX` marks an empty entry.
pub const JC_KEY_OFFSET: i32 = 0;
/// Offset of the host code address in a jump-cache entry.
pub const JC_CODE_OFFSET: i32 = 8;
/// Offset of the `u32` hit counter in a jump-cache entry (bumped by chained jumps).
pub const JC_HITS_OFFSET: i32 = 20;

/// The shape of the executor's jump cache, when it is known at translation time: the
/// probe index is then `(pc >> shift) & (len - 1)` with constants, and for a block
/// exit to a constant address the whole entry offset is a constant (no loads of
/// `jc_shift`/`jc_mask`, no index arithmetic). The embedder must then give every
/// context a jump cache of exactly this shape (or none).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct JumpCacheShape {
    /// Right shift of the pc before masking.
    pub shift: u32,
    /// Number of entries (a power of two).
    pub len: usize,
}

/// Status codes returned by translated code and by helpers.
pub mod status {
    /// Continue at `ctx.cpu.pc` (the block ran to its end).
    pub const CONTINUE: u64 = 0;
    /// `ecall`: `cpu.pc` points at it; the instruction has not retired.
    pub const ECALL: u64 = 1;
    /// `ebreak`: `cpu.pc` points at it; not retired.
    pub const EBREAK: u64 = 2;
    /// `fence.i` retired; `cpu.pc` is past it. Translated code must be dropped.
    pub const FENCE_I: u64 = 3;
    /// A memory access faulted: `cpu.pc` is the faulting instruction (not retired);
    /// `ctx.fault_addr`/`ctx.fault_kind` say where and how.
    pub const FAULT: u64 = 4;
    /// Illegal instruction at `cpu.pc` (not retired); `ctx.exit_raw` holds its bits.
    pub const ILLEGAL: u64 = 5;
    /// A memory access failed the inline check: the instruction at `cpu.pc` has not
    /// retired (everything before it has) and the embedder must execute it (with its
    /// interpreter, which completes the access or reports the precise fault), then go
    /// on. Taking the slow path out of line keeps calls, and the register spills they
    /// force, out of translated code.
    pub const SLOW_PATH: u64 = 6;
    /// A baseline block's tier-up counter reached zero on entry: nothing ran, `cpu.pc`
    /// is the block's start. The embedder may queue a better translation, then goes on
    /// at pc (the counter has wrapped, so the block does not leave this way again for
    /// 2^32 runs).
    pub const HOT: u64 = 7;
}

/// [`JitContext::fault_kind`] values.
pub mod fault_kind {
    pub const READ: u32 = 0;
    pub const WRITE: u32 = 1;
    pub const FETCH: u32 = 2;
}

/// The generic slow path: executes the one instruction `raw` located at `pc` with the
/// embedder's memory, exactly as `rv64::execute` would.
///
/// Contract (relied on by translated code):
/// - On entry, integer registers the instruction reads or writes (`rs1`, `rs2`, `rd`) are
///   up to date in `ctx.cpu.x`; `ctx.cpu.instret` lacks the `retired` instructions the
///   block has already executed (the helper adds them while executing, so `rdinstret`
///   is exact).
/// - Returns [`status::CONTINUE`] when the instruction retired normally. `ctx.cpu.instret`
///   is then the same as on entry (translated code keeps counting), `ctx.cpu.pc` is
///   unspecified, and the instruction's effects are in `ctx.cpu` and memory.
/// - Any other status: `ctx.cpu.pc` and `ctx.cpu.instret` are final (as after
///   `rv64::execute` with the `retired` instructions added) and the exit fields are set.
pub type ExecOneFn =
    unsafe extern "C" fn(ctx: *mut JitContext, pc: u64, raw: u32, retired: u64) -> u64;

/// Functions translated code calls, through `call_indirect` on a pointer loaded from
/// this table (never a relocation). `#[repr(C)]`: the field order is the ABI.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct HelperTable {
    /// Executes one instruction the translator does not inline (A, most of F/D,
    /// Zicsr). Memory accesses that fail the inline check do not come here: they leave
    /// with [`status::SLOW_PATH`].
    pub exec_one: ExecOneFn,
}

/// Everything translated code can reach. `#[repr(C)]`; translated code uses the
/// offsets in [`offsets`].
#[repr(C)]
#[derive(Debug)]
pub struct JitContext {
    /// Guest architectural state (offset 0). Integer registers are cached in host
    /// registers inside a block and written back before any exit or helper call that
    /// could observe them; F registers, fflags and frm are only touched by helpers.
    pub cpu: Cpu,
    /// Host address of guest address 0.
    pub mem_base: *mut u8,
    /// Permission table: one byte per guest page (`PERM_*` bits, with the fast-path
    /// bits kept up to date by [`update_fast_bits`]), plus one sentinel entry at index
    /// `guest_size >> PAGE_SHIFT` that is always 0 (out-of-range addresses are clamped
    /// to it, so they fail the inline check without a separate bounds test).
    pub perms: *const u8,
    /// Size of the guest address space in bytes (a multiple of [`PAGE_SIZE`]).
    pub guest_size: u64,
    /// The helper table (read by translated code before every helper call).
    pub helpers: *const HelperTable,
    /// Fault address of the last [`status::FAULT`].
    pub fault_addr: u64,
    /// Kind of the last fault ([`fault_kind`]).
    pub fault_kind: u32,
    /// Raw bits of the instruction of the last [`status::ILLEGAL`].
    pub exit_raw: u32,
    /// The executor's L1 jump cache: entry 0 of an array of `jc_mask + 1` entries of
    /// `1 << JC_ENTRY_SHIFT` bytes (the layout of `codecache::JumpCacheEntry`). Read only
    /// by chained blocks; null disables chaining.
    pub jump_cache: *const c_void,
    /// Jump-cache index mask (`len - 1`, len a power of two).
    pub jc_mask: u64,
    /// Right shift of the guest pc before masking (the cache's `key_shift`).
    pub jc_shift: u64,
    /// Chained transfers left before a chained block returns to the dispatcher
    /// (decremented by every chain; 0 = return at the next block end). Bounds how long
    /// translated code runs without a quiescent point or an interrupt check.
    pub chain_budget: u64,
    /// Opaque pointer for the embedder's helpers (for example its memory object).
    /// Translated code never reads it.
    pub embedder: *mut c_void,
    /// Tier-up countdowns of baseline blocks (`u32` each, indexed by the number the
    /// block was translated with; see [`crate::Baseline::translate`]). Only baseline
    /// code compiled with a counter reads and writes it; null otherwise.
    pub counters: *mut u32,
}

/// Byte offsets of the fields translated code reads or writes.
pub mod offsets {
    use super::*;

    /// `cpu.x[i]` is at `X + 8 * i`.
    pub const X: i32 = (offset_of!(JitContext, cpu) + offset_of!(Cpu, x)) as i32;
    /// `cpu.f[i]` is at `F + 8 * i`.
    pub const F: i32 = (offset_of!(JitContext, cpu) + offset_of!(Cpu, f)) as i32;
    pub const PC: i32 = (offset_of!(JitContext, cpu) + offset_of!(Cpu, pc)) as i32;
    pub const INSTRET: i32 = (offset_of!(JitContext, cpu) + offset_of!(Cpu, instret)) as i32;
    /// `cpu.fflags` (`u32`).
    pub const FFLAGS: i32 = (offset_of!(JitContext, cpu) + offset_of!(Cpu, fflags)) as i32;
    /// `cpu.frm` (`u32`).
    pub const FRM: i32 = (offset_of!(JitContext, cpu) + offset_of!(Cpu, frm)) as i32;
    pub const MEM_BASE: i32 = offset_of!(JitContext, mem_base) as i32;
    pub const PERMS: i32 = offset_of!(JitContext, perms) as i32;
    pub const GUEST_SIZE: i32 = offset_of!(JitContext, guest_size) as i32;
    pub const HELPERS: i32 = offset_of!(JitContext, helpers) as i32;
    pub const EXIT_RAW: i32 = offset_of!(JitContext, exit_raw) as i32;
    pub const JUMP_CACHE: i32 = offset_of!(JitContext, jump_cache) as i32;
    pub const JC_MASK: i32 = offset_of!(JitContext, jc_mask) as i32;
    pub const JC_SHIFT: i32 = offset_of!(JitContext, jc_shift) as i32;
    pub const CHAIN_BUDGET: i32 = offset_of!(JitContext, chain_budget) as i32;
    pub const COUNTERS: i32 = offset_of!(JitContext, counters) as i32;
    /// Offset of [`HelperTable::exec_one`] inside the helper table.
    pub const HELPER_EXEC_ONE: i32 = offset_of!(HelperTable, exec_one) as i32;
}

impl JitContext {
    /// A context for `cpu` over guest memory `[mem_base, mem_base + guest_size)` with the
    /// permission table `perms`. The caller keeps all three pointers valid (and the
    /// layout of the module documentation true) while translated code runs with it.
    pub fn new(
        cpu: Cpu,
        mem_base: *mut u8,
        perms: *const u8,
        guest_size: u64,
        helpers: *const HelperTable,
    ) -> Self {
        JitContext {
            cpu,
            mem_base,
            perms,
            guest_size,
            helpers,
            fault_addr: 0,
            fault_kind: 0,
            exit_raw: 0,
            jump_cache: core::ptr::null(),
            jc_mask: 0,
            jc_shift: 0,
            chain_budget: 0,
            embedder: core::ptr::null_mut(),
            counters: core::ptr::null_mut(),
        }
    }

    /// The `rv64::Exit` a non-continue status stands for (`None` for
    /// [`status::CONTINUE`], [`status::SLOW_PATH`] or an unknown code), reading the exit
    /// fields.
    pub fn exit_for(&self, status: u64) -> Option<Exit> {
        match status {
            status::ECALL => Some(Exit::Ecall),
            status::EBREAK => Some(Exit::Ebreak),
            status::FENCE_I => Some(Exit::FenceI),
            status::ILLEGAL => Some(Exit::Illegal {
                pc: self.cpu.pc,
                raw: self.exit_raw,
            }),
            status::FAULT => {
                let kind = match self.fault_kind {
                    fault_kind::WRITE => AccessKind::Write,
                    fault_kind::FETCH => AccessKind::Fetch,
                    _ => AccessKind::Read,
                };
                Some(Exit::Fault {
                    pc: self.cpu.pc,
                    fault: MemFault {
                        addr: self.fault_addr,
                        kind,
                    },
                })
            }
            _ => None,
        }
    }

    /// Records `exit` in the exit fields and returns its status code (the inverse of
    /// [`JitContext::exit_for`]). `Exit::Budget` never comes from one instruction; it
    /// maps to [`status::CONTINUE`].
    pub fn record_exit(&mut self, exit: Exit) -> u64 {
        match exit {
            Exit::Ecall => status::ECALL,
            Exit::Ebreak => status::EBREAK,
            Exit::FenceI => status::FENCE_I,
            Exit::Illegal { raw, .. } => {
                self.exit_raw = raw;
                status::ILLEGAL
            }
            Exit::Fault { fault, .. } => {
                self.fault_addr = fault.addr;
                self.fault_kind = match fault.kind {
                    AccessKind::Read => fault_kind::READ,
                    AccessKind::Write => fault_kind::WRITE,
                    AccessKind::Fetch => fault_kind::FETCH,
                };
                status::FAULT
            }
            Exit::Budget => status::CONTINUE,
        }
    }
}
