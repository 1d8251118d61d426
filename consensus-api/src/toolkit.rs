//! The small toolkit every core shares: what is protocol-neutral and was
//! written once per core before (no protocol logic here).
//!
//! * [`CoreConfig::validate`]: one set of configuration rules for all four
//!   cores (a core with an extra rule of its own checks it after these);
//! * [`random_ticks`] and [`CoreConfig::random_election_timeout`]: the
//!   seeded randomized timeout, drawn from the core's own RNG;
//! * [`TicketCounter`]: the counter that numbers the tickets a core hands out;
//! * [`SnapshotChunks`] and [`snapshot_chunk`]: both ends of a chunked
//!   snapshot transfer, with one behaviour on a bad transfer, and
//!   [`SnapshotTransfer`]: the received bytes with the snapshot's metadata;
//! * [`encode_postcard`], [`decode_hard_state`] and
//!   [`decode_protocol_state`]: the encoding of a core's own durable
//!   metadata (its hard state, a snapshot's `protocol_state`).

use bytes::Bytes;
use rand::Rng;
use serde::de::DeserializeOwned;
use serde::Serialize;
use thiserror::Error;

use crate::core::CoreConfig;
use crate::error::RecoverError;
use crate::membership::Membership;
use crate::types::{LogIndex, Snapshot, Ticket};

impl CoreConfig {
    /// The rules every core's configuration obeys, checked by each core's
    /// `restore` before anything else (a core with a rule of its own, such
    /// as a node id that must fit in a ballot, checks it after these):
    ///
    /// * the node id is not 0 (reserved for "no node");
    /// * the election timeout and the heartbeat interval are at least one
    ///   tick, and a heartbeat comes more often than the shortest election
    ///   timeout (otherwise followers time out between heartbeats of a
    ///   healthy leader);
    /// * the election timeout's range `[min, max)` is not empty;
    /// * the batch, pipelining window, snapshot chunk and uncommitted
    ///   limits are at least one.
    pub fn validate(&self) -> Result<(), RecoverError> {
        let invalid = |what: String| Err(RecoverError::InvalidConfig(what));
        if self.id == 0 {
            return invalid("node id 0 is reserved".into());
        }
        if self.election_timeout_ticks_min == 0 || self.heartbeat_interval_ticks == 0 {
            return invalid(
                "election timeout and heartbeat interval must be at least one tick".into(),
            );
        }
        if self.heartbeat_interval_ticks >= self.election_timeout_ticks_min {
            return invalid(format!(
                "heartbeat interval ({}) must be shorter than the election timeout ({})",
                self.heartbeat_interval_ticks, self.election_timeout_ticks_min
            ));
        }
        if self.election_timeout_ticks_max <= self.election_timeout_ticks_min {
            return invalid(format!(
                "the election timeout range [{}, {}) is empty: \
                 election_timeout_ticks_max must be above election_timeout_ticks_min",
                self.election_timeout_ticks_min, self.election_timeout_ticks_max
            ));
        }
        if self.batch_entries_max == 0
            || self.inflight_messages_max == 0
            || self.snapshot_chunk_bytes == 0
            || self.uncommitted_entries_max == 0
        {
            return invalid(
                "batch, window, chunk and uncommitted limits must be at least one".into(),
            );
        }
        Ok(())
    }

    /// A fresh randomized election (failure-detection) timeout in
    /// `[election_timeout_ticks_min, election_timeout_ticks_max)`, drawn
    /// from the core's own seeded RNG (see [`random_ticks`]).
    pub fn random_election_timeout<R: Rng + ?Sized>(&self, rng: &mut R) -> u64 {
        random_ticks(
            rng,
            self.election_timeout_ticks_min,
            self.election_timeout_ticks_max,
        )
    }
}

/// A number of ticks drawn uniformly from `[min, max)` with the core's own
/// seeded RNG; `min`, without drawing, when the range is empty. Always the
/// same draw for the same RNG state, so a seed reproduces a run.
pub fn random_ticks<R: Rng + ?Sized>(rng: &mut R, min: u64, max: u64) -> u64 {
    if max <= min {
        return min;
    }
    rng.random_range(min..max)
}

