//! The A extension: LR/SC reservations and every AMO, in both widths.

mod common;
use common::*;
use rv64::{AccessKind, AmoOp, Exit, MemFault, Memory};

/// Runs one AMO with x1 = address of a cell holding `old`, x2 = `src`; returns
/// (rd, new memory value).
fn amo_run(f5: u32, width: u32, old: u64, src: u64) -> (u64, u64) {
    let (mut cpu, mut mem) = setup();
    mem.store64(DATA, old).unwrap();
    cpu.x[1] = DATA;
    cpu.x[2] = src;
    exec(&mut cpu, &mut mem, amo(f5, width, 3, 3, 1, 2)).unwrap();
    (cpu.x[3], mem.load64(DATA).unwrap())
}

#[test]
fn every_doubleword_amo_returns_the_old_value_and_stores_the_result() {
    let (a, b) = (0xffff_0000_0000_0005u64, 7u64);
    let cases: [(u32, u64); 9] = [
        (0x01, b),                 // swap
        (0x00, a.wrapping_add(b)), // add
        (0x04, a ^ b),             // xor
        (0x0c, a & b),             // and
        (0x08, a | b),             // or
        (0x10, a),                 // min (a is negative)
        (0x14, b),                 // max
        (0x18, b),                 // minu
        (0x1c, a),                 // maxu
    ];
    for (f5, want) in cases {
        assert_eq!(amo_run(f5, 3, a, b), (a, want), "funct5 {f5:#x}");
    }
}

#[test]
fn every_word_amo_sign_extends_the_old_value_and_leaves_the_upper_word() {
    // Memory word 0x8000_0005 (negative as i32); upper word of the cell must survive.
    let cell = 0x1234_5678_8000_0005u64;
    let old_sext = 0xffff_ffff_8000_0005u64;
    let src = 0xdead_beef_0000_0007u64; // only the low word takes part
    let lo = |v: u32| (cell & !0xffff_ffff) | v as u64;
    let cases: [(u32, u64); 9] = [
        (0x01, lo(7)),
        (0x00, lo(0x8000_000c)),
        (0x04, lo(0x8000_0002)),
        (0x0c, lo(5)),
        (0x08, lo(0x8000_0007)),
        (0x10, lo(0x8000_0005)), // min: i32 negative wins
        (0x14, lo(7)),           // max
        (0x18, lo(7)),           // minu
        (0x1c, lo(0x8000_0005)), // maxu
    ];
    for (f5, want) in cases {
        assert_eq!(
            amo_run(f5, 2, cell, src),
            (old_sext, want),
            "funct5 {f5:#x}"
        );
    }
}

#[test]
fn sc_succeeds_once_after_lr_to_the_same_address() {
    let (mut cpu, mut mem) = setup();
    mem.store64(DATA, 0xffff_ffff_8000_0000).unwrap();
    cpu.x[1] = DATA;
    cpu.x[2] = 42;
    exec(&mut cpu, &mut mem, amo(0x02, 2, 2, 3, 1, 0)).unwrap(); // lr.w.aq x3, (x1)
    assert_eq!(cpu.x[3], 0xffff_ffff_8000_0000, "lr.w sign-extends");
    assert_eq!(cpu.reservation, DATA);
    exec(&mut cpu, &mut mem, amo(0x03, 2, 1, 4, 1, 2)).unwrap(); // sc.w.rl x4, x2, (x1)
    assert_eq!(cpu.x[4], 0, "sc succeeds");
    assert_eq!(mem.load32(DATA).unwrap(), 42);
    assert_eq!(cpu.reservation, rv64::Cpu::NO_RESERVATION);
    cpu.x[2] = 43;
    exec(&mut cpu, &mut mem, amo(0x03, 2, 0, 4, 1, 2)).unwrap();
    assert_eq!(cpu.x[4], 1, "a second sc fails: the reservation is gone");
    assert_eq!(mem.load32(DATA).unwrap(), 42);
}

