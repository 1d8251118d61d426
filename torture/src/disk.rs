//! Disk faults for the durability tests: a full disk, a file size limit and
//! a torn write at the end of the write-ahead log.
//!
//! # What works where (measured on the development VM, running as root)
//!
//! * **Permissions do not work as root**: `chmod a-w` on a data directory
//!   changes nothing for a root process (`CAP_DAC_OVERRIDE`), and an open
//!   segment stays writable whatever the mode. `chattr +i` needs a file
//!   system that supports it and is also bypassed by open descriptors.
//! * **A full disk: a small tmpfs.** [`Tmpfs::mount`] mounts a tmpfs of a
//!   few MiB on a node's data directory before the node starts
//!   (`mount(2)`, needs `CAP_SYS_ADMIN`: root in the VM and in CI, which
//!   run as root); [`fill`] then writes a ballast file until `ENOSPC`, so
//!   the node's next WAL write fails with "no space left on device" and the
//!   store reports `StorageError::DiskFull`. Removing the ballast frees the
//!   space. A read-only remount is not usable: the kernel refuses it with
//!   `EBUSY` while the node holds its segment open for writing.
//! * **Without mount privileges: a file size limit.** [`limit_file_size`]
//!   sets `RLIMIT_FSIZE` of the running node process (`prlimit(2)`, allowed
//!   for one's own processes). A write past the limit fails with `EFBIG`
//!   (the server ignores `SIGXFSZ` so that the write fails instead of the
//!   process dying), which the store reports as an I/O error. The limit
//!   must be the offset where the active segment's records end, not its
//!   (preallocated) length: see [`limit_file_size`]. The limit
//!   also applies to the node's own log file (its stderr), so log lines may
//!   be lost while it holds.
//! * **A torn write**: [`tear_last_record`] cuts the last record of a
//!   node's last WAL segment in the middle, as a power loss during that
//!   write can leave it. The segment format (`consensus-storage`'s `disk`
//!   module): a 32-byte header, then records `length u32 LE | length check
//!   u32 | crc32c u32 | body`.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

/// Bytes of a WAL segment header.
pub const SEGMENT_HEADER_BYTES: u64 = 32;
/// Bytes of a WAL record header.
pub const RECORD_HEADER_BYTES: u64 = 12;

/// A tmpfs mounted on a directory; unmounted (lazily) on drop.
#[derive(Debug)]
pub struct Tmpfs {
    path: PathBuf,
    mounted: bool,
}

fn c_string(text: &str) -> io::Result<std::ffi::CString> {
    std::ffi::CString::new(text).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))
}

impl Tmpfs {
    /// Mounts a tmpfs of `bytes` on `path` (created if missing). Fails with
    /// the OS error when this process may not mount (not root, no
    /// `CAP_SYS_ADMIN`).
    pub fn mount(path: &Path, bytes: u64) -> io::Result<Tmpfs> {
        std::fs::create_dir_all(path)?;
        let target = c_string(&path.to_string_lossy())?;
        let source = c_string("tmpfs")?;
        let options = c_string(&format!("size={bytes},mode=0700"))?;
        // SAFETY: mount(2) with valid NUL-terminated strings that outlive
        // the call.
        let result = unsafe {
            libc::mount(
                source.as_ptr(),
                target.as_ptr(),
                source.as_ptr(),
                0,
                options.as_ptr().cast(),
            )
        };
        if result != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Tmpfs {
            path: path.to_path_buf(),
            mounted: true,
        })
    }

    /// The mount point.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Unmounts (lazily: processes still using it keep it until they exit).
    pub fn unmount(&mut self) -> io::Result<()> {
        if !self.mounted {
            return Ok(());
        }
        let target = c_string(&self.path.to_string_lossy())?;
        // SAFETY: umount2(2) with a valid NUL-terminated path.
        let result = unsafe { libc::umount2(target.as_ptr(), libc::MNT_DETACH) };
        if result != 0 {
            return Err(io::Error::last_os_error());
        }
        self.mounted = false;
        Ok(())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = self.unmount();
    }
}

/// Name of the ballast file [`fill`] writes.
pub const BALLAST: &str = "ballast.fill";

/// Writes `dir/ballast.fill` until the file system is full; returns its
/// path and size. An error other than `ENOSPC` / `EFBIG` is returned.
pub fn fill(dir: &Path) -> io::Result<(PathBuf, u64)> {
    let path = dir.join(BALLAST);
    let mut file = OpenOptions::new().create(true).append(true).open(&path)?;
    let block = vec![0xa5u8; 64 * 1024];
    let mut written = 0u64;
    // Large blocks first, then single bytes, so no page is left free.
    for size in [block.len(), 4096, 1] {
        loop {
            match file.write(&block[..size]) {
                Ok(0) => break,
                Ok(n) => written += n as u64,
                Err(e) if e.raw_os_error() == Some(libc::ENOSPC) => break,
                Err(e) if e.raw_os_error() == Some(libc::EFBIG) => break,
                Err(e) => return Err(e),
            }
            if written > 1 << 34 {
                return Err(io::Error::other(
                    "refusing to write more than 16 GiB of ballast",
                ));
            }
        }
    }
    let _ = file.sync_all();
    Ok((path, written))
}

