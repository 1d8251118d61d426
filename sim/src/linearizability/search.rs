//! The just-in-time linearization search (Wing & Gong, with Lowe's
//! improvements) for one register.
//!
//! # The list
//!
//! Every completed operation contributes two entries, its call and its
//! return, to a doubly linked list sorted by rank (real time). An operation
//! that has been linearized is *lifted*: both entries are unlinked ("dancing
//! links"), and relinked in reverse order when the search backtracks. At any
//! point the entries before the first return entry `R` are the calls of the
//! *candidates*: operations invoked before `R`'s operation returned, which
//! may therefore take effect next. `R`'s operation itself must take effect
//! before anything invoked after it returned; if no candidate can, the
//! configuration is a dead end.
//!
//! Operations of unknown outcome have no return entry (it is at +infinity):
//! they sit in a second list sorted by invocation, and those invoked before
//! `R` are candidates too. The search is done when every *completed*
//! operation is linearized: unknown-outcome operations left over simply never
//! took effect.
//!
//! # Pruning
//!
//! * **Memoization** (Lowe): a configuration (linearized sets and register
//!   value) already visited, or dominated by a visited one (see
//!   [`super::memo`]), is not explored again.
//! * **Read-only operations first, without branching.** If a read (or a
//!   failed cas) is a candidate and agrees with the register, it is
//!   linearized at once and the search never tries an alternative at that
//!   point: moving a read-only operation earlier within its own interval
//!   keeps any linearization legal (it changes no state, and every operation
//!   that had to precede it already has). If the rest fails, the
//!   configuration fails.
//! * **Dead values.** A value is *observed* by a remaining operation whose
//!   outcome depends on the register holding it (a read of it, a cas
//!   expecting it, applied, failed or unknown). Once no remaining operation
//!   observes a value, the register holding it is indistinguishable from the
//!   register holding any other such value, so the search state maps all of
//!   them to one *dead* value. Configurations that differ only by which dead
//!   value the register holds coincide in the memo.
//! * **Unknown-outcome operations only where they matter.** Take a
//!   linearization with the fewest unknown-outcome steps. Each maximal run
//!   of them is followed by a completed operation (a run at the end can be
//!   dropped: those operations never took effect), and that operation is not
//!   a plain write (the write would erase the run's effect, so the run could
//!   be dropped). Within the run only the first step can be a write and the
//!   others are cas that apply (anything else could be dropped). So the
//!   search (1) tries unknown-outcome operations only after every completed
//!   candidate, (2) only when they change the register, (3) only when the
//!   value they leave is wanted by a blocked completed candidate (a read of
//!   it, an applied cas expecting it, or any other value for a blocked failed
//!   cas) or, through a chain of candidate unknown-outcome cas, leads to such
//!   a value, (4) never follows one with a plain write, and (5) tries only one
//!   of several with identical effect (same operation, same value up to
//!   deadness): being interchangeable, they lead to equivalent
//!   configurations. Rule (4) makes "reached by an unknown-outcome step" part
//!   of a configuration for the memo.
//!
//! Soundness and completeness: take a solvable configuration the search
//! visits and, among its shortest linearizations, one with read-only
//! operations as early as possible; its first step is one the rules above
//! let the search take (or, for a read-only step, the one the search forces,
//! by the exchange argument), and it leads to a solvable configuration with
//! a strictly shorter linearization that is either visited or dominated by
//! a visited one. By induction the search reaches a complete linearization
//! whenever one exists, unless it stops at the state budget. The rules are
//! also checked against a brute-force oracle on thousands of random small
//! histories (`tests/linearizability_oracle.rs`).
//!
//! # Cost
//!
//! Each step scans the candidates (the operations concurrent with the
//! earliest pending return, `w`) and, when those are exhausted, the pending
//! unknown-outcome operations invoked so far. A history that is linearizable
//! "in the obvious order" costs `O(n · w)`; backtracking is bounded by the
//! number of distinct configurations, which in the worst case is exponential
//! in the concurrency and in the number of unknown-outcome operations
//! (linearizability checking is NP-complete), hence the budget.

use std::collections::HashSet;
use std::hash::BuildHasherDefault;

use super::memo::{mix64, Memo, MixHasher, SetView};
use super::prepare::{CompletedKind, InfoKind, KeyProblem, ValueId, NULL};

