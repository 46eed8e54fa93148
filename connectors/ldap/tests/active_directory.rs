//! The connector against the real Samba AD DC of `deploy/testenv.sh`
//! (schema extended with Exchange's targetAddress).

// Integration tests: helpers fail loudly, like the tests they serve.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::HashSet;

use coexist_connector::{Connector, NoProgress, PullMode, RecipientKind, Route, Stub, StubField};
use coexist_ldap::{Incremental, LdapConnector};
use common::{
    assert_created_again_finds_it, assert_deleted_twice, create, proxy, update, values, Cut,
    Subtree, TestServer,
};
use ldap3::Mod;

/// A person stub whose mailbox is in Google (`<local part>@gapps.acmecorp.com`),
/// with a display name the way AD directories often have it ("Smith, Zoë").
fn stub(anchor: &str, primary: &str) -> Stub {
    let mut s = common::stub(anchor, primary, "gapps.acmecorp.com");
    s.attributes.display_name = Some("Smith, Zoë".into());
    s.attributes.surname = Some("Smith".into());
    s
}

async fn ad_people(t: &Subtree) -> (String, String, String) {
    ad_people_tagged(t, "").await
}

/// Alice (enabled, proxyAddresses), Bob (disabled) and the contact Carol;
/// with a tag, their addresses are `name.<tag>@acmecorp.com`.
async fn ad_people_tagged(t: &Subtree, tag: &str) -> (String, String, String) {
    let at = |name: &str| {
        if tag.is_empty() {
            format!("{name}@acmecorp.com")
        } else {
            format!("{name}.{tag}@acmecorp.com")
        }
    };
    let (a, al, b, c) = (at("alice"), at("al"), at("bob"), at("carol"));
    let (pa, pal) = (format!("SMTP:{a}"), format!("smtp:{al}"));
    let alice = t
        .person(
            "Alice Smith",
            &a,
            vec![
                (
                    "proxyAddresses",
                    vec![pa.as_str(), pal.as_str(), "X500:/o=acme/cn=alice"],
                ),
                ("userAccountControl", vec!["544"]),
                ("displayName", vec!["Alice Smith"]),
                ("department", vec!["Sales"]),
            ],
        )
        .await;
    let bob = t.person("Bob, Jr.", &b, vec![]).await; // disabled: 546
    let carol = format!("CN=Carol,{}", t.people);
    t.add(
        &carol,
        vec![
            (
                "objectClass",
                vec!["top", "person", "organizationalPerson", "contact"],
            ),
            ("mail", vec![c.as_str()]),
            ("targetAddress", vec!["SMTP:carol@cloud.acmecorp.com"]),
        ],
    )
    .await;
    (alice, bob, carol)
}

