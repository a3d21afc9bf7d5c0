//! The peer protocol: frames between peers, and between clients and a peer, on the
//! peer/client port (the seed's convention: 18888).
//!
//! ```text
//! frame   = length (u32, little-endian, 1..=MAX_FRAME) ‖ postcard(Message)
//! ```
//!
//! The reader checks the length against [`MAX_FRAME`] before allocating, then decodes
//! the message with [`Canonical::decode`] (every collection inside is capped too). A
//! connection starts with a [`Hello`] from each side; a side that claims to be a peer
//! proves it by answering the other's challenge token with a
//! [`SignedChallengeResponse`] (signed by its cvx-signer). Until that proof arrives, and
//! for plain clients always, the connection is a client with no special privilege: its
//! beliefs are ignored.

use serde::{Deserialize, Serialize};

use crate::certificate::CertRequest;
use crate::codes::ErrorCode;
use crate::consensus::{Belief, Block, SignedChallengeResponse};
use crate::encoding::{BoundedString, BoundedVec, Canonical, DecodeError, ensure};
use crate::hash::Hash;
use crate::ledger::{Account, PeerRecord, SignedTransaction, TxResult};
use crate::primitives::{Address, NetworkId, PublicKey, Timestamp, Token};

/// Version of this protocol; a peer refuses a Hello with another major version.
pub const PEER_WIRE_VERSION: u16 = 1;
/// Largest frame payload: a full block (4096 transactions) fits with room to spare.
pub const MAX_FRAME: usize = 2 * 1024 * 1024;
/// Most ids in one request for blocks or state nodes.
pub const MAX_REQUEST_IDS: usize = 256;
/// Most state nodes in one answer.
pub const MAX_STATE_NODES: usize = 256;
/// Largest encoded state node (opaque to this crate; the store defines it).
pub const MAX_STATE_NODE: usize = 8 * 1024;
/// Most block ids in one [`Message::BlockIds`] answer (the signer's bridge cap).
pub const MAX_BLOCK_IDS: usize = 1024;

/// What the sender of a [`Hello`] is.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Role {
    /// 0: a client (submit, query). No challenge needed.
    Client,
    /// 1: a peer claiming this key; it must answer the receiver's challenge.
    Peer(PublicKey),
}

/// The first frame on a connection, from each side.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    /// [`PEER_WIRE_VERSION`] of the sender.
    pub version: u16,
    /// The network the sender is on (a mismatch closes the connection).
    pub network: NetworkId,
    /// Client or peer.
    pub role: Role,
    /// A fresh random token the receiver must sign if it claims to be a peer.
    pub challenge: Token,
    /// The sender's clock (lets each side warn about clock skew).
    pub time: Timestamp,
}

/// A client's question.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Query {
    /// 0: an account by address.
    Account(Address),
    /// 1: a peer by key.
    Peer(PublicKey),
    /// 2: the result of a transaction by id.
    Transaction(Hash),
    /// 3: the peer's status.
    Status,
    /// 4: a state-sync point: `None` asks for the newest one whose state tree the peer
    /// serves (with its root); `Some(position)` asks for the chain value and state hash the
    /// peer finalized at that position (a joining peer confirms a state this way).
    SyncPoint(Option<u64>),
    /// 5: the peer's newest finality certificate with the stake table it is checked
    /// against (docs/consensus.md §7.4): a peer too far behind to catch up from orders
    /// has its signer accept it, then joins by state sync at or past its anchor.
    Certificate,
}

/// Where a joining peer can start: a finalized position, the chain value there, the hash
/// of the ledger state after executing that position's blocks, and the root of the state
/// tree (cvx-etch Merkle trie, docs/etch.md) that `GetState` serves.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncPoint {
    /// Blocks executed (the finality point the state belongs to).
    pub position: u64,
    /// The chain value at `position` (`Checkpoint::chain`).
    pub chain: Hash,
    /// The ledger's state hash at `position` (the same value as `Status::state_root`).
    pub state_hash: Hash,
    /// The Merkle root of the state tree, when the peer serves the state at `position`.
    pub root: Option<Hash>,
}

/// A peer's public status (never the list of its outgoing connections: counts only).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    /// The peer's key.
    pub peer: PublicKey,
    /// Its view of the consensus points.
    pub proposal: u64,
    /// Consensus point.
    pub consensus: u64,
    /// Finality point.
    pub finality: u64,
    /// State root at finality.
    pub state_root: Hash,
    /// True while it can take part in consensus (false: it answers NETWORK).
    pub in_consensus: bool,
    /// Number of outgoing peer connections.
    pub outgoing: u32,
    /// Number of incoming connections.
    pub incoming: u32,
}

