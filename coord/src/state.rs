//! The deterministic coordination state machine: the data tree, sessions
//! and their ephemerals, sequence counters, multi-op transactions.
//!
//! Everything here is a pure function of the committed log: no clock, no
//! randomness, only `BTreeMap`s. Time enters only through the log: a
//! session's expiry is the [`Command::ExpireSession`] entry the expirer
//! proposes (see [`crate::expiry`]), guarded by the index of the session's
//! last activity so that a heartbeat committed in between cancels it.
//!
//! Writes of a session carry `(session, sequence)`; the session remembers
//! its last sequence number and response, so a retried write (after a lost
//! reply, possibly through another server) is applied once.

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;
use consensus::{LogIndex, RecoverError};
use serde::{Deserialize, Serialize};

use crate::path;
use crate::types::{
    CoordError, CreateMode, MultiError, Op, OpResult, SessionId, Stat, DATA_BYTES_MAX,
    MULTI_OPS_MAX,
};

/// How many ended sessions the state remembers (with the index they ended
/// at and the ephemerals removed), oldest forgotten first.
pub const ENDED_SESSIONS_KEPT: usize = 1024;

/// Shortest and longest session timeouts the state machine accepts (a
/// server clamps requests into this range).
pub const SESSION_TIMEOUT_MS_MIN: u64 = 100;
/// See [`SESSION_TIMEOUT_MS_MIN`].
pub const SESSION_TIMEOUT_MS_MAX: u64 = 600_000;

/// A log entry of the coordination service.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    /// Opens a session. `secret` is chosen at random by the client; a retry
    /// with the same secret returns the same session (idempotent).
    CreateSession {
        /// Requested timeout (clamped).
        timeout_ms: u64,
        /// The client's secret (also proves ownership on reconnect).
        secret: u64,
    },
    /// Heartbeats: marks each live session active at this index (moves its
    /// deadline on the expirer's clock).
    Touch {
        /// Sessions pinged through the proposing server.
        sessions: Vec<SessionId>,
    },
    /// Ends `session` unless it was active after `last_active`: the expirer
    /// proposes it once the session's deadline passed on its clock.
    ExpireSession {
        /// The session.
        session: SessionId,
        /// The session's last activity index the expirer saw.
        last_active: LogIndex,
    },
    /// A write of a session, applied once per `(session, sequence)`.
    Request {
        /// The session.
        session: SessionId,
        /// Its sequence number (1, 2, ...; a retry reuses it).
        sequence: u64,
        /// The write.
        write: Write,
    },
}

/// A session's write.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Write {
    /// One operation (not `Check`).
    Op(Op),
    /// All-or-nothing transaction.
    Multi(Vec<Op>),
    /// Closes the session: its ephemerals are deleted now.
    Close,
}

impl Command {
    /// Encodes for the log.
    pub fn encode(&self) -> Bytes {
        Bytes::from(postcard::to_allocvec(self).expect("encoding to a Vec cannot fail"))
    }

    /// Decodes a log entry.
    pub fn decode(bytes: &[u8]) -> Option<Command> {
        postcard::from_bytes(bytes).ok()
    }
}

/// Why a session ended.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum EndReason {
    /// Its deadline passed on the expirer's clock.
    Expired,
    /// The client closed it.
    Closed,
}

/// The record of an ended session.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionEnd {
    /// Index of the entry that ended it.
    pub index: LogIndex,
    /// Expired or closed.
    pub reason: EndReason,
    /// Ephemerals deleted, in path order.
    pub removed: Vec<String>,
}

/// What the state machine answers for a command.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum CommandResponse {
    /// A session was opened (or the retry found it).
    SessionCreated {
        /// Its id.
        session: SessionId,
        /// Its timeout after clamping.
        timeout_ms: u64,
    },
    /// Heartbeats applied; these sessions are not alive.
    Touched {
        /// Sessions that are not alive (expired, closed, unknown).
        dead: Vec<SessionId>,
    },
    /// The session ended now.
    Expired(SessionEnd),
    /// The expiry was void: the session was active since, or already gone.
    NotExpired,
    /// A single operation's result.
    Op(Result<OpResult, CoordError>),
    /// A transaction's results.
    Multi(Result<Vec<OpResult>, MultiError>),
    /// The session was closed.
    Closed(SessionEnd),
    /// The command was refused as a whole (expired session, stale retry,
    /// malformed entry).
    Refused(CoordError),
}

impl CommandResponse {
    /// Encodes.
    pub fn encode(&self) -> Bytes {
        Bytes::from(postcard::to_allocvec(self).expect("encoding to a Vec cannot fail"))
    }

    /// Decodes (`Refused(Malformed)` for unknown bytes).
    pub fn decode(bytes: &[u8]) -> CommandResponse {
        postcard::from_bytes(bytes).unwrap_or(CommandResponse::Refused(CoordError::Malformed))
    }
}

