//! Client handling: transactions submitted by clients, checked at ingress (in the
//! connection task) and then queued for the consensus machine (in the loop).

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use cvx_protocol::ledger::SignedTransaction;
use cvx_protocol::peer_wire::Message;
use cvx_protocol::txfile::TxFile;
use cvx_protocol::{ErrorCode, Signable};

use super::{MAX_SEQUENCE_AHEAD, MainLoop, Shared, error_frame};
use crate::api::ApiReply;
use crate::clock::now;
use crate::error::NodeError;
use crate::net::FrameError;
use crate::signer_session::SignError;
use cvx_consensus::{ConnId, Event};

/// Pending client transactions timed for the finality-latency histogram at most.
pub const SUBMITTED_KEPT: usize = 200_000;

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
        // Once per connection, and a few connections per transaction (bounded memory).
        let w = self.waiting.entry(id).or_default();
        if !w.contains(&conn) && w.len() < super::MAX_WAITERS_PER_TX {
            w.push(conn);
        }
        self.note_submitted(id);
        let acts = self.peer.handle(now(), Event::Transaction(tx));
        self.carry_out(acts)
    }

    /// Remember when a client transaction arrived, for the finality-latency histogram
    /// (bounded: beyond [`SUBMITTED_KEPT`] pending ones, new ones are not timed).
    fn note_submitted(&mut self, id: cvx_protocol::Hash) {
        if self.submitted_at.len() < SUBMITTED_KEPT {
            self.submitted_at.entry(id).or_insert_with(Instant::now);
        }
    }

    /// `POST /v1/tx`: the same checks as a submission over the peer port (network, then
    /// origin, sequence and signature against the finalized ledger, then participation
    /// and load), then queued. Nothing is queued on a refusal.
    pub(super) fn api_submit(&mut self, file: TxFile) -> Result<ApiReply, NodeError> {
        let network = self.ctx.shared.network;
        let tx = file.signed;
        let id = tx.id();
        let refuse = |me: &Self, code, detail: String| {
            me.ctx
                .shared
                .refused_ingress
                .fetch_add(1, Ordering::Relaxed);
            Ok(ApiReply::Refused { code, detail })
        };
        if file.network != network {
            return refuse(
                self,
                ErrorCode::Signature,
                format!(
                    "the file was signed for network {}; this peer is on {}",
                    file.network.0.to_hex(),
                    network.0.to_hex()
                ),
            );
        }
        if self.results.contains_key(&id) {
            return Ok(ApiReply::Accepted(id));
        }
        if let Err(code) = check_tx(&self.ctx.shared, &tx) {
            let detail = match code {
                ErrorCode::Nobody => "the origin account does not exist".to_owned(),
                ErrorCode::Sequence => format!(
                    "the sequence must be the origin account's sequence + 1 (at most {MAX_SEQUENCE_AHEAD} ahead)"
                ),
                ErrorCode::Signature => {
                    "the signature does not verify under the origin account's current key"
                        .to_owned()
                }
                c => c.name().to_owned(),
            };
            return refuse(self, code, detail);
        }
        if let Some(e) = self.ctx.signer.health().failure() {
            return refuse(self, ErrorCode::Network, signer_down_detail(&e));
        }
        if !self.ctx.shared.in_consensus.load(Ordering::Relaxed) {
            return refuse(
                self,
                ErrorCode::Network,
                "this peer cannot take part in consensus now: submit through another peer or retry"
                    .into(),
            );
        }
        if self.peer.mempool_len() >= self.settings.max_queue
            || self.waiting.len() >= self.settings.max_queue
        {
            return refuse(
                self,
                ErrorCode::Load,
                "the transaction queue is full".into(),
            );
        }
        self.note_submitted(id);
        let acts = self.peer.handle(now(), Event::Transaction(tx));
        self.carry_out(acts)?;
        Ok(ApiReply::Accepted(id))
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
/// exists, the sequence is ahead (not too far), the signature verifies strictly (a success
/// is remembered, so execution does not verify it again: `cvx_consensus::verified`).
pub(super) fn check_tx(shared: &Shared, tx: &SignedTransaction) -> Result<(), ErrorCode> {
    check_txs(shared, std::slice::from_ref(tx))
        .pop()
        .unwrap_or(Err(ErrorCode::Signature))
}

/// Most transactions checked together at ingress (those a connection has already received
/// when the first is read: never a wait for more).
pub(super) const INGRESS_BATCH: usize = 64;

/// [`check_tx`] of many transactions at once, one answer each, in order: the cheap checks
/// first, then the signatures as one batch (`Verified::check_many`; on a failed batch each
/// on its own, so exactly the bad ones are refused with `SIGNATURE`). Every signature that
/// passes, in a batch or alone, is remembered, and execution does not check it again.
pub(super) fn check_txs(shared: &Shared, txs: &[SignedTransaction]) -> Vec<Result<(), ErrorCode>> {
    let state = shared.state();
    let mut out: Vec<Result<(), ErrorCode>> = Vec::with_capacity(txs.len());
    let mut items = Vec::with_capacity(txs.len());
    let mut at = Vec::with_capacity(txs.len());
    for (i, tx) in txs.iter().enumerate() {
        let cheap = state
            .account(tx.tx.origin)
            .ok_or(ErrorCode::Nobody)
            .and_then(|acc| {
                if tx.tx.sequence <= acc.sequence
                    || tx.tx.sequence > acc.sequence.saturating_add(MAX_SEQUENCE_AHEAD)
                {
                    Err(ErrorCode::Sequence)
                } else {
                    Ok(acc.key)
                }
            });
        match cheap {
            Ok(key) => {
                items.push((tx.tx.sign_bytes(&shared.network), key, &tx.signature));
                at.push(i);
                out.push(Ok(()));
            }
            Err(code) => out.push(Err(code)),
        }
    }
    for (i, ok) in at.into_iter().zip(state.verified().check_many(&items)) {
        if !ok {
            out[i] = Err(ErrorCode::Signature);
        }
    }
    out
}

/// `first` and the submissions that follow it already in `rd`'s buffer (at most
/// [`INGRESS_BATCH`] in all): complete frames only, so this never waits for the network.
/// The first other message (or frame error) read is handed back, to be handled next.
pub(super) async fn submit_batch<R: tokio::io::AsyncRead + Unpin>(
    rd: &mut tokio::io::BufReader<R>,
    first: SignedTransaction,
    idle: Duration,
) -> (
    Vec<SignedTransaction>,
    Option<Result<(Message, usize), FrameError>>,
) {
    let mut txs = vec![first];
    while txs.len() < INGRESS_BATCH && frame_buffered(rd.buffer()) {
        match crate::net::read_frame_sized(rd, idle, super::FRAME_BODY).await {
            Ok((Message::Submit(tx), _)) => txs.push(tx),
            other => return (txs, Some(other)),
        }
    }
    (txs, None)
}

/// Whether `buf` starts with a whole frame (header and body).
fn frame_buffered(buf: &[u8]) -> bool {
    buf.get(..4)
        .and_then(|h| cvx_protocol::peer_wire::frame_len([h[0], h[1], h[2], h[3]]))
        .is_some_and(|n| buf.len() >= 4 + n)
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;
    use std::sync::Arc;
    use std::time::Duration;

    use super::super::CLIENT_IDLE;
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

    fn submit(seq: u64) -> SignedTransaction {
        use cvx_protocol::ledger::{Action, Transaction};
        use cvx_protocol::{Address, Amount, Signature};
        SignedTransaction {
            tx: Transaction {
                origin: Address(1),
                sequence: seq,
                action: Action::Transfer {
                    to: Address(2),
                    amount: Amount::new(1).expect("amount"),
                },
            },
            signature: Signature([7; 64]),
        }
    }

    fn frames(msgs: &[Message]) -> Vec<u8> {
        msgs.iter()
            .flat_map(cvx_protocol::peer_wire::encode_frame)
            .collect()
    }

    /// The submissions already received are taken together; the first other message is
    /// handed back; a frame not yet complete is not waited for.
    #[tokio::test]
    async fn a_batch_is_what_is_already_buffered_and_never_waits() {
        use cvx_protocol::peer_wire::Query;
        let mut bytes = frames(&[
            Message::Submit(submit(2)),
            Message::Submit(submit(3)),
            Message::Query(Query::Status),
            Message::Submit(submit(4)),
        ]);
        let whole = frames(&[Message::Submit(submit(5))]);
        bytes.extend_from_slice(&whole[..whole.len() - 1]);
        // A reader that has all these bytes, then never ends: waiting would hang the test.
        let (mut tx, rx) = tokio::io::duplex(1 << 16);
        tokio::io::AsyncWriteExt::write_all(&mut tx, &bytes)
            .await
            .expect("write");
        let mut rd = tokio::io::BufReader::new(rx);
        // Fill the buffer the way the read loop does: by reading the first frame.
        let Ok(Message::Submit(first)) =
            crate::net::read_frame(&mut rd, CLIENT_IDLE, CLIENT_IDLE).await
        else {
            panic!("first frame");
        };
        let (txs, next) = submit_batch(&mut rd, first, CLIENT_IDLE).await;
        assert_eq!(txs, vec![submit(2), submit(3)]);
        assert!(matches!(next, Some(Ok((Message::Query(Query::Status), _)))));
        let Ok(Message::Submit(first)) =
            crate::net::read_frame(&mut rd, CLIENT_IDLE, CLIENT_IDLE).await
        else {
            panic!("fourth frame");
        };
        let (txs, next) = tokio::time::timeout(
            Duration::from_secs(30),
            submit_batch(&mut rd, first, CLIENT_IDLE),
        )
        .await
        .expect("submit_batch waited for an incomplete frame");
        assert_eq!(txs, vec![submit(4)]);
        assert!(next.is_none());
        drop(tx);
    }

    #[test]
    fn a_frame_counts_as_buffered_only_when_whole() {
        let f = frames(&[Message::Submit(submit(2))]);
        assert!(frame_buffered(&f));
        assert!(!frame_buffered(&f[..f.len() - 1]));
        assert!(!frame_buffered(&f[..3]));
        assert!(
            !frame_buffered(&[0, 0, 0, 0, 1]),
            "a zero length is no frame"
        );
    }
}
