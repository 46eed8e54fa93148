//! Creating a user with a mailbox (`coexist provision --home <m365>`):
//!
//! 1. `POST /users` (<https://learn.microsoft.com/graph/api/user-post-users>)
//!    with the names, `mailNickname` (the primary's local part), the
//!    primary address as `userPrincipalName`, the `usage_location` of the
//!    `provision` table and the initial password, to change at first
//!    sign-in. A UPN taken already by a user (a rerun after a crash) is
//!    carried on with.
//! 2. `POST /users/{id}/assignLicense`
//!    (<https://learn.microsoft.com/graph/api/user-assignlicense>) of the
//!    table's `license_sku_id`, whose plans must include Exchange Online.
//! 3. Exchange Online makes the mailbox asynchronously: Get-Recipient is
//!    asked every `mailbox_poll_seconds` until the user is a `UserMailbox`,
//!    for at most `mailbox_wait_seconds`; the command says how long it
//!    took, or that the mailbox is not there yet (mail to the person
//!    bounces until it is; run `provision` again to finish).
//! 4. Aliases: `Set-Mailbox -EmailAddresses` with the mailbox's addresses
//!    and the aliases (proxy addresses are read-only in Graph).

use std::time::{Duration, Instant};

use coexist_connector::{ConnectorError, NewAccount, Provisioned};
use reqwest::Method;
use serde::Deserialize;
use serde_json::json;

use crate::auth::Resource;
use crate::exchange::Cmdlet;
use crate::graph::{self, User, USER_SELECT};
use crate::http::Request;
use crate::recipients::{self, MailboxType};
use crate::M365Connector;

/// The `provision` table of a Microsoft 365 connection: how users are
/// made.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct M365Provision {
    /// The two-letter country code Graph needs before it assigns a license
    /// (`usageLocation`, such as `FR`).
    pub usage_location: String,
    /// The `skuId` (a GUID, from `GET /subscribedSkus`) of the license to
    /// assign; its plans must include Exchange Online.
    pub license_sku_id: String,
    /// How long to wait for Exchange Online to make the mailbox (default
    /// 300 seconds).
    #[serde(default = "default_wait")]
    pub mailbox_wait_seconds: u64,
    /// How often to ask whether it is there (default 10 seconds).
    #[serde(default = "default_poll")]
    pub mailbox_poll_seconds: u64,
}

fn default_wait() -> u64 {
    300
}

fn default_poll() -> u64 {
    10
}

/// The names of `--attribute` Microsoft 365 understands besides coexist's.
const EXTRA: [&str; 1] = ["usage_location"];

/// Graph's words for a UPN another object holds.
const TAKEN: &str = "Another object with the same value for property userPrincipalName";

