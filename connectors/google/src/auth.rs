//! Service-account authentication with domain-wide delegation.
//!
//! Follows "Using OAuth 2.0 for Server to Server Applications"
//! (<https://developers.google.com/identity/protocols/oauth2/service-account>,
//! section "Preparing to make an authorized API call" / "HTTP/REST"): a JWT
//! signed with RS256 whose claims are `iss` (the service account's
//! `client_email`), `scope` (space-separated), `aud` (the key's `token_uri`),
//! `iat`, `exp` (at most an hour later) and `sub` (the admin impersonated), is
//! exchanged at `token_uri` with
//! `grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer`.
//!
//! The token is cached and refreshed five minutes before it expires (or at
//! half its lifetime when that is shorter). Neither the key nor a token is
//! ever logged: both are held in types whose `Debug` prints `[redacted]`.
//!
//! Getting a token has one retry budget, shared by every request of the
//! connector (concurrent callers wait for the one attempt in progress); the
//! requests that need the token never retry its failure. When the
//! credentials are refused, or the token endpoint cannot be reached within
//! that budget, authentication has failed for the connector's life (one
//! run): every later request fails at once with the same
//! [`ConnectorError::Authentication`], without a network call.

use std::fmt;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use coexist_connector::retry::RetryPolicy;
use coexist_connector::{ConnectorError, Secret};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::{Deserialize, Serialize};
use thiserror::Error;

pub use coexist_http::AccessToken;
use coexist_http::{FinalFailure, TokenSlot};

/// The OAuth scopes coexist asks for: read users, groups and members, and
/// domains and domain aliases (Admin SDK Directory API), and read and write
/// the domain's shared contacts.
pub const SCOPES: [&str; 4] = [
    "https://www.googleapis.com/auth/admin.directory.user.readonly",
    "https://www.googleapis.com/auth/admin.directory.group.readonly",
    "https://www.googleapis.com/auth/admin.directory.domain.readonly",
    "https://www.google.com/m8/feeds",
];

/// The scope `coexist provision` asks for, in a token of its own: create
/// users and their aliases (Admin SDK Directory API).
pub const PROVISION_SCOPES: [&str; 1] = ["https://www.googleapis.com/auth/admin.directory.user"];

/// The scope `coexist move` asks for, in a token acting as the user whose
/// Gmail forwarding it sets (Gmail API users.settings).
pub const GMAIL_SCOPES: [&str; 1] = ["https://www.googleapis.com/auth/gmail.settings.sharing"];

/// The grant type of the JWT bearer flow (RFC 7523).
const GRANT_TYPE: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";

/// How long a signed assertion is valid (Google's maximum: one hour).
const ASSERTION_LIFETIME_SECS: u64 = 3600;

/// How long before its expiry a token is replaced.
const REFRESH_MARGIN: Duration = Duration::from_secs(300);

/// Why a service-account key cannot be used.
#[derive(Debug, Error)]
pub enum KeyError {
    #[error("the service account key cannot be read: {0}")]
    Unreadable(String),
    #[error("the service account key is not a Google service-account JSON key: {0}")]
    NotJson(String),
    #[error("the service account key's {0} is empty")]
    Missing(&'static str),
    #[error("the service account key's private_key is not an RSA private key in PEM form: {0}")]
    BadPrivateKey(String),
}

impl From<KeyError> for ConnectorError {
    fn from(error: KeyError) -> Self {
        ConnectorError::authentication(error.to_string())
    }
}

/// The fields of a service-account JSON key coexist uses.
#[derive(Deserialize)]
struct KeyFile {
    #[serde(default)]
    client_email: String,
    #[serde(default)]
    private_key: String,
    #[serde(default)]
    private_key_id: Option<String>,
    #[serde(default)]
    token_uri: String,
}

/// A parsed service-account key.
#[derive(Clone)]
pub struct ServiceAccountKey {
    client_email: String,
    private_key_id: Option<String>,
    token_uri: String,
    encoding_key: EncodingKey,
}

impl fmt::Debug for ServiceAccountKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServiceAccountKey")
            .field("client_email", &self.client_email)
            .field("token_uri", &self.token_uri)
            .field("private_key", &"[redacted]")
            .finish()
    }
}

