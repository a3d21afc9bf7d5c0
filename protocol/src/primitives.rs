//! Primitive newtypes. Each one validates on construction and on decode, so a value of
//! the type is always a valid one.

use core::fmt;

use ed25519_dalek::VerifyingKey;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::encoding::{BoundedString, byte_array, field_error};
use crate::hash::Hash;

/// The total number of coins that can ever exist (as in Convex: 10^18 base units).
/// Every [`Amount`] is at most this, so sums of a few amounts cannot overflow `u64`.
pub const MAX_SUPPLY: u64 = 1_000_000_000_000_000_000;

/// A quantity of coins, `0..=MAX_SUPPLY`. Arithmetic is checked: no silent overflow,
/// no going below zero, no exceeding the supply.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize)]
pub struct Amount(u64);

impl Amount {
    /// Zero coins.
    pub const ZERO: Self = Self(0);

    /// `v` coins, if `v <= MAX_SUPPLY`.
    #[must_use]
    pub const fn new(v: u64) -> Option<Self> {
        if v <= MAX_SUPPLY { Some(Self(v)) } else { None }
    }

    /// The number of base units.
    #[must_use]
    pub const fn get(self) -> u64 {
        self.0
    }

    /// `self + rhs`, or `None` past the supply.
    #[must_use]
    pub const fn checked_add(self, rhs: Self) -> Option<Self> {
        match self.0.checked_add(rhs.0) {
            Some(v) => Self::new(v),
            None => None,
        }
    }

    /// `self - rhs`, or `None` below zero.
    #[must_use]
    pub const fn checked_sub(self, rhs: Self) -> Option<Self> {
        match self.0.checked_sub(rhs.0) {
            Some(v) => Some(Self(v)),
            None => None,
        }
    }

    /// True for zero.
    #[must_use]
    pub const fn is_zero(self) -> bool {
        self.0 == 0
    }
}

impl fmt::Debug for Amount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl fmt::Display for Amount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl<'de> Deserialize<'de> for Amount {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Self::new(u64::deserialize(d)?)
            .ok_or_else(|| field_error("amount above the maximum supply"))
    }
}

/// An account address: its index in the account table, assigned in creation order.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize)]
pub struct Address(pub u64);

impl fmt::Debug for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// Milliseconds since the Unix epoch (UTC).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize)]
pub struct Timestamp(pub u64);

impl Timestamp {
    /// `self + ms`, saturating at `u64::MAX` (a time that far out is refused anyway).
    #[must_use]
    pub const fn plus_ms(self, ms: u64) -> Self {
        Self(self.0.saturating_add(ms))
    }

    /// `self - ms`, saturating at zero.
    #[must_use]
    pub const fn minus_ms(self, ms: u64) -> Self {
        Self(self.0.saturating_sub(ms))
    }
}

impl fmt::Debug for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}ms", self.0)
    }
}

/// The id of a network: the hash of its genesis encoding. Part of every sign-bytes, so
/// a signature made for one network is worthless on every other.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize)]
pub struct NetworkId(pub Hash);

impl fmt::Debug for NetworkId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "net{:?}", self.0)
    }
}

impl fmt::Display for NetworkId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

/// Slots of the per-thread memo of validated keys ([`PublicKey::from_bytes`]).
const KEY_MEMO_SLOTS: usize = 64;

std::thread_local! {
    /// Validated keys, direct-mapped by their first and last byte.
    static KEY_MEMO: core::cell::RefCell<[Option<VerifyingKey>; KEY_MEMO_SLOTS]> =
        const { core::cell::RefCell::new([None; KEY_MEMO_SLOTS]) };
}

/// An Ed25519 public key that is a valid, non-small-order curve point.
///
/// Stored decompressed so verification does not decompress again.
#[derive(Clone, Copy)]
pub struct PublicKey(VerifyingKey);

/// Why 32 bytes are not a public key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// Not the encoding of a curve point.
    #[error("not a valid Ed25519 point encoding")]
    NotAPoint,
    /// A small-order point: signatures under it prove nothing.
    #[error("a small-order (weak) Ed25519 key")]
    Weak,
}

