#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! `Connector::forward` and `Connector::retire` on Microsoft 365 (`coexist
//! move` from the tenant), against the fake tenant: the old mailbox
//! forwards with Set-Mailbox and reads back as a forwarding entry; retired,
//! it keeps only the tenant's own address and cannot sign in.

mod common;

use coexist_connector::{Connector, NoProgress, PullMode, Recipient};
use coexist_fake_m365::{FakeOptions, FakeUser, RecipientType};
use common::{setup_with, Setup, TestResult};
use serde_json::{json, Value};

/// A tenant whose app may disable users, with Ann's mailbox (two shared
/// addresses and her routing-domain one).
async fn tenant() -> Result<(Setup, String), Box<dyn std::error::Error>> {
    let mut options = FakeOptions::default();
    options.graph_roles.push("User.ReadWrite.All".into());
    let s = setup_with(options, |_| {}).await?;
    let routing = s.m365.routing_domain();
    let id = s.m365.add_user(FakeUser {
        user_principal_name: "ann@acmecorp.com".into(),
        mail: "ann@acmecorp.com".into(),
        proxy_addresses: vec![
            "SMTP:ann@acmecorp.com".into(),
            "smtp:a.lee@acmecorp.com".into(),
            format!("smtp:ann@{routing}"),
        ],
        display_name: "Ann Lee".into(),
        account_enabled: true,
        recipient_type: RecipientType::UserMailbox,
        ..FakeUser::default()
    });
    Ok((s, id))
}

async fn read(
    connector: &dyn Connector,
    cursor: Option<&str>,
    id: &str,
) -> Result<(Recipient, PullMode, Option<String>), Box<dyn std::error::Error>> {
    let pull = connector.pull(cursor, &NoProgress).await?;
    let found = pull
        .recipients
        .iter()
        .find(|r| r.anchor == id)
        .cloned()
        .ok_or("the user is read")?;
    Ok((found, pull.mode, pull.cursor))
}

#[tokio::test]
async fn a_forwarded_mailbox_reads_as_a_forwarding_entry_at_once_and_in_a_fresh_process(
) -> TestResult {
    let (s, id) = tenant().await?;
    let (ann, _, cursor) = read(&s.connector, None, &id).await?;
    assert!(ann.mailbox && ann.forwards_to.is_none());

    s.connector.forward(&ann, "ann@mithi.acmecorp.com").await?;
    // Setting the forward it has succeeds.
    s.connector.forward(&ann, "ann@mithi.acmecorp.com").await?;
    assert_eq!(
        s.m365.forwarding(&id),
        Some((Some("smtp:ann@mithi.acmecorp.com".into()), false)),
        "Set-Mailbox -ForwardingSmtpAddress, no copy kept"
    );

    // Graph's delta does not report the change: the next pull reads in
    // full, and sees it.
    let (forwarding, mode, _) = read(&s.connector, cursor.as_deref(), &id).await?;
    assert_eq!(mode, PullMode::Full);
    assert!(!forwarding.mailbox, "{forwarding:?}");
    assert_eq!(
        forwarding.forwards_to.as_deref(),
        Some("ann@mithi.acmecorp.com")
    );
    assert_eq!(forwarding.primary_address, "ann@acmecorp.com");
    let (again, _, _) = read(&s.reconnect()?, None, &id).await?;
    assert_eq!(again.forwards_to.as_deref(), Some("ann@mithi.acmecorp.com"));
    Ok(())
}

#[tokio::test]
async fn retiring_takes_off_coexists_forward_and_the_persons_addresses_and_disables_the_user(
) -> TestResult {
    let (s, id) = tenant().await?;
    let (ann, _, _) = read(&s.connector, None, &id).await?;
    s.connector.forward(&ann, "ann@mithi.acmecorp.com").await?;
    let addresses = ["ann@acmecorp.com".to_string(), "a.lee@acmecorp.com".into()];

    s.connector
        .retire(&ann, &addresses, "ann@mithi.acmecorp.com")
        .await?;
    // Retiring a retired mailbox succeeds.
    s.connector
        .retire(&ann, &addresses, "ann@mithi.acmecorp.com")
        .await?;

    let user = s.m365.user(&id).ok_or("the user stays")?;
    assert!(!user.account_enabled);
    assert_eq!(user.recipient_type, RecipientType::UserMailbox, "kept");
    assert_eq!(
        user.proxy_addresses,
        [format!("SMTP:ann@{}", s.m365.routing_domain())]
    );
    assert_eq!(s.m365.forwarding(&id), Some((None, false)));
    Ok(())
}

#[tokio::test]
async fn a_forward_someone_else_set_is_kept_when_retiring() -> TestResult {
    let (s, id) = tenant().await?;
    let (ann, _, _) = read(&s.connector, None, &id).await?;
    s.connector.forward(&ann, "ann@elsewhere.example").await?;

    s.connector
        .retire(&ann, &["ann@acmecorp.com".into()], "ann@mithi.acmecorp.com")
        .await?;

    assert_eq!(
        s.m365.forwarding(&id),
        Some((Some("smtp:ann@elsewhere.example".into()), false))
    );
    Ok(())
}

/// The fake binds Set-Mailbox's parameters as Exchange Online does: an
/// unknown one, or a value that is no Boolean or no SMTP address, is 400.
#[tokio::test]
async fn the_fake_refuses_what_exchange_online_refuses_in_set_mailbox() -> TestResult {
    let (s, id) = tenant().await?;
    let token = s.m365.issue_exchange_token();
    let client = reqwest::Client::new();
    let url = format!("{}/InvokeCommand", s.m365.exchange_url());
    let run = |parameters: Value| {
        let request = client
            .post(&url)
            .bearer_auth(&token)
            .json(&json!({"CmdletInput": {"CmdletName": "Set-Mailbox", "Parameters": parameters}}));
        async move {
            let reply = request.send().await?;
            Ok::<_, reqwest::Error>((reply.status().as_u16(), reply.text().await?))
        }
    };
    let (status, body) =
        run(json!({"Identity": id, "ForwardingSmtpAdress": "smtp:x@mithi.acmecorp.com"})).await?;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("ForwardingSmtpAdress"), "{body}");
    let (status, body) =
        run(json!({"Identity": id, "DeliverToMailboxAndForward": "maybe"})).await?;
    assert_eq!(status, 400, "{body}");
    let (status, body) =
        run(json!({"Identity": id, "ForwardingSmtpAddress": "not an address"})).await?;
    assert_eq!(status, 400, "{body}");
    assert_eq!(s.m365.forwarding(&id), None, "nothing was set");
    let (status, body) = run(json!({"Identity": id, "ForwardingSmtpAddress": "smtp:x@mithi.acmecorp.com", "DeliverToMailboxAndForward": false})).await?;
    assert_eq!(status, 200, "{body}");
    Ok(())
}
