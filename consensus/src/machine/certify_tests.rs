//! `Peer::certificate` on a real 4-peer network (real signers, real signatures), and the
//! resync trigger.

use std::collections::VecDeque;

use cvx_loadgen::{Keypair, SimSigner, TestNet, Wallet, fast_params, test_net};
use cvx_protocol::certificate::{
    CertDecision, DEFAULT_TRUST_PERIOD_MS, TrustedTable, decide_certificate, verify_certificate,
};
use cvx_protocol::ledger::Genesis;
use cvx_protocol::policy::{PolicyParams, Watermark};

use super::*;

struct Net {
    network: NetworkId,
    peers: Vec<Peer>,
    signers: Vec<SimSigner>,
    keys: Vec<Keypair>,
    wallet: Wallet,
    genesis: Genesis,
    now: u64,
}

fn net(seed: u64) -> Net {
    let TestNet {
        genesis,
        peers,
        accounts,
    } = test_net(seed, &[5_000; 4], 8, 1_000_000, fast_params());
    let network = genesis.network_id();
    let keys: Vec<Keypair> = (0..4).map(|i| Keypair::derive("peer", seed, i)).collect();
    let signers = peers
        .into_iter()
        .map(|k| SimSigner::new(k, network, PolicyParams::default()))
        .collect::<Vec<_>>();
    let machines = keys
        .iter()
        .map(|k| {
            let mut cfg = Config::new(genesis.clone(), k.public());
            cfg.keep_finalized = 4;
            Peer::new(cfg)
        })
        .collect();
    Net {
        network,
        peers: machines,
        signers,
        keys,
        wallet: Wallet::new(network, accounts),
        now: genesis.time.0 + 1_000,
        genesis,
    }
}

impl Net {
    /// Run every peer for `ms` (10 ms ticks, instant delivery, instant signer), with a
    /// transaction every 50 ms so blocks are made.
    fn run(&mut self, ms: u64) {
        let end = self.now + ms;
        while self.now < end {
            self.now += 10;
            if self.now % 50 < 10
                && let Some(tx) = self.wallet.transfer(0, 1, 1)
            {
                self.deliver(0, Event::Transaction(tx));
            }
            for i in 0..self.peers.len() {
                self.deliver(i, Event::Tick);
            }
        }
    }

    fn deliver(&mut self, first: usize, ev: Event) {
        let now = Timestamp(self.now);
        let mut queue = VecDeque::from([(first, ev)]);
        while let Some((i, ev)) = queue.pop_front() {
            for a in self.peers[i].handle(now, ev) {
                match a {
                    Action::Sign { id, request } => {
                        let result = self.signers[i].sign(&request, now);
                        queue.push_back((i, Event::SignatureReturned { id, result }));
                    }
                    Action::Broadcast(msg) => {
                        for j in (0..self.peers.len()).filter(|j| *j != i) {
                            let from = ConnId(i as u64);
                            queue.push_back((
                                j,
                                Event::Message {
                                    from,
                                    msg: msg.clone(),
                                },
                            ));
                        }
                    }
                    Action::Send { to, msg } => {
                        let j = usize::try_from(to.0).unwrap();
                        let from = ConnId(i as u64);
                        queue.push_back((j, Event::Message { from, msg }));
                    }
                    _ => {}
                }
            }
        }
    }

    fn genesis_table(&self) -> TrustedTable {
        TrustedTable {
            position: 0,
            confirmed_at: self.genesis.time,
            table: stake_table(
                &State::from_genesis(&self.genesis),
                self.genesis.params.min_stake,
            ),
        }
    }
}

/// Peer `i` re-signs its order held by `p` over another checkpoint chain (every position
/// differs): a member that moved to a chain of its own.
fn resign_on_another_chain(p: &mut Peer, n: &Net, i: usize) {
    let k = n.keys[i].public();
    let mut order = p.others.get(&k).expect("held").order.clone();
    order.checkpoint.chain = Hash([0xee; 32]);
    order.timestamp = Timestamp(n.now + 1);
    let signature = n.keys[i].sign_value(&n.network, &order);
    p.others.insert(k, SignedOrder { order, signature });
}

