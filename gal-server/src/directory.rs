//! The directory served: the GAL turned into LDAP entries under the base,
//! built once per GAL version ([`Snapshot`]) and never changed after.

use std::collections::{HashMap, HashSet};

use coexist_model::{GalEntry, RecipientKind};
use ldap3_proto::proto::LdapSearchScope;
use tokio_util::bytes::BytesMut;

use crate::dn::{escape_value, fold_spaces, normalise};
use crate::wire;

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

/// One entry on its own (the root DSE, the schema entry): its DN and
/// attributes encoded as a snapshot's entries are. Read through
/// [`Entry::view`].
#[derive(Debug)]
pub struct Entry {
    bytes: Vec<u8>,
    ends: Vec<u32>,
}

impl Entry {
    /// An entry with `attrs` (name, values); attributes without values are
    /// left out.
    pub fn new(dn: String, attrs: Vec<(&str, Vec<String>)>) -> Self {
        let (mut bytes, mut ends) = (Vec::new(), Vec::new());
        let encoded = wire::encode(
            &mut bytes,
            &mut ends,
            &dn,
            attrs
                .iter()
                .filter(|(_, values)| !values.is_empty())
                .map(|(name, values)| (*name, values.as_slice())),
        );
        if encoded.is_none() {
            tracing::warn!(dn, "an entry of 4 GiB or more is left empty");
        }
        Entry { bytes, ends }
    }

    /// The entry as filters and searches read it.
    pub fn view(&self) -> EntryRef<'_> {
        EntryRef {
            bytes: &self.bytes,
            ends: &self.ends,
        }
    }
}

/// An entry as searches read it: its encoded DN and attributes, decoded
/// in place.
#[derive(Debug, Clone, Copy)]
pub struct EntryRef<'a> {
    bytes: &'a [u8],
    ends: &'a [u32],
}

/// One attribute of an entry, decoded in place: its name as sent and its
/// values.
#[derive(Debug, Clone, Copy)]
pub struct Attr<'a> {
    /// The name as the entry carries it (canonical: `givenName`).
    pub name: &'a str,
    set: &'a [u8],
}

impl<'a> Attr<'a> {
    /// Whether this is the attribute looked up by `key` (a [`key`]).
    pub fn is(&self, key: &str) -> bool {
        self.name.eq_ignore_ascii_case(key)
    }

    /// Its values.
    pub fn values(&self) -> impl Iterator<Item = &'a str> {
        wire::octets(self.set).map(|v| std::str::from_utf8(v).unwrap_or_default())
    }
}

impl<'a> EntryRef<'a> {
    /// The DN as sent.
    pub fn dn(&self) -> &'a str {
        std::str::from_utf8(wire::dn(wire::piece(self.bytes, self.ends, 0))).unwrap_or_default()
    }

    /// Its attributes, in the entry's order.
    pub fn attrs(&self) -> impl Iterator<Item = Attr<'a>> {
        let this = *self;
        (0..self.ends.len().saturating_sub(1)).map(move |n| this.attr(n))
    }

    /// Attribute `n` (from 0).
    fn attr(&self, n: usize) -> Attr<'a> {
        let (name, set) =
            wire::attribute(wire::piece(self.bytes, self.ends, n + 1)).unwrap_or_default();
        Attr {
            name: std::str::from_utf8(name).unwrap_or_default(),
            set,
        }
    }

    /// The attribute looked up by `key`.
    pub fn get(&self, key: &str) -> Option<Attr<'a>> {
        self.attrs().find(|a| a.is(key))
    }

    /// Writes this entry as message `msgid`'s SearchResultEntry with the
    /// attributes `selected` picks.
    pub fn write(&self, out: &mut BytesMut, msgid: i32, selected: impl Fn(&Attr<'a>) -> bool) {
        wire::write(self.bytes, self.ends, out, msgid, |n| {
            selected(&self.attr(n))
        });
    }
}

