//! The runtime of a networked peer: it owns the consensus state machine, the cvx-etch
//! store, the signer client and the sockets, and carries out the machine's actions.
//!
//! Tasks: one main loop (the only owner of [`consensus::Peer`]), one signer task (the
//! only user of the signer socket), one accept loop, one reader and one writer task per
//! connection. Readers check every frame (caps, timeouts, canonical decode) and every
//! submitted transaction (sequence, strict signature) before anything reaches the loop.

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use cvx_etch::Store;
use cvx_protocol::consensus::{ChallengeResponse, SignedChallengeResponse};
use cvx_protocol::ledger::{Genesis, SignedTransaction, TxOutcome, TxResult};
use cvx_protocol::peer_wire::{
    Answer, Hello, MAX_STATE_NODE, MAX_STATE_NODES, Message, PEER_WIRE_VERSION, Query, Role,
    Status, SyncPoint,
};
use cvx_protocol::policy::{Refusal, Request, SignRequest};
use cvx_protocol::{BoundedString, BoundedVec, Canonical, ErrorCode, Hash, NetworkId, PublicKey};
use cvx_protocol::{Signature, Timestamp, Token};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};

use crate::api::{ApiQuery, ApiRequest};
use crate::config::Settings;
use crate::conn::{Candidate, ConnManager};
use crate::consensus::{self, Action, ConnId, Event, RequestId};
use crate::ledger::{BlockOutcome, State};
use crate::net::{self, FrameError};
use crate::signer_client::{SignerClient, SignerClientError};

/// How long the other side's Hello may take.
pub const HELLO_TIMEOUT: Duration = Duration::from_secs(5);
/// A peer connection with no frame for this long is closed (beliefs flow every 200 ms).
pub const PEER_IDLE: Duration = Duration::from_secs(30);
/// A client connection with no frame for this long is closed.
pub const CLIENT_IDLE: Duration = Duration::from_secs(120);
/// A started frame must complete within this.
pub const FRAME_BODY: Duration = Duration::from_secs(10);
/// Frames queued for one connection's writer at most (beyond: dropped, or the
/// connection closed if it is a client that does not read).
pub const WRITE_QUEUE: usize = 4096;
/// A peer that sent nothing for this long no longer counts towards taking part.
pub const HEARD_WINDOW_MS: u64 = 3_000;
/// Finalized results remembered for `Query::Transaction`.
pub const RESULTS_KEPT: usize = 200_000;
/// Sequence numbers accepted ahead of the account's current one.
pub const MAX_SEQUENCE_AHEAD: u64 = 1_000;
/// `GetState` requests one connection may make per second (and in a burst): each costs up
/// to `MAX_STATE_NODES` store reads, so a remote party must not be able to ask without
/// bound. A joining peer asks one round at a time; the join backs off on `LOAD`.
pub const STATE_REQUESTS_PER_SEC: u32 = 64;

/// Why the peer could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// The genesis file is unreadable or invalid.
    #[error("genesis {path}: {problem}")]
    Genesis {
        /// File.
        path: PathBuf,
        /// What is wrong.
        problem: String,
    },
    /// The store could not be opened or written.
    #[error("store {path}: {problem} (check the data_dir; see docs/operations.md, Recovery)")]
    Store {
        /// File.
        path: PathBuf,
        /// What is wrong.
        problem: String,
    },
    /// The signer could not be used.
    #[error(transparent)]
    Signer(#[from] SignerClientError),
    /// The signer holds another key or serves another network.
    #[error(
        "the signer's {what} is {theirs}, but the config says {ours}: point signer_socket at this peer's signer, or fix `key`"
    )]
    SignerMismatch {
        /// Key or network.
        what: &'static str,
        /// The signer's.
        theirs: String,
        /// Ours.
        ours: String,
    },
    /// Cannot bind the port.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// Address.
        addr: SocketAddr,
        /// OS error.
        source: std::io::Error,
    },
    /// The consensus machine halted on a fork.
    #[error("consensus halted: {0} (see docs/operations.md, Security breach)")]
    Halted(String),
    /// Joining by state sync failed (nothing was written; the store stays empty).
    #[error(
        "joining by state sync: {0} (check `bootstrap` and that those peers are up; see docs/operations.md, Storage management)"
    )]
    Join(String),
}

/// What connection tasks and the loop share.
#[derive(Debug)]
struct Shared {
    network: NetworkId,
    key: PublicKey,
    /// The finalized ledger (replaced after each finalized block).
    state: RwLock<Arc<State>>,
    in_consensus: AtomicBool,
    next_conn: AtomicU64,
    incoming: AtomicU64,
    max_connections: usize,
    /// Counters for /metrics-style output.
    frames_in: AtomicU64,
    /// Orders sent in belief deltas, and orders a full belief would have sent on top.
    belief_orders_sent: AtomicU64,
    belief_orders_saved: AtomicU64,
    refused_ingress: AtomicU64,
    /// The store, for serving state-tree nodes (`GetState`) from connection tasks.
    store: Arc<Store>,
    /// State nodes served.
    state_nodes_served: AtomicU64,
    /// `GetState` requests answered `LOAD` (over [`STATE_REQUESTS_PER_SEC`]).
    state_requests_limited: AtomicU64,
}

impl Shared {
    fn state(&self) -> Arc<State> {
        self.state
            .read()
            .map_or_else(|p| Arc::clone(&p.into_inner()), |g| Arc::clone(&g))
    }
}

/// A request to the signer task.
struct SignJob {
    request: Request,
    reply: oneshot::Sender<Result<Result<Signature, Refusal>, String>>,
}

/// What reaches the main loop.
enum Input {
    Opened {
        conn: ConnId,
        tx: mpsc::Sender<Arc<Vec<u8>>>,
        dialed: Option<String>,
    },
    Proven {
        conn: ConnId,
        key: PublicKey,
    },
    Wire {
        conn: ConnId,
        msg: Message,
    },
    Submit {
        conn: ConnId,
        tx: SignedTransaction,
    },
    Closed {
        conn: ConnId,
    },
    DialFailed {
        host: String,
    },
    Signed {
        id: RequestId,
        result: Result<Result<Signature, Refusal>, String>,
    },
}

#[derive(Clone)]
struct Ctx {
    shared: Arc<Shared>,
    inputs: mpsc::Sender<Input>,
    signer: mpsc::Sender<SignJob>,
}

/// Milliseconds since the Unix epoch.
#[must_use]
pub fn now() -> Timestamp {
    Timestamp(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
    )
}

fn random_token() -> Token {
    let mut t = [0u8; 32];
    // getrandom fails only without an OS RNG; a zero token is then refused by the
    // other side's signer, so the failure is visible, not silent.
    let _ = getrandom::fill(&mut t);
    Token(t)
}

