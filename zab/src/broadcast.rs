//! Phase 3: Broadcast (paper section IV-B; ZooKeeper's
//! `Leader.propose` / `processAck` / `commit`, `Follower.processPacket`).
//!
//! The established leader assigns each proposal the next zxid of its epoch,
//! appends it to its history and sends it to every synced follower in zxid
//! order (batched: one PROPOSAL carries consecutive proposals; pipelined:
//! up to `inflight_messages_max` unacknowledged messages per follower). A
//! follower appends a proposal only if it directly follows its last zxid
//! (its history is a prefix of the leader's), persists it and ACKs its last
//! zxid (cumulatively). The leader commits the longest prefix acked by a
//! quorum (itself included; only followers that acked NEWLEADER count), so
//! commits happen in zxid order, and sends a cumulative COMMIT. Followers
//! deliver committed proposals in zxid order.
//!
//! FIFO channels are assumed by ZAB. Here they are rebuilt from sequence
//! checks: a proposal that does not continue the follower's history (lost,
//! duplicated or reordered predecessor) is dropped and the follower asks for
//! a resend from its last zxid (`Ack { resend: true }`, once per heartbeat);
//! a leader that sees no ack progress for a heartbeat resends from the last
//! acked zxid (go-back-N).

use consensus_api::{Entry, NodeId, Payload, Rejected, Ticket};

use crate::core::Output;
use crate::core::ZabCore;
use crate::history::History;
use crate::message::{Ack, Commit, Diff, Message, NewLeader, Ping, Proposal};
use crate::role::{FollowerPhase, FollowerProgress, LeaderPhase, Role, Stage};
use crate::sync::Anchor;
use crate::zxid::Zxid;

impl ZabCore {
    /// Leader: appends a proposal of the current epoch.
    pub(crate) fn propose_payload(&mut self, payload: Payload) -> Result<Ticket, Rejected> {
        let epoch = match &self.role {
            Role::Leading(leader) if leader.phase == LeaderPhase::Broadcast => leader.epoch,
            Role::Following(follower) => {
                return Err(Rejected::NotLeader {
                    hint: Some(follower.leader),
                })
            }
            _ => return Err(Rejected::Unavailable),
        };
        let last = self.log.history.last_index();
        if (last - self.log.commit_index) as usize >= self.config.uncommitted_entries_max {
            return Err(Rejected::Overloaded);
        }
        if self.log.history.next_zxid(epoch).is_none() {
            // ZooKeeper forces a new election when the counter is exhausted.
            tracing::warn!(
                node = self.id(),
                epoch,
                "zxid counter exhausted: re-electing"
            );
            self.become_looking();
            return Err(Rejected::Unavailable);
        }
        let index = last + 1;
        self.log.append(Entry {
            index,
            epoch,
            payload,
        });
        let ticket = self.ticket_counter.next_ticket();
        if let Role::Leading(leader) = &mut self.role {
            leader.proposals.insert(index, ticket);
        }
        self.maybe_commit();
        Ok(ticket)
    }

