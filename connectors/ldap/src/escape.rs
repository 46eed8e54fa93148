//! Escaping of values placed in DNs (RFC 4514) and filters (RFC 4515), and
//! the small DN parsing the connector needs (the first RDN of a DN, and a
//! normalised form to compare DNs).

/// Escapes `value` for use as an attribute value in an RDN (RFC 4514):
/// `" + , ; < = > \` and NUL always, a leading space or `#`, a trailing
/// space. Non-ASCII characters stay as UTF-8, which RFC 4514 allows.
pub fn dn_value(value: &str) -> String {
    ldap3::dn_escape(value).into_owned()
}

/// Escapes `value` for use inside a filter assertion (RFC 4515):
/// `* ( ) \` and NUL become `\2a \28 \29 \5c \00`.
pub fn filter_value(value: &str) -> String {
    ldap3::ldap_escape(value).into_owned()
}

/// Escapes raw bytes for a filter (`\xx` for every byte), as used for
/// binary assertions such as `objectGUID`.
pub fn filter_bytes(value: &[u8]) -> String {
    let mut out = String::with_capacity(value.len() * 3);
    for b in value {
        out.push_str(&format!("\\{b:02x}"));
    }
    out
}

/// One attribute-type-and-value of an RDN, the value unescaped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ava {
    pub attribute: String,
    pub value: String,
}

/// Parses a DN string into its RDNs (each a list of AVAs), unescaping values.
/// Returns `None` when the DN is malformed.
pub fn parse_dn(dn: &str) -> Option<Vec<Vec<Ava>>> {
    let bytes = dn.as_bytes();
    let mut rdns = Vec::new();
    let mut current: Vec<Ava> = Vec::new();
    let mut i = 0;
    if dn.trim().is_empty() {
        return Some(rdns);
    }
    loop {
        // attribute type
        while i < bytes.len() && bytes[i] == b' ' {
            i += 1;
        }
        let start = i;
        while i < bytes.len() && bytes[i] != b'=' {
            if matches!(bytes[i], b',' | b'+') {
                return None;
            }
            i += 1;
        }
        if i >= bytes.len() {
            return None;
        }
        let attribute = dn[start..i].trim().to_string();
        if attribute.is_empty() {
            return None;
        }
        i += 1; // '='
        let mut value: Vec<u8> = Vec::new();
        if i < bytes.len() && bytes[i] == b'"' {
            i += 1;
            while i < bytes.len() && bytes[i] != b'"' {
                if bytes[i] == b'\\' && i + 1 < bytes.len() {
                    i += 1;
                }
                value.push(bytes[i]);
                i += 1;
            }
            i += 1;
            while i < bytes.len() && bytes[i] == b' ' {
                i += 1;
            }
        } else {
            let mut trailing_unescaped_spaces = 0;
            while i < bytes.len() && !matches!(bytes[i], b',' | b'+' | b';') {
                if bytes[i] == b'\\' {
                    let hex = |c: u8| (c as char).to_digit(16);
                    match (bytes.get(i + 1), bytes.get(i + 2)) {
                        (Some(&a), Some(&b)) if hex(a).is_some() && hex(b).is_some() => {
                            let v = hex(a).unwrap_or(0) * 16 + hex(b).unwrap_or(0);
                            value.push(v as u8);
                            i += 3;
                        }
                        (Some(&c), _) => {
                            value.push(c);
                            i += 2;
                        }
                        (None, _) => return None,
                    }
                    trailing_unescaped_spaces = 0;
                } else {
                    if bytes[i] == b' ' {
                        trailing_unescaped_spaces += 1;
                    } else {
                        trailing_unescaped_spaces = 0;
                    }
                    value.push(bytes[i]);
                    i += 1;
                }
            }
            value.truncate(value.len() - trailing_unescaped_spaces);
        }
        let value = String::from_utf8(value).ok()?;
        current.push(Ava { attribute, value });
        if i >= bytes.len() {
            rdns.push(current);
            return Some(rdns);
        }
        if bytes[i] == b'+' {
            i += 1;
            continue;
        }
        // ',' or ';'
        rdns.push(std::mem::take(&mut current));
        i += 1;
    }
}