#[test]
fn sc_fails_without_a_reservation_or_at_another_address() {
    let (mut cpu, mut mem) = setup();
    cpu.x[1] = DATA;
    cpu.x[2] = 9;
    exec(&mut cpu, &mut mem, amo(0x03, 3, 0, 4, 1, 2)).unwrap(); // sc.d without lr
    assert_eq!(cpu.x[4], 1);
    exec(&mut cpu, &mut mem, amo(0x02, 3, 0, 3, 1, 0)).unwrap(); // lr.d
    cpu.x[1] = DATA + 8;
    exec(&mut cpu, &mut mem, amo(0x03, 3, 0, 4, 1, 2)).unwrap(); // sc.d elsewhere
    assert_eq!(cpu.x[4], 1);
    assert_eq!(mem.load64(DATA + 8).unwrap(), 0);
}

#[test]
fn lr_d_and_sc_d_move_doublewords() {
    let (mut cpu, mut mem) = setup();
    mem.store64(DATA, 0x8000_0000_0000_0001).unwrap();
    cpu.x[1] = DATA;
    cpu.x[2] = 0x0123_4567_89ab_cdef;
    exec(&mut cpu, &mut mem, amo(0x02, 3, 0, 3, 1, 0)).unwrap();
    assert_eq!(cpu.x[3], 0x8000_0000_0000_0001);
    exec(&mut cpu, &mut mem, amo(0x03, 3, 0, 4, 1, 2)).unwrap();
    assert_eq!(
        (cpu.x[4], mem.load64(DATA).unwrap()),
        (0, 0x0123_4567_89ab_cdef)
    );
}

#[test]
fn misaligned_atomics_fault_without_side_effects() {
    let (mut cpu, mut mem) = setup();
    cpu.x[1] = DATA + 4;
    cpu.x[3] = 5;
    let e = exec(&mut cpu, &mut mem, amo(0x00, 3, 0, 3, 1, 2)).unwrap_err(); // amoadd.d at +4
    assert!(matches!(e, Exit::Fault { pc: CODE, .. }));
    assert_eq!(cpu.x[3], 5);
    cpu.x[1] = DATA + 2;
    assert!(exec(&mut cpu, &mut mem, amo(0x02, 2, 0, 3, 1, 0)).is_err()); // lr.w at +2
}

#[test]
fn amo_with_rd_equal_to_rs2_uses_the_source_before_writing() {
    let (mut cpu, mut mem) = setup();
    mem.store64(DATA, 10).unwrap();
    cpu.x[1] = DATA;
    cpu.x[2] = 3;
    exec(&mut cpu, &mut mem, amo(0x00, 3, 0, 2, 1, 2)).unwrap(); // amoadd.d x2, x2, (x1)
    assert_eq!((cpu.x[2], mem.load64(DATA).unwrap()), (10, 13));
}

/// Counts the accesses `execute` makes, to check that atomics use the atomic methods.
struct Counting {
    inner: rv64::testmem::FlatMemory,
    loads: std::cell::Cell<u32>,
    stores: u32,
    amos: u32,
    cas: u32,
}

impl Counting {
    fn new() -> Self {
        Counting {
            inner: setup().1,
            loads: Default::default(),
            stores: 0,
            amos: 0,
            cas: 0,
        }
    }
    fn m(&self) -> &rv64::testmem::FlatMemory {
        &self.inner
    }
    fn mm(&mut self) -> &mut rv64::testmem::FlatMemory {
        &mut self.inner
    }
}

impl Memory for Counting {
    fn load8(&self, addr: u64) -> Result<u8, MemFault> {
        self.loads.set(self.loads.get() + 1);
        self.m().load8(addr)
    }
    fn load16(&self, addr: u64) -> Result<u16, MemFault> {
        self.loads.set(self.loads.get() + 1);
        self.m().load16(addr)
    }
    fn load32(&self, addr: u64) -> Result<u32, MemFault> {
        self.loads.set(self.loads.get() + 1);
        self.m().load32(addr)
    }
    fn load64(&self, addr: u64) -> Result<u64, MemFault> {
        self.loads.set(self.loads.get() + 1);
        self.m().load64(addr)
    }
    fn store8(&mut self, addr: u64, value: u8) -> Result<(), MemFault> {
        self.stores += 1;
        self.mm().store8(addr, value)
    }
    fn store16(&mut self, addr: u64, value: u16) -> Result<(), MemFault> {
        self.stores += 1;
        self.mm().store16(addr, value)
    }
    fn store32(&mut self, addr: u64, value: u32) -> Result<(), MemFault> {
        self.stores += 1;
        self.mm().store32(addr, value)
    }
    fn store64(&mut self, addr: u64, value: u64) -> Result<(), MemFault> {
        self.stores += 1;
        self.mm().store64(addr, value)
    }
    fn fetch16(&self, addr: u64) -> Result<u16, MemFault> {
        self.m().fetch16(addr)
    }
    fn amo32(&mut self, addr: u64, op: AmoOp, src: u32) -> Result<u32, MemFault> {
        self.amos += 1;
        self.mm().amo32(addr, op, src)
    }
    fn amo64(&mut self, addr: u64, op: AmoOp, src: u64) -> Result<u64, MemFault> {
        self.amos += 1;
        self.mm().amo64(addr, op, src)
    }
    fn cas32(&mut self, addr: u64, expected: u32, new: u32) -> Result<bool, MemFault> {
        self.cas += 1;
        self.mm().cas32(addr, expected, new)
    }
    fn cas64(&mut self, addr: u64, expected: u64, new: u64) -> Result<bool, MemFault> {
        self.cas += 1;
        self.mm().cas64(addr, expected, new)
    }
}

