//! `cargo +nightly fuzz run audit_log`: see `cvx_protocol::fuzz::audit_log`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| cvx_protocol::fuzz::audit_log(data));
