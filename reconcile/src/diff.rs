//! Desired stubs and the diff against the stubs found.
//!
//! For every system that takes stubs, every GAL recipient homed elsewhere
//! should have exactly one stub, routed to its home. The diff matches the
//! stubs found by anchor (then by primary address, so a recipient recreated
//! in its home keeps its stub), updates only what differs, creates what is
//! missing and deletes what no recipient wants. Only stubs carrying the
//! marker are ever found, so only those are ever changed.

use std::collections::{BTreeMap, HashSet};

use rustc_hash::{FxHashMap, FxHashSet};

use coexist_model::{split_address, FoundStub, Operation, Route, Stub, StubField};

use super::foreign::Decision;
use super::gal::AddressIndex;
use super::policy::{Policy, StubStyle, SystemPolicy};
use super::route::{trace, MailDirectory, Origin, Outcome};
use super::{Conflict, ConflictKind, GalEntry, Notice, PlannedOperation, Reason, Staged};

/// Pairs (system taking the stub, home) whose mail would loop: no stubs are
/// written in the first for recipients of the second.
pub type LoopingPairs = HashSet<(String, String)>;

/// The recipient's address in the routing domain `domain` of its home:
/// the one the home lists (`listed`, when it is in that domain), else, where
/// the routing domain is a blanket alias, `local@<domain>` for the primary
/// address's local part; `None` when neither.
pub fn routing_address(
    listed: Option<&str>,
    primary: &str,
    domain: &str,
    alias: bool,
) -> Option<String> {
    if let Some(listed) = listed {
        if split_address(listed).is_some_and(|(_, d)| d == domain) {
            return Some(listed.to_string());
        }
    }
    if !alias {
        return None;
    }
    let (local, _) = split_address(primary)?;
    Some(format!("{local}@{domain}"))
}

/// The route a stub in `system` takes to a recipient homed on `home` with
/// primary address `primary` and the routing address its home lists
/// (`listed`); `None` when the system takes no stubs or the home cannot be
/// reached in the system's style.
pub fn stub_route(
    policy: &Policy,
    system: &str,
    home: &str,
    primary: &str,
    listed: Option<&str>,
) -> Option<Route> {
    let style = policy.system(system)?.stub_style;
    let home = policy.system(home)?;
    match style {
        StubStyle::RoutingAddress | StubStyle::MailContact => routing_address(
            listed,
            primary,
            home.routing_domain.as_deref()?,
            home.routing_domain_is_alias,
        )
        .map(Route::Address),
        StubStyle::SmartHost => Some(Route::Host(home.smart_host.clone()?)),
        StubStyle::DomainRouting | StubStyle::MailboxContacts => Some(Route::DomainRouting),
        StubStyle::None => None,
    }
}

/// A one-recipient world used to check each (system, home) pair for loops.
struct Probe<'a> {
    policy: &'a Policy,
    home: &'a str,
    address: &'a str,
}

impl Probe<'_> {
    /// The probe recipient's address in its home's routing domain.
    fn listed(&self) -> Option<String> {
        let domain = self.policy.system(self.home)?.routing_domain.as_deref()?;
        let (local, _) = split_address(self.address)?;
        Some(format!("{local}@{domain}"))
    }
}

