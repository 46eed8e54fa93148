//! Issue 4, end to end: the real `coexist` binary syncing a real OpenLDAP
//! slapd (the LDAP mail server of google-coexistence.txt) with a simulated
//! Google, and a real Samba Active Directory (qmail-exchange-ad and o365
//! coexistence) with a simulated cloud. What coexist writes is read back
//! with the real `ldapsearch`, as an admin would.
//!
//! The servers are started by `deploy/testenv.sh up` (the README's test
//! command does it), which writes their settings to
//! `${COEXIST_TESTENV_DIR:-/tmp/coexist-testenv}/env` (read with
//! `coexist_testenv`, as are the servers themselves). When they are
//! missing, these tests fail saying so; they never skip. Each test works in
//! its own subtree `ou=t-<random>` (people in `ou=people`, stubs in
//! `ou=coexist`) and removes it when done.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::process::Command;

use coexist_testenv::{acmecorp, random, LdifEntry, Password, Subtree, TestServer};
use common::{op, operations, person, Org, SIMULATED_CLOUD};
use serde_json::{json, Value};

// ---- what coexist wrote -------------------------------------------------------

/// The entries coexist marked as its own in the stub OU of `t`.
fn marked_stubs(t: &Subtree, attrs: &[&str]) -> Vec<LdifEntry> {
    t.server
        .ldapsearch(&t.stubs, "(description=coexist:*)", attrs)
}

/// The entry of `stubs` with the mail `mail`.
fn stub_for<'a>(stubs: &'a [LdifEntry], mail: &str) -> &'a LdifEntry {
    stubs
        .iter()
        .find(|e| e.all("mail").contains(&mail))
        .unwrap_or_else(|| panic!("no stub with mail {mail} in {stubs:#?}"))
}

// ---- running coexist ----------------------------------------------------------

/// An organisation on disk whose real directory is reached with a password
/// held in an environment variable, as the README shows.
struct Scenario {
    org: Org,
    tree: Subtree,
}

impl Scenario {
    /// `org`, run with `password` in the environment variable `variable`.
    fn new(mut org: Org, tree: Subtree, variable: &str, password: &str) -> Scenario {
        org.set_env(variable, password);
        Scenario { org, tree }
    }
}

impl std::ops::Deref for Scenario {
    type Target = Org;
    fn deref(&self) -> &Org {
        &self.org
    }
}

/// How `system` was read in a sync: "full" or "delta".
fn pull_mode(report: &Value, system: &str) -> String {
    let pull = report["pulls"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["system"] == system)
        .unwrap_or_else(|| panic!("no pull of {system}: {report:#}"));
    pull["mode"].as_str().unwrap().to_string()
}

fn delivered(system: &str, hops: u64) -> Value {
    json!({ "result": "delivered", "system": system, "hops": hops })
}

/// Primary addresses of a simulated system's stubs, sorted.
fn stub_addresses(org: &Org, system: &str) -> Vec<String> {
    let mut all: Vec<String> = org
        .stubs(system)
        .into_iter()
        .map(|s| s.stub.primary_address)
        .collect();
    all.sort();
    all
}

// ---- Google (simulated) + the LDAP mail server (real slapd) -------------------

const SLAPD_PASSWORD: &str = "COEXIST_E2E_SLAPD_PASSWORD";

/// google-coexistence.txt: MX on Google, whose catch-all relays unknown
/// users to the LDAP mail server; the mail server forwards Google users to
/// local@gapps.acmecorp.com. Google is acmecorp's simulated one
/// ([`acmecorp::GOOGLE_SIMULATED`]), the mail server the subtree `t`.
fn google_and_slapd_config(t: &Subtree) -> String {
    let ldap = t.system_toml(
        "ldap",
        "mithi.acmecorp.com",
        Password::Env(SLAPD_PASSWORD),
        &t.people,
        "",
    );
    acmecorp::config(acmecorp::GOOGLE_SIMULATED, &ldap)
}

/// The Google users: g0 (with the alias gina@), g1, g2.
fn google_users(n: usize) -> Vec<coexist_connector::Recipient> {
    (0..n)
        .map(|i| {
            let mut p = person(&format!("g-{i}"), &format!("g{i}@acmecorp.com"));
            p.attributes.given_name = Some(format!("Gee{i}"));
            p.attributes.surname = Some("Google".into());
            p.attributes.title = Some("Analyst".into());
            if i == 0 {
                p.aliases = vec!["gina@acmecorp.com".into()];
            }
            p
        })
        .collect()
}

/// An LDAP mail server user `uid=m<i>` with a mailbox (m0 also has the
/// address mia@acmecorp.com).
fn slapd_person(t: &Subtree, i: usize) -> String {
    let alias = if i == 0 {
        "objectClass: inetLocalMailRecipient\nmailLocalAddress: m0@acmecorp.com\nmailLocalAddress: mia@acmecorp.com\n"
    } else {
        ""
    };
    format!(
        "dn: uid=m{i},{people}\nobjectClass: inetOrgPerson\n{alias}uid: m{i}\ncn: Em {i} Mithi\n\
         displayName: Em {i} Mithi\ngivenName: Em{i}\nsn: Mithi\nmail: m{i}@acmecorp.com\n\
         title: Engineer\ntelephoneNumber: +1 555 010{i}\n\n",
        people = t.people
    )
}