impl ServiceAccountKey {
    /// Parses the JSON key file's content.
    pub fn parse(secret: &Secret) -> Result<Self, KeyError> {
        let file: KeyFile = serde_json::from_str(secret.expose())
            // serde_json's message names a position, never the content.
            .map_err(|e| KeyError::NotJson(e.to_string()))?;
        if file.client_email.trim().is_empty() {
            return Err(KeyError::Missing("client_email"));
        }
        if file.token_uri.trim().is_empty() {
            return Err(KeyError::Missing("token_uri"));
        }
        if file.private_key.trim().is_empty() {
            return Err(KeyError::Missing("private_key"));
        }
        let encoding_key = EncodingKey::from_rsa_pem(file.private_key.as_bytes())
            .map_err(|e| KeyError::BadPrivateKey(e.to_string()))?;
        Ok(ServiceAccountKey {
            client_email: file.client_email,
            private_key_id: file.private_key_id.filter(|id| !id.is_empty()),
            token_uri: file.token_uri,
            encoding_key,
        })
    }

    /// The service account's address (the JWT `iss`).
    pub fn client_email(&self) -> &str {
        &self.client_email
    }

    /// Where tokens are requested.
    pub fn token_uri(&self) -> &str {
        &self.token_uri
    }
}

/// The claims of the JWT assertion.
#[derive(Serialize)]
struct Claims<'a> {
    iss: &'a str,
    scope: String,
    aud: &'a str,
    iat: u64,
    exp: u64,
    sub: &'a str,
}

/// A successful token response.
#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    #[serde(default)]
    expires_in: Option<u64>,
}

/// An OAuth error response (RFC 6749 section 5.2).
#[derive(Deserialize)]
struct TokenError {
    #[serde(default)]
    error: String,
    #[serde(default)]
    error_description: Option<String>,
}

/// Obtains and caches access tokens for one service account and admin.
pub struct TokenSource {
    key: ServiceAccountKey,
    subject: String,
    scopes: String,
    client: reqwest::Client,
    retry: RetryPolicy,
    cached: TokenSlot,
    /// Why authentication failed for good, once it did.
    failed: FinalFailure,
}

impl fmt::Debug for TokenSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenSource")
            .field("key", &self.key)
            .field("subject", &self.subject)
            .finish_non_exhaustive()
    }
}

impl TokenSource {
    pub fn new(
        key: ServiceAccountKey,
        subject: &str,
        client: reqwest::Client,
        retry: RetryPolicy,
    ) -> Self {
        TokenSource {
            key,
            subject: subject.to_string(),
            scopes: SCOPES.join(" "),
            client,
            retry,
            cached: TokenSlot::default(),
            failed: FinalFailure::default(),
        }
    }

    /// A token source asking for `scopes` instead of [`SCOPES`].
    pub fn with_scopes(mut self, scopes: &[&str]) -> Self {
        self.scopes = scopes.join(" ");
        self
    }

    /// A valid token: the cached one, or a new one when it is close to its
    /// expiry, obtained within one retry budget; concurrent callers wait for
    /// it. Every error is an [`ConnectorError::Authentication`] and final:
    /// once a token could not be obtained, every call returns the same error
    /// at once.
    pub async fn token(&self) -> Result<AccessToken, ConnectorError> {
        let what = format!("requesting an access token from {}", self.key.token_uri);
        self.cached
            .get(&self.failed, &self.retry, &what, || self.request_token())
            .await
    }

    /// Why authentication failed for good, when it did.
    pub fn failure(&self) -> Option<ConnectorError> {
        self.failed.get()
    }

    /// Records that authentication failed for good (the credentials were
    /// refused); returns the error every later call will return (the first
    /// one recorded).
    pub fn give_up(&self, error: ConnectorError) -> ConnectorError {
        self.failed.record(error)
    }

    /// Forgets `rejected` (a token the API answered 401 to), so the next
    /// [`Self::token`] requests a new one. A token already replaced by
    /// another task is left alone.
    pub async fn invalidate(&self, rejected: &AccessToken) {
        self.cached.invalidate(rejected).await;
    }

