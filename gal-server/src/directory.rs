//! The directory served: the GAL turned into LDAP entries under the base,
//! built once per GAL version ([`Snapshot`]) and never changed after.

use std::collections::HashMap;

use coexist_model::{GalEntry, RecipientKind};

use crate::dn::{escape_value, fold_spaces, normalise};
use crate::wire::Wire;

/// The attributes the server knows, by their canonical name, with the
/// aliases a client may use (compared lower-cased).
const KNOWN: &[(&str, &[&str])] = &[
    ("objectClass", &["objectclass"]),
    ("cn", &["cn", "commonname"]),
    ("sn", &["sn", "surname"]),
    ("givenName", &["givenname", "gn"]),
    ("displayName", &["displayname"]),
    ("mail", &["mail", "rfc822mailbox"]),
    ("telephoneNumber", &["telephonenumber"]),
    ("mobile", &["mobile", "mobiletelephonenumber"]),
    ("title", &["title"]),
    ("ou", &["ou", "organizationalunitname"]),
    ("department", &["department"]),
    ("o", &["o", "organizationname"]),
    ("member", &["member"]),
];

/// The lower-cased canonical name of the attribute a client calls `name`,
/// or the name lower-cased when the server does not know it.
pub fn key(name: &str) -> String {
    let lower = name.to_ascii_lowercase();
    KNOWN
        .iter()
        .find(|(_, aliases)| aliases.contains(&lower.as_str()))
        .map_or(lower, |(canonical, _)| canonical.to_ascii_lowercase())
}

/// Whether the server knows the attribute (by its [`key`]).
pub fn known(key: &str) -> bool {
    KNOWN
        .iter()
        .any(|(canonical, _)| canonical.eq_ignore_ascii_case(key))
}

/// A value as matching rules compare it: telephone numbers without spaces
/// and hyphens, DNs normalised, everything else case-folded with white
/// space collapsed.
pub fn fold(key: &str, value: &str) -> String {
    match key {
        "telephonenumber" | "mobile" => value
            .chars()
            .filter(|c| !c.is_whitespace() && *c != '-')
            .flat_map(char::to_lowercase)
            .collect(),
        "member" => {
            normalise(value).map_or_else(|| fold_spaces(&value.to_lowercase()), |r| r.join(","))
        }
        _ => fold_spaces(&value.to_lowercase()),
    }
}

/// One attribute of an entry: its name as sent, the key it is looked up
/// by, its values, and the values folded for matching.
#[derive(Debug)]
pub struct Attr {
    pub name: String,
    pub key: String,
    pub values: Vec<String>,
    pub folded: Vec<String>,
}

/// One entry: its DN as sent, its normalised RDNs, its attributes, and
/// the DN and attributes already encoded for search results.
#[derive(Debug)]
pub struct Entry {
    pub dn: String,
    pub rdns: Vec<String>,
    pub attrs: Vec<Attr>,
    pub wire: Wire,
}

impl Entry {
    /// An entry with `attrs` (name, values); attributes without values are
    /// left out.
    pub fn new(dn: String, attrs: Vec<(&str, Vec<String>)>) -> Self {
        let rdns = normalise(&dn).unwrap_or_default();
        let attrs = attrs
            .into_iter()
            .filter(|(_, values)| !values.is_empty())
            .map(|(name, values)| {
                let key = key(name);
                let folded = values.iter().map(|v| fold(&key, v)).collect();
                Attr {
                    name: name.to_string(),
                    key,
                    values,
                    folded,
                }
            })
            .collect::<Vec<Attr>>();
        let wire = Wire::new(
            &dn,
            attrs.iter().map(|a| (a.name.as_str(), a.values.as_slice())),
        );
        Entry {
            dn,
            rdns,
            attrs,
            wire,
        }
    }

    /// The attribute looked up by `key`.
    pub fn get(&self, key: &str) -> Option<&Attr> {
        self.attrs.iter().find(|a| a.key == key)
    }
}

