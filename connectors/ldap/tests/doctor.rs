//! `coexist doctor`'s schema check ("schema for stubs") against the real
//! servers of `deploy/testenv.sh`: the main slapd (misc.schema, no
//! qmail-ldap schema), the second slapd `slapd-qmail` (qmail-ldap's schema,
//! no misc.schema) and Samba AD (schema extended with targetAddress). Each
//! stub style is checked where it fits and where it does not, before
//! anything is written.

// Integration tests: helpers fail loudly, like the tests they serve.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use coexist_connector::{Connector, Finding};
use coexist_ldap::{LdapConfig, LdapConnector, StubSchema};
use common::{Subtree, TestServer};

/// Runs doctor with `config` and returns every finding and the schema one.
async fn doctor(config: LdapConfig) -> (Vec<Finding>, Finding) {
    let findings = LdapConnector::new("mail", config).unwrap().doctor().await;
    let schema = findings
        .iter()
        .find(|f| f.check == "schema for stubs")
        .cloned()
        .unwrap_or_else(|| panic!("no schema finding: {findings:#?}"));
    assert!(!schema.manual, "{schema:?}");
    (findings, schema)
}

/// The other findings (bind, base DNs, stub OU) pass: only the schema is
/// at stake in these tests.
fn others_pass(findings: &[Finding]) {
    for f in findings.iter().filter(|f| f.check != "schema for stubs") {
        assert!(f.ok, "{f:?}");
    }
}

/// Runs doctor with `config`, checks that the other findings pass, and
/// returns the schema one.
async fn schema_finding(config: LdapConfig) -> Finding {
    let (findings, schema) = doctor(config).await;
    others_pass(&findings);
    schema
}

/// The finding's detail names each of `words`.
fn assert_detail_names(finding: &Finding, words: &[&str]) {
    for words in words {
        assert!(
            finding.detail.contains(words),
            "{words}: {}",
            finding.detail
        );
    }
}

#[tokio::test]
async fn main_slapd_holds_inet_local_mail_recipient_stubs() {
    let t = Subtree::new(TestServer::slapd()).await;
    let mut config = t.config();
    config.stub_schema = StubSchema::InetLocalMailRecipient;
    let schema = schema_finding(config).await;
    assert!(schema.ok, "{schema:?}");
    assert_detail_names(
        &schema,
        &[
            "inetLocalMailRecipient",
            "inetOrgPerson",
            "mailLocalAddress",
            "mailRoutingAddress",
            "mailHost",
            "marker_attribute description",
        ],
    );
}

#[tokio::test]
async fn main_slapd_lacks_qmail_ldap_schema_for_qmail_stubs() {
    let t = Subtree::new(TestServer::slapd()).await;
    let mut config = t.config();
    config.stub_schema = StubSchema::Qmail;
    let schema = schema_finding(config).await;
    assert!(!schema.ok, "{schema:?}");
    assert_detail_names(
        &schema,
        &[
            "stub_schema \"qmail\"",
            "objectClass qmailUser",
            "mailForwardingAddress",
            "deliveryMode",
            "load qmail.schema",
            // The server has misc.schema: the other style is suggested.
            "set stub_schema = \"inet_local_mail_recipient\"",
        ],
    );
    // inetOrgPerson is there: no advice to load the person schemas.
    assert!(
        !schema.detail.contains("inetorgperson.schema"),
        "{}",
        schema.detail
    );
    // Nothing was written while checking.
    assert!(t.search(&t.stubs, "(mail=*)", &["1.1"]).await.is_empty());
}

#[tokio::test]
async fn qmail_slapd_holds_qmail_stubs() {
    let t = Subtree::new(TestServer::slapd_qmail()).await;
    let mut config = t.config();
    config.stub_schema = StubSchema::Qmail;
    let schema = schema_finding(config).await;
    assert!(schema.ok, "{schema:?}");
    assert_detail_names(
        &schema,
        &[
            "qmailUser",
            "mailForwardingAddress",
            "mailAlternateAddress",
            "deliveryMode",
            "accountStatus",
        ],
    );
}

#[tokio::test]
async fn qmail_slapd_lacks_misc_schema_for_the_default_stubs() {
    let t = Subtree::new(TestServer::slapd_qmail()).await;
    // The OpenLDAP default: inetLocalMailRecipient.
    let config = t.config();
    assert_eq!(config.stub_schema, StubSchema::InetLocalMailRecipient);
    let schema = schema_finding(config).await;
    assert!(!schema.ok, "{schema:?}");
    assert_detail_names(
        &schema,
        &[
            "stub_schema \"inet_local_mail_recipient\"",
            "objectClass inetLocalMailRecipient",
            "mailLocalAddress",
            "mailRoutingAddress",
            "misc.schema",
            // The server has qmail-ldap's schema: the qmail style is suggested.
            "set stub_schema = \"qmail\"",
            "qmailUser",
        ],
    );
}

