//! Why a split or a combination of shares failed (its own module, so that the vault's
//! error enum can name it without depending on the shares code).

/// Why a split or a combination of shares failed. Shares are named by their place in
/// the order they were typed (1-based); no message ever quotes a share's words.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShareError {
    /// A word that is not in the SLIP-39 list.
    #[error(
        "share {share}: word {position} is not in the SLIP-39 word list (check its spelling against the written share)"
    )]
    UnknownWord {
        /// The share.
        share: usize,
        /// The word's place (1-based).
        position: usize,
    },
    /// A share of impossible length.
    #[error(
        "share {share} has {words} words, which no SLIP-39 share has (a cvx key's shares have 33 words): a word is missing or doubled"
    )]
    Length {
        /// The share.
        share: usize,
        /// Its word count.
        words: usize,
    },
    /// The RS1024 checksum fails.
    #[error(
        "share {share} fails its checksum: a word is mistyped, missing or swapped (retype that share from the paper)"
    )]
    Checksum {
        /// The share.
        share: usize,
    },
    /// Non-zero padding bits.
    #[error(
        "share {share} is not a valid SLIP-39 share (its padding bits are not zero); retype it"
    )]
    Padding {
        /// The share.
        share: usize,
    },
    /// Impossible parameters in one share.
    #[error("share {share} is not a valid SLIP-39 share: {reason}")]
    Parameters {
        /// The share.
        share: usize,
        /// What is wrong.
        reason: &'static str,
    },
    /// Two shares from different splits (or inconsistent groups).
    #[error(
        "share {share} does not belong with share {first}: their {field} differ (they come from different splits; use shares of one split only)"
    )]
    Mismatch {
        /// The share refused.
        share: usize,
        /// The share it was compared with.
        first: usize,
        /// What differs.
        field: &'static str,
    },
    /// The same group and member index twice.
    #[error(
        "share {share} has the same group and member number as share {other}; type a different share of that group"
    )]
    Duplicate {
        /// The share refused.
        share: usize,
        /// The earlier one.
        other: usize,
    },
    /// Not enough shares or groups.
    #[error("too few shares: {0}; nothing was written")]
    TooFew(String),
    /// More groups or members than the thresholds (the reference refuses those).
    #[error("too many shares: {0}; give exactly the threshold")]
    TooMany(String),
    /// The digest check failed.
    #[error(
        "the shares do not combine: the digest check failed (a share was altered, or comes from another split with the same identifier); nothing was written"
    )]
    Digest,
    /// A passphrase outside printable ASCII.
    #[error(
        "the SLIP-39 passphrase may only contain printable ASCII characters (space to ~), as SLIP-39 requires"
    )]
    Passphrase,
    /// Impossible split parameters.
    #[error("invalid split: {0}")]
    Plan(String),
    /// A secret of the wrong length.
    #[error(
        "the shares hold a {0}-byte secret, but a cvx key is 32 bytes: these are not shares of a cvx-vault key"
    )]
    SecretLength(usize),
    /// The retyped share differs from the one shown.
    #[error(
        "the retyped share {0} differs from the one shown; nothing was recorded (run shares split again, and destroy the shares written down so far)"
    )]
    Retyped(usize),
}
