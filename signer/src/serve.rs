//! Serving: the decision core ([`Signer`]) and the single-threaded poll loop ([`run`]).
//!
//! Group commit: each loop turn reads every complete request from every ready
//! connection, decides them in arrival order against the evolving watermark, makes
//! the resulting state durable with ONE pwrite + fdatasync, appends their audit
//! records, and only then signs and sends the replies. If the state cannot be made
//! durable, every sign request of the turn is refused with `STATE_UNAVAILABLE` and the
//! signer refuses all signing until restarted.

use std::io::{Read, Write};
use std::os::fd::AsFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::time::{Duration, Instant};

use cvx_protocol::certificate::{
    CertDecision, CertRequest, DEFAULT_TRUST_PERIOD_MS, TrustedTable, decide_certificate,
};
use cvx_protocol::policy::{Decision, Policy, RefuseCode, SignRequest, Watermark};
use cvx_protocol::signer_wire::{
    AuditEvent, CERTIFICATE_KIND, ClientMessage, FRAME_HEADER, MAX_FRAME, SignerMessage,
    StateRecord, StatusReport, WIRE_VERSION, encode_frame, frame_len,
};
use cvx_protocol::{Canonical, Hash, PublicKey, SignBytes, Signable, Signature, Timestamp, hash};
use cvx_sandbox::Locked;
use ed25519_dalek::{Signer as _, SigningKey};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::socket::{SockFlag, accept4, getsockopt, sockopt};

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

/// Connections of `admin_uids` accepted beyond `max_connections`, in slots of their own
/// that only serve Hello, PublicKey, Status and Lock (the breach button that a client of
/// an allowed uid cannot starve by holding every client slot).
pub const ADMIN_SLOTS: usize = 4;

/// Serving limits.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Allowed client uids are checked separately; this caps simultaneous connections.
    pub max_connections: usize,
    /// A started frame must complete within this.
    pub read_timeout: Duration,
}

/// Most requests taken from one connection per loop turn (fairness).
const MAX_JOBS_PER_CONN: usize = 1024;
/// A client that does not read its replies is dropped beyond this backlog.
const MAX_OUTBOX: usize = 1 << 20;

#[derive(Debug)]
struct Conn {
    stream: UnixStream,
    uid: u32,
    /// In an admin slot (see [`ADMIN_SLOTS`]).
    admin: bool,
    inbuf: Vec<u8>,
    out: Vec<u8>,
    started: Option<Instant>,
    closing: bool,
    eof: bool,
    dead: bool,
    /// Complete frames left in `inbuf` (per-turn cap reached): serve next turn.
    backlog: bool,
}

/// Log at most a few lines per second for events a remote party can trigger.
#[derive(Debug)]
struct RateLimit {
    window: Instant,
    count: u32,
    suppressed: u32,
}

impl RateLimit {
    fn new() -> Self {
        Self {
            window: Instant::now(),
            count: 0,
            suppressed: 0,
        }
    }

    fn allow(&mut self) -> bool {
        if self.window.elapsed() >= Duration::from_secs(1) {
            if self.suppressed > 0 {
                tracing::warn!(
                    suppressed = self.suppressed,
                    "client warnings suppressed in the last second"
                );
            }
            self.window = Instant::now();
            self.count = 0;
            self.suppressed = 0;
        }
        self.count += 1;
        if self.count > 10 {
            self.suppressed += 1;
            false
        } else {
            true
        }
    }
}

/// Why serving stopped.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// poll failed.
    #[error("poll failed: {0}")]
    Poll(nix::Error),
}

