//! Membership changes of a running cluster, from the command line
//! (`member list / add / promote / remove`), shared by every service.
//!
//! # The pieces
//!
//! * **The address book** ([`Directory`]): where each member listens (peer
//!   and client address). The cluster file names the seeds; every member
//!   added later is written into the replicated log as a
//!   [`DirectoryCommand`], so every node, present and future (a node
//!   replays the log or restores a snapshot), learns it. The
//!   [`WithDirectory`] state machine wraps the service's own state machine,
//!   applies those commands, keeps the book in its snapshots and publishes
//!   it on a watch channel; the node's [`MemberService`] follows that
//!   channel and tells the transport ([`ConsensusNode::add_peer`],
//!   [`ConsensusNode::remove_peer`]).
//! * **The change itself** ([`MemberService`], on the leader): `add` writes
//!   the address, adds the node as a **learner**
//!   ([`ReplicatedLog::change_membership`]), waits until the learner has
//!   caught up (its match index at least the index of the change that made
//!   it a learner, and within [`MemberOptions::catch_up_lag_max`] entries
//!   of the commit index), then promotes it to voter (unless `--learner`).
//!   `remove` moves leadership away first when the leader removes itself,
//!   changes the membership, then forgets the address.
//! * **One change at a time**: the node that runs a change refuses another
//!   one with [`MemberError::ChangeInProgress`] until the first ends, and
//!   the cores refuse a second configuration change while one is in the
//!   log. A request to a follower is refused with
//!   [`MemberError::NotLeader`] and the leader's id; clients follow it.
//! * **Authentication**: membership commands carry the secret of the
//!   cluster file's `[operator] token_file`; without that section every
//!   change is refused ([`MemberError::Disabled`]).
//!
//! # What is the truth
//!
//! After a node has started, the membership committed in the log is the
//! truth; the cluster file only says where the seeds listen (and, for a
//! new cluster, who the first members are). A node removed while it was
//! down comes back with its old view: the others have removed it from
//! their transports and refuse its connections, so it cannot disturb
//! them, and it never learns the entries after its removal. Wipe its data
//! directory before adding it again (with a new id, preferably).

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use consensus::{
    ClientError, ConsensusNode, LogIndex, Membership, NodeId, RecoverError, Rejected,
    ReplicatedLog, Role, StateMachine,
};
use serde::{Deserialize, Serialize};
use thiserror::Error;
use tokio::sync::watch;

/// Where a member listens.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberAddrs {
    /// Consensus traffic (UDP, QUIC with mutual TLS).
    pub peer_addr: SocketAddr,
    /// Client API (UDP, QUIC with TLS).
    pub client_addr: SocketAddr,
}

/// The replicated address book: members added after the cluster was
/// created, and members removed (seeds included).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Directory {
    /// Members written by `member add`, with their addresses.
    pub added: BTreeMap<NodeId, MemberAddrs>,
    /// Members removed by `member remove` (their addresses are forgotten,
    /// even when the cluster file still lists them).
    pub removed: BTreeSet<NodeId>,
}

impl Directory {
    /// Every known address: the seeds of the cluster file, less the removed
    /// members, overlaid with the added ones.
    pub fn addresses(
        &self,
        seeds: &BTreeMap<NodeId, MemberAddrs>,
    ) -> BTreeMap<NodeId, MemberAddrs> {
        let mut all: BTreeMap<NodeId, MemberAddrs> = seeds
            .iter()
            .filter(|(id, _)| !self.removed.contains(id))
            .map(|(id, addrs)| (*id, *addrs))
            .collect();
        all.extend(self.added.iter().map(|(id, addrs)| (*id, *addrs)));
        all
    }

    /// The addresses of one member (as in [`Directory::addresses`]).
    pub fn address(
        &self,
        id: NodeId,
        seeds: &BTreeMap<NodeId, MemberAddrs>,
    ) -> Option<MemberAddrs> {
        if let Some(addrs) = self.added.get(&id) {
            return Some(*addrs);
        }
        seeds
            .get(&id)
            .copied()
            .filter(|_| !self.removed.contains(&id))
    }

    fn apply(&mut self, command: DirectoryCommand) {
        match command {
            DirectoryCommand::Add { id, addrs } => {
                self.removed.remove(&id);
                self.added.insert(id, addrs);
            }
            DirectoryCommand::Forget { id } => {
                self.added.remove(&id);
                self.removed.insert(id);
            }
        }
    }
}

/// The addresses a node starts with: every node of the cluster file, and
/// the node itself (which a joining node's file need not list).
pub fn seed_addrs(
    config: &crate::config::ClusterConfig,
    entry: &crate::config::NodeEntry,
) -> BTreeMap<NodeId, MemberAddrs> {
    config
        .nodes
        .iter()
        .chain([entry])
        .map(|n| {
            let addrs = MemberAddrs {
                peer_addr: n.peer_addr,
                client_addr: n.client_addr,
            };
            (n.id, addrs)
        })
        .collect()
}

/// A change of the address book, replicated through the log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum DirectoryCommand {
    /// Node `id` listens at `addrs` (idempotent).
    Add {
        /// The node.
        id: NodeId,
        /// Its addresses.
        addrs: MemberAddrs,
    },
    /// Node `id` left the cluster: forget its addresses.
    Forget {
        /// The node.
        id: NodeId,
    },
}

/// The prefix of a directory command and of a [`WithDirectory`] snapshot.
/// Ten `0xff` bytes are not a valid start of a postcard integer (a `u64`
/// varint ends by its tenth byte, which is at most 1) and not a session
/// envelope tag, so no command or snapshot of the wrapped state machines
/// begins with it.
const MAGIC: [u8; 14] = [
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, b'd', b'i', b'r', b'1',
];

