//! The session against a fake signer on a real Unix socket in a temp dir: killed,
//! restarted, stalled, answering garbage, locked, replaced by another key.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use cvx_protocol::consensus::ChallengeResponse;
use cvx_protocol::policy::{SignRequest, Watermark};
use cvx_protocol::{Canonical, Hash, Token};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixListener;
use tokio::task::JoinSet;

use super::*;

/// How the fake answers a `Sign`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// A "signature" whose first 32 bytes are the request's token.
    Sign,
    /// Never answer (until the connection is dropped).
    Stall,
    /// Answer after `ms`, late.
    Late(u64),
    /// A frame header of length 0.
    BadFrame,
    /// A well-framed payload that is not a `SignerMessage`.
    Garbage,
}

#[derive(Debug)]
struct FakeState {
    mode: Mutex<Mode>,
    locked: Mutex<bool>,
    key: PublicKey,
    connections: AtomicUsize,
    signs: AtomicU64,
}

/// A fake `cvx-signer`: kill it by dropping it (its socket file goes too).
#[derive(Debug)]
struct Fake {
    state: Arc<FakeState>,
    task: tokio::task::JoinHandle<()>,
    path: PathBuf,
}

impl Fake {
    fn start(path: &Path, key: PublicKey, mode: Mode) -> Self {
        let _ = std::fs::remove_file(path);
        let listener = UnixListener::bind(path).unwrap();
        let state = Arc::new(FakeState {
            mode: Mutex::new(mode),
            locked: Mutex::new(false),
            key,
            connections: AtomicUsize::new(0),
            signs: AtomicU64::new(0),
        });
        let st = Arc::clone(&state);
        let task = tokio::spawn(async move {
            // Dropped (aborted) with the accept task: every connection dies with it.
            let mut conns = JoinSet::new();
            while let Ok((stream, _)) = listener.accept().await {
                st.connections.fetch_add(1, Ordering::SeqCst);
                conns.spawn(serve_fake(stream, Arc::clone(&st)));
            }
        });
        Self {
            state,
            task,
            path: path.to_path_buf(),
        }
    }

    fn set_mode(&self, m: Mode) {
        *self.state.mode.lock().unwrap() = m;
    }

    fn set_locked(&self, l: bool) {
        *self.state.locked.lock().unwrap() = l;
    }
}

impl Drop for Fake {
    fn drop(&mut self) {
        self.task.abort();
        let _ = std::fs::remove_file(&self.path);
    }
}

