//! Graph directory reads: users, groups, members, paging, `$select` and
//! `$filter` checked against the CSDL, `$top` at most 999.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use coexist_fake_m365::{FakeGroup, RecipientType};
use common::*;
use serde_json::Value;

#[tokio::test]
async fn an_unknown_select_property_is_refused_in_graphs_words() {
    let ctx = Ctx::start().await;
    let (status, code, message) =
        graph_error(ctx.get("/users?$select=id,mail,favouriteColour").await).await;
    assert_eq!((status, code.as_str()), (400, "BadRequest"));
    assert_eq!(
        message,
        "Parsing OData Select and Expand failed: Could not find a property named 'favouriteColour' on type 'microsoft.graph.user'."
    );
    let (_, _, message) = graph_error(ctx.get("/groups?$select=displayName,surname").await).await;
    assert!(
        message.ends_with(
            "Could not find a property named 'surname' on type 'microsoft.graph.group'."
        ),
        "{message}"
    );
}

#[tokio::test]
async fn every_user_property_coexist_reads_is_in_the_schema() {
    let ctx = Ctx::start().await;
    let id = ctx.user("ann", RecipientType::UserMailbox);
    let select = "id,userPrincipalName,mail,proxyAddresses,displayName,givenName,surname,jobTitle,department,companyName,businessPhones,mobilePhone,officeLocation,accountEnabled,mailNickname";
    let body = ctx.get_json(&format!("/users?$select={select}")).await;
    let user = &body["value"][0];
    assert_eq!(user["id"], id.as_str());
    assert_eq!(
        user["proxyAddresses"][1],
        "smtp:ann@acmecorp.mail.onmicrosoft.com"
    );
    assert_eq!(user["accountEnabled"], true);
    assert_eq!(user.as_object().unwrap().len(), select.split(',').count());
}

#[tokio::test]
async fn without_select_users_come_with_graphs_default_properties() {
    let ctx = Ctx::start().await;
    ctx.user("ann", RecipientType::UserMailbox);
    let body = ctx.get_json("/users").await;
    let user = body["value"][0].as_object().unwrap();
    assert!(user.contains_key("userPrincipalName") && user.contains_key("id"));
    // Not in the default set: only with $select.
    assert!(!user.contains_key("proxyAddresses"));
    assert!(!user.contains_key("accountEnabled"));
}

#[tokio::test]
async fn top_over_999_is_refused_and_999_is_served() {
    let ctx = Ctx::start().await;
    let (status, code, message) = graph_error(ctx.get("/users?$top=1000").await).await;
    assert_eq!((status, code.as_str()), (400, "Request_UnsupportedQuery"));
    assert_eq!(
        message,
        "Invalid page size specified: '1000'. Must be between 1 and 999 inclusive."
    );
    assert_eq!(graph_error(ctx.get("/users?$top=0").await).await.0, 400);
    assert_eq!(
        graph_error(ctx.get("/groups/delta?$top=5000").await)
            .await
            .0,
        400
    );
    assert_eq!(ctx.get("/users?$top=999").await.status(), 200);
}

#[tokio::test]
async fn users_page_by_absolute_next_links_with_a_skiptoken_until_the_last_page() {
    let ctx = Ctx::start().await;
    ctx.m365.seed_synthetic(25, 0, 0);
    ctx.m365.reset_counters();
    let mut url = format!("{}/users?$select=id,mail&$top=10", ctx.m365.graph_url());
    let mut seen = Vec::new();
    let mut pages = 0;
    loop {
        let r = ctx.get_url(&url).await;
        assert_eq!(r.status(), 200);
        let body: Value = r.json().await.unwrap();
        pages += 1;
        for u in body["value"].as_array().unwrap() {
            seen.push(u["mail"].as_str().unwrap().to_owned());
        }
        match body["@odata.nextLink"].as_str() {
            Some(next) => {
                assert!(
                    next.starts_with(&ctx.m365.graph_url()) && next.contains("$skiptoken="),
                    "{next}"
                );
                url = next.to_owned();
            }
            None => break,
        }
    }
    assert_eq!((pages, seen.len()), (3, 25));
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 25);
    let c = ctx.m365.counters();
    assert_eq!(
        (c.graph_requests, c.graph_pages, c.pages_by_kind["users"]),
        (3, 3, 3)
    );
}

