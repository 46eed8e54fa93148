//! The connector against the real OpenLDAP slapd of `deploy/testenv.sh`.

// Integration tests: helpers fail loudly, like the tests they serve.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::HashSet;

use coexist_connector::{
    Attributes, Connector, ConnectorError, NoProgress, Operation, PullMode, RecipientKind, Route,
    Stub, StubField,
};
use coexist_ldap::{DisabledWhen, LdapConnector, StubSchema};
use common::{
    assert_created_again_finds_it, assert_deleted_twice, assert_unmarked_entry_is_refused_and_kept,
    create, find, update, values, Subtree, TestServer,
};
use ldap3::Mod;

/// A person stub whose mailbox is in Google (`<local part>@gapps.acmecorp.com`).
fn stub(anchor: &str, primary: &str) -> Stub {
    common::stub(anchor, primary, "gapps.acmecorp.com")
}

#[tokio::test]
async fn a_full_pull_reads_people_groups_forwarders_and_stubs_in_pages() {
    let t = Subtree::new(TestServer::slapd()).await;
    let mut people = Vec::new();
    for i in 0..20 {
        people.push(
            t.person(
                &format!("user{i}"),
                &format!("user{i}@acmecorp.com"),
                vec![],
            )
            .await,
        );
    }
    let fwd = t
        .person(
            "fwd",
            "fwd@acmecorp.com",
            vec![("mailRoutingAddress", vec!["fwd@gapps.acmecorp.com"])],
        )
        .await;
    let _ = fwd;
    // groups: sales ⊃ inner ⊃ (user1, sales) — nested, with a cycle.
    let sales = format!("cn=sales,{}", t.groups);
    let inner = format!("cn=inner,{}", t.groups);
    t.add(
        &inner,
        vec![
            ("objectClass", vec!["groupOfNames"]),
            ("cn", vec!["inner"]),
            ("member", vec![people[1].as_str(), sales.as_str()]),
        ],
    )
    .await;
    t.add(
        &sales,
        vec![
            ("objectClass", vec!["groupOfNames", "extensibleObject"]),
            ("cn", vec!["sales"]),
            ("mail", vec!["sales@acmecorp.com"]),
            ("member", vec![people[0].as_str(), inner.as_str()]),
        ],
    )
    .await;
    let connector = LdapConnector::new("mail", t.config()).unwrap();
    // one stub, written by the connector itself
    let s = stub("google:1", "zoe@acmecorp.com");
    connector.apply(&create(&s)).await.unwrap();

    let pull = connector.pull(None, &NoProgress).await.unwrap();
    assert_eq!(pull.mode, PullMode::Full);
    assert!(pull.complete, "{:?}", pull.problems);
    assert!(pull.problems.is_empty(), "{:?}", pull.problems);
    assert_eq!(
        pull.recipients.len(),
        22,
        "20 people, a forwarder and a group (page size 7)"
    );
    assert_eq!(pull.stubs.len(), 1);
    assert_eq!(pull.stubs[0].stub.anchor, "google:1");
    assert!(
        pull.recipients
            .iter()
            .all(|r| r.primary_address != "zoe@acmecorp.com"),
        "a stub is never a recipient"
    );
    let f = pull
        .recipients
        .iter()
        .find(|r| r.primary_address == "fwd@acmecorp.com")
        .unwrap();
    assert!(!f.mailbox);
    assert_eq!(f.forwards_to.as_deref(), Some("fwd@gapps.acmecorp.com"));
    let g = pull
        .recipients
        .iter()
        .find(|r| r.primary_address == "sales@acmecorp.com")
        .unwrap();
    assert_eq!(g.kind, RecipientKind::Group);
    assert_eq!(g.members, vec!["user0@acmecorp.com", "user1@acmecorp.com"]);
    let u = pull
        .recipients
        .iter()
        .find(|r| r.primary_address == "user3@acmecorp.com")
        .unwrap();
    assert!(u.mailbox && u.enabled);
    assert_eq!(u.anchor.len(), 36, "entryUUID anchor: {}", u.anchor);
    assert!(u.etag.is_some(), "entryCSN as etag");
    assert!(pull.cursor.unwrap().contains("syncrepl"));
}

