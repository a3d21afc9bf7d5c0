//! Shared test wiring: cvx-loadgen's key holders behind cvx-peer's simulation traits.
#![allow(clippy::unwrap_used, dead_code)]

use cvx_consensus::Config;
use cvx_consensus::sim::{Member, RawKey, Rng, Sim, TxSource};
use cvx_loadgen::{Keypair, SimSigner, TestNet, Wallet, fast_params, test_net};
use cvx_protocol::consensus::{BlockHeader, Order};
use cvx_protocol::ledger::{Params, SignedTransaction};
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
    params.min_block_time_ms = if devnet { 20 } else { 100 };
    if rng.chance(250) {
        // Short decay: exercises stake decay and heartbeat blocks inside a run.
        params.decay_grace_ms = 800;
        params.decay_time_ms = 1_000;
    }
    (test_net(seed, &stakes, n + 4, 1_000_000, params), honest)
}

/// `CVX_SIM_DEVNET=1`: the devnet's shape (4 equal peers, 20 ms blocks, default timing).
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
    let (net, honest) = scenario(seed);
    let network = net.genesis.network_id();
    let members: Vec<Member> = net
        .peers
        .into_iter()
        .zip(&honest)
        .map(|(k, h)| {
            if *h {
                Member::Honest(Box::new(Signer(SimSigner::new(
                    k,
                    network,
                    policy_params(),
                ))))
            } else {
                Member::Byzantine(Box::new(Raw(k)))
            }
        })
        .collect();
    let load = Load {
        wallet: Wallet::new(network, net.accounts),
        network,
    };
    Sim::new(seed, net.genesis, members, Box::new(load), duration, tweak)
}

pub fn params() -> Params {
    fast_params()
}
