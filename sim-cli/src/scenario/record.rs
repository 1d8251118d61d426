//! What one scenario run records, as plain data: samples of every node,
//! fault spans, client operations, notes and the verdicts of the
//! expectations. Independent of the core type, so the renderers need no
//! generics.

use std::fmt;

use consensus_api::{LogIndex, NodeId, Role};
use consensus_sim::history::Op;

/// Virtual nanoseconds per second.
pub const SECOND_NS: u64 = 1_000_000_000;

/// What a node was doing at a sample.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum NodeKind {
    /// Running, in this role.
    Up(Role),
    /// Stopped (a GC pause); the role it believes it has.
    Paused(Role),
    /// Crashed (not running).
    Crashed,
}

/// One node at one sample.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct NodeState {
    /// Running, paused or crashed.
    pub kind: NodeKind,
    /// Term / ballot / epoch (0 while crashed).
    pub epoch: u64,
    /// Commit index (0 while crashed).
    pub commit: LogIndex,
    /// Applied index (0 while crashed).
    pub applied: LogIndex,
}

impl NodeState {
    /// The state of a crashed node.
    pub const CRASHED: NodeState = NodeState {
        kind: NodeKind::Crashed,
        epoch: 0,
        commit: 0,
        applied: 0,
    };

    /// The role, if the node runs (paused or not).
    pub fn role(&self) -> Option<Role> {
        match self.kind {
            NodeKind::Up(role) | NodeKind::Paused(role) => Some(role),
            NodeKind::Crashed => None,
        }
    }

    /// One letter for the role: `L`eader, `F`ollower, `C`andidate, `P`eer,
    /// `l`earner, `z` paused, `x` crashed.
    pub fn letter(&self) -> char {
        match self.kind {
            NodeKind::Crashed => 'x',
            NodeKind::Paused(_) => 'z',
            NodeKind::Up(role) => role_letter(role),
        }
    }
}

/// One letter per role.
pub fn role_letter(role: Role) -> char {
    match role {
        Role::Leader => 'L',
        Role::Follower => 'F',
        Role::Candidate => 'C',
        Role::Peer => 'P',
        Role::Learner => 'l',
    }
}

/// Every node at one instant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sample {
    /// Virtual time.
    pub time_ns: u64,
    /// Node `i + 1` is `nodes[i]`.
    pub nodes: Vec<NodeState>,
}

impl Sample {
    /// The node in `Role::Leader` with the highest epoch, if any.
    pub fn leader(&self) -> Option<(NodeId, u64)> {
        self.nodes
            .iter()
            .enumerate()
            .filter(|(_, n)| n.kind == NodeKind::Up(Role::Leader))
            .max_by_key(|(i, n)| (n.epoch, std::cmp::Reverse(*i)))
            .map(|(i, n)| (i as NodeId + 1, n.epoch))
    }

    /// Highest commit index of any running node.
    pub fn max_commit(&self) -> LogIndex {
        self.nodes.iter().map(|n| n.commit).max().unwrap_or(0)
    }

    /// Highest epoch of any running node.
    pub fn max_epoch(&self) -> u64 {
        self.nodes.iter().map(|n| n.epoch).max().unwrap_or(0)
    }
}

/// A fault, from when it started to when it ended (`None`: still on at the
/// end of the run).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FaultSpan {
    /// What it is, e.g. `partition {1,2} | {3,4,5}`.
    pub label: String,
    /// The nodes it hits (shaded in the swimlanes).
    pub nodes: Vec<NodeId>,
    /// Start, virtual time.
    pub start_ns: u64,
    /// End, virtual time.
    pub end_ns: Option<u64>,
}

/// How a client operation ended.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Outcome {
    /// It took effect (a read: returned a value).
    Ok,
    /// It definitely had no effect (a rejection).
    Failed,
    /// Unknown: a timeout or a lost connection (a write may have applied).
    Unknown,
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Outcome::Ok => "ok",
            Outcome::Failed => "failed",
            Outcome::Unknown => "unknown",
        })
    }
}

/// One client operation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpRecord {
    /// The client (index among the scenario's clients).
    pub client: usize,
    /// The history process id (a new one after an unknown outcome).
    pub process: u64,
    /// The register.
    pub key: String,
    /// The operation; a read's value is filled in when it ends `ok`.
    pub op: Op,
    /// Invocation, virtual time.
    pub invoked_ns: u64,
    /// The node of the last attempt (the one that answered).
    pub node: NodeId,
    /// End, virtual time.
    pub ended_ns: Option<u64>,
    /// How it ended.
    pub outcome: Option<Outcome>,
    /// Why, for failed and unknown outcomes.
    pub detail: String,
    /// Position of the invocation among all invocations and completions,
    /// in the order they happened (orders events of one instant).
    pub invoked_seq: u64,
    /// Position of the completion, likewise.
    pub ended_seq: u64,
}

