//! Issue 3, end to end: the real `coexist` binary syncing a Google Workspace
//! customer (the fake Google of `tests/fakes/google`, started in this test
//! process on 127.0.0.1) with an LDAP mail server (a `simulated` system
//! seeded from a file): the acmecorp deployment of google-coexistence.txt.
//!
//! Google holds the users who moved (with a group, aliases and the routing
//! domain alias gapps.acmecorp.com); the mail server holds everyone else.
//! After `coexist sync` every mail-server person is a shared contact in
//! Google's GAL, carrying coexist's marker, and every Google recipient is a
//! forwarding entry on the mail server routed to local@gapps.acmecorp.com.
//! What coexist wrote is read back from the fake, as an admin would read the
//! Shared Contacts feed.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use coexist_connector::{Attributes, Recipient, RecipientKind, Route};
use coexist_fake_google::{FakeContact, FakeGoogle, FakeGroup, FakeUser, Fault, MemberType};
use coexist_testenv::acmecorp;
use common::{google_system, op, operations, Org, Served, GOOGLE_KEY_FILE};
use serde_json::Value;

// ---- the fake Google, running beside the tests ------------------------------

/// The fake Google, served beside the test.
type Google = Served<FakeGoogle>;

/// An empty acmecorp.com customer (admin@acmecorp.com), no latency.
fn google() -> Google {
    let google = common::fake_google();
    // 429s ask for a one-second wait; the config caps waits far lower.
    google.set_retry_after(1);
    google
}

// ---- the organisation -------------------------------------------------------

/// acmecorp's coexist.toml: a `google` system talking to the fake (fast: a
/// high request budget, short backoff), MX on Google with the catch-all
/// relaying unknown recipients to the mail server, and the mail server as a
/// `simulated` system ([`acmecorp::LDAP_SIMULATED`]). `extra` is added to
/// Google's `[systems.connection]`.
fn config(google: &FakeGoogle, extra: &str) -> String {
    let google = format!("{}{extra}\n", google_system(google));
    acmecorp::config(&google, acmecorp::LDAP_SIMULATED)
}

/// A user on Google, named `first last`, address `first@acmecorp.com`, with
/// the address Google gives every user on the domain alias.
fn google_user(first: &str, last: &str) -> FakeUser {
    let local = first.to_lowercase();
    FakeUser {
        primary_email: format!("{local}@acmecorp.com"),
        given_name: first.into(),
        family_name: last.into(),
        non_editable_aliases: vec![format!("{local}@gapps.acmecorp.com")],
        ..FakeUser::default()
    }
}

/// A person on the mail server with every attribute a contact carries.
fn ldap_person(n: usize, first: &str, last: &str) -> Recipient {
    let mut person = Recipient::mailbox(
        format!("m-{n}"),
        RecipientKind::Person,
        format!("{}@acmecorp.com", first.to_lowercase()),
    );
    person.attributes = Attributes {
        display_name: Some(format!("{first} {last}")),
        given_name: Some(first.into()),
        surname: Some(last.into()),
        business_phone: Some(format!("+1 555 010{n}")),
        mobile_phone: Some(format!("+1 555 019{n}")),
        title: Some("Engineer".into()),
        department: Some("R&D".into()),
        company: Some("Acme Corp".into()),
    };
    person
}

/// The mail server's people: Mary Major, Nils Nord, Olga Ost, Piet Post.
fn ldap_people() -> Vec<Recipient> {
    ["Mary Major", "Nils Nord", "Olga Ost", "Piet Post"]
        .iter()
        .enumerate()
        .map(|(n, name)| {
            let (first, last) = name.split_once(' ').unwrap();
            ldap_person(n, first, last)
        })
        .collect()
}

/// Google users (N = 3) and one group.
const GOOGLE_USERS: usize = 3;
const GOOGLE_GROUPS: usize = 1;
/// Mail-server people (M = 4).
const LDAP_PEOPLE: usize = 4;

/// The acmecorp deployment: Google holds Ann Lee (with an alias), Bob Stone
/// and Carol Diaz, the group sales@ (alias team-sales@, members Ann and
/// Bob) and the domain alias gapps.acmecorp.com; the mail server holds
/// [`ldap_people`]; and a supplier's shared contact that an admin made by
/// hand is already in Google's GAL.
struct Acme {
    google: Google,
    org: Org,
}

