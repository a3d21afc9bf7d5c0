//! Stable result codes. The number and the name of a code never change; new codes are
//! only appended. docs/error-codes.md documents each one (a test keeps it in step).

use core::fmt;

use serde::{Deserialize, Serialize};

/// Why a transaction, a request or a frame failed. Encoded as postcard's enum tag, which
/// is the declaration index — the numbers below, which never change.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[repr(u8)]
pub enum ErrorCode {
    /// 0: the sequence number is not the origin account's sequence + 1.
    Sequence = 0,
    /// 1: the signature does not verify (strictly) under the origin's current key.
    Signature = 1,
    /// 2: the origin cannot pay the amount plus the fee.
    Funds = 2,
    /// 3: a named account or peer does not exist.
    Nobody = 3,
    /// 4: the origin is not allowed to do this (e.g. not the peer's controller).
    Trust = 4,
    /// 5: the ledger or peer is in a state that does not allow this now.
    State = 5,
    /// 6: the bytes are not a valid canonical encoding.
    Format = 6,
    /// 7: the peer is overloaded; retry later.
    Load = 7,
    /// 8: the peer cannot take part in consensus now (partitioned or syncing); submit
    /// through another peer or retry later.
    Network = 8,
    /// 9: no result within the time allowed; the transaction may still be finalized.
    Timeout = 9,
    /// 10: an argument is out of range (zero amount, stake below minimum, self-transfer).
    Argument = 10,
    /// 11: the thing to be created already exists (e.g. a peer with that key).
    Exists = 11,
    /// 12: the signer refused to sign (the refusal carries its own policy code).
    Refused = 12,
}

impl ErrorCode {
    /// Every code, in numeric order.
    pub const ALL: [Self; 13] = [
        Self::Sequence,
        Self::Signature,
        Self::Funds,
        Self::Nobody,
        Self::Trust,
        Self::State,
        Self::Format,
        Self::Load,
        Self::Network,
        Self::Timeout,
        Self::Argument,
        Self::Exists,
        Self::Refused,
    ];

    /// The stable upper-case name.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Self::Sequence => "SEQUENCE",
            Self::Signature => "SIGNATURE",
            Self::Funds => "FUNDS",
            Self::Nobody => "NOBODY",
            Self::Trust => "TRUST",
            Self::State => "STATE",
            Self::Format => "FORMAT",
            Self::Load => "LOAD",
            Self::Network => "NETWORK",
            Self::Timeout => "TIMEOUT",
            Self::Argument => "ARGUMENT",
            Self::Exists => "EXISTS",
            Self::Refused => "REFUSED",
        }
    }

    /// The stable number.
    #[must_use]
    pub const fn number(self) -> u8 {
        self as u8
    }

    /// Look a code up by name.
    #[must_use]
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.name() == name)
    }
}

impl fmt::Debug for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Canonical;

    #[test]
    fn codes_are_numbered_by_position_and_encode_as_their_number() {
        for (i, c) in ErrorCode::ALL.iter().enumerate() {
            assert_eq!(usize::from(c.number()), i);
            assert_eq!(ErrorCode::from_name(c.name()), Some(*c));
            // postcard encodes the enum tag as a varint; below 128 it is one byte.
            assert_eq!(
                crate::ledger::TxOutcome::Failed(*c).encode(),
                vec![1, c.number()]
            );
        }
    }

    #[test]
    fn error_codes_doc_lists_every_code() {
        let doc = include_str!("../../docs/error-codes.md");
        for c in ErrorCode::ALL {
            let row = format!("| {} | `{}` |", c.number(), c.name());
            assert!(
                doc.contains(&row),
                "docs/error-codes.md lacks the row starting {row}"
            );
        }
    }
}
