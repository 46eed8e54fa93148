//! Credentials, tokens and failures: a secret or a certificate, one token
//! per resource, a 401 refreshes once, refused credentials stop the run
//! with one error, throttling and server errors are retried, a read that
//! fails part-way is incomplete.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};

use coexist_connector::{Connector, ConnectorError, NoProgress, Operation, Progress, SecretRef};
use coexist_fake_m365::{FakeM365, FakeOptions, Fault, RecipientType};
use coexist_m365::M365Connector;
use common::{config_for, person_stub, setup, setup_with, user, TestResult};

#[tokio::test]
async fn one_token_per_resource_is_obtained_and_reused() -> TestResult {
    let s = setup().await?;
    s.m365
        .add_user(user("ann", "ann", RecipientType::UserMailbox));

    s.connector.pull(None, &NoProgress).await?;
    s.connector.pull(None, &NoProgress).await?;

    assert_eq!(
        s.m365.counters().token,
        2,
        "one for Graph, one for Exchange"
    );
    Ok(())
}

#[tokio::test]
async fn a_certificate_credential_signs_its_token_requests() -> TestResult {
    let m365 = FakeM365::start(FakeOptions {
        client_secret: String::new(),
        ..FakeOptions::default()
    })
    .await?;
    m365.add_user(user("ann", "ann", RecipientType::UserMailbox));
    let dir = tempfile::tempdir()?;
    let mut config = config_for(&m365, "unused", &dir)?;
    let certificate = dir.path().join("app.crt");
    let key = dir.path().join("app.key");
    std::fs::write(&certificate, m365.certificate_pem())?;
    std::fs::write(&key, m365.private_key_pem())?;
    config.client_secret = None;
    config.certificate = Some(SecretRef::File {
        file: certificate.display().to_string(),
    });
    config.private_key = Some(SecretRef::File {
        file: key.display().to_string(),
    });
    let connector = M365Connector::new("m365", config)?;

    let pull = connector.pull(None, &NoProgress).await?;

    assert_eq!(pull.recipients.len(), 1);
    Ok(())
}

#[tokio::test]
async fn a_certificate_the_app_does_not_know_is_refused_as_authentication() -> TestResult {
    let m365 = FakeM365::start(FakeOptions::default()).await?;
    let dir = tempfile::tempdir()?;
    let mut config = config_for(&m365, "unused", &dir)?;
    let certificate = dir.path().join("other.crt");
    let key = dir.path().join("other.key");
    std::fs::write(&certificate, m365.other_certificate_pem())?;
    std::fs::write(&key, m365.other_private_key_pem())?;
    config.client_secret = None;
    config.certificate = Some(SecretRef::File {
        file: certificate.display().to_string(),
    });
    config.private_key = Some(SecretRef::File {
        file: key.display().to_string(),
    });
    let connector = M365Connector::new("m365", config)?;

    let result = connector.pull(None, &NoProgress).await;

    assert!(
        matches!(result, Err(ConnectorError::Authentication { .. })),
        "{result:?}"
    );
    Ok(())
}

#[tokio::test]
async fn an_expired_token_is_refreshed_once_on_a_401() -> TestResult {
    let s = setup().await?;
    s.m365
        .add_user(user("ann", "ann", RecipientType::UserMailbox));
    s.connector.pull(None, &NoProgress).await?;

    s.m365.expire_tokens();
    let pull = s.connector.pull(None, &NoProgress).await?;

    assert_eq!(pull.recipients.len(), 1);
    assert_eq!(s.m365.counters().token, 4, "each resource refreshed once");
    Ok(())
}

