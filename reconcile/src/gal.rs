//! Joining the systems' recipients into the GAL.
//!
//! Objects of different systems that share a normalised shared-domain
//! address are one recipient (union-find over addresses). Each recipient
//! gets one home: an explicit placement or the configured home attribute
//! where there is one, else the one system holding its mailbox. Clusters that
//! cannot be given exactly one home become [`Conflict`]s.

use std::collections::{BTreeMap, BTreeSet};

use rustc_hash::{FxHashMap, FxHashSet};

use coexist_model::{normalize_address, split_address, Attributes, Recipient};

use super::{Conflict, ConflictKind, GalEntry, Notice, Policy, Staged};

/// Which systems hold an object (not a stub) for each shared address:
/// a bit per system index.
pub type AddressIndex = FxHashMap<String, u64>;

/// An object of a GAL recipient's cluster other than its home object: an
/// entry coexist did not make (a hand-made forwarder, an alias, a contact,
/// a mailbox left behind). It takes part in the routing checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForeignEntry {
    /// The system holding it.
    pub system: String,
    /// How the system names it (DN, else anchor).
    pub name: String,
    /// The shared-domain addresses it carries, normalised.
    pub addresses: Vec<String>,
    /// Whether it is a mailbox of that system.
    pub mailbox: bool,
    /// Where it forwards mail, if it says (normalised address).
    pub forwards_to: Option<String>,
}

/// What the routing checks need to know of one GAL recipient beyond its
/// entry: which addresses its home object really answers at, and the other
/// entries of the systems carrying its addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cluster {
    /// The addresses of the home object (the mailbox answers at these).
    pub home_addresses: Vec<String>,
    /// Whether the home object's account is disabled.
    pub home_disabled: bool,
    pub foreign: Vec<ForeignEntry>,
}

/// The GAL and what was found while building it.
pub struct Joined {
    pub gal: Vec<GalEntry>,
    pub conflicts: Vec<Conflict>,
    pub notices: Vec<Notice>,
    pub index: AddressIndex,
    /// For the addresses of conflicted recipients: which systems hold a
    /// *mailbox* for each (a bit per system index, as `index`).
    pub mailboxes: AddressIndex,
    /// GAL anchor → the other entries of its cluster, for the recipients
    /// that have any (most have none).
    pub clusters: FxHashMap<String, Cluster>,
    /// Addresses of conflicted recipients: their stubs are left as they are.
    pub held: FxHashSet<String>,
    pub disabled: usize,
}

struct Object<'a> {
    system: usize,
    recipient: &'a Recipient,
    /// Normalised shared-domain addresses, the primary first.
    addresses: Vec<String>,
}

fn find(parent: &mut [usize], mut x: usize) -> usize {
    while parent[x] != x {
        parent[x] = parent[parent[x]];
        x = parent[x];
    }
    x
}

fn union(parent: &mut [usize], a: usize, b: usize) {
    let (ra, rb) = (find(parent, a), find(parent, b));
    if ra != rb {
        parent[ra.max(rb)] = ra.min(rb);
    }
}

