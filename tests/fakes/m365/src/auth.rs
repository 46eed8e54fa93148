//! The Microsoft identity platform token endpoint for the client credentials
//! grant, and the bearer-token check of Graph and Exchange.
//!
//! Follows <https://learn.microsoft.com/entra/identity-platform/v2-oauth2-client-creds-grant-flow>
//! (form fields `grant_type=client_credentials`, `client_id`, `scope` =
//! `{resource}/.default`, and `client_secret` or `client_assertion_type` =
//! `urn:ietf:params:oauth:client-assertion-type:jwt-bearer` with
//! `client_assertion`) and
//! <https://learn.microsoft.com/entra/identity-platform/certificate-credentials>
//! (the assertion: RS256 or PS256, header `x5t` = base64url SHA-1 thumbprint
//! of the certificate's DER or `x5t#S256` = its SHA-256; claims `aud` = the
//! token endpoint, `iss` = `sub` = the client id, `exp`, optional `nbf`).
//! Errors carry the AADSTS codes of
//! <https://learn.microsoft.com/entra/identity-platform/reference-error-codes>.
//!
//! Tokens are per audience (<https://graph.microsoft.com> or
//! <https://outlook.office365.com>): each API refuses the other's.

use std::sync::Arc;
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{
    decode, decode_header, encode, Algorithm, DecodingKey, EncodingKey, Header, Validation,
};
use rand::Rng;
use serde_json::{json, Value};
use sha1::{Digest, Sha1};

use crate::errors::{self, Reply};
use crate::state::{new_guid, now_secs, Audience, Shared, TokenInfo};
use crate::Fault;

/// The fixed test key pair of the app (no value outside these tests; see testdata/README.md).
pub(crate) const PRIVATE_KEY_PEM: &str = include_str!("../testdata/app_key.pem");
pub(crate) const CERTIFICATE_PEM: &str = include_str!("../testdata/app_cert.pem");
/// A pair the fake does not trust.
pub(crate) const OTHER_PRIVATE_KEY_PEM: &str = include_str!("../testdata/other_key.pem");
pub(crate) const OTHER_CERTIFICATE_PEM: &str = include_str!("../testdata/other_cert.pem");

/// The resource of Microsoft Graph.
pub const GRAPH_RESOURCE: &str = "https://graph.microsoft.com";
/// The resource of Exchange Online (its admin API).
pub const EXCHANGE_RESOURCE: &str = "https://outlook.office365.com";
/// `client_assertion_type` for a certificate assertion.
pub const JWT_BEARER_ASSERTION: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// Clock skew the identity platform tolerates on assertion times.
const SKEW_SECS: i64 = 300;

/// The app's registered certificate, and the key that signs access tokens.
pub(crate) struct Keys {
    pub certificate_pem: String,
    decoding: Option<DecodingKey>,
    x5t: String,
    x5t_s256: String,
    access_key: EncodingKey,
}

/// The DER of the first PEM block.
fn pem_der(pem: &str) -> Result<Vec<u8>, String> {
    let body: String = pem
        .lines()
        .map(str::trim)
        .skip_while(|l| !l.starts_with("-----BEGIN"))
        .skip(1)
        .take_while(|l| !l.starts_with("-----END"))
        .collect();
    STANDARD
        .decode(body.as_bytes())
        .map_err(|e| format!("the certificate is not PEM: {e}"))
}

/// Base64url SHA-1 of the certificate's DER (the `x5t` header).
pub(crate) fn x5t(certificate_pem: &str) -> Result<String, String> {
    let der = pem_der(certificate_pem)?;
    Ok(URL_SAFE_NO_PAD.encode(Sha1::digest(&der)))
}

/// Base64url SHA-256 of the certificate's DER (the `x5t#S256` header).
pub(crate) fn x5t_s256(certificate_pem: &str) -> Result<String, String> {
    let der = pem_der(certificate_pem)?;
    Ok(URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(&der)))
}