/// The GAL as a directory: the base entry first, then one entry per GAL
/// recipient, in the store's order; looked up by normalised DN.
#[derive(Debug)]
pub struct Snapshot {
    pub base_rdns: Vec<String>,
    pub entries: Vec<Entry>,
    by_dn: HashMap<Vec<String>, usize>,
    /// Indexes of the attributes address books search by ([`INDEXED`]).
    indexes: HashMap<&'static str, Index>,
}

/// The attributes (by [`key`]) indexed for equality and substrings.
pub const INDEXED: &[&str] = &["cn", "sn", "givenname", "displayname", "mail"];

/// One attribute's index over the entries: every folded value, for
/// equality (by hash) and for substrings (all values in one column).
#[derive(Debug, Default)]
pub struct Index {
    /// (hash of a folded value, entry), sorted.
    hashes: Vec<(u64, u32)>,
    /// `\0value\0value\0…\0`: every folded value, each after a NUL.
    column: Vec<u8>,
    /// (where a value starts in `column`, its entry), by position.
    starts: Vec<(u32, u32)>,
}

fn hash(value: &str) -> u64 {
    use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};
    BuildHasherDefault::<DefaultHasher>::default().hash_one(value)
}

impl Index {
    /// The index of `key` over `entries`, or none when a value holds a NUL
    /// (it would split in the column) or the column outgrows 4 GiB.
    fn build(key: &str, entries: &[Entry]) -> Option<Index> {
        let mut index = Index::default();
        index.column.push(0);
        for (n, entry) in entries.iter().enumerate() {
            let n = u32::try_from(n).ok()?;
            let Some(attr) = entry.attrs.iter().find(|a| a.key == key) else {
                continue;
            };
            for value in &attr.folded {
                if value.contains('\0') {
                    return None;
                }
                index.hashes.push((hash(value), n));
                index
                    .starts
                    .push((u32::try_from(index.column.len()).ok()?, n));
                index.column.extend_from_slice(value.as_bytes());
                index.column.push(0);
            }
        }
        u32::try_from(index.column.len()).ok()?;
        index.hashes.sort_unstable();
        index.hashes.shrink_to_fit();
        index.column.shrink_to_fit();
        index.starts.shrink_to_fit();
        Some(index)
    }

    /// The entries (ascending) one of whose values may equal `folded`.
    pub fn equal(&self, folded: &str) -> Vec<u32> {
        let h = hash(folded);
        let from = self.hashes.partition_point(|&(x, _)| x < h);
        let mut found: Vec<u32> = self.hashes[from..]
            .iter()
            .take_while(|&&(x, _)| x == h)
            .map(|&(_, n)| n)
            .collect();
        found.sort_unstable();
        found.dedup();
        found
    }

    /// The entries (ascending) one of whose values holds `needle`, a
    /// folded piece with a NUL before it when it must begin a value or
    /// after it when it must end one.
    pub fn holding(&self, needle: &[u8]) -> Vec<u32> {
        let mut found = Vec::new();
        let mut last = None;
        for at in memchr::memmem::find_iter(&self.column, needle) {
            // A leading NUL is the end of the value before.
            let at = if needle.first() == Some(&0) {
                at + 1
            } else {
                at
            };
            let Ok(at) = u32::try_from(at) else { break };
            let n = self.starts.partition_point(|&(start, _)| start <= at);
            let Some(&(_, entry)) = n.checked_sub(1).and_then(|n| self.starts.get(n)) else {
                continue;
            };
            if last != Some(entry) {
                found.push(entry);
                last = Some(entry);
            }
        }
        found.dedup();
        found
    }
}

