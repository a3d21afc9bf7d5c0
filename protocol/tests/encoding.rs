//! Property tests of the canonical encoding, for every encoded type:
//! round trip; any bytes that decode re-encode to exactly themselves; a trailing byte
//! is refused.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use cvx_protocol::consensus::{
    Belief, Block, BlockHeader, Challenge, ChallengeResponse, Order, SignedChallengeResponse,
    SignedOrder,
};
use cvx_protocol::ledger::{
    Account, Genesis, PeerRecord, SignedTransaction, Transaction, TxOutcome, TxResult,
};
use cvx_protocol::policy::{Request, Watermark};
use cvx_protocol::{Canonical, DecodeError};
use proptest::prelude::*;

/// Edits applied to a valid encoding to make hostile inputs near valid ones.
#[derive(Debug, Clone)]
enum Edit {
    Flip(usize, u8),
    Insert(usize, u8),
    Remove(usize),
    Truncate(usize),
}

fn edit_s() -> impl Strategy<Value = Vec<Edit>> {
    proptest::collection::vec(
        prop_oneof![
            (any::<usize>(), 1u8..=255).prop_map(|(i, b)| Edit::Flip(i, b)),
            (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Edit::Insert(i, b)),
            any::<usize>().prop_map(Edit::Remove),
            any::<usize>().prop_map(Edit::Truncate),
        ],
        1..4,
    )
}

fn apply(mut bytes: Vec<u8>, edits: &[Edit]) -> Vec<u8> {
    for e in edits {
        let n = bytes.len();
        match *e {
            Edit::Flip(i, b) if n > 0 => bytes[i % n] ^= b,
            Edit::Insert(i, b) => bytes.insert(i % (n + 1), b),
            Edit::Remove(i) if n > 0 => {
                bytes.remove(i % n);
            }
            Edit::Truncate(i) => bytes.truncate(i % (n + 1)),
            _ => {}
        }
    }
    bytes
}

fn check_canonical<T: Canonical + std::fmt::Debug + PartialEq>(
    v: &T,
    edits: &[Edit],
    noise: &[u8],
) {
    let enc = v.encode();
    // Round trip.
    let back = T::decode(&enc).unwrap_or_else(|e| panic!("{v:?} does not decode: {e}"));
    assert_eq!(&back, v);
    assert_eq!(back.encode(), enc);
    // A trailing byte is refused.
    let mut longer = enc.clone();
    longer.push(0);
    assert!(
        matches!(
            T::decode(&longer),
            Err(DecodeError::Trailing { extra: 1, .. } | DecodeError::TooLong { .. })
        ),
        "{}: trailing byte accepted",
        T::NAME
    );
    // Near-valid and random bytes: whatever decodes is the canonical encoding of itself.
    for input in [apply(enc, edits), noise.to_vec()] {
        if let Ok(x) = T::decode(&input) {
            assert_eq!(
                x.encode(),
                input,
                "{}: decoded a non-canonical input",
                T::NAME
            );
        }
    }
}

macro_rules! canonical_props {
    ($($name:ident: $ty:ty = $strat:expr;)*) => {
        proptest! {
            #![proptest_config(ProptestConfig { cases: 192, ..ProptestConfig::default() })]
            $(
                #[test]
                fn $name(v in $strat, edits in edit_s(), noise in proptest::collection::vec(any::<u8>(), 0..300)) {
                    check_canonical::<$ty>(&v, &edits, &noise);
                }
            )*
        }
    };
}

canonical_props! {
    account: Account = account_s();
    peer_record: PeerRecord = peer_record_s();
    transaction: Transaction = tx_s();
    signed_transaction: SignedTransaction = stx_s();
    genesis: Genesis = genesis_s();
    tx_outcome: TxOutcome = outcome_s();
    tx_result: TxResult = result_s();
    block_header: BlockHeader = header_s();
    block: Block = block_s();
    order: Order = order_s();
    signed_order: SignedOrder = signed_order_s();
    belief: Belief = belief_s();
    challenge: Challenge = challenge_s();
    challenge_response: ChallengeResponse = response_s();
    signed_challenge_response: SignedChallengeResponse = signed_response_s();
    watermark: Watermark = watermark_s();
    sign_request: Request = request_s();
    peer_message: cvx_protocol::peer_wire::Message = message_s();
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// What a signer reads of a genesis (`Genesis::stakes_of`, the accounts skipped) is
    /// what the full decode reads; another network's genesis and bytes that are no genesis
    /// are told apart.
    #[test]
    fn genesis_stakes_read_what_the_full_decode_reads(g in genesis_s(), other in genesis_s()) {
        use cvx_protocol::ledger::GenesisStakesError;
        let bytes = g.encode();
        let st = Genesis::stakes_of(&bytes, &g.network_id()).unwrap();
        prop_assert_eq!(st.time, g.time);
        prop_assert_eq!(&st.peers, &g.peers.iter().cloned().collect::<Vec<_>>());
        prop_assert_eq!(&st.params, &g.params);
        if other != g {
            let refused = Genesis::stakes_of(&other.encode(), &g.network_id());
            prop_assert!(
                matches!(refused, Err(GenesisStakesError::OtherNetwork(id)) if id == other.network_id())
            );
        }
        prop_assert!(matches!(
            Genesis::stakes_of(&bytes[..bytes.len() - 1], &g.network_id()),
            Err(GenesisStakesError::NotGenesis(_))
        ));
    }
}

