//! One simulated event: delivering it, feeding it to a peer, the recovery clock.

use super::*;

impl Sim {
    pub(super) fn dispatch(&mut self, ev: Ev) -> Result<(), Failure> {
        match ev {
            Ev::Tick(i) => {
                self.push(self.now + TICK_MS, Ev::Tick(i));
                self.feed(i, Event::Tick)?;
            }
            Ev::Deliver { to, from, msg } => {
                if self.groups[to] != self.groups[from] {
                    return Ok(());
                }
                match &mut self.nodes[to] {
                    Node::Honest(_) => self.feed(
                        to,
                        Event::Message {
                            from: ConnId(from as u64),
                            msg,
                        },
                    )?,
                    Node::Byz(b) => {
                        if let Message::Belief(bel) = msg {
                            for so in bel.orders.into_vec() {
                                let newer = b
                                    .seen
                                    .get(&so.order.peer)
                                    .is_none_or(|h| h.order.timestamp < so.order.timestamp);
                                if newer {
                                    b.seen.insert(so.order.peer, so);
                                }
                            }
                        }
                    }
                }
            }
            Ev::SignReply {
                node,
                life,
                id,
                req,
            } => {
                let now = Timestamp(self.now);
                let Node::Honest(h) = &mut self.nodes[node] else {
                    return Ok(());
                };
                // The signer answers even if the peer has crashed meanwhile (its
                // watermark moves); the answer is then lost, as over a dead socket. A
                // frozen peer reads it when it resumes.
                let result = h.signer.sign(&req, now);
                let alive = h.life == life && h.peer.is_some();
                let deliver = match (&mut h.frozen, alive) {
                    (Some(stash), true) => {
                        stash.push((id, result.clone()));
                        false
                    }
                    (None, true) => true,
                    (_, false) => false,
                };
                if let (Ok(_), SignRequest::Order { order, .. }) = (&result, &req.body) {
                    self.claim(node, order)?;
                }
                if deliver {
                    self.feed(node, Event::SignatureReturned { id, result })?;
                }
            }
            Ev::Crash(i) => {
                if let Node::Honest(h) = &mut self.nodes[i] {
                    h.peer = None;
                    h.life += 1;
                    h.resync = None;
                    if self.rng.chance(300) {
                        h.signer.crash();
                    }
                }
                self.recovery = None;
                // A peer down for good: the others (if they hold more than 0.67 of stake
                // and are connected) must go on finalizing within the bound.
                let permanent =
                    self.faults.crashes.iter().any(|(who, at, back)| {
                        *who == i && self.t0 + at == self.now && back.is_none()
                    });
                if permanent && self.groups.iter().all(|g| *g == self.groups[0]) {
                    self.start_recovery();
                }
            }
            Ev::Restart(i) => {
                let mut cfg = Config::new(self.genesis.clone(), self.genesis.peers[i].key);
                (self.cfg_tweak)(&mut cfg);
                if let Node::Honest(h) = &mut self.nodes[i] {
                    let peer = match h.persisted.clone() {
                        Some(s) => Peer::restore(cfg, s),
                        None => Peer::new(cfg),
                    };
                    let fin = peer.points().2;
                    if fin < h.finality {
                        let what = format!(
                            "member {i} restarted with finality {fin} below the {} it had",
                            h.finality
                        );
                        return Err(self.fail(&what));
                    }
                    h.peer = Some(peer);
                }
                if self.faults.long {
                    self.start_recovery();
                }
            }
            Ev::Freeze(i) => {
                if let Node::Honest(h) = &mut self.nodes[i] {
                    h.frozen = Some(Vec::new());
                    h.resync = None;
                }
                self.recovery = None;
            }
            Ev::Thaw(i) => {
                let stash = match &mut self.nodes[i] {
                    Node::Honest(h) => h.frozen.take().unwrap_or_default(),
                    Node::Byz(_) => Vec::new(),
                };
                for (id, result) in stash {
                    self.feed(i, Event::SignatureReturned { id, result })?;
                }
                self.start_recovery();
            }
            Ev::Resync(step) => self.resync_step(step)?,
            Ev::Partition(g) => {
                self.groups = g;
                self.recovery = None;
            }
            Ev::Heal => {
                self.groups = vec![0; self.nodes.len()];
                self.start_recovery();
            }
            Ev::Load => {
                let next = self.now + self.rng.range(10, 50);
                self.push(next, Ev::Load);
                let ups: Vec<usize> = (0..self.nodes.len()).filter(|i| self.running(*i)).collect();
                for _ in 0..self.rng.range(1, 3) {
                    if ups.is_empty() {
                        break;
                    }
                    if let Some(tx) = self.txs.next_tx(&mut self.rng) {
                        // An account's transactions go to one peer (as a client would),
                        // so its sequence numbers reach blocks in order.
                        let to = ups[usize::try_from(tx.tx.origin.0).unwrap_or(0) % ups.len()];
                        self.feed(to, Event::Transaction(tx))?;
                    }
                }
            }
            Ev::Byz(i) => {
                let next = self.now + self.rng.range(20, 80);
                self.push(next, Ev::Byz(i));
                self.byzantine(i);
            }
        }
        Ok(())
    }

