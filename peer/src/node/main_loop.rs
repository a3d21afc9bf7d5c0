//! The main loop: the only owner of the consensus machine. It takes inputs from the
//! connection tasks, the signer session, the timers and the HTTP API, and carries out the
//! machine's actions.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use cvx_protocol::ledger::{TxOutcome, TxResult};
use cvx_protocol::peer_wire::Message;
use cvx_protocol::{BoundedVec, ErrorCode, PublicKey};
use tokio::sync::mpsc;

use super::{CHAIN_LOG, ConnState, Input, MAX_FOLLOWERS, MainLoop, RESULTS_KEPT};
use crate::api::{ApiReply, ApiRequest};
use crate::clock::now;
use crate::conn::ConnManager;
use crate::error::NodeError;
use crate::net;
use crate::signer_session::Signed;
use cvx_consensus::ledger::BlockOutcome;
use cvx_consensus::{self as consensus, Action, ConnId, Event};

impl MainLoop {
    pub(super) async fn run(
        mut self,
        mut inputs: mpsc::Receiver<Input>,
        mut api: mpsc::Receiver<ApiRequest>,
        mut signed: mpsc::Receiver<Signed>,
        shutdown: impl Future<Output = ()> + Send,
    ) -> Result<(), NodeError> {
        let mut signer_health = self.ctx.signer.watch();
        self.manager = ConnManager::new(self.settings.target_outgoing, {
            let mut s = [0u8; 8];
            let _ = getrandom::fill(&mut s);
            u64::from_le_bytes(s)
        });
        // The machine's timers (the order gap, the block pace) are checked at every event
        // and at this tick; a 1-ms tick (tokio's timer resolution) rather than 5 ms took
        // 3-4 ms off idle finality, for about 2% of a core per peer at no load
        // (docs/operations.md, "Idle latency").
        let mut tick = tokio::time::interval(Duration::from_millis(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let mut slow = tokio::time::interval(Duration::from_millis(250));
        slow.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                () = &mut shutdown => break,
                Some(input) = inputs.recv() => {
                    let mut batch = vec![input];
                    while batch.len() < 4096 {
                        match inputs.try_recv() {
                            Ok(i) => batch.push(i),
                            Err(_) => break,
                        }
                    }
                    for i in batch {
                        self.on_input(i)?;
                    }
                }
                _ = tick.tick() => {
                    let acts = self.peer.handle(now(), Event::Tick);
                    self.carry_out(acts)?;
                }
                Some(s) = signed.recv() => self.on_signed(s)?,
                Ok(()) = signer_health.changed() => {
                    let up = signer_health.borrow_and_update().is_up();
                    self.on_signer_health(up);
                }
                _ = slow.tick() => self.housekeeping(),
                Some((q, reply)) = api.recv() => self.on_api(q, reply)?,
            }
            // Answers to the old machine's sign requests (the session answers in order,
            // so every one has arrived by now): its request ids mean nothing to the
            // restored machine.
            if let Some((finality, network_finality)) = self.resync.take()
                && self.resync(finality, network_finality).await
            {
                while signed.try_recv().is_ok() {}
            }
        }
        let st = self.peer.stats();
        tracing::info!(
            orders_signed = st.orders_signed,
            proposals_held = st.proposals_held,
            blocks_signed = st.blocks_signed,
            finalized_tx = self.finalized_tx,
            signature_checks = self.ctx.shared.state().verified().verifications(),
            "shutting down: goodbye to peers, checkpoint, close"
        );
        let bye = Arc::new(cvx_protocol::peer_wire::encode_frame(&Message::Goodbye));
        for c in self.conns.values() {
            let _ = c.tx.try_send(Arc::clone(&bye));
        }
        self.persist.finish(&self.peer.snapshot())?;
        tokio::time::sleep(Duration::from_millis(100)).await;
        Ok(())
    }

    pub(super) fn send(&self, conn: ConnId, m: &Message) {
        if let Some(c) = self.conns.get(&conn) {
            let _ =
                c.tx.try_send(Arc::new(cvx_protocol::peer_wire::encode_frame(m)));
        }
    }

