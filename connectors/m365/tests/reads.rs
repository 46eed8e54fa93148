//! Reads of a tenant: who holds a mailbox here (Exchange decides), every
//! address, groups with nested members, deltas with changes and removals,
//! an expired delta link, contacts coexist did not make.

mod common;

use coexist_connector::{Connector, NoProgress, PullMode, RecipientKind};
use coexist_fake_m365::{FakeGroup, FakeMailContact, RecipientType};
use common::{setup, user, TestResult};

#[tokio::test]
async fn a_full_read_tells_mailboxes_here_from_mail_users_and_directory_only_accounts() -> TestResult
{
    let s = setup().await?;
    s.m365
        .add_user(user("ann", "ann", RecipientType::UserMailbox));
    s.m365
        .add_user(user("info", "info", RecipientType::SharedMailbox));
    s.m365
        .add_user(user("room1", "room1", RecipientType::RoomMailbox));
    s.m365.add_user(user("bob", "bob", RecipientType::MailUser));
    s.m365.add_user(user("carl", "carl", RecipientType::None));

    let pull = s.connector.pull(None, &NoProgress).await?;

    assert_eq!(pull.mode, PullMode::Full);
    assert!(pull.complete);
    assert!(pull.cursor.is_some(), "a full read leaves the delta links");
    assert!(pull
        .incremental
        .as_deref()
        .is_some_and(|i| i.contains("delta")));
    let by_address = |a: &str| pull.recipients.iter().find(|r| r.primary_address == a);
    let ann = by_address("ann@acmecorp.com").ok_or("ann missing")?;
    assert!(ann.mailbox && ann.enabled && ann.kind == RecipientKind::Person);
    let info = by_address("info@acmecorp.com").ok_or("info missing")?;
    assert!(info.mailbox && info.kind == RecipientKind::SharedMailbox);
    let room = by_address("room1@acmecorp.com").ok_or("room missing")?;
    assert!(room.mailbox && room.kind == RecipientKind::Resource);
    let bob = by_address("bob@acmecorp.com").ok_or("bob missing")?;
    assert!(!bob.mailbox, "a mail user is not homed here");
    let carl = by_address("carl@acmecorp.com").ok_or("carl missing")?;
    assert!(!carl.mailbox, "a directory-only account is not homed here");
    Ok(())
}

#[tokio::test]
async fn every_address_of_a_recipient_is_read_with_its_attributes() -> TestResult {
    let s = setup().await?;
    let id = s
        .m365
        .add_user(user("john.doe", "jdoe", RecipientType::UserMailbox));

    let pull = s.connector.pull(None, &NoProgress).await?;

    let john = pull
        .recipients
        .iter()
        .find(|r| r.anchor == id)
        .ok_or("john missing")?;
    assert_eq!(john.primary_address, "john.doe@acmecorp.com");
    assert_eq!(john.aliases, ["jdoe@acmecorp.mail.onmicrosoft.com"]);
    assert_eq!(john.locator.as_deref(), Some("john.doe@acmecorp.com"));
    let a = &john.attributes;
    assert_eq!(a.display_name.as_deref(), Some("john.doe (M365)"));
    assert_eq!(a.surname.as_deref(), Some("Cloud"));
    assert_eq!(a.title.as_deref(), Some("Engineer"));
    assert_eq!(a.department.as_deref(), Some("R&D"));
    assert_eq!(a.company.as_deref(), Some("Acme"));
    assert_eq!(a.business_phone.as_deref(), Some("+1 555 0100"));
    assert_eq!(a.mobile_phone.as_deref(), Some("+1 555 0199"));
    assert_eq!(
        john.extra.get("office_location").map(String::as_str),
        Some("HQ")
    );
    Ok(())
}

#[tokio::test]
async fn groups_list_their_members_with_nested_groups_resolved() -> TestResult {
    let s = setup().await?;
    let ann = s
        .m365
        .add_user(user("ann", "ann", RecipientType::UserMailbox));
    let bob = s
        .m365
        .add_user(user("bob", "bob", RecipientType::UserMailbox));
    let all = s.m365.add_group(FakeGroup {
        display_name: "Everyone".into(),
        mail: "all@acmecorp.com".into(),
        mail_enabled: true,
        group_types: vec!["Unified".into()],
        ..FakeGroup::default()
    });
    let team = s.m365.add_group(FakeGroup {
        display_name: "Team (security only)".into(),
        security_enabled: true,
        ..FakeGroup::default()
    });
    s.m365.add_member(&all, &ann);
    s.m365.add_member(&all, &team);
    s.m365.add_member(&team, &bob);

    let pull = s.connector.pull(None, &NoProgress).await?;

    let everyone = pull
        .recipients
        .iter()
        .find(|r| r.anchor == all)
        .ok_or("the group is missing")?;
    assert_eq!(everyone.kind, RecipientKind::Group);
    assert_eq!(everyone.members, ["ann@acmecorp.com", "bob@acmecorp.com"]);
    assert!(
        !pull.recipients.iter().any(|r| r.anchor == team),
        "a group without mail is no recipient"
    );
    Ok(())
}

