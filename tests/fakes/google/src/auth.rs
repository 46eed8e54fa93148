//! The OAuth 2.0 token endpoint for service accounts and the bearer-token
//! check of the APIs.
//!
//! Follows <https://developers.google.com/identity/protocols/oauth2/service-account>
//! ("Preparing to make an authorized API call" / "Addendum: Service account
//! authorization without OAuth" for the JWT claims: `iss`, `scope`, `aud`,
//! `exp`, `iat`, `sub`; the assertion is RS256-signed and `exp` is at most one
//! hour after `iat`) and its error responses (`invalid_grant`,
//! `unauthorized_client`, `invalid_scope`).

use std::sync::Arc;
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{decode, decode_header, Algorithm, DecodingKey, Validation};
use serde_json::{json, Value};

use crate::errors;
use crate::state::Shared;
use crate::{Fault, AUTHORIZED_SCOPES};

/// The fixed test key pair (no value outside these tests; see testdata/README.md).
pub(crate) const PRIVATE_KEY_PEM: &str = include_str!("../testdata/service_account_key.pem");
const PUBLIC_KEY_PEM: &str = include_str!("../testdata/service_account_key.pub.pem");
/// Another key, for "signed by another key" tests.
pub(crate) const OTHER_PRIVATE_KEY_PEM: &str = include_str!("../testdata/other_key.pem");
pub(crate) const CLIENT_EMAIL: &str = "coexist-test@coexist-fake.iam.gserviceaccount.com";
const PRIVATE_KEY_ID: &str = "5f0c2e8a4b7d19e3c6a2f80d7b41e95c3a6d2f17";
const CLIENT_ID: &str = "104857600000000000001";
const PROJECT_ID: &str = "coexist-fake";
const JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
/// Longest allowed lifetime of an assertion, `exp - iat`.
const MAX_ASSERTION_SECS: i64 = 3600;
/// Clock skew tolerated for `iat` in the future.
const SKEW_SECS: i64 = 300;

pub(crate) struct Keys {
    pub token_uri: String,
    base_url: String,
    decoding: DecodingKey,
}

impl Keys {
    pub fn load(base_url: &str) -> Result<Keys, String> {
        let decoding = DecodingKey::from_rsa_pem(PUBLIC_KEY_PEM.as_bytes())
            .map_err(|e| format!("testdata/service_account_key.pub.pem: {e}"))?;
        Ok(Keys {
            token_uri: format!("{base_url}/token"),
            base_url: base_url.to_owned(),
            decoding,
        })
    }

    /// A service-account key file with the given private key and token URI.
    pub fn key_file_json(&self, private_key_pem: &str, token_uri: &str) -> String {
        let base = &self.base_url;
        let doc = json!({
            "type": "service_account",
            "project_id": PROJECT_ID,
            "private_key_id": PRIVATE_KEY_ID,
            "private_key": private_key_pem,
            "client_email": CLIENT_EMAIL,
            "client_id": CLIENT_ID,
            "auth_uri": format!("{base}/o/oauth2/auth"),
            "token_uri": token_uri,
            "auth_provider_x509_cert_url": format!("{base}/oauth2/v1/certs"),
            "client_x509_cert_url": format!("{base}/robot/v1/metadata/x509/{CLIENT_EMAIL}"),
            "universe_domain": "googleapis.com",
        });
        serde_json::to_string_pretty(&doc).unwrap_or_default()
    }
}

fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    errors::rejected(
        (
            status,
            [
                (header::CONTENT_TYPE, "application/json; charset=utf-8"),
                (
                    header::CACHE_CONTROL,
                    "no-cache, no-store, max-age=0, must-revalidate",
                ),
            ],
            json!({"error": error, "error_description": description}).to_string(),
        )
            .into_response(),
    )
}

fn invalid_grant(description: &str) -> Response {
    oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", description)
}

const BAD_TIMES: &str = "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe. Check your iat and exp values in the JWT claim.";

/// POST /token: exchanges a signed JWT for an access token.
pub(crate) async fn token(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    shared.count(|c| c.token += 1);
    let fault = shared.state.lock().token_faults.pop_front();
    if let Some(fault) = fault {
        return token_fault(fault, shared.state.lock().retry_after_secs);
    }
    match exchange(&shared, &headers, &body) {
        Ok(r) | Err(r) => r,
    }
}

fn token_fault(fault: Fault, retry_after: u64) -> Response {
    let (code, _, reason, message) = errors::fault_parts(fault);
    let error = match fault {
        Fault::ServerError500 | Fault::Unavailable503 => "internal_failure",
        _ => reason,
    };
    let mut response = (
        code,
        [(header::CONTENT_TYPE, "application/json; charset=utf-8")],
        json!({"error": error, "error_description": message}).to_string(),
    )
        .into_response();
    if fault == Fault::TooMany429 {
        response.headers_mut().insert(
            header::RETRY_AFTER,
            axum::http::HeaderValue::from(retry_after),
        );
    }
    response.extensions_mut().insert(errors::InjectedFault);
    response
}