/// The GAL as a directory: the base entry first, then one entry per GAL
/// recipient directly under it, in the store's order, every entry's DN
/// and attributes encoded once in one buffer; looked up by normalised DN.
#[derive(Debug)]
pub struct Snapshot {
    pub base_rdns: Vec<String>,
    /// Every entry's encoded DN and attributes, one after the other.
    arena: Vec<u8>,
    /// Where each piece of each entry ends, from the entry's start.
    ends: Vec<u32>,
    /// Where entry `n` starts in `arena` (and one more: the end).
    starts: Vec<usize>,
    /// Where entry `n`'s pieces start in `ends` (and one more: the end).
    firsts: Vec<usize>,
    /// (hash of the normalised DN, entry), sorted.
    by_dn: Vec<(u64, u32)>,
    /// Indexes of the attributes address books search by ([`INDEXED`]).
    indexes: Vec<(&'static str, Index)>,
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
    /// A value held a NUL (it would split in the column) or the column
    /// outgrew 4 GiB: the index is not used.
    broken: bool,
}

fn hash(value: &str) -> u64 {
    use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};
    BuildHasherDefault::<DefaultHasher>::default().hash_one(value)
}

impl Index {
    fn new() -> Self {
        Index {
            column: vec![0],
            ..Index::default()
        }
    }

    /// Adds entry `n`'s folded `value`.
    fn add(&mut self, n: u32, value: &str) {
        if self.broken {
            return;
        }
        let Ok(at) = u32::try_from(self.column.len()) else {
            self.broken = true;
            return;
        };
        if value.contains('\0') {
            self.broken = true;
            return;
        }
        self.hashes.push((hash(value), n));
        self.starts.push((at, n));
        self.column.extend_from_slice(value.as_bytes());
        self.column.push(0);
    }

