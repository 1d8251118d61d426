//! Log compaction and InstallSnapshot (Raft paper §7).
//!
//! The driver snapshots its state machine at an applied index and hands the
//! bytes to [`Core::compact`](consensus_api::Core::compact); the core drops
//! the covered log prefix and keeps the snapshot to send to followers whose
//! `nextIndex` falls below it. The leader streams it in chunks of
//! `snapshot_chunk_bytes`, one outstanding at a time, each carrying its
//! offset and the CRC32C of the whole snapshot; the follower assembles them
//! in order, answers with the next offset it expects (so a lost or
//! duplicated chunk costs one resend), verifies the checksum, and installs
//! the snapshot. A follower refuses a snapshot that is not newer than what
//! it has committed; if its log already holds the snapshot's last entry it
//! keeps its log and only advances its commit index. Commit and applied
//! indexes only ever move forward (`max`).

use consensus_api::{
    snapshot_chunk, Bytes, LogIndex, NodeId, Rejected, Snapshot, SnapshotChunks, SnapshotTransfer,
};

use crate::core::{RaftCore, Role};
use crate::message::{InstallSnapshot, InstallSnapshotResponse, Message, SnapshotOutcome};
use crate::progress::ProgressState;

impl RaftCore {
    /// `compact`: record the state machine's snapshot at `applied_index`
    /// and drop the log prefix it covers.
    pub(crate) fn compact_log(
        &mut self,
        applied_index: LogIndex,
        data: Bytes,
    ) -> Result<Snapshot, Rejected> {
        if applied_index > self.applied_index || applied_index <= self.log.snapshot_index() {
            return Err(Rejected::InvalidCompaction {
                index: applied_index,
                applied: self.applied_index,
                snapshot: self.log.snapshot_index(),
            });
        }
        tracing::debug!(id = self.id, index = applied_index, "log compacted");
        Ok(self.log.compact(applied_index, Bytes::new(), data))
    }

    /// Sends the next chunk of the snapshot to `peer` (stop-and-wait).
    pub(crate) fn send_snapshot_chunk(&mut self, peer: NodeId) {
        let chunk_bytes = self.config.snapshot_chunk_bytes.max(1);
        let term = self.term;
        let checksum = self.log.snapshot_checksum();
        let Role::Leader(leader) = &mut self.role else {
            return;
        };
        let Some(progress) = leader.progress.get_mut(&peer) else {
            return;
        };
        let ProgressState::Snapshot(transfer) = &mut progress.state else {
            return;
        };
        let Some(snapshot) = self.log.snapshot() else {
            return;
        };
        if transfer.index != snapshot.index {
            // The leader compacted again meanwhile: send the newer one.
            transfer.index = snapshot.index;
            transfer.offset = 0;
            transfer.awaiting = false;
        }
        if transfer.awaiting {
            return;
        }
        let total = snapshot.data.len();
        let start = usize::try_from(transfer.offset).unwrap_or(total).min(total);
        let (data, done) = snapshot_chunk(&snapshot.data, start as u64, chunk_bytes);
        let chunk = InstallSnapshot {
            term,
            snapshot_index: snapshot.index,
            snapshot_term: snapshot.epoch,
            membership: snapshot.membership.clone(),
            protocol_state: snapshot.protocol_state.clone(),
            offset: start as u64,
            total_bytes: total as u64,
            checksum,
            data,
            done,
        };
        transfer.awaiting = true;
        transfer.ticks_since_sent = 0;
        self.messages.push((peer, Message::InstallSnapshot(chunk)));
    }

    /// Resends chunks whose answer did not come (see `tick_leader`).
    pub(crate) fn resend_snapshot_chunks(&mut self) {
        let Role::Leader(leader) = &self.role else {
            return;
        };
        let due: Vec<NodeId> = leader
            .progress
            .iter()
            .filter(|(_, p)| matches!(&p.state, ProgressState::Snapshot(t) if !t.awaiting))
            .map(|(peer, _)| *peer)
            .collect();
        for peer in due {
            self.send_snapshot_chunk(peer);
        }
    }

    /// The leader's side: the follower's progress report.
    pub(crate) fn on_install_snapshot_response(
        &mut self,
        from: NodeId,
        response: InstallSnapshotResponse,
    ) {
        let last = self.log.last_index();
        let Some(progress) = self.role.heard_from(from) else {
            return;
        };
        match response.outcome {
            SnapshotOutcome::Receiving { next_offset } => {
                if let ProgressState::Snapshot(transfer) = &mut progress.state {
                    if transfer.index == response.snapshot_index {
                        transfer.offset = next_offset;
                        transfer.awaiting = false;
                        self.send_snapshot_chunk(from);
                    }
                }
            }
            SnapshotOutcome::Done { match_index } => {
                if match_index > last {
                    tracing::warn!(
                        id = self.id,
                        from,
                        match_index,
                        "snapshot match beyond our log dropped"
                    );
                    return;
                }
                let advanced = progress.on_matched(match_index);
                if matches!(progress.state, ProgressState::Snapshot(_)) {
                    tracing::debug!(
                        id = self.id,
                        peer = from,
                        match_index,
                        "snapshot transfer done"
                    );
                    progress.become_probe();
                }
                self.after_matched(from, advanced);
            }
        }
    }

