//! The runtime of a networked peer: it owns the consensus state machine, the cvx-etch
//! store, the signer session and the sockets, and carries out the machine's actions.
//!
//! Tasks: one main loop (the only owner of [`consensus::Peer`]), the signer session (the
//! only owner of the signer socket, [`crate::signer_session`]), one accept loop, one reader and one writer task per
//! connection. Readers check every frame (caps, timeouts, canonical decode) and every
//! submitted transaction (sequence, strict signature) before anything reaches the loop.
//!
//! Modules, one concern each: [`main_loop`] (the loop and the actions it carries out),
//! [`connection`] (accept, dial, handshake, the reader of each connection), [`client`]
//! (submitted transactions), [`answers`] (queries, status and the HTTP API's answers),
//! [`metrics`], [`housekeeping`] (participation, stalls, outgoing connections), [`join`]
//! (joining by state sync) and [`signer_jobs`] (the consensus machine's sign requests, held
//! while the signer session is down).

mod answers;
mod client;
mod connection;
mod housekeeping;
mod join;
mod main_loop;
mod metrics;
mod signer_jobs;
mod write_queue;

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use cvx_etch::Store;
use cvx_protocol::Token;
use cvx_protocol::ledger::{Genesis, SignedTransaction, TxResult};
use cvx_protocol::peer_wire::Message;
use cvx_protocol::policy::Request;
use cvx_protocol::{BoundedString, Canonical, ErrorCode, Hash, NetworkId, PublicKey};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

use crate::api::ApiRequest;
use crate::config::Settings;
use crate::conn::ConnManager;
use crate::net;
use crate::signer_session::{self, SessionSettings, Signed, SignerSession};
use cvx_consensus::ledger::State;
use cvx_consensus::{self as consensus, ConnId, RequestId};

pub use crate::clock::now;
pub use crate::error::NodeError;
pub use answers::status_json;
pub use join::JOIN_WAIT_ROUNDS;

use connection::accept_loop;
use join::sync_to_network;

/// How long the other side's Hello may take.
pub const HELLO_TIMEOUT: Duration = Duration::from_secs(5);
/// A peer connection with no frame for this long is closed (beliefs flow every 200 ms).
pub const PEER_IDLE: Duration = Duration::from_secs(30);
/// A client connection with no frame for this long is closed.
pub const CLIENT_IDLE: Duration = Duration::from_secs(120);
/// A started frame must complete within this.
pub const FRAME_BODY: Duration = Duration::from_secs(10);
/// Inputs queued for the main loop at most (beyond: the connection readers wait, so
/// their sockets are not read: back-pressure, nothing dropped).
pub const INPUT_QUEUE: usize = 65_536;
/// Bytes of frames queued for the main loop at most (charged at [`INPUT_EXPANSION`] times
/// the frame's length, for the decoded form; beyond: the readers wait, as above).
pub const INPUT_BYTES: usize = 64 * 1024 * 1024;
/// A decoded message takes at most this many times its frame's bytes (public keys are
/// kept decompressed: 192 bytes for 32 on the wire).
pub const INPUT_EXPANSION: usize = 4;
/// Frames queued for one connection's writer at most (beyond: dropped).
pub const WRITE_QUEUE: usize = 4096;
/// Bytes queued for one connection's writer at most (beyond: dropped; a frame always fits
/// an empty queue).
pub const WRITE_QUEUE_BYTES: usize = 16 * 1024 * 1024;
/// Bytes queued for all connections' writers together at most (beyond: dropped).
pub const WRITE_QUEUES_BYTES: usize = 128 * 1024 * 1024;
/// A peer that sent nothing for this long no longer counts towards taking part.
pub const HEARD_WINDOW_MS: u64 = 3_000;
/// Finalized results remembered for `Query::Transaction`.
pub const RESULTS_KEPT: usize = 200_000;
/// Connections told the result of one pending transaction at most (a client resubmitting
/// the same transaction is told once; others beyond the bound ask with a query).
pub const MAX_WAITERS_PER_TX: usize = 16;
/// Sequence numbers accepted ahead of the account's current one.
pub const MAX_SEQUENCE_AHEAD: u64 = 1_000;
/// `GetState` requests one connection may make per second (and in a burst): each costs up
/// to `MAX_STATE_NODES` store reads, so a remote party must not be able to ask without
/// bound. A joining peer asks one round at a time; the join backs off on `LOAD`.
pub const STATE_REQUESTS_PER_SEC: u32 = 64;

