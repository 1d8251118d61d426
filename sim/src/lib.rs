//! # consensus-sim: a deterministic simulator for any consensus core
//!
//! Runs any [`consensus_api::Core`] — Raft, Paxos, Multi-Paxos, ZAB — on
//! virtual time over a seeded faulty network, crashes and restarts its nodes,
//! drives concurrent clients against a replicated key-value store, and checks
//! safety after **every event**, liveness after the faults stop, and
//! linearizability of the client history at the end. One seed reproduces a
//! whole run on any machine (TigerBeetle's VOPR discipline).
//!
//! ## Two ways to use it
//!
//! **Scripted scenarios** (protocol crates' tests) with [`Cluster`]:
//!
//! ```text
//! let mut cluster: Cluster<raft::RaftCore> = Cluster::new(5, seed);
//! assert!(cluster.run_until(500, |c| c.leader().is_some()));
//! cluster.partition(&[&[1, 2], &[3, 4, 5]]);
//! let ticket = cluster.propose(1, Bytes::from("x"))?;
//! cluster.run_ticks(100);
//! cluster.crash(3);
//! cluster.restart(3);
//! assert_eq!(cluster.write_sync(leader, "k", 7, 300), Ok(KvResponse::Written));
//! ```
//!
//! **Randomized runs** (the `consensus-sim` binary, CI) with [`run`]:
//!
//! ```text
//! let config = SimConfig { nodes: 5, seed: 42, ops: 2000, clients: 8,
//!                          faults: FaultMode::All, ..SimConfig::default() };
//! match run::<raft::RaftCore>(&config) {
//!     Ok(report) => println!("{report}"),
//!     Err(failure) => panic!("{failure}"), // seed, step, tick, check, reproducing command
//! }
//! ```
//!
//! ## Determinism
//!
//! One `ChaCha8Rng` (rand_chacha, a fixed algorithm), seeded with the seed,
//! makes every choice: each node's [`CoreConfig::seed`](consensus_api::CoreConfig),
//! each node's tick rate (within 2% of nominal) and tick jitter, message
//! delays, drops and duplicates, the nemesis's faults, compactions, and the
//! clients' operations, keys, values, target nodes and backoff. The event
//! queue is ordered by (virtual time, sequence number); every map is a
//! `BTreeMap`. No wall clock, no thread, no OS randomness.
//!
//! ## The driver
//!
//! Per node, exactly the loop of `consensus-api`: after each input,
//! `core.ready()` → `store.write` + `sync` on a [`MemStore`](consensus_storage::MemStore)
//! (or a crash between the two: a random prefix of the unsynced batches
//! survives) → restore the state machine from `ready.snapshot` → hand the
//! messages to the network → apply `committed` to the
//! [`Sessions`](consensus_api::Sessions)-wrapped [`kv::KvStore`] → record
//! `completed`. A crash drops the core and everything volatile; a restart
//! rebuilds the core with `C::restore(config, store.load())` and the state
//! machine from the stored snapshot.
//!
//! ## Faults
//!
//! Per message: loss, duplication, uniform delays (hence reordering) and rare
//! long delays ([`NetworkConfig`]). Links: symmetric and one-way cuts,
//! partitions, isolation and the partial-connectivity scenarios
//! (quorum-loss, constrained election, chained) where no clean split exists
//! ([`Links`], [`Fault`]), and slow links ([`Cluster::slow_node`]: every
//! message to or from a node takes a multiple of its delay). Nodes: crash,
//! crash between write and sync, restart, stop-the-world pause (resumed with
//! its mail handled at once, or after the caller's own input with
//! [`Cluster::resume_queued`]). Clocks: a node's ticks at 1/3 to 3 times
//! the nominal rate ([`Cluster::set_clock_rate`]), and a stale pause in
//! which client requests wait in the node's socket and are answered on its
//! stale view when it wakes, before its mail ([`Cluster::pause_stale`],
//! [`Cluster::resume_stale`]). [`FaultMode`] selects what the nemesis draws
//! in a randomized run; scripted tests call the [`Cluster`] methods.
//!
//! ## Checks
//!
//! After every event (message, tick, client call):
//! * **agreement**: no two nodes apply different payloads at one index
//!   (checked as each entry is applied, against the log every node applied
//!   so far, so also across restarts: committed entries never change);
//! * **applied sequence**: each node applies contiguous indexes, a snapshot
//!   never moves it backwards, and installed snapshots equal the state the
//!   taking node had at that index;
//! * **leader per epoch**: at most one node is ever `Role::Leader` of an
//!   epoch; commit index and epoch never decrease within an incarnation;
//! * the driver-visible rules of `Ready` (writes imply `must_sync`, the
//!   store accepts every batch, `Status::applied_index` matches what was
//!   handed out);
//! * every invariant added with [`Cluster::add_invariant`] (protocol-specific
//!   ones through [`run_with`]).
//!
//! After the main phase of a randomized run every fault heals, a fresh
//! write must commit within [`SimConfig::liveness_ticks`], and then every
//! node must apply everything any node applied, within the same bound
//! (`catch-up-after-heal`). A panic inside a run becomes a failure with
//! the seed through [`catch_panic`]. At the end, every
//! acknowledged write is in the final state or overwritten by a write that
//! did not finish before it started, and the history
//! ([`history`], the JSONL format of `shared/HISTORY.md`) must be
//! linearizable ([`linearizability`]).
//!
//! ## Clients
//!
//! Jepsen-style processes, one operation at a time: read (a read barrier,
//! then a local query once the node applied the barrier index), write, cas
//! on a few keys. A client caches the leader, follows `NotLeader { hint }`,
//! retries with backoff and the **same** session sequence number, abandons
//! an attempt that gets no answer and tries another node, and gives up at a
//! virtual deadline: writes and cas end `info` (the process id is retired),
//! reads end `fail` (they have no effect).
//!
//! ## Proving the checks can fail
//!
//! The [`testing`] module holds deliberately broken cores; the crate's tests
//! assert the simulator catches them (a lowest-id-leader core that commits
//! alone: found under partitions at the first seeds; a Raft whose read
//! barrier skips the leadership check: only the linearizability check sees
//! it) and that a correct reference core passes every fault mode.
#![deny(missing_docs)]

mod checks;
mod cluster;
mod failure;
pub mod history;
pub mod invariants;
pub mod kv;
pub mod linearizability;
mod nemesis;
mod network;
mod ops;
mod run;
pub mod testing;
mod workload;

pub use cluster::{
    Cluster, ClusterStats, Completion, Delivered, InFlight, Stepped, DEFAULT_TICK_NS,
    SESSION_CAPACITY,
};
pub use failure::SimFailure;
pub use nemesis::{Fault, FaultMode, UnknownFaultMode};
pub use network::{Links, NetworkConfig};
pub use ops::{KvOutcome, OpError};
pub use run::{catch_panic, run, run_with, FaultTally, SimConfig, SimReport};
pub use workload::WorkloadSummary;
