//! Tests of the merge (and `key`, a test key shared with the other modules' tests).

use super::*;
use cvx_protocol::consensus::Checkpoint;
use cvx_protocol::hash::hash;
use cvx_protocol::{BoundedVec, PublicKey};

pub(crate) fn key(i: u64) -> PublicKey {
    (0u64..)
        .find_map(|j| {
            PublicKey::from_bytes(&hash(&[i.to_le_bytes(), j.to_le_bytes()].concat()).0).ok()
        })
        .unwrap()
}

fn id(b: u8) -> Hash {
    Hash([b; 32])
}

const CP: Checkpoint = Checkpoint {
    position: 0,
    chain: Hash::ZERO,
};

fn order(peer: u64, blocks: &[Hash], p: u64, c: u64, f: u64) -> Order {
    Order {
        peer: key(peer),
        timestamp: Timestamp(1),
        checkpoint: CP,
        blocks: BoundedVec::try_from_vec(blocks.to_vec()).unwrap(),
        proposal: p,
        consensus: c,
        finality: f,
        stake_root: Hash::ZERO,
    }
}

fn chains(ids: &[Hash]) -> Vec<Hash> {
    let mut prev = CP.chain;
    ids.iter()
        .map(|i| {
            prev = cvx_protocol::hash::chain_step(&prev, i);
            prev
        })
        .collect()
}

/// Every block valid and appendable, timestamp = its byte value.
fn all_valid(h: &Hash) -> BlockStatus {
    BlockStatus::Valid {
        timestamp: Timestamp(u64::from(h.0[0])),
        appendable: true,
    }
}

fn mp(own_weight: u128, total: u128) -> MergeParams {
    MergeParams {
        now: Timestamp(10_000),
        own_weight,
        total_weight: total,
        own_stake: own_weight,
        total_stake: total,
        proposal_since: Timestamp(0),
        hold_ms: 100,
        max_blocks: 1024,
    }
}

fn run(
    own_ids: &[Hash],
    pcf: (u64, u64, u64),
    voters: &[(Order, u128)],
    own_w: u128,
    total: u128,
) -> Merged {
    run_with(own_ids, pcf, voters, &mp(own_w, total), &all_valid).unwrap()
}

fn run_with(
    own_ids: &[Hash],
    pcf: (u64, u64, u64),
    voters: &[(Order, u128)],
    p: &MergeParams,
    status: &dyn Fn(&Hash) -> BlockStatus,
) -> Result<Merged, ForkDetected> {
    run_protected(own_ids, pcf, 0, voters, p, status)
}

fn run_protected(
    own_ids: &[Hash],
    pcf: (u64, u64, u64),
    protect: u64,
    voters: &[(Order, u128)],
    p: &MergeParams,
    status: &dyn Fn(&Hash) -> BlockStatus,
) -> Result<Merged, ForkDetected> {
    let ch = chains(own_ids);
    let own = OwnView {
        checkpoint: CP,
        ids: own_ids,
        chains: &ch,
        proposal: pcf.0,
        protect,
        consensus: pcf.1,
        finality: pcf.2,
        catch_up: None,
    };
    let vs: Vec<Voter<'_>> = voters
        .iter()
        .map(|(o, w)| Voter {
            order: o,
            weight: *w,
            stake: *w,
        })
        .collect();
    merge(&own, &vs, &[], status, p)
}

#[test]
fn rule_winning_block_per_position_has_the_most_stake() {
    let (x, y) = (id(9), id(5));
    let m = run(
        &[],
        (0, 0, 0),
        &[(order(1, &[x], 1, 0, 0), 50), (order(2, &[y], 1, 0, 0), 30)],
        20,
        100,
    );
    assert_eq!(m.ids[0], x, "x has 50 against 30");
    assert_eq!(
        m.ids,
        vec![x, y],
        "the losing block is appended as a new block"
    );
}

#[test]
fn rule_ties_go_to_the_lowest_block_hash() {
    let (hi, lo) = (id(9), id(5));
    let m = run(
        &[],
        (0, 0, 0),
        &[
            (order(1, &[hi], 1, 0, 0), 40),
            (order(2, &[lo], 1, 0, 0), 40),
        ],
        20,
        100,
    );
    assert_eq!(m.ids[0], lo);
}

