//! The checks: what the organisation's topology needs of DNS, against a
//! [`Snapshot`] of what DNS holds. Pure: no I/O, every lookup read from the
//! snapshot (which notes what it lacks, for the next round of resolution).

use std::fmt;

use crate::net::Relay;
use crate::records::{normalise, Answer, Data, Query, RecordType, Snapshot};
use crate::spf::{self, Qualifier};
use crate::tags::{self, Dmarc};

/// The organisation as the checks need it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Topology {
    /// The shared domains (`acmecorp.com`).
    pub shared_domains: Vec<String>,
    /// The id of the system the shared domains' MX should point at.
    pub mx: Option<String>,
    /// Every system, in configuration order.
    pub systems: Vec<SystemDns>,
}

/// What one system needs of DNS: its kind's defaults, overridden by the
/// configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SystemDns {
    /// The system's id.
    pub id: String,
    /// Its routing domain, whose MX must point at its own hosts.
    pub routing_domain: Option<String>,
    /// The hosts it receives mail on (`aspmx.l.google.com`); a leading
    /// `*.` matches any name under the rest
    /// (`*.mail.protection.outlook.com`).
    pub mx_hosts: Vec<String>,
    /// The SPF includes its provider publishes (`_spf.google.com`).
    pub spf_includes: Vec<String>,
    /// The relays it sends from (an on-premises smart host).
    pub spf_relays: Vec<Relay>,
    /// The DKIM selectors it signs with (`google`).
    pub dkim_selectors: Vec<String>,
    /// Where `autodiscover.<shared domain>` must point for its clients
    /// (Microsoft 365: `autodiscover.outlook.com`).
    pub autodiscover: Option<String>,
    /// The systems it forwards mail to (its stubs route to their routing
    /// domains; its catch-all relays to one).
    pub relays_to: Vec<String>,
}

/// Which check a finding comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Check {
    /// A domain's MX.
    Mx,
    /// The shared domain has one SPF record.
    SpfRecord,
    /// The SPF record's lookups stay within ten.
    SpfLookups,
    /// The SPF record's includes and redirects resolve.
    SpfIncludes,
    /// The SPF record authorises a system (its id).
    SpfAuthorises(String),
    /// The SPF record ends with a policy that fits DMARC.
    SpfPolicy,
    /// A DKIM selector publishes a usable key.
    Dkim,
    /// The DMARC record.
    Dmarc,
    /// What DMARC asks of the relays between the systems.
    DmarcRelays,
    /// `autodiscover.<domain>`.
    Autodiscover,
    /// The nameserver itself (no answer at all).
    Dns,
}

impl fmt::Display for Check {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Check::Mx => f.write_str("MX"),
            Check::SpfRecord => f.write_str("SPF record"),
            Check::SpfLookups => f.write_str("SPF lookups"),
            Check::SpfIncludes => f.write_str("SPF includes"),
            Check::SpfAuthorises(system) => write!(f, "SPF authorises {system}"),
            Check::SpfPolicy => f.write_str("SPF policy"),
            Check::Dkim => f.write_str("DKIM"),
            Check::Dmarc => f.write_str("DMARC"),
            Check::DmarcRelays => f.write_str("DMARC and relays between systems"),
            Check::Autodiscover => f.write_str("autodiscover"),
            Check::Dns => f.write_str("DNS"),
        }
    }
}

/// How a finding came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// As it should be.
    Ok,
    /// Wrong: mail will bounce, loop, be rejected or land as spam.
    Fail,
    /// For the admin to look at: information, or a setting DNS does not
    /// show.
    Look,
}

impl Status {
    /// `ok`, `fail` or `look`.
    pub fn name(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Fail => "fail",
            Status::Look => "look",
        }
    }
}

