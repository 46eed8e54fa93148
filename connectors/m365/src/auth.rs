//! Client-credentials authentication against the Microsoft identity
//! platform, one access token per resource.
//!
//! Follows "Microsoft identity platform and the OAuth 2.0 client credentials
//! flow" (<https://learn.microsoft.com/entra/identity-platform/v2-oauth2-client-creds-grant-flow>):
//! `POST {authority}/{tenant}/oauth2/v2.0/token` with
//! `grant_type=client_credentials`, `client_id`, `scope={resource}/.default`
//! and either `client_secret`, or a certificate credential
//! (<https://learn.microsoft.com/entra/identity-platform/certificate-credentials>):
//! `client_assertion_type=urn:ietf:params:oauth:client-assertion-type:jwt-bearer`
//! and `client_assertion`, a JWT signed RS256 with the certificate's private
//! key, its header naming the certificate by `x5t` (the base64url SHA-1 of
//! its DER), its claims `aud` (the token endpoint), `iss` = `sub` (the client
//! id), `jti`, `nbf`, `iat` and `exp`.
//!
//! Graph and Exchange Online each need their own token
//! ([`Resource`]); each is cached and replaced five minutes before it expires
//! (or at half its lifetime when that is shorter).
//!
//! Getting a token has one retry budget shared by every request of the
//! connector (concurrent callers wait for the attempt in progress). When the
//! credentials are refused, or the endpoint cannot be reached within that
//! budget, authentication has failed for the connector's life (one run):
//! every later request, for either resource, fails at once with the same
//! [`ConnectorError::Authentication`] without a network call. Neither the
//! secret, the key nor a token is ever logged.

use std::fmt;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use coexist_connector::retry::RetryPolicy;
use coexist_connector::{ConnectorError, Secret};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use rand::Rng;
use serde::{Deserialize, Serialize};
use sha1::{Digest, Sha1};
use thiserror::Error;

pub use coexist_http::AccessToken;
use coexist_http::{FinalFailure, TokenSlot};

/// `client_assertion_type` of a certificate credential.
const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// How long a signed assertion is valid.
const ASSERTION_LIFETIME_SECS: u64 = 600;

/// How long before its expiry a token is replaced.
const REFRESH_MARGIN: Duration = Duration::from_secs(300);

/// The two APIs coexist calls, each with its own token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resource {
    /// Microsoft Graph: users, groups, members, domains, contact folders.
    Graph,
    /// Exchange Online's admin API: recipients, mail contacts, accepted
    /// domains.
    Exchange,
}

impl Resource {
    /// The `scope` of the token request.
    pub fn scope(self) -> &'static str {
        match self {
            Resource::Graph => "https://graph.microsoft.com/.default",
            Resource::Exchange => "https://outlook.office365.com/.default",
        }
    }

    /// The API's name in messages.
    pub fn name(self) -> &'static str {
        match self {
            Resource::Graph => "Microsoft Graph",
            Resource::Exchange => "Exchange Online",
        }
    }
}

/// Why a credential cannot be used.
#[derive(Debug, Error)]
pub enum CredentialError {
    #[error("the certificate is not a PEM certificate: {0}")]
    BadCertificate(String),
    #[error("the private key is not an RSA private key in PEM form: {0}")]
    BadPrivateKey(String),
}

/// The app's credential.
pub enum Credential {
    /// A client secret.
    Secret(Secret),
    /// A certificate: the key that signs assertions and the certificate's
    /// SHA-1 thumbprint, base64url (`x5t`).
    Certificate { key: EncodingKey, x5t: String },
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Credential::Secret(_) => f.write_str("Credential::Secret([redacted])"),
            Credential::Certificate { x5t, .. } => {
                write!(f, "Credential::Certificate {{ x5t: {x5t:?} }}")
            }
        }
    }
}

