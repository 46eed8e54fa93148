//! The qmail-ldap mapping against a real slapd shaped like a qmail-ldap
//! server: the second slapd of `deploy/testenv.sh` (`slapd-qmail`), which
//! has the qmail-ldap schema (`deploy/testenv/qmail.ldif`) and lacks
//! misc.schema (no `inetLocalMailRecipient`).

// Integration tests: helpers fail loudly, like the tests they serve.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::HashSet;

use coexist_connector::{
    Attributes, Connector, ConnectorError, NoProgress, Operation, PullMode, RecipientKind, Route,
    Stub, StubField,
};
use coexist_ldap::{LdapConfig, LdapConnector, StubSchema};
use coexist_testenv::var;
use common::{
    assert_created_again_finds_it, assert_deleted_twice, assert_unmarked_entry_is_refused_and_kept,
    create, update, values, Subtree, TestServer,
};

/// A person stub whose mailbox is in Exchange: local@home-routing-domain
/// (`<local part>@exchange.acmecorp.com`); no mobile number.
fn stub(anchor: &str, primary: &str) -> Stub {
    let mut s = common::stub(anchor, primary, "exchange.acmecorp.com");
    s.attributes.mobile_phone = None;
    s
}

/// A configuration writing qmail-ldap stubs into `t`.
fn qmail_config(t: &Subtree) -> LdapConfig {
    let mut c = t.config();
    c.stub_schema = StubSchema::Qmail;
    c
}

/// The attribute lists of every modify slapd-qmail logged for `dn` (its
/// `-d stats` log: `MOD dn="..."`, then `MOD attr=a b c` of the same op).
fn logged_modifies(dn: &str) -> Vec<Vec<String>> {
    let log = std::fs::read_to_string(var("COEXIST_TEST_SLAPD_QMAIL_LOG")).unwrap();
    let lines: Vec<&str> = log.lines().collect();
    let needle = format!(" MOD dn=\"{dn}\"");
    let mut out = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let Some(at) = line.find(&needle) else {
            continue;
        };
        // "<time> <thread> conn=N op=M MOD dn=..."
        let op = line[..at]
            .split_whitespace()
            .skip(2)
            .collect::<Vec<_>>()
            .join(" ");
        let attrs = lines[i + 1..]
            .iter()
            .find_map(|l| {
                l.split_once(&format!("{op} MOD attr="))
                    .map(|(_, a)| a.split_whitespace().map(String::from).collect())
            })
            .unwrap_or_default();
        out.push(attrs);
    }
    out
}

