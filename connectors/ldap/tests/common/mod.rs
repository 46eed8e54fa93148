//! Shared helpers of the integration tests: a private subtree per test
//! with a few direct LDAP calls, the stubs and stub checks several servers'
//! tests share, finding a recipient in a pull, and a TCP proxy that can cut
//! connections.
//!
//! The test servers, their settings and the ldap-utils programs come from
//! the workspace's test environment crate (`coexist_testenv`; its
//! `TestServer` and `random` are re-exported here): the servers are started by `deploy/testenv.sh up` (the README's
//! test command does it), and a test whose server's settings are missing
//! fails saying so: none skips silently.
// Test support code: failing loudly is its job.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashSet;
use std::ops::Deref;

use coexist_connector::{
    Attributes, Connector, ConnectorError, FoundStub, Operation, Pull, Recipient, RecipientKind,
    Route, SecretRef, Stub, StubField,
};
use coexist_ldap::{Flavor, LdapConfig, LdapConnector};
use coexist_testenv::Directory;
pub use coexist_testenv::{random, TestServer};
use ldap3::{LdapConnAsync, LdapConnSettings, Mod, Scope, SearchEntry};

/// A file holding `password`, for a `SecretRef::File`.
pub fn password_file(password: &str) -> SecretRef {
    let path = std::env::temp_dir().join(format!("coexist-ldap-test-pw-{}", random()));
    std::fs::write(&path, password).expect("write the password file");
    SecretRef::File {
        file: path.display().to_string(),
    }
}

/// A test's own subtree on a test server ([`coexist_testenv::Subtree`]:
/// `ou=t-<random>` with `ou=people`, `ou=groups` and `ou=coexist`, removed
/// on drop; its fields are reached through it), and the connector's view
/// of it.
pub struct Subtree {
    tree: coexist_testenv::Subtree,
}

impl Deref for Subtree {
    type Target = coexist_testenv::Subtree;
    fn deref(&self) -> &coexist_testenv::Subtree {
        &self.tree
    }
}

impl Subtree {
    /// Makes a new subtree on `server` (with `ldapadd`: nothing to await,
    /// but async like the other calls the tests make).
    pub async fn new(server: TestServer) -> Self {
        Subtree {
            tree: coexist_testenv::Subtree::new(server),
        }
    }

    /// The connector's flavor for the subtree's server.
    pub fn flavor(&self) -> Flavor {
        match self.server.directory {
            Directory::OpenLdap => Flavor::Openldap,
            Directory::ActiveDirectory => Flavor::ActiveDirectory,
        }
    }

    /// A connector configuration reading this subtree, writing stubs to its
    /// `ou=coexist`, over StartTLS with the test CA (a simple bind in the
    /// clear is refused).
    pub fn config(&self) -> LdapConfig {
        let mut c = LdapConfig::new(
            self.flavor(),
            self.server.url.clone(),
            self.server.bind_dn.clone(),
            password_file(&self.server.password),
            vec![self.dn.clone()],
            self.stubs.clone(),
        );
        c.page_size = 7;
        c.starttls = true;
        c.ca_file = Some(self.server.ca_file.clone());
        c
    }

    /// [`Subtree::config`] in the clear (no StartTLS, `allow_cleartext_bind`),
    /// for the tests that cut or inspect the plain LDAP bytes on the way.
    pub fn cleartext_config(&self) -> LdapConfig {
        let mut c = self.config();
        c.starttls = false;
        c.ca_file = None;
        c.allow_cleartext_bind = true;
        c
    }

    /// [`Subtree::config`], bound as `dn` with `password` instead of the admin.
    pub fn config_as(&self, dn: &str, password: &str) -> LdapConfig {
        let mut c = self.config();
        c.bind_dn = dn.to_string();
        c.password = password_file(password);
        c
    }

    pub async fn ldap(&self) -> ldap3::Ldap {
        admin(&self.server).await
    }

    /// Adds an entry; panics on failure.
    pub async fn add(&self, dn: &str, attrs: Vec<(&str, Vec<&str>)>) {
        let r = self.try_add(dn, attrs).await;
        assert_eq!(r.rc, 0, "add {dn}: {r:?}");
    }

