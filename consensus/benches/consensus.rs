//! Consensus benchmark: four in-process peers with real Ed25519 signatures (simulated
//! signers from cvx-loadgen enforcing the real policy) and no network — messages are
//! handed over in memory, time is the wall clock. Prints finalized tx/s, blocks/s and
//! finality latency p50/p99, next to the batch-verification rate measured in the same
//! run (the bound: every peer verifies every transaction signature once).
//!
//! `cargo bench -p cvx-peer --bench consensus` (release). `CVX_BENCH_TXS` sets the
//! number of transactions of the throughput phase (default 40,000).
#![allow(
    clippy::unwrap_used,
    clippy::print_stdout,
    clippy::cast_precision_loss,
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    clippy::cast_lossless
)]

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use cvx_consensus::{Action, Config, ConnId, Event, Peer};
use cvx_loadgen::{SimSigner, Wallet, fast_params, test_net};
use cvx_protocol::policy::PolicyParams;
use cvx_protocol::{Hash, Signable, Timestamp};

const PEERS: usize = 4;

struct Net {
    peers: Vec<Peer>,
    signers: Vec<SimSigner>,
    inbox: Vec<VecDeque<Event>>,
    t0: Instant,
    genesis_ms: u64,
    finalized_blocks: u64,
    finalized_at: HashMap<Hash, Instant>,
}

impl Net {
    fn now(&self) -> Timestamp {
        Timestamp(self.genesis_ms + u64::try_from(self.t0.elapsed().as_millis()).unwrap())
    }

    /// Run until `done` or `limit`.
    fn pump(
        &mut self,
        limit: Duration,
        done: &mut dyn FnMut(&Self) -> bool,
        feed: &mut dyn FnMut(&mut Self),
    ) {
        let start = Instant::now();
        let mut last = (0usize, Instant::now());
        while start.elapsed() < limit && !done(self) {
            if self.finalized_at.len() != last.0 {
                last = (self.finalized_at.len(), Instant::now());
            } else if last.1.elapsed() > Duration::from_secs(5) {
                for p in &self.peers {
                    let (cp, ids) = p.chain();
                    println!(
                        "STALL: peer points {:?} checkpoint {} len {} mempool {} stats {:?}",
                        p.points(),
                        cp.position,
                        cp.position + ids.len() as u64,
                        p.mempool_len(),
                        p.stats()
                    );
                    let from = usize::try_from(p.points().2.saturating_sub(cp.position)).unwrap();
                    println!(
                        "   ids from finality: {:?}",
                        &ids[from..ids.len().min(from + 12)]
                    );
                }
                panic!("no block finalized for 5 s");
            }
            feed(self);
            for i in 0..PEERS {
                let mut evs: Vec<Event> = self.inbox[i].drain(..).collect();
                evs.push(Event::Tick);
                while let Some(ev) = evs.pop() {
                    let now = self.now();
                    let acts = self.peers[i].handle(now, ev);
                    for a in acts {
                        match a {
                            Action::Sign { id, request } => {
                                let now = self.now();
                                let result = self.signers[i].sign(&request, now);
                                evs.push(Event::SignatureReturned { id, result });
                            }
                            Action::Broadcast(m) => {
                                for j in 0..PEERS {
                                    if j != i {
                                        self.inbox[j].push_back(Event::Message {
                                            from: ConnId(i as u64),
                                            msg: m.clone(),
                                        });
                                    }
                                }
                            }
                            Action::Send { to, msg } => {
                                let j = usize::try_from(to.0).unwrap();
                                self.inbox[j].push_back(Event::Message {
                                    from: ConnId(i as u64),
                                    msg,
                                });
                            }
                            Action::Finalized(f) if i == 0 => {
                                self.finalized_blocks += 1;
                                let at = Instant::now();
                                for t in f.tx_ids {
                                    self.finalized_at.insert(t, at);
                                }
                            }
                            Action::Halted(f) => panic!("halted: {f}"),
                            _ => {}
                        }
                    }
                }
            }
        }
    }
}

fn percentile(v: &mut [Duration], p: usize) -> Duration {
    v.sort_unstable();
    v[(v.len() - 1) * p / 100]
}

