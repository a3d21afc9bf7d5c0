//! The finalized ledger as a cvx-etch Merkle state tree: its keys, writing only what
//! changed, and reading it back.

use cvx_etch::Store;
use cvx_etch::merkle::{self, Key, StateTx};
use cvx_protocol::cow_vec::{CHUNK, CowVec};
use cvx_protocol::hash::hash_parts;
use cvx_protocol::ledger::{Account, PeerRecord};
use cvx_protocol::{Canonical, PublicKey, Timestamp};

use cvx_consensus::ledger::State;

/// Domain tag of account keys in the state tree.
pub const ACCOUNT_KEY_TAG: &[u8] = b"cvx1/state/account";
/// Domain tag of peer keys in the state tree.
pub const PEER_KEY_TAG: &[u8] = b"cvx1/state/peer";
/// Domain tag of the one meta key in the state tree.
pub const META_KEY_TAG: &[u8] = b"cvx1/state/meta";
/// Length of the meta value: height, time, account count (u64 little-endian each).
const META_LEN: usize = 24;

/// State-tree key of the account at `address`: SHA-256(`"cvx1/state/account"` ‖ address
/// u64 LE).
#[must_use]
pub fn account_key(address: u64) -> Key {
    hash_parts(&[ACCOUNT_KEY_TAG, &address.to_le_bytes()]).0
}

/// State-tree key of the peer `k`: SHA-256(`"cvx1/state/peer"` ‖ key).
#[must_use]
pub fn peer_key(k: &PublicKey) -> Key {
    hash_parts(&[PEER_KEY_TAG, k.as_bytes()]).0
}

/// State-tree key of the meta entry: SHA-256(`"cvx1/state/meta"`).
#[must_use]
pub fn meta_key() -> Key {
    hash_parts(&[META_KEY_TAG]).0
}

fn meta_value(s: &State) -> [u8; META_LEN] {
    let mut v = [0u8; META_LEN];
    v[..8].copy_from_slice(&s.height().to_le_bytes());
    v[8..16].copy_from_slice(&s.time().0.to_le_bytes());
    v[16..].copy_from_slice(&s.accounts_len().to_le_bytes());
    v
}

/// Write `new` into the state tree: every entry when `base` is `None`, otherwise only the
/// entries that differ from `base` (the state the tree rooted at `base.0` holds). Returns
/// the new root. Nothing is durable until the store's next checkpoint.
///
/// # Errors
/// Store failures.
pub fn write_state(
    store: &Store,
    base: Option<(&cvx_etch::Hash, &State)>,
    new: &State,
) -> Result<cvx_etch::Hash, cvx_etch::EtchError> {
    let Some((base_root, old)) = base else {
        // The first checkpoint (or a rebuilt one): every entry is new, so the tree is built
        // in one pass from the sorted entries (at 10^6 accounts, far less allocation than
        // inserting them one by one).
        let mut entries: Vec<(Key, Vec<u8>)> = (0u64..)
            .zip(new.accounts().iter())
            .map(|(i, a)| (account_key(i), a.encode()))
            .collect();
        entries.extend(new.peers().map(|p| (peer_key(&p.key), p.encode())));
        entries.push((meta_key(), meta_value(new).to_vec()));
        return merkle::build(store, entries);
    };
    let mut tx = StateTx::new(store, *base_root);
    let new_accounts = new.accounts();
    let old_accounts: &CowVec<Account> = old.accounts();
    // Chunks the two states share (copy-on-write, so unchanged since the base) are
    // skipped without comparing: a checkpoint costs O(changed chunks), not O(ledger).
    for c in 0..new_accounts.chunk_count() {
        if new_accounts.shares_chunk(old_accounts, c) {
            continue;
        }
        let end = ((c + 1) * CHUNK).min(new_accounts.len());
        for i in c * CHUNK..end {
            let a = &new_accounts[i];
            if old_accounts.get(i) != Some(a) {
                tx.insert(&account_key(i as u64), &a.encode())?;
            }
        }
    }
    // Accounts are never deleted by the ledger; a shorter new state (only after a bad
    // base) is handled for completeness.
    for i in new_accounts.len()..old_accounts.len() {
        tx.remove(&account_key(i as u64))?;
    }
    for p in new.peers() {
        if old.peer(&p.key) != Some(p) {
            tx.insert(&peer_key(&p.key), &p.encode())?;
        }
    }
    for p in old.peers() {
        if new.peer(&p.key).is_none() {
            tx.remove(&peer_key(&p.key))?;
        }
    }
    let meta = meta_value(new);
    if meta_value(old) != meta {
        tx.insert(&meta_key(), &meta)?;
    }
    tx.commit()
}

/// Why a state tree does not describe a ledger state.
#[derive(Debug, thiserror::Error)]
pub enum StateTreeError {
    /// A node is missing or malformed.
    #[error("state tree: {0}")]
    Store(#[from] cvx_etch::EtchError),
    /// The entries do not form a ledger state.
    #[error("state tree: {0}")]
    Invalid(String),
}

/// Rebuild the ledger state from the tree rooted at `root` (checked strictly: the meta
/// entry, exactly `accounts` account entries at addresses `0..accounts`, peer entries
/// under their own keys, every value a canonical encoding, nothing else).
///
/// # Errors
/// [`StateTreeError`].
pub fn read_state(store: &Store, root: &cvx_etch::Hash) -> Result<State, StateTreeError> {
    let bad = |m: String| StateTreeError::Invalid(m);
    let entries = merkle::entries(store, root)?;
    let mut map: std::collections::HashMap<Key, Vec<u8>> = entries.into_iter().collect();
    let meta = map
        .remove(&meta_key())
        .ok_or_else(|| bad("no meta entry".into()))?;
    if meta.len() != META_LEN {
        return Err(bad("meta entry has the wrong length".into()));
    }
    let word = |i: usize| {
        let mut b = [0u8; 8];
        b.copy_from_slice(&meta[i * 8..i * 8 + 8]);
        u64::from_le_bytes(b)
    };
    let (height, time, n) = (word(0), Timestamp(word(1)), word(2));
    if n > map.len() as u64 {
        return Err(bad(format!("meta says {n} accounts, the tree holds fewer")));
    }
    let mut accounts = Vec::with_capacity(usize::try_from(n).unwrap_or(0));
    for a in 0..n {
        let v = map
            .remove(&account_key(a))
            .ok_or_else(|| bad(format!("account {a} is missing")))?;
        accounts.push(Account::decode(&v).map_err(|e| bad(format!("account {a}: {e}")))?);
    }
    let mut peers = Vec::with_capacity(map.len());
    for (k, v) in map {
        let p = PeerRecord::decode(&v).map_err(|e| bad(format!("an entry is not a peer: {e}")))?;
        if peer_key(&p.key) != k {
            return Err(bad("a peer record is stored under another key".into()));
        }
        peers.push(p);
    }
    Ok(State::from_parts(accounts, peers, time, height))
}
