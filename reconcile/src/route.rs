//! Mail-flow tracing: where a message sent from one system to an address
//! goes, given what each system holds and the mail topology.
//!
//! The same pure tracer serves `coexist route` (today's staged objects) and
//! the reconciler's loop check (the stubs it is about to write).

use serde::Serialize;

use coexist_model::{split_address, Route};

use super::policy::{DisabledMailboxes, Policy, UnknownRecipient};

/// What the tracer asks about the systems' contents.
pub trait MailDirectory {
    /// Whether `system` hosts a mailbox for `address` (normalised).
    fn hosts_mailbox(&self, system: &str, address: &str) -> bool;
    /// Whether the account of that mailbox is disabled or suspended (the
    /// system's `disabled_mailboxes` then decides: Google bounces).
    fn mailbox_disabled(&self, _system: &str, _address: &str) -> bool {
        false
    }
    /// Where an entry of `system` for `address` forwards mail (a stub or a
    /// hand-made forwarder), if it has one.
    fn forward(&self, system: &str, address: &str) -> Option<Route>;
}

/// Where a message starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// A user of this system sends it.
    System(String),
    /// It arrives from outside the organisation (the MX receives it).
    Internet,
}

/// One step of a message's way.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Hop {
    /// The system handling the message (`internet` outside the organisation).
    pub system: String,
    /// The address the message is for at this step.
    pub address: String,
    /// What the system does with it.
    pub action: String,
}

/// How a message's way ends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum Outcome {
    /// Delivered into a mailbox of `system` after `hops` transfers between systems.
    Delivered { system: String, hops: usize },
    /// Sent out of the organisation.
    External { domain: String, hops: usize },
    /// Bounced by `system`.
    Bounced { system: String, reason: String },
    /// Goes round in circles.
    Looping { cycle: Vec<String> },
}

/// The whole way of a message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Trace {
    pub hops: Vec<Hop>,
    pub outcome: Outcome,
}

const MAX_HOPS: usize = 25;

