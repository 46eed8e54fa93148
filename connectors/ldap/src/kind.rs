//! The two kinds of directory this crate serves: an LDAP mail server's
//! directory (`kind = "ldap"`: OpenLDAP, qmail-ldap, Postfix/Dovecot) and
//! Active Directory (`kind = "active_directory"`). The kind decides the
//! [`Flavor`]; a `flavor` written in the connection table must agree.

use std::path::Path;
use std::sync::Arc;

use coexist_connector::{Connector, DisabledMailboxes, Kind, Setup, SetupError, StubStyle};

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
}
