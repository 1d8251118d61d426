//! The `Ready` loop, written once: the order in which a driver does what a
//! [`Ready`] asks, and the rules the order enforces. The runtime (real disk,
//! QUIC, tokio) and the simulator (a memory store with an fsync boundary,
//! virtual time, crashes) both hand every batch to [`handle_ready`] and
//! supply only the I/O, through [`ReadyDriver`].
//!
//! The order (the [`Core`](crate::Core) contract):
//!
//! 0. send the messages that may leave early ([`Ready::early_messages`]: a
//!    leader's replication of its own entries);
//! 1. apply the committed entries that are already durable here — those
//!    below the first index this batch writes — and finish the tickets
//!    that answer for them (see "Already durable" below);
//! 2. persist the writes, with one fdatasync when `must_sync`; a driver that
//!    models crashes may crash here, after steps 0 and 1 and before the sync;
//! 3. restore the state machine from a received snapshot;
//! 4. send the other messages;
//! 5. apply the other committed entries, in order, each once;
//! 6. finish the other tickets.
//!
//! **Already durable.** Every batch is persisted before the core sees its
//! next input, so a committed entry whose index is below the first index
//! this batch truncates or appends was synced by an earlier batch (or came
//! with a snapshot): committed means a quorum holds it durably, and this
//! node's copy needs nothing from this batch. Applying it and answering its
//! proposal before this batch's fdatasync takes one fsync off the commit
//! latency of a loaded leader, whose every batch carries new proposals
//! (etcd's raft applies committed entries concurrently with the next
//! append for the same reason). Entries this batch writes (a one-node
//! quorum commits its own new entries at once) and every batch that carries
//! a snapshot keep the strict order, as do tickets that are not a
//! proposal's `Ok(index)` below that first index.
//!
//! The one rule for a received snapshot and the state machine: a snapshot
//! **above** the applied index replaces the state machine; one **at** the
//! applied index is persisted (the core asked for it) but not restored —
//! the state machine already holds exactly that state; one **below** it
//! would roll applied state back, so it is a broken core
//! ([`ReadyError::SnapshotBelowApplied`]) and nothing of the batch after the
//! persist happens. Committed entries at or below the applied index (the
//! ones a restored snapshot covers) are skipped; any other gap or repeat is
//! [`ReadyError::NotContiguous`].

use std::future::Future;

use thiserror::Error;

use crate::core::Ready;
use crate::error::Rejected;
use crate::types::{Entry, LogIndex, NodeId, Snapshot, Ticket};

/// The I/O of one node, as [`handle_ready`] uses it.
pub trait ReadyDriver<M> {
    /// Why the driver itself failed (a storage error, a checker's verdict).
    type Error;

    /// Hands one message to the network.
    fn send(&mut self, to: NodeId, message: M);

    /// Writes the batch's durable part and syncs it when `must_sync`.
    /// Takes the batch and gives it back (the runtime moves it to a
    /// blocking thread and back); `Ok(None)` means the node crashed before
    /// the sync (simulated crashes), and nothing after this step happens.
    fn persist(
        &mut self,
        ready: Ready<M>,
    ) -> impl Future<Output = Result<Option<Ready<M>>, Self::Error>>;

    /// The index the state machine has applied.
    fn applied_index(&self) -> LogIndex;

    /// Replaces the state machine with `snapshot` (its index is above the
    /// applied index); afterwards [`ReadyDriver::applied_index`] is
    /// `snapshot.index`.
    fn restore(&mut self, snapshot: &Snapshot) -> Result<(), Self::Error>;

    /// Applies the next committed entry (`applied_index() + 1`).
    fn apply(&mut self, entry: Entry) -> Result<(), Self::Error>;

    /// Finishes one ticket.
    fn complete(&mut self, ticket: Ticket, result: Result<LogIndex, Rejected>);
}

/// What became of one batch.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Handled {
    /// Every step was done.
    Done,
    /// The node crashed between persisting and syncing (only drivers that
    /// model crashes report this).
    Crashed,
}

