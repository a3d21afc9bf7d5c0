//! The session task: it owns the one connection (open, Hello and checks, one request at a
//! time, reset on any failure) and reconnects with backoff. See the parent module.

use std::path::Path;
use std::time::Duration;

use cvx_protocol::policy::RefuseCode;
use cvx_protocol::signer_wire::{self, ClientMessage, SignerMessage, StatusReport, WIRE_VERSION};
use cvx_protocol::{Canonical, NetworkId, PublicKey, Signature};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;
use tokio::sync::{mpsc, watch};

use super::{
    BACKOFF_MAX, BACKOFF_MIN, Health, Job, ProtocolFault, SessionSettings, SignError, SignReply,
    Signed,
};

/// One connection: the stream and whether the signer said it is locked.
pub(super) struct Conn {
    pub(super) stream: UnixStream,
    pub(super) locked: bool,
}

impl Conn {
    pub(super) async fn open(s: &SessionSettings) -> Result<Self, SignError> {
        let mut stream = UnixStream::connect(&s.socket)
            .await
            .map_err(|e| SignError::unreachable(&s.socket, e))?;
        let (network, public_key) = hello(&mut stream, &s.socket, s.reply_timeout).await?;
        let mismatch = |what, theirs: String, ours: String| SignError::Mismatch {
            path: s.socket.clone(),
            what,
            theirs,
            ours,
        };
        if public_key != s.key {
            return Err(mismatch("public key", public_key.to_hex(), s.key.to_hex()));
        }
        if network != s.network {
            return Err(mismatch(
                "network",
                network.0.to_hex(),
                s.network.0.to_hex(),
            ));
        }
        let mut conn = Self {
            stream,
            locked: false,
        };
        conn.locked = conn.status(s).await?.locked;
        Ok(conn)
    }

    async fn status(&mut self, s: &SessionSettings) -> Result<StatusReport, SignError> {
        match call(
            &mut self.stream,
            &s.socket,
            &ClientMessage::Status,
            s.reply_timeout,
        )
        .await?
        {
            SignerMessage::Status(r) => Ok(r),
            other => Err(unexpected("Status", &other)),
        }
    }
}

pub(super) async fn hello(
    stream: &mut UnixStream,
    socket: &Path,
    timeout: Duration,
) -> Result<(NetworkId, PublicKey), SignError> {
    let msg = ClientMessage::Hello {
        version: WIRE_VERSION,
    };
    match call(stream, socket, &msg, timeout).await? {
        SignerMessage::Hello {
            version,
            network,
            public_key,
        } => {
            if version == WIRE_VERSION {
                Ok((network, public_key))
            } else {
                Err(ProtocolFault::Version(version).into())
            }
        }
        other => Err(unexpected("Hello", &other)),
    }
}

/// One request, one answer, within `timeout`. Any error leaves the stream in an unknown
/// state: the caller must drop it (this is what keeps replies paired with requests).
pub(super) async fn call(
    stream: &mut UnixStream,
    socket: &Path,
    msg: &ClientMessage,
    timeout: Duration,
) -> Result<SignerMessage, SignError> {
    let frame = signer_wire::encode_frame(msg);
    let io = |e| SignError::unreachable(socket, e);
    let exchange = async {
        stream.write_all(&frame).await.map_err(io)?;
        let mut h = [0u8; signer_wire::FRAME_HEADER];
        stream.read_exact(&mut h).await.map_err(io)?;
        let n = signer_wire::frame_len(h).map_err(ProtocolFault::from)?;
        let mut buf = vec![0u8; n];
        stream.read_exact(&mut buf).await.map_err(io)?;
        Ok(SignerMessage::decode(&buf).map_err(ProtocolFault::from)?)
    };
    tokio::time::timeout(timeout, exchange)
        .await
        .map_err(|_| SignError::TimedOut(timeout))?
}

/// The socket file's identity (device, inode), if it exists. A `stat` only: no connection
/// is attempted, and the sandbox allows it.
fn socket_id(path: &Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt as _;
    std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

const fn kind(m: &SignerMessage) -> &'static str {
    match m {
        SignerMessage::Hello { .. } => "Hello",
        SignerMessage::PublicKey(_) => "PublicKey",
        SignerMessage::Signed { .. } => "Signed",
        SignerMessage::Refused { .. } => "Refused",
        SignerMessage::Status(_) => "Status",
        SignerMessage::Locked => "Locked",
        SignerMessage::Certified { .. } => "Certified",
    }
}

