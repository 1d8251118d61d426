//! From a history to one independent search problem per key.
//!
//! * real-time order: every event gets a *rank* (its position in real time):
//!   sorted by `time_ns` when every event carries one (ties keep line order),
//!   line order otherwise;
//! * invocations are paired with their completions and classified:
//!   `ok` operations must be linearized inside their interval; failed
//!   `write`/`read` and `info` (or never completed) reads are dropped (they
//!   had no effect, or no observable one); a failed `cas` is kept as a
//!   read-only operation ("the register did not hold `expected`"); `info`
//!   (or never completed) writes and cas may take effect at any point after
//!   their invocation, or never;
//! * values are interned into small integers per key (0 is `null`, the
//!   initial value);
//! * `info` operations that provably cannot matter are pruned (see
//!   [`prune_unobservable_infos`].

use std::collections::{BTreeMap, HashMap, HashSet};
use std::hash::BuildHasherDefault;

use super::memo::MixHasher;

use crate::history::{Event, EventType, Op};

/// A value id: index into [`KeyProblem::values`]; 0 is `null`.
pub(crate) type ValueId = u32;

/// The interned `null`.
pub(crate) const NULL: ValueId = 0;

/// What a completed (must-be-linearized) operation does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CompletedKind {
    /// Read that returned the value.
    Read(ValueId),
    /// Write of the value.
    Write(ValueId),
    /// Compare-and-set that applied: register held `expected`, now `new`.
    CasOk(ValueId, ValueId),
    /// Compare-and-set whose comparison failed: register did not hold the
    /// value, and it was not changed.
    CasFail(ValueId),
}

/// What an operation of unknown outcome would do if it took effect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum InfoKind {
    /// Write of the value.
    Write(ValueId),
    /// Compare-and-set `(expected, new)`.
    Cas(ValueId, ValueId),
}

impl InfoKind {
    /// The value it may set.
    pub(crate) fn new_value(self) -> ValueId {
        match self {
            InfoKind::Write(v) | InfoKind::Cas(_, v) => v,
        }
    }
}

/// An operation that completed (`ok`, or `fail` for a cas).
#[derive(Debug, Clone)]
pub(crate) struct CompletedOp {
    /// Rank of the invocation.
    pub(crate) call: u32,
    /// Rank of the completion.
    pub(crate) ret: u32,
    /// What it did.
    pub(crate) kind: CompletedKind,
    /// Index of the invocation event.
    pub(crate) invoke_event: usize,
    /// Index of the completion event.
    pub(crate) complete_event: usize,
}

/// An operation of unknown outcome (`info`, or never completed).
#[derive(Debug, Clone)]
pub(crate) struct InfoOp {
    /// Rank of the invocation.
    pub(crate) call: u32,
    /// What it would do.
    pub(crate) kind: InfoKind,
    /// Index of the invocation event.
    pub(crate) invoke_event: usize,
    /// Index of the `info` event (`None`: never completed).
    pub(crate) complete_event: Option<usize>,
}

/// Everything the search needs about one key.
#[derive(Debug, Clone, Default)]
pub(crate) struct KeyProblem {
    /// Interned values: `values[0]` is `None` (`null`).
    pub(crate) values: Vec<Option<i64>>,
    /// Completed operations, sorted by invocation rank.
    pub(crate) ops: Vec<CompletedOp>,
    /// Operations of unknown outcome that may matter, sorted by invocation rank.
    pub(crate) infos: Vec<InfoOp>,
    /// Number of unknown-outcome operations pruned as unobservable.
    pub(crate) pruned_infos: usize,
    /// Number of events dropped because they cannot constrain anything
    /// (failed reads and writes, reads of unknown outcome).
    pub(crate) dropped: usize,
}

impl KeyProblem {
    fn intern(&mut self, index: &mut Interner, v: Option<i64>) -> ValueId {
        *index.entry(v).or_insert_with(|| {
            self.values.push(v);
            (self.values.len() - 1) as ValueId
        })
    }
}

/// Value ids of one key's values.
type Interner = HashMap<Option<i64>, ValueId>;

/// Ranks of the events: position in real time.
pub(crate) fn ranks(events: &[Event]) -> Vec<u32> {
    let mut order: Vec<usize> = (0..events.len()).collect();
    if events.iter().all(|e| e.time_ns.is_some()) {
        // Stable: equal timestamps keep line order.
        order.sort_by_key(|&i| events[i].time_ns);
    }
    let mut rank = vec![0u32; events.len()];
    for (position, &i) in order.iter().enumerate() {
        rank[i] = position as u32;
    }
    rank
}

