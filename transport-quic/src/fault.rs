//! Fault injection for end-to-end tests: drop, delay, block (partition) and
//! bulk stalls, per directed link `from → to`.
//!
//! One [`FaultController`] can be shared by every transport of a test (the
//! QUIC transports of several nodes, or a [`MemoryNetwork`](crate::memory::MemoryNetwork)),
//! which then behaves like one faulty network; or each node can get its own.
//! A transport with node id `me` consults it:
//!
//! * on **send** to `to`: link `me → to` blocked → the message is dropped;
//!   otherwise it is dropped with the link's drop probability;
//! * on **receive** from `from`: link `from → me` blocked → dropped;
//!   otherwise it is delivered after the link's delay (order is kept: a
//!   message never overtakes an earlier one from the same stream);
//! * the QUIC transport stops reading **bulk** streams on a stalled link
//!   (models a slow receiver; QUIC flow control then stalls the sender's
//!   bulk stream) while control traffic keeps flowing.
//!
//! Drops look like network loss: `send` still returns `Ok`. So that a shared
//! controller does not count a drop probability twice, random drops happen
//! only on send and delays only on receive; blocks apply at both ends, so a
//! per-node controller partitions a node in both directions.
//!
//! Everything is off by default, and when no rule is set a check is one
//! relaxed atomic load.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use consensus_api::NodeId;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

type Link = (NodeId, NodeId);

#[derive(Debug)]
struct Rules {
    blocked: BTreeSet<Link>,
    isolated: BTreeSet<NodeId>,
    groups: BTreeMap<NodeId, usize>,
    drop_rate: BTreeMap<Link, f64>,
    delay: BTreeMap<Link, Duration>,
    stalled_bulk: BTreeSet<Link>,
    rng: ChaCha8Rng,
}

impl Rules {
    fn is_empty(&self) -> bool {
        self.blocked.is_empty()
            && self.isolated.is_empty()
            && self.groups.is_empty()
            && self.drop_rate.is_empty()
            && self.delay.is_empty()
            && self.stalled_bulk.is_empty()
    }

    fn is_blocked(&self, from: NodeId, to: NodeId) -> bool {
        if self.blocked.contains(&(from, to))
            || self.isolated.contains(&from)
            || self.isolated.contains(&to)
        {
            return true;
        }
        matches!(
            (self.groups.get(&from), self.groups.get(&to)),
            (Some(a), Some(b)) if a != b
        )
    }
}

#[derive(Debug)]
struct Inner {
    active: AtomicBool,
    rules: Mutex<Rules>,
    changes: watch::Sender<u64>,
}

/// Shared handle to a set of fault rules. Cloning shares the rules.
#[derive(Clone, Debug)]
pub struct FaultController {
    inner: Arc<Inner>,
}

impl Default for FaultController {
    fn default() -> Self {
        Self::new()
    }
}

impl FaultController {
    /// No faults; random drops seeded with 0.
    pub fn new() -> Self {
        Self::with_seed(0)
    }

    /// No faults; random drops drawn from a ChaCha8 RNG seeded with `seed`.
    pub fn with_seed(seed: u64) -> Self {
        FaultController {
            inner: Arc::new(Inner {
                active: AtomicBool::new(false),
                rules: Mutex::new(Rules {
                    blocked: BTreeSet::new(),
                    isolated: BTreeSet::new(),
                    groups: BTreeMap::new(),
                    drop_rate: BTreeMap::new(),
                    delay: BTreeMap::new(),
                    stalled_bulk: BTreeSet::new(),
                    rng: ChaCha8Rng::seed_from_u64(seed),
                }),
                changes: watch::channel(0).0,
            }),
        }
    }

    fn update(&self, change: impl FnOnce(&mut Rules)) {
        {
            let mut rules = self.inner.rules.lock().unwrap_or_else(|e| e.into_inner());
            change(&mut rules);
            self.inner
                .active
                .store(!rules.is_empty(), Ordering::Release);
        }
        self.inner.changes.send_modify(|version| *version += 1);
    }

    /// Whether any rule is set.
    pub fn is_active(&self) -> bool {
        self.inner.active.load(Ordering::Relaxed)
    }

    /// Drops everything on link `from → to`.
    pub fn block(&self, from: NodeId, to: NodeId) {
        self.update(|rules| {
            rules.blocked.insert((from, to));
        });
    }

