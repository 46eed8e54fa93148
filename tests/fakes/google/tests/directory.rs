//! The Directory API as the reference pages describe it
//! (https://developers.google.com/admin-sdk/directory/reference/rest/v1/users/list,
//! …/groups/list, …/members/list, …/domains/list, …/domainAliases/list).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::HashSet;

use coexist_fake_google::{FakeGroup, FakeUser, MemberType};
use common::*;
use serde_json::Value;

fn ann() -> FakeUser {
    FakeUser {
        primary_email: "ann@acmecorp.com".into(),
        given_name: "Ann".into(),
        family_name: "Lee".into(),
        aliases: vec!["a.lee@acmecorp.com".into()],
        non_editable_aliases: vec!["ann@acmecorp.com.test-google-a.com".into()],
        phones: vec![("work".into(), "+1 555 0100".into())],
        title: "CFO".into(),
        department: "Finance".into(),
        organization: "Acme".into(),
        ..FakeUser::default()
    }
}

/// Follows nextPageToken to the end; returns the items and the page count.
async fn list_all(ctx: &Ctx, path: &str, key: &str, query: &[(&str, &str)]) -> (Vec<Value>, usize) {
    let mut items = Vec::new();
    let mut token: Option<String> = None;
    let mut pages = 0;
    loop {
        let mut q: Vec<(&str, &str)> = query.to_vec();
        if let Some(t) = &token {
            q.push(("pageToken", t));
        }
        let body = ctx.dir_ok(path, &q).await;
        pages += 1;
        items.extend(body[key].as_array().cloned().unwrap_or_default());
        match body.get("nextPageToken").and_then(Value::as_str) {
            Some(t) => token = Some(t.to_owned()),
            None => return (items, pages),
        }
    }
}

#[tokio::test]
async fn paging_through_users_gives_every_user_once() {
    let ctx = Ctx::start().await;
    ctx.google.seed_synthetic(1234, 0, 0);
    let (users, pages) = list_all(
        &ctx,
        "users",
        "users",
        &[("customer", "my_customer"), ("maxResults", "500")],
    )
    .await;
    assert_eq!(pages, 3);
    assert_eq!(users.len(), 1234);
    let ids: HashSet<&str> = users.iter().map(|u| u["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), 1234);
    assert_eq!(ctx.google.requests().users, 3);
}

#[tokio::test]
async fn the_default_page_is_100_users_and_the_last_page_has_no_token() {
    let ctx = Ctx::start().await;
    ctx.google.seed_synthetic(150, 0, 0);
    let first = ctx.dir_ok("users", &[("customer", "my_customer")]).await;
    assert_eq!(first["users"].as_array().unwrap().len(), 100);
    assert_eq!(first["kind"], "admin#directory#users");
    let token = first["nextPageToken"].as_str().unwrap();
    let last = ctx
        .dir_ok(
            "users",
            &[("customer", "my_customer"), ("pageToken", token)],
        )
        .await;
    assert_eq!(last["users"].as_array().unwrap().len(), 50);
    assert!(last.get("nextPageToken").is_none());
}

#[tokio::test]
async fn a_user_carries_the_documented_fields() {
    let ctx = Ctx::start().await;
    ctx.google.add_user(ann());
    let body = ctx
        .dir_ok(
            "users",
            &[("domain", "acmecorp.com"), ("projection", "full")],
        )
        .await;
    let u = &body["users"][0];
    assert_eq!(u["kind"], "admin#directory#user");
    assert_eq!(u["primaryEmail"], "ann@acmecorp.com");
    assert_eq!(u["name"]["fullName"], "Ann Lee");
    assert_eq!(u["aliases"][0], "a.lee@acmecorp.com");
    assert_eq!(
        u["nonEditableAliases"][0],
        "ann@acmecorp.com.test-google-a.com"
    );
    assert_eq!(u["suspended"], false);
    assert_eq!(u["archived"], false);
    assert_eq!(u["isMailboxSetup"], true);
    assert_eq!(u["orgUnitPath"], "/");
    assert_eq!(u["phones"][0]["value"], "+1 555 0100");
    assert_eq!(u["phones"][0]["type"], "work");
    assert_eq!(u["organizations"][0]["title"], "CFO");
    assert_eq!(u["organizations"][0]["department"], "Finance");
    assert_eq!(u["organizations"][0]["primary"], true);
    assert_eq!(u["emails"][0]["primary"], true);
    assert!(u["etag"].as_str().unwrap().starts_with('"'));
    assert_eq!(u["id"].as_str().unwrap().len(), 21);

    // users.get by primary email, alias or id.
    let id = u["id"].as_str().unwrap().to_owned();
    for key in ["ann@acmecorp.com", "a.lee@acmecorp.com", id.as_str()] {
        let got = ctx.dir_ok(&format!("users/{key}"), &[]).await;
        assert_eq!(got["id"], id.as_str());
    }
    let r = ctx.dir("users/nobody@acmecorp.com", &[]).await;
    assert_eq!(r.status(), 404);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["errors"][0]["reason"], "notFound");
}

#[tokio::test]
async fn the_etag_changes_when_the_user_changes() {
    let ctx = Ctx::start().await;
    ctx.google.add_user(ann());
    let before = ctx.dir_ok("users/ann@acmecorp.com", &[]).await["etag"].clone();
    let same = ctx.dir_ok("users/ann@acmecorp.com", &[]).await["etag"].clone();
    assert_eq!(before, same);
    ctx.google
        .update_user("ann@acmecorp.com", |u| u.suspended = true);
    let after = ctx.dir_ok("users/ann@acmecorp.com", &[]).await;
    assert_ne!(before, after["etag"]);
    assert_eq!(after["suspended"], true);
}

#[tokio::test]
async fn page_sizes_over_the_documented_maximum_are_400() {
    let ctx = Ctx::start().await;
    ctx.google.add_group(FakeGroup {
        email: "all@acmecorp.com".into(),
        ..FakeGroup::default()
    });
    for (path, scope, max, over) in [
        ("users", Some(("customer", "my_customer")), "500", "501"),
        ("groups", Some(("customer", "my_customer")), "200", "201"),
        ("groups/all@acmecorp.com/members", None, "200", "201"),
    ] {
        let query = |n| {
            scope
                .into_iter()
                .chain([("maxResults", n)])
                .collect::<Vec<_>>()
        };
        let ok = ctx.dir(path, &query(max)).await;
        assert_eq!(ok.status(), 200, "{path} at {max}");
        let r = ctx.dir(path, &query(over)).await;
        assert_eq!(r.status(), 400, "{path} at {over}");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["error"]["errors"][0]["reason"], "invalid");
        assert_eq!(body["error"]["errors"][0]["location"], "maxResults");
        assert!(body["error"]["message"]
            .as_str()
            .unwrap()
            .contains(&format!("[1, {max}]")));
    }
    let r = ctx
        .dir("users", &[("customer", "my_customer"), ("maxResults", "0")])
        .await;
    assert_eq!(r.status(), 400);
}

