//! Joining by state sync at start-up (empty store, `state_sync = true`); the network
//! side is [`crate::net::sync`].

use std::sync::Arc;
use std::time::Duration;

use cvx_protocol::policy::{Request, SignRequest};
use cvx_protocol::{BoundedVec, Timestamp};

use crate::clock::now;
use crate::config::Settings;
use crate::error::NodeError;
use crate::net;
use crate::signer_session::{SignError, SignerSession};
use cvx_consensus as consensus;

/// Rounds (1 s apart) a join waits for a state at or past its signer's committed point.
pub const JOIN_WAIT_ROUNDS: u32 = 30;

/// Join by state sync (empty store, `state_sync = true`): fetch, verify and confirm the
/// ledger at a finalized position, have the signer commit to that position (an own order
/// whose checkpoint is the sync point: a fresh signer accepts any height), and persist it,
/// so the consensus machine starts there. Never replays blocks from genesis.
pub(super) async fn join_by_state_sync(
    settings: &Settings,
    cfg: &consensus::Config,
    persist: &mut crate::persist::Persist,
    signer: &SignerSession,
) -> Result<consensus::Snapshot, NodeError> {
    use cvx_protocol::consensus::{Checkpoint, Order, SignedOrder};
    let network = cfg.genesis.network_id();
    let fail = NodeError::Join;
    let store = Arc::clone(persist.store());
    // A signer that already committed to a prefix (this peer lost its store) can only
    // move forward: wait (a sync point is written about once a second) until the network
    // offers a state at or past that point.
    let committed = signer.status().await?.watermark.consensus;
    let mut waited = 0;
    let joined = loop {
        let joined = net::sync::join(
            &settings.bootstrap,
            network,
            settings.key,
            cfg.genesis.params.min_stake.get(),
            &store,
            signer,
        )
        .await
        .map_err(|e| fail(e.to_string()))?;
        match committed {
            Some(q) if q.position > joined.point.position => {
                if waited >= JOIN_WAIT_ROUNDS {
                    return Err(fail(format!(
                        "this peer's signer already committed to position {}, beyond the state offered at {}: start again once the network's sync point has passed it",
                        q.position, joined.point.position
                    )));
                }
                waited += 1;
                tracing::info!(
                    committed = q.position,
                    offered = joined.point.position,
                    "state sync: the signer is ahead of the state offered; waiting for a newer one"
                );
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            _ => break joined,
        }
    };
    let p = joined.point.position;
    let target = Checkpoint {
        position: p,
        chain: joined.point.chain,
    };
    // Such a signer needs the block ids from its committed point to the sync point.
    let bridge = match committed {
        None => Vec::new(),
        Some(q) => {
            let ids = net::sync::fetch_bridge(
                &settings.bootstrap,
                network,
                settings.key,
                q,
                target,
                signer,
            )
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
    let order = Order {
        peer: settings.key,
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
            "the signer refused to commit to the synced position ({code}: {detail}); a signer that already signed for this network keeps its watermark: restore this peer's store from a backup instead (docs/operations.md, Joining by state sync)"
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
