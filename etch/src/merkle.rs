//! Merkle ledger state: a 16-ary Patricia trie over 32-byte keys, stored node by node in the
//! store (each node is a record keyed by its hash), with opaque value bytes.
//!
//! The trie is canonical: its shape depends only on the set of (key, value) pairs, so the root
//! hash is independent of the order of updates. A set with one entry is a leaf; a set with two
//! or more entries whose keys share exactly `d` leading nibbles is a branch at depth `d` whose
//! children split the set by nibble `d` (single-child chains never exist: they are skipped, the
//! child branch records its own depth and prefix).
//!
//! Node encodings (byte-exact, see docs/etch.md):
//!
//! ```text
//! leaf   = 0x01 ‖ key[32] ‖ value_len u32 LE ‖ value
//! branch = 0x02 ‖ depth u8 (0..=63) ‖ prefix[32] (nibbles >= depth zero) ‖ bitmap u16 LE
//!          (bit i = child for nibble i; at least 2 bits) ‖ child hashes[32] in nibble order
//! empty  = the single byte 0x00 (never stored; its hash is EMPTY_ROOT)
//! ```
//!
//! Updates go through [`StateTx`]: it loads only the nodes on the paths it touches, and
//! [`StateTx::commit`] writes only the nodes that changed (stored nodes are content-addressed,
//! so an unchanged node is never written twice).

use crate::Hash;
use crate::error::{EtchError, Result};
use crate::format::MAX_RECORD;
use crate::store::{Children, Store};

mod build;
#[cfg(test)]
mod tests;

pub use build::build;

/// A state key: 32 bytes (e.g. the hash of an address or of a peer key).
pub type Key = [u8; 32];

const TAG_EMPTY: u8 = 0;
const TAG_LEAF: u8 = 1;
const TAG_BRANCH: u8 = 2;
const LEAF_FIXED: usize = 1 + 32 + 4;
const BRANCH_FIXED: usize = 1 + 1 + 32 + 2;

/// Largest value a leaf may hold.
pub const MAX_VALUE: usize = MAX_RECORD - LEAF_FIXED;

/// The root hash of the empty state: SHA-256 of the single byte 0x00.
#[must_use]
pub fn empty_root() -> Hash {
    Hash::of(&[TAG_EMPTY])
}

fn nibble(key: &Key, i: usize) -> usize {
    let b = key[i / 2];
    usize::from(if i.is_multiple_of(2) {
        b >> 4
    } else {
        b & 0x0f
    })
}

/// Leading nibbles `a` and `b` share (64 if equal).
fn common_nibbles(a: &Key, b: &Key) -> usize {
    for (i, (x, y)) in a.iter().zip(b.iter()).enumerate() {
        let d = x ^ y;
        if d != 0 {
            return 2 * i + usize::from(d & 0xf0 == 0);
        }
    }
    64
}

/// `key` with nibbles `depth..` zeroed.
fn prefix_of(key: &Key, depth: usize) -> Key {
    let mut p = *key;
    let full = depth / 2;
    if !depth.is_multiple_of(2) {
        p[full] &= 0xf0;
        p[full + 1..].fill(0);
    } else {
        p[full..].fill(0);
    }
    p
}

/// A decoded node.
#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(clippy::large_enum_variant)] // short-lived, never stored in bulk
pub enum NodeView {
    /// A leaf: one entry.
    Leaf {
        /// The entry's key.
        key: Key,
        /// The entry's value.
        value: Vec<u8>,
    },
    /// A branch at nibble `depth`.
    Branch {
        /// Which nibble the children split on.
        depth: u8,
        /// The shared leading nibbles (nibbles `depth..` zero).
        prefix: Key,
        /// Child hash per nibble.
        children: [Option<Hash>; 16],
    },
}

fn bad(hash: &Hash, detail: &str) -> EtchError {
    EtchError::BadNode {
        hash: *hash,
        detail: detail.to_owned(),
    }
}

