//! The doctor's examination (`coexist doctor`): what stands in the way of
//! mail flowing between the configured systems, as [`Finding`]s. It
//! checks the policy's routes (catch-all relays, routing domains), the
//! entries the last sync staged for mail loops (coexist's and those it did
//! not make), and asks each system's connector for its own checks
//! (credentials, schema, routing settings). It reads, and changes nothing.

use coexist_connector::Finding;

use crate::engine::{Engine, EngineError};
use crate::reconcile::ConflictKind;

/// Every finding about the engine's systems: mail routing first (the
/// policy's route conflicts, the staged entries' loops, then the route
/// notices), then each system's connector checks in configuration order,
/// their `check` prefixed with the system's id. A connector that cannot be
/// set up is a failed finding, not an error.
pub async fn examine(engine: &Engine) -> Result<Vec<Finding>, EngineError> {
    let mut findings = Vec::new();
    let mut conflicts = Vec::new();
    let mut notices = Vec::new();
    crate::reconcile::diff::check_routes(&engine.config.policy, &mut conflicts, &mut notices);
    // The entries as the last sync staged them, coexist's and those it did
    // not make: every one takes part in the loop check.
    let staged = engine.staged().await?;
    let entries = crate::reconcile::reconcile(&staged, &engine.config.policy);
    let entry_loops = entries
        .conflicts
        .into_iter()
        .filter(|c| c.kind == ConflictKind::RoutingLoop && !c.addresses.is_empty());
    let routing = conflicts.into_iter().chain(entry_loops).map(|c| c.message);
    for message in routing.chain(notices.into_iter().map(|n| n.message)) {
        findings.push(Finding {
            check: "mail routing".into(),
            ok: false,
            manual: false,
            detail: message,
        });
    }
    for system in &engine.config.systems {
        match crate::connectors::connect(&engine.config, system) {
            Ok(connector) => {
                for mut finding in connector.doctor().await {
                    finding.check = format!("{}: {}", system.id, finding.check);
                    findings.push(finding);
                }
            }
            Err(error) => findings.push(Finding {
                check: format!("{}: connector set-up", system.id),
                ok: false,
                manual: false,
                detail: error.to_string(),
            }),
        }
    }
    Ok(findings)
}
