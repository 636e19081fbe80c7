//! Tests of guest memory: checks, mappings, threads.

use super::*;
use std::sync::atomic::AtomicU8;
use std::sync::atomic::Ordering::Relaxed;

fn mem() -> GuestMemory {
    GuestMemory::new().expect("reserve guest space")
}

#[test]
fn unmapped_memory_faults_on_every_access_kind() {
    let mut m = mem();
    assert_eq!(
        m.load8(0x1000),
        Err(MemFault {
            addr: 0x1000,
            kind: AccessKind::Read
        })
    );
    assert_eq!(
        m.store32(0x2000, 1),
        Err(MemFault {
            addr: 0x2000,
            kind: AccessKind::Write
        })
    );
    assert_eq!(
        m.fetch16(0x3000),
        Err(MemFault {
            addr: 0x3000,
            kind: AccessKind::Fetch
        })
    );
}

#[test]
fn mapped_memory_reads_back_little_endian_values() {
    let mut m = mem();
    m.map(0x10000, 0x1000, PERM_R | PERM_W).unwrap();
    m.store64(0x10008, 0x1122_3344_5566_7788).unwrap();
    assert_eq!(m.load64(0x10008), Ok(0x1122_3344_5566_7788));
    assert_eq!(m.load8(0x10008), Ok(0x88));
    assert_eq!(m.load16(0x1000e), Ok(0x1122));
    assert_eq!(m.load32(0x10009), Ok(0x2233_4455_6677_u64 as u32));
}

#[test]
fn access_crossing_into_unmapped_page_faults_at_that_page() {
    let mut m = mem();
    m.map(0x10000, 0x1000, PERM_R | PERM_W).unwrap();
    assert_eq!(
        m.load64(0x10ffc),
        Err(MemFault {
            addr: 0x11000,
            kind: AccessKind::Read
        })
    );
    assert_eq!(
        m.store32(0x10ffe, 7),
        Err(MemFault {
            addr: 0x11000,
            kind: AccessKind::Write
        })
    );
    // A crossing access between two mapped pages works.
    m.map(0x11000, 0x1000, PERM_R | PERM_W).unwrap();
    m.store64(0x10ffc, 0xaabb_ccdd_eeff_0011).unwrap();
    assert_eq!(m.load64(0x10ffc), Ok(0xaabb_ccdd_eeff_0011));
    assert_eq!(m.load32(0x11000), Ok(0xaabb_ccdd));
}

#[test]
fn write_to_read_only_page_faults_but_read_succeeds() {
    let mut m = mem();
    m.map(0x20000, 0x2000, PERM_R).unwrap();
    assert_eq!(m.load32(0x20000), Ok(0));
    assert_eq!(
        m.store8(0x20001, 1),
        Err(MemFault {
            addr: 0x20001,
            kind: AccessKind::Write
        })
    );
}

#[test]
fn fetch_needs_execute_permission() {
    let mut m = mem();
    m.map(0x20000, 0x1000, PERM_R | PERM_W).unwrap();
    assert!(m.fetch16(0x20000).is_err());
    m.protect(0x20000, 0x1000, PERM_R | PERM_X).unwrap();
    assert_eq!(m.fetch16(0x20000), Ok(0));
    assert!(m.store8(0x20000, 0).is_err());
}

#[test]
fn accesses_at_or_past_the_end_of_the_space_fault_without_wrapping() {
    let mut m = mem();
    m.map(GUEST_SPACE - PAGE_SIZE, PAGE_SIZE, PERM_R | PERM_W)
        .unwrap();
    assert_eq!(m.load64(GUEST_SPACE - 8), Ok(0));
    assert!(m.load64(GUEST_SPACE - 4).is_err());
    assert!(m.load8(GUEST_SPACE).is_err());
    assert!(m.load64(u64::MAX - 3).is_err());
    assert!(m.store64(u64::MAX, 0).is_err());
    assert!(m.check_range(u64::MAX, 2, PERM_R).is_err());
}

