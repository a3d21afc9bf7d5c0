//! System tests of cvx-signer: they start the real binary (and its sandbox probe) and
//! check every promise of issue 3 from the outside. Root-only checks skip with a
//! printed reason when not root. `CVX_LONG=1` makes the crash test run 10,000 cycles.

#![allow(
    clippy::unwrap_used,
    clippy::print_stdout,
    clippy::cast_possible_truncation,
    clippy::cast_possible_wrap
)]

use std::collections::{BTreeMap, HashMap};
use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use cvx_protocol::consensus::{BlockHeader, ChallengeResponse, Checkpoint, Order};
use cvx_protocol::hash::{chain_over, chain_step};
use cvx_protocol::policy::{RefuseCode, Request, SignRequest, blocks_conflict, orders_conflict};
use cvx_protocol::signer_wire::{ClientMessage, SignerMessage};
use cvx_protocol::{
    BoundedVec, Canonical, Hash, NetworkId, PublicKey, Signable, Signature, Timestamp, Token, hash,
};
use cvx_signer::client::Client;

mod signer_common;

use signer_common::{Env, Running, as_uid, is_root, now_ms, probe_bin, signer_bin, skip};

fn other_key(seed: u8) -> PublicKey {
    let sk = ed25519_dalek::SigningKey::from_bytes(&[seed; 32]);
    PublicKey::from_bytes(sk.verifying_key().as_bytes()).unwrap()
}

fn block(pk: PublicKey, t: u64, tag: u64) -> BlockHeader {
    BlockHeader {
        proposer: pk,
        timestamp: Timestamp(t),
        tx_count: (tag % 7) as u32,
        tx_hash: hash(&tag.to_le_bytes()),
    }
}

fn order(
    pk: PublicKey,
    net: &NetworkId,
    t: u64,
    cp: u64,
    chain: &[Hash],
    consensus: u64,
    finality: u64,
) -> Order {
    let cp_chain = chain_over(&net.0, &chain[..cp as usize]);
    Order {
        peer: pk,
        timestamp: Timestamp(t),
        checkpoint: Checkpoint {
            position: cp,
            chain: cp_chain,
        },
        blocks: BoundedVec::try_from_vec(chain[cp as usize..].to_vec()).unwrap(),
        proposal: chain.len() as u64,
        consensus,
        finality,
        stake_root: Hash::ZERO,
    }
}

fn sign_req(net: &NetworkId, body: SignRequest) -> ClientMessage {
    ClientMessage::Sign(Request {
        network: *net,
        body,
    })
}

fn order_req(net: &NetworkId, o: &Order) -> ClientMessage {
    sign_req(
        net,
        SignRequest::Order {
            order: o.clone(),
            bridge: BoundedVec::new(),
        },
    )
}

fn expect_signed(m: &SignerMessage) -> Signature {
    match m {
        SignerMessage::Signed { signature, .. } => *signature,
        other => panic!("expected a signature, got {other:?}"),
    }
}

