//! Processes of a running devnet, found and started again through /proc: the system
//! tests kill a peer or a signer and restart it exactly as its launcher (the unit's
//! command) did.

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// The pid of the `BIN run` whose command line names `config`.
///
/// # Panics
/// When no such process runs.
#[must_use]
pub fn pid_of(bin: &str, config: &Path) -> u32 {
    let want = config.as_os_str().as_encoded_bytes();
    std::fs::read_dir("/proc")
        .expect("read /proc")
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .find(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| {
                let args: Vec<&[u8]> = c.split(|b| *b == 0).collect();
                args.first().is_some_and(|a| a.ends_with(bin.as_bytes()))
                    && args.contains(&b"run".as_slice())
                    && args.contains(&want)
            })
        })
        .unwrap_or_else(|| panic!("the devnet's {bin} for {}", config.display()))
}

/// How a running process was started: executable, arguments, environment and working
/// directory, read from /proc (before it is killed).
#[derive(Clone, Debug)]
pub struct Launch {
    /// The executable.
    pub exe: PathBuf,
    /// The arguments after the program name.
    pub args: Vec<OsString>,
    /// The whole environment.
    pub env: Vec<(OsString, OsString)>,
    /// The working directory.
    pub cwd: PathBuf,
}

fn nul_split(bytes: &[u8]) -> Vec<OsString> {
    bytes
        .split(|b| *b == 0)
        .filter(|p| !p.is_empty())
        .map(|p| OsString::from_vec(p.to_vec()))
        .collect()
}

/// How process `pid` was started.
///
/// # Panics
/// When /proc cannot be read for `pid`.
#[must_use]
pub fn launch_of(pid: u32) -> Launch {
    let proc = PathBuf::from(format!("/proc/{pid}"));
    let args = nul_split(&std::fs::read(proc.join("cmdline")).expect("cmdline"));
    let env = nul_split(&std::fs::read(proc.join("environ")).expect("environ"))
        .into_iter()
        .filter_map(|kv| {
            let kv = kv.into_vec();
            let eq = kv.iter().position(|b| *b == b'=')?;
            Some((
                OsString::from_vec(kv[..eq].to_vec()),
                OsString::from_vec(kv[eq + 1..].to_vec()),
            ))
        })
        .collect();
    Launch {
        exe: std::fs::read_link(proc.join("exe")).expect("exe"),
        args: args.get(1..).unwrap_or_default().to_vec(),
        env,
        cwd: std::fs::read_link(proc.join("cwd")).expect("cwd"),
    }
}

impl Launch {
    /// Start it again, stdin closed, stdout and stderr appended to `out` and `err`.
    ///
    /// # Panics
    /// When a log cannot be opened or the process cannot be started.
    #[must_use]
    pub fn start(&self, out: &Path, err: &Path) -> Child {
        let append = |p: &Path| {
            std::fs::OpenOptions::new()
                .append(true)
                .create(true)
                .open(p)
                .expect("open the log")
        };
        Command::new(&self.exe)
            .args(&self.args)
            .env_clear()
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .current_dir(&self.cwd)
            .stdin(Stdio::null())
            .stdout(append(out))
            .stderr(append(err))
            .spawn()
            .expect("start the process again")
    }
}
