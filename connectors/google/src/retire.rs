//! The old user of a person moved away, retired (`coexist move --finish`),
//! as the `provision` table's `retire` says. A Google user's primary
//! address is only freed by renaming the user or deleting it, so
//! suspending it (as on the other kinds) is not enough for coexist's stub
//! to carry the person's addresses.
//!
//! Only the user coexist made forward is touched: the one the move's
//! record names (its id, the recipient's anchor), and only while it still
//! carries coexist's forward mark with the value coexist set (or, with
//! `retire = "rename"`, once it no longer holds the primary address the
//! rename took away: a retirement under way, which a rerun completes).
//!
//! `retire = "rename"`, each step skipped when a read shows it done:
//!
//! 1. users.update `{primaryEmail: <retired_address>}`
//!    (<https://developers.google.com/admin-sdk/directory/reference/rest/v1/users/update>);
//!    Google keeps the old primary address as an alias of the renamed
//!    user (the Directory API guide, "Update a user"), so mail to it is
//!    still forwarded;
//! 2. users.aliases.delete of each of the person's addresses the user
//!    holds as an alias, the old primary included
//!    (<https://developers.google.com/admin-sdk/directory/reference/rest/v1/users.aliases/delete>);
//!    from then on, mail to them at Google is for no user and takes the
//!    domain's catch-all (split delivery) to the new home;
//! 3. Gmail users.settings.getAutoForwarding, acting as the renamed user,
//!    and updateAutoForwarding `{enabled: false}` when it forwards to
//!    exactly coexist's address (a forward someone else set is kept);
//! 4. users.update `{suspended: true, externalIds: <the user's own>}`:
//!    suspended and coexist's mark taken off (update rather than patch:
//!    patch cannot clear a list of objects, which the user's external ids
//!    may become). Its mail stays.
//!
//! `retire = "delete"`: users.delete
//! (<https://developers.google.com/admin-sdk/directory/reference/rest/v1/users/delete>);
//! Google keeps a deleted user restorable by an admin for 20 days (Admin
//! Help, "Restore a recently deleted user"). A user already gone is
//! retired.

use std::collections::BTreeSet;

use coexist_connector::{ConnectorError, Recipient};
use reqwest::Method;
use serde_json::{json, Value};

use crate::config::Retirement;
use crate::directory::{User, FORWARD_MARK};
use crate::http::{Http, Request};
use crate::GoogleConnector;

impl GoogleConnector {
    pub(crate) async fn retire_user(
        &self,
        recipient: &Recipient,
        addresses: &[String],
        forward: &str,
    ) -> Result<(), ConnectorError> {
        let refuse = |why: String| {
            ConnectorError::permanent(format!(
                "Google system `{}`: cannot retire {}: {why}",
                self.system, recipient.primary_address
            ))
        };
        let (Some(template), Some(directory)) = (&self.config.provision, &self.provisioner) else {
            return Err(refuse(
                "its connection has no `provision` table (the user-management scope coexist needs)"
                    .into(),
            ));
        };
        let Some(retirement) = template.retirement().map_err(&refuse)? else {
            return Err(refuse(
                "a Google user's primary address cannot be taken off without renaming or deleting the user: set `retire = \"rename\"` (or \"delete\") in the connection's `provision` table, or delete or rename the old user by hand"
                    .into(),
            ));
        };
        let Some(user) = self.get_user(directory, &recipient.anchor).await? else {
            return Ok(());
        };
        let person: BTreeSet<String> = addresses.iter().map(|a| a.to_ascii_lowercase()).collect();
        let primary = user
            .primary_email
            .clone()
            .unwrap_or_default()
            .to_ascii_lowercase();
        let marked = user.coexist_forward();
        let ours = marked
            .as_deref()
            .is_some_and(|m| m.eq_ignore_ascii_case(forward));
        let under_way = marked.is_none() && !person.contains(&primary);
        let renaming = matches!(retirement, Retirement::Rename { .. });
        let ours_to_retire = ours || (under_way && renaming);
        if !ours_to_retire {
            return Err(refuse(format!(
                "the user {primary} (id {}) does not carry coexist's forward to {forward} (external id `{FORWARD_MARK}`{}): someone changed it since the move; retire it by hand",
                recipient.anchor,
                marked.map_or(String::new(), |m| format!(", now {m}"))
            )));
        }
        match retirement {
            Retirement::Delete => {
                let mut request = Request::get(self.directory.url(&["users", &recipient.anchor])?)
                    .accepting(&[404]);
                request.method = Method::DELETE;
                directory
                    .execute(&format!("deleting the user {primary}"), &request)
                    .await?;
                Ok(())
            }
            Retirement::Rename { .. } => {
                self.retire_by_rename(directory, &retirement, user, &person, forward)
                    .await
            }
        }
    }

