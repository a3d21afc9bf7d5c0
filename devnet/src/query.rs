//! The devnet's view of its peers: a client connection over the peer wire (Hello as a
//! client, then `Query`), as any client of a peer makes it. cvx-devnet links no peer code.

use std::time::Duration;

use cvx_protocol::peer_wire::{
    self, Answer, Hello, Message, PEER_WIRE_VERSION, Query, Role, Status,
};
use cvx_protocol::{Canonical, Hash, Token};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How long one connection and one answer may take.
const TIMEOUT: Duration = Duration::from_secs(2);

/// Read one frame within [`TIMEOUT`] (`None`: closed, slow, too long or malformed).
async fn read_msg(s: &mut TcpStream) -> Option<Message> {
    let frame = async {
        let mut h = [0u8; 4];
        s.read_exact(&mut h).await.ok()?;
        let n = peer_wire::frame_len(h)?;
        let mut buf = vec![0u8; n];
        s.read_exact(&mut buf).await.ok()?;
        Message::decode(&buf).ok()
    };
    tokio::time::timeout(TIMEOUT, frame).await.ok().flatten()
}

/// Connect to `addr` as a client and ask `q` (`None` on any failure: the caller treats
/// the peer as not answering).
///
/// # Errors
/// None: failures are `None`.
pub async fn ask(addr: &str, q: Query) -> Option<Answer> {
    let mut s = tokio::time::timeout(TIMEOUT, TcpStream::connect(addr))
        .await
        .ok()?
        .ok()?;
    let _ = s.set_nodelay(true);
    let Message::Hello(theirs) = read_msg(&mut s).await? else {
        return None;
    };
    let hello = Message::Hello(Hello {
        version: PEER_WIRE_VERSION,
        network: theirs.network,
        role: Role::Client,
        challenge: Token([0; 32]),
        time: crate::now(),
    });
    s.write_all(&peer_wire::encode_frame(&hello)).await.ok()?;
    s.write_all(&peer_wire::encode_frame(&Message::Query(q)))
        .await
        .ok()?;
    loop {
        match read_msg(&mut s).await? {
            Message::Answer(a) => return Some(a),
            Message::Submitted { .. } | Message::Belief(_) => {}
            _ => return None,
        }
    }
}

/// Each peer's status (`None` where it does not answer).
pub async fn statuses(addrs: &[String]) -> Vec<Option<Status>> {
    let mut v = Vec::with_capacity(addrs.len());
    for a in addrs {
        v.push(match ask(a, Query::Status).await {
            Some(Answer::Status(s)) => Some(s),
            _ => None,
        });
    }
    v
}

/// Each peer's state hash at `position` (`None` where it cannot tell).
pub async fn state_hashes_at(addrs: &[String], position: u64) -> Vec<Option<Hash>> {
    let mut v = Vec::with_capacity(addrs.len());
    for a in addrs {
        v.push(match ask(a, Query::SyncPoint(Some(position))).await {
            Some(Answer::SyncPoint(Some(sp))) if sp.position == position => Some(sp.state_hash),
            _ => None,
        });
    }
    v
}
