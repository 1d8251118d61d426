//! The state machine a server hands to the consensus runtime: the
//! deterministic [`CoordState`] plus a [`Hub`] of per-server, non-replicated
//! state that observes every apply:
//!
//! * **watches**: one-shot, registered by the connection that asked,
//!   atomically with the read that set them (the read runs in the runtime's
//!   apply task, like every apply, so no change can slip in between), fired
//!   when *this* node applies the change; the event is queued on the
//!   connection's ordered outbound queue before the applied index is
//!   published, so any reply that reflects the change is queued after the
//!   event (ZooKeeper's "a client sees the event before the new data");
//! * the **expiry tracker** ([`ExpiryTracker`]) fed with session activity
//!   at apply time on this server's clock;
//! * the **applied index**, which writers wait for before they reply, so a
//!   client always reads its own writes from its server.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use bytes::Bytes;
use consensus::{LogIndex, RecoverError, StateMachine};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};

use crate::expiry::ExpiryTracker;
use crate::path;
use crate::state::{Change, CoordState, Effect};
use crate::types::{CoordError, EventKind, SessionId, WatchEvent, WatchKind};
use crate::wire::{Answer, ServerFrame, SessionReport};

/// A client connection's id on one server.
pub type ConnId = u64;

/// A read (and watch registration) run against the state machine.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum MachineQuery {
    /// Data of `path`; a data watch for `watch` if the node exists.
    Get {
        /// Path.
        path: String,
        /// Connection to register a watch for.
        watch: Option<ConnId>,
    },
    /// Stat of `path`; an exist watch for `watch` either way.
    Exists {
        /// Path.
        path: String,
        /// Connection to register a watch for.
        watch: Option<ConnId>,
    },
    /// Children of `path`; a child watch for `watch` if the node exists.
    Children {
        /// Path.
        path: String,
        /// Connection to register a watch for.
        watch: Option<ConnId>,
    },
    /// Re-registers watches after a reconnect: each fires at once if its
    /// node changed after `last_seen`, else is registered.
    SetWatches {
        /// The connection.
        conn: ConnId,
        /// The client's last seen index.
        last_seen: LogIndex,
        /// The watches.
        watches: Vec<(WatchKind, String)>,
    },
    /// Whether `session` is live here with this `secret`.
    SessionAlive {
        /// The session.
        session: SessionId,
        /// Its secret.
        secret: u64,
    },
    /// What this replica knows of a session.
    Session(SessionId),
    /// Counters and digest.
    Status,
}

/// The answer to a [`MachineQuery`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum QueryAnswer {
    /// `Get`, `Exists`, `Children`.
    Read {
        /// Applied index the answer reflects.
        applied: LogIndex,
        /// The result.
        result: Result<Answer, CoordError>,
    },
    /// `SetWatches`: events fired at once (already queued).
    WatchesSet {
        /// Applied index.
        applied: LogIndex,
        /// How many fired at once.
        fired: usize,
    },
    /// `SessionAlive`: the session's timeout, or why not.
    Alive {
        /// Applied index.
        applied: LogIndex,
        /// Timeout in ms, or the error.
        result: Result<u64, CoordError>,
    },
    /// `Session`.
    Session(SessionReport),
    /// `Status`.
    Status {
        /// Applied index.
        applied: LogIndex,
        /// Znodes.
        znodes: u64,
        /// Live sessions.
        sessions: u64,
        /// State digest.
        digest: u32,
    },
    /// The query did not decode.
    Malformed,
}

impl MachineQuery {
    /// Encodes.
    pub fn encode(&self) -> Bytes {
        Bytes::from(postcard::to_allocvec(self).expect("encoding to a Vec cannot fail"))
    }
}

impl QueryAnswer {
    /// Decodes (`Malformed` for unknown bytes).
    pub fn decode(bytes: &[u8]) -> QueryAnswer {
        postcard::from_bytes(bytes).unwrap_or(QueryAnswer::Malformed)
    }

    fn encode(&self) -> Bytes {
        Bytes::from(postcard::to_allocvec(self).expect("encoding to a Vec cannot fail"))
    }
}

struct Conn {
    session: SessionId,
    outbound: mpsc::UnboundedSender<ServerFrame>,
}

