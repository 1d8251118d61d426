//! WAL segment files `<seq>.wal`: a 32-byte header, then framed records.
//!
//! ```text
//! version 2 (written by this build):
//!   magic "CSTOWAL\0" (8) | format version u32 (2) | crc32c u32 |
//!   sequence number u64 | previous segment's length u64
//!   (crc32c of bytes 0..12 ++ bytes 16..32: everything but itself)
//! version 1 (read, never written):
//!   magic "CSTOWAL\0" (8) | format version u32 (1) | reserved u32 (0) |
//!   sequence number u64 | crc32c(previous 24 bytes) u32 | reserved u32 (0)
//! ```
//!
//! The previous segment's length is the length segment `seq - 1` was
//! sealed at (trimmed to, fsynced) before this one was created; 0 when
//! there was none (the first segment of a store) or it is not known (a
//! header rewritten by recovery without its predecessor). Recovery holds
//! every sealed segment to the length its successor's header records, so a
//! sealed segment that lost whole records at its end (cut at a record
//! boundary, which its own records cannot show) is
//! [`StorageError::Corrupt`].
//!
//! [`Segment`] is the one segment being written to: preallocated, written
//! at its write offset, trimmed to its data when sealed.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};

use consensus_api::{LogIndex, StorageError};

use super::failpoint::{CrashPoint, Faults};
use super::fsio::{io_error, sync_dir};
use super::prealloc::is_unsupported;

/// Bytes of the segment header.
pub(crate) const SEGMENT_HEADER_BYTES: usize = 32;

/// The segment header version this build writes.
pub(crate) const SEGMENT_VERSION: u32 = 2;

/// The first segment header version, without the previous segment's
/// length; still read (directories written before version 2).
pub(crate) const SEGMENT_VERSION_V1: u32 = 1;

const MAGIC: &[u8; 8] = b"CSTOWAL\0";
const SUFFIX: &str = ".wal";

/// File name of segment `seq`.
pub(crate) fn segment_name(seq: u64) -> String {
    format!("{seq:020}{SUFFIX}")
}

/// The sequence number a segment file name stands for, if it is one.
pub(crate) fn parse_segment_name(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(SUFFIX)?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

fn v2_checksum(header: &[u8]) -> u32 {
    crc32c::crc32c_append(crc32c::crc32c(&header[0..12]), &header[16..32])
}

fn u64_at(header: &[u8], at: usize) -> u64 {
    let mut raw = [0u8; 8];
    raw.copy_from_slice(&header[at..at + 8]);
    u64::from_le_bytes(raw)
}

fn u32_at(header: &[u8], at: usize) -> u32 {
    let mut raw = [0u8; 4];
    raw.copy_from_slice(&header[at..at + 4]);
    u32::from_le_bytes(raw)
}

/// The (version 2) header of segment `seq`, whose predecessor was sealed
/// at `previous_len` bytes (0: none, or not known).
pub(crate) fn encode_header(seq: u64, previous_len: u64) -> [u8; SEGMENT_HEADER_BYTES] {
    let mut header = [0u8; SEGMENT_HEADER_BYTES];
    header[0..8].copy_from_slice(MAGIC);
    header[8..12].copy_from_slice(&SEGMENT_VERSION.to_le_bytes());
    header[16..24].copy_from_slice(&seq.to_le_bytes());
    header[24..32].copy_from_slice(&previous_len.to_le_bytes());
    let crc = v2_checksum(&header);
    header[12..16].copy_from_slice(&crc.to_le_bytes());
    header
}

/// What a valid segment header says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SegmentHeader {
    /// Header version (1 or 2).
    pub(crate) version: u32,
    /// The length the previous segment was sealed at, when the header
    /// records it (version 2, non-zero).
    pub(crate) previous_len: Option<u64>,
}

/// What the first bytes of a segment file hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum HeaderCheck {
    /// A good header for the expected segment.
    Valid(SegmentHeader),
    /// Shorter than a header, or all zero: segment creation was interrupted.
    Missing,
    /// A header that is wrong (bad checksum, wrong magic / version / seq).
    Bad(String),
}

