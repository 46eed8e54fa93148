//! Writing coexist's stubs as shared contacts: create, update, delete, one at
//! a time and in batches, idempotently.

mod common;

use coexist_connector::marker::marker_value;
use coexist_connector::{
    Applied, Connector, ConnectorError, FoundStub, NoProgress, Operation, RecipientKind, StubField,
};
use coexist_fake_google::FakeContact;
use common::{person_stub, setup, TestResult};

fn update_of(found: &FoundStub, change: impl FnOnce(&mut coexist_connector::Stub)) -> Operation {
    let mut after = found.stub.clone();
    change(&mut after);
    Operation::Update {
        id: found.id.clone(),
        locator: found.locator.clone(),
        changed: StubField::changed(&found.stub, &after),
        before: Box::new(found.stub.clone()),
        after: Box::new(after),
    }
}

fn delete_of(found: &FoundStub) -> Operation {
    Operation::Delete {
        id: found.id.clone(),
        locator: found.locator.clone(),
        stub: found.stub.clone(),
    }
}

fn found(applied: &Result<Applied, ConnectorError>) -> Result<FoundStub, String> {
    match applied {
        Ok(Applied { found: Some(found) }) => Ok(found.clone()),
        other => Err(format!("expected a written stub, got {other:?}")),
    }
}

#[tokio::test]
async fn a_stub_is_created_updated_and_deleted_one_operation_at_a_time() -> TestResult {
    let s = setup().await?;
    let mut stub = person_stub("ldap:dave-uuid", "dave@acmecorp.com");
    stub.aliases = vec!["d.onprem@acmecorp.com".into()];
    stub.attributes.business_phone = Some("+1 555 0142".into());
    stub.attributes.mobile_phone = Some("+1 555 0143".into());
    stub.attributes.company = Some("Acme Corp".into());
    stub.attributes.title = Some("Accountant".into());
    stub.attributes.department = Some("Finance".into());

    let created = found(
        &s.connector
            .apply(&Operation::Create { stub: stub.clone() })
            .await,
    )?;
    let contacts = s.google.contacts();
    assert_eq!(contacts.len(), 1);
    assert_eq!(contacts[0].id, created.id);
    assert!(contacts[0]
        .extended_properties
        .contains(&("coexist".to_string(), marker_value("ldap:dave-uuid"))));
    let pull = s.connector.pull(None, &NoProgress).await?;
    assert_eq!(pull.stubs.len(), 1);
    assert_eq!(pull.stubs[0].stub, stub, "the stub reads back as written");
    assert_eq!(pull.stubs[0].id, created.id);

    let update = update_of(&pull.stubs[0], |s| {
        s.attributes.title = Some("Chief Accountant".into());
        s.attributes.mobile_phone = None;
    });
    let updated = found(&s.connector.apply(&update).await)?;
    assert_eq!(updated.id, created.id);
    let contacts = s.google.contacts();
    assert_eq!(contacts[0].org_title, "Chief Accountant");
    assert_eq!(contacts[0].phones.len(), 1);

    let deleted = s.connector.apply(&delete_of(&updated)).await?;
    assert_eq!(deleted.found, None);
    assert!(s.google.contacts().is_empty());

    let counts = s.google.requests();
    assert_eq!(counts.contacts_batch, 0, "apply uses the entry endpoints");
    assert_eq!(counts.rejected, 0);
    Ok(())
}

#[tokio::test]
async fn a_stub_is_created_updated_and_deleted_through_batches() -> TestResult {
    let s = setup().await?;
    let stubs: Vec<_> = (0..5)
        .map(|i| person_stub(&format!("ldap:{i}"), &format!("p{i}@acmecorp.com")))
        .collect();
    let creates: Vec<_> = stubs
        .iter()
        .map(|stub| Operation::Create { stub: stub.clone() })
        .collect();

    let results = s.connector.apply_many(&creates).await;
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    let pull = s.connector.pull(None, &NoProgress).await?;
    let mut read: Vec<_> = pull.stubs.iter().map(|f| f.stub.clone()).collect();
    read.sort_by(|a, b| a.anchor.cmp(&b.anchor));
    assert_eq!(read, stubs);

    let mut changes: Vec<_> = pull
        .stubs
        .iter()
        .map(|f| update_of(f, |s| s.attributes.department = Some("Sales".into())))
        .collect();
    changes.push(Operation::Create {
        stub: person_stub("ldap:new", "new@acmecorp.com"),
    });
    let results = s.connector.apply_many(&changes).await;
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    assert_eq!(s.google.contacts().len(), 6);
    assert!(s
        .google
        .contacts()
        .iter()
        .filter(|c| c.full_name != "new (LDAP)")
        .all(|c| c.org_department == "Sales"));

    let pull = s.connector.pull(None, &NoProgress).await?;
    let deletes: Vec<_> = pull.stubs.iter().map(delete_of).collect();
    let results = s.connector.apply_many(&deletes).await;
    assert!(results
        .iter()
        .all(|r| matches!(r, Ok(Applied { found: None }))));
    assert!(s.google.contacts().is_empty());
    assert_eq!(
        s.google.requests().contacts_entry,
        0,
        "apply_many uses batches"
    );
    assert_eq!(s.google.requests().rejected, 0);
    Ok(())
}

