//! The HTTP layer shared by every Google request: authentication, the
//! client-side rate limit, bounded concurrency, retries with backoff, and the
//! mapping of Google's error answers to [`ConnectorError`]s.
//!
//! Error handling follows "Admin SDK: Limits and quotas"
//! (<https://developers.google.com/admin-sdk/directory/v1/limits>) and the
//! Directory API error reference
//! (<https://developers.google.com/admin-sdk/directory/v1/guides/troubleshoot-error-codes>):
//! 403 `userRateLimitExceeded` / `rateLimitExceeded` / `quotaExceeded`, 429
//! and 5xx are retried with exponential backoff and jitter; a 401 means the
//! token expired or was revoked and triggers one refresh.

use std::time::Duration;

use coexist_connector::retry::{RateLimiter, RetryPolicy};
use coexist_connector::ConnectorError;
use reqwest::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE};
use reqwest::{Method, StatusCode, Url};
use serde::Deserialize;
use tokio::sync::Semaphore;

pub use coexist_http::{retry_after, Reply};

use crate::auth::TokenSource;

/// The header that selects version 3.0 of the Google Data protocol
/// (<https://developers.google.com/gdata/docs/2.0/reference>, "Protocol
/// versioning").
pub const GDATA_VERSION: (&str, &str) = ("GData-Version", "3.0");

/// One request, replayable for retries.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: Method,
    pub url: Url,
    pub headers: Vec<(&'static str, String)>,
    /// An Atom document sent as `application/atom+xml`.
    pub atom: Option<String>,
    /// A JSON document sent as `application/json`; a secret, as it may
    /// hold a password (its `Debug` is redacted).
    pub json: Option<coexist_connector::Secret>,
    /// Statuses (besides 2xx) handed back to the caller instead of turned
    /// into errors: 404 for a delete, 409/412 for an update.
    pub accept: &'static [u16],
    /// Whether the request waits behind others for its rate-limit slot.
    pub priority: Priority,
}

/// How a request takes its turn under the rate limit.
///
/// A paged listing is a chain: each page waits for the previous one, so its
/// pages are on the critical path of a pull. The member listings of 2,000
/// groups are bulk work that can run in any order. Bulk requests take their
/// rate-limit slot one at a time (at most one holds a future slot), so a
/// chain request never queues behind many of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Priority {
    /// The next page of a sequential listing, a write.
    #[default]
    Chain,
    /// One of many independent requests.
    Bulk,
}

impl Request {
    pub fn get(url: Url) -> Self {
        Request {
            method: Method::GET,
            url,
            headers: Vec::new(),
            atom: None,
            json: None,
            accept: &[],
            priority: Priority::Chain,
        }
    }

    pub fn header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    pub fn gdata(self) -> Self {
        self.header(GDATA_VERSION.0, GDATA_VERSION.1)
    }

    pub fn atom(mut self, method: Method, document: String) -> Self {
        self.method = method;
        self.atom = Some(document);
        self
    }

    /// Sends `document` as JSON with `method`.
    pub fn json(mut self, method: Method, document: &serde_json::Value) -> Self {
        self.method = method;
        self.json = Some(coexist_connector::Secret::new(document.to_string()));
        self
    }

    pub fn bulk(mut self) -> Self {
        self.priority = Priority::Bulk;
        self
    }

    pub fn accepting(mut self, statuses: &'static [u16]) -> Self {
        self.accept = statuses;
        self
    }
}

/// The shared client of one connector.
pub struct Http {
    client: reqwest::Client,
    tokens: TokenSource,
    limiter: RateLimiter,
    /// Bulk requests take their rate-limit slot one at a time.
    bulk_gate: tokio::sync::Mutex<()>,
    permits: Semaphore,
    retry: RetryPolicy,
}

impl Http {
    pub fn new(
        client: reqwest::Client,
        tokens: TokenSource,
        limiter: RateLimiter,
        concurrency: usize,
        retry: RetryPolicy,
    ) -> Self {
        Http {
            client,
            tokens,
            limiter,
            bulk_gate: tokio::sync::Mutex::new(()),
            permits: Semaphore::new(concurrency.max(1)),
            retry,
        }
    }

    pub fn tokens(&self) -> &TokenSource {
        &self.tokens
    }

    pub fn retry_policy(&self) -> RetryPolicy {
        self.retry
    }

    /// Sends `request`, retrying transient failures under the retry policy
    /// (one budget per request: a token the attempt needs comes with its own
    /// single budget, shared by the connector, and its failure is final); `what`
    /// names the request in logs and errors ("listing users page 3"). Once
    /// authentication failed for good, fails at once without a network call.
    pub async fn execute(&self, what: &str, request: &Request) -> Result<Reply, ConnectorError> {
        if let Some(error) = self.tokens.failure() {
            return Err(error);
        }
        self.retry.run(what, || self.attempt(what, request)).await
    }

