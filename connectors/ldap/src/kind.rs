//! The two kinds of directory this crate serves: an LDAP mail server's
//! directory (`kind = "ldap"`: OpenLDAP, qmail-ldap, Postfix/Dovecot) and
//! Active Directory (`kind = "active_directory"`). The kind decides the
//! [`Flavor`]; a `flavor` written in the connection table must agree.

use std::path::Path;
use std::sync::Arc;

use coexist_connector::kind::{DnsDefaults, DnsPlace};
use coexist_connector::{
    Connector, DisabledMailboxes, Finding, Kind, Place, Setup, SetupError, StubStyle,
};

use crate::{Flavor, LdapConfig, LdapConnector};

/// An LDAP directory kind, by flavor.
#[derive(Debug, Clone, Copy)]
pub struct LdapKind {
    flavor: Flavor,
}

/// `kind = "ldap"`: the directory of an LDAP mail server.
pub static LDAP: LdapKind = LdapKind {
    flavor: Flavor::Openldap,
};

/// `kind = "active_directory"`: an AD domain (Exchange, or the master
/// directory).
pub static ACTIVE_DIRECTORY: LdapKind = LdapKind {
    flavor: Flavor::ActiveDirectory,
};

impl LdapKind {
    fn flavor_name(&self) -> &'static str {
        match self.flavor {
            Flavor::Openldap => "openldap",
            Flavor::ActiveDirectory => "active_directory",
        }
    }
}

impl Kind for LdapKind {
    fn name(&self) -> &'static str {
        match self.flavor {
            Flavor::Openldap => "ldap",
            Flavor::ActiveDirectory => "active_directory",
        }
    }

    /// A directory stub must route (without a route it would be taken for
    /// a local mailbox and bounce); an AD contact routes by `targetAddress`
    /// only, an LDAP entry also by `mailHost`.
    fn stub_styles(&self) -> &'static [StubStyle] {
        match self.flavor {
            Flavor::Openldap => &[
                StubStyle::RoutingAddress,
                StubStyle::SmartHost,
                StubStyle::None,
            ],
            Flavor::ActiveDirectory => &[StubStyle::RoutingAddress, StubStyle::None],
        }
    }

    fn why_not(&self, style: StubStyle) -> String {
        match (self.flavor, style) {
            (Flavor::ActiveDirectory, StubStyle::SmartHost) => "an Active Directory contact routes by targetAddress = local@<home routing domain>; expected \"routing_address\" (the default) or \"none\"".to_string(),
            _ => "a directory stub without a route would be taken for a local mailbox and bounce; expected \"routing_address\" (the default), \"smart_host\" or \"none\"".to_string(),
        }
    }

    /// Exchange delivers to the mailbox of a disabled AD account; an LDAP
    /// mail server looks the address up whatever lock attribute the entry
    /// carries (qmail-ldap, which bounces for `accountStatus: disabled`, is
    /// configured with `disabled_mailboxes = "bounce"`).
    fn disabled_mailboxes(&self) -> DisabledMailboxes {
        DisabledMailboxes::Deliver
    }

    fn connect(&self, setup: &Setup<'_>) -> Result<Arc<dyn Connector>, SetupError> {
        let mut table = setup.connection.clone();
        match table.get("flavor") {
            None => {
                table.insert(
                    "flavor".into(),
                    toml::Value::String(self.flavor_name().into()),
                );
            }
            Some(toml::Value::String(written)) if written == self.flavor_name() => {}
            Some(written) => {
                return Err(SetupError::at(
                    "flavor",
                    format!(
                    "flavor {written} does not fit kind \"{}\"; leave it out, the kind decides it",
                    self.name()
                ),
                ))
            }
        }
        let mut settings: LdapConfig = setup.settings(table)?;
        settings.ca_file = settings
            .ca_file
            .map(|p| setup.path(Path::new(&p)).display().to_string());
        settings.password = setup.secret(settings.password);
        let connector = LdapConnector::new(setup.system, settings)
            .map_err(|e| SetupError::new(e.to_string()))?;
        Ok(Arc::new(connector))
    }

    /// On Active Directory, the Exchange settings mail flow depends on and
    /// no LDAP read shows: the routing domain accepted, a send connector
    /// to each other system, and the shared domains as internal relay
    /// where the topology relays unknown recipients onward.
    fn manual_checks(&self, place: &Place<'_>) -> Vec<Finding> {
        if self.flavor != Flavor::ActiveDirectory {
            return Vec::new();
        }
        exchange_checks(place)
    }

    /// An on-premises mail server (or Exchange) receives and sends mail on
    /// its configured smart host: its routing domain's MX points there and
    /// the shared domains' SPF authorises it. Without a smart host nothing
    /// is known (`[systems.dns]` says).
    fn dns_defaults(&self, system: &DnsPlace<'_>) -> DnsDefaults {
        let hosts: Vec<String> = system.smart_host.map(String::from).into_iter().collect();
        DnsDefaults {
            mx_hosts: hosts.clone(),
            spf_relays: hosts,
            ..DnsDefaults::default()
        }
    }
}

