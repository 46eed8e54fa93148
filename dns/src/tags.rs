//! Tag lists (`v=DKIM1; k=rsa; p=...`, `v=DMARC1; p=reject`): DKIM keys
//! (RFC 6376 3.6.1) and DMARC policies (RFC 7489 6.3).

use base64::Engine;

/// The tags of a tag list, names lower-cased, values trimmed, in order.
pub fn tags(text: &str) -> Vec<(String, String)> {
    text.split(';')
        .filter_map(|part| part.split_once('='))
        .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_string()))
        .collect()
}

fn tag<'a>(tags: &'a [(String, String)], name: &str) -> Option<&'a str> {
    tags.iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

/// Whether a DKIM key record is usable, and why not.
pub fn dkim_key(text: &str) -> Result<String, String> {
    let tags = tags(text);
    if let Some(v) = tag(&tags, "v") {
        if v != "DKIM1" {
            return Err(format!("v={v} is not DKIM1"));
        }
    }
    let kind = tag(&tags, "k").unwrap_or("rsa").to_ascii_lowercase();
    let Some(p) = tag(&tags, "p") else {
        return Err("the record has no p= (public key) tag".into());
    };
    let p: String = p.chars().filter(|c| !c.is_whitespace()).collect();
    if p.is_empty() {
        return Err("p= is empty: the key is revoked".into());
    }
    let key = base64::engine::general_purpose::STANDARD
        .decode(p.as_bytes())
        .map_err(|_| "p= is not base64".to_string())?;
    match kind.as_str() {
        // An RSA SubjectPublicKeyInfo of 1024 bits is about 162 bytes.
        "rsa" if key.len() < 150 => Err(format!(
            "the RSA key is too short ({} bytes; receivers want 1024 bits at least, 2048 is usual)",
            key.len()
        )),
        "rsa" => Ok(format!("an RSA key of {} bytes", key.len())),
        "ed25519" if key.len() == 32 => Ok("an Ed25519 key".into()),
        "ed25519" => Err(format!(
            "an Ed25519 key must be 32 bytes, not {}",
            key.len()
        )),
        other => Err(format!(
            "k={other} is not a key type receivers know (rsa, ed25519)"
        )),
    }
}

/// A DMARC policy record, as far as the checks read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dmarc {
    /// `p=`: none, quarantine or reject.
    pub policy: String,
    /// `sp=`, the subdomains' policy, when given.
    pub subdomain_policy: Option<String>,
    /// `adkim=`: r (relaxed, the default) or s (strict).
    pub dkim_alignment: String,
    /// `aspf=`: r or s.
    pub spf_alignment: String,
    /// `pct=`, when given.
    pub percent: Option<String>,
}

impl Dmarc {
    /// Whether receivers act on failures (quarantine or reject).
    pub fn enforces(&self) -> bool {
        self.policy == "quarantine" || self.policy == "reject"
    }

    /// The policy in words (`p=reject, DKIM alignment relaxed, ...`).
    pub fn describe(&self) -> String {
        let alignment = |a: &str| if a == "s" { "strict" } else { "relaxed" };
        let mut out = format!(
            "p={}, DKIM alignment {}, SPF alignment {}",
            self.policy,
            alignment(&self.dkim_alignment),
            alignment(&self.spf_alignment)
        );
        if let Some(sp) = &self.subdomain_policy {
            out.push_str(&format!(", subdomains sp={sp}"));
        }
        if let Some(pct) = &self.percent {
            out.push_str(&format!(", applied to {pct}% of failing mail"));
        }
        out
    }
}

/// Whether a TXT record is a DMARC record (starts `v=DMARC1`).
pub fn is_dmarc(text: &str) -> bool {
    tags(text)
        .first()
        .is_some_and(|(name, value)| name == "v" && value == "DMARC1")
}

/// Parses a DMARC record; a missing or unknown `p=` is an error.
pub fn dmarc(text: &str) -> Result<Dmarc, String> {
    let tags = tags(text);
    let policy = match tag(&tags, "p").map(str::to_ascii_lowercase) {
        Some(p) if ["none", "quarantine", "reject"].contains(&p.as_str()) => p,
        Some(p) => return Err(format!("p={p} is not none, quarantine or reject")),
        None => return Err("the record has no p= tag".into()),
    };
    let alignment = |name: &str| -> Result<String, String> {
        match tag(&tags, name).map(str::to_ascii_lowercase) {
            None => Ok("r".into()),
            Some(a) if a == "r" || a == "s" => Ok(a),
            Some(a) => Err(format!("{name}={a} is not r or s")),
        }
    };
    Ok(Dmarc {
        policy,
        subdomain_policy: tag(&tags, "sp").map(str::to_ascii_lowercase),
        dkim_alignment: alignment("adkim")?,
        spf_alignment: alignment("aspf")?,
        percent: tag(&tags, "pct").map(str::to_string),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 2048-bit RSA public key as Google publishes them (base64 of 294
    /// bytes of zeros stands in: only the length is read).
    fn rsa_key() -> String {
        base64::engine::general_purpose::STANDARD.encode([0u8; 294])
    }

    #[test]
    fn a_dkim_key_is_usable_when_it_has_a_key_of_a_known_type_and_length() {
        assert!(dkim_key(&format!("v=DKIM1; k=rsa; p={}", rsa_key())).is_ok());
        assert!(dkim_key(&format!("v=DKIM1; p={}", rsa_key())).is_ok());
        assert!(dkim_key("v=DKIM1; k=rsa; p=")
            .unwrap_err()
            .contains("revoked"));
        assert!(dkim_key("v=DKIM1; k=rsa; p=AAAA")
            .unwrap_err()
            .contains("too short"));
        assert!(dkim_key("v=DKIM1; k=rsa; p=!!")
            .unwrap_err()
            .contains("base64"));
        assert!(dkim_key("v=DKIM1; k=rsa").unwrap_err().contains("no p="));
    }

    #[test]
    fn a_dmarc_record_gives_its_policy_and_alignment() {
        assert!(is_dmarc("v=DMARC1; p=reject"));
        assert!(!is_dmarc("v=spf1 -all"));
        let policy = dmarc("v=DMARC1; p=reject; adkim=s; rua=mailto:d@acmecorp.com").unwrap();
        assert!(policy.enforces());
        assert_eq!(
            policy.describe(),
            "p=reject, DKIM alignment strict, SPF alignment relaxed"
        );
        assert!(dmarc("v=DMARC1; rua=mailto:x@y").is_err());
        assert!(dmarc("v=DMARC1; p=maybe").is_err());
        assert!(!dmarc("v=DMARC1; p=none").unwrap().enforces());
    }
}