#[tokio::test]
async fn a_full_pull_reads_users_contacts_and_groups_keyed_on_object_guid() {
    let t = Subtree::new(TestServer::samba()).await;
    let tag = common::random();
    let (alice, bob, _carol) = ad_people_tagged(&t, &tag).await;
    let group = format!("CN=Team,{}", t.groups);
    let nested = format!("CN=Nested,{}", t.groups);
    t.add(
        &nested,
        vec![
            ("objectClass", vec!["top", "group"]),
            (
                "sAMAccountName",
                vec![&format!("n{}", &common::random()[..6])],
            ),
            ("member", vec![bob.as_str()]),
        ],
    )
    .await;
    t.add(
        &group,
        vec![
            ("objectClass", vec!["top", "group"]),
            (
                "sAMAccountName",
                vec![&format!("g{}", &common::random()[..6])],
            ),
            ("mail", vec![format!("team.{tag}@acmecorp.com").as_str()]),
            ("member", vec![alice.as_str(), nested.as_str()]),
        ],
    )
    .await;
    // nested ⊃ team: a cycle
    t.modify(
        &nested,
        vec![Mod::Add("member".into(), HashSet::from([group.clone()]))],
    )
    .await;

    let mut config = t.config();
    config.base_dns = vec![t.server.base.clone()]; // from the domain root: references
    let connector = LdapConnector::new("ad", config).unwrap();
    let pull = connector.pull(None, &NoProgress).await.unwrap();
    assert!(
        pull.complete,
        "search references are not errors: {:?}",
        pull.problems
    );
    let mine: Vec<_> = pull
        .recipients
        .iter()
        .filter(|r| r.primary_address.contains(&format!(".{tag}@")))
        .collect();
    assert_eq!(
        mine.len(),
        4,
        "{:?}",
        pull.recipients
            .iter()
            .map(|r| &r.primary_address)
            .collect::<Vec<_>>()
    );
    let a = mine
        .iter()
        .find(|r| r.primary_address == format!("alice.{tag}@acmecorp.com"))
        .unwrap();
    assert_eq!(a.aliases, vec![format!("al.{tag}@acmecorp.com")]);
    assert!(a.enabled && a.mailbox);
    assert_eq!(a.attributes.department.as_deref(), Some("Sales"));
    let guid = &t.search(&alice, "(objectClass=*)", &["objectGUID"]).await;
    let _ = guid;
    assert_eq!(a.anchor.len(), 36);
    assert!(a.etag.is_some(), "uSNChanged as etag");
    assert!(
        a.locator
            .as_deref()
            .is_some_and(|dn| dn.eq_ignore_ascii_case(&alice)),
        "named by its DN: {:?}",
        a.locator
    );
    let b = mine
        .iter()
        .find(|r| r.primary_address == format!("bob.{tag}@acmecorp.com"))
        .unwrap();
    assert!(!b.enabled, "userAccountControl 546 is disabled");
    let c = mine
        .iter()
        .find(|r| r.primary_address == format!("carol.{tag}@acmecorp.com"))
        .unwrap();
    assert!(!c.mailbox);
    assert_eq!(c.forwards_to.as_deref(), Some("carol@cloud.acmecorp.com"));
    let g = mine
        .iter()
        .find(|r| r.primary_address == format!("team.{tag}@acmecorp.com"))
        .unwrap();
    assert_eq!(g.kind, RecipientKind::Group);
    assert_eq!(
        g.members,
        vec![
            format!("alice.{tag}@acmecorp.com"),
            format!("bob.{tag}@acmecorp.com")
        ]
    );
    assert!(pull.cursor.unwrap().contains("dirsync"));
}

#[tokio::test]
async fn contact_stubs_are_written_with_proxy_and_target_addresses() {
    let t = Subtree::new(TestServer::samba()).await;
    let connector = LdapConnector::new("ad", t.config()).unwrap();
    let s = stub("google:7", "zoe@acmecorp.com");
    let created = connector.apply(&create(&s)).await.unwrap().found.unwrap();
    assert_eq!(
        created.id.len(),
        36,
        "objectGUID of the contact: {}",
        created.id
    );
    let e = &t.search(&t.stubs, "(objectClass=contact)", &["*"]).await[0];
    assert_eq!(values(e, "mail"), ["zoe@acmecorp.com"]);
    let proxies: HashSet<&str> = values(e, "proxyAddresses").into_iter().collect();
    assert_eq!(
        proxies,
        HashSet::from(["SMTP:zoe@acmecorp.com", "smtp:alias.zoe@acmecorp.com"])
    );
    assert_eq!(values(e, "targetAddress"), ["SMTP:zoe@gapps.acmecorp.com"]);
    assert_eq!(values(e, "displayName"), ["Smith, Zoë"]);
    assert_eq!(values(e, "company"), ["Acme"]);
    assert_eq!(values(e, "department"), ["R&D"]);
    assert_eq!(values(e, "description"), ["coexist:google:7"]);

    assert_created_again_finds_it(&t, &connector, &s, &created).await;
    let pull = connector.pull(None, &NoProgress).await.unwrap();
    assert_eq!(pull.stubs.len(), 1);
    assert_eq!(StubField::changed(&pull.stubs[0].stub, &s), vec![]);
    assert!(
        pull.recipients.is_empty(),
        "the contact is a stub, not a recipient"
    );

    let mut s2 = s.clone();
    s2.primary_address = "zoe.smith@acmecorp.com".into();
    s2.route = Route::Address("zoe.smith@gapps.acmecorp.com".into());
    let renamed = connector
        .apply(&update(
            &created,
            &s,
            &s2,
            vec![StubField::PrimaryAddress, StubField::Route],
        ))
        .await
        .unwrap()
        .found
        .unwrap();
    assert!(
        renamed
            .locator
            .to_lowercase()
            .starts_with("cn=zoe.smith@acmecorp.com,"),
        "{}",
        renamed.locator
    );
    assert_eq!(renamed.id, created.id);
    let e = &t.search(&t.stubs, "(objectClass=contact)", &["*"]).await[0];
    assert_eq!(
        values(e, "targetAddress"),
        ["SMTP:zoe.smith@gapps.acmecorp.com"]
    );
    assert!(values(e, "proxyAddresses").contains(&"SMTP:zoe.smith@acmecorp.com"));

    assert_deleted_twice(&t, &connector, &renamed, &s2).await;
}

