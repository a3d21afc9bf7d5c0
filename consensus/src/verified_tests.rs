//! The verified set: counted verifications, key changes, poisoning, the bound, and that
//! pre-verification with facts decides exactly as the block rule without them.
#![allow(clippy::unwrap_used)]

use cvx_loadgen::{Keypair, TestNet, fast_params, test_net};
use cvx_protocol::consensus::{Block, BlockBody, BlockHeader, body_hash};
use cvx_protocol::ledger::{Action, SignedTransaction, Transaction, TxOutcome};
use cvx_protocol::{Address, Amount, BoundedVec, NetworkId, Signable, Timestamp};

use super::*;
use crate::ledger::{BlockOutcome, State};

struct W {
    net: TestNet,
    network: NetworkId,
    state: State,
    cache: Verified,
    t: u64,
}

fn world() -> W {
    let net = test_net(9, &[5_000, 5_000], 8, 100_000, fast_params());
    let network = net.genesis.network_id();
    let mut state = State::from_genesis(&net.genesis);
    let cache = Verified::new(1024);
    state.set_verified(cache.clone());
    let t = net.genesis.time.0;
    W {
        net,
        network,
        state,
        cache,
        t,
    }
}

impl W {
    fn tx(&self, from: usize, sequence: u64, to: u64) -> SignedTransaction {
        let tx = Transaction {
            origin: Address(from as u64),
            sequence,
            action: Action::Transfer {
                to: Address(to),
                amount: Amount::new(1).unwrap(),
            },
        };
        self.net.accounts[from].sign_tx(&self.network, tx)
    }

    /// The items the ingress would check for `txs` (the origins' current keys).
    fn items<'a>(&self, txs: &'a [SignedTransaction]) -> Vec<Item<'a>> {
        txs.iter()
            .map(|t| {
                let k = self.state.account(t.tx.origin).unwrap().key;
                (t.tx.sign_bytes(&self.network), k, &t.signature)
            })
            .collect()
    }

    /// The ingress check: the rule's single check, through the cache.
    fn ingress(&self, stx: &SignedTransaction) -> bool {
        let key = self.state.account(stx.tx.origin).unwrap().key;
        self.cache.verify_tx(&self.network, &key, stx)
    }

    fn run(&mut self, txs: Vec<SignedTransaction>) -> Vec<TxOutcome> {
        self.t += 10;
        let body: BlockBody = BoundedVec::try_from_vec(txs).unwrap();
        let proposer: &Keypair = &self.net.peers[0];
        let header = BlockHeader {
            proposer: proposer.public(),
            timestamp: Timestamp(self.t),
            tx_count: u32::try_from(body.len()).unwrap(),
            tx_hash: body_hash(&body),
        };
        let signature = proposer.sign_value(&self.network, &header);
        let block = Block {
            header,
            signature,
            transactions: body,
        };
        let params = self.net.genesis.params.clone();
        match self.state.apply_block(&block, &self.network, &params) {
            BlockOutcome::Applied(o) => o,
            BlockOutcome::Rejected(r) => panic!("rejected: {r}"),
        }
    }
}

/// Another signature by the same key over the same transaction's bytes is still a good
/// signature; a corrupted one is not. Both name the same transaction (same hash slot).
fn corrupt(stx: &SignedTransaction) -> SignedTransaction {
    let mut bad = stx.clone();
    bad.signature.0[5] ^= 1;
    bad
}

#[test]
fn a_transaction_verified_at_ingress_is_not_verified_again_at_execution() {
    let mut w = world();
    let one = w.tx(1, 1, 2);
    assert!(w.ingress(&one));
    assert_eq!(w.cache.verifications(), 1);
    assert_eq!(w.run(vec![one]), vec![TxOutcome::Applied]);
    assert_eq!(w.cache.verifications(), 1, "single transaction re-verified");
    // A whole block of known signatures: no batch either.
    let txs: Vec<_> = (2..=7).map(|i| w.tx(i, 1, 0)).collect();
    for t in &txs {
        assert!(w.ingress(t));
    }
    assert_eq!(w.cache.verifications(), 7);
    assert_eq!(w.run(txs), vec![TxOutcome::Applied; 6]);
    assert_eq!(
        w.cache.verifications(),
        7,
        "a block of known signatures re-verified"
    );
    // Unknown ones (from another peer's clients) are batch-verified once, per signature.
    let txs: Vec<_> = (2..=7).map(|i| w.tx(i, 2, 0)).collect();
    assert_eq!(w.run(txs), vec![TxOutcome::Applied; 6]);
    assert_eq!(w.cache.verifications(), 13);
}

#[test]
fn a_key_change_forces_verification_again() {
    let mut w = world();
    let new = Keypair::derive("verified-test", 1, 1);
    let rotate = Transaction {
        origin: Address(1),
        sequence: 1,
        action: Action::SetKey { key: new.public() },
    };
    let rotate = w.net.accounts[1].sign_tx(&w.network, rotate);
    // Checked at ingress under the old key, then the key changes before execution.
    let next = w.tx(1, 2, 2);
    assert!(w.ingress(&next));
    assert_eq!(w.run(vec![rotate]), vec![TxOutcome::Applied]);
    let before = w.cache.verifications();
    // The old key's fact no longer matches: verified again (and refused: wrong key now).
    assert_eq!(
        w.run(vec![next]),
        vec![TxOutcome::Failed(cvx_protocol::ErrorCode::Signature)]
    );
    assert_eq!(w.cache.verifications(), before + 1);
}

