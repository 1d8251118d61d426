//! The data-directory identity file `IDENTITY`: format version, and the
//! node and cluster the directory belongs to. Written once, when the
//! directory is created; checked on every open.

use std::path::Path;

use consensus_api::{NodeId, StorageError};

use super::codec::{seal, unseal, DecodeError, PutLe, Reader};
use super::failpoint::Faults;
use super::fsio::{read_file, write_atomically};
use super::options::DiskOptions;

/// File name of the identity file.
pub(crate) const IDENTITY_FILE: &str = "IDENTITY";

const MAGIC: &[u8; 8] = b"CSTOREID";

/// Version of the on-disk format (segments, records, snapshot and metadata
/// files) this build writes. Version 2 added the previous segment's length
/// to segment headers (`segment.rs`); nothing else changed.
pub(crate) const FORMAT_VERSION: u32 = 2;

/// The oldest format version this build reads. A directory in it is
/// upgraded on open: its identity file is rewritten with
/// [`FORMAT_VERSION`] before anything in the new format is written, so a
/// build that reads only the old version refuses it with a clear
/// [`StorageError::Mismatch`] rather than meeting new segment headers.
/// Its existing segments stay as they are and are read as they are.
pub(crate) const OLDEST_FORMAT_VERSION: u32 = 1;

/// What the identity file records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Identity {
    pub(crate) format_version: u32,
    pub(crate) node_id: Option<NodeId>,
    pub(crate) cluster_id: Option<String>,
}

impl Identity {
    /// The identity a new directory gets from the options.
    pub(crate) fn from_options(options: &DiskOptions) -> Identity {
        Identity {
            format_version: FORMAT_VERSION,
            node_id: options.node_id,
            cluster_id: options.cluster_id.clone(),
        }
    }

    fn encode(&self) -> Vec<u8> {
        let mut body = Vec::new();
        body.put_u32(self.format_version);
        match self.node_id {
            Some(id) => {
                body.put_u8(1);
                body.put_u64(id);
            }
            None => body.put_u8(0),
        }
        match &self.cluster_id {
            Some(id) => {
                body.put_u8(1);
                body.put_bytes(id.as_bytes());
            }
            None => body.put_u8(0),
        }
        seal(MAGIC, &body)
    }

    fn decode(bytes: &[u8]) -> Result<Identity, DecodeError> {
        let body = unseal(MAGIC, bytes)?;
        let mut reader = Reader::new(body);
        let format_version = reader.u32("format version")?;
        let node_id = match reader.u8("node id flag")? {
            0 => None,
            1 => Some(reader.u64("node id")?),
            other => return Err(DecodeError(format!("bad node id flag {other}"))),
        };
        let cluster_id = match reader.u8("cluster id flag")? {
            0 => None,
            1 => Some(
                String::from_utf8(reader.bytes("cluster id")?.to_vec())
                    .map_err(|_| DecodeError("cluster id is not UTF-8".into()))?,
            ),
            other => return Err(DecodeError(format!("bad cluster id flag {other}"))),
        };
        reader.finish("identity")?;
        Ok(Identity {
            format_version,
            node_id,
            cluster_id,
        })
    }

    /// Writes the identity file atomically.
    pub(crate) fn write(&self, dir: &Path, faults: &mut Faults) -> Result<(), StorageError> {
        write_atomically(dir, IDENTITY_FILE, &[&self.encode()], faults)
    }

    /// The same identity in the format this build writes.
    pub(crate) fn upgraded(&self) -> Identity {
        Identity {
            format_version: FORMAT_VERSION,
            ..self.clone()
        }
    }

    /// Reads the identity file and checks it against what the caller
    /// expects.
    pub(crate) fn read_and_check(
        dir: &Path,
        options: &DiskOptions,
    ) -> Result<Identity, StorageError> {
        let path = dir.join(IDENTITY_FILE);
        let bytes = read_file(&path)?;
        let identity = Identity::decode(&bytes).map_err(|error| {
            StorageError::Mismatch(format!(
                "{} is not a consensus-storage identity file: {error}",
                path.display()
            ))
        })?;
        if !(OLDEST_FORMAT_VERSION..=FORMAT_VERSION).contains(&identity.format_version) {
            return Err(StorageError::Mismatch(format!(
                "{} was written in format version {}, this build reads versions \
                 {OLDEST_FORMAT_VERSION} to {FORMAT_VERSION}: open it with a build that reads \
                 version {}",
                dir.display(),
                identity.format_version,
                identity.format_version
            )));
        }
        if let (Some(expected), Some(found)) = (options.node_id, identity.node_id) {
            if expected != found {
                return Err(StorageError::Mismatch(format!(
                    "{} belongs to node {found}, not node {expected}",
                    dir.display()
                )));
            }
        }
        if let (Some(expected), Some(found)) = (&options.cluster_id, &identity.cluster_id) {
            if expected != found {
                return Err(StorageError::Mismatch(format!(
                    "{} belongs to cluster {found:?}, not cluster {expected:?}",
                    dir.display()
                )));
            }
        }
        Ok(identity)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        for identity in [
            Identity {
                format_version: FORMAT_VERSION,
                node_id: Some(3),
                cluster_id: Some("prod-eu".into()),
            },
            Identity {
                format_version: 7,
                node_id: None,
                cluster_id: None,
            },
        ] {
            assert_eq!(Identity::decode(&identity.encode()).unwrap(), identity);
        }
    }
}
