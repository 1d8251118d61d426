//! The memo of visited search configurations.
//!
//! A configuration is `(C, s, I)`: the set `C` of completed operations
//! already linearized, the register value `s`, and the set `I` of
//! unknown-outcome operations already linearized. The memo is keyed by
//! `(C, s)` (an incrementally maintained Zobrist hash of `C` mixed with `s`);
//! each key holds the info sets seen with it.
//!
//! A new configuration is *dominated*, and need not be explored, when some
//! visited one has the same `C` and `s` and an info set `I0 ⊆ I`: whatever
//! can be done from `(C, s, I)` can be done from `(C, s, I0)`, because the
//! extra unknown-outcome operations may simply never take effect. (With
//! `I0 = I` this is the ordinary "already visited" test of Lowe's algorithm.)
//!
//! Entries are grouped by `(C, s)`, so the completed set is stored and
//! compared once per group, and a lookup scans the group's info sets.
//!
//! Sets are stored compactly: a set of operation indices (numbered in
//! invocation order) is `low` (the smallest index *not* in the set, so
//! `0..low` are all in) plus the bitset words from `low / 64` up to the word
//! of the largest member. During a search `low` advances with time and the
//! stored words cover only the window of concurrent operations, so an entry
//! takes a few words, not `n / 64`.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// Hasher for keys that are already well-mixed 64-bit hashes.
#[derive(Default)]
pub(crate) struct IdentityHasher(u64);

impl Hasher for IdentityHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// Hasher for small integer keys (process ids): SplitMix64 of the value.
#[derive(Default)]
pub(crate) struct MixHasher(u64);

impl Hasher for MixHasher {
    fn finish(&self) -> u64 {
        mix64(self.0)
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 ^= n;
    }
}

/// SplitMix64: a fixed, well-mixed function used for Zobrist keys.
pub(crate) fn mix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A set of operation indices as the search holds it.
pub(crate) struct SetView<'a> {
    /// Smallest index not in the set.
    pub(crate) low: u32,
    /// Largest index in the set, if any.
    pub(crate) max: Option<u32>,
    /// The full bitset.
    pub(crate) bits: &'a [u64],
}

impl SetView<'_> {
    /// The canonical stored words: `bits[low / 64 ..= max / 64]` when some
    /// member lies above `low`, nothing otherwise (the set is `0..low`).
    fn window(&self) -> &[u64] {
        match self.max {
            Some(max) if max > self.low => {
                &self.bits[(self.low / 64) as usize..=(max / 64) as usize]
            }
            _ => &[],
        }
    }
}

/// The configurations sharing one `(C, s)`.
struct Group {
    state: u32,
    c_low: u32,
    c_start: usize,
    c_len: u32,
    /// First info-set entry of this group.
    first: u32,
    /// Next group with the same hash key, or `END`.
    next: u32,
}

/// One stored configuration: an info set within its group.
struct Entry {
    after_info: bool,
    i_low: u32,
    i_start: usize,
    i_len: u32,
    /// Next entry of the same group, or `END`.
    next: u32,
}

const END: u32 = u32::MAX;

/// The visited configurations of one key's search.
#[derive(Default)]
pub(crate) struct Memo {
    heads: HashMap<u64, u32, BuildHasherDefault<IdentityHasher>>,
    groups: Vec<Group>,
    entries: Vec<Entry>,
    words: Vec<u64>,
}

impl Memo {
    /// Number of configurations stored.
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// Approximate heap bytes used.
    pub(crate) fn bytes(&self) -> usize {
        self.entries.capacity() * std::mem::size_of::<Entry>()
            + self.groups.capacity() * std::mem::size_of::<Group>()
            + self.words.capacity() * 8
            + self.heads.capacity() * 16
    }

    /// Records the configuration unless it is dominated by a visited one.
    /// Returns `true` if it is new (and must be explored).
    pub(crate) fn visit(
        &mut self,
        c_hash: u64,
        state: u32,
        after_info: bool,
        completed: &SetView<'_>,
        infos: &SetView<'_>,
    ) -> bool {
        let key = c_hash ^ mix64(u64::from(state) ^ 0xA5A5_5A5A_0F0F_F0F0);
        let c_window = completed.window();
        let head = self.heads.get(&key).copied().unwrap_or(END);
        let mut group = head;
        while group != END {
            let g = &self.groups[group as usize];
            if g.state == state
                && g.c_low == completed.low
                && self.words[g.c_start..g.c_start + g.c_len as usize] == *c_window
            {
                break;
            }
            group = g.next;
        }
        if group == END {
            let c_start = self.words.len();
            self.words.extend_from_slice(c_window);
            group = self.groups.len() as u32;
            self.groups.push(Group {
                state,
                c_low: completed.low,
                c_start,
                c_len: c_window.len() as u32,
                first: END,
                next: head,
            });
            self.heads.insert(key, group);
        } else {
            let mut at = self.groups[group as usize].first;
            while at != END {
                let entry = &self.entries[at as usize];
                if (after_info || !entry.after_info) && self.info_subset(entry, infos) {
                    return false;
                }
                at = entry.next;
            }
        }
        let i_window = infos.window();
        let i_start = self.words.len();
        self.words.extend_from_slice(i_window);
        let id = self.entries.len() as u32;
        let g = &mut self.groups[group as usize];
        self.entries.push(Entry {
            after_info,
            i_low: infos.low,
            i_start,
            i_len: i_window.len() as u32,
            next: g.first,
        });
        g.first = id;
        true
    }