/// Decodes a node strictly (no trailing bytes, canonical fields). `hash` names it in errors.
pub fn decode_node(hash: &Hash, bytes: &[u8]) -> Result<NodeView> {
    match bytes.first() {
        Some(&TAG_LEAF) => {
            if bytes.len() < LEAF_FIXED {
                return Err(bad(hash, "leaf shorter than its fixed part"));
            }
            let mut key = [0u8; 32];
            key.copy_from_slice(&bytes[1..33]);
            let mut l = [0u8; 4];
            l.copy_from_slice(&bytes[33..37]);
            let len = u32::from_le_bytes(l) as usize;
            if len > MAX_VALUE || bytes.len() != LEAF_FIXED + len {
                return Err(bad(
                    hash,
                    "leaf value length does not match the node length",
                ));
            }
            Ok(NodeView::Leaf {
                key,
                value: bytes[LEAF_FIXED..].to_vec(),
            })
        }
        Some(&TAG_BRANCH) => {
            if bytes.len() < BRANCH_FIXED {
                return Err(bad(hash, "branch shorter than its fixed part"));
            }
            let depth = bytes[1];
            if depth >= 64 {
                return Err(bad(hash, "branch depth beyond 63"));
            }
            let mut prefix = [0u8; 32];
            prefix.copy_from_slice(&bytes[2..34]);
            if prefix_of(&prefix, usize::from(depth)) != prefix {
                return Err(bad(
                    hash,
                    "branch prefix has non-zero nibbles past its depth",
                ));
            }
            let bitmap = u16::from_le_bytes([bytes[34], bytes[35]]);
            let n = bitmap.count_ones() as usize;
            if n < 2 {
                return Err(bad(hash, "branch with fewer than two children"));
            }
            if bytes.len() != BRANCH_FIXED + 32 * n {
                return Err(bad(hash, "branch length does not match its child count"));
            }
            let mut children: [Option<Hash>; 16] = [None; 16];
            let mut at = BRANCH_FIXED;
            for (i, c) in children.iter_mut().enumerate() {
                if bitmap & (1 << i) != 0 {
                    let mut h = [0u8; 32];
                    h.copy_from_slice(&bytes[at..at + 32]);
                    *c = Some(Hash(h));
                    at += 32;
                }
            }
            Ok(NodeView::Branch {
                depth,
                prefix,
                children,
            })
        }
        _ => Err(bad(hash, "unknown node tag")),
    }
}

fn encode_leaf(key: &Key, value: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(LEAF_FIXED + value.len());
    out.push(TAG_LEAF);
    out.extend_from_slice(key);
    // Bounded by MAX_VALUE (checked in StateTx::insert), which is below 4 GiB.
    #[allow(clippy::cast_possible_truncation)]
    let len = value.len() as u32;
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(value);
    out
}

fn encode_branch(depth: u8, prefix: &Key, children: &[Option<Hash>; 16]) -> Vec<u8> {
    let mut out = Vec::with_capacity(BRANCH_FIXED + 16 * 32);
    out.push(TAG_BRANCH);
    out.push(depth);
    out.extend_from_slice(prefix);
    let mut bitmap = 0u16;
    for (i, c) in children.iter().enumerate() {
        if c.is_some() {
            bitmap |= 1 << i;
        }
    }
    out.extend_from_slice(&bitmap.to_le_bytes());
    for h in children.iter().flatten() {
        out.extend_from_slice(&h.0);
    }
    out
}

/// The hashes a node refers to (nothing for a leaf or anything malformed).
pub fn node_children(bytes: &[u8], out: &mut Vec<Hash>) {
    if let Ok(NodeView::Branch { children, .. }) = decode_node(&Hash::ZERO, bytes) {
        out.extend(children.iter().flatten());
    }
}

/// [`Children`] for a store holding only Merkle nodes (a peer with other record kinds wraps
/// [`node_children`] in its own dispatcher).
#[derive(Debug, Clone, Copy, Default)]
pub struct MerkleChildren;

