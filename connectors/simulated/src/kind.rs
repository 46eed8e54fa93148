//! The simulated system as a kind (`kind = "simulated"`): it can play any
//! system, so it writes every stub style (the default: `routing_address`).

use std::path::Path;
use std::sync::Arc;

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

    fn stub_styles(&self) -> &'static [StubStyle] {
        &[
            StubStyle::RoutingAddress,
            StubStyle::SmartHost,
            StubStyle::DomainRouting,
            StubStyle::None,
        ]
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
}
