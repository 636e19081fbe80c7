//! Tests of the system-call layer, through `Syscalls::dispatch`.

use super::*;
use std::ffi::CString;

use super::abi::{open_flags_to_guest, open_flags_to_host};
use crate::memory::{GUEST_SPACE, PAGE_SIZE, PERM_R, PERM_X};
use rv64::Memory;

const HEAP: u64 = 0x100_0000;

fn setup() -> (Syscalls, GuestMemory) {
    let m = GuestMemory::new().unwrap();
    m.map(0x10000, 0x10000, PERM_R | PERM_W).unwrap();
    (Syscalls::new(HEAP, b"/bin/guest".to_vec()), m)
}

fn call(s: &mut Syscalls, m: &mut GuestMemory, n: u64, a: &[u64]) -> i64 {
    let mut args = [0u64; 6];
    args[..a.len()].copy_from_slice(a);
    s.dispatch(n, args, m).expect("call continues the guest")
}

/// Where the helpers below put their arguments in guest memory.
const SCRATCH: u64 = 0x1d000;

/// A pipe in the guest's table: `[read end, write end]`.
fn guest_pipe(s: &mut Syscalls, m: &mut GuestMemory) -> [i32; 2] {
    assert_eq!(call(s, m, nr::PIPE2, &[SCRATCH, 0o2000000]), 0);
    [
        m.load32(SCRATCH).unwrap() as i32,
        m.load32(SCRATCH + 4).unwrap() as i32,
    ]
}

/// Opens `path` (host open flags, which equal the guest's on x86-64) through the guest's
/// openat.
fn gopen(s: &mut Syscalls, m: &mut GuestMemory, path: &std::ffi::CStr, flags: i32) -> i64 {
    m.write_bytes(SCRATCH, path.to_bytes_with_nul()).unwrap();
    call(
        s,
        m,
        nr::OPENAT,
        &[(-100i64) as u64, SCRATCH, flags as u64, 0o644],
    )
}

fn gclose(s: &mut Syscalls, m: &mut GuestMemory, fd: i32) {
    assert_eq!(call(s, m, nr::CLOSE, &[fd as u64]), 0, "close {fd}");
}

#[test]
fn write_and_read_move_guest_bytes_through_host_fds() {
    let (mut s, mut m) = setup();
    let [r, w] = guest_pipe(&mut s, &mut m);
    m.write_bytes(0x10000, b"hello pipe").unwrap();
    assert_eq!(
        call(&mut s, &mut m, nr::WRITE, &[w as u64, 0x10000, 10]),
        10
    );
    assert_eq!(call(&mut s, &mut m, nr::READ, &[r as u64, 0x10100, 64]), 10);
    let mut buf = [0u8; 10];
    m.read_bytes(0x10100, &mut buf).unwrap();
    assert_eq!(&buf, b"hello pipe");
    gclose(&mut s, &mut m, r);
    gclose(&mut s, &mut m, w);
}

#[test]
fn buffers_outside_mapped_memory_give_efault_not_a_crash() {
    let (mut s, mut m) = setup();
    let [r, w] = guest_pipe(&mut s, &mut m);
    assert_eq!(
        call(&mut s, &mut m, nr::WRITE, &[w as u64, 0x20000, 0x10]),
        EFAULT
    );
    // A buffer running into unmapped memory is refused whole (as qemu-user does).
    assert_eq!(
        call(&mut s, &mut m, nr::WRITE, &[w as u64, 0x1f000, 0x2000]),
        EFAULT
    );
    assert_eq!(
        call(&mut s, &mut m, nr::WRITE, &[w as u64, u64::MAX - 4, 16]),
        EFAULT
    );
    assert_eq!(
        call(&mut s, &mut m, nr::READ, &[r as u64, 0x5000, 16]),
        EFAULT
    );
    // Read-only memory cannot receive data.
    m.protect(0x18000, 0x1000, PERM_R).unwrap();
    assert_eq!(
        call(&mut s, &mut m, nr::READ, &[r as u64, 0x18000, 16]),
        EFAULT
    );
    gclose(&mut s, &mut m, r);
    gclose(&mut s, &mut m, w);
}

#[test]
fn writev_gathers_every_iovec() {
    let (mut s, mut m) = setup();
    let [r, w] = guest_pipe(&mut s, &mut m);
    m.write_bytes(0x10000, b"abc").unwrap();
    m.write_bytes(0x10010, b"defg").unwrap();
    let iov: Vec<u8> = [0x10000u64, 3, 0x10010, 4]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    m.write_bytes(0x10100, &iov).unwrap();
    assert_eq!(call(&mut s, &mut m, nr::WRITEV, &[w as u64, 0x10100, 2]), 7);
    assert_eq!(call(&mut s, &mut m, nr::READ, &[r as u64, 0x10200, 64]), 7);
    let mut buf = [0u8; 7];
    m.read_bytes(0x10200, &mut buf).unwrap();
    assert_eq!(&buf, b"abcdefg");
    gclose(&mut s, &mut m, r);
    gclose(&mut s, &mut m, w);
}

#[test]
fn write_to_a_closed_pipe_fails_with_epipe_and_raises_sigpipe() {
    let (mut s, mut m) = setup();
    let [r, w] = guest_pipe(&mut s, &mut m);
    gclose(&mut s, &mut m, r);
    let args = [w as u64, 0x10000, 1, 0, 0, 0];
    assert_eq!(s.dispatch(nr::WRITE, args, &m), Ok(e(libc::EPIPE)));
    let h = std::sync::Arc::clone(s.thread_handle());
    assert_eq!(s.group().pending_for(&h), 1 << (libc::SIGPIPE - 1));
    gclose(&mut s, &mut m, w);
}

#[test]
fn brk_grows_and_shrinks_the_heap() {
    let (mut s, mut m) = setup();
    assert_eq!(call(&mut s, &mut m, nr::BRK, &[0]), HEAP as i64);
    assert_eq!(
        call(&mut s, &mut m, nr::BRK, &[HEAP + 0x2100]),
        (HEAP + 0x2100) as i64
    );
    m.write_bytes(HEAP + 0x20ff, &[1]).unwrap();
    assert_eq!(
        call(&mut s, &mut m, nr::BRK, &[HEAP + 0x1000]),
        (HEAP + 0x1000) as i64
    );
    assert!(m.load8(HEAP + 0x1000).is_err());
    // Below the start: refused, the break stays.
    assert_eq!(
        call(&mut s, &mut m, nr::BRK, &[0x1000]),
        (HEAP + 0x1000) as i64
    );
}

#[test]
fn anonymous_mmap_is_zeroed_page_aligned_and_unmappable() {
    let (mut s, mut m) = setup();
    let a = call(&mut s, &mut m, nr::MMAP, &[0, 10000, 3, 0x22, u64::MAX, 0]);
    assert!(a > 0 && (a as u64).is_multiple_of(PAGE_SIZE), "{a:#x}");
    let a = a as u64;
    assert!(a + 12288 <= layout::MMAP_TOP && a > HEAP);
    assert_eq!(m.load64(a + 8192), Ok(0));
    m.write_bytes(a, b"x").unwrap();
    let b = call(&mut s, &mut m, nr::MMAP, &[0, 4096, 1, 0x22, u64::MAX, 0]) as u64;
    assert!(b + 4096 <= a || b >= a + 12288, "mappings must not overlap");
    assert!(m.store8(b, 1).is_err(), "PROT_READ mapping is read-only");
    assert_eq!(call(&mut s, &mut m, nr::MUNMAP, &[a, 12288]), 0);
    assert!(m.load8(a).is_err());
    assert_eq!(call(&mut s, &mut m, nr::MUNMAP, &[a + 1, 4096]), EINVAL);
}

#[test]
fn fixed_mmap_replaces_and_noreplace_refuses() {
    let (mut s, mut m) = setup();
    m.write_bytes(0x10000, b"old").unwrap();
    assert_eq!(
        call(
            &mut s,
            &mut m,
            nr::MMAP,
            &[0x10000, 4096, 3, 0x32, u64::MAX, 0]
        ),
        0x10000
    );
    assert_eq!(m.load8(0x10000), Ok(0), "MAP_FIXED gives fresh zero pages");
    let r = call(
        &mut s,
        &mut m,
        nr::MMAP,
        &[0x10000, 4096, 3, 0x10_0022, u64::MAX, 0],
    );
    assert_eq!(r, e(libc::EEXIST));
    assert_eq!(
        call(
            &mut s,
            &mut m,
            nr::MMAP,
            &[0x10001, 4096, 3, 0x32, u64::MAX, 0]
        ),
        EINVAL
    );
}

