//! [`PaxosCore`]: the node, the `Core` implementation, recovery, `Ready`
//! assembly and the invariants. The roles' handlers live in
//! `proposer.rs`, `acceptor.rs`, `learner.rs` and `snapshot.rs`.

use std::collections::BTreeMap;

use bytes::Bytes;
use consensus_api::{
    decode_hard_state, encode_postcard, Core, CoreConfig, Entry, InitialState, LogIndex,
    Membership, NodeId, PeerProgress, Ready, RecoverError, Rejected, Role, Snapshot,
    SnapshotTransfer, Status, Ticket,
};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::acceptor::AcceptorState;
use crate::ballot::Ballot;
use crate::learner::LearnerState;
use crate::membership::{Configs, PendingConfigs, ALPHA};
use crate::message::{Learn, Message};
use crate::output::{Limits, Output};
use crate::proposer::{OwnValue, ProposerState};

/// Bound on loopback rounds within one input (a node's messages to itself
/// are handled before `ready()`); a round never creates unbounded work, so
/// this is only a guard.
const LOOPBACK_ROUNDS_MAX: usize = 64;

/// The durable protocol metadata (`Ready::hard_state`, postcard-encoded).
///
/// Kept small because it is rewritten in full: promises are stored only for
/// slots above the chosen frontier whose promise exceeds the ballot of the
/// value accepted there (an accepted value's ballot is itself a promise
/// floor, see `acceptor.rs`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct HardState {
    /// The ballot counter: every ballot this node has used or will use has
    /// a counter `<=` this.
    pub(crate) counter: u32,
    /// Every slot up to this one is chosen and its chosen value is stored.
    pub(crate) frontier: LogIndex,
    /// Outstanding promises above the frontier, as runs
    /// `(first slot, last slot, ballot)` of consecutive slots promised the
    /// same ballot (a batch of fresh slots is one run).
    pub(crate) promises: Vec<(LogIndex, LogIndex, Ballot)>,
}

/// Classic Paxos for every log slot: one node, which is proposer, acceptor
/// and learner at once. See the crate documentation.
pub struct PaxosCore {
    /// The configuration given at start.
    pub(crate) config: CoreConfig,
    /// This node.
    pub(crate) me: NodeId,
    /// The only source of randomness (backoff, timers).
    pub(crate) rng: ChaCha8Rng,
    /// Ticks in this incarnation.
    pub(crate) now: u64,
    /// The ballot counter (persisted).
    pub(crate) counter: u32,
    /// Stored entries above the snapshot: for slots up to the frontier and
    /// in `learner.chosen_above` the chosen value, elsewhere the value this
    /// acceptor accepted (epoch = its ballot).
    pub(crate) log: BTreeMap<LogIndex, Entry>,
    /// The origin ([`crate::Proposal::origin`]) of stored values, when
    /// known (volatile: forgotten on restart).
    pub(crate) log_origins: BTreeMap<LogIndex, Ballot>,
    /// The latest snapshot (taken or installed), served to lagging peers.
    pub(crate) snapshot: Option<Snapshot>,
    /// Every slot `<= frontier` is chosen and its value stored (or covered
    /// by the snapshot).
    pub(crate) frontier: LogIndex,
    /// Highest slot handed out in `Ready::committed` (or covered by the
    /// snapshot).
    pub(crate) applied_index: LogIndex,
    /// Configurations by slot.
    pub(crate) configs: Configs,
    /// Acceptor state.
    pub(crate) acceptor: AcceptorState,
    /// Proposer state.
    pub(crate) proposer: ProposerState,
    /// Learner state.
    pub(crate) learner: LearnerState,
    /// A snapshot being received (its membership is the one in force at its
    /// last slot; its protocol state the configurations pending above it).
    pub(crate) incoming: Option<SnapshotTransfer>,
    /// Pending output.
    pub(crate) output: Output,
}