/// One finding: the record, what it holds, what it should hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// Which check.
    pub check: Check,
    /// The record looked at (`acmecorp.com MX`).
    pub record: String,
    /// What it holds (or why nothing was found).
    pub found: String,
    /// What it should hold.
    pub expected: String,
    /// How it came out.
    pub status: Status,
    /// The finding in one sentence, with what to do.
    pub detail: String,
}

impl Finding {
    fn new(
        check: Check,
        record: impl Into<String>,
        status: Status,
        found: impl Into<String>,
        expected: impl Into<String>,
        headline: impl Into<String>,
    ) -> Finding {
        let (found, expected, headline) = (found.into(), expected.into(), headline.into());
        Finding {
            check,
            record: record.into(),
            detail: format!("{headline} (found: {found}; expected: {expected})"),
            found,
            expected,
            status,
        }
    }
}

/// Every finding about `topology`'s DNS in `dns`: per shared domain its MX,
/// SPF, DKIM, DMARC and autodiscover; then each routing domain's MX.
pub fn check(topology: &Topology, dns: &Snapshot) -> Vec<Finding> {
    let mut findings = Vec::new();
    let mx_system = topology
        .mx
        .as_ref()
        .and_then(|id| topology.systems.iter().find(|s| &s.id == id));
    for domain in &topology.shared_domains {
        let domain = normalise(domain);
        let role = ", the MX system the topology names";
        match mx_system {
            Some(system) => findings.push(mx(dns, &domain, system, role)),
            None => findings.push(mx_unnamed(dns, &domain)),
        }
        let (dmarc_finding, dmarc) = dmarc(dns, &domain);
        findings.extend(spf_findings(dns, &domain, topology, dmarc.as_ref()));
        for system in &topology.systems {
            for selector in &system.dkim_selectors {
                findings.push(dkim(dns, &domain, system, selector));
            }
        }
        findings.push(dmarc_finding);
        if let Some(policy) = dmarc.as_ref().filter(|d| d.enforces()) {
            if let Some(finding) = dmarc_relays(&domain, topology, policy) {
                findings.push(finding);
            }
        }
        for system in &topology.systems {
            if let Some(target) = &system.autodiscover {
                findings.push(autodiscover(dns, &domain, system, target));
            }
        }
    }
    for system in &topology.systems {
        if let Some(routing) = &system.routing_domain {
            findings.push(mx(
                dns,
                &normalise(routing),
                system,
                ", whose routing domain it is",
            ));
        }
    }
    findings
}

/// Why `answer` gives nothing, or the records.
fn why(answer: &Answer, name: &str, kind: RecordType) -> String {
    answer.why_none(&Query::new(name, kind)).unwrap_or_default()
}

/// Whether an MX host matches one of the system's hosts.
fn host_matches(pattern: &str, host: &str) -> bool {
    let pattern = normalise(pattern);
    match pattern.strip_prefix("*.") {
        Some(suffix) => host.len() > suffix.len() && host.ends_with(&format!(".{suffix}")),
        None => pattern == host,
    }
}

/// The MX records of `domain`, most preferred first.
fn mx_records(answer: &Answer) -> Vec<(u16, String)> {
    let mut records: Vec<(u16, String)> = answer
        .records()
        .iter()
        .filter_map(|d| match d {
            Data::Mx { preference, host } => Some((*preference, host.clone())),
            _ => None,
        })
        .collect();
    records.sort();
    records
}

