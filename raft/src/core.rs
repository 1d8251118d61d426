//! [`RaftCore`]: the node, its roles, the term rules every message goes
//! through (Figure 2, "Rules for Servers"), the `Ready` batch and the
//! invariants checked after every input.

use std::collections::BTreeMap;

use consensus_api::{
    Bytes, Core, CoreConfig, InitialState, LogIndex, Membership, NodeId, PeerProgress, Ready,
    RecoverError, Rejected, Role as StatusRole, Snapshot, SnapshotTransfer, Status, Ticket,
    TicketCounter,
};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::election::CandidateState;
use crate::hard_state::HardState;
use crate::leader::LeaderState;
use crate::log::RaftLog;
use crate::message::{AppendOutcome, HeartbeatResponse, Message, RequestVoteResponse};
use crate::progress::Progress;
use crate::read::ReadMode;

/// The part a node plays, with the state only that part has.
#[derive(Debug)]
pub(crate) enum Role {
    /// Follows `RaftCore::leader_id` (or waits for a leader).
    Follower,
    /// Asks for pre-votes without changing its term (thesis §9.6).
    PreCandidate(CandidateState),
    /// Campaigns in its own term (§5.2).
    Candidate(CandidateState),
    /// Leads its term (§5.3).
    Leader(Box<LeaderState>),
}

impl Role {
    /// A leader's progress of `from`, marked as heard from just now (every
    /// answer a follower sends proves it alive); `None` when this node is
    /// not a leader or `from` is not a member it replicates to.
    pub(crate) fn heard_from(&mut self, from: NodeId) -> Option<&mut Progress> {
        let Role::Leader(leader) = self else {
            return None;
        };
        let progress = leader.progress.get_mut(&from)?;
        progress.ticks_since_heard = 0;
        Some(progress)
    }
}

/// A Raft node as a deterministic, sans-IO state machine.
///
/// Build one with [`Core::restore`] (an empty [`InitialState`] starts a new
/// node of `config.initial_membership`), feed it messages, ticks and client
/// requests, and drain [`Core::ready`] after each input. See the crate
/// documentation for the protocol.
#[derive(Debug)]
pub struct RaftCore {
    pub(crate) config: CoreConfig,
    pub(crate) id: NodeId,
    pub(crate) rng: ChaCha8Rng,
    /// `currentTerm` (durable).
    pub(crate) term: u64,
    /// `votedFor` in `term` (durable).
    pub(crate) vote: Option<NodeId>,
    /// Term or vote changed since the last `Ready`.
    pub(crate) hard_state_dirty: bool,
    pub(crate) log: RaftLog,
    /// Highest index known committed (volatile; never decreases).
    pub(crate) commit_index: LogIndex,
    /// Highest index handed out in `Ready::committed` or covered by an
    /// installed snapshot (never decreases).
    pub(crate) applied_index: LogIndex,
    pub(crate) role: Role,
    /// The leader of `term`, when known.
    pub(crate) leader_id: Option<NodeId>,
    /// Ticks since the last valid contact with a leader (followers) or since
    /// the election started (candidates).
    pub(crate) election_elapsed: u64,
    /// This round's randomized election timeout.
    pub(crate) election_timeout: u64,
    /// Ticks since this incarnation started.
    pub(crate) now: u64,
    pub(crate) messages: Vec<(NodeId, Message)>,
    pub(crate) completed: Vec<(Ticket, Result<LogIndex, Rejected>)>,
    /// A snapshot being assembled from chunks (followers).
    pub(crate) incoming_snapshot: Option<SnapshotTransfer>,
    pub(crate) read_mode: ReadMode,
    pub(crate) ticket_counter: TicketCounter,
    ready_number: u64,
}

impl RaftCore {
    /// This node's id.
    pub fn id(&self) -> NodeId {
        self.id
    }

    /// The current term.
    pub fn term(&self) -> u64 {
        self.term
    }

    /// The configuration in force (the latest one in the log).
    pub fn membership(&self) -> &Membership {
        self.log.membership()
    }

    /// The latest snapshot this node holds (taken or received).
    pub fn snapshot(&self) -> Option<&Snapshot> {
        self.log.snapshot()
    }

    /// The configuration this core runs with.
    pub fn config(&self) -> &CoreConfig {
        &self.config
    }

    /// True while this node leads.
    pub fn is_leader(&self) -> bool {
        matches!(self.role, Role::Leader(_))
    }

