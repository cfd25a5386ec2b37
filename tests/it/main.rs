//! Integration tests, one binary (STYLE 14): leadx in-process on
//! 127.0.0.1:0 with a temporary store and real mock buyers on loopback.
//! One module per area.

mod admin_listen;
mod appliance;
mod auction;
mod buyer_specs;
mod claims;
mod cli;
mod client;
mod config;
mod consent;
mod crash;
mod dashboard;
mod dashboard_browser;
mod diskfull;
mod errors;
mod faults;
mod fuzz;
mod hostile;
mod layering;
mod memory;
mod openapi;
mod ops;
mod overload;
mod post;
mod postbacks;
mod preconnect;
mod privacy;
mod proxies;
mod reliability;
mod reseal;
mod retention;
mod returns;
mod rotation;
mod routing;
mod sandbox;
mod server;
mod spec_wired;
mod store;
mod support;
mod suppressed;
mod tls;
mod xml;
