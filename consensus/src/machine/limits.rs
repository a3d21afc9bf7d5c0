//! Bounds on the machine's collections that grow with what others send (issue 15;
//! docs/operations.md, "Memory limits"). Everything else is bounded by construction: one
//! order per staked peer (`others`, `order_conn`), `max_mempool`, `max_own_pending`,
//! `MAX_BRIDGE` (`history`, a catch-up run), the order cap (`ids`, `chains`).
//! `recent_final` has no cap on purpose: forgetting a finalized block early would let it
//! be appended again; it holds the blocks finalized in the last `2 × max_block_backdate_ms`,
//! which the block rate bounds (every peer at most one block per `min_block_time_ms`).
use super::*;

/// Block ids remembered as asked for (retry timers), at most. Beyond, an id is still
/// asked for but not remembered (it may be asked again sooner), and the drop counted.
pub const MAX_REQUESTED: usize = 16_384;
/// Blocks held (the own order's window, blocks to vote on, and the finalized blocks of the
/// last `2 × max_block_backdate_ms`), counted in transactions: beyond this, a block that
/// was not asked for is dropped (counted as [`Dropped::BlockLoad`]); an order that lists
/// it makes the peer ask for it, and asked-for blocks are taken up to twice the cap.
pub const MAX_HELD_TXS: usize = 262_144;
/// The same in blocks (empty heartbeat blocks weigh little but still cost a map entry).
pub const MAX_HELD_BLOCKS: usize = 32_768;
/// Finalized blocks outside the own order (kept for peers a little behind) fill at most
/// `MAX_HELD_TXS / FINAL_BODIES_SHARE` of the budget; the oldest go first.
pub const FINAL_BODIES_SHARE: usize = 2;

/// Lengths of the machine's collections that grow with input (for `/metrics`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Held {
    /// Blocks held ([`MAX_HELD_BLOCKS`]).
    pub blocks: usize,
    /// Transactions in them ([`MAX_HELD_TXS`]).
    pub block_txs: usize,
    /// Block requests remembered ([`MAX_REQUESTED`]).
    pub requested: usize,
    /// Finalized blocks remembered (bounded by the block rate).
    pub recent_final: usize,
    /// The mempool's queue, tombstones included (at most twice `max_mempool` + 64).
    pub mempool_queue: usize,
    /// Orders of other peers held (one per staked peer).
    pub orders: usize,
}

impl Peer {
    /// Lengths of the collections that grow with input.
    #[must_use]
    pub fn held(&self) -> Held {
        Held {
            blocks: self.blocks.len(),
            block_txs: self.held_txs,
            requested: self.requested.len(),
            recent_final: self.recent_final.len(),
            mempool_queue: self.mempool.len(),
            orders: self.others.len(),
        }
    }

    /// Whether a block from another peer may be held: under the caps, or asked for and
    /// under twice the caps.
    pub(super) fn may_hold(&self, id: &Hash, txs: usize) -> bool {
        let k = if self.requested.contains_key(id) {
            2
        } else {
            1
        };
        self.blocks.len() < k * MAX_HELD_BLOCKS && self.held_txs + txs <= k * MAX_HELD_TXS
    }

    /// Before asking for blocks: when the request memory is full, forget the requests
    /// whose retry is due anyway (once per call, so a flood costs one pass per message).
    pub(super) fn make_room_requested(&mut self, now: Timestamp) {
        if self.requested.len() >= MAX_REQUESTED {
            self.requested
                .retain(|_, t| now < t.plus_ms(REQUEST_RETRY_MS));
        }
    }

    /// Remember that `id` was asked for at `now`, if there is room.
    pub(super) fn note_requested(&mut self, id: Hash, now: Timestamp) {
        if self.requested.len() < MAX_REQUESTED || self.requested.contains_key(&id) {
            self.requested.insert(id, now);
        } else {
            *self.stats.dropped.entry(Dropped::RequestLoad).or_default() += 1;
        }
    }

