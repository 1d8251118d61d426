//! [`MultiPaxosCore`]: the node, its roles, the `Core` contract (restore,
//! step, tick, ready, status) and the invariants checked after every input.

use std::collections::BTreeMap;

use bytes::Bytes;
use consensus_api::{
    Core, CoreConfig, Entry, InitialState, LogIndex, Membership, NodeId, PeerProgress, Ready,
    RecoverError, Rejected, Role as StatusRole, Snapshot, Status, Ticket, TicketCounter,
};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::ballot::Ballot;
use crate::catchup::CatchUpState;
use crate::election::CandidateState;
use crate::hard_state::HardState;
use crate::leader::LeaderState;
use crate::log::Log;
use crate::message::{Message, SLOT_MAX};
use crate::snapshot::IncomingSnapshot;

/// The part a node plays, with the data only that part needs.
#[derive(Debug)]
pub(crate) enum Role {
    /// An acceptor and learner following `leader` (if it knows one).
    Follower {
        /// The leader whose ballot this node last accepted messages from.
        leader: Option<NodeId>,
    },
    /// Probing (pre-vote) or running Phase 1.
    Candidate(CandidateState),
    /// The distinguished proposer of `LeaderState::ballot`.
    Leader(Box<LeaderState>),
}

/// Output accumulated between two calls of [`Core::ready`].
#[derive(Debug, Default)]
pub(crate) struct Output {
    /// The hard state changed (a new promise).
    pub(crate) hard_state_dirty: bool,
    /// Commit frontier last written into a hard state.
    pub(crate) persisted_commit: LogIndex,
    /// Values to persist, by slot (a later write of a slot replaces an
    /// earlier one within the same batch).
    pub(crate) append: BTreeMap<LogIndex, Entry>,
    /// A snapshot received from a peer, to persist and restore.
    pub(crate) snapshot: Option<Snapshot>,
    /// Messages to send once the writes above are durable.
    pub(crate) messages: Vec<(NodeId, Message)>,
    /// Finished tickets.
    pub(crate) completed: Vec<(Ticket, Result<LogIndex, Rejected>)>,
}

/// Multi-Paxos with a distinguished proposer, as a deterministic sans-IO
/// [`Core`]. See the crate documentation for the protocol.
#[derive(Debug)]
pub struct MultiPaxosCore {
    /// Settings (timeouts, batching, flags).
    pub(crate) config: CoreConfig,
    /// The core's only source of randomness, seeded from `config.seed`.
    pub(crate) rng: ChaCha8Rng,
    /// The acceptor's promise (durable).
    pub(crate) promised: Ballot,
    /// Highest ballot heard of (promised or not); a new ballot exceeds it.
    pub(crate) highest_seen: Ballot,
    /// Accepted values, chosen frontier, snapshot, configurations.
    pub(crate) log: Log,
    /// Highest slot handed out in `Ready::committed` (or restored from a
    /// snapshot) in this incarnation.
    pub(crate) applied_index: LogIndex,
    /// The current role.
    pub(crate) role: Role,
    /// Ticks since this incarnation started.
    pub(crate) now: u64,
    /// Ticks since the leader was last heard from (or since the last
    /// election started).
    pub(crate) election_elapsed: u64,
    /// The current randomized election timeout.
    pub(crate) election_timeout: u64,
    /// Tick at which a message of the followed leader last arrived.
    pub(crate) leader_contact: Option<u64>,
    /// Ticks since a candidate last (re)sent its Probes / Prepares.
    pub(crate) resend_elapsed: u64,
    /// An outstanding request for chosen values.
    pub(crate) catch_up: Option<CatchUpState>,
    /// A snapshot being received in chunks.
    pub(crate) incoming_snapshot: Option<IncomingSnapshot>,
    /// Proposals and membership changes of this node, by slot, finished when
    /// the slot is applied.
    pub(crate) tickets: BTreeMap<LogIndex, Ticket>,
    /// Numbers the tickets handed out.
    pub(crate) ticket_counter: TicketCounter,
    /// Number of the last `Ready` handed out.
    pub(crate) ready_number: u64,
    /// Pending output.
    pub(crate) out: Output,
}

impl MultiPaxosCore {
    /// The node's id.
    pub fn id(&self) -> NodeId {
        self.config.id
    }

    /// The acceptor's promised ballot.
    pub fn promised(&self) -> Ballot {
        self.promised
    }

    /// The ballot this node leads with, if it is the leader.
    pub fn leader_ballot(&self) -> Option<Ballot> {
        match &self.role {
            Role::Leader(leader) => Some(leader.ballot),
            _ => None,
        }
    }

    /// The value this node holds for `slot` (accepted or chosen), if any.
    pub fn accepted(&self, slot: LogIndex) -> Option<&Entry> {
        self.log.get(slot)
    }

