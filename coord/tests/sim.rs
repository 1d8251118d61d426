//! The coordination state machine under the simulator's faults, for every
//! protocol, with one test body.
//!
//! The simulator drives its own key-value state machine on each node (it
//! has no hook for another one), so this test proposes coordination
//! commands as raw commands and **replays each node's applied entries**
//! (`Cluster::applied`) through a [`CoordState`] per node, and the whole
//! committed log through a reference replica. What the servers do around
//! the state machine is modelled on virtual time with the same code:
//! clients heartbeat with `Touch`, queue for a lock with ephemeral-sequential
//! nodes, believe they hold it when their node is the lowest in their
//! node's (possibly stale) replica, and then write with a fencing check; the
//! expirer (the leader, or for Paxos the ranked peers) runs the real
//! [`ExpiryTracker`] on each node's virtual clock and proposes
//! `ExpireSession`. Some clients crash (stop heartbeating) and must lose
//! their session and their lock node everywhere.
//!
//! Invariants, checked after every simulated tick:
//! * every replica at index `i` has the reference replica's digest at `i`;
//! * no replica holds an ephemeral whose session is not live (the
//!   ephemerals of an expired session are gone everywhere);
//! * sequence numbers under a parent strictly increase;
//! * every successful fenced write was made by the session owning the
//!   lowest lock node at that index (no two live sessions ever act as lock
//!   holder).
//!
//! Nemesis: message loss / duplication / reordering throughout, node
//! crashes and restarts, partitions; then everything heals and the run
//! must make progress (locks acquired, crashed clients' sessions expired).

use std::collections::BTreeMap;

use bytes::Bytes;
use consensus::{Core, LogIndex, NodeId, Payload, Role};
use consensus_coord::expiry::ExpiryTracker;
use consensus_coord::path;
use consensus_coord::state::{Command, CommandResponse, CoordState, Effect, Write};
use consensus_coord::{CreateMode, Op, OpResult, SessionId};
use consensus_sim::{Cluster, NetworkConfig};
use rand::Rng;

const SESSION_TIMEOUT_MS: u64 = 2_000;
const HEARTBEAT_MS: u64 = 600;
const REQUEST_RETRY_MS: u64 = 1_500;
const LOCK_DIR: &str = "/locks/job";
const FENCE: &str = "/fence";
const CLIENTS: usize = 4;

struct NodeView {
    replica: CoordState,
    incarnation: u64,
    consumed: usize,
    tracker: ExpiryTracker,
    was_leader: bool,
}

#[derive(Clone, Debug)]
struct Pending {
    node: NodeId,
    incarnation: u64,
    ticket: consensus::Ticket,
    command: Command,
    sent_ms: u64,
}

#[derive(Debug)]
struct Client {
    secret: u64,
    session: Option<SessionId>,
    sequence: u64,
    node: NodeId,
    crashed: bool,
    lock_node: Option<String>,
    /// Index at which `lock_node` was created.
    lock_created: LogIndex,
    fenced_writes: u32,
    pending: Option<Pending>,
    /// A command whose retry was refused at once (NotLeader, Unavailable):
    /// it may still have been committed by its first attempt, so it is
    /// sent again unchanged (same sequence) before anything new. Dropping it
    /// would let a lock node created by the first attempt sit unknown to its
    /// owner at the head of the queue for ever.
    unsent: Option<Command>,
    next_heartbeat_ms: u64,
    heartbeat: Option<Pending>,
}

struct World<C: Core> {
    cluster: Cluster<C>,
    nodes: BTreeMap<NodeId, NodeView>,
    reference: CoordState,
    digests: BTreeMap<LogIndex, u32>,
    responses: BTreeMap<LogIndex, CommandResponse>,
    sequences: BTreeMap<String, u64>,
    clients: Vec<Client>,
    crashed_sessions: Vec<SessionId>,
    expiries: u64,
    lock_grants: u64,
}

