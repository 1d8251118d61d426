//! # consensus-sim: a deterministic simulator for any consensus core
//!
//! (being written: see the module docs below as they land)
#![deny(missing_docs)]

mod checks;
mod cluster;
mod failure;
pub mod history;
pub mod kv;
pub mod linearizability;
mod nemesis;
mod network;
mod ops;
mod run;
pub mod testing;
mod workload;

pub use cluster::{Cluster, ClusterStats, Completion, InFlight, Stepped, DEFAULT_TICK_NS, SESSION_CAPACITY};
pub use failure::SimFailure;
pub use nemesis::{Fault, FaultMode, UnknownFaultMode};
pub use network::{Links, NetworkConfig};
pub use run::{run, run_with, SimConfig, SimReport};
pub use workload::WorkloadSummary;
pub use ops::{KvOutcome, OpError};
