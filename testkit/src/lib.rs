//! # consensus-testkit: golden interaction tests for any consensus core
//!
//! A protocol-generic interaction environment in the style of etcd-io/raft's
//! `testdata/*.txt`, driven by the [`datadriven`] crate. A script is a list of
//! commands; each command's printed output is checked in below it, and
//! `REWRITE=1 cargo test` regenerates the expected output.
//!
//! ```text
//! add-nodes 3
//! ----
//!
//! stabilize
//! ----
//!
//! propose-to-leader v=x
//! ----
//!
//! stabilize
//! ----
//!
//! committed
//! ----
//! 1: x
//! 2: x
//! 3: x
//! ```
//!
//! The environment is a [`consensus_sim::Cluster`] in *manual* mode: nodes
//! tick only when told, messages wait in flight until delivered, and (in
//! trace mode) each node's `Ready` is handled only by `process-ready`, so a
//! script can show every step with each protocol's one-line message
//! `Display`.
//!
//! Two flavours:
//!
//! * [`run_scripts`]`::<C>("testdata")`: a protocol crate's own scripts
//!   (trace mode: `process-ready`, `deliver-msgs` and `stabilize` print what
//!   happened, message by message);
//! * [`run_shared_scripts`]`::<C>()`: the scripts of this crate's
//!   `testdata/shared/`, in *neutral* mode: commands print only
//!   protocol-neutral facts (which commands are committed where, liveness,
//!   agreement), so one expected output holds for every protocol — one file
//!   proves "same behaviour, different protocol".
//!
//! ## Commands
//!
//! Node arguments are ids (`1`), aliases bound with `let`, or the words
//! `leader` (the live leader with the highest epoch; without one, the
//! lowest-id live node that reaches a quorum) and `follower` (the highest-id
//! live node other than `leader`). `datadriven` 0.9 parses arguments into an
//! unordered map and accepts only words, `name=value` and `name=(a,b)`, so a
//! command takes at most one bare argument and the rest are `name=value`;
//! hence `partition g1=(1) g2=(2,3)` rather than etcd's `partition (1) (2 3)`,
//! and `change-membership 1 voters=(1,2,3) learners=(4)`.
//!
//! Shared scripts name nodes by role (`let l=leader f=follower`, then
//! `crash f`, `committed f`): a protocol may elect a different id, and the
//! output prints the alias, so it stays the same for every protocol. Neutral
//! `committed` lists the commands of the agreed log up to the node's applied
//! index (whether it applied them or restored them from a snapshot); trace
//! `committed` lists the entries the node applied in this incarnation.
//!
//! | command | what it does |
//! |---|---|
//! | `add-nodes N [election-ticks=MIN] [heartbeat-ticks=H] [pre-vote=BOOL] [check-quorum=BOOL] [seed=S]` | creates nodes `1..=N` (a later call adds nodes that start with the original membership) |
//! | `let NAME=NODE ...` | binds aliases (e.g. `let a=leader b=follower`), resolved now |
//! | `tick [NODE\|all] [n=K]` | ticks nodes K times |
//! | `propose NODE v=VALUE` | raw proposal (trace: prints the ticket or the rejection) |
//! | `propose-to-leader v=VALUE` | proposes at `leader` (prints nothing) |
//! | `read-barrier NODE` | asks for a read barrier |
//! | `deliver-msgs [from=N] [to=N] [drop=(N,..)]` | delivers in-flight messages (to cut links: dropped); `drop` drops those to the listed nodes |
//! | `process-ready [NODE\|all]` | handles pending `Ready`s (trace: prints them) |
//! | `partition g1=(1) g2=(2,3)` | splits into groups (names are free) |
//! | `isolate NODE`, `cut from=A to=B [one-way]`, `heal` | link failures |
//! | `crash NODE`, `restart NODE`, `pause NODE`, `resume NODE` | node failures |
//! | `stabilize [max-ticks=N]` | delivers, handles and ticks until settled or N ticks (default 300) |
//! | `status [NODE]` | trace: role, epoch, commit, applied ...; neutral: up/crashed, caught-up, command count |
//! | `committed [NODE]` | commands each node applied this incarnation (plus snapshot marker) |
//! | `agree` | whether all live nodes applied the same commands |
//! | `outcomes` | how each proposal made through the script ended |
//! | `compact NODE` | snapshot the node's state machine at its applied index |
//! | `change-membership NODE voters=(..) [learners=(..)]` | membership change |
//! | `raw-log NODE` | the node's durable log (trace) |
#![deny(missing_docs)]

