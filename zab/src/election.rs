//! Phase 0: Fast Leader Election (ZooKeeper's `FastLeaderElection`; the
//! paper's section IV-B "Phase 0" leaves the election open and ZooKeeper
//! fills it with FLE).
//!
//! Each looking server proposes a leader and broadcasts notifications
//! ([`Vote`]) carrying its proposal, the proposal's last zxid and
//! `currentEpoch`, its own election round (`logicalclock`) and its state.
//! Proposals are totally ordered by `(epoch, zxid, id)`
//! ([`Ballot::key`]): a server adopts any better proposal it hears of and
//! re-broadcasts. A higher round restarts the tally. When a quorum's latest
//! notifications (the server's own included) agree with its proposal, the
//! server waits a short "finalize" time (one heartbeat interval, in ticks) for
//! a better notification; if none comes it settles: it leads when the
//! proposal is itself, and follows otherwise. It settles at once, without
//! the wait, when every voter has voted for the proposal in this round (no
//! better notification can come), not counting a leader it gave up for its
//! silence and has not heard from since (a departure from ZooKeeper, see
//! "Failover shortcuts" in the crate docs).
//!
//! A server that joins a settled ensemble learns the outcome from the replies
//! of following / leading servers (they answer a looking server with their
//! current vote): it follows `L` once a quorum of them report the same
//! outcome and `L` itself reports `Leading` (ZooKeeper's `outofelection` set
//! and `checkLeader`).
//!
//! Notifications carry the sender's configuration and its version (the zxid
//! of the proposal that introduced it), as in ZooKeeper 3.5: a looking
//! server runs the election in the newest configuration it hears of (its
//! *view*; an initial configuration is version `0:0` and never replaces a
//! logged one), so a server that missed a reconfiguration still recognises
//! the current voters and leader. Servers answer notifications from anyone
//! (ZooKeeper's `validVoter` check: non-voters are answered, never counted).
//! A server only leads if it is a voter in its own configuration, which is
//! the one its discovery quorums use.
//!
//! The election is only a heuristic for picking the server with the most
//! up-to-date history; safety never depends on it (discovery checks that the
//! elected leader is not behind any member of its quorum, with the quorums
//! of the leader's own configuration).

use std::collections::{BTreeMap, BTreeSet};

use consensus_api::{Membership, NodeId};

use crate::core::ZabCore;
use crate::message::{FollowerInfo, Message, ServerState, Vote};
use crate::role::Role;
use crate::zxid::Zxid;

/// A proposed leader with the credentials it is ranked by.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) struct Ballot {
    /// The proposed leader.
    pub leader: NodeId,
    /// Its last zxid.
    pub zxid: Zxid,
    /// Its `currentEpoch`.
    pub epoch: u64,
}

impl Ballot {
    /// The ballot a notification carries.
    pub fn of(vote: &Vote) -> Ballot {
        Ballot {
            leader: vote.leader,
            zxid: vote.zxid,
            epoch: vote.epoch,
        }
    }

    /// The total order of FLE (`totalOrderPredicate`): `currentEpoch` first,
    /// then the last zxid, then the server id.
    pub fn key(&self) -> (u64, Zxid, NodeId) {
        (self.epoch, self.zxid, self.leader)
    }

    /// True if `self` wins over `other`.
    pub fn beats(&self, other: &Ballot) -> bool {
        self.key() > other.key()
    }
}

/// Phase 0 state of a looking server.
#[derive(Debug, Default)]
pub(crate) struct Election {
    /// The current proposal (`None` while this server knows no voter to
    /// propose, e.g. a learner that has heard no one).
    pub proposal: Option<Ballot>,
    /// Latest notification of each server in the current round
    /// (`recvset`).
    pub received: BTreeMap<NodeId, Vote>,
    /// Latest notification of each server that is following or leading
    /// (`outofelection`).
    pub out_of_election: BTreeMap<NodeId, Vote>,
    /// Ticks left to wait for a better notification before settling.
    pub settle_ticks: Option<u64>,
    /// Ticks since notifications were last broadcast.
    pub resend_ticks: u64,
    /// Servers heard from outside this server's own configuration: notified
    /// too.
    pub heard: BTreeSet<NodeId>,
    /// The configuration the election runs in: the newest known.
    pub view: Membership,
    /// Its version.
    pub view_version: Zxid,
    /// Voters this server stopped following because they fell silent, and
    /// has not heard from since: the finalize wait does not wait for them.
    pub silent: BTreeSet<NodeId>,
    /// FOLLOWERINFOs that arrived before this server's own finalize wait
    /// ended (a follower settles on it a little earlier): kept for the
    /// round and taken up if this server goes on to lead, instead of
    /// waiting for the follower's retransmission a heartbeat later.
    pub early_followers: BTreeMap<NodeId, FollowerInfo>,
}

