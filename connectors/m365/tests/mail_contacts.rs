//! Mail contact stubs through the Exchange transport: what a create,
//! update and delete send (and how many calls), idempotence, and that
//! contacts coexist did not make are left alone.

mod common;

use coexist_connector::{Connector, NoProgress, Operation, Route, StubField};
use coexist_fake_m365::FakeMailContact;
use common::{person_stub, setup, TestResult};

fn calls(s: &common::Setup, cmdlet: &str) -> u64 {
    s.m365
        .counters()
        .exchange_by_cmdlet
        .get(cmdlet)
        .copied()
        .unwrap_or(0)
}

#[tokio::test]
async fn a_create_makes_a_marked_contact_in_three_calls_without_primary_smtp_address() -> TestResult
{
    let s = setup().await?;
    let stub = person_stub("ldap:1", "ann@acmecorp.com");

    let applied = s
        .connector
        .apply(&Operation::Create { stub: stub.clone() })
        .await?;

    let counters = s.m365.counters();
    assert_eq!(
        counters.exchange_calls, 3,
        "{:?}",
        counters.exchange_by_cmdlet
    );
    assert_eq!(calls(&s, "New-MailContact"), 1);
    assert_eq!(calls(&s, "Set-MailContact"), 1);
    assert_eq!(calls(&s, "Set-Contact"), 1);
    assert_eq!(
        counters.rejected, 0,
        "nothing refused (no PrimarySmtpAddress)"
    );
    let contacts = s.m365.mail_contacts();
    let [contact] = contacts.as_slice() else {
        return Err(format!("expected one contact, got {contacts:?}").into());
    };
    assert_eq!(contact.custom_attribute1, "coexist:ldap:1");
    assert_eq!(contact.name, "coexist-ann@acmecorp.com");
    assert_eq!(
        contact.external_email_address,
        "SMTP:ann@mithi.acmecorp.com"
    );
    assert_eq!(contact.primary_smtp_address(), "ann@acmecorp.com");
    assert!(contact
        .email_addresses
        .iter()
        .any(|a| a == "smtp:ann.alias@acmecorp.com"));
    assert_eq!(contact.title, "Clerk");
    assert_eq!(contact.phone, "+1 555 0111");
    let found = applied.found.ok_or("no found stub")?;
    assert_eq!(found.id, contact.guid);

    let pull = s.connector.pull(None, &NoProgress).await?;
    assert_eq!(pull.stubs.len(), 1);
    assert_eq!(
        pull.stubs[0].stub, stub,
        "the contact reads back as the stub"
    );
    assert_eq!(pull.stubs[0].id, contact.guid);
    assert!(
        !pull
            .recipients
            .iter()
            .any(|r| r.primary_address == "ann@acmecorp.com"),
        "coexist's own contact is a stub, not a recipient"
    );
    Ok(())
}

#[tokio::test]
async fn a_create_of_a_stub_without_person_attributes_takes_two_calls() -> TestResult {
    let s = setup().await?;
    let mut stub = person_stub("ldap:2", "bob@acmecorp.com");
    stub.attributes = Default::default();

    s.connector
        .apply(&Operation::Create { stub: stub.clone() })
        .await?;

    assert_eq!(s.m365.counters().exchange_calls, 2);
    let pull = s.connector.pull(None, &NoProgress).await?;
    assert_eq!(pull.stubs[0].stub, stub);
    Ok(())
}

#[tokio::test]
async fn an_update_sends_only_the_cmdlet_whose_fields_changed() -> TestResult {
    let s = setup().await?;
    let before = person_stub("ldap:1", "ann@acmecorp.com");
    let found = s
        .connector
        .apply(&Operation::Create {
            stub: before.clone(),
        })
        .await?
        .found
        .ok_or("no found stub")?;
    let mut after = before.clone();
    after.attributes.title = Some("Manager".into());
    s.m365.reset_counters();

    s.connector
        .apply(&Operation::Update {
            id: found.id.clone(),
            locator: found.locator.clone(),
            before: Box::new(before.clone()),
            after: Box::new(after.clone()),
            changed: StubField::changed(&before, &after),
        })
        .await?;

    assert_eq!(s.m365.counters().exchange_calls, 1);
    assert_eq!(calls(&s, "Set-Contact"), 1);
    let mut moved = after.clone();
    moved.route = Route::Address("ann@gapps.acmecorp.com".into());
    moved.aliases.push("a.lee@acmecorp.com".into());
    moved.aliases.sort();
    s.m365.reset_counters();
    s.connector
        .apply(&Operation::Update {
            id: found.id.clone(),
            locator: found.locator.clone(),
            before: Box::new(after.clone()),
            after: Box::new(moved.clone()),
            changed: StubField::changed(&after, &moved),
        })
        .await?;
    assert_eq!(s.m365.counters().exchange_calls, 1);
    assert_eq!(calls(&s, "Set-MailContact"), 1);
    let pull = s.connector.pull(None, &NoProgress).await?;
    assert_eq!(pull.stubs[0].stub, moved);
    Ok(())
}

