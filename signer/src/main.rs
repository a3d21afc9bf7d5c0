//! `cvx-signer`: parse arguments, call the library, print, map errors to exit codes.

#![forbid(unsafe_code)]

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{CommandFactory as _, FromArgMatches as _};
use cvx_protocol::policy::{Policy, Watermark};
use cvx_protocol::signer_wire::{self, AuditEvent, ClientMessage, SignerMessage, StateRecord};
use cvx_signer::audit::{self, AuditLog, AuditLogError};
use cvx_signer::client::Client;
use cvx_signer::config::{self, Settings};
use cvx_signer::exit::Exit;
use cvx_signer::keys::{self, KeygenTarget, PassphraseFrom};
use cvx_signer::serve::{self, Signer};
use cvx_signer::state::StateFile;
use cvx_signer::{sandbox, socket};

mod cli;
mod migrate_cmd;

#[cfg(test)]
use cli::VERSION;
use cli::{AuditCmd, Cli, Cmd, KeygenArgs, Target};
use migrate_cmd::{cmd_export, cmd_import};

fn exit_codes() -> String {
    let mut s = String::from("Exit codes:\n");
    for e in Exit::ALL {
        s.push_str(&format!("  {:>3}  {}\n", e.code(), e.meaning()));
    }
    s.push_str("  134  killed by SIGABRT: a panic (panics abort by design) or a stack overflow\n");
    s.push_str("  139  killed by SIGSEGV: an invalid memory access, or kill -SEGV\n");
    s.push_str("  159  killed by SIGSYS: the seccomp filter stopped a forbidden system call\n");
    s.push_str("\nThe passphrase comes from the terminal or --passphrase-fd, never from argv or the environment.");
    s
}

struct Failure(Exit, String);

impl<E: std::fmt::Display> From<(Exit, E)> for Failure {
    fn from((code, e): (Exit, E)) -> Self {
        Self(code, e.to_string())
    }
}

type Res = Result<(), Failure>;

fn usage(msg: &str) -> Failure {
    Failure(
        Exit::Usage,
        format!("{msg}\n\nFor more information, try 'cvx-signer --help'."),
    )
}

const NO_ARGV_PASSPHRASE: &str =
    "passphrases are never taken from the command line: use --passphrase-fd N or the terminal";

fn out(text: &str) {
    let mut o = std::io::stdout().lock();
    let _ = o.write_all(text.as_bytes());
    let _ = o.flush();
}

fn settings(path: &Path) -> Result<Settings, Failure> {
    config::load(path).map_err(|e| (Exit::Config, e).into())
}

fn init_logging() {
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_target(false)
        .try_init();
}

fn cmd_init(config: &Path) -> Res {
    let s = settings(config)?;
    if s.state_file.exists() {
        return Err((
            Exit::State,
            cvx_signer::state::StateError::Exists {
                path: s.state_file.clone(),
            },
        )
            .into());
    }
    let now = cvx_signer::now();
    let head = AuditLog::create(&s.audit_log, &s.network, now).map_err(|e| (Exit::Audit, e))?;
    StateFile::create(
        &s.state_file,
        StateRecord {
            network: s.network,
            locked: false,
            audit: head,
            watermark: Watermark::default(),
        },
    )
    .map_err(|e| (Exit::State, e))?;
    out(&format!(
        "created state {} and audit log {} for network {}\n",
        s.state_file.display(),
        s.audit_log.display(),
        s.network
    ));
    Ok(())
}

fn audit_exit(e: &AuditLogError) -> Exit {
    match e {
        AuditLogError::RolledBack { .. } => Exit::State,
        _ => Exit::Audit,
    }
}

