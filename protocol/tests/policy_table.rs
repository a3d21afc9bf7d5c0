//! The signing policy, rule by rule: a table of named cases covering each rule and both
//! sides of each boundary.
#![allow(clippy::unwrap_used)]

mod common;

use common::public;
use cvx_protocol::consensus::{BlockHeader, ChallengeResponse, Checkpoint, Order};
use cvx_protocol::hash::{chain_over, hash};
use cvx_protocol::policy::{
    Decision, Policy, PolicyParams, RefuseCode, Request, SignRequest, Watermark, orders_conflict,
};
use cvx_protocol::{BoundedVec, Hash, NetworkId, Timestamp, Token};

const NOW: Timestamp = Timestamp(1_000_000);

fn net() -> NetworkId {
    NetworkId(hash(b"cvx test network"))
}

fn policy() -> Policy {
    Policy {
        key: public(0),
        network: net(),
        params: PolicyParams::default(),
    }
}

/// Block id at `pos` on chain `branch` (branches share nothing; prefixes are built by
/// choosing the branch per position).
fn id(branch: u8, pos: u64) -> Hash {
    hash(&[&[branch][..], &pos.to_le_bytes()].concat())
}

fn ids(branch: u8, from: u64, to: u64) -> Vec<Hash> {
    (from..to).map(|p| id(branch, p)).collect()
}

/// An order on `branch` with checkpoint at `cp`, `len` blocks in all, and the given points.
fn order(branch: u8, ts: u64, cp: u64, len: u64, fin: u64, cons: u64, prop: u64) -> Order {
    Order {
        peer: public(0),
        timestamp: Timestamp(ts),
        checkpoint: Checkpoint {
            position: cp,
            chain: chain_over(&net().0, &ids(branch, 0, cp)),
        },
        blocks: BoundedVec::try_from_vec(ids(branch, cp, len)).unwrap(),
        proposal: prop,
        consensus: cons,
        finality: fin,
        stake_root: Hash::ZERO,
    }
}

fn req_order(o: Order) -> Request {
    req_order_bridge(o, vec![])
}

fn req_order_bridge(order: Order, bridge: Vec<Hash>) -> Request {
    Request {
        network: net(),
        body: SignRequest::Order {
            order,
            bridge: BoundedVec::try_from_vec(bridge).unwrap(),
        },
    }
}

fn header(ts: u64, txs: u32) -> BlockHeader {
    BlockHeader {
        proposer: public(0),
        timestamp: Timestamp(ts),
        tx_count: txs,
        tx_hash: hash(b"body"),
    }
}

fn req_block(h: BlockHeader) -> Request {
    Request {
        network: net(),
        body: SignRequest::Block(h),
    }
}

fn req_challenge(challenger: u8, responder: u8, token: [u8; 32]) -> Request {
    Request {
        network: net(),
        body: SignRequest::ChallengeResponse(ChallengeResponse {
            challenger: public(challenger),
            responder: public(responder),
            token: Token(token),
        }),
    }
}

/// Decide and return the new watermark, asserting it was allowed.
fn allow(wm: &Watermark, req: &Request) -> Watermark {
    match policy().decide(wm, req, NOW) {
        Decision::Allow { watermark, .. } => watermark,
        Decision::Refuse(r) => panic!("refused: {} {}", r.code, r.detail),
    }
}

fn refused(wm: &Watermark, req: &Request) -> RefuseCode {
    match policy().decide(wm, req, NOW) {
        Decision::Allow { .. } => panic!("allowed, expected a refusal"),
        Decision::Refuse(r) => {
            assert!(!r.detail.is_empty());
            r.code
        }
    }
}

/// The watermark after signing an order on branch 0 with consensus 10, finality 5.
fn after_order() -> Watermark {
    allow(
        &Watermark::default(),
        &req_order(order(0, 100, 0, 12, 5, 10, 12)),
    )
}

// ---- network and key

#[test]
fn wrong_network_is_refused() {
    let mut r = req_block(header(1, 0));
    r.network = NetworkId(hash(b"another network"));
    assert_eq!(refused(&Watermark::default(), &r), RefuseCode::WrongNetwork);
}

