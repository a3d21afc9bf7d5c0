//! The one error type for configuration files, shared by every cvx program that reads one
//! (cvx-signer's and cvx-peer's TOML configs): each variant names the file, and where it
//! applies the field and the fix, so every config error reads the same way.
//!
//! Only the type lives here: reading the file is the caller's (this crate does no I/O).

use std::path::PathBuf;

/// Why a configuration file was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// Cannot read the file.
    #[error("cannot read config {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// Not valid TOML for the schema (includes unknown fields, with line and column).
    #[error("config {path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's message (names the field and position).
        message: String,
    },
    /// A value is out of range.
    #[error("config {path}: field `{field}`: {problem}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// The field.
        field: &'static str,
        /// What is wrong and how to fix it.
        problem: String,
    },
}

impl ConfigError {
    /// A [`ConfigError::Read`] for `path`.
    #[must_use]
    pub fn read(path: &std::path::Path, source: std::io::Error) -> Self {
        Self::Read {
            path: path.to_path_buf(),
            source,
        }
    }

    /// A [`ConfigError::Parse`] for `path`, from the parser's message (trailing space
    /// trimmed).
    #[must_use]
    pub fn parse(path: &std::path::Path, message: &str) -> Self {
        Self::Parse {
            path: path.to_path_buf(),
            message: message.trim_end().to_owned(),
        }
    }

    /// A [`ConfigError::Invalid`]: `field` of `path` is wrong; `problem` says how and what
    /// to do.
    #[must_use]
    pub fn invalid(
        path: &std::path::Path,
        field: &'static str,
        problem: impl Into<String>,
    ) -> Self {
        Self::Invalid {
            path: path.to_path_buf(),
            field,
            problem: problem.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_variant_names_the_file_and_the_field() {
        let p = std::path::Path::new("/etc/cvx/x.toml");
        assert_eq!(
            ConfigError::invalid(p, "port", "0: use 1..=65535").to_string(),
            "config /etc/cvx/x.toml: field `port`: 0: use 1..=65535"
        );
        assert_eq!(
            ConfigError::parse(p, "unknown field `x`\n").to_string(),
            "config /etc/cvx/x.toml: unknown field `x`"
        );
        let e = ConfigError::read(p, std::io::Error::from(std::io::ErrorKind::NotFound));
        assert!(
            e.to_string()
                .starts_with("cannot read config /etc/cvx/x.toml: ")
        );
    }
}
