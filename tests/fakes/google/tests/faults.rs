//! Fault injection: the documented error answers
//! (https://developers.google.com/admin-sdk/directory/v1/limits), slow replies,
//! and a listing that fails half-way.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::{Duration, Instant};

use coexist_fake_google::Fault;
use common::*;
use reqwest::Method;
use serde_json::Value;

const Q: [(&str, &str); 1] = [("customer", "my_customer")];

#[tokio::test]
async fn each_fault_has_its_documented_status_body_and_header() {
    let ctx = Ctx::start().await;
    for (fault, code, reason, domain) in [
        (
            Fault::RateLimit403,
            403,
            "userRateLimitExceeded",
            "usageLimits",
        ),
        (Fault::Quota403, 403, "quotaExceeded", "usageLimits"),
        (Fault::TooMany429, 429, "rateLimitExceeded", "usageLimits"),
        (Fault::ServerError500, 500, "backendError", "global"),
        (Fault::Unavailable503, 503, "backendError", "global"),
        (Fault::Forbidden403, 403, "forbidden", "global"),
    ] {
        ctx.google.fail_next(1, fault);
        let r = ctx.dir("users", &Q).await;
        assert_eq!(r.status().as_u16(), code, "{fault:?}");
        assert_eq!(
            r.headers().contains_key("retry-after"),
            fault == Fault::TooMany429
        );
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["error"]["code"], code);
        assert_eq!(body["error"]["errors"][0]["reason"], reason);
        assert_eq!(body["error"]["errors"][0]["domain"], domain);
        assert!(body["error"]["message"].as_str().unwrap().len() > 5);
        // The next request is served normally.
        assert_eq!(ctx.dir("users", &Q).await.status(), 200);
    }
    assert_eq!(ctx.google.requests().faults, 6);
}

#[tokio::test]
async fn faults_apply_to_the_next_n_requests_of_any_api_but_not_the_token_endpoint() {
    let ctx = Ctx::start().await;
    ctx.google.fail_next(3, Fault::RateLimit403);
    let assertion = sign(&ctx.google.service_account_key_json(), &claims(&ctx.google));
    assert_eq!(exchange(&ctx.google, &assertion).await.status(), 200);
    assert_eq!(ctx.dir("groups", &Q).await.status(), 403);
    let r = ctx
        .gdata(Method::GET, &ctx.feed_url())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(
        r.headers()["content-type"],
        "application/vnd.google.gdata.error+xml"
    );
    assert!(r
        .text()
        .await
        .unwrap()
        .contains("<code>userRateLimitExceeded</code>"));
    assert_eq!(
        ctx.dir("customer/my_customer/domains", &[]).await.status(),
        403
    );
    assert_eq!(ctx.dir("users", &Q).await.status(), 200);

    ctx.google.fail_next_token(1, Fault::Unavailable503);
    assert_eq!(exchange(&ctx.google, &assertion).await.status(), 503);
    assert_eq!(exchange(&ctx.google, &assertion).await.status(), 200);
}

#[tokio::test]
async fn a_listing_fails_after_n_pages_once() {
    let ctx = Ctx::start().await;
    ctx.google.seed_synthetic(25, 0, 0);
    ctx.google.fail_listing_after_pages(2, false);
    let first = ctx
        .dir_ok(
            "users",
            &[("customer", "my_customer"), ("maxResults", "10")],
        )
        .await;
    let t2 = first["nextPageToken"].as_str().unwrap().to_owned();
    let second = ctx
        .dir_ok(
            "users",
            &[
                ("customer", "my_customer"),
                ("maxResults", "10"),
                ("pageToken", &t2),
            ],
        )
        .await;
    let t3 = second["nextPageToken"].as_str().unwrap().to_owned();
    let q3 = [
        ("customer", "my_customer"),
        ("maxResults", "10"),
        ("pageToken", t3.as_str()),
    ];
    let r = ctx.dir("users", &q3).await;
    assert_eq!(r.status(), 500);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["errors"][0]["reason"], "backendError");
    // The retry succeeds and ends the listing.
    let third = ctx.dir_ok("users", &q3).await;
    assert_eq!(third["users"].as_array().unwrap().len(), 5);
    assert!(third.get("nextPageToken").is_none());
}

#[tokio::test]
async fn a_persistent_listing_fault_fails_every_retry() {
    let ctx = Ctx::start().await;
    ctx.google.seed_synthetic(30, 3, 30);
    ctx.google.fail_listing_after_pages(1, true);
    let first = ctx
        .dir_ok(
            "groups/group0@acmecorp.com/members",
            &[("maxResults", "10")],
        )
        .await;
    let t2 = first["nextPageToken"].as_str().unwrap().to_owned();
    for _ in 0..3 {
        let r = ctx
            .dir(
                "groups/group0@acmecorp.com/members",
                &[("maxResults", "10"), ("pageToken", &t2)],
            )
            .await;
        assert_eq!(r.status(), 500);
    }
    // First pages still work, for every kind of listing.
    assert_eq!(ctx.dir("groups", &Q).await.status(), 200);
    ctx.google.clear_faults();
    let r = ctx
        .dir(
            "groups/group0@acmecorp.com/members",
            &[("maxResults", "10"), ("pageToken", &t2)],
        )
        .await;
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn latency_is_added_to_every_request() {
    // A latency far above what a loaded machine adds by itself, so the
    // second request tells "no latency" apart.
    let latency = Duration::from_millis(1500);
    let ctx = Ctx::start().await;
    ctx.google.set_latency(latency);
    let started = Instant::now();
    assert_eq!(ctx.dir("users", &Q).await.status(), 200);
    assert!(started.elapsed() >= latency);
    ctx.google.set_latency(Duration::ZERO);
    let started = Instant::now();
    assert_eq!(ctx.dir("users", &Q).await.status(), 200);
    assert!(started.elapsed() < latency);
}

#[tokio::test]
async fn retry_after_is_configurable_and_counts_reset() {
    let ctx = Ctx::start().await;
    ctx.google.set_retry_after(7);
    ctx.google.fail_next(1, Fault::TooMany429);
    let r = ctx.dir("users", &Q).await;
    assert_eq!(r.headers()["retry-after"], "7");
    let counts = ctx.google.requests();
    assert_eq!((counts.users, counts.total, counts.faults), (1, 1, 1));
    ctx.google.reset_counts();
    assert_eq!(ctx.google.requests(), Default::default());
}

#[tokio::test]
async fn an_unreachable_token_endpoint_refuses_or_hangs_up_without_an_answer() {
    use coexist_fake_google::UnreachableEndpoint;
    let client = reqwest::Client::new();

    let closed = UnreachableEndpoint::closed().await.unwrap();
    let error = client.post(closed.token_uri()).send().await.unwrap_err();
    assert!(error.is_connect(), "{error:?}");
    assert_eq!(closed.connections(), 0);

    let hanging_up = UnreachableEndpoint::hanging_up().await.unwrap();
    for _ in 0..2 {
        let result = client.post(hanging_up.token_uri()).send().await;
        assert!(result.is_err(), "{result:?}");
    }
    assert_eq!(hanging_up.connections(), 2);

    let ctx = Ctx::start().await;
    let key: Value = serde_json::from_str(
        &ctx.google
            .service_account_key_json_with_token_uri(&hanging_up.token_uri()),
    )
    .unwrap();
    assert_eq!(key["token_uri"], hanging_up.token_uri());
}
