//! # consensus-service: the service edge
//!
//! What every service built on the toolkit needs between its state machine
//! and its users, written once for the key-value store (`consensus-kv`) and
//! the coordination service (`consensus-coord`), which then differ only in
//! their state machines, commands and command-line verbs:
//!
//! * [`config`]: the cluster file (TOML) every node and client reads;
//! * [`tls`]: TLS for the client API (node certificates of the cluster CA,
//!   optional client certificates for node-to-node forwarding);
//! * [`edge`]: a node's consensus node started with the membership and
//!   backup services;
//! * [`accept`]: the QUIC accept loop and per-connection stream serving;
//! * [`frame`] and [`pipe`]: the pipelined client protocol — one long-lived
//!   stream per connection, many requests in flight matched by id, answers
//!   written in batches, bounded per connection;
//! * [`retry`]: backoff with jitter, node order, avoiding silent nodes;
//! * [`cli`]: command-line pieces (durations, logging, signals, runtime,
//!   the demo command) and [`demo`]: a local cluster of child processes;
//! * [`members`]: membership changes of a running cluster (the replicated
//!   address book, add / promote / remove with catch-up, one at a time)
//!   and [`member_client`]: the operator's client of them (and of backups),
//!   generic over how a service's wire carries one request;
//! * [`backup`]: `snapshot save` / `restore` / `inspect`: a checksummed,
//!   protocol-neutral backup of the state machine, restored into a new
//!   cluster of any protocol;
//! * [`ops`]: the operations endpoint of a node: Prometheus `/metrics`
//!   (every metric name is listed in [`ops::METRICS`]) and `/health`;
//! * [`usage`]: the CPU time this process used (load generators report it).
#![deny(missing_docs)]

pub mod accept;
pub mod backup;
pub mod cli;
pub mod config;
pub mod demo;
pub mod edge;
pub mod frame;
pub mod member_client;
pub mod members;
pub mod ops;
pub mod pipe;
pub mod retry;
pub mod tls;
pub mod usage;