impl Credential {
    /// A certificate credential from the certificate's and the key's PEM.
    pub fn certificate(certificate_pem: &str, key_pem: &str) -> Result<Self, CredentialError> {
        let der =
            pem_der(certificate_pem, "CERTIFICATE").map_err(CredentialError::BadCertificate)?;
        let key = EncodingKey::from_rsa_pem(key_pem.as_bytes())
            .map_err(|e| CredentialError::BadPrivateKey(e.to_string()))?;
        Ok(Credential::Certificate {
            key,
            x5t: URL_SAFE_NO_PAD.encode(Sha1::digest(&der)),
        })
    }
}

/// The DER of the first PEM block labelled `label`.
fn pem_der(pem: &str, label: &str) -> Result<Vec<u8>, String> {
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let start = pem
        .find(&begin)
        .ok_or_else(|| format!("no {begin} block"))?;
    let rest = &pem[start + begin.len()..];
    let stop = rest.find(&end).ok_or_else(|| format!("no {end} line"))?;
    let body: String = rest[..stop].split_whitespace().collect();
    STANDARD
        .decode(body.as_bytes())
        .map_err(|e| format!("its base64 is damaged: {e}"))
}

/// The claims of a certificate assertion.
#[derive(Serialize)]
struct Claims<'a> {
    aud: &'a str,
    iss: &'a str,
    sub: &'a str,
    jti: String,
    nbf: u64,
    iat: u64,
    exp: u64,
}

/// A successful token response.
#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    #[serde(default)]
    expires_in: Option<u64>,
}

/// The identity platform's error body.
#[derive(Deserialize)]
struct TokenError {
    #[serde(default)]
    error: String,
    #[serde(default)]
    error_description: Option<String>,
}

/// Obtains and caches the app's tokens for Graph and Exchange.
pub struct Auth {
    client_id: String,
    token_url: String,
    credential: Credential,
    client: reqwest::Client,
    retry: RetryPolicy,
    graph: TokenSlot,
    exchange: TokenSlot,
    /// Why authentication failed for good, once it did (for both).
    failed: FinalFailure,
}

impl fmt::Debug for Auth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Auth")
            .field("client_id", &self.client_id)
            .field("token_url", &self.token_url)
            .field("credential", &self.credential)
            .finish_non_exhaustive()
    }
}

impl Auth {
    pub fn new(
        client_id: &str,
        token_url: &str,
        credential: Credential,
        client: reqwest::Client,
        retry: RetryPolicy,
    ) -> Self {
        Auth {
            client_id: client_id.trim().to_string(),
            token_url: token_url.to_string(),
            credential,
            client,
            retry,
            graph: TokenSlot::default(),
            exchange: TokenSlot::default(),
            failed: FinalFailure::default(),
        }
    }

    fn slot(&self, resource: Resource) -> &TokenSlot {
        match resource {
            Resource::Graph => &self.graph,
            Resource::Exchange => &self.exchange,
        }
    }

    /// A valid token for `resource`: the cached one, or a new one within
    /// one retry budget. Every error is an
    /// [`ConnectorError::Authentication`] and final for both resources.
    pub async fn token(&self, resource: Resource) -> Result<AccessToken, ConnectorError> {
        let what = format!(
            "requesting an access token for {} from {}",
            resource.name(),
            self.token_url
        );
        self.slot(resource)
            .get(&self.failed, &self.retry, &what, || {
                self.request(resource, &what)
            })
            .await
    }

    /// Why authentication failed for good, when it did.
    pub fn failure(&self) -> Option<ConnectorError> {
        self.failed.get()
    }

    /// Records that authentication failed for good; returns the error
    /// every later call returns (the first one recorded).
    pub fn give_up(&self, error: ConnectorError) -> ConnectorError {
        self.failed.record(error)
    }

    /// Forgets `rejected` (a token an API answered 401 to), so the next
    /// [`Self::token`] requests a new one; a token another task already
    /// replaced is kept.
    pub async fn invalidate(&self, resource: Resource, rejected: &AccessToken) {
        self.slot(resource).invalidate(rejected).await;
    }

