//! The shared core of election and lock: an ephemeral-sequential node in a
//! directory, and waiting until it is the lowest. Each waiter watches only
//! its **predecessor** (the next lower sequence number), so when a holder
//! goes away exactly one waiter wakes up (no herd effect). After setting the
//! watch the recipe re-checks: if the predecessor vanished between `ls` and
//! the watch (the watch race), `exists` says so and the loop lists again
//! instead of waiting for an event that already happened.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;

use crate::client::{ClientError, CoordClient, Read};
use crate::path;
use crate::types::{CoordError, CreateMode};

/// A test hook run between listing the directory and setting the watch on
/// the predecessor (gets the predecessor's full path).
pub type BeforeWatchHook =
    Arc<dyn Fn(String) -> Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync>;

/// Counters of one queue member.
#[derive(Debug, Default)]
pub struct QueueStats {
    /// Watch notifications that woke this member up.
    pub wakeups: AtomicU64,
    /// Times the directory was listed.
    pub listings: AtomicU64,
}

/// The members of `dir` ordered by sequence number: (sequence, name).
pub(crate) fn ordered(children: Vec<String>, prefix: &str) -> Vec<(u64, String)> {
    let mut members: Vec<(u64, String)> = children
        .into_iter()
        .filter(|name| name.starts_with(prefix))
        .filter_map(|name| path::sequence_of(&name).map(|s| (s, name)))
        .collect();
    members.sort();
    members
}

/// Creates this member's node and waits until it is the lowest; returns
/// the node's path and sequence number (the fencing token).
pub(crate) async fn join_and_wait(
    client: &CoordClient,
    dir: &str,
    prefix: &str,
    data: Bytes,
    hook: Option<&BeforeWatchHook>,
    stats: &QueueStats,
) -> Result<(String, u64), ClientError> {
    client.ensure_path(dir).await?;
    let mine = client
        .create(
            &path::join(dir, prefix),
            data,
            CreateMode::EphemeralSequential,
        )
        .await?;
    let my_name = path::name(&mine).to_string();
    let my_sequence = path::sequence_of(&my_name).expect("sequential nodes end in digits");
    wait_until_first(client, dir, prefix, &mine, my_sequence, hook, stats).await?;
    Ok((mine, my_sequence))
}

pub(crate) async fn wait_until_first(
    client: &CoordClient,
    dir: &str,
    prefix: &str,
    mine: &str,
    my_sequence: u64,
    hook: Option<&BeforeWatchHook>,
    stats: &QueueStats,
) -> Result<(), ClientError> {
    let my_name = path::name(mine);
    loop {
        let (children, _) = client.children(dir, Read::default()).await?;
        stats.listings.fetch_add(1, Ordering::Relaxed);
        let members = ordered(children, prefix);
        if !members.iter().any(|(_, name)| name == my_name) {
            // Our node is gone: the session expired or someone deleted it.
            return Err(ClientError::Coord(CoordError::NoNode(mine.to_string())));
        }
        let predecessor = members
            .iter()
            .rev()
            .find(|(sequence, _)| *sequence < my_sequence);
        let Some((_, predecessor)) = predecessor else {
            return Ok(());
        };
        let predecessor = path::join(dir, predecessor);
        if let Some(hook) = hook {
            hook(predecessor.clone()).await;
        }
        let (stat, watch) = client.exists(&predecessor, Read::watch()).await?;
        if stat.is_none() {
            // The watch race: it went away between `ls` and the watch.
            continue;
        }
        let watch = watch.expect("a watch was asked for");
        watch.await?;
        stats.wakeups.fetch_add(1, Ordering::Relaxed);
    }
}

/// Resolves when holding `mine` can no longer be assumed: the node was
/// deleted, the session expired or was closed, or the client has been
/// disconnected for a whole session timeout (it cannot know whether the
/// session still lives).
pub(crate) async fn lost(client: &CoordClient, mine: &str) -> LostReason {
    loop {
        let (stat, watch) = match client.exists(mine, Read::watch()).await {
            Ok(answer) => answer,
            Err(error) if error.is_session_expired() => return LostReason::SessionExpired,
            Err(ClientError::Closed) => return LostReason::SessionExpired,
            Err(_) => {
                if disconnected_too_long(client).await {
                    return LostReason::Disconnected;
                }
                continue;
            }
        };
        if stat.is_none() {
            return LostReason::Deleted;
        }
        let watch = watch.expect("a watch was asked for");
        tokio::select! {
            event = watch => match event {
                Ok(_) => continue,
                Err(_) => return LostReason::SessionExpired,
            },
            _ = client.session_lost() => return LostReason::SessionExpired,
            true = disconnected_too_long(client) => return LostReason::Disconnected,
        }
    }
}

/// Resolves `true` once the client has been disconnected for a session
/// timeout; never resolves while it stays connected.
async fn disconnected_too_long(client: &CoordClient) -> bool {
    use crate::client::SessionState;
    let mut state = client.state_changes();
    loop {
        let _ = state
            .wait_for(|s| !matches!(s, SessionState::Connected(_)))
            .await;
        let timeout = client.session_timeout();
        let reconnected = tokio::time::timeout(
            timeout,
            state.wait_for(|s| matches!(s, SessionState::Connected(_))),
        )
        .await;
        match reconnected {
            Ok(Ok(_)) => continue,
            Ok(Err(_)) | Err(_) => return true,
        }
    }
}

/// Why a holder lost its position.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum LostReason {
    /// The node was deleted (by someone else).
    Deleted,
    /// The session expired or was closed.
    SessionExpired,
    /// Disconnected for a whole session timeout: the session may have
    /// expired; stop acting as holder.
    Disconnected,
}
