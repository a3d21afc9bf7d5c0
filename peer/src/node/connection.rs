//! Connections, either direction: the accept loop, dialling, the handshake (Hello, the
//! challenge and its proof), and one reader task per connection that checks every frame
//! (caps, timeouts, canonical decode) and every submitted transaction before anything
//! reaches the loop; `GetState` is served here, rate-limited per connection.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use cvx_protocol::consensus::{ChallengeResponse, SignedChallengeResponse};
use cvx_protocol::peer_wire::{
    Hello, MAX_STATE_NODE, MAX_STATE_NODES, Message, PEER_WIRE_VERSION, Role,
};
use cvx_protocol::policy::{Request, SignRequest};
use cvx_protocol::{BoundedVec, ErrorCode, Hash, PublicKey, Token};
use tokio::net::{TcpListener, TcpStream};

use super::client::{check_txs, submit_batch};
use super::write_queue::{self, FrameTx};
use super::{
    CLIENT_IDLE, Ctx, FRAME_BODY, HELLO_TIMEOUT, INPUT_EXPANSION, Input, PEER_IDLE,
    STATE_REQUESTS_PER_SEC, Shared, error_frame, random_token,
};
use crate::clock::now;
use crate::net::{self, FrameError};
use crate::signer_session::{Health, SignError};
use cvx_consensus::ConnId;

