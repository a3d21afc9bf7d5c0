//! The async client of the signer's Unix socket (`protocol::signer_wire`).
//!
//! One connection, requests answered in order. The peer never holds a key: it sends a
//! typed [`Request`] and gets a signature or a refusal back.

use std::path::{Path, PathBuf};
use std::time::Duration;

use cvx_protocol::Canonical;
use cvx_protocol::policy::{Refusal, Request};
use cvx_protocol::signer_wire::{self, ClientMessage, SignerMessage, StatusReport, WIRE_VERSION};
use cvx_protocol::{NetworkId, PublicKey, Signature};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;

/// How long one answer may take before the signer is considered gone.
pub const SIGNER_TIMEOUT: Duration = Duration::from_secs(10);

/// Why talking to the signer failed.
#[derive(Debug, thiserror::Error)]
pub enum SignerClientError {
    /// Cannot connect to the socket.
    #[error(
        "cannot connect to the signer socket {path}: {source} (is cvx-signer running, and is this user in its allowed_uids?)"
    )]
    Connect {
        /// The socket.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The connection broke.
    #[error("signer connection failed: {0} (restart cvx-signer, then the peer reconnects)")]
    Io(#[from] std::io::Error),
    /// The signer did not answer in time.
    #[error("the signer did not answer within {SIGNER_TIMEOUT:?}")]
    Timeout,
    /// The signer sent something that is not a valid answer.
    #[error("signer protocol error: {0}")]
    Protocol(String),
}

/// A connected signer.
#[derive(Debug)]
pub struct SignerClient {
    stream: UnixStream,
    /// The signer's network (from its Hello).
    pub network: NetworkId,
    /// The signer's public key (from its Hello).
    pub public_key: PublicKey,
}

impl SignerClient {
    /// Connect and exchange Hello.
    ///
    /// # Errors
    /// [`SignerClientError`] when the socket cannot be reached or answers wrongly.
    pub async fn connect(path: &Path) -> Result<Self, SignerClientError> {
        let stream =
            UnixStream::connect(path)
                .await
                .map_err(|source| SignerClientError::Connect {
                    path: path.to_path_buf(),
                    source,
                })?;
        let mut stream = stream;
        match call_on(
            &mut stream,
            &ClientMessage::Hello {
                version: WIRE_VERSION,
            },
        )
        .await?
        {
            SignerMessage::Hello {
                version,
                network,
                public_key,
            } => {
                if version != WIRE_VERSION {
                    return Err(SignerClientError::Protocol(format!(
                        "signer speaks wire version {version}, this peer {WIRE_VERSION}"
                    )));
                }
                Ok(Self {
                    stream,
                    network,
                    public_key,
                })
            }
            other => Err(unexpected(&other)),
        }
    }

    /// One request, one answer.
    ///
    /// # Errors
    /// I/O, timeout or an undecodable answer.
    pub async fn call(&mut self, msg: &ClientMessage) -> Result<SignerMessage, SignerClientError> {
        call_on(&mut self.stream, msg).await
    }

    /// Ask for a signature.
    ///
    /// # Errors
    /// Transport failures; a refusal is `Ok(Err(refusal))`.
    pub async fn sign(
        &mut self,
        req: Request,
    ) -> Result<Result<Signature, Refusal>, SignerClientError> {
        match self.call(&ClientMessage::Sign(req)).await? {
            SignerMessage::Signed { signature, .. } => Ok(Ok(signature)),
            SignerMessage::Refused { code, detail } => Ok(Err(Refusal {
                code,
                detail: detail.as_str().to_owned(),
            })),
            other => Err(unexpected(&other)),
        }
    }

    /// The breach button: the signer refuses everything from now on, durably.
    ///
    /// # Errors
    /// Transport failures or an unexpected answer.
    pub async fn lock(&mut self) -> Result<(), SignerClientError> {
        match self.call(&ClientMessage::Lock).await? {
            SignerMessage::Locked => Ok(()),
            other => Err(unexpected(&other)),
        }
    }

    /// The signer's status.
    ///
    /// # Errors
    /// Transport failures or an unexpected answer.
    pub async fn status(&mut self) -> Result<StatusReport, SignerClientError> {
        match self.call(&ClientMessage::Status).await? {
            SignerMessage::Status(s) => Ok(s),
            other => Err(unexpected(&other)),
        }
    }
}

async fn call_on(
    stream: &mut UnixStream,
    msg: &ClientMessage,
) -> Result<SignerMessage, SignerClientError> {
    let frame = signer_wire::encode_frame(msg);
    let fut = async {
        stream.write_all(&frame).await?;
        let mut h = [0u8; signer_wire::FRAME_HEADER];
        stream.read_exact(&mut h).await?;
        let n =
            signer_wire::frame_len(h).map_err(|e| SignerClientError::Protocol(e.to_string()))?;
        let mut buf = vec![0u8; n];
        stream.read_exact(&mut buf).await?;
        SignerMessage::decode(&buf).map_err(|e| SignerClientError::Protocol(e.to_string()))
    };
    tokio::time::timeout(SIGNER_TIMEOUT, fut)
        .await
        .map_err(|_| SignerClientError::Timeout)?
}

fn unexpected(m: &SignerMessage) -> SignerClientError {
    let what = match m {
        SignerMessage::Hello { .. } => "Hello",
        SignerMessage::PublicKey(_) => "PublicKey",
        SignerMessage::Signed { .. } => "Signed",
        SignerMessage::Refused { .. } => "Refused",
        SignerMessage::Status(_) => "Status",
        SignerMessage::Locked => "Locked",
        SignerMessage::Certified { .. } => "Certified",
    };
    SignerClientError::Protocol(format!("unexpected answer {what}"))
}