impl Children for MerkleChildren {
    fn children(&self, record: &[u8], out: &mut Vec<Hash>) {
        node_children(record, out);
    }
}

fn load(store: &Store, hash: &Hash) -> Result<NodeView> {
    let bytes = store.get(hash)?.ok_or(EtchError::Missing { hash: *hash })?;
    decode_node(hash, &bytes)
}

/// The value stored under `key` in the state rooted at `root`.
pub fn get(store: &Store, root: &Hash, key: &Key) -> Result<Option<Vec<u8>>> {
    let mut h = *root;
    loop {
        if h == empty_root() {
            return Ok(None);
        }
        match load(store, &h)? {
            NodeView::Leaf { key: k, value } => return Ok((k == *key).then_some(value)),
            NodeView::Branch {
                depth,
                prefix,
                children,
            } => {
                let d = usize::from(depth);
                if common_nibbles(key, &prefix) < d {
                    return Ok(None);
                }
                match children[nibble(key, d)] {
                    Some(c) => h = c,
                    None => return Ok(None),
                }
            }
        }
    }
}

/// A node being edited in memory: either a stored subtree (untouched) or an expanded one.
#[derive(Debug, Default)]
enum Node {
    #[default]
    Empty,
    Stored(Hash),
    Leaf {
        key: Key,
        value: Vec<u8>,
    },
    Branch {
        depth: u8,
        prefix: Key,
        children: [Option<Box<Node>>; 16],
    },
}

impl Node {
    fn from_hash(h: Hash) -> Node {
        if h == empty_root() {
            Node::Empty
        } else {
            Node::Stored(h)
        }
    }

    /// Replaces a stored node by its decoded form (children stay stored).
    fn expand(&mut self, store: &Store) -> Result<()> {
        if let Node::Stored(h) = self {
            *self = match load(store, h)? {
                NodeView::Leaf { key, value } => Node::Leaf { key, value },
                NodeView::Branch {
                    depth,
                    prefix,
                    children,
                } => Node::Branch {
                    depth,
                    prefix,
                    children: children.map(|c| c.map(|h| Box::new(Node::Stored(h)))),
                },
            };
        }
        Ok(())
    }

    /// A branch at depth `d` holding `a` and `b`, whose keys/prefixes first differ at nibble `d`.
    fn split(d: usize, a_nib: usize, a: Node, b_nib: usize, b: Node, prefix: Key) -> Node {
        let mut children: [Option<Box<Node>>; 16] = Default::default();
        children[a_nib] = Some(Box::new(a));
        children[b_nib] = Some(Box::new(b));
        Node::Branch {
            // d < 64 because the two keys differ.
            depth: u8::try_from(d).unwrap_or(63),
            prefix: prefix_of(&prefix, d),
            children,
        }
    }

    fn insert(&mut self, store: &Store, key: &Key, value: &[u8]) -> Result<()> {
        self.expand(store)?;
        match self {
            Node::Empty => {
                *self = Node::Leaf {
                    key: *key,
                    value: value.to_vec(),
                };
            }
            Node::Leaf { key: k, value: v } => {
                if k == key {
                    *v = value.to_vec();
                } else {
                    let d = common_nibbles(k, key);
                    let k_nib = nibble(k, d);
                    let old = std::mem::take(self);
                    let new = Node::Leaf {
                        key: *key,
                        value: value.to_vec(),
                    };
                    *self = Node::split(d, k_nib, old, nibble(key, d), new, *key);
                }
            }
            Node::Branch {
                depth,
                prefix,
                children,
            } => {
                let d = usize::from(*depth);
                let p = common_nibbles(key, prefix).min(d);
                if p < d {
                    let p_nib = nibble(prefix, p);
                    let old = std::mem::take(self);
                    let new = Node::Leaf {
                        key: *key,
                        value: value.to_vec(),
                    };
                    *self = Node::split(p, p_nib, old, nibble(key, p), new, *key);
                } else {
                    match &mut children[nibble(key, d)] {
                        Some(c) => c.insert(store, key, value)?,
                        slot @ None => {
                            *slot = Some(Box::new(Node::Leaf {
                                key: *key,
                                value: value.to_vec(),
                            }));
                        }
                    }
                }
            }
            Node::Stored(_) => {} // expanded above
        }
        Ok(())
    }

