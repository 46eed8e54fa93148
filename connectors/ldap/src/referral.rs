//! Referrals and search references (RFC 4511 4.1.10 and 4.5.3): the LDAP
//! URLs (RFC 4516) they carry, and where the continuation of a search they
//! name goes.
//!
//! A subtree search that meets a referral object below its base returns a
//! SearchResultReference: one or more URLs, each of which may be used to
//! read the subtree the search could not (`ldap://host/ou=there??sub`). A
//! search whose base lies below a referral object ends with the result
//! code `referral` and such URLs. With `follow_referrals` on, the reader
//! ([`crate::read`]) searches each of them with the original filter and
//! attributes, the URL's DN as base (the original base when it has none)
//! and the URL's scope (the original scope when it has none), reaching
//! another server as [`crate::endpoint::Endpoint::referred`] decides.

use std::fmt;

use ldap3::Scope;

/// How many references deep a read follows (a reference met while reading
/// a reference is one more hop).
pub const MAX_HOPS: usize = 5;

/// The scheme of an LDAP URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scheme {
    /// `ldap://`: cleartext, or TLS after StartTLS.
    Ldap,
    /// `ldaps://`: TLS from the first byte.
    Ldaps,
    /// `ldapi://`: a local Unix socket (the host is its percent-encoded
    /// path).
    Ldapi,
}

impl Scheme {
    fn as_str(self) -> &'static str {
        match self {
            Scheme::Ldap => "ldap",
            Scheme::Ldaps => "ldaps",
            Scheme::Ldapi => "ldapi",
        }
    }

    /// The port a URL without one means.
    pub fn default_port(self) -> u16 {
        match self {
            Scheme::Ldaps => 636,
            Scheme::Ldap | Scheme::Ldapi => 389,
        }
    }
}

/// One extension of an LDAP URL (`[!]type[=value]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Extension {
    /// `!`: a client that does not implement it must not use the URL.
    pub critical: bool,
    pub kind: String,
    pub value: Option<String>,
}

/// A parsed LDAP URL (RFC 4516):
/// `scheme://[host[:port]][/dn[?attributes[?scope[?filter[?extensions]]]]]`,
/// every part percent-decoded.
#[derive(Debug, Clone, PartialEq)]
pub struct LdapUrl {
    pub scheme: Scheme,
    /// The host (without the brackets of an IPv6 literal), or the socket
    /// path of `ldapi://`; `None` when the URL names none (the server the
    /// client already talks to).
    pub host: Option<String>,
    /// The port, when the URL gives one.
    pub port: Option<u16>,
    /// The base DN, when the URL gives one.
    pub dn: Option<String>,
    /// The attributes (empty: as the client chooses).
    pub attributes: Vec<String>,
    /// The scope, when the URL gives one.
    pub scope: Option<Scope>,
    /// The filter, when the URL gives one.
    pub filter: Option<String>,
    pub extensions: Vec<Extension>,
}

/// Why a string is not an LDAP URL coexist can use.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    #[error("it is not an LDAP URL (ldap://, ldaps:// or ldapi://)")]
    Scheme,
    #[error("the {part} holds a bad percent-escape or is not UTF-8")]
    Escape { part: &'static str },
    #[error("the port `{0}` is not a number from 1 to 65535")]
    Port(String),
    #[error("the host `{0}` is malformed")]
    Host(String),
    #[error("the scope `{0}` is not base, one or sub")]
    Scope(String),
    #[error("it has more than the five parts dn?attributes?scope?filter?extensions")]
    TooManyParts,
    #[error("it carries the critical extension `{0}`, which coexist does not implement")]
    CriticalExtension(String),
}