    /// The chosen frontier.
    pub fn commit_index(&self) -> LogIndex {
        self.log.commit()
    }

    /// The configuration in force (deciding the first unchosen slot).
    pub fn membership(&self) -> &Membership {
        self.log.membership()
    }

    /// The shared rules ([`CoreConfig::validate`]), then Multi-Paxos's own:
    /// ballots pack the node id into 32 bits.
    fn validate_config(config: &CoreConfig) -> Result<(), RecoverError> {
        config.validate()?;
        if config.id > Ballot::FIELD_MAX {
            return Err(RecoverError::InvalidConfig(
                "node id must be in 1..=2^32-1 (ballots pack it into 32 bits)".into(),
            ));
        }
        Ok(())
    }

    /// Sends `message` to `to` (after this batch's writes are durable).
    pub(crate) fn send(&mut self, to: NodeId, message: Message) {
        debug_assert_ne!(to, self.config.id, "a node never messages itself");
        self.out.messages.push((to, message));
    }

    /// Stores an accepted value and schedules its write.
    pub(crate) fn write_entry(&mut self, entry: Entry) {
        if self.log.put(entry.clone()) {
            self.out.append.insert(entry.index, entry);
        }
    }

    /// Takes note of a ballot seen on the wire. If it is above the promise,
    /// the node promises it (always safe: it only forbids lower ballots),
    /// which demotes a leader or candidate. Returns true in that case.
    pub(crate) fn observe_ballot(&mut self, ballot: Ballot) -> bool {
        self.highest_seen = self.highest_seen.max(ballot);
        if ballot <= self.promised {
            return false;
        }
        self.promised = ballot;
        self.out.hard_state_dirty = true;
        if !matches!(self.role, Role::Follower { .. }) {
            tracing::debug!(node = self.config.id, %ballot, "higher ballot seen: stepping down");
            self.become_follower(None);
        } else {
            if let Role::Follower { leader } = &mut self.role {
                if *leader != Some(ballot.node()) {
                    *leader = None;
                }
            }
            // A new ballot is a new leadership: draw a new timeout, as a Raft
            // follower does for a new term. A follower that kept the draw it
            // made at start would keep the long one that lost it the first
            // election, so the survivors of a leader's crash would be the
            // nodes with the longest timers (measured: a detection median of
            // 211 ms instead of 187 ms in `leader-crash` at 3 nodes).
            self.reset_election_timer();
        }
        true
    }

    /// Becomes a follower of `leader` (if known). A leader's pending
    /// requests finish: values not yet chosen with `OutcomeUnknown`, requests
    /// that never reached a slot with `NotLeader`.
    pub(crate) fn become_follower(&mut self, leader: Option<NodeId>) {
        let previous = std::mem::replace(&mut self.role, Role::Follower { leader });
        if let Role::Leader(state) = previous {
            self.abandon_leadership(*state, leader);
        }
        self.reset_election_timer();
    }

    /// Restarts the election timer with a fresh randomized timeout in
    /// `[election_timeout_ticks_min, election_timeout_ticks_max)`.
    pub(crate) fn reset_election_timer(&mut self) {
        self.election_elapsed = 0;
        self.election_timeout = self.config.random_election_timeout(&mut self.rng);
    }

    /// The leader this node believes in.
    pub(crate) fn leader_hint(&self) -> Option<NodeId> {
        match &self.role {
            Role::Follower { leader } => *leader,
            Role::Candidate(_) => None,
            Role::Leader(_) => Some(self.config.id),
        }
    }

    /// True if this node votes in the configuration in force.
    pub(crate) fn is_voter(&self) -> bool {
        self.log.membership().is_voter(self.config.id)
    }

    /// Hands chosen slots to the driver and finishes the tickets they end.
    fn collect_committed(&mut self) -> Vec<Entry> {
        let commit = self.log.commit();
        let mut committed = Vec::new();
        if commit > self.applied_index {
            committed.extend(self.log.range(self.applied_index + 1, commit).cloned());
            debug_assert_eq!(
                committed.len() as u64,
                commit - self.applied_index,
                "the chosen prefix has a hole"
            );
            self.applied_index = commit;
        }
        let done: Vec<LogIndex> = self
            .tickets
            .range(..=self.applied_index)
            .map(|(i, _)| *i)
            .collect();
        for index in done {
            if let Some(ticket) = self.tickets.remove(&index) {
                self.out.completed.push((ticket, Ok(index)));
            }
        }
        committed
    }

