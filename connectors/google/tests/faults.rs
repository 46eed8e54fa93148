//! Failures: throttling and server errors are retried, a listing that keeps
//! failing makes an incomplete pull, tokens are refreshed, bad credentials
//! are reported as such.

mod common;

use std::time::Duration;

use coexist_connector::{Connector, ConnectorError, NoProgress, Operation};
use coexist_fake_google::{FakeOptions, Fault};
use coexist_google::GoogleConnector;
use common::{config_for, person_stub, setup, setup_with, TestResult};

const FAULTS: [Fault; 5] = [
    Fault::RateLimit403,
    Fault::Quota403,
    Fault::TooMany429,
    Fault::ServerError500,
    Fault::Unavailable503,
];

#[tokio::test]
async fn every_kind_of_throttling_or_server_error_is_retried_until_the_pull_succeeds() -> TestResult
{
    for fault in FAULTS {
        let s = setup().await?;
        s.google.set_retry_after(0);
        s.google.seed_synthetic(20, 2, 2);
        s.google.fail_next(2, fault);

        let pull = s.connector.pull(None, &NoProgress).await?;

        assert!(pull.complete, "{fault:?}: {:?}", pull.problems);
        assert_eq!(pull.recipients.len(), 22, "{fault:?}");
        assert_eq!(s.google.requests().faults, 2, "{fault:?}");
    }
    Ok(())
}

#[tokio::test]
async fn every_kind_of_throttling_or_server_error_is_retried_until_the_writes_succeed() -> TestResult
{
    for fault in FAULTS {
        let s = setup().await?;
        s.google.set_retry_after(0);
        s.connector.pull(None, &NoProgress).await?;
        s.google.fail_next(2, fault);
        let creates: Vec<_> = (0..3)
            .map(|i| Operation::Create {
                stub: person_stub(&format!("ldap:{i}"), &format!("p{i}@acmecorp.com")),
            })
            .collect();

        let batch = s.connector.apply_many(&creates).await;
        let single = s
            .connector
            .apply(&Operation::Create {
                stub: person_stub("ldap:single", "single@acmecorp.com"),
            })
            .await;

        assert!(batch.iter().all(Result::is_ok), "{fault:?}: {batch:?}");
        assert!(single.is_ok(), "{fault:?}: {single:?}");
        assert_eq!(
            s.google.contacts().len(),
            4,
            "{fault:?}: nothing was written twice"
        );
    }
    Ok(())
}

#[tokio::test]
async fn a_retry_after_header_is_honoured() -> TestResult {
    let s = setup_with(FakeOptions::default(), |c| c.retry_max_delay_ms = 5_000).await?;
    s.google.set_retry_after(1);
    s.google.fail_next(1, Fault::TooMany429);
    let started = std::time::Instant::now();

    s.connector.pull(None, &NoProgress).await?;

    assert!(
        started.elapsed() >= Duration::from_millis(950),
        "{:?}",
        started.elapsed()
    );
    Ok(())
}

#[tokio::test]
async fn a_listing_that_keeps_failing_half_way_gives_an_incomplete_pull_not_an_error() -> TestResult
{
    let s = setup().await?;
    s.google.seed_synthetic(1_200, 3, 2);
    s.google.fail_listing_after_pages(1, true);

    let pull = s.connector.pull(None, &NoProgress).await?;

    assert!(!pull.complete, "a partial read must never look complete");
    let users = pull
        .recipients
        .iter()
        .filter(|r| r.kind == coexist_connector::RecipientKind::Person)
        .count();
    assert_eq!(users, 500, "what was read before the failure is returned");
    let problem = pull
        .problems
        .iter()
        .find(|p| p.message.contains("listing users page 2"))
        .ok_or_else(|| format!("no problem names the failed page: {:?}", pull.problems))?;
    assert!(problem.object.contains("users"), "{problem:?}");
    Ok(())
}

#[tokio::test]
async fn a_listing_that_fails_once_half_way_is_retried_and_complete() -> TestResult {
    let s = setup().await?;
    s.google.seed_synthetic(1_200, 3, 2);
    s.google.fail_listing_after_pages(1, false);

    let pull = s.connector.pull(None, &NoProgress).await?;

    assert!(pull.complete, "{:?}", pull.problems);
    assert_eq!(pull.recipients.len(), 1_203);
    Ok(())
}

