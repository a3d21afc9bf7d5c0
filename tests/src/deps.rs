//! The dependency-boundary checker: crate boundaries are privilege boundaries.
//!
//! It reads `cargo metadata` and computes, for each crate with a rule, the closure of
//! its normal and build dependencies (dev-dependencies do not ship), then reports every
//! forbidden crate in it with the path that pulls it in.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::Path;
use std::process::Command;

use serde_json::Value;

/// Network, async-runtime and TLS crates: none of them may reach the key holders.
pub const NETWORK_CRATES: &[&str] = &[
    "tokio",
    "tokio-util",
    "tokio-rustls",
    "mio",
    "socket2",
    "hyper",
    "hyper-util",
    "h2",
    "http-body",
    "http-body-util",
    "http",
    "tower",
    "prometheus-client",
    "reqwest",
    "ureq",
    "curl",
    "curl-sys",
    "isahc",
    "surf",
    "attohttpc",
    "rustls",
    "native-tls",
    "openssl",
    "openssl-sys",
    "async-std",
    "smol",
    "async-io",
    "tonic",
    "axum",
    "warp",
    "tungstenite",
    "quinn",
    "trust-dns-resolver",
    "hickory-resolver",
];

/// Crates that do I/O or touch the OS, or are other rooms of cvx: cvx-protocol is pure.
pub const IO_CRATES: &[&str] = &[
    "libc",
    "nix",
    "rustix",
    "memmap2",
    "getrandom",
    "rand",
    "age",
    "landlock",
    "seccompiler",
    "tracing-subscriber",
    "cvx-sandbox",
    "cvx-etch",
    "cvx-signer",
    "cvx-peer",
    "cvx-vault",
    "cvx-loadgen",
    "cvx-consensus",
    "cvx-devnet",
];

/// One rule: `krate`'s shipped closure must contain none of `forbidden`.
#[derive(Debug, Clone, Copy)]
pub struct Rule {
    /// The crate the rule is about.
    pub krate: &'static str,
    /// Groups of crates it must not depend on, transitively.
    pub forbidden: &'static [&'static [&'static str]],
    /// Why (printed with a violation).
    pub why: &'static str,
}

/// The crates a sans-I/O crate must not reach (what `tests/src/rooms.rs` also keeps out of
/// its sources: runtime, sockets, OS calls, the store, the sandbox).
pub const CONSENSUS_FORBIDDEN: &[&str] =
    &["tokio", "mio", "socket2", "nix", "cvx-etch", "cvx-sandbox"];

/// The rule table (ARCHITECTURE.md states the same rules in prose; DESIGN.md §3 gives the
/// direction: signer → protocol, sandbox · consensus → protocol · peer → protocol,
/// consensus, sandbox, etch · devnet → protocol, loadgen · vault → protocol, sandbox ·
/// etch → none of ours).
pub const RULES: &[Rule] = &[
    Rule {
        krate: "cvx-protocol",
        forbidden: &[NETWORK_CRATES, IO_CRATES],
        why: "cvx-protocol is pure: no I/O, no OS access, no randomness, no other room of cvx",
    },
    Rule {
        krate: "cvx-consensus",
        forbidden: &[CONSENSUS_FORBIDDEN, NETWORK_CRATES, IO_CRATES],
        why: "cvx-consensus is sans-I/O: time and randomness come in as values; no runtime, socket, OS call, store, sandbox or other room of cvx but cvx-protocol",
    },
    Rule {
        krate: "cvx-signer",
        forbidden: &[
            NETWORK_CRATES,
            &[
                "cvx-peer",
                "cvx-etch",
                "cvx-vault",
                "cvx-loadgen",
                "cvx-consensus",
                "cvx-devnet",
            ],
        ],
        why: "the key holder links no network, async or TLS code and no peer code",
    },
    Rule {
        krate: "cvx-sandbox",
        forbidden: &[
            NETWORK_CRATES,
            &[
                "cvx-peer",
                "cvx-etch",
                "cvx-vault",
                "cvx-loadgen",
                "cvx-signer",
                "cvx-consensus",
                "cvx-devnet",
            ],
        ],
        why: "the sandbox is linked by the key holders, so it links no network code",
    },
    Rule {
        krate: "cvx-vault",
        forbidden: &[
            NETWORK_CRATES,
            &[
                "cvx-peer",
                "cvx-etch",
                "cvx-signer",
                "cvx-loadgen",
                "cvx-consensus",
                "cvx-devnet",
            ],
        ],
        why: "the vault is offline by construction",
    },
    Rule {
        krate: "cvx-peer",
        forbidden: &[&[
            "cvx-signer",
            "cvx-vault",
            "cvx-loadgen",
            "cvx-devnet",
            "age",
        ]],
        why: "the peer never holds a private key: it links no key-holding crate, and no launcher",
    },
    Rule {
        krate: "cvx-devnet",
        forbidden: &[&[
            "cvx-peer",
            "cvx-signer",
            "cvx-vault",
            "cvx-etch",
            "cvx-sandbox",
            "cvx-consensus",
        ]],
        why: "the launcher starts cvx-signer and cvx-peer as processes and links none of their code (devnet → protocol, loadgen)",
    },
    Rule {
        krate: "cvx-loadgen",
        forbidden: &[&[
            "cvx-peer",
            "cvx-signer",
            "cvx-vault",
            "cvx-etch",
            "cvx-sandbox",
            "cvx-consensus",
            "cvx-devnet",
        ]],
        why: "the load generator holds throwaway keys and speaks the client wire; it links no daemon code",
    },
    Rule {
        krate: "cvx-etch",
        forbidden: &[&[
            "cvx-protocol",
            "cvx-sandbox",
            "cvx-signer",
            "cvx-peer",
            "cvx-vault",
            "cvx-loadgen",
            "cvx-consensus",
            "cvx-devnet",
        ]],
        why: "the store depends on none of cvx's own crates",
    },
];

/// The verdict for one rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The crate is not in the workspace yet (a later issue adds it).
    NotPresentYet,
    /// No forbidden crate in the closure (`closure` = its size).
    Clean {
        /// Number of crates in the shipped closure.
        closure: usize,
    },
    /// Forbidden crates found, each with the dependency path that brings it in.
    Violations(Vec<(String, Vec<String>)>),
}

