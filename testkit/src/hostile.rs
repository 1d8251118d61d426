//! Well-formed but hostile values for property tests of decoders and cores.
//!
//! [`value`] builds a value of any `Deserialize` type (a protocol's
//! `Message`, a hard state, a client command) from a string of entropy
//! bytes, through a serde `Deserializer` that answers every request with a
//! value biased towards the ones that break code: 0, 1, `u64::MAX`,
//! `u64::MAX - 1`, `2^63`, `u32::MAX + small`, small numbers (which hit real
//! node ids, terms and indexes), empty and odd strings. Enums take any
//! variant, sequences hold 0 to 4 elements (so a batch of entries is short
//! but its indexes and terms lie). The same entropy gives the same value,
//! so a property-test input shrinks and replays like any byte string.
//!
//! [`Cluster`] runs a few cores of one protocol to a stable state (a leader,
//! committed entries) with a minimal in-memory driver, so that hostile
//! messages reach nodes in every role, and the cluster's own reaction to
//! them (elections on an absurd term, catch-up of a follower told of a far
//! index) runs as well.
//!
//! [`cases`], [`config`] and [`hits`] are the proptest scaffolding every
//! protocol's `tests/bad_input.rs` shares.

use std::fmt;

use consensus_api::{Bytes, Core, CoreConfig, InitialState, Membership, NodeId, Role};
use proptest::prelude::*;
use serde::de::{
    self, DeserializeOwned, DeserializeSeed, EnumAccess, IntoDeserializer, MapAccess, SeqAccess,
    VariantAccess, Visitor,
};

/// Deepest nesting of sequences, maps and options before they come out
/// empty (bounds the size of a value made from any entropy).
const DEPTH_MAX: u32 = 6;

/// How many distinct variants of the enum `T` the generator builds from
/// 4,096 fixed entropy strings: a property test whose generator skipped
/// most variants would prove little, so each protocol's test demands all.
pub fn variants_generated<T: DeserializeOwned>() -> usize {
    let mut seen = Vec::new();
    for seed in 0..4096u32 {
        let entropy: Vec<u8> = (0..64u32)
            .map(|i| (seed.wrapping_mul(2_654_435_761).wrapping_add(i * 40_503) >> 13) as u8)
            .collect();
        if let Some(value) = value::<T>(&entropy) {
            let kind = std::mem::discriminant(&value);
            if !seen.contains(&kind) {
                seen.push(kind);
            }
        }
    }
    seen.len()
}

/// Builds a `T` from `entropy` (see the module docs). `None` when the type
/// refused what it was given (its own validation, or a serde feature this
/// deserializer does not offer, such as `deserialize_any`).
pub fn value<T: DeserializeOwned>(entropy: &[u8]) -> Option<T> {
    let mut source = Hostile {
        data: entropy,
        position: 0,
        depth: 0,
    };
    T::deserialize(&mut source).ok()
}

/// A hostile number, from the same distribution the deserializer uses.
pub fn number(entropy: &[u8]) -> u64 {
    let mut source = Hostile {
        data: entropy,
        position: 0,
        depth: 0,
    };
    source.number()
}

/// Why a hostile value could not be built.
#[derive(Debug)]
pub struct Refused(String);

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Refused {}

impl de::Error for Refused {
    fn custom<T: fmt::Display>(message: T) -> Self {
        Refused(message.to_string())
    }
}

struct Hostile<'a> {
    data: &'a [u8],
    position: usize,
    depth: u32,
}

impl Hostile<'_> {
    /// The next entropy byte; zeros once the entropy is used up.
    fn byte(&mut self) -> u8 {
        let byte = self.data.get(self.position).copied().unwrap_or(0);
        self.position += 1;
        byte
    }

    fn raw_u64(&mut self) -> u64 {
        let mut raw = [0u8; 8];
        for byte in &mut raw {
            *byte = self.byte();
        }
        u64::from_le_bytes(raw)
    }

    fn number(&mut self) -> u64 {
        match self.byte() % 12 {
            0 => 0,
            1 => 1,
            2 => u64::MAX,
            3 => u64::MAX - 1,
            4 => 1 << 63,
            5 => u64::from(u32::MAX) + u64::from(self.byte()),
            6 => u64::MAX - u64::from(self.byte()),
            7 => self.raw_u64(),
            // Small numbers: real node ids, terms, indexes, offsets.
            8 | 9 => u64::from(self.byte() % 8),
            _ => u64::from(self.byte()),
        }
    }

    /// A length for a sequence or a map: 0 to 4, 0 when nested too deep.
    fn length(&mut self) -> usize {
        if self.depth >= DEPTH_MAX {
            return 0;
        }
        usize::from(self.byte() % 5)
    }

    fn bytes(&mut self) -> Vec<u8> {
        let len = match self.byte() % 8 {
            0 => 0,
            1 => 1,
            7 => usize::from(self.byte()) * 4,
            _ => usize::from(self.byte() % 24),
        };
        (0..len).map(|_| self.byte()).collect()
    }

    fn string(&mut self) -> String {
        let len = usize::from(self.byte() % 12);
        (0..len)
            .map(|_| match self.byte() % 8 {
                0 => '/',
                1 => '\0',
                2 => 'é',
                3 => '\u{10ffff}',
                4 => '.',
                _ => char::from(b'a' + self.byte() % 26),
            })
            .collect()
    }

    fn nested<T>(&mut self, f: impl FnOnce(&mut Self) -> T) -> T {
        self.depth += 1;
        let out = f(self);
        self.depth -= 1;
        out
    }
}

