//! Phase 1: Discovery (paper section IV-B; ZooKeeper's
//! `Leader.getEpochToPropose` / `waitForEpochAck` and
//! `Learner.registerWithLeader`).
//!
//! * A follower connects with FOLLOWERINFO carrying its `acceptedEpoch`.
//!   One that arrives while the prospective leader is still in its finalize
//!   wait (the follower settled a moment earlier) is kept and taken up when
//!   the leader settles, as a listening socket's backlog would hold the
//!   connection, instead of being dropped until the retransmission one
//!   heartbeat later.
//! * Once a quorum (itself included) connected, and every voter that
//!   elected it (or one heartbeat interval has passed), the prospective
//!   leader picks `epoch = max(acceptedEpoch) + 1`, persists it as its own
//!   `acceptedEpoch`, and sends LEADERINFO(epoch).
//! * A follower accepts the epoch only if it is above its `acceptedEpoch`:
//!   it persists it and answers ACKEPOCH with its `currentEpoch` and last
//!   zxid (the message leaves with the same `Ready` as the write, so after
//!   it is durable). An epoch equal to its `acceptedEpoch` is answered but
//!   marked not fresh (not counted). A lower one cannot be joined: the
//!   follower does not answer and stays connected until the leader goes
//!   (ZooKeeper's learner goes back to election, where the ensemble's
//!   answers send it to the same leader again: here, with no connection
//!   set-up to slow it, that was a storm of messages with no time passing).
//!   The prospective leader makes this rare: it chooses the epoch only once
//!   every voter that elected it has connected (or after one heartbeat
//!   interval), so the epoch exceeds the `acceptedEpoch` of all of them.
//! * The leader counts fresh ACKEPOCHs of a quorum (itself included). If any
//!   of them is more up to date than the leader, by `(currentEpoch,
//!   lastZxid)`, the leader abandons (ZooKeeper: "Follower is ahead of the
//!   leader"): the leader's history must be the most recent of the quorum,
//!   which is the paper's rule for choosing the initial history. Then it
//!   makes the epoch current and starts synchronization.
//!
//! Because a server accepts an epoch once, and a leader needs a quorum of
//! fresh acceptances, at most one leader is ever established per epoch.

use std::collections::{BTreeMap, BTreeSet};

use consensus_api::NodeId;

use crate::core::ZabCore;
use crate::message::{AckEpoch, FollowerInfo, LeaderInfo, Message, Vote};
use crate::role::{
    FollowerPhase, FollowerProgress, FollowerState, LeaderPhase, LeaderState, Role, Stage,
};
use crate::zxid::Zxid;

impl ZabCore {
    /// Elected: start leading (Phase 1 as prospective leader).
    pub(crate) fn become_leading(&mut self, elected: Vote) {
        let (expected, early) = self.followers_of_the_election();
        self.leave_role();
        let establish_timeout_ticks = 2 * self.random_timeout();
        let mut infos = BTreeMap::new();
        infos.insert(self.id(), self.hard.accepted_epoch);
        tracing::debug!(node = self.id(), "leading: discovery");
        self.role = Role::Leading(LeaderState {
            elected,
            phase: LeaderPhase::Discovery,
            epoch: 0,
            infos,
            epoch_acks: BTreeSet::new(),
            newleader_acks: BTreeSet::new(),
            followers: BTreeMap::new(),
            ticks: 0,
            establish_timeout_ticks,
            heartbeat_ticks: 0,
            proposals: BTreeMap::new(),
            reads: Vec::new(),
            ping_round: 0,
            round_needed: false,
            expected,
        });
        for (from, info) in early {
            self.on_follower_info(from, info);
        }
        self.advance_discovery();
    }

