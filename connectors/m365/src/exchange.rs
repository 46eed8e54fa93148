//! Exchange Online's admin REST transport: the one place that speaks it.
//!
//! The ExchangeOnlineManagement v3 module runs its cmdlets as
//! `POST {exchange_url}/InvokeCommand` with
//! `{"CmdletInput":{"CmdletName":"…","Parameters":{…}}}` and reads
//! `{"value":[…]}`, following `@odata.nextLink` (the same body posted to it)
//! for long results. The endpoint is not publicly documented, so nothing
//! outside this module knows its shape: the rest of the crate calls
//! [`Exchange::run`] or [`Exchange::run_all`] with a cmdlet and its
//! parameters, and reads the typed rows below. Each call is one request
//! (counted by the benchmark as one Exchange call), sent through the
//! shared client: its own token (resource `https://outlook.office365.com`),
//! 429 with `Retry-After` honoured, 5xx retried with backoff.
//!
//! The cmdlets' reference pages: Get-Recipient, Get-MailContact,
//! Get-Contact, New-MailContact, Set-MailContact, Set-Contact,
//! Remove-MailContact, Get-AcceptedDomain, Get-Mailbox, Set-Mailbox under
//! <https://learn.microsoft.com/powershell/module/exchange/>.

use coexist_connector::ConnectorError;
use reqwest::{Method, Url};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};

use crate::auth::Resource;
use crate::http::{parse_error, Http, Request};

/// The exception Exchange names for an identity it cannot find.
pub const NOT_FOUND: &str = "ManagementObjectNotFoundException";
/// The exception for a name another object already has.
pub const ALREADY_EXISTS: &str = "ADObjectAlreadyExistsException";

/// One cmdlet with its parameters.
#[derive(Debug, Clone, Serialize)]
pub struct Cmdlet {
    #[serde(rename = "CmdletName")]
    pub name: &'static str,
    #[serde(rename = "Parameters")]
    pub parameters: Map<String, Value>,
}

impl Cmdlet {
    pub fn new(name: &'static str) -> Self {
        Cmdlet {
            name,
            parameters: Map::new(),
        }
    }

    /// The cmdlet with `-name value`.
    pub fn with(mut self, name: &str, value: impl Into<Value>) -> Self {
        self.parameters.insert(name.to_string(), value.into());
        self
    }
}

#[derive(Serialize)]
struct Body<'a> {
    #[serde(rename = "CmdletInput")]
    input: &'a Cmdlet,
}

#[derive(Deserialize)]
struct Answer<T> {
    #[serde(default = "Vec::new")]
    value: Vec<T>,
    #[serde(default, rename = "@odata.nextLink")]
    next_link: Option<String>,
}

fn nullable<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

/// A cmdlet's failure: the error, and Exchange's exception type when it
/// named one (to tell "not found" and "already exists" apart).
#[derive(Debug)]
pub struct Failure {
    pub error: ConnectorError,
    pub exception: Option<String>,
}

impl Failure {
    /// Whether Exchange said the exception is `short` (the type's last
    /// segment, such as [`NOT_FOUND`]).
    pub fn is(&self, short: &str) -> bool {
        self.exception
            .as_deref()
            .is_some_and(|e| e.rsplit('.').next() == Some(short))
    }
}

impl From<ConnectorError> for Failure {
    fn from(error: ConnectorError) -> Self {
        Failure {
            error,
            exception: None,
        }
    }
}

/// The transport of one tenant.
#[derive(Debug, Clone)]
pub struct Exchange {
    invoke: Url,
}

impl Exchange {
    /// The transport at `base` (`…/adminapi/beta/{tenant}`).
    pub fn new(base: &str) -> Result<Self, ConnectorError> {
        let text = format!("{}/InvokeCommand", base.trim_end_matches('/'));
        let invoke = Url::parse(&text).map_err(|e| {
            ConnectorError::permanent(format!("the Exchange URL {text} is not a URL: {e}"))
        })?;
        Ok(Exchange { invoke })
    }

    /// Runs `cmdlet` once (one page of its results).
    pub async fn run<T: DeserializeOwned>(
        &self,
        http: &Http,
        cmdlet: &Cmdlet,
    ) -> Result<Vec<T>, Failure> {
        let (rows, _) = self.page(http, cmdlet, self.invoke.clone(), 1).await?;
        Ok(rows)
    }

    /// Runs `cmdlet` and reads every page of its results.
    pub async fn run_all<T: DeserializeOwned>(
        &self,
        http: &Http,
        cmdlet: &Cmdlet,
    ) -> Result<Vec<T>, Failure> {
        let mut rows = Vec::new();
        let mut next = Some(self.invoke.clone());
        let mut page = 1;
        while let Some(url) = next.take() {
            let (more, link) = self.page(http, cmdlet, url, page).await?;
            rows.extend(more);
            if let Some(link) = link {
                next = Some(Url::parse(&link).map_err(|e| {
                    Failure::from(ConnectorError::permanent(format!(
                        "{}: the next link `{link}` is not a URL: {e}",
                        cmdlet.name
                    )))
                })?);
                page += 1;
            }
        }
        Ok(rows)
    }

