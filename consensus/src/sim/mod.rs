//! Deterministic fault simulation of a whole network of [`Peer`]s.
//!
//! One seed fixes everything: peer count and stakes, network delays, loss, reordering,
//! partitions and heals, crashes and restarts from the last persisted [`Snapshot`],
//! signer latency, byzantine behaviour and the transaction load. Time is simulated; the
//! same seed replays the same run exactly.
//!
//! This module holds no key. Signers, byzantine keys and transactions are supplied
//! through [`SignerModel`], [`RawKey`] and [`TxSource`] (cvx-loadgen implements them for the
//! tests and benchmarks).
//!
//! Invariants checked after every step: no two honest peers finalize different blocks or
//! different state hashes at one position; a peer's finality never regresses (also
//! across a crash and restart); total coins equal the genesis supply; no honest peer
//! halts; after a heal that reconnects more than 0.67 of stake, finality advances within
//! [`RECOVERY_BOUND_MS`].

use std::cmp::Ordering;
use std::collections::{BTreeMap, BinaryHeap, HashMap};
use std::sync::Arc;

use cvx_protocol::consensus::{
    Belief, Block, BlockBody, BlockHeader, Order, SignedOrder, body_hash,
};
use cvx_protocol::hash::chain_over;
use cvx_protocol::ledger::{Genesis, SignedTransaction};
use cvx_protocol::policy::{Refusal, Request};
use cvx_protocol::{BoundedVec, Hash, NetworkId, PublicKey, Signature, Timestamp};

use crate::{Action, Config, ConnId, Event, Message, Peer, Snapshot};

mod byzantine;
mod events;

/// A signer as the simulation sees it (cvx-loadgen's `SimSigner`, wrapped by the tests,
/// implements it with the real policy).
pub trait SignerModel {
    /// Decide and sign at the signer's clock `now`.
    ///
    /// # Errors
    /// The policy's refusal.
    fn sign(&mut self, req: &Request, now: Timestamp) -> Result<Signature, Refusal>;
    /// The signer process crashes and restarts (its durable watermark survives).
    fn crash(&mut self);
}

/// A byzantine peer's key: signs anything, no policy.
pub trait RawKey {
    /// The public key.
    fn public(&self) -> PublicKey;
    /// Sign an order.
    fn sign_order(&self, network: &NetworkId, o: &Order) -> Signature;
    /// Sign a block header.
    fn sign_block(&self, network: &NetworkId, h: &BlockHeader) -> Signature;
}

/// Where client transactions come from.
pub trait TxSource {
    /// The next transaction (the source may also produce invalid ones on purpose).
    fn next_tx(&mut self, rng: &mut Rng) -> Option<SignedTransaction>;
}

/// Bound on recovery after a heal that reconnects more than 0.67 of stake.
pub const RECOVERY_BOUND_MS: u64 = 800;

/// A small deterministic PRNG (SplitMix64).
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// Seeded.
    #[must_use]
    pub const fn new(seed: u64) -> Self {
        Self(seed)
    }
    /// Next 64 bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next_u64() % (hi - lo + 1)
    }
    /// True with probability `p_per_mille / 1000`.
    pub fn chance(&mut self, p_per_mille: u64) -> bool {
        self.next_u64() % 1000 < p_per_mille
    }
    /// An index below `n` (`n > 0`).
    pub fn index(&mut self, n: usize) -> usize {
        usize::try_from(self.next_u64() % (n.max(1) as u64)).unwrap_or(0)
    }
    /// 32 random bytes.
    pub fn bytes32(&mut self) -> [u8; 32] {
        let mut b = [0u8; 32];
        for c in b.chunks_mut(8) {
            c.copy_from_slice(&self.next_u64().to_le_bytes());
        }
        b
    }
}

/// A simulated network member.
pub enum Member {
    /// An honest peer with its signer.
    Honest(Box<dyn SignerModel>),
    /// A byzantine peer with its raw key.
    Byzantine(Box<dyn RawKey>),
}

impl core::fmt::Debug for Member {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            Self::Honest(_) => "Honest",
            Self::Byzantine(_) => "Byzantine",
        })
    }
}

