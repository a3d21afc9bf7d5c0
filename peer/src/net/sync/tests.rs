//! State sync against a source store served by closures and a fake serving peer.
#![allow(clippy::unwrap_used, clippy::expect_used)]
use super::link::STATE_LOAD_BACKOFF;
use super::*;
use crate::net::{read_frame, write_msg};
use crate::persist::write_state;
use cvx_protocol::ledger::{Genesis, GenesisAccount, GenesisPeer};
use cvx_protocol::peer_wire::Message;
use cvx_protocol::{Address, Amount, BoundedVec, ErrorCode};
use tokio::net::TcpStream;

fn pk(i: u8) -> PublicKey {
    (0u8..=255)
        .find_map(|n| PublicKey::from_bytes(&cvx_protocol::hash::hash_parts(&[&[i, n]]).0).ok())
        .unwrap()
}

/// A served state (a source store) of 300 accounts and 3 peers, and its sync point.
fn source(dir: &std::path::Path) -> (Store, cvx_etch::Hash, SyncPoint) {
    let g = Genesis {
        network_name: cvx_protocol::primitives::Name::new("sync-test").unwrap(),
        time: cvx_protocol::Timestamp(5),
        accounts: BoundedVec::try_from_vec(
            (0..300u32)
                .map(|i| GenesisAccount {
                    key: pk(u8::try_from(i % 200).unwrap()),
                    balance: Amount::new(u64::from(i) + 1).unwrap(),
                })
                .collect(),
        )
        .unwrap(),
        peers: BoundedVec::try_from_vec(
            (0..3u8)
                .map(|i| GenesisPeer {
                    key: pk(200 + i),
                    controller: Address(u64::from(i)),
                    stake: Amount::new(5_000).unwrap(),
                    host: None,
                })
                .collect(),
        )
        .unwrap(),
        params: crate::test_params::params(),
    };
    let state = State::from_genesis(&g);
    let (store, _) = Store::open(dir.join("source.etch")).unwrap();
    let root = write_state(&store, None, &state).unwrap();
    let point = SyncPoint {
        position: 0,
        chain: Hash([1; 32]),
        state_hash: state.state_hash(),
        root: Some(Hash(root.0)),
    };
    (store, root, point)
}

fn serve(src: &Store, ids: &[cvx_etch::Hash]) -> Vec<Vec<u8>> {
    ids.iter().filter_map(|h| src.get(h).unwrap()).collect()
}

fn tmp(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("cvx-sync-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn run<T>(f: impl Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(f)
}

#[test]
fn a_load_answer_to_a_state_request_is_waited_out_and_repeated() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        // A serving peer over its budget twice, then answering.
        let server = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut asked = 0;
            while let Ok(m) = read_frame(&mut s, SYNC_TIMEOUT, SYNC_TIMEOUT).await {
                if let Message::GetState(_) = m {
                    asked += 1;
                    let reply = if asked < 3 {
                        Message::Error {
                            code: ErrorCode::Load,
                            detail: cvx_protocol::BoundedString::new("slow down").unwrap(),
                        }
                    } else {
                        let node = BoundedVec::try_from_vec(vec![1, 2, 3]).unwrap();
                        Message::State(BoundedVec::try_from_vec(vec![node]).unwrap())
                    };
                    write_msg(&mut s, &reply).await.unwrap();
                }
            }
            asked
        });
        let mut link = Link {
            stream: TcpStream::connect(addr).await.unwrap(),
            host: "test".into(),
            key: None,
        };
        let t0 = tokio::time::Instant::now();
        let nodes = link.get_state(&[cvx_etch::Hash([1; 32])]).await.unwrap();
        assert_eq!(nodes, vec![vec![1, 2, 3]]);
        assert!(
            t0.elapsed() >= 2 * STATE_LOAD_BACKOFF,
            "it waited each LOAD out"
        );
        drop(link);
        assert_eq!(server.await.unwrap(), 3, "asked again after each LOAD");
    });
}

