//! `cvx-vault`: parse flags, call the library, print, map errors to exit codes.
//! Nothing else lives here (docs/vault.md is the manual).

#![forbid(unsafe_code)]
// Printing results is this binary's job.
#![allow(clippy::print_stdout)]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use cvx_vault::audit::AuditLog;
use cvx_vault::backup::{self, Role};
use cvx_vault::ops::{self, KeySource};
use cvx_vault::prompt::Console;
use cvx_vault::txbuild::{Fields, Kind, LADDER_WARNING};
use cvx_vault::{ExitKind, VaultError, offline};

const USAGE: &str = "\
cvx-vault: the offline cvx tool (never touches a network)

usage: cvx-vault [--audit FILE] COMMAND [FLAGS]

commands:
  keygen    --role peer|account --out BACKUP [--manifest FILE] [--words | --import-words]
            [--work-factor N] [--passphrase-fd N] [--words-fd N]
  verify    --backup BACKUP [--manifest FILE]
  restore   --backup BACKUP [--manifest FILE | --no-manifest] --out KEYFILE [--force]
            [--max-work-factor N] [--passphrase-fd N]
  provision --backup BACKUP [--manifest FILE] --recipient age1... --out FILE
            [--max-work-factor N] [--passphrase-fd N]
  tx        ACTION --network ID --origin N --sequence N [action fields] --key BACKUP --out FILE
            [--manifest FILE] [--yes] [--dry-run] [--max-work-factor N] [--passphrase-fd N]
            ACTION: withdraw --peer KEY | set-peer-stake --peer KEY --stake N
                  | transfer --to N --amount N | set-key --new-key KEY
                  | set-peer-host --peer KEY (--host HOST:PORT | --clear-host)
  tx        --request FILE --network ID --key BACKUP --out FILE [...]
  ladder    --network ID --origin N --peer KEY --current-sequence N --count K --key BACKUP
            --out-dir DIR [--manifest FILE] [--yes] [--max-work-factor N] [--passphrase-fd N]
  qr        --in SIGNED_TX [--svg FILE] [--invert]
  audit     verify
  help

Passphrases and recovery words come from the terminal, or from --passphrase-fd /
--words-fd; never from the command line or the environment.
The audit log defaults to ./cvx-vault-audit.log.
";

/// Parsed flags of one command.
struct Flags {
    command: &'static str,
    values: BTreeMap<&'static str, String>,
    switches: Vec<&'static str>,
    positional: Vec<String>,
}

fn usage(msg: impl Into<String>) -> VaultError {
    VaultError::Usage(msg.into())
}

