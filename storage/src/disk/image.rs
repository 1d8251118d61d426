//! A segment file as recovery sees it: the bytes up to the end of its
//! written data, and the knowledge that the rest of the file (a
//! preallocated, never-written tail) reads as zeros.
//!
//! A preallocated segment is [`DiskOptions::segment_bytes_max`] long
//! (64 MiB by default) however little was written to it. Reading all of it
//! would cost hundreds of milliseconds on a loaded machine, for zeros, on
//! every open. So [`SegmentImage::read`] asks the file system with
//! `lseek(SEEK_DATA)` / `lseek(SEEK_HOLE)` where the last data region
//! ends and reads only up to there. That is exact, not a guess: a hole
//! reads as zeros by definition; file systems may report a hole as data
//! (then it is simply read), never data as a hole. ext4 and XFS report
//! fallocated, never-written (unwritten) extents as holes unless the page
//! cache holds data for them. Where the calls are not supported, the whole
//! file is read.
//!
//! Every byte of the file is then available as if read: [`SegmentImage::frame`]
//! materialises the zero tail on demand when a frame runs into it, so the
//! scanner's verdicts are the same as on a full read.
//!
//! [`DiskOptions::segment_bytes_max`]: super::DiskOptions::segment_bytes_max

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use consensus_api::StorageError;

use super::frame::{read_frame, BadFrame, Frame, FRAME_HEADER_BYTES};
use super::fsio::io_error;

/// The content of one segment file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SegmentImage {
    /// The file's first bytes; every byte after them, up to `file_len`, is
    /// zero.
    bytes: Vec<u8>,
    /// The file size.
    file_len: usize,
}

impl SegmentImage {
    /// An image of a file whose content is `bytes` followed by zeros up to
    /// `file_len` bytes (when `file_len` is larger).
    pub(crate) fn new(bytes: Vec<u8>, file_len: usize) -> SegmentImage {
        let file_len = file_len.max(bytes.len());
        SegmentImage { bytes, file_len }
    }

    /// Reads the segment at `path`, skipping its trailing holes (see the
    /// module docs).
    pub(crate) fn read(path: &Path) -> Result<SegmentImage, StorageError> {
        let mut file = File::open(path).map_err(|e| io_error("opening", path, e))?;
        let file_len = file
            .metadata()
            .map_err(|e| io_error("reading metadata of", path, e))?
            .len();
        let data_end = data_end(&file, file_len);
        // `data_end` moved the file position.
        file.seek(SeekFrom::Start(0))
            .map_err(|e| io_error("reading", path, e))?;
        let mut bytes = Vec::with_capacity(usize::try_from(data_end).unwrap_or(0));
        (&mut file)
            .take(data_end)
            .read_to_end(&mut bytes)
            .map_err(|e| io_error("reading", path, e))?;
        // A file that shrank while being read (nobody else writes here:
        // the directory is locked) is taken as what was read.
        let file_len = if (bytes.len() as u64) < data_end {
            bytes.len()
        } else {
            usize::try_from(file_len).map_err(|_| {
                io_error(
                    "reading",
                    path,
                    std::io::Error::new(std::io::ErrorKind::InvalidData, "segment too large"),
                )
            })?
        };
        Ok(SegmentImage::new(bytes, file_len))
    }

    /// The bytes read so far; every later byte up to [`Self::file_len`] is
    /// zero.
    pub(crate) fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The file size.
    pub(crate) fn file_len(&self) -> usize {
        self.file_len
    }

    /// Makes at least the first `len` bytes (at most the file) available
    /// in [`Self::bytes`].
    pub(crate) fn materialise(&mut self, len: usize) {
        let len = len.min(self.file_len);
        if self.bytes.len() < len {
            self.bytes.resize(len, 0);
        }
    }

    /// Whether every byte from `offset` to the end of the file is zero.
    pub(crate) fn is_zero_from(&self, offset: usize) -> bool {
        first_nonzero(&self.bytes, offset).is_none()
    }

    /// Reads the frame at `offset` exactly as on a full read of the file:
    /// a header or body that runs into the zero tail is materialised first.
    pub(crate) fn frame(&mut self, offset: usize) -> Frame {
        // At most twice: the header, then the body it announces.
        for _ in 0..2 {
            let needed = match read_frame(&self.bytes, offset) {
                Frame::Bad(BadFrame::ShortHeader { .. }) => offset + FRAME_HEADER_BYTES,
                Frame::Bad(BadFrame::BodyPastEnd { len, .. }) => offset
                    .saturating_add(FRAME_HEADER_BYTES)
                    .saturating_add(len),
                frame => return frame,
            };
            if self.bytes.len() >= self.file_len {
                break;
            }
            self.materialise(needed);
        }
        read_frame(&self.bytes, offset)
    }
}

/// The position of the first non-zero byte of `bytes` at or after `from`.
/// Runs of zeros are skipped a 64-byte block at a time.
pub(crate) fn first_nonzero(bytes: &[u8], from: usize) -> Option<usize> {
    const BLOCK: usize = 64;
    let rest = bytes.get(from..)?;
    let mut blocks = rest.chunks_exact(BLOCK);
    let mut base = from;
    for block in &mut blocks {
        if block.iter().fold(0u8, |acc, &b| acc | b) != 0 {
            return block.iter().position(|&b| b != 0).map(|i| base + i);
        }
        base += BLOCK;
    }
    blocks
        .remainder()
        .iter()
        .position(|&b| b != 0)
        .map(|i| base + i)
}

