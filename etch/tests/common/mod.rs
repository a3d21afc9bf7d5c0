//! Helpers shared by the integration tests: temporary directories, a small deterministic RNG,
//! and the test record formats.
#![allow(dead_code, clippy::unwrap_used)]
// Test code: RNG and index arithmetic truncate on purpose.
#![allow(
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    clippy::cast_lossless
)]

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use cvx_etch::Hash;

/// A directory under the system temp dir, removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static N: AtomicU64 = AtomicU64::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let p = std::env::temp_dir().join(format!("etch-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    pub fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// splitmix64: deterministic, seedable, good enough for choosing test points.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    /// A fresh seed (or `CVX_ETCH_SEED`), printed so a failure names it. The kill
    /// moments also depend on timing, so a seed replays the choices, not the schedule.
    pub fn from_time() -> Rng {
        let seed = std::env::var("CVX_ETCH_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                let t = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_nanos() as u64;
                t ^ u64::from(std::process::id()) << 32
            });
        eprintln!("etch test seed: {seed} (CVX_ETCH_SEED={seed} reuses it)");
        Rng(seed)
    }

    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in [lo, hi).
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo).max(1)
    }

    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

/// Deterministic record number `i`: varying length, unique content.
pub fn rec(i: u64) -> Vec<u8> {
    let mut v = format!("rec {i}:").into_bytes();
    let n = (i * 7919 % 300) as usize;
    v.extend((0..n).map(|k| (i as u8).wrapping_add(k as u8)));
    v
}

/// A record that refers to other records: b"N" ‖ count u8 ‖ hashes ‖ body.
pub fn node(children: &[Hash], body: &[u8]) -> Vec<u8> {
    let mut v = vec![b'N', children.len() as u8];
    for c in children {
        v.extend_from_slice(&c.0);
    }
    v.extend_from_slice(body);
    v
}

/// The children function for `node` records (anything else has none).
pub fn node_children(bytes: &[u8], out: &mut Vec<Hash>) {
    if bytes.len() >= 2 && bytes[0] == b'N' {
        let n = bytes[1] as usize;
        for i in 0..n {
            let at = 2 + 32 * i;
            if let Some(h) = bytes.get(at..at + 32) {
                out.push(Hash(h.try_into().unwrap()));
            }
        }
    }
}

/// Chain node `i`: refers to the previous head and to a side record; body holds `i`.
pub fn chain_node(prev: Option<Hash>, side: Hash, i: u64) -> Vec<u8> {
    let mut kids = vec![side];
    if let Some(p) = prev {
        kids.push(p);
    }
    node(&kids, format!("chain {i}").as_bytes())
}

pub fn side_rec(tag: &str, i: u64) -> Vec<u8> {
    format!("side {tag} {i}").into_bytes()
}

/// Walks a chain from `head`, checking every node and side record is present and intact.
/// Returns the head's index.
pub fn check_chain(store: &cvx_etch::Store, head: Hash, tag: &str) -> u64 {
    let mut h = Some(head);
    let mut top = None;
    let mut expect: Option<u64> = None;
    while let Some(cur) = h {
        let bytes = store
            .get(&cur)
            .unwrap_or_else(|e| panic!("chain node {cur} unreadable: {e}"))
            .unwrap_or_else(|| panic!("chain node {cur} missing"));
        assert_eq!(Hash::of(&bytes), cur, "wrong bytes returned for {cur}");
        let mut kids = Vec::new();
        node_children(&bytes, &mut kids);
        let body = std::str::from_utf8(&bytes[2 + 32 * kids.len()..]).unwrap();
        let i: u64 = body.strip_prefix("chain ").unwrap().parse().unwrap();
        if let Some(e) = expect {
            assert_eq!(i, e, "chain skips");
        }
        top.get_or_insert(i);
        let side = store.get(&kids[0]).unwrap().expect("side record missing");
        assert_eq!(side, side_rec(tag, i));
        expect = i.checked_sub(1);
        h = kids.get(1).copied();
        if h.is_none() {
            assert_eq!(i, 0, "chain ends early");
        }
    }
    top.unwrap()
}
