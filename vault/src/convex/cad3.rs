//! The smallest subset of Convex's CAD3 encoding that the vault's two Convex
//! transactions need, written from the CAD3 documents (docs/vault.md, "Convex
//! network", has the byte layout): Long, Address, Blob, Symbol, Vector, List, the
//! generic record (Invoke `D0`, Transfer `D1`) and the embedding rule for children.
//! There is no CVM, no parser and no general reader here: the only decoder is
//! [`super::tx`]'s, and it accepts exactly the shapes this module writes.

use sha3::{Digest as _, Sha3_256};

/// CAD3 tags (Convex `Tag.java`, `CVMTag.java`).
pub mod tag {
    /// Long: `0x10 + n`, then n bytes of minimal two's complement (n = 0..=8).
    pub const LONG: u8 = 0x10;
    /// A reference by hash: `0x20` ‖ SHA3-256 of the child's encoding.
    pub const REF: u8 = 0x20;
    /// Blob: `0x31` ‖ VLQ count ‖ bytes.
    pub const BLOB: u8 = 0x31;
    /// Symbol: `0x32` ‖ one length byte ‖ UTF-8.
    pub const SYMBOL: u8 = 0x32;
    /// Vector: `0x80` ‖ VLQ count ‖ elements in order (up to 16: one chunk).
    pub const VECTOR: u8 = 0x80;
    /// List: `0x81` ‖ VLQ count ‖ elements in **reverse** order.
    pub const LIST: u8 = 0x81;
    /// Signed data: `0x90` ‖ 32-byte key ‖ 64-byte signature ‖ the value (as a child).
    pub const SIGNED: u8 = 0x90;
    /// Invoke transaction record: origin, sequence, command.
    pub const INVOKE: u8 = 0xD0;
    /// Transfer transaction record: origin, sequence, target, amount.
    pub const TRANSFER: u8 = 0xD1;
    /// Address: `0xEA` ‖ VLQ count.
    pub const ADDRESS: u8 = 0xEA;
}

/// A child whose encoding is longer than this is written as a reference (`0x20` ‖
/// SHA3-256 of its encoding) instead of inline.
pub const EMBED_MAX: usize = 140;

/// The most elements of a Vector or List this encoder writes (one flat chunk; longer
/// ones are trees in CAD3, which the vault never needs).
pub const FLAT_MAX: usize = 16;

/// SHA3-256, Convex's hash.
#[must_use]
pub fn sha3(bytes: &[u8]) -> [u8; 32] {
    Sha3_256::digest(bytes).into()
}

/// A CAD3 value of the subset.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Cell {
    /// A 64-bit integer.
    Long(i64),
    /// An account address `#n` (n ≥ 0).
    Address(u64),
    /// A byte string (flat: at most 4096 bytes).
    Blob(Vec<u8>),
    /// A symbol (at most 255 bytes of UTF-8).
    Symbol(String),
    /// A vector of at most [`FLAT_MAX`] elements.
    Vector(Vec<Cell>),
    /// A list of at most [`FLAT_MAX`] elements.
    List(Vec<Cell>),
    /// A generic record: its tag and its fields in order.
    Record(u8, Vec<Cell>),
}

/// Append the VLQ count: 7 bits a byte, most significant group first, the high bit set
/// on every byte but the last, no leading `0x80` (minimal).
pub fn write_vlq(out: &mut Vec<u8>, n: u64) {
    let mut groups = [0u8; 10];
    let mut len = 0;
    let mut v = n;
    loop {
        // Seven bits at a time; the mask makes the cast exact.
        groups[len] = (v & 0x7f) as u8;
        len += 1;
        v >>= 7;
        if v == 0 {
            break;
        }
    }
    for i in (0..len).rev() {
        let more = if i > 0 { 0x80 } else { 0 };
        out.push(groups[i] | more);
    }
}

