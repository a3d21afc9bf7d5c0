//! Property tests of the signing policy over random request sequences drawn from a tree
//! of forks: whatever a (possibly compromised) peer asks, the set of signed orders never
//! contains two that disagree on a prefix below either one's consensus point, no point
//! regresses, and an identical repeat is idempotent.
#![allow(clippy::unwrap_used)]

mod common;

use common::public;
use cvx_protocol::consensus::{BlockHeader, Checkpoint, Order};
use cvx_protocol::hash::{chain_over, hash};
use cvx_protocol::policy::{
    Decision, Policy, PolicyParams, Request, SignRequest, Watermark, orders_conflict,
};
use cvx_protocol::{BoundedVec, Hash, NetworkId, Timestamp};
use proptest::prelude::*;

const MAX_POS: u64 = 40;
const BRANCHES: usize = 4;

fn net() -> NetworkId {
    NetworkId(hash(b"cvx property network"))
}

/// Branch 0 is the main chain; branch b > 0 equals it below `forks[b]` and differs from
/// every other branch at and above it.
#[derive(Debug, Clone)]
struct Tree {
    forks: [u64; BRANCHES],
}

impl Tree {
    fn id(&self, branch: usize, pos: u64) -> Hash {
        let b = if pos < self.forks[branch] { 0 } else { branch };
        hash(&[&[u8::try_from(b).unwrap()][..], &pos.to_le_bytes()].concat())
    }
    fn ids(&self, branch: usize, from: u64, to: u64) -> Vec<Hash> {
        (from..to).map(|p| self.id(branch, p)).collect()
    }
    /// Do two orders' full histories agree on every position below `k`?
    fn agree_below(&self, a: usize, b: usize, k: u64) -> bool {
        (0..k).all(|p| self.id(a, p) == self.id(b, p))
    }
}

#[derive(Debug, Clone)]
enum Step {
    Order {
        branch: usize,
        dt: i64,
        cp: u64,
        len: u64,
        pts: [u64; 3],
        bridge: BridgeKind,
    },
    Block {
        dt: i64,
        txs: u32,
    },
    RepeatLast,
}

#[derive(Debug, Clone, Copy)]
enum BridgeKind {
    None,
    Right,
    FromBranch(usize),
}

fn step_s() -> impl Strategy<Value = Step> {
    prop_oneof![
        6 => (
            0..BRANCHES,
            -3i64..20,
            0..MAX_POS,
            0..MAX_POS,
            any::<[u64; 3]>(),
            prop_oneof![Just(BridgeKind::None), Just(BridgeKind::Right), (0..BRANCHES).prop_map(BridgeKind::FromBranch)],
        )
            .prop_map(|(branch, dt, a, b, pts, bridge)| Step::Order {
                branch,
                dt,
                cp: a.min(b),
                len: a.max(b),
                pts,
                bridge,
            }),
        2 => (-3i64..20, 0u32..1100).prop_map(|(dt, txs)| Step::Block { dt, txs }),
        1 => Just(Step::RepeatLast),
    ]
}

fn tree_s() -> impl Strategy<Value = Tree> {
    proptest::array::uniform4(0..MAX_POS).prop_map(|mut forks| {
        forks[0] = 0;
        Tree { forks }
    })
}

struct Signed {
    branch: usize,
    order: Order,
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn signed_orders_never_equivocate_and_points_never_regress(
        tree in tree_s(),
        steps in proptest::collection::vec(step_s(), 1..80),
    ) {
        let policy = Policy { key: public(0), network: net(), params: PolicyParams::default() };
        let mut wm = Watermark::default();
        let mut now = Timestamp(1_000_000);
        let mut order_ts = 1_000_000u64;
        let mut block_ts = 1_000_000u64;
        let mut last: Option<Request> = None;
        let mut signed: Vec<Signed> = Vec::new();
        let mut branch_of_last = 0usize;
        for step in steps {
            now = now.plus_ms(5);
            let (req, branch) = match step {
                Step::RepeatLast => match &last { Some(r) => (r.clone(), branch_of_last), None => continue },
                Step::Block { dt, txs } => {
                    block_ts = block_ts.saturating_add_signed(dt);
                    (Request { network: net(), body: SignRequest::Block(BlockHeader {
                        proposer: public(0), timestamp: Timestamp(block_ts), tx_count: txs, tx_hash: hash(b"b"),
                    })}, branch_of_last)
                }
                Step::Order { branch, dt, cp, len, pts, bridge } => {
                    order_ts = order_ts.saturating_add_signed(dt);
                    let span = len - cp;
                    let mut p = pts.map(|x| cp + x % (span + 1));
                    // Usually consistent; sometimes deliberately not (raw pts).
                    if pts[0] % 7 != 0 { p.sort_unstable(); }
                    let order = Order {
                        peer: public(0),
                        timestamp: Timestamp(order_ts),
                        checkpoint: Checkpoint { position: cp, chain: chain_over(&net().0, &tree.ids(branch, 0, cp)) },
                        blocks: BoundedVec::try_from_vec(tree.ids(branch, cp, len)).unwrap(),
                        finality: p[0], consensus: p[1], proposal: p[2], stake_root: Hash::ZERO,
                    };
                    let from = wm.consensus.map_or(0, |c| c.position);
                    let bridge = match bridge {
                        BridgeKind::None => vec![],
                        BridgeKind::Right => if cp > from { tree.ids(branch, from, cp) } else { vec![] },
                        BridgeKind::FromBranch(b) => if cp > from { tree.ids(b, from, cp) } else { vec![] },
                    };
                    (Request { network: net(), body: SignRequest::Order { order, bridge: BoundedVec::try_from_vec(bridge).unwrap() } }, branch)
                }
            };
            match policy.decide(&wm, &req, now) {
                Decision::Refuse(_) => {}
                Decision::Allow { watermark, sign_bytes, repeat } => {
                    // Idempotence: the identical request again is a repeat, same bytes, same watermark.
                    match policy.decide(&watermark, &req, now) {
                        Decision::Allow { watermark: w2, sign_bytes: s2, repeat: r2 } => {
                            prop_assert!(r2 || matches!(req.body, SignRequest::ChallengeResponse(_)));
                            prop_assert_eq!(&w2, &watermark);
                            prop_assert_eq!(s2, sign_bytes);
                        }
                        Decision::Refuse(r) => prop_assert!(false, "repeat refused: {:?}", r),
                    }
                    // No regression.
                    prop_assert!(watermark.finality >= wm.finality);
                    prop_assert!(watermark.consensus.map_or(0, |c| c.position) >= wm.consensus.map_or(0, |c| c.position));
                    if let SignRequest::Order { order, .. } = &req.body
                        && !repeat
                    {
                        // Every signed order's points are consistent.
                        prop_assert!(order.points_consistent());
                        for s in &signed {
                            let k = s.order.consensus.min(order.consensus);
                            prop_assert!(tree.agree_below(s.branch, branch, k),
                                "equivocation: orders on branches {} and {} disagree below {}", s.branch, branch, k);
                            prop_assert!(!orders_conflict(&s.order, order));
                            // Monotone in signing order.
                            prop_assert!(order.consensus >= s.order.consensus);
                            prop_assert!(order.finality >= s.order.finality);
                            prop_assert!(order.timestamp > s.order.timestamp);
                        }
                        signed.push(Signed { branch, order: order.clone() });
                    }
                    wm = watermark;
                    last = Some(req);
                    branch_of_last = branch;
                }
            }
        }
    }
}
