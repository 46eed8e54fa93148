//! Stubs as personal contacts in every user mailbox, through `$batch`.

mod common;

use coexist_connector::{Connector, NoProgress, Operation};
use coexist_fake_m365::{Fault, RecipientType};
use common::{personal_stub, setup_with, user, TestResult};

const FOLDER: &str = "Colleagues (coexist)";

async fn tenant() -> Result<common::Setup, Box<dyn std::error::Error>> {
    let s = setup_with(Default::default(), |c| {
        c.contact_folder = Some(FOLDER.into())
    })
    .await?;
    Ok(s)
}

#[tokio::test]
async fn personal_contacts_go_to_every_user_mailbox_in_batches_and_an_inner_429_is_retried(
) -> TestResult {
    let s = tenant().await?;
    let ann = s
        .m365
        .add_user(user("ann", "ann", RecipientType::UserMailbox));
    let bob = s
        .m365
        .add_user(user("bob", "bob", RecipientType::UserMailbox));
    let info = s
        .m365
        .add_user(user("info", "info", RecipientType::SharedMailbox));
    s.connector.pull(None, &NoProgress).await?;
    let operations: Vec<Operation> = (0..15)
        .map(|i| Operation::Create {
            stub: personal_stub(&format!("ldap:{i}"), &format!("p{i}@acmecorp.com")),
        })
        .collect();
    s.m365.reset_counters();
    s.m365.set_retry_after(0);
    s.m365.fail_next_in_batch(3, Fault::TooMany429);

    let results = s.connector.apply_many(&operations).await;

    for result in &results {
        assert!(result.is_ok(), "{result:?}");
    }
    for mailbox in [&ann, &bob] {
        let folders = s.m365.contact_folders(mailbox);
        assert!(
            folders.iter().any(|(_, name)| name == FOLDER),
            "{folders:?}"
        );
        assert_eq!(s.m365.personal_contacts(mailbox).len(), 15);
    }
    assert!(
        s.m365.personal_contacts(&info).is_empty(),
        "user mailboxes only"
    );
    let counters = s.m365.counters();
    // The 2 folders in one batch, both throttled and sent again in a
    // second; the 30 contacts in two, the throttled one again in a fifth.
    assert_eq!(counters.batch_requests, 5, "{counters:?}");
    assert_eq!(counters.inner_batch_requests, 2 + 2 + 30 + 1);
    assert_eq!(counters.faults, 3);

    let pull = s.connector.pull(None, &NoProgress).await?;
    let mut found: Vec<_> = pull
        .stubs
        .iter()
        .filter(|f| f.id.starts_with("mailbox:"))
        .collect();
    found.sort_by(|a, b| a.stub.primary_address.cmp(&b.stub.primary_address));
    assert_eq!(found.len(), 15);
    assert!(found.iter().all(|f| !f.misplaced));
    let p1 = found
        .iter()
        .find(|f| f.stub.anchor == "ldap:1")
        .ok_or("p1")?;
    assert_eq!(p1.stub, personal_stub("ldap:1", "p1@acmecorp.com"));
    Ok(())
}

#[tokio::test]
async fn a_new_mailbox_without_the_contacts_makes_them_misplaced_and_an_update_fills_it(
) -> TestResult {
    let s = tenant().await?;
    s.m365
        .add_user(user("ann", "ann", RecipientType::UserMailbox));
    s.connector.pull(None, &NoProgress).await?;
    let stub = personal_stub("ldap:1", "pat@acmecorp.com");
    s.connector
        .apply(&Operation::Create { stub: stub.clone() })
        .await?;
    let carl = s
        .m365
        .add_user(user("carl", "carl", RecipientType::UserMailbox));

    let pull = s.connector.pull(None, &NoProgress).await?;
    let found = pull.stubs.first().ok_or("no stub found")?.clone();
    assert!(found.misplaced, "carl's mailbox lacks it");

    s.connector
        .apply(&Operation::Update {
            id: found.id.clone(),
            locator: found.locator.clone(),
            before: Box::new(found.stub.clone()),
            after: Box::new(stub.clone()),
            changed: Vec::new(),
        })
        .await?;
    assert_eq!(s.m365.personal_contacts(&carl).len(), 1);
    let pull = s.connector.pull(None, &NoProgress).await?;
    assert!(!pull.stubs[0].misplaced);
    Ok(())
}

#[tokio::test]
async fn a_delete_removes_the_contact_from_every_mailbox_and_leaves_others_alone() -> TestResult {
    let s = tenant().await?;
    let ann = s
        .m365
        .add_user(user("ann", "ann", RecipientType::UserMailbox));
    let stub = personal_stub("ldap:1", "pat@acmecorp.com");
    // No pull first: the connector finds the mailboxes itself.
    s.connector
        .apply(&Operation::Create { stub: stub.clone() })
        .await?;
    assert_eq!(s.m365.personal_contacts(&ann).len(), 1);

    let delete = Operation::Delete {
        id: "mailbox:ldap:1".into(),
        locator: FOLDER.into(),
        stub,
    };
    s.connector.apply(&delete).await?;
    s.connector.apply(&delete).await?;

    assert!(s.m365.personal_contacts(&ann).is_empty());
    Ok(())
}

#[tokio::test]
async fn every_batch_request_counts_for_the_run_though_batches_are_sent_from_tasks_of_their_own(
) -> TestResult {
    let s = tenant().await?;
    for name in ["ann", "bob", "cat"] {
        s.m365
            .add_user(user(name, name, RecipientType::UserMailbox));
    }
    s.connector.pull(None, &NoProgress).await?;
    let operations: Vec<Operation> = (0..30)
        .map(|i| Operation::Create {
            stub: personal_stub(&format!("ldap:{i}"), &format!("p{i}@acmecorp.com")),
        })
        .collect();
    s.m365.reset_counters();
    let counter = std::sync::Arc::new(coexist_connector::RequestCounter::default());

    let results =
        coexist_connector::requests::counting(counter.clone(), s.connector.apply_many(&operations))
            .await;

    assert!(results.iter().all(Result::is_ok), "{results:?}");
    let sent = s.m365.counters();
    // The folders in one batch, then 90 contacts in five.
    assert_eq!(sent.batch_requests, 6, "{sent:?}");
    assert_eq!(counter.take().requests, sent.total);
    Ok(())
}
