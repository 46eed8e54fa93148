//! Desired stubs and the diff against the stubs found.
//!
//! For every system that takes stubs, every GAL recipient homed elsewhere
//! should have exactly one stub, routed to its home. The diff matches the
//! stubs found by anchor (then by primary address, so a recipient recreated
//! in its home keeps its stub), updates only what differs, creates what is
//! missing and deletes what no recipient wants. Only stubs carrying the
//! marker are ever found, so only those are ever changed.

use std::collections::{BTreeMap, HashMap, HashSet};

use coexist_connector::{split_address, FoundStub, Operation, Route, Stub, StubField};

use super::gal::AddressIndex;
use super::policy::{Policy, StubStyle};
use super::route::{trace, MailDirectory, Origin, Outcome};
use super::{Conflict, ConflictKind, GalEntry, Notice, PlannedOperation, Staged};

/// Pairs (system taking the stub, home) whose mail would loop: no stubs are
/// written in the first for recipients of the second.
pub type LoopingPairs = HashSet<(String, String)>;

/// The route a stub in `system` takes to a recipient homed on `home` with
/// primary address `primary`; `None` when the system takes no stubs or the
/// home cannot be reached in the system's style.
pub fn stub_route(policy: &Policy, system: &str, home: &str, primary: &str) -> Option<Route> {
    let style = policy.system(system)?.stub_style;
    let home = policy.system(home)?;
    match style {
        StubStyle::RoutingAddress => {
            let (local, _) = split_address(primary)?;
            Some(Route::Address(format!(
                "{local}@{}",
                home.routing_domain.as_deref()?
            )))
        }
        StubStyle::SmartHost => Some(Route::Host(home.smart_host.clone()?)),
        StubStyle::DomainRouting => Some(Route::DomainRouting),
        StubStyle::None => None,
    }
}

/// A one-recipient world used to check each (system, home) pair for loops.
struct Probe<'a> {
    policy: &'a Policy,
    home: &'a str,
    address: &'a str,
}

impl MailDirectory for Probe<'_> {
    fn hosts_mailbox(&self, system: &str, address: &str) -> bool {
        system == self.home && address == self.address
    }

    fn forward(&self, system: &str, address: &str) -> Option<Route> {
        if address != self.address || system == self.home {
            return None;
        }
        stub_route(self.policy, system, self.home, self.address)
    }
}

/// Traces mail from every system to a recipient homed on every other
/// system, with the stubs coexist would write. A loop is a conflict (and the
/// pair gets no new stubs); a bounce is a notice, since it is the topology,
/// not a stub, that fails.
pub fn check_routes(
    policy: &Policy,
    conflicts: &mut Vec<Conflict>,
    notices: &mut Vec<Notice>,
) -> LoopingPairs {
    let mut looping = LoopingPairs::new();
    let Some(domain) = policy.shared_domains.first() else {
        return looping;
    };
    let address = format!("route-probe@{domain}");
    for home in &policy.systems {
        for from in &policy.systems {
            if from.id == home.id {
                continue;
            }
            let probe = Probe {
                policy,
                home: &home.id,
                address: &address,
            };
            let traced = trace(policy, &probe, &Origin::System(from.id.clone()), &address);
            match traced.outcome {
                Outcome::Looping { cycle } => {
                    looping.insert((from.id.clone(), home.id.clone()));
                    conflicts.push(Conflict {
                        kind: ConflictKind::RoutingLoop,
                        addresses: vec![],
                        systems: vec![from.id.clone(), home.id.clone()],
                        message: format!(
                            "mail from {} to recipients homed on {} would loop ({}); check the routing domains, smart hosts and catch-all routes in the [topology] section",
                            from.id,
                            home.id,
                            cycle.join(" → ")
                        ),
                    });
                }
                Outcome::Bounced { system, reason } => notices.push(Notice {
                    system: from.id.clone(),
                    object: home.id.clone(),
                    message: format!(
                        "mail from {} to recipients homed on {} bounces at {system} ({reason}); give {} a stub style or a catch-all route",
                        from.id, home.id, from.id
                    ),
                }),
                Outcome::Delivered { .. } | Outcome::External { .. } => {}
            }
        }
    }
    looping
}

