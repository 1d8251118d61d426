//! [`ZabCore`]: one ZAB server. Holds the durable state (`acceptedEpoch`,
//! `currentEpoch`, the history), the role, and the output batch; implements
//! [`Core`] by dispatching to the phase modules.

use consensus_api::{
    decode_hard_state, encode_postcard, Bytes, Core, CoreConfig, Entry, InitialState, LogIndex,
    Membership, NodeId, Payload, PeerProgress, Ready, RecoverError, Rejected, Role as StatusRole,
    Snapshot, Status, Ticket, TicketCounter,
};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::election::Election;
use crate::history::History;
use crate::message::Message;
use crate::reconfig::ConfigLog;
use crate::role::{FollowerProgress, LeaderPhase, ReadOrigin, Role, Stage};
use crate::snapshot::SnapshotMeta;
use crate::zxid::Zxid;

/// The persistent epochs of the paper (section IV-A): `acceptedEpoch`, the
/// epoch of the last NEWEPOCH / LEADERINFO accepted, and `currentEpoch`, the
/// epoch of the last NEWLEADER acked. Stored as the contract's hard state
/// (postcard-encoded).
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HardState {
    /// `acceptedEpoch`.
    pub accepted_epoch: u64,
    /// `currentEpoch`.
    pub current_epoch: u64,
}

impl HardState {
    /// Encodes for [`Ready::hard_state`].
    pub fn encode(&self) -> Bytes {
        encode_postcard(self)
    }

    /// Decodes a stored hard state.
    pub fn decode(bytes: &[u8]) -> Result<HardState, RecoverError> {
        decode_hard_state(bytes)
    }
}

/// The history with its commit point, configuration log, snapshot, and the
/// writes not yet handed out in a [`Ready`].
#[derive(Debug)]
pub(crate) struct Log {
    /// Entries above the snapshot, with zxids.
    pub history: History,
    /// Configurations of the history.
    pub configs: ConfigLog,
    /// The latest snapshot (taken or received), sent to lagging followers.
    pub snapshot: Option<Snapshot>,
    /// Highest index known committed.
    pub commit_index: LogIndex,
    /// Highest index handed out in `Ready::committed` (or installed).
    pub applied_index: LogIndex,
    /// Pending: drop stored entries from here.
    pub truncate_from: Option<LogIndex>,
    /// Pending: entries to store.
    pub append: Vec<Entry>,
    /// Pending: a received snapshot to install.
    pub install: Option<Snapshot>,
    /// Last index stored once the previous `Ready` is durable.
    pub persisted_last: LogIndex,
}

impl Log {
    /// The configuration in force.
    pub fn membership(&self) -> Membership {
        self.configs.in_force(self.commit_index)
    }

    /// Appends one entry (durable with the next `Ready`).
    pub fn append(&mut self, entry: Entry) -> Zxid {
        let change = match &entry.payload {
            Payload::Membership(target) => Some((entry.index, target.clone())),
            _ => None,
        };
        self.append.push(entry.clone());
        let zxid = self.history.append(entry);
        if let Some((index, target)) = change {
            self.configs.record(index, target, zxid);
        }
        zxid
    }

    /// Drops entries `>= from` (never committed ones).
    pub fn truncate_from(&mut self, from: LogIndex) {
        assert!(
            from > self.commit_index,
            "committed proposals are never truncated"
        );
        self.history.truncate_from(from);
        self.configs.truncate_from(from);
        self.append.retain(|entry| entry.index < from);
        if from <= self.persisted_last {
            self.truncate_from = Some(self.truncate_from.map_or(from, |t| t.min(from)));
        }
    }

    /// Replaces the history by a received snapshot.
    pub fn install(&mut self, snapshot: Snapshot, zxid: Zxid, config_zxid: Zxid) {
        assert!(
            snapshot.index > self.applied_index,
            "a snapshot never rolls back"
        );
        let index = snapshot.index;
        self.history.reset(index, zxid);
        self.configs.reset(snapshot.membership.clone(), config_zxid);
        self.append.clear();
        if self.persisted_last > index {
            self.truncate_from = Some(self.truncate_from.map_or(index + 1, |t| t.min(index + 1)));
        }
        self.commit_index = self.commit_index.max(index);
        self.applied_index = index;
        self.snapshot = Some(snapshot.clone());
        self.install = Some(snapshot);
    }

