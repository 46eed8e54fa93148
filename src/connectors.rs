//! Builds the connector of each configured system.

use std::sync::Arc;

use serde::de::DeserializeOwned;

use coexist_connector::Connector;
use coexist_simulated::{SimulatedConfig, SimulatedConnector};

use crate::config::{Config, ConfigError, SystemConfig, SystemKind};

fn settings<T: DeserializeOwned>(config: &Config, system: &SystemConfig) -> Result<T, ConfigError> {
    toml::Value::Table(system.connection.clone())
        .try_into()
        .map_err(|e: toml::de::Error| {
            config.connection_error(system, e.message().trim().to_string())
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
        SystemKind::Ldap | SystemKind::ActiveDirectory | SystemKind::Google => Err(config
            .connection_error(
                system,
                "this build of coexist has no connector for this kind yet",
            )),
    }
}

/// The connectors of every configured system, in configuration order.
pub fn connect_all(config: &Config) -> Result<Vec<Arc<dyn Connector>>, ConfigError> {
    config.systems.iter().map(|s| connect(config, s)).collect()
}