    /// The voters whose latest notification of the election round proposed
    /// this server (they are about to connect), and the FOLLOWERINFOs that
    /// some of them sent while this server was still in its finalize wait:
    /// the same messages, only held until there is a leader to take them
    /// (as a listening socket's backlog would); retransmission stays the
    /// backup.
    fn followers_of_the_election(&mut self) -> (BTreeSet<NodeId>, Vec<(NodeId, FollowerInfo)>) {
        let me = self.id();
        let round = self.logical_clock;
        let membership = self.log.membership();
        let Role::Looking(election) = &mut self.role else {
            return (BTreeSet::new(), Vec::new());
        };
        let expected: BTreeSet<NodeId> = election
            .received
            .iter()
            .filter(|(n, v)| v.leader == me && v.round == round && membership.is_voter(**n))
            .map(|(n, _)| *n)
            .collect();
        let early = std::mem::take(&mut election.early_followers)
            .into_iter()
            .filter(|(from, _)| {
                election
                    .received
                    .get(from)
                    .is_some_and(|v| v.leader == me && v.round == round)
            })
            .collect();
        (expected, early)
    }

    /// Elected someone else: connect to it.
    pub(crate) fn become_following(&mut self, leader: NodeId, elected: Vote) {
        self.leave_role();
        let timeout_ticks = self.random_timeout();
        tracing::debug!(node = self.id(), leader, "following: discovery");
        self.role = Role::Following(FollowerState {
            leader,
            elected,
            phase: FollowerPhase::Discovery,
            fresh: false,
            silence_ticks: 0,
            timeout_ticks,
            heartbeat_ticks: 0,
            incoming: None,
            last_resend: None,
            reads: BTreeMap::new(),
            next_request: 0,
        });
        let accepted_epoch = self.hard.accepted_epoch;
        self.send(
            leader,
            Message::FollowerInfo(FollowerInfo { accepted_epoch }),
        );
    }

    /// Leader: a follower (re)connects.
    pub(crate) fn on_follower_info(&mut self, from: NodeId, message: FollowerInfo) {
        let membership = self.log.membership();
        if !membership.contains(from) {
            tracing::debug!(
                node = self.id(),
                from,
                "FOLLOWERINFO from a non-member dropped"
            );
            return;
        }
        let now = self.now;
        if let Role::Looking(election) = &mut self.role {
            // Settled on this server before its own finalize wait ended.
            election.early_followers.insert(from, message);
            return;
        }
        let Role::Leading(leader) = &mut self.role else {
            return;
        };
        leader
            .followers
            .insert(from, FollowerProgress::connected(now));
        if leader.phase == LeaderPhase::Discovery {
            if membership.is_voter(from) {
                leader.infos.insert(from, message.accepted_epoch);
            }
            self.advance_discovery();
        } else {
            let epoch = leader.epoch;
            self.send(from, Message::LeaderInfo(LeaderInfo { epoch }));
        }
    }

    /// Leader: with a quorum connected, propose the new epoch: at once if
    /// every voter that elected this server has connected, otherwise after
    /// at most one heartbeat interval (so that the epoch exceeds the
    /// `acceptedEpoch` of everyone known to be coming, and none of them has
    /// to sit this epoch out for having accepted a higher one).
    pub(crate) fn advance_discovery(&mut self) {
        let membership = self.log.membership();
        let accepted = self.hard.accepted_epoch;
        let me = self.id();
        let interval = self.heartbeat_ticks();
        let Role::Leading(leader) = &mut self.role else {
            return;
        };
        let all_expected = leader.expected.iter().all(|n| leader.infos.contains_key(n));
        if leader.phase != LeaderPhase::Discovery
            || !membership.is_quorum(|n| leader.infos.contains_key(&n))
            || !(all_expected || leader.ticks >= interval)
        {
            return;
        }
        let highest = leader
            .infos
            .values()
            .copied()
            .max()
            .unwrap_or(0)
            .max(accepted);
        // A hostile FOLLOWERINFO (or store) may claim any epoch: the space
        // ends at `Zxid::PART_MAX`, and `u64::MAX + 1` must not overflow.
        let Some(epoch) = highest.checked_add(1).filter(|e| *e <= Zxid::PART_MAX) else {
            tracing::error!(node = me, "epoch space exhausted");
            return;
        };
        leader.epoch = epoch;
        leader.phase = LeaderPhase::EpochAck;
        leader.epoch_acks = BTreeSet::from([me]);
        let followers: Vec<NodeId> = leader.followers.keys().copied().collect();
        self.set_accepted_epoch(epoch);
        for follower in followers {
            self.send(follower, Message::LeaderInfo(LeaderInfo { epoch }));
        }
        self.advance_epoch_ack();
    }