    /// Zxid of the commit point.
    pub fn commit_zxid(&self) -> Zxid {
        self.history
            .zxid_at(self.commit_index)
            .unwrap_or(self.history.base_zxid())
    }
}

/// Messages and finished tickets waiting for the next [`Ready`].
#[derive(Debug, Default)]
pub(crate) struct Output {
    /// The hard state changed.
    pub hard_state_dirty: bool,
    /// Messages to send once the writes are durable.
    pub messages: Vec<(NodeId, Message)>,
    /// Finished tickets.
    pub completed: Vec<(Ticket, Result<LogIndex, Rejected>)>,
}

impl Output {
    /// Queues a message.
    pub fn send(&mut self, to: NodeId, message: Message) {
        self.messages.push((to, message));
    }
}

/// One ZAB server as a deterministic sans-IO [`Core`].
///
/// Configuration ([`CoreConfig`]) as used by ZAB:
/// * `election_timeout_ticks_min..max`: a follower that hears nothing from
///   its leader for a random timeout in this range goes back to election; a
///   leader that has not heard from a quorum of synced followers for
///   `election_timeout_ticks_min` abandons leadership (ZooKeeper's
///   `syncLimit`, always on: `check_quorum` is implied); a prospective leader
///   not established within twice a random timeout gives up (`initLimit`).
/// * `heartbeat_interval_ticks`: pings, retransmissions, vote re-sends, and
///   the Fast Leader Election "finalize wait".
/// * `batch_entries_max`, `batch_bytes_max`, `inflight_messages_max`:
///   batching and pipelining of DIFF / PROPOSAL messages per follower.
/// * `uncommitted_entries_max`: `Rejected::Overloaded` beyond it.
/// * `snapshot_chunk_bytes`: SNAP chunk size.
/// * `pre_vote` is not used: a looking server never disturbs an established
///   leader (followers just answer it with their current vote).
pub struct ZabCore {
    pub(crate) config: CoreConfig,
    pub(crate) rng: ChaCha8Rng,
    pub(crate) hard: HardState,
    pub(crate) log: Log,
    pub(crate) role: Role,
    /// Fast Leader Election's `logicalclock` (volatile, as in ZooKeeper).
    pub(crate) logical_clock: u64,
    /// Ticks since this incarnation started.
    pub(crate) now: u64,
    pub(crate) out: Output,
    pub(crate) ticket_counter: TicketCounter,
    ready_number: u64,
}

impl std::fmt::Debug for ZabCore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ZabCore")
            .field("id", &self.config.id)
            .field("hard", &self.hard)
            .field("last", &self.log.history.last_zxid())
            .field("commit", &self.log.commit_index)
            .field("role", &self.role)
            .finish()
    }
}

/// Highest index (snapshot or entry) a store may hand to `restore`.
const RESTORED_INDEX_MAX: LogIndex = 1 << 63;

impl ZabCore {
    /// This node.
    pub fn id(&self) -> NodeId {
        self.config.id
    }

    /// The persistent epochs.
    pub fn hard_state(&self) -> HardState {
        self.hard
    }

    /// The last zxid of the history.
    pub fn last_zxid(&self) -> Zxid {
        self.log.history.last_zxid()
    }

    /// Zxid of the commit point.
    pub fn commit_zxid(&self) -> Zxid {
        self.log.commit_zxid()
    }

    /// Zxid of the entry at `index`, when held (or the snapshot's).
    pub fn zxid_at(&self, index: LogIndex) -> Option<Zxid> {
        self.log.history.zxid_at(index)
    }

    /// The epoch this node leads or follows, once known.
    pub fn following_epoch(&self) -> Option<u64> {
        match &self.role {
            Role::Looking(_) => None,
            Role::Following(f) => f.phase.epoch(),
            Role::Leading(l) => (l.epoch > 0).then_some(l.epoch),
        }
    }