const NIL: u32 = u32::MAX;

/// How the search of one key ended.
pub(crate) enum Outcome {
    /// A linearization exists.
    Linearizable,
    /// None exists; the furthest point the search reached.
    NotLinearizable(Frontier),
    /// The state budget ran out.
    Budget {
        /// Most completed operations linearized on any path.
        best_linearized: usize,
    },
}

/// An operation as the search refers to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OpRef {
    /// Index into [`KeyProblem::ops`].
    Completed(u32),
    /// Index into [`KeyProblem::infos`].
    Info(u32),
}

/// The deepest configuration the search reached: where it got stuck.
#[derive(Debug, Clone)]
pub(crate) struct Frontier {
    /// Completed operations linearized there.
    pub(crate) linearized: usize,
    /// Register value there (an actual value id, not a class).
    pub(crate) state: ValueId,
    /// The operation whose return is the earliest pending one: it had to
    /// take effect next (or after other candidates) and could not.
    pub(crate) blocking: u32,
    /// The other completed candidates at that point.
    pub(crate) candidates: Vec<u32>,
    /// Unknown-outcome operations invoked before the blocking return and
    /// not yet linearized.
    pub(crate) info_candidates: Vec<u32>,
    /// The last operations linearized before that point, oldest first.
    pub(crate) recent: Vec<OpRef>,
}

/// Statistics of one search.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Stats {
    /// Configurations stored in the memo.
    pub(crate) states: usize,
    /// Approximate memo size in bytes.
    pub(crate) memo_bytes: usize,
    /// Steps taken (operations linearized, including undone ones).
    pub(crate) steps: u64,
}

#[derive(Debug, Clone, Copy)]
struct Frame {
    op: OpRef,
    previous_state: ValueId,
    previous_actual: ValueId,
    previous_max: u32,
    forced: bool,
}

/// Where to continue trying candidates at a configuration after a subtree
/// failed.
#[derive(Debug, Clone, Copy)]
enum Resume {
    /// Fresh configuration: try everything.
    Fresh,
    /// Continue with the main-list entry (a call entry, or the first return).
    Main(u32),
    /// Completed candidates exhausted; continue after this info operation.
    AfterInfo(u32),
}

/// Number of recently linearized operations kept in a [`Frontier`].
const RECENT: usize = 6;

/// The search state of one key.
pub(crate) struct Search<'a> {
    problem: &'a KeyProblem,
    // Operations with values mapped to their classes.
    kinds: Vec<CompletedKind>,
    info_kinds: Vec<InfoKind>,
    // Main list: entry 2i is the call of op i, 2i+1 its return; `head` is the
    // sentinel.
    next: Vec<u32>,
    prev: Vec<u32>,
    head: u32,
    // Info list, same layout with one entry per info op.
    info_next: Vec<u32>,
    info_prev: Vec<u32>,
    info_head: u32,
    completed_bits: Vec<u64>,
    completed_max: u32,
    completed_hash: u64,
    info_bits: Vec<u64>,
    info_max: u32,
    zobrist: Vec<u64>,
    /// Register value as the search sees it: the value id, or `dead` for
    /// any value no remaining operation can observe.
    state: ValueId,
    /// Remaining observers of each value id (see [`observed`]).
    observers: Vec<u32>,
    /// The class of dead values: `problem.values.len()`.
    dead: ValueId,
    /// The actual register value (for explanations).
    actual: ValueId,
    remaining: usize,
    stack: Vec<Frame>,
    memo: Memo,
    seen_effects: HashSet<InfoKind, BuildHasherDefault<MixHasher>>,
    /// Scratch: values wanted by blocked candidates.
    wanted: Vec<ValueId>,
    /// Invocation rank of each unknown-outcome operation.
    info_calls: Vec<u32>,
    /// Whether any unknown-outcome operation is a cas.
    any_info_cas: bool,
    frontier: Option<Frontier>,
    steps: u64,
}

