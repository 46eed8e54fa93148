//! SPF records (RFC 7208): parsed, and expanded through their includes and
//! redirects as a receiver evaluates them, counting the DNS lookups.

use std::collections::BTreeSet;
use std::fmt;

use crate::net::Network;
use crate::records::{normalise, Answer, Data, RecordType, Snapshot};

/// The most DNS-querying terms an SPF evaluation may cost (RFC 7208
/// 4.6.4); past it receivers return PermError and the record authorises
/// nobody.
pub const LOOKUP_LIMIT: u32 = 10;

/// How deep includes are followed before the expansion gives up.
const MAX_DEPTH: usize = 12;

/// A mechanism's qualifier.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Qualifier {
    /// `+` (the default): pass.
    Pass,
    /// `-`: fail.
    Fail,
    /// `~`: soft fail.
    SoftFail,
    /// `?`: neutral.
    Neutral,
}

impl Qualifier {
    fn sign(self) -> &'static str {
        match self {
            Qualifier::Pass => "+",
            Qualifier::Fail => "-",
            Qualifier::SoftFail => "~",
            Qualifier::Neutral => "?",
        }
    }
}

/// One mechanism of a record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mechanism {
    /// `all`.
    All,
    /// `include:DOMAIN`.
    Include(String),
    /// `a[:DOMAIN][/CIDR]`: the domain's addresses (`None`: the record's own).
    A(Option<String>, Cidr),
    /// `mx[:DOMAIN][/CIDR]`: the addresses of the domain's MX hosts.
    Mx(Option<String>, Cidr),
    /// `ptr[:DOMAIN]` (deprecated).
    Ptr(Option<String>),
    /// `ip4:` / `ip6:`.
    Ip(Network),
    /// `exists:DOMAIN`.
    Exists(String),
}

/// The prefix lengths of an `a` or `mx` mechanism (`/24//64`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Cidr {
    /// For IPv4 addresses (default 32).
    pub v4: Option<u8>,
    /// For IPv6 addresses (default 128).
    pub v6: Option<u8>,
}

/// One term of a record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Term {
    /// A mechanism with its qualifier.
    Mechanism(Qualifier, Mechanism),
    /// `redirect=DOMAIN`.
    Redirect(String),
    /// Any other modifier (`exp=`, unknown ones): not evaluated.
    Modifier(String, String),
}

impl fmt::Display for Term {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Term::Mechanism(q, m) => {
                let q = if *q == Qualifier::Pass { "" } else { q.sign() };
                match m {
                    Mechanism::All => write!(f, "{q}all"),
                    Mechanism::Include(d) => write!(f, "{q}include:{d}"),
                    Mechanism::A(d, _) => write!(f, "{q}a{}", colon(d)),
                    Mechanism::Mx(d, _) => write!(f, "{q}mx{}", colon(d)),
                    Mechanism::Ptr(d) => write!(f, "{q}ptr{}", colon(d)),
                    Mechanism::Ip(n) => match n.addr {
                        std::net::IpAddr::V4(_) => write!(f, "{q}ip4:{n}"),
                        std::net::IpAddr::V6(_) => write!(f, "{q}ip6:{n}"),
                    },
                    Mechanism::Exists(d) => write!(f, "{q}exists:{d}"),
                }
            }
            Term::Redirect(d) => write!(f, "redirect={d}"),
            Term::Modifier(n, v) => write!(f, "{n}={v}"),
        }
    }
}

fn colon(domain: &Option<String>) -> String {
    domain.as_ref().map(|d| format!(":{d}")).unwrap_or_default()
}

/// A parsed SPF record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Its terms, in order.
    pub terms: Vec<Term>,
}

impl Record {
    /// The qualifier of its `all` mechanism, if it has one.
    pub fn all(&self) -> Option<Qualifier> {
        self.terms.iter().find_map(|t| match t {
            Term::Mechanism(q, Mechanism::All) => Some(*q),
            _ => None,
        })
    }

    /// Its `redirect=` target, if any.
    pub fn redirect(&self) -> Option<&str> {
        self.terms.iter().find_map(|t| match t {
            Term::Redirect(d) => Some(d.as_str()),
            _ => None,
        })
    }
}