    fn on_input(&mut self, input: Input) -> Result<(), NodeError> {
        match input {
            Input::Opened { conn, tx, dialed } => {
                self.conns.insert(
                    conn,
                    ConnState {
                        tx,
                        key: None,
                        proven: None,
                        dialed,
                        heard_ms: now().0,
                        known: net::delta::Known::default(),
                    },
                );
            }
            Input::Proven { conn, key } => {
                let staked = self
                    .peer
                    .ledger()
                    .peer(&key)
                    .is_some_and(|p| !p.stake.is_zero());
                let followers = self
                    .conns
                    .values()
                    .filter(|c| c.proven.is_some() && c.key.is_none())
                    .count();
                if let Some(c) = self.conns.get_mut(&conn) {
                    if staked || followers < MAX_FOLLOWERS {
                        c.proven = Some(key);
                    }
                    if staked {
                        c.key = Some(key);
                        if let Some(h) = &c.dialed {
                            let stake = self.peer.ledger().peer(&key).map_or(0, |p| p.stake.get());
                            self.manager.on_connected(now().0, h, stake);
                        }
                        tracing::debug!(conn = conn.0, peer = %key, "peer proved its key");
                    } else {
                        tracing::debug!(
                            conn = conn.0,
                            "proof of an unstaked key: a follower (beliefs sent, not counted)"
                        );
                    }
                }
            }
            Input::Wire { conn, msg, .. } => self.on_wire(conn, msg)?,
            Input::Submit { conn, tx, .. } => self.on_submit(conn, tx)?,
            Input::Closed { conn } => {
                if let Some(c) = self.conns.remove(&conn)
                    && let Some(h) = c.dialed
                {
                    self.manager.on_failed(now().0, &h);
                }
                self.waiting.retain(|_, v| {
                    v.retain(|c| *c != conn);
                    !v.is_empty()
                });
            }
            Input::DialFailed { host } => self.manager.on_failed(now().0, &host),
        }
        Ok(())
    }

    fn on_wire(&mut self, conn: ConnId, msg: Message) -> Result<(), NodeError> {
        let Some(c) = self.conns.get_mut(&conn) else {
            return Ok(());
        };
        c.heard_ms = now().0;
        let is_peer = c.key.is_some();
        let cmsg = match msg {
            Message::Query(q) => {
                let a = self.answer(&q);
                self.send(conn, &Message::Answer(a));
                return Ok(());
            }
            // Beliefs count only from proven, staked peers; block and id requests are
            // served to anyone (they are public data).
            Message::Belief(b) if is_peer => {
                c.known.received(&b.orders);
                consensus::Message::Belief(b)
            }
            Message::Block(b) if is_peer => consensus::Message::Block(Arc::new(b)),
            Message::GetBlocks(ids) => consensus::Message::GetBlocks(ids.into_vec()),
            Message::GetBlockIds { from, .. } => consensus::Message::GetChain(from),
            Message::BlockIds { from, ids } if is_peer => consensus::Message::Chain {
                start: from,
                ids: ids.into_vec(),
            },
            _ => return Ok(()),
        };
        let acts = self.peer.handle(
            now(),
            Event::Message {
                from: conn,
                msg: cmsg,
            },
        );
        self.carry_out(acts)
    }