impl Conn {
    /// Read what is available; queue complete frames as jobs.
    fn read_jobs(&mut self, jobs: &mut Vec<Job>, warn: &mut RateLimit) {
        let mut chunk = [0u8; 16 * 1024];
        let mut taken = 0;
        self.backlog = false;
        loop {
            // Parse complete frames first.
            while self.inbuf.len() >= FRAME_HEADER && taken < MAX_JOBS_PER_CONN {
                let header = [self.inbuf[0], self.inbuf[1], self.inbuf[2], self.inbuf[3]];
                let n = match frame_len(header) {
                    Ok(n) => n,
                    Err(e) => {
                        if warn.allow() {
                            tracing::warn!(uid = self.uid, error = %e, "closing a connection that sent a bad frame header");
                        }
                        self.dead = true;
                        return;
                    }
                };
                if self.inbuf.len() < FRAME_HEADER + n {
                    break;
                }
                let payload = &self.inbuf[FRAME_HEADER..FRAME_HEADER + n];
                let msg = match ClientMessage::decode(payload) {
                    Ok(m) => Incoming::Msg(m),
                    Err(e) => {
                        if warn.allow() {
                            tracing::warn!(uid = self.uid, error = %e, "malformed request; refusing and closing the connection");
                        }
                        self.closing = true;
                        Incoming::Malformed(hash(payload))
                    }
                };
                jobs.push(Job {
                    uid: self.uid,
                    admin: self.admin,
                    msg,
                });
                taken += 1;
                self.inbuf.drain(..FRAME_HEADER + n);
                if self.closing {
                    self.inbuf.clear();
                    break;
                }
            }
            self.started = if self.inbuf.is_empty() {
                None
            } else {
                Some(self.started.unwrap_or_else(Instant::now))
            };
            if self.inbuf.is_empty() && self.inbuf.capacity() > 64 * 1024 {
                self.inbuf = Vec::new();
            }
            if taken >= MAX_JOBS_PER_CONN {
                self.backlog = true;
                return;
            }
            if self.closing || self.eof {
                return;
            }
            // Never hold more than one frame (plus one chunk) per connection.
            if self.inbuf.len() > FRAME_HEADER + MAX_FRAME {
                return;
            }
            match (&self.stream).read(&mut chunk) {
                Ok(0) => {
                    self.eof = true;
                    return;
                }
                Ok(k) => self.inbuf.extend_from_slice(&chunk[..k]),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => {
                    self.dead = true;
                    return;
                }
            }
        }
    }

    fn flush(&mut self) {
        while !self.out.is_empty() {
            match (&self.stream).write(&self.out) {
                Ok(0) => {
                    self.dead = true;
                    return;
                }
                Ok(k) => {
                    self.out.drain(..k);
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => {
                    self.dead = true;
                    return;
                }
            }
        }
        if self.out.len() > MAX_OUTBOX {
            self.dead = true;
        }
    }
}

/// Who may connect: clients (`allowed_uids`) and operators (`admin_uids`).
#[derive(Clone, Copy, Debug)]
pub struct Uids<'a> {
    /// Client uids: may sign, within `max_connections`.
    pub allowed: &'a [u32],
    /// Operator uids: beyond the client cap, in [`ADMIN_SLOTS`] slots, never sign there.
    pub admin: &'a [u32],
}

fn accept_all(
    listener: &UnixListener,
    conns: &mut Vec<Conn>,
    uids: Uids<'_>,
    limits: &Limits,
    warn: &mut RateLimit,
) {
    for _ in 0..64 {
        let fd = match accept4(
            listener.as_fd(),
            SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC,
        ) {
            Ok(fd) => fd,
            Err(nix::errno::Errno::EAGAIN | nix::errno::Errno::EINTR) => return,
            Err(e) => {
                if warn.allow() {
                    tracing::warn!(error = %e, "accept failed");
                }
                return;
            }
        };
        // Credentials are checked before a single byte is read.
        let uid = match getsockopt(&fd, sockopt::PeerCredentials) {
            Ok(c) => c.uid(),
            Err(e) => {
                if warn.allow() {
                    tracing::warn!(error = %e, "SO_PEERCRED failed; closing");
                }
                continue;
            }
        };
        let (client, operator) = (uids.allowed.contains(&uid), uids.admin.contains(&uid));
        if !client && !operator {
            if warn.allow() {
                tracing::warn!(
                    uid,
                    "refused a connection from a uid not in allowed_uids (nor admin_uids)"
                );
            }
            continue;
        }
        let admins = conns.iter().filter(|c| c.admin).count();
        let clients = conns.len() - admins;
        // A uid in both lists takes a client slot while one is free, else an admin slot.
        let admin = if client && clients < limits.max_connections {
            false
        } else if operator && admins < ADMIN_SLOTS {
            true
        } else {
            if warn.allow() {
                tracing::warn!(
                    uid,
                    max = limits.max_connections,
                    admin_slots = ADMIN_SLOTS,
                    "connection cap reached; closing the new connection"
                );
            }
            continue;
        };
        conns.push(Conn {
            stream: UnixStream::from(fd),
            uid,
            admin,
            inbuf: Vec::new(),
            out: Vec::new(),
            started: None,
            closing: false,
            eof: false,
            dead: false,
            backlog: false,
        });
    }
}