#[test]
fn file_backed_mmap_copies_the_file_and_zero_fills_the_tail() {
    // The rest of the file's last page reads as zeros; the pages after it are past the
    // end of the file (SIGBUS in Linux).
    let (mut s, mut m) = setup();
    let path = std::env::temp_dir().join(format!("vmjit-mmap-{}", std::process::id()));
    std::fs::write(&path, b"file contents").unwrap();
    let c = CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
    let fd = gopen(&mut s, &mut m, &c, libc::O_RDONLY | libc::O_CLOEXEC);
    assert!(fd >= 0);
    let a = call(&mut s, &mut m, nr::MMAP, &[0, 8192, 1, 2, fd as u64, 0]) as u64;
    let mut buf = [0u8; 13];
    m.read_bytes(a, &mut buf).unwrap();
    assert_eq!(&buf, b"file contents");
    assert_eq!(m.load8(a + 13), Ok(0));
    assert_eq!(m.load8(a + 4095), Ok(0));
    assert!(m.load8(a + 4096).is_err() && m.past_eof(a + 4096) && m.past_eof(a + 8191));
    assert!(!m.past_eof(a + 4095));
    // Writable shared file mappings cannot be honoured by copying: refused.
    assert_eq!(
        call(&mut s, &mut m, nr::MMAP, &[0, 4096, 3, 1, fd as u64, 0]),
        e(libc::ENODEV)
    );
    gclose(&mut s, &mut m, fd as i32);
    let _ = std::fs::remove_file(&path);
}

#[test]
fn mprotect_changes_permissions_and_invalidates_code() {
    let (mut s, mut m) = setup();
    m.protect(0x10000, 0x1000, PERM_R | PERM_X).unwrap();
    assert_eq!(call(&mut s, &mut m, nr::MPROTECT, &[0x10000, 0x1000, 3]), 0);
    assert!(m.store8(0x10000, 1).is_ok());
    assert_eq!(
        s.take_invalidations(),
        vec![Invalidation::Range {
            lo: 0x10000,
            hi: 0x11000
        }]
    );
    // Non-executable pages have no code to invalidate.
    assert_eq!(call(&mut s, &mut m, nr::MPROTECT, &[0x11000, 0x1000, 1]), 0);
    assert!(s.take_invalidations().is_empty());
    assert_eq!(
        call(&mut s, &mut m, nr::MPROTECT, &[0x30000, 0x1000, 1]),
        ENOMEM
    );
}

#[test]
fn munmap_of_code_and_flush_icache_request_invalidation() {
    let (mut s, mut m) = setup();
    m.protect(0x12000, 0x1000, PERM_R | PERM_X).unwrap();
    assert_eq!(call(&mut s, &mut m, nr::MUNMAP, &[0x12000, 0x1000]), 0);
    assert_eq!(
        s.take_invalidations(),
        vec![Invalidation::Range {
            lo: 0x12000,
            hi: 0x13000
        }]
    );
    assert_eq!(
        call(
            &mut s,
            &mut m,
            nr::RISCV_FLUSH_ICACHE,
            &[0x10000, 0x11000, 0]
        ),
        0
    );
    assert_eq!(s.take_invalidations(), vec![Invalidation::All]);
}

#[test]
fn mremap_grows_in_place_or_moves_with_contents() {
    let (mut s, mut m) = setup();
    let a = call(&mut s, &mut m, nr::MMAP, &[0, 4096, 3, 0x22, u64::MAX, 0]) as u64;
    m.write_bytes(a, b"keep").unwrap();
    // Block growth in place with another mapping right after it.
    m.map(a + 4096, 4096, PERM_R).unwrap();
    assert_eq!(
        call(&mut s, &mut m, nr::MREMAP, &[a, 4096, 16384, 0]),
        ENOMEM
    );
    let b = call(&mut s, &mut m, nr::MREMAP, &[a, 4096, 16384, 1]) as u64;
    assert_ne!(b, a);
    let mut buf = [0u8; 4];
    m.read_bytes(b, &mut buf).unwrap();
    assert_eq!(&buf, b"keep");
    m.store8(b + 16383, 1).unwrap();
    assert!(m.load8(a).is_err(), "old mapping is gone");
    assert_eq!(
        call(&mut s, &mut m, nr::MREMAP, &[b, 16384, 4096, 0]),
        b as i64
    );
    assert!(m.load8(b + 4096).is_err());
}

#[test]
fn mremap_to_a_fixed_range_overlapping_the_old_one_is_refused_and_keeps_the_data() {
    let (mut s, mut m) = setup();
    let a = call(&mut s, &mut m, nr::MMAP, &[0, 16384, 3, 0x22, u64::MAX, 0]) as u64;
    m.write_bytes(a, b"keep").unwrap();
    // MREMAP_MAYMOVE | MREMAP_FIXED onto a range overlapping the source.
    assert_eq!(
        call(&mut s, &mut m, nr::MREMAP, &[a, 8192, 8192, 3, a + 4096]),
        EINVAL
    );
    assert_eq!(
        call(&mut s, &mut m, nr::MREMAP, &[a, 8192, 8192, 3, a]),
        EINVAL
    );
    let mut buf = [0u8; 4];
    m.read_bytes(a, &mut buf).unwrap();
    assert_eq!(&buf, b"keep");
    // A zero old length (duplicating a shared mapping in Linux) is refused too.
    assert_eq!(call(&mut s, &mut m, nr::MREMAP, &[a, 0, 8192, 1]), EINVAL);
    // A disjoint fixed target works and moves the bytes.
    let to = a + 8192;
    assert_eq!(
        call(&mut s, &mut m, nr::MREMAP, &[a, 4096, 8192, 3, to]),
        to as i64
    );
    m.read_bytes(to, &mut buf).unwrap();
    assert_eq!(&buf, b"keep");
    assert!(m.load8(a).is_err());
}

#[test]
fn readv_with_a_bad_later_buffer_transfers_up_to_it() {
    let (mut s, mut m) = setup();
    let [r, w] = guest_pipe(&mut s, &mut m);
    m.write_bytes(0x10000, b"0123456789abcdef").unwrap();
    assert_eq!(
        call(&mut s, &mut m, nr::WRITE, &[w as u64, 0x10000, 16]),
        16
    );
    // Second buffer runs from writable into read-only memory.
    m.protect(0x1f000, 0x1000, PERM_R).unwrap();
    let iov: Vec<u8> = [0x10100u64, 4, 0x1eff8, 16]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    m.write_bytes(0x10200, &iov).unwrap();
    assert_eq!(call(&mut s, &mut m, nr::READV, &[r as u64, 0x10200, 2]), 4);
    assert_eq!(m.load32(0x10100), Ok(u32::from_le_bytes(*b"0123")));
    // A bad first buffer is EFAULT and consumes nothing.
    let iov: Vec<u8> = [0x1eff8u64, 16]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    m.write_bytes(0x10200, &iov).unwrap();
    assert_eq!(
        call(&mut s, &mut m, nr::READV, &[r as u64, 0x10200, 1]),
        EFAULT
    );
    assert_eq!(call(&mut s, &mut m, nr::READ, &[r as u64, 0x10300, 64]), 12);
    gclose(&mut s, &mut m, r);
    gclose(&mut s, &mut m, w);
}

#[test]
fn preadv_and_pwritev_use_the_offset_and_leave_the_file_position() {
    let (mut s, mut m) = setup();
    let path = std::env::temp_dir().join(format!("vmjit-preadv-{}", std::process::id()));
    std::fs::write(&path, b"hello world").unwrap();
    let c = CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
    let fd = gopen(&mut s, &mut m, &c, libc::O_RDWR | libc::O_CLOEXEC) as u64;
    let iov: Vec<u8> = [0x10000u64, 2, 0x10010, 3]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    m.write_bytes(0x10100, &iov).unwrap();
    assert_eq!(call(&mut s, &mut m, nr::PREADV, &[fd, 0x10100, 2, 6]), 5);
    assert_eq!(m.load16(0x10000), Ok(u16::from_le_bytes(*b"wo")));
    m.write_bytes(0x10000, b"HE").unwrap();
    m.write_bytes(0x10010, b"LLO").unwrap();
    assert_eq!(call(&mut s, &mut m, nr::PWRITEV, &[fd, 0x10100, 2, 0]), 5);
    assert_eq!(call(&mut s, &mut m, nr::LSEEK, &[fd, 0, 1]), 0);
    assert_eq!(std::fs::read(&path).unwrap(), b"HELLO world");
    gclose(&mut s, &mut m, fd as i32);
    let _ = std::fs::remove_file(&path);
}

#[test]
fn empty_buffers_at_unmapped_user_addresses_are_fine() {
    let (mut s, mut m) = setup();
    let [r, w] = guest_pipe(&mut s, &mut m);
    assert_eq!(
        call(&mut s, &mut m, nr::WRITE, &[w as u64, 0x0dea_dbee_f000, 0]),
        0
    );
    assert_eq!(
        call(&mut s, &mut m, nr::READ, &[r as u64, 0x0dea_dbee_f000, 0]),
        0
    );
    // Not a user address at all: EFAULT, as Linux.
    assert_eq!(
        call(&mut s, &mut m, nr::WRITE, &[w as u64, u64::MAX, 0]),
        EFAULT
    );
    gclose(&mut s, &mut m, r);
    gclose(&mut s, &mut m, w);
}