pub(super) fn unexpected(asked: &'static str, got: &SignerMessage) -> SignError {
    ProtocolFault::Unexpected {
        asked,
        got: kind(got),
    }
    .into()
}

/// The task that owns the connection.
pub(super) struct Task {
    pub(super) settings: SessionSettings,
    pub(super) jobs: mpsc::Receiver<Job>,
    pub(super) health: watch::Sender<Health>,
    pub(super) signed: mpsc::Sender<Signed>,
}

impl Task {
    pub(super) async fn run(mut self, first: Conn) {
        let mut conn = Some(first);
        let mut backoff = BACKOFF_MIN;
        loop {
            let failure = match conn.take() {
                Some(c) => {
                    let since = tokio::time::Instant::now();
                    let Some(e) = self.serve(c).await else {
                        return;
                    };
                    // A connection that failed soon after it was made does not reset the
                    // backoff: a signer that accepts and then fails every request is
                    // retried every 2 s at most, not 10 times a second.
                    if since.elapsed() >= BACKOFF_MAX {
                        backoff = BACKOFF_MIN;
                    }
                    e
                }
                None => match Conn::open(&self.settings).await {
                    Ok(c) => {
                        self.set_health(if c.locked { Health::Locked } else { Health::Up });
                        conn = Some(c);
                        continue;
                    }
                    Err(e) => {
                        tracing::debug!(error = %e, retry_in = ?backoff, "signer reconnection failed");
                        e
                    }
                },
            };
            self.set_health(Health::Down(failure.clone()));
            // Wait out the backoff; whatever is asked meanwhile is answered at once. A new
            // socket file (a restarted signer binds a new one) ends the wait early: the
            // peer is back within about 100 ms of its signer, not up to 2 s later.
            let until = tokio::time::Instant::now() + backoff;
            let seen = socket_id(&self.settings.socket);
            let mut look = tokio::time::interval(BACKOFF_MIN);
            loop {
                tokio::select! {
                    () = tokio::time::sleep_until(until) => break,
                    _ = look.tick() => {
                        let now = socket_id(&self.settings.socket);
                        if now.is_some() && now != seen {
                            tracing::debug!("a new signer socket: reconnecting now");
                            break;
                        }
                    }
                    job = self.jobs.recv() => match job {
                        Some(job) => self.fail(job, failure.clone()).await,
                        None => return,
                    },
                }
            }
            backoff = (backoff * 2).min(BACKOFF_MAX);
        }
    }

    /// Serve jobs on `conn` until it fails (`Some(why)`) or every handle is gone (`None`).
    async fn serve(&mut self, mut conn: Conn) -> Option<SignError> {
        let mut probe = [0u8; 1];
        let mut status_at = tokio::time::Instant::now() + BACKOFF_MAX;
        loop {
            tokio::select! {
                job = self.jobs.recv() => {
                    let job = job?;
                    if let Err(e) = self.serve_one(&mut conn, job).await {
                        return Some(e);
                    }
                }
                // Idle: a closed socket (signer killed or restarted) is noticed now, not
                // at the next request; bytes nobody asked for break the pairing.
                r = conn.stream.read(&mut probe) => {
                    return Some(match r {
                        Ok(0) => SignError::unreachable(
                            &self.settings.socket,
                            std::io::Error::new(
                                std::io::ErrorKind::UnexpectedEof,
                                "the signer closed the connection",
                            ),
                        ),
                        Ok(_) => ProtocolFault::Unsolicited.into(),
                        Err(e) => SignError::unreachable(&self.settings.socket, e),
                    });
                }
                // Locked: notice `cvx-signer unlock`.
                () = tokio::time::sleep_until(status_at), if conn.locked => {
                    status_at = tokio::time::Instant::now() + BACKOFF_MAX;
                    match conn.status(&self.settings).await {
                        Ok(r) if !r.locked => {
                            conn.locked = false;
                            self.set_health(Health::Up);
                        }
                        Ok(_) => {}
                        Err(e) => return Some(e),
                    }
                }
            }
        }
    }

