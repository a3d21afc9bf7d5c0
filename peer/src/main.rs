//! `cvx-peer`: parse arguments, call the library, print, map errors to exit codes.

#![forbid(unsafe_code)]

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{CommandFactory as _, FromArgMatches as _, Parser, Subcommand};
use cvx_peer::config::Settings;
use cvx_peer::exit::Exit;
use cvx_peer::net::client::PeerClient;
use cvx_peer::node::Node;
use cvx_protocol::Canonical;
use cvx_protocol::peer_wire::{Answer, Query};
use cvx_protocol::txfile::TxFile;

/// cvx-peer: a cvx peer (consensus, store, network); never holds a key.
#[derive(Debug, Parser)]
#[command(name = "cvx-peer", version)]
struct Cli {
    #[command(subcommand)]
    cmd: Option<Cmd>,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Run the peer (prints `listening ADDR` on stdout) inside its sandbox (Landlock to
    /// data_dir, seccomp allowlist).
    Run {
        /// The peer's config (peer.toml).
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
        /// Refuse to start unless Landlock is fully enforced.
        #[arg(long)]
        require_landlock: bool,
    },
    /// Submit a signed-transaction file (cvx-vault's output) and wait for its finalized
    /// result.
    Submit {
        /// The signed-transaction file.
        file: PathBuf,
        /// The peer to submit to.
        #[arg(long, value_name = "HOST:PORT")]
        peer: String,
        /// How long to wait for the result.
        #[arg(long, value_name = "SECS", default_value_t = 60)]
        timeout: u64,
    },
    /// Ask a peer about an account, a peer, a transaction or a state-sync point.
    #[command(subcommand)]
    Query(QueryCmd),
    /// Finality, state root, connection counts (JSON).
    Status {
        /// The peer to ask.
        #[arg(long, value_name = "HOST:PORT")]
        peer: String,
    },
    /// Breach button: lock the signer, then stop the peer (the peer is stopped even when
    /// the lock fails; the exit code names the step that failed).
    Halt {
        /// The peer's config (peer.toml): its signer socket and data_dir.
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
    },
    /// Collect the store's garbage once (peer stopped).
    Gc {
        /// The peer's config (peer.toml).
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
    },
    /// Test hook (tests/tests/peer_sandbox.rs): enter exactly `run`'s sandbox, do ACTION,
    /// print `allowed ACTION` or `denied ACTION: ERROR`.
    #[command(hide = true)]
    SandboxProbe {
        /// The peer's config.
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
        /// Refuse to start unless Landlock is fully enforced.
        #[arg(long)]
        require_landlock: bool,
        /// What to try.
        action: String,
        /// Its argument.
        arg: Option<String>,
    },
    /// Moved: the devnet is its own binary, `cvx-devnet` (same flags).
    #[command(hide = true, disable_help_flag = true)]
    Devnet {
        /// Whatever was passed.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
}

#[derive(Debug, Subcommand)]
enum QueryCmd {
    /// An account by address.
    Account {
        /// The account's address (a number).
        address: u64,
        /// The peer to ask.
        #[arg(long, value_name = "HOST:PORT")]
        peer: String,
    },
    /// A peer record by its public key.
    Peer {
        /// The peer's public key (hex).
        key: String,
        /// The peer to ask.
        #[arg(long, value_name = "HOST:PORT")]
        peer: String,
    },
    /// A finalized transaction's result by its id.
    Tx {
        /// The transaction id (hex).
        id: String,
        /// The peer to ask.
        #[arg(long, value_name = "HOST:PORT")]
        peer: String,
    },
    /// A state-sync point: position, chain value, state hash, tree root (what a joining
    /// peer syncs and confirms).
    Sync {
        /// `latest`, or a position.
        position: String,
        /// The peer to ask.
        #[arg(long, value_name = "HOST:PORT")]
        peer: String,
    },
}

/// The exit codes, for `--help`.
fn exit_codes() -> String {
    let mut s = "EXIT CODES:\n".to_owned();
    for e in Exit::ALL {
        s.push_str(&format!("  {:>3}  {}\n", e.code(), e.meaning()));
    }
    s
}

struct Failure(Exit, String);

fn usage(msg: &str) -> Failure {
    Failure(Exit::Usage, format!("{msg} (see cvx-peer --help)"))
}

fn out(text: &str) {
    let mut o = std::io::stdout().lock();
    let _ = o.write_all(text.as_bytes());
    let _ = o.flush();
}

fn num<T: std::str::FromStr>(name: &str, v: &str) -> Result<T, Failure> {
    v.parse()
        .map_err(|_| usage(&format!("{name} {v}: not a number")))
}

fn runtime() -> Result<tokio::runtime::Runtime, Failure> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| Failure(Exit::Usage, format!("cannot start the async runtime: {e}")))
}

