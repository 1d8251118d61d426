//! Output buffering: everything a core wants done, collected between two
//! calls of `ready()`, with outgoing items batched per peer.
//!
//! Items for the same peer are merged into one message per kind (one
//! `Prepare` carrying every slot being prepared, one `Accepted` carrying
//! every slot accepted ...), split only where `batch_entries_max` /
//! `batch_bytes_max` demand it. Each item is still its own Paxos instance.

use std::collections::BTreeMap;

use consensus_api::{Entry, LogIndex, NodeId, Rejected, Snapshot, Ticket};

use crate::message::{
    Accept, Accepted, Ask, CatchUp, Chosen, ChosenValue, Learn, Message, Nack, NackSlot, Prepare,
    Promise, PromiseSlot, Proposal, SlotBallot, SnapshotChunk,
};

/// What is queued for one peer.
#[derive(Debug, Default)]
pub(crate) struct PeerOutbox {
    pub(crate) prepare: Vec<SlotBallot>,
    pub(crate) promise: Vec<PromiseSlot>,
    pub(crate) accept: Vec<Proposal>,
    pub(crate) accepted: Vec<SlotBallot>,
    pub(crate) nack: Vec<NackSlot>,
    pub(crate) chosen: BTreeMap<LogIndex, ChosenValue>,
    pub(crate) ask: Vec<SlotBallot>,
    pub(crate) catch_up: Option<CatchUp>,
    pub(crate) learn: bool,
    pub(crate) snapshot_chunk: Option<SnapshotChunk>,
}

/// Size limits for one message.
#[derive(Copy, Clone, Debug)]
pub(crate) struct Limits {
    pub(crate) entries_max: usize,
    pub(crate) bytes_max: usize,
}

/// Splits `items` into runs of at most `entries_max` items and (unless a
/// single item is larger) `bytes_max` bytes.
fn split<T>(items: Vec<T>, limits: Limits, size: impl Fn(&T) -> usize) -> Vec<Vec<T>> {
    let mut runs = Vec::new();
    let mut run = Vec::new();
    let mut bytes = 0;
    for item in items {
        let item_bytes = size(&item);
        if !run.is_empty()
            && (run.len() >= limits.entries_max.max(1) || bytes + item_bytes > limits.bytes_max)
        {
            runs.push(std::mem::take(&mut run));
            bytes = 0;
        }
        bytes += item_bytes;
        run.push(item);
    }
    if !run.is_empty() {
        runs.push(run);
    }
    runs
}

/// Approximate size of a slot-and-ballot item.
fn small_item<T>(_: &T) -> usize {
    16
}

impl PeerOutbox {
    /// True when nothing is queued.
    pub(crate) fn is_empty(&self) -> bool {
        self.prepare.is_empty()
            && self.promise.is_empty()
            && self.accept.is_empty()
            && self.accepted.is_empty()
            && self.nack.is_empty()
            && self.chosen.is_empty()
            && self.ask.is_empty()
            && self.catch_up.is_none()
            && !self.learn
            && self.snapshot_chunk.is_none()
    }

    /// The messages: requests first, then answers, then catch-up traffic.
    pub(crate) fn into_messages(
        self,
        highest_accepted: LogIndex,
        learn: Learn,
        limits: Limits,
    ) -> Vec<Message> {
        let mut messages = Vec::new();
        if self.learn {
            messages.push(Message::Learn(learn));
        }
        for slots in split(self.prepare, limits, small_item) {
            messages.push(Message::Prepare(Prepare { slots }));
        }
        for slots in split(self.accept, limits, |p: &Proposal| {
            16 + p.payload.size_bytes()
        }) {
            messages.push(Message::Accept(Accept { slots }));
        }
        for slots in split(self.nack, limits, small_item) {
            messages.push(Message::Nack(Nack { slots }));
        }
        for slots in split(self.promise, limits, |p: &PromiseSlot| {
            16 + p.accepted.as_ref().map_or(0, |a| a.payload.size_bytes())
        }) {
            messages.push(Message::Promise(Promise {
                highest_accepted,
                slots,
            }));
        }
        for slots in split(self.accepted, limits, small_item) {
            messages.push(Message::Accepted(Accepted { slots }));
        }
        for slots in split(self.ask, limits, small_item) {
            messages.push(Message::Ask(Ask { slots }));
        }
        let chosen: Vec<ChosenValue> = self.chosen.into_values().collect();
        for entries in split(chosen, limits, |c: &ChosenValue| c.entry.size_bytes() + 8) {
            messages.push(Message::Chosen(Chosen { entries }));
        }
        if let Some(catch_up) = self.catch_up {
            messages.push(Message::CatchUp(catch_up));
        }
        if let Some(chunk) = self.snapshot_chunk {
            messages.push(Message::SnapshotChunk(chunk));
        }
        messages
    }
}

/// Everything pending for the next `Ready`.
#[derive(Debug, Default)]
pub(crate) struct Output {
    /// Number of the next `Ready`.
    pub(crate) number: u64,
    /// The hard state changed since the last `Ready`.
    pub(crate) hard_state_dirty: bool,
    /// The change must be written now, synced before the `Ready`'s messages
    /// go out (a new promise or ballot counter). A moved chosen frontier
    /// alone need not be: losing it in a crash only means re-learning those
    /// slots.
    pub(crate) hard_state_sync: bool,
    /// Entries to store (accepted values and learned chosen values).
    pub(crate) append: BTreeMap<LogIndex, Entry>,
    /// A snapshot received from a peer, to install.
    pub(crate) snapshot: Option<Snapshot>,
    /// Outgoing items per peer (including this node's own loopback).
    pub(crate) outbox: BTreeMap<NodeId, PeerOutbox>,
    /// Newly committed entries, contiguous.
    pub(crate) committed: Vec<Entry>,
    /// Finished tickets.
    pub(crate) completed: Vec<(Ticket, Result<LogIndex, Rejected>)>,
}

impl Output {
    /// The outbox of `peer`.
    pub(crate) fn to(&mut self, peer: NodeId) -> &mut PeerOutbox {
        self.outbox.entry(peer).or_default()
    }

    /// Finishes a ticket.
    pub(crate) fn complete(&mut self, ticket: Ticket, result: Result<LogIndex, Rejected>) {
        self.completed.push((ticket, result));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_respects_both_limits() {
        let limits = Limits {
            entries_max: 3,
            bytes_max: 10,
        };
        let runs = split((0..7).collect::<Vec<u32>>(), limits, |_| 1);
        assert_eq!(runs, vec![vec![0, 1, 2], vec![3, 4, 5], vec![6]]);
        let runs = split(vec![6, 6, 20, 1], limits, |x: &u32| *x as usize);
        assert_eq!(runs, vec![vec![6], vec![6], vec![20], vec![1]]);
        assert!(split(Vec::<u32>::new(), limits, |_| 1).is_empty());
    }
}
