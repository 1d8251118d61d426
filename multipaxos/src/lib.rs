//! # Multi-Paxos with a distinguished proposer
//!
//! A deterministic, sans-IO [`consensus_api::Core`]: [`MultiPaxosCore`].
//! Every node is an acceptor and a learner; one of them, the leader, is the
//! distinguished proposer of "Paxos Made Simple" (Lamport, 2001) §3. The
//! module layout follows the roles of "Paxos Made Moderately Complex" (van
//! Renesse and Altinbuken, 2015; "PMMC" below): acceptor, leader with its
//! scout (Phase 1) and commanders (Phase 2), replicas that learn.
//!
//! ## Ballots
//!
//! A ballot is `(counter, node)`, ordered lexicographically, so two nodes
//! never share one and no clock is needed ([`Ballot`]). It is packed into a
//! `u64` as `counter << 32 | node` — integer order equals ballot order —
//! and that is the `epoch` of every [`Entry`](consensus_api::Entry) (the
//! ballot the value was accepted under) and of [`Status`](consensus_api::Status)
//! (the promised ballot). Node ids must therefore fit in 32 bits.
//!
//! ## The phases
//!
//! **Failure detection** (`election`). The leader sends a
//! Heartbeat every `heartbeat_interval_ticks`. A follower that hears
//! nothing from it for a randomized timeout in
//! `[election_timeout_ticks_min, election_timeout_ticks_max)` campaigns.
//! With `pre_vote` it first sends Probes and goes on only if a quorum would
//! promise (none of them heard a live leader within the minimum timeout):
//! a partitioned or removed node never raises its ballot, so it can never
//! depose a working leader when it comes back. A follower draws a new
//! timeout for every new ballot it promises (as Raft does for every term):
//! one that kept its first draw would keep the long draw that lost it the
//! first election, and a crashed leader's survivors would be the slowest
//! to notice.
//!
//! **Phase 1, once for all slots** (PMS §3: "the leader can execute phase 1
//! for infinitely many instances"; PMMC §3, the scout). The candidate picks
//! a ballot above every ballot it has seen, promises it to itself (durably)
//! and sends `Prepare(b, from)`, `from` being its first slot not known
//! chosen. An acceptor with no higher promise promises `b` — durably,
//! before answering — and returns every value it accepted at a slot `>=
//! from` above its own chosen frontier, with the ballots they were accepted
//! under, plus that frontier. With promises from a quorum the candidate (a)
//! first learns any slot a promiser knows chosen and it does not (catch-up:
//! promises stay small because they omit the promiser's chosen prefix), then
//! (b) for every slot from its frontier to the highest slot any promiser
//! accepted, adopts the value accepted under the highest ballot (PMS §2.2,
//! P2c) or a **no-op** where nobody accepted anything (PMS §3, gap
//! filling), and re-proposes all of them under `b` before any new command.
//! It does so in batches of `batch_entries_max` slots, each decided from
//! the same promises when the previous one left room in the uncommitted
//! window (`uncommitted_entries_max`), at most one batch per input: a
//! sparse log may hold an accepted slot arbitrarily far above the
//! frontier, and filling that gap costs time proportional to its width,
//! never memory.
//!
//! **Phase 2 only, afterwards** (`leader`; PMMC §3, the
//! commanders). New commands take the next slots at once; Accepts carry
//! runs of consecutive slots (batched by `batch_entries_max` /
//! `batch_bytes_max`), many in flight per peer (`inflight_messages_max`),
//! retransmitted go-back-N when unanswered. A slot is chosen when a quorum
//! of its configuration accepted it under `b`; the leader's chosen frontier
//! (`commit`, contiguous) rides on every Accept and Heartbeat. A follower
//! marks slot `i` chosen when the frontier of ballot `b` covers `i` and it
//! holds the value it accepted under that same `b` (the leader of `b`
//! proposes one value per slot); for any other slot below the frontier it
//! asks for the chosen value (`catchup`), which any node
//! that knows it may supply — by snapshot chunks once compacted
//! (`snapshot`).
//!
//! **Stepping down.** Any message carrying a ballot above the promise
//! raises the promise; a leader or candidate whose Accept / Prepare /
//! Heartbeat is refused (`Nack`) or that sees a higher ballot steps down.
//! With `check_quorum`, a leader that has not heard from a quorum within
//! two heartbeat intervals answers `Rejected::Unavailable` (fail fast on a
//! minority) and one that has not within `election_timeout_ticks_min`
//! steps down. Requests in flight then finish with `OutcomeUnknown` (a
//! slot was assigned: it may still be chosen) or `NotLeader` (no slot yet).
//!
//! **Reads** (`read_barrier`). The read index is the leader's frontier (or
//! the last slot it recovered in Phase 1, if higher: a write acknowledged
//! by an earlier leader may sit there). The leader then runs a heartbeat
//! round; a quorum answering a round started after the call proves that no
//! acceptor of that quorum had promised a higher ballot, so no other leader
//! finished Phase 1 — let alone acknowledged a write — before the read
//! started. The ticket finishes once the index is applied. **No lease** is
//! used: a lease (skipping the round while followers promise not to
//! campaign) would depend on bounded clock drift, which a sans-IO core
//! counting ticks cannot check; it is deliberately left out.
//!
//! ## Membership: an alpha window of one slot
//!
//! A configuration is a log entry (`Payload::Membership`). We use Lamport's
//! **alpha window** (PMS §3, "the set of servers [...] for instance i+α
//! [...] specified by the state after execution of the i-th command"; PMMC
//! §3, `WINDOW`) with **α = 1**: a configuration chosen at slot `s` decides
//! every slot `> s`, and slots `<= s` are decided by the configuration
//! before it. Each slot thus has exactly one configuration, and a change may
//! replace any set of voters by any other in one step — Paxos needs no
//! joint consensus, because no slot is ever decided by a mix of the two
//! (the `Membership` joint helpers are not needed; a joint target is
//! refused). With α = 1 the leader must know slot `s` before it proposes
//! slot `s + 1`, so it stops proposing after a configuration entry until
//! that entry is chosen (requests queue meanwhile), then gathers promises
//! for its ballot from a quorum of the new configuration (sending Prepares
//! to its new members) before proposing there. In the steady state there
//! is no configuration in flight and the pipeline is unlimited, which a
//! fixed larger α would cap. Phase 1 applies the same rule when it
//! recovers values: the run of re-proposed slots ends at the first
//! configuration entry; the rest waits until that entry is chosen and the
//! new configuration's quorum has promised.
//!
//! Why not a stop-sign (Stoppable Paxos, OmniPaxos)? A stop-sign ends one
//! Paxos instance and starts another: every later slot lives in a new
//! instance with its own ballots, and a leader that re-proposes a
//! stop-sign must check that no value after it was chosen in the old
//! instance. α = 1 keeps one ballot space and one log, and costs only a
//! drained pipeline per (rare) configuration change.
//!
//! A leader removed by a configuration steps down once it is chosen and
//! tells the new voters how far the chosen prefix goes (an empty `Chosen`):
//! a new voter that has not learned the configuration yet does not know it
//! may campaign, so it must catch up first. Any node that may not campaign
//! (a learner, a removed node) does the same when its election timer
//! expires, so a configuration whose voters all lag still gets a leader.
//! Learners receive Accepts and Heartbeats and learn like followers, but
//! are never counted in a quorum and never campaign. A candidate that
//! learns, while catching up, that it was removed gives up.
//!
//! ## Storage
//!
//! The log handed to the store may be **sparse above the chosen frontier**
//! (an acceptor accepts runs of slots independently; `Ready::append` may
//! skip indexes) and is **never truncated** (`truncate_from` is always
//! `None`): a stale value from a deposed ballot stays until a higher ballot
//! overwrites its slot, and is never mistaken for chosen (see "Why it is
//! safe"). Below the frontier the log is dense. The hard state
//! ([`HardState`]) holds the promise and the frontier, postcard-encoded.
//!
//! ## Testing
//!
//! `cargo test -p multipaxos` runs: the rule tests (`tests/rules.rs`, each
//! citing the paper section it checks, on a small in-test harness whose
//! message queue the test controls); the seed article's failure game and
//! recovery scenarios on the simulator (`tests/scenarios.rs`); golden
//! message traces (`testdata/*.txt`, `REWRITE=1` regenerates them) and the
//! shared protocol-neutral scripts of `consensus-testkit`
//! (`tests/golden.rs`); a bounded randomized slice plus random membership
//! changes (`tests/sim.rs`, `MULTIPAXOS_SIM_SEEDS=N` for more). The full
//! sweep: `cargo run --release --bin consensus-sim -- run --protocol
//! multipaxos --nodes 5 --faults all --seeds 1..2000`.
//!
//! ## Invariants (checked after every input: [`MultiPaxosCore::check_invariants`])
//!
//! * every accepted value was accepted under a ballot `<=` the promise;
//! * the chosen prefix `1..=commit` has no hole and is never rewritten;
//!   `snapshot_index <= applied <= commit`;
//! * a leader's promise is its ballot; every slot it proposed and not yet
//!   saw chosen holds its own value under that ballot; nothing is proposed
//!   after a configuration entry not yet chosen;
//! * a candidate in Phase 1 promised its own ballot.
//!
//! ## Why it is safe
//!
//! Per slot this is single-decree Paxos: a value is chosen when a quorum of
//! the slot's configuration accepted it under one ballot (P2: acceptors
//! only accept at or above their promise and the promise only grows, so
//! from a ballot `b` on, any proposer of a higher ballot sees — in the
//! promise of at least one member of the choosing quorum — a value accepted
//! at or above `b`, and the highest such value is the chosen one, by
//! induction on ballots: PMS §2.2, P2c). The Multi-Paxos parts keep each
//! slot's instance intact: (1) one Prepare covers all slots `>= from`, and
//! every slot below `from` is already chosen at the candidate; (2) a
//! promise omits only slots the promiser knows chosen, and the candidate
//! learns those before deciding anything (so the highest-ballot rule is
//! never applied to an incomplete report); (3) a slot's configuration is
//! fixed by chosen slots before anything is proposed in it (α = 1); (4)
//! nothing is ever truncated — a follower keeps stale values from deposed
//! ballots, but marks a slot chosen only through its own ballot's frontier
//! or through an explicit chosen value. Durability: the promise and the
//! accepted values are in the same `Ready` as the Promise / Accepted that
//! reveal them, and the driver persists a `Ready` before sending it; the
//! chosen frontier in the hard state is written with or after the entries
//! it covers. Liveness needs a stable leader (randomized timeouts,
//! pre-vote); safety never depends on timing.
//!
//! ## Modules
//!
//! | module | what |
//! |---|---|
//! | `ballot` | ballots and their `u64` encoding |
//! | `message` | the wire messages, one struct each |
//! | `acceptor` | Prepare/Accept/Heartbeat handling, learning the frontier (PMS §2.2, PMMC acceptor) |
//! | `election` | failure detection, pre-vote, Phase 1 and its verdict (PMS §3, PMMC scout) |
//! | `leader` | Phase 2 pipeline, commit, heartbeats, reads, reconfiguration (PMMC leader, commander) |
//! | `catchup` | pulling chosen values (PMMC replica learning decisions) |
//! | `snapshot` | compaction and chunked snapshot transfer |
//! | `log` | accepted values, chosen frontier, configuration history |
//! | `hard_state` | the durable promise and frontier |
#![deny(missing_docs)]

mod acceptor;
mod ballot;
mod catchup;
mod core;
mod election;
mod hard_state;
mod leader;
mod log;
mod message;
mod snapshot;

pub use crate::ballot::Ballot;
pub use crate::core::MultiPaxosCore;
pub use crate::hard_state::HardState;
pub use crate::message::{
    Accept, Accepted, CatchUp, Chosen, Heartbeat, HeartbeatResponse, Message, Nack, Prepare, Probe,
    ProbeResponse, Promise, SnapshotChunk, SnapshotChunkResponse,
};