    pub async fn try_add(&self, dn: &str, attrs: Vec<(&str, Vec<&str>)>) -> ldap3::LdapResult {
        let mut ldap = self.ldap().await;
        let attrs: Vec<(String, HashSet<String>)> = attrs
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.into_iter().map(String::from).collect()))
            .collect();
        let r = ldap.add(dn, attrs).await.expect("add");
        let _ = ldap.unbind().await;
        r
    }

    pub async fn modify(&self, dn: &str, mods: Vec<Mod<String>>) {
        let mut ldap = self.ldap().await;
        let r = ldap.modify(dn, mods).await.expect("modify");
        assert_eq!(r.rc, 0, "modify {dn}: {r:?}");
        let _ = ldap.unbind().await;
    }

    /// Replaces the values of `attr` of `dn` with the one `value`.
    pub async fn replace(&self, dn: &str, attr: &str, value: &str) {
        self.modify(
            dn,
            vec![Mod::Replace(
                attr.to_string(),
                HashSet::from([value.to_string()]),
            )],
        )
        .await;
    }

    pub async fn delete(&self, dn: &str) {
        let mut ldap = self.ldap().await;
        let r = ldap.delete(dn).await.expect("delete");
        assert_eq!(r.rc, 0, "delete {dn}: {r:?}");
        let _ = ldap.unbind().await;
    }

    /// Entries under `base` matching `filter`.
    pub async fn search(&self, base: &str, filter: &str, attrs: &[&str]) -> Vec<SearchEntry> {
        let mut ldap = self.ldap().await;
        let (entries, res) = ldap
            .search(base, Scope::Subtree, filter, attrs.to_vec())
            .await
            .expect("search")
            .success()
            .expect("search result");
        let _ = res;
        let _ = ldap.unbind().await;
        entries.into_iter().map(SearchEntry::construct).collect()
    }

    /// How many entries below the stub OU carry coexist's marker
    /// (`description: coexist:<anchor>`).
    pub async fn marked_stubs(&self) -> usize {
        self.search(&self.stubs, "(description=coexist:*)", &["1.1"])
            .await
            .len()
    }

    /// Adds a person `uid=<uid>` (OpenLDAP) or `cn=<uid>` user (AD).
    pub async fn person(&self, uid: &str, mail: &str, extra: Vec<(&str, Vec<&str>)>) -> String {
        match self.flavor() {
            Flavor::Openldap => self.person_in(&self.people, uid, mail, extra).await,
            Flavor::ActiveDirectory => {
                let dn = format!("CN={},{}", ldap3::dn_escape(uid), self.people);
                let sam = format!("t{}", &random()[..6]);
                let mut attrs = vec![
                    (
                        "objectClass",
                        vec!["top", "person", "organizationalPerson", "user"],
                    ),
                    ("sAMAccountName", vec![sam.as_str()]),
                    ("mail", vec![mail]),
                ];
                attrs.extend(extra);
                self.add(&dn, attrs).await;
                dn
            }
        }
    }

    /// Adds an OpenLDAP person `uid=<uid>` (inetOrgPerson +
    /// inetLocalMailRecipient) below `parent`; returns its DN.
    pub async fn person_in(
        &self,
        parent: &str,
        uid: &str,
        mail: &str,
        extra: Vec<(&str, Vec<&str>)>,
    ) -> String {
        self.inet_org_person(parent, "inetLocalMailRecipient", uid, mail, extra)
            .await
    }

    /// Adds a qmail-ldap user `uid=<uid>` (inetOrgPerson + qmailUser), for
    /// the qmail-ldap server.
    pub async fn qmail_person(
        &self,
        uid: &str,
        mail: &str,
        extra: Vec<(&str, Vec<&str>)>,
    ) -> String {
        self.inet_org_person(&self.people, "qmailUser", uid, mail, extra)
            .await
    }

    /// Adds `uid=<uid>,<parent>`, an inetOrgPerson with the auxiliary class
    /// `mail_class` and `mail`; returns its DN.
    async fn inet_org_person(
        &self,
        parent: &str,
        mail_class: &str,
        uid: &str,
        mail: &str,
        extra: Vec<(&str, Vec<&str>)>,
    ) -> String {
        let dn = format!("uid={},{parent}", ldap3::dn_escape(uid));
        let mut attrs = vec![
            ("objectClass", vec!["inetOrgPerson", mail_class]),
            ("uid", vec![uid]),
            ("cn", vec![uid]),
            ("sn", vec![uid]),
            ("mail", vec![mail]),
        ];
        attrs.extend(extra);
        self.add(&dn, attrs).await;
        dn
    }

    /// Adds `uid=<uid>` directly below the subtree (not a recipient: no
    /// mail), with the password `password`: a user of its own to bind as,
    /// with the rights the server gives any user. Returns its DN.
    ///
    /// On Active Directory it is an enabled user `CN=<uid>` (a member of
    /// Domain Users and nothing else: no "Replicating Directory Changes",
    /// no read access to `CN=Deleted Objects`), its password set over
    /// StartTLS with `ldapadd` as AD requires.
    pub async fn bind_user(&self, uid: &str, password: &str) -> String {
        if self.flavor() == Flavor::ActiveDirectory {
            use base64::Engine;
            let dn = format!("CN={uid},{}", self.dn);
            let quoted: Vec<u8> = format!("\"{password}\"")
                .encode_utf16()
                .flat_map(u16::to_le_bytes)
                .collect();
            let sam = format!("r{}", &random()[..8]);
            self.server.ldapadd(&format!(
                "dn: {dn}\nobjectClass: user\nsAMAccountName: {sam}\nunicodePwd:: {}\nuserAccountControl: 512\n",
                base64::engine::general_purpose::STANDARD.encode(quoted)
            ));
            return dn;
        }
        let dn = format!("uid={uid},{}", self.dn);
        self.add(
            &dn,
            vec![
                ("objectClass", vec!["inetOrgPerson"]),
                ("uid", vec![uid]),
                ("cn", vec![uid]),
                ("sn", vec![uid]),
                ("userPassword", vec![password]),
            ],
        )
        .await;
        dn
    }
}

