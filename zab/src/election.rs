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
//! proposal is itself, and follows otherwise.
//!
//! A server that joins a settled ensemble learns the outcome from the replies
//! of following / leading servers (they answer a looking server with their
//! current vote): it follows `L` once a quorum of them report the same
//! outcome and `L` itself reports `Leading` (ZooKeeper's `outofelection` set
//! and `checkLeader`).
//!
//! The election is only a heuristic for picking the server with the most
//! up-to-date history; safety never depends on it (discovery checks that the
//! elected leader is not behind any member of its quorum).

use std::collections::BTreeMap;

use consensus_api::{Membership, NodeId};

use crate::message::{Message, ServerState, Vote};
use crate::node::ZabCore;
use crate::role::ZabRole;
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
    /// The current proposal (`None` for a learner that has heard no voter).
    pub proposal: Option<Ballot>,
    /// Latest notification of each voter in the current round
    /// (`recvset`).
    pub received: BTreeMap<NodeId, Vote>,
    /// Latest notification of each voter that is following or leading
    /// (`outofelection`).
    pub out_of_election: BTreeMap<NodeId, Vote>,
    /// Ticks left to wait for a better notification before settling.
    pub settle_ticks: Option<u64>,
    /// Ticks since notifications were last broadcast.
    pub resend_ticks: u64,
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

    /// Enters Phase 0: a new round, proposing itself (when a voter).
    pub(crate) fn become_looking(&mut self) {
        self.leave_role();
        self.logical_clock += 1;
        let membership = self.log.membership();
        let proposal = membership.is_voter(self.id()).then(|| self.self_ballot());
        tracing::debug!(node = self.id(), round = self.logical_clock, "looking");
        self.role = ZabRole::Looking(Election {
            proposal,
            ..Election::default()
        });
        self.send_notifications();
        self.check_election_quorum();
    }

    /// The notification this server sends now.
    pub(crate) fn current_vote(&self) -> Vote {
        match &self.role {
            ZabRole::Looking(election) => {
                let ballot = election.proposal.unwrap_or_else(|| self.self_ballot());
                Vote {
                    leader: ballot.leader,
                    zxid: ballot.zxid,
                    epoch: ballot.epoch,
                    round: self.logical_clock,
                    state: ServerState::Looking,
                }
            }
            ZabRole::Following(follower) => Vote {
                state: ServerState::Following,
                ..follower.elected.clone()
            },
            ZabRole::Leading(leader) => Vote {
                state: ServerState::Leading,
                ..leader.elected.clone()
            },
        }
    }

    fn send_notifications(&mut self) {
        let vote = self.current_vote();
        for voter in self.log.membership().all_voters() {
            if voter != self.id() {
                self.send(voter, Message::Vote(vote.clone()));
            }
        }
    }

    /// A notification arrived.
    pub(crate) fn on_vote(&mut self, from: NodeId, vote: Vote) {
        let membership = self.log.membership();
        if !membership.contains(from) {
            // Not a member in this server's view: never counted, but answered
            // (ZooKeeper's `validVoter` check), so that a server whose
            // configuration is newer (a reconfiguration this server has not
            // received yet) still learns the votes it needs.
            if vote.state == ServerState::Looking {
                let current = self.current_vote();
                self.send(from, Message::Vote(current));
            }
            return;
        }
        if !matches!(self.role, ZabRole::Looking(_)) {
            // A settled server answers a looking one with its current vote.
            if vote.state == ServerState::Looking {
                let current = self.current_vote();
                self.send(from, Message::Vote(current));
            }
            return;
        }
        match vote.state {
            ServerState::Looking => self.on_looking_vote(from, vote, &membership),
            ServerState::Following | ServerState::Leading => {
                self.on_settled_vote(from, vote, &membership)
            }
        }
    }

    fn on_looking_vote(&mut self, from: NodeId, vote: Vote, membership: &Membership) {
        if !membership.is_voter(from) {
            // A learner looking for the leader: answer, never count it.
            let current = self.current_vote();
            self.send(from, Message::Vote(current));
            return;
        }
        let ballot = Ballot::of(&vote);
        let candidate = membership.is_voter(ballot.leader).then_some(ballot);
        let own = membership.is_voter(self.id()).then(|| self.self_ballot());
        let clock = self.logical_clock;
        let ZabRole::Looking(election) = &mut self.role else {
            return;
        };
        let changed = if vote.round > clock {
            self.logical_clock = vote.round;
            election.received.clear();
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
    }

    fn on_settled_vote(&mut self, from: NodeId, vote: Vote, membership: &Membership) {
        let ballot = Ballot::of(&vote);
        if !membership.is_voter(ballot.leader) {
            return;
        }
        let me = self.id();
        let clock = self.logical_clock;
        let ZabRole::Looking(election) = &mut self.role else {
            return;
        };
        let leading = |set: &BTreeMap<NodeId, Vote>| {
            if ballot.leader == me {
                clock == vote.round
            } else {
                set.get(&ballot.leader)
                    .is_some_and(|v| v.state == ServerState::Leading)
            }
        };
        if vote.round == clock {
            election.received.insert(from, vote.clone());
            let received = &election.received;
            let agree = membership.is_quorum(|n| {
                received
                    .get(&n)
                    .is_some_and(|v| Ballot::of(v) == ballot && v.round == vote.round)
            });
            if agree && leading(received) {
                self.settle(ballot, vote.round);
                return;
            }
        }
        election.out_of_election.insert(from, vote.clone());
        let outside = &election.out_of_election;
        let agree = membership.is_quorum(|n| {
            outside
                .get(&n)
                .is_some_and(|v| Ballot::of(v) == ballot && v.round == vote.round)
        });
        if agree && leading(outside) {
            self.logical_clock = vote.round;
            self.settle(ballot, vote.round);
        }
    }

    /// Starts (or cancels) the finalize wait depending on whether a quorum
    /// agrees with the current proposal.
    fn check_election_quorum(&mut self) {
        let membership = self.log.membership();
        let me = self.id();
        let clock = self.logical_clock;
        let finalize = self.heartbeat_ticks();
        let ZabRole::Looking(election) = &mut self.role else {
            return;
        };
        let Some(proposal) = election.proposal else {
            return;
        };
        let received = &election.received;
        let agree = membership.is_quorum(|n| {
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

    /// One tick of Phase 0: settle after the finalize wait, re-broadcast
    /// notifications every heartbeat interval (lost ones are repaired).
    pub(crate) fn tick_election(&mut self) {
        let interval = self.heartbeat_ticks();
        let clock = self.logical_clock;
        let ZabRole::Looking(election) = &mut self.role else {
            return;
        };
        election.resend_ticks += 1;
        if let Some(left) = election.settle_ticks {
            if left <= 1 {
                election.settle_ticks = None;
                self.check_election_quorum();
                let ZabRole::Looking(election) = &self.role else {
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
        let ZabRole::Looking(election) = &mut self.role else {
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
        };
        tracing::debug!(
            node = self.id(),
            leader = ballot.leader,
            round,
            "election settled"
        );
        if ballot.leader == self.id() {
            self.become_leading(elected);
        } else {
            self.become_following(ballot.leader, elected);
        }
    }
}