impl Acme {
    fn new() -> Acme {
        Acme::with(|_| {}, "")
    }

    /// Like [`Acme::new`], with `setup` run on the fake before anything else
    /// and `extra` Google connection settings.
    fn with(setup: impl FnOnce(&FakeGoogle), extra: &str) -> Acme {
        let google = google();
        setup(&google);
        google.add_user(FakeUser {
            aliases: vec!["ann.lee@acmecorp.com".into()],
            title: "CFO".into(),
            phones: vec![("work".into(), "+1 555 0001".into())],
            ..google_user("Ann", "Lee")
        });
        google.add_user(google_user("Bob", "Stone"));
        google.add_user(google_user("Carol", "Diaz"));
        google.add_group(FakeGroup {
            email: "sales@acmecorp.com".into(),
            name: "Sales".into(),
            aliases: vec!["team-sales@acmecorp.com".into()],
            ..FakeGroup::default()
        });
        google.add_member("sales@acmecorp.com", "ann@acmecorp.com", MemberType::User);
        google.add_member("sales@acmecorp.com", "bob@acmecorp.com", MemberType::User);
        google.add_domain_alias("gapps.acmecorp.com");
        google.add_contact(supplier());
        let org = Org::new(&config(&google, extra), &[("ldap", ldap_people())]);
        org.write_google_key(&google);
        Acme { google, org }
    }

    /// `coexist --output json sync`.
    fn sync(&self) -> (i32, Value) {
        self.org.json(&["sync"])
    }

    /// A sync that must succeed; its report.
    fn sync_ok(&self) -> Value {
        let (code, report) = self.sync();
        assert_eq!(code, 0, "coexist sync failed: {report:#}");
        report
    }

    /// coexist's contacts in Google (those carrying its marker).
    fn stubs_in_google(&self) -> Vec<FakeContact> {
        self.google
            .contacts()
            .into_iter()
            .filter(|c| marker(c).is_some())
            .collect()
    }

    /// coexist's contact for the mail-server person with `anchor`.
    fn contact_of(&self, anchor: &str) -> FakeContact {
        let wanted = format!("coexist:ldap:{anchor}");
        let contacts = self.stubs_in_google();
        contacts
            .iter()
            .find(|c| marker(c) == Some(wanted.as_str()))
            .cloned()
            .unwrap_or_else(|| panic!("no contact carries {wanted}: {contacts:#?}"))
    }

    /// The mail server's forwarding entries, by primary address: (kind, route).
    fn stubs_in_ldap(&self) -> Vec<(String, RecipientKind, Route, Vec<String>)> {
        let mut stubs: Vec<_> = self
            .org
            .stubs("ldap")
            .into_iter()
            .map(|f| {
                (
                    f.stub.primary_address,
                    f.stub.kind,
                    f.stub.route,
                    f.stub.aliases,
                )
            })
            .collect();
        stubs.sort_by(|a, b| a.0.cmp(&b.0));
        stubs
    }

    fn ldap_addresses(&self) -> Vec<String> {
        self.stubs_in_ldap().into_iter().map(|s| s.0).collect()
    }
}

/// The shared contact a Google admin made by hand for a supplier: no marker.
fn supplier() -> FakeContact {
    FakeContact {
        id: "supplier1".into(),
        given_name: "Sam".into(),
        family_name: "Supplier".into(),
        full_name: "Sam Supplier".into(),
        emails: vec![("sam@supplier.example".into(), true)],
        phones: vec![(
            "http://schemas.google.com/g/2005#work".into(),
            "+44 20 7946 0000".into(),
        )],
        org_name: "Supplier Ltd".into(),
        extended_properties: vec![("crm".into(), "S-17".into())],
        ..FakeContact::default()
    }
}

/// The supplier's contact as the fake holds it now.
fn supplier_now(google: &FakeGoogle) -> FakeContact {
    google
        .contacts()
        .into_iter()
        .find(|c| c.id == "supplier1")
        .expect("the hand-made contact still exists")
}

/// The value of coexist's marker on a contact.
fn marker(contact: &FakeContact) -> Option<&str> {
    contact
        .extended_properties
        .iter()
        .find(|(name, _)| name == "coexist")
        .map(|(_, value)| value.as_str())
        .filter(|value| value.starts_with("coexist:"))
}

const REL_WORK: &str = "http://schemas.google.com/g/2005#work";
const REL_MOBILE: &str = "http://schemas.google.com/g/2005#mobile";