impl Election {
    /// A placeholder while roles change.
    pub fn idle() -> Election {
        Election::default()
    }
}

impl ZabCore {
    /// This server's own credentials.
    pub(crate) fn self_ballot(&self) -> Ballot {
        Ballot {
            leader: self.id(),
            zxid: self.log.history.last_zxid(),
            epoch: self.hard.current_epoch,
        }
    }

    /// Whether this server may propose itself in `view`: it must be a voter
    /// there and in its own configuration (the one it would lead with).
    fn may_lead_in(&self, view: &Membership) -> bool {
        view.is_voter(self.id()) && self.log.membership().is_voter(self.id())
    }

    /// Enters Phase 0: a new round, proposing itself (when it may lead).
    pub(crate) fn become_looking(&mut self) {
        self.leave_role();
        self.logical_clock += 1;
        let view = self.log.membership();
        let view_version = self.log.configs.version();
        let proposal = self.may_lead_in(&view).then(|| self.self_ballot());
        tracing::debug!(node = self.id(), round = self.logical_clock, "looking");
        self.role = Role::Looking(Election {
            proposal,
            view,
            view_version,
            ..Election::default()
        });
        self.send_notifications();
        self.check_election_quorum();
        self.settle_if_unanimous();
    }

    /// Enters Phase 0 after giving up `leader` for its silence: the finalize
    /// wait will not wait for its vote (until it is heard from again).
    pub(crate) fn become_looking_without(&mut self, leader: NodeId) {
        self.become_looking();
        if let Role::Looking(election) = &mut self.role {
            election.silent.insert(leader);
        }
        self.settle_if_unanimous();
    }

    /// The notification this server sends now.
    pub(crate) fn current_vote(&self) -> Vote {
        match &self.role {
            Role::Looking(election) => {
                let ballot = election.proposal.unwrap_or_else(|| self.self_ballot());
                Vote {
                    leader: ballot.leader,
                    zxid: ballot.zxid,
                    epoch: ballot.epoch,
                    round: self.logical_clock,
                    state: ServerState::Looking,
                    config: election.view.clone(),
                    config_version: election.view_version,
                }
            }
            Role::Following(follower) => Vote {
                state: ServerState::Following,
                config: self.log.membership(),
                config_version: self.log.configs.version(),
                ..follower.elected.clone()
            },
            Role::Leading(leader) => Vote {
                state: ServerState::Leading,
                config: self.log.membership(),
                config_version: self.log.configs.version(),
                ..leader.elected.clone()
            },
        }
    }

    fn send_notifications(&mut self) {
        let vote = self.current_vote();
        let mut to = self.log.membership().all_voters();
        if let Role::Looking(election) = &self.role {
            to.extend(election.view.all_voters());
            to.extend(election.heard.iter().copied());
        }
        for peer in to {
            if peer != self.id() {
                self.send(peer, Message::Vote(vote.clone()));
            }
        }
    }

    /// A notification arrived.
    pub(crate) fn on_vote(&mut self, from: NodeId, vote: Vote) {
        if !matches!(self.role, Role::Looking(_)) {
            if vote.state != ServerState::Looking {
                return;
            }
            if !self.leader_is_silent() {
                // A settled server answers a looking one (member or not)
                // with its current vote.
                let current = self.current_vote();
                self.send(from, Message::Vote(current));
                return;
            }
            // Someone is looking and this follower has not heard from its
            // leader for longer than a heartbeat and slack: it gives the
            // leader up now rather than at its own timeout, and takes part.
            self.abandon_silent_leader();
        }
        self.adopt_newer_view(&vote);
        let own = self.log.membership();
        let Role::Looking(election) = &mut self.role else {
            return;
        };
        if !own.contains(from) {
            election.heard.insert(from);
        }
        election.silent.remove(&from);
        let view = election.view.clone();
        if !view.is_voter(from) {
            // A learner or a server outside the configuration: answered,
            // never counted.
            if vote.state == ServerState::Looking {
                let current = self.current_vote();
                self.send(from, Message::Vote(current));
            }
            return;
        }
        match vote.state {
            ServerState::Looking => self.on_looking_vote(from, vote, &view),
            ServerState::Following | ServerState::Leading => {
                self.on_settled_vote(from, vote, &view)
            }
        }
    }

