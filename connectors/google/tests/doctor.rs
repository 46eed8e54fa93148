//! `coexist doctor` for a Google system: credentials and scopes, the routing
//! domain, and the Gmail routing settings no API exposes.

mod common;

use coexist_connector::{Connector, Finding};
use coexist_fake_google::FakeOptions;
use coexist_google::GoogleConnector;
use common::{config_for, setup, setup_with, TestResult};

fn finding<'a>(findings: &'a [Finding], words: &str) -> Result<&'a Finding, String> {
    findings
        .iter()
        .find(|f| f.check.contains(words))
        .ok_or_else(|| format!("no finding about {words}: {findings:#?}"))
}

#[tokio::test]
async fn with_the_routing_domain_as_a_domain_alias_every_check_passes() -> TestResult {
    let s = setup().await?;
    s.google.add_domain_alias("gapps.acmecorp.com");

    let findings = s.connector.doctor().await;

    assert!(finding(&findings, "credentials")?.ok);
    assert!(finding(&findings, "Directory API")?.ok);
    assert!(finding(&findings, "Shared Contacts")?.ok);
    let routing = finding(&findings, "routing domain")?;
    assert!(routing.ok, "{routing:?}");
    assert!(routing.detail.contains("gapps.acmecorp.com"));
    assert_eq!(s.google.requests().rejected, 0);
    Ok(())
}

#[tokio::test]
async fn a_missing_domain_alias_is_reported_with_what_to_do() -> TestResult {
    let s = setup().await?;

    let findings = s.connector.doctor().await;

    let routing = finding(&findings, "routing domain")?;
    assert!(!routing.ok);
    assert!(
        routing.detail.contains("gapps.acmecorp.com"),
        "{}",
        routing.detail
    );
    assert!(
        routing.detail.contains("domain alias"),
        "{}",
        routing.detail
    );
    assert!(finding(&findings, "credentials")?.ok);
    Ok(())
}

#[tokio::test]
async fn a_routing_domain_that_is_a_domain_of_the_customer_passes() -> TestResult {
    let s = setup_with(FakeOptions::default(), |c| {
        c.routing_domain = Some("gapps-mail.example".into())
    })
    .await?;
    s.google.add_domain("gapps-mail.example");

    let findings = s.connector.doctor().await;

    assert!(finding(&findings, "routing domain")?.ok);
    Ok(())
}

#[tokio::test]
async fn the_gmail_routing_no_api_exposes_is_explained_as_a_manual_check() -> TestResult {
    let s = setup().await?;

    let findings = s.connector.doctor().await;

    let manual = finding(&findings, "manual check")?;
    for words in [
        "Apps > Google Workspace > Gmail > Routing",
        "Default routing",
        "Unknown mailbox accounts",
        "Split delivery",
        "gapps.acmecorp.com",
    ] {
        assert!(
            manual.detail.contains(words),
            "missing {words:?}: {}",
            manual.detail
        );
    }
    Ok(())
}

#[tokio::test]
async fn refused_credentials_are_reported_with_the_delegation_to_check() -> TestResult {
    let s = setup().await?;
    let config = config_for(
        &s.google,
        &s.google.foreign_service_account_key_json(),
        &s.dir,
    )?;
    let connector = GoogleConnector::new("google", config)?;

    let findings = connector.doctor().await;

    let credentials = finding(&findings, "credentials")?;
    assert!(!credentials.ok);
    assert!(
        credentials.detail.contains("Domain-wide delegation"),
        "{}",
        credentials.detail
    );
    assert!(
        finding(&findings, "manual check").is_ok(),
        "the manual steps are explained anyway"
    );
    Ok(())
}
