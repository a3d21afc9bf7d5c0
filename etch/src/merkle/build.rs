//! A whole state's trie written from nothing in one pass ([`build`]).

use super::{
    Key, MAX_VALUE, common_nibbles, empty_root, encode_branch, encode_leaf, nibble, prefix_of,
};
use crate::Hash;
use crate::error::{EtchError, Result};
use crate::store::Store;

/// Builds the trie of `entries` from nothing, writes every node and returns its root: the
/// same root as inserting them one by one into an empty state (the trie is canonical), but
/// from the sorted entries directly, without [`StateTx`]'s in-memory tree (a box per node
/// and a copy of every value). For the first checkpoint of a large state: 10^6 accounts
/// took seconds of allocation through [`StateTx`]. Of entries with the same key, the last
/// wins, as with repeated inserts.
///
/// # Errors
/// [`EtchError::TooLarge`] for a value over [`MAX_VALUE`] (nothing is written then);
/// store failures.
pub fn build(store: &Store, mut entries: Vec<(Key, Vec<u8>)>) -> Result<Hash> {
    if let Some((_, v)) = entries.iter().find(|(_, v)| v.len() > MAX_VALUE) {
        return Err(EtchError::TooLarge {
            len: v.len(),
            max: MAX_VALUE,
        });
    }
    // Stable: of equal keys, the later entry stays later. In the dedup, `later` is removed
    // after its value moved into the `kept` one, so the last of each key is what remains.
    entries.sort_by_key(|e| e.0);
    entries.dedup_by(|later, kept| {
        let same = later.0 == kept.0;
        if same {
            std::mem::swap(&mut later.1, &mut kept.1);
        }
        same
    });
    build_sorted(store, &entries)
}

/// The subtree of `sorted` (at least one entry, keys strictly increasing): a leaf for one
/// entry, else a branch at the first nibble where the keys differ (the first and last keys
/// differ there first, since they are sorted), each child the run of keys with its nibble.
fn build_sorted(store: &Store, sorted: &[(Key, Vec<u8>)]) -> Result<Hash> {
    let (first, last) = match sorted {
        [] => return Ok(empty_root()),
        [(k, v)] => return store.put(&encode_leaf(k, v)),
        [first, .., last] => (&first.0, &last.0),
    };
    let d = common_nibbles(first, last);
    let mut children: [Option<Hash>; 16] = [None; 16];
    let mut rest = sorted;
    while let Some((k, _)) = rest.first() {
        let n = nibble(k, d);
        let end = rest.partition_point(|(k, _)| nibble(k, d) == n);
        children[n] = Some(build_sorted(store, &rest[..end])?);
        rest = &rest[end..];
    }
    // d < 64: the keys are distinct.
    let depth = u8::try_from(d).unwrap_or(63);
    store.put(&encode_branch(depth, &prefix_of(first, d), &children))
}
