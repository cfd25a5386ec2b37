//! Fuzz target `http_request`: the check is `leadx::fuzz::http_request` (replayed by the normal test suite).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| leadx::fuzz::http_request(data));
