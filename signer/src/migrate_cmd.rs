//! `export-watermark` and `import-watermark`: moving a signer to a new host
//! (docs/operations.md, "Moving a signer to a new host"), and their exit codes.

use std::io::Write as _;
use std::path::Path;

use cvx_signer::exit::Exit;
use cvx_signer::keys::PassphraseFrom;
use cvx_signer::migrate::{self, MigrateError};

use crate::{Failure, Res, audit_exit, out, settings};

fn migrate_exit(e: &MigrateError) -> Exit {
    match e {
        MigrateError::Audit(e) => audit_exit(e),
        MigrateError::State(_) | MigrateError::Io { .. } | MigrateError::NeverStarted { .. } => {
            Exit::State
        }
        MigrateError::Key(_) => Exit::Key,
        MigrateError::MarginTooSmall { .. } => Exit::Usage,
        MigrateError::File { .. }
        | MigrateError::Format { .. }
        | MigrateError::WrongNetwork { .. }
        | MigrateError::WrongKey { .. } => Exit::Migrate,
    }
}

#[allow(clippy::needless_pass_by_value)] // the shape map_err wants
fn mig(e: MigrateError) -> Failure {
    Failure(migrate_exit(&e), e.to_string())
}

pub(crate) fn cmd_export(config: &Path, out_path: Option<&Path>, keep_unlocked: bool) -> Res {
    let s = settings(config)?;
    let e = migrate::export(&s, keep_unlocked).map_err(mig)?;
    let text = migrate::to_json(&e);
    let lock_note = if keep_unlocked {
        "this signer was left unlocked (--keep-unlocked)"
    } else {
        "this signer is now locked: it refuses to sign until `cvx-signer unlock`"
    };
    match out_path {
        None => out(&text),
        Some(p) => {
            use std::os::unix::fs::OpenOptionsExt as _;
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(p)
                .and_then(|mut f| {
                    f.write_all(text.as_bytes())?;
                    f.sync_all()?;
                    Ok(f)
                })
                .map_err(|e| {
                    Failure(Exit::Migrate, format!("cannot write {}: {e}", p.display()))
                })?;
            let _ = f.flush();
        }
    }
    let _ = writeln!(
        std::io::stderr(),
        "exported the watermark of key {} at state sequence {}; {lock_note}",
        e.public_key,
        e.state_sequence
    );
    Ok(())
}

pub(crate) fn cmd_import(
    config: &Path,
    file: Option<&Path>,
    high_watermark: bool,
    margin_ms: Option<u64>,
    passphrase_fd: Option<i32>,
) -> Res {
    let s = settings(config)?;
    let file = match file {
        None => None,
        Some(p) => {
            let text = std::fs::read_to_string(p)
                .map_err(|e| Failure(Exit::Migrate, format!("cannot read {}: {e}", p.display())))?;
            Some((p.to_owned(), text))
        }
    };
    let margin = high_watermark
        .then(|| margin_ms.unwrap_or(s.policy.max_future_skew_ms.saturating_add(60_000)));
    let req = migrate::ImportRequest {
        file,
        high_watermark_margin: margin,
        passphrase: passphrase_fd.map_or(PassphraseFrom::Tty, PassphraseFrom::Fd),
    };
    let r = migrate::import(&s, &req).map_err(mig)?;
    out(&r.text());
    Ok(())
}
