//! Talking to the operator: passphrases and recovery words from the terminal (echo
//! off) or from an inherited file descriptor, confirmations, and showing recovery words.
//!
//! Secrets never come from argv or the environment, and never go to stdout: the
//! terminal is `/dev/tty`, opened directly, so redirecting stdout to a file or a pipe
//! can never capture a recovery word.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};

use nix::sys::termios::{LocalFlags, SetArg, tcgetattr, tcsetattr};
use zeroize::Zeroizing;

use crate::error::{Result, VaultError};
use crate::mnemonic::Words;
use crate::secret::Passphrase;

/// The longest line (passphrase or words) the vault reads.
pub const LINE_CAP: usize = 1024;

/// What the vault asks of its operator. [`Console`] is the real one; tests may script it.
pub trait Operator {
    /// A new passphrase (asked twice on a terminal).
    ///
    /// # Errors
    /// Input failures, a mismatch, an empty passphrase.
    fn new_passphrase(&mut self, what: &str) -> Result<Passphrase>;
    /// An existing passphrase.
    ///
    /// # Errors
    /// Input failures, an empty passphrase.
    fn passphrase(&mut self, what: &str) -> Result<Passphrase>;
    /// Show new recovery words once and have them retyped.
    ///
    /// # Errors
    /// No terminal, input failures, [`VaultError::WordsMismatch`].
    fn show_words(&mut self, words: &Words) -> Result<()>;
    /// Existing recovery words.
    ///
    /// # Errors
    /// Input failures, [`VaultError::Mnemonic`].
    fn existing_words(&mut self) -> Result<Words>;
    /// Show `summary` and ask for a yes.
    ///
    /// # Errors
    /// [`VaultError::Declined`], [`VaultError::NoTerminal`].
    fn confirm(&mut self, action: &'static str, summary: &str) -> Result<()>;
    /// The optional SLIP-39 passphrase of a set of shares (empty for none); `new`:
    /// asked twice on a terminal.
    ///
    /// # Errors
    /// Input failures, [`VaultError::PassphraseMismatch`].
    fn shares_passphrase(&mut self, new: bool) -> Result<Zeroizing<String>>;
    /// Show one new share once (on the terminal only, like new recovery words), clear
    /// the screen, and return the share as retyped.
    ///
    /// # Errors
    /// No terminal, input failures.
    fn show_share(&mut self, heading: &str, words: &str) -> Result<Zeroizing<String>>;
    /// The `n`th share typed in; `progress` says what the recovery has so far. An
    /// empty line (or the end of a descriptor's input) means there are no more.
    ///
    /// # Errors
    /// No terminal (without a descriptor), input failures.
    fn share(&mut self, n: usize, progress: &str) -> Result<Zeroizing<String>>;
}

/// Clears the screen and its scroll-back.
const CLEAR_SCREEN: &str = "\x1b[2J\x1b[3J\x1b[H";

/// The terminal and/or an inherited descriptor.
#[derive(Debug)]
pub struct Console {
    fd: Option<File>,
    words_fd: Option<File>,
    words_shared: bool,
    tty: Option<File>,
    yes: bool,
}

fn input_err(what: &'static str) -> impl Fn(std::io::Error) -> VaultError {
    move |e| VaultError::Input {
        what,
        reason: e.to_string(),
    }
}

/// Open an inherited descriptor by number without unsafe code: `/proc/self/fd/N` opens
/// the same file (pipe, file or terminal) for reading.
fn open_fd(n: u32, what: &'static str) -> Result<File> {
    File::open(format!("/proc/self/fd/{n}")).map_err(|e| VaultError::Input {
        what,
        reason: format!("file descriptor {n} is not open for reading ({e})"),
    })
}

/// Read one line, a byte at a time (so nothing past the newline is consumed from a
/// shared descriptor), into a zeroizing buffer. The newline (and a CR before it) is
/// dropped.
fn read_line(f: &mut File, what: &'static str) -> Result<Zeroizing<String>> {
    read_line_or_end(f, what)?.ok_or_else(|| VaultError::Input {
        what,
        reason: "end of input before a line was read".into(),
    })
}

/// [`read_line`], with `None` at the end of the input (nothing left to read).
fn read_line_or_end(f: &mut File, what: &'static str) -> Result<Option<Zeroizing<String>>> {
    let mut buf = Zeroizing::new(Vec::with_capacity(LINE_CAP));
    let mut byte = [0u8; 1];
    loop {
        let n = f.read(&mut byte).map_err(input_err(what))?;
        if n == 0 {
            if buf.is_empty() {
                return Ok(None);
            }
            break;
        }
        if byte[0] == b'\n' {
            break;
        }
        if buf.len() == LINE_CAP {
            return Err(VaultError::Input {
                what,
                reason: format!("line longer than {LINE_CAP} bytes"),
            });
        }
        buf.push(byte[0]);
    }
    if buf.last() == Some(&b'\r') {
        buf.pop();
    }
    let text = core::str::from_utf8(&buf).map_err(|_| VaultError::Input {
        what,
        reason: "not UTF-8 text".into(),
    })?;
    let mut out = Zeroizing::new(String::with_capacity(text.len()));
    out.push_str(text);
    Ok(Some(out))
}

/// What to do instead of using the terminal, per action.
const fn hint_for(action: &str) -> &'static str {
    match action.as_bytes() {
        b"a passphrase" => "pass --passphrase-fd N to read it from a file descriptor",
        b"showing new recovery words" => {
            "run keygen --words on a terminal, or import existing words with --import-words --words-fd N"
        }
        b"typing recovery words" => "pass --words-fd N to read them from a file descriptor",
        b"showing shares" => {
            "run cvx-vault shares split on a terminal: shares are shown there only, never written to stdout or a file"
        }
        b"typing shares" => {
            "pass --words-fd N to read them from a file descriptor, one share per line"
        }
        _ => "check the output of the same command with --dry-run, then pass --yes",
    }
}