#[tokio::test]
async fn qmail_stubs_are_created_updated_renamed_and_deleted_idempotently() {
    let t = Subtree::new(TestServer::slapd_qmail()).await;
    let connector = LdapConnector::new("qmail", qmail_config(&t)).unwrap();
    let s = stub("exchange:42", "zoe.oneil@acmecorp.com");
    let applied = connector.apply(&create(&s)).await.unwrap().found.unwrap();
    let dn = format!("mail=zoe.oneil@acmecorp.com,{}", t.stubs);
    assert_eq!(applied.locator, dn);
    assert_eq!(applied.id.len(), 36, "the entryUUID of the new stub");

    let e = &t
        .search(&t.stubs, "(mail=zoe.oneil@acmecorp.com)", &["*"])
        .await[0];
    let classes: HashSet<String> = values(e, "objectClass")
        .into_iter()
        .map(str::to_ascii_lowercase)
        .collect();
    assert!(
        classes.contains("qmailuser") && classes.contains("inetorgperson"),
        "{classes:?}"
    );
    assert!(!classes.contains("inetlocalmailrecipient"), "{classes:?}");
    assert_eq!(
        values(e, "mailForwardingAddress"),
        ["zoe.oneil@exchange.acmecorp.com"]
    );
    assert_eq!(values(e, "deliveryMode"), ["forwardonly"]);
    assert_eq!(values(e, "accountStatus"), ["active"]);
    assert_eq!(
        values(e, "mailAlternateAddress"),
        ["alias.zoe.oneil@acmecorp.com"]
    );
    assert_eq!(values(e, "mail"), ["zoe.oneil@acmecorp.com"]);
    assert!(values(e, "mailHost").is_empty());
    assert_eq!(values(e, "description"), ["coexist:exchange:42"]);
    assert_eq!(values(e, "cn"), ["Zoë O'Neil"]);
    assert_eq!(values(e, "sn"), ["O'Neil"]);
    assert_eq!(values(e, "departmentNumber"), ["R&D"]);

    // A second create of the same anchor finds the entry and writes nothing.
    assert_created_again_finds_it(&t, &connector, &s, &applied).await;
    assert!(
        logged_modifies(&dn).is_empty(),
        "{:?}",
        logged_modifies(&dn)
    );

    // A pull reads it back as a stub, exactly as written (the next plan is
    // empty), and never as a recipient.
    let pull = connector.pull(None, &NoProgress).await.unwrap();
    assert!(pull.complete && pull.problems.is_empty(), "{pull:?}");
    assert!(pull.recipients.is_empty(), "{:?}", pull.recipients);
    assert_eq!(pull.stubs.len(), 1);
    assert_eq!(pull.stubs[0].id, applied.id);
    assert_eq!(StubField::changed(&pull.stubs[0].stub, &s), vec![]);

    // Update: the title and the forwarding address change; the modify
    // carries those two attributes and nothing else, and an attribute an
    // admin set by hand stays.
    t.replace(&dn, "mailQuotaSize", "1000").await;
    let mut s2 = s.clone();
    s2.attributes.title = Some("Manager".into());
    s2.route = Route::Address("zoe@exchange.acmecorp.com".into());
    connector
        .apply(&update(
            &applied,
            &s,
            &s2,
            vec![StubField::Title, StubField::Route],
        ))
        .await
        .unwrap();
    let mods = logged_modifies(&dn);
    assert_eq!(
        mods.len(),
        2,
        "the hand-made modify and coexist's: {mods:?}"
    );
    let mut ours = mods[1].clone();
    ours.sort();
    assert_eq!(ours, ["mailForwardingAddress", "title"]);
    let e = &t
        .search(&t.stubs, "(mail=zoe.oneil@acmecorp.com)", &["*"])
        .await[0];
    assert_eq!(values(e, "title"), ["Manager"]);
    assert_eq!(
        values(e, "mailForwardingAddress"),
        ["zoe@exchange.acmecorp.com"]
    );
    assert_eq!(values(e, "deliveryMode"), ["forwardonly"]);
    assert_eq!(values(e, "mailQuotaSize"), ["1000"]);

    // A primary-address change renames the entry; the old primary becomes
    // nothing (it is not an alias of the new stub).
    let mut s3 = s2.clone();
    s3.primary_address = "zoe@acmecorp.com".into();
    s3.aliases = vec!["z.oneil@acmecorp.com".into()];
    let renamed = connector
        .apply(&update(
            &applied,
            &s2,
            &s3,
            vec![StubField::PrimaryAddress, StubField::Aliases],
        ))
        .await
        .unwrap()
        .found
        .unwrap();
    assert_eq!(
        renamed.locator,
        format!("mail=zoe@acmecorp.com,{}", t.stubs)
    );
    assert_eq!(renamed.id, applied.id, "a rename keeps the entryUUID");
    let found = t
        .search(&t.stubs, "(description=coexist:exchange:42)", &["*"])
        .await;
    assert_eq!(found.len(), 1);
    let e = &found[0];
    assert_eq!(values(e, "mail"), ["zoe@acmecorp.com"]);
    assert_eq!(values(e, "mailAlternateAddress"), ["z.oneil@acmecorp.com"]);
    assert_eq!(
        values(e, "mailForwardingAddress"),
        ["zoe@exchange.acmecorp.com"]
    );
    let pull = connector.pull(None, &NoProgress).await.unwrap();
    assert_eq!(pull.stubs.len(), 1);
    assert_eq!(StubField::changed(&pull.stubs[0].stub, &s3), vec![]);

    // A qmail-ldap user without coexist's marker is never deleted.
    let hand = t
        .qmail_person(
            "hand",
            "hand@acmecorp.com",
            vec![("accountStatus", vec!["active"])],
        )
        .await;
    let hand_stub = stub("exchange:hand", "hand@acmecorp.com");
    assert_unmarked_entry_is_refused_and_kept(&t, &connector, &hand, hand_stub).await;

    // Delete, then delete again: both succeed, the entry is gone.
    assert_deleted_twice(&t, &connector, &renamed, &s3).await;
}