#[tokio::test]
async fn a_delta_returns_only_the_changes_and_removals_since_the_cursor() -> TestResult {
    let s = setup().await?;
    let ann = s
        .m365
        .add_user(user("ann", "ann", RecipientType::UserMailbox));
    let bob = s
        .m365
        .add_user(user("bob", "bob", RecipientType::UserMailbox));
    s.m365
        .add_user(user("carl", "carl", RecipientType::UserMailbox));
    let first = s.connector.pull(None, &NoProgress).await?;

    s.m365
        .update_user(&ann, |u| u.job_title = "Director".into());
    s.m365.remove_user(&bob);
    let dave = s
        .m365
        .add_user(user("dave", "dave", RecipientType::MailUser));
    s.m365.reset_counters();
    let delta = s
        .connector
        .pull(first.cursor.as_deref(), &NoProgress)
        .await?;

    assert_eq!(delta.mode, PullMode::Delta);
    assert!(delta.complete);
    let anchors: Vec<&str> = delta.recipients.iter().map(|r| r.anchor.as_str()).collect();
    assert_eq!(anchors.len(), 2, "{anchors:?}");
    assert!(anchors.contains(&ann.as_str()) && anchors.contains(&dave.as_str()));
    let ann = delta
        .recipients
        .iter()
        .find(|r| r.anchor == ann)
        .ok_or("ann")?;
    assert_eq!(ann.attributes.title.as_deref(), Some("Director"));
    assert!(ann.mailbox);
    let dave = delta
        .recipients
        .iter()
        .find(|r| r.anchor == dave)
        .ok_or("dave")?;
    assert!(!dave.mailbox, "Exchange was asked about the new user");
    assert_eq!(delta.removed, [bob]);
    assert_ne!(delta.cursor, first.cursor, "the cursor moves on");
    let counters = s.m365.counters();
    assert_eq!(
        counters.exchange_calls, 1,
        "one Get-Recipient for the changed users"
    );
    Ok(())
}

#[tokio::test]
async fn an_expired_delta_link_leads_to_a_full_read() -> TestResult {
    let s = setup().await?;
    s.m365
        .add_user(user("ann", "ann", RecipientType::UserMailbox));
    let first = s.connector.pull(None, &NoProgress).await?;

    s.m365.expire_delta_links();
    let again = s
        .connector
        .pull(first.cursor.as_deref(), &NoProgress)
        .await?;

    assert_eq!(again.mode, PullMode::Full);
    assert!(again.complete);
    assert_eq!(again.recipients.len(), 1);
    assert!(again.cursor.is_some() && again.cursor != first.cursor);
    Ok(())
}

#[tokio::test]
async fn a_group_whose_members_changed_is_returned_with_all_its_members() -> TestResult {
    let s = setup().await?;
    let ann = s
        .m365
        .add_user(user("ann", "ann", RecipientType::UserMailbox));
    let bob = s
        .m365
        .add_user(user("bob", "bob", RecipientType::UserMailbox));
    let sales = s.m365.add_group(FakeGroup {
        display_name: "Sales".into(),
        mail: "sales@acmecorp.com".into(),
        mail_enabled: true,
        ..FakeGroup::default()
    });
    s.m365.add_member(&sales, &ann);
    let first = s.connector.pull(None, &NoProgress).await?;

    s.m365.add_member(&sales, &bob);
    let delta = s
        .connector
        .pull(first.cursor.as_deref(), &NoProgress)
        .await?;

    let group = delta
        .recipients
        .iter()
        .find(|r| r.anchor == sales)
        .ok_or("the changed group is missing")?;
    assert_eq!(group.members, ["ann@acmecorp.com", "bob@acmecorp.com"]);
    Ok(())
}

#[tokio::test]
async fn contacts_coexist_did_not_make_are_recipients_that_forward_and_never_stubs() -> TestResult {
    let s = setup().await?;
    s.m365.add_mail_contact(FakeMailContact {
        name: "Partner Pat".into(),
        external_email_address: "pat@partner.example".into(),
        email_addresses: vec![
            "SMTP:pat@acmecorp.com".into(),
            "smtp:pat@partner.example".into(),
        ],
        ..FakeMailContact::default()
    });

    let pull = s.connector.pull(None, &NoProgress).await?;

    assert!(pull.stubs.is_empty());
    let pat = pull
        .recipients
        .iter()
        .find(|r| r.primary_address == "pat@acmecorp.com")
        .ok_or("the contact is missing")?;
    assert!(!pat.mailbox);
    assert_eq!(pat.forwards_to.as_deref(), Some("pat@partner.example"));
    Ok(())
}
