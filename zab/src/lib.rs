//! # ZAB: ZooKeeper Atomic Broadcast as a deterministic sans-IO core
//!
//! [`ZabCore`] implements [`consensus_api::Core`] following the protocol of
//! Junqueira, Reed and Serafini, *"Zab: High-performance broadcast for
//! primary-backup systems"* (DSN 2011, cited below as **JRS**), as the
//! ZooKeeper implementation runs it (`FastLeaderElection`, `Leader`,
//! `LearnerHandler`, `Follower`). It is not Raft with other names: the
//! leader is chosen by an election that is only a heuristic, safety comes
//! from the epoch handshake of discovery; a new leader first makes its whole
//! history the history of a quorum (synchronization) and commits it as a
//! unit, and only then broadcasts.
//!
//! ## Identifiers and durable state
//!
//! * A **zxid** ([`Zxid`]) is `(epoch, counter)` in 64 bits, the epoch in the
//!   high half. Each proposal of an epoch gets the next counter, starting
//!   at one. The log index of the contract and the zxid map one-to-one along
//!   a history (see the `history` module, `src/history.rs`, for the rule);
//!   `Entry::epoch` is the ZAB epoch.
//! * Persistent, in the contract's hard state ([`HardState`], postcard):
//!   `acceptedEpoch` (last NEWEPOCH / LEADERINFO accepted) and
//!   `currentEpoch` (last NEWLEADER acked); and the **history**, the log of
//!   accepted proposals, written through `Ready::append` / `truncate_from`
//!   (TRUNC is exactly `truncate_from`). Every message that depends on them
//!   leaves in the same [`Ready`](consensus_api::Ready) as the write, that is
//!   after it is durable.
//!
//! ## The phases (JRS section IV-B)
//!
//! | phase | module | ZooKeeper |
//! |---|---|---|
//! | 0 Leader election | `election.rs` | `FastLeaderElection` |
//! | 1 Discovery | `discovery.rs` | FOLLOWERINFO, LEADERINFO, ACKEPOCH |
//! | 2 Synchronization | `sync.rs`, `snapshot.rs` | DIFF / TRUNC / SNAP, NEWLEADER, ACK |
//! | 3 Broadcast | `broadcast.rs` | PROPOSAL, ACK, COMMIT |
//! | failure detection | `heartbeat.rs` | PING, `syncLimit`, `initLimit` |
//! | `sync()` | `read.rs` | SYNC |
//! | reconfiguration | `reconfig.rs` | 3.5 dynamic reconfig |
//!
//! **Phase 0.** Looking servers exchange votes `(leader, its last zxid, its
//! currentEpoch, election round)` and adopt the best by `(currentEpoch,
//! zxid, id)`; a server settles when a quorum agrees with it and no better
//! vote arrives within a short wait (or at once, when every voter that is
//! not known to be down agrees). A server joining a working ensemble is
//! told the outcome by the servers that follow or lead.
//!
//! **Phase 1.** Followers send their `acceptedEpoch`; the prospective leader,
//! with a quorum, proposes `max + 1`; followers accept an epoch only once
//! (persisting `acceptedEpoch` before answering) and report their
//! `currentEpoch` and last zxid. The leader gives up if any member of its
//! quorum is more up to date than itself: its own history is then the most
//! recent of the quorum, which JRS Phase 1 takes as the initial history.
//!
//! **Phase 2.** The leader makes each follower's history equal to its own
//! (DIFF, TRUNC, SNAP), then NEWLEADER: the follower persists
//! `currentEpoch`. With a quorum of acks the leader is *established*
//! (`Role::Leader` in the status) and commits the initial history.
//!
//! **Phase 3.** Proposals get consecutive zxids of the epoch, are acked
//! cumulatively by followers that continue their history with them, and
//! commit in zxid order once a quorum acked. The transport is only assumed
//! to be FIFO by the paper; here every message is checked against the
//! follower's last zxid, so loss, duplication and reordering by the
//! simulator are dropped and repaired by resends.
//!
//! A follower that loses its leader, and a leader that loses its quorum, go
//! back to Phase 0; the leader's pending proposals end with
//! `Rejected::OutcomeUnknown`, new requests get `Rejected::Unavailable`;
//! followers answer `Rejected::NotLeader { hint }`.
//!
//! ## Invariants (JRS section III) and why they hold
//!
//! * **One leader per epoch.** An epoch is established only with a quorum of
//!   *fresh* ACKEPOCHs, and a server acknowledges an epoch as fresh only when
//!   it raises its durable `acceptedEpoch` to it.
//! * **Primary integrity / completeness.** Every proposal that may have been
//!   committed (acked by a quorum in its epoch) is in the history of every
//!   later established leader: it is held by a member of every later
//!   discovery quorum, and the leader is at least as up to date, by
//!   `(currentEpoch, lastZxid)`, as every member. A server with
//!   `currentEpoch = e` holds epoch `e`'s initial history (NEWLEADER is
//!   persisted after the synchronized history), and within an epoch zxids
//!   order histories.
//! * **Prefix (log matching).** The proposals of epoch `e` are created by
//!   its single leader in counter order and accepted only after the
//!   follower's history became the leader's: two histories that hold the
//!   same zxid agree up to it. A follower in broadcast holds a prefix of its
//!   leader's history, so cumulative ACK and COMMIT are exact.
//! * **Integrity, total order, agreement, local and global primary order.**
//!   Committed proposals are delivered in zxid order, contiguously, exactly
//!   once per incarnation; a leader commits its initial history (all earlier
//!   epochs) before any proposal of its own, and proposals of one epoch in
//!   counter order. The crate's simulator tests check these as extra
//!   invariants.
//!
//! `check_invariants` runs after every `step` and `tick`.
//!
//! ## Where this differs from ZooKeeper, and why
//!
//! * **No TCP underneath.** ZooKeeper relies on one FIFO TCP connection per
//!   follower. Here every leader message is validated against the follower's
//!   last zxid (DIFF carries the zxid it follows, PROPOSAL its own, TRUNC the
//!   follower's last zxid it answers, NEWLEADER the zxid the synchronized
//!   history must end at), so a lost, duplicated or reordered message is
//!   dropped and repaired (`Ack { resend }`, go-back-N on the heartbeat).
//! * **Cumulative ACK and COMMIT.** ZooKeeper acks and commits one zxid at a
//!   time in order; over a lossy network a cumulative "everything up to zxid"
//!   is the same information and survives loss. PINGs repeat the commit point.
//! * **DIFF carries its proposals** (batched) instead of being a marker
//!   followed by PROPOSAL/COMMIT packets.
//! * **`sync()` is linearizable**: the leader confirms with a quorum-answered
//!   ping round that it still leads before answering (ZooKeeper's `sync()`
//!   alone can be answered by a deposed leader).
//! * **Snapshots are exact** (the state machine at an applied index) rather
//!   than fuzzy, and SNAP moves in CRC32C-checked, acknowledged chunks.
//! * **A follower never installs a snapshot whose prefix it already holds**:
//!   it would drop proposals it acked after it (found by the simulator).
//! * **The election runs in the newest configuration heard of**, each
//!   configuration versioned by the zxid of its reconfiguration proposal, as
//!   ZooKeeper 3.5's FLE does with `processReconfig` (of a reconfiguration
//!   pending on one server and committed on another, same version, the
//!   committed one is the newer); settled servers agree by the leader they
//!   follow, and the leader itself must say it leads.
//!
//! ### Failover shortcuts (liveness only)
//!
//! ZooKeeper's failover waits for the slower of the survivors: each
//! follower for its own timeout, then the election for `finalizeWait`, then
//! a learner's reconnection. Here:
//!
//! * **A follower gives up a silent leader when someone is looking.** A
//!   FOLLOWING server that receives a LOOKING notification and has not
//!   heard from its leader for longer than a heartbeat interval plus one
//!   more as slack goes back to election at once (`heartbeat.rs`); with a
//!   leader heard within that window it keeps following and answers with
//!   its vote, as ZooKeeper does.
//! * **The finalize wait ends when every reachable voter agrees.** Once
//!   every voter of the election's configuration has voted for the proposal
//!   in this round, no better notification can come (each proposes a ballot
//!   at least as good as its own), so the server settles at once. A leader
//!   the server gave up for its silence is not waited for, until it is
//!   heard from again (`election.rs`).
//! * **A FOLLOWERINFO that arrives during the finalize wait is kept** for
//!   the round and taken up if the server goes on to lead, from servers
//!   whose latest notification proposed it (`discovery.rs`).
//! * **The epoch is chosen once everyone who elected the leader has
//!   connected** (at most one heartbeat interval after a quorum did), so it
//!   exceeds all their `acceptedEpoch`s; a follower offered an epoch below
//!   its `acceptedEpoch` stays connected without answering instead of going
//!   back to election, where it would only be sent to the same leader again
//!   (`discovery.rs`).
//!
//! Why none of this touches safety: the invariants above rest on the
//! epoch handshake alone. An epoch is established only with a quorum of
//! fresh ACKEPOCHs, each sent after the follower durably raised its
//! `acceptedEpoch` (one leader per epoch); the established leader's history
//! is the most recent of its discovery quorum, which intersects every
//! quorum that acknowledged a proposal, and a leader behind any member of
//! its quorum abandons (completeness); nothing commits before a quorum
//! acknowledged NEWLEADER. None of these depends on who is elected, on
//! when a follower stops following, on how long an election waits, or on
//! when a FOLLOWERINFO is handled:
//!
//! * a follower that leaves its leader early is, to everyone else, a
//!   follower that crashed or timed out at that moment, which the protocol
//!   tolerates at any time; its durable state is untouched;
//! * settling early changes only whom the election picks and when; the
//!   election is a heuristic, and a leader that is not the most up to date
//!   of its quorum is caught by discovery and abandons;
//! * a held FOLLOWERINFO is the message a slower network would deliver a
//!   little later; it goes through the same checks, and it counts toward
//!   the connection quorum, not toward the fresh ACKEPOCHs;
//! * waiting for more FOLLOWERINFOs makes the epoch the maximum over a
//!   larger set plus one, still above the `acceptedEpoch` of every member of
//!   the quorum; a LEADERINFO left unanswered is what a lost message looks
//!   like.
//!
//! ## Snapshots, reads, membership
//!
//! Snapshots are exact (at an applied index, with its zxid) and move in
//! CRC-checked chunks; `read_barrier` is ZooKeeper's `sync()` made
//! linearizable by a quorum-confirmed ping round; membership changes are one
//! proposal committed by quorums of the old and the new configuration (see
//! the modules).
#![deny(missing_docs)]

mod broadcast;
mod core;
mod discovery;
mod election;
mod heartbeat;
mod history;
mod message;
mod read;
mod reconfig;
mod role;
mod snapshot;
mod sync;
mod zxid;

pub use crate::core::{HardState, ZabCore};
pub use message::{
    Ack, AckEpoch, AckNewLeader, AckSnap, Commit, Diff, FollowerInfo, LeaderInfo, Message,
    NewLeader, Ping, PingResponse, Proposal, ServerState, Snap, Sync, SyncResponse, Trunc, Vote,
};
pub use snapshot::SnapshotMeta;
pub use zxid::Zxid;
