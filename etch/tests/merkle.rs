//! Merkle ledger state: order-independent roots, path-only writes, and state sync between two
//! stores by missing-hash walks with hash-checked import.
#![allow(clippy::unwrap_used)]
// Test code: RNG and index arithmetic truncate on purpose.
#![allow(
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    clippy::cast_lossless
)]

mod common;

use std::collections::BTreeMap;

use common::{Rng, TempDir};
use cvx_etch::merkle::{self, Key, StateTx, empty_root};
use cvx_etch::{ErrorKind, Hash, Store};
use proptest::prelude::*;

/// Keys drawn from a small alphabet so long shared prefixes (deep branches) happen often.
fn key() -> impl Strategy<Value = Key> {
    (0u8..4, 0u8..4, any::<[u8; 32]>(), 0usize..32).prop_map(|(a, b, rnd, shared)| {
        let mut k = [a * 0x11; 32];
        k[shared] = b;
        if shared > 20 {
            k[31] ^= rnd[0] & 3;
        } else {
            k[shared..].copy_from_slice(&rnd[shared..]);
        }
        k
    })
}

fn apply(s: &Store, root: Hash, ops: &[(Key, Option<Vec<u8>>)]) -> Hash {
    let mut tx = StateTx::new(s, root);
    for (k, v) in ops {
        match v {
            Some(v) => tx.insert(k, v).unwrap(),
            None => tx.remove(k).unwrap(),
        }
    }
    tx.commit().unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 40, ..ProptestConfig::default() })]

    /// Same final contents, any update order, any batching: same root; contents match a model.
    #[test]
    fn root_is_independent_of_update_order(
        ops in proptest::collection::vec((key(), proptest::option::of(proptest::collection::vec(any::<u8>(), 0..16))), 1..120),
        seed in any::<u64>(),
    ) {
        let dir = TempDir::new("mk");
        let (s, _) = Store::open(dir.join("store")).unwrap();
        // Model: the final state.
        let mut model = BTreeMap::new();
        for (k, v) in &ops {
            match v { Some(v) => { model.insert(*k, v.clone()); } None => { model.remove(k); } }
        }
        // A: the ops in order, one commit per op.
        let mut a = empty_root();
        for op in &ops {
            a = apply(&s, a, std::slice::from_ref(op));
        }
        // B: the final state inserted in a shuffled order, in one batch, after some noise
        // that is later removed.
        let mut fin: Vec<_> = model.iter().map(|(k, v)| (*k, Some(v.clone()))).collect();
        let mut rng = Rng::new(seed);
        for i in (1..fin.len()).rev() {
            fin.swap(i, rng.range(0, i as u64 + 1) as usize);
        }
        let noise: Vec<(Key, Option<Vec<u8>>)> = (0..5).map(|i| ([0xee - i; 32], Some(vec![i]))).collect();
        let b0 = apply(&s, empty_root(), &noise);
        let mut batch = fin.clone();
        batch.extend(noise.iter().map(|(k, _)| (*k, None)));
        let b = apply(&s, b0, &batch);
        prop_assert_eq!(a, b);
        // C: the final state built in bulk, from the shuffled entries plus an overwritten
        // duplicate of each (the later one wins), in a store of its own.
        let dir_c = TempDir::new("mk-build");
        let (sc, _) = Store::open(dir_c.join("store")).unwrap();
        let mut bulk: Vec<(Key, Vec<u8>)> = fin.iter().map(|(k, _)| (*k, b"stale".to_vec())).collect();
        bulk.extend(fin.iter().map(|(k, v)| (*k, v.clone().unwrap())));
        let c = merkle::build(&sc, bulk).unwrap();
        prop_assert_eq!(a, c);
        prop_assert_eq!(merkle::verify(&sc, &c).unwrap(), merkle::verify(&s, &a).unwrap());
        let entries = merkle::entries(&s, &a).unwrap();
        let want: Vec<_> = model.iter().map(|(k, v)| (*k, v.clone())).collect();
        prop_assert_eq!(entries, want);
        prop_assert_eq!(merkle::verify(&s, &a).unwrap(), model.len() as u64);
        for (k, v) in &model {
            prop_assert_eq!(merkle::get(&s, &a, k).unwrap(), Some(v.clone()));
        }
        // Removing everything gives the empty root back.
        let clear: Vec<_> = model.keys().map(|k| (*k, None)).collect();
        prop_assert_eq!(apply(&s, a, &clear), empty_root());
    }
}

fn hashed_key(i: u64) -> Key {
    Hash::of(&i.to_le_bytes()).0
}

#[test]
fn an_update_writes_only_the_nodes_on_its_path() {
    let dir = TempDir::new("mkpath");
    let (s, _) = Store::open(dir.join("store")).unwrap();
    let ops: Vec<_> = (0..5000)
        .map(|i| (hashed_key(i), Some(vec![1u8; 8])))
        .collect();
    let root = apply(&s, empty_root(), &ops);
    let before = s.stats().unwrap().records;
    let root2 = merkle::insert(&s, &root, &hashed_key(77), b"changed").unwrap();
    let written = s.stats().unwrap().records - before;
    // 5000 random keys: depth about log16(5000) ~ 3-4 branches plus the leaf.
    assert!((2..=6).contains(&written), "wrote {written} nodes");
    assert_eq!(
        merkle::get(&s, &root2, &hashed_key(77)).unwrap().unwrap(),
        b"changed"
    );
    assert_eq!(
        merkle::get(&s, &root, &hashed_key(77)).unwrap().unwrap(),
        vec![1u8; 8],
        "old root intact"
    );
    // Setting the same value again writes nothing and keeps the root.
    let before = s.stats().unwrap().records;
    assert_eq!(
        merkle::insert(&s, &root2, &hashed_key(77), b"changed").unwrap(),
        root2
    );
    assert_eq!(s.stats().unwrap().records, before);
}