/// An admin connection to `server`.
pub async fn admin(server: &TestServer) -> ldap3::Ldap {
    let (conn, mut ldap) = LdapConnAsync::with_settings(LdapConnSettings::new(), &server.url)
        .await
        .unwrap_or_else(|e| panic!("connect to {}: {e}; run deploy/testenv.sh up", server.url));
    tokio::spawn(async move {
        let _ = conn.drive().await;
    });
    ldap.simple_bind(&server.bind_dn, &server.password)
        .await
        .expect("bind")
        .success()
        .expect("admin bind");
    ldap
}

/// The values of `attr` (case-insensitive name) in an entry.
pub fn values<'a>(e: &'a SearchEntry, attr: &str) -> Vec<&'a str> {
    e.attrs
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case(attr))
        .flat_map(|(_, v)| v.iter().map(String::as_str))
        .collect()
}

/// A person stub for `primary` with the alias `alias.<primary>`, every
/// attribute set (a non-ASCII letter and an apostrophe in the names), routed
/// to its mailbox at `<local part>@<routing_domain>`.
pub fn stub(anchor: &str, primary: &str, routing_domain: &str) -> Stub {
    Stub {
        anchor: anchor.to_string(),
        kind: RecipientKind::Person,
        primary_address: primary.to_string(),
        aliases: vec![format!("alias.{primary}")],
        route: Route::Address(primary.replace("@acmecorp.com", &format!("@{routing_domain}"))),
        attributes: Attributes {
            display_name: Some("Zoë O'Neil".into()),
            given_name: Some("Zoë".into()),
            surname: Some("O'Neil".into()),
            business_phone: Some("+1 555 0100".into()),
            mobile_phone: Some("+1 555 0199".into()),
            title: Some("Engineer".into()),
            department: Some("R&D".into()),
            company: Some("Acme".into()),
        },
    }
}

pub fn create(stub: &Stub) -> Operation {
    Operation::Create { stub: stub.clone() }
}

/// Changes the stub `found` from `before` to `after`.
pub fn update(
    found: &FoundStub,
    before: &Stub,
    after: &Stub,
    changed: Vec<StubField>,
) -> Operation {
    Operation::Update {
        id: found.id.clone(),
        locator: found.locator.clone(),
        before: Box::new(before.clone()),
        after: Box::new(after.clone()),
        changed,
    }
}

pub fn delete(found: &FoundStub, stub: &Stub) -> Operation {
    Operation::Delete {
        id: found.id.clone(),
        locator: found.locator.clone(),
        stub: stub.clone(),
    }
}

