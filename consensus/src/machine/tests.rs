//! State-machine tests of the order-acceptance rules (no signatures needed: every drop
//! below happens before the signature check, which the integration tests cover).

use super::*;
use cvx_protocol::consensus::Checkpoint;
use cvx_protocol::ledger::{GenesisAccount, GenesisPeer};
use cvx_protocol::primitives::Name;
use cvx_protocol::{Address, Amount};

use crate::merge::tests::key;

fn genesis(stakes: &[u64]) -> Genesis {
    Genesis {
        network_name: Name::new("unit").unwrap(),
        time: Timestamp(1_000_000),
        accounts: BoundedVec::try_from_vec(
            (0..stakes.len() as u64)
                .map(|i| GenesisAccount {
                    key: key(100 + i),
                    balance: Amount::new(1_000_000).unwrap(),
                })
                .collect(),
        )
        .unwrap(),
        peers: BoundedVec::try_from_vec(
            stakes
                .iter()
                .enumerate()
                .map(|(i, s)| GenesisPeer {
                    key: key(i as u64),
                    controller: Address(i as u64),
                    stake: Amount::new(*s).unwrap(),
                    host: None,
                })
                .collect(),
        )
        .unwrap(),
        params: Params {
            min_stake: Amount::new(1_000).unwrap(),
            fee: Amount::new(1).unwrap(),
            max_block_txs: 100,
            min_block_time_ms: 10,
            max_block_backdate_ms: 10_000,
            max_future_ms: 1_000,
            proposal_hold_ms: 100,
            decay_grace_ms: 60_000,
            decay_time_ms: 60_000,
            decay_floor_ppm: 0,
        },
    }
}

fn peer(stakes: &[u64]) -> Peer {
    let g = genesis(stakes);
    Peer::new(Config::new(g, key(0)))
}

fn order(p: &Peer, from: u64, ts: u64, n: u64, pcf: (u64, u64, u64)) -> SignedOrder {
    SignedOrder {
        order: Order {
            peer: key(from),
            timestamp: Timestamp(ts),
            checkpoint: Checkpoint::genesis(&p.network),
            blocks: BoundedVec::try_from_vec(
                (0..n)
                    .map(|i| Hash([u8::try_from(i).unwrap() + 1; 32]))
                    .collect(),
            )
            .unwrap(),
            proposal: pcf.0,
            consensus: pcf.1,
            finality: pcf.2,
            stake_root: Hash::ZERO,
        },
        signature: Signature([0; 64]),
    }
}

fn feed(p: &mut Peer, now: u64, so: SignedOrder) {
    let mut orders = vec![so];
    orders.sort_by_key(|o| o.order.peer);
    p.handle(
        Timestamp(now),
        Event::Message {
            from: ConnId(1),
            msg: Message::Belief(Belief {
                orders: BoundedVec::try_from_vec(orders).unwrap(),
            }),
        },
    );
}

fn dropped(p: &Peer, d: Dropped) -> u64 {
    p.stats().dropped.get(&d).copied().unwrap_or(0)
}

const NOW: u64 = 1_010_000;

#[test]
fn rule_future_dated_order_is_ignored() {
    let mut p = peer(&[5_000, 5_000]);
    let so = order(&p, 1, NOW + 1_001, 0, (0, 0, 0));
    feed(&mut p, NOW, so);
    assert_eq!(dropped(&p, Dropped::OrderFuture), 1);
    assert!(p.others.is_empty());
}

#[test]
fn rule_inconsistent_order_is_dropped() {
    let mut p = peer(&[5_000, 5_000]);
    let so = order(&p, 1, NOW, 1, (0, 1, 0)); // consensus above proposal
    feed(&mut p, NOW, so);
    assert_eq!(dropped(&p, Dropped::OrderInconsistent), 1);
}

#[test]
fn rule_stale_order_is_dropped_and_the_newest_kept() {
    let mut p = peer(&[5_000, 5_000]);
    let held = order(&p, 1, NOW - 10, 0, (0, 0, 0));
    p.others.insert(key(1), held.clone());
    let older = order(&p, 1, NOW - 20, 1, (0, 0, 0));
    feed(&mut p, NOW, older);
    assert_eq!(dropped(&p, Dropped::OrderStale), 1);
    assert_eq!(p.others.get(&key(1)), Some(&held));
}

