//! Ledger execution: a table test per transaction kind and error code, block validity,
//! and coin conservation over random transaction streams.
#![allow(clippy::unwrap_used)]

use cvx_consensus::ledger::{BlockOutcome, BlockRejection, State};
use cvx_loadgen::{Keypair, TestNet, fast_params, test_net};
use cvx_protocol::consensus::{Block, BlockBody, BlockHeader, body_hash};
use cvx_protocol::ledger::{Action, SignedTransaction, Transaction, TxOutcome};
use cvx_protocol::{
    Address, Amount, BoundedVec, ErrorCode, HostAddr, NetworkId, PublicKey, Timestamp,
};
use proptest::prelude::*;

const BAL: u64 = 100_000;

struct World {
    net: TestNet,
    network: NetworkId,
    state: State,
    seq: Vec<u64>,
    t: u64,
}

fn amt(v: u64) -> Amount {
    Amount::new(v).unwrap()
}

impl World {
    /// Two peers (stake 5,000 each, controllers #0 and #1) and four accounts.
    fn new() -> Self {
        let net = test_net(7, &[5_000, 5_000], 4, BAL, fast_params());
        let network = net.genesis.network_id();
        let state = State::from_genesis(&net.genesis);
        let t = net.genesis.time.0;
        Self {
            net,
            network,
            state,
            seq: vec![0; 64],
            t,
        }
    }

    fn tx(&mut self, from: usize, action: Action) -> SignedTransaction {
        self.seq[from] += 1;
        self.tx_seq(from, self.seq[from], action)
    }

    fn tx_seq(&self, from: usize, sequence: u64, action: Action) -> SignedTransaction {
        let tx = Transaction {
            origin: Address(from as u64),
            sequence,
            action,
        };
        self.net.accounts[from].sign_tx(&self.network, tx)
    }

    fn block_by(&mut self, proposer: &Keypair, txs: Vec<SignedTransaction>, ts: u64) -> Block {
        let body: BlockBody = BoundedVec::try_from_vec(txs).unwrap();
        let header = BlockHeader {
            proposer: proposer.public(),
            timestamp: Timestamp(ts),
            tx_count: u32::try_from(body.len()).unwrap(),
            tx_hash: body_hash(&body),
        };
        let signature = proposer.sign_value(&self.network, &header);
        Block {
            header,
            signature,
            transactions: body,
        }
    }

    /// Apply one block by peer 0 with `txs`; the outcomes.
    fn run(&mut self, txs: Vec<SignedTransaction>) -> Vec<TxOutcome> {
        self.t += 10;
        let t = self.t;
        let block = {
            let peers = std::mem::take(&mut self.net.peers);
            let b = self.block_by(&peers[0], txs, t);
            self.net.peers = peers;
            b
        };
        let params = self.net.genesis.params.clone();
        let before = self.state.total_coins();
        let out = self.state.apply_block(&block, &self.network, &params);
        assert_eq!(self.state.total_coins(), before, "coins conserved");
        match out {
            BlockOutcome::Applied(o) => o,
            BlockOutcome::Rejected(r) => panic!("block rejected: {r}"),
        }
    }

    fn one(&mut self, t: SignedTransaction) -> TxOutcome {
        self.run(vec![t])[0]
    }

    fn balance(&self, a: u64) -> u64 {
        self.state.account(Address(a)).unwrap().balance.get()
    }
}

fn fresh_key(i: u64) -> PublicKey {
    Keypair::derive("fresh", 1, i).public()
}