    /// Replication state of `peer` as seen by this leader: `"probe"`,
    /// `"replicate"` or `"snapshot"` (`None` when not leader or unknown).
    pub fn peer_state(&self, peer: NodeId) -> Option<&'static str> {
        match &self.role {
            Role::Leader(leader) => leader.progress.get(&peer).map(|p| p.state_name()),
            _ => None,
        }
    }

    pub(crate) fn send(&mut self, to: NodeId, message: Message) {
        self.messages.push((to, message));
    }

    /// Durable metadata as it stands.
    pub(crate) fn hard_state(&self) -> HardState {
        HardState {
            term: self.term,
            vote: self.vote,
        }
    }

    /// Starts a new randomized election timeout (§5.2: "election timeouts
    /// are chosen randomly from a fixed interval").
    pub(crate) fn reset_election_timer(&mut self) {
        self.election_elapsed = 0;
        self.election_timeout = self.config.random_election_timeout(&mut self.rng);
    }

    /// Moves to a newer term (forgetting the vote) or stays in this one.
    fn set_term(&mut self, term: u64) {
        if term > self.term {
            self.term = term;
            self.vote = None;
            self.hard_state_dirty = true;
        }
    }

    /// Becomes a follower of `term` (§5.1: "if a server receives a request
    /// with a higher term, it updates its term and reverts to follower").
    /// A leader fails its pending requests with `OutcomeUnknown`.
    pub(crate) fn become_follower(&mut self, term: u64, leader: Option<NodeId>) {
        self.set_term(term);
        let previous = std::mem::replace(&mut self.role, Role::Follower);
        if let Role::Leader(state) = previous {
            tracing::debug!(id = self.id, term = self.term, "leader steps down");
            self.fail_leader_requests(*state, leader);
        }
        self.leader_id = leader;
        self.reset_election_timer();
    }

    /// Applies the term rules of Figure 2 and §9.6 / §6 of the thesis before
    /// a message is handled. Returns false when the message was consumed
    /// (dropped or answered) here.
    fn check_term(&mut self, from: NodeId, message: &Message) -> bool {
        let term = message.term();
        if term > self.term {
            match message {
                Message::RequestVote(request) => {
                    if !request.transfer && self.in_leader_lease(request.pre_vote) {
                        // Thesis §6 (check-quorum) and §9.6: a node that hears
                        // from a live leader ignores disruptive candidates.
                        tracing::debug!(
                            id = self.id,
                            from,
                            "vote request ignored inside leader lease"
                        );
                        if request.pre_vote {
                            self.send(
                                from,
                                Message::RequestVoteResponse(RequestVoteResponse {
                                    term: self.term,
                                    pre_vote: true,
                                    granted: false,
                                }),
                            );
                        }
                        return false;
                    }
                    if !request.pre_vote {
                        self.become_follower(term, None);
                    }
                }
                // A granted pre-vote carries the term we would campaign in.
                Message::RequestVoteResponse(response) if response.pre_vote && response.granted => {
                }
                Message::AppendEntries(_) | Message::Heartbeat(_) | Message::InstallSnapshot(_) => {
                    self.become_follower(term, Some(from));
                }
                _ => self.become_follower(term, None),
            }
            true
        } else if term < self.term {
            match message {
                // Tell a stale leader about the newer term so it steps down
                // (with pre-vote, nobody else would tell it).
                Message::AppendEntries(_) | Message::Heartbeat(_) | Message::InstallSnapshot(_) => {
                    self.send(
                        from,
                        Message::HeartbeatResponse(HeartbeatResponse {
                            term: self.term,
                            read_round: 0,
                        }),
                    );
                }
                Message::RequestVote(request) => {
                    self.send(
                        from,
                        Message::RequestVoteResponse(RequestVoteResponse {
                            term: self.term,
                            pre_vote: request.pre_vote,
                            granted: false,
                        }),
                    );
                }
                _ => {}
            }
            tracing::trace!(id = self.id, from, term, "stale message dropped");
            false
        } else {
            true
        }
    }

    fn step_message(&mut self, from: NodeId, message: Message) {
        if from == 0 || from == self.id {
            tracing::warn!(
                id = self.id,
                from,
                "message with an impossible sender dropped"
            );
            return;
        }
        if !self.check_term(from, &message) {
            return;
        }
        match message {
            Message::RequestVote(m) => self.on_request_vote(from, m),
            Message::RequestVoteResponse(m) => self.on_request_vote_response(from, m),
            Message::AppendEntries(m) => self.on_append_entries(from, m),
            Message::AppendEntriesResponse(m) => self.on_append_entries_response(from, m),
            Message::Heartbeat(m) => self.on_heartbeat(from, m),
            Message::HeartbeatResponse(m) => self.on_heartbeat_response(from, m),
            Message::InstallSnapshot(m) => self.on_install_snapshot(from, m),
            Message::InstallSnapshotResponse(m) => self.on_install_snapshot_response(from, m),
            Message::TimeoutNow(m) => self.on_timeout_now(from, m),
        }
    }

    /// Drops queued success answers that claim entries from `from` on: the
    /// log was just truncated there, so they would no longer be true when
    /// sent ("durable before visible").
    pub(crate) fn retract_acknowledgements(&mut self, from: LogIndex) {
        self.messages.retain(|(_, message)| match message {
            Message::AppendEntriesResponse(response) => !matches!(
                response.outcome,
                AppendOutcome::Matched { match_index } if match_index >= from
            ),
            _ => true,
        });
    }

    /// Checks the node's invariants (cheap ones always, O(n) ones in debug
    /// builds). Called at the end of every `step` and `tick`.
    pub fn check_invariants(&self) {
        self.log.check();
        assert!(
            self.commit_index <= self.log.last_index(),
            "commit index {} beyond the last index {}",
            self.commit_index,
            self.log.last_index()
        );
        assert!(
            self.applied_index <= self.commit_index,
            "applied {} beyond commit {}",
            self.applied_index,
            self.commit_index
        );
        assert!(
            self.log.snapshot_index() <= self.commit_index,
            "snapshot {} beyond commit {}",
            self.log.snapshot_index(),
            self.commit_index
        );
        assert!(
            self.log.last_term() <= self.term,
            "log term {} beyond current term {}",
            self.log.last_term(),
            self.term
        );
        match &self.role {
            Role::Leader(leader) => {
                assert_eq!(self.leader_id, Some(self.id), "a leader follows itself");
                assert_eq!(self.vote, Some(self.id), "a leader voted for itself");
                leader.check(self.id, self.term, &self.log);
            }
            Role::Candidate(_) => {
                assert_eq!(self.vote, Some(self.id), "a candidate voted for itself");
                assert_eq!(self.leader_id, None, "a candidate knows no leader");
            }
            Role::PreCandidate(_) => {
                assert_eq!(self.leader_id, None, "a pre-candidate knows no leader");
            }
            Role::Follower => {
                assert_ne!(
                    self.leader_id,
                    Some(self.id),
                    "a follower does not follow itself"
                );
            }
        }
    }

    fn validate_log(
        snapshot: Option<&Snapshot>,
        entries: &[consensus_api::Entry],
    ) -> Result<(), RecoverError> {
        let (mut previous_index, mut previous_term) =
            snapshot.map_or((0, 0), |s| (s.index, s.epoch));
        for entry in entries {
            if previous_index.checked_add(1) != Some(entry.index) {
                return Err(RecoverError::InconsistentLog(format!(
                    "entry {} follows {previous_index}: the log must be dense above the snapshot",
                    entry.index
                )));
            }
            if entry.epoch < previous_term {
                return Err(RecoverError::InconsistentLog(format!(
                    "entry {} has term {} below the preceding term {previous_term}",
                    entry.index, entry.epoch
                )));
            }
            previous_index = entry.index;
            previous_term = entry.epoch;
        }
        if previous_index > RESTORED_INDEX_MAX {
            // No real log gets there (2^63 entries); the log's arithmetic
            // needs room above it (found by raft/tests/bad_input.rs: a
            // snapshot at u64::MAX, or a log ending just below it, overflowed).
            return Err(RecoverError::InconsistentLog(format!(
                "the log ends at index {previous_index}, above {RESTORED_INDEX_MAX}: corrupt"
            )));
        }
        if let Some(snapshot) = snapshot {
            if let Err(e) = snapshot.membership.validate() {
                return Err(RecoverError::CorruptSnapshot(format!(
                    "snapshot membership: {e}"
                )));
            }
        }
        Ok(())
    }
}