/// An answer to a [`Query`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Answer {
    /// 0: the account, if it exists.
    Account(Option<Account>),
    /// 1: the peer record, if it exists.
    Peer(Option<PeerRecord>),
    /// 2: the result, if finalized.
    Transaction(Option<TxResult>),
    /// 3: status.
    Status(Status),
    /// 4: the sync point asked for, if the peer has it.
    SyncPoint(Option<SyncPoint>),
    /// 5: answer to [`Query::Certificate`]: `None` while no quorum of orders is in the
    /// peer's view. Boxed: it is up to `CertRequest::MAX_LEN` (62 KiB) encoded.
    Certificate(Option<Box<CertRequest>>),
}

/// One frame's message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Message {
    /// 0: the opening frame.
    Hello(Hello),
    /// 1: proof of a peer key, answering the other side's `Hello::challenge`.
    Proof(SignedChallengeResponse),
    /// 2: orders that changed since the last belief sent on this connection (a delta).
    Belief(Belief),
    /// 3: ask for blocks by id.
    GetBlocks(BoundedVec<Hash, MAX_REQUEST_IDS>),
    /// 4: one block (answer to GetBlocks, or pushed with a belief that names it).
    Block(Block),
    /// 5: ask for the block ids at positions `from .. from + count` (finalized history),
    /// e.g. to build a signer bridge.
    GetBlockIds {
        /// First position.
        from: u64,
        /// How many (at most [`MAX_BLOCK_IDS`]).
        count: u32,
    },
    /// 6: block ids starting at `from`.
    BlockIds {
        /// First position.
        from: u64,
        /// The ids.
        ids: BoundedVec<Hash, MAX_BLOCK_IDS>,
    },
    /// 7: ask for state-tree nodes by hash (state sync).
    GetState(BoundedVec<Hash, MAX_REQUEST_IDS>),
    /// 8: state-tree nodes (each checked against its hash by the receiver).
    State(BoundedVec<BoundedVec<u8, MAX_STATE_NODE>, MAX_STATE_NODES>),
    /// 9: a client submits a transaction.
    Submit(SignedTransaction),
    /// 10: the result of a submitted transaction (sent when finalized, or at once on
    /// refusal at ingress).
    Submitted {
        /// Transaction id.
        id: Hash,
        /// The finalized result, or the reason it was not accepted.
        result: Result<TxResult, ErrorCode>,
    },
    /// 11: a client question.
    Query(Query),
    /// 12: the answer.
    Answer(Answer),
    /// 13: something was wrong with the last frame; the connection may close after it.
    Error {
        /// Stable code.
        code: ErrorCode,
        /// Human detail (rate-limited by the sender).
        detail: BoundedString<256>,
    },
    /// 14: the sender is closing the connection deliberately (shutdown, rotation).
    Goodbye,
}

impl Canonical for Message {
    const NAME: &'static str = "Message";
    const MAX_LEN: usize = MAX_FRAME;
    fn validate(&self) -> Result<(), DecodeError> {
        match self {
            Self::Belief(b) => b.validate(),
            Self::Block(b) => b.validate(),
            Self::Submit(t) => t.validate(),
            Self::Answer(Answer::Certificate(Some(c))) => c.validate(),
            Self::GetBlockIds { count, .. } => ensure(
                Self::NAME,
                *count as usize <= MAX_BLOCK_IDS,
                "GetBlockIds asks for more than 1024 ids",
            ),
            _ => Ok(()),
        }
    }
}

/// The 4-byte frame header for `payload_len`, or `None` if it is not a valid length.
#[must_use]
pub fn frame_header(payload_len: usize) -> Option<[u8; 4]> {
    if payload_len == 0 || payload_len > MAX_FRAME {
        return None;
    }
    u32::try_from(payload_len).ok().map(u32::to_le_bytes)
}

/// Parse a frame header: the payload length, if within `1..=MAX_FRAME`.
#[must_use]
pub fn frame_len(header: [u8; 4]) -> Option<usize> {
    let n = usize::try_from(u32::from_le_bytes(header)).ok()?;
    (1..=MAX_FRAME).contains(&n).then_some(n)
}