/// Sets the file size limit (`RLIMIT_FSIZE`, soft and hard) of process
/// `pid` to `bytes`; `None` lifts it.
///
/// The kernel refuses a write whose *offset* is at or past the limit,
/// whatever the file's length: since the store preallocates its segments,
/// a limit at the active segment's length stops nothing until the next
/// segment. Set it to where the records end ([`segment_layout`]'s `end`).
pub fn limit_file_size(pid: u32, bytes: Option<u64>) -> io::Result<()> {
    let value = bytes.unwrap_or(libc::RLIM_INFINITY);
    let limit = libc::rlimit {
        rlim_cur: value,
        rlim_max: value,
    };
    // SAFETY: prlimit(2) with a valid pointer to a new limit and no old one.
    let result = unsafe {
        libc::prlimit(
            pid as libc::pid_t,
            libc::RLIMIT_FSIZE,
            &limit,
            std::ptr::null_mut(),
        )
    };
    if result != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// The WAL segments of a data directory, oldest first.
pub fn segments(data_dir: &Path) -> io::Result<Vec<PathBuf>> {
    let mut segments: Vec<PathBuf> = std::fs::read_dir(data_dir)?
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| path.extension().is_some_and(|e| e == "wal"))
        .collect();
    segments.sort();
    Ok(segments)
}

/// Where the records of a segment start and end.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SegmentLayout {
    /// Offsets at which the records start, in order.
    pub records: Vec<u64>,
    /// Offset just past the last whole record.
    pub end: u64,
    /// File length (greater than `end` when a partial record follows).
    pub len: u64,
}

/// Walks the records of a segment by their length fields (no checksum
/// verification: the store does that).
pub fn segment_layout(path: &Path) -> io::Result<SegmentLayout> {
    let mut bytes = Vec::new();
    File::open(path)?.read_to_end(&mut bytes)?;
    let len = bytes.len() as u64;
    let mut at = SEGMENT_HEADER_BYTES;
    let mut records = Vec::new();
    while at + RECORD_HEADER_BYTES <= len {
        let i = at as usize;
        let body = u32::from_le_bytes([bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]]) as u64;
        if body == 0 || at + RECORD_HEADER_BYTES + body > len {
            break;
        }
        records.push(at);
        at += RECORD_HEADER_BYTES + body;
    }
    Ok(SegmentLayout {
        records,
        end: at.min(len),
        len,
    })
}

/// What [`tear_last_record`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TornWrite {
    /// The segment cut.
    pub segment: PathBuf,
    /// Its length before.
    pub len_before: u64,
    /// Where its last record started (the node recovers to here).
    pub record_start: u64,
    /// The last record's length with its header.
    pub record_len: u64,
    /// The length it was cut to (inside the last record).
    pub cut_to: u64,
}

/// Cuts the last record of `data_dir`'s last WAL segment in the middle of
/// its body (a torn write). The node must not be running.
pub fn tear_last_record(data_dir: &Path) -> io::Result<TornWrite> {
    let segments = segments(data_dir)?;
    let segment = segments.last().cloned().ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::NotFound,
            format!("no WAL segment in {}", data_dir.display()),
        )
    })?;
    let layout = segment_layout(&segment)?;
    let start = *layout.records.last().ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::NotFound,
            format!("{} holds no record", segment.display()),
        )
    })?;
    let record_len = layout.end - start;
    // Keep the header and half the body (a one-byte body: half the header).
    let body = record_len - RECORD_HEADER_BYTES;
    let cut_to = if body >= 2 {
        start + RECORD_HEADER_BYTES + body / 2
    } else {
        start + RECORD_HEADER_BYTES / 2
    };
    OpenOptions::new()
        .write(true)
        .open(&segment)?
        .set_len(cut_to)?;
    Ok(TornWrite {
        segment,
        len_before: layout.len,
        record_start: start,
        record_len,
        cut_to,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segment_with(bodies: &[usize]) -> Vec<u8> {
        let mut bytes = vec![0u8; SEGMENT_HEADER_BYTES as usize];
        for &len in bodies {
            bytes.extend_from_slice(&(len as u32).to_le_bytes());
            bytes.extend_from_slice(&[0u8; 8]);
            bytes.extend(std::iter::repeat_n(7u8, len));
        }
        bytes
    }

    #[test]
    fn the_last_record_is_cut_inside_its_body() {
        let dir = std::env::temp_dir().join(format!("kv-torn-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("00000000000000000001.wal");
        std::fs::write(&path, segment_with(&[5, 100, 40])).unwrap();
        let layout = segment_layout(&path).unwrap();
        assert_eq!(layout.records, vec![32, 49, 161]);
        assert_eq!(layout.end, layout.len);
        let torn = tear_last_record(&dir).unwrap();
        assert_eq!(torn.record_start, 161);
        assert_eq!(torn.record_len, 52);
        assert!(torn.cut_to > 161 + RECORD_HEADER_BYTES && torn.cut_to < 161 + 52);
        let after = segment_layout(&path).unwrap();
        assert_eq!(
            after.records,
            vec![32, 49],
            "the torn record is no longer whole"
        );
        assert_eq!(after.end, 161);
        assert_eq!(after.len, torn.cut_to);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
