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
//!   `metrics` crate (below).
//!
//! A node restarted on the same data directory rebuilds its core from the
//! store ([`Core::restore`](consensus_api::Core::restore)) and catches up.
//!
//! # Exported metrics
//!
//! Through the `metrics` facade, into whatever recorder the application
//! installed **before** [`Node::start`] (the handles are registered when the
//! node starts; `consensus-kv` and `consensus-coord` install a Prometheus
//! recorder with `serve --metrics-addr`). Every series carries the labels
//! `node` and `protocol`; `docs/operations.md` says what an operator
//! watches.
//!
//! | name | type | extra labels | meaning |
//! |---|---|---|---|
//! | `consensus_epoch` | gauge | | current term / ballot / epoch |
//! | `consensus_epoch_changes_total` | counter | | times the epoch changed here |
//! | `consensus_leader_changes_total` | counter | | times the known leader changed (including to none) |
//! | `consensus_leader` | gauge | | id of the leader this node knows, 0 for none (always 0 on classic Paxos) |
//! | `consensus_is_leader` | gauge | | 1 while this node is the leader |
//! | `consensus_commit_index` | gauge | | highest index known committed |
//! | `consensus_applied_index` | gauge | | highest index applied to the state machine |
//! | `consensus_last_index` | gauge | | highest index in this node's log |
//! | `consensus_snapshot_index` | gauge | | index of the last snapshot |
//! | `consensus_applied_entries_total` | counter | | entries applied to the state machine |
//! | `consensus_follower_lag_entries` | gauge | `peer` | leader only: entries the peer is behind the leader's last index (0 elsewhere) |
//! | `consensus_commit_seconds` | histogram | | a proposal's time from `append` to its commit on this node |
//! | `consensus_fsync_seconds` | histogram | | each group-committed fdatasync |
//! | `consensus_proposals_rejected_total` | counter | `reason` | client requests refused: `not_leader`, `unavailable`, `overloaded` (the core has too much uncommitted), `queue_full` (the request queue is full), `outcome_unknown`, `change_in_progress`, `invalid_membership`, `other` |
//! | `consensus_request_queue_depth` | gauge | | client requests queued for the driver (bounded by `request_queue_max`) |
//! | `consensus_pending_proposals` | gauge | | proposals accepted by the core and not yet committed |
//! | `consensus_pending_reads` | gauge | | read barriers and linearizable reads (and a membership change) not yet answered |
#![deny(missing_docs)]

mod config;
mod driver;
mod metrics;
mod node;

pub use config::RuntimeConfig;
pub use metrics::{LatencySummary, RuntimeMetrics};
pub use node::{Node, StartError};
