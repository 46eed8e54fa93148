//! The simulated system as a kind (`kind = "simulated"`): it can play any
//! system, so it writes every stub style (the default: `routing_address`).

use std::path::Path;
use std::sync::Arc;

use coexist_connector::kind::{DnsDefaults, DnsPlace};
use coexist_connector::{Connector, DisabledMailboxes, Kind, Setup, SetupError, StubStyle};

use crate::{SimulatedConfig, SimulatedConnector};

/// The in-memory system of the demo and the engine tests.
#[derive(Debug, Clone, Copy)]
pub struct SimulatedKind;

/// The kind the binary registers.
pub static KIND: SimulatedKind = SimulatedKind;

impl Kind for SimulatedKind {
    fn name(&self) -> &'static str {
        "simulated"
    }

    /// Every style: a simulated system plays any kind of system (the demo's
    /// Microsoft 365 tenant writes `mail_contact` stubs).
    fn stub_styles(&self) -> &'static [StubStyle] {
        &StubStyle::ALL
    }

    fn disabled_mailboxes(&self) -> DisabledMailboxes {
        DisabledMailboxes::Deliver
    }

    fn connect(&self, setup: &Setup<'_>) -> Result<Arc<dyn Connector>, SetupError> {
        let mut settings: SimulatedConfig = setup.settings(setup.connection.clone())?;
        settings.seed = settings.seed.map(|p| setup.path(Path::new(&p)));
        settings.state = settings.state.map(|p| setup.path(Path::new(&p)));
        let connector = SimulatedConnector::new(setup.system, settings)
            .map_err(|e| SetupError::new(e.to_string()))?;
        Ok(Arc::new(connector))
    }

    /// A simulated system with a smart host plays an on-premises mail
    /// server: it receives and sends on that host. Without one nothing is
    /// known (the configuration's `[systems.dns]` says what it plays).
    fn dns_defaults(&self, system: &DnsPlace<'_>) -> DnsDefaults {
        let hosts: Vec<String> = system.smart_host.map(String::from).into_iter().collect();
        DnsDefaults {
            mx_hosts: hosts.clone(),
            spf_relays: hosts,
            ..DnsDefaults::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_simulated_system_with_a_smart_host_receives_and_sends_on_it() {
        let connection = toml::Table::new();
        let place = |smart_host| DnsPlace {
            system: "ldap",
            routing_domain: None,
            smart_host,
            connection: &connection,
        };
        let dns = KIND.dns_defaults(&place(Some("mail.acmecorp.com")));
        assert_eq!(dns.mx_hosts, ["mail.acmecorp.com"]);
        assert_eq!(dns.spf_relays, ["mail.acmecorp.com"]);
        assert_eq!(KIND.dns_defaults(&place(None)), DnsDefaults::default());
    }
}