    /// A short name of the current state (`looking`, `following 2
    /// (broadcast 3)`, `leading (discovery)` ...), for golden tests.
    pub fn state_name(&self) -> String {
        match &self.role {
            Role::Looking(_) => format!("looking round={}", self.logical_clock),
            Role::Following(f) => match f.phase {
                crate::role::FollowerPhase::Discovery => {
                    format!("following {} discovery", f.leader)
                }
                crate::role::FollowerPhase::Synchronization { epoch } => {
                    format!("following {} sync epoch={epoch}", f.leader)
                }
                crate::role::FollowerPhase::Broadcast { epoch } => {
                    format!("following {} broadcast epoch={epoch}", f.leader)
                }
            },
            Role::Leading(l) => {
                let phase = match l.phase {
                    LeaderPhase::Discovery => "discovery",
                    LeaderPhase::EpochAck => "epoch-ack",
                    LeaderPhase::Synchronization => "sync",
                    LeaderPhase::Broadcast => "broadcast",
                };
                format!("leading {phase} epoch={}", l.epoch)
            }
        }
    }

    pub(crate) fn send(&mut self, to: NodeId, message: Message) {
        self.out.send(to, message);
    }

    /// A random timeout in `election_timeout_ticks_min..max`.
    pub(crate) fn random_timeout(&mut self) -> u64 {
        self.config.random_election_timeout(&mut self.rng)
    }

    /// Leader: the progress of follower `from`, which answered in `epoch`
    /// (see [`Role::heard_from`]).
    pub(crate) fn heard_from(&mut self, from: NodeId, epoch: u64) -> Option<&mut FollowerProgress> {
        self.role
            .heard_from(from, epoch, LeaderPhase::Discovery, self.now)
    }

    /// Leader: as [`heard_from`](Self::heard_from), for an answer that
    /// counts only from the synchronization phase on (ACK, ACK of NEWLEADER).
    pub(crate) fn heard_from_syncing(
        &mut self,
        from: NodeId,
        epoch: u64,
    ) -> Option<&mut FollowerProgress> {
        self.role
            .heard_from(from, epoch, LeaderPhase::Synchronization, self.now)
    }

    pub(crate) fn heartbeat_ticks(&self) -> u64 {
        self.config.heartbeat_interval_ticks.max(1)
    }

    pub(crate) fn set_accepted_epoch(&mut self, epoch: u64) {
        assert!(
            epoch >= self.hard.accepted_epoch,
            "acceptedEpoch never decreases"
        );
        self.hard.accepted_epoch = epoch;
        self.out.hard_state_dirty = true;
    }

    pub(crate) fn set_current_epoch(&mut self, epoch: u64) {
        assert!(
            epoch <= self.hard.accepted_epoch,
            "currentEpoch <= acceptedEpoch"
        );
        assert!(
            epoch >= self.hard.current_epoch,
            "currentEpoch never decreases"
        );
        self.hard.current_epoch = epoch;
        self.out.hard_state_dirty = true;
    }

    /// Leaves the current role, finishing what it owed callers: committed
    /// proposals succeed, others end with `OutcomeUnknown`, reads fail.
    pub(crate) fn leave_role(&mut self) {
        let old = std::mem::replace(&mut self.role, Role::Looking(Election::idle()));
        match old {
            Role::Leading(leader) => {
                for (index, ticket) in leader.proposals {
                    let result = if index <= self.log.commit_index {
                        Ok(index)
                    } else {
                        Err(Rejected::OutcomeUnknown { hint: None })
                    };
                    self.out.completed.push((ticket, result));
                }
                for read in leader.reads {
                    if let ReadOrigin::Local(ticket) = read.origin {
                        self.out
                            .completed
                            .push((ticket, Err(Rejected::Unavailable)));
                    }
                }
            }
            Role::Following(follower) => {
                for read in follower.reads.into_values() {
                    self.out
                        .completed
                        .push((read.ticket, Err(Rejected::Unavailable)));
                }
            }
            Role::Looking(_) => {}
        }
    }

    /// The snapshot's index, zxid and membership (or the empty history of
    /// `config.initial_membership`).
    fn restore_base(
        config: &CoreConfig,
        state: &InitialState,
    ) -> Result<(LogIndex, Zxid, Membership, Zxid), RecoverError> {
        match &state.snapshot {
            Some(snapshot) => {
                let meta = SnapshotMeta::decode(&snapshot.protocol_state)?;
                if snapshot.index > 0 && meta.zxid.epoch() != snapshot.epoch {
                    return Err(RecoverError::CorruptSnapshot(format!(
                        "snapshot zxid {} does not match its epoch {}",
                        meta.zxid, snapshot.epoch
                    )));
                }
                Ok((
                    snapshot.index,
                    meta.zxid,
                    snapshot.membership.clone(),
                    meta.config_zxid,
                ))
            }
            None => {
                config
                    .initial_membership
                    .validate()
                    .map_err(|e| RecoverError::InvalidConfig(e.to_string()))?;
                Ok((0, Zxid::ZERO, config.initial_membership.clone(), Zxid::ZERO))
            }
        }
    }

