//! The A extension across host threads: several interpreters, one per host thread, run
//! AMO and LR/SC increment loops on words of one shared memory, and the totals must be
//! exact. The memory is safe code: every byte lives in an `AtomicU64` and every access,
//! whatever its size, is one atomic operation on the doubleword(s) holding it, so Rust's
//! memory model defines all of it (no mixed-size atomics).
//!
//! With the plain load + store an AMO or `sc` used to be, these totals come out short
//! (updates are lost when two threads interleave between the load and the store); the
//! test cannot pass unless `execute` routes AMOs through `Memory::amo*` and `sc` through
//! `Memory::cas*`, and those are atomic.

mod common;
use common::*;
use rv64::{AccessKind, AmoOp, Cpu, Exit, Interpreter, MemFault, Memory};
use std::sync::Barrier;
use std::sync::atomic::{AtomicU64, Ordering};

/// A flat memory at address 0, shared by reference between threads; everything is
/// readable, writable and executable, anything past the end faults.
struct Shared<'a> {
    words: &'a [AtomicU64],
}

impl Shared<'_> {
    fn word(&self, addr: u64, kind: AccessKind) -> Result<&AtomicU64, MemFault> {
        usize::try_from(addr >> 3)
            .ok()
            .and_then(|i| self.words.get(i))
            .ok_or(MemFault { addr, kind })
    }

    fn check(&self, addr: u64, len: u64, kind: AccessKind) -> Result<(), MemFault> {
        match addr.checked_add(len) {
            Some(end) if end <= 8 * self.words.len() as u64 => Ok(()),
            _ => Err(MemFault { addr, kind }),
        }
    }

    /// `len` bytes at `addr`, byte by byte from the doublewords (misaligned and
    /// word-crossing accesses need not be single-copy atomic).
    fn read(&self, addr: u64, len: u64, kind: AccessKind) -> Result<u64, MemFault> {
        self.check(addr, len, kind)?;
        if addr & 7 == 0 && len == 8 {
            return Ok(self.word(addr, kind)?.load(Ordering::Relaxed));
        }
        let mut v = 0u64;
        for k in 0..len {
            let a = addr + k;
            let w = self.word(a, kind)?.load(Ordering::Relaxed);
            v |= ((w >> (8 * (a & 7))) & 0xff) << (8 * k);
        }
        Ok(v)
    }

    /// Writes the low `len` bytes of `value` at `addr`, merging each byte into its
    /// doubleword with a compare-and-swap loop, so concurrent updates of the other bytes
    /// of the doubleword survive.
    fn write(&self, addr: u64, len: u64, value: u64) -> Result<(), MemFault> {
        self.check(addr, len, AccessKind::Write)?;
        for k in 0..len {
            let a = addr + k;
            let shift = 8 * (a & 7);
            let byte = (value >> (8 * k)) & 0xff;
            let w = self.word(a, AccessKind::Write)?;
            let _ = w.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |old| {
                Some((old & !(0xff << shift)) | byte << shift)
            });
        }
        Ok(())
    }

    /// The doubleword holding the aligned word at `addr` and the word's bit position.
    fn word32(&self, addr: u64) -> Result<(&AtomicU64, u64), MemFault> {
        self.check(addr, 4, AccessKind::Read)?;
        Ok((self.word(addr, AccessKind::Read)?, 8 * (addr & 4)))
    }
}

fn replace32(w: u64, shift: u64, v: u32) -> u64 {
    (w & !(0xffff_ffff << shift)) | (v as u64) << shift
}