    pub(super) fn carry_out(&mut self, acts: Vec<Action>) -> Result<(), NodeError> {
        for a in acts {
            match a {
                Action::Sign { id, request } => self.sign(id, request),
                Action::Broadcast(consensus::Message::Belief(b)) => {
                    // Deltas: each connection gets the orders it does not hold yet (and
                    // the whole belief every few seconds); one encoding per distinct set.
                    let t = now().0;
                    let mut frames: HashMap<Vec<(PublicKey, u64)>, Arc<Vec<u8>>> = HashMap::new();
                    let total = b.orders.len() as u64;
                    for c in self.conns.values_mut().filter(|c| c.proven.is_some()) {
                        let Some(d) = c.known.outgoing(&b, t) else {
                            self.ctx
                                .shared
                                .belief_orders_saved
                                .fetch_add(total, Ordering::Relaxed);
                            continue;
                        };
                        let n = d.orders.len() as u64;
                        self.ctx
                            .shared
                            .belief_orders_sent
                            .fetch_add(n, Ordering::Relaxed);
                        self.ctx
                            .shared
                            .belief_orders_saved
                            .fetch_add(total - n, Ordering::Relaxed);
                        let sig: Vec<(PublicKey, u64)> = d
                            .orders
                            .iter()
                            .map(|s| (s.order.peer, s.order.timestamp.0))
                            .collect();
                        let frame = frames.entry(sig).or_insert_with(|| {
                            Arc::new(cvx_protocol::peer_wire::encode_frame(&Message::Belief(d)))
                        });
                        let _ = c.tx.try_send(Arc::clone(frame));
                    }
                }
                Action::Broadcast(m) => {
                    let frame = Arc::new(cvx_protocol::peer_wire::encode_frame(&to_wire(m)));
                    for c in self.conns.values().filter(|c| c.proven.is_some()) {
                        let _ = c.tx.try_send(Arc::clone(&frame));
                    }
                }
                Action::Send { to, msg } => self.send(to, &to_wire(msg)),
                Action::Persist(snap) => self.persist.submit(snap)?,
                Action::Finalized(f) => self.on_finalized(&f),
                Action::Halted(fork) => {
                    tracing::error!(?fork, "fork detected: consensus halted");
                    return Err(NodeError::Halted(format!("{fork:?}")));
                }
                // Carried out by the loop once this batch is done ([`MainLoop::resync`]).
                Action::Resync {
                    finality,
                    network_finality,
                } => self.resync = Some((finality, network_finality)),
            }
        }
        Ok(())
    }

    /// The machine cannot catch up from orders (`Action::Resync`): sync to the network
    /// ([`super::join::sync_to_network`]: certificate, state, signer commit) and restore
    /// the machine there, without restarting the process. Not in consensus meanwhile
    /// (clients get NETWORK). A failure is logged and the old machine goes on (it asks
    /// again). True when the machine was replaced.
    async fn resync(&mut self, finality: u64, network_finality: u64) -> bool {
        let t0 = std::time::Instant::now();
        if self.ctx.shared.in_consensus.swap(false, Ordering::Relaxed) {
            tracing::info!(in_consensus = false, "consensus participation changed");
        }
        // The loop serves nothing until this returns: the HTTP API refuses submissions
        // itself meanwhile (cleared on every way out).
        let _resyncing = Flag::raise(Arc::clone(&self.ctx.shared.resyncing));
        let from = self.peer.ledger().height();
        let min_stake = self.cfg.genesis.params.min_stake.get();
        let mut sources = super::join::sources(&self.settings, self.peer.ledger(), min_stake);
        for h in self.conns.values().filter_map(|c| c.dialed.as_ref()) {
            if !sources.contains(h) {
                sources.push(h.clone());
            }
        }
        // The checkpoint writer finishes first: the synced state is written after anything
        // it had, never before.
        let persist = match self.persist.pause() {
            Ok(p) => p,
            Err(e) => {
                // The next snapshot returns the same error, which stops the peer.
                tracing::error!(error = %e, "resync: the store cannot be written");
                return false;
            }
        };
        let snap = match super::join::sync_to_network(
            &self.settings,
            &sources,
            &self.cfg,
            persist,
            (&self.ctx.signer, super::join::RESYNC_WAIT),
        )
        .await
        {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(
                    finality,
                    network_finality,
                    error = %e,
                    "resync failed; the consensus machine asks again"
                );
                return false;
            }
        };
        let to = snap.ledger.height();
        self.sign_pending.clear();
        self.sign_held.clear();
        self.restart_machine(snap);
        tracing::info!(
            from,
            to,
            network_finality,
            elapsed_ms = u64::try_from(t0.elapsed().as_millis()).unwrap_or(u64::MAX),
            "resynced from position {from} to {to} in {} ms",
            t0.elapsed().as_millis()
        );
        true
    }

    /// Replace the machine by one restored from `snap` (a synced state).
    pub(super) fn restart_machine(&mut self, snap: consensus::Snapshot) {
        let height = snap.ledger.height();
        self.peer = consensus::Peer::restore(self.cfg.clone(), snap);
        self.synced_from = height;
        self.chain_log.clear();
        if let Some(c) = self.peer.chain_value_at(height) {
            self.chain_log
                .push_back((height, c, self.peer.ledger().state_hash()));
        }
        self.cert_cache = (None, None);
        if let Ok(mut g) = self.ctx.shared.state.write() {
            *g = Arc::new(self.peer.ledger().clone());
        }
    }

    fn on_finalized(&mut self, f: &consensus::Finalized) {
        let outcomes: Vec<TxOutcome> = match &f.outcome {
            BlockOutcome::Applied(o) => o.clone(),
            BlockOutcome::Rejected(_) => vec![TxOutcome::Failed(ErrorCode::State); f.tx_ids.len()],
        };
        for (i, (id, outcome)) in f.tx_ids.iter().zip(outcomes).enumerate() {
            let r = TxResult {
                id: *id,
                block_position: f.position,
                index: u32::try_from(i).unwrap_or(u32::MAX),
                outcome,
            };
            self.finalized_tx += 1;
            if let Some(conns) = self.waiting.remove(id) {
                let m = Message::Submitted {
                    id: *id,
                    result: Ok(r.clone()),
                };
                for c in conns {
                    self.send(c, &m);
                }
            }
            if let Some(waiters) = self.api_waiters.remove(id) {
                for w in waiters {
                    let _ = w.send(ApiReply::Tx(Some(r.clone())));
                }
            }
            if let Some(t) = self.submitted_at.remove(id) {
                self.metrics
                    .finality_latency
                    .observe(t.elapsed().as_secs_f64());
            }
            self.results.insert(*id, r);
            self.results_order.push_back(*id);
            while self.results_order.len() > RESULTS_KEPT {
                if let Some(old) = self.results_order.pop_front() {
                    self.results.remove(&old);
                }
            }
        }
        self.executed += 1;
        let height = f.position + 1;
        let chain = match self.chain_log.back() {
            Some((h, c, _)) if *h == f.position => Some(cvx_protocol::hash::chain_step(c, &f.id)),
            _ => self.peer.chain_value_at(height),
        };
        match chain {
            Some(c) => {
                self.chain_log.push_back((height, c, f.state_hash));
                while self.chain_log.len() > CHAIN_LOG {
                    self.chain_log.pop_front();
                }
            }
            None => self.chain_log.clear(),
        }
        if let Ok(mut g) = self.ctx.shared.state.write() {
            *g = Arc::new(self.peer.ledger().clone());
        }
        if self.events.receiver_count() > 0 {
            let (applied, rejected) = match &f.outcome {
                BlockOutcome::Applied(o) => (
                    o.iter().filter(|x| matches!(x, TxOutcome::Applied)).count(),
                    false,
                ),
                BlockOutcome::Rejected(_) => (0, true),
            };
            let ev = serde_json::json!({
                "position": f.position,
                "id": f.id.to_hex(),
                "state_hash": f.state_hash.to_hex(),
                "transactions": f.tx_ids.len(),
                "applied": applied,
                "rejected": rejected,
            });
            let _ = self.events.send(Arc::from(ev.to_string()));
        }
    }
}

