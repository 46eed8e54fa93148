//! `coexist doctor` checks the DNS a split domain needs, against the real
//! authoritative DNS server of the test environment (NSD, `deploy/testenv.sh
//! up dns`): one zone per shape, the correct one giving no failed finding,
//! each broken one exactly its own. A nameserver that does not answer is
//! one clear finding, quickly.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::{Duration, Instant};

use coexist_testenv::dns;
use serde_json::Value;

use common::{person, Org};

/// The Google + LDAP organisation on `shape`'s domain, on simulated
/// systems: Google the MX (its hosts, include and selector given in
/// `[systems.dns]`, as the google kind's defaults are), the mail server
/// with its smart host (the simulated kind's default for its MX and SPF);
/// `dns_table` is the `[dns]` table.
fn config(shape: &str, dns_table: &str) -> String {
    let domain = dns::domain(shape);
    format!(
        r#"[organisation]
shared_domains = ["{domain}"]

[topology]
mx = "google"

{dns_table}

[[systems]]
id = "google"
kind = "simulated"
routing_domain = "gapps.{domain}"
stub_style = "domain_routing"
unknown_recipient = {{ relay = "ldap" }}
[systems.connection]
seed = "google.json"
state = "google-state.jsonl"
[systems.dns]
mx_hosts = ["smtp.google.com", "aspmx.l.google.com", "alt1.aspmx.l.google.com"]
spf_includes = ["_spf.google.com"]
dkim_selectors = ["google"]

[[systems]]
id = "ldap"
kind = "simulated"
routing_domain = "mithi.{domain}"
smart_host = "mail.{domain}"
stub_style = "routing_address"
[systems.connection]
seed = "ldap.json"
state = "ldap-state.jsonl"
"#
    )
}

/// `[dns]` naming the test server.
fn test_server() -> String {
    format!(
        "[dns]\nnameserver = \"{}\"\ntimeout = 3\n",
        dns::nameserver()
    )
}

fn org(shape: &str, dns_table: &str) -> Org {
    let domain = dns::domain(shape);
    Org::new(
        &config(shape, dns_table),
        &[
            ("google", vec![person("g0", &format!("ann@{domain}"))]),
            ("ldap", vec![person("m0", &format!("bob@{domain}"))]),
        ],
    )
}

/// `doctor --output json`: the exit code and the findings that name a
/// record (the DNS findings).
fn doctor(org: &Org) -> (i32, Value, Vec<Value>) {
    let (code, report) = org.json(&["doctor"]);
    let findings = report["findings"]
        .as_array()
        .unwrap_or_else(|| panic!("no findings: {report:#}"))
        .iter()
        .filter(|f| !f["record"].is_null())
        .cloned()
        .collect();
    (code, report, findings)
}