#[test]
fn block_by_another_proposer_is_refused() {
    let mut h = header(1, 0);
    h.proposer = public(1);
    assert_eq!(
        refused(&Watermark::default(), &req_block(h)),
        RefuseCode::WrongKey
    );
}

#[test]
fn order_of_another_peer_is_refused() {
    let mut o = order(0, 1, 0, 1, 0, 0, 1);
    o.peer = public(1);
    assert_eq!(
        refused(&Watermark::default(), &req_order(o)),
        RefuseCode::WrongKey
    );
}

// ---- blocks

#[test]
fn first_block_is_allowed_and_recorded() {
    let wm = allow(&Watermark::default(), &req_block(header(5, 3)));
    assert_eq!(wm.block.unwrap().timestamp, Timestamp(5));
}

#[test]
fn block_with_equal_timestamp_is_refused() {
    let wm = allow(&Watermark::default(), &req_block(header(5, 3)));
    assert_eq!(
        refused(&wm, &req_block(header(5, 4))),
        RefuseCode::BlockNotNewer
    );
}

#[test]
fn block_one_ms_newer_is_allowed() {
    let wm = allow(&Watermark::default(), &req_block(header(5, 3)));
    allow(&wm, &req_block(header(6, 3)));
}

#[test]
fn older_block_is_refused() {
    let wm = allow(&Watermark::default(), &req_block(header(5, 3)));
    assert_eq!(
        refused(&wm, &req_block(header(4, 3))),
        RefuseCode::BlockNotNewer
    );
}

#[test]
fn block_at_the_skew_limit_is_allowed() {
    allow(&Watermark::default(), &req_block(header(NOW.0 + 30_000, 0)));
}

#[test]
fn block_one_ms_past_the_skew_limit_is_refused() {
    assert_eq!(
        refused(&Watermark::default(), &req_block(header(NOW.0 + 30_001, 0))),
        RefuseCode::BlockFuture
    );
}

#[test]
fn block_at_the_transaction_cap_is_allowed() {
    allow(&Watermark::default(), &req_block(header(1, 1024)));
}

#[test]
fn block_over_the_transaction_cap_is_refused() {
    assert_eq!(
        refused(&Watermark::default(), &req_block(header(1, 1025))),
        RefuseCode::BlockTooManyTx
    );
}

#[test]
fn identical_block_repeat_is_allowed_with_watermark_unchanged() {
    let wm = allow(&Watermark::default(), &req_block(header(5, 3)));
    match policy().decide(&wm, &req_block(header(5, 3)), NOW) {
        Decision::Allow {
            watermark, repeat, ..
        } => {
            assert!(repeat);
            assert_eq!(watermark, wm);
        }
        Decision::Refuse(r) => panic!("{r:?}"),
    }
}

#[test]
fn repeat_of_an_earlier_block_is_refused() {
    let wm = allow(&Watermark::default(), &req_block(header(5, 3)));
    let wm = allow(&wm, &req_block(header(6, 3)));
    assert_eq!(
        refused(&wm, &req_block(header(5, 3))),
        RefuseCode::BlockNotNewer
    );
}

// ---- order points

#[test]
fn order_with_finality_above_consensus_is_refused() {
    assert_eq!(
        refused(
            &Watermark::default(),
            &req_order(order(0, 1, 0, 10, 6, 5, 10))
        ),
        RefuseCode::OrderInconsistent
    );
}

#[test]
fn order_with_proposal_beyond_its_length_is_refused() {
    assert_eq!(
        refused(
            &Watermark::default(),
            &req_order(order(0, 1, 0, 10, 5, 5, 11))
        ),
        RefuseCode::OrderInconsistent
    );
}

#[test]
fn order_with_checkpoint_above_finality_is_refused() {
    assert_eq!(
        refused(
            &Watermark::default(),
            &req_order(order(0, 1, 6, 10, 5, 8, 10))
        ),
        RefuseCode::OrderInconsistent
    );
}

