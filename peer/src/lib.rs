//! cvx-peer: the peer's consensus core — the sans-I/O CPoS state machine
//! ([`consensus`]), ledger execution ([`ledger`]) and the deterministic fault
//! simulation harness ([`sim`]). Networking, the store and the real signer are wired in
//! by the networked peer; this crate verifies signatures but never holds a private key.

#![forbid(unsafe_code)]

pub mod consensus;
pub mod ledger;
pub mod sim;

// The networked peer (issue 6).
pub mod api;
pub mod clock;
pub mod config;
pub mod conn;
pub mod devnet;
pub mod error;
pub mod exit;
pub mod net;
pub mod node;
pub mod persist;
pub mod sandbox;
pub mod signer_client;
