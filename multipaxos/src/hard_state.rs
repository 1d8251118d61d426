//! The durable metadata of a node, written in `Ready::hard_state`.

use bytes::Bytes;
use consensus_api::{decode_hard_state, encode_postcard, LogIndex, RecoverError};
use serde::{Deserialize, Serialize};

use crate::ballot::Ballot;

/// Format version of the encoding below.
const VERSION: u8 = 1;

/// What an acceptor must not forget across a crash.
///
/// * `promised` — the highest ballot promised ("Paxos Made Simple" §2.2:
///   "an acceptor must remember [...] the highest-numbered prepare request
///   to which it has responded, even if it fails and then restarts"). It is
///   written in the same `Ready` as the Promise / Accepted that depends on
///   it, and the driver persists a `Ready` before sending its messages. It
///   also keeps a restarted proposer from reusing a ballot: a node's own
///   ballot is promised (and so persisted) before its Prepare leaves.
/// * `commit` — the chosen frontier, an optimisation only: a restarted node
///   re-applies its chosen prefix at once instead of re-learning it. It is
///   only ever written together with (or after) the entries it covers.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HardState {
    /// The highest ballot promised.
    pub promised: Ballot,
    /// The chosen frontier when this was written.
    pub commit: LogIndex,
}

#[derive(Serialize, Deserialize)]
struct Encoded {
    version: u8,
    promised: u64,
    commit: LogIndex,
}

impl HardState {
    /// Postcard bytes, with a version tag.
    pub fn encode(&self) -> Bytes {
        let encoded = Encoded {
            version: VERSION,
            promised: self.promised.epoch(),
            commit: self.commit,
        };
        encode_postcard(&encoded)
    }

    /// Decodes what [`HardState::encode`] wrote.
    pub fn decode(bytes: &[u8]) -> Result<HardState, RecoverError> {
        let encoded: Encoded = decode_hard_state(bytes)?;
        if encoded.version != VERSION {
            return Err(RecoverError::CorruptHardState(format!(
                "unknown hard state version {}",
                encoded.version
            )));
        }
        Ok(HardState {
            promised: Ballot::from_epoch(encoded.promised),
            commit: encoded.commit,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_corruption() {
        let state = HardState {
            promised: Ballot::new(4, 2),
            commit: 17,
        };
        assert_eq!(HardState::decode(&state.encode()), Ok(state));
        assert!(HardState::decode(b"").is_err());
        assert!(HardState::decode(&[9, 1, 1]).is_err());
    }
}
