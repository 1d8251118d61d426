//! Linearizability checking of client histories (registers per key).
//!
//! [`check`] answers whether a [history](crate::history) of `read`, `write`
//! and `cas` operations on independent keys could have been produced by one
//! atomic register per key: whether every operation can be given a single
//! instant, inside its own invocation–completion interval, such that the
//! operations applied one at a time in the order of those instants return
//! what the clients saw.
//!
//! # The model
//!
//! Each key is a register, initially `null`. `write v` sets it; `read`
//! returns it (`null` if never written); `cas [e, n]` that ended `ok` found
//! `e` and set `n`; a `cas` that ended `fail` found something other than `e`
//! at its linearization point and changed nothing (it is a completed
//! operation and must be placed like a read). A `write` or `read` that ended
//! `fail` had no effect and is ignored. An operation that ended `info` (or
//! never ended: a crashed run) may have taken effect at any instant after its
//! invocation, or never: its completion is at +infinity. Reads of unknown
//! outcome carry no information and are ignored.
//!
//! Real time comes from `time_ns` when every event has one (equal stamps
//! keep line order), from line order otherwise.
//!
//! # The algorithm
//!
//! * **P-compositionality** (Herlihy & Wing; Horn & Kroening): a history is
//!   linearizable iff its restriction to each key is, so each key is checked
//!   on its own, in key order. This turns one exponential search into many
//!   small ones.
//! * **Just-in-time linearization search** (Wing & Gong 1993, as improved by
//!   Lowe 2017, the algorithm of Knossos' `wgl` and of Porcupine): operations
//!   are call/return entries of a doubly linked list in real-time order;
//!   depth-first, the search linearizes one *candidate* at a time (an
//!   operation invoked before the earliest pending return), unlinks it, and
//!   backtracks when the operation of the earliest pending return cannot be
//!   placed. Configurations (set of linearized operations as a bitset, with
//!   an incrementally maintained Zobrist hash, plus the register value) are
//!   memoized, so no configuration is explored twice.
//! * On top of Lowe's algorithm (details and the soundness argument in the
//!   `search` and `memo` submodules): a read (or failed cas) that agrees
//!   with the register is placed at once, without branching; values that no
//!   remaining operation can observe are merged into one "dead" value;
//!   unknown-outcome operations are tried last, only when their effect is
//!   wanted by a blocked operation, never right before a plain write, and
//!   one per group of identical effects; a configuration is skipped when a
//!   visited one differs only by having *fewer* unknown-outcome operations
//!   applied (domination). Unknown-outcome operations that set a value
//!   nobody could observe are dropped up front. The reductions are checked
//!   against a brute-force oracle (`tests/linearizability_oracle.rs`).
//! * A read (or applied cas) of a value that no operation on the key ever
//!   writes is reported before searching.
//!
//! # Complexity
//!
//! Checking linearizability is NP-complete in general (Gibbons & Korach), so
//! the worst case is exponential in the number of *concurrent* operations on
//! one key (and in the number of unknown-outcome operations). In practice,
//! for `n` operations per key with `w` concurrent ones, a linearizable
//! history costs about `O(n · w)` steps and one memo entry (a few words) per
//! step; a violation costs the exploration of the configurations that
//! precede it, which the memo bounds by the number of distinct (cut of the
//! history, register value, unknown-outcome operations applied) triples.
//!
//! Measured on the 2-core development VM, release build
//! (`cargo bench -p consensus-sim --bench linearizability`): a 100 000-event
//! history (10 keys, 16 concurrent processes, 2% `info`, 1% `fail`) checks
//! in about 0.1–0.2 s, linearizable or with a stale read at its end. The
//! hard cases are long histories with many processes on *one* key, or with a
//! high rate of `info` operations *and* a violation near the end: e.g. 2
//! keys, 12 processes, 15% `info`, a stale read at the end of 20 000 events
//! needs 1.6 million states (30 s, 150 MB) to be proven not linearizable.
//!
//! # Results
//!
//! [`CheckResult::NotLinearizable`] says which key and explains where the
//! search got stuck: the longest linearizable prefix it found (its last
//! operations and the register value after them), the operation that had to
//! take effect next and could not, and the other operations that were
//! concurrent with it. Events are named by their 1-based position in the
//! history, which is the line number of a file written by
//! [`HistoryWriter`](crate::history::HistoryWriter).
//!
//! [`CheckResult::Unknown`] means the search stored more than
//! [`CheckOptions::max_states_per_key`] configurations for one key without
//! finding a linearization or exhausting the alternatives: the history is
//! neither proven linearizable nor proven not. It happens in the hard cases
//! above; raise the budget (memory grows by about 100–150 bytes per state,
//! time by 5–20 µs per state in those cases) or check shorter histories. A
//! violation found on another key takes precedence over `Unknown`.

mod explain;
pub mod generate;
mod memo;
mod prepare;
mod search;

use std::time::{Duration, Instant};

use crate::history::{validate, Event, ValidationError};

use prepare::{partition, value_never_written};
use search::{Outcome, Search};

/// Limits of the search.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckOptions {
    /// Configurations the search of one key may store before giving up with
    /// [`CheckResult::Unknown`].
    pub max_states_per_key: usize,
}

impl Default for CheckOptions {
    /// A budget of 2 million states per key (at most about 300 MB and a
    /// minute).
    fn default() -> Self {
        CheckOptions {
            max_states_per_key: 2_000_000,
        }
    }
}