/// Numbers the [`Ticket`]s a core hands out: 1, 2, 3, ... per incarnation.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TicketCounter {
    last: u64,
}

impl TicketCounter {
    /// The next ticket.
    pub fn next_ticket(&mut self) -> Ticket {
        self.last += 1;
        Ticket(self.last)
    }

    /// The last ticket handed out (`Ticket(0)` before the first).
    pub fn last(&self) -> Ticket {
        Ticket(self.last)
    }
}

/// The receiving side of a chunked snapshot transfer, written once for the
/// four cores: the bytes received so far of one snapshot, announced with
/// its total size and the CRC32C of the whole data. The protocol decides
/// which transfer a chunk belongs to (its own key: index, term or zxid,
/// sender) and what to answer; this only assembles and verifies.
///
/// Chunks are accepted strictly in order: a chunk at any other offset than
/// [`SnapshotChunks::received_bytes`] (a duplicate, or one after a gap) is
/// refused, and the core answers with where it stands.
///
/// **A bad transfer is dropped whole and asked again from offset 0**: when
/// the last byte arrived and the data does not match the announced checksum
/// (or the size), [`SnapshotChunks::finish`] returns
/// [`ChunkError::ChecksumMismatch`]; every core then forgets the partial
/// snapshot and asks its sender for the chunk at offset 0 (Raft:
/// `Receiving { next_offset: 0 }`; Multi-Paxos: a `SnapshotChunkResponse`
/// with `next_offset` 0; Paxos: a `CatchUp` without a cursor; ZAB:
/// `AckSnap` at offset 0). Nothing of a bad transfer is ever installed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SnapshotChunks {
    total_bytes: u64,
    checksum: u32,
    data: Vec<u8>,
}

/// Why a chunk or a finished transfer was refused.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Error)]
pub enum ChunkError {
    /// The chunk does not start where the received bytes end.
    #[error("chunk at offset {offset}, expected {expected}")]
    OutOfOrder {
        /// The chunk's offset.
        offset: u64,
        /// The offset the transfer needs next.
        expected: u64,
    },
    /// The chunk would end beyond the announced total size.
    #[error("chunk ends beyond the snapshot's {total_bytes} bytes")]
    TooLong {
        /// The announced total size.
        total_bytes: u64,
    },
    /// The whole data does not match the announced size and checksum.
    #[error("snapshot data does not match its checksum")]
    ChecksumMismatch,
}

impl SnapshotChunks {
    /// A new transfer of `total_bytes` bytes whose CRC32C is `checksum`.
    pub fn new(total_bytes: u64, checksum: u32) -> Self {
        SnapshotChunks {
            total_bytes,
            checksum,
            data: Vec::new(),
        }
    }

    /// Whether a chunk of `len` bytes at `offset` fits in a snapshot of
    /// `total_bytes` (the well-formedness check every core makes on a
    /// chunk before anything else).
    pub fn fits(offset: u64, len: usize, total_bytes: u64) -> bool {
        offset
            .checked_add(len as u64)
            .is_some_and(|end| end <= total_bytes)
    }

    /// The announced total size.
    pub fn total_bytes(&self) -> u64 {
        self.total_bytes
    }

    /// The announced CRC32C of the whole data.
    pub fn checksum(&self) -> u32 {
        self.checksum
    }

    /// Bytes received so far: the offset of the next chunk wanted.
    pub fn received_bytes(&self) -> u64 {
        self.data.len() as u64
    }

    /// Whether every announced byte has arrived.
    pub fn is_complete(&self) -> bool {
        self.received_bytes() >= self.total_bytes
    }

    /// Appends the chunk at `offset` if it is the next one; returns the
    /// bytes received so far.
    pub fn push(&mut self, offset: u64, data: &[u8]) -> Result<u64, ChunkError> {
        let expected = self.received_bytes();
        if offset != expected {
            return Err(ChunkError::OutOfOrder { offset, expected });
        }
        if !Self::fits(offset, data.len(), self.total_bytes) {
            return Err(ChunkError::TooLong {
                total_bytes: self.total_bytes,
            });
        }
        self.data.extend_from_slice(data);
        Ok(self.received_bytes())
    }