/// The failed findings as (check, record).
fn failures(findings: &[Value]) -> Vec<(String, String)> {
    findings
        .iter()
        .filter(|f| f["status"] == "fail")
        .map(|f| {
            (
                f["check"].as_str().unwrap_or_default().to_string(),
                f["record"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

#[test]
fn the_correct_zone_gives_no_failed_finding_and_each_names_its_record() {
    let org = org(dns::CORRECT, &test_server());
    let domain = dns::domain(dns::CORRECT);
    let (code, report, findings) = doctor(&org);
    assert_eq!(failures(&findings), [], "{report:#}");
    assert_eq!(
        (code, report["ok"].as_bool()),
        (0, Some(true)),
        "{report:#}"
    );
    let checks: Vec<(&str, &str, &str)> = findings
        .iter()
        .map(|f| {
            (
                f["check"].as_str().unwrap_or_default(),
                f["record"].as_str().unwrap_or_default(),
                f["status"].as_str().unwrap_or_default(),
            )
        })
        .collect();
    let spf = format!("{domain} TXT (SPF)");
    let expected = [
        ("MX", format!("{domain} MX"), "ok"),
        ("SPF record", spf.clone(), "ok"),
        ("SPF lookups", spf.clone(), "ok"),
        ("SPF authorises google", spf.clone(), "ok"),
        ("SPF authorises ldap", spf.clone(), "ok"),
        ("SPF policy", spf.clone(), "ok"),
        ("DKIM", format!("google._domainkey.{domain} TXT"), "ok"),
        ("DMARC", format!("_dmarc.{domain} TXT"), "ok"),
        (
            "DMARC and relays between systems",
            format!("_dmarc.{domain} TXT"),
            "look",
        ),
        ("MX", format!("gapps.{domain} MX"), "ok"),
        ("MX", format!("mithi.{domain} MX"), "ok"),
    ];
    let expected: Vec<(&str, &str, &str)> = expected
        .iter()
        .map(|(c, r, s)| (*c, r.as_str(), *s))
        .collect();
    assert_eq!(checks, expected, "{report:#}");
    for finding in &findings {
        for key in ["check", "record", "found", "expected", "status", "detail"] {
            assert!(finding[key].is_string(), "{key} missing in {finding:#}");
        }
    }
    // What was read, as the server holds it: Google's include expanded
    // through the stand-in google.com (4 lookups) and the smart host.
    assert_eq!(
        findings[2]["found"],
        format!("5 DNS lookups (include:_spf.google.com 4, a:mail.{domain} 1)")
    );
    assert_eq!(
        findings[0]["found"],
        "1 aspmx.l.google.com, 5 alt1.aspmx.l.google.com"
    );
    assert!(findings[6]["detail"]
        .as_str()
        .is_some_and(|d| d.contains("an RSA key of 294 bytes")));
    assert!(findings[7]["detail"]
        .as_str()
        .is_some_and(|d| d.contains("p=quarantine")));
}

#[test]
fn each_broken_zone_gives_exactly_its_failed_finding() {
    for shape in dns::BROKEN {
        let domain = dns::domain(shape);
        let spf = format!("{domain} TXT (SPF)");
        let (check, record) = match shape {
            "mx-wrong" => ("MX", format!("{domain} MX")),
            "spf-missing" => ("SPF authorises ldap", spf),
            "spf-too-many-lookups" => ("SPF lookups", spf),
            "two-spf" => ("SPF record", spf),
            "dkim-missing" => ("DKIM", format!("google._domainkey.{domain} TXT")),
            "dmarc-absent" => ("DMARC", format!("_dmarc.{domain} TXT")),
            "routing-no-mx" => ("MX", format!("mithi.{domain} MX")),
            other => panic!("no expectation for the shape {other}"),
        };
        let org = org(shape, &test_server());
        let (code, report, findings) = doctor(&org);
        assert_eq!(
            failures(&findings),
            [(check.to_string(), record)],
            "{shape}: {report:#}"
        );
        assert_eq!(
            (code, report["ok"].as_bool()),
            (4, Some(false)),
            "{shape}: {report:#}"
        );
        // No other finding of doctor fails.
        let all_failed = report["findings"]
            .as_array()
            .map(|f| f.iter().filter(|f| f["status"] == "fail").count());
        assert_eq!(all_failed, Some(1), "{shape}: {report:#}");
    }
}

#[test]
fn a_failed_finding_says_what_was_found_and_what_was_expected() {
    let org = org("mx-wrong", &test_server());
    let domain = dns::domain("mx-wrong");
    let (_, _, findings) = doctor(&org);
    let mx = &findings[0];
    assert_eq!(mx["found"], format!("10 mail.{domain}"));
    assert!(
        mx["expected"]
            .as_str()
            .is_some_and(|e| e.contains("aspmx.l.google.com") && e.contains("google")),
        "{mx:#}"
    );
    let out = org.run(&["doctor"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&format!(
            "[FAIL] MX: {domain}'s MX points at another system, not at google"
        )),
        "{text}"
    );

    let org = org_with_spf_missing();
    let (_, _, findings) = doctor(&org);
    let ldap = findings
        .iter()
        .find(|f| f["check"] == "SPF authorises ldap")
        .unwrap_or_else(|| panic!("{findings:#?}"));
    let domain = dns::domain("spf-missing");
    assert_eq!(ldap["found"], "v=spf1 include:_spf.google.com ~all");
    assert_eq!(ldap["expected"], format!("a:mail.{domain}"));
}

fn org_with_spf_missing() -> Org {
    org("spf-missing", &test_server())
}

#[test]
fn an_unreachable_or_silent_nameserver_is_one_clear_failed_finding_not_a_hang() {
    // A port nobody listens on, and one that listens and never answers.
    let closed = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let closed_at = closed.local_addr().unwrap();
    drop(closed);
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let silent_at = silent.local_addr().unwrap();
    for address in [closed_at, silent_at] {
        let table = format!("[dns]\nnameserver = \"{address}\"\ntimeout = 0.5\n");
        let org = org(dns::CORRECT, &table);
        let started = Instant::now();
        let (code, report, findings) = doctor(&org);
        let took = started.elapsed();
        assert!(took < Duration::from_secs(20), "took {took:?}");
        assert_eq!(code, 4, "{report:#}");
        assert_eq!(findings.len(), 1, "{report:#}");
        let finding = &findings[0];
        assert_eq!(finding["check"], "DNS");
        assert_eq!(finding["status"], "fail");
        assert_eq!(finding["record"], format!("nameserver {address}"));
        assert!(
            finding["found"]
                .as_str()
                .is_some_and(|f| f.contains(&address.to_string())),
            "{finding:#}"
        );
        assert!(
            finding["detail"]
                .as_str()
                .is_some_and(|d| d.contains("DNS cannot be checked")),
            "{finding:#}"
        );
    }
    drop(silent);
}

#[test]
fn without_a_dns_table_doctor_says_dns_is_not_checked_as_something_to_look_at() {
    let org = org(dns::CORRECT, "");
    let (code, report) = org.json(&["doctor"]);
    assert_eq!(code, 0, "{report:#}");
    let dns: Vec<&Value> = report["findings"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|f| f["check"] == "DNS")
        .collect();
    assert_eq!(dns.len(), 1, "{report:#}");
    assert_eq!(dns[0]["status"], "look");
    assert!(dns[0]["detail"]
        .as_str()
        .is_some_and(|d| d.contains("not checked") && d.contains("[dns]")));
}
