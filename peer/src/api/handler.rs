//! One request: route, read the body under its limits, ask the node, render the answer.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use cvx_protocol::ledger::{TxOutcome, TxResult};
use cvx_protocol::txfile::TxFile;
use cvx_protocol::{Canonical, ErrorCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response, StatusCode, header};
use tokio::sync::{Semaphore, mpsc, oneshot};
use tower::ServiceExt as _;
use tower::limit::ConcurrencyLimit;
use tower::load_shed::LoadShed;

use super::routes::{self, NoRoute, Route};
use super::{ApiQuery, ApiReply, ApiRequest, ConnCtl, Limits};

/// A response body: whole, or an event stream.
pub type Body = BoxBody<Bytes, Infallible>;

/// The stable code of an API error: every transaction/client [`ErrorCode`], and the
/// HTTP-level ones. Each has one HTTP status (docs/api.yaml, docs/operations.md).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ApiCode {
    /// A code of `cvx_protocol::ErrorCode` (docs/error-codes.md).
    Tx(ErrorCode),
    /// No such route (404).
    Route,
    /// The route exists under another method (405).
    Method,
    /// The body is over the limit (413).
    TooLarge,
    /// The body is not `application/octet-stream` (415).
    MediaType,
}

impl ApiCode {
    /// Every HTTP-level code (the others are [`ErrorCode::ALL`]).
    pub const HTTP: [Self; 4] = [Self::Route, Self::Method, Self::TooLarge, Self::MediaType];

    /// The stable name.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Self::Tx(c) => c.name(),
            Self::Route => "ROUTE",
            Self::Method => "METHOD",
            Self::TooLarge => "TOO_LARGE",
            Self::MediaType => "MEDIA_TYPE",
        }
    }

    /// The HTTP status this code is always answered with.
    #[must_use]
    pub const fn status(self) -> StatusCode {
        match self {
            Self::Tx(c) => match c {
                ErrorCode::Format | ErrorCode::Argument => StatusCode::BAD_REQUEST,
                ErrorCode::Nobody => StatusCode::NOT_FOUND,
                ErrorCode::Trust => StatusCode::FORBIDDEN,
                ErrorCode::Sequence | ErrorCode::State | ErrorCode::Exists => StatusCode::CONFLICT,
                ErrorCode::Signature | ErrorCode::Funds => StatusCode::UNPROCESSABLE_ENTITY,
                ErrorCode::Load | ErrorCode::Network => StatusCode::SERVICE_UNAVAILABLE,
                ErrorCode::Timeout => StatusCode::REQUEST_TIMEOUT,
                ErrorCode::Refused => StatusCode::BAD_GATEWAY,
            },
            Self::Route => StatusCode::NOT_FOUND,
            Self::Method => StatusCode::METHOD_NOT_ALLOWED,
            Self::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::MediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
        }
    }
}

/// An error answer.
#[derive(Debug, thiserror::Error)]
#[error("{}: {detail}", code.name())]
pub struct ApiError {
    code: ApiCode,
    detail: String,
    allow: Option<&'static str>,
}

impl ApiError {
    fn new(code: ApiCode, detail: impl Into<String>) -> Self {
        Self {
            code,
            detail: detail.into(),
            allow: None,
        }
    }

    fn tx(code: ErrorCode, detail: impl Into<String>) -> Self {
        Self::new(ApiCode::Tx(code), detail)
    }

    fn busy(what: &str) -> Self {
        Self::tx(
            ErrorCode::Load,
            format!("{what}; retry after the Retry-After seconds"),
        )
    }

    fn into_response(self) -> Response<Body> {
        let body = serde_json::json!({"code": self.code.name(), "detail": self.detail});
        let mut r = json(self.code.status(), &body);
        if self.code.status() == StatusCode::SERVICE_UNAVAILABLE {
            r.headers_mut()
                .insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
        }
        if let Some(a) = self.allow {
            r.headers_mut()
                .insert(header::ALLOW, header::HeaderValue::from_static(a));
        }
        r
    }
}

/// A whole response.
pub fn whole(status: StatusCode, ctype: &'static str, body: impl Into<Bytes>) -> Response<Body> {
    let mut r = Response::new(Full::new(body.into()).boxed());
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(ctype),
    );
    r
}

fn json(status: StatusCode, v: &serde_json::Value) -> Response<Body> {
    whole(status, "application/json", v.to_string())
}

/// The node behind a tower stack: at most `in_flight` calls at once, the rest shed.
type Limited = LoadShed<ConcurrencyLimit<NodeCall>>;

/// One question to the node, answered within the node timeout.
#[derive(Clone, Debug)]
pub struct NodeCall {
    node: mpsc::Sender<ApiRequest>,
    timeout: std::time::Duration,
}

