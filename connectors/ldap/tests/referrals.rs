//! Referrals and search references against the real slapd of
//! `deploy/testenv.sh`: skipped and reported by default, followed with
//! `follow_referrals` (RFC 4511 4.5.3), bounded, loop-safe, and a
//! reference that cannot be followed makes the pull incomplete.
//!
//! Each test reads `ou=people` of its own subtree; the referral objects
//! (`referral` + `extensibleObject` with a `ref`) below it point at other
//! OUs of the same subtree, which the configured scopes do not reach.

// Integration tests: helpers fail loudly, like the tests they serve.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use coexist_connector::{Connector, NoProgress, Pull};
use coexist_ldap::read::{Collected, Reader, Via};
use coexist_ldap::{Endpoint, LdapConfig, LdapConnector};
use common::{values, Subtree, TestServer};
use ldap3::controls::ManageDsaIt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A test's subtree, reading only its `ou=people`, with referral objects
/// that are removed (with ManageDsaIT) before the subtree is.
struct Fixture {
    t: Subtree,
    referrals: Vec<String>,
}

impl Fixture {
    async fn new() -> Self {
        Fixture {
            t: Subtree::new(TestServer::slapd()).await,
            referrals: Vec::new(),
        }
    }

    /// `ldap://127.0.0.1:3389` (the system's own URL).
    fn url(&self) -> &str {
        &self.t.server.url
    }

    /// A configuration reading `ou=people` only (stubs in `ou=coexist`).
    fn config(&self, follow: bool) -> LdapConfig {
        let mut c = self.t.config();
        c.base_dns = vec![self.t.people.clone()];
        c.follow_referrals = follow;
        c
    }

    /// Adds `ou=<name>` directly below the subtree (outside `ou=people`);
    /// returns its DN.
    async fn ou(&self, name: &str) -> String {
        let dn = format!("ou={name},{}", self.t.dn);
        self.ou_at(&dn, name).await;
        dn
    }

    async fn ou_at(&self, dn: &str, name: &str) {
        self.t
            .add(
                dn,
                vec![
                    ("objectClass", vec!["top", "organizationalUnit"]),
                    ("ou", vec![name]),
                ],
            )
            .await;
    }

    /// Adds a person `uid=<uid>` below `parent`; returns its DN.
    async fn person_in(&self, parent: &str, uid: &str, mail: &str) -> String {
        self.t.person_in(parent, uid, mail, vec![]).await
    }

    /// Alice in `ou=people`, which is read, and Bob in `ou=branch`, which a
    /// reference alone reaches, their addresses tagged `tag`; returns the
    /// branch's DN and Bob's.
    async fn alice_here_and_bob_in_a_branch(&self, tag: &str) -> (String, String) {
        let branch = self.ou("branch").await;
        self.person_in(&self.t.people, "alice", &mail(tag, "alice"))
            .await;
        let bob = self.person_in(&branch, "bob", &mail(tag, "bob")).await;
        (branch, bob)
    }

    /// Adds the referral object `ou=<name>,<parent>` whose `ref` is `url`
    /// (the add needs ManageDsaIT); returns its DN.
    async fn referral(&mut self, parent: &str, name: &str, url: &str) -> String {
        let dn = format!("ou={name},{parent}");
        let mut ldap = self.t.ldap().await;
        let attrs = vec![
            (
                "objectClass".to_string(),
                HashSet::from(["referral".to_string(), "extensibleObject".to_string()]),
            ),
            ("ou".to_string(), HashSet::from([name.to_string()])),
            ("ref".to_string(), HashSet::from([url.to_string()])),
        ];
        let r = ldap
            .with_controls(ManageDsaIt)
            .add(&dn, attrs)
            .await
            .expect("add a referral object");
        assert_eq!(r.rc, 0, "add {dn}: {r:?}");
        let _ = ldap.unbind().await;
        self.referrals.push(dn.clone());
        dn
    }