#[test]
fn an_honest_source_yields_the_state_node_by_node() {
    let d = tmp("honest");
    let (src, root, point) = source(&d);
    let (dst, _) = Store::open(d.join("dst.etch")).unwrap();
    let mut rounds = 0;
    let (state, nodes) = run(fetch_state(&dst, &point, root, "src", async |ids| {
        rounds += 1;
        Ok(serve(&src, ids))
    }))
    .unwrap();
    assert_eq!(state.accounts_len(), 300);
    assert_eq!(state.peers().count(), 3);
    assert_eq!(state.state_hash(), point.state_hash);
    assert!(
        nodes > 300 && rounds >= 3,
        "{nodes} nodes in {rounds} rounds"
    );
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn a_lying_or_unhelpful_source_is_refused() {
    let d = tmp("liar");
    let (src, root, point) = source(&d);
    // Unrequested bytes (e.g. a tampered node: its hash is no longer the one asked for).
    let (dst, _) = Store::open(d.join("a.etch")).unwrap();
    let e = run(fetch_state(&dst, &point, root, "src", async |ids| {
        let mut v = serve(&src, ids);
        if let Some(n) = v.first_mut() {
            let last = n.len() - 1;
            n[last] ^= 1;
        }
        Ok(v)
    }))
    .unwrap_err();
    assert!(matches!(e, SyncError::Fetch { .. }), "{e}");
    // Nothing served.
    let (dst, _) = Store::open(d.join("b.etch")).unwrap();
    let e = run(fetch_state(&dst, &point, root, "src", async |_| {
        Ok(Vec::new())
    }))
    .unwrap_err();
    assert!(e.to_string().contains("does not serve"), "{e}");
    // A genuine tree that is not the state the sync point names.
    let (dst, _) = Store::open(d.join("c.etch")).unwrap();
    let mut wrong = point.clone();
    wrong.state_hash = Hash([7; 32]);
    let e = run(fetch_state(&dst, &wrong, root, "src", async |ids| {
        Ok(serve(&src, ids))
    }))
    .unwrap_err();
    assert!(matches!(e, SyncError::Mismatch { .. }), "{e}");
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn more_than_a_third_of_stake_must_confirm() {
    assert!(!confirmed(0, 0, 0), "no stake, no confirmation");
    assert!(!confirmed(1, 0, 3), "exactly 1/3 is not enough");
    assert!(confirmed(2, 0, 5), "2/5 > 1/3");
    assert!(confirmed(4, 1, 5), "a minority that disagrees is outvoted");
    assert!(
        !confirmed(2, 2, 5),
        "more than 1/3 disagreeing refuses the join"
    );
}

#[test]
fn a_refused_or_missing_certificate_moves_on_to_the_next_source() {
    let hosts: Vec<String> = ["down", "none", "forged", "good", "unused"]
        .iter()
        .map(|h| (*h).to_owned())
        .collect();
    let mut asked = Vec::new();
    let mut offered = Vec::new();
    let got = run(first_accepted(
        &hosts,
        async |h: &str| {
            asked.push(h.to_owned());
            match h {
                "down" => Err("connect: refused".to_owned()),
                "none" => Ok(None),
                _ => Ok(Some(h.to_owned())),
            }
        },
        async |h: &str, c: String| {
            offered.push(c);
            if h == "forged" {
                Err("refused CERT_BAD_SIGNATURE: vote by ...".to_owned())
            } else {
                Ok(Some(h.len()))
            }
        },
    ));
    assert_eq!(got, Ok(4), "the first certificate the signer accepted");
    assert_eq!(
        asked,
        ["down", "none", "forged", "good"],
        "not one source more"
    );
    assert_eq!(offered, ["forged", "good"]);
    // None accepted: every source's reason, in order.
    let e = run(first_accepted(
        &hosts[..3],
        async |h: &str| match h {
            "down" => Err("connect: refused".to_owned()),
            "none" => Ok(None),
            _ => Ok(Some(())),
        },
        async |_: &str, (): ()| -> Result<Option<()>, String> {
            Err("refused CERT_WEAK_QUORUM".to_owned())
        },
    ))
    .unwrap_err();
    assert_eq!(
        e,
        "down: connect: refused; none: no certificate (no quorum in its view); forged: refused CERT_WEAK_QUORUM"
    );
    // The same reason from every source is said once.
    let e = run(first_accepted(
        &hosts[2..4],
        async |_: &str| Ok(Some(())),
        async |_: &str, (): ()| -> Result<Option<()>, String> {
            Err("refused CERT_TABLE_UNPROVEN: set genesis_file".to_owned())
        },
    ))
    .unwrap_err();
    assert_eq!(
        e,
        "every source (forged, good): refused CERT_TABLE_UNPROVEN: set genesis_file"
    );
    let e = run(first_accepted(
        &[],
        async |_: &str| -> Result<Option<()>, String> { Ok(None) },
        async |_: &str, (): ()| -> Result<Option<()>, String> { Ok(Some(())) },
    ))
    .unwrap_err();
    assert_eq!(e, "no source to ask");
}