/// Where the last data region of `file` ends: every byte after it is in a
/// hole. `file_len` when the file system cannot tell. Moves the file
/// position.
#[cfg(target_os = "linux")]
fn data_end(file: &File, file_len: u64) -> u64 {
    use std::os::unix::io::AsRawFd;

    /// Regions to walk before giving up and reading everything (a
    /// preallocated segment has one or a few).
    const REGIONS_MAX: usize = 4096;
    let fd = file.as_raw_fd();
    let seek = |offset: u64, whence: libc::c_int| -> Result<Option<u64>, ()> {
        let offset = libc::off_t::try_from(offset).map_err(|_| ())?;
        // SAFETY: lseek on a file descriptor we own; no memory is involved.
        let at = unsafe { libc::lseek(fd, offset, whence) };
        if at >= 0 {
            return u64::try_from(at).map(Some).map_err(|_| ());
        }
        match std::io::Error::last_os_error().raw_os_error() {
            // No data at or after `offset`.
            Some(libc::ENXIO) => Ok(None),
            _ => Err(()),
        }
    };
    let mut end = 0;
    let mut position = 0;
    for _ in 0..REGIONS_MAX {
        let data = match seek(position, libc::SEEK_DATA) {
            Ok(Some(data)) => data,
            Ok(None) => return end.min(file_len),
            Err(()) => return file_len,
        };
        let hole = match seek(data, libc::SEEK_HOLE) {
            Ok(Some(hole)) if hole > data => hole,
            _ => return file_len,
        };
        end = hole;
        if hole >= file_len {
            return file_len;
        }
        position = hole;
    }
    file_len
}

/// Without `SEEK_DATA` / `SEEK_HOLE`: the whole file is data.
#[cfg(not(target_os = "linux"))]
fn data_end(_file: &File, file_len: u64) -> u64 {
    file_len
}

#[cfg(test)]
mod tests {
    use super::super::frame::{begin_frame, end_frame};
    use super::*;

    #[test]
    fn first_nonzero_finds_the_first_set_byte_anywhere() {
        for len in [0usize, 1, 63, 64, 65, 200] {
            let zeros = vec![0u8; len];
            assert_eq!(first_nonzero(&zeros, 0), None);
            for at in 0..len {
                let mut bytes = zeros.clone();
                bytes[at] = 9;
                assert_eq!(first_nonzero(&bytes, 0), Some(at));
                for from in 0..=len {
                    let expected = (from <= at).then_some(at);
                    assert_eq!(first_nonzero(&bytes, from), expected, "{len} {at} {from}");
                }
            }
        }
        assert_eq!(first_nonzero(&[1, 2], 5), None);
    }

    /// What a full read of `prefix` followed by zeros up to `len` gives.
    fn padded(prefix: &[u8], len: usize) -> Vec<u8> {
        let mut bytes = prefix.to_vec();
        bytes.resize(len, 0);
        bytes
    }

    #[test]
    fn a_frame_running_into_the_zero_tail_is_read_as_on_a_full_read() {
        // A record whose body ends with zeros, cut where the zeros start:
        // the image knows the zeros and reads a valid frame.
        let mut full = Vec::new();
        let start = begin_frame(&mut full);
        full.extend_from_slice(&[7, 7, 7, 0, 0, 0, 0, 0, 0, 0]);
        end_frame(&mut full, start);
        for cut in 0..full.len() {
            for file_len in [cut, full.len() - 1, full.len(), full.len() + 100] {
                let mut image = SegmentImage::new(full[..cut].to_vec(), file_len);
                let expected = read_frame(&padded(&full[..cut], file_len.max(cut)), 0);
                assert_eq!(image.frame(0), expected, "cut {cut} file {file_len}");
            }
        }
        let mut image = SegmentImage::new(full[..full.len() - 7].to_vec(), full.len());
        assert!(matches!(image.frame(0), Frame::Valid { .. }));
    }

    #[test]
    fn reading_skips_a_preallocated_tail_but_sees_every_written_byte() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s");
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .unwrap();
        let size = 4 << 20;
        if super::super::prealloc::allocate(&file, 0, size).is_err() {
            file.set_len(size).unwrap();
        }
        let written = vec![0xabu8; 10_000];
        std::os::unix::fs::FileExt::write_all_at(&file, &written, 0).unwrap();
        // Data far into the tail, past a hole.
        std::os::unix::fs::FileExt::write_all_at(&file, b"late", 3 << 20).unwrap();
        file.sync_all().unwrap();
        let image = SegmentImage::read(&path).unwrap();
        assert_eq!(image.file_len(), size as usize);
        assert!(image.bytes().len() >= (3 << 20) + 4);
        assert_eq!(&image.bytes()[..10_000], &written[..]);
        assert_eq!(&image.bytes()[3 << 20..(3 << 20) + 4], b"late");
        let full = std::fs::read(&path).unwrap();
        assert_eq!(&full[..image.bytes().len()], image.bytes());
        assert!(full[image.bytes().len()..].iter().all(|&b| b == 0));
        assert!(!image.is_zero_from(10_000));
        assert!(image.is_zero_from((3 << 20) + 4));
    }
}