    /// Adds the referral object `ou=link,ou=people` whose `ref` is `url`;
    /// returns its DN.
    async fn link_people_to(&mut self, url: &str) -> String {
        let people = self.t.people.clone();
        self.referral(&people, "link", url).await
    }

    /// The `entryUUID` of `dn`.
    async fn entry_uuid(&self, dn: &str) -> String {
        let found = self.t.search(dn, "(objectClass=*)", &["entryUUID"]).await;
        values(&found[0], "entryUUID")[0].to_string()
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        // Referral objects go first, with ManageDsaIT (-M): the subtree's
        // own removal does not send it.
        if self.referrals.is_empty() {
            return;
        }
        let mut args = vec!["-M"];
        args.extend(self.referrals.iter().map(String::as_str));
        let _ = self.t.server.tool("ldapdelete", &args, "");
    }
}

fn addresses(pull: &Pull) -> Vec<String> {
    let mut a: Vec<String> = pull
        .recipients
        .iter()
        .map(|r| r.primary_address.clone())
        .collect();
    a.sort();
    a
}

fn collected_addresses(out: &Collected) -> Vec<String> {
    let mut a: Vec<String> = out
        .recipients
        .iter()
        .map(|(r, _)| r.primary_address.clone())
        .collect();
    a.sort();
    a
}

async fn full_pull(config: LdapConfig) -> Pull {
    let connector = LdapConnector::new("slapd", config).unwrap();
    connector.pull(None, &NoProgress).await.unwrap()
}

/// A full read through the lean client, as a full pull makes it.
async fn read_wire(config: &LdapConfig) -> Collected {
    let reader = Reader::new("slapd", config);
    let mut wire = Endpoint::new("slapd", config).lean().await.unwrap();
    let mut out = Collected::new();
    reader
        .read_all_via(Via::Wire(&mut wire), &mut out, &NoProgress, None)
        .await
        .unwrap();
    wire.close().await;
    out
}

/// A full read through ldap3, as deltas make theirs.
async fn read_ldap3(config: &LdapConfig) -> Collected {
    let reader = Reader::new("slapd", config);
    let mut ldap = Endpoint::new("slapd", config).ldap3().await.unwrap();
    let mut out = Collected::new();
    reader
        .read_all(&mut ldap, &mut out, &NoProgress, None)
        .await
        .unwrap();
    let _ = ldap.unbind().await;
    out
}

fn mail(tag: &str, who: &str) -> String {
    format!("{who}.{tag}@acmecorp.com")
}

#[tokio::test]
async fn by_default_a_reference_is_reported_and_the_entries_behind_it_are_not_read() {
    let mut f = Fixture::new().await;
    let tag = common::random();
    let (branch, _) = f.alice_here_and_bob_in_a_branch(&tag).await;
    let target = format!("{}/{branch}", f.url());
    f.link_people_to(&target).await;

    let config = f.config(false);
    let pull = full_pull(config.clone()).await;
    assert_eq!(addresses(&pull), [mail(&tag, "alice")]);
    assert!(pull.complete, "{:?}", pull.problems);
    assert!(pull.problems.is_empty(), "{:?}", pull.problems);
    assert!(pull.cursor.is_some(), "deltas as before");

    // slapd answers the subtree search with a continuation reference.
    for out in [read_wire(&config).await, read_ldap3(&config).await] {
        assert_eq!(out.references, [format!("{target}??sub")]);
        assert!(out.followed.is_empty());
        assert!(out.complete);
        assert_eq!(collected_addresses(&out), [mail(&tag, "alice")]);
    }
}

