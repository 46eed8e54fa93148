//! Secrets by reference.
//!
//! A configuration never holds a password or key itself, only where to find
//! it: `{ env = "NAME" }` or `{ file = "PATH" }`. The value is read when a
//! connector connects and is never printed, logged or stored.

use std::fmt;

use serde::Deserialize;
use thiserror::Error;

/// Where a secret is found.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged, deny_unknown_fields)]
pub enum SecretRef {
    /// In an environment variable.
    Env { env: String },
    /// In a file (its content, trailing newline removed).
    File { file: String },
}

impl fmt::Debug for SecretRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SecretRef::Env { env } => write!(f, "{{ env = {env:?} }}"),
            SecretRef::File { file } => write!(f, "{{ file = {file:?} }}"),
        }
    }
}

/// A secret could not be read.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum SecretError {
    #[error("the environment variable {0} is not set (it should hold a secret)")]
    MissingEnv(String),
    #[error("the secret file {path} cannot be read: {reason}")]
    UnreadableFile { path: String, reason: String },
}

/// A secret value. Its `Debug` and `Display` print `[redacted]`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a value (for tests and for values already resolved).
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The value itself; call only where it is sent to the system.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl SecretRef {
    /// Reads the secret.
    pub fn resolve(&self) -> Result<Secret, SecretError> {
        match self {
            SecretRef::Env { env } => std::env::var(env)
                .map(Secret)
                .map_err(|_| SecretError::MissingEnv(env.clone())),
            SecretRef::File { file } => std::fs::read_to_string(file)
                .map(|s| Secret(s.trim_end_matches(['\n', '\r']).to_string()))
                .map_err(|e| SecretError::UnreadableFile {
                    path: file.clone(),
                    reason: e.to_string(),
                }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_show_in_debug_output() {
        let secret = Secret::new("hunter2");
        assert_eq!(format!("{secret:?} {secret}"), "[redacted] [redacted]");
    }

    #[test]
    fn a_missing_variable_is_named() {
        let reference = SecretRef::Env {
            env: "COEXIST_TEST_SURELY_UNSET_VARIABLE".into(),
        };
        let error = reference
            .resolve()
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            error.contains("COEXIST_TEST_SURELY_UNSET_VARIABLE"),
            "{error}"
        );
    }

    #[test]
    fn file_secrets_lose_their_trailing_newline() -> Result<(), Box<dyn std::error::Error>> {
        let dir = std::env::temp_dir().join(format!("coexist-secret-{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        let path = dir.join("pw");
        std::fs::write(&path, "s3cret\n")?;
        let reference = SecretRef::File {
            file: path.display().to_string(),
        };
        assert_eq!(reference.resolve()?.expose(), "s3cret");
        std::fs::remove_dir_all(&dir)?;
        Ok(())
    }
}