#[derive(Default)]
struct Registry {
    /// Data and exist watches by path.
    data: BTreeMap<String, BTreeSet<ConnId>>,
    /// Child watches by path.
    child: BTreeMap<String, BTreeSet<ConnId>>,
    conns: BTreeMap<ConnId, Conn>,
    tracker: ExpiryTracker,
    watch_events_sent: u64,
}

impl Registry {
    fn fire(&mut self, table: WatchTable, path: &str, kind: EventKind, index: LogIndex) {
        let map = match table {
            WatchTable::Data => &mut self.data,
            WatchTable::Child => &mut self.child,
        };
        let Some(conns) = map.remove(path) else {
            return;
        };
        for conn in conns {
            if let Some(c) = self.conns.get(&conn) {
                let event = WatchEvent {
                    kind,
                    path: path.to_string(),
                    index,
                };
                if c.outbound.send(ServerFrame::Event(event)).is_ok() {
                    self.watch_events_sent += 1;
                }
            }
        }
    }

    fn change(&mut self, change: &Change, index: LogIndex) {
        match change {
            Change::Created(p) => {
                self.fire(WatchTable::Data, p, EventKind::NodeCreated, index);
                self.fire(
                    WatchTable::Child,
                    path::parent(p),
                    EventKind::NodeChildrenChanged,
                    index,
                );
            }
            Change::Deleted(p) => {
                self.fire(WatchTable::Data, p, EventKind::NodeDeleted, index);
                self.fire(WatchTable::Child, p, EventKind::NodeDeleted, index);
                self.fire(
                    WatchTable::Child,
                    path::parent(p),
                    EventKind::NodeChildrenChanged,
                    index,
                );
            }
            Change::DataChanged(p) => {
                self.fire(WatchTable::Data, p, EventKind::NodeDataChanged, index)
            }
        }
    }

    fn register(&mut self, table: WatchTable, path: &str, conn: ConnId) {
        if !self.conns.contains_key(&conn) {
            return;
        }
        let map = match table {
            WatchTable::Data => &mut self.data,
            WatchTable::Child => &mut self.child,
        };
        map.entry(path.to_string()).or_default().insert(conn);
    }

    fn drop_watches(&mut self, conn: ConnId) {
        for map in [&mut self.data, &mut self.child] {
            map.retain(|_, conns| {
                conns.remove(&conn);
                !conns.is_empty()
            });
        }
    }

    fn session_ended(&mut self, session: SessionId) {
        self.tracker.ended(session);
        self.tell_ended(session);
    }

    /// Drops the watches of the connections of `session` and tells them
    /// it ended.
    fn tell_ended(&mut self, session: SessionId) {
        let conns: Vec<ConnId> = self
            .conns
            .iter()
            .filter(|(_, c)| c.session == session)
            .map(|(id, _)| *id)
            .collect();
        for conn in conns {
            self.drop_watches(conn);
            if let Some(c) = self.conns.get(&conn) {
                let _ = c.outbound.send(ServerFrame::SessionExpired);
            }
        }
    }

    fn send(&self, conn: ConnId, event: WatchEvent) -> bool {
        self.conns
            .get(&conn)
            .is_some_and(|c| c.outbound.send(ServerFrame::Event(event)).is_ok())
    }
}

#[derive(Copy, Clone)]
enum WatchTable {
    Data,
    Child,
}

/// Per-server state shared between the state machine (in the runtime's
/// apply task) and the server's connections.
pub struct Hub {
    registry: Mutex<Registry>,
    applied: AppliedIndex,
    started: Instant,
}

/// The applied index and the tasks waiting for it: each waiter is woken
/// once, when the index it waits for is applied (not on every apply).
#[derive(Default)]
struct AppliedIndex {
    index: AtomicU64,
    /// Waiters by the index they wait for.
    waiting: Mutex<BTreeMap<LogIndex, Vec<oneshot::Sender<()>>>>,
}

impl AppliedIndex {
    fn waiting(&self) -> std::sync::MutexGuard<'_, BTreeMap<LogIndex, Vec<oneshot::Sender<()>>>> {
        self.waiting
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn get(&self) -> LogIndex {
        self.index.load(Ordering::Acquire)
    }