impl LdapUrl {
    /// Parses `text` per RFC 4516.
    pub fn parse(text: &str) -> Result<LdapUrl, UrlError> {
        let text = text.trim();
        let (scheme, rest) = text.split_once("://").ok_or(UrlError::Scheme)?;
        let scheme = match scheme.to_ascii_lowercase().as_str() {
            "ldap" => Scheme::Ldap,
            "ldaps" => Scheme::Ldaps,
            "ldapi" => Scheme::Ldapi,
            _ => return Err(UrlError::Scheme),
        };
        let (authority, path) = match rest.find(['/', '?']) {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        let (host, port) = host_port(scheme, authority)?;
        let mut url = LdapUrl {
            scheme,
            host,
            port,
            dn: None,
            attributes: Vec::new(),
            scope: None,
            filter: None,
            extensions: Vec::new(),
        };
        // The DN and what follows come after a `/`; a bare `?` after the
        // authority is not RFC 4516, but some servers write `host?...`.
        let path = path.strip_prefix('/').unwrap_or(path);
        if path.is_empty() {
            return Ok(url);
        }
        let parts: Vec<&str> = path.split('?').collect();
        if parts.len() > 5 {
            return Err(UrlError::TooManyParts);
        }
        let part = |i: usize| parts.get(i).copied().unwrap_or_default();
        let dn = decode(part(0), "DN")?;
        url.dn = (!dn.is_empty()).then_some(dn);
        url.attributes = decode(part(1), "attribute list")?
            .split(',')
            .map(str::trim)
            .filter(|a| !a.is_empty())
            .map(str::to_string)
            .collect();
        let scope = decode(part(2), "scope")?;
        url.scope = match scope.to_ascii_lowercase().as_str() {
            "" => None,
            "base" => Some(Scope::Base),
            "one" => Some(Scope::OneLevel),
            "sub" => Some(Scope::Subtree),
            _ => return Err(UrlError::Scope(scope)),
        };
        let filter = decode(part(3), "filter")?;
        url.filter = (!filter.is_empty()).then_some(filter);
        for raw in part(4).split(',').filter(|e| !e.is_empty()) {
            let (critical, raw) = match raw.strip_prefix('!') {
                Some(r) => (true, r),
                None => (false, raw),
            };
            let (kind, value) = match raw.split_once('=') {
                Some((k, v)) => (decode(k, "extension")?, Some(decode(v, "extension")?)),
                None => (decode(raw, "extension")?, None),
            };
            url.extensions.push(Extension {
                critical,
                kind,
                value,
            });
        }
        // RFC 4516 2: a critical extension the client does not implement
        // forbids using the URL (coexist implements none).
        if let Some(e) = url.extensions.iter().find(|e| e.critical) {
            return Err(UrlError::CriticalExtension(e.kind.clone()));
        }
        Ok(url)
    }

    /// The port in force (the scheme's default when the URL has none).
    pub fn effective_port(&self) -> u16 {
        self.port.unwrap_or(self.scheme.default_port())
    }

    /// The server this URL names, `None` when it names none.
    pub fn server(&self) -> Option<Server> {
        let host = self.host.as_ref()?;
        Some(Server {
            scheme: self.scheme,
            host: if self.scheme == Scheme::Ldapi {
                host.clone()
            } else {
                host.to_ascii_lowercase()
            },
            port: self.effective_port(),
        })
    }
}

/// The host and port of an authority (`host`, `host:port`, `[v6]:port`,
/// empty), percent-decoded.
fn host_port(scheme: Scheme, authority: &str) -> Result<(Option<String>, Option<u16>), UrlError> {
    if authority.is_empty() {
        return Ok((None, None));
    }
    if scheme == Scheme::Ldapi {
        return Ok((Some(decode(authority, "socket path")?), None));
    }
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (host, after) = v6
            .split_once(']')
            .ok_or_else(|| UrlError::Host(authority.to_string()))?;
        match after {
            "" => (host.to_string(), None),
            _ => match after.strip_prefix(':') {
                Some(p) => (host.to_string(), Some(p)),
                None => return Err(UrlError::Host(authority.to_string())),
            },
        }
    } else {
        match authority.rsplit_once(':') {
            Some((h, _)) if h.contains(':') => return Err(UrlError::Host(authority.to_string())),
            Some((h, p)) => (decode(h, "host")?, Some(p)),
            None => (decode(authority, "host")?, None),
        }
    };
    let port = match port {
        None | Some("") => None,
        Some(p) => match p.parse::<u16>() {
            Ok(n) if n > 0 => Some(n),
            _ => return Err(UrlError::Port(p.to_string())),
        },
    };
    Ok(((!host.is_empty()).then_some(host), port))
}

/// Percent-decodes one part of a URL.
fn decode(s: &str, part: &'static str) -> Result<String, UrlError> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or(UrlError::Escape { part })?;
            out.push(hex);
            i += 3;
        } else {
            out.push(b);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| UrlError::Escape { part })
}

/// A server a URL points at: scheme, host (lower case) and port.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Server {
    pub scheme: Scheme,
    pub host: String,
    pub port: u16,
}

impl Server {
    /// Whether `self` and `other` are the same endpoint: the same socket,
    /// or the same host and port.
    pub fn same_endpoint(&self, other: &Server) -> bool {
        match (self.scheme, other.scheme) {
            (Scheme::Ldapi, Scheme::Ldapi) => self.host == other.host,
            (Scheme::Ldapi, _) | (_, Scheme::Ldapi) => false,
            _ => self.host == other.host && self.port == other.port,
        }
    }

    /// The URL to connect to (`scheme://host:port`).
    pub fn url(&self) -> String {
        if self.host.contains(':') {
            format!("{}://[{}]:{}", self.scheme.as_str(), self.host, self.port)
        } else {
            format!("{}://{}:{}", self.scheme.as_str(), self.host, self.port)
        }
    }
}

