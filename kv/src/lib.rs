//! # consensus-kv: a replicated key-value service on any backend
//!
//! The proof that "swap the backend, keep the app" holds: the same server,
//! state machine and client run on Raft, Multi-Paxos, Paxos or ZAB, chosen
//! by one line of the cluster configuration.
//!
//! * [`config`]: the cluster file (TOML) every node and client reads;
//! * [`state`]: the deterministic key-value state machine (wrapped in client
//!   sessions so retries apply once);
//! * [`server`]: a node: the consensus node plus the client API over QUIC;
//! * [`client`]: leader caching, redirects, retries with backoff and jitter,
//!   idempotent retries, "outcome unknown" on timeouts;
//! * [`load`]: the closed-loop load generator behind `consensus-kv bench`;
//! * [`wire`]: the client API messages;
//! * [`demo`]: a local cluster of child processes;
//! * [`cli`]: pieces of the command-line programs (durations, signals, the
//!   demo command);
//! * [`torture`]: Jepsen-style fault testing of real processes (nemesis,
//!   recorded clients, authenticated fault-injection admin, checks).
#![deny(missing_docs)]

pub mod cli;
pub mod client;
pub mod config;
pub mod demo;
pub mod load;
pub mod server;
pub mod state;
pub mod tls;
pub mod torture;
pub mod wire;
