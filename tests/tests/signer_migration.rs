//! Issue 19, part 1: moving a signer to a new host, end to end on the real binary, as
//! the runbook in docs/operations.md ("Moving a signer to a new host") does it. Signer
//! A signs a sequence of blocks and orders, is stopped and exports; B (a fresh state
//! holding the same key) imports; B then refuses every value that conflicts with one A
//! signed (and everything A's watermark covers), and signs what comes next. Also: the
//! export and import refuse while a signer runs, the import refuses another network or
//! key and a malformed file, is idempotent, and is recorded in the audit log; the
//! high watermark covers a host whose state is lost.

#![allow(
    clippy::unwrap_used,
    clippy::print_stdout,
    clippy::cast_possible_truncation
)]

mod signer_common;

use std::path::Path;

use cvx_protocol::consensus::{BlockHeader, Checkpoint, Order};
use cvx_protocol::hash::chain_over;
use cvx_protocol::policy::{RefuseCode, Request, SignRequest, blocks_conflict, orders_conflict};
use cvx_protocol::signer_wire::{ClientMessage, SignerMessage};
use cvx_protocol::{BoundedVec, Canonical, Hash, NetworkId, PublicKey, Signature, Timestamp, hash};
use cvx_signer::client::Client;
use signer_common::{Env, now_ms};

fn euid() -> u32 {
    nix::unistd::geteuid().as_raw()
}

fn block(pk: PublicKey, t: u64, tag: u64) -> BlockHeader {
    BlockHeader {
        proposer: pk,
        timestamp: Timestamp(t),
        tx_count: 0,
        tx_hash: hash(&tag.to_le_bytes()),
    }
}

/// An order over `chain` (checkpoint 0), with the given points.
fn order(
    pk: PublicKey,
    net: &NetworkId,
    t: u64,
    chain: &[Hash],
    consensus: u64,
    finality: u64,
) -> Order {
    Order {
        peer: pk,
        timestamp: Timestamp(t),
        checkpoint: Checkpoint {
            position: 0,
            chain: chain_over(&net.0, &[]),
        },
        blocks: BoundedVec::try_from_vec(chain.to_vec()).unwrap(),
        proposal: chain.len() as u64,
        consensus,
        finality,
        stake_root: Hash::ZERO,
    }
}

fn sign(c: &mut Client, net: &NetworkId, body: SignRequest) -> SignerMessage {
    c.call(&ClientMessage::Sign(Request {
        network: *net,
        body,
    }))
    .unwrap()
}

fn block_req(b: &BlockHeader) -> SignRequest {
    SignRequest::Block(b.clone())
}

fn order_req(o: &Order) -> SignRequest {
    SignRequest::Order {
        order: o.clone(),
        bridge: BoundedVec::new(),
    }
}

fn signed(m: &SignerMessage) -> Signature {
    match m {
        SignerMessage::Signed { signature, .. } => *signature,
        other => panic!("expected a signature, got {other:?}"),
    }
}