/// At start (before the sandbox): archive an audit log of at least
/// `audit_rotate_bytes` and continue it in a new file. The state first records the
/// log's whole (synced) head, so the new file begins exactly at the state's durable
/// head. Returns the log to serve with and the last state sequence the log accounts
/// for: the rotation commit adds no records, so when the log was complete before it,
/// the new sequence counts as logged (no `Gap` at start); otherwise the genuine gap is
/// recorded as before.
fn rotate_audit_if_large(
    s: &Settings,
    state: &mut StateFile,
    log: AuditLog,
    summary: &signer_wire::AuditSummary,
) -> Result<(AuditLog, u64), Failure> {
    if s.audit_rotate_bytes == 0 || summary.verified_len < s.audit_rotate_bytes {
        return Ok((log, summary.last_sequence()));
    }
    let head = log.durable_head();
    let complete = summary.last_sequence() >= state.current().sequence;
    if state.current().record.audit != head {
        let mut record = state.current().record.clone();
        record.audit = head;
        state.commit(record).map_err(|e| (Exit::State, e))?;
    }
    let (log, archive) = log
        .rotate(&s.network, summary.last_sequence())
        .map_err(|e| Failure(audit_exit(&e), e.to_string()))?;
    tracing::info!(
        archive = %archive.display(),
        records = head.records,
        bytes = summary.verified_len,
        "audit log rotated: archived read-only and continued in a new file"
    );
    let logged = if complete {
        state.current().sequence
    } else {
        summary.last_sequence()
    };
    Ok((log, logged))
}

fn cmd_run(config: &Path, passphrase_fd: Option<i32>, require_landlock: bool) -> Res {
    let mut s = settings(config)?;
    s.require_landlock |= require_landlock;
    init_logging();
    let mut state = StateFile::open(&s.state_file, &s.network).map_err(|e| (Exit::State, e))?;
    if let Some(why) = state
        .other_slot
        .as_ref()
        .filter(|w| **w != signer_wire::SlotError::Empty)
    {
        tracing::warn!(path = %s.state_file.display(), reason = %why,
            "the older state slot is invalid (a torn update from a crash, or corruption); using the valid one");
    }
    let cur = state.current().clone();
    let (mut log, summary) = AuditLog::open_checked(
        &s.audit_log,
        &s.network,
        &s.state_file,
        cur.sequence,
        cur.record.audit,
    )
    .map_err(|e| Failure(audit_exit(&e), e.to_string()))?;
    log.sync_if_due(true).map_err(|e| (Exit::Audit, e))?;
    let (log, log_last_sequence) = rotate_audit_if_large(&s, &mut state, log, &summary)?;
    // The verified records are not needed while serving: free them (a large log's
    // decoded records take several times its size).
    drop(summary);
    // Certificates (docs/consensus.md §7): the trusted stake table, from the trust file,
    // created from the genesis table when missing (the upgrade path of older state).
    let trust = match &s.genesis_file {
        None => None,
        Some(g) => {
            let last_order = state.current().record.watermark.order.map(|o| o.timestamp);
            let initial = config::genesis_table(config, g, &s.network, last_order)
                .map_err(|e| (Exit::Config, e))?;
            Some(
                cvx_signer::trust::TrustFile::open_or_create(&s.trust_file, &s.network, &initial)
                    .map_err(|e| (Exit::State, e))?,
            )
        }
    };
    let passphrase = passphrase_fd.map_or(PassphraseFrom::Tty, PassphraseFrom::Fd);
    let key = keys::load(&s.key_file, &s.key_source, passphrase).map_err(|e| (Exit::Key, e))?;
    let public_key = keys::public_key(&key);
    let backing = key.backing();
    let policy = Policy {
        key: public_key,
        network: s.network,
        params: s.policy.clone(),
    };
    let mut signer = Signer::new(policy, key, state, log);
    if let Some(t) = trust {
        signer = signer.with_trust(t);
    }
    signer
        .record_start(log_last_sequence)
        .map_err(|e| (Exit::Audit, format!("cannot append to the audit log: {e}")))?;
    let (listener, how) = socket::listen(s.socket.as_deref()).map_err(|e| (Exit::Socket, e))?;
    use std::os::fd::AsRawFd as _;
    let mut keep = vec![
        listener.as_raw_fd(),
        signer.state().raw_fd(),
        signer.audit().raw_fd(),
    ];
    keep.extend(signer.trust().map(cvx_signer::trust::TrustFile::raw_fd));
    cvx_sandbox::harden::lock_on_sigusr1().map_err(|e| (Exit::Sandbox, e))?;
    let report = sandbox::enter(&keep, s.max_connections, s.require_landlock)
        .map_err(|e| (Exit::Sandbox, e))?;
    tracing::info!(
        public_key = %public_key,
        network = %s.network,
        socket = %how,
        key_memory = backing.name(),
        landlock_abi = report.landlock.kernel_abi,
        landlock = report.landlock.enforcement.name(),
        seccomp = "kill-process allowlist",
        state_sequence = cur.sequence,
        locked = signer.locked(),
        "serving"
    );
    let limits = serve::Limits {
        max_connections: s.max_connections,
        read_timeout: s.read_timeout,
    };
    for uid in s.admin_uids.iter().filter(|u| s.allowed_uids.contains(u)) {
        tracing::warn!(
            uid,
            "this uid is in both allowed_uids and admin_uids: a client of it can also fill the admin slots, \
             so it could starve `cvx-signer lock`; give the peer its own uid"
        );
    }
    let uids = serve::Uids {
        allowed: &s.allowed_uids,
        admin: &s.admin_uids,
    };
    serve::run(&listener, &mut signer, uids, limits).map_err(|e| (Exit::Serve, e))?;
    Ok(())
}