#[test]
fn munmap_beyond_the_guest_space_but_in_user_space_succeeds() {
    let (mut s, mut m) = setup();
    assert_eq!(call(&mut s, &mut m, nr::MUNMAP, &[1 << 40, 4096]), 0);
    assert_eq!(
        call(&mut s, &mut m, nr::MUNMAP, &[GUEST_SPACE - 4096, 8192]),
        0
    );
    assert_eq!(
        call(&mut s, &mut m, nr::MUNMAP, &[u64::MAX - 4095, 4096]),
        EINVAL
    );
}

#[test]
fn prot_sem_is_accepted_and_unknown_prot_bits_refused() {
    let (mut s, mut m) = setup();
    let a = call(
        &mut s,
        &mut m,
        nr::MMAP,
        &[0, 4096, 0x8 | 3, 0x22, u64::MAX, 0],
    );
    assert!(a > 0, "{a}");
    assert_eq!(
        call(&mut s, &mut m, nr::MPROTECT, &[a as u64, 4096, 0x8 | 1]),
        0
    );
    assert_eq!(
        call(&mut s, &mut m, nr::MPROTECT, &[a as u64, 4096, 0x10]),
        EINVAL
    );
}

#[test]
fn mmap_of_a_directory_or_pipe_is_enodev_and_of_a_write_only_file_eacces() {
    let (mut s, mut m) = setup();
    let [r, w] = guest_pipe(&mut s, &mut m);
    assert_eq!(
        call(&mut s, &mut m, nr::MMAP, &[0, 4096, 1, 2, r as u64, 0]),
        e(libc::ENODEV)
    );
    let dir = CString::new(std::env::temp_dir().as_os_str().as_encoded_bytes()).unwrap();
    let dfd = gopen(&mut s, &mut m, &dir, libc::O_RDONLY | libc::O_CLOEXEC);
    assert_eq!(
        call(&mut s, &mut m, nr::MMAP, &[0, 4096, 1, 2, dfd as u64, 0]),
        e(libc::ENODEV)
    );
    let path = std::env::temp_dir().join(format!("vmjit-wronly-{}", std::process::id()));
    std::fs::write(&path, b"data").unwrap();
    let c = CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
    let wfd = gopen(&mut s, &mut m, &c, libc::O_WRONLY | libc::O_CLOEXEC);
    assert_eq!(
        call(&mut s, &mut m, nr::MMAP, &[0, 4096, 1, 2, wfd as u64, 0]),
        e(libc::EACCES)
    );
    for fd in [r, w, dfd as i32, wfd as i32] {
        gclose(&mut s, &mut m, fd);
    }
    let _ = std::fs::remove_file(&path);
}

#[test]
fn mmap_of_dev_zero_gives_zeroed_writable_memory() {
    let (mut s, mut m) = setup();
    let fd = gopen(
        &mut s,
        &mut m,
        c"/dev/zero",
        libc::O_RDONLY | libc::O_CLOEXEC,
    );
    assert!(fd >= 0);
    let a = call(&mut s, &mut m, nr::MMAP, &[0, 8192, 3, 2, fd as u64, 0]);
    assert!(a > 0, "{a}");
    m.store8(a as u64 + 5, 1).unwrap();
    assert_eq!(m.load8(a as u64 + 4096), Ok(0));
    gclose(&mut s, &mut m, fd as i32);
}

#[test]
fn pipe2_and_dup3_refuse_unknown_flags() {
    let (mut s, mut m) = setup();
    assert_eq!(
        call(&mut s, &mut m, nr::PIPE2, &[0x10000, 0x8000_0000]),
        EINVAL
    );
    assert_eq!(call(&mut s, &mut m, nr::PIPE2, &[0x10000, 1]), EINVAL);
    assert_eq!(call(&mut s, &mut m, nr::DUP3, &[1, 50, 1]), EINVAL);
    assert_eq!(call(&mut s, &mut m, nr::PIPE2, &[0x10000, 0o2004000]), 0);
    let (r, w) = (m.load32(0x10000).unwrap(), m.load32(0x10004).unwrap());
    let fl = call(
        &mut s,
        &mut m,
        nr::FCNTL,
        &[u64::from(r), libc::F_GETFL as u64],
    );
    assert_eq!(fl & 0o4000, 0o4000, "O_NONBLOCK reached the host");
    gclose(&mut s, &mut m, r as i32);
    gclose(&mut s, &mut m, w as i32);
}

#[test]
fn madvise_dontneed_over_a_hole_zeroes_the_mapped_parts_and_reports_enomem() {
    let (mut s, mut m) = setup();
    m.write_bytes(0x10000, b"x").unwrap();
    m.write_bytes(0x1f000, b"y").unwrap();
    // [0x10000, 0x20000) is mapped, [0x20000, 0x21000) is not.
    assert_eq!(
        call(&mut s, &mut m, nr::MADVISE, &[0x10000, 0x11000, 4]),
        ENOMEM
    );
    assert_eq!(m.load8(0x10000), Ok(0));
    assert_eq!(m.load8(0x1f000), Ok(0));
    assert_eq!(call(&mut s, &mut m, nr::MADVISE, &[0x10000, 0x10000, 4]), 0);
    assert_eq!(
        call(&mut s, &mut m, nr::MADVISE, &[u64::MAX - 0xfff, 0x1000, 4]),
        EINVAL
    );
}

#[test]
fn opening_vmjits_own_memory_file_is_refused() {
    let (mut s, mut m) = setup();
    let cwd = (-100i64) as u64;
    for path in [
        &b"/proc/self/mem\0"[..],
        b"/proc/thread-self/mem\0",
        b"/proc/self/../self/./mem\0",
    ] {
        m.write_bytes(0x10000, path).unwrap();
        assert_eq!(
            call(&mut s, &mut m, nr::OPENAT, &[cwd, 0x10000, 2]),
            e(libc::EACCES),
            "{}",
            String::from_utf8_lossy(path)
        );
    }
    // Relative to a directory fd on /proc/self.
    m.write_bytes(0x10000, b"/proc/self\0").unwrap();
    let dir = call(&mut s, &mut m, nr::OPENAT, &[cwd, 0x10000, 0o200000]);
    assert!(dir >= 0, "{dir}");
    m.write_bytes(0x10000, b"mem\0").unwrap();
    assert_eq!(
        call(&mut s, &mut m, nr::OPENAT, &[dir as u64, 0x10000, 0]),
        e(libc::EACCES)
    );
    // Its neighbours stay readable.
    m.write_bytes(0x10000, b"maps\0").unwrap();
    let maps = call(&mut s, &mut m, nr::OPENAT, &[dir as u64, 0x10000, 0]);
    assert!(maps >= 0, "{maps}");
    gclose(&mut s, &mut m, maps as i32);
    gclose(&mut s, &mut m, dir as i32);
}

#[test]
fn ppoll_reports_a_readable_pipe_and_times_out_on_an_empty_one() {
    let (mut s, mut m) = setup();
    let [r, w] = guest_pipe(&mut s, &mut m);
    // struct pollfd { int fd; short events = POLLIN; short revents; }
    let pfd = |fd: i32| {
        let mut b = fd.to_le_bytes().to_vec();
        b.extend_from_slice(&1u16.to_le_bytes());
        b.extend_from_slice(&0u16.to_le_bytes());
        b
    };
    m.write_bytes(0x10000, &pfd(r)).unwrap();
    m.write_bytes(0x10100, &timespec(0, 0)).unwrap();
    assert_eq!(call(&mut s, &mut m, nr::PPOLL, &[0x10000, 1, 0x10100]), 0);
    m.write_bytes(0x10200, b"x").unwrap();
    assert_eq!(call(&mut s, &mut m, nr::WRITE, &[w as u64, 0x10200, 1]), 1);
    assert_eq!(call(&mut s, &mut m, nr::PPOLL, &[0x10000, 1, 0]), 1);
    assert_eq!(m.load16(0x10006), Ok(1), "revents = POLLIN");
    // The array must be mapped and writable (revents is written back).
    assert_eq!(call(&mut s, &mut m, nr::PPOLL, &[0x1fffc, 1, 0]), EFAULT);
    assert_eq!(
        call(&mut s, &mut m, nr::PPOLL, &[0x10000, 1 << 40, 0]),
        EINVAL
    );
    gclose(&mut s, &mut m, r);
    gclose(&mut s, &mut m, w);
}

#[test]
fn fcntl_owner_and_signal_commands_are_forwarded() {
    let (mut s, mut m) = setup();
    let [r, w] = guest_pipe(&mut s, &mut m);
    assert_eq!(call(&mut s, &mut m, nr::FCNTL, &[r as u64, 9]), 0); // F_GETOWN
    assert_eq!(call(&mut s, &mut m, nr::FCNTL, &[r as u64, 11]), 0); // F_GETSIG
    assert_eq!(call(&mut s, &mut m, nr::FCNTL, &[r as u64, 12345]), EINVAL);
    gclose(&mut s, &mut m, r);
    gclose(&mut s, &mut m, w);
}

