//! Issue 13, the address-book OU: `[systems.address_book] base = "…"` on an
//! LDAP or AD system keeps a copy of the GAL as entries under that OU, for
//! the clients already pointed at the corporate directory; created,
//! updated and deleted by the normal plan (system `<id>.address_book`),
//! journalled and gated like every stub. Against the real slapd and Samba
//! AD (`deploy/testenv.sh up`), read back with `ldapsearch`; each test in
//! its own subtree, its address book `ou=gal` there. The people are read
//! from the whole subtree, the address book included, so the tests also
//! show that its entries are never read as recipients, stubs or foreign
//! routing entries.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use coexist_testenv::{acmecorp, random, LdifEntry, Password, Subtree, TestServer};
use common::{op, operations, person, Org, SIMULATED_CLOUD};
use serde_json::Value;

const PASSWORD_VARIABLE: &str = "COEXIST_BOOK_DIRECTORY_PASSWORD";

/// An organisation whose directory is a real server.
struct Scenario {
    org: Org,
    tree: Subtree,
    /// `ou=gal,<subtree>`.
    book: String,
}

impl std::ops::Deref for Scenario {
    type Target = Org;
    fn deref(&self) -> &Org {
        &self.org
    }
}

impl Scenario {
    /// Every entry under the address-book OU, coexist's and not.
    fn book_entries(&self) -> Vec<LdifEntry> {
        let mut entries = self.tree.server.ldapsearch(
            &self.book,
            "(|(objectClass=person)(objectClass=contact))",
            &["*"],
        );
        entries.sort_by(|a, b| a.dn.cmp(&b.dn));
        entries
    }

    /// The entries carrying the address book's marker, by mail.
    fn coexists(&self) -> Vec<LdifEntry> {
        let mut entries: Vec<LdifEntry> = self
            .book_entries()
            .into_iter()
            .filter(|e| {
                e.all("description")
                    .iter()
                    .any(|d| d.starts_with("coexist-gal:"))
            })
            .collect();
        entries.sort_by(|a, b| a.one("mail").cmp(b.one("mail")));
        entries
    }

    fn mails(&self) -> Vec<String> {
        self.coexists()
            .iter()
            .map(|e| e.one("mail").to_string())
            .collect()
    }
}

fn ou(dn: &str) -> String {
    let name = dn.split(',').next().unwrap_or_default();
    let name = name.split_once('=').map_or(name, |(_, v)| v);
    format!("dn: {dn}\nobjectClass: top\nobjectClass: organizationalUnit\nou: {name}\n\n")
}

/// No entry coexist wrote in the address book carries an attribute that
/// routes mail.
fn assert_routes_nothing(entries: &[LdifEntry]) {
    for e in entries {
        for routing in [
            "mailRoutingAddress",
            "mailHost",
            "mailLocalAddress",
            "mailForwardingAddress",
            "proxyAddresses",
            "targetAddress",
        ] {
            assert!(e.all(routing).is_empty(), "{routing} on {e:?}");
        }
        assert!(
            !e.all("objectClass").contains(&"inetLocalMailRecipient"),
            "{e:?}"
        );
    }
}

// ---- OpenLDAP -------------------------------------------------------------

fn slapd_person(t: &Subtree, i: usize) -> String {
    format!(
        "dn: uid=m{i},{people}\nobjectClass: inetOrgPerson\nuid: m{i}\ncn: Em {i} Mithi\n\
         displayName: Em {i} Mithi\ngivenName: Em{i}\nsn: Mithi\nmail: m{i}@acmecorp.com\n\
         title: Engineer\n\n",
        people = t.people
    )
}

fn google_users(names: &[&str]) -> Vec<coexist_connector::Recipient> {
    names
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let mut p = person(&format!("g-{i}"), &format!("g{i}@acmecorp.com"));
            p.attributes.display_name = Some((*name).into());
            p.attributes.department = Some("Sales".into());
            p
        })
        .collect()
}