/// Builds the GAL from `staged`.
pub fn build(staged: &Staged, policy: &Policy) -> Joined {
    let mut notices = Vec::new();
    let mut conflicts = Vec::new();
    let system_ids: Vec<&str> = staged.systems.iter().map(|s| s.id.as_str()).collect();

    // 1. Every object with at least one shared-domain address.
    let mut objects: Vec<Object<'_>> =
        Vec::with_capacity(staged.systems.iter().map(|s| s.recipients.len()).sum());
    for (system, staged_system) in staged.systems.iter().enumerate() {
        for recipient in &staged_system.recipients {
            let mut addresses = Vec::with_capacity(1 + recipient.aliases.len());
            for raw in recipient.addresses() {
                match normalize_address(raw) {
                    Ok(address) => {
                        let shared =
                            split_address(&address).is_some_and(|(_, d)| policy.is_shared(d));
                        if shared && !addresses.contains(&address) {
                            addresses.push(address);
                        }
                    }
                    Err(error) => notices.push(Notice {
                        system: staged_system.id.clone(),
                        object: recipient.anchor.clone(),
                        message: format!("skipped the address: {error}"),
                    }),
                }
            }
            if !addresses.is_empty() {
                objects.push(Object {
                    system,
                    recipient,
                    addresses,
                });
            }
        }
    }
    // The objects are only read from here on; the index borrows their addresses.
    let objects = objects;

    // 2. Index addresses and join the objects sharing one; an address held
    //    twice within one system is a conflict.
    let mut parent: Vec<usize> = (0..objects.len()).collect();
    let mut first_holder: FxHashMap<&str, (usize, u64)> = FxHashMap::default();
    first_holder.reserve(objects.len() * 2);
    let mut shared_addresses: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, object) in objects.iter().enumerate() {
        for address in &object.addresses {
            let bit = 1u64 << object.system.min(63);
            match first_holder.get_mut(address.as_str()) {
                None => {
                    first_holder.insert(address.as_str(), (i, bit));
                }
                Some((first, mask)) => {
                    *mask |= bit;
                    let first = *first;
                    union(&mut parent, first, i);
                    shared_addresses
                        .entry(address.as_str())
                        .or_insert_with(|| vec![first])
                        .push(i);
                }
            }
        }
    }
    let mut conflicted_objects: FxHashSet<usize> = FxHashSet::default();
    for (address, holders) in &shared_addresses {
        let mut by_system: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
        for &h in holders {
            by_system.entry(objects[h].system).or_default().push(h);
        }
        for (system, same) in by_system.into_iter().filter(|(_, v)| v.len() > 1) {
            conflicted_objects.extend(same.iter().copied());
            let system = system_ids[system];
            let names: Vec<String> = same
                .iter()
                .map(|&h| {
                    format!(
                        "{} ({})",
                        objects[h].addresses[0],
                        objects[h].recipient.name()
                    )
                })
                .collect();
            conflicts.push(Conflict {
                kind: ConflictKind::AddressClaimedTwice,
                addresses: vec![(*address).to_string()],
                systems: vec![system.to_string()],
                message: format!(
                    "{address} is claimed by {} recipients on {system}: {}; remove it from all but one",
                    same.len(),
                    names.join(", ")
                ),
            });
        }
    }
    let index: AddressIndex = first_holder
        .into_iter()
        .map(|(a, (_, mask))| (a.to_string(), mask))
        .collect();

    // 3. Clusters: objects grouped by their root, in order.
    let mut order: Vec<(usize, usize)> = (0..objects.len())
        .map(|i| (find(&mut parent, i), i))
        .collect();
    order.sort_unstable();

    let mut gal = Vec::with_capacity(objects.len());
    let mut clusters: FxHashMap<String, Cluster> = FxHashMap::default();
    let mut held = FxHashSet::default();
    let mut mailboxes: AddressIndex = FxHashMap::default();
    let mut disabled = 0usize;
    // The addresses of the recipients left out because their account is
    // disabled: no group of the GAL lists them as members either.
    let mut hidden: FxHashSet<&str> = FxHashSet::default();
    let simple_homes = staged.placements.is_empty() && policy.home_attribute.is_none();
    let mut start = 0;
    while start < order.len() {
        let root = order[start].0;
        let mut end = start + 1;
        while end < order.len() && order[end].0 == root {
            end += 1;
        }
        let members: Vec<usize> = order[start..end].iter().map(|&(_, i)| i).collect();
        start = end;

        let hold = |held: &mut FxHashSet<String>, mailboxes: &mut AddressIndex| {
            for &i in &members {
                held.extend(objects[i].addresses.iter().cloned());
                if objects[i].recipient.mailbox {
                    let bit = 1u64 << objects[i].system.min(63);
                    for address in &objects[i].addresses {
                        *mailboxes.entry(address.clone()).or_default() |= bit;
                    }
                }
            }
        };
        if members.iter().any(|i| conflicted_objects.contains(i)) {
            hold(&mut held, &mut mailboxes);
            continue;
        }
        // The common case: one object, its own mailbox, no placement rules.
        let home = if simple_homes && members.len() == 1 {
            if objects[members[0]].recipient.mailbox {
                Home::Decided(members[0])
            } else {
                Home::NoMailbox
            }
        } else {
            choose_home(policy, &staged.placements, &system_ids, &objects, &members)
        };
        match home {
            Home::Decided(home_object) => {
                let object = &objects[home_object];
                if !object.recipient.enabled && !policy.include_disabled {
                    disabled += 1;
                    hidden.extend(
                        members
                            .iter()
                            .flat_map(|&i| objects[i].addresses.iter().map(String::as_str)),
                    );
                    continue;
                }
                let entry = entry(
                    policy,
                    &system_ids,
                    &objects,
                    &members,
                    home_object,
                    &mut notices,
                );
                if members.len() > 1 {
                    let foreign = members
                        .iter()
                        .filter(|&&i| i != home_object)
                        .map(|&i| {
                            let other = &objects[i];
                            ForeignEntry {
                                system: system_ids[other.system].to_string(),
                                name: other.recipient.name().to_string(),
                                addresses: other.addresses.clone(),
                                mailbox: other.recipient.mailbox,
                                forwards_to: other
                                    .recipient
                                    .forwards_to
                                    .as_deref()
                                    .and_then(|to| normalize_address(to).ok()),
                            }
                        })
                        .collect();
                    clusters.insert(
                        entry.anchor.clone(),
                        Cluster {
                            home_addresses: object.addresses.clone(),
                            home_disabled: !object.recipient.enabled,
                            foreign,
                        },
                    );
                }
                gal.push(entry);
            }
            Home::NoMailbox => {}
            Home::Conflict(conflict) => {
                hold(&mut held, &mut mailboxes);
                conflicts.push(conflict);
            }
        }
    }
    if !hidden.is_empty() {
        for entry in gal.iter_mut().filter(|e| !e.members.is_empty()) {
            entry
                .members
                .retain(|member| !hidden.contains(member.as_str()));
        }
    }
    gal.sort_unstable_by(|a, b| a.primary_address.cmp(&b.primary_address));
    Joined {
        gal,
        conflicts,
        notices,
        index,
        mailboxes,
        clusters,
        held,
        disabled,
    }
}