fn now_ms<C: Core>(cluster: &Cluster<C>) -> u64 {
    cluster.now_ns() / 1_000_000
}

impl<C: Core> World<C> {
    fn new(seed: u64) -> World<C> {
        let mut cluster = Cluster::<C>::new(3, seed);
        cluster.set_network(NetworkConfig::faulty());
        let nodes = cluster
            .node_ids()
            .into_iter()
            .map(|id| {
                (
                    id,
                    NodeView {
                        replica: CoordState::new(),
                        incarnation: 0,
                        consumed: 0,
                        tracker: ExpiryTracker::new(),
                        was_leader: false,
                    },
                )
            })
            .collect();
        let mut world = World {
            cluster,
            nodes,
            reference: CoordState::new(),
            digests: BTreeMap::from([(0, CoordState::new().digest())]),
            responses: BTreeMap::new(),
            sequences: BTreeMap::new(),
            clients: Vec::new(),
            crashed_sessions: Vec::new(),
            expiries: 0,
            lock_grants: 0,
        };
        for _ in 0..CLIENTS {
            world.add_client();
        }
        world
    }

    fn add_client(&mut self) {
        let secret = self.cluster.rng().random::<u64>() | 1;
        let node = self.cluster.rng().random_range(1..=3);
        self.clients.push(Client {
            secret,
            session: None,
            sequence: 0,
            node,
            crashed: false,
            lock_node: None,
            lock_created: 0,
            fenced_writes: 0,
            pending: None,
            unsent: None,
            next_heartbeat_ms: 0,
            heartbeat: None,
        });
    }

    // ------------------------------------------------------------------
    // Replaying the committed log
    // ------------------------------------------------------------------

    fn replay_reference(&mut self) -> Result<(), String> {
        let next = self.reference.applied() + 1;
        let entries: Vec<(LogIndex, Payload)> = self
            .cluster
            .committed_log()
            .filter(|(index, _)| *index >= next)
            .map(|(index, payload)| (index, payload.clone()))
            .collect();
        for (index, payload) in entries {
            if index != self.reference.applied() + 1 {
                return Err(format!("committed log has a gap before {index}"));
            }
            let command = match &payload {
                Payload::Command(bytes) => Some(bytes.clone()),
                _ => None,
            };
            let before = self.reference.clone();
            let response = match &command {
                Some(bytes) => {
                    let (response, effects) = self.reference.apply(index, bytes);
                    self.check_sequences(&effects)?;
                    if let Some(decoded) = Command::decode(bytes) {
                        check_fenced_write(&before, &decoded, &response, index)?;
                    }
                    if matches!(response, CommandResponse::Expired(_)) {
                        self.expiries += 1;
                    }
                    Some(response)
                }
                None => {
                    skip(&mut self.reference, index);
                    None
                }
            };
            if let Some(response) = response {
                self.responses.insert(index, response);
            }
            self.digests.insert(index, self.reference.digest());
        }
        Ok(())
    }

    fn check_sequences(&mut self, effects: &[Effect]) -> Result<(), String> {
        for effect in effects {
            if let Effect::Changed(consensus_coord::state::Change::Created(created)) = effect {
                if let Some(sequence) = path::sequence_of(path::name(created)) {
                    let parent = path::parent(created).to_string();
                    if let Some(previous) = self.sequences.get(&parent) {
                        if sequence <= *previous {
                            return Err(format!(
                                "sequence under {parent} did not increase: {sequence} after {previous} ({created})"
                            ));
                        }
                    }
                    self.sequences.insert(parent, sequence);
                }
            }
        }
        Ok(())
    }

    /// The reference state as of `index` (what a snapshot there holds).
    fn reference_at(&self, index: LogIndex) -> CoordState {
        let mut state = CoordState::new();
        for (at, payload) in self
            .cluster
            .committed_log()
            .take_while(|(at, _)| *at <= index)
        {
            match payload {
                Payload::Command(bytes) => {
                    state.apply(at, bytes);
                }
                _ => skip(&mut state, at),
            }
        }
        state
    }

