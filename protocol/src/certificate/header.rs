//! The order header: the fixed-size value an order is signed through, and the hash of
//! an order's block list it carries.

use serde::{Deserialize, Serialize};

use crate::consensus::{Checkpoint, Order};
use crate::encoding::{Canonical, DecodeError, ensure};
use crate::hash::{Hash, hash_parts};
use crate::primitives::{NetworkId, PublicKey, Timestamp};
use crate::sign::{SignKind, Signable};

/// Domain tag of [`order_body_hash`].
pub const ORDER_BODY_TAG: &[u8] = b"cvx1/order-body";

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
    /// [`StakeTable::root`](super::StakeTable::root) of the peer's finalized state.
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
