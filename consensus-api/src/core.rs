//! The sans-IO contract every protocol implements: [`Core`] and its output
//! batch [`Ready`].

use std::fmt::{Debug, Display};

use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::error::{RecoverError, Rejected};
use crate::membership::Membership;
use crate::types::{Entry, LogIndex, NodeId, Snapshot, Status, Ticket};

/// How a message should travel, so bulk data never delays control traffic.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum MessageClass {
    /// Votes, heartbeats, acknowledgements, ordinary replication: small and
    /// latency-sensitive. Sent in order on the peer's control stream.
    Control,
    /// Snapshot chunks and large catch-up batches. A transport sends these
    /// on their own streams so they never block `Control` messages
    /// (no head-of-line blocking).
    Bulk,
}

/// The wire message of one protocol. Only what crosses the network is a
/// message: local inputs (ticks, proposals) are methods of [`Core`].
///
/// `Display` must print one compact line in paper vocabulary, e.g.
/// `Prepare b=1.1 slot=4`; golden tests print it.
pub trait ProtocolMessage:
    Serialize + DeserializeOwned + Clone + Debug + Display + Send + Sync + 'static
{
    /// The class of this message (default: [`MessageClass::Control`]).
    fn class(&self) -> MessageClass {
        MessageClass::Control
    }
}

/// Settings shared by every protocol, in logical ticks and counts, so that
/// all four protocols can be configured identically (the benchmarks rely on
/// this). A protocol documents which fields it uses and how.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CoreConfig {
    /// This node.
    pub id: NodeId,
    /// The membership to start with when the store holds no state (a brand
    /// new cluster). Ignored when the store holds a snapshot or log entries
    /// that carry membership; every node of a new cluster must be given the
    /// same value.
    pub initial_membership: Membership,
    /// Seed of the core's own RNG (randomized timeouts, backoff). The only
    /// source of randomness a core may use.
    pub seed: u64,
    /// Lower bound of the randomized election / failure-detection timeout.
    pub election_timeout_ticks_min: u64,
    /// Upper bound (exclusive) of the randomized election timeout.
    pub election_timeout_ticks_max: u64,
    /// Interval between leader heartbeats (pings).
    pub heartbeat_interval_ticks: u64,
    /// Most entries in one replication message.
    pub batch_entries_max: usize,
    /// Most payload bytes in one replication message (at least one entry is
    /// always sent, however large).
    pub batch_bytes_max: usize,
    /// Most unacknowledged replication messages in flight to one peer
    /// (pipelining window).
    pub inflight_messages_max: usize,
    /// Most entries a leader appends beyond its commit index before it
    /// answers [`Rejected::Overloaded`].
    pub uncommitted_entries_max: usize,
    /// Size of one snapshot chunk on the wire.
    pub snapshot_chunk_bytes: usize,
    /// Raft-style pre-vote (and its equivalents): a node that cannot win
    /// does not disturb the cluster.
    pub pre_vote: bool,
    /// A leader that has not heard from a quorum within an election timeout
    /// steps down (and rejects proposals with [`Rejected::Unavailable`]).
    pub check_quorum: bool,
}

impl CoreConfig {
    /// Defaults equivalent to a 150-300 ms election timeout and a 50 ms
    /// heartbeat at a 10 ms tick: what the simulator and the cores' tests
    /// run (their recorded seeds and traces depend on it). Deployments take
    /// their timing from `consensus::Tuning` (150-250 ms by default).
    pub fn new(id: NodeId, initial_membership: Membership) -> Self {
        CoreConfig {
            id,
            initial_membership,
            seed: id,
            election_timeout_ticks_min: 15,
            election_timeout_ticks_max: 30,
            heartbeat_interval_ticks: 5,
            batch_entries_max: 1024,
            batch_bytes_max: 1 << 20,
            inflight_messages_max: 64,
            uncommitted_entries_max: 50_000,
            snapshot_chunk_bytes: 256 * 1024,
            pre_vote: true,
            check_quorum: true,
        }
    }
}