/// Whether a TXT record is an SPF record (`v=spf1`, alone or followed by
/// a space; any case).
pub fn is_spf(text: &str) -> bool {
    let text = text.trim_start();
    text.len() >= 6
        && text[..6].eq_ignore_ascii_case("v=spf1")
        && text[6..].chars().next().is_none_or(|c| c == ' ')
}

/// The SPF records among TXT records.
pub fn spf_records(records: &[Data]) -> Vec<&str> {
    records
        .iter()
        .filter_map(|d| match d {
            Data::Txt(text) if is_spf(text) => Some(text.as_str()),
            _ => None,
        })
        .collect()
}

/// Parses an SPF record (`v=spf1 ...`); an unknown mechanism or a bad
/// address is an error in words (receivers return PermError).
pub fn parse(text: &str) -> Result<Record, String> {
    if !is_spf(text) {
        return Err(format!("`{text}` does not start with v=spf1"));
    }
    let mut terms = Vec::new();
    for word in text.trim_start()[6..].split_ascii_whitespace() {
        terms.push(parse_term(word)?);
    }
    Ok(Record { terms })
}

fn parse_term(word: &str) -> Result<Term, String> {
    let (qualifier, rest) = match word.as_bytes().first() {
        Some(b'+') => (Qualifier::Pass, &word[1..]),
        Some(b'-') => (Qualifier::Fail, &word[1..]),
        Some(b'~') => (Qualifier::SoftFail, &word[1..]),
        Some(b'?') => (Qualifier::Neutral, &word[1..]),
        _ => (Qualifier::Pass, word),
    };
    // A modifier: name=value, where the name is no mechanism.
    if let Some((name, value)) = rest.split_once('=') {
        if rest.len() == word.len() && !name.contains(':') && !name.contains('/') {
            let name = name.to_ascii_lowercase();
            return Ok(if name == "redirect" {
                Term::Redirect(normalise(value))
            } else {
                Term::Modifier(name, value.to_string())
            });
        }
    }
    let (name, argument) = match rest.find([':', '/']) {
        Some(n) => (&rest[..n], Some(&rest[n..])),
        None => (rest, None),
    };
    let bad = || format!("`{word}` is not an SPF mechanism");
    let domain = |argument: Option<&str>| -> Result<String, String> {
        match argument.and_then(|a| a.strip_prefix(':')) {
            Some(d) if !d.is_empty() => Ok(normalise(d)),
            _ => Err(bad()),
        }
    };
    let mechanism = match name.to_ascii_lowercase().as_str() {
        "all" if argument.is_none() => Mechanism::All,
        "include" => Mechanism::Include(domain(argument)?),
        "exists" => Mechanism::Exists(domain(argument)?),
        "ptr" => Mechanism::Ptr(argument.map(|_| domain(argument)).transpose()?),
        "a" | "mx" => {
            let (target, cidr) = domain_and_cidr(argument).ok_or_else(bad)?;
            if name.eq_ignore_ascii_case("a") {
                Mechanism::A(target, cidr)
            } else {
                Mechanism::Mx(target, cidr)
            }
        }
        "ip4" | "ip6" => {
            let text = argument.and_then(|a| a.strip_prefix(':')).ok_or_else(bad)?;
            let network: Network = text.parse().map_err(|_| bad())?;
            let v4 = network.addr.is_ipv4();
            if v4 != name.eq_ignore_ascii_case("ip4") {
                return Err(bad());
            }
            Mechanism::Ip(network)
        }
        _ => return Err(bad()),
    };
    Ok(Term::Mechanism(qualifier, mechanism))
}