    fn replay_nodes(&mut self) -> Result<(), String> {
        let now = now_ms(&self.cluster);
        for id in self.cluster.node_ids() {
            if !self.cluster.is_alive(id) {
                continue;
            }
            let incarnation = self.cluster.incarnation(id);
            let applied: Vec<(LogIndex, Payload)> = {
                let view = &self.nodes[&id];
                let from = if view.incarnation == incarnation {
                    view.consumed
                } else {
                    0
                };
                self.cluster.applied(id)[from..]
                    .iter()
                    .map(|e| (e.index, e.payload.clone()))
                    .collect()
            };
            let mut view = self.nodes.remove(&id).expect("view");
            if view.incarnation != incarnation {
                view.incarnation = incarnation;
                view.consumed = 0;
                // Restarted: the state machine came back from the stored snapshot.
                let base = match self.cluster.applied(id).first() {
                    Some(entry) => entry.index - 1,
                    None => self.cluster.applied_index(id),
                };
                view.replica = self.reference_at(base);
                rebuild_tracker(&mut view, now);
            }
            for (index, payload) in applied {
                view.consumed += 1;
                if index != view.replica.applied() + 1 {
                    // A snapshot was installed: the state there is the committed prefix.
                    view.replica = self.reference_at(index - 1);
                    rebuild_tracker(&mut view, now);
                }
                match &payload {
                    Payload::Command(bytes) => {
                        let (_, effects) = view.replica.apply(index, bytes);
                        for effect in effects {
                            match effect {
                                Effect::SessionStarted {
                                    session,
                                    timeout_ms,
                                } => view.tracker.started(session, timeout_ms, index, now),
                                Effect::SessionActive(session) => {
                                    view.tracker.active(session, index, now)
                                }
                                Effect::SessionEnded(session) => view.tracker.ended(session),
                                Effect::Changed(_) => {}
                            }
                        }
                    }
                    _ => skip(&mut view.replica, index),
                }
                let expected = self.digests.get(&index).copied();
                if expected != Some(view.replica.digest()) {
                    return Err(format!(
                        "node {id}'s replica at index {index} differs from the committed log's"
                    ));
                }
            }
            check_ephemerals(id, &view.replica)?;
            self.nodes.insert(id, view);
        }
        Ok(())
    }

    // ------------------------------------------------------------------
    // The expirer and the clients
    // ------------------------------------------------------------------

    fn run_expirers(&mut self) {
        let now = now_ms(&self.cluster);
        for id in self.cluster.node_ids() {
            let Some(status) = self.cluster.try_status(id) else {
                continue;
            };
            let view = self.nodes.get_mut(&id).expect("view");
            let is_leader = status.role == Role::Leader;
            if is_leader && !view.was_leader {
                view.tracker.extend_all(now);
            }
            view.was_leader = is_leader;
            let rank = match status.role {
                Role::Leader => Some(0),
                Role::Peer => status
                    .membership
                    .all_voters()
                    .iter()
                    .position(|n| *n == id)
                    .map(|r| r as u64),
                _ => None,
            };
            let Some(rank) = rank else { continue };
            for (session, last_active) in view.tracker.due(now, rank) {
                let command = Command::ExpireSession {
                    session,
                    last_active,
                };
                let _ = self.cluster.propose(id, command.encode());
            }
        }
    }

    fn propose_for(&mut self, client: usize, command: Command) -> Option<Pending> {
        let node = self.clients[client].node;
        let now = now_ms(&self.cluster);
        match self.cluster.propose(node, command.encode()) {
            Ok(ticket) => Some(Pending {
                node,
                incarnation: self.cluster.incarnation(node),
                ticket,
                command,
                sent_ms: now,
            }),
            Err(_) => {
                // Not the leader / unavailable: try another node next time.
                let next = node % 3 + 1;
                self.clients[client].node = next;
                None
            }
        }
    }

