//! The single-threaded poll loop ([`run`]): accepting connections (client and admin
//! slots), reading complete frames, rate limits, and handing each turn's requests to the
//! decision core ([`super::Signer`]) for one group commit.

use std::io::{Read, Write};
use std::os::fd::AsFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::time::{Duration, Instant};

use cvx_protocol::signer_wire::{
    ClientMessage, FRAME_HEADER, MAX_FRAME, SignerMessage, encode_frame, frame_len,
};
use cvx_protocol::{Canonical, hash};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::socket::{SockFlag, accept4, getsockopt, sockopt};

use super::{Incoming, Job, Signer};

/// Connections of `admin_uids` accepted beyond `max_connections`, in slots of their own
/// that only serve Hello, PublicKey, Status and Lock (the breach button that a client of
/// an allowed uid cannot starve by holding every client slot).
pub const ADMIN_SLOTS: usize = 4;

/// Serving limits.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Allowed client uids are checked separately; this caps simultaneous connections.
    pub max_connections: usize,
    /// A started frame must complete within this.
    pub read_timeout: Duration,
}

/// Most requests taken from one connection per loop turn (fairness).
const MAX_JOBS_PER_CONN: usize = 1024;
/// A client that does not read its replies is dropped beyond this backlog.
const MAX_OUTBOX: usize = 1 << 20;

#[derive(Debug)]
struct Conn {
    stream: UnixStream,
    uid: u32,
    /// In an admin slot (see [`ADMIN_SLOTS`]).
    admin: bool,
    inbuf: Vec<u8>,
    out: Vec<u8>,
    started: Option<Instant>,
    closing: bool,
    eof: bool,
    dead: bool,
    /// Complete frames left in `inbuf` (per-turn cap reached): serve next turn.
    backlog: bool,
}

/// Log at most a few lines per second for events a remote party can trigger.
#[derive(Debug)]
struct RateLimit {
    window: Instant,
    count: u32,
    suppressed: u32,
}

impl RateLimit {
    fn new() -> Self {
        Self {
            window: Instant::now(),
            count: 0,
            suppressed: 0,
        }
    }

    fn allow(&mut self) -> bool {
        if self.window.elapsed() >= Duration::from_secs(1) {
            if self.suppressed > 0 {
                tracing::warn!(
                    suppressed = self.suppressed,
                    "client warnings suppressed in the last second"
                );
            }
            self.window = Instant::now();
            self.count = 0;
            self.suppressed = 0;
        }
        self.count += 1;
        if self.count > 10 {
            self.suppressed += 1;
            false
        } else {
            true
        }
    }
}

/// Why serving stopped.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// poll failed.
    #[error("poll failed: {0}")]
    Poll(nix::Error),
}

impl Conn {
    /// Read what is available; queue complete frames as jobs.
    fn read_jobs(&mut self, jobs: &mut Vec<Job>, warn: &mut RateLimit) {
        let mut chunk = [0u8; 16 * 1024];
        let mut taken = 0;
        self.backlog = false;
        loop {
            // Parse complete frames first.
            while self.inbuf.len() >= FRAME_HEADER && taken < MAX_JOBS_PER_CONN {
                let header = [self.inbuf[0], self.inbuf[1], self.inbuf[2], self.inbuf[3]];
                let n = match frame_len(header) {
                    Ok(n) => n,
                    Err(e) => {
                        if warn.allow() {
                            tracing::warn!(uid = self.uid, error = %e, "closing a connection that sent a bad frame header");
                        }
                        self.dead = true;
                        return;
                    }
                };
                if self.inbuf.len() < FRAME_HEADER + n {
                    break;
                }
                let payload = &self.inbuf[FRAME_HEADER..FRAME_HEADER + n];
                let msg = match ClientMessage::decode(payload) {
                    Ok(m) => Incoming::Msg(m),
                    Err(e) => {
                        if warn.allow() {
                            tracing::warn!(uid = self.uid, error = %e, "malformed request; refusing and closing the connection");
                        }
                        self.closing = true;
                        Incoming::Malformed(hash(payload))
                    }
                };
                jobs.push(Job {
                    uid: self.uid,
                    admin: self.admin,
                    msg,
                });
                taken += 1;
                self.inbuf.drain(..FRAME_HEADER + n);
                if self.closing {
                    self.inbuf.clear();
                    break;
                }
            }
            self.started = if self.inbuf.is_empty() {
                None
            } else {
                Some(self.started.unwrap_or_else(Instant::now))
            };
            if self.inbuf.is_empty() && self.inbuf.capacity() > 64 * 1024 {
                self.inbuf = Vec::new();
            }
            if taken >= MAX_JOBS_PER_CONN {
                self.backlog = true;
                return;
            }
            if self.closing || self.eof {
                return;
            }
            // Never hold more than one frame (plus one chunk) per connection.
            if self.inbuf.len() > FRAME_HEADER + MAX_FRAME {
                return;
            }
            match (&self.stream).read(&mut chunk) {
                Ok(0) => {
                    self.eof = true;
                    return;
                }
                Ok(k) => self.inbuf.extend_from_slice(&chunk[..k]),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => {
                    self.dead = true;
                    return;
                }
            }
        }
    }