#[test]
fn rule_ties_go_to_locked_weight_then_proposing_weight_then_lowest_id() {
    let (hi, lo) = (id(9), id(5));
    // Equal weight; the higher id is locked (consensus over position 0) by its order.
    let m = run(
        &[],
        (0, 0, 0),
        &[
            (order(1, &[hi], 1, 1, 0), 40),
            (order(2, &[lo], 0, 0, 0), 40),
        ],
        20,
        200,
    );
    assert_eq!(m.ids[0], hi, "locked weight breaks the tie");
    // Equal weight, neither locked; the higher id is proposed.
    let m = run(
        &[],
        (0, 0, 0),
        &[
            (order(1, &[hi], 1, 0, 0), 40),
            (order(2, &[lo], 0, 0, 0), 40),
        ],
        20,
        200,
    );
    assert_eq!(m.ids[0], hi, "proposing weight breaks the tie");
}

#[test]
fn rule_block_locked_by_more_than_a_third_wins_outright() {
    let (locked, other) = (id(9), id(5));
    // 35 of 100 locked it (more than 1/3); 50 hold another block, unlocked.
    let voters = [
        (order(1, &[locked], 1, 1, 0), 35),
        (order(2, &[other], 0, 0, 0), 50),
    ];
    let m = run(&[], (0, 0, 0), &voters, 15, 100);
    assert_eq!(m.ids[0], locked);
    // 33 of 100 (not more than 1/3): the plain majority wins.
    let voters = [
        (order(1, &[locked], 1, 1, 0), 33),
        (order(2, &[other], 0, 0, 0), 50),
    ];
    let m = run(&[], (0, 0, 0), &voters, 17, 100);
    assert_eq!(m.ids[0], other);
}

#[test]
fn rule_a_lagging_peer_does_not_lock() {
    let (a, b, c) = (id(1), id(2), id(3));
    // Both others (80 of 100) propose a, b; one has also finalized 2 blocks: nobody
    // finalized beyond our proposal (2), so we lock a, b.
    let voters = [
        (order(1, &[a, b, c], 3, 3, 2), 40),
        (order(2, &[a, b], 2, 2, 0), 40),
    ];
    let m = run(&[a, b], (2, 0, 0), &voters, 20, 100);
    assert_eq!((m.proposal, m.consensus), (2, 2), "{m:?}");
    // The first has finalized 3 blocks (beyond our proposal) and holds 40 of 100, more
    // than 1/3: we lag, and must not lock on our stale view.
    let voters = [
        (order(1, &[a, b, c], 3, 3, 3), 40),
        (order(2, &[a, b], 2, 2, 0), 40),
    ];
    let m = run(&[a, b], (2, 0, 0), &voters, 20, 100);
    assert_eq!((m.proposal, m.consensus), (2, 0), "{m:?}");
}

#[test]
fn rule_blocks_below_a_dropped_proposal_stay_protected() {
    let (a, b, c) = (id(1), id(2), id(3));
    // We proposed a, b (2) and the proposal has dropped to 1. Others hold a, c with 60
    // of 90: c wins the vote at position 1, but not more than 0.67 holds it.
    let voters = [
        (order(1, &[a, c], 1, 0, 0), 40),
        (order(2, &[a, c], 1, 0, 0), 20),
    ];
    let free = run_protected(&[a, b], (1, 0, 0), 0, &voters, &mp(30, 90), &all_valid).unwrap();
    assert_eq!(&free.ids[..2], &[a, c], "unprotected: switches at once");
    let kept = run_protected(&[a, b], (1, 0, 0), 2, &voters, &mp(30, 90), &all_valid).unwrap();
    assert_eq!(&kept.ids[..2], &[a, b], "protected: keeps its block");
}