/// A second sync right after a first one finds nothing to do.
fn assert_converged(acme: &Acme) {
    let report = acme.sync_ok();
    assert_eq!(operations(&report), vec![], "{report:#}");
    assert_eq!(report["apply"]["done"], 0, "{report:#}");
}

// ---- 1. the first sync, and the second that changes nothing -------------------

#[test]
fn a_sync_lists_every_mail_server_person_in_googles_gal_and_forwards_googles_recipients() {
    let acme = Acme::new();
    let supplier_before = supplier_now(&acme.google);

    let report = acme.sync_ok();
    let by_system = &report["plan"]["summary"]["by_system"];
    assert_eq!(by_system["google"]["create"], LDAP_PEOPLE, "{report:#}");
    assert_eq!(
        by_system["ldap"]["create"],
        GOOGLE_USERS + GOOGLE_GROUPS,
        "{report:#}"
    );
    assert_eq!(
        report["apply"]["done"],
        LDAP_PEOPLE + GOOGLE_USERS + GOOGLE_GROUPS
    );
    assert_eq!(report["apply"]["failed"], 0);
    assert_eq!(report["plan"]["conflicts"], serde_json::json!([]));
    let google_pull = report["pulls"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["system"] == "google")
        .unwrap();
    assert_eq!(
        google_pull["recipients"],
        GOOGLE_USERS + GOOGLE_GROUPS,
        "{google_pull:#}"
    );
    assert_eq!(google_pull["problems"], serde_json::json!([]));

    // Google's GAL: one shared contact per mail-server person, with coexist's
    // marker naming the person's anchor, and every attribute copied.
    assert_eq!(acme.stubs_in_google().len(), LDAP_PEOPLE);
    for person in ldap_people() {
        let contact = acme.contact_of(&person.anchor);
        let a = &person.attributes;
        assert_eq!(Some(&contact.full_name), a.display_name.as_ref());
        assert_eq!(Some(&contact.given_name), a.given_name.as_ref());
        assert_eq!(Some(&contact.family_name), a.surname.as_ref());
        assert_eq!(contact.emails, vec![(person.primary_address.clone(), true)]);
        let phones: BTreeSet<_> = contact.phones.iter().cloned().collect();
        assert_eq!(
            phones,
            BTreeSet::from([
                (REL_WORK.to_string(), a.business_phone.clone().unwrap()),
                (REL_MOBILE.to_string(), a.mobile_phone.clone().unwrap()),
            ]),
            "{contact:#?}"
        );
        assert_eq!(Some(&contact.org_name), a.company.as_ref());
        assert_eq!(Some(&contact.org_title), a.title.as_ref());
        assert_eq!(Some(&contact.org_department), a.department.as_ref());
    }

    // The mail server: one forwarding entry per Google user and group, routed
    // to local@gapps.acmecorp.com, with its shared-domain aliases.
    let routed = |local: &str| Route::Address(format!("{local}@gapps.acmecorp.com"));
    assert_eq!(
        acme.stubs_in_ldap(),
        vec![
            (
                "ann@acmecorp.com".to_string(),
                RecipientKind::Person,
                routed("ann"),
                vec!["ann.lee@acmecorp.com".to_string()],
            ),
            (
                "bob@acmecorp.com".to_string(),
                RecipientKind::Person,
                routed("bob"),
                vec![],
            ),
            (
                "carol@acmecorp.com".to_string(),
                RecipientKind::Person,
                routed("carol"),
                vec![],
            ),
            (
                "sales@acmecorp.com".to_string(),
                RecipientKind::Group,
                routed("sales"),
                vec!["team-sales@acmecorp.com".to_string()],
            ),
        ]
    );
    let ann = acme
        .org
        .stubs("ldap")
        .into_iter()
        .find(|s| s.stub.primary_address == "ann@acmecorp.com")
        .unwrap();
    assert_eq!(ann.stub.attributes.title.as_deref(), Some("CFO"));
    assert_eq!(ann.stub.attributes.display_name.as_deref(), Some("Ann Lee"));
    assert_eq!(
        ann.stub.attributes.business_phone.as_deref(),
        Some("+1 555 0001")
    );

    // The second run reads back what the first wrote and has nothing to do:
    // no write reaches Google.
    let contacts_before = acme.google.contacts();
    acme.google.reset_counts();
    assert_converged(&acme);
    let requests = acme.google.requests();
    assert_eq!(
        (requests.contacts_batch, requests.contacts_entry),
        (0, 0),
        "{requests:?}"
    );
    assert_eq!(acme.google.contacts(), contacts_before, "etags unchanged");

    // The hand-made contact was read by every pull and never written.
    assert_eq!(supplier_now(&acme.google), supplier_before);
}

