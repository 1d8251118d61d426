//! # consensus-runtime: any core, on real time, disk and network
//!
//! [`Node`] drives one [`consensus_api::Core`] with tokio and exposes it as
//! [`consensus_api::ReplicatedLog`]. The same code runs Raft, Paxos,
//! Multi-Paxos and ZAB, so their differences in a benchmark are their own.
//!
//! What a node does (see `driver.rs` for the loop):
//! * a tick timer ([`RuntimeConfig::tick`]) turns real time into
//!   [`Core::tick`](consensus_api::Core::tick) calls;
//! * every `Ready` is persisted — written and made durable with **one
//!   fdatasync per batch** on tokio's blocking pool — before its messages are
//!   sent; then a received snapshot is restored, committed entries are
//!   applied to the [`StateMachine`](consensus_api::StateMachine) in order,
//!   and finished requests are answered with the state machine's response;
//! * client requests queue in a bounded channel (full → `Overloaded`) and
//!   are handed to the core in batches, so many commands share one round
//!   trip and one fsync (group commit);
//! * the log is compacted by a state-machine snapshot every
//!   [`RuntimeConfig::snapshot_interval_entries`];
//! * reads: [`ReadConsistency::Linearizable`](consensus_api::ReadConsistency)
//!   waits for the core's read barrier and for the state machine to reach it;
//! * a storage failure stops the node with typed errors; nothing is retried;
//! * metrics ([`RuntimeMetrics`]) for epoch churn, leader tenure, commit and
//!   fsync latency, follower lag and rejections, also exported through the
//!   `metrics` crate.
//!
//! A node restarted on the same data directory rebuilds its core from the
//! store ([`Core::restore`](consensus_api::Core::restore)) and catches up.
#![deny(missing_docs)]

mod config;
mod driver;
mod metrics;
mod node;

pub use config::RuntimeConfig;
pub use metrics::{LatencySummary, RuntimeMetrics};
pub use node::{Node, StartError};
