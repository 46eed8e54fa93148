//! The checks against zones written out here, shape by shape: the correct
//! one gives no failed finding, each broken one exactly its own.

use super::*;

/// The Google + LDAP organisation of google-coexistence.txt, on
/// acmecorp.test: Google is the MX, the LDAP mail server's smart host is
/// mail.acmecorp.test.
fn topology() -> Topology {
    Topology {
        shared_domains: vec!["acmecorp.test".into()],
        mx: Some("google".into()),
        systems: vec![
            SystemDns {
                id: "google".into(),
                routing_domain: Some("gapps.acmecorp.test".into()),
                mx_hosts: vec![
                    "aspmx.l.google.com".into(),
                    "alt1.aspmx.l.google.com".into(),
                ],
                spf_includes: vec!["_spf.google.com".into()],
                dkim_selectors: vec!["google".into()],
                relays_to: vec!["ldap".into()],
                ..SystemDns::default()
            },
            SystemDns {
                id: "ldap".into(),
                routing_domain: Some("mithi.acmecorp.test".into()),
                mx_hosts: vec!["mail.acmecorp.test".into()],
                spf_relays: vec![Relay::Host("mail.acmecorp.test".into())],
                relays_to: vec!["google".into()],
                ..SystemDns::default()
            },
        ],
    }
}

fn key() -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode([7u8; 294])
}

/// The correct zone, as `name TYPE data` lines.
fn correct() -> String {
    format!(
        "acmecorp.test MX 1 aspmx.l.google.com
acmecorp.test MX 5 alt1.aspmx.l.google.com
acmecorp.test TXT v=spf1 include:_spf.google.com a:mail.acmecorp.test ~all
acmecorp.test TXT google-site-verification=abc
google._domainkey.acmecorp.test TXT v=DKIM1; k=rsa; p={}
_dmarc.acmecorp.test TXT v=DMARC1; p=quarantine; rua=mailto:dmarc@acmecorp.test
gapps.acmecorp.test MX 1 aspmx.l.google.com
mithi.acmecorp.test MX 10 mail.acmecorp.test
mail.acmecorp.test A 192.0.2.25
_spf.google.com TXT v=spf1 include:_netblocks.google.com include:_netblocks2.google.com include:_netblocks3.google.com ~all
_netblocks.google.com TXT v=spf1 ip4:35.190.247.0/24 ~all
_netblocks2.google.com TXT v=spf1 ip6:2001:4860:4000::/36 ~all
_netblocks3.google.com TXT v=spf1 ip4:172.217.0.0/19 ~all
",
        key()
    )
}

/// A snapshot holding exactly `zone`'s records (anything else: NXDOMAIN).
fn snapshot(zone: &str) -> Snapshot {
    let mut dns = Snapshot::new();
    for line in zone.lines().filter(|l| !l.trim().is_empty()) {
        let mut words = line.splitn(3, ' ');
        let (Some(name), Some(kind), Some(data)) = (words.next(), words.next(), words.next())
        else {
            panic!("bad line {line}");
        };
        let (kind, data) = match kind {
            "MX" => {
                let (p, h) = data.split_once(' ').unwrap();
                (
                    RecordType::Mx,
                    Data::Mx {
                        preference: p.parse().unwrap(),
                        host: normalise(h),
                    },
                )
            }
            "TXT" => (RecordType::Txt, Data::Txt(data.into())),
            "CNAME" => (RecordType::Cname, Data::Cname(normalise(data))),
            "A" => (RecordType::A, Data::Addr(data.parse().unwrap())),
            other => panic!("type {other}"),
        };
        dns.add(name, kind, data);
    }
    dns.complete()
}

/// `zone` with the lines containing `drop` left out and `add` added.
fn shape(drop: &[&str], add: &str) -> String {
    let mut out: String = correct()
        .lines()
        .filter(|l| !drop.iter().any(|d| l.contains(d)))
        .map(|l| format!("{l}\n"))
        .collect();
    out.push_str(add);
    out
}

/// The failed findings, as (check, record).
fn failures(zone: &str) -> Vec<(String, String)> {
    check(&topology(), &snapshot(zone))
        .into_iter()
        .filter(|f| f.status == Status::Fail)
        .map(|f| (f.check.to_string(), f.record))
        .collect()
}

fn one(check: &str, record: &str) -> Vec<(String, String)> {
    vec![(check.to_string(), record.to_string())]
}