async fn incremental(method: Incremental, expect: &str) {
    let t = Subtree::new(TestServer::samba()).await;
    let (alice, bob, _) = ad_people(&t).await;
    let mut config = t.config();
    config.incremental = method;
    let connector = LdapConnector::new("ad", config).unwrap();
    let full = connector.pull(None, &NoProgress).await.unwrap();
    assert_eq!(full.recipients.len(), 3);
    let cursor = full.cursor.unwrap();
    assert!(cursor.contains(expect), "{cursor}");
    let bob_anchor = full
        .recipients
        .iter()
        .find(|r| r.primary_address == "bob@acmecorp.com")
        .unwrap()
        .anchor
        .clone();

    t.replace(&alice, "title", "Boss").await;
    t.delete(&bob).await;
    let delta = connector.pull(Some(&cursor), &NoProgress).await.unwrap();
    assert_eq!(delta.mode, PullMode::Delta);
    let a = delta
        .recipients
        .iter()
        .find(|r| r.primary_address == "alice@acmecorp.com")
        .expect("alice changed");
    assert_eq!(a.attributes.title.as_deref(), Some("Boss"));
    assert!(
        a.locator
            .as_deref()
            .is_some_and(|dn| dn.eq_ignore_ascii_case(&alice)),
        "a delta names it by its DN too: {:?}",
        a.locator
    );
    assert_eq!(
        a.aliases,
        vec!["al@acmecorp.com"],
        "a delta reads whole objects"
    );
    assert!(delta.removed.contains(&bob_anchor), "{:?}", delta.removed);
    assert!(
        delta
            .recipients
            .iter()
            .all(|r| r.primary_address != "carol@acmecorp.com"),
        "unchanged objects are not re-read"
    );
}

#[tokio::test]
async fn dirsync_deltas_return_changed_objects_and_tombstones() {
    incremental(Incremental::Auto, "dirsync").await;
}

#[tokio::test]
async fn usn_changed_deltas_return_changed_objects_and_tombstones() {
    incremental(Incremental::UsnChanged, "\"usn\"").await;
}

#[tokio::test]
async fn a_dirsync_cookie_the_server_rejects_leads_to_a_full_read() {
    let t = Subtree::new(TestServer::samba()).await;
    ad_people(&t).await;
    let connector = LdapConnector::new("ad", t.config()).unwrap();
    let full = connector.pull(None, &NoProgress).await.unwrap();
    let v: serde_json::Value = serde_json::from_str(full.cursor.as_deref().unwrap()).unwrap();
    let bogus = serde_json::json!({"v": 1, "scope": v["scope"], "method": "dirsync", "cookie": "bm90IGEgY29va2ll"});
    let p = connector
        .pull(Some(&bogus.to_string()), &NoProgress)
        .await
        .unwrap();
    assert_eq!(p.mode, PullMode::Full);
    assert_eq!(p.recipients.len(), 3);
}

