//! Consensus values, as in Convex's CPoS: blocks, orders, beliefs, challenges.

use serde::{Deserialize, Serialize};

use crate::encoding::{BoundedVec, Canonical, DecodeError, ensure};
use crate::hash::{Hash, chain_over, hash};
use crate::ledger::{MAX_BLOCK_TXS, MAX_PEERS, SignedTransaction};
use crate::primitives::{PublicKey, Signature, Timestamp, Token};
use crate::sign::{SignKind, Signable};

/// Cap on the block hashes an order carries above its checkpoint. The peer moves its
/// checkpoint up (below finality) to stay under it, so an order's size does not grow
/// with the chain; 1024 hashes keep a sign request well inside the signer's 64 KiB frame.
pub const MAX_ORDER_BLOCKS: usize = 1024;

/// The part of a block its proposer signs. It commits to the transactions through
/// their count and the hash of their encoding, so the signer checks a ~100-byte value
/// however large the block. The block's id is the hash of this header.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockHeader {
    /// The proposing peer.
    pub proposer: PublicKey,
    /// The proposer's clock when it made the block.
    pub timestamp: Timestamp,
    /// Number of transactions in the body.
    pub tx_count: u32,
    /// Hash of the canonical encoding of the body's transaction list.
    pub tx_hash: Hash,
}

impl Canonical for BlockHeader {
    const NAME: &'static str = "BlockHeader";
    const MAX_LEN: usize = 32 + 10 + 5 + 32;
    fn validate(&self) -> Result<(), DecodeError> {
        ensure(
            Self::NAME,
            self.tx_count as usize <= MAX_BLOCK_TXS,
            "tx_count above the protocol cap",
        )
    }
}

impl Signable for BlockHeader {
    const KIND: SignKind = SignKind::Block;
}

/// The transaction list of a block, with its own encoding (whose hash is `tx_hash`).
pub type BlockBody = BoundedVec<SignedTransaction, MAX_BLOCK_TXS>;

/// A block: signed header plus body.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Block {
    /// The signed header.
    pub header: BlockHeader,
    /// The proposer's signature over the header's sign-bytes.
    pub signature: Signature,
    /// The transactions.
    pub transactions: BlockBody,
}

impl Canonical for Block {
    const NAME: &'static str = "Block";
    const MAX_LEN: usize =
        BlockHeader::MAX_LEN + 64 + 3 + MAX_BLOCK_TXS * SignedTransaction::MAX_LEN;
    fn validate(&self) -> Result<(), DecodeError> {
        self.header.validate()?;
        ensure(
            Self::NAME,
            self.header.tx_count as usize == self.transactions.len(),
            "tx_count does not match the number of transactions",
        )?;
        for t in self.transactions.iter() {
            t.validate()?;
        }
        ensure(
            Self::NAME,
            body_hash(&self.transactions) == self.header.tx_hash,
            "tx_hash does not match the transactions",
        )
    }
}

impl Block {
    /// The block id: the hash of its header.
    #[must_use]
    pub fn id(&self) -> Hash {
        self.header.hash()
    }
}

/// `tx_hash` of a body: the hash of its canonical encoding.
#[must_use]
pub fn body_hash(body: &BlockBody) -> Hash {
    hash(&postcard::to_allocvec(body).expect("cvx types always encode"))
}

/// Everything below `position` in the block sequence, summarized by the chain value
/// there (see [`crate::hash::chain_step`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// Number of blocks summarized.
    pub position: u64,
    /// `chain(position)`.
    pub chain: Hash,
}

impl Checkpoint {
    /// The empty prefix of a network: position 0, chain = the network id.
    #[must_use]
    pub const fn genesis(network: &crate::primitives::NetworkId) -> Self {
        Self {
            position: 0,
            chain: network.0,
        }
    }
}

/// A peer's view of the block sequence, with its three consensus points. All points
/// are absolute positions (number of blocks), and satisfy
/// `checkpoint.position <= finality <= consensus <= proposal <= len()`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Order {
    /// The peer whose order this is (and whose key signs it).
    pub peer: PublicKey,
    /// The peer's clock when it made the order.
    pub timestamp: Timestamp,
    /// The summarized prefix.
    pub checkpoint: Checkpoint,
    /// Ids of the blocks at positions `checkpoint.position ..`.
    pub blocks: BoundedVec<Hash, MAX_ORDER_BLOCKS>,
    /// Proposal point.
    pub proposal: u64,
    /// Consensus point.
    pub consensus: u64,
    /// Finality point.
    pub finality: u64,
    /// The stake table root (`certificate::StakeTable::root`) of the peer's finalized
    /// state: the table a certificate made of this order's header is checked against
    /// (docs/consensus.md §7.2–7.3). The signer cannot check it; a peer that lies about it
    /// is byzantine. The order's sign-bytes are its header's (see `certificate`).
    pub stake_root: Hash,
}

