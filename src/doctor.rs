//! The doctor's examination (`coexist doctor`): what stands in the way of
//! mail flowing between the configured systems, as [`Finding`]s. It
//! checks the policy's routes (catch-all relays, routing domains), the
//! entries the last sync staged for mail loops (coexist's and those it did
//! not make), asks each system's connector for its own checks
//! (credentials, schema, routing settings), and, when the configuration
//! has a `[dns]` table, checks the DNS the topology needs (MX, SPF, DKIM,
//! DMARC, autodiscover; the `coexist-dns` crate). It reads, and changes
//! nothing.

use coexist_connector::kind::DnsPlace;
use coexist_connector::{Finding, Place, StubStyle};

use crate::config::Config;
use crate::engine::{Engine, EngineError};
use crate::reconcile::policy::UnknownRecipient;
use crate::reconcile::ConflictKind;

/// Every finding about the engine's systems: mail routing first (the
/// policy's route conflicts, the staged entries' loops, then the route
/// notices), then each system's connector checks in configuration order,
/// their `check` prefixed with the system's id, then the DNS checks
/// ([`dns`]). A connector that cannot be set up is a failed finding, not an
/// error.
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
        findings.push(Finding::failed("mail routing", message));
    }
    for system in &engine.config.systems {
        match crate::connectors::connect(&engine.config, system) {
            Ok(connector) => {
                for mut finding in connector.doctor().await {
                    finding.check = format!("{}: {}", system.id, finding.check);
                    findings.push(finding);
                }
            }
            Err(error) => findings.push(Finding::failed(
                format!("{}: connector set-up", system.id),
                error.to_string(),
            )),
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
    findings.extend(dns(&engine.config).await);
    Ok(findings)
}

/// The DNS findings: the configuration's topology checked against DNS as
/// `[dns]` says to resolve it, each finding naming its record, what it
/// holds and what it should hold. Without a `[dns]` table DNS is not
/// checked, which one passed finding says.
pub async fn dns(config: &Config) -> Vec<Finding> {
    let Some(settings) = &config.dns else {
        // Shown as something to look at: the DNS is what admins get wrong
        // most, and doctor checks it once it is told which resolver gives
        // the world's view (an internal one may answer otherwise).
        return vec![Finding::manual(
            "DNS",
            "not checked: the configuration has no [dns] table; add one (empty: the \
             system's resolvers; nameserver = \"IP[:PORT]\" for a resolver that sees the \
             public zones, timeout = SECONDS) for doctor to check MX, SPF, DKIM, DMARC and \
             autodiscover",
        )];
    };
    coexist_dns::examine(&dns_topology(config), settings)
        .await
        .into_iter()
        .map(|f| {
            let check = f.check.to_string();
            let finding = match f.status {
                coexist_dns::Status::Ok => Finding::passed(check, f.detail),
                coexist_dns::Status::Fail => Finding::failed(check, f.detail),
                coexist_dns::Status::Look => Finding::manual(check, f.detail),
            };
            finding.about(f.record, f.found, f.expected)
        })
        .collect()
}

/// The topology as the DNS checks need it: the policy's shared domains,
/// MX system and routing domains, each system's kind's DNS defaults
/// ([`coexist_connector::Kind::dns_defaults`]) overridden by its
/// `[systems.dns]`, and where each system forwards mail.
pub fn dns_topology(config: &Config) -> coexist_dns::Topology {
    let policy = &config.policy;
    let systems = config
        .systems
        .iter()
        .map(|system| {
            let own = policy.system(&system.id);
            let routing_domain = own.and_then(|s| s.routing_domain.clone());
            let smart_host = own.and_then(|s| s.smart_host.clone());
            let defaults = system.kind.dns_defaults(&DnsPlace {
                system: &system.id,
                routing_domain: routing_domain.as_deref(),
                smart_host: smart_host.as_deref(),
                connection: &system.connection,
            });
            let set = &system.dns;
            coexist_dns::SystemDns {
                id: system.id.clone(),
                mx_hosts: set.mx_hosts.clone().unwrap_or(defaults.mx_hosts),
                spf_includes: set.spf_includes.clone().unwrap_or(defaults.spf_includes),
                spf_relays: set.spf_relays.clone().unwrap_or_else(|| {
                    defaults
                        .spf_relays
                        .iter()
                        .filter_map(|r| r.parse().ok())
                        .collect()
                }),
                dkim_selectors: set
                    .dkim_selectors
                    .clone()
                    .unwrap_or(defaults.dkim_selectors),
                autodiscover: set.autodiscover.clone().or(defaults.autodiscover),
                relays_to: relays_to(policy, &system.id),
                routing_domain,
            }
        })
        .collect();
    coexist_dns::Topology {
        shared_domains: policy.shared_domains.clone(),
        mx: policy.mx.clone(),
        systems,
    }
}

/// The systems `system` forwards mail to: those its stubs route to (by
/// their routing domain or smart host), and its catch-all relay.
fn relays_to(policy: &crate::reconcile::Policy, system: &str) -> Vec<String> {
    let Some(own) = policy.system(system) else {
        return Vec::new();
    };
    let routes = matches!(
        own.stub_style,
        StubStyle::RoutingAddress | StubStyle::SmartHost | StubStyle::MailContact
    );
    let mut to: Vec<String> = policy
        .systems
        .iter()
        .filter(|other| other.id != system && routes)
        .filter(|other| match own.stub_style {
            StubStyle::SmartHost => other.smart_host.is_some(),
            _ => other.routing_domain.is_some(),
        })
        .map(|other| other.id.clone())
        .collect();
    if let UnknownRecipient::Relay(relay) = &own.unknown_recipient {
        if !to.contains(relay) {
            to.push(relay.clone());
        }
    }
    to
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
