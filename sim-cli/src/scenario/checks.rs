//! The checks every scenario ends with (the simulator's invariants, the
//! linearizability of the client history, the rules checked during the run),
//! the end-of-run convergence check, and the summary totals.

use consensus_api::{Core, NodeId};
use consensus_sim::history::{Event, EventType, Op};
use consensus_sim::linearizability::{check, CheckResult};

use super::harness::Harness;
use super::record::{seconds, Expectation, Outcome, ProtocolRun, Summary, Verdict, SECOND_NS};

impl<C: Core> Harness<C> {
    /// After the last fault ended: a write commits and every member applies
    /// everything committed so far, within `within_s` seconds.
    pub fn settle(&mut self, within_s: f64) -> Expectation {
        let start = self.now_ns();
        let limit = start + (within_s * SECOND_NS as f64) as u64;
        let members: Vec<NodeId> = self
            .cluster
            .node_ids()
            .into_iter()
            .filter(|n| !self.removed.contains(n))
            .collect();
        let committed = self.run_until_ns(limit, |h| {
            h.ops.iter().any(|op| {
                op.is_write() && op.outcome == Some(Outcome::Ok) && op.invoked_ns >= start
            })
        });
        let write_at = self.now_ns();
        let target = self.max_commit(&members);
        let caught_up = committed
            && self.run_until_ns(limit, |h| {
                members
                    .iter()
                    .all(|&n| h.cluster.is_alive(n) && h.cluster.applied_index(n) >= target)
            });
        let detail = if caught_up {
            format!(
                "a new write committed after {} ms; every member applied index {target} after {} ms",
                (write_at - start) / 1_000_000,
                (self.now_ns() - start) / 1_000_000
            )
        } else if committed {
            let lagging: Vec<String> = members
                .iter()
                .filter(|&&n| !self.cluster.is_alive(n) || self.cluster.applied_index(n) < target)
                .map(|n| format!("node {n}"))
                .collect();
            format!(
                "{} did not apply index {target} within {within_s} s",
                lagging.join(", ")
            )
        } else {
            format!("no write committed within {within_s} s after the faults ended")
        };
        Expectation {
            statement: format!(
                "after the faults end, a write commits and every member catches up within {within_s} s"
            ),
            verdict: Verdict::check(caught_up, detail),
        }
    }

    /// The client history in the JSONL event form of `shared/HISTORY.md`,
    /// in the order things happened.
    pub fn history(&self) -> Vec<Event> {
        let mut timed: Vec<(u64, Event)> = Vec::new();
        for op in &self.ops {
            let invoked = match op.op {
                Op::Read(_) => Op::Read(None),
                other => other,
            };
            timed.push((
                op.invoked_seq,
                Event::invoke(op.process, op.key.clone(), invoked).at(op.invoked_ns),
            ));
            if let (Some(outcome), Some(end)) = (op.outcome, op.ended_ns) {
                let (kind, value) = match outcome {
                    Outcome::Ok => (EventType::Ok, op.op),
                    Outcome::Failed => (EventType::Fail, invoked),
                    Outcome::Unknown => (EventType::Info, invoked),
                };
                timed.push((
                    op.ended_seq,
                    Event::new(op.process, kind, op.key.clone(), value).at(end),
                ));
            }
        }
        timed.sort_by_key(|(seq, _)| *seq);
        timed.into_iter().map(|(_, event)| event).collect()
    }

    /// Ends the run: the scenario's expectations followed by the generic
    /// checks, the totals, everything recorded.
    pub fn finish(
        mut self,
        leader_meaning: String,
        mut expectations: Vec<Expectation>,
    ) -> ProtocolRun {
        self.take_final_sample();
        expectations.extend(self.generic_checks());
        let summary = self.summary();
        ProtocolRun {
            protocol: self.flavor.protocol.to_owned(),
            leader_meaning,
            end_ns: self.now_ns(),
            samples: self.samples,
            faults: self.faults,
            ops: self.ops,
            notes: self.notes,
            expectations,
            summary,
        }
    }

    fn take_final_sample(&mut self) {
        let now = self.now_ns();
        if self.samples.last().is_some_and(|s| s.time_ns < now) {
            let nodes = self
                .cluster
                .node_ids()
                .into_iter()
                .map(|id| self.node_state(id))
                .collect();
            self.samples.push(super::record::Sample {
                time_ns: now,
                nodes,
            });
        }
    }

