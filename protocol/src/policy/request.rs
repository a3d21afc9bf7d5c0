//! What the peer asks the signer to sign: the sign request for a named network, and the
//! cap on the bridge of block ids an order request carries.

use serde::{Deserialize, Serialize};

use crate::consensus::{BlockHeader, ChallengeResponse, MAX_ORDER_BLOCKS, Order};
use crate::encoding::{BoundedVec, Canonical, DecodeError};
use crate::hash::Hash;
use crate::primitives::NetworkId;

/// Cap on the bridge of block ids an order request may carry.
/// (A full order plus a full bridge must fit the signer's 64 KiB frame: 1024 + 1016 ids
/// leave room for the rest of the request.)
pub const MAX_BRIDGE: usize = MAX_ORDER_BLOCKS - 8;

/// What the peer asks the signer to sign.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SignRequest {
    /// 0: a block header.
    Block(BlockHeader),
    /// 1: an order, with the ids of the blocks between the watermark's consensus point
    /// and the order's checkpoint (empty when the checkpoint is not above it).
    Order {
        /// The order.
        order: Order,
        /// Block ids at positions `watermark.consensus.position .. order.checkpoint.position`.
        bridge: BoundedVec<Hash, MAX_BRIDGE>,
    },
    /// 2: a challenge response.
    ChallengeResponse(ChallengeResponse),
}

/// A sign request for a named network.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    /// The network the value is for.
    pub network: NetworkId,
    /// The value.
    pub body: SignRequest,
}

impl Canonical for Request {
    const NAME: &'static str = "SignRequest";
    const MAX_LEN: usize = 32 + 1 + Order::MAX_LEN + 3 + MAX_BRIDGE * 32;
    fn validate(&self) -> Result<(), DecodeError> {
        // Structural rules are the policy's to judge (so a refusal names them); only
        // the field types are enforced at decode.
        Ok(())
    }
}