/// What a store returned on startup; the only thing a core is rebuilt from.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct InitialState {
    /// The latest hard state written (protocol-defined bytes), if any.
    pub hard_state: Option<Bytes>,
    /// The latest snapshot installed or taken, if any.
    pub snapshot: Option<Snapshot>,
    /// Log entries above the snapshot, in increasing index order. Dense for
    /// Raft / Multi-Paxos / ZAB; may have gaps for classic Paxos (slots
    /// accepted out of order).
    pub entries: Vec<Entry>,
}

/// The sans-IO contract. A core never touches a socket, a file, a clock, a
/// thread or a global RNG; it is driven by the runtime or the simulator.
///
/// Rules every implementation obeys:
/// * **Deterministic**: the same inputs in the same order give the same
///   outputs; randomness only from [`CoreConfig::seed`]; no hash-map
///   iteration order reaching the output.
/// * **Durable before visible**: nothing in [`Ready::messages`] depends on
///   state that is not in the `hard_state` / `append` / `snapshot` of the same
///   or an earlier `Ready`. Once [`Core::ready`] has returned a batch, the core
///   may assume its writes are durable; the driver must make them durable
///   before it sends that batch's messages and before it feeds the core any
///   further input.
/// * **One planned exception: the leader's write in parallel with
///   replication** (Raft thesis §10.2.1; ZooKeeper's leader and etcd do the
///   same). The first [`Ready::early_messages`] messages of a batch may leave
///   *before* the batch is durable. A core marks only messages that promise
///   nothing about its own disk: an established leader's replication of its
///   own entries (AppendEntries, Accept, PROPOSAL), sent while its hard state
///   is unchanged. Votes, promises, acknowledgements and anything that
///   answers for durable state are never early. The leader still counts
///   itself towards a quorum only once its own write is synced, and that
///   follows from the rule above: the driver feeds no input (so no
///   follower's acknowledgement) to the core until the batch is durable. A
///   crash after the early messages left and before the sync loses the
///   leader's local copy; the entries then survive only if a quorum of
///   other nodes holds them, exactly as if the leader had never had them.
///   A driver that ignores the field (sends everything after the sync) is
///   correct, only slower.
/// * **Committed means durable on a quorum**: an entry in
///   [`Ready::committed`] whose index is below everything the same batch
///   truncates or appends was made durable here by an earlier batch, so
///   the driver may apply it and finish its proposal before this batch's
///   sync ([`handle_ready`](crate::handle_ready) does). A core may hand
///   out, in the batch that writes them, entries committed only by counting
///   that batch's own write (a one-node quorum): those wait for the sync.
/// * **Recovery**: [`Core::restore`] rebuilds the node from an
///   [`InitialState`] and nothing else.
/// * **No panic on input**: `step` drops a stale, malformed or unexpected
///   message (with a `tracing`-style note in the core's own log if it keeps
///   one); only programmer errors (broken internal invariants) panic.
pub trait Core: Send + 'static {
    /// The protocol's wire message.
    type Message: ProtocolMessage;

    /// Protocol name used in transport handshakes and reports
    /// (`"raft"`, `"multipaxos"`, `"paxos"`, `"zab"`).
    const PROTOCOL: &'static str;

    /// Rebuilds a node from its configuration and what its store holds.
    /// With an empty `state`, starts a fresh node of
    /// `config.initial_membership`.
    fn restore(config: CoreConfig, state: InitialState) -> Result<Self, RecoverError>
    where
        Self: Sized;

    /// Handles one message from `from`. Stale or invalid messages are dropped.
    fn step(&mut self, from: NodeId, message: Self::Message);

    /// Advances the logical clock by one tick.
    fn tick(&mut self);

    /// Asks the protocol to replicate `command`. On success the ticket is
    /// finished in a later [`Ready::completed`] with the index at which the
    /// command was committed (in the same `Ready` as, or a later one than, the
    /// committed entry itself), or with an error.
    fn propose(&mut self, command: Bytes) -> Result<Ticket, Rejected>;

    /// Asks for a linearizable read point. The ticket finishes with
    /// `Ok(index)`: a read served from this node's state machine once it has
    /// applied `index` reflects every write committed before this call.
    fn read_barrier(&mut self) -> Result<Ticket, Rejected>;

    /// Asks to move to the stable configuration `to` (through a joint
    /// configuration or the protocol's equivalent). The ticket finishes once
    /// `to` is in force and committed.
    fn change_membership(&mut self, to: Membership) -> Result<Ticket, Rejected>;

    /// The driver's state machine has applied everything up to
    /// `applied_index` (which must not exceed [`Status::applied_index`]) and
    /// serialized itself into `data`. The core records the snapshot (to send
    /// to lagging peers), may drop its in-memory log up to that index, and
    /// returns the complete [`Snapshot`] for the driver to persist with
    /// [`LogStore::save_snapshot`](crate::LogStore::save_snapshot).
    fn compact(&mut self, applied_index: LogIndex, data: Bytes) -> Result<Snapshot, Rejected>;

    /// The snapshot that starts a new cluster of `membership` from a backup:
    /// the state machine state `data`, taken at `index` of some cluster (of
    /// any protocol). Every node of the new cluster stores it before its
    /// first start and [`Core::restore`]s from it; the log continues at
    /// `index + 1` under the protocol's first epoch, so nothing in it
    /// belongs to the cluster it was taken from. The default suits
    /// protocols whose `protocol_state` may be empty: epoch 0 (below every
    /// real term, ballot or epoch) and no protocol state.
    fn seed_snapshot(index: LogIndex, membership: Membership, data: Bytes) -> Snapshot
    where
        Self: Sized,
    {
        Snapshot {
            index,
            epoch: 0,
            membership,
            protocol_state: Bytes::new(),
            data,
        }
    }

    /// Asks the leader to hand leadership to `to` (Raft TimeoutNow and the
    /// equivalents). Protocols without leaders answer
    /// [`Rejected::Unsupported`].
    fn transfer_leadership(&mut self, to: NodeId) -> Result<(), Rejected> {
        let _ = to;
        Err(Rejected::Unsupported {
            what: "leadership transfer".into(),
        })
    }

    /// Takes all pending output, or `None` when there is none. Ownership of
    /// the batch passes to the caller.
    fn ready(&mut self) -> Option<Ready<Self::Message>>;

    /// A point-in-time report.
    fn status(&self) -> Status;
}