    /// Whether the entry's info set is a subset of `infos`.
    fn info_subset(&self, entry: &Entry, infos: &SetView<'_>) -> bool {
        if infos.low < entry.i_low {
            // Some index below entry.i_low (all in the stored set) is missing.
            return false;
        }
        let stored = &self.words[entry.i_start..entry.i_start + entry.i_len as usize];
        let first = (entry.i_low / 64) as usize;
        stored
            .iter()
            .enumerate()
            .all(|(k, &w)| w & !infos.bits.get(first + k).copied().unwrap_or(0) == 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(members: &[u32], n: usize) -> (Vec<u64>, u32, Option<u32>) {
        let mut bits = vec![0u64; n.div_ceil(64)];
        for &m in members {
            bits[(m / 64) as usize] |= 1 << (m % 64);
        }
        let low = (0..n as u32)
            .find(|i| !members.contains(i))
            .unwrap_or(n as u32);
        (bits, low, members.iter().copied().max())
    }

    fn visit(memo: &mut Memo, c: &[u32], s: u32, i: &[u32]) -> bool {
        visit_flagged(memo, c, s, false, i)
    }

    fn visit_flagged(memo: &mut Memo, c: &[u32], s: u32, after_info: bool, i: &[u32]) -> bool {
        let (cb, cl, cm) = set(c, 200);
        let (ib, il, im) = set(i, 200);
        let hash = c.iter().fold(0, |h, &x| h ^ mix64(u64::from(x)));
        memo.visit(
            hash,
            s,
            after_info,
            &SetView {
                low: cl,
                max: cm,
                bits: &cb,
            },
            &SetView {
                low: il,
                max: im,
                bits: &ib,
            },
        )
    }

    #[test]
    fn exact_repeat_is_not_new() {
        let mut memo = Memo::default();
        assert!(visit(&mut memo, &[0, 1, 70, 130], 3, &[]));
        assert!(!visit(&mut memo, &[0, 1, 70, 130], 3, &[]));
        assert!(visit(&mut memo, &[0, 1, 70, 130], 4, &[]));
        assert!(visit(&mut memo, &[0, 1, 70], 3, &[]));
        assert!(visit(&mut memo, &[0, 1, 2, 70, 130], 3, &[]));
        assert_eq!(memo.len(), 4);
    }

    #[test]
    fn info_supersets_are_dominated_subsets_are_not() {
        let mut memo = Memo::default();
        assert!(visit(&mut memo, &[0, 1], 3, &[5, 100]));
        assert!(!visit(&mut memo, &[0, 1], 3, &[5, 100, 150]));
        assert!(!visit(&mut memo, &[0, 1], 3, &[0, 1, 2, 3, 4, 5, 100]));
        assert!(visit(&mut memo, &[0, 1], 3, &[5]));
        assert!(visit(&mut memo, &[0, 1], 3, &[100]));
        assert!(!visit(&mut memo, &[0, 1], 3, &[5, 7]));
        // An empty info set dominates everything with the same (C, s).
        assert!(visit(&mut memo, &[0, 1], 3, &[]));
        assert!(!visit(&mut memo, &[0, 1], 3, &[199]));
    }

    #[test]
    fn configurations_reached_by_unknown_outcome_steps_have_fewer_moves() {
        let mut memo = Memo::default();
        // A restricted entry does not cover an unrestricted configuration...
        assert!(visit_flagged(&mut memo, &[0], 2, true, &[3]));
        assert!(visit_flagged(&mut memo, &[0], 2, false, &[3]));
        // ...but an unrestricted one covers both kinds.
        assert!(!visit_flagged(&mut memo, &[0], 2, true, &[3]));
        assert!(!visit_flagged(&mut memo, &[0], 2, true, &[3, 4]));
        assert!(!visit_flagged(&mut memo, &[0], 2, false, &[3, 9]));
        assert_eq!(memo.len(), 2);
    }
}
