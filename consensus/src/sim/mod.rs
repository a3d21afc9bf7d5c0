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
//! [`RECOVERY_BOUND_MS`]; no honest signer signs orders that finalize conflicting chains.
//!
//! Long-outage runs ([`Sim::new_long`], [`Faults::long_from_seed`]) add partitions, freezes
//! and crashes of 1–60 s; members that fall too far behind resync (certificate, signer,
//! state, join order) as the networked peer does, while byzantine members answer with
//! forged certificates that the signers must refuse; recovery is bounded by
//! [`LONG_RECOVERY_BOUND_MS`].

use std::cmp::Ordering;
use std::collections::{BTreeMap, BinaryHeap, HashMap};
use std::sync::Arc;

use cvx_protocol::certificate::{CertRequest, OrderHeader};
use cvx_protocol::consensus::{
    Belief, Block, BlockBody, BlockHeader, Checkpoint, Order, SignedOrder, body_hash,
};
use cvx_protocol::hash::chain_over;
use cvx_protocol::ledger::{Genesis, SignedTransaction};
use cvx_protocol::policy::{Refusal, Request, SignRequest};
use cvx_protocol::{BoundedVec, Hash, NetworkId, PublicKey, Signature, Timestamp};

use crate::{Action, Config, ConnId, Event, Message, Peer, Snapshot};

mod byzantine;
mod events;
mod faults;
mod resync;
mod tally;

pub use faults::Faults;
pub use tally::{Report, Tally, distribution};

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
    /// Decide a certificate (cvx-signer's `Certify`: `decide_certificate` against its
    /// trusted table, which starts as the genesis table); on success the watermark and the
    /// trusted table have moved.
    ///
    /// # Errors
    /// The policy's `CERT_*` refusal.
    fn certify(&mut self, req: &CertRequest, now: Timestamp) -> Result<(), Refusal>;
}

/// A byzantine peer's key: signs anything, no policy.
pub trait RawKey {
    /// The public key.
    fn public(&self) -> PublicKey;
    /// Sign an order.
    fn sign_order(&self, network: &NetworkId, o: &Order) -> Signature;
    /// Sign a block header.
    fn sign_block(&self, network: &NetworkId, h: &BlockHeader) -> Signature;
    /// Sign an order header (a forged certificate's vote).
    fn sign_header(&self, network: &NetworkId, h: &OrderHeader) -> Signature;
}

/// Where client transactions come from.
pub trait TxSource {
    /// The next transaction (the source may also produce invalid ones on purpose).
    fn next_tx(&mut self, rng: &mut Rng) -> Option<SignedTransaction>;
}

/// Bound on recovery after a heal that reconnects more than 0.67 of stake.
pub const RECOVERY_BOUND_MS: u64 = 800;
/// The same bound in long-outage runs ([`Faults::long_from_seed`]): a peer that the outage
/// left beyond its order window must resync (certificate + state) first.
pub const LONG_RECOVERY_BOUND_MS: u64 = 2_000;

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
    Freeze(usize),
    Thaw(usize),
    Resync(resync::Step),
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
    /// Frozen (no events), with the signer's answers that wait for the resume.
    frozen: Option<Vec<(crate::RequestId, Result<Signature, Refusal>)>>,
    /// A resync in progress: the sources tried so far.
    resync: Option<Vec<usize>>,
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
    /// [`RECOVERY_BOUND_MS`], or [`LONG_RECOVERY_BOUND_MS`] in a long-outage run.
    bound: u64,
    /// `chains[k]`: the chain value after the first `k` finalized blocks.
    chains: Vec<Hash>,
    /// Finality claims of orders honest signers signed, above what is finalized yet:
    /// position -> chain value there (checked as positions are finalized).
    claims: BTreeMap<u64, Hash>,
    /// Certificates honest members built for resyncs (byzantine members replay them).
    old_certs: Vec<CertRequest>,
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
        Self::build(seed, genesis, members, txs, Some(duration), cfg_tweak)
    }

    /// A long-outage run ([`Faults::long_from_seed`]; its duration follows from the outage).
    #[must_use]
    pub fn new_long(
        seed: u64,
        genesis: Genesis,
        members: Vec<Member>,
        txs: Box<dyn TxSource>,
        cfg_tweak: fn(&mut Config),
    ) -> Self {
        Self::build(seed, genesis, members, txs, None, cfg_tweak)
    }

    fn build(
        seed: u64,
        genesis: Genesis,
        members: Vec<Member>,
        txs: Box<dyn TxSource>,
        duration: Option<u64>,
        cfg_tweak: fn(&mut Config),
    ) -> Self {
        let mut rng = Rng::new(seed ^ 0x5eed_cafe);
        let network = genesis.network_id();
        let honest: Vec<bool> = members
            .iter()
            .map(|m| matches!(m, Member::Honest(_)))
            .collect();
        let (faults, duration) = match duration {
            Some(d) => (Faults::from_seed(&mut rng, members.len(), &honest, d), d),
            None => Faults::long_from_seed(&mut rng, members.len(), &honest),
        };
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
                        frozen: None,
                        resync: None,
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
        let long = faults.long;
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
            bound: if long {
                LONG_RECOVERY_BOUND_MS
            } else {
                RECOVERY_BOUND_MS
            },
            chains: vec![Checkpoint::genesis(&network).chain],
            claims: BTreeMap::new(),
            old_certs: Vec::new(),
            report: Report {
                seed,
                members: (n, byz),
                long,
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
        for (who, at, len) in self.faults.freezes.clone() {
            self.push(self.t0 + at, Ev::Freeze(who));
            self.push(self.t0 + at + len, Ev::Thaw(who));
        }
        while let Some(q) = self.queue.pop() {
            if q.at > end {
                break;
            }
            self.now = q.at;
            self.dispatch(q.ev)?;
        }
        if let Some((healed, _)) = self.recovery
            && end - healed >= self.bound
        {
            return Err(self.not_recovered(healed));
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
