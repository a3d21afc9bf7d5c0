//! Inputs: transactions, messages, orders, blocks and the signer's answers.
use super::*;

impl Peer {
    fn reject(&mut self, why: Dropped) {
        *self.stats.dropped.entry(why).or_default() += 1;
    }

    pub(super) fn on_transaction(&mut self, tx: SignedTransaction) {
        if self.mempool_ids.len() >= self.cfg.max_mempool {
            return self.reject(Dropped::TxLoad);
        }
        let id = tx.id();
        let useful = self
            .ledger
            .account(tx.tx.origin)
            .is_some_and(|a| tx.tx.sequence > a.sequence);
        if !useful || self.mempool_ids.contains(&id) || self.recent_final.contains_key(&id) {
            return self.reject(Dropped::TxUseless);
        }
        self.mempool_ids.insert(id);
        self.mempool.push_back((id, tx));
        self.compact_mempool();
    }

    pub(super) fn on_message(
        &mut self,
        now: Timestamp,
        from: ConnId,
        msg: Message,
        out: &mut Vec<Action>,
    ) {
        match msg {
            Message::Belief(b) => {
                let mut missing = Vec::new();
                for so in b.orders.into_vec() {
                    self.on_order(now, from, so, &mut missing);
                }
                if !missing.is_empty() {
                    missing.truncate(MAX_GET_BLOCKS);
                    out.push(Action::Send {
                        to: from,
                        msg: Message::GetBlocks(missing),
                    });
                }
            }
            Message::Block(b) => self.on_block(b),
            Message::GetChain(start) => {
                if let Some(ids) = self.ids_from(start) {
                    out.push(Action::Send {
                        to: from,
                        msg: Message::Chain { start, ids },
                    });
                }
            }
            Message::Chain { start, ids } => self.on_chain(now, from, start, ids, out),
            Message::GetBlocks(ids) => {
                for id in ids.iter().take(MAX_GET_BLOCKS) {
                    if let Some(b) = self.blocks.get(id) {
                        out.push(Action::Send {
                            to: from,
                            msg: Message::Block(Arc::clone(b)),
                        });
                    }
                }
            }
        }
    }

    fn on_order(&mut self, now: Timestamp, from: ConnId, so: SignedOrder, missing: &mut Vec<Hash>) {
        let o = &so.order;
        if o.peer == self.cfg.key {
            return;
        }
        if let Some(held) = self.others.get(&o.peer)
            && held.order.timestamp >= o.timestamp
        {
            if held != &so {
                self.reject(Dropped::OrderStale);
            }
            return;
        }
        let Some(rec) = self.ledger.peer(&o.peer) else {
            return self.reject(Dropped::OrderNotPeer);
        };
        // Acceptance by stake *without* decay (a deliberate deviation from Convex): the
        // finality quorum counts stake without decay, so it must hear every peer whose
        // stake counts in its total; decay only weighs the vote (docs/consensus.md §2).
        if rec.stake < self.params().min_stake {
            return self.reject(Dropped::OrderMinStake);
        }
        if !o.points_consistent() {
            return self.reject(Dropped::OrderInconsistent);
        }
        if o.timestamp > now.plus_ms(self.params().max_future_ms) {
            return self.reject(Dropped::OrderFuture);
        }
        if o.peer.verify(&self.network, o, &so.signature).is_err() {
            return self.reject(Dropped::OrderSignature);
        }
        self.make_room_requested(now);
        for id in o.blocks.iter() {
            if !self.blocks.contains_key(id)
                && !self.recent_final.contains_key(id)
                && self
                    .requested
                    .get(id)
                    .is_none_or(|t| now >= t.plus_ms(REQUEST_RETRY_MS))
            {
                self.note_requested(*id, now);
                missing.push(*id);
            }
        }
        self.stats.orders_accepted += 1;
        self.order_conn.insert(o.peer, from);
        self.others.insert(o.peer, so);
        self.dirty = true;
    }

    fn on_block(&mut self, b: Arc<Block>) {
        let id = b.id();
        if self.blocks.contains_key(&id) {
            return;
        }
        let h = &b.header;
        if self.ledger.peer(&h.proposer).is_none() {
            return self.reject(Dropped::BlockNotPeer);
        }
        if h.tx_count > self.params().max_block_txs
            || h.tx_count as usize != b.transactions.len()
            || body_hash(&b.transactions) != h.tx_hash
        {
            return self.reject(Dropped::BlockMalformed);
        }
        if !self.may_hold(&id, b.transactions.len()) {
            return self.reject(Dropped::BlockLoad);
        }
        if h.proposer.verify(&self.network, h, &b.signature).is_err() {
            return self.reject(Dropped::BlockSignature);
        }
        for t in b.transactions.iter() {
            self.mempool_ids.remove(&t.id());
        }
        self.requested.remove(&id);
        self.held_txs += b.transactions.len();
        self.blocks.insert(id, b);
        self.dirty = true;
    }

    pub(super) fn on_signature(
        &mut self,
        now: Timestamp,
        id: RequestId,
        result: Result<Signature, Refusal>,
        out: &mut Vec<Action>,
    ) {
        if self.pending_order.as_ref().is_some_and(|p| p.0.id == id) {
            let Some(PendingOrderBox(p)) = self.pending_order.take() else {
                return;
            };
            match result {
                Ok(sig) if self.cfg.key.verify(&self.network, &p.order, &sig).is_ok() => {
                    self.install(now, p, sig, out);
                }
                Ok(_) => {
                    self.stats.bad_signer_signatures += 1;
                    self.order_retry_at = now.plus_ms(REFUSAL_BACKOFF_MS);
                }
                Err(r) => {
                    self.refused(r.code);
                    self.order_retry_at = now.plus_ms(REFUSAL_BACKOFF_MS);
                    self.dirty = true;
                }
            }
        } else if self.pending_block.as_ref().is_some_and(|p| p.0.id == id) {
            let Some(PendingBlockBox(p)) = self.pending_block.take() else {
                return;
            };
            match result {
                Ok(sig) if self.cfg.key.verify(&self.network, &p.header, &sig).is_ok() => {
                    let block = Arc::new(Block {
                        header: p.header,
                        signature: sig,
                        transactions: p.body,
                    });
                    let bid = block.id();
                    self.last_block_ts = block.header.timestamp;
                    self.last_block_txs = block.transactions.len();
                    self.stats.blocks_signed += 1;
                    self.held_txs += block.transactions.len();
                    self.blocks.insert(bid, Arc::clone(&block));
                    self.own_new.push(bid);
                    self.dirty = true;
                    out.push(Action::Broadcast(Message::Block(block)));
                }
                other => {
                    match other {
                        Err(r) => self.refused(r.code),
                        Ok(_) => self.stats.bad_signer_signatures += 1,
                    }
                    // Put the transactions back, oldest first.
                    for t in p.body.into_vec().into_iter().rev() {
                        let tid = t.id();
                        self.mempool_ids.insert(tid);
                        self.mempool.push_front((tid, t));
                    }
                    self.block_retry_at =
                        now.plus_ms(self.params().min_block_time_ms.max(REFUSAL_BACKOFF_MS));
                }
            }
        }
    }

    fn refused(&mut self, code: RefuseCode) {
        *self.stats.refusals.entry(code.name()).or_default() += 1;
    }

    pub(super) fn next_request(&mut self) -> RequestId {
        let id = RequestId(self.next_id);
        self.next_id += 1;
        id
    }
}
