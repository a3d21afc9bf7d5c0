//! cvx-loadgen: throwaway keys and signed traffic for devnets, benchmarks and simulations.
//!
//! Everything in cvx that holds a private key for *testing* lives here, so cvx-peer
//! never links signing code: account keys that sign demo and benchmark transactions
//! ([`Wallet`]), the simulated signer that holds a peer key and enforces the real
//! [`cvx_protocol::policy::Policy`] with an in-memory watermark that survives a simulated
//! crash ([`SimSigner`]), and raw keys for byzantine peers that bypass the policy
//! ([`Keypair::sign_value`]). Never installed on a peer host.

#![forbid(unsafe_code)]

use core::fmt;

use cvx_protocol::certificate::{
    CertDecision, CertRequest, DEFAULT_TRUST_PERIOD_MS, TrustedTable, decide_certificate,
};
use cvx_protocol::consensus::{BlockHeader, Order};
use cvx_protocol::ledger::{
    Action, Genesis, GenesisAccount, GenesisPeer, Params, SignedTransaction, Transaction,
};
use cvx_protocol::policy::{
    Decision, Policy, PolicyParams, Refusal, RefuseCode, Request, Watermark,
};
use cvx_protocol::primitives::Name;
use cvx_protocol::{
    Address, Amount, BoundedVec, NetworkId, PublicKey, Signable, Signature, Timestamp,
};
use ed25519_dalek::{Signer, SigningKey};
use sha2::{Digest, Sha256};

/// The label of the devnet's demo accounts' throwaway keys: account `i` of seed `s` is
/// `Keypair::derive(DEVNET_ACCOUNT, s, i)`.
pub const DEVNET_ACCOUNT: &str = "devnet-account";

