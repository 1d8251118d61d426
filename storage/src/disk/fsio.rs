//! File-system helpers: error mapping, directory fsync, the temp file +
//! fsync + rename + directory fsync sequence, and the data-directory lock.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};

use consensus_api::StorageError;

use super::failpoint::Faults;

/// Suffix of files being written; removed on open.
pub(crate) const TEMP_SUFFIX: &str = ".tmp";

/// Name of the lock file.
pub(crate) const LOCK_FILE: &str = "LOCK";

/// Maps an I/O error to a [`StorageError`]: out of space (`ENOSPC`, and
/// `EDQUOT` for an exhausted quota) is [`StorageError::DiskFull`], anything
/// else [`StorageError::Io`].
pub(crate) fn io_error(op: &'static str, path: &Path, error: io::Error) -> StorageError {
    let full = error.kind() == io::ErrorKind::StorageFull
        || matches!(
            error.raw_os_error(),
            Some(libc::ENOSPC) | Some(libc::EDQUOT)
        );
    if full {
        StorageError::DiskFull {
            path: path.to_path_buf(),
        }
    } else {
        StorageError::Io {
            op,
            path: path.to_path_buf(),
            source: error,
        }
    }
}

/// fsyncs a directory, making creations, renames and deletions in it
/// durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<(), StorageError> {
    let handle = File::open(dir).map_err(|e| io_error("opening directory", dir, e))?;
    handle
        .sync_all()
        .map_err(|e| io_error("syncing directory", dir, e))
}

/// Writes `parts` to `<dir>/<name>.tmp` and fsyncs it; returns the temp
/// path. The caller renames it into place and fsyncs the directory.
pub(crate) fn write_temp(
    dir: &Path,
    name: &str,
    parts: &[&[u8]],
    faults: &mut Faults,
) -> Result<PathBuf, StorageError> {
    let path = dir.join(format!("{name}{TEMP_SUFFIX}"));
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&path)
        .map_err(|e| io_error("creating", &path, e))?;
    for part in parts {
        faults
            .write_all(&mut file, part)
            .map_err(|e| io_error("writing", &path, e))?;
    }
    faults
        .sync_all(&file)
        .map_err(|e| io_error("syncing", &path, e))?;
    Ok(path)
}

/// Renames `from` to `to` (atomic replacement on POSIX).
pub(crate) fn rename(from: &Path, to: &Path) -> Result<(), StorageError> {
    fs::rename(from, to).map_err(|e| io_error("renaming", from, e))
}

/// Writes a whole file atomically: temp file, fsync, rename, directory
/// fsync. After a crash the file holds either its old or its new content.
pub(crate) fn write_atomically(
    dir: &Path,
    name: &str,
    parts: &[&[u8]],
    faults: &mut Faults,
) -> Result<(), StorageError> {
    let temp = write_temp(dir, name, parts, faults)?;
    rename(&temp, &dir.join(name))?;
    sync_dir(dir)
}

/// Deletes a file.
pub(crate) fn remove_file(path: &Path) -> Result<(), StorageError> {
    fs::remove_file(path).map_err(|e| io_error("deleting", path, e))
}

/// Reads a whole file.
pub(crate) fn read_file(path: &Path) -> Result<Vec<u8>, StorageError> {
    fs::read(path).map_err(|e| io_error("reading", path, e))
}

/// An exclusive `flock` on `<dir>/LOCK`, held while the store is open, so
/// that two stores (in one process or two) never share a directory.
#[derive(Debug)]
pub(crate) struct DirLock {
    _file: File,
}

impl DirLock {
    /// Takes the lock or fails at once if another store holds it.
    pub(crate) fn acquire(dir: &Path) -> Result<DirLock, StorageError> {
        let path = dir.join(LOCK_FILE);
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| io_error("opening", &path, e))?;
        // SAFETY: flock on a file descriptor we own; no memory is involved.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if rc != 0 {
            let error = io::Error::last_os_error();
            let error = if error.kind() == io::ErrorKind::WouldBlock {
                io::Error::new(
                    io::ErrorKind::WouldBlock,
                    "the data directory is already open in another DiskStore",
                )
            } else {
                error
            };
            return Err(io_error("locking", &path, error));
        }
        Ok(DirLock { _file: file })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn out_of_space_maps_to_disk_full() {
        let path = Path::new("/x");
        for errno in [libc::ENOSPC, libc::EDQUOT] {
            let error = io_error("writing", path, io::Error::from_raw_os_error(errno));
            assert!(matches!(error, StorageError::DiskFull { .. }), "{errno}");
        }
        let error = io_error("writing", path, io::Error::from_raw_os_error(libc::EIO));
        assert!(matches!(error, StorageError::Io { op: "writing", .. }));
    }

    #[test]
    fn the_lock_is_exclusive() {
        let dir = tempfile::tempdir().unwrap();
        let first = DirLock::acquire(dir.path()).unwrap();
        assert!(matches!(
            DirLock::acquire(dir.path()),
            Err(StorageError::Io { op: "locking", .. })
        ));
        drop(first);
        DirLock::acquire(dir.path()).unwrap();
    }

    #[test]
    fn a_real_enospc_from_dev_full_is_disk_full() {
        // /dev/full answers every write with ENOSPC: the real errno path.
        let Ok(mut file) = OpenOptions::new().write(true).open("/dev/full") else {
            return;
        };
        let error = Faults::default().write_all(&mut file, b"x").unwrap_err();
        assert!(matches!(
            io_error("writing", Path::new("/dev/full"), error),
            StorageError::DiskFull { .. }
        ));
    }
}