#[test]
fn the_acmecorp_of_the_seeds_100_on_google_and_900_on_the_mail_server_settles_in_one_run() {
    let google = google();
    google.seed_synthetic(100, 1, 100); // group0@ has every Google user
    google.add_domain_alias("gapps.acmecorp.com");
    let org = Org::new(
        &config(&google, "page_size_users = 30\npage_size_contacts = 250"),
        &[("ldap", common::people("m", "acmecorp.com", 900))],
    );
    org.write_google_key(&google);

    let (code, report) = org.json(&["sync"]);
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(report["apply"]["done"], 900 + 101, "{report:#}");
    let requests = google.requests();
    assert_eq!(
        requests.contacts_batch, 9,
        "900 contacts in batches of 100: {requests:?}"
    );
    assert_eq!(requests.users, 4, "100 users in pages of 30: {requests:?}");
    let contacts = google.contacts();
    assert_eq!(contacts.len(), 900);
    assert!(contacts.iter().all(|c| marker(c).is_some()));
    assert_eq!(org.stubs("ldap").len(), 101);

    google.reset_counts();
    let (code, report) = org.json(&["sync"]);
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(operations(&report), vec![], "{report:#}");
    let requests = google.requests();
    assert_eq!(
        (requests.contacts_batch, requests.contacts_entry),
        (0, 0),
        "{requests:?}"
    );
    assert_eq!(
        requests.contacts_feed, 4,
        "the 900 contacts read in pages of 250: {requests:?}"
    );
}

// ---- 2. changes at the source propagate ----------------------------------------

#[test]
fn a_renamed_or_promoted_mail_server_person_is_one_update_of_its_contact() {
    let acme = Acme::new();
    acme.sync_ok();
    let before = acme.contact_of("m-1");

    // Nils Nord marries and becomes Nils Berg, and is promoted.
    let mut people = ldap_people();
    people[1].attributes.display_name = Some("Nils Berg".into());
    people[1].attributes.surname = Some("Berg".into());
    people[1].attributes.title = Some("Head of R&D".into());
    acme.org.seed("ldap", people);

    let report = acme.sync_ok();
    assert_eq!(
        operations(&report),
        vec![op("google", "update", "nils@acmecorp.com")],
        "{report:#}"
    );
    let changed: BTreeSet<&str> = report["plan"]["operations"][0]["operation"]["changed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    assert_eq!(
        changed,
        BTreeSet::from(["display_name", "surname", "title"]),
        "{report:#}"
    );
    assert_eq!(report["apply"]["done"], 1);
    let after = acme.contact_of("m-1");
    assert_eq!(after.id, before.id, "the same contact, updated in place");
    assert_ne!(after.etag, before.etag);
    assert_eq!(
        (
            after.full_name.as_str(),
            after.given_name.as_str(),
            after.family_name.as_str(),
            after.org_title.as_str()
        ),
        ("Nils Berg", "Nils", "Berg", "Head of R&D")
    );
    assert_eq!(after.emails, before.emails);
    assert_eq!(after.org_department, before.org_department);
    assert_converged(&acme);
}

#[test]
fn a_person_who_leaves_the_mail_server_leaves_googles_gal() {
    let acme = Acme::new();
    acme.sync_ok();
    let supplier_before = supplier_now(&acme.google);

    // Olga Ost leaves the company.
    let people: Vec<_> = ldap_people()
        .into_iter()
        .filter(|p| p.anchor != "m-2")
        .collect();
    acme.org.seed("ldap", people);

    let report = acme.sync_ok();
    assert_eq!(
        operations(&report),
        vec![op("google", "delete", "olga@acmecorp.com")],
        "{report:#}"
    );
    let left: BTreeSet<String> = acme
        .stubs_in_google()
        .iter()
        .map(|c| c.emails[0].0.clone())
        .collect();
    assert_eq!(
        left,
        BTreeSet::from([
            "mary@acmecorp.com".to_string(),
            "nils@acmecorp.com".to_string(),
            "piet@acmecorp.com".to_string()
        ]),
        "only olga's contact is gone"
    );
    assert_eq!(supplier_now(&acme.google), supplier_before);
    assert_converged(&acme);
}

