//! Unit tests of the signer's formats: frames, state-file slots, the audit chain.

use super::*;
use crate::consensus::ChallengeResponse;
use crate::encoding::Canonical;
use crate::hash::{Hash, hash};
use crate::policy::{RefuseCode, Request, SignRequest, Watermark};
use crate::primitives::{NetworkId, PublicKey, Timestamp, Token};

fn net() -> NetworkId {
    NetworkId(hash(b"test network"))
}

fn key() -> PublicKey {
    let sk = ed25519_dalek::SigningKey::from_bytes(&[7; 32]);
    PublicKey::from_bytes(&sk.verifying_key().to_bytes()).unwrap()
}

#[test]
fn frames_round_trip_and_cap() {
    let msg = ClientMessage::Sign(Request {
        network: net(),
        body: SignRequest::ChallengeResponse(ChallengeResponse {
            challenger: key(),
            responder: key(),
            token: Token([1; 32]),
        }),
    });
    let f = encode_frame(&msg);
    let n = frame_len([f[0], f[1], f[2], f[3]]).unwrap();
    assert_eq!(n, f.len() - 4);
    assert_eq!(ClientMessage::decode(&f[4..]).unwrap(), msg);
    assert_eq!(frame_len([0, 0, 0, 0]), Err(FrameError::Empty));
    assert_eq!(
        frame_len((65_537u32).to_le_bytes()),
        Err(FrameError::TooLong(65_537))
    );
    assert_eq!(frame_len((65_536u32).to_le_bytes()), Ok(65_536));
    let r = SignerMessage::refused(RefuseCode::Locked, "naïve\nline");
    let SignerMessage::Refused { detail, .. } = &r else {
        panic!()
    };
    assert_eq!(detail.as_str(), "na?ve?line");
    let long = SignerMessage::refused(RefuseCode::Locked, &"x".repeat(2000));
    assert!(long.encode().len() <= SignerMessage::MAX_LEN);
}

#[test]
fn frame_bytes_match_docs_signer_md() {
    assert_eq!(encode_frame(&ClientMessage::Status), [1, 0, 0, 0, 3]);
    assert_eq!(encode_frame(&ClientMessage::Lock), [1, 0, 0, 0, 4]);
    assert_eq!(
        encode_frame(&ClientMessage::Hello { version: 1 }),
        [2, 0, 0, 0, 0, 1]
    );
}

fn slot(seq: u64) -> Slot {
    Slot {
        sequence: seq,
        record: StateRecord {
            network: net(),
            locked: seq.is_multiple_of(2),
            audit: AuditHead {
                records: seq,
                hash: hash(b"h"),
            },
            watermark: Watermark::default(),
        },
    }
}

#[test]
fn slots_pick_newest_valid() {
    let a = encode_slot(&slot(4));
    let b = encode_slot(&slot(5));
    assert_eq!(a.len(), SLOT_LEN);
    assert_eq!(decode_slot(&a).unwrap(), slot(4));
    let mut file = [a.clone(), b.clone()].concat();
    assert_eq!(current_slot(&file).unwrap().0.sequence, 5);
    file[SLOT_LEN + 30] ^= 1;
    let (s, i, err) = current_slot(&file).unwrap();
    assert_eq!((s.sequence, i, err), (4, 0, Some(SlotError::Checksum)));
    file[30] ^= 1;
    assert!(matches!(
        current_slot(&file),
        Err(StateFileError::NoValidSlot { .. })
    ));
    assert_eq!(current_slot(&file[..100]), Err(StateFileError::Length(100)));
    assert_eq!(decode_slot(&[0; SLOT_LEN]), Err(SlotError::Empty));
}

/// Append records `from..to` (state sequence = index / 2) to `log`, chaining on
/// `prev`; returns the new head.
fn append_records(log: &mut Vec<u8>, mut prev: Hash, from: u64, to: u64) -> Hash {
    for i in from..to {
        let rec = AuditRecord {
            index: i,
            prev,
            time: Timestamp(i),
            state_sequence: i / 2,
            event: AuditEvent::Lock { uid: 7 },
        };
        let (bytes, h) = encode_audit_record(&rec);
        log.extend_from_slice(&bytes);
        prev = h;
    }
    prev
}

