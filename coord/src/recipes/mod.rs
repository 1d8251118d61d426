//! Recipes built on the client, as ZooKeeper's documentation describes
//! them: leader election and a lock (ephemeral-sequential nodes, each
//! waiter watching only its predecessor, fencing tokens), a double barrier,
//! and a configuration watch. Every recipe re-reads after a watch fires and
//! re-checks after setting a watch.

mod barrier;
mod config_watch;
mod election;
mod lock;
mod queue;

pub use barrier::Barrier;
pub use config_watch::ConfigWatch;
pub use election::{Election, Leadership, CANDIDATE_PREFIX};
pub use lock::{Lock, LockGuard, LOCK_PREFIX};
pub use queue::{BeforeWatchHook, LostReason, QueueStats};