    fn remove(&mut self, store: &Store, key: &Key) -> Result<()> {
        self.expand(store)?;
        let mut collapse = false;
        match self {
            Node::Empty | Node::Stored(_) => {}
            Node::Leaf { key: k, .. } => {
                if k == key {
                    *self = Node::Empty;
                }
            }
            Node::Branch {
                depth,
                prefix,
                children,
            } => {
                let d = usize::from(*depth);
                if common_nibbles(key, prefix) < d {
                    return Ok(());
                }
                let i = nibble(key, d);
                if let Some(c) = &mut children[i] {
                    c.remove(store, key)?;
                    if matches!(**c, Node::Empty) {
                        children[i] = None;
                        collapse = children.iter().flatten().count() == 1;
                    }
                }
            }
        }
        if collapse {
            // A branch with one child left is replaced by that child (nodes are
            // self-describing, so the child is valid one level up).
            if let Node::Branch { children, .. } = self
                && let Some(sole) = children.iter_mut().find_map(Option::take)
            {
                *self = *sole;
            }
        }
        Ok(())
    }

    /// Writes every changed node, bottom up; returns this node's hash.
    fn commit(&self, store: &Store, written: &mut u64) -> Result<Hash> {
        match self {
            Node::Empty => Ok(empty_root()),
            Node::Stored(h) => Ok(*h),
            Node::Leaf { key, value } => {
                *written += 1;
                store.put(&encode_leaf(key, value))
            }
            Node::Branch {
                depth,
                prefix,
                children,
            } => {
                let mut hs: [Option<Hash>; 16] = [None; 16];
                for (h, c) in hs.iter_mut().zip(children.iter()) {
                    if let Some(c) = c {
                        *h = Some(c.commit(store, written)?);
                    }
                }
                *written += 1;
                store.put(&encode_branch(*depth, prefix, &hs))
            }
        }
    }
}

/// A batch of updates to a state. Loads only the nodes on the touched paths; `commit` writes
/// only the nodes that changed. After an error the batch may be partly applied in memory:
/// discard it (nothing is written before `commit`).
#[derive(Debug)]
pub struct StateTx<'s> {
    store: &'s Store,
    root: Node,
}

impl<'s> StateTx<'s> {
    /// Starts a batch on the state rooted at `root` ([`empty_root`] for an empty state).
    #[must_use]
    pub fn new(store: &'s Store, root: Hash) -> Self {
        StateTx {
            store,
            root: Node::from_hash(root),
        }
    }

    /// Sets `key` to `value`.
    pub fn insert(&mut self, key: &Key, value: &[u8]) -> Result<()> {
        if value.len() > MAX_VALUE {
            return Err(EtchError::TooLarge {
                len: value.len(),
                max: MAX_VALUE,
            });
        }
        self.root.insert(self.store, key, value)
    }

    /// Removes `key` (no-op if absent).
    pub fn remove(&mut self, key: &Key) -> Result<()> {
        self.root.remove(self.store, key)
    }

    /// Writes the changed nodes; returns the new root hash. Not durable until the store's
    /// next checkpoint (point a root at the hash first if GC must keep it).
    pub fn commit(self) -> Result<Hash> {
        let mut written = 0;
        self.root.commit(self.store, &mut written)
    }
}

/// One-update convenience: returns the new root.
pub fn insert(store: &Store, root: &Hash, key: &Key, value: &[u8]) -> Result<Hash> {
    let mut tx = StateTx::new(store, *root);
    tx.insert(key, value)?;
    tx.commit()
}

