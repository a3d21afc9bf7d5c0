//! Unit tests of stake tables proven against a state root and of certificate assembly.

use super::*;
use crate::consensus::Checkpoint;
use crate::hash::{Hash, chain_over, hash};
use crate::ledger::PeerRecord;
use crate::primitives::{Address, Amount, NetworkId, PublicKey, Signature, Timestamp};
use crate::sign::Signable;
use crate::state_root::{StateRootParts, peers_root};
use ed25519_dalek::{Signer, SigningKey};

fn key(i: u8) -> (SigningKey, PublicKey) {
    let sk = SigningKey::from_bytes(&[i + 1; 32]);
    let pk = PublicKey::from_bytes(sk.verifying_key().as_bytes()).expect("valid");
    (sk, pk)
}

fn record(i: u8, stake: u64) -> PeerRecord {
    PeerRecord {
        key: key(i).1,
        controller: Address(u64::from(i)),
        stake: Amount::new(stake).expect("small"),
        host: None,
        last_block_time: Timestamp(u64::from(i) * 7),
    }
}

#[test]
fn the_stake_table_is_proven_against_a_state_root_and_ignores_what_does_not_vote() {
    let mut peers = vec![record(0, 500), record(1, 50), record(2, 300)];
    peers.sort_by_key(|p| p.key);
    let parts = StateRootParts {
        height: 9,
        time: Timestamp(99),
        account_count: 4,
        accounts_root: hash(b"accounts"),
        peers_root: peers_root(&peers),
    };
    let root = parts.root();
    let min = Amount::new(100).expect("small");
    let t = StakeTable::proven(&parts, &peers, &root, min).expect("proven");
    assert_eq!(t.entries.len(), 2, "the peer below min_stake does not vote");
    assert_eq!(t.total(), 800);
    // A table that is not the state's is not proven.
    let mut forged = peers.clone();
    forged[0].stake = Amount::new(10_000).expect("small");
    assert!(StakeTable::proven(&parts, &forged, &root, min).is_none());
    // last_block_time changes the peers root but not the stake root.
    let mut later = peers.clone();
    later[1].last_block_time = Timestamp(1_000);
    assert_ne!(peers_root(&later), peers_root(&peers));
    assert_eq!(StakeTable::from_peers(&later, min).root(), t.root());
}

#[test]
fn assemble_builds_a_verifiable_certificate_only_from_a_quorum() {
    let net = NetworkId(hash(b"assemble"));
    let peers: Vec<PeerRecord> = (0..4).map(|i| record(i, 100)).collect();
    let table = StakeTable::from_peers(&peers, Amount::new(1).expect("small"));
    let anchor = Checkpoint {
        position: 40,
        chain: hash(b"c40"),
    };
    let ids = [hash(b"40"), hash(b"41")];
    let header = |i: u8, consensus: u64, chain: Hash, root: Hash| {
        let (sk, pk) = key(i);
        let h = OrderHeader {
            peer: pk,
            timestamp: Timestamp(10 + u64::from(i)),
            body_hash: hash(&[i]),
            proposal: consensus,
            consensus,
            finality: 40,
            consensus_chain: chain,
            stake_root: root,
        };
        let sig = Signature(sk.sign(h.sign_bytes(&net).as_bytes()).to_bytes());
        (h, sig)
    };
    let on = |c: u64| {
        chain_over(
            &anchor.chain,
            &ids[..usize::try_from(c - 40).expect("small")],
        )
    };
    let root = table.root();
    let good: Vec<_> = vec![
        header(0, 41, on(41), root),
        header(1, 42, on(42), root),
        header(2, 40, on(40), root),
    ];
    let cert = Certificate::assemble(net, CertKind::Finality, anchor, &ids, &table, &good)
        .expect("3 of 4");
    let trusted = TrustedTable {
        position: 0,
        confirmed_at: Timestamp(0),
        table: table.clone(),
    };
    let req = CertRequest {
        certificate: cert,
        table: None,
    };
    assert!(
        verify_certificate(&net, &trusted, &req, Timestamp(1), DEFAULT_TRUST_PERIOD_MS).is_ok()
    );
    // Off the ids, another table's root, an outsider, a bad signature: left out, so
    // no quorum.
    let mut bad = good[..2].to_vec();
    bad.push(header(2, 41, hash(b"elsewhere"), root));
    bad.push(header(3, 41, on(41), hash(b"other root")));
    bad.push(header(9, 41, on(41), root));
    let mut forged = header(2, 40, on(40), root);
    forged.1.0[0] ^= 1;
    bad.push(forged);
    assert!(Certificate::assemble(net, CertKind::Finality, anchor, &ids, &table, &bad).is_none());
}
