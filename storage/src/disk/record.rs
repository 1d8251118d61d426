//! Typed WAL record bodies, hand-rolled little-endian.
//!
//! ```text
//! Entries        1 | count u32 | count x entry
//!   entry        index u64 | epoch u64 | payload
//!   payload      0 | len u32 | command bytes        (Command)
//!                1                                  (Noop)
//!                2 | len u32 | postcard(Membership) (Membership)
//! Truncate       2 | from u64
//! HardState      3 | len u32 | bytes
//! SnapshotMarker 4 | index u64 | epoch u64
//! SyncMark       5 | synced_offset u64
//! ```

use consensus_api::{Bytes, Entry, LogIndex, Membership, Payload, StorageError};

use super::codec::{DecodeError, PutLe, Reader};
use super::frame::{begin_frame, end_frame, MAX_RECORD_BODY_BYTES};

const TAG_ENTRIES: u8 = 1;
const TAG_TRUNCATE: u8 = 2;
const TAG_HARD_STATE: u8 = 3;
const TAG_SNAPSHOT_MARKER: u8 = 4;
const TAG_SYNC_MARK: u8 = 5;

const PAYLOAD_COMMAND: u8 = 0;
const PAYLOAD_NOOP: u8 = 1;
const PAYLOAD_MEMBERSHIP: u8 = 2;

/// Entries are grouped into records of at most about this many body bytes
/// (one entry larger than this gets a record of its own).
pub(crate) const ENTRIES_RECORD_BYTES_SOFT_MAX: usize = 1 << 20;

/// Bytes of an entry record body besides its entries.
const ENTRIES_RECORD_OVERHEAD: usize = 1 + 4;

/// One decoded record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Record {
    /// Entries to store, replacing same-index ones.
    Entries(Vec<Entry>),
    /// Drop entries with index >= `from`.
    Truncate {
        /// First dropped index.
        from: LogIndex,
    },
    /// The new hard state.
    HardState(Bytes),
    /// A snapshot at `index` was made durable (in its own file) before this
    /// record was written.
    SnapshotMarker {
        /// Snapshot index.
        index: LogIndex,
        /// Snapshot epoch.
        epoch: u64,
    },
    /// Every byte of this segment before `synced_offset` had been
    /// fdatasync'ed when this record was written (evidence used by recovery
    /// to tell bit rot from a torn, never-synced tail).
    SyncMark {
        /// Synced length of this segment.
        synced_offset: u64,
    },
}

/// Encoded size of an entry inside an entries record, or an error when the
/// entry cannot be stored.
pub(crate) fn entry_encoded_bytes(entry: &Entry) -> Result<usize, StorageError> {
    let payload = match &entry.payload {
        Payload::Command(bytes) => 1 + 4 + bytes.len(),
        Payload::Noop => 1,
        Payload::Membership(membership) => 1 + 4 + membership_bytes(membership)?.len(),
    };
    let size = 16 + payload;
    if size + ENTRIES_RECORD_OVERHEAD > MAX_RECORD_BODY_BYTES {
        return Err(StorageError::InvalidWrite(format!(
            "entry {} is {size} bytes; the most one entry may take is {}",
            entry.index,
            MAX_RECORD_BODY_BYTES - ENTRIES_RECORD_OVERHEAD
        )));
    }
    Ok(size)
}

fn membership_bytes(membership: &Membership) -> Result<Vec<u8>, StorageError> {
    postcard::to_allocvec(membership)
        .map_err(|error| StorageError::InvalidWrite(format!("membership does not encode: {error}")))
}

fn put_entry(buf: &mut Vec<u8>, entry: &Entry) -> Result<(), StorageError> {
    buf.put_u64(entry.index);
    buf.put_u64(entry.epoch);
    match &entry.payload {
        Payload::Command(bytes) => {
            buf.put_u8(PAYLOAD_COMMAND);
            buf.put_bytes(bytes);
        }
        Payload::Noop => buf.put_u8(PAYLOAD_NOOP),
        Payload::Membership(membership) => {
            buf.put_u8(PAYLOAD_MEMBERSHIP);
            buf.put_bytes(&membership_bytes(membership)?);
        }
    }
    Ok(())
}