enum Home {
    Decided(usize),
    /// Only directory entries without a mailbox (hand-made forwarders).
    NoMailbox,
    Conflict(Conflict),
}

fn choose_home(
    policy: &Policy,
    placements: &BTreeMap<String, String>,
    system_ids: &[&str],
    objects: &[Object<'_>],
    members: &[usize],
) -> Home {
    let addresses: Vec<String> = {
        let set: BTreeSet<&str> = members
            .iter()
            .flat_map(|&i| objects[i].addresses.iter().map(String::as_str))
            .collect();
        set.into_iter().map(str::to_string).collect()
    };
    let mailboxes: Vec<usize> = members
        .iter()
        .copied()
        .filter(|&i| objects[i].recipient.mailbox)
        .collect();
    let mailbox_systems: BTreeSet<&str> = mailboxes
        .iter()
        .map(|&i| system_ids[objects[i].system])
        .collect();

    // An explicit placement, or the master directory's home attribute.
    let configured: Option<(String, String)> = addresses
        .iter()
        .find_map(|a| placements.get(a).cloned())
        .map(|s| (s, "its placement".to_string()))
        .or_else(|| {
            let rule = policy.home_attribute.as_ref()?;
            members.iter().find_map(|&i| {
                let object = &objects[i];
                if system_ids[object.system] != rule.system {
                    return None;
                }
                let value = object.recipient.extra.get(&rule.attribute)?;
                let home = rule.values.get(value.trim())?;
                Some((
                    home.clone(),
                    format!("{} = {value} on {}", rule.attribute, rule.system),
                ))
            })
        });

    if let Some((home, why)) = configured {
        let in_home: Vec<usize> = members
            .iter()
            .copied()
            .filter(|&i| system_ids[objects[i].system] == home)
            .collect();
        let mailbox_in_home: Vec<usize> = in_home
            .iter()
            .copied()
            .filter(|&i| objects[i].recipient.mailbox)
            .collect();
        let pick = if mailbox_in_home.len() == 1 {
            Some(mailbox_in_home[0])
        } else if mailboxes.is_empty() && in_home.len() == 1 {
            Some(in_home[0])
        } else {
            None
        };
        if let Some(i) = pick {
            return Home::Decided(i);
        }
        let found = if mailbox_systems.is_empty() {
            "no system holds its mailbox".to_string()
        } else {
            format!("its mailbox is on {}", join(&mailbox_systems))
        };
        return Home::Conflict(Conflict {
            kind: ConflictKind::PlacementContradictsMailbox,
            addresses: addresses.clone(),
            systems: std::iter::once(home.clone()).chain(mailbox_systems.iter().map(|s| s.to_string())).collect(),
            message: format!(
                "{} should be homed on {home} by {why}, but {found}; create the mailbox on {home} or correct the placement",
                addresses[0]
            ),
        });
    }

    match mailboxes.len() {
        0 => Home::NoMailbox,
        1 => Home::Decided(mailboxes[0]),
        _ => {
            let primaries: BTreeSet<&str> = mailboxes
                .iter()
                .map(|&i| objects[i].addresses[0].as_str())
                .collect();
            if primaries.len() > 1 {
                let shared: Vec<String> = addresses
                    .iter()
                    .filter(|a| {
                        mailboxes
                            .iter()
                            .filter(|&&i| objects[i].addresses.contains(a))
                            .count()
                            > 1
                    })
                    .cloned()
                    .collect();
                Home::Conflict(Conflict {
                    kind: ConflictKind::AddressClaimedTwice,
                    addresses: addresses.clone(),
                    systems: mailbox_systems.iter().map(|s| s.to_string()).collect(),
                    message: format!(
                        "{} is claimed by two recipients ({}); remove the address from all but one",
                        shared.first().unwrap_or(&addresses[0]),
                        mailboxes
                            .iter()
                            .map(|&i| format!(
                                "{} on {}",
                                objects[i].addresses[0], system_ids[objects[i].system]
                            ))
                            .collect::<Vec<_>>()
                            .join(" and ")
                    ),
                })
            } else {
                Home::Conflict(Conflict {
                    kind: ConflictKind::MailboxInTwoSystems,
                    addresses: addresses.clone(),
                    systems: mailbox_systems.iter().map(|s| s.to_string()).collect(),
                    message: format!(
                        "{} has a mailbox on {}; remove one, or place the recipient on one system (a placement)",
                        held_by_every_mailbox(objects, &mailboxes),
                        on_each(&mailbox_systems)
                    ),
                })
            }
        }
    }
}

fn join(systems: &BTreeSet<&str>) -> String {
    systems.iter().copied().collect::<Vec<_>>().join(" and ")
}

/// "both a and b", or "a, b and c" for more systems.
fn on_each(systems: &BTreeSet<&str>) -> String {
    let names: Vec<&str> = systems.iter().copied().collect();
    match names.as_slice() {
        [first, second] => format!("both {first} and {second}"),
        [init @ .., last] if !init.is_empty() => format!("{} and {last}", init.join(", ")),
        _ => names.join(" and "),
    }
}

/// Names the recipient of mailboxes sharing one primary address by what
/// they share: that primary (which every one of them holds, and which
/// joined them), with a count of the other addresses they all hold. An
/// address only one of them answers at is not named.
fn held_by_every_mailbox(objects: &[Object<'_>], mailboxes: &[usize]) -> String {
    let Some(&first) = mailboxes.first() else {
        return String::new();
    };
    let primary = objects[first].addresses[0].as_str();
    let more = objects[first]
        .addresses
        .iter()
        .filter(|a| a.as_str() != primary)
        .filter(|a| mailboxes.iter().all(|&i| objects[i].addresses.contains(a)))
        .count();
    match more {
        0 => primary.to_string(),
        1 => format!("{primary} (and 1 more shared address)"),
        n => format!("{primary} (and {n} more shared addresses)"),
    }
}

fn entry(
    policy: &Policy,
    system_ids: &[&str],
    objects: &[Object<'_>],
    members: &[usize],
    home_object: usize,
    notices: &mut Vec<Notice>,
) -> GalEntry {
    let home = &objects[home_object];
    let home_id = system_ids[home.system];
    let mut addresses: Vec<String> = members
        .iter()
        .flat_map(|&i| objects[i].addresses.iter().cloned())
        .collect();
    addresses.sort();
    addresses.dedup();

    // Attribute precedence: per attribute, then the default order, then the
    // home, then every other system in configuration order. Values are kept
    // as directories store them (AD trims the spaces around a value; a
    // blank value is none), so a stub read back compares equal and is not
    // planned again on every full read.
    let mut attributes = Attributes::default();
    let names: &[&str] = if members.len() == 1 {
        attributes = home.recipient.attributes.clone();
        for name in Attributes::NAMES {
            let stored = match attributes.get(name) {
                Some(v) if v.trim().is_empty() => None,
                Some(v) if v.trim().len() != v.len() => Some(v.trim().to_string()),
                _ => continue,
            };
            attributes.set(name, stored);
        }
        &[]
    } else {
        &Attributes::NAMES
    };
    for name in names.iter().copied() {
        let order = policy
            .precedence_by_attribute
            .get(name)
            .map(Vec::as_slice)
            .unwrap_or(policy.precedence.as_slice());
        let value = order
            .iter()
            .map(String::as_str)
            .chain(std::iter::once(home_id))
            .chain(system_ids.iter().copied())
            .find_map(|system| {
                members
                    .iter()
                    .filter(|&&i| system_ids[objects[i].system] == system)
                    .find_map(|&i| {
                        objects[i]
                            .recipient
                            .attributes
                            .get(name)
                            .map(str::trim)
                            .filter(|v| !v.is_empty())
                    })
            });
        attributes.set(name, value.map(str::to_string));
    }

    let mut member_addresses = Vec::with_capacity(home.recipient.members.len());
    for raw in &home.recipient.members {
        match normalize_address(raw) {
            Ok(a) => member_addresses.push(a),
            Err(error) => notices.push(Notice {
                system: home_id.to_string(),
                object: home.addresses[0].clone(),
                message: format!("skipped a group member: {error}"),
            }),
        }
    }
    member_addresses.sort();
    member_addresses.dedup();

    let mut systems: Vec<String> = members
        .iter()
        .map(|&i| system_ids[objects[i].system].to_string())
        .collect();
    systems.sort();
    systems.dedup();

    // The address the home lists in its own routing domain, where the
    // other systems' stubs send mail.
    let home_policy = policy.system(home_id);
    let routing_address = home_policy
        .and_then(|s| s.routing_domain.as_deref())
        .and_then(|domain| {
            home.recipient
                .addresses()
                .filter_map(|raw| normalize_address(raw).ok())
                .find(|a| split_address(a).is_some_and(|(_, d)| d == domain))
        });
    if let Some((domain, system)) = home_policy
        .filter(|s| !s.routing_domain_is_alias && routing_address.is_none())
        .and_then(|s| Some((s.routing_domain.as_deref()?, s)))
    {
        notices.push(Notice {
            system: system.id.clone(),
            object: home.addresses[0].clone(),
            message: format!(
                "{} lists no address in its routing domain {domain} on {}, so the other systems' stubs cannot route mail to it (add one, for example an email address policy that gives every mailbox a {domain} address)",
                home.addresses[0], system.id
            ),
        });
    }

    GalEntry {
        anchor: format!("{home_id}:{}", home.recipient.anchor),
        kind: home.recipient.kind,
        primary_address: home.addresses[0].clone(),
        addresses,
        home: home_id.to_string(),
        attributes,
        members: member_addresses,
        systems,
        routing_address,
    }
}
