//! The signer's benchmark: one run prints, measured on this machine in this run,
//!
//! * in-process Ed25519 sign of a 69-byte sign-bytes (the floor);
//! * bare 4 KiB pwrite + fdatasync on the same filesystem (the durability floor);
//! * serial durable sign round trip over the socket to the real `cvx-signer` (p50/p99);
//! * pipelined durable signatures/s with group commit (1024 requests in flight);
//! * the ratios round-trip/fdatasync (goal <= 1.2) and pipelined/in-process (goal >= 0.6).
//!
//! `cargo bench -p cvx-signer --bench signer` (release). Timings are printed, never
//! asserted. CVX_BENCH_N scales the iteration counts.

#![allow(
    clippy::print_stdout,
    clippy::unwrap_used,
    clippy::cast_precision_loss,
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss
)]

use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use cvx_protocol::consensus::BlockHeader;
use cvx_protocol::policy::{Request, SignRequest};
use cvx_protocol::signer_wire::{ClientMessage, SignerMessage};
use cvx_protocol::{NetworkId, PublicKey, Signable, Timestamp, hash};
use cvx_signer::client::Client;
use ed25519_dalek::Signer as _;

fn pct(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

struct Signer {
    child: std::process::Child,
    socket: PathBuf,
}

impl Drop for Signer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_signer(dir: &Path, network: NetworkId) -> (Signer, PublicKey) {
    let bin = env!("CARGO_BIN_EXE_cvx-signer");
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).unwrap();
    let out = Command::new(bin)
        .args(["keygen", "--out"])
        .arg(dir.join("peer.key"))
        .arg("--new-identity")
        .arg(dir.join("host.identity"))
        .output()
        .unwrap();
    assert!(out.status.success());
    let pk = PublicKey::from_hex(String::from_utf8_lossy(&out.stdout).trim()).unwrap();
    let d = dir.display();
    // Blocks are dated max(now, last + 1 ms), so at tens of thousands of signatures per
    // second their timestamps run ahead of the clock: allow an hour of lead, or a long
    // run (CVX_BENCH_N) would measure BLOCK_FUTURE refusals instead of signatures.
    std::fs::write(
        dir.join("policy.toml"),
        "max_future_skew_ms = 3600000\nmax_block_txs = 1024\n",
    )
    .unwrap();
    let config = dir.join("signer.toml");
    std::fs::write(
        &config,
        format!(
            "network = \"{network}\"\nstate_file = \"{d}/state\"\naudit_log = \"{d}/audit.log\"\nsocket = \"{d}/run/s.sock\"\n\
             allowed_uids = [{}]\nmax_connections = 64\npolicy_file = \"{d}/policy.toml\"\n[key]\nfile = \"{d}/peer.key\"\nidentity_file = \"{d}/host.identity\"\n",
            nix::unistd::geteuid().as_raw()
        ),
    )
    .unwrap();
    assert!(
        Command::new(bin)
            .args(["init", "--config"])
            .arg(&config)
            .status()
            .unwrap()
            .success()
    );
    let child = Command::new(bin)
        .args(["run", "--config"])
        .arg(&config)
        .stdin(Stdio::null())
        .stderr(std::fs::File::create(dir.join("signer.log")).unwrap())
        .spawn()
        .unwrap();
    (
        Signer {
            child,
            socket: dir.join("run/s.sock"),
        },
        pk,
    )
}

fn connect(s: &Signer) -> Client {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(mut c) = Client::connect(&s.socket)
            && let Ok(SignerMessage::Hello { .. }) = c.call(&ClientMessage::Hello { version: 1 })
        {
            return c;
        }
        assert!(Instant::now() < deadline, "signer did not start");
        std::thread::sleep(Duration::from_millis(5));
    }
}

struct Blocks {
    pk: PublicKey,
    net: NetworkId,
    last: u64,
    n: u64,
}

impl Blocks {
    fn next(&mut self) -> ClientMessage {
        self.last = cvx_signer::now().0.max(self.last + 1);
        self.n += 1;
        ClientMessage::Sign(Request {
            network: self.net,
            body: SignRequest::Block(BlockHeader {
                proposer: self.pk,
                timestamp: Timestamp(self.last),
                tx_count: 1,
                tx_hash: hash(&self.n.to_le_bytes()),
            }),
        })
    }
}