    /// Leader: sends what each follower is owed (DIFF / NEWLEADER /
    /// PROPOSAL / COMMIT, a new ping round for read barriers). Called when
    /// the output is collected, so proposals made since are batched.
    pub(crate) fn leader_flush(&mut self) {
        let limits = StreamLimits {
            window: self.config.inflight_messages_max.max(1),
            batch_entries: self.config.batch_entries_max.max(1),
            batch_bytes: self.config.batch_bytes_max,
        };
        let history = &self.log.history;
        let commit = self.log.commit_index;
        let commit_zxid = self.log.commit_zxid();
        let Role::Leading(leader) = &mut self.role else {
            return;
        };
        if leader.phase < LeaderPhase::Synchronization {
            return;
        }
        let epoch = leader.epoch;
        let established = leader.phase == LeaderPhase::Broadcast;
        let mut need_snapshot = Vec::new();
        for (id, progress) in leader.followers.iter_mut() {
            if !matches!(progress.stage, Stage::Streaming) {
                continue;
            }
            if !stream_entries(*id, progress, history, epoch, &limits, &mut self.out) {
                need_snapshot.push(*id);
                continue;
            }
            if !progress.synced
                && progress.newleader_sent.is_none()
                && progress.sent == history.last_index()
            {
                let zxid = history.last_zxid();
                self.out
                    .send(*id, Message::NewLeader(NewLeader { epoch, zxid }));
                progress.newleader_sent = Some(progress.sent);
            }
            if progress.synced && established && commit > progress.commit_sent {
                let commit_message = Commit {
                    epoch,
                    zxid: commit_zxid,
                };
                self.out.send(*id, Message::Commit(commit_message));
                progress.commit_sent = commit;
            }
        }
        if leader.round_needed {
            leader.round_needed = false;
            leader.ping_round += 1;
            let round = leader.ping_round;
            for id in leader.followers.keys() {
                let ping = Ping {
                    epoch,
                    commit: commit_zxid,
                    round,
                };
                self.out.send(*id, Message::Ping(ping));
            }
        }
        for id in need_snapshot {
            self.start_snapshot(id);
        }
    }

    /// Follower: PROPOSAL.
    pub(crate) fn on_proposal(&mut self, from: NodeId, message: Proposal) {
        let epoch = message.zxid.epoch();
        let Role::Following(follower) = &mut self.role else {
            return;
        };
        if follower.leader != from || follower.phase != (FollowerPhase::Broadcast { epoch }) {
            return;
        }
        follower.silence_ticks = 0;
        let accepted = self.accept_entries(Anchor::First(message.zxid), &message.entries, epoch);
        self.report(epoch, accepted.is_err());
    }

    /// Follower: COMMIT.
    pub(crate) fn on_commit(&mut self, from: NodeId, message: Commit) {
        let Role::Following(follower) = &mut self.role else {
            return;
        };
        if follower.leader != from
            || follower.phase
                != (FollowerPhase::Broadcast {
                    epoch: message.epoch,
                })
        {
            return;
        }
        follower.silence_ticks = 0;
        self.commit_to(message.zxid);
    }

    /// Follower in broadcast: everything up to `zxid` is committed. Its
    /// history is a prefix of the leader's, so that is its longest prefix
    /// with zxids `<= zxid`.
    pub(crate) fn commit_to(&mut self, zxid: Zxid) {
        if let Some(index) = self.log.history.floor_index(zxid) {
            if index > self.log.commit_index {
                self.log.commit_index = index;
            }
        }
    }

    /// Leader: an ACK (a follower's last zxid).
    pub(crate) fn on_ack(&mut self, from: NodeId, message: Ack) {
        let index = self.log.history.index_of(message.zxid);
        let base_zxid = self.log.history.base_zxid();
        let now = self.now;
        let interval = self.heartbeat_ticks();
        let Some(progress) = self.heard_from_syncing(from, message.epoch) else {
            return;
        };
        let replan = match &progress.stage {
            Stage::Connected | Stage::EpochAcked { .. } => false,
            Stage::Truncating { .. } => true,
            Stage::Snapshotting(send) => message.zxid >= send.zxid,
            Stage::Streaming => match index {
                Some(index) => {
                    if index > progress.acked {
                        progress.acked = index;
                        progress.sent = progress.sent.max(index);
                        while progress.inflight.front().is_some_and(|end| *end <= index) {
                            progress.inflight.pop_front();
                        }
                    }
                    if message.resend {
                        if index < progress.acked {
                            // The follower says its history ends below what
                            // we believed: trust it (acked stays a lower
                            // bound; the commit point never moves back).
                            progress.acked = index;
                            progress.acked_at_heartbeat = index;
                            progress.last_go_back = None;
                        }
                        go_back(progress, now, interval, false);
                    }
                    false
                }
                None => !progress.synced || message.zxid < base_zxid,
            },
        };
        if replan {
            self.start_sync(from, message.zxid);
        }
        self.maybe_commit();
    }

