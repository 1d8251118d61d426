//! A double barrier (ZooKeeper's recipe): `participants` processes
//! [`enter`](Barrier::enter) and all proceed together once the last one
//! arrived; they [`leave`](Barrier::leave) and each returns once all have
//! left.
//!
//! Entering: each process creates an ephemeral-sequential `p_` node and
//! watches `ready` (one watch per process, fired once). The process that
//! sees `participants` members creates `ready`. Leaving: the lowest member
//! waits on the highest, everyone else deletes its node and waits on the
//! lowest, so each departure wakes at most one process; the last one out
//! deletes `ready` so the barrier can be used again.

use bytes::Bytes;

use crate::client::{ClientError, CoordClient, Read};
use crate::path;
use crate::recipes::queue::ordered;
use crate::types::{CoordError, CreateMode};

/// Prefix of member nodes.
pub const MEMBER_PREFIX: &str = "p_";
/// The node whose creation releases everyone.
pub const READY: &str = "ready";

/// One process's handle on a double barrier.
pub struct Barrier {
    client: CoordClient,
    dir: String,
    participants: usize,
    mine: Option<String>,
}

impl Barrier {
    /// The barrier at `dir` for `participants` processes.
    pub fn new(client: &CoordClient, dir: &str, participants: usize) -> Barrier {
        Barrier {
            client: client.clone(),
            dir: dir.to_string(),
            participants: participants.max(1),
            mine: None,
        }
    }

    /// Waits until `participants` processes have entered.
    pub async fn enter(&mut self) -> Result<(), ClientError> {
        self.client.ensure_path(&self.dir).await?;
        let ready = path::join(&self.dir, READY);
        let mine = self
            .client
            .create(
                &path::join(&self.dir, MEMBER_PREFIX),
                Bytes::new(),
                CreateMode::EphemeralSequential,
            )
            .await?;
        self.mine = Some(mine);
        loop {
            let (stat, watch) = self.client.exists(&ready, Read::watch()).await?;
            if stat.is_some() {
                return Ok(());
            }
            let (children, _) = self.client.children(&self.dir, Read::default()).await?;
            if ordered(children, MEMBER_PREFIX).len() >= self.participants {
                match self
                    .client
                    .create(&ready, Bytes::new(), CreateMode::Persistent)
                    .await
                {
                    Ok(_) | Err(ClientError::Coord(CoordError::NodeExists(_))) => return Ok(()),
                    Err(error) => return Err(error),
                }
            }
            watch.expect("a watch was asked for").await?;
        }
    }

    /// Leaves and waits until every participant has left.
    pub async fn leave(&mut self) -> Result<(), ClientError> {
        let Some(mine) = self.mine.take() else {
            return Ok(());
        };
        let my_name = path::name(&mine).to_string();
        loop {
            let (children, _) = self.client.children(&self.dir, Read::default()).await?;
            let members = ordered(children, MEMBER_PREFIX);
            let still_in = members.iter().any(|(_, n)| *n == my_name);
            if members.is_empty() || (members.len() == 1 && still_in) {
                if still_in {
                    self.delete(&mine).await?;
                }
                // The last one out resets the barrier.
                return self.delete(&path::join(&self.dir, READY)).await;
            }
            let lowest = members[0].1.clone();
            let target = if lowest == my_name {
                members.last().expect("non-empty").1.clone()
            } else {
                if still_in {
                    self.delete(&mine).await?;
                }
                lowest
            };
            let (stat, watch) = self
                .client
                .exists(&path::join(&self.dir, &target), Read::watch())
                .await?;
            if stat.is_some() {
                watch.expect("a watch was asked for").await?;
            }
        }
    }

    async fn delete(&self, node: &str) -> Result<(), ClientError> {
        match self.client.delete(node, None).await {
            Ok(()) | Err(ClientError::Coord(CoordError::NoNode(_))) => Ok(()),
            Err(error) => Err(error),
        }
    }
}