    async fn page<T: DeserializeOwned>(
        &self,
        http: &Http,
        cmdlet: &Cmdlet,
        url: Url,
        page: u32,
    ) -> Result<(Vec<T>, Option<String>), Failure> {
        let what = if page == 1 {
            format!("Exchange {}", cmdlet.name)
        } else {
            format!("Exchange {} page {page}", cmdlet.name)
        };
        let request = Request::json(
            Resource::Exchange,
            Method::POST,
            url,
            &Body { input: cmdlet },
        )?
        .accepting(&[400, 403, 404]);
        let reply = http.execute(&what, &request).await?;
        if reply.status.as_u16() == 403 {
            // Exchange refuses the app itself (no Exchange.ManageAsApp, or
            // no role): nothing it asks will be allowed.
            let diagnostics = reply
                .headers
                .get("x-ms-diagnostics")
                .and_then(|v| v.to_str().ok())
                .map(|d| format!(" ({d})"))
                .unwrap_or_default();
            return Err(Failure::from(ConnectorError::authentication(format!(
                "{what}: HTTP 403 Forbidden: Exchange Online refuses the app{diagnostics}; grant it \
                 Exchange.ManageAsApp and an Exchange role (Mail Recipients)"
            ))));
        }
        if !reply.status.is_success() {
            let exception =
                parse_error(&reply.body).and_then(|d| d.exception().map(str::to_string));
            return Err(Failure {
                error: crate::http::status_error(
                    &what,
                    reply.status,
                    crate::http::retry_after(&reply.headers),
                    &reply.body,
                ),
                exception,
            });
        }
        if reply.body.iter().all(u8::is_ascii_whitespace) {
            return Ok((Vec::new(), None));
        }
        let answer: Answer<T> = reply.json(&what)?;
        Ok((answer.value, answer.next_link))
    }
}

/// A row of Get-Recipient: which directory object it is and what kind of
/// recipient Exchange holds for it.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RecipientRow {
    #[serde(default)]
    pub external_directory_object_id: Option<String>,
    #[serde(default)]
    pub recipient_type_details: Option<String>,
    /// Where a mail user's mail goes (`SMTP:…`).
    #[serde(default)]
    pub external_email_address: Option<String>,
    /// Where a mailbox forwards (`smtp:…`), when asked for with
    /// `-Properties` ([`FORWARDING_PROPERTIES`]).
    #[serde(default)]
    pub forwarding_smtp_address: Option<String>,
    /// Whether a forwarding mailbox also keeps a copy.
    #[serde(default)]
    pub deliver_to_mailbox_and_forward: Option<bool>,
}

/// The properties Get-Recipient returns only when asked (`-Properties`):
/// a mailbox's forwarding, which `coexist move` sets.
pub const FORWARDING_PROPERTIES: [&str; 2] =
    ["ForwardingSmtpAddress", "DeliverToMailboxAndForward"];

/// A row of Get-MailContact.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct MailContactRow {
    #[serde(default)]
    pub guid: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub display_name: Option<String>,
    #[serde(default)]
    pub external_email_address: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    pub email_addresses: Vec<String>,
    #[serde(default)]
    pub custom_attribute1: Option<String>,
    #[serde(default)]
    pub custom_attribute2: Option<String>,
}

/// A row of Get-Contact: the person attributes Set-Contact writes.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ContactRow {
    #[serde(default)]
    pub guid: Option<String>,
    #[serde(default)]
    pub first_name: Option<String>,
    #[serde(default)]
    pub last_name: Option<String>,
    #[serde(default)]
    pub title: Option<String>,
    #[serde(default)]
    pub department: Option<String>,
    #[serde(default)]
    pub company: Option<String>,
    #[serde(default)]
    pub phone: Option<String>,
    #[serde(default)]
    pub mobile_phone: Option<String>,
}

/// A row of Get-AcceptedDomain.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct AcceptedDomainRow {
    #[serde(default)]
    pub domain_name: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
    /// `Authoritative`, `InternalRelay` or `ExternalRelay`.
    #[serde(default)]
    pub domain_type: Option<String>,
}

impl AcceptedDomainRow {
    pub fn domain(&self) -> Option<&str> {
        self.domain_name.as_deref().or(self.name.as_deref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cmdlet_is_sent_as_the_module_sends_it() -> Result<(), serde_json::Error> {
        let cmdlet = Cmdlet::new("Remove-MailContact").with("Identity", "abc");
        let body = serde_json::to_value(Body { input: &cmdlet })?;
        assert_eq!(
            body,
            serde_json::json!({"CmdletInput": {"CmdletName": "Remove-MailContact", "Parameters": {"Identity": "abc"}}})
        );
        Ok(())
    }

    #[test]
    fn a_failure_knows_its_exception_by_its_short_name() {
        let failure = Failure {
            error: ConnectorError::permanent("x"),
            exception: Some(
                "Microsoft.Exchange.Configuration.Tasks.ManagementObjectNotFoundException".into(),
            ),
        };
        assert!(failure.is(NOT_FOUND));
        assert!(!failure.is(ALREADY_EXISTS));
    }
}