pub mod hostile;
pub mod network;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;

use bytes::Bytes;
use consensus_api::{
    Core, CoreConfig, Entry, LogIndex, Membership, NodeId, Payload, Ready, Rejected, Role, Ticket,
};
use consensus_sim::Cluster;
use datadriven::TestCase;

/// How commands print.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Every step, with protocol messages (a protocol's own scripts).
    Trace,
    /// Protocol-neutral facts only (the shared scripts).
    Neutral,
}

/// The folder of the shared, protocol-neutral scripts.
pub fn shared_scripts_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("testdata")
        .join("shared")
}

/// Runs every script under `dir` (relative to the calling crate's manifest
/// directory, as `cargo test` runs there) against the core `C`, in trace
/// mode. `REWRITE=1` regenerates the expected output.
pub fn run_scripts<C: Core>(dir: &str) {
    run_scripts_in::<C>(dir, Mode::Trace);
}

/// Runs the shared scripts (`testkit/testdata/shared/`) against `C` in
/// neutral mode: the same expected output for every protocol.
///
/// Under `REWRITE=1` a protocol crate must not rewrite the shared
/// expectations (they are the same for everyone): the shared scripts are then
/// skipped, with a note. Regenerate them from this crate
/// (`REWRITE=1 cargo test -p consensus-testkit`).
pub fn run_shared_scripts<C: Core>() {
    if std::env::var_os("REWRITE").is_some() {
        eprintln!(
            "REWRITE is set: shared scripts are not rewritten from a protocol crate; skipped"
        );
        return;
    }
    let dir = shared_scripts_dir();
    run_scripts_in::<C>(dir.to_str().expect("UTF-8 path"), Mode::Neutral);
}

/// Runs every script under `dir` in the given mode.
pub fn run_scripts_in<C: Core>(dir: &str, mode: Mode) {
    datadriven::walk(dir, |file| {
        let mut env = Env::<C>::new(mode);
        file.run(|case| env.handle(case));
    });
}

/// One proposal made through a script.
struct Issued {
    node: NodeId,
    incarnation: u64,
    ticket: Ticket,
    label: String,
}

/// The interaction environment of one script.
pub struct Env<C: Core> {
    mode: Mode,
    cluster: Option<Cluster<C>>,
    aliases: BTreeMap<String, NodeId>,
    issued: Vec<Issued>,
    original: Option<Membership>,
}

impl<C: Core> Env<C> {
    /// An empty environment.
    pub fn new(mode: Mode) -> Self {
        Env {
            mode,
            cluster: None,
            aliases: BTreeMap::new(),
            issued: Vec::new(),
            original: None,
        }
    }

    fn trace(&self) -> bool {
        self.mode == Mode::Trace
    }

    /// Runs one command and returns its output (errors are printed as
    /// output, so a script can show them).
    pub fn handle(&mut self, case: &mut TestCase) -> String {
        let result = self.dispatch(case);
        let mut out = match result {
            Ok(out) => out,
            Err(error) => format!("error: {error}\n"),
        };
        if let Some(cluster) = &self.cluster {
            if let Some(failure) = cluster.failure() {
                out.push_str(&format!("INVARIANT VIOLATED: {failure}\n"));
            }
        }
        out
    }

    fn cluster(&mut self) -> Result<&mut Cluster<C>, String> {
        self.cluster
            .as_mut()
            .ok_or_else(|| "no nodes yet: start with add-nodes".to_owned())
    }