/// (loads, stores, amo calls, cas calls) made by one instruction.
fn accesses(raw: u32, cpu: &mut rv64::Cpu, mem: &mut Counting) -> (u32, u32, u32, u32) {
    mem.loads.set(0);
    (mem.stores, mem.amos, mem.cas) = (0, 0, 0);
    rv64::execute(cpu, mem, &dec(raw)).unwrap();
    (mem.loads.get(), mem.stores, mem.amos, mem.cas)
}

#[test]
fn every_amo_is_one_atomic_call_and_sc_one_compare_and_swap() {
    let mut mem = Counting::new();
    let mut cpu = rv64::Cpu::new();
    cpu.pc = CODE;
    cpu.x[1] = DATA;
    cpu.x[2] = 1;
    for width in [2u32, 3] {
        for f5 in [0x00u32, 0x01, 0x04, 0x08, 0x0c, 0x10, 0x14, 0x18, 0x1c] {
            let raw = amo(f5, width, 3, 3, 1, 2);
            assert_eq!(accesses(raw, &mut cpu, &mut mem), (0, 0, 1, 0), "{raw:#x}");
        }
        let lr = amo(0x02, width, 0, 3, 1, 0);
        let sc = amo(0x03, width, 0, 4, 1, 2);
        assert_eq!(
            accesses(lr, &mut cpu, &mut mem),
            (1, 0, 0, 0),
            "lr: one load"
        );
        assert_eq!(
            accesses(sc, &mut cpu, &mut mem),
            (0, 0, 0, 1),
            "sc: one cas"
        );
        assert_eq!(cpu.x[4], 0);
        assert_eq!(
            accesses(sc, &mut cpu, &mut mem),
            (0, 0, 0, 0),
            "sc without a reservation touches no memory"
        );
        assert_eq!(cpu.x[4], 1);
    }
}

#[test]
fn lr_records_the_value_it_read_sign_extended_for_lr_w() {
    let (mut cpu, mut mem) = setup();
    mem.store64(DATA, 0x1234_5678_9abc_def0).unwrap();
    cpu.x[1] = DATA;
    exec(&mut cpu, &mut mem, amo(0x02, 2, 0, 3, 1, 0)).unwrap(); // lr.w
    assert_eq!(cpu.reserved_value, 0xffff_ffff_9abc_def0);
    exec(&mut cpu, &mut mem, amo(0x02, 3, 0, 3, 1, 0)).unwrap(); // lr.d
    assert_eq!(cpu.reserved_value, 0x1234_5678_9abc_def0);
    assert_eq!(cpu.reservation, DATA);
}

/// lr, then `between` on the memory (standing for another thread), then sc of 99:
/// returns (sc's rd, the word afterwards, the reservation afterwards).
fn lr_then_sc(width: u32, between: impl FnOnce(&mut rv64::testmem::FlatMemory)) -> (u64, u64, u64) {
    let (mut cpu, mut mem) = setup();
    mem.store64(DATA, 5).unwrap();
    cpu.x[1] = DATA;
    cpu.x[2] = 99;
    exec(&mut cpu, &mut mem, amo(0x02, width, 2, 3, 1, 0)).unwrap(); // lr.aq
    between(&mut mem);
    exec(&mut cpu, &mut mem, amo(0x03, width, 1, 4, 1, 2)).unwrap(); // sc.rl
    (cpu.x[4], mem.load64(DATA).unwrap(), cpu.reservation)
}

