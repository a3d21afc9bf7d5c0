//! `cvx-signer`: parse arguments, call the library, print, map errors to exit codes.

#![forbid(unsafe_code)]

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use cvx_protocol::policy::Policy;
use cvx_protocol::signer_wire::{self, AuditEvent, ClientMessage, SignerMessage, StateRecord};
use cvx_signer::audit::{self, AuditLog, AuditLogError};
use cvx_signer::client::Client;
use cvx_signer::config::{self, Settings};
use cvx_signer::exit::Exit;
use cvx_signer::keys::{self, KeygenTarget, PassphraseFrom};
use cvx_signer::serve::{self, Signer};
use cvx_signer::state::StateFile;
use cvx_signer::{sandbox, socket};

const USAGE: &str = "\
cvx-signer: the cvx key holder (one key, one Unix socket, sandboxed)

USAGE:
  cvx-signer init   --config FILE          create the state file and audit log (refuses if they exist)
  cvx-signer run    --config FILE [--passphrase-fd N] [--require-landlock]
                                           load the key, enter the sandbox, serve
  cvx-signer keygen --out FILE (--recipient AGE1... | --identity FILE | --new-identity FILE
                                | --passphrase-fd N [--work-factor LOG_N])
                                           write a new age-encrypted key (tests/devnet; operators use cvx-vault)
  cvx-signer status (--socket PATH | --config FILE)   print public key, watermark, counters
  cvx-signer lock   (--socket PATH | --config FILE)   breach button: refuse all signing, persistently
  cvx-signer unlock --config FILE          clear the lock (as the signer's user, while no signer runs)
  cvx-signer audit verify [ARCHIVE...] FILE [--print]
                                           verify the audit log's hash chain; with the
                                           rotated-out archives first (oldest first), across files

The passphrase comes from the terminal or --passphrase-fd, never from argv or the environment.
";

fn help() -> String {
    let mut s = USAGE.to_owned();
    s.push_str("\nEXIT CODES:\n");
    for e in Exit::ALL {
        s.push_str(&format!("  {:>3}  {}\n", e.code(), e.meaning()));
    }
    s.push_str("  134  killed by SIGABRT: a panic (panics abort by design)\n");
    s.push_str("  159  killed by SIGSYS: the seccomp filter stopped a forbidden system call\n");
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
    Failure(Exit::Usage, format!("{msg}\n\n{USAGE}"))
}

fn out(text: &str) {
    let mut o = std::io::stdout().lock();
    let _ = o.write_all(text.as_bytes());
    let _ = o.flush();
}

#[derive(Default)]
struct Flags {
    config: Option<PathBuf>,
    socket: Option<PathBuf>,
    out: Option<PathBuf>,
    recipient: Option<String>,
    identity: Option<PathBuf>,
    new_identity: Option<PathBuf>,
    passphrase_fd: Option<i32>,
    work_factor: Option<u8>,
    require_landlock: bool,
    print: bool,
    positional: Vec<String>,
}

fn parse_flags(args: &[String]) -> Result<Flags, Failure> {
    let mut f = Flags::default();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut val = |name: &str| {
            it.next()
                .cloned()
                .ok_or_else(|| usage(&format!("{name} needs a value")))
        };
        match a.as_str() {
            "--config" => f.config = Some(val(a)?.into()),
            "--socket" => f.socket = Some(val(a)?.into()),
            "--out" => f.out = Some(val(a)?.into()),
            "--recipient" => f.recipient = Some(val(a)?),
            "--identity" => f.identity = Some(val(a)?.into()),
            "--new-identity" => f.new_identity = Some(val(a)?.into()),
            "--passphrase-fd" => {
                let v = val(a)?;
                f.passphrase_fd = Some(
                    v.parse()
                        .map_err(|_| usage(&format!("--passphrase-fd {v}: not a number")))?,
                );
            }
            "--work-factor" => {
                let v = val(a)?;
                let n: u8 = v
                    .parse()
                    .map_err(|_| usage(&format!("--work-factor {v}: not a number")))?;
                if !(10..=keys::MAX_SCRYPT_LOG_N).contains(&n) {
                    return Err(usage(&format!(
                        "--work-factor must be 10..={}",
                        keys::MAX_SCRYPT_LOG_N
                    )));
                }
                f.work_factor = Some(n);
            }
            "--require-landlock" => f.require_landlock = true,
            "--print" => f.print = true,
            "--passphrase" => {
                return Err(usage(
                    "passphrases are never taken from the command line: use --passphrase-fd N or the terminal",
                ));
            }
            s if s.starts_with('-') => return Err(usage(&format!("unknown option {s}"))),
            s => f.positional.push(s.to_owned()),
        }
    }
    Ok(f)
}

fn settings(f: &Flags) -> Result<Settings, Failure> {
    let path = f
        .config
        .as_deref()
        .ok_or_else(|| usage("--config FILE is required"))?;
    config::load(path).map_err(|e| (Exit::Config, e).into())
}

fn init_logging() {
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_target(false)
        .try_init();
}