    /// Runs the election in the notification's configuration if it is newer
    /// than the one known (ZooKeeper 3.5 `processReconfig` in FLE).
    fn adopt_newer_view(&mut self, vote: &Vote) {
        let Role::Looking(election) = &self.role else {
            return;
        };
        if !newer_view(vote, &election.view, election.view_version)
            || vote.config.validate().is_err()
        {
            return;
        }
        let view = vote.config.clone();
        let own = self.may_lead_in(&view).then(|| self.self_ballot());
        let Role::Looking(election) = &mut self.role else {
            return;
        };
        tracing::debug!(node = self.config.id, view = %view, "election adopts a newer configuration");
        election.view = view;
        election.view_version = vote.config_version;
        if election
            .proposal
            .is_some_and(|p| !election.view.is_voter(p.leader))
        {
            election.proposal = own;
        }
        election.settle_ticks = None;
        self.send_notifications();
    }

    fn on_looking_vote(&mut self, from: NodeId, vote: Vote, view: &Membership) {
        let ballot = Ballot::of(&vote);
        let candidate = view.is_voter(ballot.leader).then_some(ballot);
        let own = self.may_lead_in(view).then(|| self.self_ballot());
        let clock = self.logical_clock;
        let Role::Looking(election) = &mut self.role else {
            return;
        };
        let changed = if vote.round > clock {
            self.logical_clock = vote.round;
            election.received.clear();
            election.early_followers.clear();
            election.proposal = match (candidate, own) {
                (Some(c), Some(o)) => Some(if c.beats(&o) { c } else { o }),
                (c, o) => c.or(o),
            };
            true
        } else if vote.round < clock {
            let current = self.current_vote();
            self.send(from, Message::Vote(current));
            return;
        } else if let Some(c) = candidate.filter(|c| election.proposal.is_none_or(|p| c.beats(&p)))
        {
            election.proposal = Some(c);
            true
        } else {
            false
        };
        election.received.insert(from, vote);
        if changed {
            election.settle_ticks = None;
            self.send_notifications();
        }
        self.check_election_quorum();
        self.settle_if_unanimous();
    }

    fn on_settled_vote(&mut self, from: NodeId, vote: Vote, view: &Membership) {
        let ballot = Ballot::of(&vote);
        if !view.is_voter(ballot.leader) {
            return;
        }
        let me = self.id();
        let clock = self.logical_clock;
        let Role::Looking(election) = &mut self.role else {
            return;
        };
        // The leader itself must say it leads (ZooKeeper's `checkLeader`).
        let leading = |set: &BTreeMap<NodeId, Vote>| {
            if ballot.leader == me {
                clock == vote.round
            } else {
                set.get(&ballot.leader)
                    .is_some_and(|v| v.state == ServerState::Leading && v.leader == ballot.leader)
            }
        };
        // Settled servers agree when they follow the same leader (they may
        // have joined its current term from an older election, with another
        // ballot); looking ones when they propose this ballot in this round.
        // In this server's own round its own vote counts too, as
        // ZooKeeper's `recvset` holds the server's own notification: a
        // server whose proposal a quorum already follows settles, even if
        // its notifications to them were lost.
        let mine = election.proposal == Some(ballot);
        let agree = |set: &BTreeMap<NodeId, Vote>, own_round: bool| {
            view.is_quorum(|n| {
                (own_round && mine && n == me)
                    || set.get(&n).is_some_and(|v| match v.state {
                        ServerState::Looking => Ballot::of(v) == ballot && v.round == vote.round,
                        ServerState::Following | ServerState::Leading => v.leader == ballot.leader,
                    })
            })
        };
        if vote.round == clock {
            election.received.insert(from, vote.clone());
            if agree(&election.received, true) && leading(&election.received) {
                self.settle(ballot, vote.round);
                return;
            }
        }
        election.out_of_election.insert(from, vote.clone());
        if agree(&election.out_of_election, false) && leading(&election.out_of_election) {
            self.logical_clock = vote.round;
            self.settle(ballot, vote.round);
        }
    }

    /// Starts (or cancels) the finalize wait depending on whether a quorum
    /// of the view agrees with the current proposal.
    fn check_election_quorum(&mut self) {
        let me = self.id();
        let clock = self.logical_clock;
        let finalize = self.heartbeat_ticks();
        let Role::Looking(election) = &mut self.role else {
            return;
        };
        let Some(proposal) = election.proposal else {
            return;
        };
        let received = &election.received;
        let agree = election.view.is_quorum(|n| {
            n == me
                || received
                    .get(&n)
                    .is_some_and(|v| v.round == clock && Ballot::of(v) == proposal)
        });
        if !agree {
            election.settle_ticks = None;
        } else if election.settle_ticks.is_none() {
            election.settle_ticks = Some(finalize);
        }
    }