#[tokio::test]
async fn unknown_parameters_and_bad_values_are_400() {
    let ctx = Ctx::start().await;
    let r = ctx
        .dir("users", &[("customer", "my_customer"), ("pageSize", "10")])
        .await;
    assert_eq!(r.status(), 400);
    let body: Value = r.json().await.unwrap();
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("Unknown name \"pageSize\""));
    assert_eq!(body["error"]["status"], "INVALID_ARGUMENT");

    for q in [
        [("customer", "my_customer"), ("projection", "everything")],
        [("customer", "my_customer"), ("maxResults", "ten")],
        [("customer", "my_customer"), ("pageToken", "garbage")],
        [("customer", "my_customer"), ("viewType", "everyone")],
    ] {
        assert_eq!(ctx.dir("users", &q).await.status(), 400, "{q:?}");
    }
    // Neither customer nor domain.
    assert_eq!(ctx.dir("users", &[]).await.status(), 400);
    // Someone else's customer or domain.
    assert_eq!(
        ctx.dir("users", &[("customer", "C999")]).await.status(),
        403
    );
    assert_eq!(
        ctx.dir("users", &[("domain", "example.org")])
            .await
            .status(),
        403
    );
    // Path parameters are not query parameters.
    assert_eq!(
        ctx.dir("users", &[("customer", "my_customer"), ("userKey", "x")])
            .await
            .status(),
        400
    );
    // Every users.list parameter of the discovery document is accepted.
    let all = [
        ("customer", "my_customer"),
        ("maxResults", "10"),
        ("orderBy", "email"),
        ("sortOrder", "DESCENDING"),
        ("projection", "full"),
        ("viewType", "admin_view"),
        ("showDeleted", "false"),
        ("query", "isSuspended=false"),
        ("prettyPrint", "false"),
        ("quotaUser", "coexist"),
        ("event", "add"),
    ];
    assert_eq!(ctx.dir("users", &all).await.status(), 200);
    assert!(ctx.google.requests().rejected >= 9);
}

