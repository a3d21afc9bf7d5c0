//! The peer's one session with its signer (`protocol::signer_wire` over a Unix socket).
//!
//! **One owner.** A single task owns the socket. Everything the peer asks its signer goes
//! through it as a job on one queue: the consensus machine's orders and blocks
//! ([`SignerSession::sign_tagged`], answered on the [`Signed`] channel the main loop reads,
//! no task per request), the challenge responses of peer connections and the join by
//! state sync ([`SignerSession::sign`], [`SignerSession::status`]). No other code opens
//! the socket, except [`lock`], the one-shot breach button of `cvx-peer halt`, which must
//! work even when the peer is not running.
//!
//! **Self-healing.** After any failure (the signer closed the socket, was killed, restarted,
//! froze, or answered something that is not an answer) the task drops the connection and
//! reconnects with backoff: [`BACKOFF_MIN`] doubling up to [`BACKOFF_MAX`], reset once a
//! connection has stayed up that long (a signer that accepts and then fails every request
//! is retried every 2 s, not 10 times a second). A new socket file at the path (a
//! restarted signer binds a fresh one) is noticed by a `stat` every 100 ms and tried at
//! once, so the wait after a restart is not the backoff's. Each reconnection repeats the Hello and checks the signer's key and
//! network against the config (a different signer on the socket is never used). While no
//! connection is up, every job is answered at once with the typed reason
//! ([`SignError`]): nothing waits for a signer that is gone, and nothing is retried here
//! (the consensus machine asks again with a fresh order; a connection proves its key
//! once the session is back, see `node`).
//!
//! **Replies cannot pair with the wrong request.** The signer wire carries no request id,
//! and answers in order on one connection. We chose to *reset the connection on any
//! timeout, framing or decoding error and on any unexpected answer*, rather than add an
//! id to the wire: after a reset no half-read or late reply can ever be read again, and
//! requests on one connection are strictly one at a time, so the n-th answer read is the
//! answer to the n-th request. An id would have needed a new `WIRE_VERSION`, new vectors,
//! a new fuzz corpus and a signer change, for no gain over the reset (the signer is local
//! and answers in order).
//!
//! **Health.** [`Health`] is published on a watch: up, locked (the signer answers `LOCKED`,
//! after the breach button), or unreachable. The node reads it for `in_consensus`, the
//! `cvx_peer_signer_up` gauge and the NETWORK detail it gives clients. The task logs one
//! WARN when the session leaves "up" (or moves between locked and unreachable) and one
//! INFO when it is up again; failed reconnection attempts log at DEBUG only. While locked,
//! sign requests are answered [`SignError::Locked`] without asking the signer (its audit
//! log is not flooded with refusals); `cvx-signer unlock` needs the signer stopped, so the
//! session is up again after that restart (a `Status` every [`BACKOFF_MAX`] also notices
//! a lock lifted any other way).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use cvx_protocol::certificate::CertRequest;
use cvx_protocol::policy::{RefuseCode, Request, Watermark};
use cvx_protocol::signer_wire::{self, ClientMessage, SignerMessage, StatusReport, WIRE_VERSION};
use cvx_protocol::{DecodeError, NetworkId, PublicKey, Signature};
use tokio::net::UnixStream;
use tokio::sync::{mpsc, oneshot, watch};

mod task;

use task::{Conn, Task, call, hello, unexpected};

/// First wait before reconnecting after a failure.
pub const BACKOFF_MIN: Duration = Duration::from_millis(100);
/// Longest wait between reconnection attempts (also the probe interval while locked).
pub const BACKOFF_MAX: Duration = Duration::from_secs(2);
/// How long one answer may take before the connection is reset.
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(5);
/// Jobs waiting for the session at most (beyond: [`SignError::Busy`]).
pub const QUEUE: usize = 1024;

/// Why the signer gave no signature (or status). Callers branch on the variant (or
/// [`SignError::code`]), never on the text.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SignError {
    /// No connection: the socket is missing, refuses, or the signer closed it.
    #[error(
        "cannot reach the signer at {path}: {source} (is cvx-signer running, and is this user in its allowed_uids? the peer reconnects by itself)"
    )]
    Unreachable {
        /// The socket.
        path: PathBuf,
        /// The OS error (shared: the same failure answers every waiting job).
        source: Arc<std::io::Error>,
    },
    /// The signer did not answer in time; the connection was reset.
    #[error(
        "the signer did not answer within {0:?} (is cvx-signer frozen or its disk stalled?); the connection was reset"
    )]
    TimedOut(Duration),
    /// The signer refused this request (its policy said no; nothing was signed).
    #[error("the signer refused: {code}: {detail}")]
    Refused {
        /// The stable refusal code.
        code: RefuseCode,
        /// The signer's detail.
        detail: String,
    },
    /// The signer is locked (breach button): it refuses everything until unlocked.
    #[error(
        "the signer is locked (breach button): it refuses every signature until the operator stops it, runs `cvx-signer unlock` on its host and starts it again (docs/operations.md, Security breach)"
    )]
    Locked,
    /// The signer answered something that is not an answer; the connection was reset.
    #[error("the signer broke the protocol ({0}); the connection was reset")]
    Protocol(#[from] ProtocolFault),
    /// The socket serves another key or network than the config names.
    #[error(
        "the signer at {path} has {what} {theirs}, but the config says {ours}: point signer_socket at this peer's signer, or fix `key`"
    )]
    Mismatch {
        /// The socket.
        path: PathBuf,
        /// "public key" or "network".
        what: &'static str,
        /// The signer's.
        theirs: String,
        /// Ours.
        ours: String,
    },
    /// Too many jobs waiting (the signer is slower than the peer asks).
    #[error("{QUEUE} signer requests are already waiting")]
    Busy,
    /// The session task has ended (the peer is shutting down).
    #[error("the signer session has stopped")]
    Stopped,
}

