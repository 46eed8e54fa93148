//! A system whose authentication fails stops there for the run: one retry
//! budget for getting a token (never multiplied by the retries of the request
//! that needed it), then every later request of the connector fails at once
//! with the same authentication error, without touching the network; and an
//! apply stops sending chunks after the first authentication error.

mod common;

use std::time::{Duration, Instant};

use coexist_connector::{Applied, Connector, ConnectorError, NoProgress, Operation};
use coexist_fake_google::{FakeGoogle, FakeOptions, Fault, UnreachableEndpoint};
use coexist_google::{GoogleConfig, GoogleConnector};
use common::{config_for, person_stub, setup_with, TestResult};

/// Attempts in all for one request (and for one token).
const ATTEMPTS: u32 = 4;

/// Backoff of 20 ms doubling to 100 ms: one budget of 4 attempts waits at
/// most 20 + 40 + 80 = 140 ms.
fn quick_retries(config: &mut GoogleConfig) {
    config.max_attempts = ATTEMPTS;
    config.retry_base_delay_ms = 20;
    config.retry_max_delay_ms = 100;
}

/// A connector to `google` whose key file names `token_uri`.
fn connector_with_token_uri(
    google: &FakeGoogle,
    token_uri: &str,
    dir: &tempfile::TempDir,
) -> Result<GoogleConnector, Box<dyn std::error::Error>> {
    let key = google.service_account_key_json_with_token_uri(token_uri);
    let mut config = config_for(google, &key, dir)?;
    quick_retries(&mut config);
    Ok(GoogleConnector::new("google", config)?)
}

fn creates(n: usize) -> Vec<Operation> {
    (0..n)
        .map(|i| Operation::Create {
            stub: person_stub(&format!("ldap:{i}"), &format!("p{i}@acmecorp.com")),
        })
        .collect()
}

/// Every result is an authentication error with `message`.
fn all_refused_with(
    results: &[Result<Applied, ConnectorError>],
    message: &str,
) -> Result<(), String> {
    for (i, result) in results.iter().enumerate() {
        match result {
            Err(error @ ConnectorError::Authentication { .. }) if error.message() == message => {}
            other => {
                return Err(format!(
                    "operation {i}: expected the authentication error {message:?}, got {other:?}"
                ))
            }
        }
    }
    Ok(())
}

fn authentication_message(result: &Result<coexist_connector::Pull, ConnectorError>) -> String {
    match result {
        Err(error @ ConnectorError::Authentication { .. }) => error.message().to_string(),
        other => format!("(not an authentication error: {other:?})"),
    }
}

/// "At once": the counts above prove nothing more was sent; this bound
/// catches waiting (a backoff per refused operation would take 250 x the
/// retry delay), with room for a loaded 2-core CI machine, where a few
/// hundred milliseconds of scheduling delay are common.
const FAST: Duration = Duration::from_secs(3);

#[tokio::test]
async fn a_token_endpoint_that_hangs_up_is_tried_once_per_budget_and_then_the_run_stops_there(
) -> TestResult {
    let google = FakeGoogle::start(FakeOptions::default()).await?;
    google.seed_synthetic(20, 3, 2);
    let endpoint = UnreachableEndpoint::hanging_up().await?;
    let dir = tempfile::tempdir()?;
    let connector = connector_with_token_uri(&google, &endpoint.token_uri(), &dir)?;

    let started = Instant::now();
    let pull = connector.pull(None, &NoProgress).await;
    let pull_time = started.elapsed();

    let message = authentication_message(&pull);
    assert!(message.contains(&endpoint.token_uri()), "{message}");
    assert_eq!(
        endpoint.connections(),
        u64::from(ATTEMPTS),
        "one retry budget for the whole pull, not one per listing and attempt"
    );
    assert!(pull_time < Duration::from_secs(1), "{pull_time:?}");
    assert_eq!(google.requests().total, 0, "no API request without a token");

    let started = Instant::now();
    let results = connector.apply_many(&creates(250)).await;
    let single = connector.apply(&creates(1)[0]).await;
    let again = connector.pull(None, &NoProgress).await;
    let later_time = started.elapsed();

    all_refused_with(&results, &message)?;
    all_refused_with(&[single], &message)?;
    assert_eq!(authentication_message(&again), message);
    assert_eq!(
        endpoint.connections(),
        u64::from(ATTEMPTS),
        "no new attempt"
    );
    assert_eq!(google.requests().total, 0);
    assert!(later_time < FAST, "{later_time:?}");
    Ok(())
}

