//! WAL segment files `<seq>.wal`: a 32-byte header, then framed records.
//!
//! ```text
//! header: magic "CSTOWAL\0" (8) | format version u32 | reserved u32 (0) |
//!         sequence number u64 | crc32c(previous 24 bytes) u32 | reserved u32 (0)
//! ```
//!
//! [`Segment`] is the one segment being appended to.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};

use consensus_api::{LogIndex, StorageError};

use super::failpoint::Faults;
use super::fsio::{io_error, sync_dir};
use super::identity::FORMAT_VERSION;

/// Bytes of the segment header.
pub(crate) const SEGMENT_HEADER_BYTES: usize = 32;

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

/// The header of segment `seq`.
pub(crate) fn encode_header(seq: u64) -> [u8; SEGMENT_HEADER_BYTES] {
    let mut header = [0u8; SEGMENT_HEADER_BYTES];
    header[0..8].copy_from_slice(MAGIC);
    header[8..12].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    header[16..24].copy_from_slice(&seq.to_le_bytes());
    let crc = crc32c::crc32c(&header[0..24]);
    header[24..28].copy_from_slice(&crc.to_le_bytes());
    header
}

/// What the first bytes of a segment file hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum HeaderCheck {
    /// A good header for the expected segment.
    Valid,
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
    let expected = encode_header(seq);
    if header == expected {
        return HeaderCheck::Valid;
    }
    let crc = u32::from_le_bytes([header[24], header[25], header[26], header[27]]);
    if crc != crc32c::crc32c(&header[0..24]) {
        return HeaderCheck::Bad("segment header checksum mismatch".into());
    }
    if &header[0..8] != MAGIC {
        return HeaderCheck::Bad("not a WAL segment (wrong magic)".into());
    }
    let version = u32::from_le_bytes([header[8], header[9], header[10], header[11]]);
    if version != FORMAT_VERSION {
        return HeaderCheck::Bad(format!(
            "segment format version {version}, expected {FORMAT_VERSION}"
        ));
    }
    let mut raw = [0u8; 8];
    raw.copy_from_slice(&header[16..24]);
    HeaderCheck::Bad(format!(
        "segment header says sequence {}, file name says {seq}",
        u64::from_le_bytes(raw)
    ))
}

/// The segment being appended to.
#[derive(Debug)]
pub(crate) struct Segment {
    seq: u64,
    path: PathBuf,
    file: File,
    len: u64,
    synced_len: u64,
    max_index: LogIndex,
}

impl Segment {
    /// Creates segment `seq`: header written and fsynced, directory fsynced.
    pub(crate) fn create(
        dir: &Path,
        seq: u64,
        faults: &mut Faults,
    ) -> Result<Segment, StorageError> {
        let path = dir.join(segment_name(seq));
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(|e| io_error("creating", &path, e))?;
        faults
            .write_all(&mut file, &encode_header(seq))
            .map_err(|e| io_error("writing", &path, e))?;
        faults
            .sync_all(&file)
            .map_err(|e| io_error("syncing", &path, e))?;
        sync_dir(dir)?;
        let len = SEGMENT_HEADER_BYTES as u64;
        Ok(Segment {
            seq,
            path,
            file,
            len,
            synced_len: len,
            max_index: 0,
        })
    }

    /// Reopens a recovered segment (already truncated to `len` valid bytes
    /// and fsynced) for appending.
    pub(crate) fn reopen(
        dir: &Path,
        seq: u64,
        len: u64,
        max_index: LogIndex,
    ) -> Result<Segment, StorageError> {
        let path = dir.join(segment_name(seq));
        let file = OpenOptions::new()
            .append(true)
            .open(&path)
            .map_err(|e| io_error("opening", &path, e))?;
        Ok(Segment {
            seq,
            path,
            file,
            len,
            synced_len: len,
            max_index,
        })
    }

    /// Sequence number.
    pub(crate) fn seq(&self) -> u64 {
        self.seq
    }

    /// Bytes written so far, header included.
    pub(crate) fn len(&self) -> u64 {
        self.len
    }

    /// Bytes known durable.
    pub(crate) fn synced_len(&self) -> u64 {
        self.synced_len
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

    /// Appends encoded records with one `write` (the kernel may split a
    /// huge buffer; `write_all` continues).
    pub(crate) fn append(
        &mut self,
        bytes: &[u8],
        max_index: LogIndex,
        faults: &mut Faults,
    ) -> Result<(), StorageError> {
        faults
            .write_all(&mut self.file, bytes)
            .map_err(|e| io_error("writing", &self.path, e))?;
        self.len += bytes.len() as u64;
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_headers() {
        assert_eq!(parse_segment_name(&segment_name(17)), Some(17));
        assert_eq!(parse_segment_name("17.wal"), None);
        assert_eq!(check_header(&encode_header(5), 5), HeaderCheck::Valid);
        assert!(matches!(
            check_header(&encode_header(5), 6),
            HeaderCheck::Bad(_)
        ));
        assert_eq!(check_header(&[0u8; 40], 1), HeaderCheck::Missing);
        assert_eq!(
            check_header(&encode_header(1)[..20], 1),
            HeaderCheck::Missing
        );
        let mut flipped = encode_header(1);
        flipped[3] ^= 4;
        assert!(matches!(check_header(&flipped, 1), HeaderCheck::Bad(_)));
    }
}
