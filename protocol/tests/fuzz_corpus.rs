//! The fuzz corpora replay as a test (STYLE.md rule 8): every file under
//! `protocol/fuzz/corpus/<target>/` runs through its target in `cvx_protocol::fuzz`, and so
//! does every prefix and a spread of one-bit flips of it. A target panics on a broken
//! contract, so this fails on any input libFuzzer (or anyone) ever saved there that
//! reproduces a bug.
//!
//! `CVX_BLESS=1` (re)writes the seed files, from the property-test strategies (a
//! deterministic proptest runner) and a few hand-made values; inputs that libFuzzer adds
//! are kept.
#![allow(clippy::unwrap_used, clippy::print_stdout)]

mod common;

use std::path::{Path, PathBuf};

use common::*;
use cvx_protocol::consensus::BlockHeader;
use cvx_protocol::fuzz::TARGETS;
use cvx_protocol::ledger::Genesis;
use cvx_protocol::policy::{RefuseCode, Request, SignRequest, Watermark};
use cvx_protocol::signer_wire::{
    self, AuditContinuation, AuditEvent, AuditHead, AuditRecord, ClientMessage, SignerMessage,
    Slot, StateRecord,
};
use cvx_protocol::txfile::TxFile;
use cvx_protocol::{Canonical, NetworkId, Timestamp, hash, keyfile};
use proptest::strategy::{Strategy, ValueTree};
use proptest::test_runner::TestRunner;

fn corpus_dir(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target)
}

/// `n` values of a strategy from a deterministic runner.
fn sample<S: Strategy>(s: &S, n: usize) -> Vec<S::Value> {
    let mut runner = TestRunner::deterministic();
    (0..n)
        .map(|_| s.new_tree(&mut runner).unwrap().current())
        .collect()
}

fn policy_input(wm: &Watermark, req: &Request, now: u64) -> Vec<u8> {
    let w = wm.encode();
    let mut out = u16::try_from(w.len()).unwrap().to_le_bytes().to_vec();
    out.extend_from_slice(&w);
    out.extend_from_slice(&req.encode());
    out.extend_from_slice(&now.to_le_bytes());
    out
}

/// A trusted table of keys 0..4 (stakes 100..400), and finality / lock certificates
/// over it (allowed from an empty watermark), plus one naming a changed table.
fn certificate_seeds() -> Vec<Vec<u8>> {
    use cvx_protocol::certificate::{
        CertKind, CertRequest, Certificate, OrderHeader, StakeEntry, StakeTable, TrustedTable,
    };
    use cvx_protocol::consensus::Checkpoint;
    use cvx_protocol::hash::chain_over;
    use cvx_protocol::{BoundedVec, Hash, Signable};
    let net = NetworkId(hash(b"fuzz certificates"));
    let mk_table = |n: u8| {
        let mut e: Vec<StakeEntry> = (0..n)
            .map(|i| StakeEntry {
                key: public(i),
                stake: 100 * (u64::from(i) + 1),
            })
            .collect();
        e.sort_by_key(|x| x.key);
        StakeTable {
            entries: BoundedVec::try_from_vec(e).unwrap(),
        }
    };
    let (table, changed) = (mk_table(4), mk_table(5));
    let trusted = TrustedTable {
        position: 0,
        confirmed_at: Timestamp(1_000),
        table: table.clone(),
    };
    let ids = vec![hash(b"b0"), hash(b"b1")];
    let anchor = Checkpoint {
        position: 7,
        chain: hash(b"chain at 7"),
    };
    let cert = |kind: CertKind, root: Hash, voters: &[u8]| {
        let mut votes: Vec<_> = voters
            .iter()
            .map(|&i| {
                let h = OrderHeader {
                    peer: public(i),
                    timestamp: Timestamp(900),
                    body_hash: hash(&[i]),
                    proposal: 9,
                    consensus: 8 + u64::from(i % 2),
                    finality: 7,
                    consensus_chain: chain_over(&anchor.chain, &ids[..1 + usize::from(i % 2)]),
                    stake_root: root,
                };
                let sig = sign(&signing_key(i), &h.sign_bytes(&net));
                Certificate::vote_of(&h, sig)
            })
            .collect();
        votes.sort_by_key(|v| v.peer);
        Certificate {
            network: net,
            kind,
            anchor,
            stake_root: root,
            ids: BoundedVec::try_from_vec(ids.clone()).unwrap(),
            votes: BoundedVec::try_from_vec(votes).unwrap(),
        }
    };
    let input = |wm: &Watermark, req: &CertRequest| {
        let t = trusted.encode();
        let w = wm.encode();
        let mut out = u16::try_from(t.len()).unwrap().to_le_bytes().to_vec();
        out.extend_from_slice(&t);
        out.extend_from_slice(&u16::try_from(w.len()).unwrap().to_le_bytes());
        out.extend_from_slice(&w);
        out.extend_from_slice(&req.encode());
        out.extend_from_slice(&2_000u64.to_le_bytes());
        out
    };
    let locked = Watermark {
        consensus: Some(Checkpoint {
            position: 3,
            chain: hash(b"a lock"),
        }),
        finality: 2,
        ..Watermark::default()
    };
    vec![
        input(
            &Watermark::default(),
            &CertRequest {
                certificate: cert(CertKind::Finality, table.root(), &[1, 2, 3]),
                table: None,
            },
        ),
        input(
            &locked,
            &CertRequest {
                certificate: cert(CertKind::Lock, table.root(), &[0, 2, 3]),
                table: None,
            },
        ),
        input(
            &locked,
            &CertRequest {
                certificate: cert(CertKind::Finality, changed.root(), &[1, 2, 3, 4]),
                table: Some(changed.clone()),
            },
        ),
    ]
}