    /// The response to a pending proposal, once known: `Some(Ok)` with the
    /// response, `Some(Err)` to retry, `None` to keep waiting.
    fn outcome(&mut self, pending: &Pending) -> Option<Result<CommandResponse, ()>> {
        let now = now_ms(&self.cluster);
        if !self.cluster.is_alive(pending.node)
            || self.cluster.incarnation(pending.node) != pending.incarnation
        {
            return Some(Err(()));
        }
        match self.cluster.outcome(pending.node, pending.ticket) {
            Some(Ok(index)) => self
                .responses
                .get(index)
                .map(|response| Ok(response.clone())),
            Some(Err(_)) => Some(Err(())),
            None if now > pending.sent_ms + REQUEST_RETRY_MS => Some(Err(())),
            None => None,
        }
    }

    fn step_clients(&mut self) {
        let now = now_ms(&self.cluster);
        for c in 0..self.clients.len() {
            if self.clients[c].crashed {
                continue;
            }
            // Heartbeats.
            if let Some(session) = self.clients[c].session {
                if let Some(pending) = self.clients[c].heartbeat.clone() {
                    match self.outcome(&pending) {
                        None => {}
                        Some(Ok(CommandResponse::Touched { dead })) if dead.contains(&session) => {
                            // The service says the session is gone.
                            self.clients[c].heartbeat = None;
                            self.clients[c].pending = None;
                            self.on_response(
                                c,
                                CommandResponse::Refused(
                                    consensus_coord::CoordError::SessionExpired(session),
                                ),
                            );
                            continue;
                        }
                        Some(_) => self.clients[c].heartbeat = None,
                    }
                }
                if self.clients[c].heartbeat.is_none() && now >= self.clients[c].next_heartbeat_ms {
                    self.clients[c].next_heartbeat_ms = now + HEARTBEAT_MS;
                    let touch = Command::Touch {
                        sessions: vec![session],
                    };
                    self.clients[c].heartbeat = self.propose_for(c, touch);
                }
            }
            // The request in flight.
            if let Some(pending) = self.clients[c].pending.clone() {
                match self.outcome(&pending) {
                    None => continue,
                    Some(Err(())) => {
                        // Retry the same command (same secret / sequence) elsewhere.
                        self.clients[c].node = self.clients[c].node % 3 + 1;
                        self.clients[c].pending = self.propose_for(c, pending.command.clone());
                        if self.clients[c].pending.is_none() {
                            self.clients[c].unsent = Some(pending.command);
                        }
                        continue;
                    }
                    Some(Ok(response)) => {
                        self.clients[c].pending = None;
                        self.on_response(c, response);
                    }
                }
            }
            self.next_request(c);
        }
    }

    fn on_response(&mut self, c: usize, response: CommandResponse) {
        let client = &mut self.clients[c];
        match response {
            CommandResponse::SessionCreated { session, .. } => {
                client.session = Some(session);
                client.next_heartbeat_ms = 0;
            }
            CommandResponse::Op(Ok(OpResult::Created { path, stat })) => {
                client.lock_node = Some(path);
                client.lock_created = stat.created;
            }
            CommandResponse::Op(Ok(OpResult::Deleted)) => client.lock_node = None,
            CommandResponse::Multi(Ok(_)) => client.fenced_writes += 1,
            CommandResponse::Multi(Err(_)) | CommandResponse::Op(Err(_)) => {
                // Lost the lock node (expired session) or a race: start over.
                client.lock_node = None;
            }
            CommandResponse::Refused(consensus_coord::CoordError::SessionExpired(_)) => {
                client.session = None;
                client.lock_node = None;
                client.sequence = 0;
                client.secret = client.secret.wrapping_add(2);
            }
            _ => {}
        }
    }

