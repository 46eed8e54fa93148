//! What the reconciler needs to know of the organisation: the part of the
//! configuration that decides what should exist. Built from the config file
//! by `coexist::config` from the configuration file, or by hand in tests
//! and benchmarks.

use std::collections::BTreeMap;

pub use coexist_model::{DisabledMailboxes, StubStyle};

/// What a system does with mail for an address of the shared domain that it
/// neither hosts nor holds a stub or forwarder for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UnknownRecipient {
    /// It bounces the message (invalid address).
    Reject,
    /// It relays the message to another system (a catch-all route, a smart
    /// host, Exchange's internal relay).
    Relay(String),
}

/// One system, as the reconciler sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SystemPolicy {
    pub id: String,
    /// The domain that delivers straight to this system, if it has one.
    pub routing_domain: Option<String>,
    /// The host other systems relay to in the smart-host style.
    pub smart_host: Option<String>,
    pub stub_style: StubStyle,
    pub unknown_recipient: UnknownRecipient,
    /// What the system does with mail for a disabled account's mailbox.
    pub disabled_mailboxes: DisabledMailboxes,
    /// Whether every mailbox answers at `local@<routing domain>` for each
    /// of its shared-domain addresses (a domain alias: Google, an LDAP mail
    /// server's virtual domain). When `false` (Microsoft 365), mail for the
    /// routing domain reaches only the addresses the mailboxes list there,
    /// so stubs route to the recipient's own routing address.
    pub routing_domain_is_alias: bool,
}

/// How a recipient's home is decided when it is not simply where the
/// mailbox is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HomeAttribute {
    /// The master directory holding the attribute.
    pub system: String,
    /// The attribute read into `Recipient::extra`.
    pub attribute: String,
    /// Attribute value → home system id (`gapps` → `google`).
    pub values: BTreeMap<String, String>,
}

/// Everything the reconciler is told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// The shared domains, normalised. The first is the one routing domains
    /// alias.
    pub shared_domains: Vec<String>,
    /// The systems, in configuration order.
    pub systems: Vec<SystemPolicy>,
    /// Optional: a directory attribute decides the home.
    pub home_attribute: Option<HomeAttribute>,
    /// The default order of systems for attributes (first non-empty wins).
    /// Empty: the home first, then the others in configuration order.
    pub precedence: Vec<String>,
    /// Per-attribute order overriding `precedence`.
    pub precedence_by_attribute: BTreeMap<String, Vec<String>>,
    /// Whether disabled accounts stay in the GAL.
    pub include_disabled: bool,
    /// The system the shared domain's MX points at.
    pub mx: Option<String>,
}

impl Policy {
    /// The system with id `id`.
    pub fn system(&self, id: &str) -> Option<&SystemPolicy> {
        self.systems.iter().find(|s| s.id == id)
    }

    /// Whether `domain` (normalised) is a shared domain.
    pub fn is_shared(&self, domain: &str) -> bool {
        self.shared_domains.iter().any(|d| d == domain)
    }

    /// The system whose routing domain is `domain`.
    pub fn system_by_routing_domain(&self, domain: &str) -> Option<&SystemPolicy> {
        self.systems
            .iter()
            .find(|s| s.routing_domain.as_deref() == Some(domain))
    }

    /// The systems whose catch-all relays (`unknown_recipient = { relay }`)
    /// go round in a circle, in relay order starting from the first
    /// configured one in the cycle; empty when there is none. Mail to any
    /// address no system knows would loop along it.
    pub fn relay_cycle(&self) -> Vec<String> {
        relay_cycle(&self.systems)
            .into_iter()
            .map(|i| self.systems[i].id.clone())
            .collect()
    }

    /// The policy written out field by field, one line each, in a form
    /// that changes only when what the policy says changes: the digest a
    /// saved plan carries is taken over this, not over a `Debug` dump. A
    /// field added later is written only when it differs from the value
    /// every older configuration implied, so adding one does not make the
    /// plans saved before stale.
    pub fn stable_encoding(&self) -> String {
        let mut out = String::from("policy v2\n");
        let line = |out: &mut String, key: &str, value: &str| {
            out.push_str(key);
            out.push('=');
            out.push_str(value);
            out.push('\n');
        };
        line(&mut out, "shared_domains", &self.shared_domains.join(","));
        for system in &self.systems {
            line(&mut out, "system", &system.id);
            line(
                &mut out,
                "  routing_domain",
                system.routing_domain.as_deref().unwrap_or(""),
            );
            line(
                &mut out,
                "  smart_host",
                system.smart_host.as_deref().unwrap_or(""),
            );
            line(&mut out, "  stub_style", system.stub_style.name());
            let unknown = match &system.unknown_recipient {
                UnknownRecipient::Reject => "reject".to_string(),
                UnknownRecipient::Relay(to) => format!("relay:{to}"),
            };
            line(&mut out, "  unknown_recipient", &unknown);
            line(
                &mut out,
                "  disabled_mailboxes",
                match system.disabled_mailboxes {
                    DisabledMailboxes::Bounce => "bounce",
                    DisabledMailboxes::Deliver => "deliver",
                },
            );
            // Added later: written only when it is not what every older
            // configuration implied (a blanket alias).
            if !system.routing_domain_is_alias {
                line(&mut out, "  routing_domain_is_alias", "false");
            }
        }
        if let Some(rule) = &self.home_attribute {
            line(&mut out, "home.system", &rule.system);
            line(&mut out, "home.attribute", &rule.attribute);
            for (value, system) in &rule.values {
                line(&mut out, "home.value", &format!("{value}:{system}"));
            }
        }
        line(&mut out, "precedence", &self.precedence.join(","));
        for (attribute, order) in &self.precedence_by_attribute {
            line(
                &mut out,
                &format!("precedence.{attribute}"),
                &order.join(","),
            );
        }
        line(
            &mut out,
            "include_disabled",
            if self.include_disabled {
                "true"
            } else {
                "false"
            },
        );
        line(&mut out, "mx", self.mx.as_deref().unwrap_or(""));
        out
    }

    /// The system reached through smart host `host`.
    pub fn system_by_smart_host(&self, host: &str) -> Option<&SystemPolicy> {
        self.systems.iter().find(|s| {
            s.smart_host
                .as_deref()
                .is_some_and(|h| h.eq_ignore_ascii_case(host))
        })
    }
}

/// The positions in `systems` of a cycle of catch-all relays, in relay
/// order, starting from the first configured system on it; empty when the
/// relays end somewhere (a system that rejects, or a relay to no system).
pub fn relay_cycle(systems: &[SystemPolicy]) -> Vec<usize> {
    let next = |i: usize| match &systems[i].unknown_recipient {
        UnknownRecipient::Relay(to) => systems.iter().position(|s| &s.id == to),
        UnknownRecipient::Reject => None,
    };
    for start in 0..systems.len() {
        let mut path = vec![start];
        let mut at = start;
        while let Some(to) = next(at) {
            if let Some(seen) = path.iter().position(|&p| p == to) {
                let mut cycle = path.split_off(seen);
                // Start from the first configured system on the cycle.
                let first = cycle
                    .iter()
                    .enumerate()
                    .min_by_key(|(_, &p)| p)
                    .map_or(0, |(k, _)| k);
                cycle.rotate_left(first);
                return cycle;
            }
            path.push(to);
            at = to;
        }
    }
    Vec::new()
}
