//! The consensus machine's sign requests, through the signer session
//! ([`crate::signer_session`]): asked without a task per request (answers come back to
//! the loop on the session's [`Signed`] channel), and held while the session is down.
//!
//! Decision: a request the session cannot carry (signer unreachable, timed out, locked,
//! queue full) is **held and asked again once the session is up**, not turned into a
//! refusal. The machine keeps its one pending order and block, is never told a refusal
//! the signer did not make, does not churn new orders every 50 ms while no signer can sign
//! them, and resumes by itself after the reconnection. Asking again is safe: an identical
//! request the signer had already signed before the connection broke is answered as a
//! repeat with the identical signature. Only the signer's own answers (a signature, a
//! refusal with its code, `LOCKED`) reach the machine.

use std::sync::atomic::Ordering;
use std::time::Instant;

use cvx_protocol::policy::{Refusal, RefuseCode, Request};

use super::MainLoop;
use super::metrics::SignerOutcome;
use crate::clock::now;
use crate::error::NodeError;
use crate::signer_session::{SignError, Signed};
use cvx_consensus::{Event, RequestId};

impl MainLoop {
    /// Hand a sign request of the consensus machine to the signer session; its answer
    /// comes back to the loop as a [`Signed`]. Held while the session is not up.
    pub(super) fn sign(&mut self, id: RequestId, request: Request) {
        if !self.ctx.signer.is_up() {
            self.metrics.signer_outcome(&SignerOutcome::Failed, None);
            self.sign_held.push((id, request));
            return;
        }
        match self.ctx.signer.sign_tagged(id.0, request.clone()) {
            Ok(()) => {
                self.sign_pending.insert(id, (request, Instant::now()));
            }
            Err(_) => {
                self.metrics.signer_outcome(&SignerOutcome::Failed, None);
                self.sign_held.push((id, request));
            }
        }
    }

    /// An answer from the signer session.
    pub(super) fn on_signed(&mut self, s: Signed) -> Result<(), NodeError> {
        let id = RequestId(s.tag);
        let Some((request, asked)) = self.sign_pending.remove(&id) else {
            return Ok(());
        };
        let result = match s.result {
            Ok(sig) => Ok(sig),
            // The signer's own answers: the machine decides what next.
            Err(SignError::Refused { code, detail }) => Err(Refusal { code, detail }),
            Err(SignError::Locked) => Err(Refusal {
                code: RefuseCode::Locked,
                detail: "the signer is locked (breach button)".into(),
            }),
            // No answer: ask again once the session is up.
            Err(_) => {
                self.metrics.signer_outcome(&SignerOutcome::Failed, None);
                self.sign_held.push((id, request));
                return Ok(());
            }
        };
        let outcome = match &result {
            Ok(_) => SignerOutcome::Signed,
            Err(r) => SignerOutcome::Refused(r),
        };
        self.metrics.signer_outcome(&outcome, Some(asked.elapsed()));
        let acts = self
            .peer
            .handle(now(), Event::SignatureReturned { id, result });
        self.carry_out(acts)
    }

    /// The session went up or down: held requests go out at once when it is up;
    /// participation stops at once when it is down (housekeeping restores it).
    pub(super) fn on_signer_health(&mut self, up: bool) {
        if up {
            self.flush_held();
        } else if self.ctx.shared.in_consensus.swap(false, Ordering::Relaxed) {
            tracing::info!(in_consensus = false, "consensus participation changed");
        }
    }

    /// Ask again what was held, if the session is up.
    pub(super) fn flush_held(&mut self) {
        if self.ctx.signer.is_up() && !self.sign_held.is_empty() {
            for (id, request) in std::mem::take(&mut self.sign_held) {
                self.sign(id, request);
            }
        }
    }
}