fn with_magic(body: Vec<u8>) -> Bytes {
    let mut out = Vec::with_capacity(MAGIC.len() + body.len());
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&body);
    Bytes::from(out)
}

impl DirectoryCommand {
    /// Encodes for [`ReplicatedLog::append`].
    pub fn encode(&self) -> Bytes {
        with_magic(postcard::to_allocvec(self).expect("encoding to a Vec cannot fail"))
    }

    /// `None` when `bytes` is not a directory command (the wrapped state
    /// machine's); `Some(Err)` when it is one that does not decode.
    fn decode(bytes: &[u8]) -> Option<Result<DirectoryCommand, String>> {
        let body = bytes.strip_prefix(&MAGIC[..])?;
        Some(postcard::from_bytes(body).map_err(|e| e.to_string()))
    }
}

#[derive(Serialize, Deserialize)]
struct DirectorySnapshot {
    directory: Directory,
    inner: Bytes,
}

/// Wraps a state machine with the replicated address book (see the module
/// documentation). Commands that are not directory commands go to the
/// inner state machine untouched, and a snapshot of a cluster that never
/// changed its membership is the inner state machine's, so existing data
/// directories stay readable.
pub struct WithDirectory<S> {
    inner: S,
    directory: Directory,
    published: watch::Sender<Directory>,
    on_directory_entry: Option<Box<dyn FnMut(LogIndex) + Send>>,
    /// The last index applied (or restored): the index of a backup.
    applied: LogIndex,
}

impl<S: StateMachine> WithDirectory<S> {
    /// Wraps `inner`; the receiver sees the address book after every
    /// change (and after a snapshot is restored).
    pub fn new(inner: S) -> (WithDirectory<S>, watch::Receiver<Directory>) {
        let (published, receiver) = watch::channel(Directory::default());
        (
            WithDirectory {
                inner,
                directory: Directory::default(),
                published,
                on_directory_entry: None,
                applied: 0,
            },
            receiver,
        )
    }

    /// Calls `hook` with the index of every directory entry applied: the
    /// inner state machine never sees those entries, so one that tracks the
    /// applied index itself (to answer "applied up to i" waits) learns of
    /// them here.
    pub fn on_directory_entry(mut self, hook: impl FnMut(LogIndex) + Send + 'static) -> Self {
        self.on_directory_entry = Some(Box::new(hook));
        self
    }

    fn publish(&self) {
        self.published.send_replace(self.directory.clone());
    }
}

impl<S: StateMachine> StateMachine for WithDirectory<S> {
    fn apply(&mut self, index: LogIndex, command: &Bytes) -> Bytes {
        self.applied = index;
        match DirectoryCommand::decode(command) {
            None => self.inner.apply(index, command),
            Some(Ok(command)) => {
                self.directory.apply(command);
                self.publish();
                if let Some(hook) = &mut self.on_directory_entry {
                    hook(index);
                }
                Bytes::new()
            }
            Some(Err(error)) => {
                tracing::warn!(index, %error, "a directory command does not decode; ignored");
                if let Some(hook) = &mut self.on_directory_entry {
                    hook(index);
                }
                Bytes::new()
            }
        }
    }

    /// [`SNAPSHOT_QUERY`](crate::backup::SNAPSHOT_QUERY) is answered here
    /// (the inner state machine's snapshot and the applied index, for a
    /// backup: without the address book, which belongs to this cluster);
    /// every other query goes to the inner state machine.
    fn query(&self, query: &Bytes) -> Bytes {
        if query.as_ref() == crate::backup::SNAPSHOT_QUERY {
            let answer = crate::backup::MachineSnapshot {
                index: self.applied,
                data: self.inner.snapshot(),
            };
            return Bytes::from(
                postcard::to_allocvec(&answer).expect("encoding to a Vec cannot fail"),
            );
        }
        self.inner.query(query)
    }

    fn snapshot(&self) -> Bytes {
        let inner = self.inner.snapshot();
        if self.directory == Directory::default() {
            return inner;
        }
        let snapshot = DirectorySnapshot {
            directory: self.directory.clone(),
            inner,
        };
        with_magic(postcard::to_allocvec(&snapshot).expect("encoding to a Vec cannot fail"))
    }

    fn restore(&mut self, index: LogIndex, data: &Bytes) -> Result<(), RecoverError> {
        self.applied = index;
        match data.strip_prefix(&MAGIC[..]) {
            None => {
                self.inner.restore(index, data)?;
                self.directory = Directory::default();
            }
            Some(body) => {
                let snapshot: DirectorySnapshot = postcard::from_bytes(body)
                    .map_err(|e| RecoverError::CorruptSnapshot(format!("member directory: {e}")))?;
                self.inner.restore(index, &snapshot.inner)?;
                self.directory = snapshot.directory;
            }
        }
        self.publish();
        Ok(())
    }
}

/// An authenticated membership request.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberRequest {
    /// The secret of the cluster file's `[operator] token_file`.
    pub token: String,
    /// What to do.
    pub command: MemberCommand,
}

impl std::fmt::Debug for MemberRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        debug_redacted(f, "MemberRequest", &self.command)
    }
}

/// The `Debug` of an authenticated request `name { token, command }`:
/// never the secret.
pub fn debug_redacted(
    f: &mut std::fmt::Formatter<'_>,
    name: &str,
    command: &dyn std::fmt::Debug,
) -> std::fmt::Result {
    f.debug_struct(name)
        .field("token", &"<redacted>")
        .field("command", command)
        .finish()
}