impl MailDirectory for Probe<'_> {
    fn hosts_mailbox(&self, system: &str, address: &str) -> bool {
        system == self.home
            && (address == self.address || self.listed().as_deref() == Some(address))
    }

    fn forward(&self, system: &str, address: &str) -> Option<Route> {
        if address != self.address || system == self.home {
            return None;
        }
        // The probe's recipient lists `local@<routing domain>` there, as
        // any mailbox of a home whose routing domain is no blanket alias
        // must for stubs to reach it.
        let listed = self.listed();
        stub_route(
            self.policy,
            system,
            self.home,
            self.address,
            listed.as_deref(),
        )
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
    let cycle = policy.relay_cycle();
    if let Some(first) = cycle.first() {
        let path: Vec<&str> = cycle
            .iter()
            .chain(std::iter::once(first))
            .map(String::as_str)
            .collect();
        conflicts.push(Conflict {
            kind: ConflictKind::RoutingLoop,
            addresses: vec![],
            systems: cycle.clone(),
            message: format!(
                "the catch-all relays form a cycle ({}): mail to any address no system knows loops between them; make one of them reject unknown recipients (unknown_recipient = \"reject\")",
                path.join(" → ")
            ),
        });
    }
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

/// How a system's stubs route to recipients of one home, worked out once
/// per (system, home) pair rather than per recipient.
#[derive(Debug, Clone)]
enum RouteTemplate<'a> {
    /// The recipient's address in the home's routing domain: the one the
    /// home lists ([`GalEntry::routing_address`]), else, where the routing
    /// domain is a blanket alias, `local@<routing domain>`.
    Address {
        domain: &'a str,
        alias: bool,
    },
    Host(&'a str),
    DomainRouting,
    /// No stub: the system takes none, or the pair loops.
    NoStub,
}

impl RouteTemplate<'_> {
    fn route(&self, entry: &GalEntry) -> Option<Route> {
        match self {
            RouteTemplate::Address { domain, alias } => routing_address(
                entry.routing_address.as_deref(),
                &entry.primary_address,
                domain,
                *alias,
            )
            .map(Route::Address),
            RouteTemplate::Host(host) => Some(Route::Host((*host).to_string())),
            RouteTemplate::DomainRouting => Some(Route::DomainRouting),
            RouteTemplate::NoStub => None,
        }
    }

    /// Whether `found` is the route this template gives `primary`, without
    /// building it.
    fn is(&self, found: &Route, entry: &GalEntry) -> bool {
        match (self, found) {
            (RouteTemplate::Address { domain, alias }, Route::Address(to)) => {
                match entry.routing_address.as_deref() {
                    Some(listed) if split_address(listed).is_some_and(|(_, d)| d == *domain) => {
                        listed == to
                    }
                    _ if *alias => match (split_address(&entry.primary_address), split_address(to))
                    {
                        (Some((local, _)), Some((to_local, to_domain))) => {
                            local == to_local && to_domain == *domain
                        }
                        _ => false,
                    },
                    _ => false,
                }
            }
            (RouteTemplate::Host(host), Route::Host(to)) => host == to,
            (RouteTemplate::DomainRouting, Route::DomainRouting) => true,
            _ => false,
        }
    }
}

/// Whether a found stub already says exactly what `entry` wants.
fn unchanged(found: &Stub, entry: &GalEntry, template: &RouteTemplate<'_>) -> bool {
    found.anchor == entry.anchor
        && found.kind == entry.kind
        && found.primary_address == entry.primary_address
        && found.aliases.iter().map(String::as_str).eq(entry.aliases())
        && template.is(&found.route, entry)
        && found.attributes == entry.attributes
}

/// Found stubs indexed by a key, with the duplicates chained.
struct Chains<'a> {
    head: FxHashMap<&'a str, u32>,
    next: Vec<u32>,
}

const END: u32 = u32::MAX;

impl<'a> Chains<'a> {
    fn new(found: &'a [FoundStub], key: impl Fn(&'a FoundStub) -> &'a str) -> Self {
        let mut head: FxHashMap<&'a str, u32> = FxHashMap::default();
        head.reserve(found.len());
        let mut next = vec![END; found.len()];
        for (i, f) in found.iter().enumerate().rev() {
            let i = i as u32;
            if let Some(previous) = head.insert(key(f), i) {
                next[i as usize] = previous;
            }
        }
        Chains { head, next }
    }

    /// The first found stub with `key` not used yet, accepted by `ok`.
    fn first(&self, key: &str, used: &[bool], ok: impl Fn(usize) -> bool) -> Option<usize> {
        let mut i = *self.head.get(key)?;
        while i != END {
            if !used[i as usize] && ok(i as usize) {
                return Some(i as usize);
            }
            i = self.next[i as usize];
        }
        None
    }

    fn len_of(&self, key: &str) -> usize {
        let mut n = 0;
        let mut i = self.head.get(key).copied().unwrap_or(END);
        while i != END {
            n += 1;
            i = self.next[i as usize];
        }
        n
    }
}

