//! The file-system primitives the directory store is built on, each with the one
//! guarantee it exists for:
//! - [`ensure_private_dir`]: the directory exists, is ours and nobody else can write it;
//! - [`write_atomic`]: a reader (or a crash) sees the old file or the whole new one,
//!   never a mix (temp file in the same directory, fsync, rename, fsync directory);
//! - [`ProgramLock`]: an exclusive `flock` on a program's lock file that is guaranteed
//!   to be on the file *currently* at that path (a pruner may unlink it);
//! - [`read_bounded`]: never reads more than a cap, never blocks on a FIFO.

use std::fs::{self, File, OpenOptions, TryLockError};
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

use crate::StoreError;

/// Suffix of temporary files; with a leading `.` it marks a stray left by a killed
/// writer.
pub(crate) const TEMP_SUFFIX: &str = ".tmp";

/// The effective user id.
pub(crate) fn uid() -> u32 {
    rustix::process::geteuid().as_raw()
}

/// Creates `path` (and missing parents) with mode 0700, then checks it as
/// [`check_private_dir`] does.
pub(crate) fn ensure_private_dir(path: &Path) -> Result<(), StoreError> {
    if fs::metadata(path).is_ok_and(|m| !m.is_dir()) {
        return Err(StoreError::NotADirectory(path.to_owned()));
    }
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)
        .map_err(|e| StoreError::io("create directory", path, e))?;
    check_private_dir(path)
}

/// Refuses a directory another user owns or that group or others can write (they could
/// plant code under our MAC-less names, swap files, or delete them). A symbolic link is
/// followed, but must itself be ours.
pub(crate) fn check_private_dir(path: &Path) -> Result<(), StoreError> {
    let me = uid();
    let link = fs::symlink_metadata(path).map_err(|e| StoreError::io("stat", path, e))?;
    if link.file_type().is_symlink() && link.uid() != me {
        return Err(StoreError::ForeignOwner {
            path: path.to_owned(),
            owner: link.uid(),
        });
    }
    let meta = fs::metadata(path).map_err(|e| StoreError::io("stat", path, e))?;
    if !meta.is_dir() {
        return Err(StoreError::NotADirectory(path.to_owned()));
    }
    if meta.uid() != me {
        return Err(StoreError::ForeignOwner {
            path: path.to_owned(),
            owner: meta.uid(),
        });
    }
    if meta.mode() & 0o022 != 0 {
        return Err(StoreError::WritableByOthers {
            path: path.to_owned(),
            mode: meta.mode() & 0o7777,
        });
    }
    Ok(())
}

/// A fresh temporary name for `name` in `dir`: `.<name>.<pid>.<n>.tmp`.
pub(crate) fn temp_path(dir: &Path, name: &str) -> PathBuf {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    dir.join(format!(".{name}.{}.{n}{TEMP_SUFFIX}", std::process::id()))
}

pub(crate) fn is_temp_name(name: &str) -> bool {
    name.starts_with('.') && name.ends_with(TEMP_SUFFIX)
}

pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Replaces `dir/name` by `bytes` atomically and durably. On error the temporary file
/// is removed (a kill leaves it behind; later saves and prunes remove strays).
pub(crate) fn write_atomic(dir: &Path, name: &str, bytes: &[u8]) -> io::Result<()> {
    let tmp = temp_path(dir, name);
    let result = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        drop(f);
        fs::rename(&tmp, dir.join(name))?;
        sync_dir(dir)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// What [`read_bounded`] found.
pub(crate) enum ReadOutcome {
    Missing,
    /// Not a regular file, or larger than the cap: never read.
    Refused,
    Bytes(Vec<u8>),
}

/// Reads a regular file of at most `cap` bytes.
pub(crate) fn read_bounded(path: &Path, cap: u64) -> io::Result<ReadOutcome> {
    // O_NONBLOCK so that opening a FIFO planted under a store name cannot block.
    let file = match OpenOptions::new()
        .read(true)
        .custom_flags(rustix::fs::OFlags::NONBLOCK.bits() as i32)
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(ReadOutcome::Missing),
        Err(e) => return Err(e),
    };
    let meta = file.metadata()?;
    if !meta.is_file() || meta.len() > cap {
        return Ok(ReadOutcome::Refused);
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    file.take(cap.saturating_add(1)).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > cap {
        return Ok(ReadOutcome::Refused);
    }
    Ok(ReadOutcome::Bytes(bytes))
}

/// Sets a file's modification time to now: the store's "last used" clock.
pub(crate) fn touch(path: &Path) -> io::Result<()> {
    File::open(path)?.set_modified(SystemTime::now())
}

/// Name of the per-program lock file.
pub(crate) const LOCK_FILE: &str = "lock";

/// An exclusive lock on a program directory; released on drop (closing the file).
#[derive(Debug)]
pub(crate) struct ProgramLock {
    _file: File,
}

/// Locks `dir` (creating it, mode 0700, if needed). With `wait` false, returns
/// `Ok(None)` instead of waiting for another holder.
///
/// A pruner removes a program directory by unlinking its lock file while holding the
/// lock; a process that opened the old file before that would then hold a lock nobody
/// else can see. So after locking, the path must still name the locked inode, or we
/// retry on a fresh file.
pub(crate) fn lock_program(dir: &Path, wait: bool) -> io::Result<Option<ProgramLock>> {
    let path = dir.join(LOCK_FILE);
    for _ in 0..16 {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
        let file = match OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&path)
        {
            Ok(f) => f,
            // The directory vanished between creating and opening: retry.
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        if wait {
            file.lock()?;
        } else {
            match file.try_lock() {
                Ok(()) => {}
                Err(TryLockError::WouldBlock) => return Ok(None),
                Err(TryLockError::Error(e)) => return Err(e),
            }
        }
        let held = file.metadata()?;
        match fs::metadata(&path) {
            Ok(now) if now.dev() == held.dev() && now.ino() == held.ino() => {
                return Ok(Some(ProgramLock { _file: file }));
            }
            Ok(_) => continue,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        }
    }
    Err(io::Error::other(
        "the lock file kept being removed while locking",
    ))
}
