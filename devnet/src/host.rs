//! What the launcher takes from the host: free ports, private directories, log files, and
//! the one way its I/O errors are named.

use std::path::Path;

use crate::DevnetError;

/// An I/O error of the launcher, saying what it was doing.
pub(crate) fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> DevnetError {
    let what = what.into();
    move |source| DevnetError::Io { what, source }
}

/// `count` distinct free ports. Every probe listener stays open until all are chosen:
/// probing one at a time let the kernel hand the same port out twice, and one peer of a
/// devnet then failed with "address already in use".
pub(crate) fn free_ports(count: usize) -> Result<Vec<u16>, DevnetError> {
    let probes = (0..count)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0"))
        .collect::<Result<Vec<_>, _>>()
        .map_err(io("finding free ports"))?;
    probes
        .iter()
        .map(|l| l.local_addr().map(|a| a.port()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(io("finding free ports"))
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