#[tokio::test]
async fn qmail_stubs_route_by_mail_host_and_write_in_bulk() {
    let t = Subtree::new(TestServer::slapd_qmail()).await;
    let connector = LdapConnector::new("qmail", qmail_config(&t)).unwrap();
    // A smart-host route: qmail-ldap's mailHost (single-valued there), no
    // forwarding address, so no deliveryMode either.
    let mut team = stub("exchange:g1", "team@acmecorp.com");
    team.kind = RecipientKind::Group;
    team.route = Route::Host("smtp.exchange.acmecorp.com".into());
    team.attributes = Attributes::default();
    let mut ops = vec![create(&team)];
    ops.extend((0..30).map(|i| {
        create(&stub(
            &format!("exchange:{i}"),
            &format!("u{i}@acmecorp.com"),
        ))
    }));
    let results = connector.apply_many(&ops).await;
    assert!(
        results.iter().all(|r| r.is_ok()),
        "{:?}",
        results.iter().find(|r| r.is_err())
    );
    let e = &t.search(&t.stubs, "(mail=team@acmecorp.com)", &["*"]).await[0];
    assert_eq!(values(e, "mailHost"), ["smtp.exchange.acmecorp.com"]);
    assert!(values(e, "mailForwardingAddress").is_empty());
    assert!(values(e, "deliveryMode").is_empty());
    assert_eq!(values(e, "sn"), ["team"], "sn is mandatory: derived");
    assert_eq!(
        values(e, "description").into_iter().collect::<HashSet<_>>(),
        HashSet::from(["coexist:exchange:g1", "coexist-kind:group"])
    );

    let pull = connector.pull(None, &NoProgress).await.unwrap();
    assert_eq!(pull.stubs.len(), 31);
    assert!(pull.recipients.is_empty(), "{:?}", pull.recipients);
    let back = pull
        .stubs
        .iter()
        .find(|s| s.stub.anchor == "exchange:g1")
        .unwrap();
    assert_eq!(StubField::changed(&back.stub, &team), vec![]);
    // Again: every create finds its stub, nothing is added.
    let again = connector.apply_many(&ops).await;
    assert!(again.iter().all(|r| r.is_ok()));
    assert_eq!(t.marked_stubs().await, 31);
}

#[tokio::test]
async fn a_pull_reads_qmail_users_disabled_forwarding_and_stubs() {
    let t = Subtree::new(TestServer::slapd_qmail()).await;
    t.qmail_person(
        "alice",
        "alice@acmecorp.com",
        vec![
            ("accountStatus", vec!["active"]),
            ("mailMessageStore", vec!["/var/qmail/maildirs/alice/"]),
            ("mailHost", vec!["qmail1.acmecorp.com"]),
            (
                "mailAlternateAddress",
                vec!["a.smith@acmecorp.com", "alice@acme.example"],
            ),
            ("title", vec!["Engineer"]),
        ],
    )
    .await;
    let bob = t
        .qmail_person(
            "bob",
            "bob@acmecorp.com",
            vec![
                ("accountStatus", vec!["disabled"]),
                ("mailMessageStore", vec!["/var/qmail/maildirs/bob/"]),
            ],
        )
        .await;
    t.qmail_person(
        "gone",
        "gone@acmecorp.com",
        vec![("accountStatus", vec!["deleted"])],
    )
    .await;
    // noaccess: no POP/IMAP, but mail is still delivered: enabled.
    t.qmail_person(
        "noaccess",
        "noaccess@acmecorp.com",
        vec![
            ("accountStatus", vec!["noaccess"]),
            ("mailMessageStore", vec!["/var/qmail/maildirs/noaccess/"]),
        ],
    )
    .await;
    // No accountStatus at all: qmail-ldap treats the account as active.
    t.qmail_person("plain", "plain@acmecorp.com", vec![]).await;
    // Forwards only: no mailbox here.
    t.qmail_person(
        "fwd",
        "fwd@acmecorp.com",
        vec![
            ("accountStatus", vec!["active"]),
            ("deliveryMode", vec!["forwardonly"]),
            ("mailForwardingAddress", vec!["fwd@gapps.acmecorp.com"]),
        ],
    )
    .await;
    // qmail-ldap 20030901 and later say it this way.
    t.qmail_person(
        "nolocal",
        "nolocal@acmecorp.com",
        vec![
            ("deliveryMode", vec!["nolocal"]),
            ("mailMessageStore", vec!["/var/qmail/maildirs/nolocal/"]),
            ("mailForwardingAddress", vec!["nolocal@gapps.acmecorp.com"]),
        ],
    )
    .await;
    // Keeps a copy and forwards one: still a mailbox here.
    t.qmail_person(
        "copy",
        "copy@acmecorp.com",
        vec![
            ("accountStatus", vec!["active"]),
            ("mailMessageStore", vec!["/var/qmail/maildirs/copy/"]),
            ("mailForwardingAddress", vec!["copy@gapps.acmecorp.com"]),
        ],
    )
    .await;
    let connector = LdapConnector::new("qmail", qmail_config(&t)).unwrap();
    let s = stub("exchange:7", "carol@acmecorp.com");
    connector.apply(&create(&s)).await.unwrap();

    let pull = connector.pull(None, &NoProgress).await.unwrap();
    assert_eq!(pull.mode, PullMode::Full);
    assert!(pull.complete, "{:?}", pull.problems);
    assert!(pull.problems.is_empty(), "{:?}", pull.problems);
    let r = |address: &str| {
        pull.recipients
            .iter()
            .find(|r| r.primary_address == address)
            .unwrap_or_else(|| panic!("{address} not read: {:?}", pull.recipients))
    };
    assert_eq!(pull.recipients.len(), 8, "{:?}", pull.recipients);
    let alice = r("alice@acmecorp.com");
    assert!(alice.enabled && alice.mailbox && alice.forwards_to.is_none());
    let mut aliases = alice.aliases.clone();
    aliases.sort();
    assert_eq!(aliases, ["a.smith@acmecorp.com", "alice@acme.example"]);
    assert_eq!(alice.attributes.title.as_deref(), Some("Engineer"));
    assert_eq!(alice.anchor.len(), 36, "entryUUID anchor");
    assert!(!r("bob@acmecorp.com").enabled, "accountStatus: disabled");
    assert!(!r("gone@acmecorp.com").enabled, "accountStatus: deleted");
    assert!(
        r("noaccess@acmecorp.com").enabled,
        "accountStatus: noaccess"
    );
    assert!(r("plain@acmecorp.com").enabled, "no accountStatus");
    let fwd = r("fwd@acmecorp.com");
    assert!(!fwd.mailbox, "deliveryMode: forwardonly");
    assert_eq!(fwd.forwards_to.as_deref(), Some("fwd@gapps.acmecorp.com"));
    let nolocal = r("nolocal@acmecorp.com");
    assert!(!nolocal.mailbox, "deliveryMode: nolocal");
    assert_eq!(
        nolocal.forwards_to.as_deref(),
        Some("nolocal@gapps.acmecorp.com")
    );
    let copy = r("copy@acmecorp.com");
    assert!(copy.mailbox && copy.forwards_to.is_none(), "{copy:?}");

    // coexist's qmail stub is read back as a stub, not as a mailbox.
    assert!(
        pull.recipients
            .iter()
            .all(|r| r.primary_address != "carol@acmecorp.com"),
        "a stub is never a recipient"
    );
    assert_eq!(pull.stubs.len(), 1);
    assert_eq!(pull.stubs[0].stub.anchor, "exchange:7");
    assert_eq!(StubField::changed(&pull.stubs[0].stub, &s), vec![]);

    // A user disabled later shows up disabled in the next delta.
    let cursor = pull.cursor.unwrap();
    assert!(cursor.contains("syncrepl"), "{cursor}");
    let alice_dn = format!("uid=alice,{}", t.people);
    t.replace(&alice_dn, "accountStatus", "disabled").await;
    t.replace(&bob, "accountStatus", "active").await;
    let delta = connector.pull(Some(&cursor), &NoProgress).await.unwrap();
    assert_eq!(delta.mode, PullMode::Delta);
    let changed = |address: &str| {
        delta
            .recipients
            .iter()
            .find(|r| r.primary_address == address)
            .unwrap_or_else(|| panic!("{address} not in the delta: {:?}", delta.recipients))
    };
    assert!(!changed("alice@acmecorp.com").enabled);
    assert!(changed("bob@acmecorp.com").enabled);
}