impl Canonical for Order {
    const NAME: &'static str = "Order";
    const MAX_LEN: usize = 32 + 10 + (10 + 32) + 3 + MAX_ORDER_BLOCKS * 32 + 3 * 10 + 32;
    fn validate(&self) -> Result<(), DecodeError> {
        ensure(
            Self::NAME,
            self.points_consistent(),
            "points are not ordered checkpoint <= finality <= consensus <= proposal <= length",
        )
    }
}

impl Order {
    /// Total number of blocks: checkpoint position plus the listed ones.
    #[must_use]
    pub fn len(&self) -> u64 {
        self.checkpoint
            .position
            .saturating_add(self.blocks.len() as u64)
    }

    /// True when the order has no blocks at all.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// `checkpoint <= finality <= consensus <= proposal <= len`.
    #[must_use]
    pub fn points_consistent(&self) -> bool {
        self.checkpoint.position <= self.finality
            && self.finality <= self.consensus
            && self.consensus <= self.proposal
            && self.proposal <= self.len()
            && self
                .checkpoint
                .position
                .checked_add(self.blocks.len() as u64)
                .is_some()
    }

    /// The id of the block at absolute `position`, if listed.
    #[must_use]
    pub fn block_at(&self, position: u64) -> Option<&Hash> {
        let i = position.checked_sub(self.checkpoint.position)?;
        self.blocks.get(usize::try_from(i).ok()?)
    }

    /// `chain(k)` for `checkpoint.position <= k <= len()`; `None` outside that range.
    #[must_use]
    pub fn chain_at(&self, k: u64) -> Option<Hash> {
        let n = usize::try_from(k.checked_sub(self.checkpoint.position)?).ok()?;
        let listed = self.blocks.get(..n)?;
        Some(chain_over(&self.checkpoint.chain, listed))
    }
}

/// An order with its peer's signature.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedOrder {
    /// The order.
    pub order: Order,
    /// Signature by `order.peer`.
    pub signature: Signature,
}

impl Canonical for SignedOrder {
    const NAME: &'static str = "SignedOrder";
    const MAX_LEN: usize = Order::MAX_LEN + 64;
    fn validate(&self) -> Result<(), DecodeError> {
        self.order.validate()
    }
}

/// A belief: at most one signed order per peer, sorted by peer key (strictly
/// increasing, so one belief has one encoding). A belief is never signed itself.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Belief {
    /// The orders.
    pub orders: BoundedVec<SignedOrder, MAX_PEERS>,
}

impl Canonical for Belief {
    const NAME: &'static str = "Belief";
    const MAX_LEN: usize = 3 + MAX_PEERS * SignedOrder::MAX_LEN;
    fn validate(&self) -> Result<(), DecodeError> {
        ensure(
            Self::NAME,
            self.orders
                .windows(2)
                .all(|w| w[0].order.peer < w[1].order.peer),
            "orders are not sorted by strictly increasing peer key",
        )?;
        self.orders.iter().try_for_each(SignedOrder::validate)
    }
}

/// A challenge: "prove you hold the key of a staked peer".
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Challenge {
    /// The challenging peer's key.
    pub challenger: PublicKey,
    /// 32 fresh random bytes.
    pub token: Token,
}

impl Canonical for Challenge {
    const NAME: &'static str = "Challenge";
    const MAX_LEN: usize = 64;
}

/// The signed answer to a [`Challenge`]: the token bound to both keys (and, through
/// the sign-bytes, to the network), so it cannot be replayed to another challenger or
/// on another network.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChallengeResponse {
    /// Who asked.
    pub challenger: PublicKey,
    /// Who answers (the signing peer).
    pub responder: PublicKey,
    /// The challenger's token.
    pub token: Token,
}

impl Canonical for ChallengeResponse {
    const NAME: &'static str = "ChallengeResponse";
    const MAX_LEN: usize = 96;
}

impl Signable for ChallengeResponse {
    const KIND: SignKind = SignKind::ChallengeResponse;
}

/// A challenge response with its signature.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedChallengeResponse {
    /// The response.
    pub response: ChallengeResponse,
    /// Signature by `response.responder`.
    pub signature: Signature,
}

impl Canonical for SignedChallengeResponse {
    const NAME: &'static str = "SignedChallengeResponse";
    const MAX_LEN: usize = 96 + 64;
}
