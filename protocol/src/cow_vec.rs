//! A vector in copy-on-write chunks: cloning it copies one pointer per [`CHUNK`] entries,
//! and writing to a shared chunk copies that chunk only. The ledger's accounts and the
//! levels of the account tree live in these, so a snapshot of a ledger of 10^6 accounts
//! (taken after every block for queries and checkpoints) costs about 250 pointer copies,
//! not 200 MB.

use std::sync::Arc;

/// Entries per chunk.
pub const CHUNK: usize = 4096;

/// A copy-on-write chunked vector (append and update only).
#[derive(Clone)]
pub struct CowVec<T> {
    chunks: Vec<Arc<Vec<T>>>,
    len: usize,
}

impl<T> Default for CowVec<T> {
    fn default() -> Self {
        Self {
            chunks: Vec::new(),
            len: 0,
        }
    }
}

impl<T: Clone> CowVec<T> {
    /// The entries of `v`, in order.
    #[must_use]
    pub fn from_vec(v: Vec<T>) -> Self {
        let len = v.len();
        let mut chunks = Vec::with_capacity(len.div_ceil(CHUNK));
        let mut it = v.into_iter().peekable();
        while it.peek().is_some() {
            chunks.push(Arc::new(it.by_ref().take(CHUNK).collect()));
        }
        Self { chunks, len }
    }

    /// Number of entries.
    #[must_use]
    pub const fn len(&self) -> usize {
        self.len
    }

    /// Whether there are no entries.
    #[must_use]
    pub const fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Entry `i`.
    #[must_use]
    pub fn get(&self, i: usize) -> Option<&T> {
        self.chunks.get(i / CHUNK)?.get(i % CHUNK)
    }

    /// Entry `i`, for writing (copies its chunk first if a clone shares it).
    pub fn get_mut(&mut self, i: usize) -> Option<&mut T> {
        Arc::make_mut(self.chunks.get_mut(i / CHUNK)?).get_mut(i % CHUNK)
    }

    /// Append.
    pub fn push(&mut self, x: T) {
        match self.chunks.last_mut() {
            Some(c) if c.len() < CHUNK => Arc::make_mut(c).push(x),
            _ => {
                let mut c = Vec::with_capacity(CHUNK);
                c.push(x);
                self.chunks.push(Arc::new(c));
            }
        }
        self.len += 1;
    }

    /// Every entry, in order.
    pub fn iter(&self) -> impl Iterator<Item = &T> {
        self.chunks.iter().flat_map(|c| c.iter())
    }

    /// A plain copy.
    #[must_use]
    pub fn to_vec(&self) -> Vec<T> {
        self.iter().cloned().collect()
    }

    /// Number of chunks.
    #[must_use]
    pub const fn chunk_count(&self) -> usize {
        self.chunks.len()
    }

    /// Whether chunk `c` is the very same memory in `self` and `other` (then its entries
    /// are equal without comparing them).
    #[must_use]
    pub fn shares_chunk(&self, other: &Self, c: usize) -> bool {
        matches!((self.chunks.get(c), other.chunks.get(c)), (Some(a), Some(b)) if Arc::ptr_eq(a, b))
    }
}

impl<T: Clone> std::ops::Index<usize> for CowVec<T> {
    type Output = T;
    fn index(&self, i: usize) -> &T {
        &self.chunks[i / CHUNK][i % CHUNK]
    }
}

impl<T: Clone + PartialEq> PartialEq for CowVec<T> {
    fn eq(&self, other: &Self) -> bool {
        self.len == other.len
            && self
                .chunks
                .iter()
                .zip(&other.chunks)
                .all(|(a, b)| Arc::ptr_eq(a, b) || a == b)
    }
}

impl<T: Clone + Eq> Eq for CowVec<T> {}

impl<T> std::fmt::Debug for CowVec<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CowVec").field("len", &self.len).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_clone_shares_until_written_and_reads_as_the_plain_vector() {
        let n = 2 * CHUNK + 5;
        let mut a = CowVec::from_vec((0..n).collect::<Vec<usize>>());
        assert_eq!(a.len(), n);
        assert_eq!(a.to_vec(), (0..n).collect::<Vec<_>>());
        let b = a.clone();
        *a.get_mut(CHUNK + 1).expect("in range") = 0;
        a.push(7);
        assert!(a.shares_chunk(&b, 0) && !a.shares_chunk(&b, 1) && !a.shares_chunk(&b, 2));
        assert_eq!(b[CHUNK + 1], CHUNK + 1, "the clone is unchanged");
        assert_eq!((a[CHUNK + 1], a[n], a.len()), (0, 7, n + 1));
        assert_ne!(a, b);
        let mut c = CowVec::default();
        for i in 0..=n {
            c.push(if i == CHUNK + 1 {
                0
            } else if i == n {
                7
            } else {
                i
            });
        }
        assert_eq!(c, a);
        assert!(a.get(n + 1).is_none());
    }
}
