//! Issue 10, end to end: the real `coexist` binary syncing a Microsoft 365
//! tenant (the fake of `tests/fakes/m365`, started in this test process on
//! 127.0.0.1) with the real slapd of `deploy/testenv.sh`, as
//! o365-coexistence.txt deploys it (Mithi SkyConnect, an LDAP mail server
//! holding the MX, beside Office 365), and a three-system organisation
//! (the fake Google, the fake tenant and the real slapd).
//!
//! Each row of the seed's mail-flow table is a test: after `coexist sync`,
//! `coexist route` gives the row's path.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use coexist_fake_google::{FakeGoogle, FakeUser as GoogleUser};
use coexist_fake_m365::{FakeM365, FakeOptions, FakeUser, RecipientType};
use coexist_testenv::{random, Password, Subtree, TestServer};
use common::{google_system, Org, Served};
use serde_json::{json, Value};

// ---- the fakes, running beside the tests -------------------------------------

/// An acmecorp tenant (acmecorp.onmicrosoft.com, routing domain
/// acmecorp.mail.onmicrosoft.com), no latency.
fn tenant() -> Served<FakeM365> {
    Served::start(FakeM365::start(FakeOptions {
        latency: Duration::ZERO,
        ..FakeOptions::default()
    }))
}

fn google() -> Served<FakeGoogle> {
    let google = common::fake_google();
    google.set_retry_after(1);
    google.add_domain_alias("gapps.acmecorp.com");
    google
}

// ---- the organisation --------------------------------------------------------

const SLAPD_PASSWORD: &str = "COEXIST_E2E_SLAPD_PASSWORD";
const SECRET_FILE: &str = "m365-secret";

/// The LDAP mail server (SkyConnect): the real slapd subtree `t`, routing
/// domain mithi.acmecorp.com, forwarding entries.
fn ldap_system(t: &Subtree, unknown: &str) -> String {
    t.system_toml(
        "ldap",
        "mithi.acmecorp.com",
        Password::Env(SLAPD_PASSWORD),
        &t.people,
        &format!("unknown_recipient = {unknown}\n"),
    )
}

/// The tenant, with Exchange Online mail contacts (the default style).
fn m365_system(m365: &FakeM365) -> String {
    format!(
        r#"[[systems]]
id = "m365"
kind = "m365"
routing_domain = "{routing}"
[systems.connection]
tenant_id = "{tenant}"
client_id = "{client}"
client_secret = {{ file = "{SECRET_FILE}" }}
authority = "{authority}"
graph_url = "{graph}"
exchange_url = "{exchange}"
retry_base_delay_ms = 5
retry_max_delay_ms = 50
"#,
        routing = m365.routing_domain(),
        tenant = m365.tenant_id(),
        client = m365.client_id(),
        authority = m365.base_url(),
        graph = m365.graph_url(),
        exchange = m365.exchange_url(),
    )
}

/// A person of the mail server, `uid=<uid>`, address `<uid>@acmecorp.com`.
fn slapd_person(t: &Subtree, uid: &str) -> String {
    format!(
        "dn: uid={uid},{people}\nobjectClass: inetOrgPerson\nobjectClass: inetLocalMailRecipient\n\
         uid: {uid}\ncn: {uid} Mithi\ndisplayName: {uid} Mithi\nsn: Mithi\n\
         mail: {uid}@acmecorp.com\nmailLocalAddress: {uid}@acmecorp.com\ntitle: Engineer\n\n",
        people = t.people
    )
}

/// A tenant user with a mailbox of `kind`, primary `<local>@acmecorp.com`
/// and the proxy address Exchange gave it in the routing domain, whose
/// local part (`alias`) is not the primary's.
fn tenant_user(m365: &FakeM365, local: &str, alias: &str, kind: RecipientType) -> String {
    m365.add_user(FakeUser {
        user_principal_name: format!("{local}@acmecorp.com"),
        mail: format!("{local}@acmecorp.com"),
        mail_nickname: alias.into(),
        proxy_addresses: vec![
            format!("SMTP:{local}@acmecorp.com"),
            format!("smtp:{alias}@{}", m365.routing_domain()),
        ],
        display_name: format!("{local} (Office 365)"),
        given_name: local.into(),
        surname: "Cloud".into(),
        account_enabled: true,
        recipient_type: kind,
        ..FakeUser::default()
    })
}

/// An organisation on disk, the slapd subtree it uses, and how to run the
/// binary on it.
struct Scenario {
    org: Org,
    tree: Subtree,
}

impl std::ops::Deref for Scenario {
    type Target = Org;
    fn deref(&self) -> &Org {
        &self.org
    }
}

impl Scenario {
    fn new(tree: Subtree, config: &str, m365: &FakeM365) -> Scenario {
        let mut org = Org::new(config, &[]);
        org.set_env(SLAPD_PASSWORD, &tree.server.password);
        std::fs::write(org.path(SECRET_FILE), format!("{}\n", m365.client_secret())).unwrap();
        Scenario { org, tree }
    }

