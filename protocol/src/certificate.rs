//! Finality and lock certificates, the stake table a signer trusts, and the pure policy
//! that lets a signer catch up or release a lock on a certificate (docs/consensus.md §7,
//! byte layouts in docs/protocol.md §11).
//!
//! * [`OrderHeader`] — the fixed-size value an order is signed through (its
//!   `consensus_chain` and `stake_root` make a handful of headers a proof);
//! * [`StakeTable`] — `(key, stake)` of the voting peers, and its [`StakeTable::root`];
//! * [`Certificate`] — votes (order headers minus the shared fields) of peers holding more
//!   than 2/3 of a table's stake, all covering `(P, C)`;
//! * [`decide_certificate`] — catch-up and lock release, refusing bad certificates with
//!   codes of their own (`CERT_*`).

use serde::{Deserialize, Serialize};

use crate::consensus::{Checkpoint, Order};
use crate::encoding::{BoundedVec, Canonical, DecodeError, ensure};
use crate::hash::{Hash, chain_over, hash_parts};
use crate::ledger::{MAX_PEERS, PeerRecord};
use crate::policy::{Refusal, RefuseCode, Watermark};
use crate::primitives::{Amount, NetworkId, PublicKey, Signature, Timestamp};
use crate::sign::{SignKind, Signable};

/// Cap on the block ids a certificate carries above its anchor.
pub const MAX_CERT_IDS: usize = 256;
/// Cap on a certificate's votes (one per peer).
pub const MAX_CERT_VOTES: usize = MAX_PEERS;
/// Domain tag of [`order_body_hash`].
pub const ORDER_BODY_TAG: &[u8] = b"cvx1/order-body";
/// Domain tag of [`StakeTable::root`].
pub const STAKE_ROOT_TAG: &[u8] = b"cvx1/stake";
/// Default trust period: certificates are checked against a trusted table at most this
/// long after it was last confirmed (the weak-subjectivity bound, docs/consensus.md §7.5).
pub const DEFAULT_TRUST_PERIOD_MS: u64 = 14 * 24 * 3600 * 1000;

/// The hash of an order's block list: `SHA-256("cvx1/order-body" ‖ checkpoint.position
/// (u64 LE) ‖ checkpoint.chain ‖ id count (u64 LE) ‖ ids)`.
#[must_use]
pub fn order_body_hash(checkpoint: &Checkpoint, ids: &[Hash]) -> Hash {
    let position = checkpoint.position.to_le_bytes();
    let count = (ids.len() as u64).to_le_bytes();
    let mut parts: Vec<&[u8]> = Vec::with_capacity(ids.len() + 4);
    parts.push(ORDER_BODY_TAG);
    parts.push(&position);
    parts.push(&checkpoint.chain.0);
    parts.push(&count);
    parts.extend(ids.iter().map(|h| h.0.as_slice()));
    hash_parts(&parts)
}

/// The fixed-size value an order is signed through (docs/consensus.md §7.2).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderHeader {
    /// The ordering peer.
    pub peer: PublicKey,
    /// The order's timestamp.
    pub timestamp: Timestamp,
    /// [`order_body_hash`] of the order's checkpoint and ids.
    pub body_hash: Hash,
    /// Proposal point.
    pub proposal: u64,
    /// Consensus point.
    pub consensus: u64,
    /// Finality point.
    pub finality: u64,
    /// `chain(consensus)`.
    pub consensus_chain: Hash,
    /// [`StakeTable::root`] of the peer's finalized state.
    pub stake_root: Hash,
}

impl Canonical for OrderHeader {
    const NAME: &'static str = "OrderHeader";
    const MAX_LEN: usize = 32 + 10 + 32 + 3 * 10 + 32 + 32;
    fn validate(&self) -> Result<(), DecodeError> {
        ensure(
            Self::NAME,
            self.finality <= self.consensus && self.consensus <= self.proposal,
            "points are not ordered finality <= consensus <= proposal",
        )
    }
}

impl Signable for OrderHeader {
    const KIND: SignKind = SignKind::OrderHeader;
}