#[test]
fn commit_on_map_memory_behaves_like_eager_memory() {
    let mut m = GuestMemory::new_commit_on_map().unwrap();
    assert!(m.load8(0x10000).is_err());
    m.map(0x10000, 0x2000, PERM_R | PERM_W).unwrap();
    m.store64(0x10ffc, 0x0102_0304_0506_0708).unwrap();
    assert_eq!(m.load64(0x10ffc), Ok(0x0102_0304_0506_0708));
    m.unmap(0x10000, 0x2000).unwrap();
    m.map_union(0x10000, 0x1000, PERM_R).unwrap();
    assert_eq!(m.load64(0x10000), Ok(0));
}

#[test]
fn unmap_then_map_reads_zeros() {
    let mut m = mem();
    m.map(0x30000, 0x1000, PERM_R | PERM_W).unwrap();
    m.store64(0x30000, 42).unwrap();
    m.unmap(0x30000, 0x1000).unwrap();
    assert!(m.load64(0x30000).is_err());
    m.map(0x30000, 0x1000, PERM_R | PERM_W).unwrap();
    assert_eq!(m.load64(0x30000), Ok(0));
}

#[test]
fn prot_none_mapping_is_in_use_but_inaccessible() {
    let m = mem();
    m.map(0x40000, 0x1000, 0).unwrap();
    assert!(!m.is_free(0x40000, 0x1000));
    assert!(m.is_mapped(0x40000, 0x1000));
    assert!(m.load8(0x40000).is_err());
}

#[test]
fn protect_of_unmapped_range_is_rejected() {
    let m = mem();
    m.map(0x40000, 0x1000, PERM_R).unwrap();
    assert!(m.protect(0x40000, 0x2000, PERM_R | PERM_W).is_err());
    assert_eq!(m.page_perm(0x40000), PERM_R | PERM_MAPPED);
}

#[test]
fn pages_past_eof_stay_inaccessible_until_mapped_again() {
    let mut m = mem();
    m.map(0x40000, 0x3000, PERM_R).unwrap();
    m.mark_past_eof(0x41000, 0x2000).unwrap();
    assert!(!m.past_eof(0x40fff) && m.past_eof(0x41000) && m.past_eof(0x42fff));
    assert_eq!(m.load8(0x40fff), Ok(0));
    assert!(m.load8(0x41000).is_err());
    // mprotect cannot give them access; it still changes the page before them.
    m.protect(0x40000, 0x3000, PERM_R | PERM_W).unwrap();
    assert!(m.store8(0x42000, 1).is_err());
    assert_eq!(m.store8(0x40000, 1), Ok(()));
    assert!(m.is_mapped(0x40000, 0x3000));
    assert!(!m.is_free(0x41000, 0x1000));
    // A new mapping there is ordinary memory again.
    m.map(0x41000, 0x1000, PERM_R | PERM_W).unwrap();
    assert!(!m.past_eof(0x41000));
    assert_eq!(m.load8(0x41000), Ok(0));
    m.unmap(0x42000, 0x1000).unwrap();
    assert!(!m.past_eof(0x42000));
}

#[test]
fn find_free_top_down_skips_mapped_pages() {
    let m = mem();
    m.map(0x9000, 0x1000, PERM_R).unwrap();
    assert_eq!(m.find_free_top_down(0x1000, 0x1000, 0xa000), Some(0x8000));
    assert_eq!(m.find_free_top_down(0x2000, 0x1000, 0xb000), Some(0x7000));
    assert_eq!(m.find_free_top_down(0x3000, 0x8000, 0xb000), None);
}

