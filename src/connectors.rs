//! Builds the connector of each configured system, through its registered
//! kind ([`crate::kinds`]): the kind's crate parses its connection table.

use std::sync::Arc;

use coexist_connector::{Connector, Setup};

use crate::config::{Config, ConfigError, SystemConfig};

/// The connector of `system`. Connection settings are checked here, so a
/// bad setting is a configuration error naming its table (or the line of
/// the key to blame).
pub fn connect(config: &Config, system: &SystemConfig) -> Result<Arc<dyn Connector>, ConfigError> {
    let base = config.folder();
    let routing_domain = config
        .policy
        .system(&system.id)
        .and_then(|p| p.routing_domain.as_deref());
    let setup = Setup {
        system: &system.id,
        connection: &system.connection,
        base,
        routing_domain,
    };
    system.kind.connect(&setup).map_err(|e| {
        let mut error = config.connection_error(system, e.message);
        if let Some(line) = e
            .key
            .and_then(|key| system.connection_keys.get(&key).copied())
        {
            error.line = Some(line);
        }
        error
    })
}

/// The connectors of every configured system, in configuration order,
/// then those of their address books (`[systems.address_book]`; each a
/// system of its own, `<system>.address_book`, which only the engine's
/// pulls and plans name).
pub fn connect_all(config: &Config) -> Result<Vec<Arc<dyn Connector>>, ConfigError> {
    let mut connectors: Vec<Arc<dyn Connector>> = config
        .systems
        .iter()
        .map(|s| connect(config, s))
        .collect::<Result<_, _>>()?;
    for (n, system) in config.systems.iter().enumerate() {
        let Some(book) = &system.address_book else {
            continue;
        };
        let Some(connector) = connectors.get(n) else {
            continue;
        };
        let book_connector =
            connector
                .address_book(&book.id, &book.base)
                .map_err(|e| ConfigError {
                    file: config.path.display().to_string(),
                    line: book.line,
                    key: format!("systems[{n}].address_book.base"),
                    message: e.to_string(),
                })?;
        connectors.push(book_connector);
    }
    Ok(connectors)
}
