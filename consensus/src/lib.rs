//! # consensus: one reliable decision-maker, four ways
//!
//! Add one dependency, pick a protocol with a Cargo feature, and write your
//! application once against [`ReplicatedLog`] + [`StateMachine`]:
//!
//! ```toml
//! [dependencies]
//! consensus = { path = "…/consensus" }                                  # Raft (default)
//! consensus = { path = "…/consensus", features = ["zab"] }              # Raft and ZAB
//! consensus = { path = "…/consensus", default-features = false, features = ["paxos"] }
//! consensus = { path = "…/consensus", features = ["all"] }              # all four
//! ```
//!
//! Only the selected protocol crates are compiled. [`Protocol`] lists the
//! compiled ones and chooses among them at run time; asking for one that is
//! not compiled is an error naming the feature to enable.
//!
//! Every node runs the same runtime (`consensus-runtime`), the same durable
//! storage (`consensus-storage`: a write-ahead log with one fdatasync per
//! batch) and the same QUIC transport with mutual TLS (`transport-quic`), so
//! swapping the backend changes nothing else.
//!
//! ## Example: a replicated counter
//!
//! A one-node cluster with in-memory storage, so the example runs anywhere;
//! a real cluster adds `.peer(id, addr)` for each other node and
//! `.data_dir(...)`.
//!
//! ```
//! use consensus::{Bytes, LogIndex, NodeBuilder, Protocol, ReadConsistency, RecoverError,
//!                 ReplicatedLog, StateMachine, Storage};
//!
//! /// The application: deterministic, applied in log order on every node.
//! #[derive(Default)]
//! struct Counter(u64);
//!
//! impl StateMachine for Counter {
//!     fn apply(&mut self, _index: LogIndex, command: &Bytes) -> Bytes {
//!         self.0 += u64::from(command[0]);
//!         Bytes::from(self.0.to_string())
//!     }
//!     fn query(&self, _query: &Bytes) -> Bytes {
//!         Bytes::from(self.0.to_string())
//!     }
//!     fn snapshot(&self) -> Bytes {
//!         Bytes::from(self.0.to_le_bytes().to_vec())
//!     }
//!     fn restore(&mut self, _index: LogIndex, data: &Bytes) -> Result<(), RecoverError> {
//!         let raw = data[..].try_into().map_err(|_| RecoverError::CorruptSnapshot("counter".into()))?;
//!         self.0 = u64::from_le_bytes(raw);
//!         Ok(())
//!     }
//! }
//!
//! # #[tokio::main(flavor = "multi_thread", worker_threads = 2)]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // Development certificates (production: your own CA and PEM files).
//! let cluster = consensus::ClusterId::new("example")?;
//! let (ca, nodes) = consensus::certs::generate_cluster(&cluster, [1])?;
//!
//! let protocol: Protocol = "raft".parse()?;   // or "multipaxos", "paxos", "zab" if compiled
//! let node = NodeBuilder::new(protocol, "example", 1)
//!     .storage(Storage::Memory)
//!     .tls(nodes[0].tls(&ca))
//!     .start(Counter::default())?;
//!
//! // Written once against ReplicatedLog: runs on every backend.
//! let mut applied = None;
//! for _ in 0..100 {
//!     match node.append(Bytes::from_static(&[5])).await {
//!         Ok(result) => { applied = Some(result); break; }
//!         // Until the node has elected itself it answers NotLeader / Unavailable.
//!         Err(_) => tokio::time::sleep(std::time::Duration::from_millis(50)).await,
//!     }
//! }
//! assert_eq!(applied.expect("committed").response, Bytes::from("5"));
//! let value = node.read(Bytes::new(), ReadConsistency::Linearizable).await?;
//! assert_eq!(value, Bytes::from("5"));
//! node.shutdown().await?;
//! # Ok(())
//! # }
//! ```
#![deny(missing_docs)]

mod node;
mod protocol;
mod tuning;

pub use consensus_api::*;
pub use consensus_runtime::{LatencySummary, RuntimeConfig, RuntimeMetrics};
pub use node::{BuildError, ConsensusNode, NodeBuilder, Storage};
pub use protocol::{Protocol, ProtocolError, ALL_PROTOCOL_NAMES};
pub use transport_quic::{certs, ClusterId, FaultController, Limits, TlsMaterial, TransportStats};
pub use tuning::Tuning;