    fn assertion(&self) -> Result<String, ConnectorError> {
        let iat = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_err(|_| ConnectorError::permanent("the system clock is before 1970"))?
            .as_secs();
        let claims = Claims {
            iss: &self.key.client_email,
            scope: self.scopes.clone(),
            aud: &self.key.token_uri,
            iat,
            exp: iat + ASSERTION_LIFETIME_SECS,
            sub: &self.subject,
        };
        let mut header = Header::new(Algorithm::RS256);
        header.kid = self.key.private_key_id.clone();
        jsonwebtoken::encode(&header, &claims, &self.key.encoding_key).map_err(|e| {
            ConnectorError::authentication(format!(
                "signing the token request with the service account key failed: {e}"
            ))
        })
    }

    async fn request_token(&self) -> Result<AccessToken, ConnectorError> {
        let what = format!("requesting an access token from {}", self.key.token_uri);
        let what = what.as_str();
        let assertion = self.assertion()?;
        let started = Instant::now();
        let request = self.client.post(&self.key.token_uri).form(&[
            ("grant_type", GRANT_TYPE),
            ("assertion", assertion.as_str()),
        ]);
        let reply = coexist_http::send(request, what).await?;
        let (status, wait, body) = (reply.status, reply.retry_after(), reply.body);
        if status.is_success() {
            let token: TokenResponse = serde_json::from_slice(&body).map_err(|e| {
                ConnectorError::permanent(format!(
                    "{what}: HTTP {status}: the answer is not a token response: {e}"
                ))
                .caused_by(e)
            })?;
            let lifetime = Duration::from_secs(token.expires_in.unwrap_or(3600));
            tracing::debug!(
                lifetime_s = lifetime.as_secs(),
                "obtained an access token for {}",
                self.subject
            );
            return Ok(AccessToken::new(
                token.access_token,
                started,
                lifetime,
                REFRESH_MARGIN,
            ));
        }
        let refusal = serde_json::from_slice::<TokenError>(&body).ok();
        let detail = refusal
            .as_ref()
            .map(|e| match &e.error_description {
                Some(description) if !description.is_empty() => {
                    format!("{}: {description}", e.error)
                }
                _ => e.error.clone(),
            })
            .unwrap_or_else(|| crate::http::error_message(&body));
        let rate_limited = refusal
            .as_ref()
            .is_some_and(|e| crate::http::RATE_LIMIT_REASONS.contains(&e.error.as_str()));
        if status.as_u16() == 429 || (status.as_u16() == 403 && rate_limited) {
            return Err(ConnectorError::throttled(
                wait,
                format!("{what}: HTTP {status}: {detail}"),
            ));
        }
        if status.as_u16() == 400 || status.as_u16() == 401 || status.as_u16() == 403 {
            return Err(ConnectorError::authentication(format!(
                "{what} for {} as {}: HTTP {status}: the token endpoint refused: {detail} \
                 (check the service account key, its domain-wide delegation and the scopes {})",
                self.key.client_email, self.subject, self.scopes
            )));
        }
        let message = format!("{what}: HTTP {status}: {detail}");
        Err(match status.as_u16() {
            408 | 500..=599 => match wait {
                Some(wait) => ConnectorError::throttled(Some(wait), message),
                None => ConnectorError::retryable(message),
            },
            _ => ConnectorError::permanent(message),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_that_is_not_json_is_an_authentication_error_naming_no_content() {
        let secret = Secret::new("-----BEGIN PRIVATE KEY----- hunter2");
        let error = ServiceAccountKey::parse(&secret)
            .map(|_| ())
            .map_err(ConnectorError::from);
        let Err(ConnectorError::Authentication { message, .. }) = error else {
            panic!("expected an authentication error, got {error:?}");
        };
        assert!(!message.contains("hunter2"), "{message}");
    }

    #[test]
    fn a_key_without_token_uri_is_refused() {
        let secret =
            Secret::new(r#"{"client_email":"sa@p.iam.gserviceaccount.com","private_key":"x"}"#);
        let error = ServiceAccountKey::parse(&secret)
            .err()
            .map(|e| e.to_string());
        assert_eq!(
            error.as_deref(),
            Some("the service account key's token_uri is empty")
        );
    }

    #[test]
    fn a_private_key_that_is_not_pem_is_refused() {
        let secret = Secret::new(
            r#"{"client_email":"sa@p.iam.gserviceaccount.com","private_key":"not a key",
                "token_uri":"https://oauth2.googleapis.com/token"}"#,
        );
        assert!(matches!(
            ServiceAccountKey::parse(&secret),
            Err(KeyError::BadPrivateKey(_))
        ));
    }
}