    fn operations(&self, report: &Value) -> usize {
        report["plan"]["operations"].as_array().unwrap().len()
    }

    /// The mail-server stub (forwarding entry) for `address`: its
    /// `mailRoutingAddress`.
    fn ldap_route_of(&self, address: &str) -> String {
        let found = self.tree.server.ldapsearch(
            &self.tree.stubs,
            &format!("(mail={address})"),
            &["mailRoutingAddress"],
        );
        assert_eq!(found.len(), 1, "{address}: {found:#?}");
        found[0].one("mailRoutingAddress").to_string()
    }
}

fn delivered(system: &str, hops: u64) -> Value {
    json!({ "result": "delivered", "system": system, "hops": hops })
}

// ---- o365-coexistence.txt ----------------------------------------------------

/// SkyConnect holds the MX (S0) and the mass of users; Office 365 holds the
/// management: John (whose proxy address in the routing domain is jdoe@,
/// not john@) and a shared mailbox; a mail user is not homed on the tenant.
fn o365_coexistence() -> (Served<FakeM365>, Scenario) {
    let m365 = tenant();
    tenant_user(&m365, "john", "jdoe", RecipientType::UserMailbox);
    tenant_user(&m365, "board", "boardroom", RecipientType::SharedMailbox);
    tenant_user(&m365, "visitor", "visitor", RecipientType::MailUser);
    let tree = Subtree::new(TestServer::slapd());
    let ldif: String = ["mia", "max"]
        .iter()
        .map(|u| slapd_person(&tree, u))
        .collect();
    tree.server.ldapadd(&ldif);
    let config = format!(
        "[organisation]\nshared_domains = [\"acmecorp.com\"]\n\n[topology]\nmx = \"ldap\"\n\n{}\n{}",
        ldap_system(&tree, "\"reject\""),
        m365_system(&m365),
    );
    let scenario = Scenario::new(tree, &config, &m365);
    (m365, scenario)
}

#[test]
fn the_o365_seed_syncs_both_ways_and_a_second_sync_changes_nothing() {
    let (m365, s) = o365_coexistence();
    let first = s.sync();
    // Two SkyConnect people become mail contacts in the tenant; John and the
    // shared mailbox become forwarding entries on SkyConnect; the mail user
    // is no one's home.
    assert_eq!(s.operations(&first), 4, "{first:#}");
    let contacts: Vec<_> = m365
        .mail_contacts()
        .into_iter()
        .filter(|c| c.custom_attribute1.starts_with("coexist:"))
        .collect();
    assert_eq!(contacts.len(), 2, "{contacts:#?}");
    let mia = contacts
        .iter()
        .find(|c| c.custom_attribute1.contains("ldap:"))
        .unwrap();
    assert!(
        mia.external_email_address
            .to_lowercase()
            .ends_with("@mithi.acmecorp.com"),
        "{mia:#?}"
    );
    // Stubs route to the address the tenant lists, not the primary's local
    // part.
    assert_eq!(
        s.ldap_route_of("john@acmecorp.com"),
        "jdoe@acmecorp.mail.onmicrosoft.com"
    );
    assert_eq!(
        s.ldap_route_of("board@acmecorp.com"),
        "boardroom@acmecorp.mail.onmicrosoft.com"
    );
    let second = s.sync();
    assert_eq!(s.operations(&second), 0, "{second:#}");
}

/// The seed's mail-flow table, row by row (S0: SkyConnect's MX; S4: its
/// forwarding entry to Office 365; O1: Office 365's inbound; O3: its
/// outbound connector to SkyConnect).
#[test]
fn each_row_of_the_o365_seeds_mail_flow_table_takes_its_path() {
    let (_m365, s) = o365_coexistence();
    s.sync();
    let rows: [(&str, &str, Value); 8] = [
        // External email id → SkyConnect user: S0 => LD.
        ("internet", "mia@acmecorp.com", delivered("ldap", 1)),
        // External email id → O365 user: S0 => S4 => O1 => LD.
        ("internet", "john@acmecorp.com", delivered("m365", 2)),
        // SkyConnect user → SkyConnect user: S2 => LD.
        ("ldap", "max@acmecorp.com", delivered("ldap", 0)),
        // SkyConnect user → O365 user: S2 => S4 => O1 => LD.
        ("ldap", "john@acmecorp.com", delivered("m365", 1)),
        // SkyConnect user → external: S2 => S3 => ED.
        (
            "ldap",
            "someone@partner.example",
            json!({ "result": "external", "domain": "partner.example", "hops": 0 }),
        ),
        // O365 → SkyConnect user: O2 => O3 => S1 => LD.
        ("m365", "mia@acmecorp.com", delivered("ldap", 1)),
        // O365 → O365 user: O2 => LD.
        ("m365", "john@acmecorp.com", delivered("m365", 0)),
        // O365 → external: O2 => O4 => ED.
        (
            "m365",
            "someone@partner.example",
            json!({ "result": "external", "domain": "partner.example", "hops": 0 }),
        ),
    ];
    for (from, to, expected) in rows {
        assert_eq!(s.route(from, to), expected, "from {from} to {to}");
    }
    // The shared mailbox is delivered on the tenant too.
    assert_eq!(s.route("ldap", "board@acmecorp.com"), delivered("m365", 1));
}

