//! Fuzz target `client_response`: the check is `leadx::fuzz::client_response` (replayed by the normal test suite).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| leadx::fuzz::client_response(data));
