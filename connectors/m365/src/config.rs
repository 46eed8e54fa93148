//! The configuration of a Microsoft 365 system: the `connection` table of a
//! `kind = "m365"` system.

use coexist_connector::SecretRef;
use serde::Deserialize;

/// The largest `$top` Graph accepts on users, groups and members
/// (<https://learn.microsoft.com/graph/paging>).
pub const MAX_PAGE_SIZE: u32 = 999;

/// The public cloud's identity platform.
pub const DEFAULT_AUTHORITY: &str = "https://login.microsoftonline.com";
/// Microsoft Graph v1.0.
pub const DEFAULT_GRAPH_URL: &str = "https://graph.microsoft.com/v1.0";
/// Exchange Online's admin REST transport; `{tenant}` is the tenant id.
pub const DEFAULT_EXCHANGE_URL: &str = "https://outlook.office365.com/adminapi/beta/{tenant}";

/// How coexist reaches one Microsoft 365 tenant.
///
/// The app registration (`client_id` in `tenant_id`) authenticates with a
/// client secret or with a certificate and its private key, each given by
/// reference (`{ env = "…" }` or `{ file = "…" }`). The URLs default to
/// Microsoft's public cloud; tests point them at a fake.
///
/// ```
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let config: coexist_m365::M365Config = toml::from_str(
///     r#"
/// tenant_id = "00000000-0000-0000-0000-0000000000aa"
/// client_id = "00000000-0000-0000-0000-0000000000bb"
/// certificate = { file = "/etc/coexist/m365.crt" }
/// private_key = { file = "/etc/coexist/m365.key" }
/// "#,
/// )?;
/// assert_eq!(config.graph_url, "https://graph.microsoft.com/v1.0");
/// assert_eq!(config.page_size, 999);
/// assert_eq!(
///     config.exchange_url(),
///     "https://outlook.office365.com/adminapi/beta/00000000-0000-0000-0000-0000000000aa"
/// );
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct M365Config {
    /// The directory (tenant) id, or its `*.onmicrosoft.com` name.
    pub tenant_id: String,
    /// The application (client) id of the app registration.
    pub client_id: String,
    /// The app's client secret. Give this or `certificate`.
    #[serde(default)]
    pub client_secret: Option<SecretRef>,
    /// The app's certificate (PEM), uploaded to the app registration; the
    /// token requests are signed with `private_key` and name it by its
    /// SHA-1 thumbprint (`x5t`).
    #[serde(default)]
    pub certificate: Option<SecretRef>,
    /// The certificate's RSA private key (PEM, PKCS#8 or PKCS#1).
    #[serde(default)]
    pub private_key: Option<SecretRef>,
    /// The identity platform; tokens come from
    /// `{authority}/{tenant_id}/oauth2/v2.0/token`.
    #[serde(default = "default_authority")]
    pub authority: String,
    /// Microsoft Graph, up to and including the version.
    #[serde(default = "default_graph_url")]
    pub graph_url: String,
    /// Exchange Online's admin REST transport (`…/adminapi/beta/{tenant}`);
    /// `{tenant}` is replaced by `tenant_id`. Default
    /// [`DEFAULT_EXCHANGE_URL`].
    #[serde(default)]
    pub exchange_url: Option<String>,
    /// For `stub_style = "mailbox_contacts"`: the display name of the
    /// contact folder, in every user mailbox, that holds coexist's personal
    /// contacts (created where missing). When set, pulls also read that
    /// folder of every user mailbox; without it, mailbox contacts are
    /// neither read nor written.
    #[serde(default)]
    pub contact_folder: Option<String>,
    /// The most requests in flight at once (Graph and Exchange together).
    #[serde(default = "default_concurrency")]
    pub concurrency: usize,
    /// `$top` of the user, group and member listings (at most 999).
    #[serde(default = "default_page_size")]
    pub page_size: u32,
    /// A client-side request budget per minute; 0 (the default) leaves the
    /// pace to the services' own throttling (429 with `Retry-After`).
    #[serde(default)]
    pub requests_per_minute: u32,
    /// Attempts in all for a request that fails transiently (throttled, 5xx).
    #[serde(default = "default_max_attempts")]
    pub max_attempts: u32,
    /// The backoff ceiling of the first retry, in milliseconds (it doubles
    /// with each attempt, with jitter).
    #[serde(default = "default_retry_base_delay_ms")]
    pub retry_base_delay_ms: u64,
    /// The longest wait between two attempts, in milliseconds; a service's
    /// `Retry-After` is honoured up to this.
    #[serde(default = "default_retry_max_delay_ms")]
    pub retry_max_delay_ms: u64,
    /// Seconds one HTTP request may take before it counts as a transient
    /// failure.
    #[serde(default = "default_request_timeout_secs")]
    pub request_timeout_secs: u64,
    /// How `coexist provision` creates users (the `provision` table:
    /// `usage_location`, `license_sku_id`, `mailbox_wait_seconds`); without
    /// it, Microsoft 365 is never a provisioned person's home.
    #[serde(default)]
    pub provision: Option<crate::provision::M365Provision>,
    /// The system's routing domain (`[[systems]] routing_domain`, such as
    /// `acmecorp.mail.onmicrosoft.com`), which `coexist doctor` checks is a
    /// verified domain of the tenant. Not read from the connection table.
    #[serde(skip)]
    pub routing_domain: Option<String>,
}

impl M365Config {
    /// A configuration authenticating with `client_secret`, every other
    /// setting at its default.
    pub fn with_secret(
        tenant_id: impl Into<String>,
        client_id: impl Into<String>,
        client_secret: SecretRef,
    ) -> Self {
        M365Config {
            tenant_id: tenant_id.into(),
            client_id: client_id.into(),
            client_secret: Some(client_secret),
            certificate: None,
            private_key: None,
            authority: default_authority(),
            graph_url: default_graph_url(),
            exchange_url: None,
            contact_folder: None,
            concurrency: default_concurrency(),
            page_size: default_page_size(),
            requests_per_minute: 0,
            max_attempts: default_max_attempts(),
            retry_base_delay_ms: default_retry_base_delay_ms(),
            retry_max_delay_ms: default_retry_max_delay_ms(),
            request_timeout_secs: default_request_timeout_secs(),
            provision: None,
            routing_domain: None,
        }
    }

    /// The Exchange transport's base URL, `{tenant}` filled in.
    pub fn exchange_url(&self) -> String {
        self.exchange_url
            .as_deref()
            .unwrap_or(DEFAULT_EXCHANGE_URL)
            .replace("{tenant}", self.tenant_id.trim())
            .trim_end_matches('/')
            .to_string()
    }

    /// The token endpoint.
    pub fn token_url(&self) -> String {
        format!(
            "{}/{}/oauth2/v2.0/token",
            self.authority.trim_end_matches('/'),
            self.tenant_id.trim()
        )
    }

    /// Checks what serde cannot; `Err` names the setting (its key first,
    /// then a sentence).
    pub(crate) fn check(&self) -> Result<(), (&'static str, String)> {
        if self.tenant_id.trim().is_empty() {
            return Err(("tenant_id", "`tenant_id` is empty".into()));
        }
        if self.client_id.trim().is_empty() {
            return Err(("client_id", "`client_id` is empty".into()));
        }
        match (&self.client_secret, &self.certificate, &self.private_key) {
            (Some(_), None, None) | (None, Some(_), Some(_)) => {}
            (Some(_), _, _) => {
                return Err((
                    "client_secret",
                    "give either `client_secret` or `certificate` with `private_key`, not both"
                        .into(),
                ))
            }
            (None, Some(_), None) => {
                return Err((
                    "certificate",
                    "`certificate` needs `private_key` (the certificate's RSA key, PEM)".into(),
                ))
            }
            (None, None, Some(_)) => {
                return Err((
                    "private_key",
                    "`private_key` needs `certificate` (the certificate uploaded to the app registration, PEM)"
                        .into(),
                ))
            }
            (None, None, None) => {
                return Err((
                    "client_secret",
                    "the app needs a credential: `client_secret = { env = \"…\" }`, or \
                     `certificate` and `private_key`"
                        .into(),
                ))
            }
        }
        if !(1..=MAX_PAGE_SIZE).contains(&self.page_size) {
            return Err((
                "page_size",
                format!("`page_size` must be between 1 and {MAX_PAGE_SIZE} (Graph's largest $top)"),
            ));
        }
        if self.concurrency == 0 {
            return Err(("concurrency", "`concurrency` must be at least 1".into()));
        }
        if self.max_attempts == 0 {
            return Err(("max_attempts", "`max_attempts` must be at least 1".into()));
        }
        if self
            .contact_folder
            .as_deref()
            .is_some_and(|f| f.trim().is_empty())
        {
            return Err((
                "contact_folder",
                "`contact_folder` is empty: name the folder (say \"Colleagues\") or leave it out"
                    .into(),
            ));
        }
        for (key, url) in [
            ("authority", self.authority.as_str()),
            ("graph_url", self.graph_url.as_str()),
        ] {
            if reqwest::Url::parse(url).is_err() {
                return Err((key, format!("`{key}` = \"{url}\" is not a URL")));
            }
        }
        if reqwest::Url::parse(&self.exchange_url()).is_err() {
            return Err((
                "exchange_url",
                format!("`exchange_url` = \"{}\" is not a URL", self.exchange_url()),
            ));
        }
        Ok(())
    }
}

fn default_authority() -> String {
    DEFAULT_AUTHORITY.to_string()
}

fn default_graph_url() -> String {
    DEFAULT_GRAPH_URL.to_string()
}

fn default_concurrency() -> usize {
    4
}

fn default_page_size() -> u32 {
    MAX_PAGE_SIZE
}

fn default_max_attempts() -> u32 {
    6
}

fn default_retry_base_delay_ms() -> u64 {
    500
}

fn default_retry_max_delay_ms() -> u64 {
    60_000
}

fn default_request_timeout_secs() -> u64 {
    120
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<M365Config, toml::de::Error> {
        toml::from_str(text)
    }

    #[test]
    fn a_minimal_secret_configuration_takes_the_documented_defaults() -> Result<(), toml::de::Error>
    {
        let config = parse(
            r#"tenant_id = "t1"
               client_id = "c1"
               client_secret = { env = "M365_SECRET" }"#,
        )?;
        assert_eq!(config.authority, "https://login.microsoftonline.com");
        assert_eq!(config.graph_url, "https://graph.microsoft.com/v1.0");
        assert_eq!(
            config.exchange_url(),
            "https://outlook.office365.com/adminapi/beta/t1"
        );
        assert_eq!(
            config.token_url(),
            "https://login.microsoftonline.com/t1/oauth2/v2.0/token"
        );
        assert_eq!(config.page_size, 999);
        assert_eq!(config.contact_folder, None);
        assert!(config.check().is_ok());
        Ok(())
    }

    #[test]
    fn a_certificate_needs_its_private_key_and_excludes_a_secret() -> Result<(), toml::de::Error> {
        let lone = parse(
            r#"tenant_id = "t"
               client_id = "c"
               certificate = { file = "c.pem" }"#,
        )?;
        assert_eq!(lone.check().err().map(|e| e.0), Some("certificate"));
        let both = parse(
            r#"tenant_id = "t"
               client_id = "c"
               client_secret = { env = "S" }
               certificate = { file = "c.pem" }
               private_key = { file = "k.pem" }"#,
        )?;
        assert_eq!(both.check().err().map(|e| e.0), Some("client_secret"));
        let none = parse(
            r#"tenant_id = "t"
               client_id = "c""#,
        )?;
        assert!(none.check().is_err());
        Ok(())
    }

    #[test]
    fn a_page_size_over_graphs_maximum_is_refused() -> Result<(), toml::de::Error> {
        let config = parse(
            r#"tenant_id = "t"
               client_id = "c"
               client_secret = { env = "S" }
               page_size = 1000"#,
        )?;
        assert_eq!(config.check().err().map(|e| e.0), Some("page_size"));
        Ok(())
    }

    #[test]
    fn unknown_keys_are_refused() {
        let result = parse(
            r#"tenant_id = "t"
               client_id = "c"
               client_secret = { env = "S" }
               tenant = "oops""#,
        );
        let message = result.err().map(|e| e.message().to_string());
        assert!(
            message.as_deref().is_some_and(|m| m.contains("tenant")),
            "{message:?}"
        );
    }
}