/// Fault knobs of one run (derived from the seed by [`Faults::from_seed`]).
#[derive(Clone, Debug)]
pub struct Faults {
    /// Per-mille message loss.
    pub loss_per_mille: u64,
    /// Delay range in ms.
    pub delay_ms: (u64, u64),
    /// Per-mille chance of a long extra delay (reordering).
    pub spike_per_mille: u64,
    /// (start, duration) of partitions, with the group of each member.
    pub partitions: Vec<(u64, u64, Vec<u8>)>,
    /// (member, crash time, restart time) of honest crashes; no restart time = the peer
    /// stays down for the rest of the run (as a peer killed for good).
    pub crashes: Vec<(usize, u64, Option<u64>)>,
}

impl Faults {
    /// Random faults for `n` members over `duration` ms, heals leaving time to recover.
    #[must_use]
    pub fn from_seed(rng: &mut Rng, n: usize, honest: &[bool], duration: u64) -> Self {
        let loss_per_mille = [0, 0, 20, 50, 100][rng.index(5)];
        let delay_ms = (1, rng.range(5, 40));
        let spike_per_mille = rng.range(0, 50);
        let mut partitions = Vec::new();
        let latest_heal = duration.saturating_sub(RECOVERY_BOUND_MS + 100);
        let mut t = rng.range(100, 250);
        for _ in 0..rng.range(0, 2) {
            let len = rng.range(100, 350);
            if t + len > latest_heal {
                break;
            }
            let groups: Vec<u8> = (0..n).map(|_| u8::from(rng.chance(500))).collect();
            partitions.push((t, len, groups));
            t += len + rng.range(50, 200);
        }
        let mut crashes = Vec::new();
        if rng.chance(500) {
            let candidates: Vec<usize> = (0..n).filter(|i| honest[*i]).collect();
            let who = candidates[rng.index(candidates.len())];
            let at = rng.range(100, duration / 2);
            let back = at + rng.range(100, 700);
            crashes.push((who, at, (!rng.chance(300)).then_some(back)));
        }
        Self {
            loss_per_mille,
            delay_ms,
            spike_per_mille,
            partitions,
            crashes,
        }
    }
}

/// What a run measured.
#[derive(Clone, Debug, Default)]
pub struct Report {
    /// The seed.
    pub seed: u64,
    /// Members, byzantine members.
    pub members: (usize, usize),
    /// Highest finality reached by an honest peer.
    pub max_finality: u64,
    /// Lowest finality among honest peers at the end.
    pub min_finality: u64,
    /// Transactions applied.
    pub applied_txs: u64,
    /// Recovery times after heals (ms).
    pub recoveries: Vec<u64>,
    /// Signer refusals seen by honest peers.
    pub refusals: u64,
    /// Orders dropped by honest peers (byzantine garbage and stale copies).
    pub dropped: u64,
    /// Messages delivered.
    pub messages: u64,
}

/// A broken invariant.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("simulation seed {seed} failed at t={at_ms}ms: {what} (replay: CVX_SIM_SEED={seed})")]
pub struct Failure {
    /// The seed.
    pub seed: u64,
    /// Simulated time.
    pub at_ms: u64,
    /// Which invariant and how.
    pub what: String,
}

// Queued once, popped once.
#[allow(clippy::large_enum_variant)]
enum Ev {
    Deliver {
        to: usize,
        from: usize,
        msg: Message,
    },
    Tick(usize),
    SignReply {
        node: usize,
        life: u64,
        id: crate::RequestId,
        req: Request,
    },
    Crash(usize),
    Restart(usize),
    Partition(Vec<u8>),
    Heal,
    Load,
    Byz(usize),
}