/// Encode a message as a complete frame (header + payload).
#[must_use]
pub fn encode_frame(m: &Message) -> Vec<u8> {
    let payload = m.encode();
    let mut out = Vec::with_capacity(4 + payload.len());
    // A message is at most MAX_FRAME by its caps; an empty payload cannot happen (the
    // enum tag is one byte), so the header always exists.
    out.extend_from_slice(&frame_header(payload.len()).unwrap_or([0; 4]));
    out.extend_from_slice(&payload);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_lengths_are_capped_both_ways() {
        assert_eq!(frame_len(0u32.to_le_bytes()), None);
        assert_eq!(frame_len(1u32.to_le_bytes()), Some(1));
        assert_eq!(
            frame_len(u32::try_from(MAX_FRAME).unwrap().to_le_bytes()),
            Some(MAX_FRAME)
        );
        assert_eq!(
            frame_len(u32::try_from(MAX_FRAME + 1).unwrap().to_le_bytes()),
            None
        );
        assert_eq!(frame_header(MAX_FRAME + 1), None);
        let f = encode_frame(&Message::Goodbye);
        assert_eq!(f, vec![1, 0, 0, 0, 14]);
        assert_eq!(Message::decode(&f[4..]), Ok(Message::Goodbye));
    }

    #[test]
    fn sync_point_query_and_answer_round_trip() {
        let q = Message::Query(Query::SyncPoint(Some(7)));
        assert_eq!(q.encode(), vec![11, 4, 1, 7]);
        assert_eq!(Message::decode(&q.encode()), Ok(q));
        let a = Message::Answer(Answer::SyncPoint(Some(SyncPoint {
            position: 7,
            chain: Hash([1; 32]),
            state_hash: Hash([2; 32]),
            root: None,
        })));
        assert_eq!(Message::decode(&a.encode()), Ok(a));
        // The earlier variants keep their encodings (appended, never renumbered).
        assert_eq!(Message::Query(Query::Status).encode(), vec![11, 3]);
    }

    #[test]
    fn certificate_query_and_answer_round_trip() {
        let q = Message::Query(Query::Certificate);
        assert_eq!(q.encode(), vec![11, 5]);
        assert_eq!(Message::decode(&q.encode()), Ok(q));
        assert_eq!(
            Message::Answer(Answer::Certificate(None)).encode(),
            vec![12, 5, 0]
        );
        let req = CertRequest {
            certificate: crate::certificate::Certificate {
                network: NetworkId(Hash([3; 32])),
                kind: crate::certificate::CertKind::Finality,
                anchor: crate::consensus::Checkpoint {
                    position: 9,
                    chain: Hash([4; 32]),
                },
                stake_root: Hash([5; 32]),
                ids: BoundedVec::new(),
                votes: BoundedVec::new(),
            },
            table: None,
        };
        let a = Message::Answer(Answer::Certificate(Some(Box::new(req.clone()))));
        let bytes = a.encode();
        assert_eq!(bytes[..3], [12, 5, 1], "tag, variant, Some");
        assert_eq!(
            bytes[3..],
            req.encode()[..],
            "then the CertRequest as §11 encodes it"
        );
        assert_eq!(Message::decode(&bytes), Ok(a));
        // A certificate that does not validate (votes out of order) does not decode.
        let vote = |k: u8| crate::certificate::Vote {
            peer: (0u8..=255)
                .find_map(|n| PublicKey::from_bytes(&crate::hash::hash_parts(&[&[k, n]]).0).ok())
                .unwrap(),
            timestamp: Timestamp(1),
            body_hash: Hash([0; 32]),
            proposal: 9,
            consensus: 9,
            finality: 9,
            signature: crate::primitives::Signature([0; 64]),
        };
        let mut bad = req;
        let (a1, a2) = (vote(1), vote(2));
        let (lo, hi) = if a1.peer < a2.peer {
            (a1, a2)
        } else {
            (a2, a1)
        };
        bad.certificate.votes = BoundedVec::try_from_vec(vec![hi, lo]).unwrap();
        let m = Message::Answer(Answer::Certificate(Some(Box::new(bad))));
        assert!(Message::decode(&m.encode()).is_err());
    }

    #[test]
    fn oversized_id_request_is_refused() {
        let m = Message::GetBlockIds {
            from: 0,
            count: 1025,
        };
        assert!(matches!(
            Message::decode(&m.encode()),
            Err(DecodeError::Invalid { .. })
        ));
    }
}