/// Checks the header of segment `seq` at the start of `data`.
pub(crate) fn check_header(data: &[u8], seq: u64) -> HeaderCheck {
    let Some(header) = data.get(..SEGMENT_HEADER_BYTES) else {
        return HeaderCheck::Missing;
    };
    if header.iter().all(|&b| b == 0) {
        return HeaderCheck::Missing;
    }
    let version = u32_at(header, 8);
    let (checksum_ok, header_seq, previous_len) = match version {
        SEGMENT_VERSION_V1 => (
            u32_at(header, 24) == crc32c::crc32c(&header[0..24])
                && u32_at(header, 12) == 0
                && u32_at(header, 28) == 0,
            u64_at(header, 16),
            None,
        ),
        SEGMENT_VERSION => (
            u32_at(header, 12) == v2_checksum(header),
            u64_at(header, 16),
            Some(u64_at(header, 24)).filter(|&len| len != 0),
        ),
        _ => {
            // An unknown version, or a damaged version field: say which.
            let v1_ok = u32_at(header, 24) == crc32c::crc32c(&header[0..24]);
            let v2_ok = u32_at(header, 12) == v2_checksum(header);
            if (v1_ok || v2_ok) && &header[0..8] == MAGIC {
                return HeaderCheck::Bad(format!(
                    "segment format version {version}, this build reads versions \
                     {SEGMENT_VERSION_V1} and {SEGMENT_VERSION}"
                ));
            }
            return HeaderCheck::Bad("segment header checksum mismatch".into());
        }
    };
    if !checksum_ok {
        return HeaderCheck::Bad("segment header checksum mismatch".into());
    }
    if &header[0..8] != MAGIC {
        return HeaderCheck::Bad("not a WAL segment (wrong magic)".into());
    }
    if header_seq != seq {
        return HeaderCheck::Bad(format!(
            "segment header says sequence {header_seq}, file name says {seq}"
        ));
    }
    if previous_len.is_some_and(|len| len < SEGMENT_HEADER_BYTES as u64) {
        return HeaderCheck::Bad(format!(
            "segment header records a previous segment of {} bytes, shorter than a header",
            previous_len.unwrap_or(0)
        ));
    }
    HeaderCheck::Valid(SegmentHeader {
        version,
        previous_len,
    })
}

/// The segment being appended to.
///
/// Its file is normally preallocated to the segment size limit (see
/// `prealloc.rs`): batches overwrite the zero-filled space at the write
/// offset [`Segment::len`], which is not the file size. A batch that does
/// not fit in the preallocated space extends the file, as an append would.
#[derive(Debug)]
pub(crate) struct Segment {
    seq: u64,
    path: PathBuf,
    file: File,
    /// Write offset: bytes of header and records.
    len: u64,
    synced_len: u64,
    max_index: LogIndex,
    /// The file size (>= `len`; larger by the preallocated tail).
    file_len: u64,
}

impl Segment {
    /// Creates segment `seq` (its header recording that its predecessor
    /// was sealed at `previous_len` bytes, 0 when there is none): header
    /// written, the file preallocated to
    /// `preallocate_to` bytes when given (and the file system can), the
    /// file fsynced, then the directory fsynced. Each step is a crash point
    /// of rotation.
    ///
    /// Running out of space while preallocating is
    /// [`StorageError::DiskFull`]; a file system that cannot preallocate
    /// gets a segment that grows by appending.
    pub(crate) fn create(
        dir: &Path,
        seq: u64,
        previous_len: u64,
        preallocate_to: Option<u64>,
        faults: &mut Faults,
    ) -> Result<Segment, StorageError> {
        let path = dir.join(segment_name(seq));
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(|e| io_error("creating", &path, e))?;
        faults
            .write_all_at(&file, &encode_header(seq, previous_len), 0)
            .map_err(|e| io_error("writing", &path, e))?;
        faults.crash_point(CrashPoint::RotationSegmentCreated)?;
        let len = SEGMENT_HEADER_BYTES as u64;
        let mut segment = Segment {
            seq,
            path,
            file,
            len,
            synced_len: len,
            max_index: 0,
            file_len: len,
        };
        if let Some(target) = preallocate_to {
            segment.preallocate(target, faults)?;
        }
        faults
            .sync_all(&segment.file)
            .map_err(|e| io_error("syncing", &segment.path, e))?;
        faults.crash_point(CrashPoint::RotationSegmentPreallocated)?;
        sync_dir(dir)?;
        Ok(segment)
    }

