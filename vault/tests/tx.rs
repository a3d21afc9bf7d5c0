//! Acceptance 6 (signed transactions verify under cvx-protocol; wrong network id,
//! sequence 0 and a mismatched expected hash are refused), the ladder, and QR codes
//! read back from the terminal rendering and from the SVG file.
#![allow(clippy::unwrap_used, clippy::print_stdout)]

mod common;

use common::{LOW, TempDir, code, stderr, stdout, vault};
use cvx_protocol::hash::Hash;
use cvx_protocol::ledger::Action;
use cvx_protocol::txfile::TxFile;
use cvx_protocol::{Canonical, NetworkId, PublicKey};

const PASS: &str = "account pass";
const PEER: &str = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a";

fn net() -> String {
    "5e".repeat(32)
}

fn setup(tag: &str) -> (TempDir, PublicKey) {
    let d = TempDir::new(tag);
    let k = common::keygen(&d.0, "account", "acct.age", PASS, LOW);
    (d, PublicKey::from_hex(&k).unwrap())
}

fn tx(d: &TempDir, extra: &[&str]) -> std::process::Output {
    let mut args = vec!["--audit", "audit.log", "tx"];
    args.extend_from_slice(extra);
    args.extend_from_slice(&["--key", "acct.age", "--yes", "--passphrase-fd", "0"]);
    vault(&d.0, &args, &format!("{PASS}\n"))
}

#[test]
fn a_signed_withdrawal_verifies_under_cvx_protocol() {
    let (d, key) = setup("withdraw");
    let o = tx(
        &d,
        &[
            "withdraw",
            "--network",
            &net(),
            "--origin",
            "3",
            "--sequence",
            "8",
            "--peer",
            PEER,
            "--out",
            "w.cvxtx",
        ],
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.contains("WITHDRAW ALL STAKE"), "{out}");
    let bytes = std::fs::read(d.path("w.cvxtx")).unwrap();
    let f = TxFile::decode(&bytes).unwrap();
    assert_eq!(f.network, NetworkId(Hash::from_hex(&net()).unwrap()));
    assert_eq!(f.signed.tx.sequence, 8);
    assert_eq!(f.signed.tx.origin.0, 3);
    assert!(
        matches!(&f.signed.tx.action, Action::SetPeerStake { peer, stake } if peer.to_hex() == PEER && stake.is_zero())
    );
    key.verify(&f.network, &f.signed.tx, &f.signed.signature)
        .unwrap();
    f.verify(&key).unwrap();
    // The signature is bound to its network.
    key.verify(&NetworkId(Hash([1; 32])), &f.signed.tx, &f.signed.signature)
        .unwrap_err();
    // The description matches the file.
    let desc: cvx_vault::txbuild::Description =
        serde_json::from_slice(&std::fs::read(d.path("w.cvxtx.json")).unwrap()).unwrap();
    assert_eq!(desc.tx_id, f.signed.id().to_hex());
    assert_eq!(desc.file_sha256, cvx_vault::fsio::sha256_hex(&bytes));
    assert_eq!(desc.signer, key.to_hex());
    assert!(out.contains(&desc.phrase));
    assert_eq!(desc.phrase.split('-').count(), 5);
}

#[test]
fn every_kind_signs_and_verifies() {
    let (d, key) = setup("kinds");
    let n = net();
    let new_key = "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c";
    let cases: Vec<Vec<&str>> = vec![
        vec!["set-peer-stake", "--peer", PEER, "--stake", "5000"],
        vec!["transfer", "--to", "9", "--amount", "12"],
        vec!["set-key", "--new-key", new_key],
        vec![
            "set-peer-host",
            "--peer",
            PEER,
            "--host",
            "peer1.example.org:18888",
        ],
        vec!["set-peer-host", "--peer", PEER, "--clear-host"],
    ];
    for (i, c) in cases.iter().enumerate() {
        let out = format!("t{i}.cvxtx");
        let mut args = c.clone();
        args.extend_from_slice(&[
            "--network",
            &n,
            "--origin",
            "3",
            "--sequence",
            "2",
            "--out",
            &out,
        ]);
        let o = tx(&d, &args);
        assert_eq!(code(&o), 0, "{c:?}: {}", stderr(&o));
        let f = TxFile::decode(&std::fs::read(d.path(&out)).unwrap()).unwrap();
        f.verify(&key).unwrap();
    }
}

