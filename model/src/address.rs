//! Address normalisation: the join key of the GAL.
//!
//! Two spellings of one address must compare equal: case is folded and the
//! domain is converted to its ASCII (IDNA, punycode) form, so
//! `Émile@Exämple.com` and `émile@xn--exmple-cua.com` join.

use thiserror::Error;

/// Why a string is not a usable email address.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum AddressError {
    /// No `@`, an empty local part or an empty domain.
    #[error("`{0}` is not an email address (expected local@domain)")]
    Malformed(String),
    /// The domain could not be converted to its ASCII form.
    #[error("`{0}` has a domain that is not a valid internationalised domain name")]
    BadDomain(String),
}

/// Returns the normalised form of `raw`: trimmed, lower-case, domain in IDNA
/// ASCII form. The local part keeps its characters (folded to lower case), as
/// every mail system coexist talks to compares local parts without case.
pub fn normalize_address(raw: &str) -> Result<String, AddressError> {
    let trimmed = raw.trim();
    let (local, domain) =
        split_address(trimmed).ok_or_else(|| AddressError::Malformed(trimmed.to_string()))?;
    if local.chars().any(|c| c.is_whitespace() || c == '@') {
        return Err(AddressError::Malformed(trimmed.to_string()));
    }
    let domain = domain.trim_end_matches('.');
    let ascii =
        idna::domain_to_ascii(domain).map_err(|_| AddressError::BadDomain(trimmed.to_string()))?;
    if ascii.is_empty() || !ascii.contains('.') {
        return Err(AddressError::BadDomain(trimmed.to_string()));
    }
    Ok(format!("{}@{}", local.to_lowercase(), ascii))
}

/// Splits `local@domain` at its last `@`; `None` if either side is empty.
pub fn split_address(address: &str) -> Option<(&str, &str)> {
    let at = address.rfind('@')?;
    let (local, domain) = (&address[..at], &address[at + 1..]);
    if local.is_empty() || domain.is_empty() {
        return None;
    }
    Some((local, domain))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn case_is_folded() {
        assert_eq!(
            normalize_address(" Alice.Smith@AcmeCorp.COM ").as_deref(),
            Ok("alice.smith@acmecorp.com")
        );
    }

    #[test]
    fn unicode_domains_join_their_punycode_spelling() {
        let unicode = normalize_address("bob@exämple.com");
        let ascii = normalize_address("BOB@xn--exmple-cua.com");
        assert_eq!(unicode, ascii);
        assert_eq!(unicode.as_deref(), Ok("bob@xn--exmple-cua.com"));
    }

    #[test]
    fn malformed_addresses_are_refused() {
        for raw in [
            "",
            "nobody",
            "@acmecorp.com",
            "alice@",
            "a b@acmecorp.com",
            "x@localhost",
        ] {
            assert!(normalize_address(raw).is_err(), "{raw:?} was accepted");
        }
    }
}