impl OrderHeader {
    /// The header of `order` with the given stake root; `None` when the order's points
    /// are inconsistent.
    #[must_use]
    pub fn of(order: &Order, stake_root: Hash) -> Option<Self> {
        if !order.points_consistent() {
            return None;
        }
        Some(Self {
            peer: order.peer,
            timestamp: order.timestamp,
            body_hash: order_body_hash(&order.checkpoint, &order.blocks),
            proposal: order.proposal,
            consensus: order.consensus,
            finality: order.finality,
            consensus_chain: order.chain_at(order.consensus)?,
            stake_root,
        })
    }
}

/// An order is signed through its fixed-size [`OrderHeader`] (sign kind
/// `0x05`), so that a handful of headers make a certificate (docs/consensus.md §7.2). The
/// whole-order kind `0x02` is retired: nothing signs it any more.
impl Signable for Order {
    const KIND: SignKind = SignKind::OrderHeader;

    fn sign_bytes(&self, network: &NetworkId) -> crate::sign::SignBytes {
        match OrderHeader::of(self, self.stake_root) {
            Some(h) => h.sign_bytes(network),
            // Points out of order: no header exists, and no signer signs such an order
            // (the policy and the decoder refuse it). Sign-bytes of the retired whole-order
            // kind, which nothing signs, so that no signature ever verifies.
            None => crate::sign::SignBytes::new(SignKind::Order, network, &self.hash()),
        }
    }
}

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

/// What a certificate proves.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum CertKind {
    /// 0: the votes' finality points cover the anchor.
    Finality,
    /// 1: the votes' consensus points (locks) cover the anchor.
    Lock,
}

/// One signed order, as a certificate carries it: an [`OrderHeader`] without
/// `consensus_chain` (derived from the anchor and the ids) and `stake_root` (the
/// certificate's).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Vote {
    /// The ordering peer.
    pub peer: PublicKey,
    /// The order's timestamp.
    pub timestamp: Timestamp,
    /// [`order_body_hash`] of the order.
    pub body_hash: Hash,
    /// Proposal point.
    pub proposal: u64,
    /// Consensus point.
    pub consensus: u64,
    /// Finality point.
    pub finality: u64,
    /// The peer's signature over the header's sign-bytes.
    pub signature: Signature,
}

/// A finality or lock certificate for `anchor = (P, C)` (docs/consensus.md §7.4).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Certificate {
    /// The network the orders were signed for.
    pub network: NetworkId,
    /// Finality or lock.
    pub kind: CertKind,
    /// `(P, C)`.
    pub anchor: Checkpoint,
    /// The stake root every vote names.
    pub stake_root: Hash,
    /// Block ids at positions `P, P + 1, ...`: enough to reach every vote's consensus point.
    pub ids: BoundedVec<Hash, MAX_CERT_IDS>,
    /// The votes, by strictly increasing peer key.
    pub votes: BoundedVec<Vote, MAX_CERT_VOTES>,
}

impl Canonical for Certificate {
    const NAME: &'static str = "Certificate";
    const MAX_LEN: usize = 32
        + 1
        + (10 + 32)
        + 32
        + 3
        + MAX_CERT_IDS * 32
        + 3
        + MAX_CERT_VOTES * (32 + 10 + 32 + 3 * 10 + 64);
    fn validate(&self) -> Result<(), DecodeError> {
        ensure(
            Self::NAME,
            self.votes.windows(2).all(|w| w[0].peer < w[1].peer),
            "votes are not sorted by strictly increasing peer key",
        )?;
        ensure(
            Self::NAME,
            self.votes
                .iter()
                .all(|v| v.finality <= v.consensus && v.consensus <= v.proposal),
            "a vote's points are not ordered finality <= consensus <= proposal",
        )
    }
}

impl Certificate {
    /// The chain value at `position`, for `P <= position <= P + ids.len()`.
    #[must_use]
    pub fn chain_at(&self, position: u64) -> Option<Hash> {
        let n = usize::try_from(position.checked_sub(self.anchor.position)?).ok()?;
        Some(chain_over(&self.anchor.chain, self.ids.get(..n)?))
    }