impl Flags {
    fn parse(
        command: &'static str,
        args: &[String],
        valued: &[&'static str],
        switches: &[&'static str],
        max_positional: usize,
    ) -> Result<Self, VaultError> {
        let mut f = Self {
            command,
            values: BTreeMap::new(),
            switches: Vec::new(),
            positional: Vec::new(),
        };
        let mut it = args.iter();
        while let Some(a) = it.next() {
            if let Some(name) = a.strip_prefix("--") {
                if [
                    "passphrase",
                    "password",
                    "pass",
                    "seed",
                    "words-text",
                    "mnemonic",
                    "secret",
                ]
                .contains(&name)
                    || name.starts_with("passphrase=")
                {
                    return Err(usage(format!(
                        "--{} refused: secrets are never taken from the command line (use the terminal prompt, or --passphrase-fd N / --words-fd N)",
                        name.split('=').next().unwrap_or(name)
                    )));
                }
                if let Some(&k) = valued.iter().find(|&&k| k == name) {
                    let v = it.next().ok_or_else(|| {
                        usage(format!("--{k} needs a value (cvx-vault {command})"))
                    })?;
                    if f.values.insert(k, v.clone()).is_some() {
                        return Err(usage(format!("--{k} given twice (cvx-vault {command})")));
                    }
                } else if let Some(&k) = switches.iter().find(|&&k| k == name) {
                    if f.switches.contains(&k) {
                        return Err(usage(format!("--{k} given twice (cvx-vault {command})")));
                    }
                    f.switches.push(k);
                } else {
                    return Err(usage(format!(
                        "unknown flag --{name} for `cvx-vault {command}`"
                    )));
                }
            } else if f.positional.len() < max_positional {
                f.positional.push(a.clone());
            } else {
                return Err(usage(format!(
                    "unexpected argument {a:?} for `cvx-vault {command}`"
                )));
            }
        }
        Ok(f)
    }

    fn opt(&self, k: &str) -> Option<&String> {
        self.values.get(k)
    }

    fn req(&self, k: &str) -> Result<&String, VaultError> {
        self.values
            .get(k)
            .ok_or_else(|| usage(format!("cvx-vault {} needs --{k}", self.command)))
    }

    fn path(&self, k: &str) -> Result<PathBuf, VaultError> {
        self.req(k).map(PathBuf::from)
    }

    fn opt_path(&self, k: &str) -> Option<PathBuf> {
        self.opt(k).map(PathBuf::from)
    }

    fn has(&self, k: &str) -> bool {
        self.switches.contains(&k)
    }

    fn num<T: std::str::FromStr>(&self, k: &str) -> Result<Option<T>, VaultError> {
        self.opt(k)
            .map(|v| {
                v.parse::<T>()
                    .map_err(|_| usage(format!("--{k} {v:?} is not a valid number")))
            })
            .transpose()
    }

    fn max_wf(&self) -> Result<u8, VaultError> {
        let v = self
            .num::<u8>("max-work-factor")?
            .unwrap_or(backup::DEFAULT_MAX_LOG_N);
        if v == 0 || v > backup::MAX_LOG_N {
            return Err(usage(format!(
                "--max-work-factor must be 1..={}",
                backup::MAX_LOG_N
            )));
        }
        Ok(v)
    }

    fn console(&self) -> Result<Console, VaultError> {
        Console::new(
            self.num("passphrase-fd")?,
            self.num("words-fd")?,
            self.has("yes"),
        )
    }
}

fn run(argv: &[String]) -> Result<(), VaultError> {
    let mut args = argv;
    let mut audit_path = PathBuf::from("cvx-vault-audit.log");
    if args.first().map(String::as_str) == Some("--audit") {
        let p = args.get(1).ok_or_else(|| usage("--audit needs a file"))?;
        audit_path = PathBuf::from(p);
        args = &args[2..];
    }
    let audit = AuditLog::new(&audit_path);
    let Some((cmd, rest)) = args.split_first() else {
        return Err(usage("no command given"));
    };
    match cmd.as_str() {
        "help" | "--help" | "-h" => {
            print!("{USAGE}");
            Ok(())
        }
        "keygen" => {
            let f = Flags::parse(
                "keygen",
                rest,
                &[
                    "role",
                    "out",
                    "manifest",
                    "work-factor",
                    "passphrase-fd",
                    "words-fd",
                ],
                &["words", "import-words"],
                0,
            )?;
            let role = match f.req("role")?.as_str() {
                "peer" => Role::Peer,
                "account" => Role::Account,
                other => return Err(usage(format!("--role {other:?}: expected peer or account"))),
            };
            let source = match (f.has("words"), f.has("import-words")) {
                (true, true) => return Err(usage("give --words or --import-words, not both")),
                (true, false) => KeySource::NewWords,
                (false, true) => KeySource::ImportWords,
                (false, false) => KeySource::Random,
            };
            let o = ops::KeygenOptions {
                role,
                source,
                backup: f.path("out")?,
                manifest: f.opt_path("manifest"),
                work_factor: f.num("work-factor")?.unwrap_or(backup::DEFAULT_LOG_N),
            };
            let r = ops::keygen(&audit, &mut f.console()?, &o)?;
            println!("keygen: new {} key {}", role.name(), r.public_key);
            println!(
                "  backup    {} (age, passphrase, scrypt work factor {})",
                r.backup.display(),
                o.work_factor
            );
            println!("  manifest  {}", r.manifest.display());
            println!(
                "  audit     record {} head {}",
                r.audit.records, r.audit.head
            );
            Ok(())
        }
        "verify" => {
            let f = Flags::parse("verify", rest, &["backup", "manifest"], &[], 0)?;
            let r = ops::verify(&f.path("backup")?, f.opt_path("manifest").as_ref())?;
            println!("verify: OK — the backup matches its manifest");
            println!("  role          {}", r.manifest.role.name());
            println!("  public key    {}", r.public_key);
            println!("  sha256        {}", r.manifest.ciphertext_sha256);
            println!("  work factor   {}", r.manifest.scrypt_log_n);
            println!("  a failed decrypt of this file now means a wrong passphrase");
            Ok(())
        }
        "restore" => {
            let f = Flags::parse(
                "restore",
                rest,
                &[
                    "backup",
                    "manifest",
                    "out",
                    "max-work-factor",
                    "passphrase-fd",
                ],
                &["no-manifest", "force"],
                0,
            )?;
            if f.has("no-manifest") && f.opt("manifest").is_some() {
                return Err(usage("give --manifest or --no-manifest, not both"));
            }
            let o = ops::RestoreOptions {
                backup: f.path("backup")?,
                manifest: f.opt_path("manifest"),
                no_manifest: f.has("no-manifest"),
                out: f.path("out")?,
                force: f.has("force"),
                max_work_factor: f.max_wf()?,
            };
            let r = ops::restore(&audit, &mut f.console()?, &o)?;
            println!(
                "restore: key {} written to {} (mode 0600)",
                r.public_key,
                r.out.display()
            );
            if !r.manifest_checked {
                println!("  no manifest was checked; compare the key above with your records");
            }
            println!(
                "  audit     record {} head {}",
                r.audit.records, r.audit.head
            );
            Ok(())
        }
        "provision" => {
            let f = Flags::parse(
                "provision",
                rest,
                &[
                    "backup",
                    "manifest",
                    "recipient",
                    "out",
                    "max-work-factor",
                    "passphrase-fd",
                ],
                &[],
                0,
            )?;
            let o = ops::ProvisionOptions {
                backup: f.path("backup")?,
                manifest: f.opt_path("manifest"),
                recipient: f.req("recipient")?.clone(),
                out: f.path("out")?,
                max_work_factor: f.max_wf()?,
            };
            let r = ops::provision(&audit, &mut f.console()?, &o)?;
            println!(
                "provision: peer key {} encrypted to {}",
                r.public_key, r.recipient
            );
            println!("  file      {} (sha256 {})", r.out.display(), r.sha256);
            println!("  copy it to the signer host; only that host's age identity decrypts it");
            println!(
                "  audit     record {} head {}",
                r.audit.records, r.audit.head
            );
            Ok(())
        }
        "tx" => {
            let f = Flags::parse(
                "tx",
                rest,
                &[
                    "request",
                    "network",
                    "origin",
                    "sequence",
                    "peer",
                    "stake",
                    "to",
                    "amount",
                    "new-key",
                    "host",
                    "key",
                    "manifest",
                    "out",
                    "max-work-factor",
                    "passphrase-fd",
                ],
                &["clear-host", "yes", "dry-run"],
                1,
            )?;
            let kind = f.positional.first().map(|k| Kind::parse(k)).transpose()?;
            let fields = Fields {
                network: None,
                origin: f.num("origin")?,
                sequence: f.num("sequence")?,
                peer: f.opt("peer").cloned(),
                stake: f.num("stake")?,
                to: f.num("to")?,
                amount: f.num("amount")?,
                new_key: f.opt("new-key").cloned(),
                host: f.opt("host").cloned(),
                clear_host: f.has("clear-host"),
            };
            if f.opt("request").is_some() && fields != Fields::default() {
                return Err(usage(
                    "with --request the fields come from the file; give only --network, --key, --out (and --manifest, --yes, --dry-run)",
                ));
            }
            let dry_run = f.has("dry-run");
            let o = ops::TxOptions {
                kind,
                fields,
                request: f.opt_path("request"),
                network: f.req("network")?.clone(),
                backup: f.path("key")?,
                manifest: f.opt_path("manifest"),
                out: if dry_run {
                    f.opt_path("out").unwrap_or_default()
                } else {
                    f.path("out")?
                },
                max_work_factor: f.max_wf()?,
                dry_run,
            };
            let r = ops::tx(&audit, &mut f.console()?, &o)?;
            print!("{}", r.human);
            if let (Some(d), Some(a)) = (&r.description, &r.audit) {
                println!(
                    "signed: {} ({} bytes, sha256 {})",
                    r.files[0].display(),
                    d.file_len,
                    d.file_sha256
                );
                println!("  description {}", r.files[1].display());
                println!("  audit       record {} head {}", a.records, a.head);
            } else {
                println!("dry run: nothing was signed");
            }
            Ok(())
        }
        "ladder" => {
            let f = Flags::parse(
                "ladder",
                rest,
                &[
                    "network",
                    "origin",
                    "peer",
                    "current-sequence",
                    "count",
                    "key",
                    "manifest",
                    "out-dir",
                    "max-work-factor",
                    "passphrase-fd",
                ],
                &["yes"],
                0,
            )?;
            let need_num = |k: &str| {
                f.num::<u64>(k)?
                    .ok_or_else(|| usage(format!("cvx-vault ladder needs --{k}")))
            };
            let o = ops::LadderOptions {
                network: f.req("network")?.clone(),
                origin: need_num("origin")?,
                peer: f.req("peer")?.clone(),
                current_sequence: need_num("current-sequence")?,
                count: need_num("count")?,
                backup: f.path("key")?,
                manifest: f.opt_path("manifest"),
                out_dir: f.path("out-dir")?,
                max_work_factor: f.max_wf()?,
            };
            let r = ops::ladder(&audit, &mut f.console()?, &o)?;
            print!("{LADDER_WARNING}");
            for (seq, p) in &r.files {
                println!("  sequence {seq:>6}  {}", p.display());
            }
            println!(
                "  audit     record {} head {}",
                r.audit.records, r.audit.head
            );
            Ok(())
        }
        "qr" => {
            let f = Flags::parse("qr", rest, &["in", "svg"], &["invert"], 0)?;
            let svg = f.opt_path("svg");
            let r = ops::qr(&audit, &f.path("in")?, svg.as_deref(), !f.has("invert"))?;
            let n = r.terminal.len();
            for (i, t) in r.terminal.iter().enumerate() {
                println!(
                    "QR {}/{n} — signed transaction {}",
                    i + 1,
                    r.file.signed.id()
                );
                print!("{t}");
            }
            if let (Some(p), Some(a)) = (&r.svg, &r.audit) {
                println!("svg: {}", p.display());
                println!("  audit     record {} head {}", a.records, a.head);
            }
            Ok(())
        }
        "audit" => {
            let f = Flags::parse("audit", rest, &[], &[], 1)?;
            match f.positional.first().map(String::as_str) {
                Some("verify") => {
                    let s = audit.verify()?;
                    println!(
                        "audit: {} records, chain intact, head {}",
                        s.records, s.head
                    );
                    Ok(())
                }
                _ => Err(usage("cvx-vault audit needs a subcommand: verify")),
            }
        }
        other => Err(usage(format!("unknown command {other:?}"))),
    }
}

fn main() -> ExitCode {
    // First: no socket can be created from here on (docs/vault.md, "offline").
    if let Err(e) = offline::lockdown() {
        eprintln!("cvx-vault: error: {e}");
        return ExitCode::from(ExitKind::Sandbox.code());
    }
    let argv: Result<Vec<String>, _> = std::env::args_os()
        .skip(1)
        .map(std::ffi::OsString::into_string)
        .collect();
    let result = argv
        .map_err(|a| VaultError::Usage(format!("argument {a:?} is not valid UTF-8")))
        .and_then(|argv| run(&argv));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("cvx-vault: error: {e}");
            ExitCode::from(e.kind().code())
        }
    }
}
