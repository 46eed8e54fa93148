//! The fake holds 100,000 users and 2,000 groups and serves their pages
//! cheaply, so benchmarks measure the connector, not the fake.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Instant;

use common::*;
use serde_json::Value;

async fn page_through(ctx: &Ctx, path: &str, key: &str, max: &str) -> (usize, usize) {
    let mut token: Option<String> = None;
    let (mut items, mut pages) = (0, 0);
    loop {
        let mut q = vec![("customer", "my_customer"), ("maxResults", max)];
        if let Some(t) = &token {
            q.push(("pageToken", t));
        }
        let body = ctx.dir_ok(path, &q).await;
        pages += 1;
        items += body[key].as_array().map(Vec::len).unwrap_or(0);
        match body.get("nextPageToken").and_then(Value::as_str) {
            Some(t) => token = Some(t.to_owned()),
            None => return (items, pages),
        }
    }
}

#[tokio::test]
async fn a_hundred_thousand_users_and_two_thousand_groups() {
    let ctx = Ctx::start().await;
    let started = Instant::now();
    ctx.google.seed_synthetic(100_000, 2_000, 50);
    let seeded = started.elapsed();

    let started = Instant::now();
    let (users, user_pages) = page_through(&ctx, "users", "users", "500").await;
    let (groups, group_pages) = page_through(&ctx, "groups", "groups", "200").await;
    let served = started.elapsed();
    assert_eq!((users, user_pages), (100_000, 200));
    assert_eq!((groups, group_pages), (2_000, 10));
    let members = ctx
        .dir_ok("groups/group1999@acmecorp.com/members", &[])
        .await;
    assert_eq!(members["members"].as_array().unwrap().len(), 50);
    let c = ctx.google.requests();
    assert_eq!((c.users, c.groups, c.members, c.rejected), (200, 10, 1, 0));
    println!("seeded in {seeded:?}; served 210 pages in {served:?}");
}