    /// Checks the invariants of the node. Called after every input; cheap
    /// checks always, O(n) ones under debug assertions.
    pub fn check_invariants(&self) {
        let commit = self.log.commit();
        assert!(
            commit >= self.log.snapshot_index(),
            "node {}: commit {} below snapshot {}",
            self.config.id,
            commit,
            self.log.snapshot_index()
        );
        assert!(
            self.applied_index <= commit,
            "node {}: applied beyond commit",
            self.config.id
        );
        assert!(
            self.applied_index >= self.log.snapshot_index(),
            "node {}: applied {} below snapshot {}",
            self.config.id,
            self.applied_index,
            self.log.snapshot_index()
        );
        assert!(
            self.highest_seen >= self.promised,
            "highest seen below the promise"
        );
        debug_assert!(
            self.log
                .chosen_prefix_is_dense(self.applied_index.saturating_sub(1)),
            "node {}: hole in the chosen prefix",
            self.config.id
        );
        debug_assert!(
            self.log.max_epoch_above(commit) <= self.promised.epoch(),
            "node {}: an accepted value above the promise {}",
            self.config.id,
            self.promised
        );
        match &self.role {
            Role::Follower { .. } => {}
            Role::Candidate(candidate) => candidate.check(self),
            Role::Leader(leader) => leader.check(self),
        }
    }
}

/// Highest slot (snapshot or entry) a store may hand to `restore`.
const RESTORED_INDEX_MAX: LogIndex = 1 << 63;

impl Core for MultiPaxosCore {
    type Message = Message;

    const PROTOCOL: &'static str = "multipaxos";

    fn restore(config: CoreConfig, state: InitialState) -> Result<Self, RecoverError> {
        Self::validate_config(&config)?;
        let hard_state = match &state.hard_state {
            Some(bytes) => HardState::decode(bytes)?,
            None => HardState::default(),
        };
        let mut log = match &state.snapshot {
            // No real log gets there (2^63 slots); the log's arithmetic needs
            // room above it (found by multipaxos/tests/bad_input.rs: overflows
            // in install_snapshot and max_epoch_above).
            Some(snapshot) if snapshot.index > RESTORED_INDEX_MAX => {
                return Err(RecoverError::CorruptSnapshot(format!(
                    "snapshot at index {}, above {RESTORED_INDEX_MAX}",
                    snapshot.index
                )));
            }
            Some(snapshot) => {
                let mut log = Log::new(snapshot.membership.clone());
                let checksum = crc32c::crc32c(&snapshot.data);
                log.install_snapshot(snapshot.clone(), checksum);
                log
            }
            None => {
                config
                    .initial_membership
                    .validate()
                    .map_err(|e| RecoverError::InvalidConfig(e.to_string()))?;
                Log::new(config.initial_membership.clone())
            }
        };
        let floor = log.snapshot_index();
        let mut previous = floor;
        let mut max_epoch = 0;
        for entry in state.entries {
            if entry.index <= previous || entry.index > RESTORED_INDEX_MAX {
                return Err(RecoverError::InconsistentLog(format!(
                    "entry {} after {} (snapshot at {floor})",
                    entry.index, previous
                )));
            }
            previous = entry.index;
            max_epoch = max_epoch.max(entry.epoch);
            log.put(entry);
        }
        // The frontier written in the hard state covers only entries written
        // with or before it; clamp it to the dense prefix in any case
        // (forgetting that a slot is chosen is always safe).
        let commit = log.advance_commit_while(hard_state.commit, |_| true);
        if commit < hard_state.commit {
            tracing::warn!(
                node = config.id,
                stored = hard_state.commit,
                usable = commit,
                "stored commit frontier beyond the stored entries"
            );
        }
        // A batch torn after its entries but before its hard state leaves an
        // accepted value above the promise: promising it now is what the
        // lost hard state said (and is always safe).
        let promised = hard_state.promised.max(Ballot::from_epoch(max_epoch));
        let rng = ChaCha8Rng::seed_from_u64(config.seed);
        let applied = log.snapshot_index();
        let mut core = MultiPaxosCore {
            config,
            rng,
            promised,
            highest_seen: promised,
            log,
            applied_index: applied,
            role: Role::Follower { leader: None },
            now: 0,
            election_elapsed: 0,
            election_timeout: 0,
            leader_contact: None,
            resend_elapsed: 0,
            catch_up: None,
            incoming_snapshot: None,
            tickets: BTreeMap::new(),
            ticket_counter: TicketCounter::default(),
            ready_number: 0,
            out: Output {
                hard_state_dirty: promised != hard_state.promised,
                persisted_commit: hard_state.commit.min(commit),
                ..Output::default()
            },
        };
        core.reset_election_timer();
        core.check_invariants();
        Ok(core)
    }