fn expect_refused(m: &SignerMessage) -> RefuseCode {
    match m {
        SignerMessage::Refused { code, .. } => *code,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

fn proc_status(pid: i32, field: &str) -> Option<String> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines().find_map(|l| {
        l.strip_prefix(field)
            .map(|v| v.trim_start_matches(':').trim().to_owned())
    })
}

fn rss_kib(pid: i32) -> u64 {
    proc_status(pid, "VmRSS")
        .unwrap()
        .trim_end_matches(" kB")
        .trim()
        .parse()
        .unwrap()
}

// ---------------------------------------------------------------- acceptance 1

#[test]
fn signatures_of_each_kind_verify_against_the_public_key() {
    let env = Env::local("kinds", "", true);
    let mut s = env.spawn();
    let mut c = s.client();
    let (pk, net) = (env.public_key, env.network);
    match c.call(&ClientMessage::PublicKey).unwrap() {
        SignerMessage::PublicKey(k) => assert_eq!(k, pk),
        other => panic!("{other:?}"),
    }
    let t = now_ms();
    let b = block(pk, t, 1);
    let sig = expect_signed(
        &c.call(&sign_req(&net, SignRequest::Block(b.clone())))
            .unwrap(),
    );
    pk.verify(&net, &b, &sig).unwrap();
    assert!(
        pk.verify(&NetworkId(hash(b"other")), &b, &sig).is_err(),
        "bound to the network"
    );

    let chain: Vec<Hash> = (0..3u64).map(|i| hash(&i.to_le_bytes())).collect();
    let o = order(pk, &net, t, 0, &chain, 2, 1);
    let sig_o = expect_signed(&c.call(&order_req(&net, &o)).unwrap());
    pk.verify(&net, &o, &sig_o).unwrap();
    // An order's sign-bytes are exactly "cvx1" ‖ 5 ‖ network ‖ SHA-256(encoding of its
    // header) (docs/protocol.md §5, §11).
    let sb = o.sign_bytes(&net);
    assert_eq!(&sb.as_bytes()[..4], b"cvx1");
    assert_eq!(sb.as_bytes()[4], 5);
    let header = cvx_protocol::certificate::OrderHeader::of(&o, o.stake_root).unwrap();
    assert_eq!(&sb.as_bytes()[37..], &hash(&header.encode()).0);
    assert_ne!(&sb.as_bytes()[37..], &hash(&o.encode()).0);

    let r = ChallengeResponse {
        challenger: other_key(9),
        responder: pk,
        token: Token([5; 32]),
    };
    let sig_r = expect_signed(
        &c.call(&sign_req(&net, SignRequest::ChallengeResponse(r.clone())))
            .unwrap(),
    );
    pk.verify(&net, &r, &sig_r).unwrap();

    // An identical repeat returns the identical signature; another network is refused.
    match c.call(&order_req(&net, &o)).unwrap() {
        SignerMessage::Signed { signature, repeat } => assert!(repeat && signature == sig_o),
        other => panic!("{other:?}"),
    }
    let wrong = ClientMessage::Sign(Request {
        network: NetworkId(hash(b"elsewhere")),
        body: SignRequest::Block(block(pk, t + 1, 2)),
    });
    assert_eq!(
        expect_refused(&c.call(&wrong).unwrap()),
        RefuseCode::WrongNetwork
    );
    drop(c);
    s.kill();
    // Every decision is in the audit log, and the chain verifies.
    let out = env
        .signer(&["audit", "verify", "--print"])
        .arg(env.audit_log())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert_eq!(text.matches("Signed").count(), 4, "{text}");
    assert!(text.contains("WRONG_NETWORK"), "{text}");
}

/// Audit log rotation (docs/signer.md, "Audit log"): at start, a log past
/// `audit_rotate_bytes` is archived read-only and continued; signing goes on; the
/// chain verifies across the files, and only in order.
#[test]
fn audit_log_rotates_at_start_and_the_chain_verifies_across_files() {
    let env = Env::local("rotate", "audit_rotate_bytes = 1", true);
    let (pk, net) = (env.public_key, env.network);
    let t = now_ms();
    for i in 0..3u64 {
        let mut s = env.spawn();
        let mut c = s.client();
        let b = block(pk, t + i, i);
        let sig = expect_signed(
            &c.call(&sign_req(&net, SignRequest::Block(b.clone())))
                .unwrap(),
        );
        pk.verify(&net, &b, &sig).unwrap();
        // The watermark survived the rotation: an older block is refused.
        let old = block(pk, t + i - 1, 100 + i);
        assert_eq!(
            expect_refused(&c.call(&sign_req(&net, SignRequest::Block(old))).unwrap()),
            RefuseCode::BlockNotNewer
        );
        drop(c);
        s.kill();
    }
    let archives = env.audit_archives();
    assert_eq!(archives.len(), 3, "one rotation per start: {archives:?}");
    for a in &archives {
        let mode = std::fs::metadata(a).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o400, "{} is not read-only", a.display());
    }
    let text = env.verify_audit_chain();
    assert_eq!(text.lines().count(), 4, "{text}");
    // Alone, the live log verifies and says it continues an archive.
    let alone = env
        .signer(&["audit", "verify"])
        .arg(env.audit_log())
        .output()
        .unwrap();
    assert!(alone.status.success());
    assert!(String::from_utf8_lossy(&alone.stdout).contains("continues an archived file"));
    // Out of order, or with an archive missing: refused with exit 6.
    let out = env
        .signer(&["audit", "verify"])
        .arg(&archives[0])
        .arg(env.audit_log())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(6));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("does not continue the previous file"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Every decision is in exactly one file: 3 signed blocks, 3 refusals, 3 starts.
    let print = env
        .signer(&["audit", "verify", "--print"])
        .args(&archives)
        .arg(env.audit_log())
        .output()
        .unwrap();
    let all = String::from_utf8_lossy(&print.stdout);
    assert_eq!(all.matches("Signed").count(), 3, "{all}");
    assert_eq!(all.matches("Refused").count(), 3, "{all}");
    assert_eq!(all.matches("Start").count(), 3, "{all}");
    assert_eq!(
        all.matches("Gap").count(),
        0,
        "rotation is not a gap: {all}"
    );
}

// ---------------------------------------------------------------- acceptance 2

#[test]
fn running_signer_is_sandboxed_and_its_key_memory_is_locked() {
    let env = Env::local("sandboxed", "", true);
    let mut s = env.spawn();
    let _c = s.client();
    let pid = s.pid();
    assert_eq!(
        proc_status(pid, "Seccomp").as_deref(),
        Some("2"),
        "seccomp filter mode"
    );
    assert_eq!(proc_status(pid, "NoNewPrivs").as_deref(), Some("1"));
    // The key mapping: secretmem, or an anonymous mapping locked and excluded from dumps.
    let smaps = std::fs::read_to_string(format!("/proc/{pid}/smaps")).unwrap();
    let mut name = String::new();
    let mut found = None;
    for line in smaps.lines() {
        let first = line.split_whitespace().next().unwrap_or("");
        if first.contains('-') && first.chars().all(|c| c.is_ascii_hexdigit() || c == '-') {
            name = line.to_owned();
        } else if let Some(flags) = line.strip_prefix("VmFlags:") {
            let f: Vec<&str> = flags.split_whitespace().collect();
            let locked_nodump = f.contains(&"lo") && f.contains(&"dd");
            if name.contains("secretmem") || (locked_nodump && f.contains(&"wf")) {
                assert!(locked_nodump, "key mapping flags {flags}");
                found = Some(format!("{name} [{flags}]"));
            }
        }
    }
    let found = found.expect("no locked, dump-excluded key mapping in smaps");
    println!("key mapping: {found}");
    // Only the expected descriptors are open: 0-2, listener, state, audit log, the client.
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count();
    assert!(fds <= 7, "{fds} descriptors open");
    let log = s.log_text();
    assert!(log.contains("landlock=\"full\""), "{log}");
}

// ---------------------------------------------------------------- acceptance 3

