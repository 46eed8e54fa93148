//! Entries coexist did not make, in the routing checks.
//!
//! A recipient's addresses may be carried, in systems other than its home,
//! by entries coexist did not write: a forwarder left from a migration, an
//! alias entry, a mail contact made by hand, a mailbox left behind. coexist
//! never changes them, but mail follows them, so every one takes part in the
//! loop and reachability checks:
//!
//! 1. In a system holding such entries, coexist's own stub carries only the
//!    addresses the entries do not cover, and only those that would not reach
//!    the home without it (a catch-all may already carry them). Two routing
//!    entries for one address in one system would be ambiguous.
//! 2. Mail to every address of the recipient is then traced from every
//!    system and from the internet, through those entries and the stubs
//!    coexist would write. A loop is a [`ConflictKind::RoutingLoop`] naming
//!    the entries and what to do; the recipient is held (no new stubs). Mail
//!    that ends anywhere but the home's mailbox is a notice.
//!
//! Recipients with no such entries (nearly all) are covered by the cheaper
//! per-pair check in [`super::diff::check_routes`].

use rustc_hash::FxHashMap;

use coexist_model::Route;

use super::diff::{stub_route, LoopingPairs};
use super::gal::Cluster;
use super::policy::Policy;
use super::route::{trace, MailDirectory, Origin, Outcome, Trace};
use super::{Conflict, ConflictKind, GalEntry, Notice};

/// What coexist writes for one recipient in the systems that hold entries it
/// did not make for the recipient's addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// Per system (by position in the policy): `None` where no such entry
    /// exists (the usual full stub); `Some(addresses)` where one does: the
    /// addresses coexist's stub there carries, the first as its primary
    /// (empty: no stub there).
    pub stub_addresses: Vec<Option<Vec<String>>>,
}

/// The outcome of the checks.
#[derive(Debug, Default)]
pub struct Checked {
    /// GAL anchor → what to write, for recipients with foreign entries.
    pub decisions: FxHashMap<String, Decision>,
    /// GAL anchors of the recipients whose mail loops: held, no new stubs.
    pub looping: Vec<String>,
}

/// The mail world of one recipient: its home mailbox, the entries coexist
/// did not make, and the stubs coexist would write.
struct World<'a> {
    policy: &'a Policy,
    entry: &'a GalEntry,
    cluster: &'a Cluster,
    stub_addresses: &'a [Option<Vec<String>>],
    looping: &'a LoopingPairs,
}

impl<'a> World<'a> {
    fn new(
        policy: &'a Policy,
        entry: &'a GalEntry,
        cluster: &'a Cluster,
        stub_addresses: &'a [Option<Vec<String>>],
        looping: &'a LoopingPairs,
    ) -> Self {
        World {
            policy,
            entry,
            cluster,
            stub_addresses,
            looping,
        }
    }

    fn foreign_in<'b>(
        &'b self,
        system: &'b str,
        address: &'b str,
    ) -> impl Iterator<Item = &'b super::gal::ForeignEntry> + 'b {
        self.cluster
            .foreign
            .iter()
            .filter(move |f| f.system == system && f.addresses.iter().any(|a| a == address))
    }
}

impl MailDirectory for World<'_> {
    fn hosts_mailbox(&self, system: &str, address: &str) -> bool {
        (system == self.entry.home
            && (self.cluster.home_addresses.iter().any(|a| a == address)
                || self.entry.routing_address.as_deref() == Some(address)))
            || self.foreign_in(system, address).any(|f| f.mailbox)
    }

    fn mailbox_disabled(&self, system: &str, address: &str) -> bool {
        system == self.entry.home
            && self.cluster.home_disabled
            && self.cluster.home_addresses.iter().any(|a| a == address)
    }

    fn forward(&self, system: &str, address: &str) -> Option<Route> {
        if let Some(entry) = self.foreign_in(system, address).find(|f| !f.mailbox) {
            return entry.forwards_to.clone().map(Route::Address);
        }
        if system == self.entry.home || !self.entry.addresses.iter().any(|a| a == address) {
            return None;
        }
        let position = self.policy.systems.iter().position(|s| s.id == system)?;
        let carried = match self.stub_addresses.get(position)? {
            None => true,
            Some(list) => list.iter().any(|a| a == address),
        };
        if !carried
            || self
                .looping
                .contains(&(system.to_string(), self.entry.home.clone()))
        {
            return None;
        }
        stub_route(
            self.policy,
            system,
            &self.entry.home,
            &self.entry.primary_address,
            self.entry.routing_address.as_deref(),
        )
    }
}

fn delivered_home(traced: &Trace, home: &str) -> bool {
    matches!(&traced.outcome, Outcome::Delivered { system, .. } if system == home)
}

