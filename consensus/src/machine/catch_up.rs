//! Catching up: asking again for missing blocks, and following the chain of ids a peer
//! sends when this one is behind.
use super::*;

impl Peer {
    /// Ask again for blocks that held orders list and that never arrived (a lost reply
    /// must not stall the vote), each from the connection that brought the order.
    pub(super) fn request_missing(&mut self, now: Timestamp, out: &mut Vec<Action>) {
        self.make_room_requested(now);
        let mut asks: BTreeMap<ConnId, Vec<Hash>> = BTreeMap::new();
        for (peer, so) in &self.others {
            let Some(conn) = self.order_conn.get(peer) else {
                continue;
            };
            for id in so.order.blocks.iter() {
                let asked = self.requested.get(id);
                if !self.blocks.contains_key(id)
                    && !self.recent_final.contains_key(id)
                    && asked.is_none_or(|t| now >= t.plus_ms(REQUEST_RETRY_MS))
                {
                    let conn = self.pick_conn(*conn, id, now, asked.is_some());
                    let v = asks.entry(conn).or_default();
                    if v.len() < MAX_GET_BLOCKS && !v.contains(id) {
                        v.push(*id);
                    }
                }
            }
        }
        // The blocks of a catch-up run: no order lists them, so without this a lost
        // answer left a lagging peer without them for good (its orders line up through
        // the run, so it never asks for the run again).
        if let (Some(seg), Some(conn)) = (&self.catch_up, self.catch_up_conn) {
            for id in &seg.ids {
                let asked = self.requested.get(id);
                if !self.blocks.contains_key(id)
                    && !self.recent_final.contains_key(id)
                    && asked.is_none_or(|t| now >= t.plus_ms(REQUEST_RETRY_MS))
                {
                    let conn = self.pick_conn(conn, id, now, asked.is_some());
                    let v = asks.entry(conn).or_default();
                    if v.len() >= MAX_GET_BLOCKS {
                        break;
                    }
                    if !v.contains(id) {
                        v.push(*id);
                    }
                }
            }
        }
        for (conn, ids) in asks {
            for id in &ids {
                self.note_requested(*id, now);
            }
            out.push(Action::Send {
                to: conn,
                msg: Message::GetBlocks(ids),
            });
        }
    }

    /// The connection to ask: `first` the first time; on a retry, one of the connections
    /// that delivered orders, chosen by the id and the retry round, so that successive
    /// retries try different peers (the relaying peer may not hold what it relayed).
    pub(super) fn pick_conn(
        &self,
        first: ConnId,
        id: &Hash,
        now: Timestamp,
        retry: bool,
    ) -> ConnId {
        if !retry {
            return first;
        }
        let mut conns: Vec<ConnId> = self.order_conn.values().copied().collect();
        conns.sort_unstable();
        conns.dedup();
        if conns.is_empty() {
            return first;
        }
        let round = now.0 / REQUEST_RETRY_MS;
        let salt = u64::from_le_bytes([
            id.0[0], id.0[1], id.0[2], id.0[3], id.0[4], id.0[5], id.0[6], id.0[7],
        ]);
        let i = usize::try_from(round.wrapping_add(salt) % conns.len() as u64).unwrap_or(0);
        conns[i]
    }

    /// Rule 4's protected point: the highest proposal signed on the current prefix, for
    /// `PROTECT_HOLDS` hold times after it was signed. A proposal point drops when
    /// support for it thins; without this the blocks above the lower point were free to
    /// change at once, and a peer re-proposed a different block at a position it had
    /// proposed 30 ms before — while another peer locked on its earlier order (the
    /// conflicting locks of docs/consensus.md §5, traced in the simulation).
    pub(super) fn protect_point(&self, now: Timestamp) -> u64 {
        let (high, at) = self.proposal_high;
        let hold = self.params().proposal_hold_ms.saturating_mul(PROTECT_HOLDS);
        if now < at.plus_ms(hold) { high } else { 0 }
    }

    /// Where the checkpoint goes next: `keep_finalized` below finality (never down).
    pub(super) fn next_checkpoint(&self) -> u64 {
        self.finality
            .saturating_sub(self.cfg.keep_finalized)
            .max(self.checkpoint.position)
    }

    /// Ids from absolute position `start` to the end of the own order, if held.
    pub(super) fn ids_from(&self, start: u64) -> Option<Vec<Hash>> {
        let cp = self.checkpoint.position;
        let hist_start = cp - self.history.len() as u64;
        if start < hist_start || start > cp + self.ids.len() as u64 {
            return None;
        }
        let mut v: Vec<Hash> = Vec::new();
        if start < cp {
            let skip = usize::try_from(start - hist_start).ok()?;
            v.extend(self.history.iter().skip(skip));
        }
        let from = usize::try_from(start.saturating_sub(cp)).ok()?;
        v.extend_from_slice(self.ids.get(from..)?);
        v.truncate(MAX_BRIDGE);
        Some(v)
    }

    pub(super) fn on_chain(
        &mut self,
        now: Timestamp,
        from: ConnId,
        start: u64,
        ids: Vec<Hash>,
        out: &mut Vec<Action>,
    ) {
        let cp = self.checkpoint.position;
        // Only a run that starts inside the own order is usable (its chain value there
        // is known); longer than the cap is refused.
        let Some(chain) = (start >= cp && start <= cp + self.ids.len() as u64)
            .then(|| {
                let i = usize::try_from(start - cp).unwrap_or(0);
                if i == 0 {
                    Some(self.checkpoint.chain)
                } else {
                    self.chains.get(i - 1).copied()
                }
            })
            .flatten()
        else {
            return;
        };
        if ids.is_empty() || ids.len() > MAX_BRIDGE {
            return;
        }
        let chains = chains_from(&chain, &ids);
        let mut missing: Vec<Hash> = ids
            .iter()
            .filter(|id| !self.blocks.contains_key(*id) && !self.recent_final.contains_key(*id))
            .copied()
            .collect();
        missing.truncate(MAX_GET_BLOCKS);
        self.make_room_requested(now);
        for id in &missing {
            self.note_requested(*id, now);
        }
        if !missing.is_empty() {
            out.push(Action::Send {
                to: from,
                msg: Message::GetBlocks(missing),
            });
        }
        self.catch_up = Some(CatchUp {
            start: Checkpoint {
                position: start,
                chain,
            },
            ids,
            chains,
        });
        self.catch_up_conn = Some(from);
        self.dirty = true;
    }
}
