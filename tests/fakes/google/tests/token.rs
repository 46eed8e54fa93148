//! The OAuth 2.0 token endpoint, as
//! https://developers.google.com/identity/protocols/oauth2/service-account describes it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use coexist_fake_google::{FakeGoogle, FakeOptions};
use common::*;
use serde_json::Value;

async fn refused(google: &FakeGoogle, claims: &Value, key_json: &str) -> (u16, Value) {
    let r = exchange(google, &sign(key_json, claims)).await;
    (r.status().as_u16(), r.json().await.unwrap())
}

#[tokio::test]
async fn a_valid_jwt_gets_a_bearer_token() {
    let google = FakeGoogle::start(FakeOptions::default()).await.unwrap();
    let key_json = google.service_account_key_json();
    let key: Value = serde_json::from_str(&key_json).unwrap();
    assert_eq!(key["type"], "service_account");
    assert_eq!(key["token_uri"], google.token_uri());
    assert!(key["private_key"]
        .as_str()
        .unwrap()
        .starts_with("-----BEGIN PRIVATE KEY-----"));

    let r = exchange(&google, &sign(&key_json, &claims(&google))).await;
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 3600);
    assert!(body["access_token"].as_str().unwrap().len() > 10);
    assert_eq!(google.requests().token, 1);
}

#[tokio::test]
async fn a_jwt_signed_by_another_key_is_invalid_grant() {
    let google = FakeGoogle::start(FakeOptions::default()).await.unwrap();
    let (status, body) = refused(
        &google,
        &claims(&google),
        &google.foreign_service_account_key_json(),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(body["error"], "invalid_grant");
    assert_eq!(body["error_description"], "Invalid JWT Signature.");
    assert_eq!(google.requests().rejected, 1);
}

#[tokio::test]
async fn an_expired_or_too_long_jwt_is_invalid_grant() {
    let google = FakeGoogle::start(FakeOptions::default()).await.unwrap();
    let key = google.service_account_key_json();
    let mut expired = claims(&google);
    expired["iat"] = (now() - 7200).into();
    expired["exp"] = (now() - 3600).into();
    let (status, body) = refused(&google, &expired, &key).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant"))
    );

    let mut too_long = claims(&google);
    too_long["exp"] = (now() + 7200).into();
    let (status, body) = refused(&google, &too_long, &key).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant"))
    );

    let mut no_iat = claims(&google);
    no_iat.as_object_mut().unwrap().remove("iat");
    let (status, _) = refused(&google, &no_iat, &key).await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn a_wrong_audience_or_issuer_is_invalid_grant() {
    let google = FakeGoogle::start(FakeOptions::default()).await.unwrap();
    let key = google.service_account_key_json();
    let mut wrong_aud = claims(&google);
    wrong_aud["aud"] = "https://oauth2.googleapis.com/token".into();
    let (status, body) = refused(&google, &wrong_aud, &key).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant"))
    );

    let mut wrong_iss = claims(&google);
    wrong_iss["iss"] = "someone@else.iam.gserviceaccount.com".into();
    let (status, body) = refused(&google, &wrong_iss, &key).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant"))
    );
}

#[tokio::test]
async fn domain_wide_delegation_needs_sub_to_be_the_admin() {
    let google = FakeGoogle::start(FakeOptions::default()).await.unwrap();
    let key = google.service_account_key_json();
    let mut no_sub = claims(&google);
    no_sub.as_object_mut().unwrap().remove("sub");
    let (status, body) = refused(&google, &no_sub, &key).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant"))
    );

    let mut other = claims(&google);
    other["sub"] = "bob@acmecorp.com".into();
    let (status, body) = refused(&google, &other, &key).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant"))
    );
}

#[tokio::test]
async fn scopes_must_be_present_and_authorized() {
    let google = FakeGoogle::start(FakeOptions::default()).await.unwrap();
    let key = google.service_account_key_json();
    let mut none = claims(&google);
    none.as_object_mut().unwrap().remove("scope");
    let (status, body) = refused(&google, &none, &key).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_scope"))
    );

    let mut unauthorized = claims(&google);
    unauthorized["scope"] = "https://www.googleapis.com/auth/gmail.readonly".into();
    let (status, body) = refused(&google, &unauthorized, &key).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("unauthorized_client"))
    );
}

#[tokio::test]
async fn a_wrong_grant_type_is_unsupported() {
    let google = FakeGoogle::start(FakeOptions::default()).await.unwrap();
    let r = reqwest::Client::new()
        .post(google.token_uri())
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body("grant_type=client_credentials")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"], "unsupported_grant_type");
}

#[tokio::test]
async fn tokens_expire_after_their_lifetime_or_on_command() {
    let ctx = Ctx::with(FakeOptions {
        token_lifetime: Duration::from_secs(1),
        ..FakeOptions::default()
    })
    .await;
    let q = [("customer", "my_customer")];
    assert_eq!(ctx.dir("users", &q).await.status(), 200);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let r = ctx.dir("users", &q).await;
    assert_eq!(r.status(), 401);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["errors"][0]["reason"], "authError");

    let ctx = Ctx::start().await;
    assert_eq!(ctx.dir("users", &q).await.status(), 200);
    ctx.google.expire_all_tokens();
    assert_eq!(ctx.dir("users", &q).await.status(), 401);
    // A new token works again.
    let assertion = sign(&ctx.google.service_account_key_json(), &claims(&ctx.google));
    let body: Value = exchange(&ctx.google, &assertion)
        .await
        .json()
        .await
        .unwrap();
    let r = ctx
        .http
        .get(format!("{}users", ctx.google.directory_url()))
        .query(&q)
        .bearer_auth(body["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn a_missing_or_unknown_token_is_401_with_googles_body() {
    let ctx = Ctx::start().await;
    let url = format!("{}users?customer=my_customer", ctx.google.directory_url());
    let r = ctx.http.get(&url).send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert!(r.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .starts_with("Bearer"));
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], 401);
    assert_eq!(body["error"]["status"], "UNAUTHENTICATED");
    assert_eq!(body["error"]["errors"][0]["reason"], "required");

    let r = ctx
        .http
        .get(&url)
        .bearer_auth("ya29.not-a-token")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["errors"][0]["reason"], "authError");
    assert_eq!(ctx.google.requests().rejected, 2);
}

#[tokio::test]
async fn a_token_without_the_methods_scope_is_403() {
    let ctx = Ctx::start().await;
    let token = ctx.google.mint_token(&[CONTACTS]);
    let r = ctx
        .http
        .get(format!(
            "{}users?customer=my_customer",
            ctx.google.directory_url()
        ))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let body: Value = r.json().await.unwrap();
    assert_eq!(
        body["error"]["errors"][0]["reason"],
        "insufficientPermissions"
    );
}

#[tokio::test]
async fn after_the_delegation_is_revoked_every_jwt_is_unauthorized_client() {
    let google = FakeGoogle::start(FakeOptions::default()).await.unwrap();
    let key = google.service_account_key_json();
    assert_eq!(
        exchange(&google, &sign(&key, &claims(&google)))
            .await
            .status(),
        200
    );

    google.revoke_delegation();

    let (status, body) = refused(&google, &claims(&google), &key).await;
    assert_eq!(status, 401);
    assert_eq!(body["error"], "unauthorized_client");
}
