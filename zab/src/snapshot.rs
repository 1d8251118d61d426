//! Snapshots and compaction.
//!
//! ZooKeeper takes *fuzzy* snapshots of its data tree while transactions keep
//! being applied, and replays the log from the snapshot's starting zxid
//! (transactions are idempotent). Here the state machine is opaque, so a
//! snapshot is *exact*: [`Core::compact`](consensus_api::Core::compact) is
//! called with the state at an applied index, and the snapshot records the
//! zxid of that index (in `protocol_state`, see [`SnapshotMeta`]) so the
//! zxid <-> index mapping continues above it.
//!
//! SNAP transfers the leader's latest snapshot in chunks of
//! `snapshot_chunk_bytes` ([`MessageClass::Bulk`](consensus_api::MessageClass)),
//! stop-and-wait: each [`Snap`] chunk is acknowledged by an [`AckSnap`] with
//! the next offset wanted; a CRC32C of the whole data is checked when the
//! last chunk arrives (a mismatch restarts the transfer). A lost chunk or ack
//! is resent on the next heartbeat.

use consensus_api::{
    decode_protocol_state, encode_postcard, snapshot_chunk, Bytes, LogIndex, Membership, NodeId,
    RecoverError, Rejected, Snapshot, SnapshotChunks,
};
use serde::{Deserialize, Serialize};

use crate::core::ZabCore;
use crate::message::{AckSnap, Message, Snap};
use crate::role::{Role, Stage};
use crate::zxid::Zxid;

/// What ZAB keeps in [`Snapshot::protocol_state`].
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotMeta {
    /// Zxid of the snapshot's last transaction.
    pub zxid: Zxid,
    /// Zxid of the proposal that introduced the snapshot's configuration
    /// (`0:0` for the initial one): its version for the election.
    pub config_zxid: Zxid,
}

impl SnapshotMeta {
    /// Encodes for `protocol_state`.
    pub fn encode(&self) -> Bytes {
        encode_postcard(self)
    }

    /// Decodes `protocol_state`.
    pub fn decode(bytes: &[u8]) -> Result<SnapshotMeta, RecoverError> {
        decode_protocol_state(bytes)
    }
}

/// Leader side of one SNAP transfer.
#[derive(Debug)]
pub(crate) struct SnapshotSend {
    /// The snapshot (its own copy: a later compaction does not disturb it).
    pub snapshot: Snapshot,
    /// Its zxid.
    pub zxid: Zxid,
    /// The version of its configuration.
    pub config_zxid: Zxid,
    /// CRC32C of its data.
    pub checksum: u32,
    /// Bytes the follower acknowledged.
    pub acked: u64,
}

/// Follower side of one SNAP transfer.
#[derive(Debug)]
pub(crate) struct IncomingSnapshot {
    zxid: Zxid,
    index: LogIndex,
    membership: Membership,
    config_zxid: Zxid,
    chunks: SnapshotChunks,
}

impl IncomingSnapshot {
    fn same_transfer(&self, chunk: &Snap) -> bool {
        self.zxid == chunk.zxid
            && self.index == chunk.index
            && self.chunks.total_bytes() == chunk.total_bytes
            && self.config_zxid == chunk.config_zxid
            && self.chunks.checksum() == chunk.checksum
    }
}

impl ZabCore {
    /// `compact`: the state machine at `applied_index` becomes a snapshot;
    /// the history up to it is dropped.
    pub(crate) fn take_snapshot(
        &mut self,
        applied_index: LogIndex,
        data: Bytes,
    ) -> Result<Snapshot, Rejected> {
        let base = self.log.history.base_index();
        if applied_index > self.log.applied_index || applied_index <= base {
            return Err(Rejected::InvalidCompaction {
                index: applied_index,
                applied: self.log.applied_index,
                snapshot: base,
            });
        }
        let zxid = self
            .log
            .history
            .zxid_at(applied_index)
            .expect("applied entries are held");
        let snapshot = Snapshot {
            index: applied_index,
            epoch: zxid.epoch(),
            membership: self.log.configs.committed_at(applied_index),
            protocol_state: SnapshotMeta {
                zxid,
                config_zxid: self.log.configs.version_at(applied_index),
            }
            .encode(),
            data,
        };
        self.log.history.compact_to(applied_index);
        self.log.configs.compact_to(applied_index);
        self.log.snapshot = Some(snapshot.clone());
        Ok(snapshot)
    }

    /// Leader: start sending the latest snapshot to `follower`.
    pub(crate) fn start_snapshot(&mut self, follower: NodeId) {
        let Some(snapshot) = self.log.snapshot.clone() else {
            tracing::error!(
                node = self.id(),
                follower,
                "SNAP needed but no snapshot is held"
            );
            return;
        };
        let meta = match SnapshotMeta::decode(&snapshot.protocol_state) {
            Ok(meta) => meta,
            Err(error) => {
                tracing::error!(node = self.id(), %error, "own snapshot metadata unreadable");
                return;
            }
        };
        let checksum = crc32c::crc32c(&snapshot.data);
        let Role::Leading(leader) = &mut self.role else {
            return;
        };
        let Some(progress) = leader.followers.get_mut(&follower) else {
            return;
        };
        progress.inflight.clear();
        progress.newleader_sent = None;
        progress.snapshot_acked_at_heartbeat = 0;
        progress.stage = Stage::Snapshotting(SnapshotSend {
            snapshot,
            zxid: meta.zxid,
            config_zxid: meta.config_zxid,
            checksum,
            acked: 0,
        });
        self.send_snapshot_chunk(follower);
    }