#[tokio::test]
async fn a_refused_secret_stops_the_run_with_one_error_and_no_more_requests() -> TestResult {
    let m365 = FakeM365::start(FakeOptions::default()).await?;
    m365.add_user(user("ann", "ann", RecipientType::UserMailbox));
    let dir = tempfile::tempdir()?;
    let connector = M365Connector::new("m365", config_for(&m365, "wrong-secret", &dir)?)?;

    let pulled = connector.pull(None, &NoProgress).await;
    let Err(error @ ConnectorError::Authentication { .. }) = pulled else {
        return Err(format!("expected an authentication error, got {pulled:?}").into());
    };
    assert!(error.message().contains("AADSTS"), "{error}");
    let requests = m365.counters().total;

    let results = connector
        .apply_many(&[
            Operation::Create {
                stub: person_stub("ldap:1", "p1@acmecorp.com"),
            },
            Operation::Create {
                stub: person_stub("ldap:2", "p2@acmecorp.com"),
            },
        ])
        .await;
    let again = connector.pull(None, &NoProgress).await;

    assert_eq!(m365.counters().total, requests, "nothing more was sent");
    for result in results {
        assert!(
            matches!(&result, Err(e) if e.message() == error.message()),
            "{result:?}"
        );
    }
    assert!(matches!(again, Err(e) if e.message() == error.message()));
    Ok(())
}

#[tokio::test]
async fn throttling_and_server_errors_are_retried_on_graph_and_exchange() -> TestResult {
    let s = setup().await?;
    s.m365
        .add_user(user("ann", "ann", RecipientType::UserMailbox));
    s.m365.set_retry_after(0);
    s.m365.fail_next(2, Fault::TooMany429);
    s.m365.fail_next_exchange(1, Fault::TooMany429);
    s.m365.fail_next_exchange(1, Fault::Unavailable503);

    let pull = s.connector.pull(None, &NoProgress).await?;
    s.connector
        .apply(&Operation::Create {
            stub: person_stub("ldap:1", "p1@acmecorp.com"),
        })
        .await?;

    assert!(pull.complete);
    assert_eq!(pull.recipients.len(), 1);
    assert_eq!(s.m365.counters().faults, 4);
    assert_eq!(s.m365.mail_contacts().len(), 1);
    Ok(())
}

/// Breaks Graph for good once the first page has been read.
struct BreakAfterFirstPage<'a> {
    m365: &'a FakeM365,
    broken: AtomicBool,
}

impl Progress for BreakAfterFirstPage<'_> {
    fn advance(&self, _n: u64) {
        if !self.broken.swap(true, Ordering::SeqCst) {
            self.m365.fail_next(10_000, Fault::ServerError500);
        }
    }
}

#[tokio::test]
async fn a_listing_that_fails_part_way_leaves_the_pull_incomplete_without_a_cursor() -> TestResult {
    let s = setup_with(FakeOptions::default(), |c| {
        c.max_attempts = 2;
        c.page_size = 10;
    })
    .await?;
    s.m365.seed_synthetic(30, 2, 3);
    let progress = BreakAfterFirstPage {
        m365: &s.m365,
        broken: AtomicBool::new(false),
    };

    let pull = s.connector.pull(None, &progress).await?;

    assert!(!pull.complete, "a partial read must not be complete");
    assert!(
        pull.cursor.is_none(),
        "no delta continues from a partial read"
    );
    assert!(
        pull.problems
            .iter()
            .any(|p| p.message.contains("incomplete")),
        "{:?}",
        pull.problems
    );
    s.m365.clear_faults();
    Ok(())
}

#[tokio::test]
async fn an_app_exchange_refuses_fails_the_pull_as_an_authentication_error() -> TestResult {
    let s = setup_with(
        FakeOptions {
            exchange_roles: Vec::new(),
            ..FakeOptions::default()
        },
        |_| {},
    )
    .await?;
    s.m365
        .add_user(user("ann", "ann", RecipientType::UserMailbox));

    let result = s.connector.pull(None, &NoProgress).await;

    let Err(error) = result else {
        return Err("a pull without knowing the mailboxes must fail".into());
    };
    assert!(error.is_authentication(), "{error}");
    assert!(error.message().contains("Exchange.ManageAsApp"), "{error}");
    Ok(())
}