async fn terminated() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = term => {}
    }
}

fn init_logs() {
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .with_max_level(tracing::Level::INFO)
        .try_init();
}

fn cmd_run(path: &Path, require_landlock: bool) -> Result<(), Failure> {
    let mut settings = Settings::load(path).map_err(|e| Failure(Exit::Config, e.to_string()))?;
    settings.require_landlock |= require_landlock;
    init_logs();
    // Before the runtime: every thread it starts inherits Landlock and seccomp.
    cvx_peer::sandbox::enter(&settings).map_err(|e| Failure(Exit::Sandbox, e.to_string()))?;
    let pidfile = settings.data_dir.join("cvx-peer.pid");
    let rt = runtime()?;
    rt.block_on(async {
        let node = Node::start(settings)
            .await
            .map_err(|e| Failure(Exit::from(&e), e.to_string()))?;
        let addr = node
            .local_addr()
            .map_err(|e| Failure(Exit::Bind, e.to_string()))?;
        let _ = std::fs::write(&pidfile, format!("{}\n", std::process::id()));
        out(&format!("listening {addr}\n"));
        if let Some(api) = node.api_addr() {
            out(&format!("api {api}\n"));
        }
        tracing::info!(%addr, network = %node.network(), "serving");
        let r = node
            .run(terminated())
            .await
            .map_err(|e| Failure(Exit::from(&e), e.to_string()));
        let _ = std::fs::remove_file(&pidfile);
        r
    })
}

/// Hidden test hook (tests/tests/peer_sandbox.rs): `sandbox-probe --config FILE ACTION
/// [ARG]` enters exactly `run`'s sandbox (same settings, same function, same runtime),
/// does ACTION and prints `allowed ACTION` or `denied ACTION: ERROR`. A forbidden call
/// must kill the process by SIGSYS; if it returns, exit 12 (`NOT KILLED`).
fn cmd_sandbox_probe(
    path: &Path,
    require_landlock: bool,
    name: &str,
    arg: Option<&str>,
) -> Result<(), Failure> {
    use cvx_peer::sandbox::{ProbeAction, ProbeOutcome};
    let action = ProbeAction::parse(name, arg).map_err(|e| usage(&e))?;
    let mut settings = Settings::load(path).map_err(|e| Failure(Exit::Config, e.to_string()))?;
    settings.require_landlock |= require_landlock;
    init_logs();
    cvx_peer::sandbox::enter(&settings).map_err(|e| Failure(Exit::Sandbox, e.to_string()))?;
    let rt = runtime()?;
    match rt.block_on(cvx_peer::sandbox::probe(action, &settings)) {
        ProbeOutcome::Allowed => out(&format!("allowed {name}\n")),
        ProbeOutcome::Denied(e) => out(&format!("denied {name}: {e}\n")),
        ProbeOutcome::NotKilled(r) => {
            return Err(Failure(
                Exit::Sandbox,
                format!("NOT KILLED: {name} returned {r}"),
            ));
        }
    }
    Ok(())
}

fn client_err(e: &cvx_peer::net::client::ClientError) -> Failure {
    Failure(Exit::Client, e.to_string())
}