/// Groups promises into runs of consecutive slots with the same ballot.
fn promise_runs(promises: &BTreeMap<LogIndex, Ballot>) -> Vec<(LogIndex, LogIndex, Ballot)> {
    let mut runs: Vec<(LogIndex, LogIndex, Ballot)> = Vec::new();
    for (&slot, &ballot) in promises {
        match runs.last_mut() {
            Some((_, last, b)) if *last + 1 == slot && *b == ballot => *last = slot,
            _ => runs.push((slot, slot, ballot)),
        }
    }
    runs
}

impl PaxosCore {
    /// The snapshot index (0 without one).
    pub(crate) fn snapshot_index(&self) -> LogIndex {
        self.snapshot.as_ref().map_or(0, |s| s.index)
    }

    /// The origin of the value stored in `slot` (zero when unknown).
    pub(crate) fn origin_of(&self, slot: LogIndex) -> Ballot {
        self.log_origins.get(&slot).copied().unwrap_or(Ballot::ZERO)
    }

    /// Message size limits from the configuration.
    pub(crate) fn limits(&self) -> Limits {
        Limits {
            entries_max: self.config.batch_entries_max.max(1),
            bytes_max: self.config.batch_bytes_max.max(1),
        }
    }

    /// Interval between retransmissions of an unanswered Prepare / Accept /
    /// Ask / CatchUp.
    pub(crate) fn retry_ticks(&self) -> u64 {
        (self.config.election_timeout_ticks_min / 2).max(2)
    }

    /// A random number of ticks in `[min, max)` (or `min` when empty).
    pub(crate) fn random_ticks(&mut self, min: u64, max: u64) -> u64 {
        consensus_api::random_ticks(&mut self.rng, min, max)
    }

    /// A fresh ballot, higher than every ballot this node has seen.
    pub(crate) fn next_ballot(&mut self) -> Ballot {
        self.counter = self.counter.saturating_add(1);
        self.output.hard_state_dirty = true;
        self.output.hard_state_sync = true;
        Ballot::new(self.counter, self.me)
    }

    /// The ballot for fresh slots (nobody used them yet).
    pub(crate) fn current_ballot(&self) -> Ballot {
        Ballot::new(self.counter, self.me)
    }

    /// Raises the counter so later ballots beat `seen`.
    pub(crate) fn observe_ballot(&mut self, seen: Ballot) {
        if seen.counter > self.counter {
            self.counter = seen.counter;
            self.output.hard_state_dirty = true;
            self.output.hard_state_sync = true;
        }
    }

    fn hard_state(&self) -> HardState {
        HardState {
            counter: self.counter,
            frontier: self.frontier,
            promises: promise_runs(&self.acceptor.promises),
        }
    }

    fn learn_beacon(&self) -> Learn {
        Learn {
            chosen: self.frontier,
            highest: self.learner.highest_seen,
            snapshot: self.snapshot_index(),
        }
    }

    /// Handles one message (also used for loopback).
    pub(crate) fn handle(&mut self, from: NodeId, message: Message) {
        self.heard(from);
        match message {
            Message::Prepare(m) => self.on_prepare(from, m),
            Message::Promise(m) => self.on_promise(from, m),
            Message::Accept(m) => self.on_accept(from, m),
            Message::Accepted(m) => self.on_accepted(from, m),
            Message::Nack(m) => self.on_nack(from, m),
            Message::Chosen(m) => self.on_chosen(from, m),
            Message::Ask(m) => self.on_ask(from, m),
            Message::CatchUp(m) => self.on_catch_up(from, m),
            Message::Learn(m) => self.on_learn(from, m),
            Message::SnapshotChunk(m) => self.on_snapshot_chunk(from, m),
        }
    }

    /// Starts queued work and delivers this node's messages to itself until
    /// nothing is left: the node is its own acceptor and learner, and its
    /// own answers are part of the same `Ready` as the writes they depend on.
    fn settle(&mut self) {
        for _ in 0..LOOPBACK_ROUNDS_MAX {
            self.advance_frontier();
            self.pump();
            let Some(outbox) = self.output.outbox.remove(&self.me) else {
                return;
            };
            if outbox.is_empty() {
                return;
            }
            let messages = outbox.into_messages(
                self.acceptor.highest_accepted,
                self.learn_beacon(),
                self.limits(),
            );
            for message in messages {
                self.handle(self.me, message);
            }
        }
        tracing::warn!(node = self.me, "loopback did not settle");
    }

