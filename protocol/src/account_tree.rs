//! The accounts' Merkle root (`accounts_root` of the state root, format 2), kept in memory
//! and updated per touched account: O(changes × log n) per block instead of re-hashing the
//! ledger.
//!
//! Byte-exact definition (docs/protocol.md, "Accounts root"):
//!
//! ```text
//! leaf(i)    = SHA-256("cvx1/account" ‖ canonical Account encoding of address i)
//! level 0    = leaf(0), leaf(1), …, leaf(n-1)          (address order)
//! level k+1  = for j in 0..ceil(len_k / 2):
//!                node(level_k[2j], level_k[2j+1])       when 2j+1 < len_k
//!                level_k[2j]                            otherwise (an odd last entry is
//!                                                        carried up unchanged)
//! node(l, r) = SHA-256("cvx1/accounts/node" ‖ l ‖ r)
//! root       = the single entry of the first level of length 1;
//!              SHA-256("cvx1/accounts/empty") when there are no accounts
//! ```
//!
//! Leaves and inner nodes carry different domain tags, so no inner node can pass for a
//! leaf. The account count is a separate part of the state root, so trees of different
//! sizes never share a root by construction of the state root either.

use crate::cow_vec::CowVec;
use crate::encoding::Canonical;
use crate::hash::{Hash, hash_parts};
use crate::ledger::Account;

/// Domain tag of an account leaf.
pub const ACCOUNT_LEAF_TAG: &[u8] = b"cvx1/account";
/// Domain tag of an inner node.
pub const ACCOUNT_NODE_TAG: &[u8] = b"cvx1/accounts/node";
/// Domain tag of the empty tree's root.
pub const ACCOUNTS_EMPTY_TAG: &[u8] = b"cvx1/accounts/empty";

/// The leaf hash of one account.
#[must_use]
pub fn account_leaf(a: &Account) -> Hash {
    hash_parts(&[ACCOUNT_LEAF_TAG, &a.encode()])
}

fn node(l: &Hash, r: &Hash) -> Hash {
    hash_parts(&[ACCOUNT_NODE_TAG, &l.0, &r.0])
}

/// The accounts root computed from scratch (O(n)); [`AccountTree`] keeps the same value
/// incrementally.
#[must_use]
pub fn accounts_root(accounts: &[Account]) -> Hash {
    AccountTree::build(accounts).root()
}

/// Every level of the account tree (level 0 = the leaves). About 64 bytes per account;
/// copy-on-write ([`CowVec`]), so a clone is cheap.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct AccountTree {
    levels: Vec<CowVec<Hash>>,
}

impl std::fmt::Debug for AccountTree {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccountTree")
            .field("leaves", &self.len())
            .field("root", &self.root())
            .finish()
    }
}

impl AccountTree {
    /// The tree over `accounts` (address order), built level by level.
    #[must_use]
    pub fn build<'a>(accounts: impl IntoIterator<Item = &'a Account>) -> Self {
        let mut levels = vec![accounts.into_iter().map(account_leaf).collect::<Vec<_>>()];
        while let Some(top) = levels.last()
            && top.len() > 1
        {
            let next = top
                .chunks(2)
                .map(|c| match c {
                    [l, r] => node(l, r),
                    [one] => *one,
                    _ => Hash::ZERO, // chunks(2) yields one or two entries
                })
                .collect();
            levels.push(next);
        }
        Self {
            levels: levels.into_iter().map(CowVec::from_vec).collect(),
        }
    }

    /// Number of leaves.
    #[must_use]
    pub fn len(&self) -> usize {
        self.levels.first().map_or(0, CowVec::len)
    }

    /// Whether the tree has no leaves.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The root (see the module documentation).
    #[must_use]
    pub fn root(&self) -> Hash {
        match self.levels.last() {
            Some(top) if top.len() == 1 => top[0],
            _ => hash_parts(&[ACCOUNTS_EMPTY_TAG]),
        }
    }

    /// Set leaf `i` to `a`: `i < len` replaces, `i == len` appends (accounts are only ever
    /// appended). Re-hashes the path to the root only. An `i > len` is ignored (the ledger
    /// never skips an address).
    pub fn set(&mut self, i: usize, a: &Account) {
        let leaf = account_leaf(a);
        if self.levels.is_empty() {
            self.levels.push(CowVec::default());
        }
        let leaves = &mut self.levels[0];
        match i.cmp(&leaves.len()) {
            std::cmp::Ordering::Less => {
                if let Some(slot) = leaves.get_mut(i) {
                    *slot = leaf;
                }
            }
            std::cmp::Ordering::Equal => leaves.push(leaf),
            std::cmp::Ordering::Greater => return,
        }
        let mut idx = i;
        let mut k = 0;
        while self.levels[k].len() > 1 {
            let p = idx / 2;
            let cur = &self.levels[k];
            let h = match (cur.get(2 * p), cur.get(2 * p + 1)) {
                (Some(l), Some(r)) => node(l, r),
                (Some(l), None) => *l,
                _ => return, // unreachable: p ≤ (len - 1) / 2
            };
            if self.levels.len() == k + 1 {
                self.levels.push(CowVec::default());
            }
            let up = &mut self.levels[k + 1];
            if p == up.len() {
                up.push(h);
            } else if let Some(slot) = up.get_mut(p) {
                *slot = h;
            }
            idx = p;
            k += 1;
        }
        self.levels.truncate(k + 1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::primitives::{Amount, PublicKey};

    fn acct(b: u64) -> Account {
        let mut key = [0x66u8; 32];
        key[0] = 0x58;
        Account {
            key: PublicKey::from_bytes(&key).expect("base point"),
            balance: Amount::new(b).expect("small"),
            sequence: b,
        }
    }

    #[test]
    fn appends_and_updates_match_a_rebuild_at_every_size() {
        let mut accounts = Vec::new();
        let mut t = AccountTree::default();
        assert_eq!(t.root(), accounts_root(&accounts));
        for n in 0..70u64 {
            accounts.push(acct(n));
            t.set(accounts.len() - 1, &accounts[accounts.len() - 1]);
            assert_eq!(t.root(), accounts_root(&accounts), "append {n}");
            let i = (usize::try_from(n).unwrap() * 7) % accounts.len();
            accounts[i] = acct(n + 1000);
            t.set(i, &accounts[i]);
            assert_eq!(t, AccountTree::build(&accounts), "update {i} at {n}");
        }
    }

    #[test]
    fn small_trees_have_the_documented_shape() {
        let (a, b, c) = (acct(1), acct(2), acct(3));
        assert_eq!(accounts_root(&[]), hash_parts(&[ACCOUNTS_EMPTY_TAG]));
        assert_eq!(accounts_root(std::slice::from_ref(&a)), account_leaf(&a));
        let ab = node(&account_leaf(&a), &account_leaf(&b));
        assert_eq!(accounts_root(&[a.clone(), b.clone()]), ab);
        assert_eq!(
            accounts_root(&[a, b, c.clone()]),
            node(&ab, &account_leaf(&c))
        );
    }
}