    fn dispatch(&mut self, case: &mut TestCase) -> Result<String, String> {
        let directive = case.directive.clone();
        let out = match directive.as_str() {
            "add-nodes" => self.add_nodes(case)?,
            "let" => self.bind(case)?,
            "tick" => self.tick(case)?,
            "propose" => self.propose(case, false)?,
            "propose-to-leader" => self.propose(case, true)?,
            "read-barrier" => self.read_barrier(case)?,
            "deliver-msgs" => self.deliver(case)?,
            "process-ready" => self.process_ready(case)?,
            "partition" => self.partition(case)?,
            "isolate" => {
                let node = self.node_arg(case)?;
                self.cluster()?.isolate(node);
                String::new()
            }
            "cut" => {
                let from = self.named_node(case, "from")?;
                let to = self.named_node(case, "to")?;
                let one_way = case.args.remove("one-way").is_some();
                let cluster = self.cluster()?;
                if one_way {
                    cluster.cut_one_way(from, to);
                } else {
                    cluster.cut(from, to);
                }
                String::new()
            }
            "heal" => {
                self.cluster()?.heal();
                String::new()
            }
            "crash" => {
                let node = self.node_arg(case)?;
                self.cluster()?.crash(node);
                String::new()
            }
            "restart" => {
                let node = self.node_arg(case)?;
                self.cluster()?.restart(node);
                String::new()
            }
            "pause" => {
                let node = self.node_arg(case)?;
                self.cluster()?.pause(node);
                String::new()
            }
            "resume" => {
                let node = self.node_arg(case)?;
                self.cluster()?.resume(node);
                String::new()
            }
            "stabilize" => self.stabilize(case)?,
            "status" => self.status(case)?,
            "committed" => self.committed(case)?,
            "agree" => self.agree()?,
            "outcomes" => self.outcomes()?,
            "compact" => self.compact(case)?,
            "change-membership" => self.change_membership(case)?,
            "raw-log" => self.raw_log(case)?,
            other => return Err(format!("unknown command `{other}`")),
        };
        if let Some(extra) = case.args.keys().next() {
            return Err(format!("unused argument `{extra}`"));
        }
        Ok(out)
    }

    // ------------------------------------------------------------------
    // Arguments
    // ------------------------------------------------------------------

    fn bare_args(case: &TestCase) -> Vec<String> {
        let mut bare: Vec<String> = case
            .args
            .iter()
            .filter(|(_, values)| values.is_empty())
            .map(|(name, _)| name.clone())
            .collect();
        bare.sort();
        bare
    }

    fn take_bare(case: &mut TestCase) -> Result<Option<String>, String> {
        let bare = Self::bare_args(case);
        match bare.as_slice() {
            [] => Ok(None),
            [one] => {
                case.args.remove(one);
                Ok(Some(one.clone()))
            }
            many => Err(format!("at most one bare argument, got {many:?}")),
        }
    }

    fn resolve(&mut self, name: &str) -> Result<NodeId, String> {
        if let Ok(id) = name.parse::<NodeId>() {
            return Ok(id);
        }
        if let Some(id) = self.aliases.get(name) {
            return Ok(*id);
        }
        match name {
            "leader" => self.leader_or_proposer(),
            "follower" => {
                let leader = self.leader_or_proposer()?;
                let cluster = self.cluster()?;
                cluster
                    .node_ids()
                    .into_iter()
                    .rev()
                    .find(|&n| n != leader && cluster.is_alive(n))
                    .ok_or_else(|| "no live follower".to_owned())
            }
            other => Err(format!("unknown node `{other}`")),
        }
    }

    /// The leader, or the lowest-id live node that reaches a quorum (the
    /// natural proposer of a leaderless protocol).
    fn leader_or_proposer(&mut self) -> Result<NodeId, String> {
        let cluster = self.cluster()?;
        if let Some(leader) = cluster.leader() {
            return Ok(leader);
        }
        let ids = cluster.node_ids();
        for &id in &ids {
            if !cluster.is_alive(id) {
                continue;
            }
            let membership = cluster.status(id).membership;
            let reach = cluster.links().reachable_from(id, &ids);
            let live: std::collections::BTreeSet<NodeId> =
                reach.into_iter().filter(|&n| cluster.is_alive(n)).collect();
            if membership.is_quorum_set(&live) {
                return Ok(id);
            }
        }
        ids.into_iter()
            .find(|&n| cluster.is_alive(n))
            .ok_or_else(|| "no live node".to_owned())
    }

    fn node_arg(&mut self, case: &mut TestCase) -> Result<NodeId, String> {
        let name = Self::take_bare(case)?.ok_or("a node argument is required")?;
        self.resolve(&name)
    }

    /// The nodes a command addresses, each with the label to print: the
    /// name used in the script (so an alias prints as the alias, which keeps
    /// neutral output independent of which id a role landed on), or the id
    /// for `all`.
    fn labelled_nodes(&mut self, case: &mut TestCase) -> Result<Vec<(NodeId, String)>, String> {
        match Self::take_bare(case)?.as_deref() {
            None | Some("all") => Ok(self
                .cluster()?
                .node_ids()
                .into_iter()
                .map(|n| (n, n.to_string()))
                .collect()),
            Some(name) => Ok(vec![(self.resolve(name)?, name.to_owned())]),
        }
    }