#[test]
fn order_with_all_points_equal_to_length_is_allowed() {
    allow(
        &Watermark::default(),
        &req_order(order(0, 1, 0, 7, 7, 7, 7)),
    );
}

#[test]
fn first_order_at_any_height_is_allowed() {
    // A fresh signer (state sync join) has no committed prefix yet.
    let wm = allow(
        &Watermark::default(),
        &req_order(order(0, 1, 5000, 5010, 5002, 5005, 5010)),
    );
    assert_eq!(wm.consensus.unwrap().position, 5005);
    assert_eq!(
        wm.consensus.unwrap().chain,
        chain_over(&net().0, &ids(0, 0, 5005))
    );
}

// ---- order timestamps

#[test]
fn order_with_equal_timestamp_is_refused() {
    assert_eq!(
        refused(&after_order(), &req_order(order(0, 100, 0, 13, 5, 10, 13))),
        RefuseCode::OrderNotNewer
    );
}

#[test]
fn order_one_ms_newer_is_allowed() {
    allow(&after_order(), &req_order(order(0, 101, 0, 13, 5, 10, 13)));
}

#[test]
fn order_at_the_skew_limit_is_allowed() {
    allow(
        &after_order(),
        &req_order(order(0, NOW.0 + 30_000, 0, 13, 5, 10, 13)),
    );
}

#[test]
fn order_past_the_skew_limit_is_refused() {
    assert_eq!(
        refused(
            &after_order(),
            &req_order(order(0, NOW.0 + 30_001, 0, 13, 5, 10, 13))
        ),
        RefuseCode::OrderFuture
    );
}

#[test]
fn identical_order_repeat_is_allowed_with_watermark_unchanged() {
    let wm = after_order();
    match policy().decide(&wm, &req_order(order(0, 100, 0, 12, 5, 10, 12)), NOW) {
        Decision::Allow {
            watermark, repeat, ..
        } => {
            assert!(repeat);
            assert_eq!(watermark, wm);
        }
        Decision::Refuse(r) => panic!("{r:?}"),
    }
}

// ---- monotone points

#[test]
fn consensus_below_the_signed_point_is_refused() {
    assert_eq!(
        refused(&after_order(), &req_order(order(0, 101, 0, 12, 5, 9, 12))),
        RefuseCode::ConsensusRegressed
    );
}

#[test]
fn consensus_equal_to_the_signed_point_is_allowed() {
    allow(&after_order(), &req_order(order(0, 101, 0, 12, 5, 10, 11)));
}

#[test]
fn finality_below_the_signed_point_is_refused() {
    assert_eq!(
        refused(&after_order(), &req_order(order(0, 101, 0, 12, 4, 10, 12))),
        RefuseCode::FinalityRegressed
    );
}

#[test]
fn finality_equal_to_the_signed_point_is_allowed() {
    allow(&after_order(), &req_order(order(0, 101, 0, 12, 5, 11, 12)));
}

// ---- the consensus prefix

#[test]
fn different_block_below_the_signed_consensus_is_an_equivocation() {
    // Same points, but block 9 (below consensus 10) differs.
    let mut o = order(0, 101, 0, 12, 5, 10, 12);
    let mut blocks = o.blocks.to_vec();
    blocks[9] = id(1, 9);
    o.blocks = BoundedVec::try_from_vec(blocks).unwrap();
    assert_eq!(
        refused(&after_order(), &req_order(o)),
        RefuseCode::PrefixConflict
    );
}

#[test]
fn different_blocks_above_the_signed_consensus_are_allowed() {
    // Blocks 10 and 11 were only proposed: a peer may change its proposal.
    let mut o = order(0, 101, 0, 12, 5, 10, 12);
    let mut blocks = o.blocks.to_vec();
    blocks[10] = id(1, 10);
    blocks[11] = id(1, 11);
    o.blocks = BoundedVec::try_from_vec(blocks).unwrap();
    allow(&after_order(), &req_order(o));
}

