//! Property tests of the certificate policy (docs/consensus.md §7, issue 14): what it
//! refuses (at most 2/3 of stake, keys outside the table, stale or unproven tables,
//! another network, expired trust), catch-up at any distance, and the safety of lock
//! release over random fork trees and certificate sets with less than 1/3 byzantine stake.
#![allow(clippy::unwrap_used, clippy::too_many_lines)]

mod common;

use common::{public, sign, signing_key};
use cvx_protocol::certificate::{
    CertDecision, CertKind, CertRequest, Certificate, DEFAULT_TRUST_PERIOD_MS, OrderHeader,
    StakeEntry, StakeTable, TrustedTable, Vote, decide_certificate, supermajority,
};
use cvx_protocol::consensus::{Checkpoint, Order};
use cvx_protocol::hash::{chain_over, chain_step};
use cvx_protocol::policy::{
    Decision, Policy, PolicyParams, RefuseCode, Request, SignRequest, Watermark,
};
use cvx_protocol::{BoundedVec, Hash, NetworkId, Signable, Timestamp, hash};
use proptest::prelude::*;

fn net() -> NetworkId {
    NetworkId(hash(b"cvx-cert-tests"))
}

const NOW: Timestamp = Timestamp(1_800_000_000_000);

fn table(stakes: &[(u8, u64)]) -> StakeTable {
    let mut entries: Vec<StakeEntry> = stakes
        .iter()
        .map(|&(i, stake)| StakeEntry {
            key: public(i),
            stake,
        })
        .collect();
    entries.sort_by_key(|e| e.key);
    StakeTable {
        entries: BoundedVec::try_from_vec(entries).unwrap(),
    }
}

fn trusted(t: &StakeTable) -> TrustedTable {
    TrustedTable {
        position: 0,
        confirmed_at: NOW,
        table: t.clone(),
    }
}

fn ids(n: usize, salt: u8) -> Vec<Hash> {
    (0..n)
        .map(|i| {
            hash(&[
                salt,
                u8::try_from(i % 256).unwrap(),
                u8::try_from(i / 256).unwrap(),
            ])
        })
        .collect()
}

/// A certificate for `anchor` over `ids`, with one vote per `(signer, finality,
/// consensus)` (absolute points), signed for `sign_net`.
fn cert(
    kind: CertKind,
    anchor: Checkpoint,
    ids: &[Hash],
    stake_root: Hash,
    voters: &[(u8, u64, u64)],
    sign_net: &NetworkId,
) -> Certificate {
    let mut votes: Vec<Vote> = voters
        .iter()
        .map(|&(i, finality, consensus)| {
            let n = usize::try_from(consensus - anchor.position).unwrap();
            let header = OrderHeader {
                peer: public(i),
                timestamp: Timestamp(NOW.0 - 10),
                body_hash: hash(&[i]),
                proposal: consensus,
                consensus,
                finality,
                consensus_chain: chain_over(&anchor.chain, &ids[..n]),
                stake_root,
            };
            let sig = sign(&signing_key(i), &header.sign_bytes(sign_net));
            Certificate::vote_of(&header, sig)
        })
        .collect();
    votes.sort_by_key(|v| v.peer);
    Certificate {
        network: net(),
        kind,
        anchor,
        stake_root,
        ids: BoundedVec::try_from_vec(ids.to_vec()).unwrap(),
        votes: BoundedVec::try_from_vec(votes).unwrap(),
    }
}

fn anchor(p: u64) -> Checkpoint {
    Checkpoint {
        position: p,
        chain: hash(&p.to_le_bytes()),
    }
}

fn decide(
    wm: &Watermark,
    tt: &TrustedTable,
    c: Certificate,
    t: Option<StakeTable>,
) -> CertDecision {
    decide_certificate(
        &net(),
        wm,
        tt,
        &CertRequest {
            certificate: c,
            table: t,
        },
        NOW,
        DEFAULT_TRUST_PERIOD_MS,
    )
}

/// Stakes for keys 0..n, and a subset mask.
fn stakes_s() -> impl Strategy<Value = (Vec<(u8, u64)>, Vec<bool>)> {
    (3usize..12).prop_flat_map(|n| {
        (
            proptest::collection::vec(1u64..1000, n).prop_map(|v| {
                v.into_iter()
                    .enumerate()
                    .map(|(i, s)| (u8::try_from(i).unwrap(), s))
                    .collect()
            }),
            proptest::collection::vec(any::<bool>(), n),
        )
    })
}