fn main() {
    let scale: usize = std::env::var("CVX_BENCH_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    let tmp = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("cvx-signer-bench");
    let net = NetworkId(hash(b"bench network"));

    // 1. In-process sign.
    let sk = ed25519_dalek::SigningKey::from_bytes(&[42; 32]);
    let header = BlockHeader {
        proposer: PublicKey::from_bytes(sk.verifying_key().as_bytes()).unwrap(),
        timestamp: Timestamp(1),
        tx_count: 0,
        tx_hash: hash(b"x"),
    };
    let sb = header.sign_bytes(&net);
    let n_sign = 20_000 * scale;
    let t = Instant::now();
    for _ in 0..n_sign {
        std::hint::black_box(sk.sign(std::hint::black_box(sb.as_bytes())));
    }
    let sign_each = t.elapsed() / n_sign as u32;
    let inproc_per_s = 1.0 / sign_each.as_secs_f64();

    // 2. Bare 4 KiB pwrite + fdatasync, same filesystem as the signer's state.
    std::fs::create_dir_all(&tmp).unwrap();
    let f = OpenOptions::new()
        .create(true)
        .truncate(true)
        .read(true)
        .write(true)
        .open(tmp.join("fsync.bin"))
        .unwrap();
    f.write_all_at(&[0u8; 8192], 0).unwrap();
    f.sync_all().unwrap();
    let page = [7u8; 4096];
    let n_sync = 500 * scale;
    let mut syncs = Vec::with_capacity(n_sync);
    for i in 0..n_sync {
        let t = Instant::now();
        f.write_all_at(&page, (i % 2 * 4096) as u64).unwrap();
        f.sync_data().unwrap();
        syncs.push(t.elapsed());
    }
    syncs.sort();
    let fsync_p50 = pct(&syncs, 0.5);

    // 3. Serial durable round trip over the socket (each request moves the watermark).
    let (signer, pk) = start_signer(&tmp.join("serial"), net);
    let mut c = connect(&signer);
    let mut blocks = Blocks {
        pk,
        net,
        last: 0,
        n: 0,
    };
    for _ in 0..20 {
        assert!(matches!(
            c.call(&blocks.next()).unwrap(),
            SignerMessage::Signed { .. }
        ));
    }
    let n_rt = 500 * scale;
    let mut rts = Vec::with_capacity(n_rt);
    for _ in 0..n_rt {
        let req = blocks.next();
        let t = Instant::now();
        let r = c.call(&req).unwrap();
        rts.push(t.elapsed());
        assert!(matches!(r, SignerMessage::Signed { .. }), "{r:?}");
    }
    rts.sort();
    let (rt_p50, rt_p99) = (pct(&rts, 0.5), pct(&rts, 0.99));
    drop(c);
    drop(signer);

    // 4. Pipelined: WINDOW requests in flight on each of CONNS connections; the signer
    //    decides whatever has arrived per loop turn and makes it durable with one fdatasync.
    // One connection: a peer's blocks must arrive in timestamp order.
    const WINDOW: usize = 1024;
    const CONNS: usize = 1;
    let (signer, pk) = start_signer(&tmp.join("pipelined"), net);
    let n_pipe = 20_000 * scale;
    let per_conn = n_pipe / CONNS;
    let start = Instant::now();
    let threads: Vec<_> = (0..CONNS)
        .map(|_| {
            let mut c = connect(&signer);
            std::thread::spawn(move || {
                let mut blocks = Blocks {
                    pk,
                    net,
                    last: 0,
                    n: 0,
                };
                let mut signed = 0usize;
                let mut sent = 0usize;
                let mut received = 0usize;
                while received < per_conn {
                    while sent < per_conn && sent - received < WINDOW {
                        c.send(&blocks.next()).unwrap();
                        sent += 1;
                    }
                    if matches!(c.recv().unwrap(), SignerMessage::Signed { .. }) {
                        signed += 1;
                    }
                    received += 1;
                }
                signed
            })
        })
        .collect();
    let signed: usize = threads.into_iter().map(|t| t.join().unwrap()).sum();
    let pipe_elapsed = start.elapsed();
    let pipe_per_s = signed as f64 / pipe_elapsed.as_secs_f64();
    let status = {
        let mut c = connect(&signer);
        match c.call(&ClientMessage::Status).unwrap() {
            SignerMessage::Status(s) => s,
            other => panic!("{other:?}"),
        }
    };
    drop(signer);

    println!("cvx-signer benchmark (one run, this machine)");
    println!(
        "  in-process Ed25519 sign:            {:8.1} us/sig  ({inproc_per_s:.0} sigs/s)",
        us(sign_each)
    );
    println!(
        "  bare 4 KiB pwrite+fdatasync:        {:8.1} us p50  ({:.1} us p99, n={n_sync})",
        us(fsync_p50),
        us(pct(&syncs, 0.99))
    );
    println!(
        "  serial durable sign round trip:     {:8.1} us p50  ({:.1} us p99, n={n_rt})",
        us(rt_p50),
        us(rt_p99)
    );
    println!(
        "  pipelined durable signatures:       {pipe_per_s:8.0} sigs/s ({signed} of {n_pipe} signed; {CONNS} connections x {WINDOW} in flight; {} state commits => {:.1} sigs/fdatasync)",
        status.state_sequence,
        signed as f64 / status.state_sequence.max(1) as f64
    );
    println!(
        "  ratio round-trip p50 / fdatasync p50:   {:.2}  (goal <= 1.2)",
        rt_p50.as_secs_f64() / fsync_p50.as_secs_f64()
    );
    println!(
        "  ratio pipelined / in-process:           {:.2}  (goal >= 0.6)",
        pipe_per_s / inproc_per_s
    );
}
