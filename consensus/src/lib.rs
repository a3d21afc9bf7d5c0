//! cvx-consensus: the peer's consensus core, pure and sans-I/O.
//!
//! - the CPoS state machine ([`Peer`]: events in, actions out; crate root), with the
//!   stake-weighted [`merge`] of orders and the [`stake`] thresholds;
//! - ledger execution ([`ledger`]): the finalized state and how a finalized block changes it;
//!   its accounts' incremental Merkle root (`cvx_protocol::account_tree`);
//! - the seeded fault simulation ([`sim`]) of a whole network of these machines.
//!
//! Time and randomness come in as values (the `now` of every event, the seed of a
//! simulation): this crate reads no clock, opens no file or socket and draws no random
//! number. It verifies signatures but never holds a private key: signing is an
//! [`Action::Sign`] that the host (cvx-peer, or the simulation's signer model) answers.
//! `tests/src/deps.rs` keeps tokio, mio, socket2, nix, cvx-etch and cvx-sandbox out of its
//! dependency closure, and a source scan (`tests/tests/deps.rs`) keeps `std::fs`, `std::net`
//! and the clocks out of its sources.

#![forbid(unsafe_code)]

pub mod ledger;
pub mod merge;
pub mod sim;
pub mod stake;
pub mod verified;

mod ids;
mod machine;

pub use machine::*;
