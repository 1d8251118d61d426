//! # consensus-storage
//!
//! Durable storage for consensus nodes behind the
//! [`LogStore`](consensus_api::LogStore) trait:
//!
//! * [`MemStore`]: in memory, with an explicit fsync boundary, for the
//!   simulator and fast tests.
//!
//! [`LogState`] holds the logical content of a store and the semantics of a
//! write batch, shared by every store so they behave identically.
#![deny(missing_docs)]

mod mem;
mod state;

pub use mem::{MemFault, MemStore};
pub use state::LogState;