    /// Leader: send the chunk at the acknowledged offset.
    pub(crate) fn send_snapshot_chunk(&mut self, follower: NodeId) {
        let chunk_bytes = self.config.snapshot_chunk_bytes;
        let Role::Leading(leader) = &self.role else {
            return;
        };
        let Some(progress) = leader.followers.get(&follower) else {
            return;
        };
        let Stage::Snapshotting(send) = &progress.stage else {
            return;
        };
        let total_bytes = send.snapshot.data.len() as u64;
        let offset = send.acked.min(total_bytes);
        let chunk = Snap {
            epoch: leader.epoch,
            zxid: send.zxid,
            index: send.snapshot.index,
            membership: send.snapshot.membership.clone(),
            config_zxid: send.config_zxid,
            offset,
            total_bytes,
            checksum: send.checksum,
            data: snapshot_chunk(&send.snapshot.data, offset, chunk_bytes).0,
        };
        self.send(follower, Message::Snap(chunk));
    }

    /// Leader: snapshot progress.
    pub(crate) fn on_ack_snap(&mut self, from: NodeId, message: AckSnap) {
        let Some(progress) = self.heard_from(from, message.epoch) else {
            return;
        };
        let Stage::Snapshotting(send) = &mut progress.stage else {
            return;
        };
        let total = send.snapshot.data.len() as u64;
        if message.zxid != send.zxid || message.offset == send.acked || message.offset > total {
            return;
        }
        send.acked = message.offset;
        if send.acked < total {
            self.send_snapshot_chunk(from);
        }
    }

    /// Follower: a SNAP chunk.
    pub(crate) fn on_snap(&mut self, from: NodeId, message: Snap) {
        let commit = self.log.commit_index;
        let epoch = message.epoch;
        let holds_prefix = self.log.history.index_of(message.zxid) == Some(message.index);
        let Role::Following(follower) = &mut self.role else {
            return;
        };
        if follower.leader != from || follower.phase.epoch() != Some(epoch) {
            return;
        }
        follower.silence_ticks = 0;
        if !well_formed(&message) {
            tracing::warn!(node = self.config.id, "malformed SNAP dropped");
            return;
        }
        if message.index <= commit || holds_prefix {
            // The history already holds the snapshot's prefix (a duplicate,
            // or the leader went back further than needed). Installing would
            // drop proposals after it that this follower may have acked, and
            // the leader counted: just report the last zxid instead.
            self.report(epoch, false);
            return;
        }
        match receive_chunk(&mut follower.incoming, &message) {
            Ok(Some(complete)) => self.install_received(from, epoch, complete),
            Ok(None) | Err(()) => {
                let offset = follower
                    .incoming
                    .as_ref()
                    .filter(|i| i.same_transfer(&message))
                    .map_or(0, |i| i.chunks.received_bytes());
                let ack = AckSnap {
                    epoch,
                    zxid: message.zxid,
                    offset,
                };
                self.send(from, Message::AckSnap(ack));
            }
        }
    }

    /// Follower: the last chunk arrived; check and install.
    fn install_received(&mut self, from: NodeId, epoch: u64, incoming: IncomingSnapshot) {
        // A bad transfer restarts from offset 0 (see `SnapshotChunks`).
        let Ok(data) = incoming.chunks.finish() else {
            tracing::warn!(
                node = self.config.id,
                "snapshot checksum mismatch: restarting transfer"
            );
            let ack = AckSnap {
                epoch,
                zxid: incoming.zxid,
                offset: 0,
            };
            self.send(from, Message::AckSnap(ack));
            return;
        };
        let snapshot = Snapshot {
            index: incoming.index,
            epoch: incoming.zxid.epoch(),
            membership: incoming.membership,
            protocol_state: SnapshotMeta {
                zxid: incoming.zxid,
                config_zxid: incoming.config_zxid,
            }
            .encode(),
            data,
        };
        tracing::debug!(
            node = self.config.id,
            index = snapshot.index,
            "installing snapshot"
        );
        self.log
            .install(snapshot, incoming.zxid, incoming.config_zxid);
        self.report(epoch, false);
    }
}

/// A chunk's fields are consistent.
fn well_formed(chunk: &Snap) -> bool {
    chunk.index > 0
        && chunk.zxid != Zxid::ZERO
        && chunk.zxid.epoch() <= chunk.epoch
        && SnapshotChunks::fits(chunk.offset, chunk.data.len(), chunk.total_bytes)
        && chunk.membership.validate().is_ok()
}

/// Adds a chunk to the transfer in progress (a chunk at offset 0 starts a
/// new one). `Ok(Some(_))`: the transfer is complete; `Ok(None)`: more to
/// come; `Err`: out of order (dropped).
fn receive_chunk(
    incoming: &mut Option<IncomingSnapshot>,
    chunk: &Snap,
) -> Result<Option<IncomingSnapshot>, ()> {
    if chunk.offset == 0 {
        *incoming = Some(IncomingSnapshot {
            zxid: chunk.zxid,
            index: chunk.index,
            membership: chunk.membership.clone(),
            config_zxid: chunk.config_zxid,
            chunks: SnapshotChunks::new(chunk.total_bytes, chunk.checksum),
        });
    }
    let transfer = incoming.as_mut().ok_or(())?;
    if !transfer.same_transfer(chunk) || transfer.chunks.push(chunk.offset, &chunk.data).is_err() {
        return Err(());
    }
    if !transfer.chunks.is_complete() {
        return Ok(None);
    }
    Ok(incoming.take())
}
