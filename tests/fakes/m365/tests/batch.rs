//! JSON batching: at most 20 requests, each with its own status, a 429 inside
//! a 200, bodies that name their content type, dependencies.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use coexist_fake_m365::{Fault, RecipientType};
use common::*;
use serde_json::{json, Value};

async fn folder(ctx: &Ctx, user: &str) -> String {
    let r = ctx
        .send(
            reqwest::Method::POST,
            &format!("/users/{user}/contactFolders"),
            &json!({"displayName": "coexist"}),
        )
        .await;
    assert_eq!(r.status(), 201);
    let body: Value = r.json().await.unwrap();
    body["id"].as_str().unwrap().to_owned()
}

fn create(id: usize, user: &str, folder: &str) -> Value {
    json!({
        "id": id.to_string(),
        "method": "POST",
        "url": format!("/users/{user}/contactFolders/{folder}/contacts"),
        "headers": {"Content-Type": "application/json"},
        "body": {
            "givenName": format!("Person{id}"),
            "emailAddresses": [{"name": format!("Person {id}"), "address": format!("p{id}@elsewhere.example")}],
        },
    })
}

#[tokio::test]
async fn a_batch_of_21_requests_is_refused_whole() {
    let ctx = Ctx::start().await;
    let requests: Vec<Value> = (1..=21)
        .map(|i| json!({"id": i.to_string(), "method": "GET", "url": "/users?$top=1"}))
        .collect();
    let (status, code, message) = graph_error(ctx.batch(requests).await).await;
    assert_eq!((status, code.as_str()), (400, "BadRequest"));
    assert_eq!(
        message,
        "Number of requests inside batch exceeds the limit."
    );
    let requests: Vec<Value> = (1..=20)
        .map(|i| json!({"id": i.to_string(), "method": "GET", "url": "/users?$top=1"}))
        .collect();
    assert_eq!(ctx.batch(requests).await.status(), 200);
}

#[tokio::test]
async fn each_inner_request_gets_its_own_status_headers_and_body() {
    let ctx = Ctx::start().await;
    let ann = ctx.user("ann", RecipientType::UserMailbox);
    let f = folder(&ctx, &ann).await;
    ctx.m365.reset_counters();
    let r = ctx
        .batch(vec![
            create(1, &ann, &f),
            json!({"id": "2", "method": "GET", "url": "/users?$select=nope"}),
            json!({"id": "3", "method": "GET", "url": format!("/users/{ann}/contactFolders/{f}/contacts/missing")}),
            json!({"id": "4", "method": "GET", "url": "/users?$select=id,mail"}),
        ])
        .await;
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    let responses = body["responses"].as_array().unwrap();
    let by_id = |id: &str| responses.iter().find(|x| x["id"] == id).unwrap();
    assert_eq!(by_id("1")["status"], 201);
    assert_eq!(by_id("1")["body"]["givenName"], "Person1");
    assert_eq!(by_id("2")["status"], 400);
    assert_eq!(by_id("2")["body"]["error"]["code"], "BadRequest");
    assert_eq!(by_id("3")["status"], 404);
    assert_eq!(by_id("3")["body"]["error"]["code"], "ErrorItemNotFound");
    assert_eq!(by_id("4")["status"], 200);
    assert_eq!(by_id("4")["body"]["value"][0]["mail"], "ann@acmecorp.com");
    assert_eq!(ctx.m365.personal_contacts(&ann).len(), 1);
    let c = ctx.m365.counters();
    assert_eq!(
        (c.graph_requests, c.batch_requests, c.inner_batch_requests),
        (1, 1, 4)
    );
    assert_eq!(c.graph_writes, 1);
}

#[tokio::test]
async fn a_throttled_inner_request_answers_429_with_retry_after_inside_a_200_batch() {
    let ctx = Ctx::start().await;
    let ann = ctx.user("ann", RecipientType::UserMailbox);
    let f = folder(&ctx, &ann).await;
    ctx.m365.set_retry_after(7);
    ctx.m365.fail_next_in_batch(2, Fault::TooMany429);
    let requests: Vec<Value> = (1..=5).map(|i| create(i, &ann, &f)).collect();
    let r = ctx.batch(requests).await;
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    let statuses: Vec<u64> = body["responses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["status"].as_u64().unwrap())
        .collect();
    assert_eq!(statuses, vec![429, 429, 201, 201, 201]);
    let throttled = &body["responses"][0];
    assert_eq!(throttled["headers"]["Retry-After"], "7");
    assert_eq!(throttled["body"]["error"]["code"], "TooManyRequests");
    // Only the three that were served exist.
    assert_eq!(ctx.m365.personal_contacts(&ann).len(), 3);
    assert_eq!(ctx.m365.counters().faults, 2);
}

#[tokio::test]
async fn an_inner_body_without_a_content_type_is_refused_in_its_own_response() {
    let ctx = Ctx::start().await;
    let ann = ctx.user("ann", RecipientType::UserMailbox);
    let f = folder(&ctx, &ann).await;
    let mut request = create(1, &ann, &f);
    request.as_object_mut().unwrap().remove("headers");
    let body: Value = ctx.batch(vec![request]).await.json().await.unwrap();
    assert_eq!(body["responses"][0]["status"], 400);
    assert!(ctx.m365.personal_contacts(&ann).is_empty());
}

#[tokio::test]
async fn a_request_whose_dependency_failed_answers_424() {
    let ctx = Ctx::start().await;
    let r = ctx
        .batch(vec![
            json!({"id": "1", "method": "GET", "url": "/groups/00000000-0000-0000-0000-000000000000"}),
            json!({"id": "2", "method": "GET", "url": "/users", "dependsOn": ["1"]}),
        ])
        .await;
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["responses"][0]["status"], 404);
    assert_eq!(body["responses"][1]["status"], 424);
}

#[tokio::test]
async fn a_malformed_batch_is_refused() {
    let ctx = Ctx::start().await;
    let r = ctx
        .send(
            reqwest::Method::POST,
            "/$batch",
            &json!({"requests": [{"id": "1"}]}),
        )
        .await;
    assert_eq!(graph_error(r).await.0, 400);
    let r = ctx
        .batch(vec![
            json!({"id": "1", "method": "GET", "url": "/users"}),
            json!({"id": "1", "method": "GET", "url": "/groups"}),
        ])
        .await;
    assert_eq!(graph_error(r).await.0, 400);
}
