//! Shared harness of the signer system tests that run the real `cvx-signer`
//! (tests/tests/signer_system.rs, signer_lock.rs, signer_migration.rs, signer_certify.rs).

#![allow(dead_code, clippy::unwrap_used, clippy::print_stdout)]

use std::io::{Read as _, Write as _};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use cvx_protocol::consensus::BlockHeader;
use cvx_protocol::policy::{Request, SignRequest};
use cvx_protocol::signer_wire::{ClientMessage, SignerMessage};
use cvx_protocol::{NetworkId, PublicKey, Timestamp, hash};
use cvx_signer::client::Client;

/// The unprivileged uid that plays the peer's user in root-only tests.
pub const PEER_UID: u32 = 65534;

/// The built `cvx-signer`.
pub fn signer_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| cvx_systest::built_binaries(&["cvx-signer"]).join("cvx-signer"))
}

/// The built `cvx-signer-probe` (the sandbox probe, built with `cvx-signer`).
pub fn probe_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| cvx_systest::built_binaries(&["cvx-signer"]).join("cvx-signer-probe"))
}

pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

pub fn skip(test: &str, why: &str) {
    println!("SKIPPED {test}: {why}");
}

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// A temporary signer installation: key, config, state, audit log, socket.
pub struct Env {
    pub dir: PathBuf,
    pub network: NetworkId,
    pub public_key: PublicKey,
    pub config: PathBuf,
}

