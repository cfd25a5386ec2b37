//! Fuzz target `chunked`: the check is `leadx::fuzz::chunked` (replayed by the normal test suite).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| leadx::fuzz::chunked(data));
