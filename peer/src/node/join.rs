//! Joining the network by state sync, and resyncing: one path ([`sync_to_network`]) for a
//! peer with an empty store (start-up, `state_sync = true`), a peer whose store or signer
//! is far behind the network at start-up, and a running peer whose consensus machine asks
//! for it (`Action::Resync`). The network side is [`crate::net::sync`].
//!
//! Steps: (1) if the signer has committed to a prefix, fetch a finality certificate from a
//! source and, when its anchor is above that prefix, have the signer accept it
//! (`Certify`, docs/consensus.md §7.6): its lock moves to the anchor however far ahead;
//! a refusal tries the next source. (2) Wait for a sync point at or past the signer's
//! committed point, fetch and confirm the state there (another source on a bad state),
//! and bridge the signer from its committed point to it (at most `MAX_BRIDGE` ids).
//! (3) Have the signer commit to the synced position, persist it, and hand the snapshot
//! to the machine.

use std::sync::Arc;
use std::time::{Duration, Instant};

use cvx_protocol::consensus::{Checkpoint, Order, SignedOrder};
use cvx_protocol::policy::{MAX_BRIDGE, Request, SignRequest};
use cvx_protocol::{BoundedVec, NetworkId, PublicKey, Timestamp};

use crate::clock::now;
use crate::config::Settings;
use crate::error::NodeError;
use crate::net;
use crate::net::sync::SyncError;
use crate::signer_session::{SignError, SignerSession};
use cvx_consensus as consensus;
use cvx_consensus::ledger::State;

/// Rounds (1 s each) a join at start-up waits for a state at or past its signer's
/// committed point.
pub const JOIN_WAIT_ROUNDS: u32 = 30;
/// How long a resync at run time waits for such a state: the loop is not serving
/// meanwhile, and the machine asks again (`RESYNC_RETRY_MS`) if it still needs to.
pub const RESYNC_WAIT: Duration = Duration::from_secs(5);
/// [`JOIN_WAIT_ROUNDS`] as a duration.
pub const JOIN_WAIT: Duration = Duration::from_secs(JOIN_WAIT_ROUNDS as u64);
/// How often the wait asks for a newer sync point.
const POLL: Duration = Duration::from_millis(250);
/// At start-up with a store, a network whose newest state is more than this many
/// positions beyond the signer's committed point is joined by resync rather than by
/// catching up from orders (the signer's bridge holds `MAX_BRIDGE` ids; half of it leaves
/// room for the network moving on while the peer catches up).
pub const FAR_BEHIND: u64 = (MAX_BRIDGE / 2) as u64;

/// Where to sync from: the `bootstrap` hosts, then the hosts the ledger registers for its
/// staked peers (not this peer's own).
pub(super) fn sources(settings: &Settings, ledger: &State, min_stake: u64) -> Vec<String> {
    let mut hosts: Vec<String> = settings.bootstrap.clone();
    for p in ledger.peers() {
        if p.key != settings.key
            && p.stake.get() >= min_stake
            && let Some(h) = &p.host
            && !hosts.iter().any(|x| x == h.as_str())
        {
            hosts.push(h.as_str().to_owned());
        }
    }
    hosts
}

/// At start-up with a store: the newest sync point the sources offer, if it is more than
/// [`FAR_BEHIND`] positions beyond the signer's committed point (or this store's height,
/// for a signer with no lock). `None`: catching up from orders will do, or nobody answered.
pub(super) async fn far_behind(
    sources: &[String],
    network: NetworkId,
    me: PublicKey,
    height: u64,
    signer: &SignerSession,
) -> Result<Option<u64>, NodeError> {
    let committed = signer
        .status()
        .await?
        .watermark
        .consensus
        .map_or(height, |q| q.position);
    let newest = net::sync::newest_sync_point(sources, network, me, signer).await;
    Ok(newest.filter(|&p| p > committed.saturating_add(FAR_BEHIND)))
}

