//! # consensus-kv: a replicated key-value service on any backend
//!
//! The proof that "swap the backend, keep the app" holds: the same server,
//! state machine and client run on Raft, Multi-Paxos, Paxos or ZAB, chosen
//! by one line of the cluster configuration.
//!
//! * [`config`], [`demo`], [`cli`]: the cluster file, local demo clusters
//!   and command-line pieces, from the service edge
//!   ([`consensus_service`]), which also carries the QUIC accept loop, the
//!   pipelined client protocol and the retry rules;
//! * [`state`]: the deterministic key-value state machine (wrapped in client
//!   sessions so retries apply once);
//! * [`server`]: a node: the consensus node plus the client API over QUIC;
//!   with `serve --metrics-addr ADDR` also Prometheus `/metrics` and
//!   `/health` (the service edge's `consensus_service::ops`, where every
//!   name is listed); the server counts each request in
//!   `consensus_client_requests_total{service="kv", op, result}` and times
//!   it in `consensus_client_request_seconds{service="kv", op}` (`op`:
//!   [`wire::Request::op`], `result`: `ok` or [`wire::ServiceError::kind`]);
//! * [`client`]: leader caching, redirects, retries with backoff and jitter,
//!   idempotent retries, "outcome unknown" on timeouts;
//! * [`members`]: the client of membership commands (`consensus-kv member
//!   list/add/promote/remove`); the procedure is the service edge's
//!   [`consensus_service::members`];
//! * [`load`]: the closed-loop load generator behind `consensus-kv bench`;
//! * [`wire`]: the client API messages; [`tls`]: its endpoints;
//! * [`admin`]: the client of the authenticated fault-injection admin
//!   command (`consensus-kv admin`, tests only); the fault testing that
//!   uses it lives in the `consensus-torture` crate and binary.
#![deny(missing_docs)]

pub use consensus_service::{cli, config, demo};

pub mod admin;
pub mod client;
pub mod load;
pub mod members;
pub mod server;
pub mod state;
pub mod tls;
pub mod wire;
