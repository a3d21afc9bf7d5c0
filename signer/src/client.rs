//! A blocking client of the signer's socket (used by `status`, `lock`, the tests and
//! the benchmark). cvx-peer speaks the same frames from its own async code.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use cvx_protocol::Canonical;
use cvx_protocol::signer_wire::{
    ClientMessage, FRAME_HEADER, FrameError, SignerMessage, encode_frame, frame_len,
};

/// Why a client call failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Cannot connect.
    #[error(
        "cannot connect to the signer at {path}: {source} (is cvx-signer running, and is your uid in allowed_uids?)"
    )]
    Connect {
        /// The socket.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// I/O error on the connection.
    #[error("signer connection: {0}")]
    Io(#[from] std::io::Error),
    /// The signer closed the connection.
    #[error(
        "the signer closed the connection (uid not allowed, malformed request, or the signer stopped)"
    )]
    Closed,
    /// Bad frame header.
    #[error("signer sent a bad frame: {0}")]
    Frame(#[from] FrameError),
    /// Bad payload.
    #[error("signer sent an undecodable reply: {0}")]
    Decode(#[from] cvx_protocol::DecodeError),
}

fn closed_or(e: std::io::Error) -> ClientError {
    use std::io::ErrorKind::{BrokenPipe, ConnectionReset, UnexpectedEof};
    if matches!(e.kind(), UnexpectedEof | ConnectionReset | BrokenPipe) {
        ClientError::Closed
    } else {
        ClientError::Io(e)
    }
}

/// A connection to the signer.
#[derive(Debug)]
pub struct Client {
    stream: UnixStream,
}

impl Client {
    /// Connect to the socket at `path`.
    ///
    /// # Errors
    /// [`ClientError::Connect`].
    pub fn connect(path: &Path) -> Result<Self, ClientError> {
        let stream = UnixStream::connect(path).map_err(|source| ClientError::Connect {
            path: path.to_owned(),
            source,
        })?;
        Ok(Self { stream })
    }

    /// Set a read timeout.
    ///
    /// # Errors
    /// The OS error.
    pub fn set_timeout(&self, t: Option<Duration>) -> Result<(), ClientError> {
        self.stream.set_read_timeout(t)?;
        Ok(())
    }

    /// Send one request (pipelining: several sends, then as many receives).
    ///
    /// # Errors
    /// [`ClientError::Io`].
    pub fn send(&mut self, msg: &ClientMessage) -> Result<(), ClientError> {
        self.stream.write_all(&encode_frame(msg)).map_err(closed_or)
    }

    /// Receive one reply.
    ///
    /// # Errors
    /// [`ClientError`].
    pub fn recv(&mut self) -> Result<SignerMessage, ClientError> {
        let mut h = [0u8; FRAME_HEADER];
        if let Err(e) = self.stream.read_exact(&mut h) {
            return Err(closed_or(e));
        }
        let n = frame_len(h)?;
        let mut body = vec![0u8; n];
        self.stream.read_exact(&mut body).map_err(closed_or)?;
        Ok(SignerMessage::decode(&body)?)
    }

    /// Send and receive.
    ///
    /// # Errors
    /// [`ClientError`].
    pub fn call(&mut self, msg: &ClientMessage) -> Result<SignerMessage, ClientError> {
        self.send(msg)?;
        self.recv()
    }
}
