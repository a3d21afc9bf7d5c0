//! Unit tests of the decision core and its group commit.

use cvx_protocol::consensus::{BlockHeader, Checkpoint};
use cvx_protocol::policy::{PolicyParams, Request};
use cvx_protocol::signer_wire::AuditHead;
use cvx_protocol::{NetworkId, Timestamp, hash};
use cvx_sandbox::Prefer;

use super::*;

fn setup(dir: &std::path::Path) -> Signer {
    let net = NetworkId(hash(b"unit"));
    let (state_path, audit_path) = (dir.join("state"), dir.join("audit.log"));
    let head: AuditHead = AuditLog::create(&audit_path, &net, Timestamp(1)).unwrap();
    StateFile::create(
        &state_path,
        StateRecord {
            network: net,
            locked: false,
            audit: head,
            watermark: Watermark::default(),
        },
    )
    .unwrap();
    let state = StateFile::open(&state_path, &net).unwrap();
    let (audit, _) = AuditLog::open_checked(&audit_path, &net, &state_path, 1, head).unwrap();
    let key = Locked::new_with(1, Prefer::Auto, |_| {
        Ok::<_, ()>(SigningKey::from_bytes(&[3; 32]))
    })
    .unwrap();
    let policy = Policy {
        key: crate::keys::public_key(&key),
        network: net,
        params: PolicyParams::default(),
    };
    Signer::new(policy, key, state, audit)
}

fn block_job(s: &Signer, t: u64) -> Job {
    Job {
        uid: 7,
        admin: false,
        msg: Incoming::Msg(ClientMessage::Sign(Request {
            network: s.policy.network,
            body: SignRequest::Block(BlockHeader {
                proposer: s.policy.key,
                timestamp: Timestamp(t),
                tx_count: 0,
                tx_hash: hash(&t.to_le_bytes()),
            }),
        })),
    }
}