impl tower::Service<ApiQuery> for NodeCall {
    type Response = ApiReply;
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<ApiReply, ApiError>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), ApiError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, q: ApiQuery) -> Self::Future {
        let node = self.node.clone();
        let timeout = self.timeout;
        Box::pin(async move {
            let rx = send(&node, q)?;
            match tokio::time::timeout(timeout, rx).await {
                Ok(Ok(r)) => Ok(r),
                Ok(Err(_)) => Err(stopping()),
                Err(_) => Err(ApiError::busy("the node did not answer in time")),
            }
        })
    }
}

fn stopping() -> ApiError {
    ApiError::busy("the peer is stopping")
}

fn send(
    node: &mpsc::Sender<ApiRequest>,
    q: ApiQuery,
) -> Result<oneshot::Receiver<ApiReply>, ApiError> {
    let (tx, rx) = oneshot::channel();
    match node.try_send((q, tx)) {
        Ok(()) => Ok(rx),
        Err(mpsc::error::TrySendError::Full(_)) => {
            Err(ApiError::busy("the node's request queue is full"))
        }
        Err(mpsc::error::TrySendError::Closed(_)) => Err(stopping()),
    }
}

/// The API service, cloned into every connection.
#[derive(Clone, Debug)]
pub struct Api {
    node: mpsc::Sender<ApiRequest>,
    limited: Limited,
    limits: Limits,
    uploads: Arc<Semaphore>,
    streams: Arc<Semaphore>,
    /// Set while the node's loop is busy with a run-time resync (seconds): a submission
    /// is refused `NETWORK` without asking the node meanwhile.
    resyncing: Arc<AtomicBool>,
}

/// Why a body could not be taken.
enum BodyError {
    TooLarge,
    Slow,
    Broken,
}

impl Api {
    /// The service over the node channel.
    pub fn new(node: mpsc::Sender<ApiRequest>, limits: Limits, resyncing: Arc<AtomicBool>) -> Self {
        let call = NodeCall {
            node: node.clone(),
            timeout: limits.node_timeout,
        };
        Self {
            node,
            limited: LoadShed::new(ConcurrencyLimit::new(call, limits.in_flight)),
            limits,
            uploads: Arc::new(Semaphore::new(limits.uploads)),
            streams: Arc::new(Semaphore::new(limits.streams)),
            resyncing,
        }
    }

    /// Answer one request (`busy`: the connection is over the limit; answer 503).
    pub async fn handle(
        &self,
        req: Request<Incoming>,
        busy: bool,
        ctl: &ConnCtl,
    ) -> Response<Body> {
        let route = routes::route(req.method().as_str(), req.uri().path(), req.uri().query());
        let result = match route {
            _ if busy => Err(ApiError::busy("too many connections")),
            Ok(Route::Submit { wait }) => {
                return self
                    .submit(req, wait)
                    .await
                    .unwrap_or_else(ApiError::into_response);
            }
            Ok(r) => {
                let openmetrics = req
                    .headers()
                    .get_all(header::ACCEPT)
                    .iter()
                    .filter_map(|v| v.to_str().ok())
                    .any(|v| v.contains("application/openmetrics-text"));
                self.get(r, ctl, openmetrics).await
            }
            Err(NoRoute::Path) => Err(ApiError::new(
                ApiCode::Route,
                "no such route: see docs/api.yaml (GET /v1/status, /v1/account/{n}, /v1/peer/{key}, /v1/tx/{id}, /v1/events, /metrics; POST /v1/tx)",
            )),
            Err(NoRoute::Method(allow)) => Err(ApiError {
                allow: Some(allow),
                ..ApiError::new(ApiCode::Method, format!("this route takes {allow} only"))
            }),
            Err(NoRoute::Bad(detail)) => Err(ApiError::tx(ErrorCode::Format, detail)),
        };
        // Read whatever body came with a request that takes none, so that the client
        // reads the answer rather than a reset.
        let _ = read_body(req.into_body(), 0, &self.limits).await;
        result.unwrap_or_else(ApiError::into_response)
    }

    async fn ask(&self, q: ApiQuery) -> Result<ApiReply, ApiError> {
        self.limited.clone().oneshot(q).await.map_err(|e| {
            e.downcast::<ApiError>()
                .map_or_else(|_| ApiError::busy("too many requests at once"), |e| *e)
        })
    }

