//! Shared test wiring: cvx-loadgen's key holders behind cvx-peer's simulation traits.
#![allow(clippy::unwrap_used, dead_code)]

use cvx_consensus::Config;
use cvx_consensus::sim::{Member, RawKey, Rng, Sim, TxSource};
use cvx_loadgen::{Keypair, SimSigner, TestNet, Wallet, fast_params, test_net};
use cvx_protocol::certificate::{CertRequest, OrderHeader, TrustedTable};
use cvx_protocol::consensus::{BlockHeader, Order};
use cvx_protocol::ledger::{Genesis, Params, SignedTransaction};
use cvx_protocol::policy::{PolicyParams, Refusal, Request};
use cvx_protocol::{NetworkId, PublicKey, Signature, Timestamp};

pub struct Signer(pub SimSigner);

impl cvx_consensus::sim::SignerModel for Signer {
    fn sign(&mut self, req: &Request, now: Timestamp) -> Result<Signature, Refusal> {
        self.0.sign(req, now)
    }
    fn crash(&mut self) {
        self.0.crash();
    }
    fn certify(&mut self, req: &CertRequest, now: Timestamp) -> Result<(), Refusal> {
        self.0.certify(req, now)
    }
}

pub struct Raw(pub Keypair);

impl RawKey for Raw {
    fn public(&self) -> PublicKey {
        self.0.public()
    }
    fn sign_order(&self, network: &NetworkId, o: &Order) -> Signature {
        self.0.sign_value(network, o)
    }
    fn sign_block(&self, network: &NetworkId, h: &BlockHeader) -> Signature {
        self.0.sign_value(network, h)
    }
    fn sign_header(&self, network: &NetworkId, h: &OrderHeader) -> Signature {
        self.0.sign_value(network, h)
    }
}

/// Transfers between the wallet's accounts, with some invalid ones mixed in.
pub struct Load {
    pub wallet: Wallet,
    pub network: NetworkId,
}

impl TxSource for Load {
    fn next_tx(&mut self, rng: &mut Rng) -> Option<SignedTransaction> {
        let n = self.wallet.len();
        let from = rng.index(n);
        let mut to = rng.index(n);
        if to == from {
            to = (to + 1) % n;
        }
        let mut tx = self.wallet.transfer(from, to, rng.range(1, 50))?;
        if rng.chance(30) {
            tx.signature.0[7] ^= 1; // a bad signature: fails SIGNATURE, costs nothing
        }
        Some(tx)
    }
}

pub fn policy_params() -> PolicyParams {
    PolicyParams {
        max_future_skew_ms: 1_000,
        max_block_txs: 1024,
    }
}

/// Network shape and members for `seed`: 3–10 peers, unequal stakes, byzantine peers
/// holding less than 0.3 of stake.
pub fn scenario(seed: u64) -> (TestNet, Vec<bool>) {
    let mut rng = Rng::new(seed);
    // 3–10 peers, weighted towards small networks (cost grows with n²).
    let devnet = devnet_mode();
    let mut n = [3, 3, 4, 4, 4, 5, 5, 6, 7, 8, 10][rng.index(11)];
    if devnet {
        n = 4;
    }
    let max_byz = (n - 1) / 3;
    let byz = if rng.chance(700) && !devnet {
        usize::try_from(rng.range(0, max_byz as u64)).unwrap()
    } else {
        0
    };
    let mut stakes: Vec<u64> = (0..n).map(|_| rng.range(1_000, 10_000)).collect();
    if rng.chance(300) || devnet {
        // Equal stakes (as in the devnet): votes tie, and a dead peer's stale order can
        // hold exactly half of the weight.
        let s = stakes[0];
        stakes.iter_mut().for_each(|x| *x = s);
    }
    let mut honest = vec![true; n];
    for h in honest.iter_mut().take(byz) {
        *h = false;
    }
    // Byzantine stake strictly below 0.3 of the total.
    loop {
        let b: u64 = stakes
            .iter()
            .zip(&honest)
            .filter(|(_, h)| !**h)
            .map(|(s, _)| *s)
            .sum();
        let t: u64 = stakes.iter().sum();
        if b * 10 < t * 3 {
            break;
        }
        for (s, h) in stakes.iter_mut().zip(&honest) {
            if *h {
                *s += 2_000;
            }
        }
    }
    let mut params: Params = fast_params();
    params.min_block_time_ms = if devnet { 5 } else { 100 };
    if rng.chance(250) {
        // Short decay: exercises stake decay and heartbeat blocks inside a run.
        params.decay_grace_ms = 800;
        params.decay_time_ms = 1_000;
    }
    (test_net(seed, &stakes, n + 4, 1_000_000, params), honest)
}

