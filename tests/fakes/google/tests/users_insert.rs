//! users.insert and users.aliases.insert as the reference pages describe
//! them (https://developers.google.com/admin-sdk/directory/reference/rest/v1/users/insert,
//! …/users.aliases/insert): what the discovery document requires, what
//! Google refuses.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use serde_json::{json, Value};

const USER: &str = "https://www.googleapis.com/auth/admin.directory.user";

async fn post(ctx: &Ctx, token: &str, path: &str, body: &Value) -> (u16, Value) {
    let r = ctx
        .http
        .post(format!("{}{path}", ctx.google.directory_url()))
        .bearer_auth(token)
        .json(body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

fn ann() -> Value {
    json!({
        "primaryEmail": "ann@acmecorp.com",
        "name": { "givenName": "Ann", "familyName": "Lee" },
        "password": "Initial-Pw-4711",
        "changePasswordAtNextLogin": true,
        "orgUnitPath": "/Sales",
    })
}

#[tokio::test]
async fn a_user_is_inserted_with_the_write_scope_only_and_listed_after() {
    let ctx = Ctx::start().await;
    // The read-only token of coexist's reads may not create users.
    let (status, _) = post(&ctx, &ctx.token, "users", &ann()).await;
    assert_eq!(status, 403);
    let token = ctx.google.mint_token(&[USER]);
    let (status, user) = post(&ctx, &token, "users", &ann()).await;
    assert_eq!(status, 200, "{user}");
    assert_eq!(user["primaryEmail"], "ann@acmecorp.com");
    assert_eq!(user["orgUnitPath"], "/Sales");
    assert_eq!(user["changePasswordAtNextLogin"], true);
    assert!(
        user.get("password").is_none(),
        "the password is never sent back"
    );
    let (status, alias) = post(
        &ctx,
        &token,
        "users/ann@acmecorp.com/aliases",
        &json!({ "alias": "a.lee@acmecorp.com" }),
    )
    .await;
    assert_eq!(status, 200, "{alias}");
    assert_eq!(alias["kind"], "admin#directory#alias");
    let listed = ctx.dir_ok("users/a.lee@acmecorp.com", &[]).await;
    assert_eq!(listed["primaryEmail"], "ann@acmecorp.com");
    assert_eq!(listed["aliases"][0], "a.lee@acmecorp.com");
    // The same address again, as a user or an alias: 409.
    assert_eq!(post(&ctx, &token, "users", &ann()).await.0, 409);
    let mut bob = ann();
    bob["primaryEmail"] = json!("bob@acmecorp.com");
    assert_eq!(post(&ctx, &token, "users", &bob).await.0, 200);
    let (status, body) = post(
        &ctx,
        &token,
        "users/bob@acmecorp.com/aliases",
        &json!({ "alias": "a.lee@acmecorp.com" }),
    )
    .await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"]["errors"][0]["reason"], "duplicate");
}

/// A change to the request body.
type Change = Box<dyn Fn(&mut Value)>;

#[tokio::test]
async fn what_google_rejects_is_rejected() {
    let ctx = Ctx::start().await;
    let token = ctx.google.mint_token(&[USER]);
    let cases: Vec<(&str, Change, &str)> = vec![
        (
            "no password (required by the discovery document)",
            Box::new(|u| {
                u.as_object_mut().unwrap().remove("password");
            }),
            "password is required",
        ),
        (
            "no family name",
            Box::new(|u| {
                u["name"].as_object_mut().unwrap().remove("familyName");
            }),
            "name.familyName is required",
        ),
        (
            "an unknown field",
            Box::new(|u| u["mailbox"] = json!(true)),
            "Unknown name \"mailbox\"",
        ),
        (
            "a field of the wrong type",
            Box::new(|u| u["changePasswordAtNextLogin"] = json!("yes")),
            "changePasswordAtNextLogin",
        ),
        (
            "a password of fewer than 8 characters",
            Box::new(|u| u["password"] = json!("short")),
            "Invalid Password",
        ),
        (
            "a domain the customer does not own",
            Box::new(|u| u["primaryEmail"] = json!("ann@elsewhere.example")),
            "Domain not found",
        ),
        (
            "an org unit path not starting with /",
            Box::new(|u| u["orgUnitPath"] = json!("Sales")),
            "INVALID_OU_ID",
        ),
    ];
    for (what, change, expected) in cases {
        let mut user = ann();
        change(&mut user);
        let (status, body) = post(&ctx, &token, "users", &user).await;
        assert_eq!(status, 400, "{what}: {body}");
        let message = body["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains(expected), "{what}: {message}");
    }
    assert!(ctx.google.user("ann@acmecorp.com").is_none());
}

#[tokio::test]
async fn a_user_is_suspended_by_patch_and_unknown_fields_are_refused() {
    let ctx = Ctx::start().await;
    let token = ctx.google.mint_token(&[USER]);
    assert_eq!(post(&ctx, &token, "users", &ann()).await.0, 200);
    let patch = |body: Value| {
        let request = ctx
            .http
            .patch(format!(
                "{}users/ann@acmecorp.com",
                ctx.google.directory_url()
            ))
            .bearer_auth(&token)
            .json(&body);
        async move {
            let r = request.send().await.unwrap();
            let status = r.status().as_u16();
            (status, r.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    let (status, user) = patch(json!({ "suspended": true })).await;
    assert_eq!(status, 200, "{user}");
    assert_eq!(user["suspended"], true);
    assert!(ctx.google.user("ann@acmecorp.com").unwrap().suspended);
    assert_eq!(patch(json!({ "suspended": "yes" })).await.0, 400);
    assert_eq!(patch(json!({ "colour": "red" })).await.0, 400);
}