    /// Publishes `index` and wakes every waiter it satisfies.
    fn publish(&self, index: LogIndex) {
        self.index.store(index, Ordering::Release);
        let ready = {
            let mut waiting = self.waiting();
            if waiting
                .first_key_value()
                .is_none_or(|(lowest, _)| *lowest > index)
            {
                return;
            }
            let later = waiting.split_off(&(index + 1));
            std::mem::replace(&mut *waiting, later)
        };
        for sender in ready.into_values().flatten() {
            let _ = sender.send(());
        }
    }

    /// A receiver that resolves once `index` is applied; `None` when it
    /// already is.
    fn waiter(&self, index: LogIndex) -> Option<oneshot::Receiver<()>> {
        if self.get() >= index {
            return None;
        }
        let (sender, receiver) = oneshot::channel();
        let mut waiting = self.waiting();
        // Checked again under the lock: `publish` stores the index before
        // it takes the lock, so either this sees it or `publish` sees the
        // waiter.
        if self.get() >= index {
            return None;
        }
        // Waiters whose task gave up (timed out) are dropped here.
        let entry = waiting.entry(index).or_default();
        entry.retain(|sender| !sender.is_closed());
        entry.push(sender);
        Some(receiver)
    }
}

impl Default for Hub {
    fn default() -> Self {
        Hub::new()
    }
}

impl Hub {
    /// An empty hub.
    pub fn new() -> Hub {
        Hub {
            registry: Mutex::new(Registry::default()),
            applied: AppliedIndex::default(),
            started: Instant::now(),
        }
    }

    fn registry(&self) -> std::sync::MutexGuard<'_, Registry> {
        self.registry
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Milliseconds on this server's monotonic clock.
    pub fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    /// The last applied index.
    pub fn applied(&self) -> LogIndex {
        self.applied.get()
    }

    /// Waits until this node applied `index`; false on timeout.
    pub async fn wait_applied(&self, index: LogIndex, timeout: Duration) -> bool {
        let Some(receiver) = self.applied.waiter(index) else {
            return true;
        };
        matches!(tokio::time::timeout(timeout, receiver).await, Ok(Ok(())))
    }

    /// Registers a connection attached to `session`.
    pub fn connect(
        &self,
        conn: ConnId,
        session: SessionId,
        outbound: mpsc::UnboundedSender<ServerFrame>,
    ) {
        self.registry()
            .conns
            .insert(conn, Conn { session, outbound });
    }

    /// Forgets a connection and its watches.
    pub fn disconnect(&self, conn: ConnId) {
        let mut registry = self.registry();
        registry.drop_watches(conn);
        registry.conns.remove(&conn);
    }

    /// Tells the connections of `session` it ended (learned from a
    /// heartbeat's answer rather than from an apply).
    pub fn notify_ended(&self, session: SessionId) {
        self.registry().tell_ended(session);
    }

    /// Connections attached.
    pub fn connection_count(&self) -> usize {
        self.registry().conns.len()
    }

    /// Watch events queued so far.
    pub fn watch_events_sent(&self) -> u64 {
        self.registry().watch_events_sent
    }

    /// Runs `f` on the expiry tracker.
    pub fn with_tracker<T>(&self, f: impl FnOnce(&mut ExpiryTracker) -> T) -> T {
        f(&mut self.registry().tracker)
    }

    /// A log entry the coordination machine does not see (a member
    /// address-book entry, applied by the service edge's wrapper) was
    /// applied at `index`: waits for "applied up to `index`" end.
    pub fn note_applied(&self, index: LogIndex) {
        self.after_apply(index, &[]);
    }

    fn after_apply(&self, index: LogIndex, effects: &[Effect]) {
        {
            let now = self.now_ms();
            let mut registry = self.registry();
            for effect in effects {
                match effect {
                    Effect::Changed(change) => registry.change(change, index),
                    Effect::SessionStarted {
                        session,
                        timeout_ms,
                    } => registry.tracker.started(*session, *timeout_ms, index, now),
                    Effect::SessionActive(session) => registry.tracker.active(*session, index, now),
                    Effect::SessionEnded(session) => registry.session_ended(*session),
                }
            }
        }
        self.applied.publish(index);
    }

