//! HTTP API: routing and one file per endpoint.

pub mod error;
