//! Garbage collection: keeps what the roots reach, drops the rest, can be interrupted, and runs
//! while other threads write and read.
#![allow(clippy::unwrap_used)]
// Test code: RNG and index arithmetic truncate on purpose.
#![allow(
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    clippy::cast_lossless
)]

mod common;

use std::ops::ControlFlow;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use common::{TempDir, chain_node, check_chain, node, node_children, side_rec};
use cvx_etch::{ErrorKind, GcOutcome, GcPhase, Hash, Store};

fn build_chain(s: &Store, tag: &str, from: u64, to: u64, mut prev: Option<Hash>) -> Option<Hash> {
    for i in from..to {
        let side = s.put(&side_rec(tag, i)).unwrap();
        prev = Some(s.put(&chain_node(prev, side, i)).unwrap());
    }
    prev
}

#[test]
fn keeps_reachable_drops_unreachable_and_reports_progress() {
    let dir = TempDir::new("gc");
    let path = dir.join("store");
    let (s, _) = Store::open(&path).unwrap();
    let head = build_chain(&s, "a", 0, 5000, None).unwrap();
    let junk: Vec<Hash> = (0..5000)
        .map(|i| s.put(format!("junk {i}").as_bytes()).unwrap())
        .collect();
    // A shared subtree reached twice, and a dangling reference.
    let leaf = s.put(b"shared").unwrap();
    let two = s
        .put(&node(&[leaf, leaf, Hash::of(b"not stored")], b"two"))
        .unwrap();
    s.set_root("state", Some(head)).unwrap();
    s.set_root("peer", Some(two)).unwrap();
    s.checkpoint().unwrap();
    let before = s.stats().unwrap();

    let mut phases = Vec::new();
    let out = s
        .collect_garbage(&node_children, &mut |p| {
            phases.push(p.phase);
            ControlFlow::Continue(())
        })
        .unwrap();
    let GcOutcome::Done(report) = out else {
        panic!("interrupted")
    };
    assert_eq!(report.records_after, 10_000 + 2);
    assert_eq!(report.dangling, 1);
    assert!(report.bytes_after < report.bytes_before);
    assert!(report.generation > before.generation);
    assert!(phases.contains(&GcPhase::Copying) && phases.contains(&GcPhase::Swapping));
    assert!(
        phases.iter().filter(|p| **p == GcPhase::Copying).count() > 1,
        "progress is reported"
    );

    check_chain(&s, head, "a");
    assert_eq!(s.get(&leaf).unwrap().unwrap(), b"shared");
    for j in &junk {
        assert_eq!(s.get(j).unwrap(), None);
    }
    // Durable as it stands: reopen and look again.
    drop(s);
    let (s, report) = Store::open(&path).unwrap();
    assert!(report.is_clean(), "{report:?}");
    assert_eq!(report.records, 10_002);
    check_chain(&s, head, "a");
    assert!(!dir.join("store.gc").exists());
}

#[test]
fn interrupted_collection_leaves_the_store_unchanged() {
    let dir = TempDir::new("gcstop");
    let path = dir.join("store");
    let (s, _) = Store::open(&path).unwrap();
    let head = build_chain(&s, "b", 0, 10_000, None);
    let junk = s.put(b"junk").unwrap();
    s.set_root("state", head).unwrap();
    s.checkpoint().unwrap();
    let mut calls = 0;
    let out = s
        .collect_garbage(&node_children, &mut |_| {
            calls += 1;
            if calls == 3 {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        })
        .unwrap();
    assert_eq!(out, GcOutcome::Interrupted);
    assert!(!dir.join("store.gc").exists(), "temporary file removed");
    assert_eq!(s.get(&junk).unwrap().unwrap(), b"junk");
    check_chain(&s, head.unwrap(), "b");
}

#[test]
fn concurrent_writers_and_readers_during_collection() {
    let dir = TempDir::new("gcconc");
    let path = dir.join("store");
    let (s, _) = Store::open(&path).unwrap();
    let base = build_chain(&s, "base", 0, 20_000, None);
    s.set_root("base", base).unwrap();
    for i in 0..20_000 {
        s.put(format!("old junk {i}").as_bytes()).unwrap();
    }
    s.checkpoint().unwrap();
    let s = Arc::new(s);
    let stop = Arc::new(AtomicBool::new(false));

    let mut writers = Vec::new();
    for t in 0..2 {
        let (s, stop) = (Arc::clone(&s), Arc::clone(&stop));
        writers.push(std::thread::spawn(move || {
            let tag = format!("w{t}");
            let mut prev = None;
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) || i < 500 {
                prev = build_chain(&s, &tag, i, i + 10, prev);
                i += 10;
                s.put(format!("{tag} junk {i}").as_bytes()).unwrap();
                s.set_root(&tag, prev).unwrap();
                if i % 1000 == 0 {
                    s.checkpoint().unwrap();
                }
            }
            (tag, prev.unwrap(), i)
        }));
    }
    let reader = {
        let (s, stop) = (Arc::clone(&s), Arc::clone(&stop));
        std::thread::spawn(move || {
            let mut reads = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let h = s.root("base").unwrap().unwrap();
                let v = s.get(&h).unwrap().unwrap();
                assert_eq!(Hash::of(&v), h);
                reads += 1;
            }
            reads
        })
    };
    let mut swaps = 0;
    for _ in 0..3 {
        let out = s
            .collect_garbage(&node_children, &mut |_| ControlFlow::Continue(()))
            .unwrap();
        assert!(matches!(out, GcOutcome::Done(_)));
        swaps += 1;
    }
    stop.store(true, Ordering::Relaxed);
    let reads = reader.join().unwrap();
    assert!(reads > 0);
    let results: Vec<_> = writers.into_iter().map(|w| w.join().unwrap()).collect();
    assert_eq!(swaps, 3);
    // Everything the writers made reachable survived the collections, read live and after reopen.
    for (tag, head, n) in &results {
        assert_eq!(check_chain(&s, *head, tag), n - 1);
    }
    check_chain(&s, base.unwrap(), "base");
    let s = Arc::into_inner(s).unwrap();
    s.close().unwrap();
    let (s, _) = Store::open(&path).unwrap();
    for (tag, head, _) in &results {
        assert_eq!(s.root(tag).unwrap(), Some(*head));
        check_chain(&s, *head, tag);
    }
    assert_eq!(s.get(&Hash::of(b"old junk 7")).unwrap(), None);
}