/// A forwarding entry an admin made by hand in the stub OU, before
/// coexist: it carries no marker.
fn hand_made_forwarder(t: &Subtree) -> String {
    format!(
        "dn: mail=legacy@acmecorp.com,{stubs}\nobjectClass: inetOrgPerson\n\
         objectClass: inetLocalMailRecipient\ncn: Legacy forward\nsn: Legacy\n\
         mail: legacy@acmecorp.com\nmailLocalAddress: legacy@acmecorp.com\n\
         mailRoutingAddress: legacy@partner.example\ndescription: made by hand in 2019\n\n",
        stubs = t.stubs
    )
}

/// Three Google users, four people on slapd (m0…m3), a hand-made forwarder
/// in the stub OU; not synced yet.
fn google_and_slapd() -> Scenario {
    let tree = Subtree::new(TestServer::slapd());
    let mut ldif: String = (0..4).map(|i| slapd_person(&tree, i)).collect();
    ldif.push_str(&hand_made_forwarder(&tree));
    tree.server.ldapadd(&ldif);
    let org = Org::new(
        &google_and_slapd_config(&tree),
        &[("google", google_users(3))],
    );
    let password = tree.server.password.clone();
    Scenario::new(org, tree, SLAPD_PASSWORD, &password)
}

#[test]
fn google_and_a_real_slapd_sync_both_ways_and_follow_changes_incrementally() {
    let s = google_and_slapd();
    let t = &s.tree;

    // First run: everything is read in full, and each side gets a stub of
    // every person of the other.
    let first = s.sync();
    assert_eq!(pull_mode(&first, "ldap"), "full");
    assert_eq!(
        first["plan"]["summary"]["by_system"]["ldap"],
        json!({ "create": 3, "update": 0, "delete": 0 }),
        "{first:#}"
    );
    assert_eq!(
        first["plan"]["summary"]["by_system"]["google"],
        json!({ "create": 4, "update": 0, "delete": 0 }),
        "{first:#}"
    );
    assert_eq!(first["apply"]["done"], 7);

    // The forwarding entries are in slapd, and ldapsearch finds them: the
    // shared-domain addresses in mail and mailLocalAddress, mail to them
    // forwarded to the Google routing domain.
    let stubs = marked_stubs(
        t,
        &[
            "objectClass",
            "mail",
            "mailLocalAddress",
            "mailRoutingAddress",
            "description",
            "givenName",
            "sn",
            "title",
        ],
    );
    let mut mails: Vec<&str> = stubs.iter().map(|e| e.one("mail")).collect();
    mails.sort();
    assert_eq!(
        mails,
        ["g0@acmecorp.com", "g1@acmecorp.com", "g2@acmecorp.com"]
    );
    for (i, stub) in ["g0", "g1", "g2"].iter().enumerate() {
        let e = stub_for(&stubs, &format!("{stub}@acmecorp.com"));
        assert!(e.dn.ends_with(&t.stubs), "{}", e.dn);
        assert!(e.all("objectClass").contains(&"inetLocalMailRecipient"));
        assert_eq!(
            e.one("mailRoutingAddress"),
            format!("{stub}@gapps.acmecorp.com")
        );
        assert!(e
            .all("mailLocalAddress")
            .contains(&format!("{stub}@acmecorp.com").as_str()));
        assert!(e.one("description").starts_with("coexist:"), "{e:?}");
        assert_eq!(e.one("givenName"), format!("Gee{i}"));
        assert_eq!(e.one("title"), "Analyst");
    }
    let g0 = stub_for(&stubs, "g0@acmecorp.com");
    assert!(
        g0.all("mailLocalAddress").contains(&"gina@acmecorp.com"),
        "the alias is a local address too: {g0:?}"
    );

    // Google holds a contact for each slapd person, with their attributes.
    assert_eq!(
        stub_addresses(&s.org, "google"),
        [
            "m0@acmecorp.com",
            "m1@acmecorp.com",
            "m2@acmecorp.com",
            "m3@acmecorp.com"
        ]
    );
    let m0 = s
        .org
        .stubs("google")
        .into_iter()
        .find(|f| f.stub.primary_address == "m0@acmecorp.com")
        .unwrap()
        .stub;
    assert_eq!(m0.aliases, ["mia@acmecorp.com"]);
    assert_eq!(m0.attributes.title.as_deref(), Some("Engineer"));
    assert_eq!(m0.attributes.business_phone.as_deref(), Some("+1 555 0100"));

    // Second run: read incrementally, nothing to do.
    let second = s.sync();
    assert_eq!(pull_mode(&second, "ldap"), "delta");
    assert_eq!(operations(&second), [], "{second:#}");
    assert_eq!(second["apply"]["done"], 0);

    // A changed title and a deleted person in slapd reach Google through
    // the incremental read.
    t.server.ldapmodify(&format!(
        "dn: uid=m1,{}\nchangetype: modify\nreplace: title\ntitle: CFO\n-\n",
        t.people
    ));
    t.server.ldapdelete(&format!("uid=m3,{}", t.people));
    let third = s.sync();
    assert_eq!(pull_mode(&third, "ldap"), "delta");
    assert_eq!(
        operations(&third),
        [
            op("google", "delete", "m3@acmecorp.com"),
            op("google", "update", "m1@acmecorp.com"),
        ],
        "{third:#}"
    );
    let update = third["plan"]["operations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["action"] == "update")
        .unwrap();
    assert_eq!(update["operation"]["changed"], json!(["title"]));
    let google = s.org.stubs("google");
    assert_eq!(google.len(), 3);
    let m1 = google
        .iter()
        .find(|f| f.stub.primary_address == "m1@acmecorp.com")
        .unwrap();
    assert_eq!(m1.stub.attributes.title.as_deref(), Some("CFO"));

    // A user removed from Google loses its forwarding entry in slapd; the
    // hand-made forwarder in the same OU is never touched.
    s.org.seed("google", google_users(2));
    let fourth = s.sync();
    assert_eq!(pull_mode(&fourth, "ldap"), "delta");
    assert_eq!(
        operations(&fourth),
        [op("ldap", "delete", "g2@acmecorp.com")],
        "{fourth:#}"
    );
    let mut mails: Vec<String> = marked_stubs(t, &["mail"])
        .iter()
        .map(|e| e.one("mail").to_string())
        .collect();
    mails.sort();
    assert_eq!(mails, ["g0@acmecorp.com", "g1@acmecorp.com"]);
    let everything = t
        .server
        .ldapsearch(&t.stubs, "(objectClass=inetOrgPerson)", &["*"]);
    let legacy = stub_for(&everything, "legacy@acmecorp.com");
    assert_eq!(legacy.one("mailRoutingAddress"), "legacy@partner.example");
    assert_eq!(legacy.one("description"), "made by hand in 2019");
    assert_eq!(everything.len(), 3, "{everything:#?}");

    // And the next run has nothing left to do.
    let fifth = s.sync();
    assert_eq!(operations(&fifth), [], "{fifth:#}");
}

#[test]
fn mail_routes_both_ways_between_google_and_a_real_slapd_after_a_sync() {
    let s = google_and_slapd();
    s.sync();
    // From a slapd user to a Google user: the forwarding entry sends it
    // to g0@gapps.acmecorp.com, which Google delivers.
    assert_eq!(s.route("ldap", "g0@acmecorp.com"), delivered("google", 1));
    assert_eq!(s.route("ldap", "gina@acmecorp.com"), delivered("google", 1));
    // From a Google user to a slapd user: the catch-all relays it.
    assert_eq!(s.route("google", "m2@acmecorp.com"), delivered("ldap", 1));
    assert_eq!(s.route("google", "mia@acmecorp.com"), delivered("ldap", 1));
    // From outside: MX on Google.
    assert_eq!(
        s.route("internet", "g1@acmecorp.com"),
        delivered("google", 1)
    );
    assert_eq!(s.route("internet", "m1@acmecorp.com"), delivered("ldap", 2));
}

/// The members of the GAL entry `address`, from `coexist export-gal --format json`.
fn gal_members(s: &Scenario, address: &str) -> Vec<String> {
    let out = s.run(&["export-gal", "--format", "json"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let gal: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(gal["format"], 1, "the export says its format");
    let entry = gal["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["primary_address"] == address)
        .unwrap_or_else(|| panic!("no GAL entry {address}: {gal:#}"));
    entry["members"]
        .as_array()
        .map(|m| m.iter().map(|v| v.as_str().unwrap().to_string()).collect())
        .unwrap_or_default()
}

#[test]
fn a_delta_refreshes_the_groups_of_a_changed_member_and_a_full_read_on_request_still_works() {
    let s = google_and_slapd();
    let t = &s.tree;
    t.server.ldapadd(&format!(
        "dn: cn=team,{people}\nobjectClass: groupOfNames\nobjectClass: extensibleObject\n\
         cn: team\nmail: team@acmecorp.com\nmember: uid=m1,{people}\nmember: uid=m2,{people}\n\n",
        people = t.people
    ));
    let first = s.sync();
    assert_eq!(pull_mode(&first, "ldap"), "full");
    assert_eq!(
        gal_members(&s, "team@acmecorp.com"),
        ["m1@acmecorp.com", "m2@acmecorp.com"]
    );

    // m1 changes address; the group entry itself is not modified, yet the
    // incremental read returns the group too (it holds m1), re-resolved.
    t.server.ldapmodify(&format!(
        "dn: uid=m1,{}\nchangetype: modify\nreplace: mail\nmail: em1@acmecorp.com\n-\n",
        t.people
    ));
    let delta = s.sync();
    assert_eq!(pull_mode(&delta, "ldap"), "delta");
    assert_eq!(
        gal_members(&s, "team@acmecorp.com"),
        ["em1@acmecorp.com", "m2@acmecorp.com"]
    );

    // `sync --full-read` ignores the cursors and reads every system whole.
    let (code, full) = s.json(&["sync", "--full-read"]);
    assert_eq!(code, 0, "{full:#}");
    assert_eq!(pull_mode(&full, "ldap"), "full");
    assert_eq!(pull_mode(&full, "google"), "full");
    assert_eq!(
        gal_members(&s, "team@acmecorp.com"),
        ["em1@acmecorp.com", "m2@acmecorp.com"]
    );
    assert_eq!(operations(&full), [], "{full:#}");

    // And the cursor it leaves makes the next run incremental again.
    let next = s.sync();
    assert_eq!(pull_mode(&next, "ldap"), "delta");
}

// ---- Active Directory (real Samba) + a simulated cloud ------------------------

const SAMBA_PASSWORD: &str = "COEXIST_E2E_SAMBA_PASSWORD";

/// qmail-exchange-ad / o365: AD is the on-premises directory and MX; the
/// cloud has its own routing domain; each side routes the other's people
/// by address.
fn ad_and_cloud_config(t: &Subtree) -> String {
    format!(
        r#"[organisation]
shared_domains = ["acmecorp.com"]

[topology]
mx = "ad"

{ad}
{SIMULATED_CLOUD}"#,
        ad = t.system_toml(
            "ad",
            "onprem.acmecorp.com",
            Password::Env(SAMBA_PASSWORD),
            &t.people,
            "unknown_recipient = { relay = \"cloud\" }\n",
        ),
    )
}

fn cloud_users(n: usize) -> Vec<coexist_connector::Recipient> {
    (0..n)
        .map(|i| {
            let mut p = person(&format!("c-{i}"), &format!("c{i}@acmecorp.com"));
            p.attributes.display_name = Some(format!("Cee {i} Cloud"));
            p.attributes.department = Some("Sales".into());
            p
        })
        .collect()
}

/// An AD user `CN=Ann <i>` with a mailbox: mail, and proxyAddresses with a
/// primary and a secondary address. Enabled (userAccountControl 544:
/// normal account, no password required).
fn ad_user(t: &Subtree, i: usize) -> String {
    format!(
        "dn: CN=Ann {i},{people}\nobjectClass: top\nobjectClass: person\n\
         objectClass: organizationalPerson\nobjectClass: user\nsAMAccountName: e2e{sam}\n\
         userAccountControl: 544\ndisplayName: Ann {i} Archer\ngivenName: Ann{i}\nsn: Archer\n\
         mail: a{i}@acmecorp.com\nproxyAddresses: SMTP:a{i}@acmecorp.com\n\
         proxyAddresses: smtp:ann{i}@acmecorp.com\ntitle: Engineer\n\n",
        people = t.people,
        sam = random(),
    )
}

/// Three AD users (a0…a2) and three cloud users (c0…c2); not synced yet.
fn ad_and_cloud() -> Scenario {
    let tree = Subtree::new(TestServer::samba());
    let ldif: String = (0..3).map(|i| ad_user(&tree, i)).collect();
    tree.server.ldapadd(&ldif);
    let org = Org::new(&ad_and_cloud_config(&tree), &[("cloud", cloud_users(3))]);
    let password = tree.server.password.clone();
    Scenario::new(org, tree, SAMBA_PASSWORD, &password)
}

fn contacts(t: &Subtree) -> Vec<LdifEntry> {
    t.server.ldapsearch(
        &t.stubs,
        "(objectClass=contact)",
        &[
            "mail",
            "proxyAddresses",
            "targetAddress",
            "displayName",
            "department",
            "description",
            "title",
            "givenName",
        ],
    )
}

#[test]
fn active_directory_on_samba_and_a_cloud_sync_contacts_and_follow_changes_incrementally() {
    let s = ad_and_cloud();
    let t = &s.tree;

    let first = s.sync();
    assert_eq!(pull_mode(&first, "ad"), "full");
    assert_eq!(
        first["plan"]["summary"]["by_system"]["ad"],
        json!({ "create": 3, "update": 0, "delete": 0 }),
        "{first:#}"
    );
    assert_eq!(
        first["plan"]["summary"]["by_system"]["cloud"],
        json!({ "create": 3, "update": 0, "delete": 0 }),
        "{first:#}"
    );

    // Mail-enabled contacts in the stub OU, found by ldapsearch: Exchange
    // routes mail to them by targetAddress.
    let found = contacts(t);
    assert_eq!(found.len(), 3, "{found:#?}");
    for i in 0..3 {
        let c = stub_for(&found, &format!("c{i}@acmecorp.com"));
        assert!(
            c.dn.to_lowercase().ends_with(&t.stubs.to_lowercase()),
            "{}",
            c.dn
        );
        assert_eq!(
            c.one("targetAddress"),
            format!("SMTP:c{i}@acmecorp.mail.onmicrosoft.com")
        );
        assert_eq!(
            c.all("proxyAddresses"),
            [format!("SMTP:c{i}@acmecorp.com").as_str()]
        );
        assert_eq!(c.one("displayName"), format!("Cee {i} Cloud"));
        assert_eq!(c.one("department"), "Sales");
        assert!(c.one("description").starts_with("coexist:"), "{c:?}");
    }

    // The cloud holds a contact of each AD user, routed to the AD
    // routing domain, with the secondary proxy address as an alias.
    assert_eq!(
        stub_addresses(&s.org, "cloud"),
        ["a0@acmecorp.com", "a1@acmecorp.com", "a2@acmecorp.com"]
    );
    let a1 = s
        .org
        .stubs("cloud")
        .into_iter()
        .find(|f| f.stub.primary_address == "a1@acmecorp.com")
        .unwrap()
        .stub;
    assert_eq!(
        a1.route,
        coexist_connector::Route::Address("a1@onprem.acmecorp.com".into())
    );
    assert_eq!(a1.aliases, ["ann1@acmecorp.com"]);
    assert_eq!(a1.attributes.title.as_deref(), Some("Engineer"));

    // Second run: DirSync (or uSNChanged) reads only what changed: the
    // contacts coexist wrote itself, which need nothing.
    let second = s.sync();
    assert_eq!(pull_mode(&second, "ad"), "delta");
    assert_eq!(operations(&second), [], "{second:#}");

    // A user leaves the cloud: its contact goes from AD. A changed title
    // and a deleted user in AD reach the cloud.
    s.org.seed("cloud", cloud_users(2));
    t.server.ldapmodify(&format!(
        "dn: CN=Ann 0,{}\nchangetype: modify\nreplace: title\ntitle: CTO\n-\n",
        t.people
    ));
    t.server.ldapdelete(&format!("CN=Ann 2,{}", t.people));
    let third = s.sync();
    assert_eq!(pull_mode(&third, "ad"), "delta");
    assert_eq!(
        operations(&third),
        [
            op("ad", "delete", "c2@acmecorp.com"),
            op("cloud", "delete", "a2@acmecorp.com"),
            op("cloud", "update", "a0@acmecorp.com"),
        ],
        "{third:#}"
    );
    let mut left: Vec<String> = contacts(t)
        .iter()
        .map(|e| e.one("mail").to_string())
        .collect();
    left.sort();
    assert_eq!(left, ["c0@acmecorp.com", "c1@acmecorp.com"]);
    let cloud = s.org.stubs("cloud");
    assert_eq!(cloud.len(), 2);
    let a0 = cloud
        .iter()
        .find(|f| f.stub.primary_address == "a0@acmecorp.com")
        .unwrap();
    assert_eq!(a0.stub.attributes.title.as_deref(), Some("CTO"));

    let fourth = s.sync();
    assert_eq!(pull_mode(&fourth, "ad"), "delta");
    assert_eq!(operations(&fourth), [], "{fourth:#}");
}

#[test]
fn mail_routes_both_ways_between_samba_ad_and_a_cloud_after_a_sync() {
    let s = ad_and_cloud();
    s.sync();
    // From AD to a cloud user: the contact's targetAddress.
    assert_eq!(s.route("ad", "c0@acmecorp.com"), delivered("cloud", 1));
    // From the cloud to an AD user, by primary and by secondary address.
    assert_eq!(s.route("cloud", "a1@acmecorp.com"), delivered("ad", 1));
    assert_eq!(s.route("cloud", "ann1@acmecorp.com"), delivered("ad", 1));
    // From outside: MX on AD.
    assert_eq!(s.route("internet", "a0@acmecorp.com"), delivered("ad", 1));
    assert_eq!(
        s.route("internet", "c2@acmecorp.com"),
        delivered("cloud", 2)
    );
}

// ---- configuration and credential errors --------------------------------------

#[test]
fn a_misspelt_ldap_setting_is_a_configuration_error_naming_its_line() {
    let s = google_and_slapd();
    let good = google_and_slapd_config(&s.tree);
    let out = s.run(&["check-config"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    s.org
        .set_config(&good.replace("base_dns = [", "base_dn = ["));
    let out = s.run(&["check-config"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let line = good
        .lines()
        .position(|l| l.starts_with("base_dns"))
        .unwrap()
        + 1;
    assert!(
        stderr.contains(&format!(
            "coexist.toml:{line}: systems[1].connection: unknown field `base_dn`"
        )),
        "{stderr}"
    );
    // Nothing was written anywhere.
    assert!(marked_stubs(&s.tree, &["mail"]).is_empty());
}

#[test]
fn a_wrong_bind_password_names_the_system_and_deletes_nothing() {
    let mut s = google_and_slapd();
    s.sync();
    // g2 leaves Google, and the LDAP password is wrong from now on.
    s.org.seed("google", google_users(2));
    s.org.set_env(SLAPD_PASSWORD, "not-the-password");

    let out = s.run(&["sync"]);
    assert_ne!(out.status.code(), Some(0));
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(
        text.contains("Pulled ldap: FAILED")
            && text.contains("refused the bind as `cn=admin,dc=acmecorp,dc=com`")
            && text.contains("invalidCredentials")
            && text.contains("check bind_dn and the password secret"),
        "{text}"
    );

    // `plan` says the same with the same exit code as `sync`.
    let (code, plan) = s.json(&["plan"]);
    assert_eq!(code, 4, "{plan:#}");

    let (code, report) = s.json(&["sync"]);
    assert_eq!(code, 4, "{report:#}");
    let pull = report["pulls"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["system"] == "ldap")
        .unwrap();
    let error = pull["error"].as_str().unwrap();
    assert!(
        error.contains("LDAP system `ldap`") && error.contains("invalidCredentials"),
        "{error}"
    );
    assert_eq!(report["plan"]["gates"][0]["gate"], "incomplete_source");
    assert_eq!(report["apply"]["done"], 0, "{report:#}");

    // Nothing was deleted: not g2's forwarding entry in slapd, not the
    // contacts of the slapd people on Google.
    assert_eq!(marked_stubs(&s.tree, &["mail"]).len(), 3);
    assert_eq!(s.org.stubs("google").len(), 4);

    // With the password right again, the delete goes through.
    s.org.set_env(SLAPD_PASSWORD, &s.tree.server.password);
    let report = s.sync();
    assert_eq!(
        operations(&report),
        [op("ldap", "delete", "g2@acmecorp.com")],
        "{report:#}"
    );
    assert_eq!(marked_stubs(&s.tree, &["mail"]).len(), 2);
}

// ---- entries coexist did not make, carrying its addresses ---------------------

/// The AD objects anywhere in `t` that carry `address`, by mail or by
/// proxyAddresses.
fn ad_objects_carrying(t: &Subtree, address: &str) -> Vec<LdifEntry> {
    t.server.ldapsearch(
        &t.dn,
        &format!("(|(mail={address})(proxyAddresses=smtp:{address}))"),
        &[
            "objectClass",
            "mail",
            "proxyAddresses",
            "targetAddress",
            "description",
        ],
    )
}

#[test]
fn a_hand_made_ad_contact_for_the_same_address_replaces_coexists_own() {
    let s = ad_and_cloud();
    let t = &s.tree;
    s.sync();
    let ours = stub_for(&contacts(t), "c1@acmecorp.com").dn.clone();

    // An admin makes a contact of c1 by hand, in another OU, routing
    // correctly to the cloud; it carries no marker.
    let hand_made = format!("CN=Legacy c1,{}", t.people);
    t.server.ldapadd(&format!(
        "dn: {hand_made}\nobjectClass: top\nobjectClass: contact\ndisplayName: Legacy c1\n\
         mail: c1@acmecorp.com\nproxyAddresses: SMTP:c1@acmecorp.com\n\
         targetAddress: SMTP:c1@acmecorp.mail.onmicrosoft.com\n\
         description: made by hand in 2019\n\n"
    ));
    let before = ad_objects_carrying(t, "c1@acmecorp.com");
    assert_eq!(before.len(), 2, "{before:#?}");
    let hand_made_before = before
        .iter()
        .find(|e| e.dn.eq_ignore_ascii_case(&hand_made))
        .unwrap()
        .clone();

    // coexist's own contact goes; the hand-made one stays as it was.
    let second = s.sync();
    assert_eq!(
        operations(&second),
        [op("ad", "delete", "c1@acmecorp.com")],
        "{second:#}"
    );
    let delete = &second["plan"]["operations"][0];
    assert!(
        delete["reason"]
            .as_str()
            .unwrap()
            .contains("by an entry coexist did not make"),
        "{delete:#}"
    );
    let after = ad_objects_carrying(t, "c1@acmecorp.com");
    assert_eq!(after.len(), 1, "{after:#?}");
    assert!(after[0].dn.eq_ignore_ascii_case(&hand_made), "{after:#?}");
    assert_eq!(after[0], hand_made_before);
    assert!(
        !contacts(t).iter().any(|e| e.dn.eq_ignore_ascii_case(&ours)),
        "{ours} is still there"
    );
    // Mail to c1 from AD still reaches the cloud, by the hand-made contact.
    assert_eq!(s.route("ad", "c1@acmecorp.com"), delivered("cloud", 1));

    let third = s.sync();
    assert_eq!(operations(&third), [], "{third:#}");
}

#[test]
fn values_with_spaces_around_them_are_written_as_ad_stores_them_and_not_planned_again() {
    let tree = Subtree::new(TestServer::samba());
    let mut users = cloud_users(2);
    users[0].attributes.display_name = Some("  Cee Spaced  ".into());
    users[0].attributes.title = Some(" Boss\t".into());
    users[0].attributes.given_name = Some(" ".into());
    let org = Org::new(&ad_and_cloud_config(&tree), &[("cloud", users)]);
    let password = tree.server.password.clone();
    let s = Scenario::new(org, tree, SAMBA_PASSWORD, &password);
    s.sync();
    let stub = stub_for(&contacts(&s.tree), "c0@acmecorp.com").clone();
    assert_eq!(stub.all("displayName"), ["Cee Spaced"], "{stub:#?}");
    assert_eq!(stub.all("title"), ["Boss"], "{stub:#?}");
    assert!(stub.all("givenName").is_empty(), "{stub:#?}");

    // AD keeps what it stored; reading it all again plans nothing.
    let (code, again) = s.json(&["sync", "--full-read"]);
    assert_eq!(code, 0, "{again:#}");
    assert_eq!(pull_mode(&again, "ad"), "full");
    assert_eq!(operations(&again), [], "{again:#}");
}

#[test]
fn doctor_lists_the_exchange_settings_to_check_by_hand_for_an_ad_system() {
    let s = ad_and_cloud();
    let out = s.run(&["doctor"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    let look: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("[LOOK] ad: "))
        .collect();
    assert_eq!(look.len(), 3, "{text}");
    assert!(look[0].contains("onprem.acmecorp.com") && look[0].contains("Authoritative"));
    assert!(
        look[1].contains("acmecorp.mail.onmicrosoft.com") && look[1].contains("send connector")
    );
    assert!(look[2].contains("InternalRelay") && look[2].contains("acmecorp.com"));
    assert!(
        text.contains("[ ok ] ad: incremental reads: DirSync"),
        "{text}"
    );
    assert!(text.contains("[ ok ] ad: rights on the stub OU"), "{text}");
}

#[test]
fn stubs_left_in_the_old_stub_base_are_moved_to_the_new_one_not_doubled() {
    let s = ad_and_cloud();
    let t = &s.tree;
    s.sync();
    assert_eq!(contacts(t).len(), 3);

    // The admin gives coexist a new OU for its stubs.
    let new_base = format!("OU=moved,{}", t.dn);
    t.server.ldapadd(&format!(
        "dn: {new_base}\nobjectClass: organizationalUnit\nou: moved\n\n"
    ));
    let path = s.org.config();
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(
        &path,
        text.replace(
            &format!("stub_base = \"{}\"", t.stubs),
            &format!("stub_base = \"{new_base}\""),
        ),
    )
    .unwrap();

    let moved = s.sync();
    let ops = operations(&moved);
    assert_eq!(ops.len(), 3, "{moved:#}");
    for op in moved["plan"]["operations"].as_array().unwrap() {
        assert_eq!(op["action"], "update", "{op:#}");
        assert!(
            op["reason"]
                .as_str()
                .unwrap()
                .contains("outside the stub base"),
            "{op:#}"
        );
    }
    let in_new = t
        .server
        .ldapsearch(&new_base, "(objectClass=contact)", &["mail"]);
    assert_eq!(in_new.len(), 3, "{in_new:#?}");
    assert!(contacts(t).is_empty(), "the old OU keeps no stub");
    for i in 0..3 {
        assert_eq!(
            s.route("ad", &format!("c{i}@acmecorp.com")),
            delivered("cloud", 1)
        );
    }
    assert_eq!(operations(&s.sync()), []);
}

/// An enabled AD user with the rights every domain user has (no
/// "Replicating Directory Changes", no read access to `CN=Deleted
/// Objects`), its password set over StartTLS as AD requires; its DN.
fn ordinary_ad_account(t: &Subtree, password: &str) -> String {
    use base64::Engine;
    let dn = format!("CN=reader-{},{}", random(), t.dn);
    let quoted: Vec<u8> = format!("\"{password}\"")
        .encode_utf16()
        .flat_map(u16::to_le_bytes)
        .collect();
    t.server.ldapadd(&format!(
        "dn: {dn}\nobjectClass: user\nsAMAccountName: r{}\nunicodePwd:: {}\nuserAccountControl: 512\n\n",
        &random()[..8],
        base64::engine::general_purpose::STANDARD.encode(quoted)
    ));
    dn
}

#[test]
fn a_user_deleted_from_ad_loses_its_stubs_at_the_next_delta_without_replication_rights() {
    let tree = Subtree::new(TestServer::samba());
    let ldif: String = (0..3).map(|i| ad_user(&tree, i)).collect();
    tree.server.ldapadd(&ldif);
    let password = "Ordinary-Rights-9x!".to_string();
    let reader = ordinary_ad_account(&tree, &password);
    let config = ad_and_cloud_config(&tree).replace(
        &format!("bind_dn = \"{}\"", tree.server.bind_dn),
        &format!("bind_dn = \"{reader}\""),
    );
    assert!(config.contains(&reader));
    let org = Org::new(&config, &[("cloud", vec![])]);
    let s = Scenario::new(org, tree, SAMBA_PASSWORD, &password);
    let first = s.sync();
    assert_eq!(stub_addresses(&s.org, "cloud").len(), 3, "{first:#}");

    // The sync report says, at normal verbosity, how AD is read and why.
    let out = s.run(&["sync"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("incremental: uSNChanged") && text.contains("Replicating Directory Changes"),
        "{text}"
    );

    s.tree
        .server
        .ldapdelete(&format!("CN=Ann 1,{}", s.tree.people));
    let after = s.sync();
    assert_eq!(pull_mode(&after, "ad"), "delta");
    assert_eq!(
        operations(&after),
        [op("cloud", "delete", "a1@acmecorp.com")],
        "{after:#}"
    );
    assert_eq!(
        stub_addresses(&s.org, "cloud"),
        ["a0@acmecorp.com", "a2@acmecorp.com"]
    );
}

/// The stubs in the subtree's stub OU, counted with `ldapsearch`.
fn slapd_stub_count(t: &Subtree) -> usize {
    let out = t.server.tool(
        "ldapsearch",
        &["-LLL", "-b", &t.stubs, "(description=coexist:*)", "1.1"],
        "",
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.starts_with("dn:"))
        .count()
}

#[test]
fn a_sync_killed_while_writing_to_slapd_is_reconciled_by_the_next_run() {
    const PEOPLE: usize = 2000;
    let tree = Subtree::new(TestServer::slapd());
    let org = Org::new(
        &google_and_slapd_config(&tree),
        &[("google", google_users(PEOPLE))],
    );
    let password = tree.server.password.clone();
    let s = Scenario::new(org, tree, SLAPD_PASSWORD, &password);
    let mut child = Command::new(common::binary())
        .env(SLAPD_PASSWORD, &password)
        .arg("--config")
        .arg(s.org.config())
        .arg("sync")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while slapd_stub_count(&s.tree) < 20 {
        assert!(std::time::Instant::now() < deadline, "no stub was written");
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    // kill -9, in the middle of the writes to slapd.
    child.kill().unwrap();
    child.wait().unwrap();
    let written = slapd_stub_count(&s.tree);
    assert!(
        written < PEOPLE,
        "the kill came after the apply ({written})"
    );

    let (code, report) = s.json(&["sync"]);
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(slapd_stub_count(&s.tree), PEOPLE);

    // The killed run is closed as interrupted; none of its operations is
    // left started; every stub slapd holds has its create in the audit log.
    let (code, runs) = s.json(&["runs", "--limit", "10"]);
    assert_eq!(code, 0, "{runs:#}");
    let statuses: Vec<&str> = runs
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["status"].as_str().unwrap())
        .collect();
    assert!(statuses.contains(&"interrupted"), "{runs:#}");
    assert!(!statuses.contains(&"running"), "{runs:#}");
    let url = coexist::config::Config::load(&s.org.config())
        .unwrap()
        .store_url()
        .unwrap();
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let store = coexist::store::Store::open(&url).await.unwrap();
        assert_eq!(store.operations_left_started().await.unwrap(), vec![]);
        let audit = store.audit_log(100_000).await.unwrap();
        let mut created: Vec<&str> = audit
            .iter()
            .filter(|a| a.system == "ldap" && a.action == coexist::plan::Action::Create)
            .map(|a| a.address.as_str())
            .collect();
        created.sort_unstable();
        created.dedup();
        assert_eq!(
            created.len(),
            PEOPLE,
            "every stub slapd holds is audited once"
        );
        store.close().await;
    });
}

#[test]
fn stubs_route_to_the_routing_address_each_home_lists_when_its_local_part_differs() {
    let tree = Subtree::new(TestServer::samba());
    // An AD mailbox whose onprem address is not its primary's local part.
    tree.server.ldapadd(&format!(
        "dn: CN=John Doe,{people}\nobjectClass: user\nsAMAccountName: jd{sam}\n\
         userAccountControl: 544\ndisplayName: John Doe\nmail: john.doe@acmecorp.com\n\
         proxyAddresses: SMTP:john.doe@acmecorp.com\nproxyAddresses: smtp:jdoe@onprem.acmecorp.com\n\n",
        people = tree.people,
        sam = &random()[..8],
    ));
    // A cloud mailbox likewise.
    let mut mary = person("c-mary", "mary.major@acmecorp.com");
    mary.aliases = vec!["mmajor@acmecorp.mail.onmicrosoft.com".into()];
    let config = ad_and_cloud_config(&tree).replace(
        "id = \"cloud\"\nkind = \"simulated\"\n",
        "id = \"cloud\"\nkind = \"simulated\"\nrouting_domain_is_alias = false\n",
    );
    assert!(
        config.contains("routing_domain_is_alias = false"),
        "{config}"
    );
    let org = Org::new(&config, &[("cloud", vec![mary])]);
    let password = tree.server.password.clone();
    let s = Scenario::new(org, tree, SAMBA_PASSWORD, &password);
    s.sync();
    let contact = stub_for(&contacts(&s.tree), "mary.major@acmecorp.com").clone();
    assert_eq!(
        contact.all("targetAddress"),
        ["SMTP:mmajor@acmecorp.mail.onmicrosoft.com"],
        "{contact:#?}"
    );
    let cloud_stub = s
        .org
        .stubs("cloud")
        .into_iter()
        .find(|f| f.stub.primary_address == "john.doe@acmecorp.com")
        .expect("a cloud stub for john");
    assert_eq!(
        cloud_stub.stub.route,
        coexist_connector::Route::Address("jdoe@onprem.acmecorp.com".into())
    );
    assert_eq!(
        s.route("ad", "mary.major@acmecorp.com"),
        delivered("cloud", 1)
    );
    assert_eq!(
        s.route("cloud", "john.doe@acmecorp.com"),
        delivered("ad", 1)
    );
    assert_eq!(operations(&s.sync()), []);
}