/// The breach button by SIGUSR1 (root or the signer's own uid; see
/// `cvx_sandbox::harden::lock_on_sigusr1`): the same durable lock as a `Lock` request,
/// recorded as `Lock{uid}` with the sender's uid, decided before any request of the turn.
fn lock_by_signal(signer: &mut Signer, uid: u32, conns: &[Conn]) {
    let job = [Job {
        uid,
        admin: true,
        msg: Incoming::Msg(ClientMessage::Lock),
    }];
    let n = u32::try_from(conns.len()).unwrap_or(u32::MAX);
    match signer.decide_batch(&job, n, crate::now()).first() {
        Some(SignerMessage::Locked) => {
            tracing::warn!(
                uid,
                "locked by SIGUSR1 (breach button): every sign request is refused from now on"
            );
        }
        other => {
            tracing::error!(uid, reply = ?other, "SIGUSR1 lock could not be made durable; the signer refuses all signing until restarted");
        }
    }
}

/// Serve forever (single thread). Returns only on a fatal poll error.
///
/// # Errors
/// [`ServeError`].
pub fn run(
    listener: &UnixListener,
    signer: &mut Signer,
    uids: Uids<'_>,
    limits: Limits,
) -> Result<(), ServeError> {
    let mut conns: Vec<Conn> = Vec::new();
    let mut warn = RateLimit::new();
    let mut jobs = Vec::new();
    let mut revents = Vec::new();
    loop {
        let mut wait = signer.audit_due_in().unwrap_or(Duration::from_secs(1));
        for c in &conns {
            if let Some(s) = c.started {
                wait = wait.min(limits.read_timeout.saturating_sub(s.elapsed()));
            }
        }
        if conns.iter().any(|c| c.backlog) {
            wait = Duration::ZERO;
        }
        let wait_ms = u16::try_from(wait.as_millis().min(1000)).unwrap_or(1000);
        {
            let mut fds = Vec::with_capacity(conns.len() + 1);
            fds.push(PollFd::new(listener.as_fd(), PollFlags::POLLIN));
            for c in &conns {
                let mut ev = PollFlags::empty();
                if !c.closing && !c.eof {
                    ev |= PollFlags::POLLIN;
                }
                if !c.out.is_empty() {
                    ev |= PollFlags::POLLOUT;
                }
                fds.push(PollFd::new(c.stream.as_fd(), ev));
            }
            match poll(&mut fds, PollTimeout::from(wait_ms)) {
                Ok(_) | Err(nix::errno::Errno::EINTR) => {}
                Err(e) => return Err(ServeError::Poll(e)),
            }
            revents.clear();
            revents.extend(
                fds.iter()
                    .map(|f| f.revents().unwrap_or(PollFlags::empty())),
            );
        }
        if let Some(uid) = cvx_sandbox::harden::take_lock_request() {
            lock_by_signal(signer, uid, &conns);
        }
        let ready_in = PollFlags::POLLIN | PollFlags::POLLHUP | PollFlags::POLLERR;
        let mut owners = Vec::new();
        // Admin connections first: a Lock applies to every sign request of its turn.
        for admin_pass in [true, false] {
            for (i, c) in conns.iter_mut().enumerate() {
                if c.admin != admin_pass {
                    continue;
                }
                if c.backlog || revents.get(i + 1).is_some_and(|r| r.intersects(ready_in)) {
                    let before = jobs.len();
                    c.read_jobs(&mut jobs, &mut warn);
                    owners.extend(core::iter::repeat_n(i, jobs.len() - before));
                }
            }
        }
        if !jobs.is_empty() {
            let n = u32::try_from(conns.len()).unwrap_or(u32::MAX);
            let replies = signer.decide_batch(&jobs, n, crate::now());
            for (owner, reply) in owners.iter().zip(replies) {
                if let Some(c) = conns.get_mut(*owner) {
                    c.out.extend_from_slice(&encode_frame(&reply));
                }
            }
            jobs.clear();
        }
        for c in &mut conns {
            if !c.out.is_empty() {
                c.flush();
            }
            if c.started
                .is_some_and(|s| s.elapsed() >= limits.read_timeout)
            {
                if warn.allow() {
                    tracing::warn!(
                        uid = c.uid,
                        "closing a connection whose frame did not complete in time"
                    );
                }
                c.dead = true;
            }
        }
        conns.retain(|c| !(c.dead || ((c.closing || c.eof) && c.out.is_empty())));
        if revents
            .first()
            .is_some_and(|r| r.contains(PollFlags::POLLIN))
        {
            accept_all(listener, &mut conns, uids, &limits, &mut warn);
        }
        signer.audit_tick(false);
    }
}

