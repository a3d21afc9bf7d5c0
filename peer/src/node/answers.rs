//! Answers: wire queries (`Query`), sync points for joining peers, the status, and the
//! HTTP API's answers.

use std::sync::atomic::Ordering;

use cvx_protocol::peer_wire::{Answer, Query, Status, SyncPoint};

use super::MainLoop;
use crate::api::{ApiQuery, ApiReply};

impl MainLoop {
    pub(super) fn answer(&self, q: &Query) -> Answer {
        let ledger = self.peer.ledger();
        match q {
            Query::Account(a) => Answer::Account(ledger.account(*a).cloned()),
            Query::Peer(k) => Answer::Peer(ledger.peer(k).cloned()),
            Query::Transaction(id) => Answer::Transaction(self.results.get(id).cloned()),
            Query::Status => Answer::Status(self.status()),
            Query::SyncPoint(at) => Answer::SyncPoint(self.sync_point(*at)),
        }
    }

    /// `None`: the newest persisted sync point (its tree is in the store). `Some(p)`: what
    /// this peer finalized at `p`, if it still remembers (with the root when persisted).
    fn sync_point(&self, at: Option<u64>) -> Option<SyncPoint> {
        let persisted = self.persist.sync_point();
        match at {
            None => persisted.cloned(),
            Some(p) => {
                if let Some(sp) = persisted.filter(|sp| sp.position == p) {
                    return Some(sp.clone());
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

    #[allow(clippy::needless_pass_by_value)] // the submit arm consumes it once wired
    pub(super) fn api_answer(&self, q: ApiQuery) -> ApiReply {
        let ledger = self.peer.ledger();
        match q {
            ApiQuery::Status => ApiReply::Status {
                status: self.status(),
                network: self.ctx.shared.network,
            },
            ApiQuery::Account(n) => {
                ApiReply::Account(ledger.account(cvx_protocol::Address(n)).cloned())
            }
            ApiQuery::Peer(k) => ApiReply::Peer(ledger.peer(&k).cloned()),
            ApiQuery::Tx(id) => ApiReply::Tx(self.results.get(&id).cloned()),
            ApiQuery::Metrics => ApiReply::Metrics(self.metrics()),
            ApiQuery::Submit(_) | ApiQuery::Wait(_) | ApiQuery::Events => ApiReply::Refused {
                code: cvx_protocol::ErrorCode::State,
                detail: "not wired yet".into(),
            },
        }
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