    fn flush(&mut self) {
        while !self.out.is_empty() {
            match (&self.stream).write(&self.out) {
                Ok(0) => {
                    self.dead = true;
                    return;
                }
                Ok(k) => {
                    self.out.drain(..k);
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => {
                    self.dead = true;
                    return;
                }
            }
        }
        if self.out.len() > MAX_OUTBOX {
            self.dead = true;
        }
    }
}

/// Who may connect: clients (`allowed_uids`) and operators (`admin_uids`).
#[derive(Clone, Copy, Debug)]
pub struct Uids<'a> {
    /// Client uids: may sign, within `max_connections`.
    pub allowed: &'a [u32],
    /// Operator uids: beyond the client cap, in [`ADMIN_SLOTS`] slots, never sign there.
    pub admin: &'a [u32],
}

fn accept_all(
    listener: &UnixListener,
    conns: &mut Vec<Conn>,
    uids: Uids<'_>,
    limits: &Limits,
    warn: &mut RateLimit,
) {
    for _ in 0..64 {
        let fd = match accept4(
            listener.as_fd(),
            SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC,
        ) {
            Ok(fd) => fd,
            Err(nix::errno::Errno::EAGAIN | nix::errno::Errno::EINTR) => return,
            Err(e) => {
                if warn.allow() {
                    tracing::warn!(error = %e, "accept failed");
                }
                return;
            }
        };
        // Credentials are checked before a single byte is read.
        let uid = match getsockopt(&fd, sockopt::PeerCredentials) {
            Ok(c) => c.uid(),
            Err(e) => {
                if warn.allow() {
                    tracing::warn!(error = %e, "SO_PEERCRED failed; closing");
                }
                continue;
            }
        };
        let (client, operator) = (uids.allowed.contains(&uid), uids.admin.contains(&uid));
        if !client && !operator {
            if warn.allow() {
                tracing::warn!(
                    uid,
                    "refused a connection from a uid not in allowed_uids (nor admin_uids)"
                );
            }
            continue;
        }
        let admins = conns.iter().filter(|c| c.admin).count();
        let clients = conns.len() - admins;
        // A uid in both lists takes a client slot while one is free, else an admin slot.
        let admin = if client && clients < limits.max_connections {
            false
        } else if operator && admins < ADMIN_SLOTS {
            true
        } else {
            if warn.allow() {
                tracing::warn!(
                    uid,
                    max = limits.max_connections,
                    admin_slots = ADMIN_SLOTS,
                    "connection cap reached; closing the new connection"
                );
            }
            continue;
        };
        conns.push(Conn {
            stream: UnixStream::from(fd),
            uid,
            admin,
            inbuf: Vec::new(),
            out: Vec::new(),
            started: None,
            closing: false,
            eof: false,
            dead: false,
            backlog: false,
        });
    }
}