#[test]
fn sandbox_probe_dies_by_sigsys_on_forbidden_calls_and_aborts_on_panic() {
    let probe = probe_bin();
    let ok = Command::new(probe).arg("ok").output().unwrap();
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    for action in [
        "socket-inet",
        "openat",
        "execve",
        "ptrace",
        "mmap-exec",
        "mprotect-exec",
    ] {
        let out = Command::new(probe).arg(action).output().unwrap();
        assert_eq!(
            out.status.signal(),
            Some(nix::sys::signal::Signal::SIGSYS as i32),
            "{action}: {:?} {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!out.status.core_dumped(), "{action}: no core");
    }
    let out = Command::new(probe).arg("panic").output().unwrap();
    assert_eq!(
        out.status.signal(),
        Some(nix::sys::signal::Signal::SIGABRT as i32),
        "panic: {:?} {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("deliberate panic"));
}

/// Issue 13, deliver 4: crash signals tell the truth inside the sandbox. A real fault
/// ends by SIGSEGV, a stack overflow with std's message and SIGABRT, and a SIGSEGV sent
/// to a serving signer ends it by SIGSEGV at once — never a seccomp kill (SIGSYS).
#[test]
fn crash_signals_inside_the_sandbox_are_the_real_ones_not_sigsys() {
    use nix::sys::signal::Signal;
    let probe = probe_bin();
    let out = Command::new(probe).arg("segfault").output().unwrap();
    assert_eq!(
        out.status.signal(),
        Some(Signal::SIGSEGV as i32),
        "segfault: {:?} {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let out = Command::new(probe).arg("stack-overflow").output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.signal(),
        Some(Signal::SIGABRT as i32),
        "stack overflow: {:?} {err}",
        out.status
    );
    assert!(err.contains("has overflowed its stack"), "{err}");

    for sig in [Signal::SIGSEGV, Signal::SIGBUS] {
        let env = Env::local("segv", "", true);
        let mut s = env.spawn();
        let _c = s.client();
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(s.pid()), sig).unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        let status = loop {
            if let Some(st) = s.child.try_wait().unwrap() {
                break st;
            }
            assert!(
                Instant::now() < deadline,
                "the signer survived {sig}: {}",
                s.log_text()
            );
            std::thread::sleep(Duration::from_millis(10));
        };
        assert_eq!(status.signal(), Some(sig as i32), "{sig}: {status:?}");
    }
}

// ---------------------------------------------------------------- acceptance 4

#[test]
fn a_uid_not_allowed_is_refused_even_when_the_socket_is_world_writable() {
    if !is_root() {
        return skip(
            "uid test",
            "needs root to run a client as another uid (setpriv)",
        );
    }
    let env = Env::local("uid", "", true);
    let mut s = env.spawn();
    let _c = s.client();
    std::fs::set_permissions(env.socket(), std::fs::Permissions::from_mode(0o666)).unwrap();
    std::fs::set_permissions(env.dir.join("run"), std::fs::Permissions::from_mode(0o755)).unwrap();
    let status = |uid: Option<u32>| {
        let mut cmd = match uid {
            Some(u) => as_uid(u, signer_bin()),
            None => Command::new(signer_bin()),
        };
        cmd.args(["status", "--socket"])
            .arg(env.socket())
            .output()
            .unwrap()
    };
    let allowed = status(None);
    assert!(
        allowed.status.success(),
        "{}",
        String::from_utf8_lossy(&allowed.stderr)
    );
    let refused = status(Some(65534));
    assert_eq!(
        refused.status.code(),
        Some(10),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    let why = String::from_utf8_lossy(&refused.stderr);
    assert!(why.contains("closed the connection"), "{why}");
    assert!(
        s.log_text().contains("uid not in allowed_uids"),
        "{}",
        s.log_text()
    );
}

// ---------------------------------------------------------------- acceptance 5

/// A tiny deterministic generator (no rand dependency).
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn chance(&mut self, pct: u64) -> bool {
        self.below(100) < pct
    }
}

#[derive(Default)]
struct Seen {
    /// Every (kind, value, signature) ever returned, in receipt order.
    orders: Vec<(Order, Signature, bool)>,
    blocks: Vec<(BlockHeader, Signature, bool)>,
}

struct Model {
    pk: PublicKey,
    net: NetworkId,
    main: Vec<Hash>,
    /// Chain value at each sent order's consensus point -> the blocks up to there
    /// (after a restart, the signer's committed chain is looked up here).
    sent: HashMap<Hash, Vec<Hash>>,
    desynced: u64,
    /// The last block whose signature came back (timestamp, id).
    last_block: Option<(u64, Hash)>,
    /// Restarts whose durable watermark was ahead of every returned signature (the
    /// signer was killed between the commit and the reply).
    lost_replies: u64,
    known_consensus: u64,
    known_finality: u64,
    last_ts: u64,
    history: Vec<ClientMessage>,
}

impl Model {
    fn ts(&mut self) -> u64 {
        self.last_ts = now_ms().max(self.last_ts + 1);
        self.last_ts
    }

    /// Align with the signer's durable watermark (after a restart).
    fn sync(&mut self, st: &cvx_protocol::signer_wire::StatusReport) {
        // Durable before the reply: the restarted signer's watermark covers every
        // signature that came back.
        if let Some((t, id)) = self.last_block {
            let b = st
                .watermark
                .block
                .expect("a signed block is in the watermark");
            assert!(
                b.timestamp.0 >= t,
                "block watermark regressed after restart"
            );
            if b.id != id {
                self.lost_replies += 1;
            }
        }
        let durable_consensus = st.watermark.consensus.map_or(0, |c| c.position);
        assert!(
            durable_consensus >= self.known_consensus,
            "consensus watermark regressed after restart"
        );
        assert!(
            st.watermark.finality >= self.known_finality,
            "finality watermark regressed after restart"
        );
        if let Some(c) = &st.watermark.consensus {
            let matches = |chain: &Vec<Hash>| {
                c.position as usize <= chain.len()
                    && chain_over(&self.net.0, &chain[..c.position as usize]) == c.chain
            };
            if !matches(&self.main) {
                match self.sent.get(&c.chain) {
                    Some(prefix) => self.main.clone_from(prefix),
                    None => self.desynced += 1,
                }
            }
            self.known_consensus = c.position;
        }
        self.known_finality = st.watermark.finality;
    }

    fn next_requests(&mut self, rng: &mut Rng) -> Vec<ClientMessage> {
        let roll = rng.below(100);
        if roll < 8 && !self.history.is_empty() {
            // Replay an earlier request (identical repeat or stale).
            let i = self.history.len() - 1 - rng.below(self.history.len().min(20) as u64) as usize;
            return vec![self.history[i].clone()];
        }
        let mut out = Vec::new();
        let msg = if roll < 35 {
            let t = self.ts();
            let tag = rng.next();
            sign_req(&self.net, SignRequest::Block(block(self.pk, t, tag)))
        } else if roll < 45 {
            // Two different blocks with one timestamp: at most one may be signed.
            let t = self.ts();
            out.push(sign_req(
                &self.net,
                SignRequest::Block(block(self.pk, t, rng.next())),
            ));
            sign_req(&self.net, SignRequest::Block(block(self.pk, t, rng.next())))
        } else {
            // Grow the chain, keeping an order's listed blocks under the protocol cap.
            let room = (self.main.len() as u64).saturating_sub(self.known_consensus) < 900;
            if (rng.chance(15) && room) || self.main.is_empty() {
                self.main.push(hash(&rng.next().to_le_bytes()));
            }
            let mut chain = self.main.clone();
            if rng.chance(20) && chain.len() as u64 > self.known_consensus {
                // A fork of the uncommitted tail.
                let at = self.known_consensus as usize
                    + rng.below((chain.len() - self.known_consensus as usize) as u64) as usize;
                chain[at] = hash(&rng.next().to_le_bytes());
            } else if rng.chance(10)
                && self.known_consensus > 0
                && chain.len() as u64 >= self.known_consensus
            {
                // A fork of the committed prefix: must always be refused.
                let at = rng.below(self.known_consensus) as usize;
                chain[at] = hash(&rng.next().to_le_bytes());
            }
            let mut cp = self.known_consensus.min(chain.len() as u64);
            chain.truncate(cp as usize + 1000);
            let len = chain.len() as u64;
            let mut consensus = cp + rng.below(len - cp + 1);
            if rng.chance(5) && self.known_consensus > 0 && len < 1000 {
                // A regressed consensus point (from the genesis checkpoint): always refused.
                cp = 0;
                consensus = self.known_consensus - 1;
            }
            let finality = cp + rng.below(consensus - cp + 1);
            let t = self.ts();
            if self.sent.len() > 1024 {
                self.sent.clear();
            }
            let prefix = chain[..consensus as usize].to_vec();
            self.sent.insert(chain_over(&self.net.0, &prefix), prefix);
            order_req(
                &self.net,
                &order(self.pk, &self.net, t, cp, &chain, consensus, finality),
            )
        };
        out.push(msg);
        self.history.extend(out.iter().cloned());
        if self.history.len() > 200 {
            self.history.drain(..100);
        }
        out
    }

    fn record(&mut self, req: &ClientMessage, reply: &SignerMessage, seen: &mut Seen) {
        let (SignerMessage::Signed { signature, repeat }, ClientMessage::Sign(r)) = (reply, req)
        else {
            return;
        };
        match &r.body {
            SignRequest::Block(b) => {
                self.pk.verify(&self.net, b, signature).unwrap();
                seen.blocks.push((b.clone(), *signature, *repeat));
                self.last_block = Some((b.timestamp.0, b.hash()));
            }
            SignRequest::Order { order, .. } => {
                self.pk.verify(&self.net, order, signature).unwrap();
                seen.orders.push((order.clone(), *signature, *repeat));
                let listed: Vec<Hash> = order.blocks.to_vec();
                let cp = order.checkpoint.position as usize;
                if cp <= self.main.len()
                    && chain_over(&self.net.0, &self.main[..cp]) == order.checkpoint.chain
                {
                    let mut adopted = self.main[..cp].to_vec();
                    adopted.extend(listed);
                    self.main = adopted;
                }
                self.known_consensus = self.known_consensus.max(order.consensus);
                self.known_finality = self.known_finality.max(order.finality);
            }
            SignRequest::ChallengeResponse(_) => {}
        }
    }
}

fn check_history(seen: &Seen, net: &NetworkId) -> (usize, usize) {
    // Blocks: no two signed headers conflict; timestamps strictly increase (repeats aside).
    let mut by_ts: HashMap<u64, &BlockHeader> = HashMap::new();
    let mut last_block = 0;
    for (b, _, repeat) in &seen.blocks {
        if let Some(other) = by_ts.insert(b.timestamp.0, b) {
            assert!(
                !blocks_conflict(b, other),
                "conflicting blocks signed at t={}",
                b.timestamp.0
            );
        }
        if !repeat {
            assert!(b.timestamp.0 > last_block, "block timestamp regressed");
            last_block = b.timestamp.0;
        }
    }
    // Orders: no two signed orders conflict (reference predicate, plus a per-position
    // chain map that covers every pair); points never regress.
    let mut distinct: Vec<&Order> = Vec::new();
    let mut at: BTreeMap<u64, Hash> = BTreeMap::new();
    let (mut last_t, mut last_c, mut last_f) = (0, 0, 0);
    for (o, _, repeat) in &seen.orders {
        if !repeat {
            assert!(o.timestamp.0 > last_t, "order timestamp regressed");
            assert!(
                o.consensus >= last_c,
                "consensus point regressed {} < {last_c}",
                o.consensus
            );
            assert!(
                o.finality >= last_f,
                "finality point regressed {} < {last_f}",
                o.finality
            );
            (last_t, last_c, last_f) = (o.timestamp.0, o.consensus, o.finality);
        }
        if distinct.last().is_some_and(|p| *p == o) {
            continue;
        }
        let mut chain = o.checkpoint.chain;
        for p in o.checkpoint.position..=o.consensus {
            if p > o.checkpoint.position {
                chain = chain_step(&chain, o.block_at(p - 1).unwrap());
            }
            if let Some(prev) = at.insert(p, chain) {
                assert_eq!(prev, chain, "two signed orders disagree at position {p}");
            }
        }
        distinct.push(o);
    }
    let n = distinct.len();
    for i in 0..n {
        let from = if n <= 1500 { 0 } else { i.saturating_sub(50) };
        for j in from..i {
            assert!(
                !orders_conflict(distinct[i], distinct[j]),
                "orders {j} and {i} conflict"
            );
        }
    }
    let _ = net;
    (seen.blocks.len(), seen.orders.len())
}

/// The crash test: `CVX_LONG=1` runs 10,000 cycles, as 10 segments of 1,000 (each with
/// its own key, state and audit log, so start-up — which verifies the whole audit log —
/// stays fast); signatures are checked across every cycle of a key's life.
#[test]
fn crash_test_sigkill_at_random_points_never_yields_conflicting_signatures() {
    let long = std::env::var_os("CVX_LONG").is_some();
    let (segments, cycles) = if long { (10, 1_000) } else { (1, 200) };
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ u64::from(std::process::id()));
    for segment in 0..segments {
        crash_segment(segment, cycles, &mut rng);
    }
}

