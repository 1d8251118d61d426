//! The protocols this binary can simulate.
//!
//! **Adding a protocol is a two-line change:**
//! 1. in `sim-cli/Cargo.toml`, under `[dependencies]`: `raft.workspace = true`;
//! 2. below, in [`runner`], one arm: `"raft" => Ok(run_seed::<raft::RaftCore>),`.
//!
//! A name of [`PROTOCOLS`] without an arm answers [`ProtocolError::NotLinked`].
//!
//! The `testing` cores of `consensus-sim` (deliberately unsafe ones and the
//! small reference Raft) are also accepted, so the command line can be shown
//! to find bugs; they are not listed in `--help`.

use consensus_api::Core;
use consensus_sim::invariants::leader_completeness;
use consensus_sim::testing::{LeaderLocalReads, StaleReadRaft, TinyRaft, UnsafeLowestIdCore};
use consensus_sim::{catch_panic, run, run_with, Cluster, SimConfig, SimFailure, SimReport};

use crate::scenario::{run_core, ProtocolRun, ScenarioConfig, ScenarioName};
use crate::testing_cores::{PanickingRaft, RaftLeaseReads};

// ZAB's primary-order and catch-up invariants, the same source file the zab
// crate's simulator tests use.
#[path = "../../zab/tests/primary_order/mod.rs"]
#[allow(missing_docs, clippy::all)]
mod zab_primary_order;

/// The four protocols of the project. A name here that has no arm in
/// [`runner`] yet answers "not linked yet".
pub const PROTOCOLS: &[&str] = &["raft", "multipaxos", "paxos", "zab"];

/// Internal cores from `consensus_sim::testing`, for testing the harness.
pub const TESTING: &[&str] = &[
    "unsafe-lowest-id",
    "stale-read-raft",
    "tiny-raft",
    "raft-local-reads",
    "multipaxos-local-reads",
    "zab-local-reads",
    "raft-lease-reads",
    "panicking-raft",
];

/// The invariants a run of the named protocol checks besides the built-in
/// ones (agreement, applied sequences, leader per epoch, commit and epoch
/// monotone, the `Ready` contract, liveness and catch-up after heal,
/// acknowledged writes, linearizability).
pub fn extra_invariants(protocol: &str) -> &'static [&'static str] {
    match protocol {
        "raft" | "tiny-raft" | "stale-read-raft" | "raft-local-reads" | "raft-lease-reads" => {
            &["leader-completeness"]
        }
        "zab" => &["zab-primary-order", "zab-catch-up"],
        _ => &[],
    }
}

/// Why a protocol name cannot be run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    /// One of the four protocols, whose crate is not linked into the binary
    /// yet.
    #[error(
        "protocol `{0}` is not linked into consensus-sim yet: add `{0}.workspace = true` to sim-cli/Cargo.toml and its line to sim-cli/src/protocols.rs"
    )]
    NotLinked(String),
    /// Not a protocol name at all.
    #[error("unknown protocol `{0}` (expected one of: raft, multipaxos, paxos, zab)")]
    Unknown(String),
}

/// Runs one seed of the core `C`; a panic becomes a [`SimFailure`] with
/// check `panic` and the reproducing command line.
pub fn run_seed<C: Core>(config: &SimConfig) -> Result<SimReport, SimFailure> {
    catch_panic(config, C::PROTOCOL, run::<C>)
}

/// Like [`run_seed`], with Raft's Leader Completeness checked after every
/// event.
pub fn run_seed_raft_like<C: Core>(config: &SimConfig) -> Result<SimReport, SimFailure> {
    catch_panic(config, C::PROTOCOL, |config| {
        run_with::<C>(config, |cluster: &mut Cluster<C>| {
            cluster.add_invariant("leader-completeness", leader_completeness::<C>);
        })
    })
}

