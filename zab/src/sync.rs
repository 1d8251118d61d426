//! Phase 2: Synchronization (paper section IV-B; ZooKeeper's
//! `LearnerHandler.syncFollower` and `Learner.syncWithLeader`).
//!
//! The leader brings each follower's history to its own, from the last zxid
//! the follower reported (in ACKEPOCH, then in every [`Ack`]):
//!
//! * the zxid is in the leader's history: **DIFF**, the proposals after it;
//! * it is not (the follower holds proposals the leader does not have, from
//!   an abandoned epoch): **TRUNC** to the largest zxid of the leader below
//!   it; the follower drops every proposal above that zxid (exactly a
//!   `truncate_from`) and reports its new last zxid, and the leader
//!   continues from there (repeating if the follower did not hold that zxid);
//! * it lies below the leader's snapshot (or the truncation point does):
//!   **SNAP**, the snapshot in chunks, then DIFF from it.
//!
//! When the follower's history ends where the leader's does, the leader
//! sends NEWLEADER(zxid); the follower checks that its last zxid is that
//! zxid, persists `currentEpoch = epoch` (after the history: it is the last
//! record of its batch) and acks. The leader is established once a quorum
//! (itself included) acked NEWLEADER, and commits its whole initial history
//! (section IV-B: "the leader ... commits the proposals of its initial
//! history").
//!
//! Every step is validated against the follower's current last zxid, so a
//! lost, duplicated or reordered message is either harmless or dropped and
//! repaired by a report or a retransmission on the next heartbeat.

use consensus_api::{Entry, NodeId};

use crate::core::ZabCore;
use crate::message::{Ack, AckNewLeader, Diff, Message, NewLeader, Trunc};
use crate::role::{FollowerPhase, LeaderPhase, Role, Stage};
use crate::zxid::Zxid;

/// How a batch of entries is anchored in the sender's history.
#[derive(Copy, Clone, Debug)]
pub(crate) enum Anchor {
    /// The entries follow this zxid (DIFF).
    After(Zxid),
    /// The first entry has this zxid (PROPOSAL).
    First(Zxid),
}

/// What the leader does to synchronize a follower from its report.
enum SyncPlan {
    /// DIFF from this index.
    Diff(u64),
    /// TRUNC to this zxid.
    Trunc(Zxid),
    /// SNAP.
    Snap,
}

impl ZabCore {
    /// Leader: plan the synchronization of `follower`, whose history ends at
    /// `report`.
    pub(crate) fn start_sync(&mut self, follower: NodeId, report: Zxid) {
        let history = &self.log.history;
        let plan = if let Some(index) = history.index_of(report) {
            SyncPlan::Diff(index)
        } else if report < history.base_zxid() {
            SyncPlan::Snap
        } else {
            match history.below(report) {
                Some((_, to)) => SyncPlan::Trunc(to),
                None => SyncPlan::Snap,
            }
        };
        let now = self.now;
        let Role::Leading(leader) = &mut self.role else {
            return;
        };
        let epoch = leader.epoch;
        let Some(progress) = leader.followers.get_mut(&follower) else {
            return;
        };
        progress.inflight.clear();
        progress.newleader_sent = None;
        progress.last_go_back = None;
        progress.heard_at = now;
        match plan {
            SyncPlan::Diff(index) => {
                progress.stage = Stage::Streaming;
                progress.acked = index;
                progress.sent = index;
                progress.acked_at_heartbeat = index;
            }
            SyncPlan::Trunc(to) => {
                progress.stage = Stage::Truncating {
                    follower_last: report,
                    to,
                };
                let trunc = Trunc {
                    epoch,
                    follower_last: report,
                    zxid: to,
                };
                self.send(follower, Message::Trunc(trunc));
            }
            SyncPlan::Snap => self.start_snapshot(follower),
        }
    }

    /// Leader: established once a quorum acked NEWLEADER.
    pub(crate) fn advance_sync(&mut self) {
        let membership = self.log.membership();
        let Role::Leading(leader) = &mut self.role else {
            return;
        };
        if leader.phase != LeaderPhase::Synchronization
            || !membership.is_quorum(|n| leader.newleader_acks.contains(&n))
        {
            return;
        }
        leader.phase = LeaderPhase::Broadcast;
        tracing::info!(
            node = self.config.id,
            epoch = leader.epoch,
            "leader established"
        );
        self.maybe_commit();
    }

