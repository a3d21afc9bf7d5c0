//! Joining by state sync: a peer with an empty store fetches the finalized ledger from its
//! bootstrap peers by hash (the cvx-etch state tree), checks it, has it confirmed by peers
//! holding more than 1/3 of the stake that state lists, and starts the consensus machine
//! at that position. It never replays blocks from genesis.
//!
//! Steps ([`join`]):
//! 1. ask every bootstrap host for its newest sync point (`Query::SyncPoint(None)`); take
//!    the highest position that names a tree root;
//! 2. walk the tree from that root: `missing` → `GetState` → `import` (each node checked
//!    against the hash it was asked by) until nothing is missing, then `verify` the trie;
//! 3. rebuild the ledger from the tree; its height and state hash must be the sync point's;
//! 4. confirmation: dial the bootstrap hosts and the host of every staked peer in that
//!    state; each must prove its key (challenge–response signed by its signer) and say what
//!    it finalized at that position (`Query::SyncPoint(Some(position))`). The stake of the
//!    proven peers whose chain value and state hash agree must exceed 1/3 of the stake the
//!    state lists (so at least one honest peer vouches for it while at most 1/3 of stake is
//!    faulty); if proven peers holding more than 1/3 disagree, the join is refused.
//!
//! docs/operations.md ("Joining by state sync") explains the trust rule and its limit.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use cvx_etch::Store;
use cvx_etch::merkle;
use cvx_protocol::certificate::CertRequest;
use cvx_protocol::consensus::Checkpoint;
use cvx_protocol::hash::chain_over;
use cvx_protocol::peer_wire::{MAX_REQUEST_IDS, SyncPoint};
use cvx_protocol::policy::MAX_BRIDGE;
use cvx_protocol::{Hash, NetworkId, PublicKey};

use crate::signer_session::SignerSession;
use cvx_consensus::ledger::State;
use link::Link;

mod link;

/// How long one exchange with a bootstrap peer may take.
pub const SYNC_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the start-up probe ([`newest_sync_point`]) waits for one host.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(3);
/// Confirmation rounds at most (500 ms apart) while too little stake has answered.
pub const CONFIRM_ATTEMPTS: u32 = 5;
/// Rounds of `GetState` at most (a round fetches up to 256 nodes; each round goes one
/// level deeper at least).
pub const MAX_ROUNDS: usize = 100_000;

/// Why the join failed.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// No bootstrap host is configured.
    #[error("state_sync is on but `bootstrap` names no host: name at least one good peer")]
    NoBootstrap,
    /// No bootstrap host offered a state.
    #[error(
        "no bootstrap peer offered a state to sync ({0}); check `bootstrap` and that those peers run"
    )]
    NoSyncPoint(String),
    /// The serving peer stopped answering or sent something else.
    #[error("state sync from {host}: {problem}")]
    Fetch {
        /// The host.
        host: String,
        /// What went wrong.
        problem: String,
    },
    /// The fetched state is not what the sync point said.
    #[error("the state fetched from {host} does not match its sync point: {problem}")]
    Mismatch {
        /// The host.
        host: String,
        /// What differs.
        problem: String,
    },
    /// Not enough stake confirmed the state.
    #[error(
        "the state at position {position} was confirmed by {agree} of {total} stake (more than 1/3 needed{conflict}); name more bootstrap peers or retry"
    )]
    NotConfirmed {
        /// The position.
        position: u64,
        /// Stake of proven peers that agree.
        agree: u128,
        /// Total stake in the state.
        total: u128,
        /// Set when peers disagreed.
        conflict: String,
    },
    /// Every source offers a state below the position the signer committed to.
    #[error(
        "the newest state offered is at position {offered}, below {wanted}, the position this peer's signer committed to"
    )]
    Behind {
        /// The highest sync point offered.
        offered: u64,
        /// The position the state must reach.
        wanted: u64,
    },
    /// Our signer would not sign what the join needs.
    #[error("the signer refused the join: {0}")]
    Signer(String),
    /// The store failed.
    #[error("store: {0}")]
    Store(String),
}

/// A verified, confirmed state.
#[derive(Debug)]
pub struct Joined {
    /// The ledger at the sync point.
    pub state: State,
    /// The tree root (in the local store now).
    pub root: cvx_etch::Hash,
    /// The sync point.
    pub point: SyncPoint,
    /// Stake of the peers that confirmed it.
    pub confirmed: u128,
    /// Total stake the state lists.
    pub total: u128,
    /// State nodes fetched.
    pub nodes: u64,
}

