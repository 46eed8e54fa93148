//! `coexist move`'s changes of an old account (`Connector::forward` and
//! `retire`) against the real slapd and the qmail-shaped slapd: what a
//! pull reads after each.

// Integration tests: helpers fail loudly, like the tests they serve.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use coexist_connector::{Connector, NoProgress, Recipient};
use coexist_ldap::{LdapConnector, StubSchema};
use common::{values, Subtree, TestServer};

async fn read(connector: &LdapConnector, anchor: &str) -> Option<Recipient> {
    let pull = connector.pull(None, &NoProgress).await.unwrap();
    pull.recipients.into_iter().find(|r| r.anchor == anchor)
}

async fn found(connector: &LdapConnector, address: &str) -> Recipient {
    let pull = connector.pull(None, &NoProgress).await.unwrap();
    pull.recipients
        .into_iter()
        .find(|r| r.primary_address == address)
        .expect("the account")
}

#[tokio::test]
async fn an_openldap_account_forwards_then_retires_keeping_what_coexist_did_not_set() {
    let t = Subtree::new(TestServer::slapd()).await;
    let dn = t
        .person(
            "ann",
            "ann@acmecorp.com",
            vec![(
                "mailLocalAddress",
                vec!["ann@acmecorp.com", "a.nn@acmecorp.com"],
            )],
        )
        .await;
    let connector = LdapConnector::new("ldap", t.config()).unwrap();
    let ann = found(&connector, "ann@acmecorp.com").await;
    assert!(ann.mailbox);

    connector
        .forward(&ann, "ann@gapps.acmecorp.com")
        .await
        .unwrap();
    connector
        .forward(&ann, "ann@gapps.acmecorp.com")
        .await
        .unwrap();
    let forwarding = read(&connector, &ann.anchor).await.unwrap();
    assert!(!forwarding.mailbox, "a forwarding entry now");
    assert_eq!(
        forwarding.forwards_to.as_deref(),
        Some("ann@gapps.acmecorp.com")
    );

    let addresses = [
        "ann@acmecorp.com".to_string(),
        "a.nn@acmecorp.com".to_string(),
    ];
    connector
        .retire(&forwarding, &addresses, "ann@gapps.acmecorp.com")
        .await
        .unwrap();
    // Retired: no address of the person, no forward; the entry stays.
    assert!(read(&connector, &ann.anchor).await.is_none());
    let entry = &t.search(&dn, "(objectClass=*)", &["*"]).await[0];
    assert!(values(entry, "mail").is_empty());
    assert!(values(entry, "mailLocalAddress").is_empty());
    assert!(values(entry, "mailRoutingAddress").is_empty());
    assert_eq!(values(entry, "uid"), ["ann"]);
    // Retiring again changes nothing and succeeds.
    connector
        .retire(&forwarding, &addresses, "ann@gapps.acmecorp.com")
        .await
        .unwrap();
}

#[tokio::test]
async fn a_qmail_account_forwards_with_mail_forwarding_address_and_forwardonly() {
    let t = Subtree::new(TestServer::slapd_qmail()).await;
    t.qmail_person(
        "bob",
        "bob@acmecorp.com",
        vec![
            ("accountStatus", vec!["active"]),
            ("mailMessageStore", vec!["/var/qmail/maildirs/bob/"]),
            ("deliveryMode", vec!["noprogram"]),
        ],
    )
    .await;
    let mut config = t.config();
    config.stub_schema = StubSchema::Qmail;
    let connector = LdapConnector::new("qmail", config).unwrap();
    let bob = found(&connector, "bob@acmecorp.com").await;
    assert!(bob.mailbox);
    connector
        .forward(&bob, "bob@gapps.acmecorp.com")
        .await
        .unwrap();
    connector
        .forward(&bob, "bob@gapps.acmecorp.com")
        .await
        .unwrap();
    let entry = &t
        .search(
            &bob.locator.clone().unwrap(),
            "(objectClass=*)",
            &["deliveryMode"],
        )
        .await[0];
    let mut modes = values(entry, "deliveryMode");
    modes.sort();
    assert_eq!(
        modes,
        ["forwardonly", "noprogram"],
        "the entry's own mode kept"
    );
    let forwarding = read(&connector, &bob.anchor).await.unwrap();
    assert!(!forwarding.mailbox, "deliveryMode forwardonly");
    assert_eq!(
        forwarding.forwards_to.as_deref(),
        Some("bob@gapps.acmecorp.com")
    );
    // qmailUser requires mail: the schema refuses to take it off, and the
    // error says so; the forward stays.
    let refused = connector
        .retire(
            &forwarding,
            &["bob@acmecorp.com".to_string()],
            "bob@gapps.acmecorp.com",
        )
        .await;
    assert!(refused.is_err());
    assert!(!read(&connector, &bob.anchor).await.unwrap().mailbox);
}
