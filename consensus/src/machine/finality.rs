//! Installing a signed own order, executing finalized blocks, broadcasting the belief.
use super::*;

impl Peer {
    pub(super) fn install(
        &mut self,
        now: Timestamp,
        p: PendingOrder,
        sig: Signature,
        out: &mut Vec<Action>,
    ) {
        let o = &p.order;
        let old_cp = self.checkpoint.position;
        let old_finality = self.finality;
        let skip = usize::try_from(o.checkpoint.position - old_cp).unwrap_or(0);
        for id in &p.ids[..skip] {
            self.history.push_back(*id);
            if self.history.len() > MAX_BRIDGE {
                self.history.pop_front();
            }
        }
        self.checkpoint = o.checkpoint;
        self.ids = p.ids[skip..].to_vec();
        self.chains = p.chains[skip..].to_vec();
        self.proposal = o.proposal;
        self.consensus = o.consensus;
        self.finality = o.finality;
        self.last_order_ts = o.timestamp;
        if p.prefix_changed {
            self.proposal_since = now;
            self.proposal_high = (o.proposal, now);
        } else if o.proposal > self.proposal_high.0 {
            self.proposal_high = (o.proposal, now);
        }
        self.signed_consensus = o.chain_at(o.consensus).map(|chain| Checkpoint {
            position: o.consensus,
            chain,
        });
        self.signed = Some(SignedOrder {
            order: p.order,
            signature: sig,
        });
        self.stats.orders_signed += 1;
        if self.finality > old_finality {
            self.keep_final_votes();
        }
        if self.catch_up.as_ref().is_some_and(|c| {
            c.start.position + c.ids.len() as u64 <= self.finality
                || c.start.position < self.checkpoint.position
        }) {
            self.catch_up = None;
        }
        let window: IdSet<&Hash> = self.ids.iter().collect();
        self.own_new.retain(|id| !window.contains(id));
        self.dirty = true;
        self.execute(now, out);
        out.push(Action::Persist(Box::new(self.snapshot())));
        self.broadcast_belief(now, out);
    }

    fn execute(&mut self, now: Timestamp, out: &mut Vec<Action>) {
        let params = self.params().clone();
        while self.ledger.height() < self.finality {
            let pos = self.ledger.height();
            let Some(id) = usize::try_from(pos.saturating_sub(self.checkpoint.position))
                .ok()
                .and_then(|i| self.ids.get(i))
                .copied()
            else {
                break;
            };
            let Some(block) = self.blocks.get(&id).cloned() else {
                // Cannot happen: the own order lists only held blocks.
                break;
            };
            let outcome = self
                .ledger
                .apply_verified_block(&block, &self.network, &params);
            let tx_ids: Vec<Hash> = block
                .transactions
                .iter()
                .map(SignedTransaction::id)
                .collect();
            for t in &tx_ids {
                self.mempool_ids.remove(t);
            }
            if self.mempool.len() > 2 * self.mempool_ids.len() + 64 {
                let live = &self.mempool_ids;
                self.mempool.retain(|(tid, _)| live.contains(tid));
            }
            if block.header.proposer == self.cfg.key {
                let ms = now.0.saturating_sub(block.header.timestamp.0);
                self.own_final_ms = Some(self.own_final_ms.map_or(ms, |a| (7 * a + ms) / 8));
            }
            self.recent_final.insert(id, block.header.timestamp);
            out.push(Action::Finalized(Box::new(Finalized {
                position: pos,
                id,
                state_hash: self.ledger.state_hash(),
                outcome,
                tx_ids,
            })));
        }
        // Forget what can no longer matter.
        let horizon = now.minus_ms(params.max_block_backdate_ms.saturating_mul(2));
        self.recent_final.retain(|_, t| *t >= horizon);
        let window: IdSet<Hash> = self
            .ids
            .iter()
            .chain(self.own_new.iter())
            .copied()
            .collect();
        let held = &mut self.held_txs;
        self.blocks.retain(|id, b| {
            let keep = window.contains(id) || b.header.timestamp >= horizon;
            if !keep {
                *held = held.saturating_sub(b.transactions.len());
            }
            keep
        });
        self.shed_final_bodies(&window);
        self.requested
            .retain(|_, t| t.plus_ms(REQUEST_RETRY_MS * 10) >= now);
    }

    /// Finalized blocks outside the own order are kept only to answer peers a little behind;
    /// they may fill at most [`FINAL_BODIES_SHARE`] of [`MAX_HELD_TXS`]. Beyond it the oldest
    /// go first (down to three quarters of that share, so this runs seldom), and the room
    /// stays with the blocks still being voted on: under a flood, finalized bodies used to
    /// fill the whole budget and new blocks were dropped (`BlockLoad`) and asked for again.
    /// Their ids stay in `recent_final`, so they are never appended again.
    pub(super) fn shed_final_bodies(&mut self, window: &IdSet<Hash>) {
        let share = MAX_HELD_TXS / FINAL_BODIES_SHARE;
        // Finalized bodies are part of `held_txs`: below the share, no pass over the blocks.
        if self.held_txs <= share {
            return;
        }
        let mut finals: Vec<(Timestamp, Hash, usize)> = Vec::new();
        let mut final_txs = 0usize;
        for (id, b) in &self.blocks {
            if !window.contains(id) && self.recent_final.contains_key(id) {
                final_txs += b.transactions.len();
                finals.push((b.header.timestamp, *id, b.transactions.len()));
            }
        }
        if final_txs <= share {
            return;
        }
        finals.sort_unstable();
        for (_, id, n) in finals {
            if final_txs <= share / 4 * 3 {
                break;
            }
            self.blocks.remove(&id);
            self.held_txs = self.held_txs.saturating_sub(n);
            final_txs -= n;
        }
    }

    pub(super) fn broadcast_belief(&mut self, now: Timestamp, out: &mut Vec<Action>) {
        let Some(own) = &self.signed else {
            return;
        };
        self.last_broadcast = now;
        let mut orders: Vec<SignedOrder> = self.others.values().cloned().collect();
        orders.push(own.clone());
        orders.sort_by_key(|o| o.order.peer);
        if let Ok(orders) = BoundedVec::try_from_vec(orders) {
            out.push(Action::Broadcast(Message::Belief(Belief { orders })));
        }
    }
}