#[test]
fn a_suspended_or_removed_google_user_loses_its_forwarding_entry_on_the_mail_server() {
    let acme = Acme::new();
    acme.sync_ok();

    // Bob is suspended in the Admin console.
    acme.google
        .update_user("bob@acmecorp.com", |u| u.suspended = true);
    let report = acme.sync_ok();
    assert_eq!(
        operations(&report),
        vec![op("ldap", "delete", "bob@acmecorp.com")],
        "{report:#}"
    );
    assert_eq!(
        acme.ldap_addresses(),
        [
            "ann@acmecorp.com",
            "carol@acmecorp.com",
            "sales@acmecorp.com"
        ]
    );
    assert_converged(&acme);

    // Carol's account is deleted.
    acme.google.remove_user("carol@acmecorp.com");
    let report = acme.sync_ok();
    assert_eq!(
        operations(&report),
        vec![op("ldap", "delete", "carol@acmecorp.com")],
        "{report:#}"
    );
    assert_eq!(
        acme.ldap_addresses(),
        ["ann@acmecorp.com", "sales@acmecorp.com"]
    );
    assert_eq!(
        acme.stubs_in_google().len(),
        LDAP_PEOPLE,
        "Google's GAL of mail-server people is untouched"
    );
    assert_converged(&acme);
}

#[test]
fn a_contact_edited_by_hand_in_google_is_set_back_to_what_the_mail_server_says() {
    let acme = Acme::new();
    acme.sync_ok();

    // An admin edits Mary's contact in the Admin console.
    let mut mary = acme.contact_of("m-0");
    mary.org_title = "Intern".into();
    mary.phones.clear();
    acme.google.add_contact(mary.clone());

    let report = acme.sync_ok();
    assert_eq!(
        operations(&report),
        vec![op("google", "update", "mary@acmecorp.com")],
        "{report:#}"
    );
    let restored = acme.contact_of("m-0");
    assert_eq!(restored.id, mary.id);
    assert_eq!(restored.org_title, "Engineer");
    assert_eq!(restored.phones.len(), 2, "{restored:#?}");
    assert_converged(&acme);
}

// ---- 3. faults through the whole stack --------------------------------------

#[test]
fn a_rate_limit_burst_during_the_pull_is_retried_and_the_sync_succeeds() {
    let acme = Acme::new();
    // Google throttles the first five requests after the token: two 429s,
    // two per-user rate limits and one concurrent-requests quota.
    acme.google.fail_next(2, Fault::TooMany429);
    acme.google.fail_next(2, Fault::RateLimit403);
    acme.google.fail_next(1, Fault::Quota403);

    let started = Instant::now();
    let report = acme.sync_ok();
    assert_eq!(acme.google.requests().faults, 5, "every fault was served");
    assert_eq!(
        report["apply"]["done"],
        LDAP_PEOPLE + GOOGLE_USERS + GOOGLE_GROUPS
    );
    assert_eq!(acme.stubs_in_google().len(), LDAP_PEOPLE);
    assert_eq!(acme.ldap_addresses().len(), GOOGLE_USERS + GOOGLE_GROUPS);
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "backoff stays within retry_max_delay_ms: {:?}",
        started.elapsed()
    );
    assert_converged(&acme);
}