/// What the diff works from.
pub struct Inputs<'a> {
    pub staged: &'a Staged,
    pub policy: &'a Policy,
    pub gal: &'a [GalEntry],
    /// Which systems hold an object (not a stub) for each shared address.
    pub index: &'a AddressIndex,
    /// Which systems hold a mailbox for each address of a conflicted recipient.
    pub mailboxes: &'a AddressIndex,
    /// Addresses of conflicted recipients.
    pub held: &'a FxHashSet<String>,
    pub looping: &'a LoopingPairs,
    /// What to write where entries coexist did not make carry a
    /// recipient's addresses ([`super::foreign`]).
    pub decisions: &'a FxHashMap<String, Decision>,
}

/// Diffs every system's stubs (one thread per system: the work is pure).
pub fn plan(inputs: &Inputs<'_>) -> Planned {
    let Inputs {
        staged,
        policy,
        gal,
        ..
    } = *inputs;
    // Every GAL address → the position of its home in the policy.
    let home_index: Vec<usize> = gal
        .iter()
        .map(|e| {
            policy
                .systems
                .iter()
                .position(|s| s.id == e.home)
                .unwrap_or(usize::MAX)
        })
        .collect();
    let mut home_of: FxHashMap<&str, usize> = FxHashMap::default();
    home_of.reserve(gal.len() * 2);
    for (entry, &home) in gal.iter().zip(&home_index) {
        for address in &entry.addresses {
            home_of.insert(address.as_str(), home);
        }
    }
    let gal_anchors: FxHashMap<&str, usize> = gal
        .iter()
        .zip(&home_index)
        .map(|(e, &h)| (e.anchor.as_str(), h))
        .collect();
    let context = SystemContext {
        staged,
        policy,
        gal,
        index: inputs.index,
        mailboxes: inputs.mailboxes,
        held: inputs.held,
        looping: inputs.looping,
        decisions: inputs.decisions,
        home_of: &home_of,
        home_index: &home_index,
        gal_anchors: &gal_anchors,
    };

    let results: Vec<SystemPlan> = std::thread::scope(|scope| {
        let handles: Vec<_> = policy
            .systems
            .iter()
            .enumerate()
            .filter(|(_, s)| s.stub_style != StubStyle::None)
            .map(|(position, system)| {
                let context = &context;
                scope.spawn(move || plan_system(context, position, system))
            })
            .collect();
        // A system's diff that panicked must not leave a plan without that
        // system's operations: the panic goes on to the caller.
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            })
            .collect()
    });

    // One allocation for the whole plan; each system's list is freed as it is moved in.
    let mut operations = Vec::with_capacity(results.iter().map(|r| r.operations.len()).sum());
    let mut desired = BTreeMap::new();
    for result in results {
        desired.insert(result.system, result.wanted);
        operations.extend(result.operations);
    }
    Planned {
        operations,
        desired,
    }
}

struct SystemContext<'a> {
    staged: &'a Staged,
    policy: &'a Policy,
    gal: &'a [GalEntry],
    index: &'a AddressIndex,
    mailboxes: &'a AddressIndex,
    held: &'a FxHashSet<String>,
    looping: &'a LoopingPairs,
    decisions: &'a FxHashMap<String, Decision>,
    home_of: &'a FxHashMap<&'a str, usize>,
    home_index: &'a [usize],
    /// Every GAL anchor → the position of its home.
    gal_anchors: &'a FxHashMap<&'a str, usize>,
}

struct SystemPlan {
    system: String,
    wanted: usize,
    operations: Vec<PlannedOperation>,
}

/// A system whose diff panics, to test that such a panic is not swallowed.
#[cfg(test)]
pub const PANICKING_SYSTEM_FOR_TESTS: &str = "panics-in-tests";