fn error_frame(code: ErrorCode, detail: &str) -> Message {
    Message::Error {
        code,
        detail: BoundedString::new(&detail.chars().take(200).collect::<String>())
            .unwrap_or_default(),
    }
}

/// Load and check a genesis file.
///
/// # Errors
/// [`NodeError::Genesis`].
pub fn load_genesis(path: &std::path::Path) -> Result<Genesis, NodeError> {
    let bad = |problem: String| NodeError::Genesis {
        path: path.to_path_buf(),
        problem,
    };
    let bytes = std::fs::read(path).map_err(|e| bad(e.to_string()))?;
    Genesis::decode(&bytes).map_err(|e| bad(format!("not a canonical genesis: {e}")))
}

/// A peer that has started (store open, signer checked, port bound) but not yet run.
#[derive(Debug)]
pub struct Node {
    settings: Settings,
    genesis: Genesis,
    store: Store,
    signer: SignerClient,
    listener: TcpListener,
    api: Option<TcpListener>,
}

impl Node {
    /// Start-up: genesis, store, signer check, bind.
    ///
    /// # Errors
    /// [`NodeError`] naming what failed and what to do.
    pub async fn start(settings: Settings) -> Result<Self, NodeError> {
        let genesis = load_genesis(&settings.genesis)?;
        let network = genesis.network_id();
        std::fs::create_dir_all(&settings.data_dir).map_err(|e| NodeError::Store {
            path: settings.data_dir.clone(),
            problem: e.to_string(),
        })?;
        let store_path = settings.data_dir.join("peer.etch");
        let (store, report) = Store::open(&store_path).map_err(|e| NodeError::Store {
            path: store_path.clone(),
            problem: e.to_string(),
        })?;
        if !report.is_clean() {
            tracing::warn!(?report, "store recovered after an unclean stop");
        }
        let signer = SignerClient::connect(&settings.signer_socket).await?;
        if signer.public_key != settings.key {
            return Err(NodeError::SignerMismatch {
                what: "public key",
                theirs: signer.public_key.to_hex(),
                ours: settings.key.to_hex(),
            });
        }
        if signer.network != network {
            return Err(NodeError::SignerMismatch {
                what: "network",
                theirs: signer.network.0.to_hex(),
                ours: network.0.to_hex(),
            });
        }
        let listener =
            TcpListener::bind(settings.listen)
                .await
                .map_err(|source| NodeError::Bind {
                    addr: settings.listen,
                    source,
                })?;
        let api = match settings.api_listen {
            Some(addr) => Some(
                TcpListener::bind(addr)
                    .await
                    .map_err(|source| NodeError::Bind { addr, source })?,
            ),
            None => None,
        };
        Ok(Self {
            settings,
            genesis,
            store,
            signer,
            listener,
            api,
        })
    }

    /// The bound peer/client address.
    ///
    /// # Errors
    /// The OS error.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// The bound HTTP API address, if the API is on.
    #[must_use]
    pub fn api_addr(&self) -> Option<SocketAddr> {
        self.api.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// The network this peer is on.
    #[must_use]
    pub fn network(&self) -> NetworkId {
        self.genesis.network_id()
    }

    /// Run until `shutdown` resolves (graceful: goodbye, persist, close) or the
    /// consensus machine halts.
    ///
    /// # Errors
    /// [`NodeError::Halted`], or a store failure at shutdown.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send) -> Result<(), NodeError> {
        let Self {
            settings,
            genesis,
            store,
            signer,
            listener,
            api,
        } = self;
        let network = genesis.network_id();
        let cfg = consensus::Config::new(genesis, settings.key);
        let store = Arc::new(store);
        let mut persist =
            crate::persist::Persist::new(Arc::clone(&store), settings.data_dir.join("peer.etch"));
        let mut signer = signer;
        let mut synced_from = 0;
        let peer = match persist.load(&cfg)? {
            Some(snap) => {
                tracing::info!(position = snap.ledger.height(), "restored from the store");
                consensus::Peer::restore(cfg, snap)
            }
            None if settings.state_sync => {
                let snap = join_by_state_sync(&settings, &cfg, &mut persist, &mut signer).await?;
                synced_from = snap.ledger.height();
                consensus::Peer::restore(cfg, snap)
            }
            None => consensus::Peer::new(cfg),
        };
        let start_position = peer.ledger().height();
        let chain_log = persist
            .sync_point()
            .filter(|sp| sp.position == start_position)
            .map(|sp| (sp.position, sp.chain, sp.state_hash))
            .or_else(|| {
                chain_at_height(&peer, start_position)
                    .map(|c| (start_position, c, peer.ledger().state_hash()))
            })
            .into_iter()
            .collect();
        let shared = Arc::new(Shared {
            network,
            key: settings.key,
            state: RwLock::new(Arc::new(peer.ledger().clone())),
            in_consensus: AtomicBool::new(false),
            next_conn: AtomicU64::new(1),
            incoming: AtomicU64::new(0),
            max_connections: settings.max_connections,
            frames_in: AtomicU64::new(0),
            belief_orders_sent: AtomicU64::new(0),
            belief_orders_saved: AtomicU64::new(0),
            refused_ingress: AtomicU64::new(0),
            store,
            state_nodes_served: AtomicU64::new(0),
            state_requests_limited: AtomicU64::new(0),
        });
        let (in_tx, in_rx) = mpsc::channel::<Input>(65_536);
        let (sign_tx, sign_rx) = mpsc::channel::<SignJob>(1024);
        tokio::spawn(signer_task(signer, sign_rx));
        let ctx = Ctx {
            shared: Arc::clone(&shared),
            inputs: in_tx,
            signer: sign_tx,
        };
        tokio::spawn(accept_loop(listener, ctx.clone()));
        let (api_tx, api_rx) = mpsc::channel::<ApiRequest>(64);
        if let Some(l) = api {
            tokio::spawn(crate::api::serve(l, api_tx));
        }
        let mut seed = [0u8; 8];
        let _ = getrandom::fill(&mut seed);
        let gc_interval_secs = settings.gc_interval_secs;
        let main = MainLoop {
            peer,
            ctx,
            settings,
            persist,
            conns: HashMap::new(),
            manager: ConnManager::new(8, u64::from_le_bytes(seed)),
            waiting: HashMap::new(),
            results: HashMap::new(),
            results_order: VecDeque::new(),
            sign_pending: HashSet::new(),
            finalized_tx: 0,
            stall: (0, now().0, 0),
            chain_log,
            synced_from,
            start_position,
            executed: 0,
            gc: crate::persist::PeriodicGc::new(gc_interval_secs),
        };
        main.run(in_rx, api_rx, shutdown).await
    }
}

