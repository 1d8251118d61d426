//! # consensus-coord: a ZooKeeper-style coordination service on any backend
//!
//! "A small, consistent brain" for a fleet of services — leader election,
//! locks, configuration, service discovery — as a deterministic state
//! machine on [`ReplicatedLog`](consensus::ReplicatedLog). It runs on Raft,
//! Multi-Paxos, classic Paxos or ZAB, chosen by one line of the cluster
//! file; neither ZooKeeper (ZAB only) nor etcd (Raft only) offers that.
//!
//! ## Leader election in five lines
//!
//! ```no_run
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! use consensus_coord::{recipes::Election, ClientOptions, ClusterConfig, CoordClient};
//! let client = CoordClient::connect_config(&ClusterConfig::load("cluster.toml")?, ClientOptions::default()).await?;
//! let leadership = Election::new(&client, "/election/scheduler").campaign().await?;
//! println!("leading with fencing token {}", leadership.token());
//! leadership.lost().await; // session expired or node deleted: stop leading
//! # Ok(()) }
//! ```
//!
//! ## The model
//!
//! * **Data tree** ([`state`]): znodes at paths like `/election/c_0000000007`,
//!   each with data (at most 1 MiB), a version for conditional set / delete
//!   and children. Nodes are persistent or **ephemeral** (deleted when the
//!   owning session ends; no children), and optionally **sequential** (the
//!   parent's never-reused counter, zero-padded to ten digits, is appended).
//! * **Sessions**: a client opens a session with a timeout and pings; the
//!   server turns pings into batched `Touch` log entries (at most one per
//!   session every quarter timeout). Expiry is decided **through the log**
//!   ([`expiry`]): the leader's server proposes `ExpireSession` once the
//!   session's deadline passed on its own clock; every replica applies it at
//!   the same index and deletes the same ephemerals; the state machine has
//!   no clock. A session survives a leader change (the new leader restarts
//!   every deadline) and a reconnect to another node within its timeout.
//! * **Watches** ([`machine`]): one-shot, per connection, registered
//!   atomically with the read that sets them, fired when the connected node
//!   applies the change, carrying no data, delivered on the same ordered
//!   stream as the replies (a client sees the event before any reply that
//!   reflects the change), re-registered by the client after a reconnect
//!   (each fires at once if its node changed meanwhile). When a session
//!   **expires**, its watches are gone and changes made while it was
//!   disconnected are never notified: the client gets `SessionExpired`,
//!   every pending watch resolves with that error, and the application must
//!   open a new session and re-read.
//! * **Consistency**: writes are linearizable (they go through the log) and
//!   each session's requests take effect in issue order; a session always
//!   reads its own writes. Reads are served by the connected node and may
//!   miss other sessions' most recent writes unless preceded by
//!   [`CoordClient::sync`] or made with [`Read::linearizable`] (a read
//!   barrier through the leader, then a local read).
//! * **Multi** ([`Op`], [`CoordClient::multi`]): all-or-nothing
//!   check / create / set / delete.
//! * **Exactly-once writes**: each write carries the session's sequence
//!   number; a retry after a lost reply (through any server) gets the first
//!   response.
//! * **Recipes** ([`recipes`]): election and lock (each waiter watches only
//!   its predecessor: no herd effect; the sequence number is a fencing
//!   token), a double barrier, a configuration watch.
//!
//! ## Processes
//!
//! `consensus-coord serve --config cluster.toml --id N` runs a node
//! ([`server`]); the same binary is the CLI client (`create`, `get`, `set`,
//! `delete`, `ls`, `sync`, `elect`, `lock`). The cluster file is the
//! key-value service's ([`ClusterConfig`]).
//!
//! ## Metrics and health
//!
//! `serve --metrics-addr ADDR` (or `metrics_addr` in the node's entry)
//! serves Prometheus `/metrics` and `/health` (the service edge's
//! `consensus_service::ops`, where every name is listed). Besides the
//! runtime's and the transport's metrics, the server counts each session
//! request in `consensus_client_requests_total{service="coord", op, result}`
//! and times it in `consensus_client_request_seconds{service="coord", op}`:
//! `op` is `get`, `exists`, `children`, `sync`, `create`, `delete`,
//! `set_data`, `check`, `multi` or `close`; `result` is `ok` or the error's
//! kind ([`wire::ServiceError::kind`]).
#![deny(missing_docs)]

pub mod client;
pub mod expiry;
pub mod load;
pub mod machine;
pub mod members;
pub mod path;
pub mod recipes;
pub mod server;
pub mod state;
pub mod tls;
pub mod types;
pub mod wire;

pub use client::{ClientError, ClientOptions, CoordClient, Read, SessionState, Watch};
pub use consensus_service::config::ClusterConfig;
pub use types::{
    CoordError, CreateMode, EventKind, MultiError, Op, OpResult, SessionId, Stat, WatchEvent,
    WatchKind,
};