fn plan_system(cx: &SystemContext<'_>, position: usize, system: &SystemPolicy) -> SystemPlan {
    #[cfg(test)]
    if system.id == PANICKING_SYSTEM_FOR_TESTS {
        panic!("the diff of {} failed", system.id);
    }
    let bit = cx
        .staged
        .systems
        .iter()
        .position(|s| s.id == system.id)
        .map(|p| 1u64 << p.min(63))
        .unwrap_or(0);
    let templates: Vec<RouteTemplate<'_>> = cx
        .policy
        .systems
        .iter()
        .map(|home| {
            if home.id == system.id || cx.looping.contains(&(system.id.clone(), home.id.clone())) {
                return RouteTemplate::NoStub;
            }
            match system.stub_style {
                StubStyle::RoutingAddress | StubStyle::MailContact => home
                    .routing_domain
                    .as_deref()
                    .map_or(RouteTemplate::NoStub, |domain| RouteTemplate::Address {
                        domain,
                        alias: home.routing_domain_is_alias,
                    }),
                StubStyle::SmartHost => home
                    .smart_host
                    .as_deref()
                    .map_or(RouteTemplate::NoStub, RouteTemplate::Host),
                StubStyle::DomainRouting | StubStyle::MailboxContacts => {
                    RouteTemplate::DomainRouting
                }
                StubStyle::None => RouteTemplate::NoStub,
            }
        })
        .collect();

    let found: &[FoundStub] = cx
        .staged
        .system(&system.id)
        .map(|s| s.stubs.as_slice())
        .unwrap_or(&[]);
    let by_anchor = Chains::new(found, |f| f.stub.anchor.as_str());
    // Only stubs whose anchor is unknown are matched by address: built on
    // first need (a no-change re-plan matches every stub by anchor).
    let by_address_cell = std::cell::OnceCell::new();
    let by_address =
        || by_address_cell.get_or_init(|| Chains::new(found, |f| f.stub.primary_address.as_str()));
    // A stub for an address homed on this very system must go, whatever
    // else it matches.
    let collides = |i: usize| {
        let f = &found[i];
        cx.gal_anchors.get(f.stub.anchor.as_str()) == Some(&position)
            || std::iter::once(&f.stub.primary_address)
                .chain(f.stub.aliases.iter())
                .any(|a| cx.home_of.get(a.as_str()) == Some(&position))
    };
    let mut used: Vec<bool> = vec![false; found.len()];
    let homed_elsewhere = cx.home_index.iter().filter(|&&h| h != position).count();
    let mut creates = Vec::with_capacity(homed_elsewhere.saturating_sub(found.len()));
    let (mut updates, mut deletes) = (Vec::new(), Vec::new());
    let mut wanted = 0usize;

    for (entry, &home) in cx.gal.iter().zip(cx.home_index) {
        if home == position {
            continue;
        }
        let keep_existing = |used: &mut Vec<bool>| {
            let kept = by_anchor
                .first(&entry.anchor, used, |i| !collides(i))
                .or_else(|| by_address().first(&entry.primary_address, used, |i| !collides(i)));
            if let Some(i) = kept {
                used[i] = true;
            }
        };
        let template = templates.get(home).unwrap_or(&RouteTemplate::NoStub);
        // Entries coexist did not make carry some of the addresses here:
        // coexist's stub carries only what the checks decided.
        if let Some(Some(addresses)) = cx
            .decisions
            .get(entry.anchor.as_str())
            .and_then(|d| d.stub_addresses.get(position))
        {
            let (Some(primary), Some(route)) = (addresses.first(), template.route(entry)) else {
                if matches!(template, RouteTemplate::NoStub) {
                    keep_existing(&mut used);
                }
                // No stub: one found is deleted below (CoveredHere).
                continue;
            };
            wanted += 1;
            let want = Stub {
                anchor: entry.anchor.clone(),
                kind: entry.kind,
                primary_address: primary.clone(),
                aliases: addresses[1..].to_vec(),
                route,
                attributes: entry.attributes.clone(),
            };
            match by_anchor.first(&entry.anchor, &used, |i| !collides(i)) {
                Some(i) => {
                    used[i] = true;
                    let have = &found[i];
                    if have.stub != want || have.misplaced {
                        updates.push(update(&system.id, have, want));
                    }
                }
                None => creates.push(PlannedOperation {
                    system: system.id.clone(),
                    reason: Reason::HomedElsewhere,
                    operation: Box::new(Operation::Create { stub: want }),
                }),
            }
            continue;
        }
        if matches!(template, RouteTemplate::NoStub) {
            keep_existing(&mut used);
            continue;
        }
        wanted += 1;
        // A stub in its place is kept before one found outside the stub
        // base (that one then goes as a second stub).
        let matched = by_anchor
            .first(&entry.anchor, &used, |i| !found[i].misplaced)
            .or_else(|| by_anchor.first(&entry.anchor, &used, |_| true))
            .or_else(|| by_address().first(&entry.primary_address, &used, |_| true));
        match matched {
            Some(i) => {
                used[i] = true;
                let have = &found[i];
                if !have.misplaced && unchanged(&have.stub, entry, template) {
                    continue;
                }
                let Some(route) = template.route(entry) else {
                    continue;
                };
                updates.push(update(&system.id, have, desired_stub(entry, route)));
            }
            None => {
                let Some(route) = template.route(entry) else {
                    continue;
                };
                creates.push(PlannedOperation {
                    system: system.id.clone(),
                    reason: Reason::HomedElsewhere,
                    operation: Box::new(Operation::Create {
                        stub: desired_stub(entry, route),
                    }),
                });
            }
        }
    }

    for (i, f) in found.iter().enumerate() {
        if used[i] {
            continue;
        }
        let stub_addresses = std::iter::once(&f.stub.primary_address).chain(f.stub.aliases.iter());
        let mailbox_here = bit != 0
            && stub_addresses
                .clone()
                .any(|a| cx.mailboxes.get(a.as_str()).is_some_and(|m| m & bit != 0));
        if !cx.gal_anchors.contains_key(f.stub.anchor.as_str())
            && !collides(i)
            && stub_addresses.clone().any(|a| cx.held.contains(a.as_str()))
            && !mailbox_here
        {
            continue; // a conflicted recipient: its stubs stay as they are
        }
        let covered_here = cx
            .decisions
            .get(f.stub.anchor.as_str())
            .and_then(|d| d.stub_addresses.get(position))
            .is_some_and(Option::is_some);
        let now_home = collides(i)
            || (bit != 0
                && stub_addresses
                    .clone()
                    .any(|a| cx.index.get(a.as_str()).is_some_and(|m| m & bit != 0)));
        let reason = if by_anchor.len_of(&f.stub.anchor) > 1 {
            Reason::SecondStub
        } else if covered_here {
            Reason::CoveredHere
        } else if !cx.gal_anchors.contains_key(f.stub.anchor.as_str())
            && mailbox_here
            && !collides(i)
        {
            Reason::MailboxHere
        } else if now_home {
            Reason::NowHomedHere
        } else {
            Reason::LeftTheGal
        };
        deletes.push(PlannedOperation {
            system: system.id.clone(),
            operation: Box::new(Operation::Delete {
                id: f.id.clone(),
                locator: f.locator.clone(),
                stub: f.stub.clone(),
            }),
            reason,
        });
    }
    let mut operations = creates;
    operations.reserve_exact(updates.len() + deletes.len());
    operations.extend(updates);
    operations.extend(deletes);
    SystemPlan {
        system: system.id.clone(),
        wanted,
        operations,
    }
}

/// The update turning the stub `have` of `system` into `want`.
fn update(system: &str, have: &FoundStub, want: Stub) -> PlannedOperation {
    let changed = StubField::changed(&have.stub, &want);
    PlannedOperation {
        system: system.to_string(),
        operation: Box::new(Operation::Update {
            id: have.id.clone(),
            locator: have.locator.clone(),
            before: Box::new(have.stub.clone()),
            after: Box::new(want),
            changed,
        }),
        reason: if have.misplaced {
            Reason::Misplaced
        } else {
            Reason::Changed
        },
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