/// A response as [`CoordState::apply_any`] has it: decoded, encoded
/// (a retry's kept bytes), or both.
enum Response {
    Value(CommandResponse),
    Encoded(Bytes),
    Both(CommandResponse, Bytes),
}

impl Response {
    fn decoded(self) -> CommandResponse {
        match self {
            Response::Value(response) | Response::Both(response, _) => response,
            Response::Encoded(bytes) => CommandResponse::decode(&bytes),
        }
    }

    fn encoded(self) -> Bytes {
        match self {
            Response::Value(response) => response.encode(),
            Response::Encoded(bytes) | Response::Both(_, bytes) => bytes,
        }
    }
}

/// A change to the tree, as watches see it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Change {
    /// `path` was created.
    Created(String),
    /// `path` was deleted.
    Deleted(String),
    /// `path`'s data was replaced.
    DataChanged(String),
}

/// Side effects of applying one entry, for the server around the state
/// machine (watches, the expirer's clock). Never part of the replicated
/// state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Effect {
    /// A tree change (in application order).
    Changed(Change),
    /// A session was opened.
    SessionStarted {
        /// Its id.
        session: SessionId,
        /// Its timeout.
        timeout_ms: u64,
    },
    /// A live session showed activity (write or heartbeat) at this entry.
    SessionActive(SessionId),
    /// A session ended.
    SessionEnded(SessionId),
}

/// One znode.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Znode {
    /// Its data.
    pub data: Bytes,
    /// Its metadata (`children` and `data_length` kept current).
    pub stat: Stat,
    /// Next sequence number for sequential children (never reused).
    pub next_sequence: u64,
    /// Child names.
    pub children: BTreeSet<String>,
}

impl Znode {
    fn new(data: Bytes, index: LogIndex, owner: SessionId) -> Znode {
        Znode {
            stat: Stat {
                created: index,
                modified: index,
                children_modified: index,
                version: 0,
                children_version: 0,
                ephemeral_owner: owner,
                data_length: data.len() as u32,
                children: 0,
            },
            data,
            next_sequence: 0,
            children: BTreeSet::new(),
        }
    }
}

/// A live session.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionState {
    /// Timeout in milliseconds.
    pub timeout_ms: u64,
    /// The client's secret.
    pub secret: u64,
    /// Index of the last entry that showed activity.
    pub last_active: LogIndex,
    /// Last applied sequence number.
    pub last_sequence: u64,
    /// The response to it (returned again to a retry).
    pub last_response: Bytes,
    /// The session's ephemeral nodes.
    pub ephemerals: BTreeSet<String>,
}

/// The replicated coordination state.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CoordState {
    nodes: BTreeMap<String, Znode>,
    sessions: BTreeMap<SessionId, SessionState>,
    by_secret: BTreeMap<u64, SessionId>,
    ended: BTreeMap<SessionId, SessionEnd>,
    applied: LogIndex,
}

impl Default for CoordState {
    fn default() -> Self {
        CoordState::new()
    }
}

/// A transaction in progress: the changes are computed against a scratch
/// copy of the touched nodes, then committed together.
struct Txn<'a> {
    state: &'a CoordState,
    index: LogIndex,
    session: SessionId,
    /// Overlay: `Some(node)` written, `None` deleted.
    overlay: BTreeMap<String, Option<Znode>>,
    changes: Vec<Change>,
}

impl<'a> Txn<'a> {
    fn get(&self, path: &str) -> Option<&Znode> {
        match self.overlay.get(path) {
            Some(entry) => entry.as_ref(),
            None => self.state.nodes.get(path),
        }
    }

    fn get_mut(&mut self, path: &str) -> Option<&mut Znode> {
        if !self.overlay.contains_key(path) {
            let node = self.state.nodes.get(path)?.clone();
            self.overlay.insert(path.to_string(), Some(node));
        }
        self.overlay.get_mut(path).and_then(Option::as_mut)
    }

    fn check_version(path: &str, node: &Znode, version: Option<u32>) -> Result<(), CoordError> {
        match version {
            Some(expected) if expected != node.stat.version => Err(CoordError::BadVersion {
                path: path.to_string(),
                expected,
                actual: node.stat.version,
            }),
            _ => Ok(()),
        }
    }

