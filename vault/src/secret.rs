//! Secret values: the Ed25519 seed, the key plaintext, passphrases, recovery words.
//!
//! Each is its own type with no `Clone`, `Display` or `Serialize`, a redacted `Debug`,
//! and zeroized on drop.
//!
//! The seed, the signing key and the key plaintext live in cvx-sandbox's
//! [`Locked`] memory, the same mechanism cvx-signer uses: `memfd_secret` where the
//! kernel has it (out of the kernel's direct map, unreadable through /proc/PID/mem),
//! else an anonymous mapping with `mlock` + `MADV_DONTDUMP` + `MADV_WIPEONFORK`. So key
//! material is never swapped and never in a core dump. Bytes are filled in place: the
//! OS generator writes straight into the locked seed (`getrandom::fill`), age decrypts
//! straight into the locked plaintext, and signing keys are built with
//! `SigningKey::from_bytes` inside the mapping's initializer, whose stack frame
//! cvx-sandbox scrubs — never `SigningKey::generate`, which leaves a copy on the stack.
//! When the memory cannot be locked (a memory-lock limit of 0 for a non-root user) the
//! vault refuses with [`VaultError::Memory`] instead of handling a key in swappable
//! memory.
//!
//! Not locked (zeroized on drop only): passphrases (age takes them as its own heap
//! `SecretString`), recovery words (the `bip39` crate's heap value), the 64-byte BIP-39
//! seed and SLIP-10 nodes during a derivation, and age's internal chunk buffer while it
//! decrypts.

use core::fmt;

use age::secrecy::{ExposeSecret, SecretString};
use cvx_protocol::ledger::Transaction;
use cvx_protocol::{NetworkId, PublicKey, Signable, Signature, keyfile};
use cvx_sandbox::{Locked, Prefer};
use ed25519_dalek::{Signer as _, SigningKey};

use crate::error::{Result, VaultError};

/// Place the value `init` builds in locked memory (its frame is scrubbed afterwards).
pub(crate) fn locked<T>(what: &'static str, init: impl FnOnce() -> T) -> Result<Locked<T>> {
    Locked::new_with(0, Prefer::Auto, |_| {
        Ok::<T, core::convert::Infallible>(init())
    })
    .map_err(|e| VaultError::Memory {
        what,
        reason: e.to_string(),
    })
}

/// A 32-byte Ed25519 seed, in locked memory (zeroed with its mapping when dropped).
pub struct Seed(Locked<[u8; 32]>);

impl fmt::Debug for Seed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Seed(redacted)")
    }
}

impl Seed {
    /// 32 bytes from the operating system's generator, written straight into locked
    /// memory.
    ///
    /// # Errors
    /// [`VaultError::Memory`] when locked memory is not available;
    /// [`VaultError::Input`] when the OS generator fails.
    pub fn random() -> Result<Self> {
        let mut s = Self::zero()?;
        getrandom::fill(&mut s.bytes_mut()[..]).map_err(|e| VaultError::Input {
            what: "random bytes",
            reason: e.to_string(),
        })?;
        Ok(s)
    }

    /// An all-zero seed in locked memory, to be filled in place.
    ///
    /// # Errors
    /// [`VaultError::Memory`] when locked memory is not available.
    pub(crate) fn zero() -> Result<Self> {
        Ok(Self(locked("seed", || [0u8; 32])?))
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
    /// [`VaultError::Memory`] when locked memory is not available.
    pub fn public_key(&self) -> Result<PublicKey> {
        let sk = self.signing_key()?;
        PublicKey::from_bytes(sk.0.verifying_key().as_bytes()).map_err(|e| {
            VaultError::KeyMismatch {
                path: "(derived key)".into(),
                reason: format!("the seed derives an unusable public key ({e})"),
            }
        })
    }

    /// The signing key, built inside locked memory (dalek's type zeroizes itself on
    /// drop).
    ///
    /// # Errors
    /// [`VaultError::Memory`] when locked memory is not available.
    pub(crate) fn signing_key(&self) -> Result<KeyPair> {
        Ok(KeyPair(locked("signing key", || {
            SigningKey::from_bytes(self.bytes())
        })?))
    }

    /// The 72-byte key plaintext (`cvx_protocol::keyfile`) for this seed.
    ///
    /// # Errors
    /// As [`Seed::public_key`].
    pub fn key_plaintext(&self) -> Result<KeyPlaintext> {
        let public = self.public_key()?;
        let mut plain = KeyPlaintext::empty()?;
        plain.0.len = keyfile::LEN;
        let buf = plain.bytes_mut();
        buf[keyfile::SEED].copy_from_slice(&self.bytes()[..]);
        keyfile::frame(buf, &public).map_err(|e| VaultError::KeyMismatch {
            path: "(key plaintext)".into(),
            reason: e.to_string(),
        })?;
        Ok(plain)
    }
}

/// A signing key in locked memory (dalek's type zeroizes itself on drop).
pub(crate) struct KeyPair(Locked<SigningKey>);

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

