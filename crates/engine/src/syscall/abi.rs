//! Guest ABI conversions: riscv64 (asm-generic) structure layouts and flag values to and
//! from the host's.

use crate::memory::GuestMemory;
use rv64::Memory;

/// Guest (asm-generic) open flags and their host equivalents. The two ABIs agree on
/// every bit today (x86-64 also uses the generic values), but translating through a
/// table keeps the engine correct on hosts that do not (arm64 has different
/// O_DIRECTORY/O_NOFOLLOW/O_DIRECT/O_LARGEFILE).
const OPEN_FLAGS: &[(u32, i32)] = &[
    (0o100, libc::O_CREAT),
    (0o200, libc::O_EXCL),
    (0o400, libc::O_NOCTTY),
    (0o1000, libc::O_TRUNC),
    (0o2000, libc::O_APPEND),
    (0o4000, libc::O_NONBLOCK),
    (0o10000, libc::O_DSYNC),
    (0o20000, libc::O_ASYNC),
    (0o40000, libc::O_DIRECT),
    (0o100000, libc::O_LARGEFILE),
    (0o200000, libc::O_DIRECTORY),
    (0o400000, libc::O_NOFOLLOW),
    (0o1000000, libc::O_NOATIME),
    (0o2000000, libc::O_CLOEXEC),
    (0o4000000, libc::O_SYNC & !libc::O_DSYNC),
    (0o10000000, libc::O_PATH),
    (0o20000000, libc::O_TMPFILE & !libc::O_DIRECTORY),
];

/// Translates riscv64 open flags to the host's (unknown bits are dropped, as Linux
/// ignores them for open).
pub fn open_flags_to_host(guest: u32) -> i32 {
    let mut host = (guest & 3) as i32;
    for &(g, h) in OPEN_FLAGS {
        if guest & g != 0 {
            host |= h;
        }
    }
    host
}

/// Translates host file status flags back to riscv64 ones (F_GETFL).
pub fn open_flags_to_guest(host: i32) -> u32 {
    let mut guest = (host & 3) as u32;
    for &(g, h) in OPEN_FLAGS {
        if h != 0 && host & h == h {
            guest |= g;
        }
    }
    guest
}

/// Converts a host `struct stat` to the 128-byte asm-generic layout riscv64 uses.
pub fn stat_to_guest(st: &libc::stat) -> [u8; 128] {
    let mut b = [0u8; 128];
    let mut put = |off: usize, bytes: &[u8]| b[off..off + bytes.len()].copy_from_slice(bytes);
    put(0, &st.st_dev.to_le_bytes());
    put(8, &st.st_ino.to_le_bytes());
    put(16, &st.st_mode.to_le_bytes());
    put(20, &(st.st_nlink as u32).to_le_bytes());
    put(24, &st.st_uid.to_le_bytes());
    put(28, &st.st_gid.to_le_bytes());
    put(32, &st.st_rdev.to_le_bytes());
    put(48, &st.st_size.to_le_bytes());
    put(56, &(st.st_blksize as i32).to_le_bytes());
    put(64, &st.st_blocks.to_le_bytes());
    put(72, &st.st_atime.to_le_bytes());
    put(80, &st.st_atime_nsec.to_le_bytes());
    put(88, &st.st_mtime.to_le_bytes());
    put(96, &st.st_mtime_nsec.to_le_bytes());
    put(104, &st.st_ctime.to_le_bytes());
    put(112, &st.st_ctime_nsec.to_le_bytes());
    b
}

pub(super) fn timespec(s: i64, ns: i64) -> [u8; 16] {
    let mut b = [0u8; 16];
    b[..8].copy_from_slice(&s.to_le_bytes());
    b[8..].copy_from_slice(&ns.to_le_bytes());
    b
}

pub(super) fn read_timespec(mem: &GuestMemory, addr: u64) -> Option<(i64, i64)> {
    Some((
        mem.load64(addr).ok()? as i64,
        mem.load64(addr.wrapping_add(8)).ok()? as i64,
    ))
}
