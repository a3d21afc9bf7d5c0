//! `cargo +nightly fuzz run genesis`: see `cvx_protocol::fuzz::genesis`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| cvx_protocol::fuzz::genesis(data));