/// `req` verifies against the genesis table, and a signer far behind (a fresh watermark)
/// takes it: its watermark after.
fn far_signer_takes(n: &Net, req: &CertRequest) -> Watermark {
    let trusted = n.genesis_table();
    let now = Timestamp(n.now);
    let table = verify_certificate(&n.network, &trusted, req, now, DEFAULT_TRUST_PERIOD_MS)
        .expect("valid against the genesis table");
    assert_eq!(table, trusted.table);
    match decide_certificate(
        &n.network,
        &Watermark::default(),
        &trusted,
        req,
        now,
        DEFAULT_TRUST_PERIOD_MS,
    ) {
        CertDecision::Allow { watermark, .. } => watermark,
        CertDecision::Refuse(r) => panic!("refused: {r:?}"),
    }
}

#[test]
fn a_peer_that_sees_three_of_four_fresh_orders_builds_a_certificate_the_signer_accepts() {
    let mut n = net(7);
    n.run(1_500);
    let p = &n.peers[0];
    let fin = p.points().2;
    assert!(fin >= 5, "the network finalized blocks: {:?}", p.points());
    let req = p.certificate().expect("all four orders are in view");
    let cert = &req.certificate;
    assert!(cert.votes.len() >= 3);
    assert!(cert.anchor.position <= fin && cert.anchor.position >= p.chain().0.position);
    assert_eq!(
        p.chain_value_at(cert.anchor.position),
        Some(cert.anchor.chain)
    );
    // A signer far behind (a fresh watermark) catches up to the anchor.
    let watermark = far_signer_takes(&n, &req);
    assert_eq!(watermark.consensus, Some(cert.anchor));
    assert_eq!(watermark.finality, cert.anchor.position);

    // Only two of four (the own order and one other), and no orders kept from the last
    // finality step: no certificate.
    let mut two = n.peers.remove(0);
    let keep = n.keys[1].public();
    two.others.retain(|k, _| *k == keep);
    two.finalized_by = None;
    assert!(two.certificate().is_none(), "2 of 4 is not more than 2/3");

    // An order on another chain is left out: re-sign peer 2's order over another
    // checkpoint chain (every position differs); peers 0, 1 and 3 still make a quorum.
    let mut p = n.peers.remove(0); // was peer 1
    let k2 = n.keys[2].public();
    resign_on_another_chain(&mut p, &n, 2);
    let req = p.certificate().expect("peers 0, 1 and 3 are a quorum");
    assert!(
        req.certificate.votes.iter().all(|v| v.peer != k2),
        "the other chain's vote is left out"
    );
    far_signer_takes(&n, &req);
    // Without peer 3 the off-chain order cannot make up the quorum.
    let k3 = n.keys[3].public();
    p.others.remove(&k3);
    p.finalized_by = None;
    assert!(p.certificate().is_none());
}

/// The long-outage seed 9700 in small: the own finality was made with the lock of a
/// member that has since signed orders on another chain, and a third member is gone, so
/// the newest orders no longer hold 2/3 anywhere. The orders kept from the finality step
/// still make a lock certificate at that point, which a signer far behind accepts: its
/// lock moves there, its finality watermark does not.
#[test]
fn a_lock_certificate_from_the_finalizing_orders_when_a_voter_moved_to_another_chain() {
    let mut n = net(11);
    n.run(1_500);
    let mut p = n.peers.remove(0);
    let (k2, k3) = (n.keys[2].public(), n.keys[3].public());
    let kept = p
        .finalized_by
        .clone()
        .expect("finality advanced with 2/3 of locks");
    assert!(kept.anchor.position >= 5, "{:?}", p.points());
    assert!(kept.anchor.position <= p.points().2);
    // Peer 2 re-signs its order on another chain; peer 3's order is gone.
    resign_on_another_chain(&mut p, &n, 2);
    p.others.remove(&k3);
    let req = p
        .certificate()
        .expect("the orders kept from the finality step");
    let cert = &req.certificate;
    assert_eq!(cert.kind, CertKind::Lock);
    assert_eq!(cert.anchor, kept.anchor);
    let v2 = cert
        .votes
        .iter()
        .find(|v| v.peer == k2)
        .expect("peer 2's earlier lock");
    assert!(v2.consensus >= cert.anchor.position);
    let watermark = far_signer_takes(&n, &req);
    assert_eq!(watermark.consensus, Some(cert.anchor));
    assert_eq!(
        watermark.finality, 0,
        "a lock certificate moves only the lock"
    );
    // Without the kept orders there is none.
    p.finalized_by = None;
    assert!(p.certificate().is_none());
}

