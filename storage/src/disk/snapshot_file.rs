//! Snapshot files `snap-<index>.snap`, written by temp file + fsync +
//! rename + directory fsync.
//!
//! ```text
//! magic "CSTOSNAP" (8) | meta length u32 | data length u64 |
//! crc32c(meta length ++ data length ++ meta ++ data) u32 |
//! meta: index u64 | epoch u64 | len u32 + postcard(membership) |
//!       len u32 + protocol_state |
//! data (the state machine's bytes, written without a copy)
//! ```

use std::path::{Path, PathBuf};

use consensus_api::{Bytes, LogIndex, Snapshot, StorageError};

use super::codec::{DecodeError, PutLe, Reader};
use super::fsio::read_file;

const MAGIC: &[u8; 8] = b"CSTOSNAP";
const HEADER_BYTES: usize = 8 + 4 + 8 + 4;
const PREFIX: &str = "snap-";
const SUFFIX: &str = ".snap";

/// Encoding, naming and reading of snapshot files.
#[derive(Debug)]
pub(crate) struct SnapshotFile;

impl SnapshotFile {
    /// File name of the snapshot at `index`.
    pub(crate) fn name(index: LogIndex) -> String {
        format!("{PREFIX}{index:020}{SUFFIX}")
    }

    /// The index a snapshot file name stands for, if it is one.
    pub(crate) fn parse_name(name: &str) -> Option<LogIndex> {
        let digits = name.strip_prefix(PREFIX)?.strip_suffix(SUFFIX)?;
        if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        digits.parse().ok()
    }

    /// Everything but the data: header and metadata. Write this, then
    /// `snapshot.data`.
    pub(crate) fn encode_head(snapshot: &Snapshot) -> Result<Vec<u8>, StorageError> {
        let membership = postcard::to_allocvec(&snapshot.membership).map_err(|error| {
            StorageError::InvalidWrite(format!("snapshot membership does not encode: {error}"))
        })?;
        let mut meta = Vec::new();
        meta.put_u64(snapshot.index);
        meta.put_u64(snapshot.epoch);
        meta.put_bytes(&membership);
        meta.put_bytes(&snapshot.protocol_state);
        let meta_len = u32::try_from(meta.len())
            .map_err(|_| StorageError::InvalidWrite("snapshot metadata too large".into()))?;
        let data_len = snapshot.data.len() as u64;
        let mut crc = crc32c::crc32c(&meta_len.to_le_bytes());
        crc = crc32c::crc32c_append(crc, &data_len.to_le_bytes());
        crc = crc32c::crc32c_append(crc, &meta);
        crc = crc32c::crc32c_append(crc, &snapshot.data);
        let mut head = Vec::with_capacity(HEADER_BYTES + meta.len());
        head.extend_from_slice(MAGIC);
        head.put_u32(meta_len);
        head.put_u64(data_len);
        head.put_u32(crc);
        head.extend_from_slice(&meta);
        Ok(head)
    }

    fn decode(bytes: &[u8]) -> Result<Snapshot, DecodeError> {
        let mut reader = Reader::new(bytes);
        if reader.take(8, "magic")? != MAGIC {
            return Err(DecodeError("wrong magic".into()));
        }
        let meta_len = reader.u32("meta length")?;
        let data_len = reader.u64("data length")?;
        let crc = reader.u32("checksum")?;
        let meta = reader.take(meta_len as usize, "metadata")?;
        let data_len =
            usize::try_from(data_len).map_err(|_| DecodeError("data too large".into()))?;
        let data = reader.take(data_len, "data")?;
        reader.finish("snapshot file")?;
        let mut expected = crc32c::crc32c(&meta_len.to_le_bytes());
        expected = crc32c::crc32c_append(expected, &(data_len as u64).to_le_bytes());
        expected = crc32c::crc32c_append(expected, meta);
        expected = crc32c::crc32c_append(expected, data);
        if expected != crc {
            return Err(DecodeError("checksum mismatch".into()));
        }
        let mut meta = Reader::new(meta);
        let index = meta.u64("index")?;
        let epoch = meta.u64("epoch")?;
        let membership = postcard::from_bytes(meta.bytes("membership")?)
            .map_err(|error| DecodeError(format!("membership does not decode: {error}")))?;
        let protocol_state = Bytes::copy_from_slice(meta.bytes("protocol state")?);
        meta.finish("snapshot metadata")?;
        Ok(Snapshot {
            index,
            epoch,
            membership,
            protocol_state,
            data: Bytes::copy_from_slice(data),
        })
    }

    /// Reads and checks the snapshot file at `path`, whose name says
    /// `index`. Snapshot files are fsynced before being renamed into place,
    /// so a bad one is corruption, never a torn write.
    pub(crate) fn read(path: &Path, index: LogIndex) -> Result<Snapshot, StorageError> {
        let corrupt = |reason: String| StorageError::Corrupt {
            segment: PathBuf::from(path),
            offset: 0,
            reason,
        };
        let bytes = read_file(path)?;
        let snapshot = SnapshotFile::decode(&bytes)
            .map_err(|error| corrupt(format!("snapshot file does not decode: {error}")))?;
        if snapshot.index != index {
            return Err(corrupt(format!(
                "snapshot file named for index {index} holds index {}",
                snapshot.index
            )));
        }
        Ok(snapshot)
    }
}

#[cfg(test)]
mod tests {
    use consensus_api::Membership;

    use super::*;

    fn snapshot() -> Snapshot {
        Snapshot {
            index: 42,
            epoch: 7,
            membership: Membership::with_learners([1, 2, 3], [9]),
            protocol_state: Bytes::from_static(b"window=3"),
            data: Bytes::from_static(b"state machine bytes"),
        }
    }

    fn encode(snapshot: &Snapshot) -> Vec<u8> {
        let mut bytes = SnapshotFile::encode_head(snapshot).unwrap();
        bytes.extend_from_slice(&snapshot.data);
        bytes
    }

    #[test]
    fn round_trip_and_names() {
        let snapshot = snapshot();
        assert_eq!(SnapshotFile::decode(&encode(&snapshot)).unwrap(), snapshot);
        let name = SnapshotFile::name(42);
        assert_eq!(SnapshotFile::parse_name(&name), Some(42));
        assert_eq!(SnapshotFile::parse_name("snap-42.snap"), None);
        assert_eq!(SnapshotFile::parse_name(&format!("{name}.tmp")), None);
    }

    #[test]
    fn every_flip_and_cut_is_detected() {
        let bytes = encode(&snapshot());
        for cut in 0..bytes.len() {
            assert!(SnapshotFile::decode(&bytes[..cut]).is_err(), "cut {cut}");
        }
        for bit in 0..bytes.len() * 8 {
            let mut bad = bytes.clone();
            bad[bit / 8] ^= 1 << (bit % 8);
            assert!(SnapshotFile::decode(&bad).is_err(), "bit {bit}");
        }
    }
}