/// A delta whose re-read of the changed objects stops part-way is
/// incomplete and removes only the tombstones: an object the re-read
/// missed is not taken for deleted.
async fn an_incomplete_reread_removes_only_tombstones(method: Incremental, expect: &str) {
    let t = Subtree::new(TestServer::samba()).await;
    let others = format!("OU=others,{}", t.dn);
    t.add(
        &others,
        vec![("objectClass", vec!["top", "organizationalUnit"])],
    )
    .await;
    let alice = t.person("Alice", "alice@acmecorp.com", vec![]).await;
    let bob = format!("CN=Bob,{others}");
    t.add(
        &bob,
        vec![
            (
                "objectClass",
                vec!["top", "person", "organizationalPerson", "user"],
            ),
            (
                "sAMAccountName",
                vec![&format!("t{}", &common::random()[..6])],
            ),
            ("mail", vec!["bob@acmecorp.com"]),
        ],
    )
    .await;
    let carol = t.person("Carol", "carol@acmecorp.com", vec![]).await;
    // In the clear: the proxy below cuts on the plain LDAP bytes.
    let mut config = t.cleartext_config();
    config.base_dns = vec![t.people.clone(), others.clone()];
    config.incremental = method;
    let full = LdapConnector::new("ad", config.clone())
        .unwrap()
        .pull(None, &NoProgress)
        .await
        .unwrap();
    assert!(full.complete, "{:?}", full.problems);
    let anchor = |address: &str| {
        full.recipients
            .iter()
            .find(|r| r.primary_address == address)
            .unwrap()
            .anchor
            .clone()
    };
    let (bob_anchor, carol_anchor) = (anchor("bob@acmecorp.com"), anchor("carol@acmecorp.com"));
    let cursor = full.cursor.clone().unwrap();
    assert!(cursor.contains(expect), "{cursor}");

    t.replace(&alice, "title", "Boss").await;
    t.replace(&bob, "title", "Clerk").await;
    t.delete(&carol).await;
    // The re-read of `others` (the search naming Bob's objectGUID) is cut,
    // as a DC restarting in the middle of that search would; every other
    // request passes.
    let guid = coexist_ldap::entry::guid_to_bytes(&bob_anchor).unwrap();
    let upstream = t.server.url.trim_start_matches("ldap://").to_string();
    let cut = Cut::WhenClientSends(vec![others.into_bytes(), guid.to_vec()]);
    config.url = format!("ldap://{}", proxy("127.0.0.1", upstream, cut).await);
    config.timeout_seconds = 5;
    let delta = LdapConnector::new("ad", config)
        .unwrap()
        .pull(Some(&cursor), &NoProgress)
        .await
        .unwrap();
    assert_eq!(delta.mode, PullMode::Delta);
    assert!(!delta.complete, "the re-read stopped part-way");
    assert!(
        delta
            .recipients
            .iter()
            .any(|r| r.primary_address == "alice@acmecorp.com"),
        "{:?}",
        delta.recipients
    );
    assert!(
        !delta.removed.contains(&bob_anchor),
        "Bob changed and was not re-read: he is not removed"
    );
    assert!(
        delta.removed.contains(&carol_anchor),
        "Carol's tombstone is a deletion the server reported: {:?}",
        delta.removed
    );
    let text = format!("{:?}", delta.problems);
    assert!(text.contains("stopped part-way"), "{text}");
    assert!(
        delta.problems.iter().any(|p| p
            .object
            .to_ascii_lowercase()
            .starts_with(&bob.to_ascii_lowercase())
            && p.message.contains("not taken for deleted")),
        "a problem names Bob by his DN: {text}"
    );
}

#[tokio::test]
async fn a_dirsync_delta_whose_reread_stops_part_way_removes_only_tombstones() {
    an_incomplete_reread_removes_only_tombstones(Incremental::Auto, "dirsync").await;
}

#[tokio::test]
async fn a_usn_changed_delta_whose_reread_stops_part_way_removes_only_tombstones() {
    an_incomplete_reread_removes_only_tombstones(Incremental::UsnChanged, "\"usn\"").await;
}