#[tokio::test]
async fn with_follow_referrals_the_referred_subtree_is_read_with_the_same_filter() {
    let mut f = Fixture::new().await;
    let tag = common::random();
    let (branch, bob) = f.alice_here_and_bob_in_a_branch(&tag).await;
    // Not a recipient: the original filter applies behind the reference.
    f.ou_at(&format!("ou=sub,{branch}"), "sub").await;
    let target = format!("{}/{branch}", f.url());
    f.link_people_to(&target).await;

    let pull = full_pull(f.config(true)).await;
    assert!(pull.complete, "{:?}", pull.problems);
    assert!(pull.problems.is_empty(), "{:?}", pull.problems);
    assert_eq!(addresses(&pull), [mail(&tag, "alice"), mail(&tag, "bob")]);
    let read_bob = pull
        .recipients
        .iter()
        .find(|r| r.primary_address == mail(&tag, "bob"))
        .unwrap();
    assert_eq!(
        read_bob.anchor,
        f.entry_uuid(&bob).await,
        "anchored on entryUUID like every entry"
    );
    assert!(
        pull.cursor.is_none(),
        "deltas do not see behind references: the next pull reads everything"
    );

    // The ldap3 path (deltas) follows the same way.
    let out = read_ldap3(&f.config(true)).await;
    assert!(out.complete, "{:?}", out.problems);
    assert_eq!(
        collected_addresses(&out),
        [mail(&tag, "alice"), mail(&tag, "bob")]
    );
    assert_eq!(out.followed, [format!("{target}??sub")]);
}

#[tokio::test]
async fn a_base_dn_that_is_a_referral_object_is_read_where_the_referral_points() {
    let mut f = Fixture::new().await;
    let tag = common::random();
    let branch = f.ou("branch").await;
    f.person_in(&branch, "bob", &mail(&tag, "bob")).await;
    let link = f.link_people_to(&format!("{}/{branch}", f.url())).await;

    // The search of the base itself ends with the result code referral.
    let mut config = f.config(true);
    config.base_dns = vec![link.clone()];
    let pull = full_pull(config.clone()).await;
    assert!(pull.complete, "{:?}", pull.problems);
    assert_eq!(addresses(&pull), [mail(&tag, "bob")]);

    config.follow_referrals = false;
    let off = full_pull(config).await;
    assert!(off.recipients.is_empty());
    assert!(off.complete, "skipped as before: {:?}", off.problems);
}

#[tokio::test]
async fn a_reference_to_another_endpoint_is_read_on_its_own_connection_with_the_same_credentials_and_tls(
) {
    let mut f = Fixture::new().await;
    let tag = common::random();
    let (branch, _) = f.alice_here_and_bob_in_a_branch(&tag).await;
    // The same slapd under another name: a server of its own to the reader.
    f.link_people_to(&format!("ldap://localhost:3389/{branch}"))
        .await;
    let both = [mail(&tag, "alice"), mail(&tag, "bob")];

    let pull = full_pull(f.config(true)).await;
    assert!(pull.complete, "{:?}", pull.problems);
    assert_eq!(addresses(&pull), both);

    // A system on LDAPS reaches the ldap:// server with StartTLS, verified
    // with the system's CA file (the certificate names localhost).
    let mut tls = f.config(true);
    tls.url = f.t.server.ldaps_url.clone();
    tls.starttls = false;
    tls.ca_file = Some(coexist_testenv::var("COEXIST_TEST_CA_FILE"));
    let pull = full_pull(tls.clone()).await;
    assert!(pull.complete, "{:?}", pull.problems);
    assert_eq!(addresses(&pull), both);

    // So does a system on ldap:// with StartTLS.
    let mut starttls = tls;
    starttls.url = f.url().to_string();
    starttls.starttls = true;
    let out = read_wire(&starttls).await;
    assert!(out.complete, "{:?}", out.problems);
    assert_eq!(collected_addresses(&out), both);
}

