//! A small, correct Raft for testing the harness (Ongaro and Ousterhout,
//! "In Search of an Understandable Consensus Algorithm", §5). Fixed
//! membership, no pre-vote, no check-quorum: the reference the simulator must
//! never flag, and the core the shared golden scripts are verified with.
//!
//! With `LOCAL_READS = true` ([`StaleReadRaft`]) the read barrier answers at
//! once from the leader's commit index, without confirming that it is still
//! the leader: a deposed leader then serves stale reads, which only a
//! linearizability check catches.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use bytes::Bytes;
use consensus_api::{
    Core, CoreConfig, Entry, InitialState, LogIndex, Membership, NodeId, Payload, PeerProgress,
    ProtocolMessage, Ready, RecoverError, Rejected, Role, Snapshot, Status, Ticket,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// The reference Raft (linearizable read barriers through the log).
pub type TinyRaft = TinyRaftCore<false>;

/// The reference Raft with leader-local reads that skip the leadership check
/// (looks safe, is not linearizable).
pub type StaleReadRaft = TinyRaftCore<true>;

/// Raft's wire messages (§5, Figure 2).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum RaftMessage {
    /// A candidate asks for a vote (§5.2, §5.4.1).
    RequestVote {
        /// Candidate's term.
        term: u64,
        /// Index of its last entry.
        last_index: LogIndex,
        /// Term of its last entry.
        last_term: u64,
    },
    /// A vote answer.
    RequestVoteResponse {
        /// The voter's term.
        term: u64,
        /// Whether the vote was granted.
        granted: bool,
    },
    /// Replication and heartbeat (§5.3).
    AppendEntries {
        /// Leader's term.
        term: u64,
        /// Index of the entry before `entries`.
        prev_index: LogIndex,
        /// Its term.
        prev_term: u64,
        /// Entries to store.
        entries: Vec<Entry>,
        /// Leader's commit index.
        commit: LogIndex,
    },
    /// Answer to `AppendEntries` / `InstallSnapshot`.
    AppendEntriesResponse {
        /// Follower's term.
        term: u64,
        /// Whether the log matched.
        success: bool,
        /// On success the highest index known to match; on failure a hint
        /// where to retry (the follower's last index).
        index: LogIndex,
    },
    /// A whole snapshot for a follower behind the leader's log (§7).
    InstallSnapshot {
        /// Leader's term.
        term: u64,
        /// The snapshot.
        snapshot: Snapshot,
    },
}

impl fmt::Display for RaftMessage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RaftMessage::RequestVote {
                term,
                last_index,
                last_term,
            } => write!(f, "RequestVote t={term} last={last_index}@{last_term}"),
            RaftMessage::RequestVoteResponse { term, granted } => {
                write!(f, "RequestVoteResponse t={term} granted={granted}")
            }
            RaftMessage::AppendEntries {
                term,
                prev_index,
                prev_term,
                entries,
                commit,
            } => {
                write!(f, "AppendEntries t={term} prev={prev_index}@{prev_term} commit={commit} entries=[")?;
                for (i, entry) in entries.iter().enumerate() {
                    if i > 0 {
                        f.write_str(" ")?;
                    }
                    write!(f, "{entry}")?;
                }
                f.write_str("]")
            }
            RaftMessage::AppendEntriesResponse {
                term,
                success,
                index,
            } => write!(
                f,
                "AppendEntriesResponse t={term} ok={success} index={index}"
            ),
            RaftMessage::InstallSnapshot { term, snapshot } => {
                write!(
                    f,
                    "InstallSnapshot t={term} index={}@{}",
                    snapshot.index, snapshot.epoch
                )
            }
        }
    }
}

impl ProtocolMessage for RaftMessage {}

#[derive(Serialize, Deserialize)]
struct HardState {
    term: u64,
    voted_for: Option<NodeId>,
}

#[derive(Clone, Debug)]
struct Progress {
    match_index: LogIndex,
    next_index: LogIndex,
    ticks_since_heard: u64,
}

#[derive(Clone, Debug)]
enum RoleState {
    Follower {
        leader: Option<NodeId>,
    },
    Candidate {
        votes: BTreeSet<NodeId>,
    },
    Leader {
        progress: BTreeMap<NodeId, Progress>,
    },
}