/// Syncs `root` from `from` into `to` by missing-hash walks; returns nodes transferred.
fn sync(from: &Store, to: &Store, root: &Hash) -> usize {
    let mut moved = 0;
    loop {
        let want = merkle::missing(to, root, 512).unwrap();
        if want.is_empty() {
            return moved;
        }
        for h in want {
            let bytes = from.get(&h).unwrap().unwrap();
            merkle::import(to, &h, &bytes).unwrap();
            moved += 1;
        }
    }
}

#[test]
fn state_sync_by_missing_hashes_reproduces_the_root() {
    let dir = TempDir::new("mksync");
    let (a, _) = Store::open(dir.join("a")).unwrap();
    let (b, _) = Store::open(dir.join("b")).unwrap();
    let ops: Vec<_> = (0..3000)
        .map(|i| (hashed_key(i), Some(format!("account {i}").into_bytes())))
        .collect();
    let root = apply(&a, empty_root(), &ops);
    a.set_root("state", Some(root)).unwrap();

    let moved = sync(&a, &b, &root);
    assert_eq!(
        moved as u64,
        a.stats().unwrap().records,
        "a fresh store fetches every node once"
    );
    assert_eq!(merkle::verify(&b, &root).unwrap(), 3000);
    assert_eq!(
        merkle::entries(&b, &root).unwrap(),
        merkle::entries(&a, &root).unwrap()
    );
    // B rebuilds the same state itself from its synced copy: same root.
    let again = apply(&b, empty_root(), &ops);
    assert_eq!(again, root);

    // A moves on by 50 updates; B catches up by fetching only the changed paths.
    let delta: Vec<_> = (0..50)
        .map(|i| (hashed_key(i * 37), Some(b"new".to_vec())))
        .collect();
    let root2 = apply(&a, root, &delta);
    let moved2 = sync(&a, &b, &root2);
    assert!(moved2 > 50 && moved2 < 50 * 6, "moved {moved2}");
    assert_eq!(
        apply(&b, root, &delta),
        root2,
        "B computes the same new root"
    );
}

#[test]
fn import_checks_each_node() {
    let dir = TempDir::new("mkimport");
    let (s, _) = Store::open(dir.join("store")).unwrap();
    let leaf = {
        let (t, _) = Store::open(dir.join("src")).unwrap();
        let r = merkle::insert(&t, &empty_root(), &[5; 32], b"v").unwrap();
        (r, t.get(&r).unwrap().unwrap())
    };
    let e = merkle::import(&s, &Hash::of(b"other"), &leaf.1).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::HashMismatch);
    // Right hash, but not a node: refused as malformed.
    let junk = b"\x07junk".to_vec();
    let e = merkle::import(&s, &Hash::of(&junk), &junk).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::BadNode);
    assert!(merkle::import(&s, &leaf.0, &leaf.1).unwrap());
    assert_eq!(merkle::get(&s, &leaf.0, &[5; 32]).unwrap().unwrap(), b"v");
    // A missing node is named, not treated as absent data.
    let e = merkle::get(&s, &Hash::of(b"nowhere"), &[0; 32]).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Missing);
}

#[test]
fn gc_with_merkle_children_keeps_the_current_state_only() {
    let dir = TempDir::new("mkgc");
    let (s, _) = Store::open(dir.join("store")).unwrap();
    let ops: Vec<_> = (0..2000)
        .map(|i| (hashed_key(i), Some(vec![0u8; 4])))
        .collect();
    let r1 = apply(&s, empty_root(), &ops);
    let delta: Vec<_> = (0..200)
        .map(|i| (hashed_key(i), Some(vec![1u8; 4])))
        .collect();
    let r2 = apply(&s, r1, &delta);
    s.set_root("state", Some(r2)).unwrap();
    let out = s
        .collect_garbage(&merkle::MerkleChildren, &mut |_| {
            std::ops::ControlFlow::Continue(())
        })
        .unwrap();
    let cvx_etch::GcOutcome::Done(report) = out else {
        panic!()
    };
    assert!(report.records_after < report.records_before);
    assert_eq!(merkle::verify(&s, &r2).unwrap(), 2000);
    assert!(
        !merkle::missing(&s, &r1, 10).unwrap().is_empty(),
        "old state collected"
    );
}

/// A bulk build of nothing is the empty state; one value too large refuses the whole
/// build before anything is written.
#[test]
fn bulk_build_of_nothing_is_empty_and_a_too_large_value_writes_nothing() {
    let dir = TempDir::new("mk-build-edge");
    let (s, _) = Store::open(dir.join("store")).unwrap();
    assert_eq!(merkle::build(&s, Vec::new()).unwrap(), empty_root());
    let before = s.stats().unwrap().records;
    let big = vec![0u8; merkle::MAX_VALUE + 1];
    let e = merkle::build(&s, vec![([1; 32], b"ok".to_vec()), ([2; 32], big)]).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::TooLarge);
    assert_eq!(s.stats().unwrap().records, before, "nothing written");
}