    /// The order header a vote stands for; `None` when its consensus point is outside
    /// `P ..= P + ids.len()`.
    #[must_use]
    pub fn header(&self, v: &Vote) -> Option<OrderHeader> {
        Some(OrderHeader {
            peer: v.peer,
            timestamp: v.timestamp,
            body_hash: v.body_hash,
            proposal: v.proposal,
            consensus: v.consensus,
            finality: v.finality,
            consensus_chain: self.chain_at(v.consensus)?,
            stake_root: self.stake_root,
        })
    }

    /// The certificate a peer can build for `anchor` from the signed order headers it
    /// holds: for each peer of `table` its newest header that names the table's root,
    /// covers the anchor (finality, or consensus for a lock certificate), lies on `ids`
    /// (its consensus chain is the anchor's chain extended by the ids up to its consensus
    /// point) and verifies. `None` unless those hold more than 2/3 of the table's stake.
    #[must_use]
    pub fn assemble(
        network: NetworkId,
        kind: CertKind,
        anchor: Checkpoint,
        ids: &[Hash],
        table: &StakeTable,
        signed: &[(OrderHeader, Signature)],
    ) -> Option<Self> {
        let ids = ids.get(..ids.len().min(MAX_CERT_IDS))?;
        let root = table.root();
        let mut best: std::collections::BTreeMap<PublicKey, (&OrderHeader, Signature)> =
            std::collections::BTreeMap::new();
        for (h, sig) in signed {
            let covered = match kind {
                CertKind::Finality => h.finality >= anchor.position,
                CertKind::Lock => h.consensus >= anchor.position,
            };
            let on_ids = h
                .consensus
                .checked_sub(anchor.position)
                .and_then(|n| usize::try_from(n).ok())
                .and_then(|n| ids.get(..n))
                .is_some_and(|prefix| chain_over(&anchor.chain, prefix) == h.consensus_chain);
            if h.stake_root != root
                || !covered
                || !on_ids
                || table.stake_of(&h.peer).is_none()
                || best
                    .get(&h.peer)
                    .is_some_and(|(b, _)| b.timestamp >= h.timestamp)
                || h.peer.verify(&network, h, sig).is_err()
            {
                continue;
            }
            best.insert(h.peer, (h, *sig));
        }
        let weight: u128 = best
            .keys()
            .filter_map(|k| table.stake_of(k))
            .map(u128::from)
            .sum();
        if !supermajority(weight, table.total()) {
            return None;
        }
        let votes: Vec<Vote> = best
            .values()
            .map(|(h, sig)| Self::vote_of(h, *sig))
            .collect();
        Some(Self {
            network,
            kind,
            anchor,
            stake_root: root,
            ids: BoundedVec::try_from_vec(ids.to_vec()).ok()?,
            votes: BoundedVec::try_from_vec(votes).ok()?,
        })
    }

    /// The vote a signed header contributes (the caller checks that the header's
    /// consensus chain and stake root are the certificate's).
    #[must_use]
    pub fn vote_of(header: &OrderHeader, signature: Signature) -> Vote {
        Vote {
            peer: header.peer,
            timestamp: header.timestamp,
            body_hash: header.body_hash,
            proposal: header.proposal,
            consensus: header.consensus,
            finality: header.finality,
            signature,
        }
    }
}

/// A certificate as presented to the signer, with the new stake table when the
/// certificate names a table other than the trusted one.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertRequest {
    /// The certificate.
    pub certificate: Certificate,
    /// The table whose root is `certificate.stake_root`, when that is not the trusted one.
    pub table: Option<StakeTable>,
}

impl Canonical for CertRequest {
    const NAME: &'static str = "CertRequest";
    const MAX_LEN: usize = Certificate::MAX_LEN + 1 + StakeTable::MAX_LEN;
    fn validate(&self) -> Result<(), DecodeError> {
        self.certificate.validate()?;
        self.table.as_ref().map_or(Ok(()), StakeTable::validate)
    }
}

// That a certificate request with a full table fits one signer frame is asserted in
// `signer_wire` (`ClientMessage::MAX_LEN <= MAX_FRAME`), which depends on this module.

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

/// The certificate policy's answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CertDecision {
    /// Make `watermark` and `trusted` durable (in one write), then answer.
    Allow {
        /// The new watermark (lock moved to the anchor unless already there).
        watermark: Watermark,
        /// The new trusted table (possibly the same table, re-confirmed).
        trusted: TrustedTable,
        /// True when the lock moved.
        moved: bool,
    },
    /// Change nothing.
    Refuse(Refusal),
}

