//! The configuration of a Google Workspace system.

use coexist_connector::SecretRef;
use serde::{Deserialize, Deserializer};

/// The largest `maxResults` of `users.list`
/// (<https://developers.google.com/admin-sdk/directory/reference/rest/v1/users/list>).
pub const MAX_PAGE_SIZE_USERS: u32 = 500;
/// The largest `maxResults` of `groups.list` and `members.list`
/// (<https://developers.google.com/admin-sdk/directory/reference/rest/v1/groups/list>,
/// <https://developers.google.com/admin-sdk/directory/reference/rest/v1/members/list>).
pub const MAX_PAGE_SIZE_GROUPS: u32 = 200;
/// The most operations one batch request takes: a limit of the Domain Shared
/// Contacts API rather than a setting, defined beside the batch document in
/// [`crate::contacts`].
pub use crate::contacts::MAX_BATCH_OPERATIONS;

/// How coexist reaches one Google Workspace customer: the `connection`
/// table of a `kind = "google"` system.
///
/// Every field but `domain`, `admin` and `service_account_key` has a default,
/// so a minimal system reads as below. The routing domain is the system's
/// (`routing_domain` beside `kind`), not a connection setting: coexist hands
/// it to the connector.
///
/// ```
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let file: toml::Table = toml::from_str(
///     r#"
/// [[systems]]
/// id = "google"
/// kind = "google"
/// routing_domain = "gapps.acmecorp.com"
///
/// [systems.connection]
/// domain = "acmecorp.com"
/// admin = "coexist-admin@acmecorp.com"
/// service_account_key = { file = "/etc/coexist/google-key.json" }
/// "#,
/// )?;
/// let connection = file["systems"][0]["connection"].clone();
/// let config: coexist_google::GoogleConfig = connection.try_into()?;
/// assert_eq!(config.domain, "acmecorp.com");
/// assert_eq!(config.admin, "coexist-admin@acmecorp.com");
/// assert_eq!(config.customer, "my_customer");
/// assert_eq!(config.routing_domain, None, "coexist fills it in from the system");
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GoogleConfig {
    /// The customer whose users and groups are read: `my_customer` (the
    /// admin's own customer) or a customer id such as `C03az79cb`.
    #[serde(default = "default_customer")]
    pub customer: String,
    /// The primary domain; the shared contacts live in its feed.
    pub domain: String,
    /// The super admin that the service account impersonates (the JWT `sub`)
    /// through domain-wide delegation.
    pub admin: String,
    /// The service account's JSON key file. Its `token_uri` is where tokens
    /// are requested (tests point it at a fake).
    pub service_account_key: SecretRef,
    /// The Admin SDK Directory API base URL, ending in `/`.
    #[serde(default = "default_directory_url")]
    pub directory_url: String,
    /// The Domain Shared Contacts API base URL, ending in `/`; the feed is
    /// `<contacts_url><domain>/full`.
    #[serde(default = "default_contacts_url")]
    pub contacts_url: String,
    /// The Gmail API base URL, ending in `/` (`coexist move` sets the
    /// forwarding of an old account through it).
    #[serde(default = "default_gmail_url")]
    pub gmail_url: String,
    /// The client-side request budget (Google's default quota is 2,400
    /// queries a minute per user per project). Token requests are not counted.
    #[serde(default = "default_requests_per_minute")]
    pub requests_per_minute: u32,
    /// The most requests in flight at once.
    #[serde(default = "default_concurrency")]
    pub concurrency: usize,
    /// `maxResults` of `users.list` (at most 500).
    #[serde(default = "default_page_size_users")]
    pub page_size_users: u32,
    /// `maxResults` of `groups.list` and `members.list` (at most 200).
    #[serde(default = "default_page_size_groups")]
    pub page_size_groups: u32,
    /// `max-results` of the shared contacts feed.
    #[serde(default = "default_page_size_contacts")]
    pub page_size_contacts: u32,
    /// Attempts in all for a request that fails transiently (throttled, 5xx).
    #[serde(default = "default_max_attempts")]
    pub max_attempts: u32,
    /// The system's routing domain (`[[systems]] routing_domain`): the
    /// domain alias that delivers straight to Google (the seeds'
    /// `gapps.acmecorp.com`), which `coexist doctor` checks. Not read from
    /// the connection table: coexist sets it from the system.
    #[serde(skip)]
    pub routing_domain: Option<String>,
    /// `routing_domain` written in the connection table, as older versions
    /// read it: refused with a message saying where it belongs.
    #[serde(default, rename = "routing_domain")]
    #[allow(dead_code)] // never read: only refusing to deserialize matters
    moved_routing_domain: MovedRoutingDomain,
    /// The name of the contacts' extended property that holds coexist's
    /// marker.
    #[serde(default = "default_marker_property")]
    pub marker_property: String,
    /// The backoff ceiling of the first retry, in milliseconds (it doubles
    /// with each attempt, with full jitter).
    #[serde(default = "default_retry_base_delay_ms")]
    pub retry_base_delay_ms: u64,
    /// The longest wait between two attempts, in milliseconds; a server's
    /// `Retry-After` is honoured up to this.
    #[serde(default = "default_retry_max_delay_ms")]
    pub retry_max_delay_ms: u64,
    /// Seconds a single HTTP request may take before it counts as a
    /// transient failure.
    #[serde(default = "default_request_timeout_secs")]
    pub request_timeout_secs: u64,
    /// How `coexist provision` creates users (the `provision` table);
    /// without it, Google is never a provisioned person's home.
    #[serde(default)]
    pub provision: Option<GoogleProvision>,
}

/// The `provision` table of a Google connection: users are made with
/// Directory API users.insert (scope `admin.directory.user`, which the
/// service account's domain-wide delegation must grant), and the old
/// users of people moved away are retired as `retire` says.
///
/// ```toml
/// [systems.connection.provision]
/// org_unit_path = "/Management"
/// retire = "rename"
/// retired_address = "retired.{local}@{domain}"
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GoogleProvision {
    /// The organisational unit new users are placed in (default `/`, the
    /// top); `--attribute org_unit=/Path` chooses another for one person.
    #[serde(default)]
    pub org_unit_path: Option<String>,
    /// How `coexist move --finish` retires the old user of a person moved
    /// away from Google, whose primary address only a rename or a delete
    /// frees: `"rename"` (the user renamed to `retired_address`, the
    /// person's addresses Google keeps as aliases deleted, coexist's
    /// forward turned off, the user suspended; its mail stays) or
    /// `"delete"` (users.delete: the user and its mail go, restorable by
    /// an admin for 20 days). Absent: `--finish` is refused.
    #[serde(default)]
    pub retire: Option<String>,
    /// With `retire = "rename"`: the address the old user is renamed to,
    /// `{local}` and `{domain}` standing for the parts of its primary
    /// address (default `retired.{local}@{domain}`). Its domain must be
    /// the primary or a secondary domain of the Google account (not a
    /// domain alias).
    #[serde(default)]
    pub retired_address: Option<String>,
}

/// The default of [`GoogleProvision::retired_address`].
pub const DEFAULT_RETIRED_ADDRESS: &str = "retired.{local}@{domain}";

/// How an old user is retired (`retire` of the `provision` table).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Retirement {
    /// Renamed to the pattern's address (`{local}`, `{domain}` replaced),
    /// the person's aliases deleted, suspended.
    Rename {
        /// The address pattern.
        pattern: String,
    },
    /// Deleted (users.delete).
    Delete,
}