/// The reference Raft. `LOCAL_READS` selects the unsafe read path.
pub struct TinyRaftCore<const LOCAL_READS: bool> {
    id: NodeId,
    config: CoreConfig,
    membership: Membership,
    term: u64,
    voted_for: Option<NodeId>,
    snapshot: Option<Snapshot>,
    /// Entries above the snapshot.
    log: Vec<Entry>,
    commit: LogIndex,
    applied: LogIndex,
    role: RoleState,
    election_elapsed: u64,
    election_timeout: u64,
    heartbeat_elapsed: u64,
    rng: ChaCha8Rng,
    next_ticket: u64,
    /// Proposals and barriers waiting for their index to commit.
    waiting: BTreeMap<LogIndex, Vec<(Ticket, u64)>>,
    out: Ready<RaftMessage>,
    ready_number: u64,
}

impl<const LOCAL_READS: bool> TinyRaftCore<LOCAL_READS> {
    fn snapshot_index(&self) -> LogIndex {
        self.snapshot.as_ref().map_or(0, |s| s.index)
    }

    fn snapshot_term(&self) -> u64 {
        self.snapshot.as_ref().map_or(0, |s| s.epoch)
    }

    fn last_index(&self) -> LogIndex {
        self.snapshot_index() + self.log.len() as u64
    }

    fn term_at(&self, index: LogIndex) -> Option<u64> {
        let base = self.snapshot_index();
        if index == base {
            return Some(self.snapshot_term());
        }
        if index < base {
            return None;
        }
        self.log.get((index - base - 1) as usize).map(|e| e.epoch)
    }

    fn last_term(&self) -> u64 {
        self.term_at(self.last_index()).unwrap_or(0)
    }

    fn entries(&self, from: LogIndex, max: usize) -> Vec<Entry> {
        let start = from.saturating_sub(self.snapshot_index() + 1) as usize;
        let end = (start + max).min(self.log.len());
        self.log
            .get(start..end)
            .map(<[Entry]>::to_vec)
            .unwrap_or_default()
    }

    fn peers(&self) -> Vec<NodeId> {
        self.membership
            .all_nodes()
            .into_iter()
            .filter(|&n| n != self.id)
            .collect()
    }

    fn leader(&self) -> Option<NodeId> {
        match &self.role {
            RoleState::Follower { leader } => *leader,
            RoleState::Candidate { .. } => None,
            RoleState::Leader { .. } => Some(self.id),
        }
    }

    fn persist_hard_state(&mut self) {
        let hard = HardState {
            term: self.term,
            voted_for: self.voted_for,
        };
        let bytes = postcard::to_allocvec(&hard).expect("encoding to a Vec cannot fail");
        self.out.hard_state = Some(Bytes::from(bytes));
        self.out.must_sync = true;
    }

    fn reset_election_timer(&mut self) {
        self.election_elapsed = 0;
        let min = self.config.election_timeout_ticks_min.max(1);
        let max = self.config.election_timeout_ticks_max.max(min + 1);
        self.election_timeout = self.rng.random_range(min..max);
    }

    fn send(&mut self, to: NodeId, message: RaftMessage) {
        self.out.messages.push((to, message));
    }

    /// Fails every waiting ticket: the node is no longer leader.
    fn abandon_waiting(&mut self, hint: Option<NodeId>) {
        for (_, tickets) in std::mem::take(&mut self.waiting) {
            for (ticket, _) in tickets {
                self.out
                    .completed
                    .push((ticket, Err(Rejected::OutcomeUnknown { hint })));
            }
        }
    }

    fn become_follower(&mut self, term: u64, leader: Option<NodeId>) {
        if term > self.term {
            self.term = term;
            self.voted_for = None;
            self.persist_hard_state();
        }
        if matches!(self.role, RoleState::Leader { .. }) {
            self.abandon_waiting(leader);
        }
        self.role = RoleState::Follower { leader };
        self.reset_election_timer();
    }

    /// §5.2: start an election.
    fn campaign(&mut self) {
        self.term += 1;
        self.voted_for = Some(self.id);
        self.persist_hard_state();
        self.role = RoleState::Candidate {
            votes: BTreeSet::from([self.id]),
        };
        self.reset_election_timer();
        let (last_index, last_term) = (self.last_index(), self.last_term());
        for peer in self.peers() {
            if self.membership.is_voter(peer) {
                self.send(
                    peer,
                    RaftMessage::RequestVote {
                        term: self.term,
                        last_index,
                        last_term,
                    },
                );
            }
        }
        self.maybe_win();
    }

