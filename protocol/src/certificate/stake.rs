//! Stake tables: the voting peers and their stake, the table's root, the 2/3 rule, and
//! the table a signer trusts.

use serde::{Deserialize, Serialize};

use crate::encoding::{BoundedVec, Canonical, DecodeError, ensure};
use crate::hash::{Hash, hash_parts};
use crate::ledger::{MAX_PEERS, PeerRecord};
use crate::primitives::{Amount, PublicKey, Timestamp};

/// Domain tag of [`StakeTable::root`].
pub const STAKE_ROOT_TAG: &[u8] = b"cvx1/stake";
/// Default trust period: certificates are checked against a trusted table at most this
/// long after it was last confirmed (the weak-subjectivity bound, docs/consensus.md §7.5).
pub const DEFAULT_TRUST_PERIOD_MS: u64 = 14 * 24 * 3600 * 1000;

/// One voter of a stake table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StakeEntry {
    /// The peer's key.
    pub key: PublicKey,
    /// Its stake without decay.
    pub stake: u64,
}

/// The peers whose stake without decay reaches `min_stake`, in strictly increasing key
/// order, each with a non-zero stake.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StakeTable {
    /// The entries.
    pub entries: BoundedVec<StakeEntry, MAX_PEERS>,
}

impl Canonical for StakeTable {
    const NAME: &'static str = "StakeTable";
    const MAX_LEN: usize = 3 + MAX_PEERS * (32 + 10);
    fn validate(&self) -> Result<(), DecodeError> {
        ensure(
            Self::NAME,
            self.entries.windows(2).all(|w| w[0].key < w[1].key),
            "entries are not sorted by strictly increasing key",
        )?;
        ensure(
            Self::NAME,
            self.entries.iter().all(|e| e.stake > 0),
            "an entry has zero stake",
        )
    }
}

impl StakeTable {
    /// The table of a ledger's peer table (in key order): the peers with `stake >=
    /// min_stake`. Records out of key order are sorted.
    #[must_use]
    pub fn from_peers(peers: &[PeerRecord], min_stake: Amount) -> Self {
        let mut entries: Vec<StakeEntry> = peers
            .iter()
            .filter(|p| p.stake >= min_stake && !p.stake.is_zero())
            .map(|p| StakeEntry {
                key: p.key,
                stake: p.stake.get(),
            })
            .collect();
        entries.sort_by_key(|e| e.key);
        entries.dedup_by(|a, b| a.key == b.key);
        // At most MAX_PEERS records come in (the ledger's cap); truncation cannot happen
        // for a ledger's table, and a longer input is not a ledger's.
        entries.truncate(MAX_PEERS);
        Self {
            entries: BoundedVec::try_from_vec(entries).unwrap_or_else(|_| BoundedVec::new()),
        }
    }

    /// The table of the state whose root is `root`, from its peer table proven against
    /// that root by the other parts (`StateRootParts::proves_peers`); `None` when the
    /// proof fails. This is how a peer that fetched a state checks the stake table it
    /// would present with a certificate (docs/consensus.md §7.3).
    #[must_use]
    pub fn proven(
        parts: &crate::state_root::StateRootParts,
        peers: &[PeerRecord],
        root: &Hash,
        min_stake: Amount,
    ) -> Option<Self> {
        parts
            .proves_peers(peers, root)
            .then(|| Self::from_peers(peers, min_stake))
    }

    /// `SHA-256("cvx1/stake" ‖ count (u64 LE) ‖ (key ‖ stake (u64 LE))*)`.
    #[must_use]
    pub fn root(&self) -> Hash {
        let count = (self.entries.len() as u64).to_le_bytes();
        let stakes: Vec<[u8; 8]> = self.entries.iter().map(|e| e.stake.to_le_bytes()).collect();
        let mut parts: Vec<&[u8]> = Vec::with_capacity(2 + 2 * stakes.len());
        parts.push(STAKE_ROOT_TAG);
        parts.push(&count);
        for (e, s) in self.entries.iter().zip(&stakes) {
            parts.push(e.key.as_bytes());
            parts.push(s);
        }
        hash_parts(&parts)
    }

    /// The total stake.
    #[must_use]
    pub fn total(&self) -> u128 {
        self.entries.iter().map(|e| u128::from(e.stake)).sum()
    }

    /// The stake of `key`, if it is in the table.
    #[must_use]
    pub fn stake_of(&self, key: &PublicKey) -> Option<u64> {
        self.entries
            .binary_search_by(|e| e.key.cmp(key))
            .ok()
            .and_then(|i| self.entries.get(i))
            .map(|e| e.stake)
    }
}

/// `weight` is strictly more than 2/3 of `total`.
#[must_use]
pub const fn supermajority(weight: u128, total: u128) -> bool {
    weight.saturating_mul(3) > total.saturating_mul(2)
}

/// The stake table a signer trusts (docs/consensus.md §7.5).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrustedTable {
    /// The position the table is known at (0 for the genesis table).
    pub position: u64,
    /// The signer's clock when a certificate last confirmed it.
    pub confirmed_at: Timestamp,
    /// The table.
    pub table: StakeTable,
}

impl Canonical for TrustedTable {
    const NAME: &'static str = "TrustedTable";
    const MAX_LEN: usize = 10 + 10 + StakeTable::MAX_LEN;
    fn validate(&self) -> Result<(), DecodeError> {
        self.table.validate()
    }
}
