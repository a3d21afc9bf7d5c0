//! `cargo +nightly fuzz run peer_message`: see `cvx_protocol::fuzz::peer_message`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| cvx_protocol::fuzz::peer_message(data));