impl PublicKey {
    /// Validate 32 bytes as a public key.
    ///
    /// # Errors
    /// [`KeyError`] when the bytes are not a point or are a small-order point.
    pub fn from_bytes(bytes: &[u8; 32]) -> Result<Self, KeyError> {
        // Validation costs a point decompression (a field exponentiation), paid on
        // every decode of a value that names a key — for
        // the signer, every request names its own key. A small per-thread memo of keys
        // that passed returns the identical value for the identical 32 bytes; failures are
        // not remembered.
        let slot = usize::from(bytes[0] ^ bytes[31]) % KEY_MEMO_SLOTS;
        let hit = KEY_MEMO.with(|m| {
            m.borrow()[slot]
                .filter(|vk| vk.as_bytes() == bytes)
                .map(Self)
        });
        if let Some(k) = hit {
            return Ok(k);
        }
        let k = Self::validate(bytes)?;
        KEY_MEMO.with(|m| m.borrow_mut()[slot] = Some(k.0));
        Ok(k)
    }

    fn validate(bytes: &[u8; 32]) -> Result<Self, KeyError> {
        // One key has one byte form. `from_bytes` reduces y modulo p, so the 19 values
        // y >= p would name the same points as y - p: refused here, by comparing bytes.
        // The other non-canonical form, x = 0 with the sign bit set, exists only for
        // y = 1 and y = -1, two small-order points that `is_weak` refuses. This is what
        // the point's own encoding round-tripping checks, without a second field
        // inversion (half the cost: 4.7 against 9.2 us a key here; a 10^6-account
        // genesis is decoded by every peer and every signer).
        let vk = VerifyingKey::from_bytes(bytes).map_err(|_| KeyError::NotAPoint)?;
        if vk.is_weak() {
            return Err(KeyError::Weak);
        }
        if !y_is_canonical(bytes) {
            return Err(KeyError::NotAPoint);
        }
        Ok(Self(vk))
    }

    /// The 32-byte encoding.
    #[must_use]
    pub fn as_bytes(&self) -> &[u8; 32] {
        self.0.as_bytes()
    }

    /// Lower-case hex.
    #[must_use]
    pub fn to_hex(&self) -> String {
        hex::encode(self.as_bytes())
    }

    /// Parse 64 hex digits.
    ///
    /// # Errors
    /// When the text is not 64 hex digits or not a valid key.
    pub fn from_hex(s: &str) -> Result<Self, String> {
        let mut out = [0u8; 32];
        hex::decode_to_slice(s.trim(), &mut out)
            .map_err(|_| "a public key is 64 hex digits".to_owned())?;
        Self::from_bytes(&out).map_err(|e| e.to_string())
    }

    /// The dalek key, for verification.
    #[must_use]
    pub const fn verifying_key(&self) -> &VerifyingKey {
        &self.0
    }
}

/// Whether the y coordinate of a point encoding (its low 255 bits) is below the field
/// prime p = 2^255 - 19, that is, written in its one canonical form.
fn y_is_canonical(bytes: &[u8; 32]) -> bool {
    let top_is_max = bytes[31] & 0x7f == 0x7f;
    let middle_is_max = bytes[1..31].iter().all(|b| *b == 0xff);
    !(top_is_max && middle_is_max && bytes[0] >= 0xed)
}

impl PartialEq for PublicKey {
    fn eq(&self, other: &Self) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}
impl Eq for PublicKey {}
impl PartialOrd for PublicKey {
    fn partial_cmp(&self, other: &Self) -> Option<core::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for PublicKey {
    fn cmp(&self, other: &Self) -> core::cmp::Ordering {
        self.as_bytes().cmp(other.as_bytes())
    }
}
impl core::hash::Hash for PublicKey {
    fn hash<H: core::hash::Hasher>(&self, state: &mut H) {
        self.as_bytes().hash(state);
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "key:{}", &self.to_hex()[..12])
    }
}

impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl Serialize for PublicKey {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.as_bytes().serialize(s)
    }
}

