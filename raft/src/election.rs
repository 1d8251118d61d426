//! Leader election (Raft paper §5.2, §5.4.1; thesis §9.6 pre-vote, §6
//! check-quorum lease, §3.10 leadership transfer).
//!
//! A follower whose election timer fires first runs a **pre-vote**: it asks
//! the voters whether they *would* vote for it in `term + 1`, without
//! anybody changing term. Only with a quorum of pre-votes does it become a
//! **candidate**: it increments its term, votes for itself (both durable
//! before the requests leave) and asks for votes. A voter grants at most one
//! vote per term, and only to a candidate whose log is at least as
//! up-to-date as its own (last term, then last index), which keeps every
//! committed entry in every future leader's log (Leader Completeness).

use std::collections::BTreeMap;

use consensus_api::NodeId;

use crate::core::{RaftCore, Role};
use crate::message::{Message, RequestVote, RequestVoteResponse, TimeoutNow};
use crate::read::ReadMode;

/// Votes collected by a (pre-)candidate: `true` granted, `false` refused.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct CandidateState {
    pub(crate) votes: BTreeMap<NodeId, bool>,
}

/// Why a node starts campaigning.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) enum Campaign {
    /// Election timeout with pre-vote enabled: ask first.
    PreVote,
    /// A real election (timeout without pre-vote, or after a pre-vote quorum).
    Election,
    /// `TimeoutNow` from the leader: a real election that voters accept
    /// despite their leader lease.
    Transfer,
}

/// How a vote count stands.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum Tally {
    Won,
    Lost,
    Pending,
}

impl RaftCore {
    /// True if this node may become leader: a voter of the configuration in
    /// force (learners and removed nodes never campaign).
    pub(crate) fn is_promotable(&self) -> bool {
        self.log.membership().is_voter(self.id)
    }

    /// Timer of followers and candidates (§5.2): start an election when no
    /// leader was heard from for a randomized timeout.
    pub(crate) fn tick_election(&mut self) {
        self.election_elapsed += 1;
        if self.election_elapsed < self.election_timeout {
            self.ask_pre_votes_again();
            return;
        }
        if !self.is_promotable() {
            self.reset_election_timer();
            return;
        }
        let campaign = if self.config.pre_vote {
            Campaign::PreVote
        } else {
            Campaign::Election
        };
        self.campaign(campaign);
    }

    /// True while this node believes a leader is alive: it then refuses to
    /// help a disruptive candidate. Applies to real votes with check-quorum
    /// on (thesis §6: "if a server receives a RequestVote request within the
    /// minimum election timeout of hearing from a current leader, it does
    /// not update its term or grant its vote") and always to pre-votes
    /// (thesis §9.6). With lease reads a freshly restarted node also waits
    /// one election timeout, since it may have acknowledged a lease it no
    /// longer remembers.
    pub(crate) fn in_leader_lease(&self, pre_vote: bool) -> bool {
        if !(self.config.check_quorum || pre_vote) {
            return false;
        }
        let timeout_min = self.config.election_timeout_ticks_min;
        match self.role {
            Role::Leader(_) => true,
            _ => {
                (self.leader_id.is_some() && self.election_elapsed < timeout_min)
                    || (self.read_mode == ReadMode::Lease && self.now < timeout_min)
            }
        }
    }

    /// Starts a campaign of the given kind.
    pub(crate) fn campaign(&mut self, campaign: Campaign) {
        match campaign {
            Campaign::PreVote => self.become_pre_candidate(),
            Campaign::Election | Campaign::Transfer => {
                self.become_candidate(campaign == Campaign::Transfer)
            }
        }
    }

    /// Pre-vote (thesis §9.6): ask for votes in `term + 1` without changing
    /// the term, so a node that cannot win never disrupts the cluster.
    fn become_pre_candidate(&mut self) {
        tracing::debug!(
            id = self.id,
            term = self.term,
            elapsed = self.election_elapsed,
            timeout = self.election_timeout,
            "starts pre-vote"
        );
        let mut state = CandidateState::default();
        state.votes.insert(self.id, true);
        self.role = Role::PreCandidate(state);
        self.leader_id = None;
        self.reset_election_timer();
        if self.tally() == Tally::Won {
            self.become_candidate(false);
            return;
        }
        self.request_votes(self.term.saturating_add(1), true, false);
    }

    /// A pre-candidate asks the voters that have not granted its pre-vote
    /// again every heartbeat interval, until its election timer runs out.
    /// A voter refuses a pre-vote while it heard its leader within the
    /// minimum election timeout (thesis §9.6), and the two survivors of a
    /// leader's crash heard it last at about the same moment: the first to
    /// time out can ask a few milliseconds before the other's lease ends,
    /// and if its log is the longer one, the other's own pre-vote fails
    /// too. Asked only once, it then waited for a second randomized timeout
    /// (measured: 1 failover in 30 took 390-490 ms instead of about 190).
    /// Asking again costs one message per voter per heartbeat interval and
    /// cannot disrupt anyone: a pre-vote changes no term and no vote.
    fn ask_pre_votes_again(&mut self) {
        let interval = self.config.heartbeat_interval_ticks.max(1);
        if self.election_elapsed % interval != 0 {
            return;
        }
        let Role::PreCandidate(state) = &mut self.role else {
            return;
        };
        let me = self.id;
        let again: Vec<NodeId> = self
            .log
            .membership()
            .all_voters()
            .into_iter()
            .filter(|voter| *voter != me && state.votes.get(voter) != Some(&true))
            .collect();
        for voter in &again {
            state.votes.remove(voter);
        }
        let request = RequestVote {
            term: self.term.saturating_add(1),
            last_log_index: self.log.last_index(),
            last_log_term: self.log.last_term(),
            pre_vote: true,
            transfer: false,
        };
        for voter in again {
            self.send(voter, Message::RequestVote(request.clone()));
        }
    }

