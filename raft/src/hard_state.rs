//! The durable metadata of a Raft node (Figure 2, "persistent state on all
//! servers": `currentTerm`, `votedFor`; the log is persisted separately).

use consensus_api::{decode_hard_state, encode_postcard, Bytes, NodeId, RecoverError};
use serde::{Deserialize, Serialize};

/// `currentTerm` and `votedFor`, postcard-encoded into
/// [`Ready::hard_state`](consensus_api::Ready::hard_state).
///
/// Both must be durable before any message that depends on them leaves the
/// node: a vote granted and then forgotten in a crash would let the node
/// vote twice in one term (§5.2, §5.6 of the Raft paper).
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HardState {
    /// The latest term this node has seen.
    pub term: u64,
    /// The candidate this node voted for in `term`, if any.
    pub vote: Option<NodeId>,
}

impl HardState {
    /// Encodes for the store.
    pub fn encode(&self) -> Bytes {
        encode_postcard(self)
    }

    /// Decodes what [`HardState::encode`] wrote.
    pub fn decode(bytes: &[u8]) -> Result<HardState, RecoverError> {
        decode_hard_state(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_corruption() {
        let hard_state = HardState {
            term: 7,
            vote: Some(3),
        };
        assert_eq!(HardState::decode(&hard_state.encode()), Ok(hard_state));
        assert!(HardState::decode(&[0xff]).is_err());
    }
}
