//! A tiny deterministic network of `RaftCore`s for rule-by-rule tests: the
//! generic [`consensus_testkit::network::Network`] (every node has a
//! `MemStore`; `Ready` batches are persisted and synced, their messages
//! queued, committed entries recorded; delivery is explicit, so a test
//! controls exactly which messages arrive and in which order), with Raft's
//! own helpers in [`RaftNet`].

#![allow(dead_code)]

use std::collections::BTreeMap;

use consensus_api::{
    Bytes, CoreConfig, Entry, InitialState, LogIndex, Membership, NodeId, Payload, Ready, Rejected,
    Role, Snapshot, Ticket,
};
use consensus_testkit::network::{self, CrashDrops, Machine, Rules};
use raft::{HardState, Message, RaftCore};

/// Nodes plus an in-flight message queue.
pub type Network = network::Network<RaftCore, Applied>;

/// What a node applied this incarnation (a restart starts it afresh).
#[derive(Default)]
pub struct Applied {
    /// Entries applied this incarnation, in order.
    pub applied: Vec<Entry>,
    /// Snapshots installed from the leader this incarnation.
    pub installed: Vec<Snapshot>,
    /// Every `Ready` handed out (for durability checks).
    pub readies: Vec<Ready<Message>>,
}

impl Machine<Message> for Applied {
    fn apply(&mut self, _id: NodeId, entry: Entry) {
        self.applied.push(entry);
    }

    fn restore(&mut self, snapshot: &Snapshot) {
        self.installed.push(snapshot.clone());
    }

    fn start(&mut self, _snapshot: Option<&Snapshot>) {
        *self = Applied::default();
    }

    fn on_ready(&mut self, ready: &Ready<Message>) {
        if !ready.committed.is_empty() || !ready.messages.is_empty() {
            assert!(
                ready.number > self.readies.last().map_or(0, |r| r.number),
                "ready numbers increase"
            );
        }
        self.readies.push(ready.clone());
    }

    /// State Machine Safety: no two nodes applied different entries at the
    /// same index.
    fn check_agreement(nodes: &[(NodeId, &Self)]) {
        network::check_same_at_each_index(
            nodes.iter().map(|(id, m)| (*id, m.applied.as_slice())),
            |entry| entry,
        );
    }
}

/// The default test configuration: deterministic, small timeouts.
pub fn config(id: NodeId, voters: &[NodeId]) -> CoreConfig {
    let mut config = CoreConfig::new(id, Membership::new(voters.iter().copied()));
    config.election_timeout_ticks_min = 10;
    config.election_timeout_ticks_max = 20;
    config.heartbeat_interval_ticks = 2;
    config
}

pub fn command(text: &str) -> Bytes {
    network::command(text)
}

/// An entry of `term` at `index` carrying a command named after them.
pub fn entry(index: LogIndex, term: u64) -> Entry {
    Entry {
        index,
        epoch: term,
        payload: Payload::Command(command(&format!("{index}@{term}"))),
    }
}

/// Entries `1..` with the given terms.
pub fn log_with_terms(terms: &[u64]) -> Vec<Entry> {
    terms
        .iter()
        .enumerate()
        .map(|(i, t)| entry(i as u64 + 1, *t))
        .collect()
}

/// A stored state with a term, a vote and entries.
pub fn stored(term: u64, vote: Option<NodeId>, entries: Vec<Entry>) -> InitialState {
    InitialState {
        hard_state: Some(HardState { term, vote }.encode()),
        snapshot: None,
        entries,
    }
}

/// The Raft suite's rules: a node's output waits for its next input after
/// it is added or restarts; a restart drops what the node sent and what
/// was sent to it; every delivered message is kept.
fn rules() -> Rules {
    Rules {
        process_on_add: false,
        process_on_restart: false,
        crash_drops: CrashDrops::ToAndFrom,
        keep_delivered: true,
        ..Rules::default()
    }
}

/// Raft's own helpers on the network.
pub trait RaftNet {
    /// `n` fresh voters `1..=n` with the test configuration.
    fn new(n: u64) -> Self;
    /// `n` fresh voters with a tweaked configuration.
    fn with_config(n: u64, tweak: impl Fn(&mut CoreConfig)) -> Self;
    /// Nodes restored from the given stored states (each written into its
    /// `MemStore` first, so restarts see it).
    fn from_states(
        voters: &[NodeId],
        states: BTreeMap<NodeId, InitialState>,
        tweak: impl Fn(&mut CoreConfig),
    ) -> Self;
    /// Ticks `id` alone until it leaves the follower role (its election
    /// timeout fires), then delivers everything.
    fn campaign(&mut self, id: NodeId);
    /// Elects `id` (pre-vote and vote) and settles replication.
    fn elect(&mut self, id: NodeId);
    fn propose(&mut self, id: NodeId, text: &str) -> Result<Ticket, Rejected>;
    /// Payloads applied by `id` this incarnation, as text.
    fn applied_commands(&self, id: NodeId) -> Vec<String>;
    /// The durable log of `id` as (index, term) pairs.
    fn stored_log(&self, id: NodeId) -> Vec<(LogIndex, u64)>;
    /// Checks State Machine Safety across the nodes.
    fn check_applied_agree(&self);
}

impl RaftNet for Network {
    fn new(n: u64) -> Network {
        Network::with_config(n, |_| {})
    }

    fn with_config(n: u64, tweak: impl Fn(&mut CoreConfig)) -> Network {
        let voters: Vec<NodeId> = (1..=n).collect();
        let states = voters
            .iter()
            .map(|id| (*id, InitialState::default()))
            .collect();
        Network::from_states(&voters, states, tweak)
    }

    fn from_states(
        voters: &[NodeId],
        states: BTreeMap<NodeId, InitialState>,
        tweak: impl Fn(&mut CoreConfig),
    ) -> Network {
        let mut network = Network::with_rules(rules());
        for (id, state) in states {
            let mut config = config(id, voters);
            tweak(&mut config);
            network.add_node(config, state);
        }
        network
    }

    fn campaign(&mut self, id: NodeId) {
        for _ in 0..=self.node(id).config.election_timeout_ticks_max {
            self.tick(id);
            if self.status(id).role != Role::Follower {
                break;
            }
        }
        self.deliver_all();
    }

    fn elect(&mut self, id: NodeId) {
        self.campaign(id);
        assert_eq!(
            self.status(id).role,
            Role::Leader,
            "node {id} should have won"
        );
        self.deliver_all();
    }

    fn propose(&mut self, id: NodeId, text: &str) -> Result<Ticket, Rejected> {
        self.try_propose(id, text)
    }

    fn applied_commands(&self, id: NodeId) -> Vec<String> {
        network::command_texts(&self.node(id).machine.applied)
    }

    fn stored_log(&self, id: NodeId) -> Vec<(LogIndex, u64)> {
        self.stored(id).iter().map(|e| (e.index, e.epoch)).collect()
    }

    fn check_applied_agree(&self) {
        self.check_agreement();
    }
}