/// Join: fetch, verify and confirm the newest state the bootstrap peers offer. The tree's
/// nodes are written to `store` (not checkpointed: the caller records the root and
/// checkpoints).
///
/// # Errors
/// [`SyncError`].
pub async fn join(
    bootstrap: &[String],
    network: NetworkId,
    me: PublicKey,
    (min_stake, at_least): (u64, u64),
    store: &Store,
    signer: &SignerSession,
) -> Result<Joined, SyncError> {
    if bootstrap.is_empty() {
        return Err(SyncError::NoBootstrap);
    }
    // 1. The newest sync point with a root.
    let mut best: Option<(Link, SyncPoint, Hash)> = None;
    let mut why = Vec::new();
    for host in bootstrap {
        let mut link = match Link::open(host, network, me, signer).await {
            Ok(l) => l,
            Err(e) => {
                why.push(format!("{host}: {e}"));
                continue;
            }
        };
        match link.sync_point(None).await {
            Ok(Some(sp)) => {
                if let Some(root) = sp.root
                    && best
                        .as_ref()
                        .is_none_or(|(_, b, _)| sp.position > b.position)
                {
                    best = Some((link, sp, root));
                }
            }
            Ok(None) => why.push(format!("{host}: no sync point yet")),
            Err(e) => why.push(format!("{host}: {e}")),
        }
    }
    let Some((mut link, point, root)) = best else {
        return Err(SyncError::NoSyncPoint(why.join("; ")));
    };
    if point.position < at_least {
        return Err(SyncError::Behind {
            offered: point.position,
            wanted: at_least,
        });
    }
    tracing::info!(
        host = %link.host,
        position = point.position,
        root = %root.to_hex(),
        "state sync: fetching the state tree"
    );
    // 2-3. Walk the tree, rebuild the ledger, check it against the sync point.
    let root_e = cvx_etch::Hash(root.0);
    let host = link.host.clone();
    let (state, nodes) = fetch_state(store, &point, root_e, &host, async |miss| {
        link.get_state(miss).await
    })
    .await?;
    drop(link);
    // 4. Confirmation by stake.
    // Peers a little behind may not have finalized the position yet: ask again a few
    // times (never when a peer contradicted it).
    let mut attempt = 0;
    let (confirmed, total) = loop {
        attempt += 1;
        match confirm(bootstrap, network, me, min_stake, &state, &point, signer).await {
            Err(SyncError::NotConfirmed { conflict, .. })
                if conflict.is_empty() && attempt < CONFIRM_ATTEMPTS =>
            {
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            other => break other?,
        }
    };
    Ok(Joined {
        state,
        root: root_e,
        point,
        confirmed,
        total,
        nodes,
    })
}

/// The highest position among the newest sync points `hosts` offer (`None`: nobody
/// answered with one).
pub async fn newest_sync_point(
    hosts: &[String],
    network: NetworkId,
    me: PublicKey,
    signer: &SignerSession,
) -> Option<u64> {
    let mut best = None;
    for host in hosts {
        // A start-up probe: a host that is down or frozen is not waited for long.
        let ask = async {
            let mut link = Link::open(host, network, me, signer).await?;
            link.sync_point(None).await
        };
        if let Ok(Ok(Some(sp))) = tokio::time::timeout(PROBE_TIMEOUT, ask).await {
            best = best.max(Some(sp.position));
        }
    }
    best
}

/// The newest finality certificate (with its stake table) each of `hosts` offers, in the
/// order asked, until `take` accepts one (`take` returns `Some`): the certificates and
/// why the others gave none are logged by the caller.
///
/// # Errors
/// Every host's failure, joined, when `take` accepted none.
pub async fn certificates<T>(
    hosts: &[String],
    network: NetworkId,
    me: PublicKey,
    signer: &SignerSession,
    take: impl AsyncFnMut(&str, CertRequest) -> Result<Option<T>, String>,
) -> Result<T, String> {
    let fetch = async |host: &str| {
        // A source that is down or frozen is not waited for long: there are others.
        let ask = async {
            let mut link = Link::open(host, network, me, signer).await?;
            link.certificate().await
        };
        tokio::time::timeout(PROBE_TIMEOUT, ask)
            .await
            .map_err(|_| format!("no answer within {PROBE_TIMEOUT:?}"))?
    };
    first_accepted(hosts, fetch, take).await
}

/// Ask each host in turn (`fetch`) and hand what it offers to `take`, until `take`
/// accepts (`Some`); a host that offers nothing, fails, or whose offer `take` refuses
/// (`Err`) is passed over for the next one.
///
/// # Errors
/// Every host's reason, joined, when none was accepted.
pub async fn first_accepted<C, T>(
    hosts: &[String],
    mut fetch: impl AsyncFnMut(&str) -> Result<Option<C>, String>,
    mut take: impl AsyncFnMut(&str, C) -> Result<Option<T>, String>,
) -> Result<T, String> {
    let mut why: Vec<(&str, String)> = Vec::new();
    for host in hosts {
        match fetch(host).await {
            Ok(Some(c)) => match take(host, c).await {
                Ok(Some(t)) => return Ok(t),
                Ok(None) => {}
                Err(e) => why.push((host, e)),
            },
            Ok(None) => why.push((host, "no certificate (no quorum in its view)".into())),
            Err(e) => why.push((host, e)),
        }
    }
    Err(match why.as_slice() {
        [] => "no source to ask".into(),
        [(_, first), rest @ ..] if !rest.is_empty() && rest.iter().all(|(_, w)| w == first) => {
            let names: Vec<&str> = why.iter().map(|(h, _)| *h).collect();
            format!("every source ({}): {first}", names.join(", "))
        }
        _ => why
            .iter()
            .map(|(h, w)| format!("{h}: {w}"))
            .collect::<Vec<_>>()
            .join("; "),
    })
}

/// The block ids at positions `from.position .. to.position`, from the first bootstrap peer
/// that has them, checked to link `from` to `to` (`chain_over(from.chain, ids) ==
/// to.chain`): the bridge a signer that already committed to `from` needs before it signs an
/// order whose checkpoint is `to`.
///
/// # Errors
/// [`SyncError::Fetch`] when no bootstrap peer has a linking run of ids.
pub async fn fetch_bridge(
    bootstrap: &[String],
    network: NetworkId,
    me: PublicKey,
    from: Checkpoint,
    to: Checkpoint,
    signer: &SignerSession,
) -> Result<Vec<Hash>, SyncError> {
    let n = to.position.saturating_sub(from.position);
    let Ok(count) = usize::try_from(n) else {
        return Err(SyncError::Fetch {
            host: String::new(),
            problem: "bridge too long".into(),
        });
    };
    if count > MAX_BRIDGE {
        return Err(SyncError::Fetch {
            host: bootstrap.join(","),
            problem: format!(
                "this peer's signer committed to position {} and the state is at {}: more than {MAX_BRIDGE} blocks apart, and no finality certificate moved the signer forward",
                from.position, to.position
            ),
        });
    }
    if count == 0 {
        return if from.chain == to.chain {
            Ok(Vec::new())
        } else {
            Err(SyncError::Fetch {
                host: bootstrap.join(","),
                problem: format!(
                    "this peer's signer committed to another chain at position {}: a fork; see docs/operations.md, Security breach",
                    from.position
                ),
            })
        };
    }
    let mut why = Vec::new();
    for host in bootstrap {
        let mut link = match Link::open(host, network, me, signer).await {
            Ok(l) => l,
            Err(e) => {
                why.push(format!("{host}: {e}"));
                continue;
            }
        };
        match link.block_ids(from.position).await {
            Ok(mut ids) if ids.len() >= count => {
                ids.truncate(count);
                if chain_over(&from.chain, &ids) == to.chain {
                    return Ok(ids);
                }
                why.push(format!(
                    "{host}: its ids do not link the signer's prefix to the state"
                ));
            }
            Ok(_) => why.push(format!("{host}: too few ids")),
            Err(e) => why.push(format!("{host}: {e}")),
        }
    }
    Err(SyncError::Fetch {
        host: bootstrap.join(","),
        problem: format!(
            "no peer linked the signer's committed position {} to the state at {} ({})",
            from.position,
            to.position,
            why.join("; ")
        ),
    })
}

/// Fetch the state tree under `root` into `store` through `fetch` (one `GetState` round
/// trip per call: the hashes asked for in, the node bytes out), verify the trie, rebuild the
/// ledger and check its height and state hash against `point`. Returns the ledger and the
/// number of nodes imported. `host` names the source in errors.
///
/// # Errors
/// [`SyncError::Fetch`] (the source failed, sent an unrequested or malformed node, or
/// stopped serving), [`SyncError::Mismatch`] (the tree is not the state the sync point
/// names), [`SyncError::Store`].
pub async fn fetch_state(
    store: &Store,
    point: &SyncPoint,
    root: cvx_etch::Hash,
    host: &str,
    mut fetch: impl AsyncFnMut(&[cvx_etch::Hash]) -> Result<Vec<Vec<u8>>, String>,
) -> Result<(State, u64), SyncError> {
    let store_err = |e: cvx_etch::EtchError| SyncError::Store(e.to_string());
    let failed = |problem: String| SyncError::Fetch {
        host: host.to_owned(),
        problem,
    };
    let mismatch = |problem: String| SyncError::Mismatch {
        host: host.to_owned(),
        problem,
    };
    let mut nodes = 0u64;
    for _ in 0..MAX_ROUNDS {
        let miss = merkle::missing(store, &root, MAX_REQUEST_IDS).map_err(store_err)?;
        if miss.is_empty() {
            break;
        }
        let got = fetch(&miss).await.map_err(failed)?;
        let wanted: HashSet<[u8; 32]> = miss.iter().map(|h| h.0).collect();
        let mut new = 0;
        for bytes in got {
            let h = cvx_etch::Hash::of(&bytes);
            if !wanted.contains(&h.0) {
                return Err(failed("sent a node that was not asked for".into()));
            }
            if merkle::import(store, &h, &bytes).map_err(|e| failed(e.to_string()))? {
                new += 1;
            }
        }
        if new == 0 {
            return Err(failed("does not serve the state it offered".into()));
        }
        nodes += new;
    }
    merkle::verify(store, &root).map_err(|e| mismatch(e.to_string()))?;
    let state = crate::persist::read_state(store, &root).map_err(|e| mismatch(e.to_string()))?;
    if state.height() != point.position || state.state_hash() != point.state_hash {
        return Err(mismatch(format!(
            "rebuilt state at height {} with hash {}, sync point says {} / {}",
            state.height(),
            state.state_hash().to_hex(),
            point.position,
            point.state_hash.to_hex()
        )));
    }
    Ok((state, nodes))
}

/// The trust rule: proven peers holding more than 1/3 of the stake agree, and proven
/// peers holding more than 1/3 do not contradict them.
#[must_use]
pub const fn confirmed(agree: u128, disagree: u128, total: u128) -> bool {
    total > 0 && agree * 3 > total && disagree * 3 <= total
}

async fn confirm(
    bootstrap: &[String],
    network: NetworkId,
    me: PublicKey,
    min_stake: u64,
    state: &State,
    point: &SyncPoint,
    signer: &SignerSession,
) -> Result<(u128, u128), SyncError> {
    let stake_of: HashMap<PublicKey, u128> = state
        .peers()
        .filter(|p| p.stake.get() >= min_stake)
        .map(|p| (p.key, u128::from(p.stake.get())))
        .collect();
    let total: u128 = stake_of.values().sum();
    let mut hosts: Vec<String> = bootstrap.to_vec();
    for p in state.peers() {
        if stake_of.contains_key(&p.key)
            && p.key != me
            && let Some(h) = &p.host
            && !hosts.iter().any(|x| x == h.as_str())
        {
            hosts.push(h.as_str().to_owned());
        }
    }
    let mut agree = 0u128;
    let mut disagree = 0u128;
    let mut counted: HashSet<PublicKey> = HashSet::new();
    for host in &hosts {
        // More than 2/3 agreeing: nobody left can make more than 1/3 disagree (and a
        // frozen peer further down the list is not waited for).
        if agree.saturating_mul(3) > total.saturating_mul(2) {
            break;
        }
        let mut link = match Link::open(host, network, me, signer).await {
            Ok(l) => l,
            Err(e) => {
                tracing::info!(%host, error = %e, "state sync: cannot ask this peer to confirm");
                continue;
            }
        };
        let Some(key) = link.key else { continue };
        let Some(stake) = stake_of.get(&key).copied() else {
            continue;
        };
        if !counted.insert(key) {
            continue;
        }
        match link.sync_point(Some(point.position)).await {
            Ok(Some(sp)) if sp.chain == point.chain && sp.state_hash == point.state_hash => {
                agree += stake;
            }
            Ok(Some(_)) => {
                tracing::warn!(%host, peer = %key, "state sync: a peer finalized something else at this position");
                disagree += stake;
            }
            Ok(None) => {
                tracing::info!(%host, "state sync: the peer no longer (or not yet) knows this position");
            }
            Err(e) => tracing::info!(%host, error = %e, "state sync: no confirmation"),
        }
    }
    if confirmed(agree, disagree, total) {
        Ok((agree, total))
    } else {
        Err(SyncError::NotConfirmed {
            position: point.position,
            agree,
            total,
            conflict: if disagree > 0 {
                format!("; {disagree} stake finalized something else")
            } else {
                String::new()
            },
        })
    }
}

#[cfg(test)]
mod tests;