/// The minimal two's-complement bytes of `v` (none for 0).
fn long_bytes(v: i64) -> Vec<u8> {
    let all = v.to_be_bytes();
    let mut start = 0;
    // Drop a leading byte while the next byte's sign bit still says the same.
    while start < 8 {
        let b = all[start];
        let next_sign = all.get(start + 1).map(|n| n & 0x80);
        let redundant = matches!(
            (b, next_sign),
            (0x00, Some(0x00) | None) | (0xff, Some(0x80))
        );
        if !redundant {
            break;
        }
        start += 1;
    }
    all[start..].to_vec()
}

impl Cell {
    /// The CAD3 encoding of this value.
    ///
    /// Counts past [`FLAT_MAX`], blobs past 4096 bytes and symbols past 255 bytes are
    /// outside the subset; the vault never builds them (a debug assertion says so).
    #[must_use]
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        match self {
            Self::Long(v) => {
                let b = long_bytes(*v);
                // At most 8 bytes.
                out.push(tag::LONG + u8::try_from(b.len()).unwrap_or(8));
                out.extend_from_slice(&b);
            }
            Self::Address(n) => {
                out.push(tag::ADDRESS);
                write_vlq(&mut out, *n);
            }
            Self::Blob(b) => {
                debug_assert!(b.len() <= 4096, "a flat blob");
                out.push(tag::BLOB);
                write_vlq(&mut out, b.len() as u64);
                out.extend_from_slice(b);
            }
            Self::Symbol(s) => {
                let len = u8::try_from(s.len()).unwrap_or(u8::MAX);
                debug_assert!(s.len() <= 255, "a short symbol");
                out.push(tag::SYMBOL);
                out.push(len);
                out.extend_from_slice(&s.as_bytes()[..usize::from(len)]);
            }
            Self::Vector(items) => {
                debug_assert!(items.len() <= FLAT_MAX, "one chunk");
                out.push(tag::VECTOR);
                write_vlq(&mut out, items.len() as u64);
                for c in items {
                    write_child(&mut out, c);
                }
            }
            Self::List(items) => {
                debug_assert!(items.len() <= FLAT_MAX, "one chunk");
                out.push(tag::LIST);
                write_vlq(&mut out, items.len() as u64);
                for c in items.iter().rev() {
                    write_child(&mut out, c);
                }
            }
            Self::Record(t, fields) => {
                out.push(*t);
                write_vlq(&mut out, fields.len() as u64);
                for c in fields {
                    write_child(&mut out, c);
                }
            }
        }
        out
    }
}

/// Append a child: inline when its encoding is at most [`EMBED_MAX`] bytes, else
/// `0x20` ‖ SHA3-256 of its encoding.
pub fn write_child(out: &mut Vec<u8>, c: &Cell) {
    let enc = c.encode();
    write_child_encoding(out, &enc);
}

/// [`write_child`] for an encoding already at hand.
pub fn write_child_encoding(out: &mut Vec<u8>, enc: &[u8]) {
    if enc.len() <= EMBED_MAX {
        out.extend_from_slice(enc);
    } else {
        out.push(tag::REF);
        out.extend_from_slice(&sha3(enc));
    }
}