    /// Reopens a recovered segment whose first `len` bytes are its valid
    /// data (made durable by recovery; anything after them is zero-filled
    /// space) for writing at `len`. With `preallocate_to`, a file shorter
    /// than that is preallocated again, best effort: a recovered store must
    /// open even on a full disk, so running out of space here only costs
    /// the preallocation (a later write then meets the full disk itself).
    pub(crate) fn reopen(
        dir: &Path,
        seq: u64,
        len: u64,
        max_index: LogIndex,
        preallocate_to: Option<u64>,
        faults: &mut Faults,
    ) -> Result<Segment, StorageError> {
        let path = dir.join(segment_name(seq));
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .map_err(|e| io_error("opening", &path, e))?;
        let file_len = file
            .metadata()
            .map_err(|e| io_error("reading metadata of", &path, e))?
            .len();
        let mut segment = Segment {
            seq,
            path,
            file,
            len,
            synced_len: len,
            max_index,
            file_len: file_len.max(len),
        };
        if let Some(target) = preallocate_to.filter(|&target| target > segment.file_len) {
            match segment.preallocate(target, faults) {
                Ok(()) => faults
                    .sync_all(&segment.file)
                    .map_err(|e| io_error("syncing", &segment.path, e))?,
                Err(error @ StorageError::DiskFull { .. }) => {
                    tracing::warn!(%error, "segment not preallocated: the disk is full");
                }
                Err(error) => return Err(error),
            }
        }
        Ok(segment)
    }

    /// Grows the file to `target` bytes of allocated, zero-filled space.
    /// A file system without `fallocate` is left as it is.
    fn preallocate(&mut self, target: u64, faults: &mut Faults) -> Result<(), StorageError> {
        let Some(extra) = target.checked_sub(self.file_len).filter(|&n| n > 0) else {
            return Ok(());
        };
        match faults.allocate(&self.file, self.file_len, extra) {
            Ok(()) => {
                self.file_len = target;
                Ok(())
            }
            Err(error) if is_unsupported(&error) => {
                tracing::debug!(segment = %self.path.display(), %error,
                    "the file system cannot preallocate; the segment grows by appending");
                Ok(())
            }
            Err(error) => Err(io_error("preallocating", &self.path, error)),
        }
    }

    /// Sequence number.
    pub(crate) fn seq(&self) -> u64 {
        self.seq
    }

    /// Bytes written so far, header included: the write offset.
    pub(crate) fn len(&self) -> u64 {
        self.len
    }

    /// Bytes known durable.
    pub(crate) fn synced_len(&self) -> u64 {
        self.synced_len
    }

    /// The file size (the write offset plus any preallocated tail).
    pub(crate) fn file_len(&self) -> u64 {
        self.file_len
    }

    /// Whether records follow the header.
    pub(crate) fn has_records(&self) -> bool {
        self.len > SEGMENT_HEADER_BYTES as u64
    }

    /// Whether bytes were written since the last sync.
    pub(crate) fn is_dirty(&self) -> bool {
        self.len > self.synced_len
    }

    /// Highest entry index written in this segment (0 when none).
    pub(crate) fn max_index(&self) -> LogIndex {
        self.max_index
    }

    /// Writes encoded records at the write offset with one `pwrite` (the
    /// kernel may split a huge buffer; `write_all_at` continues).
    pub(crate) fn append(
        &mut self,
        bytes: &[u8],
        max_index: LogIndex,
        faults: &mut Faults,
    ) -> Result<(), StorageError> {
        faults
            .write_all_at(&self.file, bytes, self.len)
            .map_err(|e| io_error("writing", &self.path, e))?;
        self.len += bytes.len() as u64;
        self.file_len = self.file_len.max(self.len);
        self.max_index = self.max_index.max(max_index);
        Ok(())
    }