#[test]
fn sc_fails_when_the_word_changed_since_the_lr() {
    let none = rv64::Cpu::NO_RESERVATION;
    let w = lr_then_sc(2, |m| m.store32(DATA, 6).unwrap());
    assert_eq!(w, (1, 6, none), "sc.w fails and stores nothing");
    let d = lr_then_sc(3, |m| m.store64(DATA, 6).unwrap());
    assert_eq!(d, (1, 6, none), "sc.d fails and stores nothing");
    // A change in the upper word is a change of the doubleword that sc.d compares.
    let d = lr_then_sc(3, |m| m.store32(DATA + 4, 1).unwrap());
    assert_eq!(d, (1, 5 | 1 << 32, none));
    // Unchanged: both succeed.
    assert_eq!(lr_then_sc(2, |_| ()), (0, 99, none));
    assert_eq!(lr_then_sc(3, |_| ()), (0, 99, none));
}

#[test]
fn sc_succeeds_when_the_original_value_was_stored_back_aba() {
    // The documented limit of a value-based reservation: a store of a different value
    // and then of the original one between lr and sc cannot be seen, so sc succeeds
    // (as a compare-and-swap would). So does a store of the same value.
    let none = rv64::Cpu::NO_RESERVATION;
    let aba = |m: &mut rv64::testmem::FlatMemory| {
        m.store32(DATA, 6).unwrap();
        m.store32(DATA, 5).unwrap();
    };
    assert_eq!(lr_then_sc(2, aba), (0, 99, none));
    assert_eq!(
        lr_then_sc(3, |m| m.store64(DATA, 5).unwrap()),
        (0, 99, none)
    );
}

/// A flat memory whose page DATA is read-only and page DATA + 0x1000 write-only, for
/// the faults of the trait's default atomic methods.
struct Protected(rv64::testmem::FlatMemory);

impl Protected {
    fn check(addr: u64, len: u64, kind: AccessKind) -> Result<(), MemFault> {
        let page = |a: u64| a & !0xfff;
        for p in [page(addr), page(addr + len - 1)] {
            let denied = match kind {
                AccessKind::Write => p == DATA,
                _ => p == DATA + 0x1000,
            };
            if denied {
                return Err(MemFault {
                    addr: p.max(addr),
                    kind,
                });
            }
        }
        Ok(())
    }
}

impl Memory for Protected {
    fn load8(&self, addr: u64) -> Result<u8, MemFault> {
        Self::check(addr, 1, AccessKind::Read)?;
        self.0.load8(addr)
    }
    fn load16(&self, addr: u64) -> Result<u16, MemFault> {
        Self::check(addr, 2, AccessKind::Read)?;
        self.0.load16(addr)
    }
    fn load32(&self, addr: u64) -> Result<u32, MemFault> {
        Self::check(addr, 4, AccessKind::Read)?;
        self.0.load32(addr)
    }
    fn load64(&self, addr: u64) -> Result<u64, MemFault> {
        Self::check(addr, 8, AccessKind::Read)?;
        self.0.load64(addr)
    }
    fn store8(&mut self, addr: u64, value: u8) -> Result<(), MemFault> {
        Self::check(addr, 1, AccessKind::Write)?;
        self.0.store8(addr, value)
    }
    fn store16(&mut self, addr: u64, value: u16) -> Result<(), MemFault> {
        Self::check(addr, 2, AccessKind::Write)?;
        self.0.store16(addr, value)
    }
    fn store32(&mut self, addr: u64, value: u32) -> Result<(), MemFault> {
        Self::check(addr, 4, AccessKind::Write)?;
        self.0.store32(addr, value)
    }
    fn store64(&mut self, addr: u64, value: u64) -> Result<(), MemFault> {
        Self::check(addr, 8, AccessKind::Write)?;
        self.0.store64(addr, value)
    }
    fn fetch16(&self, addr: u64) -> Result<u16, MemFault> {
        self.0.fetch16(addr)
    }
}

