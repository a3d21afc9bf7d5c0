//! Landlock: after start-up the process may open no file, create or bind or connect no
//! TCP socket, connect to no abstract Unix socket and signal no process outside itself.
//! Descriptors opened before (the state file, the audit log, the listening socket)
//! keep working: Landlock checks at open time.

use landlock::{
    ABI, Access, AccessFs, AccessNet, CompatLevel, Compatible, LandlockStatus, Ruleset,
    RulesetAttr, RulesetStatus, Scope,
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