/// Orders (unsigned: the trigger reads only points and stake) of peers 1..=3 of a 4-peer
/// network with equal stakes, at the given finality each.
fn report(p: &mut Peer, n: &Net, ts: u64, fins: &[(usize, u64)]) {
    for (i, f) in fins {
        let order = Order {
            peer: n.keys[*i].public(),
            timestamp: Timestamp(ts),
            checkpoint: Checkpoint {
                position: *f,
                chain: Hash::ZERO,
            },
            blocks: BoundedVec::new(),
            proposal: *f,
            consensus: *f,
            finality: *f,
            stake_root: Hash::ZERO,
        };
        p.others.insert(
            order.peer,
            SignedOrder {
                order,
                signature: Signature([0; 64]),
            },
        );
    }
}

fn resyncs(p: &mut Peer, now: u64) -> Vec<(u64, u64)> {
    p.handle(Timestamp(now), Event::Tick)
        .into_iter()
        .filter_map(|a| match a {
            Action::Resync {
                finality,
                network_finality,
            } => Some((finality, network_finality)),
            _ => None,
        })
        .collect()
}

#[test]
fn resync_when_more_than_a_third_reports_finality_beyond_the_gap() {
    let n = net(8);
    let mut p = Peer::new(Config::new(n.genesis.clone(), n.keys[0].public()));
    let t = n.now;
    // One peer (1/4) far ahead is not enough: it may be byzantine.
    report(&mut p, &n, t, &[(1, RESYNC_GAP + 100), (2, 3), (3, 3)]);
    assert!(resyncs(&mut p, t).is_empty());
    assert_eq!(p.network_finality(), Some(3));
    // Two (1/2 > 1/3): at once, naming the finality the second-highest reports.
    report(&mut p, &n, t + 1, &[(2, RESYNC_GAP + 50)]);
    assert_eq!(resyncs(&mut p, t + 20), vec![(0, RESYNC_GAP + 50)]);
    // Repeated at most every RESYNC_RETRY_MS while it holds.
    for dt in (40..RESYNC_RETRY_MS).step_by(100) {
        assert!(resyncs(&mut p, t + 20 + dt).is_empty());
    }
    assert_eq!(resyncs(&mut p, t + 20 + RESYNC_RETRY_MS).len(), 1);
    // Within the gap (catching up from orders works): nothing.
    let mut q = Peer::new(Config::new(n.genesis.clone(), n.keys[0].public()));
    report(
        &mut q,
        &n,
        t,
        &[(1, RESYNC_GAP), (2, RESYNC_GAP), (3, RESYNC_GAP)],
    );
    assert!(resyncs(&mut q, t).is_empty());
}

