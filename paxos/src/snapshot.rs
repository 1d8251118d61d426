//! Log compaction and snapshot transfer.
//!
//! `compact(applied, data)` turns the chosen prefix `1..=applied` into a
//! [`Snapshot`]: the state machine's data, the membership in force at
//! `applied`, and (in `protocol_state`) the configuration changes chosen at
//! or below `applied` that take effect above it. Stored values up to
//! `applied` are dropped; they were chosen, so no acceptor state is lost
//! that Paxos still needs (requests for those slots are answered with a
//! `Learn` beacon, which sends the requester to catch up).
//!
//! A learner that asks for values below a peer's snapshot (`CatchUp`) gets
//! the snapshot in chunks of `snapshot_chunk_bytes` (`MessageClass::Bulk`),
//! pulled one at a time: each `CatchUp` carries the receiver's cursor. Every
//! chunk carries the CRC32C of the whole data, checked before installing.
//! Installing never moves the frontier or the applied index backwards.

use bytes::Bytes;
use consensus_api::{
    encode_postcard, snapshot_chunk, LogIndex, NodeId, Rejected, Snapshot, SnapshotChunks,
    SnapshotTransfer,
};

use crate::core::PaxosCore;
use crate::membership::{Configs, PendingConfigs};
use crate::message::{SnapshotChunk, SnapshotCursor};

impl PaxosCore {
    /// `Core::compact`.
    pub(crate) fn take_snapshot(
        &mut self,
        applied_index: LogIndex,
        data: Bytes,
    ) -> Result<Snapshot, Rejected> {
        let snapshot_index = self.snapshot_index();
        if applied_index > self.applied_index || applied_index <= snapshot_index {
            return Err(Rejected::InvalidCompaction {
                index: applied_index,
                applied: self.applied_index,
                snapshot: snapshot_index,
            });
        }
        let epoch = self
            .log
            .get(&applied_index)
            .map(|e| e.epoch)
            .expect("an applied slot above the snapshot has its value stored");
        let protocol_state = encode_postcard(&self.configs.pending_after(applied_index));
        let snapshot = Snapshot {
            index: applied_index,
            epoch,
            membership: self.configs.at(applied_index).clone(),
            protocol_state,
            data,
        };
        self.log = self.log.split_off(&(applied_index + 1));
        self.log_origins = self.log_origins.split_off(&(applied_index + 1));
        self.output.append.retain(|slot, _| *slot > applied_index);
        self.configs.compact(applied_index);
        self.snapshot = Some(snapshot.clone());
        Ok(snapshot)
    }

    /// Where an incoming snapshot transfer stands.
    pub(crate) fn incoming_cursor(&self) -> Option<SnapshotCursor> {
        self.incoming.as_ref().map(|i| SnapshotCursor {
            index: i.index,
            offset: i.chunks.received_bytes(),
        })
    }

    /// Sends the chunk of the current snapshot at `cursor` (from the start
    /// when the cursor is for another snapshot).
    pub(crate) fn send_snapshot_chunk(&mut self, to: NodeId, cursor: Option<SnapshotCursor>) {
        let Some(snapshot) = &self.snapshot else {
            return;
        };
        let total = snapshot.data.len() as u64;
        let offset = match cursor {
            Some(c) if c.index == snapshot.index && c.offset <= total => c.offset,
            _ => 0,
        };
        let chunk = SnapshotChunk {
            index: snapshot.index,
            epoch: snapshot.epoch,
            membership: snapshot.membership.clone(),
            protocol_state: snapshot.protocol_state.clone(),
            total_bytes: total,
            checksum: crc32c::crc32c(&snapshot.data),
            offset,
            data: snapshot_chunk(&snapshot.data, offset, self.config.snapshot_chunk_bytes).0,
        };
        self.output.to(to).snapshot_chunk = Some(chunk);
    }

