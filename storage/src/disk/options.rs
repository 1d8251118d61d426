//! Settings of a [`DiskStore`](super::DiskStore).

use consensus_api::NodeId;

/// How a [`DiskStore`](super::DiskStore) is opened.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DiskOptions {
    /// A segment whose data has reached this size is closed (fdatasync'ed,
    /// trimmed to its data) and a new one is started before the next batch.
    /// A single batch is never split across segments, so a segment may
    /// exceed this by one batch. Smaller segments let compaction free space
    /// sooner; larger ones rotate less often. Default 64 MiB.
    pub segment_bytes_max: u64,
    /// Preallocate each segment to [`segment_bytes_max`](Self::segment_bytes_max)
    /// with `fallocate(2)` when it is created (and the active segment when
    /// the store is opened), so that the `fdatasync` of a group commit
    /// writes data only, not a new file size. Costs the disk space of one
    /// full segment up front. Ignored where the file system cannot
    /// preallocate. Default true.
    pub preallocate_segments: bool,
    /// The node this directory belongs to. Recorded when the directory is
    /// created; on a later open, a different id is
    /// [`StorageError::Mismatch`](consensus_api::StorageError::Mismatch).
    /// `None` records / checks nothing.
    pub node_id: Option<NodeId>,
    /// The cluster this directory belongs to, recorded and checked like
    /// `node_id`.
    pub cluster_id: Option<String>,
    /// Create the directory (and its identity file) when it does not hold
    /// a store yet. When false, opening an empty directory is
    /// [`StorageError::Mismatch`](consensus_api::StorageError::Mismatch).
    /// Default true.
    pub create_if_missing: bool,
}

impl Default for DiskOptions {
    fn default() -> Self {
        DiskOptions {
            segment_bytes_max: 64 * 1024 * 1024,
            preallocate_segments: true,
            node_id: None,
            cluster_id: None,
            create_if_missing: true,
        }
    }
}

impl DiskOptions {
    /// Options for a given node of a given cluster, other settings default.
    pub fn for_node(node_id: NodeId, cluster_id: impl Into<String>) -> Self {
        DiskOptions {
            node_id: Some(node_id),
            cluster_id: Some(cluster_id.into()),
            ..DiskOptions::default()
        }
    }

    /// Sets [`DiskOptions::segment_bytes_max`].
    pub fn with_segment_bytes_max(mut self, bytes: u64) -> Self {
        self.segment_bytes_max = bytes;
        self
    }

    /// Sets [`DiskOptions::preallocate_segments`].
    pub fn with_preallocate_segments(mut self, preallocate: bool) -> Self {
        self.preallocate_segments = preallocate;
        self
    }

    /// The size segments are preallocated to, if they are.
    pub(crate) fn preallocate_to(&self) -> Option<u64> {
        self.preallocate_segments.then_some(self.segment_bytes_max)
    }
}
