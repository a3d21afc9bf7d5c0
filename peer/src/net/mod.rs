//! The peer wire over TCP: frames with the caps of `protocol::peer_wire`, read timeouts,
//! a small client for `submit`, `query` and `status`, belief deltas ([`delta`]), and the
//! state-sync join ([`sync`]).

pub mod client;
pub mod delta;
pub mod sync;

use std::time::Duration;

use cvx_protocol::Canonical;
use cvx_protocol::peer_wire::{self, Message};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Why a frame could not be read.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The connection closed or failed.
    #[error("connection: {0}")]
    Io(#[from] std::io::Error),
    /// The header declared 0 bytes or more than the cap.
    #[error("frame length {0} is outside 1..={max}", max = peer_wire::MAX_FRAME)]
    Length(u32),
    /// A frame started but did not finish in time.
    #[error("a frame did not complete within {0:?}")]
    Slow(Duration),
    /// The payload is not a canonical message.
    #[error("malformed message: {0}")]
    Decode(cvx_protocol::DecodeError),
}

/// Read one frame: the header may wait up to `idle`, the rest must arrive within `body`.
///
/// # Errors
/// [`FrameError`]; the caller closes the connection on any of them.
pub async fn read_frame<R: AsyncRead + Unpin>(
    r: &mut R,
    idle: Duration,
    body: Duration,
) -> Result<Message, FrameError> {
    read_frame_sized(r, idle, body).await.map(|(m, _)| m)
}

/// [`read_frame`], with the frame's payload length (for byte budgets).
///
/// # Errors
/// [`FrameError`]; the caller closes the connection on any of them.
pub async fn read_frame_sized<R: AsyncRead + Unpin>(
    r: &mut R,
    idle: Duration,
    body: Duration,
) -> Result<(Message, usize), FrameError> {
    let mut h = [0u8; 4];
    match tokio::time::timeout(idle, r.read_exact(&mut h[..1])).await {
        Ok(res) => {
            res?;
        }
        Err(_) => return Err(FrameError::Slow(idle)),
    }
    let rest = async {
        r.read_exact(&mut h[1..]).await?;
        let n = peer_wire::frame_len(h).ok_or(FrameError::Length(u32::from_le_bytes(h)))?;
        let mut buf = vec![0u8; n];
        r.read_exact(&mut buf).await?;
        Message::decode(&buf)
            .map(|m| (m, n))
            .map_err(FrameError::Decode)
    };
    tokio::time::timeout(body, rest)
        .await
        .map_err(|_| FrameError::Slow(body))?
}

/// Write one message as a frame.
///
/// # Errors
/// The I/O error.
pub async fn write_msg<W: AsyncWrite + Unpin>(w: &mut W, m: &Message) -> std::io::Result<()> {
    w.write_all(&peer_wire::encode_frame(m)).await
}

/// Short name of a message variant (logs and metrics; never its content).
#[must_use]
pub const fn kind(m: &Message) -> &'static str {
    match m {
        Message::Hello(_) => "hello",
        Message::Proof(_) => "proof",
        Message::Belief(_) => "belief",
        Message::GetBlocks(_) => "get_blocks",
        Message::Block(_) => "block",
        Message::GetBlockIds { .. } => "get_block_ids",
        Message::BlockIds { .. } => "block_ids",
        Message::GetState(_) => "get_state",
        Message::State(_) => "state",
        Message::Submit(_) => "submit",
        Message::Submitted { .. } => "submitted",
        Message::Query(_) => "query",
        Message::Answer(_) => "answer",
        Message::Error { .. } => "error",
        Message::Goodbye => "goodbye",
    }
}