    /// Follower: the sync state it is in with `from` for `epoch`, if any.
    fn follower_phase(&mut self, from: NodeId, epoch: u64) -> Option<FollowerPhase> {
        let Role::Following(follower) = &mut self.role else {
            return None;
        };
        if follower.leader != from || follower.phase.epoch() != Some(epoch) {
            return None;
        }
        follower.silence_ticks = 0;
        Some(follower.phase)
    }

    /// Follower: report the last zxid to the leader (`resend`: after a
    /// dropped message; at most once per heartbeat for the same zxid).
    pub(crate) fn report(&mut self, epoch: u64, resend: bool) {
        let last = self.log.history.last_zxid();
        let now = self.now;
        let interval = self.heartbeat_ticks();
        let Role::Following(follower) = &mut self.role else {
            return;
        };
        if resend {
            if let Some((zxid, at)) = follower.last_resend {
                if zxid == last && now.saturating_sub(at) < interval {
                    return;
                }
            }
            follower.last_resend = Some((last, now));
        }
        let leader = follower.leader;
        self.send(
            leader,
            Message::Ack(Ack {
                epoch,
                zxid: last,
                resend,
            }),
        );
    }

    /// Follower: TRUNC.
    pub(crate) fn on_trunc(&mut self, from: NodeId, message: Trunc) {
        let Some(FollowerPhase::Synchronization { epoch }) =
            self.follower_phase(from, message.epoch)
        else {
            return;
        };
        if self.log.history.last_zxid() != message.follower_last {
            // A retransmission of a TRUNC already carried out (or overtaken):
            // the leader still plans from the old report, so the report
            // that followed the truncation was lost. Report again (at most
            // once per heartbeat), or the leader keeps resending this TRUNC
            // while the pings keep us following it, and we never sync
            // (found by the simulator's catch-up check: zab/tests/sim.rs,
            // seeds 296 and 300 under partitions at 3 nodes).
            tracing::debug!(node = self.id(), "stale TRUNC dropped");
            self.report(epoch, true);
            return;
        }
        let Some(keep) = self.log.history.floor_index(message.zxid) else {
            tracing::warn!(node = self.id(), zxid = %message.zxid, "TRUNC below the snapshot");
            self.report(epoch, true);
            return;
        };
        if keep < self.log.commit_index {
            tracing::error!(node = self.id(), zxid = %message.zxid, "TRUNC below the commit point refused");
            self.report(epoch, true);
            return;
        }
        if keep < self.log.history.last_index() {
            tracing::debug!(node = self.id(), keep, "truncating the history");
            self.log.truncate_from(keep + 1);
        }
        self.report(epoch, false);
    }

    /// Follower: DIFF (in synchronization, or to repair a gap in broadcast).
    pub(crate) fn on_diff(&mut self, from: NodeId, message: Diff) {
        if self.follower_phase(from, message.epoch).is_none() {
            return;
        }
        let accepted = self.accept_entries(
            Anchor::After(message.prev_zxid),
            &message.entries,
            message.epoch,
        );
        self.report(message.epoch, accepted.is_err());
    }

    /// Follower: appends the entries of a DIFF or PROPOSAL that continue the
    /// history. Entries already held must carry the same zxids (duplicates are
    /// skipped); anything else (a gap, a conflict, a malformed batch) drops
    /// the whole message. Returns whether anything was appended.
    pub(crate) fn accept_entries(
        &mut self,
        anchor: Anchor,
        entries: &[Entry],
        max_epoch: u64,
    ) -> Result<bool, ()> {
        let Some(first) = entries.first().map(|e| e.index) else {
            return Ok(false);
        };
        let zxids = claimed_zxids(anchor, entries, max_epoch)?;
        let history = &self.log.history;
        let base = history.base_index();
        // The anchor must match what precedes the batch (when held).
        if first > base && !anchor_fits(anchor, history.zxid_at(first - 1).ok_or(())?) {
            return Err(());
        }
        // Held entries must agree; the rest continue the history.
        let mut appended = false;
        for (entry, zxid) in entries.iter().zip(zxids) {
            if entry.index < base {
                continue;
            }
            if entry.index <= self.log.history.last_index() {
                if self.log.history.zxid_at(entry.index) != Some(zxid) {
                    return Err(());
                }
                continue;
            }
            let appended_zxid = self.log.append(entry.clone());
            debug_assert_eq!(appended_zxid, zxid, "computed zxid matches the history's");
            appended = true;
        }
        Ok(appended)
    }

