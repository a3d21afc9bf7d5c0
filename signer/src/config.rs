//! The signer's config: strict TOML (`deny_unknown_fields`), validated into [`Settings`].
//!
//! ```toml
//! network = "<64 hex digits: the network id>"
//! state_file = "/var/lib/cvx-signer/state"
//! audit_log = "/var/lib/cvx-signer/audit.log"
//! socket = "/run/cvx-signer/signer.sock"   # omit under systemd socket activation
//! allowed_uids = [998]                     # the cvx-peer user
//! admin_uids = [0]                         # optional (default [0]): may Lock/Status beyond
//!                                          # the client cap, never sign
//! max_connections = 16                     # optional
//! read_timeout_ms = 5000                   # optional: a started frame must finish within
//! require_landlock = false                 # optional; --require-landlock also sets it
//! audit_rotate_bytes = 16777216            # optional: at start, a larger audit log is
//!                                          # archived and continued (0: never)
//! policy_file = "/etc/cvx-signer/signing.toml"  # optional; default: policies/signing.toml
//! genesis_file = "/etc/cvx-signer/genesis.bin"   # optional: the network's genesis (its hash
//!                                          # must be `network`); enables certificates
//! trust_file = "/var/lib/cvx-signer/state.trust" # optional; default: state_file + ".trust"
//!
//! [key]
//! file = "/etc/cvx-signer/peer.key.age"
//! identity_file = "/etc/cvx-signer/host.identity"  # optional: age X25519 identity
//! identity_credential = "cvx-signer-identity"      # optional: $CREDENTIALS_DIRECTORY/<name>
//! # neither: the key file is passphrase-encrypted (tty, or --passphrase-fd N)
//! ```

use std::path::{Path, PathBuf};
use std::time::Duration;

use cvx_protocol::ledger::MAX_BLOCK_TXS;
use cvx_protocol::policy::PolicyParams;
use cvx_protocol::{Hash, NetworkId};
use serde::Deserialize;

/// Default `audit_rotate_bytes`: 16 MiB, about 200,000 decisions, verified at start in
/// about 0.3 s (release build).
pub const DEFAULT_AUDIT_ROTATE_BYTES: u64 = 16 * 1024 * 1024;

/// The default policy parameters (policies/signing.toml, compiled in).
pub const DEFAULT_POLICY_TOML: &str = include_str!("../../policies/signing.toml");

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    network: String,
    state_file: PathBuf,
    audit_log: PathBuf,
    socket: Option<PathBuf>,
    allowed_uids: Vec<u32>,
    admin_uids: Option<Vec<u32>>,
    max_connections: Option<u32>,
    read_timeout_ms: Option<u64>,
    require_landlock: Option<bool>,
    audit_rotate_bytes: Option<u64>,
    policy_file: Option<PathBuf>,
    genesis_file: Option<PathBuf>,
    trust_file: Option<PathBuf>,
    key: KeyConfig,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyConfig {
    file: PathBuf,
    identity_file: Option<PathBuf>,
    identity_credential: Option<String>,
}

/// How the key file is decrypted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeySource {
    /// scrypt passphrase: from the terminal, or `--passphrase-fd N`.
    Passphrase,
    /// An age X25519 identity file (e.g. a systemd credential).
    Identity(PathBuf),
}

/// The validated settings.
#[derive(Clone, Debug)]
pub struct Settings {
    /// The one network this signer signs for.
    pub network: NetworkId,
    /// The watermark state file.
    pub state_file: PathBuf,
    /// The audit log.
    pub audit_log: PathBuf,
    /// At start, an audit log of at least this many bytes is archived and continued in
    /// a new file (0: never).
    pub audit_rotate_bytes: u64,
    /// The socket path to create (None: systemd socket activation).
    pub socket: Option<PathBuf>,
    /// Client uids allowed to connect.
    pub allowed_uids: Vec<u32>,
    /// Operator uids whose connections are accepted beyond `max_connections` (in
    /// [`crate::serve::ADMIN_SLOTS`] slots of their own) and may only ask Hello,
    /// PublicKey, Status and Lock there: the breach button a client cannot starve.
    pub admin_uids: Vec<u32>,
    /// Most simultaneous client connections.
    pub max_connections: usize,
    /// A started frame must complete within this.
    pub read_timeout: Duration,
    /// Fail unless Landlock is fully enforced.
    pub require_landlock: bool,
    /// Policy parameters.
    pub policy: PolicyParams,
    /// The genesis file, when certificates are enabled (docs/consensus.md §7.5).
    pub genesis_file: Option<PathBuf>,
    /// The trust file (the stake table certificates are checked against).
    pub trust_file: PathBuf,
    /// The age-encrypted key file.
    pub key_file: PathBuf,
    /// How to decrypt it.
    pub key_source: KeySource,
}