#[test]
fn wrong_network_sequence_zero_and_hash_mismatch_are_refused() {
    let (d, _) = setup("refusals");
    // Sequence 0.
    let o = tx(
        &d,
        &[
            "withdraw",
            "--network",
            &net(),
            "--origin",
            "3",
            "--sequence",
            "0",
            "--peer",
            PEER,
            "--out",
            "a.cvxtx",
        ],
    );
    assert_eq!(code(&o), 10, "{}", stderr(&o));
    assert!(stderr(&o).contains("sequence: 0 is never valid"));
    // A malformed network id.
    let o = tx(
        &d,
        &[
            "withdraw",
            "--network",
            "abcd",
            "--origin",
            "3",
            "--sequence",
            "1",
            "--peer",
            PEER,
            "--out",
            "a.cvxtx",
        ],
    );
    assert_eq!(code(&o), 10, "{}", stderr(&o));
    // A request for another network than the one typed.
    let req = |network: &str, expected: Option<String>| {
        serde_json::json!({
            "format": "cvx-vault-tx-request", "version": 1, "action": "withdraw",
            "fields": {"network": network, "origin": 3, "sequence": 4, "peer": PEER},
            "expected_hash": expected,
        })
    };
    std::fs::write(
        d.path("r1.json"),
        serde_json::to_vec(&req(&"77".repeat(32), None)).unwrap(),
    )
    .unwrap();
    let o = tx(
        &d,
        &[
            "--request",
            "r1.json",
            "--network",
            &net(),
            "--out",
            "a.cvxtx",
        ],
    );
    assert_eq!(code(&o), 10, "{}", stderr(&o));
    assert!(
        stderr(&o).contains("the request is for network"),
        "{}",
        stderr(&o)
    );
    // A mismatched expected hash.
    std::fs::write(
        d.path("r2.json"),
        serde_json::to_vec(&req(&net(), Some("11".repeat(32)))).unwrap(),
    )
    .unwrap();
    let o = tx(
        &d,
        &[
            "--request",
            "r2.json",
            "--network",
            &net(),
            "--out",
            "a.cvxtx",
        ],
    );
    assert_eq!(code(&o), 10, "{}", stderr(&o));
    assert!(
        stderr(&o).contains("differs from the request's expected_hash"),
        "{}",
        stderr(&o)
    );
    assert!(!d.path("a.cvxtx").exists());
    // The right expected hash (the transaction id) is accepted.
    let dry = tx(
        &d,
        &[
            "withdraw",
            "--network",
            &net(),
            "--origin",
            "3",
            "--sequence",
            "4",
            "--peer",
            PEER,
            "--dry-run",
        ],
    );
    assert_eq!(code(&dry), 0, "{}", stderr(&dry));
    let id = stdout(&dry)
        .lines()
        .find(|l| l.contains("tx id"))
        .unwrap()
        .rsplit(' ')
        .next()
        .unwrap()
        .to_owned();
    std::fs::write(
        d.path("r3.json"),
        serde_json::to_vec(&req(&net(), Some(id.clone()))).unwrap(),
    )
    .unwrap();
    let o = tx(
        &d,
        &[
            "--request",
            "r3.json",
            "--network",
            &net(),
            "--out",
            "ok.cvxtx",
        ],
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(
        TxFile::decode(&std::fs::read(d.path("ok.cvxtx")).unwrap())
            .unwrap()
            .signed
            .id()
            .to_hex(),
        id
    );
    // A peer key never signs transactions.
    common::keygen(&d.0, "peer", "peer.age", PASS, LOW);
    let o = vault(
        &d.0,
        &[
            "--audit",
            "audit.log",
            "tx",
            "withdraw",
            "--network",
            &net(),
            "--origin",
            "3",
            "--sequence",
            "1",
            "--peer",
            PEER,
            "--key",
            "peer.age",
            "--out",
            "p.cvxtx",
            "--yes",
            "--passphrase-fd",
            "0",
        ],
        &format!("{PASS}\n"),
    );
    assert_eq!(code(&o), 9, "{}", stderr(&o));
    // Without --yes and without a terminal, nothing is signed.
    let o = vault(
        &d.0,
        &[
            "--audit",
            "audit.log",
            "tx",
            "withdraw",
            "--network",
            &net(),
            "--origin",
            "3",
            "--sequence",
            "1",
            "--peer",
            PEER,
            "--key",
            "acct.age",
            "--out",
            "n.cvxtx",
            "--passphrase-fd",
            "0",
        ],
        &format!("{PASS}\n"),
    );
    assert_eq!(code(&o), 11, "{}", stderr(&o));
    assert!(!d.path("n.cvxtx").exists());
}

#[test]
fn a_ladder_signs_sequences_n_plus_1_to_n_plus_k_with_a_warning() {
    let (d, key) = setup("ladder");
    let o = vault(
        &d.0,
        &[
            "--audit",
            "audit.log",
            "ladder",
            "--network",
            &net(),
            "--origin",
            "3",
            "--peer",
            PEER,
            "--current-sequence",
            "10",
            "--count",
            "4",
            "--key",
            "acct.age",
            "--out-dir",
            "ladder",
            "--yes",
            "--passphrase-fd",
            "0",
        ],
        &format!("{PASS}\n"),
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(stdout(&o).contains("WARNING: these files are VALID, SIGNED stake withdrawals"));
    assert!(d.path("ladder/WARNING.txt").exists());
    for seq in 11..=14u64 {
        let f = TxFile::decode(
            &std::fs::read(d.path(&format!("ladder/withdraw-seq-{seq}.cvxtx"))).unwrap(),
        )
        .unwrap();
        assert_eq!(f.signed.tx.sequence, seq);
        f.verify(&key).unwrap();
    }
    assert!(!d.path("ladder/withdraw-seq-10.cvxtx").exists());
    assert!(!d.path("ladder/withdraw-seq-15.cvxtx").exists());
    // An existing directory is never written into.
    let again = vault(
        &d.0,
        &[
            "--audit",
            "audit.log",
            "ladder",
            "--network",
            &net(),
            "--origin",
            "3",
            "--peer",
            PEER,
            "--current-sequence",
            "10",
            "--count",
            "4",
            "--key",
            "acct.age",
            "--out-dir",
            "ladder",
            "--yes",
            "--passphrase-fd",
            "0",
        ],
        &format!("{PASS}\n"),
    );
    assert_eq!(code(&again), 4);
}

/// Decode every QR code in a module grid with rqrr.
fn read_grid(dark: &dyn Fn(usize, usize) -> bool, w: usize, h: usize) -> Vec<String> {
    const SCALE: usize = 4;
    let mut img = rqrr::PreparedImage::prepare_from_greyscale(w * SCALE, h * SCALE, |x, y| {
        if dark(x / SCALE, y / SCALE) { 0 } else { 255 }
    });
    img.detect_grids()
        .into_iter()
        .map(|g| g.decode().unwrap().1)
        .collect()
}

#[test]
fn qr_codes_read_back_from_the_terminal_and_the_svg() {
    let (d, key) = setup("qr");
    let o = tx(
        &d,
        &[
            "set-peer-host",
            "--peer",
            PEER,
            "--host",
            &format!("{}.example.org:18888", "a".repeat(200)),
            "--network",
            &net(),
            "--origin",
            "3",
            "--sequence",
            "2",
            "--out",
            "h.cvxtx",
        ],
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let file = std::fs::read(d.path("h.cvxtx")).unwrap();
    assert!(
        file.len() > cvx_vault::qr::CHUNK,
        "this case should need two codes"
    );
    let q = vault(
        &d.0,
        &[
            "--audit",
            "audit.log",
            "qr",
            "--in",
            "h.cvxtx",
            "--svg",
            "h.svg",
        ],
        "",
    );
    assert_eq!(code(&q), 0, "{}", stderr(&q));
    // Terminal: parse the half-block rendering back into modules (light modules are ink).
    let text = stdout(&q);
    let mut payloads = Vec::new();
    for block in text.split("QR ").skip(1) {
        let rows: Vec<Vec<char>> = block
            .lines()
            .skip(1)
            .filter(|l| !l.is_empty() && !l.starts_with("svg") && !l.starts_with("  audit"))
            .map(|l| l.chars().collect())
            .collect();
        let w = rows[0].len();
        let h = rows.len() * 2;
        let light = |x: usize, y: usize| {
            let c = rows[y / 2][x];
            matches!((c, y % 2), ('█', _) | ('▀', 0) | ('▄', 1))
        };
        payloads.extend(read_grid(&|x, y| !light(x, y), w, h));
    }
    assert_eq!(payloads.len(), 2, "{text}");
    assert_eq!(cvx_vault::qr::reassemble(&payloads).unwrap(), file);
    // SVG: parse the module rects back.
    let svg = std::fs::read_to_string(d.path("h.svg")).unwrap();
    let vb: Vec<usize> = svg
        .split("viewBox=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .split(' ')
        .map(|n| n.parse().unwrap())
        .collect();
    let (w, h) = (vb[2], vb[3]);
    let mut grid = vec![false; w * h];
    for r in svg.split("<rect x=\"").skip(2) {
        let x: usize = r.split('"').next().unwrap().parse().unwrap();
        let y: usize = r
            .split("y=\"")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        grid[y * w + x] = true;
    }
    let svg_payloads = read_grid(&|x, y| grid[y * w + x], w, h);
    assert_eq!(svg_payloads.len(), 2);
    let back = cvx_vault::qr::reassemble(&svg_payloads).unwrap();
    assert_eq!(back, file);
    TxFile::decode(&back).unwrap().verify(&key).unwrap();
    // Anything that is not a signed transaction file is refused.
    std::fs::write(d.path("junk.bin"), b"not a tx").unwrap();
    let j = vault(
        &d.0,
        &["--audit", "audit.log", "qr", "--in", "junk.bin"],
        "",
    );
    assert_eq!(code(&j), 10);
}

#[test]
fn confirmation_on_the_terminal_takes_yes_and_only_yes() {
    if !common::have("python3") {
        println!("SKIPPED: python3 is not installed");
        return;
    }
    let (d, key) = setup("confirm");
    let args = |out: &str| {
        serde_json::json!([
            common::BIN,
            "--audit",
            d.path("audit.log").to_str().unwrap(),
            "tx",
            "withdraw",
            "--network",
            net(),
            "--origin",
            "3",
            "--sequence",
            "9",
            "--peer",
            PEER,
            "--key",
            d.path("acct.age").to_str().unwrap(),
            "--out",
            d.path(out).to_str().unwrap()
        ])
    };
    // "no" (anything but yes) declines: exit 11, nothing written, no passphrase asked.
    let no = serde_json::json!({
        "argv": args("no.cvxtx"),
        "transcript": d.path("t-no.txt").to_str().unwrap(),
        "timeout": 30,
        "steps": [{"expect": "WITHDRAW ALL STAKE.*?phrase.*?Type yes to go ahead: ", "send": "y\n"}],
    });
    assert_eq!(common::pty(&no, &d.0), 11);
    assert!(!d.path("no.cvxtx").exists());
    // "yes", then the passphrase on the terminal (echo off).
    let yes = serde_json::json!({
        "argv": args("yes.cvxtx"),
        "transcript": d.path("t-yes.txt").to_str().unwrap(),
        "timeout": 30,
        "steps": [
            {"expect": "Type yes to go ahead: ", "send": "yes\n"},
            {"expect": "Passphrase for [^:]*: ", "send": format!("{PASS}\n")},
        ],
    });
    let rc = common::pty(&yes, &d.0);
    let transcript = std::fs::read_to_string(d.path("t-yes.txt")).unwrap();
    assert_eq!(rc, 0, "{transcript}");
    assert!(!transcript.contains(PASS), "the passphrase was echoed");
    TxFile::decode(&std::fs::read(d.path("yes.cvxtx")).unwrap())
        .unwrap()
        .verify(&key)
        .unwrap();
}
