//! A client connection to a peer: Hello as a client, then submit or query.

use std::time::Duration;

use cvx_protocol::ledger::{SignedTransaction, TxResult};
use cvx_protocol::peer_wire::{Answer, Hello, Message, PEER_WIRE_VERSION, Query, Role, Status};
use cvx_protocol::{ErrorCode, Hash, NetworkId, Timestamp, Token};
use tokio::net::TcpStream;

use super::{FrameError, read_frame, write_msg};

/// Why a client call failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Cannot connect.
    #[error("cannot connect to peer {addr}: {source} (is cvx-peer running there?)")]
    Connect {
        /// Address.
        addr: String,
        /// OS error.
        source: std::io::Error,
    },
    /// The connection failed.
    #[error("peer connection: {0}")]
    Frame(#[from] FrameError),
    /// Write failed.
    #[error("peer connection: {0}")]
    Io(#[from] std::io::Error),
    /// The peer is on another network.
    #[error("the peer is on network {theirs}, not {ours}")]
    WrongNetwork {
        /// Theirs.
        theirs: NetworkId,
        /// Ours.
        ours: NetworkId,
    },
    /// The peer answered with an error frame.
    #[error("the peer refused: {code}: {detail}")]
    Refused {
        /// Code.
        code: ErrorCode,
        /// Detail.
        detail: String,
    },
    /// The peer sent something unexpected.
    #[error("unexpected answer from the peer: {0}")]
    Unexpected(&'static str),
    /// No answer in time.
    #[error("no answer within {0:?}")]
    Timeout(Duration),
}

/// A client connection.
#[derive(Debug)]
pub struct PeerClient {
    stream: TcpStream,
    /// The peer's network (from its Hello).
    pub network: NetworkId,
    timeout: Duration,
}

fn now_ms() -> Timestamp {
    Timestamp(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
    )
}

impl PeerClient {
    /// Connect and exchange Hello. `network`: refuse a peer on any other network.
    ///
    /// # Errors
    /// [`ClientError`].
    pub async fn connect(
        addr: &str,
        network: Option<NetworkId>,
        timeout: Duration,
    ) -> Result<Self, ClientError> {
        let stream = tokio::time::timeout(timeout, TcpStream::connect(addr))
            .await
            .map_err(|_| ClientError::Timeout(timeout))?
            .map_err(|source| ClientError::Connect {
                addr: addr.to_owned(),
                source,
            })?;
        let _ = stream.set_nodelay(true);
        let mut c = Self {
            stream,
            network: NetworkId(Hash::ZERO),
            timeout,
        };
        let theirs = match c.next().await? {
            Message::Hello(h) => h.network,
            m => return Err(ClientError::Unexpected(super::kind(&m))),
        };
        if let Some(ours) = network
            && ours != theirs
        {
            return Err(ClientError::WrongNetwork { theirs, ours });
        }
        c.network = theirs;
        let hello = Message::Hello(Hello {
            version: PEER_WIRE_VERSION,
            network: theirs,
            role: Role::Client,
            challenge: Token([0; 32]),
            time: now_ms(),
        });
        write_msg(&mut c.stream, &hello).await?;
        Ok(c)
    }

    /// The next message (an `Error` frame becomes [`ClientError::Refused`]).
    ///
    /// # Errors
    /// [`ClientError`].
    pub async fn next(&mut self) -> Result<Message, ClientError> {
        match read_frame(&mut self.stream, self.timeout, self.timeout).await {
            Ok(Message::Error { code, detail }) => Err(ClientError::Refused {
                code,
                detail: detail.as_str().to_owned(),
            }),
            Ok(m) => Ok(m),
            Err(FrameError::Slow(d)) => Err(ClientError::Timeout(d)),
            Err(e) => Err(e.into()),
        }
    }

    /// Send without waiting (pipelined submissions).
    ///
    /// # Errors
    /// Write failure.
    pub async fn send(&mut self, m: &Message) -> Result<(), ClientError> {
        write_msg(&mut self.stream, m).await?;
        Ok(())
    }

    /// Submit one transaction and wait for its result.
    ///
    /// # Errors
    /// [`ClientError`]; a refused transaction is `Ok(Err(code))`.
    pub async fn submit(
        &mut self,
        tx: SignedTransaction,
    ) -> Result<Result<TxResult, ErrorCode>, ClientError> {
        let id = tx.id();
        self.send(&Message::Submit(tx)).await?;
        loop {
            match self.next().await? {
                Message::Submitted { id: got, result } if got == id => return Ok(result),
                Message::Submitted { .. } | Message::Belief(_) => {}
                m => return Err(ClientError::Unexpected(super::kind(&m))),
            }
        }
    }

    /// Ask a question.
    ///
    /// # Errors
    /// [`ClientError`].
    pub async fn query(&mut self, q: Query) -> Result<Answer, ClientError> {
        self.send(&Message::Query(q)).await?;
        loop {
            match self.next().await? {
                Message::Answer(a) => return Ok(a),
                Message::Submitted { .. } => {}
                m => return Err(ClientError::Unexpected(super::kind(&m))),
            }
        }
    }

    /// The peer's status.
    ///
    /// # Errors
    /// [`ClientError`].
    pub async fn status(&mut self) -> Result<Status, ClientError> {
        match self.query(Query::Status).await? {
            Answer::Status(s) => Ok(s),
            _ => Err(ClientError::Unexpected("answer")),
        }
    }
}
