//! The SLIP-39 wordlist: 1024 English words, sorted, each 4 to 8 letters, each
//! identified by its first four letters. A word is its 10-bit index.
//!
//! `wordlist.txt` is the list of SLIP-0039 (SatoshiLabs), as shipped by Trezor's
//! reference implementation `shamir-mnemonic` (MIT licence); the unit tests below pin
//! its size, order and SHA-256.

use std::sync::OnceLock;

/// The list, one word per line.
const TEXT: &str = include_str!("wordlist.txt");
/// How many words.
pub const LEN: usize = 1024;

fn list() -> &'static [&'static str] {
    static LIST: OnceLock<Vec<&'static str>> = OnceLock::new();
    LIST.get_or_init(|| TEXT.lines().collect())
}

/// The word for a 10-bit index (indices above 1023 are masked; callers only pass
/// 10-bit values).
pub fn word(index: u16) -> &'static str {
    list()
        .get(usize::from(index & 0x3ff))
        .copied()
        .unwrap_or("")
}

/// The index of a lower-case word, if it is in the list.
pub fn index(word: &str) -> Option<u16> {
    list()
        .binary_search(&word)
        .ok()
        .and_then(|i| u16::try_from(i).ok())
}

#[cfg(test)]
#[allow(clippy::cast_possible_truncation)]
mod tests {
    use super::*;
    use sha2::{Digest, Sha256};

    #[test]
    fn the_list_is_slip39s() {
        let l = list();
        assert_eq!(l.len(), LEN);
        assert!(l.windows(2).all(|w| w[0] < w[1]), "sorted and unique");
        assert!(
            l.iter()
                .all(|w| (4..=8).contains(&w.len()) && w.bytes().all(|b| b.is_ascii_lowercase()))
        );
        let mut prefixes: Vec<&str> = l.iter().map(|w| &w[..4]).collect();
        prefixes.dedup();
        assert_eq!(prefixes.len(), LEN, "first four letters identify a word");
        assert_eq!((l[0], l[1023]), ("academic", "zero"));
        assert_eq!(
            hex::encode(Sha256::digest(TEXT.as_bytes())),
            "bcc4555340332d169718aed8bf31dd9d5248cb7da6e5d355140ef4f1e601eec3"
        );
        for (i, w) in l.iter().enumerate() {
            assert_eq!(index(w), Some(i as u16));
            assert_eq!(word(i as u16), *w);
        }
        assert_eq!(index("zzzz"), None);
    }
}