fn weight(stakes: &[(u8, u64)], mask: &[bool]) -> (u128, u128) {
    let w = stakes
        .iter()
        .zip(mask)
        .filter(|(_, m)| **m)
        .map(|(s, _)| u128::from(s.1))
        .sum();
    let t = stakes.iter().map(|s| u128::from(s.1)).sum();
    (w, t)
}

fn voters(stakes: &[(u8, u64)], mask: &[bool], f: u64, c: u64) -> Vec<(u8, u64, u64)> {
    stakes
        .iter()
        .zip(mask)
        .filter(|(_, m)| **m)
        .map(|(s, _)| (s.0, f, c))
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Allowed exactly when the votes hold more than 2/3 of the table's stake.
    #[test]
    fn quorum_must_exceed_two_thirds((stakes, mask) in stakes_s(), p in 0u64..1_000_000, lock in proptest::option::of(0u64..1000)) {
        let t = table(&stakes);
        let id = ids(4, 1);
        let c = cert(CertKind::Finality, anchor(p + 1000), &id, t.root(), &voters(&stakes, &mask, p + 1002, p + 1003), &net());
        let wm = Watermark { consensus: lock.map(anchor), finality: lock.unwrap_or(0), ..Watermark::default() };
        let (w, total) = weight(&stakes, &mask);
        let d = decide(&wm, &trusted(&t), c, None);
        if supermajority(w, total) {
            prop_assert!(d.refusal().is_none(), "{d:?}");
        } else {
            prop_assert_eq!(d.refusal(), Some(RefuseCode::CertWeakQuorum));
        }
    }

    /// A vote by a key outside the table is refused even when the rest is a quorum; a
    /// vote with a wrong signature is refused.
    #[test]
    fn outside_keys_and_bad_signatures_are_refused((stakes, _) in stakes_s(), outsider in 100u8..200, bit in 0usize..512) {
        let t = table(&stakes);
        let all = vec![true; stakes.len()];
        let mut v = voters(&stakes, &all, 10, 12);
        v.push((outsider, 10, 12));
        let c = cert(CertKind::Finality, anchor(10), &ids(4, 2), t.root(), &v, &net());
        prop_assert_eq!(decide(&Watermark::default(), &trusted(&t), c, None).refusal(), Some(RefuseCode::CertUnknownSigner));

        let mut c = cert(CertKind::Finality, anchor(10), &ids(4, 2), t.root(), &voters(&stakes, &all, 10, 12), &net());
        let mut votes = c.votes.clone().into_vec();
        votes[0].signature.0[bit / 8] ^= 1 << (bit % 8);
        c.votes = BoundedVec::try_from_vec(votes).unwrap();
        prop_assert_eq!(decide(&Watermark::default(), &trusted(&t), c, None).refusal(), Some(RefuseCode::CertBadSignature));
    }

    /// Another network: named in the certificate, or only in the signatures.
    #[test]
    fn another_network_is_refused((stakes, _) in stakes_s(), other in any::<[u8; 32]>()) {
        prop_assume!(NetworkId(Hash(other)) != net());
        let t = table(&stakes);
        let all = vec![true; stakes.len()];
        let mut c = cert(CertKind::Lock, anchor(5), &ids(2, 3), t.root(), &voters(&stakes, &all, 0, 6), &net());
        c.network = NetworkId(Hash(other));
        prop_assert_eq!(decide(&Watermark::default(), &trusted(&t), c, None).refusal(), Some(RefuseCode::CertNetwork));
        let c = cert(CertKind::Lock, anchor(5), &ids(2, 3), t.root(), &voters(&stakes, &all, 0, 6), &NetworkId(Hash(other)));
        prop_assert_eq!(decide(&Watermark::default(), &trusted(&t), c, None).refusal(), Some(RefuseCode::CertBadSignature));
    }

    /// A certificate naming another table: refused without the table, with a table of
    /// another root, when the trusted table's quorum did not vouch (stale), when it is
    /// below the trusted table's position (replay); accepted, and the table adopted, when
    /// more than 2/3 of both tables voted.
    #[test]
    fn stale_or_unproven_tables_are_refused((stakes, mask) in stakes_s(), newcomer in 1u64..3000) {
        let t = table(&stakes);
        let mut changed = stakes.clone();
        changed.push((200, newcomer));
        let t2 = table(&changed);
        let mut mask2 = mask.clone();
        mask2.push(true);
        let v = voters(&changed, &mask2, 50, 52);
        let c = cert(CertKind::Finality, anchor(50), &ids(3, 4), t2.root(), &v, &net());
        let tt = trusted(&t);
        let wm = Watermark::default();
        prop_assert_eq!(decide(&wm, &tt, c.clone(), None).refusal(), Some(RefuseCode::CertTableUnproven));
        prop_assert_eq!(decide(&wm, &tt, c.clone(), Some(t.clone())).refusal(), Some(RefuseCode::CertTableUnproven));
        let (w_old, total_old) = weight(&stakes, &mask);
        let (w_new, total_new) = weight(&changed, &mask2);
        let d = decide(&wm, &tt, c.clone(), Some(t2.clone()));
        if !supermajority(w_new, total_new) {
            prop_assert_eq!(d.refusal(), Some(RefuseCode::CertWeakQuorum));
        } else if !supermajority(w_old, total_old) {
            prop_assert_eq!(d.refusal(), Some(RefuseCode::CertStaleTable));
        } else {
            let CertDecision::Allow { trusted: adopted, watermark, .. } = d else { panic!("{d:?}") };
            prop_assert_eq!(&adopted.table, &t2);
            prop_assert_eq!(adopted.position, 50);
            prop_assert_eq!(watermark.finality, 50);
            // A replay of the old table's certificate below the adopted position.
            let old = cert(CertKind::Finality, anchor(40), &ids(3, 4), t.root(), &voters(&stakes, &vec![true; stakes.len()], 40, 41), &net());
            prop_assert_eq!(decide(&Watermark::default(), &adopted, old, Some(t.clone())).refusal(), Some(RefuseCode::CertStaleTable));
        }
        // Trust expired: the same certificate, long after the table was confirmed.
        let expired = TrustedTable { confirmed_at: Timestamp(NOW.0 - DEFAULT_TRUST_PERIOD_MS - 1), ..tt };
        prop_assert_eq!(decide(&wm, &expired, c, Some(t2)).refusal(), Some(RefuseCode::CertTrustExpired));
    }

    /// Catch-up at any distance: the lock and (for finality) the finality watermark move
    /// to the anchor; the next order must extend it; a certificate below the lock never
    /// moves it (a valid one of the trusted table re-confirms the table, any other is
    /// refused); a lock certificate leaves finality alone.
    #[test]
    fn catch_up_at_any_distance(q in 0u64..1000, gap in 1u64..(u64::MAX / 4), lock_kind in any::<bool>()) {
        let stakes: Vec<(u8, u64)> = (0..4).map(|i| (i, 100)).collect();
        let t = table(&stakes);
        let p = q + gap;
        let lock = anchor(q);
        let wm = Watermark { consensus: Some(lock), finality: q, ..Watermark::default() };
        let kind = if lock_kind { CertKind::Lock } else { CertKind::Finality };
        let id = ids(3, 5);
        let a = Checkpoint { position: p, chain: hash(b"elsewhere") };
        let c = cert(kind, a, &id, t.root(), &[(0, p, p + 1), (1, p, p + 2), (2, p, p + 3)], &net());
        let CertDecision::Allow { watermark, moved, .. } = decide(&wm, &trusted(&t), c, None) else { panic!() };
        prop_assert!(moved);
        prop_assert_eq!(watermark.consensus, Some(a));
        prop_assert_eq!(watermark.finality, if lock_kind { q } else { p });
        // The next order from the anchor: extending it is allowed, another chain refused.
        let policy = Policy { key: public(0), network: net(), params: PolicyParams::default() };
        let order = |chain: Hash| Order {
            peer: public(0),
            timestamp: Timestamp(NOW.0 - 1),
            checkpoint: Checkpoint { position: p, chain },
            blocks: BoundedVec::try_from_vec(id.clone()).unwrap(),
            proposal: p + 3,
            consensus: p + 2,
            finality: p,
            stake_root: Hash::ZERO,
        };
        let req = |o: Order| Request { network: net(), body: SignRequest::Order { order: o, bridge: BoundedVec::new() } };
        let allowed = matches!(policy.decide(&watermark, &req(order(a.chain)), NOW), Decision::Allow { .. });
        prop_assert!(allowed);
        prop_assert_eq!(policy.decide(&watermark, &req(order(hash(b"fork"))), NOW).refusal(), Some(RefuseCode::PrefixConflict));
        // Below the lock the lock never moves: a valid certificate of the trusted table
        // only re-confirms the table (docs/consensus.md §7.5) ...
        let below = cert(kind, anchor(p - 1), &id, t.root(), &[(0, p, p), (1, p, p), (2, p, p)], &net());
        let stale = TrustedTable { confirmed_at: Timestamp(NOW.0 - 1_000), ..trusted(&t) };
        let CertDecision::Allow { watermark: w2, trusted: t_after, moved } = decide(&watermark, &stale, below, None) else { panic!("a valid certificate below the lock re-confirms the table") };
        prop_assert!(!moved);
        prop_assert_eq!(&w2, &watermark);
        prop_assert_eq!(t_after.confirmed_at, NOW);
        prop_assert_eq!(t_after.position, stale.position);
        prop_assert_eq!(&t_after.table, &t);
        // ... and any other is refused: a new table, or too few votes.
        let t2 = table(&(0..4).map(|i| (i, 101)).collect::<Vec<_>>());
        let new_table = cert(kind, anchor(p - 1), &id, t2.root(), &[(0, p, p), (1, p, p), (2, p, p)], &net());
        prop_assert_eq!(decide(&watermark, &trusted(&t), new_table, Some(t2)).refusal(), Some(RefuseCode::CertBelowLock));
        let weak = cert(kind, anchor(p - 1), &id, t.root(), &[(0, p, p), (1, p, p)], &net());
        prop_assert_eq!(decide(&watermark, &trusted(&t), weak, None).refusal(), Some(RefuseCode::CertBelowLock));
    }

    /// Lock release is safe: see `run_fork_tree`.
    #[test]
    fn lock_release_never_allows_conflicting_certificates(seed in any::<u64>()) {
        run_fork_tree(seed);
    }
}

