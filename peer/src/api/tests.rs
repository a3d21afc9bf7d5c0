//! The server against a fake node task, over real sockets.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Mutex;
use std::time::{Duration, Instant};

use cvx_protocol::hash::Hash;
use cvx_protocol::ledger::{Account, Action, SignedTransaction, Transaction, TxOutcome, TxResult};
use cvx_protocol::peer_wire::Status;
use cvx_protocol::txfile::TxFile;
use cvx_protocol::{Address, Amount, Canonical, ErrorCode, NetworkId, PublicKey, Signature};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::*;

const NET: NetworkId = NetworkId(Hash([7; 32]));

/// What the fake node saw and how it behaves.
#[derive(Default)]
struct Fake {
    submits: Mutex<Vec<Hash>>,
    delay: Duration,
}

fn status() -> Status {
    // RFC 8032's first test key (a valid point; nothing here signs).
    let key =
        PublicKey::from_hex("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a")
            .unwrap();
    Status {
        peer: key,
        proposal: 3,
        consensus: 2,
        finality: 1,
        state_root: Hash([1; 32]),
        in_consensus: true,
        outgoing: 3,
        incoming: 1,
    }
}

/// Start a fake node and the API (the node not resyncing); the API address and the event
/// sender.
async fn start(limits: Limits, fake: Arc<Fake>) -> (String, broadcast::Sender<Arc<str>>) {
    start_with(limits, fake, Arc::default()).await
}

/// [`start`] with the node's "resyncing" flag.
async fn start_with(
    limits: Limits,
    fake: Arc<Fake>,
    resyncing: Arc<AtomicBool>,
) -> (String, broadcast::Sender<Arc<str>>) {
    let (tx, mut rx) = mpsc::channel::<ApiRequest>(64);
    let (events, _) = broadcast::channel::<Arc<str>>(4);
    let ev = events.clone();
    tokio::spawn(async move {
        while let Some((q, reply)) = rx.recv().await {
            let fake = Arc::clone(&fake);
            let ev = ev.clone();
            tokio::spawn(async move {
                tokio::time::sleep(fake.delay).await;
                let r = match q {
                    ApiQuery::Status => ApiReply::Status {
                        status: status(),
                        network: NET,
                    },
                    ApiQuery::Metrics => ApiReply::Metrics(
                        "# HELP cvx_peer_x X.\n# TYPE cvx_peer_x counter\ncvx_peer_x_total 3\n# TYPE cvx_peer_finality gauge\ncvx_peer_finality 1\n# EOF\n".into(),
                    ),
                    ApiQuery::Account(n) => ApiReply::Account((n == 1).then(|| Account {
                        key: status().peer,
                        balance: Amount::new(5).unwrap(),
                        sequence: 2,
                    })),
                    ApiQuery::Peer(_) => ApiReply::Peer(None),
                    ApiQuery::Tx(_) => ApiReply::Tx(None),
                    ApiQuery::Submit(f) => {
                        if f.network == NET {
                            let id = f.signed.id();
                            fake.submits.lock().unwrap().push(id);
                            ApiReply::Accepted(id)
                        } else {
                            ApiReply::Refused {
                                code: ErrorCode::Signature,
                                detail: "another network".into(),
                            }
                        }
                    }
                    ApiQuery::Wait(id) => {
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        ApiReply::Tx(Some(TxResult {
                            id,
                            block_position: 9,
                            index: 0,
                            outcome: TxOutcome::Applied,
                        }))
                    }
                    ApiQuery::Events => ApiReply::Events(ev.subscribe()),
                };
                let _ = reply.send(r);
            });
        }
    });
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap().to_string();
    tokio::spawn(serve_with(l, tx, limits, resyncing));
    (addr, events)
}

/// Send raw bytes; the status code and the whole response (Err: reset or closed early).
async fn raw(addr: &str, req: &[u8]) -> std::io::Result<(u16, String)> {
    let mut s = TcpStream::connect(addr).await?;
    s.write_all(req).await?;
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(20), s.read_to_end(&mut out))
        .await
        .map_err(|_| std::io::Error::other("no answer within 20 s"))??;
    let text = String::from_utf8_lossy(&out).into_owned();
    let code = text
        .strip_prefix("HTTP/1.1 ")
        .and_then(|r| r.get(..3))
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("not an HTTP answer: {text:?}")))?;
    Ok((code, text))
}

async fn get(addr: &str, path: &str) -> (u16, String) {
    raw(
        addr,
        format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes(),
    )
    .await
    .unwrap()
}