/// The public keys of accounts `0..count` derived from `seed` under `label`, in order. Each
/// costs a scalar multiplication (~15 us): a 10^6-account devnet's genesis waits for them,
/// so they are derived on every core.
#[must_use]
pub fn derived_publics(label: &str, seed: u64, count: u64) -> Vec<PublicKey> {
    let threads = std::thread::available_parallelism().map_or(1, std::num::NonZero::get) as u64;
    let per = count.div_ceil(threads).max(1);
    std::thread::scope(|scope| {
        let parts: Vec<_> = (0..count)
            .step_by(usize::try_from(per).unwrap_or(usize::MAX))
            .map(|from| {
                scope.spawn(move || {
                    (from..count.min(from + per))
                        .map(|i| Keypair::derive(label, seed, i).public())
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        parts
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
            .collect()
    })
}

/// A throwaway Ed25519 key pair. No Clone, no Display; Debug shows the public key only.
pub struct Keypair {
    secret: SigningKey,
    public: PublicKey,
}

impl fmt::Debug for Keypair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Keypair({:?})", self.public)
    }
}

impl Keypair {
    /// A key from 32 seed bytes (deterministic: simulations and benchmarks).
    #[must_use]
    pub fn from_seed(seed: [u8; 32]) -> Self {
        let secret = SigningKey::from_bytes(&seed);
        // A key derived from a seed is a valid, non-weak point except with negligible
        // probability; hash again until it is.
        match PublicKey::from_bytes(secret.verifying_key().as_bytes()) {
            Ok(public) => Self { secret, public },
            Err(_) => Self::from_seed(Sha256::digest(seed).into()),
        }
    }

    /// A key derived from a label and an index (e.g. `("sim-peer", 3)` of seed 42).
    #[must_use]
    pub fn derive(label: &str, seed: u64, index: u64) -> Self {
        let mut h = Sha256::new();
        h.update(b"cvx-loadgen/");
        h.update(label.as_bytes());
        h.update(seed.to_le_bytes());
        h.update(index.to_le_bytes());
        Self::from_seed(h.finalize().into())
    }

    /// A fresh random key from the OS.
    ///
    /// # Errors
    /// When the OS random source fails.
    pub fn generate() -> Result<Self, getrandom::Error> {
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed)?;
        let k = Self::from_seed(seed);
        seed.fill(0);
        Ok(k)
    }

    /// The public key.
    #[must_use]
    pub const fn public(&self) -> PublicKey {
        self.public
    }

    /// Sign a typed value's sign-bytes, with no policy at all (accounts, byzantine peers).
    #[must_use]
    pub fn sign_value<T: Signable>(&self, network: &NetworkId, value: &T) -> Signature {
        Signature(
            self.secret
                .sign(value.sign_bytes(network).as_bytes())
                .to_bytes(),
        )
    }

    /// Sign a transaction.
    #[must_use]
    pub fn sign_tx(&self, network: &NetworkId, tx: Transaction) -> SignedTransaction {
        let signature = self.sign_value(network, &tx);
        SignedTransaction { tx, signature }
    }
}

/// A simulated cvx-signer: the real policy, a watermark that is "made durable" before a
/// signature leaves, and that survives [`SimSigner::crash`].
#[derive(Debug)]
pub struct SimSigner {
    key: Keypair,
    policy: Policy,
    durable: Watermark,
    /// The trusted stake table (certificates), as the real signer's trust file.
    trusted: Option<TrustedTable>,
    /// Requests answered.
    pub signed: u64,
    /// Requests refused.
    pub refused: u64,
}

impl SimSigner {
    /// A signer for `key` on `network` with the given policy parameters.
    #[must_use]
    pub fn new(key: Keypair, network: NetworkId, params: PolicyParams) -> Self {
        let policy = Policy {
            key: key.public(),
            network,
            params,
        };
        Self {
            key,
            policy,
            durable: Watermark::default(),
            trusted: None,
            signed: 0,
            refused: 0,
        }
    }

    /// The public key.
    #[must_use]
    pub const fn public(&self) -> PublicKey {
        self.key.public
    }

    /// The durable watermark.
    #[must_use]
    pub const fn watermark(&self) -> &Watermark {
        &self.durable
    }

    /// Decide and, if allowed, sign (the watermark is updated first).
    ///
    /// # Errors
    /// The policy's [`Refusal`].
    pub fn sign(&mut self, req: &Request, now: Timestamp) -> Result<Signature, Refusal> {
        match self.policy.decide(&self.durable, req, now) {
            Decision::Allow {
                watermark,
                sign_bytes,
                ..
            } => {
                self.durable = watermark;
                self.signed += 1;
                Ok(Signature(
                    self.key.secret.sign(sign_bytes.as_bytes()).to_bytes(),
                ))
            }
            Decision::Refuse(r) => {
                self.refused += 1;
                Err(r)
            }
        }
    }

    /// Accept certificates against `table` (the real signer's `genesis_file` / trust file).
    #[must_use]
    pub fn with_trust(mut self, table: TrustedTable) -> Self {
        self.trusted = Some(table);
        self
    }

    /// The trusted stake table, if certificates are enabled.
    #[must_use]
    pub const fn trusted(&self) -> Option<&TrustedTable> {
        self.trusted.as_ref()
    }

    /// A certificate (catch-up or lock release), decided by the real
    /// [`decide_certificate`] as cvx-signer's `Certify` does: on success the watermark and
    /// the trusted table move (durably, before the answer).
    ///
    /// # Errors
    /// The `CERT_*` refusal; `CERT_TABLE_UNPROVEN` without a trusted table.
    pub fn certify(&mut self, req: &CertRequest, now: Timestamp) -> Result<(), Refusal> {
        let Some(trusted) = &self.trusted else {
            self.refused += 1;
            return Err(Refusal {
                code: RefuseCode::CertTableUnproven,
                detail: "this signer has no trusted stake table".to_owned(),
            });
        };
        match decide_certificate(
            &self.policy.network,
            &self.durable,
            trusted,
            req,
            now,
            DEFAULT_TRUST_PERIOD_MS,
        ) {
            CertDecision::Allow {
                watermark, trusted, ..
            } => {
                self.durable = watermark;
                self.trusted = Some(trusted);
                Ok(())
            }
            CertDecision::Refuse(r) => {
                self.refused += 1;
                Err(r)
            }
        }
    }

    /// A crash and restart: in-memory state is lost, the durable watermark is reloaded
    /// (here: kept), exactly as the real signer's two-slot state file behaves.
    pub fn crash(&mut self) {
        let wm = self.durable.clone();
        self.durable = wm;
    }
}

/// Account keys with the sequence numbers this generator has used.
#[derive(Debug)]
pub struct Wallet {
    network: NetworkId,
    keys: Vec<Keypair>,
    next_seq: Vec<u64>,
}

impl Wallet {
    /// A wallet over `keys` (address = index).
    #[must_use]
    pub fn new(network: NetworkId, keys: Vec<Keypair>) -> Self {
        let next_seq = vec![1; keys.len()];
        Self {
            network,
            keys,
            next_seq,
        }
    }

    /// Number of accounts.
    #[must_use]
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// True when there are no accounts.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The key of account `i`.
    #[must_use]
    pub fn key(&self, i: usize) -> Option<&Keypair> {
        self.keys.get(i)
    }

    /// Sign `action` from account `from` with its next sequence number.
    #[must_use]
    pub fn sign(&mut self, from: usize, action: Action) -> Option<SignedTransaction> {
        let key = self.keys.get(from)?;
        let seq = self.next_seq.get_mut(from)?;
        let tx = Transaction {
            origin: Address(from as u64),
            sequence: *seq,
            action,
        };
        *seq += 1;
        Some(key.sign_tx(&self.network, tx))
    }

    /// A transfer of `amount` from account `from` to account `to`.
    #[must_use]
    pub fn transfer(&mut self, from: usize, to: usize, amount: u64) -> Option<SignedTransaction> {
        self.sign(
            from,
            Action::Transfer {
                to: Address(to as u64),
                amount: Amount::new(amount)?,
            },
        )
    }
}

/// Parameters suited to simulations and local benchmarks (short times).
#[must_use]
pub fn fast_params() -> Params {
    Params {
        min_stake: Amount::new(1_000).unwrap_or(Amount::ZERO),
        fee: Amount::new(1).unwrap_or(Amount::ZERO),
        max_block_txs: 1024,
        min_block_time_ms: 20,
        max_block_backdate_ms: 10_000,
        max_future_ms: 1_000,
        proposal_hold_ms: 100,
        decay_grace_ms: 60_000,
        decay_time_ms: 60_000,
        decay_floor_ppm: 100_000,
    }
}

/// A test network: its genesis, the peer keys and the account keys.
#[derive(Debug)]
pub struct TestNet {
    /// The genesis.
    pub genesis: Genesis,
    /// Peer keys, in genesis order.
    pub peers: Vec<Keypair>,
    /// Account keys (address = index); account `i < peers.len()` controls peer `i`.
    pub accounts: Vec<Keypair>,
}

/// Build a test network with one peer per stake, `accounts` accounts (at least one per
/// peer) each holding `balance`, derived deterministically from `seed`.
#[must_use]
pub fn test_net(
    seed: u64,
    stakes: &[u64],
    accounts: usize,
    balance: u64,
    params: Params,
) -> TestNet {
    let accounts = accounts.max(stakes.len());
    let peers: Vec<Keypair> = (0..stakes.len() as u64)
        .map(|i| Keypair::derive("peer", seed, i))
        .collect();
    let acc: Vec<Keypair> = (0..accounts as u64)
        .map(|i| Keypair::derive("account", seed, i))
        .collect();
    let gaccounts: Vec<GenesisAccount> = acc
        .iter()
        .map(|k| GenesisAccount {
            key: k.public(),
            balance: Amount::new(balance).unwrap_or(Amount::ZERO),
        })
        .collect();
    let gpeers: Vec<GenesisPeer> = peers
        .iter()
        .zip(stakes)
        .enumerate()
        .map(|(i, (k, s))| GenesisPeer {
            key: k.public(),
            controller: Address(i as u64),
            stake: Amount::new(*s).unwrap_or(Amount::ZERO),
            host: None,
        })
        .collect();
    let genesis = Genesis {
        network_name: Name::new("cvx-sim").unwrap_or_default(),
        time: Timestamp(1_700_000_000_000),
        accounts: BoundedVec::try_from_vec(gaccounts).unwrap_or_else(|_| BoundedVec::new()),
        peers: BoundedVec::try_from_vec(gpeers).unwrap_or_else(|_| BoundedVec::new()),
        params,
    };
    TestNet {
        genesis,
        peers,
        accounts: acc,
    }
}

/// Sign a block header with a raw key (byzantine peers; no policy).
#[must_use]
pub fn raw_sign_block(key: &Keypair, network: &NetworkId, h: &BlockHeader) -> Signature {
    key.sign_value(network, h)
}

/// Sign an order with a raw key (byzantine peers; no policy).
#[must_use]
pub fn raw_sign_order(key: &Keypair, network: &NetworkId, o: &Order) -> Signature {
    key.sign_value(network, o)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Derived on every core, the keys come in account order, as one by one.
    #[test]
    fn derived_publics_are_in_account_order_whatever_the_split() {
        for count in [0, 1, 2, 3, 7, 64] {
            let one_by_one: Vec<PublicKey> = (0..count)
                .map(|i| Keypair::derive(DEVNET_ACCOUNT, 9, i).public())
                .collect();
            assert_eq!(
                derived_publics(DEVNET_ACCOUNT, 9, count),
                one_by_one,
                "{count}"
            );
        }
    }
}
