//! `cargo +nightly fuzz run key_plaintext`: see `cvx_protocol::fuzz::key_plaintext`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| cvx_protocol::fuzz::key_plaintext(data));
