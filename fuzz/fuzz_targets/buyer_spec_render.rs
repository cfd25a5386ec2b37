//! Fuzz target `buyer_spec_render`: the check is `leadx::fuzz::buyer_spec_render` (replayed by the normal test suite).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| leadx::fuzz::buyer_spec_render(data));