/// Appends entries as one or more framed records (split near
/// [`ENTRIES_RECORD_BYTES_SOFT_MAX`]). Sizes must have been checked with
/// [`entry_encoded_bytes`].
pub(crate) fn put_entries(buf: &mut Vec<u8>, entries: &[Entry]) -> Result<(), StorageError> {
    let mut rest = entries;
    while !rest.is_empty() {
        let mut take = 0;
        let mut size = ENTRIES_RECORD_OVERHEAD;
        for entry in rest {
            let entry_size = entry_encoded_bytes(entry)?;
            if take > 0 && size + entry_size > ENTRIES_RECORD_BYTES_SOFT_MAX {
                break;
            }
            size += entry_size;
            take += 1;
        }
        let (chunk, tail) = rest.split_at(take);
        let start = begin_frame(buf);
        buf.put_u8(TAG_ENTRIES);
        buf.put_u32(chunk.len() as u32);
        for entry in chunk {
            put_entry(buf, entry)?;
        }
        end_frame(buf, start);
        rest = tail;
    }
    Ok(())
}

/// Appends a framed truncate record.
pub(crate) fn put_truncate(buf: &mut Vec<u8>, from: LogIndex) {
    let start = begin_frame(buf);
    buf.put_u8(TAG_TRUNCATE);
    buf.put_u64(from);
    end_frame(buf, start);
}

/// Appends a framed hard-state record.
pub(crate) fn put_hard_state(buf: &mut Vec<u8>, hard_state: &[u8]) {
    let start = begin_frame(buf);
    buf.put_u8(TAG_HARD_STATE);
    buf.put_bytes(hard_state);
    end_frame(buf, start);
}

/// Appends a framed snapshot marker.
pub(crate) fn put_snapshot_marker(buf: &mut Vec<u8>, index: LogIndex, epoch: u64) {
    let start = begin_frame(buf);
    buf.put_u8(TAG_SNAPSHOT_MARKER);
    buf.put_u64(index);
    buf.put_u64(epoch);
    end_frame(buf, start);
}

/// Appends a framed sync mark.
pub(crate) fn put_sync_mark(buf: &mut Vec<u8>, synced_offset: u64) {
    let start = begin_frame(buf);
    buf.put_u8(TAG_SYNC_MARK);
    buf.put_u64(synced_offset);
    end_frame(buf, start);
}

fn read_entry(reader: &mut Reader<'_>) -> Result<Entry, DecodeError> {
    let index = reader.u64("entry index")?;
    let epoch = reader.u64("entry epoch")?;
    let payload = match reader.u8("payload type")? {
        PAYLOAD_COMMAND => Payload::Command(Bytes::copy_from_slice(reader.bytes("command")?)),
        PAYLOAD_NOOP => Payload::Noop,
        PAYLOAD_MEMBERSHIP => {
            let raw = reader.bytes("membership")?;
            let membership = postcard::from_bytes(raw)
                .map_err(|error| DecodeError(format!("membership does not decode: {error}")))?;
            Payload::Membership(membership)
        }
        other => return Err(DecodeError(format!("unknown payload type {other}"))),
    };
    if index == 0 {
        return Err(DecodeError("entry index 0".into()));
    }
    Ok(Entry {
        index,
        epoch,
        payload,
    })
}

