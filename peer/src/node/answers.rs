//! Answers: wire queries (`Query`), sync points for joining peers, the status, and the
//! HTTP API's answers.

use std::sync::atomic::Ordering;

use cvx_protocol::certificate::CertRequest;
use cvx_protocol::peer_wire::{Answer, Query, Status, SyncPoint};

use super::MainLoop;
use cvx_protocol::{Address, ErrorCode};
use tokio::sync::oneshot;

use super::MAX_API_WAITERS;
use crate::api::{ApiQuery, ApiReply};
use crate::error::NodeError;

/// How long an answered certificate is reused (`Query::Certificate`).
pub const CERT_REFRESH: std::time::Duration = std::time::Duration::from_millis(250);

impl MainLoop {
    pub(super) fn answer(&mut self, q: &Query) -> Answer {
        if let Query::Certificate = q {
            return Answer::Certificate(self.certificate());
        }
        let ledger = self.peer.ledger();
        match q {
            Query::Account(a) => Answer::Account(ledger.account(*a).cloned()),
            Query::Peer(k) => Answer::Peer(ledger.peer(k).cloned()),
            Query::Transaction(id) => Answer::Transaction(self.results.get(id).cloned()),
            Query::Status => Answer::Status(self.status()),
            Query::SyncPoint(at) => Answer::SyncPoint(self.sync_point(*at)),
            Query::Certificate => Answer::Certificate(None),
        }
    }

    /// The machine's finality certificate, recomputed at most every
    /// [`CERT_REFRESH`] (anyone may ask, and building one verifies up to 256 signatures).
    fn certificate(&mut self) -> Option<Box<CertRequest>> {
        let fresh = self
            .cert_cache
            .0
            .is_some_and(|t| t.elapsed() < CERT_REFRESH);
        if !fresh {
            self.cert_cache = (
                Some(std::time::Instant::now()),
                self.peer.certificate().map(Box::new),
            );
        }
        self.cert_cache.1.clone()
    }

    /// `None`: the newest persisted sync point (its tree is in the store). `Some(p)`: what
    /// this peer finalized at `p`, if it still remembers (with the root when persisted).
    fn sync_point(&self, at: Option<u64>) -> Option<SyncPoint> {
        let persisted = self.persist.sync_point();
        match at {
            None => persisted,
            Some(p) => {
                if let Some(sp) = persisted.filter(|sp| sp.position == p) {
                    return Some(sp);
                }
                let first = self.chain_log.front()?.0;
                let i = usize::try_from(p.checked_sub(first)?).ok()?;
                let (pos, chain, state_hash) = *self.chain_log.get(i)?;
                (pos == p).then_some(SyncPoint {
                    position: p,
                    chain,
                    state_hash,
                    root: None,
                })
            }
        }
    }

    /// Answer the HTTP API (one owner: the loop); `Wait` keeps `reply` until the
    /// transaction is finalized.
    pub(super) fn on_api(
        &mut self,
        q: ApiQuery,
        reply: oneshot::Sender<ApiReply>,
    ) -> Result<(), NodeError> {
        let ledger = self.peer.ledger();
        let answer = match q {
            ApiQuery::Status => ApiReply::Status {
                status: self.status(),
                network: self.ctx.shared.network,
            },
            ApiQuery::Account(n) => ApiReply::Account(ledger.account(Address(n)).cloned()),
            ApiQuery::Peer(k) => ApiReply::Peer(ledger.peer(&k).cloned()),
            ApiQuery::Tx(id) => ApiReply::Tx(self.results.get(&id).cloned()),
            ApiQuery::Metrics => ApiReply::Metrics(self.metrics()),
            ApiQuery::Events => ApiReply::Events(self.events.subscribe()),
            ApiQuery::Submit(file) => self.api_submit(*file)?,
            ApiQuery::Wait(id) => {
                if let Some(r) = self.results.get(&id) {
                    ApiReply::Tx(Some(r.clone()))
                } else if self.api_waiters.values().map(Vec::len).sum::<usize>() < MAX_API_WAITERS {
                    self.api_waiters.entry(id).or_default().push(reply);
                    return Ok(());
                } else {
                    ApiReply::Refused {
                        code: ErrorCode::Load,
                        detail: "too many requests waiting for results".into(),
                    }
                }
            }
        };
        let _ = reply.send(answer);
        Ok(())
    }

    /// Forget API waiters whose request has gone (timed out, client left), and
    /// submission times of transactions that never finalized here.
    pub(super) fn api_housekeeping(&mut self) {
        self.api_waiters.retain(|_, v| {
            v.retain(|w| !w.is_closed());
            !v.is_empty()
        });
        self.submitted_at
            .retain(|_, t| t.elapsed() < std::time::Duration::from_secs(600));
    }

    pub(super) fn status(&self) -> Status {
        let (proposal, consensus, finality) = self.peer.points();
        let outgoing = self.conns.values().filter(|c| c.dialed.is_some()).count();
        let incoming = self.conns.len() - outgoing;
        Status {
            peer: self.settings.key,
            proposal,
            consensus,
            finality,
            state_root: self.peer.ledger().state_hash(),
            in_consensus: self.ctx.shared.in_consensus.load(Ordering::Relaxed),
            outgoing: u32::try_from(outgoing).unwrap_or(u32::MAX),
            incoming: u32::try_from(incoming).unwrap_or(u32::MAX),
        }
    }
}

/// A status as one JSON object (counts only: never the list of connections).
#[must_use]
pub fn status_json(s: &Status) -> String {
    serde_json::json!({
        "peer": s.peer.to_hex(),
        "proposal": s.proposal,
        "consensus": s.consensus,
        "finality": s.finality,
        "state_root": s.state_root.to_hex(),
        "in_consensus": s.in_consensus,
        "outgoing": s.outgoing,
        "incoming": s.incoming,
    })
    .to_string()
}
