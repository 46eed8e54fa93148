//! Shared set-up of the Microsoft 365 connector's tests: a fake tenant, the
//! app's secret in a file, and a connector to it with quick retries.

#![allow(dead_code)]

use coexist_connector::{Attributes, RecipientKind, Route, SecretRef, Stub};
use coexist_fake_m365::{FakeM365, FakeOptions, FakeUser, RecipientType};
use coexist_m365::{M365Config, M365Connector};
use tempfile::TempDir;

pub type TestResult = Result<(), Box<dyn std::error::Error>>;

/// A running fake, the folder holding the app's secret, and a connector.
pub struct Setup {
    pub m365: FakeM365,
    pub connector: M365Connector,
    pub config: M365Config,
    pub dir: TempDir,
}

impl Setup {
    /// Another connector to the same tenant (a fresh process: no index,
    /// no token).
    pub fn reconnect(&self) -> Result<M365Connector, coexist_connector::ConnectorError> {
        M365Connector::new("m365", self.config.clone())
    }
}

/// A secret-based configuration for `m365`, retrying quickly.
pub fn config_for(m365: &FakeM365, secret: &str, dir: &TempDir) -> std::io::Result<M365Config> {
    let path = dir.path().join("client-secret");
    std::fs::write(&path, format!("{secret}\n"))?;
    let mut config = M365Config::with_secret(
        m365.tenant_id(),
        m365.client_id(),
        SecretRef::File {
            file: path.display().to_string(),
        },
    );
    config.authority = m365.base_url();
    config.graph_url = m365.graph_url();
    config.exchange_url = Some(m365.exchange_url());
    config.retry_base_delay_ms = 5;
    config.retry_max_delay_ms = 50;
    config.max_attempts = 5;
    config.routing_domain = Some(m365.routing_domain());
    Ok(config)
}

/// Starts a fake tenant and a connector to it.
pub async fn setup() -> Result<Setup, Box<dyn std::error::Error>> {
    setup_with(FakeOptions::default(), |_| {}).await
}

/// Like [`setup`], with fake options and configuration changes.
pub async fn setup_with(
    options: FakeOptions,
    change: impl FnOnce(&mut M365Config),
) -> Result<Setup, Box<dyn std::error::Error>> {
    let m365 = FakeM365::start(options).await?;
    let dir = tempfile::tempdir()?;
    let mut config = config_for(&m365, &m365.client_secret(), &dir)?;
    change(&mut config);
    let connector = M365Connector::new("m365", config.clone())?;
    Ok(Setup {
        m365,
        connector,
        config,
        dir,
    })
}

/// A user of acmecorp.com with a mailbox of `kind`, its routing-domain
/// proxy address under `alias` (which may differ from the local part).
pub fn user(local: &str, alias: &str, kind: RecipientType) -> FakeUser {
    let mail = format!("{local}@acmecorp.com");
    FakeUser {
        user_principal_name: mail.clone(),
        mail: mail.clone(),
        proxy_addresses: vec![
            format!("SMTP:{mail}"),
            format!("smtp:{alias}@acmecorp.mail.onmicrosoft.com"),
        ],
        display_name: format!("{local} (M365)"),
        given_name: local.to_string(),
        surname: "Cloud".to_string(),
        job_title: "Engineer".to_string(),
        department: "R&D".to_string(),
        company_name: "Acme".to_string(),
        business_phones: vec!["+1 555 0100".to_string()],
        mobile_phone: "+1 555 0199".to_string(),
        office_location: "HQ".to_string(),
        recipient_type: kind,
        ..FakeUser::default()
    }
}

/// A stub for a person homed on LDAP, as a mail contact routes it.
pub fn person_stub(anchor: &str, address: &str) -> Stub {
    let local = address.split('@').next().unwrap_or(address);
    Stub {
        anchor: anchor.to_string(),
        kind: RecipientKind::Person,
        primary_address: address.to_string(),
        aliases: vec![format!("{local}.alias@acmecorp.com")],
        route: Route::Address(format!("{local}@mithi.acmecorp.com")),
        attributes: Attributes {
            display_name: Some(format!("{local} (LDAP)")),
            given_name: Some(local.to_string()),
            surname: Some("Onprem".to_string()),
            title: Some("Clerk".to_string()),
            business_phone: Some("+1 555 0111".to_string()),
            ..Attributes::default()
        },
    }
}

/// The same stub as a personal contact (no route of its own).
pub fn personal_stub(anchor: &str, address: &str) -> Stub {
    Stub {
        route: Route::DomainRouting,
        ..person_stub(anchor, address)
    }
}
