//! # consensus-sim: a deterministic simulator for any consensus core
//!
//! (being written: see the module docs below as they land)
#![deny(missing_docs)]

pub mod history;
pub mod linearizability;
