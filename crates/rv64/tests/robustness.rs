//! Bad input never panics: every 16-bit parcel and a large sample of random 32-bit
//! words decode (or are rejected) and disassemble; random instructions execute on random
//! register state, with random rounding modes, against a memory that faults almost
//! everywhere, and each either completes or returns a well-formed exit.

use rv64::testmem::FlatMemory;
use rv64::{Cpu, Exit, Interpreter, decode, execute};

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

#[test]
fn every_compressed_parcel_decodes_or_is_rejected_and_prints() {
    let mut valid = 0;
    for v in 0..=0xffffu32 {
        if v & 3 == 3 {
            continue;
        }
        if let Ok(i) = decode(v) {
            assert_eq!(i.len, 2);
            assert!(!i.to_string().is_empty());
            valid += 1;
        }
    }
    // RV64GC defines most of the compressed space.
    assert!(valid > 45_000, "{valid} valid compressed encodings");
}

#[test]
fn random_instructions_execute_without_panicking() {
    let mut g = Rng(0xdead_beef_cafe_f00d);
    let mut executed = 0;
    for n in 0..300_000u32 {
        let raw = if n % 4 == 0 {
            (g.next() & 0xffff) as u32
        } else {
            g.next() as u32 | 3
        };
        let Ok(insn) = decode(raw) else { continue };
        let _ = insn.display_at(g.next()).to_string();
        let mut cpu = Cpu::new();
        cpu.pc = 0x1000;
        for r in 1..32 {
            // Small values hit the flat memory sometimes; large ones fault.
            cpu.x[r] = if g.next().is_multiple_of(2) {
                0x1000 + (g.next() % 0x1000)
            } else {
                g.next()
            };
            cpu.f[r] = g.next();
        }
        cpu.frm = (g.next() % 8) as u32;
        let mut mem = FlatMemory::new(0x1000, 0x1000);
        match execute(&mut cpu, &mut mem, &insn) {
            Ok(()) => assert_eq!(cpu.instret, 1),
            Err(Exit::FenceI) => assert_eq!(cpu.pc, 0x1000 + insn.len as u64),
            Err(Exit::Budget) => panic!("execute never runs out of budget"),
            Err(_) => assert_eq!((cpu.pc, cpu.instret), (0x1000, 0)),
        }
        assert_eq!(cpu.x[0], 0);
        executed += 1;
    }
    assert!(executed > 100_000);
}

#[test]
fn random_code_runs_in_the_interpreter_without_panicking() {
    let mut g = Rng(0x0123_4567_89ab_cdef);
    for _ in 0..300 {
        let mut mem = FlatMemory::new(0x1000, 0x1000);
        for k in 0..0x400u64 {
            mem.write_bytes(0x1000 + 4 * k, &(g.next() as u32).to_le_bytes());
        }
        let mut cpu = Cpu::new();
        cpu.pc = 0x1000 + 2 * (g.next() % 0x800);
        let mut it = Interpreter::new();
        for _ in 0..20 {
            match it.run(&mut cpu, &mut mem, 1000) {
                Exit::Ecall | Exit::Ebreak => cpu.pc += 4,
                Exit::FenceI | Exit::Budget => {}
                Exit::Illegal { .. } | Exit::Fault { .. } => break,
            }
        }
    }
}