#[tokio::test]
async fn a_reference_to_an_unreachable_server_makes_the_pull_incomplete_with_a_problem_naming_it() {
    let mut f = Fixture::new().await;
    let tag = common::random();
    let (branch, _) = f.alice_here_and_bob_in_a_branch(&tag).await;
    let target = format!("ldap://127.0.0.1:1/{branch}");
    f.link_people_to(&target).await;

    let pull = full_pull(f.config(true)).await;
    assert!(!pull.complete, "nothing may be deleted after this pull");
    assert_eq!(addresses(&pull), [mail(&tag, "alice")], "the rest is read");
    assert_eq!(pull.problems.len(), 1, "{:?}", pull.problems);
    let problem = &pull.problems[0];
    assert!(problem.object.contains(&target), "{problem:?}");
    assert!(problem.message.contains(&target), "{problem:?}");
    assert!(pull.cursor.is_none());
}

#[tokio::test]
async fn a_reference_to_a_subtree_that_does_not_exist_is_a_problem() {
    let mut f = Fixture::new().await;
    let tag = common::random();
    f.person_in(&f.t.people, "alice", &mail(&tag, "alice"))
        .await;
    let target = format!("{}/ou=nowhere,{}", f.url(), f.t.dn);
    f.link_people_to(&target).await;

    let pull = full_pull(f.config(true)).await;
    assert!(!pull.complete);
    assert_eq!(addresses(&pull), [mail(&tag, "alice")]);
    assert_eq!(pull.problems.len(), 1, "{:?}", pull.problems);
    assert!(
        pull.problems[0].message.contains("does not exist"),
        "{:?}",
        pull.problems
    );
    assert!(pull.problems[0].object.contains(&target));
}

#[tokio::test]
async fn referrals_pointing_at_each_other_are_read_once_and_the_read_terminates() {
    let mut f = Fixture::new().await;
    let tag = common::random();
    let (branch, _) = f.alice_here_and_bob_in_a_branch(&tag).await;
    let twig = f.ou("twig").await;
    f.person_in(&twig, "carol", &mail(&tag, "carol")).await;
    let url = f.url().to_string();
    let people = f.t.people.clone();
    // people → branch → people, and branch → twig → branch.
    f.referral(&people, "link", &format!("{url}/{branch}"))
        .await;
    f.referral(&branch, "back", &format!("{url}/{people}"))
        .await;
    f.referral(&branch, "on", &format!("{url}/{twig}")).await;
    f.referral(&twig, "again", &format!("{url}/{branch}")).await;

    let config = f.config(true);
    let pull = tokio::time::timeout(Duration::from_secs(60), full_pull(config.clone()))
        .await
        .expect("the read terminates");
    assert!(pull.complete, "{:?}", pull.problems);
    assert!(
        pull.problems.is_empty(),
        "each entry read once, no duplicates: {:?}",
        pull.problems
    );
    assert_eq!(
        addresses(&pull),
        [mail(&tag, "alice"), mail(&tag, "bob"), mail(&tag, "carol")]
    );
    let out = read_ldap3(&config).await;
    assert_eq!(out.followed.len(), 2, "{:?}", out.followed);
    assert_eq!(out.recipients.len(), 3);
}

#[tokio::test]
async fn a_chain_of_references_longer_than_the_hop_limit_stops_with_a_problem() {
    let mut f = Fixture::new().await;
    let tag = common::random();
    let url = f.url().to_string();
    // people → b1 → b2 → … → b6: b6 is six references away, one too many.
    let mut from = f.t.people.clone();
    for i in 1..=6 {
        let b = f.ou(&format!("b{i}")).await;
        f.person_in(&b, &format!("p{i}"), &mail(&tag, &format!("p{i}")))
            .await;
        f.referral(&from, "next", &format!("{url}/{b}")).await;
        from = b;
    }

    let pull = full_pull(f.config(true)).await;
    assert!(!pull.complete);
    assert_eq!(
        addresses(&pull),
        (1..=5)
            .map(|i| mail(&tag, &format!("p{i}")))
            .collect::<Vec<_>>()
    );
    assert_eq!(pull.problems.len(), 1, "{:?}", pull.problems);
    assert!(
        pull.problems[0].object.contains("ou=b6,"),
        "{:?}",
        pull.problems
    );
    assert!(pull.problems[0].message.contains("more than 5 references"));
}

