//! The merge step: stake weights, block status, the new own order and its bridge.
use super::*;

impl Peer {
    pub(super) fn block_status(&self, id: &Hash, now: Timestamp) -> BlockStatus {
        let Some(b) = self.blocks.get(id) else {
            return BlockStatus::Unknown;
        };
        let params = self.params();
        let h = &b.header;
        let staked = self
            .ledger
            .peer(&h.proposer)
            .is_some_and(|r| r.stake >= params.min_stake);
        if !staked {
            return BlockStatus::Invalid;
        }
        if h.timestamp > now.plus_ms(params.max_future_ms) {
            return BlockStatus::Future;
        }
        BlockStatus::Valid {
            timestamp: h.timestamp,
            appendable: h.timestamp.plus_ms(params.max_block_backdate_ms) >= now
                && !self.recent_final.contains_key(id),
        }
    }

    /// Effective weights (with decay) of the peers whose weight reaches `min_stake`, and
    /// their total; and the total stake without decay of peers whose stake reaches it.
    ///
    /// Decay is measured against the ledger's time (the newest finalized block's
    /// timestamp), not the local clock: every peer with the same finalized state computes
    /// the same weights, and a stall of the whole network does not decay everyone (with
    /// the clock, a stall longer than the grace let every peer fall below `min_stake`,
    /// total weight dropped to zero and the stall fed itself; docs/consensus.md §2).
    fn weights(&self) -> (IdMap<PublicKey, u128>, u128, u128) {
        let params = self.params();
        let now = self.ledger.time();
        let min = params.min_stake.get();
        let mut w = IdMap::default();
        let mut total = 0u128;
        let mut raw_total = 0u128;
        for rec in self.ledger.peers() {
            if rec.stake.get() >= min && rec.stake.get() > 0 {
                raw_total += u128::from(rec.stake.get());
            }
            let e = crate::stake::effective_stake(rec, now, params);
            if e >= min && e > 0 {
                w.insert(rec.key, u128::from(e));
                total += u128::from(e);
            }
        }
        (w, total, raw_total)
    }

    pub(super) fn raw_stake(&self, k: &PublicKey) -> u128 {
        self.ledger.peer(k).map_or(0, |r| u128::from(r.stake.get()))
    }

    /// A peer's stake without decay if it votes (at least `min_stake`, above 0).
    pub(super) fn voting_stake(&self, k: &PublicKey) -> Option<u128> {
        let min = u128::from(self.params().min_stake.get());
        Some(self.raw_stake(k)).filter(|s| *s >= min && *s > 0)
    }

    /// The stake without decay of every voter ([`Peer::voting_stake`]).
    pub(super) fn voting_total(&self) -> u128 {
        self.ledger
            .peers()
            .filter_map(|r| self.voting_stake(&r.key))
            .sum()
    }