/// Traces a message to `address` from `origin`.
pub fn trace(
    policy: &Policy,
    directory: &dyn MailDirectory,
    origin: &Origin,
    address: &str,
) -> Trace {
    let address = address.trim().to_lowercase();
    let mut hops = Vec::new();
    let mut seen: Vec<(String, String)> = Vec::new();
    let mut transfers = 0usize;

    // Where the message is now, and for which address.
    let mut current: Option<String> = match origin {
        Origin::System(s) => Some(s.clone()),
        Origin::Internet => None,
    };
    let mut target = address;

    loop {
        let Some((local, domain)) =
            split_address(&target).map(|(l, d)| (l.to_string(), d.to_string()))
        else {
            return Trace {
                hops,
                outcome: Outcome::Bounced {
                    system: current.unwrap_or_else(|| "internet".into()),
                    reason: format!("`{target}` is not an address"),
                },
            };
        };
        let routed_to = policy
            .system_by_routing_domain(&domain)
            .map(|s| s.id.clone());
        let shared = policy.is_shared(&domain);

        let Some(system) = current.clone() else {
            // On the internet: the domain's MX decides.
            let next = if let Some(rd_system) = routed_to {
                rd_system
            } else if shared {
                match &policy.mx {
                    Some(mx) => mx.clone(),
                    None => {
                        return Trace {
                            hops,
                            outcome: Outcome::Bounced {
                                system: "internet".into(),
                                reason: "no MX is configured for the shared domain".into(),
                            },
                        }
                    }
                }
            } else {
                return Trace {
                    hops,
                    outcome: Outcome::External {
                        domain,
                        hops: transfers,
                    },
                };
            };
            hops.push(Hop {
                system: "internet".into(),
                address: target.clone(),
                action: format!("MX of {domain} → {next}"),
            });
            transfers += 1;
            current = Some(next);
            continue;
        };

        if seen.iter().any(|(s, a)| *s == system && *a == target) || hops.len() > MAX_HOPS {
            // The systems the message passes, each stay named once.
            let mut cycle: Vec<String> = hops.iter().map(|h| h.system.clone()).collect();
            cycle.push(system);
            cycle.dedup();
            return Trace {
                hops,
                outcome: Outcome::Looping { cycle },
            };
        }
        seen.push((system.clone(), target.clone()));

        // Mail for this system's routing domain: a mailbox listing the
        // address takes it; otherwise, where the routing domain is a blanket
        // alias of the shared domain, it is read as `local@<shared domain>`.
        let for_here = routed_to.as_deref() == Some(system.as_str());
        if for_here && !directory.hosts_mailbox(&system, &target) {
            let alias = policy
                .system(&system)
                .is_none_or(|s| s.routing_domain_is_alias);
            if !alias {
                return Trace {
                    hops,
                    outcome: Outcome::Bounced {
                        system,
                        reason: format!(
                            "no mailbox there lists {target} (its routing domain {domain} is no alias of the shared domain)"
                        ),
                    },
                };
            }
            if let Some(primary) = policy.shared_domains.first() {
                let rewritten = format!("{local}@{primary}");
                hops.push(Hop {
                    system: system.clone(),
                    address: target.clone(),
                    action: format!("routing domain alias → {rewritten}"),
                });
                target = rewritten;
                continue;
            }
        }

        if !shared && !for_here {
            // Another system's routing domain, or the outside world.
            match routed_to {
                Some(next) => {
                    hops.push(Hop {
                        system: system.clone(),
                        address: target.clone(),
                        action: format!("send to {domain} → {next}"),
                    });
                    transfers += 1;
                    current = Some(next);
                }
                None => {
                    hops.push(Hop {
                        system: system.clone(),
                        address: target.clone(),
                        action: "send to the internet".into(),
                    });
                    return Trace {
                        hops,
                        outcome: Outcome::External {
                            domain,
                            hops: transfers,
                        },
                    };
                }
            }
            continue;
        }

        if directory.hosts_mailbox(&system, &target) {
            let bounces = policy
                .system(&system)
                .is_some_and(|s| s.disabled_mailboxes == DisabledMailboxes::Bounce);
            if bounces && directory.mailbox_disabled(&system, &target) {
                hops.push(Hop {
                    system: system.clone(),
                    address: target.clone(),
                    action: "mailbox of a disabled account: rejected".into(),
                });
                return Trace {
                    hops,
                    outcome: Outcome::Bounced {
                        reason: format!(
                            "the account holding {target} is disabled or suspended, and {system} bounces mail for such accounts"
                        ),
                        system,
                    },
                };
            }
            hops.push(Hop {
                system: system.clone(),
                address: target.clone(),
                action: "local delivery".into(),
            });
            return Trace {
                hops,
                outcome: Outcome::Delivered {
                    system,
                    hops: transfers,
                },
            };
        }

        match directory.forward(&system, &target) {
            Some(Route::Address(to)) => {
                hops.push(Hop {
                    system: system.clone(),
                    address: target.clone(),
                    action: format!("forwarding entry → {to}"),
                });
                target = to.to_lowercase();
                continue;
            }
            Some(Route::Host(host)) => {
                let Some(next) = policy.system_by_smart_host(&host).map(|s| s.id.clone()) else {
                    hops.push(Hop {
                        system: system.clone(),
                        address: target.clone(),
                        action: format!("relay to smart host {host}"),
                    });
                    return Trace {
                        hops,
                        outcome: Outcome::Bounced {
                            system,
                            reason: format!("smart host {host} is not a configured system"),
                        },
                    };
                };
                hops.push(Hop {
                    system: system.clone(),
                    address: target.clone(),
                    action: format!("relay to smart host {host} → {next}"),
                });
                transfers += 1;
                current = Some(next);
                continue;
            }
            Some(Route::DomainRouting) | None => {}
        }

        let unknown = policy
            .system(&system)
            .map(|s| s.unknown_recipient.clone())
            .unwrap_or(UnknownRecipient::Reject);
        match unknown {
            UnknownRecipient::Reject => {
                hops.push(Hop {
                    system: system.clone(),
                    address: target.clone(),
                    action: "unknown recipient: rejected".into(),
                });
                return Trace {
                    hops,
                    outcome: Outcome::Bounced {
                        system,
                        reason: format!("{target} is not a recipient there"),
                    },
                };
            }
            UnknownRecipient::Relay(next) => {
                hops.push(Hop {
                    system: system.clone(),
                    address: target.clone(),
                    action: format!("unknown recipient: relay (catch-all) → {next}"),
                });
                transfers += 1;
                current = Some(next);
            }
        }
    }
}

/// Today's mail directory, as staged: mailboxes, coexist's stubs and the
/// forwarding entries coexist did not make.
#[derive(Debug, Default)]
pub struct StagedView {
    mailboxes: std::collections::HashSet<(String, String)>,
    disabled: std::collections::HashSet<(String, String)>,
    forwards: std::collections::HashMap<(String, String), Route>,
}

impl StagedView {
    /// Indexes `staged`.
    pub fn new(staged: &super::Staged) -> Self {
        let mut view = StagedView::default();
        for system in &staged.systems {
            for recipient in &system.recipients {
                for raw in recipient.addresses() {
                    let Ok(address) = coexist_model::normalize_address(raw) else {
                        continue;
                    };
                    if recipient.mailbox {
                        if !recipient.enabled {
                            view.disabled.insert((system.id.clone(), address.clone()));
                        }
                        view.mailboxes.insert((system.id.clone(), address));
                    } else if let Some(to) = &recipient.forwards_to {
                        view.forwards
                            .insert((system.id.clone(), address), Route::Address(to.clone()));
                    }
                }
            }
            for found in &system.stubs {
                for address in
                    std::iter::once(&found.stub.primary_address).chain(found.stub.aliases.iter())
                {
                    view.forwards.insert(
                        (system.id.clone(), address.clone()),
                        found.stub.route.clone(),
                    );
                }
            }
        }
        view
    }
}

impl MailDirectory for StagedView {
    fn hosts_mailbox(&self, system: &str, address: &str) -> bool {
        self.mailboxes
            .contains(&(system.to_string(), address.to_string()))
    }

    fn mailbox_disabled(&self, system: &str, address: &str) -> bool {
        self.disabled
            .contains(&(system.to_string(), address.to_string()))
    }

    fn forward(&self, system: &str, address: &str) -> Option<Route> {
        self.forwards
            .get(&(system.to_string(), address.to_string()))
            .cloned()
    }
}