/// Gives `remaining` elements (of a sequence, tuple or struct).
struct Elements<'a, 'b> {
    source: &'a mut Hostile<'b>,
    remaining: usize,
}

impl<'de> SeqAccess<'de> for Elements<'_, '_> {
    type Error = Refused;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, Refused> {
        if self.remaining == 0 {
            return Ok(None);
        }
        self.remaining -= 1;
        seed.deserialize(&mut *self.source).map(Some)
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.remaining)
    }
}

impl<'de> MapAccess<'de> for Elements<'_, '_> {
    type Error = Refused;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Refused> {
        if self.remaining == 0 {
            return Ok(None);
        }
        self.remaining -= 1;
        seed.deserialize(&mut *self.source).map(Some)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Refused> {
        seed.deserialize(&mut *self.source)
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.remaining)
    }
}

struct Variant<'a, 'b> {
    source: &'a mut Hostile<'b>,
    index: u32,
}

impl<'de, 'a, 'b> EnumAccess<'de> for Variant<'a, 'b> {
    type Error = Refused;
    type Variant = &'a mut Hostile<'b>;

    fn variant_seed<V: DeserializeSeed<'de>>(
        self,
        seed: V,
    ) -> Result<(V::Value, Self::Variant), Refused> {
        let index: de::value::U32Deserializer<Refused> = self.index.into_deserializer();
        Ok((seed.deserialize(index)?, self.source))
    }
}

impl<'de> VariantAccess<'de> for &mut Hostile<'_> {
    type Error = Refused;

    fn unit_variant(self) -> Result<(), Refused> {
        Ok(())
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value, Refused> {
        seed.deserialize(self)
    }

    fn tuple_variant<V: Visitor<'de>>(self, len: usize, visitor: V) -> Result<V::Value, Refused> {
        self.nested(|source| {
            visitor.visit_seq(Elements {
                source,
                remaining: len,
            })
        })
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Refused> {
        self.tuple_variant(fields.len(), visitor)
    }
}

macro_rules! numbers {
    ($($method:ident => $visit:ident as $ty:ty),* $(,)?) => {
        $(
            fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Refused> {
                let number = self.number();
                visitor.$visit(number as $ty)
            }
        )*
    };
}

