//! The link shaper: a userspace TCP relay in front of each peer, shaping every directed
//! link (from peer A to peer B) on its own.
//!
//! This kernel has no netem, so delay, jitter and loss come from here. Peer B's
//! registered host is its relay's address; the relay tells the sending peer A by the
//! connection's source address and shapes the bytes A sends with link A→B and the bytes
//! B answers with link B→A:
//! - **delay** and **jitter**: each chunk read is delivered `delay ± jitter` ms later, in
//!   order (a chunk never overtakes the one before it, as in TCP);
//! - **loss**: TCP never loses bytes, it retransmits. A lost chunk is delivered after a
//!   retransmission timeout as well: `200 ms + 2 × delay` later (Linux's minimum RTO);
//! - **bandwidth**: chunks leave no faster than the rate (bits/s);
//! - **cut**: the link is down. Connections over it are closed (both directions: a TCP
//!   connection needs both) and new ones are closed at once, until the link is up.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::nemesis::Rng;

/// One directed link's shape.
#[derive(Clone, Copy, Debug, PartialEq, Default)]
pub struct LinkParams {
    /// One-way delay (ms).
    pub delay_ms: u64,
    /// Jitter (ms): the delay varies uniformly by up to this much either way.
    pub jitter_ms: u64,
    /// Loss (percent of chunks, 0..=100).
    pub loss_pct: f64,
    /// Bandwidth (bits/s; None: unlimited).
    pub bandwidth_bps: Option<u64>,
    /// The link is down.
    pub cut: bool,
}

impl LinkParams {
    /// When a chunk read now should be delivered (before ordering), using `rng`.
    #[must_use]
    pub fn delay_for(&self, rng: &mut Rng) -> Duration {
        let mut ms = self.delay_ms;
        if self.jitter_ms > 0 {
            let j = rng.range(0, 2 * self.jitter_ms);
            ms = (ms + j).saturating_sub(self.jitter_ms);
        }
        if self.loss_pct > 0.0 && rng.unit() * 100.0 < self.loss_pct {
            ms += 200 + 2 * self.delay_ms;
        }
        Duration::from_millis(ms)
    }
}

/// Every directed link of an `n`-peer network.
#[derive(Debug)]
pub struct Links {
    n: usize,
    links: Vec<watch::Sender<LinkParams>>,
    seeds: AtomicU64,
}

impl Links {
    /// `n` peers, every link shaped as `base`.
    #[must_use]
    pub fn new(n: usize, base: LinkParams, seed: u64) -> Arc<Self> {
        Arc::new(Self {
            n,
            links: (0..n * n).map(|_| watch::Sender::new(base)).collect(),
            seeds: AtomicU64::new(seed),
        })
    }

    /// Peers.
    #[must_use]
    pub fn peers(&self) -> usize {
        self.n
    }

    fn slot(&self, from: usize, to: usize) -> Option<&watch::Sender<LinkParams>> {
        (from < self.n && to < self.n).then(|| &self.links[from * self.n + to])
    }

    /// The link from `from` to `to` now.
    #[must_use]
    pub fn get(&self, from: usize, to: usize) -> LinkParams {
        self.slot(from, to).map(|s| *s.borrow()).unwrap_or_default()
    }

    /// Change the link from `from` to `to`.
    pub fn update(&self, from: usize, to: usize, f: impl FnOnce(&mut LinkParams)) {
        if let Some(s) = self.slot(from, to) {
            s.send_modify(f);
        }
    }

    /// Change every link.
    pub fn update_all(&self, f: impl Fn(&mut LinkParams)) {
        for s in &self.links {
            s.send_modify(&f);
        }
    }

    fn watch(&self, from: usize, to: usize) -> Option<watch::Receiver<LinkParams>> {
        self.slot(from, to).map(watch::Sender::subscribe)
    }

    fn rng(&self) -> Rng {
        Rng::new(self.seeds.fetch_add(0x9E37_79B9, Ordering::Relaxed))
    }
}