impl Snapshot {
    /// Builds the directory of `gal` under `base` (already checked to be a
    /// DN). Entries are `cn=<display name or primary address>,<base>`; a
    /// second recipient with the same name gets
    /// `cn=<name>+mail=<primary address>,<base>`.
    pub fn build(base: &str, gal: &[GalEntry]) -> Self {
        let base_rdns = normalise(base).unwrap_or_default();
        let mut by_dn = HashMap::with_capacity(gal.len() + 1);
        let mut entries = Vec::with_capacity(gal.len() + 1);
        entries.push(base_entry(base));
        by_dn.insert(base_rdns.clone(), 0);

        // First the DNs, so groups can name their members.
        let mut dns = Vec::with_capacity(gal.len());
        let mut by_address: HashMap<&str, usize> = HashMap::new();
        for (n, recipient) in gal.iter().enumerate() {
            let cn = common_name(recipient);
            let mut dn = format!("cn={},{base}", escape_value(&cn));
            let mut rdns = normalise(&dn).unwrap_or_default();
            if by_dn.contains_key(&rdns) {
                dn = format!(
                    "cn={}+mail={},{base}",
                    escape_value(&cn),
                    escape_value(&recipient.primary_address)
                );
                rdns = normalise(&dn).unwrap_or_default();
            }
            if by_dn.contains_key(&rdns) {
                tracing::warn!(dn, "two GAL entries share a DN; serving the first");
                dns.push(None);
                continue;
            }
            by_dn.insert(rdns, n + 1);
            for address in &recipient.addresses {
                by_address.entry(address.as_str()).or_insert(n);
            }
            dns.push(Some(dn));
        }
        let mut index = HashMap::with_capacity(gal.len() + 1);
        index.insert(base_rdns.clone(), 0);
        for (recipient, dn) in gal.iter().zip(dns.iter()) {
            let Some(dn) = dn else { continue };
            let members = recipient
                .members
                .iter()
                .filter_map(|m| by_address.get(m.as_str()))
                .filter_map(|&n| dns.get(n).cloned().flatten())
                .collect();
            let entry = gal_entry(dn.clone(), recipient, members);
            index.insert(entry.rdns.clone(), entries.len());
            entries.push(entry);
        }
        let indexes = INDEXED
            .iter()
            .filter_map(|&key| Some((key, Index::build(key, &entries)?)))
            .collect();
        Snapshot {
            base_rdns,
            entries,
            by_dn: index,
            indexes,
        }
    }

    /// The index of the attribute `key`, if it is indexed.
    pub fn index(&self, key: &str) -> Option<&Index> {
        self.indexes.get(key)
    }

    /// The entry whose normalised DN is `rdns`.
    pub fn find(&self, rdns: &[String]) -> Option<&Entry> {
        self.by_dn.get(rdns).and_then(|&n| self.entries.get(n))
    }

    /// How many GAL entries are served (the base not counted).
    pub fn len(&self) -> usize {
        self.entries.len().saturating_sub(1)
    }

    /// Whether the GAL is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn common_name(recipient: &GalEntry) -> String {
    recipient
        .attributes
        .display_name
        .as_deref()
        .map(fold_spaces)
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| recipient.primary_address.clone())
}

/// The base entry: an organizationalUnit when the base's first RDN is
/// `ou=`, else an extensibleObject.
fn base_entry(base: &str) -> Entry {
    let first = base.split(',').next().unwrap_or_default();
    let (kind, value) = first.split_once('=').unwrap_or(("ou", "gal"));
    let kind = kind.trim().to_ascii_lowercase();
    let value = value.trim().to_string();
    let class = if kind == "ou" {
        "organizationalUnit"
    } else {
        "extensibleObject"
    };
    let mut attrs = vec![("objectClass", vec!["top".to_string(), class.to_string()])];
    if kind == "ou" {
        attrs.push(("ou", vec![value]));
    }
    Entry::new(base.to_string(), attrs)
}

fn one(value: &Option<String>) -> Vec<String> {
    value
        .iter()
        .filter(|v| !v.trim().is_empty())
        .cloned()
        .collect()
}