#[test]
fn atomic_faults_are_those_of_the_loads_and_stores_they_replace() {
    let fault = |addr, kind| {
        Err(Exit::Fault {
            pc: CODE,
            fault: MemFault { addr, kind },
        })
    };
    // With a reservation, `reserved` is the value it expects (memory holds 0).
    let run_with = |raw: u32, addr: u64, reserve: bool, reserved: u64| {
        let (mut cpu, flat) = setup();
        let mut mem = Protected(flat);
        cpu.x[1] = addr;
        cpu.x[2] = 7;
        cpu.x[3] = 0x55;
        if reserve {
            cpu.reservation = addr;
            cpu.reserved_value = reserved;
        }
        let r = rv64::execute(&mut cpu, &mut mem, &dec(raw));
        (r, cpu.x[3], cpu.reservation)
    };
    let run = |raw, addr, reserve| run_with(raw, addr, reserve, 0);
    let wo = DATA + 0x1000;
    let end = MEM_SIZE as u64;
    for width in [2u32, 3] {
        let amoadd = amo(0x00, width, 0, 3, 1, 2);
        let sc = amo(0x03, width, 0, 3, 1, 2);
        // AMO: needs read (Read fault first), then write.
        assert_eq!(run(amoadd, DATA, false).0, fault(DATA, AccessKind::Write));
        assert_eq!(run(amoadd, wo, false).0, fault(wo, AccessKind::Read));
        assert_eq!(run(amoadd, end, false).0, fault(end, AccessKind::Read));
        assert_eq!(
            run(amoadd, DATA + 2, false).0,
            fault(DATA + 2, AccessKind::Write)
        );
        // sc: a store's fault; the reservation survives a fault as all state does.
        assert_eq!(
            run(sc, DATA, true),
            (fault(DATA, AccessKind::Write), 0x55, DATA)
        );
        assert_eq!(run(sc, end, true).0, fault(end, AccessKind::Write));
        // ... also when the comparison fails: the fault is the store's, whatever the value.
        assert_eq!(
            run_with(sc, DATA, true, 1),
            (fault(DATA, AccessKind::Write), 0x55, DATA)
        );
        // Write-only: the default cannot compare, and stores as sc always did.
        assert_eq!(run(sc, wo, true), (Ok(()), 0, rv64::Cpu::NO_RESERVATION));
        // No reservation: no access, no fault.
        assert_eq!(run(sc, DATA, false), (Ok(()), 1, rv64::Cpu::NO_RESERVATION));
    }
}

#[test]
fn only_fences_ordering_stores_before_loads_need_a_full_barrier() {
    // fence pred,succ with I=8 O=4 R=2 W=1; fm in bits 11..8 of imm.
    let fence = |fm: u32, pred: u32, succ: u32| dec(fm << 28 | pred << 24 | succ << 20 | 0x0f);
    let cases = [
        (0, 0b0011, 0b0011, true),  // fence rw,rw
        (0, 0b1111, 0b1111, true),  // fence iorw,iorw
        (0, 0b0001, 0b0010, true),  // fence w,r
        (0, 0b0100, 0b1000, true),  // fence o,i
        (0, 0b0100, 0b0010, true),  // fence o,r
        (0, 0b0001, 0b1000, true),  // fence w,i
        (0, 0b0010, 0b0010, false), // fence r,r
        (0, 0b0001, 0b0001, false), // fence w,w
        (0, 0b0010, 0b0011, false), // fence r,rw
        (0, 0b0011, 0b0001, false), // fence rw,w
        (0, 0b1010, 0b1111, false), // fence ir,iorw
        (0, 0b0001, 0b0000, false), // pause (fence w,0)
        (8, 0b0011, 0b0011, false), // fence.tso
        (8, 0b0001, 0b0010, true),  // reserved fm: a normal fence w,r
        (3, 0b0011, 0b0011, true),  // reserved fm: a normal fence rw,rw
    ];
    for (fm, pred, succ, full) in cases {
        let f = fence(fm, pred, succ);
        assert_eq!(f.op, rv64::Op::Fence);
        assert_eq!(f.fence_orders_store_to_load(), full, "{f} (fm {fm})");
        // Every variant executes as a no-op on the architectural state.
        let (mut cpu, mut mem) = setup();
        let before = cpu.clone();
        rv64::execute(&mut cpu, &mut mem, &f).unwrap();
        assert_eq!((cpu.pc, cpu.instret), (CODE + 4, 1));
        assert_eq!(cpu.x, before.x);
    }
    assert!(!dec(amo(0x00, 2, 3, 3, 1, 2)).fence_orders_store_to_load());
}