impl Memory for Shared<'_> {
    fn load8(&self, addr: u64) -> Result<u8, MemFault> {
        Ok(self.read(addr, 1, AccessKind::Read)? as u8)
    }
    fn load16(&self, addr: u64) -> Result<u16, MemFault> {
        Ok(self.read(addr, 2, AccessKind::Read)? as u16)
    }
    fn load32(&self, addr: u64) -> Result<u32, MemFault> {
        Ok(self.read(addr, 4, AccessKind::Read)? as u32)
    }
    fn load64(&self, addr: u64) -> Result<u64, MemFault> {
        self.read(addr, 8, AccessKind::Read)
    }
    fn store8(&mut self, addr: u64, value: u8) -> Result<(), MemFault> {
        self.write(addr, 1, value.into())
    }
    fn store16(&mut self, addr: u64, value: u16) -> Result<(), MemFault> {
        self.write(addr, 2, value.into())
    }
    fn store32(&mut self, addr: u64, value: u32) -> Result<(), MemFault> {
        self.write(addr, 4, value.into())
    }
    fn store64(&mut self, addr: u64, value: u64) -> Result<(), MemFault> {
        self.write(addr, 8, value)
    }
    fn fetch16(&self, addr: u64) -> Result<u16, MemFault> {
        Ok(self.read(addr, 2, AccessKind::Fetch)? as u16)
    }

    fn amo32(&mut self, addr: u64, op: AmoOp, src: u32) -> Result<u32, MemFault> {
        let (w, shift) = self.word32(addr)?;
        let prev = w
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |d| {
                Some(replace32(d, shift, op.apply32((d >> shift) as u32, src)))
            })
            .unwrap_or_else(|d| d);
        Ok((prev >> shift) as u32)
    }
    fn amo64(&mut self, addr: u64, op: AmoOp, src: u64) -> Result<u64, MemFault> {
        self.check(addr, 8, AccessKind::Read)?;
        let w = self.word(addr, AccessKind::Read)?;
        let prev = w
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |d| {
                Some(op.apply64(d, src))
            })
            .unwrap_or_else(|d| d);
        Ok(prev)
    }
    fn cas32(&mut self, addr: u64, expected: u32, new: u32) -> Result<bool, MemFault> {
        self.check(addr, 4, AccessKind::Write)?;
        let w = self.word(addr, AccessKind::Write)?;
        let shift = 8 * (addr & 4);
        Ok(w.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |d| {
            ((d >> shift) as u32 == expected).then(|| replace32(d, shift, new))
        })
        .is_ok())
    }
    fn cas64(&mut self, addr: u64, expected: u64, new: u64) -> Result<bool, MemFault> {
        self.check(addr, 8, AccessKind::Write)?;
        let w = self.word(addr, AccessKind::Write)?;
        Ok(
            w.compare_exchange(expected, new, Ordering::SeqCst, Ordering::SeqCst)
                .is_ok(),
        )
    }
}

const THREADS: usize = 4;
const ITERS: u64 = 100_000;
/// The shared counters: a word and a doubleword.
const W: u64 = DATA;
const D: u64 = DATA + 8;

fn memory() -> Vec<AtomicU64> {
    (0..MEM_SIZE / 8).map(|_| AtomicU64::new(0)).collect()
}

fn put_code(words: &[AtomicU64], code: &[u32]) {
    let mut m = Shared { words };
    for (k, w) in code.iter().enumerate() {
        m.store32(CODE + 4 * k as u64, *w).unwrap();
    }
}

/// Runs the code at CODE on THREADS host threads, each with its own interpreter and
/// x1 = W, x2 = 1, x3 = D, x4 = ITERS, x7 = its index modulo 2, x8 = W + 4, until its
/// `ebreak`. The threads start together (a barrier), so that their loops overlap.
fn run_threads(words: &[AtomicU64]) {
    let start = Barrier::new(THREADS);
    std::thread::scope(|s| {
        for t in 0..THREADS {
            let start = &start;
            s.spawn(move || {
                let mut mem = Shared { words };
                let mut cpu = Cpu::new();
                cpu.pc = CODE;
                cpu.x[1] = W;
                cpu.x[2] = 1;
                cpu.x[3] = D;
                cpu.x[4] = ITERS;
                cpu.x[7] = (t % 2) as u64;
                cpu.x[8] = W + 4;
                let mut it = Interpreter::new();
                start.wait();
                assert_eq!(it.run(&mut cpu, &mut mem, u64::MAX), Exit::Ebreak);
            });
        }
    });
}

const EBREAK: u32 = 0x0010_0073;

#[test]
fn amo_increments_from_several_threads_add_up_exactly() {
    let words = memory();
    put_code(
        &words,
        &[
            amo(0x00, 2, 0, 0, 1, 2), // loop: amoadd.w x0, x2, (x1)
            amo(0x00, 3, 3, 5, 3, 2), // amoadd.d.aqrl x5, x2, (x3)
            i(-1, 4, 0, 4, 0x13),     // addi x4, x4, -1
            b(-12, 0, 4, 1),          // bnez x4, loop
            EBREAK,
        ],
    );
    run_threads(&words);
    let m = Shared { words: &words };
    let total = THREADS as u64 * ITERS;
    assert_eq!(m.load32(W).unwrap() as u64, total);
    assert_eq!(m.load64(D).unwrap(), total);
}

