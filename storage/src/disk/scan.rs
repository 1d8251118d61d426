//! Reading one segment: records in order, and the verdict on a bad record
//! (the zero-filled end of the data, a torn tail to cut away, or corruption
//! to report). The rule is documented in the `disk` module docs;
//! [`classify_bad_record`] implements it.

use std::path::{Path, PathBuf};

use consensus_api::StorageError;

use super::frame::{BadFrame, Frame, FRAME_HEADER_BYTES};
use super::image::{first_nonzero, SegmentImage};
use super::record::{decode_record, Record};
use super::segment::{check_header, HeaderCheck, SegmentHeader, SEGMENT_HEADER_BYTES};

/// Sector size used to recognise never-written (zero-filled) holes.
pub(crate) const SECTOR_BYTES: usize = 512;

/// How a segment ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Tail {
    /// The last record ends exactly at the end of the file.
    Clean,
    /// From `offset` to the end of the file every byte is zero: the
    /// preallocated (or never written back) space after the last record.
    /// Nothing to cut: the next batch overwrites it.
    ZeroFilled {
        /// Where the data ends.
        offset: u64,
    },
    /// From `offset` on, the file holds a torn write; recovery cuts it.
    Torn {
        /// Where the torn part starts.
        offset: u64,
        /// What was found there.
        reason: String,
    },
    /// The segment header itself is missing or torn and no record follows
    /// (creation interrupted); recovery rewrites the header.
    TornHeader,
}

/// The records of one segment.
#[derive(Debug)]
pub(crate) struct SegmentScan {
    /// The segment header (`None` when it is torn: [`Tail::TornHeader`]).
    pub(crate) header: Option<SegmentHeader>,
    /// Each valid record with its byte offset.
    pub(crate) records: Vec<(u64, Record)>,
    /// Bytes up to the end of the last valid record (the header when none).
    pub(crate) valid_len: u64,
    /// How the segment ends.
    pub(crate) tail: Tail,
}

/// The verdict on a bad record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Zeros up to the end of the file: the end of the data.
    ZeroFilled,
    /// A torn, never-synced tail.
    Torn(String),
    /// Corruption of data that is (or may have been) synced.
    Corrupt(String),
}

fn corrupt(path: &Path, offset: u64, reason: String) -> StorageError {
    StorageError::Corrupt {
        segment: PathBuf::from(path),
        offset,
        reason,
    }
}

/// Whether `[start, end)` contains a whole, sector-aligned, all-zero
/// sector: the trace of a page or sector that was never written back.
fn contains_zero_sector(data: &[u8], start: usize, end: usize) -> bool {
    let mut sector = start.div_ceil(SECTOR_BYTES) * SECTOR_BYTES;
    while sector + SECTOR_BYTES <= end {
        if data[sector..sector + SECTOR_BYTES].iter().all(|&b| b == 0) {
            return true;
        }
        sector += SECTOR_BYTES;
    }
    false
}

/// Decides whether the bad record at `offset` of the last segment is the
/// zero-filled end of the data, a torn tail or corruption (rule in the
/// `disk` module docs).
pub(crate) fn classify_bad_record(
    image: &mut SegmentImage,
    offset: usize,
    bad: BadFrame,
) -> Verdict {
    if image.is_zero_from(offset) {
        return Verdict::ZeroFilled;
    }
    // Every valid frame after the bad one. Each byte offset is a candidate,
    // but a frame whose length field is zero is never valid, so runs of
    // zeros (preallocated space) are skipped without trying them; any other
    // offset is rejected by the length check after 4 bytes of CRC work.
    let mut later: Vec<(usize, Record)> = Vec::new();
    let mut first_valid = None;
    let mut position = offset + 1;
    while let Some(nonzero) = first_nonzero(image.bytes(), position) {
        position = position.max(nonzero.saturating_sub(3));
        if position + FRAME_HEADER_BYTES > image.file_len() {
            break;
        }
        match image.frame(position) {
            Frame::Valid { body } => {
                first_valid.get_or_insert(position);
                if let Ok(record) = decode_record(&image.bytes()[body.clone()]) {
                    later.push((position, record));
                }
                position = body.end;
            }
            Frame::Bad(_) => position += 1,
        }
    }
    let Some(first_valid) = first_valid else {
        return Verdict::Torn(format!("{bad}, and no valid record follows"));
    };
    let proof = later.iter().find_map(|(at, record)| match record {
        Record::SyncMark { synced_offset } if *synced_offset > offset as u64 => {
            Some((*at, *synced_offset))
        }
        _ => None,
    });
    if let Some((at, synced_offset)) = proof {
        return Verdict::Corrupt(format!(
            "{bad}; the sync mark at offset {at} shows the first {synced_offset} bytes were synced"
        ));
    }
    if contains_zero_sector(image.bytes(), offset, first_valid) {
        return Verdict::Torn(format!(
            "{bad}; a zero-filled sector before the next valid record (offset {first_valid}) marks \
             an unsynced write that was never written back"
        ));
    }
    Verdict::Corrupt(format!(
        "{bad}, but a valid record follows at offset {first_valid}"
    ))
}

