//! One SLIP-39 share: its words, and the fields they encode.
//!
//! ```text
//! id (15 bits) | ext (1) | e (4) | group index (4) | group threshold - 1 (4)
//! | group count - 1 (4) | member index (4) | member threshold - 1 (4)
//! | padding (zero bits) + share value | RS1024 checksum (30)
//! ```
//!
//! Words are 10 bits each; the value is left-padded with zero bits to a whole number
//! of words; the padding is at most 8 bits long and all zero.

use core::fmt;

use zeroize::Zeroizing;

use super::{ShareError, rs1024, wordlist};

/// Words of the identifier, the extendable flag and the iteration exponent (20 bits).
pub const ID_EXP_WORDS: usize = 2;
/// Words of the identifier, flag, exponent and the group and member parameters.
pub const PREFIX_WORDS: usize = ID_EXP_WORDS + 2;
/// Words of a share that are not the value.
pub const METADATA_WORDS: usize = PREFIX_WORDS + rs1024::CHECKSUM_WORDS;
/// The shortest share value, in bytes (128 bits).
pub const MIN_VALUE_BYTES: usize = 16;
/// The longest share value this vault reads, in bytes (512 bits; a cvx key is 256).
pub const MAX_VALUE_BYTES: usize = 64;
/// The fewest words a share has (128-bit value).
pub const MIN_WORDS: usize = METADATA_WORDS + (MIN_VALUE_BYTES * 8).div_ceil(10);
/// The most words this vault reads.
pub const MAX_WORDS: usize = METADATA_WORDS + (MAX_VALUE_BYTES * 8).div_ceil(10);

/// A decoded share (its value is secret: no Clone, no Display, redacted Debug).
pub struct Share {
    /// The random identifier common to all shares of one split (15 bits).
    pub identifier: u16,
    /// The extendable-backup flag.
    pub extendable: bool,
    /// The iteration exponent e: PBKDF2 runs 10000 * 2^e times in all.
    pub iteration_exponent: u8,
    /// The group's index (0-based).
    pub group_index: u8,
    /// How many groups are needed.
    pub group_threshold: u8,
    /// How many groups there are.
    pub group_count: u8,
    /// The member's index in its group (0-based).
    pub member_index: u8,
    /// How many members of the group are needed.
    pub member_threshold: u8,
    /// The share value.
    pub value: Zeroizing<Vec<u8>>,
}

impl fmt::Debug for Share {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Share(group {}/{} of {}, member {} of threshold {}, value redacted)",
            self.group_index + 1,
            self.group_threshold,
            self.group_count,
            self.member_index + 1,
            self.member_threshold
        )
    }
}

/// Append `bits` bits of `value` (big-endian) to a bit accumulator of 10-bit words.
struct Bits {
    words: Zeroizing<Vec<u16>>,
    acc: u32,
    n: u32,
}

impl Bits {
    fn new() -> Self {
        Self {
            words: Zeroizing::new(Vec::with_capacity(MAX_WORDS)),
            acc: 0,
            n: 0,
        }
    }
    fn push(&mut self, value: u32, bits: u32) {
        for i in (0..bits).rev() {
            self.acc = (self.acc << 1) | ((value >> i) & 1);
            self.n += 1;
            if self.n == 10 {
                // acc holds exactly 10 bits here.
                self.words.push((self.acc & 0x3ff) as u16);
                self.acc = 0;
                self.n = 0;
            }
        }
    }
}

fn custom(extendable: bool) -> &'static [u8] {
    if extendable {
        rs1024::CUSTOM_EXTENDABLE
    } else {
        rs1024::CUSTOM_ORIG
    }
}

impl Share {
    /// The group parameters as one comparable tuple (identifier, flag, exponent,
    /// group threshold, group count).
    #[must_use]
    pub const fn common(&self) -> (u16, bool, u8, u8, u8) {
        (
            self.identifier,
            self.extendable,
            self.iteration_exponent,
            self.group_threshold,
            self.group_count,
        )
    }

    /// The share's words, space-separated, in a zeroizing string.
    #[must_use]
    pub fn to_words(&self) -> Zeroizing<String> {
        let mut b = Bits::new();
        b.push(u32::from(self.identifier), 15);
        b.push(u32::from(self.extendable), 1);
        b.push(u32::from(self.iteration_exponent), 4);
        b.push(u32::from(self.group_index), 4);
        b.push(u32::from(self.group_threshold - 1), 4);
        b.push(u32::from(self.group_count - 1), 4);
        b.push(u32::from(self.member_index), 4);
        b.push(u32::from(self.member_threshold - 1), 4);
        let value_bits = self.value.len() * 8;
        let pad = value_bits.div_ceil(10) * 10 - value_bits;
        // pad < 10.
        b.push(0, u32::try_from(pad).unwrap_or(0));
        for &byte in self.value.iter() {
            b.push(u32::from(byte), 8);
        }
        debug_assert_eq!(b.n, 0);
        let sum = rs1024::create(custom(self.extendable), &b.words);
        let mut s = Zeroizing::new(String::with_capacity(9 * (b.words.len() + 3)));
        for (i, &w) in b.words.iter().chain(sum.iter()).enumerate() {
            if i > 0 {
                s.push(' ');
            }
            s.push_str(wordlist::word(w));
        }
        s
    }