#[tokio::test]
async fn bad_entries_are_reported_with_their_dn_and_skipped() {
    let t = Subtree::new(TestServer::slapd()).await;
    t.person("good", "good@acmecorp.com", vec![]).await;
    t.person("invalid", "not-an-address", vec![]).await;
    let many: Vec<String> = (0..1001).map(|i| format!("h{i}@acmecorp.com")).collect();
    t.person(
        "huge",
        "huge@acmecorp.com",
        vec![(
            "mailLocalAddress",
            many.iter().map(String::as_str).collect(),
        )],
    )
    .await;
    let nomail = format!("uid=nomail,{}", t.people);
    t.add(
        &nomail,
        vec![
            ("objectClass", vec!["inetOrgPerson"]),
            ("uid", vec!["nomail"]),
            ("cn", vec!["n"]),
            ("sn", vec!["n"]),
        ],
    )
    .await;
    let mut config = t.config();
    config.user_filter = Some("(objectClass=inetOrgPerson)".into());
    let pull = LdapConnector::new("mail", config)
        .unwrap()
        .pull(None, &NoProgress)
        .await
        .unwrap();
    let addresses: Vec<&str> = pull
        .recipients
        .iter()
        .map(|r| r.primary_address.as_str())
        .collect();
    assert_eq!(addresses, vec!["good@acmecorp.com"]);
    let text = format!("{:?}", pull.problems);
    assert!(
        text.contains("uid=nomail") && text.contains("no mail"),
        "{text}"
    );
    assert!(
        text.contains("uid=invalid") && text.contains("not a valid"),
        "{text}"
    );
    assert!(
        text.contains("uid=huge") && text.contains("1001 values"),
        "{text}"
    );
    assert!(pull.complete, "bad entries do not make the pull incomplete");
}

#[tokio::test]
async fn stubs_are_created_updated_renamed_and_deleted_idempotently() {
    let t = Subtree::new(TestServer::slapd()).await;
    let connector = LdapConnector::new("mail", t.config()).unwrap();
    let s = stub("google:42", "zoe.oneil@acmecorp.com");
    let applied = connector.apply(&create(&s)).await.unwrap().found.unwrap();
    assert_eq!(
        applied.locator,
        format!("mail=zoe.oneil@acmecorp.com,{}", t.stubs)
    );
    assert_eq!(applied.id.len(), 36, "the entryUUID of the new stub");
    let e = &t
        .search(&t.stubs, "(mail=zoe.oneil@acmecorp.com)", &["*"])
        .await[0];
    assert_eq!(
        values(e, "mailRoutingAddress"),
        ["zoe.oneil@gapps.acmecorp.com"]
    );
    let local: HashSet<&str> = values(e, "mailLocalAddress").into_iter().collect();
    assert_eq!(
        local,
        HashSet::from(["zoe.oneil@acmecorp.com", "alias.zoe.oneil@acmecorp.com"])
    );
    assert_eq!(values(e, "cn"), ["Zoë O'Neil"]);
    assert_eq!(values(e, "sn"), ["O'Neil"]);
    assert_eq!(values(e, "telephoneNumber"), ["+1 555 0100"]);
    assert_eq!(values(e, "mobile"), ["+1 555 0199"]);
    assert_eq!(values(e, "departmentNumber"), ["R&D"]);
    assert_eq!(values(e, "description"), ["coexist:google:42"]);

    // A second create of the same anchor changes nothing and finds the same entry.
    assert_created_again_finds_it(&t, &connector, &s, &applied).await;

    // The pull reads it back exactly as written: a second plan is empty.
    let pull = connector.pull(None, &NoProgress).await.unwrap();
    assert_eq!(pull.stubs.len(), 1);
    assert_eq!(StubField::changed(&pull.stubs[0].stub, &s), vec![]);

    // Update: only the title changes; the entry's other values stay.
    let mut s2 = s.clone();
    s2.attributes.title = Some("Manager".into());
    let csn_before = values(
        &t.search(&t.stubs, "(mail=zoe.oneil@acmecorp.com)", &["entryCSN"])
            .await[0],
        "entryCSN",
    )[0]
    .to_string();
    connector
        .apply(&update(&applied, &s, &s2, vec![StubField::Title]))
        .await
        .unwrap();
    let e = &t
        .search(
            &t.stubs,
            "(mail=zoe.oneil@acmecorp.com)",
            &["title", "entryCSN"],
        )
        .await[0];
    assert_eq!(values(e, "title"), ["Manager"]);
    assert_ne!(values(e, "entryCSN")[0], csn_before);

    // A primary-address change renames the entry.
    let mut s3 = s2.clone();
    s3.primary_address = "zoe@acmecorp.com".into();
    let renamed = connector
        .apply(&update(&applied, &s2, &s3, vec![StubField::PrimaryAddress]))
        .await
        .unwrap()
        .found
        .unwrap();
    assert_eq!(
        renamed.locator,
        format!("mail=zoe@acmecorp.com,{}", t.stubs)
    );
    assert_eq!(renamed.id, applied.id, "a rename keeps the entryUUID");
    let e = &t
        .search(
            &t.stubs,
            "(description=coexist:google:42)",
            &["mail", "mailLocalAddress"],
        )
        .await[0];
    assert_eq!(values(e, "mail"), ["zoe@acmecorp.com"]);
    assert!(values(e, "mailLocalAddress").contains(&"zoe@acmecorp.com"));
    assert!(!values(e, "mailLocalAddress").contains(&"zoe.oneil@acmecorp.com"));

    // Deleting an unmarked entry is refused.
    let hand = t.person("hand", "hand@acmecorp.com", vec![]).await;
    let hand_stub = stub("google:hand", "hand@acmecorp.com");
    assert_unmarked_entry_is_refused_and_kept(&t, &connector, &hand, hand_stub).await;

    // Delete, then delete again: both succeed, the entry is gone.
    assert_deleted_twice(&t, &connector, &renamed, &s3).await;
}