/// Everything a core wants done, in the order the driver must do it:
/// send the first `early_messages` of `messages` (may also wait), apply the
/// `committed` entries below the first index this batch writes and finish
/// the proposals they answer (may also wait), persist (`snapshot`,
/// `truncate_from`, `append`, `hard_state`, then one fdatasync when
/// `must_sync`), restore the state machine from `snapshot`, send the other
/// `messages`, apply the rest of `committed`, finish the rest of
/// `completed`. A batch with a `snapshot` applies and finishes nothing
/// before its sync.
#[derive(Debug, Clone, PartialEq)]
pub struct Ready<M> {
    /// Increasing number of this batch within one incarnation of the core.
    pub number: u64,
    /// True when this batch changes durable state (hard state, log or
    /// snapshot) and needs an fdatasync before its messages go out.
    pub must_sync: bool,
    /// New hard state (protocol-defined bytes: term and vote, promised
    /// ballot, epochs ...); replaces the previous one.
    pub hard_state: Option<Bytes>,
    /// Drop every stored entry with index >= this first (an uncommitted
    /// suffix being overwritten).
    pub truncate_from: Option<LogIndex>,
    /// Entries to store, in increasing index order. An entry whose index is
    /// already stored replaces it (classic Paxos re-accepting a slot under a
    /// higher ballot); indexes may skip (classic Paxos); for log-based
    /// protocols they continue the log after `truncate_from`.
    pub append: Vec<Entry>,
    /// A snapshot received from another node: persist it (replacing any
    /// older one), drop stored entries with index <= `snapshot.index`, and
    /// restore the state machine from it before applying `committed`.
    pub snapshot: Option<Snapshot>,
    /// Messages to send, only after the writes above are durable — except
    /// the first [`Ready::early_messages`], which may leave first.
    pub messages: Vec<(NodeId, M)>,
    /// How many messages at the front of [`Ready::messages`] may be sent
    /// before this batch's writes are durable (see the
    /// [`Core`] contract: the leader's write in parallel with replication).
    /// At most `messages.len()`; 0 keeps the strict order.
    pub early_messages: usize,
    /// Newly committed entries, in increasing index order, contiguous, each
    /// handed out exactly once per incarnation; apply them in order.
    pub committed: Vec<Entry>,
    /// Finished tickets: `Ok(index)` for proposals (the committed index),
    /// read barriers (the read index) and membership changes.
    pub completed: Vec<(Ticket, Result<LogIndex, Rejected>)>,
}

