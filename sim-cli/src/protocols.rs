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
use consensus_sim::testing::{StaleReadRaft, TinyRaft, UnsafeLowestIdCore};
use consensus_sim::{run, SimConfig, SimFailure, SimReport};

use crate::scenario::{run_core, ProtocolRun, ScenarioConfig, ScenarioName};

/// The four protocols of the project. A name here that has no arm in
/// [`runner`] yet answers "not linked yet".
pub const PROTOCOLS: &[&str] = &["raft", "multipaxos", "paxos", "zab"];

/// Internal cores from `consensus_sim::testing`, for testing the harness.
pub const TESTING: &[&str] = &["unsafe-lowest-id", "stale-read-raft", "tiny-raft"];

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

/// Runs one seed of the core `C`.
pub fn run_seed<C: Core>(config: &SimConfig) -> Result<SimReport, SimFailure> {
    run::<C>(config)
}

/// Runs one seed of a core.
pub type Runner = fn(&SimConfig) -> Result<SimReport, SimFailure>;

/// The runner of the named protocol.
pub fn runner(protocol: &str) -> Result<Runner, ProtocolError> {
    match protocol {
        // Protocols: one line each (see the module docs), e.g.
        // "raft" => Ok(run_seed::<raft::RaftCore>),
        "raft" => Ok(run_seed::<raft::RaftCore>),
        "multipaxos" => Ok(run_seed::<multipaxos::MultiPaxosCore>),
        "zab" => Ok(run_seed::<zab::ZabCore>),
        "paxos" => Ok(run_seed::<paxos::PaxosCore>),

        // Testing cores of consensus-sim (not listed in --help).
        "unsafe-lowest-id" => Ok(run_seed::<UnsafeLowestIdCore>),
        "stale-read-raft" => Ok(run_seed::<StaleReadRaft>),
        "tiny-raft" => Ok(run_seed::<TinyRaft>),
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
        name if PROTOCOLS.contains(&name) => Err(ProtocolError::NotLinked(name.to_owned())),
        name => Err(ProtocolError::Unknown(name.to_owned())),
    }
}