fn main() {
    let n_txs: usize = std::env::var("CVX_BENCH_TXS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(40_000);
    let accounts = 2_000;
    let mut params = fast_params();
    params.min_block_time_ms = 10;
    params.max_block_txs = 1024;
    let net = test_net(
        99,
        &[5_000, 6_000, 7_000, 8_000],
        accounts,
        1_000_000_000,
        params,
    );
    let network = net.genesis.network_id();
    let policy = PolicyParams {
        max_future_skew_ms: 1_000,
        max_block_txs: 1024,
    };

    // Pre-sign the load (not timed): round robin over accounts, so sequences stay in order.
    let t = Instant::now();
    let mut wallet = Wallet::new(network, net.accounts);
    let total = n_txs + n_txs / 4;
    let txs: Vec<_> = (0..total)
        .map(|i| {
            wallet
                .transfer(i % accounts, (i + 1) % accounts, 1)
                .unwrap()
        })
        .collect();
    println!(
        "signed {} transactions in {:.2}s",
        txs.len(),
        t.elapsed().as_secs_f64()
    );

    // The bound: batch verification of 1024 transaction signatures under the transaction
    // signature rule (cvx_protocol::cofactored), measured now.
    let sample = &txs[..1024];
    let keys: Vec<_> = sample
        .iter()
        .map(|t| {
            wallet
                .key(usize::try_from(t.tx.origin.0).unwrap())
                .unwrap()
                .public()
        })
        .collect();
    let msgs: Vec<_> = sample.iter().map(|t| t.tx.sign_bytes(&network)).collect();
    let items: Vec<cvx_protocol::cofactored::Item<'_>> = msgs
        .iter()
        .zip(&keys)
        .zip(sample)
        .map(|((m, k), t)| (m, k, &t.signature))
        .collect();
    let t = Instant::now();
    let rounds = 10;
    for _ in 0..rounds {
        assert!(cvx_protocol::cofactored::verify_batch(&items));
    }
    let batch_rate = (1024 * rounds) as f64 / t.elapsed().as_secs_f64();
    let t = Instant::now();
    for (m, k, s) in &items {
        assert!(cvx_protocol::cofactored::verify(m, k, s));
    }
    let single_rate = 1024.0 / t.elapsed().as_secs_f64();

    let signers: Vec<SimSigner> = net
        .peers
        .into_iter()
        .map(|k| SimSigner::new(k, network, policy.clone()))
        .collect();
    let peers: Vec<Peer> = signers
        .iter()
        .map(|s| {
            let mut c = Config::new(net.genesis.clone(), s.public());
            c.min_order_gap_ms = 20;
            c.block_tx_cap = 1024;
            Peer::new(c)
        })
        .collect();
    let mut sim = Net {
        peers,
        signers,
        inbox: (0..PEERS).map(|_| VecDeque::new()).collect(),
        t0: Instant::now(),
        genesis_ms: net.genesis.time.0,
        finalized_blocks: 0,
        finalized_at: HashMap::new(),
    };
    let mut submitted: HashMap<Hash, Instant> = HashMap::new();

    // Phase 1: throughput — submit the whole load at once, each account to one peer.
    let (burst, steady) = txs.split_at(n_txs);
    let t = Instant::now();
    for tx in burst {
        let i = usize::try_from(tx.tx.origin.0).unwrap() % PEERS;
        submitted.insert(tx.id(), Instant::now());
        sim.inbox[i].push_back(Event::Transaction(tx.clone()));
    }
    let want = burst.len();
    sim.pump(
        Duration::from_secs(120),
        &mut |s| s.finalized_at.len() >= want,
        &mut |_| {},
    );
    let elapsed = t.elapsed().as_secs_f64();
    let done = sim.finalized_at.len();
    let blocks = sim.finalized_blocks;
    let tps = done as f64 / elapsed;

    // Phase 2: latency — offer a steady load at half the measured throughput.
    let rate = (tps / 2.0).max(100.0);
    let steady: Vec<_> = steady.to_vec();
    let next = std::cell::Cell::new(0usize);
    let t2 = Instant::now();
    let before = sim.finalized_at.len();
    sim.pump(
        Duration::from_secs(60),
        &mut |s| next.get() >= steady.len() && s.finalized_at.len() >= before + steady.len(),
        &mut |s| {
            let due = ((t2.elapsed().as_secs_f64() * rate) as usize).min(steady.len());
            while next.get() < due {
                let tx = &steady[next.get()];
                let i = usize::try_from(tx.tx.origin.0).unwrap() % PEERS;
                submitted.insert(tx.id(), Instant::now());
                s.inbox[i].push_back(Event::Transaction(tx.clone()));
                next.set(next.get() + 1);
            }
        },
    );
    let phase2 = t2.elapsed().as_secs_f64();
    let got = sim.finalized_at.len() - before;
    let mut lat: Vec<Duration> = steady
        .iter()
        .filter_map(|tx| {
            let id = tx.id();
            Some(
                sim.finalized_at
                    .get(&id)?
                    .duration_since(*submitted.get(&id)?),
            )
        })
        .collect();
    let (p50, p99) = if lat.is_empty() {
        (Duration::ZERO, Duration::ZERO)
    } else {
        (percentile(&mut lat, 50), percentile(&mut lat, 99))
    };

    println!("cvx consensus bench: {PEERS} in-process peers, real Ed25519 signatures, no network");
    println!(
        "  throughput phase: {done} txs finalized in {elapsed:.2}s = {tps:.0} tx/s, {blocks} blocks = {:.1} blocks/s ({:.0} tx/block)",
        blocks as f64 / elapsed,
        done as f64 / blocks.max(1) as f64
    );
    println!(
        "  latency phase: {} of {} txs finalized in {phase2:.2}s at {rate:.0} tx/s offered: finality latency p50 {:.1} ms, p99 {:.1} ms",
        got,
        steady.len(),
        p50.as_secs_f64() * 1e3,
        p99.as_secs_f64() * 1e3
    );
    println!(
        "  bound: batch verification {batch_rate:.0} sig/s (n=1024), single {single_rate:.0} sig/s (the transaction rule)"
    );
    println!(
        "  ratio: finalized tx/s is {:.2} of the batch-verification rate ({PEERS} peers share one machine: each verifies every signature, so the per-machine bound is {:.0} tx/s)",
        tps / batch_rate,
        batch_rate / PEERS as f64
    );
}