    /// §5.2: "increment currentTerm, vote for self, reset election timer,
    /// send RequestVote RPCs to all other servers".
    fn become_candidate(&mut self, transfer: bool) {
        self.term = self.term.saturating_add(1);
        self.vote = Some(self.id);
        self.hard_state_dirty = true;
        tracing::debug!(id = self.id, term = self.term, transfer, "starts election");
        let mut state = CandidateState::default();
        state.votes.insert(self.id, true);
        self.role = Role::Candidate(state);
        self.leader_id = None;
        self.reset_election_timer();
        if self.tally() == Tally::Won {
            self.become_leader();
            return;
        }
        self.request_votes(self.term, false, transfer);
    }

    fn request_votes(&mut self, term: u64, pre_vote: bool, transfer: bool) {
        let request = RequestVote {
            term,
            last_log_index: self.log.last_index(),
            last_log_term: self.log.last_term(),
            pre_vote,
            transfer,
        };
        let id = self.id;
        let voters = self.log.membership().all_voters();
        for voter in voters.into_iter().filter(|v| *v != id) {
            self.send(voter, Message::RequestVote(request.clone()));
        }
    }

    fn tally(&self) -> Tally {
        let votes = match &self.role {
            Role::PreCandidate(state) | Role::Candidate(state) => &state.votes,
            _ => return Tally::Pending,
        };
        let membership = self.log.membership();
        if membership.is_quorum(|n| votes.get(&n) == Some(&true)) {
            Tally::Won
        } else if !membership.is_quorum(|n| votes.get(&n) != Some(&false)) {
            Tally::Lost
        } else {
            Tally::Pending
        }
    }

    /// RequestVote receiver (Figure 2): grant if the vote is free in this
    /// term and the candidate's log is at least as up-to-date (§5.4.1).
    pub(crate) fn on_request_vote(&mut self, from: NodeId, request: RequestVote) {
        let free = self.vote == Some(from)
            || (self.vote.is_none() && self.leader_id.is_none())
            || (request.pre_vote && request.term > self.term);
        let up_to_date = self
            .log
            .is_up_to_date(request.last_log_index, request.last_log_term);
        let granted = free && up_to_date && !self.outranks_pre_vote_rival(from, &request);
        tracing::debug!(
            id = self.id,
            from,
            term = request.term,
            pre_vote = request.pre_vote,
            granted,
            "vote request"
        );
        if granted && !request.pre_vote {
            self.vote = Some(from);
            self.hard_state_dirty = true;
            self.election_elapsed = 0;
        }
        let term = if granted { request.term } else { self.term };
        self.send(
            from,
            Message::RequestVoteResponse(RequestVoteResponse {
                term,
                pre_vote: request.pre_vote,
                granted,
            }),
        );
    }

    /// True when this node, itself a pre-candidate for the same term,
    /// ranks above the node asking for a pre-vote: its log is more up to
    /// date, or as up to date with a higher id. Two survivors of a leader's
    /// crash whose timers run out together would otherwise grant each
    /// other's pre-vote, both start a real election, each keep its own vote
    /// and split it, and wait a randomized timeout for another term (traced
    /// in the simulator: `leader-crash`, 3 nodes, seed 61, 458 ms). Ranked,
    /// the lower one grants and the higher one wins; a higher-ranked rival
    /// always exists for the lower one only, so one of any two concurrent
    /// pre-candidates can still collect the other's grant. A pre-vote
    /// changes no term and no vote, so the rule only decides who goes first.
    fn outranks_pre_vote_rival(&self, from: NodeId, request: &RequestVote) -> bool {
        if !request.pre_vote
            || !matches!(self.role, Role::PreCandidate(_))
            || request.term != self.term.saturating_add(1)
        {
            return false;
        }
        let mine = (self.log.last_term(), self.log.last_index(), self.id);
        let theirs = (request.last_log_term, request.last_log_index, from);
        mine > theirs
    }

    /// Counts a vote; wins or gives up when the outcome is decided.
    pub(crate) fn on_request_vote_response(&mut self, from: NodeId, response: RequestVoteResponse) {
        let expected_term = match self.role {
            Role::PreCandidate(_) if response.pre_vote => self.term.saturating_add(1),
            Role::Candidate(_) if !response.pre_vote => self.term,
            _ => return,
        };
        if response.granted && response.term != expected_term {
            return;
        }
        if let Role::PreCandidate(state) | Role::Candidate(state) = &mut self.role {
            state.votes.entry(from).or_insert(response.granted);
        }
        match (self.tally(), &self.role) {
            (Tally::Won, Role::PreCandidate(_)) => self.become_candidate(false),
            (Tally::Won, Role::Candidate(_)) => self.become_leader(),
            (Tally::Lost, _) => {
                tracing::debug!(id = self.id, term = self.term, "lost the election");
                self.become_follower(self.term, None);
            }
            _ => {}
        }
    }

    /// Leadership transfer target (thesis §3.10): start a real election at
    /// once, bypassing pre-vote and the voters' leader lease.
    pub(crate) fn on_timeout_now(&mut self, from: NodeId, _request: TimeoutNow) {
        if matches!(self.role, Role::Leader(_)) || !self.is_promotable() {
            tracing::debug!(id = self.id, from, "TimeoutNow ignored");
            return;
        }
        self.campaign(Campaign::Transfer);
    }
}