fn cmd_keygen(f: &KeygenArgs) -> Res {
    if f.passphrase.is_some() {
        return Err(usage(NO_ARGV_PASSPHRASE));
    }
    let out_path = &f.out;
    let target = if let Some(r) = &f.recipient {
        KeygenTarget::Recipient(r.clone())
    } else if let Some(p) = &f.identity {
        KeygenTarget::Identity(p.clone())
    } else if let Some(p) = &f.new_identity {
        KeygenTarget::NewIdentity(p.clone())
    } else {
        KeygenTarget::Passphrase {
            fd: f.passphrase_fd.unwrap_or(0),
            log_n: f.work_factor.unwrap_or(keys::DEFAULT_SCRYPT_LOG_N),
        }
    };
    let pk = keys::keygen(out_path, &target).map_err(|e| (Exit::Key, e))?;
    out(&format!("{pk}\n"));
    Ok(())
}

fn socket_path(f: &Target) -> Result<PathBuf, Failure> {
    if let Some(p) = &f.socket {
        return Ok(p.clone());
    }
    let config = f
        .config
        .as_deref()
        .ok_or_else(|| usage("give --socket PATH or --config FILE"))?;
    let s = settings(config)?;
    s.socket
        .ok_or_else(|| usage("the config has no `socket` (socket activation): pass --socket PATH"))
}

fn connect(f: &Target) -> Result<Client, Failure> {
    let path = socket_path(f)?;
    let c = Client::connect(&path).map_err(|e| (Exit::Client, e))?;
    c.set_timeout(Some(std::time::Duration::from_secs(10)))
        .map_err(|e| (Exit::Client, e))?;
    Ok(c)
}

