//! Builds the connector of each configured system.

use std::sync::Arc;

use serde::de::DeserializeOwned;

use coexist_connector::{Connector, SecretRef};
use coexist_google::{GoogleConfig, GoogleConnector};
use coexist_ldap::{LdapConfig, LdapConnector};
use coexist_simulated::{SimulatedConfig, SimulatedConnector};

use crate::config::{Config, ConfigError, SystemConfig, SystemKind};

fn settings<T: DeserializeOwned>(config: &Config, system: &SystemConfig) -> Result<T, ConfigError> {
    toml::Value::Table(system.connection.clone())
        .try_into()
        .map_err(|e: toml::de::Error| {
            let message = e.message().trim().to_string();
            let mut error = config.connection_error(system, message.clone());
            // A misspelt setting: point at its own line.
            if let Some(line) = message
                .strip_prefix("unknown field `")
                .and_then(|rest| rest.split_once('`'))
                .and_then(|(key, _)| system.connection_keys.get(key))
            {
                error.line = Some(*line);
            }
            error
        })
}

/// The connector of `system`. Connection settings are checked here, so a
/// bad setting is a configuration error naming its table.
pub fn connect(config: &Config, system: &SystemConfig) -> Result<Arc<dyn Connector>, ConfigError> {
    match system.kind {
        SystemKind::Simulated => {
            let mut settings: SimulatedConfig = settings(config, system)?;
            settings.seed = settings.seed.map(|p| config.relative(&p));
            settings.state = settings.state.map(|p| config.relative(&p));
            let connector = SimulatedConnector::new(&system.id, settings)
                .map_err(|e| config.connection_error(system, e.to_string()))?;
            Ok(Arc::new(connector))
        }
        SystemKind::Ldap | SystemKind::ActiveDirectory => {
            let mut settings: LdapConfig = settings(config, &with_flavor(config, system)?)?;
            settings.ca_file = settings
                .ca_file
                .map(|p| config.relative(p.as_ref()).display().to_string());
            if let SecretRef::File { file } = &settings.password {
                settings.password = SecretRef::File {
                    file: config.relative(file.as_ref()).display().to_string(),
                };
            }
            let connector = LdapConnector::new(&system.id, settings)
                .map_err(|e| config.connection_error(system, e.to_string()))?;
            Ok(Arc::new(connector))
        }
        SystemKind::Google => {
            let mut settings: GoogleConfig = settings(config, system)?;
            if let SecretRef::File { file } = &settings.service_account_key {
                settings.service_account_key = SecretRef::File {
                    file: config.relative(file.as_ref()).display().to_string(),
                };
            }
            // The routing domain is the system's (`coexist doctor` checks
            // it); the connection table cannot set it.
            settings.routing_domain = config
                .policy
                .system(&system.id)
                .and_then(|p| p.routing_domain.clone());
            let connector = GoogleConnector::new(&system.id, settings)
                .map_err(|e| config.connection_error(system, e.to_string()))?;
            Ok(Arc::new(connector))
        }
    }
}

/// `system` with the LDAP flavor its kind implies (`ldap` is OpenLDAP and
/// its kin, `active_directory` is AD) added to its connection settings; a
/// `flavor` written there must agree with the kind.
fn with_flavor(config: &Config, system: &SystemConfig) -> Result<SystemConfig, ConfigError> {
    let flavor = match system.kind {
        SystemKind::ActiveDirectory => "active_directory",
        _ => "openldap",
    };
    let mut system = system.clone();
    match system.connection.get("flavor") {
        None => {
            system
                .connection
                .insert("flavor".into(), toml::Value::String(flavor.into()));
        }
        Some(toml::Value::String(written)) if written == flavor => {}
        Some(written) => {
            return Err(config.connection_error(
                &system,
                format!(
                    "flavor {written} does not fit kind {:?}; leave it out, the kind decides it",
                    system.kind
                ),
            ))
        }
    }
    Ok(system)
}

/// The connectors of every configured system, in configuration order.
pub fn connect_all(config: &Config) -> Result<Vec<Arc<dyn Connector>>, ConfigError> {
    config.systems.iter().map(|s| connect(config, s)).collect()
}