impl SignError {
    /// A stable name for logs and metrics.
    #[must_use]
    pub const fn code(&self) -> &'static str {
        match self {
            Self::Unreachable { .. } => "UNREACHABLE",
            Self::TimedOut(_) => "TIMED_OUT",
            Self::Refused { .. } => "REFUSED",
            Self::Locked => "LOCKED",
            Self::Protocol(_) => "PROTOCOL",
            Self::Mismatch { .. } => "MISMATCH",
            Self::Busy => "BUSY",
            Self::Stopped => "STOPPED",
        }
    }

    fn unreachable(path: &Path, e: std::io::Error) -> Self {
        Self::Unreachable {
            path: path.to_path_buf(),
            source: Arc::new(e),
        }
    }
}

/// How the signer broke the protocol.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolFault {
    /// A frame header out of bounds.
    #[error("bad frame: {0}")]
    Frame(#[from] signer_wire::FrameError),
    /// A payload that is not a canonical `SignerMessage`.
    #[error("undecodable answer: {0}")]
    Decode(#[from] DecodeError),
    /// A valid message that does not answer the request.
    #[error("answer {got} to a {asked} request")]
    Unexpected {
        /// What we asked.
        asked: &'static str,
        /// What came back.
        got: &'static str,
    },
    /// Another wire version.
    #[error("the signer speaks wire version {0}, this peer {WIRE_VERSION}")]
    Version(u16),
    /// Bytes while nothing was asked.
    #[error("the signer sent bytes nobody asked for")]
    Unsolicited,
}

/// The session's state, as the node and the metrics see it.
#[derive(Debug, Clone)]
pub enum Health {
    /// Connected, Hello checked, not locked.
    Up,
    /// Connected, but the signer is locked ([`SignError::Locked`]).
    Locked,
    /// No usable connection; the last failure.
    Down(SignError),
}

impl Health {
    /// True when signatures can be had.
    #[must_use]
    pub const fn is_up(&self) -> bool {
        matches!(self, Self::Up)
    }

    /// The failure a caller gets while not up (`None` when up).
    #[must_use]
    pub fn failure(&self) -> Option<SignError> {
        match self {
            Self::Up => None,
            Self::Locked => Some(SignError::Locked),
            Self::Down(e) => Some(e.clone()),
        }
    }

    /// The class of state: a change of class is logged, nothing else is.
    const fn class(&self) -> u8 {
        match self {
            Self::Up => 0,
            Self::Locked => 1,
            Self::Down(_) => 2,
        }
    }
}

/// Where the session connects and what it expects there.
#[derive(Debug, Clone)]
pub struct SessionSettings {
    /// The signer's socket.
    pub socket: PathBuf,
    /// The key the config names (the signer's must match).
    pub key: PublicKey,
    /// The network of the genesis (the signer's must match).
    pub network: NetworkId,
    /// How long one answer may take ([`REPLY_TIMEOUT`]).
    pub reply_timeout: Duration,
}

/// The answer to a [`SignerSession::sign_tagged`] request.
#[derive(Debug)]
pub struct Signed {
    /// The caller's tag.
    pub tag: u64,
    /// The signature, or why there is none.
    pub result: Result<Signature, SignError>,
}

/// Where a signature goes.
enum SignReply {
    /// To the [`Signed`] channel, with the caller's tag.
    Tagged(u64),
    /// To one waiting caller.
    Once(oneshot::Sender<Result<Signature, SignError>>),
}

/// What the session is asked. A job lives only on the queue; boxing the request would
/// add an allocation per signature for nothing (as `signer_wire::ClientMessage` does).
#[allow(clippy::large_enum_variant)]
enum Job {
    Sign {
        request: Request,
        reply: SignReply,
    },
    Status(oneshot::Sender<Result<StatusReport, SignError>>),
    Certify(
        Box<CertRequest>,
        oneshot::Sender<Result<Certified, SignError>>,
    ),
}

/// The signer's answer to an accepted certificate: whether its lock moved, and its
/// durable watermark now.
pub type Certified = (bool, Watermark);

/// A handle on the session task (cheap to clone; the task ends when every handle is gone).
#[derive(Debug, Clone)]
pub struct SignerSession {
    jobs: mpsc::Sender<Job>,
    health: watch::Receiver<Health>,
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Job")
    }
}