/// Start-up with a store: if the network is [`far_behind`], resync (as at run time) and
/// return the synced snapshot and its height; else the store's snapshot and 0. A signer
/// that cannot be asked (locked, gone) is not a start-up failure: the peer starts from its
/// store and its machine asks for the resync again once running.
///
/// # Errors
/// [`NodeError::Join`] when the resync fails otherwise (exit 13, naming the cause).
pub(super) async fn resync_at_start(
    settings: &Settings,
    cfg: &consensus::Config,
    persist: &mut crate::persist::Persist,
    signer: &SignerSession,
    snap: consensus::Snapshot,
) -> Result<(consensus::Snapshot, u64), NodeError> {
    let height = snap.ledger.height();
    let network = cfg.genesis.network_id();
    let sources = sources(settings, &snap.ledger, cfg.genesis.params.min_stake.get());
    let far = match far_behind(&sources, network, settings.key, height, signer).await {
        Ok(Some(newest)) => newest,
        Ok(None) => return Ok((snap, 0)),
        Err(e) => {
            tracing::warn!(error = %e, "cannot ask the signer whether to resync; starting from the store");
            return Ok((snap, 0));
        }
    };
    let t0 = Instant::now();
    match sync_to_network(settings, &sources, cfg, persist, (signer, JOIN_WAIT)).await {
        Ok(synced) => {
            let to = synced.ledger.height();
            tracing::info!(
                from = height,
                to,
                network_finality = far,
                elapsed_ms = u64::try_from(t0.elapsed().as_millis()).unwrap_or(u64::MAX),
                "resynced from position {height} to {to} in {} ms",
                t0.elapsed().as_millis()
            );
            Ok((synced, to))
        }
        Err(NodeError::Signer(e)) => {
            tracing::warn!(error = %e, "resync at start-up: the signer cannot be asked; starting from the store");
            Ok((snap, 0))
        }
        Err(e) => Err(e),
    }
}

/// The one path by which a peer (re)joins the network from a state it fetches: see the
/// module. Returns the persisted snapshot the machine restores from.
/// `wait`: how long to wait for a state at or past the signer's committed point.
pub(super) async fn sync_to_network(
    settings: &Settings,
    sources: &[String],
    cfg: &consensus::Config,
    persist: &mut crate::persist::Persist,
    (signer, wait): (&SignerSession, Duration),
) -> Result<consensus::Snapshot, NodeError> {
    let network = cfg.genesis.network_id();
    let fail = NodeError::Join;
    let me = settings.key;
    if sources.is_empty() {
        return Err(fail(SyncError::NoBootstrap.to_string()));
    }
    // 1. A certificate moves a signer that committed to an old prefix forward.
    let mut committed = signer.status().await?.watermark.consensus;
    let mut no_certificate = String::new();
    if let Some(q) = committed {
        match certify(sources, network, me, signer, q).await {
            Ok(Some(w)) => committed = Some(w),
            Ok(None) => {}
            Err(NodeError::Join(why)) => no_certificate = why,
            Err(e) => return Err(e),
        }
    }
    // 2. A confirmed state at or past the committed point, from the first good source.
    let joined = fetch_state(settings, sources, cfg, persist, (signer, wait), committed).await?;
    let p = joined.point.position;
    let target = Checkpoint {
        position: p,
        chain: joined.point.chain,
    };
    let bridge = match committed {
        None => Vec::new(),
        Some(q) if p - q.position > MAX_BRIDGE as u64 => {
            return Err(fail(format!(
                "this peer's signer committed to position {} and the network's state is at {p}, more than {MAX_BRIDGE} positions on, and no finality certificate could be had to move the signer forward ({no_certificate}): check that the peers named in `bootstrap` (or registered in the ledger) run a version that answers certificates, and that cvx-signer's config names `genesis_file` (docs/operations.md, Recovery)",
                q.position
            )));
        }
        Some(q) => {
            let ids = net::sync::fetch_bridge(sources, network, me, q, target, signer)
                .await
                .map_err(|e| fail(e.to_string()))?;
            tracing::info!(
                from = q.position,
                to = p,
                "state sync: bridged the signer's committed prefix to the sync point"
            );
            ids
        }
    };
    let bridge = BoundedVec::try_from_vec(bridge)
        .map_err(|_| fail("the bridge is longer than the signer accepts".into()))?;
    // 3. The signer commits to the synced position.
    let order = Order {
        peer: me,
        timestamp: now(),
        checkpoint: target,
        blocks: BoundedVec::new(),
        proposal: p,
        consensus: p,
        finality: p,
        stake_root: consensus::stake_table(&joined.state, cfg.genesis.params.min_stake).root(),
    };
    let request = Request {
        network,
        body: SignRequest::Order {
            order: order.clone(),
            bridge,
        },
    };
    let signature = signer.sign(request).await.map_err(|e| match e {
        SignError::Refused { code, detail } => fail(format!(
            "the signer refused to commit to the synced position {p} ({code}: {detail}); if its lock conflicts with the network, a lock certificate is needed (docs/consensus.md §7.6); otherwise restore this peer's store from a backup (docs/operations.md, Recovery)"
        )),
        e => NodeError::Signer(e),
    })?;
    let snap = consensus::Snapshot {
        order: Some(SignedOrder { order, signature }),
        blocks: Vec::new(),
        history: Vec::new(),
        ledger: joined.state,
        last_block_ts: Timestamp(0),
        proposal_since: now(),
    };
    persist.adopt_tree(joined.root, snap.ledger.clone());
    persist
        .save(&snap, network.0, true)
        .map_err(|e| persist.error(&e))?;
    tracing::info!(
        position = p,
        nodes = joined.nodes,
        confirmed_stake = %joined.confirmed,
        total_stake = %joined.total,
        "joined by state sync at position {p}: no blocks replayed from genesis"
    );
    Ok(snap)
}