    fn nodes_arg(&mut self, case: &mut TestCase) -> Result<Vec<NodeId>, String> {
        Ok(self
            .labelled_nodes(case)?
            .into_iter()
            .map(|(n, _)| n)
            .collect())
    }

    fn named_node(&mut self, case: &mut TestCase, arg: &str) -> Result<NodeId, String> {
        let values = case
            .args
            .remove(arg)
            .ok_or_else(|| format!("missing {arg}="))?;
        let [value] = values.as_slice() else {
            return Err(format!("{arg}= takes one node"));
        };
        self.resolve(value)
    }

    fn node_list(&mut self, case: &mut TestCase, arg: &str) -> Result<Option<Vec<NodeId>>, String> {
        let Some(values) = case.args.remove(arg) else {
            return Ok(None);
        };
        values
            .iter()
            .map(|v| self.resolve(v))
            .collect::<Result<Vec<_>, _>>()
            .map(Some)
    }

    fn number<T>(case: &mut TestCase, arg: &str) -> Result<Option<T>, String>
    where
        T: std::str::FromStr,
        T::Err: std::error::Error + Send + Sync + 'static,
    {
        case.try_take_arg::<T>(arg).map_err(|e| e.to_string())
    }

    // ------------------------------------------------------------------
    // Commands
    // ------------------------------------------------------------------

    fn add_nodes(&mut self, case: &mut TestCase) -> Result<String, String> {
        let count: usize = Self::take_bare(case)?
            .ok_or("add-nodes needs a count")?
            .parse()
            .map_err(|e| format!("count: {e}"))?;
        let election: Option<u64> = Self::number(case, "election-ticks")?;
        let heartbeat: Option<u64> = Self::number(case, "heartbeat-ticks")?;
        let pre_vote: Option<bool> = Self::number(case, "pre-vote")?;
        let check_quorum: Option<bool> = Self::number(case, "check-quorum")?;
        let seed: u64 = Self::number(case, "seed")?.unwrap_or(1);
        let configure = move |config: &mut CoreConfig| {
            if let Some(min) = election {
                config.election_timeout_ticks_min = min;
                config.election_timeout_ticks_max = 2 * min;
            }
            if let Some(h) = heartbeat {
                config.heartbeat_interval_ticks = h;
            }
            if let Some(p) = pre_vote {
                config.pre_vote = p;
            }
            if let Some(c) = check_quorum {
                config.check_quorum = c;
            }
        };
        match &mut self.cluster {
            None => {
                let mut cluster = Cluster::<C>::with_config(count, seed, configure);
                cluster.set_manual(true);
                cluster.set_defer_ready(self.mode == Mode::Trace);
                cluster.set_reproduce("re-run this script".into());
                self.original = Some(Membership::new(1..=count as NodeId));
                self.cluster = Some(cluster);
            }
            Some(cluster) => {
                let first = cluster.node_ids().last().copied().unwrap_or(0) + 1;
                let membership = self.original.clone().unwrap_or_default();
                for id in first..first + count as NodeId {
                    cluster.add_node(id, membership.clone(), configure);
                }
            }
        }
        Ok(String::new())
    }

    fn bind(&mut self, case: &mut TestCase) -> Result<String, String> {
        let mut bindings: Vec<(String, Vec<String>)> = case.args.drain().collect();
        bindings.sort();
        let mut resolved = Vec::new();
        for (name, values) in bindings {
            let [value] = values.as_slice() else {
                return Err(format!("let {name}=NODE"));
            };
            resolved.push((name, self.resolve(value)?));
        }
        self.aliases.extend(resolved);
        Ok(String::new())
    }

    fn tick(&mut self, case: &mut TestCase) -> Result<String, String> {
        let nodes = self.nodes_arg(case)?;
        let times: u64 = Self::number(case, "n")?.unwrap_or(1);
        for _ in 0..times {
            for &node in &nodes {
                self.cluster()?.tick_node(node);
            }
        }
        Ok(String::new())
    }