impl Keys {
    /// `certificate_pem`: the app's certificate, `None` for no certificate
    /// credential (secrets only).
    pub fn load(certificate_pem: Option<&str>) -> Result<Keys, String> {
        let mut secret = [0u8; 32];
        rand::thread_rng().fill(&mut secret);
        let access_key = EncodingKey::from_secret(&secret);
        let Some(pem) = certificate_pem else {
            return Ok(Keys {
                certificate_pem: String::new(),
                decoding: None,
                x5t: String::new(),
                x5t_s256: String::new(),
                access_key,
            });
        };
        let decoding = DecodingKey::from_rsa_pem(pem.as_bytes())
            .map_err(|e| format!("the app's certificate holds no RSA public key: {e}"))?;
        Ok(Keys {
            certificate_pem: pem.to_owned(),
            decoding: Some(decoding),
            x5t: x5t(pem)?,
            x5t_s256: x5t_s256(pem)?,
            access_key,
        })
    }
}

fn hex_upper(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02X}")).collect()
}

/// POST /{tenant}/oauth2/v2.0/token: client credentials for one resource, as
/// <https://learn.microsoft.com/entra/identity-platform/v2-oauth2-client-creds-grant-flow>
/// describes ("Get a token"), with a secret or a certificate assertion
/// (<https://learn.microsoft.com/entra/identity-platform/certificate-credentials>).
pub(crate) async fn token(
    State(shared): State<Arc<Shared>>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    shared.count(|c| c.token += 1);
    let fault = {
        let mut st = shared.state.lock();
        st.token_faults
            .pop_front()
            .map(|f| (f, st.retry_after_secs))
    };
    if let Some((fault, retry_after)) = fault {
        return token_fault(fault, retry_after);
    }
    match exchange(&shared, &tenant, &headers, &body) {
        Ok(r) | Err(r) => r,
    }
}

fn token_fault(fault: Fault, retry_after: u64) -> Response {
    let (status, error, code, text) = match fault {
        Fault::TooMany429 => (
            StatusCode::TOO_MANY_REQUESTS,
            "temporarily_unavailable",
            50196,
            "The server terminated an operation because it encountered a client request loop.",
        ),
        Fault::GatewayTimeout504 => (
            StatusCode::GATEWAY_TIMEOUT,
            "temporarily_unavailable",
            90033,
            "A transient error has occurred. Please try again.",
        ),
        Fault::ServerError500 | Fault::Unavailable503 => (
            if fault == Fault::ServerError500 {
                StatusCode::INTERNAL_SERVER_ERROR
            } else {
                StatusCode::SERVICE_UNAVAILABLE
            },
            "temporarily_unavailable",
            90033,
            "A transient error has occurred. Please try again.",
        ),
    };
    let mut response = errors::aad(status, error, code, text);
    response.extensions_mut().remove::<errors::Rejected>();
    response.extensions_mut().insert(errors::InjectedFault);
    if matches!(fault, Fault::TooMany429 | Fault::Unavailable503) {
        response.headers_mut().insert(
            header::RETRY_AFTER,
            axum::http::HeaderValue::from(retry_after),
        );
    }
    response
}

fn missing(name: &str) -> Response {
    errors::aad(
        StatusCode::BAD_REQUEST,
        "invalid_request",
        900144,
        &format!("The request body must contain the following parameter: '{name}'."),
    )
}

fn invalid_client(code: u32, text: &str) -> Response {
    errors::aad(StatusCode::UNAUTHORIZED, "invalid_client", code, text)
}

