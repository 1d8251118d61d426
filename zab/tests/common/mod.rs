//! A tiny deterministic harness for ZAB tests: the generic
//! [`consensus_testkit::network::Network`] (nodes with a core, a `MemStore`
//! and a trivial state machine, one FIFO message queue, link cuts,
//! crashes), with ZAB's own helpers in [`ZabNet`]. State machines are
//! checked for agreement after every delivery.
#![allow(dead_code)]

use consensus_api::{
    Bytes, CoreConfig, Entry, InitialState, LogIndex, Membership, NodeId, Payload, Ready, Rejected,
    Snapshot, Ticket,
};
use consensus_testkit::network::{self, CrashDrops, Network, Rules};
use zab::{Message, ZabCore};

/// The state machine: applied commands as `(index, text)`.
pub type Machine = Vec<(LogIndex, String)>;

pub fn encode_machine(machine: &Machine) -> Bytes {
    let text: Vec<String> = machine.iter().map(|(i, s)| format!("{i}\t{s}")).collect();
    Bytes::from(text.join("\n"))
}

pub fn decode_machine(data: &Bytes) -> Machine {
    let text = String::from_utf8(data.to_vec()).expect("utf8");
    text.lines()
        .filter(|l| !l.is_empty())
        .map(|l| {
            let (i, s) = l.split_once('\t').expect("tab");
            (i.parse().expect("index"), s.to_string())
        })
        .collect()
}

pub type Net = Network<ZabCore, State>;

/// A node's state machine (lost in a crash, rebuilt from the snapshot) and
/// what its `Ready` batches did (kept across incarnations).
#[derive(Default)]
pub struct State {
    pub commands: Machine,
    /// `Ready` batches handled.
    pub readies: u64,
    /// Ready batches that carried an installed snapshot.
    pub snapshots_installed: u64,
    /// Ready batches that truncated the history.
    pub truncations: Vec<LogIndex>,
}

impl network::Machine<Message> for State {
    fn apply(&mut self, _id: NodeId, entry: Entry) {
        if let Payload::Command(bytes) = &entry.payload {
            self.commands
                .push((entry.index, String::from_utf8_lossy(bytes).into_owned()));
        }
    }

    fn restore(&mut self, snapshot: &Snapshot) {
        self.commands = decode_machine(&snapshot.data);
    }

    fn start(&mut self, snapshot: Option<&Snapshot>) {
        self.commands = snapshot.map_or_else(Vec::new, |s| decode_machine(&s.data));
    }

    fn crash(&mut self) {
        self.commands.clear();
    }

    fn on_ready(&mut self, ready: &Ready<Message>) {
        self.readies += 1;
        if let Some(t) = ready.truncate_from {
            self.truncations.push(t);
        }
        if ready.snapshot.is_some() {
            self.snapshots_installed += 1;
        }
    }

    fn snapshot(&self) -> Bytes {
        encode_machine(&self.commands)
    }

    /// Applied state machines agree: each is a prefix of the longest.
    fn check_agreement(nodes: &[(NodeId, &Self)]) {
        for (a, na) in nodes {
            for (b, nb) in nodes {
                let common = na.commands.len().min(nb.commands.len());
                assert_eq!(
                    na.commands[..common],
                    nb.commands[..common],
                    "nodes {a} and {b} applied different commands"
                );
            }
        }
    }
}

pub fn config(id: NodeId, voters: &[NodeId]) -> CoreConfig {
    let mut config = CoreConfig::new(id, Membership::new(voters.iter().copied()));
    config.seed = id * 7919;
    config
}

/// ZAB's own helpers on the network.
pub trait ZabNet {
    /// No nodes yet (add them with `add_node`).
    fn empty() -> Self;
    fn new(n: u64) -> Self;
    fn with_config(n: u64, tweak: impl Fn(&mut CoreConfig)) -> Self;
    /// Runs until a leader is established, then lets every reachable
    /// follower finish synchronizing; returns the leader.
    fn elect(&mut self) -> NodeId;
    fn propose(&mut self, id: NodeId, text: &str) -> Result<Ticket, Rejected>;
    /// One tick round in which messages matching `drop` are lost.
    fn run_ticks_dropping(&mut self, drop: impl Fn(&Message) -> bool);
    /// The commands `id` applied, in order.
    fn machine(&self, id: NodeId) -> Vec<String>;
}

impl ZabNet for Net {
    /// A crash drops what was queued to the node; compaction leaves the
    /// node's output for its next input.
    fn empty() -> Net {
        Net::with_rules(Rules {
            crash_drops: CrashDrops::To,
            process_after_compact: false,
            check_after_delivery: true,
            ..Rules::default()
        })
    }

    fn new(n: u64) -> Net {
        Net::with_config(n, |_| {})
    }

    fn with_config(n: u64, tweak: impl Fn(&mut CoreConfig)) -> Net {
        let voters: Vec<NodeId> = (1..=n).collect();
        let mut net = Net::empty();
        for id in 1..=n {
            let mut c = config(id, &voters);
            tweak(&mut c);
            net.add_node(c, InitialState::default());
        }
        net
    }

    fn elect(&mut self) -> NodeId {
        assert!(
            self.run_until(300, |n| n.leader().is_some()),
            "a leader is elected"
        );
        let leader = self.leader().unwrap();
        // Let every reachable follower finish synchronizing.
        self.run(10);
        leader
    }

    fn propose(&mut self, id: NodeId, text: &str) -> Result<Ticket, Rejected> {
        self.try_propose(id, text)
    }

    fn run_ticks_dropping(&mut self, drop: impl Fn(&Message) -> bool) {
        self.run_losing(|_, _, message| drop(message));
    }

    fn machine(&self, id: NodeId) -> Vec<String> {
        self.node(id)
            .machine
            .commands
            .iter()
            .map(|(_, s)| s.clone())
            .collect()
    }
}
