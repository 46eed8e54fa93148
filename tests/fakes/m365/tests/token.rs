//! The token endpoint: client credentials with a secret or a certificate
//! assertion, one token per resource, the AADSTS refusals, and the bearer
//! check of Graph and Exchange.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use coexist_fake_m365::{FakeM365, FakeOptions};
use common::*;
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use serde_json::{json, Value};

async fn aad_error(r: reqwest::Response) -> (u16, String, String) {
    let status = r.status().as_u16();
    let body: Value = r.json().await.unwrap();
    assert!(body["error_codes"].is_array(), "{body}");
    (
        status,
        body["error"].as_str().unwrap().to_owned(),
        body["error_description"].as_str().unwrap().to_owned(),
    )
}

#[tokio::test]
async fn a_client_secret_gets_a_bearer_token_with_its_lifetime() {
    let options = FakeOptions {
        token_lifetime: Duration::from_secs(1234),
        ..FakeOptions::default()
    };
    let m365 = FakeM365::start(options).await.unwrap();
    let r = token_request(
        &m365,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", &m365.client_id()),
            ("client_secret", &m365.client_secret()),
            ("scope", GRAPH_SCOPE),
        ],
    )
    .await;
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 1234);
    // Microsoft's access tokens are JWTs naming their audience and tenant.
    let token = body["access_token"].as_str().unwrap();
    assert_eq!(token.split('.').count(), 3);
    assert_eq!(m365.counters().token, 1);
}

#[tokio::test]
async fn a_certificate_assertion_signed_with_the_app_key_gets_a_token() {
    let m365 = FakeM365::start(FakeOptions::default()).await.unwrap();
    let assertion = sign(
        &m365.private_key_pem(),
        &m365.certificate_pem(),
        &assertion_claims(&m365),
    );
    let r = assertion_request(&m365, &assertion, EXCHANGE_SCOPE).await;
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert!(body["access_token"].is_string());
}

#[tokio::test]
async fn an_assertion_may_name_its_certificate_by_x5t_s256() {
    let m365 = FakeM365::start(FakeOptions::default()).await.unwrap();
    use base64::Engine;
    use sha2::Digest;
    let pem = m365.certificate_pem();
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(body)
        .unwrap();
    let mut header = Header::new(Algorithm::PS256);
    header.x5t_s256 =
        Some(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(&der)));
    let assertion = encode(
        &header,
        &assertion_claims(&m365),
        &EncodingKey::from_rsa_pem(m365.private_key_pem().as_bytes()).unwrap(),
    )
    .unwrap();
    assert_eq!(
        assertion_request(&m365, &assertion, GRAPH_SCOPE)
            .await
            .status(),
        200
    );
}

#[tokio::test]
async fn a_wrong_client_secret_is_refused_with_aadsts7000215() {
    let m365 = FakeM365::start(FakeOptions::default()).await.unwrap();
    let r = token_request(
        &m365,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", &m365.client_id()),
            ("client_secret", "not-the-secret"),
            ("scope", GRAPH_SCOPE),
        ],
    )
    .await;
    let (status, error, description) = aad_error(r).await;
    assert_eq!((status, error.as_str()), (401, "invalid_client"));
    assert!(
        description.starts_with("AADSTS7000215: Invalid client secret provided."),
        "{description}"
    );
}

#[tokio::test]
async fn an_assertion_signed_with_an_unregistered_certificate_is_refused_with_aadsts700027() {
    let m365 = FakeM365::start(FakeOptions::default()).await.unwrap();
    let claims = assertion_claims(&m365);
    // Another certificate, named by its own thumbprint: the key is not found.
    let other = sign(
        &m365.other_private_key_pem(),
        &m365.other_certificate_pem(),
        &claims,
    );
    let (status, error, description) =
        aad_error(assertion_request(&m365, &other, GRAPH_SCOPE).await).await;
    assert_eq!((status, error.as_str()), (401, "invalid_client"));
    assert!(description.starts_with("AADSTS700027:"), "{description}");
    assert!(
        description.contains("The key was not found"),
        "{description}"
    );
    // The registered thumbprint, signed with another key: a bad signature.
    let forged = sign(
        &m365.other_private_key_pem(),
        &m365.certificate_pem(),
        &claims,
    );
    let (_, _, description) = aad_error(assertion_request(&m365, &forged, GRAPH_SCOPE).await).await;
    assert!(description.contains("invalid signature"), "{description}");
}

#[tokio::test]
async fn an_assertion_must_name_the_token_endpoint_the_client_and_a_valid_time() {
    let m365 = FakeM365::start(FakeOptions::default()).await.unwrap();
    let key = m365.private_key_pem();
    let cert = m365.certificate_pem();
    let mut claims = assertion_claims(&m365);
    claims["aud"] = json!("https://login.microsoftonline.com/common/oauth2/v2.0/token");
    let (_, _, d) =
        aad_error(assertion_request(&m365, &sign(&key, &cert, &claims), GRAPH_SCOPE).await).await;
    assert!(d.starts_with("AADSTS700023:"), "{d}");

    let mut claims = assertion_claims(&m365);
    claims["iss"] = json!("someone-else");
    let (_, _, d) =
        aad_error(assertion_request(&m365, &sign(&key, &cert, &claims), GRAPH_SCOPE).await).await;
    assert!(d.starts_with("AADSTS700021:"), "{d}");

    let mut claims = assertion_claims(&m365);
    claims["exp"] = json!(now() - 3600);
    let (_, _, d) =
        aad_error(assertion_request(&m365, &sign(&key, &cert, &claims), GRAPH_SCOPE).await).await;
    assert!(d.starts_with("AADSTS700024:"), "{d}");
}

