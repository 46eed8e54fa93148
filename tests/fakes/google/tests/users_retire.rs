//! users.update (a rename), users.aliases.delete and users.delete as the
//! reference pages describe them
//! (https://developers.google.com/admin-sdk/directory/reference/rest/v1/users/update,
//! …/users.aliases/delete, …/users/delete): what `coexist move --finish`
//! does to an old user, and what Google refuses.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use coexist_fake_google::FakeUser;
use common::*;
use reqwest::Method;
use serde_json::{json, Value};

const USER: &str = "https://www.googleapis.com/auth/admin.directory.user";

async fn send(
    ctx: &Ctx,
    token: &str,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut request = ctx
        .http
        .request(method, format!("{}{path}", ctx.google.directory_url()))
        .bearer_auth(token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let r = request.send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

fn ann(ctx: &Ctx) -> String {
    ctx.google.add_user(FakeUser {
        primary_email: "ann@acmecorp.com".into(),
        given_name: "Ann".into(),
        family_name: "Lee".into(),
        aliases: vec!["ann.lee@acmecorp.com".into()],
        non_editable_aliases: vec!["ann@gapps.acmecorp.com".into()],
        external_ids: vec![
            ("organization".into(), "E-1234".into()),
            ("coexist-forward".into(), "ann@mithi.acmecorp.com".into()),
        ],
        ..Default::default()
    });
    ctx.google.user("ann@acmecorp.com").unwrap().id
}

#[tokio::test]
async fn a_renamed_user_keeps_its_old_primary_address_as_an_alias_until_it_is_deleted() {
    let ctx = Ctx::start().await;
    ctx.google.add_domain_alias("gapps.acmecorp.com");
    let id = ann(&ctx);
    let token = ctx.google.mint_token(&[USER]);
    // The read-only token of coexist's reads may not rename.
    let rename = json!({ "primaryEmail": "retired.ann@acmecorp.com" });
    let (status, _) = send(
        &ctx,
        &ctx.token,
        Method::PUT,
        &format!("users/{id}"),
        Some(rename.clone()),
    )
    .await;
    assert_eq!(status, 403);

    let (status, user) = send(
        &ctx,
        &token,
        Method::PUT,
        &format!("users/{id}"),
        Some(rename),
    )
    .await;
    assert_eq!(status, 200, "{user}");
    assert_eq!(user["primaryEmail"], "retired.ann@acmecorp.com");
    assert_eq!(
        user["aliases"],
        json!(["ann.lee@acmecorp.com", "ann@acmecorp.com"])
    );
    assert_eq!(
        user["nonEditableAliases"],
        json!(["retired.ann@gapps.acmecorp.com"])
    );
    // The old address still finds the user.
    let (status, same) = send(&ctx, &token, Method::GET, "users/ann@acmecorp.com", None).await;
    assert_eq!((status, &same["id"]), (200, &json!(id)));

    for alias in ["ann@acmecorp.com", "ann.lee@acmecorp.com"] {
        let path = format!("users/{id}/aliases/{alias}");
        let (status, _) = send(&ctx, &token, Method::DELETE, &path, None).await;
        assert_eq!(status, 204, "{alias}");
        // Gone: a second delete is a 404.
        let (status, _) = send(&ctx, &token, Method::DELETE, &path, None).await;
        assert_eq!(status, 404, "{alias}");
    }
    // The primary address and an address at a domain alias are no
    // editable aliases.
    for address in ["retired.ann@acmecorp.com", "retired.ann@gapps.acmecorp.com"] {
        let path = format!("users/{id}/aliases/{address}");
        let (status, _) = send(&ctx, &token, Method::DELETE, &path, None).await;
        assert_eq!(status, 404, "{address}");
    }
    let (status, _) = send(&ctx, &token, Method::GET, "users/ann@acmecorp.com", None).await;
    assert_eq!(status, 404, "the old address is free");
    assert!(ctx.google.user("ann.lee@acmecorp.com").is_none());
}

#[tokio::test]
async fn a_rename_to_an_address_in_use_or_outside_the_accounts_domains_is_refused() {
    let ctx = Ctx::start().await;
    ctx.google.add_domain_alias("gapps.acmecorp.com");
    let id = ann(&ctx);
    ctx.google.add_user(FakeUser {
        primary_email: "retired.ann@acmecorp.com".into(),
        given_name: "Someone".into(),
        family_name: "Else".into(),
        ..Default::default()
    });
    let token = ctx.google.mint_token(&[USER]);
    for (to, expected) in [
        ("retired.ann@acmecorp.com", 409),
        ("ann@elsewhere.example", 400),
        ("ann@gapps.acmecorp.com", 400),
        ("not-an-address", 400),
    ] {
        let body = json!({ "primaryEmail": to });
        let (status, answer) = send(
            &ctx,
            &token,
            Method::PUT,
            &format!("users/{id}"),
            Some(body),
        )
        .await;
        assert_eq!(status, expected, "{to}: {answer}");
    }
    assert_eq!(
        ctx.google.user(&id).unwrap().primary_email,
        "ann@acmecorp.com"
    );
}

#[tokio::test]
async fn patch_cannot_clear_the_external_ids_update_can() {
    let ctx = Ctx::start().await;
    let id = ann(&ctx);
    let token = ctx.google.mint_token(&[USER]);
    let clear = json!({ "externalIds": [] });
    let (status, _) = send(
        &ctx,
        &token,
        Method::PATCH,
        &format!("users/{id}"),
        Some(clear.clone()),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(ctx.google.user(&id).unwrap().external_ids.len(), 2);
    let (status, _) = send(
        &ctx,
        &token,
        Method::PUT,
        &format!("users/{id}"),
        Some(clear),
    )
    .await;
    assert_eq!(status, 200);
    assert!(ctx.google.user(&id).unwrap().external_ids.is_empty());
    // An unknown field is refused as the discovery document says.
    let (status, _) = send(
        &ctx,
        &token,
        Method::PUT,
        &format!("users/{id}"),
        Some(json!({ "primaryMail": "x@acmecorp.com" })),
    )
    .await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn a_deleted_user_frees_its_addresses() {
    let ctx = Ctx::start().await;
    let id = ann(&ctx);
    let token = ctx.google.mint_token(&[USER]);
    let (status, _) = send(
        &ctx,
        &ctx.token,
        Method::DELETE,
        &format!("users/{id}"),
        None,
    )
    .await;
    assert_eq!(status, 403, "not with the read-only token");
    let (status, _) = send(&ctx, &token, Method::DELETE, &format!("users/{id}"), None).await;
    assert_eq!(status, 204);
    assert!(ctx.google.user("ann@acmecorp.com").is_none());
    assert!(ctx.google.user("ann.lee@acmecorp.com").is_none());
    let (status, _) = send(&ctx, &token, Method::DELETE, &format!("users/{id}"), None).await;
    assert_eq!(status, 404);
}