impl fmt::Display for Server {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.url())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> LdapUrl {
        LdapUrl::parse(s).unwrap()
    }

    #[test]
    fn a_continuation_reference_of_slapd_parses() {
        let u = url("ldap://127.0.0.1:3389/ou=target,ou=t-x,dc=acmecorp,dc=com??sub");
        assert_eq!(u.scheme, Scheme::Ldap);
        assert_eq!(u.host.as_deref(), Some("127.0.0.1"));
        assert_eq!(u.port, Some(3389));
        assert_eq!(u.dn.as_deref(), Some("ou=target,ou=t-x,dc=acmecorp,dc=com"));
        assert!(u.attributes.is_empty());
        assert_eq!(u.scope, Some(Scope::Subtree));
        assert_eq!(u.filter, None);
        assert_eq!(
            u.server().unwrap().url(),
            "ldap://127.0.0.1:3389",
            "the server to connect to"
        );
    }

    #[test]
    fn escaped_dns_and_filters_are_decoded() {
        let u =
            url("ldap://h/cn=M%C3%BCller%2C%20Hans,ou=a%3Fb,dc=x?cn,mail?one?(cn=M%C3%BCller*)");
        assert_eq!(u.dn.as_deref(), Some("cn=Müller, Hans,ou=a?b,dc=x"));
        assert_eq!(u.attributes, ["cn", "mail"]);
        assert_eq!(u.scope, Some(Scope::OneLevel));
        assert_eq!(u.filter.as_deref(), Some("(cn=Müller*)"));
        // A DN escape (RFC 4514) inside the percent-encoding stays a DN escape.
        let u = url("ldap://h/cn=a%5C2Cb,dc=x");
        assert_eq!(u.dn.as_deref(), Some("cn=a\\2Cb,dc=x"));
    }

    #[test]
    fn missing_parts_are_none_and_the_default_port_applies() {
        let u = url("ldap://dc1.example.com");
        assert_eq!(u.host.as_deref(), Some("dc1.example.com"));
        assert_eq!((u.port, u.effective_port()), (None, 389));
        assert_eq!((u.dn, u.scope, u.filter), (None, None, None));
        let u = url("ldap:///dc=x");
        assert_eq!(u.host, None, "no host: the server already in use");
        assert!(u.server().is_none());
        assert_eq!(u.dn.as_deref(), Some("dc=x"));
        let u = url("ldap://h/");
        assert_eq!(u.dn, None);
        let u = url("ldap://h:/dc=x???");
        assert_eq!((u.port, u.scope, u.filter), (None, None, None));
        let u = url("LDAP://H.Example.COM/dc=x??BASE");
        assert_eq!(u.server().unwrap().host, "h.example.com");
        assert_eq!(u.scope, Some(Scope::Base));
    }

    #[test]
    fn ldaps_and_ipv6_hosts_are_understood() {
        let u = url("ldaps://dc.example.com/DC=example,DC=com");
        assert_eq!(u.scheme, Scheme::Ldaps);
        assert_eq!(u.effective_port(), 636);
        assert_eq!(u.server().unwrap().url(), "ldaps://dc.example.com:636");
        let u = url("ldap://[2001:db8::1]:1389/dc=x??sub");
        assert_eq!(u.host.as_deref(), Some("2001:db8::1"));
        assert_eq!(u.port, Some(1389));
        assert_eq!(u.server().unwrap().url(), "ldap://[2001:db8::1]:1389");
        let u = url("ldaps://[::1]/dc=x");
        assert_eq!((u.host.as_deref(), u.effective_port()), (Some("::1"), 636));
        let u = url("ldapi://%2Ftmp%2Fslapd%2Fldapi/dc=x");
        assert_eq!(u.host.as_deref(), Some("/tmp/slapd/ldapi"));
    }

    #[test]
    fn extensions_are_read_and_a_critical_one_refuses_the_url() {
        let u = url("ldap://h/dc=x????e-foo=a%2Cb,bar");
        assert_eq!(
            u.extensions,
            [
                Extension {
                    critical: false,
                    kind: "e-foo".into(),
                    value: Some("a,b".into())
                },
                Extension {
                    critical: false,
                    kind: "bar".into(),
                    value: None
                }
            ]
        );
        assert_eq!(
            LdapUrl::parse("ldap://h/dc=x????!bindname=cn=x"),
            Err(UrlError::CriticalExtension("bindname".into()))
        );
    }

    #[test]
    fn malformed_urls_are_refused_with_the_reason() {
        for (bad, why) in [
            ("http://h/dc=x", UrlError::Scheme),
            ("dc=x", UrlError::Scheme),
            ("ldap://h:99999/dc=x", UrlError::Port("99999".into())),
            ("ldap://h:x/dc=x", UrlError::Port("x".into())),
            ("ldap://[::1/dc=x", UrlError::Host("[::1".into())),
            ("ldap://::1/dc=x", UrlError::Host("::1".into())),
            ("ldap://h/dc=x??subtree", UrlError::Scope("subtree".into())),
            ("ldap://h/dc=%zz", UrlError::Escape { part: "DN" }),
            ("ldap://h/dc=%c3", UrlError::Escape { part: "DN" }),
            ("ldap://h/dc=x?a?sub?(x=y)?e?more", UrlError::TooManyParts),
        ] {
            assert_eq!(LdapUrl::parse(bad), Err(why), "{bad}");
        }
    }

    #[test]
    fn endpoints_compare_by_host_and_port() {
        let a = url("ldap://H:389/dc=x").server().unwrap();
        let b = url("ldap://h/dc=y").server().unwrap();
        let c = url("ldap://h:1389").server().unwrap();
        assert!(a.same_endpoint(&b));
        assert!(!a.same_endpoint(&c));
    }
}