/// Checks every GAL recipient that has entries coexist did not make.
pub fn check(
    policy: &Policy,
    gal: &[GalEntry],
    clusters: &FxHashMap<String, Cluster>,
    looping_pairs: &LoopingPairs,
    conflicts: &mut Vec<Conflict>,
    notices: &mut Vec<Notice>,
) -> Checked {
    let mut checked = Checked::default();
    for entry in gal {
        let Some(cluster) = clusters.get(&entry.anchor) else {
            continue;
        };
        // 1. Where entries coexist did not make stand, coexist's stub
        //    carries what they do not cover and would not reach the home.
        let mut stub_addresses: Vec<Option<Vec<String>>> = policy
            .systems
            .iter()
            .map(|s| {
                (s.id != entry.home && cluster.foreign.iter().any(|f| f.system == s.id))
                    .then(Vec::new)
            })
            .collect();
        for position in 0..policy.systems.len() {
            if stub_addresses[position].is_none() {
                continue;
            }
            let system = &policy.systems[position].id;
            let uncovered: Vec<&String> = entry
                .addresses
                .iter()
                .filter(|a| {
                    !cluster
                        .foreign
                        .iter()
                        .any(|f| &f.system == system && f.addresses.contains(a))
                })
                .collect();
            let mut needed = Vec::new();
            for address in uncovered {
                let world = World::new(policy, entry, cluster, &stub_addresses, looping_pairs);
                let traced = trace(policy, &world, &Origin::System(system.clone()), address);
                if !delivered_home(&traced, &entry.home) {
                    needed.push(address.clone());
                }
            }
            // The GAL's primary first when the stub carries it.
            needed.sort_by_key(|a| *a != entry.primary_address);
            stub_addresses[position] = Some(needed);
        }

        // 2. Trace every address from everywhere through all of it.
        let world = World::new(policy, entry, cluster, &stub_addresses, looping_pairs);
        let origins = std::iter::once(Origin::Internet)
            .chain(policy.systems.iter().map(|s| Origin::System(s.id.clone())));
        let mut loop_found: Option<(String, String, Vec<String>)> = None;
        let mut astray: Option<(String, String, Trace)> = None;
        'origins: for origin in origins {
            for address in &entry.addresses {
                let traced = trace(policy, &world, &origin, address);
                let from = match &origin {
                    Origin::Internet => "the internet".to_string(),
                    Origin::System(s) => s.clone(),
                };
                match &traced.outcome {
                    Outcome::Looping { cycle } => {
                        loop_found = Some((from, address.clone(), cycle.clone()));
                        break 'origins;
                    }
                    _ if delivered_home(&traced, &entry.home) => {}
                    _ => {
                        if astray.is_none() {
                            astray = Some((from, address.clone(), traced));
                        }
                    }
                }
            }
        }

        let entries_text = |systems: &[String]| -> String {
            let named: Vec<String> = cluster
                .foreign
                .iter()
                .filter(|f| systems.is_empty() || systems.contains(&f.system))
                .map(|f| {
                    let what = if f.mailbox {
                        "a mailbox".to_string()
                    } else {
                        match &f.forwards_to {
                            Some(to) => format!("forwards to {to}"),
                            None => "routes nowhere".to_string(),
                        }
                    };
                    format!("{}'s entry {} ({what})", f.system, f.name)
                })
                .collect();
            named.join("; ")
        };
        if let Some((from, address, cycle)) = loop_found {
            let named = match entries_text(&cycle) {
                text if text.is_empty() => entries_text(&[]),
                text => text,
            };
            let home = policy.system(&entry.home);
            let right = home
                .and_then(|h| h.routing_domain.as_deref())
                .and_then(|rd| {
                    coexist_model::split_address(&entry.primary_address)
                        .map(|(local, _)| format!("{local}@{rd}"))
                });
            let fix = match right {
                Some(to) => format!(
                    "point it at {to} (where {} answers) or remove it, and coexist writes its own stub",
                    entry.home
                ),
                None => "remove it or point it at the home, and coexist writes its own stub"
                    .to_string(),
            };
            conflicts.push(Conflict {
                kind: ConflictKind::RoutingLoop,
                addresses: entry.addresses.clone(),
                systems: {
                    let mut systems: Vec<String> =
                        cluster.foreign.iter().map(|f| f.system.clone()).collect();
                    systems.push(entry.home.clone());
                    systems.sort();
                    systems.dedup();
                    systems
                },
                message: format!(
                    "mail from {from} to {address} loops ({}): {named}, not made by coexist, while the mailbox is on {}; {fix}. coexist writes no stub for {} until then",
                    cycle.join(" → "),
                    entry.home,
                    entry.primary_address
                ),
            });
            checked.looping.push(entry.anchor.clone());
            continue;
        } else if let Some((from, address, traced)) = astray {
            let ending = match &traced.outcome {
                Outcome::Delivered { system, .. } => {
                    format!(
                        "is delivered to a mailbox on {system}, not the one on {}",
                        entry.home
                    )
                }
                Outcome::External { domain, .. } => {
                    format!("leaves the organisation for {domain}")
                }
                Outcome::Bounced { system, reason } => format!("bounces at {system} ({reason})"),
                Outcome::Looping { .. } => "loops".to_string(),
            };
            notices.push(Notice {
                system: from.clone(),
                object: address.clone(),
                message: format!(
                    "mail from {from} to {address} {ending}: {}, not made by coexist, decides it; correct or remove the entry",
                    entries_text(&[])
                ),
            });
        }
        for (position, addresses) in stub_addresses.iter().enumerate() {
            let Some(addresses) = addresses else { continue };
            let system = &policy.systems[position].id;
            let mut message = format!(
                "{system} holds an entry coexist did not make for {} ({}); it is left alone",
                entry.primary_address,
                entries_text(std::slice::from_ref(system)),
            );
            if !addresses.is_empty() {
                message.push_str(&format!(
                    " and writes a stub there for the addresses it does not cover ({})",
                    addresses.join(", ")
                ));
            }
            notices.push(Notice {
                system: system.clone(),
                object: entry.primary_address.clone(),
                message,
            });
        }
        checked
            .decisions
            .insert(entry.anchor.clone(), Decision { stub_addresses });
    }
    checked
}