/// Relay connections accepted on `listener` to peer `to` at `target`; `sources[i]` is
/// peer i's address (connections from elsewhere are closed). Runs until dropped.
pub async fn serve(
    listener: TcpListener,
    to: usize,
    target: SocketAddr,
    sources: Arc<Vec<IpAddr>>,
    links: Arc<Links>,
) {
    loop {
        let Ok((conn, addr)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let Some(from) = sources.iter().position(|ip| *ip == addr.ip()) else {
            continue;
        };
        let links = Arc::clone(&links);
        tokio::spawn(async move {
            relay_one(conn, from, to, target, &links).await;
        });
    }
}

async fn relay_one(a: TcpStream, from: usize, to: usize, target: SocketAddr, links: &Links) {
    let (Some(fwd), Some(back)) = (links.watch(from, to), links.watch(to, from)) else {
        return;
    };
    if fwd.borrow().cut || back.borrow().cut {
        return;
    }
    let Ok(Ok(b)) = tokio::time::timeout(Duration::from_secs(5), TcpStream::connect(target)).await
    else {
        return;
    };
    let _ = a.set_nodelay(true);
    let _ = b.set_nodelay(true);
    let (ar, aw) = a.into_split();
    let (br, bw) = b.into_split();
    let one = pump(ar, bw, fwd, links.rng());
    let two = pump(br, aw, back, links.rng());
    tokio::pin!(one, two);
    // A cut or an error ends both directions; an EOF ends one (half-close).
    tokio::select! {
        end = &mut one => if end == End::Eof { let _ = two.await; },
        end = &mut two => if end == End::Eof { let _ = one.await; },
    }
}

#[derive(Debug, PartialEq, Eq)]
enum End {
    Eof,
    Cut,
}

/// Copy `r` to `w` shaped by the link `p`; returns how it ended.
async fn pump(
    mut r: tokio::net::tcp::OwnedReadHalf,
    mut w: tokio::net::tcp::OwnedWriteHalf,
    mut p: watch::Receiver<LinkParams>,
    mut rng: Rng,
) -> End {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<(Instant, Vec<u8>)>(256);
    let mut p2 = p.clone();
    let reader = async move {
        let mut last = Instant::now();
        loop {
            let mut buf = vec![0u8; 16 * 1024];
            let got = tokio::select! {
                r = r.read(&mut buf) => r,
                c = p.changed() => {
                    if c.is_err() || p.borrow().cut { return End::Cut; }
                    continue;
                }
            };
            let n = match got {
                Ok(0) => return End::Eof,
                Ok(n) => n,
                Err(_) => return End::Cut,
            };
            let params = *p.borrow();
            if params.cut {
                return End::Cut;
            }
            buf.truncate(n);
            let at = (Instant::now() + params.delay_for(&mut rng)).max(last);
            last = at;
            if tx.send((at, buf)).await.is_err() {
                return End::Cut;
            }
        }
    };
    let writer = async move {
        let mut free_at = Instant::now();
        while let Some((at, buf)) = rx.recv().await {
            tokio::select! {
                () = tokio::time::sleep_until(at) => {}
                c = p2.changed() => {
                    if c.is_err() || p2.borrow().cut { return End::Cut; }
                    tokio::time::sleep_until(at).await;
                }
            }
            let bandwidth = p2.borrow().bandwidth_bps.filter(|b| *b > 0);
            if let Some(bps) = bandwidth {
                let start = free_at.max(Instant::now());
                let bits = buf.len() as u64 * 8;
                free_at = start + Duration::from_micros(bits.saturating_mul(1_000_000) / bps);
                tokio::time::sleep_until(free_at).await;
            }
            let cut = p2.borrow().cut;
            if cut || w.write_all(&buf).await.is_err() {
                return End::Cut;
            }
        }
        let _ = w.shutdown().await;
        End::Eof
    };
    let (r_end, w_end) = tokio::join!(reader, writer);
    if r_end == End::Cut || w_end == End::Cut {
        End::Cut
    } else {
        End::Eof
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn echo_server() -> SocketAddr {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move {
            loop {
                let Ok((mut s, _)) = l.accept().await else {
                    return;
                };
                tokio::spawn(async move {
                    let (mut r, mut w) = s.split();
                    let _ = tokio::io::copy(&mut r, &mut w).await;
                });
            }
        });
        addr
    }

    /// A relay in front of an echo server; peer 0 is 127.0.0.1 (the test), peer 1 the
    /// echo server.
    async fn setup(base: LinkParams) -> (SocketAddr, Arc<Links>) {
        let target = echo_server().await;
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let links = Links::new(2, base, 1);
        let sources = Arc::new(vec![
            "127.0.0.1".parse().unwrap(),
            "127.0.0.2".parse().unwrap(),
        ]);
        tokio::spawn(serve(l, 1, target, sources, Arc::clone(&links)));
        (addr, links)
    }

    async fn round_trip(s: &mut TcpStream, len: usize) -> Duration {
        let t = Instant::now();
        let data = vec![7u8; len];
        s.write_all(&data).await.unwrap();
        let mut got = vec![0u8; len];
        s.read_exact(&mut got).await.unwrap();
        assert_eq!(got, data);
        t.elapsed()
    }

    #[tokio::test]
    async fn delay_applies_each_way_and_bytes_arrive_intact() {
        let (addr, links) = setup(LinkParams::default()).await;
        links.update(0, 1, |p| p.delay_ms = 100);
        links.update(1, 0, |p| p.delay_ms = 60);
        let mut s = TcpStream::connect(addr).await.unwrap();
        let rtt = round_trip(&mut s, 1000).await;
        assert!(rtt >= Duration::from_millis(160), "{rtt:?}");
        // A change applies to bytes read after it.
        links.update_all(|p| p.delay_ms = 0);
        let rtt2 = round_trip(&mut s, 200_000).await;
        assert!(rtt2 < rtt + Duration::from_secs(5));
    }

    #[tokio::test]
    async fn jitter_keeps_order() {
        let (addr, links) = setup(LinkParams {
            delay_ms: 20,
            jitter_ms: 20,
            ..LinkParams::default()
        })
        .await;
        let _ = links;
        let mut s = TcpStream::connect(addr).await.unwrap();
        let data: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        let (mut r, mut w) = s.split();
        let send = async {
            for c in data.chunks(1000) {
                w.write_all(c).await.unwrap();
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        };
        let mut got = vec![0u8; data.len()];
        let recv = r.read_exact(&mut got);
        let ((), res) = tokio::join!(send, recv);
        res.unwrap();
        assert_eq!(got, data);
    }

    #[tokio::test]
    async fn loss_costs_a_retransmission_timeout() {
        let (addr, _links) = setup(LinkParams {
            loss_pct: 100.0,
            ..LinkParams::default()
        })
        .await;
        let mut s = TcpStream::connect(addr).await.unwrap();
        let rtt = round_trip(&mut s, 10).await;
        assert!(rtt >= Duration::from_millis(400), "{rtt:?}");
    }

    #[tokio::test]
    async fn bandwidth_limits_the_rate() {
        // 800 kbit/s: 100 kB each way takes at least 1 s.
        let (addr, _links) = setup(LinkParams {
            bandwidth_bps: Some(800_000),
            ..LinkParams::default()
        })
        .await;
        let mut s = TcpStream::connect(addr).await.unwrap();
        let rtt = round_trip(&mut s, 100_000).await;
        assert!(rtt >= Duration::from_millis(900), "{rtt:?}");
    }

    #[tokio::test]
    async fn a_cut_closes_connections_and_refuses_new_ones_until_healed() {
        let (addr, links) = setup(LinkParams::default()).await;
        let mut s = TcpStream::connect(addr).await.unwrap();
        round_trip(&mut s, 10).await;
        links.update(1, 0, |p| p.cut = true);
        let mut buf = [0u8; 1];
        let r = tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf))
            .await
            .unwrap();
        assert!(matches!(r, Ok(0) | Err(_)), "closed: {r:?}");
        let mut s2 = TcpStream::connect(addr).await.unwrap();
        let _ = s2.write_all(b"x").await;
        let r = tokio::time::timeout(Duration::from_secs(10), s2.read(&mut buf))
            .await
            .unwrap();
        assert!(matches!(r, Ok(0) | Err(_)), "refused: {r:?}");
        links.update(1, 0, |p| p.cut = false);
        let mut s3 = TcpStream::connect(addr).await.unwrap();
        round_trip(&mut s3, 10).await;
    }

    #[tokio::test]
    async fn unknown_sources_are_closed() {
        let target = echo_server().await;
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let links = Links::new(2, LinkParams::default(), 1);
        let sources = Arc::new(vec![
            "10.9.9.9".parse().unwrap(),
            "10.9.9.8".parse().unwrap(),
        ]);
        tokio::spawn(serve(l, 1, target, sources, links));
        let mut s = TcpStream::connect(addr).await.unwrap();
        let _ = s.write_all(b"x").await;
        let mut buf = [0u8; 1];
        let r = tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf))
            .await
            .unwrap();
        assert!(matches!(r, Ok(0) | Err(_)));
    }

    #[test]
    fn jitter_stays_within_bounds() {
        let p = LinkParams {
            delay_ms: 50,
            jitter_ms: 10,
            ..LinkParams::default()
        };
        let mut rng = Rng::new(3);
        for _ in 0..1000 {
            let d = p.delay_for(&mut rng).as_millis();
            assert!((40..=60).contains(&d), "{d}");
        }
    }
}