#[tokio::test]
async fn a_token_endpoint_that_refuses_connections_costs_one_retry_budget_then_nothing(
) -> TestResult {
    let google = FakeGoogle::start(FakeOptions::default()).await?;
    google.seed_synthetic(20, 3, 2);
    let endpoint = UnreachableEndpoint::closed().await?;
    let dir = tempfile::tempdir()?;
    let connector = connector_with_token_uri(&google, &endpoint.token_uri(), &dir)?;

    let started = Instant::now();
    let pull = connector.pull(None, &NoProgress).await;
    let pull_time = started.elapsed();
    let started = Instant::now();
    let results = connector.apply_many(&creates(250)).await;
    let apply_time = started.elapsed();

    let message = authentication_message(&pull);
    assert!(message.contains(&endpoint.token_uri()), "{message}");
    assert!(message.contains("cannot connect"), "{message}");
    assert!(
        pull_time < Duration::from_secs(1),
        "one budget waits at most 140 ms: {pull_time:?}"
    );
    all_refused_with(&results, &message)?;
    assert!(apply_time < FAST, "{apply_time:?}");
    assert_eq!(google.requests().total, 0);
    Ok(())
}

#[tokio::test]
async fn a_token_endpoint_that_keeps_failing_is_asked_once_per_budget_in_the_whole_run(
) -> TestResult {
    let s = setup_with(FakeOptions::default(), quick_retries).await?;
    s.google.seed_synthetic(20, 3, 2);
    s.google.set_retry_after(0);
    s.google.fail_next_token(1_000, Fault::Unavailable503);

    let started = Instant::now();
    let pull = s.connector.pull(None, &NoProgress).await;
    let results = s.connector.apply_many(&creates(250)).await;
    let elapsed = started.elapsed();

    let message = authentication_message(&pull);
    assert!(message.contains(&s.google.token_uri()), "{message}");
    assert!(message.contains("503"), "{message}");
    all_refused_with(&results, &message)?;
    let counts = s.google.requests();
    assert_eq!(counts.token, u64::from(ATTEMPTS));
    assert_eq!(counts.total, counts.token, "no API request without a token");
    assert!(elapsed < Duration::from_secs(1), "{elapsed:?}");
    Ok(())
}

#[tokio::test]
async fn a_key_refused_with_invalid_grant_is_asked_once_and_stops_the_run() -> TestResult {
    let google = FakeGoogle::start(FakeOptions::default()).await?;
    google.seed_synthetic(20, 3, 2);
    let dir = tempfile::tempdir()?;
    let mut config = config_for(&google, &google.foreign_service_account_key_json(), &dir)?;
    quick_retries(&mut config);
    let connector = GoogleConnector::new("google", config)?;

    let started = Instant::now();
    let pull = connector.pull(None, &NoProgress).await;
    let results = connector.apply_many(&creates(250)).await;
    let single = connector.apply(&creates(1)[0]).await;
    let findings = connector.doctor().await;
    let elapsed = started.elapsed();

    let message = authentication_message(&pull);
    assert!(message.contains("invalid_grant"), "{message}");
    all_refused_with(&results, &message)?;
    all_refused_with(&[single], &message)?;
    assert!(
        findings
            .iter()
            .any(|f| !f.ok && f.detail.contains(&message)),
        "{findings:?}"
    );
    let counts = google.requests();
    assert_eq!(counts.token, 1, "a refusal is final for the run");
    assert_eq!(counts.total, 1);
    assert!(elapsed < FAST, "{elapsed:?}");
    Ok(())
}