impl SignerSession {
    /// Connect (Hello, key and network checked, lock state read) and start the task.
    /// The first connection must succeed, so that a wrong socket or key is reported at
    /// start; later failures are healed by reconnecting.
    ///
    /// # Errors
    /// [`SignError`] of the first connection.
    pub async fn start(
        settings: SessionSettings,
    ) -> Result<(Self, mpsc::Receiver<Signed>), SignError> {
        let conn = Conn::open(&settings).await?;
        let first = if conn.locked {
            Health::Locked
        } else {
            Health::Up
        };
        if conn.locked {
            tracing::warn!(socket = %settings.socket.display(), "{}", SignError::Locked);
        }
        let (health_tx, health) = watch::channel(first);
        let (jobs, jobs_rx) = mpsc::channel(QUEUE);
        let (signed_tx, signed) = mpsc::channel(QUEUE);
        let task = Task {
            settings,
            jobs: jobs_rx,
            health: health_tx,
            signed: signed_tx,
        };
        tokio::spawn(task.run(conn));
        Ok((Self { jobs, health }, signed))
    }

    /// The session's state now.
    #[must_use]
    pub fn health(&self) -> Health {
        self.health.borrow().clone()
    }

    /// True while signatures can be had.
    #[must_use]
    pub fn is_up(&self) -> bool {
        self.health.borrow().is_up()
    }

    /// A watch on the session's state (for waiting until it is up).
    #[must_use]
    pub fn watch(&self) -> watch::Receiver<Health> {
        self.health.clone()
    }

    /// Queue a sign request without waiting; its answer comes on the [`Signed`] channel
    /// returned by [`SignerSession::start`], with `tag`.
    ///
    /// # Errors
    /// [`SignError::Busy`] when the queue is full, [`SignError::Stopped`] after shutdown.
    pub fn sign_tagged(&self, tag: u64, request: Request) -> Result<(), SignError> {
        self.jobs
            .try_send(Job::Sign {
                request,
                reply: SignReply::Tagged(tag),
            })
            .map_err(|e| match e {
                mpsc::error::TrySendError::Full(_) => SignError::Busy,
                mpsc::error::TrySendError::Closed(_) => SignError::Stopped,
            })
    }

    /// Ask for a signature and wait for it.
    ///
    /// # Errors
    /// [`SignError`]: a refusal, or why the signer could not be asked.
    pub async fn sign(&self, request: Request) -> Result<Signature, SignError> {
        let (reply, rx) = oneshot::channel();
        self.jobs
            .send(Job::Sign {
                request,
                reply: SignReply::Once(reply),
            })
            .await
            .map_err(|_| SignError::Stopped)?;
        rx.await.unwrap_or(Err(SignError::Stopped))
    }

    /// Present a finality or lock certificate (docs/consensus.md §7.6): the signer moves
    /// its lock to the anchor (catch-up or release) or refuses with a `CERT_*` code,
    /// returned as [`SignError::Refused`] with that code. A locked signer answers
    /// [`SignError::Locked`].
    ///
    /// # Errors
    /// [`SignError`]: a refusal, or why the signer could not be asked.
    pub async fn certify(&self, request: CertRequest) -> Result<Certified, SignError> {
        let (reply, rx) = oneshot::channel();
        self.jobs
            .send(Job::Certify(Box::new(request), reply))
            .await
            .map_err(|_| SignError::Stopped)?;
        rx.await.unwrap_or(Err(SignError::Stopped))
    }

    /// The signer's status (watermark, lock).
    ///
    /// # Errors
    /// [`SignError`].
    pub async fn status(&self) -> Result<StatusReport, SignError> {
        let (reply, rx) = oneshot::channel();
        self.jobs
            .send(Job::Status(reply))
            .await
            .map_err(|_| SignError::Stopped)?;
        rx.await.unwrap_or(Err(SignError::Stopped))
    }
}

/// The breach button for `cvx-peer halt`: one connection, Hello, `Lock`.
///
/// # Errors
/// [`SignError`] when the signer cannot be reached or does not confirm the lock.
pub async fn lock(socket: &Path) -> Result<(), SignError> {
    let mut stream = UnixStream::connect(socket)
        .await
        .map_err(|e| SignError::unreachable(socket, e))?;
    hello(&mut stream, socket, REPLY_TIMEOUT).await?;
    match call(&mut stream, socket, &ClientMessage::Lock, REPLY_TIMEOUT).await? {
        SignerMessage::Locked => Ok(()),
        other => Err(unexpected("Lock", &other)),
    }
}

#[cfg(test)]
mod tests;