/// Decodes a record body (its checksum already verified).
pub(crate) fn decode_record(body: &[u8]) -> Result<Record, DecodeError> {
    let mut reader = Reader::new(body);
    let record = match reader.u8("record type")? {
        TAG_ENTRIES => {
            let count = reader.u32("entry count")? as usize;
            // Each entry takes at least 17 bytes: bound the allocation.
            let mut entries = Vec::with_capacity(count.min(reader.remaining() / 17));
            let mut previous = 0;
            for _ in 0..count {
                let entry = read_entry(&mut reader)?;
                if entry.index <= previous {
                    return Err(DecodeError(format!(
                        "entries out of order: {} after {previous}",
                        entry.index
                    )));
                }
                previous = entry.index;
                entries.push(entry);
            }
            Record::Entries(entries)
        }
        TAG_TRUNCATE => Record::Truncate {
            from: reader.u64("truncate index")?,
        },
        TAG_HARD_STATE => Record::HardState(Bytes::copy_from_slice(reader.bytes("hard state")?)),
        TAG_SNAPSHOT_MARKER => Record::SnapshotMarker {
            index: reader.u64("snapshot index")?,
            epoch: reader.u64("snapshot epoch")?,
        },
        TAG_SYNC_MARK => Record::SyncMark {
            synced_offset: reader.u64("synced offset")?,
        },
        other => return Err(DecodeError(format!("unknown record type {other}"))),
    };
    reader.finish("record")?;
    Ok(record)
}

#[cfg(test)]
mod tests {
    use super::super::frame::{read_frame, Frame};
    use super::*;

    fn decode_all(buf: &[u8]) -> Vec<Record> {
        let mut offset = 0;
        let mut out = Vec::new();
        while offset < buf.len() {
            match read_frame(buf, offset) {
                Frame::Valid { body } => {
                    out.push(decode_record(&buf[body.clone()]).unwrap());
                    offset = body.end;
                }
                Frame::Bad(bad) => panic!("bad frame at {offset}: {bad}"),
            }
        }
        out
    }

    #[test]
    fn every_record_type_round_trips() {
        let entries = vec![
            Entry {
                index: 3,
                epoch: 2,
                payload: Payload::Command(Bytes::from_static(b"set x")),
            },
            Entry {
                index: 4,
                epoch: 2,
                payload: Payload::Noop,
            },
            Entry {
                index: 9,
                epoch: 3,
                payload: Payload::Membership(Membership::with_learners([1, 2, 3], [4])),
            },
        ];
        let mut buf = Vec::new();
        put_entries(&mut buf, &entries).unwrap();
        put_truncate(&mut buf, 7);
        put_hard_state(&mut buf, b"term=3");
        put_snapshot_marker(&mut buf, 2, 1);
        put_sync_mark(&mut buf, 4096);
        assert_eq!(
            decode_all(&buf),
            vec![
                Record::Entries(entries),
                Record::Truncate { from: 7 },
                Record::HardState(Bytes::from_static(b"term=3")),
                Record::SnapshotMarker { index: 2, epoch: 1 },
                Record::SyncMark {
                    synced_offset: 4096
                },
            ]
        );
    }

    #[test]
    fn large_batches_split_into_several_records() {
        let payload = Bytes::from(vec![7u8; 300 * 1024]);
        let entries: Vec<Entry> = (1..=10)
            .map(|index| Entry {
                index,
                epoch: 1,
                payload: Payload::Command(payload.clone()),
            })
            .collect();
        let mut buf = Vec::new();
        put_entries(&mut buf, &entries).unwrap();
        let records = decode_all(&buf);
        assert!(records.len() >= 3, "{} records", records.len());
        let decoded: Vec<Entry> = records
            .into_iter()
            .flat_map(|record| match record {
                Record::Entries(entries) => entries,
                other => panic!("unexpected {other:?}"),
            })
            .collect();
        assert_eq!(decoded, entries);
    }

    #[test]
    fn garbage_bodies_are_errors_not_panics() {
        for body in [
            &[][..],
            &[0],
            &[9],
            &[TAG_ENTRIES, 255, 255, 255, 255],
            &[TAG_ENTRIES, 1, 0, 0, 0, 1],
            &[TAG_TRUNCATE, 1, 2],
            &[TAG_HARD_STATE, 200, 0, 0, 0, 1],
            &[TAG_SYNC_MARK, 0, 0, 0, 0, 0, 0, 0, 0, 1],
        ] {
            assert!(decode_record(body).is_err(), "{body:?}");
        }
    }
}
