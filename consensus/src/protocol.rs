//! Which protocol runs underneath, chosen at run time among the compiled ones.

use std::fmt;
use std::str::FromStr;

use thiserror::Error;

/// A protocol backend compiled into this build (Cargo features `raft`,
/// `multipaxos`, `paxos`, `zab`, or `all`).
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Protocol {
    /// Raft (feature `raft`, on by default).
    #[cfg(feature = "raft")]
    Raft,
    /// Multi-Paxos with a distinguished proposer (feature `multipaxos`).
    #[cfg(feature = "multipaxos")]
    MultiPaxos,
    /// Classic Paxos for every slot (feature `paxos`).
    #[cfg(feature = "paxos")]
    Paxos,
    /// ZooKeeper Atomic Broadcast (feature `zab`).
    #[cfg(feature = "zab")]
    Zab,
}

/// The names of every protocol the toolkit has, compiled in or not.
pub const ALL_PROTOCOL_NAMES: [&str; 4] = ["raft", "multipaxos", "paxos", "zab"];

/// A protocol name that cannot be used in this build.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ProtocolError {
    /// The protocol exists but its Cargo feature is off.
    #[error(
        "protocol `{name}` is not compiled into this build: enable the Cargo feature `{name}` \
         (or `all`) of the `consensus` crate, e.g. `consensus = {{ version = \"*\", features = [\"{name}\"] }}`"
    )]
    NotCompiled {
        /// The protocol asked for.
        name: String,
    },
    /// No protocol has that name.
    #[error("unknown protocol `{name}`: expected one of raft, multipaxos, paxos, zab")]
    Unknown {
        /// The name given.
        name: String,
    },
}

impl Protocol {
    /// Every protocol compiled into this build, in a fixed order.
    pub fn compiled() -> Vec<Protocol> {
        vec![
            #[cfg(feature = "raft")]
            Protocol::Raft,
            #[cfg(feature = "multipaxos")]
            Protocol::MultiPaxos,
            #[cfg(feature = "paxos")]
            Protocol::Paxos,
            #[cfg(feature = "zab")]
            Protocol::Zab,
        ]
    }

    /// The protocol's name as used on the command line, in configs and in
    /// transport handshakes.
    pub fn name(self) -> &'static str {
        match self {
            #[cfg(feature = "raft")]
            Protocol::Raft => "raft",
            #[cfg(feature = "multipaxos")]
            Protocol::MultiPaxos => "multipaxos",
            #[cfg(feature = "paxos")]
            Protocol::Paxos => "paxos",
            #[cfg(feature = "zab")]
            Protocol::Zab => "zab",
        }
    }

    /// The snapshot every node of a new cluster of this protocol stores
    /// before its first start to begin from a backup (state machine state
    /// `data` taken at `index`, on any protocol): see
    /// [`Core::seed_snapshot`](consensus_api::Core::seed_snapshot).
    pub fn seed_snapshot(
        self,
        index: consensus_api::LogIndex,
        membership: consensus_api::Membership,
        data: bytes::Bytes,
    ) -> consensus_api::Snapshot {
        use consensus_api::Core;
        match self {
            #[cfg(feature = "raft")]
            Protocol::Raft => raft::RaftCore::seed_snapshot(index, membership, data),
            #[cfg(feature = "multipaxos")]
            Protocol::MultiPaxos => {
                multipaxos::MultiPaxosCore::seed_snapshot(index, membership, data)
            }
            #[cfg(feature = "paxos")]
            Protocol::Paxos => paxos::PaxosCore::seed_snapshot(index, membership, data),
            #[cfg(feature = "zab")]
            Protocol::Zab => zab::ZabCore::seed_snapshot(index, membership, data),
        }
    }

    /// True for protocols with a distinguished leader (all but classic Paxos).
    pub fn has_leader(self) -> bool {
        self.name() != "paxos"
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Protocol {
    type Err = ProtocolError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let name = text.trim().to_ascii_lowercase();
        let name = match name.as_str() {
            "multi-paxos" | "multi_paxos" => "multipaxos".to_string(),
            _ => name,
        };
        if let Some(protocol) = Protocol::compiled().into_iter().find(|p| p.name() == name) {
            return Ok(protocol);
        }
        if ALL_PROTOCOL_NAMES.contains(&name.as_str()) {
            Err(ProtocolError::NotCompiled { name })
        } else {
            Err(ProtocolError::Unknown {
                name: text.to_string(),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_for_compiled_protocols() {
        for protocol in Protocol::compiled() {
            assert_eq!(protocol.to_string().parse::<Protocol>(), Ok(protocol));
        }
        assert!(matches!(
            "etcd".parse::<Protocol>(),
            Err(ProtocolError::Unknown { .. })
        ));
    }

    #[cfg(not(feature = "zab"))]
    #[test]
    fn a_protocol_that_is_not_compiled_names_its_feature() {
        let error = "zab".parse::<Protocol>().unwrap_err();
        assert!(error.to_string().contains("feature `zab`"), "{error}");
    }
}
