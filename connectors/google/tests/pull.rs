//! Reading a Google Workspace customer: users, groups with nested members,
//! and coexist's own shared contacts.

mod common;

use coexist_connector::marker::marker_value;
use coexist_connector::{Connector, NoProgress, PullMode, Recipient, RecipientKind, Route};
use coexist_fake_google::{FakeContact, FakeGroup, FakeUser, MemberType};
use common::{setup, TestResult};

fn find<'a>(recipients: &'a [Recipient], address: &str) -> Option<&'a Recipient> {
    recipients.iter().find(|r| r.primary_address == address)
}

fn seed_directory(google: &coexist_fake_google::FakeGoogle) {
    google.add_user(FakeUser {
        primary_email: "alice@acmecorp.com".into(),
        given_name: "Alice".into(),
        family_name: "Smith".into(),
        aliases: vec!["a.smith@acmecorp.com".into()],
        non_editable_aliases: vec!["alice@acmecorp.com.test-google-a.com".into()],
        phones: vec![
            ("work".into(), "+1 555 0100".into()),
            ("mobile".into(), "+1 555 0199".into()),
        ],
        title: "Engineer".into(),
        department: "R&D".into(),
        organization: "Acme Corp".into(),
        ..FakeUser::default()
    });
    google.add_user(FakeUser {
        primary_email: "bob@acmecorp.com".into(),
        given_name: "Bob".into(),
        family_name: "Jones".into(),
        suspended: true,
        ..FakeUser::default()
    });
    google.add_user(FakeUser {
        primary_email: "carol@acmecorp.com".into(),
        given_name: "Carol".into(),
        family_name: "White".into(),
        archived: true,
        is_mailbox_setup: false,
        ..FakeUser::default()
    });
    google.add_group(FakeGroup {
        email: "all@acmecorp.com".into(),
        name: "Everyone".into(),
        aliases: vec!["everyone@acmecorp.com".into()],
        ..FakeGroup::default()
    });
    google.add_group(FakeGroup {
        email: "eng@acmecorp.com".into(),
        name: "Engineering".into(),
        ..FakeGroup::default()
    });
    google.add_member("all@acmecorp.com", "eng@acmecorp.com", MemberType::Group);
    google.add_member("all@acmecorp.com", "bob@acmecorp.com", MemberType::User);
    google.add_member("eng@acmecorp.com", "alice@acmecorp.com", MemberType::User);
    // A cycle: eng contains all, which contains eng.
    google.add_member("eng@acmecorp.com", "all@acmecorp.com", MemberType::Group);
}

#[tokio::test]
async fn a_full_pull_maps_users_with_their_addresses_names_phones_and_organization() -> TestResult {
    let s = setup().await?;
    seed_directory(&s.google);

    let pull = s.connector.pull(None, &NoProgress).await?;

    assert_eq!(pull.mode, PullMode::Full);
    assert!(pull.complete, "{:?}", pull.problems);
    assert_eq!(pull.cursor, None);
    let alice = find(&pull.recipients, "alice@acmecorp.com").ok_or("alice missing")?;
    assert_eq!(alice.kind, RecipientKind::Person);
    assert!(alice.mailbox && alice.enabled);
    assert_eq!(
        alice.aliases,
        [
            "a.smith@acmecorp.com",
            "alice@acmecorp.com.test-google-a.com"
        ]
    );
    let a = &alice.attributes;
    assert_eq!(a.given_name.as_deref(), Some("Alice"));
    assert_eq!(a.surname.as_deref(), Some("Smith"));
    assert_eq!(a.display_name.as_deref(), Some("Alice Smith"));
    assert_eq!(a.business_phone.as_deref(), Some("+1 555 0100"));
    assert_eq!(a.mobile_phone.as_deref(), Some("+1 555 0199"));
    assert_eq!(a.title.as_deref(), Some("Engineer"));
    assert_eq!(a.department.as_deref(), Some("R&D"));
    assert_eq!(a.company.as_deref(), Some("Acme Corp"));
    assert!(alice.etag.is_some(), "the etag travels with the recipient");
    assert_eq!(
        alice.locator.as_deref(),
        Some("alice@acmecorp.com"),
        "an admin knows a user by its primary address"
    );
    assert!(!alice.anchor.is_empty());
    Ok(())
}

