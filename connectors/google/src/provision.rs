//! Creating a user (`coexist provision`): Directory API users.insert
//! (<https://developers.google.com/admin-sdk/directory/reference/rest/v1/users/insert>)
//! with the names, the initial password (to change at first login) and the
//! org unit of the `provision` table (or `--attribute org_unit=/Path`),
//! then users.aliases.insert for each alias, then users.get, mapped as a
//! pull maps users. A user that exists already with this primary address
//! (a rerun after a crash) is carried on with; an address another user or
//! group holds is refused.

use coexist_connector::{ConnectorError, NewAccount, Provisioned};
use reqwest::Method;
use serde_json::{json, Value};

use crate::directory::{user_to_recipient, User};
use crate::http::Request;
use crate::GoogleConnector;

/// The names of `--attribute` Google understands besides coexist's own.
const EXTRA: [&str; 1] = ["org_unit"];

impl GoogleConnector {
    pub(crate) async fn create_user(
        &self,
        account: &NewAccount,
    ) -> Result<Provisioned, ConnectorError> {
        let refuse = |message: String| {
            ConnectorError::permanent(format!(
                "Google system `{}`: cannot create {}: {message}",
                self.system, account.primary_address
            ))
        };
        let (Some(template), Some(http)) = (&self.config.provision, &self.provisioner) else {
            return Err(refuse(
                "its connection has no `provision` table (where and how to create users)".into(),
            ));
        };
        if let Some(name) = account.extra.keys().find(|k| !EXTRA.contains(&k.as_str())) {
            return Err(refuse(format!(
                "Google knows no attribute `{name}` (besides coexist's, only {})",
                EXTRA.join(", ")
            )));
        }
        let a = &account.attributes;
        let (Some(given), Some(family)) = (&a.given_name, &a.surname) else {
            return Err(refuse(
                "Google requires a given name and a surname (--given-name, --surname)".into(),
            ));
        };
        let Some(password) = &account.password else {
            return Err(refuse("Google requires an initial password".into()));
        };
        let org_unit = account
            .extra
            .get("org_unit")
            .or(template.org_unit_path.as_ref())
            .map_or("/", String::as_str);
        let mut body = json!({
            "primaryEmail": account.primary_address,
            "name": { "givenName": given, "familyName": family },
            "password": password.expose(),
            "changePasswordAtNextLogin": true,
            "orgUnitPath": org_unit,
        });
        if a.title.is_some() || a.department.is_some() {
            body["organizations"] = json!([{
                "title": a.title.clone().unwrap_or_default(),
                "department": a.department.clone().unwrap_or_default(),
                "primary": true,
            }]);
        }
        let what = format!("creating the user {}", account.primary_address);
        let url = self.directory.url(&["users"])?;
        let reply = http
            .execute(
                &what,
                &Request::get(url)
                    .json(Method::POST, &body)
                    .accepting(&[409]),
            )
            .await?;
        let existed = reply.status.as_u16() == 409;
        let mut user = if existed {
            // Taken: ours from an earlier run only if it is this address's
            // own user (not an alias of another, not a group).
            let user = self.get_user(http, &account.primary_address).await?;
            let own = user
                .as_ref()
                .and_then(|u| u.primary_email.as_deref())
                .is_some_and(|p| p.eq_ignore_ascii_case(&account.primary_address));
            match user {
                Some(user) if own => user,
                _ => {
                    return Err(refuse(
                        "the address belongs to another user or a group of Google".into(),
                    ))
                }
            }
        } else {
            parse_user(&reply.body, &what)?
        };
        let id = user.id.clone().unwrap_or_default();
        for alias in &account.aliases {
            if user.aliases.iter().any(|a| a.eq_ignore_ascii_case(alias)) {
                continue;
            }
            let url = self.directory.url(&["users", &id, "aliases"])?;
            let what = format!("adding the alias {alias} to {}", account.primary_address);
            let reply = http
                .execute(
                    &what,
                    &Request::get(url)
                        .json(Method::POST, &json!({ "alias": alias }))
                        .accepting(&[409]),
                )
                .await?;
            if reply.status.as_u16() == 409 {
                return Err(refuse(format!(
                    "the alias {alias} belongs to another user or group of Google (the user {} was made without it)",
                    account.primary_address
                )));
            }
        }
        if !account.aliases.is_empty() {
            user = self
                .get_user(http, &id)
                .await?
                .ok_or_else(|| refuse("the new user cannot be read back".into()))?;
        }
        let mut notes = Vec::new();
        if user.is_mailbox_setup == Some(false) {
            notes.push(
                "Google sets the Gmail mailbox up in the background (isMailboxSetup is false): mail may be refused for some minutes".into(),
            );
        }
        if existed {
            notes.push("the user existed already: its password was not changed".into());
        }
        let recipient = user_to_recipient(&user).map_err(|p| refuse(p.message))?;
        Ok(Provisioned {
            locator: format!("users/{id}"),
            recipient,
            existed,
            notes,
        })
    }

    /// Suspends the user (users.patch `suspended: true`), with the
    /// provisioning client: the recipient's anchor is the user's id.
    pub(crate) async fn suspend_user(
        &self,
        recipient: &coexist_connector::Recipient,
    ) -> Result<(), ConnectorError> {
        let Some(http) = &self.provisioner else {
            return Err(ConnectorError::permanent(format!(
                "Google system `{}`: cannot suspend {}: its connection has no `provision` table",
                self.system, recipient.primary_address
            )));
        };
        let url = self.directory.url(&["users", &recipient.anchor])?;
        let what = format!("suspending the user {}", recipient.primary_address);
        http.execute(
            &what,
            &Request::get(url).json(Method::PATCH, &json!({ "suspended": true })),
        )
        .await?;
        Ok(())
    }

    /// users.get of `key` (an address or an id); `None` when there is none.
    pub(crate) async fn get_user(
        &self,
        http: &crate::http::Http,
        key: &str,
    ) -> Result<Option<User>, ConnectorError> {
        let url = self.directory.url(&["users", key])?;
        let what = format!("reading the user {key}");
        let reply = http
            .execute(&what, &Request::get(url).accepting(&[404]))
            .await?;
        if reply.status.as_u16() == 404 {
            return Ok(None);
        }
        parse_user(&reply.body, &what).map(Some)
    }
}

fn parse_user(body: &[u8], what: &str) -> Result<User, ConnectorError> {
    serde_json::from_slice::<Value>(body)
        .and_then(serde_json::from_value)
        .map_err(|e| ConnectorError::permanent(format!("{what}: an unexpected answer: {e}")))
}