#[tokio::test]
async fn fields_filters_the_json_and_rejects_unknown_fields() {
    let ctx = Ctx::start().await;
    ctx.google.seed_synthetic(3, 0, 0);
    let body = ctx
        .dir_ok(
            "users",
            &[
                ("customer", "my_customer"),
                ("maxResults", "2"),
                (
                    "fields",
                    "nextPageToken,users(id,primaryEmail,name/fullName,phones(value))",
                ),
            ],
        )
        .await;
    let keys: Vec<&String> = body.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["nextPageToken", "users"]);
    let u = body["users"][0].as_object().unwrap();
    let mut ukeys: Vec<&String> = u.keys().collect();
    ukeys.sort();
    assert_eq!(ukeys, ["id", "name", "phones", "primaryEmail"]);
    assert_eq!(u["name"].as_object().unwrap().len(), 1);
    assert_eq!(u["name"]["fullName"], "Given0 Family0");
    assert_eq!(u["phones"][0].as_object().unwrap().len(), 1);

    for bad in [
        "users(id,mailbox)",
        "nextPageToken,userz",
        "users(name/nickname)",
        "users(phones(colour))",
        "users(id",
        "users(id/sub)",
    ] {
        let r = ctx
            .dir("users", &[("customer", "my_customer"), ("fields", bad)])
            .await;
        assert_eq!(r.status(), 400, "{bad}");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["error"]["errors"][0]["location"], "fields", "{bad}");
    }
    // Groups and members are checked against their own schemas.
    let ok = ctx
        .dir(
            "groups",
            &[
                ("customer", "my_customer"),
                (
                    "fields",
                    "groups(id,email,aliases,directMembersCount),nextPageToken",
                ),
            ],
        )
        .await;
    assert_eq!(ok.status(), 200);
    let bad = ctx
        .dir(
            "groups",
            &[
                ("customer", "my_customer"),
                ("fields", "groups(primaryEmail)"),
            ],
        )
        .await;
    assert_eq!(bad.status(), 400);
}