    /// The finished index, or none when it broke.
    fn finish(mut self) -> Option<Self> {
        if self.broken || u32::try_from(self.column.len()).is_err() {
            return None;
        }
        self.hashes.sort_unstable();
        self.hashes.shrink_to_fit();
        self.column.shrink_to_fit();
        self.starts.shrink_to_fit();
        Some(self)
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

/// The normalised DN as one string (its RDNs escaped, so `,` joins them
/// unambiguously), and its hash.
fn dn_key(rdns: &[String]) -> (String, u64) {
    let joined = rdns.join(",");
    let h = hash(&joined);
    (joined, h)
}

impl Snapshot {
    /// Builds the directory of `gal` under `base` (already checked to be a
    /// DN). Entries are `cn=<display name or primary address>,<base>`; a
    /// second recipient with the same name gets
    /// `cn=<name>+mail=<primary address>,<base>`.
    pub fn build(base: &str, gal: &[GalEntry]) -> Self {
        let base_rdns = normalise(base).unwrap_or_default();
        let mut snapshot = Snapshot {
            base_rdns: base_rdns.clone(),
            // Some 400 bytes an entry: grown less often.
            arena: Vec::with_capacity(gal.len().saturating_mul(400)),
            ends: Vec::with_capacity(gal.len().saturating_mul(13)),
            starts: Vec::with_capacity(gal.len() + 2),
            firsts: Vec::with_capacity(gal.len() + 2),
            by_dn: Vec::with_capacity(gal.len() + 1),
            indexes: Vec::new(),
        };
        let (_, base_hash) = dn_key(&base_rdns);
        snapshot.push(base_hash, &base_entry(base));

        // First the DNs, so groups can name their members.
        let mut taken: HashSet<String> = HashSet::with_capacity(gal.len() + 1);
        taken.insert(dn_key(&base_rdns).0);
        let mut dns: Vec<Option<(String, u64)>> = Vec::with_capacity(gal.len());
        for recipient in gal {
            let cn = common_name(recipient);
            let mut dn = format!("cn={},{base}", escape_value(&cn));
            let mut key = dn_key(&normalise(&dn).unwrap_or_default());
            if taken.contains(&key.0) {
                dn = format!(
                    "cn={}+mail={},{base}",
                    escape_value(&cn),
                    escape_value(&recipient.primary_address)
                );
                key = dn_key(&normalise(&dn).unwrap_or_default());
            }
            if !taken.insert(key.0) {
                tracing::warn!(dn, "two GAL entries share a DN; serving the first");
                dns.push(None);
                continue;
            }
            dns.push(Some((dn, key.1)));
        }
        drop(taken);
        // Only groups need to find recipients by address.
        let mut by_address: HashMap<&str, usize> = HashMap::new();
        if gal.iter().any(|r| !r.members.is_empty()) {
            for (n, recipient) in gal.iter().enumerate() {
                if dns.get(n).is_some_and(Option::is_some) {
                    for address in &recipient.addresses {
                        by_address.entry(address.as_str()).or_insert(n);
                    }
                }
            }
        }
        for (recipient, dn) in gal.iter().zip(dns.iter()) {
            let Some((dn, dn_hash)) = dn else { continue };
            let members = recipient
                .members
                .iter()
                .filter_map(|m| by_address.get(m.as_str()))
                .filter_map(|&n| dns.get(n).cloned().flatten().map(|(dn, _)| dn))
                .collect();
            snapshot.push(*dn_hash, &gal_entry(dn.clone(), recipient, members));
        }
        drop(by_address);
        drop(dns);
        snapshot.starts.push(snapshot.arena.len());
        snapshot.firsts.push(snapshot.ends.len());
        snapshot.by_dn.sort_unstable();
        snapshot.arena.shrink_to_fit();
        snapshot.ends.shrink_to_fit();
        snapshot.starts.shrink_to_fit();
        snapshot.firsts.shrink_to_fit();
        snapshot.by_dn.shrink_to_fit();
        snapshot.indexes = snapshot.build_indexes();
        snapshot
    }

    /// Appends an entry (its normalised DN hashing to `dn_hash`).
    fn push(&mut self, dn_hash: u64, entry: &Entry) {
        let Ok(n) = u32::try_from(self.starts.len()) else {
            tracing::warn!("more than 4 billion GAL entries: the rest are not served");
            return;
        };
        self.starts.push(self.arena.len());
        self.firsts.push(self.ends.len());
        self.arena.extend_from_slice(&entry.bytes);
        self.ends.extend_from_slice(&entry.ends);
        self.by_dn.push((dn_hash, n));
    }

    fn build_indexes(&self) -> Vec<(&'static str, Index)> {
        let mut indexes: Vec<(&'static str, Index)> =
            INDEXED.iter().map(|&key| (key, Index::new())).collect();
        for n in 0..self.entries() {
            let Some(entry) = self.entry(n) else { continue };
            let Ok(id) = u32::try_from(n) else { break };
            for attr in entry.attrs() {
                let Some((key, index)) = indexes.iter_mut().find(|(key, _)| attr.is(key)) else {
                    continue;
                };
                for value in attr.values() {
                    index.add(id, &fold(key, value));
                }
            }
        }
        indexes
            .into_iter()
            .filter_map(|(key, index)| Some((key, index.finish()?)))
            .collect()
    }

    /// The index of the attribute `key`, if it is indexed.
    pub fn index(&self, key: &str) -> Option<&Index> {
        self.indexes
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, index)| index)
    }

    /// How many entries there are, the base included.
    pub fn entries(&self) -> usize {
        self.starts.len().saturating_sub(1)
    }

    /// Entry `n` (0: the base).
    pub fn entry(&self, n: usize) -> Option<EntryRef<'_>> {
        let bytes = self
            .arena
            .get(*self.starts.get(n)?..*self.starts.get(n + 1)?)?;
        let ends = self
            .ends
            .get(*self.firsts.get(n)?..*self.firsts.get(n + 1)?)?;
        Some(EntryRef { bytes, ends })
    }

