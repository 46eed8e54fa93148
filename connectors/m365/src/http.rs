//! The HTTP client every request of the connector goes through: the token
//! of the request's [`Resource`], one refresh when the API answers 401,
//! retries of throttling (429 and 503 with `Retry-After`, honoured) and of
//! server errors with backoff and jitter (the shared
//! [`RetryPolicy`]), bounded concurrency and an optional client-side rate
//! limit; and the classification of error answers (Graph's
//! `{"error":{"code","message"}}` and Exchange's
//! `{"error":{"code","message","details":[{"message":"id|exception|text"}]}}`).

use std::time::Duration;

use coexist_connector::retry::{RateLimiter, RetryPolicy};
use coexist_connector::ConnectorError;
use reqwest::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE};
use reqwest::{Method, StatusCode, Url};
use serde::Deserialize;
use tokio::sync::Semaphore;

pub use coexist_http::{retry_after, Reply};

use crate::auth::{Auth, Resource};

/// One request, kept so it can be sent again on a retry.
#[derive(Debug, Clone)]
pub struct Request {
    pub resource: Resource,
    pub method: Method,
    pub url: Url,
    /// A JSON body.
    pub body: Option<Vec<u8>>,
    /// Statuses (besides 2xx) handed back instead of turned into errors:
    /// 404 for a delete, 410 for an expired delta link.
    pub accept: &'static [u16],
}

impl Request {
    pub fn get(resource: Resource, url: Url) -> Self {
        Request {
            resource,
            method: Method::GET,
            url,
            body: None,
            accept: &[],
        }
    }

    /// A request with a JSON body.
    pub fn json(
        resource: Resource,
        method: Method,
        url: Url,
        body: &impl serde::Serialize,
    ) -> Result<Self, ConnectorError> {
        let body = serde_json::to_vec(body)
            .map_err(|e| ConnectorError::permanent(format!("encoding a request to {url}: {e}")))?;
        Ok(Request {
            resource,
            method,
            url,
            body: Some(body),
            accept: &[],
        })
    }

    pub fn accepting(mut self, statuses: &'static [u16]) -> Self {
        self.accept = statuses;
        self
    }
}

/// The shared client of one connector.
pub struct Http {
    client: reqwest::Client,
    auth: Auth,
    limiter: RateLimiter,
    permits: Semaphore,
    concurrency: usize,
    retry: RetryPolicy,
}

impl Http {
    pub fn new(
        client: reqwest::Client,
        auth: Auth,
        limiter: RateLimiter,
        concurrency: usize,
        retry: RetryPolicy,
    ) -> Self {
        Http {
            client,
            auth,
            limiter,
            permits: Semaphore::new(concurrency.max(1)),
            concurrency: concurrency.max(1),
            retry,
        }
    }

    pub fn auth(&self) -> &Auth {
        &self.auth
    }

    /// How many requests may be in flight at once.
    pub fn concurrency(&self) -> usize {
        self.concurrency
    }

    pub fn retry_policy(&self) -> RetryPolicy {
        self.retry
    }

    /// Sends `request`, retrying transient failures under the retry policy
    /// (a token the attempt needs has its own single budget, shared by the
    /// connector, and its failure is final); `what` names the request in
    /// logs and errors. Once authentication failed for good, fails at once
    /// without a network call.
    pub async fn execute(&self, what: &str, request: &Request) -> Result<Reply, ConnectorError> {
        if let Some(error) = self.auth.failure() {
            return Err(error);
        }
        self.retry.run(what, || self.attempt(what, request)).await
    }

    /// Sends `request` once, with one token refresh when the API answers
    /// 401; a fresh token refused again stops the connector for the run.
    pub async fn attempt(&self, what: &str, request: &Request) -> Result<Reply, ConnectorError> {
        let resource = request.resource;
        let token = self.auth.token(resource).await?;
        let mut reply = self.send_once(what, request, &token.bearer()).await?;
        if reply.status == StatusCode::UNAUTHORIZED {
            tracing::debug!("{what}: the access token was refused; requesting a new one");
            self.auth.invalidate(resource, &token).await;
            let fresh = self.auth.token(resource).await?;
            reply = self.send_once(what, request, &fresh.bearer()).await?;
            if reply.status == StatusCode::UNAUTHORIZED {
                return Err(self.auth.give_up(ConnectorError::authentication(format!(
                    "{what}: {} refused a freshly obtained access token (HTTP 401): {}",
                    resource.name(),
                    error_message(&reply.body)
                ))));
            }
        }
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
        self.limiter.acquire().await;
        let mut auth = HeaderValue::from_str(bearer).map_err(|_| {
            ConnectorError::authentication(format!(
                "{what}: the access token is not a valid header value"
            ))
        })?;
        auth.set_sensitive(true);
        let mut builder = self
            .client
            .request(request.method.clone(), request.url.clone())
            .header(AUTHORIZATION, auth);
        if let Some(body) = &request.body {
            builder = builder
                .header(CONTENT_TYPE, "application/json")
                .body(body.clone());
        }
        coexist_http::send(builder, what).await
    }
}