    /// Sends `request` once, with one token refresh when the API answers 401.
    async fn attempt(&self, what: &str, request: &Request) -> Result<Reply, ConnectorError> {
        let token = self.tokens.token().await?;
        let reply = self.send_once(what, request, &token.bearer()).await?;
        let reply = if reply.status == StatusCode::UNAUTHORIZED {
            tracing::debug!("{what}: the access token was refused; requesting a new one");
            self.tokens.invalidate(&token).await;
            let fresh = self.tokens.token().await?;
            let again = self.send_once(what, request, &fresh.bearer()).await?;
            if again.status == StatusCode::UNAUTHORIZED {
                // The credentials themselves are refused: nothing more will
                // get through in this run.
                return Err(self.tokens.give_up(ConnectorError::authentication(format!(
                    "{what}: a freshly obtained access token was refused (HTTP 401): {}",
                    error_message(&again.body)
                ))));
            }
            again
        } else {
            reply
        };
        if reply.status.is_success() || request.accept.contains(&reply.status.as_u16()) {
            Ok(reply)
        } else {
            Err(status_error(
                what,
                reply.status,
                retry_after(&reply.headers),
                &reply.body,
            ))
        }
    }

    async fn send_once(
        &self,
        what: &str,
        request: &Request,
        bearer: &str,
    ) -> Result<Reply, ConnectorError> {
        let _permit =
            self.permits.acquire().await.map_err(|_| {
                ConnectorError::permanent(format!("{what}: the connector is closing"))
            })?;
        match request.priority {
            Priority::Chain => self.limiter.acquire().await,
            Priority::Bulk => {
                let _turn = self.bulk_gate.lock().await;
                self.limiter.acquire().await;
            }
        }
        let mut builder = self
            .client
            .request(request.method.clone(), request.url.clone());
        let mut auth = HeaderValue::from_str(bearer).map_err(|_| {
            ConnectorError::authentication(format!(
                "{what}: the access token is not a valid header value"
            ))
        })?;
        auth.set_sensitive(true);
        builder = builder.header(AUTHORIZATION, auth);
        for (name, value) in &request.headers {
            builder = builder.header(*name, value.as_str());
        }
        if let Some(document) = &request.atom {
            builder = builder
                .header(CONTENT_TYPE, "application/atom+xml; charset=UTF-8")
                .body(document.clone());
        }
        if let Some(document) = &request.json {
            builder = builder
                .header(CONTENT_TYPE, "application/json; charset=UTF-8")
                .body(document.expose().to_string());
        }
        coexist_http::send(builder, what).await
    }
}

/// Google's JSON error body
/// (<https://cloud.google.com/apis/design/errors#http_mapping>).
#[derive(Debug, Deserialize)]
struct ErrorBody {
    error: ErrorDetail,
}

#[derive(Debug, Deserialize)]
struct ErrorDetail {
    #[serde(default)]
    message: String,
    #[serde(default)]
    errors: Vec<ErrorItem>,
}

#[derive(Debug, Deserialize)]
struct ErrorItem {
    #[serde(default)]
    reason: String,
}

/// The reasons of a 403 that mean "slow down"
/// (<https://developers.google.com/admin-sdk/directory/v1/limits>).
pub const RATE_LIMIT_REASONS: [&str; 4] = [
    "userRateLimitExceeded",
    "rateLimitExceeded",
    "quotaExceeded",
    "dailyLimitExceeded",
];

/// The reasons of a 403 that mean "these credentials lack the rights".
const PERMISSION_REASONS: [&str; 4] = [
    "forbidden",
    "insufficientPermissions",
    "accessNotConfigured",
    "authError",
];

/// The message and reasons of an error answer: Google's JSON error body, or
/// a GData error document
/// (`<errors><error><domain/><code/><internalReason/></error></errors>`,
/// <https://developers.google.com/gdata/docs/2.0/reference#ErrorResponses>).
fn parse_error(body: &[u8]) -> Option<ErrorDetail> {
    if let Ok(json) = serde_json::from_slice::<ErrorBody>(body) {
        return Some(json.error);
    }
    let text = std::str::from_utf8(body).ok()?;
    let root = crate::xml::parse(text).ok()?;
    if !root.is(crate::xml::GD, "errors") {
        return None;
    }
    let errors: Vec<&crate::xml::Element> = root.all(crate::xml::GD, "error").collect();
    let message = errors
        .iter()
        .filter_map(|e| {
            e.child_text(crate::xml::GD, "internalReason")
                .or_else(|| e.child_text(crate::xml::GD, "code"))
        })
        .collect::<Vec<_>>()
        .join("; ");
    Some(ErrorDetail {
        message,
        errors: errors
            .iter()
            .map(|e| ErrorItem {
                reason: e.child_text(crate::xml::GD, "code").unwrap_or_default(),
            })
            .collect(),
    })
}

