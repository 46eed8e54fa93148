//! The tenant size of the benchmark: 100,000 users and 2,000 groups read in
//! the fewest pages the page size allows.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Instant;

use common::*;
use serde_json::Value;

async fn pull(ctx: &Ctx, first: &str) -> (usize, usize) {
    let mut url = first.to_owned();
    let (mut items, mut pages) = (0, 0);
    loop {
        let r = ctx.get_url(&url).await;
        assert_eq!(r.status(), 200);
        let body: Value = r.json().await.unwrap();
        pages += 1;
        items += body["value"].as_array().unwrap().len();
        match body["@odata.nextLink"].as_str() {
            Some(next) => url = next.to_owned(),
            None => return (items, pages),
        }
    }
}

#[tokio::test]
async fn a_full_pull_of_100000_users_and_2000_groups_takes_the_minimum_pages() {
    let ctx = Ctx::start().await;
    let started = Instant::now();
    ctx.m365.seed_synthetic(100_000, 2_000, 20);
    let seeded = started.elapsed();
    ctx.m365.reset_counters();
    let graph = ctx.m365.graph_url();
    let started = Instant::now();
    let (users, user_pages) = pull(
        &ctx,
        &format!("{graph}/users/delta?$select=id,mail,proxyAddresses,displayName&$top=999"),
    )
    .await;
    let (groups, group_pages) = pull(
        &ctx,
        &format!("{graph}/groups/delta?$select=id,mail,displayName,members&$top=999"),
    )
    .await;
    let pulled = started.elapsed();
    assert_eq!((users, user_pages), (100_000, 100_000usize.div_ceil(999)));
    assert_eq!((groups, group_pages), (2_000, 2_000usize.div_ceil(999)));
    assert_eq!(
        ctx.m365.counters().graph_requests as usize,
        user_pages + group_pages
    );
    eprintln!("seeded in {seeded:?}, pulled in {pulled:?}");
}
