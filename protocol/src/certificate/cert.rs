//! The certificate itself: its kind, its votes, how a peer assembles one from signed
//! order headers, and the request that presents it to a signer.

use serde::{Deserialize, Serialize};

use super::header::OrderHeader;
use super::stake::{StakeTable, supermajority};
use crate::consensus::Checkpoint;
use crate::encoding::{BoundedVec, Canonical, DecodeError, ensure};
use crate::hash::{Hash, chain_over};
use crate::ledger::MAX_PEERS;
use crate::primitives::{NetworkId, PublicKey, Signature, Timestamp};

/// Cap on the block ids a certificate carries above its anchor.
pub const MAX_CERT_IDS: usize = 256;
/// Cap on a certificate's votes (one per peer).
pub const MAX_CERT_VOTES: usize = MAX_PEERS;

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
    /// [`order_body_hash`](super::order_body_hash) of the order.
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