#[test]
fn only_one_collection_at_a_time() {
    let dir = TempDir::new("gcbusy");
    let (s, _) = Store::open(dir.join("store")).unwrap();
    let head = build_chain(&s, "c", 0, 3000, None);
    s.set_root("state", head).unwrap();
    let s = &s;
    let mut inner = None;
    let out = s
        .collect_garbage(&node_children, &mut |_| {
            if inner.is_none() {
                inner = Some(
                    s.collect_garbage(&node_children, &mut |_| ControlFlow::Continue(()))
                        .map_err(|e| e.kind()),
                );
            }
            ControlFlow::Continue(())
        })
        .unwrap();
    assert!(matches!(out, GcOutcome::Done(_)));
    assert_eq!(inner.unwrap().unwrap_err(), ErrorKind::Busy);
}

/// The write-sequence hazard ([`cvx_etch::GcHold`]): a writer puts a child, a collection
/// runs whole before the writer puts the parent and points a root at it. Without a hold
/// the child is gone (it was garbage at the snapshot and written before it); with one, the
/// collection cannot snapshot until the sequence is done, and the child survives.
#[test]
fn a_write_sequence_under_a_hold_survives_a_collection_that_starts_in_the_middle() {
    let dir = TempDir::new("gc-hold");
    // Without the hold: the hazard is real (this is what the hold is for).
    {
        let (s, _) = Store::open(dir.join("bare")).unwrap();
        let child = s.put(b"child").unwrap();
        let GcOutcome::Done(_) = s
            .collect_garbage(&node_children, &mut |_| ControlFlow::Continue(()))
            .unwrap()
        else {
            panic!("interrupted")
        };
        let parent = s.put(&node(&[child], b"parent")).unwrap();
        s.set_root("state", Some(parent)).unwrap();
        assert_eq!(s.get(&child).unwrap(), None, "the child was collected");
    }
    // With the hold: the collection waits for the sequence, then keeps everything.
    let (s, _) = Store::open(dir.join("held")).unwrap();
    let s = Arc::new(s);
    let hold = s.hold_gc().unwrap();
    let child = s.put(b"child").unwrap();
    let started = Arc::new(AtomicBool::new(false));
    let gc = {
        let (s, started) = (Arc::clone(&s), Arc::clone(&started));
        std::thread::spawn(move || {
            started.store(true, Ordering::SeqCst);
            s.collect_garbage(&node_children, &mut |_| ControlFlow::Continue(()))
                .unwrap()
        })
    };
    while !started.load(Ordering::SeqCst) {
        std::thread::yield_now();
    }
    // Give the collection every chance to run ahead of the parent.
    std::thread::sleep(std::time::Duration::from_millis(50));
    let parent = s.put(&node(&[child], b"parent")).unwrap();
    s.set_root("state", Some(parent)).unwrap();
    drop(hold);
    let GcOutcome::Done(report) = gc.join().unwrap() else {
        panic!("interrupted")
    };
    assert_eq!(report.dangling, 0);
    assert_eq!(s.get(&child).unwrap().unwrap(), b"child");
    assert!(s.get(&parent).unwrap().is_some());
}