#[tokio::test]
async fn a_revoked_delegation_refused_with_401_is_asked_once_and_stops_the_run() -> TestResult {
    let s = setup_with(FakeOptions::default(), quick_retries).await?;
    s.google.seed_synthetic(20, 3, 2);
    s.google.revoke_delegation();

    let pull = s.connector.pull(None, &NoProgress).await;
    let results = s.connector.apply_many(&creates(250)).await;

    let message = authentication_message(&pull);
    assert!(message.contains("unauthorized_client"), "{message}");
    all_refused_with(&results, &message)?;
    let counts = s.google.requests();
    assert_eq!((counts.token, counts.total), (1, 1));
    Ok(())
}

#[tokio::test]
async fn credentials_revoked_during_an_apply_stop_it_and_every_later_request() -> TestResult {
    let s = setup_with(FakeOptions::default(), |c| {
        quick_retries(c);
        c.concurrency = 2;
    })
    .await?;
    s.connector.pull(None, &NoProgress).await?;
    s.google.revoke_delegation();
    s.google.expire_all_tokens();
    s.google.reset_counts();

    let results = s.connector.apply_many(&creates(1_000)).await;
    let pull = s.connector.pull(None, &NoProgress).await;

    let message = authentication_message(&pull);
    assert!(message.contains("unauthorized_client"), "{message}");
    all_refused_with(&results, &message)?;
    let counts = s.google.requests();
    assert!(
        counts.contacts_batch <= 2,
        "only the batches already in flight were sent: {counts:?}"
    );
    assert_eq!(counts.token, 1, "{counts:?}");
    assert!(s.google.contacts().is_empty());
    Ok(())
}

#[tokio::test]
async fn a_forbidden_answer_during_an_apply_fails_the_remaining_chunks_without_sending_them(
) -> TestResult {
    let s = setup_with(FakeOptions::default(), |c| {
        quick_retries(c);
        c.concurrency = 2;
    })
    .await?;
    s.connector.pull(None, &NoProgress).await?;
    s.google.reset_counts();
    s.google.fail_next(1_000, Fault::Forbidden403);

    let results = s.connector.apply_many(&creates(1_000)).await;

    let mut messages = std::collections::BTreeSet::new();
    for result in &results {
        match result {
            Err(error) if error.is_authentication() => messages.insert(error.message()),
            other => return Err(format!("expected an authentication error, got {other:?}").into()),
        };
    }
    assert!(
        messages.iter().all(|m| m.contains("HTTP 403")),
        "{messages:?}"
    );
    assert!(
        messages.len() <= 2,
        "the chunks never sent carry the first failure: {messages:?}"
    );
    let counts = s.google.requests();
    assert!(
        counts.contacts_batch <= 2,
        "ten chunks, two in flight at most when the first failed: {counts:?}"
    );
    Ok(())
}

#[tokio::test]
async fn a_token_endpoint_error_names_the_endpoint_and_the_http_status() -> TestResult {
    let google = FakeGoogle::start(FakeOptions::default()).await?;
    let dir = tempfile::tempdir()?;
    let mut config = config_for(&google, &google.foreign_service_account_key_json(), &dir)?;
    quick_retries(&mut config);
    let refused = GoogleConnector::new("google", config)?
        .pull(None, &NoProgress)
        .await;
    let message = authentication_message(&refused);
    assert!(message.contains(&google.token_uri()), "{message}");
    assert!(message.contains("HTTP 400"), "{message}");

    let s = setup_with(FakeOptions::default(), quick_retries).await?;
    s.google.fail_next_token(1_000, Fault::ServerError500);
    let failing = s.connector.pull(None, &NoProgress).await;
    let message = authentication_message(&failing);
    assert!(message.contains(&s.google.token_uri()), "{message}");
    assert!(message.contains("HTTP 500"), "{message}");
    Ok(())
}
