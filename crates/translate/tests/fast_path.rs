//! Accesses the permission table allows run inline; the others leave translated code
//! with `SLOW_PATH` at the access, before it retires, and never call a helper. (A slow
//! path taken by mistake gives the right results, only slowly, so the differential
//! tests cannot see it: this checks the exit status and counts helper calls.)

mod common;

use std::sync::atomic::{AtomicU64, Ordering};

use common::*;
use rv64::Cpu;
use translate::exec_mem::ExecBuf;
use translate::helpers::flat_exec_one;
use translate::{HelperTable, JitContext, OptLevel, status};

static CALLS: AtomicU64 = AtomicU64::new(0);

/// `flat_exec_one`, counted.
unsafe extern "C" fn counting_exec_one(
    ctx: *mut JitContext,
    pc: u64,
    raw: u32,
    retired: u64,
) -> u64 {
    CALLS.fetch_add(1, Ordering::Relaxed);
    // SAFETY: forwarded unchanged from translated code, which upholds the contract.
    unsafe { flat_exec_one(ctx, pc, raw, retired) }
}

static COUNTING: HelperTable = HelperTable {
    exec_one: counting_exec_one,
};

/// Runs `addi x7, x0, 1; access; ebreak` with x1 = `addr`: returns the status, the pc
/// and instret it left, and the helper calls made. After a slow-path exit the rest of
/// the block runs in the interpreter; either way the final state must be the
/// reference's.
fn run(access: u32, addr: u64, opt: OptLevel) -> (u64, u64, u64, u64) {
    let block = layout(&[dec(i(1, 0, 0, 7, 0x13)), dec(access), dec(EBREAK)]);
    let mut cpu = Cpu::new();
    cpu.x[1] = addr;
    cpu.x[6] = 0x0102_0304_0506_0708;
    let mut mem = vec![0x5au8; GUEST_SIZE];
    let perms = test_perms();
    let want = run_interp(&block, &cpu, &mem, &perms);
    let compiled = translator(opt).translate(&block).expect("translates");
    let code = ExecBuf::new(&compiled.code).expect("map code");
    cpu.pc = block[0].0;
    let mut ctx = JitContext::new(
        cpu,
        mem.as_mut_ptr(),
        perms.as_ptr(),
        GUEST_SIZE as u64,
        &COUNTING,
    );
    let before = CALLS.load(Ordering::Relaxed);
    // SAFETY: `ctx` points at `mem` (GUEST_SIZE bytes) and `perms` (one byte per page
    // and the sentinel), alive and not otherwise borrowed during the call; the code is
    // an unchained block for this host.
    let st = unsafe { code.call(&mut ctx) };
    let calls = CALLS.load(Ordering::Relaxed) - before;
    let left = (st, ctx.cpu.pc, ctx.cpu.instret, calls);
    let (cpu, exit) = if st == status::SLOW_PATH {
        finish_block(&block, ctx.cpu.clone(), &mut mem, &perms)
    } else {
        (ctx.cpu.clone(), ctx.exit_for(st))
    };
    assert_eq!(exit, want.exit, "{access:#x} at {addr:#x}");
    assert_eq!(cpu, want.cpu, "{access:#x} at {addr:#x}");
    assert_eq!(mem, want.mem, "{access:#x} at {addr:#x}");
    left
}

const LD_X5: u32 = 0x0000_b283; // ld x5, 0(x1)
const SD_X6: u32 = 0x0060_b023; // sd x6, 0(x1)
const LW_X5: u32 = 0x0000_a283; // lw x5, 0(x1)

#[test]
fn accesses_inside_permitted_pages_run_inline() {
    for opt in [OptLevel::Quick, OptLevel::Speed] {
        for (access, addr, why) in [
            (LD_X5, 0x1000, "start of a read-write page"),
            (
                LD_X5,
                0x8ffc,
                "crossing from read-write page 8 into read-only page 9",
            ),
            (LD_X5, 0x9ff8, "end of read-only page 9, next page unmapped"),
            (
                SD_X6,
                0xcffc,
                "crossing from read-write page 12 into write-only page 13",
            ),
            (SD_X6, 0xeff8, "end of page 14, next page unmapped"),
            (LW_X5, 0x2002, "misaligned but inside a page"),
        ] {
            let (st, pc, instret, calls) = run(access, addr, opt);
            assert_eq!(st, status::EBREAK, "{opt:?}: {why}");
            assert_eq!((pc, instret), (CODE_BASE + 8, 2), "{opt:?}: {why}");
            assert_eq!(calls, 0, "{opt:?}: {why}");
        }
    }
}

#[test]
fn accesses_the_table_forbids_leave_at_the_access_without_a_call() {
    for opt in [OptLevel::Quick, OptLevel::Speed] {
        for (access, addr, why) in [
            (
                LD_X5,
                0x9ffc,
                "crossing from read-only page 9 into unmapped page 10",
            ),
            (SD_X6, 0x9000, "store into read-only page 9"),
            (LD_X5, 0xd000, "load from write-only page 13"),
            (LD_X5, 0x0, "unmapped page 0"),
            (
                LD_X5,
                GUEST_SIZE as u64 - 4,
                "crossing the end of the guest space",
            ),
            (LD_X5, u64::MAX - 3, "far outside the guest space"),
        ] {
            let (st, pc, instret, calls) = run(access, addr, opt);
            assert_eq!(st, status::SLOW_PATH, "{opt:?}: {why}");
            assert_eq!(
                (pc, instret),
                (CODE_BASE + 4, 1),
                "{opt:?}: {why}: only the instruction before the access retired"
            );
            assert_eq!(calls, 0, "{opt:?}: {why}");
        }
    }
}
