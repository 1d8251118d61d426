//! Failure detection and retransmission (ZooKeeper's PING and its
//! `syncLimit` / `initLimit` checks).
//!
//! * The leader pings every connected follower each heartbeat interval; the
//!   ping carries the commit point (repairing a lost COMMIT) and a round
//!   number used by read barriers. At the same time it retransmits whatever
//!   made no progress since the last heartbeat (LEADERINFO, TRUNC, a SNAP
//!   chunk, NEWLEADER, proposals from the last ack).
//! * A follower that hears nothing from its leader for a random timeout in
//!   `election_timeout_ticks_min..max` goes back to election; one that has
//!   heard nothing for more than two heartbeat intervals goes back as soon
//!   as a LOOKING notification arrives (someone else lost the leader too).
//! * An established leader that has not heard from a quorum of synced
//!   followers within `election_timeout_ticks_min` abandons leadership (its
//!   pending proposals end with `OutcomeUnknown`, new ones get
//!   `Unavailable`); a prospective leader not established within twice an
//!   election timeout gives up.

use consensus_api::NodeId;

use crate::broadcast::go_back;
use crate::core::ZabCore;
use crate::message::{FollowerInfo, LeaderInfo, Message, Ping, PingResponse, Sync, Trunc};
use crate::role::{FollowerPhase, LeaderPhase, Role, Stage};

impl ZabCore {
    /// One tick as a follower.
    pub(crate) fn tick_follower(&mut self) {
        let interval = self.heartbeat_ticks();
        let accepted_epoch = self.hard.accepted_epoch;
        let Role::Following(follower) = &mut self.role else {
            return;
        };
        follower.silence_ticks += 1;
        if follower.silence_ticks >= follower.timeout_ticks {
            let leader = follower.leader;
            tracing::info!(
                node = self.config.id,
                leader,
                "leader lost: back to election"
            );
            self.become_looking_without(leader);
            return;
        }
        follower.heartbeat_ticks += 1;
        if follower.heartbeat_ticks < interval {
            return;
        }
        follower.heartbeat_ticks = 0;
        let leader = follower.leader;
        match follower.phase.epoch() {
            None => self.out.send(
                leader,
                Message::FollowerInfo(FollowerInfo { accepted_epoch }),
            ),
            Some(epoch) => {
                for (request, read) in &follower.reads {
                    if read.target.is_none() {
                        let sync = Sync {
                            epoch,
                            request: *request,
                        };
                        self.out.send(leader, Message::Sync(sync));
                    }
                }
            }
        }
    }

    /// Ticks of silence after which a follower that receives a LOOKING
    /// notification gives its leader up: one heartbeat interval, plus one
    /// more as slack for a ping that is late or lost.
    pub(crate) fn silent_leader_ticks(&self) -> u64 {
        2 * self.heartbeat_ticks()
    }

    /// Follower: its leader has been silent for longer than
    /// [`silent_leader_ticks`](Self::silent_leader_ticks).
    pub(crate) fn leader_is_silent(&self) -> bool {
        match &self.role {
            Role::Following(follower) => follower.silence_ticks > self.silent_leader_ticks(),
            _ => false,
        }
    }

    /// Follower: gives up a silent leader before its own timeout because
    /// another server is looking (see "Failover shortcuts" in the crate
    /// docs).
    pub(crate) fn abandon_silent_leader(&mut self) {
        let Role::Following(follower) = &self.role else {
            return;
        };
        let leader = follower.leader;
        tracing::info!(
            node = self.config.id,
            leader,
            silence_ticks = follower.silence_ticks,
            "leader silent and a server is looking: back to election"
        );
        self.become_looking_without(leader);
    }

