//! Search filters (RFC 4511 §4.5.1.7) evaluated against an entry, with
//! the three values TRUE, FALSE and Undefined (`None`): an attribute the
//! server does not know makes its item Undefined, and an entry matches only
//! when the whole filter is TRUE.

use ldap3_proto::proto::{LdapFilter, LdapSubstringFilter};

use crate::directory::{fold, key, known, Entry};

/// Whether `entry` matches `filter`.
pub fn matches(filter: &LdapFilter, entry: &Entry) -> bool {
    eval(filter, entry) == Some(true)
}

fn eval(filter: &LdapFilter, entry: &Entry) -> Option<bool> {
    match filter {
        LdapFilter::And(items) => {
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
        LdapFilter::Or(items) => {
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
        LdapFilter::Not(item) => eval(item, entry).map(|b| !b),
        LdapFilter::Present(name) => {
            let key = key(name);
            Some(entry.get(&key).is_some())
        }
        LdapFilter::Equality(name, value) | LdapFilter::Approx(name, value) => {
            compare(entry, name, value, |have, want| have == want)
        }
        LdapFilter::GreaterOrEqual(name, value) => {
            compare(entry, name, value, |have, want| have >= want)
        }
        LdapFilter::LessOrEqual(name, value) => {
            compare(entry, name, value, |have, want| have <= want)
        }
        LdapFilter::Substring(name, parts) => substring(entry, name, parts),
        LdapFilter::Extensible(_) => None,
    }
}

fn compare(
    entry: &Entry,
    name: &str,
    value: &str,
    test: impl Fn(&str, &str) -> bool,
) -> Option<bool> {
    let key = key(name);
    if !known(&key) {
        // The root DSE and the schema entry carry attributes the GAL does
        // not; they match by their own names.
        return entry.get(&key).map(|attr| {
            let want = value.to_lowercase();
            attr.values.iter().any(|v| test(&v.to_lowercase(), &want))
        });
    }
    let want = fold(&key, value);
    Some(
        entry
            .get(&key)
            .is_some_and(|attr| attr.folded.iter().any(|have| test(have, &want))),
    )
}

fn substring(entry: &Entry, name: &str, parts: &LdapSubstringFilter) -> Option<bool> {
    let key = key(name);
    if !known(&key) || key == "member" || key == "objectclass" {
        return if known(&key) { Some(false) } else { None };
    }
    let initial = parts.initial.as_deref().map(|p| fold(&key, p));
    let any: Vec<String> = parts.any.iter().map(|p| fold(&key, p)).collect();
    let last = parts.final_.as_deref().map(|p| fold(&key, p));
    Some(entry.get(&key).is_some_and(|attr| {
        attr.folded
            .iter()
            .any(|v| substring_matches(v, initial.as_deref(), &any, last.as_deref()))
    }))
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
        matches(&parsed, &person())
    }

    #[test]
    fn equality_ignores_case_of_names_and_values() {
        let spaced = LdapFilter::Equality("CN".into(), "ann  LEE".into());
        assert!(matches(&spaced, &person()));
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
        let mut entry = person();
        entry = Entry::new(
            entry.dn.clone(),
            vec![
                ("department", vec!["Sales".into()]),
                ("ou", vec!["Sales".into()]),
            ],
        );
        let filter = parse_ldap_filter_str("(department=sales)").unwrap();
        assert!(matches(&filter, &entry));
    }

    #[test]
    fn unknown_attributes_are_undefined_even_when_negated() {
        assert!(!check("(uid=ann)"));
        assert!(!check("(!(uid=ann))"));
        assert!(check("(|(uid=ann)(sn=lee))"));
    }
}
