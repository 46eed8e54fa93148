//! The error every connector returns, classified so the engine knows whether
//! to retry, wait, give up on an operation, or stop talking to a system.

use std::time::Duration;

use thiserror::Error;

/// A failure talking to a system.
#[derive(Debug, Clone, Error)]
pub enum ConnectorError {
    /// A transient failure (connection reset, 5xx, server restarting):
    /// trying again may succeed.
    #[error("temporary failure: {message}")]
    Retryable { message: String },
    /// The system asked us to slow down (429, 403 rate limit, AD busy).
    #[error("throttled by the system{}: {message}", retry_after.map(|d| format!(" (retry after {}s)", d.as_secs())).unwrap_or_default())]
    Throttled {
        retry_after: Option<Duration>,
        message: String,
    },
    /// The request is wrong and will stay wrong (schema violation, missing
    /// object, insufficient rights on one object).
    #[error("{message}")]
    Permanent { message: String },
    /// Credentials were refused or lack the rights coexist needs.
    #[error("authentication failed: {message}")]
    Authentication { message: String },
}

impl ConnectorError {
    pub fn retryable(message: impl Into<String>) -> Self {
        ConnectorError::Retryable {
            message: message.into(),
        }
    }

    pub fn permanent(message: impl Into<String>) -> Self {
        ConnectorError::Permanent {
            message: message.into(),
        }
    }

    pub fn authentication(message: impl Into<String>) -> Self {
        ConnectorError::Authentication {
            message: message.into(),
        }
    }

    pub fn throttled(retry_after: Option<Duration>, message: impl Into<String>) -> Self {
        ConnectorError::Throttled {
            retry_after,
            message: message.into(),
        }
    }

    /// Whether trying again later may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            ConnectorError::Retryable { .. } | ConnectorError::Throttled { .. }
        )
    }
}
