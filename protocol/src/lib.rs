//! cvx-protocol: the formats every cvx process speaks, and the signing policy.
//!
//! * [`encoding`] — the canonical postcard encoding, caps, strict decoding;
//! * [`hash`] — SHA-256, and why; the block hash chain;
//! * [`primitives`] — validated newtypes (keys, amounts, addresses, ...);
//! * [`ledger`] — accounts, peers, transactions, genesis, results;
//! * [`consensus`] — blocks, orders, beliefs, challenges (CPoS, as in Convex);
//! * [`state_root`] — the state root (format 2) and the peer-table proof against it;
//! * [`account_tree`] — its `accounts_root`: an incremental binary Merkle tree over accounts;
//! * [`cow_vec`] — copy-on-write chunked vectors, so ledger snapshots are cheap;
//! * [`sign`] — sign-bytes and strict Ed25519 verification;
//! * [`policy`] — the pure signing policy that cvx-signer enforces;
//! * [`certificate`] — finality/lock certificates, the trusted stake table, catch-up and
//!   lock release (pure);
//! * [`codes`] — stable result codes;
//! * [`config`] — the one configuration-error type the programs share;
//! * [`fuzz`] — fuzz targets for every kind of untrusted input (corpora replay as tests).
//!
//! No I/O, no unsafe, no async: every function here is a pure computation, so the
//! signer, the peer and the vault can share it without sharing privileges.
//! docs/protocol.md describes every byte.

#![forbid(unsafe_code)]

pub mod account_tree;
pub mod certificate;
pub mod codes;
pub mod cofactored;
pub mod config;
pub mod consensus;
pub mod cow_vec;
pub mod encoding;
pub mod fuzz;
pub mod hash;
pub mod keyfile;
pub mod ledger;
pub mod peer_wire;
pub mod policy;
pub mod primitives;
pub mod sign;
pub mod signer_wire;
pub mod state_root;
pub mod txfile;
pub mod watermark_file;

pub use codes::ErrorCode;
pub use encoding::{BoundedString, BoundedVec, Canonical, DecodeError};
pub use hash::{Hash, hash};
pub use primitives::{
    Address, Amount, HostAddr, NetworkId, PublicKey, Signature, Timestamp, Token,
};
pub use sign::{SignBytes, SignKind, Signable};

/// Version of the formats in this crate. Bumped on any change to an encoding; files and
/// handshakes carry it.
pub const FORMAT_VERSION: u16 = 1;