/// xorshift64*: the fork-tree runs are driven by one seed (printed on failure).
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next() % n as u64).unwrap()
    }
}

struct Node {
    parent: Option<usize>,
    depth: u64,
    id: Hash,
    chain: Hash,
}

/// Ancestor-or-self.
fn extends(nodes: &[Node], mut x: usize, a: usize) -> bool {
    loop {
        if x == a {
            return true;
        }
        match nodes[x].parent {
            Some(p) => x = p,
            None => return false,
        }
    }
}

fn ancestor_at(nodes: &[Node], mut x: usize, depth: u64) -> usize {
    while nodes[x].depth > depth {
        x = nodes[x].parent.unwrap();
    }
    x
}

fn path_ids(nodes: &[Node], from: usize, to: usize) -> Vec<Hash> {
    let mut out = Vec::new();
    let mut x = to;
    while x != from {
        out.push(nodes[x].id);
        x = nodes[x].parent.unwrap();
    }
    out.reverse();
    out
}

struct Honest {
    key: u8,
    stake: u64,
    wm: Watermark,
    trusted: TrustedTable,
    /// (consensus node, finality, consensus, signed header)
    signed: Vec<(usize, OrderHeader, cvx_protocol::Signature)>,
}

#[derive(Default)]
struct Counts {
    orders: u64,
    certs_allowed: u64,
    releases: u64,
    catch_ups: u64,
}