    /// One tick as a (prospective) leader.
    pub(crate) fn tick_leader(&mut self) {
        let membership = self.log.membership();
        let me = self.id();
        let now = self.now;
        let quorum_timeout = self.config.election_timeout_ticks_min.max(1);
        let interval = self.heartbeat_ticks();
        let Role::Leading(leader) = &mut self.role else {
            return;
        };
        leader.ticks += 1;
        if leader.phase != LeaderPhase::Broadcast && leader.ticks > leader.establish_timeout_ticks {
            tracing::info!(node = me, "not established in time: back to election");
            self.become_looking();
            return;
        }
        if leader.phase == LeaderPhase::Discovery {
            self.advance_discovery();
        }
        let Role::Leading(leader) = &mut self.role else {
            return;
        };
        if leader.phase == LeaderPhase::Broadcast {
            let followers = &leader.followers;
            let alive = membership.is_quorum(|n| {
                n == me
                    || followers.get(&n).is_some_and(|p| {
                        p.synced && now.saturating_sub(p.heard_at) < quorum_timeout
                    })
            });
            if !alive {
                tracing::info!(
                    node = me,
                    epoch = leader.epoch,
                    "quorum lost: abandoning leadership"
                );
                self.become_looking();
                return;
            }
        }
        leader.heartbeat_ticks += 1;
        if leader.heartbeat_ticks >= interval {
            leader.heartbeat_ticks = 0;
            self.leader_heartbeat();
        }
    }

    /// Pings and retransmissions.
    fn leader_heartbeat(&mut self) {
        let commit = self.log.commit_zxid();
        let now = self.now;
        let interval = self.heartbeat_ticks();
        let Role::Leading(leader) = &mut self.role else {
            return;
        };
        let epoch = leader.epoch;
        let round = leader.ping_round;
        let mut chunks: Vec<NodeId> = Vec::new();
        for (id, progress) in leader.followers.iter_mut() {
            self.out.send(
                *id,
                Message::Ping(Ping {
                    epoch,
                    commit,
                    round,
                }),
            );
            match &progress.stage {
                Stage::Connected if epoch > 0 => {
                    self.out
                        .send(*id, Message::LeaderInfo(LeaderInfo { epoch }));
                }
                Stage::Connected | Stage::EpochAcked { .. } => {}
                Stage::Truncating { follower_last, to } => {
                    let trunc = Trunc {
                        epoch,
                        follower_last: *follower_last,
                        zxid: *to,
                    };
                    self.out.send(*id, Message::Trunc(trunc));
                }
                Stage::Snapshotting(send) => {
                    if send.acked == progress.snapshot_acked_at_heartbeat {
                        chunks.push(*id);
                    }
                    progress.snapshot_acked_at_heartbeat = send.acked;
                }
                Stage::Streaming => {
                    let stalled = progress.acked == progress.acked_at_heartbeat;
                    if stalled && progress.sent > progress.acked {
                        go_back(progress, now, interval, true);
                    } else if stalled && !progress.synced && progress.newleader_sent.is_some() {
                        // NEWLEADER (or its ack) lost: send it again.
                        progress.newleader_sent = None;
                    }
                    progress.acked_at_heartbeat = progress.acked;
                }
            }
        }
        for id in chunks {
            self.send_snapshot_chunk(id);
        }
    }

    /// Follower: PING.
    pub(crate) fn on_ping(&mut self, from: NodeId, message: Ping) {
        let last_zxid = self.log.history.last_zxid();
        let Role::Following(follower) = &mut self.role else {
            return;
        };
        if follower.leader != from {
            return;
        }
        match follower.phase {
            FollowerPhase::Discovery => follower.silence_ticks = 0,
            phase if phase.epoch() == Some(message.epoch) => {
                follower.silence_ticks = 0;
                let response = PingResponse {
                    epoch: message.epoch,
                    round: message.round,
                    last_zxid,
                };
                self.send(from, Message::PingResponse(response));
                if let FollowerPhase::Broadcast { .. } = phase {
                    self.commit_to(message.commit);
                }
            }
            _ => {}
        }
    }

    /// Leader: PING answered.
    pub(crate) fn on_ping_response(&mut self, from: NodeId, message: PingResponse) {
        let Some(progress) = self.heard_from(from, message.epoch) else {
            return;
        };
        progress.round = progress.round.max(message.round);
        self.confirm_reads();
    }
}
