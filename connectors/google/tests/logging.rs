//! Secrets stay secret: neither the service-account key nor an access token
//! ever reaches the logs. (A test binary of its own: a thread-local tracing
//! subscriber only sees every event when no other test runs beside it.)

mod common;

use std::sync::{Arc, Mutex};

use coexist_connector::{Connector, NoProgress};
use coexist_fake_google::Fault;
use common::{setup, TestResult};

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
async fn neither_the_key_nor_a_token_is_ever_logged() -> TestResult {
    let capture = Capture::default();
    let writer = capture.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let s = setup().await?;
    s.google.seed_synthetic(5, 1, 1);
    s.google.fail_next(1, Fault::Unavailable503);

    s.connector.pull(None, &NoProgress).await?;
    s.google.expire_all_tokens();
    s.connector.pull(None, &NoProgress).await?;
    let _ = s.connector.doctor().await;
    let token = s.google.mint_token(&["https://www.google.com/m8/feeds"]);

    let log = String::from_utf8_lossy(&capture.0.lock().map_err(|e| e.to_string())?).into_owned();
    assert!(log.contains("retrying"), "the capture works: {log}");
    assert!(!log.contains("PRIVATE KEY"));
    assert!(!log.contains("Bearer "));
    assert!(!log.contains("assertion="));
    // Tokens share their format; a prefix of the minted one must not show.
    let prefix: String = token.chars().take(12).collect();
    assert!(!log.contains(&prefix), "a token-like value was logged");
    Ok(())
}
