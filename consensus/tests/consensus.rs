//! The state machine with real signatures: a refusing signer, and a byzantine minority.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;

use cvx_consensus::sim::{Member, Sim};
use cvx_consensus::{Action, Config, ConnId, Event, Message, Peer};
use cvx_loadgen::{Keypair, SimSigner, Wallet, fast_params, test_net};
use cvx_protocol::consensus::{
    Belief, Block, BlockBody, BlockHeader, Checkpoint, Order, SignedOrder, body_hash,
};
use cvx_protocol::policy::{Request, SignRequest};
use cvx_protocol::{BoundedVec, NetworkId, Timestamp};

fn block(k: &Keypair, network: &NetworkId, ts: u64) -> Arc<Block> {
    let body = BlockBody::new();
    let header = BlockHeader {
        proposer: k.public(),
        timestamp: Timestamp(ts),
        tx_count: 0,
        tx_hash: body_hash(&body),
    };
    Arc::new(Block {
        signature: k.sign_value(network, &header),
        header,
        transactions: body,
    })
}

/// Feed `ev`, answering sign requests with `signer` until quiet; returns every action.
fn drive(p: &mut Peer, signer: &mut SimSigner, now: u64, ev: Event) -> Vec<Action> {
    let mut all = Vec::new();
    let mut queue = vec![ev];
    while let Some(ev) = queue.pop() {
        for a in p.handle(Timestamp(now), ev) {
            if let Action::Sign { id, request } = &a {
                let result = signer.sign(request, Timestamp(now));
                queue.push(Event::SignatureReturned { id: *id, result });
            }
            all.push(a);
        }
    }
    all
}

#[test]
fn simulated_signer_refuses_an_equivocating_order_and_the_peer_carries_on() {
    let net = test_net(
        5,
        &[5_000, 5_000, 5_000, 5_000],
        4,
        1_000_000,
        fast_params(),
    );
    let network = net.genesis.network_id();
    let t = net.genesis.time.0 + 1_000;
    let (x, y) = (
        block(&net.peers[1], &network, t),
        block(&net.peers[2], &network, t + 1),
    );
    let mut peers = net.peers.into_iter();
    let me = peers.next().unwrap();
    let others: Vec<Keypair> = peers.collect();
    let mut signer = SimSigner::new(me, network, common::policy_params());
    // The signer has already committed to consensus on [x] (e.g. before a crash that lost
    // the peer's copy of that order).
    let committed = Order {
        peer: signer.public(),
        timestamp: Timestamp(t),
        checkpoint: Checkpoint::genesis(&network),
        blocks: BoundedVec::try_from_vec(vec![x.id()]).unwrap(),
        proposal: 1,
        consensus: 1,
        finality: 0,
        stake_root: cvx_protocol::hash::Hash::ZERO,
    };
    let req = Request {
        network,
        body: SignRequest::Order {
            order: committed,
            bridge: BoundedVec::new(),
        },
    };
    signer.sign(&req, Timestamp(t)).unwrap();

    let mut p = Peer::new(Config::new(net.genesis.clone(), signer.public()));
    let now = t + 10;
    for b in [&x, &y] {
        drive(
            &mut p,
            &mut signer,
            now,
            Event::Message {
                from: ConnId(1),
                msg: Message::Block(Arc::clone(b)),
            },
        );
    }
    // Everyone else holds [y] with consensus 1: the peer's merge adopts [y] ...
    let mut orders: Vec<SignedOrder> = others
        .iter()
        .map(|k| {
            let order = Order {
                peer: k.public(),
                timestamp: Timestamp(now),
                checkpoint: Checkpoint::genesis(&network),
                blocks: BoundedVec::try_from_vec(vec![y.id()]).unwrap(),
                proposal: 1,
                consensus: 1,
                finality: 0,
                stake_root: cvx_protocol::hash::Hash::ZERO,
            };
            SignedOrder {
                signature: k.sign_value(&network, &order),
                order,
            }
        })
        .collect();
    orders.sort_by_key(|o| o.order.peer);
    let belief = Belief {
        orders: BoundedVec::try_from_vec(orders).unwrap(),
    };
    drive(
        &mut p,
        &mut signer,
        now + 1,
        Event::Message {
            from: ConnId(1),
            msg: Message::Belief(belief),
        },
    );
    for dt in [60, 120, 180] {
        drive(&mut p, &mut signer, now + dt, Event::Tick);
    }
    // ... and the signer refuses to sign it: it would equivocate on the committed prefix.
    assert!(
        p.stats()
            .refusals
            .get("PREFIX_CONFLICT")
            .copied()
            .unwrap_or(0)
            >= 1,
        "{:?}",
        p.stats()
    );
    assert!(
        p.order()
            .is_none_or(|o| o.order.block_at(0) != Some(&y.id())),
        "a refused order is never installed"
    );
    assert!(p.halted().is_none());

    // The peer carries on: it takes a transaction, gets a block signed and broadcasts it,
    // and keeps trying to make orders (the signer keeps refusing the conflicting ones).
    let mut wallet = Wallet::new(network, net.accounts);
    let tx = wallet.transfer(0, 1, 5).unwrap();
    drive(&mut p, &mut signer, now + 100, Event::Transaction(tx));
    let acts = drive(&mut p, &mut signer, now + 200, Event::Tick);
    let produced = acts.iter().any(|a| matches!(a, Action::Broadcast(Message::Block(b)) if b.header.proposer == signer.public()))
        || p.stats().blocks_signed > 0;
    assert!(
        produced,
        "the peer still produces blocks after a refusal: {:?}",
        p.stats()
    );
    for i in 0..10 {
        drive(&mut p, &mut signer, now + 300 + i * 100, Event::Tick);
    }
    assert!(
        p.stats()
            .refusals
            .get("PREFIX_CONFLICT")
            .copied()
            .unwrap_or(0)
            >= 2
    );
    assert!(p.halted().is_none());
}

