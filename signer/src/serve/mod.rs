//! Serving: the decision core ([`Signer`]) and the single-threaded poll loop ([`run`]).
//!
//! Group commit: each loop turn reads every complete request from every ready
//! connection, decides them in arrival order against the evolving watermark, makes
//! the resulting state durable with ONE pwrite + fdatasync, appends their audit
//! records, and only then signs and sends the replies. If the state cannot be made
//! durable, every sign request of the turn is refused with `STATE_UNAVAILABLE` and the
//! signer refuses all signing until restarted.

use std::time::Duration;

use cvx_protocol::certificate::{
    CertDecision, CertRequest, DEFAULT_TRUST_PERIOD_MS, TrustedTable, decide_certificate,
};
use cvx_protocol::policy::{Decision, Policy, RefuseCode, SignRequest, Watermark};
use cvx_protocol::signer_wire::{
    AuditEvent, CERTIFICATE_KIND, ClientMessage, SignerMessage, StateRecord, StatusReport,
    WIRE_VERSION,
};
use cvx_protocol::{Canonical, Hash, PublicKey, SignBytes, Signable, Signature, Timestamp};
use cvx_sandbox::Locked;
use ed25519_dalek::{Signer as _, SigningKey};

use crate::audit::AuditLog;
use crate::state::StateFile;
use crate::trust::TrustFile;

/// A request as read from a connection.
// Lives only for one loop turn, in one Vec: boxing would cost an allocation per request.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Incoming {
    /// A decoded request.
    Msg(ClientMessage),
    /// A complete frame that did not decode (hash of its payload, for the audit log).
    Malformed(Hash),
}

/// One queued request.
#[derive(Debug)]
pub struct Job {
    /// The client's uid (SO_PEERCRED).
    pub uid: u32,
    /// From an admin slot: only Hello, PublicKey, Status and Lock are served.
    pub admin: bool,
    /// The request.
    pub msg: Incoming,
}

#[allow(clippy::large_enum_variant)]
enum Step {
    Reply(SignerMessage, Option<AuditEvent>),
    Sign {
        sign_bytes: SignBytes,
        repeat: bool,
        uid: u32,
        kind: u8,
        value: Hash,
    },
    Lock(u32),
    Status,
    Certified {
        uid: u32,
        value: Hash,
        position: u64,
        moved: bool,
    },
}

/// The signer's decision core: policy, key, state, audit log, counters.
#[derive(Debug)]
pub struct Signer {
    policy: Policy,
    key: Locked<SigningKey>,
    state: StateFile,
    audit: AuditLog,
    watermark: Watermark,
    /// The trust file, when certificates are enabled (`genesis_file` configured).
    trust: Option<TrustFile>,
    locked: bool,
    signed: u64,
    refused: u64,
}

fn describe(body: &SignRequest) -> (u8, Hash) {
    match body {
        SignRequest::Block(h) => (
            <cvx_protocol::consensus::BlockHeader as Signable>::KIND.byte(),
            h.hash(),
        ),
        SignRequest::Order { order, .. } => (
            <cvx_protocol::consensus::Order as Signable>::KIND.byte(),
            order.hash(),
        ),
        SignRequest::ChallengeResponse(r) => (
            <cvx_protocol::consensus::ChallengeResponse as Signable>::KIND.byte(),
            r.hash(),
        ),
    }
}

impl Signer {
    /// Assemble the core from its checked parts.
    #[must_use]
    pub fn new(policy: Policy, key: Locked<SigningKey>, state: StateFile, audit: AuditLog) -> Self {
        let watermark = state.current().record.watermark.clone();
        let locked = state.current().record.locked;
        Self {
            policy,
            key,
            state,
            audit,
            watermark,
            trust: None,
            locked,
            signed: 0,
            refused: 0,
        }
    }

    /// Enable certificates: check them against the table in `trust` and keep it there.
    #[must_use]
    pub fn with_trust(mut self, trust: TrustFile) -> Self {
        self.trust = Some(trust);
        self
    }