    pub(super) fn try_merge(&mut self, now: Timestamp, out: &mut Vec<Action>) {
        if !self.dirty
            || self.pending_order.is_some()
            || now < self.order_retry_at
            || now < self.last_merge.plus_ms(self.cfg.min_order_gap_ms)
        {
            return;
        }
        self.dirty = false;
        self.last_merge = now;
        self.request_missing(now, out);
        let (weights, total, total_stake) = self.weights();
        // Every peer whose stake without decay reaches the minimum takes part; one whose
        // decayed weight fell below it votes with weight 0 (proposal, consensus) but its
        // lock still counts with its stake for finality and fork detection.
        let voters: Vec<Voter<'_>> = self
            .others
            .values()
            .filter_map(|so| {
                Some(Voter {
                    order: &so.order,
                    weight: weights.get(&so.order.peer).copied().unwrap_or(0),
                    stake: self.voting_stake(&so.order.peer)?,
                })
            })
            .collect();
        let own = OwnView {
            checkpoint: self.checkpoint,
            ids: &self.ids,
            chains: &self.chains,
            proposal: self.proposal,
            protect: self.protect_point(now),
            consensus: self.consensus,
            finality: self.finality,
            catch_up: self.catch_up.as_ref(),
        };
        let max_blocks = usize::try_from(self.next_checkpoint() - self.checkpoint.position)
            .unwrap_or(usize::MAX)
            + self.cfg.max_order_blocks;
        let mp = MergeParams {
            now,
            own_weight: weights.get(&self.cfg.key).copied().unwrap_or(0),
            total_weight: total,
            own_stake: self.voting_stake(&self.cfg.key).unwrap_or(0),
            total_stake,
            proposal_since: self.proposal_since,
            hold_ms: self.params().proposal_hold_ms,
            max_blocks,
        };
        let status = |id: &Hash| self.block_status(id, now);
        let merged = match crate::merge::merge(&own, &voters, &self.own_new, &status, &mp) {
            Ok(m) => m,
            Err(fork) => {
                self.halted = Some(fork);
                out.push(Action::Halted(fork));
                return;
            }
        };
        if merged.held {
            self.stats.proposals_held += 1;
        }
        if merged.unlinkable > 0 {
            self.stats.unlinkable += 1;
            if now >= self.last_chain_request.plus_ms(REQUEST_RETRY_MS)
                && let Some(conn) = merged
                    .unlinkable_peers
                    .iter()
                    .find_map(|k| self.order_conn.get(k))
            {
                // A retry goes to another connection: the one that relayed the order may
                // be as far behind as this peer and unable to answer.
                let retry = self.last_chain_request.0 != 0
                    && now < self.last_chain_request.plus_ms(4 * REQUEST_RETRY_MS);
                let conn = self.pick_conn(*conn, &Hash::ZERO, now, retry);
                self.last_chain_request = now;
                out.push(Action::Send {
                    to: conn,
                    msg: Message::GetChain(self.finality),
                });
            }
        }
        let unchanged = merged.ids == self.ids
            && merged.proposal == self.proposal
            && merged.consensus == self.consensus
            && merged.finality == self.finality;
        if unchanged && self.signed.is_some() {
            return;
        }
        // Never change the consensus prefix (merge guarantees it; this is the last guard).
        let c_rel =
            usize::try_from(self.consensus - self.checkpoint.position).unwrap_or(usize::MAX);
        if merged.ids.get(..c_rel) != self.ids.get(..c_rel) {
            let fork = ForkDetected {
                position: self.consensus,
                weight: 0,
                total,
            };
            self.halted = Some(fork);
            out.push(Action::Halted(fork));
            return;
        }
        // Chain values of the new ids (reuse the common prefix).
        let common = merged
            .ids
            .iter()
            .zip(&self.ids)
            .take_while(|(a, b)| a == b)
            .count();
        let mut chains: Vec<Hash> = self.chains[..common].to_vec();
        let mut prev = if common == 0 {
            self.checkpoint.chain
        } else {
            chains[common - 1]
        };
        for id in &merged.ids[common..] {
            prev = chain_step(&prev, id);
            chains.push(prev);
        }
        // Move the checkpoint up (below finality) only as far as the cap needs.
        let cp = self.checkpoint.position;
        let len = cp + merged.ids.len() as u64;
        let new_cp_pos = self.next_checkpoint().min(len);
        let skip = usize::try_from(new_cp_pos - cp).unwrap_or(0);
        let checkpoint = if skip == 0 {
            self.checkpoint
        } else {
            Checkpoint {
                position: new_cp_pos,
                chain: chains[skip - 1],
            }
        };
        let Ok(blocks) = BoundedVec::try_from_vec(merged.ids[skip..].to_vec()) else {
            return;
        };
        let order = Order {
            peer: self.cfg.key,
            timestamp: now.max(self.last_order_ts.plus_ms(1)),
            checkpoint,
            blocks,
            proposal: merged.proposal,
            consensus: merged.consensus,
            finality: merged.finality,
            stake_root: self.stake_root(),
        };
        let bridge = self.bridge(new_cp_pos, &merged.ids);
        let id = self.next_request();
        out.push(Action::Sign {
            id,
            request: Request {
                network: self.network,
                body: SignRequest::Order {
                    order: order.clone(),
                    bridge,
                },
            },
        });
        self.pending_order = Some(PendingOrderBox(PendingOrder {
            id,
            order,
            ids: merged.ids,
            chains,
            prefix_changed: merged.prefix_changed,
        }));
    }

    /// Block ids between the signer's committed consensus point and `new_cp`.
    fn bridge(&self, new_cp: u64, ids: &[Hash]) -> BoundedVec<Hash, MAX_BRIDGE> {
        let Some(sc) = self.signed_consensus else {
            return BoundedVec::new();
        };
        if new_cp <= sc.position {
            return BoundedVec::new();
        }
        let cp = self.checkpoint.position;
        let hist_start = cp - self.history.len() as u64;
        let mut v = Vec::new();
        for pos in sc.position..new_cp {
            let id = if pos < cp {
                pos.checked_sub(hist_start)
                    .and_then(|i| usize::try_from(i).ok())
                    .and_then(|i| self.history.get(i))
            } else {
                usize::try_from(pos - cp).ok().and_then(|i| ids.get(i))
            };
            match id {
                Some(h) => v.push(*h),
                None => return BoundedVec::new(),
            }
        }
        BoundedVec::try_from_vec(v).unwrap_or_default()
    }
}
