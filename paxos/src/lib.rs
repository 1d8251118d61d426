//! # paxos: classic Paxos, run independently for every log slot
//!
//! This crate is the *leaderless* member of the toolkit: a deterministic,
//! sans-IO [`consensus_api::Core`] in which every node is at once proposer,
//! acceptor and learner, and every log slot is its own single-decree Paxos
//! instance with its own ballots, its own Phase 1 and its own Phase 2 —
//! exactly the algorithm of Lamport's "Paxos Made Simple" (2001), §2,
//! applied to a sequence of slots as in §3, *without* the §3 optimisation of
//! a distinguished proposer that skips Phase 1 (that is the `multipaxos`
//! crate). The comparison between the two is the point: this crate pays
//! Phase 1 for every slot, and shows what that costs.
//!
//! ## Ballots
//!
//! A ballot is `(counter, node)` ([`Ballot`]), compared counter first, so
//! ballots are unique and totally ordered without clocks (§2.2, "different
//! proposers choose their numbers from disjoint sets"). The counter is in
//! the hard state and only grows; a restarted node skips one counter, so it
//! never reuses a ballot. In `Entry::epoch` and `Status::epoch` a ballot is
//! the `u64` `counter << 32 | node` (so `u64` order is ballot order; node
//! ids must fit in 32 bits).
//!
//! ## One slot, two phases (§2.2)
//!
//! * **Phase 1a** `Prepare(b)`: a proposer picks a ballot `b` for the slot.
//! * **Phase 1b** `Promise(b, accepted)`: an acceptor whose promise floor
//!   is not above `b` promises never to accept below `b` in that slot and
//!   reports the highest-ballot proposal it has accepted there. It persists
//!   the promise first (the promise and the reply are in the same `Ready`,
//!   and the driver makes a `Ready`'s writes durable before it sends its
//!   messages).
//! * **Phase 2a** `Accept(b, v)`: with promises from a quorum, the proposer
//!   proposes `v` = the value of the highest-ballot proposal among them, or
//!   its own value if none was reported (P2c).
//! * **Phase 2b** `Accepted(b)`: an acceptor whose floor is not above `b`
//!   accepts, persisting `Entry { index: slot, epoch: b, payload: v }` (a
//!   store *replaces* an entry of the same index), and notifies the proposer
//!   and every learner.
//! * `Nack`: an acceptor that refuses says which ballot binds it, so a
//!   proposer stops early (end of §2.2).
//!
//! ## Learning (§2.3) and the log (§3)
//!
//! A learner counts `Accepted(slot, b)` notices; when a quorum of the slot's
//! configuration accepted the same ballot, the value is chosen. A learner
//! that missed the value asks for it (`Ask`); one that fell behind learns
//! from its peers' periodic `Learn` beacons that it did, and pulls the
//! chosen values (`CatchUp` → `Chosen`) or a snapshot. The log is the
//! sequence of chosen slots, applied in order; a node that sees a slot used
//! above a stuck frontier runs Paxos on the undecided slots below it after
//! a randomized timeout, which either recovers a value that may have been
//! chosen or chooses a no-op (§3, "fill the gaps with no-op commands").
//!
//! ## The proposer's choices (performance)
//!
//! One command per slot (classic), but many slots in flight: each proposal
//! starts an instance in a *fresh* slot (above every slot the node has seen
//! used, which makes collisions between proposers rare: every `Prepare`
//! tells every acceptor which slots are taken), and all instances started
//! between two `ready()` calls share one `Prepare` and one `Accept` message
//! per peer. Up to `ALPHA` slots above the chosen frontier are in use. A
//! command that loses its slot is re-proposed in a later slot (it never
//! existed anywhere else, so there is no duplicate; client sessions dedupe
//! retries anyway). To know whether it lost, a proposer cannot compare
//! bytes (two clients may send identical commands): every proposal carries
//! its *origin*, the ballot under which its proposer first proposed it in
//! that slot, kept when another proposer adopts it. A proposer claims a
//! slot only for a chosen value of its own origin; when the origin is
//! unknown (acceptors keep origins in memory only, so a restart forgets
//! them) and the bytes are equal, the ticket ends `OutcomeUnknown`. Dueling proposers on one slot back off for randomized,
//! exponentially growing delays (§2.4: progress needs luck or a leader; the
//! safety argument never uses timing).
//!
//! ## Linearizability
//!
//! Fresh slots are not enough to order a new command after everything
//! already chosen, because slots are decided out of order. So each
//! `Promise` carries the acceptor's highest accepted slot, and a command or
//! read barrier keeps slot `s` only when every promise of its Phase 1
//! reports a highest slot below `s`; otherwise the slot gets a no-op (or the
//! value Phase 1 found) and the command moves higher. Any value chosen
//! before the Phase 1 began was accepted by a quorum, which meets the
//! promise quorum, so it sits below `s`. `read_barrier` uses that rule with
//! a no-op: its ticket finishes `Ok(s)` once slot `s` is chosen and
//! committed, and a read served after applying `s` sees every write
//! acknowledged before the barrier.
//!
//! ## Membership (§3, last paragraphs)
//!
//! A configuration change is a chosen value; it governs the slots
//! `ALPHA` (= 1024) slots after its own. So a node knows a slot's quorums
//! once it has learned the prefix up to `ALPHA` slots below it, and it never
//! proposes, nor counts votes, beyond `frontier + ALPHA`: that is also the
//! pipelining bound. The node that proposed a change fills the window with
//! no-ops if traffic does not, and its ticket finishes when the change is in
//! force. No joint configurations are needed. A node that joins must be
//! started with the cluster's original `initial_membership` (the
//! configuration of slot 1) or from a snapshot.
//!
//! ## Why it is safe
//!
//! For each slot independently (slot `t` uses the single configuration
//! `C(t)`, which every node derives from the same chosen prefix):
//!
//! 1. An acceptor never accepts below its promise floor, never lowers it,
//!    and persists both before answering (P1a).
//! 2. A ballot belongs to one node, which proposes at most one value per
//!    ballot and slot (it never reuses a ballot, even across restarts).
//! 3. If `v` is chosen under `b`, every proposal under a higher ballot is
//!    `v` (P2c, by induction: the promise quorum meets the quorum that
//!    accepted `v`, whose members report a proposal of ballot `>= b`, and
//!    every such proposal is `v`).
//! 4. A learner writes a chosen value over its own accepted value only when
//!    the chosen ballot is higher; by 3 an accepted value under a higher
//!    ballot is already the chosen one. So stored entries never contradict
//!    3, and an acceptor reporting a learned value reports a proposal that
//!    exists.
//! 5. Promises are dropped from the hard state only when an accepted
//!    ballot at least as high covers them, or when the slot is below the
//!    persisted chosen frontier (no longer an open instance: requests are
//!    answered with the chosen value).
//!
//! Hence at most one value is chosen per slot, the log is the same on every
//! node, and committed entries never change.
//!
//! ## Configuration fields used
//!
//! * `election_timeout_ticks_min/max`: gap-filling timer, failure
//!   detection (a node that has not heard from a quorum for
//!   `election_timeout_ticks_max` ticks fails its pending requests with
//!   `Unavailable`, and rejects new ones at once; a request older than twice
//!   that with no quorum answering this node's requests fails too; a value
//!   already sent in an `Accept` fails with `OutcomeUnknown` instead,
//!   since it may still be chosen).
//!   Retransmission interval: half of `election_timeout_ticks_min`.
//! * `heartbeat_interval_ticks`: `Learn` beacons; backoff base.
//! * `batch_entries_max`, `batch_bytes_max`: per-message limits.
//! * `uncommitted_entries_max`: bound on this node's queued commands plus
//!   the slots it drives or waits on; beyond it `propose` answers
//!   `Overloaded`.
//! * `snapshot_chunk_bytes`: snapshot transfer.
//! * `pre_vote`, `check_quorum`, `inflight_messages_max`: not used (no
//!   leader; the in-flight bound is the `ALPHA` window).
//!
//! ## Modules
//!
//! * `proposer.rs`: Phase 1a / 2a, value selection, relocation, backoff,
//!   gap filling (§2.2, §2.4, §3).
//! * `acceptor.rs`: Phase 1b / 2b (§2.2).
//! * `learner.rs`: counting votes, catch-up, the chosen frontier (§2.3, §3).
//! * `membership.rs`: the `ALPHA` window (§3).
//! * `snapshot.rs`: compaction and snapshot transfer.
//! * `message.rs`: the wire messages; `output.rs`: batching per peer.
#![deny(missing_docs)]

mod acceptor;
mod ballot;
mod core;
mod learner;
mod membership;
mod message;
mod output;
mod proposer;
mod snapshot;

pub use crate::ballot::Ballot;
pub use crate::core::PaxosCore;
pub use crate::membership::ALPHA;
pub use crate::message::{
    Accept, Accepted, AcceptedValue, Ask, CatchUp, Chosen, ChosenValue, Learn, Message, Nack,
    NackSlot, Prepare, Promise, PromiseSlot, Proposal, SlotBallot, SnapshotChunk, SnapshotCursor,
};