fn refused(m: &SignerMessage) -> RefuseCode {
    match m {
        SignerMessage::Refused { code, .. } => *code,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

/// B holds A's key: copy the key file and identity.
fn give_key(from: &Env, to: &mut Env) {
    for f in ["peer.key", "host.identity"] {
        std::fs::copy(from.dir.join(f), to.dir.join(f)).unwrap();
    }
    to.public_key = from.public_key;
}

fn run(env: &Env, args: &[&str]) -> (i32, String, String) {
    let out = env.run(args, &[]);
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn cfg(env: &Env) -> &str {
    env.config.to_str().unwrap()
}

#[test]
fn a_signer_moves_to_a_new_host_and_the_new_one_refuses_everything_the_old_could_conflict_with() {
    let net = NetworkId(hash(b"migration test network"));
    let uid = [euid()];
    let a = Env::new("mig-a", net, &uid, "", true);
    let pk = a.public_key;

    // --- A signs a sequence of blocks and orders.
    let t0 = now_ms() - 20_000;
    let main: Vec<Hash> = (0..8u64)
        .map(|i| hash(&[b"main".as_slice(), &i.to_le_bytes()].concat()))
        .collect();
    let a_blocks: Vec<BlockHeader> = (0..3).map(|i| block(pk, t0 + i * 1000, i)).collect();
    let a_orders = vec![
        order(pk, &net, t0 + 500, &main[..3], 2, 1),
        order(pk, &net, t0 + 1500, &main[..5], 4, 3),
        order(pk, &net, t0 + 2500, &main[..6], 5, 4),
    ];
    let mut a_run = a.spawn();
    let mut c = a_run.client();
    let mut a_sigs = Vec::new();
    for (b, o) in a_blocks.iter().zip(&a_orders) {
        signed(&sign(&mut c, &net, block_req(b)));
        a_sigs.push(signed(&sign(&mut c, &net, order_req(o))));
    }
    drop(c);

    // Export refuses while A runs (the state file's lock), and says why.
    let out_file = a.dir.join("a.watermark.json");
    let (code, _, err) = run(
        &a,
        &[
            "export-watermark",
            "--config",
            cfg(&a),
            "--out",
            out_file.to_str().unwrap(),
        ],
    );
    assert_eq!(code, 5, "{err}");
    assert!(err.contains("another cvx-signer is running"), "{err}");
    assert!(!out_file.exists());

    // --- Stop A; export (A is locked by it).
    a_run.stop();
    let (code, _, err) = run(
        &a,
        &[
            "export-watermark",
            "--config",
            cfg(&a),
            "--out",
            out_file.to_str().unwrap(),
        ],
    );
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("now locked"), "{err}");
    let text = std::fs::read_to_string(&out_file).unwrap();
    println!("export file:\n{text}");
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(json["format"], "cvx-signer-watermark");
    assert_eq!(json["version"], 1);
    assert_eq!(json["network"], net.to_string());
    assert_eq!(json["public_key"], pk.to_hex());
    assert_eq!(json["watermark"]["block"]["timestamp_ms"], t0 + 2000);
    assert_eq!(
        json["watermark"]["block"]["id"],
        a_blocks[2].hash().to_hex()
    );
    assert_eq!(json["watermark"]["order"]["timestamp_ms"], t0 + 2500);
    assert_eq!(
        json["watermark"]["order"]["id"],
        a_orders[2].hash().to_hex()
    );
    assert_eq!(json["watermark"]["consensus"]["position"], 5);
    assert_eq!(
        json["watermark"]["consensus"]["chain"],
        chain_over(&net.0, &main[..5]).to_hex()
    );
    assert_eq!(json["watermark"]["finality"], 4);
    assert!(
        json["audit_head"]["records"].as_u64().unwrap() >= 8,
        "{text}"
    );
    // The export never overwrites a file.
    let (code, _, err) = run(
        &a,
        &[
            "export-watermark",
            "--config",
            cfg(&a),
            "--out",
            out_file.to_str().unwrap(),
        ],
    );
    assert_eq!(code, 11, "{err}");
    // A, if revived, refuses to sign.
    let mut a_again = a.spawn();
    let mut c = a_again.client();
    assert_eq!(
        refused(&sign(&mut c, &net, block_req(&block(pk, now_ms(), 77)))),
        RefuseCode::Locked
    );
    drop(c);
    a_again.stop();

    // --- B: a fresh state on a new host, holding the same key.
    let mut b = Env::new("mig-b", net, &uid, "", true);
    give_key(&a, &mut b);
    let file = out_file.to_str().unwrap();
    let (code, stdout, err) = run(
        &b,
        &["import-watermark", "--config", cfg(&b), "--file", file],
    );
    assert_eq!(code, 0, "{err}");
    assert!(stdout.contains("nothing lowered"), "{stdout}");
    // Idempotent: a second import changes nothing.
    let (code, stdout2, err) = run(
        &b,
        &["import-watermark", "--config", cfg(&b), "--file", file],
    );
    assert_eq!(code, 0, "{err}");
    let after = |s: &str| s.split("after:").nth(1).unwrap().to_owned();
    assert_eq!(after(&stdout), after(&stdout2));
    let audit = b.run(
        &["audit", "verify", "--print"],
        &[b.dir.join("audit.log").as_path()],
    );
    let audit = String::from_utf8_lossy(&audit.stdout);
    assert_eq!(audit.matches("Import {").count(), 2, "{audit}");

    // --- B serves: it refuses everything A could conflict with, and signs what comes next.
    let mut b_run = b.spawn();
    // Import refuses while B runs.
    let (code, _, err) = run(
        &b,
        &["import-watermark", "--config", cfg(&b), "--file", file],
    );
    assert_eq!(code, 5, "{err}");
    let mut c = b_run.client();
    for (i, ab) in a_blocks.iter().enumerate() {
        let other = block(pk, ab.timestamp.0, 100 + i as u64);
        assert!(blocks_conflict(ab, &other));
        assert_eq!(
            refused(&sign(&mut c, &net, block_req(&other))),
            RefuseCode::BlockNotNewer,
            "block {i}"
        );
    }
    // A fork of the main chain at every position below A's committed point.
    for (i, ao) in a_orders.iter().enumerate() {
        for fork_at in 0..ao.consensus {
            let mut forked = main[..6].to_vec();
            forked[fork_at as usize] = hash(b"fork");
            // At A's time, with A's points: not newer.
            let same_time = order(
                pk,
                &net,
                ao.timestamp.0,
                &forked[..ao.blocks.len()],
                ao.consensus,
                ao.finality,
            );
            assert!(orders_conflict(ao, &same_time), "order {i} fork {fork_at}");
            assert_eq!(
                refused(&sign(&mut c, &net, order_req(&same_time))),
                RefuseCode::OrderNotNewer,
                "order {i} fork at {fork_at}"
            );
            // Later, with points as high as A's last: the prefix A committed to decides.
            let later = order(pk, &net, t0 + 10_000, &forked, 5, 4);
            assert!(orders_conflict(ao, &later), "order {i} fork {fork_at}");
            assert_eq!(
                refused(&sign(&mut c, &net, order_req(&later))),
                RefuseCode::PrefixConflict,
                "order {i} fork at {fork_at}"
            );
        }
    }
    // Points below A's: refused even on the right chain.
    let t_next = t0 + 10_000;
    assert_eq!(
        refused(&sign(
            &mut c,
            &net,
            order_req(&order(pk, &net, t_next, &main[..6], 4, 4))
        )),
        RefuseCode::ConsensusRegressed
    );
    assert_eq!(
        refused(&sign(
            &mut c,
            &net,
            order_req(&order(pk, &net, t_next, &main[..6], 5, 3))
        )),
        RefuseCode::FinalityRegressed
    );
    // A repeat of A's last order is the same value: the identical signature.
    assert_eq!(
        signed(&sign(&mut c, &net, order_req(&a_orders[2]))),
        a_sigs[2]
    );
    // What comes next is signed, and verifies under the key.
    let nb = block(pk, t0 + 3000, 3);
    let sig = signed(&sign(&mut c, &net, block_req(&nb)));
    pk.verify(&net, &nb, &sig).unwrap();
    let no = order(pk, &net, t_next, &main[..8], 7, 5);
    let sig = signed(&sign(&mut c, &net, order_req(&no)));
    pk.verify(&net, &no, &sig).unwrap();
    drop(c);
    b_run.stop();

    // Importing the old file again never lowers what B signed since.
    let (code, stdout, err) = run(
        &b,
        &["import-watermark", "--config", cfg(&b), "--file", file],
    );
    assert_eq!(code, 0, "{err}");
    assert!(
        after(&stdout).contains(&format!(
            "consensus point: 7 chain={}",
            chain_over(&net.0, &main[..7])
        )),
        "{stdout}"
    );
    assert!(
        after(&stdout).contains(&format!("t={} id={}", t0 + 3000, nb.hash())),
        "{stdout}"
    );
}

#[test]
fn import_refuses_another_network_another_key_and_a_malformed_file() {
    let net = NetworkId(hash(b"migration refusals"));
    let uid = [euid()];
    let a = Env::new("mig-ra", net, &uid, "", true);
    let mut a_run = a.spawn();
    let mut c = a_run.client();
    signed(&sign(
        &mut c,
        &net,
        block_req(&block(a.public_key, now_ms(), 1)),
    ));
    drop(c);
    a_run.stop();
    let file = a.dir.join("w.json");
    let (code, _, err) = run(
        &a,
        &[
            "export-watermark",
            "--config",
            cfg(&a),
            "--keep-unlocked",
            "--out",
            file.to_str().unwrap(),
        ],
    );
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("left unlocked"), "{err}");
    let f = file.to_str().unwrap();

    // Another key (a fresh signer that never started: its key file is read).
    let other_key = Env::new("mig-rk", net, &uid, "", true);
    let (code, _, err) = run(
        &other_key,
        &["import-watermark", "--config", cfg(&other_key), "--file", f],
    );
    assert_eq!(code, 11, "{err}");
    assert!(
        err.contains("for key") && err.contains(&a.public_key.to_hex()),
        "{err}"
    );
    // Another network.
    let mut other_net = Env::new("mig-rn", NetworkId(hash(b"elsewhere")), &uid, "", true);
    give_key(&a, &mut other_net);
    let (code, _, err) = run(
        &other_net,
        &["import-watermark", "--config", cfg(&other_net), "--file", f],
    );
    assert_eq!(code, 11, "{err}");
    assert!(err.contains("for network"), "{err}");
    // Malformed: an unknown field, another version.
    let mut b = Env::new("mig-rb", net, &uid, "", true);
    give_key(&a, &mut b);
    let text = std::fs::read_to_string(&file).unwrap();
    for (name, bad) in [
        (
            "extra",
            text.replacen("\"version\"", "\"colour\": 1,\n  \"version\"", 1),
        ),
        (
            "version",
            text.replacen("\"version\": 1", "\"version\": 2", 1),
        ),
    ] {
        let p = b.dir.join(format!("{name}.json"));
        std::fs::write(&p, bad).unwrap();
        let (code, _, err) = run(
            &b,
            &[
                "import-watermark",
                "--config",
                cfg(&b),
                "--file",
                p.to_str().unwrap(),
            ],
        );
        assert_eq!(code, 11, "{name}: {err}");
        assert!(
            err.contains(if name == "extra" {
                "colour"
            } else {
                "version 2"
            }),
            "{err}"
        );
    }
    // Neither --file nor --high-watermark: a usage error.
    let (code, _, _) = run(&b, &["import-watermark", "--config", cfg(&b)]);
    assert_eq!(code, 2);
    // Nothing was imported: B's log has no Import record.
    let audit = b.run(
        &["audit", "verify", "--print"],
        &[Path::new(&b.dir.join("audit.log"))],
    );
    assert!(!String::from_utf8_lossy(&audit.stdout).contains("Import"));
}

#[test]
fn a_high_watermark_covers_a_host_whose_state_is_lost() {
    let net = NetworkId(hash(b"migration high watermark"));
    let b = Env::new("mig-hw", net, &[euid()], "", true);
    let pk = b.public_key;
    // The margin may not be below the policy's future skew (30 s).
    let (code, _, err) = run(
        &b,
        &[
            "import-watermark",
            "--config",
            cfg(&b),
            "--high-watermark",
            "--margin-ms",
            "1000",
        ],
    );
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("max_future_skew_ms"), "{err}");
    let before = now_ms();
    let (code, stdout, err) = run(
        &b,
        &[
            "import-watermark",
            "--config",
            cfg(&b),
            "--high-watermark",
            "--margin-ms",
            "30000",
        ],
    );
    assert_eq!(code, 0, "{err}");
    let until: u64 = stdout
        .split("up to t=")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .unwrap()
        .parse()
        .unwrap();
    assert!(until >= before + 30_000, "{stdout}");
    let mut run_b = b.spawn();
    let mut c = run_b.client();
    let chain: Vec<Hash> = (0..3u64).map(|i| hash(&i.to_le_bytes())).collect();
    // Anything the lost host could have signed (up to now + margin) is refused.
    for t in [before - 60_000, now_ms(), until] {
        assert_eq!(
            refused(&sign(&mut c, &net, block_req(&block(pk, t, t)))),
            RefuseCode::BlockNotNewer
        );
        assert_eq!(
            refused(&sign(
                &mut c,
                &net,
                order_req(&order(pk, &net, t, &chain, 2, 1))
            )),
            RefuseCode::OrderNotNewer
        );
    }
    // Past the mark, it signs.
    let nb = block(pk, until + 1, 1);
    let sig = signed(&sign(&mut c, &net, block_req(&nb)));
    pk.verify(&net, &nb, &sig).unwrap();
    drop(c);
    run_b.stop();
    let audit = b.run(
        &["audit", "verify", "--print"],
        &[b.dir.join("audit.log").as_path()],
    );
    let audit = String::from_utf8_lossy(&audit.stdout);
    assert!(
        audit.contains("Import { uid") && audit.contains("from: None, high_watermark: true"),
        "{audit}"
    );
}