/// A bind account with the rights any domain user has (no "Replicating
/// Directory Changes", so no DirSync; no read access to `CN=Deleted
/// Objects`, so no tombstones) still sees a deleted user in its next delta:
/// otherwise that person's stubs elsewhere stay and mail loops.
#[tokio::test]
async fn a_bind_account_with_ordinary_rights_still_sees_a_deleted_user_in_its_delta() {
    let t = Subtree::new(TestServer::samba()).await;
    let tag = common::random();
    let (alice, bob, _carol) = ad_people_tagged(&t, &tag).await;
    let password = "Ordinary-Rights-9x!";
    let reader = t.bind_user(&format!("reader-{tag}"), password).await;
    let connector = LdapConnector::new("ad", t.config_as(&reader, password)).unwrap();
    let full = connector.pull(None, &NoProgress).await.unwrap();
    let cursor = full.cursor.clone().expect("a cursor for deltas");
    assert!(
        cursor.contains("\"usn\""),
        "without the DirSync right the deltas use uSNChanged: {cursor}"
    );
    let alice_anchor = common::find(&full, &format!("alice.{tag}@acmecorp.com"))
        .anchor
        .clone();

    t.delete(&alice).await;
    t.replace(&bob, "title", "Intern").await;
    let delta = connector.pull(Some(&cursor), &NoProgress).await.unwrap();
    assert_eq!(delta.mode, PullMode::Delta);
    assert!(delta.complete);
    assert!(
        delta.removed.contains(&alice_anchor),
        "the deleted user is seen as removed: {:?}",
        delta.removed
    );
    assert!(
        delta
            .recipients
            .iter()
            .any(|r| r.primary_address == format!("bob.{tag}@acmecorp.com")),
        "the changed user is read again"
    );
}

/// A uSNChanged cursor written before the anchors were kept in it cannot
/// find deletions: the next pull reads in full (and keeps them from then on).
#[tokio::test]
async fn a_usn_changed_cursor_without_anchors_leads_to_a_full_read() {
    let t = Subtree::new(TestServer::samba()).await;
    ad_people(&t).await;
    let mut config = t.config();
    config.incremental = Incremental::UsnChanged;
    let connector = LdapConnector::new("ad", config).unwrap();
    let full = connector.pull(None, &NoProgress).await.unwrap();
    let mut v: serde_json::Value = serde_json::from_str(full.cursor.as_deref().unwrap()).unwrap();
    assert_eq!(v["ids"].as_array().map(Vec::len), Some(3), "{v}");
    v.as_object_mut().unwrap().remove("ids");
    let p = connector
        .pull(Some(&v.to_string()), &NoProgress)
        .await
        .unwrap();
    assert_eq!(p.mode, PullMode::Full);
    assert!(p.cursor.unwrap().contains("\"ids\""));
}

/// Exchange keeps the user accounts of shared, room and equipment
/// mailboxes disabled (userAccountControl 514) while their mailboxes
/// receive mail: they stay enabled recipients; a disabled user mailbox
/// does not.
#[tokio::test]
async fn shared_room_and_equipment_mailboxes_are_not_read_as_disabled_accounts() {
    let t = Subtree::new(TestServer::samba()).await;
    let tag = common::random();
    let at = |name: &str| format!("{name}.{tag}@acmecorp.com");
    for (name, details) in [
        ("shared", "4"),
        ("room", "16"),
        ("equipment", "32"),
        ("left", "1"),
    ] {
        t.person(
            name,
            &at(name),
            vec![
                ("userAccountControl", vec!["514"]),
                ("msExchRecipientTypeDetails", vec![details]),
            ],
        )
        .await;
    }
    t.person(
        "gone",
        &at("gone"),
        vec![("userAccountControl", vec!["514"])],
    )
    .await;
    let connector = LdapConnector::new("ad", t.config()).unwrap();
    let pull = connector.pull(None, &NoProgress).await.unwrap();
    for name in ["shared", "room", "equipment"] {
        assert!(common::find(&pull, &at(name)).enabled, "{name}");
    }
    for name in ["left", "gone"] {
        assert!(!common::find(&pull, &at(name)).enabled, "{name}");
    }
}
