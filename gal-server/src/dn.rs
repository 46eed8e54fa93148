//! Distinguished names (RFC 4514): escaping a value for an RDN, and the
//! normalised form searches compare (attribute types lower-cased and
//! unaliased, values unescaped, trimmed and lower-cased, the parts of a
//! multi-valued RDN sorted).

/// Escapes `value` for use as an RDN value (RFC 4514 §2.4).
pub fn escape_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 4);
    let last = value.chars().count().saturating_sub(1);
    for (i, c) in value.chars().enumerate() {
        match c {
            ',' | '+' | '"' | '\\' | '<' | '>' | ';' | '=' => {
                out.push('\\');
                out.push(c);
            }
            '#' if i == 0 => out.push_str("\\#"),
            ' ' if i == 0 || i == last => out.push_str("\\ "),
            '\0' => out.push_str("\\00"),
            _ => out.push(c),
        }
    }
    out
}

/// The short name of an attribute type written under one of its aliases.
pub fn unalias(kind: &str) -> String {
    let lower = kind.trim().to_ascii_lowercase();
    match lower.as_str() {
        "commonname" | "2.5.4.3" => "cn".into(),
        "surname" | "2.5.4.4" => "sn".into(),
        "organizationalunitname" | "2.5.4.11" => "ou".into(),
        "organizationname" | "2.5.4.10" => "o".into(),
        "domaincomponent" | "0.9.2342.19200300.100.1.25" => "dc".into(),
        "rfc822mailbox" | "0.9.2342.19200300.100.1.3" => "mail".into(),
        "userid" => "uid".into(),
        _ => lower,
    }
}

/// The normalised RDNs of `dn`, leftmost first; `None` when `dn` is not a
/// DN. The empty DN (the root) has no RDN.
pub fn normalise(dn: &str) -> Option<Vec<String>> {
    if dn.trim().is_empty() {
        return Some(Vec::new());
    }
    let mut rdns = Vec::new();
    let mut parts: Vec<String> = Vec::new();
    let mut kind = String::new();
    let mut value: Vec<u8> = Vec::new();
    let mut in_value = false;
    let bytes = dn.as_bytes();
    let mut i = 0;
    let finish = |kind: &mut String, value: &mut Vec<u8>, parts: &mut Vec<String>| {
        let k = unalias(kind);
        if k.is_empty()
            || !k
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
        {
            return false;
        }
        let v = String::from_utf8_lossy(value);
        let v = fold_spaces(&v.to_lowercase());
        parts.push(format!("{k}={}", escape_value(&v)));
        kind.clear();
        value.clear();
        true
    };
    while i < bytes.len() {
        let b = bytes[i];
        if !in_value {
            if b == b'=' {
                in_value = true;
            } else if b == b',' || b == b'+' {
                return None;
            } else {
                kind.push(char::from(b));
            }
            i += 1;
            continue;
        }
        match b {
            b'\\' => {
                let next = *bytes.get(i + 1)?;
                let hex = bytes
                    .get(i + 1..i + 3)
                    .filter(|h| h.iter().all(u8::is_ascii_hexdigit))
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                match hex {
                    Some(byte) => {
                        value.push(byte);
                        i += 3;
                    }
                    None => {
                        value.push(next);
                        i += 2;
                    }
                }
                continue;
            }
            b',' | b'+' => {
                if !finish(&mut kind, &mut value, &mut parts) {
                    return None;
                }
                in_value = false;
                if b == b',' {
                    parts.sort();
                    rdns.push(parts.join("+"));
                    parts.clear();
                }
            }
            _ => value.push(b),
        }
        i += 1;
    }
    if !in_value || !finish(&mut kind, &mut value, &mut parts) {
        return None;
    }
    parts.sort();
    rdns.push(parts.join("+"));
    Some(rdns)
}

/// Trims and collapses runs of white space to one space.
pub fn fold_spaces(value: &str) -> String {
    value.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalising_ignores_case_spaces_and_aliases() {
        assert_eq!(
            normalise("CN=Ann  Lee , OU=GAL,dc=AcmeCorp,DC=com"),
            normalise("commonName=ann lee,ou=gal,dc=acmecorp,dc=com")
        );
        assert_eq!(
            normalise("cn=Lee\\, Ann,ou=gal").unwrap_or_default(),
            vec!["cn=lee\\, ann".to_string(), "ou=gal".to_string()]
        );
        assert_eq!(normalise(""), Some(Vec::new()));
    }

    #[test]
    fn multi_valued_rdns_compare_in_any_order() {
        assert_eq!(
            normalise("mail=a@x.com+cn=A,ou=gal"),
            normalise("cn=a+mail=A@x.com,ou=gal")
        );
    }

    #[test]
    fn hex_escapes_are_decoded() {
        assert_eq!(normalise("cn=J\\C3\\BCrgen"), normalise("cn=jürgen"));
    }

    #[test]
    fn broken_dns_are_refused() {
        assert_eq!(normalise("no equals sign"), None);
        assert_eq!(normalise("cn=a,,ou=b"), None);
        assert_eq!(normalise("=a"), None);
    }

    #[test]
    fn escaped_values_round_trip() {
        let value = " #Lee, Ann+co ";
        let dn = format!("cn={}", escape_value(value));
        assert_eq!(
            normalise(&dn),
            Some(vec![format!("cn={}", escape_value("#lee, ann+co"))])
        );
    }
}