/// An order of test key `k` with no blocks.
fn empty_order(k: u8) -> Order {
    Order {
        peer: public(k),
        timestamp: cvx_protocol::Timestamp(1),
        checkpoint: cvx_protocol::consensus::Checkpoint {
            position: 0,
            chain: cvx_protocol::Hash::ZERO,
        },
        blocks: cvx_protocol::BoundedVec::new(),
        proposal: 0,
        consensus: 0,
        finality: 0,
        stake_root: cvx_protocol::hash::Hash::ZERO,
    }
}

#[test]
fn overlong_varint_is_not_canonical() {
    // Transaction { origin: #1, sequence: 1, SetKey } with origin as a 2-byte varint.
    let tx = Transaction {
        origin: cvx_protocol::Address(1),
        sequence: 1,
        action: cvx_protocol::ledger::Action::SetKey { key: public(0) },
    };
    let enc = tx.encode();
    assert_eq!(enc[0], 1);
    let mut overlong = vec![0x81, 0x00];
    overlong.extend_from_slice(&enc[1..]);
    assert_eq!(
        Transaction::decode(&overlong),
        Err(DecodeError::NonCanonical {
            what: "Transaction"
        })
    );
}

#[test]
fn semantic_rules_are_enforced_at_decode() {
    // Sequence 0.
    let tx = Transaction {
        origin: cvx_protocol::Address(1),
        sequence: 1,
        action: cvx_protocol::ledger::Action::SetKey { key: public(0) },
    };
    let mut enc = tx.encode();
    enc[1] = 0;
    assert!(matches!(
        Transaction::decode(&enc),
        Err(DecodeError::Invalid { .. })
    ));
    // A weak key inside a value.
    let mut weak = tx.encode();
    let at = weak.len() - 32;
    weak[at..].copy_from_slice(&{
        let mut id = [0u8; 32];
        id[0] = 1;
        id
    });
    assert!(matches!(
        Transaction::decode(&weak),
        Err(DecodeError::Field { reason, .. }) if reason.contains("weak")
    ));
    // A belief whose orders are not sorted by peer.
    let o = |k: u8| SignedOrder {
        order: empty_order(k),
        signature: cvx_protocol::Signature([0; 64]),
    };
    let mut orders = vec![o(1), o(2)];
    orders.sort_by_key(|o| std::cmp::Reverse(o.order.peer));
    let b = Belief {
        orders: cvx_protocol::BoundedVec::try_from_vec(orders).unwrap(),
    };
    assert!(matches!(
        Belief::decode(&b.encode()),
        Err(DecodeError::Invalid { .. })
    ));
}

#[test]
fn input_above_type_cap_is_refused_before_parsing() {
    let big = vec![0u8; BlockHeader::MAX_LEN + 1];
    assert!(matches!(
        BlockHeader::decode(&big),
        Err(DecodeError::TooLong { .. })
    ));
}

#[test]
fn declared_length_above_cap_is_refused() {
    // An order whose block list declares 1025 hashes (cap 1024): refused as OverCap.
    let enc = empty_order(0).encode();
    // peer(32) ‖ timestamp(1) ‖ checkpoint(1 + 32) ‖ blocks len(1: 0x00) ‖ points(3)
    let len_at = 32 + 1 + 1 + 32;
    assert_eq!(enc[len_at], 0);
    let mut hostile = enc[..len_at].to_vec();
    hostile.extend_from_slice(&[0x81, 0x08]); // varint 1025
    hostile.extend(std::iter::repeat_n(7u8, 1025 * 32 + 3));
    match Order::decode(&hostile) {
        Err(DecodeError::OverCap {
            count: 1025,
            cap: 1024,
            ..
        }) => {}
        other => panic!("expected OverCap, got {other:?}"),
    }
}