impl CertDecision {
    /// The refusal code, if refused.
    #[must_use]
    pub fn refusal(&self) -> Option<RefuseCode> {
        match self {
            Self::Allow { .. } => None,
            Self::Refuse(r) => Some(r.code),
        }
    }
}

fn refusal(code: RefuseCode, detail: String) -> Refusal {
    Refusal { code, detail }
}

/// Check `req` against the trusted table; on success, the table the certificate was
/// counted against from now on (the trusted one, or the new one it proved).
///
/// # Errors
/// A [`Refusal`] with a `CERT_*` code naming the first rule broken.
pub fn verify_certificate(
    network: &NetworkId,
    trusted: &TrustedTable,
    req: &CertRequest,
    now: Timestamp,
    trust_period_ms: u64,
) -> Result<StakeTable, Refusal> {
    let cert = &req.certificate;
    if cert.network != *network {
        return Err(refusal(
            RefuseCode::CertNetwork,
            format!(
                "the certificate is for network {}, this signer signs only for {network}",
                cert.network
            ),
        ));
    }
    let age = now.0.saturating_sub(trusted.confirmed_at.0);
    if age > trust_period_ms {
        return Err(refusal(
            RefuseCode::CertTrustExpired,
            format!(
                "the trusted stake table was last confirmed {age} ms ago, beyond the trust period of \
                 {trust_period_ms} ms: re-anchor the signer from a table obtained out of band"
            ),
        ));
    }
    let old_root = trusted.table.root();
    let new = if cert.stake_root == old_root {
        None
    } else {
        if cert.anchor.position < trusted.position {
            return Err(refusal(
                RefuseCode::CertStaleTable,
                format!(
                    "the certificate names another stake table at position {}, below the position {} \
                     the trusted table is known at (an old certificate replayed)",
                    cert.anchor.position, trusted.position
                ),
            ));
        }
        match &req.table {
            Some(t) if t.root() == cert.stake_root && t.validate().is_ok() => Some(t),
            Some(_) => {
                return Err(refusal(
                    RefuseCode::CertTableUnproven,
                    format!(
                        "the table sent with the certificate does not have its stake root {}",
                        cert.stake_root
                    ),
                ));
            }
            None => {
                return Err(refusal(
                    RefuseCode::CertTableUnproven,
                    format!(
                        "the certificate names stake root {}, not the trusted {old_root}, and no \
                         table came with it",
                        cert.stake_root
                    ),
                ));
            }
        }
    };
    let (mut w_old, mut w_new) = (0u128, 0u128);
    for v in cert.votes.iter() {
        let in_old = trusted.table.stake_of(&v.peer);
        let in_new = new.and_then(|t| t.stake_of(&v.peer));
        if in_old.is_none() && in_new.is_none() {
            return Err(refusal(
                RefuseCode::CertUnknownSigner,
                format!("vote by {} whose key is not in the stake table", v.peer),
            ));
        }
        let covered = match cert.kind {
            CertKind::Finality => v.finality >= cert.anchor.position,
            CertKind::Lock => v.consensus >= cert.anchor.position,
        };
        if !covered {
            return Err(refusal(
                RefuseCode::CertNotCovered,
                format!(
                    "vote by {} (finality {}, consensus {}) does not cover the anchor {}",
                    v.peer, v.finality, v.consensus, cert.anchor.position
                ),
            ));
        }
        let Some(header) = cert.header(v) else {
            return Err(refusal(
                RefuseCode::CertMalformed,
                format!(
                    "vote by {}: consensus point {} is not reachable from the anchor {} with {} ids",
                    v.peer,
                    v.consensus,
                    cert.anchor.position,
                    cert.ids.len()
                ),
            ));
        };
        if v.peer.verify(network, &header, &v.signature).is_err() {
            return Err(refusal(
                RefuseCode::CertBadSignature,
                format!("vote by {}: the signature does not verify", v.peer),
            ));
        }
        w_old += u128::from(in_old.unwrap_or(0));
        w_new += u128::from(in_new.unwrap_or(0));
    }
    match new {
        None => {
            if !supermajority(w_old, trusted.table.total()) {
                return Err(refusal(
                    RefuseCode::CertWeakQuorum,
                    format!(
                        "the votes hold {w_old} of {} stake: not more than 2/3",
                        trusted.table.total()
                    ),
                ));
            }
            Ok(trusted.table.clone())
        }
        Some(t) => {
            if !supermajority(w_new, t.total()) {
                return Err(refusal(
                    RefuseCode::CertWeakQuorum,
                    format!(
                        "the votes hold {w_new} of the new table's {} stake: not more than 2/3",
                        t.total()
                    ),
                ));
            }
            if !supermajority(w_old, trusted.table.total()) {
                return Err(refusal(
                    RefuseCode::CertStaleTable,
                    format!(
                        "the votes hold {w_old} of the trusted table's {} stake: not more than 2/3, so \
                         the change of table is not vouched for; present the handoff certificates first",
                        trusted.table.total()
                    ),
                ));
            }
            Ok(t.clone())
        }
    }
}