struct ConnState {
    tx: mpsc::Sender<Arc<Vec<u8>>>,
    /// The proven key of a staked peer: its beliefs and blocks count.
    key: Option<PublicKey>,
    /// The proven key, staked or not: it receives our beliefs and blocks (public data), so
    /// a peer that joined by state sync can follow consensus before it is staked; it is
    /// promoted to `key` once the ledger stakes it.
    proven: Option<PublicKey>,
    dialed: Option<String>,
    heard_ms: u64,
    /// The newest orders this connection holds (belief deltas).
    known: net::delta::Known,
}

struct MainLoop {
    peer: consensus::Peer,
    ctx: Ctx,
    settings: Settings,
    persist: crate::persist::Persist,
    conns: HashMap<ConnId, ConnState>,
    manager: ConnManager,
    waiting: HashMap<Hash, Vec<ConnId>>,
    results: HashMap<Hash, TxResult>,
    results_order: VecDeque<Hash>,
    sign_pending: HashSet<RequestId>,
    finalized_tx: u64,
    /// (finality, when it last moved, when a stall was last reported), ms.
    stall: (u64, u64, u64),
    /// (height, chain value, state hash) of the newest finalized positions, so joining
    /// peers can have a state confirmed (`Query::SyncPoint(Some(position))`).
    chain_log: VecDeque<(u64, Hash, Hash)>,
    /// The position this peer joined at by state sync (0: it did not).
    synced_from: u64,
    /// The ledger height this process started at (0: genesis).
    start_position: u64,
    /// Blocks this process executed.
    executed: u64,
    /// Periodic store garbage collection (`gc_interval_secs`).
    gc: crate::persist::PeriodicGc,
}

/// Connections of proven but unstaked keys (e.g. peers that joined by state sync and wait
/// for their create-peer) that receive beliefs and blocks, at most; beyond, such a
/// connection is a plain client (bounds what anyone with a fresh key can make us send).
pub const MAX_FOLLOWERS: usize = 16;

/// Finalized positions remembered for confirmations ([`MainLoop::chain_log`]).
pub const CHAIN_LOG: usize = 4096;

/// The chain value at `height` from the peer's own order (its checkpoint and the ids above
/// it), or the genesis chain value at 0.
fn chain_at_height(peer: &consensus::Peer, height: u64) -> Option<Hash> {
    let (cp, ids) = peer.chain();
    let n = usize::try_from(height.checked_sub(cp.position)?).ok()?;
    Some(cvx_protocol::hash::chain_over(&cp.chain, ids.get(..n)?))
}

/// Rounds (1 s apart) a join waits for a state at or past its signer's committed point.
pub const JOIN_WAIT_ROUNDS: u32 = 30;

