//! Transaction signatures already verified, so a peer does not verify the same signature
//! twice (issue 15): a bounded set of *strict* verification facts, shared by the peer's
//! ingress check and ledger execution, and the block pre-verification that consults it.
//!
//! A fact is "this signature verifies strictly (`verify_strict`) over these sign-bytes
//! under this key". It is a property of the bytes alone, true on every peer and for ever,
//! so using it changes no outcome, only the work done: execution stays a function of the
//! block and the state. The fact's name is SHA-256 over (tag, sign-bytes, key, signature):
//! the sign-bytes carry the network and the transaction's hash, the key is the one the
//! signature was checked against (after a key change the origin's key no longer matches,
//! so execution verifies again), and the signature bytes are part of it (another
//! signature over the same transaction is another fact: the set cannot be poisoned).
//!
//! Only strict checks add facts. A batch that passes does not: dalek's batch equation is
//! cofactorless with coefficients drawn from the batch's own transcript, so for a signature
//! crafted with a small-order component (only its key's holder can make one) the answer
//! can depend on which other signatures share the batch. The block rule
//! ([`BATCH_VERIFY`]) batches the whole block, which every peer does alike;
//! a fact from an ingress batch would make execution depend on what this peer happened to
//! batch, and could split the network. [`preverify`] therefore skips the block's batch
//! only when the facts alone decide every transaction the same way the rule does.

use std::collections::VecDeque;
use std::sync::{Arc, LazyLock, Mutex, PoisonError};

use cvx_protocol::hash::hash_parts;
use cvx_protocol::ledger::SignedTransaction;
use cvx_protocol::{Hash, NetworkId, PublicKey, SignBytes, Signable, Signature};

use crate::ids::IdSet;

/// Whether block signatures are checked as one deterministic batch (with a per-signature
/// strict fallback). This is a consensus rule: every peer of a network must use the same
/// value. See docs/consensus.md, "Signature checks".
pub const BATCH_VERIFY: bool = true;

/// Smallest number of signatures for which a batch is tried (below it, single checks are
/// as fast).
pub const MIN_BATCH: usize = 4;

/// Facts kept per process (oldest evicted first). A fact is needed from a transaction's
/// ingress until its block executes (well under a second at the measured rates); 2^16
/// covers more than 6 s at 10,000 tx/s in about 5 MB.
pub const VERIFIED_CAP: usize = 1 << 16;

/// Domain tag of a fact's name.
const FACT_TAG: &[u8] = b"cvx1/verified";

/// The bounded set itself.
#[derive(Debug)]
struct Facts {
    set: IdSet<Hash>,
    order: VecDeque<Hash>,
    cap: usize,
    /// Signature verifications done through this cache (strict ones and batches, one per
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

    /// Strict verification, skipped when the fact is known; a success is remembered.
    #[must_use]
    pub fn verify_strict(&self, sb: &SignBytes, key: &PublicKey, sig: &Signature) -> bool {
        let f = fact(sb, key, sig);
        if self.with(|s| s.set.contains(&f)) {
            return true;
        }
        self.count(1);
        let ok = key.verify_sign_bytes(sb, sig).is_ok();
        if ok {
            self.insert(f);
        }
        ok
    }

    /// [`Verified::verify_strict`] of a transaction's signature.
    #[must_use]
    pub fn verify_tx(&self, network: &NetworkId, key: &PublicKey, stx: &SignedTransaction) -> bool {
        self.verify_strict(&stx.tx.sign_bytes(network), key, &stx.signature)
    }

    /// One deterministic `ed25519_dalek::verify_batch` over `items` (true when it passes).
    /// Adds no fact (module comment).
    #[must_use]
    pub fn batch(&self, items: &[&Item<'_>]) -> bool {
        self.count(items.len());
        let msgs: Vec<&[u8]> = items.iter().map(|(sb, _, _)| &sb.as_bytes()[..]).collect();
        let sigs: Vec<ed25519_dalek::Signature> = items
            .iter()
            .map(|(_, _, s)| ed25519_dalek::Signature::from_bytes(&s.0))
            .collect();
        let keys: Vec<ed25519_dalek::VerifyingKey> =
            items.iter().map(|(_, k, _)| *k.verifying_key()).collect();
        ed25519_dalek::verify_batch(&msgs, &sigs, &keys).is_ok()
    }

    /// Check many signatures as the ingress does: one batch when there are at least
    /// [`MIN_BATCH`] unknown ones, and on a failed batch (or fewer) each on its own,
    /// strictly, so exactly the bad ones come out `false`.
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
            out[i] = self.verify_strict(sb, k, s);
        }
        out
    }
}

/// Block pre-verification under the block rule (docs/consensus.md, "Signature checks"):
/// for each transaction, `Some(key)` when its signature counts as valid under `key` (the
/// origin's key at block start, `keys[i]`, `None` when the origin does not exist). The rule
/// is: valid when it verifies strictly, or when the block has at least [`MIN_BATCH`]
/// transactions and the batch over all of them passes. The facts let this skip work without
/// changing that answer: when every signature is a known fact, all are valid and no batch
/// is needed; when only a few are unknown, they are checked strictly and the batch is run
/// only if one of them fails.
#[must_use]
pub fn preverify(
    cache: &Verified,
    txs: &[SignedTransaction],
    keys: &[Option<PublicKey>],
    network: &NetworkId,
) -> Vec<Option<PublicKey>> {
    let mut out = vec![None; txs.len()];
    if !BATCH_VERIFY || txs.len() < MIN_BATCH {
        return out;
    }
    let items: Vec<(usize, Item<'_>)> = txs
        .iter()
        .zip(keys)
        .enumerate()
        .filter_map(|(i, (stx, k))| Some((i, (stx.tx.sign_bytes(network), (*k)?, &stx.signature))))
        .collect();
    let unknown: Vec<&Item<'_>> = items
        .iter()
        .map(|(_, it)| it)
        .filter(|(sb, k, s)| !cache.contains(sb, k, s))
        .collect();
    // Few unknown ones: checked strictly (each success becomes a fact); the batch runs
    // only when one of them fails, since then the rule's answer for it depends on it.
    let decided_by_facts = unknown.len() < MIN_BATCH
        && unknown
            .iter()
            .all(|(sb, k, s)| cache.verify_strict(sb, k, s));
    let valid = decided_by_facts || {
        let all: Vec<&Item<'_>> = items.iter().map(|(_, it)| it).collect();
        cache.batch(&all)
    };
    if valid {
        for (i, (_, k, _)) in &items {
            out[*i] = Some(*k);
        }
    }
    // Otherwise every transaction is checked on its own at execution (strict, or a fact).
    out
}

#[cfg(test)]
#[path = "verified_tests.rs"]
mod tests;
