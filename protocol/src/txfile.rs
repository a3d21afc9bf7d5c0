//! The signed-transaction file: what cvx-vault writes and `cvx-peer submit` reads.
//!
//! ```text
//! offset 0   magic          8 bytes  "CVXTXF1\n"
//! offset 8   version        varint   FORMAT_VERSION (1 today: one byte, 0x01)
//! then       network id     32 bytes the network the signature is for (hash of its genesis)
//! then       signed tx      the canonical encoding of a ledger::SignedTransaction
//! ```
//!
//! The whole file is the canonical postcard encoding of [`TxFile`]; it is decoded only
//! through [`Canonical::decode`] (length cap first, no trailing bytes, re-encoding must
//! be byte-identical), and [`TxFile::validate`] refuses a wrong magic or an unknown
//! version. The network id is carried so that a submitter can refuse a file made for
//! another network before sending it anywhere, and so that [`TxFile::verify`] can check
//! the signature without being told the network separately; the peer still checks
//! the signature against its own network id and the origin's current key.

use serde::{Deserialize, Serialize};

use crate::encoding::{Canonical, DecodeError, byte_array, ensure};
use crate::ledger::SignedTransaction;
use crate::primitives::{NetworkId, PublicKey};
use crate::sign::BadSignature;

/// The magic at the start of every signed-transaction file.
pub const MAGIC: [u8; 8] = *b"CVXTXF1\n";

/// A signed transaction for one network, as a file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TxFile {
    /// Always [`MAGIC`].
    #[serde(with = "byte_array")]
    pub magic: [u8; 8],
    /// Always [`crate::FORMAT_VERSION`] for files this crate writes.
    pub version: u16,
    /// The network the signature is for.
    pub network: NetworkId,
    /// The transaction and its signature.
    pub signed: SignedTransaction,
}

impl TxFile {
    /// Wrap a signed transaction for `network`.
    #[must_use]
    pub const fn new(network: NetworkId, signed: SignedTransaction) -> Self {
        Self {
            magic: MAGIC,
            version: crate::FORMAT_VERSION,
            network,
            signed,
        }
    }

    /// Strict verification of the signature under `key` for the file's network.
    ///
    /// # Errors
    /// [`BadSignature`] when it does not verify.
    pub fn verify(&self, key: &PublicKey) -> Result<(), BadSignature> {
        key.verify(&self.network, &self.signed.tx, &self.signed.signature)
    }
}

impl Canonical for TxFile {
    const NAME: &'static str = "TxFile";
    // magic + version varint (u16 <= 3 bytes) + network id + the signed transaction.
    const MAX_LEN: usize = 8 + 3 + 32 + SignedTransaction::MAX_LEN;

    fn validate(&self) -> Result<(), DecodeError> {
        ensure(
            Self::NAME,
            self.magic == MAGIC,
            "not a cvx signed-transaction file (bad magic)",
        )?;
        ensure(
            Self::NAME,
            self.version == crate::FORMAT_VERSION,
            "unsupported signed-transaction file version",
        )?;
        self.signed.validate()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::Hash;
    use crate::ledger::{Action, Transaction};
    use crate::primitives::{Address, Amount, Signature};

    fn key(seed: u8) -> PublicKey {
        let sk = ed25519_dalek::SigningKey::from_bytes(&[seed; 32]);
        PublicKey::from_bytes(sk.verifying_key().as_bytes()).unwrap()
    }

    fn sample() -> TxFile {
        let tx = Transaction {
            origin: Address(7),
            sequence: 3,
            action: Action::SetPeerStake {
                peer: key(2),
                stake: Amount::ZERO,
            },
        };
        TxFile::new(
            NetworkId(Hash([0xab; 32])),
            SignedTransaction {
                tx,
                signature: Signature([0x5a; 64]),
            },
        )
    }

    #[test]
    fn layout_is_magic_version_network_then_signed_tx() {
        let f = sample();
        let bytes = f.encode();
        assert_eq!(&bytes[..8], b"CVXTXF1\n");
        assert_eq!(bytes[8], 1);
        assert_eq!(&bytes[9..41], &[0xab; 32]);
        assert_eq!(&bytes[41..], f.signed.encode().as_slice());
        assert_eq!(TxFile::decode(&bytes).unwrap(), f);
    }

    #[test]
    fn strict_decode_refuses_bad_magic_version_trailing_and_truncation() {
        let bytes = sample().encode();
        let mut m = bytes.clone();
        m[0] ^= 1;
        assert!(matches!(
            TxFile::decode(&m),
            Err(DecodeError::Invalid { .. })
        ));
        let mut v = bytes.clone();
        v[8] = 2;
        assert!(matches!(
            TxFile::decode(&v),
            Err(DecodeError::Invalid { .. })
        ));
        let mut t = bytes.clone();
        t.push(0);
        assert!(matches!(
            TxFile::decode(&t),
            Err(DecodeError::Trailing { .. })
        ));
        for n in 0..bytes.len() {
            assert!(TxFile::decode(&bytes[..n]).is_err(), "truncated to {n}");
        }
    }

    #[test]
    fn signature_checks_bind_the_network() {
        let sk = ed25519_dalek::SigningKey::from_bytes(&[9; 32]);
        let pk = PublicKey::from_bytes(sk.verifying_key().as_bytes()).unwrap();
        let mut f = sample();
        let sb = crate::sign::Signable::sign_bytes(&f.signed.tx, &f.network);
        f.signed.signature = Signature(ed25519_dalek::Signer::sign(&sk, sb.as_bytes()).to_bytes());
        assert!(f.verify(&pk).is_ok());
        f.network = NetworkId(Hash([0xac; 32]));
        assert!(f.verify(&pk).is_err());
    }
}