#[test]
fn resync_when_own_finality_stalls_while_the_network_moves_on() {
    let n = net(9);
    let mut p = Peer::new(Config::new(n.genesis.clone(), n.keys[0].public()));
    let t = n.now;
    report(&mut p, &n, t, &[(1, 10), (2, 10), (3, 10)]);
    assert!(resyncs(&mut p, t).is_empty());
    // The network moves on, this peer stays at 0.
    let steps = RESYNC_STALL_MS / 100;
    for k in 1..steps {
        report(&mut p, &n, t + k * 100, &[(1, 10 + k), (2, 10 + k)]);
        let r = resyncs(&mut p, t + k * 100);
        assert!(r.is_empty(), "{k}: {r:?}");
    }
    report(
        &mut p,
        &n,
        t + RESYNC_STALL_MS,
        &[(1, 10 + steps), (2, 10 + steps)],
    );
    assert_eq!(resyncs(&mut p, t + RESYNC_STALL_MS), vec![(0, 10 + steps)]);
}

#[test]
fn no_resync_in_normal_lag_or_when_the_whole_network_stands_still() {
    let n = net(10);
    // Normal lag: the own finality follows the others' a few positions behind.
    let mut p = Peer::new(Config::new(n.genesis.clone(), n.keys[0].public()));
    let t = n.now;
    for k in 0..200u64 {
        let now = t + k * 50;
        report(&mut p, &n, now, &[(1, k + 3), (2, k + 4), (3, k + 2)]);
        p.finality = k;
        assert!(resyncs(&mut p, now).is_empty(), "{k}");
    }
    // A stalled network (e.g. conflicting locks): half of the stake ahead of this peer,
    // but no one moves. No finality certificate can be built above the others' common
    // finality, so a resync would not help, and it is never asked for.
    let mut q = Peer::new(Config::new(n.genesis.clone(), n.keys[0].public()));
    report(&mut q, &n, t, &[(1, 12), (2, 12), (3, 0)]);
    for k in 0..100u64 {
        assert!(resyncs(&mut q, t + k * 100).is_empty(), "{k}");
    }
    // Once it moves again (this peer still stuck), one resync; when it stands still
    // again for the stall time, none.
    report(&mut q, &n, t + 10_001, &[(1, 13), (2, 13)]);
    assert_eq!(resyncs(&mut q, t + 10_001), vec![(0, 13)]);
    let later = t + 10_001 + RESYNC_RETRY_MS.max(RESYNC_STALL_MS);
    assert!(resyncs(&mut q, later).is_empty());
}

/// More than 2/3 of the stake finalized past this peer and then stood still (the
/// long-outage seed 9700: the blocks this peer lacked aged out, and the network waited for
/// its lock): after the stall time it asks for a resync, and again every retry time.
#[test]
fn resync_when_more_than_two_thirds_finalized_past_a_stalled_peer_that_stands_still() {
    let n = net(12);
    let mut p = Peer::new(Config::new(n.genesis.clone(), n.keys[0].public()));
    let t = n.now;
    report(&mut p, &n, t, &[(1, 12), (2, 12), (3, 9)]);
    for k in 0..RESYNC_STALL_MS / 100 {
        assert!(resyncs(&mut p, t + k * 100).is_empty(), "{k}");
    }
    assert_eq!(resyncs(&mut p, t + RESYNC_STALL_MS), vec![(0, 12)]);
    assert!(resyncs(&mut p, t + RESYNC_STALL_MS + RESYNC_RETRY_MS - 10).is_empty());
    assert_eq!(
        resyncs(&mut p, t + RESYNC_STALL_MS + RESYNC_RETRY_MS),
        vec![(0, 12)]
    );
}

/// The early-block rule's view of the network's speed: every peer that made blocks learns
/// how long its own blocks take to reach finality here (simulated time: instant delivery
/// and signer, 10 ms ticks, so a few rounds of ticks).
#[test]
fn own_blocks_finality_time_is_measured_for_the_early_block_rule() {
    let mut n = net(3);
    assert!(n.peers[0].own_final_ms.is_none());
    n.run(2_000);
    let ms = n.peers[0]
        .own_final_ms
        .expect("peer 0 made blocks (it gets the transactions) and saw them final");
    assert!(
        ms <= 200,
        "instant network: own blocks final in {ms} ms on average"
    );
}