    fn propose(&mut self, case: &mut TestCase, to_leader: bool) -> Result<String, String> {
        let node = if to_leader {
            self.leader_or_proposer()?
        } else {
            self.node_arg(case)?
        };
        let value: String = case.take_arg("v").map_err(|e| e.to_string())?;
        let cluster = self.cluster()?;
        let incarnation = cluster.incarnation(node);
        let result = cluster.propose(node, Bytes::from(value.clone()));
        match result {
            Ok(ticket) => {
                self.issued.push(Issued {
                    node,
                    incarnation,
                    ticket,
                    label: value,
                });
                Ok(if self.trace() && !to_leader {
                    format!("{node}: proposed {ticket}\n")
                } else {
                    String::new()
                })
            }
            Err(rejected) => Ok(if self.trace() && !to_leader {
                format!("{node}: rejected: {rejected}\n")
            } else {
                String::new()
            }),
        }
    }

    fn read_barrier(&mut self, case: &mut TestCase) -> Result<String, String> {
        let node = self.node_arg(case)?;
        let cluster = self.cluster()?;
        let incarnation = cluster.incarnation(node);
        match cluster.read_barrier(node) {
            Ok(ticket) => {
                self.issued.push(Issued {
                    node,
                    incarnation,
                    ticket,
                    label: "read-barrier".into(),
                });
                Ok(if self.trace() {
                    format!("{node}: read barrier {ticket}\n")
                } else {
                    String::new()
                })
            }
            Err(rejected) => Ok(format!(
                "{node}: rejected: {}\n",
                neutral_rejection(&rejected, self.mode)
            )),
        }
    }

    fn deliver(&mut self, case: &mut TestCase) -> Result<String, String> {
        let from = match case.args.contains_key("from") {
            true => Some(self.named_node(case, "from")?),
            false => None,
        };
        let to = match case.args.contains_key("to") {
            true => Some(self.named_node(case, "to")?),
            false => None,
        };
        let drop = self.node_list(case, "drop")?.unwrap_or_default();
        let cluster = self.cluster()?;
        let links = cluster.links().clone();
        let (delivered, dropped) = cluster.deliver_where(|m| {
            if from.is_some_and(|f| f != m.from) || to.is_some_and(|t| t != m.to) {
                return None;
            }
            Some(!drop.contains(&m.to) && links.is_up(m.from, m.to))
        });
        if !self.trace() {
            return Ok(String::new());
        }
        let mut out = String::new();
        for m in delivered {
            let _ = writeln!(out, "{}->{} {}", m.from, m.to, m.message);
        }
        for m in dropped {
            let _ = writeln!(out, "dropped: {}->{} {}", m.from, m.to, m.message);
        }
        Ok(out)
    }

    fn process_ready(&mut self, case: &mut TestCase) -> Result<String, String> {
        let nodes = self.nodes_arg(case)?;
        let mut out = String::new();
        for node in nodes {
            out.push_str(&self.handle_ready_of(node)?);
        }
        Ok(out)
    }

    fn handle_ready_of(&mut self, node: NodeId) -> Result<String, String> {
        let cluster = self.cluster()?;
        if !cluster.is_alive(node) || cluster.is_paused(node) {
            return Ok(String::new());
        }
        let readies = cluster.process_ready(node);
        let mut out = String::new();
        if self.trace() {
            for ready in &readies {
                describe_ready(&mut out, node, ready);
            }
        }
        Ok(out)
    }

    fn partition(&mut self, case: &mut TestCase) -> Result<String, String> {
        let mut names: Vec<String> = case.args.keys().cloned().collect();
        names.sort();
        let mut groups = Vec::new();
        for name in names {
            groups.push(self.node_list(case, &name)?.unwrap_or_default());
        }
        let refs: Vec<&[NodeId]> = groups.iter().map(Vec::as_slice).collect();
        self.cluster()?.partition(&refs);
        Ok(String::new())
    }

    /// Pending tickets of live nodes (proposals made through the script).
    fn pending(&self) -> usize {
        let Some(cluster) = &self.cluster else {
            return 0;
        };
        self.issued
            .iter()
            .filter(|i| {
                cluster.is_alive(i.node)
                    && cluster.incarnation(i.node) == i.incarnation
                    && cluster.outcome(i.node, i.ticket).is_none()
            })
            .count()
    }

