//! One authenticated connection to a bootstrap or confirming peer, and the requests a
//! join makes over it.

use std::time::Duration;

use cvx_protocol::certificate::CertRequest;
use cvx_protocol::consensus::{ChallengeResponse, SignedChallengeResponse};
use cvx_protocol::peer_wire::{
    Answer, Hello, MAX_BLOCK_IDS, Message, PEER_WIRE_VERSION, Query, Role, SyncPoint,
};
use cvx_protocol::policy::{Request, SignRequest};
use cvx_protocol::{BoundedVec, ErrorCode, Hash, NetworkId, PublicKey, Token};
use tokio::net::TcpStream;

use super::SYNC_TIMEOUT;
use crate::net::{FrameError, read_frame, write_msg};
use crate::signer_session::{SignError, SignerSession};

/// How long a join waits after a `LOAD` answer to a state request, and how often in a row
/// it does so before giving up on that peer.
pub(super) const STATE_LOAD_BACKOFF: Duration = Duration::from_millis(100);
const STATE_LOAD_RETRIES: u32 = 50;

fn now() -> cvx_protocol::Timestamp {
    crate::clock::now()
}

/// One authenticated connection to a peer (we claim our key and prove it through our
/// signer; the other side must prove its key too).
pub(super) struct Link {
    pub(super) stream: TcpStream,
    pub(super) host: String,
    /// The other side's proven key (None until its proof arrived, or if it is a client).
    pub(super) key: Option<PublicKey>,
}

impl Link {
    pub(super) async fn open(
        host: &str,
        network: NetworkId,
        me: PublicKey,
        signer: &SignerSession,
    ) -> Result<Self, String> {
        let stream = tokio::time::timeout(SYNC_TIMEOUT, TcpStream::connect(host))
            .await
            .map_err(|_| "connect timed out".to_owned())?
            .map_err(|e| format!("connect: {e}"))?;
        let _ = stream.set_nodelay(true);
        let mut l = Self {
            stream,
            host: host.to_owned(),
            key: None,
        };
        let mut token = [0u8; 32];
        getrandom::fill(&mut token).map_err(|e| format!("no OS randomness: {e}"))?;
        let token = Token(token);
        write_msg(
            &mut l.stream,
            &Message::Hello(Hello {
                version: PEER_WIRE_VERSION,
                network,
                role: Role::Peer(me),
                challenge: token,
                time: now(),
            }),
        )
        .await
        .map_err(|e| e.to_string())?;
        let theirs = match l.next().await? {
            Message::Hello(h) => h,
            m => return Err(format!("expected Hello, got {}", crate::net::kind(&m))),
        };
        if theirs.version != PEER_WIRE_VERSION || theirs.network != network {
            return Err("another network or wire version".into());
        }
        let Role::Peer(claimed) = theirs.role else {
            return Err("the host is not a peer".into());
        };
        // Prove our key (they keep us as an unprivileged client unless we are staked).
        let response = ChallengeResponse {
            challenger: claimed,
            responder: me,
            token: theirs.challenge,
        };
        let sig = signer
            .sign(Request {
                network,
                body: SignRequest::ChallengeResponse(response.clone()),
            })
            .await
            .map_err(|e| match e {
                SignError::Refused { code, .. } => {
                    format!("signer refused the challenge response: {code}")
                }
                e => format!("signer: {e}"),
            })?;
        write_msg(
            &mut l.stream,
            &Message::Proof(SignedChallengeResponse {
                response,
                signature: sig,
            }),
        )
        .await
        .map_err(|e| e.to_string())?;
        // Their proof of `claimed` over our token.
        loop {
            if let Message::Proof(p) = l.next().await? {
                let r = &p.response;
                let good = r.challenger == me
                    && r.responder == claimed
                    && r.token == token
                    && claimed.verify(&network, r, &p.signature).is_ok();
                if !good {
                    return Err("bad proof of its key".into());
                }
                l.key = Some(claimed);
                return Ok(l);
            }
        }
    }

    pub(super) async fn next(&mut self) -> Result<Message, String> {
        match read_frame(&mut self.stream, SYNC_TIMEOUT, SYNC_TIMEOUT).await {
            Ok(Message::Error { code, detail }) => Err(format!("refused: {code}: {detail}")),
            Ok(m) => Ok(m),
            Err(FrameError::Slow(d)) => Err(format!("no answer within {d:?}")),
            Err(e) => Err(e.to_string()),
        }
    }

    pub(super) async fn sync_point(
        &mut self,
        at: Option<u64>,
    ) -> Result<Option<SyncPoint>, String> {
        write_msg(&mut self.stream, &Message::Query(Query::SyncPoint(at)))
            .await
            .map_err(|e| e.to_string())?;
        loop {
            if let Message::Answer(a) = self.next().await? {
                return match a {
                    Answer::SyncPoint(sp) => Ok(sp),
                    _ => Err("unexpected answer".into()),
                };
            }
        }
    }

    /// The peer's newest finality certificate (`Query::Certificate`).
    pub(super) async fn certificate(&mut self) -> Result<Option<CertRequest>, String> {
        write_msg(&mut self.stream, &Message::Query(Query::Certificate))
            .await
            .map_err(|e| e.to_string())?;
        loop {
            if let Message::Answer(a) = self.next().await? {
                return match a {
                    Answer::Certificate(c) => Ok(c.map(|b| *b)),
                    _ => Err("unexpected answer".into()),
                };
            }
        }
    }

    pub(super) async fn block_ids(&mut self, from: u64) -> Result<Vec<Hash>, String> {
        let count = u32::try_from(MAX_BLOCK_IDS).unwrap_or(1024);
        write_msg(&mut self.stream, &Message::GetBlockIds { from, count })
            .await
            .map_err(|e| e.to_string())?;
        loop {
            if let Message::BlockIds { from: f, ids } = self.next().await? {
                if f != from {
                    return Err("ids from another position".into());
                }
                return Ok(ids.into_vec());
            }
        }
    }

    /// One `GetState` round. A `LOAD` answer (the serving peer's per-connection budget,
    /// `node::STATE_REQUESTS_PER_SEC`) is waited out and the request repeated.
    pub(super) async fn get_state(
        &mut self,
        ids: &[cvx_etch::Hash],
    ) -> Result<Vec<Vec<u8>>, String> {
        let v: Vec<Hash> = ids.iter().map(|h| Hash(h.0)).collect();
        let req = BoundedVec::try_from_vec(v).map_err(|_| "too many ids".to_owned())?;
        for _ in 0..=STATE_LOAD_RETRIES {
            write_msg(&mut self.stream, &Message::GetState(req.clone()))
                .await
                .map_err(|e| e.to_string())?;
            loop {
                match read_frame(&mut self.stream, SYNC_TIMEOUT, SYNC_TIMEOUT).await {
                    Ok(Message::State(nodes)) => {
                        return Ok(nodes
                            .into_vec()
                            .into_iter()
                            .map(BoundedVec::into_vec)
                            .collect());
                    }
                    Ok(Message::Error {
                        code: ErrorCode::Load,
                        ..
                    }) => {
                        tokio::time::sleep(STATE_LOAD_BACKOFF).await;
                        break;
                    }
                    Ok(Message::Error { code, detail }) => {
                        return Err(format!("refused: {code}: {detail}"));
                    }
                    Ok(_) => {}
                    Err(FrameError::Slow(d)) => return Err(format!("no answer within {d:?}")),
                    Err(e) => return Err(e.to_string()),
                }
            }
        }
        Err(format!(
            "state requests answered LOAD {} times in a row",
            STATE_LOAD_RETRIES + 1
        ))
    }
}