fn below_lock(anchor: Checkpoint, lock: Option<&Checkpoint>) -> Refusal {
    refusal(
        RefuseCode::CertBelowLock,
        format!(
            "the certificate's anchor {} is below the committed consensus point {}",
            anchor.position,
            lock.map_or(0, |l| l.position)
        ),
    )
}

/// Catch-up and lock release (docs/consensus.md §7.6): a valid certificate for `(P, C)`
/// at or above the lock moves the lock to `(P, C)` (and, for a finality certificate, the
/// finality watermark to at least `P`). One below the lock never moves it: a valid one of
/// the trusted table re-confirms that table (`Allow` with `moved` false and the watermark
/// unchanged, §7.5); any other is refused (`CERT_BELOW_LOCK`, or `CERT_TRUST_EXPIRED`).
#[must_use]
pub fn decide_certificate(
    network: &NetworkId,
    wm: &Watermark,
    trusted: &TrustedTable,
    req: &CertRequest,
    now: Timestamp,
    trust_period_ms: u64,
) -> CertDecision {
    let anchor = req.certificate.anchor;
    let below = wm
        .consensus
        .as_ref()
        .filter(|lock| anchor.position < lock.position);
    let table = match verify_certificate(network, trusted, req, now, trust_period_ms) {
        Ok(t) => t,
        Err(r) if below.is_none() => return CertDecision::Refuse(r),
        Err(r) if r.code == RefuseCode::CertTrustExpired => return CertDecision::Refuse(r),
        Err(_) => return CertDecision::Refuse(below_lock(anchor, below)),
    };
    if below.is_some() {
        // Below the lock the signer cannot tell whether the certificate conflicts with its
        // lock, so the lock never moves (§7.6). A valid certificate of the *same* table
        // still shows that more than 2/3 of that table signed recently: it re-confirms the
        // table (the trust period starts again), which is how a running peer keeps its
        // signer's table fresh (docs/consensus.md §7.5). A new table below the lock is
        // refused: a table change is taken only with a certificate at or above the lock.
        if table != trusted.table {
            return CertDecision::Refuse(below_lock(anchor, below));
        }
        return CertDecision::Allow {
            watermark: wm.clone(),
            trusted: TrustedTable {
                position: trusted.position,
                confirmed_at: Timestamp(trusted.confirmed_at.0.max(now.0)),
                table,
            },
            moved: false,
        };
    }
    let moved = wm.consensus != Some(anchor);
    let mut watermark = wm.clone();
    watermark.consensus = Some(anchor);
    if req.certificate.kind == CertKind::Finality {
        watermark.finality = watermark.finality.max(anchor.position);
    }
    let changed = table != trusted.table;
    let trusted = TrustedTable {
        position: if changed {
            anchor.position
        } else {
            trusted.position.max(anchor.position)
        },
        confirmed_at: Timestamp(trusted.confirmed_at.0.max(now.0)),
        table,
    };
    CertDecision::Allow {
        watermark,
        trusted,
        moved,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::hash;
    use crate::primitives::Address;
    use crate::state_root::{StateRootParts, peers_root};
    use ed25519_dalek::{Signer, SigningKey};

    fn key(i: u8) -> (SigningKey, PublicKey) {
        let sk = SigningKey::from_bytes(&[i + 1; 32]);
        let pk = PublicKey::from_bytes(sk.verifying_key().as_bytes()).expect("valid");
        (sk, pk)
    }

    fn record(i: u8, stake: u64) -> PeerRecord {
        PeerRecord {
            key: key(i).1,
            controller: Address(u64::from(i)),
            stake: Amount::new(stake).expect("small"),
            host: None,
            last_block_time: Timestamp(u64::from(i) * 7),
        }
    }

    #[test]
    fn the_stake_table_is_proven_against_a_state_root_and_ignores_what_does_not_vote() {
        let mut peers = vec![record(0, 500), record(1, 50), record(2, 300)];
        peers.sort_by_key(|p| p.key);
        let parts = StateRootParts {
            height: 9,
            time: Timestamp(99),
            account_count: 4,
            accounts_root: hash(b"accounts"),
            peers_root: peers_root(&peers),
        };
        let root = parts.root();
        let min = Amount::new(100).expect("small");
        let t = StakeTable::proven(&parts, &peers, &root, min).expect("proven");
        assert_eq!(t.entries.len(), 2, "the peer below min_stake does not vote");
        assert_eq!(t.total(), 800);
        // A table that is not the state's is not proven.
        let mut forged = peers.clone();
        forged[0].stake = Amount::new(10_000).expect("small");
        assert!(StakeTable::proven(&parts, &forged, &root, min).is_none());
        // last_block_time changes the peers root but not the stake root.
        let mut later = peers.clone();
        later[1].last_block_time = Timestamp(1_000);
        assert_ne!(peers_root(&later), peers_root(&peers));
        assert_eq!(StakeTable::from_peers(&later, min).root(), t.root());
    }

    #[test]
    fn assemble_builds_a_verifiable_certificate_only_from_a_quorum() {
        let net = NetworkId(hash(b"assemble"));
        let peers: Vec<PeerRecord> = (0..4).map(|i| record(i, 100)).collect();
        let table = StakeTable::from_peers(&peers, Amount::new(1).expect("small"));
        let anchor = Checkpoint {
            position: 40,
            chain: hash(b"c40"),
        };
        let ids = [hash(b"40"), hash(b"41")];
        let header = |i: u8, consensus: u64, chain: Hash, root: Hash| {
            let (sk, pk) = key(i);
            let h = OrderHeader {
                peer: pk,
                timestamp: Timestamp(10 + u64::from(i)),
                body_hash: hash(&[i]),
                proposal: consensus,
                consensus,
                finality: 40,
                consensus_chain: chain,
                stake_root: root,
            };
            let sig = Signature(sk.sign(h.sign_bytes(&net).as_bytes()).to_bytes());
            (h, sig)
        };
        let on = |c: u64| {
            chain_over(
                &anchor.chain,
                &ids[..usize::try_from(c - 40).expect("small")],
            )
        };
        let root = table.root();
        let good: Vec<_> = vec![
            header(0, 41, on(41), root),
            header(1, 42, on(42), root),
            header(2, 40, on(40), root),
        ];
        let cert = Certificate::assemble(net, CertKind::Finality, anchor, &ids, &table, &good)
            .expect("3 of 4");
        let trusted = TrustedTable {
            position: 0,
            confirmed_at: Timestamp(0),
            table: table.clone(),
        };
        let req = CertRequest {
            certificate: cert,
            table: None,
        };
        assert!(
            verify_certificate(&net, &trusted, &req, Timestamp(1), DEFAULT_TRUST_PERIOD_MS).is_ok()
        );
        // Off the ids, another table's root, an outsider, a bad signature: left out, so
        // no quorum.
        let mut bad = good[..2].to_vec();
        bad.push(header(2, 41, hash(b"elsewhere"), root));
        bad.push(header(3, 41, on(41), hash(b"other root")));
        bad.push(header(9, 41, on(41), root));
        let mut forged = header(2, 40, on(40), root);
        forged.1.0[0] ^= 1;
        bad.push(forged);
        assert!(
            Certificate::assemble(net, CertKind::Finality, anchor, &ids, &table, &bad).is_none()
        );
    }
}