fn crash_segment(segment: u64, cycles: usize, rng: &mut Rng) {
    // A small rotation size makes most starts rotate the audit log, and one start in
    // eight is killed within its first 4 ms — during start-up and rotation.
    let env = Env::local(
        &format!("crash{segment}"),
        "audit_rotate_bytes = 4096",
        true,
    );
    let mut early_kills = 0;
    let mut model = Model {
        pk: env.public_key,
        net: env.network,
        main: Vec::new(),
        sent: HashMap::new(),
        desynced: 0,
        last_block: None,
        lost_replies: 0,
        known_consensus: 0,
        known_finality: 0,
        last_ts: 0,
        history: Vec::new(),
    };
    let mut seen = Seen::default();
    let mut codes: BTreeMap<&str, u64> = BTreeMap::new();
    let started = Instant::now();
    for cycle in 0..cycles {
        let mut s = env.spawn();
        if rng.below(8) == 0 {
            let spin = Instant::now() + Duration::from_micros(rng.below(4000));
            while Instant::now() < spin {
                std::hint::spin_loop();
            }
            let _ = s.child.kill();
            let st = s.child.wait().unwrap();
            assert!(
                st.signal() == Some(9) || st.success(),
                "cycle {cycle}: signer ended with {st}: {}",
                s.log_text()
            );
            early_kills += 1;
            continue;
        }
        let mut c = s.client();
        match c.call(&ClientMessage::Status).unwrap() {
            SignerMessage::Status(st) => {
                assert!(!st.locked);
                model.sync(&st);
            }
            other => panic!("{other:?}"),
        }
        let rounds = 1 + rng.below(5);
        for round in 0..rounds {
            let n = 1 + rng.below(12) as usize;
            let reqs: Vec<ClientMessage> = (0..n).flat_map(|_| model.next_requests(rng)).collect();
            for r in &reqs {
                c.send(r).unwrap();
            }
            if round + 1 == rounds {
                // Kill at a random point: before, during or after the batch.
                let spin = Instant::now() + Duration::from_micros(rng.below(1500));
                while Instant::now() < spin {
                    std::hint::spin_loop();
                }
                let _ = s.child.kill();
            }
            for r in &reqs {
                match c.recv() {
                    Ok(reply) => {
                        if let SignerMessage::Refused { code, .. } = &reply {
                            *codes.entry(code.name()).or_insert(0u64) += 1;
                        }
                        model.record(r, &reply, &mut seen);
                    }
                    Err(_) => break,
                }
            }
        }
        let st = s.child.wait().unwrap();
        assert!(
            st.signal() == Some(9) || st.success(),
            "cycle {cycle}: signer ended with {st}: {}",
            s.log_text()
        );
        let _ = std::fs::remove_file(&s.log);
    }
    let (blocks, orders) = check_history(&seen, &env.network);
    println!(
        "crash test segment {segment}: {cycles} SIGKILL/restart cycles in {:.1}s; {blocks} block and {orders} order signatures checked; refusals {codes:?}; model resync failures {}; restarts that found a commit whose reply was lost: {}",
        started.elapsed().as_secs_f64(),
        model.desynced,
        model.lost_replies
    );
    assert!(
        blocks > cycles / 4 && orders > cycles / 4,
        "too few signatures to mean anything"
    );
    // The audit chain verifies across every rotated-out archive and the live log.
    let archives = env.audit_archives().len();
    env.verify_audit_chain();
    println!(
        "crash test segment {segment}: {early_kills} kills during start-up; the audit log rotated {archives} times and verifies across the files"
    );
    assert!(
        archives > cycles / 8,
        "the audit log rarely rotated: {archives}"
    );
}

