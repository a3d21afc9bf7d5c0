//! The peer's config: strict TOML (`deny_unknown_fields`), validated into [`Settings`].
//!
//! ```toml
//! genesis = "/etc/cvx-peer/genesis.bin"     # canonical Genesis encoding
//! key = "<64 hex digits: this peer's public key (the signer holds the private half)>"
//! data_dir = "/var/lib/cvx-peer"            # the cvx-etch store lives here
//! signer_socket = "/run/cvx-signer/signer.sock"
//! listen = "0.0.0.0:18888"                  # optional; peers and clients
//! bootstrap = ["203.0.113.7:18888"]         # optional: hosts the operator names
//! target_outgoing = 20                      # optional
//! max_connections = 256                     # optional: incoming connections at most
//! max_queue = 100000                        # optional: pending client transactions at most
//! api_listen = "127.0.0.1:18889"            # optional: HTTP JSON API + /metrics ("off": none)
//! sandbox = true                            # optional: Landlock + seccomp (false: debugging only)
//! require_landlock = false                  # optional; --require-landlock also sets it
//! state_sync = false                        # optional: with an empty store, join by state
//!                                           # sync from `bootstrap` (docs/operations.md)
//! ```

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use cvx_protocol::PublicKey;
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    genesis: PathBuf,
    key: String,
    data_dir: PathBuf,
    signer_socket: PathBuf,
    listen: Option<String>,
    bootstrap: Option<Vec<String>>,
    target_outgoing: Option<u32>,
    max_connections: Option<u32>,
    max_queue: Option<u32>,
    api_listen: Option<String>,
    sandbox: Option<bool>,
    require_landlock: Option<bool>,
    state_sync: Option<bool>,
    gc_interval_secs: Option<u64>,
}

/// The validated settings.
#[derive(Clone, Debug)]
pub struct Settings {
    /// The genesis file.
    pub genesis: PathBuf,
    /// This peer's public key.
    pub key: PublicKey,
    /// Data directory (the store).
    pub data_dir: PathBuf,
    /// The signer's socket.
    pub signer_socket: PathBuf,
    /// Where to listen for peers and clients.
    pub listen: SocketAddr,
    /// Hosts the operator names (always allowed to dial).
    pub bootstrap: Vec<String>,
    /// Outgoing peer connections to hold.
    pub target_outgoing: usize,
    /// Incoming connections at most.
    pub max_connections: usize,
    /// Client transactions queued at most (beyond: LOAD).
    pub max_queue: usize,
    /// The local HTTP JSON API and /metrics (None: off).
    pub api_listen: Option<SocketAddr>,
    /// Enter the peer's sandbox (Landlock + seccomp) before serving. Default on; off only
    /// to debug, with a loud warning in the log.
    pub sandbox: bool,
    /// Refuse to start unless Landlock is fully enforced (the signer's `require_landlock`).
    pub require_landlock: bool,
    /// With an empty store: join by state sync from `bootstrap` (never replaying blocks
    /// from genesis). A store that holds a snapshot always restarts from it.
    pub state_sync: bool,
    /// Collect the store's garbage (online) every this many seconds; 0 = never. Default
    /// [`DEFAULT_GC_INTERVAL_SECS`] (docs/operations.md, Storage management).
    pub gc_interval_secs: u64,
}

/// The default store garbage-collection interval, seconds.
pub const DEFAULT_GC_INTERVAL_SECS: u64 = 600;

/// The default peer/client port (the seed's convention).
pub const DEFAULT_PORT: u16 = 18888;

/// The default HTTP API address: localhost only.
pub const DEFAULT_API: &str = "127.0.0.1:18889";

/// Why the config was refused: the one type every cvx config reader shares.
pub use cvx_protocol::config::ConfigError;