impl Retirement {
    /// The address the user whose primary address is `primary` is renamed
    /// to (`None` for a delete, or when `primary` is no address).
    pub fn renamed(&self, primary: &str) -> Option<String> {
        let Retirement::Rename { pattern } = self else {
            return None;
        };
        let (local, domain) = primary.rsplit_once('@')?;
        Some(
            pattern
                .replace("{local}", local)
                .replace("{domain}", domain)
                .to_ascii_lowercase(),
        )
    }
}

impl GoogleProvision {
    /// The retirement `retire` and `retired_address` describe, `None`
    /// without `retire`; `Err` says what is wrong, naming the setting.
    pub fn retirement(&self) -> Result<Option<Retirement>, String> {
        match (self.retire.as_deref(), &self.retired_address) {
            (None, None) => Ok(None),
            (None, Some(_)) => Err(
                "`retired_address` is set but `retire` is not: add `retire = \"rename\"` to the `provision` table"
                    .into(),
            ),
            (Some("delete"), Some(_)) => Err(
                "`retired_address` applies to `retire = \"rename\"` only (a deleted user keeps no address)"
                    .into(),
            ),
            (Some("delete"), None) => Ok(Some(Retirement::Delete)),
            (Some("rename"), pattern) => {
                let pattern = pattern
                    .as_deref()
                    .unwrap_or(DEFAULT_RETIRED_ADDRESS)
                    .trim()
                    .to_string();
                let valid = pattern.split_once('@').is_some_and(|(local, domain)| {
                    local.contains("{local}")
                        && local != "{local}"
                        && !domain.is_empty()
                        && !domain.contains('@')
                        && !domain.contains("{local}")
                        && !local.contains("{domain}")
                });
                let unknown = pattern
                    .replace("{local}", "")
                    .replace("{domain}", "")
                    .contains(['{', '}']);
                if !valid || unknown {
                    return Err(format!(
                        "`retired_address = \"{pattern}\"` must be an address whose local part holds `{{local}}` and something more (so it differs from the person's), and whose domain is `{{domain}}` or a domain of the Google account, such as \"{DEFAULT_RETIRED_ADDRESS}\""
                    ));
                }
                Ok(Some(Retirement::Rename { pattern }))
            }
            (Some(other), _) => Err(format!(
                "`retire = \"{other}\"` is not a way to retire a Google user: expected \"rename\" or \"delete\""
            )),
        }
    }
}