#[tokio::test]
async fn host_routes_and_group_kinds_round_trip() {
    let t = Subtree::new(TestServer::slapd()).await;
    let connector = LdapConnector::new("mail", t.config()).unwrap();
    let mut s = stub("m365:g1", "team@acmecorp.com");
    s.kind = RecipientKind::Group;
    s.route = Route::Host("smtp.exchange.acmecorp.com".into());
    s.attributes = Attributes::default();
    connector.apply(&create(&s)).await.unwrap();
    let e = &t.search(&t.stubs, "(mail=team@acmecorp.com)", &["*"]).await[0];
    assert_eq!(values(e, "mailHost"), ["smtp.exchange.acmecorp.com"]);
    assert!(values(e, "mailRoutingAddress").is_empty());
    assert_eq!(
        values(e, "sn"),
        ["team"],
        "sn is mandatory: derived from the address"
    );
    let pull = connector.pull(None, &NoProgress).await.unwrap();
    assert_eq!(StubField::changed(&pull.stubs[0].stub, &s), vec![]);
}

#[tokio::test]
async fn names_and_anchors_with_special_characters_are_escaped() {
    let t = Subtree::new(TestServer::slapd()).await;
    let connector = LdapConnector::new("mail", t.config()).unwrap();
    let cases = [
        (
            "google:a*b(c)\\d",
            "#hash+plus@acmecorp.com",
            "Smith, John \"JJ\"",
        ),
        ("google:ü", "jurgen.nandu@acmecorp.com", "Jürgen Ñandú"),
        ("google:#lead", "o,neil@acmecorp.com", " leading space"),
    ];
    for (anchor, primary, name) in cases {
        let mut s = stub(anchor, primary);
        s.aliases.clear();
        s.attributes.display_name = Some(name.trim().into());
        let first = connector.apply(&create(&s)).await;
        let first = first
            .unwrap_or_else(|e| panic!("{primary}: {e}"))
            .found
            .unwrap();
        // idempotent create: the marker lookup's filter is escaped right
        let second = connector.apply(&create(&s)).await.unwrap().found.unwrap();
        assert_eq!(
            coexist_ldap::escape::normalize_dn(&first.locator),
            coexist_ldap::escape::normalize_dn(&second.locator)
        );
        assert_eq!(first.id, second.id);
    }
    let pull = connector.pull(None, &NoProgress).await.unwrap();
    let mut anchors: Vec<&str> = pull.stubs.iter().map(|s| s.stub.anchor.as_str()).collect();
    anchors.sort();
    assert_eq!(
        anchors,
        vec!["google:#lead", "google:a*b(c)\\d", "google:ü"]
    );
    for s in &pull.stubs {
        connector.apply(&common::delete(s, &s.stub)).await.unwrap();
    }
    assert_eq!(t.marked_stubs().await, 0);
}

