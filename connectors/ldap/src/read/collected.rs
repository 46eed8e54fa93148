//! What a read collects: recipients (with their member DNs), stubs,
//! problems, the entries kept for member resolution, the references met,
//! and whether the read was complete.

use std::collections::HashSet;

use coexist_connector::{FoundStub, Problem, Recipient};
use rustc_hash::FxHashMap;

use crate::entry::{Classified, Entry, Mapper};

/// What a member DN stands for, as far as group expansion cares.
#[derive(Debug, Clone, Default)]
pub struct Node {
    /// The primary address, for a member with one.
    pub address: Option<String>,
    /// The member DNs, for a group.
    pub members: Option<Vec<String>>,
}

/// What a read collected.
#[derive(Debug, Default)]
pub struct Collected {
    pub recipients: Vec<(Recipient, Vec<String>)>,
    pub stubs: Vec<FoundStub>,
    pub problems: Vec<Problem>,
    /// Every entry seen, by DN as read, for member resolution (which
    /// normalises the DNs when there are members to resolve).
    pub nodes: FxHashMap<String, Node>,
    /// `false` when a search stopped part-way.
    pub complete: bool,
    /// Search references and referral URLs met (followed only when
    /// `follow_referrals` is on).
    pub references: Vec<String>,
    /// The URLs whose subtrees were read by following a reference.
    pub followed: Vec<String>,
    /// The DN of every entry added (recipients, stubs and entries skipped
    /// with a problem), kept only by [`Collected::tracking`] (deltas: the
    /// groups holding these entries are read again, see
    /// [`crate::read::Reader::add_parent_groups`]).
    pub dns: Option<Vec<String>>,
}

impl Collected {
    pub fn new() -> Self {
        Collected {
            complete: true,
            ..Collected::default()
        }
    }

    /// A collection that also keeps the DN of every entry added (see
    /// [`Collected::dns`]).
    pub fn tracking() -> Self {
        Collected {
            dns: Some(Vec::new()),
            ..Collected::new()
        }
    }

    /// Takes in what another read collected: its recipients whose anchors
    /// are not among `anchors` (which then holds them too), its entries for
    /// member resolution, its problems not reported already, its
    /// references and its completeness. Its stubs are left out (it reads
    /// groups).
    pub(super) fn absorb(&mut self, other: Collected, anchors: &mut HashSet<String>) {
        for (recipient, members) in other.recipients {
            if anchors.insert(recipient.anchor.clone()) {
                self.recipients.push((recipient, members));
            }
        }
        self.nodes.extend(other.nodes);
        for p in other.problems {
            if !self.problems.contains(&p) {
                self.problems.push(p);
            }
        }
        self.references.extend(other.references);
        self.followed.extend(other.followed);
        self.complete &= other.complete;
    }

    /// Adds one entry.
    pub fn add(&mut self, mapper: &Mapper, entry: Entry) {
        let classified = mapper.classify(&entry);
        self.add_classified(mapper, entry, classified);
    }

    /// Adds one entry classified already.
    pub fn add_classified(&mut self, mapper: &Mapper, entry: Entry, classified: Classified) {
        if matches!(classified, Classified::AddressBookEntry) {
            // The address book's own connector reads it.
            return;
        }
        if let Some(dns) = &mut self.dns {
            dns.push(entry.dn.clone());
        }
        match classified {
            Classified::Recipient {
                recipient,
                member_dns,
                warnings,
            } => {
                // Two entries with one primary address are both kept: the
                // reconciler reports the address as claimed twice and
                // holds its stubs (the connector decides nothing).
                self.nodes.insert(
                    entry.dn,
                    Node {
                        address: Some(recipient.primary_address.clone()),
                        members: (recipient.kind == coexist_connector::RecipientKind::Group)
                            .then(|| member_dns.clone()),
                    },
                );
                self.problems.extend(warnings);
                self.recipients.push((recipient, member_dns));
            }
            Classified::Stub(s) => self.stubs.push(s),
            Classified::AddressBookEntry => {}
            Classified::Problem(p) => {
                // A group without an address can still be nested in one.
                let members: Vec<String> = mapper
                    .attrs
                    .members
                    .iter()
                    .flat_map(|m| entry.values(m).iter().cloned())
                    .collect();
                if !members.is_empty() {
                    self.nodes.insert(
                        entry.dn,
                        Node {
                            address: None,
                            members: Some(members),
                        },
                    );
                }
                self.problems.push(p)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Flavor;
    use crate::read::tests::reader;

    #[test]
    fn only_a_tracking_collection_keeps_the_dns_of_its_entries() {
        let r = reader(Flavor::Openldap);
        let entry = || Entry::new("uid=a,dc=x");
        let mut plain = Collected::new();
        plain.add(&r.mapper, entry());
        assert!(plain.dns.is_none());
        let mut tracking = Collected::tracking();
        tracking.add(&r.mapper, entry());
        assert_eq!(tracking.dns, Some(vec!["uid=a,dc=x".to_string()]));
    }
}
