//! `cargo +nightly fuzz run certificate`: see `cvx_protocol::fuzz::certificate`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| cvx_protocol::fuzz::certificate(data));