/// Random fork tree; honest signers run the real order and certificate policies on
/// adversarial requests (any order on any branch, any certificate that can be assembled
/// from every signature made so far); byzantine keys (together < 1/3 of stake) sign
/// anything. After every step: no two conflicting nodes each have the support of more
/// than 2/3 of stake (locks covering them), so no two conflicting lock — hence finality —
/// certificates can ever be assembled, and every honest signer's finality watermark
/// never regresses.
fn run_fork_tree(seed: u64) -> Counts {
    let mut rng = Rng(seed | 1);
    let n_honest = 3 + rng.below(5);
    let mut honest_stakes: Vec<u64> = (0..n_honest).map(|_| 1 + rng.next() % 100).collect();
    if rng.below(3) == 0 {
        honest_stakes.iter_mut().for_each(|s| *s = 100);
    }
    let h_total: u64 = honest_stakes.iter().sum();
    // Byzantine: total b with 3b < h + b, i.e. 2b < h.
    let b_cap = (h_total - 1) / 2;
    let n_byz = rng.below(3);
    let byz: Vec<(u8, u64)> = (0..n_byz)
        .map(|j| (100 + u8::try_from(j).unwrap(), 0))
        .collect();
    let mut byz = byz;
    let mut left = b_cap;
    for b in &mut byz {
        let s = if left == 0 { 0 } else { 1 + rng.next() % left };
        b.1 = s;
        left -= s;
    }
    byz.retain(|b| b.1 > 0);
    let mut all: Vec<(u8, u64)> = honest_stakes
        .iter()
        .enumerate()
        .map(|(i, s)| (u8::try_from(i).unwrap(), *s))
        .collect();
    all.extend(&byz);
    let t = table(&all);
    let total = t.total();
    let b_total: u128 = byz.iter().map(|b| u128::from(b.1)).sum();
    assert!(b_total * 3 < total);

    let network = net();
    let mut nodes = vec![Node {
        parent: None,
        depth: 0,
        id: Hash::ZERO,
        chain: network.0,
    }];
    for k in 0..(8 + rng.below(16)) {
        let parent = rng.below(nodes.len());
        if nodes[parent].depth >= 10 {
            continue;
        }
        let id = hash(&[seed.to_le_bytes().as_slice(), &(k as u64).to_le_bytes()].concat());
        nodes.push(Node {
            parent: Some(parent),
            depth: nodes[parent].depth + 1,
            id,
            chain: chain_step(&nodes[parent].chain, &id),
        });
    }
    let mut hs: Vec<Honest> = (0..n_honest)
        .map(|i| Honest {
            key: u8::try_from(i).unwrap(),
            stake: honest_stakes[i],
            wm: Watermark::default(),
            trusted: trusted(&t),
            signed: Vec::new(),
        })
        .collect();
    let mut counts = Counts::default();
    let mut ts = NOW.0 - 1_000_000;
    let root = t.root();
    for _step in 0..120 {
        ts += 1;
        if rng.below(3) != 0 {
            // An order from an honest signer, on any branch, with any points.
            let s = rng.below(n_honest);
            let x = rng.below(nodes.len());
            let depth = nodes[x].depth;
            let c = rng.next() % (depth + 1);
            let f = rng.next() % (c + 1);
            let h = &mut hs[s];
            let order = Order {
                peer: public(h.key),
                timestamp: Timestamp(ts),
                checkpoint: Checkpoint::genesis(&network),
                blocks: BoundedVec::try_from_vec(path_ids(&nodes, 0, x)).unwrap(),
                proposal: depth,
                consensus: c,
                finality: f,
                stake_root: Hash::ZERO,
            };
            let policy = Policy {
                key: public(h.key),
                network,
                params: PolicyParams::default(),
            };
            let req = Request {
                network,
                body: SignRequest::Order {
                    order: order.clone(),
                    bridge: BoundedVec::new(),
                },
            };
            if let Decision::Allow { watermark, .. } = policy.decide(&h.wm, &req, NOW) {
                assert!(
                    watermark.finality >= h.wm.finality,
                    "seed {seed}: finality regressed"
                );
                h.wm = watermark;
                let header = OrderHeader::of(&order, root).unwrap();
                let sig = sign(&signing_key(h.key), &header.sign_bytes(&network));
                h.signed.push((ancestor_at(&nodes, x, c), header, sig));
                counts.orders += 1;
            }
        } else {
            // A certificate assembled from signatures made so far plus byzantine votes,
            // presented to a random honest signer.
            let anchor_node = rng.below(nodes.len());
            let tips: Vec<usize> = (0..nodes.len())
                .filter(|&y| extends(&nodes, y, anchor_node))
                .collect();
            let tip = tips[rng.below(tips.len())];
            let p = nodes[anchor_node].depth;
            let kind = if rng.below(2) == 0 {
                CertKind::Lock
            } else {
                CertKind::Finality
            };
            let mut votes: Vec<Vote> = Vec::new();
            for h in &hs {
                let found = h.signed.iter().find(|(cn, hd, _)| {
                    extends(&nodes, tip, *cn)
                        && extends(&nodes, *cn, anchor_node)
                        && (kind == CertKind::Lock || hd.finality >= p)
                });
                if let Some((_, hd, sig)) = found {
                    votes.push(Certificate::vote_of(hd, *sig));
                }
            }
            let ids_ = path_ids(&nodes, anchor_node, tip);
            for &(k, _) in &byz {
                let c = p + rng.next() % (ids_.len() as u64 + 1);
                let header = OrderHeader {
                    peer: public(k),
                    timestamp: Timestamp(ts),
                    body_hash: hash(&[k]),
                    proposal: c,
                    consensus: c,
                    finality: p,
                    consensus_chain: chain_over(
                        &nodes[anchor_node].chain,
                        &ids_[..usize::try_from(c - p).unwrap()],
                    ),
                    stake_root: root,
                };
                let sig = sign(&signing_key(k), &header.sign_bytes(&network));
                votes.push(Certificate::vote_of(&header, sig));
            }
            votes.sort_by_key(|v| v.peer);
            let certificate = Certificate {
                network,
                kind,
                anchor: Checkpoint {
                    position: p,
                    chain: nodes[anchor_node].chain,
                },
                stake_root: root,
                ids: BoundedVec::try_from_vec(ids_).unwrap(),
                votes: BoundedVec::try_from_vec(votes).unwrap(),
            };
            let s = rng.below(n_honest);
            let h = &mut hs[s];
            let before = h.wm.consensus;
            let d = decide_certificate(
                &network,
                &h.wm,
                &h.trusted,
                &CertRequest {
                    certificate,
                    table: None,
                },
                NOW,
                DEFAULT_TRUST_PERIOD_MS,
            );
            if let CertDecision::Allow {
                watermark,
                trusted: tt,
                moved,
            } = d
            {
                assert!(
                    watermark.finality >= h.wm.finality,
                    "seed {seed}: finality regressed"
                );
                counts.certs_allowed += 1;
                if moved {
                    match before {
                        Some(b) if b.position == p => counts.releases += 1,
                        Some(b) => {
                            let lock_node = nodes
                                .iter()
                                .position(|n| n.depth == b.position && n.chain == b.chain);
                            if lock_node.is_some_and(|l| !extends(&nodes, anchor_node, l)) {
                                counts.releases += 1;
                            } else {
                                counts.catch_ups += 1;
                            }
                        }
                        None => counts.catch_ups += 1,
                    }
                }
                h.wm = watermark;
                h.trusted = tt;
            }
        }
        // Invariant: no two conflicting nodes both supported by more than 2/3.
        let support = |node: usize| -> u128 {
            b_total
                + hs.iter()
                    .filter(|h| h.signed.iter().any(|(cn, _, _)| extends(&nodes, *cn, node)))
                    .map(|h| u128::from(h.stake))
                    .sum::<u128>()
        };
        let strong: Vec<usize> = (0..nodes.len())
            .filter(|&x| supermajority(support(x), total))
            .collect();
        for &a in &strong {
            for &b in &strong {
                assert!(
                    extends(&nodes, a, b) || extends(&nodes, b, a),
                    "seed {seed}: conflicting certificates possible at depths {} and {}",
                    nodes[a].depth,
                    nodes[b].depth
                );
            }
        }
    }
    counts
}

/// The fork-tree property over 300 fixed seeds, and proof that it is not vacuous: locks
/// really are released and signers really catch up.
#[test]
fn fork_tree_runs_release_locks_and_catch_up() {
    let mut total = Counts::default();
    for seed in 0..300u64 {
        let c = run_fork_tree(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xC0FFEE);
        total.orders += c.orders;
        total.certs_allowed += c.certs_allowed;
        total.releases += c.releases;
        total.catch_ups += c.catch_ups;
    }
    eprintln!(
        "fork trees: {} orders, {} certificates allowed, {} lock releases, {} catch-ups",
        total.orders, total.certs_allowed, total.releases, total.catch_ups
    );
    assert!(total.orders > 1000);
    assert!(total.releases > 10, "no lock was ever released");
    assert!(total.catch_ups > 10, "no signer ever caught up");
}
