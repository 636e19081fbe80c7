//! What a guest may never reach: vmjit's own descriptors and files.
//!
//! The guest names descriptors through its own table (`syscall::fdtable`), so it cannot
//! name one of vmjit's. What is left is reaching vmjit's objects *by path*: a file
//! vmjit writes (the perf map), the code cache's memory through
//! `/proc/self/map_files/...`, a `/proc/<pid>/mem`, a symlink to `/proc/self/fd/N`.
//! This module keeps the process-wide list of such objects and checks every file the
//! guest opens against it, whatever path led there.
//!
//! It also owns vmjit's split of the host descriptor space: guest descriptors live at
//! low numbers (normally at the very number the guest knows them by), vmjit's own at or
//! above [`internal_floor`], out of the guest's range (its `RLIMIT_NOFILE` hard limit
//! is below the floor).
//!
//! **Invariants.**
//! - [`check_opened`] runs on every descriptor the guest gets from a path-taking call;
//!   it refuses (EACCES, descriptor closed) the memory of any process (`/proc/*/mem`,
//!   `/proc/*/pagemap`) and every registered internal file, identified by device and
//!   inode, so no spelling of a path gets around it.
//! - [`init`] runs before the first guest descriptor table is built (it is idempotent),
//!   so vmjit's diagnostic stream is a duplicate of the stderr it started with.

use std::sync::{Mutex, OnceLock};

use crate::host;

/// Descriptor numbers kept free above the guest's hard limit for vmjit's own use.
const INTERNAL_FDS: u64 = 256;

/// The descriptor layout of this process, fixed at [`init`].
#[derive(Debug, Clone, Copy)]
struct Layout {
    /// vmjit's descriptors are moved to this number or above.
    floor: i32,
    /// `RLIMIT_NOFILE` the guest starts with (the limit vmjit started with).
    guest_soft: u64,
    /// The most the guest may raise its soft limit to (below `floor`).
    guest_hard: u64,
    /// vmjit's private duplicate of its original stderr (-1 when it had none).
    diag: i32,
}

static LAYOUT: OnceLock<Layout> = OnceLock::new();

/// Device and inode of every file that backs vmjit's own state.
static INTERNAL: Mutex<Vec<(u64, u64)>> = Mutex::new(Vec::new());

/// The registry of vmjit's own files, if it is free now (held across `fork`, so
/// that the child can register its own code-cache file).
pub(crate) fn try_lock_for_fork() -> Option<std::sync::MutexGuard<'static, Vec<(u64, u64)>>> {
    crate::memory::try_lock(&INTERNAL)
}

fn layout() -> Layout {
    *LAYOUT.get_or_init(|| {
        let (soft, hard) = host::getrlimit(libc::RLIMIT_NOFILE).unwrap_or((1024, 4096));
        // Raise the host soft limit to the hard one: the guest's descriptors and vmjit's
        // share it. RLIM_INFINITY is not a valid descriptor count; cap it.
        let host_hard = hard.min(1 << 20);
        if soft < host_hard {
            host::setrlimit(libc::RLIMIT_NOFILE, host_hard, hard);
        }
        let (cur, _) = host::getrlimit(libc::RLIMIT_NOFILE).unwrap_or((soft, hard));
        let room = if cur > 2 * INTERNAL_FDS {
            INTERNAL_FDS
        } else {
            cur / 2
        };
        let guest_hard = cur - room;
        let floor = guest_hard as i32;
        let diag = host::fcntl_int(2, libc::F_DUPFD_CLOEXEC, floor as u64);
        Layout {
            floor,
            guest_soft: soft.min(guest_hard),
            guest_hard,
            diag: if diag >= 0 { diag as i32 } else { -1 },
        }
    })
}

/// Fixes the descriptor layout: raises the host's `RLIMIT_NOFILE` soft limit, chooses
/// the internal floor, duplicates stderr for vmjit's own messages. Idempotent; the
/// first guest descriptor table calls it, and `vmjit` calls it first thing.
pub fn init() {
    let _ = layout();
}

/// Lowest host descriptor number for vmjit's own descriptors.
pub fn internal_floor() -> i32 {
    layout().floor
}

/// The guest's initial `RLIMIT_NOFILE` (soft, hard).
pub fn guest_nofile() -> (u64, u64) {
    let l = layout();
    (l.guest_soft, l.guest_hard)
}

/// vmjit's diagnostic stream: a duplicate of the stderr it started with, or -1.
pub fn diag_fd() -> i32 {
    layout().diag
}