/// Why the config was refused: the one type every cvx config reader shares.
pub use cvx_protocol::config::ConfigError;

/// Parse policy parameters (the policies/signing.toml format).
///
/// # Errors
/// The parser's message.
pub fn parse_policy(text: &str) -> Result<PolicyParams, String> {
    toml::from_str(text).map_err(|e| e.to_string())
}

/// The genesis table of `genesis_file`: the genesis peers with at least `min_stake`,
/// known at position 0, confirmed at `confirmed_at`. The file must be the canonical
/// genesis of `network` (its hash).
///
/// # Errors
/// [`ConfigError::Invalid`] for `genesis_file`.
pub fn genesis_table(
    config: &Path,
    genesis_file: &Path,
    network: &NetworkId,
    confirmed_at: Option<cvx_protocol::Timestamp>,
) -> Result<cvx_protocol::certificate::TrustedTable, ConfigError> {
    let invalid = |problem: String| ConfigError::Invalid {
        path: config.to_owned(),
        field: "genesis_file",
        problem,
    };
    let bytes = std::fs::read(genesis_file)
        .map_err(|e| invalid(format!("cannot read {}: {e}", genesis_file.display())))?;
    // The hash first: the accounts of the network's own genesis are skipped undecoded.
    let genesis = cvx_protocol::ledger::Genesis::stakes_of(&bytes, network).map_err(|e| {
        use cvx_protocol::ledger::GenesisStakesError as E;
        invalid(match e {
            E::OtherNetwork(other) => format!(
                "{} is the genesis of network {other}, but `network` is {network}",
                genesis_file.display()
            ),
            E::NotGenesis(e) => {
                format!("{} is not a canonical genesis: {e}", genesis_file.display())
            }
        })
    })?;
    let mut entries: Vec<cvx_protocol::certificate::StakeEntry> = genesis
        .peers
        .iter()
        .filter(|p| p.stake >= genesis.params.min_stake && !p.stake.is_zero())
        .map(|p| cvx_protocol::certificate::StakeEntry {
            key: p.key,
            stake: p.stake.get(),
        })
        .collect();
    entries.sort_by_key(|e| e.key);
    entries.dedup_by_key(|e| e.key);
    let table = cvx_protocol::certificate::StakeTable {
        entries: cvx_protocol::BoundedVec::try_from_vec(entries)
            .map_err(|_| invalid("more genesis peers than the protocol allows".to_owned()))?,
    };
    Ok(cvx_protocol::certificate::TrustedTable {
        position: 0,
        confirmed_at: confirmed_at.unwrap_or(genesis.time),
        table,
    })
}

/// Load and validate a config file.
///
/// # Errors
/// [`ConfigError`] naming the file, the field and the fix.
pub fn load(path: &Path) -> Result<Settings, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    parse(path, &text)
}