fn show_mx(records: &[(u16, String)]) -> String {
    records
        .iter()
        .map(|(p, h)| {
            if h.is_empty() {
                format!("{p} . (null MX)")
            } else {
                format!("{p} {h}")
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// `domain`'s MX must point at `system`'s hosts and nowhere else.
fn mx(dns: &Snapshot, domain: &str, system: &SystemDns, role: &str) -> Finding {
    let record = format!("{domain} MX");
    let answer = dns.answer(domain, RecordType::Mx);
    let records = mx_records(&answer);
    let expected = if system.mx_hosts.is_empty() {
        format!(
            "the hosts {} receives mail on (not known: set mx_hosts in its [systems.dns])",
            system.id
        )
    } else {
        format!("{} ({}{role})", system.mx_hosts.join(", "), system.id)
    };
    if records.is_empty() {
        let found = why(&answer, domain, RecordType::Mx);
        let headline = if answer.failed() || answer == Answer::Pending {
            format!("{domain}'s MX could not be read")
        } else {
            format!("{domain} has no MX: mail for it has nowhere to go (receivers fall back to its address, if it has one)")
        };
        return Finding::new(Check::Mx, record, Status::Fail, found, expected, headline);
    }
    let found = show_mx(&records);
    if records.iter().any(|(_, h)| h.is_empty()) {
        let headline = format!("{domain} publishes a null MX: it accepts no mail at all");
        return Finding::new(Check::Mx, record, Status::Fail, found, expected, headline);
    }
    if system.mx_hosts.is_empty() {
        let headline = format!(
            "{domain}'s MX cannot be checked: the hosts {} receives mail on are not known",
            system.id
        );
        return Finding::new(Check::Mx, record, Status::Look, found, expected, headline);
    }
    let ours = |h: &str| system.mx_hosts.iter().any(|p| host_matches(p, h));
    let stray: Vec<&(u16, String)> = records.iter().filter(|(_, h)| !ours(h)).collect();
    if stray.is_empty() {
        let headline = format!("{domain}'s MX points at {}", system.id);
        return Finding::new(Check::Mx, record, Status::Ok, found, expected, headline);
    }
    let best_ours = records
        .iter()
        .filter(|(_, h)| ours(h))
        .map(|(p, _)| *p)
        .min();
    let strays = show_mx(&stray.iter().map(|r| (*r).clone()).collect::<Vec<_>>());
    let headline = match best_ours {
        None => format!(
            "{domain}'s MX points at another system, not at {}: mail for {domain} lands there first",
            system.id
        ),
        Some(best) if stray.iter().any(|(p, _)| *p <= best) => format!(
            "{domain}'s MX has {strays}, preferred as much as or more than {}'s hosts: mail bypasses {}",
            system.id, system.id
        ),
        Some(_) => format!(
            "{domain}'s MX has a stray backup {strays}: mail that finds {}'s hosts busy bypasses them",
            system.id
        ),
    };
    Finding::new(Check::Mx, record, Status::Fail, found, expected, headline)
}

/// The shared domain's MX when the topology names no MX system.
fn mx_unnamed(dns: &Snapshot, domain: &str) -> Finding {
    let record = format!("{domain} MX");
    let answer = dns.answer(domain, RecordType::Mx);
    let records = mx_records(&answer);
    let expected = "the hosts of the system [topology] mx names (not set)".to_string();
    if records.is_empty() {
        let found = why(&answer, domain, RecordType::Mx);
        let headline = format!("{domain} has no MX");
        return Finding::new(Check::Mx, record, Status::Fail, found, expected, headline);
    }
    let headline = format!(
        "{domain}'s MX cannot be checked against the topology: set [topology] mx = \"SYSTEM\""
    );
    Finding::new(
        Check::Mx,
        record,
        Status::Look,
        show_mx(&records),
        expected,
        headline,
    )
}

/// The SPF findings of one shared domain.
fn spf_findings(
    dns: &Snapshot,
    domain: &str,
    topology: &Topology,
    dmarc: Option<&Dmarc>,
) -> Vec<Finding> {
    let record_name = format!("{domain} TXT (SPF)");
    let answer = dns.answer(domain, RecordType::Txt);
    let records = spf::spf_records(answer.records());
    let suggested = suggested_spf(topology);
    let one = match records.as_slice() {
        [] => {
            let found = match why(&answer, domain, RecordType::Txt) {
                w if w.is_empty() => "no TXT record starting v=spf1".to_string(),
                w => w,
            };
            let headline = if answer.failed() || answer == Answer::Pending {
                format!("{domain}'s SPF could not be read")
            } else {
                format!("{domain} has no SPF record: receivers cannot tell its mail from forgeries")
            };
            return vec![Finding::new(
                Check::SpfRecord,
                record_name,
                Status::Fail,
                found,
                format!("one record like \"{suggested}\""),
                headline,
            )];
        }
        [one] => *one,
        many => {
            let headline = format!(
                "{domain} has {} SPF records: receivers treat that as a permanent error (PermError) and authorise nobody; merge them into one",
                many.len()
            );
            return vec![Finding::new(
                Check::SpfRecord,
                record_name,
                Status::Fail,
                many.join(" | "),
                format!("one record like \"{suggested}\""),
                headline,
            )];
        }
    };
    let parsed = match spf::parse(one) {
        Ok(parsed) => parsed,
        Err(e) => {
            let headline =
                format!("{domain}'s SPF record does not parse: receivers return PermError ({e})");
            return vec![Finding::new(
                Check::SpfRecord,
                record_name,
                Status::Fail,
                one,
                format!("one record like \"{suggested}\""),
                headline,
            )];
        }
    };
    let mut findings = vec![Finding::new(
        Check::SpfRecord,
        record_name.clone(),
        Status::Ok,
        one,
        "one v=spf1 record",
        format!("{domain} has one SPF record"),
    )];
    let expansion = spf::expand(dns, domain, &parsed);

    // The ten-lookup limit, counted as receivers count.
    let costs = expansion
        .costs
        .iter()
        .map(|(term, n)| format!("{term} {n}"))
        .collect::<Vec<_>>()
        .join(", ");
    let found = if costs.is_empty() {
        format!("{} DNS lookups", expansion.lookups)
    } else {
        format!("{} DNS lookups ({costs})", expansion.lookups)
    };
    let expected = format!(
        "at most {} DNS lookups, includes expanded (RFC 7208 4.6.4)",
        spf::LOOKUP_LIMIT
    );
    if expansion.lookups > spf::LOOKUP_LIMIT {
        let headline = format!(
            "{domain}'s SPF needs {} DNS lookups: past {} receivers return PermError and authorise nobody; replace includes by ip4:/ip6: networks or drop unused ones",
            expansion.lookups,
            spf::LOOKUP_LIMIT
        );
        findings.push(Finding::new(
            Check::SpfLookups,
            record_name.clone(),
            Status::Fail,
            found,
            expected,
            headline,
        ));
    } else {
        let headline = format!(
            "{domain}'s SPF stays within {} DNS lookups",
            spf::LOOKUP_LIMIT
        );
        findings.push(Finding::new(
            Check::SpfLookups,
            record_name.clone(),
            Status::Ok,
            found,
            expected,
            headline,
        ));
    }

    // Includes and redirects that resolve.
    let mut errors = expansion.errors.clone();
    if expansion.void_lookups > 2 {
        errors.push(format!(
            "{} lookups found nothing (more than 2: PermError)",
            expansion.void_lookups
        ));
    }
    if !errors.is_empty() {
        let headline =
            format!("{domain}'s SPF does not evaluate: receivers return PermError or TempError");
        findings.push(Finding::new(
            Check::SpfIncludes,
            record_name.clone(),
            Status::Fail,
            errors.join("; "),
            "every include and redirect names a domain with one SPF record",
            headline,
        ));
    }

    // Every system that sends for the domain is authorised.
    for system in &topology.systems {
        findings.push(spf_authorises(
            dns,
            domain,
            &record_name,
            one,
            system,
            &expansion,
        ));
    }

    // The policy at the end, against DMARC.
    findings.push(spf_policy(domain, &record_name, expansion.all, dmarc));
    findings
}

/// An SPF record that would authorise every system, to suggest.
fn suggested_spf(topology: &Topology) -> String {
    let mut terms = vec!["v=spf1".to_string()];
    for system in &topology.systems {
        terms.extend(system.spf_includes.iter().map(|i| format!("include:{i}")));
        terms.extend(system.spf_relays.iter().map(spf_term));
    }
    terms.push("~all".into());
    terms.join(" ")
}

fn spf_term(relay: &Relay) -> String {
    match relay {
        Relay::Network(n) if n.addr.is_ipv4() => format!("ip4:{n}"),
        Relay::Network(n) => format!("ip6:{n}"),
        Relay::Host(h) => format!("a:{h}"),
    }
}

fn spf_authorises(
    dns: &Snapshot,
    domain: &str,
    record_name: &str,
    record: &str,
    system: &SystemDns,
    expansion: &spf::Expansion,
) -> Finding {
    let check = Check::SpfAuthorises(system.id.clone());
    let mut wanted: Vec<String> = system
        .spf_includes
        .iter()
        .map(|i| format!("include:{i}"))
        .collect();
    wanted.extend(system.spf_relays.iter().map(spf_term));
    if wanted.is_empty() {
        let headline = format!(
            "what {} sends from is not known: set spf_includes or spf_relays in its [systems.dns]",
            system.id
        );
        return Finding::new(
            check,
            record_name,
            Status::Look,
            record,
            format!("the relays {} sends from", system.id),
            headline,
        );
    }
    let mut missing = Vec::new();
    for include in &system.spf_includes {
        if !expansion.includes.contains(&normalise(include)) {
            missing.push(format!("include:{include}"));
        }
    }
    for relay in &system.spf_relays {
        if let Some(why) = relay_missing(dns, relay, expansion) {
            missing.push(why);
        }
    }
    let expected = wanted.join(" ");
    if missing.is_empty() {
        let headline = format!("{domain}'s SPF authorises {}", system.id);
        return Finding::new(check, record_name, Status::Ok, record, expected, headline);
    }
    let headline = format!(
        "{domain}'s SPF does not authorise {}: receivers may reject or file as spam the mail {} sends ({} missing)",
        system.id,
        system.id,
        missing.join(", ")
    );
    Finding::new(check, record_name, Status::Fail, record, expected, headline)
}

/// Why `relay` is not authorised by the expansion, or `None` when it is.
fn relay_missing(dns: &Snapshot, relay: &Relay, expansion: &spf::Expansion) -> Option<String> {
    match relay {
        Relay::Network(n) => {
            if expansion.networks.iter().any(|m| m.covers(n)) {
                None
            } else {
                Some(spf_term(relay))
            }
        }
        Relay::Host(host) => {
            if expansion.hosts.contains(host) {
                return None;
            }
            let mut addresses = Vec::new();
            let mut unknown = false;
            for kind in [RecordType::A, RecordType::Aaaa] {
                let answer = dns.answer(host, kind);
                unknown |= answer.failed() || answer == Answer::Pending;
                for data in answer.records() {
                    if let Data::Addr(a) = data {
                        addresses.push(crate::net::Network::host(*a));
                    }
                }
            }
            if addresses.is_empty() {
                return Some(if unknown {
                    format!("a:{host} (its addresses could not be read)")
                } else {
                    format!("a:{host} (it has no address either)")
                });
            }
            let uncovered: Vec<String> = addresses
                .iter()
                .filter(|a| !expansion.networks.iter().any(|m| m.covers(a)))
                .map(|a| a.to_string())
                .collect();
            if uncovered.is_empty() {
                None
            } else {
                Some(format!("a:{host} or its address {}", uncovered.join(", ")))
            }
        }
    }
}

fn spf_policy(
    domain: &str,
    record_name: &str,
    all: Option<Qualifier>,
    dmarc: Option<&Dmarc>,
) -> Finding {
    let found = match all {
        Some(Qualifier::Pass) => "+all",
        Some(Qualifier::Fail) => "-all",
        Some(Qualifier::SoftFail) => "~all",
        Some(Qualifier::Neutral) => "?all",
        None => "no all (neutral)",
    };
    let enforcing = dmarc.filter(|d| d.enforces());
    let expected = match enforcing {
        Some(d) => format!("-all or ~all (DMARC p={})", d.policy),
        None => "-all or ~all".to_string(),
    };
    let (status, headline) = match (all, enforcing) {
        (Some(Qualifier::Pass), _) => (
            Status::Fail,
            format!("{domain}'s SPF ends with +all: it authorises every sender on the internet"),
        ),
        (Some(Qualifier::Neutral) | None, Some(d)) => (
            Status::Fail,
            format!(
                "{domain}'s SPF ends neutral while DMARC asks receivers to {} failing mail: end it with ~all or -all",
                d.policy
            ),
        ),
        (Some(Qualifier::Neutral) | None, None) => (
            Status::Look,
            format!("{domain}'s SPF ends neutral: it says nothing of mail from elsewhere"),
        ),
        _ => (
            Status::Ok,
            format!("{domain}'s SPF ends with {found}"),
        ),
    };
    Finding::new(
        Check::SpfPolicy,
        record_name,
        status,
        found,
        expected,
        headline,
    )
}

fn dkim(dns: &Snapshot, domain: &str, system: &SystemDns, selector: &str) -> Finding {
    let name = format!("{selector}._domainkey.{domain}");
    let record = format!("{name} TXT");
    let expected = format!(
        "a DKIM key (v=DKIM1; k=rsa; p=…) that {} signs with",
        system.id
    );
    let answer = dns.answer(&name, RecordType::Txt);
    let keys: Vec<&str> = answer
        .records()
        .iter()
        .filter_map(|d| match d {
            Data::Txt(t) if t.contains("p=") => Some(t.as_str()),
            _ => None,
        })
        .collect();
    let Some(key) = keys.first() else {
        let found = match why(&answer, &name, RecordType::Txt) {
            w if w.is_empty() => "no DKIM key record".to_string(),
            w => w,
        };
        let headline = format!(
            "{}'s DKIM selector {selector} is not published for {domain}: its mail is not verifiably signed, and DMARC passes only on SPF (which breaks when mail is forwarded)",
            system.id
        );
        return Finding::new(Check::Dkim, record, Status::Fail, found, expected, headline);
    };
    let found = shorten(key);
    match tags::dkim_key(key) {
        Ok(what) => {
            let headline = format!(
                "{}'s DKIM selector {selector} publishes {what} for {domain}",
                system.id
            );
            Finding::new(Check::Dkim, record, Status::Ok, found, expected, headline)
        }
        Err(why) => {
            let headline = format!("{}'s DKIM key at {name} is not usable: {why}", system.id);
            Finding::new(Check::Dkim, record, Status::Fail, found, expected, headline)
        }
    }
}

/// A long key shortened for reading.
fn shorten(text: &str) -> String {
    if text.chars().count() <= 60 {
        text.to_string()
    } else {
        format!("{}…", text.chars().take(60).collect::<String>())
    }
}

fn dmarc(dns: &Snapshot, domain: &str) -> (Finding, Option<Dmarc>) {
    let name = format!("_dmarc.{domain}");
    let record = format!("{name} TXT");
    let expected = "one record like \"v=DMARC1; p=quarantine; rua=mailto:dmarc@…\"".to_string();
    let answer = dns.answer(&name, RecordType::Txt);
    let records: Vec<&str> = answer
        .records()
        .iter()
        .filter_map(|d| match d {
            Data::Txt(t) if tags::is_dmarc(t) => Some(t.as_str()),
            _ => None,
        })
        .collect();
    match records.as_slice() {
        [] => {
            let found = match why(&answer, &name, RecordType::Txt) {
                w if w.is_empty() => "no v=DMARC1 record".to_string(),
                w => w,
            };
            let headline = format!(
                "{domain} publishes no DMARC policy: receivers apply none, and mail forged in {domain}'s name is judged by guesswork"
            );
            (
                Finding::new(
                    Check::Dmarc,
                    record,
                    Status::Fail,
                    found,
                    expected,
                    headline,
                ),
                None,
            )
        }
        [one] => match tags::dmarc(one) {
            Ok(policy) => {
                let headline = format!("{domain}'s DMARC policy: {}", policy.describe());
                (
                    Finding::new(Check::Dmarc, record, Status::Ok, *one, expected, headline),
                    Some(policy),
                )
            }
            Err(why) => {
                let headline =
                    format!("{domain}'s DMARC record is invalid and receivers ignore it: {why}");
                (
                    Finding::new(Check::Dmarc, record, Status::Fail, *one, expected, headline),
                    None,
                )
            }
        },
        many => {
            let headline = format!(
                "{domain} has {} DMARC records: receivers ignore them all; keep one",
                many.len()
            );
            (
                Finding::new(
                    Check::Dmarc,
                    record,
                    Status::Fail,
                    many.join(" | "),
                    expected,
                    headline,
                ),
                None,
            )
        }
    }
}

/// With an enforcing DMARC policy, what each system must trust of the
/// others' relays: a manual check.
fn dmarc_relays(domain: &str, topology: &Topology, policy: &Dmarc) -> Option<Finding> {
    let mut hops = Vec::new();
    for system in &topology.systems {
        for to in &system.relays_to {
            hops.push(format!("{} → {to}", system.id));
        }
    }
    if hops.is_empty() {
        return None;
    }
    let headline = format!(
        "MANUAL CHECK: with p={} mail that one system forwards to another keeps its From: in {domain} but arrives from the forwarding system's servers, so SPF fails for that hop and DMARC passes only when the DKIM signature survives. Each receiving system must trust the other systems' relays: Google Workspace lists them as an inbound gateway or in the SPF/spam skip list (Apps > Gmail > Spam, phishing and malware), Microsoft 365 takes them through an inbound connector from the partner organisation (with enhanced filtering / skip listing when it is not the MX), an on-premises server exempts them from its SPF and DMARC checks",
        policy.policy
    );
    Some(Finding::new(
        Check::DmarcRelays,
        format!("_dmarc.{domain} TXT"),
        Status::Look,
        format!("p={}; relays: {}", policy.policy, hops.join(", ")),
        "each receiving system trusts the relays of the systems that forward to it",
        headline,
    ))
}

fn autodiscover(dns: &Snapshot, domain: &str, system: &SystemDns, target: &str) -> Finding {
    let name = format!("autodiscover.{domain}");
    let record = format!("{name} CNAME");
    let target = normalise(target);
    let answer = dns.answer(&name, RecordType::Cname);
    let found: Vec<String> = answer
        .records()
        .iter()
        .filter_map(|d| match d {
            Data::Cname(t) => Some(t.clone()),
            _ => None,
        })
        .collect();
    let expected = format!("CNAME {target} ({})", system.id);
    if found.contains(&target) {
        let headline = format!(
            "{}'s mail clients find their settings through autodiscover.{domain}",
            system.id
        );
        return Finding::new(
            Check::Autodiscover,
            record,
            Status::Ok,
            found.join(", "),
            expected,
            headline,
        );
    }
    let found = if found.is_empty() {
        why(&answer, &name, RecordType::Cname)
    } else {
        found.join(", ")
    };
    let headline = format!(
        "{}'s mail clients (Outlook, phones) find their server settings through autodiscover.{domain}; it does not point at {target}, so they must be set up by hand",
        system.id
    );
    Finding::new(
        Check::Autodiscover,
        record,
        Status::Look,
        found,
        expected,
        headline,
    )
}

#[cfg(test)]
mod tests;