impl<'de> Deserialize<'de> for PublicKey {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let bytes = <[u8; 32]>::deserialize(d)?;
        Self::from_bytes(&bytes).map_err(|e| {
            field_error(match e {
                KeyError::NotAPoint => "public key is not a valid Ed25519 point",
                KeyError::Weak => "public key is a small-order (weak) point",
            })
        })
    }
}

/// A 64-byte Ed25519 signature (`R ‖ s`). Any 64 bytes decode; strict verification
/// rejects non-canonical `s` and small-order `R`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Signature(#[serde(with = "byte_array")] pub [u8; 64]);

impl Signature {
    /// Lower-case hex.
    #[must_use]
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl fmt::Debug for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sig:{}", &self.to_hex()[..12])
    }
}

/// A 32-byte random challenge token.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Token(pub [u8; 32]);

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "token:{}", &hex::encode(self.0)[..12])
    }
}

/// A network name: printable ASCII, 1 to 64 bytes.
pub type Name = BoundedString<64>;

/// A peer's public endpoint, `host:port`: at most 255 bytes; the host is a DNS name,
/// an IPv4 address, or a bracketed IPv6 address; the port is 1..=65535.
#[derive(Clone, PartialEq, Eq, Hash, Serialize)]
pub struct HostAddr(BoundedString<255>);

impl HostAddr {
    /// Validate `host:port`.
    ///
    /// # Errors
    /// A static reason naming what is wrong.
    pub fn new(s: &str) -> Result<Self, &'static str> {
        let inner = BoundedString::<255>::new(s)?;
        let (host, port) = s.rsplit_once(':').ok_or("a host address is host:port")?;
        if host.is_empty() {
            return Err("the host part of host:port is empty");
        }
        let port_ok = !port.is_empty()
            && port.len() <= 5
            && port.bytes().all(|b| b.is_ascii_digit())
            && !(port.len() > 1 && port.starts_with('0'))
            && port.parse::<u32>().is_ok_and(|p| (1..=65535).contains(&p));
        if !port_ok {
            return Err("the port of host:port must be 1..65535 without leading zeros");
        }
        let host_ok = if let Some(v6) = host.strip_prefix('[') {
            v6.strip_suffix(']').is_some_and(|a| {
                !a.is_empty()
                    && a.bytes()
                        .all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.')
            })
        } else {
            host.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
        };
        if !host_ok {
            return Err("the host must be a DNS name, an IPv4 address or [IPv6]");
        }
        Ok(Self(inner))
    }

    /// The text.
    #[must_use]
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }
}

