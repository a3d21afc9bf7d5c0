//! install/: the install script into a staging root, the units under
//! `systemd-analyze verify`, and their exposure scores under
//! `systemd-analyze security --offline=yes` (signer <= 1.0, peer <= 2.0).

#![allow(clippy::unwrap_used, clippy::print_stdout)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use cvx_systest::{built_binaries, workspace_root};

const SIGNER_MAX_EXPOSURE: f64 = 1.0;
const PEER_MAX_EXPOSURE: f64 = 2.0;
const UNITS: [&str; 3] = [
    "cvx-signer.socket",
    "cvx-signer.service",
    "cvx-peer.service",
];

fn skip(test: &str, why: &str) {
    println!("SKIPPED {test}: {why}");
}

fn have(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

fn stage(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("cvx-install-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn install(dest: &Path, args: &[&str]) -> Output {
    let bins = built_binaries(&["cvx-signer", "cvx-peer"]);
    Command::new("bash")
        .arg(workspace_root().join("install/install.sh"))
        .arg("--bin-dir")
        .arg(&bins)
        .args(args)
        .env("DESTDIR", dest)
        .output()
        .expect("run install.sh")
}

fn mode(p: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .permissions()
        .mode()
        & 0o7777
}

fn owner(p: &Path) -> (u32, u32) {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(p).unwrap();
    (m.uid(), m.gid())
}

fn id_in(dest: &Path, file: &str, name: &str) -> Option<u32> {
    std::fs::read_to_string(dest.join("etc").join(file))
        .ok()?
        .lines()
        .find_map(|l| {
            let mut f = l.split(':');
            (f.next() == Some(name)).then(|| f.nth(1).and_then(|x| x.parse().ok()))?
        })
}

#[test]
fn install_into_a_staging_root_is_complete_idempotent_and_uninstall_keeps_state() {
    let dest = stage("tree");
    let out = install(&dest, &[]);
    assert!(
        out.status.success(),
        "install.sh failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for (path, want) in [
        ("usr/bin/cvx-signer", 0o755),
        ("usr/bin/cvx-peer", 0o755),
        ("usr/lib/systemd/system/cvx-signer.socket", 0o644),
        ("usr/lib/systemd/system/cvx-signer.service", 0o644),
        ("usr/lib/systemd/system/cvx-peer.service", 0o644),
        ("usr/lib/sysusers.d/cvx.conf", 0o644),
        ("usr/lib/tmpfiles.d/cvx.conf", 0o644),
        ("usr/share/cvx/policies/signing.toml", 0o644),
        ("etc/cvx-signer", 0o750),
        ("etc/cvx-peer", 0o750),
        ("etc/cvx-signer/signer.toml", 0o640),
        ("var/lib/cvx-signer", 0o700),
        ("var/lib/cvx-peer", 0o700),
    ] {
        assert_eq!(mode(&dest.join(path)), want, "{path}");
    }
    // A peer host gets its two daemons only: never cvx-devnet (a launcher that runs
    // unsandboxed), cvx-loadgen (throwaway keys) or cvx-vault (offline keys).
    let mut bins: Vec<String> = std::fs::read_dir(dest.join("usr/bin"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    bins.sort();
    assert_eq!(bins, ["cvx-peer", "cvx-signer"]);
    // Owners, where the staging root has the users (systemd-sysusers --root) and we may chown.
    if have("systemd-sysusers") && is_root() {
        let signer =
            id_in(&dest, "passwd", "cvx-signer").expect("cvx-signer user in staging passwd");
        let peer = id_in(&dest, "passwd", "cvx-peer").expect("cvx-peer user in staging passwd");
        assert_ne!(signer, peer, "signer and peer must be different users");
        let peer_gid = id_in(&dest, "group", "cvx-peer").unwrap();
        let signer_gid = id_in(&dest, "group", "cvx-signer").unwrap();
        assert_eq!(
            owner(&dest.join("var/lib/cvx-signer")),
            (signer, signer_gid)
        );
        assert_eq!(owner(&dest.join("var/lib/cvx-peer")), (peer, peer_gid));
        assert_eq!(owner(&dest.join("etc/cvx-signer")), (0, signer_gid));
        let conf = std::fs::read_to_string(dest.join("etc/cvx-signer/signer.toml")).unwrap();
        assert!(conf.contains(&format!("allowed_uids = [{peer}]")), "{conf}");
    } else {
        skip("owner checks", "needs root and systemd-sysusers");
    }
    // The signer can check finality certificates (docs/signer.md, "Certificates").
    let conf = std::fs::read_to_string(dest.join("etc/cvx-signer/signer.toml")).unwrap();
    assert!(
        conf.contains("\ngenesis_file = \"/etc/cvx-signer/genesis.bin\""),
        "{conf}"
    );
    // Idempotent: a second run succeeds and keeps an edited config.
    let conf = dest.join("etc/cvx-signer/signer.toml");
    let edited = std::fs::read_to_string(&conf).unwrap() + "# operator's edit\n";
    std::fs::write(&conf, &edited).unwrap();
    let again = install(&dest, &[]);
    assert!(
        again.status.success(),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    assert_eq!(std::fs::read_to_string(&conf).unwrap(), edited);
    // Purge needs --yes; uninstall leaves keys, config and state.
    std::fs::write(dest.join("var/lib/cvx-signer/state"), b"watermark").unwrap();
    let refused = install(&dest, &["--uninstall", "--purge"]);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("--yes"));
    let out = install(&dest, &["--uninstall"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!dest.join("usr/bin/cvx-signer").exists());
    assert!(
        !dest
            .join("usr/lib/systemd/system/cvx-signer.service")
            .exists()
    );
    assert!(
        dest.join("var/lib/cvx-signer/state").exists(),
        "uninstall removed the watermark"
    );
    assert!(conf.exists(), "uninstall removed the config");
    let out = install(&dest, &["--uninstall", "--purge", "--yes"]);
    assert!(out.status.success());
    assert!(!dest.join("var/lib/cvx-signer").exists());
    let _ = std::fs::remove_dir_all(&dest);
}

/// The staging root gets the host's targets and slices so that `verify --root` can
/// resolve the units' dependencies; the executables are the staged ones.
fn staged_for_analysis() -> Option<PathBuf> {
    if !have("systemd-analyze") {
        skip("systemd-analyze checks", "systemd-analyze is not installed");
        return None;
    }
    let dest = stage("analyze");
    let out = install(&dest, &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let unit_dir = dest.join("usr/lib/systemd/system");
    for host in ["/lib/systemd/system", "/usr/lib/systemd/system"] {
        let Ok(entries) = std::fs::read_dir(host) else {
            continue;
        };
        for e in entries.flatten() {
            let name = e.file_name();
            let n = name.to_string_lossy();
            if (n.ends_with(".target") || n.ends_with(".slice")) && !unit_dir.join(&name).exists() {
                let _ = std::fs::copy(e.path(), unit_dir.join(&name));
            }
        }
    }
    Some(dest)
}

#[test]
fn units_pass_systemd_analyze_verify_without_warnings() {
    let Some(dest) = staged_for_analysis() else {
        return;
    };
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(format!("--root={}", dest.display()))
        .args(UNITS)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stderr.trim().is_empty(),
        "systemd-analyze verify:\n{stderr}"
    );
    let _ = std::fs::remove_dir_all(&dest);
}

fn exposure(dest: &Path, unit: &str) -> f64 {
    let out = Command::new("systemd-analyze")
        .args(["security", "--offline=yes", "--no-pager"])
        .arg(format!("--root={}", dest.display()))
        .arg(unit)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find(|l| l.contains("Overall exposure level"))
        .unwrap_or_else(|| {
            panic!(
                "no exposure line for {unit}:\n{text}\n{}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
    line.split(':')
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("cannot parse {line}"))
}

#[test]
fn exposure_scores_are_within_their_budgets() {
    let Some(dest) = staged_for_analysis() else {
        return;
    };
    let signer = exposure(&dest, "cvx-signer.service");
    let peer = exposure(&dest, "cvx-peer.service");
    println!(
        "systemd-analyze security exposure: cvx-signer.service {signer} (max {SIGNER_MAX_EXPOSURE}), cvx-peer.service {peer} (max {PEER_MAX_EXPOSURE})"
    );
    assert!(
        signer <= SIGNER_MAX_EXPOSURE,
        "cvx-signer.service exposure {signer} > {SIGNER_MAX_EXPOSURE}"
    );
    assert!(
        peer <= PEER_MAX_EXPOSURE,
        "cvx-peer.service exposure {peer} > {PEER_MAX_EXPOSURE}"
    );
    let _ = std::fs::remove_dir_all(&dest);
}
