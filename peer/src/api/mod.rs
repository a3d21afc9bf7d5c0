//! The client HTTP API v1 and Prometheus `/metrics` on hyper (default bind: 127.0.0.1
//! only; see docs/api.yaml for every route, body and error).
//!
//! The API owns no state: it asks the node's main loop through one channel
//! ([`ApiRequest`]) and renders the typed answers as JSON. Limits, each answering instead
//! of dropping (docs/operations.md, "Client API"):
//! - a connection must send its request head within [`Limits::head_timeout`] and its body
//!   within [`Limits::body_timeout`]; one request per connection;
//! - at most [`Limits::connections`] connections are served; as many again are answered
//!   `503` with `Retry-After`; beyond both, connections wait in the kernel's backlog
//!   (delayed, never reset) so that the API never takes the descriptors the peer's own
//!   connections need;
//! - at most [`Limits::in_flight`] requests ask the node at once (a tower concurrency
//!   limit with load shedding): the others are answered `503` + `Retry-After`, never reset;
//! - a body over [`Limits::max_body`] is answered `413` (read and discarded up to
//!   [`Limits::drain`] first, so that the client reads the answer instead of a reset);
//! - paths have one canonical form ([`routes`]);
//! - event streams are bounded per client ([`Limits::stream_buffer`]): a client that does
//!   not keep up is told `lagged` and cut off, never buffered without bound.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use cvx_protocol::ledger::{Account, PeerRecord, TxResult};
use cvx_protocol::peer_wire::Status;
use cvx_protocol::txfile::TxFile;
use cvx_protocol::{ErrorCode, Hash, NetworkId, PublicKey};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, Semaphore, broadcast, mpsc, oneshot};

mod events;
mod handler;
pub mod routes;
#[cfg(test)]
mod tests;

pub use handler::ApiCode;

/// What the API asks the node.
#[derive(Debug)]
pub enum ApiQuery {
    /// `/v1/status`: [`ApiReply::Status`].
    Status,
    /// `/metrics`: [`ApiReply::Metrics`].
    Metrics,
    /// `/v1/account/{n}`: [`ApiReply::Account`].
    Account(u64),
    /// `/v1/peer/{key}`: [`ApiReply::Peer`].
    Peer(PublicKey),
    /// `/v1/tx/{id}`: [`ApiReply::Tx`] (the remembered finalized result, if any).
    Tx(Hash),
    /// `POST /v1/tx`: check (network, origin, sequence, signature, load, consensus) and
    /// queue; [`ApiReply::Accepted`] or [`ApiReply::Refused`]. Nothing is queued on a
    /// refusal.
    Submit(Box<TxFile>),
    /// `POST /v1/tx?wait=`: answered [`ApiReply::Tx`] once the transaction is finalized
    /// (at once if it already is); the API stops waiting after `wait` seconds.
    Wait(Hash),
    /// `/v1/events`: [`ApiReply::Events`], a subscription to finalized blocks (one JSON
    /// object each; docs/api.yaml, `BlockEvent`).
    Events,
}

/// What the node answers.
#[derive(Debug)]
pub enum ApiReply {
    /// The status and the network id.
    Status {
        /// The status (counts only: never the list of connections).
        status: Status,
        /// The network this peer is on.
        network: NetworkId,
    },
    /// The metrics in the OpenMetrics text format.
    Metrics(String),
    /// An account, if it exists.
    Account(Option<Account>),
    /// A peer, if it exists.
    Peer(Option<PeerRecord>),
    /// A finalized result, if known.
    Tx(Option<TxResult>),
    /// Queued: the transaction id.
    Accepted(Hash),
    /// Refused with a stable code; nothing was queued.
    Refused {
        /// The code.
        code: ErrorCode,
        /// What was wrong.
        detail: String,
    },
    /// Finalized blocks as JSON objects, from now on.
    Events(broadcast::Receiver<Arc<str>>),
}

/// A request with its reply channel.
pub type ApiRequest = (ApiQuery, oneshot::Sender<ApiReply>);