/// A membership command.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum MemberCommand {
    /// The members, their addresses and roles, and (on the leader) how far
    /// each one is behind.
    List,
    /// Adds node `id`: its addresses to every node, then as a learner, then
    /// (unless `learner`) as a voter once it has caught up.
    Add {
        /// The new node.
        id: NodeId,
        /// Its addresses.
        addrs: MemberAddrs,
        /// Stop once it is a learner.
        learner: bool,
    },
    /// Makes learner `id` a voter once it has caught up.
    Promote {
        /// The learner.
        id: NodeId,
    },
    /// Removes node `id` (voter or learner) and forgets its addresses.
    Remove {
        /// The node.
        id: NodeId,
    },
}

impl MemberCommand {
    /// True for the commands that change the membership.
    pub fn is_change(&self) -> bool {
        !matches!(self, MemberCommand::List)
    }

    fn describe(&self) -> String {
        match self {
            MemberCommand::List => "list".into(),
            MemberCommand::Add { id, learner, .. } => {
                format!("add node {id}{}", if *learner { " as learner" } else { "" })
            }
            MemberCommand::Promote { id } => format!("promote node {id}"),
            MemberCommand::Remove { id } => format!("remove node {id}"),
        }
    }
}

/// A member's part in the protocol.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum MemberRole {
    /// Votes.
    Voter,
    /// Replicates, does not vote.
    Learner,
    /// Votes in the old half of a joint configuration only (leaving).
    Outgoing,
}

impl std::fmt::Display for MemberRole {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            MemberRole::Voter => "voter",
            MemberRole::Learner => "learner",
            MemberRole::Outgoing => "outgoing",
        })
    }
}

/// One member as a node sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberInfo {
    /// Node id.
    pub id: NodeId,
    /// Where it listens, when known.
    pub addrs: Option<MemberAddrs>,
    /// Voter, learner or outgoing voter.
    pub role: MemberRole,
    /// Highest index known stored on it (the leader's view; the node's own
    /// last index for itself).
    pub match_index: Option<LogIndex>,
    /// Entries it is behind the commit index (the leader's view).
    pub lag: Option<u64>,
}

/// What a node answers to a membership command.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberView {
    /// The node that answered.
    pub answered_by: NodeId,
    /// The leader it believes in.
    pub leader: Option<NodeId>,
    /// The membership in force at that node.
    pub membership: Membership,
    /// Its commit index.
    pub commit_index: LogIndex,
    /// The members, in id order.
    pub members: Vec<MemberInfo>,
    /// A change this node is running, if any.
    pub in_flight: Option<String>,
}

impl MemberView {
    /// The member `id`, if it is one.
    pub fn member(&self, id: NodeId) -> Option<&MemberInfo> {
        self.members.iter().find(|m| m.id == id)
    }

    /// A table for people.
    pub fn describe(&self) -> String {
        let mut out = format!(
            "membership {} (answered by node {}, leader {}, commit index {}{})\n",
            self.membership,
            self.answered_by,
            self.leader
                .map_or_else(|| "unknown".to_string(), |l| l.to_string()),
            self.commit_index,
            self.in_flight
                .as_ref()
                .map_or_else(String::new, |w| format!(", in flight: {w}"))
        );
        out.push_str(&format!(
            "{:>4}  {:<22} {:<22} {:<8} {:>8} {:>6}\n",
            "id", "peer address", "client address", "role", "match", "lag"
        ));
        let show = |value: Option<u64>| value.map_or_else(|| "-".to_string(), |v| v.to_string());
        for member in &self.members {
            let (peer, client) = member.addrs.map_or_else(
                || ("?".to_string(), "?".to_string()),
                |a| (a.peer_addr.to_string(), a.client_addr.to_string()),
            );
            out.push_str(&format!(
                "{:>4}  {:<22} {:<22} {:<8} {:>8} {:>6}{}\n",
                member.id,
                peer,
                client,
                member.role.to_string(),
                show(member.match_index),
                show(member.lag),
                if Some(member.id) == self.leader {
                    "  (leader)"
                } else {
                    ""
                }
            ));
        }
        out
    }
}

/// Why a membership command did not take effect (or not entirely).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, Error)]
pub enum MemberError {
    /// The cluster file has no `[operator] token_file`: membership changes
    /// are off.
    #[error("node {node}: membership changes are disabled (no `[operator] token_file` in the cluster file)")]
    Disabled {
        /// The node that refused.
        node: NodeId,
    },
    /// The request's secret is wrong.
    #[error("node {node}: wrong operator token")]
    Unauthorized {
        /// The node that refused.
        node: NodeId,
    },
    /// Ask the leader (no effect here).
    #[error("not the leader (leader: {leader:?})")]
    NotLeader {
        /// The leader, if known.
        leader: Option<NodeId>,
    },
    /// Another change is running; retry when it ends.
    #[error("another membership change is in progress: {what}")]
    ChangeInProgress {
        /// The change that runs.
        what: String,
    },
    /// The node is already a member.
    #[error("node {id} is already a member ({role})")]
    AlreadyMember {
        /// The node.
        id: NodeId,
        /// Its role.
        role: MemberRole,
    },
    /// The node is not a member.
    #[error("node {id} is not a member")]
    NotMember {
        /// The node.
        id: NodeId,
    },
    /// `promote` of a node that is not a learner.
    #[error("node {id} is not a learner")]
    NotLearner {
        /// The node.
        id: NodeId,
    },
    /// An address of the new node is used by another member.
    #[error("{addr} is already used by node {by}")]
    AddressInUse {
        /// The address.
        addr: SocketAddr,
        /// The member using it.
        by: NodeId,
    },
    /// The learner did not catch up in time; it stays a learner (promote it
    /// later with `member promote`, or remove it).
    #[error("node {id} did not catch up within {waited_ms} ms (match index {match_index} of commit index {commit_index}); it stays a learner")]
    CatchUpTimeout {
        /// The learner.
        id: NodeId,
        /// Its match index when the wait ended.
        match_index: LogIndex,
        /// The commit index then.
        commit_index: LogIndex,
        /// How long the wait was.
        waited_ms: u64,
    },
    /// The change is not possible (the last voter, a malformed id, a
    /// protocol limit).
    #[error("invalid change: {0}")]
    Invalid(String),
    /// The cluster could not complete a step (no quorum, node stopped, the
    /// outcome of a step unknown); `done` says which steps completed.
    #[error("{step} failed: {error} (done before it: {done})")]
    Cluster {
        /// The step that failed.
        step: String,
        /// What the consensus node said.
        error: String,
        /// The steps that completed.
        done: String,
    },
}

