//! `cargo +nightly fuzz run signer_reply`: see `cvx_protocol::fuzz::signer_reply`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| cvx_protocol::fuzz::signer_reply(data));
