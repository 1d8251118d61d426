//! Runtime settings: real time and queue limits. Protocol settings (in ticks)
//! live in [`consensus_api::CoreConfig`].

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// How the runtime drives a core.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuntimeConfig {
    /// Real time of one logical tick. With the default 10 ms and
    /// `CoreConfig::new`'s 15..30 ticks, elections time out after 150-300 ms
    /// (`consensus::Tuning`'s default, what deployments run, is 150-250 ms).
    pub tick: Duration,
    /// Most client requests waiting to be handed to the core; beyond it,
    /// requests are refused with `Overloaded` instead of queueing without
    /// limit.
    pub request_queue_max: usize,
    /// Most client requests handed to the core between two `Ready` batches
    /// (everything handed over in one go shares one round trip and one fsync).
    pub requests_per_batch_max: usize,
    /// Take a state-machine snapshot and compact the log once this many
    /// entries were applied since the last snapshot (0 disables).
    pub snapshot_interval_entries: u64,
    /// How long `append`, `read` and `change_membership` wait for an outcome
    /// before answering `Timeout` (outcome unknown).
    pub request_timeout: Duration,
    /// How long `shutdown` waits for the transport to flush.
    pub shutdown_timeout: Duration,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        RuntimeConfig {
            tick: Duration::from_millis(10),
            request_queue_max: 100_000,
            requests_per_batch_max: 4096,
            snapshot_interval_entries: 100_000,
            request_timeout: Duration::from_secs(5),
            shutdown_timeout: Duration::from_secs(2),
        }
    }
}
