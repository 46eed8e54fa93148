//! The old mailbox of a person moved away (`coexist move`): Exchange
//! Online forwards everything to the new home, and `--finish` retires it.
//!
//! * **Forward**: `Set-Mailbox -Identity <id> -ForwardingSmtpAddress
//!   smtp:<address> -DeliverToMailboxAndForward $false`
//!   (<https://learn.microsoft.com/powershell/module/exchange/set-mailbox>):
//!   every message leaves for the address, none stays in the mailbox.
//!   Reads ask Get-Recipient for `ForwardingSmtpAddress` and
//!   `DeliverToMailboxAndForward` (`-Properties`), so such a mailbox reads
//!   as a forwarding entry ([`crate::recipients::MailboxType::Forwarding`]).
//!   Graph's delta does not report a change made in Exchange alone: the
//!   connector's next pull in the same process is a full read, and a
//!   forward set elsewhere is found at the next full read
//!   (`sync --full-read`, nightly).
//! * **Retire**: one `Set-Mailbox` with `-EmailAddresses` keeping every
//!   address but the person's (the tenant's own, such as
//!   `…@<tenant>.mail.onmicrosoft.com`, the primary becoming one of them),
//!   and `-ForwardingSmtpAddress $null` when the forward is exactly the one
//!   coexist set (a forward someone else set is kept); then the user's
//!   sign-in is disabled (Graph `PATCH /users/{id}`, `accountEnabled:
//!   false`). The mailbox and its mail stay.

use std::sync::atomic::Ordering;

use coexist_connector::{normalize_address, ConnectorError, Recipient};
use serde::Deserialize;
use serde_json::Value;

use crate::exchange::Cmdlet;
use crate::recipients::strip_smtp;
use crate::M365Connector;

/// A row of `Get-Mailbox`: what retiring needs.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct MailboxRow {
    #[serde(default)]
    email_addresses: Option<Vec<String>>,
    #[serde(default)]
    forwarding_smtp_address: Option<String>,
}

/// Whether `a` and `b` are the same mail address.
fn same_address(a: &str, b: &str) -> bool {
    match (normalize_address(a), normalize_address(b)) {
        (Ok(a), Ok(b)) => a == b,
        _ => a.eq_ignore_ascii_case(b),
    }
}

/// The address list a retired mailbox keeps: every entry but the SMTP
/// addresses in `taken_off`, with one primary (`SMTP:`), preferably an
/// address of the tenant's `onmicrosoft.com` domains. `None` when no SMTP
/// address would be left.
pub fn kept_addresses(current: &[String], taken_off: &[String]) -> Option<Vec<String>> {
    let mut others: Vec<String> = Vec::new();
    let mut smtp: Vec<String> = Vec::new();
    for entry in current {
        let entry = entry.trim();
        let is_smtp = entry
            .get(..5)
            .is_some_and(|p| p.eq_ignore_ascii_case("smtp:"));
        if !is_smtp {
            others.push(entry.to_string());
            continue;
        }
        let address = strip_smtp(entry);
        if address.is_empty() || taken_off.iter().any(|t| same_address(t, address)) {
            continue;
        }
        smtp.push(address.to_string());
    }
    let rank = |a: &str| {
        let a = a.to_ascii_lowercase();
        if a.ends_with(".mail.onmicrosoft.com") {
            0
        } else if a.ends_with(".onmicrosoft.com") {
            1
        } else {
            2
        }
    };
    let primary = smtp.iter().min_by_key(|a| rank(a))?.clone();
    let mut out = vec![format!("SMTP:{primary}")];
    out.extend(
        smtp.iter()
            .filter(|a| **a != primary)
            .map(|a| format!("smtp:{a}")),
    );
    out.extend(others);
    Some(out)
}