fn cmd_status(f: &Target) -> Res {
    let mut c = connect(f)?;
    match c
        .call(&ClientMessage::Status)
        .map_err(|e| (Exit::Client, e))?
    {
        SignerMessage::Status(st) => {
            let wm = &st.watermark;
            let mut text = format!(
                "public key:      {}\nnetwork:         {}\nlocked:          {}\nstate sequence:  {}\nsigned:          {}\nrefused:         {}\nconnections:     {}\n",
                st.public_key,
                st.network,
                st.locked,
                st.state_sequence,
                st.signed,
                st.refused,
                st.connections
            );
            text.push_str(&match &wm.block {
                Some(b) => format!("last block:      t={} id={}\n", b.timestamp.0, b.id),
                None => "last block:      none\n".to_owned(),
            });
            text.push_str(&match &wm.order {
                Some(o) => format!("last order:      t={} id={}\n", o.timestamp.0, o.id),
                None => "last order:      none\n".to_owned(),
            });
            text.push_str(&match &wm.consensus {
                Some(c) => format!("consensus point: {} chain={}\n", c.position, c.chain),
                None => "consensus point: none\n".to_owned(),
            });
            text.push_str(&format!("finality point:  {}\n", wm.finality));
            out(&text);
            Ok(())
        }
        other => Err(Failure(Exit::Client, format!("unexpected reply {other:?}"))),
    }
}

fn lock_over_socket(f: &Target) -> Res {
    let path = socket_path(f)?;
    let mut c = Client::connect(&path).map_err(|e| (Exit::Client, e))?;
    c.set_timeout(Some(std::time::Duration::from_secs(3)))
        .map_err(|e| (Exit::Client, e))?;
    match c
        .call(&ClientMessage::Lock)
        .map_err(|e| (Exit::Client, e))?
    {
        SignerMessage::Locked => Ok(()),
        other => Err(Failure(
            Exit::Client,
            format!("the signer did not confirm the lock: {other:?}"),
        )),
    }
}

/// The breach button: a `Lock` request over the socket (an admin slot for an
/// `admin_uids` uid); if the socket cannot take it, SIGUSR1 to the signer, confirmed in
/// its state file (docs/signer.md "Lock").
fn cmd_lock(f: &Target) -> Res {
    const DONE: &str = "locked: the signer refuses every sign request until `cvx-signer unlock` is run on the host\n";
    let socket_err = match lock_over_socket(f) {
        Ok(()) => {
            out(DONE);
            return Ok(());
        }
        Err(Failure(Exit::Client, why)) => why,
        Err(other) => return Err(other),
    };
    let path = socket_path(f)?;
    let state = match &f.config {
        Some(c) => Some(settings(c)?.state_file),
        None => None,
    };
    match cvx_signer::breach::lock_by_signal(
        &path,
        state.as_deref(),
        std::time::Duration::from_secs(5),
    ) {
        Ok(l) => {
            let _ = writeln!(
                std::io::stderr(),
                "the socket did not take the lock ({socket_err}); sent SIGUSR1 to the signer (pid {}) and its state {} now says locked",
                l.pid,
                l.state.display()
            );
            out(DONE);
            Ok(())
        }
        Err(e) => Err(Failure(
            Exit::Client,
            format!("lock over the socket failed ({socket_err}); by signal: {e}"),
        )),
    }
}

fn cmd_unlock(config: &Path) -> Res {
    let s = settings(config)?;
    cvx_signer::state::check_owner(&s.state_file).map_err(|e| (Exit::State, e))?;
    let mut state = StateFile::open(&s.state_file, &s.network).map_err(|e| (Exit::State, e))?;
    let cur = state.current().clone();
    let (mut log, _) = AuditLog::open_checked(
        &s.audit_log,
        &s.network,
        &s.state_file,
        cur.sequence,
        cur.record.audit,
    )
    .map_err(|e| Failure(audit_exit(&e), e.to_string()))?;
    if !cur.record.locked {
        out("not locked; nothing to do\n");
        return Ok(());
    }
    log.sync_if_due(true).map_err(|e| (Exit::Audit, e))?;
    let mut record = cur.record.clone();
    record.locked = false;
    record.audit = log.durable_head();
    state.commit(record).map_err(|e| (Exit::State, e))?;
    let seq = state.current().sequence;
    log.append(
        [(
            AuditEvent::Unlock {
                uid: cvx_signer::euid(),
            },
            seq,
        )],
        cvx_signer::now(),
    )
    .and_then(|()| log.sync_if_due(true))
    .map_err(|e| (Exit::Audit, e))?;
    out("unlocked: the signer signs again after its next start\n");
    Ok(())
}

