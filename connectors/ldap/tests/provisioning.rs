//! `Connector::provision` against the real slapd and Samba AD of
//! `deploy/testenv.sh`: the account is made under the template's base,
//! reads back as the recipient the next pull lists, and its password works.

// Integration tests: helpers fail loudly, like the tests they serve.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::BTreeMap;

use coexist_connector::{Attributes, Connector, NewAccount, NoProgress, Secret};
use coexist_ldap::provision::ProvisionTemplate;
use coexist_ldap::LdapConnector;
use common::{find, random, values, Subtree, TestServer};
use ldap3::{LdapConnAsync, LdapConnSettings};

fn account(address: &str, aliases: &[&str], password: &str) -> NewAccount {
    NewAccount {
        primary_address: address.into(),
        aliases: aliases.iter().map(|a| a.to_string()).collect(),
        attributes: Attributes {
            given_name: Some("Ann".into()),
            surname: Some("Smith".into()),
            title: Some("Director".into()),
            ..Attributes::default()
        },
        extra: BTreeMap::new(),
        password: Some(Secret::new(password)),
    }
}

fn template(t: &Subtree) -> ProvisionTemplate {
    ProvisionTemplate {
        base: t.people.clone(),
        object_classes: None,
        alias_attribute: None,
        attributes: BTreeMap::new(),
        suspend: BTreeMap::new(),
    }
}

/// The result of a simple bind as `dn` with `password` (its code, and the
/// server's diagnostic message).
async fn bind(server: &TestServer, dn: &str, password: &str) -> (u32, String) {
    let (conn, mut ldap) = LdapConnAsync::with_settings(LdapConnSettings::new(), &server.url)
        .await
        .unwrap();
    tokio::spawn(async move {
        let _ = conn.drive().await;
    });
    let result = ldap.simple_bind(dn, password).await.unwrap();
    let _ = ldap.unbind().await;
    (result.rc, result.text)
}

#[tokio::test]
async fn an_openldap_account_is_made_under_the_base_with_its_addresses_and_password() {
    let t = Subtree::new(TestServer::slapd()).await;
    let local = format!("ann{}", random());
    let address = format!("{local}@acmecorp.com");
    let alias = format!("a.{local}@acmecorp.com");
    let mut config = t.config();
    let mut tpl = template(&t);
    tpl.attributes
        .insert("mailHost".into(), vec!["mail.acmecorp.com".into()]);
    config.provision = Some(tpl);
    let connector = LdapConnector::new("ldap", config).unwrap();

    let made = connector
        .provision(&account(&address, &[&alias], "Initial-Pw-4711"))
        .await
        .unwrap();
    assert!(!made.existed);
    assert_eq!(made.locator, format!("uid={local},{}", t.people));
    assert!(made.recipient.mailbox);
    assert_eq!(made.recipient.primary_address, address);
    assert!(made.recipient.aliases.contains(&alias), "{made:?}");

    // The entry, as the directory holds it.
    let entry = t.search(&t.people, &format!("(uid={local})"), &["*"]).await;
    assert_eq!(entry.len(), 1);
    let e = &entry[0];
    assert_eq!(values(e, "mail"), [address.as_str()]);
    let mut local_addresses = values(e, "mailLocalAddress");
    local_addresses.sort();
    let mut expected = vec![address.as_str(), alias.as_str()];
    expected.sort();
    assert_eq!(local_addresses, expected);
    assert_eq!(values(e, "mailHost"), ["mail.acmecorp.com"]);
    assert_eq!(values(e, "cn"), ["Ann Smith"]);
    assert_eq!(values(e, "title"), ["Director"]);
    // The server hashed the password (Password Modify), and it works.
    assert!(!values(e, "userPassword")
        .iter()
        .any(|v| v.contains("Initial-Pw-4711")));
    assert_eq!(bind(&t.server, &made.locator, "Initial-Pw-4711").await.0, 0);
    assert_eq!(bind(&t.server, &made.locator, "wrong").await.0, 49);

    // The next pull lists it, with the anchor the provisioning returned.
    let pull = connector.pull(None, &NoProgress).await.unwrap();
    let read = find(&pull, &address);
    assert_eq!(read.anchor, made.recipient.anchor);

    // Again: it exists, nothing is changed (the password stays).
    let again = connector
        .provision(&account(&address, &[&alias], "Another-Pw-0815"))
        .await
        .unwrap();
    assert!(again.existed);
    assert_eq!(again.recipient.anchor, made.recipient.anchor);
    assert_eq!(bind(&t.server, &made.locator, "Initial-Pw-4711").await.0, 0);

    // An entry of another person at that DN is not taken over.
    let other = connector
        .provision(&account(
            &format!("{local}@other.acmecorp.com"),
            &[],
            "Initial-Pw-4711",
        ))
        .await
        .unwrap_err();
    assert!(other.to_string().contains("exists already, for"), "{other}");
}

