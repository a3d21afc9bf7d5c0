//! State-machine tests of the order-acceptance rules (no signatures needed: every drop
//! below happens before the signature check, which the integration tests cover).

use super::*;
use cvx_protocol::consensus::Checkpoint;
use cvx_protocol::ledger::{Genesis, GenesisAccount, GenesisPeer};
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

/// One peer of a real 4-peer test network with its simulated signer (answers at once);
/// returns the times at which it asked for block signatures while `feed` ran.
fn block_times(
    block_interval_ms: u64,
    early_block_txs: usize,
    feed: &[(u64, usize)],
    until: u64,
) -> Vec<u64> {
    block_times_at(block_interval_ms, early_block_txs, None, feed, until)
}

/// The same, with the peer's view of its own blocks' finality time preset.
fn block_times_at(
    block_interval_ms: u64,
    early_block_txs: usize,
    own_final_ms: Option<u64>,
    feed: &[(u64, usize)],
    until: u64,
) -> Vec<u64> {
    use cvx_loadgen::{SimSigner, TestNet, Wallet, fast_params, test_net};
    let mut params = fast_params();
    params.min_block_time_ms = 10;
    let TestNet {
        genesis,
        peers,
        accounts,
    } = test_net(7, &[5_000; 4], 8, 1_000_000, params);
    let network = genesis.network_id();
    let key = peers[0].public();
    let mut signer = SimSigner::new(
        peers.into_iter().next().unwrap(),
        network,
        cvx_protocol::policy::PolicyParams::default(),
    );
    let mut wallet = Wallet::new(network, accounts);
    let t0 = genesis.time.0 + 1_000;
    let mut cfg = Config::new(genesis, key);
    cfg.block_interval_ms = block_interval_ms;
    cfg.early_block_txs = early_block_txs;
    cfg.early_block_max_final_ms = 100;
    let mut p = Peer::new(cfg);
    p.own_final_ms = own_final_ms;
    let mut asked = Vec::new();
    for t in 0..until {
        let mut events = vec![Event::Tick];
        for (at, n) in feed {
            if *at == t {
                for _ in 0..*n {
                    events.push(Event::Transaction(wallet.transfer(0, 1, 1).unwrap()));
                }
            }
        }
        let now = Timestamp(t0 + t);
        let mut queue: VecDeque<Event> = events.into();
        while let Some(ev) = queue.pop_front() {
            for a in p.handle(now, ev) {
                if let Action::Sign { id, request } = a {
                    if matches!(request.body, SignRequest::Block(_)) {
                        asked.push(t);
                    }
                    let result = signer.sign(&request, now);
                    queue.push_back(Event::SignatureReturned { id, result });
                }
            }
        }
    }
    asked
}

#[test]
fn a_block_goes_out_early_while_few_transactions_wait_and_keeps_the_pace_under_load() {
    // Network minimum 10 ms; the peer's pace under load 40 ms; early with at most 2 waiting
    // (and at most 2 in the last block).
    // Light load: a transaction 3 ms after a block goes out once the minimum has passed.
    let light = block_times(40, 2, &[(100, 1), (103, 1)], 200);
    assert_eq!(light, vec![100, 110], "light load: {light:?}");
    // Heavy load: 5 transactions wait, so the next block keeps the 40-ms pace.
    let heavy = block_times(40, 2, &[(100, 1), (103, 5)], 200);
    assert_eq!(heavy, vec![100, 140], "under load: {heavy:?}");
    // After a large block the next keeps the pace even if few transactions wait: one
    // quiet moment between two bursts is not a light load.
    let after_burst = block_times(40, 2, &[(100, 5), (113, 1)], 200);
    assert_eq!(
        after_burst,
        vec![100, 140],
        "after a burst: {after_burst:?}"
    );
    // Early blocks off (0): the pace applies to every block.
    let off = block_times(40, 0, &[(100, 1), (103, 1)], 200);
    assert_eq!(off, vec![100, 140], "early blocks off: {off:?}");
    // On a slow network (own blocks final after 150 ms on average, over the 100-ms bound)
    // blocks keep the pace even at light load; on a fast one (50 ms) they go early.
    let slow = block_times_at(40, 2, Some(150), &[(100, 1), (103, 1)], 200);
    assert_eq!(slow, vec![100, 140], "slow network: {slow:?}");
    let fast = block_times_at(40, 2, Some(50), &[(100, 1), (103, 1)], 200);
    assert_eq!(fast, vec![100, 110], "fast network: {fast:?}");
    // A pace below the network's minimum never makes blocks sooner than the minimum.
    let below = block_times(1, 0, &[(100, 1), (103, 5)], 200);
    assert_eq!(below, vec![100, 110], "pace below the minimum: {below:?}");
}