#[test]
fn a_continued_log_carries_the_chain_across_files() {
    let mut first = audit_header(&net()).to_vec();
    let head = append_records(&mut first, audit_genesis(&net()), 0, 7);
    let a = verify_audit(&first).unwrap();
    assert_eq!(
        (a.first_index(), a.record_count(), a.last_sequence()),
        (0, 7, 3)
    );
    let from = AuditContinuation {
        records: a.record_count(),
        head: a.head,
        last_sequence: a.last_sequence(),
    };
    let mut second = audit_continued_header(&net(), &from).to_vec();
    assert_eq!(second.len(), AUDIT_CONTINUED_HEADER_LEN);
    // Empty continued log: its head and sequence are the carried ones.
    let empty = verify_audit(&second).unwrap();
    assert_eq!(
        (empty.record_count(), empty.head, empty.last_sequence()),
        (7, head, 3)
    );
    assert_eq!(empty.head_at(7), Some(head));
    let end = append_records(&mut second, head, 7, 10);
    let b = verify_audit(&second).unwrap();
    assert_eq!(b.continues, Some(from));
    assert_eq!((b.first_index(), b.record_count(), b.head), (7, 10, end));
    assert_eq!(b.head_at(7), Some(head));
    assert_eq!(b.head_at(10), Some(end));
    assert_eq!(
        b.head_at(6),
        None,
        "records of the archived file are not in this one"
    );
    assert_eq!(b.head_at(11), None);
    check_continuation(&a, &b).unwrap();
    // Wrong order, a first log in second place, or a gap: refused.
    assert!(matches!(
        check_continuation(&b, &a),
        Err(AuditError::Link { .. })
    ));
    let mut gap =
        audit_continued_header(&net(), &AuditContinuation { records: 8, ..from }).to_vec();
    append_records(&mut gap, head, 8, 9);
    let g = verify_audit(&gap).unwrap();
    assert!(matches!(
        check_continuation(&a, &g),
        Err(AuditError::Link { .. })
    ));
    // A record whose index does not follow the carried count breaks the chain.
    let mut skew = audit_continued_header(&net(), &from).to_vec();
    append_records(&mut skew, head, 8, 9);
    assert!(matches!(verify_audit(&skew), Err(AuditError::Chain { .. })));
    // A continued header cut short, or an unknown version, is not a log.
    assert_eq!(
        verify_audit(&second[..AUDIT_HEADER_LEN + 10]),
        Err(AuditError::Header)
    );
    let mut v3 = second.clone();
    v3[8] = 3;
    assert_eq!(verify_audit(&v3), Err(AuditError::Header));
}

#[test]
fn audit_chain_detects_edits_and_torn_tail() {
    let mut log = audit_header(&net()).to_vec();
    let mut prev = audit_genesis(&net());
    for i in 0..5u64 {
        let rec = AuditRecord {
            index: i,
            prev,
            time: Timestamp(i),
            state_sequence: i / 2,
            event: AuditEvent::Refused {
                uid: 1,
                kind: 2,
                value: hash(&i.to_le_bytes()),
                code: RefuseCode::PrefixConflict,
            },
        };
        let (bytes, h) = encode_audit_record(&rec);
        assert!(bytes.len() - 4 <= AuditRecord::MAX_LEN);
        log.extend_from_slice(&bytes);
        prev = h;
    }
    let s = verify_audit(&log).unwrap();
    assert_eq!(
        (s.records.len(), s.head, s.torn_tail, s.last_sequence()),
        (5, prev, 0, 2)
    );
    assert_eq!(s.head_at(5), Some(prev));
    assert_eq!(s.head_at(0), Some(audit_genesis(&net())));
    // A torn final append is reported, not an error.
    let torn = &log[..log.len() - 3];
    let t = verify_audit(torn).unwrap();
    assert_eq!(t.records.len(), 4);
    assert!(t.torn_tail > 0);
    // Flipping any byte of a record breaks verification.
    for at in [AUDIT_HEADER_LEN + 4, AUDIT_HEADER_LEN + 20, log.len() - 40] {
        let mut bad = log.clone();
        bad[at] ^= 0x40;
        assert!(
            verify_audit(&bad).is_err() || verify_audit(&bad).unwrap().records.len() < 5,
            "flip at {at}"
        );
    }
    // Removing a record in the middle breaks the chain.
    let first_len = 4 + usize::try_from(u32::from_le_bytes(
        log[AUDIT_HEADER_LEN..AUDIT_HEADER_LEN + 4]
            .try_into()
            .unwrap(),
    ))
    .unwrap();
    let mut cut = log[..AUDIT_HEADER_LEN].to_vec();
    cut.extend_from_slice(&log[AUDIT_HEADER_LEN + first_len..]);
    assert!(matches!(verify_audit(&cut), Err(AuditError::Chain { .. })));
}