/// Network shape of a long-outage seed: 4 peers (5 in a fifth of seeds), equal stakes in
/// half of them, one byzantine member (below 0.3 of stake) in half of them.
pub fn scenario_long(seed: u64) -> (TestNet, Vec<bool>) {
    let mut rng = Rng::new(seed ^ 0x10e6);
    let n = if rng.chance(200) { 5 } else { 4 };
    let mut stakes: Vec<u64> = (0..n).map(|_| rng.range(1_000, 10_000)).collect();
    if rng.chance(500) {
        let s = stakes[0];
        stakes.iter_mut().for_each(|x| *x = s);
    }
    let mut honest = vec![true; n];
    if rng.chance(500) {
        honest[n - 1] = false;
        let others: u64 = stakes[..n - 1].iter().sum();
        // Strictly below 0.3 of the total: b < 3/7 of the others.
        stakes[n - 1] = stakes[n - 1].min(others * 3 / 7 - 1);
    }
    let mut params: Params = fast_params();
    params.min_block_time_ms = 100;
    (test_net(seed, &stakes, n + 4, 1_000_000, params), honest)
}

/// Whether `seed` runs a long outage: every twentieth seed; `CVX_SIM_LONG=1` makes every
/// seed one, `CVX_SIM_LONG=0` none. Never in devnet mode.
pub fn long_seed(seed: u64) -> bool {
    if devnet_mode() {
        return false;
    }
    match std::env::var("CVX_SIM_LONG").as_deref() {
        Ok("1") => true,
        Ok("0") => false,
        _ => seed.is_multiple_of(20),
    }
}

/// The trusted table a signer starts with: the genesis table (cvx-signer's
/// `genesis_file`).
pub fn genesis_trust(genesis: &Genesis) -> TrustedTable {
    TrustedTable {
        position: 0,
        confirmed_at: genesis.time,
        table: cvx_consensus::stake_table(
            &cvx_consensus::ledger::State::from_genesis(genesis),
            genesis.params.min_stake,
        ),
    }
}

/// `CVX_SIM_DEVNET=1`: the devnet's shape (4 equal peers, 5 ms minimum block time, default
/// timing: early blocks while the load is light, the 20-ms pace under load).
pub fn devnet_mode() -> bool {
    std::env::var("CVX_SIM_DEVNET").is_ok_and(|v| v == "1")
}

pub fn tweak(cfg: &mut Config) {
    if devnet_mode() {
        return;
    }
    cfg.rebroadcast_ms = 150;
    cfg.min_order_gap_ms = 60;
    cfg.keep_finalized = 16;
}

pub fn build(seed: u64, duration: u64) -> Sim {
    build_as(seed, duration, long_seed(seed))
}

/// `seed` as an ordinary seed of `duration` ms, or as a long-outage seed.
pub fn build_as(seed: u64, duration: u64, long: bool) -> Sim {
    let (net, honest) = if long {
        scenario_long(seed)
    } else {
        scenario(seed)
    };
    let network = net.genesis.network_id();
    let trust = genesis_trust(&net.genesis);
    let members: Vec<Member> = net
        .peers
        .into_iter()
        .zip(&honest)
        .map(|(k, h)| {
            if *h {
                Member::Honest(Box::new(Signer(
                    SimSigner::new(k, network, policy_params()).with_trust(trust.clone()),
                )))
            } else {
                Member::Byzantine(Box::new(Raw(k)))
            }
        })
        .collect();
    let load = Load {
        wallet: Wallet::new(network, net.accounts),
        network,
    };
    if long {
        Sim::new_long(seed, net.genesis, members, Box::new(load), tweak)
    } else {
        Sim::new(seed, net.genesis, members, Box::new(load), duration, tweak)
    }
}

pub fn params() -> Params {
    fast_params()
}