/// Reads all records of segment `seq` held in `image`. `is_last` says
/// whether this is the newest segment (only it may have a torn or
/// zero-filled tail).
pub(crate) fn scan_segment(
    path: &Path,
    seq: u64,
    image: &mut SegmentImage,
    is_last: bool,
) -> Result<SegmentScan, StorageError> {
    image.materialise(SEGMENT_HEADER_BYTES);
    let header = match check_header(image.bytes(), seq) {
        HeaderCheck::Valid(header) => header,
        HeaderCheck::Missing | HeaderCheck::Bad(_)
            if is_last && image.is_zero_from(SEGMENT_HEADER_BYTES) =>
        {
            // Nothing but a (partial) header, maybe preallocated space: the
            // segment's creation was interrupted before its header was
            // durable; no record can have been written to it.
            return Ok(SegmentScan {
                header: None,
                records: Vec::new(),
                valid_len: 0,
                tail: Tail::TornHeader,
            });
        }
        HeaderCheck::Missing => {
            return Err(corrupt(path, 0, "segment header missing".into()));
        }
        HeaderCheck::Bad(reason) => return Err(corrupt(path, 0, reason)),
    };
    let mut records = Vec::new();
    let mut offset = SEGMENT_HEADER_BYTES;
    while offset < image.file_len() {
        match image.frame(offset) {
            Frame::Valid { body } => {
                let record = decode_record(&image.bytes()[body.clone()]).map_err(|error| {
                    corrupt(
                        path,
                        offset as u64,
                        format!("record checksum is valid but it does not decode: {error}"),
                    )
                })?;
                records.push((offset as u64, record));
                offset = body.end;
            }
            Frame::Bad(bad) => {
                if !is_last {
                    return Err(corrupt(
                        path,
                        offset as u64,
                        format!(
                            "{bad} in a sealed segment (sealed segments are fsynced whole and \
                             trimmed to their data)"
                        ),
                    ));
                }
                let tail = match classify_bad_record(image, offset, bad) {
                    Verdict::ZeroFilled => Tail::ZeroFilled {
                        offset: offset as u64,
                    },
                    Verdict::Torn(reason) => Tail::Torn {
                        offset: offset as u64,
                        reason,
                    },
                    Verdict::Corrupt(reason) => return Err(corrupt(path, offset as u64, reason)),
                };
                return Ok(SegmentScan {
                    header: Some(header),
                    records,
                    valid_len: offset as u64,
                    tail,
                });
            }
        }
    }
    Ok(SegmentScan {
        header: Some(header),
        records,
        valid_len: offset as u64,
        tail: Tail::Clean,
    })
}

#[cfg(test)]
mod tests {
    use super::super::record::{put_hard_state, put_sync_mark};
    use super::super::segment::encode_header;
    use super::*;

    fn scan_bytes(data: &[u8], is_last: bool) -> Result<SegmentScan, StorageError> {
        let mut image = SegmentImage::new(data.to_vec(), data.len());
        scan_segment(Path::new("s"), 1, &mut image, is_last)
    }

    fn segment(records: &[&[u8]]) -> (Vec<u8>, Vec<usize>) {
        let mut data = encode_header(1, 0).to_vec();
        let mut offsets = Vec::new();
        for body in records {
            offsets.push(data.len());
            put_hard_state(&mut data, body);
        }
        (data, offsets)
    }

    #[test]
    fn clean_segment() {
        let (data, _) = segment(&[b"a", b"b"]);
        let scan = scan_bytes(&data, true).unwrap();
        assert_eq!(scan.records.len(), 2);
        assert_eq!(scan.tail, Tail::Clean);
        assert_eq!(scan.valid_len, data.len() as u64);
    }

    #[test]
    fn garbage_after_the_last_record_is_a_torn_tail() {
        let (mut data, _) = segment(&[b"a"]);
        let end = data.len();
        data.extend_from_slice(&[0xab; 100]);
        let scan = scan_bytes(&data, true).unwrap();
        assert_eq!(scan.valid_len, end as u64);
        assert!(matches!(scan.tail, Tail::Torn { offset, .. } if offset == end as u64));
        assert!(scan_bytes(&data, false).is_err());
    }

    #[test]
    fn a_zero_hole_before_later_records_is_torn_unless_a_sync_mark_proves_it_synced() {
        let filler = vec![7u8; 2000];
        let (mut data, offsets) = segment(&[b"a", &filler, b"c"]);
        // Zero the second record's second sector: a page never written back.
        let hole = (offsets[1] / SECTOR_BYTES + 1) * SECTOR_BYTES;
        data[hole..hole + SECTOR_BYTES].fill(0);
        let scan = scan_bytes(&data, true).unwrap();
        assert_eq!(scan.records.len(), 1);
        assert_eq!(scan.valid_len, offsets[1] as u64);
        // Same damage, but a later sync mark says it had been synced.
        put_sync_mark(&mut data, offsets[2] as u64);
        let error = scan_bytes(&data, true).unwrap_err();
        assert!(
            matches!(error, StorageError::Corrupt { offset, .. } if offset == offsets[1] as u64)
        );
    }

    #[test]
    fn a_flip_before_a_valid_record_is_corruption() {
        let (mut data, offsets) = segment(&[b"a", b"b", b"c"]);
        data[offsets[1] + FRAME_HEADER_BYTES] ^= 1;
        let error = scan_bytes(&data, true).unwrap_err();
        assert!(
            matches!(error, StorageError::Corrupt { offset, .. } if offset == offsets[1] as u64)
        );
    }

    #[test]
    fn torn_header() {
        let scan = scan_bytes(&encode_header(1, 0)[..7], true).unwrap();
        assert_eq!(scan.tail, Tail::TornHeader);
        assert!(scan_bytes(&[], false).is_err());
    }
}