    /// Leader: commit the longest prefix acked by a quorum of the
    /// configuration in force (joint while a change is pending).
    pub(crate) fn maybe_commit(&mut self) {
        loop {
            let Role::Leading(leader) = &self.role else {
                return;
            };
            if leader.phase != LeaderPhase::Broadcast {
                return;
            }
            let membership = self.log.membership();
            let me = self.id();
            let last = self.log.history.last_index();
            let index = membership.quorum_index(|n| {
                if n == me {
                    last
                } else {
                    leader
                        .followers
                        .get(&n)
                        .filter(|p| p.synced)
                        .map_or(0, |p| p.acked.min(last))
                }
            });
            if index <= self.log.commit_index {
                return;
            }
            self.log.commit_index = index;
            if self.log.membership() == membership {
                return;
            }
            self.on_config_committed();
        }
    }

    /// Leader: a configuration change committed.
    fn on_config_committed(&mut self) {
        let membership = self.log.membership();
        let me = self.id();
        tracing::info!(node = me, %membership, "configuration committed");
        let Role::Leading(leader) = &mut self.role else {
            return;
        };
        leader.followers.retain(|id, _| membership.contains(*id));
        if !membership.is_voter(me) {
            tracing::info!(
                node = me,
                "leader left the configuration: abandoning leadership"
            );
            self.become_looking();
        }
    }
}

/// Batching and pipelining limits of one follower's stream.
struct StreamLimits {
    window: usize,
    batch_entries: usize,
    batch_bytes: usize,
}

/// Sends entries after `progress.sent`, as DIFF (before NEWLEADER) or
/// PROPOSAL (epoch `epoch` entries after it), in batches, while the window
/// allows. Returns false when the next entry is compacted (SNAP needed).
fn stream_entries(
    id: NodeId,
    progress: &mut FollowerProgress,
    history: &History,
    epoch: u64,
    limits: &StreamLimits,
    out: &mut Output,
) -> bool {
    let last = history.last_index();
    while progress.inflight.len() < limits.window && progress.sent < last {
        let from = progress.sent + 1;
        if from <= history.base_index() {
            return false;
        }
        let first_epoch = history.entry(from).map_or(epoch, |e| e.epoch);
        let as_proposal =
            (progress.synced || progress.newleader_sent.is_some()) && first_epoch == epoch;
        let mut batch: Vec<Entry> = Vec::new();
        let mut bytes = 0;
        for entry in history.range(from, last) {
            if batch.len() >= limits.batch_entries
                || (!batch.is_empty() && bytes + entry.size_bytes() > limits.batch_bytes)
                || (as_proposal && entry.epoch != epoch)
            {
                break;
            }
            bytes += entry.size_bytes();
            batch.push(entry.clone());
        }
        let end = from + batch.len() as u64 - 1;
        let message = if as_proposal {
            let zxid = history.zxid_at(from).expect("held");
            Message::Proposal(Proposal {
                zxid,
                entries: batch,
            })
        } else {
            let prev_zxid = history.zxid_at(from - 1).expect("held");
            Message::Diff(Diff {
                epoch,
                prev_zxid,
                entries: batch,
            })
        };
        out.send(id, message);
        progress.sent = end;
        progress.inflight.push_back(end);
    }
    true
}

/// Go-back-N: resend from the last acked entry (at most once per heartbeat
/// for the same point unless `force`).
pub(crate) fn go_back(progress: &mut FollowerProgress, now: u64, interval: u64, force: bool) {
    if !force {
        if let Some((at, tick)) = progress.last_go_back {
            if at == progress.acked && now.saturating_sub(tick) < interval {
                return;
            }
        }
    }
    progress.sent = progress.acked;
    progress.inflight.clear();
    if !progress.synced {
        progress.newleader_sent = None;
    }
    progress.last_go_back = Some((progress.acked, now));
}