    fn restore_inner(config: CoreConfig, state: InitialState) -> Result<ZabCore, RecoverError> {
        config.validate()?;
        let hard = match &state.hard_state {
            Some(bytes) => HardState::decode(bytes)?,
            None => HardState::default(),
        };
        if hard.current_epoch > hard.accepted_epoch {
            return Err(RecoverError::CorruptHardState(format!(
                "currentEpoch {} above acceptedEpoch {}",
                hard.current_epoch, hard.accepted_epoch
            )));
        }
        let (base_index, base_zxid, base_membership, base_version) =
            Self::restore_base(&config, &state)?;
        // No real log gets above 2^63 entries; the index arithmetic needs room
        // above the last one (found by zab/tests/bad_input.rs: a snapshot at
        // u64::MAX overflowed `base_index + 1`).
        let last_stored = state.entries.iter().map(|e| e.index).max().unwrap_or(0);
        if base_index.max(last_stored) > RESTORED_INDEX_MAX {
            return Err(RecoverError::InconsistentLog(format!(
                "stored index {} is above {RESTORED_INDEX_MAX}: corrupt",
                base_index.max(last_stored)
            )));
        }
        let entries: Vec<Entry> = state
            .entries
            .into_iter()
            .filter(|e| e.index > base_index)
            .collect();
        let history = History::restore(base_index, base_zxid, entries)
            .map_err(|e| RecoverError::InconsistentLog(e.0))?;
        let mut configs = ConfigLog::new(base_membership, base_version);
        for index in base_index + 1..=history.last_index() {
            if let Some(Payload::Membership(target)) = history.entry(index).map(|e| &e.payload) {
                let zxid = history.zxid_at(index).expect("held");
                configs.record(index, target.clone(), zxid);
            }
        }
        if history.last_zxid().epoch() > hard.accepted_epoch {
            return Err(RecoverError::InconsistentLog(format!(
                "history ends at {} beyond acceptedEpoch {}",
                history.last_zxid(),
                hard.accepted_epoch
            )));
        }
        let persisted_last = history.last_index();
        let log = Log {
            history,
            configs,
            snapshot: state.snapshot,
            commit_index: base_index,
            applied_index: base_index,
            truncate_from: None,
            append: Vec::new(),
            install: None,
            persisted_last,
        };
        let rng = ChaCha8Rng::seed_from_u64(config.seed);
        let mut core = ZabCore {
            config,
            rng,
            hard,
            log,
            role: Role::Looking(Election::idle()),
            logical_clock: 0,
            now: 0,
            out: Output::default(),
            ticket_counter: TicketCounter::default(),
            ready_number: 0,
        };
        core.become_looking();
        core.check_invariants();
        Ok(core)
    }

    /// Finishes tickets whose work is applied.
    fn complete_applied(&mut self) {
        let applied = self.log.applied_index;
        let applied_zxid = self
            .log
            .history
            .zxid_at(applied)
            .unwrap_or(self.log.history.base_zxid());
        match &mut self.role {
            Role::Leading(leader) => {
                let rest = leader.proposals.split_off(&(applied + 1));
                for (index, ticket) in std::mem::replace(&mut leader.proposals, rest) {
                    self.out.completed.push((ticket, Ok(index)));
                }
                leader.reads.retain(|read| match read.origin {
                    ReadOrigin::Local(ticket) if read.confirmed && read.index <= applied => {
                        self.out.completed.push((ticket, Ok(read.index)));
                        false
                    }
                    _ => true,
                });
            }
            Role::Following(follower) => {
                let history = &self.log.history;
                follower.reads.retain(|_, read| match read.target {
                    Some(target) if target <= applied_zxid => {
                        let index = history.floor_index(target).unwrap_or(applied).min(applied);
                        self.out.completed.push((read.ticket, Ok(index)));
                        false
                    }
                    _ => true,
                });
            }
            Role::Looking(_) => {}
        }
    }