/// Why a batch could not be handled.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum ReadyError<E> {
    /// The driver failed (storage, state machine, a checker).
    #[error(transparent)]
    Driver(E),
    /// The core handed over a snapshot below the applied index.
    #[error("Ready #{number}: a snapshot at {snapshot} is below the applied index {applied}")]
    SnapshotBelowApplied {
        /// The batch.
        number: u64,
        /// The snapshot's index.
        snapshot: LogIndex,
        /// The applied index.
        applied: LogIndex,
    },
    /// A committed entry that does not follow the applied index.
    #[error(
        "Ready #{number}: committed entry {index} does not follow the applied index {applied}"
    )]
    NotContiguous {
        /// The batch.
        number: u64,
        /// The entry's index.
        index: LogIndex,
        /// The applied index.
        applied: LogIndex,
    },
    /// More early messages than messages, or writes without `must_sync`.
    #[error("Ready #{number}: {problem}")]
    Malformed {
        /// The batch.
        number: u64,
        /// What is wrong.
        problem: String,
    },
}

/// Does everything one [`Ready`] asks, in the contract's order (see the
/// module docs). The caller takes the batch from `core.ready()` and feeds
/// the core no input until this returns: that is what lets a leader count
/// its own copy of an early-sent entry only once it is synced.
pub async fn handle_ready<M, D: ReadyDriver<M>>(
    driver: &mut D,
    mut ready: Ready<M>,
) -> Result<Handled, ReadyError<D::Error>> {
    let number = ready.number;
    if ready.early_messages > ready.messages.len() {
        return Err(ReadyError::Malformed {
            number,
            problem: format!(
                "{} early messages but only {} messages",
                ready.early_messages,
                ready.messages.len()
            ),
        });
    }
    if ready.has_writes() && !ready.must_sync {
        return Err(ReadyError::Malformed {
            number,
            problem: "changes durable state but must_sync is false".into(),
        });
    }
    for (to, message) in ready.take_early_messages() {
        driver.send(to, message);
    }
    if ready.has_writes() || ready.must_sync {
        if ready.snapshot.is_none() {
            let durable_below = ready
                .append
                .first()
                .map(|entry| entry.index)
                .into_iter()
                .chain(ready.truncate_from)
                .min()
                .unwrap_or(LogIndex::MAX);
            let later = ready
                .committed
                .partition_point(|entry| entry.index < durable_below);
            let durable: Vec<Entry> = ready.committed.drain(..later).collect();
            apply_committed(driver, number, None, durable)?;
            let (now, after): (Vec<_>, Vec<_>) = std::mem::take(&mut ready.completed)
                .into_iter()
                .partition(|(_, result)| matches!(result, Ok(index) if *index < durable_below));
            ready.completed = after;
            for (ticket, result) in now {
                driver.complete(ticket, result);
            }
        }
        match driver.persist(ready).await.map_err(ReadyError::Driver)? {
            Some(persisted) => ready = persisted,
            None => return Ok(Handled::Crashed),
        }
    }
    if let Some(snapshot) = &ready.snapshot {
        let applied = driver.applied_index();
        if snapshot.index < applied {
            return Err(ReadyError::SnapshotBelowApplied {
                number,
                snapshot: snapshot.index,
                applied,
            });
        }
        if snapshot.index > applied {
            driver.restore(snapshot).map_err(ReadyError::Driver)?;
        }
    }
    for (to, message) in std::mem::take(&mut ready.messages) {
        driver.send(to, message);
    }
    let committed = std::mem::take(&mut ready.committed);
    apply_committed(driver, number, ready.snapshot.as_ref(), committed)?;
    for (ticket, result) in std::mem::take(&mut ready.completed) {
        driver.complete(ticket, result);
    }
    Ok(Handled::Done)
}

/// Applies committed entries in order, skipping those a snapshot restored
/// in this batch covers.
fn apply_committed<M, D: ReadyDriver<M>>(
    driver: &mut D,
    number: u64,
    snapshot: Option<&Snapshot>,
    committed: Vec<Entry>,
) -> Result<(), ReadyError<D::Error>> {
    for entry in committed {
        let applied = driver.applied_index();
        if entry.index <= applied && snapshot.is_some_and(|s| entry.index <= s.index) {
            continue; // covered by the snapshot restored above
        }
        if entry.index != applied + 1 {
            return Err(ReadyError::NotContiguous {
                number,
                index: entry.index,
                applied,
            });
        }
        driver.apply(entry).map_err(ReadyError::Driver)?;
    }
    Ok(())
}

