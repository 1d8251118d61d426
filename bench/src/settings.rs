//! The settings every protocol runs with, written in one place and printed
//! with the results, so the comparison is like for like.

use std::path::PathBuf;

use consensus::{RuntimeConfig, Tuning};

/// Where nodes keep their logs.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum StorageKind {
    /// The durable write-ahead log in a temporary directory, fdatasync on.
    Disk,
    /// In memory (protocol and transport only).
    Memory,
}

impl std::str::FromStr for StorageKind {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "disk" => Ok(StorageKind::Disk),
            "memory" => Ok(StorageKind::Memory),
            other => Err(format!("storage must be disk or memory, not {other:?}")),
        }
    }
}

impl std::fmt::Display for StorageKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            StorageKind::Disk => "disk",
            StorageKind::Memory => "memory",
        })
    }
}

/// Everything that is the same for every protocol in one comparison.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Nodes per cluster.
    pub nodes: usize,
    /// Storage.
    pub storage: StorageKind,
    /// Parent of the temporary data directories (default: the system temp dir).
    pub data_dir: Option<PathBuf>,
    /// Protocol timing and batching (150-250 ms election timeout, 50 ms
    /// heartbeat, 10 ms tick by default).
    pub tuning: Tuning,
    /// Runtime queues and timeouts.
    pub runtime: RuntimeConfig,
    /// Bytes per command.
    pub command_bytes: usize,
    /// Seed mixed into every node's RNG.
    pub seed: u64,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            nodes: 3,
            storage: StorageKind::Disk,
            data_dir: None,
            tuning: Tuning::default(),
            runtime: RuntimeConfig {
                // Benchmarks measure the protocols, not snapshot I/O.
                snapshot_interval_entries: 1_000_000,
                ..RuntimeConfig::default()
            },
            command_bytes: 100,
            seed: 42,
        }
    }
}

impl Settings {
    /// One line for reports.
    pub fn describe(&self) -> String {
        format!(
            "{} nodes, {} storage, {}-byte commands; {}; request queue {}, {} requests per batch",
            self.nodes,
            self.storage,
            self.command_bytes,
            self.tuning.describe(),
            self.runtime.request_queue_max,
            self.runtime.requests_per_batch_max
        )
    }
}