#[test]
fn the_correct_zone_gives_no_failed_finding() {
    let findings = check(&topology(), &snapshot(&correct()));
    let failed: Vec<&Finding> = findings
        .iter()
        .filter(|f| f.status == Status::Fail)
        .collect();
    assert!(failed.is_empty(), "{failed:#?}");
    let checks: Vec<String> = findings.iter().map(|f| f.check.to_string()).collect();
    assert_eq!(
        checks,
        [
            "MX",
            "SPF record",
            "SPF lookups",
            "SPF authorises google",
            "SPF authorises ldap",
            "SPF policy",
            "DKIM",
            "DMARC",
            "DMARC and relays between systems",
            "MX",
            "MX",
        ]
    );
    let lookups = &findings[2];
    assert_eq!(
        lookups.found,
        "5 DNS lookups (include:_spf.google.com 4, a:mail.acmecorp.test 1)"
    );
    assert_eq!(findings[8].status, Status::Look);
    assert!(findings[8].found.contains("google → ldap, ldap → google"));
}

#[test]
fn the_shared_domain_mx_on_the_wrong_system_fails_the_mx_check() {
    let zone = shape(
        &["acmecorp.test MX"],
        "acmecorp.test MX 10 mail.acmecorp.test\n",
    );
    // The routing domains' MX lines start with their own names.
    let zone = format!("{zone}gapps.acmecorp.test MX 1 aspmx.l.google.com\nmithi.acmecorp.test MX 10 mail.acmecorp.test\n");
    assert_eq!(failures(&zone), one("MX", "acmecorp.test MX"));
    let findings = check(&topology(), &snapshot(&zone));
    assert!(findings[0]
        .detail
        .contains("points at another system, not at google"));
    assert_eq!(findings[0].found, "10 mail.acmecorp.test");
}

#[test]
fn a_stray_mx_that_bypasses_the_mx_system_fails_and_says_how_it_is_preferred() {
    let zone = format!("{}acmecorp.test MX 20 backup.isp.test\n", correct());
    let findings = check(&topology(), &snapshot(&zone));
    assert_eq!(failures(&zone), one("MX", "acmecorp.test MX"));
    assert!(
        findings[0]
            .detail
            .contains("stray backup 20 backup.isp.test"),
        "{}",
        findings[0].detail
    );
    let zone = format!("{}acmecorp.test MX 0 other.isp.test\n", correct());
    let findings = check(&topology(), &snapshot(&zone));
    assert!(
        findings[0].detail.contains("mail bypasses google"),
        "{}",
        findings[0].detail
    );
}

#[test]
fn an_spf_record_missing_a_system_fails_for_that_system() {
    let zone = shape(
        &["acmecorp.test TXT v=spf1"],
        "acmecorp.test TXT v=spf1 include:_spf.google.com ~all\n",
    );
    assert_eq!(
        failures(&zone),
        one("SPF authorises ldap", "acmecorp.test TXT (SPF)")
    );
}

#[test]
fn a_relay_given_by_address_is_authorised_by_a_network_that_holds_it() {
    let mut topology = topology();
    topology.systems[1].spf_relays = vec![Relay::Network("192.0.2.25".parse().unwrap())];
    let zone = shape(
        &["acmecorp.test TXT v=spf1"],
        "acmecorp.test TXT v=spf1 include:_spf.google.com ip4:192.0.2.0/24 ~all\n",
    );
    let failed: Vec<Finding> = check(&topology, &snapshot(&zone))
        .into_iter()
        .filter(|f| f.status == Status::Fail)
        .collect();
    assert!(failed.is_empty(), "{failed:#?}");
    // The smart host's address in an ip4: network counts as the host.
    let zone = shape(
        &["acmecorp.test TXT v=spf1"],
        "acmecorp.test TXT v=spf1 include:_spf.google.com ip4:192.0.2.25 ~all\n",
    );
    assert!(failures(&zone).is_empty(), "{:?}", failures(&zone));
}

#[test]
fn an_spf_record_over_ten_lookups_fails_the_lookup_check() {
    let mut extra = String::new();
    let mut includes = String::new();
    for n in 1..=6 {
        extra.push_str(&format!(
            "x{n}.acmecorp.test TXT v=spf1 ip4:198.51.100.{n} ~all\n"
        ));
        includes.push_str(&format!(" include:x{n}.acmecorp.test"));
    }
    let zone = shape(
        &["acmecorp.test TXT v=spf1"],
        &format!(
            "acmecorp.test TXT v=spf1 include:_spf.google.com a:mail.acmecorp.test{includes} ~all\n{extra}"
        ),
    );
    assert_eq!(
        failures(&zone),
        one("SPF lookups", "acmecorp.test TXT (SPF)")
    );
    let findings = check(&topology(), &snapshot(&zone));
    assert!(
        findings[2].found.starts_with("11 DNS lookups"),
        "{}",
        findings[2].found
    );
}

#[test]
fn two_spf_records_fail_the_record_check_alone() {
    let zone = format!("{}acmecorp.test TXT v=spf1 mx -all\n", correct());
    assert_eq!(
        failures(&zone),
        one("SPF record", "acmecorp.test TXT (SPF)")
    );
}

