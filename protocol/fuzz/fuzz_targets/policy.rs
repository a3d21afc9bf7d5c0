//! `cargo +nightly fuzz run policy`: see `cvx_protocol::fuzz::policy`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| cvx_protocol::fuzz::policy(data));