// ---------------------------------------------------------------- acceptance 6

#[test]
fn thirty_two_concurrent_conflicting_orders_exactly_one_is_signed() {
    let env = Env::local("race", "max_connections = 64", true);
    let mut s = env.spawn();
    let _warm = s.client();
    let t = now_ms();
    let barrier = Arc::new(Barrier::new(32));
    let handles: Vec<_> = (0..32u64)
        .map(|i| {
            let socket = env.socket();
            let barrier = barrier.clone();
            let (pk, net) = (env.public_key, env.network);
            std::thread::spawn(move || {
                let mut c = Client::connect(&socket).unwrap();
                c.set_timeout(Some(Duration::from_secs(20))).unwrap();
                let chain = vec![hash(&i.to_le_bytes()), hash(b"second")];
                let o = order(pk, &net, t, 0, &chain, 2, 1);
                barrier.wait();
                c.call(&order_req(&net, &o)).unwrap()
            })
        })
        .collect();
    let replies: Vec<SignerMessage> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    let signed = replies
        .iter()
        .filter(|r| matches!(r, SignerMessage::Signed { .. }))
        .count();
    assert_eq!(signed, 1, "{replies:?}");
    for r in replies
        .iter()
        .filter(|r| !matches!(r, SignerMessage::Signed { .. }))
    {
        let code = expect_refused(r);
        assert!(
            matches!(code, RefuseCode::OrderNotNewer | RefuseCode::PrefixConflict),
            "{code}"
        );
    }
}

// ---------------------------------------------------------------- acceptance 7