    fn step(&mut self, from: NodeId, message: Message) {
        if from == 0 || from == self.config.id {
            tracing::warn!(
                node = self.config.id,
                from,
                "message with an impossible sender dropped"
            );
            return;
        }
        if message.highest_slot() > SLOT_MAX {
            tracing::warn!(
                node = self.config.id,
                from,
                "message naming an absurd slot dropped"
            );
            return;
        }
        match message {
            Message::Probe(m) => self.on_probe(from, m),
            Message::ProbeResponse(m) => self.on_probe_response(from, m),
            Message::Prepare(m) => self.on_prepare(from, m),
            Message::Promise(m) => self.on_promise(from, m),
            Message::Accept(m) => self.on_accept(from, m),
            Message::Accepted(m) => self.on_accepted(from, m),
            Message::Nack(m) => self.on_nack(from, m),
            Message::Heartbeat(m) => self.on_heartbeat(from, m),
            Message::HeartbeatResponse(m) => self.on_heartbeat_response(from, m),
            Message::CatchUp(m) => self.on_catch_up(from, m),
            Message::Chosen(m) => self.on_chosen(from, m),
            Message::SnapshotChunk(m) => self.on_snapshot_chunk(from, m),
            Message::SnapshotChunkResponse(m) => self.on_snapshot_chunk_response(from, m),
        }
        self.check_invariants();
    }

    fn tick(&mut self) {
        self.now += 1;
        match &self.role {
            Role::Leader(_) => self.tick_leader(),
            Role::Candidate(_) => self.tick_candidate(),
            Role::Follower { .. } => self.tick_election(),
        }
        self.tick_catch_up();
        self.check_invariants();
    }

    fn propose(&mut self, command: Bytes) -> Result<Ticket, Rejected> {
        let result = self.propose_payload(consensus_api::Payload::Command(command));
        self.check_invariants();
        result
    }

    fn read_barrier(&mut self) -> Result<Ticket, Rejected> {
        let result = self.leader_read_barrier();
        self.check_invariants();
        result
    }

    fn change_membership(&mut self, to: Membership) -> Result<Ticket, Rejected> {
        let result = self.leader_change_membership(to);
        self.check_invariants();
        result
    }

    fn compact(&mut self, applied_index: LogIndex, data: Bytes) -> Result<Snapshot, Rejected> {
        let result = self.compact_log(applied_index, data);
        self.check_invariants();
        result
    }

    fn ready(&mut self) -> Option<Ready<Message>> {
        self.flush_leader();
        let committed = self.collect_committed();
        self.complete_reads();
        let snapshot = self.out.snapshot.take();
        if let Some(snapshot) = &snapshot {
            self.out.append = self.out.append.split_off(&(snapshot.index + 1));
        }
        let append: Vec<Entry> = std::mem::take(&mut self.out.append).into_values().collect();
        let commit = self.log.commit();
        let writes = !append.is_empty() || snapshot.is_some();
        let promise_changed = self.out.hard_state_dirty;
        let hard_state =
            if self.out.hard_state_dirty || (writes && commit != self.out.persisted_commit) {
                self.out.hard_state_dirty = false;
                self.out.persisted_commit = commit;
                Some(
                    HardState {
                        promised: self.promised,
                        commit,
                    }
                    .encode(),
                )
            } else {
                None
            };
        let mut ready = Ready::new(self.ready_number + 1);
        ready.hard_state = hard_state;
        ready.append = append;
        ready.snapshot = snapshot;
        ready.must_sync = ready.has_writes();
        ready.messages = std::mem::take(&mut self.out.messages);
        if matches!(self.role, Role::Leader(_)) && !promise_changed {
            // An established leader whose promise is already durable sends
            // Accepts for its own ballot, commit notices and catch-up: none
            // of it answers for this batch's writes, so it may leave before
            // them (the leader's own acceptance of the values in `append`
            // counts towards a quorum only once the driver has synced this
            // batch, because no Accepted reaches the core before that). A
            // written commit frontier is an optimisation that no message
            // depends on.
            ready.early_messages = ready.messages.len();
        }
        ready.committed = committed;
        ready.completed = std::mem::take(&mut self.out.completed);
        if ready.is_empty() {
            return None;
        }
        self.ready_number += 1;
        Some(ready)
    }

    fn status(&self) -> Status {
        let (role, peers) = match &self.role {
            Role::Follower { .. } => {
                let role = if self.log.membership().is_learner(self.config.id) {
                    StatusRole::Learner
                } else {
                    StatusRole::Follower
                };
                (role, BTreeMap::new())
            }
            Role::Candidate(_) => (StatusRole::Candidate, BTreeMap::new()),
            Role::Leader(leader) => {
                let peers = leader
                    .peers
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
                    .collect();
                (StatusRole::Leader, peers)
            }
        };
        Status {
            id: self.config.id,
            role,
            leader: self.leader_hint(),
            epoch: self.promised.epoch(),
            commit_index: self.log.commit(),
            applied_index: self.applied_index,
            last_index: self.log.last_index(),
            snapshot_index: self.log.snapshot_index(),
            membership: self.log.membership().clone(),
            peers,
        }
    }
}