    /// One job on a live connection. `Err`: the connection must be dropped (the job has
    /// been answered with that error).
    async fn serve_one(&mut self, conn: &mut Conn, job: Job) -> Result<(), SignError> {
        let (request, reply) = match job {
            Job::Status(tx) => {
                let r = conn.status(&self.settings).await;
                if let Ok(st) = &r {
                    self.lock_state(conn, st.locked);
                }
                let failed = r.as_ref().err().cloned();
                let _ = tx.send(r);
                return failed.map_or(Ok(()), Err);
            }
            Job::Certify(req, tx) => {
                let r = self.certify(conn, *req).await;
                let broken = match &r {
                    Err(SignError::Refused { .. } | SignError::Locked) | Ok(_) => None,
                    Err(e) => Some(e.clone()),
                };
                let _ = tx.send(r);
                return broken.map_or(Ok(()), Err);
            }
            Job::Sign { request, reply } => (request, reply),
        };
        if conn.locked {
            self.reply(reply, Err(SignError::Locked)).await;
            return Ok(());
        }
        let s = &self.settings;
        let msg = ClientMessage::Sign(request);
        let result = match call(&mut conn.stream, &s.socket, &msg, s.reply_timeout).await {
            Ok(SignerMessage::Signed { signature, .. }) => Ok(signature),
            Ok(SignerMessage::Refused {
                code: RefuseCode::Locked,
                ..
            }) => {
                self.lock_state(conn, true);
                Err(SignError::Locked)
            }
            Ok(SignerMessage::Refused { code, detail }) => Err(SignError::Refused {
                code,
                detail: detail.as_str().to_owned(),
            }),
            Ok(other) => Err(unexpected("Sign", &other)),
            Err(e) => Err(e),
        };
        let broken = match &result {
            Err(SignError::Refused { .. } | SignError::Locked) | Ok(_) => None,
            Err(e) => Some(e.clone()),
        };
        self.reply(reply, result).await;
        broken.map_or(Ok(()), Err)
    }

    /// One `Certify` on a live connection: `Certified`, or the signer's refusal with its
    /// `CERT_*` code kept.
    async fn certify(
        &self,
        conn: &mut Conn,
        req: cvx_protocol::certificate::CertRequest,
    ) -> Result<super::Certified, SignError> {
        if conn.locked {
            return Err(SignError::Locked);
        }
        let s = &self.settings;
        let msg = ClientMessage::Certify(req);
        match call(&mut conn.stream, &s.socket, &msg, s.reply_timeout).await? {
            SignerMessage::Certified { moved, watermark } => Ok((moved, watermark)),
            SignerMessage::Refused {
                code: RefuseCode::Locked,
                ..
            } => {
                self.lock_state(conn, true);
                Err(SignError::Locked)
            }
            SignerMessage::Refused { code, detail } => Err(SignError::Refused {
                code,
                detail: detail.as_str().to_owned(),
            }),
            other => Err(unexpected("Certify", &other)),
        }
    }

    fn lock_state(&self, conn: &mut Conn, locked: bool) {
        if conn.locked != locked {
            conn.locked = locked;
            self.set_health(if locked { Health::Locked } else { Health::Up });
        }
    }

    async fn reply(&self, reply: SignReply, result: Result<Signature, SignError>) {
        match reply {
            // The receiver gone: the peer is shutting down.
            SignReply::Tagged(tag) => {
                let _ = self.signed.send(Signed { tag, result }).await;
            }
            SignReply::Once(tx) => {
                let _ = tx.send(result);
            }
        }
    }

    async fn fail(&self, job: Job, e: SignError) {
        match job {
            Job::Sign { reply, .. } => self.reply(reply, Err(e)).await,
            Job::Status(tx) => {
                let _ = tx.send(Err(e));
            }
            Job::Certify(_, tx) => {
                let _ = tx.send(Err(e));
            }
        }
    }

    /// Publish a new state; log only a change of class (up, locked, unreachable).
    fn set_health(&self, new: Health) {
        let old = self.health.borrow().class();
        if old != new.class() {
            match &new {
                Health::Up => tracing::info!(
                    socket = %self.settings.socket.display(),
                    "signer session up: signing again"
                ),
                Health::Locked => tracing::warn!(
                    socket = %self.settings.socket.display(),
                    "signer session down: {}", SignError::Locked
                ),
                Health::Down(e) => tracing::warn!(
                    socket = %self.settings.socket.display(),
                    code = e.code(),
                    "signer session down: {e}; this peer does not take part in consensus until it reconnects"
                ),
            }
        }
        self.health.send_replace(new);
    }
}