/// The breach button by SIGUSR1 (root or the signer's own uid; see
/// `cvx_sandbox::harden::lock_on_sigusr1`): the same durable lock as a `Lock` request,
/// recorded as `Lock{uid}` with the sender's uid, decided before any request of the turn.
fn lock_by_signal(signer: &mut Signer, uid: u32, conns: &[Conn]) {
    let job = [Job {
        uid,
        admin: true,
        msg: Incoming::Msg(ClientMessage::Lock),
    }];
    let n = u32::try_from(conns.len()).unwrap_or(u32::MAX);
    match signer.decide_batch(&job, n, crate::now()).first() {
        Some(SignerMessage::Locked) => {
            tracing::warn!(
                uid,
                "locked by SIGUSR1 (breach button): every sign request is refused from now on"
            );
        }
        other => {
            tracing::error!(uid, reply = ?other, "SIGUSR1 lock could not be made durable; the signer refuses all signing until restarted");
        }
    }
}

/// Serve forever (single thread). Returns only on a fatal poll error.
///
/// # Errors
/// [`ServeError`].
pub fn run(
    listener: &UnixListener,
    signer: &mut Signer,
    uids: Uids<'_>,
    limits: Limits,
) -> Result<(), ServeError> {
    let mut conns: Vec<Conn> = Vec::new();
    let mut warn = RateLimit::new();
    let mut jobs = Vec::new();
    let mut revents = Vec::new();
    loop {
        let mut wait = signer.audit_due_in().unwrap_or(Duration::from_secs(1));
        for c in &conns {
            if let Some(s) = c.started {
                wait = wait.min(limits.read_timeout.saturating_sub(s.elapsed()));
            }
        }
        if conns.iter().any(|c| c.backlog) {
            wait = Duration::ZERO;
        }
        let wait_ms = u16::try_from(wait.as_millis().min(1000)).unwrap_or(1000);
        {
            let mut fds = Vec::with_capacity(conns.len() + 1);
            fds.push(PollFd::new(listener.as_fd(), PollFlags::POLLIN));
            for c in &conns {
                let mut ev = PollFlags::empty();
                if !c.closing && !c.eof {
                    ev |= PollFlags::POLLIN;
                }
                if !c.out.is_empty() {
                    ev |= PollFlags::POLLOUT;
                }
                fds.push(PollFd::new(c.stream.as_fd(), ev));
            }
            match poll(&mut fds, PollTimeout::from(wait_ms)) {
                Ok(_) | Err(nix::errno::Errno::EINTR) => {}
                Err(e) => return Err(ServeError::Poll(e)),
            }
            revents.clear();
            revents.extend(
                fds.iter()
                    .map(|f| f.revents().unwrap_or(PollFlags::empty())),
            );
        }
        if let Some(uid) = cvx_sandbox::harden::take_lock_request() {
            lock_by_signal(signer, uid, &conns);
        }
        let ready_in = PollFlags::POLLIN | PollFlags::POLLHUP | PollFlags::POLLERR;
        let mut owners = Vec::new();
        // Admin connections first: a Lock applies to every sign request of its turn.
        for admin_pass in [true, false] {
            for (i, c) in conns.iter_mut().enumerate() {
                if c.admin != admin_pass {
                    continue;
                }
                if c.backlog || revents.get(i + 1).is_some_and(|r| r.intersects(ready_in)) {
                    let before = jobs.len();
                    c.read_jobs(&mut jobs, &mut warn);
                    owners.extend(core::iter::repeat_n(i, jobs.len() - before));
                }
            }
        }
        if !jobs.is_empty() {
            let n = u32::try_from(conns.len()).unwrap_or(u32::MAX);
            let replies = signer.decide_batch(&jobs, n, crate::now());
            for (owner, reply) in owners.iter().zip(replies) {
                if let Some(c) = conns.get_mut(*owner) {
                    c.out.extend_from_slice(&encode_frame(&reply));
                }
            }
            jobs.clear();
        }
        for c in &mut conns {
            if !c.out.is_empty() {
                c.flush();
            }
            if c.started
                .is_some_and(|s| s.elapsed() >= limits.read_timeout)
            {
                if warn.allow() {
                    tracing::warn!(
                        uid = c.uid,
                        "closing a connection whose frame did not complete in time"
                    );
                }
                c.dead = true;
            }
        }
        conns.retain(|c| !(c.dead || ((c.closing || c.eof) && c.out.is_empty())));
        if revents
            .first()
            .is_some_and(|r| r.contains(PollFlags::POLLIN))
        {
            accept_all(listener, &mut conns, uids, &limits, &mut warn);
        }
        signer.audit_tick(false);
    }
}