/// Graph's and Exchange's error body.
#[derive(Debug, Deserialize)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Deserialize)]
pub struct ErrorDetail {
    #[serde(default)]
    pub code: String,
    #[serde(default)]
    pub message: String,
    /// Exchange: `[{"message": "ErrorId|Exception|text"}]`.
    #[serde(default)]
    pub details: Vec<ErrorItem>,
}

#[derive(Debug, Deserialize)]
pub struct ErrorItem {
    #[serde(default)]
    pub message: String,
}

impl ErrorDetail {
    /// Exchange's exception type (the middle of `id|exception|text`), when
    /// the body names one.
    pub fn exception(&self) -> Option<&str> {
        self.details
            .first()
            .and_then(|d| d.message.split('|').nth(1))
            .filter(|e| !e.is_empty())
    }

    /// The text an admin reads: Exchange's detail (after the exception
    /// type), else the message.
    pub fn text(&self) -> String {
        if let Some(detail) = self.details.first() {
            let parts: Vec<&str> = detail.message.splitn(3, '|').collect();
            if let [_, exception, text] = parts.as_slice() {
                let short = exception.rsplit('.').next().unwrap_or(exception);
                return format!("{short}: {text}");
            }
            if !detail.message.is_empty() {
                return detail.message.clone();
            }
        }
        if self.code.is_empty() {
            self.message.clone()
        } else {
            format!("{}: {}", self.code, self.message)
        }
    }
}

/// The error body, when it is one of Graph's or Exchange's.
pub fn parse_error(body: &[u8]) -> Option<ErrorDetail> {
    serde_json::from_slice::<ErrorBody>(body)
        .ok()
        .map(|b| b.error)
}

/// The message of an error answer, or the start of the body.
pub fn error_message(body: &[u8]) -> String {
    if let Some(detail) = parse_error(body) {
        let text = detail.text();
        if !text.is_empty() {
            return text;
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

/// The Graph error codes of a 403 that mean the app lacks a permission it
/// needs for the whole directory (not one object).
const PERMISSION_CODES: [&str; 2] = ["Authorization_RequestDenied", "AccessDenied"];

/// Classifies an error answer.
pub fn status_error(
    what: &str,
    status: StatusCode,
    wait: Option<Duration>,
    body: &[u8],
) -> ConnectorError {
    let detail = parse_error(body);
    let code = detail.as_ref().map(|d| d.code.as_str()).unwrap_or("");
    let message = format!("{what}: HTTP {status}: {}", error_message(body));
    match status.as_u16() {
        429 => ConnectorError::throttled(wait, message),
        401 => ConnectorError::authentication(message),
        403 if PERMISSION_CODES.contains(&code) => ConnectorError::authentication(format!(
            "{message} (the app registration lacks an application permission coexist needs; \
             see `coexist doctor`)"
        )),
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

    #[test]
    fn exchange_errors_read_as_their_exception_and_text() {
        let body = br#"{"error":{"code":"NotFound","message":"Error executing cmdlet","details":[{"code":"Client","target":"","message":"Ex6F9304|Microsoft.Exchange.Configuration.Tasks.ManagementObjectNotFoundException|The operation couldn't be performed because object 'x' couldn't be found."}]}}"#;
        assert_eq!(
            error_message(body),
            "ManagementObjectNotFoundException: The operation couldn't be performed because object 'x' couldn't be found."
        );
        let detail = parse_error(body);
        assert_eq!(
            detail.as_ref().and_then(|d| d.exception()),
            Some("Microsoft.Exchange.Configuration.Tasks.ManagementObjectNotFoundException")
        );
    }

    #[test]
    fn throttling_and_server_errors_are_transient_and_bad_requests_permanent() {
        let graph = br#"{"error":{"code":"TooManyRequests","message":"slow down"}}"#;
        let error = status_error(
            "listing users",
            StatusCode::TOO_MANY_REQUESTS,
            Some(Duration::from_secs(3)),
            graph,
        );
        assert!(matches!(
            error,
            ConnectorError::Throttled {
                retry_after: Some(_),
                ..
            }
        ));
        assert!(status_error("x", StatusCode::BAD_GATEWAY, None, b"").is_transient());
        let bad =
            br#"{"error":{"code":"BadRequest","message":"Could not find a property named 'x'"}}"#;
        let error = status_error("listing users", StatusCode::BAD_REQUEST, None, bad);
        assert!(matches!(error, ConnectorError::Permanent { .. }));
        assert_eq!(
            error.to_string(),
            "listing users: HTTP 400 Bad Request: BadRequest: Could not find a property named 'x'"
        );
    }

    #[test]
    fn a_directory_permission_refusal_is_an_authentication_failure() {
        let body = br#"{"error":{"code":"Authorization_RequestDenied","message":"Insufficient privileges to complete the operation."}}"#;
        let error = status_error("listing users", StatusCode::FORBIDDEN, None, body);
        assert!(error.is_authentication());
    }
}