struct Queued {
    at: u64,
    seq: u64,
    ev: Ev,
}
impl PartialEq for Queued {
    fn eq(&self, o: &Self) -> bool {
        (self.at, self.seq) == (o.at, o.seq)
    }
}
impl Eq for Queued {}
impl PartialOrd for Queued {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Queued {
    fn cmp(&self, o: &Self) -> Ordering {
        (o.at, o.seq).cmp(&(self.at, self.seq))
    }
}

struct HonestNode {
    peer: Option<Peer>,
    signer: Box<dyn SignerModel>,
    persisted: Option<Snapshot>,
    life: u64,
    finality: u64,
}

struct ByzNode {
    key: Box<dyn RawKey>,
    seen: BTreeMap<PublicKey, SignedOrder>,
    last_ts: u64,
}

enum Node {
    Honest(Box<HonestNode>),
    Byz(ByzNode),
}

/// One simulation run.
#[allow(missing_debug_implementations)]
pub struct Sim {
    seed: u64,
    rng: Rng,
    genesis: Genesis,
    network: NetworkId,
    nodes: Vec<Node>,
    stakes: Vec<u128>,
    queue: BinaryHeap<Queued>,
    seq: u64,
    now: u64,
    t0: u64,
    duration: u64,
    groups: Vec<u8>,
    faults: Faults,
    txs: Box<dyn TxSource>,
    finalized: Vec<(Hash, Hash)>,
    supply: u128,
    recovery: Option<(u64, u64)>,
    report: Report,
    cfg_tweak: fn(&mut Config),
}

const TICK_MS: u64 = 10;

impl Sim {
    /// A run over `genesis` (member `i` is genesis peer `i`) for `duration` simulated ms.
    #[must_use]
    pub fn new(
        seed: u64,
        genesis: Genesis,
        members: Vec<Member>,
        txs: Box<dyn TxSource>,
        duration: u64,
        cfg_tweak: fn(&mut Config),
    ) -> Self {
        let mut rng = Rng::new(seed ^ 0x5eed_cafe);
        let network = genesis.network_id();
        let honest: Vec<bool> = members
            .iter()
            .map(|m| matches!(m, Member::Honest(_)))
            .collect();
        let faults = Faults::from_seed(&mut rng, members.len(), &honest, duration);
        let stakes = genesis
            .peers
            .iter()
            .map(|p| u128::from(p.stake.get()))
            .collect();
        let supply = u128::from(genesis.total_coins());
        let t0 = genesis.time.0 + 1_000;
        let nodes = members
            .into_iter()
            .enumerate()
            .map(|(i, m)| match m {
                Member::Honest(signer) => {
                    let mut cfg = Config::new(genesis.clone(), genesis.peers[i].key);
                    cfg_tweak(&mut cfg);
                    Node::Honest(Box::new(HonestNode {
                        peer: Some(Peer::new(cfg)),
                        signer,
                        persisted: None,
                        life: 0,
                        finality: 0,
                    }))
                }
                Member::Byzantine(key) => Node::Byz(ByzNode {
                    key,
                    seen: BTreeMap::new(),
                    last_ts: 0,
                }),
            })
            .collect::<Vec<_>>();
        let n = nodes.len();
        let byz = honest.iter().filter(|h| !**h).count();
        Self {
            seed,
            rng,
            genesis,
            network,
            nodes,
            stakes,
            queue: BinaryHeap::new(),
            seq: 0,
            now: t0,
            t0,
            duration,
            groups: vec![0; n],
            faults,
            txs,
            finalized: Vec::new(),
            supply,
            recovery: None,
            report: Report {
                seed,
                members: (n, byz),
                ..Report::default()
            },
            cfg_tweak,
        }
    }

    /// The faults this seed chose.
    #[must_use]
    pub const fn faults(&self) -> &Faults {
        &self.faults
    }

    fn push(&mut self, at: u64, ev: Ev) {
        self.seq += 1;
        self.queue.push(Queued {
            at,
            seq: self.seq,
            ev,
        });
    }

    fn fail(&self, what: &str) -> Failure {
        let mut state = String::new();
        for (i, n) in self.nodes.iter().enumerate() {
            match n {
                Node::Honest(h) => match &h.peer {
                    Some(p) => {
                        let (cp, ids) = p.chain();
                        state.push_str(&format!(
                            "\n  member {i} stake {} points {:?} checkpoint {} len {} mempool {} stats {:?}\n    view: {}",
                            self.stakes[i],
                            p.points(),
                            cp.position,
                            cp.position + ids.len() as u64,
                            p.mempool_len(),
                            p.stats(),
                            p.stall_report()
                        ));
                    }
                    None => {
                        state.push_str(&format!("\n  member {i} stake {} crashed", self.stakes[i]));
                    }
                },
                Node::Byz(_) => state.push_str(&format!(
                    "\n  member {i} stake {} byzantine",
                    self.stakes[i]
                )),
            }
        }
        Failure {
            seed: self.seed,
            at_ms: self.now - self.t0,
            what: format!("{what}; faults {:?}; members:{state}", self.faults),
        }
    }

    fn send(&mut self, from: usize, to: usize, msg: Message) {
        if from == to || self.rng.chance(self.faults.loss_per_mille) {
            return;
        }
        let (lo, hi) = self.faults.delay_ms;
        let mut d = self.rng.range(lo, hi);
        if self.rng.chance(self.faults.spike_per_mille) {
            d += self.rng.range(50, 300);
        }
        self.push(self.now + d, Ev::Deliver { to, from, msg });
        self.report.messages += 1;
    }

