//! The signing policy: a pure function from (watermark, request, time) to a decision.
//!
//! cvx-signer holds the peer key and asks [`Policy::decide`] before every signature; a
//! compromised peer process can send any request, so these rules are what stands between
//! it and an equivocation. The rules (each has named tests in `tests/policy_table.rs`):
//!
//! * every request names the network; another network is refused (`WRONG_NETWORK`);
//! * the value must name the signer's own key as proposer / peer / responder (`WRONG_KEY`);
//! * an identical repeat of the last signed block or order is allowed, watermark unchanged
//!   (Ed25519 is deterministic, so the same signature comes back);
//! * blocks: timestamps strictly increase (`BLOCK_NOT_NEWER`), are at most
//!   `now + max_future_skew_ms` (`BLOCK_FUTURE`), and declare at most `max_block_txs`
//!   transactions (`BLOCK_TOO_MANY_TX`);
//! * orders: points consistent `checkpoint <= finality <= consensus <= proposal <= length`
//!   (`ORDER_INCONSISTENT`); timestamps strictly increase (`ORDER_NOT_NEWER`) and are at
//!   most `now + skew` (`ORDER_FUTURE`); consensus and finality never decrease
//!   (`CONSENSUS_REGRESSED`, `FINALITY_REGRESSED`); and the order's chain value at the
//!   previously signed consensus point equals the one recorded then (`PREFIX_CONFLICT`),
//!   so two signed orders never disagree about a consensus prefix. When the order's
//!   checkpoint is above the recorded point, the request carries the block ids in between
//!   (`bridge`) so the signer can link the two (`PREFIX_UNKNOWN` when it cannot);
//! * challenge responses: only over a 32-byte token bound to the challenger's key (not
//!   the signer's own) and the network; an all-zero token is refused.
//!
//! Transactions are never signed by the peer key: [`SignRequest`] has no such variant.

use core::fmt;

use serde::{Deserialize, Serialize};

use crate::consensus::{BlockHeader, ChallengeResponse, Checkpoint, MAX_ORDER_BLOCKS, Order};
use crate::encoding::{BoundedVec, Canonical, DecodeError};
use crate::hash::{Hash, chain_over};
use crate::primitives::{NetworkId, PublicKey, Timestamp};
use crate::sign::{SignBytes, Signable};

/// Cap on the bridge of block ids an order request may carry.
/// (A full order plus a full bridge must fit the signer's 64 KiB frame: 1024 + 1016 ids
/// leave room for the rest of the request.)
pub const MAX_BRIDGE: usize = MAX_ORDER_BLOCKS - 8;

/// Policy parameters (defaults in `policies/signing.toml`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyParams {
    /// How far in the future (by the signer's clock) a block or order may be dated.
    pub max_future_skew_ms: u64,
    /// Most transactions a signed block may declare (at most the genesis cap).
    pub max_block_txs: u32,
}

impl Default for PolicyParams {
    fn default() -> Self {
        Self {
            max_future_skew_ms: 30_000,
            max_block_txs: 1024,
        }
    }
}

/// The last signed block.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockMark {
    /// Its timestamp.
    pub timestamp: Timestamp,
    /// Its id (header hash).
    pub id: Hash,
}

/// The last signed order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderMark {
    /// Its timestamp.
    pub timestamp: Timestamp,
    /// Its hash.
    pub id: Hash,
}

/// Everything the signer must remember to never equivocate. Persisted durably before
/// each signature leaves the signer.
#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Watermark {
    /// Last signed block, if any.
    pub block: Option<BlockMark>,
    /// Last signed order, if any.
    pub order: Option<OrderMark>,
    /// The prefix committed to: position = the last signed consensus point, chain = the
    /// chain value there. `None` until the first order (a fresh signer can join a
    /// network at any height).
    pub consensus: Option<Checkpoint>,
    /// The last signed finality point.
    pub finality: u64,
}

impl Canonical for Watermark {
    const NAME: &'static str = "Watermark";
    const MAX_LEN: usize = (1 + 10 + 32) * 2 + (1 + 10 + 32) + 10;
}

/// The later of two optional marks by `key`; ties broken by the key's hash part, so the
/// choice does not depend on the argument order.
fn later<T: Copy>(a: Option<T>, b: Option<T>, key: impl Fn(&T) -> (u64, Hash)) -> Option<T> {
    match (a, b) {
        (Some(x), Some(y)) => Some(if key(&y) > key(&x) { y } else { x }),
        (x, None) => x,
        (None, y) => y,
    }
}

