//! Shared test fixtures: deterministic keys and proptest strategies for every type.
#![allow(dead_code, clippy::unwrap_used)]

use cvx_protocol::consensus::{
    Belief, BlockHeader, Challenge, ChallengeResponse, Checkpoint, Order, SignedChallengeResponse,
    SignedOrder,
};
use cvx_protocol::ledger::{
    Account, Action, Genesis, GenesisAccount, GenesisPeer, Params, PeerRecord, SignedTransaction,
    Transaction, TxOutcome, TxResult,
};
use cvx_protocol::policy::{BlockMark, OrderMark, Request, SignRequest, Watermark};
use cvx_protocol::{
    Address, Amount, BoundedVec, ErrorCode, Hash, HostAddr, NetworkId, PublicKey, Signature,
    Timestamp, Token,
};
use ed25519_dalek::{Signer, SigningKey};
use proptest::prelude::*;

/// Deterministic test key number `i`.
pub fn signing_key(i: u8) -> SigningKey {
    SigningKey::from_bytes(&[i.wrapping_add(1); 32])
}

pub fn public(i: u8) -> PublicKey {
    PublicKey::from_bytes(signing_key(i).verifying_key().as_bytes()).unwrap()
}

pub fn sign(sk: &SigningKey, bytes: &cvx_protocol::SignBytes) -> Signature {
    Signature(sk.sign(bytes.as_bytes()).to_bytes())
}

pub fn amount(v: u64) -> Amount {
    Amount::new(v).unwrap()
}

pub fn hash_s() -> impl Strategy<Value = Hash> {
    any::<[u8; 32]>().prop_map(Hash)
}
pub fn key_s() -> impl Strategy<Value = PublicKey> {
    (0u8..8).prop_map(public)
}
pub fn sig_s() -> impl Strategy<Value = Signature> {
    (any::<[u8; 32]>(), any::<[u8; 32]>()).prop_map(|(a, b)| {
        let mut s = [0u8; 64];
        s[..32].copy_from_slice(&a);
        s[32..].copy_from_slice(&b);
        Signature(s)
    })
}
pub fn amount_s() -> impl Strategy<Value = Amount> {
    prop_oneof![0u64..1000, 0u64..=cvx_protocol::primitives::MAX_SUPPLY].prop_map(amount)
}
pub fn ts_s() -> impl Strategy<Value = Timestamp> {
    any::<u64>().prop_map(Timestamp)
}
pub fn host_s() -> impl Strategy<Value = Option<HostAddr>> {
    proptest::option::of(
        ("[a-z0-9.-]{1,40}", 1u32..65536)
            .prop_map(|(h, p)| HostAddr::new(&format!("{h}:{p}")).unwrap()),
    )
}
pub fn code_s() -> impl Strategy<Value = ErrorCode> {
    proptest::sample::select(ErrorCode::ALL.to_vec())
}

