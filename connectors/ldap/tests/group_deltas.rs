//! Deltas read again the groups whose members changed: a member's new
//! address reaches the groups listing it (directly or through nested
//! groups) without the group entries changing, on the real slapd (content
//! sync and the modifyTimestamp fallback) and on Samba AD (DirSync and
//! uSNChanged).

// Integration tests: helpers fail loudly, like the tests they serve.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::HashSet;
use std::time::Duration;

use coexist_connector::{Connector, NoProgress, Pull, PullMode};
use coexist_ldap::{Flavor, Incremental, LdapConnector};
use common::{find, values, Subtree, TestServer};
use ldap3::Mod;

/// Adds a group `cn=<cn>` below the subtree's groups with `members`, and
/// with `mail` when given (a group without one is no recipient, only a
/// way of nesting). Returns its DN.
async fn group(t: &Subtree, cn: &str, mail: Option<&str>, members: &[&str]) -> String {
    let dn = format!("cn={cn},{}", t.groups);
    match t.flavor() {
        Flavor::Openldap => {
            let mut attrs = vec![
                ("objectClass", vec!["groupOfNames", "extensibleObject"]),
                ("cn", vec![cn]),
                ("member", members.to_vec()),
            ];
            if let Some(m) = mail {
                attrs.push(("mail", vec![m]));
            }
            t.add(&dn, attrs).await;
        }
        Flavor::ActiveDirectory => {
            let sam = format!("g{}", &common::random()[..6]);
            let mut attrs = vec![
                ("objectClass", vec!["top", "group"]),
                ("sAMAccountName", vec![sam.as_str()]),
                ("member", members.to_vec()),
            ];
            if let Some(m) = mail {
                attrs.push(("mail", vec![m]));
            }
            t.add(&dn, attrs).await;
        }
    }
    dn
}

