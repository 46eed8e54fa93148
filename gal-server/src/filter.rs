//! Search filters (RFC 4511 §4.5.1.7) evaluated against an entry, with
//! the three values TRUE, FALSE and Undefined (`None`): an attribute the
//! server does not know makes its item Undefined, and an entry matches only
//! when the whole filter is TRUE.

use ldap3_proto::proto::LdapFilter;

use crate::directory::{fold, key, known, EntryRef, Snapshot};

/// A filter compiled once per search: attribute names resolved to their
/// keys and assertion values folded as the entries' values are.
#[derive(Debug)]
pub struct Filter(Node);

#[derive(Debug)]
enum Node {
    And(Vec<Node>),
    Or(Vec<Node>),
    Not(Box<Node>),
    Present(String),
    Compare {
        key: String,
        known: bool,
        want: String,
        op: Op,
    },
    Substring {
        key: String,
        initial: Option<String>,
        any: Vec<String>,
        last: Option<String>,
    },
    /// TRUE, FALSE or Undefined whatever the entry.
    Constant(Option<bool>),
}

#[derive(Debug, Clone, Copy)]
enum Op {
    Equal,
    GreaterOrEqual,
    LessOrEqual,
}

impl Filter {
    /// Compiles `filter`.
    pub fn new(filter: &LdapFilter) -> Self {
        Filter(compile(filter))
    }

    /// Whether `entry` matches: the filter is TRUE for it.
    pub fn matches(&self, entry: EntryRef<'_>) -> bool {
        eval(&self.0, entry) == Some(true)
    }

    /// The entries of `snapshot` (by position, ascending) that may match,
    /// found through its indexes; `None` when the filter needs every entry
    /// read. Every entry that matches is among them; each must still be
    /// checked with [`Filter::matches`].
    pub fn candidates(&self, snapshot: &Snapshot) -> Option<Vec<u32>> {
        candidates(&self.0, snapshot)
    }
}

fn candidates(node: &Node, snapshot: &Snapshot) -> Option<Vec<u32>> {
    match node {
        Node::Compare {
            key,
            want,
            op: Op::Equal,
            ..
        } => Some(snapshot.index(key)?.equal(want)),
        Node::Substring {
            key,
            initial,
            any,
            last,
        } => {
            let index = snapshot.index(key)?;
            // The longest piece finds the fewest values.
            let mut needles: Vec<Vec<u8>> = any.iter().map(|p| p.as_bytes().to_vec()).collect();
            if let Some(initial) = initial {
                needles.push([&[0], initial.as_bytes()].concat());
            }
            if let Some(last) = last {
                needles.push([last.as_bytes(), &[0]].concat());
            }
            let needle = needles.into_iter().max_by_key(Vec::len)?;
            if needle.iter().all(|&b| b == 0) {
                return None;
            }
            Some(index.holding(&needle))
        }
        // TRUE only where every item is: the fewest candidates of one.
        Node::And(items) => items
            .iter()
            .filter_map(|item| candidates(item, snapshot))
            .min_by_key(Vec::len),
        // TRUE only where one item is: every item must have candidates.
        Node::Or(items) => {
            let mut all = Vec::new();
            for item in items {
                all.extend(candidates(item, snapshot)?);
            }
            all.sort_unstable();
            all.dedup();
            Some(all)
        }
        Node::Constant(Some(true) | None) => None,
        Node::Constant(Some(false)) => Some(Vec::new()),
        _ => None,
    }
}

fn compile(filter: &LdapFilter) -> Node {
    let compare = |name: &str, value: &str, op| {
        let key = key(name);
        Node::Compare {
            known: known(&key),
            want: fold(&key, value),
            key,
            op,
        }
    };
    match filter {
        LdapFilter::And(items) => Node::And(items.iter().map(compile).collect()),
        LdapFilter::Or(items) => Node::Or(items.iter().map(compile).collect()),
        LdapFilter::Not(item) => Node::Not(Box::new(compile(item))),
        LdapFilter::Present(name) => Node::Present(key(name)),
        LdapFilter::Equality(name, value) | LdapFilter::Approx(name, value) => {
            compare(name, value, Op::Equal)
        }
        LdapFilter::GreaterOrEqual(name, value) => compare(name, value, Op::GreaterOrEqual),
        LdapFilter::LessOrEqual(name, value) => compare(name, value, Op::LessOrEqual),
        LdapFilter::Substring(name, parts) => {
            let key = key(name);
            if !known(&key) {
                return Node::Constant(None);
            }
            if key == "member" || key == "objectclass" {
                // No substring rule for DNs and object identifiers.
                return Node::Constant(Some(false));
            }
            Node::Substring {
                initial: parts.initial.as_deref().map(|p| fold(&key, p)),
                any: parts.any.iter().map(|p| fold(&key, p)).collect(),
                last: parts.final_.as_deref().map(|p| fold(&key, p)),
                key,
            }
        }
        LdapFilter::Extensible(_) => Node::Constant(None),
    }
}