    /// Finishes an input: loopback, then the invariants.
    fn after_input(&mut self) {
        self.settle();
        self.check_invariants();
    }

    /// Checks the core's invariants (cheap ones always, O(n) ones with
    /// debug assertions).
    pub fn check_invariants(&self) {
        let snapshot_index = self.snapshot_index();
        assert!(self.counter >= 1, "the ballot counter starts at 1");
        assert!(self.frontier >= snapshot_index, "the snapshot is chosen");
        assert!(
            self.applied_index <= self.frontier,
            "only chosen slots are applied"
        );
        assert!(
            self.applied_index >= snapshot_index,
            "the snapshot is applied"
        );
        assert!(
            self.acceptor
                .promises
                .keys()
                .next()
                .is_none_or(|s| *s > self.frontier),
            "promises are kept only above the frontier"
        );
        assert!(
            self.learner
                .chosen_above
                .iter()
                .next()
                .is_none_or(|s| *s > self.frontier + 1),
            "the frontier absorbs the next chosen slot"
        );
        assert!(
            self.proposer
                .instances
                .keys()
                .next()
                .is_none_or(|s| *s > self.frontier),
            "instances exist only for undecided slots"
        );
        assert!(
            self.acceptor.highest_accepted >= self.frontier,
            "a learned value counts as accepted"
        );
        debug_assert!(
            (snapshot_index + 1..=self.frontier).all(|s| self.log.contains_key(&s)),
            "every slot up to the frontier has its chosen value stored"
        );
        debug_assert!(
            self.learner
                .chosen_above
                .iter()
                .all(|s| self.log.contains_key(s)),
            "every chosen slot has its value stored"
        );
        debug_assert!(
            self.log.keys().next().is_none_or(|s| *s > snapshot_index),
            "the log starts above the snapshot"
        );
        debug_assert!(
            self.proposer
                .instances
                .keys()
                .all(|s| !self.learner.chosen_above.contains(s)),
            "a decided slot has no instance"
        );
        self.check_proposer_invariants();
    }

    /// The membership in force for the next slot to be chosen.
    pub(crate) fn current_membership(&self) -> &Membership {
        self.configs.at(self.frontier + 1)
    }

    fn check_id(id: NodeId, what: &str) -> Result<(), RecoverError> {
        if id == 0 || id > NodeId::from(u32::MAX) {
            return Err(RecoverError::InvalidConfig(format!(
                "{what} {id}: node ids must be in 1..=2^32-1 (they are encoded in ballots)"
            )));
        }
        Ok(())
    }
}

/// Highest slot (snapshot or entry) a store may hand to `restore`, and the
/// highest snapshot index installed from a peer.
pub(crate) const RESTORED_INDEX_MAX: LogIndex = 1 << 63;

impl Core for PaxosCore {
    type Message = Message;

    const PROTOCOL: &'static str = "paxos";

