//! The launcher's child processes: one owner (the launcher's loop) for every signer,
//! peer and load generator it started; the nemesis acts on them through it.

use std::fmt::Write as _;
use std::process::Child;
use std::time::{Duration, Instant};

use crate::DevnetError;

/// The child processes, by name (`signer-0`, `peer-0`, `loadgen`).
#[derive(Debug)]
pub(crate) struct Children {
    pub(crate) list: Vec<(String, Child)>,
}

impl Children {
    fn pid(&self, name: &str) -> Option<nix::unistd::Pid> {
        self.list
            .iter()
            .find(|(n, _)| n == name)
            .and_then(|(_, c)| i32::try_from(c.id()).ok())
            .map(nix::unistd::Pid::from_raw)
    }

    /// Send `sig` to the named child.
    pub(crate) fn signal(&self, name: &str, sig: nix::sys::signal::Signal) {
        if let Some(pid) = self.pid(name) {
            let _ = nix::sys::signal::kill(pid, sig);
        }
    }

    /// kill -9 the named child and reap it.
    pub(crate) fn kill9(&mut self, name: &str) {
        if let Some((_, c)) = self.list.iter_mut().find(|(n, _)| n == name) {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// The named child was restarted as `child`.
    pub(crate) fn replace(&mut self, name: &str, child: Child) {
        if let Some(slot) = self.list.iter_mut().find(|(n, _)| n == name) {
            slot.1 = child;
        }
    }

    pub(crate) fn terminate_all(&mut self) {
        // Peers and loadgen first (graceful), then signers. A frozen one (SIGSTOP by the
        // nemesis) is woken first so that it can hear the SIGTERM.
        for (_, c) in self.list.iter().rev() {
            let pid = nix::unistd::Pid::from_raw(i32::try_from(c.id()).unwrap_or(0));
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGCONT);
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        for (_, c) in &mut self.list {
            while Instant::now() < deadline {
                if matches!(c.try_wait(), Ok(Some(_))) {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Children {
    fn drop(&mut self) {
        self.terminate_all();
    }
}

pub(crate) fn check_alive(children: &mut Children) -> Result<(), DevnetError> {
    for (name, c) in &mut children.list {
        if let Ok(Some(st)) = c.try_wait() {
            let mut msg = String::new();
            let _ = write!(
                msg,
                "{name} exited early ({st}); see its log in the devnet dir"
            );
            return Err(DevnetError::Child(msg));
        }
    }
    Ok(())
}