#[tokio::test]
async fn a_marker_attribute_the_server_lacks_is_named() {
    let t = Subtree::new(TestServer::slapd()).await;
    let mut config = t.config();
    config.marker_attribute = "coexistMarker".into();
    let (_, schema) = doctor(config).await;
    assert!(!schema.ok, "{schema:?}");
    assert!(
        schema
            .detail
            .contains("marker_attribute `coexistMarker` is not an attribute type"),
        "{}",
        schema.detail
    );
    // Defined on the server, but not allowed on inetOrgPerson stubs.
    let mut config = t.config();
    config.marker_attribute = "uniqueMember".into();
    let (_, schema) = doctor(config).await;
    assert!(!schema.ok, "{schema:?}");
    assert!(
        schema.detail.contains("`uniqueMember` is defined")
            && schema.detail.contains("do not allow it"),
        "{}",
        schema.detail
    );
}

#[tokio::test]
async fn samba_holds_ad_contact_stubs_with_target_address() {
    let t = Subtree::new(TestServer::samba()).await;
    let config = t.config();
    assert_eq!(config.stub_schema, StubSchema::AdContact);
    let schema = schema_finding(config).await;
    assert!(schema.ok, "{schema:?}");
    assert_detail_names(
        &schema,
        &["contact", "targetAddress", "proxyAddresses", "description"],
    );
}

#[tokio::test]
async fn an_unreadable_schema_is_a_failed_finding_saying_so() {
    let t = Subtree::new(TestServer::slapd()).await;
    // A bind DN of its own, refused cn=Subschema by an access rule that
    // names only it (placed before the frontend's `by * read`).
    let user = t.bind_user("noschema", "noschema-pw").await;
    let rule = format!("to dn.base=\"cn=subschema\" by dn.exact=\"{user}\" none by * break");
    let frontend = "dn: olcDatabase={-1}frontend,cn=config\nchangetype: modify\n";
    coexist_testenv::slapd_config(&format!(
        "{frontend}add: olcAccess\nolcAccess: {{2}}{rule}\n"
    ));
    let config = t.config_as(&user, "noschema-pw");
    let findings = LdapConnector::new("mail", config).unwrap().doctor().await;
    coexist_testenv::slapd_config(&format!("{frontend}delete: olcAccess\nolcAccess: {rule}\n"));
    let schema = findings
        .iter()
        .find(|f| f.check == "schema for stubs")
        .unwrap_or_else(|| panic!("no schema finding: {findings:#?}"));
    assert!(!schema.ok, "{schema:?}");
    assert_detail_names(
        schema,
        &[
            "cannot read the server's schema",
            "cn=Subschema",
            "grant the bind DN read access",
            "inetLocalMailRecipient",
        ],
    );
    // The other checks still ran and passed.
    others_pass(&findings);
}

/// The finding named `check`.
fn finding<'f>(findings: &'f [Finding], check: &str) -> &'f Finding {
    findings
        .iter()
        .find(|f| f.check == check)
        .unwrap_or_else(|| panic!("no finding {check:?}: {findings:#?}"))
}

#[tokio::test]
async fn doctor_names_the_rights_an_ordinary_ad_bind_account_lacks() {
    let t = Subtree::new(TestServer::samba()).await;
    let password = "Ordinary-Rights-9x!";
    let reader = t
        .bind_user(&format!("doctor-{}", common::random()), password)
        .await;
    let (findings, _) = doctor(t.config_as(&reader, password)).await;

    let incremental = finding(&findings, "incremental reads");
    assert!(incremental.ok, "{incremental:?}");
    assert_detail_names(
        incremental,
        &[
            "uSNChanged",
            "Replicating Directory Changes",
            "listing the anchors",
        ],
    );
    let rights = finding(&findings, "rights on the stub OU");
    assert!(!rights.ok, "{rights:?}");
    assert_detail_names(rights, &[&t.stubs, "Delegate Control", "dsacls"]);
}

#[tokio::test]
async fn doctor_says_an_ad_administrator_uses_dirsync_and_may_write_stubs() {
    let t = Subtree::new(TestServer::samba()).await;
    let (findings, _) = doctor(t.config()).await;
    others_pass(&findings);
    assert_detail_names(
        finding(&findings, "incremental reads"),
        &["DirSync", "tombstones"],
    );
    assert_detail_names(
        finding(&findings, "rights on the stub OU"),
        &["may create", &t.stubs],
    );
}

#[tokio::test]
async fn doctor_says_slapd_with_syncprov_uses_content_sync() {
    let t = Subtree::new(TestServer::slapd()).await;
    let (findings, _) = doctor(t.config()).await;
    others_pass(&findings);
    assert_detail_names(finding(&findings, "incremental reads"), &["content sync"]);
}
