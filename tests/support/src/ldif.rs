//! What `ldapsearch -LLL` prints, read back.

/// One entry of an LDIF document: its DN and its attribute values in the
/// order printed (one pair per value).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LdifEntry {
    pub dn: String,
    pub attrs: Vec<(String, String)>,
}

impl LdifEntry {
    /// The values of `attr` (its name in any case), in the order printed.
    pub fn all(&self, attr: &str) -> Vec<&str> {
        self.attrs
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(attr))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// The single value of `attr`.
    ///
    /// # Panics
    ///
    /// When the entry has no value of `attr`, or more than one.
    pub fn one(&self, attr: &str) -> &str {
        match self.all(attr)[..] {
            [v] => v,
            ref other => panic!("{} has {attr} {other:?}", self.dn),
        }
    }
}

/// The entries of `text`, LDIF as `ldapsearch -LLL -o ldif-wrap=no`
/// prints it: entries separated by blank lines, `name: value` or
/// `name:: base64` (decoded, as UTF-8 with replacement characters) one a
/// line, `#` comments skipped. Folded lines are not joined: search with
/// `ldif-wrap=no`, as [`TestServer::ldapsearch`](crate::TestServer::ldapsearch)
/// does.
///
/// # Panics
///
/// On a `::` value that is not base64.
pub fn parse_ldif(text: &str) -> Vec<LdifEntry> {
    use base64::Engine as _;
    let mut entries = Vec::new();
    for block in text.split("\n\n").filter(|b| !b.trim().is_empty()) {
        let mut dn = String::new();
        let mut attrs = Vec::new();
        for line in block.lines().filter(|l| !l.starts_with('#')) {
            let Some((key, value)) = line.split_once(':') else {
                continue;
            };
            let value = match value.strip_prefix(':') {
                Some(b64) => String::from_utf8_lossy(
                    &base64::engine::general_purpose::STANDARD
                        .decode(b64.trim())
                        .unwrap_or_else(|e| panic!("{key}:: {b64} is not base64: {e}")),
                )
                .into_owned(),
                None => value.trim_start().to_string(),
            };
            if key.eq_ignore_ascii_case("dn") {
                dn = value;
            } else {
                attrs.push((key.to_string(), value));
            }
        }
        entries.push(LdifEntry { dn, attrs });
    }
    entries
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_values_and_base64() {
        let text = "# a comment\ndn: uid=a,ou=people\nmail: a@x\nMail: b@x\ncn:: Wm/Dqw==\n\n\
                    dn:: dWlkPWIsb3U9cGVvcGxl\nsn: B\n\n";
        let entries = parse_ldif(text);
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[0].dn, "uid=a,ou=people");
        assert_eq!(entries[0].all("mail"), ["a@x", "b@x"]);
        assert_eq!(entries[0].one("cn"), "Zoë");
        assert_eq!(entries[1].dn, "uid=b,ou=people");
        assert_eq!(entries[1].one("SN"), "B");
    }
}