pub(super) async fn accept_loop(listener: TcpListener, ctx: Ctx) {
    loop {
        match listener.accept().await {
            Ok((stream, _addr)) => {
                let n = ctx.shared.incoming.load(Ordering::Relaxed);
                if usize::try_from(n).unwrap_or(usize::MAX) >= ctx.shared.max_connections {
                    drop(stream);
                    continue;
                }
                ctx.shared.incoming.fetch_add(1, Ordering::Relaxed);
                let c = ctx.clone();
                tokio::spawn(async move {
                    connection(stream, None, None, c.clone()).await;
                    c.shared.incoming.fetch_sub(1, Ordering::Relaxed);
                });
            }
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

pub(super) async fn dial(host: String, expect: Option<PublicKey>, ctx: Ctx) {
    let r = tokio::time::timeout(HELLO_TIMEOUT, TcpStream::connect(&host)).await;
    match r {
        Ok(Ok(stream)) => connection(stream, Some(host), expect, ctx).await,
        _ => {
            tracing::debug!(%host, "dial failed");
            let _ = ctx.inputs.send(Input::DialFailed { host }).await;
        }
    }
}

/// One connection, either direction: handshake, then read frames into the loop.
async fn connection(
    stream: TcpStream,
    dialed: Option<String>,
    expect: Option<PublicKey>,
    ctx: Ctx,
) {
    let _ = stream.set_nodelay(true);
    let conn = ConnId(ctx.shared.next_conn.fetch_add(1, Ordering::Relaxed));
    let (mut rd, mut wr) = stream.into_split();
    let token = random_token();
    let hello = Message::Hello(Hello {
        version: PEER_WIRE_VERSION,
        network: ctx.shared.network,
        role: Role::Peer(ctx.shared.key),
        challenge: token,
        time: now(),
    });
    if net::write_msg(&mut wr, &hello).await.is_err() {
        return fail_dial(dialed, &ctx).await;
    }
    let Ok(Message::Hello(theirs)) = net::read_frame(&mut rd, HELLO_TIMEOUT, HELLO_TIMEOUT).await
    else {
        return fail_dial(dialed, &ctx).await;
    };
    if theirs.version != PEER_WIRE_VERSION || theirs.network != ctx.shared.network {
        let _ = net::write_msg(
            &mut wr,
            &error_frame(ErrorCode::Network, "another network or wire version"),
        )
        .await;
        return fail_dial(dialed, &ctx).await;
    }
    let claimed = match theirs.role {
        Role::Peer(k) if k != ctx.shared.key => Some(k),
        Role::Peer(_) => return fail_dial(dialed, &ctx).await, // ourselves
        Role::Client => None,
    };
    if let (Some(e), Some(c)) = (expect, claimed)
        && e != c
    {
        tracing::debug!("dialled host answered with another peer key");
        return fail_dial(dialed, &ctx).await;
    }
    let (wtx, wrx) = FrameTx::channel(&ctx.shared.write);
    tokio::spawn(write_queue::write_frames(wr, wrx, wtx.bytes()));
    if ctx
        .inputs
        .send(Input::Opened {
            conn,
            tx: wtx.clone(),
            dialed: dialed.clone(),
        })
        .await
        .is_err()
    {
        return;
    }
    let idle = if claimed.is_some() {
        PEER_IDLE
    } else {
        CLIENT_IDLE
    };
    let read = read_loop(&mut rd, conn, claimed, token, &wtx, &ctx, idle);
    tokio::pin!(read);
    // Answer their challenge through the signer (only if they are a peer: clients do not
    // ask, and the signer refuses zero tokens anyway), while reading: without a signer
    // the proof waits until the session is up again.
    let why = match claimed {
        Some(k) if theirs.challenge.0 != [0; 32] => {
            tokio::select! {
                why = &mut read => why,
                () = prove(k, theirs.challenge, &wtx, &ctx) => read.await,
            }
        }
        _ => read.await,
    };
    tracing::debug!(conn = conn.0, why, "connection closed");
    let _ = ctx.inputs.send(Input::Closed { conn }).await;
}

/// Prove our key to `challenger` over its token, through the signer session; while the
/// session is down (or the signer locked), wait until it is up and ask again.
async fn prove(challenger: PublicKey, token: Token, wtx: &FrameTx, ctx: &Ctx) {
    let response = ChallengeResponse {
        challenger,
        responder: ctx.shared.key,
        token,
    };
    let request = Request {
        network: ctx.shared.network,
        body: SignRequest::ChallengeResponse(response.clone()),
    };
    let mut health = ctx.signer.watch();
    loop {
        match ctx.signer.sign(request.clone()).await {
            Ok(signature) => {
                let proof = Message::Proof(SignedChallengeResponse {
                    response,
                    signature,
                });
                wtx.send(Arc::new(cvx_protocol::peer_wire::encode_frame(&proof)))
                    .await;
                return;
            }
            Err(SignError::Refused { .. } | SignError::Stopped) => return,
            Err(_) => {
                if health.wait_for(Health::is_up).await.is_err() {
                    return;
                }
            }
        }
    }
}

async fn fail_dial(dialed: Option<String>, ctx: &Ctx) {
    if let Some(host) = dialed {
        let _ = ctx.inputs.send(Input::DialFailed { host }).await;
    }
}

async fn read_loop(
    rd: &mut tokio::net::tcp::OwnedReadHalf,
    conn: ConnId,
    claimed: Option<PublicKey>,
    token: Token,
    wtx: &FrameTx,
    ctx: &Ctx,
    idle: Duration,
) -> &'static str {
    let reply = |m: &Message| {
        let _ = wtx.try_send(Arc::new(cvx_protocol::peer_wire::encode_frame(m)));
    };
    let mut state_budget = Budget::new(STATE_REQUESTS_PER_SEC);
    // Buffered: fewer reads, and the transactions already received can be checked as one
    // batch (`submit_batch`).
    let rd = &mut tokio::io::BufReader::with_capacity(64 * 1024, rd);
    let mut next = None;
    loop {
        let read = match next.take() {
            Some(r) => r,
            None => net::read_frame_sized(rd, idle, FRAME_BODY).await,
        };
        let (msg, len) = match read {
            Ok(m) => m,
            Err(FrameError::Io(_)) => return "closed",
            Err(e) => {
                let code = match e {
                    FrameError::Slow(_) => ErrorCode::Timeout,
                    _ => ErrorCode::Format,
                };
                reply(&error_frame(code, &e.to_string()));
                return "bad frame";
            }
        };
        ctx.shared.frames_in.fetch_add(1, Ordering::Relaxed);
        match msg {
            Message::Proof(p) => {
                let Some(k) = claimed else {
                    return "proof from a client";
                };
                let r = &p.response;
                let good = r.challenger == ctx.shared.key
                    && r.responder == k
                    && r.token == token
                    && k.verify(&ctx.shared.network, r, &p.signature).is_ok();
                if !good {
                    reply(&error_frame(ErrorCode::Trust, "bad proof"));
                    return "bad proof";
                }
                if ctx
                    .inputs
                    .send(Input::Proven { conn, key: k })
                    .await
                    .is_err()
                {
                    return "shutdown";
                }
            }
            Message::Submit(tx) => {
                let (txs, after) = submit_batch(rd, tx, idle).await;
                next = after;
                let checked = check_txs(&ctx.shared, &txs);
                for (i, (tx, r)) in txs.into_iter().zip(checked).enumerate() {
                    if let Err(code) = r {
                        ctx.shared.refused_ingress.fetch_add(1, Ordering::Relaxed);
                        reply(&Message::Submitted {
                            id: tx.id(),
                            result: Err(code),
                        });
                        continue;
                    }
                    // The first frame's size is known; the batched ones are charged the
                    // largest a transaction can be.
                    let size = if i == 0 {
                        len
                    } else {
                        <cvx_protocol::ledger::SignedTransaction as cvx_protocol::Canonical>::MAX_LEN
                    };
                    let Some(_budget) = input_budget(ctx, size).await else {
                        return "shutdown";
                    };
                    if ctx
                        .inputs
                        .send(Input::Submit { conn, tx, _budget })
                        .await
                        .is_err()
                    {
                        return "shutdown";
                    }
                }
            }
            Message::Goodbye => return "goodbye",
            Message::Hello(_) | Message::Submitted { .. } | Message::Answer(_) => {
                reply(&error_frame(ErrorCode::Format, "unexpected message"));
                return "protocol violation";
            }
            Message::Error { .. } => return "error from the other side",
            Message::GetState(ids) => {
                if state_budget.take(Instant::now()) {
                    reply(&serve_state(&ctx.shared, &ids));
                } else {
                    ctx.shared
                        .state_requests_limited
                        .fetch_add(1, Ordering::Relaxed);
                    reply(&error_frame(
                        ErrorCode::Load,
                        &format!(
                            "more than {STATE_REQUESTS_PER_SEC} state requests per second on this connection; wait and ask again"
                        ),
                    ));
                }
            }
            // Unsolicited state nodes are ignored (a join uses its own connections).
            Message::State(_) => {}
            m => {
                let Some(_budget) = input_budget(ctx, len).await else {
                    return "shutdown";
                };
                if ctx
                    .inputs
                    .send(Input::Wire {
                        conn,
                        msg: m,
                        _budget,
                    })
                    .await
                    .is_err()
                {
                    return "shutdown";
                }
            }
        }
    }
}

/// The share of the loop's input budget ([`super::INPUT_BYTES`]) for a frame of `len`
/// bytes, waited for (back-pressure on this connection); `None` once the budget is closed.
async fn input_budget(ctx: &Ctx, len: usize) -> Option<tokio::sync::OwnedSemaphorePermit> {
    Arc::clone(&ctx.shared.input_budget)
        .acquire_many_owned(input_charge(len))
        .await
        .ok()
}

/// KiB of the input budget a frame of `len` bytes takes (decoded, at most
/// [`INPUT_EXPANSION`] times its bytes); a frame is at most `MAX_FRAME`, so this fits.
fn input_charge(len: usize) -> u32 {
    u32::try_from(len.saturating_mul(INPUT_EXPANSION).div_ceil(1024).max(1)).unwrap_or(u32::MAX)
}

/// A token bucket: `per_sec` tokens a second, at most `per_sec` saved up.
struct Budget {
    per_sec: u32,
    tokens: f64,
    at: Instant,
}

impl Budget {
    fn new(per_sec: u32) -> Self {
        Self {
            per_sec,
            tokens: f64::from(per_sec),
            at: Instant::now(),
        }
    }

    /// Take one token if there is one.
    fn take(&mut self, now: Instant) -> bool {
        let cap = f64::from(self.per_sec);
        let earned = now.saturating_duration_since(self.at).as_secs_f64() * cap;
        self.tokens = (self.tokens + earned).min(cap);
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// Answer a `GetState`: the requested state-tree nodes this peer holds (malformed records
/// or other record kinds are never served), within the frame cap.
fn serve_state(
    shared: &Shared,
    ids: &BoundedVec<Hash, { cvx_protocol::peer_wire::MAX_REQUEST_IDS }>,
) -> Message {
    // Leave room for the frame's own overhead below MAX_FRAME.
    const BUDGET: usize = cvx_protocol::peer_wire::MAX_FRAME - 64 * 1024;
    let mut out = Vec::new();
    let mut used = 0usize;
    for id in ids.iter().take(MAX_STATE_NODES) {
        let h = cvx_etch::Hash(id.0);
        let Ok(Some(bytes)) = shared.store.get(&h) else {
            continue;
        };
        if bytes.len() > MAX_STATE_NODE
            || used + bytes.len() + 8 > BUDGET
            || cvx_etch::merkle::decode_node(&h, &bytes).is_err()
        {
            continue;
        }
        used += bytes.len() + 8;
        if let Ok(b) = BoundedVec::try_from_vec(bytes) {
            out.push(b);
        }
    }
    shared
        .state_nodes_served
        .fetch_add(out.len() as u64, Ordering::Relaxed);
    Message::State(BoundedVec::try_from_vec(out).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_input_budget_holds_a_bounded_number_of_frames_and_frees_as_the_loop_takes_them() {
        let budget = Arc::new(tokio::sync::Semaphore::new(
            super::super::INPUT_BYTES / 1024,
        ));
        let big = input_charge(cvx_protocol::peer_wire::MAX_FRAME);
        assert_eq!(input_charge(1), 1);
        assert_eq!(
            big as usize * 1024,
            cvx_protocol::peer_wire::MAX_FRAME * INPUT_EXPANSION
        );
        let mut held = Vec::new();
        while let Ok(p) = Arc::clone(&budget).try_acquire_many_owned(big) {
            held.push(p);
        }
        assert_eq!(
            held.len(),
            super::super::INPUT_BYTES / (cvx_protocol::peer_wire::MAX_FRAME * INPUT_EXPANSION)
        );
        // The loop drops one input: room for one more frame.
        held.pop();
        assert!(Arc::clone(&budget).try_acquire_many_owned(big).is_ok());
    }

    #[test]
    fn state_request_budget_allows_a_burst_then_the_rate() {
        let mut b = Budget::new(64);
        let t0 = b.at;
        assert_eq!((0..100).filter(|_| b.take(t0)).count(), 64, "a burst of 64");
        assert!(!b.take(t0));
        // 1/64 s later: one more; a second later: a full burst again, never more.
        assert!(b.take(t0 + Duration::from_millis(16)));
        assert!(!b.take(t0 + Duration::from_millis(16)));
        let later = t0 + Duration::from_secs(10);
        assert_eq!((0..100).filter(|_| b.take(later)).count(), 64);
        // A clock that goes backwards earns nothing.
        assert!(!b.take(t0));
    }
}