#[test]
fn missing_truncated_corrupt_or_rolled_back_state_refuses_to_start() {
    let env = Env::local("badstate", "", true);
    let state = env.state();
    let fresh = std::fs::read(&state).unwrap();
    // Sign something so the state moves on (sequence 2), keep a copy of the old state.
    {
        let mut s = env.spawn();
        let mut c = s.client();
        expect_signed(
            &c.call(&sign_req(
                &env.network,
                SignRequest::Block(block(env.public_key, now_ms(), 1)),
            ))
            .unwrap(),
        );
        s.kill();
    }
    let current = std::fs::read(&state).unwrap();
    let check = |label: &str, bytes: Option<&[u8]>, want: &str| {
        match bytes {
            Some(b) => std::fs::write(&state, b).unwrap(),
            None => std::fs::remove_file(&state).unwrap(),
        }
        let (code, err) = env.run_to_exit(None, &[]);
        assert_eq!(code, 5, "{label}: {err}");
        assert!(err.contains(want), "{label}: expected {want:?} in {err}");
        println!("{label}: {}", err.lines().last().unwrap_or(""));
    };
    check("missing", None, "does not exist");
    check("truncated", Some(&current[..5000]), "truncated");
    let mut both_bad = current.clone();
    both_bad[100] ^= 1;
    both_bad[4096 + 100] ^= 1;
    check("checksum-bad", Some(&both_bad), "checksum does not match");
    check("rolled back (old copy)", Some(&fresh), "rolled back");
    let mut newest_bad = current.clone();
    // The newest slot (B, sequence 2) corrupted: the older slot is older than the log.
    newest_bad[4096 + 100] ^= 1;
    check("newest slot corrupt", Some(&newest_bad), "rolled back");
    // Restored, it starts; a second signer on the same state refuses.
    std::fs::write(&state, &current).unwrap();
    let mut s = env.spawn();
    let _c = s.client();
    let (code, err) = env.run_to_exit(None, &[]);
    assert_eq!(code, 5, "{err}");
    assert!(err.contains("another cvx-signer is running"), "{err}");
    // A tampered audit log is detected too.
    s.kill();
    let mut log = std::fs::read(env.audit_log()).unwrap();
    // A byte of the first record's `prev` hash (header 42 bytes, length 4, index 1).
    let at = cvx_protocol::signer_wire::AUDIT_HEADER_LEN + 4 + 1 + 3;
    log[at] ^= 0x55;
    std::fs::write(env.audit_log(), &log).unwrap();
    let (code, err) = env.run_to_exit(None, &[]);
    assert_eq!(code, 6, "{err}");
    let out = env
        .signer(&["audit", "verify"])
        .arg(env.audit_log())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(6));
}

// ---------------------------------------------------------------- acceptance 8

#[test]
fn hostile_frames_close_that_connection_only_and_memory_does_not_grow() {
    let env = Env::local(
        "hostile",
        "read_timeout_ms = 300\nmax_connections = 64",
        true,
    );
    let mut s = env.spawn();
    let mut good = s.client();
    let pid = s.pid();
    let closed = |mut st: UnixStream| {
        st.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut buf = [0u8; 256];
        loop {
            match st.read(&mut buf) {
                Ok(0) | Err(_) => return true,
                Ok(_) => {}
            }
        }
    };
    let attack = |kind: u32| {
        let mut st = UnixStream::connect(env.socket()).unwrap();
        match kind {
            0 => st.write_all(&(70_000u32).to_le_bytes()).unwrap(), // oversized length
            1 => st.write_all(&0u32.to_le_bytes()).unwrap(),        // empty frame
            2 => {
                let mut f = 40u32.to_le_bytes().to_vec();
                f.extend_from_slice(&[0xEE; 40]); // garbage payload
                st.write_all(&f).unwrap();
            }
            _ => {
                let mut f = 60_000u32.to_le_bytes().to_vec();
                f.extend_from_slice(&[1; 1000]); // never finishes
                st.write_all(&f).unwrap();
            }
        }
        st
    };
    let mut t = now_ms();
    // Each round: 60 hostile connections at once (oversized, empty, garbage, unfinished),
    // the good client served meanwhile, then every hostile connection must be closed.
    let mut round = || {
        let held: Vec<UnixStream> = (0..60).map(|i| attack(i % 4)).collect();
        for i in 0..5u64 {
            t += 1;
            expect_signed(
                &good
                    .call(&sign_req(
                        &env.network,
                        SignRequest::Block(block(env.public_key, t, i)),
                    ))
                    .unwrap(),
            );
        }
        for (i, st) in held.into_iter().enumerate() {
            assert!(closed(st), "hostile connection {i} was not closed");
        }
    };
    round();
    round();
    let before = rss_kib(pid);
    for _ in 0..5 {
        round();
    }
    let after = rss_kib(pid);
    println!("signer RSS before {before} KiB, after 300 more hostile connections {after} KiB");
    assert!(
        after <= before + 512,
        "memory grew from {before} to {after} KiB"
    );
    // Truncated: half a valid frame, then the client goes away.
    let frame = cvx_protocol::signer_wire::encode_frame(&ClientMessage::Status);
    let mut st = UnixStream::connect(env.socket()).unwrap();
    st.write_all(&frame[..frame.len() / 2]).unwrap();
    drop(st);
    assert!(matches!(
        good.call(&ClientMessage::Status).unwrap(),
        SignerMessage::Status(_)
    ));
    let malformed = std::fs::read(env.audit_log()).unwrap();
    assert!(!malformed.is_empty());
    let out = env
        .signer(&["audit", "verify", "--print"])
        .arg(env.audit_log())
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("MALFORMED"));
}

// ---------------------------------------------------------------- acceptance 9