    fn next_request(&mut self, c: usize) {
        if let Some(command) = self.clients[c].unsent.take() {
            self.clients[c].pending = self.propose_for(c, command.clone());
            if self.clients[c].pending.is_none() {
                self.clients[c].unsent = Some(command);
            }
            return;
        }
        let Some(session) = self.clients[c].session else {
            let command = Command::CreateSession {
                timeout_ms: SESSION_TIMEOUT_MS,
                secret: self.clients[c].secret,
            };
            self.clients[c].pending = self.propose_for(c, command);
            return;
        };
        let write = match self.clients[c].lock_node.clone() {
            None => Write::Op(Op::Create {
                path: format!("{LOCK_DIR}/lock_"),
                data: Bytes::new(),
                mode: CreateMode::EphemeralSequential,
            }),
            Some(mine) => {
                if self.clients[c].fenced_writes >= 3 {
                    self.clients[c].fenced_writes = 0;
                    Write::Op(Op::Delete {
                        path: mine,
                        version: None,
                    })
                } else {
                    // Believe we hold the lock if our node is the lowest in the
                    // (possibly stale) replica of the node we talk to.
                    let replica = &self.nodes[&self.clients[c].node].replica;
                    if replica.applied() >= self.clients[c].lock_created
                        && replica.node(&mine).is_none()
                    {
                        // Our node is gone (the session expired meanwhile):
                        // the next write tells us; queue again.
                        self.clients[c].lock_node = None;
                        return;
                    }
                    let lowest = replica.children(LOCK_DIR).and_then(|children| {
                        children
                            .into_iter()
                            .filter_map(|n| path::sequence_of(&n).map(|s| (s, n)))
                            .min()
                    });
                    match lowest {
                        Some((_, name)) if path::join(LOCK_DIR, &name) == mine => {
                            if self.clients[c].fenced_writes == 0 {
                                self.lock_grants += 1;
                            }
                            let token = path::sequence_of(path::name(&mine)).unwrap_or(0);
                            Write::Multi(vec![
                                Op::Check {
                                    path: mine.clone(),
                                    version: None,
                                },
                                Op::SetData {
                                    path: FENCE.into(),
                                    data: Bytes::from(format!("{session}:{token}")),
                                    version: None,
                                },
                            ])
                        }
                        _ => return,
                    }
                }
            }
        };
        self.clients[c].sequence += 1;
        let command = Command::Request {
            session,
            sequence: self.clients[c].sequence,
            write,
        };
        self.clients[c].pending = self.propose_for(c, command);
    }

    // ------------------------------------------------------------------
    // The run
    // ------------------------------------------------------------------

    fn setup(&mut self) -> Result<(), String> {
        // The lock directory and the fence node, by a setup session.
        let deadline = 3_000;
        let mut done = false;
        for _ in 0..deadline {
            self.cluster.run_ticks(1);
            self.replay_reference()?;
            if self.reference.node(LOCK_DIR).is_some() && self.reference.node(FENCE).is_some() {
                done = true;
                break;
            }
            if self.cluster.now_ticks() % 50 != 0 {
                continue;
            }
            let target = self.cluster.leader().unwrap_or(1);
            let _ = self.cluster.propose(
                target,
                Command::CreateSession {
                    timeout_ms: 600_000,
                    secret: 7,
                }
                .encode(),
            );
            let session = self
                .reference
                .sessions()
                .find(|(_, s)| s.secret == 7)
                .map(|(id, _)| *id);
            if let Some(session) = session {
                let ops = vec![
                    Op::Create {
                        path: "/locks".into(),
                        data: Bytes::new(),
                        mode: CreateMode::Persistent,
                    },
                    Op::Create {
                        path: LOCK_DIR.into(),
                        data: Bytes::new(),
                        mode: CreateMode::Persistent,
                    },
                    Op::Create {
                        path: FENCE.into(),
                        data: Bytes::new(),
                        mode: CreateMode::Persistent,
                    },
                ];
                let command = Command::Request {
                    session,
                    sequence: 1,
                    write: Write::Multi(ops),
                };
                let _ = self.cluster.propose(target, command.encode());
            }
        }
        if done {
            Ok(())
        } else {
            Err("setup did not commit within 3000 ticks".into())
        }
    }

