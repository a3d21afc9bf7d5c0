//! Secret values: the Ed25519 seed, the key plaintext, passphrases, recovery words.
//!
//! Each is its own type with no `Clone`, `Display` or `Serialize`, a redacted `Debug`,
//! and zeroized on drop. Bytes come from the OS straight into the zeroizing buffer
//! (`getrandom::fill`), and signing keys are built with `SigningKey::from_bytes` on the
//! heap-held seed — never `SigningKey::generate`, which leaves a copy on the stack.
//!
//! Not yet done (follow-up): the buffers live in ordinary heap memory, not locked,
//! dump-excluded memory; cvx-sandbox's locked-memory type replaces `Zeroizing` here
//! once it lands (cvx-vault must not depend on it before then).

use core::fmt;

use age::secrecy::{ExposeSecret, SecretString};
use cvx_protocol::ledger::Transaction;
use cvx_protocol::{NetworkId, PublicKey, Signable, Signature, keyfile};
use ed25519_dalek::{Signer as _, SigningKey};
use zeroize::Zeroizing;

use crate::error::{Result, VaultError};

/// A 32-byte Ed25519 seed.
pub struct Seed(Box<Zeroizing<[u8; 32]>>);

impl fmt::Debug for Seed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Seed(redacted)")
    }
}

impl Seed {
    /// 32 bytes from the operating system's generator, written straight into the
    /// zeroizing heap buffer.
    ///
    /// # Errors
    /// [`VaultError::Input`] when the OS generator fails.
    pub fn random() -> Result<Self> {
        let mut s = Self::zero();
        getrandom::fill(&mut s.bytes_mut()[..]).map_err(|e| VaultError::Input {
            what: "random bytes",
            reason: e.to_string(),
        })?;
        Ok(s)
    }

    /// An all-zero seed to be filled in place.
    pub(crate) fn zero() -> Self {
        Self(Box::new(Zeroizing::new([0u8; 32])))
    }

    /// The seed bytes, for filling in place.
    pub(crate) fn bytes_mut(&mut self) -> &mut [u8; 32] {
        &mut self.0
    }

    /// The seed bytes.
    pub(crate) fn bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The public key this seed derives.
    ///
    /// # Errors
    /// [`VaultError::KeyMismatch`] in the (cryptographically negligible) case that the
    /// derived point is weak.
    pub fn public_key(&self) -> Result<PublicKey> {
        let sk = self.signing_key();
        PublicKey::from_bytes(sk.0.verifying_key().as_bytes()).map_err(|e| {
            VaultError::KeyMismatch {
                path: "(derived key)".into(),
                reason: format!("the seed derives an unusable public key ({e})"),
            }
        })
    }

    /// The signing key, held on the heap and zeroized on drop.
    pub(crate) fn signing_key(&self) -> KeyPair {
        KeyPair(Box::new(SigningKey::from_bytes(self.bytes())))
    }

    /// The 72-byte key plaintext (`cvx_protocol::keyfile`) for this seed.
    ///
    /// # Errors
    /// As [`Seed::public_key`].
    pub fn key_plaintext(&self) -> Result<KeyPlaintext> {
        let public = self.public_key()?;
        let mut buf = Zeroizing::new(vec![0u8; keyfile::LEN]);
        buf[keyfile::SEED].copy_from_slice(&self.bytes()[..]);
        keyfile::frame(&mut buf, &public).map_err(|e| VaultError::KeyMismatch {
            path: "(key plaintext)".into(),
            reason: e.to_string(),
        })?;
        Ok(KeyPlaintext(buf))
    }
}

/// A signing key (dalek's type zeroizes itself on drop; it lives on the heap).
pub(crate) struct KeyPair(Box<SigningKey>);

impl fmt::Debug for KeyPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("KeyPair(redacted)")
    }
}

impl KeyPair {
    /// Sign a transaction's sign-bytes for `network` (the only thing the vault signs).
    pub(crate) fn sign_tx(&self, network: &NetworkId, tx: &Transaction) -> Signature {
        let sb = tx.sign_bytes(network);
        Signature(self.0.sign(sb.as_bytes()).to_bytes())
    }
}

/// The 72-byte plaintext of a key file (magic, seed, public key).
pub struct KeyPlaintext(Zeroizing<Vec<u8>>);

impl fmt::Debug for KeyPlaintext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("KeyPlaintext(redacted)")
    }
}

impl KeyPlaintext {
    /// Wrap decrypted bytes.
    pub(crate) const fn from_zeroizing(b: Zeroizing<Vec<u8>>) -> Self {
        Self(b)
    }

    /// The bytes (to encrypt or write).
    pub(crate) fn bytes(&self) -> &[u8] {
        &self.0
    }

    /// Check the layout, re-derive the public key from the seed and compare it with
    /// the recorded one; return the seed and the key.
    ///
    /// # Errors
    /// [`VaultError::KeyMismatch`] when the plaintext is not a cvx key file or the seed
    /// does not derive the recorded key.
    pub fn open(&self, path: &std::path::Path) -> Result<(Seed, PublicKey)> {
        let recorded = keyfile::public_key(&self.0).map_err(|e| VaultError::KeyMismatch {
            path: path.to_owned(),
            reason: e.to_string(),
        })?;
        let mut seed = Seed::zero();
        seed.bytes_mut().copy_from_slice(&self.0[keyfile::SEED]);
        let derived = seed.public_key()?;
        if derived != recorded {
            return Err(VaultError::KeyMismatch {
                path: path.to_owned(),
                reason: format!(
                    "the seed derives public key {derived}, but the file records {recorded} (the key file is corrupt)"
                ),
            });
        }
        Ok((seed, derived))
    }
}

/// A passphrase, in age's secret string (zeroized on drop, no Display).
pub struct Passphrase(SecretString);

impl fmt::Debug for Passphrase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Passphrase(redacted)")
    }
}

impl Passphrase {
    /// Build from the text in a zeroizing buffer: the text is copied once into an
    /// allocation of exactly its length (so age's `Box<str>` conversion does not
    /// reallocate and leave a copy behind).
    ///
    /// # Errors
    /// [`VaultError::EmptyPassphrase`] for an empty passphrase.
    pub fn from_text(text: &str) -> Result<Self> {
        if text.is_empty() {
            return Err(VaultError::EmptyPassphrase);
        }
        let mut s = String::with_capacity(text.len());
        s.push_str(text);
        Ok(Self(SecretString::from(s)))
    }

    /// age's form.
    pub(crate) fn secret(&self) -> SecretString {
        let t = self.0.expose_secret();
        let mut s = String::with_capacity(t.len());
        s.push_str(t);
        SecretString::from(s)
    }

    /// Compare two passphrases.
    pub(crate) fn same_as(&self, other: &Self) -> bool {
        self.0.expose_secret() == other.0.expose_secret()
    }
}