#[tokio::test]
async fn retries_are_bounded_and_a_system_that_reads_nothing_is_an_error() -> TestResult {
    let s = setup_with(FakeOptions::default(), |c| c.max_attempts = 3).await?;
    s.google.fail_next(1_000, Fault::ServerError500);

    let result = s.connector.pull(None, &NoProgress).await;

    assert!(
        matches!(result, Err(ConnectorError::Retryable { .. })),
        "{result:?}"
    );
    assert_eq!(
        s.google.requests().faults,
        9,
        "users, groups, contacts: 3 attempts each"
    );
    Ok(())
}

#[tokio::test]
async fn an_expired_token_is_refreshed_once_and_the_request_succeeds() -> TestResult {
    let s = setup().await?;
    s.google.seed_synthetic(10, 2, 2);
    s.connector.pull(None, &NoProgress).await?;
    assert_eq!(s.google.requests().token, 1);

    s.google.expire_all_tokens();
    let pull = s.connector.pull(None, &NoProgress).await?;

    assert!(pull.complete);
    assert_eq!(pull.recipients.len(), 12);
    assert_eq!(s.google.requests().token, 2, "exactly one refresh");
    Ok(())
}

#[tokio::test]
async fn a_token_is_renewed_before_it_expires() -> TestResult {
    let options = FakeOptions {
        token_lifetime: Duration::from_secs(2),
        ..FakeOptions::default()
    };
    let s = setup_with(options, |_| {}).await?;
    s.connector.pull(None, &NoProgress).await?;
    tokio::time::sleep(Duration::from_millis(1_100)).await;

    s.connector.pull(None, &NoProgress).await?;

    let counts = s.google.requests();
    assert_eq!(counts.token, 2);
    assert_eq!(
        counts.rejected, 0,
        "no request went out with an expired token"
    );
    Ok(())
}

#[tokio::test]
async fn a_key_google_does_not_know_is_an_authentication_error() -> TestResult {
    let s = setup().await?;
    let config = config_for(
        &s.google,
        &s.google.foreign_service_account_key_json(),
        &s.dir,
    )?;
    let connector = GoogleConnector::new("google", config)?;

    let result = connector.pull(None, &NoProgress).await;

    let Err(ConnectorError::Authentication { message, .. }) = result else {
        return Err(format!("expected an authentication error, got {result:?}").into());
    };
    assert!(message.contains("invalid_grant"), "{message}");
    assert_eq!(s.google.requests().token, 1, "a refusal is not retried");
    Ok(())
}

#[tokio::test]
async fn an_admin_without_delegation_is_an_authentication_error() -> TestResult {
    let s = setup_with(FakeOptions::default(), |c| {
        c.admin = "intern@acmecorp.com".into()
    })
    .await?;

    let result = s.connector.pull(None, &NoProgress).await;

    assert!(
        matches!(result, Err(ConnectorError::Authentication { .. })),
        "{result:?}"
    );
    Ok(())
}

#[tokio::test]
async fn an_unreadable_or_malformed_key_file_is_an_authentication_error() -> TestResult {
    let s = setup().await?;
    let mut missing = s.config.clone();
    missing.service_account_key = coexist_connector::SecretRef::File {
        file: s.dir.path().join("nope.json").display().to_string(),
    };
    let malformed = config_for(&s.google, "{\"client_email\": 1", &s.dir)?;

    for config in [missing, malformed] {
        let result = GoogleConnector::new("google", config);
        assert!(
            matches!(result, Err(ConnectorError::Authentication { .. })),
            "{:?}",
            result.err()
        );
    }
    Ok(())
}

#[tokio::test]
async fn the_token_endpoint_being_busy_is_retried() -> TestResult {
    let s = setup().await?;
    s.google.set_retry_after(0);
    s.google.fail_next_token(1, Fault::Unavailable503);
    s.google.fail_next_token(1, Fault::TooMany429);

    let pull = s.connector.pull(None, &NoProgress).await?;

    assert!(pull.complete);
    assert_eq!(s.google.requests().token, 3);
    Ok(())
}