#[tokio::test]
async fn groups_filter_on_mail_enabled_and_refuse_unknown_filter_properties() {
    let ctx = Ctx::start().await;
    ctx.m365.add_group(FakeGroup {
        display_name: "Sales".into(),
        mail: "sales@acmecorp.com".into(),
        mail_enabled: true,
        ..FakeGroup::default()
    });
    ctx.m365.add_group(FakeGroup {
        display_name: "Admins".into(),
        security_enabled: true,
        ..FakeGroup::default()
    });
    ctx.m365.add_group(FakeGroup {
        display_name: "Team".into(),
        mail: "team@acmecorp.com".into(),
        mail_enabled: true,
        group_types: vec!["Unified".into()],
        ..FakeGroup::default()
    });
    let body = ctx
        .get_json("/groups?$filter=mailEnabled%20eq%20true&$select=id,displayName,mail")
        .await;
    let names: Vec<&str> = body["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["displayName"].as_str().unwrap())
        .collect();
    assert_eq!(names.len(), 2);
    assert!(names.contains(&"Sales") && names.contains(&"Team"));
    let body = ctx
        .get_json("/groups?$filter=groupTypes/any(c:c%20eq%20'Unified')")
        .await;
    assert_eq!(body["value"].as_array().unwrap().len(), 1);

    let (status, code, message) =
        graph_error(ctx.get("/groups?$filter=isMailList%20eq%20true").await).await;
    assert_eq!((status, code.as_str()), (400, "BadRequest"));
    assert_eq!(
        message,
        "Could not find a property named 'isMailList' on type 'microsoft.graph.group'."
    );
    let (status, code, _) = graph_error(
        ctx.get("/groups?$filter=createdDateTime%20gt%202020-01-01")
            .await,
    )
    .await;
    assert_eq!((status, code.as_str()), (400, "Request_UnsupportedQuery"));
}

#[tokio::test]
async fn unsupported_and_unknown_query_options_are_refused() {
    let ctx = Ctx::start().await;
    let (status, code, _) = graph_error(ctx.get("/users?$orderby=displayName").await).await;
    assert_eq!((status, code.as_str()), (400, "Request_UnsupportedQuery"));
    let (status, _, message) = graph_error(ctx.get("/users?$bogus=1").await).await;
    assert_eq!(status, 400);
    assert!(message.contains("$bogus"), "{message}");
    let (status, _, message) = graph_error(ctx.get("/notAThing").await).await;
    assert_eq!(status, 400);
    assert!(message.contains("notAThing"), "{message}");
}

#[tokio::test]
async fn members_carry_their_odata_type_and_transitive_members_resolve_nested_groups() {
    let ctx = Ctx::start().await;
    let ann = ctx.user("ann", RecipientType::UserMailbox);
    let bob = ctx.user("bob", RecipientType::UserMailbox);
    let outer = ctx.m365.add_group(FakeGroup {
        display_name: "All".into(),
        mail: "all@acmecorp.com".into(),
        mail_enabled: true,
        ..FakeGroup::default()
    });
    let inner = ctx.m365.add_group(FakeGroup {
        display_name: "Inner".into(),
        ..FakeGroup::default()
    });
    assert!(ctx.m365.add_member(&outer, &ann));
    assert!(ctx.m365.add_member(&outer, &inner));
    assert!(ctx.m365.add_member(&inner, &bob));
    assert!(ctx.m365.add_member(&inner, &ann));

    let body = ctx
        .get_json(&format!("/groups/{outer}/members?$select=id,mail"))
        .await;
    let members = body["value"].as_array().unwrap();
    assert_eq!(members.len(), 2);
    assert_eq!(members[0]["@odata.type"], "#microsoft.graph.user");
    assert_eq!(members[0]["mail"], "ann@acmecorp.com");
    assert_eq!(members[1]["@odata.type"], "#microsoft.graph.group");

    let body = ctx
        .get_json(&format!("/groups/{outer}/transitiveMembers?$select=id"))
        .await;
    let mut ids: Vec<&str> = body["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    ids.sort();
    let mut want = vec![ann.as_str(), bob.as_str(), inner.as_str()];
    want.sort();
    assert_eq!(ids, want);

    let (status, code, _) = graph_error(
        ctx.get("/groups/00000000-0000-0000-0000-000000000000/members")
            .await,
    )
    .await;
    assert_eq!((status, code.as_str()), (404, "Request_ResourceNotFound"));
    let (status, _, _) = graph_error(
        ctx.get(&format!("/groups/{outer}/members?$select=nope"))
            .await,
    )
    .await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn a_user_is_read_by_id_or_user_principal_name() {
    let ctx = Ctx::start().await;
    let id = ctx.user("ann", RecipientType::UserMailbox);
    let by_id = ctx.get_json(&format!("/users/{id}?$select=id,mail")).await;
    let by_upn = ctx
        .get_json("/users/ann@acmecorp.com?$select=id,mail")
        .await;
    assert_eq!(by_id["id"], by_upn["id"]);
    assert_eq!(
        graph_error(ctx.get("/users/nobody@acmecorp.com").await)
            .await
            .0,
        404
    );
}

#[tokio::test]
async fn the_tenants_domains_are_listed_with_their_verification() {
    let ctx = Ctx::start().await;
    ctx.m365.add_domain("pending.example", false);
    let body = ctx.get_json("/domains").await;
    let domains = body["value"].as_array().unwrap();
    let routing = domains
        .iter()
        .find(|d| d["id"] == "acmecorp.mail.onmicrosoft.com")
        .unwrap();
    assert_eq!(routing["isVerified"], true);
    let pending = domains
        .iter()
        .find(|d| d["id"] == "pending.example")
        .unwrap();
    assert_eq!(pending["isVerified"], false);
    assert!(domains
        .iter()
        .any(|d| d["id"] == "acmecorp.com" && d["isDefault"] == true));
}
