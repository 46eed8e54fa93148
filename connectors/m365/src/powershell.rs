//! The PowerShell alternative: a plan's mail-contact operations for one
//! Microsoft 365 system as a script an Exchange admin reviews and runs
//! (ExchangeOnlineManagement v3), for tenants that will not grant the app
//! `Exchange.ManageAsApp`.
//!
//! The script stops at the first error (`$ErrorActionPreference = 'Stop'`)
//! and can be run again: a create looks for the contact first
//! (`Get-MailContact`) and makes it only when missing, then sets every
//! field; an update sets only what changed; a delete removes the contact
//! only if it is still there. It writes the same objects as the connector
//! ([`crate::mail_contacts`]): the same names, addresses, marker
//! (`CustomAttribute1`) and kind (`CustomAttribute2`). Personal contacts
//! (`mailbox_contacts`) are written through Graph, not Exchange cmdlets:
//! they are listed as comments.

use std::fmt::Write as _;

use coexist_connector::{Operation, Stub, StubField};
use serde_json::Value;

use crate::exchange::Cmdlet;
use crate::mail_contacts::{contact_name, set_contact, set_mail_contact};

/// A PowerShell single-quoted string.
fn quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// A parameter value in PowerShell.
fn literal(value: &Value) -> String {
    match value {
        Value::Null => "$null".to_string(),
        Value::Bool(true) => "$true".to_string(),
        Value::Bool(false) => "$false".to_string(),
        Value::String(s) => quote(s),
        Value::Number(n) => n.to_string(),
        Value::Array(items) => {
            if items.is_empty() {
                "@()".to_string()
            } else {
                items.iter().map(literal).collect::<Vec<_>>().join(",")
            }
        }
        Value::Object(_) => quote(&value.to_string()),
    }
}

/// A cmdlet call, `-Identity` (first) given as `identity` (a variable or a
/// quoted value), the other parameters in alphabetical order.
fn call(cmdlet: &Cmdlet, identity: &str) -> String {
    let mut line = cmdlet.name.to_string();
    if cmdlet.parameters.contains_key("Identity") {
        let _ = write!(line, " -Identity {identity}");
    }
    let mut names: Vec<&String> = cmdlet
        .parameters
        .keys()
        .filter(|n| *n != "Identity")
        .collect();
    names.sort();
    for name in names {
        if let Some(v) = cmdlet.parameters.get(name) {
            let _ = write!(line, " -{name} {}", literal(v));
        }
    }
    line
}

fn describe(stub: &Stub) -> String {
    let target = stub.route.target().unwrap_or("its home");
    format!(
        "{} ({}) -> {target}, marker coexist:{}",
        stub.primary_address,
        stub.kind.as_str(),
        stub.anchor
    )
    .replace(['\n', '\r'], " ")
}

