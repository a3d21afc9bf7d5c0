//! The local HTTP JSON API and Prometheus `/metrics` (default bind: 127.0.0.1 only).
//!
//! `GET /status`, `GET /account/N`, `GET /peer/KEYHEX`, `GET /metrics`. Read-only: a
//! transaction is submitted over the peer port (`cvx-peer submit`). Requests are capped
//! (8 KiB of head, 5 s), at most 64 at once, one request per connection.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc, oneshot};

/// What the API asks the node.
#[derive(Debug)]
pub enum ApiQuery {
    /// `/status` (JSON).
    Status,
    /// `/metrics` (Prometheus text).
    Metrics,
    /// `/account/N` (JSON or null).
    Account(u64),
    /// `/peer/KEYHEX` (JSON or null).
    Peer(cvx_protocol::PublicKey),
}

/// A request with its reply channel: `(content type, body)`.
pub type ApiRequest = (ApiQuery, oneshot::Sender<(&'static str, String)>);

const MAX_HEAD: usize = 8 * 1024;
const TIMEOUT: Duration = Duration::from_secs(5);

/// Serve until the task is dropped.
pub async fn serve(listener: TcpListener, node: mpsc::Sender<ApiRequest>) {
    let slots = Arc::new(Semaphore::new(64));
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let Ok(permit) = Arc::clone(&slots).try_acquire_owned() else {
            continue;
        };
        let node = node.clone();
        tokio::spawn(async move {
            let _ = tokio::time::timeout(TIMEOUT, one(stream, node)).await;
            drop(permit);
        });
    }
}

fn parse_path(path: &str) -> Option<ApiQuery> {
    let mut parts = path.trim_start_matches('/').splitn(2, '/');
    match (parts.next()?, parts.next()) {
        ("status", None) => Some(ApiQuery::Status),
        ("metrics", None) => Some(ApiQuery::Metrics),
        ("account", Some(n)) => n.parse().ok().map(ApiQuery::Account),
        ("peer", Some(k)) => cvx_protocol::PublicKey::from_hex(k)
            .ok()
            .map(ApiQuery::Peer),
        _ => None,
    }
}

async fn one(mut s: TcpStream, node: mpsc::Sender<ApiRequest>) -> std::io::Result<()> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = s.read(&mut chunk).await?;
        if n == 0 || buf.len() + n > MAX_HEAD {
            return reply(&mut s, "400 Bad Request", "text/plain", "bad request\n").await;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let head = String::from_utf8_lossy(&buf);
    let mut first = head.lines().next().unwrap_or_default().split(' ');
    let (method, path) = (
        first.next().unwrap_or_default(),
        first.next().unwrap_or_default(),
    );
    if method != "GET" {
        return reply(&mut s, "405 Method Not Allowed", "text/plain", "GET only\n").await;
    }
    let Some(q) = parse_path(path) else {
        return reply(
            &mut s,
            "404 Not Found",
            "text/plain",
            "try /status, /metrics, /account/N, /peer/KEYHEX\n",
        )
        .await;
    };
    let (tx, rx) = oneshot::channel();
    if node.send((q, tx)).await.is_err() {
        return reply(
            &mut s,
            "503 Service Unavailable",
            "text/plain",
            "stopping\n",
        )
        .await;
    }
    match rx.await {
        Ok((ctype, body)) => reply(&mut s, "200 OK", ctype, &body).await,
        Err(_) => {
            reply(
                &mut s,
                "503 Service Unavailable",
                "text/plain",
                "stopping\n",
            )
            .await
        }
    }
}

async fn reply(s: &mut TcpStream, status: &str, ctype: &str, body: &str) -> std::io::Result<()> {
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).await?;
    s.write_all(body.as_bytes()).await?;
    s.shutdown().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_parse_strictly() {
        assert!(matches!(parse_path("/status"), Some(ApiQuery::Status)));
        assert!(matches!(parse_path("/metrics"), Some(ApiQuery::Metrics)));
        assert!(matches!(
            parse_path("/account/7"),
            Some(ApiQuery::Account(7))
        ));
        assert!(parse_path("/account/x").is_none());
        assert!(parse_path("/peer/00").is_none());
        assert!(parse_path("/status/x").is_none());
        assert!(
            parse_path("/outgoing").is_none(),
            "no interface lists outgoing peers"
        );
    }
}