    fn broadcast(&mut self, from: usize, msg: &Message) {
        for to in 0..self.nodes.len() {
            if to != from {
                self.send(from, to, msg.clone());
            }
        }
    }

    /// Run to the end.
    ///
    /// # Errors
    /// The first broken invariant.
    pub fn run(mut self) -> Result<Report, Failure> {
        let end = self.t0 + self.duration;
        for i in 0..self.nodes.len() {
            let off = self.rng.range(0, TICK_MS);
            self.push(self.t0 + off, Ev::Tick(i));
            if matches!(self.nodes[i], Node::Byz(_)) {
                let at = self.t0 + self.rng.range(10, 60);
                self.push(at, Ev::Byz(i));
            }
        }
        self.push(self.t0 + 5, Ev::Load);
        for (start, len, groups) in self.faults.partitions.clone() {
            self.push(self.t0 + start, Ev::Partition(groups));
            self.push(self.t0 + start + len, Ev::Heal);
        }
        for (who, at, back) in self.faults.crashes.clone() {
            self.push(self.t0 + at, Ev::Crash(who));
            if let Some(back) = back {
                self.push(self.t0 + back, Ev::Restart(who));
            }
        }
        while let Some(q) = self.queue.pop() {
            if q.at > end {
                break;
            }
            self.now = q.at;
            self.dispatch(q.ev)?;
        }
        if let Some((healed, _)) = self.recovery
            && end - healed >= RECOVERY_BOUND_MS
        {
            return Err(self.fail(&format!(
                "finality did not advance within {RECOVERY_BOUND_MS} ms of the heal at t={}ms",
                healed - self.t0
            )));
        }
        let fins: Vec<u64> = self
            .nodes
            .iter()
            .filter_map(|n| match n {
                Node::Honest(h) => Some(h.finality),
                Node::Byz(_) => None,
            })
            .collect();
        self.report.max_finality = fins.iter().copied().max().unwrap_or(0);
        self.report.min_finality = fins.iter().copied().min().unwrap_or(0);
        for n in &self.nodes {
            if let Node::Honest(h) = n
                && let Some(p) = &h.peer
            {
                self.report.refusals += p.stats().refusals.values().sum::<u64>();
                self.report.dropped += p.stats().dropped.values().sum::<u64>();
            }
        }
        Ok(self.report)
    }
}

fn belief(mut orders: Vec<SignedOrder>) -> Message {
    orders.sort_by_key(|o| o.order.peer);
    orders.dedup_by(|a, b| a.order.peer == b.order.peer);
    Message::Belief(Belief {
        orders: BoundedVec::try_from_vec(orders).unwrap_or_else(|_| BoundedVec::new()),
    })
}

/// Summary statistics of recovery times (ms): (count, p50, p90, p99, max).
#[must_use]
pub fn distribution(mut v: Vec<u64>) -> (usize, u64, u64, u64, u64) {
    if v.is_empty() {
        return (0, 0, 0, 0, 0);
    }
    v.sort_unstable();
    let q = |p: usize| v[(v.len() - 1) * p / 100];
    (v.len(), q(50), q(90), q(99), v[v.len() - 1])
}

/// Tally of a multi-seed run.
#[derive(Clone, Debug, Default)]
pub struct Tally {
    /// Seeds run.
    pub seeds: u64,
    /// Forks seen (always 0 when the run passed).
    pub forks: u64,
    /// Finality regressions (always 0 when the run passed).
    pub regressions: u64,
    /// All recovery times.
    pub recoveries: Vec<u64>,
    /// Sum of the highest finality per seed.
    pub blocks: u64,
    /// Transactions applied.
    pub txs: u64,
    /// Byzantine members over all seeds.
    pub byzantine: u64,
    /// Signer refusals.
    pub refusals: u64,
    /// Seeds that had at least one byzantine member.
    pub byz_seeds: u64,
}

impl Tally {
    /// Add one report.
    pub fn add(&mut self, r: &Report) {
        self.seeds += 1;
        self.recoveries.extend_from_slice(&r.recoveries);
        self.blocks += r.max_finality;
        self.txs += r.applied_txs;
        self.byzantine += r.members.1 as u64;
        self.byz_seeds += u64::from(r.members.1 > 0);
        self.refusals += r.refusals;
    }
}

/// Members' key map helper for tests: which genesis index is which key.
#[must_use]
pub fn index_of(genesis: &Genesis) -> HashMap<PublicKey, usize> {
    genesis
        .peers
        .iter()
        .enumerate()
        .map(|(i, p)| (p.key, i))
        .collect()
}