#[test]
fn transfer_table() {
    let mut w = World::new();
    let fee = w.net.genesis.params.fee.get();
    let cases: Vec<(&str, Action, TxOutcome)> = vec![
        (
            "ok",
            Action::Transfer {
                to: Address(2),
                amount: amt(10),
            },
            TxOutcome::Applied,
        ),
        (
            "zero amount",
            Action::Transfer {
                to: Address(2),
                amount: Amount::ZERO,
            },
            TxOutcome::Failed(ErrorCode::Argument),
        ),
        (
            "to self",
            Action::Transfer {
                to: Address(3),
                amount: amt(1),
            },
            TxOutcome::Failed(ErrorCode::Argument),
        ),
        (
            "no such account",
            Action::Transfer {
                to: Address(99),
                amount: amt(1),
            },
            TxOutcome::Failed(ErrorCode::Nobody),
        ),
        (
            "more than the balance",
            Action::Transfer {
                to: Address(2),
                amount: amt(BAL),
            },
            TxOutcome::Failed(ErrorCode::Funds),
        ),
    ];
    for (name, action, want) in cases {
        let before = w.balance(3);
        let seq_before = w.state.account(Address(3)).unwrap().sequence;
        let t = w.tx(3, action);
        assert_eq!(w.one(t), want, "{name}");
        // Every action outcome (applied or failed) charges the fee and moves the sequence.
        assert_eq!(
            w.state.account(Address(3)).unwrap().sequence,
            seq_before + 1,
            "{name}"
        );
        let spent = if want == TxOutcome::Applied { 10 } else { 0 };
        assert_eq!(w.balance(3), before - fee - spent, "{name}");
    }
}

#[test]
fn authorization_failures_cost_nothing_and_keep_the_sequence() {
    let mut w = World::new();
    let action = Action::Transfer {
        to: Address(2),
        amount: amt(5),
    };
    // SEQUENCE: not account sequence + 1.
    let t = w.tx_seq(3, 5, action.clone());
    assert_eq!(w.one(t), TxOutcome::Failed(ErrorCode::Sequence));
    // SIGNATURE: a flipped bit.
    let mut t = w.tx_seq(3, 1, action.clone());
    t.signature.0[3] ^= 1;
    assert_eq!(w.one(t), TxOutcome::Failed(ErrorCode::Signature));
    // SIGNATURE: signed by another account's key.
    let tx = Transaction {
        origin: Address(3),
        sequence: 1,
        action: action.clone(),
    };
    let t = w.net.accounts[2].sign_tx(&w.network, tx);
    assert_eq!(w.one(t), TxOutcome::Failed(ErrorCode::Signature));
    // NOBODY: no such origin.
    let tx = Transaction {
        origin: Address(50),
        sequence: 1,
        action: action.clone(),
    };
    let t = w.net.accounts[2].sign_tx(&w.network, tx);
    assert_eq!(w.one(t), TxOutcome::Failed(ErrorCode::Nobody));
    // FORMAT: sequence 0 is not a valid transaction.
    let t = w.tx_seq(3, 0, action);
    assert_eq!(w.one(t), TxOutcome::Failed(ErrorCode::Format));
    assert_eq!(w.balance(3), BAL);
    assert_eq!(w.state.account(Address(3)).unwrap().sequence, 0);
}

#[test]
fn fee_unpayable_is_funds_and_changes_nothing() {
    let mut w = World::new();
    // Move everything but 0 out of account 3 (fee 1 + amount BAL-1).
    let t = w.tx(
        3,
        Action::Transfer {
            to: Address(2),
            amount: amt(BAL - 1),
        },
    );
    assert_eq!(w.one(t), TxOutcome::Applied);
    assert_eq!(w.balance(3), 0);
    let t = w.tx(3, Action::SetKey { key: fresh_key(1) });
    assert_eq!(w.one(t), TxOutcome::Failed(ErrorCode::Funds));
    assert_eq!(
        w.state.account(Address(3)).unwrap().sequence,
        1,
        "sequence unchanged"
    );
}

#[test]
fn fee_goes_to_the_proposers_controller() {
    let mut w = World::new();
    let fee = w.net.genesis.params.fee.get();
    let before = w.balance(0); // peer 0's controller
    let t1 = w.tx(
        3,
        Action::Transfer {
            to: Address(2),
            amount: amt(1),
        },
    );
    let t2 = w.tx(
        2,
        Action::Transfer {
            to: Address(3),
            amount: amt(1),
        },
    );
    let _ = w.run(vec![t1, t2]);
    assert_eq!(w.balance(0), before + 2 * fee);
}

#[test]
fn create_account_table() {
    let mut w = World::new();
    let n = w.state.accounts_len();
    let t = w.tx(
        3,
        Action::CreateAccount {
            key: fresh_key(2),
            balance: amt(500),
        },
    );
    assert_eq!(w.one(t), TxOutcome::Applied);
    let new = w.state.account(Address(n)).unwrap();
    assert_eq!(
        (new.key, new.balance.get(), new.sequence),
        (fresh_key(2), 500, 0)
    );
    let t = w.tx(
        3,
        Action::CreateAccount {
            key: fresh_key(3),
            balance: amt(BAL),
        },
    );
    assert_eq!(w.one(t), TxOutcome::Failed(ErrorCode::Funds));
    assert_eq!(w.state.accounts_len(), n + 1);
}