#[tokio::test]
async fn a_delete_removes_the_contact_and_deleting_it_again_succeeds() -> TestResult {
    let s = setup().await?;
    let stub = person_stub("ldap:1", "ann@acmecorp.com");
    let found = s
        .connector
        .apply(&Operation::Create { stub: stub.clone() })
        .await?
        .found
        .ok_or("no found stub")?;
    let delete = Operation::Delete {
        id: found.id,
        locator: found.locator,
        stub,
    };
    s.m365.reset_counters();

    s.connector.apply(&delete).await?;
    assert!(s.m365.mail_contacts().is_empty());
    assert_eq!(s.m365.counters().exchange_calls, 1);
    s.connector.apply(&delete).await?;
    Ok(())
}

#[tokio::test]
async fn a_create_repeated_after_a_crash_completes_the_same_contact() -> TestResult {
    let s = setup().await?;
    let stub = person_stub("ldap:1", "ann@acmecorp.com");
    // A run that died between New-MailContact and Set-MailContact.
    s.m365.add_mail_contact(FakeMailContact {
        name: "coexist-ann@acmecorp.com".into(),
        external_email_address: "ann@mithi.acmecorp.com".into(),
        ..FakeMailContact::default()
    });
    let half_made = s.connector.pull(None, &NoProgress).await?;
    assert!(half_made.stubs.is_empty());
    assert!(
        !half_made
            .recipients
            .iter()
            .any(|r| r.primary_address == "ann@mithi.acmecorp.com"),
        "a half-made contact of coexist's is not taken for someone else's"
    );

    // A fresh process: no index, the create meets the taken name.
    let connector = s.reconnect()?;
    connector
        .apply(&Operation::Create { stub: stub.clone() })
        .await?;
    connector
        .apply(&Operation::Create { stub: stub.clone() })
        .await?;

    assert_eq!(s.m365.mail_contacts().len(), 1);
    let pull = connector.pull(None, &NoProgress).await?;
    assert_eq!(pull.stubs.len(), 1);
    assert_eq!(pull.stubs[0].stub, stub);
    Ok(())
}

#[tokio::test]
async fn a_create_after_a_full_read_updates_the_contact_the_anchor_already_has() -> TestResult {
    let s = setup().await?;
    let stub = person_stub("ldap:1", "ann@acmecorp.com");
    s.connector
        .apply(&Operation::Create { stub: stub.clone() })
        .await?;
    s.connector.pull(None, &NoProgress).await?;
    let mut changed = stub.clone();
    changed.attributes.department = Some("Sales".into());
    s.m365.reset_counters();

    s.connector
        .apply(&Operation::Create {
            stub: changed.clone(),
        })
        .await?;

    assert_eq!(s.m365.mail_contacts().len(), 1);
    assert_eq!(
        s.m365.counters().exchange_calls,
        1,
        "only the changed Set-Contact"
    );
    Ok(())
}

#[tokio::test]
async fn a_name_taken_by_someone_elses_contact_is_left_alone() -> TestResult {
    let s = setup().await?;
    s.m365.add_mail_contact(FakeMailContact {
        name: "coexist-ann@acmecorp.com".into(),
        external_email_address: "ann@elsewhere.example".into(),
        custom_attribute1: "hand-made".into(),
        ..FakeMailContact::default()
    });

    let result = s
        .connector
        .apply(&Operation::Create {
            stub: person_stub("ldap:1", "ann@acmecorp.com"),
        })
        .await;

    assert!(result.is_err());
    let contacts = s.m365.mail_contacts();
    assert_eq!(contacts.len(), 1);
    assert_eq!(contacts[0].custom_attribute1, "hand-made");
    assert_eq!(
        contacts[0].external_email_address,
        "SMTP:ann@elsewhere.example"
    );
    Ok(())
}

#[tokio::test]
async fn a_group_stub_reads_back_as_a_group_so_the_next_plan_is_empty() -> TestResult {
    let s = setup().await?;
    let mut stub = person_stub("ldap:g1", "sales@acmecorp.com");
    stub.kind = coexist_connector::RecipientKind::Group;
    stub.attributes = coexist_connector::Attributes {
        display_name: Some("Sales".into()),
        ..coexist_connector::Attributes::default()
    };
    s.connector
        .apply(&Operation::Create { stub: stub.clone() })
        .await?;
    let pull = s.reconnect()?.pull(None, &NoProgress).await?;
    let found = pull
        .stubs
        .iter()
        .find(|f| f.stub.anchor == "ldap:g1")
        .ok_or("the group stub is found")?;
    assert_eq!(found.stub.kind, coexist_connector::RecipientKind::Group);
    assert_eq!(StubField::changed(&found.stub, &stub), vec![]);
    Ok(())
}