impl Watermark {
    /// The merge rule of `cvx-signer import-watermark`: the per-field maximum. The last
    /// block and the last order are the ones with the later timestamp, the committed
    /// prefix the one at the higher consensus point (ties: the larger id or chain value,
    /// so the result does not depend on the order of the arguments), the finality point
    /// the higher. The result is at least as high as both inputs in every field (it
    /// never lowers anything), and the merge is idempotent, commutative and
    /// associative (tests: `protocol/tests/watermark_merge.rs`).
    ///
    /// A tie at one consensus point with two different chain values means the two
    /// states committed to conflicting prefixes (one key, two histories): see
    /// [`Self::prefix_disagreement`].
    #[must_use]
    pub fn merge(&self, other: &Self) -> Self {
        Self {
            block: later(self.block, other.block, |m| (m.timestamp.0, m.id)),
            order: later(self.order, other.order, |m| (m.timestamp.0, m.id)),
            consensus: later(self.consensus, other.consensus, |c| (c.position, c.chain)),
            finality: self.finality.max(other.finality),
        }
    }

    /// True when every field of `self` is at least that of `other` in the merge order
    /// (`self` refuses at least what `other` refuses).
    #[must_use]
    pub fn covers(&self, other: &Self) -> bool {
        self.merge(other) == *self
    }

    /// The consensus point at which `self` and `other` committed different chain values,
    /// if they did (only detectable at an equal point: between different points the
    /// blocks in between are not known here).
    #[must_use]
    pub fn prefix_disagreement(&self, other: &Self) -> Option<u64> {
        match (self.consensus, other.consensus) {
            (Some(a), Some(b)) if a.position == b.position && a.chain != b.chain => {
                Some(a.position)
            }
            _ => None,
        }
    }

    /// The high watermark of a signer whose last state is lost: every block and order
    /// with a timestamp up to `until` counts as signed (the marks carry the id
    /// `Hash::ZERO`, which no real value has, so nothing is a "repeat" of them). The
    /// committed prefix and the finality point are unknown and stay as they are in
    /// whatever this is merged with.
    #[must_use]
    pub fn high(until: Timestamp) -> Self {
        Self {
            block: Some(BlockMark {
                timestamp: until,
                id: Hash::ZERO,
            }),
            order: Some(OrderMark {
                timestamp: until,
                id: Hash::ZERO,
            }),
            consensus: None,
            finality: 0,
        }
    }
}

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

/// Why the policy refused. Names and numbers are stable (wire and audit log).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[repr(u8)]
pub enum RefuseCode {
    /// 0: the request is for another network.
    WrongNetwork = 0,
    /// 1: the value names a key other than the signer's.
    WrongKey = 1,
    /// 2: the signer is locked (breach button); only `cvx-signer unlock` on the host lifts it.
    Locked = 2,
    /// 3: block timestamp not after the last signed block's.
    BlockNotNewer = 3,
    /// 4: block dated beyond now + skew.
    BlockFuture = 4,
    /// 5: block declares more transactions than allowed.
    BlockTooManyTx = 5,
    /// 6: order timestamp not after the last signed order's.
    OrderNotNewer = 6,
    /// 7: order dated beyond now + skew.
    OrderFuture = 7,
    /// 8: order points are not consistent.
    OrderInconsistent = 8,
    /// 9: consensus point below the last signed one.
    ConsensusRegressed = 9,
    /// 10: finality point below the last signed one.
    FinalityRegressed = 10,
    /// 11: the order disagrees with the committed consensus prefix (equivocation).
    PrefixConflict = 11,
    /// 12: the order's checkpoint is above the committed prefix and no valid bridge links them.
    PrefixUnknown = 12,
    /// 13: a challenge response to the signer's own key.
    ChallengeSelf = 13,
    /// 14: a challenge response over an all-zero token.
    ChallengeZeroToken = 14,
    /// 15: the signer could not make the new watermark durable (disk error): nothing signed.
    StateUnavailable = 15,
    /// 16: the request is not a valid encoding.
    Malformed = 16,
    /// 17: the certificate is for another network.
    CertNetwork = 17,
    /// 18: a vote's consensus point cannot be reached from the anchor with the certificate's ids.
    CertMalformed = 18,
    /// 19: a vote is signed by a key outside the trusted (and the presented) stake table.
    CertUnknownSigner = 19,
    /// 20: a vote's signature does not verify.
    CertBadSignature = 20,
    /// 21: the votes hold at most 2/3 of the table's stake.
    CertWeakQuorum = 21,
    /// 22: the certificate's table change is not vouched for by more than 2/3 of the trusted table, or names another table below the trusted table's position.
    CertStaleTable = 22,
    /// 23: the certificate names a stake root other than the trusted one and no table with that root came with it.
    CertTableUnproven = 23,
    /// 24: a vote's finality (finality certificate) or consensus point (lock certificate) is below the anchor.
    CertNotCovered = 24,
    /// 25: the certificate's anchor is below the committed consensus point.
    CertBelowLock = 25,
    /// 26: the trusted stake table is older than the trust period (weak-subjectivity bound).
    CertTrustExpired = 26,
}

