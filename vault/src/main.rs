//! `cvx-vault`: parse flags, call the library, print, map errors to exit codes.
//! Nothing else lives here (docs/vault.md is the manual).

#![forbid(unsafe_code)]
// Printing results is this binary's job.
#![allow(clippy::print_stdout)]

use std::process::ExitCode;

use clap::Parser as _;
use clap::error::ErrorKind;
use cvx_vault::audit::AuditLog;
use cvx_vault::cli::{AuditCommand, Cli, Command};
use cvx_vault::convex::ops as convex_ops;
use cvx_vault::convex::tx::{self as convex_tx, Action};
use cvx_vault::ops::{self, KeySource};
use cvx_vault::prompt::Console;
use cvx_vault::txbuild::{Fields, Kind, LADDER_WARNING};
use cvx_vault::{ExitKind, VaultError, backup, cli, offline, shares};

fn usage(msg: impl Into<String>) -> VaultError {
    VaultError::Usage(msg.into())
}

/// What parsing the command line gave: a command to run, or text clap printed
/// (`--help`, `--version`), or a usage error (exit 2).
enum Parsed {
    Run(Box<Cli>),
    Printed,
}

fn parse(argv: &[std::ffi::OsString]) -> Result<Parsed, VaultError> {
    cli::refuse_secret_flags(argv.get(1..).unwrap_or_default())?;
    match Cli::try_parse_from(argv) {
        Ok(c) => Ok(Parsed::Run(Box::new(c))),
        Err(e) if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) => {
            print!("{}", e.render());
            Ok(Parsed::Printed)
        }
        Err(e) if e.kind() == ErrorKind::MissingSubcommand => Err(usage("no command given")),
        Err(e) if e.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            Err(usage(format!(
                "a subcommand is needed:\n\n{}",
                e.render().to_string().trim_end()
            )))
        }
        Err(e) => {
            let text = e.render().to_string();
            let text = text.strip_prefix("error: ").unwrap_or(&text);
            // Our own hint follows (VaultError::Usage), so clap's is dropped.
            let text: Vec<&str> = text
                .lines()
                .filter(|l| !l.starts_with("For more information"))
                .collect();
            Err(usage(text.join("\n").trim_end().to_owned()))
        }
    }
}

/// `cvx-vault help COMMAND...` is `cvx-vault COMMAND... --help`.
fn help_for(argv: &[std::ffi::OsString], path: Vec<String>) -> Result<(), VaultError> {
    let mut args = vec![argv.first().cloned().unwrap_or_default()];
    args.extend(path.into_iter().map(Into::into));
    args.push("--help".into());
    parse(&args).map(|_| ())
}

