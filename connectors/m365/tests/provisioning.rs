#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! `Connector::provision` on Microsoft 365, against the fake tenant: a
//! licensed user whose mailbox Exchange Online makes asynchronously.

mod common;

use std::collections::BTreeMap;

use coexist_connector::{Attributes, Connector, NewAccount, Secret};
use coexist_fake_m365::{FakeM365, FakeOptions, RecipientType};
use coexist_m365::{M365Config, M365Provision};
use common::{setup_with, Setup, TestResult};

fn provision_table(config: &mut M365Config, sku: &str) {
    config.provision = Some(M365Provision {
        usage_location: "FR".into(),
        license_sku_id: sku.into(),
        mailbox_wait_seconds: 10,
        mailbox_poll_seconds: 1,
    });
}

/// A tenant whose app may create users (User.ReadWrite.All), and a
/// connector with a `provision` table assigning `sku`.
async fn tenant(sku: &str) -> Result<Setup, Box<dyn std::error::Error>> {
    let mut options = FakeOptions::default();
    options.graph_roles.push("User.ReadWrite.All".into());
    let sku = sku.to_string();
    setup_with(options, move |config| provision_table(config, &sku)).await
}

fn ann(aliases: &[&str]) -> NewAccount {
    NewAccount {
        primary_address: "ann.smith@acmecorp.com".into(),
        aliases: aliases.iter().map(|a| a.to_string()).collect(),
        attributes: Attributes {
            given_name: Some("Ann".into()),
            surname: Some("Smith".into()),
            title: Some("Engineer".into()),
            ..Attributes::default()
        },
        extra: BTreeMap::new(),
        password: Some(Secret::new("Initial-Passw0rd.2026")),
    }
}

#[tokio::test]
async fn a_user_is_made_licensed_and_homed_once_exchange_made_its_mailbox() -> TestResult {
    let s = tenant(FakeM365::EXCHANGE_SKU).await?;
    // Exchange Online takes two calls to make the mailbox: the connector
    // waits and says so.
    s.m365.set_mailbox_delay(2);
    let made = s.connector.provision(&ann(&["ann@acmecorp.com"])).await?;

    assert!(!made.existed);
    assert!(made.recipient.mailbox, "{made:?}");
    assert_eq!(made.recipient.primary_address, "ann.smith@acmecorp.com");
    assert!(
        made.recipient
            .aliases
            .contains(&"ann@acmecorp.com".to_string()),
        "{:?}",
        made.recipient.aliases
    );
    assert!(
        made.notes.iter().any(|n| n.contains("made the mailbox in")),
        "{:?}",
        made.notes
    );
    let id = made.locator.trim_start_matches("users/");
    let user = s.m365.user(id).expect("the user is in the tenant");
    assert_eq!(user.recipient_type, RecipientType::UserMailbox);
    assert_eq!(user.given_name, "Ann");
    assert_eq!(user.job_title, "Engineer");
    assert!(user
        .proxy_addresses
        .contains(&"SMTP:ann.smith@acmecorp.com".to_string()));
    assert!(user
        .proxy_addresses
        .contains(&"smtp:ann@acmecorp.com".to_string()));
    // Exchange's own routing-domain address stays.
    let routing = format!("smtp:ann.smith@{}", s.m365.routing_domain());
    assert!(
        user.proxy_addresses.contains(&routing),
        "{:?}",
        user.proxy_addresses
    );
    assert_eq!(s.m365.licenses(id), [FakeM365::EXCHANGE_SKU.to_string()]);

    // Run again (after a crash): the user is found, nothing is made twice.
    let again = s.connector.provision(&ann(&["ann@acmecorp.com"])).await?;
    assert!(again.existed);
    assert_eq!(again.recipient.anchor, made.recipient.anchor);
    Ok(())
}

#[tokio::test]
async fn a_mailbox_that_does_not_come_in_time_is_said_and_a_rerun_finishes() -> TestResult {
    let s = tenant(FakeM365::EXCHANGE_SKU).await?;
    s.m365.set_mailbox_delay(1_000);
    let mut config = s.config.clone();
    provision_table(&mut config, FakeM365::EXCHANGE_SKU);
    if let Some(p) = config.provision.as_mut() {
        p.mailbox_wait_seconds = 2;
    }
    let impatient = coexist_m365::M365Connector::new("m365", config)?;
    let error = impatient.provision(&ann(&[])).await.unwrap_err();
    let said = error.to_string();
    assert!(said.contains("made and licensed"), "{said}");
    assert!(said.contains("provision` again"), "{said}");

    s.m365.set_mailbox_delay(0);
    let made = s.connector.provision(&ann(&[])).await?;
    assert!(made.existed);
    assert!(made.recipient.mailbox);
    Ok(())
}

#[tokio::test]
async fn what_microsoft_365_refuses_is_said_in_its_words() -> TestResult {
    // A license the tenant does not own.
    let s = tenant("11111111-2222-3333-4444-555555555555").await?;
    let said = s
        .connector
        .provision(&ann(&[]))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        said.contains("does not correspond to a valid company License"),
        "{said}"
    );

    // A domain that is not the tenant's.
    let s = tenant(FakeM365::EXCHANGE_SKU).await?;
    let mut stranger = ann(&[]);
    stranger.primary_address = "ann@elsewhere.example".into();
    let said = s
        .connector
        .provision(&stranger)
        .await
        .unwrap_err()
        .to_string();
    assert!(said.contains("verified domain names"), "{said}");

    // An app without User.ReadWrite.All.
    let s = setup_with(FakeOptions::default(), |config| {
        provision_table(config, FakeM365::EXCHANGE_SKU)
    })
    .await?;
    let error = s.connector.provision(&ann(&[])).await.unwrap_err();
    assert!(error.to_string().contains("403"), "{error}");

    // No provision table: never a home for provisioned people.
    let s = setup_with(FakeOptions::default(), |_| {}).await?;
    let said = s
        .connector
        .provision(&ann(&[]))
        .await
        .unwrap_err()
        .to_string();
    assert!(said.contains("no `provision` table"), "{said}");
    Ok(())
}

#[tokio::test]
async fn a_suspended_user_keeps_its_mailbox_and_reads_back_disabled() -> TestResult {
    let s = tenant(FakeM365::EXCHANGE_SKU).await?;
    s.m365.set_mailbox_delay(0);
    let made = s.connector.provision(&ann(&[])).await?;
    s.connector.suspend(&made.recipient).await?;
    // Twice is fine.
    s.connector.suspend(&made.recipient).await?;
    let id = made.locator.trim_start_matches("users/");
    let user = s.m365.user(id).expect("the user stays");
    assert!(!user.account_enabled);
    assert_eq!(user.recipient_type, RecipientType::UserMailbox);
    let pull = s
        .connector
        .pull(None, &coexist_connector::NoProgress)
        .await?;
    let read = pull
        .recipients
        .iter()
        .find(|r| r.anchor == made.recipient.anchor)
        .expect("the user is read");
    assert!(!read.enabled, "{read:?}");
    Ok(())
}