fn audit_log_seeds() -> Vec<Vec<u8>> {
    let net = NetworkId(hash(b"fuzz seed"));
    let mut log = signer_wire::audit_header(&net).to_vec();
    let mut prev = signer_wire::audit_genesis(&net);
    let events = [
        AuditEvent::Init,
        AuditEvent::Start {
            public_key: public(1),
        },
        AuditEvent::Signed {
            uid: 998,
            kind: 1,
            value: hash(b"block"),
            repeat: false,
        },
        AuditEvent::Refused {
            uid: 998,
            kind: 2,
            value: hash(b"order"),
            code: RefuseCode::PrefixConflict,
        },
        AuditEvent::Lock { uid: 0 },
        AuditEvent::Unlock { uid: 0 },
        AuditEvent::Gap {
            log_sequence: 3,
            state_sequence: 5,
        },
    ];
    for (i, event) in events.into_iter().enumerate() {
        let rec = AuditRecord {
            index: i as u64,
            prev,
            time: Timestamp(1_700_000_000_000 + i as u64),
            state_sequence: 1 + i as u64,
            event,
        };
        let (bytes, h) = signer_wire::encode_audit_record(&rec);
        log.extend_from_slice(&bytes);
        prev = h;
    }
    let from = AuditContinuation {
        records: 7,
        head: prev,
        last_sequence: 7,
    };
    let mut continued = signer_wire::audit_continued_header(&net, &from).to_vec();
    let rec = AuditRecord {
        index: 7,
        prev,
        time: Timestamp(1_700_000_000_100),
        state_sequence: 8,
        event: AuditEvent::Start {
            public_key: public(1),
        },
    };
    continued.extend_from_slice(&signer_wire::encode_audit_record(&rec).0);
    vec![log, continued]
}

/// The seed inputs of each target.
fn seeds(target: &str) -> Vec<Vec<u8>> {
    match target {
        "signer_request" => {
            let mut v: Vec<Vec<u8>> = sample(&request_s(), 6)
                .into_iter()
                .map(|r| ClientMessage::Sign(r).encode())
                .collect();
            for m in [
                ClientMessage::Hello { version: 1 },
                ClientMessage::PublicKey,
                ClientMessage::Status,
                ClientMessage::Lock,
            ] {
                v.push(m.encode());
            }
            v
        }
        "signer_reply" => vec![
            SignerMessage::Hello {
                version: 1,
                network: NetworkId(hash(b"n")),
                public_key: public(2),
            }
            .encode(),
            SignerMessage::PublicKey(public(3)).encode(),
            SignerMessage::Signed {
                signature: sample(&sig_s(), 1).remove(0),
                repeat: true,
            }
            .encode(),
            SignerMessage::refused(RefuseCode::BlockNotNewer, "block 5 is not newer than 7")
                .encode(),
            SignerMessage::Locked.encode(),
        ],
        "peer_message" => sample(&message_s(), 10)
            .iter()
            .map(Canonical::encode)
            .collect(),
        "tx_file" => sample(&stx_s(), 5)
            .into_iter()
            .map(|s| TxFile::new(NetworkId(hash(b"net")), s).encode())
            .collect(),
        "genesis" => sample(&genesis_s(), 4)
            .iter()
            .map(Genesis::encode)
            .collect(),
        "state_file" => sample(&watermark_s(), 3)
            .into_iter()
            .enumerate()
            .map(|(i, watermark)| {
                let slot = |sequence| Slot {
                    sequence,
                    record: StateRecord {
                        network: NetworkId(hash(b"net")),
                        locked: i == 1,
                        audit: AuditHead {
                            records: sequence,
                            hash: hash(&sequence.to_le_bytes()),
                        },
                        watermark: watermark.clone(),
                    },
                };
                let mut file = signer_wire::encode_slot(&slot(2 * i as u64 + 1));
                file.extend_from_slice(&signer_wire::encode_slot(&slot(2 * i as u64 + 2)));
                file
            })
            .collect(),
        "audit_log" => audit_log_seeds(),
        "key_plaintext" => (0u8..3)
            .map(|i| {
                let sk = signing_key(i);
                let mut buf = vec![0u8; keyfile::LEN];
                buf[keyfile::SEED].copy_from_slice(sk.as_bytes());
                keyfile::frame(&mut buf, &public(i)).unwrap();
                buf
            })
            .collect(),
        "policy" => {
            // An allowed first block and a first order (from an empty watermark), then
            // random watermark/request pairs.
            let net = NetworkId(hash(b"net"));
            let header = BlockHeader {
                proposer: public(4),
                timestamp: Timestamp(1_000),
                tx_count: 1,
                tx_hash: hash(b"txs"),
            };
            let mut v = vec![policy_input(
                &Watermark::default(),
                &Request {
                    network: net,
                    body: SignRequest::Block(header),
                },
                2_000,
            )];
            for (wm, req) in sample(&watermark_s(), 6)
                .into_iter()
                .zip(sample(&request_s(), 6))
            {
                v.push(policy_input(&Watermark::default(), &req, 1 << 62));
                v.push(policy_input(&wm, &req, 1 << 62));
            }
            v
        }
        "certificate" => certificate_seeds(),
        other => panic!("no seeds for target {other}"),
    }
}

