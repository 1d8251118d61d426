//! Preallocating segment files with `fallocate(2)`.
//!
//! # Why
//!
//! An `fdatasync` after *appending* to a file must also make the new file
//! size (and the newly allocated blocks) durable: a metadata write, and on
//! a journaling file system a journal commit, on every group commit. An
//! `fdatasync` after *overwriting* space that is already allocated and
//! inside the file size has only the data to write. So each segment is
//! created at its full size ([`DiskOptions::segment_bytes_max`]) with
//! `fallocate(fd, 0, ...)`, and batches overwrite it from the front (etcd
//! preallocates its WAL files for the same reason).
//!
//! `File::set_len` is not a substitute: it makes a sparse file whose holes
//! still need block allocation (metadata) when they are first written.
//! `fallocate` allocates the blocks as *unwritten extents*: they read as
//! zeros without any disk read, and a later `lseek(SEEK_DATA / SEEK_HOLE)`
//! reports them as holes until written, which recovery uses to avoid
//! reading the zero tail of a fresh segment (see `image.rs`).
//!
//! # Fallback
//!
//! A file system without `fallocate` (`EOPNOTSUPP`; and every non-Linux
//! system, where this module reports "unsupported") simply gets no
//! preallocation: segments grow by appending, as before, and everything
//! else (recovery, sealing) works the same, since a segment without a zero
//! tail is just a segment whose tail is already trimmed.
//!
//! [`DiskOptions::segment_bytes_max`]: super::DiskOptions::segment_bytes_max

use std::fs::File;
use std::io;

/// Whether an error from [`allocate`] means "this file system cannot
/// preallocate" (fall back to appending) rather than a real failure.
pub(crate) fn is_unsupported(error: &io::Error) -> bool {
    matches!(
        error.raw_os_error(),
        Some(libc::EOPNOTSUPP) | Some(libc::ENOSYS)
    ) || error.kind() == io::ErrorKind::Unsupported
}

/// Allocates `len` bytes of `file` from `offset` (`fallocate` mode 0: the
/// file size grows to at least `offset + len`; existing data is kept; new
/// space reads as zeros). Retries on `EINTR`.
#[cfg(target_os = "linux")]
pub(crate) fn allocate(file: &File, offset: u64, len: u64) -> io::Result<()> {
    use std::os::unix::io::AsRawFd;

    let too_large = || io::Error::new(io::ErrorKind::InvalidInput, "preallocation too large");
    let offset = libc::off_t::try_from(offset).map_err(|_| too_large())?;
    let len = libc::off_t::try_from(len).map_err(|_| too_large())?;
    if len == 0 {
        return Ok(());
    }
    loop {
        // SAFETY: fallocate on a file descriptor we own; no memory is
        // involved.
        let rc = unsafe { libc::fallocate(file.as_raw_fd(), 0, offset, len) };
        if rc == 0 {
            return Ok(());
        }
        let error = io::Error::last_os_error();
        if error.kind() != io::ErrorKind::Interrupted {
            return Err(error);
        }
    }
}

/// Without `fallocate(2)`: always "unsupported" (no preallocation).
#[cfg(not(target_os = "linux"))]
pub(crate) fn allocate(_file: &File, _offset: u64, _len: u64) -> io::Result<()> {
    Err(io::Error::from(io::ErrorKind::Unsupported))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs::OpenOptions;

    #[test]
    fn allocation_extends_the_file_with_zeros_and_keeps_data() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .unwrap();
        std::os::unix::fs::FileExt::write_all_at(&file, b"data", 0).unwrap();
        match allocate(&file, 4, 8192) {
            Ok(()) => {
                let bytes = std::fs::read(&path).unwrap();
                assert_eq!(bytes.len(), 8196);
                assert_eq!(&bytes[..4], b"data");
                assert!(bytes[4..].iter().all(|&b| b == 0));
            }
            Err(error) => assert!(is_unsupported(&error), "{error}"),
        }
        assert!(allocate(&file, 0, 0).is_ok());
    }

    #[test]
    fn unsupported_errors_are_recognised() {
        for errno in [libc::EOPNOTSUPP, libc::ENOSYS] {
            assert!(is_unsupported(&io::Error::from_raw_os_error(errno)));
        }
        assert!(!is_unsupported(&io::Error::from_raw_os_error(libc::ENOSPC)));
        assert!(!is_unsupported(&io::Error::from_raw_os_error(libc::EIO)));
    }
}