    /// A signed client assertion for the token endpoint.
    fn assertion(&self, key: &EncodingKey, x5t: &str) -> Result<String, ConnectorError> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_err(|_| ConnectorError::permanent("the system clock is before 1970"))?
            .as_secs();
        let jti: [u8; 16] = rand::thread_rng().gen();
        let claims = Claims {
            aud: &self.token_url,
            iss: &self.client_id,
            sub: &self.client_id,
            jti: hex::encode(jti),
            nbf: now,
            iat: now,
            exp: now + ASSERTION_LIFETIME_SECS,
        };
        let mut header = Header::new(Algorithm::RS256);
        header.x5t = Some(x5t.to_string());
        jsonwebtoken::encode(&header, &claims, key).map_err(|e| {
            ConnectorError::authentication(format!(
                "signing the token request with the certificate's private key failed: {e}"
            ))
        })
    }

    async fn request(&self, resource: Resource, what: &str) -> Result<AccessToken, ConnectorError> {
        let mut form: Vec<(&str, String)> = vec![
            ("grant_type", "client_credentials".into()),
            ("client_id", self.client_id.clone()),
            ("scope", resource.scope().into()),
        ];
        match &self.credential {
            Credential::Secret(secret) => {
                form.push(("client_secret", secret.expose().to_string()));
            }
            Credential::Certificate { key, x5t } => {
                form.push(("client_assertion_type", JWT_BEARER.into()));
                form.push(("client_assertion", self.assertion(key, x5t)?));
            }
        }
        let started = Instant::now();
        let reply = coexist_http::send(self.client.post(&self.token_url).form(&form), what).await?;
        let (status, wait, body) = (reply.status, reply.retry_after(), reply.body);
        if status.is_success() {
            let token: TokenResponse = serde_json::from_slice(&body).map_err(|e| {
                ConnectorError::permanent(format!(
                    "{what}: HTTP {status}: the answer is not a token response: {e}"
                ))
            })?;
            let lifetime = Duration::from_secs(token.expires_in.unwrap_or(3599));
            tracing::debug!(
                resource = resource.name(),
                lifetime_s = lifetime.as_secs(),
                "obtained an access token"
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
                Some(d) if !d.is_empty() => format!("{}: {}", e.error, first_line(d)),
                _ => e.error.clone(),
            })
            .unwrap_or_else(|| crate::http::error_message(&body));
        let message = format!("{what}: HTTP {status}: {detail}");
        Err(match status.as_u16() {
            429 => ConnectorError::throttled(wait, message),
            408 | 500..=599 => match wait {
                Some(wait) => ConnectorError::throttled(Some(wait), message),
                None => ConnectorError::retryable(message),
            },
            400 | 401 | 403 => ConnectorError::authentication(format!(
                "{message} (check tenant_id, client_id and the app's {} in the app registration)",
                match self.credential {
                    Credential::Secret(_) => "client secret",
                    Credential::Certificate { .. } => "certificate",
                }
            )),
            _ => ConnectorError::permanent(message),
        })
    }
}

/// The identity platform's descriptions run on with trace and correlation
/// ids; the first sentence (up to " Trace ID") is what an admin needs.
fn first_line(description: &str) -> &str {
    description
        .split(" Trace ID:")
        .next()
        .unwrap_or(description)
        .trim()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_certificate_that_is_not_pem_is_refused_naming_no_content() {
        let error = Credential::certificate("hello", "world")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(error.contains("not a PEM certificate"), "{error}");
        assert!(!error.contains("hello"), "{error}");
    }

    #[test]
    fn the_identity_platforms_trace_ids_are_left_out_of_messages() {
        assert_eq!(
            first_line(
                "AADSTS7000215: Invalid client secret provided. Trace ID: 1 Correlation ID: 2"
            ),
            "AADSTS7000215: Invalid client secret provided."
        );
    }

    #[test]
    fn each_resource_asks_for_its_own_default_scope() {
        assert_eq!(
            Resource::Graph.scope(),
            "https://graph.microsoft.com/.default"
        );
        assert_eq!(
            Resource::Exchange.scope(),
            "https://outlook.office365.com/.default"
        );
    }
}