// ---- three systems -----------------------------------------------------------

#[test]
fn a_three_system_organisation_converges_and_delivers_everyone_at_home_from_everywhere() {
    let m365 = tenant();
    tenant_user(&m365, "john", "jdoe", RecipientType::UserMailbox);
    let g = google();
    for local in ["ann", "bob"] {
        g.add_user(GoogleUser {
            primary_email: format!("{local}@acmecorp.com"),
            given_name: local.into(),
            family_name: "Google".into(),
            non_editable_aliases: vec![format!("{local}@gapps.acmecorp.com")],
            ..GoogleUser::default()
        });
    }
    let tree = Subtree::new(TestServer::slapd());
    let ldif: String = ["mia", "max"]
        .iter()
        .map(|u| slapd_person(&tree, u))
        .collect();
    // Max answers on the mail server's routing domain as mx@, not max@.
    let ldif = ldif.replace(
        "mailLocalAddress: max@acmecorp.com\n",
        "mailLocalAddress: max@acmecorp.com\nmailLocalAddress: mx@mithi.acmecorp.com\n",
    );
    tree.server.ldapadd(&ldif);
    let config = format!(
        "[organisation]\nshared_domains = [\"acmecorp.com\"]\n\n[topology]\nmx = \"google\"\n\n{}\n{}\n{}",
        google_system(&g),
        ldap_system(&tree, "\"reject\""),
        m365_system(&m365),
    );
    let s = Scenario::new(tree, &config, &m365);
    s.org.write_google_key(&g);

    let first = s.sync();
    // Each system holds a stub for the people of the two others: Google 3
    // (mia, max, john), the mail server 3 (ann, bob, john), the tenant 4.
    assert_eq!(s.operations(&first), 10, "{first:#}");
    assert_eq!(
        s.operations(&s.sync()),
        0,
        "the second sync changes nothing"
    );
    // Every kind's stubs route to the address the home lists in its routing
    // domain: the tenant's contact for Max to mx@, the mail server's entry
    // for John to jdoe@.
    let max = m365
        .mail_contacts()
        .into_iter()
        .find(|c| {
            c.email_addresses
                .iter()
                .any(|a| a.eq_ignore_ascii_case("SMTP:max@acmecorp.com"))
        })
        .expect("a contact for max");
    assert_eq!(
        max.external_email_address.to_lowercase(),
        "smtp:mx@mithi.acmecorp.com",
        "{max:#?}"
    );
    assert_eq!(
        s.ldap_route_of("john@acmecorp.com"),
        "jdoe@acmecorp.mail.onmicrosoft.com"
    );

    let homes = [
        ("ann@acmecorp.com", "google"),
        ("bob@acmecorp.com", "google"),
        ("mia@acmecorp.com", "ldap"),
        ("max@acmecorp.com", "ldap"),
        ("john@acmecorp.com", "m365"),
    ];
    let everyone_at_home = |homes: &[(&str, &str)]| {
        for (address, home) in homes {
            for from in ["internet", "google", "ldap", "m365"] {
                let outcome = s.route(from, address);
                assert_eq!(
                    (outcome["result"].as_str(), outcome["system"].as_str()),
                    (Some("delivered"), Some(*home)),
                    "{address} from {from}: {outcome:#}"
                );
            }
        }
    };
    everyone_at_home(&homes);

    // The directories move Bob from Google to Microsoft 365: his Google
    // mailbox is deleted, a tenant mailbox takes his address.
    g.remove_user("bob@acmecorp.com");
    tenant_user(
        &m365,
        "bob",
        &format!("bob{}", &random()[..4]),
        RecipientType::UserMailbox,
    );
    let moved = s.sync();
    assert!(s.operations(&moved) > 0, "{moved:#}");
    assert_eq!(s.operations(&s.sync()), 0, "the move converged");
    let mut homes = homes;
    homes[1] = ("bob@acmecorp.com", "m365");
    everyone_at_home(&homes);
}

#[test]
fn plan_format_powershell_writes_the_tenants_operations_as_a_script_an_admin_can_run() {
    let (m365, s) = o365_coexistence();
    let out = s.run(&["plan", "--format", "powershell"]);
    let script = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{script}");
    assert!(script.contains("Connect-ExchangeOnline"), "{script}");
    assert!(
        script.contains("$ErrorActionPreference = 'Stop'"),
        "{script}"
    );
    for person in ["mia@acmecorp.com", "max@acmecorp.com"] {
        assert!(script.contains(person), "{person}: {script}");
    }
    assert_eq!(script.matches("New-MailContact").count(), 2, "{script}");
    assert!(!script.contains("PrimarySmtpAddress"), "{script}");
    assert!(
        !script.contains("john@acmecorp.com"),
        "the mail server's operations are not Exchange's: {script}"
    );
    // Planning changed nothing: the tenant holds no contact yet.
    assert!(m365.mail_contacts().is_empty());
}