#[tokio::test]
async fn a_system_without_a_provision_table_creates_nothing() {
    let t = Subtree::new(TestServer::slapd()).await;
    let connector = LdapConnector::new("ldap", t.config()).unwrap();
    let error = connector
        .provision(&account("nobody@acmecorp.com", &[], "Initial-Pw-4711"))
        .await
        .unwrap_err();
    assert!(
        error.to_string().contains("no `provision` table"),
        "{error}"
    );
    assert!(t
        .search(&t.people, "(mail=nobody@acmecorp.com)", &["1.1"])
        .await
        .is_empty());
}

#[tokio::test]
async fn an_active_directory_user_is_made_enabled_with_its_password_to_change() {
    let t = Subtree::new(TestServer::samba()).await;
    let local = format!("p{}", &random()[..8]);
    let address = format!("{local}@acmecorp.com");
    let alias = format!("x.{local}@acmecorp.com");
    let mut config = t.config();
    config.provision = Some(template(&t));
    let connector = LdapConnector::new("ad", config).unwrap();
    let mut new = account(&address, &[&alias], "Initial-Pw-4711!");
    new.attributes.display_name = Some(format!("Ann Smith {local}"));
    let made = connector.provision(&new).await.unwrap();
    assert!(!made.existed);
    assert_eq!(made.locator, format!("CN=Ann Smith {local},{}", t.people));
    assert!(made.recipient.mailbox);
    assert!(made.recipient.enabled, "an enabled account");
    assert_eq!(made.recipient.primary_address, address);
    assert!(made.recipient.aliases.contains(&alias), "{made:?}");

    let found = t
        .search(&t.people, &format!("(sAMAccountName={local})"), &["*"])
        .await;
    assert_eq!(found.len(), 1);
    let e = &found[0];
    assert_eq!(values(e, "userPrincipalName"), [address.as_str()]);
    assert_eq!(values(e, "userAccountControl"), ["512"]);
    assert_eq!(values(e, "pwdLastSet"), ["0"]);
    let mut proxies = values(e, "proxyAddresses");
    proxies.sort();
    assert_eq!(
        proxies,
        [format!("SMTP:{address}"), format!("smtp:{alias}")]
    );
    // The password was set: the right one is refused only because it must
    // be changed first (AD's 773), a wrong one as wrong (52e).
    let (code, text) = bind(&t.server, &made.locator, "Initial-Pw-4711!").await;
    assert_eq!(code, 49);
    assert!(text.contains("773"), "{text}");
    let (code, text) = bind(&t.server, &made.locator, "wrong").await;
    assert_eq!(code, 49);
    assert!(text.contains("52e"), "{text}");

    // A sAMAccountName longer than AD allows is refused before any write.
    let long = format!("{}{local}@acmecorp.com", "l".repeat(20));
    let error = connector
        .provision(&account(&long, &[], "Initial-Pw-4711!"))
        .await
        .unwrap_err();
    assert!(error.to_string().contains("sAMAccountName"), "{error}");
}

#[tokio::test]
async fn a_suspended_account_reads_disabled_on_openldap_and_active_directory() {
    // OpenLDAP: the template's suspend attributes (shadowExpire, which the
    // default disabled_when rules read).
    let t = Subtree::new(TestServer::slapd()).await;
    let mut config = t.config();
    let mut tpl = template(&t);
    tpl.suspend
        .insert("objectClass".into(), vec!["shadowAccount".into()]);
    tpl.suspend.insert("shadowExpire".into(), vec!["0".into()]);
    config.provision = Some(tpl);
    let connector = LdapConnector::new("ldap", config).unwrap();
    let address = format!("s{}@acmecorp.com", random());
    let made = connector
        .provision(&account(&address, &[], "Initial-Pw-4711"))
        .await
        .unwrap();
    connector.suspend(&made.recipient).await.unwrap();
    connector.suspend(&made.recipient).await.unwrap();
    let pull = connector.pull(None, &NoProgress).await.unwrap();
    assert!(!find(&pull, &address).enabled, "read disabled");

    // Without `suspend`, OpenLDAP accounts are not suspended.
    let mut plain = t.config();
    plain.provision = Some(template(&t));
    let error = LdapConnector::new("ldap", plain)
        .unwrap()
        .suspend(&made.recipient)
        .await
        .unwrap_err();
    assert!(error.to_string().contains("no `suspend`"), "{error}");

    // Active Directory: bit 2 of userAccountControl.
    let t = Subtree::new(TestServer::samba()).await;
    let local = format!("s{}", &random()[..8]);
    let address = format!("{local}@acmecorp.com");
    let mut config = t.config();
    config.provision = Some(template(&t));
    let connector = LdapConnector::new("ad", config).unwrap();
    let made = connector
        .provision(&account(&address, &[], "Initial-Pw-4711!"))
        .await
        .unwrap();
    connector.suspend(&made.recipient).await.unwrap();
    let found = t
        .search(
            &t.people,
            &format!("(sAMAccountName={local})"),
            &["userAccountControl"],
        )
        .await;
    assert_eq!(values(&found[0], "userAccountControl"), ["514"]);
    let pull = connector.pull(None, &NoProgress).await.unwrap();
    assert!(!find(&pull, &address).enabled, "read disabled");
}