#[test]
fn checkpoint_at_the_signed_consensus_with_matching_chain_is_allowed() {
    let wm = allow(
        &after_order(),
        &req_order(order(0, 101, 10, 14, 10, 12, 14)),
    );
    assert_eq!(wm.consensus.unwrap().position, 12);
}

#[test]
fn checkpoint_at_the_signed_consensus_on_another_chain_is_refused() {
    let o = order(1, 101, 10, 14, 10, 12, 14);
    assert_eq!(
        refused(&after_order(), &req_order(o)),
        RefuseCode::PrefixConflict
    );
}

#[test]
fn checkpoint_above_the_signed_consensus_without_bridge_is_refused() {
    assert_eq!(
        refused(
            &after_order(),
            &req_order(order(0, 101, 20, 30, 20, 25, 30))
        ),
        RefuseCode::PrefixUnknown
    );
}

#[test]
fn checkpoint_above_the_signed_consensus_with_a_short_bridge_is_refused() {
    let r = req_order_bridge(order(0, 101, 20, 30, 20, 25, 30), ids(0, 10, 19));
    assert_eq!(refused(&after_order(), &r), RefuseCode::PrefixUnknown);
}

#[test]
fn checkpoint_above_the_signed_consensus_with_the_right_bridge_is_allowed() {
    let r = req_order_bridge(order(0, 101, 20, 30, 20, 25, 30), ids(0, 10, 20));
    let wm = allow(&after_order(), &r);
    assert_eq!(
        wm.consensus.unwrap().chain,
        chain_over(&net().0, &ids(0, 0, 25))
    );
}

#[test]
fn bridge_from_another_chain_is_refused() {
    // The order sits on branch 1 from position 0; the bridge is branch 1's too, but the
    // committed prefix (branch 0 up to 10) does not lead to the order's checkpoint.
    let r = req_order_bridge(order(1, 101, 20, 30, 20, 25, 30), ids(1, 10, 20));
    assert_eq!(refused(&after_order(), &r), RefuseCode::PrefixConflict);
}

#[test]
fn signed_orders_never_conflict_under_the_reference_predicate() {
    let a = order(0, 100, 0, 12, 5, 10, 12);
    let b = order(1, 101, 0, 12, 5, 10, 12);
    assert!(orders_conflict(&a, &b));
    assert!(!orders_conflict(&a, &order(0, 101, 0, 14, 5, 12, 14)));
}

// ---- challenge responses

#[test]
fn challenge_response_is_allowed_and_leaves_the_watermark() {
    let wm = after_order();
    match policy().decide(&wm, &req_challenge(1, 0, [7; 32]), NOW) {
        Decision::Allow { watermark, .. } => assert_eq!(watermark, wm),
        Decision::Refuse(r) => panic!("{r:?}"),
    }
}

#[test]
fn challenge_response_for_another_responder_is_refused() {
    assert_eq!(
        refused(&Watermark::default(), &req_challenge(1, 2, [7; 32])),
        RefuseCode::WrongKey
    );
}

#[test]
fn challenge_from_the_signer_itself_is_refused() {
    assert_eq!(
        refused(&Watermark::default(), &req_challenge(0, 0, [7; 32])),
        RefuseCode::ChallengeSelf
    );
}

#[test]
fn challenge_with_an_all_zero_token_is_refused() {
    assert_eq!(
        refused(&Watermark::default(), &req_challenge(1, 0, [0; 32])),
        RefuseCode::ChallengeZeroToken
    );
}

#[test]
fn challenge_for_another_network_is_refused() {
    let mut r = req_challenge(1, 0, [7; 32]);
    r.network = NetworkId(hash(b"elsewhere"));
    assert_eq!(refused(&Watermark::default(), &r), RefuseCode::WrongNetwork);
}

#[test]
fn refusal_codes_have_stable_numbers_and_names() {
    for (i, c) in RefuseCode::ALL.iter().enumerate() {
        assert_eq!(*c as usize, i);
        assert!(
            c.name()
                .chars()
                .all(|ch| ch.is_ascii_uppercase() || ch == '_')
        );
    }
}