impl OpRecord {
    /// True for writes.
    pub fn is_write(&self) -> bool {
        !matches!(self.op, Op::Read(_))
    }
}

/// A line of commentary on the timeline ("node 4 leads (term 3)").
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Note {
    /// Virtual time.
    pub time_ns: u64,
    /// The text.
    pub text: String,
}

/// The verdict on one expectation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// It held; what was seen.
    Held(String),
    /// It did not hold; what was seen instead.
    Broken(String),
    /// It does not apply to this protocol; why.
    NotApplicable(String),
}

impl Verdict {
    /// A verdict from a condition.
    pub fn check(held: bool, detail: String) -> Verdict {
        if held {
            Verdict::Held(detail)
        } else {
            Verdict::Broken(detail)
        }
    }

    /// `ok`, `FAIL` or `n/a`.
    pub fn mark(&self) -> &'static str {
        match self {
            Verdict::Held(_) => "ok",
            Verdict::Broken(_) => "FAIL",
            Verdict::NotApplicable(_) => "n/a",
        }
    }

    /// The detail text.
    pub fn detail(&self) -> &str {
        match self {
            Verdict::Held(d) | Verdict::Broken(d) | Verdict::NotApplicable(d) => d,
        }
    }

    /// True when broken.
    pub fn is_broken(&self) -> bool {
        matches!(self, Verdict::Broken(_))
    }
}

/// One stated expectation and its verdict.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Expectation {
    /// What must happen, in words.
    pub statement: String,
    /// Whether it did.
    pub verdict: Verdict,
}

/// Totals of one run, after the warm-up.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    /// The longest interval without a successful write, from the first
    /// fault on: (start, end) in virtual time.
    pub unavailable: Option<(u64, u64)>,
    /// Leaders elected after the warm-up (`None`: a leaderless protocol).
    pub leader_changes: Option<u64>,
    /// Client operations that ended ok.
    pub ok: u64,
    /// ... failed.
    pub failed: u64,
    /// ... with an unknown outcome.
    pub unknown: u64,
    /// Messages sent.
    pub messages: u64,
    /// Bytes sent (postcard encoding).
    pub bytes: u64,
    /// Snapshots installed from a leader or peer.
    pub snapshots_installed: u64,
}

/// Everything one protocol's run of a scenario produced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProtocolRun {
    /// Protocol name (`Core::PROTOCOL`).
    pub protocol: String,
    /// What "the leader" means for this protocol in this scenario.
    pub leader_meaning: String,
    /// Node samples, in time order.
    pub samples: Vec<Sample>,
    /// Faults, in start order.
    pub faults: Vec<FaultSpan>,
    /// Client operations, in invocation order.
    pub ops: Vec<OpRecord>,
    /// Commentary, in time order.
    pub notes: Vec<Note>,
    /// The scenario's expectations and the generic checks, with verdicts.
    pub expectations: Vec<Expectation>,
    /// Totals.
    pub summary: Summary,
    /// End of the run, virtual time.
    pub end_ns: u64,
}

impl ProtocolRun {
    /// The expectations that did not hold.
    pub fn broken(&self) -> impl Iterator<Item = &Expectation> {
        self.expectations.iter().filter(|e| e.verdict.is_broken())
    }

    /// Number of nodes.
    pub fn nodes(&self) -> usize {
        self.samples.first().map_or(0, |s| s.nodes.len())
    }
}

/// Formats an epoch the way the protocol names it: Raft `t3` (term), ZAB
/// `e3` (epoch), Multi-Paxos and Paxos `b3.1` (ballot counter.node).
pub fn format_epoch(protocol: &str, epoch: u64) -> String {
    match protocol {
        "multipaxos" | "paxos" => {
            if epoch == 0 {
                "b0".to_owned()
            } else {
                format!("b{}.{}", epoch >> 32, epoch & 0xffff_ffff)
            }
        }
        "zab" => format!("e{epoch}"),
        p if p.contains("raft") => format!("t{epoch}"),
        _ => format!("#{epoch}"),
    }
}

/// The protocol's word for an epoch.
pub fn epoch_word(protocol: &str) -> &'static str {
    match protocol {
        "multipaxos" | "paxos" => "ballot",
        "zab" => "epoch",
        p if p.contains("raft") => "term",
        _ => "epoch",
    }
}

/// Seconds with two decimals: `1.50s`.
pub fn seconds(time_ns: u64) -> String {
    let hundredths = (time_ns + 5_000_000) / 10_000_000;
    format!("{}.{:02}s", hundredths / 100, hundredths % 100)
}
