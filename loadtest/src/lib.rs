//! leadx-loadtest: a buyer simulator, an open-loop traffic driver, an
//! orchestrator that runs a real `leadx serve` against both, and the report.
//!
//! It speaks only the external contract (publisher API §4, buyer protocol §5)
//! and does not link the `leadx` crate, so it measures what a publisher and a
//! buyer would see, not what leadx believes about itself.

#![deny(unsafe_code)]

pub mod bench;
pub mod buyers;
pub mod cli;
pub mod driver;
pub mod error;
pub mod fake_leadx;
pub mod http;
pub mod lead;
pub mod limits;
pub mod overload;
pub mod procstat;
pub mod report;
pub mod rng;
pub mod rt;
pub mod schedule;
pub mod soak;
pub mod stats;
pub mod target;

pub use error::Error;
