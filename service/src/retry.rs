//! How clients (and servers forwarding to a leader) wait and retry:
//! exponential backoff with jitter, the order in which nodes are tried, and
//! the nodes to avoid for a while because they just went silent.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use consensus::NodeId;
use rand::Rng;

/// Exponential backoff with "equal jitter": the n-th pause is drawn from
/// `[c/2, c)` where `c = min(initial * 2^n, max)`.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Backoff {
    /// The ceiling of the first pause.
    pub initial: Duration,
    /// The largest ceiling.
    pub max: Duration,
}

impl Backoff {
    /// The ceiling of pause number `attempt` (0-based), before jitter.
    pub fn ceiling(&self, attempt: u32) -> Duration {
        self.initial
            .saturating_mul(1u32 << attempt.min(16))
            .min(self.max)
    }

    /// Pause number `attempt`, with jitter from `rng`.
    pub fn pause(&self, attempt: u32, rng: &mut impl Rng) -> Duration {
        self.ceiling(attempt).mul_f64(rng.random_range(0.5..1.0))
    }
}

/// The node after `after` in `ids` (sorted, not empty), cyclically,
/// skipping the nodes `skip` names unless it names all others.
pub fn next_node(ids: &[NodeId], after: NodeId, skip: impl Fn(NodeId) -> bool) -> NodeId {
    let cyclic = || {
        ids.iter()
            .copied()
            .filter(move |id| *id > after)
            .chain(ids.iter().copied().filter(move |id| *id <= after))
    };
    cyclic()
        .find(|id| *id != after && !skip(*id))
        .or_else(|| cyclic().next())
        .expect("at least one node")
}

/// The nodes that did not answer (timed out, lost the connection) during
/// one operation, and when. When the leader dies, the followers keep naming
/// it as the leader until they elect another; following that stale hint
/// back to the node that just timed out would cost one whole attempt
/// timeout per round. So for a while after a node went silent, a client
/// does not follow hints to it and asks the other nodes instead.
#[derive(Clone, Debug)]
pub struct Silent {
    since: BTreeMap<NodeId, Instant>,
    window: Duration,
}

impl Silent {
    /// Nodes are avoided for `window` after they went silent.
    pub fn new(window: Duration) -> Self {
        Silent {
            since: BTreeMap::new(),
            window,
        }
    }

    /// `id` went silent at `at`.
    pub fn note(&mut self, id: NodeId, at: Instant) {
        self.since.insert(id, at);
    }

    /// True while `id` is to be avoided.
    pub fn avoids(&self, id: NodeId, now: Instant) -> bool {
        self.since
            .get(&id)
            .is_some_and(|at| now.saturating_duration_since(*at) < self.window)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_node_is_cyclic_and_skips_silent_nodes() {
        let ids = [1, 2, 3];
        assert_eq!(next_node(&ids, 1, |_| false), 2);
        assert_eq!(next_node(&ids, 3, |_| false), 1);
        assert_eq!(next_node(&ids, 0, |_| false), 1);
        // 3 went silent: from 2 the next live node is 1.
        assert_eq!(next_node(&ids, 2, |id| id == 3), 1);
        assert_eq!(next_node(&ids, 1, |id| id == 2), 3);
        // Everyone else silent: plain round robin.
        assert_eq!(next_node(&ids, 1, |id| id != 1), 2);
        assert_eq!(next_node(&[7], 7, |_| true), 7);
    }

    #[test]
    fn a_silent_node_is_avoided_only_for_the_window() {
        let start = Instant::now();
        let mut silent = Silent::new(Duration::from_millis(200));
        assert!(!silent.avoids(1, start));
        silent.note(1, start);
        assert!(silent.avoids(1, start + Duration::from_millis(150)));
        assert!(!silent.avoids(2, start + Duration::from_millis(150)));
        assert!(!silent.avoids(1, start + Duration::from_millis(200)));
    }

    #[test]
    fn backoff_doubles_up_to_its_ceiling_with_jitter_below_it() {
        let backoff = Backoff {
            initial: Duration::from_millis(10),
            max: Duration::from_millis(300),
        };
        assert_eq!(backoff.ceiling(0), Duration::from_millis(10));
        assert_eq!(backoff.ceiling(3), Duration::from_millis(80));
        assert_eq!(backoff.ceiling(40), Duration::from_millis(300));
        let mut rng = rand::rng();
        for attempt in 0..10 {
            let pause = backoff.pause(attempt, &mut rng);
            assert!(pause >= backoff.ceiling(attempt) / 2 && pause < backoff.ceiling(attempt));
        }
    }
}
