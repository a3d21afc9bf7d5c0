//! Block production: the own block, when the peer may make one.
use super::*;

impl Peer {
    pub(super) fn try_produce(&mut self, now: Timestamp, out: &mut Vec<Action>) {
        if self.pending_block.is_some()
            || now < self.block_retry_at
            || self.own_new.len() >= self.cfg.max_own_pending
        {
            return;
        }
        let params = self.params().clone();
        let Some(rec) = self.ledger.peer(&self.cfg.key) else {
            return;
        };
        let early = self.cfg.early_block_txs;
        let fast_network = self
            .own_final_ms
            .is_none_or(|ms| ms <= self.cfg.early_block_max_final_ms);
        let interval =
            if self.mempool_ids.len() <= early && self.last_block_txs <= early && fast_network {
                params.min_block_time_ms
            } else {
                params.min_block_time_ms.max(self.cfg.block_interval_ms)
            };
        if rec.stake < params.min_stake || now < self.last_block_ts.plus_ms(interval) {
            return;
        }
        let last = rec.last_block_time.max(self.last_block_ts);
        let heartbeat = self.cfg.heartbeat && now >= last.plus_ms(params.decay_grace_ms / 2);
        if self.mempool_ids.is_empty() && !heartbeat {
            return;
        }
        let cap = self.cfg.block_tx_cap as usize;
        let mut txs: Vec<SignedTransaction> = Vec::with_capacity(cap.min(self.mempool_ids.len()));
        while txs.len() < cap {
            let Some((tid, t)) = self.mempool.pop_front() else {
                break;
            };
            if self.mempool_ids.remove(&tid) {
                txs.push(t);
            }
        }
        let Ok(body) = BlockBody::try_from_vec(txs) else {
            return;
        };
        let header = BlockHeader {
            proposer: self.cfg.key,
            timestamp: now.max(self.last_block_ts.plus_ms(1)),
            tx_count: u32::try_from(body.len()).unwrap_or(u32::MAX),
            tx_hash: body_hash(&body),
        };
        let id = self.next_request();
        out.push(Action::Sign {
            id,
            request: Request {
                network: self.network,
                body: SignRequest::Block(header.clone()),
            },
        });
        self.pending_block = Some(PendingBlockBox(PendingBlock { id, header, body }));
    }
}