/// `[:DOMAIN][/V4][//V6]` of an `a` or `mx` mechanism.
fn domain_and_cidr(argument: Option<&str>) -> Option<(Option<String>, Cidr)> {
    let Some(argument) = argument else {
        return Some((None, Cidr::default()));
    };
    let (domain, cidr) = match argument.strip_prefix(':') {
        Some(rest) => match rest.find('/') {
            Some(n) => (Some(&rest[..n]), &rest[n..]),
            None => (Some(rest), ""),
        },
        None => (None, argument),
    };
    if domain.is_some_and(str::is_empty) {
        return None;
    }
    let mut out = Cidr::default();
    if !cidr.is_empty() {
        let rest = cidr.strip_prefix('/')?;
        let (v4, v6) = match rest.split_once("//") {
            Some((v4, v6)) => (v4, Some(v6)),
            None if rest.starts_with('/') => ("", Some(&rest[1..])),
            None => (rest, None),
        };
        if !v4.is_empty() {
            out.v4 = Some(v4.parse().ok().filter(|p| *p <= 32)?);
        }
        if let Some(v6) = v6 {
            out.v6 = Some(v6.parse().ok().filter(|p| *p <= 128)?);
        }
    }
    Some((domain.map(normalise), out))
}

/// A record expanded as a receiver evaluates it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Expansion {
    /// The DNS-querying terms it costs (include, a, mx, ptr, exists,
    /// redirect), includes expanded.
    pub lookups: u32,
    /// Where the lookups come from: each top-level term with what it costs
    /// (`include:_spf.google.com` 4).
    pub costs: Vec<(String, u32)>,
    /// Lookups that found nothing (RFC 7208 4.6.4 allows two).
    pub void_lookups: u32,
    /// Every domain reached through `include:` or `redirect=`.
    pub includes: BTreeSet<String>,
    /// Every network it passes (`ip4:`, `ip6:`, and the addresses `a`
    /// and `mx` mechanisms resolved to), anywhere in the tree.
    pub networks: Vec<Network>,
    /// The hosts `a` and `mx` mechanisms name (an `a:HOST`, the MX hosts
    /// of an `mx`), anywhere in the tree.
    pub hosts: BTreeSet<String>,
    /// What makes receivers return PermError or TempError: an include
    /// without a record, a loop, a syntax error; in words.
    pub errors: Vec<String>,
    /// The `all` that ends the evaluation (the redirect target's when the
    /// record redirects).
    pub all: Option<Qualifier>,
}

/// Expands `record`, published at `domain`, through `snapshot` (noting
/// there what it still needs looked up).
pub fn expand(snapshot: &Snapshot, domain: &str, record: &Record) -> Expansion {
    let mut expansion = Expansion::default();
    let mut path = vec![normalise(domain)];
    walk(snapshot, record, &mut path, true, &mut expansion);
    expansion
}

fn walk(
    snapshot: &Snapshot,
    record: &Record,
    path: &mut Vec<String>,
    top: bool,
    out: &mut Expansion,
) {
    let here = path.last().cloned().unwrap_or_default();
    if top {
        out.all = record.all();
    }
    for term in &record.terms {
        let before = out.lookups;
        match term {
            Term::Mechanism(_, Mechanism::All) | Term::Modifier(..) => {}
            Term::Mechanism(_, Mechanism::Ip(network)) => out.networks.push(*network),
            Term::Mechanism(_, Mechanism::Include(target)) => {
                out.lookups += 1;
                follow(snapshot, "include", target, path, false, out);
            }
            Term::Redirect(target) => {
                // Ignored when the record has an `all` (RFC 7208 6.1).
                if record.all().is_none() {
                    out.lookups += 1;
                    follow(snapshot, "redirect", target, path, top, out);
                }
            }
            Term::Mechanism(_, Mechanism::A(target, cidr)) => {
                out.lookups += 1;
                let target = target.clone().unwrap_or_else(|| here.clone());
                if !macro_in(&target) {
                    out.hosts.insert(target.clone());
                    if addresses(snapshot, &target, *cidr, out) == 0 {
                        out.void_lookups += 1;
                    }
                }
            }
            Term::Mechanism(_, Mechanism::Mx(target, cidr)) => {
                out.lookups += 1;
                let target = target.clone().unwrap_or_else(|| here.clone());
                if !macro_in(&target) {
                    let answer = snapshot.answer(&target, RecordType::Mx);
                    if answer.records().is_empty() {
                        out.void_lookups += 1;
                    }
                    for data in answer.records().iter().take(10) {
                        if let Data::Mx { host, .. } = data {
                            if !host.is_empty() {
                                out.hosts.insert(host.clone());
                                addresses(snapshot, host, *cidr, out);
                            }
                        }
                    }
                }
            }
            Term::Mechanism(_, Mechanism::Ptr(_) | Mechanism::Exists(_)) => out.lookups += 1,
        }
        if top && out.lookups > before {
            out.costs.push((term.to_string(), out.lookups - before));
        }
    }
}