/// Present the first certificate a source offers above `q` to the signer. `Ok(None)`: no
/// source is above `q` (no certificate needed). A refusal tries the next source.
async fn certify(
    sources: &[String],
    network: NetworkId,
    me: PublicKey,
    signer: &SignerSession,
    q: Checkpoint,
) -> Result<Option<Checkpoint>, NodeError> {
    let mut at_or_below = 0;
    let mut signer_down = None;
    let got = net::sync::certificates(sources, network, me, signer, async |host, req| {
        let anchor = req.certificate.anchor.position;
        let kind = match req.certificate.kind {
            cvx_protocol::certificate::CertKind::Finality => "finality",
            cvx_protocol::certificate::CertKind::Lock => "lock",
        };
        // At the lock on the same chain, or below it: nothing to move (a certificate at
        // the lock on another chain releases it, docs/consensus.md §7.6).
        if anchor < q.position || req.certificate.anchor == q {
            at_or_below += 1;
            return Err(format!("its certificate at {anchor} is not above the signer's lock"));
        }
        match signer.certify(req).await {
            Ok((moved, w)) => {
                tracing::info!(%host, anchor, kind, moved, from = q.position, "the signer accepted a {kind} certificate");
                Ok(Some(w.consensus))
            }
            Err(SignError::Refused { code, detail }) => {
                tracing::warn!(%host, anchor, %code, %detail, "the signer refused a certificate; trying another source");
                Err(format!("refused {code}: {detail}"))
            }
            Err(e) => {
                signer_down = Some(e.clone());
                Err(e.to_string())
            }
        }
    })
    .await;
    match got {
        Ok(w) => Ok(w),
        Err(_) if signer_down.is_some() => Err(signer_down.map_or(
            NodeError::Join("the signer session failed".into()),
            NodeError::Signer,
        )),
        Err(_) if at_or_below > 0 => Ok(None),
        Err(why) => Err(NodeError::Join(why)),
    }
}

/// Wait (up to `wait`) for a state at or past `committed`, fetch and confirm it; a
/// source that serves a bad state is left out and the next one tried.
async fn fetch_state(
    settings: &Settings,
    sources: &[String],
    cfg: &consensus::Config,
    persist: &crate::persist::Persist,
    (signer, wait): (&SignerSession, Duration),
    committed: Option<Checkpoint>,
) -> Result<net::sync::Joined, NodeError> {
    let fail = NodeError::Join;
    let store = Arc::clone(persist.store());
    let at_least = committed.map_or(0, |q| q.position);
    let mut hosts = sources.to_vec();
    let t0 = Instant::now();
    let mut said = false;
    loop {
        let r = net::sync::join(
            &hosts,
            cfg.genesis.network_id(),
            settings.key,
            (cfg.genesis.params.min_stake.get(), at_least),
            &store,
            signer,
        )
        .await;
        match r {
            Ok(j) => return Ok(j),
            Err(SyncError::Behind { offered, wanted }) if t0.elapsed() < wait => {
                if !said {
                    said = true;
                    tracing::info!(
                        committed = wanted,
                        offered,
                        "state sync: the signer is ahead of the state offered; waiting for a newer one"
                    );
                }
                tokio::time::sleep(POLL).await;
            }
            Err(SyncError::Behind { offered, wanted }) => {
                return Err(fail(format!(
                    "this peer's signer already committed to position {wanted}, beyond the state offered at {offered}: start again once the network's sync point has passed it"
                )));
            }
            Err(SyncError::Fetch { host, problem } | SyncError::Mismatch { host, problem })
                if hosts.len() > 1 && hosts.contains(&host) =>
            {
                tracing::warn!(%host, %problem, "state sync: a bad state from this source; trying another");
                hosts.retain(|h| *h != host);
            }
            Err(e) => return Err(fail(e.to_string())),
        }
    }
}