    /// One `fdatasync` for everything appended since the last one.
    pub(crate) fn sync(&mut self, faults: &mut Faults) -> Result<(), StorageError> {
        if !self.is_dirty() {
            return Ok(());
        }
        faults
            .sync_data(&self.file)
            .map_err(|e| io_error("syncing", &self.path, e))?;
        self.synced_len = self.len;
        Ok(())
    }

    /// Seals the segment: cuts the preallocated tail so the file holds
    /// exactly its records, and fsyncs the new size. The caller has synced
    /// the data; only after this may the next segment be created, so a
    /// sealed segment never has a zero tail (recovery calls any bad record
    /// in a sealed segment corruption).
    pub(crate) fn trim(&mut self, faults: &mut Faults) -> Result<(), StorageError> {
        debug_assert!(!self.is_dirty(), "trimming a segment with unsynced data");
        if self.file_len == self.len {
            return Ok(());
        }
        self.file
            .set_len(self.len)
            .map_err(|e| io_error("trimming", &self.path, e))?;
        faults
            .sync_all(&self.file)
            .map_err(|e| io_error("syncing", &self.path, e))?;
        self.file_len = self.len;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A version 1 header, as builds before version 2 wrote it.
    fn v1_header(seq: u64) -> [u8; SEGMENT_HEADER_BYTES] {
        let mut header = [0u8; SEGMENT_HEADER_BYTES];
        header[0..8].copy_from_slice(MAGIC);
        header[8..12].copy_from_slice(&1u32.to_le_bytes());
        header[16..24].copy_from_slice(&seq.to_le_bytes());
        let crc = crc32c::crc32c(&header[0..24]);
        header[24..28].copy_from_slice(&crc.to_le_bytes());
        header
    }

    fn valid(version: u32, previous_len: Option<u64>) -> HeaderCheck {
        HeaderCheck::Valid(SegmentHeader {
            version,
            previous_len,
        })
    }

    #[test]
    fn names_and_headers() {
        assert_eq!(parse_segment_name(&segment_name(17)), Some(17));
        assert_eq!(parse_segment_name("17.wal"), None);
        assert_eq!(check_header(&encode_header(5, 0), 5), valid(2, None));
        assert_eq!(
            check_header(&encode_header(5, 4096), 5),
            valid(2, Some(4096))
        );
        assert!(matches!(
            check_header(&encode_header(5, 0), 6),
            HeaderCheck::Bad(_)
        ));
        assert_eq!(check_header(&[0u8; 40], 1), HeaderCheck::Missing);
        assert_eq!(
            check_header(&encode_header(1, 0)[..20], 1),
            HeaderCheck::Missing
        );
        // A length shorter than a header cannot be a sealed segment's.
        assert!(matches!(
            check_header(&encode_header(5, 7), 5),
            HeaderCheck::Bad(_)
        ));
    }

    #[test]
    fn every_bit_of_either_header_version_is_checked() {
        for header in [encode_header(9, 12345), v1_header(9)] {
            for bit in 0..SEGMENT_HEADER_BYTES * 8 {
                let mut flipped = header;
                flipped[bit / 8] ^= 1 << (bit % 8);
                assert!(
                    matches!(check_header(&flipped, 9), HeaderCheck::Bad(_)),
                    "bit {bit} of {header:?}"
                );
            }
        }
    }

    #[test]
    fn version_1_headers_are_read_and_other_versions_named() {
        assert_eq!(check_header(&v1_header(3), 3), valid(1, None));
        assert!(matches!(
            check_header(&v1_header(3), 4),
            HeaderCheck::Bad(_)
        ));
        let mut future = encode_header(3, 100);
        future[8..12].copy_from_slice(&3u32.to_le_bytes());
        let crc = v2_checksum(&future);
        future[12..16].copy_from_slice(&crc.to_le_bytes());
        match check_header(&future, 3) {
            HeaderCheck::Bad(reason) => assert!(reason.contains("version 3"), "{reason}"),
            other => panic!("expected a version error, got {other:?}"),
        }
    }
}