#[tokio::test]
async fn without_misc_schema_inet_local_mail_recipient_stubs_give_a_clear_error() {
    // The qmail-ldap server has no misc.schema: the default stub schema
    // (inetLocalMailRecipient) cannot be written there.
    let t = Subtree::new(TestServer::slapd_qmail()).await;
    let config = t.config();
    assert_eq!(config.stub_schema, StubSchema::InetLocalMailRecipient);
    let connector = LdapConnector::new("qmail-mx", config).unwrap();
    let err = connector
        .apply(&create(&stub("g:1", "q@acmecorp.com")))
        .await
        .unwrap_err();
    let text = err.to_string();
    println!("single create: {text}");
    assert!(matches!(err, ConnectorError::Permanent { .. }), "{err:?}");
    assert!(
        text.contains("`qmail-mx`")
            && text.contains("misc.schema")
            && text.contains("objectClass inetLocalMailRecipient")
            && text.contains("stub_schema = \"qmail\""),
        "{text}"
    );
    // In bulk, every operation fails the same way, permanently (no retry).
    let ops: Vec<Operation> = (0..3)
        .map(|i| create(&stub(&format!("g:{i}"), &format!("q{i}@acmecorp.com"))))
        .collect();
    let results = connector.apply_many(&ops).await;
    for r in &results {
        let e = r.as_ref().unwrap_err();
        assert!(matches!(e, ConnectorError::Permanent { .. }), "{e:?}");
        assert!(e.to_string().contains("misc.schema"), "{e}");
    }
    assert!(t
        .search(&t.stubs, "(objectClass=*)", &["1.1"])
        .await
        .iter()
        .all(|e| e.dn == t.stubs));
    // The reads still work there: the filter's inetLocalMailRecipient parts
    // simply match nothing.
    t.qmail_person("a", "a@acmecorp.com", vec![]).await;
    let pull = connector.pull(None, &NoProgress).await.unwrap();
    assert_eq!(pull.recipients.len(), 1, "{pull:?}");
    assert!(pull.problems.is_empty(), "{:?}", pull.problems);
}