/// A strict reader of the subset's primitives, over one buffer. Used only by the
/// transaction decoder, which re-encodes what it read and compares (so anything
/// non-minimal is refused there).
#[derive(Debug)]
pub struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    /// Read from the start of `bytes`.
    #[must_use]
    pub const fn new(bytes: &'a [u8]) -> Self {
        Self { bytes, at: 0 }
    }

    /// Bytes not read yet.
    #[must_use]
    pub const fn remaining(&self) -> usize {
        self.bytes.len() - self.at
    }

    /// The next `n` bytes.
    ///
    /// # Errors
    /// A description when the input ends first.
    pub fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self
            .at
            .checked_add(n)
            .filter(|&e| e <= self.bytes.len())
            .ok_or_else(|| format!("ends early (at byte {})", self.at))?;
        let s = &self.bytes[self.at..end];
        self.at = end;
        Ok(s)
    }

    /// One byte that must be `want`.
    ///
    /// # Errors
    /// A description naming the byte and what was expected.
    pub fn expect(&mut self, want: u8, what: &str) -> Result<(), String> {
        let at = self.at;
        let got = self.take(1)?[0];
        if got == want {
            Ok(())
        } else {
            Err(format!(
                "byte {at} is {got:#04x}, expected {want:#04x} ({what})"
            ))
        }
    }

    /// A VLQ count (at most 9 bytes, so at most 63 bits).
    ///
    /// # Errors
    /// A description when it is too long or ends early.
    pub fn vlq(&mut self) -> Result<u64, String> {
        let mut v: u64 = 0;
        for _ in 0..9 {
            let b = self.take(1)?[0];
            v = (v << 7) | u64::from(b & 0x7f);
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(format!("a count longer than 9 bytes at byte {}", self.at))
    }

    /// A Long (tag `0x10`..=`0x18`).
    ///
    /// # Errors
    /// A description when the tag is not a Long.
    pub fn long(&mut self, what: &str) -> Result<i64, String> {
        let at = self.at;
        let t = self.take(1)?[0];
        if !(tag::LONG..=tag::LONG + 8).contains(&t) {
            return Err(format!(
                "byte {at} is {t:#04x}, expected a Long 0x10..=0x18 ({what})"
            ));
        }
        let n = usize::from(t - tag::LONG);
        let b = self.take(n)?;
        let mut v: i64 = if b.first().is_some_and(|f| f & 0x80 != 0) {
            -1
        } else {
            0
        };
        for &x in b {
            v = (v << 8) | i64::from(x);
        }
        Ok(v)
    }

    /// An Address.
    ///
    /// # Errors
    /// A description when the tag is not an Address.
    pub fn address(&mut self, what: &str) -> Result<u64, String> {
        self.expect(tag::ADDRESS, what)?;
        self.vlq()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hx(c: &Cell) -> String {
        hex::encode(c.encode())
    }

    #[test]
    fn longs_are_minimal_twos_complement() {
        for (v, want) in [
            (0, "10"),
            (19, "1113"),
            (14, "110e"),
            (127, "117f"),
            (128, "120080"),
            (1000, "1203e8"),
            (-1, "11ff"),
            (-128, "1180"),
            (-129, "12ff7f"),
            (i64::MAX, "187fffffffffffffff"),
            (i64::MIN, "188000000000000000"),
        ] {
            assert_eq!(hx(&Cell::Long(v)), want, "{v}");
            let enc = Cell::Long(v).encode();
            assert_eq!(Reader::new(&enc).long("t").unwrap(), v);
        }
    }

    #[test]
    fn addresses_use_the_minimal_vlq_count() {
        for (n, want) in [
            (0, "ea00"),
            (12, "ea0c"),
            (127, "ea7f"),
            (128, "ea8100"),
            (16384, "ea818000"),
        ] {
            assert_eq!(hx(&Cell::Address(n)), want, "#{n}");
            let enc = Cell::Address(n).encode();
            assert_eq!(Reader::new(&enc).address("t").unwrap(), n);
        }
    }

    #[test]
    fn a_large_child_is_a_reference_by_sha3() {
        let big = Cell::Blob(vec![7; 200]);
        let enc = big.encode();
        assert!(enc.len() > EMBED_MAX);
        let v = Cell::Vector(vec![big]).encode();
        let mut want = vec![tag::VECTOR, 1, tag::REF];
        want.extend_from_slice(&sha3(&enc));
        assert_eq!(v, want);
        // At exactly 140 bytes it is still inline.
        let edge = Cell::Blob(vec![1; 137]);
        assert_eq!(edge.encode().len(), EMBED_MAX);
        assert_eq!(
            Cell::Vector(vec![edge.clone()]).encode()[2..],
            edge.encode()
        );
    }
}