/// Settings of the change procedure.
#[derive(Clone, Debug)]
pub struct MemberOptions {
    /// A learner counts as caught up when it is at most this many entries
    /// behind the commit index (and has stored the entry that made it a
    /// learner).
    pub catch_up_lag_max: u64,
    /// How long `add` and `promote` wait for a learner to catch up.
    pub catch_up_timeout: Duration,
}

impl Default for MemberOptions {
    fn default() -> Self {
        MemberOptions {
            catch_up_lag_max: 100,
            catch_up_timeout: Duration::from_secs(60),
        }
    }
}

/// Compares two secrets in time that depends only on their lengths.
pub fn same_secret(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let mut difference = a.len() ^ b.len();
    for (i, byte) in a.iter().enumerate() {
        difference |= usize::from(byte ^ b.get(i).copied().unwrap_or(!byte));
    }
    difference == 0
}

/// Clears the in-flight marker when a change ends (also on a panic).
struct InFlight<'a>(&'a Mutex<Option<String>>);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }
}

/// A node's side of membership changes: answers [`MemberRequest`]s and
/// keeps the transport's peer table in step with the address book.
pub struct MemberService {
    node: Arc<ConsensusNode>,
    id: NodeId,
    directory: watch::Receiver<Directory>,
    seeds: BTreeMap<NodeId, MemberAddrs>,
    token: Option<String>,
    in_flight: Mutex<Option<String>>,
    options: MemberOptions,
}

impl MemberService {
    /// The service of node `id`. `seeds` are the cluster file's nodes,
    /// `token` the operator secret (`None`: changes refused).
    pub fn new(
        node: Arc<ConsensusNode>,
        id: NodeId,
        directory: watch::Receiver<Directory>,
        seeds: BTreeMap<NodeId, MemberAddrs>,
        token: Option<String>,
        options: MemberOptions,
    ) -> Arc<MemberService> {
        Arc::new(MemberService {
            node,
            id,
            directory,
            seeds,
            token,
            in_flight: Mutex::new(None),
            options,
        })
    }

    /// Every address this node knows (cluster file and address book).
    pub fn addresses(&self) -> BTreeMap<NodeId, MemberAddrs> {
        self.directory.borrow().addresses(&self.seeds)
    }

    /// The addresses of member `id` (cluster file or address book), if
    /// known and not removed.
    pub fn address(&self, id: NodeId) -> Option<MemberAddrs> {
        self.directory.borrow().address(id, &self.seeds)
    }

    /// Follows the address book: each added member becomes a transport
    /// peer, each removed one stops being one. Runs until the state
    /// machine is dropped.
    pub fn spawn_peer_sync(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let service = self.clone();
        let mut directory = self.directory.clone();
        tokio::spawn(async move {
            let mut known: BTreeMap<NodeId, SocketAddr> = service
                .seeds
                .iter()
                .filter(|(id, _)| **id != service.id)
                .map(|(id, a)| (*id, a.peer_addr))
                .collect();
            loop {
                let current = directory.borrow_and_update().clone();
                service.sync_peers(&current, &mut known);
                if directory.changed().await.is_err() {
                    return;
                }
            }
        })
    }

    fn sync_peers(&self, directory: &Directory, known: &mut BTreeMap<NodeId, SocketAddr>) {
        for (&id, addrs) in &directory.added {
            if id == self.id || known.get(&id) == Some(&addrs.peer_addr) {
                continue;
            }
            match self.node.add_peer(id, addrs.peer_addr) {
                Ok(()) => {
                    tracing::info!(node = self.id, peer = id, addr = %addrs.peer_addr, "member address added");
                    known.insert(id, addrs.peer_addr);
                }
                Err(error) => tracing::warn!(node = self.id, peer = id, %error, "adding a peer"),
            }
        }
        for &id in &directory.removed {
            if id == self.id || known.remove(&id).is_none() {
                continue;
            }
            match self.node.remove_peer(id) {
                Ok(()) => tracing::info!(node = self.id, peer = id, "member address forgotten"),
                Err(error) => tracing::debug!(node = self.id, peer = id, %error, "removing a peer"),
            }
        }
    }