#[test]
fn create_peer_table() {
    let mut w = World::new();
    let min = w.net.genesis.params.min_stake.get();
    let host = Some(HostAddr::new("peer9.example.org:18888").unwrap());
    let t = w.tx(
        3,
        Action::CreatePeer {
            key: fresh_key(9),
            stake: amt(min),
            host: host.clone(),
        },
    );
    assert_eq!(w.one(t), TxOutcome::Applied);
    let p = w.state.peer(&fresh_key(9)).unwrap();
    assert_eq!(
        (p.controller, p.stake.get(), &p.host),
        (Address(3), min, &host),
        "the origin becomes controller"
    );
    let t = w.tx(
        2,
        Action::CreatePeer {
            key: fresh_key(9),
            stake: amt(min),
            host: None,
        },
    );
    assert_eq!(w.one(t), TxOutcome::Failed(ErrorCode::Exists));
    let t = w.tx(
        2,
        Action::CreatePeer {
            key: fresh_key(10),
            stake: amt(min - 1),
            host: None,
        },
    );
    assert_eq!(w.one(t), TxOutcome::Failed(ErrorCode::Argument));
    let t = w.tx(
        2,
        Action::CreatePeer {
            key: fresh_key(10),
            stake: amt(BAL),
            host: None,
        },
    );
    assert_eq!(w.one(t), TxOutcome::Failed(ErrorCode::Funds));
}

#[test]
fn create_peer_beyond_the_peer_cap_is_state() {
    let stakes = vec![1_000; cvx_protocol::ledger::MAX_PEERS];
    let net = test_net(3, &stakes, 1, 1_000_000, fast_params());
    let network = net.genesis.network_id();
    let mut state = State::from_genesis(&net.genesis);
    let t = net.accounts[0].sign_tx(
        &network,
        Transaction {
            origin: Address(0),
            sequence: 1,
            action: Action::CreatePeer {
                key: fresh_key(1),
                stake: amt(1_000),
                host: None,
            },
        },
    );
    let body: BlockBody = BoundedVec::try_from_vec(vec![t]).unwrap();
    let header = BlockHeader {
        proposer: net.peers[0].public(),
        timestamp: Timestamp(net.genesis.time.0 + 1),
        tx_count: 1,
        tx_hash: body_hash(&body),
    };
    let block = Block {
        signature: net.peers[0].sign_value(&network, &header),
        header,
        transactions: body,
    };
    assert_eq!(
        state.apply_block(&block, &network, &net.genesis.params),
        BlockOutcome::Applied(vec![TxOutcome::Failed(ErrorCode::State)])
    );
}

#[test]
fn set_peer_stake_table() {
    let mut w = World::new();
    let key1 = w.net.peers[1].public();
    let min = w.net.genesis.params.min_stake.get();
    // Controller #1 raises its stake by 1,000.
    let b = w.balance(1);
    let t = w.tx(
        1,
        Action::SetPeerStake {
            peer: key1,
            stake: amt(6_000),
        },
    );
    assert_eq!(w.one(t), TxOutcome::Applied);
    assert_eq!(w.state.peer(&key1).unwrap().stake.get(), 6_000);
    assert_eq!(w.balance(1), b - 1_000 - 1);
    let cases: Vec<(usize, Action, ErrorCode)> = vec![
        (
            2,
            Action::SetPeerStake {
                peer: key1,
                stake: amt(6_000),
            },
            ErrorCode::Trust,
        ),
        (
            1,
            Action::SetPeerStake {
                peer: fresh_key(5),
                stake: amt(6_000),
            },
            ErrorCode::Nobody,
        ),
        (
            1,
            Action::SetPeerStake {
                peer: key1,
                stake: amt(min - 1),
            },
            ErrorCode::Argument,
        ),
        (
            1,
            Action::SetPeerStake {
                peer: key1,
                stake: amt(BAL * 2),
            },
            ErrorCode::Funds,
        ),
    ];
    for (from, action, code) in cases {
        let t = w.tx(from, action);
        assert_eq!(w.one(t), TxOutcome::Failed(code), "{code}");
    }
    // 0 returns the whole stake to the controller.
    let b = w.balance(1);
    let t = w.tx(
        1,
        Action::SetPeerStake {
            peer: key1,
            stake: Amount::ZERO,
        },
    );
    assert_eq!(w.one(t), TxOutcome::Applied);
    assert_eq!(w.state.peer(&key1).unwrap().stake, Amount::ZERO);
    assert_eq!(w.balance(1), b + 6_000 - 1);
}