/// The plan's operations and the desired stub counts.
pub struct Planned {
    pub operations: Vec<PlannedOperation>,
    pub desired: BTreeMap<String, usize>,
}

/// The stub `system` should hold for `entry`.
pub fn desired_stub(entry: &GalEntry, route: Route) -> Stub {
    Stub {
        anchor: entry.anchor.clone(),
        kind: entry.kind,
        primary_address: entry.primary_address.clone(),
        aliases: entry.aliases().map(str::to_string).collect(),
        route,
        attributes: entry.attributes.clone(),
    }
}

/// Diffs every system's stubs.
pub fn plan(
    staged: &Staged,
    policy: &Policy,
    gal: &[GalEntry],
    index: &AddressIndex,
    held: &HashSet<String>,
    looping: &LoopingPairs,
    notices: &mut Vec<Notice>,
) -> Planned {
    let mut operations = Vec::new();
    let gal_anchors: HashSet<&str> = gal.iter().map(|e| e.anchor.as_str()).collect();
    let mut desired_counts = BTreeMap::new();
    for system in &policy.systems {
        if system.stub_style == StubStyle::None {
            continue;
        }
        let bit = staged
            .systems
            .iter()
            .position(|s| s.id == system.id)
            .map(|p| 1u64 << p.min(63))
            .unwrap_or(0);
        let found: &[FoundStub] = staged
            .system(&system.id)
            .map(|s| s.stubs.as_slice())
            .unwrap_or(&[]);
        let mut by_anchor: HashMap<&str, Vec<usize>> = HashMap::with_capacity(found.len());
        let mut by_address: HashMap<&str, Vec<usize>> = HashMap::with_capacity(found.len());
        for (i, f) in found.iter().enumerate() {
            by_anchor.entry(f.stub.anchor.as_str()).or_default().push(i);
            by_address
                .entry(f.stub.primary_address.as_str())
                .or_default()
                .push(i);
        }
        // A stub for an address homed on this very system must go, whatever
        // else it matches.
        let homed_here: HashSet<&str> = gal
            .iter()
            .filter(|e| e.home == system.id)
            .flat_map(|e| e.addresses.iter().map(String::as_str))
            .collect();
        let collides = |f: &FoundStub| {
            std::iter::once(&f.stub.primary_address)
                .chain(f.stub.aliases.iter())
                .any(|a| homed_here.contains(a.as_str()))
        };
        let mut used: Vec<bool> = vec![false; found.len()];
        let (mut creates, mut updates, mut deletes) = (Vec::new(), Vec::new(), Vec::new());
        let mut wanted = 0usize;

        for entry in gal {
            if entry.home == system.id {
                continue;
            }
            // The system holds an entry of its own for one of the addresses
            // (a hand-made forwarder, an old mailbox): leave it alone.
            if bit != 0
                && entry
                    .addresses
                    .iter()
                    .any(|a| index.get(a).is_some_and(|m| m & bit != 0))
            {
                notices.push(Notice {
                    system: system.id.clone(),
                    object: entry.primary_address.clone(),
                    message: format!(
                        "{} already has an entry for {} that coexist did not make; it is left alone and no stub is written",
                        system.id, entry.primary_address
                    ),
                });
                mark_matches(&mut used, found, &collides, &by_anchor, &by_address, entry);
                continue;
            }
            if looping.contains(&(system.id.clone(), entry.home.clone())) {
                mark_matches(&mut used, found, &collides, &by_anchor, &by_address, entry);
                continue;
            }
            let Some(route) = stub_route(policy, &system.id, &entry.home, &entry.primary_address)
            else {
                continue;
            };
            wanted += 1;
            let want = desired_stub(entry, route);
            let matched = take(&mut used, &by_anchor, entry.anchor.as_str())
                .or_else(|| take(&mut used, &by_address, entry.primary_address.as_str()));
            match matched {
                Some(i) => {
                    let have = &found[i];
                    let changed = StubField::changed(&have.stub, &want);
                    if !changed.is_empty() {
                        let reason = format!(
                            "{} changed: {}",
                            entry.primary_address,
                            changed
                                .iter()
                                .map(|f| field_name(*f))
                                .collect::<Vec<_>>()
                                .join(", ")
                        );
                        updates.push(PlannedOperation {
                            system: system.id.clone(),
                            operation: Operation::Update {
                                id: have.id.clone(),
                                locator: have.locator.clone(),
                                before: have.stub.clone(),
                                after: want,
                                changed,
                            },
                            reason,
                        });
                    }
                }
                None => creates.push(PlannedOperation {
                    system: system.id.clone(),
                    reason: format!(
                        "{} is homed on {}; {} needs a stub",
                        entry.primary_address, entry.home, system.id
                    ),
                    operation: Operation::Create { stub: want },
                }),
            }
        }

        for (i, f) in found.iter().enumerate() {
            if used[i] {
                continue;
            }
            let stub_addresses =
                std::iter::once(&f.stub.primary_address).chain(f.stub.aliases.iter());
            if !gal_anchors.contains(f.stub.anchor.as_str())
                && !collides(f)
                && stub_addresses.clone().any(|a| held.contains(a.as_str()))
            {
                continue; // a conflicted recipient: its stubs stay as they are
            }
            let reason = if by_anchor
                .get(f.stub.anchor.as_str())
                .is_some_and(|v| v.len() > 1)
            {
                format!(
                    "{} has a second stub on {}",
                    f.stub.primary_address, system.id
                )
            } else if bit != 0
                && stub_addresses
                    .clone()
                    .any(|a| index.get(a.as_str()).is_some_and(|m| m & bit != 0))
            {
                format!("{} is now homed on {}", f.stub.primary_address, system.id)
            } else {
                format!("{} is no longer in the GAL", f.stub.primary_address)
            };
            deletes.push(PlannedOperation {
                system: system.id.clone(),
                operation: Operation::Delete {
                    id: f.id.clone(),
                    locator: f.locator.clone(),
                    stub: f.stub.clone(),
                },
                reason,
            });
        }
        desired_counts.insert(system.id.clone(), wanted);
        operations.extend(creates);
        operations.extend(updates);
        operations.extend(deletes);
    }
    Planned {
        operations,
        desired: desired_counts,
    }
}

