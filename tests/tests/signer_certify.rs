//! The real `cvx-signer` and certificates (docs/consensus.md §7, issue 14): a signer
//! whose state predates certificates gets its trusted table from the genesis file on the
//! first start with `genesis_file` (the upgrade path), accepts a finality certificate far
//! beyond its watermark (no bridge of ids), keeps the moved lock and the trusted table
//! across a restart, and refuses certificates without a quorum or from unknown keys.
#![allow(clippy::unwrap_used, clippy::print_stdout)]

mod signer_common;

use cvx_protocol::certificate::{CertKind, CertRequest, Certificate, OrderHeader};
use cvx_protocol::consensus::{Checkpoint, Order};
use cvx_protocol::ledger::{Genesis, GenesisAccount, GenesisPeer, Params};
use cvx_protocol::policy::{RefuseCode, Request, SignRequest};
use cvx_protocol::primitives::Name;
use cvx_protocol::signer_wire::{ClientMessage, SignerMessage};
use cvx_protocol::{
    Address, Amount, BoundedVec, Canonical, Hash, NetworkId, PublicKey, Signable, Signature,
    Timestamp, hash,
};
use ed25519_dalek::{Signer as _, SigningKey};
use signer_common::{Env, now_ms};

fn peer_key(i: u8) -> SigningKey {
    SigningKey::from_bytes(&[40 + i; 32])
}

fn public(sk: &SigningKey) -> PublicKey {
    PublicKey::from_bytes(sk.verifying_key().as_bytes()).unwrap()
}

/// A genesis with four peers of equal stake (the signer under test is not one of them:
/// it only checks their votes).
fn genesis() -> Genesis {
    let mut peers: Vec<GenesisPeer> = (0..4)
        .map(|i| GenesisPeer {
            key: public(&peer_key(i)),
            controller: Address(0),
            stake: Amount::new(1_000).unwrap(),
            host: None,
        })
        .collect();
    peers.sort_by_key(|p| p.key);
    Genesis {
        network_name: Name::new("cvx-certify").unwrap(),
        time: Timestamp(1_767_225_600_000),
        accounts: BoundedVec::try_from_vec(vec![GenesisAccount {
            key: public(&peer_key(9)),
            balance: Amount::new(100_000).unwrap(),
        }])
        .unwrap(),
        peers: BoundedVec::try_from_vec(peers).unwrap(),
        params: Params {
            min_stake: Amount::new(100).unwrap(),
            fee: Amount::new(1).unwrap(),
            max_block_txs: 1024,
            min_block_time_ms: 50,
            max_block_backdate_ms: 60_000,
            max_future_ms: 30_000,
            proposal_hold_ms: 100,
            decay_grace_ms: 300_000,
            decay_time_ms: 300_000,
            decay_floor_ppm: 1000,
        },
    }
}

fn genesis_stake_root(g: &Genesis) -> Hash {
    let records: Vec<cvx_protocol::ledger::PeerRecord> = g
        .peers
        .iter()
        .map(|p| cvx_protocol::ledger::PeerRecord {
            key: p.key,
            controller: p.controller,
            stake: p.stake,
            host: None,
            last_block_time: g.time,
        })
        .collect();
    cvx_protocol::certificate::StakeTable::from_peers(&records, g.params.min_stake).root()
}