fn to_wire(m: consensus::Message) -> Message {
    match m {
        consensus::Message::Belief(b) => Message::Belief(b),
        consensus::Message::Block(b) => Message::Block(Arc::unwrap_or_clone(b)),
        consensus::Message::GetBlocks(mut ids) => {
            ids.truncate(cvx_protocol::peer_wire::MAX_REQUEST_IDS);
            Message::GetBlocks(BoundedVec::try_from_vec(ids).unwrap_or_default())
        }
        consensus::Message::GetChain(from) => Message::GetBlockIds {
            from,
            count: u32::try_from(cvx_protocol::peer_wire::MAX_BLOCK_IDS).unwrap_or(1024),
        },
        consensus::Message::Chain { start, mut ids } => {
            ids.truncate(cvx_protocol::peer_wire::MAX_BLOCK_IDS);
            Message::BlockIds {
                from: start,
                ids: BoundedVec::try_from_vec(ids).unwrap_or_default(),
            }
        }
    }
}

/// An [`AtomicBool`](std::sync::atomic::AtomicBool) set for as long as the value lives.
struct Flag(Arc<std::sync::atomic::AtomicBool>);

impl Flag {
    fn raise(flag: Arc<std::sync::atomic::AtomicBool>) -> Self {
        flag.store(true, Ordering::Relaxed);
        Self(flag)
    }
}

impl Drop for Flag {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Relaxed);
    }
}