/// Errors reading the metadata.
#[derive(Debug, thiserror::Error)]
pub enum MetadataError {
    /// `cargo metadata` could not run or failed.
    #[error("cargo metadata failed: {0}")]
    Cargo(String),
    /// The JSON is not what cargo prints.
    #[error("unexpected cargo metadata JSON: {0}")]
    Shape(&'static str),
}

/// The shipped dependency graph: package name -> names of its normal and build deps.
#[derive(Debug, Default)]
pub struct Graph {
    edges: BTreeMap<String, BTreeSet<String>>,
}

impl Graph {
    /// Build from `cargo metadata --format-version 1` JSON.
    ///
    /// # Errors
    /// [`MetadataError::Shape`] when the JSON lacks the expected fields.
    pub fn from_metadata(meta: &Value) -> Result<Self, MetadataError> {
        let packages = meta["packages"]
            .as_array()
            .ok_or(MetadataError::Shape("no packages"))?;
        let mut names = BTreeMap::new();
        for p in packages {
            let id = p["id"]
                .as_str()
                .ok_or(MetadataError::Shape("package without id"))?;
            let name = p["name"]
                .as_str()
                .ok_or(MetadataError::Shape("package without name"))?;
            names.insert(id.to_owned(), name.to_owned());
        }
        let nodes = meta["resolve"]["nodes"]
            .as_array()
            .ok_or(MetadataError::Shape("no resolve.nodes"))?;
        let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for n in nodes {
            let id = n["id"]
                .as_str()
                .ok_or(MetadataError::Shape("node without id"))?;
            let from = names
                .get(id)
                .ok_or(MetadataError::Shape("node id not in packages"))?;
            let entry = edges.entry(from.clone()).or_default();
            for d in n["deps"].as_array().map_or(&[][..], Vec::as_slice) {
                let shipped = d["dep_kinds"]
                    .as_array()
                    .is_some_and(|ks| ks.iter().any(|k| k["kind"].as_str() != Some("dev")));
                if !shipped {
                    continue;
                }
                let pkg = d["pkg"]
                    .as_str()
                    .ok_or(MetadataError::Shape("dep without pkg"))?;
                let to = names
                    .get(pkg)
                    .ok_or(MetadataError::Shape("dep pkg not in packages"))?;
                entry.insert(to.clone());
            }
        }
        Ok(Self { edges })
    }