#[test]
fn rule_exactly_threshold_stake_is_not_enough() {
    let x = id(1);
    // 17 (own) + 50 = 67 of 100: not more than 0.67.
    let m = run(&[], (0, 0, 0), &[(order(1, &[x], 1, 0, 0), 50)], 17, 100);
    assert_eq!(m.proposal, 0);
    // 17 + 51 = 68: enough.
    let m = run(&[], (0, 0, 0), &[(order(1, &[x], 1, 0, 0), 51)], 17, 100);
    assert_eq!(m.proposal, 1);
}

#[test]
fn rule_decayed_stake_weighs_less_and_can_lose_the_threshold() {
    // Full stake 40 each would be enough (20 + 40 + 40 > 67); decayed to 20 it is not.
    let x = id(1);
    let voters = [(order(1, &[x], 1, 0, 0), 20), (order(2, &[], 0, 0, 0), 40)];
    assert_eq!(
        run(&[], (0, 0, 0), &voters, 20, 80).proposal,
        0,
        "20+20 of 80 is not above 0.67"
    );
    let voters = [(order(1, &[x], 1, 0, 0), 40), (order(2, &[x], 1, 0, 0), 40)];
    assert_eq!(run(&[], (0, 0, 0), &voters, 20, 100).proposal, 1);
}

#[test]
fn rule_levels_advance_in_turn_proposal_consensus_finality() {
    let ids = [id(1), id(2)];
    let all_hold = |p, c, f| -> Vec<(Order, u128)> {
        (1..=3).map(|i| (order(i, &ids, p, c, f), 25)).collect()
    };
    let m = run(&ids, (0, 0, 0), &all_hold(0, 0, 0), 25, 100);
    assert_eq!(
        (m.proposal, m.consensus, m.finality),
        (2, 0, 0),
        "others have not proposed yet"
    );
    let m = run(&ids, (2, 0, 0), &all_hold(2, 0, 0), 25, 100);
    assert_eq!((m.proposal, m.consensus, m.finality), (2, 2, 0));
    let m = run(&ids, (2, 2, 0), &all_hold(2, 2, 0), 25, 100);
    assert_eq!((m.proposal, m.consensus, m.finality), (2, 2, 2));
}

#[test]
fn rule_consensus_prefix_is_never_changed() {
    let (a, b, x, y) = (id(1), id(2), id(3), id(4));
    // Own consensus 2 on [a, b]; 90% of stake holds [a, x, y].
    let m = run(
        &[a, b],
        (2, 2, 1),
        &[(order(1, &[a, x, y], 3, 1, 1), 90)],
        10,
        100,
    );
    assert_eq!(&m.ids[..2], &[a, b]);
    assert!(m.consensus >= 2 && m.finality >= 1);
}

#[test]
fn rule_consensus_and_finality_are_never_retracted() {
    let (a, b) = (id(1), id(2));
    let m = run(&[a, b], (2, 2, 1), &[], 10, 100);
    assert_eq!((m.consensus, m.finality), (2, 1));
}

#[test]
fn rule_new_blocks_are_appended_in_timestamp_order() {
    let (t30, t10, t20) = (id(30), id(10), id(20));
    let voters = [
        (order(1, &[t30], 1, 0, 0), 10),
        (order(2, &[t10], 1, 0, 0), 10),
        (order(3, &[t20], 1, 0, 0), 10),
    ];
    // Own weight dominates position 0 with nothing, so every block is "new".
    let m = run(&[], (0, 0, 0), &voters, 70, 100);
    // Position 0 is won by the lowest id among equal stakes (t10), the rest appended by time.
    assert_eq!(m.ids, vec![t10, t20, t30]);
}

#[test]
fn rule_proposal_is_kept_for_the_hold_time_before_switching() {
    let (a, b) = (id(7), id(3));
    let voters = [(order(1, &[b], 1, 0, 0), 90)];
    let mut p = mp(10, 100);
    p.proposal_since = Timestamp(9_950); // changed 50 ms ago, hold is 100 ms
    let m = run_with(&[a], (1, 0, 0), &voters, &p, &all_valid).unwrap();
    assert_eq!(m.ids[0], a, "kept within the hold time");
    assert!(!m.prefix_changed);
    assert!(
        m.held,
        "a kept proposal is reported (the proposals_held counter)"
    );
    p.proposal_since = Timestamp(9_900);
    let m = run_with(&[a], (1, 0, 0), &voters, &p, &all_valid).unwrap();
    assert_eq!(m.ids[0], b, "switched after the hold time");
    assert!(m.prefix_changed);
    assert!(!m.held);
}

