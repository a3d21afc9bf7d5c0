//! `--netns`: every peer and its signer in its own network namespace, joined through a
//! bridge inside a hub namespace the launcher creates and removes.
//!
//! Layout (one devnet; the addresses are private to its namespaces, so two devnets do
//! not collide):
//! - `cvxd<PID>-hub`: bridge `br0` with 10.77.0.254/24; the launcher's relays, checker
//!   and the load generator live here;
//! - `cvxd<PID>-p<I>`: peer I and its signer; `eth0` = 10.77.0.<I+1>/24, the other end
//!   of its veth pair (`v<I>`) on the hub's bridge.
//!
//! Everything is made with `ip -n NS ...` inside the new namespaces: nothing touches the
//! host's own interfaces or routes. `PID` is the launcher's; it holds an exclusive
//! `flock` on `/run/cvx-devnet/cvxd<PID>.lock` while it runs. A run first removes the
//! namespaces of launchers whose lock is free (they died, e.g. kill -9): it kills the
//! processes still inside them, then deletes them. Drop removes this run's.

use std::fs::File;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Command;

use nix::fcntl::{Flock, FlockArg};

/// Every devnet namespace's name starts with this.
pub const PREFIX: &str = "cvxd";
/// Where the launchers' locks live.
pub const LOCK_DIR: &str = "/run/cvx-devnet";
/// The hub's address on the bridge.
pub const HUB_ADDR: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 254);
/// At most this many peers (10.77.0.1 ..= 10.77.0.253).
pub const MAX_PEERS: usize = 253;

/// Why the namespaces could not be made or removed.
#[derive(Debug, thiserror::Error)]
pub enum NetnsError {
    /// Not root, or no `ip` command.
    #[error(
        "network namespaces cannot be made here ({0}); --netns needs root (CAP_SYS_ADMIN and CAP_NET_ADMIN) and the `ip` command (Debian: iproute2)"
    )]
    Unavailable(String),
    /// An `ip` command failed.
    #[error("`ip {args}` failed: {stderr}")]
    Ip {
        /// The arguments.
        args: String,
        /// What it printed.
        stderr: String,
    },
    /// Too many peers for the subnet.
    #[error("--netns supports at most {MAX_PEERS} peers, not {0}")]
    TooMany(usize),
    /// A file or system call failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The OS error.
        source: std::io::Error,
    },
}

impl NetnsError {
    /// Stable code for the JSON report.
    #[must_use]
    pub fn code(&self) -> &'static str {
        match self {
            Self::Unavailable(_) => "NETNS_UNAVAILABLE",
            Self::Ip { .. } => "NETNS_IP",
            Self::TooMany(_) => "NETNS_TOO_MANY",
            Self::Io { .. } => "NETNS_IO",
        }
    }
}