/// Three people on slapd, two on a simulated Google, the address book in
/// `ou=gal` of the slapd subtree with a hand-made entry in it; not synced.
fn slapd_with_book() -> Scenario {
    let tree = Subtree::new(TestServer::slapd());
    let book = format!("ou=gal,{}", tree.dn);
    let mut ldif = ou(&book);
    ldif.extend((0..3).map(|i| slapd_person(&tree, i)));
    ldif.push_str(&format!(
        "dn: cn=Reception,{book}\nobjectClass: inetOrgPerson\ncn: Reception\nsn: Desk\n\
         telephoneNumber: +1 555 0199\ndescription: made by hand\n\n"
    ));
    tree.server.ldapadd(&ldif);
    let ldap = format!(
        "{}[systems.address_book]\nbase = \"{book}\"\n",
        tree.system_toml(
            "ldap",
            "mithi.acmecorp.com",
            Password::Env(PASSWORD_VARIABLE),
            &tree.dn,
            "",
        )
    );
    let mut org = Org::new(
        &acmecorp::config(acmecorp::GOOGLE_SIMULATED, &ldap),
        &[("google", google_users(&["Gina Green", "Gus Grey"]))],
    );
    org.set_env(PASSWORD_VARIABLE, &tree.server.password);
    Scenario { org, tree, book }
}