/// The script for `operations` of the Microsoft 365 system `system`;
/// `organization` (the tenant's `*.onmicrosoft.com` name) goes to
/// `Connect-ExchangeOnline -Organization` when given.
pub fn powershell_script(
    system: &str,
    operations: &[Operation],
    organization: Option<&str>,
) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# coexist plan for the Microsoft 365 system {system}: {} operation{}.",
        operations.len(),
        if operations.len() == 1 { "" } else { "s" }
    );
    out.push_str(
        "# Review it, then run it in PowerShell 7 with the ExchangeOnlineManagement module.\n\
         # It stops at the first error and can be run again: every step checks first.\n",
    );
    out.push_str("$ErrorActionPreference = 'Stop'\n");
    match organization {
        Some(org) => {
            let _ = writeln!(
                out,
                "Connect-ExchangeOnline -Organization {} -ShowBanner:$false",
                quote(org)
            );
        }
        None => out.push_str("Connect-ExchangeOnline -ShowBanner:$false\n"),
    }
    for (n, operation) in operations.iter().enumerate() {
        let stub = operation.stub();
        out.push('\n');
        let _ = writeln!(
            out,
            "# {} {}: {}",
            n + 1,
            operation.action(),
            describe(stub)
        );
        if stub.route.target().is_none() || matches!(stub.route, coexist_connector::Route::Host(_))
        {
            out.push_str("# (a personal contact in each mailbox, written through Microsoft Graph: not a cmdlet; skipped)\n");
            continue;
        }
        match operation {
            Operation::Create { stub } => {
                let name = contact_name(&stub.primary_address);
                let _ = writeln!(
                    out,
                    "$contact = Get-MailContact -Identity {} -ErrorAction SilentlyContinue",
                    quote(&name)
                );
                let new = Cmdlet::new("New-MailContact")
                    .with("Name", name.as_str())
                    .with(
                        "ExternalEmailAddress",
                        stub.route.target().unwrap_or_default(),
                    )
                    .with(
                        "DisplayName",
                        stub.attributes
                            .display_name
                            .clone()
                            .unwrap_or_else(|| name.clone()),
                    );
                let _ = writeln!(
                    out,
                    "if (-not $contact) {{ $contact = {} }}",
                    call(&new, "")
                );
                let all = [
                    StubField::Anchor,
                    StubField::Kind,
                    StubField::PrimaryAddress,
                    StubField::Aliases,
                    StubField::Route,
                    StubField::DisplayName,
                    StubField::GivenName,
                    StubField::Surname,
                    StubField::Title,
                    StubField::Department,
                    StubField::Company,
                    StubField::BusinessPhone,
                    StubField::MobilePhone,
                ];
                if let Some(set) = set_mail_contact("", &name, stub, &all) {
                    let _ = writeln!(out, "{}", call(&set, "$contact.Identity"));
                }
                if let Some(set) = set_contact("", stub, &all) {
                    let _ = writeln!(out, "{}", call(&set, "$contact.Identity"));
                }
            }
            Operation::Update {
                id,
                locator,
                after,
                changed,
                ..
            } => {
                if let Some(set) = set_mail_contact(id, locator, after, changed) {
                    let _ = writeln!(out, "{}", call(&set, &quote(id)));
                }
                if let Some(set) = set_contact(id, after, changed) {
                    let _ = writeln!(out, "{}", call(&set, &quote(id)));
                }
            }
            Operation::Delete { id, .. } => {
                let _ = writeln!(
                    out,
                    "$contact = Get-MailContact -Identity {} -ErrorAction SilentlyContinue",
                    quote(id)
                );
                let _ = writeln!(
                    out,
                    "if ($contact -and $contact.CustomAttribute1 -like 'coexist:*') {{ Remove-MailContact -Identity $contact.Identity -Confirm:$false }}"
                );
            }
        }
    }
    out.push_str("\nDisconnect-ExchangeOnline -Confirm:$false\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use coexist_connector::{Attributes, RecipientKind, Route};

    fn stub(address: &str) -> Stub {
        Stub {
            anchor: "ldap:1".into(),
            kind: RecipientKind::Person,
            primary_address: address.into(),
            aliases: vec!["o.brien@acmecorp.com".into()],
            route: Route::Address("obrien@mithi.acmecorp.com".into()),
            attributes: Attributes {
                display_name: Some("Pat O'Brien".into()),
                title: Some("Engineer".into()),
                ..Attributes::default()
            },
        }
    }

    #[test]
    fn the_script_connects_stops_on_errors_and_checks_before_each_change() {
        let create = Operation::Create {
            stub: stub("pat@acmecorp.com"),
        };
        let mut after = stub("pat@acmecorp.com");
        after.attributes.title = Some("Lead".into());
        let update = Operation::Update {
            id: "6f1c-guid".into(),
            locator: "coexist-pat@acmecorp.com".into(),
            before: Box::new(stub("pat@acmecorp.com")),
            after: Box::new(after),
            changed: vec![StubField::Title],
        };
        let delete = Operation::Delete {
            id: "77aa-guid".into(),
            locator: "coexist-old@acmecorp.com".into(),
            stub: stub("old@acmecorp.com"),
        };
        let script = powershell_script(
            "m365",
            &[create, update, delete],
            Some("acmecorp.onmicrosoft.com"),
        );
        let expected = "\
# coexist plan for the Microsoft 365 system m365: 3 operations.
# Review it, then run it in PowerShell 7 with the ExchangeOnlineManagement module.
# It stops at the first error and can be run again: every step checks first.
$ErrorActionPreference = 'Stop'
Connect-ExchangeOnline -Organization 'acmecorp.onmicrosoft.com' -ShowBanner:$false

# 1 create: pat@acmecorp.com (person) -> obrien@mithi.acmecorp.com, marker coexist:ldap:1
$contact = Get-MailContact -Identity 'coexist-pat@acmecorp.com' -ErrorAction SilentlyContinue
if (-not $contact) { $contact = New-MailContact -DisplayName 'Pat O''Brien' -ExternalEmailAddress 'obrien@mithi.acmecorp.com' -Name 'coexist-pat@acmecorp.com' }
Set-MailContact -Identity $contact.Identity -CustomAttribute1 'coexist:ldap:1' -CustomAttribute2 'person' -DisplayName 'Pat O''Brien' -EmailAddresses 'SMTP:pat@acmecorp.com','smtp:o.brien@acmecorp.com','smtp:obrien@mithi.acmecorp.com' -ExternalEmailAddress 'obrien@mithi.acmecorp.com'
Set-Contact -Identity $contact.Identity -Company $null -Department $null -FirstName $null -LastName $null -MobilePhone $null -Phone $null -Title 'Engineer'

# 2 update: pat@acmecorp.com (person) -> obrien@mithi.acmecorp.com, marker coexist:ldap:1
Set-Contact -Identity '6f1c-guid' -Title 'Lead'

# 3 delete: old@acmecorp.com (person) -> obrien@mithi.acmecorp.com, marker coexist:ldap:1
$contact = Get-MailContact -Identity '77aa-guid' -ErrorAction SilentlyContinue
if ($contact -and $contact.CustomAttribute1 -like 'coexist:*') { Remove-MailContact -Identity $contact.Identity -Confirm:$false }

Disconnect-ExchangeOnline -Confirm:$false
";
        assert_eq!(script, expected);
        assert!(!script.contains("PrimarySmtpAddress"));
    }
}