#[test]
fn clock_nanosleep_lets_the_host_validate_the_clock() {
    let (mut s, mut m) = setup();
    m.write_bytes(0x10000, &timespec(0, 1000)).unwrap();
    assert_eq!(
        call(&mut s, &mut m, nr::CLOCK_NANOSLEEP, &[12345, 0, 0x10000, 0]),
        EINVAL
    );
    assert_eq!(
        call(
            &mut s,
            &mut m,
            nr::CLOCK_NANOSLEEP,
            &[libc::CLOCK_THREAD_CPUTIME_ID as u64, 0, 0x10000, 0]
        ),
        e(libc::EOPNOTSUPP)
    );
    assert_eq!(
        call(&mut s, &mut m, nr::CLOCK_NANOSLEEP, &[1, 0, 0x10000, 0]),
        0
    );
    // An absolute time in the past returns at once.
    assert_eq!(
        call(&mut s, &mut m, nr::CLOCK_NANOSLEEP, &[1, 1, 0x10000, 0]),
        0
    );
    assert_eq!(call(&mut s, &mut m, nr::NANOSLEEP, &[0x10000, 0]), 0);
    m.write_bytes(0x10000, &timespec(-1, 0)).unwrap();
    assert_eq!(call(&mut s, &mut m, nr::NANOSLEEP, &[0x10000, 0]), EINVAL);
    assert_eq!(call(&mut s, &mut m, nr::NANOSLEEP, &[0, 0]), EFAULT);
}

#[test]
fn fstat_uses_the_riscv64_struct_layout() {
    let (mut s, mut m) = setup();
    let path = std::env::temp_dir().join(format!("vmjit-stat-{}", std::process::id()));
    std::fs::write(&path, vec![7u8; 12345]).unwrap();
    let c = CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
    m.write_bytes(0x10000, c.as_bytes_with_nul()).unwrap();
    let fd = call(
        &mut s,
        &mut m,
        nr::OPENAT,
        &[(-100i64) as u64, 0x10000, 0, 0],
    );
    assert!(fd >= 0, "{fd}");
    assert_eq!(call(&mut s, &mut m, nr::FSTAT, &[fd as u64, 0x11000]), 0);
    let mode = m.load32(0x11000 + 16).unwrap();
    assert_eq!(mode & libc::S_IFMT, libc::S_IFREG);
    assert_eq!(m.load64(0x11000 + 48), Ok(12345), "st_size at offset 48");
    assert_eq!(
        m.load32(0x11000 + 20),
        Ok(1),
        "st_nlink is 32-bit at offset 20"
    );
    assert_eq!(
        call(
            &mut s,
            &mut m,
            nr::NEWFSTATAT,
            &[(-100i64) as u64, 0x10000, 0x12000, 0]
        ),
        0
    );
    assert_eq!(m.load64(0x12000 + 48), Ok(12345));
    assert_eq!(call(&mut s, &mut m, nr::CLOSE, &[fd as u64]), 0);
    let _ = std::fs::remove_file(&path);
}

#[test]
fn open_flags_translate_both_ways() {
    // O_WRONLY|O_CREAT|O_TRUNC|O_CLOEXEC|O_DIRECTORY|O_NOFOLLOW in asm-generic values.
    let guest = 0o1 | 0o100 | 0o1000 | 0o2000000 | 0o200000 | 0o400000;
    let host = open_flags_to_host(guest);
    assert_eq!(
        host,
        libc::O_WRONLY
            | libc::O_CREAT
            | libc::O_TRUNC
            | libc::O_CLOEXEC
            | libc::O_DIRECTORY
            | libc::O_NOFOLLOW
    );
    assert_eq!(
        open_flags_to_guest(libc::O_RDWR | libc::O_APPEND | libc::O_NONBLOCK),
        0o2 | 0o2000 | 0o4000
    );
}

#[test]
fn missing_path_gives_enoent_and_unmapped_path_efault() {
    let (mut s, mut m) = setup();
    m.write_bytes(0x10000, b"/nonexistent/vmjit/path\0")
        .unwrap();
    assert_eq!(
        call(
            &mut s,
            &mut m,
            nr::OPENAT,
            &[(-100i64) as u64, 0x10000, 0, 0]
        ),
        e(libc::ENOENT)
    );
    assert_eq!(
        call(
            &mut s,
            &mut m,
            nr::OPENAT,
            &[(-100i64) as u64, 0x9000, 0, 0]
        ),
        EFAULT
    );
}

#[test]
fn readlink_of_proc_self_exe_names_the_guest_program() {
    let (mut s, mut m) = setup();
    m.write_bytes(0x10000, b"/proc/self/exe\0").unwrap();
    // Linux's `bufsiz` is an int: 2^32 is 0 and refused, 2^32 + 4 is 4.
    let at = (-100i64) as u64;
    assert_eq!(
        call(
            &mut s,
            &mut m,
            nr::READLINKAT,
            &[at, 0x10000, 0x11000, 1 << 32]
        ),
        EINVAL
    );
    assert_eq!(
        call(
            &mut s,
            &mut m,
            nr::READLINKAT,
            &[at, 0x10000, 0x11000, (1 << 32) + 4]
        ),
        4
    );
    let n = call(
        &mut s,
        &mut m,
        nr::READLINKAT,
        &[(-100i64) as u64, 0x10000, 0x11000, 256],
    );
    assert_eq!(n, 10);
    let mut buf = [0u8; 10];
    m.read_bytes(0x11000, &mut buf).unwrap();
    assert_eq!(&buf, b"/bin/guest");
}

#[test]
fn sigaction_is_recorded_and_returned() {
    let (mut s, mut m) = setup();
    let act: Vec<u8> = [0x1234u64, 0x4000000, 0]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    m.write_bytes(0x10000, &act).unwrap();
    assert_eq!(
        call(&mut s, &mut m, nr::RT_SIGACTION, &[10, 0x10000, 0, 8]),
        0
    );
    assert_eq!(
        call(&mut s, &mut m, nr::RT_SIGACTION, &[10, 0, 0x11000, 8]),
        0
    );
    assert_eq!(m.load64(0x11000), Ok(0x1234));
    assert_eq!(
        call(&mut s, &mut m, nr::RT_SIGACTION, &[9, 0x10000, 0, 8]),
        EINVAL
    );
    assert_eq!(
        call(&mut s, &mut m, nr::RT_SIGACTION, &[10, 0x10000, 0, 16]),
        EINVAL
    );
}

#[test]
fn sigprocmask_blocks_and_reports_the_old_mask() {
    let (mut s, mut m) = setup();
    m.write_bytes(0x10000, &(1u64 << 5).to_le_bytes()).unwrap();
    assert_eq!(
        call(
            &mut s,
            &mut m,
            nr::RT_SIGPROCMASK,
            &[0, 0x10000, 0x10008, 8]
        ),
        0
    );
    assert_eq!(m.load64(0x10008), Ok(0));
    assert_eq!(
        call(&mut s, &mut m, nr::RT_SIGPROCMASK, &[2, 0, 0x10008, 8]),
        0
    );
    assert_eq!(m.load64(0x10008), Ok(1 << 5));
}

#[test]
fn signals_to_self_are_queued_for_the_thread_or_the_process() {
    let (mut s, mut m) = setup();
    let pid = s.pid() as u64;
    let h = std::sync::Arc::clone(s.thread_handle());
    assert_eq!(call(&mut s, &mut m, nr::TGKILL, &[pid, pid, 6]), 0);
    assert_eq!(s.group().pending_for(&h), 1 << 5);
    // Signal 0 only checks; SIGCHLD is ignored by default, so dropped at once.
    assert_eq!(call(&mut s, &mut m, nr::TGKILL, &[pid, pid, 0]), 0);
    assert_eq!(call(&mut s, &mut m, nr::KILL, &[pid, 17]), 0);
    assert_eq!(call(&mut s, &mut m, nr::KILL, &[pid, 10]), 0);
    assert_eq!(s.group().pending_for(&h), (1 << 5) | (1 << 9));
    // No such thread; bad signal numbers.
    assert_eq!(
        call(&mut s, &mut m, nr::TGKILL, &[pid, pid + 1_000_000, 6]),
        e(libc::ESRCH)
    );
    assert_eq!(call(&mut s, &mut m, nr::KILL, &[pid, 65]), EINVAL);
    // Blocked signals are pending; rt_sigpending reports them.
    m.write_bytes(0x10000, &(1u64 << 9).to_le_bytes()).unwrap();
    assert_eq!(
        call(&mut s, &mut m, nr::RT_SIGPROCMASK, &[0, 0x10000, 0, 8]),
        0
    );
    assert_eq!(call(&mut s, &mut m, nr::RT_SIGPENDING, &[0x10008, 8]), 0);
    assert_eq!(m.load64(0x10008), Ok(1 << 9));
}