impl M365Connector {
    /// Forwards `recipient`'s mailbox to `to`, keeping no copy.
    pub(crate) async fn forward_mailbox(
        &self,
        recipient: &Recipient,
        to: &str,
    ) -> Result<(), ConnectorError> {
        let cmdlet = Cmdlet::new("Set-Mailbox")
            .with("Identity", recipient.anchor.clone())
            .with("ForwardingSmtpAddress", format!("smtp:{to}"))
            .with("DeliverToMailboxAndForward", false);
        self.exchange
            .run::<Value>(&self.http, &cmdlet)
            .await
            .map_err(|f| {
                f.error.context(format!(
                    "Microsoft 365 system `{}`: forwarding the mailbox of {} to {to}",
                    self.system, recipient.primary_address
                ))
            })?;
        self.full_read_next.store(true, Ordering::SeqCst);
        Ok(())
    }

    /// Takes coexist's forward (exactly `forward`) and `addresses` off
    /// `recipient`'s mailbox, then disables its sign-in.
    pub(crate) async fn retire_mailbox(
        &self,
        recipient: &Recipient,
        addresses: &[String],
        forward: &str,
    ) -> Result<(), ConnectorError> {
        let context = |what: &str| {
            format!(
                "Microsoft 365 system `{}`: retiring the mailbox of {}: {what}",
                self.system, recipient.primary_address
            )
        };
        let read = Cmdlet::new("Get-Mailbox").with("Identity", recipient.anchor.clone());
        let rows: Vec<MailboxRow> = self
            .exchange
            .run(&self.http, &read)
            .await
            .map_err(|f| f.error.context(context("reading the mailbox")))?;
        let Some(mailbox) = rows.into_iter().next() else {
            return Err(ConnectorError::permanent(context(
                "Exchange Online has no mailbox for the user",
            )));
        };
        let current = mailbox.email_addresses.unwrap_or_default();
        let Some(kept) = kept_addresses(&current, addresses) else {
            return Err(ConnectorError::permanent(context(
                "no address of the tenant's own domains would be left to be the mailbox's primary; \
                 add one (such as <alias>@<tenant>.mail.onmicrosoft.com) by hand",
            )));
        };
        let mut cmdlet = Cmdlet::new("Set-Mailbox")
            .with("Identity", recipient.anchor.clone())
            .with("EmailAddresses", kept);
        let ours = mailbox
            .forwarding_smtp_address
            .as_deref()
            .map(strip_smtp)
            .is_some_and(|f| same_address(f, forward));
        if ours {
            cmdlet = cmdlet.with("ForwardingSmtpAddress", Value::Null);
        }
        self.exchange
            .run::<Value>(&self.http, &cmdlet)
            .await
            .map_err(|f| {
                f.error
                    .context(context("taking its forward and addresses off"))
            })?;
        self.full_read_next.store(true, Ordering::SeqCst);
        self.suspend_user(recipient).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_persons_addresses_go_and_a_tenant_address_becomes_primary() {
        let kept = kept_addresses(
            &[
                "SMTP:ann@acmecorp.com".into(),
                "smtp:a.lee@acmecorp.com".into(),
                "smtp:ann@acmecorp.onmicrosoft.com".into(),
                "smtp:ann@acmecorp.mail.onmicrosoft.com".into(),
                "x500:/o=ExchangeLabs/cn=ann".into(),
            ],
            &["ann@acmecorp.com".into(), "A.Lee@acmecorp.com".into()],
        );
        assert_eq!(
            kept,
            Some(vec![
                "SMTP:ann@acmecorp.mail.onmicrosoft.com".to_string(),
                "smtp:ann@acmecorp.onmicrosoft.com".to_string(),
                "x500:/o=ExchangeLabs/cn=ann".to_string(),
            ])
        );
    }

    #[test]
    fn a_mailbox_left_without_any_address_is_refused() {
        assert_eq!(
            kept_addresses(
                &["SMTP:ann@acmecorp.com".into()],
                &["ann@acmecorp.com".into()]
            ),
            None
        );
    }
}