/// Moves a descriptor vmjit owns to [`internal_floor`] or above (closing the original),
/// so that it never sits at a number the guest may use; on failure returns it unmoved.
pub fn move_high(fd: i32) -> i32 {
    if fd >= internal_floor() {
        return fd;
    }
    let r = host::fcntl_int(fd, libc::F_DUPFD_CLOEXEC, internal_floor() as u64);
    if r < 0 {
        return fd;
    }
    host::close(fd);
    r as i32
}

/// Records a file that backs vmjit's own state (by device and inode): the guest may not
/// open it by any path.
pub fn register_internal_file(dev: u64, ino: u64) {
    if let Ok(mut v) = INTERNAL.lock()
        && !v.contains(&(dev, ino))
    {
        v.push((dev, ino));
    }
}

/// Records the file open at host descriptor `fd` as internal.
pub fn register_internal_fd(fd: i32) {
    if let Ok(st) = host::fstat(fd) {
        register_internal_file(st.st_dev, st.st_ino);
    }
}

fn is_internal(dev: u64, ino: u64) -> bool {
    INTERNAL
        .lock()
        .map(|v| v.contains(&(dev, ino)))
        .unwrap_or(true)
}

/// True for `/proc/<n>/<leaf>` and `/proc/<n>/task/<m>/<leaf>` with numeric n, m.
fn is_process_file(target: &[u8], leaves: &[&[u8]]) -> bool {
    let parts: Vec<&[u8]> = target.split(|&b| b == b'/').collect();
    let num = |p: &[u8]| !p.is_empty() && p.iter().all(u8::is_ascii_digit);
    match parts.as_slice() {
        [b"", b"proc", pid, leaf] => num(pid) && leaves.contains(leaf),
        [b"", b"proc", pid, b"task", tid, leaf] => num(pid) && num(tid) && leaves.contains(leaf),
        _ => false,
    }
}

/// Checks a descriptor the guest just opened by path: `Ok` keeps it; `Err(-EACCES)`
/// means it reached a process's memory or one of vmjit's own files, and it has been
/// closed. Applies however the path was spelled (symlinks, `/proc/self/fd/N`,
/// `/proc/self/map_files/...`, a relative path from a `/proc` directory).
pub fn check_opened(fd: i32) -> Result<(), i64> {
    let refuse = || {
        host::close(fd);
        Err(-i64::from(libc::EACCES))
    };
    match host::fstat(fd) {
        Ok(st) if is_internal(st.st_dev, st.st_ino) => return refuse(),
        Ok(_) => {}
        // A descriptor that cannot be examined is not handed out.
        Err(_) => return refuse(),
    }
    use std::os::unix::ffi::OsStrExt;
    if let Ok(target) = std::fs::read_link(format!("/proc/self/fd/{fd}"))
        && is_process_file(target.as_os_str().as_bytes(), &[b"mem", b"pagemap"])
    {
        return refuse();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn process_memory_files_are_recognised_in_both_spellings() {
        let mem: &[&[u8]] = &[b"mem"];
        assert!(is_process_file(b"/proc/12/mem", mem));
        assert!(is_process_file(b"/proc/12/task/13/mem", mem));
        assert!(!is_process_file(b"/proc/12/maps", mem));
        assert!(!is_process_file(b"/proc/self/mem", mem));
        assert!(!is_process_file(b"/tmp/proc/12/mem", mem));
    }

    #[test]
    fn internal_files_are_refused_and_closed() {
        let fd = host::memory_file(c"vmjit-test", b"secret") as i32;
        assert!(fd >= 0);
        register_internal_fd(fd);
        let again = host::fcntl_int(fd, libc::F_DUPFD_CLOEXEC, 0) as i32;
        assert_eq!(check_opened(again), Err(-i64::from(libc::EACCES)));
        assert_eq!(
            host::fcntl_int(again, libc::F_GETFD, 0),
            -i64::from(libc::EBADF),
            "the refused descriptor is closed"
        );
        host::close(fd);
    }

    #[test]
    fn vmjits_descriptors_sit_above_the_guests_hard_limit() {
        init();
        let (soft, hard) = guest_nofile();
        assert!(soft <= hard);
        assert!(hard <= internal_floor() as u64);
        let fd = host::memory_file(c"vmjit-test", b"") as i32;
        let high = move_high(fd);
        assert!(high >= internal_floor(), "{high}");
        host::close(high);
    }
}