#[test]
fn sigaction_reports_the_old_disposition_and_refuses_sigkill() {
    let (mut s, mut m) = setup();
    let act: Vec<u8> = [0x1234u64, 0x1000_0004, 1 << 8 | 1 << 1]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    m.write_bytes(0x10000, &act).unwrap();
    assert_eq!(
        call(&mut s, &mut m, nr::RT_SIGACTION, &[10, 0x10000, 0, 8]),
        0
    );
    assert_eq!(
        call(&mut s, &mut m, nr::RT_SIGACTION, &[10, 0, 0x10100, 8]),
        0
    );
    let mut old = [0u8; 24];
    m.read_bytes(0x10100, &mut old).unwrap();
    // SIGKILL is dropped from the handler's mask.
    assert_eq!(u64::from_le_bytes(old[0..8].try_into().unwrap()), 0x1234);
    assert_eq!(u64::from_le_bytes(old[16..24].try_into().unwrap()), 1 << 1);
    assert_eq!(
        call(&mut s, &mut m, nr::RT_SIGACTION, &[9, 0x10000, 0, 8]),
        EINVAL
    );
    assert_eq!(
        call(&mut s, &mut m, nr::RT_SIGACTION, &[19, 0x10000, 0, 8]),
        EINVAL
    );
    assert_eq!(
        call(&mut s, &mut m, nr::RT_SIGACTION, &[10, 0x10000, 0, 16]),
        EINVAL
    );
    assert_eq!(
        call(&mut s, &mut m, nr::RT_SIGACTION, &[10, 0x7, 0, 8]),
        EFAULT
    );
}

#[test]
fn sigtimedwait_takes_a_blocked_pending_signal_or_times_out() {
    let (mut s, mut m) = setup();
    let pid = s.pid() as u64;
    m.write_bytes(0x10000, &(1u64 << 11).to_le_bytes()).unwrap();
    assert_eq!(
        call(&mut s, &mut m, nr::RT_SIGPROCMASK, &[0, 0x10000, 0, 8]),
        0
    );
    // A zero timeout polls.
    m.write_bytes(0x10010, &[0u8; 16]).unwrap();
    assert_eq!(
        call(
            &mut s,
            &mut m,
            nr::RT_SIGTIMEDWAIT,
            &[0x10000, 0x10100, 0x10010, 8]
        ),
        e(libc::EAGAIN)
    );
    assert_eq!(call(&mut s, &mut m, nr::TGKILL, &[pid, pid, 12]), 0);
    assert_eq!(
        call(
            &mut s,
            &mut m,
            nr::RT_SIGTIMEDWAIT,
            &[0x10000, 0x10100, 0x10010, 8]
        ),
        12
    );
    // siginfo: signo, errno, code (SI_TKILL), pid.
    assert_eq!(m.load32(0x10100), Ok(12));
    assert_eq!(m.load32(0x10108), Ok(-6i32 as u32));
    assert_eq!(m.load32(0x10110), Ok(pid as u32));
    let h = std::sync::Arc::clone(s.thread_handle());
    assert_eq!(s.group().pending_for(&h), 0);
}

#[test]
fn timers_arm_report_and_disarm() {
    let (mut s, mut m) = setup();
    // setitimer(ITIMER_REAL, {interval 0, value 100 s}).
    let v: Vec<u8> = [0u64, 0, 100, 0]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    m.write_bytes(0x10000, &v).unwrap();
    assert_eq!(call(&mut s, &mut m, nr::SETITIMER, &[0, 0x10000, 0]), 0);
    assert_eq!(call(&mut s, &mut m, nr::GETITIMER, &[0, 0x10100]), 0);
    let left = m.load64(0x10110).unwrap();
    assert!((99..=100).contains(&left), "{left}");
    assert_eq!(
        call(&mut s, &mut m, nr::SETITIMER, &[3, 0x10000, 0]),
        EINVAL
    );
    // Disarm, reading the old value back.
    m.write_bytes(0x10000, &[0u8; 32]).unwrap();
    assert_eq!(
        call(&mut s, &mut m, nr::SETITIMER, &[0, 0x10000, 0x10100]),
        0
    );
    assert!(m.load64(0x10110).unwrap() >= 99);
    // A POSIX timer on CLOCK_MONOTONIC with a SIGUSR2 sigevent.
    let mut sev = [0u8; 64];
    sev[0..8].copy_from_slice(&77u64.to_le_bytes());
    sev[8..12].copy_from_slice(&12i32.to_le_bytes());
    m.write_bytes(0x10200, &sev).unwrap();
    assert_eq!(
        call(&mut s, &mut m, nr::TIMER_CREATE, &[1, 0x10200, 0x10300]),
        0
    );
    let id = u64::from(m.load32(0x10300).unwrap());
    let its: Vec<u8> = [0u64, 0, 50, 0]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    m.write_bytes(0x10400, &its).unwrap();
    assert_eq!(
        call(&mut s, &mut m, nr::TIMER_SETTIME, &[id, 0, 0x10400, 0]),
        0
    );
    assert_eq!(call(&mut s, &mut m, nr::TIMER_GETTIME, &[id, 0x10500]), 0);
    assert!((49..=50).contains(&m.load64(0x10510).unwrap()));
    assert_eq!(call(&mut s, &mut m, nr::TIMER_GETOVERRUN, &[id]), 0);
    assert_eq!(call(&mut s, &mut m, nr::TIMER_DELETE, &[id]), 0);
    assert_eq!(call(&mut s, &mut m, nr::TIMER_DELETE, &[id]), EINVAL);
    assert_eq!(
        call(&mut s, &mut m, nr::TIMER_CREATE, &[99, 0x10200, 0x10300]),
        EINVAL
    );
}

#[test]
fn futex_wait_single_threaded_never_blocks() {
    let (mut s, mut m) = setup();
    m.write_bytes(0x10000, &5u32.to_le_bytes()).unwrap();
    assert_eq!(
        call(&mut s, &mut m, nr::FUTEX, &[0x10000, 128, 4]),
        e(libc::EAGAIN)
    );
    assert_eq!(call(&mut s, &mut m, nr::FUTEX, &[0x10000, 129, 1]), 0);
    assert_eq!(
        call(&mut s, &mut m, nr::FUTEX, &[0x10000, 128, 5, 0x10008]),
        e(libc::ETIMEDOUT)
    );
    assert_eq!(
        s.dispatch(nr::FUTEX, [0x10000, 128, 5, 0, 0, 0], &m),
        Err(SyscallExit::Deadlock { uaddr: 0x10000 })
    );
}

#[test]
fn exit_group_ends_the_run_with_the_low_byte_of_the_status() {
    let (mut s, m) = setup();
    assert_eq!(
        s.dispatch(nr::EXIT_GROUP, [0x1_2a, 0, 0, 0, 0, 0], &m),
        Err(SyscallExit::Exited(42))
    );
}

#[test]
fn random_arguments_to_memory_and_process_calls_never_panic() {
    // Calls without lasting host side effects, fed edge-case arguments; every result
    // must be a value or a clean run end, and memory must stay consistent.
    let calls = [
        nr::BRK,
        nr::MMAP,
        nr::MUNMAP,
        nr::MPROTECT,
        nr::MREMAP,
        nr::MADVISE,
        nr::RT_SIGACTION,
        nr::RT_SIGPROCMASK,
        nr::SIGALTSTACK,
        nr::FUTEX,
        nr::UNAME,
        nr::GETRANDOM,
        nr::CLOCK_GETTIME,
        nr::CLOCK_GETRES,
        nr::GETTIMEOFDAY,
        nr::SCHED_GETAFFINITY,
        nr::PRLIMIT64,
        nr::GETRLIMIT,
        nr::GETCWD,
        nr::READLINKAT,
        nr::NEWFSTATAT,
        nr::STATX,
        nr::FACCESSAT,
        nr::SYSINFO,
        nr::GETRUSAGE,
        nr::RISCV_FLUSH_ICACHE,
        nr::SET_TID_ADDRESS,
        nr::TGKILL,
        // Buffer-taking calls on a descriptor that is never open: every guest
        // pointer check runs, the host then answers EBADF.
        nr::READ,
        nr::WRITE,
        nr::PREAD64,
        nr::PWRITE64,
        nr::READV,
        nr::WRITEV,
        nr::PREADV,
        nr::PWRITEV,
        nr::GETDENTS64,
        nr::FSTAT,
        nr::FSTATFS,
        nr::FCNTL,
        nr::IOCTL,
        nr::PIPE2,
        9999,
    ];
    let values = [
        0,
        1,
        8,
        0x1000,
        0x10000,
        0x10ff8,
        0x1_0000_0000,
        layout::MMAP_TOP - 0x1000,
        crate::memory::GUEST_SPACE - 8,
        crate::memory::GUEST_SPACE,
        i64::MAX as u64,
        u64::MAX - 0xfff,
        u64::MAX,
    ];
    let (mut s, m) = setup();
    let mut x = 0x853c_49e6_748f_ea9bu64;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for _ in 0..20_000 {
        let n = calls[(next() % calls.len() as u64) as usize];
        let mut a = [0u64; 6];
        for v in &mut a {
            *v = if next() % 4 == 0 {
                next()
            } else {
                values[(next() % values.len() as u64) as usize]
            };
        }
        if n == nr::MMAP {
            a[4] = u64::MAX; // anonymous: never a real host fd
        }
        if n == nr::TGKILL {
            a[2] = 0; // signal 0 only probes
        }
        if matches!(
            n,
            nr::READ
                | nr::WRITE
                | nr::PREAD64
                | nr::PWRITE64
                | nr::READV
                | nr::WRITEV
                | nr::PREADV
                | nr::PWRITEV
                | nr::GETDENTS64
                | nr::FSTAT
                | nr::FSTATFS
                | nr::FCNTL
                | nr::IOCTL
        ) {
            a[0] = u64::MAX; // fd -1
        }
        if n == nr::PIPE2 {
            a[1] = 0x8000_0000; // an invalid flag: the host refuses, no fds leak
        }
        let _ = s.dispatch(n, a, &m);
        let _ = s.take_invalidations();
    }
    assert!(s.brk() >= HEAP);
}