#[test]
fn a_listing_that_keeps_failing_part_way_deletes_nothing_anywhere_until_it_recovers() {
    // Two users a page, so the users listing has two pages; three attempts.
    let acme = Acme::with(|_| {}, "page_size_users = 2\nmax_attempts = 3");
    acme.sync_ok();
    let contacts_before = acme.google.contacts();
    let ldap_before = acme.stubs_in_ldap();

    // From now on the second page of every listing fails, every time; and
    // Piet Post leaves the mail server, so a delete on Google is due.
    acme.google.fail_listing_after_pages(1, true);
    let people: Vec<_> = ldap_people()
        .into_iter()
        .filter(|p| p.anchor != "m-3")
        .collect();
    acme.org.seed("ldap", people);

    let (code, report) = acme.sync();
    assert_eq!(code, 3, "the safety gate holds the run: {report:#}");
    assert_eq!(report["plan"]["gates"][0]["gate"], "incomplete_source");
    let message = report["plan"]["gates"][0]["message"].as_str().unwrap();
    assert!(
        message.contains("google") && message.contains("no stub is deleted anywhere"),
        "{message}"
    );
    assert!(
        report["plan"]["summary"]["withheld"].as_u64().unwrap() >= 1,
        "piet's delete waits: {report:#}"
    );
    assert_eq!(report["plan"]["summary"]["delete"], 0, "{report:#}");
    let google_pull = report["pulls"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["system"] == "google")
        .unwrap();
    assert!(
        google_pull["problems"]
            .to_string()
            .contains("the read is incomplete"),
        "the pull says what it could not read: {google_pull:#}"
    );
    assert!(acme.google.requests().faults >= 3, "the page was retried");
    assert_eq!(
        acme.google.contacts(),
        contacts_before,
        "nothing deleted on Google"
    );
    assert_eq!(
        acme.stubs_in_ldap(),
        ldap_before,
        "nothing deleted on the mail server"
    );

    // Google recovers: the next sync carries out the delete, and nothing else.
    acme.google.clear_faults();
    let report = acme.sync_ok();
    assert_eq!(
        operations(&report),
        vec![op("google", "delete", "piet@acmecorp.com")],
        "{report:#}"
    );
    assert_eq!(acme.stubs_in_google().len(), LDAP_PEOPLE - 1);
    assert_eq!(acme.stubs_in_ldap(), ldap_before);
    assert_converged(&acme);
}

#[test]
fn a_contact_google_refuses_fails_alone_and_the_next_run_converges() {
    let acme = Acme::new();
    // The domain may hold three shared contacts: the supplier's and two more.
    acme.google.set_max_contacts(3);

    let (code, report) = acme.sync();
    assert_eq!(code, 4, "partly done: {report:#}");
    assert_eq!(report["apply"]["failed"], 2, "{report:#}");
    assert_eq!(
        report["apply"]["done"],
        2 + GOOGLE_USERS + GOOGLE_GROUPS,
        "the other creates, on both systems, went through: {report:#}"
    );
    let failures = report["apply"]["failures"].to_string();
    assert!(
        failures.contains("maximum of 3 shared contacts"),
        "{failures}"
    );
    assert_eq!(acme.stubs_in_google().len(), 2);
    assert_eq!(acme.ldap_addresses().len(), GOOGLE_USERS + GOOGLE_GROUPS);
    assert_eq!(
        acme.google.requests().contacts_batch,
        1,
        "one batch carried the four creates; the refused ones were not repeated"
    );

    // The admin raises the limit: the next sync creates just the missing two.
    acme.google.set_max_contacts(200_000);
    let report = acme.sync_ok();
    assert_eq!(report["apply"]["done"], 2, "{report:#}");
    assert_eq!(acme.stubs_in_google().len(), LDAP_PEOPLE);
    assert_converged(&acme);
}

// ---- 4. coexist doctor ----------------------------------------------------------

/// `coexist --output json doctor`: (exit code, Google's findings by check).
fn doctor(acme: &Acme) -> (i32, Value, Vec<(String, bool, String)>) {
    let (code, report) = acme.org.json(&["doctor"]);
    let google: Vec<_> = report["findings"]
        .as_array()
        .unwrap_or_else(|| panic!("findings: {report:#}"))
        .iter()
        .filter_map(|f| {
            let check = f["check"].as_str()?.strip_prefix("google: ")?;
            Some((
                check.to_string(),
                f["ok"].as_bool()?,
                f["detail"].as_str()?.to_string(),
            ))
        })
        .collect();
    (code, report, google)
}

fn finding<'a>(findings: &'a [(String, bool, String)], check: &str) -> &'a (String, bool, String) {
    findings
        .iter()
        .find(|f| f.0.to_lowercase().contains(check))
        .unwrap_or_else(|| panic!("no finding about {check}: {findings:#?}"))
}