impl RefuseCode {
    /// Every code, in numeric order.
    pub const ALL: [Self; 27] = [
        Self::WrongNetwork,
        Self::WrongKey,
        Self::Locked,
        Self::BlockNotNewer,
        Self::BlockFuture,
        Self::BlockTooManyTx,
        Self::OrderNotNewer,
        Self::OrderFuture,
        Self::OrderInconsistent,
        Self::ConsensusRegressed,
        Self::FinalityRegressed,
        Self::PrefixConflict,
        Self::PrefixUnknown,
        Self::ChallengeSelf,
        Self::ChallengeZeroToken,
        Self::StateUnavailable,
        Self::Malformed,
        Self::CertNetwork,
        Self::CertMalformed,
        Self::CertUnknownSigner,
        Self::CertBadSignature,
        Self::CertWeakQuorum,
        Self::CertStaleTable,
        Self::CertTableUnproven,
        Self::CertNotCovered,
        Self::CertBelowLock,
        Self::CertTrustExpired,
    ];

    /// The stable upper-case name.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Self::WrongNetwork => "WRONG_NETWORK",
            Self::WrongKey => "WRONG_KEY",
            Self::Locked => "LOCKED",
            Self::BlockNotNewer => "BLOCK_NOT_NEWER",
            Self::BlockFuture => "BLOCK_FUTURE",
            Self::BlockTooManyTx => "BLOCK_TOO_MANY_TX",
            Self::OrderNotNewer => "ORDER_NOT_NEWER",
            Self::OrderFuture => "ORDER_FUTURE",
            Self::OrderInconsistent => "ORDER_INCONSISTENT",
            Self::ConsensusRegressed => "CONSENSUS_REGRESSED",
            Self::FinalityRegressed => "FINALITY_REGRESSED",
            Self::PrefixConflict => "PREFIX_CONFLICT",
            Self::PrefixUnknown => "PREFIX_UNKNOWN",
            Self::ChallengeSelf => "CHALLENGE_SELF",
            Self::ChallengeZeroToken => "CHALLENGE_ZERO_TOKEN",
            Self::StateUnavailable => "STATE_UNAVAILABLE",
            Self::Malformed => "MALFORMED",
            Self::CertNetwork => "CERT_NETWORK",
            Self::CertMalformed => "CERT_MALFORMED",
            Self::CertUnknownSigner => "CERT_UNKNOWN_SIGNER",
            Self::CertBadSignature => "CERT_BAD_SIGNATURE",
            Self::CertWeakQuorum => "CERT_WEAK_QUORUM",
            Self::CertStaleTable => "CERT_STALE_TABLE",
            Self::CertTableUnproven => "CERT_TABLE_UNPROVEN",
            Self::CertNotCovered => "CERT_NOT_COVERED",
            Self::CertBelowLock => "CERT_BELOW_LOCK",
            Self::CertTrustExpired => "CERT_TRUST_EXPIRED",
        }
    }
}

impl fmt::Debug for RefuseCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl fmt::Display for RefuseCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A refusal: the code and a human detail with the numbers involved.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refusal {
    /// Stable code.
    pub code: RefuseCode,
    /// What exactly was wrong.
    pub detail: String,
}

/// The policy's answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Sign `sign_bytes`, after making `watermark` durable.
    Allow {
        /// The new watermark (equal to the old one for a repeat or a challenge response).
        watermark: Watermark,
        /// What to sign.
        sign_bytes: SignBytes,
        /// True when this is an identical repeat of the last signed value.
        repeat: bool,
    },
    /// Do not sign.
    Refuse(Refusal),
}

impl Decision {
    /// The refusal code, if refused.
    #[must_use]
    pub fn refusal(&self) -> Option<RefuseCode> {
        match self {
            Self::Allow { .. } => None,
            Self::Refuse(r) => Some(r.code),
        }
    }
}

