//! Property test: random put/get/root/checkpoint/reopen/close/GC sequences against an in-memory
//! model of what is live and what is durable.
#![allow(clippy::unwrap_used)]
// Test code: RNG and index arithmetic truncate on purpose.
#![allow(
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    clippy::cast_lossless
)]

mod common;

use std::collections::{BTreeMap, HashMap};
use std::ops::ControlFlow;

use common::TempDir;
use cvx_etch::{GcOutcome, Hash, NoChildren, Store};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Op {
    Put(Vec<u8>),
    /// Get the value of the i-th value ever generated (present or not).
    Get(usize),
    SetRoot(usize, Option<usize>),
    Checkpoint,
    /// Drop without checkpoint (a crash), then reopen.
    Crash,
    /// Close (checkpoint + trim), then reopen.
    Reopen,
    Gc,
}

const NAMES: [&str; 3] = ["belief", "state", "peer"];

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => proptest::collection::vec(any::<u8>(), 0..200).prop_map(Op::Put),
        3 => (0usize..64).prop_map(Op::Get),
        2 => (0usize..3, proptest::option::of(0usize..64)).prop_map(|(n, v)| Op::SetRoot(n, v)),
        2 => Just(Op::Checkpoint),
        1 => Just(Op::Crash),
        1 => Just(Op::Reopen),
        1 => Just(Op::Gc),
    ]
}

#[derive(Debug, Clone, Default, PartialEq)]
struct Model {
    records: HashMap<Hash, Vec<u8>>,
    roots: BTreeMap<String, Hash>,
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn store_matches_model(ops in proptest::collection::vec(op(), 1..40)) {
        let dir = TempDir::new("model");
        let path = dir.join("store");
        let (mut store, _) = Store::open(&path).unwrap();
        let mut live = Model::default();
        let mut durable = Model::default();
        let mut universe: Vec<Vec<u8>> = Vec::new();
        for op in ops {
            match op {
                Op::Put(v) => {
                    let h = store.put(&v).unwrap();
                    prop_assert_eq!(h, Hash::of(&v));
                    live.records.insert(h, v.clone());
                    universe.push(v);
                }
                Op::Get(i) => {
                    if let Some(v) = universe.get(i) {
                        let h = Hash::of(v);
                        prop_assert_eq!(store.get(&h).unwrap(), live.records.get(&h).cloned());
                    }
                }
                Op::SetRoot(n, v) => {
                    let target = v.and_then(|i| universe.get(i)).map(|b| Hash::of(b));
                    store.set_root(NAMES[n], target).unwrap();
                    match target {
                        Some(h) => live.roots.insert(NAMES[n].to_owned(), h),
                        None => live.roots.remove(NAMES[n]),
                    };
                }
                Op::Checkpoint => {
                    store.checkpoint().unwrap();
                    durable = live.clone();
                }
                Op::Crash => {
                    drop(store);
                    let (s, report) = Store::open(&path).unwrap();
                    store = s;
                    prop_assert_eq!(report.records as usize, durable.records.len());
                    live = durable.clone();
                }
                Op::Reopen => {
                    store.close().unwrap();
                    durable = live.clone();
                    let (s, report) = Store::open(&path).unwrap();
                    prop_assert!(report.is_clean(), "{:?}", report);
                    store = s;
                }
                Op::Gc => {
                    let out = store.collect_garbage(&NoChildren, &mut |_| ControlFlow::Continue(())).unwrap();
                    prop_assert!(matches!(out, GcOutcome::Done(_)));
                    let keep: HashMap<Hash, Vec<u8>> = live
                        .roots
                        .values()
                        .filter_map(|h| live.records.get(h).map(|v| (*h, v.clone())))
                        .collect();
                    live.records = keep;
                    durable = live.clone();
                }
            }
            // After every step: the store holds exactly the live model.
            prop_assert_eq!(store.roots().unwrap(), live.roots.clone());
            prop_assert_eq!(store.stats().unwrap().records as usize, live.records.len());
            for v in &universe {
                let h = Hash::of(v);
                prop_assert_eq!(store.get(&h).unwrap(), live.records.get(&h).cloned());
            }
        }
    }
}