#[test]
fn a_bad_signature_is_refused_even_when_a_good_one_for_the_same_transaction_is_known() {
    let mut w = world();
    let good = w.tx(1, 1, 2);
    assert!(w.ingress(&good));
    let bad = corrupt(&good);
    assert_eq!(bad.id(), good.id(), "same transaction, same hash slot");
    assert!(!w.ingress(&bad));
    assert_eq!(
        w.run(vec![bad.clone()]),
        vec![TxOutcome::Failed(cvx_protocol::ErrorCode::Signature)]
    );
    // In a block of known ones (the batch path) too.
    let mut txs: Vec<_> = (2..=5).map(|i| w.tx(i, 1, 0)).collect();
    for t in &txs {
        assert!(w.ingress(t));
    }
    txs.push(bad);
    let out = w.run(txs);
    assert_eq!(out[..4], vec![TxOutcome::Applied; 4]);
    assert_eq!(
        out[4],
        TxOutcome::Failed(cvx_protocol::ErrorCode::Signature)
    );
}

#[test]
fn eviction_keeps_the_bound_and_forgets_the_oldest() {
    let w = world();
    let cache = Verified::new(3);
    let txs: Vec<_> = (1..=5).map(|i| w.tx(i, 1, 0)).collect();
    let key = |t: &SignedTransaction| w.state.account(t.tx.origin).unwrap().key;
    for t in &txs {
        assert!(cache.verify_tx(&w.network, &key(t), t));
        assert!(cache.len() <= 3);
    }
    assert_eq!(cache.len(), 3);
    let known =
        |t: &SignedTransaction| cache.contains(&t.tx.sign_bytes(&w.network), &key(t), &t.signature);
    assert!(!known(&txs[0]) && !known(&txs[1]));
    assert!(known(&txs[2]) && known(&txs[4]));
    // A failed check adds nothing.
    assert!(!cache.verify_tx(&w.network, &key(&txs[0]), &corrupt(&txs[0])));
    assert!(known(&txs[2]));
}

#[test]
fn check_many_refuses_exactly_the_bad_ones() {
    let w = world();
    let mut txs: Vec<_> = (1..=8).map(|i| w.tx(i - 1, 1, 7)).collect();
    txs[2] = corrupt(&txs[2]);
    txs[6] = corrupt(&txs[6]);
    let items = w.items(&txs);
    let got = w.cache.check_many(&items);
    let want: Vec<bool> = (0..8).map(|i| i != 2 && i != 6).collect();
    assert_eq!(got, want);
    // All good: one batch, and a passing batch adds a fact for each of its signatures.
    let good: Vec<_> = (1..=8).map(|i| w.tx(i - 1, 2, 7)).collect();
    let items = w.items(&good);
    let n = w.cache.len();
    let v = w.cache.verifications();
    assert_eq!(w.cache.check_many(&items), vec![true; 8]);
    assert_eq!(w.cache.verifications(), v + 8, "one batch of 8");
    assert_eq!(w.cache.len(), n + 8);
    assert_eq!(w.cache.check_many(&items), vec![true; 8]);
    assert_eq!(w.cache.verifications(), v + 8, "known: not checked again");
}

#[test]
fn a_transaction_checked_in_an_ingress_batch_is_not_verified_again_at_execution() {
    let mut w = world();
    let txs: Vec<_> = (1..=7).map(|i| w.tx(i, 1, 0)).collect();
    let items = w.items(&txs);
    assert_eq!(w.cache.check_many(&items), vec![true; 7]);
    assert_eq!(w.cache.verifications(), 7, "one batch at ingress");
    // Executed in two blocks (a proposer's blocks need not match the ingress batches).
    assert_eq!(w.run(txs[..3].to_vec()), vec![TxOutcome::Applied; 3]);
    assert_eq!(w.run(txs[3..].to_vec()), vec![TxOutcome::Applied; 4]);
    assert_eq!(w.cache.verifications(), 7, "re-verified at execution");
}

/// A block whose batch fails (one bad signature among unknown ones) is decided signature
/// by signature, and the bad one is not checked a second time at execution.
#[test]
fn a_failed_block_batch_decides_each_signature_once() {
    let mut w = world();
    let mut txs: Vec<_> = (1..=6).map(|i| w.tx(i, 1, 0)).collect();
    txs[4] = corrupt(&txs[4]);
    let out = w.run(txs);
    let mut want = vec![TxOutcome::Applied; 6];
    want[4] = TxOutcome::Failed(cvx_protocol::ErrorCode::Signature);
    assert_eq!(out, want);
    assert_eq!(
        w.cache.verifications(),
        6 + 6,
        "a batch of 6, then 6 single checks"
    );
}

#[test]
fn facts_never_change_a_block_outcome() {
    // The same blocks, with and without facts known beforehand, give the same outcomes
    // and the same state root.
    let mut a = world();
    let mut b = world();
    for round in 1..=3u64 {
        let mut txs: Vec<_> = (0..6).map(|i| a.tx(i, round, 7)).collect();
        if round == 2 {
            txs[3] = corrupt(&txs[3]);
        }
        for (i, t) in txs.iter().enumerate() {
            if i % 2 == 0 {
                let _ = b.ingress(t);
            }
        }
        assert_eq!(a.run(txs.clone()), b.run(txs));
        assert_eq!(a.state.state_hash(), b.state.state_hash());
    }
}