/// Join by state sync (empty store, `state_sync = true`): fetch, verify and confirm the
/// ledger at a finalized position, have the signer commit to that position (an own order
/// whose checkpoint is the sync point: a fresh signer accepts any height), and persist it,
/// so the consensus machine starts there. Never replays blocks from genesis.
async fn join_by_state_sync(
    settings: &Settings,
    cfg: &consensus::Config,
    persist: &mut crate::persist::Persist,
    signer: &mut SignerClient,
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
    };
    let request = Request {
        network,
        body: SignRequest::Order {
            order: order.clone(),
            bridge,
        },
    };
    let signature = signer
        .sign(request)
        .await?
        .map_err(|r| {
            fail(format!(
                "the signer refused to commit to the synced position ({}: {}); a signer that already signed for this network keeps its watermark: restore this peer's store from a backup instead (docs/operations.md, Joining by state sync)",
                r.code.name(),
                r.detail
            ))
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

impl MainLoop {
    async fn run(
        mut self,
        mut inputs: mpsc::Receiver<Input>,
        mut api: mpsc::Receiver<ApiRequest>,
        shutdown: impl Future<Output = ()> + Send,
    ) -> Result<(), NodeError> {
        self.manager = ConnManager::new(self.settings.target_outgoing, {
            let mut s = [0u8; 8];
            let _ = getrandom::fill(&mut s);
            u64::from_le_bytes(s)
        });
        let mut tick = tokio::time::interval(Duration::from_millis(5));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let mut slow = tokio::time::interval(Duration::from_millis(250));
        slow.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                () = &mut shutdown => break,
                Some(input) = inputs.recv() => {
                    let mut batch = vec![input];
                    while batch.len() < 4096 {
                        match inputs.try_recv() {
                            Ok(i) => batch.push(i),
                            Err(_) => break,
                        }
                    }
                    for i in batch {
                        self.on_input(i)?;
                    }
                }
                _ = tick.tick() => {
                    let acts = self.peer.handle(now(), Event::Tick);
                    self.carry_out(acts)?;
                }
                _ = slow.tick() => self.housekeeping(),
                Some((q, reply)) = api.recv() => {
                    let _ = reply.send(self.api_answer(&q));
                }
            }
        }
        tracing::info!("shutting down: goodbye to peers, checkpoint, close");
        let bye = Arc::new(cvx_protocol::peer_wire::encode_frame(&Message::Goodbye));
        for c in self.conns.values() {
            let _ = c.tx.try_send(Arc::clone(&bye));
        }
        self.persist
            .save(&self.peer.snapshot(), self.ctx.shared.network.0, true)
            .map_err(|e| self.persist.error(&e))?;
        tokio::time::sleep(Duration::from_millis(100)).await;
        Ok(())
    }

    fn send(&self, conn: ConnId, m: &Message) {
        if let Some(c) = self.conns.get(&conn) {
            let _ =
                c.tx.try_send(Arc::new(cvx_protocol::peer_wire::encode_frame(m)));
        }
    }

    fn on_input(&mut self, input: Input) -> Result<(), NodeError> {
        match input {
            Input::Opened { conn, tx, dialed } => {
                self.conns.insert(
                    conn,
                    ConnState {
                        tx,
                        key: None,
                        proven: None,
                        dialed,
                        heard_ms: now().0,
                        known: net::delta::Known::default(),
                    },
                );
            }
            Input::Proven { conn, key } => {
                let staked = self
                    .peer
                    .ledger()
                    .peer(&key)
                    .is_some_and(|p| !p.stake.is_zero());
                let followers = self
                    .conns
                    .values()
                    .filter(|c| c.proven.is_some() && c.key.is_none())
                    .count();
                if let Some(c) = self.conns.get_mut(&conn) {
                    if staked || followers < MAX_FOLLOWERS {
                        c.proven = Some(key);
                    }
                    if staked {
                        c.key = Some(key);
                        if let Some(h) = &c.dialed {
                            let stake = self.peer.ledger().peer(&key).map_or(0, |p| p.stake.get());
                            self.manager.on_connected(now().0, h, stake);
                        }
                        tracing::debug!(conn = conn.0, peer = %key, "peer proved its key");
                    } else {
                        tracing::debug!(
                            conn = conn.0,
                            "proof of an unstaked key: a follower (beliefs sent, not counted)"
                        );
                    }
                }
            }
            Input::Wire { conn, msg } => self.on_wire(conn, msg)?,
            Input::Submit { conn, tx } => self.on_submit(conn, tx)?,
            Input::Closed { conn } => {
                if let Some(c) = self.conns.remove(&conn)
                    && let Some(h) = c.dialed
                {
                    self.manager.on_failed(now().0, &h);
                }
                self.waiting.retain(|_, v| {
                    v.retain(|c| *c != conn);
                    !v.is_empty()
                });
            }
            Input::DialFailed { host } => self.manager.on_failed(now().0, &host),
            Input::Signed { id, result } => {
                self.sign_pending.remove(&id);
                let result = result.unwrap_or_else(|e| {
                    Err(Refusal {
                        code: cvx_protocol::policy::RefuseCode::StateUnavailable,
                        detail: e,
                    })
                });
                let acts = self
                    .peer
                    .handle(now(), Event::SignatureReturned { id, result });
                self.carry_out(acts)?;
            }
        }
        Ok(())
    }

    fn on_wire(&mut self, conn: ConnId, msg: Message) -> Result<(), NodeError> {
        let Some(c) = self.conns.get_mut(&conn) else {
            return Ok(());
        };
        c.heard_ms = now().0;
        let is_peer = c.key.is_some();
        let cmsg = match msg {
            Message::Query(q) => {
                let a = self.answer(&q);
                self.send(conn, &Message::Answer(a));
                return Ok(());
            }
            // Beliefs count only from proven, staked peers; block and id requests are
            // served to anyone (they are public data).
            Message::Belief(b) if is_peer => {
                c.known.received(&b.orders);
                consensus::Message::Belief(b)
            }
            Message::Block(b) if is_peer => consensus::Message::Block(Arc::new(b)),
            Message::GetBlocks(ids) => consensus::Message::GetBlocks(ids.into_vec()),
            Message::GetBlockIds { from, .. } => consensus::Message::GetChain(from),
            Message::BlockIds { from, ids } if is_peer => consensus::Message::Chain {
                start: from,
                ids: ids.into_vec(),
            },
            _ => return Ok(()),
        };
        let acts = self.peer.handle(
            now(),
            Event::Message {
                from: conn,
                msg: cmsg,
            },
        );
        self.carry_out(acts)
    }

    fn on_submit(&mut self, conn: ConnId, tx: SignedTransaction) -> Result<(), NodeError> {
        let id = tx.id();
        let refuse = |me: &Self, code| {
            me.ctx
                .shared
                .refused_ingress
                .fetch_add(1, Ordering::Relaxed);
            me.send(
                conn,
                &Message::Submitted {
                    id,
                    result: Err(code),
                },
            );
        };
        if let Some(r) = self.results.get(&id) {
            self.send(
                conn,
                &Message::Submitted {
                    id,
                    result: Ok(r.clone()),
                },
            );
            return Ok(());
        }
        if !self.ctx.shared.in_consensus.load(Ordering::Relaxed) {
            refuse(self, ErrorCode::Network);
            return Ok(());
        }
        if self.peer.mempool_len() >= self.settings.max_queue
            || self.waiting.len() >= self.settings.max_queue
        {
            refuse(self, ErrorCode::Load);
            return Ok(());
        }
        self.waiting.entry(id).or_default().push(conn);
        let acts = self.peer.handle(now(), Event::Transaction(tx));
        self.carry_out(acts)
    }

    fn answer(&self, q: &Query) -> Answer {
        let ledger = self.peer.ledger();
        match q {
            Query::Account(a) => Answer::Account(ledger.account(*a).cloned()),
            Query::Peer(k) => Answer::Peer(ledger.peer(k).cloned()),
            Query::Transaction(id) => Answer::Transaction(self.results.get(id).cloned()),
            Query::Status => Answer::Status(self.status()),
            Query::SyncPoint(at) => Answer::SyncPoint(self.sync_point(*at)),
        }
    }

    /// `None`: the newest persisted sync point (its tree is in the store). `Some(p)`: what
    /// this peer finalized at `p`, if it still remembers (with the root when persisted).
    fn sync_point(&self, at: Option<u64>) -> Option<SyncPoint> {
        let persisted = self.persist.sync_point();
        match at {
            None => persisted.cloned(),
            Some(p) => {
                if let Some(sp) = persisted.filter(|sp| sp.position == p) {
                    return Some(sp.clone());
                }
                let first = self.chain_log.front()?.0;
                let i = usize::try_from(p.checked_sub(first)?).ok()?;
                let (pos, chain, state_hash) = *self.chain_log.get(i)?;
                (pos == p).then_some(SyncPoint {
                    position: p,
                    chain,
                    state_hash,
                    root: None,
                })
            }
        }
    }

    fn api_answer(&self, q: &ApiQuery) -> (&'static str, String) {
        const JSON: &str = "application/json";
        let ledger = self.peer.ledger();
        match q {
            ApiQuery::Status => (JSON, status_json(&self.status())),
            ApiQuery::Account(n) => (
                JSON,
                ledger.account(cvx_protocol::Address(*n)).map_or_else(
                    || "null".to_owned(),
                    |a| {
                        serde_json::json!({
                            "address": n,
                            "key": a.key.to_hex(),
                            "balance": a.balance.get(),
                            "sequence": a.sequence,
                        })
                        .to_string()
                    },
                ),
            ),
            ApiQuery::Peer(k) => (
                JSON,
                ledger.peer(k).map_or_else(
                    || "null".to_owned(),
                    |p| {
                        serde_json::json!({
                            "key": p.key.to_hex(),
                            "controller": p.controller.0,
                            "stake": p.stake.get(),
                            "host": p.host.as_ref().map(|h| h.as_str().to_owned()),
                            "last_block_time": p.last_block_time.0,
                        })
                        .to_string()
                    },
                ),
            ),
            ApiQuery::Metrics => ("text/plain; version=0.0.4", self.metrics()),
        }
    }

    fn metrics(&self) -> String {
        use std::fmt::Write as _;
        let st = self.status();
        let stats = self.peer.stats();
        let sh = &self.ctx.shared;
        let mut m = String::new();
        let mut g = |name: &str, help: &str, kind: &str, v: u64| {
            let _ = writeln!(
                m,
                "# HELP cvx_peer_{name} {help}\n# TYPE cvx_peer_{name} {kind}\ncvx_peer_{name} {v}"
            );
        };
        g(
            "proposal",
            "Proposal point of the own order.",
            "gauge",
            st.proposal,
        );
        g(
            "consensus",
            "Consensus point of the own order.",
            "gauge",
            st.consensus,
        );
        g(
            "finality",
            "Finality point (blocks executed).",
            "gauge",
            st.finality,
        );
        g(
            "in_consensus",
            "1 while the peer can take part in consensus (else clients get NETWORK).",
            "gauge",
            u64::from(st.in_consensus),
        );
        g(
            "connections_outgoing",
            "Outgoing connections (count only: the list is never revealed).",
            "gauge",
            u64::from(st.outgoing),
        );
        g(
            "connections_incoming",
            "Incoming connections.",
            "gauge",
            u64::from(st.incoming),
        );
        g(
            "mempool",
            "Transactions waiting for a block.",
            "gauge",
            self.peer.mempool_len() as u64,
        );
        g(
            "finalized_tx_total",
            "Transactions finalized since start.",
            "counter",
            self.finalized_tx,
        );
        g(
            "frames_in_total",
            "Frames received.",
            "counter",
            sh.frames_in.load(Ordering::Relaxed),
        );
        g(
            "belief_orders_sent_total",
            "Orders sent in beliefs (deltas: only what a connection does not hold).",
            "counter",
            sh.belief_orders_sent.load(Ordering::Relaxed),
        );
        g(
            "belief_orders_saved_total",
            "Orders that whole beliefs would have sent on top of the deltas.",
            "counter",
            sh.belief_orders_saved.load(Ordering::Relaxed),
        );
        g(
            "ingress_refused_total",
            "Client transactions refused at ingress (FORMAT, SEQUENCE, SIGNATURE, LOAD, NETWORK...).",
            "counter",
            sh.refused_ingress.load(Ordering::Relaxed),
        );
        g(
            "state_synced_from",
            "Position this peer joined at by state sync (0: it did not join by state sync).",
            "gauge",
            self.synced_from,
        );
        g(
            "start_position",
            "Ledger height this process started at (0: genesis; else its store or a state sync).",
            "gauge",
            self.start_position,
        );
        g(
            "blocks_executed_total",
            "Blocks executed by this process (never the history before its start position).",
            "counter",
            self.executed,
        );
        g(
            "gc_runs_total",
            "Store garbage collections completed.",
            "counter",
            self.gc.runs.load(Ordering::Relaxed),
        );
        g(
            "gc_bytes_reclaimed_total",
            "Store bytes reclaimed by garbage collection.",
            "counter",
            self.gc.reclaimed.load(Ordering::Relaxed),
        );
        g(
            "store_bytes",
            "Bytes used in the store file (records and index).",
            "gauge",
            sh.store.stats().map_or(0, |s| s.used_bytes),
        );
        g(
            "state_nodes_served_total",
            "State-tree nodes served to syncing peers.",
            "counter",
            sh.state_nodes_served.load(Ordering::Relaxed),
        );
        g(
            "state_requests_limited_total",
            "State requests answered LOAD (a connection over its per-second budget).",
            "counter",
            sh.state_requests_limited.load(Ordering::Relaxed),
        );
        g(
            "orders_signed_total",
            "Own orders signed.",
            "counter",
            stats.orders_signed,
        );
        g(
            "blocks_signed_total",
            "Own blocks signed.",
            "counter",
            stats.blocks_signed,
        );
        g(
            "orders_accepted_total",
            "Orders accepted from other peers.",
            "counter",
            stats.orders_accepted,
        );
        g(
            "unlinkable_total",
            "Merges that found an order they could not line up.",
            "counter",
            stats.unlinkable,
        );
        g(
            "bad_signer_signatures_total",
            "Signatures from the signer that did not verify.",
            "counter",
            stats.bad_signer_signatures,
        );
        let _ = writeln!(
            m,
            "# HELP cvx_peer_signer_refusals_total Signer refusals by code.\n# TYPE cvx_peer_signer_refusals_total counter"
        );
        for (code, n) in &stats.refusals {
            let _ = writeln!(m, "cvx_peer_signer_refusals_total{{code=\"{code}\"}} {n}");
        }
        let _ = writeln!(
            m,
            "# HELP cvx_peer_dropped_total Inputs dropped by the consensus machine, by reason.\n# TYPE cvx_peer_dropped_total counter"
        );
        for (why, n) in &stats.dropped {
            let _ = writeln!(m, "cvx_peer_dropped_total{{reason=\"{why:?}\"}} {n}");
        }
        m
    }

    fn status(&self) -> Status {
        let (proposal, consensus, finality) = self.peer.points();
        let outgoing = self.conns.values().filter(|c| c.dialed.is_some()).count();
        let incoming = self.conns.len() - outgoing;
        Status {
            peer: self.settings.key,
            proposal,
            consensus,
            finality,
            state_root: self.peer.ledger().state_hash(),
            in_consensus: self.ctx.shared.in_consensus.load(Ordering::Relaxed),
            outgoing: u32::try_from(outgoing).unwrap_or(u32::MAX),
            incoming: u32::try_from(incoming).unwrap_or(u32::MAX),
        }
    }

    fn carry_out(&mut self, acts: Vec<Action>) -> Result<(), NodeError> {
        for a in acts {
            match a {
                Action::Sign { id, request } => {
                    self.sign_pending.insert(id);
                    let (reply, rx) = oneshot::channel();
                    if self
                        .ctx
                        .signer
                        .try_send(SignJob { request, reply })
                        .is_err()
                    {
                        let acts = self.peer.handle(
                            now(),
                            Event::SignatureReturned {
                                id,
                                result: Err(Refusal {
                                    code: cvx_protocol::policy::RefuseCode::StateUnavailable,
                                    detail: "signer queue full".into(),
                                }),
                            },
                        );
                        self.carry_out(acts)?;
                        continue;
                    }
                    let inputs = self.ctx.inputs.clone();
                    tokio::spawn(async move {
                        let result = rx.await.unwrap_or_else(|_| Err("signer task gone".into()));
                        let _ = inputs.send(Input::Signed { id, result }).await;
                    });
                }
                Action::Broadcast(consensus::Message::Belief(b)) => {
                    // Deltas: each connection gets the orders it does not hold yet (and
                    // the whole belief every few seconds); one encoding per distinct set.
                    let t = now().0;
                    let mut frames: HashMap<Vec<(PublicKey, u64)>, Arc<Vec<u8>>> = HashMap::new();
                    let total = b.orders.len() as u64;
                    for c in self.conns.values_mut().filter(|c| c.proven.is_some()) {
                        let Some(d) = c.known.outgoing(&b, t) else {
                            self.ctx
                                .shared
                                .belief_orders_saved
                                .fetch_add(total, Ordering::Relaxed);
                            continue;
                        };
                        let n = d.orders.len() as u64;
                        self.ctx
                            .shared
                            .belief_orders_sent
                            .fetch_add(n, Ordering::Relaxed);
                        self.ctx
                            .shared
                            .belief_orders_saved
                            .fetch_add(total - n, Ordering::Relaxed);
                        let sig: Vec<(PublicKey, u64)> = d
                            .orders
                            .iter()
                            .map(|s| (s.order.peer, s.order.timestamp.0))
                            .collect();
                        let frame = frames.entry(sig).or_insert_with(|| {
                            Arc::new(cvx_protocol::peer_wire::encode_frame(&Message::Belief(d)))
                        });
                        let _ = c.tx.try_send(Arc::clone(frame));
                    }
                }
                Action::Broadcast(m) => {
                    let frame = Arc::new(cvx_protocol::peer_wire::encode_frame(&to_wire(m)));
                    for c in self.conns.values().filter(|c| c.proven.is_some()) {
                        let _ = c.tx.try_send(Arc::clone(&frame));
                    }
                }
                Action::Send { to, msg } => self.send(to, &to_wire(msg)),
                Action::Persist(snap) => {
                    self.persist
                        .save(&snap, self.ctx.shared.network.0, false)
                        .map_err(|e| self.persist.error(&e))?;
                }
                Action::Finalized(f) => self.on_finalized(&f),
                Action::Halted(fork) => {
                    tracing::error!(?fork, "fork detected: consensus halted");
                    return Err(NodeError::Halted(format!("{fork:?}")));
                }
            }
        }
        Ok(())
    }

    fn on_finalized(&mut self, f: &consensus::Finalized) {
        let outcomes: Vec<TxOutcome> = match &f.outcome {
            BlockOutcome::Applied(o) => o.clone(),
            BlockOutcome::Rejected(_) => vec![TxOutcome::Failed(ErrorCode::State); f.tx_ids.len()],
        };
        for (i, (id, outcome)) in f.tx_ids.iter().zip(outcomes).enumerate() {
            let r = TxResult {
                id: *id,
                block_position: f.position,
                index: u32::try_from(i).unwrap_or(u32::MAX),
                outcome,
            };
            self.finalized_tx += 1;
            if let Some(conns) = self.waiting.remove(id) {
                let m = Message::Submitted {
                    id: *id,
                    result: Ok(r.clone()),
                };
                for c in conns {
                    self.send(c, &m);
                }
            }
            self.results.insert(*id, r);
            self.results_order.push_back(*id);
            while self.results_order.len() > RESULTS_KEPT {
                if let Some(old) = self.results_order.pop_front() {
                    self.results.remove(&old);
                }
            }
        }
        self.executed += 1;
        let height = f.position + 1;
        let chain = match self.chain_log.back() {
            Some((h, c, _)) if *h == f.position => Some(cvx_protocol::hash::chain_step(c, &f.id)),
            _ => chain_at_height(&self.peer, height),
        };
        match chain {
            Some(c) => {
                self.chain_log.push_back((height, c, f.state_hash));
                while self.chain_log.len() > CHAIN_LOG {
                    self.chain_log.pop_front();
                }
            }
            None => self.chain_log.clear(),
        }
        if let Ok(mut g) = self.ctx.shared.state.write() {
            *g = Arc::new(self.peer.ledger().clone());
        }
    }

    /// Candidates for outgoing connections: hosts registered on-chain for staked peers
    /// (not ourselves), and the operator's bootstrap hosts.
    fn candidates(&self) -> Vec<Candidate> {
        let ledger = self.peer.ledger();
        let mut v: Vec<Candidate> = ledger
            .peers()
            .filter(|p| p.key != self.settings.key && !p.stake.is_zero())
            .filter_map(|p| {
                p.host.as_ref().map(|h| Candidate {
                    host: h.as_str().to_owned(),
                    key: Some(p.key),
                    stake: p.stake.get(),
                })
            })
            .collect();
        let own_host = ledger
            .peer(&self.settings.key)
            .and_then(|p| p.host.as_ref().map(|h| h.as_str().to_owned()));
        let mean = if v.is_empty() {
            1
        } else {
            v.iter().map(|c| c.stake).sum::<u64>() / v.len() as u64
        };
        for b in &self.settings.bootstrap {
            if !v.iter().any(|c| &c.host == b) && own_host.as_deref() != Some(b.as_str()) {
                v.push(Candidate {
                    host: b.clone(),
                    key: None,
                    stake: mean,
                });
            }
        }
        v
    }

    fn housekeeping(&mut self) {
        let t = now().0;
        self.gc.poll(self.persist.store());
        // Followers that the ledger has staked since they connected now count (and peers
        // whose stake was withdrawn stop counting).
        let ledger = self.peer.ledger();
        for c in self.conns.values_mut() {
            let Some(k) = c.proven else { continue };
            let stake = ledger.peer(&k).map_or(0, |p| p.stake.get());
            if stake > 0 && c.key.is_none() {
                tracing::info!(peer = %k, "a connected follower is staked now: its orders count");
                c.key = Some(k);
                if let Some(h) = &c.dialed {
                    self.manager.on_connected(t, h, stake);
                }
            } else if stake == 0 && c.key.is_some() {
                c.key = None;
            }
        }
        // Taking part: the stake of peers heard recently, with our own, reaches the
        // consensus threshold (2/3 of the total).
        let ledger = self.peer.ledger();
        let total: u128 = ledger.peers().map(|p| u128::from(p.stake.get())).sum();
        let mut heard: HashSet<PublicKey> = self
            .conns
            .values()
            .filter(|c| t.saturating_sub(c.heard_ms) <= HEARD_WINDOW_MS)
            .filter_map(|c| c.key)
            .collect();
        heard.insert(self.settings.key);
        let have: u128 = heard
            .iter()
            .filter_map(|k| ledger.peer(k))
            .map(|p| u128::from(p.stake.get()))
            .sum();
        let ok = total > 0 && have * 3 > total * 2;
        // A stall while taking part: say why, at most every 5 s (docs/operations.md).
        let fin = self.peer.points().2;
        if fin != self.stall.0 {
            self.stall = (fin, t, t);
        } else if ok
            && self.peer.has_work_pending()
            && t.saturating_sub(self.stall.1) >= 3_000
            && t.saturating_sub(self.stall.2) >= 5_000
        {
            self.stall.2 = t;
            tracing::warn!(
                finality = fin,
                stalled_ms = t - self.stall.1,
                report = %self.peer.stall_report(),
                "finality is not advancing"
            );
        }
        let was = self.ctx.shared.in_consensus.swap(ok, Ordering::Relaxed);
        if was != ok {
            tracing::info!(in_consensus = ok, "consensus participation changed");
        }
        // Outgoing connections.
        let cands = self.candidates();
        if let Some(victim) = self.manager.rotate(t, &cands) {
            let ids: Vec<ConnId> = self
                .conns
                .iter()
                .filter(|(_, c)| c.dialed.as_deref() == Some(victim.as_str()))
                .map(|(id, _)| *id)
                .collect();
            for id in ids {
                self.send(id, &Message::Goodbye);
                self.conns.remove(&id);
            }
            self.manager.on_closed(&victim);
        }
        for host in self.manager.plan(t, &cands) {
            let expect = cands.iter().find(|c| c.host == host).and_then(|c| c.key);
            tokio::spawn(dial(host, expect, self.ctx.clone()));
        }
    }
}