/// The manual checks of the Exchange organisation an AD system serves.
fn exchange_checks(place: &Place<'_>) -> Vec<Finding> {
    let manual = |check: &str, detail: String| {
        Finding::manual(
            format!("{check} (manual check)"),
            format!(
                "MANUAL CHECK: Exchange keeps this outside the directory coexist reads. {detail}"
            ),
        )
    };
    let mut findings = Vec::new();
    if let Some(routing) = place.routing_domain {
        findings.push(manual(
            "Exchange accepts the routing domain",
            format!(
                "The other systems forward mail for this system's people to local@{routing}. \
                 In the Exchange admin center (Mail flow > Accepted domains) {routing} must be \
                 an Authoritative accepted domain (Get-AcceptedDomain; New-AcceptedDomain \
                 -Name {routing} -DomainName {routing} -DomainType Authoritative), each \
                 mailbox must carry an smtp:local@{routing} proxy address (an email address \
                 policy that adds it), and {routing}'s MX must reach Exchange."
            ),
        ));
    }
    for (other, routing) in &place.others {
        let Some(routing) = routing else { continue };
        findings.push(manual(
            &format!("Exchange sends {routing} to {other}"),
            format!(
                "coexist's contacts here forward mail for {other}'s people to local@{routing}. \
                 Exchange must deliver that domain to {other}: by {routing}'s MX, or by a send \
                 connector with the address space {routing} and {other}'s host as smart host \
                 (Mail flow > Send connectors; Get-SendConnector | fl AddressSpaces,SmartHosts)."
            ),
        ));
    }
    if let Some((other, routing)) = place.relays_unknown_to {
        for domain in place.shared_domains {
            let to = routing.map_or_else(
                || format!("{other}'s mail host"),
                |r| format!("{other} (its host for {r})"),
            );
            findings.push(manual(
                &format!("Exchange relays unknown {domain} recipients to {other}"),
                format!(
                    "The configuration says mail for {domain} addresses without a mailbox or \
                     contact here goes on to {other}. {domain} must be an InternalRelay \
                     accepted domain (Set-AcceptedDomain -Identity {domain} -DomainType \
                     InternalRelay), and a send connector with the address space {domain} \
                     must deliver to {to}; as Authoritative, Exchange bounces that mail."
                ),
            ));
        }
    }
    findings
}

#[cfg(test)]
mod tests {
    use super::*;

    fn place<'a>(shared: &'a [String]) -> Place<'a> {
        Place {
            system: "ad",
            routing_domain: Some("onprem.acmecorp.com"),
            shared_domains: shared,
            receives_from_the_internet: true,
            relays_unknown_to: Some(("qmail", Some("qmail.acmecorp.com"))),
            others: vec![("qmail", Some("qmail.acmecorp.com")), ("archive", None)],
        }
    }

    #[test]
    fn exchange_is_asked_to_accept_its_routing_domain_send_to_the_others_and_relay_the_shared_domain(
    ) {
        let shared = vec!["acmecorp.com".to_string()];
        let findings = ACTIVE_DIRECTORY.manual_checks(&place(&shared));
        assert!(findings.iter().all(|f| f.manual && f.ok), "{findings:#?}");
        let text: Vec<String> = findings
            .iter()
            .map(|f| format!("{}: {}", f.check, f.detail))
            .collect();
        assert_eq!(text.len(), 3, "{text:#?}");
        assert!(text[0].contains("onprem.acmecorp.com") && text[0].contains("Authoritative"));
        assert!(text[1].contains("qmail.acmecorp.com") && text[1].contains("send connector"));
        assert!(text[2].contains("InternalRelay") && text[2].contains("acmecorp.com"));
    }

    #[test]
    fn an_ldap_mail_server_has_no_exchange_checks() {
        let shared = vec!["acmecorp.com".to_string()];
        assert!(LDAP.manual_checks(&place(&shared)).is_empty());
    }

    #[test]
    fn an_on_premises_server_receives_and_sends_on_its_smart_host() {
        let connection = toml::Table::new();
        for kind in [&LDAP, &ACTIVE_DIRECTORY] {
            let dns = kind.dns_defaults(&DnsPlace {
                system: "ldap",
                routing_domain: Some("mithi.acmecorp.com"),
                smart_host: Some("mail.acmecorp.com"),
                connection: &connection,
            });
            assert_eq!(dns.mx_hosts, ["mail.acmecorp.com"]);
            assert_eq!(dns.spf_relays, ["mail.acmecorp.com"]);
            assert!(dns.spf_includes.is_empty() && dns.dkim_selectors.is_empty());
        }
    }
}