async fn serve_fake(mut s: UnixStream, st: Arc<FakeState>) {
    loop {
        let mut h = [0u8; 4];
        if s.read_exact(&mut h).await.is_err() {
            return;
        }
        let mut buf = vec![0u8; u32::from_le_bytes(h) as usize];
        if s.read_exact(&mut buf).await.is_err() {
            return;
        }
        let answer = match ClientMessage::decode(&buf).unwrap() {
            ClientMessage::Hello { .. } => SignerMessage::Hello {
                version: WIRE_VERSION,
                network: network(),
                public_key: st.key,
            },
            ClientMessage::Status => SignerMessage::Status(StatusReport {
                public_key: st.key,
                network: network(),
                watermark: Watermark {
                    block: None,
                    order: None,
                    consensus: None,
                    finality: 0,
                },
                locked: *st.locked.lock().unwrap(),
                state_sequence: 0,
                signed: 0,
                refused: 0,
                connections: 1,
            }),
            ClientMessage::Sign(r) => {
                st.signs.fetch_add(1, Ordering::SeqCst);
                let SignRequest::ChallengeResponse(c) = r.body else {
                    panic!("the tests sign challenge responses")
                };
                let mut sig = [0u8; 64];
                sig[..32].copy_from_slice(&c.token.0);
                let mode = *st.mode.lock().unwrap();
                match mode {
                    _ if *st.locked.lock().unwrap() => {
                        SignerMessage::refused(RefuseCode::Locked, "locked")
                    }
                    Mode::Sign => SignerMessage::Signed {
                        signature: Signature(sig),
                        repeat: false,
                    },
                    Mode::Stall => {
                        std::future::pending::<()>().await;
                        return;
                    }
                    Mode::Late(ms) => {
                        tokio::time::sleep(Duration::from_millis(ms)).await;
                        SignerMessage::Signed {
                            signature: Signature(sig),
                            repeat: false,
                        }
                    }
                    Mode::BadFrame => {
                        let _ = s.write_all(&[0, 0, 0, 0]).await;
                        continue;
                    }
                    Mode::Garbage => {
                        let _ = s.write_all(&[3, 0, 0, 0, 0xff, 0xff, 0xff]).await;
                        continue;
                    }
                }
            }
            ClientMessage::Lock => SignerMessage::Locked,
            ClientMessage::PublicKey => SignerMessage::PublicKey(st.key),
            // Accepts a certificate at an even position, refuses one at an odd position.
            ClientMessage::Certify(_) if *st.locked.lock().unwrap() => {
                SignerMessage::refused(RefuseCode::Locked, "locked")
            }
            ClientMessage::Certify(req) if req.certificate.anchor.position % 2 == 1 => {
                SignerMessage::refused(RefuseCode::CertBelowLock, "below the lock")
            }
            ClientMessage::Certify(req) => SignerMessage::Certified {
                moved: true,
                watermark: Watermark {
                    block: None,
                    order: None,
                    consensus: Some(req.certificate.anchor),
                    finality: req.certificate.anchor.position,
                },
            },
        };
        if s.write_all(&signer_wire::encode_frame(&answer))
            .await
            .is_err()
        {
            return;
        }
    }
}

fn network() -> NetworkId {
    NetworkId(Hash([7; 32]))
}

fn key(n: u8) -> PublicKey {
    (0..=255u8)
        .find_map(|j| PublicKey::from_bytes(&cvx_protocol::hash::hash(&[n, j]).0).ok())
        .unwrap()
}

/// A socket path in a fresh directory of its own, removed with the value.
struct TempSock(PathBuf);

impl std::ops::Deref for TempSock {
    type Target = PathBuf;
    fn deref(&self) -> &PathBuf {
        &self.0
    }
}

impl Drop for TempSock {
    fn drop(&mut self) {
        if let Some(d) = self.0.parent() {
            let _ = std::fs::remove_dir_all(d);
        }
    }
}