/// A status as one JSON object (counts only: never the list of connections).
#[must_use]
pub fn status_json(s: &Status) -> String {
    serde_json::json!({
        "peer": s.peer.to_hex(),
        "proposal": s.proposal,
        "consensus": s.consensus,
        "finality": s.finality,
        "state_root": s.state_root.to_hex(),
        "in_consensus": s.in_consensus,
        "outgoing": s.outgoing,
        "incoming": s.incoming,
    })
    .to_string()
}

fn to_wire(m: consensus::Message) -> Message {
    match m {
        consensus::Message::Belief(b) => Message::Belief(b),
        consensus::Message::Block(b) => Message::Block(Arc::unwrap_or_clone(b)),
        consensus::Message::GetBlocks(mut ids) => {
            ids.truncate(cvx_protocol::peer_wire::MAX_REQUEST_IDS);
            Message::GetBlocks(BoundedVec::try_from_vec(ids).unwrap_or_default())
        }
        consensus::Message::GetChain(from) => Message::GetBlockIds {
            from,
            count: u32::try_from(cvx_protocol::peer_wire::MAX_BLOCK_IDS).unwrap_or(1024),
        },
        consensus::Message::Chain { start, mut ids } => {
            ids.truncate(cvx_protocol::peer_wire::MAX_BLOCK_IDS);
            Message::BlockIds {
                from: start,
                ids: BoundedVec::try_from_vec(ids).unwrap_or_default(),
            }
        }
    }
}