/// The message of an error answer: Google's JSON `error.message`, a GData
/// error's reason, or the start of the body.
pub fn error_message(body: &[u8]) -> String {
    if let Some(detail) = parse_error(body) {
        if !detail.message.is_empty() {
            return detail.message;
        }
    }
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    let mut short: String = text.chars().take(300).collect();
    if short.len() < text.len() {
        short.push('…');
    }
    if short.is_empty() {
        "(empty answer)".to_string()
    } else {
        short
    }
}

/// Classifies an error answer.
pub fn status_error(
    what: &str,
    status: StatusCode,
    wait: Option<Duration>,
    body: &[u8],
) -> ConnectorError {
    let reasons: Vec<String> = parse_error(body)
        .map(|d| d.errors.into_iter().map(|e| e.reason).collect())
        .unwrap_or_default();
    let message = format!("{what}: HTTP {status}: {}", error_message(body));
    let code = status.as_u16();
    let has_reason = |set: &[&str]| reasons.iter().any(|r| set.contains(&r.as_str()));
    match code {
        429 => ConnectorError::throttled(wait, message),
        403 if has_reason(&RATE_LIMIT_REASONS) => ConnectorError::throttled(wait, message),
        401 => ConnectorError::authentication(message),
        403 if has_reason(&PERMISSION_REASONS) => ConnectorError::authentication(message),
        408 => ConnectorError::retryable(message),
        500..=599 => match wait {
            Some(wait) => ConnectorError::throttled(Some(wait), message),
            None => ConnectorError::retryable(message),
        },
        _ => ConnectorError::permanent(message),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn google_error(code: u16, reason: &str) -> Vec<u8> {
        serde_json::json!({"error": {"code": code, "message": format!("{reason} happened"),
            "errors": [{"domain": "usageLimits", "reason": reason, "message": "m"}]}})
        .to_string()
        .into_bytes()
    }

    #[test]
    fn rate_limit_answers_are_throttling() {
        for reason in [
            "userRateLimitExceeded",
            "quotaExceeded",
            "rateLimitExceeded",
        ] {
            let error = status_error(
                "listing users page 1",
                StatusCode::FORBIDDEN,
                None,
                &google_error(403, reason),
            );
            assert!(
                matches!(error, ConnectorError::Throttled { .. }),
                "{reason}: {error:?}"
            );
        }
        let error = status_error(
            "listing users page 1",
            StatusCode::TOO_MANY_REQUESTS,
            Some(Duration::from_secs(2)),
            &google_error(429, "rateLimitExceeded"),
        );
        assert!(matches!(
            error,
            ConnectorError::Throttled {
                retry_after: Some(_),
                ..
            }
        ));
    }

    #[test]
    fn server_errors_are_retryable_and_other_client_errors_permanent() {
        let error = status_error(
            "listing groups page 2",
            StatusCode::SERVICE_UNAVAILABLE,
            None,
            b"",
        );
        assert!(error.is_transient());
        let error = status_error(
            "listing groups page 2",
            StatusCode::BAD_REQUEST,
            None,
            &google_error(400, "invalid"),
        );
        assert!(matches!(error, ConnectorError::Permanent { .. }));
        assert_eq!(
            error.to_string(),
            "listing groups page 2: HTTP 400 Bad Request: invalid happened"
        );
    }

    #[test]
    fn missing_rights_are_an_authentication_failure() {
        let error = status_error(
            "listing users page 1",
            StatusCode::FORBIDDEN,
            None,
            &google_error(403, "forbidden"),
        );
        assert!(matches!(error, ConnectorError::Authentication { .. }));
    }

    #[test]
    fn gdata_error_documents_are_classified_by_their_code() {
        let body = br#"<?xml version="1.0"?><errors xmlns="http://schemas.google.com/g/2005"><error><domain>usageLimits</domain><code>userRateLimitExceeded</code><internalReason>User Rate Limit Exceeded</internalReason></error></errors>"#;
        let error = status_error(
            "reading shared contacts page 1",
            StatusCode::FORBIDDEN,
            None,
            body,
        );
        assert!(
            matches!(error, ConnectorError::Throttled { .. }),
            "{error:?}"
        );
        assert_eq!(error_message(body), "User Rate Limit Exceeded");
    }

    #[test]
    fn plain_text_error_bodies_are_quoted_briefly() {
        let long = "x".repeat(1000);
        let message = error_message(long.as_bytes());
        assert!(message.chars().count() <= 301);
    }
}