/// A DN in a canonical form for comparisons and map keys: attribute types
/// and values lower-cased, spaces around separators removed, values
/// re-escaped. Falls back to the lower-cased input when it does not parse.
pub fn normalize_dn(dn: &str) -> String {
    match parse_dn(dn) {
        Some(rdns) => rdns
            .iter()
            .map(|rdn| {
                let mut avas: Vec<String> = rdn
                    .iter()
                    .map(|a| {
                        format!(
                            "{}={}",
                            a.attribute.to_lowercase(),
                            dn_value(&a.value.to_lowercase())
                        )
                    })
                    .collect();
                avas.sort();
                avas.join("+")
            })
            .collect::<Vec<_>>()
            .join(","),
        None => dn.trim().to_lowercase(),
    }
}

/// Splits `dn` into its first RDN (as written) and its parent DN.
pub fn split_rdn(dn: &str) -> (String, String) {
    let bytes = dn.as_bytes();
    let mut i = 0;
    let mut quoted = false;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 1,
            b'"' => quoted = !quoted,
            b',' | b';' if !quoted => {
                return (dn[..i].trim().to_string(), dn[i + 1..].trim().to_string());
            }
            _ => {}
        }
        i += 1;
    }
    (dn.trim().to_string(), String::new())
}

/// Whether `dn` is `base` or lies below it.
pub fn is_within(dn: &str, base: &str) -> bool {
    let dn = normalize_dn(dn);
    let base = normalize_dn(base);
    if base.is_empty() {
        return true;
    }
    dn == base || dn.ends_with(&format!(",{base}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dn_values_with_specials_are_escaped_per_rfc_4514() {
        assert_eq!(dn_value("Smith, John"), "Smith\\2c John");
        assert_eq!(dn_value("a+b"), "a\\2bb");
        assert_eq!(dn_value("say \"hi\""), "say \\22hi\\22");
        assert_eq!(dn_value("#hash"), "\\23hash");
        assert_eq!(dn_value(" lead"), "\\20lead");
        assert_eq!(dn_value("trail "), "trail\\20");
        assert_eq!(dn_value("a<b>c;d=e\\f"), "a\\3cb\\3ec\\3bd\\3de\\5cf");
        assert_eq!(dn_value("Zoë Ñandú"), "Zoë Ñandú");
    }

    #[test]
    fn filter_values_are_escaped_per_rfc_4515() {
        assert_eq!(filter_value("a*b(c)d\\e\0"), "a\\2ab\\28c\\29d\\5ce\\00");
        assert_eq!(filter_value("Zoë"), "Zoë");
        assert_eq!(filter_bytes(&[0x01, 0xab]), "\\01\\ab");
    }

    #[test]
    fn escaped_values_parse_back_to_themselves() {
        for v in [
            "Smith, John",
            "a+b",
            "#hash",
            " lead",
            "trail ",
            "say \"hi\"",
            "x\\y",
            "Zoë",
        ] {
            let dn = format!("cn={},ou=People,dc=x", dn_value(v));
            let parsed = parse_dn(&dn).unwrap();
            assert_eq!(parsed[0][0].value, v, "{dn}");
            assert_eq!(parsed.len(), 3);
        }
    }

    #[test]
    fn dns_normalise_case_and_spacing() {
        assert_eq!(
            normalize_dn("CN=Alice Smith, OU=People ,DC=Acme"),
            normalize_dn("cn=alice smith,ou=people,dc=acme")
        );
        assert_eq!(
            normalize_dn("cn=a\\2cb,dc=x"),
            normalize_dn("cn=a\\,b,dc=x")
        );
        assert!(is_within("cn=a,OU=People,dc=x", "ou=people, dc=x"));
        assert!(!is_within("cn=a,ou=peoplex,dc=x", "ou=people,dc=x"));
        assert!(!is_within("cn=a,ou=xpeople,dc=x", "ou=people,dc=x"));
    }

    #[test]
    fn the_first_rdn_is_split_off_respecting_escapes() {
        assert_eq!(
            split_rdn("cn=Smith\\, John,ou=p,dc=x"),
            ("cn=Smith\\, John".to_string(), "ou=p,dc=x".to_string())
        );
        assert_eq!(split_rdn("dc=x"), ("dc=x".to_string(), String::new()));
    }
}
