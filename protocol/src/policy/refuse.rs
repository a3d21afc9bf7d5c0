//! Why the policy refused: the stable refusal codes and a refusal with its human detail.

use core::fmt;

use serde::{Deserialize, Serialize};

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