    /// Sign a typed Convex transaction: pure Ed25519 over its CAD3 encoding, the only
    /// other thing the vault signs (docs/vault.md, "Convex network").
    pub(crate) fn sign_convex(&self, tx: &crate::convex::tx::Tx) -> [u8; 64] {
        self.0.sign(&tx.encode()).to_bytes()
    }
}

/// Room for a key file's plaintext plus one byte, so an over-long plaintext shows.
const PLAIN_ROOM: usize = keyfile::LEN + 1;

/// The bytes of a [`KeyPlaintext`] and how many of them are used (zeroed with their
/// mapping when dropped).
struct PlainBuf {
    bytes: [u8; PLAIN_ROOM],
    len: usize,
}

/// The 72-byte plaintext of a key file (magic, seed, public key), in locked memory.
pub struct KeyPlaintext(Locked<PlainBuf>);

impl fmt::Debug for KeyPlaintext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("KeyPlaintext(redacted)")
    }
}

impl KeyPlaintext {
    /// An empty plaintext in locked memory, to be filled in place.
    ///
    /// # Errors
    /// [`VaultError::Memory`] when locked memory is not available.
    pub(crate) fn empty() -> Result<Self> {
        Ok(Self(locked("key plaintext", || PlainBuf {
            bytes: [0u8; PLAIN_ROOM],
            len: 0,
        })?))
    }

    /// Fill in place: `fill` gets the whole room (`PLAIN_ROOM` bytes) and returns how
    /// many it wrote.
    ///
    /// # Errors
    /// Whatever `fill` returns.
    pub(crate) fn fill_with(
        &mut self,
        fill: impl FnOnce(&mut [u8]) -> Result<usize>,
    ) -> Result<()> {
        let n = fill(&mut self.0.bytes)?;
        self.0.len = n.min(PLAIN_ROOM);
        Ok(())
    }

    /// The used bytes, writable.
    fn bytes_mut(&mut self) -> &mut [u8] {
        let len = self.0.len;
        &mut self.0.bytes[..len]
    }

    /// The bytes (to encrypt or write).
    pub(crate) fn bytes(&self) -> &[u8] {
        &self.0.bytes[..self.0.len]
    }

    /// Check the layout, re-derive the public key from the seed and compare it with
    /// the recorded one; return the seed and the key.
    ///
    /// # Errors
    /// [`VaultError::KeyMismatch`] when the plaintext is not a cvx key file or the seed
    /// does not derive the recorded key.
    pub fn open(&self, path: &std::path::Path) -> Result<(Seed, PublicKey)> {
        let recorded = keyfile::public_key(self.bytes()).map_err(|e| VaultError::KeyMismatch {
            path: path.to_owned(),
            reason: e.to_string(),
        })?;
        let mut seed = Seed::zero()?;
        seed.bytes_mut()
            .copy_from_slice(&self.bytes()[keyfile::SEED]);
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

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// The VmFlags of the mapping holding `addr`, from /proc/self/smaps.
    fn flags_at(addr: usize) -> String {
        let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap();
        let mut in_it = false;
        let mut name = String::new();
        for line in smaps.lines() {
            let mut parts = line.split_whitespace();
            let range = parts.next().and_then(|r| r.split_once('-'));
            if let Some((a, b)) = range
                && let (Ok(a), Ok(b)) = (usize::from_str_radix(a, 16), usize::from_str_radix(b, 16))
            {
                in_it = (a..b).contains(&addr);
                name = parts.nth(4).unwrap_or("").to_owned();
                continue;
            }
            if in_it && let Some(flags) = line.strip_prefix("VmFlags:") {
                return format!("{name} {flags}");
            }
        }
        panic!("no mapping holds {addr:#x}");
    }

    pub(crate) fn assert_locked(what: &str, addr: usize) {
        let flags = flags_at(addr);
        assert!(
            flags.contains(" lo ") && flags.contains(" dd"),
            "{what} at {addr:#x} is not in locked, dump-excluded memory: {flags}"
        );
    }

    #[test]
    fn seed_signing_key_and_plaintext_live_in_locked_memory() {
        let seed = Seed::random().unwrap();
        assert_locked("seed", seed.bytes().as_ptr() as usize);
        let key = seed.signing_key().unwrap();
        assert_locked(
            "signing key",
            core::ptr::from_ref::<SigningKey>(&key.0) as usize,
        );
        let plain = seed.key_plaintext().unwrap();
        assert_eq!(plain.bytes().len(), keyfile::LEN);
        assert_locked("key plaintext", plain.bytes().as_ptr() as usize);
        let (back, public) = plain.open(std::path::Path::new("x")).unwrap();
        assert_eq!(back.bytes(), seed.bytes());
        assert_eq!(public, seed.public_key().unwrap());
        assert_locked("re-opened seed", back.bytes().as_ptr() as usize);
    }
}