    /// Decode a share from typed words (whitespace-separated, any case). `n` is the
    /// share's place in the order typed, for messages.
    ///
    /// # Errors
    /// [`ShareError::UnknownWord`], [`ShareError::Length`], [`ShareError::Checksum`],
    /// [`ShareError::Padding`], [`ShareError::Parameters`].
    pub fn parse(text: &str, n: usize) -> Result<Self, ShareError> {
        let mut idx: Zeroizing<Vec<u16>> = Zeroizing::new(Vec::with_capacity(MAX_WORDS));
        let mut lower = Zeroizing::new(String::with_capacity(16));
        for (i, w) in text.split_whitespace().enumerate() {
            if i >= MAX_WORDS {
                return Err(ShareError::Length {
                    share: n,
                    words: text.split_whitespace().count(),
                });
            }
            lower.clear();
            lower.extend(w.chars().map(|c| c.to_ascii_lowercase()));
            let Some(k) = wordlist::index(&lower) else {
                return Err(ShareError::UnknownWord {
                    share: n,
                    position: i + 1,
                });
            };
            idx.push(k);
        }
        if idx.len() < MIN_WORDS {
            return Err(ShareError::Length {
                share: n,
                words: idx.len(),
            });
        }
        let value_words = idx.len() - METADATA_WORDS;
        let pad = (10 * value_words) % 16;
        if pad > 8 {
            return Err(ShareError::Length {
                share: n,
                words: idx.len(),
            });
        }
        let id_exp = (u32::from(idx[0]) << 10) | u32::from(idx[1]);
        // 15 bits.
        let identifier = ((id_exp >> 5) & 0x7fff) as u16;
        let extendable = (id_exp >> 4) & 1 == 1;
        let iteration_exponent = (id_exp & 0xf) as u8;
        if !rs1024::verify(custom(extendable), &idx) {
            return Err(ShareError::Checksum { share: n });
        }
        let params = (u32::from(idx[2]) << 10) | u32::from(idx[3]);
        let nib = |shift: u32| ((params >> shift) & 0xf) as u8;
        let (group_index, group_threshold, group_count, member_index, member_threshold) =
            (nib(16), nib(12) + 1, nib(8) + 1, nib(4), nib(0) + 1);
        if group_threshold > group_count {
            return Err(ShareError::Parameters {
                share: n,
                reason: "its group threshold is above its group count",
            });
        }
        // The value: `pad` leading zero bits, then whole bytes.
        let data = &idx[PREFIX_WORDS..idx.len() - rs1024::CHECKSUM_WORDS];
        let total_bits = 10 * data.len();
        let mut value = Zeroizing::new(Vec::with_capacity((total_bits - pad) / 8));
        let (mut acc, mut nbits, mut seen) = (0u32, 0u32, 0usize);
        for &w in data {
            for i in (0..10).rev() {
                let bit = (u32::from(w) >> i) & 1;
                if seen < pad {
                    if bit != 0 {
                        return Err(ShareError::Padding { share: n });
                    }
                    seen += 1;
                    continue;
                }
                acc = (acc << 1) | bit;
                nbits += 1;
                if nbits == 8 {
                    value.push((acc & 0xff) as u8);
                    acc = 0;
                    nbits = 0;
                }
            }
        }
        Ok(Self {
            identifier,
            extendable,
            iteration_exponent,
            group_index,
            group_threshold,
            group_count,
            member_index,
            member_threshold,
            value,
        })
    }
}

#[cfg(test)]
#[allow(clippy::cast_possible_truncation)]
mod tests {
    use super::*;

    #[test]
    fn words_round_trip_for_128_and_256_bit_values() {
        for len in [16usize, 32, 64] {
            let s = Share {
                identifier: 0x5a5a,
                extendable: len == 32,
                iteration_exponent: 3,
                group_index: 2,
                group_threshold: 2,
                group_count: 4,
                member_index: 5,
                member_threshold: 3,
                value: Zeroizing::new((0..len).map(|i| (i * 7 + 1) as u8).collect()),
            };
            let words = s.to_words();
            let back = Share::parse(&words.to_uppercase(), 1).unwrap();
            assert_eq!(back.identifier, 0x5a5a & 0x7fff);
            assert_eq!(back.common(), (0x5a5a & 0x7fff, len == 32, 3, 2, 4));
            assert_eq!(
                (back.group_index, back.member_index, back.member_threshold),
                (2, 5, 3)
            );
            assert_eq!(back.value[..], s.value[..]);
            assert_eq!(
                words.split(' ').count(),
                METADATA_WORDS + (len * 8).div_ceil(10)
            );
        }
    }
}