fn cmd_submit(path: &Path, addr: &str, timeout: u64) -> Result<(), Failure> {
    let file = path.display();
    let bytes = std::fs::read(path).map_err(|e| Failure(Exit::Usage, format!("{file}: {e}")))?;
    let txf = TxFile::decode(&bytes).map_err(|e| {
        Failure(
            Exit::Usage,
            format!("{file}: not a cvx signed-transaction file: {e}"),
        )
    })?;
    let timeout = Duration::from_secs(timeout);
    let rt = runtime()?;
    rt.block_on(async {
        let mut c = PeerClient::connect(addr, Some(txf.network), timeout)
            .await
            .map_err(|e| match e {
                cvx_peer::net::client::ClientError::WrongNetwork { .. } => Failure(
                    Exit::TxFailed,
                    format!("{file} is for another network than the peer's: {e}"),
                ),
                e => client_err(&e),
            })?;
        let id = txf.signed.id();
        let answer = c.submit(txf.signed).await.map_err(|e| match e {
            // An error frame in answer to the submission (e.g. NETWORK naming the
            // peer's signer): a refusal, with the peer's reason.
            cvx_peer::net::client::ClientError::Refused { code, detail } => Failure(
                Exit::TxFailed,
                format!("the peer refused the transaction: {code}: {detail}"),
            ),
            e => client_err(&e),
        })?;
        match answer {
            Ok(r) => {
                let outcome = match r.outcome {
                    cvx_protocol::ledger::TxOutcome::Applied => "applied".to_owned(),
                    cvx_protocol::ledger::TxOutcome::Failed(code) => format!("failed {code}"),
                };
                out(&format!(
                    "{{\"id\":\"{}\",\"block\":{},\"index\":{},\"outcome\":\"{outcome}\"}}\n",
                    id.to_hex(),
                    r.block_position,
                    r.index
                ));
                if matches!(r.outcome, cvx_protocol::ledger::TxOutcome::Applied) {
                    Ok(())
                } else {
                    Err(Failure(Exit::TxFailed, format!("transaction {outcome}")))
                }
            }
            Err(code) => Err(Failure(
                Exit::TxFailed,
                format!("the peer refused the transaction: {code}"),
            )),
        }
    })
}

/// What to ask, and whom.
fn query_of(cmd: &QueryCmd) -> Result<(Query, &str), Failure> {
    Ok(match cmd {
        QueryCmd::Account { address, peer } => {
            (Query::Account(cvx_protocol::Address(*address)), peer)
        }
        QueryCmd::Peer { key, peer } => (
            Query::Peer(cvx_protocol::PublicKey::from_hex(key).map_err(|e| usage(&e))?),
            peer,
        ),
        QueryCmd::Tx { id, peer } => (
            Query::Transaction(cvx_protocol::Hash::from_hex(id).map_err(usage)?),
            peer,
        ),
        QueryCmd::Sync { position, peer } => (
            Query::SyncPoint(if position == "latest" {
                None
            } else {
                Some(num("POSITION", position)?)
            }),
            peer,
        ),
    })
}

fn cmd_query(q: Query, addr: &str) -> Result<(), Failure> {
    let rt = runtime()?;
    rt.block_on(async {
        let mut c = PeerClient::connect(addr, None, Duration::from_secs(10))
            .await
            .map_err(|e| client_err(&e))?;
        let a = c.query(q).await.map_err(|e| client_err(&e))?;
        let text = match a {
            Answer::Status(s) => cvx_peer::node::status_json(&s),
            Answer::Account(a) => match a {
                Some(a) => serde_json::json!({"key": a.key.to_hex(), "balance": a.balance.get(), "sequence": a.sequence}).to_string(),
                None => "null".into(),
            },
            Answer::Peer(p) => match p {
                Some(p) => serde_json::json!({"key": p.key.to_hex(), "controller": p.controller.0, "stake": p.stake.get(), "host": p.host.as_ref().map(|h| h.as_str().to_owned()), "last_block_time": p.last_block_time.0}).to_string(),
                None => "null".into(),
            },
            Answer::SyncPoint(sp) => match sp {
                Some(sp) => serde_json::json!({"position": sp.position, "chain": sp.chain.to_hex(), "state_hash": sp.state_hash.to_hex(), "root": sp.root.map(|r| r.to_hex())}).to_string(),
                None => "null".into(),
            },
            Answer::Transaction(t) => match t {
                Some(t) => serde_json::json!({"id": t.id.to_hex(), "block": t.block_position, "index": t.index, "outcome": format!("{:?}", t.outcome)}).to_string(),
                None => "null".into(),
            },
            // No `cvx-peer query` asks for a certificate; peers fetch them (node::join).
            Answer::Certificate(c) => match c {
                Some(c) => serde_json::json!({"anchor": c.certificate.anchor.position, "chain": c.certificate.anchor.chain.to_hex(), "votes": c.certificate.votes.len()}).to_string(),
                None => "null".into(),
            },
        };
        out(&format!("{text}\n"));
        Ok(())
    })
}

