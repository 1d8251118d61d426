//! Named failure scenarios of the seed article (and the three
//! partial-connectivity cases of the Omni-Paxos paper), run on any core
//! with a fixed schedule on virtual time, so the four protocols can be put
//! side by side on one time axis.
//!
//! A scenario is a script ([`scripts`]) over a [`Harness`]: it warms the
//! cluster up with clients, injects its faults at fixed times, and states
//! what must happen as [`Expectation`]s it checks from what it saw. The
//! harness adds the checks every scenario shares: the simulator's invariants
//! after every event, "a follower never applies an uncommitted entry",
//! "a node cut off from a quorum never acknowledges a write", "a stale log
//! never wins an election" and the linearizability of the client history.
//! The result, a [`ProtocolRun`], is plain data for the text timeline and
//! the HTML page ([`crate::render`]).

mod checks;
mod clients;
mod harness;
mod record;
mod scripts;

use std::fmt;
use std::str::FromStr;

use consensus_api::Core;

pub use clients::{OpChoice, Reach, OP_TIMEOUT_NS};
pub use harness::{format_set, Flavor, Harness, SAMPLE_NS};
pub use record::{
    epoch_word, format_epoch, role_letter, seconds, Expectation, FaultSpan, NodeKind, NodeState,
    Note, OpRecord, Outcome, ProtocolRun, Sample, Summary, Verdict, SECOND_NS,
};

/// The scenarios, in the order `--list` prints them.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ScenarioName {
    /// The leader crashes; the others stay connected.
    LeaderCrash,
    /// The leader is on the 2-node side of a 3 | 2 partition.
    Partition32,
    /// The leader alone, still receiving requests.
    OldLeaderIsolated,
    /// The leader stops for 30 s and resumes believing it leads.
    GcPause,
    /// One follower's links are 50 times slower.
    SlowFollower,
    /// Two candidates start together.
    SplitVote,
    /// The leader crashes while a membership change is in flight.
    CrashMidReconfig,
    /// Omni-Paxos' quorum-loss: only one node reaches everyone.
    QuorumLoss,
    /// Omni-Paxos' constrained election: the only well-connected node has a
    /// stale log.
    ConstrainedElection,
    /// Omni-Paxos' chained case: the leader and one follower lose their link.
    Chained,
}

/// What the catalog says about a scenario.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScenarioInfo {
    /// The command-line name.
    pub name: &'static str,
    /// One line.
    pub title: &'static str,
    /// What happens, step by step, with the virtual times.
    pub story: &'static str,
    /// Where it comes from.
    pub source: &'static str,
    /// Fewest nodes it makes sense with.
    pub min_nodes: usize,
    /// Timeline rows are printed at least this often (plus one per change).
    pub row_every_ns: u64,
}

impl ScenarioName {
    /// Every scenario.
    pub const ALL: [ScenarioName; 10] = [
        ScenarioName::LeaderCrash,
        ScenarioName::Partition32,
        ScenarioName::OldLeaderIsolated,
        ScenarioName::GcPause,
        ScenarioName::SlowFollower,
        ScenarioName::SplitVote,
        ScenarioName::CrashMidReconfig,
        ScenarioName::QuorumLoss,
        ScenarioName::ConstrainedElection,
        ScenarioName::Chained,
    ];

    /// The catalog entry.
    pub fn info(self) -> ScenarioInfo {
        scripts::info(self)
    }

    /// The command-line name.
    pub fn name(self) -> &'static str {
        self.info().name
    }
}

impl fmt::Display for ScenarioName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A scenario name that is not in the catalog.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown scenario `{0}`: `consensus-sim scenario --list` shows the names")]
pub struct UnknownScenario(pub String);

impl FromStr for ScenarioName {
    type Err = UnknownScenario;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        ScenarioName::ALL
            .into_iter()
            .find(|s| s.name() == name)
            .ok_or_else(|| UnknownScenario(name.to_owned()))
    }
}

/// Parameters of a scenario run.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct ScenarioConfig {
    /// Cluster size.
    pub nodes: usize,
    /// The seed (the same seed replays the same run).
    pub seed: u64,
}

impl Default for ScenarioConfig {
    fn default() -> Self {
        ScenarioConfig { nodes: 5, seed: 1 }
    }
}

/// Runs one scenario on the core `C`.
pub fn run_core<C: Core>(scenario: ScenarioName, config: &ScenarioConfig) -> ProtocolRun {
    scripts::run::<C>(scenario, config)
}

/// One scenario run on one or more protocols.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScenarioOutcome {
    /// The scenario.
    pub scenario: ScenarioName,
    /// Its parameters.
    pub config: ScenarioConfig,
    /// One run per protocol, in the order asked for.
    pub runs: Vec<ProtocolRun>,
}

impl ScenarioOutcome {
    /// True when every expectation held (or did not apply) on every protocol.
    pub fn passed(&self) -> bool {
        self.runs.iter().all(|run| run.broken().next().is_none())
    }
}