/// Byzantine peers holding just under 1/3 of stake (equivocating orders claiming
/// finality, future-dated blocks, garbage, replays) under the full fault model.
#[test]
fn byzantine_minority_cannot_make_honest_peers_finalize_conflicting_prefixes() {
    let layouts: [&[u64]; 3] = [
        &[4_000, 4_000, 4_000, 5_900],               // 1 of 4 holds 33.0% − ε
        &[3_000, 3_000, 3_000, 3_000, 2_000, 5_500], // 1 of 6 holds 28.9%
        &[
            2_000, 2_000, 2_000, 2_000, 2_000, 1_000, 1_000, 2_900, 1_000, 1_000,
        ], // 3 of 10 hold 29.0%
    ];
    let mut dropped = 0;
    let mut finalized = 0;
    for seed in 0..40u64 {
        let stakes = layouts[usize::try_from(seed % 3).unwrap()];
        let n = stakes.len();
        // The last (n-1)/3 members are byzantine.
        let byz = (n - 1) / 3;
        let total: u64 = stakes.iter().sum();
        let byz_stake: u64 = stakes[n - byz..].iter().sum();
        assert!(byz_stake * 3 < total, "byzantine stake must stay below 1/3");
        let net = test_net(1_000 + seed, stakes, n + 2, 1_000_000, fast_params());
        let network = net.genesis.network_id();
        let members: Vec<Member> = net
            .peers
            .into_iter()
            .enumerate()
            .map(|(i, k)| {
                if i < n - byz {
                    Member::Honest(Box::new(common::Signer(SimSigner::new(
                        k,
                        network,
                        common::policy_params(),
                    ))))
                } else {
                    Member::Byzantine(Box::new(common::Raw(k)))
                }
            })
            .collect();
        let load = common::Load {
            wallet: Wallet::new(network, net.accounts),
            network,
        };
        let report = Sim::new(
            seed,
            net.genesis,
            members,
            Box::new(load),
            1_500,
            common::tweak,
        )
        .run()
        .unwrap_or_else(|f| panic!("{f}"));
        dropped += report.dropped;
        finalized += report.min_finality;
    }
    assert!(
        dropped > 0,
        "the byzantine members' garbage reached the honest peers and was dropped"
    );
    assert!(
        finalized > 0,
        "honest peers made progress despite the byzantine minority"
    );
}
