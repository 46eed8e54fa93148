//! Google Workspace as a kind of system (`kind = "google"`).

use std::sync::Arc;

use coexist_connector::kind::{DnsDefaults, DnsPlace};
use coexist_connector::{Connector, DisabledMailboxes, Kind, Setup, SetupError, StubStyle};

use crate::{GoogleConfig, GoogleConnector};

/// Google Workspace: Directory API reads, Domain Shared Contacts as stubs.
#[derive(Debug, Clone, Copy)]
pub struct GoogleKind;

/// The kind the binary registers.
pub static KIND: GoogleKind = GoogleKind;

impl Kind for GoogleKind {
    fn name(&self) -> &'static str {
        "google"
    }

    /// Shared contacts carry no route: Google's catch-all (split delivery)
    /// carries the mail, so `domain_routing` or nothing.
    fn stub_styles(&self) -> &'static [StubStyle] {
        &[StubStyle::DomainRouting, StubStyle::None]
    }

    fn why_not(&self, _style: StubStyle) -> String {
        "Google's shared contacts carry no route (Google's catch-all routes the mail); expected \"domain_routing\" (the default) or \"none\"".to_string()
    }

    /// Google bounces mail to suspended users.
    fn disabled_mailboxes(&self) -> DisabledMailboxes {
        DisabledMailboxes::Bounce
    }

    fn connect(&self, setup: &Setup<'_>) -> Result<Arc<dyn Connector>, SetupError> {
        if let Some(written) = setup.connection.get("routing_domain") {
            return Err(SetupError::at(
                "routing_domain",
                format!(
                    "routing_domain = {written} belongs to the system, not its connection: move it up into the [[systems]] table of {}",
                    setup.system
                ),
            ));
        }
        let mut settings: GoogleConfig = setup.settings(setup.connection.clone())?;
        if let Some(provision) = &settings.provision {
            provision
                .retirement()
                .map_err(|e| SetupError::at("provision", format!("[provision]: {e}")))?;
        }
        settings.service_account_key = setup.secret(settings.service_account_key);
        // The routing domain is the system's (`coexist doctor` checks it).
        settings.routing_domain = setup.routing_domain.map(str::to_string);
        let connector = GoogleConnector::new(setup.system, settings)
            .map_err(|e| SetupError::new(e.to_string()))?;
        Ok(Arc::new(connector))
    }

    /// Google's published mail hosts (Admin Help, "Set up MX records for
    /// Google Workspace": `smtp.google.com`, and the older
    /// `aspmx.l.google.com` set still valid), its SPF include
    /// `_spf.google.com`, and the default DKIM selector `google`.
    fn dns_defaults(&self, _system: &DnsPlace<'_>) -> DnsDefaults {
        DnsDefaults {
            mx_hosts: [
                "smtp.google.com",
                "aspmx.l.google.com",
                "alt1.aspmx.l.google.com",
                "alt2.aspmx.l.google.com",
                "alt3.aspmx.l.google.com",
                "alt4.aspmx.l.google.com",
            ]
            .map(String::from)
            .to_vec(),
            spf_includes: vec!["_spf.google.com".into()],
            spf_relays: Vec::new(),
            dkim_selectors: vec!["google".into()],
            autodiscover: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_retirement_google_cannot_carry_out_blames_the_provision_table() {
        let connection: toml::Table = toml::from_str(
            r#"
            domain = "acmecorp.com"
            admin = "admin@acmecorp.com"
            service_account_key = { env = "COEXIST_NO_SUCH_KEY" }
            [provision]
            retire = "archive"
        "#,
        )
        .unwrap_or_default();
        let setup = Setup {
            system: "google",
            connection: &connection,
            base: std::path::Path::new("."),
            routing_domain: None,
        };
        let Err(error) = KIND.connect(&setup) else {
            panic!("retire = \"archive\" was accepted");
        };
        assert_eq!(error.key.as_deref(), Some("provision"));
        assert!(
            error.message.contains(r#"expected "rename" or "delete""#),
            "{}",
            error.message
        );
    }

    #[test]
    fn google_publishes_its_mx_hosts_spf_include_and_dkim_selector() {
        let connection = toml::Table::new();
        let dns = KIND.dns_defaults(&DnsPlace {
            system: "google",
            routing_domain: Some("gapps.acmecorp.com"),
            smart_host: None,
            connection: &connection,
        });
        assert!(dns.mx_hosts.iter().any(|h| h == "aspmx.l.google.com"));
        assert!(dns.mx_hosts.iter().any(|h| h == "smtp.google.com"));
        assert_eq!(dns.spf_includes, ["_spf.google.com"]);
        assert_eq!(dns.dkim_selectors, ["google"]);
        assert!(dns.spf_relays.is_empty() && dns.autodiscover.is_none());
    }
}
