//! Transaction signatures already verified, so a peer does not verify the same signature
//! twice (issue 15): a bounded set of verification facts, shared by the peer's ingress
//! check and ledger execution, and the block pre-verification that consults it.
//!
//! A fact is "this signature is valid under the transaction signature rule over these
//! sign-bytes under this key" (the cofactored rule, [`cvx_protocol::cofactored`]). It is a
//! property of the bytes alone, true on every peer and for ever, so using it changes no
//! outcome, only the work done: execution stays a function of the block and the state.
//! The fact's name is SHA-256 over (tag, sign-bytes, key, signature): the sign-bytes carry
//! the network and the transaction's hash, the key is the one the signature was checked
//! against (after a key change the origin's key no longer matches, so execution verifies
//! again), and the signature bytes are part of it (another signature over the same
//! transaction is another fact: the set cannot be poisoned).
//!
//! Both single checks and passing batches add facts: the rule's batch passes exactly when
//! every signature in it is valid, whatever else shares the batch (the module comment of
//! [`cvx_protocol::cofactored`]), so a batch at ingress vouches for each of its signatures
//! as a single check would. (Before this rule, with ed25519-dalek's cofactorless batch, a
//! passing batch could not count: for a signature crafted with a small-order component the
//! answer depended on the batch's other members.)

use std::collections::VecDeque;
use std::sync::{Arc, LazyLock, Mutex, PoisonError};

use cvx_protocol::hash::hash_parts;
use cvx_protocol::ledger::SignedTransaction;
use cvx_protocol::{Hash, NetworkId, PublicKey, SignBytes, Signable, Signature};

use crate::ids::IdSet;

/// Whether signatures not yet known are checked as one batch (with a per-signature
/// fallback when the batch fails). Only the work depends on it: under the cofactored rule a
/// batch decides each signature as its single check does. See docs/consensus.md,
/// "Signature checks".
pub const BATCH_VERIFY: bool = true;

/// Smallest number of signatures for which a batch is tried (below it, single checks are
/// as fast).
pub const MIN_BATCH: usize = 4;

/// Facts kept per process (oldest evicted first). A fact is needed from a transaction's
/// ingress until its block executes (well under a second at the measured rates); 2^16
/// covers more than 6 s at 10,000 tx/s in about 5 MB.
pub const VERIFIED_CAP: usize = 1 << 16;

/// Domain tag of a fact's name.
const FACT_TAG: &[u8] = b"cvx1/verified-cofactored";

/// The bounded set itself.
#[derive(Debug)]
struct Facts {
    set: IdSet<Hash>,
    order: VecDeque<Hash>,
    cap: usize,
    /// Signature verifications done through this cache (single ones and batches, one per
    /// signature): what the tests count.
    verifications: u64,
}

/// A shared handle on a set of verified facts (cheap to clone; clones share the set).
#[derive(Clone, Debug)]
pub struct Verified(Arc<Mutex<Facts>>);

/// The process-wide set: ingress and execution of one peer process share it.
static GLOBAL: LazyLock<Verified> = LazyLock::new(|| Verified::new(VERIFIED_CAP));

/// Equal whatever they hold: a cache is not part of a value's meaning (a [`crate::ledger::State`]
/// holds one).
impl PartialEq for Verified {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}
impl Eq for Verified {}

impl Default for Verified {
    fn default() -> Self {
        Self::global()
    }
}

/// The name of one fact.
fn fact(sb: &SignBytes, key: &PublicKey, sig: &Signature) -> Hash {
    hash_parts(&[FACT_TAG, sb.as_bytes(), key.as_bytes(), &sig.0])
}

/// One signature to check: its sign-bytes, the key, the signature.
pub type Item<'a> = (SignBytes, PublicKey, &'a Signature);

impl Verified {
    /// A new, empty set of at most `cap` facts (at least 1).
    #[must_use]
    pub fn new(cap: usize) -> Self {
        Self(Arc::new(Mutex::new(Facts {
            set: IdSet::default(),
            order: VecDeque::new(),
            cap: cap.max(1),
            verifications: 0,
        })))
    }

    /// The process-wide set.
    #[must_use]
    pub fn global() -> Self {
        GLOBAL.clone()
    }