#[test]
fn an_address_book_ou_on_slapd_is_kept_by_the_plan_and_routes_nothing() {
    let s = slapd_with_book();
    let hand_made = s
        .book_entries()
        .into_iter()
        .find(|e| e.dn.starts_with("cn=Reception"))
        .unwrap();

    // First sync: every recipient of the GAL, the directory's own people
    // too, gets an entry.
    let first = s.sync();
    let book_ops: Vec<_> = operations(&first)
        .into_iter()
        .filter(|(system, _, _)| system == "ldap.address_book")
        .collect();
    let gal = [
        "g0@acmecorp.com",
        "g1@acmecorp.com",
        "m0@acmecorp.com",
        "m1@acmecorp.com",
        "m2@acmecorp.com",
    ];
    assert_eq!(
        book_ops,
        gal.map(|a| op("ldap.address_book", "create", a)),
        "{first:#}"
    );
    assert_eq!(
        first["plan"]["conflicts"],
        Value::Array(Vec::new()),
        "{first:#}"
    );
    assert_eq!(s.mails(), gal);
    let entries = s.coexists();
    assert_routes_nothing(&entries);
    let g0 = &entries[0];
    assert!(g0.dn.ends_with(&s.book), "{}", g0.dn);
    assert_eq!(g0.one("cn"), "Gina Green");
    assert_eq!(g0.one("displayName"), "Gina Green");
    assert_eq!(g0.one("ou"), "Sales");
    assert!(g0.all("objectClass").contains(&"inetOrgPerson"));
    // The routing stubs went where they always go, and nowhere else.
    let stubs = s
        .tree
        .server
        .ldapsearch(&s.tree.stubs, "(description=coexist:*)", &["mail"]);
    assert_eq!(stubs.len(), 2);

    // Mail still goes where the stubs say: from the directory holding the
    // address book, to Google for a Google user, to the mailbox for its own.
    for (address, home) in [("g0@acmecorp.com", "google"), ("m0@acmecorp.com", "ldap")] {
        let (code, traced) = s.json(&["route", address, "--from", "ldap"]);
        assert_eq!(code, 0, "{traced:#}");
        assert_eq!(traced["outcome"]["result"], "delivered", "{traced:#}");
        assert_eq!(traced["outcome"]["system"], home, "{traced:#}");
    }

    // Second sync: nothing to do. The address book's entries, inside the
    // directory's base, are not read as people (no address claimed twice,
    // no stub of theirs).
    let second = s.sync();
    assert_eq!(operations(&second), [], "{second:#}");
    assert_eq!(second["plan"]["conflicts"], Value::Array(Vec::new()));

    // A name changes (in Google): the entry is updated with its stub.
    s.org
        .seed("google", google_users(&["Gina Brown", "Gus Grey"]));
    let renamed = s.sync();
    assert!(
        operations(&renamed).contains(&op("ldap.address_book", "update", "g0@acmecorp.com")),
        "{renamed:#}"
    );
    assert_eq!(s.coexists()[0].one("displayName"), "Gina Brown");
    assert_eq!(s.coexists()[0].one("cn"), "Gina Brown");

    // A person leaves the directory. With no delete allowed, the gate
    // holds the address book's delete as it holds the stubs'.
    s.tree
        .server
        .ldapdelete(&format!("uid=m2,{}", s.tree.people));
    let config = std::fs::read_to_string(s.org.config()).unwrap();
    s.org
        .set_config(&format!("{config}\n[safety]\nmax_deletes = 0\n"));
    let (code, gated) = s.json(&["sync"]);
    assert_ne!(code, 0, "{gated:#}");
    let withheld = gated["plan"]["operations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["system"] == "ldap.address_book" && o["action"] == "delete")
        .unwrap_or_else(|| panic!("{gated:#}"));
    assert_eq!(withheld["address"], "m2@acmecorp.com");
    assert_eq!(withheld["withheld"], true, "{gated:#}");
    assert_eq!(s.mails().len(), 5);
    // Allowed again, the entry goes.
    s.org.set_config(&config);
    let left = s.sync();
    assert!(
        operations(&left).contains(&op("ldap.address_book", "delete", "m2@acmecorp.com")),
        "{left:#}"
    );
    assert_eq!(
        s.mails(),
        [
            "g0@acmecorp.com",
            "g1@acmecorp.com",
            "m0@acmecorp.com",
            "m1@acmecorp.com"
        ]
    );

    // Google suddenly reads empty: it is not believed, and nothing is
    // deleted anywhere, the address book included.
    s.org.seed("google", Vec::new());
    let (code, empty) = s.json(&["sync"]);
    assert_ne!(code, 0, "{empty:#}");
    assert_eq!(s.mails().len(), 4, "{empty:#}");

    // The hand-made entry in the OU was never touched.
    let still = s
        .book_entries()
        .into_iter()
        .find(|e| e.dn.starts_with("cn=Reception"))
        .unwrap();
    assert_eq!(still.attrs, hand_made.attrs);
}

#[test]
fn an_address_book_overlapping_the_stub_base_or_on_another_kind_is_refused_naming_its_line() {
    let config = format!(
        "{}\n[systems.address_book]\nbase = \"ou=gal,dc=acmecorp,dc=com\"\n",
        acmecorp::config(acmecorp::GOOGLE_SIMULATED, acmecorp::LDAP_SIMULATED)
    );
    let org = Org::new(&config, &[]);
    let out = org.run(&["check-config"]);
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    let line = config
        .lines()
        .position(|l| l == "[systems.address_book]")
        .unwrap()
        + 1;
    assert!(
        said.contains(&format!("coexist.toml:{line}:"))
            && said.contains("only ldap and active_directory"),
        "{said}"
    );

    let tree = Subtree::new(TestServer::slapd());
    let ldap = format!(
        "{}[systems.address_book]\nbase = \"ou=gal,{stubs}\"\n",
        tree.system_toml(
            "ldap",
            "mithi.acmecorp.com",
            Password::Env(PASSWORD_VARIABLE),
            &tree.people,
            "",
        ),
        stubs = tree.stubs,
    );
    let config = acmecorp::config(acmecorp::GOOGLE_SIMULATED, &ldap);
    let mut org = Org::new(&config, &[("google", Vec::new())]);
    org.set_env(PASSWORD_VARIABLE, &tree.server.password);
    let out = org.run(&["check-config"]);
    let said = String::from_utf8_lossy(&out.stderr);
    let line = config
        .lines()
        .position(|l| l.starts_with("base = \"ou=gal"))
        .unwrap()
        + 1;
    assert!(!out.status.success(), "{said}");
    assert!(
        said.contains(&format!("coexist.toml:{line}:")) && said.contains("overlaps the stub base"),
        "{said}"
    );
}

// ---- Active Directory (Samba) ---------------------------------------------

fn ad_user(t: &Subtree, i: usize) -> String {
    format!(
        "dn: CN=Ann {i},{people}\nobjectClass: top\nobjectClass: person\n\
         objectClass: organizationalPerson\nobjectClass: user\nsAMAccountName: book{sam}\n\
         userAccountControl: 544\ndisplayName: Ann {i} Archer\ngivenName: Ann{i}\nsn: Archer\n\
         mail: a{i}@acmecorp.com\nproxyAddresses: SMTP:a{i}@acmecorp.com\ntitle: Engineer\n\n",
        people = t.people,
        sam = random(),
    )
}

#[test]
fn an_address_book_ou_on_samba_ad_holds_contacts_that_route_nothing() {
    let tree = Subtree::new(TestServer::samba());
    let book = format!("OU=gal,{}", tree.dn);
    let mut ldif = ou(&book);
    ldif.extend((0..3).map(|i| ad_user(&tree, i)));
    ldif.push_str(&format!(
        "dn: CN=Reception,{book}\nobjectClass: top\nobjectClass: person\n\
         objectClass: organizationalPerson\nobjectClass: contact\ndisplayName: Reception\n\
         telephoneNumber: +1 555 0199\ndescription: made by hand\n\n"
    ));
    tree.server.ldapadd(&ldif);
    let config = format!(
        r#"[organisation]
shared_domains = ["acmecorp.com"]

[topology]
mx = "ad"

{ad}[systems.address_book]
base = "{book}"

{SIMULATED_CLOUD}"#,
        ad = tree.system_toml(
            "ad",
            "onprem.acmecorp.com",
            Password::Env(PASSWORD_VARIABLE),
            &tree.dn,
            "unknown_recipient = { relay = \"cloud\" }\n",
        ),
    );
    let mut cloud = person("c-0", "c0@acmecorp.com");
    cloud.attributes.display_name = Some("Cee Cloud".into());
    let mut org = Org::new(&config, &[("cloud", vec![cloud.clone()])]);
    org.set_env(PASSWORD_VARIABLE, &tree.server.password);
    let s = Scenario { org, tree, book };

    let first = s.sync();
    let book_ops: Vec<_> = operations(&first)
        .into_iter()
        .filter(|(system, _, _)| system == "ad.address_book")
        .collect();
    let gal = [
        "a0@acmecorp.com",
        "a1@acmecorp.com",
        "a2@acmecorp.com",
        "c0@acmecorp.com",
    ];
    assert_eq!(
        book_ops,
        gal.map(|a| op("ad.address_book", "create", a)),
        "{first:#}"
    );
    assert_eq!(s.mails(), gal);
    let entries = s.coexists();
    assert_routes_nothing(&entries);
    for e in &entries {
        assert!(e.all("objectClass").contains(&"contact"), "{e:?}");
    }
    assert_eq!(entries[3].one("displayName"), "Cee Cloud");

    let second = s.sync();
    assert_eq!(operations(&second), [], "{second:#}");
    assert_eq!(second["plan"]["conflicts"], Value::Array(Vec::new()));

    cloud.attributes.display_name = Some("Cee Sky".into());
    s.org.seed("cloud", vec![cloud]);
    let renamed = s.sync();
    assert!(
        operations(&renamed).contains(&op("ad.address_book", "update", "c0@acmecorp.com")),
        "{renamed:#}"
    );
    assert_eq!(s.coexists()[3].one("displayName"), "Cee Sky");

    // A person leaves AD: the contact goes, the hand-made one stays.
    s.tree
        .server
        .ldapdelete(&format!("CN=Ann 1,{}", s.tree.people));
    let left = s.sync();
    assert!(
        operations(&left).contains(&op("ad.address_book", "delete", "a1@acmecorp.com")),
        "{left:#}"
    );
    assert_eq!(
        s.mails(),
        ["a0@acmecorp.com", "a2@acmecorp.com", "c0@acmecorp.com"]
    );
    assert!(s
        .book_entries()
        .iter()
        .any(|e| e.dn.starts_with("CN=Reception") && e.one("description") == "made by hand"));
}