#[tokio::test]
async fn groups_and_members_page_and_nest() {
    let ctx = Ctx::start().await;
    ctx.google.seed_synthetic(500, 450, 3);
    let (groups, pages) = list_all(&ctx, "groups", "groups", &[("customer", "my_customer")]).await;
    assert_eq!((groups.len(), pages), (450, 3));
    assert_eq!(groups[0]["kind"], "admin#directory#group");
    assert_eq!(groups[0]["directMembersCount"], "3");

    ctx.google.add_group(FakeGroup {
        email: "outer@acmecorp.com".into(),
        name: "Outer".into(),
        aliases: vec!["o@acmecorp.com".into()],
        ..FakeGroup::default()
    });
    ctx.google.add_group(FakeGroup {
        email: "inner@acmecorp.com".into(),
        name: "Inner".into(),
        ..FakeGroup::default()
    });
    ctx.google
        .add_member("outer@acmecorp.com", "user1@acmecorp.com", MemberType::User);
    ctx.google.add_member(
        "outer@acmecorp.com",
        "inner@acmecorp.com",
        MemberType::Group,
    );
    ctx.google
        .add_member("inner@acmecorp.com", "user2@acmecorp.com", MemberType::User);
    ctx.google.add_member(
        "inner@acmecorp.com",
        "outer@acmecorp.com",
        MemberType::Group,
    ); // a cycle
    ctx.google.add_member_with_role(
        "outer@acmecorp.com",
        "partner@example.org",
        MemberType::User,
        "OWNER",
    );

    let direct = ctx.dir_ok("groups/o@acmecorp.com/members", &[]).await;
    let members = direct["members"].as_array().unwrap();
    assert_eq!(members.len(), 3);
    assert_eq!(members[0]["type"], "USER");
    assert_eq!(members[0]["status"], "ACTIVE");
    assert_eq!(members[0]["role"], "MEMBER");
    assert_eq!(members[1]["type"], "GROUP");
    assert_eq!(members[2]["role"], "OWNER");

    let derived = ctx
        .dir_ok(
            "groups/outer@acmecorp.com/members",
            &[("includeDerivedMembership", "true")],
        )
        .await;
    let emails: Vec<&str> = derived["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["email"].as_str().unwrap())
        .collect();
    assert!(emails.contains(&"user2@acmecorp.com"), "{emails:?}");
    let owners = ctx
        .dir_ok("groups/outer@acmecorp.com/members", &[("roles", "OWNER")])
        .await;
    assert_eq!(owners["members"].as_array().unwrap().len(), 1);

    let (members, pages) = list_all(
        &ctx,
        "groups/group0@acmecorp.com/members",
        "members",
        &[("maxResults", "2")],
    )
    .await;
    assert_eq!((members.len(), pages), (3, 2));

    let r = ctx.dir("groups/nosuch@acmecorp.com/members", &[]).await;
    assert_eq!(r.status(), 404);

    // groups.list?userKey= lists the groups a user is a direct member of.
    let of_user = ctx
        .dir_ok("groups", &[("userKey", "user2@acmecorp.com")])
        .await;
    let names: Vec<&str> = of_user["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["email"].as_str().unwrap())
        .collect();
    assert!(names.contains(&"inner@acmecorp.com"));
}

#[tokio::test]
async fn removed_users_leave_the_listing_and_their_groups() {
    let ctx = Ctx::start().await;
    ctx.google.seed_synthetic(3, 1, 3);
    ctx.google.remove_user("user1@acmecorp.com");
    let body = ctx.dir_ok("users", &[("customer", "my_customer")]).await;
    assert_eq!(body["users"].as_array().unwrap().len(), 2);
    let deleted = ctx
        .dir_ok(
            "users",
            &[("customer", "my_customer"), ("showDeleted", "true")],
        )
        .await;
    assert_eq!(deleted["users"][0]["primaryEmail"], "user1@acmecorp.com");
    let members = ctx.dir_ok("groups/group0@acmecorp.com/members", &[]).await;
    assert_eq!(members["members"].as_array().unwrap().len(), 2);
    assert_eq!(ctx.dir("users/user1@acmecorp.com", &[]).await.status(), 404);
}

#[tokio::test]
async fn users_can_be_ordered_and_searched() {
    let ctx = Ctx::start().await;
    for (email, given) in [
        ("c@acmecorp.com", "Cy"),
        ("a@acmecorp.com", "Al"),
        ("b@acmecorp.com", "Bo"),
    ] {
        ctx.google.add_user(FakeUser {
            primary_email: email.into(),
            given_name: given.into(),
            family_name: "X".into(),
            ..FakeUser::default()
        });
    }
    ctx.google
        .update_user("b@acmecorp.com", |u| u.suspended = true);
    let (users, pages) = list_all(
        &ctx,
        "users",
        "users",
        &[
            ("customer", "my_customer"),
            ("orderBy", "email"),
            ("maxResults", "2"),
        ],
    )
    .await;
    let emails: Vec<&str> = users
        .iter()
        .map(|u| u["primaryEmail"].as_str().unwrap())
        .collect();
    assert_eq!(
        (emails, pages),
        (
            vec!["a@acmecorp.com", "b@acmecorp.com", "c@acmecorp.com"],
            2
        )
    );
    let active = ctx
        .dir_ok(
            "users",
            &[("customer", "my_customer"), ("query", "isSuspended=false")],
        )
        .await;
    assert_eq!(active["users"].as_array().unwrap().len(), 2);
    let prefix = ctx
        .dir_ok(
            "users",
            &[("customer", "my_customer"), ("query", "email:c*")],
        )
        .await;
    assert_eq!(prefix["users"].as_array().unwrap().len(), 1);
    assert_eq!(
        ctx.dir(
            "users",
            &[("customer", "my_customer"), ("query", "shoeSize=9")]
        )
        .await
        .status(),
        400
    );
}

#[tokio::test]
async fn domains_and_domain_aliases() {
    let ctx = Ctx::start().await;
    ctx.google.add_domain_alias("gapps.acmecorp.com");
    let domains = ctx.dir_ok("customer/my_customer/domains", &[]).await;
    assert_eq!(domains["domains"][0]["domainName"], "acmecorp.com");
    assert_eq!(domains["domains"][0]["isPrimary"], true);
    assert_eq!(
        domains["domains"][0]["domainAliases"][0]["domainAliasName"],
        "gapps.acmecorp.com"
    );
    let aliases = ctx.dir_ok("customer/C0123abc/domainaliases", &[]).await;
    assert_eq!(aliases["kind"], "admin#directory#domainAliases");
    assert_eq!(
        aliases["domainAliases"][0]["domainAliasName"],
        "gapps.acmecorp.com"
    );
    assert_eq!(
        aliases["domainAliases"][0]["parentDomainName"],
        "acmecorp.com"
    );
    assert_eq!(aliases["domainAliases"][0]["verified"], true);
    assert_eq!(
        ctx.dir("customer/C999/domainaliases", &[]).await.status(),
        403
    );
    assert_eq!(
        ctx.dir("customer/my_customer/domainaliases", &[("bogus", "1")])
            .await
            .status(),
        400
    );
    let counts = ctx.google.requests();
    assert_eq!((counts.domains, counts.domain_aliases), (1, 3));
}

#[tokio::test]
async fn unknown_paths_are_404() {
    let ctx = Ctx::start().await;
    assert_eq!(ctx.dir("people", &[]).await.status(), 404);
    assert_eq!(ctx.google.requests().rejected, 1);
}