fn eval(node: &Node, entry: EntryRef<'_>) -> Option<bool> {
    match node {
        Node::And(items) => {
            let mut result = Some(true);
            for item in items {
                match eval(item, entry) {
                    Some(false) => return Some(false),
                    None => result = None,
                    Some(true) => {}
                }
            }
            result
        }
        Node::Or(items) => {
            let mut result = Some(false);
            for item in items {
                match eval(item, entry) {
                    Some(true) => return Some(true),
                    None => result = None,
                    Some(false) => {}
                }
            }
            result
        }
        Node::Not(item) => eval(item, entry).map(|b| !b),
        Node::Present(key) => Some(entry.get(key).is_some()),
        Node::Compare {
            key,
            known,
            want,
            op,
        } => {
            let test = |have: &str| {
                let have = fold(key, have);
                match op {
                    Op::Equal => have == *want,
                    Op::GreaterOrEqual => have >= *want,
                    Op::LessOrEqual => have <= *want,
                }
            };
            match entry.get(key) {
                Some(attr) => Some(attr.values().any(test)),
                // The root DSE and the schema entry carry attributes the
                // GAL does not know: elsewhere they are Undefined.
                None if !known => None,
                None => Some(false),
            }
        }
        Node::Substring {
            key,
            initial,
            any,
            last,
        } => Some(entry.get(key).is_some_and(|attr| {
            attr.values()
                .any(|v| substring_matches(&fold(key, v), initial.as_deref(), any, last.as_deref()))
        })),
        Node::Constant(value) => *value,
    }
}