    fn restore(config: CoreConfig, state: InitialState) -> Result<Self, RecoverError> {
        config.validate()?;
        Self::check_id(config.id, "node id")?;
        let hard_state: HardState = match &state.hard_state {
            Some(bytes) => decode_hard_state(bytes)?,
            None => HardState::default(),
        };
        let (configs, snapshot_index) = match &state.snapshot {
            Some(snapshot) => {
                let pending = PendingConfigs::decode(&snapshot.protocol_state)?;
                (
                    Configs::from_snapshot(snapshot.membership.clone(), pending),
                    snapshot.index,
                )
            }
            None => {
                config
                    .initial_membership
                    .validate()
                    .map_err(|e| RecoverError::InvalidConfig(e.to_string()))?;
                (Configs::new(config.initial_membership.clone()), 0)
            }
        };
        for node in configs.everyone() {
            Self::check_id(node, "member")?;
        }
        // No real log gets above 2^63 slots, and the slot arithmetic needs
        // room above the last one (found by paxos/tests/bad_input.rs: a
        // snapshot at u64::MAX overflowed `snapshot_index + 1`).
        let last_stored = state.entries.iter().map(|e| e.index).max().unwrap_or(0);
        if snapshot_index.max(last_stored) > RESTORED_INDEX_MAX {
            return Err(RecoverError::InconsistentLog(format!(
                "stored slot {} is above {RESTORED_INDEX_MAX}: corrupt",
                snapshot_index.max(last_stored)
            )));
        }
        let mut log = BTreeMap::new();
        for entry in state.entries {
            if entry.index <= snapshot_index {
                continue;
            }
            log.insert(entry.index, entry);
        }
        let frontier = hard_state.frontier.max(snapshot_index);
        if let Some(missing) = (snapshot_index + 1..=frontier).find(|s| !log.contains_key(s)) {
            return Err(RecoverError::InconsistentLog(format!(
                "slot {missing} is below the chosen frontier {frontier} but has no stored value"
            )));
        }
        // Restarts must never reuse a ballot: skip past every counter used.
        let counter = hard_state.counter.saturating_add(1).max(1);
        let seed = config.seed ^ u64::from(counter).rotate_left(32);
        let me = config.id;
        let mut core = PaxosCore {
            me,
            rng: ChaCha8Rng::seed_from_u64(seed),
            now: 0,
            counter,
            snapshot: state.snapshot,
            frontier: snapshot_index,
            applied_index: snapshot_index,
            configs,
            acceptor: AcceptorState::default(),
            proposer: ProposerState::default(),
            learner: LearnerState::default(),
            incoming: None,
            output: Output::default(),
            log,
            log_origins: BTreeMap::new(),
            config,
        };
        core.output.hard_state_dirty = true;
        core.output.hard_state_sync = true;
        for (first, last, ballot) in hard_state.promises {
            if last.saturating_sub(first) > 64 * ALPHA {
                return Err(RecoverError::CorruptHardState(format!(
                    "promise run {first}..={last} is longer than any window"
                )));
            }
            for slot in first.max(frontier + 1)..=last {
                core.acceptor.promises.insert(slot, ballot);
            }
        }
        core.acceptor.highest_accepted = core
            .log
            .keys()
            .next_back()
            .copied()
            .unwrap_or(0)
            .max(snapshot_index);
        core.learner.highest_seen = core.acceptor.highest_accepted;
        // Re-commit the chosen prefix: the state machine restarts from the
        // snapshot and gets every later chosen slot again, in order.
        core.learner.chosen_above = (snapshot_index + 1..=frontier).collect();
        core.advance_frontier();
        core.start_timers();
        core.check_invariants();
        Ok(core)
    }

    fn step(&mut self, from: NodeId, message: Message) {
        if from == 0 || from > NodeId::from(u32::MAX) {
            tracing::debug!(
                node = self.me,
                from,
                "message from an invalid node id dropped"
            );
            return;
        }
        self.handle(from, message);
        self.after_input();
    }

    fn tick(&mut self) {
        self.now += 1;
        if self.output.hard_state_dirty
            && self.now % self.config.heartbeat_interval_ticks.max(1) == 0
        {
            // Flush a deferred frontier now and then (see `ready`).
            self.output.hard_state_sync = true;
        }
        self.tick_learner();
        self.tick_proposer();
        self.after_input();
    }

    fn propose(&mut self, command: Bytes) -> Result<Ticket, Rejected> {
        let result = self.submit(|ticket, since| OwnValue::Command {
            ticket,
            command,
            since,
        });
        self.after_input();
        result
    }

    fn read_barrier(&mut self) -> Result<Ticket, Rejected> {
        let result = self.submit_read();
        self.after_input();
        result
    }

    fn change_membership(&mut self, to: Membership) -> Result<Ticket, Rejected> {
        let result = self.submit_membership(to);
        self.after_input();
        result
    }

    fn compact(&mut self, applied_index: LogIndex, data: Bytes) -> Result<Snapshot, Rejected> {
        let result = self.take_snapshot(applied_index, data);
        self.check_invariants();
        result
    }