#[tokio::test]
async fn an_incremental_pull_follows_the_content_sync_cookie() {
    let t = Subtree::new(TestServer::slapd()).await;
    let a = t.person("a", "a@acmecorp.com", vec![]).await;
    let b = t.person("b", "b@acmecorp.com", vec![]).await;
    t.person("c", "c@acmecorp.com", vec![]).await;
    let connector = LdapConnector::new("mail", t.config()).unwrap();
    let full = connector.pull(None, &NoProgress).await.unwrap();
    assert_eq!(full.recipients.len(), 3);
    let b_anchor = full
        .recipients
        .iter()
        .find(|r| r.primary_address == "b@acmecorp.com")
        .unwrap()
        .anchor
        .clone();
    let cursor = full.cursor.unwrap();
    // A refresh can name entries deleted elsewhere in the database (seen
    // here: the cleanup of tests running alongside on the shared slapd);
    // the engine ignores ids it does not know. What matters is this
    // subtree's own entries.
    let ours: Vec<String> = full.recipients.iter().map(|r| r.anchor.clone()).collect();
    let own_removed = |removed: &[String]| -> Vec<String> {
        removed
            .iter()
            .filter(|id| ours.contains(id))
            .cloned()
            .collect()
    };

    let quiet = connector.pull(Some(&cursor), &NoProgress).await.unwrap();
    assert_eq!(quiet.mode, PullMode::Delta);
    assert!(
        quiet.recipients.is_empty() && own_removed(&quiet.removed).is_empty(),
        "{quiet:?}"
    );

    t.replace(&a, "title", "Boss").await;
    t.delete(&b).await;
    t.person("d", "d@acmecorp.com", vec![]).await;
    let delta = connector
        .pull(quiet.cursor.as_deref(), &NoProgress)
        .await
        .unwrap();
    assert_eq!(delta.mode, PullMode::Delta);
    let mut changed: Vec<&str> = delta
        .recipients
        .iter()
        .map(|r| r.primary_address.as_str())
        .collect();
    changed.sort();
    assert_eq!(changed, vec!["a@acmecorp.com", "d@acmecorp.com"]);
    let a_now = delta
        .recipients
        .iter()
        .find(|r| r.primary_address == "a@acmecorp.com")
        .unwrap();
    assert_eq!(a_now.attributes.title.as_deref(), Some("Boss"));
    assert_eq!(own_removed(&delta.removed), vec![b_anchor]);
    assert!(delta.cursor.is_some());
}

#[tokio::test]
async fn a_cursor_the_server_rejects_leads_to_a_full_read() {
    let t = Subtree::new(TestServer::slapd()).await;
    t.person("a", "a@acmecorp.com", vec![]).await;
    let connector = LdapConnector::new("mail", t.config()).unwrap();
    let full = connector.pull(None, &NoProgress).await.unwrap();
    // A cookie of a replica id the provider does not know, and a cursor of
    // another configuration: both read everything again.
    let cursor = full.cursor.unwrap();
    let v: serde_json::Value = serde_json::from_str(&cursor).unwrap();
    let base = t.dn.clone();
    let bogus = serde_json::json!({
        "v": 1, "scope": v["scope"], "method": "syncrepl",
        "cookies": { base: "cmlkPTk5OSxjc249MTk3MDAxMDEwMDAwMDAuMDAwMDAwWiMwMDAwMDAjMDAwIzAwMDAwMA==" }
    });
    for c in [bogus.to_string(), "garbage".to_string()] {
        let p = connector.pull(Some(&c), &NoProgress).await.unwrap();
        assert_eq!(p.recipients.len(), 1, "{c}");
        assert!(p.complete);
        assert!(p.cursor.is_some());
    }
}