#[test]
fn rule_order_with_bad_signature_is_dropped() {
    let mut p = peer(&[5_000, 5_000]);
    let so = order(&p, 1, NOW, 0, (0, 0, 0));
    feed(&mut p, NOW, so);
    assert_eq!(dropped(&p, Dropped::OrderSignature), 1);
}

#[test]
fn rule_orders_are_accepted_by_stake_without_decay() {
    // Peer 1 holds 1,500 (min 1,000); two decay times after the grace its effective stake
    // is ~203. Its order must still pass the stake check (finality counts its stake), so
    // it reaches the signature check instead of being dropped as `OrderMinStake`.
    let mut p = peer(&[5_000, 1_500]);
    let now = 1_000_000 + 60_000 + 2 * 60_000;
    let rec = p.ledger.peer(&key(1)).unwrap();
    assert!(crate::stake::effective_stake(rec, Timestamp(now), p.params()) < 1_000);
    let so = order(&p, 1, now, 0, (0, 0, 0));
    feed(&mut p, now, so);
    assert_eq!(dropped(&p, Dropped::OrderMinStake), 0);
    assert_eq!(dropped(&p, Dropped::OrderSignature), 1);
}

#[test]
fn rule_orders_of_non_peers_and_of_peers_below_minimum_stake_are_dropped() {
    let mut p = peer(&[5_000, 500]);
    let so = order(&p, 1, NOW, 0, (0, 0, 0));
    feed(&mut p, NOW, so);
    assert_eq!(dropped(&p, Dropped::OrderMinStake), 1);
    let so = order(&p, 7, NOW, 0, (0, 0, 0));
    feed(&mut p, NOW, so);
    assert_eq!(dropped(&p, Dropped::OrderNotPeer), 1);
}

#[test]
fn rule_minimum_stake_peers_blocks_are_ignored() {
    let p = peer(&[5_000, 500]);
    let body = BlockBody::new();
    let block = Block {
        header: BlockHeader {
            proposer: key(1),
            timestamp: Timestamp(NOW),
            tx_count: 0,
            tx_hash: body_hash(&body),
        },
        signature: Signature([0; 64]),
        transactions: body,
    };
    let id = block.id();
    let mut p = p;
    p.blocks.insert(id, Arc::new(block));
    assert_eq!(p.block_status(&id, Timestamp(NOW)), BlockStatus::Invalid);
}

#[test]
fn rule_future_dated_block_status_is_future() {
    let mut p = peer(&[5_000, 5_000]);
    let body = BlockBody::new();
    let block = Block {
        header: BlockHeader {
            proposer: key(1),
            timestamp: Timestamp(NOW + 1_001),
            tx_count: 0,
            tx_hash: body_hash(&body),
        },
        signature: Signature([0; 64]),
        transactions: body,
    };
    let id = block.id();
    p.blocks.insert(id, Arc::new(block));
    assert_eq!(p.block_status(&id, Timestamp(NOW)), BlockStatus::Future);
    assert!(matches!(
        p.block_status(&id, Timestamp(NOW + 1)),
        BlockStatus::Valid { .. }
    ));
}

#[test]
fn peer_asks_the_signer_and_never_acts_before_the_answer() {
    let mut p = peer(&[5_000, 5_000]);
    let acts = p.handle(Timestamp(NOW), Event::Tick);
    let sign: Vec<&Request> = acts
        .iter()
        .filter_map(|a| match a {
            Action::Sign { request, .. } => Some(request),
            _ => None,
        })
        .collect();
    assert_eq!(
        sign.len(),
        1,
        "the first merge asks for an order signature: {acts:?}"
    );
    assert!(
        p.order().is_none(),
        "no order is installed before the signature returns"
    );
    // A slow signer: ticks do not ask again while the request is outstanding.
    for t in 1..50 {
        let acts = p.handle(Timestamp(NOW + t), Event::Tick);
        assert!(!acts.iter().any(|a| matches!(
            a,
            Action::Sign {
                request: Request {
                    body: SignRequest::Order { .. },
                    ..
                },
                ..
            }
        )));
    }
}
