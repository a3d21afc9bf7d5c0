//! Requests to the signer: the signer task is the only user of the signer socket; the
//! loop and the connection tasks send it [`SignJob`]s.

use cvx_protocol::Signature;
use cvx_protocol::policy::{Refusal, Request};
use tokio::sync::{mpsc, oneshot};

use super::{Input, MainLoop};
use crate::clock::now;
use crate::consensus::{Event, RequestId};
use crate::error::NodeError;
use crate::signer_client::SignerClient;

/// A request to the signer task.
pub(super) struct SignJob {
    pub(super) request: Request,
    pub(super) reply: oneshot::Sender<Result<Result<Signature, Refusal>, String>>,
}

pub(super) async fn signer_task(mut signer: SignerClient, mut jobs: mpsc::Receiver<SignJob>) {
    while let Some(job) = jobs.recv().await {
        let r = signer.sign(job.request).await.map_err(|e| e.to_string());
        if let Err(e) = &r {
            tracing::error!(error = %e, "signer request failed");
        }
        let _ = job.reply.send(r);
    }
}

impl MainLoop {
    /// Hand a signature request of the consensus machine to the signer task; its answer
    /// comes back to the loop as [`Input::Signed`].
    pub(super) fn sign(&mut self, id: RequestId, request: Request) -> Result<(), NodeError> {
        self.sign_pending.insert(id);
        let (reply, rx) = oneshot::channel();
        if self
            .ctx
            .signer
            .try_send(SignJob { request, reply })
            .is_err()
        {
            self.metrics
                .signer_outcome(&Err("signer queue full".into()), None);
            let acts = self.peer.handle(
                now(),
                Event::SignatureReturned {
                    id,
                    result: Err(Refusal {
                        code: cvx_protocol::policy::RefuseCode::StateUnavailable,
                        detail: "signer queue full".into(),
                    }),
                },
            );
            self.carry_out(acts)?;
            return Ok(());
        }
        let inputs = self.ctx.inputs.clone();
        let metrics = self.metrics.clone();
        let asked = std::time::Instant::now();
        tokio::spawn(async move {
            let result = rx.await.unwrap_or_else(|_| Err("signer task gone".into()));
            metrics.signer_outcome(&result, Some(asked.elapsed()));
            let _ = inputs.send(Input::Signed { id, result }).await;
        });
        Ok(())
    }
}