fn ip(args: &[&str]) -> Result<String, NetnsError> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| NetnsError::Unavailable(format!("running ip: {e}")))?;
    if !out.status.success() {
        return Err(NetnsError::Ip {
            args: args.join(" "),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Peer `i`'s address.
#[must_use]
pub fn peer_addr(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(10, 77, 0, u8::try_from(i + 1).unwrap_or(253))
}

/// This run's namespaces (removed on drop).
#[derive(Debug)]
pub struct Netns {
    tag: String,
    hub: String,
    peers: Vec<String>,
    lock_path: PathBuf,
    lock: Option<Flock<File>>,
    removed: bool,
}

impl Netns {
    /// Clean up what dead launchers left, then make the hub and `n` peer namespaces.
    ///
    /// # Errors
    /// [`NetnsError`]; what was made is removed again.
    pub fn create(n: usize) -> Result<Self, NetnsError> {
        if n > MAX_PEERS {
            return Err(NetnsError::TooMany(n));
        }
        if !nix::unistd::geteuid().is_root() {
            return Err(NetnsError::Unavailable("not running as root".into()));
        }
        std::fs::create_dir_all(LOCK_DIR).map_err(|source| NetnsError::Io {
            what: format!("creating {LOCK_DIR}"),
            source,
        })?;
        cleanup_stale()?;
        let tag = format!("{PREFIX}{}", std::process::id());
        let lock_path = Path::new(LOCK_DIR).join(format!("{tag}.lock"));
        let file = File::create(&lock_path).map_err(|source| NetnsError::Io {
            what: format!("creating {}", lock_path.display()),
            source,
        })?;
        let lock = Flock::lock(file, FlockArg::LockExclusiveNonblock).map_err(|(_, e)| {
            NetnsError::Io {
                what: format!("locking {}", lock_path.display()),
                source: e.into(),
            }
        })?;
        let mut me = Self {
            hub: format!("{tag}-hub"),
            peers: (0..n).map(|i| format!("{tag}-p{i}")).collect(),
            tag,
            lock_path,
            lock: Some(lock),
            removed: false,
        };
        me.build()?;
        Ok(me)
    }

    fn build(&mut self) -> Result<(), NetnsError> {
        let hub = self.hub.clone();
        ip(&["netns", "add", &hub])?;
        ip(&["-n", &hub, "link", "set", "lo", "up"])?;
        ip(&["-n", &hub, "link", "add", "br0", "type", "bridge"])?;
        ip(&[
            "-n",
            &hub,
            "addr",
            "add",
            &format!("{HUB_ADDR}/24"),
            "dev",
            "br0",
        ])?;
        ip(&["-n", &hub, "link", "set", "br0", "up"])?;
        for (i, ns) in self.peers.clone().iter().enumerate() {
            ip(&["netns", "add", ns])?;
            ip(&["-n", ns, "link", "set", "lo", "up"])?;
            let v = format!("v{i}");
            ip(&[
                "-n", &hub, "link", "add", &v, "type", "veth", "peer", "name", "eth0", "netns", ns,
            ])?;
            ip(&["-n", &hub, "link", "set", &v, "master", "br0"])?;
            ip(&["-n", &hub, "link", "set", &v, "up"])?;
            ip(&[
                "-n",
                ns,
                "addr",
                "add",
                &format!("{}/24", peer_addr(i)),
                "dev",
                "eth0",
            ])?;
            ip(&["-n", ns, "link", "set", "eth0", "up"])?;
        }
        Ok(())
    }

    /// The hub namespace's name.
    #[must_use]
    pub fn hub(&self) -> &str {
        &self.hub
    }

    /// Peer `i`'s namespace name.
    #[must_use]
    pub fn peer(&self, i: usize) -> Option<&str> {
        self.peers.get(i).map(String::as_str)
    }

    /// The name prefix of this run's namespaces (`cvxd<PID>`).
    #[must_use]
    pub fn tag(&self) -> &str {
        &self.tag
    }

    /// A command that runs `program` inside peer `i`'s namespace.
    #[must_use]
    pub fn command_in(&self, i: usize, program: &Path) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", self.peer(i).unwrap_or("")])
            .arg(program);
        c
    }

    /// Move the calling thread into the hub namespace (sockets it makes from now on live
    /// there). Call before starting the async runtime so that its threads inherit it.
    ///
    /// # Errors
    /// [`NetnsError::Io`].
    pub fn enter_hub(&self) -> Result<(), NetnsError> {
        let p = Path::new("/run/netns").join(&self.hub);
        let f = File::open(&p).map_err(|source| NetnsError::Io {
            what: format!("opening {}", p.display()),
            source,
        })?;
        nix::sched::setns(&f, nix::sched::CloneFlags::CLONE_NEWNET).map_err(|e| NetnsError::Io {
            what: format!("entering {}", self.hub),
            source: e.into(),
        })
    }

    /// Kill what still runs inside, delete the namespaces, release the lock.
    pub fn remove(&mut self) {
        if self.removed {
            return;
        }
        self.removed = true;
        let mut names = self.peers.clone();
        names.push(self.hub.clone());
        remove_namespaces(&names);
        let _ = std::fs::remove_file(&self.lock_path);
        self.lock = None;
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        self.remove();
    }
}

fn remove_namespaces(names: &[String]) {
    for ns in names {
        if let Ok(pids) = ip(&["netns", "pids", ns]) {
            // The launcher itself lives in its hub: never itself.
            let me = i32::try_from(std::process::id()).unwrap_or(0);
            for pid in pids
                .split_whitespace()
                .filter_map(|p| p.parse::<i32>().ok())
                .filter(|p| *p != me)
            {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
        }
    }
    for ns in names {
        let _ = ip(&["netns", "del", ns]);
    }
}

/// The devnet namespaces that exist now, by owner tag (`cvxd<PID>`).
///
/// # Errors
/// [`NetnsError`] when `ip netns list` fails.
pub fn existing() -> Result<std::collections::BTreeMap<String, Vec<String>>, NetnsError> {
    let list = ip(&["netns", "list"])?;
    Ok(group(&list))
}

fn group(list: &str) -> std::collections::BTreeMap<String, Vec<String>> {
    let mut out: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for name in list.lines().filter_map(|l| l.split_whitespace().next()) {
        let Some(rest) = name.strip_prefix(PREFIX) else {
            continue;
        };
        let Some((pid, _)) = rest.split_once('-') else {
            continue;
        };
        if pid.is_empty() || !pid.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        out.entry(format!("{PREFIX}{pid}"))
            .or_default()
            .push(name.to_owned());
    }
    out
}

/// Remove the namespaces of launchers that no longer run (their lock is free); the
/// tags removed.
///
/// # Errors
/// [`NetnsError`] when `ip netns list` fails.
pub fn cleanup_stale() -> Result<Vec<String>, NetnsError> {
    let mut removed = Vec::new();
    for (tag, names) in existing()? {
        let lock_path = Path::new(LOCK_DIR).join(format!("{tag}.lock"));
        let owner_alive = File::open(&lock_path)
            .ok()
            .is_some_and(|f| Flock::lock(f, FlockArg::LockExclusiveNonblock).is_err());
        if owner_alive {
            continue;
        }
        remove_namespaces(&names);
        let _ = std::fs::remove_file(&lock_path);
        removed.push(tag);
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_grouped_by_owner_and_others_are_left_alone() {
        let g =
            group("cvxd12-hub (id: 3)\ncvxd12-p0 (id: 4)\ncvxd9-p1\nother\ncvxdx-p0\ncvxd-p0\n");
        assert_eq!(g.len(), 2);
        assert_eq!(g["cvxd12"], vec!["cvxd12-hub", "cvxd12-p0"]);
        assert_eq!(g["cvxd9"], vec!["cvxd9-p1"]);
    }

    #[test]
    fn addresses() {
        assert_eq!(peer_addr(0), Ipv4Addr::new(10, 77, 0, 1));
        assert_eq!(peer_addr(252), Ipv4Addr::new(10, 77, 0, 253));
    }

    /// One launcher per process: the namespace tests take turns.
    static ONE: std::sync::Mutex<()> = std::sync::Mutex::new(());

    fn root() -> bool {
        if nix::unistd::geteuid().is_root() && ip(&["netns", "list"]).is_ok() {
            return true;
        }
        eprintln!("skipped: network namespaces need root and iproute2");
        false
    }

    /// Real namespaces: the peers reach each other through the hub's bridge, the host's
    /// interfaces are untouched, and everything is gone after drop.
    #[test]
    fn create_connect_remove() {
        if !root() {
            return;
        }
        let _one = ONE
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let host_links = ip(&["-o", "link"]).unwrap();
        let host_routes = ip(&["route"]).unwrap();
        let mut ns = Netns::create(2).unwrap();
        let tag = ns.tag().to_owned();
        assert_eq!(existing().unwrap()[&tag].len(), 3);
        // A listener on the hub's bridge address (a thread that entered the hub), reached
        // from peer 0's namespace through its veth and the bridge.
        let hub = ns.hub().to_owned();
        let (tx, rx) = std::sync::mpsc::channel();
        let server = std::thread::spawn(move || {
            let f = File::open(Path::new("/run/netns").join(&hub)).unwrap();
            nix::sched::setns(&f, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
            let l = std::net::TcpListener::bind((HUB_ADDR, 0)).unwrap();
            tx.send(l.local_addr().unwrap().port()).unwrap();
            let (mut c, from) = l.accept().unwrap();
            let mut got = String::new();
            std::io::Read::read_to_string(&mut c, &mut got).unwrap();
            (from.ip(), got)
        });
        let port = rx.recv().unwrap();
        let st = Command::new("ip")
            .args(["netns", "exec", ns.peer(0).unwrap(), "bash", "-c"])
            .arg(format!("echo hi > /dev/tcp/{HUB_ADDR}/{port}"))
            .status()
            .unwrap();
        assert!(st.success());
        let (from, got) = server.join().unwrap();
        assert_eq!(from, std::net::IpAddr::V4(peer_addr(0)));
        assert_eq!(got, "hi\n");
        assert_eq!(ip(&["-o", "link"]).unwrap(), host_links);
        assert_eq!(ip(&["route"]).unwrap(), host_routes);
        ns.remove();
        assert!(!existing().unwrap().contains_key(&tag));
        assert!(!Path::new(LOCK_DIR).join(format!("{tag}.lock")).exists());
    }

    /// What a killed launcher left (namespaces, a process inside, a lock nobody holds) is
    /// removed by the next run; a live launcher's namespaces are not.
    #[test]
    fn stale_namespaces_are_cleaned_and_live_ones_kept() {
        if !root() {
            return;
        }
        let _one = ONE
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let live = Netns::create(1).unwrap();
        // A fake dead launcher: pid 999999999 does not exist; its lock file is unlocked.
        let stale = format!("{PREFIX}999999999");
        std::fs::write(Path::new(LOCK_DIR).join(format!("{stale}.lock")), "").unwrap();
        ip(&["netns", "add", &format!("{stale}-hub")]).unwrap();
        let mut sleeper = Command::new("ip")
            .args(["netns", "exec", &format!("{stale}-hub"), "sleep", "600"])
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(300));
        let removed = cleanup_stale().unwrap();
        assert!(removed.contains(&stale), "{removed:?}");
        assert!(!removed.contains(&live.tag().to_owned()));
        let now = existing().unwrap();
        assert!(!now.contains_key(&stale));
        assert!(now.contains_key(live.tag()));
        let st = sleeper.wait().unwrap();
        assert!(!st.success(), "the process inside was killed");
    }
}
