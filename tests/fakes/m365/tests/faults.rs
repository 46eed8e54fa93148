//! Faults on command: 429 with Retry-After, 5xx, on Graph, Exchange and the
//! token endpoint; a fixed latency; request counters.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::{Duration, Instant};

use coexist_fake_m365::{Fault, RecipientType};
use common::*;
use serde_json::{json, Value};

#[tokio::test]
async fn a_429_burst_carries_retry_after_and_then_requests_are_served() {
    let ctx = Ctx::start().await;
    ctx.m365.set_retry_after(3);
    ctx.m365.fail_next(2, Fault::TooMany429);
    for _ in 0..2 {
        let r = ctx.get("/users").await;
        assert_eq!(r.headers()["retry-after"], "3");
        let (status, code, _) = graph_error(r).await;
        assert_eq!((status, code.as_str()), (429, "TooManyRequests"));
    }
    assert_eq!(ctx.get("/users").await.status(), 200);
    let c = ctx.m365.counters();
    assert_eq!((c.faults, c.graph_requests), (2, 3));
}

#[tokio::test]
async fn server_errors_have_graphs_codes() {
    let ctx = Ctx::start().await;
    for (fault, status, code) in [
        (Fault::ServerError500, 500, "generalException"),
        (Fault::Unavailable503, 503, "serviceNotAvailable"),
        (Fault::GatewayTimeout504, 504, "UnknownError"),
    ] {
        ctx.m365.fail_next(1, fault);
        let (s, c, _) = graph_error(ctx.get("/groups").await).await;
        assert_eq!((s, c.as_str()), (status, code), "{fault:?}");
    }
    assert_eq!(ctx.get("/groups").await.status(), 200);
}

#[tokio::test]
async fn exchange_faults_hit_invoke_command_only() {
    let ctx = Ctx::start().await;
    ctx.m365.fail_next_exchange(1, Fault::TooMany429);
    assert_eq!(ctx.get("/users").await.status(), 200);
    let r = ctx.invoke("Get-Recipient", json!({})).await;
    assert_eq!(r.status(), 429);
    assert!(r.headers().contains_key("retry-after"));
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "TooManyRequests");
    assert_eq!(ctx.invoke("Get-Recipient", json!({})).await.status(), 200);
    ctx.m365.fail_next_exchange(1, Fault::ServerError500);
    assert_eq!(ctx.invoke("Get-Recipient", json!({})).await.status(), 500);
}

#[tokio::test]
async fn the_token_endpoint_can_fail_too() {
    let ctx = Ctx::start().await;
    ctx.m365.fail_next_token(1, Fault::Unavailable503);
    let r = token_request(
        &ctx.m365,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", &ctx.m365.client_id()),
            ("client_secret", &ctx.m365.client_secret()),
            ("scope", GRAPH_SCOPE),
        ],
    )
    .await;
    assert_eq!(r.status(), 503);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"], "temporarily_unavailable");
    secret_token(&ctx.m365, GRAPH_SCOPE).await;
}

#[tokio::test]
async fn every_request_waits_the_fixed_latency() {
    let ctx = Ctx::start().await;
    ctx.m365.set_latency(Duration::from_millis(60));
    let started = Instant::now();
    assert_eq!(ctx.get("/users").await.status(), 200);
    assert_eq!(ctx.invoke("Get-Recipient", json!({})).await.status(), 200);
    assert!(started.elapsed() >= Duration::from_millis(120));
    ctx.m365.set_latency(Duration::ZERO);
}

#[tokio::test]
async fn counters_count_each_kind_and_reset() {
    let ctx = Ctx::start().await;
    let ann = ctx.user("ann", RecipientType::UserMailbox);
    ctx.m365.seed_synthetic(5, 2, 3);
    ctx.m365.reset_counters();
    ctx.get_json("/users").await;
    ctx.get_json("/groups/delta").await;
    ctx.get_json(&format!("/users/{ann}/contactFolders")).await;
    ctx.batch(vec![
        json!({"id": "1", "method": "GET", "url": "/groups"}),
        json!({"id": "2", "method": "GET", "url": "/users/delta()"}),
    ])
    .await;
    ctx.cmdlet("Get-Recipient", json!({})).await;
    ctx.cmdlet("Get-MailContact", json!({})).await;
    let _ = ctx.get("/users?$top=5000").await;
    let c = ctx.m365.counters();
    assert_eq!(c.graph_requests, 5);
    assert_eq!(c.graph_pages, 5);
    assert_eq!(c.pages_by_kind["users/delta"], 1);
    assert_eq!(c.pages_by_kind["contactFolders"], 1);
    assert_eq!((c.batch_requests, c.inner_batch_requests), (1, 2));
    assert_eq!(c.exchange_calls, 2);
    assert_eq!(c.exchange_by_cmdlet["Get-Recipient"], 1);
    assert_eq!(c.rejected, 1);
    assert_eq!(c.total, 7);
    ctx.m365.reset_counters();
    assert_eq!(ctx.m365.counters(), Default::default());
}

#[tokio::test]
async fn synthetic_seeding_is_deterministic_and_members_wrap_around() {
    let ctx = Ctx::start().await;
    ctx.m365.seed_synthetic(10, 3, 4);
    let body = ctx
        .get_json("/groups/00000002-0000-4000-8000-000000000002/members?$select=id,mail")
        .await;
    let mails: Vec<&str> = body["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["mail"].as_str().unwrap())
        .collect();
    assert_eq!(
        mails,
        vec![
            "user8@acmecorp.com",
            "user9@acmecorp.com",
            "user0@acmecorp.com",
            "user1@acmecorp.com"
        ]
    );
    let user = ctx
        .m365
        .user("00000001-0000-4000-8000-000000000003")
        .unwrap();
    assert_eq!(user.mail, "user3@acmecorp.com");
}