/// The API's limits (docs/operations.md, "Client API").
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Connections served at once; as many again are answered 503 (see [`Limits::fds`]).
    pub connections: usize,
    /// Requests asking the node at once (beyond: 503).
    pub in_flight: usize,
    /// `POST /v1/tx` bodies read (and results waited for) at once (beyond: 503).
    pub uploads: usize,
    /// Event streams at once (beyond: 503).
    pub streams: usize,
    /// Time to send the request head.
    pub head_timeout: Duration,
    /// Time to send the body.
    pub body_timeout: Duration,
    /// Time the node may take to answer.
    pub node_timeout: Duration,
    /// Largest body accepted (a signed-transaction file is far smaller).
    pub max_body: usize,
    /// Largest body read and discarded before a 413 (larger: answered at once).
    pub drain: usize,
    /// Events buffered for one stream client before it is cut off as `lagged`.
    pub stream_buffer: usize,
    /// A comment line on idle event streams this often (finds dead clients).
    pub stream_keepalive: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            connections: 128,
            in_flight: 64,
            uploads: 32,
            streams: 16,
            head_timeout: Duration::from_secs(5),
            body_timeout: Duration::from_secs(10),
            node_timeout: Duration::from_secs(5),
            max_body: 16 * 1024,
            drain: 4 * 1024 * 1024,
            stream_buffer: 64,
            stream_keepalive: Duration::from_secs(15),
        }
    }
}

impl Limits {
    /// Descriptors the API may hold: `connections` served and as many answered 503
    /// (the peer's RLIMIT_NOFILE counts them; see `crate::sandbox::nofile`).
    #[must_use]
    pub const fn fds(&self) -> usize {
        self.connections * 2
    }

    /// The longest a request that is not an event stream may hold its connection.
    #[must_use]
    pub fn request_deadline(&self) -> Duration {
        self.head_timeout
            + self.body_timeout
            + self.node_timeout
            + Duration::from_secs(routes::MAX_WAIT_SECS)
            + Duration::from_secs(10)
    }
}

/// Per-connection control shared between the connection task and its request.
#[derive(Debug, Default)]
struct ConnCtl {
    /// The response is an event stream (exempt from the request deadline).
    streaming: AtomicBool,
    /// Close the connection now (an event stream client that stopped reading).
    kill: Arc<Notify>,
}

/// Serve with the default [`Limits`] until the task is dropped. `resyncing`: set while the
/// node's loop is busy with a resync (a submission is refused `NETWORK` at once meanwhile).
pub async fn serve(
    listener: TcpListener,
    node: mpsc::Sender<ApiRequest>,
    resyncing: Arc<AtomicBool>,
) {
    serve_with(listener, node, Limits::default(), resyncing).await;
}

/// Serve with `limits` until the task is dropped.
pub async fn serve_with(
    listener: TcpListener,
    node: mpsc::Sender<ApiRequest>,
    limits: Limits,
    resyncing: Arc<AtomicBool>,
) {
    // Descriptors: a slot is taken before each accept, so the API never holds more than
    // `limits.fds()`; beyond, connections wait in the kernel's backlog (delayed, never
    // reset). Of those, `connections` are served and the rest answered 503.
    let slots = Arc::new(Semaphore::new(limits.fds()));
    let served = Arc::new(Semaphore::new(limits.connections));
    let api = handler::Api::new(node, limits, resyncing);
    loop {
        let Ok(slot) = Arc::clone(&slots).acquire_owned().await else {
            return;
        };
        let stream = match listener.accept().await {
            Ok((s, _)) => s,
            Err(e) => {
                // Out of descriptors, most likely: the backlog holds the rest meanwhile.
                tracing::warn!(error = %e, "API accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let serve = Arc::clone(&served).try_acquire_owned().ok();
        let api = api.clone();
        tokio::spawn(async move {
            let busy = serve.is_none();
            connection(stream, api, limits, busy).await;
            drop((serve, slot));
        });
    }
}

/// One connection: one request, answered by hyper under the limits.
async fn connection(stream: TcpStream, api: handler::Api, limits: Limits, busy: bool) {
    // hyper's head timer starts when it first reads; a client that sends nothing at all
    // is closed here.
    if tokio::time::timeout(limits.head_timeout, stream.readable())
        .await
        .is_err()
    {
        return;
    }
    let _ = stream.set_nodelay(true);
    let ctl = Arc::new(ConnCtl::default());
    let svc = {
        let ctl = Arc::clone(&ctl);
        hyper::service::service_fn(move |req| {
            let api = api.clone();
            let ctl = Arc::clone(&ctl);
            async move { Ok::<_, std::convert::Infallible>(api.handle(req, busy, &ctl).await) }
        })
    };
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.head_timeout)
        .keep_alive(false)
        .max_buf_size(16 * 1024);
    let conn = builder.serve_connection(TokioIo::new(stream), svc);
    tokio::pin!(conn);
    let deadline = tokio::time::sleep(limits.request_deadline());
    tokio::pin!(deadline);
    let mut past_deadline = false;
    loop {
        tokio::select! {
            _ = &mut conn => return,
            () = ctl.kill.notified() => return,
            () = &mut deadline, if !past_deadline => {
                if !ctl.streaming.load(Ordering::Relaxed) {
                    return;
                }
                past_deadline = true;
            }
        }
    }
}