    /// The trust file, if certificates are enabled.
    #[must_use]
    pub fn trust(&self) -> Option<&TrustFile> {
        self.trust.as_ref()
    }

    /// The signer's public key.
    #[must_use]
    pub fn public_key(&self) -> PublicKey {
        self.policy.key
    }

    /// True when locked.
    #[must_use]
    pub fn locked(&self) -> bool {
        self.locked
    }

    /// The state file (for its descriptor).
    #[must_use]
    pub fn state(&self) -> &StateFile {
        &self.state
    }

    /// The audit log (for its descriptor).
    #[must_use]
    pub fn audit(&self) -> &AuditLog {
        &self.audit
    }

    /// Append start-up records: a `Gap` when the log lacks the last commit's records,
    /// then `Start`. Synced at once.
    ///
    /// # Errors
    /// The OS error.
    pub fn record_start(&mut self, log_last_sequence: u64) -> std::io::Result<()> {
        let seq = self.state.current().sequence;
        let mut events = Vec::new();
        if log_last_sequence < seq {
            events.push((
                AuditEvent::Gap {
                    log_sequence: log_last_sequence,
                    state_sequence: seq,
                },
                seq,
            ));
        }
        events.push((
            AuditEvent::Start {
                public_key: self.policy.key,
            },
            seq,
        ));
        self.audit.append(events, crate::now())?;
        self.audit.sync_if_due(true)
    }

    /// Flush the audit log if a lazy sync is due.
    pub fn audit_tick(&mut self, force: bool) {
        if let Err(e) = self.audit.sync_if_due(force) {
            tracing::error!(error = %e, "audit log sync failed; refusing all signing from now on");
        }
    }

    /// How long until the audit log wants a sync.
    #[must_use]
    pub fn audit_due_in(&self) -> Option<Duration> {
        self.audit.sync_due_in()
    }

    fn status(&self, connections: u32) -> StatusReport {
        StatusReport {
            public_key: self.policy.key,
            network: self.policy.network,
            watermark: self.watermark.clone(),
            locked: self.locked,
            state_sequence: self.state.current().sequence,
            signed: self.signed,
            refused: self.refused,
            connections,
        }
    }

    /// One certificate in a batch: the policy on the batch's pending watermark and
    /// table, which it updates when the certificate is accepted.
    #[allow(clippy::too_many_arguments)]
    fn decide_certify(
        &self,
        req: &CertRequest,
        job: &Job,
        stop: bool,
        locked: bool,
        now: Timestamp,
        wm: &mut Watermark,
        trusted: &mut Option<TrustedTable>,
    ) -> Step {
        let uid = job.uid;
        let value = req.certificate.hash();
        let refusal = |code, detail: &str| {
            Step::Reply(
                SignerMessage::refused(code, detail),
                Some(AuditEvent::Refused {
                    uid,
                    kind: CERTIFICATE_KIND,
                    value,
                    code,
                }),
            )
        };
        if job.admin {
            return refusal(
                RefuseCode::Malformed,
                "an admin connection may only ask Hello, PublicKey, Status and Lock; certificates need a client slot",
            );
        }
        if stop {
            return refusal(
                RefuseCode::StateUnavailable,
                "the signer could not write its state, trust file or audit log earlier; it refuses all requests \
                 that change state until restarted (check the disk)",
            );
        }
        if locked {
            return refusal(
                RefuseCode::Locked,
                "the signer is locked (breach button); only `cvx-signer unlock` on the host lifts it",
            );
        }
        let Some(table) = trusted.as_ref() else {
            return refusal(
                RefuseCode::CertTableUnproven,
                "this signer has no trusted stake table: set genesis_file in its config to accept certificates",
            );
        };
        match decide_certificate(
            &self.policy.network,
            wm,
            table,
            req,
            now,
            DEFAULT_TRUST_PERIOD_MS,
        ) {
            CertDecision::Allow {
                watermark,
                trusted: t,
                moved,
            } => {
                *wm = watermark;
                *trusted = Some(t);
                Step::Certified {
                    uid,
                    value,
                    position: req.certificate.anchor.position,
                    moved,
                }
            }
            CertDecision::Refuse(r) => refusal(r.code, &r.detail),
        }
    }