/// Runs [`handle_ready`] for a driver that never waits (the simulator, test
/// harnesses): polls it once, to completion.
pub fn handle_ready_now<M, D: ReadyDriver<M>>(
    driver: &mut D,
    ready: Ready<M>,
) -> Result<Handled, ReadyError<D::Error>> {
    let future = std::pin::pin!(handle_ready(driver, ready));
    let mut context = std::task::Context::from_waker(std::task::Waker::noop());
    match future.poll(&mut context) {
        std::task::Poll::Ready(result) => result,
        std::task::Poll::Pending => {
            panic!("handle_ready_now: the driver's persist waited; use handle_ready")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::Payload;
    use bytes::Bytes;

    /// Records the order of the steps.
    #[derive(Default)]
    struct Recorder {
        steps: Vec<String>,
        applied: LogIndex,
        crash: bool,
    }

    impl ReadyDriver<&'static str> for Recorder {
        type Error = String;

        fn send(&mut self, to: NodeId, message: &'static str) {
            self.steps.push(format!("send {to} {message}"));
        }

        async fn persist(
            &mut self,
            ready: Ready<&'static str>,
        ) -> Result<Option<Ready<&'static str>>, String> {
            self.steps.push("persist".into());
            Ok((!self.crash).then_some(ready))
        }

        fn applied_index(&self) -> LogIndex {
            self.applied
        }

        fn restore(&mut self, snapshot: &Snapshot) -> Result<(), String> {
            self.steps.push(format!("restore {}", snapshot.index));
            self.applied = snapshot.index;
            Ok(())
        }

        fn apply(&mut self, entry: Entry) -> Result<(), String> {
            self.steps.push(format!("apply {}", entry.index));
            self.applied = entry.index;
            Ok(())
        }

        fn complete(&mut self, ticket: Ticket, _result: Result<LogIndex, Rejected>) {
            self.steps.push(format!("complete {ticket}"));
        }
    }

    impl Recorder {
        /// A driver whose persist crashes before the sync.
        fn crashing() -> Recorder {
            Recorder {
                crash: true,
                ..Recorder::default()
            }
        }
    }

    fn entry(index: LogIndex) -> Entry {
        Entry {
            index,
            epoch: 1,
            payload: Payload::Command(Bytes::from_static(b"x")),
        }
    }

    fn snapshot(index: LogIndex) -> Snapshot {
        Snapshot {
            index,
            epoch: 1,
            membership: crate::Membership::new([1, 2, 3]),
            protocol_state: Bytes::new(),
            data: Bytes::new(),
        }
    }

    fn batch() -> Ready<&'static str> {
        let mut ready = Ready::new(1);
        ready.append = vec![entry(3)];
        ready.must_sync = true;
        ready.messages = vec![(2, "early"), (3, "late")];
        ready.early_messages = 1;
        ready.committed = vec![entry(1), entry(2)];
        ready.completed = vec![(Ticket(9), Ok(2))];
        ready
    }

    #[test]
    fn the_steps_come_in_the_contracts_order() {
        let mut driver = Recorder::default();
        assert_eq!(handle_ready_now(&mut driver, batch()), Ok(Handled::Done));
        assert_eq!(
            driver.steps,
            [
                "send 2 early",
                "apply 1",
                "apply 2",
                "complete t9",
                "persist",
                "send 3 late",
            ],
            "entries 1 and 2 were synced by earlier batches: they are applied \
             and answered before this batch's fsync"
        );
    }

    /// A one-node quorum commits its own new entry in the batch that writes
    /// it: that entry, and the proposal it answers, wait for the sync.
    fn one_node_batch() -> Ready<&'static str> {
        let mut ready = Ready::new(1);
        ready.append = vec![entry(3), entry(4)];
        ready.must_sync = true;
        ready.committed = vec![entry(1), entry(2), entry(3), entry(4)];
        ready.completed = vec![
            (Ticket(7), Ok(2)),
            (Ticket(8), Ok(3)),
            (Ticket(9), Err(Rejected::Overloaded)),
        ];
        ready
    }

    #[test]
    fn entries_this_batch_writes_are_applied_only_after_its_sync() {
        let mut driver = Recorder::default();
        assert_eq!(
            handle_ready_now(&mut driver, one_node_batch()),
            Ok(Handled::Done)
        );
        assert_eq!(
            driver.steps,
            [
                "apply 1",
                "apply 2",
                "complete t7",
                "persist",
                "apply 3",
                "apply 4",
                "complete t8",
                "complete t9"
            ]
        );

        // A truncation is a write too: nothing at or above it is durable.
        let mut driver = Recorder::default();
        let mut ready = Ready::new(1);
        ready.truncate_from = Some(2);
        ready.must_sync = true;
        ready.committed = vec![entry(1), entry(2)];
        ready.completed = vec![(Ticket(5), Ok(2))];
        assert_eq!(handle_ready_now(&mut driver, ready), Ok(Handled::Done));
        assert_eq!(
            driver.steps,
            ["apply 1", "persist", "apply 2", "complete t5"]
        );
    }

    #[test]
    fn a_crash_before_the_sync_answers_nothing_the_batch_wrote() {
        let mut driver = Recorder::crashing();
        assert_eq!(handle_ready_now(&mut driver, batch()), Ok(Handled::Crashed));
        assert_eq!(
            driver.steps,
            [
                "send 2 early",
                "apply 1",
                "apply 2",
                "complete t9",
                "persist"
            ],
            "only what earlier batches made durable was applied and answered"
        );
        let mut driver = Recorder::crashing();
        assert_eq!(
            handle_ready_now(&mut driver, one_node_batch()),
            Ok(Handled::Crashed)
        );
        assert_eq!(
            driver.steps,
            ["apply 1", "apply 2", "complete t7", "persist"],
            "entries 3 and 4 were never synced: not applied, their proposal not answered"
        );
    }

    #[test]
    fn a_batch_with_a_snapshot_keeps_the_strict_order() {
        let mut driver = Recorder {
            applied: 2,
            ..Recorder::default()
        };
        let mut ready = Ready::new(1);
        ready.snapshot = Some(snapshot(5));
        ready.append = vec![entry(6)];
        ready.must_sync = true;
        ready.committed = vec![entry(3), entry(4), entry(5), entry(6)];
        ready.completed = vec![(Ticket(1), Ok(4))];
        assert_eq!(handle_ready_now(&mut driver, ready), Ok(Handled::Done));
        assert_eq!(
            driver.steps,
            ["persist", "restore 5", "apply 6", "complete t1"]
        );
    }

    #[test]
    fn snapshots_above_at_and_below_the_applied_index() {
        let mut driver = Recorder {
            applied: 5,
            ..Recorder::default()
        };
        let mut above = Ready::new(1);
        above.snapshot = Some(snapshot(8));
        above.must_sync = true;
        above.committed = vec![entry(7), entry(8), entry(9)];
        assert_eq!(handle_ready_now(&mut driver, above), Ok(Handled::Done));
        assert_eq!(driver.steps, ["persist", "restore 8", "apply 9"]);

        let mut at = Ready::new(2);
        at.snapshot = Some(snapshot(9));
        at.must_sync = true;
        driver.steps.clear();
        assert_eq!(handle_ready_now(&mut driver, at), Ok(Handled::Done));
        assert_eq!(driver.steps, ["persist"], "persisted, not restored");

        let mut below = Ready::new(3);
        below.snapshot = Some(snapshot(4));
        below.must_sync = true;
        assert_eq!(
            handle_ready_now(&mut driver, below),
            Err(ReadyError::SnapshotBelowApplied {
                number: 3,
                snapshot: 4,
                applied: 9
            })
        );
    }

    #[test]
    fn a_sync_without_writes_still_comes_before_the_messages() {
        let mut driver = Recorder::default();
        let mut ready = Ready::new(1);
        ready.must_sync = true;
        ready.messages = vec![(2, "ack")];
        assert_eq!(handle_ready_now(&mut driver, ready), Ok(Handled::Done));
        assert_eq!(driver.steps, ["persist", "send 2 ack"]);
    }

    #[test]
    fn an_entry_at_or_below_the_applied_index_without_a_snapshot_is_an_error() {
        let mut driver = Recorder {
            applied: 2,
            ..Recorder::default()
        };
        let mut repeat = Ready::new(1);
        repeat.committed = vec![entry(2)];
        assert!(matches!(
            handle_ready_now(&mut driver, repeat),
            Err(ReadyError::NotContiguous {
                index: 2,
                applied: 2,
                ..
            })
        ));
        assert!(driver.steps.is_empty());
    }

    #[test]
    fn gaps_repeats_and_malformed_batches_are_errors() {
        let mut driver = Recorder::default();
        let mut gap = Ready::new(1);
        gap.committed = vec![entry(2)];
        assert!(matches!(
            handle_ready_now(&mut driver, gap),
            Err(ReadyError::NotContiguous { index: 2, .. })
        ));
        let mut early = Ready::new(2);
        early.messages = vec![(2, "m")];
        early.early_messages = 2;
        assert!(matches!(
            handle_ready_now(&mut driver, early),
            Err(ReadyError::Malformed { .. })
        ));
        let mut unsynced = Ready::new(3);
        unsynced.append = vec![entry(1)];
        assert!(matches!(
            handle_ready_now(&mut driver, unsynced),
            Err(ReadyError::Malformed { .. })
        ));
    }
}