#[test]
fn set_peer_host_table() {
    let mut w = World::new();
    let key1 = w.net.peers[1].public();
    let host = Some(HostAddr::new("[::1]:1").unwrap());
    let t = w.tx(
        1,
        Action::SetPeerHost {
            peer: key1,
            host: host.clone(),
        },
    );
    assert_eq!(w.one(t), TxOutcome::Applied);
    assert_eq!(w.state.peer(&key1).unwrap().host, host);
    let t = w.tx(
        2,
        Action::SetPeerHost {
            peer: key1,
            host: None,
        },
    );
    assert_eq!(w.one(t), TxOutcome::Failed(ErrorCode::Trust));
    let t = w.tx(
        1,
        Action::SetPeerHost {
            peer: fresh_key(4),
            host: None,
        },
    );
    assert_eq!(w.one(t), TxOutcome::Failed(ErrorCode::Nobody));
}

#[test]
fn set_key_rotates_the_signing_key() {
    let mut w = World::new();
    let new = Keypair::derive("rotated", 1, 1);
    let t = w.tx(3, Action::SetKey { key: new.public() });
    assert_eq!(w.one(t), TxOutcome::Applied);
    // The old key no longer signs for #3 ...
    let t = w.tx_seq(
        3,
        2,
        Action::Transfer {
            to: Address(2),
            amount: amt(1),
        },
    );
    assert_eq!(w.one(t), TxOutcome::Failed(ErrorCode::Signature));
    // ... the new one does.
    let tx = Transaction {
        origin: Address(3),
        sequence: 2,
        action: Action::Transfer {
            to: Address(2),
            amount: amt(1),
        },
    };
    let t = new.sign_tx(&w.network, tx);
    assert_eq!(w.one(t), TxOutcome::Applied);
}

#[test]
fn set_key_inside_a_batch_checks_later_transactions_under_the_new_key() {
    let mut w = World::new();
    let new = Keypair::derive("rotated", 1, 2);
    let mut txs = vec![w.tx(3, Action::SetKey { key: new.public() })];
    // Signed with the old key after the rotation in the same block: must fail.
    txs.push(w.tx(
        3,
        Action::Transfer {
            to: Address(2),
            amount: amt(1),
        },
    ));
    for i in 0..4 {
        txs.push(w.tx(
            2,
            Action::Transfer {
                to: Address(1),
                amount: amt(1 + i),
            },
        ));
    }
    let out = w.run(txs);
    assert_eq!(out[0], TxOutcome::Applied);
    assert_eq!(out[1], TxOutcome::Failed(ErrorCode::Signature));
    assert!(out[2..].iter().all(|o| *o == TxOutcome::Applied));
}

#[test]
fn batch_with_one_bad_signature_fails_only_that_transaction() {
    let mut w = World::new();
    let mut txs: Vec<SignedTransaction> = (0..8)
        .map(|i| {
            w.tx(
                2,
                Action::Transfer {
                    to: Address(1),
                    amount: amt(1 + i),
                },
            )
        })
        .collect();
    txs[5].signature.0[40] ^= 0x10;
    let out = w.run(txs);
    for (i, o) in out.iter().enumerate() {
        match i {
            5 => assert_eq!(*o, TxOutcome::Failed(ErrorCode::Signature)),
            6 | 7 => assert_eq!(
                *o,
                TxOutcome::Failed(ErrorCode::Sequence),
                "the gap left by #5"
            ),
            _ => assert_eq!(*o, TxOutcome::Applied),
        }
    }
}