    /// Follower: the leader's new epoch.
    pub(crate) fn on_leader_info(&mut self, from: NodeId, message: LeaderInfo) {
        let accepted = self.hard.accepted_epoch;
        let current_epoch = self.hard.current_epoch;
        let last_zxid = self.log.history.last_zxid();
        let Role::Following(follower) = &mut self.role else {
            return;
        };
        if follower.leader != from {
            return;
        }
        let fresh = match follower.phase {
            FollowerPhase::Discovery => {
                if message.epoch < accepted {
                    // It cannot join this epoch. Back in election, the
                    // ensemble's answers would only send it to this leader
                    // again (a storm with no time passing): it stays
                    // connected, unacknowledged, and leaves with the leader.
                    tracing::info!(
                        node = self.config.id,
                        epoch = message.epoch,
                        accepted,
                        "leader's epoch is below acceptedEpoch: not joining it"
                    );
                    return;
                }
                let fresh = message.epoch > accepted;
                follower.silence_ticks = 0;
                follower.phase = FollowerPhase::Synchronization {
                    epoch: message.epoch,
                };
                follower.fresh = fresh;
                if fresh {
                    self.set_accepted_epoch(message.epoch);
                }
                fresh
            }
            phase if phase.epoch() == Some(message.epoch) => {
                follower.silence_ticks = 0;
                follower.fresh
            }
            _ => return,
        };
        let ack = AckEpoch {
            epoch: message.epoch,
            current_epoch,
            last_zxid,
            fresh,
        };
        self.send(from, Message::AckEpoch(ack));
    }

    /// Leader: a follower accepted the epoch.
    pub(crate) fn on_ack_epoch(&mut self, from: NodeId, message: AckEpoch) {
        let membership = self.log.membership();
        let mine = (self.hard.current_epoch, self.log.history.last_zxid());
        let now = self.now;
        let Role::Leading(leader) = &mut self.role else {
            return;
        };
        if leader.epoch == 0 || message.epoch != leader.epoch {
            return;
        }
        let Some(progress) = leader.followers.get_mut(&from) else {
            return;
        };
        progress.heard_at = now;
        if !matches!(progress.stage, Stage::Connected) {
            // A duplicate: this follower is already being handled.
            return;
        }
        match leader.phase {
            LeaderPhase::Discovery => {}
            LeaderPhase::EpochAck => {
                progress.stage = Stage::EpochAcked {
                    report: message.last_zxid,
                };
                if message.fresh && membership.is_voter(from) {
                    if (message.current_epoch, message.last_zxid) > mine {
                        tracing::info!(
                            node = self.config.id,
                            from,
                            "follower is ahead of the leader: abandoning leadership"
                        );
                        self.become_looking();
                        return;
                    }
                    leader.epoch_acks.insert(from);
                }
                self.advance_epoch_ack();
            }
            LeaderPhase::Synchronization | LeaderPhase::Broadcast => {
                self.start_sync(from, message.last_zxid);
            }
        }
    }

    /// Leader: with a quorum of fresh ACKEPOCHs, make the epoch current and
    /// synchronize everyone who acked.
    fn advance_epoch_ack(&mut self) {
        let membership = self.log.membership();
        let me = self.id();
        let Role::Leading(leader) = &mut self.role else {
            return;
        };
        if leader.phase != LeaderPhase::EpochAck
            || !membership.is_quorum(|n| leader.epoch_acks.contains(&n))
        {
            return;
        }
        leader.phase = LeaderPhase::Synchronization;
        leader.newleader_acks = BTreeSet::from([me]);
        let epoch = leader.epoch;
        let waiting: Vec<(NodeId, Zxid)> = leader
            .followers
            .iter()
            .filter_map(|(id, p)| match p.stage {
                Stage::EpochAcked { report } => Some((*id, report)),
                _ => None,
            })
            .collect();
        self.set_current_epoch(epoch);
        tracing::debug!(node = me, epoch, "leading: synchronization");
        for (follower, report) in waiting {
            self.start_sync(follower, report);
        }
        self.advance_sync();
    }
}