impl<'a> Search<'a> {
    /// Builds the lists for `problem`.
    pub(crate) fn new(problem: &'a KeyProblem) -> Search<'a> {
        let n = problem.ops.len();
        let mut entries: Vec<u32> = (0..2 * n as u32).collect();
        let rank = |e: u32| {
            let op = &problem.ops[(e / 2) as usize];
            if e % 2 == 0 {
                op.call
            } else {
                op.ret
            }
        };
        entries.sort_by_key(|&e| rank(e));
        let head = 2 * n as u32;
        let (next, prev) = link(&entries, head);
        let m = problem.infos.len();
        let info_entries: Vec<u32> = (0..m as u32).collect();
        let info_head = m as u32;
        let (info_next, info_prev) = link(&info_entries, info_head);
        let kinds: Vec<CompletedKind> = problem.ops.iter().map(|o| o.kind).collect();
        let info_kinds: Vec<InfoKind> = problem.infos.iter().map(|o| o.kind).collect();
        // Observers of each value: operations whose outcome depends on
        // whether the register holds it.
        let dead = problem.values.len() as ValueId;
        let mut observers = vec![0u32; problem.values.len() + 1];
        for kind in &kinds {
            if let Some(v) = observed(*kind) {
                observers[v as usize] += 1;
            }
        }
        for kind in &info_kinds {
            if let InfoKind::Cas(x, _) = kind {
                observers[*x as usize] += 1;
            }
        }
        // The dead class never counts as observed.
        observers[dead as usize] = 0;
        let initial = if observers[NULL as usize] == 0 {
            dead
        } else {
            NULL
        };
        let any_info_cas = info_kinds.iter().any(|k| matches!(k, InfoKind::Cas(..)));
        Search {
            problem,
            kinds,
            info_kinds,
            next,
            prev,
            head,
            info_next,
            info_prev,
            info_head,
            completed_bits: vec![0; n.div_ceil(64)],
            completed_max: NIL,
            completed_hash: 0,
            info_bits: vec![0; m.div_ceil(64)],
            info_max: NIL,
            zobrist: (0..n as u64).map(mix64).collect(),
            state: initial,
            observers,
            dead,
            actual: NULL,
            remaining: n,
            stack: Vec::new(),
            memo: Memo::default(),
            seen_effects: HashSet::default(),
            wanted: Vec::new(),
            info_calls: problem.infos.iter().map(|i| i.call).collect(),
            any_info_cas,
            frontier: None,
            steps: 0,
        }
    }

    /// Statistics so far.
    pub(crate) fn stats(&self) -> Stats {
        Stats {
            states: self.memo.len(),
            memo_bytes: self.memo.bytes(),
            steps: self.steps,
        }
    }

    /// Runs the search, storing at most `max_states` configurations.
    pub(crate) fn run(&mut self, max_states: usize) -> Outcome {
        self.visit(false);
        let mut resume = Resume::Fresh;
        loop {
            if self.remaining == 0 {
                return Outcome::Linearizable;
            }
            if self.memo.len() > max_states {
                return Outcome::Budget {
                    best_linearized: self.frontier.as_ref().map_or(0, |f| f.linearized),
                };
            }
            let first_return = self.first_return();
            if let Resume::Fresh = resume {
                self.note_depth(first_return);
                if let Some(op) = self.matching_read_only(first_return) {
                    if self.lift(OpRef::Completed(op), true) {
                        continue;
                    }
                    // Already explored from here: this configuration fails.
                    match self.backtrack() {
                        Some(r) => {
                            resume = r;
                            continue;
                        }
                        None => return self.failed(),
                    }
                }
            }
            if self.try_candidates(resume, first_return) {
                resume = Resume::Fresh;
                continue;
            }
            match self.backtrack() {
                Some(r) => resume = r,
                None => return self.failed(),
            }
        }
    }

    fn failed(&mut self) -> Outcome {
        match self.frontier.take() {
            Some(f) => Outcome::NotLinearizable(f),
            // Unreachable in practice: the root is always noted.
            None => Outcome::Budget { best_linearized: 0 },
        }
    }

    /// The first return entry of the main list (the list is not empty).
    fn first_return(&self) -> u32 {
        let mut e = self.next[self.head as usize];
        while e != NIL && e % 2 == 0 {
            e = self.next[e as usize];
        }
        e
    }

    fn rank_of_entry(&self, e: u32) -> u32 {
        if e == NIL {
            return u32::MAX;
        }
        let op = &self.problem.ops[(e / 2) as usize];
        if e % 2 == 0 {
            op.call
        } else {
            op.ret
        }
    }

    /// A read-only candidate that agrees with the register.
    fn matching_read_only(&self, first_return: u32) -> Option<u32> {
        let mut e = self.next[self.head as usize];
        while e != first_return {
            let op = e / 2;
            match self.kinds[op as usize] {
                CompletedKind::Read(v) if v == self.state => return Some(op),
                CompletedKind::CasFail(x) if x != self.state => return Some(op),
                _ => {}
            }
            e = self.next[e as usize];
        }
        None
    }

    /// Tries the state-changing candidates from `resume` on; lifts the first
    /// one that leads to a new configuration.
    /// Whether the current configuration was reached by an unknown-outcome
    /// operation (see "Unknown-outcome operations" in the module docs).
    fn after_info(&self) -> bool {
        matches!(
            self.stack.last(),
            Some(Frame {
                op: OpRef::Info(_),
                ..
            })
        )
    }

    fn try_candidates(&mut self, resume: Resume, first_return: u32) -> bool {
        let after_info = self.after_info();
        let mut e = match resume {
            Resume::Fresh => self.next[self.head as usize],
            Resume::Main(e) => e,
            Resume::AfterInfo(_) => first_return,
        };
        while e != first_return {
            let op = e / 2;
            let applies = match self.kinds[op as usize] {
                // A write right after unknown-outcome operations would make
                // them pointless: that order is covered without them.
                CompletedKind::Write(_) => !after_info,
                CompletedKind::CasOk(x, _) => x == self.state,
                CompletedKind::Read(_) | CompletedKind::CasFail(_) => false,
            };
            if applies && self.lift(OpRef::Completed(op), false) {
                return true;
            }
            e = self.next[e as usize];
        }
        self.try_infos(resume, first_return)
    }

    /// What the blocked completed candidates need from the register: the
    /// values wanted by reads and applied cas, and whether a failed cas is
    /// blocked (it then accepts any other value).
    fn collect_wants(&mut self, first_return: u32) -> bool {
        self.wanted.clear();
        let mut failed_cas_blocked = false;
        let mut e = self.next[self.head as usize];
        while e != first_return {
            match self.kinds[(e / 2) as usize] {
                CompletedKind::Read(v) | CompletedKind::CasOk(v, _) if v != self.state => {
                    self.wanted.push(v)
                }
                CompletedKind::CasFail(x) if x == self.state => failed_cas_blocked = true,
                _ => {}
            }
            e = self.next[e as usize];
        }
        failed_cas_blocked
    }

    /// Adds to the wanted values the expected values of candidate
    /// unknown-outcome cas that would produce a wanted value (a chain of
    /// unknown-outcome operations), to a fixpoint.
    fn close_wants_over_info_cas(&mut self, before_rank: u32) {
        if !self.any_info_cas {
            return;
        }
        loop {
            let before = self.wanted.len();
            let mut i = self.info_next[self.info_head as usize];
            while i != NIL && self.info_calls[i as usize] < before_rank {
                if let InfoKind::Cas(x, v) = self.info_kinds[i as usize] {
                    if self.wanted.contains(&v) && !self.wanted.contains(&x) {
                        self.wanted.push(x);
                    }
                }
                i = self.info_next[i as usize];
            }
            if self.wanted.len() == before {
                return;
            }
        }
    }

    fn try_infos(&mut self, resume: Resume, first_return: u32) -> bool {
        if self.info_next[self.info_head as usize] == NIL {
            return false;
        }
        let before_rank = self.rank_of_entry(first_return);
        let failed_cas_blocked = self.collect_wants(first_return);
        if !failed_cas_blocked {
            if self.wanted.is_empty() {
                return false;
            }
            self.close_wants_over_info_cas(before_rank);
        }
        let mut skipping = match resume {
            Resume::AfterInfo(j) => Some(j),
            _ => None,
        };
        self.seen_effects.clear();
        let mut i = self.info_next[self.info_head as usize];
        while i != NIL {
            if self.info_calls[i as usize] >= before_rank {
                break;
            }
            // Identical effects: same operation, same value as far as the
            // rest of the history can tell.
            let kind = match self.info_kinds[i as usize] {
                InfoKind::Write(v) => InfoKind::Write(self.live(v)),
                InfoKind::Cas(x, v) => InfoKind::Cas(x, self.live(v)),
            };
            if let Some(j) = skipping {
                // Already tried (or equivalent to one tried) at this point.
                self.seen_effects.insert(kind);
                if i == j {
                    skipping = None;
                }
                i = self.info_next[i as usize];
                continue;
            }
            let after = match kind {
                InfoKind::Write(v) if v != self.state => Some(v),
                InfoKind::Cas(x, v) if x == self.state && v != self.state => Some(v),
                _ => None,
            };
            if let Some(v) = after {
                // Only a value some blocked operation (or some unknown cas)
                // could use.
                let useful = failed_cas_blocked || self.wanted.contains(&v);
                if useful && self.seen_effects.insert(kind) && self.lift(OpRef::Info(i), false) {
                    return true;
                }
            }
            i = self.info_next[i as usize];
        }
        false
    }

    /// The search's view of value `v` now: `v`, or the dead class when no
    /// remaining operation can observe it.
    fn live(&self, v: ValueId) -> ValueId {
        if self.observers[v as usize] == 0 {
            self.dead
        } else {
            v
        }
    }

    /// Linearizes `op` (the caller checked it may take effect now). If the
    /// new configuration is dominated by a visited one, undoes it and returns
    /// `false`.
    fn lift(&mut self, op: OpRef, forced: bool) -> bool {
        let previous_state = self.state;
        let previous_actual = self.actual;
        let (observed, written) = match op {
            OpRef::Completed(i) => {
                let kind = self.kinds[i as usize];
                (observed(kind), written(kind))
            }
            OpRef::Info(i) => match self.info_kinds[i as usize] {
                InfoKind::Write(v) => (None, Some(v)),
                InfoKind::Cas(x, v) => (Some(x), Some(v)),
            },
        };
        if let Some(v) = observed {
            self.observers[v as usize] -= 1;
        }
        match written {
            Some(v) => {
                self.state = self.live(v);
                self.actual = v;
            }
            // A read may have been the last observer of the value it read.
            None => self.state = self.live(self.state),
        }
        let previous_max = match op {
            OpRef::Completed(i) => {
                self.unlink(2 * i);
                self.unlink(2 * i + 1);
                set_bit(&mut self.completed_bits, i);
                self.completed_hash ^= self.zobrist[i as usize];
                self.remaining -= 1;
                let previous = self.completed_max;
                self.completed_max = max_of(previous, i);
                previous
            }
            OpRef::Info(i) => {
                self.info_unlink(i);
                set_bit(&mut self.info_bits, i);
                let previous = self.info_max;
                self.info_max = max_of(previous, i);
                previous
            }
        };
        self.steps += 1;
        let frame = Frame {
            op,
            previous_state,
            previous_actual,
            previous_max,
            forced,
        };
        if self.visit(matches!(op, OpRef::Info(_))) {
            self.stack.push(frame);
            true
        } else {
            self.undo(frame);
            false
        }
    }

    fn undo(&mut self, frame: Frame) {
        self.state = frame.previous_state;
        self.actual = frame.previous_actual;
        let observed = match frame.op {
            OpRef::Completed(i) => observed(self.kinds[i as usize]),
            OpRef::Info(i) => match self.info_kinds[i as usize] {
                InfoKind::Write(_) => None,
                InfoKind::Cas(x, _) => Some(x),
            },
        };
        if let Some(v) = observed {
            self.observers[v as usize] += 1;
        }
        match frame.op {
            OpRef::Completed(i) => {
                self.relink(2 * i + 1);
                self.relink(2 * i);
                clear_bit(&mut self.completed_bits, i);
                self.completed_hash ^= self.zobrist[i as usize];
                self.remaining += 1;
                self.completed_max = frame.previous_max;
            }
            OpRef::Info(i) => {
                self.info_relink(i);
                clear_bit(&mut self.info_bits, i);
                self.info_max = frame.previous_max;
            }
        }
    }

    /// Pops frames until one with alternatives left; returns where to resume.
    fn backtrack(&mut self) -> Option<Resume> {
        loop {
            let frame = self.stack.pop()?;
            self.undo(frame);
            if frame.forced {
                continue;
            }
            return Some(match frame.op {
                OpRef::Completed(i) => Resume::Main(self.next[(2 * i) as usize]),
                OpRef::Info(i) => Resume::AfterInfo(i),
            });
        }
    }

    /// Records the current configuration in the memo; `true` if new.
    fn visit(&mut self, after_info: bool) -> bool {
        let completed_low = match self.next[self.head as usize] {
            NIL => self.problem.ops.len() as u32,
            e => e / 2,
        };
        let info_low = match self.info_next[self.info_head as usize] {
            NIL => self.problem.infos.len() as u32,
            i => i,
        };
        let completed = SetView {
            low: completed_low,
            max: (self.completed_max != NIL).then_some(self.completed_max),
            bits: &self.completed_bits,
        };
        let infos = SetView {
            low: info_low,
            max: (self.info_max != NIL).then_some(self.info_max),
            bits: &self.info_bits,
        };
        self.memo.visit(
            self.completed_hash,
            self.state,
            after_info,
            &completed,
            &infos,
        )
    }

    /// Remembers the configuration if it is the deepest so far.
    fn note_depth(&mut self, first_return: u32) {
        let linearized = self.problem.ops.len() - self.remaining;
        if self
            .frontier
            .as_ref()
            .is_some_and(|f| f.linearized >= linearized)
        {
            return;
        }
        let mut candidates = Vec::new();
        let mut e = self.next[self.head as usize];
        while e != first_return {
            candidates.push(e / 2);
            e = self.next[e as usize];
        }
        let before_rank = self.rank_of_entry(first_return);
        let mut info_candidates = Vec::new();
        let mut i = self.info_next[self.info_head as usize];
        while i != NIL && self.problem.infos[i as usize].call < before_rank {
            info_candidates.push(i);
            i = self.info_next[i as usize];
        }
        let blocking = first_return / 2;
        candidates.retain(|&c| c != blocking);
        let from = self.stack.len().saturating_sub(RECENT);
        self.frontier = Some(Frontier {
            linearized,
            state: self.actual,
            blocking,
            candidates,
            info_candidates,
            recent: self.stack[from..].iter().map(|f| f.op).collect(),
        });
    }

    fn unlink(&mut self, e: u32) {
        let (p, n) = (self.prev[e as usize], self.next[e as usize]);
        self.next[p as usize] = n;
        if n != NIL {
            self.prev[n as usize] = p;
        }
    }

    fn relink(&mut self, e: u32) {
        let (p, n) = (self.prev[e as usize], self.next[e as usize]);
        self.next[p as usize] = e;
        if n != NIL {
            self.prev[n as usize] = e;
        }
    }

    fn info_unlink(&mut self, e: u32) {
        let (p, n) = (self.info_prev[e as usize], self.info_next[e as usize]);
        self.info_next[p as usize] = n;
        if n != NIL {
            self.info_prev[n as usize] = p;
        }
    }

    fn info_relink(&mut self, e: u32) {
        let (p, n) = (self.info_prev[e as usize], self.info_next[e as usize]);
        self.info_next[p as usize] = e;
        if n != NIL {
            self.info_prev[n as usize] = e;
        }
    }
}

/// The value whose presence in the register decides the outcome of an
/// operation of this kind, if any.
fn observed(kind: CompletedKind) -> Option<ValueId> {
    match kind {
        CompletedKind::Read(v) | CompletedKind::CasOk(v, _) | CompletedKind::CasFail(v) => Some(v),
        CompletedKind::Write(_) => None,
    }
}

/// The value an operation of this kind leaves in the register, if it
/// changes it.
fn written(kind: CompletedKind) -> Option<ValueId> {
    match kind {
        CompletedKind::Write(v) | CompletedKind::CasOk(_, v) => Some(v),
        CompletedKind::Read(_) | CompletedKind::CasFail(_) => None,
    }
}

/// Links `order` into a list after the sentinel `head` (the last index).
fn link(order: &[u32], head: u32) -> (Vec<u32>, Vec<u32>) {
    let len = head as usize + 1;
    let mut next = vec![NIL; len];
    let mut prev = vec![NIL; len];
    let mut last = head;
    for &e in order {
        next[last as usize] = e;
        prev[e as usize] = last;
        last = e;
    }
    (next, prev)
}

fn max_of(current: u32, i: u32) -> u32 {
    if current == NIL || i > current {
        i
    } else {
        current
    }
}

fn set_bit(bits: &mut [u64], i: u32) {
    bits[(i / 64) as usize] |= 1 << (i % 64);
}

fn clear_bit(bits: &mut [u64], i: u32) {
    bits[(i / 64) as usize] &= !(1 << (i % 64));
}
