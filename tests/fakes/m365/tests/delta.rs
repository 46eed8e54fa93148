//! Delta queries: pages by next link then a delta link; changes, `@removed`
//! and `members@delta` after a change; 410 after the delta state expired.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use coexist_fake_m365::{FakeGroup, RecipientType};
use common::*;
use serde_json::Value;

/// Follows next links to the delta link; returns the items and the delta link.
async fn drain(ctx: &Ctx, first: &str) -> (Vec<Value>, String, usize) {
    let mut url = first.to_owned();
    let mut items = Vec::new();
    let mut pages = 0;
    loop {
        let r = ctx.get_url(&url).await;
        let status = r.status();
        let body: Value = r.json().await.unwrap();
        assert_eq!(status, 200, "{body}");
        pages += 1;
        items.extend(body["value"].as_array().unwrap().iter().cloned());
        if let Some(next) = body["@odata.nextLink"].as_str() {
            assert!(
                body.get("@odata.deltaLink").is_none(),
                "a page has one link"
            );
            url = next.to_owned();
            continue;
        }
        let delta = body["@odata.deltaLink"]
            .as_str()
            .expect("the last page has a delta link");
        assert!(delta.contains("$deltatoken="), "{delta}");
        return (items, delta.to_owned(), pages);
    }
}

#[tokio::test]
async fn users_delta_pages_by_next_link_then_gives_a_delta_link() {
    let ctx = Ctx::start().await;
    ctx.m365.seed_synthetic(250, 0, 0);
    let first = format!(
        "{}/users/delta?$select=id,mail,displayName&$top=100",
        ctx.m365.graph_url()
    );
    let (items, _, pages) = drain(&ctx, &first).await;
    assert_eq!((items.len(), pages), (250, 3));
    assert!(items
        .iter()
        .all(|u| u["id"].is_string() && u["mail"].is_string()));
    // The $select is remembered by the links: nothing else comes back.
    assert!(items.iter().all(|u| u.as_object().unwrap().len() == 3));
}

#[tokio::test]
async fn a_delta_link_returns_only_the_changes_with_removed_users() {
    let ctx = Ctx::start().await;
    let ann = ctx.user("ann", RecipientType::UserMailbox);
    let bob = ctx.user("bob", RecipientType::UserMailbox);
    let eve = ctx.user("eve", RecipientType::UserMailbox);
    let _carl = ctx.user("carl", RecipientType::UserMailbox);
    let (_, delta, _) = drain(
        &ctx,
        &format!("{}/users/delta?$select=id,jobTitle", ctx.m365.graph_url()),
    )
    .await;

    // Nothing changed: an empty round.
    let (items, delta, _) = drain(&ctx, &delta).await;
    assert!(items.is_empty(), "{items:?}");

    assert!(ctx.m365.update_user(&ann, |u| u.job_title = "CEO".into()));
    assert!(ctx.m365.remove_user(&bob));
    assert!(ctx.m365.purge_user(&eve));
    let dan = ctx.user("dan", RecipientType::UserMailbox);
    let (items, delta, _) = drain(&ctx, &delta).await;
    assert_eq!(items.len(), 4, "{items:?}");
    let by_id = |id: &str| items.iter().find(|i| i["id"] == id).unwrap().clone();
    assert_eq!(by_id(&ann)["jobTitle"], "CEO");
    assert_eq!(by_id(&bob)["@removed"]["reason"], "changed");
    assert_eq!(by_id(&eve)["@removed"]["reason"], "deleted");
    assert!(by_id(&dan).get("@removed").is_none());

    let (items, _, _) = drain(&ctx, &delta).await;
    assert!(items.is_empty());
}