impl GoogleConfig {
    /// A configuration with every default filled in.
    pub fn new(
        domain: impl Into<String>,
        admin: impl Into<String>,
        service_account_key: SecretRef,
    ) -> Self {
        GoogleConfig {
            customer: default_customer(),
            domain: domain.into(),
            admin: admin.into(),
            service_account_key,
            directory_url: default_directory_url(),
            contacts_url: default_contacts_url(),
            gmail_url: default_gmail_url(),
            requests_per_minute: default_requests_per_minute(),
            concurrency: default_concurrency(),
            page_size_users: default_page_size_users(),
            page_size_groups: default_page_size_groups(),
            page_size_contacts: default_page_size_contacts(),
            max_attempts: default_max_attempts(),
            routing_domain: None,
            moved_routing_domain: MovedRoutingDomain,
            marker_property: default_marker_property(),
            retry_base_delay_ms: default_retry_base_delay_ms(),
            retry_max_delay_ms: default_retry_max_delay_ms(),
            request_timeout_secs: default_request_timeout_secs(),
            provision: None,
        }
    }

    /// Checks the values serde cannot: required text that is blank, page
    /// sizes beyond what the API allows, counts that must be at least one.
    /// `Err` says what is wrong, naming the setting.
    pub(crate) fn check(&self) -> Result<(), String> {
        if self.domain.trim().is_empty() {
            return Err("`domain` is empty".into());
        }
        if self.admin.trim().is_empty() {
            return Err("`admin` is empty".into());
        }
        if !(1..=MAX_PAGE_SIZE_USERS).contains(&self.page_size_users) {
            return Err(format!(
                "`page_size_users` must be between 1 and {MAX_PAGE_SIZE_USERS} (users.list maxResults)"
            ));
        }
        if !(1..=MAX_PAGE_SIZE_GROUPS).contains(&self.page_size_groups) {
            return Err(format!(
                "`page_size_groups` must be between 1 and {MAX_PAGE_SIZE_GROUPS} (groups.list and members.list maxResults)"
            ));
        }
        if self.page_size_contacts == 0 {
            return Err("`page_size_contacts` must be at least 1".into());
        }
        if self.concurrency == 0 {
            return Err("`concurrency` must be at least 1".into());
        }
        if self.max_attempts == 0 {
            return Err("`max_attempts` must be at least 1".into());
        }
        if let Some(provision) = &self.provision {
            provision
                .retirement()
                .map_err(|e| format!("[provision]: {e}"))?;
        }
        Ok(())
    }
}

