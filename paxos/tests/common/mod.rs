//! A tiny deterministic harness for the paxos core: the generic
//! [`consensus_testkit::network::Network`] (nodes with a `MemStore`, a list
//! of messages in flight that tests deliver, drop or reorder at will), with
//! a trivial state machine (the list of applied entries) so snapshots can
//! be taken and installed, and classic Paxos's own helpers in [`PaxosNet`].
#![allow(dead_code)]

use std::collections::BTreeSet;

use consensus_api::{
    Bytes, CoreConfig, Entry, InitialState, Membership, NodeId, Payload, Snapshot, Ticket,
};
use consensus_testkit::network::{self, CrashDrops, Machine, Network, Rules, TraceAt};
use paxos::{Message, PaxosCore};

/// The network; `trace` records every message delivered while `tracing`.
pub type Net = Network<PaxosCore, Log>;

/// The state machine: every entry applied, in order (restored from the
/// snapshot after a restart); a snapshot's data is this list, encoded.
#[derive(Default)]
pub struct Log {
    pub applied: Vec<Entry>,
}

impl Machine<Message> for Log {
    fn apply(&mut self, _id: NodeId, entry: Entry) {
        self.applied.push(entry);
    }

    fn restore(&mut self, snapshot: &Snapshot) {
        self.applied = postcard::from_bytes(&snapshot.data).expect("snapshot data");
        assert_eq!(self.applied.len() as u64, snapshot.index);
    }

    fn start(&mut self, snapshot: Option<&Snapshot>) {
        self.applied = match snapshot {
            Some(snapshot) => postcard::from_bytes(&snapshot.data).expect("snapshot data"),
            None => Vec::new(),
        };
    }

    fn snapshot(&self) -> Bytes {
        Bytes::from(postcard::to_allocvec(&self.applied).expect("encode"))
    }

    /// Safety: no two nodes applied different values at the same slot.
    fn check_agreement(nodes: &[(NodeId, &Self)]) {
        network::check_same_at_each_index(
            nodes.iter().map(|(id, log)| (*id, log.applied.as_slice())),
            |entry| &entry.payload,
        );
    }
}

pub fn command(text: &str) -> Bytes {
    network::command(text)
}

pub fn payload(text: &str) -> Payload {
    Payload::Command(command(text))
}

/// Classic Paxos's own helpers on the network.
pub trait PaxosNet {
    fn new(n: u64) -> Self;
    fn with_config(n: u64, seed: u64, tweak: impl Fn(&mut CoreConfig)) -> Self;
    /// Nodes `1..=n`, all started with `membership` as the configuration
    /// of slot 1 (nodes outside it start as non-members).
    fn with_membership(
        n: u64,
        membership: Membership,
        seed: u64,
        tweak: impl Fn(&mut CoreConfig),
    ) -> Self;
    /// Proposes `text` at `id`, which must accept it.
    fn propose(&mut self, id: NodeId, text: &str) -> Ticket;
    /// The commands applied by `id`, in order (no-ops skipped).
    fn commands(&self, id: NodeId) -> Vec<String>;
    /// Asserts no command was applied twice on any node.
    fn check_no_duplicates(&self);
}

impl PaxosNet for Net {
    fn new(n: u64) -> Net {
        Net::with_config(n, 7, |_| {})
    }

    fn with_config(n: u64, seed: u64, tweak: impl Fn(&mut CoreConfig)) -> Net {
        Net::with_membership(n, Membership::new(1..=n), seed, tweak)
    }

    fn with_membership(
        n: u64,
        membership: Membership,
        seed: u64,
        tweak: impl Fn(&mut CoreConfig),
    ) -> Net {
        // A crash drops what was in flight to the node; traces record
        // deliveries; the reordering RNG is seeded from `seed`.
        let mut net = Net::with_rules(Rules {
            crash_drops: CrashDrops::To,
            trace_at: TraceAt::Delivery,
            seed,
            ..Rules::default()
        });
        for id in 1..=n {
            let mut config = CoreConfig::new(id, membership.clone());
            config.seed = seed.wrapping_mul(1000).wrapping_add(id);
            tweak(&mut config);
            net.add_node(config, InitialState::default());
        }
        net
    }

    fn propose(&mut self, id: NodeId, text: &str) -> Ticket {
        self.try_propose(id, text).expect("proposal accepted")
    }

    fn commands(&self, id: NodeId) -> Vec<String> {
        network::command_texts(&self.node(id).machine.applied)
    }

    fn check_no_duplicates(&self) {
        for id in self.nodes.keys() {
            let commands = self.commands(*id);
            let unique: BTreeSet<&String> = commands.iter().collect();
            assert_eq!(
                unique.len(),
                commands.len(),
                "node {id} applied a command twice: {commands:?}"
            );
        }
    }
}