impl M365Connector {
    pub(crate) async fn create_user(
        &self,
        account: &NewAccount,
    ) -> Result<Provisioned, ConnectorError> {
        let refuse = |message: String| {
            ConnectorError::permanent(format!(
                "Microsoft 365 system `{}`: cannot create {}: {message}",
                self.system, account.primary_address
            ))
        };
        let Some(template) = &self.config.provision else {
            return Err(refuse(
                "its connection has no `provision` table (usage_location, license_sku_id)".into(),
            ));
        };
        if let Some(name) = account.extra.keys().find(|k| !EXTRA.contains(&k.as_str())) {
            return Err(refuse(format!(
                "Microsoft 365 knows no attribute `{name}` (besides coexist's, only {})",
                EXTRA.join(", ")
            )));
        }
        let Some(password) = &account.password else {
            return Err(refuse("Microsoft 365 requires an initial password".into()));
        };
        let a = &account.attributes;
        let usage_location = account
            .extra
            .get("usage_location")
            .unwrap_or(&template.usage_location);
        let mut body = json!({
            "accountEnabled": true,
            "displayName": account.display_name(),
            "mailNickname": account.local_part(),
            "userPrincipalName": account.primary_address,
            "usageLocation": usage_location,
            "passwordProfile": {
                "forceChangePasswordNextSignIn": true,
                "password": password.expose(),
            },
        });
        for (key, value) in [
            ("givenName", &a.given_name),
            ("surname", &a.surname),
            ("jobTitle", &a.title),
            ("department", &a.department),
            ("companyName", &a.company),
            ("mobilePhone", &a.mobile_phone),
        ] {
            if let Some(value) = value {
                body[key] = json!(value);
            }
        }
        if let Some(phone) = &a.business_phone {
            body["businessPhones"] = json!([phone]);
        }
        let what = format!("creating the user {}", account.primary_address);
        let url = graph::url(self.graph_url(), "users")?;
        let request = Request::json(Resource::Graph, Method::POST, url, &body)?.accepting(&[400]);
        let reply = self.http.execute(&what, &request).await?;
        let (id, existed) = if reply.status.is_success() {
            let made: User = reply.json(&what)?;
            (made.id, false)
        } else if String::from_utf8_lossy(&reply.body).contains(TAKEN) {
            match self.read_user(&account.primary_address).await? {
                Some(user) => (user.id, true),
                None => return Err(refuse("Graph says the address is taken, but no user has it as its user principal name".into())),
            }
        } else {
            return Err(crate::http::status_error(
                &what,
                reply.status,
                None,
                &reply.body,
            ));
        };

        let what = format!("assigning the license to {}", account.primary_address);
        let url = graph::url(self.graph_url(), &format!("users/{id}/assignLicense"))?;
        let body = json!({
            "addLicenses": [{ "skuId": template.license_sku_id, "disabledPlans": [] }],
            "removeLicenses": [],
        });
        self.http
            .execute(
                &what,
                &Request::json(Resource::Graph, Method::POST, url, &body)?,
            )
            .await?;

        let mut notes = Vec::new();
        let started = Instant::now();
        let wait = Duration::from_secs(template.mailbox_wait_seconds);
        let poll = Duration::from_secs(template.mailbox_poll_seconds.max(1));
        let ids = [id.clone()];
        let mailbox = loop {
            let types = self.mailbox_types(Some(&ids)).await?;
            if let Some(found) = types.get(&id).filter(|t| matches!(t, MailboxType::User)) {
                break Some(found.clone());
            }
            if started.elapsed() + poll > wait {
                break None;
            }
            tracing::info!(user = %account.primary_address, "waiting for Exchange Online to make the mailbox");
            tokio::time::sleep(poll).await;
        };
        match &mailbox {
            Some(_) if started.elapsed() >= poll => notes.push(format!(
                "Exchange Online made the mailbox in {} s",
                started.elapsed().as_secs()
            )),
            Some(_) => {}
            None => notes.push(format!(
                "Exchange Online has not made the mailbox within {} s (it usually takes minutes): mail to {} bounces until it does, and its aliases are not set yet; run the same `coexist provision` again to finish",
                template.mailbox_wait_seconds, account.primary_address
            )),
        }

        let mut user = self
            .read_user(&id)
            .await?
            .ok_or_else(|| refuse("the new user cannot be read back".into()))?;
        let missing: Vec<&String> = account
            .aliases
            .iter()
            .filter(|alias| {
                !user
                    .proxy_addresses
                    .iter()
                    .any(|p| p.get(5..).is_some_and(|a| a.eq_ignore_ascii_case(alias)))
            })
            .collect();
        if mailbox.is_some() && !missing.is_empty() {
            let mut addresses = user.proxy_addresses.clone();
            addresses.extend(missing.iter().map(|alias| format!("smtp:{alias}")));
            let cmdlet = Cmdlet::new("Set-Mailbox")
                .with("Identity", id.clone())
                .with("EmailAddresses", addresses);
            self.exchange
                .run::<serde_json::Value>(&self.http, &cmdlet)
                .await
                .map_err(|f| {
                    f.error
                        .context(format!("adding the aliases of {}", account.primary_address))
                })?;
            user = self
                .read_user(&id)
                .await?
                .ok_or_else(|| refuse("the new user cannot be read back".into()))?;
        }
        if existed {
            notes.push("the user existed already: its password was not changed".into());
        }
        let recipient = recipients::user_to_recipient(&user, mailbox.as_ref())
            .ok_or_else(|| refuse("the new user has no address yet".into()));
        let recipient = match recipient {
            Ok(r) => r,
            // No mailbox yet: Graph shows no mail address; the account is
            // there, its addresses come with the mailbox.
            Err(e) if mailbox.is_none() => {
                return Err(e.context("the account was made and licensed; run `coexist provision` again once Exchange Online made the mailbox"))
            }
            Err(e) => return Err(e),
        };
        Ok(Provisioned {
            locator: format!("users/{id}"),
            recipient,
            existed,
            notes,
        })
    }

    /// Disables the sign-in of `recipient`'s user (`PATCH /users/{id}`,
    /// `accountEnabled: false`); its mailbox and mail stay. The app needs
    /// `User.ReadWrite.All`.
    pub(crate) async fn suspend_user(
        &self,
        recipient: &coexist_connector::Recipient,
    ) -> Result<(), ConnectorError> {
        let url = graph::url(self.graph_url(), &format!("users/{}", recipient.anchor))?;
        let what = format!("suspending the user {}", recipient.primary_address);
        let body = json!({ "accountEnabled": false });
        self.http
            .execute(
                &what,
                &Request::json(Resource::Graph, Method::PATCH, url, &body)?,
            )
            .await?;
        Ok(())
    }

    /// `GET /users/{key}` (an id or a UPN) with what coexist reads; `None`
    /// when there is none.
    async fn read_user(&self, key: &str) -> Result<Option<User>, ConnectorError> {
        let url = graph::url(
            self.graph_url(),
            &format!("users/{key}?$select={USER_SELECT}"),
        )?;
        let what = format!("reading the user {key}");
        let reply = self
            .http
            .execute(&what, &Request::get(Resource::Graph, url).accepting(&[404]))
            .await?;
        if reply.status.as_u16() == 404 {
            return Ok(None);
        }
        reply.json(&what).map(Some)
    }
}