    /// Answers one request: authentication, then the command.
    pub async fn handle(
        self: &Arc<Self>,
        request: MemberRequest,
    ) -> Result<MemberView, MemberError> {
        let Some(token) = &self.token else {
            tracing::warn!(node = self.id, command = ?request.command, "membership request refused: no [operator] token_file");
            return Err(MemberError::Disabled { node: self.id });
        };
        if !same_secret(&request.token, token) {
            tracing::warn!(node = self.id, "membership request refused: wrong token");
            return Err(MemberError::Unauthorized { node: self.id });
        }
        if !request.command.is_change() {
            return Ok(self.view());
        }
        self.check_leader()?;
        let what = request.command.describe();
        {
            let mut in_flight = self.in_flight.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(running) = in_flight.as_ref() {
                tracing::info!(node = self.id, refused = %what, running = %running, "membership change refused: one in progress");
                return Err(MemberError::ChangeInProgress {
                    what: running.clone(),
                });
            }
            *in_flight = Some(what.clone());
        }
        // The change runs on its own task: a client that goes away does not
        // cut it in the middle.
        let service = self.clone();
        let task = tokio::spawn(async move {
            let _in_flight = InFlight(&service.in_flight);
            tracing::info!(node = service.id, change = %what, "membership change started");
            let result = service.change(request.command).await;
            match &result {
                Ok(()) => {
                    tracing::info!(node = service.id, change = %what, membership = %service.node.status().membership, "membership change done")
                }
                Err(error) => {
                    tracing::warn!(node = service.id, change = %what, %error, "membership change failed")
                }
            }
            result
        });
        match task.await {
            Ok(Ok(())) => Ok(self.view()),
            Ok(Err(error)) => Err(error),
            Err(join) => Err(MemberError::Cluster {
                step: "the change task".into(),
                error: join.to_string(),
                done: "unknown".into(),
            }),
        }
    }

    /// May this node run a change? (The leader; any node on classic Paxos.)
    fn check_leader(&self) -> Result<(), MemberError> {
        let status = self.node.status();
        if !status.membership.contains(self.id) {
            // A removed node (still running) must not run changes.
            return Err(MemberError::NotLeader {
                leader: status.leader.filter(|l| *l != self.id),
            });
        }
        match status.role {
            Role::Leader | Role::Peer => Ok(()),
            _ => Err(MemberError::NotLeader {
                leader: status.leader,
            }),
        }
    }

    /// This node's view of the members.
    pub fn view(&self) -> MemberView {
        let status = self.node.status();
        let addresses = self.addresses();
        let membership = &status.membership;
        let leads = matches!(status.role, Role::Leader | Role::Peer);
        let members = membership
            .all_nodes()
            .into_iter()
            .map(|id| {
                let role = if membership.voters.contains(&id) {
                    MemberRole::Voter
                } else if membership.is_voter(id) {
                    MemberRole::Outgoing
                } else {
                    MemberRole::Learner
                };
                let match_index = if id == self.id {
                    Some(status.last_index)
                } else if leads {
                    status.peers.get(&id).map(|p| p.match_index)
                } else {
                    None
                };
                MemberInfo {
                    id,
                    addrs: addresses.get(&id).copied(),
                    role,
                    match_index,
                    lag: match_index.map(|m| status.commit_index.saturating_sub(m)),
                }
            })
            .collect();
        MemberView {
            answered_by: self.id,
            leader: status.leader,
            membership: status.membership.clone(),
            commit_index: status.commit_index,
            members,
            in_flight: self
                .in_flight
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
        }
    }

    async fn change(&self, command: MemberCommand) -> Result<(), MemberError> {
        match command {
            MemberCommand::List => Ok(()),
            MemberCommand::Add { id, addrs, learner } => self.add(id, addrs, learner).await,
            MemberCommand::Promote { id } => self.promote(id, "").await,
            MemberCommand::Remove { id } => self.remove(id).await,
        }
    }

    async fn add(&self, id: NodeId, addrs: MemberAddrs, learner: bool) -> Result<(), MemberError> {
        if id == 0 {
            return Err(MemberError::Invalid("node id 0 is reserved".into()));
        }
        let membership = self.node.status().membership;
        if let Some(role) = role_of(&membership, id) {
            return Err(MemberError::AlreadyMember { id, role });
        }
        for (other, known) in self.addresses() {
            if other == id || !membership.contains(other) {
                continue;
            }
            for addr in [addrs.peer_addr, addrs.client_addr] {
                if addr == known.peer_addr || addr == known.client_addr {
                    return Err(MemberError::AddressInUse { addr, by: other });
                }
            }
        }
        let mut done = Vec::new();
        self.append(
            DirectoryCommand::Add { id, addrs },
            "writing the address",
            &done,
        )
        .await?;
        done.push(format!("node {id}'s address written"));
        let mut target = membership.leave_joint();
        target.learners.insert(id);
        let since = self
            .change_membership(target, "adding it as a learner", &done)
            .await?;
        done.push(format!("node {id} added as a learner"));
        if learner {
            return Ok(());
        }
        self.promote_after(id, since, &done.join(", ")).await
    }

    async fn promote(&self, id: NodeId, done: &str) -> Result<(), MemberError> {
        let membership = self.node.status().membership;
        if !membership.is_learner(id) {
            return match role_of(&membership, id) {
                None => Err(MemberError::NotMember { id }),
                Some(_) => Err(MemberError::NotLearner { id }),
            };
        }
        self.promote_after(id, 1, done).await
    }

    /// Waits until learner `id` has stored `since` and is within the lag
    /// bound, then makes it a voter.
    async fn promote_after(
        &self,
        id: NodeId,
        since: LogIndex,
        done: &str,
    ) -> Result<(), MemberError> {
        self.wait_caught_up(id, since).await?;
        let mut target = self.node.status().membership.leave_joint();
        target.learners.remove(&id);
        target.voters.insert(id);
        let done = vec![done.to_string(), format!("node {id} caught up")];
        self.change_membership(target, "promoting it to voter", &done)
            .await?;
        Ok(())
    }