pub fn action_s() -> impl Strategy<Value = Action> {
    prop_oneof![
        (any::<u64>(), amount_s()).prop_map(|(to, amount)| Action::Transfer {
            to: Address(to),
            amount
        }),
        (key_s(), amount_s()).prop_map(|(key, balance)| Action::CreateAccount { key, balance }),
        (key_s(), amount_s(), host_s()).prop_map(|(key, stake, host)| Action::CreatePeer {
            key,
            stake,
            host
        }),
        (key_s(), amount_s()).prop_map(|(peer, stake)| Action::SetPeerStake { peer, stake }),
        (key_s(), host_s()).prop_map(|(peer, host)| Action::SetPeerHost { peer, host }),
        key_s().prop_map(|key| Action::SetKey { key }),
    ]
}
pub fn tx_s() -> impl Strategy<Value = Transaction> {
    (any::<u64>(), 1u64..=u64::MAX, action_s()).prop_map(|(o, sequence, action)| Transaction {
        origin: Address(o),
        sequence,
        action,
    })
}
pub fn stx_s() -> impl Strategy<Value = SignedTransaction> {
    (tx_s(), sig_s()).prop_map(|(tx, signature)| SignedTransaction { tx, signature })
}
pub fn account_s() -> impl Strategy<Value = Account> {
    (key_s(), amount_s(), any::<u64>()).prop_map(|(key, balance, sequence)| Account {
        key,
        balance,
        sequence,
    })
}
pub fn peer_record_s() -> impl Strategy<Value = PeerRecord> {
    (key_s(), any::<u64>(), amount_s(), host_s(), ts_s()).prop_map(|(key, c, stake, host, t)| {
        PeerRecord {
            key,
            controller: Address(c),
            stake,
            host,
            last_block_time: t,
        }
    })
}
pub fn params() -> Params {
    Params {
        min_stake: amount(1000),
        fee: amount(1),
        max_block_txs: 1024,
        min_block_time_ms: 10,
        max_block_backdate_ms: 60_000,
        max_future_ms: 30_000,
        proposal_hold_ms: 100,
        decay_grace_ms: 300_000,
        decay_time_ms: 300_000,
        decay_floor_ppm: 1000,
    }
}
pub fn genesis_s() -> impl Strategy<Value = Genesis> {
    (
        "[a-z]{1,20}",
        0u64..u64::MAX / 2,
        proptest::collection::vec((key_s(), 0u64..1_000_000), 1..6),
        proptest::collection::btree_set(0u8..8, 1..4),
    )
        .prop_map(|(name, t, accs, peers)| {
            let n = accs.len() as u64;
            Genesis {
                network_name: cvx_protocol::primitives::Name::new(&name).unwrap(),
                time: Timestamp(t),
                accounts: BoundedVec::try_from_vec(
                    accs.into_iter()
                        .map(|(key, b)| GenesisAccount {
                            key,
                            balance: amount(b),
                        })
                        .collect(),
                )
                .unwrap(),
                peers: BoundedVec::try_from_vec(
                    peers
                        .into_iter()
                        .map(|k| GenesisPeer {
                            key: public(k),
                            controller: Address(u64::from(k) % n),
                            stake: amount(5000),
                            host: None,
                        })
                        .collect(),
                )
                .unwrap(),
                params: params(),
            }
        })
}
pub fn header_s() -> impl Strategy<Value = BlockHeader> {
    (key_s(), ts_s(), 0u32..=4096, hash_s()).prop_map(|(proposer, timestamp, tx_count, tx_hash)| {
        BlockHeader {
            proposer,
            timestamp,
            tx_count,
            tx_hash,
        }
    })
}
pub fn block_s() -> impl Strategy<Value = cvx_protocol::consensus::Block> {
    (
        key_s(),
        ts_s(),
        proptest::collection::vec(stx_s(), 0..4),
        sig_s(),
    )
        .prop_map(|(proposer, timestamp, txs, signature)| {
            let transactions = BoundedVec::try_from_vec(txs).unwrap();
            cvx_protocol::consensus::Block {
                header: BlockHeader {
                    proposer,
                    timestamp,
                    tx_count: u32::try_from(transactions.len()).unwrap(),
                    tx_hash: cvx_protocol::consensus::body_hash(&transactions),
                },
                signature,
                transactions,
            }
        })
}
pub fn order_s() -> impl Strategy<Value = Order> {
    (
        key_s(),
        ts_s(),
        0u64..1_000_000,
        hash_s(),
        proptest::collection::vec(hash_s(), 0..20),
        any::<[u16; 3]>(),
    )
        .prop_map(|(peer, timestamp, cp, chain, blocks, pts)| {
            let len = cp + blocks.len() as u64;
            let span = len - cp;
            let mut p = pts.map(|x| cp + u64::from(x) % (span + 1));
            p.sort_unstable();
            Order {
                peer,
                timestamp,
                checkpoint: Checkpoint {
                    position: cp,
                    chain,
                },
                blocks: BoundedVec::try_from_vec(blocks).unwrap(),
                finality: p[0],
                stake_root: Hash::ZERO,
                consensus: p[1],
                proposal: p[2],
            }
        })
}
pub fn signed_order_s() -> impl Strategy<Value = SignedOrder> {
    (order_s(), sig_s()).prop_map(|(order, signature)| SignedOrder { order, signature })
}
pub fn belief_s() -> impl Strategy<Value = Belief> {
    proptest::collection::vec(signed_order_s(), 0..5).prop_map(|mut v| {
        v.sort_by_key(|o| o.order.peer);
        v.dedup_by(|a, b| a.order.peer == b.order.peer);
        Belief {
            orders: BoundedVec::try_from_vec(v).unwrap(),
        }
    })
}
pub fn token_s() -> impl Strategy<Value = Token> {
    any::<[u8; 32]>().prop_map(Token)
}
pub fn challenge_s() -> impl Strategy<Value = Challenge> {
    (key_s(), token_s()).prop_map(|(challenger, token)| Challenge { challenger, token })
}
pub fn response_s() -> impl Strategy<Value = ChallengeResponse> {
    (key_s(), key_s(), token_s()).prop_map(|(challenger, responder, token)| ChallengeResponse {
        challenger,
        responder,
        token,
    })
}
pub fn signed_response_s() -> impl Strategy<Value = SignedChallengeResponse> {
    (response_s(), sig_s()).prop_map(|(response, signature)| SignedChallengeResponse {
        response,
        signature,
    })
}
pub fn watermark_s() -> impl Strategy<Value = Watermark> {
    (
        proptest::option::of(
            (ts_s(), hash_s()).prop_map(|(timestamp, id)| BlockMark { timestamp, id }),
        ),
        proptest::option::of(
            (ts_s(), hash_s()).prop_map(|(timestamp, id)| OrderMark { timestamp, id }),
        ),
        proptest::option::of(
            (any::<u64>(), hash_s()).prop_map(|(position, chain)| Checkpoint { position, chain }),
        ),
        any::<u64>(),
    )
        .prop_map(|(block, order, consensus, finality)| Watermark {
            block,
            order,
            consensus,
            finality,
        })
}
pub fn request_s() -> impl Strategy<Value = Request> {
    (
        hash_s(),
        prop_oneof![
            header_s().prop_map(SignRequest::Block),
            (order_s(), proptest::collection::vec(hash_s(), 0..4)).prop_map(|(order, b)| {
                SignRequest::Order {
                    order,
                    bridge: BoundedVec::try_from_vec(b).unwrap(),
                }
            }),
            response_s().prop_map(SignRequest::ChallengeResponse),
        ],
    )
        .prop_map(|(n, body)| Request {
            network: NetworkId(n),
            body,
        })
}
pub fn outcome_s() -> impl Strategy<Value = TxOutcome> {
    prop_oneof![
        Just(TxOutcome::Applied),
        code_s().prop_map(TxOutcome::Failed)
    ]
}
pub fn result_s() -> impl Strategy<Value = TxResult> {
    (hash_s(), any::<u64>(), any::<u32>(), outcome_s()).prop_map(
        |(id, block_position, index, outcome)| TxResult {
            id,
            block_position,
            index,
            outcome,
        },
    )
}
pub fn message_s() -> impl Strategy<Value = cvx_protocol::peer_wire::Message> {
    use cvx_protocol::peer_wire::{Hello, Message, Query, Role};
    prop_oneof![
        (
            any::<u16>(),
            hash_s(),
            proptest::option::of(key_s()),
            token_s(),
            ts_s()
        )
            .prop_map(|(version, n, k, challenge, time)| {
                Message::Hello(Hello {
                    version,
                    network: NetworkId(n),
                    role: k.map_or(Role::Client, Role::Peer),
                    challenge,
                    time,
                })
            }),
        signed_response_s().prop_map(Message::Proof),
        belief_s().prop_map(Message::Belief),
        proptest::collection::vec(hash_s(), 0..5)
            .prop_map(|v| Message::GetBlocks(BoundedVec::try_from_vec(v).unwrap())),
        block_s().prop_map(Message::Block),
        (any::<u64>(), 0u32..=1024).prop_map(|(from, count)| Message::GetBlockIds { from, count }),
        proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..40), 0..4).prop_map(
            |v| Message::State(
                BoundedVec::try_from_vec(
                    v.into_iter()
                        .map(|n| BoundedVec::try_from_vec(n).unwrap())
                        .collect()
                )
                .unwrap()
            )
        ),
        stx_s().prop_map(Message::Submit),
        (hash_s(), proptest::result::maybe_ok(result_s(), code_s()))
            .prop_map(|(id, result)| Message::Submitted { id, result }),
        prop_oneof![
            any::<u64>().prop_map(|a| Query::Account(Address(a))),
            key_s().prop_map(Query::Peer),
            Just(Query::Status)
        ]
        .prop_map(Message::Query),
        (code_s(), "[ -~]{0,40}").prop_map(|(code, d)| Message::Error {
            code,
            detail: cvx_protocol::BoundedString::new(&d).unwrap()
        }),
        Just(Message::Goodbye),
    ]
}
