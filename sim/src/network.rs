//! The simulated network: per-message faults ([`NetworkConfig`]) and the
//! link table that partitions and partial connectivity are made of
//! ([`Links`]).

use std::collections::BTreeSet;
use std::fmt;

use consensus_api::NodeId;

/// Per-message behaviour of the network. Delays are in ticks (fractions
/// allowed) and drawn uniformly from `[delay_ticks_min, delay_ticks_max]`, so
/// two messages on the same link can overtake each other (reordering).
#[derive(Clone, Debug, PartialEq)]
pub struct NetworkConfig {
    /// Probability that a message is lost.
    pub drop_rate: f64,
    /// Probability that a message is delivered twice (independent delays).
    pub duplicate_rate: f64,
    /// Shortest one-way delay, in ticks.
    pub delay_ticks_min: f64,
    /// Longest one-way delay, in ticks.
    pub delay_ticks_max: f64,
    /// Probability that a message is held back much longer than usual (up to
    /// `long_delay_ticks`): a slow path or a retransmission, the main source
    /// of heavy reordering.
    pub long_delay_rate: f64,
    /// Upper bound of a long delay, in ticks.
    pub long_delay_ticks: f64,
}

impl Default for NetworkConfig {
    /// A healthy network: no loss, no duplication, 0.05–0.5 tick delays.
    fn default() -> Self {
        NetworkConfig {
            drop_rate: 0.0,
            duplicate_rate: 0.0,
            delay_ticks_min: 0.05,
            delay_ticks_max: 0.5,
            long_delay_rate: 0.0,
            long_delay_ticks: 0.0,
        }
    }
}

impl NetworkConfig {
    /// A lossy, duplicating, reordering network (used under faults).
    pub fn faulty() -> Self {
        NetworkConfig {
            drop_rate: 0.02,
            duplicate_rate: 0.01,
            delay_ticks_min: 0.05,
            delay_ticks_max: 1.0,
            long_delay_rate: 0.01,
            long_delay_ticks: 10.0,
        }
    }
}

/// Which directed links are cut. A message from `a` to `b` is delivered only
/// while the link `a -> b` is up (checked when it arrives, so a cut also loses
/// messages already in flight).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Links {
    cut: BTreeSet<(NodeId, NodeId)>,
}

impl Links {
    /// Every link up.
    pub fn new() -> Self {
        Self::default()
    }

    /// True when `from -> to` is up.
    pub fn is_up(&self, from: NodeId, to: NodeId) -> bool {
        from == to || !self.cut.contains(&(from, to))
    }

    /// True when no link is cut.
    pub fn is_healed(&self) -> bool {
        self.cut.is_empty()
    }

    /// Cuts `from -> to` only.
    pub fn cut_one_way(&mut self, from: NodeId, to: NodeId) {
        if from != to {
            self.cut.insert((from, to));
        }
    }

    /// Cuts both directions between `a` and `b`.
    pub fn cut(&mut self, a: NodeId, b: NodeId) {
        self.cut_one_way(a, b);
        self.cut_one_way(b, a);
    }

    /// Restores `from -> to`.
    pub fn restore_one_way(&mut self, from: NodeId, to: NodeId) {
        self.cut.remove(&(from, to));
    }

    /// Restores every link.
    pub fn heal(&mut self) {
        self.cut.clear();
    }

    /// Splits `nodes` into `groups`: links inside a group are up, links
    /// between groups are cut both ways; a node in no group is isolated.
    pub fn partition(&mut self, nodes: &[NodeId], groups: &[&[NodeId]]) {
        self.heal();
        let group_of = |n: NodeId| groups.iter().position(|g| g.contains(&n));
        for &a in nodes {
            for &b in nodes {
                if a != b && (group_of(a).is_none() || group_of(a) != group_of(b)) {
                    self.cut_one_way(a, b);
                }
            }
        }
    }

    /// The cut links, in order.
    pub fn cut_links(&self) -> impl Iterator<Item = (NodeId, NodeId)> + '_ {
        self.cut.iter().copied()
    }

    /// Nodes reachable from `from` by following up links (including `from`).
    pub fn reachable_from(&self, from: NodeId, nodes: &[NodeId]) -> BTreeSet<NodeId> {
        let mut seen = BTreeSet::from([from]);
        let mut frontier = vec![from];
        while let Some(a) = frontier.pop() {
            for &b in nodes {
                if self.is_up(a, b) && seen.insert(b) {
                    frontier.push(b);
                }
            }
        }
        seen
    }
}

impl fmt::Display for Links {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.cut.is_empty() {
            return f.write_str("all links up");
        }
        let parts: Vec<String> = self
            .cut
            .iter()
            .filter(|(a, b)| a < b || !self.cut.contains(&(*b, *a)))
            .map(|(a, b)| {
                if self.cut.contains(&(*b, *a)) {
                    format!("{a}x{b}")
                } else {
                    format!("{a}->x{b}")
                }
            })
            .collect();
        f.write_str(&parts.join(" "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_and_one_way_cuts() {
        let nodes = [1, 2, 3, 4, 5];
        let mut links = Links::new();
        links.partition(&nodes, &[&[1, 2], &[3, 4, 5]]);
        assert!(links.is_up(1, 2) && links.is_up(3, 5));
        assert!(!links.is_up(1, 3) && !links.is_up(5, 2));
        assert_eq!(links.reachable_from(1, &nodes), BTreeSet::from([1, 2]));
        links.heal();
        links.cut_one_way(1, 2);
        assert!(!links.is_up(1, 2) && links.is_up(2, 1));
        assert_eq!(links.to_string(), "1->x2");
        links.cut(3, 4);
        assert_eq!(links.to_string(), "1->x2 3x4");
    }
}
