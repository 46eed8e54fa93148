//! The error every connector returns, classified so the engine knows whether
//! to retry, wait, give up on an operation, or stop talking to a system.

use std::error::Error as StdError;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use thiserror::Error;

/// The lower-level error a [`ConnectorError`] was made from (an I/O error, an
/// HTTP client error, an LDAP result), kept so `{:#}`-style reporters and
/// `tracing` can show the whole chain. Shared, so the error stays `Clone`.
#[derive(Clone)]
pub struct Cause(Arc<dyn StdError + Send + Sync + 'static>);

impl Cause {
    /// Wraps `error`.
    pub fn new(error: impl StdError + Send + Sync + 'static) -> Self {
        Cause(Arc::new(error))
    }
}

impl fmt::Debug for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl fmt::Display for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl StdError for Cause {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.0.source()
    }
}

/// A failure talking to a system.
#[derive(Debug, Clone, Error)]
pub enum ConnectorError {
    /// A transient failure (connection reset, 5xx, server restarting):
    /// trying again may succeed.
    #[error("temporary failure: {message}")]
    Retryable {
        message: String,
        #[source]
        cause: Option<Cause>,
    },
    /// The system asked us to slow down (429, 403 rate limit, AD busy).
    #[error("throttled by the system{}: {message}", retry_after.map(|d| format!(" (retry after {}s)", d.as_secs())).unwrap_or_default())]
    Throttled {
        retry_after: Option<Duration>,
        message: String,
        #[source]
        cause: Option<Cause>,
    },
    /// The request is wrong and will stay wrong (schema violation, missing
    /// object, insufficient rights on one object).
    #[error("{message}")]
    Permanent {
        message: String,
        #[source]
        cause: Option<Cause>,
    },
    /// Credentials were refused or lack the rights coexist needs.
    #[error("authentication failed: {message}")]
    Authentication {
        message: String,
        #[source]
        cause: Option<Cause>,
    },
}

impl ConnectorError {
    pub fn retryable(message: impl Into<String>) -> Self {
        ConnectorError::Retryable {
            message: message.into(),
            cause: None,
        }
    }

    pub fn permanent(message: impl Into<String>) -> Self {
        ConnectorError::Permanent {
            message: message.into(),
            cause: None,
        }
    }

    pub fn authentication(message: impl Into<String>) -> Self {
        ConnectorError::Authentication {
            message: message.into(),
            cause: None,
        }
    }

    pub fn throttled(retry_after: Option<Duration>, message: impl Into<String>) -> Self {
        ConnectorError::Throttled {
            retry_after,
            message: message.into(),
            cause: None,
        }
    }

    /// The same error, recording `error` as its cause (its `source()`).
    pub fn caused_by(mut self, error: impl StdError + Send + Sync + 'static) -> Self {
        let slot = match &mut self {
            ConnectorError::Retryable { cause, .. }
            | ConnectorError::Throttled { cause, .. }
            | ConnectorError::Permanent { cause, .. }
            | ConnectorError::Authentication { cause, .. } => cause,
        };
        *slot = Some(Cause::new(error));
        self
    }

    /// The same class of error with `context` put before the message; the
    /// cause is kept. ("reading the shared contacts failed: …")
    pub fn context(mut self, context: impl fmt::Display) -> Self {
        let message = match &mut self {
            ConnectorError::Retryable { message, .. }
            | ConnectorError::Throttled { message, .. }
            | ConnectorError::Permanent { message, .. }
            | ConnectorError::Authentication { message, .. } => message,
        };
        *message = format!("{context}: {message}");
        self
    }

    /// The message, without the class's prefix.
    pub fn message(&self) -> &str {
        match self {
            ConnectorError::Retryable { message, .. }
            | ConnectorError::Throttled { message, .. }
            | ConnectorError::Permanent { message, .. }
            | ConnectorError::Authentication { message, .. } => message,
        }
    }

    /// Whether trying again later may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            ConnectorError::Retryable { .. } | ConnectorError::Throttled { .. }
        )
    }

    /// Whether the system refused coexist's credentials: nothing more should
    /// be tried against it in this run.
    pub fn is_authentication(&self) -> bool {
        matches!(self, ConnectorError::Authentication { .. })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cause_is_kept_as_the_source_and_survives_a_clone() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        let error = ConnectorError::retryable("connecting to ldap://x").caused_by(io);
        let cloned = error.clone().context("reading ldap");
        let source = StdError::source(&cloned).map(ToString::to_string);
        assert_eq!(source.as_deref(), Some("refused"));
        assert_eq!(
            cloned.to_string(),
            "temporary failure: reading ldap: connecting to ldap://x"
        );
        assert!(cloned.is_transient());
    }
}