/// Highest last log index a store may hand to `restore`.
const RESTORED_INDEX_MAX: LogIndex = 1 << 63;

impl Core for RaftCore {
    type Message = Message;

    const PROTOCOL: &'static str = "raft";

    fn restore(config: CoreConfig, state: InitialState) -> Result<Self, RecoverError> {
        config.validate()?;
        Self::validate_log(state.snapshot.as_ref(), &state.entries)?;
        let hard_state = match &state.hard_state {
            Some(bytes) => HardState::decode(bytes)?,
            None => HardState::default(),
        };
        let log = RaftLog::restore(
            config.initial_membership.clone(),
            state.snapshot,
            state.entries,
        );
        // A crash may keep a batch's entries but not its hard state (records
        // of one unsynced batch persist as any prefix). Entries of term T
        // come from a leader of T, so the node has seen T; its vote in T was
        // never sent (messages leave only after the sync), so it is free.
        let (term, vote) = if log.last_term() > hard_state.term {
            (log.last_term(), None)
        } else {
            (hard_state.term, hard_state.vote)
        };
        let rng = ChaCha8Rng::seed_from_u64(config.seed);
        let snapshot_index = log.snapshot_index();
        let mut core = RaftCore {
            id: config.id,
            config,
            rng,
            term,
            vote,
            hard_state_dirty: term != hard_state.term,
            log,
            commit_index: snapshot_index,
            applied_index: snapshot_index,
            role: Role::Follower,
            leader_id: None,
            election_elapsed: 0,
            election_timeout: 0,
            now: 0,
            messages: Vec::new(),
            completed: Vec::new(),
            incoming_snapshot: None,
            read_mode: ReadMode::ReadIndex,
            ticket_counter: TicketCounter::default(),
            ready_number: 0,
        };
        core.reset_election_timer();
        core.check_invariants();
        Ok(core)
    }

