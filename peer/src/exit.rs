//! The documented exit codes of `cvx-peer`.

/// Exit codes (stable; `cvx-peer --help` lists them).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    /// 0: success or clean shutdown.
    Ok,
    /// 2: bad command line.
    Usage,
    /// 3: config unreadable or invalid.
    Config,
    /// 4: genesis unreadable or invalid.
    Genesis,
    /// 5: store could not be opened or written.
    Store,
    /// 6: signer unreachable, wrong key or network.
    Signer,
    /// 7: port could not be bound.
    Bind,
    /// 8: consensus halted (fork detected).
    Halted,
    /// 9: client command failed: cannot connect, refused, timed out.
    Client,
    /// 10: a submitted transaction was refused or failed.
    TxFailed,
    /// 11: devnet failed (no longer returned by cvx-peer: `cvx-devnet` exits 11 itself).
    Devnet,
    /// 12: the peer's sandbox (Landlock, seccomp) could not be entered.
    Sandbox,
    /// 13: joining by state sync failed.
    Join,
    /// 14: halt: the signer could not be locked (the peer was stopped).
    HaltLock,
    /// 15: halt: the peer could not be stopped (the signer was locked).
    HaltStop,
    /// 16: halt: neither step succeeded.
    HaltBoth,
}

impl Exit {
    /// Every code.
    pub const ALL: [Self; 16] = [
        Self::Ok,
        Self::Usage,
        Self::Config,
        Self::Genesis,
        Self::Store,
        Self::Signer,
        Self::Bind,
        Self::Halted,
        Self::Client,
        Self::TxFailed,
        Self::Devnet,
        Self::Sandbox,
        Self::Join,
        Self::HaltLock,
        Self::HaltStop,
        Self::HaltBoth,
    ];

    /// The process exit code.
    #[must_use]
    pub const fn code(self) -> u8 {
        match self {
            Self::Ok => 0,
            Self::Usage => 2,
            Self::Config => 3,
            Self::Genesis => 4,
            Self::Store => 5,
            Self::Signer => 6,
            Self::Bind => 7,
            Self::Halted => 8,
            Self::Client => 9,
            Self::TxFailed => 10,
            Self::Devnet => 11,
            Self::Sandbox => 12,
            Self::Join => 13,
            Self::HaltLock => 14,
            Self::HaltStop => 15,
            Self::HaltBoth => 16,
        }
    }

    /// What it means.
    #[must_use]
    pub const fn meaning(self) -> &'static str {
        match self {
            Self::Ok => "success (or clean shutdown)",
            Self::Usage => "bad command line",
            Self::Config => "config: unreadable, unknown field, invalid value",
            Self::Genesis => "genesis: unreadable or not a canonical genesis",
            Self::Store => "store: cannot open or write the cvx-etch file",
            Self::Signer => "signer: unreachable, wrong key, wrong network, locked",
            Self::Bind => "the peer port could not be bound",
            Self::Halted => "consensus halted on a detected fork",
            Self::Client => "client command: cannot connect, refused, timed out",
            Self::TxFailed => "the submitted transaction was refused or failed",
            Self::Devnet => {
                "(not returned by cvx-peer any more: the devnet is `cvx-devnet`, which exits 11 when its binaries are missing or a child process failed)"
            }
            Self::Sandbox => {
                "sandbox: Landlock or seccomp could not be applied (or Landlock is not fully enforced under require_landlock)"
            }
            Self::Join => {
                "state-sync join or start-up resync: no source offered a state confirmed by more than 1/3 of stake, or no finality certificate could move the signer to it"
            }
            Self::HaltLock => {
                "halt: the peer was stopped, but the signer could NOT be locked (lock it with cvx-signer lock, or stop cvx-signer)"
            }
            Self::HaltStop => "halt: the signer was locked, but the peer could NOT be stopped",
            Self::HaltBoth => {
                "halt: the signer could NOT be locked and the peer could NOT be stopped"
            }
        }
    }
}

impl From<&crate::error::NodeError> for Exit {
    fn from(e: &crate::error::NodeError) -> Self {
        use crate::error::NodeError as E;
        match e {
            E::Genesis { .. } => Self::Genesis,
            E::Store { .. } => Self::Store,
            E::Signer(_) => Self::Signer,
            E::Bind { .. } => Self::Bind,
            E::Halted(_) => Self::Halted,
            E::Join(_) => Self::Join,
        }
    }
}