/// A second create of `stub`, written before as `first`, finds that entry
/// (the same id) and adds none: `t` still holds one stub.
pub async fn assert_created_again_finds_it(
    t: &Subtree,
    connector: &LdapConnector,
    stub: &Stub,
    first: &FoundStub,
) {
    let again = connector.apply(&create(stub)).await.unwrap().found.unwrap();
    assert_eq!(again.id, first.id);
    assert_eq!(t.marked_stubs().await, 1);
}

/// Deleting `dn`, an entry without coexist's marker, as if it were `stub`
/// is refused with a permanent error naming the marker, and the entry stays.
pub async fn assert_unmarked_entry_is_refused_and_kept(
    t: &Subtree,
    connector: &LdapConnector,
    dn: &str,
    stub: Stub,
) {
    let refused = connector
        .apply(&Operation::Delete {
            id: "x".into(),
            locator: dn.to_string(),
            stub,
        })
        .await;
    assert!(
        matches!(refused, Err(ConnectorError::Permanent { ref message, .. }) if message.contains("marker")),
        "{refused:?}"
    );
    assert_eq!(t.search(dn, "(objectClass=*)", &["1.1"]).await.len(), 1);
}

/// Deletes the stub `found` (now `stub`), then deletes it again: both
/// succeed and find nothing, and the stub OU is left empty.
pub async fn assert_deleted_twice(
    t: &Subtree,
    connector: &LdapConnector,
    found: &FoundStub,
    stub: &Stub,
) {
    let delete = delete(found, stub);
    assert_eq!(connector.apply(&delete).await.unwrap().found, None);
    assert_eq!(connector.apply(&delete).await.unwrap().found, None);
    assert_eq!(t.marked_stubs().await, 0);
    let left = t.search(&t.stubs, "(objectClass=*)", &["1.1"]).await;
    assert_eq!(left.len(), 1, "only the stub OU itself: {left:?}");
}

/// The recipient with primary address `address` (any case), failing the
/// test when the pull has none.
pub fn find<'p>(pull: &'p Pull, address: &str) -> &'p Recipient {
    pull.recipients
        .iter()
        .find(|r| r.primary_address.eq_ignore_ascii_case(address))
        .unwrap_or_else(|| {
            panic!(
                "{address} is not in the pull: {:?} {:?}",
                pull.recipients
                    .iter()
                    .map(|r| &r.primary_address)
                    .collect::<Vec<_>>(),
                pull.problems
            )
        })
}

/// When a [`proxy`] cuts a connection (closing both sides), as a server
/// restarting would.
#[derive(Debug, Clone)]
pub enum Cut {
    /// Never: every byte passes both ways.
    Never,
    /// When the client sends a request holding every one of these byte
    /// strings (a base DN, the bytes of an objectGUID...); that request is
    /// not passed on.
    WhenClientSends(Vec<Vec<u8>>),
    /// Once the server has sent more than this many bytes; the bytes past
    /// the budget are not passed on.
    AfterServerSent(usize),
}

/// A TCP proxy listening on `host` (a loopback address; the port is
/// chosen) to `upstream` (`host:port`), cutting each connection as `cut`
/// says. Returns the address it listens on.
pub async fn proxy(host: &str, upstream: String, cut: Cut) -> std::net::SocketAddr {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind((host, 0)).await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut client, _)) = listener.accept().await {
            let upstream = upstream.clone();
            let cut = cut.clone();
            tokio::spawn(async move {
                let mut server = tokio::net::TcpStream::connect(&upstream).await.unwrap();
                let (mut cr, mut cw) = client.split();
                let (mut sr, mut sw) = server.split();
                let up = async {
                    let mut buf = [0u8; 65536];
                    while let Ok(n) = cr.read(&mut buf).await {
                        let chunk = &buf[..n];
                        let hit = match &cut {
                            Cut::WhenClientSends(needles) => needles
                                .iter()
                                .all(|x| chunk.windows(x.len()).any(|w| w == x.as_slice())),
                            Cut::Never | Cut::AfterServerSent(_) => false,
                        };
                        if n == 0 || hit || sw.write_all(chunk).await.is_err() {
                            break;
                        }
                    }
                };
                let down = async {
                    let mut buf = [0u8; 512];
                    let mut sent = 0usize;
                    while let Ok(n) = sr.read(&mut buf).await {
                        sent += n;
                        let over = matches!(cut, Cut::AfterServerSent(budget) if sent > budget);
                        if n == 0 || over || cw.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                };
                tokio::select! { _ = up => {}, _ = down => {} }
            });
        }
    });
    addr
}
