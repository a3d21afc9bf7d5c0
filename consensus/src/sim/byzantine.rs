//! What a byzantine peer does on its turn: equivocating orders, future-dated blocks, garbage.

use super::*;

impl Sim {
    /// One byzantine move: equivocating orders, a future-dated block, or garbage.
    pub(super) fn byzantine(&mut self, i: usize) {
        let now = self.now;
        let network = self.network;
        let Node::Byz(b) = &mut self.nodes[i] else {
            return;
        };
        let me = b.key.public();
        let ts = now.max(b.last_ts + 1);
        b.last_ts = ts;
        // Base: the longest honest order seen.
        let base = b
            .seen
            .values()
            .filter(|s| s.order.peer != me)
            .max_by_key(|s| s.order.len())
            .map(|s| s.order.clone());
        let mut msgs: Vec<(Option<usize>, Message)> = Vec::new();
        let choice = self.rng.range(0, 5);
        let mut rnd = self.rng.clone();
        let Node::Byz(b) = &mut self.nodes[i] else {
            return;
        };
        let n = self.groups.len();
        match (choice, base) {
            (0 | 1, Some(base)) => {
                // Equivocation: two orders with the same timestamp, conflicting blocks,
                // each claiming finality, sent to different halves.
                let mut a = base.clone();
                let mut c = base;
                let mut ids_a = a.blocks.to_vec();
                let mut ids_c = c.blocks.to_vec();
                let keep = ids_a.len().saturating_sub(rnd.index(3));
                ids_a.truncate(keep);
                ids_c.truncate(keep);
                ids_a.push(Hash(rnd.bytes32()));
                if ids_c.len() >= 2 && rnd.chance(500) {
                    let l = ids_c.len();
                    ids_c.swap(l - 1, l - 2);
                }
                ids_c.push(Hash(rnd.bytes32()));
                for (o, ids) in [(&mut a, ids_a), (&mut c, ids_c)] {
                    o.peer = me;
                    o.timestamp = Timestamp(ts);
                    o.blocks = BoundedVec::try_from_vec(ids).unwrap_or_default();
                    let l = o.len();
                    o.proposal = l;
                    o.consensus = l;
                    o.finality = l;
                }
                let sa = b.key.sign_order(&network, &a);
                let sc = b.key.sign_order(&network, &c);
                for to in 0..n {
                    let so = if to % 2 == 0 {
                        SignedOrder {
                            order: a.clone(),
                            signature: sa,
                        }
                    } else {
                        SignedOrder {
                            order: c.clone(),
                            signature: sc,
                        }
                    };
                    msgs.push((Some(to), belief(vec![so])));
                }
            }
            (2, base) => {
                // A validly signed block dated far in the future, pushed in an order.
                let body = BlockBody::new();
                let header = BlockHeader {
                    proposer: me,
                    timestamp: Timestamp(now + 60_000 + rnd.range(0, 1000)),
                    tx_count: 0,
                    tx_hash: body_hash(&body),
                };
                let signature = b.key.sign_block(&network, &header);
                let block = Arc::new(Block {
                    header,
                    signature,
                    transactions: body,
                });
                let id = block.id();
                msgs.push((None, Message::Block(block)));
                if let Some(mut o) = base {
                    let mut ids = o.blocks.to_vec();
                    ids.push(id);
                    o.blocks = BoundedVec::try_from_vec(ids).unwrap_or_default();
                    o.peer = me;
                    o.timestamp = Timestamp(ts);
                    o.proposal = o.len();
                    let signature = b.key.sign_order(&network, &o);
                    msgs.push((
                        None,
                        belief(vec![SignedOrder {
                            order: o,
                            signature,
                        }]),
                    ));
                }
            }
            (3, _) => {
                // Garbage: a bad signature, inconsistent points, a mismatched body.
                let cp = Checkpoint::genesis(&network);
                let ids = vec![Hash(rnd.bytes32()), Hash(rnd.bytes32())];
                let chain = chain_over(&cp.chain, &ids);
                let _ = chain;
                let o = Order {
                    peer: me,
                    timestamp: Timestamp(ts),
                    checkpoint: cp,
                    blocks: BoundedVec::try_from_vec(ids).unwrap_or_default(),
                    proposal: 1,
                    consensus: 2,
                    finality: 2,
                    stake_root: Hash::ZERO,
                };
                let signature = b.key.sign_order(&network, &o);
                msgs.push((
                    None,
                    belief(vec![SignedOrder {
                        order: o.clone(),
                        signature,
                    }]),
                ));
                let mut bad = signature;
                bad.0[5] ^= 0x40;
                let mut o2 = o;
                o2.proposal = 2;
                msgs.push((
                    None,
                    belief(vec![SignedOrder {
                        order: o2,
                        signature: bad,
                    }]),
                ));
                let header = BlockHeader {
                    proposer: me,
                    timestamp: Timestamp(now),
                    tx_count: 3,
                    tx_hash: Hash(rnd.bytes32()),
                };
                let signature = b.key.sign_block(&network, &header);
                msgs.push((
                    None,
                    Message::Block(Arc::new(Block {
                        header,
                        signature,
                        transactions: BlockBody::new(),
                    })),
                ));
                msgs.push((None, Message::GetBlocks(vec![Hash(rnd.bytes32())])));
            }
            _ => {
                // Replay stale orders of others (must be ignored as not newer).
                let old: Vec<SignedOrder> = b.seen.values().cloned().collect();
                if !old.is_empty() {
                    msgs.push((None, belief(old)));
                }
            }
        }
        self.rng = rnd;
        for (to, m) in msgs {
            match to {
                Some(t) => self.send(i, t, m),
                None => self.broadcast(i, &m),
            }
        }
    }
}
