//! A distributed lock with a fencing token: the election pattern under
//! `/locks/NAME` (ephemeral-sequential `lock_` nodes, each waiter watching
//! its predecessor). The holder gets the node's sequence number as a
//! fencing token: pass it to every resource the lock protects, and have the
//! resource refuse tokens lower than the highest it has seen (a holder
//! paused past its session timeout then cannot do damage). Inside the
//! coordination service itself, [`LockGuard::guarded`] does this for you: it
//! wraps writes in a multi that first checks the lock node still exists.

use std::sync::Arc;

use bytes::Bytes;

use crate::client::{ClientError, CoordClient};
use crate::recipes::queue::{self, BeforeWatchHook, LostReason, QueueStats};
use crate::types::{CoordError, Op, OpResult};

/// Prefix of lock nodes.
pub const LOCK_PREFIX: &str = "lock_";

/// A lock on a directory.
pub struct Lock {
    client: CoordClient,
    dir: String,
    hook: Option<BeforeWatchHook>,
    stats: Arc<QueueStats>,
}

impl Lock {
    /// The lock whose directory is `dir` (e.g. `/locks/reports`).
    pub fn new(client: &CoordClient, dir: &str) -> Lock {
        Lock {
            client: client.clone(),
            dir: dir.to_string(),
            hook: None,
            stats: Arc::new(QueueStats::default()),
        }
    }

    /// Test hook between listing and watching (see
    /// [`Election::before_watch`](crate::recipes::Election::before_watch)).
    pub fn before_watch(mut self, hook: BeforeWatchHook) -> Lock {
        self.hook = Some(hook);
        self
    }

    /// The counters.
    pub fn stats(&self) -> Arc<QueueStats> {
        self.stats.clone()
    }

    /// Waits for the lock.
    pub async fn acquire(&self) -> Result<LockGuard, ClientError> {
        let (path, token) = queue::join_and_wait(
            &self.client,
            &self.dir,
            LOCK_PREFIX,
            Bytes::new(),
            self.hook.as_ref(),
            &self.stats,
        )
        .await?;
        Ok(LockGuard {
            client: self.client.clone(),
            path,
            token,
        })
    }
}

/// Held while the lock is held. Dropping it does **not** release the lock
/// (a drop cannot wait for the service): call [`LockGuard::release`]; a
/// crashed holder's lock is released when its session expires.
pub struct LockGuard {
    client: CoordClient,
    path: String,
    token: u64,
}

impl LockGuard {
    /// The fencing token.
    pub fn token(&self) -> u64 {
        self.token
    }

    /// The lock node.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// Runs `ops` only if this guard still holds the lock (a multi that
    /// first checks the lock node exists). A deposed holder gets
    /// `NoNode` for operation 0 and nothing is applied.
    pub async fn guarded(&self, mut ops: Vec<Op>) -> Result<Vec<OpResult>, ClientError> {
        ops.insert(
            0,
            Op::Check {
                path: self.path.clone(),
                version: None,
            },
        );
        let mut results = self.client.multi(ops).await?;
        results.remove(0);
        Ok(results)
    }

    /// Resolves when the lock was lost (see [`LostReason`]).
    pub async fn lost(&self) -> LostReason {
        queue::lost(&self.client, &self.path).await
    }

    /// Releases the lock.
    pub async fn release(self) -> Result<(), ClientError> {
        match self.client.delete(&self.path, None).await {
            Ok(()) | Err(ClientError::Coord(CoordError::NoNode(_))) => Ok(()),
            Err(error) => Err(error),
        }
    }
}
