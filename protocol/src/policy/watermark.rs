//! The watermark: everything a signer remembers so as never to equivocate, and the merge
//! rule of `cvx-signer import-watermark`.

use serde::{Deserialize, Serialize};

use crate::consensus::Checkpoint;
use crate::encoding::Canonical;
use crate::hash::Hash;
use crate::primitives::Timestamp;

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