    /// Follower: NEWLEADER.
    pub(crate) fn on_new_leader(&mut self, from: NodeId, message: NewLeader) {
        let Some(phase) = self.follower_phase(from, message.epoch) else {
            return;
        };
        let last = self.log.history.last_zxid();
        match phase {
            FollowerPhase::Synchronization { epoch } if last == message.zxid => {
                if let Role::Following(follower) = &mut self.role {
                    follower.phase = FollowerPhase::Broadcast { epoch };
                    follower.incoming = None;
                }
                self.set_current_epoch(epoch);
                tracing::debug!(node = self.id(), epoch, "following: broadcast");
                let ack = AckNewLeader { epoch, zxid: last };
                self.send(from, Message::AckNewLeader(ack));
            }
            FollowerPhase::Broadcast { epoch } if message.zxid <= last => {
                // Already synchronized (a duplicate or a re-synchronization):
                // our history is a prefix of the leader's through `last`.
                let ack = AckNewLeader {
                    epoch,
                    zxid: message.zxid,
                };
                self.send(from, Message::AckNewLeader(ack));
            }
            _ => self.report(message.epoch, true),
        }
    }

    /// Leader: a follower made the epoch current.
    pub(crate) fn on_ack_new_leader(&mut self, from: NodeId, message: AckNewLeader) {
        let membership = self.log.membership();
        let index = self.log.history.floor_index(message.zxid).unwrap_or(0);
        let Some(progress) = self.heard_from_syncing(from, message.epoch) else {
            return;
        };
        progress.synced = true;
        progress.newleader_sent = None;
        if matches!(progress.stage, Stage::Streaming) {
            progress.acked = progress.acked.max(index);
            progress.sent = progress.sent.max(progress.acked);
        } else {
            progress.stage = Stage::Streaming;
            progress.acked = index;
            progress.sent = index;
            progress.inflight.clear();
        }
        let acked = progress.acked;
        while progress.inflight.front().is_some_and(|end| *end <= acked) {
            progress.inflight.pop_front();
        }
        if membership.is_voter(from) {
            if let Role::Leading(leader) = &mut self.role {
                leader.newleader_acks.insert(from);
            }
        }
        self.advance_sync();
        self.maybe_commit();
    }
}

/// The zxids a batch claims, from its anchor; `Err` for a malformed batch
/// (indexes not consecutive from a non-zero start, epochs decreasing or above
/// `max_epoch`, counter overflow).
fn claimed_zxids(anchor: Anchor, entries: &[Entry], max_epoch: u64) -> Result<Vec<Zxid>, ()> {
    let first = entries.first().map_or(1, |e| e.index);
    if first == 0 {
        return Err(());
    }
    let mut zxids = Vec::with_capacity(entries.len());
    let mut previous = match anchor {
        Anchor::After(prev) => Some(prev),
        Anchor::First(_) => None,
    };
    for (offset, entry) in entries.iter().enumerate() {
        if first.checked_add(offset as u64) != Some(entry.index) || entry.epoch > max_epoch {
            return Err(());
        }
        let zxid = match (previous, anchor) {
            (None, Anchor::First(zxid)) if zxid.epoch() == entry.epoch => zxid,
            (Some(prev), _) if entry.epoch == prev.epoch() && prev.counter() < Zxid::PART_MAX => {
                Zxid::new(entry.epoch, prev.counter() + 1)
            }
            (Some(prev), _) if entry.epoch > prev.epoch() && entry.epoch <= Zxid::PART_MAX => {
                Zxid::new(entry.epoch, 1)
            }
            _ => return Err(()),
        };
        zxids.push(zxid);
        previous = Some(zxid);
    }
    Ok(zxids)
}

/// Whether the zxid held just before a batch is the one its anchor implies.
fn anchor_fits(anchor: Anchor, before: Zxid) -> bool {
    match anchor {
        Anchor::After(prev) => before == prev,
        Anchor::First(zxid) if zxid.counter() > 1 => {
            before == Zxid::new(zxid.epoch(), zxid.counter() - 1)
        }
        Anchor::First(zxid) => before.epoch() < zxid.epoch(),
    }
}