    fn tick(&mut self) -> Result<(), String> {
        self.cluster.run_ticks(1);
        self.cluster.check().map_err(|f| f.to_string())?;
        self.replay_reference()?;
        self.replay_nodes()?;
        self.run_expirers();
        self.step_clients();
        Ok(())
    }

    /// A client process crashes: it stops heartbeating for good.
    fn crash_a_client(&mut self) {
        let live: Vec<usize> = (0..self.clients.len())
            .filter(|c| !self.clients[*c].crashed && self.clients[*c].session.is_some())
            .collect();
        if live.is_empty() {
            return;
        }
        let c = live[self.cluster.rng().random_range(0..live.len())];
        self.clients[c].crashed = true;
        self.crashed_sessions
            .push(self.clients[c].session.expect("live"));
        self.add_client();
    }

    fn nemesis(&mut self) {
        let rng_draw: u32 = self.cluster.rng().random_range(0..1000);
        let ids = self.cluster.node_ids();
        match rng_draw {
            0..=2 => {
                let victim = ids[self.cluster.rng().random_range(0..ids.len())];
                let alive = ids.iter().filter(|id| self.cluster.is_alive(**id)).count();
                if alive == ids.len() {
                    self.cluster.crash(victim);
                }
            }
            3..=6 => {
                for id in ids.clone() {
                    self.cluster.restart(id);
                }
            }
            7..=8 => {
                let lone = ids[self.cluster.rng().random_range(0..ids.len())];
                self.cluster.isolate(lone);
            }
            9..=14 => self.cluster.heal(),
            _ => {}
        }
    }
}

fn skip(state: &mut CoordState, index: LogIndex) {
    // Non-command entries (no-ops, membership) advance the index only; a
    // heartbeat with no sessions is a deterministic no-op that does that.
    state.apply(index, &Command::Touch { sessions: vec![] }.encode());
}

fn rebuild_tracker(view: &mut NodeView, now: u64) {
    view.tracker.rebuild(
        view.replica
            .sessions()
            .map(|(id, s)| (*id, s.timeout_ms, s.last_active)),
        now,
    );
}

fn check_ephemerals(node: NodeId, replica: &CoordState) -> Result<(), String> {
    for (path, znode) in replica.nodes() {
        let owner = znode.stat.ephemeral_owner;
        if owner == 0 {
            continue;
        }
        match replica.session(owner) {
            Some(session) if session.ephemerals.contains(path) => {}
            Some(_) => {
                return Err(format!(
                    "node {node}: {path} is not listed among its session's ephemerals"
                ))
            }
            None => {
                return Err(format!(
                    "node {node}: ephemeral {path} outlives its session {owner:#x} (ended: {:?})",
                    replica.session_end(owner)
                ))
            }
        }
    }
    Ok(())
}

/// A fenced write that succeeded must come from the session owning the
/// lowest lock node at that index.
fn check_fenced_write(
    before: &CoordState,
    command: &Command,
    response: &CommandResponse,
    index: LogIndex,
) -> Result<(), String> {
    let Command::Request {
        session,
        write: Write::Multi(ops),
        ..
    } = command
    else {
        return Ok(());
    };
    if !matches!(response, CommandResponse::Multi(Ok(_))) {
        return Ok(());
    }
    let Some(Op::Check { path: mine, .. }) = ops.first() else {
        return Ok(());
    };
    let children = before.children(LOCK_DIR).unwrap_or_default();
    let lowest = children
        .iter()
        .filter_map(|n| path::sequence_of(n).map(|s| (s, n.clone())))
        .min();
    let Some((_, lowest)) = lowest else {
        return Err(format!(
            "index {index}: a fenced write succeeded with no lock node"
        ));
    };
    let lowest_path = path::join(LOCK_DIR, &lowest);
    let owner = before.node(&lowest_path).map(|n| n.stat.ephemeral_owner);
    if lowest_path != *mine || owner != Some(*session) {
        return Err(format!(
            "index {index}: session {session:#x} wrote as lock holder with {mine}, but the holder is {lowest_path} of {owner:?}"
        ));
    }
    Ok(())
}