    async fn wait_caught_up(&self, id: NodeId, since: LogIndex) -> Result<(), MemberError> {
        let started = Instant::now();
        let mut status = self.node.status_watch();
        loop {
            let now = status.borrow_and_update().clone();
            let match_index = now.peers.get(&id).map_or(0, |p| p.match_index);
            if match_index >= since
                && now.commit_index.saturating_sub(match_index) <= self.options.catch_up_lag_max
            {
                tracing::info!(
                    node = self.id,
                    learner = id,
                    match_index,
                    commit_index = now.commit_index,
                    "learner caught up"
                );
                return Ok(());
            }
            if !matches!(now.role, Role::Leader | Role::Peer) {
                return Err(MemberError::Cluster {
                    step: format!("waiting for node {id} to catch up"),
                    error: format!("this node stopped leading (leader now: {:?})", now.leader),
                    done: format!("node {id} is a learner"),
                });
            }
            let left = self
                .options
                .catch_up_timeout
                .saturating_sub(started.elapsed());
            if left.is_zero() {
                return Err(MemberError::CatchUpTimeout {
                    id,
                    match_index,
                    commit_index: now.commit_index,
                    waited_ms: started.elapsed().as_millis() as u64,
                });
            }
            // Status changes wake us; the poll bounds the wait when the
            // cluster is idle.
            let _ =
                tokio::time::timeout(left.min(Duration::from_millis(100)), status.changed()).await;
        }
    }

    async fn remove(&self, id: NodeId) -> Result<(), MemberError> {
        let status = self.node.status();
        let membership = status.membership.clone();
        if !membership.contains(id) {
            // Not a member, but its address is still known (a node that
            // removed itself could not forget it): forget it now.
            if id != self.id && self.addresses().contains_key(&id) {
                let forgotten = self
                    .append(
                        DirectoryCommand::Forget { id },
                        "forgetting its address",
                        &[],
                    )
                    .await;
                return forgotten;
            }
            return Err(MemberError::NotMember { id });
        }
        if id == self.id && status.role == Role::Leader {
            if let Some(leader) = self.hand_over(&status).await? {
                return Err(MemberError::NotLeader {
                    leader: Some(leader),
                });
            }
        }
        let mut target = membership.leave_joint();
        target.voters.remove(&id);
        target.learners.remove(&id);
        if target.voters.is_empty() {
            return Err(MemberError::Invalid(format!("node {id} is the last voter")));
        }
        let mut done = Vec::new();
        self.change_membership(target, "removing it from the membership", &done)
            .await?;
        done.push(format!("node {id} removed from the membership"));
        let forget = self.append(
            DirectoryCommand::Forget { id },
            "forgetting its address",
            &done,
        );
        if id != self.id {
            forget.await?;
        } else if let Err(error) = forget.await {
            // A node that removed itself (no leadership transfer in this
            // protocol, or classic Paxos) may no longer get an entry
            // committed: the members keep its address, and dial it in
            // vain, until `member remove` is run again on the new leader.
            tracing::warn!(node = self.id, %error, "removed this node, but could not forget its address; run `member remove` again to forget it");
        }
        Ok(())
    }