fn exchange(shared: &Shared, headers: &HeaderMap, body: &[u8]) -> Result<Response, Response> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !content_type.starts_with("application/x-www-form-urlencoded") {
        return Err(oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "The request must be application/x-www-form-urlencoded.",
        ));
    }
    let form: Vec<(String, String)> = form_urlencoded::parse(body).into_owned().collect();
    let field = |name: &str| {
        form.iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    match field("grant_type") {
        Some(JWT_BEARER) => {}
        Some(other) => {
            return Err(oauth_error(
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                &format!("Invalid grant_type: {other}"),
            ))
        }
        None => {
            return Err(oauth_error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "Missing required parameter: grant_type",
            ))
        }
    }
    let Some(assertion) = field("assertion") else {
        return Err(oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "Missing required parameter: assertion",
        ));
    };

    let header =
        decode_header(assertion).map_err(|_| invalid_grant("Invalid JWT: malformed assertion."))?;
    if header.alg != Algorithm::RS256 {
        return Err(invalid_grant("Invalid JWT Signature."));
    }
    if let Some(kid) = &header.kid {
        if kid != PRIVATE_KEY_ID {
            return Err(invalid_grant("Invalid JWT Signature."));
        }
    }
    let mut validation = Validation::new(Algorithm::RS256);
    validation.validate_exp = false;
    validation.validate_aud = false;
    validation.leeway = 0;
    validation.required_spec_claims.clear();
    let claims = match decode::<Value>(assertion, &shared.keys.decoding, &validation) {
        Ok(data) => data.claims,
        Err(e) => {
            return Err(match e.kind() {
                ErrorKind::InvalidSignature | ErrorKind::InvalidAlgorithm => {
                    invalid_grant("Invalid JWT Signature.")
                }
                _ => invalid_grant("Invalid JWT: malformed assertion."),
            })
        }
    };
    let claim = |name: &str| claims.get(name).and_then(Value::as_str);

    if claim("iss") != Some(CLIENT_EMAIL) {
        return Err(invalid_grant("Invalid grant: account not found"));
    }
    if claim("aud") != Some(shared.keys.token_uri.as_str()) {
        return Err(invalid_grant(&format!(
            "Invalid JWT: Failed audience check. The right audience is {}",
            shared.keys.token_uri
        )));
    }
    let (Some(iat), Some(exp)) = (
        claims.get("iat").and_then(Value::as_i64),
        claims.get("exp").and_then(Value::as_i64),
    ) else {
        return Err(invalid_grant(BAD_TIMES));
    };
    let now = i64::try_from(crate::state::now_ms() / 1000).unwrap_or(i64::MAX);
    if exp <= iat || exp - iat > MAX_ASSERTION_SECS || exp <= now || iat > now + SKEW_SECS {
        return Err(invalid_grant(BAD_TIMES));
    }
    let scopes: Vec<String> = claim("scope")
        .unwrap_or("")
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    if scopes.is_empty() {
        return Err(oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_scope",
            "Empty or missing scope not allowed.",
        ));
    }
    let revoked = shared.state.lock().delegation_revoked;
    if revoked
        || scopes
            .iter()
            .any(|s| !AUTHORIZED_SCOPES.contains(&s.as_str()))
    {
        return Err(oauth_error(
            StatusCode::UNAUTHORIZED,
            "unauthorized_client",
            "Client is unauthorized to retrieve access tokens using this method, or client not authorized for any of the scopes requested.",
        ));
    }
    // The admin for the Directory and contacts; a Gmail settings token acts
    // as the user whose settings it changes.
    let gmail_only = scopes.iter().all(|s| s == crate::GMAIL_SETTINGS_SCOPE);
    let subject = match claim("sub") {
        None => return Err(invalid_grant(
            "Invalid JWT: 'sub' is missing; domain-wide delegation needs the admin to impersonate.",
        )),
        Some(sub) if sub.to_ascii_lowercase() == shared.admin => sub.to_ascii_lowercase(),
        Some(sub) if gmail_only && shared.state.lock().find_user_id(sub).is_some() => {
            sub.to_ascii_lowercase()
        }
        Some(_) => return Err(invalid_grant("Invalid email or User ID")),
    };

    let (token, expires_in) = shared.state.lock().issue_token(scopes, subject);
    Ok((
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "application/json; charset=utf-8"),
            (
                header::CACHE_CONTROL,
                "no-cache, no-store, max-age=0, must-revalidate",
            ),
        ],
        json!({"access_token": token, "expires_in": expires_in, "token_type": "Bearer"})
            .to_string(),
    )
        .into_response())
}

/// Which error format the API answers with.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Flavor {
    Json,
    GData,
}

/// The user a bearer token acts as, once [`authorize`] accepted it.
pub(crate) fn subject(shared: &Shared, headers: &HeaderMap) -> Option<String> {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .map(|(_, t)| t.trim().to_owned())?;
    shared
        .state
        .lock()
        .tokens
        .get(&token)
        .map(|i| i.subject.clone())
}

/// Checks the bearer token (header, or `access_token` / `oauth_token` in the
/// query) and that it carries one of `scopes`.
pub(crate) fn authorize(
    shared: &Shared,
    headers: &HeaderMap,
    query: &[(String, String)],
    scopes: &[String],
    flavor: Flavor,
) -> Result<(), Response> {
    let from_header = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(|v| match v.split_once(' ') {
            Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => {
                token.trim().to_owned()
            }
            _ => String::new(),
        });
    let from_query = query
        .iter()
        .find(|(k, _)| k == "access_token" || k == "oauth_token")
        .map(|(_, v)| v.clone());
    let unauthenticated = |missing| match flavor {
        Flavor::Json => errors::unauthenticated(missing),
        Flavor::GData => errors::gdata_unauthenticated(missing),
    };
    let Some(token) = from_header.or(from_query) else {
        return Err(unauthenticated(true));
    };
    let st = shared.state.lock();
    let Some(info) = st.tokens.get(&token) else {
        return Err(unauthenticated(false));
    };
    if info.expires_at <= Instant::now() {
        return Err(unauthenticated(false));
    }
    if !info.scopes.iter().any(|s| scopes.contains(s)) {
        return Err(match flavor {
            Flavor::Json => errors::insufficient_scopes(scopes),
            Flavor::GData => errors::gdata_rejected(
                StatusCode::FORBIDDEN,
                "insufficientPermissions",
                "Request had insufficient authentication scopes.",
            ),
        });
    }
    Ok(())
}