#[cfg(test)]
mod tests {
    use cvx_protocol::consensus::{BlockHeader, Checkpoint};
    use cvx_protocol::policy::{PolicyParams, Request};
    use cvx_protocol::signer_wire::AuditHead;
    use cvx_protocol::{NetworkId, Timestamp};
    use cvx_sandbox::Prefer;

    use super::*;

    fn setup(dir: &std::path::Path) -> Signer {
        let net = NetworkId(hash(b"unit"));
        let (state_path, audit_path) = (dir.join("state"), dir.join("audit.log"));
        let head: AuditHead = AuditLog::create(&audit_path, &net, Timestamp(1)).unwrap();
        StateFile::create(
            &state_path,
            StateRecord {
                network: net,
                locked: false,
                audit: head,
                watermark: Watermark::default(),
            },
        )
        .unwrap();
        let state = StateFile::open(&state_path, &net).unwrap();
        let (audit, _) = AuditLog::open_checked(&audit_path, &net, &state_path, 1, head).unwrap();
        let key = Locked::new_with(1, Prefer::Auto, |_| {
            Ok::<_, ()>(SigningKey::from_bytes(&[3; 32]))
        })
        .unwrap();
        let policy = Policy {
            key: crate::keys::public_key(&key),
            network: net,
            params: PolicyParams::default(),
        };
        Signer::new(policy, key, state, audit)
    }

    fn block_job(s: &Signer, t: u64) -> Job {
        Job {
            uid: 7,
            admin: false,
            msg: Incoming::Msg(ClientMessage::Sign(Request {
                network: s.policy.network,
                body: SignRequest::Block(BlockHeader {
                    proposer: s.policy.key,
                    timestamp: Timestamp(t),
                    tx_count: 0,
                    tx_hash: hash(&t.to_le_bytes()),
                }),
            })),
        }
    }