impl fmt::Debug for HostAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl fmt::Display for HostAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for HostAddr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = BoundedString::<255>::deserialize(d)?;
        Self::new(s.as_str()).map_err(field_error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amount_arithmetic_is_checked() {
        let max = Amount::new(MAX_SUPPLY).unwrap();
        assert!(Amount::new(MAX_SUPPLY + 1).is_none());
        assert!(max.checked_add(Amount::new(1).unwrap()).is_none());
        assert!(Amount::ZERO.checked_sub(Amount::new(1).unwrap()).is_none());
        assert_eq!(max.checked_sub(max), Some(Amount::ZERO));
    }

    #[test]
    fn weak_and_invalid_keys_are_refused() {
        // The identity point (small order).
        let mut id = [0u8; 32];
        id[0] = 1;
        assert_eq!(PublicKey::from_bytes(&id).unwrap_err(), KeyError::Weak);
        // y = 2 is not on the curve.
        let mut bad = [0u8; 32];
        bad[0] = 2;
        assert_eq!(
            PublicKey::from_bytes(&bad).unwrap_err(),
            KeyError::NotAPoint
        );
    }

    /// The byte check refuses exactly what the round trip through the point's own
    /// encoding refused: every y >= p with either sign bit, both x = 0 sign-bit forms, the
    /// small-order points, random keys and random bytes.
    #[test]
    fn key_validation_refuses_exactly_the_non_round_tripping_encodings() {
        fn round_trip(bytes: &[u8; 32]) -> Result<(), KeyError> {
            let vk = VerifyingKey::from_bytes(bytes).map_err(|_| KeyError::NotAPoint)?;
            if vk.is_weak() {
                return Err(KeyError::Weak);
            }
            if vk.to_edwards().compress().as_bytes() != bytes {
                return Err(KeyError::NotAPoint);
            }
            Ok(())
        }
        let mut cases: Vec<[u8; 32]> = Vec::new();
        // y = p + k for k in 0..19 (all of 2^255 - 19 ..= 2^255 - 1), and y = k (small
        // values, among them 1 and p - 1 = -1 below), each with the sign bit clear and set.
        for k in 0u8..19 {
            let mut b = [0xff; 32];
            b[0] = 0xed + k;
            b[31] = 0x7f;
            cases.push(b);
            let mut small = [0u8; 32];
            small[0] = k;
            cases.push(small);
        }
        let mut minus_one = [0xff; 32];
        minus_one[0] = 0xec;
        minus_one[31] = 0x7f;
        cases.push(minus_one);
        for i in 0u32..2_000 {
            let seed: [u8; 32] = sha2::Digest::finalize(sha2::Digest::chain_update(
                <sha2::Sha256 as sha2::Digest>::new(),
                i.to_le_bytes(),
            ))
            .into();
            cases.push(seed);
            cases.push(
                ed25519_dalek::SigningKey::from_bytes(&seed)
                    .verifying_key()
                    .to_bytes(),
            );
        }
        let with_sign: Vec<[u8; 32]> = cases
            .iter()
            .map(|b| {
                let mut s = *b;
                s[31] ^= 0x80;
                s
            })
            .collect();
        let (mut non_canonical, mut only_the_byte_check) = (0, 0);
        for b in cases.iter().chain(&with_sign) {
            let new = PublicKey::validate(b).map(|_| ());
            assert_eq!(new, round_trip(b), "{}", hex::encode(b));
            if !y_is_canonical(b) {
                non_canonical += 1;
                let vk = VerifyingKey::from_bytes(b);
                if vk.is_ok_and(|vk| !vk.is_weak()) {
                    only_the_byte_check += 1;
                }
            }
        }
        assert_eq!(non_canonical, 38, "19 values of y >= p, two signs");
        // Some of them are curve points of large order: only the byte check refuses them.
        assert!(only_the_byte_check > 0);
    }

    #[test]
    fn the_key_memo_never_lets_a_refused_key_through() {
        // A valid key in the same memo slot as the identity point ([1, 0, ..., 0]: slot 1).
        let valid = (0u8..=255)
            .map(|i| {
                ed25519_dalek::SigningKey::from_bytes(&[i; 32])
                    .verifying_key()
                    .to_bytes()
            })
            .find(|b| usize::from(b[0] ^ b[31]) % KEY_MEMO_SLOTS == 1)
            .unwrap();
        let mut id = [0u8; 32];
        id[0] = 1;
        for _ in 0..2 {
            let k = PublicKey::from_bytes(&valid).unwrap();
            assert_eq!(k.as_bytes(), &valid);
            assert_eq!(PublicKey::from_bytes(&id).unwrap_err(), KeyError::Weak);
            // A one-bit change of the remembered key is validated afresh.
            let mut near = valid;
            near[1] ^= 1;
            if let Ok(n) = PublicKey::from_bytes(&near) {
                assert_eq!(n.as_bytes(), &near);
                assert_eq!(n, PublicKey::validate(&near).unwrap());
            }
        }
    }

    #[test]
    fn host_addresses() {
        for ok in [
            "peer1.example.org:18888",
            "127.0.0.1:1",
            "[::1]:18888",
            "a:65535",
        ] {
            assert!(HostAddr::new(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            ":1",
            "host",
            "host:",
            "host:0",
            "host:65536",
            "host:018888",
            "ho st:1",
            "h/x:1",
            "[]:1",
        ] {
            assert!(HostAddr::new(bad).is_err(), "{bad}");
        }
    }
}
