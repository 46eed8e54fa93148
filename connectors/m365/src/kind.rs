//! Microsoft 365 as a kind of system (`kind = "m365"`).

use std::sync::Arc;

use coexist_connector::kind::{DnsDefaults, DnsPlace};
use coexist_connector::{
    Connector, DisabledMailboxes, Finding, Kind, Place, Setup, SetupError, StubStyle,
};

use crate::{M365Config, M365Connector};

/// Microsoft 365: Graph reads, Exchange Online mail contacts (or personal
/// contacts in each mailbox) as stubs.
#[derive(Debug, Clone, Copy)]
pub struct M365Kind;

/// The kind the binary registers.
pub static KIND: M365Kind = M365Kind;

impl Kind for M365Kind {
    fn name(&self) -> &'static str {
        "m365"
    }

    /// `mail_contact` (the default): a mail contact in the tenant's address
    /// list routed to the recipient's routing address; `mailbox_contacts`:
    /// personal contacts in a folder of each user mailbox (the tenant's
    /// relay of the shared domain carries the mail); or nothing.
    fn stub_styles(&self) -> &'static [StubStyle] {
        &[
            StubStyle::MailContact,
            StubStyle::MailboxContacts,
            StubStyle::None,
        ]
    }

    /// Exchange Online delivers to a mailbox whose sign-in is blocked
    /// (`accountEnabled = false` stops sign-in, not mail flow: shared
    /// mailboxes are exactly that), so mail for a disabled account's
    /// mailbox is delivered.
    fn disabled_mailboxes(&self) -> DisabledMailboxes {
        DisabledMailboxes::Deliver
    }

    /// The plan's operations as Exchange Online cmdlets
    /// ([`crate::powershell_script`]), for tenants that will not grant
    /// `Exchange.ManageAsApp`.
    fn powershell(
        &self,
        system: &str,
        operations: &[coexist_connector::Operation],
    ) -> Option<String> {
        Some(crate::powershell_script(system, operations, None))
    }

    /// Exchange Online answers at `<tenant>.mail.onmicrosoft.com` only
    /// under the proxy address it gave each mailbox (often `jdoe@…` for
    /// john.doe@acmecorp.com): stubs elsewhere route to the address listed.
    fn routing_domain_is_alias(&self) -> bool {
        false
    }

    /// Exchange Online Protection's MX hosts
    /// (`<domain>.mail.protection.outlook.com`), the SPF include
    /// `spf.protection.outlook.com`, the DKIM selectors `selector1` and
    /// `selector2`, and `autodiscover.outlook.com` (Microsoft 365 admin
    /// center, "Add DNS records to connect your domain").
    fn dns_defaults(&self, _system: &DnsPlace<'_>) -> DnsDefaults {
        DnsDefaults {
            mx_hosts: vec!["*.mail.protection.outlook.com".into()],
            spf_includes: vec!["spf.protection.outlook.com".into()],
            spf_relays: Vec::new(),
            dkim_selectors: vec!["selector1".into(), "selector2".into()],
            autodiscover: Some("autodiscover.outlook.com".into()),
        }
    }

    fn connect(&self, setup: &Setup<'_>) -> Result<Arc<dyn Connector>, SetupError> {
        let mut settings: M365Config = setup.settings(setup.connection.clone())?;
        settings.client_secret = settings.client_secret.map(|s| setup.secret(s));
        settings.certificate = settings.certificate.map(|s| setup.secret(s));
        settings.private_key = settings.private_key.map(|s| setup.secret(s));
        settings.routing_domain = setup.routing_domain.map(str::to_string);
        if let Err((key, message)) = settings.check() {
            return Err(SetupError::at(key, message));
        }
        let connector = M365Connector::new(setup.system, settings).map_err(|e| {
            let message = e.to_string();
            let key = ["client_secret", "certificate", "private_key"]
                .into_iter()
                .find(|k| message.contains(&format!("`{k}`")));
            SetupError {
                key: key.map(str::to_string),
                message,
            }
        })?;
        Ok(Arc::new(connector))
    }

    /// What Exchange Online keeps outside any API coexist reads: the
    /// shared domains as InternalRelay accepted domains where the tenant
    /// relays unknown recipients, outbound connectors to the other
    /// systems, and the routing domain being the tenant's own
    /// `*.mail.onmicrosoft.com` domain.
    fn manual_checks(&self, place: &Place<'_>) -> Vec<Finding> {
        let mut findings = Vec::new();
        let routing = place
            .routing_domain
            .unwrap_or("<tenant>.mail.onmicrosoft.com");
        findings.push(Finding::manual(
            "Exchange Online: the routing domain (manual check)",
            format!(
                "{routing} must be a domain of this tenant that every mailbox answers at: the \
                 tenant's own <tenant>.mail.onmicrosoft.com domain (Exchange gives every \
                 mailbox an smtp:alias@<tenant>.mail.onmicrosoft.com proxy address), or a \
                 verified domain added as an Authoritative accepted domain with an \
                 smtp:…@{routing} proxy address on each mailbox (an email address policy). \
                 The other systems of {} forward this tenant's people there.",
                place.system
            ),
        ));
        for (other, other_routing) in &place.others {
            let target = other_routing.unwrap_or("its routing domain");
            findings.push(Finding::manual(
                format!("Exchange Online: mail to {other} (manual check)"),
                format!(
                    "Mail contacts of {system} route to local@{target}: if {target} has no \
                     public MX pointing at {other}, create an outbound connector (Exchange admin \
                     center > Mail flow > Connectors, from Office 365 to your organization's \
                     email server) for {target} to {other}'s smart host.",
                    system = place.system
                ),
            ));
        }
        if let Some((relay, relay_routing)) = place.relays_unknown_to {
            for domain in place.shared_domains {
                findings.push(Finding::manual(
                    format!("Exchange Online: {domain} relays to {relay} (manual check)"),
                    format!(
                        "{domain} must be an InternalRelay accepted domain (Exchange admin center \
                         > Mail flow > Accepted domains: \"Internal relay\"; or \
                         Set-AcceptedDomain -Identity {domain} -DomainType InternalRelay), and \
                         an outbound connector must send mail for {domain} recipients without a \
                         mailbox here to {relay}{}; otherwise Exchange rejects them as unknown \
                         recipients.",
                        relay_routing
                            .map(|r| format!(" (its routing domain {r})"))
                            .unwrap_or_default()
                    ),
                ));
            }
        } else {
            for domain in place.shared_domains {
                findings.push(Finding::manual(
                    format!("Exchange Online: {domain} accepted domain (manual check)"),
                    format!(
                        "{domain} is not relayed by this tenant in the topology: it may stay an \
                         Authoritative accepted domain, and mail for people homed elsewhere \
                         reaches them through coexist's mail contacts only (with \
                         stub_style = \"mailbox_contacts\" there are none: relay it then)."
                    ),
                ));
            }
        }
        if place.receives_from_the_internet {
            for domain in place.shared_domains {
                findings.push(Finding::manual(
                    format!("{domain} MX to Exchange Online (manual check)"),
                    format!(
                        "The topology says {domain}'s MX points at this tenant: its MX record \
                         should be the tenant's <domain>.mail.protection.outlook.com host."
                    ),
                ));
            }
        }
        findings
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mail_contacts_are_the_default_and_disabled_mailboxes_still_receive() {
        assert_eq!(KIND.name(), "m365");
        assert_eq!(KIND.stub_styles()[0], StubStyle::MailContact);
        assert!(KIND.stub_styles().contains(&StubStyle::MailboxContacts));
        assert_eq!(KIND.disabled_mailboxes(), DisabledMailboxes::Deliver);
    }

    #[test]
    fn the_routing_domain_answers_only_at_listed_addresses_and_dns_is_microsofts() {
        assert!(!KIND.routing_domain_is_alias());
        let connection = toml::Table::new();
        let dns = KIND.dns_defaults(&DnsPlace {
            system: "m365",
            routing_domain: Some("acmecorp.mail.onmicrosoft.com"),
            smart_host: None,
            connection: &connection,
        });
        assert_eq!(dns.mx_hosts, ["*.mail.protection.outlook.com"]);
        assert_eq!(dns.spf_includes, ["spf.protection.outlook.com"]);
        assert_eq!(
            dns.autodiscover.as_deref(),
            Some("autodiscover.outlook.com")
        );
    }

    #[test]
    fn a_relaying_tenant_is_told_to_make_the_shared_domain_internal_relay() {
        let shared = vec!["acmecorp.com".to_string()];
        let place = Place {
            system: "m365",
            routing_domain: Some("acmecorp.mail.onmicrosoft.com"),
            shared_domains: &shared,
            receives_from_the_internet: false,
            relays_unknown_to: Some(("ldap", Some("mithi.acmecorp.com"))),
            others: vec![("ldap", Some("mithi.acmecorp.com"))],
        };
        let findings = KIND.manual_checks(&place);
        assert!(findings.iter().all(|f| f.manual && f.ok));
        assert!(findings
            .iter()
            .any(|f| f.detail.contains("InternalRelay") && f.detail.contains("acmecorp.com")));
        assert!(findings
            .iter()
            .any(|f| f.detail.contains("acmecorp.mail.onmicrosoft.com")));
        assert!(findings
            .iter()
            .any(|f| f.detail.contains("mithi.acmecorp.com")));
    }

    #[test]
    fn unknown_connection_keys_are_refused_naming_the_key() {
        let connection: toml::Table = toml::from_str(
            r#"tenant_id = "t"
               client_id = "c"
               client_secret = { env = "S" }
               graph_uri = "http://127.0.0.1:1/v1.0""#,
        )
        .unwrap_or_default();
        let setup = Setup {
            system: "m365",
            connection: &connection,
            base: std::path::Path::new("/etc/coexist"),
            routing_domain: Some("acmecorp.mail.onmicrosoft.com"),
        };
        let error = KIND.connect(&setup).err();
        assert_eq!(error.and_then(|e| e.key).as_deref(), Some("graph_uri"));
    }
}
