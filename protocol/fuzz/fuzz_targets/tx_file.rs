//! `cargo +nightly fuzz run tx_file`: see `cvx_protocol::fuzz::tx_file`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| cvx_protocol::fuzz::tx_file(data));
