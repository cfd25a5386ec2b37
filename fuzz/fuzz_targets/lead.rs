//! Fuzz target `lead`: the check is `leadx::fuzz::lead` (replayed by the normal test suite).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| leadx::fuzz::lead(data));