fn exchange(
    shared: &Shared,
    tenant: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Response, Response> {
    if !(tenant.eq_ignore_ascii_case(&shared.tenant_id)
        || tenant.eq_ignore_ascii_case(&shared.tenant_domain)
        || tenant.eq_ignore_ascii_case(&shared.domain))
    {
        return Err(errors::aad(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            90002,
            &format!("Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud. Check with your subscription administrator, this may happen if there are no active subscriptions for the tenant."),
        ));
    }
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !content_type.starts_with("application/x-www-form-urlencoded") {
        return Err(missing("grant_type"));
    }
    let form: Vec<(String, String)> = form_urlencoded::parse(body).into_owned().collect();
    let field = |name: &str| {
        form.iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    };
    match field("grant_type") {
        Some("client_credentials") => {}
        Some(other) => {
            return Err(errors::aad(
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                70003,
                &format!("The app requested an unsupported grant type '{other}'."),
            ))
        }
        None => return Err(missing("grant_type")),
    }
    let Some(client_id) = field("client_id") else {
        return Err(missing("client_id"));
    };
    if !client_id.eq_ignore_ascii_case(&shared.client_id) {
        return Err(errors::aad(
            StatusCode::BAD_REQUEST,
            "unauthorized_client",
            700016,
            &format!("Application with identifier '{client_id}' was not found in the directory '{}'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You may have sent your authentication request to the wrong tenant.", shared.tenant_domain),
        ));
    }
    let Some(scope) = field("scope") else {
        return Err(missing("scope"));
    };
    let audience = audience_of(shared, scope)?;

    match (field("client_secret"), field("client_assertion")) {
        (Some(_), Some(_)) => {
            return Err(errors::aad(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                9002313,
                "Invalid request. Request is malformed or invalid: both a client secret and a client assertion were sent.",
            ))
        }
        (Some(secret), None) => {
            if shared.client_secret.as_deref() != Some(secret) {
                return Err(invalid_client(
                    7000215,
                    &format!("Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '{}'.", shared.client_id),
                ));
            }
        }
        (None, Some(assertion)) => {
            match field("client_assertion_type") {
                Some(JWT_BEARER_ASSERTION) => {}
                Some(other) => {
                    return Err(errors::aad(
                        StatusCode::BAD_REQUEST,
                        "invalid_request",
                        9002313,
                        &format!("Invalid request. Request is malformed or invalid: client_assertion_type '{other}' is not supported."),
                    ))
                }
                None => return Err(missing("client_assertion_type")),
            }
            check_assertion(shared, assertion)?;
        }
        (None, None) => {
            return Err(invalid_client(
                7000216,
                "'client_assertion', 'client_secret' or 'request' is required for the 'client_credentials' grant type.",
            ))
        }
    }

    let (token, expires_in) = issue(shared, audience);
    Ok((
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "application/json; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store, no-cache"),
        ],
        json!({
            "token_type": "Bearer",
            "expires_in": expires_in,
            "ext_expires_in": expires_in,
            "access_token": token,
        })
        .to_string(),
    )
        .into_response())
}

/// `https://graph.microsoft.com/.default` or Exchange's: which audience.
fn audience_of(shared: &Shared, scope: &str) -> Result<Audience, Response> {
    let scopes: Vec<&str> = scope.split_whitespace().collect();
    if scopes.len() != 1 {
        return Err(errors::aad(
            StatusCode::BAD_REQUEST,
            "invalid_scope",
            70011,
            &format!("The provided request must include a 'scope' input parameter. The provided value for the input parameter 'scope' is not valid. The scope {scope} is not valid. A client credentials request names exactly one resource with /.default."),
        ));
    }
    let Some(resource) = scopes[0].strip_suffix("/.default") else {
        return Err(errors::aad(
            StatusCode::BAD_REQUEST,
            "invalid_scope",
            1002012,
            &format!("The provided value for scope {scope} is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI)."),
        ));
    };
    match resource.trim_end_matches('/') {
        GRAPH_RESOURCE => Ok(Audience::Graph),
        EXCHANGE_RESOURCE | "https://outlook.office.com" => Ok(Audience::Exchange),
        other => Err(errors::aad(
            StatusCode::BAD_REQUEST,
            "invalid_resource",
            500011,
            &format!("The resource principal named {other} was not found in the tenant named {}. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You might have sent your authentication request to the wrong tenant.", shared.tenant_domain),
        )),
    }
}