#[tokio::test]
async fn without_syncprov_deltas_use_modify_timestamp_and_a_presence_read() {
    let t = Subtree::new(TestServer::slapd_plain()).await;
    let a = t.person("a", "a@acmecorp.com", vec![]).await;
    let b = t.person("b", "b@acmecorp.com", vec![]).await;
    let connector = LdapConnector::new("plain", t.config()).unwrap();
    let full = connector.pull(None, &NoProgress).await.unwrap();
    let cursor = full.cursor.unwrap();
    assert!(cursor.contains("modify_timestamp"), "{cursor}");
    let b_anchor = full
        .recipients
        .iter()
        .find(|r| r.primary_address == "b@acmecorp.com")
        .unwrap()
        .anchor
        .clone();
    t.replace(&a, "title", "Boss").await;
    t.delete(&b).await;
    let delta = connector.pull(Some(&cursor), &NoProgress).await.unwrap();
    assert_eq!(delta.mode, PullMode::Delta);
    let a_now = delta
        .recipients
        .iter()
        .find(|r| r.primary_address == "a@acmecorp.com")
        .unwrap();
    assert_eq!(a_now.attributes.title.as_deref(), Some("Boss"));
    assert_eq!(delta.removed, vec![b_anchor]);
}

#[tokio::test]
async fn stubs_can_be_written_in_bulk_concurrently() {
    let t = Subtree::new(TestServer::slapd()).await;
    let connector = LdapConnector::new("mail", t.config()).unwrap();
    let ops: Vec<Operation> = (0..200)
        .map(|i| create(&stub(&format!("google:{i}"), &format!("u{i}@acmecorp.com"))))
        .collect();
    let results = connector.apply_many(&ops).await;
    assert!(
        results.iter().all(|r| r.is_ok()),
        "{:?}",
        results.iter().find(|r| r.is_err())
    );
    for (op, r) in ops.iter().zip(&results) {
        let found = r.as_ref().unwrap().found.as_ref().unwrap();
        assert_eq!(
            found.stub.anchor,
            op.stub().anchor,
            "results come back in order"
        );
    }
    // again: every create finds its stub
    let again = connector.apply_many(&ops).await;
    assert!(again.iter().all(|r| r.is_ok()));
    assert_eq!(t.marked_stubs().await, 200);
}

#[tokio::test]
async fn the_qmail_schema_missing_from_the_server_gives_a_clear_error() {
    // qmail.schema is not loaded in this slapd (it has misc.schema, whose
    // mailHost clashes with qmail-ldap's): this checks the error. The qmail
    // mapping itself is tested in tests/qmail.rs, against slapd-qmail.
    let t = Subtree::new(TestServer::slapd()).await;
    let mut config = t.config();
    config.stub_schema = StubSchema::Qmail;
    let connector = LdapConnector::new("qmail", config).unwrap();
    let err = connector
        .apply(&create(&stub("g:1", "q@acmecorp.com")))
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, ConnectorError::Permanent { .. }), "{err:?}");
    assert!(
        text.contains("`qmail`") && text.contains("qmail.schema"),
        "{text}"
    );
}

/// Makes `dn` a shadowAccount expiring on day `day` (days since
/// 1970-01-01; -1: never).
async fn set_shadow_expire(t: &Subtree, dn: &str, day: &str) {
    t.modify(
        dn,
        vec![
            Mod::Add(
                "objectClass".to_string(),
                HashSet::from(["shadowAccount".to_string()]),
            ),
            Mod::Add("shadowExpire".to_string(), HashSet::from([day.to_string()])),
        ],
    )
    .await;
}

/// An account whose shadowExpire day has passed is read disabled, by a full
/// read and by the delta of `server` (content sync on the main database,
/// modifyTimestamp on the one without syncprov), so it gets no stubs
/// elsewhere; -1, a day to come, or no shadowExpire leave it enabled.
async fn shadow_expire_disables(server: TestServer, cursor_kind: &str) {
    let t = Subtree::new(server).await;
    let expired = t.person("expired", "expired@acmecorp.com", vec![]).await;
    set_shadow_expire(&t, &expired, "1").await;
    let later = t.person("later", "later@acmecorp.com", vec![]).await;
    set_shadow_expire(&t, &later, "99999").await;
    let never = t.person("never", "never@acmecorp.com", vec![]).await;
    set_shadow_expire(&t, &never, "-1").await;
    t.person("plain", "plain@acmecorp.com", vec![]).await;
    let connector = LdapConnector::new("mail", t.config()).unwrap();

    let full = connector.pull(None, &NoProgress).await.unwrap();
    assert!(full.complete && full.problems.is_empty(), "{full:?}");
    assert!(
        !find(&full, "expired@acmecorp.com").enabled,
        "expired in 1970"
    );
    assert!(find(&full, "later@acmecorp.com").enabled, "expires in 2243");
    assert!(find(&full, "never@acmecorp.com").enabled, "-1: never");
    assert!(find(&full, "plain@acmecorp.com").enabled, "no shadowExpire");
    let cursor = full.cursor.unwrap();
    assert!(cursor.contains(cursor_kind), "{cursor}");

    // The account that expires later has expired now; the expired one is
    // extended for ever.
    t.replace(&later, "shadowExpire", "2").await;
    t.replace(&expired, "shadowExpire", "-1").await;
    let delta = connector.pull(Some(&cursor), &NoProgress).await.unwrap();
    assert_eq!(delta.mode, PullMode::Delta);
    assert!(!find(&delta, "later@acmecorp.com").enabled);
    assert!(find(&delta, "expired@acmecorp.com").enabled);
}

