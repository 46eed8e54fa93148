//! Creating users (`coexist provision`) through the Directory API's
//! users.insert and users.aliases.insert, against the fake Google.

mod common;

use std::collections::BTreeMap;

use coexist_connector::{Attributes, Connector, NewAccount, NoProgress, Secret};
use coexist_fake_google::{FakeOptions, FakeUser};
use coexist_google::config::GoogleProvision;
use common::{setup, setup_with, TestResult};

fn account(address: &str, aliases: &[&str], password: &str) -> NewAccount {
    NewAccount {
        primary_address: address.into(),
        aliases: aliases.iter().map(|a| a.to_string()).collect(),
        attributes: Attributes {
            given_name: Some("Ann".into()),
            surname: Some("Smith".into()),
            title: Some("Director".into()),
            ..Attributes::default()
        },
        extra: BTreeMap::new(),
        password: Some(Secret::new(password)),
    }
}

fn provisioning(org_unit: &str) -> impl FnOnce(&mut coexist_google::GoogleConfig) {
    let org_unit = org_unit.to_string();
    move |c| {
        c.provision = Some(GoogleProvision {
            org_unit_path: Some(org_unit),
            ..GoogleProvision::default()
        })
    }
}

#[tokio::test]
async fn a_user_is_inserted_in_the_org_unit_with_its_aliases_and_a_password_to_change() -> TestResult
{
    let s = setup_with(FakeOptions::default(), provisioning("/Management")).await?;
    let made = s
        .connector
        .provision(&account(
            "ann@acmecorp.com",
            &["a.smith@acmecorp.com"],
            "Initial-Pw-4711",
        ))
        .await?;
    assert!(!made.existed);
    assert!(made.recipient.mailbox);
    assert_eq!(made.recipient.primary_address, "ann@acmecorp.com");
    assert_eq!(made.recipient.aliases, ["a.smith@acmecorp.com"]);
    let user = s.google.user("ann@acmecorp.com").ok_or("no user")?;
    assert_eq!(user.org_unit_path, "/Management");
    assert!(user.change_password_at_next_login);
    assert_eq!(
        (user.given_name.as_str(), user.family_name.as_str()),
        ("Ann", "Smith")
    );
    assert_eq!(user.title, "Director");
    // The next pull lists the user, with the same anchor.
    let pull = s.connector.pull(None, &NoProgress).await?;
    let read = pull
        .recipients
        .iter()
        .find(|r| r.primary_address == "ann@acmecorp.com")
        .ok_or("not pulled")?;
    assert_eq!(read.anchor, made.recipient.anchor);

    // Again (a rerun): carried on with, no second user.
    let again = s
        .connector
        .provision(&account(
            "ann@acmecorp.com",
            &["a.smith@acmecorp.com"],
            "Another-Pw-0815",
        ))
        .await?;
    assert!(again.existed);
    assert_eq!(again.recipient.anchor, made.recipient.anchor);
    // An --attribute org_unit chooses another unit for one person.
    let mut bob = account("bob@acmecorp.com", &[], "Initial-Pw-4711");
    bob.extra.insert("org_unit".into(), "/Sales".into());
    s.connector.provision(&bob).await?;
    assert_eq!(
        s.google
            .user("bob@acmecorp.com")
            .ok_or("no bob")?
            .org_unit_path,
        "/Sales"
    );
    Ok(())
}

#[tokio::test]
async fn addresses_in_use_and_what_google_rejects_are_refused() -> TestResult {
    let s = setup_with(FakeOptions::default(), provisioning("/")).await?;
    s.google.add_user(FakeUser {
        primary_email: "g1@acmecorp.com".into(),
        given_name: "G".into(),
        family_name: "One".into(),
        ..FakeUser::default()
    });
    // A user with this primary address is reported as existing (the
    // contract's rerun case; coexist provision refuses before, as the
    // address is a mailbox on Google): nothing is changed.
    let existing = s
        .connector
        .provision(&account("g1@acmecorp.com", &[], "Initial-Pw-4711"))
        .await?;
    assert!(existing.existed);
    assert_eq!(
        s.google.user("g1@acmecorp.com").ok_or("g1")?.family_name,
        "One"
    );
    // An alias another user holds: the user is made without it, and said so.
    let error = s
        .connector
        .provision(&account(
            "cy@acmecorp.com",
            &["g1@acmecorp.com"],
            "Initial-Pw-4711",
        ))
        .await
        .err()
        .ok_or("the alias was taken over")?
        .to_string();
    assert!(
        error.contains("the alias g1@acmecorp.com belongs to another"),
        "{error}"
    );
    // A password Google refuses (fewer than 8 characters).
    let error = s
        .connector
        .provision(&account("dan@acmecorp.com", &[], "short"))
        .await
        .err()
        .ok_or("a short password was accepted")?
        .to_string();
    assert!(error.contains("Invalid Password"), "{error}");
    assert!(s.google.user("dan@acmecorp.com").is_none());
    // A domain the customer does not own.
    let error = s
        .connector
        .provision(&account("eve@elsewhere.example", &[], "Initial-Pw-4711"))
        .await
        .err()
        .ok_or("a foreign domain was accepted")?
        .to_string();
    assert!(error.contains("Domain not found"), "{error}");
    // No surname: refused before any request, as Google requires one.
    let before = s.google.requests().user_writes;
    let mut nameless = account("fay@acmecorp.com", &[], "Initial-Pw-4711");
    nameless.attributes.surname = None;
    let error = s
        .connector
        .provision(&nameless)
        .await
        .err()
        .ok_or("no surname")?;
    assert!(error.to_string().contains("surname"), "{error}");
    assert_eq!(s.google.requests().user_writes, before);
    Ok(())
}

#[tokio::test]
async fn without_a_provision_table_no_user_is_made() -> TestResult {
    let s = setup().await?;
    let error = s
        .connector
        .provision(&account("ann@acmecorp.com", &[], "Initial-Pw-4711"))
        .await
        .err()
        .ok_or("a user was made")?;
    assert!(
        error.to_string().contains("no `provision` table"),
        "{error}"
    );
    assert_eq!(s.google.requests().user_writes, 0);
    Ok(())
}

#[tokio::test]
async fn a_suspended_user_reads_disabled() -> TestResult {
    let s = setup_with(FakeOptions::default(), provisioning("/")).await?;
    let made = s
        .connector
        .provision(&account("ann@acmecorp.com", &[], "Initial-Pw-4711"))
        .await?;
    s.connector.suspend(&made.recipient).await?;
    assert!(s.google.user("ann@acmecorp.com").ok_or("no ann")?.suspended);
    let pull = s.connector.pull(None, &NoProgress).await?;
    let read = pull
        .recipients
        .iter()
        .find(|r| r.primary_address == "ann@acmecorp.com")
        .ok_or("not pulled")?;
    assert!(!read.enabled, "read disabled");
    // Without a provision table: refused, nothing sent.
    let plain = setup().await?;
    let before = plain.google.requests().user_writes;
    let error = plain
        .connector
        .suspend(&made.recipient)
        .await
        .err()
        .ok_or("suspended")?;
    assert!(
        error.to_string().contains("no `provision` table"),
        "{error}"
    );
    assert_eq!(plain.google.requests().user_writes, before);
    Ok(())
}