fn check_assertion(shared: &Shared, assertion: &str) -> Result<(), Response> {
    let malformed = || invalid_client(50027, "JWT token is invalid or malformed.");
    let header = decode_header(assertion).map_err(|_| malformed())?;
    if !matches!(header.alg, Algorithm::RS256 | Algorithm::PS256) {
        return Err(malformed());
    }
    let keys = &shared.keys;
    let thumbprint = header
        .x5t
        .clone()
        .or_else(|| header.x5t_s256.clone())
        .unwrap_or_default();
    let thumbprint_hex = URL_SAFE_NO_PAD
        .decode(thumbprint.as_bytes())
        .map(|b| hex_upper(&b))
        .unwrap_or_default();
    let key_not_found = || {
        invalid_client(
            700027,
            &format!("Client assertion failed signature validation. [Reason - The key was not found., Thumbprint of key used by client: '{thumbprint_hex}', Please visit the Azure Portal, Graph Explorer or directly use MS Graph to see configured keys for app Id '{}'. Review the documentation at https://docs.microsoft.com/en-us/graph/deployments if you are not using the global cloud.]", shared.client_id),
        )
    };
    let Some(decoding) = &keys.decoding else {
        return Err(key_not_found());
    };
    let matches_x5t = header.x5t.as_deref() == Some(keys.x5t.as_str());
    let matches_s256 = header.x5t_s256.as_deref() == Some(keys.x5t_s256.as_str());
    if !(matches_x5t || matches_s256) {
        return Err(key_not_found());
    }
    let mut validation = Validation::new(header.alg);
    validation.validate_exp = false;
    validation.validate_aud = false;
    validation.validate_nbf = false;
    validation.required_spec_claims.clear();
    let claims = match decode::<Value>(assertion, decoding, &validation) {
        Ok(data) => data.claims,
        Err(e) => {
            return Err(match e.kind() {
                ErrorKind::InvalidSignature | ErrorKind::InvalidAlgorithm => invalid_client(
                    700027,
                    &format!("Client assertion contains an invalid signature. [Reason - The provided signature value did not match the expected signature value., Thumbprint of key used by client: '{thumbprint_hex}', Found key 'Start=01/01/2024 00:00:00, End=01/01/2124 00:00:00']"),
                ),
                _ => malformed(),
            })
        }
    };
    let claim = |name: &str| claims.get(name).and_then(Value::as_str);
    let token_url = shared.token_url();
    let aud_ok = match claims.get("aud") {
        Some(Value::String(a)) => *a == token_url,
        Some(Value::Array(list)) => list.iter().any(|a| a.as_str() == Some(token_url.as_str())),
        _ => false,
    };
    if !aud_ok {
        return Err(invalid_client(
            700023,
            &format!("Client assertion audience claim does not match Realm issuer. The audience must be {token_url}."),
        ));
    }
    if claim("iss") != Some(shared.client_id.as_str())
        || claim("sub") != Some(shared.client_id.as_str())
    {
        return Err(invalid_client(
            700021,
            "Client assertion application identifier doesn't match 'client_id' parameter. Review the documentation at https://docs.microsoft.com/en-us/azure/active-directory/develop/active-directory-certificate-credentials .",
        ));
    }
    let now = now_secs();
    let exp = claims.get("exp").and_then(Value::as_i64);
    let nbf = claims.get("nbf").and_then(Value::as_i64);
    let expired = exp.is_none_or(|exp| exp + SKEW_SECS <= now);
    let early = nbf.is_some_and(|nbf| nbf > now + SKEW_SECS);
    if expired || early {
        return Err(invalid_client(
            700024,
            &format!(
                "Client assertion is not within its valid time range. Current time: {now}, assertion valid from {}, expiry time of assertion {}.",
                nbf.map(|n| n.to_string()).unwrap_or_else(|| "-".to_owned()),
                exp.map(|n| n.to_string()).unwrap_or_else(|| "-".to_owned()),
            ),
        ));
    }
    Ok(())
}