fn run_all(run: fn(&[u8]), input: &[u8]) {
    run(input);
    for n in 0..input.len().min(512) {
        run(&input[..n]);
    }
    let step = (input.len() * 8 / 64).max(1);
    for bit in (0..input.len() * 8).step_by(step) {
        let mut flipped = input.to_vec();
        flipped[bit / 8] ^= 1 << (bit % 8);
        run(&flipped);
    }
}

#[test]
fn fuzz_corpora_replay_without_a_contract_violation() {
    let bless = std::env::var_os("CVX_BLESS").is_some();
    let mut total = 0;
    for t in TARGETS {
        let dir = corpus_dir(t.name);
        if bless {
            std::fs::create_dir_all(&dir).unwrap();
            for s in seeds(t.name) {
                let name = hex::encode(&hash(&s).0[..8]);
                std::fs::write(dir.join(format!("seed-{name}")), &s).unwrap();
            }
        }
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e} (CVX_BLESS=1 writes the seeds)", dir.display()))
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        assert!(
            files.len() >= 2,
            "{}: only {} inputs; CVX_BLESS=1 writes the seeds",
            dir.display(),
            files.len()
        );
        for f in &files {
            run_all(t.run, &std::fs::read(f).unwrap());
        }
        println!("{}: {} inputs ({})", t.name, files.len(), t.input);
        total += files.len();
    }
    // No corpus without a target (a renamed target would otherwise leave its inputs unrun).
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus");
    for e in std::fs::read_dir(&root).unwrap() {
        let name = e.unwrap().file_name().into_string().unwrap();
        assert!(
            TARGETS.iter().any(|t| t.name == name),
            "fuzz/corpus/{name} has no target in cvx_protocol::fuzz::TARGETS"
        );
    }
    println!("{total} corpus inputs replayed, each with its prefixes and bit flips");
}

#[test]
fn the_seeds_reach_past_decoding() {
    // A seed that does not decode only tests the decoder's refusal: check that each
    // target's hand-built seeds are real values (the policy's first seed is allowed).
    for t in [
        "signer_request",
        "signer_reply",
        "peer_message",
        "tx_file",
        "genesis",
    ] {
        for s in seeds(t) {
            let ok = match t {
                "signer_request" => ClientMessage::decode(&s).is_ok(),
                "signer_reply" => SignerMessage::decode(&s).is_ok(),
                "peer_message" => cvx_protocol::peer_wire::Message::decode(&s).is_ok(),
                "tx_file" => TxFile::decode(&s).is_ok(),
                _ => Genesis::decode(&s).is_ok(),
            };
            assert!(ok, "{t}: a seed does not decode");
        }
    }
    assert!(signer_wire::current_slot(&seeds("state_file")[0]).is_ok());
    for log in seeds("audit_log") {
        assert!(signer_wire::verify_audit(&log).unwrap().torn_tail == 0);
    }
    for s in seeds("certificate") {
        let (t, rest) = s[2..].split_at(usize::from(u16::from_le_bytes([s[0], s[1]])));
        let (w, rest) = rest[2..].split_at(usize::from(u16::from_le_bytes([rest[0], rest[1]])));
        let req = cvx_protocol::certificate::CertRequest::decode(&rest[..rest.len() - 8]).unwrap();
        let d = cvx_protocol::certificate::decide_certificate(
            &req.certificate.network,
            &Watermark::decode(w).unwrap(),
            &cvx_protocol::certificate::TrustedTable::decode(t).unwrap(),
            &req,
            Timestamp(2_000),
            cvx_protocol::certificate::DEFAULT_TRUST_PERIOD_MS,
        );
        assert!(
            d.refusal().is_none(),
            "a certificate seed is refused: {d:?}"
        );
    }
    let p = &seeds("policy")[0];
    let (wm, rest) = p[2..].split_at(usize::from(u16::from_le_bytes([p[0], p[1]])));
    let req = Request::decode(&rest[..rest.len() - 8]).unwrap();
    let SignRequest::Block(h) = &req.body else {
        panic!("the first policy seed is a block")
    };
    let policy = cvx_protocol::policy::Policy {
        key: h.proposer,
        network: req.network,
        params: cvx_protocol::policy::PolicyParams::default(),
    };
    assert!(
        policy
            .decide(&Watermark::decode(wm).unwrap(), &req, Timestamp(2_000))
            .refusal()
            .is_none()
    );
}