    /// The position of the entry whose normalised DN is `rdns`.
    pub fn position(&self, rdns: &[String]) -> Option<usize> {
        // Every entry is the base or directly under it.
        if rdns.len() != self.base_rdns.len() && rdns.len() != self.base_rdns.len() + 1 {
            return None;
        }
        let (_, h) = dn_key(rdns);
        let from = self.by_dn.partition_point(|&(x, _)| x < h);
        self.by_dn[from..]
            .iter()
            .take_while(|&&(x, _)| x == h)
            .map(|&(_, n)| n as usize)
            .find(|&n| {
                self.entry(n)
                    .and_then(|e| normalise(e.dn()))
                    .is_some_and(|have| have == rdns)
            })
    }

    /// The entry whose normalised DN is `rdns`.
    pub fn find(&self, rdns: &[String]) -> Option<EntryRef<'_>> {
        self.position(rdns).and_then(|n| self.entry(n))
    }

    /// Whether entry `n` is in `scope` of a search from `base` (normalised;
    /// `target` is its position, [`Snapshot::position`]).
    pub fn in_scope(
        &self,
        n: usize,
        base: &[String],
        target: Option<usize>,
        scope: &LdapSearchScope,
    ) -> bool {
        let depth = self.base_rdns.len() + usize::from(n > 0);
        // Every entry is the base or directly under it: under `base` when
        // `base` is the GAL's base or above it, or is the entry itself.
        let under = if base.len() <= self.base_rdns.len() {
            self.base_rdns.ends_with(base)
        } else {
            target == Some(n)
        };
        match scope {
            LdapSearchScope::Base => target == Some(n),
            LdapSearchScope::OneLevel => under && depth == base.len() + 1,
            LdapSearchScope::Subtree => under,
            LdapSearchScope::Children => under && depth > base.len(),
        }
    }

    /// How many GAL entries are served (the base not counted).
    pub fn len(&self) -> usize {
        self.entries().saturating_sub(1)
    }

    /// Whether the GAL is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The bytes the snapshot holds (its buffers' capacities), for the
    /// log.
    pub fn bytes(&self) -> usize {
        self.arena.capacity()
            + self.ends.capacity() * 4
            + (self.starts.capacity() + self.firsts.capacity()) * 8
            + self.by_dn.capacity() * 16
            + self
                .indexes
                .iter()
                .map(|(_, i)| {
                    i.hashes.capacity() * 16 + i.column.capacity() + i.starts.capacity() * 8
                })
                .sum::<usize>()
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
        let dns: Vec<&str> = (0..snapshot.entries())
            .map(|n| snapshot.entry(n).unwrap().dn())
            .collect();
        assert_eq!(
            dns,
            [
                "ou=gal,dc=x,dc=com",
                "cn=Ann Lee,ou=gal,dc=x,dc=com",
                "cn=Ann Lee+mail=ann.lee@x.com,ou=gal,dc=x,dc=com"
            ]
        );
        assert_eq!(snapshot.len(), 2);
        for n in 0..snapshot.entries() {
            let rdns = normalise(snapshot.entry(n).unwrap().dn()).unwrap();
            assert_eq!(snapshot.position(&rdns), Some(n));
        }
        let elsewhere = normalise("cn=Ann Lee,ou=other,dc=x,dc=com").unwrap();
        assert_eq!(snapshot.position(&elsewhere), None);
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
        let group = (0..snapshot.entries())
            .filter_map(|n| snapshot.entry(n))
            .find(|e| e.dn().starts_with("cn=Team"))
            .unwrap();
        assert_eq!(
            group.get("member").unwrap().values().collect::<Vec<_>>(),
            ["cn=Ann\\, Lee,ou=gal,dc=x,dc=com"]
        );
        for entry in (0..snapshot.entries()).filter_map(|n| snapshot.entry(n)) {
            for attr in entry.attrs() {
                for value in attr.values() {
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