    fn generic_checks(&mut self) -> Vec<Expectation> {
        let invariants = match self.cluster.check() {
            Ok(()) => Verdict::Held("checked after every event".into()),
            Err(failure) => Verdict::Broken(failure.to_string()),
        };
        let history = self.history();
        let linearizable = match check(&history) {
            CheckResult::Linearizable => {
                Verdict::Held(format!("{} operations on {} registers", self.ops.len(), 2))
            }
            other => Verdict::Broken(other.to_string()),
        };
        let uncommitted = match &self.violations.uncommitted_apply {
            None => Verdict::Held("every applied entry was on a quorum's disks".into()),
            Some(message) => Verdict::Broken(message.clone()),
        };
        let isolated = match &self.violations.isolated_ack {
            None => Verdict::Held(format!(
                "{} writes acknowledged, each by a node with direct links to a quorum",
                self.ops
                    .iter()
                    .filter(|op| op.is_write() && op.outcome == Some(Outcome::Ok))
                    .count()
            )),
            Some(message) => Verdict::Broken(message.clone()),
        };
        let stale = if self.flavor.leaderless {
            Verdict::NotApplicable("classic Paxos elects no leader".into())
        } else if !self.flavor.complete_leaders {
            Verdict::NotApplicable(
                "Multi-Paxos may elect a node with a stale log: Phase 1 hands it every accepted value before it proposes (agreement is checked above)".into(),
            )
        } else {
            match &self.violations.stale_leader {
                None => Verdict::Held("every new leader held every committed entry".into()),
                Some(message) => Verdict::Broken(message.clone()),
            }
        };
        vec![
            Expectation {
                statement: "simulator invariants: agreement on applied entries, no rollback, one leader per epoch, monotone commit".into(),
                verdict: invariants,
            },
            Expectation {
                statement: "the client history is linearizable".into(),
                verdict: linearizable,
            },
            Expectation {
                statement: "a follower never applies an uncommitted entry".into(),
                verdict: uncommitted,
            },
            Expectation {
                statement: "a node cut off from a quorum never acknowledges a write".into(),
                verdict: isolated,
            },
            Expectation {
                statement: "a stale log never wins an election".into(),
                verdict: stale,
            },
        ]
    }

    fn summary(&self) -> Summary {
        let (base_ns, base) = self.base.clone().unwrap_or_else(|| (0, Default::default()));
        let stats = self.cluster.stats();
        let mut summary = Summary {
            leader_changes: (!self.flavor.leaderless)
                .then(|| stats.leaders_elected - base.leaders_elected),
            messages: stats.messages_sent - base.messages_sent,
            bytes: stats.bytes_sent - base.bytes_sent,
            snapshots_installed: stats.snapshots_installed - base.snapshots_installed,
            ..Summary::default()
        };
        for op in self.ops.iter().filter(|op| op.invoked_ns >= base_ns) {
            match op.outcome {
                Some(Outcome::Ok) => summary.ok += 1,
                Some(Outcome::Failed) => summary.failed += 1,
                Some(Outcome::Unknown) | None => summary.unknown += 1,
            }
        }
        summary.unavailable = self.longest_gap();
        summary
    }

    /// The longest interval without a successful write, from the first
    /// fault until the clients stopped.
    fn longest_gap(&self) -> Option<(u64, u64)> {
        let start = self.faults.first()?.start_ns;
        let end = self.clients_stopped_ns.unwrap_or(self.now_ns());
        let mut times: Vec<u64> = self
            .ops
            .iter()
            .filter(|op| op.is_write() && op.outcome == Some(Outcome::Ok))
            .filter_map(|op| op.ended_ns)
            .filter(|&t| t > start && t <= end)
            .collect();
        times.sort_unstable();
        let mut previous = start;
        let mut best = (start, start);
        for time in times.into_iter().chain(std::iter::once(end)) {
            if time - previous > best.1 - best.0 {
                best = (previous, time);
            }
            previous = time;
        }
        Some(best)
    }
}

/// `1.50s (+350 ms)`: a time and its distance from `since`.
pub fn at_since(time_ns: u64, since_ns: u64) -> String {
    format!(
        "{} (+{} ms)",
        seconds(time_ns),
        time_ns.saturating_sub(since_ns) / 1_000_000
    )
}
