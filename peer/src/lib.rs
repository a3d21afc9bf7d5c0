//! cvx-peer: the peer daemon. It runs the consensus machine of cvx-consensus over the
//! network ([`node`], [`net`], [`conn`]), keeps its state in the cvx-etch store
//! ([`persist`]), asks its signer for every signature through one session
//! ([`signer_session`]), serves the HTTP API ([`api`]) and enters its own sandbox
//! ([`sandbox`]); the binary adds the client
//! commands (submit, query, status, halt, gc). It verifies signatures but never holds a
//! private key.

#![forbid(unsafe_code)]

pub mod api;
pub mod clock;
pub mod config;
pub mod conn;
pub mod error;
pub mod exit;
pub mod net;
pub mod node;
pub mod persist;
pub mod sandbox;
pub mod signer_session;
#[cfg(test)]
mod test_params;