    /// Lifts a [`block`](Self::block).
    pub fn unblock(&self, from: NodeId, to: NodeId) {
        self.update(|rules| {
            rules.blocked.remove(&(from, to));
        });
    }

    /// Blocks both directions between `a` and `b`.
    pub fn cut(&self, a: NodeId, b: NodeId) {
        self.update(|rules| {
            rules.blocked.insert((a, b));
            rules.blocked.insert((b, a));
        });
    }

    /// Blocks every link to and from `node`.
    pub fn isolate(&self, node: NodeId) {
        self.update(|rules| {
            rules.isolated.insert(node);
        });
    }

    /// Splits the listed nodes into groups: links between different groups
    /// are blocked (nodes in no group are unaffected). Replaces an earlier
    /// partition.
    pub fn partition(&self, groups: &[&[NodeId]]) {
        self.update(|rules| {
            rules.groups.clear();
            for (index, group) in groups.iter().enumerate() {
                for &node in group.iter() {
                    rules.groups.insert(node, index);
                }
            }
        });
    }

    /// Removes every block, isolation and partition (drops, delays and
    /// stalls stay).
    pub fn heal(&self) {
        self.update(|rules| {
            rules.blocked.clear();
            rules.isolated.clear();
            rules.groups.clear();
        });
    }

    /// Removes every rule.
    pub fn clear(&self) {
        self.update(|rules| {
            rules.blocked.clear();
            rules.isolated.clear();
            rules.groups.clear();
            rules.drop_rate.clear();
            rules.delay.clear();
            rules.stalled_bulk.clear();
        });
    }

    /// Drops each message sent on `from → to` with probability `rate`
    /// (clamped to `0..=1`; 0 removes the rule).
    pub fn set_drop_rate(&self, from: NodeId, to: NodeId, rate: f64) {
        let rate = if rate.is_nan() {
            0.0
        } else {
            rate.clamp(0.0, 1.0)
        };
        self.update(|rules| {
            if rate == 0.0 {
                rules.drop_rate.remove(&(from, to));
            } else {
                rules.drop_rate.insert((from, to), rate);
            }
        });
    }

    /// Delays each message received on `from → to` by `delay` (zero removes
    /// the rule).
    pub fn set_delay(&self, from: NodeId, to: NodeId, delay: Duration) {
        self.update(|rules| {
            if delay.is_zero() {
                rules.delay.remove(&(from, to));
            } else {
                rules.delay.insert((from, to), delay);
            }
        });
    }

    /// While set, `to` stops reading bulk streams from `from` (QUIC
    /// transport only); control messages are unaffected.
    pub fn set_bulk_stalled(&self, from: NodeId, to: NodeId, stalled: bool) {
        self.update(|rules| {
            if stalled {
                rules.stalled_bulk.insert((from, to));
            } else {
                rules.stalled_bulk.remove(&(from, to));
            }
        });
    }

    /// Whether link `from → to` is blocked.
    pub fn is_blocked(&self, from: NodeId, to: NodeId) -> bool {
        if !self.is_active() {
            return false;
        }
        let rules = self.inner.rules.lock().unwrap_or_else(|e| e.into_inner());
        rules.is_blocked(from, to)
    }

    /// Decides a send on `from → to`: `true` to send, `false` to drop.
    pub(crate) fn allow_send(&self, from: NodeId, to: NodeId) -> bool {
        if !self.is_active() {
            return true;
        }
        let mut rules = self.inner.rules.lock().unwrap_or_else(|e| e.into_inner());
        if rules.is_blocked(from, to) {
            return false;
        }
        match rules.drop_rate.get(&(from, to)).copied() {
            Some(rate) => rules.rng.random::<f64>() >= rate,
            None => true,
        }
    }

    /// Decides a receive on `from → to`: `None` to drop, or the delay to
    /// apply.
    pub(crate) fn on_receive(&self, from: NodeId, to: NodeId) -> Option<Duration> {
        if !self.is_active() {
            return Some(Duration::ZERO);
        }
        let rules = self.inner.rules.lock().unwrap_or_else(|e| e.into_inner());
        if rules.is_blocked(from, to) {
            return None;
        }
        Some(rules.delay.get(&(from, to)).copied().unwrap_or_default())
    }

