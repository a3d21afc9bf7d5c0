//! `GET /v1/events`: finalized blocks as Server-Sent Events, bounded per client.
//!
//! A forwarder task moves events from the node's broadcast into a small per-client
//! channel that the response body drains. A client that falls behind (the broadcast
//! overwrote events it had not taken, or its own channel is full because it does not
//! read) is sent `event: lagged` when there is room and is then disconnected: it should
//! reconnect and read `/v1/status` to see where finality is.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http_body_util::BodyExt as _;
use hyper::body::{Bytes, Frame};
use hyper::{Response, StatusCode, header};
use tokio::sync::{OwnedSemaphorePermit, broadcast, mpsc};

use super::handler::Body;
use super::{ConnCtl, Limits};

/// A body fed by a channel.
struct ChannelBody(mpsc::Receiver<Bytes>);

impl hyper::body::Body for ChannelBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.0.poll_recv(cx).map(|o| o.map(|b| Ok(Frame::data(b))))
    }
}

/// The streaming response; the forwarder holds the stream permit while it runs.
pub fn stream(
    mut rx: broadcast::Receiver<Arc<str>>,
    permit: OwnedSemaphorePermit,
    limits: Limits,
    ctl: &ConnCtl,
) -> Response<Body> {
    let (tx, body_rx) = mpsc::channel::<Bytes>(limits.stream_buffer.max(1));
    // The connection task waits on this; the forwarder pulls it when the client is stuck.
    let kill = ctl_kill(ctl);
    tokio::spawn(async move {
        let _permit = permit;
        let mut keepalive = tokio::time::interval(limits.stream_keepalive);
        keepalive.reset();
        // Tell the client how long to wait before reconnecting.
        let _ = tx.try_send(Bytes::from_static(b"retry: 1000\n\n"));
        loop {
            let frame = tokio::select! {
                () = tx.closed() => return,
                _ = keepalive.tick() => Bytes::from_static(b": keep-alive\n\n"),
                r = rx.recv() => match r {
                    Ok(ev) => {
                        let pos = serde_json::from_str::<serde_json::Value>(&ev)
                            .ok()
                            .and_then(|v| v["position"].as_u64());
                        let id = pos.map(|p| format!("id: {p}\n")).unwrap_or_default();
                        Bytes::from(format!("event: block\n{id}data: {ev}\n\n"))
                    }
                    Err(broadcast::error::RecvError::Lagged(n)) => {
                        let _ = tx.try_send(Bytes::from(format!(
                            "event: lagged\ndata: {{\"missed\":{n}}}\n\n"
                        )));
                        break;
                    }
                    Err(broadcast::error::RecvError::Closed) => break,
                },
            };
            if tx.try_send(frame).is_err() {
                // The client is not reading: cut it off now.
                kill.notify_one();
                return;
            }
        }
        // End the body; if the client does not even take what is buffered, close.
        drop(tx);
        tokio::time::sleep(limits.head_timeout).await;
        kill.notify_one();
    });
    let mut r = Response::new(ChannelBody(body_rx).boxed());
    *r.status_mut() = StatusCode::OK;
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/event-stream"),
    );
    h.insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-cache"),
    );
    r
}

fn ctl_kill(ctl: &ConnCtl) -> Arc<tokio::sync::Notify> {
    Arc::clone(&ctl.kill)
}