impl Drop for Env {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Env {
    /// A new key (age identity), a config with `allowed_uids` and `extra` lines for
    /// `network`, and (when `init`) an initialised state.
    pub fn new(
        name: &str,
        network: NetworkId,
        allowed_uids: &[u32],
        extra: &str,
        init: bool,
    ) -> Self {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let dir =
            std::env::temp_dir().join(format!("cvx-signer-{name}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        let out = Command::new(signer_bin())
            .args(["keygen", "--out"])
            .arg(dir.join("peer.key"))
            .arg("--new-identity")
            .arg(dir.join("host.identity"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "keygen: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let public_key =
            PublicKey::from_hex(String::from_utf8(out.stdout).unwrap().trim()).unwrap();
        let env = Self {
            config: dir.join("signer.toml"),
            dir,
            network,
            public_key,
        };
        env.write_config(allowed_uids, extra);
        if init {
            let out = env.run(&["init", "--config"], &[env.config.as_path()]);
            assert!(
                out.status.success(),
                "init: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        env
    }

    /// A signer of this process's uid on a network of its own, with `extra` config lines.
    pub fn local(name: &str, extra: &str, init: bool) -> Self {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let network = NetworkId(hash(format!("test network {name} {n}").as_bytes()));
        Self::new(
            name,
            network,
            &[nix::unistd::geteuid().as_raw()],
            extra,
            init,
        )
    }

    pub fn write_config(&self, allowed_uids: &[u32], extra: &str) {
        self.write_config_with_key(
            allowed_uids,
            extra,
            "identity_file = \"{dir}/host.identity\"",
        );
    }

    /// The config with `key_extra` in the `[key]` table (`{dir}` stands for the dir).
    pub fn write_config_with_key(&self, allowed_uids: &[u32], extra: &str, key_extra: &str) {
        let d = self.dir.display().to_string();
        let uids: Vec<String> = allowed_uids.iter().map(u32::to_string).collect();
        let text = format!(
            "network = \"{}\"\nstate_file = \"{d}/state\"\naudit_log = \"{d}/audit.log\"\nsocket = \"{d}/run/signer.sock\"\n\
             allowed_uids = [{}]\n{extra}\n[key]\nfile = \"{d}/peer.key\"\n{}\n",
            self.network,
            uids.join(", "),
            key_extra.replace("{dir}", &d),
        );
        std::fs::write(&self.config, text).unwrap();
    }

    /// `cvx-signer ARGS` (to be completed and run by the caller).
    pub fn signer(&self, args: &[&str]) -> Command {
        let mut c = Command::new(signer_bin());
        c.args(args);
        c
    }

    pub fn state(&self) -> PathBuf {
        self.dir.join("state")
    }

    pub fn audit_log(&self) -> PathBuf {
        self.dir.join("audit.log")
    }

    /// The rotated-out audit archives (`audit.log.<first>-<last>`), oldest first.
    pub fn audit_archives(&self) -> Vec<PathBuf> {
        let mut found: Vec<(u64, PathBuf)> = std::fs::read_dir(&self.dir)
            .unwrap()
            .filter_map(|e| {
                let name = e.unwrap().file_name().into_string().ok()?;
                let (first, last) = name.strip_prefix("audit.log.")?.split_once('-')?;
                last.parse::<u64>().ok()?;
                Some((first.parse().ok()?, self.dir.join(name)))
            })
            .collect();
        found.sort();
        found.into_iter().map(|(_, p)| p).collect()
    }

    /// `cvx-signer audit verify` over the archives and the live log, in order.
    pub fn verify_audit_chain(&self) -> String {
        let out = self
            .signer(&["audit", "verify"])
            .args(self.audit_archives())
            .arg(self.audit_log())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "audit verify across files: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Run the signer to completion (for start-up failures): its exit code and stderr.
    pub fn run_to_exit(&self, stdin: Option<&str>, extra: &[&str]) -> (i32, String) {
        let mut cmd = self.signer(&["run", "--config"]);
        cmd.arg(&self.config)
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        cmd.stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        });
        let mut child = cmd.spawn().unwrap();
        if let Some(s) = stdin {
            child.stdin.take().unwrap().write_all(s.as_bytes()).unwrap();
        }
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(st) = child.try_wait().unwrap() {
                let mut err = String::new();
                child
                    .stderr
                    .take()
                    .unwrap()
                    .read_to_string(&mut err)
                    .unwrap();
                return (st.code().unwrap_or(-1), err);
            }
            if Instant::now() > deadline {
                child.kill().unwrap();
                panic!("signer did not exit (it was expected to refuse to start)");
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Run `cvx-signer ARGS PATHS` to completion.
    pub fn run(&self, args: &[&str], paths: &[&Path]) -> Output {
        Command::new(signer_bin())
            .args(args)
            .args(paths)
            .output()
            .unwrap()
    }

    pub fn socket(&self) -> PathBuf {
        self.dir.join("run/signer.sock")
    }

    /// Start `cvx-signer run`; stderr goes to a log file in the dir.
    pub fn spawn(&self) -> Running {
        let log = self.dir.join(format!(
            "signer-{}.log",
            COUNTER.fetch_add(1, Ordering::SeqCst)
        ));
        let child = Command::new(signer_bin())
            .args(["run", "--config"])
            .arg(&self.config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let mut r = Running {
            child,
            log,
            socket: self.socket(),
        };
        r.wait_listening();
        r
    }

    /// A block header proposed by this signer's key at `t`.
    pub fn block(&self, t: u64, tag: u64) -> ClientMessage {
        ClientMessage::Sign(Request {
            network: self.network,
            body: SignRequest::Block(BlockHeader {
                proposer: self.public_key,
                timestamp: Timestamp(t),
                tx_count: 0,
                tx_hash: hash(&tag.to_le_bytes()),
            }),
        })
    }
}

/// A running signer (killed on drop).
pub struct Running {
    pub child: Child,
    pub log: PathBuf,
    pub socket: PathBuf,
}

impl Running {
    pub fn pid(&self) -> i32 {
        i32::try_from(self.child.id()).unwrap()
    }

    /// SIGKILL and reap.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    fn wait_listening(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !self.socket.exists() {
            if let Some(st) = self.child.try_wait().unwrap() {
                panic!("signer exited early ({st}): {}", self.log_text());
            }
            assert!(
                Instant::now() < deadline,
                "signer did not come up: {}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// A client connection of this (root) process that answered Hello.
    pub fn client(&mut self) -> Client {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                panic!("signer exited early ({st}): {}", self.log_text());
            }
            if let Ok(mut c) = Client::connect(&self.socket) {
                c.set_timeout(Some(Duration::from_secs(20))).unwrap();
                if let Ok(SignerMessage::Hello { .. }) =
                    c.call(&ClientMessage::Hello { version: 1 })
                {
                    return c;
                }
            }
            assert!(
                Instant::now() < deadline,
                "signer did not answer: {}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Stop the signer (SIGTERM: default action; it holds no state in memory that a
    /// kill loses, the watermark is durable before every signature).
    pub fn stop(&mut self) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(i32::try_from(self.child.id()).unwrap()),
            nix::sys::signal::Signal::SIGTERM,
        );
        let _ = self.child.wait();
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.kill();
    }
}

pub fn now_ms() -> u64 {
    cvx_signer::now().0
}

/// `setpriv` to `uid` (and its gid), no supplementary groups, running `prog`.
pub fn as_uid(uid: u32, prog: &Path) -> Command {
    let mut c = Command::new("setpriv");
    c.arg(format!("--reuid={uid}"))
        .arg(format!("--regid={uid}"))
        .arg("--clear-groups")
        .arg(prog);
    c
}
