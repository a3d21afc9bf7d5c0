//! Landlock: after start-up the process may open no file, create or bind or connect no
//! TCP socket, connect to no abstract Unix socket and signal no process outside itself
//! ([`deny_all`], the signer); or, for a networked service, reach only the paths it
//! names ([`restrict_fs`], the peer: its data directory). Descriptors opened before
//! (the state file, the audit log, the listening socket) keep working: Landlock checks
//! at open time.

use std::path::Path;

use landlock::{
    ABI, Access, AccessFs, AccessNet, BitFlags, CompatLevel, Compatible, LandlockStatus,
    PathBeneath, PathFd, RestrictionStatus, Ruleset, RulesetAttr, RulesetCreatedAttr,
    RulesetStatus, Scope,
};

/// The Landlock ABI whose rights cvx asks for: filesystem (incl. truncate and device
/// ioctl, ABI 3/5), TCP bind/connect (ABI 4), abstract-socket and signal scoping (ABI 6).
/// ABI 7+ add logging controls, no new rights. On a kernel with ABI >= 6 the ruleset is
/// fully enforced.
pub const REQUESTED_ABI: ABI = ABI::V6;

/// How completely the kernel enforces the ruleset.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Enforcement {
    /// Every requested right is denied.
    Full,
    /// Some rights are denied (older kernel).
    Partial,
    /// Landlock is unavailable: nothing is denied by it.
    None,
}

impl Enforcement {
    /// Lower-case name for logs.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Self::Full => "full",
            Self::Partial => "partial",
            Self::None => "none",
        }
    }
}

/// What [`deny_all`] achieved.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LandlockReport {
    /// The kernel's Landlock ABI (0 when unavailable).
    pub kernel_abi: i32,
    /// Enforcement of the requested ruleset.
    pub enforcement: Enforcement,
}

/// Why Landlock could not be applied (as required).
#[derive(Debug, thiserror::Error)]
pub enum LandlockError {
    /// The ruleset could not be built or applied.
    #[error("Landlock ruleset failed: {0}")]
    Ruleset(#[from] landlock::RulesetError),
    /// A path to allow does not exist or cannot be opened.
    #[error(transparent)]
    Path(#[from] PathRuleError),
    /// Enforcement is below what `--require-landlock` demands.
    #[error(
        "Landlock enforcement is {got} (kernel ABI {abi}), but full enforcement (ABI >= 6) is required; \
         run on Linux >= 6.12 with Landlock enabled (lsm=landlock,...), or drop --require-landlock"
    )]
    NotFull {
        /// What the kernel gave.
        got: &'static str,
        /// The kernel ABI.
        abi: i32,
    },
}

/// Deny all filesystem access, TCP, abstract Unix sockets and signals outside the
/// process, for the rest of the process's life. With `require`, anything short of
/// full enforcement is an error.
///
/// # Errors
/// [`LandlockError`].
pub fn deny_all(require: bool) -> Result<LandlockReport, LandlockError> {
    let status = Ruleset::default()
        .set_compatibility(CompatLevel::BestEffort)
        .handle_access(AccessFs::from_all(REQUESTED_ABI))?
        .handle_access(AccessNet::from_all(REQUESTED_ABI))?
        .scope(Scope::from_all(REQUESTED_ABI))?
        .create()?
        .restrict_self()?;
    report(&status, require)
}

/// The filesystem a long-running service may still reach after start-up.
#[derive(Clone, Copy, Debug, Default)]
pub struct FsAccess<'a> {
    /// Directories (or files) the process may read, write, create, rename and remove
    /// beneath. Each must exist.
    pub read_write: &'a [&'a Path],
    /// Files or directories it may still read (and, for directories, list). Each must
    /// exist.
    pub read_only: &'a [&'a Path],
    /// Files it may read if they exist (skipped when missing), e.g. the resolver's
    /// `/etc/hosts`.
    pub read_if_present: &'a [&'a Path],
}

/// Why a path of an [`FsAccess`] cannot become a rule.
#[derive(Debug, thiserror::Error)]
#[error(
    "Landlock rule for {path}: {source}; the path must exist and be readable before the sandbox is entered"
)]
pub struct PathRuleError {
    /// The path.
    pub path: std::path::PathBuf,
    /// The OS error.
    pub source: std::io::Error,
}

fn rule(path: &Path, access: BitFlags<AccessFs>) -> Result<PathBeneath<PathFd>, LandlockError> {
    let fd = PathFd::new(path).map_err(|e| {
        LandlockError::Path(PathRuleError {
            path: path.to_path_buf(),
            source: std::io::Error::other(e.to_string()),
        })
    })?;
    let is_dir = std::fs::metadata(path)
        .map_err(|source| {
            LandlockError::Path(PathRuleError {
                path: path.to_path_buf(),
                source,
            })
        })?
        .is_dir();
    let access = if is_dir {
        access
    } else {
        access & AccessFs::from_file(REQUESTED_ABI)
    };
    Ok(PathBeneath::new(fd, access))
}

/// Deny all filesystem access except `fs`, and abstract Unix sockets and signals outside
/// the process, for the rest of the process's life (this thread and the threads it
/// creates later: call before any thread is spawned). TCP stays open (a peer dials and
/// listens), and so does `connect()` to a pathname Unix socket, which Landlock up to
/// ABI 7 does not mediate (the peer's signer socket). Descriptors opened before keep
/// working. With `require`, anything short of full enforcement is an error.
///
/// # Errors
/// [`LandlockError`].
pub fn restrict_fs(fs: &FsAccess<'_>, require: bool) -> Result<LandlockReport, LandlockError> {
    let all = AccessFs::from_all(REQUESTED_ABI);
    let read = AccessFs::from_read(REQUESTED_ABI);
    let mut rules = Vec::new();
    for p in fs.read_write {
        rules.push(rule(p, all)?);
    }
    for p in fs.read_only {
        rules.push(rule(p, read)?);
    }
    for p in fs.read_if_present.iter().filter(|p| p.exists()) {
        rules.push(rule(p, read)?);
    }
    let status = Ruleset::default()
        .set_compatibility(CompatLevel::BestEffort)
        .handle_access(all)?
        .scope(Scope::from_all(REQUESTED_ABI))?
        .create()?
        .add_rules(rules.into_iter().map(Ok::<_, landlock::RulesetError>))?
        .restrict_self()?;
    report(&status, require)
}

fn report(status: &RestrictionStatus, require: bool) -> Result<LandlockReport, LandlockError> {
    let kernel_abi = match status.landlock {
        LandlockStatus::Available {
            effective_abi,
            kernel_abi,
        } => kernel_abi.unwrap_or(effective_abi as i32),
        LandlockStatus::NotEnabled | LandlockStatus::NotImplemented => 0,
    };
    let enforcement = match status.ruleset {
        RulesetStatus::FullyEnforced => Enforcement::Full,
        RulesetStatus::PartiallyEnforced => Enforcement::Partial,
        RulesetStatus::NotEnforced => Enforcement::None,
    };
    if require && enforcement != Enforcement::Full {
        return Err(LandlockError::NotFull {
            got: enforcement.name(),
            abi: kernel_abi,
        });
    }
    Ok(LandlockReport {
        kernel_abi,
        enforcement,
    })
}
