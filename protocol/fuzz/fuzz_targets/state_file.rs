//! `cargo +nightly fuzz run state_file`: see `cvx_protocol::fuzz::state_file`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| cvx_protocol::fuzz::state_file(data));