    /// The leader is asked to remove itself: hand leadership to the voter
    /// that is furthest ahead first. Returns the new leader when that
    /// worked (the caller retries there), `None` when the protocol cannot
    /// transfer leadership (the core then removes its own leader).
    async fn hand_over(&self, status: &consensus::Status) -> Result<Option<NodeId>, MemberError> {
        let Some(to) = status
            .membership
            .voters
            .iter()
            .filter(|v| **v != self.id)
            .max_by_key(|v| status.peers.get(v).map_or(0, |p| p.match_index))
            .copied()
        else {
            return Err(MemberError::Invalid(format!(
                "node {} is the last voter",
                self.id
            )));
        };
        match self.node.transfer_leadership(to).await {
            Ok(()) => {}
            Err(ClientError::Invalid(text)) if text.contains("not supported") => {
                tracing::info!(
                    node = self.id,
                    "no leadership transfer in this protocol; the leader removes itself"
                );
                return Ok(None);
            }
            Err(error) => {
                return Err(MemberError::Cluster {
                    step: format!("handing leadership to node {to}"),
                    error: error.to_string(),
                    done: "nothing".into(),
                })
            }
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut watch = self.node.status_watch();
        loop {
            let now = watch.borrow_and_update().clone();
            if now.role != Role::Leader {
                if let Some(leader) = now.leader.filter(|l| *l != self.id) {
                    tracing::info!(
                        node = self.id,
                        new_leader = leader,
                        "leadership handed over before removing this node"
                    );
                    return Ok(Some(leader));
                }
            }
            if Instant::now() > deadline {
                return Err(MemberError::Cluster {
                    step: format!("handing leadership to node {to}"),
                    error: "no new leader within 10 s".into(),
                    done: "nothing".into(),
                });
            }
            let _ = tokio::time::timeout(Duration::from_millis(100), watch.changed()).await;
        }
    }

    async fn append(
        &self,
        command: DirectoryCommand,
        step: &str,
        done: &[String],
    ) -> Result<(), MemberError> {
        self.node
            .append(command.encode())
            .await
            .map(|_| ())
            .map_err(|error| cluster_error(step, error, done))
    }

    async fn change_membership(
        &self,
        target: Membership,
        step: &str,
        done: &[String],
    ) -> Result<LogIndex, MemberError> {
        tracing::info!(node = self.id, to = %target, step, "changing the membership");
        let index = self
            .node
            .change_membership(target.clone())
            .await
            .map_err(|error| cluster_error(step, error, done))?;
        // The change is in force; this node's published status may be one
        // batch behind. Wait for it, so the next step and the answer see it.
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut status = self.node.status_watch();
        while status.borrow_and_update().membership != target && Instant::now() < deadline {
            let _ = tokio::time::timeout(Duration::from_millis(100), status.changed()).await;
        }
        Ok(index)
    }
}

/// Why a membership command gave no answer (the client side).
#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum MemberClientError {
    /// The cluster refused it, or a step failed (the error says which).
    #[error(transparent)]
    Refused(#[from] MemberError),
    /// No node answered; for a change, its outcome is unknown (look with
    /// `member list`).
    #[error("no answer: {0}")]
    Unreachable(String),
    /// The client could not be set up (no token file, bad CA).
    #[error("member client setup: {0}")]
    Setup(String),
}

/// How a service's client sends one membership command to one node.
pub trait MemberSender {
    /// The nodes to try (the cluster file's, and those learned since).
    fn node_ids(&self) -> Vec<NodeId>;
    /// The leader last seen, tried first.
    fn last_leader(&self) -> Option<NodeId>;
    /// Sends `command` to node `id`: the node's answer, or why there was
    /// none.
    fn send(
        &self,
        id: NodeId,
        command: MemberCommand,
        timeout: Duration,
    ) -> impl std::future::Future<Output = Result<Result<MemberView, MemberError>, String>> + Send;
}

/// Runs `command` on the leader (any node on classic Paxos): asks each
/// node for its view first, follows a follower's leader hint, retries
/// through an election (a leader that removed itself), and sends a change
/// once to the node that runs it (no blind retry: a change is not
/// idempotent). A `list` that finds no leader answers with a follower's
/// view.
pub async fn run_on_leader<S: MemberSender>(
    sender: &S,
    command: MemberCommand,
    list_timeout: Duration,
    change_timeout: Duration,
) -> Result<MemberView, MemberClientError> {
    let change = command.is_change();
    let deadline = Instant::now()
        + if change {
            change_timeout
        } else {
            list_timeout * 4
        };
    let mut tried = Vec::new();
    let mut problems = Vec::new();
    let mut next = sender.last_leader();
    let mut follower_view: Option<MemberView> = None;
    while Instant::now() < deadline {
        let untried = || sender.node_ids().into_iter().find(|id| !tried.contains(id));
        let target = match next.take().or_else(untried) {
            Some(target) => target,
            None if change => {
                // Every node said no: an election is going on (e.g. the
                // leader removed itself). Ask again from the start.
                tried.clear();
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
            None => break,
        };
        tried.push(target);
        match sender.send(target, MemberCommand::List, list_timeout).await {
            Ok(Ok(view)) if !view.membership.contains(target) => {
                // A removed node that still runs: its view is stale.
                follower_view.get_or_insert(view);
                continue;
            }
            Ok(Ok(view)) => match view.leader {
                Some(leader) if leader != target => {
                    if !tried.contains(&leader) {
                        next = Some(leader);
                    }
                    follower_view.get_or_insert(view);
                    continue;
                }
                _ if !change => return Ok(view),
                _ => {}
            },
            Ok(Err(error)) => return Err(error.into()),
            Err(problem) => {
                problems.push(problem);
                continue;
            }
        }
        let timeout = deadline.saturating_duration_since(Instant::now());
        match sender.send(target, command.clone(), timeout).await {
            Ok(Ok(view)) => return Ok(view),
            Ok(Err(MemberError::NotLeader { leader })) => {
                problems.push(format!("node {target}: not the leader (leader {leader:?})"));
                if let Some(leader) = leader {
                    tried.retain(|id| *id != leader);
                    next = Some(leader);
                }
                // A leader that handed over before removing itself answers
                // with the new leader: give it a moment.
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Ok(Err(error)) => return Err(error.into()),
            Err(problem) => {
                return Err(MemberClientError::Unreachable(format!(
                    "{problem}; the change may or may not have happened: check `member list`"
                )))
            }
        }
    }
    if let Some(view) = follower_view.filter(|_| !change) {
        return Ok(view);
    }
    Err(MemberClientError::Unreachable(if problems.is_empty() {
        "no node leads".into()
    } else {
        problems.join("; ")
    }))
}

fn role_of(membership: &Membership, id: NodeId) -> Option<MemberRole> {
    if membership.voters.contains(&id) {
        Some(MemberRole::Voter)
    } else if membership.is_voter(id) {
        Some(MemberRole::Outgoing)
    } else if membership.learners.contains(&id) {
        Some(MemberRole::Learner)
    } else {
        None
    }
}

fn cluster_error(step: &str, error: ClientError, done: &[String]) -> MemberError {
    let done = if done.is_empty() {
        "nothing".to_string()
    } else {
        done.join(", ")
    };
    match error {
        ClientError::NotLeader { hint } if done == "nothing" => {
            MemberError::NotLeader { leader: hint }
        }
        ClientError::Invalid(text) if text == Rejected::ChangeInProgress.to_string() => {
            MemberError::ChangeInProgress {
                what: "a configuration change is still in the log".into(),
            }
        }
        ClientError::Invalid(text) if done == "nothing" => MemberError::Invalid(text),
        error => MemberError::Cluster {
            step: step.to_string(),
            error: error.to_string(),
            done,
        },
    }
}

/// The `member` subcommands, the same in every service's binary.
#[derive(Clone, Debug, clap::Subcommand)]
pub enum MemberAction {
    /// Write a new random secret to the configuration's `[operator] token_file`.
    Token {
        /// Replace an existing secret.
        #[arg(long)]
        force: bool,
    },
    /// The members: id, addresses, voter or learner, and on the leader how
    /// far each is behind.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Add node ID: its addresses to every node, then as a learner, then as
    /// a voter once it has caught up (unless --learner). Start it as a
    /// joining node (before or after).
    Add {
        /// The new node's id.
        id: NodeId,
        /// Its consensus address.
        #[arg(long)]
        peer_addr: SocketAddr,
        /// Its client address.
        #[arg(long)]
        client_addr: SocketAddr,
        /// Leave it a learner (promote it later with `member promote`).
        #[arg(long)]
        learner: bool,
    },
    /// Make learner ID a voter once it has caught up.
    Promote {
        /// The learner.
        id: NodeId,
    },
    /// Remove node ID (the leader hands leadership over first when it is
    /// the one removed).
    Remove {
        /// The node.
        id: NodeId,
    },
}

impl MemberAction {
    /// The command to send and whether to print JSON (`None` for `token`,
    /// which the binary handles itself).
    pub fn command(&self) -> Option<(MemberCommand, bool)> {
        match self {
            MemberAction::Token { .. } => None,
            MemberAction::List { json } => Some((MemberCommand::List, *json)),
            MemberAction::Add {
                id,
                peer_addr,
                client_addr,
                learner,
            } => Some((
                MemberCommand::Add {
                    id: *id,
                    addrs: MemberAddrs {
                        peer_addr: *peer_addr,
                        client_addr: *client_addr,
                    },
                    learner: *learner,
                },
                false,
            )),
            MemberAction::Promote { id } => Some((MemberCommand::Promote { id: *id }, false)),
            MemberAction::Remove { id } => Some((MemberCommand::Remove { id: *id }, false)),
        }
    }
}

/// Reads a secret file (its content without surrounding white space).
pub fn read_secret(path: &std::path::Path) -> Result<String, String> {
    let text =
        std::fs::read_to_string(path).map_err(|e| format!("reading {}: {e}", path.display()))?;
    Ok(text.trim().to_string())
}

/// Writes a new random secret (64 hex characters) to `path`, readable by
/// its owner only.
pub fn write_secret(path: &std::path::Path) -> std::io::Result<()> {
    use rand::RngCore;
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let token: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    std::fs::write(path, format!("{token}\n"))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Echo(Vec<Bytes>);

    impl StateMachine for Echo {
        fn apply(&mut self, _index: LogIndex, command: &Bytes) -> Bytes {
            self.0.push(command.clone());
            command.clone()
        }
        fn query(&self, _query: &Bytes) -> Bytes {
            Bytes::new()
        }
        fn snapshot(&self) -> Bytes {
            Bytes::from(postcard::to_allocvec(&self.0).unwrap())
        }
        fn restore(&mut self, _index: LogIndex, data: &Bytes) -> Result<(), RecoverError> {
            self.0 = postcard::from_bytes(data)
                .map_err(|e| RecoverError::CorruptSnapshot(e.to_string()))?;
            Ok(())
        }
    }

    fn addrs(port: u16) -> MemberAddrs {
        MemberAddrs {
            peer_addr: SocketAddr::from(([127, 0, 0, 1], port)),
            client_addr: SocketAddr::from(([127, 0, 0, 1], port + 1)),
        }
    }

    #[test]
    fn directory_commands_are_applied_and_kept_in_snapshots() {
        let (mut machine, watch) = WithDirectory::new(Echo(Vec::new()));
        // An inner command passes through; an empty directory leaves the
        // snapshot format alone.
        machine.apply(1, &Bytes::from_static(b"\x01inner"));
        assert_eq!(machine.inner.0.len(), 1);
        assert_eq!(machine.snapshot(), machine.inner.snapshot());
        machine.apply(
            2,
            &DirectoryCommand::Add {
                id: 4,
                addrs: addrs(7000),
            }
            .encode(),
        );
        machine.apply(3, &DirectoryCommand::Forget { id: 2 }.encode());
        assert_eq!(
            machine.inner.0.len(),
            1,
            "directory commands stay out of the inner machine"
        );
        assert_eq!(watch.borrow().added.get(&4), Some(&addrs(7000)));
        let seeds: BTreeMap<NodeId, MemberAddrs> =
            [(1, addrs(6000)), (2, addrs(6002))].into_iter().collect();
        let all = watch.borrow().addresses(&seeds);
        assert_eq!(all.keys().copied().collect::<Vec<_>>(), vec![1, 4]);

        let (mut copy, copy_watch) = WithDirectory::new(Echo(Vec::new()));
        copy.restore(3, &machine.snapshot()).unwrap();
        assert_eq!(*copy_watch.borrow(), *watch.borrow());
        assert_eq!(copy.inner.0, machine.inner.0);
        // An old snapshot (no directory) restores into an empty book.
        let (mut old, old_watch) = WithDirectory::new(Echo(Vec::new()));
        old.restore(1, &machine.inner.snapshot()).unwrap();
        assert_eq!(*old_watch.borrow(), Directory::default());
        assert_eq!(old.inner.0.len(), 1);
        // A mangled directory command is ignored, not applied to the inner machine.
        let mut bad = MAGIC.to_vec();
        bad.push(0xff);
        machine.apply(4, &Bytes::from(bad));
        assert_eq!(machine.inner.0.len(), 1);
    }

    #[test]
    fn magic_is_not_a_postcard_integer() {
        assert!(postcard::from_bytes::<u64>(&MAGIC).is_err());
        assert!(postcard::from_bytes::<(u64, u64)>(&MAGIC).is_err());
    }

    #[test]
    fn secrets_compare_whole() {
        assert!(same_secret("abc", "abc"));
        assert!(!same_secret("abc", "abd"));
        assert!(!same_secret("abc", "abcd"));
    }
}