    /// The whole data, if it has the announced size and checksum (see the
    /// type's docs for what a core does otherwise).
    pub fn finish(self) -> Result<Bytes, ChunkError> {
        if self.received_bytes() != self.total_bytes || crc32c::crc32c(&self.data) != self.checksum
        {
            return Err(ChunkError::ChecksumMismatch);
        }
        Ok(Bytes::from(self.data))
    }
}

/// The receiving side of one snapshot transfer with the snapshot's metadata
/// (what the transfer's first chunk announced): for a core whose chunks
/// carry the [`Snapshot`]'s own fields (index, epoch, membership, protocol
/// state), so that the whole snapshot comes out at the end.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SnapshotTransfer {
    /// Last index the snapshot covers.
    pub index: LogIndex,
    /// Epoch of the entry at `index`.
    pub epoch: u64,
    /// The membership the snapshot records.
    pub membership: Membership,
    /// The protocol's own metadata.
    pub protocol_state: Bytes,
    /// The bytes so far, with the announced size and CRC32C.
    pub chunks: SnapshotChunks,
}

impl SnapshotTransfer {
    /// A new transfer of the snapshot at `index` (with `epoch`,
    /// `membership` and `protocol_state`) whose data has `total_bytes`
    /// bytes and the CRC32C `checksum`.
    pub fn new(
        index: LogIndex,
        epoch: u64,
        membership: Membership,
        protocol_state: Bytes,
        total_bytes: u64,
        checksum: u32,
    ) -> Self {
        SnapshotTransfer {
            index,
            epoch,
            membership,
            protocol_state,
            chunks: SnapshotChunks::new(total_bytes, checksum),
        }
    }

    /// Whether a chunk announcing the snapshot at `index` with `checksum`
    /// and `total_bytes` belongs to this transfer.
    pub fn is_same(&self, index: LogIndex, checksum: u32, total_bytes: u64) -> bool {
        self.index == index
            && self.chunks.checksum() == checksum
            && self.chunks.total_bytes() == total_bytes
    }

    /// The whole snapshot, if its data has the announced size and checksum
    /// (see [`SnapshotChunks::finish`]).
    pub fn finish(self) -> Result<Snapshot, ChunkError> {
        let data = self.chunks.finish()?;
        Ok(Snapshot {
            index: self.index,
            epoch: self.epoch,
            membership: self.membership,
            protocol_state: self.protocol_state,
            data,
        })
    }
}

/// The sending side: the chunk of at most `chunk_bytes` bytes of `data`
/// starting at `offset` (clamped to the end), and whether it is the last.
pub fn snapshot_chunk(data: &Bytes, offset: u64, chunk_bytes: usize) -> (Bytes, bool) {
    let total = data.len();
    let start = usize::try_from(offset).unwrap_or(total).min(total);
    let end = start.saturating_add(chunk_bytes.max(1)).min(total);
    (data.slice(start..end), end == total)
}

/// The postcard bytes of a core's own durable metadata: its hard state, or
/// a snapshot's `protocol_state`. (Encoding into a `Vec` cannot fail.)
pub fn encode_postcard<T: Serialize + ?Sized>(value: &T) -> Bytes {
    Bytes::from(postcard::to_allocvec(value).expect("encoding into a Vec cannot fail"))
}

/// Decodes a hard state written by [`encode_postcard`]
/// ([`RecoverError::CorruptHardState`] when it does not decode).
pub fn decode_hard_state<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, RecoverError> {
    postcard::from_bytes(bytes).map_err(|e| RecoverError::CorruptHardState(e.to_string()))
}