    async fn retire_by_rename(
        &self,
        directory: &Http,
        retirement: &Retirement,
        mut user: User,
        person: &BTreeSet<String>,
        forward: &str,
    ) -> Result<(), ConnectorError> {
        let id = user.id.clone().unwrap_or_default();
        let url = self.directory.url(&["users", &id])?;
        let primary = user.primary_email.clone().unwrap_or_default();
        if person.contains(&primary.to_ascii_lowercase()) {
            let Some(renamed) = retirement.renamed(&primary) else {
                return Err(ConnectorError::permanent(format!(
                    "Google system `{}`: the user {primary} has no address to rename",
                    self.system
                )));
            };
            let reply = directory
                .execute(
                    &format!("renaming the user {primary} to {renamed}"),
                    &Request::get(url.clone()).json(Method::PUT, &json!({ "primaryEmail": renamed })),
                )
                .await
                .map_err(|e| {
                    ConnectorError::permanent(format!(
                        "Google system `{}`: renaming the old user {primary} to {renamed} (`retired_address` of the `provision` table): {e}",
                        self.system
                    ))
                })?;
            user = reply.json(&format!("the user {renamed}"))?;
        }
        let current = user.primary_email.clone().unwrap_or_default();
        for alias in user
            .aliases
            .iter()
            .filter(|a| person.contains(&a.to_ascii_lowercase()))
        {
            let mut request = Request::get(self.directory.url(&[
                "users",
                id.as_str(),
                "aliases",
                alias.as_str(),
            ])?)
            .accepting(&[404]);
            request.method = Method::DELETE;
            directory
                .execute(
                    &format!("deleting the alias {alias} of {current}"),
                    &request,
                )
                .await?;
        }
        if user.coexist_forward().is_none() {
            return Ok(());
        }
        if let Some(gmail) = &self.gmail {
            let settings = gmail.acting_as(&current);
            let url = gmail.url(&current, "autoForwarding")?;
            let reply = settings
                .execute(
                    &format!("reading the forwarding of {current}"),
                    &Request::get(url.clone()),
                )
                .await?;
            let now: Value = reply.json(&format!("the forwarding of {current}"))?;
            let enabled = now.get("enabled").and_then(Value::as_bool) == Some(true);
            let to = now
                .get("emailAddress")
                .and_then(Value::as_str)
                .unwrap_or_default();
            if enabled && to.eq_ignore_ascii_case(forward) {
                settings
                    .execute(
                        &format!("turning off the forwarding of {current} to {forward}"),
                        &Request::get(url).json(Method::PUT, &json!({ "enabled": false })),
                    )
                    .await?;
            }
        }
        let ids: Vec<Value> = user
            .external_ids
            .as_ref()
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .filter(|i| i.get("customType").and_then(Value::as_str) != Some(FORWARD_MARK))
            .collect();
        directory
            .execute(
                &format!("suspending the user {current}, coexist's forward mark taken off"),
                &Request::get(url).json(
                    Method::PUT,
                    &json!({ "suspended": true, "externalIds": ids }),
                ),
            )
            .await?;
        Ok(())
    }
}