#[test]
fn block_rejections() {
    let mut w = World::new();
    let params = w.net.genesis.params.clone();
    let network = w.network;
    let peers = std::mem::take(&mut w.net.peers);
    let t0 = w.t + 100;
    // Not a peer.
    let stranger = Keypair::derive("stranger", 1, 1);
    let b = w.block_by(&stranger, vec![], t0);
    assert_eq!(
        w.state.check_block(&b, &network, &params),
        Err(BlockRejection::ProposerStake)
    );
    // Bad signature.
    let mut b = w.block_by(&peers[0], vec![], t0);
    b.signature.0[1] ^= 1;
    assert_eq!(
        w.state.check_block(&b, &network, &params),
        Err(BlockRejection::Signature)
    );
    // Body does not match.
    let t = w.tx(2, Action::SetKey { key: fresh_key(1) });
    let mut b = w.block_by(&peers[0], vec![t], t0);
    b.transactions = BlockBody::new();
    assert_eq!(
        w.state.check_block(&b, &network, &params),
        Err(BlockRejection::Body)
    );
    // Too many transactions.
    let mut small = params.clone();
    small.max_block_txs = 1;
    let t1 = w.tx(2, Action::SetKey { key: fresh_key(1) });
    let t2 = w.tx(2, Action::SetKey { key: fresh_key(2) });
    let b = w.block_by(&peers[0], vec![t1, t2], t0);
    assert_eq!(
        w.state.check_block(&b, &network, &small),
        Err(BlockRejection::TooManyTransactions)
    );
    // Earlier than the proposer's previous block.
    let b = w.block_by(&peers[0], vec![], t0);
    assert!(matches!(
        w.state.apply_block(&b, &network, &params),
        BlockOutcome::Applied(_)
    ));
    let b = w.block_by(&peers[0], vec![], t0 - 1);
    assert_eq!(
        w.state.check_block(&b, &network, &params),
        Err(BlockRejection::EarlierThanPrevious)
    );
    // Backdated: peer 1's block far older than the ledger time.
    let b = w.block_by(&peers[1], vec![], t0 + params.max_block_backdate_ms + 10);
    assert!(matches!(
        w.state.apply_block(&b, &network, &params),
        BlockOutcome::Applied(_)
    ));
    let b = w.block_by(&peers[0], vec![], t0 + 5);
    assert_eq!(
        w.state.check_block(&b, &network, &params),
        Err(BlockRejection::Backdated)
    );
    // A rejected block changes nothing but the height.
    let h = w.state.state_hash();
    assert_eq!(
        w.state.apply_block(&b, &network, &params),
        BlockOutcome::Rejected(BlockRejection::Backdated)
    );
    assert_ne!(
        w.state.state_hash(),
        h,
        "the height is part of the state hash"
    );
    w.net.peers = peers;
}

#[test]
fn state_hash_is_deterministic_and_sensitive() {
    let mut a = World::new();
    let mut b = World::new();
    assert_eq!(a.state.state_hash(), b.state.state_hash());
    let t = a.tx(
        3,
        Action::Transfer {
            to: Address(2),
            amount: amt(7),
        },
    );
    let _ = a.one(t.clone());
    b.seq[3] += 1;
    let _ = b.one(t);
    assert_eq!(a.state.state_hash(), b.state.state_hash());
    let t = a.tx(
        3,
        Action::Transfer {
            to: Address(2),
            amount: amt(1),
        },
    );
    let _ = a.one(t);
    assert_ne!(a.state.state_hash(), b.state.state_hash());
}

#[derive(Clone, Debug)]
enum Op {
    Transfer(usize, usize, u64),
    Create(usize, u64),
    CreatePeer(usize, u64),
    Stake(usize, usize, u64),
    SetKey(usize),
    BadSig(usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0..6usize, 0..8usize, 0..200_000u64).prop_map(|(a, b, c)| Op::Transfer(a, b, c)),
        (0..6usize, 0..50_000u64).prop_map(|(a, b)| Op::Create(a, b)),
        (0..6usize, 0..60_000u64).prop_map(|(a, b)| Op::CreatePeer(a, b)),
        (0..6usize, 0..3usize, 0..20_000u64).prop_map(|(a, b, c)| Op::Stake(a, b, c)),
        (0..6usize).prop_map(Op::SetKey),
        (0..6usize).prop_map(Op::BadSig),
    ]
}

