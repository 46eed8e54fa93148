//! `coexist doctor` for a Microsoft 365 system.

mod common;

use coexist_connector::{Connector, Finding};
use coexist_fake_m365::FakeOptions;
use common::{config_for, setup, setup_with, TestResult};

fn finding<'a>(findings: &'a [Finding], check: &str) -> Result<&'a Finding, String> {
    findings
        .iter()
        .find(|f| f.check.contains(check))
        .ok_or_else(|| format!("no finding {check:?} in {findings:#?}"))
}

#[tokio::test]
async fn a_well_configured_tenant_passes_every_check() -> TestResult {
    let s = setup().await?;
    s.m365
        .set_accepted_domain_type("acmecorp.com", "InternalRelay");

    let findings = s.connector.doctor().await;

    for check in [
        "Microsoft Graph token",
        "Exchange Online token",
        "users and groups readable",
        "recipients readable",
        "routing domain",
        "accepted domains",
    ] {
        let f = finding(&findings, check)?;
        assert!(f.ok, "{f:#?}");
    }
    let accepted = finding(&findings, "accepted domains")?;
    assert!(
        accepted.detail.contains("acmecorp.com InternalRelay"),
        "{}",
        accepted.detail
    );
    Ok(())
}

#[tokio::test]
async fn a_routing_domain_that_is_not_the_tenants_fails_naming_the_domains_it_has() -> TestResult {
    let s = setup_with(FakeOptions::default(), |c| {
        c.routing_domain = Some("o365.acmecorp.com".into())
    })
    .await?;

    let findings = s.connector.doctor().await;

    let routing = finding(&findings, "routing domain")?;
    assert!(!routing.ok);
    assert!(
        routing.detail.contains("acmecorp.mail.onmicrosoft.com"),
        "{}",
        routing.detail
    );
    assert!(!finding(&findings, "accepted domains")?.ok);
    Ok(())
}

#[tokio::test]
async fn an_app_without_exchange_manage_as_app_is_told_what_to_grant() -> TestResult {
    let s = setup_with(
        FakeOptions {
            exchange_roles: Vec::new(),
            ..FakeOptions::default()
        },
        |_| {},
    )
    .await?;

    let findings = s.connector.doctor().await;

    let exchange = finding(&findings, "recipients readable")?;
    assert!(!exchange.ok);
    assert!(
        exchange.detail.contains("Exchange.ManageAsApp"),
        "{}",
        exchange.detail
    );
    assert!(
        exchange.detail.contains("powershell"),
        "{}",
        exchange.detail
    );
    assert!(finding(&findings, "users and groups readable")?.ok);
    Ok(())
}

#[tokio::test]
async fn a_refused_secret_is_one_failed_finding() -> TestResult {
    let s = setup().await?;
    let config = config_for(&s.m365, "wrong", &s.dir)?;
    let connector = coexist_m365::M365Connector::new("m365", config)?;

    let findings = connector.doctor().await;

    assert_eq!(findings.len(), 1, "{findings:#?}");
    assert!(!findings[0].ok);
    assert!(
        findings[0].detail.contains("AADSTS"),
        "{}",
        findings[0].detail
    );
    Ok(())
}

#[tokio::test]
async fn a_missing_graph_permission_is_named() -> TestResult {
    let s = setup_with(
        FakeOptions {
            graph_roles: vec!["Domain.Read.All".into()],
            ..FakeOptions::default()
        },
        |c| c.contact_folder = Some("Colleagues".into()),
    )
    .await?;

    let findings = s.connector.doctor().await;

    let reads = finding(&findings, "users and groups readable")?;
    assert!(!reads.ok);
    assert!(reads.detail.contains("User.Read.All"), "{}", reads.detail);
    Ok(())
}
