//! A tiny deterministic harness for rule tests: the generic
//! [`consensus_testkit::network::Network`] (nodes, one message queue the
//! test controls — deliver, drop, filter —, `MemStore`s with the fsync
//! boundary, crash / restart), with Multi-Paxos's own helpers in
//! [`MultiPaxosNet`]. No simulator, no randomness unless a test brings its
//! own.

#![allow(dead_code)]

use consensus_api::{
    Bytes, CoreConfig, Entry, InitialState, Membership, NodeId, Payload, Rejected, Ticket,
};
use consensus_testkit::network::{self, CrashDrops, Machine, Network, Rules};
use multipaxos::{Message, MultiPaxosCore};

/// The nodes and the queue; every message sent is traced in `trace` as a
/// `from->to Display` line.
pub type Harness = Network<MultiPaxosCore, Replayed>;

/// Entries applied, across incarnations: a restart re-applies from the
/// snapshot, and the re-applied prefix must be identical.
#[derive(Default)]
pub struct Replayed {
    /// Every entry applied, across incarnations, at position `index - 1`.
    pub applied: Vec<Entry>,
}

impl Machine<Message> for Replayed {
    fn apply(&mut self, id: NodeId, entry: Entry) {
        let position = (entry.index - 1) as usize;
        if position < self.applied.len() {
            assert_eq!(
                self.applied[position].payload, entry.payload,
                "node {id} re-applied a different value at {}",
                entry.index
            );
        } else {
            assert_eq!(position, self.applied.len(), "applied sequence has a hole");
            self.applied.push(entry);
        }
    }

    /// Applied sequences agree on their common prefix (state machine
    /// safety).
    fn check_agreement(nodes: &[(NodeId, &Self)]) {
        let mut longest: &[Entry] = &[];
        for (_, node) in nodes {
            let common = longest.len().min(node.applied.len());
            assert_eq!(
                node.applied[..common]
                    .iter()
                    .map(|e| &e.payload)
                    .collect::<Vec<_>>(),
                longest[..common]
                    .iter()
                    .map(|e| &e.payload)
                    .collect::<Vec<_>>(),
                "two nodes applied different values"
            );
            if node.applied.len() > longest.len() {
                longest = &node.applied;
            }
        }
    }
}

/// A message in flight, by name.
#[derive(Clone, Debug)]
pub struct Envelope {
    pub from: NodeId,
    pub to: NodeId,
    pub message: Message,
}

pub fn config(id: NodeId, voters: &[NodeId]) -> CoreConfig {
    let mut config = CoreConfig::new(id, Membership::new(voters.iter().copied()));
    config.election_timeout_ticks_min = 10;
    config.election_timeout_ticks_max = 20;
    config.heartbeat_interval_ticks = 3;
    // Rule tests drive elections by ticking one node; pre-vote (which asks
    // the others whether their leader went silent) is tested on its own.
    config.pre_vote = false;
    config
}

pub fn command(text: &str) -> Bytes {
    network::command(text)
}

pub fn payload_text(payload: &Payload) -> String {
    match payload {
        Payload::Command(bytes) => String::from_utf8_lossy(bytes).into_owned(),
        Payload::Noop => "noop".into(),
        Payload::Membership(m) => format!("conf{m}"),
    }
}

/// This suite's rules: a fresh node's output waits for its first input; a
/// crash leaves the queue alone (messages to a down node are dropped when
/// delivered); every send is traced.
fn rules() -> Rules {
    Rules {
        process_on_add: false,
        crash_drops: CrashDrops::Nothing,
        ..Rules::default()
    }
}

/// Multi-Paxos's own helpers on the network.
pub trait MultiPaxosNet {
    fn new(n: u64) -> Self;
    fn with_config(n: u64, tweak: impl Fn(&mut CoreConfig)) -> Self;
    /// Ticks only `id` until it leads (delivering messages in between).
    fn elect(&mut self, id: NodeId);
    fn propose(&mut self, id: NodeId, text: &str) -> Result<Ticket, Rejected>;
    /// Takes the queued messages matching `keep` out of the queue.
    fn take(&mut self, keep: impl Fn(&Envelope) -> bool) -> Vec<Envelope>;
    /// Delivers one message (dropped if the link is cut or a node is down).
    fn deliver_envelope(&mut self, envelope: Envelope);
    /// The applied payloads of a node, as text.
    fn applied_texts(&self, id: NodeId) -> Vec<String>;
}

impl MultiPaxosNet for Harness {
    fn new(n: u64) -> Harness {
        Self::with_config(n, |_| {})
    }

    fn with_config(n: u64, tweak: impl Fn(&mut CoreConfig)) -> Harness {
        let voters: Vec<NodeId> = (1..=n).collect();
        let mut harness = Harness::with_rules(rules());
        harness.tracing = true;
        for id in 1..=n {
            let mut config = config(id, &voters);
            tweak(&mut config);
            harness.add_node(config, InitialState::default());
        }
        harness
    }

    fn elect(&mut self, id: NodeId) {
        for _ in 0..200 {
            if self.status(id).role == consensus_api::Role::Leader {
                self.stabilize();
                return;
            }
            self.tick(id);
            self.stabilize();
        }
        panic!("node {id} did not become leader");
    }

    fn propose(&mut self, id: NodeId, text: &str) -> Result<Ticket, Rejected> {
        self.try_propose(id, text)
    }

    fn take(&mut self, keep: impl Fn(&Envelope) -> bool) -> Vec<Envelope> {
        let queued = self.take_queue().into_iter();
        let (taken, rest): (Vec<Envelope>, Vec<Envelope>) = queued
            .map(|(from, to, message)| Envelope { from, to, message })
            .partition(|e| keep(e));
        self.queue = rest
            .into_iter()
            .map(|e| (e.from, e.to, e.message))
            .collect();
        taken
    }

    fn deliver_envelope(&mut self, envelope: Envelope) {
        self.deliver(envelope.from, envelope.to, envelope.message);
    }

    fn applied_texts(&self, id: NodeId) -> Vec<String> {
        self.node(id)
            .machine
            .applied
            .iter()
            .map(|e| payload_text(&e.payload))
            .collect()
    }
}