    async fn get(
        &self,
        route: Route,
        ctl: &ConnCtl,
        openmetrics: bool,
    ) -> Result<Response<Body>, ApiError> {
        let nobody = |what: &str| ApiError::tx(ErrorCode::Nobody, format!("no such {what}"));
        let null = || Ok(whole(StatusCode::OK, "application/json", "null"));
        let unexpected = || {
            Err(ApiError::tx(
                ErrorCode::State,
                "unexpected answer from the node",
            ))
        };
        match route {
            Route::Status { legacy } => match self.ask(ApiQuery::Status).await? {
                ApiReply::Status { status, network } => {
                    let mut v = status_json(&status);
                    if !legacy {
                        v["network"] = network.0.to_hex().into();
                    }
                    Ok(json(StatusCode::OK, &v))
                }
                _ => unexpected(),
            },
            Route::Metrics => match self.ask(ApiQuery::Metrics).await? {
                ApiReply::Metrics(text) if openmetrics => Ok(whole(
                    StatusCode::OK,
                    "application/openmetrics-text; version=1.0.0; charset=utf-8",
                    text,
                )),
                ApiReply::Metrics(text) => Ok(whole(
                    StatusCode::OK,
                    "text/plain; version=0.0.4; charset=utf-8",
                    prometheus_text(&text),
                )),
                _ => unexpected(),
            },
            Route::Account { n, legacy } => match self.ask(ApiQuery::Account(n)).await? {
                ApiReply::Account(Some(a)) => Ok(json(
                    StatusCode::OK,
                    &serde_json::json!({
                        "address": n,
                        "key": a.key.to_hex(),
                        "balance": a.balance.get(),
                        "sequence": a.sequence,
                    }),
                )),
                ApiReply::Account(None) if legacy => null(),
                ApiReply::Account(None) => Err(nobody("account")),
                _ => unexpected(),
            },
            Route::Peer { key, legacy } => match self.ask(ApiQuery::Peer(key)).await? {
                ApiReply::Peer(Some(p)) => Ok(json(
                    StatusCode::OK,
                    &serde_json::json!({
                        "key": p.key.to_hex(),
                        "controller": p.controller.0,
                        "stake": p.stake.get(),
                        "host": p.host.as_ref().map(|h| h.as_str().to_owned()),
                        "last_block_time": p.last_block_time.0,
                    }),
                )),
                ApiReply::Peer(None) if legacy => null(),
                ApiReply::Peer(None) => Err(nobody("peer")),
                _ => unexpected(),
            },
            Route::Tx(id) => match self.ask(ApiQuery::Tx(id)).await? {
                ApiReply::Tx(Some(r)) => Ok(json(StatusCode::OK, &result_json(&r))),
                ApiReply::Tx(None) => Err(nobody(
                    "finalized transaction here (pending, never submitted, or older than the peer remembers)",
                )),
                _ => unexpected(),
            },
            Route::Events => {
                let Ok(permit) = Arc::clone(&self.streams).try_acquire_owned() else {
                    return Err(ApiError::busy("too many event streams"));
                };
                match self.ask(ApiQuery::Events).await? {
                    ApiReply::Events(rx) => {
                        ctl.streaming.store(true, Ordering::Relaxed);
                        Ok(super::events::stream(rx, permit, self.limits, ctl))
                    }
                    _ => unexpected(),
                }
            }
            Route::Submit { .. } => unexpected(),
        }
    }

