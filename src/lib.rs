//! leadx — a real-time ping-post lead exchange.
//!
//! The library holds everything testable; `main.rs` only parses the command
//! line and hands over. See ARCHITECTURE.md for the life of a lead and the
//! code map.
#![deny(unsafe_code)]

pub mod api;
pub mod auction;
pub mod buyer;
pub mod clock;
pub mod config;
pub mod daemon;
pub mod demo;
pub mod exchange;
#[doc(hidden)]
pub mod fuzz;
pub mod http;
pub mod ids;
pub mod json;
pub mod lead;
pub mod limits;
pub mod logging;
pub mod metrics;
pub mod money;
pub mod notify;
pub mod privacy;
pub mod records;
pub mod routing;
pub mod rt;
pub mod sim;
pub mod store;
pub mod suppress;
pub mod sync;
pub mod usps;
pub mod watchdog;
pub mod wire;
pub mod xml;