#[test]
fn unknown_syscall_returns_enosys() {
    let (mut s, mut m) = setup();
    assert_eq!(call(&mut s, &mut m, 4242, &[]), e(libc::ENOSYS));
    assert_eq!(call(&mut s, &mut m, 4242, &[]), e(libc::ENOSYS));
    assert_eq!(lock(&s.proc.warned).len(), 1, "warned once per number");
}

#[test]
fn uname_reports_a_riscv64_machine() {
    let (mut s, mut m) = setup();
    assert_eq!(call(&mut s, &mut m, nr::UNAME, &[0x10000]), 0);
    assert_eq!(m.read_cstr(0x10000, 65).unwrap(), b"Linux");
    assert_eq!(m.read_cstr(0x10000 + 4 * 65, 65).unwrap(), b"riscv64");
}

#[test]
fn clock_gettime_writes_a_timespec() {
    let (mut s, mut m) = setup();
    assert_eq!(call(&mut s, &mut m, nr::CLOCK_GETTIME, &[1, 0x10000]), 0);
    let ns = m.load64(0x10008).unwrap();
    assert!(ns < 1_000_000_000);
    assert_eq!(
        call(&mut s, &mut m, nr::CLOCK_GETTIME, &[1, 0x5000]),
        EFAULT
    );
}

#[test]
fn handle_advances_pc_and_sets_a0() {
    let (mut s, m) = setup();
    let mut cpu = Cpu::new();
    cpu.pc = 0x10000;
    cpu.x[17] = nr::GETPID;
    assert_eq!(s.handle(&mut cpu, &m), None);
    assert_eq!(cpu.pc, 0x10004);
    assert_eq!(cpu.x[10] as i64, s.pid());
}

// --- The guest's descriptor table and what it may reach ---

/// A host pipe the guest was never given, moved to high numbers so that they cannot
/// coincide with a guest descriptor.
fn vmjit_private_pipe() -> [i32; 2] {
    let [r, w] = host::pipe2(libc::O_CLOEXEC).expect("pipe");
    let hi = |fd: i32| {
        let n = host::fcntl_int(fd, libc::F_DUPFD_CLOEXEC, 600) as i32;
        host::close(fd);
        n
    };
    [hi(r), hi(w)]
}

fn put_str(m: &mut GuestMemory, at: u64, s: &str) {
    m.write_bytes(at, s.as_bytes()).unwrap();
    m.write_bytes(at + s.len() as u64, &[0]).unwrap();
}

fn open_at(s: &mut Syscalls, m: &mut GuestMemory, path: &str, flags: u64) -> i64 {
    put_str(m, 0x1c000, path);
    call(s, m, nr::OPENAT, &[(-100i64) as u64, 0x1c000, flags, 0o600])
}

#[test]
fn new_descriptors_are_the_lowest_free_numbers_from_three() {
    let (mut s, mut m) = setup();
    let a = open_at(&mut s, &mut m, "/dev/null", 0);
    let b = open_at(&mut s, &mut m, "/dev/null", 0);
    assert_eq!((a, b), (3, 4));
    assert_eq!(call(&mut s, &mut m, nr::CLOSE, &[3]), 0);
    let [r, w] = guest_pipe(&mut s, &mut m);
    assert_eq!((r, w), (3, 5));
    assert_eq!(call(&mut s, &mut m, nr::DUP, &[4]), 6);
    assert_eq!(call(&mut s, &mut m, nr::FCNTL, &[4, 0, 20]), 20); // F_DUPFD
    assert_eq!(call(&mut s, &mut m, nr::DUP3, &[4, 9, 0o2000000]), 9);
    assert_eq!(call(&mut s, &mut m, nr::FCNTL, &[9, 1]), 1, "FD_CLOEXEC"); // F_GETFD
    assert_eq!(call(&mut s, &mut m, nr::FCNTL, &[4, 1]), 0);
    assert_eq!(call(&mut s, &mut m, nr::IOCTL, &[4, 0x5451]), 0); // FIOCLEX
    assert_eq!(call(&mut s, &mut m, nr::FCNTL, &[4, 1]), 1);
    assert_eq!(call(&mut s, &mut m, nr::FCNTL, &[4, 2, 0]), 0); // F_SETFD
    assert_eq!(call(&mut s, &mut m, nr::FCNTL, &[4, 1]), 0);
}

#[test]
fn descriptors_vmjit_holds_are_ebadf_to_every_descriptor_call() {
    let (mut s, mut m) = setup();
    let [r, w] = vmjit_private_pipe();
    let ebadf = e(libc::EBADF);
    m.write_bytes(0x10000, b"x").unwrap();
    let iov: Vec<u8> = [0x10000u64, 1]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    m.write_bytes(0x10100, &iov).unwrap();
    for fd in [r, w] {
        let fd = fd as u64;
        for (n, args) in [
            (nr::WRITE, vec![fd, 0x10000, 1]),
            (nr::READ, vec![fd, 0x10200, 1]),
            (nr::PWRITE64, vec![fd, 0x10000, 1, 0]),
            (nr::WRITEV, vec![fd, 0x10100, 1]),
            (nr::FSTAT, vec![fd, 0x11000]),
            (nr::FSTATFS, vec![fd, 0x11000]),
            (nr::LSEEK, vec![fd, 0, 0]),
            (nr::FTRUNCATE, vec![fd, 0]),
            (nr::FCNTL, vec![fd, 3]),
            (nr::IOCTL, vec![fd, 0x541b, 0x11000]),
            (nr::DUP, vec![fd]),
            (nr::DUP3, vec![fd, 40, 0]),
            (nr::GETDENTS64, vec![fd, 0x11000, 512]),
            (nr::MMAP, vec![0, 4096, 1, 2, fd, 0]),
            (nr::FCHDIR, vec![fd]),
            (nr::CLOSE, vec![fd]),
        ] {
            assert_eq!(
                call(&mut s, &mut m, n, &args),
                ebadf,
                "syscall {n} on fd {fd}"
            );
        }
        // A relative path from it is EBADF too.
        put_str(&mut m, 0x1c000, "x");
        assert_eq!(call(&mut s, &mut m, nr::OPENAT, &[fd, 0x1c000, 0]), ebadf);
    }
    // Still open on the host: nothing the guest did reached them.
    assert_eq!(host::write(w, m.host_range(0x10000, 1, PERM_R).unwrap()), 1);
    host::close(r);
    host::close(w);
}

#[test]
fn proc_self_fd_shows_the_guests_descriptors_under_its_numbers() {
    let (mut s, mut m) = setup();
    let [hr, hw] = vmjit_private_pipe();
    let path = std::env::temp_dir().join(format!("vmjit-fdlink-{}", std::process::id()));
    std::fs::write(&path, b"x").unwrap();
    let name = path.to_str().unwrap();
    let f = open_at(&mut s, &mut m, name, 0);
    assert_eq!(f, 3);
    // readlink of the guest's fd 3 names its file; of vmjit's pipe, nothing.
    for (link, want) in [
        (format!("/proc/self/fd/{f}"), Ok(name.to_string())),
        (format!("/dev/fd/{f}"), Ok(name.to_string())),
        (format!("/proc/self/fd/{hr}"), Err(e(libc::ENOENT))),
        (format!("/proc/{}/fd/{hw}", s.pid()), Err(e(libc::ENOENT))),
    ] {
        put_str(&mut m, 0x1c000, &link);
        let n = call(
            &mut s,
            &mut m,
            nr::READLINKAT,
            &[(-100i64) as u64, 0x1c000, 0x1b000, 256],
        );
        match &want {
            Ok(target) => {
                assert_eq!(n, target.len() as i64, "{link}");
                let mut b = vec![0u8; n as usize];
                m.read_bytes(0x1b000, &mut b).unwrap();
                assert_eq!(b, target.as_bytes());
            }
            Err(r) => assert_eq!(n, *r, "{link}"),
        }
        let o = open_at(&mut s, &mut m, &link, 0);
        match want {
            Ok(_) => assert!(o >= 0, "{link}: {o}"),
            Err(r) => assert_eq!(o, r, "{link}"),
        }
    }
    // Listing the directory gives exactly the guest's numbers.
    let dir = open_at(&mut s, &mut m, "/proc/self/fd", 0o200000);
    assert!(dir > 0);
    let mut names = Vec::new();
    loop {
        let n = call(&mut s, &mut m, nr::GETDENTS64, &[dir as u64, 0x12000, 64]);
        assert!(n >= 0, "{n}");
        if n == 0 {
            break;
        }
        let mut buf = vec![0u8; n as usize];
        m.read_bytes(0x12000, &mut buf).unwrap();
        let mut at = 0;
        while at < buf.len() {
            let reclen = u16::from_le_bytes([buf[at + 16], buf[at + 17]]) as usize;
            let name: Vec<u8> = buf[at + 19..at + reclen]
                .iter()
                .copied()
                .take_while(|&b| b != 0)
                .collect();
            names.push(String::from_utf8(name).unwrap());
            at += reclen;
        }
    }
    let want: Vec<String> = [".", ".."]
        .iter()
        .map(|s| s.to_string())
        .chain(s.proc.fds().numbers().iter().map(|n| n.to_string()))
        .collect();
    assert_eq!(names, want);
    assert!(!names.contains(&hr.to_string()));
    // A relative open from that directory names guest descriptors too.
    put_str(&mut m, 0x1c000, "3");
    assert!(call(&mut s, &mut m, nr::OPENAT, &[dir as u64, 0x1c000, 0]) >= 0);
    put_str(&mut m, 0x1c000, &hr.to_string());
    assert_eq!(
        call(&mut s, &mut m, nr::OPENAT, &[dir as u64, 0x1c000, 0]),
        e(libc::ENOENT)
    );
    // Rewinding lists again from the start.
    assert_eq!(call(&mut s, &mut m, nr::LSEEK, &[dir as u64, 0, 0]), 0);
    assert!(call(&mut s, &mut m, nr::GETDENTS64, &[dir as u64, 0x12000, 64]) > 0);
    host::close(hr);
    host::close(hw);
    let _ = std::fs::remove_file(&path);
}