async fn signer_task(mut signer: SignerClient, mut jobs: mpsc::Receiver<SignJob>) {
    while let Some(job) = jobs.recv().await {
        let r = signer.sign(job.request).await.map_err(|e| e.to_string());
        if let Err(e) = &r {
            tracing::error!(error = %e, "signer request failed");
        }
        let _ = job.reply.send(r);
    }
}

async fn accept_loop(listener: TcpListener, ctx: Ctx) {
    loop {
        match listener.accept().await {
            Ok((stream, _addr)) => {
                let n = ctx.shared.incoming.load(Ordering::Relaxed);
                if usize::try_from(n).unwrap_or(usize::MAX) >= ctx.shared.max_connections {
                    drop(stream);
                    continue;
                }
                ctx.shared.incoming.fetch_add(1, Ordering::Relaxed);
                let c = ctx.clone();
                tokio::spawn(async move {
                    connection(stream, None, None, c.clone()).await;
                    c.shared.incoming.fetch_sub(1, Ordering::Relaxed);
                });
            }
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

async fn dial(host: String, expect: Option<PublicKey>, ctx: Ctx) {
    let r = tokio::time::timeout(HELLO_TIMEOUT, TcpStream::connect(&host)).await;
    match r {
        Ok(Ok(stream)) => connection(stream, Some(host), expect, ctx).await,
        _ => {
            tracing::debug!(%host, "dial failed");
            let _ = ctx.inputs.send(Input::DialFailed { host }).await;
        }
    }
}

/// One connection, either direction: handshake, then read frames into the loop.
async fn connection(
    stream: TcpStream,
    dialed: Option<String>,
    expect: Option<PublicKey>,
    ctx: Ctx,
) {
    let _ = stream.set_nodelay(true);
    let conn = ConnId(ctx.shared.next_conn.fetch_add(1, Ordering::Relaxed));
    let (mut rd, mut wr) = stream.into_split();
    let token = random_token();
    let hello = Message::Hello(Hello {
        version: PEER_WIRE_VERSION,
        network: ctx.shared.network,
        role: Role::Peer(ctx.shared.key),
        challenge: token,
        time: now(),
    });
    if net::write_msg(&mut wr, &hello).await.is_err() {
        return fail_dial(dialed, &ctx).await;
    }
    let Ok(Message::Hello(theirs)) = net::read_frame(&mut rd, HELLO_TIMEOUT, HELLO_TIMEOUT).await
    else {
        return fail_dial(dialed, &ctx).await;
    };
    if theirs.version != PEER_WIRE_VERSION || theirs.network != ctx.shared.network {
        let _ = net::write_msg(
            &mut wr,
            &error_frame(ErrorCode::Network, "another network or wire version"),
        )
        .await;
        return fail_dial(dialed, &ctx).await;
    }
    let claimed = match theirs.role {
        Role::Peer(k) if k != ctx.shared.key => Some(k),
        Role::Peer(_) => return fail_dial(dialed, &ctx).await, // ourselves
        Role::Client => None,
    };
    if let (Some(e), Some(c)) = (expect, claimed)
        && e != c
    {
        tracing::debug!("dialled host answered with another peer key");
        return fail_dial(dialed, &ctx).await;
    }
    let (wtx, mut wrx) = mpsc::channel::<Arc<Vec<u8>>>(WRITE_QUEUE);
    tokio::spawn(async move {
        while let Some(frame) = wrx.recv().await {
            if wr.write_all(&frame).await.is_err() {
                break;
            }
        }
        let _ = wr.shutdown().await;
    });
    if ctx
        .inputs
        .send(Input::Opened {
            conn,
            tx: wtx.clone(),
            dialed: dialed.clone(),
        })
        .await
        .is_err()
    {
        return;
    }
    // Answer their challenge through the signer (only if they are a peer: clients do not
    // ask, and the signer refuses zero tokens anyway).
    if let Some(k) = claimed
        && theirs.challenge.0 != [0; 32]
    {
        let (reply, rx) = oneshot::channel();
        let response = ChallengeResponse {
            challenger: k,
            responder: ctx.shared.key,
            token: theirs.challenge,
        };
        let req = Request {
            network: ctx.shared.network,
            body: SignRequest::ChallengeResponse(response.clone()),
        };
        if ctx
            .signer
            .send(SignJob {
                request: req,
                reply,
            })
            .await
            .is_ok()
            && let Ok(Ok(Ok(signature))) = rx.await
        {
            let proof = Message::Proof(SignedChallengeResponse {
                response,
                signature,
            });
            let _ = wtx
                .send(Arc::new(cvx_protocol::peer_wire::encode_frame(&proof)))
                .await;
        }
    }
    let idle = if claimed.is_some() {
        PEER_IDLE
    } else {
        CLIENT_IDLE
    };
    let why = read_loop(&mut rd, conn, claimed, token, &wtx, &ctx, idle).await;
    tracing::debug!(conn = conn.0, why, "connection closed");
    let _ = ctx.inputs.send(Input::Closed { conn }).await;
}

async fn fail_dial(dialed: Option<String>, ctx: &Ctx) {
    if let Some(host) = dialed {
        let _ = ctx.inputs.send(Input::DialFailed { host }).await;
    }
}

async fn read_loop(
    rd: &mut tokio::net::tcp::OwnedReadHalf,
    conn: ConnId,
    claimed: Option<PublicKey>,
    token: Token,
    wtx: &mpsc::Sender<Arc<Vec<u8>>>,
    ctx: &Ctx,
    idle: Duration,
) -> &'static str {
    let reply = |m: &Message| {
        let _ = wtx.try_send(Arc::new(cvx_protocol::peer_wire::encode_frame(m)));
    };
    let mut state_budget = Budget::new(STATE_REQUESTS_PER_SEC);
    loop {
        let msg = match net::read_frame(rd, idle, FRAME_BODY).await {
            Ok(m) => m,
            Err(FrameError::Io(_)) => return "closed",
            Err(e) => {
                let code = match e {
                    FrameError::Slow(_) => ErrorCode::Timeout,
                    _ => ErrorCode::Format,
                };
                reply(&error_frame(code, &e.to_string()));
                return "bad frame";
            }
        };
        ctx.shared.frames_in.fetch_add(1, Ordering::Relaxed);
        match msg {
            Message::Proof(p) => {
                let Some(k) = claimed else {
                    return "proof from a client";
                };
                let r = &p.response;
                let good = r.challenger == ctx.shared.key
                    && r.responder == k
                    && r.token == token
                    && k.verify(&ctx.shared.network, r, &p.signature).is_ok();
                if !good {
                    reply(&error_frame(ErrorCode::Trust, "bad proof"));
                    return "bad proof";
                }
                if ctx
                    .inputs
                    .send(Input::Proven { conn, key: k })
                    .await
                    .is_err()
                {
                    return "shutdown";
                }
            }
            Message::Submit(tx) => {
                let id = tx.id();
                if let Err(code) = check_tx(&ctx.shared, &tx) {
                    ctx.shared.refused_ingress.fetch_add(1, Ordering::Relaxed);
                    reply(&Message::Submitted {
                        id,
                        result: Err(code),
                    });
                    continue;
                }
                if ctx.inputs.send(Input::Submit { conn, tx }).await.is_err() {
                    return "shutdown";
                }
            }
            Message::Goodbye => return "goodbye",
            Message::Hello(_) | Message::Submitted { .. } | Message::Answer(_) => {
                reply(&error_frame(ErrorCode::Format, "unexpected message"));
                return "protocol violation";
            }
            Message::Error { .. } => return "error from the other side",
            Message::GetState(ids) => {
                if state_budget.take(Instant::now()) {
                    reply(&serve_state(&ctx.shared, &ids));
                } else {
                    ctx.shared
                        .state_requests_limited
                        .fetch_add(1, Ordering::Relaxed);
                    reply(&error_frame(
                        ErrorCode::Load,
                        &format!(
                            "more than {STATE_REQUESTS_PER_SEC} state requests per second on this connection; wait and ask again"
                        ),
                    ));
                }
            }
            // Unsolicited state nodes are ignored (a join uses its own connections).
            Message::State(_) => {}
            m => {
                if ctx.inputs.send(Input::Wire { conn, msg: m }).await.is_err() {
                    return "shutdown";
                }
            }
        }
    }
}

/// A token bucket: `per_sec` tokens a second, at most `per_sec` saved up.
struct Budget {
    per_sec: u32,
    tokens: f64,
    at: Instant,
}

impl Budget {
    fn new(per_sec: u32) -> Self {
        Self {
            per_sec,
            tokens: f64::from(per_sec),
            at: Instant::now(),
        }
    }

    /// Take one token if there is one.
    fn take(&mut self, now: Instant) -> bool {
        let cap = f64::from(self.per_sec);
        let earned = now.saturating_duration_since(self.at).as_secs_f64() * cap;
        self.tokens = (self.tokens + earned).min(cap);
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// Answer a `GetState`: the requested state-tree nodes this peer holds (malformed records
/// or other record kinds are never served), within the frame cap.
fn serve_state(
    shared: &Shared,
    ids: &BoundedVec<Hash, { cvx_protocol::peer_wire::MAX_REQUEST_IDS }>,
) -> Message {
    // Leave room for the frame's own overhead below MAX_FRAME.
    const BUDGET: usize = cvx_protocol::peer_wire::MAX_FRAME - 64 * 1024;
    let mut out = Vec::new();
    let mut used = 0usize;
    for id in ids.iter().take(MAX_STATE_NODES) {
        let h = cvx_etch::Hash(id.0);
        let Ok(Some(bytes)) = shared.store.get(&h) else {
            continue;
        };
        if bytes.len() > MAX_STATE_NODE
            || used + bytes.len() + 8 > BUDGET
            || cvx_etch::merkle::decode_node(&h, &bytes).is_err()
        {
            continue;
        }
        used += bytes.len() + 8;
        if let Ok(b) = BoundedVec::try_from_vec(bytes) {
            out.push(b);
        }
    }
    shared
        .state_nodes_served
        .fetch_add(out.len() as u64, Ordering::Relaxed);
    Message::State(BoundedVec::try_from_vec(out).unwrap_or_default())
}

/// Ingress check of a client transaction against the finalized ledger: the origin
/// exists, the sequence is ahead (not too far), the signature verifies strictly.
fn check_tx(shared: &Shared, tx: &SignedTransaction) -> Result<(), ErrorCode> {
    let state = shared.state();
    let acc = state.account(tx.tx.origin).ok_or(ErrorCode::Nobody)?;
    if tx.tx.sequence <= acc.sequence
        || tx.tx.sequence > acc.sequence.saturating_add(MAX_SEQUENCE_AHEAD)
    {
        return Err(ErrorCode::Sequence);
    }
    acc.key
        .verify(&shared.network, &tx.tx, &tx.signature)
        .map_err(|_| ErrorCode::Signature)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_request_budget_allows_a_burst_then_the_rate() {
        let mut b = Budget::new(64);
        let t0 = b.at;
        assert_eq!((0..100).filter(|_| b.take(t0)).count(), 64, "a burst of 64");
        assert!(!b.take(t0));
        // 1/64 s later: one more; a second later: a full burst again, never more.
        assert!(b.take(t0 + Duration::from_millis(16)));
        assert!(!b.take(t0 + Duration::from_millis(16)));
        let later = t0 + Duration::from_secs(10);
        assert_eq!((0..100).filter(|_| b.take(later)).count(), 64);
        // A clock that goes backwards earns nothing.
        assert!(!b.take(t0));
    }
}