fn cmd_audit_verify(files: &[PathBuf], print: bool) -> Res {
    let mut text = String::new();
    let mut prev: Option<(std::path::Display<'_>, signer_wire::AuditSummary)> = None;
    for path in files {
        let file = path.display();
        let summary = audit::read_and_verify(path).map_err(|e| (Exit::Audit, e))?;
        if let Some((prev_file, p)) = &prev {
            signer_wire::check_continuation(p, &summary).map_err(|e| {
                (
                    Exit::Audit,
                    format!("audit log {file} after {prev_file}: {e}"),
                )
            })?;
        }
        if print {
            for r in &summary.records {
                text.push_str(&format!(
                    "{} t={} seq={} {:?}\n",
                    r.index, r.time.0, r.state_sequence, r.event
                ));
            }
        }
        let from = match (&prev, summary.continues) {
            (_, None) => String::new(),
            (Some(_), Some(_)) => format!(
                "; continues the file before it at record {}",
                summary.first_index()
            ),
            (None, Some(c)) => format!(
                "; continues an archived file at record {} (head {}): to check the link, give the archives first, oldest first",
                c.records, c.head
            ),
        };
        text.push_str(&format!(
            "ok: {file}: records {}..{}, chain intact; network {}; head {}; last state sequence {}{from}{}\n",
            summary.first_index(),
            summary.record_count(),
            summary.network,
            summary.head,
            summary.last_sequence(),
            if summary.torn_tail > 0 {
                format!(
                    "; {} bytes of a torn final record (crash mid-append; cut at the next start)",
                    summary.torn_tail
                )
            } else {
                String::new()
            }
        ));
        prev = Some((file, summary));
    }
    out(&text);
    Ok(())
}

fn dispatch(cmd: Cmd) -> Res {
    match cmd {
        Cmd::Init(c) => cmd_init(&c.config),
        Cmd::Run {
            config,
            passphrase_fd,
            require_landlock,
            passphrase,
        } => {
            if passphrase.is_some() {
                return Err(usage(NO_ARGV_PASSPHRASE));
            }
            cmd_run(&config.config, passphrase_fd, require_landlock)
        }
        Cmd::Keygen(k) => cmd_keygen(&k),
        Cmd::Status(t) => cmd_status(&t),
        Cmd::Lock(t) => cmd_lock(&t),
        Cmd::Unlock(c) => cmd_unlock(&c.config),
        Cmd::Audit {
            cmd: AuditCmd::Verify { files, print },
        } => cmd_audit_verify(&files, print),
        Cmd::ExportWatermark {
            config,
            out,
            keep_unlocked,
        } => cmd_export(&config.config, out.as_deref(), keep_unlocked),
        Cmd::ImportWatermark {
            config,
            file,
            high_watermark,
            margin_ms,
            passphrase_fd,
        } => cmd_import(
            &config.config,
            file.as_deref(),
            high_watermark,
            margin_ms,
            passphrase_fd,
        ),
    }
}

fn main() -> ExitCode {
    let command = Cli::command().after_help(exit_codes());
    let cli = match command
        .try_get_matches()
        .and_then(|m| Cli::from_arg_matches(&m))
    {
        Ok(c) => c,
        Err(e) => {
            // --help and --version print to stdout and exit 0; a usage error prints to
            // stderr and exits 2 (Exit::Usage).
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(Exit::Usage.code())
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    match dispatch(cli.cmd) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure(code, msg)) => {
            let _ = writeln!(std::io::stderr(), "error: {msg}");
            ExitCode::from(code.code())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cli_definition_is_consistent_and_the_version_names_the_wire_version() {
        Cli::command().debug_assert();
        assert!(VERSION.ends_with(&format!("(wire version {})", signer_wire::WIRE_VERSION)));
    }
}
