//! The library half of the `consensus-sim` binary: which protocols it
//! links ([`protocols`]), the named failure scenarios ([`scenario`]) and
//! their text and HTML renderings ([`render`]).
//!
//! The binary (`src/main.rs`) is a thin command line over these; the tests
//! call them directly.
#![deny(missing_docs)]

pub mod protocols;
pub mod render;
pub mod scenario;
pub mod testing_cores;