#[tokio::test]
async fn scopes_tenants_clients_and_grant_types_are_checked() {
    let m365 = FakeM365::start(FakeOptions::default()).await.unwrap();
    let id = m365.client_id();
    let secret = m365.client_secret();
    let base = |scope: &'static str| {
        vec![
            ("grant_type", "client_credentials"),
            ("client_id", id.as_str()),
            ("client_secret", secret.as_str()),
            ("scope", scope),
        ]
    };
    let (s, e, d) =
        aad_error(token_request(&m365, &base("https://graph.microsoft.com/User.Read.All")).await)
            .await;
    assert_eq!((s, e.as_str()), (400, "invalid_scope"));
    assert!(d.starts_with("AADSTS1002012:"), "{d}");
    let (_, e, d) =
        aad_error(token_request(&m365, &base("https://vault.azure.net/.default")).await).await;
    assert_eq!(e, "invalid_resource");
    assert!(d.starts_with("AADSTS500011:"), "{d}");

    let mut form = base(GRAPH_SCOPE);
    form[1] = ("client_id", "00000000-0000-0000-0000-000000000000");
    let (_, e, d) = aad_error(token_request(&m365, &form).await).await;
    assert_eq!(e, "unauthorized_client");
    assert!(d.starts_with("AADSTS700016:"), "{d}");

    let mut form = base(GRAPH_SCOPE);
    form[0] = ("grant_type", "password");
    assert_eq!(
        aad_error(token_request(&m365, &form).await).await.1,
        "unsupported_grant_type"
    );

    let mut form = base(GRAPH_SCOPE);
    form.remove(2);
    let (s, _, d) = aad_error(token_request(&m365, &form).await).await;
    assert_eq!(s, 401);
    assert!(d.starts_with("AADSTS7000216:"), "{d}");

    let r = reqwest::Client::new()
        .post(format!(
            "{}/no-such-tenant/oauth2/v2.0/token",
            m365.base_url()
        ))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(form_body(&base(GRAPH_SCOPE)))
        .send()
        .await
        .unwrap();
    assert!(aad_error(r).await.2.starts_with("AADSTS90002:"));
}

#[tokio::test]
async fn a_request_without_a_token_is_refused_with_access_token_is_empty() {
    let ctx = Ctx::start().await;
    let r = ctx
        .http
        .get(format!("{}/users", ctx.m365.graph_url()))
        .send()
        .await
        .unwrap();
    assert!(r.headers().contains_key("www-authenticate"));
    let (status, code, message) = graph_error(r).await;
    assert_eq!(
        (status, code.as_str(), message.as_str()),
        (401, "InvalidAuthenticationToken", "Access token is empty.")
    );
    let r = ctx.invoke_with("", "Get-Recipient", json!({})).await;
    assert_eq!(r.status(), 401);
}

#[tokio::test]
async fn tokens_are_per_audience_graph_refuses_exchange_tokens_and_exchange_refuses_graph_tokens() {
    let ctx = Ctx::start().await;
    let r = ctx
        .http
        .get(format!("{}/users", ctx.m365.graph_url()))
        .bearer_auth(&ctx.exchange_token)
        .send()
        .await
        .unwrap();
    let (status, code, message) = graph_error(r).await;
    assert_eq!((status, code.as_str()), (401, "InvalidAuthenticationToken"));
    assert!(message.contains("Invalid audience"), "{message}");

    let r = ctx
        .invoke_with(&ctx.graph_token, "Get-Recipient", json!({}))
        .await;
    assert_eq!(r.status(), 401);
    let diagnostics = r.headers()["x-ms-diagnostics"].to_str().unwrap().to_owned();
    assert!(diagnostics.contains("invalid_resource"), "{diagnostics}");
    assert_eq!(ctx.invoke("Get-Recipient", json!({})).await.status(), 200);
}

#[tokio::test]
async fn expired_tokens_answer_401_until_a_new_token_is_fetched() {
    let ctx = Ctx::start().await;
    assert_eq!(ctx.get("/users").await.status(), 200);
    ctx.m365.expire_tokens();
    let (status, code, message) = graph_error(ctx.get("/users").await).await;
    assert_eq!(status, 401);
    assert_eq!(code, "InvalidAuthenticationToken");
    assert_eq!(message, "Lifetime validation failed, the token is expired.");
    assert_eq!(ctx.invoke("Get-Recipient", json!({})).await.status(), 401);
    let fresh = secret_token(&ctx.m365, GRAPH_SCOPE).await;
    let r = ctx
        .http
        .get(format!("{}/users", ctx.m365.graph_url()))
        .bearer_auth(fresh)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn a_token_without_the_permission_is_forbidden() {
    let ctx = Ctx::with(FakeOptions {
        graph_roles: vec!["User.Read.All".into()],
        exchange_roles: vec![],
        ..FakeOptions::default()
    })
    .await;
    assert_eq!(ctx.get("/users").await.status(), 200);
    let (status, code, _) = graph_error(ctx.get("/groups").await).await;
    assert_eq!(
        (status, code.as_str()),
        (403, "Authorization_RequestDenied")
    );
    assert_eq!(ctx.invoke("Get-Recipient", json!({})).await.status(), 403);
}
