//! Leader election: each candidate creates an ephemeral-sequential node
//! under the election's directory; the lowest is the leader; every other
//! candidate watches only its predecessor. When the leader's session ends
//! (it crashed, or closed), its node vanishes and exactly one candidate —
//! the next in line — wakes up, re-lists and becomes leader. The
//! candidate's sequence number is its **fencing token**: tokens of
//! successive leaders strictly increase, so a resource that remembers the
//! highest token it saw refuses a deposed leader that has not noticed yet.
//!
//! ```no_run
//! # async fn example(client: consensus_coord::CoordClient) -> Result<(), consensus_coord::ClientError> {
//! use consensus_coord::recipes::Election;
//! let leadership = Election::new(&client, "/election/scheduler").campaign().await?;
//! println!("leader with fencing token {}", leadership.token());
//! leadership.lost().await; // session expired or node deleted: stop leading
//! # Ok(()) }
//! ```

use std::sync::atomic::Ordering;
use std::sync::Arc;

use bytes::Bytes;

use crate::client::{ClientError, CoordClient};
use crate::recipes::queue::{self, BeforeWatchHook, LostReason, QueueStats};

/// Prefix of candidate nodes.
pub const CANDIDATE_PREFIX: &str = "c_";

/// One candidate in an election.
pub struct Election {
    client: CoordClient,
    dir: String,
    data: Bytes,
    hook: Option<BeforeWatchHook>,
    stats: Arc<QueueStats>,
}

impl Election {
    /// A candidate of the election whose directory is `dir`.
    pub fn new(client: &CoordClient, dir: &str) -> Election {
        Election {
            client: client.clone(),
            dir: dir.to_string(),
            data: Bytes::new(),
            hook: None,
            stats: Arc::new(QueueStats::default()),
        }
    }

    /// Data stored in the candidate's node (e.g. its address).
    pub fn data(mut self, data: impl Into<Bytes>) -> Election {
        self.data = data.into();
        self
    }

    /// Runs `hook` between listing and watching the predecessor (tests use
    /// it to delete the predecessor in that window).
    pub fn before_watch(mut self, hook: BeforeWatchHook) -> Election {
        self.hook = Some(hook);
        self
    }

    /// Watch notifications that woke this candidate so far.
    pub fn wakeups(&self) -> u64 {
        self.stats.wakeups.load(Ordering::Relaxed)
    }

    /// The counters, shareable while `campaign` runs.
    pub fn stats(&self) -> Arc<QueueStats> {
        self.stats.clone()
    }

    /// Joins the election and waits until this candidate leads.
    pub async fn campaign(&self) -> Result<Leadership, ClientError> {
        let (path, token) = queue::join_and_wait(
            &self.client,
            &self.dir,
            CANDIDATE_PREFIX,
            self.data.clone(),
            self.hook.as_ref(),
            &self.stats,
        )
        .await?;
        Ok(Leadership {
            client: self.client.clone(),
            path,
            token,
        })
    }

    /// The current leader's node name and data, if any (a possibly stale
    /// read from the connected server).
    pub async fn leader(&self) -> Result<Option<(String, Bytes)>, ClientError> {
        let (children, _) = self
            .client
            .children(&self.dir, crate::client::Read::default())
            .await?;
        for (_, name) in queue::ordered(children, CANDIDATE_PREFIX) {
            match self
                .client
                .get(
                    &crate::path::join(&self.dir, &name),
                    crate::client::Read::default(),
                )
                .await
            {
                Ok((data, _, _)) => return Ok(Some((name, data))),
                Err(ClientError::Coord(crate::types::CoordError::NoNode(_))) => continue,
                Err(error) => return Err(error),
            }
        }
        Ok(None)
    }
}

/// Held by the leader.
pub struct Leadership {
    client: CoordClient,
    path: String,
    token: u64,
}

impl Leadership {
    /// The fencing token (the candidate node's sequence number).
    pub fn token(&self) -> u64 {
        self.token
    }

    /// The candidate node.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// Resolves when this leadership ended (see [`LostReason`]).
    pub async fn lost(&self) -> LostReason {
        queue::lost(&self.client, &self.path).await
    }

    /// Steps down: deletes the candidate node (the successor wakes up).
    pub async fn resign(self) -> Result<(), ClientError> {
        match self.client.delete(&self.path, None).await {
            Ok(()) | Err(ClientError::Coord(crate::types::CoordError::NoNode(_))) => Ok(()),
            Err(error) => Err(error),
        }
    }
}