/// Changes the mail of `dn` to `mail` and pulls from `cursor`.
///
/// A modifyTimestamp cursor looks back a minute before the previous read,
/// which would return the groups just made whatever the connector does; so
/// its `since` is moved to the change itself (the groups were made a second
/// or more before), leaving in the delta only what changed.
async fn change_mail_and_pull(
    t: &Subtree,
    connector: &LdapConnector,
    cursor: &str,
    dn: &str,
    mail: &str,
) -> Pull {
    tokio::time::sleep(Duration::from_millis(1100)).await;
    t.replace(dn, "mail", mail).await;
    let mut cursor: serde_json::Value = serde_json::from_str(cursor).unwrap();
    // (modify_timestamp cursors are set to the change's own stamp below.)
    if cursor["method"] == "modify_timestamp" {
        let e = t.search(dn, "(objectClass=*)", &["modifyTimestamp"]).await;
        let stamp = values(&e[0], "modifyTimestamp")[0].to_string();
        // GeneralizedTime as slapd writes it: YYYYMMDDHHMMSSZ.
        assert_eq!(stamp.len(), 15, "{stamp}");
        cursor["since"] = serde_json::Value::String(stamp);
    }
    let mut cursor = cursor.to_string();
    // syncprov answers a refresh only up to the oldest CSN still pending:
    // while other tests write to the same server, a change just made can
    // come with the next delta instead (from the cursor this one returned).
    for _ in 0..5 {
        let delta = connector.pull(Some(&cursor), &NoProgress).await.unwrap();
        assert_eq!(delta.mode, PullMode::Delta);
        assert!(delta.complete, "{:?}", delta.problems);
        if !delta.recipients.is_empty() {
            return delta;
        }
        cursor = delta.cursor.clone().unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    panic!("five deltas in a row did not return the change of {dn}");
}

/// m1 and m2 in team@; m1's address changes; the delta returns team@ with
/// the new address, and not m2 (unchanged, and in no changed group's way).
async fn member_change_reaches_its_group(server: TestServer, expect: &str) {
    let t = Subtree::new(server).await;
    let m1 = t.person("m1", "m1@acmecorp.com", vec![]).await;
    let m2 = t.person("m2", "m2@acmecorp.com", vec![]).await;
    group(&t, "team", Some("team@acmecorp.com"), &[&m1, &m2]).await;
    let connector = LdapConnector::new("mail", t.config()).unwrap();
    let full = connector.pull(None, &NoProgress).await.unwrap();
    assert_eq!(
        find(&full, "team@acmecorp.com").members,
        ["m1@acmecorp.com", "m2@acmecorp.com"]
    );
    let cursor = full.cursor.unwrap();
    assert!(cursor.contains(expect), "{cursor}");

    let delta = change_mail_and_pull(&t, &connector, &cursor, &m1, "em1@acmecorp.com").await;
    find(&delta, "em1@acmecorp.com");
    assert_eq!(
        find(&delta, "team@acmecorp.com").members,
        ["em1@acmecorp.com", "m2@acmecorp.com"]
    );
    assert!(
        delta
            .recipients
            .iter()
            .all(|r| r.primary_address != "m2@acmecorp.com"),
        "unchanged members are not returned: {:?}",
        delta.recipients
    );
    assert_eq!(delta.recipients.len(), 2, "{:?}", delta.recipients);
}

/// all@ ⊃ inner (a group without an address) ⊃ p, and p directly in
/// direct@; p's address changes; both lists come back with it.
async fn member_change_reaches_nested_groups(server: TestServer, expect: &str) {
    let t = Subtree::new(server).await;
    let p = t.person("p", "p@acmecorp.com", vec![]).await;
    let q = t.person("q", "q@acmecorp.com", vec![]).await;
    let inner = group(&t, "inner", None, &[&p]).await;
    group(&t, "all", Some("all@acmecorp.com"), &[&inner, &q]).await;
    group(&t, "direct", Some("direct@acmecorp.com"), &[&p]).await;
    group(&t, "others", Some("others@acmecorp.com"), &[&q]).await;
    let connector = LdapConnector::new("mail", t.config()).unwrap();
    let full = connector.pull(None, &NoProgress).await.unwrap();
    assert_eq!(
        find(&full, "all@acmecorp.com").members,
        ["p@acmecorp.com", "q@acmecorp.com"]
    );
    let cursor = full.cursor.unwrap();
    assert!(cursor.contains(expect), "{cursor}");

    let delta = change_mail_and_pull(&t, &connector, &cursor, &p, "ep@acmecorp.com").await;
    assert_eq!(
        find(&delta, "all@acmecorp.com").members,
        ["ep@acmecorp.com", "q@acmecorp.com"]
    );
    assert_eq!(
        find(&delta, "direct@acmecorp.com").members,
        ["ep@acmecorp.com"]
    );
    let mut returned: Vec<&str> = delta
        .recipients
        .iter()
        .map(|r| r.primary_address.as_str())
        .collect();
    returned.sort();
    assert_eq!(
        returned,
        ["all@acmecorp.com", "direct@acmecorp.com", "ep@acmecorp.com"],
        "groups not holding p (others@) are not read again"
    );
}

/// A delta whose only change is a group's own attribute returns that group
/// once, and the groups holding it (its parents) too.
async fn group_change_reaches_its_parents(server: TestServer) {
    let t = Subtree::new(server).await;
    let p = t.person("p", "p@acmecorp.com", vec![]).await;
    let inner = group(&t, "inner", Some("inner@acmecorp.com"), &[&p]).await;
    group(&t, "outer", Some("outer@acmecorp.com"), &[&inner]).await;
    let connector = LdapConnector::new("mail", t.config()).unwrap();
    let full = connector.pull(None, &NoProgress).await.unwrap();
    let cursor = full.cursor.unwrap();

    let delta = change_mail_and_pull(&t, &connector, &cursor, &inner, "in@acmecorp.com").await;
    let mut returned: Vec<&str> = delta
        .recipients
        .iter()
        .map(|r| r.primary_address.as_str())
        .collect();
    returned.sort();
    assert_eq!(returned, ["in@acmecorp.com", "outer@acmecorp.com"]);
    assert_eq!(
        find(&delta, "outer@acmecorp.com").members,
        ["p@acmecorp.com"]
    );
}

#[tokio::test]
async fn content_sync_deltas_return_the_groups_of_a_changed_member() {
    member_change_reaches_its_group(TestServer::slapd(), "syncrepl").await;
}

#[tokio::test]
async fn modify_timestamp_deltas_return_the_groups_of_a_changed_member() {
    member_change_reaches_its_group(TestServer::slapd_plain(), "modify_timestamp").await;
}

#[tokio::test]
async fn content_sync_deltas_return_nested_groups_through_a_group_without_an_address() {
    member_change_reaches_nested_groups(TestServer::slapd(), "syncrepl").await;
}

#[tokio::test]
async fn modify_timestamp_deltas_return_nested_groups_through_a_group_without_an_address() {
    member_change_reaches_nested_groups(TestServer::slapd_plain(), "modify_timestamp").await;
}

#[tokio::test]
async fn a_changed_group_brings_its_parent_groups_once() {
    group_change_reaches_its_parents(TestServer::slapd()).await;
}

#[tokio::test]
async fn a_delta_without_changes_returns_nothing() {
    let t = Subtree::new(TestServer::slapd()).await;
    let m1 = t.person("m1", "m1@acmecorp.com", vec![]).await;
    group(&t, "team", Some("team@acmecorp.com"), &[&m1]).await;
    let connector = LdapConnector::new("mail", t.config()).unwrap();
    let full = connector.pull(None, &NoProgress).await.unwrap();
    let quiet = connector
        .pull(full.cursor.as_deref(), &NoProgress)
        .await
        .unwrap();
    assert_eq!(quiet.mode, PullMode::Delta);
    assert!(quiet.complete, "{:?}", quiet.problems);
    assert!(quiet.recipients.is_empty(), "{:?}", quiet.recipients);
}

/// AD: a user's mail changes; the delta returns the group with the new
/// address, through DirSync or uSNChanged, directly and through a nested
/// security group without an address. Then that security group gains a
/// member: the list holding it comes back with the new member.
async fn ad_member_change_reaches_its_groups(method: Incremental, expect: &str) {
    let t = Subtree::new(TestServer::samba()).await;
    let tag = common::random();
    let at = |name: &str| format!("{name}.{tag}@acmecorp.com");
    let alice = t.person("Alice", &at("alice"), vec![]).await;
    let bob = t.person("Bob", &at("bob"), vec![]).await;
    let inner = group(&t, "Inner", None, &[&alice]).await;
    group(&t, "Team", Some(&at("team")), &[&alice, &bob]).await;
    group(&t, "All", Some(&at("all")), &[&inner]).await;
    let mut config = t.config();
    config.incremental = method;
    let connector = LdapConnector::new("ad", config).unwrap();
    let full = connector.pull(None, &NoProgress).await.unwrap();
    assert_eq!(find(&full, &at("team")).members, [at("alice"), at("bob")]);
    assert_eq!(find(&full, &at("all")).members, [at("alice")]);
    let cursor = full.cursor.unwrap();
    assert!(cursor.contains(expect), "{cursor}");

    let delta = change_mail_and_pull(&t, &connector, &cursor, &alice, &at("ealice")).await;
    find(&delta, &at("ealice"));
    assert_eq!(find(&delta, &at("team")).members, [at("bob"), at("ealice")]);
    assert_eq!(find(&delta, &at("all")).members, [at("ealice")]);
    assert!(
        delta
            .recipients
            .iter()
            .all(|r| r.primary_address != at("bob")),
        "unchanged members are not returned"
    );

    // Bob joins the security group: All@ (which holds it) comes back with
    // him, though neither All@ nor Bob changed.
    t.modify(
        &inner,
        vec![Mod::Add("member".into(), HashSet::from([bob.clone()]))],
    )
    .await;
    let next = connector
        .pull(delta.cursor.as_deref(), &NoProgress)
        .await
        .unwrap();
    assert_eq!(next.mode, PullMode::Delta);
    assert!(next.complete, "{:?}", next.problems);
    assert_eq!(find(&next, &at("all")).members, [at("bob"), at("ealice")]);
}

#[tokio::test]
async fn dirsync_deltas_return_the_groups_of_a_changed_member() {
    ad_member_change_reaches_its_groups(Incremental::Auto, "dirsync").await;
}

#[tokio::test]
async fn usn_changed_deltas_return_the_groups_of_a_changed_member() {
    ad_member_change_reaches_its_groups(Incremental::UsnChanged, "\"usn\"").await;
}