impl<M> Ready<M> {
    /// An empty batch with the given number.
    pub fn new(number: u64) -> Self {
        Ready {
            number,
            must_sync: false,
            hard_state: None,
            truncate_from: None,
            append: Vec::new(),
            snapshot: None,
            messages: Vec::new(),
            early_messages: 0,
            committed: Vec::new(),
            completed: Vec::new(),
        }
    }

    /// True when the batch asks for nothing at all.
    pub fn is_empty(&self) -> bool {
        !self.must_sync
            && self.hard_state.is_none()
            && self.truncate_from.is_none()
            && self.append.is_empty()
            && self.snapshot.is_none()
            && self.messages.is_empty()
            && self.committed.is_empty()
            && self.completed.is_empty()
    }

    /// True when the batch changes durable state.
    pub fn has_writes(&self) -> bool {
        self.hard_state.is_some()
            || self.truncate_from.is_some()
            || !self.append.is_empty()
            || self.snapshot.is_some()
    }

    /// Removes and returns the messages that may leave before the batch is
    /// durable (the first [`Ready::early_messages`]); the rest stay.
    pub fn take_early_messages(&mut self) -> Vec<(NodeId, M)> {
        let early = self.early_messages.min(self.messages.len());
        self.early_messages = 0;
        self.messages.drain(..early).collect()
    }

    /// The durable part of the batch, as a [`LogStore`](crate::LogStore) takes it.
    pub fn write_batch(&self) -> WriteBatch<'_> {
        WriteBatch {
            hard_state: self.hard_state.as_ref(),
            truncate_from: self.truncate_from,
            append: &self.append,
            snapshot: self.snapshot.as_ref(),
        }
    }
}

/// The durable part of one [`Ready`], borrowed. Applied by a store in this
/// order: `snapshot` (drops entries <= its index), `truncate_from`, `append`,
/// `hard_state`. Written as one batch: a crash leaves either nothing of a
/// synced batch missing, or (before the sync) any prefix of its records.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WriteBatch<'a> {
    /// New hard state, replacing the previous.
    pub hard_state: Option<&'a Bytes>,
    /// Drop entries with index >= this.
    pub truncate_from: Option<LogIndex>,
    /// Entries to store (replacing any stored entry of the same index).
    pub append: &'a [Entry],
    /// A snapshot to install.
    pub snapshot: Option<&'a Snapshot>,
}

impl WriteBatch<'_> {
    /// True when there is nothing to write.
    pub fn is_empty(&self) -> bool {
        self.hard_state.is_none()
            && self.truncate_from.is_none()
            && self.append.is_empty()
            && self.snapshot.is_none()
    }
}