    /// Run `cargo metadata` on the workspace at `root` (feature-unified across the
    /// workspace; used to list the workspace's packages).
    ///
    /// # Errors
    /// [`MetadataError`] when cargo fails or prints something unexpected.
    pub fn of_workspace(root: &Path) -> Result<Self, MetadataError> {
        let out = cargo(root)
            .args([
                "metadata",
                "--format-version",
                "1",
                "--locked",
                "--filter-platform",
            ])
            .arg(host_triple()?)
            .output()
            .map_err(|e| MetadataError::Cargo(e.to_string()))?;
        if !out.status.success() {
            return Err(MetadataError::Cargo(
                String::from_utf8_lossy(&out.stderr).into_owned(),
            ));
        }
        let v: Value =
            serde_json::from_slice(&out.stdout).map_err(|_| MetadataError::Shape("not JSON"))?;
        Self::from_metadata(&v)
    }

    /// The shipped graph of one package as it builds on its own (`cargo build -p
    /// KRATE`): normal and build dependencies, with the features that build enables —
    /// not the workspace-wide union, where one crate's feature choice would be blamed
    /// on another.
    ///
    /// # Errors
    /// [`MetadataError`] when cargo fails.
    pub fn of_package(root: &Path, krate: &str) -> Result<Self, MetadataError> {
        let out = cargo(root)
            .args([
                "tree",
                "--locked",
                "-e",
                "normal,build",
                "--prefix",
                "depth",
                "--format",
                "{p}",
                "-p",
                krate,
            ])
            .output()
            .map_err(|e| MetadataError::Cargo(e.to_string()))?;
        if !out.status.success() {
            return Err(MetadataError::Cargo(
                String::from_utf8_lossy(&out.stderr).into_owned(),
            ));
        }
        Ok(Self::from_cargo_tree(&String::from_utf8_lossy(&out.stdout)))
    }

    /// Parse `cargo tree --prefix depth --format {p}` output (each line: depth digits,
    /// then `name vX.Y.Z ...`).
    #[must_use]
    pub fn from_cargo_tree(text: &str) -> Self {
        let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        let mut stack: Vec<String> = Vec::new();
        for line in text.lines() {
            let digits = line.bytes().take_while(u8::is_ascii_digit).count();
            let Ok(depth) = line[..digits].parse::<usize>() else {
                continue;
            };
            let Some(name) = line[digits..].split_whitespace().next() else {
                continue;
            };
            stack.truncate(depth);
            edges.entry(name.to_owned()).or_default();
            if let Some(parent) = stack.last() {
                edges
                    .entry(parent.clone())
                    .or_default()
                    .insert(name.to_owned());
            }
            stack.push(name.to_owned());
        }
        Self { edges }
    }

    /// Is `name` a package in the graph?
    #[must_use]
    pub fn contains(&self, name: &str) -> bool {
        self.edges.contains_key(name)
    }

    /// Shortest dependency path from `from` to every crate in its closure.
    #[must_use]
    pub fn closure(&self, from: &str) -> BTreeMap<String, Vec<String>> {
        let mut paths: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let mut queue = VecDeque::from([vec![from.to_owned()]]);
        while let Some(path) = queue.pop_front() {
            let Some(last) = path.last() else { continue };
            for next in self.edges.get(last).into_iter().flatten() {
                if next != from && !paths.contains_key(next) {
                    let mut p = path.clone();
                    p.push(next.clone());
                    paths.insert(next.clone(), p.clone());
                    queue.push_back(p);
                }
            }
        }
        paths
    }

    /// Check one rule.
    #[must_use]
    pub fn check(&self, rule: &Rule) -> Verdict {
        if !self.contains(rule.krate) {
            return Verdict::NotPresentYet;
        }
        let closure = self.closure(rule.krate);
        let bad: Vec<(String, Vec<String>)> = closure
            .iter()
            .filter(|(name, _)| {
                rule.forbidden
                    .iter()
                    .any(|group| group.contains(&name.as_str()))
            })
            .map(|(name, path)| (name.clone(), path.clone()))
            .collect();
        if bad.is_empty() {
            Verdict::Clean {
                closure: closure.len(),
            }
        } else {
            Verdict::Violations(bad)
        }
    }
}

fn cargo(root: &Path) -> Command {
    let mut c = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    c.current_dir(root);
    c
}

fn host_triple() -> Result<String, MetadataError> {
    let out = Command::new("rustc")
        .arg("-vV")
        .output()
        .map_err(|e| MetadataError::Cargo(format!("rustc -vV: {e}")))?;
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("host: ").map(str::to_owned))
        .ok_or(MetadataError::Shape("rustc -vV printed no host line"))
}