#[test]
fn doctor_finds_the_routing_domain_alias_and_explains_the_manual_catch_all() {
    let acme = Acme::new();
    let (code, report, google) = doctor(&acme);

    let credentials = finding(&google, "credentials");
    assert!(credentials.1, "{credentials:?}");
    assert!(finding(&google, "directory api").1, "{google:#?}");
    assert!(finding(&google, "shared contacts api").1, "{google:#?}");
    let routing = finding(&google, "routing domain");
    assert!(routing.1, "{routing:?}");
    assert!(
        routing
            .2
            .contains("gapps.acmecorp.com is a verified domain alias"),
        "{routing:?}"
    );
    let manual = finding(&google, "manual check");
    assert!(manual.1, "a manual check cannot fail: {manual:?}");
    let flagged: Vec<&str> = report["findings"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|f| f["manual"].as_bool() == Some(true))
        .filter_map(|f| f["check"].as_str())
        .filter(|check| check.starts_with("google: "))
        .collect();
    assert_eq!(
        flagged,
        vec!["google: Gmail routing for people not on Google (manual check)"],
        "exactly the catch-all is flagged manual on Google: {report:#}"
    );
    for words in [
        "MANUAL CHECK",
        "no Google API exposes this setting",
        "Gmail > Routing",
        "Unknown mailbox accounts",
        "local@gapps.acmecorp.com",
    ] {
        assert!(manual.2.contains(words), "{words} missing: {}", manual.2);
    }
    // Every finding passes, so doctor says so.
    assert_eq!(
        (code, report["ok"].as_bool()),
        (0, Some(true)),
        "{report:#}"
    );
    assert_eq!(
        acme.google.requests().contacts_batch,
        0,
        "doctor writes nothing"
    );
}

#[test]
fn doctor_fails_when_the_routing_domain_is_not_a_domain_alias_of_the_customer() {
    let acme = Acme::new();
    // The admin has not added gapps.acmecorp.com: a fresh fake without it.
    let bare = google();
    bare.add_user(google_user("Ann", "Lee"));
    acme.org.set_config(&config(&bare, ""));
    acme.org.write_google_key(&bare);

    let (code, report, google) = doctor(&acme);
    let routing = finding(&google, "routing domain");
    assert!(!routing.1, "{routing:?}");
    assert!(
        routing
            .2
            .contains("gapps.acmecorp.com is neither a domain nor a domain alias"),
        "{routing:?}"
    );
    assert!(
        routing.2.contains("Admin console"),
        "says what to do: {routing:?}"
    );
    assert!(finding(&google, "manual check")
        .2
        .contains("Unknown mailbox accounts"));
    assert_eq!(
        (code, report["ok"].as_bool()),
        (4, Some(false)),
        "{report:#}"
    );

    // The text output says the same to a person.
    let out = acme.org.run(&["doctor"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("[FAIL] google: routing domain: gapps.acmecorp.com is neither"),
        "{text}"
    );
    assert!(text.contains("MANUAL CHECK"), "{text}");
}

// ---- 5. check-config ----------------------------------------------------------

/// The 1-based line of the first line of `text` containing `needle`.
fn line_of(text: &str, needle: &str) -> usize {
    text.lines()
        .position(|l| l.contains(needle))
        .map(|n| n + 1)
        .unwrap_or_else(|| panic!("{needle} is not in the configuration"))
}

#[test]
fn check_config_accepts_the_google_system_without_calling_google() {
    let acme = Acme::new();
    let (code, report) = acme.org.json(&["check-config"]);
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(report["systems"], serde_json::json!(["google", "ldap"]));
    assert_eq!(acme.google.requests().total, 0, "no request reached Google");
}

#[test]
fn check_config_names_the_line_of_a_misspelt_google_setting() {
    let acme = Acme::with(|_| {}, "page_sise_users = 100");
    let text = std::fs::read_to_string(acme.org.config()).unwrap();
    let out = acme.org.run(&["check-config"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    let line = line_of(&text, "page_sise_users");
    assert!(
        stderr.contains(&format!("coexist.toml:{line}:")),
        "line {line} named: {stderr}"
    );
    assert!(
        stderr.contains("systems[0].connection") && stderr.contains("page_sise_users"),
        "{stderr}"
    );
    // A sync refuses the same configuration before touching anything.
    let out = acme.org.run(&["sync"]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(acme.google.requests().total, 0);
    assert!(acme.stubs_in_ldap().is_empty());
}

#[test]
fn check_config_names_a_missing_service_account_key_file() {
    let acme = Acme::new();
    std::fs::remove_file(acme.org.path(GOOGLE_KEY_FILE)).unwrap();
    let out = acme.org.run(&["check-config"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("systems[0].connection") && stderr.contains(GOOGLE_KEY_FILE),
        "{stderr}"
    );
}