    fn ready(&mut self) -> Option<Ready<Message>> {
        let has_messages = self.output.outbox.values().any(|o| !o.is_empty());
        let output = &self.output;
        let hard_state_due = output.hard_state_sync;
        if !hard_state_due
            && output.append.is_empty()
            && output.snapshot.is_none()
            && !has_messages
            && output.committed.is_empty()
            && output.completed.is_empty()
        {
            return None;
        }
        let mut ready = Ready::new(self.output.number);
        self.output.number += 1;
        // A hard state that only moved the chosen frontier (or dropped
        // promises below it) waits for the next write that must be synced
        // anyway, or for `tick`'s flush: losing it in a crash only means
        // re-learning those slots, and it saves an fsync per commit.
        let write_hard_state = self.output.hard_state_dirty
            && (self.output.hard_state_sync
                || !self.output.append.is_empty()
                || self.output.snapshot.is_some());
        if write_hard_state {
            self.output.hard_state_dirty = false;
            ready.hard_state = Some(encode_postcard(&self.hard_state()));
        }
        ready.append = std::mem::take(&mut self.output.append)
            .into_values()
            .collect();
        ready.snapshot = self.output.snapshot.take();
        ready.must_sync = ready.has_writes();
        // `early_messages` stays 0: classic Paxos keeps the strict order.
        // There is no established leader whose messages promise nothing
        // about its disk: every node's batch mixes Promises and Accepteds
        // (which answer for this very write) with its own Prepares and
        // Accepts, and the proposer's own acceptance is one of the Phase 2
        // votes. Sending the proposer's Accepts first would save one fsync
        // of the two round trips per slot; not worth a second reading of the
        // acceptor rules.
        self.output.hard_state_sync = false;
        let highest_accepted = self.acceptor.highest_accepted;
        let learn = self.learn_beacon();
        let limits = self.limits();
        for (peer, outbox) in std::mem::take(&mut self.output.outbox) {
            if peer == self.me {
                continue;
            }
            for message in outbox.into_messages(highest_accepted, learn, limits) {
                ready.messages.push((peer, message));
            }
        }
        ready.committed = std::mem::take(&mut self.output.committed);
        ready.completed = std::mem::take(&mut self.output.completed);
        Some(ready)
    }

    fn status(&self) -> Status {
        let membership = self.current_membership().clone();
        let role = if membership.is_voter(self.me) || !membership.is_learner(self.me) {
            Role::Peer
        } else {
            Role::Learner
        };
        Status {
            id: self.me,
            role,
            leader: None,
            epoch: self.current_ballot().to_epoch(),
            commit_index: self.frontier,
            applied_index: self.applied_index,
            last_index: self
                .log
                .keys()
                .next_back()
                .copied()
                .unwrap_or(0)
                .max(self.snapshot_index()),
            snapshot_index: self.snapshot_index(),
            membership,
            // No leader here: every peer reports whom it heard from and how
            // far each peer's frontier is (what `/health` and operators use
            // to tell a node cut off from the majority).
            peers: self
                .learner
                .peers
                .iter()
                .filter(|(peer, _)| **peer != self.me)
                .map(|(peer, view)| {
                    (
                        *peer,
                        PeerProgress {
                            match_index: view.frontier,
                            ticks_since_heard: self.now.saturating_sub(view.heard),
                        },
                    )
                })
                .collect(),
        }
    }
}

impl std::fmt::Debug for PaxosCore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PaxosCore")
            .field("id", &self.me)
            .field("counter", &self.counter)
            .field("frontier", &self.frontier)
            .field("applied", &self.applied_index)
            .field("snapshot_index", &self.snapshot_index())
            .field("highest_seen", &self.learner.highest_seen)
            .field("chosen_above", &self.learner.chosen_above)
            .field("instances", &self.proposer.instances)
            .field("queue", &self.proposer.queue.len())
            .field("gap_deadline", &self.learner.gap_deadline)
            .field("now", &self.now)
            .field("peers", &self.learner.peers)
            .field("promises", &self.acceptor.promises)
            .field("log", &self.log.keys().collect::<Vec<_>>())
            .finish()
    }
}