    #[test]
    fn group_commit_one_write_per_batch_and_write_error_refuses_from_then_on() {
        let dir = std::env::temp_dir().join(format!("cvx-signer-unit-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let mut s = setup(&dir);
        let now = crate::now();
        // A batch of three newer blocks and one stale one: three signed, one refused,
        // ONE state commit (sequence 1 -> 2).
        let jobs = vec![
            block_job(&s, now.0 - 3),
            block_job(&s, now.0 - 2),
            block_job(&s, now.0 - 5),
            block_job(&s, now.0 - 1),
        ];
        let replies = s.decide_batch(&jobs, 1, now);
        let signed = replies
            .iter()
            .filter(|r| matches!(r, SignerMessage::Signed { .. }))
            .count();
        assert_eq!(signed, 3, "{replies:?}");
        assert!(matches!(
            replies[2],
            SignerMessage::Refused {
                code: RefuseCode::BlockNotNewer,
                ..
            }
        ));
        assert_eq!(s.state.current().sequence, 2);
        // A disk error: nothing is signed, and nothing is signed afterwards either.
        s.state.slots.fail_writes = true;
        let replies = s.decide_batch(&[block_job(&s, now.0)], 1, now);
        assert!(
            matches!(
                replies[0],
                SignerMessage::Refused {
                    code: RefuseCode::StateUnavailable,
                    ..
                }
            ),
            "{replies:?}"
        );
        s.state.slots.fail_writes = false;
        let replies = s.decide_batch(&[block_job(&s, now.0 + 1)], 1, now);
        assert!(
            matches!(
                replies[0],
                SignerMessage::Refused {
                    code: RefuseCode::StateUnavailable,
                    ..
                }
            ),
            "{replies:?}"
        );
        assert_eq!(s.state.current().sequence, 2, "no further commit");
        // Status still answers.
        let jobs = [Job {
            uid: 7,
            admin: false,
            msg: Incoming::Msg(ClientMessage::Status),
        }];
        assert!(matches!(
            s.decide_batch(&jobs, 1, now)[0],
            SignerMessage::Status(_)
        ));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn an_admin_slot_never_signs_but_locks() {
        let dir = std::env::temp_dir().join(format!("cvx-signer-admin-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let mut s = setup(&dir);
        let now = crate::now();
        let mut sign = block_job(&s, now.0 - 1);
        sign.admin = true;
        let lock = Job {
            uid: 0,
            admin: true,
            msg: Incoming::Msg(ClientMessage::Lock),
        };
        let replies = s.decide_batch(&[sign], 1, now);
        assert!(
            matches!(
                replies[0],
                SignerMessage::Refused {
                    code: RefuseCode::Malformed,
                    ..
                }
            ),
            "{replies:?}"
        );
        assert_eq!(s.watermark, Watermark::default(), "nothing signed");
        let replies = s.decide_batch(&[lock, block_job(&s, now.0)], 1, now);
        assert!(matches!(replies[0], SignerMessage::Locked), "{replies:?}");
        assert!(
            matches!(
                replies[1],
                SignerMessage::Refused {
                    code: RefuseCode::Locked,
                    ..
                }
            ),
            "a lock read first covers the client requests of its turn: {replies:?}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A trusted table of four other keys (stake 100 each), a certificate signed by
    /// `voters` of them for `(position, chain)`, as a Certify job.
    fn certify_job(s: &Signer, voters: &[u8], position: u64) -> (Job, Checkpoint) {
        use cvx_protocol::certificate::{CertKind, Certificate, OrderHeader};
        let net = s.policy.network;
        let anchor = Checkpoint {
            position,
            chain: hash(&position.to_le_bytes()),
        };
        let root = trusted_table(0).table.root();
        let mut votes: Vec<_> = voters
            .iter()
            .map(|&i| {
                let sk = SigningKey::from_bytes(&[40 + i; 32]);
                let h = OrderHeader {
                    peer: PublicKey::from_bytes(sk.verifying_key().as_bytes()).unwrap(),
                    timestamp: Timestamp(1),
                    body_hash: hash(&[i]),
                    proposal: position,
                    consensus: position,
                    finality: position,
                    consensus_chain: anchor.chain,
                    stake_root: root,
                };
                let sig = Signature(sk.sign(h.sign_bytes(&net).as_bytes()).to_bytes());
                Certificate::vote_of(&h, sig)
            })
            .collect();
        votes.sort_by_key(|v| v.peer);
        let certificate = Certificate {
            network: net,
            kind: CertKind::Finality,
            anchor,
            stake_root: root,
            ids: cvx_protocol::BoundedVec::new(),
            votes: cvx_protocol::BoundedVec::try_from_vec(votes).unwrap(),
        };
        let job = Job {
            uid: 7,
            admin: false,
            msg: Incoming::Msg(ClientMessage::Certify(CertRequest {
                certificate,
                table: None,
            })),
        };
        (job, anchor)
    }

    fn trusted_table(confirmed_at: u64) -> TrustedTable {
        use cvx_protocol::certificate::{StakeEntry, StakeTable};
        let mut entries: Vec<StakeEntry> = (0..4u8)
            .map(|i| StakeEntry {
                key: PublicKey::from_bytes(
                    SigningKey::from_bytes(&[40 + i; 32])
                        .verifying_key()
                        .as_bytes(),
                )
                .unwrap(),
                stake: 100,
            })
            .collect();
        entries.sort_by_key(|e| e.key);
        TrustedTable {
            position: 0,
            confirmed_at: Timestamp(confirmed_at),
            table: StakeTable {
                entries: cvx_protocol::BoundedVec::try_from_vec(entries).unwrap(),
            },
        }
    }

    fn refused_with(r: &SignerMessage) -> Option<RefuseCode> {
        match r {
            SignerMessage::Refused { code, .. } => Some(*code),
            _ => None,
        }
    }

    #[test]
    fn a_certificate_moves_the_lock_durably_then_orders_extend_it() {
        use cvx_protocol::consensus::Order;
        let dir = std::env::temp_dir().join(format!("cvx-signer-cert-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let now = crate::now();
        let mut s = setup(&dir);
        // Without a trusted table: refused with its own code.
        let (job, _) = certify_job(&s, &[0, 1, 2], 500);
        assert_eq!(
            refused_with(&s.decide_batch(&[job], 1, now)[0]),
            Some(RefuseCode::CertTableUnproven)
        );
        let net = s.policy.network;
        let trust_path = dir.join("state.trust");
        let trust =
            TrustFile::open_or_create(&trust_path, &net, &trusted_table(now.0 - 10)).unwrap();
        s = s.with_trust(trust);
        // Two of four: refused, nothing changes.
        let (job, _) = certify_job(&s, &[0, 1], 500);
        assert_eq!(
            refused_with(&s.decide_batch(&[job], 1, now)[0]),
            Some(RefuseCode::CertWeakQuorum)
        );
        assert_eq!(s.watermark, Watermark::default());
        // Three of four, far ahead of a signer that never signed: accepted.
        let (job, anchor) = certify_job(&s, &[0, 1, 3], 500);
        let replies = s.decide_batch(&[job], 1, now);
        let SignerMessage::Certified { moved, watermark } = &replies[0] else {
            panic!("{replies:?}")
        };
        assert!(*moved);
        assert_eq!(watermark.consensus, Some(anchor));
        assert_eq!(watermark.finality, 500);
        // An order that does not extend the anchor is refused; one that does is signed.
        let order = |chain: Hash, t: u64| Order {
            peer: s.policy.key,
            timestamp: Timestamp(t),
            checkpoint: Checkpoint {
                position: 500,
                chain,
            },
            blocks: cvx_protocol::BoundedVec::try_from_vec(vec![hash(b"501")]).unwrap(),
            proposal: 501,
            consensus: 501,
            finality: 500,
            stake_root: Hash::ZERO,
        };
        let job = |o: Order| Job {
            uid: 7,
            admin: false,
            msg: Incoming::Msg(ClientMessage::Sign(Request {
                network: net,
                body: SignRequest::Order {
                    order: o,
                    bridge: cvx_protocol::BoundedVec::new(),
                },
            })),
        };
        let replies = s.decide_batch(
            &[
                job(order(hash(b"fork"), now.0 - 2)),
                job(order(anchor.chain, now.0 - 1)),
            ],
            1,
            now,
        );
        assert_eq!(refused_with(&replies[0]), Some(RefuseCode::PrefixConflict));
        assert!(
            matches!(replies[1], SignerMessage::Signed { .. }),
            "{replies:?}"
        );
        // Durable: reopen both files.
        drop(s);
        let state = StateFile::open(&dir.join("state"), &net).unwrap();
        assert_eq!(state.current().record.watermark.finality, 500);
        assert_eq!(
            state
                .current()
                .record
                .watermark
                .consensus
                .map(|c| c.position),
            Some(501)
        );
        let trust = TrustFile::open_or_create(&trust_path, &net, &trusted_table(0)).unwrap();
        assert_eq!(
            trust.trusted().confirmed_at,
            now,
            "the table was re-confirmed"
        );
        assert_eq!(trust.trusted().position, 500);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_trust_file_write_error_changes_nothing_and_refuses_from_then_on() {
        let dir = std::env::temp_dir().join(format!("cvx-signer-trustfail-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let now = crate::now();
        let s = setup(&dir);
        let net = s.policy.network;
        let trust =
            TrustFile::open_or_create(&dir.join("state.trust"), &net, &trusted_table(now.0))
                .unwrap();
        let mut s = s.with_trust(trust);
        if let Some(t) = s.trust.as_mut() {
            t.slots.fail_writes = true;
        }
        let (job, _) = certify_job(&s, &[0, 1, 2], 9);
        let replies = s.decide_batch(&[job, block_job(&s, now.0 - 1)], 1, now);
        assert_eq!(
            refused_with(&replies[0]),
            Some(RefuseCode::StateUnavailable)
        );
        assert_eq!(
            refused_with(&replies[1]),
            Some(RefuseCode::StateUnavailable)
        );
        assert_eq!(s.watermark, Watermark::default());
        assert_eq!(
            s.state.current().sequence,
            1,
            "the state was not written either"
        );
        let replies = s.decide_batch(&[block_job(&s, now.0)], 1, now);
        assert_eq!(
            refused_with(&replies[0]),
            Some(RefuseCode::StateUnavailable)
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