    fn apply(&mut self, op: &Op, in_multi: bool) -> Result<OpResult, CoordError> {
        path::validate(op.path())?;
        match op {
            Op::Create { path, data, mode } => self.create(path, data, *mode),
            Op::Delete { path, version } => {
                if path == "/" {
                    return Err(CoordError::BadArguments(
                        "the root cannot be deleted".into(),
                    ));
                }
                let node = self
                    .get(path)
                    .ok_or_else(|| CoordError::NoNode(path.clone()))?;
                Self::check_version(path, node, *version)?;
                if !node.children.is_empty() {
                    return Err(CoordError::NotEmpty(path.clone()));
                }
                self.remove(path);
                Ok(OpResult::Deleted)
            }
            Op::SetData {
                path,
                data,
                version,
            } => {
                if data.len() > DATA_BYTES_MAX {
                    return Err(CoordError::DataTooLarge {
                        size: data.len(),
                        max: DATA_BYTES_MAX,
                    });
                }
                let index = self.index;
                let node = self
                    .get(path)
                    .ok_or_else(|| CoordError::NoNode(path.clone()))?;
                Self::check_version(path, node, *version)?;
                let node = self.get_mut(path).expect("exists");
                node.data = data.clone();
                node.stat.version = node.stat.version.wrapping_add(1);
                node.stat.modified = index;
                node.stat.data_length = data.len() as u32;
                let stat = node.stat;
                self.changes.push(Change::DataChanged(path.clone()));
                Ok(OpResult::Set(stat))
            }
            Op::Check { path, version } => {
                if !in_multi {
                    return Err(CoordError::BadArguments(
                        "check is only valid inside a multi".into(),
                    ));
                }
                let node = self
                    .get(path)
                    .ok_or_else(|| CoordError::NoNode(path.clone()))?;
                Self::check_version(path, node, *version)?;
                Ok(OpResult::Checked)
            }
        }
    }

    fn create(
        &mut self,
        prefix: &str,
        data: &Bytes,
        mode: CreateMode,
    ) -> Result<OpResult, CoordError> {
        if prefix == "/" && !mode.is_sequential() {
            return Err(CoordError::NodeExists("/".into()));
        }
        if data.len() > DATA_BYTES_MAX {
            return Err(CoordError::DataTooLarge {
                size: data.len(),
                max: DATA_BYTES_MAX,
            });
        }
        let parent_path = if prefix == "/" {
            "/"
        } else {
            path::parent(prefix)
        }
        .to_string();
        let index = self.index;
        let owner = if mode.is_ephemeral() { self.session } else { 0 };
        let parent = self
            .get_mut(&parent_path)
            .ok_or_else(|| CoordError::NoNode(parent_path.clone()))?;
        if parent.stat.ephemeral_owner != 0 {
            return Err(CoordError::NoChildrenForEphemerals(parent_path));
        }
        let path = if mode.is_sequential() {
            let sequence = parent.next_sequence;
            let base = if prefix == "/" {
                "/".to_string()
            } else {
                prefix.to_string()
            };
            path::with_sequence(&base, sequence)
        } else {
            prefix.to_string()
        };
        if path.len() > crate::types::PATH_BYTES_MAX {
            return Err(CoordError::BadPath {
                path,
                reason: "longer than 1024 bytes with its sequence suffix".into(),
            });
        }
        if self.get(&path).is_some() {
            return Err(CoordError::NodeExists(path));
        }
        let parent = self.get_mut(&parent_path).expect("parent exists");
        if mode.is_sequential() {
            parent.next_sequence += 1;
        }
        parent.children.insert(path::name(&path).to_string());
        parent.stat.children = parent.children.len() as u32;
        parent.stat.children_version = parent.stat.children_version.wrapping_add(1);
        parent.stat.children_modified = index;
        let node = Znode::new(data.clone(), index, owner);
        let stat = node.stat;
        self.overlay.insert(path.clone(), Some(node));
        self.changes.push(Change::Created(path.clone()));
        Ok(OpResult::Created { path, stat })
    }

    fn remove(&mut self, path: &str) {
        let index = self.index;
        let parent_path = path::parent(path).to_string();
        if let Some(parent) = self.get_mut(&parent_path) {
            parent.children.remove(path::name(path));
            parent.stat.children = parent.children.len() as u32;
            parent.stat.children_version = parent.stat.children_version.wrapping_add(1);
            parent.stat.children_modified = index;
        }
        self.overlay.insert(path.to_string(), None);
        self.changes.push(Change::Deleted(path.to_string()));
    }
}

impl CoordState {
    /// An empty tree (just `/`) with no sessions.
    pub fn new() -> CoordState {
        let mut nodes = BTreeMap::new();
        nodes.insert("/".to_string(), Znode::new(Bytes::new(), 0, 0));
        CoordState {
            nodes,
            sessions: BTreeMap::new(),
            by_secret: BTreeMap::new(),
            ended: BTreeMap::new(),
            applied: 0,
        }
    }

    /// The last index applied.
    pub fn applied(&self) -> LogIndex {
        self.applied
    }

    /// A node.
    pub fn node(&self, path: &str) -> Option<&Znode> {
        self.nodes.get(path)
    }

    /// Every node, in path order.
    pub fn nodes(&self) -> impl Iterator<Item = (&String, &Znode)> {
        self.nodes.iter()
    }