    /// Decide a batch of requests (group commit); one reply per job, in order.
    pub fn decide_batch(
        &mut self,
        jobs: &[Job],
        connections: u32,
        now: Timestamp,
    ) -> Vec<SignerMessage> {
        let stop = self.state.poisoned()
            || self.audit.failed()
            || self.trust.as_ref().is_some_and(TrustFile::poisoned);
        let mut wm = self.watermark.clone();
        let mut trusted = self.trust.as_ref().map(|t| t.trusted().clone());
        let mut locked = self.locked;
        let mut steps = Vec::with_capacity(jobs.len());
        for job in jobs {
            let uid = job.uid;
            let step = match &job.msg {
                Incoming::Msg(ClientMessage::Certify(req)) => {
                    self.decide_certify(req, job, stop, locked, now, &mut wm, &mut trusted)
                }
                Incoming::Msg(ClientMessage::Sign(req)) if job.admin => {
                    let (kind, value) = describe(&req.body);
                    Step::Reply(
                        SignerMessage::refused(
                            RefuseCode::Malformed,
                            "an admin connection (admin_uids, beyond the client cap) may only ask \
                             Hello, PublicKey, Status and Lock; sign requests need a client slot",
                        ),
                        Some(AuditEvent::Refused {
                            uid,
                            kind,
                            value,
                            code: RefuseCode::Malformed,
                        }),
                    )
                }
                Incoming::Malformed(h) => Step::Reply(
                    SignerMessage::refused(
                        RefuseCode::Malformed,
                        "the frame is not a valid ClientMessage encoding",
                    ),
                    Some(AuditEvent::Refused {
                        uid,
                        kind: 0,
                        value: *h,
                        code: RefuseCode::Malformed,
                    }),
                ),
                Incoming::Msg(ClientMessage::Hello { .. }) => Step::Reply(
                    SignerMessage::Hello {
                        version: WIRE_VERSION,
                        network: self.policy.network,
                        public_key: self.policy.key,
                    },
                    None,
                ),
                Incoming::Msg(ClientMessage::PublicKey) => {
                    Step::Reply(SignerMessage::PublicKey(self.policy.key), None)
                }
                Incoming::Msg(ClientMessage::Status) => Step::Status,
                Incoming::Msg(ClientMessage::Lock) => {
                    locked = true;
                    Step::Lock(uid)
                }
                Incoming::Msg(ClientMessage::Sign(req)) => {
                    let (kind, value) = describe(&req.body);
                    let refusal = |code, detail: &str| {
                        Step::Reply(
                            SignerMessage::refused(code, detail),
                            Some(AuditEvent::Refused {
                                uid,
                                kind,
                                value,
                                code,
                            }),
                        )
                    };
                    if stop {
                        refusal(
                            RefuseCode::StateUnavailable,
                            "the signer could not write its state or audit log earlier; it refuses all signing until \
                             restarted (check the disk)",
                        )
                    } else if locked {
                        refusal(
                            RefuseCode::Locked,
                            "the signer is locked (breach button); only `cvx-signer unlock` on the host lifts it",
                        )
                    } else {
                        match self.policy.decide(&wm, req, now) {
                            Decision::Allow {
                                watermark,
                                sign_bytes,
                                repeat,
                            } => {
                                wm = watermark;
                                Step::Sign {
                                    sign_bytes,
                                    repeat,
                                    uid,
                                    kind,
                                    value,
                                }
                            }
                            Decision::Refuse(r) => refusal(r.code, &r.detail),
                        }
                    }
                }
            };
            steps.push(step);
        }

        let mut durable = true;
        if let (Some(file), Some(t)) = (self.trust.as_mut(), trusted)
            && *file.trusted() != t
            && let Err(e) = file.commit(t)
        {
            tracing::error!(error = %e, path = %file.path().display(),
                "trust file write failed: nothing in this batch is signed, and the signer refuses all signing until restarted");
            durable = false;
        }
        if !durable {
            // Nothing of this batch may become durable after a failed trust write.
        } else if wm != self.watermark || locked != self.locked {
            let record = StateRecord {
                network: self.policy.network,
                locked,
                audit: self.audit.durable_head(),
                watermark: wm.clone(),
            };
            match self.state.commit(record) {
                Ok(()) => {
                    self.watermark = wm;
                    self.locked = locked;
                }
                Err(e) => {
                    tracing::error!(error = %e, path = %self.state.path().display(),
                        "state write failed: nothing in this batch is signed, and the signer refuses all signing until restarted");
                    durable = false;
                }
            }
        }

        let seq = self.state.current().sequence;
        let unavailable =
            |detail: &str| SignerMessage::refused(RefuseCode::StateUnavailable, detail);
        let mut replies = Vec::with_capacity(steps.len());
        let mut events = Vec::new();
        let mut signed_at = Vec::new();
        for step in steps {
            let reply = match step {
                Step::Reply(m, ev) => {
                    events.extend(ev);
                    m
                }
                Step::Status => SignerMessage::Status(self.status(connections)),
                Step::Lock(uid) if durable => {
                    events.push(AuditEvent::Lock { uid });
                    SignerMessage::Locked
                }
                Step::Lock(_) => unavailable(
                    "the lock could not be made durable; the signer refuses all signing until restarted",
                ),
                Step::Certified {
                    uid,
                    value,
                    position,
                    moved,
                } if durable => {
                    events.push(AuditEvent::Certified {
                        uid,
                        value,
                        position,
                        moved,
                    });
                    SignerMessage::Certified {
                        moved,
                        watermark: self.watermark.clone(),
                    }
                }
                Step::Certified { uid, value, .. } => {
                    events.push(AuditEvent::Refused {
                        uid,
                        kind: CERTIFICATE_KIND,
                        value,
                        code: RefuseCode::StateUnavailable,
                    });
                    unavailable(
                        "the new watermark or trusted table could not be made durable (disk error); nothing changed",
                    )
                }
                Step::Sign {
                    uid, kind, value, ..
                } if !durable => {
                    events.push(AuditEvent::Refused {
                        uid,
                        kind,
                        value,
                        code: RefuseCode::StateUnavailable,
                    });
                    unavailable(
                        "the new watermark could not be made durable (disk error); nothing was signed",
                    )
                }
                Step::Sign {
                    sign_bytes,
                    repeat,
                    uid,
                    kind,
                    value,
                } => {
                    let sig = self.key.sign(sign_bytes.as_bytes());
                    events.push(AuditEvent::Signed {
                        uid,
                        kind,
                        value,
                        repeat,
                    });
                    signed_at.push(replies.len());
                    SignerMessage::Signed {
                        signature: Signature(sig.to_bytes()),
                        repeat,
                    }
                }
            };
            replies.push(reply);
        }
        if let Err(e) = self.audit.append(events.into_iter().map(|e| (e, seq)), now) {
            tracing::error!(error = %e, path = %self.audit.path().display(),
                "audit append failed: withholding this batch's signatures and refusing all signing until restarted");
            for i in signed_at.drain(..) {
                replies[i] = unavailable(
                    "the decision could not be written to the audit log; the signature was withheld",
                );
            }
        }
        for r in &replies {
            match r {
                SignerMessage::Signed { .. } => self.signed += 1,
                SignerMessage::Refused { .. } => self.refused += 1,
                _ => {}
            }
        }
        replies
    }
}

mod poll;
pub use poll::{ADMIN_SLOTS, Limits, ServeError, Uids, run};

#[cfg(test)]
mod tests;
