//! Fuzz target `config`: the check is `leadx::fuzz::config` (replayed by the normal test suite).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| leadx::fuzz::config(data));
