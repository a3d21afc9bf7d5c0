//! Housekeeping, every 250 ms: followers promoted once staked, whether this peer takes
//! part in consensus, stall reports, store garbage collection, and the outgoing
//! connections (rotation and dialling).

use std::collections::HashSet;
use std::sync::atomic::Ordering;

use cvx_protocol::PublicKey;
use cvx_protocol::peer_wire::Message;

use super::connection::dial;
use super::{HEARD_WINDOW_MS, INPUT_BYTES, MainLoop};
use crate::clock::now;
use crate::conn::Candidate;
use cvx_consensus::ConnId;

impl MainLoop {
    /// Every [`super::TRUST_REFRESH_EVERY`] (and once soon after start), present a
    /// certificate of this peer's own view to its signer: it never moves the lock (the
    /// anchor is at or below it) but re-confirms the signer's trusted stake table, so the
    /// 14-day trust period never runs out on a signer that runs (docs/consensus.md §7.5).
    fn refresh_trust(&mut self) {
        if self
            .trust_refreshed
            .is_some_and(|t| t.elapsed() < super::TRUST_REFRESH_EVERY)
        {
            return;
        }
        let Some(req) = self.peer.certificate() else {
            return;
        };
        self.trust_refreshed = Some(std::time::Instant::now());
        let signer = self.ctx.signer.clone();
        tokio::spawn(async move {
            let position = req.certificate.anchor.position;
            match signer.certify(req).await {
                Ok((moved, _)) => tracing::info!(
                    position,
                    moved,
                    "the signer's trusted stake table was re-confirmed by a certificate"
                ),
                Err(e) => tracing::warn!(
                    position,
                    error = %e,
                    "the signer did not re-confirm its trusted stake table (a later resync needs it within the trust period; docs/operations.md, Recovery)"
                ),
            }
        });
    }

    /// Candidates for outgoing connections: hosts registered on-chain for staked peers
    /// (not ourselves), and the operator's bootstrap hosts.
    pub(super) fn candidates(&self) -> Vec<Candidate> {
        let ledger = self.peer.ledger();
        let mut v: Vec<Candidate> = ledger
            .peers()
            .filter(|p| p.key != self.settings.key && !p.stake.is_zero())
            .filter_map(|p| {
                p.host.as_ref().map(|h| Candidate {
                    host: h.as_str().to_owned(),
                    key: Some(p.key),
                    stake: p.stake.get(),
                })
            })
            .collect();
        let own_host = ledger
            .peer(&self.settings.key)
            .and_then(|p| p.host.as_ref().map(|h| h.as_str().to_owned()));
        let mean = if v.is_empty() {
            1
        } else {
            v.iter().map(|c| c.stake).sum::<u64>() / v.len() as u64
        };
        for b in &self.settings.bootstrap {
            if !v.iter().any(|c| &c.host == b) && own_host.as_deref() != Some(b.as_str()) {
                v.push(Candidate {
                    host: b.clone(),
                    key: None,
                    stake: mean,
                });
            }
        }
        v
    }

    pub(super) fn housekeeping(&mut self) {
        let t = now().0;
        self.gc.poll(self.persist.store());
        self.api_housekeeping();
        // Followers that the ledger has staked since they connected now count (and peers
        // whose stake was withdrawn stop counting).
        let ledger = self.peer.ledger();
        for c in self.conns.values_mut() {
            let Some(k) = c.proven else { continue };
            let stake = ledger.peer(&k).map_or(0, |p| p.stake.get());
            if stake > 0 && c.key.is_none() {
                tracing::info!(peer = %k, "a connected follower is staked now: its orders count");
                c.key = Some(k);
                if let Some(h) = &c.dialed {
                    self.manager.on_connected(t, h, stake);
                }
            } else if stake == 0 && c.key.is_some() {
                c.key = None;
            }
        }
        // Taking part: the stake of peers heard recently, with our own, reaches the
        // consensus threshold (2/3 of the total).
        let ledger = self.peer.ledger();
        let total: u128 = ledger.peers().map(|p| u128::from(p.stake.get())).sum();
        let mut heard: HashSet<PublicKey> = self
            .conns
            .values()
            .filter(|c| t.saturating_sub(c.heard_ms) <= HEARD_WINDOW_MS)
            .filter_map(|c| c.key)
            .collect();
        heard.insert(self.settings.key);
        let have: u128 = heard
            .iter()
            .filter_map(|k| ledger.peer(k))
            .map(|p| u128::from(p.stake.get()))
            .sum();
        // Without a signer it can neither order nor prove: it does not take part.
        let ok = total > 0 && have * 3 > total * 2 && self.ctx.signer.is_up();
        self.flush_held();
        // A stall while taking part: say why, at most every 5 s (docs/operations.md).
        let fin = self.peer.points().2;
        if fin != self.stall.0 {
            self.stall = (fin, t, t);
        } else if ok
            && self.peer.has_work_pending()
            && t.saturating_sub(self.stall.1) >= 3_000
            && t.saturating_sub(self.stall.2) >= 5_000
        {
            self.stall.2 = t;
            tracing::warn!(
                finality = fin,
                stalled_ms = t - self.stall.1,
                report = %self.peer.stall_report(),
                "finality is not advancing"
            );
        }
        let was = self.ctx.shared.in_consensus.swap(ok, Ordering::Relaxed);
        if was != ok {
            tracing::info!(in_consensus = ok, "consensus participation changed");
        }
        if ok {
            self.refresh_trust();
        }
        // Outgoing connections.
        let cands = self.candidates();
        if let Some(victim) = self.manager.rotate(t, &cands) {
            let ids: Vec<ConnId> = self
                .conns
                .iter()
                .filter(|(_, c)| c.dialed.as_deref() == Some(victim.as_str()))
                .map(|(id, _)| *id)
                .collect();
            for id in ids {
                self.send(id, &Message::Goodbye);
                self.conns.remove(&id);
            }
            self.manager.on_closed(&victim);
        }
        for host in self.manager.plan(t, &cands) {
            let expect = cands.iter().find(|c| c.host == host).and_then(|c| c.key);
            tokio::spawn(dial(host, expect, self.ctx.clone()));
        }
    }
}

impl MainLoop {
    /// Lengths of every bounded queue, map and cache of the peer (the `queue_length`
    /// gauge; docs/operations.md, "Memory limits").
    pub(super) fn queue_lengths(&self) -> Vec<(&'static str, usize)> {
        let h = self.peer.held();
        let write_frames: usize = self.conns.values().map(|c| c.tx.frames()).sum();
        vec![
            (
                "inputs",
                self.ctx.inputs.max_capacity() - self.ctx.inputs.capacity(),
            ),
            ("write_frames", write_frames),
            (
                "write_bytes",
                self.ctx.shared.write.bytes.load(Ordering::Relaxed),
            ),
            (
                "input_bytes",
                (INPUT_BYTES / 1024 - self.ctx.shared.input_budget.available_permits()) * 1024,
            ),
            ("connections", self.conns.len()),
            ("waiting", self.waiting.len()),
            ("results", self.results.len()),
            ("submitted_at", self.submitted_at.len()),
            ("api_waiters", self.api_waiters.len()),
            ("sign_pending", self.sign_pending.len()),
            ("sign_held", self.sign_held.len()),
            ("chain_log", self.chain_log.len()),
            ("mempool", self.peer.mempool_len()),
            ("mempool_queue", h.mempool_queue),
            ("blocks", h.blocks),
            ("block_txs", h.block_txs),
            ("requested", h.requested),
            ("recent_final", h.recent_final),
            ("orders", h.orders),
        ]
    }
}