    /// A chunk arrives.
    pub(crate) fn on_snapshot_chunk(&mut self, from: NodeId, chunk: SnapshotChunk) {
        self.answered(from);
        if chunk.index <= self.frontier {
            return;
        }
        if !SnapshotChunks::fits(chunk.offset, chunk.data.len(), chunk.total_bytes) {
            tracing::debug!(node = self.me, from, "malformed snapshot chunk dropped");
            return;
        }
        let same = self
            .incoming
            .as_ref()
            .is_some_and(|i| i.is_same(chunk.index, chunk.checksum, chunk.total_bytes));
        if !same {
            if chunk.offset != 0 {
                self.incoming = None;
                self.send_catch_up(from);
                return;
            }
            self.incoming = Some(SnapshotTransfer::new(
                chunk.index,
                chunk.epoch,
                chunk.membership.clone(),
                chunk.protocol_state.clone(),
                chunk.total_bytes,
                chunk.checksum,
            ));
        }
        let incoming = self.incoming.as_mut().expect("set above");
        if incoming.chunks.push(chunk.offset, &chunk.data).is_err() {
            // A duplicate or a gap: ask again from where we are.
            self.send_catch_up(from);
            return;
        }
        if !incoming.chunks.is_complete() {
            self.send_catch_up(from);
            return;
        }
        let incoming = self.incoming.take().expect("set above");
        // A bad transfer restarts from offset 0 (see `SnapshotChunks`):
        // without a transfer in progress the catch-up carries no cursor.
        let index = incoming.index;
        let Ok(snapshot) = incoming.finish() else {
            tracing::warn!(
                node = self.me,
                from,
                index,
                "snapshot checksum mismatch: transfer restarts"
            );
            self.send_catch_up(from);
            return;
        };
        let pending = match PendingConfigs::decode(&snapshot.protocol_state) {
            Ok(pending) => pending,
            Err(error) => {
                tracing::warn!(node = self.me, from, %error, "snapshot protocol state does not decode");
                return;
            }
        };
        if snapshot.index > crate::core::RESTORED_INDEX_MAX {
            // No real log gets there; the slot arithmetic needs room above it
            // (found by paxos/tests/bad_input.rs: `index + 1` overflowed).
            tracing::warn!(node = self.me, from, index, "snapshot index out of range");
            return;
        }
        if snapshot.membership.validate().is_err() {
            tracing::warn!(node = self.me, from, "snapshot membership is invalid");
            return;
        }
        self.install_snapshot(snapshot, pending);
    }

    /// Installs a snapshot above the frontier.
    fn install_snapshot(&mut self, snapshot: Snapshot, pending: PendingConfigs) {
        let index = snapshot.index;
        debug_assert!(index > self.frontier, "only a snapshot ahead is installed");
        tracing::debug!(node = self.me, index, "installing a snapshot");
        self.configs = Configs::from_snapshot(snapshot.membership.clone(), pending);
        self.log = self.log.split_off(&(index + 1));
        self.log_origins = self.log_origins.split_off(&(index + 1));
        self.output.append.retain(|slot, _| *slot > index);
        // The state machine is restored from the snapshot before `committed`
        // is applied: nothing at or below it may be applied on top.
        self.output.committed.clear();
        self.frontier = index;
        self.applied_index = index;
        self.output.hard_state_dirty = true;
        self.acceptor.promises = self.acceptor.promises.split_off(&(index + 1));
        self.acceptor.highest_accepted = self.acceptor.highest_accepted.max(index);
        self.learner.chosen_above = self.learner.chosen_above.split_off(&(index + 1));
        self.learner.votes = self.learner.votes.split_off(&(index + 1));
        self.learner.missing = self.learner.missing.split_off(&(index + 1));
        self.learner.frontier_moved_at = self.now;
        self.learner.gap_deadline = None;
        self.observe_slot(index);
        self.drop_instances_through(index);
        self.snapshot = Some(snapshot.clone());
        self.output.snapshot = Some(snapshot);
        self.advance_frontier();
        self.complete_membership_changes();
    }
}
