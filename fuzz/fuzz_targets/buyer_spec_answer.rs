//! Fuzz target `buyer_spec_answer`: the check is `leadx::fuzz::buyer_spec_answer` (replayed by the normal test suite).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| leadx::fuzz::buyer_spec_answer(data));