#[test]
fn lr_sc_increments_from_several_threads_add_up_exactly() {
    let words = memory();
    put_code(
        &words,
        &[
            amo(0x02, 2, 0, 5, 1, 0), // loop: lr.w x5, (x1)
            i(1, 5, 0, 5, 0x13),      // addi x5, x5, 1
            amo(0x03, 2, 0, 6, 1, 5), // sc.w x6, x5, (x1)
            b(-12, 0, 6, 1),          // bnez x6, loop (retry)
            amo(0x02, 3, 3, 5, 3, 0), // lr.d.aqrl x5, (x3)
            i(1, 5, 0, 5, 0x13),      // addi x5, x5, 1
            amo(0x03, 3, 1, 6, 3, 5), // sc.d.rl x6, x5, (x3)
            b(-12, 0, 6, 1),          // bnez x6, (retry the lr.d)
            i(-1, 4, 0, 4, 0x13),     // addi x4, x4, -1
            b(-36, 0, 4, 1),          // bnez x4, loop
            EBREAK,
        ],
    );
    run_threads(&words);
    let m = Shared { words: &words };
    let total = THREADS as u64 * ITERS;
    assert_eq!(m.load32(W).unwrap() as u64, total);
    assert_eq!(m.load64(D).unwrap(), total);
}

#[test]
fn word_amos_and_lr_sc_on_the_two_halves_of_a_doubleword_do_not_disturb_each_other() {
    // Half the threads LR/SC-increment the word at W, the others AMO-increment the
    // word next to it (W + 4): an implementation that swapped the whole doubleword
    // would lose updates of the neighbour.
    let words = memory();
    put_code(
        &words,
        &[
            b(24, 0, 7, 1),           // top: bnez x7, amo_loop
            amo(0x02, 2, 0, 5, 1, 0), // lr_loop: lr.w x5, (x1)
            i(1, 5, 0, 5, 0x13),      // addi x5, x5, 1
            amo(0x03, 2, 0, 6, 1, 5), // sc.w x6, x5, (x1)
            b(-12, 0, 6, 1),          // bnez x6, lr_loop
            b(12, 0, 0, 0),           // j next
            amo(0x00, 2, 0, 0, 8, 2), // amo_loop: amoadd.w x0, x2, (x8)
            i(0, 0, 0, 0, 0x13),      // nop
            i(-1, 4, 0, 4, 0x13),     // next: addi x4, x4, -1
            b(-36, 0, 4, 1),          // bnez x4, top
            EBREAK,
        ],
    );
    run_threads(&words);
    let m = Shared { words: &words };
    let half = (THREADS as u64 / 2) * ITERS;
    assert_eq!(m.load32(W).unwrap() as u64, half);
    assert_eq!(m.load32(W + 4).unwrap() as u64, half);
}

#[test]
fn every_amo_through_a_shared_memory_matches_the_single_threaded_reference() {
    // The same instruction on the flat test memory (the trait's default methods) and on
    // the shared one (its atomic overrides): same rd, same memory.
    let words = memory();
    for width in [2u32, 3] {
        for f5 in [0x00u32, 0x01, 0x04, 0x08, 0x0c, 0x10, 0x14, 0x18, 0x1c] {
            for (old, src) in [
                (0xffff_ffff_8000_0005u64, 7u64),
                (3, 0xffff_ffff_ffff_fffe),
                (0x1234_5678_9abc_def0, 0x0fed_cba9_8765_4321),
            ] {
                let raw = amo(f5, width, 0, 3, 1, 2);
                let (mut c1, mut flat) = setup();
                flat.store64(DATA, old).unwrap();
                c1.x[1] = DATA;
                c1.x[2] = src;
                exec(&mut c1, &mut flat, raw).unwrap();

                let mut shared = Shared { words: &words };
                shared.store64(DATA, old).unwrap();
                let mut c2 = Cpu::new();
                c2.pc = CODE;
                c2.x[1] = DATA;
                c2.x[2] = src;
                rv64::execute(&mut c2, &mut shared, &dec(raw)).unwrap();
                assert_eq!(
                    (c2.x[3], shared.load64(DATA).unwrap()),
                    (c1.x[3], flat.load64(DATA).unwrap()),
                    "funct5 {f5:#x} width {width} old {old:#x} src {src:#x}"
                );
            }
        }
    }
}
