//! cvx-signer: the key holder. One process, one key, one Unix socket, nothing else.
//!
//! Start-up (`run`), in order: read the config and the key (age-decrypted straight into
//! locked memory, see [`keys`]); open and check the state file and the audit log
//! ([`state`], [`audit`]); take the listening socket ([`socket`]); enter the sandbox
//! ([`sandbox`]: not dumpable, limits, stray fds closed, Landlock to nothing, seccomp
//! kill-process allowlist); serve ([`serve`]): every connection checked with
//! SO_PEERCRED, frames capped, the policy decides, the new watermark is made durable
//! before the signature leaves (group commit), every decision goes to the hash-chained
//! audit log.
//!
//! Blocking and single-threaded: no async runtime, no network crate (a test over
//! `cargo metadata` enforces it). All logic is here; `main.rs` only parses arguments,
//! prints and maps errors to the documented [`exit::Exit`] codes.

#![forbid(unsafe_code)]

pub mod audit;
pub mod breach;
pub mod client;
pub mod config;
pub mod exit;
pub mod keys;
pub mod migrate;
pub mod sandbox;
pub mod serve;
mod slots;
pub mod socket;
pub mod state;
pub mod trust;

use std::time::{SystemTime, UNIX_EPOCH};

use cvx_protocol::Timestamp;

/// The signer's clock, in milliseconds since the Unix epoch.
#[must_use]
pub fn now() -> Timestamp {
    let ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    Timestamp(ms)
}

/// The uid this process runs as.
#[must_use]
pub fn euid() -> u32 {
    nix::unistd::geteuid().as_raw()
}