/// Random ops signed into blocks of `chunk` transactions each, proposed in turn by the
/// three peers of `net`.
fn blocks_from_ops(net: &TestNet, ops: &[Op], chunk: usize) -> Vec<Block> {
    let network = net.genesis.network_id();
    let mut seq = [0u64; 6];
    let mut txs = Vec::new();
    for (i, o) in ops.iter().enumerate() {
        let (from, action) = match o.clone() {
            Op::Transfer(a, b, c) => (
                a,
                Action::Transfer {
                    to: Address(b as u64),
                    amount: amt(c),
                },
            ),
            Op::Create(a, b) => (
                a,
                Action::CreateAccount {
                    key: fresh_key(i as u64),
                    balance: amt(b),
                },
            ),
            Op::CreatePeer(a, b) => (
                a,
                Action::CreatePeer {
                    key: fresh_key(1000 + i as u64),
                    stake: amt(b),
                    host: None,
                },
            ),
            Op::Stake(a, p, c) => (
                a,
                Action::SetPeerStake {
                    peer: net.peers[p].public(),
                    stake: amt(c),
                },
            ),
            Op::SetKey(a) | Op::BadSig(a) => (
                a,
                Action::SetKey {
                    key: net.accounts[a].public(),
                },
            ),
        };
        seq[from] += 1;
        let mut t = net.accounts[from].sign_tx(
            &network,
            Transaction {
                origin: Address(from as u64),
                sequence: seq[from],
                action,
            },
        );
        if matches!(o, Op::BadSig(_)) {
            t.signature.0[0] ^= 1;
            seq[from] -= 1;
        }
        txs.push(t);
    }
    let mut ts = net.genesis.time.0;
    let mut blocks = Vec::new();
    for (k, c) in txs.chunks(chunk).enumerate() {
        ts += 10;
        let p = &net.peers[k % 3];
        let body: BlockBody = BoundedVec::try_from_vec(c.to_vec()).unwrap();
        let header = BlockHeader {
            proposer: p.public(),
            timestamp: Timestamp(ts),
            tx_count: u32::try_from(body.len()).unwrap(),
            tx_hash: body_hash(&body),
        };
        blocks.push(Block {
            signature: p.sign_value(&network, &header),
            header,
            transactions: body,
        });
    }
    blocks
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]
    #[test]
    fn coins_are_conserved_over_random_transaction_streams(ops in proptest::collection::vec(op(), 1..60), chunk in 1usize..9) {
        let net = test_net(11, &[5_000, 5_000, 3_000], 6, BAL, fast_params());
        let network = net.genesis.network_id();
        let supply = u128::from(net.genesis.total_coins());
        let mut state = State::from_genesis(&net.genesis);
        for block in blocks_from_ops(&net, &ops, chunk) {
            let mut copy = state.clone();
            let _ = state.apply_block(&block, &network, &net.genesis.params);
            let _ = copy.apply_verified_block(&block, &network, &net.genesis.params);
            prop_assert_eq!(state.total_coins(), supply);
            prop_assert_eq!(state.state_hash(), copy.state_hash());
        }
    }

    /// The incremental state root (per touched account) equals the root computed from
    /// scratch after every block, and survives the postcard round trip of version 1 stores.
    #[test]
    fn after_any_block_the_state_root_equals_a_from_scratch_root(ops in proptest::collection::vec(op(), 1..80), chunk in 1usize..9) {
        let net = test_net(13, &[5_000, 5_000, 3_000], 6, BAL, fast_params());
        let network = net.genesis.network_id();
        let mut state = State::from_genesis(&net.genesis);
        prop_assert_eq!(state.state_hash(), state.state_hash_from_scratch());
        for block in blocks_from_ops(&net, &ops, chunk) {
            let before = state.state_hash();
            let _ = state.apply_block(&block, &network, &net.genesis.params);
            prop_assert_ne!(state.state_hash(), before, "the height moves with every block");
            prop_assert_eq!(state.state_hash(), state.state_hash_from_scratch());
            let rebuilt = State::from_parts(state.accounts().to_vec(), state.peers().cloned().collect(), state.time(), state.height());
            prop_assert_eq!(rebuilt.state_hash(), state.state_hash());
        }
        let blob = postcard::to_allocvec(&state).unwrap();
        let back: State = postcard::from_bytes(&blob).unwrap();
        prop_assert_eq!(back.state_hash(), state.state_hash());
        prop_assert_eq!(back, state);
    }
}
