//! Log compaction and snapshot transfer.
//!
//! [`Core::compact`](consensus_api::Core::compact) turns the driver's state
//! machine image at an applied slot into a [`Snapshot`]: its index and the
//! epoch of that slot, the membership in force after it (the configuration
//! deciding the next slot), and an empty `protocol_state` (configurations
//! take effect the slot after their own, so nothing else is pending at a
//! chosen slot). The slots it covers are dropped from memory.
//!
//! A node asked for compacted slots answers with its snapshot in chunks of
//! `snapshot_chunk_bytes` ([`MessageClass::Bulk`](consensus_api::MessageClass)),
//! each carrying the metadata, its offset and the CRC32C of the whole data.
//! The receiver accepts chunks in order only, asks for the next one with a
//! [`SnapshotChunkResponse`], verifies the checksum at the end and installs
//! the snapshot only if it is ahead of its chosen frontier: a snapshot never
//! moves `commit` or `applied` backwards.

use bytes::Bytes;
use consensus_api::{
    snapshot_chunk, LogIndex, NodeId, Rejected, Snapshot, SnapshotChunks, SnapshotTransfer,
};

use crate::core::MultiPaxosCore;
use crate::message::{CatchUp, Message, SnapshotChunk, SnapshotChunkResponse};

/// A snapshot being received.
#[derive(Debug)]
pub(crate) struct IncomingSnapshot {
    /// The sender.
    pub(crate) from: NodeId,
    /// The snapshot's metadata (membership in force after its last slot)
    /// and the bytes so far.
    pub(crate) transfer: SnapshotTransfer,
}

impl IncomingSnapshot {
    /// Asks the sender for the chunk after the bytes received so far.
    pub(crate) fn next_chunk_request(&self) -> SnapshotChunkResponse {
        SnapshotChunkResponse {
            index: self.transfer.index,
            checksum: self.transfer.chunks.checksum(),
            next_offset: self.transfer.chunks.received_bytes(),
        }
    }
}

impl MultiPaxosCore {
    /// `Core::compact`.
    pub(crate) fn compact_log(
        &mut self,
        index: LogIndex,
        data: Bytes,
    ) -> Result<Snapshot, Rejected> {
        let snapshot_index = self.log.snapshot_index();
        let invalid = Rejected::InvalidCompaction {
            index,
            applied: self.applied_index,
            snapshot: snapshot_index,
        };
        if index <= snapshot_index || index > self.applied_index {
            return Err(invalid);
        }
        let Some(epoch) = self.log.epoch_at(index) else {
            return Err(invalid);
        };
        let snapshot = Snapshot {
            index,
            epoch,
            membership: self.log.membership_at(index + 1).clone(),
            protocol_state: Bytes::new(),
            data,
        };
        let checksum = crc32c::crc32c(&snapshot.data);
        self.log.install_snapshot(snapshot.clone(), checksum);
        self.out.append = self.out.append.split_off(&(index + 1));
        Ok(snapshot)
    }

    /// Sends the chunk of the latest snapshot starting at `offset`.
    pub(crate) fn send_snapshot_chunk(&mut self, to: NodeId, offset: u64) {
        let Some(snapshot) = self.log.snapshot() else {
            return;
        };
        let data = self.log.snapshot_data();
        let total = data.len() as u64;
        let offset = if offset > total { 0 } else { offset };
        let chunk = SnapshotChunk {
            index: snapshot.index,
            epoch: snapshot.epoch,
            membership: snapshot.membership.clone(),
            protocol_state: snapshot.protocol_state.clone(),
            total_bytes: total,
            checksum: self.log.snapshot_checksum(),
            offset,
            data: snapshot_chunk(&data, offset, self.config.snapshot_chunk_bytes).0,
        };
        self.send(to, Message::SnapshotChunk(chunk));
    }

    /// A receiver asks for the next chunk.
    pub(crate) fn on_snapshot_chunk_response(
        &mut self,
        from: NodeId,
        response: SnapshotChunkResponse,
    ) {
        let Some(snapshot) = self.log.snapshot() else {
            return;
        };
        let same =
            snapshot.index == response.index && self.log.snapshot_checksum() == response.checksum;
        let total = snapshot.data.len() as u64;
        if !same {
            // Compacted again meanwhile: start over with the newer snapshot.
            self.send_snapshot_chunk(from, 0);
        } else if response.next_offset < total {
            self.send_snapshot_chunk(from, response.next_offset);
        }
    }

    /// A chunk arrives: append it if it is the next one, install when whole.
    pub(crate) fn on_snapshot_chunk(&mut self, from: NodeId, chunk: SnapshotChunk) {
        if !SnapshotChunks::fits(chunk.offset, chunk.data.len(), chunk.total_bytes)
            || chunk.index == 0
        {
            tracing::warn!(
                node = self.config.id,
                from,
                "malformed snapshot chunk dropped"
            );
            return;
        }
        if chunk.index <= self.log.commit() {
            // Already known chosen: nothing to learn from it.
            self.incoming_snapshot = None;
            return;
        }
        if chunk.offset == 0 {
            self.incoming_snapshot = Some(IncomingSnapshot {
                from,
                transfer: SnapshotTransfer::new(
                    chunk.index,
                    chunk.epoch,
                    chunk.membership.clone(),
                    chunk.protocol_state.clone(),
                    chunk.total_bytes,
                    chunk.checksum,
                ),
            });
        }
        let Some(incoming) = self.incoming_snapshot.as_mut() else {
            // A middle chunk without its beginning: ask again from the start.
            let from_slot = self.log.commit() + 1;
            self.send(from, Message::CatchUp(CatchUp { from: from_slot }));
            return;
        };
        let transfer = &mut incoming.transfer;
        let same_transfer = incoming.from == from
            && transfer.is_same(chunk.index, chunk.checksum, chunk.total_bytes);
        if !same_transfer || transfer.chunks.push(chunk.offset, &chunk.data).is_err() {
            return;
        }
        if let Some(state) = &mut self.catch_up {
            state.requested_at = self.now;
        }
        if !transfer.chunks.is_complete() {
            let response = incoming.next_chunk_request();
            self.send(from, Message::SnapshotChunkResponse(response));
            return;
        }
        let Some(incoming) = self.incoming_snapshot.take() else {
            return;
        };
        let index = incoming.transfer.index;
        let checksum = incoming.transfer.chunks.checksum();
        // A bad transfer restarts from offset 0 (see `SnapshotChunks`).
        let Ok(snapshot) = incoming.transfer.finish() else {
            tracing::warn!(
                node = self.config.id,
                from,
                index,
                "snapshot checksum mismatch: transfer restarts"
            );
            let response = SnapshotChunkResponse {
                index,
                checksum,
                next_offset: 0,
            };
            self.send(from, Message::SnapshotChunkResponse(response));
            return;
        };
        self.install_received_snapshot(snapshot, checksum);
        self.catch_up_progressed(from, index);
    }

    fn install_received_snapshot(&mut self, snapshot: Snapshot, checksum: u32) {
        if snapshot.index <= self.log.commit() {
            return;
        }
        tracing::debug!(
            node = self.config.id,
            index = snapshot.index,
            "installing a snapshot"
        );
        let index = snapshot.index;
        self.log.install_snapshot(snapshot.clone(), checksum);
        self.applied_index = index;
        self.out.append = self.out.append.split_off(&(index + 1));
        self.out.snapshot = Some(snapshot);
        // Entries above the snapshot that a leader already vouched for are
        // learned at its next heartbeat.
        self.after_commit_advance();
    }
}
