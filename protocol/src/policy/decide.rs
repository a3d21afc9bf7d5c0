//! The decision rules: the policy of one signer, its parameters and its answer, and the
//! reference predicates for two values that equivocate.

use serde::{Deserialize, Serialize};

use super::refuse::{Refusal, RefuseCode};
use super::request::{Request, SignRequest};
use super::watermark::{BlockMark, OrderMark, Watermark};
use crate::consensus::{BlockHeader, ChallengeResponse, Checkpoint, Order};
use crate::encoding::Canonical;
use crate::hash::{Hash, chain_over};
use crate::primitives::{NetworkId, PublicKey, Timestamp};
use crate::sign::{SignBytes, Signable};

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