/// The policy of one signer: its key, its network, its parameters.
#[derive(Clone, Debug)]
pub struct Policy {
    /// The signer's public key.
    pub key: PublicKey,
    /// The one network it signs for.
    pub network: NetworkId,
    /// Parameters.
    pub params: PolicyParams,
}

fn refuse(code: RefuseCode, detail: String) -> Decision {
    Decision::Refuse(Refusal { code, detail })
}

impl Policy {
    /// Decide on `req` given the current watermark and the signer's clock.
    #[must_use]
    pub fn decide(&self, wm: &Watermark, req: &Request, now: Timestamp) -> Decision {
        if req.network != self.network {
            return refuse(
                RefuseCode::WrongNetwork,
                format!(
                    "request is for network {}, this signer signs only for {}",
                    req.network, self.network
                ),
            );
        }
        match &req.body {
            SignRequest::Block(h) => self.decide_block(wm, h, now),
            SignRequest::Order { order, bridge } => self.decide_order(wm, order, bridge, now),
            SignRequest::ChallengeResponse(r) => self.decide_challenge(wm, r),
        }
    }

    fn check_key(&self, who: &str, key: &PublicKey) -> Option<Decision> {
        (key != &self.key).then(|| {
            refuse(
                RefuseCode::WrongKey,
                format!("{who} is {key}, but this signer's key is {}", self.key),
            )
        })
    }

    fn check_future(
        &self,
        code: RefuseCode,
        what: &str,
        t: Timestamp,
        now: Timestamp,
    ) -> Option<Decision> {
        let limit = now.plus_ms(self.params.max_future_skew_ms);
        (t > limit).then(|| {
            refuse(
                code,
                format!(
                    "{what} timestamp {} is more than {} ms ahead of the signer's clock {}",
                    t.0, self.params.max_future_skew_ms, now.0
                ),
            )
        })
    }

    fn decide_block(&self, wm: &Watermark, h: &BlockHeader, now: Timestamp) -> Decision {
        if let Some(d) = self.check_key("the block's proposer", &h.proposer) {
            return d;
        }
        let id = h.hash();
        let sign_bytes = h.sign_bytes(&self.network);
        if let Some(last) = &wm.block {
            if last.id == id {
                return Decision::Allow {
                    watermark: wm.clone(),
                    sign_bytes,
                    repeat: true,
                };
            }
            if h.timestamp <= last.timestamp {
                return refuse(
                    RefuseCode::BlockNotNewer,
                    format!(
                        "block timestamp {} is not after the last signed block's {}",
                        h.timestamp.0, last.timestamp.0
                    ),
                );
            }
        }
        if let Some(d) = self.check_future(RefuseCode::BlockFuture, "block", h.timestamp, now) {
            return d;
        }
        if h.tx_count > self.params.max_block_txs {
            return refuse(
                RefuseCode::BlockTooManyTx,
                format!(
                    "block declares {} transactions, the cap is {}",
                    h.tx_count, self.params.max_block_txs
                ),
            );
        }
        let mut watermark = wm.clone();
        watermark.block = Some(BlockMark {
            timestamp: h.timestamp,
            id,
        });
        Decision::Allow {
            watermark,
            sign_bytes,
            repeat: false,
        }
    }

    fn decide_order(&self, wm: &Watermark, o: &Order, bridge: &[Hash], now: Timestamp) -> Decision {
        if let Some(d) = self.check_key("the order's peer", &o.peer) {
            return d;
        }
        if !o.points_consistent() {
            return refuse(
                RefuseCode::OrderInconsistent,
                format!(
                    "points must satisfy checkpoint {} <= finality {} <= consensus {} <= proposal {} <= length {}",
                    o.checkpoint.position,
                    o.finality,
                    o.consensus,
                    o.proposal,
                    o.len()
                ),
            );
        }
        let id = o.hash();
        let sign_bytes = o.sign_bytes(&self.network);
        if let Some(last) = &wm.order {
            if last.id == id {
                return Decision::Allow {
                    watermark: wm.clone(),
                    sign_bytes,
                    repeat: true,
                };
            }
            if o.timestamp <= last.timestamp {
                return refuse(
                    RefuseCode::OrderNotNewer,
                    format!(
                        "order timestamp {} is not after the last signed order's {}",
                        o.timestamp.0, last.timestamp.0
                    ),
                );
            }
        }
        if let Some(d) = self.check_future(RefuseCode::OrderFuture, "order", o.timestamp, now) {
            return d;
        }
        if o.finality < wm.finality {
            return refuse(
                RefuseCode::FinalityRegressed,
                format!(
                    "finality point {} is below the last signed {}",
                    o.finality, wm.finality
                ),
            );
        }
        if let Some(committed) = &wm.consensus {
            if o.consensus < committed.position {
                return refuse(
                    RefuseCode::ConsensusRegressed,
                    format!(
                        "consensus point {} is below the last signed {}",
                        o.consensus, committed.position
                    ),
                );
            }
            if let Err(r) = check_prefix(o, committed, bridge) {
                return Decision::Refuse(r);
            }
        }
        let Some(chain) = o.chain_at(o.consensus) else {
            // Unreachable: points_consistent() puts consensus inside [checkpoint, len].
            return refuse(
                RefuseCode::OrderInconsistent,
                "consensus point outside the order".to_owned(),
            );
        };
        let watermark = Watermark {
            block: wm.block,
            order: Some(OrderMark {
                timestamp: o.timestamp,
                id,
            }),
            consensus: Some(Checkpoint {
                position: o.consensus,
                chain,
            }),
            finality: o.finality,
        };
        Decision::Allow {
            watermark,
            sign_bytes,
            repeat: false,
        }
    }

