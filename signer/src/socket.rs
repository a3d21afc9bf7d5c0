//! The listening socket: from systemd socket activation, or bound by the signer itself
//! (mode 0660 in a directory of mode 0750 that is not group- or world-writable) before
//! the sandbox. Either way it is set non-blocking for the poll loop.

use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};

use nix::sys::stat::{Mode, umask};

/// Why the socket could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum SocketError {
    /// Activation variables present but unusable.
    #[error("socket activation: {0}")]
    Activation(#[from] cvx_sandbox::activation::ActivationError),
    /// Neither activation nor a path.
    #[error(
        "no socket: set `socket = \"/run/cvx-signer/signer.sock\"` in the config, or start under a systemd .socket unit"
    )]
    None,
    /// Directory unsafe.
    #[error(
        "socket directory {dir} has mode {mode:o}: it must not be group- or world-writable (chmod 750 {dir})"
    )]
    DirMode {
        /// The directory.
        dir: PathBuf,
        /// Its mode.
        mode: u32,
    },
    /// Something other than a socket sits at the path.
    #[error("{path} exists and is not a socket; refusing to replace it")]
    NotSocket {
        /// The path.
        path: PathBuf,
    },
    /// OS error.
    #[error("socket {path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
}

/// Take the activated socket, or create one at `path`.
///
/// # Errors
/// [`SocketError`].
pub fn listen(path: Option<&Path>) -> Result<(UnixListener, String), SocketError> {
    if let Some(fd) = cvx_sandbox::activation::take_listen_fd()? {
        let l = UnixListener::from(fd);
        l.set_nonblocking(true).map_err(|source| SocketError::Io {
            path: PathBuf::from("<activated fd 3>"),
            source,
        })?;
        return Ok((l, "systemd socket activation (fd 3)".to_owned()));
    }
    let path = path.ok_or(SocketError::None)?;
    let io = |source| SocketError::Io {
        path: path.to_owned(),
        source,
    };
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    match std::fs::metadata(dir) {
        Ok(md) => {
            let mode = md.mode() & 0o7777;
            if mode & 0o022 != 0 {
                return Err(SocketError::DirMode {
                    dir: dir.to_owned(),
                    mode,
                });
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::DirBuilder::new()
                .mode(0o750)
                .create(dir)
                .map_err(io)?;
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o750)).map_err(io)?;
        }
        Err(e) => return Err(io(e)),
    }
    match std::fs::symlink_metadata(path) {
        Ok(md) if md.file_type().is_socket() => std::fs::remove_file(path).map_err(io)?,
        Ok(_) => {
            return Err(SocketError::NotSocket {
                path: path.to_owned(),
            });
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io(e)),
    }
    // The socket is born 0660 (no window where others could connect), then made so
    // explicitly.
    let old = umask(Mode::from_bits_truncate(0o117));
    let bound = UnixListener::bind(path);
    umask(old);
    let l = bound.map_err(io)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660)).map_err(io)?;
    l.set_nonblocking(true).map_err(io)?;
    Ok((l, format!("bound {}", path.display())))
}