/// ZAB with its primary-order invariants and continuous catch-up after
/// every event (as in `zab/tests/sim.rs`).
pub fn run_seed_zab(config: &SimConfig) -> Result<SimReport, SimFailure> {
    catch_panic(config, zab::ZabCore::PROTOCOL, |config| {
        run_with::<zab::ZabCore>(config, |cluster| {
            zab_primary_order::add_primary_order_invariants(cluster);
            zab_primary_order::add_catch_up_invariant(cluster, 50, 150);
        })
    })
}

/// Runs one seed of a core.
pub type Runner = fn(&SimConfig) -> Result<SimReport, SimFailure>;

/// The runner of the named protocol.
pub fn runner(protocol: &str) -> Result<Runner, ProtocolError> {
    match protocol {
        // Protocols: one line each (see the module docs), e.g.
        // "raft" => Ok(run_seed::<raft::RaftCore>),
        "raft" => Ok(run_seed_raft_like::<raft::RaftCore>),
        "multipaxos" => Ok(run_seed::<multipaxos::MultiPaxosCore>),
        "zab" => Ok(run_seed_zab),
        "paxos" => Ok(run_seed::<paxos::PaxosCore>),

        // Testing cores of consensus-sim (not listed in --help).
        "unsafe-lowest-id" => Ok(run_seed::<UnsafeLowestIdCore>),
        "stale-read-raft" => Ok(run_seed_raft_like::<StaleReadRaft>),
        "tiny-raft" => Ok(run_seed_raft_like::<TinyRaft>),
        // Real cores with their read confirmation switched off.
        "raft-local-reads" => Ok(run_seed_raft_like::<LeaderLocalReads<raft::RaftCore>>),
        "multipaxos-local-reads" => Ok(run_seed::<LeaderLocalReads<multipaxos::MultiPaxosCore>>),
        "zab-local-reads" => Ok(run_seed::<LeaderLocalReads<zab::ZabCore>>),
        // Raft's optional lease reads (thesis §6.4.1), which trust clocks.
        "raft-lease-reads" => Ok(run_seed_raft_like::<RaftLeaseReads>),
        // A planted panic, to show panics are reported with their seed.
        "panicking-raft" => Ok(run_seed::<PanickingRaft>),
        name if PROTOCOLS.contains(&name) => Err(ProtocolError::NotLinked(name.to_owned())),
        name => Err(ProtocolError::Unknown(name.to_owned())),
    }
}

/// Runs one scenario on one core.
pub type ScenarioRunner = fn(ScenarioName, &ScenarioConfig) -> ProtocolRun;

/// The scenario runner of the named protocol (the same names as
/// [`runner`], testing cores included).
pub fn scenario_runner(protocol: &str) -> Result<ScenarioRunner, ProtocolError> {
    match protocol {
        "raft" => Ok(run_core::<raft::RaftCore>),
        "multipaxos" => Ok(run_core::<multipaxos::MultiPaxosCore>),
        "zab" => Ok(run_core::<zab::ZabCore>),
        "paxos" => Ok(run_core::<paxos::PaxosCore>),
        "unsafe-lowest-id" => Ok(run_core::<UnsafeLowestIdCore>),
        "stale-read-raft" => Ok(run_core::<StaleReadRaft>),
        "tiny-raft" => Ok(run_core::<TinyRaft>),
        "raft-local-reads" => Ok(run_core::<LeaderLocalReads<raft::RaftCore>>),
        "multipaxos-local-reads" => Ok(run_core::<LeaderLocalReads<multipaxos::MultiPaxosCore>>),
        "zab-local-reads" => Ok(run_core::<LeaderLocalReads<zab::ZabCore>>),
        "raft-lease-reads" => Ok(run_core::<RaftLeaseReads>),
        name if PROTOCOLS.contains(&name) => Err(ProtocolError::NotLinked(name.to_owned())),
        name => Err(ProtocolError::Unknown(name.to_owned())),
    }
}