fn cmd_init(f: &Flags) -> Res {
    let s = settings(f)?;
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
            watermark: cvx_protocol::policy::Watermark::default(),
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

fn cmd_run(f: &Flags) -> Res {
    let mut s = settings(f)?;
    s.require_landlock |= f.require_landlock;
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
    let passphrase = f
        .passphrase_fd
        .map_or(PassphraseFrom::Tty, PassphraseFrom::Fd);
    let key = keys::load(&s.key_file, &s.key_source, passphrase).map_err(|e| (Exit::Key, e))?;
    let public_key = keys::public_key(&key);
    let backing = key.backing();
    let policy = Policy {
        key: public_key,
        network: s.network,
        params: s.policy.clone(),
    };
    let mut signer = Signer::new(policy, key, state, log);
    signer
        .record_start(log_last_sequence)
        .map_err(|e| (Exit::Audit, format!("cannot append to the audit log: {e}")))?;
    let (listener, how) = socket::listen(s.socket.as_deref()).map_err(|e| (Exit::Socket, e))?;
    use std::os::fd::AsRawFd as _;
    let keep = [
        listener.as_raw_fd(),
        signer.state().raw_fd(),
        signer.audit().raw_fd(),
    ];
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
    serve::run(&listener, &mut signer, &s.allowed_uids, limits).map_err(|e| (Exit::Serve, e))?;
    Ok(())
}

fn cmd_keygen(f: &Flags) -> Res {
    let out_path = f
        .out
        .as_deref()
        .ok_or_else(|| usage("keygen needs --out FILE"))?;
    let chosen = [
        f.recipient.is_some(),
        f.identity.is_some(),
        f.new_identity.is_some(),
        f.passphrase_fd.is_some(),
    ];
    if chosen.iter().filter(|c| **c).count() != 1 {
        return Err(usage(
            "keygen needs exactly one of --recipient, --identity, --new-identity, --passphrase-fd",
        ));
    }
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

fn socket_path(f: &Flags) -> Result<PathBuf, Failure> {
    if let Some(p) = &f.socket {
        return Ok(p.clone());
    }
    let s = settings(f)?;
    s.socket
        .ok_or_else(|| usage("the config has no `socket` (socket activation): pass --socket PATH"))
}

fn connect(f: &Flags) -> Result<Client, Failure> {
    let path = socket_path(f)?;
    let c = Client::connect(&path).map_err(|e| (Exit::Client, e))?;
    c.set_timeout(Some(std::time::Duration::from_secs(10)))
        .map_err(|e| (Exit::Client, e))?;
    Ok(c)
}

fn cmd_status(f: &Flags) -> Res {
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

fn cmd_lock(f: &Flags) -> Res {
    let mut c = connect(f)?;
    match c
        .call(&ClientMessage::Lock)
        .map_err(|e| (Exit::Client, e))?
    {
        SignerMessage::Locked => {
            out(
                "locked: the signer refuses every sign request until `cvx-signer unlock` is run on the host\n",
            );
            Ok(())
        }
        other => Err(Failure(
            Exit::Client,
            format!("the signer did not confirm the lock: {other:?}"),
        )),
    }
}

fn cmd_unlock(f: &Flags) -> Res {
    let s = settings(f)?;
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

fn cmd_audit(f: &Flags) -> Res {
    const USAGE: &str =
        "usage: cvx-signer audit verify [ARCHIVE...] FILE [--print]  (archives oldest first)";
    let Some((verb, files)) = f.positional.split_first() else {
        return Err(usage(USAGE));
    };
    if verb != "verify" || files.is_empty() {
        return Err(usage(USAGE));
    }
    let mut text = String::new();
    let mut prev: Option<(&String, signer_wire::AuditSummary)> = None;
    for file in files {
        let summary = audit::read_and_verify(Path::new(file)).map_err(|e| (Exit::Audit, e))?;
        if let Some((prev_file, p)) = &prev {
            signer_wire::check_continuation(p, &summary).map_err(|e| {
                (
                    Exit::Audit,
                    format!("audit log {file} after {prev_file}: {e}"),
                )
            })?;
        }
        if f.print {
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

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(cmd) = args.first() else {
        let _ = writeln!(std::io::stderr(), "{}", help());
        return ExitCode::from(Exit::Usage.code());
    };
    let flags = match parse_flags(&args[1..]) {
        Ok(f) => f,
        Err(Failure(code, msg)) => {
            let _ = writeln!(std::io::stderr(), "error: {msg}");
            return ExitCode::from(code.code());
        }
    };
    let r = match cmd.as_str() {
        "init" => cmd_init(&flags),
        "run" => cmd_run(&flags),
        "keygen" => cmd_keygen(&flags),
        "status" => cmd_status(&flags),
        "lock" => cmd_lock(&flags),
        "unlock" => cmd_unlock(&flags),
        "audit" => cmd_audit(&flags),
        "--help" | "-h" | "help" => {
            out(&help());
            Ok(())
        }
        "--version" => {
            out(&format!(
                "cvx-signer {} (wire version {})\n",
                env!("CARGO_PKG_VERSION"),
                signer_wire::WIRE_VERSION
            ));
            Ok(())
        }
        other => Err(usage(&format!("unknown command {other}"))),
    };
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure(code, msg)) => {
            let _ = writeln!(std::io::stderr(), "error: {msg}");
            ExitCode::from(code.code())
        }
    }
}
