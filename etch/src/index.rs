//! The in-memory lookup table: key prefix -> record offset.
//!
//! It is a cache of the in-file index segments (rebuilt from them on open, without reading the
//! records), not a source of truth: every hit is confirmed by comparing the full 32-byte key
//! stored in the record itself.
//!
//! Open addressing with linear probing; a slot is `(prefix, offset)` where `prefix` is the first
//! 8 bytes of the key and `offset` (never 0: records start at 8192) is where the record sits.
//! 16 bytes per slot, at most 70 % full. Keys are SHA-256 outputs, so prefixes are uniform;
//! grinding keys that collide in the low bits costs ~2^(table bits) hashes per key, which makes
//! probe-chain flooding impractical.

#[derive(Debug, Clone)]
pub(crate) struct Index {
    slots: Vec<(u64, u64)>,
    len: usize,
}

impl Index {
    pub(crate) fn with_capacity(n: usize) -> Self {
        let mut cap = 1024usize;
        while cap.saturating_mul(7) / 10 < n {
            cap = cap.saturating_mul(2);
        }
        Index {
            slots: vec![(0, 0); cap],
            len: 0,
        }
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    fn home(prefix: u64, mask: usize) -> usize {
        // Only the low bits select the slot.
        crate::us(prefix) & mask
    }

    /// Finds the offset whose record `is_key(offset)` confirms.
    pub(crate) fn find(&self, prefix: u64, mut is_key: impl FnMut(u64) -> bool) -> Option<u64> {
        let mask = self.slots.len() - 1;
        let mut i = Self::home(prefix, mask);
        loop {
            let (p, off) = self.slots[i];
            if off == 0 {
                return None;
            }
            if p == prefix && is_key(off) {
                return Some(off);
            }
            i = (i + 1) & mask;
        }
    }

    /// Adds an entry; the caller has checked the key is absent. `offset` is never 0.
    pub(crate) fn insert(&mut self, prefix: u64, offset: u64) {
        debug_assert!(offset != 0);
        if (self.len + 1) * 10 > self.slots.len() * 7 {
            self.grow();
        }
        Self::place(&mut self.slots, prefix, offset);
        self.len += 1;
    }

    fn place(slots: &mut [(u64, u64)], prefix: u64, offset: u64) {
        let mask = slots.len() - 1;
        let mut i = Self::home(prefix, mask);
        while slots[i].1 != 0 {
            i = (i + 1) & mask;
        }
        slots[i] = (prefix, offset);
    }

    fn grow(&mut self) {
        let mut bigger = vec![(0, 0); self.slots.len() * 2];
        for &(p, off) in &self.slots {
            if off != 0 {
                Self::place(&mut bigger, p, off);
            }
        }
        self.slots = bigger;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_what_was_inserted_across_growth() {
        let mut ix = Index::with_capacity(0);
        // Many equal prefixes force probing; offsets distinguish the "keys".
        for off in 1..5000u64 {
            ix.insert(off % 7, off * 8);
        }
        assert_eq!(ix.len(), 4999);
        for off in 1..5000u64 {
            assert_eq!(ix.find(off % 7, |o| o == off * 8), Some(off * 8));
        }
        assert_eq!(ix.find(3, |_| false), None);
    }
}
