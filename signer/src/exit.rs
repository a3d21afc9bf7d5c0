//! Exit codes: stable, documented in docs/signer.md and `cvx-signer --help`.

/// How `cvx-signer` ends. Besides these, a process killed by a signal shows the shell
/// status 128 + signal: 134 (SIGABRT) after a panic (panics abort by design), 159
/// (SIGSYS) when the seccomp filter killed a forbidden system call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Exit {
    /// 0: success (or a clean shutdown).
    Ok = 0,
    /// 2: bad command line.
    Usage = 2,
    /// 3: the config file is unreadable, has an unknown field, or an invalid value.
    Config = 3,
    /// 4: the key file: missing, loose permissions, wrong owner, wrong passphrase or
    /// identity, not a cvx key, or its seed does not derive its recorded public key.
    Key = 4,
    /// 5: the state file: missing, truncated, corrupt, rolled back, for another
    /// network, in use by another signer, or (init) already present.
    State = 5,
    /// 6: the audit log: missing, broken chain, or disagreeing with the state.
    Audit = 6,
    /// 7: the listening socket could not be taken or created.
    Socket = 7,
    /// 8: the sandbox could not be entered (incl. Landlock not fully enforced with
    /// --require-landlock).
    Sandbox = 8,
    /// 9: a fatal error while serving (poll failed).
    Serve = 9,
    /// 10: client commands (status, lock): cannot connect, or the signer refused.
    Client = 10,
    /// 11: export-watermark / import-watermark: the watermark file is unreadable,
    /// malformed, of another version, or for another network or key.
    Migrate = 11,
}

impl Exit {
    /// Every code, for the help text and docs.
    pub const ALL: [Self; 11] = [
        Self::Ok,
        Self::Usage,
        Self::Config,
        Self::Key,
        Self::State,
        Self::Audit,
        Self::Socket,
        Self::Sandbox,
        Self::Serve,
        Self::Client,
        Self::Migrate,
    ];

    /// The numeric code.
    #[must_use]
    pub const fn code(self) -> u8 {
        self as u8
    }

    /// One-line meaning.
    #[must_use]
    pub const fn meaning(self) -> &'static str {
        match self {
            Self::Ok => "success",
            Self::Usage => "bad command line",
            Self::Config => "config file unreadable, unknown field or invalid value",
            Self::Key => {
                "key file: missing, loose permissions, wrong passphrase/identity, not a cvx key, key mismatch"
            }
            Self::State => {
                "state file: missing, truncated, corrupt, rolled back, other network, in use, or exists (init)"
            }
            Self::Audit => "audit log: missing, broken hash chain, or disagrees with the state",
            Self::Socket => "listening socket could not be taken or created",
            Self::Sandbox => {
                "sandbox could not be entered (or Landlock not fully enforced with --require-landlock)"
            }
            Self::Serve => "fatal error while serving",
            Self::Client => "client command: cannot connect, protocol error, or refused",
            Self::Migrate => {
                "watermark file: unreadable, malformed, other version, or for another network or key"
            }
        }
    }
}
