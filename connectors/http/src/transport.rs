//! One HTTP request sent, its answer read whole.

use std::time::Duration;

use coexist_connector::ConnectorError;
use reqwest::header::{HeaderMap, RETRY_AFTER};
use reqwest::StatusCode;
use serde::de::DeserializeOwned;

/// An answer, read whole.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Reply {
    /// The body as `T`; a body that does not parse is a permanent error
    /// naming `what`.
    pub fn json<T: DeserializeOwned>(&self, what: &str) -> Result<T, ConnectorError> {
        serde_json::from_slice(&self.body).map_err(|e| {
            ConnectorError::permanent(format!(
                "{what}: HTTP {}: the answer is not what the API documents: {e}",
                self.status
            ))
        })
    }

    /// The `Retry-After` the answer asked for.
    pub fn retry_after(&self) -> Option<Duration> {
        retry_after(&self.headers)
    }
}

/// Sends `request` and reads its answer whole, whatever its status. A
/// failure to connect, send or read is retryable and says so in words,
/// prefixed by `what`.
pub async fn send(request: reqwest::RequestBuilder, what: &str) -> Result<Reply, ConnectorError> {
    let response = request.send().await.map_err(|e| {
        coexist_connector::requests::request_sent(false);
        ConnectorError::retryable(format!("{what}: {}", describe_transport_error(&e))).caused_by(e)
    })?;
    let status = response.status();
    // Counted for the daemon's metrics (429 and 503: throttled).
    coexist_connector::requests::request_sent(matches!(status.as_u16(), 429 | 503));
    let headers = response.headers().clone();
    let body = response.bytes().await.map_err(|e| {
        ConnectorError::retryable(format!(
            "{what}: reading the answer: {}",
            describe_transport_error(&e)
        ))
        .caused_by(e)
    })?;
    Ok(Reply {
        status,
        headers,
        body: body.to_vec(),
    })
}

/// A transport error in words, with its causes.
pub fn describe_transport_error(error: &reqwest::Error) -> String {
    let kind = if error.is_timeout() {
        "timed out"
    } else if error.is_connect() {
        "cannot connect"
    } else {
        "request failed"
    };
    let mut message = format!("{kind}: {error}");
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    message
}

/// The `Retry-After` header in seconds, when present (the HTTP-date form
/// is not sent by the APIs coexist calls).
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    headers
        .get(RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    #[test]
    fn retry_after_reads_seconds_and_ignores_what_it_cannot_read() {
        let mut headers = HeaderMap::new();
        assert_eq!(retry_after(&headers), None);
        headers.insert(RETRY_AFTER, HeaderValue::from_static(" 7 "));
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(7)));
        headers.insert(
            RETRY_AFTER,
            HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT"),
        );
        assert_eq!(retry_after(&headers), None);
    }

    #[tokio::test]
    async fn a_server_that_cannot_be_reached_is_a_retryable_error_in_words() {
        // Port 9 on loopback: nothing listens (discard is never enabled).
        let client = reqwest::Client::new();
        let error = send(client.get("http://127.0.0.1:9/"), "reading users")
            .await
            .unwrap_err();
        assert!(
            matches!(error, ConnectorError::Retryable { .. }),
            "{error:?}"
        );
        let text = error.message();
        assert!(text.starts_with("reading users: cannot connect"), "{text}");
    }
}
