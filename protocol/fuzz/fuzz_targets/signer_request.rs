//! `cargo +nightly fuzz run signer_request`: see `cvx_protocol::fuzz::signer_request`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| cvx_protocol::fuzz::signer_request(data));
