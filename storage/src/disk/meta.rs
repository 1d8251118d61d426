//! The metadata file `META`: the hard-state checkpoint and the first live
//! segment. Replaced atomically (temp file + fsync + rename + directory
//! fsync) before any segment is deleted, so deleting segments never loses
//! the hard state they held.

use std::path::Path;

use consensus_api::{Bytes, LogIndex, StorageError};

use super::codec::{seal, unseal, DecodeError, PutLe, Reader};
use super::failpoint::Faults;
use super::fsio::{read_file, write_atomically};

/// File name of the metadata file.
pub(crate) const META_FILE: &str = "META";

const MAGIC: &[u8; 8] = b"CSTOMETA";

/// Content of the metadata file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Meta {
    /// Sequence number of the oldest segment that must exist; older ones
    /// are compacted away (a leftover one is deleted on open).
    pub(crate) first_segment: u64,
    /// The snapshot index that justified the last compaction: the snapshot
    /// on disk must cover at least this.
    pub(crate) compacted_through: LogIndex,
    /// The latest hard state when the metadata was written (a hard-state
    /// record in a live segment supersedes it).
    pub(crate) hard_state: Option<Bytes>,
}

impl Meta {
    /// The metadata of a new directory.
    pub(crate) fn initial() -> Meta {
        Meta {
            first_segment: 1,
            compacted_through: 0,
            hard_state: None,
        }
    }

    fn encode(&self) -> Vec<u8> {
        let mut body = Vec::new();
        body.put_u64(self.first_segment);
        body.put_u64(self.compacted_through);
        match &self.hard_state {
            Some(hard_state) => {
                body.put_u8(1);
                body.put_bytes(hard_state);
            }
            None => body.put_u8(0),
        }
        seal(MAGIC, &body)
    }

    fn decode(bytes: &[u8]) -> Result<Meta, DecodeError> {
        let body = unseal(MAGIC, bytes)?;
        let mut reader = Reader::new(body);
        let first_segment = reader.u64("first segment")?;
        let compacted_through = reader.u64("compacted through")?;
        let hard_state = match reader.u8("hard state flag")? {
            0 => None,
            1 => Some(Bytes::copy_from_slice(reader.bytes("hard state")?)),
            other => return Err(DecodeError(format!("bad hard state flag {other}"))),
        };
        reader.finish("meta")?;
        if first_segment == 0 {
            return Err(DecodeError("first segment 0".into()));
        }
        Ok(Meta {
            first_segment,
            compacted_through,
            hard_state,
        })
    }

    /// Replaces the metadata file atomically.
    pub(crate) fn write(&self, dir: &Path, faults: &mut Faults) -> Result<(), StorageError> {
        write_atomically(dir, META_FILE, &[&self.encode()], faults)
    }

    /// Reads the metadata file; a bad one is [`StorageError::Corrupt`] (it is
    /// only ever replaced atomically, so it cannot be torn).
    pub(crate) fn read(dir: &Path) -> Result<Meta, StorageError> {
        let path = dir.join(META_FILE);
        let bytes = read_file(&path)?;
        Meta::decode(&bytes).map_err(|error| StorageError::Corrupt {
            segment: path,
            offset: 0,
            reason: format!("metadata file does not decode: {error}"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        for meta in [
            Meta::initial(),
            Meta {
                first_segment: 12,
                compacted_through: 4000,
                hard_state: Some(Bytes::from_static(b"term=9 vote=2")),
            },
        ] {
            assert_eq!(Meta::decode(&meta.encode()).unwrap(), meta);
        }
    }
}