    /// After a snapshot replaced the state: fire every watch whose node
    /// differs, end the connections of sessions that are gone, rebuild the
    /// tracker.
    fn after_restore(&self, before: &CoordState, after: &CoordState, index: LogIndex) {
        {
            let now = self.now_ms();
            let mut registry = self.registry();
            let data_paths: Vec<String> = registry.data.keys().cloned().collect();
            for p in data_paths {
                match (before.node(&p), after.node(&p)) {
                    (None, Some(_)) => {
                        registry.fire(WatchTable::Data, &p, EventKind::NodeCreated, index)
                    }
                    (Some(_), None) => {
                        registry.fire(WatchTable::Data, &p, EventKind::NodeDeleted, index)
                    }
                    (Some(a), Some(b)) if a.stat != b.stat => {
                        registry.fire(WatchTable::Data, &p, EventKind::NodeDataChanged, index)
                    }
                    _ => {}
                }
            }
            let child_paths: Vec<String> = registry.child.keys().cloned().collect();
            for p in child_paths {
                match (before.node(&p), after.node(&p)) {
                    (Some(_), None) => {
                        registry.fire(WatchTable::Child, &p, EventKind::NodeDeleted, index)
                    }
                    (Some(a), Some(b)) if a.children != b.children => {
                        registry.fire(WatchTable::Child, &p, EventKind::NodeChildrenChanged, index)
                    }
                    _ => {}
                }
            }
            let gone: Vec<SessionId> = before
                .sessions()
                .map(|(id, _)| *id)
                .filter(|id| after.session(*id).is_none())
                .collect();
            for session in gone {
                registry.session_ended(session);
            }
            registry.tracker.rebuild(
                after
                    .sessions()
                    .map(|(id, s)| (*id, s.timeout_ms, s.last_active)),
                now,
            );
        }
        self.applied.publish(index);
    }
}

/// The [`StateMachine`] of a coordination server.
pub struct CoordMachine {
    state: CoordState,
    hub: std::sync::Arc<Hub>,
}

impl CoordMachine {
    /// A fresh state observed by `hub`.
    pub fn new(hub: std::sync::Arc<Hub>) -> CoordMachine {
        CoordMachine {
            state: CoordState::new(),
            hub,
        }
    }

    fn read(
        &self,
        path: &str,
        watch: Option<ConnId>,
        what: ReadKind,
    ) -> Result<Answer, CoordError> {
        path::validate(path)?;
        let node = self.state.node(path);
        let mut registry = self.hub.registry();
        match what {
            ReadKind::Get => {
                let node = node.ok_or_else(|| CoordError::NoNode(path.to_string()))?;
                if let Some(conn) = watch {
                    registry.register(WatchTable::Data, path, conn);
                }
                Ok(Answer::Data {
                    data: node.data.clone(),
                    stat: node.stat,
                })
            }
            ReadKind::Exists => {
                if let Some(conn) = watch {
                    registry.register(WatchTable::Data, path, conn);
                }
                Ok(Answer::Exists(node.map(|n| n.stat)))
            }
            ReadKind::Children => {
                let node = node.ok_or_else(|| CoordError::NoNode(path.to_string()))?;
                if let Some(conn) = watch {
                    registry.register(WatchTable::Child, path, conn);
                }
                Ok(Answer::Children {
                    children: node.children.iter().cloned().collect(),
                    stat: node.stat,
                })
            }
        }
    }

    fn set_watches(
        &self,
        conn: ConnId,
        last_seen: LogIndex,
        watches: &[(WatchKind, String)],
    ) -> usize {
        let mut registry = self.hub.registry();
        let mut fired = 0;
        for (kind, p) in watches {
            if path::validate(p).is_err() {
                continue;
            }
            let node = self.state.node(p);
            let event = match (kind, node) {
                (WatchKind::Data, None) | (WatchKind::Child, None) => Some(EventKind::NodeDeleted),
                (WatchKind::Data, Some(n)) if n.stat.modified > last_seen => {
                    Some(EventKind::NodeDataChanged)
                }
                (WatchKind::Exist, Some(n)) if n.stat.created > last_seen => {
                    Some(EventKind::NodeCreated)
                }
                (WatchKind::Exist, Some(n)) if n.stat.modified > last_seen => {
                    Some(EventKind::NodeDataChanged)
                }
                (WatchKind::Child, Some(n)) if n.stat.children_modified > last_seen => {
                    Some(EventKind::NodeChildrenChanged)
                }
                _ => None,
            };
            match event {
                Some(kind) => {
                    let sent = registry.send(
                        conn,
                        WatchEvent {
                            kind,
                            path: p.clone(),
                            index: 0,
                        },
                    );
                    if sent {
                        fired += 1;
                        registry.watch_events_sent += 1;
                    }
                }
                None => {
                    let table = match kind {
                        WatchKind::Child => WatchTable::Child,
                        WatchKind::Data | WatchKind::Exist => WatchTable::Data,
                    };
                    registry.register(table, p, conn);
                }
            }
        }
        fired
    }
}