    fn decide_challenge(&self, wm: &Watermark, r: &ChallengeResponse) -> Decision {
        if let Some(d) = self.check_key("the response's responder", &r.responder) {
            return d;
        }
        if r.challenger == self.key {
            return refuse(
                RefuseCode::ChallengeSelf,
                "the challenger is this signer's own key; a peer never challenges itself"
                    .to_owned(),
            );
        }
        if r.token.0 == [0; 32] {
            return refuse(
                RefuseCode::ChallengeZeroToken,
                "the challenge token is all zeros; tokens are 32 random bytes".to_owned(),
            );
        }
        Decision::Allow {
            watermark: wm.clone(),
            sign_bytes: r.sign_bytes(&self.network),
            repeat: false,
        }
    }
}

/// The order must agree with the committed prefix at `committed.position`.
fn check_prefix(o: &Order, committed: &Checkpoint, bridge: &[Hash]) -> Result<(), Refusal> {
    let refuse = |code, detail| Refusal { code, detail };
    let cp = o.checkpoint.position;
    if cp <= committed.position {
        // The order lists the blocks up to the committed point (consensus >= it).
        let ours = o.chain_at(committed.position).ok_or_else(|| {
            refuse(
                RefuseCode::OrderInconsistent,
                "committed point outside the order".to_owned(),
            )
        })?;
        if ours != committed.chain {
            return Err(refuse(
                RefuseCode::PrefixConflict,
                format!(
                    "the order's blocks up to position {} differ from those of the last signed consensus \
                     (chain {} vs signed {}): signing would equivocate",
                    committed.position, ours, committed.chain
                ),
            ));
        }
        return Ok(());
    }
    let gap = cp - committed.position;
    if bridge.len() as u64 != gap {
        return Err(refuse(
            RefuseCode::PrefixUnknown,
            format!(
                "the order's checkpoint {cp} is above the committed consensus point {}; the request must \
                 carry the {gap} block ids in between (it carries {})",
                committed.position,
                bridge.len()
            ),
        ));
    }
    let linked = chain_over(&committed.chain, bridge);
    if linked != o.checkpoint.chain {
        return Err(refuse(
            RefuseCode::PrefixConflict,
            format!(
                "the bridge from the committed point {} does not lead to the order's checkpoint chain at {cp}: \
                 the order is on another chain",
                committed.position
            ),
        ));
    }
    Ok(())
}

/// The reference predicate for "two orders equivocate": both list the blocks at the
/// lower of their consensus points and their chain values there differ. (Where one
/// order's checkpoint is above the other's consensus point the pair alone cannot tell;
/// the signer's stronger guarantee — every signed order extends the prefix committed by
/// the previous one — is checked over whole histories by the property tests.)
#[must_use]
pub fn orders_conflict(a: &Order, b: &Order) -> bool {
    let k = a.consensus.min(b.consensus);
    match (a.chain_at(k), b.chain_at(k)) {
        (Some(x), Some(y)) => x != y,
        _ => false,
    }
}

/// The reference predicate for "two block headers equivocate": the same proposer signed
/// two different blocks with the same timestamp.
#[must_use]
pub fn blocks_conflict(a: &BlockHeader, b: &BlockHeader) -> bool {
    a.proposer == b.proposer && a.timestamp == b.timestamp && a != b
}