    /// Settled: nothing in flight, no pending proposal, and in every group
    /// of connected live nodes all applied the highest commit index of the
    /// group, with one leader they all follow (for leader-based protocols).
    fn settled(&self) -> bool {
        let Some(cluster) = &self.cluster else {
            return true;
        };
        if !cluster.in_flight().is_empty() || self.pending() > 0 {
            return false;
        }
        let ids = cluster.node_ids();
        for &id in &ids {
            if !cluster.is_alive(id) || cluster.is_paused(id) {
                continue;
            }
            let group: Vec<NodeId> = ids
                .iter()
                .copied()
                .filter(|&n| {
                    cluster.is_alive(n)
                        && !cluster.is_paused(n)
                        && cluster.links().is_up(id, n)
                        && cluster.links().is_up(n, id)
                })
                .collect();
            let statuses: Vec<_> = group.iter().map(|&n| cluster.status(n)).collect();
            let me = cluster.status(id);
            let commit = statuses.iter().map(|s| s.commit_index).max().unwrap_or(0);
            if me.applied_index < commit || me.commit_index < commit {
                return false;
            }
            if me.role == Role::Candidate {
                return false;
            }
            let members = me.membership.all_voters();
            let reachable: std::collections::BTreeSet<NodeId> = group.iter().copied().collect();
            let leader_based = me.role != Role::Peer;
            if leader_based && me.membership.is_quorum_set(&reachable) && members.contains(&id) {
                // A quorum is reachable: there must be a leader everyone here follows.
                let Some(leader) = me.leader else {
                    return false;
                };
                if !group.contains(&leader) || cluster.status(leader).role != Role::Leader {
                    return false;
                }
            }
        }
        true
    }

    fn stabilize(&mut self, case: &mut TestCase) -> Result<String, String> {
        let max_ticks: u64 = Self::number(case, "max-ticks")?.unwrap_or(300);
        let mut out = String::new();
        let mut ticks = 0;
        loop {
            // Quiesce: handle output and deliver messages until nothing moves.
            for _ in 0..10_000 {
                let mut moved = false;
                for node in self.cluster()?.node_ids() {
                    let text = self.handle_ready_of(node)?;
                    moved |= !text.is_empty();
                    out.push_str(&text);
                }
                let cluster = self.cluster()?;
                if !cluster.in_flight().is_empty() {
                    moved = true;
                    let links = cluster.links().clone();
                    let (delivered, dropped) =
                        cluster.deliver_where(|m| Some(links.is_up(m.from, m.to)));
                    if self.trace() {
                        for m in delivered {
                            let _ = writeln!(out, "{}->{} {}", m.from, m.to, m.message);
                        }
                        for m in dropped {
                            let _ = writeln!(out, "dropped: {}->{} {}", m.from, m.to, m.message);
                        }
                    }
                }
                if !moved || self.cluster()?.failure().is_some() {
                    break;
                }
            }
            if self.settled() || self.cluster()?.failure().is_some() {
                break;
            }
            if ticks >= max_ticks {
                if self.trace() {
                    let _ = writeln!(out, "not settled after {max_ticks} ticks");
                }
                break;
            }
            ticks += 1;
            if self.trace() {
                let _ = writeln!(out, "> tick all");
            }
            for node in self.cluster()?.node_ids() {
                self.cluster()?.tick_node(node);
            }
        }
        Ok(out)
    }

    fn status(&mut self, case: &mut TestCase) -> Result<String, String> {
        let nodes = self.labelled_nodes(case)?;
        let mut out = String::new();
        let cluster = self.cluster.as_ref().expect("nodes exist");
        let max_commit = cluster
            .node_ids()
            .into_iter()
            .filter_map(|n| cluster.try_status(n))
            .map(|s| s.commit_index)
            .max()
            .unwrap_or(0);
        for (node, label) in nodes {
            let Some(status) = cluster.try_status(node) else {
                let _ = writeln!(out, "{label}: crashed");
                continue;
            };
            let state = if cluster.is_paused(node) {
                "paused"
            } else {
                "up"
            };
            if self.trace() {
                let _ = writeln!(
                    out,
                    "{label}: {state} {} epoch={} leader={} commit={} applied={} last={} snapshot={} members={}",
                    status.role,
                    status.epoch,
                    status.leader.map_or("none".to_owned(), |l| l.to_string()),
                    status.commit_index,
                    status.applied_index,
                    status.last_index,
                    status.snapshot_index,
                    status.membership
                );
            } else {
                let caught_up = if status.applied_index >= max_commit {
                    "caught-up"
                } else {
                    "behind"
                };
                let commands = Self::commands_of(cluster, node).len();
                let _ = writeln!(out, "{label}: {state} {caught_up} commands={commands}");
            }
        }
        Ok(out)
    }