impl<'de> de::Deserializer<'de> for &mut Hostile<'_> {
    type Error = Refused;

    fn deserialize_any<V: Visitor<'de>>(self, _visitor: V) -> Result<V::Value, Refused> {
        Err(Refused("a self-describing format is needed".into()))
    }

    numbers! {
        deserialize_u8 => visit_u8 as u8,
        deserialize_u16 => visit_u16 as u16,
        deserialize_u32 => visit_u32 as u32,
        deserialize_u64 => visit_u64 as u64,
        deserialize_u128 => visit_u128 as u128,
        deserialize_i8 => visit_i8 as i8,
        deserialize_i16 => visit_i16 as i16,
        deserialize_i32 => visit_i32 as i32,
        deserialize_i64 => visit_i64 as i64,
        deserialize_i128 => visit_i128 as i128,
    }

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Refused> {
        let bit = self.byte() & 1 == 1;
        visitor.visit_bool(bit)
    }

    fn deserialize_f32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Refused> {
        let bits = self.number() as u32;
        visitor.visit_f32(f32::from_bits(bits))
    }

    fn deserialize_f64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Refused> {
        let bits = self.number();
        visitor.visit_f64(f64::from_bits(bits))
    }

    fn deserialize_char<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Refused> {
        let c = char::from_u32(self.number() as u32).unwrap_or('\u{fffd}');
        visitor.visit_char(c)
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Refused> {
        let s = self.string();
        visitor.visit_string(s)
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Refused> {
        self.deserialize_str(visitor)
    }

    fn deserialize_bytes<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Refused> {
        let bytes = self.bytes();
        visitor.visit_byte_buf(bytes)
    }

    fn deserialize_byte_buf<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Refused> {
        self.deserialize_bytes(visitor)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Refused> {
        if self.depth < DEPTH_MAX && self.byte() & 1 == 1 {
            self.nested(|source| visitor.visit_some(source))
        } else {
            visitor.visit_none()
        }
    }

    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Refused> {
        visitor.visit_unit()
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Refused> {
        visitor.visit_unit()
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Refused> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Refused> {
        let remaining = self.length();
        self.nested(|source| visitor.visit_seq(Elements { source, remaining }))
    }

    fn deserialize_tuple<V: Visitor<'de>>(
        self,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, Refused> {
        self.nested(|source| {
            visitor.visit_seq(Elements {
                source,
                remaining: len,
            })
        })
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, Refused> {
        self.deserialize_tuple(len, visitor)
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Refused> {
        let remaining = self.length();
        self.nested(|source| visitor.visit_map(Elements { source, remaining }))
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Refused> {
        self.deserialize_tuple(fields.len(), visitor)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Refused> {
        let count = u32::try_from(variants.len().max(1)).unwrap_or(u32::MAX);
        let index = u32::from(self.byte()) % count;
        visitor.visit_enum(Variant {
            source: self,
            index,
        })
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Refused> {
        self.deserialize_u32(visitor)
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Refused> {
        visitor.visit_unit()
    }

    fn is_human_readable(&self) -> bool {
        false
    }
}

/// A few cores of one protocol on a perfect in-memory network, driven far
/// enough that one leads and entries are committed, then exposed to hostile
/// input one node at a time. The driver is minimal: writes are taken as
/// durable at once, committed entries are dropped (no state machine), so it
/// suits only tests that look for panics and broken invariants.
pub struct Cluster<C: Core> {
    /// The cores, node `i + 1` at index `i`.
    pub nodes: Vec<C>,
    /// Messages produced and not yet delivered: `(from, to, message)`.
    pub pending: Vec<(NodeId, NodeId, C::Message)>,
}

impl<C: Core> Cluster<C> {
    /// `size` fresh nodes (ids 1..=size, all voters), ticked (at most
    /// `ticks_max` times) and connected until one of them leads, then given
    /// `entries` proposals. Returns the cluster even if no leader emerged
    /// (classic Paxos has none): the hostile input then reaches followers
    /// and candidates.
    pub fn started(
        size: u64,
        entries: usize,
        ticks_max: usize,
        configure: impl Fn(&mut CoreConfig),
    ) -> Cluster<C> {
        let membership = Membership::new(1..=size);
        let nodes = (1..=size)
            .map(|id| {
                let mut config = CoreConfig::new(id, membership.clone());
                configure(&mut config);
                C::restore(config, InitialState::default()).expect("a fresh core restores")
            })
            .collect();
        let mut cluster = Cluster {
            nodes,
            pending: Vec::new(),
        };
        for _ in 0..ticks_max {
            cluster.tick_all();
            cluster.settle(64);
            if cluster.leader().is_some() {
                break;
            }
        }
        for i in 0..entries {
            let proposer = cluster.leader().unwrap_or(0);
            let _ = cluster.nodes[proposer].propose(Bytes::from(format!("entry {i}")));
            cluster.settle(64);
        }
        for _ in 0..5 {
            cluster.tick_all();
            cluster.settle(64);
        }
        cluster
    }

    /// Index of a node that believes it leads, if any.
    pub fn leader(&self) -> Option<usize> {
        self.nodes
            .iter()
            .position(|node| node.status().role == Role::Leader)
    }

    /// Ticks every node once.
    pub fn tick_all(&mut self) {
        for node in &mut self.nodes {
            node.tick();
        }
        self.collect();
    }

    /// Takes every node's output into `pending`.
    pub fn collect(&mut self) {
        for (index, node) in self.nodes.iter_mut().enumerate() {
            let from = index as NodeId + 1;
            while let Some(ready) = node.ready() {
                for (to, message) in ready.messages {
                    self.pending.push((from, to, message));
                }
            }
        }
    }

    /// Delivers pending messages (and what they cause) for up to `rounds`
    /// rounds; messages to ids that are not nodes of the cluster are
    /// dropped.
    pub fn settle(&mut self, rounds: usize) {
        for _ in 0..rounds {
            self.collect();
            if self.pending.is_empty() {
                return;
            }
            for (from, to, message) in std::mem::take(&mut self.pending) {
                let Some(index) = to.checked_sub(1).map(|i| i as usize) else {
                    continue;
                };
                if let Some(node) = self.nodes.get_mut(index) {
                    node.step(from, message);
                }
            }
        }
        self.collect();
    }

    /// Steps node `index` (modulo the size) with a message `from` anyone.
    pub fn inject(&mut self, index: usize, from: NodeId, message: C::Message) {
        let count = self.nodes.len();
        self.nodes[index % count].step(from, message);
        self.collect();
    }
}

/// `PROPTEST_CASES` when set (the long run), else `default` (CI).
pub fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(default)
}

/// The bad-input properties' configuration: [`cases`]`(256)` cases, no
/// failure persistence.
pub fn config() -> ProptestConfig {
    ProptestConfig {
        cases: cases(256),
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// 1 to 11 [`Hit`]s: a target, up to 9 bytes of sender entropy, up to 159
/// bytes of message entropy and a tick count each.
pub fn hits() -> impl Strategy<Value = Vec<Hit>> {
    prop::collection::vec(
        (
            any::<u8>(),
            prop::collection::vec(any::<u8>(), 0..10),
            prop::collection::vec(any::<u8>(), 0..160),
            any::<u8>(),
        ),
        1..12,
    )
}

/// One hostile event of [`attack`]: entropy for a message to `target`
/// (modulo the cluster size) from `from` (entropy for a hostile node id),
/// then `ticks` ticks of every node and a settle of the cluster.
pub type Hit = (u8, Vec<u8>, Vec<u8>, u8);

/// Feeds every hit to `cluster` and calls `check` on every node after each:
/// the message is a hostile value of the protocol's message type (a hit
/// whose entropy the type refuses is skipped); the sender is a hostile id
/// (0, a member, a stranger, `u64::MAX`). Returns how many messages were
/// delivered. Afterwards the cluster runs 80 more ticks (elections, catch
/// up), still checked after each.
pub fn attack<C: Core>(cluster: &mut Cluster<C>, hits: &[Hit], check: impl Fn(&C)) -> usize {
    attack_where(cluster, hits, |_| true, check)
}

/// [`attack`] with the messages `keep` refuses left out (for a known,
/// documented weakness that would otherwise end the test run, such as an
/// allocation the size of a hostile number).
pub fn attack_where<C: Core>(
    cluster: &mut Cluster<C>,
    hits: &[Hit],
    keep: impl Fn(&C::Message) -> bool,
    check: impl Fn(&C),
) -> usize {
    let mut delivered = 0;
    for (target, from, message, ticks) in hits {
        let Some(message) = value::<C::Message>(message).filter(|m| keep(m)) else {
            continue;
        };
        let from = number(from);
        cluster.inject(usize::from(*target), from, message);
        delivered += 1;
        for node in &cluster.nodes {
            check(node);
        }
        for _ in 0..ticks % 4 {
            cluster.tick_all();
        }
        cluster.settle(16);
        for node in &cluster.nodes {
            check(node);
        }
    }
    // Then long enough for elections: a node pushed to an absurd term or
    // index must campaign, vote and replicate from there.
    for _ in 0..80 {
        cluster.tick_all();
        cluster.settle(16);
        for node in &cluster.nodes {
            check(node);
        }
    }
    delivered
}

/// Restores a core of a 3-node cluster (node 1) from `hard_state` bytes as
/// a store would return them, with an empty log; then ticks it. The result
/// is the core's answer: a typed [`RecoverError`](consensus_api::RecoverError)
/// is fine, a panic is not.
pub fn restore_with_hard_state<C: Core>(
    hard_state: &[u8],
) -> Result<C, consensus_api::RecoverError> {
    let config = CoreConfig::new(1, Membership::new([1, 2, 3]));
    let state = InitialState {
        hard_state: Some(Bytes::copy_from_slice(hard_state)),
        ..InitialState::default()
    };
    let mut core = C::restore(config, state)?;
    for _ in 0..40 {
        core.tick();
        while core.ready().is_some() {}
    }
    Ok(core)
}

/// What a store could hand a core on restart, with hostile values: the
/// given hard-state bytes, a hostile snapshot (or none) and hostile entries
/// kept as a store keeps them (increasing indexes, all above the snapshot).
pub fn initial_state(hard_state: Option<Bytes>, entropy: &[u8]) -> InitialState {
    let snapshot: Option<consensus_api::Snapshot> = value(entropy).unwrap_or(None);
    let floor = snapshot.as_ref().map_or(0, |s| s.index);
    let rest = entropy.get(entropy.len() / 2..).unwrap_or(&[]);
    let mut entries: Vec<consensus_api::Entry> = value(rest).unwrap_or_default();
    entries.retain(|entry| entry.index > floor);
    entries.sort_by_key(|entry| entry.index);
    entries.dedup_by_key(|entry| entry.index);
    InitialState {
        hard_state,
        snapshot,
        entries,
    }
}

/// Restores node 1 of a 3-node cluster from `state`, then ticks it; `Err`
/// is the core's typed refusal.
pub fn restore_from<C: Core>(state: InitialState) -> Result<C, consensus_api::RecoverError> {
    let config = CoreConfig::new(1, Membership::new([1, 2, 3]));
    let mut core = C::restore(config, state)?;
    for _ in 0..40 {
        core.tick();
        while core.ready().is_some() {}
    }
    Ok(core)
}