    fn respond_snapshot(&mut self, to: NodeId, snapshot_index: LogIndex, outcome: SnapshotOutcome) {
        self.send(
            to,
            Message::InstallSnapshotResponse(InstallSnapshotResponse {
                term: self.term,
                snapshot_index,
                outcome,
            }),
        );
    }

    /// The follower's side: assemble, verify, install (§7 receiver steps).
    pub(crate) fn on_install_snapshot(&mut self, from: NodeId, chunk: InstallSnapshot) {
        if !self.accept_leader(from) {
            return;
        }
        let well_formed = chunk.snapshot_index < u64::MAX
            && SnapshotChunks::fits(chunk.offset, chunk.data.len(), chunk.total_bytes)
            && chunk.snapshot_term <= chunk.term
            && chunk.membership.validate().is_ok();
        if !well_formed {
            tracing::warn!(id = self.id, from, "malformed InstallSnapshot dropped");
            return;
        }
        let index = chunk.snapshot_index;
        if index <= self.commit_index {
            // Stale: we already hold everything it covers (and more).
            self.incoming_snapshot = None;
            self.respond_snapshot(
                from,
                index,
                SnapshotOutcome::Done {
                    match_index: self.commit_index,
                },
            );
            return;
        }
        if self.log.matches(index, chunk.snapshot_term) {
            // §7: "if existing log entry has same index and term as
            // snapshot's last included entry, retain log entries following
            // it": the prefix is ours already, only the commit index moves.
            self.incoming_snapshot = None;
            self.advance_commit_to(index);
            self.respond_snapshot(from, index, SnapshotOutcome::Done { match_index: index });
            return;
        }
        // One snapshot on the wire: its index, term, checksum and size.
        let same = self.incoming_snapshot.as_ref().is_some_and(|s| {
            s.epoch == chunk.snapshot_term && s.is_same(index, chunk.checksum, chunk.total_bytes)
        });
        if !same {
            if chunk.offset != 0 {
                self.incoming_snapshot = None;
                self.respond_snapshot(from, index, SnapshotOutcome::Receiving { next_offset: 0 });
                return;
            }
            self.incoming_snapshot = Some(SnapshotTransfer::new(
                index,
                chunk.snapshot_term,
                chunk.membership.clone(),
                chunk.protocol_state.clone(),
                chunk.total_bytes,
                chunk.checksum,
            ));
        }
        let Some(incoming) = self.incoming_snapshot.as_mut() else {
            return;
        };
        let have = match incoming.chunks.push(chunk.offset, &chunk.data) {
            Ok(have) => have,
            Err(_) => {
                // A duplicate or a gap: tell the leader where we are.
                let have = incoming.chunks.received_bytes();
                self.respond_snapshot(
                    from,
                    index,
                    SnapshotOutcome::Receiving { next_offset: have },
                );
                return;
            }
        };
        if !chunk.done {
            self.respond_snapshot(
                from,
                index,
                SnapshotOutcome::Receiving { next_offset: have },
            );
            return;
        }
        let Some(incoming) = self.incoming_snapshot.take() else {
            return;
        };
        // A bad transfer restarts from offset 0 (see `SnapshotChunks`).
        let Ok(snapshot) = incoming.finish() else {
            tracing::warn!(
                id = self.id,
                from,
                index,
                "snapshot checksum mismatch: transfer restarts"
            );
            self.respond_snapshot(from, index, SnapshotOutcome::Receiving { next_offset: 0 });
            return;
        };
        self.install_snapshot(snapshot);
        self.respond_snapshot(from, index, SnapshotOutcome::Done { match_index: index });
    }

    /// Replaces the log with `snapshot` (newer than the commit index).
    fn install_snapshot(&mut self, snapshot: Snapshot) {
        let index = snapshot.index;
        tracing::debug!(
            id = self.id,
            index,
            term = snapshot.epoch,
            "snapshot installed"
        );
        // Entries above the old commit index may have differed from the
        // snapshot's: answers claiming them must not leave.
        self.retract_acknowledgements(self.commit_index + 1);
        self.log.install(snapshot);
        self.commit_index = self.commit_index.max(index);
        self.applied_index = self.applied_index.max(index);
    }
}