/// What connection tasks and the loop share.
#[derive(Debug)]
struct Shared {
    network: NetworkId,
    key: PublicKey,
    /// The finalized ledger (replaced after each finalized block).
    state: RwLock<Arc<State>>,
    in_consensus: AtomicBool,
    /// The main loop is busy with a run-time resync (seconds): the HTTP API refuses
    /// submissions `NETWORK` itself meanwhile, instead of queueing them for the loop.
    resyncing: Arc<AtomicBool>,
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
    /// What is left of [`INPUT_BYTES`], in KiB.
    input_budget: Arc<tokio::sync::Semaphore>,
    /// Bytes queued for all connections' writers ([`WRITE_QUEUES_BYTES`]), and the
    /// frames dropped because a write queue was full.
    write: Arc<write_queue::WriteBudget>,
}

impl Shared {
    fn state(&self) -> Arc<State> {
        self.state
            .read()
            .map_or_else(|p| Arc::clone(&p.into_inner()), |g| Arc::clone(&g))
    }
}

/// What reaches the main loop.
enum Input {
    Opened {
        conn: ConnId,
        tx: write_queue::FrameTx,
        dialed: Option<String>,
    },
    Proven {
        conn: ConnId,
        key: PublicKey,
    },
    Wire {
        conn: ConnId,
        msg: Message,
        /// Its share of [`INPUT_BYTES`], given back when the loop drops the input.
        _budget: tokio::sync::OwnedSemaphorePermit,
    },
    Submit {
        conn: ConnId,
        tx: SignedTransaction,
        _budget: tokio::sync::OwnedSemaphorePermit,
    },
    Closed {
        conn: ConnId,
    },
    DialFailed {
        host: String,
    },
}

#[derive(Clone)]
struct Ctx {
    shared: Arc<Shared>,
    inputs: mpsc::Sender<Input>,
    signer: SignerSession,
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
    signer: SignerSession,
    signed: mpsc::Receiver<Signed>,
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
        let (signer, signed) = SignerSession::start(SessionSettings {
            socket: settings.signer_socket.clone(),
            key: settings.key,
            network,
            reply_timeout: signer_session::REPLY_TIMEOUT,
        })
        .await?;
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
            signed,
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
            signed,
            listener,
            api,
        } = self;
        let network = genesis.network_id();
        let cfg = consensus::Config::new(genesis, settings.key);
        let store = Arc::new(store);
        let mut persist =
            crate::persist::Persist::new(Arc::clone(&store), settings.data_dir.join("peer.etch"));
        let mut synced_from = 0;
        let peer = match persist.load(&cfg)? {
            Some(snap) => {
                let height = snap.ledger.height();
                tracing::info!(position = height, "restored from the store");
                let (snap, synced) =
                    join::resync_at_start(&settings, &cfg, &mut persist, &signer, snap).await?;
                synced_from = synced;
                consensus::Peer::restore(cfg.clone(), snap)
            }
            None if settings.state_sync => {
                let sources = settings.bootstrap.clone();
                let wait = (&signer, join::JOIN_WAIT);
                let snap = sync_to_network(&settings, &sources, &cfg, &mut persist, wait).await?;
                synced_from = snap.ledger.height();
                consensus::Peer::restore(cfg.clone(), snap)
            }
            None => consensus::Peer::new(cfg.clone()),
        };
        let start_position = peer.ledger().height();
        let chain_log = persist
            .sync_point()
            .filter(|sp| sp.position == start_position)
            .map(|sp| (sp.position, sp.chain, sp.state_hash))
            .or_else(|| {
                peer.chain_value_at(start_position)
                    .map(|c| (start_position, c, peer.ledger().state_hash()))
            })
            .into_iter()
            .collect();
        let shared = Arc::new(Shared {
            network,
            key: settings.key,
            state: RwLock::new(Arc::new(peer.ledger().clone())),
            in_consensus: AtomicBool::new(false),
            resyncing: Arc::default(),
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
            input_budget: Arc::new(tokio::sync::Semaphore::new(INPUT_BYTES / 1024)),
            write: Arc::default(),
        });
        let (in_tx, in_rx) = mpsc::channel::<Input>(INPUT_QUEUE);
        let ctx = Ctx {
            shared: Arc::clone(&shared),
            inputs: in_tx,
            signer,
        };
        tokio::spawn(accept_loop(listener, ctx.clone()));
        let (api_tx, api_rx) = mpsc::channel::<ApiRequest>(64);
        if let Some(l) = api {
            tokio::spawn(crate::api::serve(l, api_tx, Arc::clone(&shared.resyncing)));
        }
        let mut seed = [0u8; 8];
        let _ = getrandom::fill(&mut seed);
        let gc_interval_secs = settings.gc_interval_secs;
        let main = MainLoop {
            peer,
            ctx,
            settings,
            persist: crate::persist::Checkpoints::new(persist, network.0),
            conns: HashMap::new(),
            manager: ConnManager::new(8, u64::from_le_bytes(seed)),
            waiting: HashMap::new(),
            results: HashMap::new(),
            results_order: VecDeque::new(),
            sign_pending: HashMap::new(),
            sign_held: Vec::new(),
            finalized_tx: 0,
            stall: (0, now().0, 0),
            chain_log,
            synced_from,
            start_position,
            executed: 0,
            gc: crate::persist::PeriodicGc::new(gc_interval_secs),
            metrics: metrics::Instruments::new(),
            events: tokio::sync::broadcast::channel(EVENTS_BUFFERED).0,
            api_waiters: HashMap::new(),
            submitted_at: HashMap::new(),
            cfg,
            cert_cache: (None, None),
            resync: None,
            trust_refreshed: None,
        };
        main.run(in_rx, api_rx, signed, shutdown).await
    }
}

