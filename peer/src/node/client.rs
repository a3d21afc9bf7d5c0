//! Client handling: transactions submitted by clients, checked at ingress (in the
//! connection task) and then queued for the consensus machine (in the loop).

use std::sync::atomic::Ordering;

use cvx_protocol::ErrorCode;
use cvx_protocol::ledger::SignedTransaction;
use cvx_protocol::peer_wire::Message;

use super::{MAX_SEQUENCE_AHEAD, MainLoop, Shared};
use crate::clock::now;
use crate::error::NodeError;
use cvx_consensus::{ConnId, Event};

impl MainLoop {
    pub(super) fn on_submit(
        &mut self,
        conn: ConnId,
        tx: SignedTransaction,
    ) -> Result<(), NodeError> {
        let id = tx.id();
        let refuse = |me: &Self, code| {
            me.ctx
                .shared
                .refused_ingress
                .fetch_add(1, Ordering::Relaxed);
            me.send(
                conn,
                &Message::Submitted {
                    id,
                    result: Err(code),
                },
            );
        };
        if let Some(r) = self.results.get(&id) {
            self.send(
                conn,
                &Message::Submitted {
                    id,
                    result: Ok(r.clone()),
                },
            );
            return Ok(());
        }
        if !self.ctx.shared.in_consensus.load(Ordering::Relaxed) {
            refuse(self, ErrorCode::Network);
            return Ok(());
        }
        if self.peer.mempool_len() >= self.settings.max_queue
            || self.waiting.len() >= self.settings.max_queue
        {
            refuse(self, ErrorCode::Load);
            return Ok(());
        }
        self.waiting.entry(id).or_default().push(conn);
        let acts = self.peer.handle(now(), Event::Transaction(tx));
        self.carry_out(acts)
    }
}

/// Ingress check of a client transaction against the finalized ledger: the origin
/// exists, the sequence is ahead (not too far), the signature verifies strictly.
pub(super) fn check_tx(shared: &Shared, tx: &SignedTransaction) -> Result<(), ErrorCode> {
    let state = shared.state();
    let acc = state.account(tx.tx.origin).ok_or(ErrorCode::Nobody)?;
    if tx.tx.sequence <= acc.sequence
        || tx.tx.sequence > acc.sequence.saturating_add(MAX_SEQUENCE_AHEAD)
    {
        return Err(ErrorCode::Sequence);
    }
    acc.key
        .verify(&shared.network, &tx.tx, &tx.signature)
        .map_err(|_| ErrorCode::Signature)
}