    /// Returns once bulk streams on `from → to` may be read.
    pub(crate) async fn bulk_unstalled(&self, from: NodeId, to: NodeId) {
        if !self.is_active() {
            return;
        }
        let mut changes = self.inner.changes.subscribe();
        loop {
            {
                let rules = self.inner.rules.lock().unwrap_or_else(|e| e.into_inner());
                if !rules.stalled_bulk.contains(&(from, to)) {
                    return;
                }
            }
            if changes.changed().await.is_err() {
                return;
            }
        }
    }
}

/// Delivers items in FIFO order, each not before its deadline. Used for
/// link delays: once anything is waiting in the line, later items go
/// through it too, so delays never reorder a stream.
pub(crate) struct DelayLine<T> {
    tx: mpsc::UnboundedSender<(Instant, T)>,
    pending: Arc<AtomicUsize>,
}

impl<T: Send + 'static> DelayLine<T> {
    /// Spawns the delivering task; it stops when `deliver` returns `false`
    /// or the line is dropped (after delivering what it holds).
    pub fn spawn<F, Fut>(mut deliver: F) -> Self
    where
        F: FnMut(T) -> Fut + Send + 'static,
        Fut: Future<Output = bool> + Send,
    {
        let (tx, mut rx) = mpsc::unbounded_channel::<(Instant, T)>();
        let pending = Arc::new(AtomicUsize::new(0));
        let counter = pending.clone();
        tokio::spawn(async move {
            while let Some((deadline, item)) = rx.recv().await {
                tokio::time::sleep_until(deadline).await;
                let keep_going = deliver(item).await;
                counter.fetch_sub(1, Ordering::AcqRel);
                if !keep_going {
                    return;
                }
            }
        });
        DelayLine { tx, pending }
    }

    /// Whether nothing is waiting (an item may then bypass the line).
    pub fn is_idle(&self) -> bool {
        self.pending.load(Ordering::Acquire) == 0
    }

    /// Queues `item` for delivery after `delay`.
    pub fn push(&self, delay: Duration, item: T) {
        self.pending.fetch_add(1, Ordering::AcqRel);
        if self.tx.send((Instant::now() + delay, item)).is_err() {
            self.pending.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_apply_per_directed_link() {
        let faults = FaultController::new();
        assert!(!faults.is_active());
        assert!(faults.allow_send(1, 2));
        faults.block(1, 2);
        assert!(faults.is_active());
        assert!(!faults.allow_send(1, 2));
        assert!(faults.allow_send(2, 1));
        assert_eq!(faults.on_receive(1, 2), None);
        faults.heal();
        assert!(!faults.is_active());

        faults.partition(&[&[1], &[2, 3]]);
        assert!(faults.is_blocked(1, 2) && faults.is_blocked(3, 1));
        assert!(!faults.is_blocked(2, 3));
        assert!(
            !faults.is_blocked(1, 4),
            "nodes outside the partition are unaffected"
        );
        faults.heal();

        faults.isolate(3);
        assert!(faults.is_blocked(3, 1) && faults.is_blocked(2, 3));
        assert!(!faults.is_blocked(1, 2));
        faults.clear();

        faults.set_delay(1, 2, Duration::from_millis(5));
        assert_eq!(faults.on_receive(1, 2), Some(Duration::from_millis(5)));
        assert_eq!(faults.on_receive(2, 1), Some(Duration::ZERO));
        faults.set_delay(1, 2, Duration::ZERO);
        assert!(!faults.is_active());
    }

    #[test]
    fn drop_rate_is_seeded_and_roughly_right() {
        let run = |seed| {
            let faults = FaultController::with_seed(seed);
            faults.set_drop_rate(1, 2, 0.25);
            (0..4000).filter(|_| !faults.allow_send(1, 2)).count()
        };
        let dropped = run(7);
        assert_eq!(dropped, run(7), "same seed, same drops");
        assert!((800..1200).contains(&dropped), "dropped {dropped} of 4000");
    }

    #[tokio::test]
    async fn delay_line_keeps_order_and_waits() {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let line = DelayLine::spawn(move |item: u32| {
            let tx = tx.clone();
            async move { tx.send((item, Instant::now())).is_ok() }
        });
        let start = Instant::now();
        line.push(Duration::from_millis(30), 1);
        line.push(Duration::from_millis(0), 2);
        let (first, at) = rx.recv().await.unwrap();
        let (second, _) = rx.recv().await.unwrap();
        assert_eq!((first, second), (1, 2));
        assert!(at - start >= Duration::from_millis(30));
    }
}