#[tokio::test]
async fn shadow_expire_in_the_past_disables_an_account_in_full_reads_and_content_sync_deltas() {
    shadow_expire_disables(TestServer::slapd(), "syncrepl").await;
}

#[tokio::test]
async fn shadow_expire_in_the_past_disables_an_account_in_full_reads_and_modify_timestamp_deltas() {
    shadow_expire_disables(TestServer::slapd_plain(), "modify_timestamp").await;
}

#[tokio::test]
async fn the_attributes_that_disable_an_account_are_configurable() {
    let t = Subtree::new(TestServer::slapd()).await;
    let leaver = t
        .person(
            "leaver",
            "leaver@acmecorp.com",
            vec![("employeeType", vec!["left"])],
        )
        .await;
    let _ = leaver;
    let expired = t.person("expired", "expired@acmecorp.com", vec![]).await;
    set_shadow_expire(&t, &expired, "1").await;
    let mut config = t.config();
    config.disabled_when = vec![DisabledWhen::Equals {
        attribute: "employeeType".into(),
        values: vec!["Left".into()],
    }];
    let pull = LdapConnector::new("mail", config.clone())
        .unwrap()
        .pull(None, &NoProgress)
        .await
        .unwrap();
    assert!(
        !find(&pull, "leaver@acmecorp.com").enabled,
        "employeeType is read although no default names it"
    );
    assert!(
        find(&pull, "expired@acmecorp.com").enabled,
        "the configured rules replace the defaults"
    );
    config.disabled_when = Vec::new();
    let pull = LdapConnector::new("mail", config)
        .unwrap()
        .pull(None, &NoProgress)
        .await
        .unwrap();
    assert!(
        pull.recipients.iter().all(|r| r.enabled),
        "no rule: none disabled"
    );
}

#[tokio::test]
async fn entries_with_mail_local_address_but_no_mail_take_their_first_address_as_primary() {
    let t = Subtree::new(TestServer::slapd()).await;
    let alice = t.person("alice", "alice@acmecorp.com", vec![]).await;
    // A forwarding alias and a list known by mailLocalAddress alone. Values
    // are added one by one: slapd keeps them in the order they were added.
    let alias = format!("uid=info,{}", t.people);
    t.add(
        &alias,
        vec![
            (
                "objectClass",
                vec!["inetOrgPerson", "inetLocalMailRecipient"],
            ),
            ("uid", vec!["info"]),
            ("cn", vec!["info"]),
            ("sn", vec!["info"]),
            ("mailLocalAddress", vec!["info@acmecorp.com"]),
            ("mailRoutingAddress", vec!["support@gapps.acmecorp.com"]),
        ],
    )
    .await;
    let list = format!("cn=staff,{}", t.groups);
    t.add(
        &list,
        vec![
            (
                "objectClass",
                vec!["groupOfNames", "inetLocalMailRecipient"],
            ),
            ("cn", vec!["staff"]),
            ("mailLocalAddress", vec!["staff@acmecorp.com"]),
            ("member", vec![alice.as_str(), alias.as_str()]),
        ],
    )
    .await;
    for (dn, more) in [
        (&alias, "contact@acmecorp.com"),
        (&list, "all@acmecorp.com"),
    ] {
        t.modify(
            dn,
            vec![Mod::Add(
                "mailLocalAddress".to_string(),
                HashSet::from([more.to_string()]),
            )],
        )
        .await;
    }
    let connector = LdapConnector::new("mail", t.config()).unwrap();

    let full = connector.pull(None, &NoProgress).await.unwrap();
    assert!(full.problems.is_empty(), "{:?}", full.problems);
    assert_eq!(full.recipients.len(), 3, "{:?}", full.recipients);
    let info = find(&full, "info@acmecorp.com");
    assert_eq!(info.aliases, vec!["contact@acmecorp.com"]);
    assert!(!info.mailbox);
    assert_eq!(
        info.forwards_to.as_deref(),
        Some("support@gapps.acmecorp.com")
    );
    let staff = find(&full, "staff@acmecorp.com");
    assert_eq!(staff.kind, RecipientKind::Group);
    assert_eq!(staff.aliases, vec!["all@acmecorp.com"]);
    assert_eq!(
        staff.members,
        vec!["alice@acmecorp.com", "info@acmecorp.com"],
        "a member known by mailLocalAddress alone resolves to it"
    );

    // A delta reads them the same way.
    t.replace(&alias, "title", "Front desk").await;
    let delta = connector
        .pull(full.cursor.as_deref(), &NoProgress)
        .await
        .unwrap();
    assert_eq!(delta.mode, PullMode::Delta);
    let info = find(&delta, "info@acmecorp.com");
    assert_eq!(info.aliases, vec!["contact@acmecorp.com"]);
    assert!(delta.problems.is_empty(), "{:?}", delta.problems);
}