    fn maybe_win(&mut self) {
        let RoleState::Candidate { votes } = &self.role else {
            return;
        };
        if !self.membership.is_quorum_set(votes) {
            return;
        }
        let next = self.last_index() + 1;
        let progress = self
            .peers()
            .into_iter()
            .map(|peer| {
                (
                    peer,
                    Progress {
                        match_index: 0,
                        next_index: next,
                        ticks_since_heard: 0,
                    },
                )
            })
            .collect();
        self.role = RoleState::Leader { progress };
        self.heartbeat_elapsed = 0;
        // §5.4.2: a leader commits entries of earlier terms only through an
        // entry of its own term.
        self.append_local(Payload::Noop);
        self.broadcast();
    }

    fn append_local(&mut self, payload: Payload) -> LogIndex {
        let index = self.last_index() + 1;
        let entry = Entry {
            index,
            epoch: self.term,
            payload,
        };
        self.log.push(entry.clone());
        self.out.append.push(entry);
        self.out.must_sync = true;
        self.maybe_commit();
        index
    }

    fn broadcast(&mut self) {
        for peer in self.peers() {
            self.send_append(peer);
        }
    }

    fn send_append(&mut self, peer: NodeId) {
        let RoleState::Leader { progress } = &self.role else {
            return;
        };
        let Some(next) = progress.get(&peer).map(|p| p.next_index) else {
            return;
        };
        if next <= self.snapshot_index() {
            if let Some(snapshot) = self.snapshot.clone() {
                let term = self.term;
                self.send(peer, RaftMessage::InstallSnapshot { term, snapshot });
            }
            return;
        }
        let prev_index = next - 1;
        let prev_term = self.term_at(prev_index).unwrap_or(0);
        let entries = self.entries(next, self.config.batch_entries_max.max(1));
        let sent_up_to = prev_index + entries.len() as u64;
        if let RoleState::Leader { progress } = &mut self.role {
            if let Some(p) = progress.get_mut(&peer) {
                // Pipelining: assume delivery; a failure moves it back.
                p.next_index = sent_up_to + 1;
            }
        }
        let message = RaftMessage::AppendEntries {
            term: self.term,
            prev_index,
            prev_term,
            entries,
            commit: self.commit,
        };
        self.send(peer, message);
    }

    /// §5.3, §5.4.2: commit the highest index stored on a quorum whose entry
    /// is of the current term.
    fn maybe_commit(&mut self) {
        let RoleState::Leader { progress } = &self.role else {
            return;
        };
        let last = self.last_index();
        let id = self.id;
        let quorum_index = self.membership.quorum_index(|node| {
            if node == id {
                last
            } else {
                progress.get(&node).map_or(0, |p| p.match_index)
            }
        });
        if quorum_index > self.commit && self.term_at(quorum_index) == Some(self.term) {
            self.commit = quorum_index;
        }
    }

    /// Stores entries after a successful log-matching check, truncating a
    /// conflicting suffix (§5.3).
    fn store_entries(&mut self, entries: Vec<Entry>) {
        for entry in entries {
            if entry.index <= self.snapshot_index() {
                continue;
            }
            match self.term_at(entry.index) {
                Some(term) if term == entry.epoch => continue,
                Some(_) => {
                    assert!(
                        entry.index > self.commit,
                        "a committed entry conflicts: Raft safety broken"
                    );
                    let keep = (entry.index - self.snapshot_index() - 1) as usize;
                    self.log.truncate(keep);
                    self.out.append.retain(|e| e.index < entry.index);
                    self.out.truncate_from = Some(
                        self.out
                            .truncate_from
                            .map_or(entry.index, |t| t.min(entry.index)),
                    );
                    self.abandon_from(entry.index);
                }
                None => {}
            }
            self.log.push(entry.clone());
            self.out.append.push(entry);
            self.out.must_sync = true;
        }
    }

    fn abandon_from(&mut self, index: LogIndex) {
        let dropped = self.waiting.split_off(&index);
        for (_, tickets) in dropped {
            for (ticket, _) in tickets {
                self.out.completed.push((
                    ticket,
                    Err(Rejected::OutcomeUnknown {
                        hint: self.leader(),
                    }),
                ));
            }
        }
    }