#[tokio::test]
async fn suspended_and_archived_users_are_disabled_and_mailboxless_users_say_so() -> TestResult {
    let s = setup().await?;
    seed_directory(&s.google);

    let pull = s.connector.pull(None, &NoProgress).await?;

    let bob = find(&pull.recipients, "bob@acmecorp.com").ok_or("bob missing")?;
    assert!(!bob.enabled && bob.mailbox);
    let carol = find(&pull.recipients, "carol@acmecorp.com").ok_or("carol missing")?;
    assert!(!carol.enabled);
    assert!(!carol.mailbox, "isMailboxSetup = false");
    Ok(())
}

#[tokio::test]
async fn groups_list_their_members_with_nested_groups_resolved_and_cycles_tolerated() -> TestResult
{
    let s = setup().await?;
    seed_directory(&s.google);

    let pull = s.connector.pull(None, &NoProgress).await?;

    let all = find(&pull.recipients, "all@acmecorp.com").ok_or("all missing")?;
    assert_eq!(all.kind, RecipientKind::Group);
    assert!(all.mailbox && all.enabled);
    assert_eq!(all.aliases, ["everyone@acmecorp.com"]);
    assert_eq!(all.attributes.display_name.as_deref(), Some("Everyone"));
    assert_eq!(all.locator.as_deref(), Some("all@acmecorp.com"));
    assert_eq!(all.members, ["alice@acmecorp.com", "bob@acmecorp.com"]);
    let eng = find(&pull.recipients, "eng@acmecorp.com").ok_or("eng missing")?;
    assert_eq!(eng.members, ["alice@acmecorp.com", "bob@acmecorp.com"]);
    Ok(())
}

#[tokio::test]
async fn etags_change_with_the_object_and_only_then() -> TestResult {
    let s = setup().await?;
    seed_directory(&s.google);
    let first = s.connector.pull(None, &NoProgress).await?;

    s.google
        .update_user("alice@acmecorp.com", |u| u.title = "Staff Engineer".into());
    s.google
        .add_member("eng@acmecorp.com", "carol@acmecorp.com", MemberType::User);
    let second = s
        .connector
        .pull(Some("ignored-cursor"), &NoProgress)
        .await?;

    let etag = |pull: &coexist_connector::Pull, address: &str| {
        find(&pull.recipients, address).and_then(|r| r.etag.clone())
    };
    assert_ne!(
        etag(&first, "alice@acmecorp.com"),
        etag(&second, "alice@acmecorp.com")
    );
    assert_eq!(
        etag(&first, "bob@acmecorp.com"),
        etag(&second, "bob@acmecorp.com")
    );
    assert_ne!(
        etag(&first, "eng@acmecorp.com"),
        etag(&second, "eng@acmecorp.com"),
        "a membership change changes the group's etag"
    );
    assert_eq!(second.mode, PullMode::Full, "the cursor is ignored");
    Ok(())
}

#[tokio::test]
async fn marked_contacts_are_read_as_stubs_and_unmarked_ones_are_ignored() -> TestResult {
    let s = setup().await?;
    let stub_id = s.google.add_contact(FakeContact {
        given_name: "Dave".into(),
        family_name: "Onprem".into(),
        full_name: "Dave Onprem".into(),
        emails: vec![
            ("dave@acmecorp.com".into(), true),
            ("d.onprem@acmecorp.com".into(), false),
        ],
        phones: vec![(
            "http://schemas.google.com/g/2005#work".into(),
            "+1 555 0142".into(),
        )],
        org_name: "Acme Corp".into(),
        org_title: "Accountant".into(),
        org_department: "Finance".into(),
        extended_properties: vec![("coexist".into(), marker_value("ldap:dave-uuid"))],
        ..FakeContact::default()
    });
    s.google.add_contact(FakeContact {
        full_name: "Plumbing Supplies Ltd".into(),
        emails: vec![("orders@plumbing.example".into(), true)],
        ..FakeContact::default()
    });
    s.google.add_contact(FakeContact {
        full_name: "Somebody else's tool".into(),
        emails: vec![("x@acmecorp.com".into(), true)],
        extended_properties: vec![("coexist".into(), "not-a-marker".into())],
        ..FakeContact::default()
    });

    let pull = s.connector.pull(None, &NoProgress).await?;

    assert_eq!(pull.stubs.len(), 1, "{:?}", pull.stubs);
    let found = &pull.stubs[0];
    assert_eq!(found.id, stub_id);
    assert!(found.locator.contains(&stub_id), "{}", found.locator);
    let stub = &found.stub;
    assert_eq!(stub.anchor, "ldap:dave-uuid");
    assert_eq!(stub.primary_address, "dave@acmecorp.com");
    assert_eq!(stub.aliases, ["d.onprem@acmecorp.com"]);
    assert_eq!(stub.route, Route::DomainRouting);
    assert_eq!(stub.attributes.display_name.as_deref(), Some("Dave Onprem"));
    assert_eq!(
        stub.attributes.business_phone.as_deref(),
        Some("+1 555 0142")
    );
    assert_eq!(stub.attributes.company.as_deref(), Some("Acme Corp"));
    assert_eq!(stub.attributes.title.as_deref(), Some("Accountant"));
    assert_eq!(stub.attributes.department.as_deref(), Some("Finance"));
    assert!(pull.problems.is_empty(), "{:?}", pull.problems);
    Ok(())
}