#[tokio::test]
async fn entries_read_through_a_reference_are_named_by_their_dn_like_any_other() {
    // Alice here and Bob behind the reference claim one address: both are
    // returned, each named by its DN, for the reconciler to report.
    let mut f = Fixture::new().await;
    let tag = common::random();
    let branch = f.ou("branch").await;
    let same = mail(&tag, "same");
    let alice = f.person_in(&f.t.people, "alice", &same).await;
    let bob = f.person_in(&branch, "bob", &same).await;
    f.person_in(&branch, "carol", &mail(&tag, "carol")).await;
    f.link_people_to(&format!("{}/{branch}", f.url())).await;

    let pull = full_pull(f.config(true)).await;
    assert!(pull.problems.is_empty(), "{:?}", pull.problems);
    assert_eq!(
        addresses(&pull),
        [mail(&tag, "carol"), same.clone(), same.clone()]
    );
    let mut claiming: Vec<&str> = pull
        .recipients
        .iter()
        .filter(|r| r.primary_address == same)
        .filter_map(|r| r.locator.as_deref())
        .collect();
    claiming.sort();
    let mut expected = [alice.as_str(), bob.as_str()];
    expected.sort();
    assert_eq!(claiming, expected);
}

/// A server that speaks only cleartext LDAP: it answers StartTLS with
/// protocolError and records every byte it receives.
async fn cleartext_only_server() -> (u16, Arc<Mutex<Vec<u8>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let received = Arc::new(Mutex::new(Vec::new()));
    let log = received.clone();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let log = log.clone();
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                loop {
                    let read =
                        tokio::time::timeout(Duration::from_secs(2), socket.read(&mut buf)).await;
                    let Ok(Ok(n)) = read else { break };
                    if n == 0 {
                        break;
                    }
                    log.lock().unwrap().extend_from_slice(&buf[..n]);
                    // Message 1, ExtendedResponse { protocolError, "", "" }.
                    let answer = [
                        0x30, 0x0c, 0x02, 0x01, 0x01, 0x78, 0x07, 0x0a, 0x01, 0x02, 0x04, 0x00,
                        0x04, 0x00,
                    ];
                    let _ = socket.write_all(&answer).await;
                }
            });
        }
    });
    (port, received)
}

#[tokio::test]
async fn a_tls_system_never_sends_its_password_in_the_clear_to_a_referred_server() {
    let mut f = Fixture::new().await;
    let tag = common::random();
    let branch = f.ou("branch").await;
    f.person_in(&f.t.people, "alice", &mail(&tag, "alice"))
        .await;
    let (port, received) = cleartext_only_server().await;
    let target = format!("ldap://127.0.0.1:{port}/{branch}");
    f.link_people_to(&target).await;

    let mut config = f.config(true);
    config.url = f.t.server.ldaps_url.clone();
    config.starttls = false;
    config.ca_file = Some(coexist_testenv::var("COEXIST_TEST_CA_FILE"));
    let pull = full_pull(config).await;
    assert!(!pull.complete);
    assert_eq!(addresses(&pull), [mail(&tag, "alice")]);
    assert_eq!(pull.problems.len(), 1, "{:?}", pull.problems);
    assert!(pull.problems[0].object.contains(&target));
    assert!(
        pull.problems[0].message.contains("StartTLS"),
        "{:?}",
        pull.problems
    );
    let bytes = received.lock().unwrap().clone();
    assert_eq!(bytes.get(5), Some(&0x77), "StartTLS was asked: {bytes:x?}");
    let password = f.t.server.password.as_bytes();
    assert!(
        !bytes.windows(password.len()).any(|w| w == password),
        "the password never crossed in the clear"
    );
}