    /// Cheap invariants after every input (O(n) ones in debug builds only
    /// and on a bounded tail).
    pub fn check_invariants(&self) {
        let log = &self.log;
        assert!(
            self.hard.current_epoch <= self.hard.accepted_epoch,
            "currentEpoch <= acceptedEpoch"
        );
        assert!(
            log.applied_index <= log.commit_index,
            "applied <= committed"
        );
        assert!(
            log.commit_index <= log.history.last_index(),
            "committed entries are held"
        );
        assert!(
            log.history.base_index() <= log.applied_index,
            "snapshots cover applied entries only"
        );
        assert!(
            log.history.last_zxid().epoch() <= self.hard.accepted_epoch,
            "no proposal from an epoch not accepted"
        );
        match &self.role {
            Role::Looking(_) => {}
            Role::Following(f) => {
                if let Some(epoch) = f.phase.epoch() {
                    assert_eq!(
                        epoch, self.hard.accepted_epoch,
                        "a follower follows its acceptedEpoch"
                    );
                }
                if let crate::role::FollowerPhase::Broadcast { epoch } = f.phase {
                    assert_eq!(
                        epoch, self.hard.current_epoch,
                        "broadcast only after NEWLEADER"
                    );
                }
            }
            Role::Leading(l) => {
                if l.phase >= LeaderPhase::EpochAck {
                    assert_eq!(
                        l.epoch, self.hard.accepted_epoch,
                        "the leader accepted its own epoch"
                    );
                }
                if l.phase >= LeaderPhase::Synchronization {
                    assert_eq!(
                        l.epoch, self.hard.current_epoch,
                        "the leader's epoch is current"
                    );
                }
                let last = log.history.last_index();
                for progress in l.followers.values() {
                    if matches!(progress.stage, Stage::Streaming) {
                        assert!(progress.acked <= progress.sent, "acked <= sent");
                        assert!(progress.sent <= last, "sent <= last");
                    }
                }
            }
        }
        if cfg!(debug_assertions) {
            log.history.check_tail(16);
        }
    }
}

impl Core for ZabCore {
    type Message = Message;

    const PROTOCOL: &'static str = "zab";

    fn restore(config: CoreConfig, state: InitialState) -> Result<Self, RecoverError> {
        Self::restore_inner(config, state)
    }

    /// Epoch 0 with the zxid `0:index` (the history of a cluster that ran
    /// `index` transactions in epoch 0; capped at the 32-bit counter): above
    /// the `0:0` of an empty node, so a node that was not restored never
    /// wins an election against restored ones, and below every zxid the new
    /// cluster's first leader (epoch 1) assigns.
    fn seed_snapshot(index: LogIndex, membership: Membership, data: Bytes) -> Snapshot {
        let meta = SnapshotMeta {
            zxid: Zxid::new(0, index.min(Zxid::PART_MAX)),
            config_zxid: Zxid::ZERO,
        };
        Snapshot {
            index,
            epoch: 0,
            membership,
            protocol_state: meta.encode(),
            data,
        }
    }

    fn step(&mut self, from: NodeId, message: Message) {
        if from == self.id() || from == 0 {
            tracing::debug!(
                node = self.id(),
                from,
                "dropping a message from myself or node 0"
            );
            return;
        }
        match message {
            Message::Vote(m) => self.on_vote(from, m),
            Message::FollowerInfo(m) => self.on_follower_info(from, m),
            Message::LeaderInfo(m) => self.on_leader_info(from, m),
            Message::AckEpoch(m) => self.on_ack_epoch(from, m),
            Message::Trunc(m) => self.on_trunc(from, m),
            Message::Diff(m) => self.on_diff(from, m),
            Message::Snap(m) => self.on_snap(from, m),
            Message::AckSnap(m) => self.on_ack_snap(from, m),
            Message::NewLeader(m) => self.on_new_leader(from, m),
            Message::AckNewLeader(m) => self.on_ack_new_leader(from, m),
            Message::Proposal(m) => self.on_proposal(from, m),
            Message::Ack(m) => self.on_ack(from, m),
            Message::Commit(m) => self.on_commit(from, m),
            Message::Ping(m) => self.on_ping(from, m),
            Message::PingResponse(m) => self.on_ping_response(from, m),
            Message::Sync(m) => self.on_sync(from, m),
            Message::SyncResponse(m) => self.on_sync_response(from, m),
        }
        self.check_invariants();
    }

