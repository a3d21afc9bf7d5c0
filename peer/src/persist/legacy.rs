//! Orders as stores of record versions 1–3 hold them: before orders carried `stake_root`
//! and were signed through their header (docs/consensus.md §7.2). Read on open and
//! converted; see [`LegacySignedOrder::convert`].

use cvx_protocol::consensus::{Checkpoint, MAX_ORDER_BLOCKS, Order, SignedOrder};
use cvx_protocol::{BoundedVec, Hash, PublicKey, Signature, Timestamp};
use serde::{Deserialize, Serialize};

/// An order without `stake_root` (record versions 1–3).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(super) struct LegacyOrder {
    peer: PublicKey,
    timestamp: Timestamp,
    checkpoint: Checkpoint,
    blocks: BoundedVec<Hash, MAX_ORDER_BLOCKS>,
    proposal: u64,
    consensus: u64,
    finality: u64,
}

/// A [`LegacyOrder`] with its whole-order signature (the retired sign kind 2).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(super) struct LegacySignedOrder {
    order: LegacyOrder,
    signature: Signature,
}

impl LegacySignedOrder {
    /// The same order with `stake_root` zero and the old signature. The signature no longer
    /// verifies (it was made over the whole order), so other peers drop this order; it is
    /// kept only for what the restart reads from it: the own points and `chain(position)`
    /// for the signer's bridge. The machine signs a new order (header-signed, with the real
    /// stake root) at its first merge.
    pub(super) fn convert(self) -> SignedOrder {
        let o = self.order;
        SignedOrder {
            order: Order {
                peer: o.peer,
                timestamp: o.timestamp,
                checkpoint: o.checkpoint,
                blocks: o.blocks,
                proposal: o.proposal,
                consensus: o.consensus,
                finality: o.finality,
                stake_root: Hash::ZERO,
            },
            signature: self.signature,
        }
    }
}

#[cfg(test)]
impl LegacySignedOrder {
    /// `so` as a version 1–3 store held it (its `stake_root` dropped).
    pub(super) fn of(so: &SignedOrder) -> Self {
        let o = &so.order;
        Self {
            order: LegacyOrder {
                peer: o.peer,
                timestamp: o.timestamp,
                checkpoint: o.checkpoint,
                blocks: o.blocks.clone(),
                proposal: o.proposal,
                consensus: o.consensus,
                finality: o.finality,
            },
            signature: so.signature,
        }
    }
}
