//! The state root, format 2: what a finalized ledger state commits to, built from parts so
//! that a party that cannot execute the ledger (the signer, a light client) can check the
//! peer table against a root with nothing more than the accounts' root.
//!
//! ```text
//! state_root = SHA-256("cvx1/state2" ‖ height (u64 LE) ‖ time (u64 LE)
//!                      ‖ account count (u64 LE) ‖ accounts_root (32) ‖ peers_root (32))
//! peers_root = SHA-256("cvx1/peers" ‖ peer count (u64 LE)
//!                      ‖ canonical PeerRecord encodings, in key order)
//! ```
//!
//! `accounts_root` is the root of the ledger's account tree ([`crate::account_tree`]: a
//! binary Merkle tree over the accounts in address order, kept incrementally by the ledger
//! in cvx-consensus), documented in docs/protocol.md. The peer table
//! has at most 256 entries, so hashing it whole per change is cheap, and its "proof" is
//! the table itself plus the other four parts ([`StateRootParts`]).

use crate::encoding::Canonical;
use crate::hash::{Hash, hash_parts};
use crate::ledger::PeerRecord;
use crate::primitives::Timestamp;

/// Domain tag of the state root.
pub const STATE_ROOT_TAG: &[u8] = b"cvx1/state2";
/// Domain tag of the peer table's root.
pub const PEERS_ROOT_TAG: &[u8] = b"cvx1/peers";

/// The root of a peer table. `peers` must be in key order (as the ledger keeps them);
/// [`peers_root`] does not sort, so a table in another order gives another root.
#[must_use]
pub fn peers_root(peers: &[PeerRecord]) -> Hash {
    let count = (peers.len() as u64).to_le_bytes();
    let encoded: Vec<Vec<u8>> = peers.iter().map(Canonical::encode).collect();
    let mut parts: Vec<&[u8]> = Vec::with_capacity(encoded.len() + 2);
    parts.push(PEERS_ROOT_TAG);
    parts.push(&count);
    parts.extend(encoded.iter().map(Vec::as_slice));
    hash_parts(&parts)
}

/// The parts a state root is composed of.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StateRootParts {
    /// Blocks applied (the finalized position the state is at).
    pub height: u64,
    /// The ledger's time: the newest applied block's timestamp.
    pub time: Timestamp,
    /// Number of accounts.
    pub account_count: u64,
    /// The root of the account tree.
    pub accounts_root: Hash,
    /// [`peers_root`] of the peer table.
    pub peers_root: Hash,
}

impl StateRootParts {
    /// The state root these parts compose.
    #[must_use]
    pub fn root(&self) -> Hash {
        hash_parts(&[
            STATE_ROOT_TAG,
            &self.height.to_le_bytes(),
            &self.time.0.to_le_bytes(),
            &self.account_count.to_le_bytes(),
            &self.accounts_root.0,
            &self.peers_root.0,
        ])
    }

    /// Whether `peers` (in key order) is the peer table of the state whose root is
    /// `root`, given these parts.
    #[must_use]
    pub fn proves_peers(&self, peers: &[PeerRecord], root: &Hash) -> bool {
        peers_root(peers) == self.peers_root && self.root() == *root
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::primitives::{Address, Amount, PublicKey};

    fn peer(k: u8, stake: u64) -> PeerRecord {
        // A valid point: the Ed25519 base point's encoding.
        let mut key = [0x66u8; 32];
        key[0] = 0x58;
        PeerRecord {
            key: PublicKey::from_bytes(&key).expect("base point"),
            controller: Address(u64::from(k)),
            stake: Amount::new(stake).expect("small"),
            host: None,
            last_block_time: Timestamp(0),
        }
    }

    #[test]
    fn a_changed_peer_or_part_changes_the_root_and_fails_the_proof() {
        let table = vec![peer(1, 10)];
        let parts = StateRootParts {
            height: 7,
            time: Timestamp(1000),
            account_count: 3,
            accounts_root: Hash([9; 32]),
            peers_root: peers_root(&table),
        };
        let root = parts.root();
        assert!(parts.proves_peers(&table, &root));
        assert!(!parts.proves_peers(&[peer(1, 11)], &root));
        assert!(!parts.proves_peers(&[], &root));
        let mut other = parts;
        other.height = 8;
        assert_ne!(other.root(), root);
        assert!(!other.proves_peers(&table, &root));
        other = parts;
        other.accounts_root = Hash([8; 32]);
        assert!(!other.proves_peers(&table, &root));
    }
}
