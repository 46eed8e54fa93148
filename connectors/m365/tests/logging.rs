//! What the log says: an expired delta link leads to a full read, said in
//! the log; neither the client secret, the private key nor a token ever
//! shows. (A test binary of its own: a thread-local tracing subscriber only
//! sees every event when no other test runs beside it.)

mod common;

use std::sync::{Arc, Mutex};

use coexist_connector::{Connector, NoProgress};
use coexist_fake_m365::{Fault, RecipientType};
use common::{setup, user, TestResult};

/// Collects everything logged, at every level.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if let Ok(mut log) = self.0.lock() {
            log.extend_from_slice(buf);
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn an_expired_delta_link_is_said_in_the_log_and_no_secret_ever_is() -> TestResult {
    let capture = Capture::default();
    let writer = capture.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let s = setup().await?;
    s.m365
        .add_user(user("ann", "ann", RecipientType::UserMailbox));
    s.m365.set_retry_after(0);
    s.m365.fail_next(1, Fault::Unavailable503);

    let first = s.connector.pull(None, &NoProgress).await?;
    s.m365.expire_delta_links();
    s.m365.expire_tokens();
    s.connector
        .pull(first.cursor.as_deref(), &NoProgress)
        .await?;
    let _ = s.connector.doctor().await;
    let token = s.m365.issue_graph_token();

    let log = String::from_utf8_lossy(&capture.0.lock().map_err(|e| e.to_string())?).into_owned();
    assert!(log.contains("retrying"), "the capture works: {log}");
    assert!(log.contains("the delta link expired"), "{log}");
    assert!(log.contains("full read"), "{log}");
    assert!(
        !log.contains(&s.m365.client_secret()),
        "the secret was logged"
    );
    assert!(!log.contains("PRIVATE KEY"));
    assert!(!log.contains("Bearer "));
    let prefix: String = token.chars().take(16).collect();
    assert!(!log.contains(&prefix), "a token-like value was logged");
    Ok(())
}
