//! Interpreter throughput on a hand-made loop (loads, stores, ALU, multiply, branches;
//! blocks of 2-13 instructions, like compiled C) over a `Vec`-backed memory. Prints
//! guest instructions per second. Run with `cargo run --release -p rv64 --example
//! interp_bench`. A benchmark, not a test: the number depends on the host.

use std::time::Instant;

use rv64::testmem::FlatMemory;
use rv64::{Cpu, Exit, Interpreter};

/// Assembled from (riscv64-linux-gnu-as, -march=rv64gc, norvc):
/// outer: li t0,0; mv t1,a1
/// inner: ld t2,0(t1); add t3,t2,a0; xor t3,t3,t0; slli t4,t3,3; srli t5,t3,7;
///        xor t3,t4,t5; sd t3,0(t1); addi t1,t1,8; addi t0,t0,1; mul t6,t0,t3;
///        add a2,a2,t6; andi t6,t0,3; bnez t6,skip; addi a3,a3,1; lw t6,4(a1);
///        addw a3,a3,t6
/// skip:  blt t0,a4,inner; addi a0,a0,-1; bnez a0,outer; ecall
const LOOP: [u32; 22] = [
    0x00000293, 0x00058313, 0x00033383, 0x00a38e33, 0x005e4e33, 0x003e1e93, 0x007e5f13, 0x01eece33,
    0x01c33023, 0x00830313, 0x00128293, 0x03c28fb3, 0x01f60633, 0x0032ff93, 0x000f9863, 0x00168693,
    0x0045af83, 0x01f686bb, 0xfce2c0e3, 0xfff50513, 0xfa0518e3, 0x00000073,
];

const CODE: u64 = 0x1_0000;
const DATA: u64 = 0x2_0000;

fn main() {
    let outer: u64 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(500_000);
    let mut mem = FlatMemory::new(CODE, 0x2_0000);
    mem.write_words(CODE, &LOOP);
    let mut cpu = Cpu::new();
    cpu.pc = CODE;
    cpu.x[10] = outer; // a0: outer iterations
    cpu.x[11] = DATA; // a1: 64 doublewords of data
    cpu.x[14] = 64; // a4: inner iterations
    let mut interp = Interpreter::new();
    let t = Instant::now();
    let exit = interp.run(&mut cpu, &mut mem, u64::MAX);
    let secs = t.elapsed().as_secs_f64();
    assert_eq!(exit, Exit::Ecall, "the loop ends with ecall");
    println!(
        "{} guest instructions, {} blocks in {:.3} s: {:.1} M insns/s (checksum {:#x})",
        cpu.instret,
        interp.blocks_executed(),
        secs,
        cpu.instret as f64 / secs / 1e6,
        cpu.x[12] ^ cpu.x[13]
    );
}