    fn step(&mut self, from: NodeId, message: Message) {
        self.step_message(from, message);
        self.check_invariants();
    }

    fn tick(&mut self) {
        self.now += 1;
        if matches!(self.role, Role::Leader(_)) {
            self.tick_leader();
        } else {
            self.tick_election();
        }
        self.check_invariants();
    }

    fn propose(&mut self, command: Bytes) -> Result<Ticket, Rejected> {
        let result = self.propose_command(command);
        self.check_invariants();
        result
    }

    fn read_barrier(&mut self) -> Result<Ticket, Rejected> {
        let result = self.start_read_barrier();
        self.check_invariants();
        result
    }

    fn change_membership(&mut self, to: Membership) -> Result<Ticket, Rejected> {
        let result = self.start_membership_change(to);
        self.check_invariants();
        result
    }

    fn compact(&mut self, applied_index: LogIndex, data: Bytes) -> Result<Snapshot, Rejected> {
        let result = self.compact_log(applied_index, data);
        self.check_invariants();
        result
    }

    fn transfer_leadership(&mut self, to: NodeId) -> Result<(), Rejected> {
        let result = self.start_leadership_transfer(to);
        self.check_invariants();
        result
    }

    fn ready(&mut self) -> Option<Ready<Message>> {
        if matches!(self.role, Role::Leader(_)) {
            self.flush_leader();
        }
        let writes = self.log.take_writes();
        let hard_state = if self.hard_state_dirty {
            self.hard_state_dirty = false;
            Some(self.hard_state().encode())
        } else {
            None
        };
        let committed = if self.commit_index > self.applied_index {
            let entries = self.log.slice(self.applied_index + 1, self.commit_index);
            assert_eq!(
                entries.len() as u64,
                self.commit_index - self.applied_index,
                "committed entries must still be in the log"
            );
            self.applied_index = self.commit_index;
            entries
        } else {
            Vec::new()
        };
        let mut ready = Ready::new(self.ready_number + 1);
        ready.hard_state = hard_state;
        ready.truncate_from = writes.truncate_from;
        ready.append = writes.append;
        ready.snapshot = writes.snapshot;
        ready.must_sync = ready.has_writes();
        ready.messages = std::mem::take(&mut self.messages);
        if matches!(self.role, Role::Leader(_)) && ready.hard_state.is_none() {
            // A leader whose term and vote are already durable sends only
            // replication of its own log (AppendEntries, InstallSnapshot of a
            // durable snapshot, TimeoutNow) and rejections naming its durable
            // term: none of it promises anything about this batch's writes,
            // so it may leave before them (thesis §10.2.1). The leader's own
            // match index counts only once the driver has synced the batch.
            ready.early_messages = ready.messages.len();
        }
        ready.committed = committed;
        ready.completed = std::mem::take(&mut self.completed);
        if ready.is_empty() {
            return None;
        }
        self.ready_number += 1;
        Some(ready)
    }

    fn status(&self) -> Status {
        let membership = self.log.membership().clone();
        let role = match &self.role {
            Role::Leader(_) => StatusRole::Leader,
            Role::Candidate(_) | Role::PreCandidate(_) => StatusRole::Candidate,
            Role::Follower if membership.is_learner(self.id) => StatusRole::Learner,
            Role::Follower => StatusRole::Follower,
        };
        let peers = match &self.role {
            Role::Leader(leader) => leader
                .progress
                .iter()
                .map(|(id, p)| {
                    (
                        *id,
                        PeerProgress {
                            match_index: p.match_index,
                            ticks_since_heard: p.ticks_since_heard,
                        },
                    )
                })
                .collect(),
            _ => BTreeMap::new(),
        };
        Status {
            id: self.id,
            role,
            leader: self.leader_id,
            epoch: self.term,
            commit_index: self.commit_index,
            applied_index: self.applied_index,
            last_index: self.log.last_index(),
            snapshot_index: self.log.snapshot_index(),
            membership,
            peers,
        }
    }
}
