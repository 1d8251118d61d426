//! # bench: the four protocols, measured through the same code
//!
//! (being written) Results model and report rendering.
#![deny(missing_docs)]

pub mod floor;
pub mod report;
pub mod results;