#[derive(Copy, Clone)]
enum ReadKind {
    Get,
    Exists,
    Children,
}

impl StateMachine for CoordMachine {
    fn apply(&mut self, index: LogIndex, command: &Bytes) -> Bytes {
        let (response, effects) = self.state.apply_encoded(index, command);
        self.hub.after_apply(index, &effects);
        response
    }

    fn query(&self, query: &Bytes) -> Bytes {
        let applied = self.state.applied();
        let Ok(query) = postcard::from_bytes::<MachineQuery>(query) else {
            return QueryAnswer::Malformed.encode();
        };
        let answer = match query {
            MachineQuery::Get { path, watch } => QueryAnswer::Read {
                applied,
                result: self.read(&path, watch, ReadKind::Get),
            },
            MachineQuery::Exists { path, watch } => QueryAnswer::Read {
                applied,
                result: self.read(&path, watch, ReadKind::Exists),
            },
            MachineQuery::Children { path, watch } => QueryAnswer::Read {
                applied,
                result: self.read(&path, watch, ReadKind::Children),
            },
            MachineQuery::SetWatches {
                conn,
                last_seen,
                watches,
            } => QueryAnswer::WatchesSet {
                applied,
                fired: self.set_watches(conn, last_seen, &watches),
            },
            MachineQuery::SessionAlive { session, secret } => QueryAnswer::Alive {
                applied,
                result: match self.state.session(session) {
                    Some(s) if s.secret == secret => Ok(s.timeout_ms),
                    Some(_) => Err(CoordError::BadArguments("wrong session secret".into())),
                    None => Err(CoordError::SessionExpired(session)),
                },
            },
            MachineQuery::Session(session) => {
                let live = self.state.session(session);
                QueryAnswer::Session(SessionReport {
                    applied,
                    alive: live.is_some(),
                    ephemerals: live
                        .map(|s| s.ephemerals.iter().cloned().collect())
                        .unwrap_or_default(),
                    end: self.state.session_end(session).cloned(),
                })
            }
            MachineQuery::Status => QueryAnswer::Status {
                applied,
                znodes: self.state.node_count() as u64,
                sessions: self.state.sessions().count() as u64,
                digest: self.state.digest(),
            },
        };
        answer.encode()
    }

    fn snapshot(&self) -> Bytes {
        self.state.snapshot()
    }