    fn on_append(
        &mut self,
        from: NodeId,
        term: u64,
        prev_index: LogIndex,
        prev_term: u64,
        entries: Vec<Entry>,
        commit: LogIndex,
    ) {
        self.become_follower(term, Some(from));
        let reply = |success, index| RaftMessage::AppendEntriesResponse {
            term,
            success,
            index,
        };
        if prev_index < self.snapshot_index() {
            // Our snapshot covers part of the batch: it matches (committed).
            let entries: Vec<Entry> = entries
                .into_iter()
                .filter(|e| e.index > self.snapshot_index())
                .collect();
            let matched = entries
                .last()
                .map_or(self.snapshot_index(), |e| e.index)
                .max(self.snapshot_index());
            let consistent = entries
                .first()
                .is_none_or(|e| e.index == self.snapshot_index() + 1);
            if !consistent {
                let hint = self.last_index();
                self.send(from, reply(false, hint));
                return;
            }
            self.store_entries(entries);
            self.advance_commit(commit, matched);
            self.send(from, reply(true, matched));
            return;
        }
        if self.term_at(prev_index) != Some(prev_term) {
            let hint = self.last_index().min(prev_index.saturating_sub(1));
            self.send(from, reply(false, hint));
            return;
        }
        let matched = prev_index + entries.len() as u64;
        self.store_entries(entries);
        self.advance_commit(commit, matched);
        self.send(from, reply(true, matched));
    }

    fn advance_commit(&mut self, leader_commit: LogIndex, matched: LogIndex) {
        let target = leader_commit.min(matched);
        if target > self.commit {
            self.commit = target;
        }
    }

    fn on_append_response(&mut self, from: NodeId, success: bool, index: LogIndex) {
        let RoleState::Leader { progress } = &mut self.role else {
            return;
        };
        let Some(p) = progress.get_mut(&from) else {
            return;
        };
        p.ticks_since_heard = 0;
        if success {
            if index > p.match_index {
                p.match_index = index;
            }
            if p.next_index <= p.match_index {
                p.next_index = p.match_index + 1;
            }
            let behind = p.next_index <= self.snapshot_index() + self.log.len() as u64;
            self.maybe_commit();
            if behind {
                self.send_append(from);
            }
        } else {
            p.next_index = (index + 1)
                .min(p.next_index.saturating_sub(1))
                .max(p.match_index + 1)
                .max(1);
            self.send_append(from);
        }
    }

    fn on_install_snapshot(&mut self, from: NodeId, term: u64, snapshot: Snapshot) {
        self.become_follower(term, Some(from));
        let index = snapshot.index;
        if index <= self.commit {
            self.send(
                from,
                RaftMessage::AppendEntriesResponse {
                    term,
                    success: true,
                    index: self.commit.min(self.last_index()).max(index),
                },
            );
            return;
        }
        if self.term_at(index) == Some(snapshot.epoch) {
            let drop = (index - self.snapshot_index()) as usize;
            self.log.drain(..drop.min(self.log.len()));
        } else {
            self.log.clear();
            self.out.truncate_from = Some(index + 1);
            self.abandon_from(self.snapshot_index() + 1);
        }
        self.out.append.retain(|e| e.index > index);
        self.out.committed.clear();
        self.commit = index;
        self.applied = index;
        // Tickets at or below the snapshot cannot be matched to their entry.
        let covered = std::mem::take(&mut self.waiting);
        let (below, above): (BTreeMap<_, _>, BTreeMap<_, _>) =
            covered.into_iter().partition(|(i, _)| *i <= index);
        self.waiting = above;
        for (ticket, _) in below.into_values().flatten() {
            self.out
                .completed
                .push((ticket, Err(Rejected::OutcomeUnknown { hint: Some(from) })));
        }
        self.out.snapshot = Some(snapshot.clone());
        self.out.must_sync = true;
        self.snapshot = Some(snapshot);
        self.send(
            from,
            RaftMessage::AppendEntriesResponse {
                term,
                success: true,
                index,
            },
        );
    }

    fn on_request_vote(&mut self, from: NodeId, term: u64, last_index: LogIndex, last_term: u64) {
        if term > self.term {
            self.become_follower(term, None);
        }
        let up_to_date = (last_term, last_index) >= (self.last_term(), self.last_index());
        let free = self.voted_for.is_none_or(|v| v == from);
        let granted = term == self.term && free && up_to_date;
        if granted {
            self.voted_for = Some(from);
            self.persist_hard_state();
            self.reset_election_timer();
        }
        let term = self.term;
        self.send(from, RaftMessage::RequestVoteResponse { term, granted });
    }