/// The entry of one recipient: only what the GAL publishes.
fn gal_entry(dn: String, recipient: &GalEntry, members: Vec<String>) -> Entry {
    let a = &recipient.attributes;
    let cn = common_name(recipient);
    let mut mail = vec![recipient.primary_address.clone()];
    mail.extend(recipient.aliases().map(str::to_string));
    let classes: &[&str] = match recipient.kind {
        RecipientKind::Group => &["top", "groupOfNames"],
        _ => &["top", "person", "organizationalPerson", "inetOrgPerson"],
    };
    let mut attrs = vec![
        (
            "objectClass",
            classes.iter().map(|c| (*c).to_string()).collect(),
        ),
        ("cn", vec![cn.clone()]),
    ];
    if recipient.kind == RecipientKind::Group {
        attrs.push(("displayName", one(&a.display_name)));
        attrs.push(("mail", mail));
        attrs.push(("member", members));
    } else {
        let sn = one(&a.surname);
        attrs.push(("sn", if sn.is_empty() { vec![cn] } else { sn }));
        attrs.push(("givenName", one(&a.given_name)));
        attrs.push(("displayName", one(&a.display_name)));
        attrs.push(("mail", mail));
        attrs.push(("telephoneNumber", one(&a.business_phone)));
        attrs.push(("mobile", one(&a.mobile_phone)));
        attrs.push(("title", one(&a.title)));
        attrs.push(("ou", one(&a.department)));
        attrs.push(("department", one(&a.department)));
        attrs.push(("o", one(&a.company)));
    }
    Entry::new(dn, attrs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use coexist_model::Attributes;

    fn recipient(address: &str, name: &str, kind: RecipientKind) -> GalEntry {
        GalEntry {
            anchor: format!("ldap:{address}-anchor"),
            kind,
            primary_address: address.into(),
            addresses: vec![address.into()],
            home: "ldap".into(),
            attributes: Attributes {
                display_name: Some(name.into()),
                ..Attributes::default()
            },
            members: Vec::new(),
            systems: vec!["ldap".into(), "google".into()],
            routing_address: Some(format!("{address}.routing")),
        }
    }

    #[test]
    fn two_people_of_one_name_get_distinct_dns() {
        let gal = [
            recipient("ann@x.com", "Ann Lee", RecipientKind::Person),
            recipient("ann.lee@x.com", "Ann Lee", RecipientKind::Person),
        ];
        let snapshot = Snapshot::build("ou=gal,dc=x,dc=com", &gal);
        let dns: Vec<&str> = snapshot.entries.iter().map(|e| e.dn.as_str()).collect();
        assert_eq!(
            dns,
            [
                "ou=gal,dc=x,dc=com",
                "cn=Ann Lee,ou=gal,dc=x,dc=com",
                "cn=Ann Lee+mail=ann.lee@x.com,ou=gal,dc=x,dc=com"
            ]
        );
        assert_eq!(snapshot.len(), 2);
        for entry in &snapshot.entries {
            assert!(snapshot.find(&entry.rdns).is_some());
        }
    }

    #[test]
    fn groups_list_their_gal_members_by_dn_and_nothing_internal_is_served() {
        let mut team = recipient("team@x.com", "Team", RecipientKind::Group);
        team.members = vec!["ann@x.com".into(), "outsider@example.org".into()];
        let gal = [
            recipient("ann@x.com", "Ann, Lee", RecipientKind::Person),
            team,
        ];
        let snapshot = Snapshot::build("ou=gal,dc=x,dc=com", &gal);
        let group = snapshot
            .entries
            .iter()
            .find(|e| e.dn.starts_with("cn=Team"))
            .unwrap();
        assert_eq!(
            group.get("member").unwrap().values,
            ["cn=Ann\\, Lee,ou=gal,dc=x,dc=com"]
        );
        for entry in &snapshot.entries {
            for attr in &entry.attrs {
                for value in &attr.values {
                    assert!(
                        !value.contains("anchor") && !value.contains("routing"),
                        "{value}"
                    );
                    assert_ne!(value, "ldap");
                    assert_ne!(value, "google");
                }
            }
        }
    }
}