    /// Commands node `node` has applied, protocol-neutrally: the agreed
    /// committed log up to its applied index, whether it applied each entry
    /// itself or restored it from a snapshot.
    fn commands_of(cluster: &Cluster<C>, node: NodeId) -> Vec<String> {
        let applied = cluster.applied_index(node);
        cluster
            .committed_log()
            .take_while(|(index, _)| *index <= applied)
            .filter_map(|(_, payload)| match payload {
                Payload::Command(bytes) => Some(printable(bytes)),
                _ => None,
            })
            .collect()
    }

    fn committed(&mut self, case: &mut TestCase) -> Result<String, String> {
        let nodes = self.labelled_nodes(case)?;
        let cluster = self.cluster.as_ref().expect("nodes exist");
        let mut out = String::new();
        for (node, label) in nodes {
            if !cluster.is_alive(node) {
                let _ = writeln!(out, "{label}: crashed");
                continue;
            }
            if self.trace() {
                let entries: Vec<String> =
                    cluster.applied(node).iter().map(describe_entry).collect();
                let _ = writeln!(out, "{label}: [{}]", entries.join(", "));
            } else {
                let _ = writeln!(
                    out,
                    "{label}: [{}]",
                    Self::commands_of(cluster, node).join(" ")
                );
            }
        }
        Ok(out)
    }

    fn agree(&mut self) -> Result<String, String> {
        let cluster = self.cluster()?;
        let live: Vec<NodeId> = cluster
            .node_ids()
            .into_iter()
            .filter(|&n| cluster.is_alive(n))
            .collect();
        let logs: BTreeMap<NodeId, Vec<Entry>> = live
            .iter()
            .map(|&n| (n, cluster.applied(n).to_vec()))
            .collect();
        // Compare by index over the span every node applied.
        let mut by_index: BTreeMap<LogIndex, (&Payload, NodeId)> = BTreeMap::new();
        for (node, entries) in &logs {
            for entry in entries {
                if let Some((payload, other)) = by_index.get(&entry.index) {
                    if **payload != entry.payload {
                        return Ok(format!(
                            "disagreement at index {}: node {other} applied {payload}, node {node} applied {}\n",
                            entry.index, entry.payload
                        ));
                    }
                } else {
                    by_index.insert(entry.index, (&entry.payload, *node));
                }
            }
        }
        let applied: Vec<LogIndex> = live.iter().map(|&n| cluster.applied_index(n)).collect();
        let same = applied.windows(2).all(|w| w[0] == w[1]);
        Ok(format!(
            "{} live nodes agree; {}\n",
            live.len(),
            if same {
                "all applied the same prefix"
            } else {
                "some are behind"
            }
        ))
    }

    fn outcomes(&mut self) -> Result<String, String> {
        let cluster = self.cluster.as_ref().ok_or("no nodes yet")?;
        let mut out = String::new();
        for issued in &self.issued {
            let state = if cluster.incarnation(issued.node) != issued.incarnation
                || !cluster.is_alive(issued.node)
            {
                "lost (node crashed)".to_owned()
            } else {
                match cluster.outcome(issued.node, issued.ticket) {
                    None => "pending".to_owned(),
                    Some(Ok(index)) if self.trace() => format!("committed at {index}"),
                    Some(Ok(_)) => "committed".to_owned(),
                    Some(Err(rejected)) => {
                        format!("failed: {}", neutral_rejection(rejected, self.mode))
                    }
                }
            };
            let _ = writeln!(out, "{}: {state}", issued.label);
        }
        Ok(out)
    }

    fn compact(&mut self, case: &mut TestCase) -> Result<String, String> {
        let (node, label) = self
            .labelled_nodes(case)?
            .into_iter()
            .next()
            .ok_or("compact NODE")?;
        let trace = self.trace();
        let cluster = self.cluster()?;
        Ok(match cluster.compact(node) {
            Ok(index) if trace => format!("{label}: snapshot at {index}\n"),
            Ok(_) => format!("{label}: snapshot taken\n"),
            Err(rejected) => format!("{label}: rejected: {rejected}\n"),
        })
    }