/// Decodes a snapshot's `protocol_state` written by [`encode_postcard`]
/// ([`RecoverError::CorruptSnapshot`] when it does not decode).
pub fn decode_protocol_state<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, RecoverError> {
    postcard::from_bytes(bytes).map_err(|e| RecoverError::CorruptSnapshot(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Membership;

    fn config() -> CoreConfig {
        CoreConfig::new(1, Membership::new([1, 2, 3]))
    }

    #[test]
    fn the_defaults_are_valid() {
        assert_eq!(config().validate(), Ok(()));
    }

    #[test]
    fn each_rule_refuses() {
        let cases: [fn(&mut CoreConfig); 8] = [
            |c| c.id = 0,
            |c| c.election_timeout_ticks_min = 0,
            |c| c.heartbeat_interval_ticks = 0,
            |c| c.heartbeat_interval_ticks = c.election_timeout_ticks_min,
            |c| c.election_timeout_ticks_max = c.election_timeout_ticks_min,
            |c| c.batch_entries_max = 0,
            |c| c.inflight_messages_max = 0,
            |c| c.snapshot_chunk_bytes = 0,
        ];
        for (i, break_it) in cases.iter().enumerate() {
            let mut c = config();
            break_it(&mut c);
            assert!(
                matches!(c.validate(), Err(RecoverError::InvalidConfig(_))),
                "case {i}"
            );
        }
        let mut c = config();
        c.uncommitted_entries_max = 0;
        assert!(c.validate().is_err());
    }

    #[test]
    fn chunks_assemble_in_order_and_verify() {
        let data = Bytes::from_static(b"hello snapshot");
        let mut chunks = SnapshotChunks::new(data.len() as u64, crc32c::crc32c(&data));
        let (first, last) = snapshot_chunk(&data, 0, 5);
        assert!(!last);
        assert_eq!(chunks.push(0, &first), Ok(5));
        assert_eq!(
            chunks.push(0, &first),
            Err(ChunkError::OutOfOrder {
                offset: 0,
                expected: 5
            })
        );
        let (rest, last) = snapshot_chunk(&data, 5, 100);
        assert!(last);
        assert_eq!(chunks.push(5, &rest), Ok(data.len() as u64));
        assert!(chunks.is_complete());
        assert_eq!(chunks.finish(), Ok(data.clone()));

        let mut bad = SnapshotChunks::new(data.len() as u64, 0);
        bad.push(0, &data).unwrap();
        assert_eq!(bad.finish(), Err(ChunkError::ChecksumMismatch));
        assert!(!SnapshotChunks::fits(10, 5, 14));
        assert!(SnapshotChunks::fits(9, 5, 14));
    }

    #[test]
    fn a_transfer_gives_the_whole_snapshot() {
        let data = Bytes::from_static(b"state");
        let membership = Membership::new([1, 2, 3]);
        let state = Bytes::from_static(b"meta");
        let mut transfer = SnapshotTransfer::new(
            7,
            2,
            membership.clone(),
            state.clone(),
            data.len() as u64,
            crc32c::crc32c(&data),
        );
        assert!(transfer.is_same(7, crc32c::crc32c(&data), data.len() as u64));
        assert!(!transfer.is_same(8, crc32c::crc32c(&data), data.len() as u64));
        transfer.chunks.push(0, &data).unwrap();
        let snapshot = transfer.finish().unwrap();
        assert_eq!(
            snapshot,
            Snapshot {
                index: 7,
                epoch: 2,
                membership,
                protocol_state: state,
                data,
            }
        );
    }

    #[test]
    fn postcard_helpers_round_trip_and_refuse_garbage() {
        let encoded = encode_postcard(&(3u64, 4u64));
        assert_eq!(encoded, Bytes::from(vec![3, 4]));
        assert_eq!(decode_hard_state::<(u64, u64)>(&encoded), Ok((3, 4)));
        assert!(matches!(
            decode_hard_state::<(u64, u64)>(&[0xff]),
            Err(RecoverError::CorruptHardState(_))
        ));
        assert!(matches!(
            decode_protocol_state::<(u64, u64)>(&[]),
            Err(RecoverError::CorruptSnapshot(_))
        ));
    }

    #[test]
    fn tickets_count_from_one() {
        let mut counter = TicketCounter::default();
        assert_eq!(counter.last(), Ticket(0));
        assert_eq!(counter.next_ticket(), Ticket(1));
        assert_eq!(counter.next_ticket(), Ticket(2));
        assert_eq!(counter.last(), Ticket(2));
    }
}