#[tokio::test]
async fn results_come_back_in_the_order_of_the_operations() -> TestResult {
    let s = setup().await?;
    let creates: Vec<_> = (0..130)
        .map(|i| Operation::Create {
            stub: person_stub(&format!("ldap:{i}"), &format!("p{i}@acmecorp.com")),
        })
        .collect();

    let results = s.connector.apply_many(&creates).await;

    for (i, result) in results.iter().enumerate() {
        assert_eq!(found(result)?.stub.anchor, format!("ldap:{i}"));
    }
    Ok(())
}

#[tokio::test]
async fn two_hundred_and_fifty_operations_take_three_batch_requests() -> TestResult {
    let s = setup().await?;
    let creates: Vec<_> = (0..250)
        .map(|i| Operation::Create {
            stub: person_stub(&format!("ldap:{i}"), &format!("p{i}@acmecorp.com")),
        })
        .collect();
    s.connector.pull(None, &NoProgress).await?; // the index of existing stubs
    s.google.reset_counts();

    let results = s.connector.apply_many(&creates).await;

    assert_eq!(results.len(), 250);
    assert!(results.iter().all(Result::is_ok));
    assert_eq!(s.google.contacts().len(), 250);
    let counts = s.google.requests();
    assert_eq!(counts.contacts_batch, 3, "100 + 100 + 50");
    assert_eq!(counts.total - counts.token, 3);
    Ok(())
}

#[tokio::test]
async fn one_bad_entry_fails_alone_and_the_others_are_not_repeated() -> TestResult {
    let s = setup().await?;
    let mut operations: Vec<_> = (0..5)
        .map(|i| Operation::Create {
            stub: person_stub(&format!("ldap:{i}"), &format!("p{i}@acmecorp.com")),
        })
        .collect();
    operations[2] = Operation::Create {
        stub: person_stub("ldap:bad", "not-an-address"),
    };
    s.connector.pull(None, &NoProgress).await?;
    s.google.reset_counts();

    let results = s.connector.apply_many(&operations).await;

    for (i, result) in results.iter().enumerate() {
        if i == 2 {
            let Err(ConnectorError::Permanent { message, .. }) = result else {
                return Err(format!("entry 2 should fail permanently: {result:?}").into());
            };
            assert!(message.contains("not-an-address"), "{message}");
        } else {
            assert!(result.is_ok(), "entry {i}: {result:?}");
        }
    }
    assert_eq!(s.google.contacts().len(), 4);
    assert_eq!(
        s.google.requests().contacts_batch,
        1,
        "nothing was sent twice"
    );
    Ok(())
}

#[tokio::test]
async fn creating_a_stub_twice_leaves_one_contact() -> TestResult {
    let s = setup().await?;
    let stub = person_stub("ldap:dave-uuid", "dave@acmecorp.com");
    let create = Operation::Create { stub: stub.clone() };

    let first = found(&s.connector.apply(&create).await)?;
    let second = found(&s.connector.apply(&create).await)?;
    let third = s.connector.apply_many(std::slice::from_ref(&create)).await;

    assert_eq!(first.id, second.id);
    assert_eq!(found(&third[0])?.id, first.id);
    assert_eq!(s.google.contacts().len(), 1);
    Ok(())
}

#[tokio::test]
async fn a_create_after_a_crash_updates_the_contact_it_already_wrote() -> TestResult {
    let s = setup().await?;
    // A previous run wrote the contact, then died before recording it.
    let existing = s.google.add_contact(FakeContact {
        full_name: "Dave (old)".into(),
        emails: vec![("dave@acmecorp.com".into(), true)],
        extended_properties: vec![("coexist".into(), marker_value("ldap:dave-uuid"))],
        ..FakeContact::default()
    });
    let fresh = s.reconnect()?; // a new process: no pull, no index

    let stub = person_stub("ldap:dave-uuid", "dave@acmecorp.com");
    let results = fresh
        .apply_many(&[Operation::Create { stub: stub.clone() }])
        .await;

    assert_eq!(found(&results[0])?.id, existing);
    let contacts = s.google.contacts();
    assert_eq!(contacts.len(), 1);
    assert_eq!(contacts[0].full_name, "dave (LDAP)");
    Ok(())
}

