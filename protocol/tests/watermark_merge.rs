//! Property tests of the watermark merge rule (`cvx-signer import-watermark`): import is
//! monotone (never lowers a field; a higher input gives a higher result), idempotent and
//! commutative (and associative, so the order of several imports does not matter), and
//! what either input refuses as not newer, the merge refuses too.
#![allow(clippy::unwrap_used)]

mod common;

use common::public;
use cvx_protocol::consensus::{BlockHeader, Checkpoint};
use cvx_protocol::hash::hash;
use cvx_protocol::policy::{
    BlockMark, Decision, OrderMark, Policy, PolicyParams, RefuseCode, Request, SignRequest,
    Watermark,
};
use cvx_protocol::{Hash, NetworkId, Timestamp};
use proptest::prelude::*;

/// Small ranges, so ties (equal timestamps or points with different ids) are common.
fn small_hash() -> impl Strategy<Value = Hash> {
    (0u8..4).prop_map(|b| hash(&[b]))
}

fn watermark() -> impl Strategy<Value = Watermark> {
    (
        proptest::option::of((0u64..6, small_hash())),
        proptest::option::of((0u64..6, small_hash())),
        proptest::option::of((0u64..6, small_hash())),
        0u64..6,
    )
        .prop_map(|(b, o, c, finality)| Watermark {
            block: b.map(|(t, id)| BlockMark {
                timestamp: Timestamp(t),
                id,
            }),
            order: o.map(|(t, id)| OrderMark {
                timestamp: Timestamp(t),
                id,
            }),
            consensus: c.map(|(position, chain)| Checkpoint { position, chain }),
            finality,
        })
}

/// Field-wise "at least": the order the merge takes its maximum in.
fn at_least(a: &Watermark, b: &Watermark) -> bool {
    let ge = |x: Option<(u64, Hash)>, y: Option<(u64, Hash)>| match (x, y) {
        (_, None) => true,
        (None, Some(_)) => false,
        (Some(x), Some(y)) => x >= y,
    };
    ge(
        a.block.map(|m| (m.timestamp.0, m.id)),
        b.block.map(|m| (m.timestamp.0, m.id)),
    ) && ge(
        a.order.map(|m| (m.timestamp.0, m.id)),
        b.order.map(|m| (m.timestamp.0, m.id)),
    ) && ge(
        a.consensus.map(|c| (c.position, c.chain)),
        b.consensus.map(|c| (c.position, c.chain)),
    ) && a.finality >= b.finality
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn merge_is_idempotent(a in watermark(), b in watermark()) {
        prop_assert_eq!(a.merge(&a), a.clone());
        let m = a.merge(&b);
        prop_assert_eq!(m.merge(&b), m.clone());
        prop_assert_eq!(m.merge(&a), m);
    }

    #[test]
    fn merge_is_commutative_and_associative(a in watermark(), b in watermark(), c in watermark()) {
        prop_assert_eq!(a.merge(&b), b.merge(&a));
        prop_assert_eq!(a.merge(&b).merge(&c), a.merge(&b.merge(&c)));
    }

    #[test]
    fn merge_is_monotone_and_never_lowers(a in watermark(), b in watermark(), c in watermark()) {
        let m = a.merge(&b);
        prop_assert!(at_least(&m, &a) && at_least(&m, &b));
        prop_assert!(m.covers(&a) && m.covers(&b));
        // A higher input never gives a lower result.
        let higher = a.merge(&c);
        prop_assert!(at_least(&higher.merge(&b), &m));
        // The result is the least such watermark: each field comes from an input.
        prop_assert!(m.block == a.block || m.block == b.block);
        prop_assert!(m.order == a.order || m.order == b.order);
        prop_assert!(m.consensus == a.consensus || m.consensus == b.consensus);
    }

    #[test]
    fn a_block_either_input_refuses_as_not_newer_the_merge_refuses(
        a in watermark(), b in watermark(), t in 0u64..7, tag in 0u8..4,
    ) {
        let key = public(7);
        let network = NetworkId(hash(b"merge props"));
        let policy = Policy { key, network, params: PolicyParams::default() };
        let req = Request {
            network,
            body: SignRequest::Block(BlockHeader {
                proposer: key,
                timestamp: Timestamp(t),
                tx_count: 0,
                tx_hash: hash(&[tag]),
            }),
        };
        let now = Timestamp(10);
        let m = a.merge(&b);
        let under = |w: &Watermark| policy.decide(w, &req, now);
        let merged = under(&m);
        for w in [&a, &b] {
            if under(w).refusal() == Some(RefuseCode::BlockNotNewer) {
                // Refused by the merge too, unless it repeats the merge's own last block
                // (a value the union of the two histories signed: same value, same signature).
                let repeat = matches!(merged, Decision::Allow { repeat: true, .. });
                prop_assert!(merged.refusal() == Some(RefuseCode::BlockNotNewer) || repeat);
            }
        }
        if let Decision::Allow { repeat: false, .. } = merged {
            for w in [&a, &b] {
                prop_assert!(w.block.is_none_or(|mk| mk.timestamp.0 < t));
            }
        }
    }

    #[test]
    fn the_high_watermark_refuses_every_block_and_order_time_up_to_its_mark(
        a in watermark(), until in 0u64..6, t in 0u64..7,
    ) {
        let m = a.merge(&Watermark::high(Timestamp(until)));
        prop_assert!(at_least(&m, &a));
        prop_assert!(m.block.unwrap().timestamp.0 >= until);
        prop_assert!(m.order.unwrap().timestamp.0 >= until);
        let key = public(7);
        let network = NetworkId(hash(b"merge props"));
        let policy = Policy { key, network, params: PolicyParams::default() };
        let req = Request {
            network,
            body: SignRequest::Block(BlockHeader {
                proposer: key,
                timestamp: Timestamp(t),
                tx_count: 0,
                tx_hash: hash(&t.to_le_bytes()),
            }),
        };
        if t <= until {
            prop_assert!(policy.decide(&m, &req, Timestamp(10)).refusal().is_some());
        }
    }
}

proptest! {
    /// The export file carries every watermark exactly, and arbitrary text never panics
    /// the reader (it is refused with a field-naming error instead).
    #[test]
    fn the_export_file_round_trips_and_garbage_is_refused(
        w in watermark(), seq in any::<u64>(), records in any::<u64>(), junk in ".{0,200}",
    ) {
        use cvx_protocol::signer_wire::AuditHead;
        use cvx_protocol::watermark_file::{Exported, WatermarkFile};
        let e = Exported {
            network: NetworkId(hash(b"file")),
            public_key: public(3),
            exported_at: Timestamp(seq / 2),
            state_sequence: seq,
            watermark: w,
            audit_head: AuditHead { records, hash: hash(&records.to_le_bytes()) },
        };
        let text = serde_json::to_string_pretty(&e.to_file()).unwrap();
        let back: WatermarkFile = serde_json::from_str(&text).unwrap();
        prop_assert_eq!(Exported::from_file(&back).unwrap(), e);
        if let Ok(f) = serde_json::from_str::<WatermarkFile>(&junk) {
            let _ = Exported::from_file(&f);
        }
    }
}

#[test]
fn a_tie_at_one_consensus_point_with_two_chains_is_reported() {
    let at = |chain| Watermark {
        consensus: Some(Checkpoint { position: 5, chain }),
        ..Watermark::default()
    };
    assert_eq!(at(hash(b"x")).prefix_disagreement(&at(hash(b"y"))), Some(5));
    assert_eq!(at(hash(b"x")).prefix_disagreement(&at(hash(b"x"))), None);
}