/// Stands for `routing_domain` in a connection table, which is refused: it
/// never deserializes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct MovedRoutingDomain;

impl<'de> Deserialize<'de> for MovedRoutingDomain {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = String::deserialize(deserializer)?;
        Err(serde::de::Error::custom(format!(
            "`routing_domain` is no longer a setting of the Google connection: move \
             `routing_domain = \"{value}\"` to the system itself (under `[[systems]]`, beside \
             `kind = \"google\"`), where every system's routing domain is written"
        )))
    }
}

fn default_customer() -> String {
    "my_customer".to_string()
}

fn default_directory_url() -> String {
    "https://admin.googleapis.com/admin/directory/v1/".to_string()
}

fn default_contacts_url() -> String {
    "https://www.google.com/m8/feeds/contacts/".to_string()
}

fn default_gmail_url() -> String {
    "https://gmail.googleapis.com/".to_string()
}

fn default_requests_per_minute() -> u32 {
    2400
}

fn default_concurrency() -> usize {
    8
}

fn default_page_size_users() -> u32 {
    MAX_PAGE_SIZE_USERS
}

fn default_page_size_groups() -> u32 {
    MAX_PAGE_SIZE_GROUPS
}

fn default_page_size_contacts() -> u32 {
    1000
}

fn default_max_attempts() -> u32 {
    6
}

fn default_marker_property() -> String {
    "coexist".to_string()
}

fn default_retry_base_delay_ms() -> u64 {
    500
}

fn default_retry_max_delay_ms() -> u64 {
    32_000
}

fn default_request_timeout_secs() -> u64 {
    120
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_minimal_configuration_takes_the_documented_defaults() -> Result<(), serde_json::Error> {
        let config: GoogleConfig = serde_json::from_str(
            r#"{"domain":"acmecorp.com","admin":"admin@acmecorp.com",
                "service_account_key":{"file":"/etc/coexist/key.json"}}"#,
        )?;
        assert_eq!(config.customer, "my_customer");
        assert_eq!(
            config.directory_url,
            "https://admin.googleapis.com/admin/directory/v1/"
        );
        assert_eq!(
            config.contacts_url,
            "https://www.google.com/m8/feeds/contacts/"
        );
        assert_eq!(config.requests_per_minute, 2400);
        assert_eq!(config.concurrency, 8);
        assert_eq!(config.page_size_users, 500);
        assert_eq!(config.page_size_groups, 200);
        assert_eq!(config.max_attempts, 6);
        assert_eq!(config.routing_domain, None);
        Ok(())
    }

    #[test]
    fn routing_domain_in_the_connection_table_is_refused_saying_where_it_belongs() {
        let old_style = r#"
            domain = "acmecorp.com"
            admin = "admin@acmecorp.com"
            service_account_key = { file = "/etc/coexist/key.json" }
            routing_domain = "gapps.acmecorp.com"
        "#;

        let result: Result<GoogleConfig, _> = toml::from_str(old_style);

        let Err(error) = result else {
            panic!("an old configuration was accepted: {result:?}");
        };
        let message = error.message();
        assert!(
            message.contains("no longer a setting of the Google connection"),
            "{message}"
        );
        assert!(
            message.contains(r#"routing_domain = "gapps.acmecorp.com""#),
            "{message}"
        );
        assert!(message.contains("[[systems]]"), "{message}");
    }

    #[test]
    fn the_routing_domain_is_never_read_from_the_connection() -> Result<(), toml::de::Error> {
        let config: GoogleConfig = toml::from_str(
            r#"
            domain = "acmecorp.com"
            admin = "admin@acmecorp.com"
            service_account_key = { env = "KEY" }
        "#,
        )?;
        assert_eq!(config.routing_domain, None);
        Ok(())
    }

    #[test]
    fn unknown_fields_are_refused() {
        let result: Result<GoogleConfig, _> = serde_json::from_str(
            r#"{"domain":"acmecorp.com","admin":"admin@acmecorp.com",
                "service_account_key":{"env":"KEY"},"page_sise_users":10}"#,
        );
        assert!(result.is_err());
    }
}