#[test]
fn move_pages_moves_contents_and_leaves_zeros_behind() {
    for mut m in [mem(), GuestMemory::new_commit_on_map().unwrap()] {
        m.map(0x10000, 0x3000, PERM_R | PERM_W).unwrap();
        m.map(0x40000, 0x3000, PERM_R | PERM_W).unwrap();
        m.store64(0x10008, 0x1234).unwrap();
        m.store64(0x12ff8, 0x5678).unwrap();
        m.store64(0x40000, 0x9999).unwrap();
        m.move_pages(0x10000, 0x40000, 0x3000).unwrap();
        assert_eq!(m.load64(0x40008), Ok(0x1234));
        assert_eq!(m.load64(0x42ff8), Ok(0x5678));
        assert_eq!(
            m.load64(0x40000),
            Ok(0),
            "the target's old contents are gone"
        );
        assert_eq!(m.load64(0x10008), Ok(0), "the source reads as zeros");
        // Overlapping or unmapped ranges are refused.
        assert!(m.move_pages(0x40000, 0x41000, 0x2000).is_err());
        assert!(m.move_pages(0x40000, 0x80000, 0x1000).is_err());
    }
}

#[test]
fn check_range_reports_first_bad_address() {
    let m = mem();
    m.map(0x10000, 0x1000, PERM_R | PERM_W).unwrap();
    assert_eq!(m.check_range(0x10f00, 0x100, PERM_W), Ok(()));
    assert_eq!(m.check_range(0x10f00, 0x101, PERM_W), Err(0x11000));
    assert_eq!(m.check_range(0xff00, 0x200, PERM_R), Err(0xff00));
    assert_eq!(m.read_cstr(0x10000, 16), Ok(Vec::new()));
    m.write_bytes(0x10ffd, b"abc").unwrap();
    assert_eq!(m.read_cstr(0x10ffd, 16), Err(Some(0x11000)));
}

/// Writes `data` through a `HostRange`, as the host kernel would.
fn kernel_write(m: &mut GuestMemory, addr: u64, data: &[u8]) {
    let r = m.host_range(addr, data.len() as u64, PERM_W).unwrap();
    // SAFETY: `r` is a checked, writable view of `data.len()` bytes of the
    // reservation, and no other reference into it is alive.
    unsafe { std::ptr::copy_nonoverlapping(data.as_ptr(), r.ptr(), data.len()) };
}

#[test]
fn first_difference_names_the_first_permission_or_byte_that_differs() {
    let mut a = mem();
    a.map(0x10000, 0x3000, PERM_R | PERM_W).unwrap();
    a.store64(0x11ff8, 0x1111).unwrap();
    let mut b = a.duplicate().unwrap();
    assert_eq!(a.first_difference(&b), None);
    assert_eq!(b.load64(0x11ff8), Ok(0x1111));
    b.store8(0x12003, 0x80).unwrap();
    b.store8(0x11ffa, 0x22).unwrap();
    assert_eq!(
        a.first_difference(&b),
        Some(MemDifference::Contents {
            addr: 0x11ffa,
            word: 0x11ff8,
            ours: 0x1111,
            theirs: 0x22_1111,
        })
    );
    b.store8(0x11ffa, 0).unwrap();
    assert_eq!(a.first_difference(&b).map(|d| d.addr()), Some(0x12003));
    b.protect(0x11000, 0x1000, PERM_R).unwrap();
    assert_eq!(
        a.first_difference(&b),
        Some(MemDifference::Permission {
            addr: 0x11000,
            ours: PERM_R | PERM_W | PERM_MAPPED,
            theirs: PERM_R | PERM_MAPPED,
        })
    );
    b.unmap(0x10000, 0x3000).unwrap();
    b.map(GUEST_SPACE - PAGE_SIZE, PAGE_SIZE, PERM_R).unwrap();
    assert_eq!(
        b.first_difference(&a),
        Some(MemDifference::Permission {
            addr: 0x10000,
            ours: 0,
            theirs: PERM_R | PERM_W | PERM_MAPPED,
        })
    );
}

