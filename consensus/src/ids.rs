//! Maps and sets keyed by content hashes or public keys, with a cheap fixed hasher.

use std::collections::{HashMap, HashSet};

/// Hasher for maps keyed by content hashes: the key is already uniformly distributed
/// (a SHA-256 output, or an Ed25519 key), so its first 8 bytes are a fine hash. Fixed,
/// so iteration order is deterministic too.
#[derive(Clone, Copy, Debug, Default)]
pub struct IdHasher(u64);

impl core::hash::Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        let mut b = [0u8; 8];
        let n = bytes.len().min(8);
        b[..n].copy_from_slice(&bytes[..n]);
        self.0 = self.0.rotate_left(5) ^ u64::from_le_bytes(b);
    }
}

pub(crate) type IdMap<K, V> = HashMap<K, V, core::hash::BuildHasherDefault<IdHasher>>;
pub(crate) type IdSet<K> = HashSet<K, core::hash::BuildHasherDefault<IdHasher>>;