/// Collect the store's garbage once, with the peer stopped (a running peer holds the
/// store's lock, and collects periodically itself: `gc_interval_secs`).
fn cmd_gc(path: &Path) -> Result<(), Failure> {
    let settings = Settings::load(path).map_err(|e| Failure(Exit::Config, e.to_string()))?;
    let store_path = settings.data_dir.join("peer.etch");
    let store_err = |e: &cvx_etch::EtchError| {
        if e.kind() == cvx_etch::ErrorKind::Locked {
            Failure(
                Exit::Store,
                format!(
                    "{e} (the peer is running: it collects by itself every `gc_interval_secs`; stop it to run `cvx-peer gc`)"
                ),
            )
        } else {
            Failure(Exit::Store, format!("store {}: {e}", store_path.display()))
        }
    };
    if !store_path.exists() {
        return Err(Failure(
            Exit::Store,
            format!(
                "no store at {}: check `data_dir` in the config",
                store_path.display()
            ),
        ));
    }
    let (store, _) = cvx_etch::Store::open(&store_path).map_err(|e| store_err(&e))?;
    match cvx_peer::persist::collect_garbage(&store).map_err(|e| store_err(&e))? {
        Some(r) => out(&format!(
            "store collected: records {} -> {}, bytes {} -> {}\n",
            r.records_before, r.records_after, r.bytes_before, r.bytes_after
        )),
        None => out("store collection interrupted: the store is unchanged\n"),
    }
    store.close().map_err(|e| store_err(&e))?;
    Ok(())
}

/// How long halt's first step (connect to the signer, lock it) may take before halt goes on
/// to stop the peer: a signer that hangs, or whose connection slots are all held, must not
/// keep a breached peer running.
const HALT_LOCK_TIMEOUT: Duration = Duration::from_secs(5);

/// Halt, step 1: lock the signer through its socket.
fn lock_signer(settings: &Settings) -> Result<(), String> {
    let rt = runtime().map_err(|Failure(_, e)| e)?;
    rt.block_on(async {
        let lock = async {
            cvx_peer::signer_session::lock(&settings.signer_socket)
                .await
                .map_err(|e| e.to_string())
        };
        tokio::time::timeout(HALT_LOCK_TIMEOUT, lock)
            .await
            .unwrap_or_else(|_| {
                Err(format!(
                    "the signer did not answer within {HALT_LOCK_TIMEOUT:?}"
                ))
            })
    })
}

/// Halt, step 2: stop the running peer (SIGKILL to the pid in `data_dir/cvx-peer.pid`,
/// once `/proc` confirms that pid is a cvx-peer: a stale pid file never kills another
/// process). `Ok(None)`: no peer was running.
fn stop_peer(settings: &Settings) -> Result<Option<i32>, String> {
    let pidfile = settings.data_dir.join("cvx-peer.pid");
    let Some(pid) = std::fs::read_to_string(&pidfile)
        .ok()
        .and_then(|s| s.trim().parse::<i32>().ok())
    else {
        return Ok(None);
    };
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
    if !comm.trim().starts_with("cvx-peer") {
        return Ok(None);
    }
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .map_err(|e| {
        format!("cannot stop peer pid {pid}: {e} (run halt as root or as the peer's user)")
    })?;
    Ok(Some(pid))
}

/// The breach button: lock the signer, then stop the peer — the peer is stopped even when
/// the lock fails, and the exit code names the step that failed.
fn cmd_halt(path: &Path) -> Result<(), Failure> {
    let settings = Settings::load(path).map_err(|e| Failure(Exit::Config, e.to_string()))?;
    let locked = lock_signer(&settings);
    match &locked {
        Ok(()) => out("signer locked: it refuses every signature from now on\n"),
        Err(e) => {
            eprintln!("cvx-peer: halt: cannot lock the signer: {e}; stopping the peer anyway");
        }
    }
    let stopped = stop_peer(&settings);
    match &stopped {
        Ok(Some(pid)) => out(&format!("peer (pid {pid}) stopped\n")),
        Ok(None) => out(&format!(
            "no running peer found ({} missing or stale)\n",
            settings.data_dir.join("cvx-peer.pid").display()
        )),
        Err(_) => {}
    }
    let lock_fix = "lock it as root, whose connections have slots of their own (`sudo cvx-signer lock --socket /run/cvx-signer/signer.sock`), or as the signer's user (`cvx-signer lock --config /etc/cvx-signer/signer.toml`), or stop cvx-signer.service";
    let lock_err = locked.as_ref().err().cloned().unwrap_or_default();
    let stop_err = stopped.as_ref().err().cloned().unwrap_or_default();
    match halt_exit(locked.is_ok(), stopped.is_ok()) {
        Exit::Ok => Ok(()),
        Exit::HaltLock => Err(Failure(
            Exit::HaltLock,
            format!(
                "halt: the peer is stopped, but the signer is NOT locked ({lock_err}): {lock_fix}"
            ),
        )),
        Exit::HaltStop => Err(Failure(
            Exit::HaltStop,
            format!("halt: the signer is locked, but the peer is NOT stopped: {stop_err}"),
        )),
        code => Err(Failure(
            code,
            format!(
                "halt: the signer is NOT locked ({lock_err}) and the peer is NOT stopped ({stop_err}): {lock_fix}, and stop cvx-peer.service"
            ),
        )),
    }
}