    fn change_membership(&mut self, case: &mut TestCase) -> Result<String, String> {
        let node = self.node_arg(case)?;
        let voters = self
            .node_list(case, "voters")?
            .ok_or("voters=(..) is required")?;
        let learners = self.node_list(case, "learners")?.unwrap_or_default();
        let cluster = self.cluster()?;
        let incarnation = cluster.incarnation(node);
        match cluster.change_membership(node, Membership::with_learners(voters.clone(), learners)) {
            Ok(ticket) => {
                self.issued.push(Issued {
                    node,
                    incarnation,
                    ticket,
                    label: format!("change-membership {voters:?}"),
                });
                Ok(if self.trace() {
                    format!("{node}: {ticket}\n")
                } else {
                    String::new()
                })
            }
            Err(rejected) => Ok(format!(
                "{node}: rejected: {}\n",
                neutral_rejection(&rejected, self.mode)
            )),
        }
    }

    fn raw_log(&mut self, case: &mut TestCase) -> Result<String, String> {
        let node = self.node_arg(case)?;
        let cluster = self.cluster()?;
        let durable = cluster.store(node).durable();
        let mut out = String::new();
        if let Some(snapshot) = &durable.snapshot {
            let _ = writeln!(
                out,
                "snapshot: index={} epoch={} members={}",
                snapshot.index, snapshot.epoch, snapshot.membership
            );
        }
        if durable.entries.is_empty() {
            out.push_str("log is empty\n");
        }
        for entry in durable.entries.values() {
            let _ = writeln!(out, "{}", describe_entry(entry));
        }
        Ok(out)
    }
}

/// The text of a payload for golden output.
fn printable(bytes: &Bytes) -> String {
    match std::str::from_utf8(bytes) {
        Ok(text) if !text.is_empty() && text.chars().all(|c| c.is_ascii_graphic()) => {
            text.to_owned()
        }
        _ => format!("{:?}", Payload::Command(bytes.clone())),
    }
}

fn describe_entry(entry: &Entry) -> String {
    match &entry.payload {
        Payload::Command(bytes) => format!("{}@{}: {}", entry.index, entry.epoch, printable(bytes)),
        other => format!("{}@{}: {}", entry.index, entry.epoch, other),
    }
}

/// A rejection as printed: the full error in trace mode, the kind only in
/// neutral mode.
fn neutral_rejection(rejected: &Rejected, mode: Mode) -> String {
    if mode == Mode::Trace {
        return rejected.to_string();
    }
    match rejected {
        Rejected::NotLeader { .. } => "not leader",
        Rejected::Unavailable => "unavailable",
        Rejected::Overloaded => "overloaded",
        Rejected::OutcomeUnknown { .. } => "outcome unknown",
        Rejected::ChangeInProgress => "change in progress",
        Rejected::InvalidMembership(_) => "invalid membership",
        Rejected::InvalidCompaction { .. } => "invalid compaction",
        Rejected::Unsupported { .. } => "unsupported",
    }
    .to_owned()
}

fn describe_ready<M: std::fmt::Display>(out: &mut String, node: NodeId, ready: &Ready<M>) {
    let _ = writeln!(out, "> {node} handling Ready #{}", ready.number);
    if let Some(hard_state) = &ready.hard_state {
        let _ = writeln!(
            out,
            "  hard state: {}B{}",
            hard_state.len(),
            if ready.must_sync { " (sync)" } else { "" }
        );
    }
    if let Some(from) = ready.truncate_from {
        let _ = writeln!(out, "  truncate from {from}");
    }
    if let Some(snapshot) = &ready.snapshot {
        let _ = writeln!(
            out,
            "  install snapshot index={} epoch={} members={}",
            snapshot.index, snapshot.epoch, snapshot.membership
        );
    }
    if !ready.append.is_empty() {
        let entries: Vec<String> = ready.append.iter().map(describe_entry).collect();
        let _ = writeln!(out, "  append: {}", entries.join(", "));
    }
    for (to, message) in &ready.messages {
        let _ = writeln!(out, "  send {node}->{to} {message}");
    }
    if !ready.committed.is_empty() {
        let entries: Vec<String> = ready.committed.iter().map(describe_entry).collect();
        let _ = writeln!(out, "  apply: {}", entries.join(", "));
    }
    for (ticket, result) in &ready.completed {
        match result {
            Ok(index) => {
                let _ = writeln!(out, "  finish {ticket}: ok at {index}");
            }
            Err(rejected) => {
                let _ = writeln!(out, "  finish {ticket}: {rejected}");
            }
        }
    }
}
