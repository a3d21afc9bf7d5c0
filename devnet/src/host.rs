//! What the launcher takes from the host: free ports, private directories, log files, and
//! the one way its I/O errors are named.

use std::path::Path;

use crate::DevnetError;

/// An I/O error of the launcher, saying what it was doing.
pub(crate) fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> DevnetError {
    let what = what.into();
    move |source| DevnetError::Io { what, source }
}

/// `count` distinct free ports for the peers to listen on.
///
/// Every probe listener stays open until all are chosen: probing one at a time let the
/// kernel hand the same port out twice, and one peer of a devnet then failed with "address
/// already in use". The ports come from outside the kernel's ephemeral range
/// (`/proc/sys/net/ipv4/ip_local_port_range`) where it can: a port from inside it is free
/// only until the peer binds it, and in that gap any outgoing connection (the peers dial
/// each other as they start) may take it as its source port. Only when no port outside the
/// range is free does this fall back to ports the kernel picks.
pub(crate) fn free_ports(count: usize) -> Result<Vec<u16>, DevnetError> {
    let (lo, hi) = ephemeral_range().unwrap_or((32_768, 60_999));
    let outside: Vec<u16> = (FIRST_PORT..lo)
        .chain(hi.saturating_add(1)..=u16::MAX)
        .collect();
    // Start somewhere different each run, so that devnets started side by side do not
    // probe the same ports in the same order.
    let start = if outside.is_empty() {
        0
    } else {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        (nanos as usize ^ std::process::id() as usize) % outside.len()
    };
    let mut probes = Vec::with_capacity(count);
    for &port in outside[start..].iter().chain(&outside[..start]) {
        if probes.len() == count {
            break;
        }
        if let Ok(l) = std::net::TcpListener::bind(("127.0.0.1", port)) {
            probes.push(l);
        }
    }
    while probes.len() < count {
        probes.push(std::net::TcpListener::bind("127.0.0.1:0").map_err(io("finding free ports"))?);
    }
    probes
        .iter()
        .map(|l| l.local_addr().map(|a| a.port()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(io("finding free ports"))
}

/// The lowest port [`free_ports`] picks outside the ephemeral range: most well-known
/// services listen below it.
const FIRST_PORT: u16 = 20_000;

/// The kernel's ephemeral port range, from which it picks the source ports of outgoing
/// connections.
fn ephemeral_range() -> Option<(u16, u16)> {
    let text = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").ok()?;
    let mut it = text.split_whitespace().map(str::parse::<u16>);
    Some((it.next()?.ok()?, it.next()?.ok()?))
}

/// A new log file for a child's output.
pub(crate) fn log_file(path: &Path) -> Result<std::fs::File, DevnetError> {
    std::fs::File::create(path).map_err(io(format!("creating {}", path.display())))
}

/// A directory only this user can enter (0700), created with its parents.
pub(crate) fn mkdir_private(p: &Path) -> Result<(), DevnetError> {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::create_dir_all(p).map_err(io(format!("creating {}", p.display())))?;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o700))
        .map_err(io(format!("chmod {}", p.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The ports are distinct, free once returned, and outside the range the kernel takes
    /// source ports from: no peer's outgoing connection can take one before it binds.
    #[test]
    fn free_ports_are_distinct_bindable_and_outside_the_ephemeral_range() {
        let ports = free_ports(8).unwrap();
        let mut sorted = ports.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), 8, "distinct: {ports:?}");
        let (lo, hi) = ephemeral_range().expect("Linux names its ephemeral range");
        for p in &ports {
            assert!(
                *p < lo || *p > hi,
                "{p} is inside the ephemeral range {lo}-{hi}"
            );
            assert!(*p >= FIRST_PORT, "{p}");
            drop(std::net::TcpListener::bind(("127.0.0.1", *p)).unwrap());
        }
    }
}