    /// The mempool's queue keeps tombstones of transactions that left through a block;
    /// compact it before it holds more than twice the cap.
    pub(super) fn compact_mempool(&mut self) {
        if self.mempool.len() > 2 * self.cfg.max_mempool + 64 {
            let live = &self.mempool_ids;
            self.mempool.retain(|(tid, _)| live.contains(tid));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cvx_loadgen::{Keypair, fast_params, raw_sign_block, raw_sign_order, test_net};
    use cvx_protocol::consensus::Checkpoint;

    const T0: u64 = 1_700_000_000_000 + 5_000;

    fn net() -> (Peer, Vec<Keypair>, Vec<Keypair>) {
        let n = test_net(7, &[5_000, 5_000, 5_000], 8, 1_000_000, fast_params());
        let p = Peer::new(Config::new(n.genesis, n.peers[0].public()));
        (p, n.peers, n.accounts)
    }

    fn block(p: &Peer, k: &Keypair, ts: u64, txs: Vec<SignedTransaction>) -> Arc<Block> {
        let body = BlockBody::try_from_vec(txs).unwrap();
        let header = BlockHeader {
            proposer: k.public(),
            timestamp: Timestamp(ts),
            tx_count: u32::try_from(body.len()).unwrap(),
            tx_hash: body_hash(&body),
        };
        let signature = raw_sign_block(k, &p.network, &header);
        Arc::new(Block {
            header,
            signature,
            transactions: body,
        })
    }

    fn send(p: &mut Peer, now: u64, msg: Message) -> Vec<Action> {
        p.handle(
            Timestamp(now),
            Event::Message {
                from: ConnId(1),
                msg,
            },
        )
    }

    fn dropped(p: &Peer, d: Dropped) -> u64 {
        p.stats().dropped.get(&d).copied().unwrap_or(0)
    }

    #[test]
    fn a_flood_of_unasked_blocks_stops_at_the_cap_and_asked_blocks_still_come_in() {
        let (mut p, peers, _) = net();
        // Fill up to the block-count cap (cheap: blocks inserted as if received).
        for i in 0..MAX_HELD_BLOCKS as u64 {
            let b = block(&p, &peers[1], T0 + i, Vec::new());
            p.blocks.insert(b.id(), b);
        }
        let extra = block(&p, &peers[1], T0 + 1_000_000, Vec::new());
        send(&mut p, T0, Message::Block(Arc::clone(&extra)));
        assert_eq!(p.blocks.len(), MAX_HELD_BLOCKS, "the cap holds");
        assert!(!p.blocks.contains_key(&extra.id()));
        assert_eq!(dropped(&p, Dropped::BlockLoad), 1);
        // An order lists it: the peer asks for it, and the answer is taken.
        let order = Order {
            peer: peers[1].public(),
            timestamp: Timestamp(T0),
            checkpoint: Checkpoint::genesis(&p.network),
            blocks: BoundedVec::try_from_vec(vec![extra.id()]).unwrap(),
            proposal: 0,
            consensus: 0,
            finality: 0,
            stake_root: Hash::ZERO,
        };
        let signature = raw_sign_order(&peers[1], &p.network, &order);
        let so = SignedOrder { order, signature };
        let acts = send(
            &mut p,
            T0,
            Message::Belief(Belief {
                orders: BoundedVec::try_from_vec(vec![so]).unwrap(),
            }),
        );
        assert!(acts.iter().any(|a| matches!(a,
            Action::Send { msg: Message::GetBlocks(ids), .. } if ids.contains(&extra.id()))));
        send(&mut p, T0, Message::Block(Arc::clone(&extra)));
        assert!(
            p.blocks.contains_key(&extra.id()),
            "an asked-for block is taken"
        );
    }

    #[test]
    fn finalized_bodies_fill_at_most_their_share_and_the_oldest_go_first() {
        let (mut p, peers, accounts) = net();
        let net_id = p.network;
        let one = accounts[2].sign_tx(
            &net_id,
            cvx_protocol::ledger::Transaction {
                origin: cvx_protocol::Address(2),
                sequence: 1,
                action: cvx_protocol::ledger::Action::Transfer {
                    to: cvx_protocol::Address(3),
                    amount: cvx_protocol::Amount::new(1).unwrap(),
                },
            },
        );
        let full = vec![one; 1024];
        // 200 finalized blocks of 1,024 transactions (more than the share), and one block
        // still being voted on.
        let mut finals = Vec::new();
        for i in 0..200u64 {
            let b = block(&p, &peers[1], T0 + i, full.clone());
            p.held_txs += b.transactions.len();
            p.recent_final.insert(b.id(), b.header.timestamp);
            finals.push(b.id());
            p.blocks.insert(b.id(), b);
        }
        let live = block(&p, &peers[2], T0, full.clone());
        p.held_txs += live.transactions.len();
        p.blocks.insert(live.id(), Arc::clone(&live));
        p.shed_final_bodies(&IdSet::default());
        let share = MAX_HELD_TXS / FINAL_BODIES_SHARE;
        let kept: Vec<usize> = (0..finals.len())
            .filter(|&i| p.blocks.contains_key(&finals[i]))
            .collect();
        let kept_txs = kept.len() * 1024;
        assert!(
            kept_txs <= share / 4 * 3,
            "{kept_txs} finalized transactions kept"
        );
        assert!(kept_txs + 1024 > share / 4 * 3, "no more shed than needed");
        assert_eq!(
            kept,
            ((200 - kept.len())..200).collect::<Vec<_>>(),
            "the newest stay"
        );
        assert!(
            p.blocks.contains_key(&live.id()),
            "a block being voted on stays"
        );
        assert_eq!(p.held_txs, kept_txs + 1024, "the count follows");
        assert_eq!(
            p.recent_final.len(),
            200,
            "every id is still known as final"
        );
        // Below the share, nothing goes.
        let before = p.blocks.len();
        p.shed_final_bodies(&IdSet::default());
        assert_eq!(p.blocks.len(), before);
    }

    #[test]
    fn a_transaction_in_memory_is_as_large_as_docs_say() {
        // docs/operations.md, "Memory limits": the worst cases are counted with this.
        let n = size_of::<SignedTransaction>();
        assert!(n <= 320, "SignedTransaction is {n} bytes: update the docs");
    }

    #[test]
    fn held_transactions_are_counted_and_capped() {
        let (mut p, peers, accounts) = net();
        let net_id = p.network;
        let tx = |i: u64| {
            accounts[2].sign_tx(
                &net_id,
                cvx_protocol::ledger::Transaction {
                    origin: cvx_protocol::Address(2),
                    sequence: i + 1,
                    action: cvx_protocol::ledger::Action::Transfer {
                        to: cvx_protocol::Address(3),
                        amount: cvx_protocol::Amount::new(1).unwrap(),
                    },
                },
            )
        };
        let b = block(&p, &peers[1], T0, vec![tx(0), tx(1)]);
        send(&mut p, T0, Message::Block(b));
        assert_eq!(p.held_txs, 2);
        // Pretend the held transactions are at the cap: the next block is refused.
        p.held_txs = MAX_HELD_TXS - 1;
        let b = block(&p, &peers[2], T0 + 1, vec![tx(2), tx(3)]);
        send(&mut p, T0, Message::Block(Arc::clone(&b)));
        assert!(!p.blocks.contains_key(&b.id()));
        assert_eq!(dropped(&p, Dropped::BlockLoad), 1);
        // A block that fits is still taken.
        let small = block(&p, &peers[2], T0 + 2, vec![tx(4)]);
        send(&mut p, T0, Message::Block(Arc::clone(&small)));
        assert!(p.blocks.contains_key(&small.id()));
        assert_eq!(p.held_txs, MAX_HELD_TXS);
    }

    #[test]
    fn request_memory_is_capped_and_due_requests_make_room() {
        let (mut p, peers, _) = net();
        // Orders with fresh ids, each signed: every id is asked for and remembered, up to
        // the cap.
        let mut ts = T0;
        let mut n = 0usize;
        while n < MAX_REQUESTED + 3 * MAX_ORDER_BLOCKS {
            let ids: Vec<Hash> = (0..MAX_ORDER_BLOCKS)
                .map(|i| {
                    let mut h = [7u8; 32];
                    h[..8].copy_from_slice(&((n + i) as u64).to_le_bytes());
                    Hash(h)
                })
                .collect();
            n += MAX_ORDER_BLOCKS;
            ts += 1;
            let order = Order {
                peer: peers[1].public(),
                timestamp: Timestamp(ts),
                checkpoint: Checkpoint::genesis(&p.network),
                blocks: BoundedVec::try_from_vec(ids).unwrap(),
                proposal: 0,
                consensus: 0,
                finality: 0,
                stake_root: Hash::ZERO,
            };
            let signature = raw_sign_order(&peers[1], &p.network, &order);
            let so = SignedOrder { order, signature };
            send(
                &mut p,
                T0,
                Message::Belief(Belief {
                    orders: BoundedVec::try_from_vec(vec![so]).unwrap(),
                }),
            );
            assert!(p.requested.len() <= MAX_REQUESTED, "the cap holds");
        }
        assert_eq!(p.requested.len(), MAX_REQUESTED);
        assert!(dropped(&p, Dropped::RequestLoad) > 0);
        // Once the retries are due, the memory makes room for new requests.
        p.make_room_requested(Timestamp(T0 + REQUEST_RETRY_MS));
        assert!(p.requested.is_empty());
        p.note_requested(Hash([9; 32]), Timestamp(T0 + REQUEST_RETRY_MS));
        assert_eq!(p.requested.len(), 1);
    }

    #[test]
    fn the_mempool_queue_of_tombstones_is_compacted() {
        let (p, _, _) = net();
        let mut cfg = p.cfg.clone();
        cfg.max_mempool = 10;
        let mut p = Peer::new(cfg);
        let tx = SignedTransaction {
            tx: cvx_protocol::ledger::Transaction {
                origin: cvx_protocol::Address(2),
                sequence: 1,
                action: cvx_protocol::ledger::Action::Transfer {
                    to: cvx_protocol::Address(3),
                    amount: cvx_protocol::Amount::new(1).unwrap(),
                },
            },
            signature: Signature([0; 64]),
        };
        // Transactions that left through others' blocks leave tombstones behind.
        for i in 0..1_000u64 {
            let mut t = tx.clone();
            t.tx.sequence = i + 1;
            p.on_transaction(t.clone());
            p.mempool_ids.remove(&t.id());
            assert!(p.mempool.len() <= 2 * 10 + 64 + 1, "{}", p.mempool.len());
        }
        // The newest transaction is still pending.
        let mut t = tx;
        t.tx.sequence = 5_000;
        p.on_transaction(t);
        assert_eq!(p.mempool_len(), 1);
    }
}