#[tokio::test]
async fn groups_delta_carries_members_delta_with_removed_members() {
    let ctx = Ctx::start().await;
    let ann = ctx.user("ann", RecipientType::UserMailbox);
    let bob = ctx.user("bob", RecipientType::UserMailbox);
    let g = ctx.m365.add_group(FakeGroup {
        display_name: "Sales".into(),
        mail: "sales@acmecorp.com".into(),
        mail_enabled: true,
        ..FakeGroup::default()
    });
    let quiet = ctx.m365.add_group(FakeGroup {
        display_name: "Quiet".into(),
        ..FakeGroup::default()
    });
    ctx.m365.add_member(&g, &ann);
    let first = format!(
        "{}/groups/delta?$select=id,displayName,mail,members",
        ctx.m365.graph_url()
    );
    let (items, delta, _) = drain(&ctx, &first).await;
    assert_eq!(items.len(), 2);
    let sales = items.iter().find(|i| i["id"] == g.as_str()).unwrap();
    assert_eq!(sales["members@delta"][0]["id"], ann.as_str());
    assert_eq!(
        sales["members@delta"][0]["@odata.type"],
        "#microsoft.graph.user"
    );

    ctx.m365.remove_member(&g, &ann);
    ctx.m365.add_member(&g, &bob);
    let (items, delta, _) = drain(&ctx, &delta).await;
    assert_eq!(items.len(), 1, "only the changed group: {items:?}");
    let members = items[0]["members@delta"].as_array().unwrap();
    let removed = members.iter().find(|m| m["id"] == ann.as_str()).unwrap();
    assert_eq!(removed["@removed"]["reason"], "deleted");
    let added = members.iter().find(|m| m["id"] == bob.as_str()).unwrap();
    assert!(added.get("@removed").is_none());

    assert!(ctx.m365.remove_group(&quiet));
    let (items, _, _) = drain(&ctx, &delta).await;
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["id"], quiet.as_str());
    assert_eq!(items[0]["@removed"]["reason"], "deleted");
}

#[tokio::test]
async fn the_sdk_spelling_delta_with_parentheses_is_served() {
    let ctx = Ctx::start().await;
    ctx.user("ann", RecipientType::UserMailbox);
    let body = ctx.get_json("/users/delta()?$select=id").await;
    assert_eq!(body["value"].as_array().unwrap().len(), 1);
    assert!(body["@odata.deltaLink"].is_string());
    let body = ctx.get_json("/groups/microsoft.graph.delta()").await;
    assert!(body["@odata.deltaLink"].is_string());
}

#[tokio::test]
async fn deltatoken_latest_gives_a_delta_link_and_no_data() {
    let ctx = Ctx::start().await;
    ctx.user("ann", RecipientType::UserMailbox);
    let body = ctx
        .get_json("/users/delta?$deltatoken=latest&$select=id")
        .await;
    assert!(body["value"].as_array().unwrap().is_empty());
    let later = ctx.user("bob", RecipientType::UserMailbox);
    let (items, _, _) = drain(&ctx, body["@odata.deltaLink"].as_str().unwrap()).await;
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["id"], later.as_str());
}

#[tokio::test]
async fn an_expired_delta_link_answers_410_sync_state_not_found_with_where_to_start_again() {
    let ctx = Ctx::start().await;
    ctx.m365.seed_synthetic(30, 0, 0);
    let first = format!("{}/users/delta?$select=id&$top=10", ctx.m365.graph_url());
    let r = ctx.get_url(&first).await;
    let page: Value = r.json().await.unwrap();
    let next = page["@odata.nextLink"].as_str().unwrap().to_owned();
    let (_, delta, _) = drain(&ctx, &first).await;

    ctx.m365.expire_delta_links();
    let r = ctx.get_url(&delta).await;
    let location = r.headers()["location"].to_str().unwrap().to_owned();
    let (status, code, message) = graph_error(r).await;
    assert_eq!((status, code.as_str()), (410, "syncStateNotFound"));
    assert!(message.contains("The delta token is expired"), "{message}");
    assert!(location.ends_with("/users/delta"), "{location}");
    // A next link of a round that started before is gone too.
    assert_eq!(graph_error(ctx.get_url(&next).await).await.0, 410);
    // A full sync starts again and gives a working delta link.
    let (items, delta, _) = drain(&ctx, &first).await;
    assert_eq!(items.len(), 30);
    assert_eq!(ctx.get_url(&delta).await.status(), 200);
}

#[tokio::test]
async fn a_delta_round_counts_the_pages_its_changes_need() {
    let ctx = Ctx::start().await;
    ctx.m365.seed_synthetic(2000, 0, 0);
    let first = format!(
        "{}/users/delta?$select=id,mail&$top=999",
        ctx.m365.graph_url()
    );
    let (items, delta, pages) = drain(&ctx, &first).await;
    assert_eq!((items.len(), pages), (2000, 3));
    for n in 0..150 {
        let id = format!("00000001-0000-4000-8000-{n:012x}");
        assert!(ctx.m365.update_user(&id, |u| u.department = "Moved".into()));
    }
    ctx.m365.reset_counters();
    let (items, _, pages) = drain(&ctx, &delta).await;
    assert_eq!((items.len(), pages), (150, 1));
    assert_eq!(ctx.m365.counters().pages_by_kind["users/delta"], 1);
}