#[test]
fn no_core_with_key_bytes_and_proc_mem_unreadable_by_the_same_uid() {
    if !is_root() {
        return skip(
            "core/proc-mem test",
            "needs root to run the signer as another uid and raise its core limit",
        );
    }
    if Command::new("prlimit").arg("--version").output().is_err() {
        return skip(
            "core/proc-mem test",
            "prlimit (util-linux) is not installed",
        );
    }
    let pattern = std::fs::read_to_string("/proc/sys/kernel/core_pattern").unwrap_or_default();
    if pattern.starts_with('|') {
        return skip(
            "core/proc-mem test",
            "core_pattern pipes cores to a helper; cannot inspect them here",
        );
    }
    let uid = 65534u32;
    let env = Env::local("core", "", true);
    // Run as an unprivileged uid that owns everything; the key is an identity file.
    let chown = |p: &Path| nix::unistd::chown(p, Some(uid.into()), Some(uid.into())).unwrap();
    for f in [
        "peer.key",
        "host.identity",
        "state",
        "audit.log",
        "signer.toml",
    ] {
        chown(&env.dir.join(f));
    }
    chown(&env.dir);
    std::fs::set_permissions(&env.dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    let d = env.dir.display().to_string();
    let text = std::fs::read_to_string(&env.config).unwrap().replace(
        &format!("allowed_uids = [{}]", nix::unistd::geteuid().as_raw()),
        &format!("allowed_uids = [{uid}]"),
    );
    std::fs::write(&env.config, text).unwrap();
    let as_uid = |prog: &Path| {
        let mut c = as_uid(uid, prog);
        c.current_dir(&env.dir);
        c
    };
    // Control: a dumpable process of this uid in this directory, core limit raised, does
    // leave a core on SIGABRT (else this machine cannot show the negative).
    let mut control = as_uid(Path::new("/bin/sh"))
        .args(["-c", "ulimit -c unlimited && exec sleep 30"])
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(200));
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(control.id() as i32),
        nix::sys::signal::Signal::SIGABRT,
    )
    .unwrap();
    let cst = control.wait().unwrap();
    let cores = |dir: &Path| -> Vec<PathBuf> {
        std::fs::read_dir(dir)
            .unwrap()
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| {
                p.file_name().is_some_and(|n| {
                    let n = n.to_string_lossy();
                    n == "core"
                        || n.strip_prefix("core.")
                            .is_some_and(|r| r.chars().all(|c| c.is_ascii_digit()))
                })
            })
            .collect()
    };
    let control_cores = cores(&env.dir);
    if !cst.core_dumped() || control_cores.is_empty() {
        return skip(
            "core/proc-mem test",
            &format!(
                "this machine writes no core even for a dumpable process (pattern {pattern:?}); cannot prove the negative"
            ),
        );
    }
    for c in control_cores {
        std::fs::remove_file(c).unwrap();
    }
    let log = env.dir.join("signer-run.log");
    let child = as_uid(signer_bin())
        .args(["run", "--config"])
        .arg(&env.config)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let mut s = Running {
        child,
        log,
        socket: PathBuf::from(format!("{d}/run/signer.sock")),
    };
    // Wait until serving (the root test process may connect? no: only uid 65534 is allowed).
    let deadline = Instant::now() + Duration::from_secs(20);
    while !s.log_text().contains("serving") {
        assert!(
            Instant::now() < deadline,
            "signer did not start: {}",
            s.log_text()
        );
        assert!(
            s.child.try_wait().unwrap().is_none(),
            "signer exited: {}",
            s.log_text()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let pid = s.pid();
    // /proc/PID/mem as the same uid: refused (the process is not dumpable).
    let reader = as_uid(Path::new("head"))
        .args(["-c", "1"])
        .arg(format!("/proc/{pid}/mem"))
        .output()
        .unwrap();
    assert!(
        !reader.status.success(),
        "reading /proc/{pid}/mem as uid {uid} succeeded"
    );
    assert!(
        String::from_utf8_lossy(&reader.stderr).contains("Permission denied"),
        "{reader:?}"
    );
    println!(
        "/proc/{pid}/mem as uid {uid}: {}",
        String::from_utf8_lossy(&reader.stderr).trim()
    );
    // Core limit raised from outside (as root; without CAP_SYS_RESOURCE, as the same uid,
    // which the signer's hard limit of 0 forbids), then SIGABRT: no core file appears.
    let pid_s = pid.to_string();
    let raised_root = Command::new("prlimit")
        .args(["--pid", &pid_s, "--core=unlimited"])
        .output()
        .unwrap();
    let raised = raised_root.status.success()
        || as_uid(Path::new("/usr/bin/prlimit"))
            .args(["--pid", &pid_s, "--core=unlimited"])
            .output()
            .unwrap()
            .status
            .success();
    println!("core limit raised from outside: {raised}");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGABRT,
    )
    .unwrap();
    let st = s.child.wait().unwrap();
    assert_eq!(st.signal(), Some(6), "{st}");
    assert!(!st.core_dumped(), "the kernel reports a core dump");
    let found = cores(&env.dir);
    assert!(found.is_empty(), "core files written: {found:?}");
}

// ---------------------------------------------------------------- acceptance 10