/// One-removal convenience: returns the new root.
pub fn remove(store: &Store, root: &Hash, key: &Key) -> Result<Hash> {
    let mut tx = StateTx::new(store, *root);
    tx.remove(key)?;
    tx.commit()
}

/// Lists up to `limit` hashes under `root` that are not in `store` (nodes present locally are
/// descended into; missing ones are listed and not). An empty answer means the state is
/// complete locally. Repeat after importing to go one level deeper each round.
pub fn missing(store: &Store, root: &Hash, limit: usize) -> Result<Vec<Hash>> {
    let mut out = Vec::new();
    let mut stack = vec![*root];
    let mut kids = Vec::new();
    while let Some(h) = stack.pop() {
        if out.len() >= limit {
            break;
        }
        if h == empty_root() {
            continue;
        }
        match store.get(&h)? {
            None => out.push(h),
            Some(bytes) => {
                decode_node(&h, &bytes)?;
                kids.clear();
                node_children(&bytes, &mut kids);
                stack.extend(kids.iter().rev());
            }
        }
    }
    Ok(out)
}

/// Stores a node received from another peer under the hash it was requested by, after checking
/// that the bytes hash to it and decode as a well-formed node. Returns whether it was new.
pub fn import(store: &Store, expected: &Hash, bytes: &[u8]) -> Result<bool> {
    let actual = Hash::of(bytes);
    if actual != *expected {
        return Err(EtchError::HashMismatch {
            expected: *expected,
            actual,
        });
    }
    decode_node(expected, bytes)?;
    store.import(expected, bytes)
}

/// Every entry under `root`, in key order. Loads the whole state: for tests and small states.
pub fn entries(store: &Store, root: &Hash) -> Result<Vec<(Key, Vec<u8>)>> {
    let mut out = Vec::new();
    let mut stack = vec![*root];
    while let Some(h) = stack.pop() {
        if h == empty_root() {
            continue;
        }
        match load(store, &h)? {
            NodeView::Leaf { key, value } => out.push((key, value)),
            NodeView::Branch { children, .. } => stack.extend(children.iter().rev().flatten()),
        }
    }
    Ok(out)
}

/// Checks the whole trie under `root` is present and canonical: each branch deeper than its
/// parent, agreeing with the parent's prefix and nibble, each leaf's key under its branch.
/// Returns the number of entries. Run after a state sync, before trusting the state.
pub fn verify(store: &Store, root: &Hash) -> Result<u64> {
    if *root == empty_root() {
        return Ok(0);
    }
    // (hash, minimum depth, key that the node's first `fixed` nibbles must match, fixed)
    let mut stack = vec![(*root, 0usize, [0u8; 32], 0usize)];
    let mut count = 0u64;
    while let Some((h, min_depth, path, fixed)) = stack.pop() {
        match load(store, &h)? {
            NodeView::Leaf { key, .. } => {
                if common_nibbles(&key, &path) < fixed {
                    return Err(bad(&h, "leaf key is not under its branch"));
                }
                count += 1;
            }
            NodeView::Branch {
                depth,
                prefix,
                children,
            } => {
                let d = usize::from(depth);
                if d < min_depth || common_nibbles(&prefix, &path).min(d) < fixed {
                    return Err(bad(&h, "branch does not fit under its parent"));
                }
                for (i, c) in children.iter().enumerate() {
                    if let Some(c) = c {
                        let mut p = prefix;
                        // Set nibble d of the path to i (i < 16).
                        let nib = u8::try_from(i).unwrap_or(0);
                        if d.is_multiple_of(2) {
                            p[d / 2] |= nib << 4;
                        } else {
                            p[d / 2] |= nib;
                        }
                        stack.push((*c, d + 1, p, d + 1));
                    }
                }
            }
        }
    }
    Ok(count)
}