/// Whether a domain-spec holds a macro (`%{i}`): it cannot be expanded
/// without a message, so it is counted and not followed.
fn macro_in(domain: &str) -> bool {
    domain.contains('%')
}

/// Adds the addresses of `host` (A and AAAA) as networks; how many.
fn addresses(snapshot: &Snapshot, host: &str, cidr: Cidr, out: &mut Expansion) -> usize {
    let mut found = 0;
    for kind in [RecordType::A, RecordType::Aaaa] {
        for data in snapshot.answer(host, kind).records() {
            if let Data::Addr(addr) = data {
                let mut network = Network::host(*addr);
                let prefix = if addr.is_ipv4() { cidr.v4 } else { cidr.v6 };
                if let Some(prefix) = prefix {
                    network.prefix = prefix;
                }
                out.networks.push(network);
                found += 1;
            }
        }
    }
    found
}

/// Follows an `include:` or `redirect=` to `target`'s record.
fn follow(
    snapshot: &Snapshot,
    how: &str,
    target: &str,
    path: &mut Vec<String>,
    top: bool,
    out: &mut Expansion,
) {
    if macro_in(target) {
        return;
    }
    out.includes.insert(target.to_string());
    if path.iter().any(|p| p == target) {
        out.errors.push(format!(
            "{how}:{target} loops back ({} → {target})",
            path.join(" → ")
        ));
        return;
    }
    if path.len() > MAX_DEPTH {
        out.errors.push(format!(
            "{how}:{target} is nested deeper than {MAX_DEPTH} records"
        ));
        return;
    }
    let answer = snapshot.answer(target, RecordType::Txt);
    let records = spf_records(answer.records());
    match (records.as_slice(), &answer) {
        ([one], _) => match parse(one) {
            Ok(record) => {
                path.push(target.to_string());
                walk(snapshot, &record, path, top, out);
                path.pop();
            }
            Err(e) => out.errors.push(format!("{how}:{target}: {e}")),
        },
        ([], Answer::Pending) => {}
        ([], Answer::Failed(why)) => out
            .errors
            .push(format!("{how}:{target} could not be looked up: {why}")),
        ([], _) => {
            out.void_lookups += 1;
            out.errors
                .push(format!("{how}:{target} has no SPF record (PermError)"));
        }
        (many, _) => out.errors.push(format!(
            "{how}:{target} has {} SPF records (PermError)",
            many.len()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn txt(snapshot: &mut Snapshot, name: &str, text: &str) {
        snapshot.add(name, RecordType::Txt, Data::Txt(text.into()));
    }

    #[test]
    fn an_spf_record_is_v_spf1_alone_or_followed_by_a_space() {
        assert!(is_spf("v=spf1 -all"));
        assert!(is_spf("V=SPF1"));
        assert!(!is_spf("v=spf10 -all"));
        assert!(!is_spf("google-site-verification=abc"));
    }

    #[test]
    fn every_mechanism_and_modifier_is_parsed() {
        let record = parse(
            "v=spf1 include:_spf.Google.com a a:mail.acmecorp.com/24 mx:acmecorp.com//64 \
             ip4:192.0.2.0/24 ip6:2001:db8::1 ?exists:%{i}.x.test ptr ~all redirect=x.test exp=e.test",
        )
        .unwrap();
        let shown: Vec<String> = record.terms.iter().map(|t| t.to_string()).collect();
        assert_eq!(
            shown,
            [
                "include:_spf.google.com",
                "a",
                "a:mail.acmecorp.com",
                "mx:acmecorp.com",
                "ip4:192.0.2.0/24",
                "ip6:2001:db8::1",
                "?exists:%{i}.x.test",
                "ptr",
                "~all",
                "redirect=x.test",
                "exp=e.test",
            ]
        );
        assert_eq!(record.all(), Some(Qualifier::SoftFail));
        assert_eq!(
            record.terms[2],
            Term::Mechanism(
                Qualifier::Pass,
                Mechanism::A(
                    Some("mail.acmecorp.com".into()),
                    Cidr {
                        v4: Some(24),
                        v6: None
                    }
                )
            )
        );
    }

    #[test]
    fn a_mechanism_receivers_do_not_know_is_an_error() {
        assert!(parse("v=spf1 include -all").is_err());
        assert!(parse("v=spf1 ip4:2001:db8::1 -all").is_err());
        assert!(parse("v=spf1 ip4:300.1.1.1 -all").is_err());
        assert!(parse("v=spf1 foo:bar -all").is_err());
    }

    #[test]
    fn includes_are_expanded_and_their_lookups_counted_as_receivers_do() {
        let mut dns = Snapshot::new();
        txt(
            &mut dns,
            "acmecorp.test",
            "v=spf1 include:_spf.google.com a:mail.acmecorp.test ~all",
        );
        txt(
            &mut dns,
            "_spf.google.com",
            "v=spf1 include:_netblocks.google.com include:_netblocks2.google.com ~all",
        );
        txt(
            &mut dns,
            "_netblocks.google.com",
            "v=spf1 ip4:35.190.247.0/24 ~all",
        );
        txt(
            &mut dns,
            "_netblocks2.google.com",
            "v=spf1 ip6:2001:4860:4000::/36 ~all",
        );
        dns.add(
            "mail.acmecorp.test",
            RecordType::A,
            Data::Addr("192.0.2.25".parse().unwrap()),
        );
        let dns = dns.complete();
        let answer = dns.answer("acmecorp.test", RecordType::Txt);
        let record = parse(spf_records(answer.records())[0]).unwrap();
        let expansion = expand(&dns, "acmecorp.test", &record);
        assert_eq!(expansion.lookups, 4);
        assert_eq!(
            expansion.costs,
            [
                ("include:_spf.google.com".to_string(), 3),
                ("a:mail.acmecorp.test".to_string(), 1)
            ]
        );
        assert!(expansion.includes.contains("_netblocks2.google.com"));
        assert!(expansion.hosts.contains("mail.acmecorp.test"));
        assert_eq!(expansion.networks.len(), 3);
        assert_eq!(expansion.all, Some(Qualifier::SoftFail));
        assert!(expansion.errors.is_empty(), "{:?}", expansion.errors);
    }

    #[test]
    fn an_include_without_a_record_or_that_loops_is_an_error() {
        let mut dns = Snapshot::new();
        txt(
            &mut dns,
            "a.test",
            "v=spf1 include:b.test include:gone.test -all",
        );
        txt(&mut dns, "b.test", "v=spf1 include:a.test -all");
        let dns = dns.complete();
        let record = parse("v=spf1 include:b.test include:gone.test -all").unwrap();
        let expansion = expand(&dns, "a.test", &record);
        assert_eq!(expansion.errors.len(), 2, "{:?}", expansion.errors);
        assert!(expansion.errors[0].contains("loops back"));
        assert!(expansion.errors[1].contains("gone.test has no SPF record"));
    }

    #[test]
    fn a_redirect_counts_and_hands_over_its_all() {
        let mut dns = Snapshot::new();
        txt(&mut dns, "spf.test", "v=spf1 ip4:192.0.2.0/24 -all");
        let dns = dns.complete();
        let record = parse("v=spf1 redirect=spf.test").unwrap();
        let expansion = expand(&dns, "a.test", &record);
        assert_eq!(expansion.lookups, 1);
        assert_eq!(expansion.all, Some(Qualifier::Fail));
    }

    #[test]
    fn what_is_not_looked_up_yet_is_wanted() {
        let dns = Snapshot::new();
        let record = parse("v=spf1 include:_spf.google.com mx -all").unwrap();
        let expansion = expand(&dns, "a.test", &record);
        assert!(expansion.errors.is_empty());
        let wanted: Vec<String> = dns.take_wanted().iter().map(|q| q.to_string()).collect();
        assert_eq!(wanted, ["_spf.google.com TXT", "a.test MX"]);
    }
}