    /// Ends the finalize wait at once when every voter of the view that is
    /// not known to be silent has voted for the proposal in this round
    /// (this server included): every one of them proposes a ballot at least
    /// as good as its own, so no better notification can come in this round
    /// from a server that is up, and the wait would only cost time.
    fn settle_if_unanimous(&mut self) {
        let me = self.id();
        let clock = self.logical_clock;
        let Role::Looking(election) = &self.role else {
            return;
        };
        let (Some(_), Some(proposal)) = (election.settle_ticks, election.proposal) else {
            return;
        };
        let unanimous = election.view.all_voters().into_iter().all(|n| {
            n == me
                || election.silent.contains(&n)
                || election
                    .received
                    .get(&n)
                    .is_some_and(|v| v.round == clock && Ballot::of(v) == proposal)
        });
        if unanimous {
            tracing::debug!(
                node = me,
                leader = proposal.leader,
                "every reachable voter agrees"
            );
            self.settle(proposal, clock);
        }
    }

    /// One tick of Phase 0: settle after the finalize wait, re-broadcast
    /// notifications every heartbeat interval (lost ones are repaired).
    pub(crate) fn tick_election(&mut self) {
        let interval = self.heartbeat_ticks();
        let clock = self.logical_clock;
        let Role::Looking(election) = &mut self.role else {
            return;
        };
        election.resend_ticks += 1;
        if let Some(left) = election.settle_ticks {
            if left <= 1 {
                election.settle_ticks = None;
                self.check_election_quorum();
                let Role::Looking(election) = &self.role else {
                    return;
                };
                if let (Some(_), Some(proposal)) = (election.settle_ticks, election.proposal) {
                    self.settle(proposal, clock);
                    return;
                }
            } else {
                election.settle_ticks = Some(left - 1);
            }
        }
        let Role::Looking(election) = &mut self.role else {
            return;
        };
        if election.resend_ticks >= interval {
            election.resend_ticks = 0;
            self.send_notifications();
        }
    }

    /// Leaves Phase 0 with `ballot` elected in `round`.
    fn settle(&mut self, ballot: Ballot, round: u64) {
        let elected = Vote {
            leader: ballot.leader,
            zxid: ballot.zxid,
            epoch: ballot.epoch,
            round,
            state: ServerState::Looking,
            config: self.log.membership(),
            config_version: self.log.configs.version(),
        };
        tracing::debug!(
            node = self.id(),
            leader = ballot.leader,
            round,
            "election settled"
        );
        if ballot.leader == self.id() {
            if !self.log.membership().is_voter(self.id()) {
                // Elected in a configuration where this server votes, but it
                // does not in its own (stale) one: it cannot lead.
                if let Role::Looking(election) = &mut self.role {
                    election.settle_ticks = None;
                    election.proposal = None;
                }
                return;
            }
            self.become_leading(elected);
        } else {
            self.become_following(ballot.leader, elected);
        }
    }
}

/// Whether the notification's configuration is newer than the view: a
/// higher version, or the same reconfiguration committed where the view
/// still has it pending. A configuration's version is the zxid of its
/// proposal, and a server with the proposal uncommitted runs the election
/// in the joint configuration (old and new) under that same version; a
/// server that saw it commit has the new configuration alone. Without this
/// rule the two kinds never converge when the committed side cannot lead in
/// the joint configuration and the pending side proposes a server that is
/// not a voter of the new one (found by `random_reconfigurations_under_faults`).
fn newer_view(vote: &Vote, view: &Membership, view_version: Zxid) -> bool {
    vote.config_version > view_version
        || (vote.config_version == view_version && view.is_joint() && !vote.config.is_joint())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ballot(leader: NodeId, zxid: Zxid, epoch: u64) -> Ballot {
        Ballot {
            leader,
            zxid,
            epoch,
        }
    }

    /// FLE `totalOrderPredicate`: currentEpoch, then zxid, then id.
    #[test]
    fn votes_order_by_epoch_then_zxid_then_id() {
        let low_id = ballot(1, Zxid::new(3, 9), 3);
        assert!(
            ballot(2, Zxid::new(3, 9), 3).beats(&low_id),
            "id breaks ties"
        );
        assert!(
            ballot(1, Zxid::new(3, 10), 3).beats(&ballot(9, Zxid::new(3, 9), 3)),
            "zxid before id"
        );
        assert!(
            ballot(1, Zxid::new(2, 1), 4).beats(&ballot(9, Zxid::new(3, 50), 3)),
            "epoch before zxid"
        );
        assert!(!low_id.beats(&low_id));
    }
}