impl Console {
    /// `passphrase_fd`: read passphrases from this descriptor instead of the terminal.
    /// `words_fd`: read existing recovery words from this descriptor. `yes`: skip
    /// confirmations. The terminal is opened lazily.
    ///
    /// # Errors
    /// [`VaultError::Input`] when a descriptor is not open.
    pub fn new(passphrase_fd: Option<u32>, words_fd_num: Option<u32>, yes: bool) -> Result<Self> {
        let fd = passphrase_fd
            .map(|n| open_fd(n, "passphrase"))
            .transpose()?;
        let words_fd = match (words_fd_num, passphrase_fd) {
            (Some(w), Some(p)) if w == p => None, // shared: read from `fd` in order
            (Some(w), _) => Some(open_fd(w, "recovery words")?),
            (None, _) => None,
        };
        let words_shared = words_fd_num.is_some() && words_fd_num == passphrase_fd;
        Ok(Self {
            fd,
            words_fd,
            words_shared,
            tty: None,
            yes,
        })
    }

    fn tty(&mut self, action: &'static str) -> Result<&mut File> {
        let no_tty = || VaultError::NoTerminal {
            action,
            hint: hint_for(action),
        };
        if self.tty.is_none() {
            let t = OpenOptions::new()
                .read(true)
                .write(true)
                .open("/dev/tty")
                .map_err(|_| no_tty())?;
            self.tty = Some(t);
        }
        self.tty.as_mut().ok_or_else(no_tty)
    }

    fn say(&mut self, action: &'static str, text: &str) -> Result<()> {
        let t = self.tty(action)?;
        t.write_all(text.as_bytes())
            .and_then(|()| t.flush())
            .map_err(input_err("terminal"))
    }

    /// Read a line from the terminal with echo off.
    fn read_hidden(
        &mut self,
        action: &'static str,
        prompt: &str,
        what: &'static str,
    ) -> Result<Zeroizing<String>> {
        self.say(action, prompt)?;
        let t = self.tty(action)?;
        let saved = tcgetattr(&*t).map_err(|e| VaultError::Input {
            what,
            reason: format!("cannot read terminal settings ({e})"),
        })?;
        let mut quiet = saved.clone();
        quiet.local_flags.remove(LocalFlags::ECHO);
        tcsetattr(&*t, SetArg::TCSAFLUSH, &quiet).map_err(|e| VaultError::Input {
            what,
            reason: format!("cannot turn off echo ({e})"),
        })?;
        let line = read_line(t, what);
        // Restore echo whatever happened.
        let _ = tcsetattr(&*t, SetArg::TCSAFLUSH, &saved);
        let _ = t.write_all(b"\n");
        line
    }

    /// Show `text`, wait for Enter, clear the screen (new words and new shares).
    fn show_once(&mut self, action: &'static str, text: &str) -> Result<()> {
        self.say(action, text)?;
        let _ = self.read_visible(action, "", "confirmation")?;
        self.say(action, CLEAR_SCREEN)
    }

    /// Numbered words, four to a row, into `text`.
    fn number_words<'a>(text: &mut String, words: impl Iterator<Item = &'a str>) {
        for (i, w) in words.enumerate() {
            text.push_str(&format!("{:>4}. {w:<10}", i + 1));
            if i % 4 == 3 {
                text.push('\n');
            }
        }
    }

    fn read_visible(
        &mut self,
        action: &'static str,
        prompt: &str,
        what: &'static str,
    ) -> Result<Zeroizing<String>> {
        self.say(action, prompt)?;
        let t = self.tty(action)?;
        read_line(t, what)
    }
}

