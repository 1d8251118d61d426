//! Cores for testing the simulator and the testkit themselves. **Not
//! protocols to use**: they exist so the harness can be shown to find bugs
//! (the unsafe cores) and to pass correct code (the reference core).
//!
//! * [`UnsafeLowestIdCore`]: "the lowest reachable node id is leader and
//!   commits alone" — the misconception the seed article warns about. Under
//!   a partition both sides commit different entries at the same index; the
//!   simulator must report it.
//! * [`StaleReadRaft`]: a correct Raft log whose read barrier answers at once
//!   from the leader's commit index without confirming leadership. Every
//!   applied entry agrees; only the linearizability check can catch the stale
//!   reads of a deposed leader.
//! * [`TinyRaft`]: a small, correct Raft (fixed membership, no pre-vote) with
//!   elections, log repair, the current-term commit rule, snapshots sent to
//!   lagging followers and read barriers through the log. The reference the
//!   harness is tested against (no false alarms) and the core the shared
//!   golden scripts are verified with.
//!
//! * [`LeaderLocalReads`]: wraps any real core; once it leads an epoch, its
//!   reads are answered from local state without confirming leadership
//!   (check-quorum step-down taken as a lease). Caught only by the clock
//!   faults ([`FaultMode::Clock`](crate::FaultMode)).
//!
//! And rule tests every core runs against itself:
//!
//! * [`leader_crash_before_own_sync`]: the leader's write in parallel with
//!   replication loses nothing a client was told about.

mod leader_local_reads;
mod parallel_write;
mod tiny_raft;
mod unsafe_lowest_id;

pub use leader_local_reads::LeaderLocalReads;
pub use parallel_write::leader_crash_before_own_sync;
pub use tiny_raft::{RaftMessage, StaleReadRaft, TinyRaft, TinyRaftCore};
pub use unsafe_lowest_id::{UnsafeLowestIdCore, UnsafeMessage};