#[test]
fn vmjits_own_files_cannot_be_opened_by_any_path() {
    let (mut s, mut m) = setup();
    let dir = std::env::temp_dir().join(format!("vmjit-internal-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let secret = dir.join("secret");
    std::fs::write(&secret, b"host state").unwrap();
    let st = std::fs::metadata(&secret).unwrap();
    use std::os::unix::fs::MetadataExt;
    crate::sandbox::register_internal_file(st.dev(), st.ino());
    std::os::unix::fs::symlink(&secret, dir.join("link")).unwrap();
    let eacces = e(libc::EACCES);
    for p in [
        secret.to_str().unwrap().to_string(),
        dir.join("link").to_str().unwrap().to_string(),
        format!(
            "{}/../{}/secret",
            dir.display(),
            dir.file_name().unwrap().to_str().unwrap()
        ),
    ] {
        for flags in [0u64, 2, 0o10000000 /* O_PATH */] {
            assert_eq!(open_at(&mut s, &mut m, &p, flags), eacces, "{p} {flags:o}");
        }
    }
    // Relative to a directory descriptor.
    let d = open_at(&mut s, &mut m, dir.to_str().unwrap(), 0o200000);
    put_str(&mut m, 0x1c000, "secret");
    assert_eq!(
        call(&mut s, &mut m, nr::OPENAT, &[d as u64, 0x1c000, 0]),
        eacces
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn host_memory_and_mapping_files_are_refused() {
    let (mut s, mut m) = setup();
    let pid = s.pid();
    for p in [
        "/proc/self/map_files".to_string(),
        "/proc/self/pagemap".to_string(),
        format!("/proc/{pid}/mem"),
        format!("/proc/{pid}/task/{pid}/mem"),
        "/proc/thread-self/mem".to_string(),
        "/proc/self/root/proc/self/mem".to_string(),
        "/proc/self/smaps".to_string(),
    ] {
        assert_eq!(open_at(&mut s, &mut m, &p, 0), e(libc::EACCES), "{p}");
    }
    // Looking at them is fine (what `ls -l /proc/self` does).
    put_str(&mut m, 0x1c000, "/proc/self/mem");
    assert_eq!(
        call(
            &mut s,
            &mut m,
            nr::NEWFSTATAT,
            &[(-100i64) as u64, 0x1c000, 0x11000, 0]
        ),
        0
    );
    // ptrace and stealing descriptors are refused; process_vm_* on the guest itself
    // copy inside its memory, on anyone else they are refused.
    assert_eq!(
        call(&mut s, &mut m, nr::PTRACE, &[0, 0, 0, 0]),
        e(libc::EPERM)
    );
    assert_eq!(
        call(&mut s, &mut m, nr::PIDFD_GETFD, &[3, 3, 0]),
        e(libc::EPERM)
    );
    m.write_bytes(0x10000, b"guest").unwrap();
    let iov = |base: u64, len: u64| -> Vec<u8> {
        [base, len].iter().flat_map(|v| v.to_le_bytes()).collect()
    };
    m.write_bytes(0x10100, &iov(0x10200, 5)).unwrap(); // local
    m.write_bytes(0x10180, &iov(0x10000, 5)).unwrap(); // remote
    let pid = pid as u64;
    assert_eq!(
        call(
            &mut s,
            &mut m,
            nr::PROCESS_VM_READV,
            &[pid, 0x10100, 1, 0x10180, 1, 0]
        ),
        5
    );
    let mut b = [0u8; 5];
    m.read_bytes(0x10200, &mut b).unwrap();
    assert_eq!(&b, b"guest");
    assert_eq!(
        call(
            &mut s,
            &mut m,
            nr::PROCESS_VM_WRITEV,
            &[1, 0x10100, 1, 0x10180, 1, 0]
        ),
        e(libc::EPERM)
    );
    // A remote range outside guest memory is EFAULT, never host memory.
    m.write_bytes(0x10180, &iov(GUEST_SPACE + 0x1000, 5))
        .unwrap();
    assert_eq!(
        call(
            &mut s,
            &mut m,
            nr::PROCESS_VM_WRITEV,
            &[pid, 0x10100, 1, 0x10180, 1, 0]
        ),
        EFAULT
    );
}

#[test]
fn proc_self_maps_cmdline_and_environ_describe_the_guest() {
    let (mut s, mut m) = setup();
    s.set_process_strings(&[b"prog", b"arg"], &[b"A=B"]);
    let read_all = |s: &mut Syscalls, m: &mut GuestMemory, path: &str| -> Vec<u8> {
        let fd = open_at(s, m, path, 0);
        assert!(fd >= 0, "{path}: {fd}");
        let n = call(s, m, nr::READ, &[fd as u64, 0x12000, 4096]);
        assert!(n >= 0);
        let mut b = vec![0u8; n as usize];
        m.read_bytes(0x12000, &mut b).unwrap();
        call(s, m, nr::CLOSE, &[fd as u64]);
        b
    };
    let maps = String::from_utf8(read_all(&mut s, &mut m, "/proc/self/maps")).unwrap();
    // Below the program break: the executable's segments.
    assert_eq!(
        maps,
        "00010000-00020000 rw-p 00000000 00:00 0    /bin/guest\n"
    );
    assert_eq!(
        read_all(&mut s, &mut m, "/proc/self/cmdline"),
        b"prog\0arg\0"
    );
    assert_eq!(read_all(&mut s, &mut m, "/proc/self/environ"), b"A=B\0");
    // Read-only, as the files they stand for.
    assert_eq!(
        open_at(&mut s, &mut m, "/proc/self/maps", 2),
        e(libc::EACCES)
    );
}

#[test]
fn nofile_limit_bounds_the_table_and_is_the_guests_to_lower() {
    let (mut s, mut m) = setup();
    m.write_bytes(0x11000, &[5u64.to_le_bytes(), 5u64.to_le_bytes()].concat())
        .unwrap();
    assert_eq!(call(&mut s, &mut m, nr::SETRLIMIT, &[7, 0x11000]), 0);
    assert_eq!(call(&mut s, &mut m, nr::PRLIMIT64, &[0, 7, 0, 0x11100]), 0);
    assert_eq!(m.load64(0x11100), Ok(5));
    assert_eq!(open_at(&mut s, &mut m, "/dev/null", 0), 3);
    assert_eq!(open_at(&mut s, &mut m, "/dev/null", 0), 4);
    assert_eq!(open_at(&mut s, &mut m, "/dev/null", 0), e(libc::EMFILE));
    assert_eq!(call(&mut s, &mut m, nr::DUP3, &[3, 5, 0]), e(libc::EBADF));
    // The hard limit cannot be raised past what vmjit keeps for the guest.
    m.write_bytes(
        0x11000,
        &[5u64.to_le_bytes(), u64::MAX.to_le_bytes()].concat(),
    )
    .unwrap();
    assert_eq!(
        call(&mut s, &mut m, nr::SETRLIMIT, &[7, 0x11000]),
        e(libc::EPERM)
    );
    // Other limits are recorded for the guest, never applied to vmjit.
    m.write_bytes(0x11000, &[1u64.to_le_bytes(), 1u64.to_le_bytes()].concat())
        .unwrap();
    assert_eq!(call(&mut s, &mut m, nr::SETRLIMIT, &[0, 0x11000]), 0); // RLIMIT_CPU
    assert_eq!(call(&mut s, &mut m, nr::GETRLIMIT, &[0, 0x11100]), 0);
    assert_eq!(m.load64(0x11100), Ok(1));
    assert_ne!(host::getrlimit(0).unwrap().0, 1);
    // close_range over everything leaves stdio and vmjit alone.
    assert_eq!(
        call(
            &mut s,
            &mut m,
            nr::CLOSE_RANGE,
            &[3, u64::from(u32::MAX), 0]
        ),
        0
    );
    assert_eq!(open_at(&mut s, &mut m, "/dev/null", 0), 3);
}

#[test]
fn ppoll_gives_pollnval_for_a_descriptor_that_is_not_open() {
    let (mut s, mut m) = setup();
    let [r, w] = guest_pipe(&mut s, &mut m);
    m.write_bytes(0x10200, b"x").unwrap();
    assert_eq!(call(&mut s, &mut m, nr::WRITE, &[w as u64, 0x10200, 1]), 1);
    let [hr, _hw] = vmjit_private_pipe();
    let pfd = |fd: i32| {
        let mut b = fd.to_le_bytes().to_vec();
        b.extend_from_slice(&1u16.to_le_bytes());
        b.extend_from_slice(&0xffffu16.to_le_bytes());
        b
    };
    let arr = [pfd(r), pfd(hr), pfd(-1)].concat();
    m.write_bytes(0x10000, &arr).unwrap();
    assert_eq!(call(&mut s, &mut m, nr::PPOLL, &[0x10000, 3, 0]), 2);
    assert_eq!(
        m.load32(0x10000),
        Ok(r as u32),
        "fds are left as the guest wrote them"
    );
    assert_eq!(m.load16(0x10006), Ok(1), "POLLIN");
    assert_eq!(m.load32(0x10008), Ok(hr as u32));
    assert_eq!(m.load16(0x1000e), Ok(0x20), "POLLNVAL");
    assert_eq!(m.load16(0x10016), Ok(0), "a negative fd is ignored");
}

#[test]
fn guest_memory_is_bounded_and_enomem_comes_before_any_change() {
    let (mut s, mut m) = setup();
    let used = m.accessible_bytes();
    s.set_memory_limit(used + (1 << 20));
    // PROT_NONE reservations cost nothing.
    let big = call(
        &mut s,
        &mut m,
        nr::MMAP,
        &[0, 1 << 30, 0, 0x22, u64::MAX, 0],
    );
    assert!(big > 0, "{big}");
    let a = call(
        &mut s,
        &mut m,
        nr::MMAP,
        &[0, 1 << 20, 3, 0x22, u64::MAX, 0],
    );
    assert!(a > 0, "{a}");
    assert_eq!(
        call(&mut s, &mut m, nr::MMAP, &[0, 4096, 3, 0x22, u64::MAX, 0]),
        ENOMEM
    );
    assert_eq!(
        call(&mut s, &mut m, nr::MPROTECT, &[big as u64, 4096, 3]),
        ENOMEM
    );
    assert_eq!(call(&mut s, &mut m, nr::BRK, &[HEAP + 4096]), HEAP as i64);
    assert_eq!(
        call(&mut s, &mut m, nr::MREMAP, &[a as u64, 1 << 20, 2 << 20, 1]),
        ENOMEM
    );
    assert!(
        m.is_mapped(a as u64, 1 << 20),
        "the failed mremap left it alone"
    );
    // Replacing a mapping in place with MAP_FIXED reuses its share.
    assert_eq!(
        call(
            &mut s,
            &mut m,
            nr::MMAP,
            &[a as u64, 1 << 20, 3, 0x32, u64::MAX, 0]
        ),
        a
    );
    // Freeing gives it back.
    assert_eq!(call(&mut s, &mut m, nr::MUNMAP, &[a as u64, 1 << 20]), 0);
    assert_eq!(
        call(&mut s, &mut m, nr::BRK, &[HEAP + 4096]),
        (HEAP + 4096) as i64
    );
    assert_eq!(m.accessible_bytes(), used + 4096);
}

#[test]
fn ppoll_with_a_signal_mask_lets_a_pending_signal_in_and_restores_the_mask_otherwise() {
    let (mut s, mut m) = setup();
    let pid = s.pid() as u64;
    let h = std::sync::Arc::clone(s.thread_handle());
    // SIGUSR1 (10) blocked and pending.
    m.write_bytes(0x10000, &(1u64 << 9).to_le_bytes()).unwrap();
    assert_eq!(
        call(&mut s, &mut m, nr::RT_SIGPROCMASK, &[0, 0x10000, 0, 8]),
        0
    );
    assert_eq!(call(&mut s, &mut m, nr::TGKILL, &[pid, pid, 10]), 0);
    // A zero timeout and a mask that still blocks it: the poll just times out, and
    // the mask is the old one after.
    m.write_bytes(0x10010, &[0u8; 16]).unwrap();
    m.write_bytes(0x10020, &(1u64 << 9).to_le_bytes()).unwrap();
    assert_eq!(
        call(&mut s, &mut m, nr::PPOLL, &[0, 0, 0x10010, 0x10020, 8]),
        0
    );
    assert_eq!(h.mask(), 1 << 9);
    // An empty mask lets it in: EINTR at once, with the old mask saved for the
    // handler's frame.
    m.write_bytes(0x10020, &0u64.to_le_bytes()).unwrap();
    assert_eq!(
        call(&mut s, &mut m, nr::PPOLL, &[0, 0, 0, 0x10020, 8]),
        e(libc::EINTR)
    );
    assert_eq!(h.mask(), 0);
    assert_eq!(s.thread().saved_mask, Some(1 << 9));
    // A bad mask size or pointer.
    assert_eq!(
        call(&mut s, &mut m, nr::PPOLL, &[0, 0, 0x10010, 0x10020, 4]),
        EINVAL
    );
    assert_eq!(
        call(&mut s, &mut m, nr::PPOLL, &[0, 0, 0x10010, 8, 8]),
        e(libc::EFAULT)
    );
}

/// Reads up to 64 bytes from guest descriptor `fd`.
fn read_fd(s: &mut Syscalls, m: &mut GuestMemory, fd: i64) -> Vec<u8> {
    let n = call(s, m, nr::READ, &[fd as u64, 0x1e000, 64]);
    assert!(n >= 0, "read: {n}");
    let mut b = vec![0u8; n as usize];
    m.read_bytes(0x1e000, &mut b).unwrap();
    b
}

#[test]
fn absolute_paths_are_looked_up_in_the_sysroot_and_still_sandbox_checked() {
    use std::os::unix::fs::{MetadataExt, symlink};
    let (mut s, mut m) = setup();
    let root = std::env::temp_dir().join(format!("vmjit-sysroot-sc-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    for d in ["lib", "dev", "tmp"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    std::fs::write(root.join("lib/data"), b"riscv").unwrap();
    std::fs::write(root.join("dev/null"), b"not the device").unwrap();
    // A file vmjit owns, reached through a symlink in the sysroot; and any process's
    // memory, likewise.
    let secret = root.join("secret");
    std::fs::write(&secret, b"host state").unwrap();
    let st = std::fs::metadata(&secret).unwrap();
    crate::sandbox::register_internal_file(st.dev(), st.ino());
    symlink(&secret, root.join("lib/secret")).unwrap();
    symlink("/proc/self/mem", root.join("lib/mem")).unwrap();
    s.set_sysroot(crate::sysroot::Sysroot::new(&root, "-L").unwrap());

    let fd = open_at(&mut s, &mut m, "/lib/data", 0);
    assert!(fd >= 0, "open /lib/data: {fd}");
    assert_eq!(read_fd(&mut s, &mut m, fd), b"riscv");
    gclose(&mut s, &mut m, fd as i32);
    let fd = open_at(&mut s, &mut m, "//lib/../lib/./data", 0);
    assert_eq!(read_fd(&mut s, &mut m, fd), b"riscv");
    gclose(&mut s, &mut m, fd as i32);
    // Relative paths are never looked up there.
    assert_eq!(open_at(&mut s, &mut m, "lib/data", 0), e(libc::ENOENT));
    // /dev stays the host's.
    let fd = open_at(&mut s, &mut m, "/dev/null", 0);
    assert_eq!(read_fd(&mut s, &mut m, fd), b"");
    gclose(&mut s, &mut m, fd as i32);
    // A path missing from the sysroot is used as given.
    let host_file = std::env::temp_dir().join(format!("vmjit-sysroot-h-{}", std::process::id()));
    std::fs::write(&host_file, b"host").unwrap();
    let fd = open_at(&mut s, &mut m, host_file.to_str().unwrap(), 0);
    assert_eq!(read_fd(&mut s, &mut m, fd), b"host");
    gclose(&mut s, &mut m, fd as i32);
    // The sandbox checks the file opened, whatever path led there.
    for p in ["/lib/secret", "/lib/mem"] {
        for flags in [0u64, 2, 0o10000000 /* O_PATH */] {
            assert_eq!(
                open_at(&mut s, &mut m, p, flags),
                e(libc::EACCES),
                "{p} {flags:o}"
            );
        }
    }
    let _ = std::fs::remove_file(&host_file);
    let _ = std::fs::remove_dir_all(&root);
}