    fn restore(&mut self, index: LogIndex, data: &Bytes) -> Result<(), RecoverError> {
        let state = CoordState::restore(index, data)?;
        self.hub.after_restore(&self.state, &state, index);
        self.state = state;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::{Command, Write};
    use crate::types::{CreateMode, Op};
    use std::sync::Arc;

    fn query(machine: &CoordMachine, q: MachineQuery) -> QueryAnswer {
        QueryAnswer::decode(&machine.query(&q.encode()))
    }

    #[test]
    fn watches_fire_once_in_apply_order_before_the_index_is_published() {
        let hub = Arc::new(Hub::new());
        let mut machine = CoordMachine::new(hub.clone());
        let (tx, mut rx) = mpsc::unbounded_channel();
        machine.apply(
            1,
            &Command::CreateSession {
                timeout_ms: 1000,
                secret: 9,
            }
            .encode(),
        );
        hub.connect(7, 1, tx);
        let create = |seq, path: &str, mode| Command::Request {
            session: 1,
            sequence: seq,
            write: Write::Op(Op::Create {
                path: path.into(),
                data: Bytes::new(),
                mode,
            }),
        };
        query(
            &machine,
            MachineQuery::Exists {
                path: "/a".into(),
                watch: Some(7),
            },
        );
        query(
            &machine,
            MachineQuery::Children {
                path: "/".into(),
                watch: Some(7),
            },
        );
        machine.apply(2, &create(1, "/a", CreateMode::Ephemeral).encode());
        assert_eq!(hub.applied(), 2);
        let first = rx.try_recv().unwrap();
        let second = rx.try_recv().unwrap();
        assert_eq!(
            first,
            ServerFrame::Event(WatchEvent {
                kind: EventKind::NodeCreated,
                path: "/a".into(),
                index: 2
            })
        );
        assert_eq!(
            second,
            ServerFrame::Event(WatchEvent {
                kind: EventKind::NodeChildrenChanged,
                path: "/".into(),
                index: 2
            })
        );
        machine.apply(3, &create(2, "/b", CreateMode::Persistent).encode());
        assert!(rx.try_recv().is_err(), "one-shot: nothing fires twice");
        // Expiry removes the ephemeral, fires the data watch, ends the connection's session.
        query(
            &machine,
            MachineQuery::Get {
                path: "/a".into(),
                watch: Some(7),
            },
        );
        machine.apply(
            4,
            &Command::ExpireSession {
                session: 1,
                last_active: 3,
            }
            .encode(),
        );
        assert_eq!(
            rx.try_recv().unwrap(),
            ServerFrame::Event(WatchEvent {
                kind: EventKind::NodeDeleted,
                path: "/a".into(),
                index: 4
            })
        );
        assert_eq!(rx.try_recv().unwrap(), ServerFrame::SessionExpired);
        assert!(hub.with_tracker(|t| t.is_empty()));
    }

    #[test]
    fn an_applied_index_waiter_is_woken_once_its_index_is_applied_and_not_before() {
        let applied = AppliedIndex::default();
        let mut at_three = applied.waiter(3).expect("index 3 is not applied yet");
        let mut at_five = applied.waiter(5).expect("index 5 is not applied yet");
        let abandoned = applied.waiter(5).expect("index 5 is not applied yet");
        drop(abandoned);
        applied.publish(2);
        assert_eq!(applied.get(), 2);
        assert!(matches!(
            at_three.try_recv(),
            Err(oneshot::error::TryRecvError::Empty)
        ));
        applied.publish(4);
        assert_eq!(at_three.try_recv(), Ok(()));
        assert!(matches!(
            at_five.try_recv(),
            Err(oneshot::error::TryRecvError::Empty)
        ));
        assert!(applied.waiter(4).is_none(), "already applied: no wait");
        applied.publish(5);
        assert_eq!(at_five.try_recv(), Ok(()));
        assert!(applied.waiting().is_empty(), "woken waiters are forgotten");
    }

    #[test]
    fn set_watches_fires_for_changes_missed_while_disconnected() {
        let hub = Arc::new(Hub::new());
        let mut machine = CoordMachine::new(hub.clone());
        machine.apply(
            1,
            &Command::CreateSession {
                timeout_ms: 1000,
                secret: 9,
            }
            .encode(),
        );
        let create = |seq, path: &str| Command::Request {
            session: 1,
            sequence: seq,
            write: Write::Op(Op::Create {
                path: path.into(),
                data: Bytes::new(),
                mode: CreateMode::Persistent,
            }),
        };
        machine.apply(2, &create(1, "/old").encode());
        machine.apply(3, &create(2, "/new").encode());
        let (tx, mut rx) = mpsc::unbounded_channel();
        hub.connect(1, 1, tx);
        let answer = query(
            &machine,
            MachineQuery::SetWatches {
                conn: 1,
                last_seen: 2,
                watches: vec![
                    (WatchKind::Data, "/old".into()),
                    (WatchKind::Exist, "/new".into()),
                    (WatchKind::Child, "/".into()),
                    (WatchKind::Data, "/gone".into()),
                ],
            },
        );
        assert_eq!(
            answer,
            QueryAnswer::WatchesSet {
                applied: 3,
                fired: 3
            }
        );
        let kinds: Vec<_> = std::iter::from_fn(|| rx.try_recv().ok()).collect();
        assert_eq!(kinds.len(), 3, "{kinds:?}");
        machine.apply(4, &create(3, "/old/x").encode());
        assert!(
            rx.try_recv().is_err(),
            "/old data watch registered, child change does not fire it"
        );
    }
}