async fn post(addr: &str, path: &str, ctype: &str, body: &[u8]) -> (u16, String) {
    let mut req = format!(
        "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    req.extend_from_slice(body);
    raw(addr, &req).await.unwrap()
}

fn body_json(text: &str) -> serde_json::Value {
    serde_json::from_str(text.split("\r\n\r\n").nth(1).unwrap()).unwrap()
}

/// A well-formed file; the signature is filler (the API parses, the node verifies, and
/// the peer's sources never hold a signing key: peer/tests/boundaries.rs).
fn tx_file(network: NetworkId) -> Vec<u8> {
    let tx = Transaction {
        origin: Address(1),
        sequence: 3,
        action: Action::SetPeerStake {
            peer: status().peer,
            stake: Amount::ZERO,
        },
    };
    let signed = SignedTransaction {
        tx,
        signature: Signature([0x5a; 64]),
    };
    TxFile::new(network, signed).encode()
}

fn quick() -> Limits {
    Limits {
        head_timeout: Duration::from_millis(500),
        body_timeout: Duration::from_millis(500),
        ..Limits::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routes_answer_json_with_stable_codes() {
    let (addr, _ev) = start(quick(), Arc::default()).await;
    let (c, t) = get(&addr, "/v1/status").await;
    assert_eq!(c, 200, "{t}");
    let v = body_json(&t);
    assert_eq!(v["finality"], 1);
    assert_eq!(v["network"], NET.0.to_hex());
    let (c, t) = get(&addr, "/status").await;
    assert_eq!(c, 200);
    assert!(
        body_json(&t).get("network").is_none(),
        "the pre-v1 form is unchanged"
    );
    let (c, t) = get(&addr, "/v1/account/1").await;
    assert_eq!((c, body_json(&t)["sequence"].as_u64()), (200, Some(2)));
    let (c, t) = get(&addr, "/v1/account/2").await;
    assert_eq!((c, body_json(&t)["code"].as_str()), (404, Some("NOBODY")));
    assert_eq!(
        get(&addr, "/account/2").await.1.split("\r\n\r\n").nth(1),
        Some("null")
    );
    let (c, t) = get(&addr, "/v1/account/01").await;
    assert_eq!((c, body_json(&t)["code"].as_str()), (400, Some("FORMAT")));
    let (c, t) = get(&addr, "//status").await;
    assert_eq!((c, body_json(&t)["code"].as_str()), (404, Some("ROUTE")));
    let (c, t) = get(&addr, "/v1/tx").await;
    assert_eq!((c, body_json(&t)["code"].as_str()), (405, Some("METHOD")));
    assert!(t.to_ascii_lowercase().contains("allow: post"), "{t}");
    let (c, t) = get(&addr, &format!("/v1/tx/{}", "ab".repeat(32))).await;
    assert_eq!((c, body_json(&t)["code"].as_str()), (404, Some("NOBODY")));
    // Prometheus asks for OpenMetrics; anything else gets the 0.0.4 text format.
    let (c, t) = get(&addr, "/metrics").await;
    assert_eq!(c, 200);
    assert!(t.contains("text/plain; version=0.0.4"), "{t}");
    assert!(t.ends_with("# HELP cvx_peer_x_total X.\n# TYPE cvx_peer_x_total counter\ncvx_peer_x_total 3\n# TYPE cvx_peer_finality gauge\ncvx_peer_finality 1\n"), "{t}");
    let (c, t) = raw(
        &addr,
        b"GET /metrics HTTP/1.1\r\nAccept: application/openmetrics-text;version=1.0.0,text/plain;q=0.5\r\n\r\n",
    )
    .await
    .unwrap();
    assert_eq!(c, 200);
    assert!(t.contains("application/openmetrics-text"), "{t}");
    assert!(t.ends_with("# TYPE cvx_peer_x counter\ncvx_peer_x_total 3\n# TYPE cvx_peer_finality gauge\ncvx_peer_finality 1\n# EOF\n"), "{t}");
    // A head over the limit is refused with 431, not a reset.
    let big = format!(
        "GET /v1/status HTTP/1.1\r\nX: {}\r\n\r\n",
        "a".repeat(20_000)
    );
    assert_eq!(raw(&addr, big.as_bytes()).await.unwrap().0, 431);
    // A head ending in bare LFs is still a request that gets an answer.
    let (c, _) = raw(&addr, b"GET /v1/status HTTP/1.1\nHost: x\n\n")
        .await
        .unwrap();
    assert_eq!(c, 200);
    // A megabyte POSTed to a GET route: 405, not a broken pipe.
    let (c, _) = post(&addr, "/v1/status", "text/plain", &vec![b'x'; 1 << 20]).await;
    assert_eq!(c, 405);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_the_limits_requests_get_503_with_retry_after_never_a_reset() {
    // A slow node and a small in-flight limit: most of 300 at once are shed.
    let fake = Arc::new(Fake {
        delay: Duration::from_millis(100),
        ..Fake::default()
    });
    let limits = Limits {
        in_flight: 8,
        connections: 100,
        ..Limits::default()
    };
    let (addr, _ev) = start(limits, fake).await;
    let tasks: Vec<_> = (0..300)
        .map(|_| {
            let a = addr.clone();
            tokio::spawn(
                async move { raw(&a, b"GET /v1/status HTTP/1.1\r\nHost: x\r\n\r\n").await },
            )
        })
        .collect();
    let (mut ok, mut busy) = (0, 0);
    for t in tasks {
        match t.await.unwrap() {
            Ok((200, _)) => ok += 1,
            Ok((503, text)) => {
                assert!(
                    text.to_ascii_lowercase().contains("retry-after: 1"),
                    "{text}"
                );
                assert_eq!(body_json(&text)["code"], "LOAD");
                busy += 1;
            }
            other => panic!("not 200 or 503: {other:?}"),
        }
    }
    assert_eq!(ok + busy, 300);
    assert!(ok >= 8 && busy > 0, "{ok} answered, {busy} shed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_clients_are_cut_off_and_do_not_block_others() {
    let (addr, _ev) = start(quick(), Arc::default()).await;
    // 64 connections that send half a head, and 8 that send nothing.
    let mut slow = Vec::new();
    for i in 0..72 {
        let mut s = TcpStream::connect(&addr).await.unwrap();
        if i < 64 {
            s.write_all(b"GET /v1/status HTTP/1.1\r\nHost")
                .await
                .unwrap();
        }
        slow.push(s);
    }
    let t = Instant::now();
    for _ in 0..20 {
        assert_eq!(get(&addr, "/v1/status").await.0, 200);
    }
    assert!(t.elapsed() < Duration::from_secs(10));
    // Each slow connection is closed by the server after the head timeout.
    for mut s in slow {
        let mut buf = Vec::new();
        let r = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut buf)).await;
        assert!(r.is_ok(), "a slow connection was left open");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_over_the_cap_are_answered_503() {
    let limits = Limits {
        connections: 4,
        ..Limits::default()
    };
    let (addr, _ev) = start(limits, Arc::default()).await;
    let mut held = Vec::new();
    for _ in 0..4 {
        let mut s = TcpStream::connect(&addr).await.unwrap();
        s.write_all(b"GET /v1/status HTTP/1.1\r\n").await.unwrap();
        held.push(s);
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (c, t) = get(&addr, "/v1/status").await;
    assert_eq!(c, 503, "{t}");
    drop(held);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn beyond_every_slot_connections_wait_in_the_backlog_never_reset() {
    let limits = Limits {
        connections: 2,
        ..quick()
    };
    let (addr, _ev) = start(limits, Arc::default()).await;
    // Four silent connections take every descriptor slot (2 served, 2 answered 503)
    // until the head timeout closes them.
    let mut held = Vec::new();
    for _ in 0..limits.fds() {
        held.push(TcpStream::connect(&addr).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let t = Instant::now();
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let a = addr.clone();
            tokio::spawn(async move { raw(&a, b"GET /v1/status HTTP/1.1\r\n\r\n").await })
        })
        .collect();
    for task in tasks {
        let r = task.await.unwrap();
        assert!(matches!(r, Ok((200 | 503, _))), "{r:?}");
    }
    assert!(
        t.elapsed() >= Duration::from_millis(300),
        "they waited for the silent ones to be closed"
    );
    drop(held);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_bodies_are_refused_and_nothing_is_queued() {
    let fake = Arc::new(Fake::default());
    let (addr, _ev) = start(quick(), Arc::clone(&fake)).await;
    let oct = "application/octet-stream";
    let file = tx_file(NET);
    let code = |t: &str| body_json(t)["code"].as_str().unwrap_or_default().to_owned();
    let (c, t) = post(&addr, "/v1/tx", oct, b"").await;
    assert_eq!((c, code(&t)), (400, "FORMAT".into()));
    let (c, t) = post(&addr, "/v1/tx", oct, &file[..file.len() - 5]).await;
    assert_eq!((c, code(&t)), (400, "FORMAT".into()));
    let mut trailing = file.clone();
    trailing.push(0);
    assert_eq!(post(&addr, "/v1/tx", oct, &trailing).await.0, 400);
    let (c, t) = post(&addr, "/v1/tx", oct, &tx_file(NetworkId(Hash([8; 32])))).await;
    assert_eq!((c, code(&t)), (422, "SIGNATURE".into()));
    let (c, t) = post(&addr, "/v1/tx", oct, &vec![0u8; 2 << 20]).await;
    assert_eq!((c, code(&t)), (413, "TOO_LARGE".into()));
    let (c, t) = post(&addr, "/v1/tx", "text/plain", &file).await;
    assert_eq!((c, code(&t)), (415, "MEDIA_TYPE".into()));
    let (c, _) = post(&addr, "/v1/tx?wait=61", oct, &file).await;
    assert_eq!(c, 400);
    // Declared longer than sent, then the write side closed: a broken body.
    let mut s = TcpStream::connect(&addr).await.unwrap();
    s.write_all(b"POST /v1/tx HTTP/1.1\r\nContent-Length: 500\r\n\r\nabc")
        .await
        .unwrap();
    s.shutdown().await.unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    assert!(out.starts_with("HTTP/1.1 400"), "{out}");
    // Declared longer than sent, the connection kept open: the body timeout.
    let mut s = TcpStream::connect(&addr).await.unwrap();
    s.write_all(b"POST /v1/tx HTTP/1.1\r\nContent-Length: 500\r\n\r\nabc")
        .await
        .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    assert!(out.starts_with("HTTP/1.1 408"), "{out}");
    assert!(
        fake.submits.lock().unwrap().is_empty(),
        "nothing reached the node"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_submission_answers_its_id_or_with_wait_its_result() {
    let fake = Arc::new(Fake::default());
    let (addr, _ev) = start(quick(), Arc::clone(&fake)).await;
    let file = tx_file(NET);
    let id = TxFile::decode(&file).unwrap().signed.id().to_hex();
    let (c, t) = post(&addr, "/v1/tx", "application/octet-stream", &file).await;
    assert_eq!(c, 202, "{t}");
    assert_eq!(body_json(&t)["id"], id);
    assert_eq!(body_json(&t)["status"], "pending");
    let (c, t) = post(&addr, "/v1/tx?wait=5", "application/octet-stream", &file).await;
    assert_eq!(c, 200, "{t}");
    let v = body_json(&t);
    assert_eq!(
        (v["id"].as_str(), v["outcome"].as_str()),
        (Some(id.as_str()), Some("applied"))
    );
    assert_eq!(v["block"], 9);
    assert_eq!(fake.submits.lock().unwrap().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_stream_finalized_blocks_and_cut_off_a_lagging_client() {
    let (addr, ev) = start(quick(), Arc::default()).await;
    let mut s = TcpStream::connect(&addr).await.unwrap();
    s.write_all(b"GET /v1/events HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut seen = String::new();
    let mut buf = [0u8; 4096];
    // Wait for the head (the subscription exists once it is sent).
    while !seen.contains("retry:") {
        let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert!(n > 0);
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    assert!(seen.contains("text/event-stream"), "{seen}");
    ev.send(Arc::from(r#"{"position":5}"#)).unwrap();
    while !seen.contains("data: {\"position\":5}") {
        let n = s.read(&mut buf).await.unwrap();
        assert!(n > 0, "{seen}");
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    assert!(seen.contains("event: block\nid: 5\n"), "{seen}");
    // More events than the broadcast holds before the forwarder runs: lagged, then closed.
    for p in 0..1000 {
        let _ = ev.send(Arc::from(format!(r#"{{"position":{p}}}"#)));
    }
    let mut rest = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut rest))
        .await
        .expect("the lagging client is disconnected")
        .unwrap();
    assert!(String::from_utf8_lossy(&rest).contains("event: lagged"));
}

/// While the node's loop is busy with a run-time resync (seconds, out of consensus), a
/// submission is refused `NETWORK` by the API itself, without queueing it for the loop;
/// once the resync is over, the same file is taken.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn while_resyncing_a_submission_is_refused_network_without_asking_the_node() {
    let fake = Arc::new(Fake::default());
    let flag = Arc::new(AtomicBool::new(true));
    let (addr, _ev) = start_with(quick(), Arc::clone(&fake), Arc::clone(&flag)).await;
    let oct = "application/octet-stream";
    let file = tx_file(NET);
    let (c, t) = post(&addr, "/v1/tx?wait=5", oct, &file).await;
    let v = body_json(&t);
    assert_eq!((c, v["code"].as_str()), (503, Some("NETWORK")), "{t}");
    assert!(
        v["detail"]
            .as_str()
            .is_some_and(|d| d.contains("resyncing") && d.contains("another peer")),
        "the refusal says what to do: {t}"
    );
    // A malformed file is still refused as such first.
    let (c, t) = post(&addr, "/v1/tx", oct, &file[..file.len() - 5]).await;
    assert_eq!((c, body_json(&t)["code"].as_str()), (400, Some("FORMAT")));
    assert!(
        fake.submits.lock().unwrap().is_empty(),
        "nothing reached the node"
    );
    // Reads still go to the node.
    assert_eq!(get(&addr, "/v1/status").await.0, 200);
    flag.store(false, Ordering::Relaxed);
    let (c, t) = post(&addr, "/v1/tx", oct, &file).await;
    assert_eq!(c, 202, "{t}");
    assert_eq!(fake.submits.lock().unwrap().len(), 1);
}