/// Splits a validated history into per-key problems, in key order.
pub(crate) fn partition(events: &[Event]) -> BTreeMap<String, KeyProblem> {
    let rank = ranks(events);
    let mut key_ids: HashMap<&str, usize> = HashMap::new();
    let mut problems: Vec<(&str, KeyProblem, Interner)> = Vec::new();
    let mut outstanding: HashMap<u64, usize, BuildHasherDefault<MixHasher>> = HashMap::default();
    // (invocation, completion) pairs in invocation order.
    let mut pairs: Vec<(usize, Option<usize>)> = Vec::new();
    for (i, e) in events.iter().enumerate() {
        if e.kind == EventType::Invoke {
            outstanding.insert(e.process, pairs.len());
            pairs.push((i, None));
        } else if let Some(p) = outstanding.remove(&e.process) {
            pairs[p].1 = Some(i);
        }
    }
    for (inv, done) in pairs {
        let invoke = &events[inv];
        let id = *key_ids.entry(invoke.key.as_str()).or_insert_with(|| {
            problems.push((
                invoke.key.as_str(),
                KeyProblem {
                    values: vec![None],
                    ..KeyProblem::default()
                },
                HashMap::from([(None, NULL)]),
            ));
            problems.len() - 1
        });
        let (_, problem, interner) = &mut problems[id];
        let outcome = done.map(|d| (d, events[d].kind));
        // The completion carries the read value; invocation and completion
        // agree on everything else (validated).
        let op = done.map_or(invoke.op, |d| events[d].op);
        let known = |kind| CompletedOp {
            call: rank[inv],
            ret: done.map_or(u32::MAX, |d| rank[d]),
            kind,
            invoke_event: inv,
            complete_event: done.unwrap_or(inv),
        };
        let unknown = |kind| InfoOp {
            call: rank[inv],
            kind,
            invoke_event: inv,
            complete_event: done,
        };
        match (op, outcome.map(|(_, k)| k)) {
            (Op::Read(v), Some(EventType::Ok)) => {
                let v = problem.intern(interner, v);
                problem.ops.push(known(CompletedKind::Read(v)));
            }
            (Op::Write(v), Some(EventType::Ok)) => {
                let v = problem.intern(interner, Some(v));
                problem.ops.push(known(CompletedKind::Write(v)));
            }
            (Op::Cas(e, n), Some(EventType::Ok)) => {
                let e = problem.intern(interner, Some(e));
                let n = problem.intern(interner, Some(n));
                problem.ops.push(known(CompletedKind::CasOk(e, n)));
            }
            (Op::Cas(e, _), Some(EventType::Fail)) => {
                let e = problem.intern(interner, Some(e));
                problem.ops.push(known(CompletedKind::CasFail(e)));
            }
            (Op::Write(v), Some(EventType::Info) | None) => {
                let v = problem.intern(interner, Some(v));
                problem.infos.push(unknown(InfoKind::Write(v)));
            }
            (Op::Cas(e, n), Some(EventType::Info) | None) => {
                let e = problem.intern(interner, Some(e));
                let n = problem.intern(interner, Some(n));
                problem.infos.push(unknown(InfoKind::Cas(e, n)));
            }
            // Failed reads and writes had no effect; a read of unknown
            // outcome has no effect and tells nothing.
            (Op::Read(_), _) | (Op::Write(_), Some(EventType::Fail)) => problem.dropped += 1,
            (_, Some(EventType::Invoke)) => {}
        }
    }
    problems
        .into_iter()
        .map(|(key, mut problem, _)| {
            problem.ops.sort_by_key(|o| o.call);
            problem.infos.sort_by_key(|o| o.call);
            prune_unobservable_infos(&mut problem);
            (key.to_string(), problem)
        })
        .collect()
}

/// Drops operations of unknown outcome that cannot change the answer.
///
/// Let `v` be a value that no `ok` read returns and that no applied or
/// unknown cas expects, on a key with no failed cas. An unknown-outcome
/// operation `u` that would set the register to `v` can be removed: take any
/// linearization that uses `u`; until the next write, nothing after `u` can
/// depend on the register holding `v` (no read of `v`, no cas expecting
/// `v`; unknown cas that did not apply can be dropped as well, since they may
/// never have happened), and the next write overwrites the register whatever
/// it held. So dropping `u` keeps the linearization legal. Removing an
/// unknown cas may make its `expected` unobservable in turn, so this runs to
/// a fixpoint. Failed cas are excluded because they observe "not `x`", which
/// an unobservable write may be what explains.
pub(crate) fn prune_unobservable_infos(problem: &mut KeyProblem) {
    if problem
        .ops
        .iter()
        .any(|o| matches!(o.kind, CompletedKind::CasFail(_)))
    {
        return;
    }
    let mut completed_observed: HashSet<ValueId> = HashSet::new();
    for op in &problem.ops {
        match op.kind {
            CompletedKind::Read(v) | CompletedKind::CasOk(v, _) => {
                completed_observed.insert(v);
            }
            CompletedKind::Write(_) | CompletedKind::CasFail(_) => {}
        }
    }
    loop {
        let mut observed = completed_observed.clone();
        for info in &problem.infos {
            if let InfoKind::Cas(e, _) = info.kind {
                observed.insert(e);
            }
        }
        let before = problem.infos.len();
        problem
            .infos
            .retain(|i| observed.contains(&i.kind.new_value()));
        let removed = before - problem.infos.len();
        problem.pruned_infos += removed;
        if removed == 0 {
            break;
        }
    }
}

/// A read (or applied cas) of a value no operation on the key ever writes:
/// not linearizable whatever the order. Returns the offending operation.
pub(crate) fn value_never_written(problem: &KeyProblem) -> Option<&CompletedOp> {
    let mut written: HashSet<ValueId> = HashSet::from([NULL]);
    for op in &problem.ops {
        match op.kind {
            CompletedKind::Write(v) | CompletedKind::CasOk(_, v) => {
                written.insert(v);
            }
            CompletedKind::Read(_) | CompletedKind::CasFail(_) => {}
        }
    }
    // Pruned infos set only values nobody reads, so the pruning cannot hide a
    // writer of a read value.
    for info in &problem.infos {
        written.insert(info.kind.new_value());
    }
    problem.ops.iter().find(|op| match op.kind {
        CompletedKind::Read(v) | CompletedKind::CasOk(v, _) => !written.contains(&v),
        CompletedKind::Write(_) | CompletedKind::CasFail(_) => false,
    })
}
