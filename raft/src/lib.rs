//! # raft: the Raft consensus protocol as a deterministic sans-IO core
//!
//! This crate implements Raft (Ongaro and Ousterhout, "In Search of an
//! Understandable Consensus Algorithm", USENIX ATC 2014, cited as §N below;
//! and Ongaro's PhD thesis "Consensus: Bridging Theory and Practice", 2014,
//! cited as "thesis §N") behind the workspace's [`Core`] contract. The core
//! never touches a socket, a file, a clock, a thread or a global RNG: it
//! takes messages ([`Core::step`]), ticks ([`Core::tick`]) and client
//! requests as input, and hands everything it wants done to the driver as
//! one owned [`Ready`](consensus_api::Ready) batch.
//!
//! ## The protocol in five parts
//!
//! **Terms and persistence (§5.1, Figure 2).** Time is divided into terms,
//! each with at most one leader. `currentTerm` and `votedFor` form the hard
//! state ([`HardState`], postcard-encoded into `Ready::hard_state`); the log
//! goes out as `Ready::append` / `truncate_from`. Both are durable before any
//! message of the same `Ready` leaves, so a crash can never make a node take
//! back a vote or an acknowledgement. Any message with a higher term makes a
//! node adopt it and become a follower (pre-vote traffic excepted).
//!
//! **Leader election (§5.2, §5.4.1; module `election`).** A follower that
//! hears from no leader for a randomized timeout first runs a pre-vote
//! (thesis §9.6): it becomes a candidate, incrementing its term, only if a
//! quorum would vote for it, so a partitioned node rejoining cannot depose
//! a healthy leader by inflating terms. Voters grant one vote per term, to
//! candidates whose log is at least as up-to-date as theirs, which gives
//! **Election Safety** (one leader per term) and, with the commit rule,
//! **Leader Completeness**. With check-quorum (thesis §6.2) a leader that
//! has not heard from a quorum within an election timeout steps down, and
//! followers that hear from a live leader ignore vote requests (the leader
//! lease), except in a leadership transfer (thesis §3.10, `TimeoutNow`).
//! A new leader appends a no-op of its term (§8).
//!
//! Two liveness rules of this core, beyond the thesis, for the two
//! survivors of a leader's crash (neither changes a term or a vote, so
//! neither touches safety): a pre-candidate grants a rival pre-candidate's
//! pre-vote only if the rival ranks higher (a more up-to-date log, then a
//! higher id), so two that time out together do not both go on to split
//! the real vote; and it asks the voters that have not granted its
//! pre-vote again every heartbeat interval, so one refused inside the
//! other survivor's lease wins as soon as that lease ends instead of after
//! a second randomized timeout.
//!
//! **Log replication (§5.3; modules `replication`, `follower`, `progress`).**
//! The leader keeps `nextIndex` / `matchIndex` per follower. `AppendEntries`
//! carries `prevLogIndex / prevLogTerm`; a follower accepts only after a
//! match, which by induction gives the **Log Matching** property. A leader
//! probes one message at a time until it finds the match point, then
//! pipelines batches (limited by `inflight_messages_max`,
//! `batch_entries_max`, `batch_bytes_max`). A follower rejecting a probe
//! returns a conflict hint so the leader skips a whole term per round trip.
//!
//! **Commitment (§5.3, §5.4.2).** The leader commits the highest index stored
//! by a quorum *if that entry is of its current term*; older entries commit
//! indirectly with it. Counting replicas of an older-term entry is unsafe:
//! Figure 8 of the paper shows such an entry overwritten after being on a
//! majority. Committed entries leave in `Ready::committed` exactly once per
//! incarnation, after (or together with) their durable append.
//!
//! **Beyond the basic algorithm.** Snapshots and compaction (§7, module
//! `snapshot`): chunked `InstallSnapshot` with offsets and a CRC32C, stale
//! snapshots refused, commit and applied indexes only moving forward.
//! Membership change by joint consensus (§6, module `membership`) with
//! learners that catch up before promotion and a leader that steps down
//! when removed. Linearizable reads (thesis §6.4, module `read`): ReadIndex
//! confirmed by a heartbeat quorum round, and an optional lease read
//! ([`ReadMode::Lease`]) whose clock assumption is documented there.
//! Leadership transfer (thesis §3.10): the leader brings the target up to
//! date and sends `TimeoutNow`.
//!
//! ## Why it is safe
//!
//! Raft's safety argument (§5.4.3) rests on three properties this code
//! keeps: at most one vote per node per term, durable before it is
//! announced (so at most one leader per term); a vote only for an
//! up-to-date log (so every leader holds every committed entry); and the
//! current-term commit rule (so "committed" means "in every future leader's
//! log"). Followers never truncate committed entries; configuration changes
//! go through a joint configuration whose quorums intersect both the old and
//! the new ones (§6). `RaftCore::check_invariants` asserts the local
//! consequences after every `step` and `tick`; the simulator (`consensus-sim`)
//! checks the global ones.
//!
//! ## Module map
//!
//! | module | paper | what |
//! |---|---|---|
//! | `node` | Figure 2 "Rules for Servers" | [`RaftCore`], roles, term rules, `Ready`, invariants |
//! | `election` | §5.2, §5.4.1, thesis §9.6, §6, §3.10 | timeouts, pre-vote, votes, `TimeoutNow` |
//! | `leader` | §5.3, §5.4.2, §8, thesis §6.2, §3.10 | no-op, proposals, commit rule, check-quorum, transfer |
//! | `replication` | §5.3 | `nextIndex`, probing, pipelining, conflict hints, heartbeats |
//! | `follower` | §5.3 | AppendEntries receiver |
//! | `progress` | §5.3 | per-peer progress states |
//! | `snapshot` | §7 | compaction, chunked InstallSnapshot |
//! | `membership` | §6, thesis §4.3 | joint consensus, learners, removal |
//! | `read` | thesis §6.4 | ReadIndex, lease reads |
//! | `log` | §5.3, §7 | the in-memory log and what is not yet persisted |
//! | `message` | Figure 2 | the wire messages and their one-line `Display` |
//!
//! ## Configuration
//!
//! Every [`CoreConfig`](consensus_api::CoreConfig) field is used:
//! election timeouts are drawn uniformly from
//! `[election_timeout_ticks_min, election_timeout_ticks_max)`, the leader
//! sends heartbeats every `heartbeat_interval_ticks` (which must be below
//! the minimum election timeout), proposals beyond `uncommitted_entries_max`
//! uncommitted entries are refused with `Overloaded`, and a leader that has
//! not heard from a quorum within two heartbeat intervals answers
//! `Unavailable`. The read mode is not part of `CoreConfig`: call
//! [`RaftCore::set_read_mode`] after every [`Core::restore`], with the same
//! mode on every node (lease reads rely on the followers' behaviour too).
//!
//! ## Testing
//!
//! * `tests/unit/`: one test per rule, citing the paper section (elections,
//!   pre-vote, check-quorum, Figure 8, conflict-hint backtracking counted in
//!   round trips, pipelining and batching limits, snapshots, joint
//!   consensus, leadership transfer, ReadIndex and lease reads), over a
//!   small deterministic network of cores and `MemStore`s.
//! * `tests/scenarios.rs`: the seed article's failure scenarios in the
//!   simulator (3-2 partition with writes to the old leader, paused leader,
//!   slow follower by log and by snapshot, split votes, leader crash during
//!   a membership change).
//! * `tests/golden.rs`: message-level traces under `testdata/`
//!   (`REWRITE=1 cargo test -p raft --test golden` regenerates them) and the
//!   shared protocol-neutral scripts of `consensus-testkit`.
//! * `tests/sim.rs`: randomized simulator runs (a bounded slice per fault
//!   mode, plus randomized membership changes and transfers; more with
//!   `RAFT_SIM_SEEDS=N`), and the regression seeds.
//! * The long run: `cargo run --release --bin consensus-sim -- run
//!   --protocol raft --nodes 5 --faults all --seeds 1..2000`.
#![deny(missing_docs)]

mod core;
mod election;
mod follower;
mod hard_state;
mod leader;
mod log;
mod membership;
mod message;
mod progress;
mod read;
mod replication;
mod snapshot;

pub use crate::core::RaftCore;
pub use consensus_api::Core;
pub use hard_state::HardState;
pub use message::{
    AppendEntries, AppendEntriesResponse, AppendOutcome, Heartbeat, HeartbeatResponse,
    InstallSnapshot, InstallSnapshotResponse, Message, RequestVote, RequestVoteResponse,
    SnapshotOutcome, TimeoutNow, BULK_APPEND_BYTES_MIN,
};
pub use read::ReadMode;
