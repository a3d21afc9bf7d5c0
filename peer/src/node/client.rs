//! Client handling: transactions submitted by clients, checked at ingress (in the
//! connection task) and then queued for the consensus machine (in the loop).

use std::sync::atomic::Ordering;

use cvx_protocol::ErrorCode;
use cvx_protocol::ledger::SignedTransaction;
use cvx_protocol::peer_wire::Message;

use super::{MAX_SEQUENCE_AHEAD, MainLoop, Shared, error_frame};
use crate::clock::now;
use crate::error::NodeError;
use crate::signer_session::SignError;
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
        if let Some(e) = self.ctx.signer.health().failure() {
            // Say why: the code alone would read like a partition.
            self.send(
                conn,
                &error_frame(ErrorCode::Network, &signer_down_detail(&e)),
            );
            refuse(self, ErrorCode::Network);
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

/// What a client is told while the signer session is not up: NETWORK, and why (short,
/// and without the socket path or the key: a client needs what to do, not the host's
/// layout).
fn signer_down_detail(e: &SignError) -> String {
    let why = match e {
        SignError::Locked => {
            return "the peer's signer is locked (breach button) and signs nothing: submit through another peer".into();
        }
        SignError::Unreachable { source, .. } => source.to_string(),
        SignError::TimedOut(d) => format!("no answer within {d:?}"),
        SignError::Mismatch { what, .. } => format!("it holds another {what}"),
        e => e.code().to_lowercase(),
    };
    format!(
        "the peer's signer is unreachable ({why}); the peer reconnects by itself: submit through another peer meanwhile"
    )
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

#[cfg(test)]
mod tests {
    use std::path::PathBuf;
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;

    #[test]
    fn the_network_detail_names_the_signer_and_what_to_do_but_not_the_socket() {
        let e = SignError::Unreachable {
            path: PathBuf::from("/run/cvx-signer/secret-layout/signer.sock"),
            source: Arc::new(std::io::Error::from(std::io::ErrorKind::ConnectionRefused)),
        };
        let d = signer_down_detail(&e);
        assert!(d.starts_with("the peer's signer is unreachable ("), "{d}");
        assert!(d.contains("submit through another peer"), "{d}");
        assert!(!d.contains("/run/cvx-signer"), "{d}");
        let d = signer_down_detail(&SignError::Locked);
        assert!(d.starts_with("the peer's signer is locked"), "{d}");
        // The error frame's detail is cut at 200 characters: the advice must fit.
        for e in [
            e,
            SignError::Locked,
            SignError::TimedOut(Duration::from_secs(5)),
        ] {
            assert!(signer_down_detail(&e).chars().count() <= 200, "{e}");
        }
    }
}