fn certify(
    net: NetworkId,
    root: Hash,
    voters: &[u8],
    position: u64,
) -> (ClientMessage, Checkpoint) {
    let anchor = Checkpoint {
        position,
        chain: hash(&position.to_le_bytes()),
    };
    let mut votes: Vec<_> = voters
        .iter()
        .map(|&i| {
            let sk = peer_key(i);
            let h = OrderHeader {
                peer: public(&sk),
                timestamp: Timestamp(now_ms() - 100),
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
    let msg = ClientMessage::Certify(CertRequest {
        certificate: Certificate {
            network: net,
            kind: CertKind::Finality,
            anchor,
            stake_root: root,
            ids: BoundedVec::new(),
            votes: BoundedVec::try_from_vec(votes).unwrap(),
        },
        table: None,
    });
    (msg, anchor)
}

fn order(env: &Env, checkpoint: Checkpoint, t: u64) -> ClientMessage {
    let p = checkpoint.position;
    ClientMessage::Sign(Request {
        network: env.network,
        body: SignRequest::Order {
            order: Order {
                peer: env.public_key,
                timestamp: Timestamp(t),
                checkpoint,
                blocks: BoundedVec::try_from_vec(vec![hash(&t.to_le_bytes())]).unwrap(),
                proposal: p + 1,
                consensus: p + 1,
                finality: p,
                stake_root: Hash::ZERO,
            },
            bridge: BoundedVec::new(),
        },
    })
}

fn refused(m: &SignerMessage) -> Option<RefuseCode> {
    match m {
        SignerMessage::Refused { code, .. } => Some(*code),
        _ => None,
    }
}

#[test]
fn a_signer_catches_up_on_a_certificate_any_distance_ahead_and_keeps_it_across_restarts() {
    let g = genesis();
    let net = g.network_id();
    let root = genesis_stake_root(&g);
    let uid = [nix::unistd::geteuid().as_raw()];
    // Today's signer: no genesis_file, so no certificates; it locks position 3.
    let env = Env::new("certify", net, &uid, "", true);
    let genesis_path = env.dir.join("genesis.bin");
    std::fs::write(&genesis_path, g.encode()).unwrap();
    let mut run = env.spawn();
    let mut c = run.client();
    let (cert, anchor) = certify(net, root, &[0, 1, 2], 1_000_000);
    assert_eq!(
        refused(&c.call(&cert).unwrap()),
        Some(RefuseCode::CertTableUnproven)
    );
    let lock = Checkpoint {
        position: 3,
        chain: hash(b"an old lock"),
    };
    let t = now_ms();
    assert!(matches!(
        c.call(&order(&env, lock, t - 50)).unwrap(),
        SignerMessage::Signed { .. }
    ));
    run.stop();
    assert!(!env.dir.join("state.trust").exists());

    // The upgrade: genesis_file set; the trust file is created from the genesis table.
    env.write_config(
        &uid,
        &format!("genesis_file = \"{}\"", genesis_path.display()),
    );
    let mut run = env.spawn();
    let mut c = run.client();
    assert!(env.dir.join("state.trust").exists(), "{}", run.log_text());
    // Two of four, or a key outside the table: refused; nothing moves.
    let (weak, _) = certify(net, root, &[0, 1], 1_000_000);
    assert_eq!(
        refused(&c.call(&weak).unwrap()),
        Some(RefuseCode::CertWeakQuorum)
    );
    let (outsider, _) = certify(net, root, &[0, 1, 2, 7], 1_000_000);
    assert_eq!(
        refused(&c.call(&outsider).unwrap()),
        Some(RefuseCode::CertUnknownSigner)
    );
    // Three of four, a million positions ahead: accepted without any bridge.
    match c.call(&cert).unwrap() {
        SignerMessage::Certified { moved, watermark } => {
            assert!(moved);
            assert_eq!(watermark.consensus, Some(anchor));
            assert_eq!(watermark.finality, 1_000_000);
        }
        other => panic!("{other:?}: {}", run.log_text()),
    }
    assert!(matches!(
        c.call(&order(&env, anchor, t - 20)).unwrap(),
        SignerMessage::Signed { .. }
    ));
    run.stop();

    // Restart: the lock and the table survive; the old prefix is refused, the new one
    // extends.
    let mut run = env.spawn();
    let mut c = run.client();
    assert_eq!(
        refused(&c.call(&order(&env, lock, t - 10)).unwrap()),
        Some(RefuseCode::FinalityRegressed)
    );
    let fork = Checkpoint {
        position: 1_000_000,
        chain: hash(b"another chain"),
    };
    assert_eq!(
        refused(&c.call(&order(&env, fork, t - 9)).unwrap()),
        Some(RefuseCode::PrefixConflict)
    );
    // The same certificate again: below the lock now (the order moved it to 1,000,001).
    // It cannot move the lock; being valid for the trusted table, it re-confirms the
    // table (the running peer's hourly refresh) and changes nothing else.
    let before = match c.call(&ClientMessage::Status).unwrap() {
        SignerMessage::Status(st) => st.watermark,
        other => panic!("{other:?}"),
    };
    match c.call(&cert).unwrap() {
        SignerMessage::Certified { moved, watermark } => {
            assert!(!moved, "a certificate below the lock never moves it");
            assert_eq!(watermark, before);
        }
        other => panic!("expected a re-confirmation, got {other:?}"),
    }
    match c.call(&ClientMessage::Status).unwrap() {
        SignerMessage::Status(st) => {
            assert_eq!(st.watermark, before);
            assert_eq!(st.watermark.finality, 1_000_000);
        }
        other => panic!("{other:?}"),
    }
    run.stop();
}