#[test]
fn rule_future_dated_blocks_are_never_confirmed() {
    let (f, ok) = (id(200), id(1));
    let status = |h: &Hash| {
        if *h == f {
            BlockStatus::Future
        } else {
            all_valid(h)
        }
    };
    let voters: Vec<(Order, u128)> = (1..=3).map(|i| (order(i, &[f, ok], 2, 2, 2), 30)).collect();
    let m = run_with(&[], (0, 0, 0), &voters, &mp(10, 100), &status).unwrap();
    assert!(
        !m.ids.contains(&f),
        "a future block gets no vote and is not appended"
    );
    assert_eq!(m.finality, 0);
}

#[test]
fn rule_blocks_of_peers_below_minimum_stake_are_ignored() {
    let (bad, good) = (id(2), id(3));
    let status = |h: &Hash| {
        if *h == bad {
            BlockStatus::Invalid
        } else {
            all_valid(h)
        }
    };
    let voters = [
        (order(1, &[bad], 1, 0, 0), 60),
        (order(2, &[good], 1, 0, 0), 30),
    ];
    let m = run_with(&[], (0, 0, 0), &voters, &mp(10, 100), &status).unwrap();
    assert_eq!(m.ids, vec![good]);
}

#[test]
fn rule_unknown_blocks_get_no_vote_until_held() {
    let (u, k) = (id(2), id(3));
    let status = |h: &Hash| {
        if *h == u {
            BlockStatus::Unknown
        } else {
            all_valid(h)
        }
    };
    let voters = [(order(1, &[u], 1, 0, 0), 60), (order(2, &[k], 1, 0, 0), 30)];
    let m = run_with(&[], (0, 0, 0), &voters, &mp(10, 100), &status).unwrap();
    assert_eq!(m.ids, vec![k]);
}

#[test]
fn rule_backdated_blocks_are_not_appended() {
    let old = id(2);
    let status = |h: &Hash| BlockStatus::Valid {
        timestamp: Timestamp(1),
        appendable: *h != old,
    };
    // Own weight wins position 0 with its own (empty) order: `old` would only be appended.
    let m = run_with(
        &[],
        (0, 0, 0),
        &[(order(1, &[old], 1, 0, 0), 10)],
        &mp(90, 100),
        &status,
    )
    .unwrap();
    // It still wins the vote at position 0 (held, valid), because a vote is not an append;
    // with a competing block it would lose; alone it is voted, never appended.
    assert_eq!(m.ids, vec![old]);
    let voters = [
        (order(1, &[id(3)], 1, 0, 0), 10),
        (order(2, &[old], 2, 0, 0), 5),
    ];
    let m = run_with(&[], (0, 0, 0), &voters, &mp(85, 100), &status).unwrap();
    assert_eq!(
        m.ids,
        vec![id(3)],
        "the losing backdated block is not appended"
    );
}

#[test]
fn rule_conflicting_finality_of_more_than_a_third_is_a_fork() {
    let (a, b) = (id(1), id(2));
    let voters = [(order(1, &[b], 1, 1, 1), 35)];
    let err = run_with(&[a], (1, 1, 1), &voters, &mp(65, 100), &all_valid).unwrap_err();
    assert_eq!(err.position, 0);
    // A third or less (one byzantine minority) is not a fork: it is ignored.
    let voters = [(order(1, &[b], 1, 1, 1), 33)];
    assert!(run_with(&[a], (1, 1, 1), &voters, &mp(67, 100), &all_valid).is_ok());
}

#[test]
fn rule_orders_disagreeing_below_consensus_do_not_vote() {
    let (a, b, x) = (id(1), id(2), id(3));
    // A heavy order disagreeing at position 0 (below own consensus 1) cannot pull in x.
    let voters = [(order(1, &[b, x], 2, 0, 0), 80)];
    let m = run(&[a], (1, 1, 0), &voters, 20, 100);
    assert_eq!(m.ids[0], a);
}