impl Operator for Console {
    fn new_passphrase(&mut self, what: &str) -> Result<Passphrase> {
        if let Some(f) = self.fd.as_mut() {
            let line = read_line(f, "passphrase")?;
            return Passphrase::from_text(&line);
        }
        let a = self.read_hidden(
            "a passphrase",
            &format!("New passphrase for {what}: "),
            "passphrase",
        )?;
        let first = Passphrase::from_text(&a)?;
        let b = self.read_hidden("a passphrase", "Repeat the passphrase: ", "passphrase")?;
        let second = Passphrase::from_text(&b)?;
        if !first.same_as(&second) {
            return Err(VaultError::PassphraseMismatch);
        }
        Ok(first)
    }

    fn passphrase(&mut self, what: &str) -> Result<Passphrase> {
        if let Some(f) = self.fd.as_mut() {
            let line = read_line(f, "passphrase")?;
            return Passphrase::from_text(&line);
        }
        let a = self.read_hidden(
            "a passphrase",
            &format!("Passphrase for {what}: "),
            "passphrase",
        )?;
        Passphrase::from_text(&a)
    }

    fn show_words(&mut self, words: &Words) -> Result<()> {
        let action = "showing new recovery words";
        let mut text = Zeroizing::new(String::with_capacity(1024));
        text.push_str(
            "\nRecovery words (shown once; write them down on paper, in order, and keep them offline):\n\n",
        );
        Self::number_words(&mut text, words.words());
        text.push_str("\nPress Enter when they are written down; the screen is then cleared.");
        self.show_once(action, &text)?;
        let typed = self.read_hidden(
            action,
            "Type the recovery words again, separated by spaces: ",
            "recovery words",
        )?;
        let again = Words::parse(&typed).map_err(|_| VaultError::WordsMismatch)?;
        if !again.same_as(words) {
            return Err(VaultError::WordsMismatch);
        }
        self.say(action, "The words match.\n")
    }

    fn existing_words(&mut self) -> Result<Words> {
        let line = if let Some(f) = self.words_fd.as_mut() {
            read_line(f, "recovery words")?
        } else if let Some(f) = self.fd.as_mut().filter(|_| self.words_shared) {
            // The words come first on a descriptor shared with the passphrase.
            read_line(f, "recovery words")?
        } else {
            self.read_hidden(
                "typing recovery words",
                "Recovery words, separated by spaces: ",
                "recovery words",
            )?
        };
        Words::parse(&line)
    }

    fn shares_passphrase(&mut self, new: bool) -> Result<Zeroizing<String>> {
        let what = "SLIP-39 passphrase";
        if let Some(f) = self.fd.as_mut() {
            return read_line(f, what);
        }
        let a = self.read_hidden(
            "a passphrase",
            "SLIP-39 passphrase of the shares (Enter for none): ",
            what,
        )?;
        if new {
            let b = self.read_hidden("a passphrase", "Repeat the SLIP-39 passphrase: ", what)?;
            if *a != *b {
                return Err(VaultError::PassphraseMismatch);
            }
        }
        Ok(a)
    }

    fn show_share(&mut self, heading: &str, words: &str) -> Result<Zeroizing<String>> {
        let action = "showing shares";
        let mut text = Zeroizing::new(String::with_capacity(1024));
        text.push_str(&format!(
            "\n{heading} (shown once; write it down on paper, in order, and keep it apart from the other shares):\n\n"
        ));
        Self::number_words(&mut text, words.split(' '));
        text.push_str("\nPress Enter when it is written down; the screen is then cleared.");
        self.show_once(action, &text)?;
        self.read_hidden(
            action,
            "Type the share again, separated by spaces: ",
            "share",
        )
    }

    fn share(&mut self, n: usize, progress: &str) -> Result<Zeroizing<String>> {
        // The end of a descriptor's input reads as an empty line: no more shares.
        let none = || Zeroizing::new(String::new());
        if let Some(f) = self.words_fd.as_mut() {
            return Ok(read_line_or_end(f, "share")?.unwrap_or_else(none));
        }
        if let Some(f) = self.fd.as_mut().filter(|_| self.words_shared) {
            return Ok(read_line_or_end(f, "share")?.unwrap_or_else(none));
        }
        self.read_hidden(
            "typing shares",
            &format!("{progress}\nShare {n}, words separated by spaces (Enter alone if you have no more): "),
            "share",
        )
    }

    fn confirm(&mut self, action: &'static str, summary: &str) -> Result<()> {
        if self.yes {
            return Ok(());
        }
        self.say(action, summary)?;
        let answer = self.read_visible(action, "Type yes to go ahead: ", "confirmation")?;
        if answer.trim() == "yes" {
            Ok(())
        } else {
            Err(VaultError::Declined)
        }
    }
}