/// Validate config text (`path` only names it in errors).
///
/// # Errors
/// [`ConfigError`].
pub fn parse(path: &Path, text: &str) -> Result<Settings, ConfigError> {
    let raw: ConfigFile = toml::from_str(text).map_err(|e| ConfigError::Parse {
        path: path.to_owned(),
        message: e.to_string().trim_end().to_owned(),
    })?;
    let invalid = |field, problem: String| ConfigError::Invalid {
        path: path.to_owned(),
        field,
        problem,
    };
    let network = Hash::from_hex(&raw.network).map(NetworkId).map_err(|e| {
        invalid(
            "network",
            format!("{e} (the network id, as printed by the genesis tool)"),
        )
    })?;
    if raw.allowed_uids.is_empty() {
        return Err(invalid(
            "allowed_uids",
            "empty: list the uid of the cvx-peer user".to_owned(),
        ));
    }
    let admin_uids = raw.admin_uids.unwrap_or_else(|| vec![0]);
    if admin_uids.len() > 64 {
        return Err(invalid(
            "admin_uids",
            format!(
                "{} entries; list at most 64 operator uids (root is enough on most hosts)",
                admin_uids.len()
            ),
        ));
    }
    let max_connections = raw.max_connections.unwrap_or(16);
    if !(1..=1024).contains(&max_connections) {
        return Err(invalid(
            "max_connections",
            format!("{max_connections} is outside 1..=1024"),
        ));
    }
    let read_timeout_ms = raw.read_timeout_ms.unwrap_or(5000);
    if !(50..=600_000).contains(&read_timeout_ms) {
        return Err(invalid(
            "read_timeout_ms",
            format!("{read_timeout_ms} is outside 50..=600000"),
        ));
    }
    let policy = match &raw.policy_file {
        None => parse_policy(DEFAULT_POLICY_TOML)
            .map_err(|e| invalid("policy_file", format!("built-in default: {e}")))?,
        Some(p) => {
            let t = std::fs::read_to_string(p)
                .map_err(|e| invalid("policy_file", format!("cannot read {}: {e}", p.display())))?;
            parse_policy(&t).map_err(|e| invalid("policy_file", format!("{}: {e}", p.display())))?
        }
    };
    if policy.max_block_txs as usize > MAX_BLOCK_TXS {
        return Err(invalid(
            "policy_file",
            format!(
                "max_block_txs {} is above the protocol cap {MAX_BLOCK_TXS}",
                policy.max_block_txs
            ),
        ));
    }
    let key_source = match (raw.key.identity_file, raw.key.identity_credential) {
        (Some(_), Some(_)) => {
            return Err(invalid(
                "key.identity_file",
                "set identity_file or identity_credential, not both".to_owned(),
            ));
        }
        (Some(f), None) => KeySource::Identity(f),
        (None, Some(name)) => {
            if name.is_empty() || name.contains('/') || name.starts_with('.') {
                return Err(invalid(
                    "key.identity_credential",
                    format!("{name:?} is not a credential name"),
                ));
            }
            let dir = std::env::var_os("CREDENTIALS_DIRECTORY").ok_or_else(|| {
                invalid(
                    "key.identity_credential",
                    "CREDENTIALS_DIRECTORY is not set: run under systemd with LoadCredential=/LoadCredentialEncrypted="
                        .to_owned(),
                )
            })?;
            KeySource::Identity(PathBuf::from(dir).join(name))
        }
        (None, None) => KeySource::Passphrase,
    };
    let trust_file = raw.trust_file.unwrap_or_else(|| {
        let mut p = raw.state_file.clone().into_os_string();
        p.push(".trust");
        PathBuf::from(p)
    });
    Ok(Settings {
        network,
        genesis_file: raw.genesis_file,
        trust_file,
        state_file: raw.state_file,
        audit_log: raw.audit_log,
        audit_rotate_bytes: raw.audit_rotate_bytes.unwrap_or(DEFAULT_AUDIT_ROTATE_BYTES),
        socket: raw.socket,
        allowed_uids: raw.allowed_uids,
        admin_uids,
        max_connections: max_connections as usize,
        read_timeout: Duration::from_millis(read_timeout_ms),
        require_landlock: raw.require_landlock.unwrap_or(false),
        policy,
        key_file: raw.key.file,
        key_source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
network = "0000000000000000000000000000000000000000000000000000000000000001"
state_file = "/s"
audit_log = "/a"
socket = "/run/x.sock"
allowed_uids = [1000]
[key]
file = "/k"
"#;

    #[test]
    fn default_policy_file_parses_into_policy_params() {
        assert_eq!(
            parse_policy(DEFAULT_POLICY_TOML).unwrap(),
            PolicyParams::default()
        );
    }

    #[test]
    fn good_config_and_defaults() {
        let s = parse(Path::new("c.toml"), GOOD).unwrap();
        assert_eq!(s.max_connections, 16);
        assert_eq!(s.key_source, KeySource::Passphrase);
        assert_eq!(s.allowed_uids, vec![1000]);
        assert_eq!(s.admin_uids, vec![0], "root is the default admin");
    }

    #[test]
    fn genesis_table_and_trust_file_default() {
        use cvx_protocol::Canonical as _;
        use cvx_protocol::ledger::{Genesis, GenesisAccount, GenesisPeer, Params};
        use cvx_protocol::primitives::Name;
        use cvx_protocol::{Address, Amount, BoundedVec, PublicKey, Timestamp};
        let s = parse(Path::new("c.toml"), GOOD).unwrap();
        let mut expected = s.state_file.clone().into_os_string();
        expected.push(".trust");
        assert_eq!(s.trust_file, PathBuf::from(expected));
        assert!(s.genesis_file.is_none());
        let key = |i: u8| {
            let sk = ed25519_dalek::SigningKey::from_bytes(&[i; 32]);
            PublicKey::from_bytes(sk.verifying_key().as_bytes()).unwrap()
        };
        let peer = |i: u8, stake: u64| GenesisPeer {
            key: key(i),
            controller: Address(0),
            stake: Amount::new(stake).unwrap(),
            host: None,
        };
        let mut peers = vec![peer(1, 500), peer(2, 700)];
        peers.sort_by_key(|p| p.key);
        let genesis = Genesis {
            network_name: Name::new("cvx-unit").unwrap(),
            time: Timestamp(1_000),
            accounts: BoundedVec::try_from_vec(vec![GenesisAccount {
                key: key(9),
                balance: Amount::new(10_000).unwrap(),
            }])
            .unwrap(),
            peers: BoundedVec::try_from_vec(peers).unwrap(),
            params: Params {
                min_stake: Amount::new(100).unwrap(),
                fee: Amount::new(1).unwrap(),
                max_block_txs: 1024,
                min_block_time_ms: 50,
                max_block_backdate_ms: 60_000,
                max_future_ms: 30_000,
                proposal_hold_ms: 100,
                decay_grace_ms: 300_000,
                decay_time_ms: 300_000,
                decay_floor_ppm: 1000,
            },
        };
        let dir = std::env::temp_dir().join(format!("cvx-signer-genesis-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let g = dir.join("genesis.bin");
        std::fs::write(&g, genesis.encode()).unwrap();
        let net = genesis.network_id();
        let t = genesis_table(Path::new("c.toml"), &g, &net, None).unwrap();
        assert_eq!(t.table.total(), 1200);
        assert_eq!((t.position, t.confirmed_at), (0, Timestamp(1_000)));
        let t = genesis_table(Path::new("c.toml"), &g, &net, Some(Timestamp(5))).unwrap();
        assert_eq!(t.confirmed_at, Timestamp(5));
        let e = genesis_table(Path::new("c.toml"), &g, &NetworkId(Hash([1; 32])), None)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("genesis_file") && e.contains("genesis of network"),
            "{e}"
        );
        std::fs::write(&g, b"not a genesis").unwrap();
        let e = genesis_table(Path::new("c.toml"), &g, &net, None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("not a canonical genesis"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn admin_uids_parse_strictly() {
        let with = |line: &str| GOOD.replace("allowed_uids", &format!("{line}\nallowed_uids"));
        let s = parse(Path::new("c"), &with("admin_uids = [0, 1001]")).unwrap();
        assert_eq!(s.admin_uids, vec![0, 1001]);
        assert!(
            parse(Path::new("c"), &with("admin_uids = []"))
                .unwrap()
                .admin_uids
                .is_empty()
        );
        let e = parse(Path::new("c"), &with("admin_uids = [-1]"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("admin_uids"), "{e}");
        let many: Vec<String> = (0..65).map(|u| u.to_string()).collect();
        let e = parse(
            Path::new("c"),
            &with(&format!("admin_uids = [{}]", many.join(","))),
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("`admin_uids`") && e.contains("at most 64"),
            "{e}"
        );
        let e = parse(Path::new("c"), &with("admin_uid = [0]"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("admin_uid"), "{e}");
    }

    #[test]
    fn unknown_field_is_named() {
        let bad = GOOD.replace("allowed_uids", "alowed_uids = [1]\nallowed_uids");
        let e = parse(Path::new("c.toml"), &bad).unwrap_err().to_string();
        assert!(e.contains("alowed_uids") && e.contains("c.toml"), "{e}");
        let bad = format!("{GOOD}extra = 1\n");
        let e = parse(Path::new("c.toml"), &bad).unwrap_err().to_string();
        assert!(e.contains("extra"), "{e}");
    }

    #[test]
    fn invalid_values_name_the_field() {
        let bad = GOOD.replace("[1000]", "[]");
        assert!(
            parse(Path::new("c"), &bad)
                .unwrap_err()
                .to_string()
                .contains("allowed_uids")
        );
        let bad = GOOD.replace(
            "0000000000000000000000000000000000000000000000000000000000000001",
            "xyz",
        );
        assert!(
            parse(Path::new("c"), &bad)
                .unwrap_err()
                .to_string()
                .contains("`network`")
        );
    }
}