fn sock(name: &str) -> TempSock {
    let d = std::env::temp_dir().join(format!("cvx-sess-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    TempSock(d.join("s.sock"))
}

fn settings(path: &Path, timeout_ms: u64) -> SessionSettings {
    SessionSettings {
        socket: path.to_path_buf(),
        key: key(1),
        network: network(),
        reply_timeout: Duration::from_millis(timeout_ms),
    }
}

fn request(token: u8) -> Request {
    Request {
        network: network(),
        body: SignRequest::ChallengeResponse(ChallengeResponse {
            challenger: key(2),
            responder: key(1),
            token: Token([token; 32]),
        }),
    }
}

/// The fake's "signature" over the request with `token`.
fn sig_of(token: u8) -> Signature {
    let mut s = [0u8; 64];
    s[..32].copy_from_slice(&[token; 32]);
    Signature(s)
}

async fn until(what: &str, limit: Duration, mut f: impl FnMut() -> bool) -> Duration {
    let t = Instant::now();
    while !f() {
        assert!(t.elapsed() < limit, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    t.elapsed()
}

#[tokio::test]
async fn signs_in_order_and_every_tagged_answer_carries_its_own_tag() {
    let path = sock("order");
    let _fake = Fake::start(&path, key(1), Mode::Sign);
    let (s, mut signed) = SignerSession::start(settings(&path, 2_000)).await.unwrap();
    assert!(s.is_up());
    assert_eq!(s.sign(request(5)).await.unwrap(), sig_of(5));
    for t in 0..50u8 {
        s.sign_tagged(u64::from(t), request(t)).unwrap();
    }
    for t in 0..50u8 {
        let a = signed.recv().await.unwrap();
        assert_eq!(a.tag, u64::from(t));
        assert_eq!(a.result.unwrap(), sig_of(t));
    }
    assert!(!s.status().await.unwrap().locked);
}

#[tokio::test]
async fn a_killed_then_restarted_signer_is_noticed_at_once_and_reconnected() {
    let path = sock("restart");
    let fake = Fake::start(&path, key(1), Mode::Sign);
    let (s, _signed) = SignerSession::start(settings(&path, 2_000)).await.unwrap();
    assert_eq!(s.sign(request(1)).await.unwrap(), sig_of(1));
    drop(fake); // kill -9: the socket closes and its file is gone
    // Noticed while idle (no request needed), within a moment.
    until("down after the kill", Duration::from_secs(2), || !s.is_up()).await;
    assert!(matches!(
        s.health(),
        Health::Down(SignError::Unreachable { .. })
    ));
    // While down, a request is answered at once with the typed reason, never hangs.
    let t = Instant::now();
    let e = s.sign(request(2)).await.unwrap_err();
    assert!(matches!(e, SignError::Unreachable { .. }), "{e}");
    assert!(t.elapsed() < Duration::from_secs(1));
    assert!(e.to_string().contains("cannot reach the signer"), "{e}");
    // Down long enough that the backoff reaches its cap.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let fake = Fake::start(&path, key(1), Mode::Sign);
    let took = until(
        "up after the restart",
        BACKOFF_MAX + Duration::from_secs(3),
        || s.is_up(),
    )
    .await;
    assert!(took <= BACKOFF_MAX + Duration::from_secs(3), "{took:?}");
    assert_eq!(s.sign(request(3)).await.unwrap(), sig_of(3));
    assert_eq!(fake.state.connections.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_timeout_resets_the_connection_so_a_late_reply_never_answers_the_next_request() {
    let path = sock("late");
    let fake = Fake::start(&path, key(1), Mode::Late(600));
    let (s, _signed) = SignerSession::start(settings(&path, 200)).await.unwrap();
    let e = s.sign(request(1)).await.unwrap_err();
    assert!(matches!(e, SignError::TimedOut(_)), "{e}");
    fake.set_mode(Mode::Sign);
    until("up again", Duration::from_secs(3), || s.is_up()).await;
    // Wait past the late reply: it went to the dropped connection, not to us.
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(s.sign(request(2)).await.unwrap(), sig_of(2));
    assert_eq!(s.sign(request(3)).await.unwrap(), sig_of(3));
    assert_eq!(fake.state.connections.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_stalled_signer_times_out_and_queued_requests_fail_fast_while_down() {
    let path = sock("stall");
    let fake = Fake::start(&path, key(1), Mode::Stall);
    let (s, mut signed) = SignerSession::start(settings(&path, 300)).await.unwrap();
    for t in 0..5u8 {
        s.sign_tagged(u64::from(t), request(t)).unwrap();
    }
    let first = signed.recv().await.unwrap();
    assert!(matches!(first.result, Err(SignError::TimedOut(_))));
    for _ in 1..5 {
        let a = signed.recv().await.unwrap();
        assert!(a.result.is_err());
    }
    // One timeout, not five in a row: the rest fail with the session down, unasked.
    assert_eq!(fake.state.signs.load(Ordering::SeqCst), 1);
    fake.set_mode(Mode::Sign);
    until("up again", Duration::from_secs(3), || s.is_up()).await;
    assert_eq!(s.sign(request(9)).await.unwrap(), sig_of(9));
}

#[tokio::test]
async fn garbage_and_bad_frames_are_protocol_errors_and_reset_the_connection() {
    for mode in [Mode::BadFrame, Mode::Garbage] {
        let path = sock(&format!("garbage-{mode:?}"));
        let fake = Fake::start(&path, key(1), mode);
        let (s, _signed) = SignerSession::start(settings(&path, 2_000)).await.unwrap();
        let e = s.sign(request(1)).await.unwrap_err();
        assert!(matches!(e, SignError::Protocol(_)), "{mode:?}: {e}");
        assert_eq!(e.code(), "PROTOCOL");
        fake.set_mode(Mode::Sign);
        until("up again", Duration::from_secs(3), || s.is_up()).await;
        assert_eq!(s.sign(request(2)).await.unwrap(), sig_of(2));
        assert_eq!(fake.state.connections.load(Ordering::SeqCst), 2);
    }
}

#[tokio::test]
async fn a_locked_signer_is_down_without_being_asked_again_and_unlock_is_noticed() {
    let path = sock("locked");
    let fake = Fake::start(&path, key(1), Mode::Sign);
    let (s, _signed) = SignerSession::start(settings(&path, 2_000)).await.unwrap();
    fake.set_locked(true);
    assert!(matches!(s.sign(request(1)).await, Err(SignError::Locked)));
    assert!(matches!(s.health(), Health::Locked));
    assert_eq!(s.health().failure().map(|e| e.code()), Some("LOCKED"));
    let asked = fake.state.signs.load(Ordering::SeqCst);
    for t in 0..20 {
        assert!(matches!(s.sign(request(t)).await, Err(SignError::Locked)));
    }
    assert_eq!(fake.state.signs.load(Ordering::SeqCst), asked, "not asked");
    fake.set_locked(false);
    until(
        "unlock noticed",
        BACKOFF_MAX + Duration::from_secs(2),
        || s.is_up(),
    )
    .await;
    assert_eq!(s.sign(request(2)).await.unwrap(), sig_of(2));
    // Same connection throughout: locked is not a connection failure.
    assert_eq!(fake.state.connections.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_signer_that_starts_locked_is_reported_locked() {
    let path = sock("startlocked");
    let fake = Fake::start(&path, key(1), Mode::Sign);
    fake.set_locked(true);
    let (s, _signed) = SignerSession::start(settings(&path, 2_000)).await.unwrap();
    assert!(matches!(s.health(), Health::Locked));
    assert!(matches!(s.sign(request(1)).await, Err(SignError::Locked)));
}

#[tokio::test]
async fn another_key_on_the_socket_is_refused_at_start_and_after_a_restart() {
    let path = sock("mismatch");
    let fake = Fake::start(&path, key(3), Mode::Sign);
    let e = SignerSession::start(settings(&path, 2_000))
        .await
        .unwrap_err();
    assert!(
        matches!(
            e,
            SignError::Mismatch {
                what: "public key",
                ..
            }
        ),
        "{e}"
    );
    drop(fake);
    let fake = Fake::start(&path, key(1), Mode::Sign);
    let (s, _signed) = SignerSession::start(settings(&path, 2_000)).await.unwrap();
    drop(fake);
    let _other = Fake::start(&path, key(3), Mode::Sign);
    until("mismatch noticed", Duration::from_secs(5), || {
        matches!(s.health(), Health::Down(SignError::Mismatch { .. }))
    })
    .await;
    assert!(s.sign(request(1)).await.is_err());
}

#[tokio::test]
async fn no_signer_at_start_is_unreachable_and_lock_confirms() {
    let path = sock("none");
    let e = SignerSession::start(settings(&path, 2_000))
        .await
        .unwrap_err();
    assert!(matches!(e, SignError::Unreachable { .. }), "{e}");
    assert!(matches!(
        lock(&path).await,
        Err(SignError::Unreachable { .. })
    ));
    let _fake = Fake::start(&path, key(1), Mode::Sign);
    lock(&path).await.unwrap();
}

#[tokio::test]
async fn the_backoff_doubles_to_its_cap() {
    // Reconnection attempts while the socket is missing: 100, 200, 400, 800 ms, then
    // every 2 s; in 5 s about 5 attempts, never one per request.
    let path = sock("backoff");
    let fake = Fake::start(&path, key(1), Mode::Sign);
    let (s, _signed) = SignerSession::start(settings(&path, 2_000)).await.unwrap();
    drop(fake);
    until("down", Duration::from_secs(2), || !s.is_up()).await;
    let mut rx = s.watch();
    let changes = Arc::new(AtomicUsize::new(0));
    let c = Arc::clone(&changes);
    let counter = tokio::spawn(async move {
        while rx.changed().await.is_ok() {
            c.fetch_add(1, Ordering::SeqCst);
        }
    });
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(5) {
        let _ = s.sign(request(1)).await;
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    counter.abort();
    let n = changes.load(Ordering::SeqCst);
    assert!((3..=8).contains(&n), "{n} reconnection attempts in 5 s");
}

#[tokio::test]
async fn a_signer_that_fails_every_request_is_not_reconnected_ten_times_a_second() {
    let path = sock("flap");
    let fake = Fake::start(&path, key(1), Mode::Sign);
    let (s, _signed) = SignerSession::start(settings(&path, 2_000)).await.unwrap();
    fake.set_mode(Mode::Garbage);
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(5) {
        let _ = s.sign(request(1)).await;
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // 100, 200, 400, 800 ms, then every 2 s: about 6 connections, not 50.
    let n = fake.state.connections.load(Ordering::SeqCst);
    assert!((3..=10).contains(&n), "{n} connections in 5 s");
}

#[tokio::test]
async fn a_restarted_signer_is_tried_at_once_not_at_the_next_backoff_step() {
    let path = sock("fresh");
    let fake = Fake::start(&path, key(1), Mode::Sign);
    let (s, _signed) = SignerSession::start(settings(&path, 2_000)).await.unwrap();
    drop(fake);
    until("down", Duration::from_secs(2), || !s.is_up()).await;
    let down = Instant::now();
    // Attempts at about 0.1, 0.3, 0.7, 1.5, 3.1, 5.1, 7.1 s: start the signer just after
    // the one at 5.1 s; by backoff alone it would be found 1.8 s later.
    tokio::time::sleep(Duration::from_millis(5_300).saturating_sub(down.elapsed())).await;
    let _fake = Fake::start(&path, key(1), Mode::Sign);
    let took = until("up", Duration::from_secs(5), || s.is_up()).await;
    assert!(took < Duration::from_millis(1_000), "{took:?}");
}

fn cert(position: u64) -> CertRequest {
    use cvx_protocol::certificate::{CertKind, Certificate};
    CertRequest {
        certificate: Certificate {
            network: network(),
            kind: CertKind::Finality,
            anchor: cvx_protocol::consensus::Checkpoint {
                position,
                chain: Hash([9; 32]),
            },
            stake_root: Hash([8; 32]),
            ids: cvx_protocol::BoundedVec::new(),
            votes: cvx_protocol::BoundedVec::new(),
        },
        table: None,
    }
}

#[tokio::test]
async fn certify_returns_the_new_watermark_or_the_cert_refusal_code() {
    let path = sock("certify");
    let fake = Fake::start(&path, key(1), Mode::Sign);
    let (s, _signed) = SignerSession::start(settings(&path, 2_000)).await.unwrap();
    let (moved, w) = s.certify(cert(40)).await.unwrap();
    assert!(moved);
    assert_eq!(w.consensus.map(|c| c.position), Some(40));
    assert_eq!(w.finality, 40);
    match s.certify(cert(41)).await {
        Err(SignError::Refused { code, detail }) => {
            assert_eq!(code, RefuseCode::CertBelowLock);
            assert_eq!(detail, "below the lock");
        }
        other => panic!("expected the refusal, got {other:?}"),
    }
    // A refusal is the signer's answer: the connection stays, the next request works.
    assert!(s.is_up());
    assert_eq!(s.sign(request(3)).await.unwrap(), sig_of(3));
    assert_eq!(fake.state.connections.load(Ordering::SeqCst), 1);
    fake.set_locked(true);
    assert!(matches!(s.certify(cert(42)).await, Err(SignError::Locked)));
    drop(fake);
    until("down", Duration::from_secs(5), || {
        matches!(s.health(), Health::Down(_))
    })
    .await;
    assert!(matches!(
        s.certify(cert(44)).await,
        Err(SignError::Unreachable { .. })
    ));
}