/// The verdict on a history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckResult {
    /// Every key's operations can be ordered consistently with real time and
    /// the register semantics.
    Linearizable,
    /// Some key's operations cannot (the first such key in key order).
    NotLinearizable {
        /// The key.
        key: String,
        /// Human-readable account of where it breaks (see the module docs).
        explanation: String,
        /// 0-based indices of the events the explanation names.
        events: Vec<usize>,
    },
    /// The search budget ran out on this key (and no key was found not
    /// linearizable): nothing is proven. See the module docs.
    Unknown {
        /// The key.
        key: String,
        /// What ran out, and how far the search got.
        reason: String,
    },
    /// The events are not a well-formed history (see
    /// [`crate::history::validate`]); nothing was checked.
    Malformed(ValidationError),
}

impl CheckResult {
    /// Whether the history was proven linearizable.
    pub fn is_linearizable(&self) -> bool {
        matches!(self, CheckResult::Linearizable)
    }

    /// Whether the history was proven not linearizable.
    pub fn is_violation(&self) -> bool {
        matches!(self, CheckResult::NotLinearizable { .. })
    }
}

impl std::fmt::Display for CheckResult {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CheckResult::Linearizable => f.write_str("linearizable"),
            CheckResult::NotLinearizable {
                key, explanation, ..
            } => {
                write!(f, "not linearizable (key {key:?}): {explanation}")
            }
            CheckResult::Unknown { key, reason } => {
                write!(f, "unknown (key {key:?}): {reason}")
            }
            CheckResult::Malformed(e) => write!(f, "malformed history: {e}"),
        }
    }
}

/// What happened on one key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyReport {
    /// The key.
    pub key: String,
    /// Completed operations (must be linearized).
    pub completed: usize,
    /// Unknown-outcome operations the search considered.
    pub unknown: usize,
    /// Unknown-outcome operations dropped as unobservable.
    pub pruned_unknown: usize,
    /// Operations ignored because they cannot constrain anything (failed
    /// reads and writes, reads of unknown outcome).
    pub ignored: usize,
    /// Configurations stored by the search.
    pub states: usize,
    /// Operations linearized by the search, including undone ones.
    pub steps: u64,
    /// Approximate peak memo size in bytes.
    pub memo_bytes: usize,
    /// Time spent on this key.
    pub elapsed: Duration,
}

/// The verdict plus per-key statistics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckReport {
    /// The verdict.
    pub result: CheckResult,
    /// One entry per key searched, in key order. Keys after a violation are
    /// not searched.
    pub keys: Vec<KeyReport>,
}

/// Checks `events` with the default [`CheckOptions`].
pub fn check(events: &[Event]) -> CheckResult {
    check_with(events, &CheckOptions::default())
}

/// Checks `events` with the given limits.
pub fn check_with(events: &[Event], options: &CheckOptions) -> CheckResult {
    check_report(events, options).result
}

/// Checks `events` and reports per-key statistics.
pub fn check_report(events: &[Event], options: &CheckOptions) -> CheckReport {
    if let Err(e) = validate(events) {
        return CheckReport {
            result: CheckResult::Malformed(e),
            keys: Vec::new(),
        };
    }
    if events.len() >= u32::MAX as usize {
        return CheckReport {
            result: CheckResult::Unknown {
                key: String::new(),
                reason: format!("{} events exceed the checker's limit", events.len()),
            },
            keys: Vec::new(),
        };
    }
    let mut keys = Vec::new();
    let mut unknown = None;
    for (key, problem) in partition(events) {
        let started = Instant::now();
        let mut report = KeyReport {
            key: key.clone(),
            completed: problem.ops.len(),
            unknown: problem.infos.len(),
            pruned_unknown: problem.pruned_infos,
            ignored: problem.dropped,
            states: 0,
            steps: 0,
            memo_bytes: 0,
            elapsed: Duration::ZERO,
        };
        if let Some(op) = value_never_written(&problem) {
            report.elapsed = started.elapsed();
            keys.push(report);
            let (explanation, events) = explain::never_written(events, &problem, op);
            return CheckReport {
                result: CheckResult::NotLinearizable {
                    key,
                    explanation,
                    events,
                },
                keys,
            };
        }
        let mut search = Search::new(&problem);
        // Memo entries are indexed by u32.
        let budget = options.max_states_per_key.min(u32::MAX as usize - 2);
        let outcome = search.run(budget);
        let stats = search.stats();
        report.states = stats.states;
        report.steps = stats.steps;
        report.memo_bytes = stats.memo_bytes;
        drop(search);
        report.elapsed = started.elapsed();
        keys.push(report);
        match outcome {
            Outcome::Linearizable => {}
            Outcome::NotLinearizable(frontier) => {
                let (explanation, events) = explain::frontier(events, &problem, &frontier);
                return CheckReport {
                    result: CheckResult::NotLinearizable {
                        key,
                        explanation,
                        events,
                    },
                    keys,
                };
            }
            Outcome::Budget { best_linearized } => {
                if unknown.is_none() {
                    unknown = Some(CheckResult::Unknown {
                        reason: format!(
                            "search budget of {} states exceeded after linearizing at most {} of {} completed operations ({} of unknown outcome)",
                            options.max_states_per_key,
                            best_linearized,
                            problem.ops.len(),
                            problem.infos.len()
                        ),
                        key,
                    });
                }
            }
        }
    }
    CheckReport {
        result: unknown.unwrap_or(CheckResult::Linearizable),
        keys,
    }
}