#[test]
fn a_missing_spf_record_or_include_fails() {
    let zone = shape(&["acmecorp.test TXT v=spf1"], "");
    assert_eq!(
        failures(&zone),
        one("SPF record", "acmecorp.test TXT (SPF)")
    );
    let zone = shape(&["_netblocks3.google.com TXT"], "");
    assert_eq!(
        failures(&zone),
        one("SPF includes", "acmecorp.test TXT (SPF)")
    );
}

#[test]
fn a_missing_dkim_selector_fails_the_dkim_check() {
    let zone = shape(&["_domainkey"], "");
    assert_eq!(
        failures(&zone),
        one("DKIM", "google._domainkey.acmecorp.test TXT")
    );
    let zone = shape(
        &["_domainkey"],
        "google._domainkey.acmecorp.test TXT v=DKIM1; k=rsa; p=\n",
    );
    let findings = check(&topology(), &snapshot(&zone));
    let dkim = findings.iter().find(|f| f.check == Check::Dkim).unwrap();
    assert!(dkim.detail.contains("revoked"), "{}", dkim.detail);
}

#[test]
fn an_absent_dmarc_record_fails_the_dmarc_check() {
    let zone = shape(&["_dmarc"], "");
    assert_eq!(failures(&zone), one("DMARC", "_dmarc.acmecorp.test TXT"));
}

#[test]
fn a_routing_domain_without_mx_fails_its_mx_check() {
    let zone = shape(&["mithi.acmecorp.test MX"], "");
    assert_eq!(failures(&zone), one("MX", "mithi.acmecorp.test MX"));
    let findings = check(&topology(), &snapshot(&zone));
    assert!(findings.last().unwrap().detail.contains("has no MX"));
}

#[test]
fn an_spf_policy_that_does_not_match_dmarc_fails() {
    let zone = shape(
        &["acmecorp.test TXT v=spf1", "_dmarc"],
        "acmecorp.test TXT v=spf1 include:_spf.google.com a:mail.acmecorp.test ?all\n\
         _dmarc.acmecorp.test TXT v=DMARC1; p=reject\n",
    );
    assert_eq!(
        failures(&zone),
        one("SPF policy", "acmecorp.test TXT (SPF)")
    );
    let zone = shape(
        &["acmecorp.test TXT v=spf1"],
        "acmecorp.test TXT v=spf1 include:_spf.google.com a:mail.acmecorp.test +all\n",
    );
    assert_eq!(
        failures(&zone),
        one("SPF policy", "acmecorp.test TXT (SPF)")
    );
}

#[test]
fn autodiscover_is_information_only() {
    let mut topology = topology();
    topology.systems[1].autodiscover = Some("autodiscover.outlook.com".into());
    let findings = check(&topology, &snapshot(&correct()));
    let auto = findings
        .iter()
        .find(|f| f.check == Check::Autodiscover)
        .unwrap();
    assert_eq!(auto.status, Status::Look);
    let zone = format!(
        "{}autodiscover.acmecorp.test CNAME autodiscover.outlook.com.\n",
        correct()
    );
    let findings = check(&topology, &snapshot(&zone));
    let auto = findings
        .iter()
        .find(|f| f.check == Check::Autodiscover)
        .unwrap();
    assert_eq!(auto.status, Status::Ok, "{auto:?}");
}

#[test]
fn unknown_hosts_are_a_look_not_a_failure() {
    let mut topology = topology();
    topology.systems[1].mx_hosts.clear();
    topology.systems[1].spf_relays.clear();
    let findings = check(&topology, &snapshot(&correct()));
    let looks: Vec<String> = findings
        .iter()
        .filter(|f| f.status == Status::Look)
        .map(|f| format!("{} {}", f.check, f.record))
        .collect();
    assert_eq!(
        looks,
        [
            "SPF authorises ldap acmecorp.test TXT (SPF)",
            "DMARC and relays between systems _dmarc.acmecorp.test TXT",
            "MX mithi.acmecorp.test MX"
        ]
    );
}

#[test]
fn a_wildcard_host_matches_names_under_it() {
    assert!(host_matches(
        "*.mail.protection.outlook.com",
        "acmecorp-com.mail.protection.outlook.com"
    ));
    assert!(!host_matches(
        "*.mail.protection.outlook.com",
        "mail.protection.outlook.com"
    ));
    assert!(host_matches("ASPMX.l.google.com.", "aspmx.l.google.com"));
}

#[test]
fn an_answer_that_never_came_is_a_failed_finding_naming_why() {
    let mut dns = Snapshot::new();
    dns.insert(
        Query::new("acmecorp.test", RecordType::Mx),
        Answer::Failed("request timed out".into()),
    );
    let findings = check(&topology(), &dns.complete());
    assert_eq!(findings[0].status, Status::Fail);
    assert_eq!(
        findings[0].found,
        "no answer for acmecorp.test MX: request timed out"
    );
}
