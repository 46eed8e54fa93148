//! The doctor's examination (`coexist doctor`): what stands in the way of
//! mail flowing between the configured systems, as [`Finding`]s. It
//! checks the policy's routes (catch-all relays, routing domains), the
//! entries the last sync staged for mail loops (coexist's and those it did
//! not make), and asks each system's connector for its own checks
//! (credentials, schema, routing settings). It reads, and changes nothing.

use coexist_connector::{Finding, Place};

use crate::engine::{Engine, EngineError};
use crate::reconcile::policy::UnknownRecipient;
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
        for mut finding in system
            .kind
            .0
            .manual_checks(&place(&engine.config.policy, &system.id))
        {
            finding.check = format!("{}: {}", system.id, finding.check);
            findings.push(finding);
        }
    }
    Ok(findings)
}

/// Where `system` stands in the policy's mail flow, for its kind's manual
/// checks.
fn place<'a>(policy: &'a crate::reconcile::Policy, system: &'a str) -> Place<'a> {
    let routing = |id: &str| {
        policy
            .systems
            .iter()
            .find(|s| s.id == id)
            .and_then(|s| s.routing_domain.as_deref())
    };
    let own = policy.systems.iter().find(|s| s.id == system);
    Place {
        system,
        routing_domain: routing(system),
        shared_domains: &policy.shared_domains,
        receives_from_the_internet: policy.mx.as_deref() == Some(system),
        relays_unknown_to: own.and_then(|s| match &s.unknown_recipient {
            UnknownRecipient::Relay(to) => Some((to.as_str(), routing(to))),
            UnknownRecipient::Reject => None,
        }),
        others: policy
            .systems
            .iter()
            .filter(|s| s.id != system)
            .map(|s| (s.id.as_str(), s.routing_domain.as_deref()))
            .collect(),
    }
}