    fn new_ticket(&mut self) -> Ticket {
        self.next_ticket += 1;
        Ticket(self.next_ticket)
    }

    fn finish_committed(&mut self) {
        let done: Vec<LogIndex> = self
            .waiting
            .range(..=self.commit)
            .map(|(i, _)| *i)
            .collect();
        for index in done {
            let tickets = self.waiting.remove(&index).unwrap_or_default();
            let stored = self.term_at(index);
            for (ticket, term) in tickets {
                let result = if stored == Some(term) {
                    Ok(index)
                } else {
                    Err(Rejected::OutcomeUnknown {
                        hint: self.leader(),
                    })
                };
                self.out.completed.push((ticket, result));
            }
        }
    }
}

impl<const LOCAL_READS: bool> Core for TinyRaftCore<LOCAL_READS> {
    type Message = RaftMessage;
    const PROTOCOL: &'static str = if LOCAL_READS {
        "stale-read-raft"
    } else {
        "tiny-raft"
    };

    fn restore(config: CoreConfig, state: InitialState) -> Result<Self, RecoverError> {
        if config.id == 0 {
            return Err(RecoverError::InvalidConfig("node id 0".into()));
        }
        let hard: HardState = match &state.hard_state {
            Some(bytes) => postcard::from_bytes(bytes)
                .map_err(|e| RecoverError::CorruptHardState(e.to_string()))?,
            None => HardState {
                term: 0,
                voted_for: None,
            },
        };
        let base = state.snapshot.as_ref().map_or(0, |s| s.index);
        for (i, entry) in state.entries.iter().enumerate() {
            if entry.index != base + 1 + i as u64 {
                return Err(RecoverError::InconsistentLog(format!(
                    "entry {} where {} was expected",
                    entry.index,
                    base + 1 + i as u64
                )));
            }
        }
        let membership = state.snapshot.as_ref().map_or_else(
            || config.initial_membership.clone(),
            |s| s.membership.clone(),
        );
        let rng = ChaCha8Rng::seed_from_u64(config.seed);
        let mut core = TinyRaftCore {
            id: config.id,
            membership,
            term: hard.term,
            voted_for: hard.voted_for,
            snapshot: state.snapshot,
            log: state.entries,
            commit: base,
            applied: base,
            role: RoleState::Follower { leader: None },
            election_elapsed: 0,
            election_timeout: 0,
            heartbeat_elapsed: 0,
            rng,
            next_ticket: 0,
            waiting: BTreeMap::new(),
            out: Ready::new(0),
            ready_number: 0,
            config,
        };
        core.reset_election_timer();
        Ok(core)
    }

    fn step(&mut self, from: NodeId, message: RaftMessage) {
        let term = match &message {
            RaftMessage::RequestVote { term, .. }
            | RaftMessage::RequestVoteResponse { term, .. }
            | RaftMessage::AppendEntries { term, .. }
            | RaftMessage::AppendEntriesResponse { term, .. }
            | RaftMessage::InstallSnapshot { term, .. } => *term,
        };
        if term < self.term {
            // A stale leader learns the new term from the refusal.
            if matches!(
                message,
                RaftMessage::AppendEntries { .. } | RaftMessage::InstallSnapshot { .. }
            ) {
                let reply = RaftMessage::AppendEntriesResponse {
                    term: self.term,
                    success: false,
                    index: self.last_index(),
                };
                self.send(from, reply);
            }
            return;
        }
        match message {
            RaftMessage::RequestVote {
                term,
                last_index,
                last_term,
            } => self.on_request_vote(from, term, last_index, last_term),
            RaftMessage::RequestVoteResponse { term, granted } => {
                if term > self.term {
                    self.become_follower(term, None);
                } else if let RoleState::Candidate { votes } = &mut self.role {
                    if granted {
                        votes.insert(from);
                        self.maybe_win();
                    }
                }
            }
            RaftMessage::AppendEntries {
                term,
                prev_index,
                prev_term,
                entries,
                commit,
            } => self.on_append(from, term, prev_index, prev_term, entries, commit),
            RaftMessage::AppendEntriesResponse {
                term,
                success,
                index,
            } => {
                if term > self.term {
                    self.become_follower(term, None);
                } else {
                    self.on_append_response(from, success, index);
                }
            }
            RaftMessage::InstallSnapshot { term, snapshot } => {
                self.on_install_snapshot(from, term, snapshot)
            }
        }
        self.finish_committed();
    }

    fn tick(&mut self) {
        match &mut self.role {
            RoleState::Leader { progress } => {
                for p in progress.values_mut() {
                    p.ticks_since_heard += 1;
                }
                self.heartbeat_elapsed += 1;
                if self.heartbeat_elapsed >= self.config.heartbeat_interval_ticks.max(1) {
                    self.heartbeat_elapsed = 0;
                    self.broadcast();
                }
            }
            RoleState::Follower { .. } | RoleState::Candidate { .. } => {
                self.election_elapsed += 1;
                if self.election_elapsed >= self.election_timeout
                    && self.membership.is_voter(self.id)
                {
                    self.campaign();
                }
            }
        }
        self.finish_committed();
    }

    fn propose(&mut self, command: Bytes) -> Result<Ticket, Rejected> {
        if !matches!(self.role, RoleState::Leader { .. }) {
            return Err(Rejected::NotLeader {
                hint: self.leader(),
            });
        }
        if self.last_index() - self.commit >= self.config.uncommitted_entries_max as u64 {
            return Err(Rejected::Overloaded);
        }
        let index = self.append_local(Payload::Command(command));
        let ticket = self.new_ticket();
        self.waiting
            .entry(index)
            .or_default()
            .push((ticket, self.term));
        self.broadcast();
        self.finish_committed();
        Ok(ticket)
    }

    fn read_barrier(&mut self) -> Result<Ticket, Rejected> {
        if !matches!(self.role, RoleState::Leader { .. }) {
            return Err(Rejected::NotLeader {
                hint: self.leader(),
            });
        }
        let ticket = self.new_ticket();
        if LOCAL_READS {
            // The bug: no check that this node is still the leader.
            self.out.completed.push((ticket, Ok(self.commit)));
            return Ok(ticket);
        }
        // Read through the log: the barrier completes when a no-op of this
        // term commits, which proves leadership at a point after the call.
        let index = self.append_local(Payload::Noop);
        self.waiting
            .entry(index)
            .or_default()
            .push((ticket, self.term));
        self.broadcast();
        self.finish_committed();
        Ok(ticket)
    }

    fn change_membership(&mut self, _to: Membership) -> Result<Ticket, Rejected> {
        Err(Rejected::Unsupported {
            what: "membership change (tiny-raft has a fixed membership)".into(),
        })
    }

    fn compact(&mut self, applied_index: LogIndex, data: Bytes) -> Result<Snapshot, Rejected> {
        if applied_index > self.applied || applied_index <= self.snapshot_index() {
            return Err(Rejected::InvalidCompaction {
                index: applied_index,
                applied: self.applied,
                snapshot: self.snapshot_index(),
            });
        }
        let epoch = self
            .term_at(applied_index)
            .expect("applied entries are in the log");
        let drop = (applied_index - self.snapshot_index()) as usize;
        self.log.drain(..drop);
        self.out.append.retain(|e| e.index > applied_index);
        let snapshot = Snapshot {
            index: applied_index,
            epoch,
            membership: self.membership.clone(),
            protocol_state: Bytes::new(),
            data,
        };
        self.snapshot = Some(snapshot.clone());
        Ok(snapshot)
    }

    fn ready(&mut self) -> Option<Ready<RaftMessage>> {
        if self.commit > self.applied {
            let count = (self.commit - self.applied) as usize;
            let entries = self.entries(self.applied + 1, count);
            debug_assert_eq!(entries.len(), count, "committed entries are in the log");
            self.applied += entries.len() as u64;
            self.out.committed.extend(entries);
        }
        if self.out.is_empty() {
            return None;
        }
        self.ready_number += 1;
        let mut ready = std::mem::replace(&mut self.out, Ready::new(0));
        ready.number = self.ready_number;
        Some(ready)
    }

    fn status(&self) -> Status {
        let (role, peers) = match &self.role {
            RoleState::Follower { .. } => (Role::Follower, BTreeMap::new()),
            RoleState::Candidate { .. } => (Role::Candidate, BTreeMap::new()),
            RoleState::Leader { progress } => (
                Role::Leader,
                progress
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
            ),
        };
        Status {
            id: self.id,
            role,
            leader: self.leader(),
            epoch: self.term,
            commit_index: self.commit,
            applied_index: self.applied,
            last_index: self.last_index(),
            snapshot_index: self.snapshot_index(),
            membership: self.membership.clone(),
            peers,
        }
    }
}