/// `value` starts with `initial`, then holds each of `any` in order, and
/// ends with `last`, the pieces not overlapping.
fn substring_matches(
    value: &str,
    initial: Option<&str>,
    any: &[String],
    last: Option<&str>,
) -> bool {
    let mut start = 0;
    if let Some(initial) = initial {
        if !value.starts_with(initial) {
            return false;
        }
        start = initial.len();
    }
    let mut end = value.len();
    if let Some(last) = last {
        if !value.ends_with(last) || value.len() < start + last.len() {
            return false;
        }
        end = value.len() - last.len();
    }
    for piece in any {
        let Some(window) = value.get(start..end) else {
            return false;
        };
        match window.find(piece.as_str()) {
            Some(at) => start += at + piece.len(),
            None => return false,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::directory::Entry;
    use ldap3_proto::parse_ldap_filter_str;

    fn person() -> Entry {
        Entry::new(
            "cn=Ann Lee,ou=gal,dc=acmecorp,dc=com".into(),
            vec![
                (
                    "objectClass",
                    vec!["top".into(), "person".into(), "inetOrgPerson".into()],
                ),
                ("cn", vec!["Ann Lee".into()]),
                ("sn", vec!["Lee".into()]),
                ("givenName", vec!["Ann".into()]),
                (
                    "mail",
                    vec!["ann.lee@acmecorp.com".into(), "ann@acmecorp.com".into()],
                ),
                ("telephoneNumber", vec!["+1 555-0100".into()]),
                ("ou", vec!["Sales".into()]),
            ],
        )
    }

    fn check(filter: &str) -> bool {
        let parsed = parse_ldap_filter_str(filter).unwrap();
        Filter::new(&parsed).matches(person().view())
    }

    #[test]
    fn equality_ignores_case_of_names_and_values() {
        let spaced = LdapFilter::Equality("CN".into(), "ann  LEE".into());
        assert!(Filter::new(&spaced).matches(person().view()));
        assert!(check("(mail=ANN@acmecorp.com)"));
        assert!(check("(objectclass=INETORGPERSON)"));
        assert!(!check("(cn=ann)"));
    }

    #[test]
    fn telephone_numbers_match_without_spaces_and_hyphens() {
        assert!(check("(telephoneNumber=+15550100)"));
        assert!(check("(telephoneNumber=*0100)"));
    }

    #[test]
    fn substrings_match_in_order_without_overlap() {
        assert!(check("(cn=ann*)"));
        assert!(check("(cn=*lee)"));
        assert!(check("(cn=a*n*l*e)"));
        assert!(check("(mail=*@acmecorp.com)"));
        assert!(!check("(sn=le*ee)"));
        assert!(!check("(cn=*xyz*)"));
    }

    #[test]
    fn presence_and_boolean_operators_combine() {
        assert!(check("(&(objectClass=person)(sn=*))"));
        assert!(check("(|(cn=bob*)(mail=ann*))"));
        assert!(check("(!(ou=engineering))"));
        assert!(!check("(&(ou=sales)(!(givenName=ann)))"));
        assert!(!check("(mobile=*)"));
    }

    #[test]
    fn department_is_matched_as_ou() {
        let entry = Entry::new(
            "cn=Ann Lee,ou=gal,dc=acmecorp,dc=com".into(),
            vec![
                ("department", vec!["Sales".into()]),
                ("ou", vec!["Sales".into()]),
            ],
        );
        let filter = parse_ldap_filter_str("(department=sales)").unwrap();
        assert!(Filter::new(&filter).matches(entry.view()));
    }

    #[test]
    fn indexes_find_every_entry_a_scan_finds() {
        use coexist_model::{Attributes, GalEntry, RecipientKind};
        let names = [
            "Ann Smith",
            "Bob Goldsmith",
            "Smitty Lee",
            "Carl Nesmith",
            "Dan Smith",
            "Eve Jones",
        ];
        let gal: Vec<GalEntry> = names
            .iter()
            .enumerate()
            .map(|(n, name)| {
                let address = format!("{}{n}@x.com", name.to_lowercase().replace(' ', "."));
                GalEntry {
                    anchor: format!("a{n}"),
                    kind: RecipientKind::Person,
                    primary_address: address.clone(),
                    addresses: vec![address, format!("alias{n}@x.com")],
                    home: "ldap".into(),
                    attributes: Attributes {
                        display_name: Some((*name).into()),
                        surname: name.split(' ').nth(1).map(str::to_string),
                        ..Attributes::default()
                    },
                    members: Vec::new(),
                    systems: vec!["ldap".into()],
                    routing_address: None,
                }
            })
            .collect();
        let snapshot = Snapshot::build("ou=gal,dc=x,dc=com", &gal);
        for text in [
            "(cn=*smi*)",
            "(cn=smi*)",
            "(cn=*smith)",
            "(sn=smith)",
            "(cn=*SMITH*)",
            "(mail=alias3@x.com)",
            "(mail=ALIAS3@X.COM)",
            "(cn=a*i*h)",
            "(&(cn=*smi*)(sn=smith))",
            "(&(objectClass=person)(mail=alias2@x.com))",
            "(|(cn=dan*)(mail=eve*))",
            "(|(cn=dan*)(title=x))",
            "(cn=nobody)",
            "(cn=*)",
        ] {
            let filter = Filter::new(&parse_ldap_filter_str(text).unwrap());
            let scanned: Vec<u32> = (0..snapshot.entries() as u32)
                .filter(|&n| filter.matches(snapshot.entry(n as usize).unwrap()))
                .collect();
            if let Some(candidates) = filter.candidates(&snapshot) {
                let found: Vec<u32> = candidates
                    .into_iter()
                    .filter(|&n| filter.matches(snapshot.entry(n as usize).unwrap()))
                    .collect();
                assert_eq!(found, scanned, "{text}");
            }
        }
        let filter = Filter::new(&parse_ldap_filter_str("(cn=*smi*)").unwrap());
        assert_eq!(filter.candidates(&snapshot).map(|c| c.len()), Some(5));
        let filter = Filter::new(&parse_ldap_filter_str("(mail=alias3@x.com)").unwrap());
        assert_eq!(filter.candidates(&snapshot), Some(vec![4]));
    }

    #[test]
    fn unknown_attributes_are_undefined_even_when_negated() {
        assert!(!check("(uid=ann)"));
        assert!(!check("(!(uid=ann))"));
        assert!(check("(|(uid=ann)(sn=lee))"));
    }
}