#[test]
fn applying_the_change_log_makes_a_copy_identical_again() {
    let mut a = mem();
    a.map(0x10000, 0x4000, PERM_R | PERM_W).unwrap();
    a.store64(0x10000, 7).unwrap();
    let mut b = a.duplicate().unwrap();
    a.start_change_log();
    a.store64(0x10008, 9).unwrap(); // guest code: not logged, done on both sides
    b.store64(0x10008, 9).unwrap();
    // What a system call does: the kernel writes, then the layer moves pages away
    // from what it wrote, maps, protects, copies, writes, discards, unmaps.
    kernel_write(&mut a, 0x10100, b"kernel");
    a.map(0x40000, 0x2000, PERM_R | PERM_W).unwrap();
    a.move_pages(0x10000, 0x40000, 0x2000).unwrap();
    kernel_write(&mut a, 0x12000, b"read(2) into a buffer");
    a.protect(0x12000, 0x1000, PERM_R).unwrap();
    a.write_bytes(0x13000, b"struct stat").unwrap();
    a.copy_within(0x13000, 0x13800, 11).unwrap();
    a.map_union(0x60000, 0x1000, PERM_R | PERM_X).unwrap();
    a.write_bytes_privileged(0x60000, b"code").unwrap();
    a.discard(0x13000, 0x1000);
    a.unmap(0x11000, 0x1000).unwrap();
    kernel_write(&mut a, 0x40200, b"last");
    a.protect(0x40000, 0x1000, PERM_R).unwrap();
    assert!(a.first_difference(&b).is_some());
    let changes = a.take_changes();
    // Nothing moved or dropped the last kernel write: it is read at application.
    assert!(changes.contains(&MemChange::HostWrite {
        addr: 0x40200,
        len: 4
    }));
    // The first kernel write was moved away: it was frozen into bytes before that.
    assert!(changes.contains(&MemChange::Bytes {
        addr: 0x10100,
        data: b"kernel".to_vec()
    }));
    b.apply_changes(&changes, &a).unwrap();
    assert_eq!(a.first_difference(&b), None);
    assert_eq!(b.load64(0x40000), Ok(7));
    assert_eq!(b.read_cstr(0x40100, 16), Ok(b"kernel".to_vec()));
    assert!(a.take_changes().is_empty(), "taking empties the log");
    a.stop_change_log();
    a.write_bytes(0x12800, b"x").unwrap_err(); // read-only now
    a.write_bytes(0x41000, b"x").unwrap();
    assert!(a.take_changes().is_empty(), "nothing is logged when off");
}

#[test]
fn fast_bits_match_the_translators_reference() {
    // Random tables, random ranges: the atomic version must compute what
    // `translate::context::update_fast_bits` (the layout's definition) does.
    let mut x = 0x2545_f491_4f6c_dd1du64;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for _ in 0..200 {
        let n = 2 + (next() % 40) as usize;
        let plain: Vec<u8> = (0..n).map(|_| (next() % 16) as u8).collect();
        let atomic: Vec<AtomicU8> = plain.iter().map(|&b| AtomicU8::new(b)).collect();
        let lo = (next() % n as u64) as usize;
        let hi = lo + (next() % (n - lo) as u64) as usize + 1;
        let mut reference = plain.clone();
        translate::context::update_fast_bits(&mut reference, lo..hi);
        update_fast_bits(&atomic, lo..hi);
        let got: Vec<u8> = atomic.iter().map(|a| a.load(Relaxed)).collect();
        assert_eq!(got, reference, "table {plain:?}, pages {lo}..{hi}");
    }
}

#[test]
fn amos_and_cas_are_atomic_across_threads() {
    let m = mem();
    m.map(0x10000, 0x1000, PERM_R | PERM_W).unwrap();
    const N: u64 = 20_000;
    std::thread::scope(|s| {
        for t in 0..4u64 {
            let m = &m;
            s.spawn(move || {
                for _ in 0..N {
                    m.amo32(0x10000, AmoOp::Add, 1).unwrap();
                    m.amo64(0x10008, AmoOp::Add, 3).unwrap();
                    m.amo64(0x10010, AmoOp::Max, t).unwrap();
                    // A CAS increment loop.
                    loop {
                        let v = m.load64(0x10018).unwrap();
                        if m.cas64(0x10018, v, v + 1).unwrap() {
                            break;
                        }
                    }
                }
            });
        }
    });
    assert_eq!(m.load32(0x10000), Ok(4 * N as u32));
    assert_eq!(m.load64(0x10008), Ok(12 * N));
    assert_eq!(m.load64(0x10010), Ok(3));
    assert_eq!(m.load64(0x10018), Ok(4 * N));
    // Misaligned and read-only words fault as the interpreter's AMOs always did.
    assert_eq!(
        m.amo32(0x10002, AmoOp::Add, 1),
        Err(MemFault {
            addr: 0x10002,
            kind: AccessKind::Write
        })
    );
    m.protect(0x10000, 0x1000, PERM_R).unwrap();
    assert_eq!(
        m.cas64(0x10000, 0, 1),
        Err(MemFault {
            addr: 0x10000,
            kind: AccessKind::Write
        })
    );
}