fn run(cli: Cli) -> Result<(), VaultError> {
    let audit = AuditLog::new(&cli.audit);
    match cli.command {
        Command::Keygen(a) => keygen(&audit, a),
        Command::Verify(a) => {
            let r = ops::verify(&a.backup, a.manifest.as_ref())?;
            println!("verify: OK — the backup matches its manifest");
            println!("  role          {}", r.manifest.role.name());
            println!("  public key    {}", r.public_key);
            println!("  sha256        {}", r.manifest.ciphertext_sha256);
            println!("  work factor   {}", r.manifest.scrypt_log_n);
            println!("  a failed decrypt of this file now means a wrong passphrase");
            Ok(())
        }
        Command::Restore(a) => restore(&audit, a),
        Command::Provision(a) => provision(&audit, a),
        Command::Tx(a) => tx(&audit, a),
        Command::Ladder(a) => ladder(&audit, a),
        Command::Qr(a) => {
            let r = ops::qr(&audit, &a.input, a.svg.as_deref(), !a.invert)?;
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
        Command::Convex(a) => convex(&audit, a),
        Command::Shares(a) => match a.command {
            cli::SharesCommand::Split(a) => shares_split(&audit, a),
            cli::SharesCommand::Combine(a) => shares_combine(&audit, a),
        },
        Command::Help(_) => Ok(()), // answered in main, before run
        Command::Audit(a) => match a.command {
            Some(AuditCommand::Verify) => {
                let s = audit.verify()?;
                println!(
                    "audit: {} records, chain intact, head {}",
                    s.records, s.head
                );
                Ok(())
            }
            None => Err(usage("cvx-vault audit needs a subcommand: verify")),
        },
    }
}

fn convex(audit: &AuditLog, a: cli::ConvexArgs) -> Result<(), VaultError> {
    let (action, count, s) = match a.command {
        cli::ConvexCommand::Verify(v) => {
            let s = convex_ops::verify(&v.file)?;
            print!("{}", s.human());
            println!("verify: OK — well-formed, and the signature verifies with the key above");
            return Ok(());
        }
        cli::ConvexCommand::Withdraw(w) => (
            Action::Withdraw {
                peer_key: convex_tx::parse_key("peer-key", &w.peer_key)?,
            },
            w.count,
            w.sign,
        ),
        cli::ConvexCommand::Transfer(t) => (
            Action::Transfer {
                to: t.to,
                amount: t.amount,
            },
            // One transfer at a time: a ladder of transfers could all be submitted.
            1,
            t.sign,
        ),
    };
    let o = convex_ops::SignOptions {
        origin: s.origin,
        sequence: s.sequence,
        count,
        action,
        backup: s.key,
        manifest: s.manifest,
        out_dir: s.out_dir.unwrap_or_default(),
        max_work_factor: s.decrypt.max_work_factor()?,
        dry_run: s.dry_run,
    };
    let mut console = Console::new(s.decrypt.passphrase_fd, None, s.yes)?;
    let r = convex_ops::sign(audit, &mut console, &o)?;
    if r.signed.is_empty() {
        print!("{}", r.human);
        println!("dry run: nothing was signed");
        return Ok(());
    }
    let single = r.signed.len() == 1;
    if !single && let Some(ladder) = r.human.lines().next() {
        println!("{ladder}");
    }
    for (signed, files, qr) in &r.signed {
        print!("{}", signed.human());
        println!("  wrapper    {} (application/cvx-raw)", files.raw.display());
        println!(
            "  submit     {} (/api/v1/transaction/submit)",
            files.json.display()
        );
        println!("  summary    {}", files.txt.display());
        println!("  qr         {}", files.svg.display());
        if single {
            for t in qr {
                print!("{t}");
            }
            print!("{}", convex_ops::submit_commands(files));
        }
    }
    if let Some(a) = &r.audit {
        println!("  audit      record {} head {}", a.records, a.head);
    }
    Ok(())
}

fn keygen(audit: &AuditLog, a: cli::KeygenArgs) -> Result<(), VaultError> {
    let role: backup::Role = a.role.into();
    let source = match (a.words, a.import_words) {
        (true, true) => return Err(usage("give --words or --import-words, not both")),
        (true, false) => KeySource::NewWords,
        (false, true) => KeySource::ImportWords,
        (false, false) => KeySource::Random,
    };
    let o = ops::KeygenOptions {
        role,
        source,
        backup: a.out,
        manifest: a.manifest,
        work_factor: a.work_factor.unwrap_or(backup::DEFAULT_LOG_N),
    };
    let mut console = Console::new(a.passphrase_fd, a.words_fd, false)?;
    let r = ops::keygen(audit, &mut console, &o)?;
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

fn restore(audit: &AuditLog, a: cli::RestoreArgs) -> Result<(), VaultError> {
    let o = ops::RestoreOptions {
        backup: a.backup,
        manifest: a.manifest,
        no_manifest: a.no_manifest,
        out: a.out,
        force: a.force,
        max_work_factor: a.decrypt.max_work_factor()?,
    };
    let mut console = Console::new(a.decrypt.passphrase_fd, None, false)?;
    let r = ops::restore(audit, &mut console, &o)?;
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

fn provision(audit: &AuditLog, a: cli::ProvisionArgs) -> Result<(), VaultError> {
    let o = ops::ProvisionOptions {
        backup: a.backup,
        manifest: a.manifest,
        recipient: a.recipient,
        out: a.out,
        max_work_factor: a.decrypt.max_work_factor()?,
    };
    let mut console = Console::new(a.decrypt.passphrase_fd, None, false)?;
    let r = ops::provision(audit, &mut console, &o)?;
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

fn tx(audit: &AuditLog, a: cli::TxArgs) -> Result<(), VaultError> {
    let kind = a.action.as_deref().map(Kind::parse).transpose()?;
    let fields = Fields {
        network: None,
        origin: a.origin,
        sequence: a.sequence,
        peer: a.peer,
        stake: a.stake,
        to: a.to,
        amount: a.amount,
        new_key: a.new_key,
        host: a.host,
        clear_host: a.clear_host,
    };
    if a.request.is_some() && fields != Fields::default() {
        return Err(usage(
            "with --request the fields come from the file; give only --network, --key, --out (and --manifest, --yes, --dry-run)",
        ));
    }
    let o = ops::TxOptions {
        kind,
        fields,
        request: a.request,
        network: a.network,
        backup: a.key,
        manifest: a.manifest,
        out: a.out.unwrap_or_default(),
        max_work_factor: a.decrypt.max_work_factor()?,
        dry_run: a.dry_run,
    };
    let mut console = Console::new(a.decrypt.passphrase_fd, None, a.yes)?;
    let r = ops::tx(audit, &mut console, &o)?;
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

fn ladder(audit: &AuditLog, a: cli::LadderArgs) -> Result<(), VaultError> {
    let o = ops::LadderOptions {
        network: a.network,
        origin: a.origin,
        peer: a.peer,
        current_sequence: a.current_sequence,
        count: a.count,
        backup: a.key,
        manifest: a.manifest,
        out_dir: a.out_dir,
        max_work_factor: a.decrypt.max_work_factor()?,
    };
    let mut console = Console::new(a.decrypt.passphrase_fd, None, a.yes)?;
    let r = ops::ladder(audit, &mut console, &o)?;
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

fn shares_split(audit: &AuditLog, a: cli::SharesSplitArgs) -> Result<(), VaultError> {
    let (group_threshold, groups) = match (&a.groups, a.threshold, a.count) {
        (Some(g), _, _) => (
            a.group_threshold.unwrap_or(0),
            shares::command::parse_groups(g)?,
        ),
        (None, Some(threshold), Some(count)) => (1, vec![shares::Group { threshold, count }]),
        _ => {
            return Err(usage(
                "give --threshold T --count N, or --groups ... --group-threshold G",
            ));
        }
    };
    let o = shares::command::SplitOptions {
        backup: a.key,
        manifest: a.manifest,
        plan: shares::Plan {
            group_threshold,
            groups,
            iteration_exponent: a.iteration_exponent,
            extendable: true,
        },
        max_work_factor: a.decrypt.max_work_factor()?,
    };
    let mut console = Console::new(a.decrypt.passphrase_fd, None, false)?;
    let r = shares::command::split(audit, &mut console, &o)?;
    println!(
        "shares split: {} key {} into {} SLIP-39 shares, {}",
        r.role.name(),
        r.public_key,
        r.shares,
        r.plan
    );
    println!(
        "  each share was shown once on the terminal; SLIP-39 passphrase: {}",
        if r.passphrase { "set" } else { "none" }
    );
    println!(
        "  audit     record {} head {}",
        r.audit.records, r.audit.head
    );
    Ok(())
}

fn shares_combine(audit: &AuditLog, a: cli::SharesCombineArgs) -> Result<(), VaultError> {
    let o = shares::command::CombineOptions {
        role: a.role.into(),
        backup: a.out,
        manifest: a.manifest,
        expect_key: a.expect_key,
        work_factor: a.work_factor.unwrap_or(backup::DEFAULT_LOG_N),
    };
    let mut console = Console::new(a.passphrase_fd, a.words_fd, false)?;
    let r = shares::command::combine(audit, &mut console, &o)?;
    println!(
        "shares combine: {} key {} rebuilt from {} shares",
        o.role.name(),
        r.public_key,
        r.shares
    );
    if r.expected_checked {
        println!("  the key matches the expected public key");
    } else {
        println!("  no key was given to compare: check the key above against your records");
    }
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

fn main() -> ExitCode {
    // First: no socket can be created from here on (docs/vault.md, "offline").
    if let Err(e) = offline::lockdown() {
        eprintln!("cvx-vault: error: {e}");
        return ExitCode::from(ExitKind::Sandbox.code());
    }
    let argv: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let result = parse(&argv).and_then(|p| match p {
        Parsed::Printed => Ok(()),
        Parsed::Run(cli) => match *cli {
            Cli {
                command: Command::Help(h),
                ..
            } => help_for(&argv, h.command),
            cli => run(cli),
        },
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("cvx-vault: error: {e}");
            ExitCode::from(e.kind().code())
        }
    }
}