fn run<C: Core>(seed: u64, ticks: u64) -> (u64, u64, u64) {
    let mut world = World::<C>::new(seed);
    let fail = |what: String| -> ! { panic!("{} seed {seed}: {what}", C::PROTOCOL) };
    if let Err(error) = world.setup() {
        fail(error);
    }
    for tick in 0..ticks {
        if tick == ticks / 4 || tick == ticks / 2 {
            world.crash_a_client();
        }
        world.nemesis();
        if let Err(error) = world.tick() {
            fail(error);
        }
    }
    // Heal everything; the service must make progress and expire the
    // crashed clients' sessions.
    world.cluster.heal();
    for id in world.cluster.node_ids() {
        world.cluster.restart(id);
    }
    let grants_before = world.lock_grants;
    for _ in 0..1500 {
        if let Err(error) = world.tick() {
            fail(error);
        }
    }
    for session in &world.crashed_sessions {
        if world.reference.session(*session).is_some() {
            fail(format!(
                "crashed client's session {session:#x} never expired"
            ));
        }
        for (id, view) in &world.nodes {
            if world.cluster.is_alive(*id)
                && view.replica.session(*session).is_some()
                && view.replica.applied() >= world.reference.applied()
            {
                fail(format!(
                    "node {id} still has the crashed session {session:#x}"
                ));
            }
        }
    }
    if world.lock_grants == grants_before {
        let clients: Vec<String> = world
            .clients
            .iter()
            .map(|c| {
                format!(
                    "{:?} node {} lock {:?} pending {:?}",
                    c.session,
                    c.node,
                    c.lock_node,
                    c.pending.as_ref().map(|p| (
                        p.node,
                        p.ticket,
                        world.cluster.outcome(p.node, p.ticket).cloned()
                    ))
                )
            })
            .collect();
        fail(format!(
            "no lock granted after healing ({} granted before); lock dir {:?}; clients {clients:#?}",
            world.lock_grants,
            world.reference.children(LOCK_DIR)
        ));
    }
    (world.lock_grants, world.expiries, world.reference.applied())
}

fn seeds() -> Vec<u64> {
    match std::env::var("COORD_SIM_SEEDS") {
        Ok(range) => {
            let (a, b) = range.split_once("..").expect("COORD_SIM_SEEDS=A..B");
            (a.parse().expect("seed")..b.parse().expect("seed")).collect()
        }
        Err(_) => vec![1, 2],
    }
}

fn run_protocol<C: Core>() {
    let ticks: u64 = std::env::var("COORD_SIM_TICKS")
        .ok()
        .and_then(|t| t.parse().ok())
        .unwrap_or(3_000);
    for seed in seeds() {
        let (grants, expiries, applied) = run::<C>(seed, ticks);
        eprintln!(
            "{} seed {seed}: {grants} lock grants, {expiries} expiries, {applied} entries",
            C::PROTOCOL
        );
        assert!(expiries > 0, "the crashed clients' sessions expired");
    }
}

#[test]
fn coordination_under_faults_raft() {
    run_protocol::<raft::RaftCore>();
}

#[test]
fn coordination_under_faults_multipaxos() {
    run_protocol::<multipaxos::MultiPaxosCore>();
}

#[test]
fn coordination_under_faults_paxos() {
    run_protocol::<paxos::PaxosCore>();
}

#[test]
fn coordination_under_faults_zab() {
    run_protocol::<zab::ZabCore>();
}
