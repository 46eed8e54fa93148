//! Shared set-up of the Google connector's tests: a fake Google, a service
//! account key file pointing at it, and a connector with quick retries.

#![allow(dead_code)]

use std::time::Duration;

use coexist_connector::{RecipientKind, Route, SecretRef, Stub};
use coexist_fake_google::{FakeGoogle, FakeOptions};
use coexist_google::{GoogleConfig, GoogleConnector};
use tempfile::TempDir;

pub type TestResult = Result<(), Box<dyn std::error::Error>>;

/// A running fake, the key file it trusts, and a connector to it.
pub struct Setup {
    pub google: FakeGoogle,
    pub connector: GoogleConnector,
    pub config: GoogleConfig,
    pub dir: TempDir,
}

impl Setup {
    /// Another connector to the same fake (a fresh process: no index).
    pub fn reconnect(&self) -> Result<GoogleConnector, coexist_connector::ConnectorError> {
        GoogleConnector::new("google", self.config.clone())
    }
}

/// A configuration for `google` with the key in `dir`, retrying quickly.
pub fn config_for(
    google: &FakeGoogle,
    key_json: &str,
    dir: &TempDir,
) -> std::io::Result<GoogleConfig> {
    let key_path = dir.path().join("service-account.json");
    std::fs::write(&key_path, key_json)?;
    let mut config = GoogleConfig::new(
        "acmecorp.com",
        "admin@acmecorp.com",
        SecretRef::File {
            file: key_path.display().to_string(),
        },
    );
    config.directory_url = google.directory_url();
    config.contacts_url = google.contacts_url();
    config.requests_per_minute = 0;
    config.retry_base_delay_ms = 5;
    config.retry_max_delay_ms = 50;
    config.max_attempts = 6;
    config.routing_domain = Some("gapps.acmecorp.com".to_string());
    Ok(config)
}

/// Starts a fake Google for acmecorp.com and a connector to it.
pub async fn setup() -> Result<Setup, Box<dyn std::error::Error>> {
    setup_with(FakeOptions::default(), |_| {}).await
}

/// Like [`setup`], with fake options and configuration changes.
pub async fn setup_with(
    options: FakeOptions,
    change: impl FnOnce(&mut GoogleConfig),
) -> Result<Setup, Box<dyn std::error::Error>> {
    let google = FakeGoogle::start(options).await?;
    let dir = tempfile::tempdir()?;
    let mut config = config_for(&google, &google.service_account_key_json(), &dir)?;
    change(&mut config);
    let connector = GoogleConnector::new("google", config.clone())?;
    Ok(Setup {
        google,
        connector,
        config,
        dir,
    })
}

/// A stub for a person homed elsewhere.
pub fn person_stub(anchor: &str, address: &str) -> Stub {
    let local = address.split('@').next().unwrap_or(address);
    Stub {
        anchor: anchor.to_string(),
        kind: RecipientKind::Person,
        primary_address: address.to_string(),
        aliases: Vec::new(),
        route: Route::DomainRouting,
        attributes: coexist_connector::Attributes {
            display_name: Some(format!("{local} (LDAP)")),
            given_name: Some(local.to_string()),
            surname: Some("Onprem".to_string()),
            ..Default::default()
        },
    }
}

/// A short pause for tests that compare timings.
pub async fn pause(ms: u64) {
    tokio::time::sleep(Duration::from_millis(ms)).await;
}