/// Halt's exit code from which of its two steps succeeded.
const fn halt_exit(locked: bool, stopped: bool) -> Exit {
    match (locked, stopped) {
        (true, true) => Exit::Ok,
        (false, true) => Exit::HaltLock,
        (true, false) => Exit::HaltStop,
        (false, false) => Exit::HaltBoth,
    }
}

/// What `cvx-peer devnet` answers now.
const DEVNET_MOVED: &str = "`cvx-peer devnet` moved to its own binary, cvx-devnet (same flags; never installed on a peer host): \
build it with `cargo build --release --locked -p cvx-devnet -p cvx-peer -p cvx-signer -p cvx-loadgen`, \
then run `target/release/cvx-devnet --help`";

fn command() -> clap::Command {
    Cli::command().after_help(exit_codes())
}

fn main() -> ExitCode {
    let cli = match Cli::from_arg_matches(&command().get_matches()) {
        Ok(c) => c,
        Err(e) => e.exit(),
    };
    let r = match cli.cmd {
        None => {
            out(&command().render_help().to_string());
            Ok(())
        }
        Some(Cmd::Run {
            config,
            require_landlock,
        }) => cmd_run(&config, require_landlock),
        Some(Cmd::Submit {
            file,
            peer,
            timeout,
        }) => cmd_submit(&file, &peer, timeout),
        Some(Cmd::Query(q)) => query_of(&q).and_then(|(q, peer)| cmd_query(q, peer)),
        Some(Cmd::Status { peer }) => cmd_query(Query::Status, &peer),
        Some(Cmd::Halt { config }) => cmd_halt(&config),
        Some(Cmd::Gc { config }) => cmd_gc(&config),
        Some(Cmd::SandboxProbe {
            config,
            require_landlock,
            action,
            arg,
        }) => cmd_sandbox_probe(&config, require_landlock, &action, arg.as_deref()),
        Some(Cmd::Devnet { .. }) => Err(Failure(Exit::Usage, DEVNET_MOVED.to_owned())),
    };
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure(code, msg)) => {
            eprintln!("cvx-peer: {msg}");
            ExitCode::from(code.code())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_is_consistent() {
        command().debug_assert();
    }

    #[test]
    fn halt_names_the_step_that_failed() {
        assert_eq!(halt_exit(true, true).code(), 0);
        assert_eq!(halt_exit(false, true).code(), 14);
        assert_eq!(halt_exit(true, false).code(), 15);
        assert_eq!(halt_exit(false, false).code(), 16);
    }

    #[test]
    fn documented_invocations_parse() {
        for args in [
            &[
                "cvx-peer",
                "run",
                "--config",
                "p.toml",
                "--require-landlock",
            ][..],
            &[
                "cvx-peer",
                "submit",
                "t.tx",
                "--peer",
                "h:1",
                "--timeout",
                "20",
            ],
            &["cvx-peer", "query", "account", "3", "--peer", "h:1"],
            &["cvx-peer", "query", "sync", "latest", "--peer", "h:1"],
            &["cvx-peer", "status", "--peer", "h:1"],
            &["cvx-peer", "halt", "--config", "p.toml"],
            &["cvx-peer", "gc", "--config", "p.toml"],
            &[
                "cvx-peer",
                "sandbox-probe",
                "--config",
                "p.toml",
                "connect",
                "1.2.3.4:5",
            ],
            &["cvx-peer", "devnet", "--peers", "4", "--help"],
        ] {
            assert!(Cli::try_parse_from(args).is_ok(), "{args:?}");
        }
        let e = Cli::try_parse_from(["cvx-peer", "status"]).expect_err("--peer is required");
        assert_eq!(e.exit_code(), i32::from(Exit::Usage.code()));
    }
}