#[tokio::test]
async fn both_entries_claiming_one_primary_address_are_returned_named_by_their_dn() {
    // The connector decides nothing: the reconciler sees both, reports the
    // address as claimed twice and holds its stubs where they are.
    let t = Subtree::new(TestServer::slapd()).await;
    let one = t.person("dup1", "dup@acmecorp.com", vec![]).await;
    let two = t.person("dup2", "DUP@acmecorp.com", vec![]).await;
    let good = t.person("good", "good@acmecorp.com", vec![]).await;
    let connector = LdapConnector::new("mail", t.config()).unwrap();

    let full = connector.pull(None, &NoProgress).await.unwrap();
    assert!(full.problems.is_empty(), "{:?}", full.problems);
    let mut named: Vec<(String, String)> = full
        .recipients
        .iter()
        .map(|r| {
            (
                r.primary_address.clone(),
                r.locator.clone().unwrap_or_default(),
            )
        })
        .collect();
    named.sort();
    assert_eq!(
        named,
        vec![
            ("DUP@acmecorp.com".to_string(), two.clone()),
            ("dup@acmecorp.com".to_string(), one.clone()),
            ("good@acmecorp.com".to_string(), good),
        ]
    );

    t.replace(&one, "title", "Twin").await;
    let delta = connector
        .pull(full.cursor.as_deref(), &NoProgress)
        .await
        .unwrap();
    assert_eq!(delta.recipients.len(), 1, "{:?}", delta.recipients);
    assert_eq!(delta.recipients[0].locator.as_deref(), Some(one.as_str()));
}

#[tokio::test]
async fn every_ldap_request_of_a_pull_and_of_a_write_counts_for_the_run() {
    let t = Subtree::new(TestServer::slapd()).await;
    for i in 0..20 {
        t.person(
            &format!("user{i}"),
            &format!("user{i}@acmecorp.com"),
            vec![],
        )
        .await;
    }
    let connector = LdapConnector::new("mail", t.config()).unwrap();
    let counter = std::sync::Arc::new(coexist_connector::RequestCounter::default());

    let pull =
        coexist_connector::requests::counting(counter.clone(), connector.pull(None, &NoProgress))
            .await
            .unwrap();
    assert!(pull.recipients.len() >= 20);
    let read = counter.take();
    // A bind, then twenty people in pages of seven: three pages at least.
    assert!(read.requests >= 4, "{read:?}");
    assert_eq!(read.throttled, 0, "LDAP servers do not throttle");

    let s = stub("google:7", "counted@acmecorp.com");
    coexist_connector::requests::counting(counter.clone(), connector.apply(&create(&s)))
        .await
        .unwrap();
    let written = counter.take();
    assert!(written.requests >= 1, "{written:?}");

    connector.pull(None, &NoProgress).await.unwrap();
    assert_eq!(
        counter.take().requests,
        0,
        "nothing is counted outside a counted call"
    );
}