#[tokio::test]
async fn a_pull_uses_the_largest_pages_and_only_valid_requests() -> TestResult {
    let s = setup().await?;
    s.google.seed_synthetic(1_200, 450, 3);
    s.google.reset_counts();

    let pull = s.connector.pull(None, &NoProgress).await?;

    assert!(pull.complete);
    assert_eq!(pull.recipients.len(), 1_200 + 450);
    let counts = s.google.requests();
    assert_eq!(counts.users, 3, "1,200 users at 500 a page");
    assert_eq!(counts.groups, 3, "450 groups at 200 a page");
    assert_eq!(counts.members, 450, "one member page per group");
    assert_eq!(counts.contacts_feed, 1);
    assert_eq!(counts.token, 1, "one token for the whole pull");
    assert_eq!(
        counts.rejected, 0,
        "every request is valid per the discovery document"
    );
    Ok(())
}

#[tokio::test]
async fn progress_is_reported_as_objects_are_read() -> TestResult {
    use std::sync::atomic::{AtomicU64, Ordering};
    struct Count(AtomicU64);
    impl coexist_connector::Progress for Count {
        fn advance(&self, n: u64) {
            self.0.fetch_add(n, Ordering::Relaxed);
        }
    }
    let s = setup().await?;
    s.google.seed_synthetic(30, 4, 2);
    let count = Count(AtomicU64::new(0));

    s.connector.pull(None, &count).await?;

    assert_eq!(count.0.load(Ordering::Relaxed), 34);
    Ok(())
}

async fn timed_pull(
    concurrency: usize,
    requests_per_minute: u32,
) -> Result<std::time::Duration, Box<dyn std::error::Error>> {
    let options = coexist_fake_google::FakeOptions {
        latency: std::time::Duration::from_millis(20),
        ..Default::default()
    };
    let s = common::setup_with(options, |c| {
        c.concurrency = concurrency;
        c.requests_per_minute = requests_per_minute;
    })
    .await?;
    s.google.seed_synthetic(12, 12, 1);
    s.connector.pull(None, &NoProgress).await?; // the token, once
    let started = std::time::Instant::now();
    s.connector.pull(None, &NoProgress).await?;
    Ok(started.elapsed())
}

#[tokio::test]
async fn member_listings_run_concurrently_within_the_configured_bound() -> TestResult {
    // 15 requests (users, groups, 12 member pages, contacts) of 20 ms each.
    let one_at_a_time = timed_pull(1, 0).await?;
    let eight_at_a_time = timed_pull(8, 0).await?;

    assert!(
        one_at_a_time >= std::time::Duration::from_millis(15 * 20),
        "concurrency 1 runs one request at a time: {one_at_a_time:?}"
    );
    assert!(
        eight_at_a_time < one_at_a_time,
        "concurrency 8 overlaps requests: {eight_at_a_time:?} vs {one_at_a_time:?}"
    );
    Ok(())
}

#[tokio::test]
async fn requests_are_spaced_by_the_rate_limit() -> TestResult {
    // 15 requests at 600 a minute start at least 14 x 100 ms apart in all.
    let elapsed = timed_pull(8, 600).await?;

    assert!(
        elapsed >= std::time::Duration::from_millis(1_400),
        "{elapsed:?}"
    );
    Ok(())
}

#[tokio::test]
async fn page_sizes_above_the_api_maxima_are_refused_at_set_up() -> TestResult {
    let s = setup().await?;
    let mut users = s.config.clone();
    users.page_size_users = 501;
    let mut groups = s.config.clone();
    groups.page_size_groups = 201;

    for config in [users, groups] {
        let result = coexist_google::GoogleConnector::new("google", config);
        assert!(
            matches!(
                result,
                Err(coexist_connector::ConnectorError::Permanent { .. })
            ),
            "{:?}",
            result.err()
        );
    }
    Ok(())
}