    fn tick(&mut self) {
        self.now += 1;
        match &self.role {
            Role::Looking(_) => self.tick_election(),
            Role::Following(_) => self.tick_follower(),
            Role::Leading(_) => self.tick_leader(),
        }
        self.check_invariants();
    }

    fn propose(&mut self, command: Bytes) -> Result<Ticket, Rejected> {
        let result = self.propose_payload(Payload::Command(command));
        self.check_invariants();
        result
    }

    fn read_barrier(&mut self) -> Result<Ticket, Rejected> {
        let result = self.start_read();
        self.check_invariants();
        result
    }

    fn change_membership(&mut self, to: Membership) -> Result<Ticket, Rejected> {
        let result = self.start_reconfig(to);
        self.check_invariants();
        result
    }

    fn compact(&mut self, applied_index: LogIndex, data: Bytes) -> Result<Snapshot, Rejected> {
        let result = self.take_snapshot(applied_index, data);
        self.check_invariants();
        result
    }

    fn ready(&mut self) -> Option<Ready<Message>> {
        self.leader_flush();
        let log = &mut self.log;
        let committed: Vec<Entry> = if log.commit_index > log.applied_index {
            log.history
                .range(log.applied_index + 1, log.commit_index)
                .cloned()
                .collect()
        } else {
            Vec::new()
        };
        debug_assert_eq!(
            committed.len() as u64,
            log.commit_index - log.applied_index,
            "committed entries are contiguous and held"
        );
        log.applied_index = log.commit_index;
        self.complete_applied();
        let mut ready = Ready::new(self.ready_number + 1);
        let epochs_changed = self.out.hard_state_dirty;
        if self.out.hard_state_dirty {
            ready.hard_state = Some(self.hard.encode());
            self.out.hard_state_dirty = false;
        }
        ready.truncate_from = self.log.truncate_from.take();
        ready.append = std::mem::take(&mut self.log.append);
        ready.snapshot = self.log.install.take();
        ready.messages = std::mem::take(&mut self.out.messages);
        let broadcasting =
            matches!(&self.role, Role::Leading(l) if l.phase == LeaderPhase::Broadcast);
        if broadcasting && !epochs_changed {
            // An established leader's PROPOSALs and COMMITs may leave before
            // its own history write is durable, as ZooKeeper's leader does
            // (it logs and sends in parallel): they promise nothing about
            // the leader's disk, and its own ACK is counted only after the
            // driver has synced this batch (no follower ACK reaches the core
            // before that).
            ready.early_messages = ready.messages.len();
        }
        ready.committed = committed;
        ready.completed = std::mem::take(&mut self.out.completed);
        ready.must_sync = ready.has_writes();
        self.log.persisted_last = self.log.history.last_index();
        self.check_invariants();
        if ready.is_empty() {
            return None;
        }
        self.ready_number += 1;
        Some(ready)
    }

    fn status(&self) -> Status {
        let membership = self.log.membership();
        let learner = membership.is_learner(self.id());
        let (role, leader) = match &self.role {
            Role::Looking(_) => (StatusRole::Candidate, None),
            Role::Following(f) => (StatusRole::Follower, Some(f.leader)),
            Role::Leading(l) if l.phase == LeaderPhase::Broadcast => {
                (StatusRole::Leader, Some(self.id()))
            }
            Role::Leading(_) => (StatusRole::Candidate, None),
        };
        let role = if learner && role != StatusRole::Leader {
            StatusRole::Learner
        } else {
            role
        };
        let mut peers = std::collections::BTreeMap::new();
        if let Role::Leading(l) = &self.role {
            if l.phase == LeaderPhase::Broadcast {
                for (id, progress) in &l.followers {
                    let match_index = match progress.stage {
                        Stage::Streaming => progress.acked,
                        _ => 0,
                    };
                    peers.insert(
                        *id,
                        PeerProgress {
                            match_index,
                            ticks_since_heard: self.now.saturating_sub(progress.heard_at),
                        },
                    );
                }
            }
        }
        Status {
            id: self.id(),
            role,
            leader,
            epoch: self.hard.accepted_epoch,
            commit_index: self.log.commit_index,
            applied_index: self.log.applied_index,
            last_index: self.log.history.last_index(),
            snapshot_index: self.log.history.base_index(),
            membership,
            peers,
        }
    }
}