#[tokio::test]
async fn a_create_whose_indexed_contact_was_deleted_meanwhile_creates_it_again() -> TestResult {
    let s = setup().await?;
    let stub = person_stub("ldap:dave-uuid", "dave@acmecorp.com");
    let first = found(
        &s.connector
            .apply(&Operation::Create { stub: stub.clone() })
            .await,
    )?;
    // Someone deletes the contact by hand; the connector's index still has it.
    let other = s.reconnect()?;
    other.apply(&delete_of(&first)).await?;

    let again = found(&s.connector.apply(&Operation::Create { stub }).await)?;

    assert_ne!(again.id, first.id);
    assert_eq!(s.google.contacts().len(), 1);
    Ok(())
}

#[tokio::test]
async fn deleting_a_stub_that_is_already_gone_succeeds() -> TestResult {
    let s = setup().await?;
    let created = found(
        &s.connector
            .apply(&Operation::Create {
                stub: person_stub("ldap:1", "one@acmecorp.com"),
            })
            .await,
    )?;
    let delete = delete_of(&created);

    assert_eq!(s.connector.apply(&delete).await?.found, None);
    assert_eq!(s.connector.apply(&delete).await?.found, None);
    let batch = s.connector.apply_many(&[delete.clone(), delete]).await;
    assert!(
        batch
            .iter()
            .all(|r| matches!(r, Ok(Applied { found: None }))),
        "{batch:?}"
    );
    assert!(s.google.contacts().is_empty());
    Ok(())
}

#[tokio::test]
async fn an_update_after_someone_else_changed_the_contact_reads_it_again_and_succeeds() -> TestResult
{
    for batched in [false, true] {
        let s = setup().await?;
        let stub = person_stub("ldap:dave-uuid", "dave@acmecorp.com");
        s.connector.apply(&Operation::Create { stub }).await?;
        let pulled = s.connector.pull(None, &NoProgress).await?.stubs[0].clone();
        // An admin edits the contact in the console: its version and etag change.
        let mut edited = s.google.contacts()[0].clone();
        edited.org_title = "Edited by hand".into();
        s.google.add_contact(edited);
        s.google.reset_counts();

        let update = update_of(&pulled, |s| s.attributes.title = Some("Accountant".into()));
        let result = if batched {
            s.connector
                .apply_many(std::slice::from_ref(&update))
                .await
                .remove(0)
        } else {
            s.connector.apply(&update).await
        };

        assert!(result.is_ok(), "batched={batched}: {result:?}");
        assert_eq!(s.google.contacts()[0].org_title, "Accountant");
        let counts = s.google.requests();
        assert_eq!(
            counts.contacts_entry + counts.contacts_batch,
            3,
            "try, read again, retry once"
        );
    }
    Ok(())
}

#[tokio::test]
async fn a_contact_that_lost_its_marker_is_never_overwritten() -> TestResult {
    let s = setup().await?;
    s.connector
        .apply(&Operation::Create {
            stub: person_stub("ldap:dave-uuid", "dave@acmecorp.com"),
        })
        .await?;
    let pulled = s.connector.pull(None, &NoProgress).await?.stubs[0].clone();
    // An admin takes the contact over: the marker goes.
    let mut taken = s.google.contacts()[0].clone();
    taken.extended_properties.clear();
    taken.full_name = "Dave, kept by hand".into();
    s.google.add_contact(taken);

    let result = s.connector.apply(&delete_of(&pulled)).await;

    assert!(
        matches!(result, Err(ConnectorError::Permanent { .. })),
        "{result:?}"
    );
    assert_eq!(s.google.contacts()[0].full_name, "Dave, kept by hand");
    Ok(())
}

#[tokio::test]
async fn groups_and_other_kinds_keep_their_kind() -> TestResult {
    let s = setup().await?;
    let mut stub = person_stub("ldap:sales", "sales@acmecorp.com");
    stub.kind = RecipientKind::Group;

    s.connector
        .apply_many(&[Operation::Create { stub: stub.clone() }])
        .await
        .remove(0)?;

    let pull = s.connector.pull(None, &NoProgress).await?;
    assert_eq!(pull.stubs[0].stub.kind, RecipientKind::Group);
    Ok(())
}

#[tokio::test]
async fn a_second_pull_after_writing_shows_exactly_the_stubs_written() -> TestResult {
    let s = setup().await?;
    let stubs: Vec<_> = (0..40)
        .map(|i| {
            let mut stub = person_stub(&format!("ldap:{i:02}"), &format!("p{i}@acmecorp.com"));
            stub.aliases = vec![format!("alias{i}@acmecorp.com")];
            stub.attributes.company = Some("Acme & Co".into());
            stub
        })
        .collect();
    let creates: Vec<_> = stubs
        .iter()
        .map(|stub| Operation::Create { stub: stub.clone() })
        .collect();
    s.connector.apply_many(&creates).await;

    let pull = s.reconnect()?.pull(None, &NoProgress).await?;

    let mut read: Vec<_> = pull.stubs.into_iter().map(|f| f.stub).collect();
    read.sort_by(|a, b| a.anchor.cmp(&b.anchor));
    assert_eq!(read, stubs, "nothing would change on a second run");
    Ok(())
}