    /// Number of znodes (including `/`).
    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }

    /// A live session.
    pub fn session(&self, id: SessionId) -> Option<&SessionState> {
        self.sessions.get(&id)
    }

    /// Live sessions, in id order.
    pub fn sessions(&self) -> impl Iterator<Item = (&SessionId, &SessionState)> {
        self.sessions.iter()
    }

    /// How a recently ended session ended.
    pub fn session_end(&self, id: SessionId) -> Option<&SessionEnd> {
        self.ended.get(&id)
    }

    /// Children names of `path`, sorted.
    pub fn children(&self, path: &str) -> Option<Vec<String>> {
        self.nodes
            .get(path)
            .map(|n| n.children.iter().cloned().collect())
    }

    /// CRC32C over the whole state: equal on replicas at equal applied index.
    pub fn digest(&self) -> u32 {
        crc32c::crc32c(&postcard::to_allocvec(self).expect("encoding to a Vec cannot fail"))
    }

    /// Applies the entry at `index`; returns the response and the side
    /// effects for watches and the expirer.
    pub fn apply(&mut self, index: LogIndex, command: &[u8]) -> (CommandResponse, Vec<Effect>) {
        let (response, effects) = self.apply_any(index, command);
        (response.decoded(), effects)
    }

    /// [`CoordState::apply`] with the response encoded
    /// ([`CommandResponse::encode`]), encoded once: a session write's
    /// response is the bytes it keeps for a retry.
    pub fn apply_encoded(&mut self, index: LogIndex, command: &[u8]) -> (Bytes, Vec<Effect>) {
        let (response, effects) = self.apply_any(index, command);
        (response.encoded(), effects)
    }

    fn apply_any(&mut self, index: LogIndex, command: &[u8]) -> (Response, Vec<Effect>) {
        self.applied = index;
        let mut effects = Vec::new();
        let Some(command) = Command::decode(command) else {
            return (
                Response::Value(CommandResponse::Refused(CoordError::Malformed)),
                effects,
            );
        };
        let response = match command {
            Command::CreateSession { timeout_ms, secret } => {
                self.create_session(index, timeout_ms, secret, &mut effects)
            }
            Command::Touch { sessions } => {
                let mut dead = Vec::new();
                for id in sessions {
                    match self.sessions.get_mut(&id) {
                        Some(session) => {
                            session.last_active = index;
                            effects.push(Effect::SessionActive(id));
                        }
                        None => dead.push(id),
                    }
                }
                dead.sort_unstable();
                dead.dedup();
                CommandResponse::Touched { dead }
            }
            Command::ExpireSession {
                session,
                last_active,
            } => match self.sessions.get(&session) {
                Some(state) if state.last_active == last_active => CommandResponse::Expired(
                    self.end_session(index, session, EndReason::Expired, &mut effects),
                ),
                _ => CommandResponse::NotExpired,
            },
            Command::Request {
                session,
                sequence,
                write,
            } => {
                let response = self.apply_request(index, session, sequence, write, &mut effects);
                return (response, effects);
            }
        };
        (Response::Value(response), effects)
    }

    fn create_session(
        &mut self,
        index: LogIndex,
        timeout_ms: u64,
        secret: u64,
        effects: &mut Vec<Effect>,
    ) -> CommandResponse {
        if let Some(&existing) = self.by_secret.get(&secret) {
            let session = self
                .sessions
                .get_mut(&existing)
                .expect("by_secret points at live sessions");
            session.last_active = index;
            effects.push(Effect::SessionActive(existing));
            return CommandResponse::SessionCreated {
                session: existing,
                timeout_ms: session.timeout_ms,
            };
        }
        let timeout_ms = timeout_ms.clamp(SESSION_TIMEOUT_MS_MIN, SESSION_TIMEOUT_MS_MAX);
        self.sessions.insert(
            index,
            SessionState {
                timeout_ms,
                secret,
                last_active: index,
                last_sequence: 0,
                last_response: Bytes::new(),
                ephemerals: BTreeSet::new(),
            },
        );
        self.by_secret.insert(secret, index);
        effects.push(Effect::SessionStarted {
            session: index,
            timeout_ms,
        });
        CommandResponse::SessionCreated {
            session: index,
            timeout_ms,
        }
    }

    fn apply_request(
        &mut self,
        index: LogIndex,
        id: SessionId,
        sequence: u64,
        write: Write,
        effects: &mut Vec<Effect>,
    ) -> Response {
        let Some(session) = self.sessions.get_mut(&id) else {
            return Response::Value(CommandResponse::Refused(CoordError::SessionExpired(id)));
        };
        session.last_active = index;
        effects.push(Effect::SessionActive(id));
        if sequence == session.last_sequence && sequence != 0 {
            return Response::Encoded(session.last_response.clone());
        }
        if sequence < session.last_sequence || sequence == 0 {
            return Response::Value(CommandResponse::Refused(CoordError::Stale {
                sequence,
                last: session.last_sequence,
            }));
        }
        let response = match write {
            Write::Close => {
                CommandResponse::Closed(self.end_session(index, id, EndReason::Closed, effects))
            }
            Write::Op(Op::SetData {
                path,
                data,
                version,
            }) => CommandResponse::Op(self.set_data_in_place(index, path, data, version, effects)),
            Write::Op(op) => {
                let result = self.transaction(index, id, std::slice::from_ref(&op), false, effects);
                CommandResponse::Op(
                    result
                        .map(|mut results| results.remove(0))
                        .map_err(|e| e.error),
                )
            }
            Write::Multi(ops) => {
                if ops.is_empty() || ops.len() > MULTI_OPS_MAX {
                    CommandResponse::Multi(Err(MultiError {
                        index: 0,
                        error: CoordError::BadArguments(format!(
                            "a multi needs 1 to {MULTI_OPS_MAX} operations, got {}",
                            ops.len()
                        )),
                    }))
                } else {
                    CommandResponse::Multi(self.transaction(index, id, &ops, true, effects))
                }
            }
        };
        let encoded = response.encode();
        if let Some(session) = self.sessions.get_mut(&id) {
            session.last_sequence = sequence;
            session.last_response = encoded.clone();
        }
        Response::Both(response, encoded)
    }

    /// A single `set_data` outside a multi, applied to the node in place:
    /// the same checks, in the same order, and the same outcome as
    /// [`CoordState::transaction`] gives it, without the transaction's
    /// scratch copy of the node.
    fn set_data_in_place(
        &mut self,
        index: LogIndex,
        path: String,
        data: Bytes,
        version: Option<u32>,
        effects: &mut Vec<Effect>,
    ) -> Result<OpResult, CoordError> {
        path::validate(&path)?;
        if data.len() > DATA_BYTES_MAX {
            return Err(CoordError::DataTooLarge {
                size: data.len(),
                max: DATA_BYTES_MAX,
            });
        }
        let Some(node) = self.nodes.get_mut(path.as_str()) else {
            return Err(CoordError::NoNode(path));
        };
        Txn::check_version(&path, node, version)?;
        node.stat.version = node.stat.version.wrapping_add(1);
        node.stat.modified = index;
        node.stat.data_length = data.len() as u32;
        node.data = data;
        let stat = node.stat;
        effects.push(Effect::Changed(Change::DataChanged(path)));
        Ok(OpResult::Set(stat))
    }

    /// Runs `ops` all-or-nothing as session `session`.
    fn transaction(
        &mut self,
        index: LogIndex,
        session: SessionId,
        ops: &[Op],
        in_multi: bool,
        effects: &mut Vec<Effect>,
    ) -> Result<Vec<OpResult>, MultiError> {
        let mut txn = Txn {
            state: self,
            index,
            session,
            overlay: BTreeMap::new(),
            changes: Vec::new(),
        };
        let mut results = Vec::with_capacity(ops.len());
        for (position, op) in ops.iter().enumerate() {
            match txn.apply(op, in_multi) {
                Ok(result) => results.push(result),
                Err(error) => {
                    return Err(MultiError {
                        index: position,
                        error,
                    })
                }
            }
        }
        let Txn {
            overlay, changes, ..
        } = txn;
        for (path, node) in overlay {
            match node {
                Some(node) => {
                    let mut created = true;
                    if let Some(old) = self.nodes.get(&path) {
                        if old.stat.created != node.stat.created {
                            // Deleted and re-created within this transaction.
                            if let Some(owner) = self.sessions.get_mut(&old.stat.ephemeral_owner) {
                                owner.ephemerals.remove(&path);
                            }
                        } else {
                            // The same node, changed: already listed as its
                            // owner's ephemeral if it is one.
                            created = false;
                        }
                    }
                    if created && node.stat.ephemeral_owner != 0 {
                        if let Some(owner) = self.sessions.get_mut(&node.stat.ephemeral_owner) {
                            owner.ephemerals.insert(path.clone());
                        }
                    }
                    self.nodes.insert(path, node);
                }
                None => {
                    if let Some(old) = self.nodes.remove(&path) {
                        if let Some(owner) = self.sessions.get_mut(&old.stat.ephemeral_owner) {
                            owner.ephemerals.remove(&path);
                        }
                    }
                }
            }
        }
        effects.extend(changes.into_iter().map(Effect::Changed));
        Ok(results)
    }

    /// Ends a session: deletes its ephemerals (deepest first is not needed:
    /// ephemerals have no children) and records the end.
    fn end_session(
        &mut self,
        index: LogIndex,
        id: SessionId,
        reason: EndReason,
        effects: &mut Vec<Effect>,
    ) -> SessionEnd {
        let session = self.sessions.remove(&id).expect("ending a live session");
        self.by_secret.remove(&session.secret);
        let mut removed = Vec::new();
        for path in session.ephemerals {
            if self.nodes.remove(&path).is_none() {
                continue;
            }
            let parent_path = path::parent(&path).to_string();
            if let Some(parent) = self.nodes.get_mut(&parent_path) {
                parent.children.remove(path::name(&path));
                parent.stat.children = parent.children.len() as u32;
                parent.stat.children_version = parent.stat.children_version.wrapping_add(1);
                parent.stat.children_modified = index;
            }
            effects.push(Effect::Changed(Change::Deleted(path.clone())));
            removed.push(path);
        }
        effects.push(Effect::SessionEnded(id));
        let end = SessionEnd {
            index,
            reason,
            removed,
        };
        self.ended.insert(id, end.clone());
        while self.ended.len() > ENDED_SESSIONS_KEPT {
            self.ended.pop_first();
        }
        end
    }

    /// Serializes the whole state.
    pub fn snapshot(&self) -> Bytes {
        Bytes::from(postcard::to_allocvec(self).expect("encoding to a Vec cannot fail"))
    }

    /// Rebuilds from [`CoordState::snapshot`] bytes taken at `index`.
    pub fn restore(index: LogIndex, data: &[u8]) -> Result<CoordState, RecoverError> {
        let mut state: CoordState = postcard::from_bytes(data)
            .map_err(|e| RecoverError::CorruptSnapshot(format!("coordination state: {e}")))?;
        if !state.nodes.contains_key("/") {
            return Err(RecoverError::CorruptSnapshot(
                "coordination state has no root".into(),
            ));
        }
        state.applied = index;
        Ok(state)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Harness {
        state: CoordState,
        index: LogIndex,
        sequence: BTreeMap<SessionId, u64>,
    }

    impl Harness {
        /// A copy to apply other commands to.
        fn fork(&self) -> Harness {
            Harness {
                state: self.state.clone(),
                index: self.index,
                sequence: self.sequence.clone(),
            }
        }

        fn new() -> Self {
            Harness {
                state: CoordState::new(),
                index: 0,
                sequence: BTreeMap::new(),
            }
        }
        fn apply(&mut self, command: Command) -> (CommandResponse, Vec<Effect>) {
            self.index += 1;
            self.state.apply(self.index, &command.encode())
        }
        fn session(&mut self, secret: u64) -> SessionId {
            match self
                .apply(Command::CreateSession {
                    timeout_ms: 1000,
                    secret,
                })
                .0
            {
                CommandResponse::SessionCreated { session, .. } => session,
                other => panic!("{other:?}"),
            }
        }
        fn write(&mut self, session: SessionId, write: Write) -> CommandResponse {
            let sequence = {
                let s = self.sequence.entry(session).or_insert(0);
                *s += 1;
                *s
            };
            self.apply(Command::Request {
                session,
                sequence,
                write,
            })
            .0
        }
        fn op(&mut self, session: SessionId, op: Op) -> Result<OpResult, CoordError> {
            match self.write(session, Write::Op(op)) {
                CommandResponse::Op(result) => result,
                CommandResponse::Refused(error) => Err(error),
                other => panic!("{other:?}"),
            }
        }
        fn create(
            &mut self,
            session: SessionId,
            path: &str,
            mode: CreateMode,
        ) -> Result<String, CoordError> {
            self.op(
                session,
                Op::Create {
                    path: path.into(),
                    data: Bytes::from_static(b"d"),
                    mode,
                },
            )
            .map(|r| match r {
                OpResult::Created { path, .. } => path,
                other => panic!("{other:?}"),
            })
        }
    }

    #[test]
    fn a_single_set_data_changes_the_state_as_the_same_set_data_in_a_multi_does() {
        let mut base = Harness::new();
        let owner = base.session(1);
        base.create(owner, "/p", CreateMode::Persistent).unwrap();
        base.create(owner, "/e", CreateMode::Ephemeral).unwrap();
        let cases = [
            ("/p", None),
            ("/p", Some(0)),
            ("/p", Some(7)),
            ("/e", None),
            ("/", None),
            ("/missing", None),
            ("bad", None),
        ];
        for (path, version) in cases {
            let set = Op::SetData {
                path: path.into(),
                data: Bytes::from_static(b"new"),
                version,
            };
            let single = {
                let mut h = base.fork();
                let (response, effects) = h.apply(Command::Request {
                    session: owner,
                    sequence: 100,
                    write: Write::Op(set.clone()),
                });
                let CommandResponse::Op(result) = response else {
                    panic!("{response:?}")
                };
                (h.state, result, effects)
            };
            let multi = {
                let mut h = base.fork();
                let (response, effects) = h.apply(Command::Request {
                    session: owner,
                    sequence: 100,
                    write: Write::Multi(vec![set]),
                });
                let CommandResponse::Multi(result) = response else {
                    panic!("{response:?}")
                };
                let result = result
                    .map(|mut results| results.remove(0))
                    .map_err(|e| e.error);
                (h.state, result, effects)
            };
            assert_eq!(single.1, multi.1, "{path} {version:?}");
            assert_eq!(single.2, multi.2, "{path} {version:?}");
            let nodes = |state: &CoordState| {
                state
                    .nodes()
                    .map(|(p, n)| (p.clone(), n.clone()))
                    .collect::<Vec<_>>()
            };
            assert_eq!(nodes(&single.0), nodes(&multi.0), "{path} {version:?}");
            assert_eq!(
                single.0.session(owner).unwrap().ephemerals,
                multi.0.session(owner).unwrap().ephemerals
            );
        }
    }

    #[test]
    fn an_encoded_apply_answers_the_bytes_of_the_decoded_one_and_a_retry_its_kept_bytes() {
        let mut h = Harness::new();
        let session = h.session(1);
        let mut other = h.state.clone();
        let create = Command::Request {
            session,
            sequence: 1,
            write: Write::Op(Op::Create {
                path: "/a".into(),
                data: Bytes::new(),
                mode: CreateMode::Persistent,
            }),
        }
        .encode();
        let (decoded, _) = h.state.apply(2, &create);
        let (encoded, _) = other.apply_encoded(2, &create);
        assert_eq!(encoded, decoded.encode());
        let (retried, _) = other.apply_encoded(3, &create);
        assert_eq!(retried, encoded, "a retry answers the kept response");
        let (touched, _) = other.apply_encoded(
            4,
            &Command::Touch {
                sessions: vec![session, 99],
            }
            .encode(),
        );
        assert_eq!(
            CommandResponse::decode(&touched),
            CommandResponse::Touched { dead: vec![99] }
        );
    }

    #[test]
    fn create_get_set_delete_with_versions() {
        let mut h = Harness::new();
        let s = h.session(1);
        assert_eq!(h.create(s, "/a", CreateMode::Persistent).unwrap(), "/a");
        assert_eq!(
            h.create(s, "/a", CreateMode::Persistent),
            Err(CoordError::NodeExists("/a".into()))
        );
        assert_eq!(
            h.create(s, "/x/y", CreateMode::Persistent),
            Err(CoordError::NoNode("/x".into()))
        );
        let set = h.op(
            s,
            Op::SetData {
                path: "/a".into(),
                data: Bytes::from_static(b"v2"),
                version: Some(0),
            },
        );
        assert!(
            matches!(set, Ok(OpResult::Set(stat)) if stat.version == 1 && stat.data_length == 2)
        );
        let stale = h.op(
            s,
            Op::SetData {
                path: "/a".into(),
                data: Bytes::new(),
                version: Some(0),
            },
        );
        assert!(matches!(
            stale,
            Err(CoordError::BadVersion {
                expected: 0,
                actual: 1,
                ..
            })
        ));
        h.create(s, "/a/b", CreateMode::Persistent).unwrap();
        assert_eq!(
            h.op(
                s,
                Op::Delete {
                    path: "/a".into(),
                    version: None
                }
            ),
            Err(CoordError::NotEmpty("/a".into()))
        );
        assert_eq!(
            h.op(
                s,
                Op::Delete {
                    path: "/a/b".into(),
                    version: Some(0)
                }
            ),
            Ok(OpResult::Deleted)
        );
        assert_eq!(
            h.op(
                s,
                Op::Delete {
                    path: "/a".into(),
                    version: None
                }
            ),
            Ok(OpResult::Deleted)
        );
        assert_eq!(h.state.children("/"), Some(vec![]));
        assert!(matches!(
            h.op(
                s,
                Op::Check {
                    path: "/".into(),
                    version: None
                }
            ),
            Err(CoordError::BadArguments(_))
        ));
        assert!(matches!(
            h.create(s, "bad", CreateMode::Persistent),
            Err(CoordError::BadPath { .. })
        ));
    }

    #[test]
    fn sequential_numbers_strictly_increase_and_are_never_reused() {
        let mut h = Harness::new();
        let s = h.session(1);
        h.create(s, "/e", CreateMode::Persistent).unwrap();
        let a = h
            .create(s, "/e/c_", CreateMode::EphemeralSequential)
            .unwrap();
        let b = h
            .create(s, "/e/c_", CreateMode::PersistentSequential)
            .unwrap();
        assert_eq!(
            (a.as_str(), b.as_str()),
            ("/e/c_0000000000", "/e/c_0000000001")
        );
        h.op(
            s,
            Op::Delete {
                path: b.clone(),
                version: None,
            },
        )
        .unwrap();
        let c = h
            .create(s, "/e/c_", CreateMode::EphemeralSequential)
            .unwrap();
        assert_eq!(c, "/e/c_0000000002");
        assert_eq!(
            h.create(s, "/e/c_0000000000/x", CreateMode::Persistent),
            Err(CoordError::NoChildrenForEphemerals(
                "/e/c_0000000000".into()
            ))
        );
    }

    #[test]
    fn multi_is_all_or_nothing() {
        let mut h = Harness::new();
        let s = h.session(1);
        h.create(s, "/a", CreateMode::Persistent).unwrap();
        let failed = h.write(
            s,
            Write::Multi(vec![
                Op::Create {
                    path: "/b".into(),
                    data: Bytes::new(),
                    mode: CreateMode::Persistent,
                },
                Op::Check {
                    path: "/a".into(),
                    version: Some(3),
                },
            ]),
        );
        assert!(matches!(
            failed,
            CommandResponse::Multi(Err(MultiError { index: 1, .. }))
        ));
        assert!(h.state.node("/b").is_none(), "nothing applied");
        let ok = h.write(
            s,
            Write::Multi(vec![
                Op::Check {
                    path: "/a".into(),
                    version: Some(0),
                },
                Op::Create {
                    path: "/b".into(),
                    data: Bytes::new(),
                    mode: CreateMode::Persistent,
                },
                Op::Create {
                    path: "/b/c".into(),
                    data: Bytes::new(),
                    mode: CreateMode::Ephemeral,
                },
                Op::SetData {
                    path: "/a".into(),
                    data: Bytes::from_static(b"x"),
                    version: Some(0),
                },
                Op::Delete {
                    path: "/b/c".into(),
                    version: None,
                },
            ]),
        );
        assert!(
            matches!(ok, CommandResponse::Multi(Ok(ref r)) if r.len() == 5),
            "{ok:?}"
        );
        assert!(h.state.node("/b").is_some() && h.state.node("/b/c").is_none());
        assert!(h.state.session(s).unwrap().ephemerals.is_empty());
    }

    #[test]
    fn retries_apply_once_and_stale_requests_are_refused() {
        let mut h = Harness::new();
        let s = h.session(1);
        let create = Command::Request {
            session: s,
            sequence: 1,
            write: Write::Op(Op::Create {
                path: "/q".into(),
                data: Bytes::new(),
                mode: CreateMode::PersistentSequential,
            }),
        };
        let first = h.apply(create.clone()).0;
        let retry = h.apply(create.clone()).0;
        assert_eq!(first, retry, "the retry gets the first response");
        assert_eq!(
            h.state.children("/").unwrap(),
            vec!["q0000000000".to_string()]
        );
        h.sequence.insert(s, 1);
        h.create(s, "/z", CreateMode::Persistent).unwrap();
        assert!(matches!(
            h.apply(create).0,
            CommandResponse::Refused(CoordError::Stale {
                sequence: 1,
                last: 2
            })
        ));
        // Same secret: the same session.
        assert_eq!(h.session(1), s);
    }

    #[test]
    fn expiry_is_guarded_by_the_last_activity_and_removes_ephemerals() {
        let mut h = Harness::new();
        let s = h.session(1);
        let other = h.session(2);
        h.create(other, "/p", CreateMode::Persistent).unwrap();
        h.create(s, "/p/e1", CreateMode::Ephemeral).unwrap();
        h.create(s, "/p/e2", CreateMode::EphemeralSequential)
            .unwrap();
        let seen = h.state.session(s).unwrap().last_active;
        h.apply(Command::Touch {
            sessions: vec![s, 999],
        });
        let (void, _) = h.apply(Command::ExpireSession {
            session: s,
            last_active: seen,
        });
        assert_eq!(
            void,
            CommandResponse::NotExpired,
            "a heartbeat after `seen` cancels the expiry"
        );
        let seen = h.state.session(s).unwrap().last_active;
        let (expired, effects) = h.apply(Command::ExpireSession {
            session: s,
            last_active: seen,
        });
        let CommandResponse::Expired(end) = expired else {
            panic!("{expired:?}")
        };
        assert_eq!(
            end.removed,
            vec!["/p/e1".to_string(), "/p/e20000000000".to_string()]
        );
        assert_eq!(end.index, h.index);
        assert!(effects.contains(&Effect::SessionEnded(s)));
        assert_eq!(h.state.children("/p"), Some(vec![]));
        assert_eq!(h.state.session_end(s), Some(&end));
        assert!(matches!(
            h.write(
                s,
                Write::Op(Op::Delete {
                    path: "/p".into(),
                    version: None
                })
            ),
            CommandResponse::Refused(CoordError::SessionExpired(_))
        ));
        let (touched, _) = h.apply(Command::Touch { sessions: vec![s] });
        assert_eq!(touched, CommandResponse::Touched { dead: vec![s] });
    }

    #[test]
    fn snapshot_round_trip_and_digest() {
        let mut h = Harness::new();
        let s = h.session(1);
        h.create(s, "/a", CreateMode::Ephemeral).unwrap();
        let restored = CoordState::restore(h.index, &h.state.snapshot()).unwrap();
        assert_eq!(restored, h.state);
        assert_eq!(restored.digest(), h.state.digest());
        assert!(CoordState::restore(1, b"garbage").is_err());
        let (malformed, _) = h.state.apply(99, b"\xff\xff\xff");
        assert_eq!(malformed, CommandResponse::Refused(CoordError::Malformed));
    }
}