#[test]
fn group_commit_one_write_per_batch_and_write_error_refuses_from_then_on() {
    let dir = std::env::temp_dir().join(format!("cvx-signer-unit-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let mut s = setup(&dir);
    let now = crate::now();
    // A batch of three newer blocks and one stale one: three signed, one refused,
    // ONE state commit (sequence 1 -> 2).
    let jobs = vec![
        block_job(&s, now.0 - 3),
        block_job(&s, now.0 - 2),
        block_job(&s, now.0 - 5),
        block_job(&s, now.0 - 1),
    ];
    let replies = s.decide_batch(&jobs, 1, now);
    let signed = replies
        .iter()
        .filter(|r| matches!(r, SignerMessage::Signed { .. }))
        .count();
    assert_eq!(signed, 3, "{replies:?}");
    assert!(matches!(
        replies[2],
        SignerMessage::Refused {
            code: RefuseCode::BlockNotNewer,
            ..
        }
    ));
    assert_eq!(s.state.current().sequence, 2);
    // A disk error: nothing is signed, and nothing is signed afterwards either.
    s.state.slots.fail_writes = true;
    let replies = s.decide_batch(&[block_job(&s, now.0)], 1, now);
    assert!(
        matches!(
            replies[0],
            SignerMessage::Refused {
                code: RefuseCode::StateUnavailable,
                ..
            }
        ),
        "{replies:?}"
    );
    s.state.slots.fail_writes = false;
    let replies = s.decide_batch(&[block_job(&s, now.0 + 1)], 1, now);
    assert!(
        matches!(
            replies[0],
            SignerMessage::Refused {
                code: RefuseCode::StateUnavailable,
                ..
            }
        ),
        "{replies:?}"
    );
    assert_eq!(s.state.current().sequence, 2, "no further commit");
    // Status still answers.
    let jobs = [Job {
        uid: 7,
        admin: false,
        msg: Incoming::Msg(ClientMessage::Status),
    }];
    assert!(matches!(
        s.decide_batch(&jobs, 1, now)[0],
        SignerMessage::Status(_)
    ));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn an_admin_slot_never_signs_but_locks() {
    let dir = std::env::temp_dir().join(format!("cvx-signer-admin-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let mut s = setup(&dir);
    let now = crate::now();
    let mut sign = block_job(&s, now.0 - 1);
    sign.admin = true;
    let lock = Job {
        uid: 0,
        admin: true,
        msg: Incoming::Msg(ClientMessage::Lock),
    };
    let replies = s.decide_batch(&[sign], 1, now);
    assert!(
        matches!(
            replies[0],
            SignerMessage::Refused {
                code: RefuseCode::Malformed,
                ..
            }
        ),
        "{replies:?}"
    );
    assert_eq!(s.watermark, Watermark::default(), "nothing signed");
    let replies = s.decide_batch(&[lock, block_job(&s, now.0)], 1, now);
    assert!(matches!(replies[0], SignerMessage::Locked), "{replies:?}");
    assert!(
        matches!(
            replies[1],
            SignerMessage::Refused {
                code: RefuseCode::Locked,
                ..
            }
        ),
        "a lock read first covers the client requests of its turn: {replies:?}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// A trusted table of four other keys (stake 100 each), a certificate signed by
/// `voters` of them for `(position, chain)`, as a Certify job.
fn certify_job(s: &Signer, voters: &[u8], position: u64) -> (Job, Checkpoint) {
    use cvx_protocol::certificate::{CertKind, Certificate, OrderHeader};
    let net = s.policy.network;
    let anchor = Checkpoint {
        position,
        chain: hash(&position.to_le_bytes()),
    };
    let root = trusted_table(0).table.root();
    let mut votes: Vec<_> = voters
        .iter()
        .map(|&i| {
            let sk = SigningKey::from_bytes(&[40 + i; 32]);
            let h = OrderHeader {
                peer: PublicKey::from_bytes(sk.verifying_key().as_bytes()).unwrap(),
                timestamp: Timestamp(1),
                body_hash: hash(&[i]),
                proposal: position,
                consensus: position,
                finality: position,
                consensus_chain: anchor.chain,
                stake_root: root,
            };
            let sig = Signature(sk.sign(h.sign_bytes(&net).as_bytes()).to_bytes());
            Certificate::vote_of(&h, sig)
        })
        .collect();
    votes.sort_by_key(|v| v.peer);
    let certificate = Certificate {
        network: net,
        kind: CertKind::Finality,
        anchor,
        stake_root: root,
        ids: cvx_protocol::BoundedVec::new(),
        votes: cvx_protocol::BoundedVec::try_from_vec(votes).unwrap(),
    };
    let job = Job {
        uid: 7,
        admin: false,
        msg: Incoming::Msg(ClientMessage::Certify(CertRequest {
            certificate,
            table: None,
        })),
    };
    (job, anchor)
}

fn trusted_table(confirmed_at: u64) -> TrustedTable {
    use cvx_protocol::certificate::{StakeEntry, StakeTable};
    let mut entries: Vec<StakeEntry> = (0..4u8)
        .map(|i| StakeEntry {
            key: PublicKey::from_bytes(
                SigningKey::from_bytes(&[40 + i; 32])
                    .verifying_key()
                    .as_bytes(),
            )
            .unwrap(),
            stake: 100,
        })
        .collect();
    entries.sort_by_key(|e| e.key);
    TrustedTable {
        position: 0,
        confirmed_at: Timestamp(confirmed_at),
        table: StakeTable {
            entries: cvx_protocol::BoundedVec::try_from_vec(entries).unwrap(),
        },
    }
}

fn refused_with(r: &SignerMessage) -> Option<RefuseCode> {
    match r {
        SignerMessage::Refused { code, .. } => Some(*code),
        _ => None,
    }
}

#[test]
fn a_certificate_moves_the_lock_durably_then_orders_extend_it() {
    use cvx_protocol::consensus::Order;
    let dir = std::env::temp_dir().join(format!("cvx-signer-cert-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let now = crate::now();
    let mut s = setup(&dir);
    // Without a trusted table: refused with its own code.
    let (job, _) = certify_job(&s, &[0, 1, 2], 500);
    assert_eq!(
        refused_with(&s.decide_batch(&[job], 1, now)[0]),
        Some(RefuseCode::CertTableUnproven)
    );
    let net = s.policy.network;
    let trust_path = dir.join("state.trust");
    let trust = TrustFile::open_or_create(&trust_path, &net, &trusted_table(now.0 - 10)).unwrap();
    s = s.with_trust(trust);
    // Two of four: refused, nothing changes.
    let (job, _) = certify_job(&s, &[0, 1], 500);
    assert_eq!(
        refused_with(&s.decide_batch(&[job], 1, now)[0]),
        Some(RefuseCode::CertWeakQuorum)
    );
    assert_eq!(s.watermark, Watermark::default());
    // Three of four, far ahead of a signer that never signed: accepted.
    let (job, anchor) = certify_job(&s, &[0, 1, 3], 500);
    let replies = s.decide_batch(&[job], 1, now);
    let SignerMessage::Certified { moved, watermark } = &replies[0] else {
        panic!("{replies:?}")
    };
    assert!(*moved);
    assert_eq!(watermark.consensus, Some(anchor));
    assert_eq!(watermark.finality, 500);
    // An order that does not extend the anchor is refused; one that does is signed.
    let order = |chain: Hash, t: u64| Order {
        peer: s.policy.key,
        timestamp: Timestamp(t),
        checkpoint: Checkpoint {
            position: 500,
            chain,
        },
        blocks: cvx_protocol::BoundedVec::try_from_vec(vec![hash(b"501")]).unwrap(),
        proposal: 501,
        consensus: 501,
        finality: 500,
        stake_root: Hash::ZERO,
    };
    let job = |o: Order| Job {
        uid: 7,
        admin: false,
        msg: Incoming::Msg(ClientMessage::Sign(Request {
            network: net,
            body: SignRequest::Order {
                order: o,
                bridge: cvx_protocol::BoundedVec::new(),
            },
        })),
    };
    let replies = s.decide_batch(
        &[
            job(order(hash(b"fork"), now.0 - 2)),
            job(order(anchor.chain, now.0 - 1)),
        ],
        1,
        now,
    );
    assert_eq!(refused_with(&replies[0]), Some(RefuseCode::PrefixConflict));
    assert!(
        matches!(replies[1], SignerMessage::Signed { .. }),
        "{replies:?}"
    );
    // Durable: reopen both files.
    drop(s);
    let state = StateFile::open(&dir.join("state"), &net).unwrap();
    assert_eq!(state.current().record.watermark.finality, 500);
    assert_eq!(
        state
            .current()
            .record
            .watermark
            .consensus
            .map(|c| c.position),
        Some(501)
    );
    let trust = TrustFile::open_or_create(&trust_path, &net, &trusted_table(0)).unwrap();
    assert_eq!(
        trust.trusted().confirmed_at,
        now,
        "the table was re-confirmed"
    );
    assert_eq!(trust.trusted().position, 500);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_trust_file_write_error_changes_nothing_and_refuses_from_then_on() {
    let dir = std::env::temp_dir().join(format!("cvx-signer-trustfail-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let now = crate::now();
    let s = setup(&dir);
    let net = s.policy.network;
    let trust =
        TrustFile::open_or_create(&dir.join("state.trust"), &net, &trusted_table(now.0)).unwrap();
    let mut s = s.with_trust(trust);
    if let Some(t) = s.trust.as_mut() {
        t.slots.fail_writes = true;
    }
    let (job, _) = certify_job(&s, &[0, 1, 2], 9);
    let replies = s.decide_batch(&[job, block_job(&s, now.0 - 1)], 1, now);
    assert_eq!(
        refused_with(&replies[0]),
        Some(RefuseCode::StateUnavailable)
    );
    assert_eq!(
        refused_with(&replies[1]),
        Some(RefuseCode::StateUnavailable)
    );
    assert_eq!(s.watermark, Watermark::default());
    assert_eq!(
        s.state.current().sequence,
        1,
        "the state was not written either"
    );
    let replies = s.decide_batch(&[block_job(&s, now.0)], 1, now);
    assert_eq!(
        refused_with(&replies[0]),
        Some(RefuseCode::StateUnavailable)
    );
    let _ = std::fs::remove_dir_all(&dir);
}
