//! # bench: the four protocols, measured through the same code
//!
//! Every protocol runs in the same runtime (`consensus-runtime`), over the
//! same QUIC transport, on the same storage, with the same
//! [`settings::Settings`] and the same closed-loop workload, so the
//! differences in the results are the protocols' own.
//!
//! * [`floor`]: the machine's physical floor (fdatasync, QUIC round trip);
//! * [`cluster`]: in-process clusters of any protocol;
//! * [`workload`]: closed-loop clients with HDR latency histograms;
//! * [`failover`]: leader stop → next commit, repeated;
//! * [`service_failover`]: `kill -9` / `SIGSTOP` of a key-value service
//!   leader process, measured as the client's longest write gap;
//! * [`compare`]: the whole comparison with a progress bar;
//! * [`results`] and [`report`]: `results.json`, the text table and
//!   `report.html` with SVG charts.
#![deny(missing_docs)]

pub mod cluster;
pub mod compare;
pub mod failover;
pub mod floor;
pub mod report;
pub mod results;
pub mod service_failover;
pub mod settings;
pub mod workload;
