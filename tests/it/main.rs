//! Integration tests, one binary (STYLE 14): leadx in-process on
//! 127.0.0.1:0 with a temporary store and real mock buyers on loopback.
//! One module per area.

mod appliance;
mod auction;
mod buyer_specs;
mod cli;
mod client;
mod config;
mod consent;
mod crash;
mod diskfull;
mod errors;
mod faults;
mod fuzz;
mod hostile;
mod layering;
mod memory;
mod ops;
mod overload;
mod post;
mod privacy;
mod proxies;
mod reliability;
mod routing;
mod server;
mod spec_wired;
mod store;
mod support;
mod xml;