fn take(used: &mut [bool], index: &HashMap<&str, Vec<usize>>, key: &str) -> Option<usize> {
    let candidates = index.get(key)?;
    let i = candidates.iter().copied().find(|&i| !used[i])?;
    used[i] = true;
    Some(i)
}

/// Marks the stubs of a recipient that gets no new stub as kept.
fn mark_matches(
    used: &mut [bool],
    found: &[FoundStub],
    collides: &dyn Fn(&FoundStub) -> bool,
    by_anchor: &HashMap<&str, Vec<usize>>,
    by_address: &HashMap<&str, Vec<usize>>,
    entry: &GalEntry,
) {
    for key in [
        (by_anchor, entry.anchor.as_str()),
        (by_address, entry.primary_address.as_str()),
    ] {
        let (index, key) = key;
        if let Some(i) = index.get(key).and_then(|c| {
            c.iter()
                .copied()
                .find(|&i| !used[i] && !collides(&found[i]))
        }) {
            used[i] = true;
            return;
        }
    }
}

/// The user-facing name of a stub field.
pub fn field_name(field: StubField) -> &'static str {
    match field {
        StubField::Anchor => "anchor",
        StubField::Kind => "kind",
        StubField::PrimaryAddress => "primary address",
        StubField::Aliases => "aliases",
        StubField::Route => "route",
        StubField::DisplayName => "display name",
        StubField::GivenName => "given name",
        StubField::Surname => "surname",
        StubField::BusinessPhone => "business phone",
        StubField::MobilePhone => "mobile phone",
        StubField::Title => "title",
        StubField::Department => "department",
        StubField::Company => "company",
    }
}