#[test]
fn wrong_passphrase_loose_permissions_unknown_field_fail_clearly_and_write_nothing() {
    // A passphrase key (work factor 10: fast), config without an identity.
    let mut env = Env::local("badinput", "", false);
    let key = env.dir.join("peer.key");
    std::fs::remove_file(&key).unwrap();
    let mut kg = env
        .signer(&[
            "keygen",
            "--passphrase-fd",
            "0",
            "--work-factor",
            "10",
            "--out",
        ])
        .arg(&key)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    kg.stdin
        .take()
        .unwrap()
        .write_all(b"correct horse\n")
        .unwrap();
    let out = kg.wait_with_output().unwrap();
    assert!(out.status.success());
    env.public_key = PublicKey::from_hex(String::from_utf8_lossy(&out.stdout).trim()).unwrap();
    env.write_config_with_key(&[nix::unistd::geteuid().as_raw()], "", "");
    let out = env
        .signer(&["init", "--config"])
        .arg(&env.config)
        .output()
        .unwrap();
    assert!(out.status.success());
    let snapshot = |env: &Env| {
        (
            std::fs::read(env.state()).unwrap(),
            std::fs::read(env.audit_log()).unwrap(),
            env.socket().exists(),
        )
    };
    let before = snapshot(&env);

    let (code, err) = env.run_to_exit(Some("wrong horse\n"), &["--passphrase-fd", "0"]);
    assert_eq!(code, 4, "{err}");
    assert!(err.contains("wrong passphrase"), "{err}");
    assert_eq!(snapshot(&env), before, "wrong passphrase wrote something");

    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let (code, err) = env.run_to_exit(Some("correct horse\n"), &["--passphrase-fd", "0"]);
    assert_eq!(code, 4, "{err}");
    assert!(err.contains("chmod 600"), "{err}");
    assert_eq!(snapshot(&env), before);
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();

    let good = std::fs::read_to_string(&env.config).unwrap();
    std::fs::write(&env.config, format!("{good}\nmax_conections = 3\n")).unwrap();
    let (code, err) = env.run_to_exit(None, &[]);
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("max_conections"), "{err}");
    std::fs::write(&env.config, good).unwrap();
    assert_eq!(snapshot(&env), before);

    // A passphrase on the command line is refused outright.
    let out = env
        .signer(&["run", "--config"])
        .arg(&env.config)
        .args(["--passphrase", "x"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));

    // The right passphrase starts it (and only then is anything written).
    let mut cmd = env.signer(&["run", "--config"]);
    let log = env.dir.join("pp.log");
    let mut child = cmd
        .arg(&env.config)
        .args(["--passphrase-fd", "0"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"correct horse\n")
        .unwrap();
    let mut s = Running {
        child,
        log,
        socket: env.socket(),
    };
    let mut c = s.client();
    expect_signed(
        &c.call(&sign_req(
            &env.network,
            SignRequest::Block(block(env.public_key, now_ms(), 3)),
        ))
        .unwrap(),
    );
}

// ---------------------------------------------------------------- acceptance 11

#[test]
fn lock_refuses_signing_across_restarts_until_unlock() {
    let env = Env::local("lock", "", true);
    let (pk, net) = (env.public_key, env.network);
    let mut t = now_ms();
    let mut next_block = || {
        t += 1;
        sign_req(&net, SignRequest::Block(block(pk, t, t)))
    };
    let mut s = env.spawn();
    let mut c = s.client();
    expect_signed(&c.call(&next_block()).unwrap());
    // The breach button, from the command line.
    let out = env
        .signer(&["lock", "--config"])
        .arg(&env.config)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        expect_refused(&c.call(&next_block()).unwrap()),
        RefuseCode::Locked
    );
    // unlock while the signer runs: refused (the state is in use).
    let out = env
        .signer(&["unlock", "--config"])
        .arg(&env.config)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(5),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Restart: still locked.
    drop(c);
    s.kill();
    let mut s = env.spawn();
    let mut c = s.client();
    assert_eq!(
        expect_refused(&c.call(&next_block()).unwrap()),
        RefuseCode::Locked
    );
    match c.call(&ClientMessage::Status).unwrap() {
        SignerMessage::Status(st) => assert!(st.locked),
        other => panic!("{other:?}"),
    }
    drop(c);
    s.kill();
    // unlock on the host, with no signer running; then it signs again.
    let out = env
        .signer(&["unlock", "--config"])
        .arg(&env.config)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut s = env.spawn();
    let mut c = s.client();
    expect_signed(&c.call(&next_block()).unwrap());
    drop(c);
    s.kill();
    let out = env
        .signer(&["audit", "verify", "--print"])
        .arg(env.audit_log())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("Lock {") && text.contains("Unlock {") && text.contains("LOCKED"),
        "{text}"
    );
}

// ---------------------------------------------------------------- socket activation

#[test]
fn started_like_the_unit_socket_activation_and_credentials_directory() {
    if Command::new("systemd-socket-activate")
        .arg("--version")
        .output()
        .is_err()
    {
        return skip(
            "socket activation test",
            "systemd-socket-activate is not installed",
        );
    }
    // Started the way install/systemd/cvx-signer.service starts it: the listener is
    // inherited (LISTEN_FDS), and the host identity comes from a credentials directory
    // (LoadCredential=cvx-signer-identity:...), not from a path in the config.
    let env = Env::local("activation", "", true);
    let creds = env.dir.join("credentials");
    std::fs::create_dir(&creds).unwrap();
    std::fs::copy(
        env.dir.join("host.identity"),
        creds.join("cvx-signer-identity"),
    )
    .unwrap();
    std::fs::set_permissions(
        creds.join("cvx-signer-identity"),
        PermissionsExt::from_mode(0o400),
    )
    .unwrap();
    std::fs::remove_file(env.dir.join("host.identity")).unwrap();
    env.write_config_with_key(
        &[nix::unistd::geteuid().as_raw()],
        "",
        "identity_credential = \"cvx-signer-identity\"",
    );
    let text = std::fs::read_to_string(&env.config).unwrap();
    let without: String = text
        .lines()
        .filter(|l| !l.starts_with("socket ="))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(&env.config, without).unwrap();
    let sock = env.dir.join("activated.sock");
    let log = env.dir.join("activated.log");
    let child = Command::new("systemd-socket-activate")
        .arg("-l")
        .arg(&sock)
        .arg("-E")
        .arg(format!("CREDENTIALS_DIRECTORY={}", creds.display()))
        .arg(signer_bin())
        .args(["run", "--config"])
        .arg(&env.config)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let mut s = Running {
        child,
        log,
        socket: sock,
    };
    let mut c = s.client();
    expect_signed(
        &c.call(&sign_req(
            &env.network,
            SignRequest::Block(block(env.public_key, now_ms(), 1)),
        ))
        .unwrap(),
    );
    let log = s.log_text();
    assert!(log.contains("systemd socket activation"), "{log}");
}