    async fn submit(&self, req: Request<Incoming>, wait: u64) -> Result<Response<Body>, ApiError> {
        let Ok(_permit) = Arc::clone(&self.uploads).try_acquire_owned() else {
            let _ = read_body(req.into_body(), 0, &self.limits).await;
            return Err(ApiError::busy("too many transaction uploads at once"));
        };
        let ctype_ok = req.headers().get(header::CONTENT_TYPE).is_none_or(|v| {
            v.to_str().is_ok_and(|s| {
                s.split(';')
                    .next()
                    .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/octet-stream"))
            })
        });
        let declared = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|s| s.parse::<u64>().ok());
        let max = self.limits.max_body;
        let too_large = || {
            ApiError::new(
                ApiCode::TooLarge,
                format!(
                    "the body is over {max} bytes: send the signed-transaction file cvx-vault wrote"
                ),
            )
        };
        if declared.is_some_and(|n| n > self.limits.drain as u64) {
            return Err(too_large());
        }
        let body = match read_body(req.into_body(), max, &self.limits).await {
            Ok(b) => b,
            Err(BodyError::TooLarge) => return Err(too_large()),
            Err(BodyError::Slow) => {
                return Err(ApiError::tx(
                    ErrorCode::Timeout,
                    format!(
                        "the body did not arrive within {:?}",
                        self.limits.body_timeout
                    ),
                ));
            }
            Err(BodyError::Broken) => {
                return Err(ApiError::tx(
                    ErrorCode::Format,
                    "the body ended early or is malformed",
                ));
            }
        };
        if !ctype_ok {
            return Err(ApiError::new(
                ApiCode::MediaType,
                "send the file as Content-Type: application/octet-stream",
            ));
        }
        if body.is_empty() {
            return Err(ApiError::tx(
                ErrorCode::Format,
                "empty body: send the signed-transaction file cvx-vault wrote",
            ));
        }
        let file = TxFile::decode(&body).map_err(|e| {
            ApiError::tx(
                ErrorCode::Format,
                format!("not a signed-transaction file: {e}"),
            )
        })?;
        if self.resyncing.load(Ordering::Relaxed) {
            return Err(ApiError::tx(
                ErrorCode::Network,
                "this peer is resyncing with the network and cannot take part in consensus now: submit through another peer or retry in a few seconds",
            ));
        }
        let id = match self.ask(ApiQuery::Submit(Box::new(file))).await? {
            ApiReply::Accepted(id) => id,
            ApiReply::Refused { code, detail } => return Err(ApiError::tx(code, detail)),
            _ => {
                return Err(ApiError::tx(
                    ErrorCode::State,
                    "unexpected answer from the node",
                ));
            }
        };
        let pending = || {
            Ok(json(
                StatusCode::ACCEPTED,
                &serde_json::json!({"id": id.to_hex(), "status": "pending"}),
            ))
        };
        if wait == 0 {
            return pending();
        }
        let rx = send(&self.node, ApiQuery::Wait(id))?;
        match tokio::time::timeout(std::time::Duration::from_secs(wait), rx).await {
            Ok(Ok(ApiReply::Tx(Some(r)))) => Ok(json(StatusCode::OK, &result_json(&r))),
            Ok(Err(_)) => Err(stopping()),
            _ => pending(),
        }
    }
}

/// Read a body: at most `keep` bytes kept; beyond, read and discarded up to the drain
/// limit, then [`BodyError::TooLarge`]; all within the body timeout.
async fn read_body(mut body: Incoming, keep: usize, limits: &Limits) -> Result<Vec<u8>, BodyError> {
    use hyper::body::Body as _;
    if body.is_end_stream() {
        return Ok(Vec::new());
    }
    let work = async {
        let mut buf = Vec::new();
        let mut total = 0usize;
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|_| BodyError::Broken)?;
            if let Ok(data) = frame.into_data() {
                total = total.saturating_add(data.len());
                if total > limits.drain {
                    return Err(BodyError::TooLarge);
                }
                if total <= keep {
                    buf.extend_from_slice(&data);
                }
            }
        }
        if total > keep {
            Err(BodyError::TooLarge)
        } else {
            Ok(buf)
        }
    };
    tokio::time::timeout(limits.body_timeout, work)
        .await
        .unwrap_or(Err(BodyError::Slow))
}

/// The OpenMetrics exposition in the Prometheus text format 0.0.4, for scrapers that do
/// not ask for OpenMetrics (curl, older tools): a counter family's `# HELP`/`# TYPE` lines
/// name it with its `_total` (as the samples do), and there is no `# EOF`. Samples are the
/// same in both formats.
#[must_use]
pub fn prometheus_text(openmetrics: &str) -> String {
    let counters: std::collections::HashSet<&str> = openmetrics
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|t| t.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(openmetrics.len() + 256);
    for line in openmetrics.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        let meta = ["# HELP ", "# TYPE "]
            .into_iter()
            .find_map(|p| line.strip_prefix(p).map(|rest| (p, rest)));
        match meta {
            Some((p, rest)) => {
                let (name, tail) = rest.split_once(' ').unwrap_or((rest, ""));
                if counters.contains(name) {
                    out.push_str(&format!("{p}{name}_total {tail}"));
                } else {
                    out.push_str(line);
                }
            }
            None => out.push_str(line),
        }
        out.push('\n');
    }
    out
}

/// A status as JSON (counts only: never the list of connections).
#[must_use]
pub fn status_json(s: &cvx_protocol::peer_wire::Status) -> serde_json::Value {
    serde_json::json!({
        "peer": s.peer.to_hex(),
        "proposal": s.proposal,
        "consensus": s.consensus,
        "finality": s.finality,
        "state_root": s.state_root.to_hex(),
        "in_consensus": s.in_consensus,
        "outgoing": s.outgoing,
        "incoming": s.incoming,
    })
}

/// A finalized result as JSON.
#[must_use]
pub fn result_json(r: &TxResult) -> serde_json::Value {
    let (outcome, code) = match r.outcome {
        TxOutcome::Applied => ("applied", None),
        TxOutcome::Failed(c) => ("failed", Some(c.name())),
    };
    serde_json::json!({
        "id": r.id.to_hex(),
        "status": "finalized",
        "block": r.block_position,
        "index": r.index,
        "outcome": outcome,
        "code": code,
    })
}