#[test]
fn threads_access_memory_while_another_maps_and_unmaps() {
    // Guest-level races give guest-level values; nothing faults the host, the
    // accounting stays exact and the table consistent.
    let m = mem();
    m.map(0x100000, 0x10000, PERM_R | PERM_W).unwrap();
    let stop = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|s| {
        for t in 0..2u64 {
            let (mut m, stop) = (&m, &stop);
            s.spawn(move || {
                let mut i = 0u64;
                while !stop.load(Relaxed) {
                    let a = 0x100000 + ((i * 8 + t * 0x8000) % 0x10000);
                    let _ = m.store64(a, i);
                    let _ = m.load64(a);
                    // Into the range the other thread maps and unmaps: faults or not.
                    let _ = m.store32(0x200000 + (i % 0x4000), 7);
                    let _ = m.load64(0x200ffc);
                    i += 1;
                }
            });
        }
        for _ in 0..2000 {
            m.map(0x200000, 0x4000, PERM_R | PERM_W).unwrap();
            m.protect(0x201000, 0x1000, PERM_R).unwrap();
            m.unmap(0x200000, 0x4000).unwrap();
        }
        stop.store(true, Relaxed);
    });
    assert_eq!(m.accessible_bytes(), 0x10000);
    assert!(m.is_free(0x200000, 0x4000));
    m.map(0x200000, 0x1000, PERM_R | PERM_W).unwrap();
    assert_eq!(
        m.load64(0x200000),
        Ok(0),
        "unmapped pages come back as zeros"
    );
}

#[test]
fn unaligned_accesses_and_copies_read_back() {
    let m = mem();
    m.map(0x10000, 0x2000, PERM_R | PERM_W).unwrap();
    for addr in 0x10ff0..0x11010u64 {
        let v = addr.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        (&m).store64(addr, v).unwrap();
        assert_eq!(m.load64(addr), Ok(v), "{addr:#x}");
        (&m).store16(addr, v as u16).unwrap();
        assert_eq!(m.load16(addr), Ok(v as u16));
    }
    let data: Vec<u8> = (0..=255u8).cycle().take(5000).collect();
    m.write_bytes(0x10003, &data).unwrap();
    let mut back = vec![0u8; 5000];
    m.read_bytes(0x10003, &mut back).unwrap();
    assert_eq!(back, data);
    // Overlapping copies in both directions.
    m.copy_within(0x10003, 0x10007, 4000).unwrap();
    m.read_bytes(0x10007, &mut back[..4000]).unwrap();
    assert_eq!(&back[..4000], &data[..4000]);
    m.copy_within(0x10007, 0x10001, 4000).unwrap();
    m.read_bytes(0x10001, &mut back[..4000]).unwrap();
    assert_eq!(&back[..4000], &data[..4000]);
}

#[test]
fn write_only_protection_maps_readable_as_on_riscv64_linux() {
    assert_eq!(perm_from_prot(2), PERM_MAPPED | PERM_R | PERM_W);
    assert_eq!(perm_from_prot(6), PERM_MAPPED | PERM_R | PERM_W | PERM_X);
    assert_eq!(perm_from_prot(4), PERM_MAPPED | PERM_X);
    assert_eq!(perm_from_prot(0), PERM_MAPPED);
}