impl Settings {
    /// Read and validate `path`.
    ///
    /// # Errors
    /// [`ConfigError`] naming the file and field.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(path, &text)
    }

    /// Validate TOML `text` (named `path` in errors).
    ///
    /// # Errors
    /// [`ConfigError`] naming the file and field.
    pub fn parse(path: &Path, text: &str) -> Result<Self, ConfigError> {
        let f: ConfigFile = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        let bad = |field: &'static str, problem: String| ConfigError::Invalid {
            path: path.to_path_buf(),
            field,
            problem,
        };
        let key = PublicKey::from_hex(&f.key).map_err(|e| {
            bad(
                "key",
                format!("{e}; give the 64-hex public key that `cvx-signer keygen` printed"),
            )
        })?;
        let listen_s = f
            .listen
            .unwrap_or_else(|| format!("0.0.0.0:{DEFAULT_PORT}"));
        let listen: SocketAddr = listen_s.parse().map_err(|_| {
            bad(
                "listen",
                format!("{listen_s:?} is not IP:PORT (e.g. \"0.0.0.0:18888\")"),
            )
        })?;
        let bootstrap = f.bootstrap.unwrap_or_default();
        for b in &bootstrap {
            if !b.contains(':') || b.len() > 255 {
                return Err(bad("bootstrap", format!("{b:?} is not HOST:PORT")));
            }
        }
        let target_outgoing = f.target_outgoing.unwrap_or(20);
        if !(1..=256).contains(&target_outgoing) {
            return Err(bad("target_outgoing", "must be 1..=256".into()));
        }
        let max_connections = f.max_connections.unwrap_or(256);
        if !(1..=65_536).contains(&max_connections) {
            return Err(bad("max_connections", "must be 1..=65536".into()));
        }
        let max_queue = f.max_queue.unwrap_or(100_000);
        if !(1..=10_000_000).contains(&max_queue) {
            return Err(bad("max_queue", "must be 1..=10000000".into()));
        }
        let api_s = f.api_listen.unwrap_or_else(|| DEFAULT_API.to_owned());
        let api_listen = if api_s == "off" {
            None
        } else {
            Some(api_s.parse().map_err(|_| {
                bad(
                    "api_listen",
                    format!("{api_s:?} is not IP:PORT or \"off\" (e.g. \"127.0.0.1:18889\")"),
                )
            })?)
        };
        let state_sync = f.state_sync.unwrap_or(false);
        if state_sync && bootstrap.is_empty() {
            return Err(bad(
                "state_sync",
                "state sync needs at least one `bootstrap` peer to fetch the state from".into(),
            ));
        }
        let gc_interval_secs = f.gc_interval_secs.unwrap_or(DEFAULT_GC_INTERVAL_SECS);
        if gc_interval_secs > 31_536_000 {
            return Err(bad(
                "gc_interval_secs",
                "must be 0 (off) ..= 31536000 (a year)".into(),
            ));
        }
        Ok(Self {
            gc_interval_secs,
            state_sync,
            api_listen,
            genesis: f.genesis,
            key,
            data_dir: f.data_dir,
            signer_socket: f.signer_socket,
            listen,
            bootstrap,
            target_outgoing: target_outgoing as usize,
            max_connections: max_connections as usize,
            max_queue: max_queue as usize,
            sandbox: f.sandbox.unwrap_or(true),
            require_landlock: f.require_landlock.unwrap_or(false),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "03a107bff3ce10be1d70dd18e74bc09967e4d6309ba50d5f1ddc8664125531b8";

    fn base() -> String {
        format!("genesis = \"g\"\nkey = \"{KEY}\"\ndata_dir = \"d\"\nsigner_socket = \"s\"\n")
    }

    #[test]
    fn defaults_apply() {
        let s = Settings::parse(Path::new("p.toml"), &base()).unwrap();
        assert_eq!(s.listen.port(), DEFAULT_PORT);
        assert_eq!(s.target_outgoing, 20);
        assert!(s.bootstrap.is_empty());
        assert!(
            s.api_listen.unwrap().ip().is_loopback(),
            "API on localhost by default"
        );
        assert!(s.sandbox, "the sandbox is on by default");
        assert!(!s.require_landlock);
        let s = Settings::parse(
            Path::new("p.toml"),
            &format!("{}sandbox = false\nrequire_landlock = true\n", base()),
        )
        .unwrap();
        assert!(!s.sandbox && s.require_landlock);
    }

    #[test]
    fn unknown_fields_and_bad_values_are_named() {
        let e = Settings::parse(Path::new("p.toml"), &format!("{}colour = 1\n", base()))
            .unwrap_err()
            .to_string();
        assert!(e.contains("colour") && e.contains("p.toml"), "{e}");
        let e = Settings::parse(Path::new("p.toml"), &format!("{}listen = \"x\"\n", base()))
            .unwrap_err()
            .to_string();
        assert!(e.contains("`listen`"), "{e}");
        let e = Settings::parse(Path::new("p.toml"), &base().replace(KEY, "00"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("`key`"), "{e}");
        let e = Settings::parse(
            Path::new("p.toml"),
            &format!("{}state_sync = true\n", base()),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("`state_sync`") && e.contains("bootstrap"), "{e}");
        let s = Settings::parse(
            Path::new("p.toml"),
            &format!("{}state_sync = true\nbootstrap = [\"h:1\"]\n", base()),
        )
        .unwrap();
        assert!(s.state_sync);
    }

    #[test]
    fn gc_interval_defaults_parses_and_is_bounded() {
        let s = Settings::parse(Path::new("p.toml"), &base()).unwrap();
        assert_eq!(s.gc_interval_secs, DEFAULT_GC_INTERVAL_SECS);
        let s = Settings::parse(
            Path::new("p.toml"),
            &format!("{}gc_interval_secs = 0\n", base()),
        )
        .unwrap();
        assert_eq!(s.gc_interval_secs, 0, "0 turns it off");
        let e = Settings::parse(
            Path::new("p.toml"),
            &format!("{}gc_interval_secs = 99999999999\n", base()),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("`gc_interval_secs`"), "{e}");
        let e = Settings::parse(
            Path::new("p.toml"),
            &format!("{}gc_interval_secs = -1\n", base()),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("gc_interval_secs"), "{e}");
    }
}