/// Issues an access token (a JWT, as Microsoft's are) for an audience.
pub(crate) fn issue(shared: &Shared, audience: Audience) -> (String, u64) {
    let lifetime = shared.state.lock().token_lifetime;
    let now = now_secs();
    let (aud, roles) = match audience {
        Audience::Graph => (GRAPH_RESOURCE, shared.graph_roles.clone()),
        Audience::Exchange => (EXCHANGE_RESOURCE, shared.exchange_roles.clone()),
    };
    let lifetime_secs = lifetime.as_secs();
    let claims = json!({
        "aud": aud,
        "iss": format!("https://sts.windows.net/{}/", shared.tenant_id),
        "iat": now,
        "nbf": now,
        "exp": now + i64::try_from(lifetime_secs).unwrap_or(i64::MAX / 2),
        "appid": shared.client_id,
        "idtyp": "app",
        "oid": new_guid(),
        "roles": roles,
        "tid": shared.tenant_id,
        "uti": new_guid(),
        "ver": "1.0",
    });
    let token = encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &shared.keys.access_key,
    )
    .unwrap_or_else(|_| format!("fake-token-{}", new_guid()));
    shared.state.lock().tokens.insert(
        token.clone(),
        TokenInfo {
            audience,
            roles,
            expires_at: Instant::now() + lifetime,
        },
    );
    (token, lifetime_secs)
}

/// Why a bearer token was refused.
pub(crate) enum Refusal {
    Missing,
    Unknown,
    Expired,
    WrongAudience(Audience),
}

/// Checks the bearer token of a request for an audience; returns its roles.
pub(crate) fn check_bearer(
    shared: &Shared,
    headers: &HeaderMap,
    audience: Audience,
) -> Result<Vec<String>, Refusal> {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, t)| t.trim().to_owned())
        .filter(|t| !t.is_empty())
        .ok_or(Refusal::Missing)?;
    let st = shared.state.lock();
    let info = st.tokens.get(&token).ok_or(Refusal::Unknown)?;
    if info.expires_at <= Instant::now() {
        return Err(Refusal::Expired);
    }
    if info.audience != audience {
        return Err(Refusal::WrongAudience(info.audience));
    }
    Ok(info.roles.clone())
}

/// Graph's 401 for a refused token.
pub(crate) fn graph_refusal(refusal: Refusal) -> Reply {
    errors::graph_unauthenticated(match refusal {
        Refusal::Missing => "Access token is empty.",
        Refusal::Unknown => "Access token validation failure.",
        Refusal::Expired => "Lifetime validation failed, the token is expired.",
        Refusal::WrongAudience(_) => "Access token validation failure. Invalid audience.",
    })
}

/// Exchange's 401 for a refused token: no body, the reason in
/// `x-ms-diagnostics` and `WWW-Authenticate`, as Exchange Online sends it.
pub(crate) fn exchange_refusal(shared: &Shared, refusal: Refusal) -> Reply {
    let (code, reason, category) = match refusal {
        Refusal::Missing => (2000000, "The Authorization header is missing or empty.".to_owned(), "invalid_token"),
        Refusal::Unknown => (2000001, "The token could not be validated.".to_owned(), "invalid_token"),
        Refusal::Expired => (2000008, "The token has expired.".to_owned(), "invalid_token"),
        Refusal::WrongAudience(audience) => (
            2000003,
            format!(
                "The audience claim value is invalid for current resource. Audience claim is '{}', request url is '{}/InvokeCommand'.",
                match audience {
                    Audience::Graph => GRAPH_RESOURCE,
                    Audience::Exchange => EXCHANGE_RESOURCE,
                },
                shared.exchange_url()
            ),
            "invalid_resource",
        ),
    };
    Reply::empty(StatusCode::UNAUTHORIZED)
        .header(
            "WWW-Authenticate",
            "Bearer client_id=\"00000002-0000-0ff1-ce00-000000000000\", trusted_issuers=\"00000001-0000-0000-c000-000000000000@*\", token_types=\"app_asserted_user_v1 service_asserted_app_v1\", authorization_uri=\"https://login.microsoftonline.com/common/oauth2/authorize\", error=\"invalid_token\"",
        )
        .header(
            "x-ms-diagnostics",
            format!("{code};reason=\"{reason}\";error_category=\"{category}\""),
        )
        .rejected()
}
