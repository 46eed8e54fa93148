//! The old account of a person moved away (`coexist move`): its Gmail
//! forwards everything to the new home, and the user is marked so that a
//! read lists it as a forwarding entry.
//!
//! 1. Gmail API users.settings.forwardingAddresses.create
//!    (`{forwardingEmail}`; with domain-wide authority the address is
//!    accepted at once, no verification mail; 409 when it exists) and
//!    users.settings.updateAutoForwarding (`{enabled: true, emailAddress,
//!    disposition: "archive"}`: forwarded, a copy archived in the old
//!    mailbox, which no one reads any more), with a token acting as the
//!    user for `gmail.settings.sharing`
//!    (<https://developers.google.com/gmail/api/reference/rest/v1/users.settings>).
//! 2. Directory API users.patch adds the external id `{type: "custom",
//!    customType: "coexist-forward", value: <address>}` to the user's
//!    others (kept as they are), with the `provision` table's token; the
//!    Gmail settings are not in the Directory API, so this mark is how a
//!    pull knows the user forwards (`directory::FORWARD_MARK`).
//!
//! Both need the `provision` table (its scope) and the Gmail scope granted
//! to the service account's domain-wide delegation.

use coexist_connector::retry::{RateLimiter, RetryPolicy};
use coexist_connector::{ConnectorError, Recipient};
use reqwest::Method;
use reqwest::Url;
use serde_json::{json, Value};

use crate::auth::{ServiceAccountKey, TokenSource, GMAIL_SCOPES};
use crate::directory::FORWARD_MARK;
use crate::http::{Http, Request};
use crate::GoogleConnector;

/// What a Gmail settings client acting as one user is made of.
pub(crate) struct GmailAccess {
    pub key: ServiceAccountKey,
    pub client: reqwest::Client,
    pub retry: RetryPolicy,
    /// The Gmail API base URL (`gmail_url`).
    pub base: Url,
    pub requests_per_minute: u32,
}

impl GmailAccess {
    /// A client whose token acts as `user` for the Gmail settings.
    pub(crate) fn acting_as(&self, user: &str) -> Http {
        let tokens = TokenSource::new(self.key.clone(), user, self.client.clone(), self.retry)
            .with_scopes(&GMAIL_SCOPES);
        Http::new(
            self.client.clone(),
            tokens,
            RateLimiter::per_minute(self.requests_per_minute),
            1,
            self.retry,
        )
    }

    pub(crate) fn url(&self, user: &str, setting: &str) -> Result<Url, ConnectorError> {
        let mut url = self.base.clone();
        url.path_segments_mut()
            .map_err(|_| {
                ConnectorError::permanent(format!("the Gmail URL {} cannot take a path", self.base))
            })?
            .pop_if_empty()
            .extend(["gmail", "v1", "users", user, "settings", setting]);
        Ok(url)
    }
}

impl GoogleConnector {
    pub(crate) async fn forward_user(
        &self,
        recipient: &Recipient,
        to: &str,
    ) -> Result<(), ConnectorError> {
        let refuse = |why: &str| {
            ConnectorError::permanent(format!(
                "Google system `{}`: cannot forward {}: {why}",
                self.system, recipient.primary_address
            ))
        };
        let (Some(gmail), Some(directory)) = (&self.gmail, &self.provisioner) else {
            return Err(refuse(
                "its connection has no `provision` table (the user-management scope coexist needs to mark the user)",
            ));
        };
        let user = recipient.primary_address.as_str();
        let settings = gmail.acting_as(user);
        settings
            .execute(
                &format!("adding the forwarding address {to} to {user}"),
                &Request::get(gmail.url(user, "forwardingAddresses")?)
                    .json(Method::POST, &json!({ "forwardingEmail": to }))
                    .accepting(&[409]),
            )
            .await?;
        settings
            .execute(
                &format!("forwarding the mail of {user} to {to}"),
                &Request::get(gmail.url(user, "autoForwarding")?).json(
                    Method::PUT,
                    &json!({ "enabled": true, "emailAddress": to, "disposition": "archive" }),
                ),
            )
            .await?;

        // The mark, beside the user's other external ids.
        let url = self.directory.url(&["users", &recipient.anchor])?;
        let reply = directory
            .execute(
                &format!("reading the user {user}"),
                &Request::get(url.clone()),
            )
            .await?;
        let current: Value = reply.json(&format!("the user {user}"))?;
        let mut ids: Vec<Value> = current
            .get("externalIds")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        ids.retain(|id| id.get("customType").and_then(Value::as_str) != Some(FORWARD_MARK));
        ids.push(json!({ "type": "custom", "customType": FORWARD_MARK, "value": to }));
        directory
            .execute(
                &format!("marking {user} as forwarding to {to}"),
                &Request::get(url).json(Method::PATCH, &json!({ "externalIds": ids })),
            )
            .await?;
        Ok(())
    }
}