    fn with<R>(&self, f: impl FnOnce(&mut Facts) -> R) -> R {
        // A panic elsewhere cannot leave the set inconsistent (every change is one
        // insert/remove pair), so a poisoned lock is used as is.
        f(&mut self.0.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// Whether the fact is known.
    #[must_use]
    pub fn contains(&self, sb: &SignBytes, key: &PublicKey, sig: &Signature) -> bool {
        let f = fact(sb, key, sig);
        self.with(|s| s.set.contains(&f))
    }

    fn insert(&self, f: Hash) {
        self.with(|s| {
            if s.set.insert(f) {
                s.order.push_back(f);
                while s.order.len() > s.cap {
                    if let Some(old) = s.order.pop_front() {
                        s.set.remove(&old);
                    }
                }
            }
        });
    }

    /// Number of facts held.
    #[must_use]
    pub fn len(&self) -> usize {
        self.with(|s| s.set.len())
    }

    /// Whether no fact is held.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Signature verifications done through this set so far.
    #[must_use]
    pub fn verifications(&self) -> u64 {
        self.with(|s| s.verifications)
    }

    fn count(&self, n: usize) {
        self.with(|s| s.verifications = s.verifications.saturating_add(n as u64));
    }

    /// The rule's single check, skipped when the fact is known; a success is remembered.
    #[must_use]
    pub fn verify_one(&self, sb: &SignBytes, key: &PublicKey, sig: &Signature) -> bool {
        let f = fact(sb, key, sig);
        if self.with(|s| s.set.contains(&f)) {
            return true;
        }
        self.count(1);
        let ok = cvx_protocol::cofactored::verify(sb, key, sig);
        if ok {
            self.insert(f);
        }
        ok
    }

    /// [`Verified::verify_one`] of a transaction's signature.
    #[must_use]
    pub fn verify_tx(&self, network: &NetworkId, key: &PublicKey, stx: &SignedTransaction) -> bool {
        self.verify_one(&stx.tx.sign_bytes(network), key, &stx.signature)
    }

    /// One batch of the rule over `items` (true when it passes); a pass remembers a fact
    /// for each item.
    #[must_use]
    pub fn batch(&self, items: &[&Item<'_>]) -> bool {
        self.count(items.len());
        let refs: Vec<cvx_protocol::cofactored::Item<'_>> =
            items.iter().map(|(sb, k, s)| (sb, k, *s)).collect();
        let ok = cvx_protocol::cofactored::verify_batch(&refs);
        if ok {
            for (sb, k, s) in items {
                self.insert(fact(sb, k, s));
            }
        }
        ok
    }

    /// Check many signatures as the ingress does: one batch when there are at least
    /// [`MIN_BATCH`] unknown ones, and on a failed batch (or fewer) each on its own, so
    /// exactly the bad ones come out `false`. Every success is remembered.
    #[must_use]
    pub fn check_many(&self, items: &[Item<'_>]) -> Vec<bool> {
        let mut out: Vec<bool> = items
            .iter()
            .map(|(sb, k, s)| self.contains(sb, k, s))
            .collect();
        let unknown: Vec<usize> = (0..items.len()).filter(|&i| !out[i]).collect();
        if BATCH_VERIFY && unknown.len() >= MIN_BATCH {
            let batch: Vec<&Item<'_>> = unknown.iter().map(|&i| &items[i]).collect();
            if self.batch(&batch) {
                return vec![true; items.len()];
            }
        }
        for i in unknown {
            let (sb, k, s) = &items[i];
            out[i] = self.verify_one(sb, k, s);
        }
        out
    }
}

/// Block pre-verification: for each transaction, `Some((key, valid))`: whether its
/// signature is valid under `key`, the origin's key at block start (`keys[i]`); `None` when
/// the origin does not exist. Execution uses the verdict while the origin's key is still
/// `key` (it differs only after a key change earlier in the block). Known facts cost
/// nothing; the unknown signatures are checked with [`Verified::check_many`] (one batch
/// when there are enough). The verdict is the rule's for every signature, so it is the
/// same on every peer whatever each peer already knew.
#[must_use]
pub fn preverify(
    cache: &Verified,
    txs: &[SignedTransaction],
    keys: &[Option<PublicKey>],
    network: &NetworkId,
) -> Vec<Option<(PublicKey, bool)>> {
    let mut out = vec![None; txs.len()];
    let (idx, items): (Vec<usize>, Vec<Item<'_>>) = txs
        .iter()
        .zip(keys)
        .enumerate()
        .filter_map(|(i, (stx, k))| Some((i, (stx.tx.sign_bytes(network), (*k)?, &stx.signature))))
        .unzip();
    for ((i, (_, k, _)), ok) in idx.iter().zip(&items).zip(cache.check_many(&items)) {
        out[*i] = Some((*k, ok));
    }
    out
}

#[cfg(test)]
#[path = "verified_tests.rs"]
mod tests;