    /// An honest member whose peer runs (not crashed, not frozen).
    pub(super) fn running(&self, i: usize) -> bool {
        matches!(&self.nodes[i], Node::Honest(h) if h.peer.is_some() && h.frozen.is_none())
    }

    fn honest_up_stake(&self) -> (u128, u128) {
        let total: u128 = self.stakes.iter().sum();
        let up = (0..self.nodes.len())
            .filter(|i| self.running(*i))
            .map(|i| self.stakes[i])
            .sum();
        (up, total)
    }

    fn start_recovery(&mut self) {
        let (up, total) = self.honest_up_stake();
        let crash_pending = self.faults.crashes.iter().any(|(_, at, back)| {
            let at = self.t0 + at;
            match back {
                // A crash for good that has happened is already out of the up stake.
                None => at > self.now && at < self.now + self.bound,
                Some(back) => self.t0 + back > self.now && at < self.now + self.bound,
            }
        });
        if up * 100 > total * 67 && !crash_pending {
            let max = self.max_honest_finality();
            self.recovery = Some((self.now, max));
        }
    }

    fn max_honest_finality(&self) -> u64 {
        self.nodes
            .iter()
            .filter_map(|n| match n {
                Node::Honest(h) => Some(h.finality),
                Node::Byz(_) => None,
            })
            .max()
            .unwrap_or(0)
    }

    pub(super) fn feed(&mut self, i: usize, ev: Event) -> Result<(), Failure> {
        let now = Timestamp(self.now);
        let Node::Honest(h) = &mut self.nodes[i] else {
            return Ok(());
        };
        let Some(peer) = h.peer.as_mut() else {
            return Ok(());
        };
        if h.frozen.is_some() {
            return Ok(());
        }
        let actions = peer.handle(now, ev);
        let fin = peer.points().2;
        let coins = peer.ledger().total_coins();
        let life = h.life;
        if fin < h.finality {
            let what = format!(
                "member {i}: finality regressed from {} to {fin}",
                h.finality
            );
            return Err(self.fail(&what));
        }
        h.finality = fin;
        if coins != self.supply {
            return Err(self.fail(&format!(
                "member {i}: total coins {coins} differ from the supply {}",
                self.supply
            )));
        }
        for a in actions {
            match a {
                Action::Sign { id, request } => {
                    let lat = if self.rng.chance(50) {
                        self.rng.range(20, 120)
                    } else {
                        self.rng.range(0, 3)
                    };
                    self.push(
                        self.now + lat,
                        Ev::SignReply {
                            node: i,
                            life,
                            id,
                            req: request,
                        },
                    );
                }
                Action::Broadcast(m) => self.broadcast(i, &m),
                Action::Send { to, msg } => {
                    let to = usize::try_from(to.0).unwrap_or(usize::MAX);
                    if to < self.nodes.len() {
                        self.send(i, to, msg);
                    }
                }
                Action::Persist(s) => {
                    if let Node::Honest(h) = &mut self.nodes[i] {
                        h.persisted = Some(*s);
                    }
                }
                Action::Finalized(f) => {
                    let pos = usize::try_from(f.position).unwrap_or(usize::MAX);
                    if pos < self.finalized.len() {
                        let (id, sh) = self.finalized[pos];
                        if id != f.id {
                            return Err(self.fail(&format!(
                                "FORK: member {i} finalized block {:?} at position {pos}, another honest peer {id:?}",
                                f.id
                            )));
                        }
                        if sh != f.state_hash {
                            return Err(self.fail(&format!(
                                "member {i}: state hash {:?} at position {pos} differs from {sh:?}",
                                f.state_hash
                            )));
                        }
                    } else if pos == self.finalized.len() {
                        self.finalized.push((f.id, f.state_hash));
                        self.finalized_chain(f.id)?;
                        if let crate::ledger::BlockOutcome::Applied(o) = &f.outcome {
                            self.report.applied_txs +=
                                o.iter()
                                    .filter(|x| **x == cvx_protocol::ledger::TxOutcome::Applied)
                                    .count() as u64;
                        }
                    } else {
                        return Err(self.fail(&format!(
                            "member {i} finalized position {pos} before position {}",
                            self.finalized.len()
                        )));
                    }
                }
                Action::Halted(fork) => {
                    return Err(self.fail(&format!("honest member {i} halted: {fork}")));
                }
                Action::Resync { .. } => {
                    self.report.resync_asked += 1;
                    self.start_resync(i);
                }
            }
        }
        if let Some((healed, base)) = self.recovery {
            let all = (0..self.nodes.len()).all(|i| match &self.nodes[i] {
                Node::Honest(h) => !self.running(i) || h.finality > base,
                Node::Byz(_) => true,
            });
            if all {
                self.report.recoveries.push(self.now - healed);
                self.recovery = None;
            } else if self.now - healed > self.bound {
                return Err(self.not_recovered(healed));
            }
        }
        Ok(())
    }
}