struct ConnState {
    tx: write_queue::FrameTx,
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
    /// The store's checkpoints, written on their own thread.
    persist: crate::persist::Checkpoints,
    conns: HashMap<ConnId, ConnState>,
    manager: ConnManager,
    waiting: HashMap<Hash, Vec<ConnId>>,
    results: HashMap<Hash, TxResult>,
    results_order: VecDeque<Hash>,
    /// Sign requests with the session, kept until answered (to ask again after a
    /// connection failure).
    sign_pending: HashMap<RequestId, (Request, std::time::Instant)>,
    /// Sign requests waiting for the session to be up again ([`signer_jobs`]).
    sign_held: Vec<(RequestId, Request)>,
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
    /// Histograms and signer outcomes for `/metrics`.
    metrics: metrics::Instruments,
    /// Finalized blocks for the API's event streams (JSON objects).
    events: tokio::sync::broadcast::Sender<Arc<str>>,
    /// API requests waiting for a transaction's result (`POST /v1/tx?wait=`).
    api_waiters: HashMap<Hash, Vec<tokio::sync::oneshot::Sender<crate::api::ApiReply>>>,
    /// When each pending client transaction reached this peer (finality latency).
    submitted_at: HashMap<Hash, std::time::Instant>,
    /// The machine's settings (a resync restores the machine with them).
    cfg: consensus::Config,
    /// The last certificate answered and when it was built ([`answers::CERT_REFRESH`]).
    cert_cache: (
        Option<std::time::Instant>,
        Option<Box<cvx_protocol::certificate::CertRequest>>,
    ),
    /// A resync the machine asked for (`Action::Resync`: finality, network finality),
    /// carried out by the loop between two inputs ([`join`]).
    resync: Option<(u64, u64)>,
    /// When this peer last presented its own certificate to its signer to re-confirm the
    /// signer's trusted stake table ([`TRUST_REFRESH_EVERY`]).
    trust_refreshed: Option<std::time::Instant>,
}

/// How often a peer in consensus presents a certificate of its own to its signer, which
/// re-confirms the signer's trusted stake table without moving its lock (docs/consensus.md
/// §7.5): far inside the 14-day trust period, so that a signer that runs keeps accepting
/// the certificates a later resync needs.
pub const TRUST_REFRESH_EVERY: Duration = Duration::from_secs(3600);

/// Finalized-block events buffered for the slowest event-stream client; one further
/// behind is told `lagged` and disconnected (see `crate::api`).
pub const EVENTS_BUFFERED: usize = 256;

/// API requests waiting for results at most (the API's own limits keep it far lower).
pub const MAX_API_WAITERS: usize = 4096;

/// Connections of proven but unstaked keys (e.g. peers that joined by state sync and wait
/// for their create-peer) that receive beliefs and blocks, at most; beyond, such a
/// connection is a plain client (bounds what anyone with a fresh key can make us send).
pub const MAX_FOLLOWERS: usize = 16;

/// Finalized positions remembered for confirmations ([`MainLoop::chain_log`]).
pub const CHAIN_LOG: usize = 4096;
